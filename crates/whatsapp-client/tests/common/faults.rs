//! A store wrapper that plays faults at commit time: the real SQL store underneath, with write transactions
//! refused now and then (as when the database is briefly unavailable: nothing of a refused transaction is
//! written), or this very process killed just before, during or just after the n-th commit (for the crash tests,
//! which run the client in a child process).
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};

use whatsapp_client::Jid;
use whatsapp_client::sql::{SqlAccount, SqlBackend, SqlTransaction};
use whatsapp_client::store::{
    AccountId, AccountStore, AppStateKeyStore, AppStateStore, AppStateSyncKey, AppStateVersion, Backend,
    BufferedEvent, ChatSettings, ChatSettingsStore, Contact, ContactName, ContactStore, Device,
    EventBufferStore, IdentityStore, Lease, LidMapping, LidStore, MessageSecret, MutationMac, PreKey,
    PreKeyStore, PrivacyToken, Result as StoreResult, SecretStore, SenderKeyStore, SessionStore, StoreError,
    StoreTransaction, UnixMillis,
};

/// Where, around the n-th commit, [`CommitFaults`] kills the process.
#[allow(clippy::enum_variant_names)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum KillPoint {
    /// The transaction's writes are made but `COMMIT` is never sent.
    BeforeCommit = 1,
    /// `COMMIT` is under way: its future was polled once.
    DuringCommit = 2,
    /// Committed, and nothing after it (an ack, an event) has happened.
    AfterCommit = 3,
}

impl KillPoint {
    pub(crate) const ALL: [KillPoint; 3] = [
        KillPoint::BeforeCommit,
        KillPoint::DuringCommit,
        KillPoint::AfterCommit,
    ];

    fn from_u8(value: u8) -> Option<KillPoint> {
        KillPoint::ALL.into_iter().find(|point| *point as u8 == value)
    }

    pub(crate) fn name(self) -> &'static str {
        match self {
            KillPoint::BeforeCommit => "before-commit",
            KillPoint::DuringCommit => "during-commit",
            KillPoint::AfterCommit => "after-commit",
        }
    }

    pub(crate) fn parse(name: &str) -> Option<KillPoint> {
        KillPoint::ALL.into_iter().find(|point| point.name() == name)
    }
}

/// Counts write transactions and decides which ones fail, or at which one the process dies.
#[derive(Debug, Default)]
pub(crate) struct CommitFaults {
    /// Fail every k-th commit (0: never).
    pub(crate) every: AtomicU64,
    /// Kill the process at this commit (0: never), at `kill_point`.
    pub(crate) kill_at: AtomicU64,
    pub(crate) kill_point: AtomicU8,
    pub(crate) commits: AtomicU64,
    pub(crate) failed: AtomicU64,
}

impl CommitFaults {
    /// Numbers the next commit and says whether it fails and whether (and where) the process dies at it.
    fn next(&self) -> (bool, Option<KillPoint>) {
        let every = self.every.load(Ordering::Relaxed);
        let n = self.commits.fetch_add(1, Ordering::Relaxed) + 1;
        let fail = every != 0 && n.is_multiple_of(every);
        if fail {
            self.failed.fetch_add(1, Ordering::Relaxed);
        }
        let kill = (self.kill_at.load(Ordering::Relaxed) == n)
            .then(|| KillPoint::from_u8(self.kill_point.load(Ordering::Relaxed)))
            .flatten();
        (fail, kill)
    }
}

/// Ends this process at once, as `kill -9` from outside would: no destructor runs, nothing is flushed.
pub(crate) fn kill_self(at: KillPoint) -> ! {
    eprintln!("crash child: killing itself {}", at.name());
    std::process::abort()
}

#[derive(Clone, Debug)]
pub(crate) struct FlakyBackend {
    pub(crate) inner: SqlBackend,
    pub(crate) switch: Arc<CommitFaults>,
}

#[derive(Clone, Debug)]
pub(crate) struct FlakyAccount {
    inner: SqlAccount,
    switch: Arc<CommitFaults>,
}

#[derive(Debug)]
pub(crate) struct FlakyTransaction {
    inner: SqlTransaction,
    switch: Arc<CommitFaults>,
}

fn injected() -> StoreError {
    StoreError::Backend(Box::new(std::io::Error::other("injected write failure")))
}

/// Methods that pass straight through to the wrapped store.
macro_rules! pass {
    ($($name:ident($($arg:ident: $ty:ty),*) -> $ret:ty;)*) => {
        $(fn $name(&self, $($arg: $ty),*) -> impl Future<Output = StoreResult<$ret>> + Send {
            self.inner.$name($($arg),*)
        })*
    };
}

impl StoreTransaction for FlakyTransaction {
    fn put_identity(
        &mut self,
        address: &str,
        key: &[u8; 32],
    ) -> impl Future<Output = StoreResult<()>> + Send {
        self.inner.put_identity(address, key)
    }
    fn put_session(&mut self, address: &str, session: &[u8]) -> impl Future<Output = StoreResult<()>> + Send {
        self.inner.put_session(address, session)
    }
    fn delete_session(&mut self, address: &str) -> impl Future<Output = StoreResult<()>> + Send {
        self.inner.delete_session(address)
    }
    fn delete_identity(&mut self, address: &str) -> impl Future<Output = StoreResult<()>> + Send {
        self.inner.delete_identity(address)
    }
    fn delete_sender_key(
        &mut self,
        group: &str,
        sender: &str,
    ) -> impl Future<Output = StoreResult<()>> + Send {
        self.inner.delete_sender_key(group, sender)
    }
    fn put_sender_key(
        &mut self,
        group: &str,
        sender: &str,
        record: &[u8],
    ) -> impl Future<Output = StoreResult<()>> + Send {
        self.inner.put_sender_key(group, sender, record)
    }
    fn remove_prekey(&mut self, id: u32) -> impl Future<Output = StoreResult<()>> + Send {
        self.inner.remove_prekey(id)
    }
    fn put_buffered_event(
        &mut self,
        hash: &[u8; 32],
        event: &BufferedEvent,
    ) -> impl Future<Output = StoreResult<()>> + Send {
        self.inner.put_buffered_event(hash, event)
    }
    fn clear_buffered_plaintexts(
        &mut self,
        hashes: &[[u8; 32]],
    ) -> impl Future<Output = StoreResult<()>> + Send {
        self.inner.clear_buffered_plaintexts(hashes)
    }
    async fn commit(self) -> StoreResult<()> {
        let (fail, kill) = self.switch.next();
        if fail {
            self.inner.rollback().await?;
            return Err(injected());
        }
        match kill {
            None => self.inner.commit().await,
            Some(KillPoint::BeforeCommit) => kill_self(KillPoint::BeforeCommit),
            Some(KillPoint::DuringCommit) => {
                let mut commit = std::pin::pin!(self.inner.commit());
                let _ = futures::poll!(commit.as_mut());
                kill_self(KillPoint::DuringCommit)
            }
            Some(KillPoint::AfterCommit) => {
                self.inner.commit().await?;
                kill_self(KillPoint::AfterCommit)
            }
        }
    }
    fn rollback(self) -> impl Future<Output = StoreResult<()>> + Send {
        self.inner.rollback()
    }
}

impl IdentityStore for FlakyAccount {
    pass! {
        put_identity(address: &str, key: &[u8; 32]) -> ();
        identity(address: &str) -> Option<[u8; 32]>;
        delete_identity(address: &str) -> ();
        delete_all_identities(user: &str) -> u64;
        user_identities(user: &str) -> Vec<(String, [u8; 32])>;
    }
}

impl SessionStore for FlakyAccount {
    pass! {
        session(address: &str) -> Option<Vec<u8>>;
        sessions(addresses: &[String]) -> BTreeMap<String, Vec<u8>>;
        put_session(address: &str, session: &[u8]) -> ();
        put_sessions(sessions: &[(String, Vec<u8>)]) -> ();
        delete_session(address: &str) -> ();
        delete_all_sessions(user: &str) -> u64;
        user_sessions(user: &str) -> Vec<(String, Vec<u8>)>;
    }
}

impl PreKeyStore for FlakyAccount {
    pass! {
        reserve_prekey_ids(count: u32) -> Vec<u32>;
        put_prekeys(prekeys: &[PreKey]) -> ();
        prekey(id: u32) -> Option<PreKey>;
        remove_prekey(id: u32) -> ();
        mark_prekeys_uploaded(ids: &[u32]) -> ();
        uploaded_prekey_count() -> u64;
        pending_prekeys(limit: u32) -> Vec<PreKey>;
    }
}

impl SenderKeyStore for FlakyAccount {
    pass! {
        put_sender_key(group: &str, sender: &str, record: &[u8]) -> ();
        sender_key(group: &str, sender: &str) -> Option<Vec<u8>>;
        delete_sender_key(group: &str, sender: &str) -> ();
        user_sender_keys(user: &str) -> Vec<(String, String, Vec<u8>)>;
        sender_key_recipients(group: &str) -> Vec<String>;
        add_sender_key_recipients(group: &str, devices: &[String]) -> ();
        clear_sender_key_recipients(group: &str) -> ();
    }
}

impl AppStateKeyStore for FlakyAccount {
    pass! {
        put_app_state_sync_key(key: &AppStateSyncKey) -> ();
        app_state_sync_key(id: &[u8]) -> Option<AppStateSyncKey>;
        latest_app_state_sync_key_id() -> Option<Vec<u8>>;
        app_state_sync_keys() -> Vec<AppStateSyncKey>;
    }
}

impl AppStateStore for FlakyAccount {
    pass! {
        put_app_state_version(name: &str, version: &AppStateVersion) -> ();
        app_state_version(name: &str) -> Option<AppStateVersion>;
        delete_app_state_version(name: &str) -> ();
        put_mutation_macs(name: &str, version: u64, macs: &[MutationMac]) -> ();
        delete_mutation_macs(name: &str, index_macs: &[[u8; 32]]) -> ();
        mutation_mac(name: &str, index_mac: &[u8; 32]) -> Option<[u8; 32]>;
    }
}

impl EventBufferStore for FlakyAccount {
    pass! {
        buffered_event(hash: &[u8; 32]) -> Option<BufferedEvent>;
        put_buffered_event(hash: &[u8; 32], event: &BufferedEvent) -> ();
        clear_buffered_plaintexts(hashes: &[[u8; 32]]) -> ();
        delete_old_buffered_events(cutoff: UnixMillis) -> u64;
        put_outgoing_event(chat: &Jid, message_id: &str, plaintext: &[u8], now: UnixMillis) -> ();
        outgoing_event(chat: &Jid, message_id: &str) -> Option<Vec<u8>>;
        delete_old_outgoing_events(cutoff: UnixMillis) -> u64;
    }
}

impl ContactStore for FlakyAccount {
    pass! {
        put_push_name(jid: &Jid, name: &str) -> Option<String>;
        put_business_name(jid: &Jid, name: &str) -> Option<String>;
        put_contact_names(names: &[ContactName]) -> ();
        contact(jid: &Jid) -> Option<Contact>;
        contacts() -> Vec<Contact>;
    }
}

impl ChatSettingsStore for FlakyAccount {
    pass! {
        put_muted_until(chat: &Jid, until: i64) -> ();
        put_pinned(chat: &Jid, pinned: bool) -> ();
        put_archived(chat: &Jid, archived: bool) -> ();
        chat_settings(chat: &Jid) -> Option<ChatSettings>;
    }
}

impl SecretStore for FlakyAccount {
    pass! {
        put_message_secrets(secrets: &[MessageSecret]) -> ();
        message_secret(chat: &Jid, sender: &Jid, id: &str) -> Option<Vec<u8>>;
        put_privacy_tokens(tokens: &[PrivacyToken]) -> ();
        privacy_token(user: &Jid) -> Option<PrivacyToken>;
        delete_expired_privacy_tokens(cutoff: UnixMillis) -> u64;
        put_issued_privacy_token(user: &Jid, timestamp: UnixMillis) -> ();
        issued_privacy_token(user: &Jid) -> Option<UnixMillis>;
        put_nct_salt(salt: &[u8]) -> ();
        nct_salt() -> Option<Vec<u8>>;
    }
}

impl AccountStore for FlakyAccount {
    type Transaction = FlakyTransaction;

    fn id(&self) -> AccountId {
        self.inner.id()
    }

    pass! {
        device() -> Device;
        put_device(device: &Device) -> ();
    }

    async fn transaction(&self) -> StoreResult<FlakyTransaction> {
        Ok(FlakyTransaction {
            inner: self.inner.transaction().await?,
            switch: Arc::clone(&self.switch),
        })
    }
}

impl LidStore for FlakyBackend {
    pass! {
        put_lid_mappings(mappings: &[LidMapping]) -> ();
        pn_for_lid(lid: &Jid) -> Option<Jid>;
        lid_for_pn(pn: &Jid) -> Option<Jid>;
        lids_for_pns(pn_users: &[String]) -> Vec<LidMapping>;
    }
}

impl FlakyBackend {
    /// `inner` with its commits under `switch`.
    pub(crate) fn new(inner: SqlBackend, switch: Arc<CommitFaults>) -> FlakyBackend {
        FlakyBackend { inner, switch }
    }

    fn wrap(&self, inner: SqlAccount) -> FlakyAccount {
        FlakyAccount {
            inner,
            switch: Arc::clone(&self.switch),
        }
    }
}

impl Backend for FlakyBackend {
    type Account = FlakyAccount;

    async fn create_account(&self, device: &Device) -> StoreResult<FlakyAccount> {
        Ok(self.wrap(self.inner.create_account(device).await?))
    }

    async fn open_account(&self, id: AccountId) -> StoreResult<FlakyAccount> {
        Ok(self.wrap(self.inner.open_account(id).await?))
    }

    pass! {
        accounts() -> Vec<AccountId>;
        account_for_jid(jid: &Jid) -> Option<AccountId>;
        delete_account(id: AccountId) -> ();
        acquire_lease(account: AccountId, owner: &str, now: UnixMillis, ttl_ms: i64) -> Lease;
        renew_lease(lease: &Lease, now: UnixMillis, ttl_ms: i64) -> Lease;
        release_lease(lease: &Lease) -> ();
    }
}
