//! Protocol behaviour beyond the vectors, through the async store API with an in-memory store: out-of-order and
//! skipped messages across DH ratchet steps, replays, tampering, unknown versions, forward-jump bounds,
//! archived-state limits, bad records, sender-key edge cases, and a peer reinstall resolved by the caller.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test helpers fail loudly")]

use std::collections::HashMap;
use std::sync::Mutex;

use futures::executor::block_on;
use rand::SeedableRng;
use rand::rngs::StdRng;
use whatsapp_signal::store::{
    self, Direction, IdentityKeyStore, PreKeyStore, ProtocolAddress, SenderKeyName, SenderKeyStore,
    SessionStore, SignedPreKeyStore,
};
use whatsapp_signal::{
    CiphertextMessage, Error, KeyPair, PreKeyBundle, PreKeySignalMessage, PublicKey,
    SenderKeyDistributionMessage, SenderKeyMessage, SenderKeyRecord, SessionRecord, SignalMessage,
};

/// One device with everything in memory; records are kept serialized to exercise persistence.
struct Device {
    identity: KeyPair,
    registration_id: u32,
    identities: Mutex<HashMap<ProtocolAddress, PublicKey>>,
    sessions: Mutex<HashMap<ProtocolAddress, Vec<u8>>>,
    pre_keys: Mutex<HashMap<u32, KeyPair>>,
    signed_pre_keys: Mutex<HashMap<u32, KeyPair>>,
    sender_keys: Mutex<HashMap<SenderKeyName, Vec<u8>>>,
}

impl Device {
    fn new(rng: &mut StdRng, registration_id: u32) -> Self {
        Self {
            identity: KeyPair::generate(rng),
            registration_id,
            identities: Mutex::default(),
            sessions: Mutex::default(),
            pre_keys: Mutex::default(),
            signed_pre_keys: Mutex::default(),
            sender_keys: Mutex::default(),
        }
    }

    fn bundle(&self, rng: &mut StdRng, pre_key_id: Option<u32>) -> PreKeyBundle {
        let signed = KeyPair::generate(rng);
        let signed_id = 1 + self.signed_pre_keys.lock().unwrap().len() as u32;
        let signature = self
            .identity
            .private
            .sign(&signed.public.serialize(), rng)
            .to_vec();
        self.signed_pre_keys
            .lock()
            .unwrap()
            .insert(signed_id, signed.clone());
        let pre_key = pre_key_id.map(|id| {
            let pair = KeyPair::generate(rng);
            self.pre_keys.lock().unwrap().insert(id, pair.clone());
            (id, pair.public)
        });
        PreKeyBundle {
            registration_id: self.registration_id,
            identity_key: self.identity.public,
            signed_pre_key_id: signed_id,
            signed_pre_key: signed.public,
            signed_pre_key_signature: signature,
            pre_key,
        }
    }

    fn record(&self, address: &ProtocolAddress) -> SessionRecord {
        SessionRecord::deserialize(&self.sessions.lock().unwrap()[address]).unwrap()
    }
}

impl IdentityKeyStore for Device {
    async fn identity_key_pair(&self) -> Result<KeyPair, Error> {
        Ok(self.identity.clone())
    }
    async fn local_registration_id(&self) -> Result<u32, Error> {
        Ok(self.registration_id)
    }
    async fn is_trusted_identity(
        &self,
        address: &ProtocolAddress,
        identity: &PublicKey,
        _: Direction,
    ) -> Result<bool, Error> {
        Ok(self
            .identities
            .lock()
            .unwrap()
            .get(address)
            .is_none_or(|known| known == identity))
    }
    async fn save_identity(&self, address: &ProtocolAddress, identity: &PublicKey) -> Result<(), Error> {
        self.identities.lock().unwrap().insert(address.clone(), *identity);
        Ok(())
    }
}

impl SessionStore for Device {
    async fn load_session(&self, address: &ProtocolAddress) -> Result<Option<SessionRecord>, Error> {
        self.sessions
            .lock()
            .unwrap()
            .get(address)
            .map(|bytes| SessionRecord::deserialize(bytes))
            .transpose()
    }
    async fn store_session(&self, address: &ProtocolAddress, record: &SessionRecord) -> Result<(), Error> {
        self.sessions
            .lock()
            .unwrap()
            .insert(address.clone(), record.serialize());
        Ok(())
    }
}

impl PreKeyStore for Device {
    async fn load_pre_key(&self, id: u32) -> Result<Option<KeyPair>, Error> {
        Ok(self.pre_keys.lock().unwrap().get(&id).cloned())
    }
    async fn remove_pre_key(&self, id: u32) -> Result<(), Error> {
        self.pre_keys.lock().unwrap().remove(&id);
        Ok(())
    }
}

impl SignedPreKeyStore for Device {
    async fn load_signed_pre_key(&self, id: u32) -> Result<Option<KeyPair>, Error> {
        Ok(self.signed_pre_keys.lock().unwrap().get(&id).cloned())
    }
}

impl SenderKeyStore for Device {
    async fn load_sender_key(&self, name: &SenderKeyName) -> Result<Option<SenderKeyRecord>, Error> {
        self.sender_keys
            .lock()
            .unwrap()
            .get(name)
            .map(|bytes| SenderKeyRecord::deserialize(bytes))
            .transpose()
    }
    async fn store_sender_key(&self, name: &SenderKeyName, record: &SenderKeyRecord) -> Result<(), Error> {
        self.sender_keys
            .lock()
            .unwrap()
            .insert(name.clone(), record.serialize());
        Ok(())
    }
}

struct Pair {
    rng: StdRng,
    alice: Device,
    bob: Device,
    alice_addr: ProtocolAddress,
    bob_addr: ProtocolAddress,
}

fn setup(seed: u64) -> Pair {
    let mut rng = StdRng::seed_from_u64(seed);
    let alice = Device::new(&mut rng, 1111);
    let bob = Device::new(&mut rng, 2222);
    let mut pair = Pair {
        rng,
        alice,
        bob,
        alice_addr: ProtocolAddress::new("alice", 0),
        bob_addr: ProtocolAddress::new("bob", 1),
    };
    let bundle = pair.bob.bundle(&mut pair.rng, Some(31));
    block_on(store::process_bundle(
        &pair.alice,
        &pair.bob_addr,
        &bundle,
        &mut pair.rng,
    ))
    .unwrap();
    pair
}

impl Pair {
    fn alice_sends(&mut self, text: &str) -> CiphertextMessage {
        block_on(store::encrypt(&self.alice, &self.bob_addr, text.as_bytes())).unwrap()
    }
    fn bob_sends(&mut self, text: &str) -> CiphertextMessage {
        block_on(store::encrypt(&self.bob, &self.alice_addr, text.as_bytes())).unwrap()
    }
    fn bob_receives(&mut self, message: &CiphertextMessage) -> Result<Vec<u8>, Error> {
        receive(&self.bob, &self.alice_addr, message, &mut self.rng)
    }
    fn alice_receives(&mut self, message: &CiphertextMessage) -> Result<Vec<u8>, Error> {
        receive(&self.alice, &self.bob_addr, message, &mut self.rng)
    }
}

fn receive(
    device: &Device,
    from: &ProtocolAddress,
    message: &CiphertextMessage,
    rng: &mut StdRng,
) -> Result<Vec<u8>, Error> {
    match message {
        CiphertextMessage::PreKey(_) => {
            let parsed = PreKeySignalMessage::deserialize(message.serialized())?;
            block_on(store::decrypt_pre_key(device, from, &parsed, rng))
        }
        _ => {
            let parsed = SignalMessage::deserialize(message.serialized())?;
            block_on(store::decrypt(device, from, &parsed, rng))
        }
    }
}

/// Delivers `messages[i]` in `order` and checks each plaintext.
fn check(
    deliver: impl Fn(&mut Pair, &CiphertextMessage) -> Result<Vec<u8>, Error>,
    pair: &mut Pair,
    messages: &[(CiphertextMessage, String)],
    order: &[usize],
) {
    for &index in order {
        let (message, text) = &messages[index];
        assert_eq!(
            deliver(pair, message).unwrap(),
            text.as_bytes(),
            "message {index}"
        );
    }
}

#[test]
fn out_of_order_and_skipped_across_ratchet_steps() {
    let mut pair = setup(1);
    let first: Vec<_> = (0..5)
        .map(|i| format!("a{i}"))
        .map(|t| (pair.alice_sends(&t), t))
        .collect();
    assert!(first.iter().all(|(m, _)| m.kind() == "pkmsg"));
    check(Pair::bob_receives, &mut pair, &first, &[3, 0]);
    let reply: Vec<_> = (0..4)
        .map(|i| format!("b{i}"))
        .map(|t| (pair.bob_sends(&t), t))
        .collect();
    assert!(reply.iter().all(|(m, _)| m.kind() == "msg"));
    check(Pair::alice_receives, &mut pair, &reply, &[2]);
    let second: Vec<_> = (0..3)
        .map(|i| format!("c{i}"))
        .map(|t| (pair.alice_sends(&t), t))
        .collect();
    assert!(
        second.iter().all(|(m, _)| m.kind() == "msg"),
        "the reply acknowledged the session"
    );
    check(Pair::bob_receives, &mut pair, &second, &[1, 2]);
    // Old-chain messages after the ratchet moved on, via stored skipped keys.
    check(Pair::bob_receives, &mut pair, &first, &[4, 1, 2]);
    check(Pair::alice_receives, &mut pair, &reply, &[0, 3, 1]);
    check(Pair::bob_receives, &mut pair, &second, &[0]);
}

#[test]
fn replayed_message_rejected_and_record_unchanged() {
    let mut pair = setup(2);
    let hello = pair.alice_sends("hello");
    pair.bob_receives(&hello).unwrap();
    let reply = pair.bob_sends("hi");
    pair.alice_receives(&reply).unwrap();
    let before = pair.alice.sessions.lock().unwrap()[&pair.bob_addr].clone();
    assert_eq!(
        pair.alice_receives(&reply),
        Err(Error::DuplicateMessage { counter: 0 })
    );
    assert_eq!(pair.alice.sessions.lock().unwrap()[&pair.bob_addr], before);
    // A replayed pkmsg finds its session by base key and is a duplicate too.
    assert_eq!(
        pair.bob_receives(&hello),
        Err(Error::DuplicateMessage { counter: 0 })
    );
}

#[test]
fn tampered_mac_or_body_rejected() {
    let mut pair = setup(3);
    let first = pair.alice_sends("hello");
    pair.bob_receives(&first).unwrap();
    let reply = pair.bob_sends("secret");
    let wire = reply.serialized().to_vec();
    // The MAC, the last ciphertext byte and a byte inside the ciphertext.
    for position in [wire.len() - 1, wire.len() - 9, wire.len() - 20] {
        let mut tampered = wire.clone();
        tampered[position] ^= 0x01;
        let parsed = SignalMessage::deserialize(&tampered).unwrap();
        assert_eq!(
            block_on(store::decrypt(
                &pair.alice,
                &pair.bob_addr,
                &parsed,
                &mut pair.rng
            )),
            Err(Error::BadMac),
            "byte {position}"
        );
    }
    assert_eq!(pair.alice_receives(&reply).unwrap(), b"secret");
}

#[test]
fn unknown_version_rejected() {
    let mut pair = setup(4);
    let message = pair.alice_sends("hello");
    for version in [0x23u8, 0x43, 0x44, 0x03] {
        let mut wire = message.serialized().to_vec();
        wire[0] = version;
        assert_eq!(
            PreKeySignalMessage::deserialize(&wire),
            Err(Error::UnsupportedVersion { version })
        );
        assert_eq!(
            SignalMessage::deserialize(&wire),
            Err(Error::UnsupportedVersion { version })
        );
        assert_eq!(
            SenderKeyMessage::deserialize(&wire),
            Err(Error::UnsupportedVersion { version })
        );
        assert_eq!(
            SenderKeyDistributionMessage::deserialize(&wire),
            Err(Error::UnsupportedVersion { version })
        );
    }
}

#[test]
fn counter_jump_bounded() {
    let mut pair = setup(5);
    let first = pair.alice_sends("hello");
    pair.bob_receives(&first).unwrap();
    let messages: Vec<_> = (0..2002).map(|_| pair.bob_sends("x")).collect();
    assert_eq!(
        pair.alice_receives(&messages[2001]),
        Err(Error::CounterTooFarAhead {
            counter: 2001,
            current: 0
        })
    );
    assert_eq!(pair.alice_receives(&messages[2000]).unwrap(), b"x");
    // 2000 keys were stored: the oldest still decrypts.
    assert_eq!(pair.alice_receives(&messages[0]).unwrap(), b"x");
    assert_eq!(pair.alice_receives(&messages[2001]).unwrap(), b"x");
}

#[test]
fn archived_states_bounded_and_bad_records_rejected() {
    let mut pair = setup(6);
    for i in 0..45 {
        let bundle = pair.bob.bundle(&mut pair.rng, Some(100 + i));
        block_on(store::process_bundle(
            &pair.alice,
            &pair.bob_addr,
            &bundle,
            &mut pair.rng,
        ))
        .unwrap();
    }
    assert_eq!(pair.alice.record(&pair.bob_addr).archived_count(), 40);
    for bad in [
        &[0xffu8, 0xff, 0xff][..],
        &[0x0a, 0x02, 0x08, 0x03],
        &[0x0a, 0x05],
    ] {
        assert!(SessionRecord::deserialize(bad).is_err());
        assert!(SenderKeyRecord::deserialize(bad).is_err());
    }
    // A bundle with a bad signature is refused.
    let mut bundle = pair.bob.bundle(&mut pair.rng, None);
    bundle.signed_pre_key_signature[0] ^= 1;
    assert_eq!(
        block_on(store::process_bundle(
            &pair.alice,
            &pair.bob_addr,
            &bundle,
            &mut pair.rng
        )),
        Err(Error::BadSignature)
    );
}

#[test]
fn peer_reinstall_needs_caller_decision() {
    let mut pair = setup(7);
    let first = pair.alice_sends("before");
    pair.bob_receives(&first).unwrap();
    let reply = pair.bob_sends("ack");
    pair.alice_receives(&reply).unwrap();

    // Bob reinstalls: new identity, new prekeys, no sessions.
    let mut rng = StdRng::seed_from_u64(70);
    pair.bob = Device::new(&mut rng, 3333);
    let bundle = pair.bob.bundle(&mut rng, Some(5));
    let untrusted = Error::UntrustedIdentity {
        address: "bob:1".into(),
    };
    assert_eq!(
        block_on(store::process_bundle(
            &pair.alice,
            &pair.bob_addr,
            &bundle,
            &mut pair.rng
        )),
        Err(untrusted.clone())
    );
    // The caller accepts the new identity, then the session is re-established.
    block_on(pair.alice.save_identity(&pair.bob_addr, &bundle.identity_key)).unwrap();
    block_on(store::process_bundle(
        &pair.alice,
        &pair.bob_addr,
        &bundle,
        &mut pair.rng,
    ))
    .unwrap();
    assert_eq!(pair.alice.record(&pair.bob_addr).archived_count(), 1);
    let hello = pair.alice_sends("after");
    assert_eq!(hello.kind(), "pkmsg");
    assert_eq!(pair.bob_receives(&hello).unwrap(), b"after");
    assert!(
        !pair.bob.pre_keys.lock().unwrap().contains_key(&5),
        "the one-time prekey was consumed"
    );
    let reply = pair.bob_sends("welcome back");
    assert_eq!(pair.alice_receives(&reply).unwrap(), b"welcome back");

    // The other direction: Alice's identity changes and her pkmsg reaches the reinstalled Bob.
    let mut rng = StdRng::seed_from_u64(71);
    pair.alice = Device::new(&mut rng, 4444);
    let bundle = pair.bob.bundle(&mut rng, None);
    block_on(store::process_bundle(
        &pair.alice,
        &pair.bob_addr,
        &bundle,
        &mut pair.rng,
    ))
    .unwrap();
    let hello = pair.alice_sends("new phone");
    assert_eq!(
        pair.bob_receives(&hello),
        Err(Error::UntrustedIdentity {
            address: "alice:0".into()
        })
    );
    block_on(
        pair.bob
            .save_identity(&pair.alice_addr, &pair.alice.identity.public),
    )
    .unwrap();
    assert_eq!(pair.bob_receives(&hello).unwrap(), b"new phone");
}

#[test]
fn sender_keys_through_the_store() {
    let mut pair = setup(8);
    let name = SenderKeyName {
        group: "123@g.us".into(),
        sender: pair.alice_addr.clone(),
    };
    let skdm = block_on(store::create_distribution_message(
        &pair.alice,
        &name,
        &mut pair.rng,
    ))
    .unwrap();
    let parsed = SenderKeyDistributionMessage::deserialize(skdm.serialized()).unwrap();
    block_on(store::process_distribution_message(&pair.bob, &name, &parsed)).unwrap();
    let messages: Vec<_> = (0..4)
        .map(|i| {
            block_on(store::group_encrypt(
                &pair.alice,
                &name,
                format!("g{i}").as_bytes(),
                &mut pair.rng,
            ))
            .unwrap()
        })
        .collect();
    let decrypt = |m: &SenderKeyMessage| {
        block_on(store::group_decrypt(
            &pair.bob,
            &name,
            &SenderKeyMessage::deserialize(m.serialized()).unwrap(),
        ))
    };
    assert_eq!(decrypt(&messages[2]).unwrap(), b"g2");
    assert_eq!(decrypt(&messages[0]).unwrap(), b"g0");
    assert_eq!(decrypt(&messages[0]), Err(Error::DuplicateMessage { counter: 0 }));
    assert_eq!(decrypt(&messages[2]), Err(Error::DuplicateMessage { counter: 2 }));
    let mut tampered = messages[3].serialized().to_vec();
    let last = tampered.len() - 1;
    tampered[last] ^= 1;
    let tampered = SenderKeyMessage::deserialize(&tampered).unwrap();
    assert_eq!(
        block_on(store::group_decrypt(&pair.bob, &name, &tampered)),
        Err(Error::BadSignature)
    );
    assert_eq!(decrypt(&messages[3]).unwrap(), b"g3");
    assert_eq!(decrypt(&messages[1]).unwrap(), b"g1");
    // A repeated distribution message does not rewind the chain.
    block_on(store::process_distribution_message(&pair.bob, &name, &parsed)).unwrap();
    assert_eq!(decrypt(&messages[1]), Err(Error::DuplicateMessage { counter: 1 }));
}

#[test]
fn sender_key_limits() {
    let mut rng = StdRng::seed_from_u64(9);
    let mut sender = SenderKeyRecord::new();
    let skdm = whatsapp_signal::create_distribution_message(&mut sender, &mut rng).unwrap();
    let mut receiver = SenderKeyRecord::new();
    whatsapp_signal::process_distribution_message(&mut receiver, &skdm);
    let messages: Vec<_> = (0..2002)
        .map(|_| whatsapp_signal::group_encrypt(&mut sender, b"x", &mut rng).unwrap())
        .collect();
    assert_eq!(
        whatsapp_signal::group_decrypt(&mut receiver, &messages[2001]),
        Err(Error::CounterTooFarAhead {
            counter: 2001,
            current: 0
        })
    );
    assert_eq!(
        whatsapp_signal::group_decrypt(&mut receiver, &messages[2000]).unwrap(),
        b"x"
    );
    assert_eq!(
        whatsapp_signal::group_decrypt(&mut receiver, &messages[0]).unwrap(),
        b"x"
    );
    // Unknown key id.
    let mut other = SenderKeyRecord::new();
    let other_skdm = whatsapp_signal::create_distribution_message(&mut other, &mut rng).unwrap();
    let foreign = whatsapp_signal::group_encrypt(&mut other, b"y", &mut rng).unwrap();
    assert_eq!(
        whatsapp_signal::group_decrypt(&mut receiver, &foreign),
        Err(Error::NoSenderKeyState {
            key_id: other_skdm.key_id()
        })
    );
    // Up to five states are kept, newest first.
    let first_id = skdm.key_id();
    for id in 0..6u32 {
        let signing = KeyPair::generate(&mut rng);
        receiver.add_state(
            first_id.wrapping_add(id + 1),
            0,
            [id as u8; 32],
            signing.public,
            None,
        );
    }
    assert_eq!(
        whatsapp_signal::group_decrypt(&mut receiver, &messages[2001]),
        Err(Error::NoSenderKeyState { key_id: first_id })
    );
}

#[test]
fn a_record_absorbed_under_a_new_address_keeps_both_sessions_readable() {
    // Bob knows Alice under two addresses (her phone number, then her LID), with a different session under each.
    let mut pair = setup(8);
    let old = pair.alice_sends("on the old session");
    pair.bob_receives(&old).unwrap();
    let old_reply = pair.bob_sends("reply on the old session");
    pair.alice_receives(&old_reply).unwrap();

    let lid_addr = ProtocolAddress::new("alice_1", 0);
    let alice_pn_addr = pair.alice_addr.clone();
    let mut rng = StdRng::seed_from_u64(80);
    let bundle = pair.bob.bundle(&mut rng, Some(77));
    // The same device (same identity) starts a second session with Bob, which Bob sees under the LID address.
    let alice_second = Device {
        identity: pair.alice.identity.clone(),
        ..Device::new(&mut rng, 1111)
    };
    block_on(store::process_bundle(
        &alice_second,
        &pair.bob_addr,
        &bundle,
        &mut rng,
    ))
    .unwrap();
    let first_new = block_on(store::encrypt(
        &alice_second,
        &pair.bob_addr,
        b"on the new session",
    ))
    .unwrap();
    assert_eq!(
        receive(&pair.bob, &lid_addr, &first_new, &mut rng).unwrap(),
        b"on the new session"
    );

    // The old record is absorbed into the LID one: the LID session stays current, the old one is archived.
    let mut merged = pair.bob.record(&lid_addr);
    let current_identity = merged.remote_identity();
    merged.absorb(pair.bob.record(&alice_pn_addr));
    assert_eq!(merged.remote_identity(), current_identity);
    assert_eq!(merged.archived_count(), 1);
    pair.bob.sessions.lock().unwrap().remove(&alice_pn_addr);
    block_on(pair.bob.store_session(&lid_addr, &merged)).unwrap();
    // Both still decrypt under the one address, in either order.
    let later_old = block_on(store::encrypt(&pair.alice, &pair.bob_addr, b"old again")).unwrap();
    let later_new = block_on(store::encrypt(&alice_second, &pair.bob_addr, b"new again")).unwrap();
    assert_eq!(
        receive(&pair.bob, &lid_addr, &later_old, &mut rng).unwrap(),
        b"old again"
    );
    assert_eq!(
        receive(&pair.bob, &lid_addr, &later_new, &mut rng).unwrap(),
        b"new again"
    );

    // Absorbing into an empty record takes the other's current state; the archive stays bounded.
    let mut empty = SessionRecord::new();
    empty.absorb(pair.bob.record(&lid_addr));
    assert!(empty.has_current_session());
    let mut full = pair.bob.record(&lid_addr);
    for _ in 0..50 {
        full.absorb(pair.bob.record(&lid_addr));
    }
    assert_eq!(full.archived_count(), 40);
}
