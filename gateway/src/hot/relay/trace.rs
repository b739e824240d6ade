//! Per-message tracing in relay mode: a publish with `"hops":true` starts a
//! hop-timestamp list (the client's `sent_us` if given, then `gateway_in`)
//! and gets a trace id if it has none; a DELIVER that carries hops gets
//! `gateway_out` and stage names when it becomes the client's `msg`.
//!
//! Stage names (stable; `docs/CLIENT_PROTOCOL.md`, "Tracing"): the router
//! appends exactly two times (`router_in`, `router_out`) to what the
//! publishing gateway sent, so a DELIVER's list is named from its end:
//! `router_out`, `router_in`, `gateway_in`, then `client_send` when the
//! publisher gave `sent_us`. Anything older (no current hop writes it) is
//! `hop`.
//!
//! Untraced messages pay nothing here: the clock is read and a trace id
//! written only for a publish or delivery that asked for hops.

use std::io::Write;
use std::time::{SystemTime, UNIX_EPOCH};

use ringgate_router::protocol::Hops;

use crate::envelope::Hop;

/// Names of a DELIVER's hops, newest first.
const STAGES_FROM_END: [&str; 4] = ["router_out", "router_in", "gateway_in", "client_send"];
/// The name of a hop older than `client_send`.
const OLDER_STAGE: &str = "hop";
/// The stage the delivering gateway adds.
pub const GATEWAY_OUT: &str = "gateway_out";
/// Most hops shown in one `msg`, `gateway_out` included; a longer list
/// (which no current hop writes) keeps its newest entries.
pub const MAX_SHOWN_HOPS: usize = 8;

/// Microseconds since the Unix epoch on this host's clock (0 if the clock
/// is before 1970).
pub fn wall_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_micros() as u64)
}

/// The hop list a traced publish starts with, as wire bytes: `sent_us`
/// when the client gave it, then `gateway_in_us`.
pub struct StartedHops {
    wire: [u8; 16],
    len: usize,
}

impl StartedHops {
    pub fn new(sent_us: Option<u64>, gateway_in_us: u64) -> StartedHops {
        let mut wire = [0; 16];
        let mut len = 0;
        for time in sent_us.into_iter().chain([gateway_in_us]) {
            wire[len..len + 8].copy_from_slice(&time.to_be_bytes());
            len += 8;
        }
        StartedHops { wire, len }
    }

    pub fn hops(&self) -> Hops<'_> {
        Hops::from_wire(&self.wire[..self.len]).expect("one or two timestamps")
    }
}

/// Trace ids the gateway gives traced publishes that came without one:
/// `g<node>-<count>` in hex, unique per shard node (`node_id * 256 +
/// shard`) until its counter wraps.
pub struct TraceIds {
    node_id: u32,
    count: u64,
}

impl TraceIds {
    pub fn new(node_id: u32) -> TraceIds {
        TraceIds { node_id, count: 0 }
    }

    /// The next id (at most 26 bytes of visible ASCII), written into
    /// `buffer` so the publish path allocates nothing.
    pub fn next<'b>(&mut self, buffer: &'b mut [u8; 32]) -> &'b str {
        self.count = self.count.wrapping_add(1);
        let mut cursor = std::io::Cursor::new(&mut buffer[..]);
        let _ = write!(cursor, "g{:x}-{:x}", self.node_id, self.count);
        let len = cursor.position() as usize;
        std::str::from_utf8(&buffer[..len]).unwrap_or("g")
    }
}

/// A DELIVER's hops named for the client's `msg`, then `gateway_out`.
pub fn named_hops<'a>(
    hops: Hops<'_>,
    gateway_out_us: u64,
    out: &'a mut [Hop<'static>; MAX_SHOWN_HOPS],
) -> &'a [Hop<'static>] {
    let shown = hops.len().min(MAX_SHOWN_HOPS - 1);
    let skipped = hops.len() - shown;
    for (index, ts_us) in hops.iter().skip(skipped).enumerate() {
        let from_end = shown - 1 - index;
        out[index] = Hop {
            stage: STAGES_FROM_END
                .get(from_end)
                .copied()
                .unwrap_or(OLDER_STAGE),
            ts_us,
        };
    }
    out[shown] = Hop {
        stage: GATEWAY_OUT,
        ts_us: gateway_out_us,
    };
    &out[..=shown]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wire(times: &[u64]) -> Vec<u8> {
        times.iter().flat_map(|time| time.to_be_bytes()).collect()
    }

    fn names(times: &[u64]) -> Vec<(&'static str, u64)> {
        let bytes = wire(times);
        let mut out = [Hop {
            stage: "",
            ts_us: 0,
        }; MAX_SHOWN_HOPS];
        named_hops(Hops::from_wire(&bytes).unwrap(), 99, &mut out)
            .iter()
            .map(|hop| (hop.stage, hop.ts_us))
            .collect()
    }

    #[test]
    fn started_hops_hold_the_client_time_only_when_given() {
        assert_eq!(
            StartedHops::new(None, 5).hops().iter().collect::<Vec<_>>(),
            [5]
        );
        assert_eq!(
            StartedHops::new(Some(3), 5)
                .hops()
                .iter()
                .collect::<Vec<_>>(),
            [3, 5]
        );
    }

    #[test]
    fn deliver_hops_are_named_from_the_end() {
        assert_eq!(
            names(&[1, 2, 3]),
            [
                ("gateway_in", 1),
                ("router_in", 2),
                ("router_out", 3),
                ("gateway_out", 99)
            ]
        );
        assert_eq!(
            names(&[0, 1, 2, 3]),
            [
                ("client_send", 0),
                ("gateway_in", 1),
                ("router_in", 2),
                ("router_out", 3),
                ("gateway_out", 99)
            ]
        );
        assert_eq!(names(&[]), [("gateway_out", 99)]);
    }

    #[test]
    fn a_long_list_keeps_its_newest_hops() {
        let times: Vec<u64> = (1..=20).collect();
        let named = names(&times);
        assert_eq!(named.len(), MAX_SHOWN_HOPS);
        assert_eq!(named[0], ("hop", 14));
        assert_eq!(named[MAX_SHOWN_HOPS - 2], ("router_out", 20));
    }

    #[test]
    fn generated_trace_ids_are_distinct_visible_ascii() {
        let mut ids = TraceIds::new(u32::MAX);
        let mut buffer = [0; 32];
        let first = ids.next(&mut buffer).to_string();
        let second = ids.next(&mut buffer).to_string();
        assert_eq!(first, "gffffffff-1");
        assert_eq!(second, "gffffffff-2");
        ids.count = u64::MAX - 1;
        let last = ids.next(&mut buffer);
        assert_eq!(last, "gffffffff-ffffffffffffffff");
        assert!(last.bytes().all(|byte| byte.is_ascii_graphic()));
    }
}
