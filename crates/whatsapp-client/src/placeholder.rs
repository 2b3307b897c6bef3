//! Asking this account's phone for a message this device could not read (a placeholder resend; the rules and
//! the bookkeeping that emits each message once are in [`whatsapp_core::placeholder`]). The session decides
//! when; this module sends the request, after the delay when there is one.

use std::time::Duration;

use tracing::{debug, warn};
use whatsapp_binary::Jid;
use whatsapp_core::placeholder::{PlaceholderRequests, resend_request};
use whatsapp_store::{AccountStore, Backend};

use crate::messages::SendResponse;
use crate::{Client, ClientError, MessageInfo, Shared};

impl<B: Backend> Shared<B> {
    /// The placeholder bookkeeping, locked.
    pub(crate) fn placeholder_requests(&self) -> std::sync::MutexGuard<'_, PlaceholderRequests> {
        self.placeholders
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl<B: Backend> Client<B> {
    /// Asks this account's phone for message `id` of `chat` sent by `sender` (this account's own JID for its own
    /// message), as whatsmeow's `BuildUnavailableMessageRequest` sent with `SendPeerMessage`. The phone answers
    /// with the message, emitted as an [`Event::Message`](crate::Event::Message) with
    /// [`MessageInfo::unavailable_request_id`] set (unless the sender's copy was emitted first).
    ///
    /// The client asks by itself for messages that did not decrypt or arrived without a copy for this device
    /// (see [`Event::UndecryptableMessage`](crate::Event::UndecryptableMessage)); this is for asking again.
    pub async fn request_message_from_phone(
        &self,
        chat: &Jid,
        sender: &Jid,
        id: &str,
    ) -> Result<SendResponse, ClientError> {
        let device = self.shared.account.device().await?;
        let own: Vec<&Jid> = [device.jid.as_ref(), device.lid.as_ref()]
            .into_iter()
            .flatten()
            .collect();
        let key = whatsapp_core::compose::message_key(&chat.to_non_ad(), Some(sender), id, &own);
        self.send_peer_message(&resend_request(key)).await
    }

    /// Asks the phone for the message `info` describes, beside the session: at once (`after` is `None`, the
    /// bookkeeping already says requested), or after `after` if the sender's new copy has not been emitted by
    /// then.
    pub(crate) fn request_from_phone(&self, info: &MessageInfo, after: Option<Duration>) {
        let client = self.clone();
        let (chat, sender, id) = (info.chat.clone(), info.sender.clone(), info.id.clone());
        tokio::spawn(async move {
            if let Some(delay) = after {
                tokio::time::sleep(delay).await;
                if !client.shared.placeholder_requests().due(&id) {
                    debug!(%id, "the sender's copy came in time; the phone is not asked");
                    return;
                }
            }
            match client.request_message_from_phone(&chat, &sender, &id).await {
                Ok(_) => debug!(%id, "asked the phone for a message this device could not read"),
                Err(error) => warn!(%id, %error, "could not ask the phone for a message"),
            }
        });
    }
}
