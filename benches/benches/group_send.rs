//! Group send to 1,000 devices with established Signal sessions: the CPU time to build the `<message>` stanza (from
//! the serialized `Message` to the encoded bytes), with `whatsapp-core`'s public functions over an in-memory
//! account (so no database time is included; the store bench measures loading 1,000 sessions from SQL).
//!
//! - `first_send_1000_devices`: a new sender key, its SKDM encrypted pairwise for each of the 1,000 devices, the
//!   `skmsg`, the stanza and its encoding.
//! - `next_send_tracked`: the next message. The client remembers which devices hold its sender key, so the stanza
//!   carries the `skmsg` alone.
//! - `next_send_skdm_every_send`: the next message under whatsmeow's policy, which distributes the SKDM to every
//!   device on every send: the same work as the first send, with the existing key. It runs the same functions of
//!   this workspace (not whatsmeow's code), so the difference is that of the policy alone.
//! - `encode_stanza_1000_copies`: the binary encoding of the first send's stanza alone.
//!
//! Each iteration stages its changes on top of the same committed state and drops them, so every iteration does
//! the same work. Set-up (1,000 X3DH handshakes, both sides) is not timed.

#![allow(
    missing_docs,
    reason = "criterion_group! generates an undocumented public function"
)]
#![allow(clippy::expect_used, reason = "benchmark setup fails loudly")]

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use rand::SeedableRng;
use rand::rngs::StdRng;
use whatsapp_benches::sessions::{device_jids, establish, text_message};
use whatsapp_binary::{Jid, Node};
use whatsapp_core::group;
use whatsapp_core::message::encrypt_for_devices;
use whatsapp_core::signal_store::StagedSignalStore;
use whatsapp_proto::ProtoMessage;
use whatsapp_store::{Backend, Device, MemoryAccount, MemoryBackend};

const DEVICES: usize = 1_000;

struct Sender {
    account: MemoryAccount,
    device: Device,
    own: Jid,
    devices: Vec<Jid>,
}

/// Builds the stanza of one group send; `skdm` says whether the SKDM goes to every device.
async fn build(sender: &Sender, group_jid: &Jid, skdm: bool, rng: &mut StdRng) -> Vec<u8> {
    let stage = StagedSignalStore::new(&sender.account, &sender.device);
    let copies = if skdm {
        let distribution = group::distribution_message(&stage, group_jid, &sender.own, rng)
            .await
            .expect("skdm");
        encrypt_for_devices(&stage, &sender.devices, &group::encode(&distribution), rng)
            .await
            .expect("pairwise copies")
    } else {
        Vec::new()
    };
    let skmsg = group::encrypt(
        &stage,
        group_jid,
        &sender.own,
        &text_message().encode_to_vec(),
        rng,
    )
    .await
    .expect("skmsg");
    let stanza = group::message_stanza(
        "3EB0ABCDEF0123456789AB",
        group_jid,
        &whatsapp_core::message::StanzaAttrs::of(&Default::default()),
        &copies,
        &skmsg,
        b"",
    );
    whatsapp_binary::encode(&stanza)
}

fn group_send(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    let mut rng = StdRng::seed_from_u64(1000);
    let backend = MemoryBackend::new();
    let mut device = whatsapp_core::device::new_device(&mut rng);
    let own = Jid::with_device("100000000000001", Jid::LID_SERVER, 7);
    device.lid = Some(own.clone());
    let account = rt.block_on(backend.create_account(&device)).expect("account");
    let devices = device_jids(DEVICES);
    rt.block_on(establish(&account, &device, &devices, &mut rng));
    let sender = Sender {
        account,
        device,
        own,
        devices,
    };
    // A group this device has never sent to, and one whose sender key exists and reached every device.
    let new_group = Jid::new("120363000000000001", Jid::GROUP_SERVER);
    let known_group = Jid::new("120363000000000002", Jid::GROUP_SERVER);
    rt.block_on(async {
        let stage = StagedSignalStore::new(&sender.account, &sender.device);
        group::distribution_message(&stage, &known_group, &sender.own, &mut rng)
            .await
            .expect("sender key");
        stage.commit().await.expect("commit sender key");
    });

    let first = rt.block_on(build(&sender, &new_group, true, &mut rng));
    let next = rt.block_on(build(&sender, &known_group, false, &mut rng));
    println!(
        "group_send: first stanza {} bytes ({DEVICES} pairwise copies), next stanza {} bytes",
        first.len(),
        next.len()
    );

    let mut g = c.benchmark_group("group_send");
    g.sample_size(10);
    g.bench_function("first_send_1000_devices", |b| {
        b.iter(|| rt.block_on(build(&sender, &new_group, true, &mut rng)))
    });
    g.bench_function("next_send_tracked", |b| {
        b.iter(|| rt.block_on(build(&sender, &known_group, false, &mut rng)))
    });
    g.bench_function("next_send_skdm_every_send", |b| {
        b.iter(|| rt.block_on(build(&sender, &known_group, true, &mut rng)))
    });
    let stanza: Node = whatsapp_binary::decode(&first).expect("decode the stanza");
    g.bench_function("encode_stanza_1000_copies", |b| {
        b.iter(|| whatsapp_binary::encode(black_box(&stanza)))
    });
    g.finish();
}

criterion_group!(benches, group_send);
criterion_main!(benches);
