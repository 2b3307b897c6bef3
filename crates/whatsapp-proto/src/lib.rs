//! Protobuf types of the WhatsApp Web multi-device protocol.
//!
//! This is the schema layer: [prost] types generated at build time from the `.proto` files in the
//! workspace's `proto/` directory (compiled by protox, so no system `protoc` is needed). The schema is split
//! into one module per protocol area, the way the protocol uses it:
//!
//! | module | what it holds |
//! |---|---|
//! | [`e2e`] | `Message`, the end-to-end encrypted message content, and everything it embeds |
//! | [`handshake`] | `HandshakeMessage` (Noise handshake frames) and `ClientPayload` (login/registration) |
//! | [`cert`] | the server's Noise certificate chain |
//! | [`adv`] | ADV device identities that bind a companion device to its account |
//! | [`companion_reg`] | companion registration: `DeviceProps` and pairing payloads |
//! | [`signal`] | Signal wire messages and record structures |
//! | [`server_sync`] | app-state sync (syncd) patches, snapshots and mutations |
//! | [`sync_action`] | the values inside app-state mutations (`SyncActionValue`, `SyncActionData`) |
//! | [`history_sync`] | history sync blobs (`HistorySync`, `Conversation`, `WebMessageInfo`) |
//! | [`mms_retry`] | media re-upload requests and notifications |
//!
//! Decoding keeps working when WhatsApp adds fields: prost skips unknown fields.
//!
//! This crate holds no hand-written logic: it does not validate messages, and it does no I/O.
//!
//! `Debug` never prints secrets: messages that carry media keys, message secrets, private or chain keys, or
//! tokens show those fields only by their length (`<32 bytes redacted>`). The build script lists every such field
//! and refuses a schema whose key-like `bytes` fields it has not classified.

/// The error of a protobuf that does not decode.
pub use prost::DecodeError;
pub use prost::Message as ProtoMessage;

macro_rules! schema_modules {
    ($($(#[$doc:meta])* $name:ident),* $(,)?) => {
        $(
            $(#[$doc])*
            #[allow(missing_docs, unreachable_pub, clippy::all, clippy::pedantic)]
            pub mod $name {
                include!(concat!(env!("OUT_DIR"), "/", stringify!($name), ".rs"));
            }
            include!(concat!(env!("OUT_DIR"), "/", stringify!($name), "_debug.rs"));
        )*
    };
}

schema_modules! {
    /// ADV device identities: the account's signature binding a companion device (`waAdv` in whatsmeow).
    adv,
    /// The Noise server certificate chain (`waCert`).
    cert,
    /// Companion registration: `DeviceProps` and pairing payloads (`waCompanionReg`).
    companion_reg,
    /// End-to-end message content: `Message` and what it embeds (`waE2E`).
    e2e,
    /// Noise handshake frames and the login/registration `ClientPayload` (`waWa6`).
    handshake,
    /// History sync blobs (`waHistorySync`).
    history_sync,
    /// Media re-upload requests and notifications (`waMmsRetry`).
    mms_retry,
    /// App-state sync patches, snapshots and mutations (`waServerSync`).
    server_sync,
    /// Signal wire messages and record structures.
    signal,
    /// The values carried inside app-state mutations (`waSyncAction`).
    sync_action,
}

/// `Debug` of a secret `bytes` field: its length, never its content.
struct Redacted<'a, T>(&'a T);

impl core::fmt::Debug for Redacted<'_, Vec<u8>> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "<{} bytes redacted>", self.0.len())
    }
}

impl core::fmt::Debug for Redacted<'_, Option<Vec<u8>>> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self.0 {
            Some(bytes) => f.debug_tuple("Some").field(&Redacted(bytes)).finish(),
            None => f.write_str("None"),
        }
    }
}

impl core::fmt::Debug for Redacted<'_, Vec<Vec<u8>>> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_list().entries(self.0.iter().map(Redacted)).finish()
    }
}

/// `Debug` of an enum field of a redacted message, by variant name as prost's derived `Debug` prints it (the
/// number when it is not a known variant).
struct EnumField<'a, T, E>(&'a T, core::marker::PhantomData<E>);

/// One enum value by name, or its number.
struct EnumValue<E>(i32, core::marker::PhantomData<E>);

impl<E: TryFrom<i32> + core::fmt::Debug> core::fmt::Debug for EnumValue<E> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match E::try_from(self.0) {
            Ok(value) => value.fmt(f),
            Err(_) => self.0.fmt(f),
        }
    }
}

impl<E: TryFrom<i32> + core::fmt::Debug> core::fmt::Debug for EnumField<'_, i32, E> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        EnumValue::<E>(*self.0, core::marker::PhantomData).fmt(f)
    }
}

impl<E: TryFrom<i32> + core::fmt::Debug> core::fmt::Debug for EnumField<'_, Option<i32>, E> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self.0 {
            Some(value) => f
                .debug_tuple("Some")
                .field(&EnumValue::<E>(*value, core::marker::PhantomData))
                .finish(),
            None => f.write_str("None"),
        }
    }
}
