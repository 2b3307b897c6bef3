//! WhatsApp channels (newsletters): metadata, the followed list, creating, following, muting, reading posts with
//! their reaction and view counts, reacting, marking posts viewed, live updates and posting. The stanzas are
//! built and read by `whatsapp_core::newsletter`; this module sends them and waits for the answers, and turns
//! what the server pushes (posts, live updates, `mex` notifications) into events.
//!
//! Metadata requests are GraphQL (`w:mex`) IQs in JSON: a refusal arrives as a GraphQL error,
//! [`ClientError::Newsletter`] with [`NewsletterError::GraphQl`] (404 for an unknown channel). Posting to a
//! channel needs an admin role in it; the server refuses anyone else's post with an ack error
//! ([`ClientError::Iq`], 403).
//!
//! Channel posts are not end-to-end encrypted: they travel as `<plaintext>` and are neither decrypted nor kept
//! in the Signal store. Media for channels (uploaded unencrypted) is not supported.

use std::time::Duration;

use whatsapp_binary::{Jid, Node};
use whatsapp_core::compose::EditKind;
use whatsapp_core::newsletter::{
    self, NewsletterError, NewsletterMessage, NewsletterMetadata, NewsletterNotification,
};
use whatsapp_proto::e2e::Message;
use whatsapp_store::Backend;

use crate::{Client, ClientError, Event, unix_now};

/// What the server said about a post to a channel.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewsletterSendResponse {
    /// The message id this client chose.
    pub id: String,
    /// The number the server gave the post in its channel (what reactions and views name).
    pub server_id: u64,
    /// The server's timestamp of the post, unix seconds, when its ack carries one.
    pub timestamp: Option<i64>,
}

impl From<NewsletterSendResponse> for crate::SendResponse {
    fn from(sent: NewsletterSendResponse) -> Self {
        crate::SendResponse {
            id: sent.id,
            timestamp: sent.timestamp,
        }
    }
}

fn new_message_id() -> String {
    whatsapp_core::message::message_id(unix_now().as_secs(), None, &rand::random())
}

impl<B: Backend> Client<B> {
    /// The metadata of channel `jid`, with this account's role and mute state in
    /// [`viewer`](NewsletterMetadata::viewer).
    pub async fn newsletter_info(&self, jid: &Jid) -> Result<NewsletterMetadata, ClientError> {
        let answer = self.send_iq(newsletter::info_query(jid)).await?;
        Ok(newsletter::parse_info(&answer)?)
    }

    /// The metadata of the channel an invite link (`https://whatsapp.com/channel/…`) or its code names. Its
    /// [`viewer`](NewsletterMetadata::viewer) is absent.
    pub async fn newsletter_info_with_invite(&self, invite: &str) -> Result<NewsletterMetadata, ClientError> {
        let answer = self.send_iq(newsletter::info_with_invite_query(invite)).await?;
        Ok(newsletter::parse_info(&answer)?)
    }

    /// The channels this account follows (or owns).
    pub async fn subscribed_newsletters(&self) -> Result<Vec<NewsletterMetadata>, ClientError> {
        let answer = self.send_iq(newsletter::subscribed_query()).await?;
        Ok(newsletter::parse_subscribed(&answer)?)
    }

    /// Creates a channel owned by this account (an empty `description` sets none) and returns it as the server
    /// made it.
    pub async fn create_newsletter(
        &self,
        name: &str,
        description: &str,
    ) -> Result<NewsletterMetadata, ClientError> {
        let answer = self.send_iq(newsletter::create_query(name, description)?).await?;
        Ok(newsletter::parse_created(&answer)?)
    }

    /// Follows (joins) channel `jid`; its new posts then arrive as [`Event::NewsletterMessage`].
    pub async fn follow_newsletter(&self, jid: &Jid) -> Result<(), ClientError> {
        let answer = self.send_iq(newsletter::follow_query(jid)).await?;
        Ok(newsletter::parse_mex_ok(&answer)?)
    }

    /// Unfollows (leaves) channel `jid`.
    pub async fn unfollow_newsletter(&self, jid: &Jid) -> Result<(), ClientError> {
        let answer = self.send_iq(newsletter::unfollow_query(jid)).await?;
        Ok(newsletter::parse_mex_ok(&answer)?)
    }

    /// Mutes (or unmutes) the notifications of channel `jid` for this account.
    pub async fn set_newsletter_muted(&self, jid: &Jid, muted: bool) -> Result<(), ClientError> {
        let answer = self.send_iq(newsletter::mute_query(jid, muted)).await?;
        Ok(newsletter::parse_mex_ok(&answer)?)
    }

    /// Up to `count` posts of channel `jid`, with their reaction and view counts; with `before`, only posts with
    /// a smaller server id (to page back).
    pub async fn newsletter_messages(
        &self,
        jid: &Jid,
        count: u32,
        before: Option<u64>,
    ) -> Result<Vec<NewsletterMessage>, ClientError> {
        let answer = self
            .send_iq(newsletter::messages_query(jid, count, before))
            .await?;
        Ok(newsletter::parse_messages(&answer)?)
    }

    /// Asks for the live updates of channel `jid` (new reaction and view counts, as
    /// [`Event::NewsletterLiveUpdate`]) and returns for how long they come; ask again before that runs out.
    pub async fn subscribe_newsletter_live_updates(&self, jid: &Jid) -> Result<Duration, ClientError> {
        let answer = self.send_iq(newsletter::live_updates_query(jid)).await?;
        Ok(Duration::from_secs(newsletter::parse_live_updates_duration(
            &answer,
        )?))
    }

    /// Reacts to post `server_id` of channel `jid`; an empty `reaction` removes this account's reaction. Waits
    /// for the server's ack.
    pub async fn send_newsletter_reaction(
        &self,
        jid: &Jid,
        server_id: u64,
        reaction: &str,
    ) -> Result<(), ClientError> {
        let stanza = newsletter::reaction_stanza(jid, server_id, reaction, &new_message_id());
        self.send_and_wait_ack(stanza).await.map(drop)
    }

    /// Marks posts of channel `jid` as viewed, which counts toward their view counts (this is not the read state
    /// of the chat on this account's other devices). Waits for the server's ack.
    pub async fn mark_newsletter_viewed(&self, jid: &Jid, server_ids: &[u64]) -> Result<(), ClientError> {
        let receipt = newsletter::view_receipt(jid, server_ids, &new_message_id())?;
        self.send_and_wait_ack(receipt).await.map(drop)
    }

    /// Posts `message` to channel `jid`, which this account must administer, and returns the post's server id.
    /// [`Client::send_message`] to a channel JID does the same. Edits and deletions of posts, and media, are not
    /// supported.
    pub async fn send_newsletter_message(
        &self,
        jid: &Jid,
        message: &Message,
    ) -> Result<NewsletterSendResponse, ClientError> {
        if !jid.is_newsletter() {
            return Err(ClientError::InvalidRequest("not a channel JID"));
        }
        if EditKind::for_message(message).is_some() {
            return Err(ClientError::Unsupported("edits and deletions of channel posts"));
        }
        let id = new_message_id();
        let ack = self
            .send_and_wait_ack(newsletter::post_stanza(jid, &id, message))
            .await?;
        let ack = newsletter::parse_post_ack(&ack)?;
        Ok(NewsletterSendResponse {
            id,
            server_id: ack.server_id,
            timestamp: ack.timestamp,
        })
    }
}

/// The event for a post a channel pushed ([`Event::NewsletterMessage`]), or the error that it could not be read.
pub(crate) fn message_event(stanza: &Node) -> Event {
    match newsletter::parse_incoming(stanza) {
        Ok((newsletter, message)) => Event::NewsletterMessage {
            newsletter,
            message: Box::new(message),
        },
        Err(error) => stanza_error(stanza, error),
    }
}

/// The events of a `newsletter` (live update) or `mex` notification; none for other notifications.
pub(crate) fn notification_events(notification: &Node) -> Vec<Event> {
    match notification.optional_str_attr("type") {
        Some(newsletter::LIVE_UPDATE_NOTIFICATION_TYPE) => {
            match newsletter::parse_live_update(notification) {
                Ok(update) => vec![Event::NewsletterLiveUpdate(Box::new(update))],
                Err(error) => vec![stanza_error(notification, error)],
            }
        }
        Some(newsletter::MEX_NOTIFICATION_TYPE) => match newsletter::parse_mex_notification(notification) {
            Ok(changes) => changes.into_iter().map(change_event).collect(),
            Err(error) => vec![stanza_error(notification, error)],
        },
        _ => Vec::new(),
    }
}

fn change_event(change: NewsletterNotification) -> Event {
    match change {
        NewsletterNotification::Join(metadata) => Event::NewsletterJoin(metadata),
        NewsletterNotification::Leave { jid, role } => Event::NewsletterLeave {
            newsletter: jid,
            role,
        },
        NewsletterNotification::MuteChange { jid, muted } => Event::NewsletterMuteChange {
            newsletter: jid,
            muted,
        },
        // The enum is non-exhaustive: a change added to the engine later is reported, not lost silently.
        _ => Event::NewsletterError {
            newsletter: None,
            error: NewsletterError::Invalid("notification of an unknown kind"),
        },
    }
}

fn stanza_error(stanza: &Node, error: NewsletterError) -> Event {
    tracing::warn!(%error, tag = %stanza.tag, "unreadable channel stanza");
    Event::NewsletterError {
        newsletter: stanza
            .optional_jid_attr("from")
            .ok()
            .flatten()
            .filter(Jid::is_newsletter),
        error,
    }
}
