//! The protocol document must name every error code and every reason, so
//! a client author never meets one that is not explained.

use crate::envelope::{ErrorCode, Reason};

const PROTOCOL: &str = include_str!("../../../../docs/CLIENT_PROTOCOL.md");

#[test]
fn every_error_code_is_documented() {
    for code in ErrorCode::ALL {
        let heading = format!("### `{}`", code.as_str());
        assert!(PROTOCOL.contains(&heading), "no section {heading}");
    }
}

#[test]
fn every_reason_is_documented() {
    for reason in Reason::all() {
        let quoted = format!("`{}`", reason.as_str());
        assert!(
            PROTOCOL.contains(&quoted),
            "{quoted} is not in the document"
        );
    }
}
