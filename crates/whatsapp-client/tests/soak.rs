//! Fault-injection soak, on loopback: two accounts exchange many messages while the test server drops connections,
//! cuts them between a delivery and its ack, holds back IQ answers and acks, and forgets acks so that copies are
//! redelivered; then the same with a store that fails write transactions now and then. Nothing may be lost, no
//! message may be emitted twice, and afterwards every Signal session still decrypts.
//!
//! The faults are drawn from a seeded RNG (`WHATSAPP_SOAK_SEED`), so a failing run replays the same plan. The
//! number of messages is `WHATSAPP_SOAK_MESSAGES` (default [`DEFAULT_MESSAGES`], a few seconds in a debug build).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::{BTreeMap, HashSet};
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use common::*;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::sync::{mpsc, watch};
use whatsapp_client::sql::{SqlAccount, SqlBackend, SqlTransaction};
use whatsapp_client::store::{
    AccountId, AccountStore, AppStateKeyStore, AppStateStore, AppStateSyncKey, AppStateVersion, Backend,
    BufferedEvent, ChatSettings, ChatSettingsStore, Contact, ContactName, ContactStore, Device,
    EventBufferStore, IdentityStore, Lease, LidMapping, LidStore, MessageSecret, MutationMac, PreKey,
    PreKeyStore, PrivacyToken, Result as StoreResult, SecretStore, SenderKeyStore, SessionStore, StoreError,
    StoreTransaction, UnixMillis,
};
use whatsapp_client::{Client, Event, Jid};
use whatsapp_testserver::TestServer;

/// Messages per run unless `WHATSAPP_SOAK_MESSAGES` says otherwise.
const DEFAULT_MESSAGES: usize = 300;
/// The fault plan's seed unless `WHATSAPP_SOAK_SEED` says otherwise.
const DEFAULT_SEED: u64 = 0x5EED_0001;

fn env_number(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .map(|v| v.parse().unwrap_or_else(|_| panic!("{name} must be a number")))
        .unwrap_or(default)
}

// ---------------------------------------------------------------------------------------------------------------
// A store that fails every k-th write transaction: the real SQLite store underneath, with commits refused now and
// then (nothing of a refused transaction is written, as when the database is briefly unavailable).

/// Counts transactions and decides which ones fail.
#[derive(Debug, Default)]
struct FailureSwitch {
    /// Fail every k-th commit (0: never).
    every: AtomicU64,
    commits: AtomicU64,
    failed: AtomicU64,
}

impl FailureSwitch {
    fn should_fail(&self) -> bool {
        let every = self.every.load(Ordering::Relaxed);
        let n = self.commits.fetch_add(1, Ordering::Relaxed) + 1;
        let fail = every != 0 && n.is_multiple_of(every);
        if fail {
            self.failed.fetch_add(1, Ordering::Relaxed);
        }
        fail
    }
}

#[derive(Clone, Debug)]
struct FlakyBackend {
    inner: SqlBackend,
    switch: Arc<FailureSwitch>,
}

#[derive(Clone, Debug)]
struct FlakyAccount {
    inner: SqlAccount,
    switch: Arc<FailureSwitch>,
}

#[derive(Debug)]
struct FlakyTransaction {
    inner: SqlTransaction,
    switch: Arc<FailureSwitch>,
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
        if self.switch.should_fail() {
            self.inner.rollback().await?;
            return Err(injected());
        }
        self.inner.commit().await
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

// ---------------------------------------------------------------------------------------------------------------
// The soak itself.

/// One account's companion, its store's failure switch, and what its event stream delivered.
struct Peer {
    client: Client<FlakyBackend>,
    jid: Jid,
    switch: Arc<FailureSwitch>,
    /// Message events, as (id, text), in arrival order.
    messages: mpsc::UnboundedReceiver<(String, String)>,
    /// How many times the client logged in.
    logins: watch::Receiver<u64>,
    undecryptable: Arc<AtomicU64>,
    /// The ids of every message event so far.
    seen: HashSet<String>,
    /// Message events whose id was seen before.
    duplicates: usize,
}

async fn peer(server: &TestServer, number: &str) -> Peer {
    let phone = server.add_phone(number);
    let (inner, _path) = sqlite().await;
    let switch = Arc::new(FailureSwitch::default());
    let backend = FlakyBackend {
        inner,
        switch: Arc::clone(&switch),
    };
    let (client, mut events) = Client::builder(backend)
        .server(server.url(), server.trust_root())
        .iq_timeout(Duration::from_secs(10))
        .build()
        .await
        .unwrap();
    let jid = pair_with(&phone, &client, &mut events).await;
    let (message_tx, messages) = mpsc::unbounded_channel();
    let (login_tx, logins) = watch::channel(0u64);
    let undecryptable = Arc::new(AtomicU64::new(0));
    let counted = Arc::clone(&undecryptable);
    tokio::spawn(async move {
        while let Some(event) = events.recv().await {
            match event {
                Event::Message { info, message } => {
                    let _ = message_tx.send((info.id, message.conversation.unwrap_or_default()));
                }
                Event::Connected => login_tx.send_modify(|n| *n += 1),
                Event::UndecryptableMessage { info, error, .. } => {
                    eprintln!("undecryptable {}: {error}", info.id);
                    counted.fetch_add(1, Ordering::Relaxed);
                }
                _ => {}
            }
        }
    });
    Peer {
        client,
        jid,
        switch,
        messages,
        logins,
        undecryptable,
        seen: HashSet::new(),
        duplicates: 0,
    }
}

impl Peer {
    /// The next message event as (id, text), counting one whose id was seen before as a duplicate.
    async fn next_message(&mut self, missing: impl Fn() -> String) -> (String, String) {
        let (id, text) = tokio::time::timeout(STEP, self.messages.recv())
            .await
            .unwrap_or_else(|_| panic!("lost: {}", missing()))
            .unwrap();
        if !self.seen.insert(id.clone()) {
            eprintln!("duplicate message {id} ({text})");
            self.duplicates += 1;
        }
        (id, text)
    }

    /// Sends `text` to `to` until the server acknowledges it; returns its id and how many attempts failed. Every
    /// attempt carries the same id, so one that reached the server before failing is not delivered twice.
    async fn send_until_acked(&mut self, to: &str, text: &str) -> (String, u32) {
        let mut failures = 0;
        let id = self.client.generate_message_id().await.unwrap();
        let message = whatsapp_client::Message {
            conversation: Some(text.to_owned()),
            ..Default::default()
        };
        loop {
            self.logins.borrow_and_update();
            match self.client.send_message_with_id(&user(to), &message, &id).await {
                Ok(sent) => return (sent.id, failures),
                Err(error) => {
                    failures += 1;
                    assert!(
                        failures < 100,
                        "{text}: still failing after 100 attempts: {error}"
                    );
                    if !self.client.is_logged_in() {
                        tokio::time::timeout(STEP, self.logins.changed())
                            .await
                            .expect("no login after a failed send")
                            .unwrap();
                    }
                }
            }
        }
    }
}

/// What one soak run saw.
#[derive(Debug, Default)]
struct Tally {
    sent: usize,
    failed_attempts: u32,
    received: usize,
    duplicates: usize,
    store_failures: u64,
}

/// Sends `count` messages alternating at random between Alice and Bob, with the faults `plan` draws before each
/// one, then waits until every acknowledged message (and every text) arrived, exactly once per id.
async fn soak(
    server: &TestServer,
    alice: &mut Peer,
    bob: &mut Peer,
    count: usize,
    rng: &mut StdRng,
    network_faults: bool,
) -> Tally {
    let mut tally = Tally::default();
    // Per receiver: the ids the server acknowledged and the texts sent.
    let mut expected: [Vec<String>; 2] = Default::default();
    let mut texts: [Vec<String>; 2] = Default::default();
    let mut ignore_acks_until = 0;
    for i in 0..count {
        let to_bob = rng.gen_bool(0.5);
        if network_faults {
            let receiver = if to_bob { &bob.jid } else { &alice.jid };
            match rng.gen_range(0..100) {
                0..=2 => server.drop_connections(),
                3..=5 => server.cut_after_next_message(receiver),
                6..=8 => {
                    server.honour_acks(false);
                    ignore_acks_until = i + rng.gen_range(1..6);
                }
                _ => {}
            }
            if i >= ignore_acks_until {
                server.honour_acks(true);
            }
            let delay = |rng: &mut StdRng| {
                if rng.gen_bool(0.1) {
                    Duration::from_millis(rng.gen_range(1..40))
                } else {
                    Duration::ZERO
                }
            };
            server.set_iq_delay(delay(rng));
            server.set_ack_delay(delay(rng));
        }
        let text = format!("soak {i}");
        let (sender, to, slot) = if to_bob {
            (&mut *alice, BOB, 1)
        } else {
            (&mut *bob, PHONE, 0)
        };
        let (id, failures) = sender.send_until_acked(to, &text).await;
        tally.sent += 1;
        tally.failed_attempts += failures;
        expected[slot].push(id);
        texts[slot].push(text);
    }
    server.honour_acks(true);
    server.set_iq_delay(Duration::ZERO);
    server.set_ack_delay(Duration::ZERO);
    for (slot, peer) in [(0, &mut *alice), (1, &mut *bob)] {
        let mut missing: HashSet<String> = expected[slot].iter().cloned().collect();
        let mut missing_texts: HashSet<String> = texts[slot].iter().cloned().collect();
        while !missing.is_empty() || !missing_texts.is_empty() {
            let (id, text) = peer
                .next_message(|| {
                    format!(
                        "{} ids and {} texts never arrived, e.g. {:?}",
                        missing.len(),
                        missing_texts.len(),
                        missing_texts.iter().take(5).collect::<Vec<_>>()
                    )
                })
                .await;
            missing.remove(&id);
            missing_texts.remove(&text);
            tally.received += 1;
        }
        tally.duplicates += peer.duplicates;
    }
    tally.store_failures =
        alice.switch.failed.load(Ordering::Relaxed) + bob.switch.failed.load(Ordering::Relaxed);
    tally
}

/// A last message each way with every fault off: every session still decrypts, nothing else is pending.
async fn final_exchange(alice: &mut Peer, bob: &mut Peer) {
    final_message(alice, bob, BOB).await;
    final_message(bob, alice, PHONE).await;
    for peer in [alice, bob] {
        assert_eq!(peer.undecryptable.load(Ordering::Relaxed), 0, "a session broke");
        assert_eq!(peer.duplicates, 0, "a message was emitted twice");
        peer.client.disconnect().await;
    }
}

async fn final_message(sender: &mut Peer, receiver: &mut Peer, to: &str) {
    let (id, _) = sender.send_until_acked(to, "final").await;
    // Every soak message arrived once before; the next one is the final message.
    let (got, text) = receiver.next_message(|| "the final message".to_owned()).await;
    assert_eq!((got, text.as_str()), (id, "final"));
}

fn report(name: &str, count: usize, seed: u64, started: Instant, tally: &Tally) {
    println!(
        "{name}: {count} messages, seed {seed:#x}, {:.1} s; {} received, {} duplicates, {} failed send attempts, \
         {} injected store failures",
        started.elapsed().as_secs_f64(),
        tally.received,
        tally.duplicates,
        tally.failed_attempts,
        tally.store_failures,
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn soak_with_network_faults_loses_and_repeats_nothing() {
    let count = env_number("WHATSAPP_SOAK_MESSAGES", DEFAULT_MESSAGES as u64) as usize;
    let seed = env_number("WHATSAPP_SOAK_SEED", DEFAULT_SEED);
    let mut rng = StdRng::seed_from_u64(seed);
    let server = TestServer::start().await.unwrap();
    let mut alice = peer(&server, PHONE).await;
    let mut bob = peer(&server, BOB).await;
    let started = Instant::now();
    let tally = soak(&server, &mut alice, &mut bob, count, &mut rng, true).await;
    report("network faults", count, seed, started, &tally);
    assert_eq!(tally.duplicates, 0, "{tally:?}");
    // Exactly what was sent: a retried send keeps its id, and the server routes an id once.
    assert_eq!(tally.received, tally.sent, "{tally:?}");
    final_exchange(&mut alice, &mut bob).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn soak_with_failing_store_writes_loses_and_repeats_nothing() {
    let count = env_number("WHATSAPP_SOAK_MESSAGES", DEFAULT_MESSAGES as u64) as usize;
    let seed = env_number("WHATSAPP_SOAK_SEED", DEFAULT_SEED);
    let mut rng = StdRng::seed_from_u64(seed);
    let server = TestServer::start().await.unwrap();
    let mut alice = peer(&server, PHONE).await;
    let mut bob = peer(&server, BOB).await;
    // From now on every seventh write transaction of each store fails: a send's session update (the send is
    // refused and tried again) or a receive's (the message is not acknowledged and comes again).
    for peer in [&alice, &bob] {
        peer.switch.every.store(7, Ordering::Relaxed);
    }
    let started = Instant::now();
    let tally = soak(&server, &mut alice, &mut bob, count, &mut rng, false).await;
    report("failing store writes", count, seed, started, &tally);
    assert!(tally.store_failures > 0, "{tally:?}");
    assert_eq!(tally.duplicates, 0, "{tally:?}");
    // Exactly what was sent: a retried send keeps its id, and the server routes an id once.
    assert_eq!(tally.received, tally.sent, "{tally:?}");
    for peer in [&alice, &bob] {
        peer.switch.every.store(0, Ordering::Relaxed);
    }
    final_exchange(&mut alice, &mut bob).await;
}
