//! What the per-user and per-topic limits answer: a refused upgrade (429),
//! a refused message (`rate_limited` or `unavailable` with
//! `retry_after_ms`), or persistent abuse (close 1008), each with a stable
//! metric label.

use crate::defense::content::Repeated;

/// `retry_after_ms` when a claimer was pre-empted in the user's window.
pub(super) const BUSY_RETRY_AFTER_MS: u64 = 10;

/// Why a connection was refused at upgrade.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum UserRefusalReason {
    /// The user holds `max_connections` connections already (429, or close
    /// the oldest under
    /// [`DeviceLimitPolicy::CloseOldest`](super::DeviceLimitPolicy::CloseOldest)).
    TooManyDevices,
    /// Another shard was claiming a slot in the user's window and did not
    /// finish in time (it was pre-empted); refused rather than waiting (429).
    TableBusy,
}

impl UserRefusalReason {
    /// A stable metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            UserRefusalReason::TooManyDevices => "per_user_connections",
            UserRefusalReason::TableBusy => "per_user_table_busy",
        }
    }
}

/// A refused connection: the reason and the `Retry-After` to send with 429.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("refused by per-user limits ({}), retry after {retry_after_s} s", reason.as_str())]
pub struct UserRefusal {
    pub reason: UserRefusalReason,
    pub retry_after_s: u32,
}

impl UserRefusal {
    /// The HTTP status of the refused upgrade.
    pub fn status(&self) -> u16 {
        429
    }
}

/// Which bucket refused a message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum RateScope {
    /// The user's per-minute bucket.
    Minute,
    /// The user's per-hour bucket.
    Hour,
    /// The topic's per-minute bucket.
    Topic,
}

/// A message over a rate: answer `rate_limited` with `retry_after_ms`, and
/// don't forward it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("rate limited ({scope:?}), retry after {retry_after_ms} ms")]
pub struct RateLimited {
    /// Until a token is back (at least 1).
    pub retry_after_ms: u64,
    pub scope: RateScope,
}

/// Why a user's message was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MessageRefusal {
    /// Over the minute or hour rate: `rate_limited`, not forwarded.
    #[error(transparent)]
    RateLimited(RateLimited),
    /// The same payload too often: `rate_limited`, not forwarded.
    #[error(transparent)]
    Repeated(Repeated),
    /// A refusal with the strike bucket empty: persistent abuse, close the
    /// connection with 1008 (policy violation).
    #[error("persistent abuse: too many refused messages")]
    Abuse,
    /// Another shard was claiming a slot in the user's window and did not
    /// finish in time: `unavailable`, retry after a few milliseconds. Not a
    /// strike.
    #[error("per-user table busy, retry after {BUSY_RETRY_AFTER_MS} ms")]
    TableBusy,
}

impl MessageRefusal {
    /// The envelope error code, or `None` for a close.
    pub fn error_code(&self) -> Option<&'static str> {
        match self {
            MessageRefusal::RateLimited(_) | MessageRefusal::Repeated(_) => Some("rate_limited"),
            MessageRefusal::TableBusy => Some("unavailable"),
            MessageRefusal::Abuse => None,
        }
    }

    /// `retry_after_ms` for the error reply.
    pub fn retry_after_ms(&self) -> Option<u64> {
        match self {
            MessageRefusal::RateLimited(limited) => Some(limited.retry_after_ms),
            MessageRefusal::Repeated(repeated) => Some(repeated.retry_after_ms),
            MessageRefusal::TableBusy => Some(BUSY_RETRY_AFTER_MS),
            MessageRefusal::Abuse => None,
        }
    }

    /// The close code, for a refusal that ends the connection.
    pub fn close_code(&self) -> Option<u16> {
        match self {
            MessageRefusal::Abuse => Some(1008),
            _ => None,
        }
    }

    /// A stable metric label.
    pub fn as_str(&self) -> &'static str {
        match self {
            MessageRefusal::RateLimited(RateLimited {
                scope: RateScope::Hour,
                ..
            }) => "per_user_hour",
            MessageRefusal::RateLimited(RateLimited {
                scope: RateScope::Topic,
                ..
            }) => "per_topic",
            MessageRefusal::RateLimited(_) => "per_user_minute",
            MessageRefusal::Repeated(_) => "repeated_content",
            MessageRefusal::Abuse => "per_user_abuse",
            MessageRefusal::TableBusy => "per_user_table_busy",
        }
    }
}
