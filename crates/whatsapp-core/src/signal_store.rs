//! The Signal stores over an account of `whatsapp-store`, with every change staged and written in one
//! transaction.
//!
//! A decryption changes several records at once (session, peer identity, a consumed prekey, a sender key). The
//! message may only be acknowledged once all of them are persisted, and if the process dies before that, the
//! redelivered message must still decrypt. [`StagedSignalStore`] gives both: the Signal functions read through
//! the staged changes to the account, write only to the stage, and [`StagedSignalStore::commit`] writes the stage
//! (plus, optionally, the decrypted event) in a single [`StoreTransaction`]. Dropping the stage discards it.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Mutex, MutexGuard};

use whatsapp_binary::Jid;
use whatsapp_signal::store::{
    Direction, IdentityKeyStore, PreKeyStore, ProtocolAddress, SenderKeyName, SenderKeyStore, SessionStore,
    SignedPreKeyStore,
};
use whatsapp_signal::{Error, KeyPair, PrivateKey, PublicKey, SenderKeyRecord, SessionRecord};
use whatsapp_store::{AccountStore, BufferedEvent, Device, KeyPairBytes, StoreError, StoreTransaction};

#[derive(Default)]
struct Stage {
    identities: BTreeMap<String, [u8; 32]>,
    /// Identities read from the account by this stage, as stored: saving the same key again (which the Signal
    /// functions do on every message) stages nothing, so an unchanged identity is not rewritten on each commit.
    stored_identities: BTreeMap<String, [u8; 32]>,
    sessions: BTreeMap<String, Vec<u8>>,
    sender_keys: BTreeMap<(String, String), Vec<u8>>,
    removed_prekeys: BTreeSet<u32>,
    /// Handled decrypt-buffer events whose plaintexts the commit drops (not Signal state: see
    /// [`StagedSignalStore::clear_buffered_plaintexts`]).
    cleared_plaintexts: Vec<[u8; 32]>,
}

/// The Signal store traits over `account`, staging every write until [`commit`](Self::commit).
pub struct StagedSignalStore<'a, A: AccountStore> {
    account: &'a A,
    identity: KeyPair,
    registration_id: u32,
    signed_prekey_id: u32,
    signed_prekey: KeyPair,
    stage: Mutex<Stage>,
}

impl<A: AccountStore> std::fmt::Debug for StagedSignalStore<'_, A> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StagedSignalStore")
            .field("account", &self.account.id())
            .finish_non_exhaustive()
    }
}

/// A stored key pair as is. Unlike [`crate::device::key_pair`] it does not recompute the public half (a
/// Curve25519 scalar multiplication): a stage is made for every message sent or received, and two of those per
/// stage were most of the CPU time of decrypting a message.
fn stored_pair(bytes: &KeyPairBytes) -> KeyPair {
    KeyPair {
        public: PublicKey::from_bytes(bytes.public),
        private: PrivateKey::from_bytes(bytes.private),
    }
}

fn store_error(error: StoreError) -> Error {
    Error::Store(error.to_string())
}

impl<'a, A: AccountStore> StagedSignalStore<'a, A> {
    /// A stage over `account`, whose own keys are those of `device`.
    pub fn new(account: &'a A, device: &Device) -> Self {
        StagedSignalStore {
            account,
            identity: stored_pair(&device.identity_key),
            registration_id: device.registration_id,
            signed_prekey_id: device.signed_prekey.id,
            signed_prekey: stored_pair(&device.signed_prekey.key_pair),
            stage: Mutex::new(Stage::default()),
        }
    }

    fn stage(&self) -> MutexGuard<'_, Stage> {
        // A panic while the lock was held cannot leave the maps half-updated (every write is one insert).
        self.stage.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Whether anything was staged.
    pub fn has_changes(&self) -> bool {
        let stage = self.stage();
        !(stage.identities.is_empty()
            && stage.sessions.is_empty()
            && stage.sender_keys.is_empty()
            && stage.removed_prekeys.is_empty())
    }

    /// Has the commit also drop the plaintexts of these handled decrypt-buffer events, keeping their hashes
    /// ([`StoreTransaction::clear_buffered_plaintexts`]). The receive path folds the clearing of the messages it
    /// emitted into the next decryption's transaction, so marking a message handled costs no write of its own.
    /// This does not count as a change for [`has_changes`](Self::has_changes).
    pub fn clear_buffered_plaintexts(&self, hashes: &[[u8; 32]]) {
        self.stage().cleared_plaintexts.extend_from_slice(hashes);
    }

    /// Writes every staged change in one transaction.
    pub async fn commit(self) -> Result<(), StoreError> {
        self.commit_with_event(None).await
    }

    /// Writes every staged change and, when given, the decrypted event (hash, event) in one transaction, so that
    /// a redelivered message is recognised by its hash and not processed twice.
    pub async fn commit_with_event(
        self,
        event: Option<(&[u8; 32], &BufferedEvent)>,
    ) -> Result<(), StoreError> {
        let stage = self
            .stage
            .into_inner()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let mut tx = self.account.transaction().await?;
        for (address, key) in &stage.identities {
            tx.put_identity(address, key).await?;
        }
        for (address, session) in &stage.sessions {
            tx.put_session(address, session).await?;
        }
        for ((group, sender), record) in &stage.sender_keys {
            tx.put_sender_key(group, sender, record).await?;
        }
        for id in &stage.removed_prekeys {
            tx.remove_prekey(*id).await?;
        }
        if let Some((hash, event)) = event {
            tx.put_buffered_event(hash, event).await?;
        }
        if !stage.cleared_plaintexts.is_empty() {
            tx.clear_buffered_plaintexts(&stage.cleared_plaintexts).await?;
        }
        tx.commit().await
    }
}

impl<A: AccountStore> IdentityKeyStore for StagedSignalStore<'_, A> {
    async fn identity_key_pair(&self) -> Result<KeyPair, Error> {
        Ok(self.identity.clone())
    }

    async fn local_registration_id(&self) -> Result<u32, Error> {
        Ok(self.registration_id)
    }

    /// WhatsApp's rule: an unknown identity is trusted on first use; a known one must not change (the caller
    /// clears it when the server announces an identity change, protocol-facts §3.7).
    async fn is_trusted_identity(
        &self,
        address: &ProtocolAddress,
        identity: &PublicKey,
        _direction: Direction,
    ) -> Result<bool, Error> {
        let address = address.to_string();
        let staged = self.stage().identities.get(&address).copied();
        let known = match staged {
            Some(key) => Some(key),
            None => {
                let stored = self.account.identity(&address).await.map_err(store_error)?;
                if let Some(key) = stored {
                    self.stage().stored_identities.insert(address, key);
                }
                stored
            }
        };
        Ok(known.is_none_or(|key| &key == identity.as_bytes()))
    }

    async fn save_identity(&self, address: &ProtocolAddress, identity: &PublicKey) -> Result<(), Error> {
        let address = address.to_string();
        let mut stage = self.stage();
        let unchanged = !stage.identities.contains_key(&address)
            && stage.stored_identities.get(&address) == Some(identity.as_bytes());
        if !unchanged {
            stage.identities.insert(address, *identity.as_bytes());
        }
        Ok(())
    }
}

impl<A: AccountStore> SessionStore for StagedSignalStore<'_, A> {
    async fn load_session(&self, address: &ProtocolAddress) -> Result<Option<SessionRecord>, Error> {
        let address = address.to_string();
        let staged = self.stage().sessions.get(&address).cloned();
        let bytes = match staged {
            Some(bytes) => Some(bytes),
            None => self.account.session(&address).await.map_err(store_error)?,
        };
        bytes.map(|b| SessionRecord::deserialize(&b)).transpose()
    }

    async fn store_session(&self, address: &ProtocolAddress, record: &SessionRecord) -> Result<(), Error> {
        self.stage()
            .sessions
            .insert(address.to_string(), record.serialize());
        Ok(())
    }
}

impl<A: AccountStore> PreKeyStore for StagedSignalStore<'_, A> {
    async fn load_pre_key(&self, id: u32) -> Result<Option<KeyPair>, Error> {
        if self.stage().removed_prekeys.contains(&id) {
            return Ok(None);
        }
        let prekey = self.account.prekey(id).await.map_err(store_error)?;
        Ok(prekey.map(|k| stored_pair(&k.key_pair)))
    }

    async fn remove_pre_key(&self, id: u32) -> Result<(), Error> {
        self.stage().removed_prekeys.insert(id);
        Ok(())
    }
}

impl<A: AccountStore> SignedPreKeyStore for StagedSignalStore<'_, A> {
    async fn load_signed_pre_key(&self, id: u32) -> Result<Option<KeyPair>, Error> {
        Ok((id == self.signed_prekey_id).then(|| self.signed_prekey.clone()))
    }
}

impl<A: AccountStore> SenderKeyStore for StagedSignalStore<'_, A> {
    async fn load_sender_key(&self, name: &SenderKeyName) -> Result<Option<SenderKeyRecord>, Error> {
        let key = (name.group.clone(), name.sender.to_string());
        let staged = self.stage().sender_keys.get(&key).cloned();
        let bytes = match staged {
            Some(bytes) => Some(bytes),
            None => self
                .account
                .sender_key(&key.0, &key.1)
                .await
                .map_err(store_error)?,
        };
        bytes.map(|b| SenderKeyRecord::deserialize(&b)).transpose()
    }

    async fn store_sender_key(&self, name: &SenderKeyName, record: &SenderKeyRecord) -> Result<(), Error> {
        self.stage()
            .sender_keys
            .insert((name.group.clone(), name.sender.to_string()), record.serialize());
        Ok(())
    }
}

/// What [`migrate_pn_to_lid`] moved from a phone-number address to a LID address.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Migrated {
    /// Sessions moved (merged into an existing LID session where there was one).
    pub sessions: usize,
    /// Identity keys moved (a LID identity already stored is kept).
    pub identities: usize,
    /// Sender keys moved (a LID sender key already stored is kept).
    pub sender_keys: usize,
}

impl Migrated {
    /// Whether nothing was stored under the phone number.
    pub fn is_empty(&self) -> bool {
        *self == Migrated::default()
    }
}

/// Moves everything Signal keeps about a user's devices from their phone-number address (`pn:device`) to their
/// LID address (`lid_1:device`), in one transaction, so that messages that now come from (or go to) the LID find
/// the sessions made while the user was addressed by phone number (protocol-facts §3.5; whatsmeow
/// `MigratePNToLID`). Without it, the first message after the switch fails to decrypt and costs a retry.
///
/// A session already stored under the LID address stays current and the phone-number one is archived into it
/// ([`SessionRecord::absorb`]), so a message still in flight on the old session decrypts too; identity keys and
/// sender keys already stored under the LID are kept. A record that cannot be parsed is replaced rather than
/// merged. Running it again finds nothing to move. Call it under the lock that serialises this account's Signal
/// writes: it reads before it writes.
pub async fn migrate_pn_to_lid<A: AccountStore>(
    account: &A,
    pn: &Jid,
    lid: &Jid,
) -> Result<Migrated, StoreError> {
    if pn.server() != Jid::DEFAULT_USER_SERVER || lid.server() != Jid::LID_SERVER {
        return Err(StoreError::InvalidArgument(format!(
            "a migration goes from a phone number to a LID, not from {pn} to {lid}"
        )));
    }
    let from = pn.signal_address_user();
    let to = lid.signal_address_user();
    let sessions = account.user_sessions(&from).await?;
    let identities = account.user_identities(&from).await?;
    let sender_keys = account.user_sender_keys(&from).await?;
    let moved = Migrated {
        sessions: sessions.len(),
        identities: identities.len(),
        sender_keys: sender_keys.len(),
    };
    if moved.is_empty() {
        return Ok(moved);
    }
    let renamed = |address: &str| -> String {
        let device = address.rsplit_once(':').map_or("0", |(_, device)| device);
        format!("{to}:{device}")
    };
    // Everything is read before the transaction opens: it only writes (a SQLite transaction that reads first
    // may fail to upgrade its lock, and a pool of one connection would wait on itself).
    let mut session_writes = Vec::with_capacity(sessions.len());
    for (address, bytes) in &sessions {
        let target = renamed(address);
        let merged = match account.session(&target).await? {
            Some(existing) => merge_sessions(&existing, bytes),
            None => bytes.clone(),
        };
        session_writes.push((target, merged));
    }
    let mut identity_writes = Vec::with_capacity(identities.len());
    for (address, key) in &identities {
        let target = renamed(address);
        let keep_existing = account.identity(&target).await?.is_some();
        identity_writes.push((target, (!keep_existing).then_some(*key)));
    }
    let mut sender_key_writes = Vec::with_capacity(sender_keys.len());
    for (group, sender, record) in &sender_keys {
        let target = renamed(sender);
        let keep_existing = account.sender_key(group, &target).await?.is_some();
        sender_key_writes.push((target, (!keep_existing).then(|| record.clone())));
    }
    let mut tx = account.transaction().await?;
    for ((address, _), (target, merged)) in sessions.iter().zip(&session_writes) {
        tx.put_session(target, merged).await?;
        tx.delete_session(address).await?;
    }
    for ((address, _), (target, key)) in identities.iter().zip(&identity_writes) {
        if let Some(key) = key {
            tx.put_identity(target, key).await?;
        }
        tx.delete_identity(address).await?;
    }
    for ((group, sender, _), (target, record)) in sender_keys.iter().zip(&sender_key_writes) {
        if let Some(record) = record {
            tx.put_sender_key(group, target, record).await?;
        }
        tx.delete_sender_key(group, sender).await?;
    }
    tx.commit().await?;
    Ok(moved)
}

/// The LID session `existing` with the phone-number session `moved` archived into it; whichever does not parse
/// gives way to the other.
fn merge_sessions(existing: &[u8], moved: &[u8]) -> Vec<u8> {
    match (
        SessionRecord::deserialize(existing),
        SessionRecord::deserialize(moved),
    ) {
        (Ok(mut record), Ok(other)) => {
            record.absorb(other);
            record.serialize()
        }
        (Ok(_), Err(_)) => existing.to_vec(),
        (Err(_), _) => moved.to_vec(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::executor::block_on;
    use rand::SeedableRng;
    use rand::rngs::StdRng;
    use whatsapp_signal::CiphertextMessage;
    use whatsapp_signal::store::{decrypt, decrypt_pre_key, encrypt, process_bundle};
    use whatsapp_store::{
        IdentityStore, MemoryBackend, PreKeyStore as _, SenderKeyStore as _, SessionStore as _,
    };

    use crate::testing::{bundle, device_with_prekey};

    struct Party {
        account: whatsapp_store::MemoryAccount,
        device: Device,
        address: ProtocolAddress,
    }

    async fn party(backend: &MemoryBackend, name: &str, rng: &mut StdRng) -> Party {
        let (account, device) = device_with_prekey(backend, rng).await;
        Party {
            account,
            device,
            address: ProtocolAddress::new(name, 0),
        }
    }

    /// Alice starts a session with Bob and sends a `pkmsg`; returns it and the prekey id it used.
    async fn first_message(alice: &Party, bob: &Party, rng: &mut StdRng) -> (CiphertextMessage, u32) {
        let bundle = bundle(&bob.account, &bob.device).await;
        let stage = StagedSignalStore::new(&alice.account, &alice.device);
        process_bundle(&stage, &bob.address, &bundle, rng).await.unwrap();
        let message = encrypt(&stage, &bob.address, b"hello bob").await.unwrap();
        stage.commit().await.unwrap();
        (message, bundle.pre_key.unwrap().0)
    }

    #[test]
    fn writes_reach_the_account_only_on_commit() {
        block_on(async {
            let mut rng = StdRng::seed_from_u64(11);
            let backend = MemoryBackend::new();
            let alice = party(&backend, "alice", &mut rng).await;
            let bob = party(&backend, "bob", &mut rng).await;
            let (message, prekey_id) = first_message(&alice, &bob, &mut rng).await;
            assert!(alice.account.session("bob:0").await.unwrap().is_some());
            let CiphertextMessage::PreKey(pkmsg) = message else {
                panic!("the first message is a pkmsg")
            };

            let stage = StagedSignalStore::new(&bob.account, &bob.device);
            let plaintext = decrypt_pre_key(&stage, &alice.address, &pkmsg, &mut rng)
                .await
                .unwrap();
            assert_eq!(plaintext, b"hello bob");
            assert!(stage.has_changes());
            // Nothing persisted yet: session absent, prekey still there.
            assert!(bob.account.session("alice:0").await.unwrap().is_none());
            assert!(bob.account.prekey(prekey_id).await.unwrap().is_some());
            stage.commit().await.unwrap();
            assert!(bob.account.session("alice:0").await.unwrap().is_some());
            assert!(bob.account.prekey(prekey_id).await.unwrap().is_none());
            assert_eq!(
                bob.account.identity("alice:0").await.unwrap(),
                Some(alice.device.identity_key.public)
            );

            // Bob answers over the new session; Alice decrypts it.
            let stage = StagedSignalStore::new(&bob.account, &bob.device);
            let reply = encrypt(&stage, &alice.address, b"hi alice").await.unwrap();
            stage.commit().await.unwrap();
            let CiphertextMessage::Whisper(reply) = reply else {
                panic!("an answer is a msg")
            };
            let stage = StagedSignalStore::new(&alice.account, &alice.device);
            assert_eq!(
                decrypt(&stage, &bob.address, &reply, &mut rng).await.unwrap(),
                b"hi alice"
            );
        });
    }

    #[test]
    fn an_unchanged_identity_is_not_written_again() {
        block_on(async {
            let mut rng = StdRng::seed_from_u64(13);
            let backend = MemoryBackend::new();
            let alice = party(&backend, "alice", &mut rng).await;
            let bob = party(&backend, "bob", &mut rng).await;
            let (message, _) = first_message(&alice, &bob, &mut rng).await;
            let CiphertextMessage::PreKey(pkmsg) = message else {
                panic!("the first message is a pkmsg")
            };
            let stage = StagedSignalStore::new(&bob.account, &bob.device);
            decrypt_pre_key(&stage, &alice.address, &pkmsg, &mut rng)
                .await
                .unwrap();
            // The first message stores Alice's identity.
            assert_eq!(stage.stage().identities.len(), 1);
            stage.commit().await.unwrap();

            // Messages in the established session save the same identity: only the session is staged.
            let stage = StagedSignalStore::new(&bob.account, &bob.device);
            let CiphertextMessage::Whisper(reply) = encrypt(&stage, &alice.address, b"again").await.unwrap()
            else {
                panic!("an answer is a msg")
            };
            assert!(stage.stage().identities.is_empty());
            stage.commit().await.unwrap();
            let stage = StagedSignalStore::new(&alice.account, &alice.device);
            assert_eq!(
                decrypt(&stage, &bob.address, &reply, &mut rng).await.unwrap(),
                b"again"
            );
            assert!(stage.stage().identities.is_empty());
            assert_eq!(stage.stage().sessions.len(), 1);

            // A different identity is staged (the trust check is the caller's).
            let other = KeyPair::generate(&mut rng).public;
            stage.save_identity(&bob.address, &other).await.unwrap();
            assert_eq!(stage.stage().identities.get("bob:0"), Some(other.as_bytes()));
            stage.commit().await.unwrap();
            assert_eq!(
                alice.account.identity("bob:0").await.unwrap(),
                Some(*other.as_bytes())
            );
        });
    }

    #[test]
    fn an_uncommitted_decryption_can_be_repeated() {
        block_on(async {
            let mut rng = StdRng::seed_from_u64(12);
            let backend = MemoryBackend::new();
            let alice = party(&backend, "alice", &mut rng).await;
            let bob = party(&backend, "bob", &mut rng).await;
            let (message, _) = first_message(&alice, &bob, &mut rng).await;
            let CiphertextMessage::PreKey(pkmsg) = message else {
                panic!("the first message is a pkmsg")
            };
            // The process dies after decrypting, before the commit: the stage is dropped.
            let stage = StagedSignalStore::new(&bob.account, &bob.device);
            decrypt_pre_key(&stage, &alice.address, &pkmsg, &mut rng)
                .await
                .unwrap();
            drop(stage);
            // The redelivered message still decrypts.
            let stage = StagedSignalStore::new(&bob.account, &bob.device);
            assert_eq!(
                decrypt_pre_key(&stage, &alice.address, &pkmsg, &mut rng)
                    .await
                    .unwrap(),
                b"hello bob"
            );
            let event = BufferedEvent {
                plaintext: Some(b"hello bob".to_vec()),
                server_timestamp: 1,
                insert_time: 2,
            };
            stage.commit_with_event(Some((&[7; 32], &event))).await.unwrap();
            use whatsapp_store::EventBufferStore;
            assert_eq!(bob.account.buffered_event(&[7; 32]).await.unwrap(), Some(event));
        });
    }

    #[test]
    fn handled_events_are_cleared_with_the_next_commit() {
        use whatsapp_store::EventBufferStore;
        block_on(async {
            let mut rng = StdRng::seed_from_u64(14);
            let backend = MemoryBackend::new();
            let bob = party(&backend, "bob", &mut rng).await;
            let event = |text: &[u8]| BufferedEvent {
                plaintext: Some(text.to_vec()),
                server_timestamp: 1,
                insert_time: 2,
            };
            bob.account
                .put_buffered_event(&[5; 32], &event(b"handled"))
                .await
                .unwrap();
            // A stage that is dropped (a decryption that failed) clears nothing.
            let stage = StagedSignalStore::new(&bob.account, &bob.device);
            stage.clear_buffered_plaintexts(&[[5; 32]]);
            assert!(!stage.has_changes());
            drop(stage);
            assert_eq!(
                bob.account.buffered_event(&[5; 32]).await.unwrap(),
                Some(event(b"handled"))
            );
            // The next decryption's commit records its own event and clears the handled one.
            let stage = StagedSignalStore::new(&bob.account, &bob.device);
            stage.clear_buffered_plaintexts(&[[5; 32]]);
            stage
                .commit_with_event(Some((&[6; 32], &event(b"next"))))
                .await
                .unwrap();
            assert_eq!(
                bob.account.buffered_event(&[5; 32]).await.unwrap(),
                Some(BufferedEvent {
                    plaintext: None,
                    ..event(b"handled")
                })
            );
            assert_eq!(
                bob.account.buffered_event(&[6; 32]).await.unwrap(),
                Some(event(b"next"))
            );
        });
    }

    #[test]
    fn a_changed_identity_is_not_trusted() {
        block_on(async {
            let mut rng = StdRng::seed_from_u64(13);
            let backend = MemoryBackend::new();
            let alice = party(&backend, "alice", &mut rng).await;
            let bob = party(&backend, "bob", &mut rng).await;
            alice.account.put_identity("bob:0", &[9; 32]).await.unwrap();
            let stage = StagedSignalStore::new(&alice.account, &alice.device);
            let error = process_bundle(
                &stage,
                &bob.address,
                &bundle(&bob.account, &bob.device).await,
                &mut rng,
            )
            .await
            .unwrap_err();
            assert!(matches!(error, Error::UntrustedIdentity { .. }), "{error:?}");
            assert!(!stage.has_changes());
        });
    }

    #[test]
    fn sessions_made_under_a_phone_number_move_to_the_lid() {
        block_on(async {
            let mut rng = StdRng::seed_from_u64(14);
            let backend = MemoryBackend::new();
            let mut alice = party(&backend, "15551234567", &mut rng).await;
            alice.address = ProtocolAddress::new("15551234567", 3);
            let bob = party(&backend, "bob", &mut rng).await;
            let pn = Jid::with_device("15551234567", Jid::DEFAULT_USER_SERVER, 3);
            let lid = Jid::with_device("98765", Jid::LID_SERVER, 3);
            let lid_address = ProtocolAddress::new("98765_1", 3);

            // Bob talks with Alice under her phone number: session, identity and a sender key.
            let (message, _) = first_message(&alice, &bob, &mut rng).await;
            let CiphertextMessage::PreKey(pkmsg) = message else {
                panic!("the first message is a pkmsg")
            };
            let stage = StagedSignalStore::new(&bob.account, &bob.device);
            decrypt_pre_key(&stage, &alice.address, &pkmsg, &mut rng)
                .await
                .unwrap();
            stage.commit().await.unwrap();
            bob.account
                .put_sender_key("g@g.us", "15551234567:3", b"sender key")
                .await
                .unwrap();
            bob.account
                .put_session("155512345678:3", b"another user")
                .await
                .unwrap();

            let moved = migrate_pn_to_lid(&bob.account, &pn, &lid).await.unwrap();
            assert_eq!(
                moved,
                Migrated {
                    sessions: 1,
                    identities: 1,
                    sender_keys: 1
                }
            );
            assert!(bob.account.session("15551234567:3").await.unwrap().is_none());
            assert!(bob.account.identity("15551234567:3").await.unwrap().is_none());
            assert_eq!(
                bob.account.identity("98765_1:3").await.unwrap(),
                Some(alice.device.identity_key.public)
            );
            assert_eq!(
                bob.account.sender_key("g@g.us", "98765_1:3").await.unwrap(),
                Some(b"sender key".to_vec())
            );
            assert!(bob.account.session("155512345678:3").await.unwrap().is_some());
            // Again: nothing left to move.
            assert!(
                migrate_pn_to_lid(&bob.account, &pn, &lid)
                    .await
                    .unwrap()
                    .is_empty()
            );

            // Alice's next message, on the same session, decrypts under the LID address.
            let stage = StagedSignalStore::new(&alice.account, &alice.device);
            let CiphertextMessage::PreKey(next) = encrypt(&stage, &bob.address, b"still me").await.unwrap()
            else {
                panic!("unanswered, Alice still sends pkmsg")
            };
            stage.commit().await.unwrap();
            let stage = StagedSignalStore::new(&bob.account, &bob.device);
            assert_eq!(
                decrypt_pre_key(&stage, &lid_address, &next, &mut rng)
                    .await
                    .unwrap(),
                b"still me"
            );

            // Only phone number to LID.
            assert!(matches!(
                migrate_pn_to_lid(&bob.account, &lid, &pn).await,
                Err(StoreError::InvalidArgument(_))
            ));
        });
    }

    #[test]
    fn a_phone_number_session_is_archived_into_an_existing_lid_session() {
        block_on(async {
            let mut rng = StdRng::seed_from_u64(15);
            let backend = MemoryBackend::new();
            let bob = party(&backend, "bob", &mut rng).await;
            let mut alice = party(&backend, "15550000001", &mut rng).await;
            alice.address = ProtocolAddress::new("15550000001", 0);
            let pn = Jid::new("15550000001", Jid::DEFAULT_USER_SERVER);
            let lid = Jid::new("4242", Jid::LID_SERVER);
            let lid_address = ProtocolAddress::new("4242_1", 0);

            // Two sessions of the same device (Alice), one seen under each address.
            let (old, _) = first_message(&alice, &bob, &mut rng).await;
            let CiphertextMessage::PreKey(old) = old else {
                panic!("the first message is a pkmsg")
            };
            let stage = StagedSignalStore::new(&bob.account, &bob.device);
            decrypt_pre_key(&stage, &alice.address, &old, &mut rng)
                .await
                .unwrap();
            stage.commit().await.unwrap();
            let stage = StagedSignalStore::new(&alice.account, &alice.device);
            let CiphertextMessage::PreKey(on_old) = encrypt(&stage, &bob.address, b"old").await.unwrap()
            else {
                panic!("still a pkmsg")
            };
            stage.commit().await.unwrap();
            alice.account.delete_session("bob:0").await.unwrap();
            let ids = bob.account.reserve_prekey_ids(1).await.unwrap();
            let prekeys = crate::device::generate_prekeys(&ids, &mut rng);
            bob.account.put_prekeys(&prekeys).await.unwrap();
            let (new, _) = first_message(&alice, &bob, &mut rng).await;
            let CiphertextMessage::PreKey(new) = new else {
                panic!("a new session starts with a pkmsg")
            };
            let stage = StagedSignalStore::new(&bob.account, &bob.device);
            decrypt_pre_key(&stage, &lid_address, &new, &mut rng)
                .await
                .unwrap();
            stage.commit().await.unwrap();

            migrate_pn_to_lid(&bob.account, &pn, &lid).await.unwrap();
            let merged =
                SessionRecord::deserialize(&bob.account.session("4242_1:0").await.unwrap().unwrap()).unwrap();
            assert!(merged.has_current_session());
            assert_eq!(merged.archived_count(), 1);
            // The message sent on the old session still decrypts, now under the LID.
            let stage = StagedSignalStore::new(&bob.account, &bob.device);
            assert_eq!(
                decrypt_pre_key(&stage, &lid_address, &on_old, &mut rng)
                    .await
                    .unwrap(),
                b"old"
            );
        });
    }
}
