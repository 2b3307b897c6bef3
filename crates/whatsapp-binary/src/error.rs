//! The error of decoding frames and nodes.

use crate::decode::MAX_DEPTH;
use crate::frame::MAX_FRAME_SIZE;

/// Why bytes are not a valid frame or node. Byte offsets count from the start of the node bytes (after the
/// flags byte and any inflation).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// The input ended inside an item.
    #[error("unexpected end of input at byte {at} while reading {what}")]
    UnexpectedEof {
        /// Offset where the missing bytes should start.
        at: usize,
        /// What was being read.
        what: &'static str,
    },
    /// A length field promises more bytes or items than the input holds.
    #[error("{what} at byte {at} declares {declared}, but only {available} bytes remain")]
    LengthOverrun {
        /// Offset of the length field.
        at: usize,
        /// What was being read.
        what: &'static str,
        /// The declared length (bytes, or items for lists).
        declared: usize,
        /// Bytes left in the input.
        available: usize,
    },
    /// A byte that is not valid where it appears (a tag in 240..=244, a string where a list must be...).
    #[error("invalid byte 0x{byte:02x} at byte {at} where {expected} was expected")]
    InvalidTag {
        /// Offset of the byte.
        at: usize,
        /// The byte.
        byte: u8,
        /// What may appear there.
        expected: &'static str,
    },
    /// A node whose list size is 0, or whose tag is empty.
    #[error("empty node (no tag) at byte {at}")]
    EmptyNode {
        /// Offset of the node.
        at: usize,
    },
    /// An attribute key, node tag or JID part that is not a string (a JID, a list...).
    #[error("{what} at byte {at} is not a string")]
    NotAString {
        /// Offset of the item.
        at: usize,
        /// What it should have been ("attribute key", "node tag"...).
        what: &'static str,
    },
    /// A raw string that is not UTF-8.
    #[error("string at byte {at} is not valid UTF-8")]
    InvalidUtf8 {
        /// Offset of the string's bytes.
        at: usize,
    },
    /// A NIBBLE_8 or HEX_8 string with an invalid digit, a misplaced padding nibble or an impossible length.
    #[error("invalid packed string at byte {at}: {reason}")]
    InvalidPacked {
        /// Offset of the packed string.
        at: usize,
        /// What is wrong.
        reason: &'static str,
    },
    /// A JID with a missing or wrong server.
    #[error("invalid JID at byte {at}: {reason}")]
    InvalidJid {
        /// Offset of the JID.
        at: usize,
        /// What is wrong.
        reason: &'static str,
    },
    /// Nodes nested deeper than [`MAX_DEPTH`].
    #[error("nodes nested deeper than {MAX_DEPTH} levels at byte {at}")]
    TooDeep {
        /// Offset of the node that is too deep.
        at: usize,
    },
    /// Bytes left over after the node (whatsmeow: "leftover bytes").
    #[error("{count} bytes left over after the node")]
    TrailingBytes {
        /// How many.
        count: usize,
    },
    /// A frame without even its flags byte.
    #[error("empty frame: no flags byte")]
    EmptyFrame,
    /// Input or inflated frame larger than [`MAX_FRAME_SIZE`].
    #[error("frame larger than {MAX_FRAME_SIZE} bytes")]
    FrameTooLarge,
    /// The zlib stream of a compressed frame is corrupt or truncated.
    #[error("bad zlib data in compressed frame: {reason}")]
    Zlib {
        /// What the inflater reported.
        reason: String,
    },
}
