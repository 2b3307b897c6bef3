//! A hermetic WhatsApp server for tests: it listens on 127.0.0.1, speaks the server side of the WhatsApp Web
//! multi-device protocol over real sockets, and hosts simulated primary phones that link companion devices.
//!
//! Layer: test support, beside the client. It depends on the transport (`whatsapp-noise`), the codec
//! (`whatsapp-binary`), the schema (`whatsapp-proto`) and the curve functions (`whatsapp-signal`), and never on the
//! client's engine: the server's and the phone's checks are written here, independently, so that a bug on one side
//! shows as a failure on the other.
//!
//! Entry types:
//! - [`TestServer`]: start one with [`TestServer::start`], give clients its [`TestServer::url`] and
//!   [`TestServer::trust_root`], inject faults ([`TestServer::drop_connections`],
//!   [`TestServer::send_stream_error`], [`TestServer::fail_logins`], [`TestServer::set_iq_delay`],
//!   [`TestServer::answer_pings`]), play a hostile server ([`TestServer::send_stanza`],
//!   [`TestServer::send_frame_bytes`], [`TestServer::send_frame_header_then_stall`],
//!   [`TestServer::dribble_next_message`], [`TestServer::replay_last_message`],
//!   [`TestServer::withhold_next_message`]) and inspect what it stored and what it refused
//!   ([`TestServer::protocol_violations`], [`TestServer::phone_decrypt_failures`]).
//! - [`Phone`]: an account's primary phone: it scans QR codes ([`Phone::scan_qr`]), enters pairing codes
//!   ([`Phone::enter_code`]) and unlinks devices.
//! - [`ServerEvent`] and [`ServerEvents`]: everything the server saw, to synchronise tests on instead of sleeping.
//!
//! What the server checks, and how it answers, follows protocol-facts §3.1 to §3.5: registration and login
//! payloads, the QR key binding, ADV signatures and HMACs, the code-pairing key bundle, prekey uploads; and for
//! messaging (§3.5-3.7) device lists (the phone as device 0, companions with their `key-index`), prekey bundles
//! (each one-time prekey handed out once; the phone's too) and digests, the addressing WhatsApp expects today
//! (one-to-one messages to the LID with `peer_recipient_pn`, LID groups by default with `addressing_mode="lid"`, no
//! copy for the sending device, the participant hash over every device), message attributes that agree with each
//! other and, checked by the phones that decrypt them, with the content (`type`, `mediatype`, `decrypt-fail`,
//! `edit`, `<meta>`), receipt kinds that fit the message they answer, groups (metadata,
//! creation, members and admin rights, settings, invite links, join requests, communities, and `w:gp2`
//! notifications of every change to the members' devices), the fan-out of one-to-one, single-device, group and
//! status (`status@broadcast`, to the devices it lists) `<message>` stanzas (each message id routed once; a repeat
//! gets the first ack) and of receipts to every addressed device, queued until each device acknowledges its copy; and (§3.9) a plain-HTTP media host on 127.0.0.1 named by
//! `media_conn`, which checks upload tokens and hashes.
//!
//! Phones also act after linking: they start Signal sessions with their companions and send them app-state key
//! shares ([`Phone::share_app_state_key`]) and history syncs ([`Phone::send_history_sync`]), and write app-state
//! patches ([`Phone::push_app_state`]), with a key they may keep to themselves ([`Phone::rotate_app_state_key`]) until
//! a companion asks for it in a peer message; the server keeps each account's app-state collections as ordered
//! patch logs (§3.8). A phone answers a companion's placeholder resend request with the messages it received.
//!
//! Between accounts it also routes presence to subscribers and chat states to live devices, answers user
//! lookups, photo and about-text queries, keeps privacy settings (enforcing last seen, about and photo
//! visibility) and blocklists (a blocked user's messages are acknowledged but not delivered), hands out privacy
//! tokens and call offers from phones ([`TestServer::send_privacy_token`], [`TestServer::place_call`]), and answers
//! business-profile queries for accounts given one ([`TestServer::set_business_profile`]). It keeps
//! channels (newsletters): GraphQL `w:mex` metadata requests answered in JSON, followers and their mute state,
//! posts from the owner delivered to followers' devices, reactions and views counted and pushed as live updates.
//!
//! What it does not do: it is not a WhatsApp server for production (no persistence, no TLS, no rate limits), it
//! carries no call media, its phones read the copies addressed to them ([`Phone::received_messages`]) but do not
//! answer them (no receipts, no retries), and its certificate root is its own, so only a client explicitly configured with [`TestServer::trust_root`]
//! talks to it.

#![forbid(unsafe_code)]

mod app_state;
mod business;
mod connection;
mod events;
mod groups;
mod hostile;
mod media;
mod message_attrs;
mod newsletters;
mod phone;
mod primary;
mod routing;
mod server;
mod social;
mod state;
mod validate;

pub use business::{BusinessDay, BusinessInfo};
pub use events::{ServerEvent, ServerEvents};
pub use phone::{Phone, PhoneError, Tamper};
pub use primary::PhoneMessage;
pub use server::{ServerConfig, TestServer};
/// The JID type of stanzas and events, re-exported from `whatsapp-binary`.
pub use whatsapp_binary::Jid;
/// The trust root type clients are given, re-exported from `whatsapp-noise`.
pub use whatsapp_noise::TrustRoot;
