//! Noise transport: encrypt + frame and deframe + decrypt throughput for 1 KiB and 64 KiB frames, with the
//! allocations each frame costs, beside `ring`'s AES-256-GCM (the AEAD rustls uses, already in the dependency
//! tree) sealing and opening the same frames in place as the peer; and full handshakes per second (initiator and
//! responder in memory, certificate chain verified).

#![allow(
    missing_docs,
    reason = "criterion_group! generates an undocumented public function"
)]
#![allow(clippy::unwrap_used, reason = "benchmark setup fails loudly")]

use bytes::BytesMut;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use rand::SeedableRng;
use rand::rngs::StdRng;
use whatsapp_benches::alloc::{CountingAllocator, allocations};
use whatsapp_benches::figures;
use whatsapp_noise::{FrameDecoder, Initiator, KeyPair, Responder, TransportCipher, self_issued_identity};

#[global_allocator]
static ALLOC: CountingAllocator = CountingAllocator;

const NOW: u64 = 1_700_000_000;

fn transport(c: &mut Criterion) {
    let mut group = c.benchmark_group("noise_transport");
    for size in [1024usize, 64 * 1024] {
        let plaintext = vec![0x5au8; size];
        group.throughput(Throughput::Bytes(size as u64));
        let mut sender = TransportCipher::from_keys([1; 32], [2; 32]);
        let mut out = BytesMut::with_capacity(size + 64);
        group.bench_function(format!("encrypt_frame_{}k", size / 1024), |b| {
            b.iter(|| {
                out.clear();
                sender.seal_frame(&plaintext, &mut out).unwrap();
                out.len()
            });
        });
        let mut sender = TransportCipher::from_keys([1; 32], [2; 32]);
        let mut sealed = BytesMut::new();
        sender.seal_frame(&plaintext, &mut sealed).unwrap();
        let sealed = sealed.freeze();
        let mut decoder = FrameDecoder::new();
        group.bench_function(format!("deframe_decrypt_{}k", size / 1024), |b| {
            b.iter_batched(
                // A fresh receiver per frame, so every frame decrypts at counter 0, as sealed.
                || TransportCipher::from_keys([2; 32], [1; 32]),
                |mut receiver| {
                    decoder.push(&sealed);
                    let frame = decoder.next_frame().unwrap().unwrap();
                    receiver.open_frame(frame).unwrap().len()
                },
                criterion::BatchSize::SmallInput,
            );
        });
    }
    group.finish();
    allocations_per_frame();
    ring_peer(c);
}

/// Heap allocations per 64 KiB frame, sealed into a reused buffer and opened from the frame decoder.
fn allocations_per_frame() {
    const FRAMES: usize = 1000;
    let plaintext = vec![0x5au8; 64 * 1024];
    let mut sender = TransportCipher::from_keys([1; 32], [2; 32]);
    let mut out = BytesMut::with_capacity(plaintext.len() + 64);
    let before = allocations();
    for _ in 0..FRAMES {
        out.clear();
        sender.seal_frame(&plaintext, &mut out).unwrap();
    }
    let sealing = allocations() - before;

    // A second sender whose counters line up with the receiver's; its frames are made before the count starts.
    let mut sender = TransportCipher::from_keys([1; 32], [2; 32]);
    let mut receiver = TransportCipher::from_keys([2; 32], [1; 32]);
    let mut decoder = FrameDecoder::new();
    for _ in 0..FRAMES {
        let mut frame = BytesMut::new();
        sender.seal_frame(&plaintext, &mut frame).unwrap();
        decoder.push(&frame);
    }
    let before = allocations();
    let mut opened = 0;
    while let Some(frame) = decoder.next_frame().unwrap() {
        opened += receiver.open_frame(frame).unwrap().len();
    }
    let opening = allocations() - before;
    assert_eq!(opened, FRAMES * plaintext.len());
    figures::record(
        "noise_transport",
        "allocations per 64 KiB frame sealed",
        sealing as f64 / FRAMES as f64,
        "allocations",
    );
    figures::record(
        "noise_transport",
        "allocations per 64 KiB frame opened",
        opening as f64 / FRAMES as f64,
        "allocations",
    );
}

/// The peer: `ring`'s AES-256-GCM sealing and opening 64 KiB in place, with the same nonce layout.
fn ring_peer(c: &mut Criterion) {
    use ring::aead::{AES_256_GCM, Aad, LessSafeKey, Nonce, UnboundKey};
    let size = 64 * 1024;
    let key = LessSafeKey::new(UnboundKey::new(&AES_256_GCM, &[1; 32]).unwrap());
    let nonce = |counter: u32| {
        let mut iv = [0u8; 12];
        iv[8..].copy_from_slice(&counter.to_be_bytes());
        Nonce::assume_unique_for_key(iv)
    };
    let mut group = c.benchmark_group("noise_transport");
    group.throughput(Throughput::Bytes(size as u64));
    let mut buf = vec![0x5au8; size];
    group.bench_function("peer_ring_seal_64k", |b| {
        b.iter(|| {
            key.seal_in_place_separate_tag(nonce(0), Aad::empty(), &mut buf)
                .unwrap()
        });
    });
    let mut sealed = vec![0x5au8; size];
    let tag = key
        .seal_in_place_separate_tag(nonce(0), Aad::empty(), &mut sealed)
        .unwrap();
    sealed.extend_from_slice(tag.as_ref());
    group.bench_function("peer_ring_open_64k", |b| {
        b.iter_batched(
            || sealed.clone(),
            |mut frame| {
                key.open_in_place(nonce(0), Aad::empty(), &mut frame)
                    .unwrap()
                    .len()
            },
            criterion::BatchSize::SmallInput,
        );
    });
    group.finish();
}

fn handshake(c: &mut Criterion) {
    let mut rng = StdRng::seed_from_u64(3);
    let (identity, trust) = self_issued_identity(&mut rng, 0, NOW + 3600);
    let noise_key = KeyPair::generate(&mut rng);
    let payload = vec![7u8; 120];
    let mut group = c.benchmark_group("noise_handshake");
    group.throughput(Throughput::Elements(1));
    group.bench_function("full_handshake_both_sides", |b| {
        b.iter(|| {
            let initiator = Initiator::generate(&mut rng);
            let (responder, server_hello) = Responder::generate(&mut rng)
                .read_client_hello(&initiator.client_hello(), &identity)
                .unwrap();
            let finish = initiator.read_server_hello(&server_hello, &trust, NOW).unwrap();
            let (client_finish, _client) = finish.finish(&noise_key, &payload);
            responder
                .read_client_finish(&client_finish)
                .unwrap()
                .client_payload
                .len()
        });
    });
    group.finish();
}

criterion_group!(benches, transport, handshake);
criterion_main!(benches);
