//! TLS for `wss`: the `[tls]` configuration table, the shared
//! [`TlsAcceptor`] built from it at start-up, and the per-connection
//! [`TlsSession`], a buffer-in/buffer-out wrapper of rustls' `ServerConnection`
//! that never touches a socket (the shard feeds it received bytes and sends
//! what it writes out).
//!
//! Choices, each with its reason:
//! - rustls 0.23 with the *ring* provider: it builds with a C compiler and
//!   no system packages (aws-lc-rs is the heavier build). Cipher suites and key exchange groups
//!   are the provider's defaults (AES-GCM and ChaCha20-Poly1305, X25519,
//!   P-256, P-384), all forward secret.
//! - TLS 1.3 and 1.2 only: 1.0 and 1.1 are deprecated (RFC 8996) and rustls
//!   does not implement them; a client that offers nothing newer gets a
//!   `protocol_version` alert, or `handshake_failure` if its hello lacks
//!   the 1.2 signature_algorithms extension, as pure 1.0/1.1 clients' do
//!   (both [`TlsError::UnsupportedVersion`]).
//! - ALPN `http/1.1`, the protocol a WebSocket upgrade runs over. A client
//!   that offers ALPN without it (say, only `h2`) is refused with
//!   `no_application_protocol` (RFC 7301); one that offers no ALPN is served.
//! - No client certificates: clients authenticate with a token at upgrade.
//! - Resumption with stateless tickets only (RFC 5077 tickets for TLS 1.2,
//!   PSK tickets for TLS 1.3), ChaCha20-Poly1305 ticket keys rotated every 6
//!   hours (a ticket lives 12), one ticket per TLS 1.3 handshake. One acceptor is shared by all
//!   shards, so a ticket issued on one core resumes on any other; there is
//!   no session-ID cache, because that cache is a mutex-guarded map shared
//!   by every shard and costs memory per session, while every current client
//!   supports tickets. One ticket, not rustls' default two: a WebSocket
//!   client holds one connection and uses a ticket once, on reconnect, where
//!   it gets a new one.
//! - No 0-RTT early data: an upgrade request could be replayed.
//!
//! What it does not do: read sockets, keep time (the shard's handshake
//! deadline runs from accept, so it covers the TLS handshake too), choose a
//! certificate by SNI (one certificate chain serves every name), reload
//! certificates (build a new acceptor; sessions keep the one they started
//! with), or OCSP stapling.
//!
//! Key numbers: an idle session after the handshake holds 6.1 KiB of heap
//! (4 KiB of it rustls' receive buffer, which keeps room for one 4 KiB
//! read), plus `size_of::<TlsSession>()` = 1.2 KiB wherever the shard keeps
//! it (box it: 7.3 KiB per idle TLS connection); `tests/tls_session.rs`
//! measures it. A full TLS 1.3 handshake costs the server about 0.25 ms of
//! CPU with the ECDSA P-256 certificate (4,000 per second per core) and
//! 1.0 ms with RSA 2048; a resumed one 0.15 ms (`benches/tls.rs`, on a
//! loaded 2-core EPYC VM).

mod session;

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::crypto::{CryptoProvider, ring};
use rustls::pki_types::pem::{self, PemObject};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::NoServerSessionStorage;
use rustls::sign::{CertifiedKey, SingleCertAndKey};
use rustls::{InconsistentKeys, ServerConfig};
use serde::Deserialize;

pub use session::{ReceiveOutcome, TlsError, TlsSession, TlsVersion};

/// The one ALPN protocol offered: WebSocket upgrades run over HTTP/1.1.
pub const ALPN_HTTP_1_1: &[u8] = b"http/1.1";

/// Default bound on plaintext accepted by [`TlsSession::send`] between two
/// [`TlsSession::write_ciphertext`] calls: the default write-queue cap (1 MiB)
/// plus one largest frame (1 MiB), so a shard that encrypts its whole queued
/// output at flush never hits it. Change it with
/// [`TlsAcceptor::with_send_limit`].
pub const DEFAULT_SEND_LIMIT_BYTES: usize = 2 << 20;

/// TLS 1.3 session tickets sent after each full handshake (see the header).
const TLS13_TICKETS_PER_HANDSHAKE: usize = 1;

/// The `[tls]` table of the configuration file. Absent: the listener speaks
/// plain `ws`.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// PEM file with the server certificate first, then any intermediates.
    pub cert_file: PathBuf,
    /// PEM file with the certificate's private key (PKCS#8, PKCS#1 RSA or
    /// SEC1 EC; unencrypted). ECDSA P-256/P-384, Ed25519 or RSA of 2048 bits
    /// or more.
    pub key_file: PathBuf,
}

/// Which file of the `[tls]` table a [`TlsConfigError`] is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TlsFile {
    Certificate,
    PrivateKey,
}

impl TlsFile {
    /// The dotted configuration key (`tls.cert_file`).
    pub fn key(self) -> &'static str {
        match self {
            TlsFile::Certificate => "tls.cert_file",
            TlsFile::PrivateKey => "tls.key_file",
        }
    }
}

impl fmt::Display for TlsFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.key())
    }
}

/// A refused `[tls]` table: the gateway does not start. Every message names
/// the key and the file; [`TlsConfigError::key`] returns the key alone.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsConfigError {
    #[error("key `{file}`: cannot read {}: {source}", path.display())]
    Unreadable {
        file: TlsFile,
        path: PathBuf,
        source: io::Error,
    },
    #[error("key `{file}`: {} is not valid PEM: {reason}", path.display())]
    BadPem {
        file: TlsFile,
        path: PathBuf,
        reason: String,
    },
    #[error(
        "key `tls.cert_file`: no certificate (a `BEGIN CERTIFICATE` block) in {}",
        path.display()
    )]
    NoCertificate { path: PathBuf },
    #[error(
        "key `tls.cert_file`: the first certificate in {} cannot be used: {reason}",
        path.display()
    )]
    BadCertificate { path: PathBuf, reason: String },
    #[error(
        "key `tls.key_file`: no private key (a `BEGIN PRIVATE KEY`, `BEGIN RSA PRIVATE KEY` \
         or `BEGIN EC PRIVATE KEY` block; encrypted keys are not supported) in {}",
        path.display()
    )]
    NoPrivateKey { path: PathBuf },
    #[error(
        "key `tls.key_file`: the private key in {} is not supported ({reason}); use ECDSA \
         P-256 or P-384, Ed25519, or RSA of at least 2048 bits",
        path.display()
    )]
    UnsupportedKey { path: PathBuf, reason: String },
    #[error(
        "key `tls.key_file`: the private key in {} does not match the first certificate in {} \
         (tls.cert_file; the server's own certificate must come first, then intermediates)",
        key_path.display(),
        cert_path.display()
    )]
    KeyMismatch {
        key_path: PathBuf,
        cert_path: PathBuf,
    },
    #[error("key `tls`: cannot set up TLS: {reason}")]
    Setup { reason: String },
}

impl TlsConfigError {
    /// The dotted configuration key the error is about.
    pub fn key(&self) -> &'static str {
        match self {
            TlsConfigError::Unreadable { file, .. } | TlsConfigError::BadPem { file, .. } => {
                file.key()
            }
            TlsConfigError::NoCertificate { .. } | TlsConfigError::BadCertificate { .. } => {
                TlsFile::Certificate.key()
            }
            TlsConfigError::NoPrivateKey { .. }
            | TlsConfigError::UnsupportedKey { .. }
            | TlsConfigError::KeyMismatch { .. } => TlsFile::PrivateKey.key(),
            TlsConfigError::Setup { .. } => "tls",
        }
    }
}

/// What every TLS connection of the process shares: the rustls server
/// configuration (certificate, key, ticket keys) and the send bound. Cheap to
/// clone; `Send + Sync`, built once at start-up and shared by all shards.
#[derive(Clone)]
pub struct TlsAcceptor {
    config: Arc<ServerConfig>,
    send_limit_bytes: usize,
}

impl fmt::Debug for TlsAcceptor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsAcceptor")
            .field("send_limit_bytes", &self.send_limit_bytes)
            .finish_non_exhaustive()
    }
}

impl TlsAcceptor {
    /// Reads the certificate chain and key named by `[tls]` and builds the
    /// server configuration. Start-up only: reads files.
    pub fn from_config(config: &TlsConfig) -> Result<TlsAcceptor, TlsConfigError> {
        let cert_pem = read(TlsFile::Certificate, &config.cert_file)?;
        let key_pem = read(TlsFile::PrivateKey, &config.key_file)?;
        let chain = certificates(&cert_pem, &config.cert_file)?;
        let key = private_key(&key_pem, &config.key_file)?;
        let provider = Arc::new(ring::default_provider());
        let certified = certified_key(chain, key, &provider, config)?;
        let server_config = server_config(provider, certified)?;
        Ok(TlsAcceptor {
            config: Arc::new(server_config),
            send_limit_bytes: DEFAULT_SEND_LIMIT_BYTES,
        })
    }

    /// Sets the bound on plaintext [`TlsSession::send`] accepts between two
    /// [`TlsSession::write_ciphertext`] calls (sessions created afterwards).
    pub fn with_send_limit(mut self, bytes: usize) -> TlsAcceptor {
        self.send_limit_bytes = bytes;
        self
    }

    pub fn send_limit_bytes(&self) -> usize {
        self.send_limit_bytes
    }
}

fn read(file: TlsFile, path: &Path) -> Result<Vec<u8>, TlsConfigError> {
    std::fs::read(path).map_err(|source| TlsConfigError::Unreadable {
        file,
        path: path.to_path_buf(),
        source,
    })
}

fn bad_pem(file: TlsFile, path: &Path, error: &pem::Error) -> TlsConfigError {
    let reason = match error {
        pem::Error::MissingSectionEnd { end_marker } => format!(
            "a `BEGIN {}` block has no END line",
            String::from_utf8_lossy(end_marker)
        ),
        pem::Error::IllegalSectionStart { line } => {
            format!("malformed BEGIN line `{}`", String::from_utf8_lossy(line))
        }
        error => error.to_string(),
    };
    TlsConfigError::BadPem {
        file,
        path: path.to_path_buf(),
        reason,
    }
}

/// Every `CERTIFICATE` block, in file order; other blocks are skipped.
fn certificates(pem: &[u8], path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsConfigError> {
    let chain = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|error| bad_pem(TlsFile::Certificate, path, &error))?;
    if chain.is_empty() {
        return Err(TlsConfigError::NoCertificate {
            path: path.to_path_buf(),
        });
    }
    Ok(chain)
}

/// The first private key block of any supported encoding.
fn private_key(pem: &[u8], path: &Path) -> Result<PrivateKeyDer<'static>, TlsConfigError> {
    PrivateKeyDer::from_pem_slice(pem).map_err(|error| match error {
        pem::Error::NoItemsFound => TlsConfigError::NoPrivateKey {
            path: path.to_path_buf(),
        },
        error => bad_pem(TlsFile::PrivateKey, path, &error),
    })
}

/// Loads the key with the provider and checks it against the certificate,
/// so a wrong pair fails at start-up instead of at every handshake.
fn certified_key(
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
    provider: &CryptoProvider,
    config: &TlsConfig,
) -> Result<CertifiedKey, TlsConfigError> {
    let signing_key = provider
        .key_provider
        .load_private_key(key)
        .map_err(|error| TlsConfigError::UnsupportedKey {
            path: config.key_file.clone(),
            reason: error.to_string(),
        })?;
    let certified = CertifiedKey::new(chain, signing_key);
    match certified.keys_match() {
        // Unknown: the key cannot tell its public half (not the case for
        // ring's keys); the handshake would still fail loudly.
        Ok(()) | Err(rustls::Error::InconsistentKeys(InconsistentKeys::Unknown)) => Ok(certified),
        Err(rustls::Error::InconsistentKeys(_)) => Err(TlsConfigError::KeyMismatch {
            key_path: config.key_file.clone(),
            cert_path: config.cert_file.clone(),
        }),
        Err(error) => Err(TlsConfigError::BadCertificate {
            path: config.cert_file.clone(),
            reason: error.to_string(),
        }),
    }
}

fn server_config(
    provider: Arc<CryptoProvider>,
    certified: CertifiedKey,
) -> Result<ServerConfig, TlsConfigError> {
    let setup = |error: rustls::Error| TlsConfigError::Setup {
        reason: error.to_string(),
    };
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(setup)?
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(SingleCertAndKey::from(certified)));
    config.alpn_protocols = vec![ALPN_HTTP_1_1.to_vec()];
    config.ticketer = ring::Ticketer::new().map_err(setup)?;
    config.session_storage = Arc::new(NoServerSessionStorage {});
    config.send_tls13_tickets = TLS13_TICKETS_PER_HANDSHAKE;
    config.max_early_data_size = 0;
    // A session can be created from this configuration: the only failure
    // of `ServerConnection::new` is a bad `max_fragment_size`, checked here
    // once so `TlsSession::new` may treat it as impossible.
    rustls::ServerConnection::new(Arc::new(config.clone())).map_err(setup)?;
    Ok(config)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_table_refuses_unknown_keys_and_needs_both_files() {
        let parsed: TlsConfig =
            toml::from_str("cert_file = \"a.pem\"\nkey_file = \"a.key\"").unwrap();
        assert_eq!(parsed.cert_file, PathBuf::from("a.pem"));
        assert_eq!(parsed.key_file, PathBuf::from("a.key"));
        let unknown = toml::from_str::<TlsConfig>(
            "cert_file = \"a.pem\"\nkey_file = \"a.key\"\nciphers = \"all\"",
        );
        assert!(unknown.unwrap_err().to_string().contains("ciphers"));
        let missing = toml::from_str::<TlsConfig>("cert_file = \"a.pem\"");
        assert!(missing.unwrap_err().to_string().contains("key_file"));
    }

    #[test]
    fn the_acceptor_is_shared_by_all_shards() {
        fn shareable<T: Clone + Send + Sync + 'static>() {}
        shareable::<TlsAcceptor>();
    }

    #[test]
    fn every_error_names_its_key() {
        let path = PathBuf::from("/nowhere/x.pem");
        let errors = [
            TlsConfigError::Unreadable {
                file: TlsFile::PrivateKey,
                path: path.clone(),
                source: io::Error::from(io::ErrorKind::NotFound),
            },
            TlsConfigError::BadPem {
                file: TlsFile::Certificate,
                path: path.clone(),
                reason: "x".into(),
            },
            TlsConfigError::NoCertificate { path: path.clone() },
            TlsConfigError::BadCertificate {
                path: path.clone(),
                reason: "x".into(),
            },
            TlsConfigError::NoPrivateKey { path: path.clone() },
            TlsConfigError::UnsupportedKey {
                path: path.clone(),
                reason: "x".into(),
            },
            TlsConfigError::KeyMismatch {
                key_path: path.clone(),
                cert_path: path.clone(),
            },
            TlsConfigError::Setup { reason: "x".into() },
        ];
        for error in errors {
            let message = error.to_string();
            assert!(
                message.starts_with(&format!("key `{}`", error.key())),
                "{message}"
            );
        }
    }
}
