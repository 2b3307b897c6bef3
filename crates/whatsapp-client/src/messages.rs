//! Sending one-to-one messages: device lists, prekey bundles for devices without a session, per-device
//! encryption (the recipient's devices get the message, this account's other devices a `DeviceSentMessage`), and
//! the server's ack (protocol-facts §3.6).
//!
//! The pipeline runs in the caller's task and talks to the connection task only through IQs and one stanza send;
//! the Signal lock is held for the local encrypt-and-commit step alone, never across a network wait.

use std::time::Duration;

use rand::RngCore;
use tokio::sync::oneshot;
use tracing::{debug, warn};
use whatsapp_binary::{Jid, Node};
use whatsapp_core::message::{encrypt_for_devices, message_id, message_stanza, protocol_address};
use whatsapp_core::receipt::{ReceiptKind, read_receipt};
use whatsapp_core::signal_store::StagedSignalStore;
use whatsapp_core::{prekeys, usync};
use whatsapp_proto::ProtoMessage;
use whatsapp_proto::e2e::{Message, message::DeviceSentMessage};
use whatsapp_store::{AccountStore, Backend, SessionStore};

use crate::session::Command;
use crate::{Client, ClientError, unix_now};

/// What the server said about a sent message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SendResponse {
    /// The message id.
    pub id: String,
    /// The server's timestamp of the message, unix seconds, when its ack carries one.
    pub timestamp: Option<i64>,
}

impl<B: Backend> Client<B> {
    /// Sends a text message to a user (a phone-number or LID JID; groups are not supported yet).
    pub async fn send_text(&self, to: &Jid, text: &str) -> Result<SendResponse, ClientError> {
        let message = Message {
            conversation: Some(text.to_owned()),
            ..Default::default()
        };
        self.send_message(to, &message).await
    }

    /// Encrypts `message` for every device of `to` and every other device of this account, sends it, and waits
    /// for the server's ack.
    pub async fn send_message(&self, to: &Jid, message: &Message) -> Result<SendResponse, ClientError> {
        if to.is_group() || to.is_broadcast_list() || to.is_status_broadcast() || to.is_newsletter() {
            return Err(ClientError::Unsupported("sending to groups and broadcasts"));
        }
        let shared = &self.shared;
        let device = shared.account.device().await?;
        let own = device.jid.clone().ok_or(ClientError::NotConnected)?;
        let to = to.to_non_ad();

        let sid = format!("{}", rand::random::<u64>());
        let answer = self
            .send_iq(usync::device_query(&[to.clone(), own.to_non_ad()], &sid))
            .await?;
        let mut recipients = Vec::new();
        let mut own_devices = Vec::new();
        for user in usync::parse_devices(&answer)? {
            for jid in user.devices {
                if jid.user() == to.user() && jid.server() == to.server() {
                    recipients.push(jid);
                } else if jid.user() == own.user() && jid.device() != own.device() {
                    own_devices.push(jid);
                }
            }
        }
        if recipients.is_empty() {
            return Err(ClientError::Response(whatsapp_core::ResponseError::Missing(
                "recipient devices",
            )));
        }

        // Bundles for devices without a session, fetched before the Signal lock is taken.
        let mut missing = Vec::new();
        for jid in recipients.iter().chain(&own_devices) {
            if shared.account.session(&jid.signal_address()).await?.is_none() {
                missing.push(jid.clone());
            }
        }
        let bundles = if missing.is_empty() {
            Vec::new()
        } else {
            prekeys::parse_bundles(&self.send_iq(prekeys::bundle_query(&missing)).await?)?
        };

        let id = message_id(unix_now().as_secs(), Some(own.user()), &random_16());
        let stanza = {
            let _signal = shared.signal_lock.lock().await;
            let stage = StagedSignalStore::new(&shared.account, &device);
            let mut rng = rand::rngs::OsRng;
            for (jid, bundle) in bundles {
                match bundle {
                    Ok(bundle) => {
                        whatsapp_signal::store::process_bundle(
                            &stage,
                            &protocol_address(&jid),
                            &bundle,
                            &mut rng,
                        )
                        .await?
                    }
                    Err(error) => warn!(%jid, %error, "no prekey bundle; skipping the device"),
                }
            }
            let usable = |devices: Vec<Jid>| {
                let stage = &stage;
                async move {
                    let mut out = Vec::new();
                    for jid in devices {
                        let address = protocol_address(&jid);
                        if whatsapp_signal::store::SessionStore::load_session(stage, &address)
                            .await?
                            .is_some()
                        {
                            out.push(jid);
                        }
                    }
                    Ok::<_, ClientError>(out)
                }
            };
            let recipients = usable(recipients).await?;
            let own_devices = usable(own_devices).await?;
            let mut encrypted = encrypt_for_devices(&stage, &recipients, &message.encode_to_vec(), &mut rng)
                .await
                .map_err(|(_, error)| error)?;
            if !own_devices.is_empty() {
                let sent = Message {
                    device_sent_message: Some(Box::new(DeviceSentMessage {
                        destination_jid: Some(to.to_string()),
                        message: Some(Box::new(message.clone())),
                        phash: None,
                    })),
                    ..Default::default()
                };
                encrypted.extend(
                    encrypt_for_devices(&stage, &own_devices, &sent.encode_to_vec(), &mut rng)
                        .await
                        .map_err(|(_, error)| error)?,
                );
            }
            let identity = device.account_identity.clone().unwrap_or_default();
            let stanza = message_stanza(&id, &to, "text", &encrypted, &identity);
            // Committed before sending: a ratchet step that never leaves is harmless, a sent message whose
            // state was lost is not.
            stage.commit().await?;
            stanza
        };
        debug!(%id, %to, "sending message");
        let ack = self.send_and_wait_ack(stanza).await?;
        Ok(SendResponse {
            id,
            timestamp: ack.optional_i64_attr("t").ok().flatten(),
        })
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

    async fn send_and_wait_ack(&self, node: Node) -> Result<Node, ClientError> {
        let (reply, answer) = oneshot::channel();
        self.command(Command::SendNode { node, reply }).await?;
        let timeout: Duration = self.shared.config.iq_timeout;
        let ack = match tokio::time::timeout(timeout, answer).await {
            Ok(answer) => answer.map_err(|_| ClientError::ConnectionClosed)??,
            Err(_) => return Err(ClientError::IqTimeout),
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

fn random_16() -> [u8; 16] {
    let mut bytes = [0u8; 16];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    bytes
}
