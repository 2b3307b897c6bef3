//! History sync (protocol-facts §3.9): the phone uploads compressed, encrypted `HistorySync` blobs and tells
//! this device where they are in peer messages. Each blob is downloaded and verified (MAC and both hashes) before
//! any of it is used, then inflated and decoded one conversation at a time on a blocking thread, so memory holds
//! the compressed blob and one conversation, never the whole inflated history. A blob larger than the spool
//! threshold (8 MiB unless the client was built with another) is not held in memory either: it is written to a
//! temporary file while it downloads, read back from there, and the file is removed afterwards.
//!
//! Push names, phone-number/LID mappings and message secrets found on the way are stored; every conversation is
//! emitted as [`Event::HistoryConversation`], and [`Event::HistorySynced`] closes each blob with its counts.

use tokio::sync::mpsc;
use tracing::{debug, warn};
use whatsapp_binary::Jid;
use whatsapp_core::history::{HistoryError, HistoryItem, inflate};
use whatsapp_core::media::MediaType;
use whatsapp_proto::e2e::message::HistorySyncNotification;
use whatsapp_proto::history_sync::Conversation;
use whatsapp_store::{AccountStore, Backend, ContactStore, LidMapping, MessageSecret, SecretStore};

use crate::spool::{Spool, Spooled};
use crate::{Client, ClientError, Event, MediaRef};

/// Decoded items in flight between the decoding thread and the task storing them.
const ITEMS_IN_FLIGHT: usize = 4;

/// What one history blob held.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct HistoryCounts {
    /// Conversations emitted.
    pub conversations: usize,
    /// Messages in them.
    pub messages: usize,
    /// Push names stored.
    pub push_names: usize,
    /// Phone-number/LID mappings stored.
    pub lid_mappings: usize,
}

impl<B: Backend> Client<B> {
    /// Handles one history sync notification: downloads (or takes the inline) blob, streams it, and emits the
    /// events; a failure becomes [`Event::HistorySyncError`]. The last event carries the notification's payload
    /// `hash`: once the application has moved past it, it has every conversation, and the notification is
    /// acknowledged (see [`whatsapp_core::delivery`]).
    pub(crate) async fn receive_history(
        &self,
        notification: HistorySyncNotification,
        hash: whatsapp_core::delivery::PayloadHash,
    ) {
        let last = match self.read_history(&notification).await {
            Ok((counts, progress)) => Event::HistorySynced {
                sync_type: notification.sync_type.unwrap_or(0),
                chunk_order: notification.chunk_order.unwrap_or(0),
                progress: progress.or(notification.progress),
                counts,
            },
            Err(error) => {
                warn!(%error, "history sync failed");
                Event::HistorySyncError {
                    error: error.to_string(),
                }
            }
        };
        self.shared.emit_received(last, hash);
    }

    async fn read_history(
        &self,
        notification: &HistorySyncNotification,
    ) -> Result<(HistoryCounts, Option<u32>), ClientError> {
        let compressed = match &notification.initial_hist_bootstrap_inline_payload {
            Some(inline) => Spooled::Memory(inline.clone()),
            None => {
                let missing = |field| ClientError::Malformed(format!("history notification without {field}"));
                let media = MediaRef {
                    media_type: MediaType::History,
                    direct_path: notification
                        .direct_path
                        .clone()
                        .ok_or_else(|| missing("a path"))?,
                    media_key: notification.media_key.clone().ok_or_else(|| missing("a key"))?,
                    file_enc_sha256: notification
                        .file_enc_sha256
                        .clone()
                        .ok_or_else(|| missing("a hash"))?,
                    file_sha256: notification
                        .file_sha256
                        .clone()
                        .ok_or_else(|| missing("a hash"))?,
                };
                let config = &self.shared.config;
                let spool = Spool::new(config.spool_threshold, config.spool_dir.clone());
                self.download_spooled(&media, spool).await?
            }
        };
        let (items, mut receiver) = mpsc::channel(ITEMS_IN_FLIGHT);
        let decoding = tokio::task::spawn_blocking(move || match compressed {
            Spooled::Memory(bytes) => forward(inflate(bytes.as_slice()), &items),
            // The file is removed when `temp` drops at the end of this closure, read to the end or not.
            Spooled::File(temp) => match std::fs::File::open(temp.path()) {
                Ok(file) => forward(inflate(std::io::BufReader::new(file)), &items),
                Err(error) => {
                    let _ = items.blocking_send(Err(error.into()));
                }
            },
        });
        let own = self
            .shared
            .account
            .device()
            .await?
            .jid
            .as_ref()
            .map(Jid::to_non_ad);
        let mut counts = HistoryCounts::default();
        let mut progress = None;
        let mut outcome = Ok(());
        while let Some(item) = receiver.recv().await {
            match item {
                Ok(item) => {
                    if let Err(error) = self
                        .store_history_item(item, own.as_ref(), &mut counts, &mut progress)
                        .await
                    {
                        outcome = Err(error);
                        break;
                    }
                }
                Err(error) => {
                    outcome = Err(ClientError::Malformed(error.to_string()));
                    break;
                }
            }
        }
        drop(receiver);
        let _ = decoding.await;
        outcome.map(|()| (counts, progress))
    }

    async fn store_history_item(
        &self,
        item: HistoryItem,
        own: Option<&Jid>,
        counts: &mut HistoryCounts,
        progress: &mut Option<u32>,
    ) -> Result<(), ClientError> {
        let account = &self.shared.account;
        match item {
            HistoryItem::Conversation(conversation) => {
                let secrets = message_secrets(&conversation, own);
                if !secrets.is_empty() {
                    account.put_message_secrets(&secrets).await?;
                }
                counts.conversations += 1;
                counts.messages += conversation.messages.len();
                self.shared.emit(Event::HistoryConversation(conversation));
            }
            HistoryItem::Pushname(name) => {
                if let (Some(jid), Some(name)) =
                    (name.id.and_then(|id| id.parse::<Jid>().ok()), name.pushname)
                {
                    account.put_push_name(&jid, &name).await?;
                    counts.push_names += 1;
                }
            }
            HistoryItem::LidMapping(mapping) => {
                let pn = mapping.pn_jid.and_then(|jid| jid.parse::<Jid>().ok());
                let lid = mapping.lid_jid.and_then(|jid| jid.parse::<Jid>().ok());
                if let (Some(pn), Some(lid)) = (pn, lid) {
                    self.shared
                        .put_lid_mappings(&[LidMapping::new(&lid, &pn)])
                        .await?;
                    counts.lid_mappings += 1;
                }
            }
            HistoryItem::Progress(percent) => *progress = Some(percent),
            HistoryItem::NctSalt(salt) if !salt.0.is_empty() => {
                account.put_nct_salt(&salt.0).await?;
                debug!("stored the NCT salt");
            }
            other => debug!(?other, "history item not used"),
        }
        Ok(())
    }
}

/// Sends the decoded items to the storing task until the stream ends, fails, or the task stops listening.
fn forward(
    decoded: impl Iterator<Item = Result<HistoryItem, HistoryError>>,
    items: &mpsc::Sender<Result<HistoryItem, HistoryError>>,
) {
    for item in decoded {
        let failed = item.is_err();
        if items.blocking_send(item).is_err() || failed {
            break;
        }
    }
}

/// The message secrets (for poll votes and other encrypted replies) of a conversation's messages.
/// `own` (this account's JID) is the sender of the messages sent from this account.
fn message_secrets(conversation: &Conversation, own: Option<&Jid>) -> Vec<MessageSecret> {
    let Ok(chat) = conversation.id.parse::<Jid>() else {
        return Vec::new();
    };
    conversation
        .messages
        .iter()
        .filter_map(|entry| {
            let message = entry.message.as_ref()?;
            let secret = message.message_secret.clone()?;
            let key = &message.key;
            let sender = match (&key.participant, &message.participant) {
                _ if key.from_me == Some(true) => own?.clone(),
                (Some(participant), _) | (None, Some(participant)) => participant.parse().ok()?,
                (None, None) => chat.clone(),
            };
            Some(MessageSecret {
                chat: chat.clone(),
                sender,
                id: key.id.clone()?,
                secret,
            })
        })
        .collect()
}
