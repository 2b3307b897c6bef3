//! The binary-node codec and JIDs of the WhatsApp Web multi-device protocol.
//!
//! This is the codec layer, a leaf crate: every stanza a client sends or receives goes through it. The format
//! (protocol-facts §3.10) is a compact XML: nodes with a tag, attributes and content, strings drawn from token
//! dictionaries (version 3) or packed as digits, and typed JIDs.
//!
//! Entry types:
//! - [`Node`] with [`Attrs`], [`Value`] and [`Content`]: the owned tree, with builders
//!   (`Node::new("iq").attr("type", "get").children([...])`), typed attribute accessors returning [`AttrError`],
//!   and an XML-like `Display` for logs;
//! - [`encode`] / [`encode_frame`]: node to bytes; [`decode`] / [`decode_shared`] / [`decode_frame`]: bytes to node,
//!   with [`unpack_frame`] handling the flags byte and zlib;
//! - [`NodeTree`] and [`NodeRef`]: the zero-copy decoded form, borrowing raw strings and payloads from the input;
//! - [`Jid`]: a WhatsApp address, parsed from and displayed as its string form.
//!
//! Hostile input is bounded by [`MAX_DEPTH`], [`MAX_LIST_LEN`] and [`MAX_FRAME_SIZE`]; every malformed input is a
//! [`DecodeError`], never a panic.
//!
//! Feature `serde`: the JSON form of the project's binary test vectors (`{"tag", "attrs", "content"}`), and JIDs as
//! strings.
//!
//! What it does not do: no I/O, no async, no cryptography, no Noise framing. It does not know what a stanza means
//! (the protocol engine does) and does not redact secrets when printing.

mod decode;
mod encode;
mod error;
mod frame;
pub mod jid;
mod node;
#[cfg(feature = "serde")]
mod serde_impl;
mod token;

pub use decode::{
    Children, ContentRef, JidRef, MAX_DEPTH, MAX_LIST_LEN, NodeRef, NodeTree, ValueRef, decode, decode_shared,
};
pub use encode::{encode, encode_frame, encode_into};
pub use error::DecodeError;
pub use frame::{MAX_FRAME_SIZE, decode_frame, unpack_frame};
pub use jid::{Jid, JidParseError};
pub use node::{AttrError, Attrs, Content, Node, Value};
pub use token::DICTIONARY_VERSION;
