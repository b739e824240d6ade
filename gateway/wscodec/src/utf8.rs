//! UTF-8 checks for text messages, whole or piece by piece.

use crate::ProtocolError;

/// Whether `bytes` is a complete, valid UTF-8 text.
pub(crate) fn is_valid(bytes: &[u8]) -> bool {
    simdutf8::basic::from_utf8(bytes).is_ok()
}

/// Checks `bytes`, which start at a character boundary, as a prefix of a
/// longer text. Returns how many trailing bytes begin a character that is
/// not complete yet (0 to 3); the next check starts at those bytes.
///
/// Fails as soon as the bytes cannot start any valid text, so a bad message
/// is refused before its final fragment arrives.
pub(crate) fn incomplete_tail(bytes: &[u8]) -> Result<u8, ProtocolError> {
    match simdutf8::compat::from_utf8(bytes) {
        Ok(_) => Ok(0),
        // `error_len() == None` means only the end was cut short; the std
        // contract is that such a tail is a valid prefix of one character.
        Err(error) if error.error_len().is_none() => {
            let tail = bytes.len() - error.valid_up_to();
            debug_assert!(tail < 4, "an incomplete character is at most 3 bytes");
            Ok(tail as u8)
        }
        Err(_) => Err(ProtocolError::InvalidUtf8),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn complete_text_has_no_tail() {
        assert_eq!(incomplete_tail("héllo €".as_bytes()), Ok(0));
    }

    #[test]
    fn cut_character_leaves_a_tail() {
        let euro = "€".as_bytes(); // E2 82 AC
        assert_eq!(incomplete_tail(&euro[..1]), Ok(1));
        assert_eq!(incomplete_tail(&[b'a', euro[0], euro[1]]), Ok(2));
    }

    #[test]
    fn impossible_prefix_fails_before_the_end() {
        // 0xF5 never starts a character; E0 80 is an overlong prefix.
        assert_eq!(incomplete_tail(&[0xF5]), Err(ProtocolError::InvalidUtf8));
        assert_eq!(
            incomplete_tail(&[0xE0, 0x80]),
            Err(ProtocolError::InvalidUtf8)
        );
        // A surrogate (ED A0) can never be completed either.
        assert_eq!(
            incomplete_tail(&[0xED, 0xA0]),
            Err(ProtocolError::InvalidUtf8)
        );
    }

    #[test]
    fn whole_check_refuses_a_cut_character() {
        assert!(is_valid("ok €".as_bytes()));
        assert!(!is_valid(&"€".as_bytes()[..2]));
    }
}
