//! Helpers shared by the integration tests: an owned copy of each event and
//! a driver that checks the `decode` contract on every call.

use ringgate_wscodec::{Decoder, Limits, Message, ProtocolError};

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    Text(String),
    Binary(Vec<u8>),
    Ping(Vec<u8>),
    Pong(Vec<u8>),
    Close(Option<u16>, String),
}

impl From<Message<'_>> for Event {
    fn from(message: Message<'_>) -> Self {
        match message {
            Message::Text(payload) => {
                Self::Text(String::from_utf8(payload.to_vec()).expect("decoder checked UTF-8"))
            }
            Message::Binary(payload) => Self::Binary(payload.to_vec()),
            Message::Ping(payload) => Self::Ping(payload.to_vec()),
            Message::Pong(payload) => Self::Pong(payload.to_vec()),
            Message::Close(close) => Self::Close(close.code, close.reason.to_string()),
        }
    }
}

/// What a decoder made of a stream: its events, then the error if any.
pub type Outcome = (Vec<Event>, Option<ProtocolError>);

/// Feeds `bytes` cut at `cuts` (offsets, any order, duplicates allowed).
pub fn feed_cut(decoder: &mut Decoder, bytes: &[u8], cuts: &[usize], limits: &Limits) -> Outcome {
    let mut cuts: Vec<usize> = cuts.iter().map(|&cut| cut.min(bytes.len())).collect();
    cuts.push(0);
    cuts.push(bytes.len());
    cuts.sort_unstable();
    cuts.dedup();
    let mut input = bytes.to_vec();
    let mut events = Vec::new();
    for window in cuts.windows(2) {
        if let Some(error) = feed_chunk(
            decoder,
            &mut input[window[0]..window[1]],
            limits,
            &mut events,
        ) {
            return (events, Some(error));
        }
    }
    (events, None)
}

/// Feeds one input, looping as the contract says; returns the error if any.
pub fn feed_chunk(
    decoder: &mut Decoder,
    chunk: &mut [u8],
    limits: &Limits,
    events: &mut Vec<Event>,
) -> Option<ProtocolError> {
    let mut offset = 0;
    while offset < chunk.len() {
        let remaining = chunk.len() - offset;
        match decoder.decode(&mut chunk[offset..], limits) {
            Ok((used, event)) => {
                assert!(
                    used > 0 && used <= remaining,
                    "consumed {used} of {remaining}"
                );
                if event.is_none() {
                    assert_eq!(used, remaining, "Ok(None) before the end of the input");
                }
                events.extend(event.map(Event::from));
                offset += used;
            }
            Err(error) => return Some(error),
        }
    }
    None
}
