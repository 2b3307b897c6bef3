//! Store throughput on SQLite (a file in the temporary directory) and PostgreSQL (`WHATSAPP_TEST_POSTGRES_URL`,
//! skipped with a note when unset): session put and get, prekey batches (reserve ids, store 50 keys, mark them
//! uploaded), and loading the 1,000 sessions of a group send from a database of 1,000 accounts with 200 sessions
//! each (the database is filled once, outside the measured loop).

#![allow(
    missing_docs,
    reason = "criterion_group! generates an undocumented public function"
)]
#![allow(clippy::expect_used, reason = "benchmark setup fails loudly")]

use std::time::Instant;

use criterion::{
    BenchmarkGroup, Criterion, Throughput, criterion_group, criterion_main, measurement::WallTime,
};
use tokio::runtime::Runtime;
use whatsapp_store::conformance::{sample_device, sample_prekey};
use whatsapp_store::{Backend, PreKey, PreKeyStore, SessionStore};
use whatsapp_store_sql::SqlBackend;

/// A serialized Signal session is a few hundred bytes with one chain; 400 is typical of an established one.
const SESSION_BYTES: usize = 400;
/// Prekeys per upload (protocol-facts §3.5, WantedPreKeyCount).
const PREKEY_BATCH: u32 = 50;
const ACCOUNTS: usize = 1_000;
const SESSIONS_PER_ACCOUNT: usize = 200;
const GROUP_DEVICES: usize = 1_000;

fn address(user: usize, device: usize) -> String {
    format!("1555{user:07}:{device}")
}

fn run_all(group: &mut BenchmarkGroup<'_, WallTime>, rt: &Runtime, backend: &SqlBackend, label: &str) {
    let account = rt
        .block_on(backend.create_account(&sample_device(1)))
        .expect("create");
    let session = vec![0xA5; SESSION_BYTES];
    let mut n = 0usize;
    group.throughput(Throughput::Elements(1));
    group.bench_function(format!("{label}/session_put"), |b| {
        b.iter(|| {
            n += 1;
            rt.block_on(account.put_session(&address(n % 10_000, 1), &session))
                .expect("put");
        })
    });
    group.bench_function(format!("{label}/session_get"), |b| {
        b.iter(|| {
            n += 1;
            rt.block_on(account.session(&address(n % 10_000, 1)))
                .expect("get")
        })
    });
    group.throughput(Throughput::Elements(u64::from(PREKEY_BATCH)));
    group.bench_function(format!("{label}/prekey_batch_50"), |b| {
        b.iter(|| {
            rt.block_on(async {
                let ids = account.reserve_prekey_ids(PREKEY_BATCH).await.expect("reserve");
                let keys: Vec<PreKey> = ids.iter().map(|id| sample_prekey(*id)).collect();
                account.put_prekeys(&keys).await.expect("put");
                account.mark_prekeys_uploaded(&ids).await.expect("mark");
            })
        })
    });

    // 1,000 accounts with 200 sessions each, plus the sender with the 1,000 devices of one group.
    let started = Instant::now();
    let sender = rt.block_on(async {
        for a in 0..ACCOUNTS {
            let acc = backend
                .create_account(&sample_device(a as u8))
                .await
                .expect("create");
            let batch: Vec<(String, Vec<u8>)> = (0..SESSIONS_PER_ACCOUNT)
                .map(|s| (address(s / 4, s % 4), session.clone()))
                .collect();
            acc.put_sessions(&batch).await.expect("fill");
        }
        let sender = backend
            .create_account(&sample_device(0xFF))
            .await
            .expect("create sender");
        let batch: Vec<(String, Vec<u8>)> = (0..GROUP_DEVICES)
            .map(|d| (address(d / 4, d % 4), session.clone()))
            .collect();
        sender.put_sessions(&batch).await.expect("fill sender");
        sender
    });
    println!(
        "{label}: filled {ACCOUNTS} accounts x {SESSIONS_PER_ACCOUNT} sessions (+{GROUP_DEVICES}) in {:.1?}",
        started.elapsed()
    );
    let wanted: Vec<String> = (0..GROUP_DEVICES).map(|d| address(d / 4, d % 4)).collect();
    group.throughput(Throughput::Elements(GROUP_DEVICES as u64));
    group.bench_function(format!("{label}/group_send_load_1000_sessions"), |b| {
        b.iter(|| {
            let got = rt.block_on(sender.sessions(&wanted)).expect("load");
            assert_eq!(got.len(), GROUP_DEVICES);
            got
        })
    });
}

fn store(c: &mut Criterion) {
    let rt = Runtime::new().expect("runtime");
    let mut group = c.benchmark_group("store");
    group.sample_size(20);

    let path = std::env::temp_dir().join(format!("whatsapp_store_bench_{}.db", std::process::id()));
    let path_text = path.to_str().expect("utf-8 temp path").to_owned();
    let sqlite = rt
        .block_on(SqlBackend::open_sqlite(&path_text))
        .expect("open sqlite");
    run_all(&mut group, &rt, &sqlite, "sqlite");
    rt.block_on(sqlite.close()).expect("close");
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{path_text}{suffix}"));
    }

    match std::env::var("WHATSAPP_TEST_POSTGRES_URL") {
        Err(_) => println!("postgres: skipped, WHATSAPP_TEST_POSTGRES_URL not set"),
        Ok(base) => {
            let schema = format!("wa_bench_{}", std::process::id());
            let admin = rt.block_on(SqlBackend::connect(&base)).expect("connect postgres");
            rt.block_on(admin.execute_sql(&format!("CREATE SCHEMA {schema}")))
                .expect("create schema");
            let sep = if base.contains('?') { '&' } else { '?' };
            let url = format!("{base}{sep}options=-c%20search_path%3D{schema}");
            let pg = rt.block_on(SqlBackend::connect(&url)).expect("connect in schema");
            run_all(&mut group, &rt, &pg, "postgres");
            rt.block_on(pg.close()).expect("close");
            rt.block_on(admin.execute_sql(&format!("DROP SCHEMA {schema} CASCADE")))
                .expect("drop schema");
        }
    }
    group.finish();
}

criterion_group!(benches, store);
criterion_main!(benches);
