//! Signal protocol throughput: 1:1 encrypt and decrypt within a chain and across DH ratchet steps, X3DH
//! session setups, and sender-key encrypt/decrypt, on 120-byte padded messages (a typical text message).
//!
//! The same 1:1 operations run on libsignal-node with `benches/peers/libsignal_node.js`, for a comparison in the
//! same run (libsignal-node has no sender-key cipher).

#![allow(
    clippy::unwrap_used,
    missing_docs,
    reason = "benchmark setup fails loudly; criterion_group! generates an undocumented public function"
)]

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use rand::SeedableRng;
use rand::rngs::StdRng;
use whatsapp_signal::{
    CiphertextMessage, KeyPair, LocalIdentity, PreKeyBundle, PreKeySignalMessage, PreKeysForMessage,
    SenderKeyRecord, SessionRecord, SignalMessage,
};

const PLAINTEXT: [u8; 120] = [0x61; 120];
const BATCH: usize = 1000;

struct Peers {
    rng: StdRng,
    alice: LocalIdentity,
    bob: LocalIdentity,
    bundle: PreKeyBundle,
    pre_keys: PreKeysForMessage,
    alice_record: SessionRecord,
    bob_record: SessionRecord,
}

fn peers() -> Peers {
    let mut rng = StdRng::seed_from_u64(42);
    let alice = LocalIdentity {
        identity: KeyPair::generate(&mut rng),
        registration_id: 1,
    };
    let bob = LocalIdentity {
        identity: KeyPair::generate(&mut rng),
        registration_id: 2,
    };
    let signed = KeyPair::generate(&mut rng);
    let one_time = KeyPair::generate(&mut rng);
    let bundle = PreKeyBundle {
        registration_id: 2,
        identity_key: bob.identity.public,
        signed_pre_key_id: 1,
        signed_pre_key: signed.public,
        signed_pre_key_signature: bob
            .identity
            .private
            .sign(&signed.public.serialize(), &mut rng)
            .to_vec(),
        pre_key: Some((7, one_time.public)),
    };
    let pre_keys = PreKeysForMessage {
        signed_pre_key: signed,
        pre_key: Some(one_time),
    };
    let mut peers = Peers {
        rng,
        alice,
        bob,
        bundle,
        pre_keys,
        alice_record: SessionRecord::new(),
        bob_record: SessionRecord::new(),
    };
    // Establish and acknowledge the session, so later messages are plain `msg`.
    whatsapp_signal::process_bundle(
        &mut peers.alice_record,
        &peers.alice,
        &peers.bundle,
        &mut peers.rng,
    )
    .unwrap();
    let first = whatsapp_signal::encrypt(&mut peers.alice_record, &PLAINTEXT).unwrap();
    let first = PreKeySignalMessage::deserialize(first.serialized()).unwrap();
    whatsapp_signal::decrypt_pre_key(
        &mut peers.bob_record,
        &peers.bob,
        &first,
        &peers.pre_keys,
        &mut peers.rng,
    )
    .unwrap();
    let reply = whatsapp_signal::encrypt(&mut peers.bob_record, &PLAINTEXT).unwrap();
    decrypt(&mut peers.alice_record, &reply, &mut peers.rng);
    peers
}

fn decrypt(record: &mut SessionRecord, message: &CiphertextMessage, rng: &mut StdRng) -> Vec<u8> {
    let parsed = SignalMessage::deserialize(message.serialized()).unwrap();
    whatsapp_signal::decrypt(record, &parsed, rng).unwrap()
}

fn sessions(c: &mut Criterion) {
    let mut group = c.benchmark_group("signal_session");
    let mut p = peers();

    group.throughput(Throughput::Elements(1));
    group.bench_function("x3dh_setup", |b| {
        let mut record = SessionRecord::new();
        b.iter(|| whatsapp_signal::process_bundle(&mut record, &p.alice, &p.bundle, &mut p.rng).unwrap());
    });
    let mut p = peers();
    group.bench_function("encrypt_within_chain", |b| {
        let mut record = p.alice_record.clone();
        b.iter(|| whatsapp_signal::encrypt(&mut record, &PLAINTEXT).unwrap());
    });

    group.throughput(Throughput::Elements(BATCH as u64));
    let messages: Vec<_> = (0..BATCH)
        .map(|_| whatsapp_signal::encrypt(&mut p.alice_record, &PLAINTEXT).unwrap())
        .collect();
    group.bench_function("decrypt_within_chain", |b| {
        b.iter_batched(
            || (p.bob_record.clone(), StdRng::seed_from_u64(1)),
            |(mut record, mut rng)| {
                for message in &messages {
                    decrypt(&mut record, message, &mut rng);
                }
            },
            BatchSize::LargeInput,
        );
    });

    // Each message answers the previous one, so every decryption performs a DH ratchet step (and the next
    // encryption uses the new chain).
    group.throughput(Throughput::Elements(2));
    let mut p = peers();
    group.bench_function("encrypt_decrypt_dh_ratchet_step", |b| {
        b.iter(|| {
            let to_bob = whatsapp_signal::encrypt(&mut p.alice_record, &PLAINTEXT).unwrap();
            decrypt(&mut p.bob_record, &to_bob, &mut p.rng);
            let to_alice = whatsapp_signal::encrypt(&mut p.bob_record, &PLAINTEXT).unwrap();
            decrypt(&mut p.alice_record, &to_alice, &mut p.rng);
        });
    });
    group.finish();
}

fn sender_keys(c: &mut Criterion) {
    let mut group = c.benchmark_group("signal_sender_key");
    let mut rng = StdRng::seed_from_u64(7);
    let mut sender = SenderKeyRecord::new();
    let skdm = whatsapp_signal::create_distribution_message(&mut sender, &mut rng).unwrap();
    let mut receiver = SenderKeyRecord::new();
    whatsapp_signal::process_distribution_message(&mut receiver, &skdm);

    group.throughput(Throughput::Elements(1));
    group.bench_function("encrypt", |b| {
        let mut record = sender.clone();
        b.iter(|| whatsapp_signal::group_encrypt(&mut record, &PLAINTEXT, &mut rng).unwrap());
    });
    group.throughput(Throughput::Elements(BATCH as u64));
    let messages: Vec<_> = (0..BATCH)
        .map(|_| whatsapp_signal::group_encrypt(&mut sender, &PLAINTEXT, &mut rng).unwrap())
        .collect();
    group.bench_function("decrypt", |b| {
        b.iter_batched(
            || receiver.clone(),
            |mut record| {
                for message in &messages {
                    whatsapp_signal::group_decrypt(&mut record, message).unwrap();
                }
            },
            BatchSize::LargeInput,
        );
    });
    group.finish();
}

criterion_group!(benches, sessions, sender_keys);
criterion_main!(benches);
