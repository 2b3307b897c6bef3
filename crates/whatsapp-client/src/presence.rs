//! Presence and chat state: going online and offline, following contacts' presence, typing indicators, and
//! the push name that goes with presence (stanzas in `whatsapp_core::presence`).

use tokio::sync::oneshot;
use tracing::warn;
use whatsapp_binary::{Jid, Node};
use whatsapp_core::presence::{
    ChatMedia, ChatPresence, ChatState, Presence, PresenceUpdate, chat_state_stanza, presence_stanza,
    subscribe_stanza,
};
use whatsapp_store::{AccountStore, AppStateKeyStore, Backend};

use crate::session::Command;
use crate::{ACTIVE_BY_PRESENCE, ACTIVE_FORCED, Client, ClientError, Event, Shared};

impl<B: Backend> Client<B> {
    /// Marks this account online or offline. The server shows contacts the push name sent with it, so a push
    /// name must be set first ([`Client::set_push_name`]; whatsmeow refuses the same way with `ErrNoPushName`).
    /// Call it with [`Presence::Available`] after connecting to receive contacts' presence.
    ///
    /// While this account is available, delivery receipts for incoming messages are plain (two grey ticks for
    /// the sender); otherwise they say `inactive`, which the sender's apps do not show, as WhatsApp Web does in
    /// the background (whatsmeow `presence.go` SendPresence).
    pub async fn send_presence(&self, presence: Presence) -> Result<(), ClientError> {
        use std::sync::atomic::Ordering;
        let device = self.shared.account.device().await?;
        if device.push_name.is_empty() {
            return Err(ClientError::NoPushName);
        }
        self.send_stanza(presence_stanza(presence, &device.push_name))
            .await?;
        let active = &self.shared.active_receipts;
        // A forced setting stays as it is.
        let _ = match presence {
            Presence::Available => {
                active.compare_exchange(0, ACTIVE_BY_PRESENCE, Ordering::SeqCst, Ordering::SeqCst)
            }
            Presence::Unavailable => {
                active.compare_exchange(ACTIVE_BY_PRESENCE, 0, Ordering::SeqCst, Ordering::SeqCst)
            }
        };
        Ok(())
    }

    /// Sends plain delivery receipts (shown to senders as delivered) whatever this client's presence (`true`),
    /// or goes back to following it (`false`: `inactive` receipts until [`Client::send_presence`] says
    /// available again), as whatsmeow's `SetForceActiveDeliveryReceipts`.
    pub fn set_force_active_delivery_receipts(&self, active: bool) {
        let value = if active { ACTIVE_FORCED } else { 0 };
        self.shared
            .active_receipts
            .store(value, std::sync::atomic::Ordering::SeqCst);
    }

    /// Sets this account's push name (the display name contacts see) in the store; it goes out with the next
    /// [`Client::send_presence`]. Once the phone has shared an app-state key, the name is also sent as an
    /// app-state `setting_pushName` change (whatsmeow `appstate.BuildSettingPushName`), so the account's other
    /// devices learn it ([`Event::PushNameSetting`]); before that, only this device knows it.
    pub async fn set_push_name(&self, name: &str) -> Result<(), ClientError> {
        let mut device = self.shared.account.device().await?;
        device.push_name = name.to_owned();
        self.shared.account.put_device(&device).await?;
        if self.shared.account.app_state_sync_keys().await?.is_empty() {
            return Ok(());
        }
        let now_ms = crate::unix_now().as_millis() as i64;
        self.send_app_state(&whatsapp_appstate::PatchInfo::push_name(name, now_ms))
            .await
    }

    /// Asks the server to forward `user`'s presence as [`Event::Presence`], with our privacy token for them
    /// when we have one. The server may only forward presence while this account is itself available.
    pub async fn subscribe_presence(&self, user: &Jid) -> Result<(), ClientError> {
        let token = self.privacy_token_for(user).await?;
        self.send_stanza(subscribe_stanza(user, token.as_deref())).await
    }

    /// Tells `chat` that this account is typing ([`ChatState::Composing`], or recording with
    /// [`ChatMedia::Audio`]) or stopped ([`ChatState::Paused`]).
    pub async fn send_chat_presence(
        &self,
        chat: &Jid,
        state: ChatState,
        media: ChatMedia,
    ) -> Result<(), ClientError> {
        self.send_stanza(chat_state_stanza(chat, &state, &media)).await
    }

    /// Sends a stanza that the server does not answer, once it is written to the connection.
    pub(crate) async fn send_stanza(&self, node: Node) -> Result<(), ClientError> {
        let (reply, answer) = oneshot::channel();
        self.command(Command::Send { node, reply }).await?;
        answer.await.map_err(|_| ClientError::ConnectionClosed)?
    }
}

impl<B: Backend> Shared<B> {
    /// A `<presence>` from the server, as an event.
    pub(crate) fn on_presence(&self, node: &Node) {
        match PresenceUpdate::parse(node) {
            Ok(update) => self.emit(Event::Presence {
                from: update.from,
                unavailable: update.unavailable,
                last_seen: update.last_seen,
            }),
            Err(error) => warn!(%error, "malformed presence"),
        }
    }

    /// A `<chatstate>` from the server, as an event.
    pub(crate) fn on_chat_state(&self, node: &Node) {
        match ChatPresence::parse(node) {
            Ok(chat) => self.emit(Event::ChatPresence {
                chat: chat.chat,
                sender: chat.sender,
                state: chat.state,
                media: chat.media,
            }),
            Err(error) => warn!(%error, "malformed chat state"),
        }
    }
}
