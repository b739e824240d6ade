//! Crockford base32 of a 128-bit value, fixed width, canonical spelling only.
//!
//! 26 digits, most significant first; the first digit carries the top 3 bits
//! (so it is `0`..=`7`), each other digit 5 bits. The alphabet
//! `0123456789ABCDEFGHJKMNPQRSTVWXYZ` is in ASCII order, so comparing two
//! encodings byte by byte compares the values.
//!
//! Decoding accepts exactly what encoding produces: lowercase and Crockford's
//! read-aliases (`I`, `L`, `O`, `U`) are refused, so every value has one
//! spelling and string equality is value equality.

use thiserror::Error;

/// Digits in an encoding.
pub const TEXT_LEN: usize = 26;

const ALPHABET: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";

/// Digit value of each byte; `INVALID` for bytes outside the alphabet.
const DIGITS: [u8; 256] = {
    let mut digits = [INVALID; 256];
    let mut value = 0;
    while value < 32 {
        digits[ALPHABET[value] as usize] = value as u8;
        value += 1;
    }
    digits
};
const INVALID: u8 = 0xff;

/// Why a text message id did not decode.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum TextError {
    #[error("message id has {0} characters, expected 26")]
    Length(usize),
    #[error("message id has byte {byte:#04x} at {index}, outside the base32 alphabet")]
    Character { index: usize, byte: u8 },
    #[error("message id starts with a digit above 7: it exceeds 128 bits")]
    Overflow,
}

pub(crate) fn encode(value: u128) -> [u8; TEXT_LEN] {
    let mut text = [0u8; TEXT_LEN];
    for (position, digit) in text.iter_mut().rev().enumerate() {
        *digit = ALPHABET[(value >> (5 * position)) as usize & 31];
    }
    text
}

pub(crate) fn decode(text: &[u8]) -> Result<u128, TextError> {
    if text.len() != TEXT_LEN {
        return Err(TextError::Length(text.len()));
    }
    let mut value = 0u128;
    for (index, &byte) in text.iter().enumerate() {
        let digit = DIGITS[byte as usize];
        if digit == INVALID {
            return Err(TextError::Character { index, byte });
        }
        value = value << 5 | u128::from(digit);
    }
    // 26 digits hold 130 bits; the first digit's top 2 bits must be zero.
    if DIGITS[text[0] as usize] > 7 {
        return Err(TextError::Overflow);
    }
    Ok(value)
}
