//! Polls (protocol-facts §3.9): creating one, voting, and reading the votes that arrive. A poll carries a message
//! secret; both sides keep it (the sender when sending, the others when receiving), and each vote is encrypted
//! with a key derived from it, so only those who saw the poll can read the votes.

use whatsapp_binary::Jid;
use whatsapp_core::secret::{self, Original};
use whatsapp_proto::e2e::message::PollUpdateMessage;
use whatsapp_store::{AccountStore, Backend, MessageSecret, SecretStore};

use crate::{Client, ClientError, Message, MessageInfo, SendResponse};

impl<B: Backend> Client<B> {
    /// Sends a poll to a user or group: `question` with `options`, at most `selectable` of which may be chosen
    /// (0 for any number).
    pub async fn send_poll(
        &self,
        to: &Jid,
        question: &str,
        options: &[&str],
        selectable: u32,
    ) -> Result<SendResponse, ClientError> {
        let message = secret::poll_creation(question, options, selectable, rand::random());
        self.send_message(to, &message).await
    }

    /// Votes in the poll `poll` (as received, or as sent by this account) for the options named `chosen`; an
    /// empty list withdraws the vote.
    pub async fn vote(&self, poll: &MessageInfo, chosen: &[&str]) -> Result<SendResponse, ClientError> {
        let poll_sender = poll.sender.to_non_ad();
        // The voter as the poll's chat names it: by LID unless the poll came by phone number (whatsmeow
        // `msgsecret.go` EncryptPollVote).
        let device = self.shared.account.device().await?;
        let own = match (poll_sender.server(), &device.lid) {
            (Jid::DEFAULT_USER_SERVER, _) | (_, None) => self.own_jid().await?,
            (_, Some(lid)) => lid.to_non_ad(),
        };
        let stored = self
            .shared
            .account
            .message_secret(&poll.chat, &poll_sender, &poll.id)
            .await?
            .ok_or(ClientError::MissingSecret)?;
        let original = Original {
            id: &poll.id,
            sender: &poll_sender,
            secret: &stored,
        };
        let vote = secret::poll_vote(
            &poll.chat,
            &original,
            poll.is_from_me,
            &own,
            chosen,
            &rand::random(),
            crate::unix_now().as_millis() as i64,
        );
        self.send_message(&poll.chat, &vote).await
    }

    /// The options (as SHA-256 hashes of their names; compare with [`option_hashes`](crate::option_hashes)) chosen in a vote
    /// that arrived as `update` in the message `info`.
    pub async fn decrypt_poll_vote(
        &self,
        info: &MessageInfo,
        update: &PollUpdateMessage,
    ) -> Result<Vec<[u8; 32]>, ClientError> {
        let key = update
            .poll_creation_message_key
            .as_ref()
            .ok_or_else(|| ClientError::Malformed("vote without the poll's key".to_owned()))?;
        let id = key
            .id
            .as_deref()
            .ok_or_else(|| ClientError::Malformed("vote without the poll's id".to_owned()))?;
        // Whose poll it is, as the voter names it: their own, the other side of a chat, or a group member.
        let named = if key.from_me == Some(true) {
            Some(info.sender.clone())
        } else if info.is_group {
            key.participant.as_deref().and_then(|p| p.parse().ok())
        } else {
            key.remote_jid.as_deref().and_then(|r| r.parse().ok())
        };
        let poll_sender = named
            .ok_or_else(|| ClientError::Malformed("vote names no poll sender".to_owned()))?
            .to_non_ad();
        let stored = self
            .shared
            .account
            .message_secret(&info.chat, &poll_sender, id)
            .await?
            .ok_or(ClientError::MissingSecret)?;
        let original = Original {
            id,
            sender: &poll_sender,
            secret: &stored,
        };
        Ok(secret::decrypt_poll_vote(update, &original, &info.sender)?)
    }

    async fn own_jid(&self) -> Result<Jid, ClientError> {
        let device = self.shared.account.device().await?;
        Ok(device.jid.as_ref().ok_or(ClientError::NotConnected)?.to_non_ad())
    }

    /// Keeps the secret a message carries, so that votes and other replies encrypted with it can be read and
    /// written later.
    pub(crate) async fn remember_secret(&self, chat: &Jid, sender: &Jid, id: &str, message: &Message) {
        if let Some(secret) = secret::secret_of(message) {
            let stored = MessageSecret {
                chat: chat.to_non_ad(),
                sender: sender.to_non_ad(),
                id: id.to_owned(),
                secret: secret.to_vec(),
            };
            if let Err(error) = self.shared.account.put_message_secrets(&[stored]).await {
                tracing::warn!(%error, id, "cannot store a message secret");
            }
        }
    }
}
