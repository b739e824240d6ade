//! Criterion benches of the TLS layer, in memory (no sockets): full TLS 1.3
//! handshakes with an ECDSA P-256 and an RSA 2048 certificate, a resumed
//! TLS 1.3 handshake (ticket), and one 20-byte WebSocket frame encrypted and
//! decrypted.
//!
//! Each handshake is measured twice: `pair` times the client and the server
//! together (what criterion sees); `server` times only the calls into
//! `TlsSession` (creation, receive, write_ciphertext), which is what a
//! gateway core pays per connection, so 1 / `server` is the handshake rate
//! one core can sustain.
//!
//! Run: `cargo bench -p ringgate --bench tls`. The certificates are the
//! test-only ones in `tests/tls_certs/`.
//!
//! Sample (2-core AMD EPYC VM, load average 3 to 5 from other builds, rustls
//! 0.23.46 with ring 0.17.14), median: ECDSA P-256 pair 410 µs, server
//! 254 µs; RSA 2048 pair 1.40 ms, server 1.04 ms; resumed (ECDSA) server
//! 148 µs; a 20-byte frame encrypted 292 ns, decrypted 313 ns.

use std::hint::black_box;
use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use ringgate::defense::tls::{TlsAcceptor, TlsConfig, TlsSession};
use rustls::crypto::ring;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, ClientConnection, RootCertStore, SupportedProtocolVersion};

fn cert_path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/tls_certs")
        .join(name)
}

fn acceptor(cert: &str, key: &str) -> TlsAcceptor {
    TlsAcceptor::from_config(&TlsConfig {
        cert_file: cert_path(cert),
        key_file: cert_path(key),
    })
    .expect("test certificates load")
}

fn client_config(versions: &[&'static SupportedProtocolVersion]) -> Arc<ClientConfig> {
    let mut roots = RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_file(cert_path("ca.pem")).expect("ca loads"))
        .expect("ca is a certificate");
    let mut config = ClientConfig::builder_with_provider(Arc::new(ring::default_provider()))
        .with_protocol_versions(versions)
        .expect("versions supported")
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Arc::new(config)
}

fn connect(config: &Arc<ClientConfig>) -> ClientConnection {
    let name = ServerName::try_from("localhost").expect("valid name");
    ClientConnection::new(Arc::clone(config), name).expect("client starts")
}

/// One full exchange until both sides are quiet. Returns the time spent in
/// the server's calls.
fn handshake(acceptor: &TlsAcceptor, client: &mut ClientConnection) -> Duration {
    let mut in_server = Duration::ZERO;
    let started = Instant::now();
    let mut server = TlsSession::new(acceptor);
    in_server += started.elapsed();
    let mut plaintext = Vec::new();
    let mut bytes = Vec::with_capacity(8 << 10);
    loop {
        bytes.clear();
        while client.wants_write() {
            client.write_tls(&mut bytes).expect("write into a Vec");
        }
        let sent = bytes.len();
        let started = Instant::now();
        if sent > 0 {
            server.receive(&bytes, &mut plaintext).expect("handshake");
        }
        bytes.clear();
        let received = server.write_ciphertext(&mut bytes);
        in_server += started.elapsed();
        if received > 0 {
            client.read_tls(&mut &bytes[..]).expect("client reads");
            client.process_new_packets().expect("client accepts");
        }
        if sent == 0 && received == 0 {
            break;
        }
    }
    assert!(!server.is_handshaking());
    let started = Instant::now();
    drop(server);
    in_server + started.elapsed()
}

fn handshakes(c: &mut Criterion) {
    let tls13: &[&SupportedProtocolVersion] = &[&rustls::version::TLS13];
    let config = client_config(tls13);
    // Each full handshake uses a fresh client config, so no ticket is
    // offered; the resumed case keeps one config, whose ticket store always
    // holds the ticket of the previous connection.
    let fresh = || client_config(tls13);
    let mut group = c.benchmark_group("tls_handshake");
    group.sample_size(30);
    for (name, cert, key) in [
        ("tls13_ecdsa_p256", "server.pem", "server.key"),
        ("tls13_rsa2048", "server-rsa.pem", "server-rsa.key"),
    ] {
        let acceptor = acceptor(cert, key);
        group.bench_function(format!("{name}/pair"), |b| {
            b.iter_batched(
                || connect(&fresh()),
                |mut client| handshake(&acceptor, &mut client),
                BatchSize::SmallInput,
            );
        });
        group.bench_function(format!("{name}/server"), |b| {
            b.iter_custom(|iterations| {
                (0..iterations)
                    .map(|_| handshake(&acceptor, &mut connect(&fresh())))
                    .sum()
            });
        });
    }
    let acceptor = acceptor("server.pem", "server.key");
    handshake(&acceptor, &mut connect(&config));
    group.bench_function("tls13_ecdsa_p256_resumed/server", |b| {
        b.iter_custom(|iterations| {
            (0..iterations)
                .map(|_| handshake(&acceptor, &mut connect(&config)))
                .sum()
        });
    });
    group.finish();
}

/// An established TLS 1.3 pair (ECDSA certificate).
fn established() -> (ClientConnection, TlsSession) {
    let acceptor = acceptor("server.pem", "server.key");
    let mut client = connect(&client_config(&[&rustls::version::TLS13]));
    let mut server = TlsSession::new(&acceptor);
    let mut bytes = Vec::new();
    for _ in 0..4 {
        bytes.clear();
        while client.wants_write() {
            client.write_tls(&mut bytes).expect("write into a Vec");
        }
        server.receive(&bytes, &mut Vec::new()).expect("handshake");
        bytes.clear();
        server.write_ciphertext(&mut bytes);
        client.read_tls(&mut &bytes[..]).expect("client reads");
        client.process_new_packets().expect("client accepts");
    }
    assert!(!server.is_handshaking() && !client.is_handshaking());
    (client, server)
}

/// A 20-byte WebSocket text frame from the server: 2-byte header, 18 bytes
/// of payload.
const FRAME: &[u8; 20] = b"\x81\x12{\"op\":\"msg\",\"n\":1}";

fn records(c: &mut Criterion) {
    let mut group = c.benchmark_group("tls_record");
    let (mut client, mut server) = established();
    let mut out = Vec::with_capacity(256);
    group.bench_function("encrypt_20_byte_frame", |b| {
        b.iter(|| {
            out.clear();
            server.send(black_box(FRAME)).expect("room");
            server.write_ciphertext(&mut out)
        });
    });
    // A masked client frame is 26 bytes; what matters is one small record.
    let mut plaintext = Vec::with_capacity(256);
    group.bench_function("decrypt_20_byte_frame", |b| {
        b.iter_batched_ref(
            || {
                client.writer().write_all(FRAME).expect("room");
                let mut record = Vec::with_capacity(64);
                client.write_tls(&mut record).expect("write into a Vec");
                record
            },
            |record| {
                plaintext.clear();
                server.receive(record, &mut plaintext).expect("decrypts");
            },
            BatchSize::SmallInput,
        );
    });
    group.finish();
}

criterion_group!(benches, handshakes, records);
criterion_main!(benches);
