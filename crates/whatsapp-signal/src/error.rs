//! The crate's error type.

/// Everything that can go wrong in this crate.
///
/// Decoding errors never carry the offending bytes, so an error can be logged without leaking key material.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A public key was not 33 bytes starting with the type byte 0x05, nor 32 raw bytes.
    #[error("bad public key encoding ({len} bytes)")]
    BadPublicKey {
        /// Length of the rejected encoding.
        len: usize,
    },
    /// A private key was not 32 bytes.
    #[error("bad private key length ({len} bytes)")]
    BadPrivateKey {
        /// Length of the rejected encoding.
        len: usize,
    },
    /// A message was too short or its protobuf body did not decode.
    #[error("malformed {what}")]
    Malformed {
        /// What was being decoded.
        what: &'static str,
    },
    /// A message's version byte is not version 3.
    #[error("unsupported message version {version:#04x}")]
    UnsupportedVersion {
        /// The version byte found.
        version: u8,
    },
    /// A required field was missing from a message or record.
    #[error("missing field {field}")]
    MissingField {
        /// The name of the missing field.
        field: &'static str,
    },
    /// The message authentication code of a message did not verify.
    #[error("bad message authentication code")]
    BadMac,
    /// A signature (signed prekey or sender-key message) did not verify.
    #[error("bad signature")]
    BadSignature,
    /// The ciphertext did not decrypt (bad padding or length).
    #[error("ciphertext does not decrypt")]
    BadCiphertext,
    /// The message counter was already used (a replay or a duplicate delivery).
    #[error("duplicate message (counter {counter})")]
    DuplicateMessage {
        /// The counter (or sender-key iteration) of the duplicate.
        counter: u32,
    },
    /// The message counter is further ahead than the skipped-key limit allows.
    #[error("message counter {counter} is too far ahead of {current}")]
    CounterTooFarAhead {
        /// The counter of the message.
        counter: u32,
        /// The current counter of the chain.
        current: u32,
    },
    /// No session (or no usable session state) exists for the message.
    #[error("no session for this message")]
    NoSession,
    /// The one-time prekey a message refers to is not in the store.
    #[error("unknown one-time prekey {id}")]
    UnknownPreKey {
        /// The prekey id.
        id: u32,
    },
    /// The signed prekey a message refers to is not in the store.
    #[error("unknown signed prekey {id}")]
    UnknownSignedPreKey {
        /// The signed prekey id.
        id: u32,
    },
    /// No sender-key state matches the message's key id.
    #[error("no sender key state for key id {key_id}")]
    NoSenderKeyState {
        /// The key id of the message.
        key_id: u32,
    },
    /// The remote identity key is not trusted for this address; the caller decides whether to accept it.
    #[error("untrusted identity for {address}")]
    UntrustedIdentity {
        /// The Signal address (`user[_agent]:device`) whose identity changed.
        address: String,
    },
    /// A stored record did not decode.
    #[error("bad stored record: {what}")]
    BadRecord {
        /// Which record.
        what: &'static str,
    },
    /// WhatsApp padding was absent or inconsistent.
    #[error("bad padding")]
    BadPadding,
    /// The store failed.
    #[error("store error: {0}")]
    Store(String),
}
