//! `TlsSession` against a real rustls client, entirely in memory: the test
//! pumps bytes between the two (whole, or chopped at arbitrary points), so
//! every case is deterministic and needs no socket. Also: config errors,
//! hand-made hostile ClientHellos, and the heap an idle session holds,
//! measured with the counting allocator of `ringgate-alloc-count` (which is
//! why this is its own test binary).
//!
//! Certificates: the test-only CA and server certificates in `tls_certs/`.

use std::io::{self, Read, Write};
use std::path::PathBuf;
use std::sync::Arc;

use proptest::prelude::*;
use ringgate::defense::tls::{
    ReceiveOutcome, TlsAcceptor, TlsConfig, TlsConfigError, TlsError, TlsSession, TlsVersion,
};
use ringgate_alloc_count::{CountingAllocator, live_bytes};
use rustls::crypto::ring;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{
    AlertDescription, ClientConfig, ClientConnection, RootCertStore, SupportedProtocolVersion,
};

// ---------------------------------------------------------------------------
// Counting allocator: live heap bytes per thread.

#[global_allocator]
static ALLOC: CountingAllocator = CountingAllocator;

// ---------------------------------------------------------------------------
// Helpers.

fn cert_path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/tls_certs")
        .join(name)
}

fn config(cert: &str, key: &str) -> TlsConfig {
    TlsConfig {
        cert_file: cert_path(cert),
        key_file: cert_path(key),
    }
}

fn acceptor() -> TlsAcceptor {
    TlsAcceptor::from_config(&config("server.pem", "server.key")).expect("test certificates load")
}

fn roots(anchor: &str) -> RootCertStore {
    let mut roots = RootCertStore::empty();
    let ca = CertificateDer::from_pem_file(cert_path(anchor)).expect("anchor loads");
    roots.add(ca).expect("anchor is a certificate");
    roots
}

fn client_config(
    versions: &[&'static SupportedProtocolVersion],
    alpn: &[&[u8]],
    anchor: &str,
) -> Arc<ClientConfig> {
    let mut config = ClientConfig::builder_with_provider(Arc::new(ring::default_provider()))
        .with_protocol_versions(versions)
        .expect("versions supported")
        .with_root_certificates(roots(anchor))
        .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|protocol| protocol.to_vec()).collect();
    Arc::new(config)
}

fn client(versions: &[&'static SupportedProtocolVersion]) -> ClientConnection {
    connect(client_config(versions, &[b"http/1.1"], "ca.pem"))
}

fn connect(config: Arc<ClientConfig>) -> ClientConnection {
    let name = ServerName::try_from("localhost").expect("valid name");
    ClientConnection::new(config, name).expect("client starts")
}

const TLS13: &[&SupportedProtocolVersion] = &[&rustls::version::TLS13];
const TLS12: &[&SupportedProtocolVersion] = &[&rustls::version::TLS12];

/// Splits a byte stream into pieces whose sizes cycle through `sizes`.
struct Chopper {
    sizes: Vec<usize>,
    next: usize,
}

impl Chopper {
    fn whole() -> Chopper {
        Chopper::new(vec![usize::MAX])
    }

    fn new(sizes: Vec<usize>) -> Chopper {
        assert!(sizes.iter().all(|&size| size > 0));
        Chopper { sizes, next: 0 }
    }

    fn pieces<'a>(&mut self, mut bytes: &'a [u8]) -> Vec<&'a [u8]> {
        let mut pieces = Vec::new();
        while !bytes.is_empty() {
            let size = self.sizes[self.next % self.sizes.len()].min(bytes.len());
            self.next += 1;
            let (piece, rest) = bytes.split_at(size);
            pieces.push(piece);
            bytes = rest;
        }
        pieces
    }
}

/// What the server saw while the pair was pumped.
#[derive(Default)]
struct Seen {
    plaintext: Vec<u8>,
    handshakes_completed: usize,
    peer_closed: bool,
}

/// A rustls client and our server session, connected by `pump`.
struct Pair {
    client: ClientConnection,
    server: TlsSession,
    chopper: Chopper,
    /// Everything the client decrypted so far.
    from_server: Vec<u8>,
}

impl Pair {
    fn new(client: ClientConnection, acceptor: &TlsAcceptor) -> Pair {
        Pair {
            client,
            server: TlsSession::new(acceptor),
            chopper: Chopper::whole(),
            from_server: Vec::new(),
        }
    }

    /// Moves bytes both ways, cut by the chopper, until neither side has
    /// anything to say.
    fn pump(&mut self) -> Result<Seen, TlsError> {
        let mut seen = Seen::default();
        loop {
            let mut to_server = Vec::new();
            while self.client.wants_write() {
                self.client
                    .write_tls(&mut to_server)
                    .expect("write into a Vec");
            }
            for piece in self.chopper.pieces(&to_server) {
                let outcome = self.server.receive(piece, &mut seen.plaintext)?;
                seen.handshakes_completed += usize::from(outcome.handshake_completed);
                seen.peer_closed |= outcome.peer_closed;
            }
            let mut to_client = Vec::new();
            self.server.write_ciphertext(&mut to_client);
            for mut piece in self.chopper.pieces(&to_client) {
                while !piece.is_empty() {
                    self.client.read_tls(&mut piece).expect("client reads");
                    self.client.process_new_packets().expect("client accepts");
                    read_client(&mut self.client, &mut self.from_server);
                }
            }
            if to_server.is_empty() && to_client.is_empty() {
                return Ok(seen);
            }
        }
    }
}

fn read_client(client: &mut ClientConnection, plaintext: &mut Vec<u8>) {
    let mut buffer = [0u8; 16 << 10];
    loop {
        match client.reader().read(&mut buffer) {
            Ok(0) => return,
            Ok(read) => plaintext.extend_from_slice(&buffer[..read]),
            Err(error) if error.kind() == io::ErrorKind::WouldBlock => return,
            Err(error) => panic!("client read: {error}"),
        }
    }
}

/// A completed handshake with the given client versions.
fn established(versions: &[&'static SupportedProtocolVersion]) -> Pair {
    let mut pair = Pair::new(client(versions), &acceptor());
    let seen = pair.pump().expect("handshake succeeds");
    assert_eq!(seen.handshakes_completed, 1);
    assert!(!pair.client.is_handshaking() && !pair.server.is_handshaking());
    pair
}

fn payload(length: usize) -> Vec<u8> {
    (0..length).map(|index| (index * 31 % 251) as u8).collect()
}

// ---------------------------------------------------------------------------
// Handshake and data.

fn handshake_and_data(versions: &[&'static SupportedProtocolVersion], version: TlsVersion) {
    let mut pair = established(versions);
    assert_eq!(pair.server.version(), Some(version));
    assert_eq!(pair.server.alpn_protocol(), Some(&b"http/1.1"[..]));
    assert_eq!(pair.client.alpn_protocol(), Some(&b"http/1.1"[..]));
    assert!(!pair.server.resumed());

    let request = b"GET /ws HTTP/1.1\r\nHost: localhost\r\n\r\n";
    pair.client.writer().write_all(request).unwrap();
    assert_eq!(pair.pump().unwrap().plaintext, request);

    pair.server
        .send(b"HTTP/1.1 101 Switching Protocols\r\n\r\n")
        .unwrap();
    pair.server.send(&[0x81, 0x02, b'h', b'i']).unwrap();
    assert!(pair.server.wants_write());
    pair.pump().unwrap();
    assert_eq!(
        pair.from_server,
        b"HTTP/1.1 101 Switching Protocols\r\n\r\n\x81\x02hi"
    );
}

#[test]
fn tls13_handshake_alpn_and_data_both_ways() {
    handshake_and_data(TLS13, TlsVersion::Tls13);
}

#[test]
fn tls12_handshake_alpn_and_data_both_ways() {
    handshake_and_data(TLS12, TlsVersion::Tls12);
}

#[test]
fn a_client_without_alpn_is_served() {
    let mut pair = Pair::new(connect(client_config(TLS13, &[], "ca.pem")), &acceptor());
    pair.pump().unwrap();
    assert!(!pair.server.is_handshaking());
    assert_eq!(pair.server.alpn_protocol(), None);
}

#[test]
fn plaintext_sent_before_the_handshake_completes_waits_for_it() {
    let mut pair = Pair::new(client(TLS13), &acceptor());
    pair.server.send(b"early").unwrap();
    pair.pump().unwrap();
    assert_eq!(pair.from_server, b"early");
}

fn one_mebibyte_each_way(versions: &[&'static SupportedProtocolVersion], sizes: Vec<usize>) {
    let mut pair = established(versions);
    pair.chopper = Chopper::new(sizes);
    let data = payload(1 << 20);
    pair.client.set_buffer_limit(None);
    pair.client.writer().write_all(&data).unwrap();
    let seen = pair.pump().unwrap();
    assert_eq!(seen.plaintext.len(), data.len());
    assert!(
        seen.plaintext == data,
        "the server decrypted the same bytes"
    );

    pair.server.send(&data).unwrap();
    pair.pump().unwrap();
    assert!(
        pair.from_server == data,
        "the client decrypted the same bytes"
    );
}

#[test]
fn one_mebibyte_each_way_tls13_in_odd_pieces() {
    one_mebibyte_each_way(TLS13, vec![1, 7, 4093, 16_389, 5, 65_536, 2]);
}

#[test]
fn one_mebibyte_each_way_tls12_in_odd_pieces() {
    one_mebibyte_each_way(TLS12, vec![3, 16_384, 1, 29, 100_000]);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    /// However the byte stream is cut (handshake included), the server
    /// sees the same plaintext.
    #[test]
    fn any_chopping_gives_the_same_plaintext(
        tls13 in any::<bool>(),
        sizes in prop::collection::vec(1usize..6000, 1..24),
        messages in prop::collection::vec(0usize..40_000, 1..6),
    ) {
        let versions = if tls13 { TLS13 } else { TLS12 };
        let mut pair = Pair::new(client(versions), &acceptor());
        pair.chopper = Chopper::new(sizes);
        pair.client.set_buffer_limit(None);
        let mut expected = Vec::new();
        for (index, &length) in messages.iter().enumerate() {
            let message = payload(length + index);
            pair.client.writer().write_all(&message).unwrap();
            expected.extend_from_slice(&message);
        }
        let seen = pair.pump().unwrap();
        prop_assert_eq!(seen.handshakes_completed, 1);
        prop_assert!(seen.plaintext == expected);
    }
}

// ---------------------------------------------------------------------------
// Closing.

#[test]
fn close_notify_both_ways() {
    let mut pair = established(TLS13);
    pair.client.send_close_notify();
    let seen = pair.pump().unwrap();
    assert!(seen.peer_closed && pair.server.peer_closed());
    // Sending after the peer's close_notify is allowed (half-close).
    pair.server.send(b"bye").unwrap();
    pair.server.close();
    assert!(pair.server.is_closed());
    assert_eq!(pair.server.send(b"more"), Err(TlsError::SendAfterClose));
    pair.pump().unwrap();
    assert_eq!(pair.from_server, b"bye");
    let mut rest = Vec::new();
    assert_eq!(
        pair.client.reader().read_to_end(&mut rest).unwrap(),
        0,
        "clean EOF"
    );
    // Bytes after close_notify are ignored, not an error.
    let outcome = pair
        .server
        .receive(b"\x17\x03\x03\x00\x01x", &mut Vec::new())
        .unwrap();
    assert!(outcome.peer_closed);
}

#[test]
fn server_close_reaches_the_client() {
    let mut pair = established(TLS12);
    pair.server.close();
    pair.server.close();
    pair.pump().unwrap();
    let mut rest = Vec::new();
    assert_eq!(pair.client.reader().read_to_end(&mut rest).unwrap(), 0);
}

// ---------------------------------------------------------------------------
// Send limit.

#[test]
fn send_is_all_or_nothing_at_the_limit() {
    let acceptor = acceptor().with_send_limit(10_000);
    assert_eq!(acceptor.send_limit_bytes(), 10_000);
    let mut pair = Pair::new(client(TLS13), &acceptor);
    pair.pump().unwrap();
    pair.server.send(&payload(6_000)).unwrap();
    assert_eq!(
        pair.server.send(&payload(6_000)),
        Err(TlsError::SendBufferFull)
    );
    pair.server.send(&payload(4_000)).unwrap();
    pair.pump().unwrap();
    assert_eq!(
        pair.from_server.len(),
        10_000,
        "the refused send queued nothing"
    );
    // Flushed: room again.
    pair.server.send(&payload(10_000)).unwrap();
}

#[test]
fn release_memory_keeps_a_partial_record() {
    let mut pair = established(TLS13);
    pair.client.writer().write_all(&payload(10_000)).unwrap();
    let mut record = Vec::new();
    pair.client.write_tls(&mut record).unwrap();
    let mut plaintext = Vec::new();
    let (head, tail) = record.split_at(record.len() / 2);
    pair.server.receive(head, &mut plaintext).unwrap();
    pair.server.release_memory();
    pair.server.receive(tail, &mut plaintext).unwrap();
    pair.server.release_memory();
    assert!(plaintext == payload(10_000));
}

#[test]
fn release_memory_mid_handshake_is_harmless() {
    let mut pair = Pair::new(client(TLS12), &acceptor());
    pair.server.release_memory();
    pair.pump().unwrap();
    pair.server.release_memory();
    pair.client.writer().write_all(b"still fine").unwrap();
    assert_eq!(pair.pump().unwrap().plaintext, b"still fine");
}

// ---------------------------------------------------------------------------
// Resumption.

#[test]
fn sessions_resume_with_tickets_on_both_versions() {
    let acceptor = acceptor();
    for versions in [TLS13, TLS12] {
        let config = client_config(versions, &[b"http/1.1"], "ca.pem");
        let mut resumed = Vec::new();
        for _ in 0..2 {
            let mut pair = Pair::new(connect(Arc::clone(&config)), &acceptor);
            pair.pump().unwrap();
            resumed.push(pair.server.resumed());
        }
        assert_eq!(resumed, [false, true], "{versions:?}");
    }
}

// ---------------------------------------------------------------------------
// Hostile or incompatible clients.

/// Feeds `bytes` to a fresh session; returns the error and the alert
/// description the server sent (if any).
fn refuse(bytes: &[u8]) -> (TlsError, Option<u8>) {
    let mut server = TlsSession::new(&acceptor());
    let error = server.receive(bytes, &mut Vec::new()).expect_err("refused");
    assert_eq!(
        server.receive(b"\x16", &mut Vec::new()),
        Err(error),
        "stays failed"
    );
    assert_eq!(server.send(b"x"), Err(error));
    let mut out = Vec::new();
    server.write_ciphertext(&mut out);
    // An unencrypted alert record: 21, version, length 2, level, description.
    let alert = (out.len() == 7 && out[0] == 21).then(|| out[6]);
    (error, alert)
}

/// A ClientHello as TLS 1.0/1.1 clients send it: `client_version`, two CBC
/// suites, P-256; optionally signature_algorithms (which such clients omit,
/// and which rustls checks before the version) and supported_versions.
fn old_client_hello(
    client_version: [u8; 2],
    signature_algorithms: bool,
    supported_versions: &[[u8; 2]],
) -> Vec<u8> {
    let mut extensions = vec![0x00, 0x0a, 0x00, 0x04, 0x00, 0x02, 0x00, 0x17];
    extensions.extend_from_slice(&[0x00, 0x0b, 0x00, 0x02, 0x01, 0x00]);
    if signature_algorithms {
        // ecdsa_secp256r1_sha256, rsa_pkcs1_sha256.
        extensions.extend_from_slice(&[0x00, 0x0d, 0x00, 0x06, 0x00, 0x04, 0x04, 0x03, 0x04, 0x01]);
    }
    if !supported_versions.is_empty() {
        let list = supported_versions.len() * 2;
        extensions.extend_from_slice(&[0x00, 0x2b, 0x00, list as u8 + 1, list as u8]);
        extensions.extend(supported_versions.iter().flatten());
    }
    let mut body = client_version.to_vec();
    body.extend_from_slice(&[0x42; 32]);
    body.push(0);
    body.extend_from_slice(&[0x00, 0x04, 0xc0, 0x13, 0x00, 0x2f, 0x01, 0x00]);
    body.extend_from_slice(&(extensions.len() as u16).to_be_bytes());
    body.extend_from_slice(&extensions);
    let mut handshake = vec![0x01];
    handshake.extend_from_slice(&(body.len() as u32).to_be_bytes()[1..]);
    handshake.extend_from_slice(&body);
    let mut record = vec![0x16, 0x03, 0x01];
    record.extend_from_slice(&(handshake.len() as u16).to_be_bytes());
    record.extend_from_slice(&handshake);
    record
}

const HANDSHAKE_FAILURE_ALERT: u8 = 40;
const PROTOCOL_VERSION_ALERT: u8 = 70;

#[test]
fn a_tls10_client_is_refused() {
    // As real TLS 1.0 clients send it: no signature_algorithms.
    let (error, alert) = refuse(&old_client_hello([0x03, 0x01], false, &[]));
    assert_eq!(error, TlsError::UnsupportedVersion);
    assert_eq!(error.reason(), "unsupported_version");
    assert_eq!(alert, Some(HANDSHAKE_FAILURE_ALERT));
}

#[test]
fn a_tls11_client_is_refused_with_protocol_version() {
    let (error, alert) = refuse(&old_client_hello([0x03, 0x02], true, &[]));
    assert_eq!(error, TlsError::UnsupportedVersion);
    assert_eq!(alert, Some(PROTOCOL_VERSION_ALERT));
}

#[test]
fn supported_versions_listing_only_old_versions_is_refused() {
    let hello = old_client_hello([0x03, 0x03], true, &[[0x03, 0x02], [0x03, 0x01]]);
    let (error, alert) = refuse(&hello);
    assert_eq!(error, TlsError::UnsupportedVersion);
    assert_eq!(alert, Some(PROTOCOL_VERSION_ALERT));
}

#[test]
fn garbage_instead_of_a_client_hello_is_a_bad_record() {
    let (error, _) = refuse(&[0x16, 0x03, 0x01, 0x00, 0x05, 0xff, 0xff, 0xff, 0xff, 0xff]);
    assert_eq!(error, TlsError::BadRecord);
    let (error, _) = refuse(&[0x99; 64]);
    assert_eq!(error, TlsError::BadRecord);
}

#[test]
fn a_truncated_client_hello_waits_for_more() {
    let hello = old_client_hello([0x03, 0x01], false, &[]);
    let mut server = TlsSession::new(&acceptor());
    let outcome = server.receive(&hello[..20], &mut Vec::new()).unwrap();
    assert_eq!(outcome, ReceiveOutcome::default());
    assert!(server.is_handshaking());
}

#[test]
fn a_plain_http_request_is_named() {
    let (error, _) = refuse(b"GET /ws HTTP/1.1\r\nHost: localhost\r\n\r\n");
    assert_eq!(error, TlsError::PlainHttp);
    assert_eq!(error.reason(), "plain_http");
}

#[test]
fn an_oversized_record_is_a_bad_record() {
    // Length 0x4801: over the 16 KiB + 2 KiB TLS maximum.
    let (error, _) = refuse(&[0x16, 0x03, 0x03, 0x48, 0x01, 0x01]);
    assert_eq!(error, TlsError::BadRecord);
}

#[test]
fn a_client_offering_only_h2_is_refused() {
    let mut client = connect(client_config(TLS13, &[b"h2"], "ca.pem"));
    let mut server = TlsSession::new(&acceptor());
    let mut hello = Vec::new();
    client.write_tls(&mut hello).unwrap();
    let error = server.receive(&hello, &mut Vec::new()).unwrap_err();
    assert_eq!(error, TlsError::NoApplicationProtocol);
}

#[test]
fn a_client_that_distrusts_the_certificate_is_counted_as_such() {
    // The client trusts another anchor, so our chain does not verify.
    let mut client = connect(client_config(TLS13, &[b"http/1.1"], "server-rsa.pem"));
    let mut server = TlsSession::new(&acceptor());
    let mut bytes = Vec::new();
    client.write_tls(&mut bytes).unwrap();
    server.receive(&bytes, &mut Vec::new()).unwrap();
    bytes.clear();
    server.write_ciphertext(&mut bytes);
    client.read_tls(&mut &bytes[..]).unwrap();
    assert!(
        client.process_new_packets().is_err(),
        "client refuses the chain"
    );
    bytes.clear();
    client.write_tls(&mut bytes).unwrap();
    let error = server.receive(&bytes, &mut Vec::new()).unwrap_err();
    assert_eq!(
        error,
        TlsError::CertificateRejected(AlertDescription::UnknownCA)
    );
    assert_eq!(error.reason(), "certificate_rejected");
}

#[test]
fn a_tampered_record_fails_to_decrypt() {
    let mut pair = established(TLS13);
    pair.client.writer().write_all(b"hello").unwrap();
    let mut record = Vec::new();
    pair.client.write_tls(&mut record).unwrap();
    let last = record.len() - 1;
    record[last] ^= 1;
    let error = pair.server.receive(&record, &mut Vec::new()).unwrap_err();
    assert_eq!(error, TlsError::DecryptFailed);
    let mut alert = Vec::new();
    assert!(
        pair.server.write_ciphertext(&mut alert) > 0,
        "the fatal alert is sent"
    );
}

// ---------------------------------------------------------------------------
// Configuration errors: each names its key.

fn config_error(cert: &str, key: &str) -> TlsConfigError {
    TlsAcceptor::from_config(&config(cert, key)).expect_err("refused")
}

fn assert_names(error: &TlsConfigError, key: &str, words: &str) {
    let message = error.to_string();
    eprintln!("{message}");
    assert_eq!(error.key(), key, "{message}");
    assert!(message.starts_with(&format!("key `{key}`")), "{message}");
    assert!(message.contains(words), "{message}");
}

#[test]
fn config_errors_name_their_key() {
    assert_names(
        &config_error("missing.pem", "server.key"),
        "tls.cert_file",
        "cannot read",
    );
    assert_names(
        &config_error("server.pem", "missing.key"),
        "tls.key_file",
        "cannot read",
    );
    assert_names(
        &config_error("garbage.pem", "server.key"),
        "tls.cert_file",
        "no certificate",
    );
    assert_names(
        &config_error("server.key", "server.key"),
        "tls.cert_file",
        "no certificate",
    );
    assert_names(
        &config_error("server.pem", "garbage.pem"),
        "tls.key_file",
        "no private key",
    );
    assert_names(
        &config_error("server.pem", "server.pem"),
        "tls.key_file",
        "no private key",
    );
    assert_names(
        &config_error("server.pem", "mismatched.key"),
        "tls.key_file",
        "does not match",
    );
    assert_names(
        &config_error("server.pem", "server-rsa.key"),
        "tls.key_file",
        "does not match",
    );
    assert_names(
        &config_error("server.pem", "unsupported.key"),
        "tls.key_file",
        "not supported",
    );
    let message = config_error("missing.pem", "server.key").to_string();
    assert!(
        message.contains("missing.pem"),
        "the path is named: {message}"
    );
}

/// A file in a fresh temporary folder, for contents not worth committing.
fn temporary_file(name: &str, contents: &str) -> PathBuf {
    let folder = std::env::temp_dir().join(format!("ringgate-tls-{}", std::process::id()));
    std::fs::create_dir_all(&folder).unwrap();
    let path = folder.join(name);
    std::fs::write(&path, contents).unwrap();
    path
}

#[test]
fn broken_pem_and_broken_certificates_are_named() {
    let not_der = temporary_file(
        "not-der.pem",
        "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
    );
    let unterminated = temporary_file("unterminated.pem", "-----BEGIN CERTIFICATE-----\nAAAA\n");
    let key = cert_path("server.key");
    let error = |cert: &PathBuf, key: &PathBuf| {
        TlsAcceptor::from_config(&TlsConfig {
            cert_file: cert.clone(),
            key_file: key.clone(),
        })
        .expect_err("refused")
    };
    assert_names(&error(&not_der, &key), "tls.cert_file", "cannot be used");
    assert_names(
        &error(&unterminated, &key),
        "tls.cert_file",
        "not valid PEM",
    );
    assert_names(
        &error(&cert_path("server.pem"), &unterminated),
        "tls.key_file",
        "no END line",
    );
    std::fs::remove_dir_all(not_der.parent().unwrap()).unwrap();
}

#[test]
fn both_test_certificates_load() {
    TlsAcceptor::from_config(&config("server.pem", "server.key")).unwrap();
    TlsAcceptor::from_config(&config("server-rsa.pem", "server-rsa.key")).unwrap();
}

// ---------------------------------------------------------------------------
// Memory held by idle sessions.

const SESSIONS: usize = 32;

/// Average live heap bytes held per server session, after `exercise` ran on
/// each freshly established pair and the clients were dropped.
fn idle_heap_per_session(
    versions: &[&'static SupportedProtocolVersion],
    exercise: impl Fn(&mut Pair),
) -> isize {
    let acceptor = acceptor();
    // Warm-up: lazily initialised state (ticket keys, CPU features).
    established(versions);
    let before = live_bytes();
    let mut servers = Vec::with_capacity(SESSIONS);
    let baseline = live_bytes();
    for _ in 0..SESSIONS {
        // A fresh client config each time: no ticket store stays alive.
        let client = connect(client_config(versions, &[b"http/1.1"], "ca.pem"));
        let mut pair = Pair::new(client, &acceptor);
        pair.pump().unwrap();
        exercise(&mut pair);
        servers.push(pair.server);
    }
    let held = live_bytes() - baseline;
    drop(servers);
    assert!(
        live_bytes() - before < 64,
        "sessions free everything on drop"
    );
    held / SESSIONS as isize
}

fn small_exchange(pair: &mut Pair) {
    pair.client.writer().write_all(&payload(300)).unwrap();
    pair.server.send(&payload(40)).unwrap();
    pair.pump().unwrap();
}

fn large_exchange(pair: &mut Pair) {
    pair.client.set_buffer_limit(None);
    pair.client.writer().write_all(&payload(1 << 20)).unwrap();
    pair.server.send(&payload(1 << 20)).unwrap();
    pair.chopper = Chopper::new(vec![65_536]);
    pair.pump().unwrap();
}

#[test]
fn idle_sessions_hold_little_heap() {
    let mut report = String::new();
    let session_size = std::mem::size_of::<TlsSession>();
    for (name, versions) in [("tls1.3", TLS13), ("tls1.2", TLS12)] {
        let after_handshake = idle_heap_per_session(versions, |_| {});
        let after_small = idle_heap_per_session(versions, small_exchange);
        let after_large = idle_heap_per_session(versions, large_exchange);
        let released = idle_heap_per_session(versions, |pair| {
            large_exchange(pair);
            pair.server.release_memory();
        });
        report.push_str(&format!(
            "{name}: after handshake {after_handshake} B, after a small exchange \
             {after_small} B, after 1 MiB each way {after_large} B, then release_memory \
             {released} B (heap per session; plus {session_size} B for the TlsSession itself)\n"
        ));
        assert!(after_small < 8 << 10, "{name}: {after_small} B");
        assert!(released <= after_small + 2048, "{name}: {released} B");
    }
    eprint!("{report}");
}
