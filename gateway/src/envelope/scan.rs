//! A JSON scanner over a `str`: it checks the grammar of RFC 8259 and finds
//! where each value starts and ends, without building anything.
//!
//! Beyond the RFC it refuses lone UTF-16 surrogate escapes (I-JSON, RFC
//! 7493: most JSON libraries, including the ones backends use, reject them)
//! and nesting deeper than [`MAX_DEPTH`]. With the control-character rule on
//! it also refuses NUL and the C0 controls other than tab, CR and LF,
//! whether raw (never valid JSON inside a string anyway) or escaped (`\b`,
//! `\f`, `\u0000`..`\u001F`).
//!
//! It reads bytes, but its input is a `str`, so every slice it returns is a
//! `str` too (all its cuts fall next to ASCII delimiters). Containers are
//! walked with a loop and a 64-bit stack of "is this level an object", not
//! with recursion, so hostile input cannot grow the call stack.

use super::{MAX_DEPTH, Reason};

/// The JSON type of a scanned value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Kind {
    String { escaped: bool },
    Number,
    Bool(bool),
    Null,
    Object,
    Array,
}

/// A scanned value: its exact text and its type.
#[derive(Clone, Copy, Debug)]
pub(super) struct Value<'a> {
    pub raw: &'a str,
    pub kind: Kind,
}

impl<'a> Value<'a> {
    /// For a string, the text between its quotes and whether it holds an
    /// escape.
    pub fn string(&self) -> Option<(&'a str, bool)> {
        match self.kind {
            Kind::String { escaped } => Some((self.raw.get(1..self.raw.len() - 1)?, escaped)),
            _ => None,
        }
    }
}

/// What the container walk expects next.
#[derive(Clone, Copy)]
enum Expect {
    /// Just after `{` or `[`: the close, or the first element.
    FirstOrClose,
    /// After a comma: an element.
    Element,
    /// After an element: a comma or the close.
    CommaOrClose,
}

/// A cursor over one message.
pub(super) struct Scanner<'a> {
    text: &'a str,
    bytes: &'a [u8],
    pos: usize,
    refuse_control: bool,
}

impl<'a> Scanner<'a> {
    pub fn new(text: &'a str, refuse_control: bool) -> Self {
        Scanner {
            text,
            bytes: text.as_bytes(),
            pos: 0,
            refuse_control,
        }
    }

    /// The text from `start` to the cursor. Every cut the scanner makes is
    /// next to an ASCII delimiter, so this never fails for valid UTF-8; if
    /// it did, the input would be refused rather than the process panic.
    fn slice(&self, start: usize, end: usize) -> Result<&'a str, Reason> {
        self.text.get(start..end).ok_or(Reason::InvalidJson)
    }

    pub fn peek(&self) -> Option<u8> {
        self.bytes.get(self.pos).copied()
    }

    pub fn skip_whitespace(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.peek() {
            self.pos += 1;
        }
    }

    /// Consumes `byte` if it is next.
    pub fn eat(&mut self, byte: u8) -> bool {
        let next = self.peek() == Some(byte);
        self.pos += usize::from(next);
        next
    }

    /// Consumes `byte`, which must be next.
    pub fn expect(&mut self, byte: u8) -> Result<(), Reason> {
        if self.eat(byte) {
            Ok(())
        } else {
            Err(self.unexpected())
        }
    }

    /// Succeeds at the end of the input.
    pub fn expect_end(&self) -> Result<(), Reason> {
        match self.peek() {
            None => Ok(()),
            Some(_) => Err(self.unexpected()),
        }
    }

    /// The error for the byte at the cursor, which the grammar does not
    /// allow here: a control character when that rule is on (whitespace was
    /// skipped, so it is not tab, CR or LF), else invalid JSON.
    pub fn unexpected(&self) -> Reason {
        match self.peek() {
            Some(0..=0x1F) if self.refuse_control => Reason::ControlCharacter,
            _ => Reason::InvalidJson,
        }
    }

    /// Scans a string (the cursor is on its opening quote); returns the
    /// text between the quotes and whether it holds an escape.
    pub fn string(&mut self) -> Result<(&'a str, bool), Reason> {
        let start = self.pos + 1;
        let escaped = self.skip_string()?;
        Ok((self.slice(start, self.pos - 1)?, escaped))
    }

    /// Moves past a string (the cursor is on its opening quote); returns
    /// whether it holds an escape.
    fn skip_string(&mut self) -> Result<bool, Reason> {
        self.expect(b'"')?;
        let mut pos = self.pos;
        let mut escaped = false;
        loop {
            pos = find_special_byte(self.bytes, pos);
            match self.bytes.get(pos) {
                None => return Err(Reason::InvalidJson),
                Some(b'"') => {
                    self.pos = pos + 1;
                    return Ok(escaped);
                }
                Some(b'\\') => {
                    escaped = true;
                    pos = self.escape(pos)?;
                }
                // Raw tab, CR and LF are not control characters for the
                // rule, but JSON strings may not hold them raw either.
                Some(b'\t' | b'\n' | b'\r') => return Err(Reason::InvalidJson),
                Some(_) if self.refuse_control => return Err(Reason::ControlCharacter),
                Some(_) => return Err(Reason::InvalidJson),
            }
        }
    }

    /// Checks the escape whose backslash is at `pos`; returns where it ends.
    fn escape(&self, pos: usize) -> Result<usize, Reason> {
        match self.bytes.get(pos + 1) {
            Some(b'"' | b'\\' | b'/' | b'n' | b'r' | b't') => Ok(pos + 2),
            Some(b'b' | b'f') if self.refuse_control => Err(Reason::ControlCharacter),
            Some(b'b' | b'f') => Ok(pos + 2),
            Some(b'u') => self.unicode_escape(pos),
            _ => Err(Reason::InvalidJson),
        }
    }

    /// Checks a `\uXXXX` escape (with its low half when it is a surrogate
    /// pair) whose backslash is at `pos`; returns where it ends.
    fn unicode_escape(&self, pos: usize) -> Result<usize, Reason> {
        let unit = hex4(self.bytes, pos + 2).ok_or(Reason::InvalidJson)?;
        match unit {
            0xD800..=0xDBFF => {
                let low = match self.bytes.get(pos + 6..pos + 8) {
                    Some(b"\\u") => hex4(self.bytes, pos + 8),
                    _ => None,
                };
                match low {
                    Some(0xDC00..=0xDFFF) => Ok(pos + 12),
                    _ => Err(Reason::InvalidJson),
                }
            }
            0xDC00..=0xDFFF => Err(Reason::InvalidJson),
            0x09 | 0x0A | 0x0D => Ok(pos + 6),
            0..=0x1F if self.refuse_control => Err(Reason::ControlCharacter),
            _ => Ok(pos + 6),
        }
    }

    /// Scans one value starting at the cursor (no whitespace before it).
    pub fn value(&mut self) -> Result<Value<'a>, Reason> {
        let start = self.pos;
        let kind = match self.peek() {
            Some(b'{') => {
                self.container()?;
                Kind::Object
            }
            Some(b'[') => {
                self.container()?;
                Kind::Array
            }
            _ => self.scalar()?,
        };
        Ok(Value {
            raw: self.slice(start, self.pos)?,
            kind,
        })
    }

    /// Scans a string, number or literal.
    fn scalar(&mut self) -> Result<Kind, Reason> {
        match self.peek() {
            Some(b'"') => self.skip_string().map(|escaped| Kind::String { escaped }),
            Some(b'-' | b'0'..=b'9') => self.number().map(|()| Kind::Number),
            Some(b't') => self.literal(b"true").map(|()| Kind::Bool(true)),
            Some(b'f') => self.literal(b"false").map(|()| Kind::Bool(false)),
            Some(b'n') => self.literal(b"null").map(|()| Kind::Null),
            _ => Err(self.unexpected()),
        }
    }

    fn literal(&mut self, word: &[u8]) -> Result<(), Reason> {
        for &expected in word {
            self.expect(expected)?;
        }
        Ok(())
    }

    /// `-? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)?`
    fn number(&mut self) -> Result<(), Reason> {
        self.eat(b'-');
        match self.peek() {
            Some(b'0') => self.pos += 1,
            Some(b'1'..=b'9') => self.digits()?,
            _ => return Err(self.unexpected()),
        }
        if self.eat(b'.') {
            self.digits()?;
        }
        if self.eat(b'e') || self.eat(b'E') {
            if !self.eat(b'+') {
                self.eat(b'-');
            }
            self.digits()?;
        }
        Ok(())
    }

    /// One or more decimal digits.
    fn digits(&mut self) -> Result<(), Reason> {
        let start = self.pos;
        while let Some(b'0'..=b'9') = self.peek() {
            self.pos += 1;
        }
        if self.pos == start {
            return Err(self.unexpected());
        }
        Ok(())
    }

    /// Scans an object or array (the cursor is on its `{` or `[`), nested
    /// values included, in a loop bounded by [`MAX_DEPTH`].
    fn container(&mut self) -> Result<(), Reason> {
        // Bit i is set when the level i below the innermost is an object.
        let mut objects: u64 = 0;
        let mut depth: u32 = 0;
        self.open(&mut objects, &mut depth)?;
        let mut expect = Expect::FirstOrClose;
        loop {
            self.skip_whitespace();
            let in_object = objects & 1 == 1;
            let close = if in_object { b'}' } else { b']' };
            match expect {
                Expect::FirstOrClose | Expect::CommaOrClose if self.eat(close) => {
                    objects >>= 1;
                    depth -= 1;
                    if depth == 0 {
                        return Ok(());
                    }
                    expect = Expect::CommaOrClose;
                    continue;
                }
                Expect::CommaOrClose => {
                    self.expect(b',')?;
                    expect = Expect::Element;
                    continue;
                }
                Expect::FirstOrClose | Expect::Element => {}
            }
            if in_object {
                self.skip_string()?;
                self.skip_whitespace();
                self.expect(b':')?;
                self.skip_whitespace();
            }
            if let Some(b'{' | b'[') = self.peek() {
                self.open(&mut objects, &mut depth)?;
                expect = Expect::FirstOrClose;
            } else {
                self.scalar()?;
                expect = Expect::CommaOrClose;
            }
        }
    }

    /// Enters the object or array whose opening byte is at the cursor.
    fn open(&mut self, objects: &mut u64, depth: &mut u32) -> Result<(), Reason> {
        if *depth == MAX_DEPTH {
            return Err(Reason::TooDeep);
        }
        *depth += 1;
        *objects = (*objects << 1) | u64::from(self.peek() == Some(b'{'));
        self.pos += 1;
        Ok(())
    }
}

/// Checks that `text` is one JSON value with optional whitespace around.
pub(super) fn check_value(text: &str, refuse_control: bool) -> Result<(), Reason> {
    let mut scanner = Scanner::new(text, refuse_control);
    scanner.skip_whitespace();
    scanner.value()?;
    scanner.skip_whitespace();
    scanner.expect_end()
}

const ONES: u64 = 0x0101_0101_0101_0101;
const HIGH_BITS: u64 = 0x8080_8080_8080_8080;

/// The index of the first `"`, `\`, or byte below 0x20 in `bytes` at or
/// after `pos`, or `bytes.len()`: the bytes that end a run of plain string
/// content when reading, and that need an escape when writing.
pub(super) fn find_special_byte(bytes: &[u8], mut pos: usize) -> usize {
    while let Some(chunk) = bytes.get(pos..).and_then(<[u8]>::first_chunk::<8>) {
        let mask = special_byte_mask(u64::from_le_bytes(*chunk));
        if mask != 0 {
            return pos + (mask.trailing_zeros() / 8) as usize;
        }
        pos += 8;
    }
    while let Some(&byte) = bytes.get(pos) {
        if byte == b'"' || byte == b'\\' || byte < 0x20 {
            break;
        }
        pos += 1;
    }
    pos
}

/// Eight bytes at a time: a word whose lowest set bit is the high bit of the
/// first (lowest-addressed, little-endian) special byte of `word`, or 0 when
/// there is none. The classic tricks: `x - 0x01.. & !x & 0x80..` flags the
/// bytes of `x` that are zero, and with `0x20..` those below 0x20. A borrow
/// can only flag bytes above a truly flagged one, so the lowest flag is exact.
pub(super) fn special_byte_mask(word: u64) -> u64 {
    let below_space = word.wrapping_sub(ONES * 0x20) & !word;
    let quote = word ^ (ONES * u64::from(b'"'));
    let backslash = word ^ (ONES * u64::from(b'\\'));
    let is_quote = quote.wrapping_sub(ONES) & !quote;
    let is_backslash = backslash.wrapping_sub(ONES) & !backslash;
    (below_space | is_quote | is_backslash) & HIGH_BITS
}

/// The four hex digits at `at`, as a number.
fn hex4(bytes: &[u8], at: usize) -> Option<u32> {
    let digits = bytes.get(at..at + 4)?;
    digits.iter().try_fold(0, |value, &digit| {
        Some(value << 4 | char::from(digit).to_digit(16)?)
    })
}

/// Decodes the content of a string the scanner accepted, handing each run of
/// text to `push` in order; stops and returns false as soon as `push` does
/// (or, for content the scanner did not accept, at a broken escape).
pub(super) fn unescape(content: &str, mut push: impl FnMut(&str) -> bool) -> bool {
    let bytes = content.as_bytes();
    let mut start = 0;
    let mut pos = 0;
    while pos < bytes.len() {
        if bytes[pos] != b'\\' {
            pos += 1;
            continue;
        }
        let (Some(run), Some((decoded, len))) =
            (content.get(start..pos), decode_escape(&bytes[pos..]))
        else {
            return false;
        };
        let mut utf8 = [0; 4];
        if !push(run) || !push(decoded.encode_utf8(&mut utf8)) {
            return false;
        }
        pos += len;
        start = pos;
    }
    content.get(start..).is_some_and(push)
}

/// The character an escape stands for, and the escape's length.
fn decode_escape(escape: &[u8]) -> Option<(char, usize)> {
    let short = match escape.get(1)? {
        b'"' => '"',
        b'\\' => '\\',
        b'/' => '/',
        b'b' => '\u{8}',
        b'f' => '\u{c}',
        b'n' => '\n',
        b'r' => '\r',
        b't' => '\t',
        b'u' => return decode_unicode_escape(escape),
        _ => return None,
    };
    Some((short, 2))
}

fn decode_unicode_escape(escape: &[u8]) -> Option<(char, usize)> {
    let unit = hex4(escape, 2)?;
    if !(0xD800..=0xDBFF).contains(&unit) {
        return Some((char::from_u32(unit)?, 6));
    }
    if escape.get(6..8)? != b"\\u" {
        return None;
    }
    let low = hex4(escape, 8)?;
    let code = 0x10000 + ((unit - 0xD800) << 10) + low.checked_sub(0xDC00)?;
    Some((char::from_u32(code)?, 12))
}
