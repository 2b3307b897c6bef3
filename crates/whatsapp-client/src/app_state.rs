//! App-state sync (protocol-facts §3.8): fetching and applying each collection's patches, sending this device's
//! own changes (mute, pin, archive...), and keeping the store's chat settings and contacts in step.
//!
//! Keys come from the phone in key-share messages; a collection is first synced when they arrive, and again
//! whenever the server says it changed (`server_sync`). A snapshot or patch encrypted with a key the phone never
//! shared makes the client ask the phone for it (an `AppStateSyncKeyRequest` peer message, whatsmeow
//! `requestAppStateKeys`); the collection waits, without an error event, and is synced again when the phone's
//! key share arrives. A sync that fails verification (an LTHash or MAC
//! mismatch) is retried once as a full sync from scratch. One sync runs at a time per client.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tracing::{debug, warn};
use whatsapp_appstate::{
    Action, AppStateError, AppStateKey, CollectionDecoder, CollectionName, Operation, ParsedPatch,
    PatchBuilder, PatchInfo,
};
use whatsapp_binary::Node;
use whatsapp_core::app_state::{
    CollectionAnswer, fetch_query, key_request, newest_key, parse_answer, patch_query, referenced_key_ids,
    stored_state, touched_indexes,
};
use whatsapp_core::media::MediaType;
use whatsapp_proto::server_sync::{ExternalBlobReference, SyncdPatch};
use whatsapp_store::{
    AccountStore, AppStateKeyStore, AppStateStore, AppStateSyncKey, AppStateVersion, Backend,
    ChatSettingsStore, ContactName, ContactStore, MutationMac,
};

use crate::{Client, ClientError, Event, MediaRef};

/// How many pages of patches one sync follows before giving up (a server that always says "more").
const MAX_PAGES: usize = 1000;

/// The ack of a `server_sync` notification, sent once every collection it names has been synced, as whatsmeow
/// acks a notification after its handler with `SynchronousAck` (`notification.go`, `receipt.go`
/// maybeDeferredAck): a process that stops during the sync is sent the notification again, and syncs again.
#[derive(Debug)]
pub(crate) struct AckAfterSync {
    remaining: AtomicUsize,
    ack: Node,
}

impl AckAfterSync {
    /// `ack`, to send after `collections` syncs.
    pub(crate) fn new(ack: Node, collections: usize) -> Arc<AckAfterSync> {
        Arc::new(AckAfterSync {
            remaining: AtomicUsize::new(collections),
            ack,
        })
    }
}

impl<B: Backend> Client<B> {
    /// Brings `collection` up to date: the changes since the stored version, or everything (snapshot and
    /// patches) with `full_sync` or when it was never synced. Each change arrives as [`Event::AppState`], then
    /// [`Event::AppStateSynced`]. A verification failure triggers one full sync before the error is returned.
    pub async fn fetch_app_state(
        &self,
        collection: CollectionName,
        full_sync: bool,
    ) -> Result<(), ClientError> {
        let _one_at_a_time = self.shared.app_state_lock.lock().await;
        self.sync_collection(collection, full_sync).await
    }

    /// Syncs `collection` beside the connection task, unless a sync of it is already waiting to start: a burst
    /// of `server_sync` notifications costs one sync, not one per notification. `ack` goes out once this sync
    /// and those of the notification's other collections are done.
    pub(crate) fn sync_later(self, collection: CollectionName, ack: Arc<AckAfterSync>) {
        if !self.shared.app_state_waiting(collection, ack) {
            return;
        }
        tokio::spawn(async move {
            let _one_at_a_time = self.shared.app_state_lock.lock().await;
            let acks = self.shared.app_state_started(collection);
            // Failures are reported as events.
            let _ = self.sync_collection(collection, false).await;
            for ack in acks {
                if ack.remaining.fetch_sub(1, Ordering::AcqRel) == 1 {
                    // Without a connection the notification is delivered again, and synced again.
                    let _ = self.send_stanza(ack.ack.clone()).await;
                }
            }
        });
    }

    /// Syncs every collection that was never synced or was waiting for a key (after the phone shared keys).
    pub(crate) async fn sync_new_collections(&self) {
        let waiting = std::mem::take(
            &mut *self
                .shared
                .app_state_key_waits
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner()),
        );
        for collection in CollectionName::ALL {
            let synced = self
                .shared
                .account
                .app_state_version(collection.as_str())
                .await
                .ok()
                .flatten()
                .is_some();
            let due = !synced || waiting.contains(&collection);
            if due && let Err(error) = self.fetch_app_state(collection, false).await {
                warn!(%collection, %error, "app-state sync failed");
            }
        }
    }

    async fn sync_collection(&self, collection: CollectionName, full_sync: bool) -> Result<(), ClientError> {
        let outcome = match self.sync_pages(collection, full_sync).await {
            Err(ClientError::AppState(error)) if error.needs_recovery() && !full_sync => {
                warn!(%collection, %error, "app state does not verify; syncing it again from scratch");
                self.sync_pages(collection, true).await
            }
            outcome => outcome,
        };
        if let Err(ClientError::AppState(error @ AppStateError::MissingKey { .. })) = &outcome {
            // Not final: the key was asked for, and its arrival syncs the collection again.
            debug!(%collection, %error, "app-state sync waits for a key from the phone");
            return outcome;
        }
        if let Err(error) = &outcome {
            self.shared.emit(Event::AppStateSyncError {
                collection,
                error: error.to_string(),
            });
        }
        outcome
    }

    async fn sync_pages(&self, collection: CollectionName, full_sync: bool) -> Result<(), ClientError> {
        let account = &self.shared.account;
        if full_sync {
            account.delete_app_state_version(collection.as_str()).await?;
        }
        let stored = account.app_state_version(collection.as_str()).await?;
        let full_sync = stored.is_none();
        let mut since = stored.map(|v| v.version);
        for _ in 0..MAX_PAGES {
            let answer = parse_answer(&self.send_iq(fetch_query(collection, since)).await?)?;
            if answer.collection != collection {
                return Err(ClientError::Malformed(format!(
                    "asked for {collection}, answered for {}",
                    answer.collection
                )));
            }
            let has_more = answer.has_more;
            let version = self.apply(collection, answer, full_sync).await?;
            since = Some(version);
            if !has_more {
                self.shared.emit(Event::AppStateSynced {
                    collection,
                    version,
                    full_sync,
                });
                return Ok(());
            }
        }
        Err(ClientError::Malformed(format!(
            "{collection}: the server kept sending more patches"
        )))
    }

    /// Verifies and applies one answer's snapshot and patches, persists the new state and emits the changes;
    /// returns the version reached.
    async fn apply(
        &self,
        collection: CollectionName,
        answer: CollectionAnswer,
        from_full_sync: bool,
    ) -> Result<u64, ClientError> {
        let account = &self.shared.account;
        let snapshot = match &answer.snapshot {
            Some(reference) => Some(whatsapp_appstate::parse_snapshot(
                &self.download_blob(reference).await?,
            )?),
            None => None,
        };
        let patches = self.complete(answer.patches).await?;
        let name = collection.as_str();
        let stored = account.app_state_version(name).await?;
        let mut macs = Vec::new();
        if snapshot.is_none() {
            for index_mac in touched_indexes(&patches) {
                if let Some(value_mac) = account.mutation_mac(name, &index_mac).await? {
                    macs.push(MutationMac { index_mac, value_mac });
                }
            }
        }
        let base = stored_state(stored.as_ref(), macs);
        let keys = account.app_state_sync_keys().await?;
        let missing: Vec<Vec<u8>> = referenced_key_ids(snapshot.as_ref(), &patches)
            .into_iter()
            .filter(|id| !keys.iter().any(|key| &key.id == id))
            .collect();
        if !missing.is_empty() {
            // The decoder below then fails with `MissingKey`, which leaves the collection waiting for the answer.
            self.request_app_state_keys(collection, &missing).await;
        }
        let lookup = |id: &[u8]| {
            keys.iter()
                .find(|key| key.id == id)
                .map(|key| AppStateKey::new(key.data.clone()))
        };
        let mut decoder = CollectionDecoder::new(collection, &base, &lookup);
        if let Some(snapshot) = &snapshot {
            decoder.snapshot(snapshot)?;
        }
        for patch in &patches {
            decoder.patch(patch)?;
        }
        let decoded = decoder.finish();
        let update = &decoded.update;
        if update.replaces_all {
            account.delete_app_state_version(name).await?;
        }
        let removed: Vec<[u8; 32]> = update.removed.iter().copied().collect();
        if !removed.is_empty() {
            account.delete_mutation_macs(name, &removed).await?;
        }
        let added: Vec<MutationMac> = update
            .added
            .iter()
            .map(|(index_mac, value_mac)| MutationMac {
                index_mac: *index_mac,
                value_mac: *value_mac,
            })
            .collect();
        if !added.is_empty() {
            account.put_mutation_macs(name, update.version, &added).await?;
        }
        // The version goes last: a crash before it leaves the old version, and the next sync, which then does not
        // verify, starts over with a full sync.
        account
            .put_app_state_version(
                name,
                &AppStateVersion {
                    version: update.version,
                    hash: *update.hash.as_bytes(),
                },
            )
            .await?;
        for mutation in &decoded.mutations {
            if mutation.operation != Operation::Set {
                continue;
            }
            let timestamp = mutation
                .value()
                .ok()
                .flatten()
                .and_then(|value| value.timestamp)
                .unwrap_or(0);
            match mutation.action() {
                Ok(action) => {
                    self.store_action(&action).await;
                    let push_name = match &action {
                        Action::PushName { name } => Some(name.clone()),
                        _ => None,
                    };
                    self.shared.emit(Event::AppState {
                        collection,
                        action,
                        timestamp,
                        from_full_sync,
                    });
                    if let Some(name) = push_name {
                        self.shared.emit(Event::PushNameSetting {
                            name,
                            timestamp,
                            from_full_sync,
                        });
                    }
                }
                Err(error) => debug!(%error, index = ?mutation.index, "app-state mutation not understood"),
            }
        }
        debug!(%collection, version = update.version, "app state applied");
        Ok(update.version)
    }

    /// Asks this account's phone for the app-state keys `ids` and marks `collection` as waiting for them. A
    /// request that cannot be sent is logged: the next `server_sync` of the collection asks again.
    async fn request_app_state_keys(&self, collection: CollectionName, ids: &[Vec<u8>]) {
        self.shared
            .app_state_key_waits
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .insert(collection);
        let hex: Vec<String> = ids
            .iter()
            .map(|id| id.iter().map(|byte| format!("{byte:02x}")).collect())
            .collect();
        debug!(%collection, keys = ?hex, "asking the phone for app-state keys");
        if let Err(error) = self.send_peer_message(&key_request(ids)).await {
            warn!(%collection, %error, "could not ask the phone for app-state keys");
        }
    }

    /// Patches with their external mutations downloaded.
    async fn complete(&self, patches: Vec<ParsedPatch>) -> Result<Vec<SyncdPatch>, ClientError> {
        let mut complete = Vec::with_capacity(patches.len());
        for patch in patches {
            complete.push(match patch {
                ParsedPatch::Complete(patch) => patch,
                ParsedPatch::NeedsDownload(pending) => {
                    let reference = pending
                        .blob()
                        .cloned()
                        .ok_or_else(|| ClientError::Malformed("external patch without a blob".to_owned()))?;
                    pending.complete(&self.download_blob(&reference).await?)?
                }
            });
        }
        Ok(complete)
    }

    async fn download_blob(&self, reference: &ExternalBlobReference) -> Result<Vec<u8>, ClientError> {
        let missing = |field| ClientError::Malformed(format!("app-state blob reference without {field}"));
        let media = MediaRef {
            media_type: MediaType::AppState,
            direct_path: reference.direct_path.clone().ok_or_else(|| missing("a path"))?,
            media_key: reference.media_key.clone().ok_or_else(|| missing("a key"))?,
            file_enc_sha256: reference
                .file_enc_sha256
                .clone()
                .ok_or_else(|| missing("a hash"))?,
            file_sha256: reference.file_sha256.clone().ok_or_else(|| missing("a hash"))?,
        };
        self.download(&media).await
    }

    /// Keeps the store's chat settings, contacts and this device's push name in step with an applied change.
    async fn store_action(&self, action: &Action) {
        let account = &self.shared.account;
        let stored = match action {
            Action::Mute {
                chat,
                muted,
                mute_end_ms,
            } => {
                let until = match (muted, mute_end_ms) {
                    (false, _) => 0,
                    (true, Some(end)) if *end > 0 => *end,
                    (true, _) => -1,
                };
                account.put_muted_until(chat, until).await
            }
            Action::Pin { chat, pinned } => account.put_pinned(chat, *pinned).await,
            Action::Archive { chat, archived, .. } => account.put_archived(chat, *archived).await,
            Action::Contact {
                jid,
                full_name,
                first_name,
                ..
            } => {
                account
                    .put_contact_names(&[ContactName {
                        jid: jid.clone(),
                        first_name: first_name.clone().unwrap_or_default(),
                        full_name: full_name.clone().unwrap_or_default(),
                    }])
                    .await
            }
            Action::PushName { name } => match account.device().await {
                Ok(mut device) if device.push_name != *name => {
                    device.push_name = name.clone();
                    account.put_device(&device).await
                }
                Ok(_) => Ok(()),
                Err(error) => Err(error),
            },
            _ => Ok(()),
        };
        if let Err(error) = stored {
            warn!(%error, "cannot store an app-state change");
        }
    }

    /// Sends a change of this account's app state (build it with [`PatchInfo`]'s constructors, e.g.
    /// `PatchInfo::mute(&chat, true, None, now_ms)`), then syncs the collection so the change, and anything
    /// other devices changed meanwhile, is applied here too. If another device changed the collection first
    /// (409), its changes are applied and the send is tried once more.
    pub async fn send_app_state(&self, patch: &PatchInfo) -> Result<(), ClientError> {
        let _one_at_a_time = self.shared.app_state_lock.lock().await;
        for attempt in 0..2 {
            let answer = self.upload_patch(patch).await?;
            if answer.is_conflict() && attempt == 0 {
                debug!(collection = %patch.collection, "app state changed elsewhere; applying and retrying");
                self.apply(patch.collection, answer, false).await?;
                continue;
            }
            if let Some(error) = answer.error {
                return Err(error.into());
            }
            return self.sync_collection(patch.collection, false).await;
        }
        Err(ClientError::Malformed(format!(
            "{}: the server refused the change twice",
            patch.collection
        )))
    }

    async fn upload_patch(&self, patch: &PatchInfo) -> Result<CollectionAnswer, ClientError> {
        let account = &self.shared.account;
        let keys = account.app_state_sync_keys().await?;
        let key: &AppStateSyncKey = newest_key(&keys).ok_or(ClientError::Unsupported(
            "no app-state key yet: the phone has not shared one",
        ))?;
        let name = patch.collection.as_str();
        let builder = PatchBuilder::new(key.id.clone(), &AppStateKey::new(key.data.clone()));
        let mut macs = Vec::new();
        for index_mac in builder.index_macs(patch) {
            if let Some(value_mac) = account.mutation_mac(name, &index_mac).await? {
                macs.push(MutationMac { index_mac, value_mac });
            }
        }
        let stored = account.app_state_version(name).await?;
        let state = stored_state(stored.as_ref(), macs);
        let ivs: Vec<[u8; 16]> = patch.mutations.iter().map(|_| rand::random()).collect();
        let built = builder
            .build_patch(patch, &state, &ivs)
            .map_err(|e| ClientError::Malformed(e.to_string()))?;
        let result = self
            .send_iq(patch_query(patch.collection, state.version, &built.patch))
            .await?;
        Ok(parse_answer(&result)?)
    }

    /// Mutes `chat` until `until_ms` (unix milliseconds; `None` for always), or unmutes it.
    pub async fn mute_chat(
        &self,
        chat: &whatsapp_binary::Jid,
        muted: bool,
        until_ms: Option<i64>,
    ) -> Result<(), ClientError> {
        self.send_app_state(&PatchInfo::mute(chat, muted, until_ms, now_ms()))
            .await
    }

    /// Pins or unpins `chat`.
    pub async fn pin_chat(&self, chat: &whatsapp_binary::Jid, pinned: bool) -> Result<(), ClientError> {
        self.send_app_state(&PatchInfo::pin(chat, pinned, now_ms())).await
    }
}

fn now_ms() -> i64 {
    crate::unix_now().as_millis() as i64
}
