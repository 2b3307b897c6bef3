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
