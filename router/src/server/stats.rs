//! The router's counters, returned by [`Router::serve`](super::Router::serve).

/// What a router did, counted since it started.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct RouterStats {
    /// Connections accepted.
    pub accepted: u64,
    /// Connections closed at accept because `max_peers` were open.
    pub refused_at_capacity: u64,
    /// HELLOs accepted, by role.
    pub gateways_attached: u64,
    pub backends_attached: u64,
    /// Connections refused at HELLO (bad token, role, version, timeout).
    pub hellos_refused: u64,
    /// Connections closed because the peer broke the frame format or the
    /// connection rules (a GOAWAY with the reason was sent first).
    pub protocol_errors: u64,
    /// Peers that sent a PUBLISH or DELIVER without credit.
    pub flow_control_violations: u64,
    /// Peers disconnected because their output passed `max_output_bytes`
    /// (they granted no credit or did not read).
    pub slow_peers_disconnected: u64,
    /// Peers closed for silence (no HELLO in time, or nothing received
    /// within the idle timeout).
    pub timeouts: u64,
    /// PUBLISH frames received from gateways.
    pub publishes: u64,
    /// Publishes accepted (a new message id, delivered unless the backend
    /// asked for no fan-out).
    pub accepted_publishes: u64,
    /// Publishes answered `duplicate` (by the dedup table, by a backend, or
    /// because the first copy was still waiting for a verdict).
    pub duplicates: u64,
    /// Publishes a backend rejected.
    pub rejected_publishes: u64,
    /// Publishes answered `unavailable` (backend gone, verdict timeout, too
    /// many waiting).
    pub unavailable_publishes: u64,
    /// Publishes forwarded to a claiming backend.
    pub forwarded_to_backends: u64,
    /// Backends' verdicts whose publish was no longer waiting (late, after a
    /// timeout, or an unknown publish id).
    pub unmatched_verdicts: u64,
    /// Verdicts that did not come within `verdict_timeout_ms`.
    pub verdict_timeouts: u64,
    /// DELIVER frames received from backends.
    pub backend_deliveries: u64,
    /// DELIVER frames queued to gateways (one per gateway node reached).
    pub deliver_frames_out: u64,
    /// Deliveries or kicks that reached no gateway (no subscriber, user not
    /// present, gateway node not connected).
    pub unroutable: u64,
    /// Deliveries not sent to a gateway whose `max_body_bytes` is smaller
    /// than the frame.
    pub too_large_for_gateway: u64,
    /// KICK frames forwarded to gateways.
    pub kicks_out: u64,
    /// PRESENCE frames received, and forwarded to backends.
    pub presence_in: u64,
    pub presence_out: u64,
    /// PRESENCE entries dropped because a gateway passed its limit.
    pub presence_over_limit: u64,
    /// Dedup entries pushed out by a newer one before their window ended
    /// (the table was full).
    pub dedup_evicted_before_expiry: u64,
    /// Dedup entries that lived their whole window.
    pub dedup_expired: u64,
    /// Message ids the clock could not issue (wall clock out of range).
    pub clock_errors: u64,
    pub bytes_in: u64,
    pub bytes_out: u64,
    /// Multishot receives stopped because the buffer ring ran dry (no data
    /// is lost: the receive is re-armed).
    pub buffer_ring_exhausted: u64,
}
