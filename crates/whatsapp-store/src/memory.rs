//! The in-memory backend: every account in one map behind a mutex. For tests and short-lived programs.
//!
//! Operations run when the method is called (the returned future is already complete), so the backend works
//! under any executor. Nothing survives the process.

use core::future::{Future, Ready, ready};
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};

use whatsapp_binary::Jid;

use crate::{
    AccountId, AccountStore, AppStateKeyStore, AppStateStore, AppStateSyncKey, AppStateVersion, Backend,
    BufferedEvent, ChatSettings, ChatSettingsStore, Contact, ContactName, ContactStore, Device,
    EventBufferStore, IdentityStore, Lease, LidMapping, LidStore, MessageSecret, MutationMac, PreKey,
    PreKeyStore, PrivacyToken, Result, SecretStore, SenderKeyStore, SessionStore, StoreError,
    StoreTransaction, UnixMillis, prekey_id_of,
};

#[derive(Default)]
struct AccountData {
    device: Option<Device>,
    identities: BTreeMap<String, [u8; 32]>,
    sessions: BTreeMap<String, Vec<u8>>,
    prekeys: BTreeMap<u32, PreKey>,
    prekeys_reserved: u64,
    sender_keys: BTreeMap<(String, String), Vec<u8>>,
    sender_key_recipients: BTreeMap<String, std::collections::BTreeSet<String>>,
    app_state_keys: BTreeMap<Vec<u8>, AppStateSyncKey>,
    app_state_versions: BTreeMap<String, AppStateVersion>,
    mutation_macs: BTreeMap<(String, [u8; 32]), [u8; 32]>,
    buffered_events: BTreeMap<[u8; 32], BufferedEvent>,
    outgoing_events: BTreeMap<(String, String), (Vec<u8>, UnixMillis)>,
    contacts: BTreeMap<String, Contact>,
    chat_settings: BTreeMap<String, ChatSettings>,
    message_secrets: BTreeMap<(String, String, String), Vec<u8>>,
    privacy_tokens: BTreeMap<String, PrivacyToken>,
    issued_privacy_tokens: BTreeMap<String, UnixMillis>,
    nct_salt: Option<Vec<u8>>,
}

fn contact_entry<'a>(a: &'a mut AccountData, jid: &Jid) -> &'a mut Contact {
    a.contacts.entry(jid.to_string()).or_insert_with(|| Contact {
        jid: jid.clone(),
        ..Contact::default()
    })
}

fn clear_plaintexts(a: &mut AccountData, hashes: &[[u8; 32]]) {
    for hash in hashes {
        if let Some(e) = a.buffered_events.get_mut(hash) {
            e.plaintext = None;
        }
    }
}

fn replace_name(slot: &mut String, name: &str) -> Option<String> {
    (slot != name).then(|| core::mem::replace(slot, name.to_owned()))
}

#[derive(Default)]
struct State {
    next_id: i64,
    accounts: BTreeMap<AccountId, AccountData>,
    lid_to_pn: HashMap<String, String>,
    pn_to_lid: HashMap<String, String>,
    leases: HashMap<AccountId, Lease>,
}

/// The in-memory backend. Clones share the same data.
#[derive(Clone, Default)]
pub struct MemoryBackend {
    state: Arc<Mutex<State>>,
}

impl MemoryBackend {
    /// An empty backend.
    pub fn new() -> MemoryBackend {
        MemoryBackend::default()
    }
}

fn lock(state: &Mutex<State>) -> MutexGuard<'_, State> {
    // A panic while holding the lock leaves plain maps behind, which are still consistent per operation.
    state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// One account of a [`MemoryBackend`].
#[derive(Clone)]
pub struct MemoryAccount {
    id: AccountId,
    state: Arc<Mutex<State>>,
}

impl MemoryAccount {
    fn with<T>(&self, f: impl FnOnce(&mut AccountData) -> T) -> Ready<Result<T>> {
        let mut state = lock(&self.state);
        ready(match state.accounts.get_mut(&self.id) {
            Some(data) => Ok(f(data)),
            None => Err(StoreError::AccountNotFound(self.id)),
        })
    }
}

fn user_prefix_matches(address: &str, user: &str) -> bool {
    address
        .strip_prefix(user)
        .is_some_and(|rest| rest.starts_with(':'))
}

fn of_user<V: Clone>(map: &BTreeMap<String, V>, user: &str) -> Vec<(String, V)> {
    map.iter()
        .filter(|(address, _)| user_prefix_matches(address, user))
        .map(|(address, value)| (address.clone(), value.clone()))
        .collect()
}

fn remove_user<V>(map: &mut BTreeMap<String, V>, user: &str) -> u64 {
    let before = map.len();
    map.retain(|address, _| !user_prefix_matches(address, user));
    (before - map.len()) as u64
}

impl IdentityStore for MemoryAccount {
    fn put_identity(&self, address: &str, key: &[u8; 32]) -> impl Future<Output = Result<()>> + Send {
        self.with(|a| {
            a.identities.insert(address.to_owned(), *key);
        })
    }
    fn identity(&self, address: &str) -> impl Future<Output = Result<Option<[u8; 32]>>> + Send {
        self.with(|a| a.identities.get(address).copied())
    }
    fn delete_identity(&self, address: &str) -> impl Future<Output = Result<()>> + Send {
        self.with(|a| {
            a.identities.remove(address);
        })
    }
    fn delete_all_identities(&self, user: &str) -> impl Future<Output = Result<u64>> + Send {
        self.with(|a| remove_user(&mut a.identities, user))
    }
    fn user_identities(&self, user: &str) -> impl Future<Output = Result<Vec<(String, [u8; 32])>>> + Send {
        self.with(|a| of_user(&a.identities, user))
    }
}

impl SessionStore for MemoryAccount {
    fn session(&self, address: &str) -> impl Future<Output = Result<Option<Vec<u8>>>> + Send {
        self.with(|a| a.sessions.get(address).cloned())
    }
    fn sessions(
        &self,
        addresses: &[String],
    ) -> impl Future<Output = Result<BTreeMap<String, Vec<u8>>>> + Send {
        self.with(|a| {
            addresses
                .iter()
                .filter_map(|address| a.sessions.get(address).map(|s| (address.clone(), s.clone())))
                .collect()
        })
    }
    fn put_session(&self, address: &str, session: &[u8]) -> impl Future<Output = Result<()>> + Send {
        self.with(|a| {
            a.sessions.insert(address.to_owned(), session.to_vec());
        })
    }
    fn put_sessions(&self, sessions: &[(String, Vec<u8>)]) -> impl Future<Output = Result<()>> + Send {
        self.with(|a| a.sessions.extend(sessions.iter().cloned()))
    }
    fn delete_session(&self, address: &str) -> impl Future<Output = Result<()>> + Send {
        self.with(|a| {
            a.sessions.remove(address);
        })
    }
    fn delete_all_sessions(&self, user: &str) -> impl Future<Output = Result<u64>> + Send {
        self.with(|a| remove_user(&mut a.sessions, user))
    }
    fn user_sessions(&self, user: &str) -> impl Future<Output = Result<Vec<(String, Vec<u8>)>>> + Send {
        self.with(|a| of_user(&a.sessions, user))
    }
}

impl PreKeyStore for MemoryAccount {
    fn reserve_prekey_ids(&self, count: u32) -> impl Future<Output = Result<Vec<u32>>> + Send {
        self.with(|a| {
            let start = a.prekeys_reserved;
            a.prekeys_reserved += u64::from(count);
            (start..a.prekeys_reserved).map(prekey_id_of).collect()
        })
    }
    fn put_prekeys(&self, prekeys: &[PreKey]) -> impl Future<Output = Result<()>> + Send {
        self.with(|a| {
            for p in prekeys {
                a.prekeys.insert(p.id, p.clone());
            }
        })
    }
    fn prekey(&self, id: u32) -> impl Future<Output = Result<Option<PreKey>>> + Send {
        self.with(|a| a.prekeys.get(&id).cloned())
    }
    fn remove_prekey(&self, id: u32) -> impl Future<Output = Result<()>> + Send {
        self.with(|a| {
            a.prekeys.remove(&id);
        })
    }
    fn mark_prekeys_uploaded(&self, ids: &[u32]) -> impl Future<Output = Result<()>> + Send {
        self.with(|a| {
            for id in ids {
                if let Some(p) = a.prekeys.get_mut(id) {
                    p.uploaded = true;
                }
            }
        })
    }
    fn uploaded_prekey_count(&self) -> impl Future<Output = Result<u64>> + Send {
        self.with(|a| a.prekeys.values().filter(|p| p.uploaded).count() as u64)
    }
    fn pending_prekeys(&self, limit: u32) -> impl Future<Output = Result<Vec<PreKey>>> + Send {
        self.with(|a| {
            a.prekeys
                .values()
                .filter(|p| !p.uploaded)
                .take(limit as usize)
                .cloned()
                .collect()
        })
    }
}

impl SenderKeyStore for MemoryAccount {
    fn put_sender_key(
        &self,
        group: &str,
        sender: &str,
        record: &[u8],
    ) -> impl Future<Output = Result<()>> + Send {
        self.with(|a| {
            a.sender_keys
                .insert((group.to_owned(), sender.to_owned()), record.to_vec());
        })
    }
    fn sender_key(&self, group: &str, sender: &str) -> impl Future<Output = Result<Option<Vec<u8>>>> + Send {
        self.with(|a| a.sender_keys.get(&(group.to_owned(), sender.to_owned())).cloned())
    }
    fn delete_sender_key(&self, group: &str, sender: &str) -> impl Future<Output = Result<()>> + Send {
        self.with(|a| {
            a.sender_keys.remove(&(group.to_owned(), sender.to_owned()));
        })
    }
    fn user_sender_keys(
        &self,
        user: &str,
    ) -> impl Future<Output = Result<Vec<(String, String, Vec<u8>)>>> + Send {
        self.with(|a| {
            a.sender_keys
                .iter()
                .filter(|((_, sender), _)| user_prefix_matches(sender, user))
                .map(|((group, sender), record)| (group.clone(), sender.clone(), record.clone()))
                .collect()
        })
    }
    fn sender_key_recipients(&self, group: &str) -> impl Future<Output = Result<Vec<String>>> + Send {
        self.with(|a| {
            a.sender_key_recipients
                .get(group)
                .map(|set| set.iter().cloned().collect())
                .unwrap_or_default()
        })
    }
    fn add_sender_key_recipients(
        &self,
        group: &str,
        devices: &[String],
    ) -> impl Future<Output = Result<()>> + Send {
        self.with(|a| {
            a.sender_key_recipients
                .entry(group.to_owned())
                .or_default()
                .extend(devices.iter().cloned());
        })
    }
    fn clear_sender_key_recipients(&self, group: &str) -> impl Future<Output = Result<()>> + Send {
        self.with(|a| {
            a.sender_key_recipients.remove(group);
        })
    }
}

impl AppStateKeyStore for MemoryAccount {
    fn put_app_state_sync_key(&self, key: &AppStateSyncKey) -> impl Future<Output = Result<()>> + Send {
        self.with(|a| {
            a.app_state_keys.insert(key.id.clone(), key.clone());
        })
    }
    fn app_state_sync_key(&self, id: &[u8]) -> impl Future<Output = Result<Option<AppStateSyncKey>>> + Send {
        self.with(|a| a.app_state_keys.get(id).cloned())
    }
    fn latest_app_state_sync_key_id(&self) -> impl Future<Output = Result<Option<Vec<u8>>>> + Send {
        self.with(|a| {
            a.app_state_keys
                .values()
                .max_by(|x, y| (x.timestamp, &x.id).cmp(&(y.timestamp, &y.id)))
                .map(|k| k.id.clone())
        })
    }
    fn app_state_sync_keys(&self) -> impl Future<Output = Result<Vec<AppStateSyncKey>>> + Send {
        self.with(|a| {
            let mut keys: Vec<AppStateSyncKey> = a.app_state_keys.values().cloned().collect();
            keys.sort_by(|x, y| (x.timestamp, &x.id).cmp(&(y.timestamp, &y.id)));
            keys
        })
    }
}

impl AppStateStore for MemoryAccount {
    fn put_app_state_version(
        &self,
        name: &str,
        version: &AppStateVersion,
    ) -> impl Future<Output = Result<()>> + Send {
        self.with(|a| {
            a.app_state_versions.insert(name.to_owned(), version.clone());
        })
    }
    fn app_state_version(&self, name: &str) -> impl Future<Output = Result<Option<AppStateVersion>>> + Send {
        self.with(|a| a.app_state_versions.get(name).cloned())
    }
    fn delete_app_state_version(&self, name: &str) -> impl Future<Output = Result<()>> + Send {
        self.with(|a| {
            a.app_state_versions.remove(name);
            a.mutation_macs.retain(|(n, _), _| n != name);
        })
    }
    fn put_mutation_macs(
        &self,
        name: &str,
        _version: u64,
        macs: &[MutationMac],
    ) -> impl Future<Output = Result<()>> + Send {
        self.with(|a| {
            for m in macs {
                a.mutation_macs
                    .insert((name.to_owned(), m.index_mac), m.value_mac);
            }
        })
    }
    fn delete_mutation_macs(
        &self,
        name: &str,
        index_macs: &[[u8; 32]],
    ) -> impl Future<Output = Result<()>> + Send {
        self.with(|a| {
            for i in index_macs {
                a.mutation_macs.remove(&(name.to_owned(), *i));
            }
        })
    }
    fn mutation_mac(
        &self,
        name: &str,
        index_mac: &[u8; 32],
    ) -> impl Future<Output = Result<Option<[u8; 32]>>> + Send {
        self.with(|a| a.mutation_macs.get(&(name.to_owned(), *index_mac)).copied())
    }
}

impl EventBufferStore for MemoryAccount {
    fn buffered_event(&self, hash: &[u8; 32]) -> impl Future<Output = Result<Option<BufferedEvent>>> + Send {
        self.with(|a| a.buffered_events.get(hash).cloned())
    }
    fn put_buffered_event(
        &self,
        hash: &[u8; 32],
        event: &BufferedEvent,
    ) -> impl Future<Output = Result<()>> + Send {
        self.with(|a| {
            a.buffered_events.insert(*hash, event.clone());
        })
    }
    fn clear_buffered_plaintexts(&self, hashes: &[[u8; 32]]) -> impl Future<Output = Result<()>> + Send {
        self.with(|a| clear_plaintexts(a, hashes))
    }
    fn delete_old_buffered_events(&self, cutoff: UnixMillis) -> impl Future<Output = Result<u64>> + Send {
        self.with(|a| {
            let before = a.buffered_events.len();
            a.buffered_events.retain(|_, e| e.insert_time >= cutoff);
            (before - a.buffered_events.len()) as u64
        })
    }
    fn put_outgoing_event(
        &self,
        chat: &Jid,
        message_id: &str,
        plaintext: &[u8],
        now: UnixMillis,
    ) -> impl Future<Output = Result<()>> + Send {
        self.with(|a| {
            a.outgoing_events.insert(
                (chat.to_string(), message_id.to_owned()),
                (plaintext.to_vec(), now),
            );
        })
    }
    fn outgoing_event(
        &self,
        chat: &Jid,
        message_id: &str,
    ) -> impl Future<Output = Result<Option<Vec<u8>>>> + Send {
        self.with(|a| {
            a.outgoing_events
                .get(&(chat.to_string(), message_id.to_owned()))
                .map(|(p, _)| p.clone())
        })
    }
    fn delete_old_outgoing_events(&self, cutoff: UnixMillis) -> impl Future<Output = Result<u64>> + Send {
        self.with(|a| {
            let before = a.outgoing_events.len();
            a.outgoing_events.retain(|_, (_, t)| *t >= cutoff);
            (before - a.outgoing_events.len()) as u64
        })
    }
}

impl ContactStore for MemoryAccount {
    fn put_push_name(&self, jid: &Jid, name: &str) -> impl Future<Output = Result<Option<String>>> + Send {
        self.with(|a| replace_name(&mut contact_entry(a, jid).push_name, name))
    }
    fn put_business_name(
        &self,
        jid: &Jid,
        name: &str,
    ) -> impl Future<Output = Result<Option<String>>> + Send {
        self.with(|a| replace_name(&mut contact_entry(a, jid).business_name, name))
    }
    fn put_contact_names(&self, names: &[ContactName]) -> impl Future<Output = Result<()>> + Send {
        self.with(|a| {
            for n in names {
                let c = contact_entry(a, &n.jid);
                c.first_name = n.first_name.clone();
                c.full_name = n.full_name.clone();
            }
        })
    }
    fn contact(&self, jid: &Jid) -> impl Future<Output = Result<Option<Contact>>> + Send {
        self.with(|a| a.contacts.get(&jid.to_string()).cloned())
    }
    fn contacts(&self) -> impl Future<Output = Result<Vec<Contact>>> + Send {
        self.with(|a| a.contacts.values().cloned().collect())
    }
}

impl ChatSettingsStore for MemoryAccount {
    fn put_muted_until(&self, chat: &Jid, until: i64) -> impl Future<Output = Result<()>> + Send {
        self.with(|a| a.chat_settings.entry(chat.to_string()).or_default().muted_until = until)
    }
    fn put_pinned(&self, chat: &Jid, pinned: bool) -> impl Future<Output = Result<()>> + Send {
        self.with(|a| a.chat_settings.entry(chat.to_string()).or_default().pinned = pinned)
    }
    fn put_archived(&self, chat: &Jid, archived: bool) -> impl Future<Output = Result<()>> + Send {
        self.with(|a| a.chat_settings.entry(chat.to_string()).or_default().archived = archived)
    }
    fn chat_settings(&self, chat: &Jid) -> impl Future<Output = Result<Option<ChatSettings>>> + Send {
        self.with(|a| a.chat_settings.get(&chat.to_string()).copied())
    }
}

impl SecretStore for MemoryAccount {
    fn put_message_secrets(&self, secrets: &[MessageSecret]) -> impl Future<Output = Result<()>> + Send {
        self.with(|a| {
            for m in secrets {
                a.message_secrets
                    .entry((m.chat.to_string(), m.sender.to_string(), m.id.clone()))
                    .or_insert_with(|| m.secret.clone());
            }
        })
    }
    fn message_secret(
        &self,
        chat: &Jid,
        sender: &Jid,
        id: &str,
    ) -> impl Future<Output = Result<Option<Vec<u8>>>> + Send {
        self.with(|a| {
            a.message_secrets
                .get(&(chat.to_string(), sender.to_string(), id.to_owned()))
                .cloned()
        })
    }
    fn put_privacy_tokens(&self, tokens: &[PrivacyToken]) -> impl Future<Output = Result<()>> + Send {
        self.with(|a| {
            for t in tokens {
                a.privacy_tokens.insert(t.user.to_string(), t.clone());
            }
        })
    }
    fn privacy_token(&self, user: &Jid) -> impl Future<Output = Result<Option<PrivacyToken>>> + Send {
        self.with(|a| a.privacy_tokens.get(&user.to_string()).cloned())
    }
    fn delete_expired_privacy_tokens(&self, cutoff: UnixMillis) -> impl Future<Output = Result<u64>> + Send {
        self.with(|a| {
            let before = a.privacy_tokens.len();
            a.privacy_tokens.retain(|_, t| t.timestamp >= cutoff);
            (before - a.privacy_tokens.len()) as u64
        })
    }
    fn put_issued_privacy_token(
        &self,
        user: &Jid,
        timestamp: UnixMillis,
    ) -> impl Future<Output = Result<()>> + Send {
        self.with(|a| {
            a.issued_privacy_tokens.insert(user.to_string(), timestamp);
        })
    }
    fn issued_privacy_token(&self, user: &Jid) -> impl Future<Output = Result<Option<UnixMillis>>> + Send {
        self.with(|a| a.issued_privacy_tokens.get(&user.to_string()).copied())
    }
    fn put_nct_salt(&self, salt: &[u8]) -> impl Future<Output = Result<()>> + Send {
        self.with(|a| a.nct_salt = Some(salt.to_vec()))
    }
    fn nct_salt(&self) -> impl Future<Output = Result<Option<Vec<u8>>>> + Send {
        self.with(|a| a.nct_salt.clone())
    }
}

enum TxOp {
    PutIdentity(String, [u8; 32]),
    PutSession(String, Vec<u8>),
    DeleteSession(String),
    PutSenderKey(String, String, Vec<u8>),
    DeleteIdentity(String),
    DeleteSenderKey(String, String),
    RemovePreKey(u32),
    PutBufferedEvent([u8; 32], BufferedEvent),
    ClearBufferedPlaintexts(Vec<[u8; 32]>),
}

/// A transaction of a [`MemoryAccount`]: changes are queued and applied under one lock at commit.
pub struct MemoryTransaction {
    account: MemoryAccount,
    ops: Vec<TxOp>,
}

impl MemoryTransaction {
    fn push(&mut self, op: TxOp) -> Ready<Result<()>> {
        self.ops.push(op);
        ready(Ok(()))
    }
}

impl StoreTransaction for MemoryTransaction {
    fn put_identity(&mut self, address: &str, key: &[u8; 32]) -> impl Future<Output = Result<()>> + Send {
        self.push(TxOp::PutIdentity(address.to_owned(), *key))
    }
    fn put_session(&mut self, address: &str, session: &[u8]) -> impl Future<Output = Result<()>> + Send {
        self.push(TxOp::PutSession(address.to_owned(), session.to_vec()))
    }
    fn delete_session(&mut self, address: &str) -> impl Future<Output = Result<()>> + Send {
        self.push(TxOp::DeleteSession(address.to_owned()))
    }
    fn delete_identity(&mut self, address: &str) -> impl Future<Output = Result<()>> + Send {
        self.push(TxOp::DeleteIdentity(address.to_owned()))
    }
    fn delete_sender_key(&mut self, group: &str, sender: &str) -> impl Future<Output = Result<()>> + Send {
        self.push(TxOp::DeleteSenderKey(group.to_owned(), sender.to_owned()))
    }
    fn put_sender_key(
        &mut self,
        group: &str,
        sender: &str,
        record: &[u8],
    ) -> impl Future<Output = Result<()>> + Send {
        self.push(TxOp::PutSenderKey(
            group.to_owned(),
            sender.to_owned(),
            record.to_vec(),
        ))
    }
    fn remove_prekey(&mut self, id: u32) -> impl Future<Output = Result<()>> + Send {
        self.push(TxOp::RemovePreKey(id))
    }
    fn put_buffered_event(
        &mut self,
        hash: &[u8; 32],
        event: &BufferedEvent,
    ) -> impl Future<Output = Result<()>> + Send {
        self.push(TxOp::PutBufferedEvent(*hash, event.clone()))
    }
    fn clear_buffered_plaintexts(&mut self, hashes: &[[u8; 32]]) -> impl Future<Output = Result<()>> + Send {
        self.push(TxOp::ClearBufferedPlaintexts(hashes.to_vec()))
    }
    fn commit(self) -> impl Future<Output = Result<()>> + Send {
        let ops = self.ops;
        self.account.with(move |a| {
            for op in ops {
                match op {
                    TxOp::PutIdentity(k, v) => {
                        a.identities.insert(k, v);
                    }
                    TxOp::PutSession(k, v) => {
                        a.sessions.insert(k, v);
                    }
                    TxOp::DeleteSession(k) => {
                        a.sessions.remove(&k);
                    }
                    TxOp::PutSenderKey(g, s, v) => {
                        a.sender_keys.insert((g, s), v);
                    }
                    TxOp::DeleteIdentity(k) => {
                        a.identities.remove(&k);
                    }
                    TxOp::DeleteSenderKey(g, s) => {
                        a.sender_keys.remove(&(g, s));
                    }
                    TxOp::RemovePreKey(id) => {
                        a.prekeys.remove(&id);
                    }
                    TxOp::PutBufferedEvent(h, e) => {
                        a.buffered_events.insert(h, e);
                    }
                    TxOp::ClearBufferedPlaintexts(hashes) => clear_plaintexts(a, &hashes),
                }
            }
        })
    }
    fn rollback(self) -> impl Future<Output = Result<()>> + Send {
        ready(Ok(()))
    }
}

impl AccountStore for MemoryAccount {
    type Transaction = MemoryTransaction;

    fn id(&self) -> AccountId {
        self.id
    }
    fn device(&self) -> impl Future<Output = Result<Device>> + Send {
        let id = self.id;
        let device = self.with(|a| a.device.clone());
        async move { device.await?.ok_or(StoreError::AccountNotFound(id)) }
    }
    fn put_device(&self, device: &Device) -> impl Future<Output = Result<()>> + Send {
        self.with(|a| a.device = Some(device.clone()))
    }
    fn transaction(&self) -> impl Future<Output = Result<MemoryTransaction>> + Send {
        ready(Ok(MemoryTransaction {
            account: self.clone(),
            ops: Vec::new(),
        }))
    }
}

impl LidStore for MemoryBackend {
    fn put_lid_mappings(&self, mappings: &[LidMapping]) -> impl Future<Output = Result<()>> + Send {
        let mut s = lock(&self.state);
        for m in mappings {
            if let Some(old_pn) = s.lid_to_pn.remove(&m.lid) {
                s.pn_to_lid.remove(&old_pn);
            }
            if let Some(old_lid) = s.pn_to_lid.remove(&m.pn) {
                s.lid_to_pn.remove(&old_lid);
            }
            s.lid_to_pn.insert(m.lid.clone(), m.pn.clone());
            s.pn_to_lid.insert(m.pn.clone(), m.lid.clone());
        }
        ready(Ok(()))
    }
    fn pn_for_lid(&self, lid: &Jid) -> impl Future<Output = Result<Option<Jid>>> + Send {
        let s = lock(&self.state);
        ready(Ok(s.lid_to_pn.get(lid.user()).map(|pn| {
            Jid::with_device(pn.clone(), Jid::DEFAULT_USER_SERVER, lid.device())
        })))
    }
    fn lid_for_pn(&self, pn: &Jid) -> impl Future<Output = Result<Option<Jid>>> + Send {
        let s = lock(&self.state);
        ready(Ok(s.pn_to_lid.get(pn.user()).map(|lid| {
            Jid::with_device(lid.clone(), Jid::LID_SERVER, pn.device())
        })))
    }
    fn lids_for_pns(&self, pn_users: &[String]) -> impl Future<Output = Result<Vec<LidMapping>>> + Send {
        let s = lock(&self.state);
        let mut out: Vec<LidMapping> = pn_users
            .iter()
            .filter_map(|pn| {
                s.pn_to_lid.get(pn).map(|lid| LidMapping {
                    lid: lid.clone(),
                    pn: pn.clone(),
                })
            })
            .collect();
        out.sort();
        out.dedup();
        ready(Ok(out))
    }
}

impl Backend for MemoryBackend {
    type Account = MemoryAccount;

    fn create_account(&self, device: &Device) -> impl Future<Output = Result<MemoryAccount>> + Send {
        let mut s = lock(&self.state);
        s.next_id += 1;
        let id = AccountId(s.next_id);
        s.accounts.insert(
            id,
            AccountData {
                device: Some(device.clone()),
                ..AccountData::default()
            },
        );
        ready(Ok(MemoryAccount {
            id,
            state: self.state.clone(),
        }))
    }
    fn open_account(&self, id: AccountId) -> impl Future<Output = Result<MemoryAccount>> + Send {
        let s = lock(&self.state);
        ready(if s.accounts.contains_key(&id) {
            Ok(MemoryAccount {
                id,
                state: self.state.clone(),
            })
        } else {
            Err(StoreError::AccountNotFound(id))
        })
    }
    fn accounts(&self) -> impl Future<Output = Result<Vec<AccountId>>> + Send {
        ready(Ok(lock(&self.state).accounts.keys().copied().collect()))
    }
    fn account_for_jid(&self, jid: &Jid) -> impl Future<Output = Result<Option<AccountId>>> + Send {
        let s = lock(&self.state);
        ready(Ok(s
            .accounts
            .iter()
            .find(|(_, a)| a.device.as_ref().and_then(|d| d.jid.as_ref()) == Some(jid))
            .map(|(id, _)| *id)))
    }
    fn delete_account(&self, id: AccountId) -> impl Future<Output = Result<()>> + Send {
        let mut s = lock(&self.state);
        s.accounts.remove(&id);
        s.leases.remove(&id);
        ready(Ok(()))
    }
    fn acquire_lease(
        &self,
        account: AccountId,
        owner: &str,
        now: UnixMillis,
        ttl_ms: i64,
    ) -> impl Future<Output = Result<Lease>> + Send {
        let mut s = lock(&self.state);
        ready(match s.leases.get(&account) {
            Some(l) if l.owner != owner && l.expires_at_ms > now => Err(StoreError::LeaseHeld {
                account,
                owner: l.owner.clone(),
                expires_at_ms: l.expires_at_ms,
            }),
            _ => {
                let lease = Lease {
                    account,
                    owner: owner.to_owned(),
                    expires_at_ms: now.saturating_add(ttl_ms),
                };
                s.leases.insert(account, lease.clone());
                Ok(lease)
            }
        })
    }
    fn renew_lease(
        &self,
        lease: &Lease,
        now: UnixMillis,
        ttl_ms: i64,
    ) -> impl Future<Output = Result<Lease>> + Send {
        let mut s = lock(&self.state);
        ready(match s.leases.get_mut(&lease.account) {
            Some(l) if l.owner == lease.owner => {
                l.expires_at_ms = now.saturating_add(ttl_ms);
                Ok(l.clone())
            }
            _ => Err(StoreError::LeaseLost {
                account: lease.account,
                owner: lease.owner.clone(),
            }),
        })
    }
    fn release_lease(&self, lease: &Lease) -> impl Future<Output = Result<()>> + Send {
        let mut s = lock(&self.state);
        if s.leases
            .get(&lease.account)
            .is_some_and(|l| l.owner == lease.owner)
        {
            s.leases.remove(&lease.account);
        }
        ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::MAX_PREKEY_ID;

    #[test]
    fn prekey_ids_skip_zero_and_wrap_after_24_bits() {
        let check = |n: u64, id: u32| assert_eq!(prekey_id_of(n), id, "reservation {n}");
        check(0, 1);
        check(1, 2);
        check(u64::from(MAX_PREKEY_ID) - 1, MAX_PREKEY_ID);
        check(u64::from(MAX_PREKEY_ID), 1);
    }

    #[test]
    fn debug_redacts_secrets() {
        let device = crate::conformance::sample_device(0x42);
        let text = format!("{device:?}");
        assert!(text.contains("<redacted>"));
        assert!(!text.contains(&format!("{:?}", device.adv_secret)));
    }
}
