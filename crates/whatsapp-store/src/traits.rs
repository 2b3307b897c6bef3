//! The store traits: one per kind of data, the per-account handle that implements them all, the transaction,
//! and the backend that hosts many accounts.
//!
//! Every method returns a `Send` future and takes `&self`, so a handle can be cloned into many tasks of any
//! runtime.

use core::future::Future;
use std::collections::BTreeMap;

use whatsapp_binary::Jid;

use crate::{
    AccountId, AppStateSyncKey, AppStateVersion, BufferedEvent, ChatSettings, Contact, ContactName, Device,
    Lease, LidMapping, MessageSecret, MutationMac, PreKey, PrivacyToken, Result, UnixMillis,
};

/// Identity keys of remote Signal addresses (`user[_agent]:device`), protocol-facts §2.
pub trait IdentityStore {
    /// Stores (or replaces) the identity key of `address`.
    fn put_identity(&self, address: &str, key: &[u8; 32]) -> impl Future<Output = Result<()>> + Send;
    /// The identity key of `address`.
    fn identity(&self, address: &str) -> impl Future<Output = Result<Option<[u8; 32]>>> + Send;
    /// Deletes the identity of `address`.
    fn delete_identity(&self, address: &str) -> impl Future<Output = Result<()>> + Send;
    /// Deletes the identities of every device of `user` (addresses `user:*`); returns how many were deleted.
    fn delete_all_identities(&self, user: &str) -> impl Future<Output = Result<u64>> + Send;
    /// The identities of every device of `user` (addresses `user:*`), by address.
    fn user_identities(&self, user: &str) -> impl Future<Output = Result<Vec<(String, [u8; 32])>>> + Send;
}

/// Signal sessions (serialized records, opaque to the store) keyed by address.
pub trait SessionStore {
    /// The session with `address`.
    fn session(&self, address: &str) -> impl Future<Output = Result<Option<Vec<u8>>>> + Send;
    /// The sessions of many addresses at once (a group send); addresses without a session are absent.
    fn sessions(
        &self,
        addresses: &[String],
    ) -> impl Future<Output = Result<BTreeMap<String, Vec<u8>>>> + Send;
    /// Stores (or replaces) the session with `address`.
    fn put_session(&self, address: &str, session: &[u8]) -> impl Future<Output = Result<()>> + Send;
    /// Stores many sessions at once, atomically.
    fn put_sessions(&self, sessions: &[(String, Vec<u8>)]) -> impl Future<Output = Result<()>> + Send;
    /// Deletes the session with `address`.
    fn delete_session(&self, address: &str) -> impl Future<Output = Result<()>> + Send;
    /// Deletes the sessions of every device of `user` (addresses `user:*`); returns how many were deleted.
    fn delete_all_sessions(&self, user: &str) -> impl Future<Output = Result<u64>> + Send;
    /// The sessions with every device of `user` (addresses `user:*`), by address.
    fn user_sessions(&self, user: &str) -> impl Future<Output = Result<Vec<(String, Vec<u8>)>>> + Send;
}

/// One-time prekeys. The caller generates key pairs; the store hands out ids and keeps the keys.
pub trait PreKeyStore {
    /// Reserves `count` fresh prekey ids, in order. Ids are in `1..=MAX_PREKEY_ID` and wrap around after it, so a
    /// reservation is never handed out twice until 16,777,215 more have been.
    fn reserve_prekey_ids(&self, count: u32) -> impl Future<Output = Result<Vec<u32>>> + Send;
    /// Stores many prekeys at once, atomically (replacing any with the same id).
    fn put_prekeys(&self, prekeys: &[PreKey]) -> impl Future<Output = Result<()>> + Send;
    /// The prekey with `id`.
    fn prekey(&self, id: u32) -> impl Future<Output = Result<Option<PreKey>>> + Send;
    /// Removes the prekey with `id` (after a peer used it).
    fn remove_prekey(&self, id: u32) -> impl Future<Output = Result<()>> + Send;
    /// Marks these prekeys as uploaded to the server.
    fn mark_prekeys_uploaded(&self, ids: &[u32]) -> impl Future<Output = Result<()>> + Send;
    /// How many stored prekeys are marked uploaded.
    fn uploaded_prekey_count(&self) -> impl Future<Output = Result<u64>> + Send;
    /// Up to `limit` prekeys not yet uploaded, in id order (generated before a failed upload, to send again).
    fn pending_prekeys(&self, limit: u32) -> impl Future<Output = Result<Vec<PreKey>>> + Send;
}

/// Group sender keys (serialized records) keyed by (group, sender address).
pub trait SenderKeyStore {
    /// Stores (or replaces) the sender key of `sender` in `group`.
    fn put_sender_key(
        &self,
        group: &str,
        sender: &str,
        record: &[u8],
    ) -> impl Future<Output = Result<()>> + Send;
    /// The sender key of `sender` in `group`.
    fn sender_key(&self, group: &str, sender: &str) -> impl Future<Output = Result<Option<Vec<u8>>>> + Send;
    /// Deletes the sender key of `sender` in `group`.
    fn delete_sender_key(&self, group: &str, sender: &str) -> impl Future<Output = Result<()>> + Send;
    /// The sender keys of every device of `user` (senders `user:*`) in every group, as (group, sender, record).
    fn user_sender_keys(
        &self,
        user: &str,
    ) -> impl Future<Output = Result<Vec<(String, String, Vec<u8>)>>> + Send;
    /// The devices (JID strings) this account's current sender key for `group` was distributed to, sorted.
    fn sender_key_recipients(&self, group: &str) -> impl Future<Output = Result<Vec<String>>> + Send;
    /// Records that this account's sender key for `group` reached `devices` (already recorded ones are kept).
    fn add_sender_key_recipients(
        &self,
        group: &str,
        devices: &[String],
    ) -> impl Future<Output = Result<()>> + Send;
    /// Forgets every recipient for `group`: the next message distributes the key to every device again (after
    /// the key was rotated, or a device must be reached again).
    fn clear_sender_key_recipients(&self, group: &str) -> impl Future<Output = Result<()>> + Send;
}

/// App-state sync keys (shared by the primary device).
pub trait AppStateKeyStore {
    /// Stores (or replaces) a key.
    fn put_app_state_sync_key(&self, key: &AppStateSyncKey) -> impl Future<Output = Result<()>> + Send;
    /// The key with `id`.
    fn app_state_sync_key(&self, id: &[u8]) -> impl Future<Output = Result<Option<AppStateSyncKey>>> + Send;
    /// The id of the newest key (highest timestamp, then highest id).
    fn latest_app_state_sync_key_id(&self) -> impl Future<Output = Result<Option<Vec<u8>>>> + Send;
    /// Every key, ordered by timestamp then id.
    fn app_state_sync_keys(&self) -> impl Future<Output = Result<Vec<AppStateSyncKey>>> + Send;
}

/// App-state collection versions, LTHashes and mutation MACs (protocol-facts §3.8).
pub trait AppStateStore {
    /// Stores the version and hash of collection `name`.
    fn put_app_state_version(
        &self,
        name: &str,
        version: &AppStateVersion,
    ) -> impl Future<Output = Result<()>> + Send;
    /// The version and hash of collection `name`.
    fn app_state_version(&self, name: &str) -> impl Future<Output = Result<Option<AppStateVersion>>> + Send;
    /// Deletes collection `name`: its version and every mutation MAC.
    fn delete_app_state_version(&self, name: &str) -> impl Future<Output = Result<()>> + Send;
    /// Stores (or replaces) many mutation MACs of collection `name` at `version`, atomically.
    fn put_mutation_macs(
        &self,
        name: &str,
        version: u64,
        macs: &[MutationMac],
    ) -> impl Future<Output = Result<()>> + Send;
    /// Deletes the mutation MACs with these index MACs.
    fn delete_mutation_macs(
        &self,
        name: &str,
        index_macs: &[[u8; 32]],
    ) -> impl Future<Output = Result<()>> + Send;
    /// The value MAC stored for `index_mac` in collection `name`.
    fn mutation_mac(
        &self,
        name: &str,
        index_mac: &[u8; 32],
    ) -> impl Future<Output = Result<Option<[u8; 32]>>> + Send;
}

/// The decryption event buffer (de-duplication and crash safety) and the outgoing retry buffer.
pub trait EventBufferStore {
    /// The buffered event with this ciphertext hash.
    fn buffered_event(&self, hash: &[u8; 32]) -> impl Future<Output = Result<Option<BufferedEvent>>> + Send;
    /// Records a decrypted event (its plaintext, or `None` once handled).
    fn put_buffered_event(
        &self,
        hash: &[u8; 32],
        event: &BufferedEvent,
    ) -> impl Future<Output = Result<()>> + Send;
    /// Drops the plaintexts of handled events, keeping their hashes for de-duplication; a hash that is not in the
    /// buffer is ignored. Clearing is idempotent and each hash is cleared on its own, so a backend may split a long
    /// list into several writes (a failure part-way leaves some cleared, which is harmless).
    fn clear_buffered_plaintexts(&self, hashes: &[[u8; 32]]) -> impl Future<Output = Result<()>> + Send;
    /// Deletes buffered events inserted before `cutoff`; returns how many.
    fn delete_old_buffered_events(&self, cutoff: UnixMillis) -> impl Future<Output = Result<u64>> + Send;
    /// Remembers an outgoing message's plaintext so a retry receipt can re-encrypt it.
    fn put_outgoing_event(
        &self,
        chat: &Jid,
        message_id: &str,
        plaintext: &[u8],
        now: UnixMillis,
    ) -> impl Future<Output = Result<()>> + Send;
    /// The remembered plaintext of an outgoing message.
    fn outgoing_event(
        &self,
        chat: &Jid,
        message_id: &str,
    ) -> impl Future<Output = Result<Option<Vec<u8>>>> + Send;
    /// Deletes outgoing messages remembered before `cutoff`; returns how many.
    fn delete_old_outgoing_events(&self, cutoff: UnixMillis) -> impl Future<Output = Result<u64>> + Send;
}

/// Contacts: address-book names, push names and business names.
pub trait ContactStore {
    /// Stores a contact's push name; returns `Some(previous)` (empty if there was none) when the name changed,
    /// `None` when it already was `name`.
    fn put_push_name(&self, jid: &Jid, name: &str) -> impl Future<Output = Result<Option<String>>> + Send;
    /// Stores a contact's business name; returns `Some(previous)` when it changed, like `put_push_name`.
    fn put_business_name(&self, jid: &Jid, name: &str)
    -> impl Future<Output = Result<Option<String>>> + Send;
    /// Stores the address-book names of many contacts at once, atomically.
    fn put_contact_names(&self, names: &[ContactName]) -> impl Future<Output = Result<()>> + Send;
    /// One contact.
    fn contact(&self, jid: &Jid) -> impl Future<Output = Result<Option<Contact>>> + Send;
    /// Every contact, ordered by JID text.
    fn contacts(&self) -> impl Future<Output = Result<Vec<Contact>>> + Send;
}

/// Per-chat settings (mute, pin, archive).
pub trait ChatSettingsStore {
    /// Sets the mute end time of `chat`.
    fn put_muted_until(&self, chat: &Jid, until: i64) -> impl Future<Output = Result<()>> + Send;
    /// Pins or unpins `chat`.
    fn put_pinned(&self, chat: &Jid, pinned: bool) -> impl Future<Output = Result<()>> + Send;
    /// Archives or unarchives `chat`.
    fn put_archived(&self, chat: &Jid, archived: bool) -> impl Future<Output = Result<()>> + Send;
    /// The settings of `chat` (`None` if nothing was ever set).
    fn chat_settings(&self, chat: &Jid) -> impl Future<Output = Result<Option<ChatSettings>>> + Send;
}

/// Message secrets and privacy tokens.
pub trait SecretStore {
    /// Stores many message secrets at once, atomically (an existing secret is kept: the first one wins).
    fn put_message_secrets(&self, secrets: &[MessageSecret]) -> impl Future<Output = Result<()>> + Send;
    /// The secret of one message.
    fn message_secret(
        &self,
        chat: &Jid,
        sender: &Jid,
        id: &str,
    ) -> impl Future<Output = Result<Option<Vec<u8>>>> + Send;
    /// Stores (or replaces) many privacy tokens at once.
    fn put_privacy_tokens(&self, tokens: &[PrivacyToken]) -> impl Future<Output = Result<()>> + Send;
    /// The privacy token of `user`.
    fn privacy_token(&self, user: &Jid) -> impl Future<Output = Result<Option<PrivacyToken>>> + Send;
    /// Deletes tokens older than `cutoff`; returns how many.
    fn delete_expired_privacy_tokens(&self, cutoff: UnixMillis) -> impl Future<Output = Result<u64>> + Send;
    /// Records that this account issued its own privacy token to `user` at `timestamp` (unix milliseconds; the
    /// "sender timestamp"), replacing an earlier record.
    fn put_issued_privacy_token(
        &self,
        user: &Jid,
        timestamp: UnixMillis,
    ) -> impl Future<Output = Result<()>> + Send;
    /// When this account last issued its privacy token to `user` (unix milliseconds), if ever.
    fn issued_privacy_token(&self, user: &Jid) -> impl Future<Output = Result<Option<UnixMillis>>> + Send;
    /// Stores (or replaces) the salt `cstoken`s are derived from (the NCT salt of a history sync).
    fn put_nct_salt(&self, salt: &[u8]) -> impl Future<Output = Result<()>> + Send;
    /// The stored NCT salt, if any.
    fn nct_salt(&self) -> impl Future<Output = Result<Option<Vec<u8>>>> + Send;
}

/// The write half of a transaction: the changes a decryption makes, applied together or not at all.
///
/// `commit` persists every change; dropping the transaction (or `rollback`) persists none.
pub trait StoreTransaction: Send + Sized {
    /// Stores (or replaces) the identity key of `address`.
    fn put_identity(&mut self, address: &str, key: &[u8; 32]) -> impl Future<Output = Result<()>> + Send;
    /// Deletes the identity key of `address`.
    fn delete_identity(&mut self, address: &str) -> impl Future<Output = Result<()>> + Send;
    /// Stores (or replaces) the session with `address`.
    fn put_session(&mut self, address: &str, session: &[u8]) -> impl Future<Output = Result<()>> + Send;
    /// Deletes the session with `address`.
    fn delete_session(&mut self, address: &str) -> impl Future<Output = Result<()>> + Send;
    /// Stores (or replaces) a sender key.
    fn put_sender_key(
        &mut self,
        group: &str,
        sender: &str,
        record: &[u8],
    ) -> impl Future<Output = Result<()>> + Send;
    /// Deletes the sender key of `sender` in `group`.
    fn delete_sender_key(&mut self, group: &str, sender: &str) -> impl Future<Output = Result<()>> + Send;
    /// Removes a used prekey.
    fn remove_prekey(&mut self, id: u32) -> impl Future<Output = Result<()>> + Send;
    /// Records a decrypted event.
    fn put_buffered_event(
        &mut self,
        hash: &[u8; 32],
        event: &BufferedEvent,
    ) -> impl Future<Output = Result<()>> + Send;
    /// Drops the plaintexts of handled events, keeping their hashes, with the rest of the transaction (as
    /// [`EventBufferStore::clear_buffered_plaintexts`]; an empty list writes nothing). The client folds the
    /// clearing of the messages it handled into the next decryption's transaction, so handling a message costs
    /// no write of its own.
    fn clear_buffered_plaintexts(&mut self, hashes: &[[u8; 32]]) -> impl Future<Output = Result<()>> + Send;
    /// Persists every change.
    fn commit(self) -> impl Future<Output = Result<()>> + Send;
    /// Discards every change (the same as dropping the transaction, but waits for the backend).
    fn rollback(self) -> impl Future<Output = Result<()>> + Send;
}

/// The store of one account: a cheap-to-clone handle implementing every per-account trait.
pub trait AccountStore:
    IdentityStore
    + SessionStore
    + PreKeyStore
    + SenderKeyStore
    + AppStateKeyStore
    + AppStateStore
    + EventBufferStore
    + ContactStore
    + ChatSettingsStore
    + SecretStore
    + Clone
    + Send
    + Sync
    + 'static
{
    /// The transaction type of this backend.
    type Transaction: StoreTransaction + 'static;
    /// The account's id.
    fn id(&self) -> AccountId;
    /// The account's device record.
    fn device(&self) -> impl Future<Output = Result<Device>> + Send;
    /// Replaces the account's device record (after pairing, a push-name change...).
    fn put_device(&self, device: &Device) -> impl Future<Output = Result<()>> + Send;
    /// Starts a transaction.
    fn transaction(&self) -> impl Future<Output = Result<Self::Transaction>> + Send;
}

/// The global LID to phone-number map (shared by every account of a backend).
pub trait LidStore {
    /// Stores mappings; a LID or phone number already mapped elsewhere is re-mapped (each side is unique).
    fn put_lid_mappings(&self, mappings: &[LidMapping]) -> impl Future<Output = Result<()>> + Send;
    /// The phone-number JID of a LID JID (same device number), if known.
    fn pn_for_lid(&self, lid: &Jid) -> impl Future<Output = Result<Option<Jid>>> + Send;
    /// The LID JID of a phone-number JID (same device number), if known.
    fn lid_for_pn(&self, pn: &Jid) -> impl Future<Output = Result<Option<Jid>>> + Send;
    /// The mappings of many phone-number users at once; users without one are absent.
    fn lids_for_pns(&self, pn_users: &[String]) -> impl Future<Output = Result<Vec<LidMapping>>> + Send;
}

/// A backend hosting many accounts (one database, or one in-memory map), with leases so that one account is
/// driven by one owner (process) at a time.
pub trait Backend: LidStore + Clone + Send + Sync + 'static {
    /// The per-account handle.
    type Account: AccountStore;
    /// Creates an account for a new device and returns its handle.
    fn create_account(&self, device: &Device) -> impl Future<Output = Result<Self::Account>> + Send;
    /// Opens an existing account.
    fn open_account(&self, id: AccountId) -> impl Future<Output = Result<Self::Account>> + Send;
    /// Every account, in id order.
    fn accounts(&self) -> impl Future<Output = Result<Vec<AccountId>>> + Send;
    /// The account whose device has this phone-number JID (compared with the device number).
    fn account_for_jid(&self, jid: &Jid) -> impl Future<Output = Result<Option<AccountId>>> + Send;
    /// Deletes an account and all its data (after logout).
    fn delete_account(&self, id: AccountId) -> impl Future<Output = Result<()>> + Send;
    /// Takes the lease of `account` for `owner` until `now + ttl_ms`, if it is free, expired, or already this
    /// owner's; otherwise fails with [`StoreError::LeaseHeld`](crate::StoreError::LeaseHeld).
    fn acquire_lease(
        &self,
        account: AccountId,
        owner: &str,
        now: UnixMillis,
        ttl_ms: i64,
    ) -> impl Future<Output = Result<Lease>> + Send;
    /// Extends a held lease to `now + ttl_ms`; fails with `LeaseLost` if the owner no longer holds it.
    fn renew_lease(
        &self,
        lease: &Lease,
        now: UnixMillis,
        ttl_ms: i64,
    ) -> impl Future<Output = Result<Lease>> + Send;
    /// Gives a lease up (a no-op if the owner no longer holds it).
    fn release_lease(&self, lease: &Lease) -> impl Future<Output = Result<()>> + Send;
}
