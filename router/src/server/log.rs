//! The router's logs: connection-level events, never per message, rate
//! limited per thread and event (`ringgate-logging`; the events are listed
//! in docs/OPERATIONS.md, "Logs").

pub(super) use ringgate_logging::{info, warn};
