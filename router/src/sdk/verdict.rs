//! The answer a backend owes for every publish it receives.

use std::sync::Arc;

use crate::msgid::MessageId;
use crate::protocol::{Code, Credit, Frame, PublishAck, PublishOutcome, Refusal};

use super::SdkError;
use super::link::Link;

/// Longest refusal text sent; the client sees it as the `err` reason.
const MAX_TEXT_BYTES: usize = 1024;

/// The reply handle of one [`Event::Publish`](super::Event::Publish): call
/// exactly one method. The router holds the publish (and, for the publishing
/// client, its `ack`) until the answer comes; dropping the handle unanswered
/// answers `unavailable`, so the client retries.
///
/// Answers go back on the link the publish came on. If that link broke in
/// between, the router already answered the publisher `unavailable`, and
/// the method returns [`SdkError::LinkDown`]; the client's retry comes back
/// as a new event.
#[must_use = "every publish needs an answer: accept, reject, ..."]
pub struct Verdict {
    link: Arc<Link>,
    generation: u64,
    publish_id: u64,
    frame_len: u32,
    message_id: MessageId,
    grant: Credit,
    answered: bool,
}

impl std::fmt::Debug for Verdict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Verdict")
            .field("router", &self.link.address)
            .field("publish_id", &self.publish_id)
            .field("message_id", &self.message_id)
            .finish()
    }
}

impl Verdict {
    pub(super) fn new(
        link: Arc<Link>,
        generation: u64,
        publish_id: u64,
        frame_len: u32,
        message_id: MessageId,
        grant: Credit,
    ) -> Verdict {
        Verdict {
            link,
            generation,
            publish_id,
            frame_len,
            message_id,
            grant,
            answered: false,
        }
    }

    /// Takes the message: the router delivers it to the topic's
    /// subscribers and acknowledges the client with its message id.
    pub fn accept(self) -> Result<(), SdkError> {
        let message_id = self.message_id;
        self.answer(PublishOutcome::Accepted { message_id }, false)
    }

    /// Takes the message but the router delivers nothing: the backend
    /// delivers what it wants itself (e.g. a rewritten message).
    pub fn accept_without_fanout(self) -> Result<(), SdkError> {
        let message_id = self.message_id;
        self.answer(PublishOutcome::Accepted { message_id }, true)
    }

    /// This message was taken before as `original` (e.g. before a router
    /// restart emptied the router's dedup table): the client hears
    /// `dup: true` with that id and nothing is delivered again.
    pub fn duplicate(self, original: MessageId) -> Result<(), SdkError> {
        self.answer(
            PublishOutcome::Duplicate {
                message_id: original,
            },
            false,
        )
    }

    /// Refuses the message for good. The client gets an `err`: `forbidden`,
    /// `rate_limited` or `too_large` for those codes, else `rejected` with
    /// `text` as the reason (keep it short and free of secrets).
    pub fn reject(self, code: Code, text: &str) -> Result<(), SdkError> {
        self.reject_with_retry(code, 0, text)
    }

    /// [`reject`](Self::reject) with a retry hint, for
    /// [`Code::RATE_LIMITED`].
    pub fn reject_with_retry(
        self,
        code: Code,
        retry_after_ms: u32,
        text: &str,
    ) -> Result<(), SdkError> {
        let refusal = Refusal {
            code,
            retry_after_ms,
            text: truncate(text),
        };
        self.answer(PublishOutcome::Rejected(refusal), false)
    }

    /// Cannot decide now: the client gets `unavailable` and may retry the
    /// same message later.
    pub fn unavailable(self, retry_after_ms: u32, text: &str) -> Result<(), SdkError> {
        let refusal = Refusal {
            code: Code::UNAVAILABLE,
            retry_after_ms,
            text: truncate(text),
        };
        self.answer(PublishOutcome::Unavailable(refusal), false)
    }

    fn answer(mut self, outcome: PublishOutcome<'_>, no_fanout: bool) -> Result<(), SdkError> {
        self.answered = true;
        self.send(outcome, no_fanout)
    }

    fn send(&self, outcome: PublishOutcome<'_>, no_fanout: bool) -> Result<(), SdkError> {
        let ack = Frame::PublishAck(PublishAck {
            publish_id: self.publish_id,
            outcome,
            no_fanout,
        });
        self.link
            .answer(self.generation, &ack, self.frame_len, self.grant)
    }
}

impl Drop for Verdict {
    fn drop(&mut self) {
        if self.answered {
            return;
        }
        let refusal = Refusal {
            code: Code::UNAVAILABLE,
            retry_after_ms: 0,
            text: "the backend dropped the publish undecided",
        };
        let _ = self.send(PublishOutcome::Unavailable(refusal), false);
    }
}

fn truncate(text: &str) -> &str {
    if text.len() <= MAX_TEXT_BYTES {
        return text;
    }
    let mut end = MAX_TEXT_BYTES;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}
