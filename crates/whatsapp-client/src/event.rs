//! What the client tells its user: the [`Event`] enum and the [`Events`] stream.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use std::sync::Arc;

use tokio::sync::mpsc;
use whatsapp_binary::{Jid, Node};
use whatsapp_core::call::CallMeta;
use whatsapp_core::compose::EditKind;
use whatsapp_core::delivery::{Deliveries, PayloadHash};
use whatsapp_core::group_notification::{GroupChange, JoinedGroup};
use whatsapp_core::media_retry::MediaRetryResult;
use whatsapp_core::newsletter::{
    LiveUpdate, NewsletterError, NewsletterMessage, NewsletterMetadata, NewsletterRole,
};
use whatsapp_core::presence::{ChatMedia, ChatState};
use whatsapp_core::privacy::{BlockAction, PrivacySettings};
use whatsapp_core::receipt::Receipt;
use whatsapp_core::stream::TempBanReason;
use whatsapp_proto::e2e::Message;

use whatsapp_appstate::{Action, CollectionName};
use whatsapp_proto::history_sync::Conversation;

use crate::ClientError;
use crate::history::HistoryCounts;

/// Something that happened on the connection.
#[derive(Debug)]
#[non_exhaustive]
pub enum Event {
    /// A QR code to show; the phone scans it to link this device. A new one follows after `timeout` until the
    /// server's references run out ([`Event::QrTimeout`]).
    Qr {
        /// The string to encode in the QR code (`https://wa.me/settings/linked_devices#...`).
        code: String,
        /// How long this code stays valid.
        timeout: Duration,
    },
    /// Every QR code expired without a scan; the client disconnected. Call `connect` again for new codes.
    QrTimeout,
    /// The phone linked this device. The server now restarts the stream and the client logs in by itself.
    PairSuccess {
        /// The device's phone-number JID.
        jid: Jid,
        /// The device's LID.
        lid: Jid,
        /// The business name, for business accounts.
        business_name: Option<String>,
        /// The phone's platform.
        platform: Option<String>,
    },
    /// Pairing failed; nothing was stored.
    PairError {
        /// Why.
        error: ClientError,
    },
    /// The server accepted the login; the connection is ready.
    Connected,
    /// The connection was lost; the client reconnects by itself unless auto-reconnect is off.
    Disconnected,
    /// The device was logged out (removed from the phone, or refused at login). The store of the account was
    /// deleted and the client does not reconnect.
    LoggedOut {
        /// Whether the server refused the login (`<failure>`) rather than ending a live stream.
        on_connect: bool,
        /// The failure reason or stream error code (401 for a removed device; 0 for [`Client::logout`](crate::Client::logout)).
        code: u32,
    },
    /// Another connection of this device took over; this client stopped.
    StreamReplaced,
    /// The account is banned for a while; the client stopped.
    TemporaryBan {
        /// Why.
        reason: TempBanReason,
        /// How long the ban lasts.
        expire: Duration,
    },
    /// The server considers this client version too old; the client stopped.
    ClientOutdated,
    /// The server ended the stream with a code this client does not know; it reconnects.
    StreamError {
        /// The code, 0 when absent.
        code: u32,
        /// The stanza.
        node: Node,
    },
    /// A keepalive ping went unanswered.
    KeepaliveTimeout {
        /// Consecutive unanswered pings.
        error_count: u32,
    },
    /// A keepalive ping was answered after failures.
    KeepaliveRestored,
    /// Another process took over the account's store lease (see `LEASE_TTL`); this client stopped.
    LeaseLost,
    /// A message arrived and was decrypted. Its Signal state is persisted and the server has its ack.
    Message {
        /// Who sent it, where, when.
        info: MessageInfo,
        /// The message. For a message this account sent from another device, the inner message of the
        /// `DeviceSentMessage`, with `info.chat` set to its destination.
        message: Box<Message>,
    },
    /// Someone's device received, read or played messages of ours (or this account's other device did).
    Receipt(Receipt),
    /// A message arrived that could not be decrypted or decoded.
    UndecryptableMessage {
        /// Who sent it, where, when.
        info: MessageInfo,
        /// Why it failed.
        error: ClientError,
        /// Whether the message is asked from this account's phone: at once for a message the server had no
        /// copy of ([`ClientError::MessageUnavailable`]), after
        /// [`ClientBuilder::phone_request_delay`](crate::ClientBuilder::phone_request_delay) for one that did
        /// not decrypt, unless the sender's new copy decrypts first. The phone's answer comes as an
        /// [`Event::Message`] with the same id and [`MessageInfo::unavailable_request_id`] set; either way the
        /// message is emitted once.
        requested_from_phone: bool,
    },
    /// The phone shared app-state sync keys; collections never synced are synced next.
    AppStateKeys {
        /// How many keys arrived.
        count: usize,
    },
    /// A change to this account's app state (a chat muted, pinned, archived, a contact renamed...), made on
    /// another device or, during a full sync, the state as it stands. The store's chat settings and contacts are
    /// already updated.
    AppState {
        /// The collection it came in.
        collection: CollectionName,
        /// What changed.
        action: Action,
        /// When the change was made (unix milliseconds; 0 when not given).
        timestamp: i64,
        /// Whether it came from a full sync (the current state) rather than as a new change.
        from_full_sync: bool,
    },
    /// This account's push name was set on one of its devices (an app-state `setting_pushName` change in the
    /// `critical_block` collection; whatsmeow `events.PushNameSetting`), or, during a full sync, the name as it
    /// stands. The device record already holds it, so it goes out with the next presence. The change is also
    /// reported as [`Event::AppState`] with [`Action::PushName`].
    PushNameSetting {
        /// The push name.
        name: String,
        /// When it was set (unix milliseconds; 0 when not given).
        timestamp: i64,
        /// Whether it came from a full sync (the current state) rather than as a new change.
        from_full_sync: bool,
    },
    /// A collection was brought up to date.
    AppStateSynced {
        /// The collection.
        collection: CollectionName,
        /// The version reached.
        version: u64,
        /// Whether it was synced from scratch.
        full_sync: bool,
    },
    /// A collection could not be synced (after one full resync on a verification failure).
    AppStateSyncError {
        /// The collection.
        collection: CollectionName,
        /// Why.
        error: String,
    },
    /// One conversation of a history sync, with its messages, as the phone sent it.
    HistoryConversation(Box<Conversation>),
    /// A history sync blob was read to its end; its conversations were emitted before this.
    HistorySynced {
        /// The kind of sync (`HistorySyncType`: 0 initial bootstrap, 2 full, 3 recent, 4 push names...).
        sync_type: i32,
        /// The blob's place among the sync's chunks.
        chunk_order: u32,
        /// How far the whole sync is, in percent, when the phone says.
        progress: Option<u32>,
        /// What the blob held.
        counts: HistoryCounts,
    },
    /// A history sync blob could not be downloaded or read.
    HistorySyncError {
        /// Why.
        error: String,
    },
    /// The phone answered a [`Client::request_media_retry`](crate::Client::request_media_retry) of this client.
    /// On success, download again with the new direct path in the message's
    /// [`MediaRef`](crate::MediaRef).
    MediaRetry {
        /// The message whose media was asked for.
        message_id: String,
        /// What the phone did, or why its answer could not be read.
        result: Result<MediaRetryResult, ClientError>,
    },
    /// A contact's presence changed (after [`Client::subscribe_presence`](crate::Client::subscribe_presence)).
    Presence {
        /// Whose presence.
        from: Jid,
        /// Whether they went offline.
        unavailable: bool,
        /// When they were last seen (unix seconds), when they went offline and share it.
        last_seen: Option<i64>,
    },
    /// Someone is typing, recording or stopped in a chat with this account.
    ChatPresence {
        /// The chat: the contact, or the group.
        chat: Jid,
        /// Who.
        sender: Jid,
        /// Typing or stopped.
        state: ChatState,
        /// Text or audio.
        media: ChatMedia,
    },
    /// Someone is calling this account. Decline with [`Client::reject_call`](crate::Client::reject_call).
    CallOffer {
        /// The call.
        call: CallMeta,
        /// The caller's platform, when given.
        platform: Option<String>,
        /// The caller's app version, when given.
        version: Option<String>,
    },
    /// A call was accepted (on another device of this account, or by the callee of our call).
    CallAccept {
        /// The call.
        call: CallMeta,
    },
    /// A callee's device is ringing.
    CallPreAccept {
        /// The call.
        call: CallMeta,
    },
    /// Transport candidates of a call arrived (not read).
    CallTransport {
        /// The call.
        call: CallMeta,
    },
    /// A call ended.
    CallTerminate {
        /// The call.
        call: CallMeta,
        /// Why, when given.
        reason: Option<String>,
    },
    /// A call was declined.
    CallReject {
        /// The call.
        call: CallMeta,
    },
    /// Another call element (`offer_notice`, `relaylatency`, or one this client does not know).
    CallOther {
        /// The call.
        call: CallMeta,
        /// The element's tag.
        tag: String,
    },
    /// The blocklist changed on another device of this account.
    Blocklist {
        /// `modify` when the whole list should be fetched again with
        /// [`Client::blocklist`](crate::Client::blocklist); otherwise absent and `changes` lists the changes.
        action: Option<String>,
        /// The new hash of the list.
        dhash: String,
        /// Each user blocked or unblocked.
        changes: Vec<(Jid, BlockAction)>,
    },
    /// Privacy settings changed on another device of this account; only the changed categories are listed.
    PrivacySettings(PrivacySettings),
    /// A contact gave this account a privacy token; it is stored and sent back with messages to them.
    PrivacyToken {
        /// The contact.
        from: Jid,
    },
    /// This account was added to a group, joined one, or created one on another device (a `w:gp2` `<create>`
    /// notification): the group as it stands.
    JoinedGroup(Box<JoinedGroup>),
    /// A group this account is in changed (a `w:gp2` notification): members added, removed, promoted or
    /// demoted; the subject, description or a setting changed; a new invite link; a group linked or unlinked.
    GroupChanged(Box<GroupChange>),
    /// A group notification could not be read (it was acknowledged all the same).
    GroupNotificationError {
        /// The group, when the stanza names one.
        group: Option<Jid>,
        /// Why.
        error: whatsapp_core::ResponseError,
    },
    /// A channel this account follows (or administers, from another device) posted. Channel posts are not
    /// encrypted; the stanza was acknowledged. [`NewsletterMessage::server_id`] names the post for
    /// [`Client::send_newsletter_reaction`](crate::Client::send_newsletter_reaction) and
    /// [`Client::mark_newsletter_viewed`](crate::Client::mark_newsletter_viewed).
    NewsletterMessage {
        /// The channel.
        newsletter: Jid,
        /// The post.
        message: Box<NewsletterMessage>,
    },
    /// New reaction and view counts of a channel's posts, after
    /// [`Client::subscribe_newsletter_live_updates`](crate::Client::subscribe_newsletter_live_updates).
    NewsletterLiveUpdate(Box<LiveUpdate>),
    /// This account followed a channel (on another device, or the server says so): the channel as it stands.
    NewsletterJoin(Box<NewsletterMetadata>),
    /// This account left a channel.
    NewsletterLeave {
        /// The channel.
        newsletter: Jid,
        /// The role it had.
        role: NewsletterRole,
    },
    /// This account muted or unmuted a channel.
    NewsletterMuteChange {
        /// The channel.
        newsletter: Jid,
        /// Whether it is muted now.
        muted: bool,
    },
    /// A channel post or notification could not be read (it was acknowledged all the same).
    NewsletterError {
        /// The channel, when the stanza names one.
        newsletter: Option<Jid>,
        /// Why.
        error: NewsletterError,
    },
}

/// The envelope of a received message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MessageInfo {
    /// The message id.
    pub id: String,
    /// The chat: the other user of a direct chat, or the group.
    pub chat: Jid,
    /// The sending device, as the server named it: by phone number, or by LID for a chat addressed by LID.
    pub sender: Jid,
    /// The sending device under its other address, when the server named it too (its LID for a sender named by
    /// phone number, its phone number for one named by LID).
    pub sender_alt: Option<Jid>,
    /// Whether another device of this account sent it.
    pub is_from_me: bool,
    /// Whether the chat is a group.
    pub is_group: bool,
    /// The server timestamp, unix seconds.
    pub timestamp: i64,
    /// The sender's push name, when the server sends it.
    pub push_name: Option<String>,
    /// Whether the message edits or deletes an earlier one (the stanza's `edit` attribute); the change itself is
    /// the message's `protocol_message` (or an emptied `reaction_message`).
    pub edit: Option<EditKind>,
    /// For a message this device could not read and this account's phone sent instead: the id of the request
    /// it answered (whatsmeow `UnavailableRequestID`). `None` for a message from its sender.
    pub unavailable_request_id: Option<String>,
}

/// An event on its way to the application; a message event carries its payload hash, so that it is counted
/// handled when the application asks for the next event.
#[derive(Debug)]
pub(crate) struct Emitted {
    pub(crate) event: Event,
    pub(crate) hash: Option<PayloadHash>,
}

/// The client's [`Deliveries`], shared by its connection task and [`Events`], and what wakes the connection
/// task when the application finished a message (its ack may go out, its plaintext be cleared).
#[derive(Debug, Default)]
pub(crate) struct Delivery {
    state: std::sync::Mutex<Deliveries>,
    pub(crate) finished: tokio::sync::Notify,
}

impl Delivery {
    pub(crate) fn lock(&self) -> std::sync::MutexGuard<'_, Deliveries> {
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The application finished with the message of `hash` (or will never see it).
    pub(crate) fn finish(&self, hash: PayloadHash) {
        self.lock().finished(hash);
        self.finished.notify_one();
    }
}

/// The stream of [`Event`]s of one client, in order. Nothing is dropped: the channel is unbounded, so read it.
///
/// A message event counts as handled once the next event is asked for ([`Events::recv`], or polling the
/// stream), [`Events::mark_handled`] is called, or `Events` is dropped. Only then are the message's ack and
/// delivery receipt sent, as whatsmeow's `SynchronousAck` does: the server keeps a message until it is acked,
/// so a process that stops while it handles one gets that message again after it restarts (at least once,
/// never lost; see docs/RELIABILITY.md).
#[derive(Debug)]
pub struct Events {
    receiver: mpsc::UnboundedReceiver<Emitted>,
    delivery: Arc<Delivery>,
    /// The message event last returned, until it is handled.
    current: Option<PayloadHash>,
}

impl Events {
    pub(crate) fn new(receiver: mpsc::UnboundedReceiver<Emitted>, delivery: Arc<Delivery>) -> Events {
        Events {
            receiver,
            delivery,
            current: None,
        }
    }

    /// The next event; `None` once the client and its connection task are gone. The event returned before
    /// counts as handled.
    pub async fn recv(&mut self) -> Option<Event> {
        self.mark_handled();
        let emitted = self.receiver.recv().await?;
        self.current = emitted.hash;
        Some(emitted.event)
    }

    /// Counts the event last returned as handled now, rather than when the next one is asked for: its ack and
    /// delivery receipt go out, and it is not given again after a restart. Does nothing if it was not a message
    /// or was handled already.
    pub fn mark_handled(&mut self) {
        if let Some(hash) = self.current.take() {
            self.delivery.finish(hash);
        }
    }
}

impl futures::Stream for Events {
    type Item = Event;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Event>> {
        self.mark_handled();
        match self.receiver.poll_recv(cx) {
            Poll::Ready(Some(emitted)) => {
                self.current = emitted.hash;
                Poll::Ready(Some(emitted.event))
            }
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl Drop for Events {
    /// No event will be read any more: the one returned last and every one still queued count as handled, so
    /// their acks go out and the server stops redelivering them.
    fn drop(&mut self) {
        self.mark_handled();
        self.receiver.close();
        while let Ok(emitted) = self.receiver.try_recv() {
            if let Some(hash) = emitted.hash {
                self.delivery.finish(hash);
            }
        }
    }
}
