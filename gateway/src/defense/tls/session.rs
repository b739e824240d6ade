//! One TLS connection as a pure state machine: ciphertext in, plaintext out;
//! plaintext in, ciphertext out. No socket, no clock.
//!
//! Buffers, and what an idle session keeps (measured in
//! `tests/tls_session.rs`):
//! - rustls' receive buffer holds partial records. It grows in 4 KiB reads
//!   (to 32 KiB capacity while 16 KiB records stream in) and shrinks back to
//!   4 KiB only when rustls next reads, so after a large message an idle
//!   session keeps 36 KiB instead of 6 KiB until
//!   [`TlsSession::release_memory`] makes rustls shrink it.
//! - Decrypted records: drained into the caller's buffer by every
//!   [`TlsSession::receive`], freed as drained.
//! - Outgoing records: moved out by every
//!   [`TlsSession::write_ciphertext`], freed as moved. The queue's slot
//!   array keeps its largest size (24 bytes per record queued at once).
//! - The cipher state and rustls' state machine: about 2 KiB.
//!
//! Cost on the hot path: rustls' buffered API copies each record once more
//! than strictly needed and allocates one `Vec` per record each way.

use std::io::{self, BufRead, Write};
use std::sync::Arc;

use rustls::{AlertDescription, PeerIncompatible, ProtocolVersion, ServerConnection};

use super::TlsAcceptor;

/// Bytes rustls may hold in its outgoing queue beyond the plaintext
/// [`TlsSession::send`] admitted: record headers and tags (29 bytes at most
/// per 16 KiB record), the handshake flight, alerts and tickets. rustls
/// accepts only a prefix of a write past its limit, which would cut a frame
/// in half, so its limit sits above ours and is never the one that bites.
const RUSTLS_LIMIT_SLACK_BYTES: usize = 64 << 10;

/// A TLS protocol version a session negotiated.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TlsVersion {
    Tls12,
    Tls13,
}

impl TlsVersion {
    /// Metric label.
    pub fn label(self) -> &'static str {
        match self {
            TlsVersion::Tls12 => "tls1.2",
            TlsVersion::Tls13 => "tls1.3",
        }
    }
}

/// What one [`TlsSession::receive`] call changed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ReceiveOutcome {
    /// The handshake finished during this call (count it; any plaintext
    /// appended is already application data, the upgrade request).
    pub handshake_completed: bool,
    /// TLS records are waiting (handshake flight, session ticket, an answer
    /// to a key update): call [`TlsSession::write_ciphertext`] and send.
    pub wants_write: bool,
    /// The peer sent `close_notify` (now or before): no more plaintext will
    /// come, and bytes after it are ignored.
    pub peer_closed: bool,
}

/// Why a session failed. After any error the session is dead: call
/// [`TlsSession::write_ciphertext`] once (it may hold the fatal alert
/// rustls queued for the peer), send that, and close the socket.
/// Every variant except [`TlsError::SendBufferFull`],
/// [`TlsError::SendAfterClose`] and [`TlsError::Internal`] is the peer's
/// doing.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TlsError {
    /// The first bytes were a plain HTTP request: a `ws://` client (or a
    /// scanner) on the TLS port.
    #[error("plain HTTP on the TLS port")]
    PlainHttp,
    /// The client offers only TLS versions we do not speak (1.1 and older).
    /// Alert sent: `protocol_version`, or `handshake_failure` when the
    /// ClientHello lacks signature_algorithms (as 1.0/1.1-only clients' do).
    #[error("the client offers no TLS version we accept (1.2 or 1.3)")]
    UnsupportedVersion,
    /// No cipher suite, key exchange group or signature scheme in common,
    /// or a required extension missing. Alert sent: `handshake_failure`.
    #[error("no TLS parameters in common with the client")]
    NoCommonParameters,
    /// The client offers ALPN protocols, none of them `http/1.1`. Alert
    /// sent: `no_application_protocol`.
    #[error("the client offers ALPN protocols, none of them http/1.1")]
    NoApplicationProtocol,
    /// A record or handshake message that does not parse, has the wrong
    /// type for the state, or is over the size limits (16 KiB records,
    /// 64 KiB handshake messages). Alert sent: `decode_error` or
    /// `unexpected_message`.
    #[error("malformed or unexpected TLS record")]
    BadRecord,
    /// A record failed authentication: tampered with, or garbage. Alert
    /// sent: `bad_record_mac`.
    #[error("a TLS record failed to decrypt")]
    DecryptFailed,
    /// The peer broke a protocol rule (a bad key share, a renegotiation
    /// attempt, too many empty records or key updates, ...).
    #[error("the peer broke the TLS protocol")]
    PeerMisbehaved,
    /// The client refused our certificate (an alert such as `unknown_ca`,
    /// `bad_certificate`, `certificate_expired`): a deployment problem, not
    /// an attack, when it spikes.
    #[error("the client rejected our certificate: {0:?}")]
    CertificateRejected(AlertDescription),
    /// The peer ended the connection with another fatal alert.
    #[error("the peer sent a fatal alert: {0:?}")]
    AlertReceived(AlertDescription),
    /// [`TlsSession::send`] would pass the send limit: the bytes were not
    /// queued; flush with [`TlsSession::write_ciphertext`] first.
    #[error("the TLS send buffer is full")]
    SendBufferFull,
    /// [`TlsSession::send`] after [`TlsSession::close`].
    #[error("send after close_notify")]
    SendAfterClose,
    /// A failure inside rustls or the crypto provider (no randomness, ...).
    #[error("internal TLS failure")]
    Internal,
}

impl TlsError {
    /// Short label for the per-reason metric.
    pub fn reason(&self) -> &'static str {
        match self {
            TlsError::PlainHttp => "plain_http",
            TlsError::UnsupportedVersion => "unsupported_version",
            TlsError::NoCommonParameters => "no_common_parameters",
            TlsError::NoApplicationProtocol => "no_application_protocol",
            TlsError::BadRecord => "bad_record",
            TlsError::DecryptFailed => "decrypt_failed",
            TlsError::PeerMisbehaved => "peer_misbehaved",
            TlsError::CertificateRejected(_) => "certificate_rejected",
            TlsError::AlertReceived(_) => "peer_alert",
            TlsError::SendBufferFull => "send_buffer_full",
            TlsError::SendAfterClose => "send_after_close",
            TlsError::Internal => "internal",
        }
    }

    fn from_rustls(error: &rustls::Error) -> TlsError {
        use rustls::Error;
        match error {
            Error::PeerIncompatible(incompatible) => match incompatible {
                PeerIncompatible::SupportedVersionsExtensionRequired
                | PeerIncompatible::Tls12NotOffered
                | PeerIncompatible::Tls12NotOfferedOrEnabled
                // TLS 1.2 introduced signature_algorithms; clients that speak
                // only 1.0/1.1 omit it, and rustls checks it first.
                | PeerIncompatible::SignatureAlgorithmsExtensionRequired => {
                    TlsError::UnsupportedVersion
                }
                _ => TlsError::NoCommonParameters,
            },
            Error::NoApplicationProtocol => TlsError::NoApplicationProtocol,
            Error::InvalidMessage(_)
            | Error::InappropriateMessage { .. }
            | Error::InappropriateHandshakeMessage { .. }
            | Error::PeerSentOversizedRecord
            | Error::UnsupportedNameType => TlsError::BadRecord,
            Error::DecryptError => TlsError::DecryptFailed,
            Error::PeerMisbehaved(_) => TlsError::PeerMisbehaved,
            Error::AlertReceived(alert) if rejects_certificate(*alert) => {
                TlsError::CertificateRejected(*alert)
            }
            Error::AlertReceived(alert) => TlsError::AlertReceived(*alert),
            _ => TlsError::Internal,
        }
    }
}

fn rejects_certificate(alert: AlertDescription) -> bool {
    matches!(
        alert,
        AlertDescription::BadCertificate
            | AlertDescription::UnsupportedCertificate
            | AlertDescription::CertificateRevoked
            | AlertDescription::CertificateExpired
            | AlertDescription::CertificateUnknown
            | AlertDescription::UnknownCA
    )
}

/// Whether bytes that start a connection are an HTTP request line rather
/// than a TLS record (whose first byte is a content type, 20 to 24).
fn looks_like_http(first: &[u8]) -> bool {
    first.first().is_some_and(u8::is_ascii_uppercase)
}

/// A reader that has no bytes yet, like a drained non-blocking socket.
struct NothingYet;

impl io::Read for NothingYet {
    fn read(&mut self, _: &mut [u8]) -> io::Result<usize> {
        Err(io::ErrorKind::WouldBlock.into())
    }
}

/// One server-side TLS connection. Feed it what the socket received with
/// [`TlsSession::receive`]; queue application data with
/// [`TlsSession::send`]; take what must go to the socket with
/// [`TlsSession::write_ciphertext`].
pub struct TlsSession {
    connection: ServerConnection,
    /// Plaintext admitted by `send` since the last `write_ciphertext`.
    unflushed_bytes: usize,
    send_limit_bytes: usize,
    /// Whether any ciphertext arrived yet (to spot plain HTTP).
    received_any: bool,
    peer_closed: bool,
    closed: bool,
    failure: Option<TlsError>,
}

impl TlsSession {
    pub fn new(acceptor: &TlsAcceptor) -> TlsSession {
        let mut connection = ServerConnection::new(Arc::clone(&acceptor.config))
            .expect("the acceptor was checked to create sessions at start-up");
        connection.set_buffer_limit(Some(acceptor.send_limit_bytes + RUSTLS_LIMIT_SLACK_BYTES));
        TlsSession {
            connection,
            unflushed_bytes: 0,
            send_limit_bytes: acceptor.send_limit_bytes,
            received_any: false,
            peer_closed: false,
            closed: false,
            failure: None,
        }
    }

    /// Feeds bytes received from the socket (any split: partial records
    /// are kept until the rest arrives) and appends the application data
    /// they complete to `plaintext`. On error, plaintext decrypted before the
    /// bad record is still appended.
    pub fn receive(
        &mut self,
        mut ciphertext: &[u8],
        plaintext: &mut Vec<u8>,
    ) -> Result<ReceiveOutcome, TlsError> {
        if let Some(failure) = self.failure {
            return Err(failure);
        }
        let plain_http = !self.received_any && looks_like_http(ciphertext);
        self.received_any |= !ciphertext.is_empty();
        let was_handshaking = self.connection.is_handshaking();
        // Each `read_tls` takes at most what fits rustls' buffer (about one
        // record), so decrypt and drain between reads: received plaintext
        // never piles up past one record.
        while !ciphertext.is_empty() {
            match self.connection.read_tls(&mut ciphertext) {
                // close_notify was received: rustls reads nothing more.
                Ok(0) => break,
                Ok(_) => {}
                // "message buffer full": a handshake message over 64 KiB.
                Err(_) => return Err(self.fail(TlsError::BadRecord)),
            }
            let processed = self.connection.process_new_packets();
            self.drain_plaintext(plaintext);
            match processed {
                Ok(state) => self.peer_closed |= state.peer_has_closed(),
                Err(error) => {
                    let failure = match TlsError::from_rustls(&error) {
                        TlsError::BadRecord if plain_http => TlsError::PlainHttp,
                        failure => failure,
                    };
                    return Err(self.fail(failure));
                }
            }
        }
        Ok(ReceiveOutcome {
            handshake_completed: was_handshaking && !self.connection.is_handshaking(),
            wants_write: self.connection.wants_write(),
            peer_closed: self.peer_closed,
        })
    }

    /// Queues application data, all of it or none: past the send limit
    /// (plaintext admitted since the last [`TlsSession::write_ciphertext`])
    /// it fails with [`TlsError::SendBufferFull`] and queues nothing. Before
    /// the handshake completes the data waits in plaintext; after, it is
    /// encrypted at once.
    pub fn send(&mut self, plaintext: &[u8]) -> Result<(), TlsError> {
        if let Some(failure) = self.failure {
            return Err(failure);
        }
        if self.closed {
            return Err(TlsError::SendAfterClose);
        }
        if self.unflushed_bytes + plaintext.len() > self.send_limit_bytes {
            return Err(TlsError::SendBufferFull);
        }
        let accepted = self
            .connection
            .writer()
            .write(plaintext)
            .map_err(|_| TlsError::Internal)?;
        if accepted != plaintext.len() {
            // rustls' own limit bit: the stream now holds part of this
            // plaintext, so the session cannot go on.
            return Err(self.fail(TlsError::SendBufferFull));
        }
        self.unflushed_bytes += plaintext.len();
        Ok(())
    }

    /// Moves every pending TLS record (handshake, alert, ticket, encrypted
    /// data) to the end of `out` and returns how many bytes it appended.
    pub fn write_ciphertext(&mut self, out: &mut Vec<u8>) -> usize {
        let start = out.len();
        while self.connection.wants_write() {
            // Writing into a Vec neither fails nor stops short; the check
            // only guards against looping if that ever changed.
            match self.connection.write_tls(out) {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
        }
        self.unflushed_bytes = 0;
        out.len() - start
    }

    /// Queues `close_notify` (sent by the next
    /// [`TlsSession::write_ciphertext`]); later sends fail. Idempotent.
    pub fn close(&mut self) {
        if !self.closed {
            self.closed = true;
            self.connection.send_close_notify();
        }
    }

    /// Whether the TLS handshake is still running (until then no
    /// application data arrives).
    pub fn is_handshaking(&self) -> bool {
        self.connection.is_handshaking()
    }

    /// Whether [`TlsSession::write_ciphertext`] has anything to write.
    pub fn wants_write(&self) -> bool {
        self.connection.wants_write()
    }

    /// Whether the peer sent `close_notify`.
    pub fn peer_closed(&self) -> bool {
        self.peer_closed
    }

    /// Whether [`TlsSession::close`] was called.
    pub fn is_closed(&self) -> bool {
        self.closed
    }

    /// The negotiated ALPN protocol (`http/1.1`), or `None` if the client
    /// offered none (or before the handshake).
    pub fn alpn_protocol(&self) -> Option<&[u8]> {
        self.connection.alpn_protocol()
    }

    /// The negotiated version, once known.
    pub fn version(&self) -> Option<TlsVersion> {
        match self.connection.protocol_version()? {
            ProtocolVersion::TLSv1_3 => Some(TlsVersion::Tls13),
            ProtocolVersion::TLSv1_2 => Some(TlsVersion::Tls12),
            _ => None,
        }
    }

    /// Whether the handshake resumed an earlier session (a ticket).
    pub fn resumed(&self) -> bool {
        self.connection.handshake_kind() == Some(rustls::HandshakeKind::Resumed)
    }

    /// Shrinks rustls' receive buffer back to one 4 KiB read if large
    /// records grew it (to 32 KiB capacity; 64 KiB for a huge handshake
    /// message). rustls shrinks it only when it next reads, so an idle
    /// connection would keep the peak: call this when a connection goes
    /// quiet (with the idle ping, or wherever the WebSocket decoder's memory
    /// is released). Cheap when there is nothing to release; a partial
    /// record is kept. Not on every receive: a connection that streams large
    /// records would shrink and regrow its buffer each time.
    pub fn release_memory(&mut self) {
        if self.failure.is_some() || self.peer_closed {
            return;
        }
        // rustls resizes its buffer before every read; a reader with
        // nothing to give (as a non-blocking socket) makes it do only that.
        let _ = self.connection.read_tls(&mut NothingYet);
    }

    fn fail(&mut self, failure: TlsError) -> TlsError {
        self.failure = Some(failure);
        failure
    }

    fn drain_plaintext(&mut self, plaintext: &mut Vec<u8>) {
        let mut reader = self.connection.reader();
        // Err(WouldBlock): nothing more buffered (UnexpectedEof cannot
        // occur: no EOF is ever fed to rustls); Ok(empty): close_notify.
        while let Ok(chunk) = reader.fill_buf() {
            if chunk.is_empty() {
                break;
            }
            let length = chunk.len();
            plaintext.extend_from_slice(chunk);
            reader.consume(length);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rustls_errors_map_to_precise_variants() {
        use rustls::{Error, InvalidMessage, PeerMisbehaved};
        let cases = [
            (
                Error::PeerIncompatible(PeerIncompatible::Tls12NotOffered),
                TlsError::UnsupportedVersion,
            ),
            (
                Error::PeerIncompatible(PeerIncompatible::NoCipherSuitesInCommon),
                TlsError::NoCommonParameters,
            ),
            (
                Error::NoApplicationProtocol,
                TlsError::NoApplicationProtocol,
            ),
            (
                Error::InvalidMessage(InvalidMessage::InvalidContentType),
                TlsError::BadRecord,
            ),
            (Error::PeerSentOversizedRecord, TlsError::BadRecord),
            (Error::DecryptError, TlsError::DecryptFailed),
            (
                Error::PeerMisbehaved(PeerMisbehaved::TooManyKeyUpdateRequests),
                TlsError::PeerMisbehaved,
            ),
            (
                Error::AlertReceived(AlertDescription::CertificateExpired),
                TlsError::CertificateRejected(AlertDescription::CertificateExpired),
            ),
            (
                Error::AlertReceived(AlertDescription::InternalError),
                TlsError::AlertReceived(AlertDescription::InternalError),
            ),
            (Error::FailedToGetRandomBytes, TlsError::Internal),
        ];
        for (error, expected) in cases {
            assert_eq!(TlsError::from_rustls(&error), expected, "{error:?}");
        }
    }

    #[test]
    fn reasons_are_distinct_metric_labels() {
        let all = [
            TlsError::PlainHttp,
            TlsError::UnsupportedVersion,
            TlsError::NoCommonParameters,
            TlsError::NoApplicationProtocol,
            TlsError::BadRecord,
            TlsError::DecryptFailed,
            TlsError::PeerMisbehaved,
            TlsError::CertificateRejected(AlertDescription::UnknownCA),
            TlsError::AlertReceived(AlertDescription::InternalError),
            TlsError::SendBufferFull,
            TlsError::SendAfterClose,
            TlsError::Internal,
        ];
        let mut reasons: Vec<_> = all.iter().map(TlsError::reason).collect();
        assert!(reasons.iter().all(|reason| {
            reason
                .bytes()
                .all(|byte| byte.is_ascii_lowercase() || byte == b'_' || byte.is_ascii_digit())
        }));
        reasons.sort_unstable();
        reasons.dedup();
        assert_eq!(reasons.len(), all.len());
    }

    #[test]
    fn plain_http_is_told_from_a_tls_record() {
        assert!(looks_like_http(b"GET / HTTP/1.1"));
        assert!(looks_like_http(b"OPTIONS * HTTP/1.1"));
        assert!(!looks_like_http(&[0x16, 0x03, 0x01]));
        assert!(!looks_like_http(b""));
    }
}
