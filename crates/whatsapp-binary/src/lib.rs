//! The binary-node codec and JIDs of the WhatsApp Web multi-device protocol.
//!
//! This is the codec layer, a leaf crate: every stanza a client sends or receives goes through it.
//!
//! Entry types:
//! - [`Jid`]: a WhatsApp address (user, agent/domain, device, integrator, server), parsed from and displayed as
//!   its string form (`user@s.whatsapp.net`, `user:3@lid`, `123-456@g.us`...).
//!
//! What it does not do: no I/O, no async, no cryptography.
//! It does not know what a stanza means; the protocol engine does.

pub mod jid;

pub use jid::{Jid, JidParseError};
