//! The Signal protocol as WhatsApp uses it, written from Signal's published specifications (XEdDSA, X3DH,
//! Double Ratchet) with WhatsApp's parameters.
//!
//! Layer: protocol engine below the client, above `whatsapp-proto` (wire and record types).
//!
//! Entry types:
//! * [`curve`]: [`PublicKey`], [`PrivateKey`], [`KeyPair`] — X25519 agreement and XEdDSA signatures
//!   compatible with libsignal.
//! * [`session`]: [`SessionRecord`], [`process_bundle`], [`encrypt`], [`decrypt`], [`decrypt_pre_key`] — 1:1
//!   sessions as pure functions over a record.
//! * [`sender_key`]: [`SenderKeyRecord`], [`group_encrypt`], [`group_decrypt`] — group messages.
//! * [`message`]: the four wire messages and their parsers.
//! * [`padding`]: WhatsApp's `n × n` message padding, deliberately separate from the cipher.
//! * [`store`]: async store traits the client implements, and functions that load records, run the protocol,
//!   save the results and surface identity trust decisions ([`Error::UntrustedIdentity`]).
//!
//! What this crate does not do: no I/O, no clock, no randomness of its own (the caller passes an RNG or a
//! [`KeySource`]), no Kyber / PQXDH, and no persistence: functions take records and return updated records,
//! the caller stores them.

#![forbid(unsafe_code)]

mod crypto;
pub mod curve;
mod error;
pub mod message;
pub mod padding;
pub mod sender_key;
pub mod session;
pub mod store;

pub use curve::{KeyPair, PrivateKey, PublicKey};
pub use error::Error;
pub use message::{
    CiphertextMessage, PreKeySignalMessage, SenderKeyDistributionMessage, SenderKeyMessage, SignalMessage,
};
pub use sender_key::{
    SenderKeyRecord, create_distribution_message, group_decrypt, group_encrypt, process_distribution_message,
};
pub use session::{
    KeySource, LocalIdentity, PreKeyBundle, PreKeysForMessage, SessionRecord, decrypt, decrypt_pre_key,
    encrypt, process_bundle,
};
