//! The frame decoder: one per connection, fed whatever bytes arrived.
//!
//! Design: a frame that starts and ends inside one input and is a whole
//! message (or a control frame) is unmasked in place and returned as a slice
//! of that input: no copy, no allocation. Everything else (a header or
//! payload cut by the end of an input, the fragments of a fragmented
//! message, a control frame cut while a message is open) is copied into the
//! decoder's one reassembly `Vec`, so the caller can reuse its buffer as soon
//! as `decode` returns. The reassembly buffer holds the open message's data
//! first and, behind it, at most one control frame; bytes of a returned
//! message are dropped at the start of the next call, keeping the capacity.

mod header;
#[cfg(test)]
mod tests;

use crate::frame::{MAX_CONTROL_PAYLOAD, MAX_HEADER_LEN, OpCode, apply_mask, is_valid_close_code};
use crate::{ProtocolError, utf8};
use header::FrameHeader;

/// Which end of the connection this decoder sits on; decides the mask rule.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// Reads client frames, which must be masked.
    Server,
    /// Reads server frames, which must not be masked.
    Client,
}

/// Size caps checked when a frame header is decoded, before any payload is
/// buffered. 0 means unlimited.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Largest payload of one frame, any opcode.
    pub max_frame_bytes: u64,
    /// Largest text message, summed over its fragments.
    pub max_text_message_bytes: usize,
    /// Largest binary message, summed over its fragments.
    pub max_binary_message_bytes: usize,
}

impl Default for Limits {
    /// 1 MiB frames, 64 KiB messages: a chat or market-data gateway's sizes.
    fn default() -> Self {
        Self {
            max_frame_bytes: 1 << 20,
            max_text_message_bytes: 64 << 10,
            max_binary_message_bytes: 64 << 10,
        }
    }
}

impl Limits {
    fn message_limit(&self, opcode: OpCode) -> usize {
        if opcode == OpCode::Text {
            self.max_text_message_bytes
        } else {
            self.max_binary_message_bytes
        }
    }
}

/// A complete message or control frame, borrowed from the caller's input or
/// from the decoder until the next call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Message<'a> {
    /// A whole text message; already checked to be valid UTF-8.
    Text(&'a [u8]),
    Binary(&'a [u8]),
    Ping(&'a [u8]),
    Pong(&'a [u8]),
    Close(CloseFrame<'a>),
}

/// The payload of a Close frame, checked: a valid code and a UTF-8 reason.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CloseFrame<'a> {
    /// `None` when the Close frame had an empty payload.
    pub code: Option<u16>,
    pub reason: &'a str,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// Reading a header; `header_len` bytes of it are in `header`.
    Header,
    /// Header read, no payload byte consumed: the frame can still be
    /// returned in place if the rest of it is in the input.
    PayloadStart,
    /// Some payload bytes are in `buffer`; `frame_remaining` are to come.
    Payload,
    /// A Close was returned or an error reported: the stream is over and
    /// input is consumed and ignored.
    Closed,
}

/// Per-connection RFC 6455 frame decoder. See [`Decoder::decode`].
#[derive(Debug)]
pub struct Decoder {
    /// `buffer[..message_len]` is the open message's data; a control frame
    /// being reassembled follows it. Never longer than the message limit
    /// plus one control payload.
    buffer: Vec<u8>,
    /// Payload bytes of the current frame not yet consumed.
    frame_remaining: u64,
    /// Data bytes of the open message held in `buffer`.
    message_len: usize,
    header: [u8; MAX_HEADER_LEN],
    header_len: u8,
    /// The current frame's mask, rotated so `mask[0]` applies to the next
    /// payload byte.
    mask: [u8; 4],
    frame_opcode: OpCode,
    frame_fin: bool,
    /// Text or Binary while a data message is open, else `None`.
    message_opcode: Option<OpCode>,
    /// Bytes at the end of a buffered text message that begin a character
    /// not yet complete; UTF-8 checking resumes there.
    utf8_tail: u8,
    role: Role,
    state: State,
}

impl Decoder {
    pub fn new(role: Role) -> Self {
        Self {
            buffer: Vec::new(),
            frame_remaining: 0,
            message_len: 0,
            header: [0; MAX_HEADER_LEN],
            header_len: 0,
            mask: [0; 4],
            frame_opcode: OpCode::Continuation,
            frame_fin: false,
            message_opcode: None,
            utf8_tail: 0,
            role,
            state: State::Header,
        }
    }

    /// Decodes from `input`, unmasking payload in place. Returns the bytes
    /// consumed and the event they completed, if any.
    ///
    /// The caller loops `while offset < input.len()`. The decoder never asks
    /// for bytes back: anything it needs later it copies. `Ok((n, None))`
    /// means all of `input` was consumed without completing an event. After
    /// a Close or an error, all further input is consumed and ignored.
    pub fn decode<'a>(
        &'a mut self,
        input: &'a mut [u8],
        limits: &Limits,
    ) -> Result<(usize, Option<Message<'a>>), ProtocolError> {
        self.drop_returned_bytes();
        let mut offset = 0;
        loop {
            match self.state {
                State::Closed => return Ok((input.len(), None)),
                State::Header => {
                    let read = self.read_header(&input[offset..], limits);
                    let (used, header) = read.map_err(|error| self.fail(error))?;
                    offset += used;
                    let Some(header) = header else {
                        return Ok((offset, None));
                    };
                    self.begin_frame(header);
                }
                State::PayloadStart if self.fits_in_place(input.len() - offset) => {
                    // `fits_in_place` bounded the length by the input's.
                    let end = offset + self.frame_remaining as usize;
                    return match self.finish_in_place(&mut input[offset..end]) {
                        Ok(message) => Ok((end, Some(message))),
                        Err(error) => Err(self.fail(error)),
                    };
                }
                State::PayloadStart | State::Payload => {
                    let buffered = self.buffer_payload(&mut input[offset..], limits);
                    offset += buffered.map_err(|error| self.fail(error))?;
                    if self.frame_remaining > 0 {
                        return Ok((offset, None));
                    }
                    let finished = self.finish_buffered_frame();
                    let Some(opcode) = finished.map_err(|error| self.fail(error))? else {
                        continue;
                    };
                    // Control frames sit behind the open message's data; a
                    // finished message set `message_len` to 0.
                    let payload = &self.buffer[self.message_len..];
                    return match complete(opcode, payload, false) {
                        Ok(message) => Ok((offset, Some(message))),
                        Err(error) => {
                            self.state = State::Closed;
                            Err(error)
                        }
                    };
                }
            }
        }
    }

    /// True while a frame or a fragmented message has started but not
    /// completed (the gateway runs a frame deadline on this).
    pub fn in_message(&self) -> bool {
        match self.state {
            State::Closed => false,
            State::Header => self.header_len > 0 || self.message_opcode.is_some(),
            State::PayloadStart | State::Payload => true,
        }
    }

    /// Bytes of unfinished frames and messages held in the reassembly buffer.
    pub fn buffered_bytes(&self) -> usize {
        match self.state {
            State::Closed => 0,
            State::Header => self.message_len,
            State::PayloadStart | State::Payload => self.buffer.len(),
        }
    }

    /// Heap bytes the reassembly buffer holds (its capacity).
    pub fn buffer_capacity(&self) -> usize {
        self.buffer.capacity()
    }

    /// Frees the reassembly buffer's spare capacity; all of it when nothing
    /// is buffered, so an idle connection holds no heap.
    pub fn release_memory(&mut self) {
        self.drop_returned_bytes();
        self.buffer.shrink_to_fit();
    }

    /// Drops the bytes of a message returned by the previous call.
    fn drop_returned_bytes(&mut self) {
        match self.state {
            State::Header => self.buffer.truncate(self.message_len),
            State::Closed => {
                self.buffer.clear();
                self.message_len = 0;
                self.message_opcode = None;
            }
            State::PayloadStart | State::Payload => {}
        }
    }

    fn fail(&mut self, error: ProtocolError) -> ProtocolError {
        self.state = State::Closed;
        error
    }

    fn begin_frame(&mut self, header: FrameHeader) {
        self.frame_fin = header.fin;
        self.frame_opcode = header.opcode;
        self.frame_remaining = header.payload_len;
        self.mask = header.mask;
        if matches!(header.opcode, OpCode::Text | OpCode::Binary) {
            self.message_opcode = Some(header.opcode);
        }
        self.state = State::PayloadStart;
    }

    /// Whether the current frame is a whole message or a control frame and
    /// the rest of it is among the `available` input bytes.
    fn fits_in_place(&self, available: usize) -> bool {
        let whole_message = self.frame_fin && self.frame_opcode != OpCode::Continuation;
        self.frame_remaining <= available as u64
            && (whole_message || self.frame_opcode.is_control())
    }

    fn finish_in_place<'p>(&mut self, payload: &'p mut [u8]) -> Result<Message<'p>, ProtocolError> {
        if self.role == Role::Server {
            apply_mask(payload, self.mask, 0);
        }
        let opcode = self.frame_opcode;
        if !opcode.is_control() {
            self.message_opcode = None;
        }
        self.state = if opcode == OpCode::Close {
            State::Closed
        } else {
            State::Header
        };
        complete(opcode, payload, true)
    }

    /// Unmasks and copies as much of the current frame's payload as `input`
    /// holds; returns the bytes consumed.
    fn buffer_payload(
        &mut self,
        input: &mut [u8],
        limits: &Limits,
    ) -> Result<usize, ProtocolError> {
        let take =
            usize::try_from(self.frame_remaining).map_or(input.len(), |r| r.min(input.len()));
        let chunk = &mut input[..take];
        if self.role == Role::Server {
            apply_mask(chunk, self.mask, 0);
            self.mask.rotate_left(take % 4);
        }
        self.reserve(take, limits);
        self.buffer.extend_from_slice(chunk);
        self.frame_remaining -= take as u64;
        if take > 0 {
            self.state = State::Payload;
        }
        if !self.frame_opcode.is_control() {
            self.check_message_bytes()?;
        }
        Ok(take)
    }

    /// Counts newly buffered data bytes into the message and checks text as
    /// it arrives, so invalid UTF-8 fails before the final fragment.
    fn check_message_bytes(&mut self) -> Result<(), ProtocolError> {
        let unchecked_from = self.message_len - usize::from(self.utf8_tail);
        self.message_len = self.buffer.len();
        if self.message_opcode == Some(OpCode::Text) {
            self.utf8_tail = utf8::incomplete_tail(&self.buffer[unchecked_from..])?;
        }
        Ok(())
    }

    /// Grows the buffer for `additional` bytes: doubling, for amortised
    /// growth, but never past what the limits allow it to hold.
    fn reserve(&mut self, additional: usize, limits: &Limits) {
        let needed = self.buffer.len() + additional;
        if needed <= self.buffer.capacity() {
            return;
        }
        let ceiling = match self.message_opcode {
            None => MAX_CONTROL_PAYLOAD,
            Some(opcode) => match limits.message_limit(opcode) {
                0 => usize::MAX,
                limit => limit.saturating_add(MAX_CONTROL_PAYLOAD),
            },
        };
        let target = self
            .buffer
            .capacity()
            .saturating_mul(2)
            .clamp(needed, ceiling.max(needed));
        self.buffer.reserve_exact(target - self.buffer.len());
    }

    /// Called when the current frame's payload is all in `buffer`. Returns
    /// the opcode of the event to emit: the control frame's, or the
    /// message's once its final fragment is in.
    fn finish_buffered_frame(&mut self) -> Result<Option<OpCode>, ProtocolError> {
        let opcode = self.frame_opcode;
        if opcode.is_control() {
            self.state = if opcode == OpCode::Close {
                State::Closed
            } else {
                State::Header
            };
            return Ok(Some(opcode));
        }
        self.state = State::Header;
        if !self.frame_fin {
            return Ok(None);
        }
        if self.utf8_tail != 0 {
            return Err(ProtocolError::InvalidUtf8);
        }
        self.message_len = 0;
        Ok(self.message_opcode.take())
    }
}

/// Builds the event for a complete payload, checking what the opcode
/// requires: UTF-8 for text (unless already checked), the Close layout.
fn complete(
    opcode: OpCode,
    payload: &[u8],
    check_text: bool,
) -> Result<Message<'_>, ProtocolError> {
    Ok(match opcode {
        OpCode::Text => {
            if check_text && !utf8::is_valid(payload) {
                return Err(ProtocolError::InvalidUtf8);
            }
            Message::Text(payload)
        }
        OpCode::Binary => Message::Binary(payload),
        OpCode::Ping => Message::Ping(payload),
        OpCode::Pong => Message::Pong(payload),
        OpCode::Close => Message::Close(parse_close(payload)?),
        OpCode::Continuation => unreachable!("a message event carries its first frame's opcode"),
    })
}

/// RFC 6455 5.5.1: empty, or a 2-byte code followed by a UTF-8 reason.
fn parse_close(payload: &[u8]) -> Result<CloseFrame<'_>, ProtocolError> {
    match payload {
        [] => Ok(CloseFrame {
            code: None,
            reason: "",
        }),
        [_] => Err(ProtocolError::CloseTooShort),
        [high, low, reason @ ..] => {
            let code = u16::from_be_bytes([*high, *low]);
            if !is_valid_close_code(code) {
                return Err(ProtocolError::InvalidCloseCode(code));
            }
            let reason = simdutf8::basic::from_utf8(reason)
                .map_err(|_| ProtocolError::InvalidCloseReason)?;
            Ok(CloseFrame {
                code: Some(code),
                reason,
            })
        }
    }
}
