//! The protocol engine of a WhatsApp Web companion device, without I/O.
//!
//! This layer knows the rules of the protocol and nothing of sockets, timers or runtimes: functions take stanzas
//! ([`whatsapp_binary::Node`]), keys and the current time, and return stanzas to send and data to persist. The
//! `whatsapp-client` crate drives it over a real connection; tests drive it directly.
//!
//! What is here:
//! - [`payload`]: the `ClientPayload` of the handshake (registration of a new device, login of a paired one).
//! - [`pair`]: QR-code pairing: the QR string and the checks of the phone's `pair-success`.
//! - [`pair_code`]: pairing with a phone-number code.
//! - [`iq`]: request/response matching with deadlines on a passed-in clock.
//! - [`policy`]: keepalive timing and prekey refills.
//! - [`stream`]: `<success>`, `<failure>` and `<stream:error>` classified into what the client does next.
//! - [`connection`]: every incoming stanza sorted into the handler it needs, and the small replies (acks, IQ
//!   results, `active`, logout).
//! - [`device`]: a new device's keys, prekey generation and the upload stanza.
//! - [`usync`], [`prekeys`]: device lists and prekey bundles of other users, to encrypt for their devices.
//! - [`message`]: message ids, per-device encryption into `<message>` stanzas, reading and decrypting them.
//! - [`compose`]: reactions, edits and revokes, and the stanza `edit` attribute.
//! - [`group`]: sender keys and their distribution, and the group `<message>`.
//! - [`group_admin`]: group and community management requests (create, info, list, leave, participants,
//!   settings, invite links, join requests) and the readers of their answers.
//! - [`group_notification`]: `w:gp2` notifications read into typed group changes.
//! - [`history`]: history sync blobs inflated and read one conversation at a time.
//! - [`media`]: media key expansion and streaming encryption and decryption with the file hashes.
//! - [`media_info`]: a file's mimetype by content, image dimensions and thumbnail, audio and video durations.
//! - [`media_retry`]: asking the phone to upload expired media again, and reading its answer.
//! - [`receipt`]: delivery, read and played receipts, sent and received.
//! - [`delivery`]: when a received message counts as handled, and its ack and delivery receipt may go out.
//! - [`retry`]: retry receipts for messages that did not decrypt, and the resend that answers them.
//! - [`presence`]: this account's presence, presence subscriptions and chat states, sent and received.
//! - [`user`]: whether numbers are on WhatsApp, other users' about text, photos and devices.
//! - [`business`]: business profiles (address, email, hours, categories, websites).
//! - [`privacy`]: privacy settings, the blocklist, privacy tokens and `account_sync` notifications.
//! - [`call`]: incoming call signalling read into events, and declining a call.
//! - [`newsletter`]: channels: metadata over GraphQL (`w:mex`), following, muting, posts, reactions, views and
//!   live updates.
//! - [`signal_store`]: the Signal store traits over an account, staging every change for one transaction.
//!
//! It does not open connections, read clocks, sleep, or store anything.

pub mod app_state;
pub mod business;
pub mod call;
pub mod compose;
pub mod connection;
pub mod delivery;
pub mod device;
pub mod error;
pub mod group;
pub mod group_admin;
pub mod group_notification;
pub mod history;
pub mod iq;
pub mod media;
pub mod media_info;
pub mod media_retry;
pub mod message;
pub mod newsletter;
pub mod pair;
pub mod pair_code;
pub mod payload;
pub mod placeholder;
pub mod policy;
pub mod prekeys;
pub mod presence;
pub mod privacy;
pub mod receipt;
pub mod retry;
pub mod secret;
pub mod signal_store;
pub mod stream;
pub mod user;
pub mod usync;

#[cfg(test)]
mod testing;

pub use error::{PairError, ResponseError, StanzaError};

/// The server's own JID, `s.whatsapp.net`: the `to` of IQs addressed to the server.
pub fn server_jid() -> whatsapp_binary::Jid {
    whatsapp_binary::Jid::server_only(whatsapp_binary::Jid::DEFAULT_USER_SERVER)
}
