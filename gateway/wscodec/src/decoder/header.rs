//! Reading and checking one frame header (RFC 6455 5.2), which may arrive
//! split across inputs.
//!
//! Checks run as early as the bytes allow: everything decidable from the
//! first two bytes (reserved bits, opcode, mask bit, control frame rules,
//! message sequencing) fails before the extended length arrives; length
//! encoding and size limits fail as soon as the length is known, before a
//! byte of payload is buffered.

use super::{Decoder, Limits, Role};
use crate::ProtocolError;
use crate::frame::{MAX_CONTROL_PAYLOAD, MAX_HEADER_LEN, OpCode};

const FIN_BIT: u8 = 0x80;
const RESERVED_BITS: u8 = 0x70;
const OPCODE_BITS: u8 = 0x0F;
const MASK_BIT: u8 = 0x80;
const LENGTH_BITS: u8 = 0x7F;
const LENGTH_16: u8 = 126;
const LENGTH_64: u8 = 127;

/// A checked frame header.
#[derive(Clone, Copy, Debug)]
pub(super) struct FrameHeader {
    pub fin: bool,
    pub opcode: OpCode,
    pub payload_len: u64,
    /// All zero when the frame is not masked.
    pub mask: [u8; 4],
}

impl Decoder {
    /// Reads a header from the front of `input`, keeping a partial one in
    /// `self.header`. Returns the bytes used and the header once complete.
    pub(super) fn read_header(
        &mut self,
        input: &[u8],
        limits: &Limits,
    ) -> Result<(usize, Option<FrameHeader>), ProtocolError> {
        // Fast path: the whole header is in `input`, nothing carried over.
        if self.header_len == 0 && input.len() >= 2 {
            let header_len = self.check_first_bytes(input[0], input[1])?;
            if let Some(bytes) = input.get(..header_len) {
                return Ok((header_len, Some(self.check_header(bytes, limits)?)));
            }
        }
        self.read_split_header(input, limits)
    }

    fn read_split_header(
        &mut self,
        input: &[u8],
        limits: &Limits,
    ) -> Result<(usize, Option<FrameHeader>), ProtocolError> {
        let mut used = 0;
        loop {
            let have = usize::from(self.header_len);
            let want = if have < 2 {
                2
            } else {
                self.check_first_bytes(self.header[0], self.header[1])?
            };
            if have == want {
                break;
            }
            let take = (want - have).min(input.len() - used);
            if take == 0 {
                return Ok((used, None));
            }
            self.header[have..have + take].copy_from_slice(&input[used..used + take]);
            self.header_len += take as u8;
            used += take;
        }
        let header_len = usize::from(self.header_len);
        self.header_len = 0;
        let header = self.check_header(&self.header[..header_len], limits)?;
        Ok((used, Some(header)))
    }

    /// Checks the two fixed header bytes; returns the full header length.
    fn check_first_bytes(&self, first: u8, second: u8) -> Result<usize, ProtocolError> {
        if first & RESERVED_BITS != 0 {
            return Err(ProtocolError::ReservedBits {
                bits: (first & RESERVED_BITS) >> 4,
            });
        }
        let opcode_bits = first & OPCODE_BITS;
        let opcode =
            OpCode::from_u8(opcode_bits).ok_or(ProtocolError::ReservedOpcode(opcode_bits))?;
        let masked = second & MASK_BIT != 0;
        match (self.role, masked) {
            (Role::Server, false) => return Err(ProtocolError::UnmaskedFrame),
            (Role::Client, true) => return Err(ProtocolError::MaskedFrame),
            _ => {}
        }
        let length_bits = second & LENGTH_BITS;
        if opcode.is_control() {
            if first & FIN_BIT == 0 {
                return Err(ProtocolError::FragmentedControlFrame);
            }
            if usize::from(length_bits) > MAX_CONTROL_PAYLOAD {
                return Err(ProtocolError::ControlFrameTooLong);
            }
        }
        match (opcode, self.message_opcode) {
            (OpCode::Continuation, None) => return Err(ProtocolError::UnexpectedContinuation),
            (OpCode::Text | OpCode::Binary, Some(_)) => {
                return Err(ProtocolError::ExpectedContinuation);
            }
            _ => {}
        }
        let length_bytes = match length_bits {
            LENGTH_16 => 2,
            LENGTH_64 => 8,
            _ => 0,
        };
        let header_len = 2 + length_bytes + if masked { 4 } else { 0 };
        debug_assert!(header_len <= MAX_HEADER_LEN);
        Ok(header_len)
    }

    /// Checks a complete header whose first two bytes already passed
    /// [`Self::check_first_bytes`]: length encoding, then size limits.
    fn check_header(&self, bytes: &[u8], limits: &Limits) -> Result<FrameHeader, ProtocolError> {
        let opcode_bits = bytes[0] & OPCODE_BITS;
        let opcode =
            OpCode::from_u8(opcode_bits).ok_or(ProtocolError::ReservedOpcode(opcode_bits))?;
        let (payload_len, mask_at) = match bytes[1] & LENGTH_BITS {
            LENGTH_16 => {
                let len = u64::from(u16::from_be_bytes([bytes[2], bytes[3]]));
                if len <= 125 {
                    return Err(ProtocolError::NonMinimalLength { len });
                }
                (len, 4)
            }
            LENGTH_64 => {
                let mut be = [0u8; 8];
                be.copy_from_slice(&bytes[2..10]);
                let len = u64::from_be_bytes(be);
                if len >> 63 != 0 {
                    return Err(ProtocolError::LengthTopBitSet);
                }
                if len <= u64::from(u16::MAX) {
                    return Err(ProtocolError::NonMinimalLength { len });
                }
                (len, 10)
            }
            len => (u64::from(len), 2),
        };
        let mut mask = [0u8; 4];
        if bytes[1] & MASK_BIT != 0 {
            mask.copy_from_slice(&bytes[mask_at..mask_at + 4]);
        }
        self.check_limits(opcode, payload_len, limits)?;
        Ok(FrameHeader {
            fin: bytes[0] & FIN_BIT != 0,
            opcode,
            payload_len,
            mask,
        })
    }

    /// Refuses a frame whose announced length breaks a limit, so no byte of
    /// it is ever buffered.
    fn check_limits(
        &self,
        opcode: OpCode,
        payload_len: u64,
        limits: &Limits,
    ) -> Result<(), ProtocolError> {
        let max_frame = limits.max_frame_bytes;
        if max_frame != 0 && payload_len > max_frame {
            return Err(ProtocolError::FrameTooLarge {
                len: payload_len,
                max: max_frame,
            });
        }
        let kind = match opcode {
            OpCode::Text | OpCode::Binary => opcode,
            // `check_first_bytes` refused a continuation with no message.
            OpCode::Continuation => self.message_opcode.unwrap_or(OpCode::Binary),
            OpCode::Close | OpCode::Ping | OpCode::Pong => return Ok(()),
        };
        let max_message = limits.message_limit(kind);
        let message_len = (self.message_len as u64).saturating_add(payload_len);
        if max_message != 0 && message_len > max_message as u64 {
            return Err(ProtocolError::MessageTooLarge {
                len: message_len,
                max: max_message,
            });
        }
        Ok(())
    }
}
