//! App-state sync: how many mutations per second are verified and applied when a 50,000-contact snapshot is
//! decoded (protobuf parse, value MAC, AES-CBC decryption, index MAC, LTHash, snapshot MAC, state update).
//!
//! Peak memory of the same work is measured by `cargo run --release -p whatsapp-benches --bin appstate_memory`.

#![allow(
    missing_docs,
    reason = "criterion_group! generates an undocumented public function"
)]

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use whatsapp_appstate::{CollectionState, decode_snapshot, parse_snapshot};
use whatsapp_benches::appstate::{COLLECTION, SNAPSHOT_RECORDS, contacts_snapshot, key_lookup};

fn snapshot_decode(c: &mut Criterion) {
    let bytes = contacts_snapshot(SNAPSHOT_RECORDS);
    let lookup = key_lookup();
    let mut group = c.benchmark_group("appstate");
    group.sample_size(10);
    group.throughput(Throughput::Elements(SNAPSHOT_RECORDS as u64));
    group.bench_function("snapshot_50k_decode_verify_apply", |b| {
        b.iter(|| {
            let snapshot = parse_snapshot(&bytes).ok()?;
            let decoded = decode_snapshot(COLLECTION, &snapshot, &lookup).ok()?;
            let mut state = CollectionState::new();
            state.apply(&decoded.update);
            Some((state.index_value_macs.len(), decoded.mutations.len()))
        });
    });
    group.finish();
}

criterion_group!(benches, snapshot_decode);
criterion_main!(benches);
