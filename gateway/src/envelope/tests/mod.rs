//! Tests of the envelope codec: one file per side, property tests, and a
//! check that the protocol document names every code and reason.

mod docs;
mod parsing;
mod props;
mod writing;

use super::{ParseError, Request, Rules, parse};

/// Parses with the default rules, expecting success.
fn accept(frame: &str) -> Request<'_> {
    match parse(frame.as_bytes(), &Rules::default()) {
        Ok(request) => request,
        Err(error) => panic!("{frame}: {error}"),
    }
}

/// Parses with `rules`, expecting failure.
fn refuse_with<'a>(frame: &'a str, rules: &Rules) -> ParseError<'a> {
    match parse(frame.as_bytes(), rules) {
        Ok(request) => panic!("{frame}: accepted as {request:?}"),
        Err(error) => error,
    }
}

/// Parses with the default rules, expecting failure.
fn refuse(frame: &str) -> ParseError<'_> {
    refuse_with(frame, &Rules::default())
}
