//! Noise transport: encrypt + frame and deframe + decrypt throughput for 1 KiB and 64 KiB frames, and full
//! handshakes per second (initiator and responder in memory, certificate chain verified).

#![allow(
    missing_docs,
    reason = "criterion_group! generates an undocumented public function"
)]
#![allow(clippy::unwrap_used, reason = "benchmark setup fails loudly")]

use bytes::BytesMut;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use rand::SeedableRng;
use rand::rngs::StdRng;
use whatsapp_noise::{FrameDecoder, Initiator, KeyPair, Responder, TransportCipher, self_issued_identity};

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
