//! The Signal protocol as WhatsApp uses it, written from Signal's published specifications.
//!
//! Layer: protocol engine below the client, above `whatsapp-proto` (wire and record types).
//!
//! Entry types:
//! * [`curve`]: [`PublicKey`], [`PrivateKey`], [`KeyPair`] — X25519 agreement and XEdDSA signatures
//!   compatible with libsignal.
//!
//! What this crate does not do: no I/O, no clock, no randomness of its own (the caller passes an RNG), no
//! Kyber / PQXDH, and no persistence: functions take records and return updated records, the caller stores them.

#![forbid(unsafe_code)]

pub mod curve;
mod error;

pub use curve::{KeyPair, PrivateKey, PublicKey};
pub use error::Error;
