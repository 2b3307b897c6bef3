//! Sending one-to-one messages: device lists, prekey bundles for devices without a session, per-device
//! encryption (the recipient's devices get the message, this account's other devices a `DeviceSentMessage`), and
//! the server's ack (protocol-facts §3.6).
//!
//! The pipeline runs in the caller's task and talks to the connection task only through IQs and one stanza send;
//! the Signal lock is held for the local encrypt-and-commit step alone, never across a network wait.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use rand::RngCore;
use tokio::sync::oneshot;
use tracing::{debug, warn};
use whatsapp_binary::{Jid, Node};
use whatsapp_core::compose;
use whatsapp_core::message::{
    StanzaAttrs, encrypt_for_devices, message_id, message_stanza, peer_stanza, protocol_address,
};
use whatsapp_core::receipt::{ReceiptKind, read_receipt};
use whatsapp_core::retry::{MAX_RETRIES_ANSWERED, RECENT_MESSAGES, RetryRequest, resend_stanza};
use whatsapp_core::signal_store::StagedSignalStore;
use whatsapp_core::{group, prekeys, usync};
use whatsapp_proto::ProtoMessage;
use whatsapp_proto::e2e::{Message, message::DeviceSentMessage};
use whatsapp_store::{AccountStore, Backend, SenderKeyStore, SessionStore};

use crate::session::Command;
use crate::{Client, ClientError, unix_now};

/// A message sent lately, kept to answer retry receipts.
#[derive(Debug)]
pub(crate) struct Recent {
    id: String,
    to: Jid,
    message: Message,
}

/// Retry bookkeeping: receipts sent per message id, requests answered per (device, message id). Both are
/// bounded by dropping everything once they grow past [`MAX_TRACKED`]; a count that restarts only allows a few
/// more attempts.
#[derive(Debug, Default)]
pub(crate) struct RetryCounters {
    sent: HashMap<String, u32>,
    answered: HashMap<(String, String), u32>,
}

/// How many message ids the retry counters track before they start over.
const MAX_TRACKED: usize = 4096;

impl<B: Backend> crate::Shared<B> {
    /// Counts one more retry receipt for `id` and returns the new count.
    pub(crate) fn retries_for(&self, id: &str) -> u32 {
        let mut counters = self.retries.lock().unwrap_or_else(|p| p.into_inner());
        if counters.sent.len() >= MAX_TRACKED {
            counters.sent.clear();
        }
        let count = counters.sent.entry(id.to_owned()).or_default();
        *count += 1;
        *count
    }

    fn remember(&self, recent: Recent) {
        let mut queue = self.recent.lock().unwrap_or_else(|p| p.into_inner());
        if queue.len() >= RECENT_MESSAGES {
            queue.pop_front();
        }
        queue.push_back(recent);
    }

    fn recent(&self, id: &str) -> Option<(Jid, Message)> {
        let queue = self.recent.lock().unwrap_or_else(|p| p.into_inner());
        queue
            .iter()
            .rev()
            .find(|recent| recent.id == id)
            .map(|recent| (recent.to.clone(), recent.message.clone()))
    }
}

/// What the server said about a sent message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SendResponse {
    /// The message id.
    pub id: String,
    /// The server's timestamp of the message, unix seconds, when its ack carries one.
    pub timestamp: Option<i64>,
}

impl<B: Backend> Client<B> {
    /// Sends a text message to a user (a phone-number or LID JID) or a group.
    pub async fn send_text(&self, to: &Jid, text: &str) -> Result<SendResponse, ClientError> {
        let message = Message {
            conversation: Some(text.to_owned()),
            ..Default::default()
        };
        self.send_message(to, &message).await
    }

    /// Encrypts `message` for every device of `to` and every other device of this account, sends it, and waits
    /// for the server's ack. To a channel (`…@newsletter`) it posts `message` unencrypted instead, as
    /// [`Client::send_newsletter_message`] does.
    ///
    /// The message gets a new id. A caller that tries a failed send again should use
    /// [`Client::send_message_with_id`] with the id of the first attempt instead, so that a first attempt that
    /// did reach the server (its ack lost with the connection) is not delivered twice.
    pub async fn send_message(&self, to: &Jid, message: &Message) -> Result<SendResponse, ClientError> {
        let id = self.generate_message_id().await?;
        self.send_message_with_id(to, message, &id).await
    }

    /// A new message id, made as WhatsApp Web makes them (`3EB0` and 18 hex digits, whatsmeow
    /// `GenerateMessageID`), for [`Client::send_message_with_id`].
    pub async fn generate_message_id(&self) -> Result<String, ClientError> {
        let own = self.shared.own_jid().await?;
        Ok(message_id(unix_now().as_secs(), Some(own.user()), &random_16()))
    }

    /// [`Client::send_message`] under a message id the caller chose (one from
    /// [`Client::generate_message_id`]): sending the same message again under the same id is idempotent, as
    /// WhatsApp routes an id once (whatsmeow `SendRequestExtra::ID`). Keep the id when a send failed with an
    /// error and is tried again: if the first attempt reached the server, the second only gets its ack.
    pub async fn send_message_with_id(
        &self,
        to: &Jid,
        message: &Message,
        id: &str,
    ) -> Result<SendResponse, ClientError> {
        let allowed = |b: u8| b.is_ascii_alphanumeric() || b == b'-' || b == b'_';
        if id.is_empty() || id.len() > MAX_MESSAGE_ID_LEN || !id.bytes().all(allowed) {
            return Err(ClientError::InvalidRequest(
                "a message id is 1 to 64 ASCII letters, digits, '-' or '_'",
            ));
        }
        if let Some(pacer) = &self.shared.pacer {
            pacer.acquire().await;
        }
        if to.is_group() {
            return self.send_group_message(to, message, id).await;
        }
        if to.is_status_broadcast() {
            return Err(ClientError::Unsupported(
                "a status update needs its audience: use send_status",
            ));
        }
        if to.is_newsletter() {
            return self.send_newsletter_message(to, message).await.map(Into::into);
        }
        if to.is_broadcast_list() {
            return Err(ClientError::Unsupported("sending to broadcast lists"));
        }
        let shared = &self.shared;
        let device = shared.account.device().await?;
        let own = device.jid.clone().ok_or(ClientError::NotConnected)?;
        let (to, peer_recipient_pn) = self.dm_destination(&to.to_non_ad()).await?;
        // This device as the chat names it: by LID in a LID chat (whatsmeow `send.go` SendMessage).
        let sender = match (to.server(), &device.lid) {
            (Jid::LID_SERVER, Some(lid)) => Jid::with_device(lid.user(), Jid::LID_SERVER, own.device()),
            _ => own.clone(),
        };

        let users = [to.clone(), sender.to_non_ad()];
        let mut recipients = Vec::new();
        let mut own_devices = Vec::new();
        // Every device of the query counts towards the participant hash, this one included (whatsmeow
        // `send.go` sendDM); only its copy is skipped.
        let mut listed = Vec::new();
        for user in self.devices_of(&users).await? {
            for jid in user.devices {
                listed.push(jid.clone());
                if jid.user() == to.user() && jid.server() == to.server() {
                    recipients.push(jid);
                } else if jid.user() == sender.user() && jid.device() != sender.device() {
                    own_devices.push(jid);
                }
            }
        }
        if recipients.is_empty() {
            return Err(ClientError::Response(whatsapp_core::ResponseError::Missing(
                "recipient devices",
            )));
        }
        if !listed.contains(&sender) {
            listed.push(sender.clone());
        }
        let phash = usync::participant_hash(&listed);
        let recipients = shared.signal_addresses(recipients).await?;
        let own_devices = shared.signal_addresses(own_devices).await?;
        let bundles = self
            .bundles_for_new_sessions(recipients.iter().chain(&own_devices))
            .await?;

        // A contact's privacy token goes back to them with every message (whatsmeow `tctoken.go`); without one,
        // a cstoken derived from the NCT salt stands in.
        let token = self.privacy_token_for(&to).await?;
        let cstoken = match token {
            Some(_) => None,
            None => self.cstoken_for(&to).await?,
        };
        let id = id.to_owned();
        let stanza = {
            let _signal = shared.signal_lock.lock().await;
            let stage = StagedSignalStore::new(&shared.account, &device);
            let mut rng = rand::rngs::OsRng;
            start_sessions(&stage, bundles, &mut rng).await?;
            let recipients = with_sessions(&stage, recipients).await?;
            let own_devices = with_sessions(&stage, own_devices).await?;
            let mut encrypted = encrypt_for(&stage, &recipients, &message.encode_to_vec(), &mut rng).await?;
            if !own_devices.is_empty() {
                let sent = device_sent(&to, message.clone());
                encrypted.extend(encrypt_for(&stage, &own_devices, &sent.encode_to_vec(), &mut rng).await?);
            }
            let identity = device.account_identity.clone().unwrap_or_default();
            // No `phash` on a one-to-one message: the server answers with its own when a device was missed.
            let stanza = message_stanza(&id, &to, &StanzaAttrs::of(message), &encrypted, &identity);
            let stanza = match &peer_recipient_pn {
                Some(pn) => stanza.attr("peer_recipient_pn", pn.clone()),
                None => stanza,
            };
            // Committed before sending: a ratchet step that never leaves is harmless, a sent message whose
            // state was lost is not.
            stage.commit().await?;
            match (token, cstoken) {
                (Some(token), _) => with_child(stanza, whatsapp_core::privacy::tctoken_node(&token)),
                (None, Some(cstoken)) => with_child(stanza, whatsapp_core::privacy::cstoken_node(&cstoken)),
                (None, None) => stanza,
            }
        };
        shared.remember(Recent {
            id: id.clone(),
            to: to.clone(),
            message: message.clone(),
        });
        // Kept under this device as the chat names it, as the replies will name it (whatsmeow `send.go`).
        self.remember_secret(&to, &sender, &id, message).await;
        debug!(%id, %to, "sending message");
        let ack = self.send_and_wait_ack(stanza).await?;
        if ack
            .optional_str_attr("phash")
            .is_some_and(|server| server != phash)
        {
            self.reach_missed_devices(&id, &to, &users, &listed).await?;
        }
        self.issue_privacy_token(&to).await;
        Ok(SendResponse {
            id,
            timestamp: ack.optional_i64_attr("t").ok().flatten(),
        })
    }

    /// Where a one-to-one message to `to` goes, and the phone number beside it (whatsmeow `send.go` SendMessage):
    /// a user whose LID is known, or can be learned from the server, is written to by LID with
    /// `peer_recipient_pn`; one without a LID by phone number.
    async fn dm_destination(&self, to: &Jid) -> Result<(Jid, Option<Jid>), ClientError> {
        match to.server() {
            Jid::LID_SERVER => {
                let pn = self.shared.pn_of(to).await?;
                Ok((to.clone(), pn.map(|pn| Jid::new(pn, Jid::DEFAULT_USER_SERVER))))
            }
            Jid::DEFAULT_USER_SERVER => {
                let lid = match self.shared.lid_of(to).await? {
                    Some(lid) => Some(lid),
                    None => match self.user_info(std::slice::from_ref(to)).await {
                        Ok(info) => info
                            .into_iter()
                            .find(|user| user.jid.user() == to.user())
                            .and_then(|user| user.lid)
                            .map(|lid| lid.user().to_owned()),
                        Err(error) => {
                            debug!(%to, %error, "could not ask for the LID; writing by phone number");
                            None
                        }
                    },
                };
                Ok(match lid {
                    Some(lid) => (Jid::new(lid, Jid::LID_SERVER), Some(to.clone())),
                    None => (to.clone(), None),
                })
            }
            _ => Ok((to.clone(), None)),
        }
    }

    /// Answers a retry receipt for a message of ours: encrypts it again for the one device that asked (with a new
    /// session when the receipt carries keys or it is not the first attempt) and sends it to that device alone.
    pub(crate) async fn answer_retry(&self, receipt: &Node) {
        if let Err(error) = self.try_answer_retry(receipt).await {
            warn!(%error, "could not answer a retry receipt");
        }
    }

    async fn try_answer_retry(&self, receipt: &Node) -> Result<(), ClientError> {
        let shared = &self.shared;
        let request = RetryRequest::parse(receipt)?;
        {
            let mut counters = shared.retries.lock().unwrap_or_else(|p| p.into_inner());
            if counters.answered.len() >= MAX_TRACKED {
                counters.answered.clear();
            }
            let answered = counters
                .answered
                .entry((request.device.to_string(), request.id.clone()))
                .or_default();
            *answered += 1;
            if *answered > MAX_RETRIES_ANSWERED {
                return Err(ClientError::Unsupported(
                    "more retry requests for one message than answered",
                ));
            }
        }
        self.resend(&request).await
    }

    /// Sends message `request.id` again to the one device `request.device` (a retry answer, or a device a stale
    /// device list missed): encrypted anew, with a new session when the request carries keys, when this is not
    /// the first attempt, or when there is no session yet.
    pub(crate) async fn resend(&self, request: &RetryRequest) -> Result<(), ClientError> {
        let shared = &self.shared;
        let (to, message) = shared.recent(&request.id).ok_or(ClientError::Unsupported(
            "retry for a message not among the recent ones",
        ))?;
        let device = shared.account.device().await?;
        let own = device.jid.clone().ok_or(ClientError::NotConnected)?;
        let own_address = device.lid.clone().unwrap_or_else(|| own.clone());
        let sender_key_chat = request.chat.is_group() || request.chat.is_status_broadcast();
        // The stanza describes the message itself, not the wrapper or the sender key added below.
        let attrs = StanzaAttrs::of(&message);
        let plaintext = if sender_key_chat {
            // Filled in under the Signal lock below: the message with this device's sender key, so the copy
            // also repairs a missing or broken sender key.
            message
        } else if shared
            .own_devices()
            .await?
            .iter()
            .any(|own| own.user() == request.device.user() && own.server() == request.device.server())
        {
            device_sent(&to, message)
        } else {
            message
        };
        let target = shared.signal_address(&request.device).await?;
        let no_session = shared.account.session(&target.signal_address()).await?.is_none();
        let bundle = match request.bundle.clone() {
            Some(bundle) => Some(bundle),
            None if request.count >= 2 || no_session => {
                let answer = self
                    .send_iq(prekeys::bundle_query(std::slice::from_ref(&request.device)))
                    .await?;
                prekeys::parse_bundles(&answer)?
                    .into_iter()
                    .find_map(|(_, bundle)| bundle.ok())
            }
            None => None,
        };
        let stanza = {
            let _signal = shared.signal_lock.lock().await;
            let stage = StagedSignalStore::new(&shared.account, &device);
            let mut rng = rand::rngs::OsRng;
            let address = protocol_address(&target);
            if let Some(bundle) = bundle {
                whatsapp_signal::store::process_bundle(&stage, &address, &bundle, &mut rng).await?;
            }
            let plaintext = if sender_key_chat {
                let skdm = group::distribution_message(&stage, &request.chat, &own_address, &mut rng).await?;
                Message {
                    sender_key_distribution_message: skdm.sender_key_distribution_message,
                    ..plaintext
                }
            } else {
                plaintext
            };
            let copy = encrypt_for(
                &stage,
                &[(request.device.clone(), target.clone())],
                &plaintext.encode_to_vec(),
                &mut rng,
            )
            .await?
            .pop()
            .ok_or(ClientError::Unsupported("nothing to resend"))?;
            let identity = device.account_identity.clone().unwrap_or_default();
            let stanza = resend_stanza(request, &attrs, unix_now().as_secs() as i64, &copy, &identity);
            stage.commit().await?;
            stanza
        };
        debug!(id = %request.id, device = %request.device, count = request.count, "resending after a retry receipt");
        self.send_and_wait_ack(stanza).await.map(drop)
    }

    /// Reacts to message `id` of `chat` with `emoji` (an empty string removes this account's reaction). `sender`
    /// is the message's author, `None` for this account's own message.
    pub async fn send_reaction(
        &self,
        chat: &Jid,
        sender: Option<&Jid>,
        id: &str,
        emoji: &str,
    ) -> Result<SendResponse, ClientError> {
        let key = self.message_key(chat, sender, id).await?;
        let now = unix_now().as_millis() as i64;
        self.send_message(chat, &compose::reaction(key, emoji, now)).await
    }

    /// Deletes message `id` of `chat` for everyone: this account's own message (`sender` `None`), or as a group
    /// admin someone else's.
    pub async fn revoke(
        &self,
        chat: &Jid,
        sender: Option<&Jid>,
        id: &str,
    ) -> Result<SendResponse, ClientError> {
        let key = self.message_key(chat, sender, id).await?;
        self.send_message(chat, &compose::revoke(key)).await
    }

    /// Replaces the content of this account's message `id` in `chat`.
    pub async fn edit_message(
        &self,
        chat: &Jid,
        id: &str,
        new: Message,
    ) -> Result<SendResponse, ClientError> {
        let now = unix_now().as_millis() as i64;
        self.send_message(chat, &compose::edit(&chat.to_non_ad(), id, new, now))
            .await
    }

    async fn message_key(
        &self,
        chat: &Jid,
        sender: Option<&Jid>,
        id: &str,
    ) -> Result<whatsapp_proto::e2e::MessageKey, ClientError> {
        let device = self.shared.account.device().await?;
        let own: Vec<&Jid> = [device.jid.as_ref(), device.lid.as_ref()]
            .into_iter()
            .flatten()
            .collect();
        Ok(compose::message_key(&chat.to_non_ad(), sender, id, &own))
    }

    /// Tells the senders that messages of `chat` were read (or, with [`ReceiptKind::Played`], played). `sender`
    /// names the author of group messages; the first id is the receipt's, the others are listed.
    pub async fn mark_read(
        &self,
        chat: &Jid,
        sender: Option<&Jid>,
        ids: &[String],
        kind: ReceiptKind,
    ) -> Result<(), ClientError> {
        let receipt = read_receipt(ids, chat, sender, &kind, unix_now().as_secs() as i64).ok_or(
            ClientError::Malformed("a receipt needs at least one message id".to_owned()),
        )?;
        self.send_and_wait_ack(receipt).await.map(drop)
    }

    /// Sends to a group: the members' devices that have not received this device's sender key yet get it
    /// (pairwise, in the same stanza), everyone gets the message encrypted once with the sender key.
    async fn send_group_message(
        &self,
        group: &Jid,
        message: &Message,
        id: &str,
    ) -> Result<SendResponse, ClientError> {
        let members = self.members_of(group).await?;
        self.send_with_sender_key(group, &members.users, members.lid, message, id)
            .await
    }

    /// Posts a status update: `message` goes to `status@broadcast` for the devices of `recipients` and this
    /// account's other devices, encrypted once with this device's sender key for the status broadcast; devices
    /// that do not hold the key yet get it pairwise in the same stanza, as in a group.
    ///
    /// The audience is the caller's: whatsmeow derives it from the account's status privacy setting (contacts,
    /// an allow list or a deny list) and the contact store, which leaves the decision of who sees a status to
    /// settings this library does not manage. Pass the users (phone-number or LID JIDs, without device) who may
    /// see it; this account is added.
    pub async fn send_status(
        &self,
        message: &Message,
        recipients: &[Jid],
    ) -> Result<SendResponse, ClientError> {
        let device = self.shared.account.device().await?;
        let own = device.jid.clone().ok_or(ClientError::NotConnected)?;
        let mut users: Vec<Jid> = recipients.iter().map(Jid::to_non_ad).collect();
        if !users.iter().any(|user| user.user() == own.user()) {
            users.push(own.to_non_ad());
        }
        let id = self.generate_message_id().await?;
        self.send_with_sender_key(&Jid::status_broadcast(), &users, false, message, &id)
            .await
    }

    /// The sender-key send of groups and status updates: every device of `users` except this one gets the
    /// `skmsg`, and those that have not received this device's sender key for `chat` get the SKDM pairwise.
    /// `lid` says the group addresses its members by LID (`users` are then LIDs), which the stanza says with
    /// `addressing_mode="lid"` (whatsmeow `send.go` SendMessage).
    async fn send_with_sender_key(
        &self,
        chat: &Jid,
        users: &[Jid],
        lid: bool,
        message: &Message,
        id: &str,
    ) -> Result<SendResponse, ClientError> {
        let shared = &self.shared;
        let device = shared.account.device().await?;
        let own = device.jid.clone().ok_or(ClientError::NotConnected)?;
        // Outgoing sender keys are keyed by this device's LID when it has one (protocol-facts §3.5).
        let own_address = device.lid.clone().unwrap_or_else(|| own.clone());
        // The participant hash covers every device the query lists, this one included (whatsmeow `send.go`
        // sendGroup); this device is only skipped for copies, under its phone number and its LID alike.
        let listed: Vec<Jid> = self
            .devices_of(users)
            .await?
            .into_iter()
            .flat_map(|user| user.devices)
            .collect();
        let phash = usync::participant_hash(&listed);
        let this_device = shared.own_devices().await?;
        let devices: Vec<Jid> = listed
            .iter()
            .filter(|jid| !this_device.contains(jid))
            .cloned()
            .collect();
        let status = chat.is_status_broadcast();
        if status && devices.is_empty() {
            return Err(ClientError::Response(whatsapp_core::ResponseError::Missing(
                "recipient devices",
            )));
        }
        // The devices already holding this device's sender key (persisted with the key itself: a new key starts
        // an empty list).
        let chat_name = chat.to_string();
        let own_sender = protocol_address(&own_address).to_string();
        if shared
            .account
            .sender_key(&chat_name, &own_sender)
            .await?
            .is_none()
        {
            shared.account.clear_sender_key_recipients(&chat_name).await?;
        }
        let reached: HashSet<String> = shared
            .account
            .sender_key_recipients(&chat_name)
            .await?
            .into_iter()
            .collect();
        let needing: Vec<Jid> = devices
            .iter()
            .filter(|jid| !reached.contains(&jid.to_string()))
            .cloned()
            .collect();
        let needing = shared.signal_addresses(needing).await?;
        let bundles = self.bundles_for_new_sessions(needing.iter()).await?;
        let id = id.to_owned();
        let (stanza, distributed) = {
            let _signal = shared.signal_lock.lock().await;
            let stage = StagedSignalStore::new(&shared.account, &device);
            let mut rng = rand::rngs::OsRng;
            start_sessions(&stage, bundles, &mut rng).await?;
            let reachable = with_sessions(&stage, needing).await?;
            let copies = if reachable.is_empty() {
                Vec::new()
            } else {
                let skdm = group::distribution_message(&stage, chat, &own_address, &mut rng).await?;
                encrypt_for(&stage, &reachable, &group::encode(&skdm), &mut rng).await?
            };
            let skmsg =
                group::encrypt(&stage, chat, &own_address, &message.encode_to_vec(), &mut rng).await?;
            let identity = device.account_identity.clone().unwrap_or_default();
            let attrs = StanzaAttrs::of(message);
            let stanza = if status {
                // A device that neither holds the key nor could get it (no prekey bundle) is left out: it could
                // not read the skmsg.
                let listed: Vec<Jid> = devices
                    .iter()
                    .filter(|jid| {
                        reached.contains(&jid.to_string()) || reachable.iter().any(|(wire, _)| wire == *jid)
                    })
                    .cloned()
                    .collect();
                group::status_stanza(&id, &attrs, &listed, &copies, &skmsg, &identity)
            } else {
                let stanza = group::message_stanza(&id, chat, &attrs, &copies, &skmsg, &identity)
                    .attr("phash", phash.clone());
                match lid {
                    true => stanza.attr("addressing_mode", "lid"),
                    false => stanza,
                }
            };
            stage.commit().await?;
            let reachable: Vec<Jid> = reachable.into_iter().map(|(wire, _)| wire).collect();
            (stanza, reachable)
        };
        shared.remember(Recent {
            id: id.clone(),
            to: chat.clone(),
            message: message.clone(),
        });
        let named = match (lid, &device.lid) {
            (true, Some(own_lid)) => Jid::with_device(own_lid.user(), Jid::LID_SERVER, own.device()),
            _ => own.clone(),
        };
        self.remember_secret(chat, &named, &id, message).await;
        debug!(%id, %chat, distributed = distributed.len(), "sending with the sender key");
        let ack = self.send_and_wait_ack(stanza).await?;
        let mut distributed = distributed;
        if !status
            && ack
                .optional_str_attr("phash")
                .is_some_and(|server| server != phash)
        {
            // Each missed device's copy carries the sender key too. A group's member list may be what was stale.
            let users = if chat.is_group() {
                self.shared.forget_group(chat);
                self.members_of(chat).await?.users
            } else {
                users.to_vec()
            };
            distributed.extend(self.reach_missed_devices(&id, chat, &users, &devices).await?);
        }
        let distributed: Vec<String> = distributed.iter().map(Jid::to_string).collect();
        shared
            .account
            .add_sender_key_recipients(&chat_name, &distributed)
            .await?;
        Ok(SendResponse {
            id,
            timestamp: ack.optional_i64_attr("t").ok().flatten(),
        })
    }

    /// Sends `message` to this account's phone (device 0) alone, as a peer message (protocol messages between
    /// an account's own devices, such as app-state key requests), and waits for the server's ack.
    pub(crate) async fn send_peer_message(&self, message: &Message) -> Result<SendResponse, ClientError> {
        let shared = &self.shared;
        let device = shared.account.device().await?;
        let own = device.jid.clone().ok_or(ClientError::NotConnected)?;
        let phone = shared.signal_addresses(vec![own.to_non_ad()]).await?;
        let bundles = self.bundles_for_new_sessions(phone.iter()).await?;
        let id = message_id(unix_now().as_secs(), Some(own.user()), &random_16());
        let stanza = {
            let _signal = shared.signal_lock.lock().await;
            let stage = StagedSignalStore::new(&shared.account, &device);
            let mut rng = rand::rngs::OsRng;
            start_sessions(&stage, bundles, &mut rng).await?;
            let copy = encrypt_for(&stage, &phone, &message.encode_to_vec(), &mut rng)
                .await?
                .pop()
                .ok_or(ClientError::Unsupported("no session with this account's phone"))?;
            let identity = device.account_identity.clone().unwrap_or_default();
            let stanza = peer_stanza(&id, &copy, message, &identity);
            stage.commit().await?;
            stanza
        };
        debug!(%id, "sending a peer message to the phone");
        let ack = self.send_and_wait_ack(stanza).await?;
        Ok(SendResponse {
            id,
            timestamp: ack.optional_i64_attr("t").ok().flatten(),
        })
    }

    /// Prekey bundles for the devices that have no session yet, fetched before the Signal lock is taken, each
    /// under the device's Signal address.
    async fn bundles_for_new_sessions(
        &self,
        devices: impl Iterator<Item = &(Jid, Jid)>,
    ) -> Result<Vec<prekeys::BundleAnswer>, ClientError> {
        let mut missing = Vec::new();
        for (wire, address) in devices {
            if self
                .shared
                .account
                .session(&address.signal_address())
                .await?
                .is_none()
            {
                missing.push((wire.clone(), address.clone()));
            }
        }
        if missing.is_empty() {
            return Ok(Vec::new());
        }
        let wire: Vec<Jid> = missing.iter().map(|(wire, _)| wire.clone()).collect();
        let answers = prekeys::parse_bundles(&self.send_iq(prekeys::bundle_query(&wire)).await?)?;
        Ok(answers
            .into_iter()
            .map(|(jid, bundle)| {
                let address = missing
                    .iter()
                    .find(|(wire, _)| *wire == jid)
                    .map_or(jid, |(_, address)| address.clone());
                (address, bundle)
            })
            .collect())
    }

    pub(crate) async fn send_and_wait_ack(&self, node: Node) -> Result<Node, ClientError> {
        let timeout: Duration = self.shared.config.iq_timeout;
        let mut logins = self.shared.logins.subscribe();
        let mut attempt = 0;
        let ack = loop {
            logins.mark_unchanged();
            let (reply, answer) = oneshot::channel();
            self.command(Command::SendNode {
                node: node.clone(),
                reply,
            })
            .await?;
            let outcome = match tokio::time::timeout(timeout, answer).await {
                Ok(answer) => answer.unwrap_or(Err(ClientError::ConnectionClosed)),
                Err(_) => return Err(ClientError::IqTimeout),
            };
            match outcome {
                // The connection ended before the ack: the stanza may or may not have reached the server. Sending
                // the very same stanza again after the reconnect is safe either way: recipients that got it
                // recognise the same ciphertext and only ack it.
                Err(ClientError::ConnectionClosed)
                    if self.shared.config.auto_reconnect && attempt < MAX_RESENDS =>
                {
                    attempt += 1;
                    debug!(
                        attempt,
                        "connection ended before the ack; resending after the reconnect"
                    );
                    match tokio::time::timeout(timeout, logins.changed()).await {
                        Ok(Ok(())) => continue,
                        _ => return Err(ClientError::ConnectionClosed),
                    }
                }
                outcome => break outcome?,
            }
        };
        // The server refuses a stanza with an ack carrying an error code.
        match ack.optional_str_attr("error") {
            Some(code) => Err(ClientError::Iq {
                code: code.parse().unwrap_or(0),
                text: "message refused".to_owned(),
            }),
            None => Ok(ack),
        }
    }
}

/// Starts a session with every device whose bundle arrived; a device the server had no bundle for is skipped (it
/// gets no copy).
async fn start_sessions<A: whatsapp_store::AccountStore>(
    stage: &StagedSignalStore<'_, A>,
    bundles: Vec<prekeys::BundleAnswer>,
    rng: &mut rand::rngs::OsRng,
) -> Result<(), ClientError> {
    for (jid, bundle) in bundles {
        match bundle {
            Ok(bundle) => {
                whatsapp_signal::store::process_bundle(stage, &protocol_address(&jid), &bundle, rng).await?
            }
            Err(error) => warn!(%jid, %error, "no prekey bundle; skipping the device"),
        }
    }
    Ok(())
}

/// The devices among `devices` (each as named on the wire, and its Signal address) that have a session in
/// `stage`.
async fn with_sessions<A: whatsapp_store::AccountStore>(
    stage: &StagedSignalStore<'_, A>,
    devices: Vec<(Jid, Jid)>,
) -> Result<Vec<(Jid, Jid)>, ClientError> {
    let mut out = Vec::with_capacity(devices.len());
    for (wire, address) in devices {
        let session =
            whatsapp_signal::store::SessionStore::load_session(stage, &protocol_address(&address)).await?;
        if session.is_some() {
            out.push((wire, address));
        }
    }
    Ok(out)
}

/// Encrypts `plaintext` for each device with the session under its Signal address; each copy names the device
/// as on the wire.
async fn encrypt_for<A: whatsapp_store::AccountStore>(
    stage: &StagedSignalStore<'_, A>,
    devices: &[(Jid, Jid)],
    plaintext: &[u8],
    rng: &mut rand::rngs::OsRng,
) -> Result<Vec<whatsapp_core::message::Encrypted>, ClientError> {
    let addresses: Vec<Jid> = devices.iter().map(|(_, address)| address.clone()).collect();
    let mut copies = encrypt_for_devices(stage, &addresses, plaintext, rng)
        .await
        .map_err(|(_, error)| error)?;
    for (copy, (wire, _)) in copies.iter_mut().zip(devices) {
        copy.device = wire.clone();
    }
    Ok(copies)
}

/// The copy of `message` for this account's other devices: wrapped in a `DeviceSentMessage` naming the chat,
/// with the message's `messageContextInfo` (its message secret) also at the top, so those devices can decrypt
/// the poll votes and reactions that answer it (whatsmeow `send.go` marshalMessage).
fn device_sent(chat: &Jid, message: Message) -> Message {
    Message {
        message_context_info: message.message_context_info.clone(),
        device_sent_message: Some(Box::new(DeviceSentMessage {
            destination_jid: Some(chat.to_string()),
            message: Some(Box::new(message)),
            phash: None,
        })),
        ..Default::default()
    }
}

/// The longest message id [`Client::send_message_with_id`] takes (WhatsApp's own are 20 to 32 characters).
const MAX_MESSAGE_ID_LEN: usize = 64;

/// How many times a stanza whose connection ended before its ack is sent again.
const MAX_RESENDS: u32 = 3;

fn random_16() -> [u8; 16] {
    let mut bytes = [0u8; 16];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    bytes
}

/// `node` with `child` appended to its children.
fn with_child(mut node: Node, child: Node) -> Node {
    match &mut node.content {
        whatsapp_binary::Content::Nodes(children) => children.push(child),
        _ => node.content = whatsapp_binary::Content::Nodes(vec![child]),
    }
    node
}
