//! The SQLite backend: the conformance suite (in memory and on a file), concurrency through two pools on one
//! file, leases across pools, corrupt rows, and reopening a file.

// Test fixtures fail loudly, like the tests that use them.
#![allow(clippy::expect_used)]

mod common;

use whatsapp_store::conformance::{self, sample_device};
use whatsapp_store::{AccountStore, Backend, SessionStore};
use whatsapp_store_sql::SqlBackend;

/// A SQLite file in the temporary directory, removed (with its WAL files) when dropped.
struct TempDb(std::path::PathBuf);

impl TempDb {
    fn new() -> TempDb {
        TempDb(std::env::temp_dir().join(format!("{}.db", common::unique_name("whatsapp_store_test"))))
    }
    fn path(&self) -> &str {
        self.0.to_str().expect("utf-8 temp path")
    }
}

impl Drop for TempDb {
    fn drop(&mut self) {
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{}{suffix}", self.0.display()));
        }
    }
}

#[tokio::test]
async fn conformance_in_memory() {
    conformance::run(&SqlBackend::memory().await.expect("open")).await;
}

#[tokio::test]
async fn conformance_on_a_file() {
    let file = TempDb::new();
    conformance::run(&SqlBackend::open_sqlite(file.path()).await.expect("open")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_writers_lose_nothing() {
    let file = TempDb::new();
    let first = SqlBackend::open_sqlite(file.path()).await.expect("open");
    let second = SqlBackend::open_sqlite(file.path()).await.expect("open again");
    common::concurrent_writes(&first, &second).await;
}

#[tokio::test]
async fn lease_is_exclusive_across_pools() {
    let file = TempDb::new();
    let first = SqlBackend::open_sqlite(file.path()).await.expect("open");
    let second = SqlBackend::open_sqlite(file.path()).await.expect("open again");
    common::lease_across_pools(&first, &second).await;
}

#[tokio::test]
async fn corrupt_rows_name_table_and_key() {
    common::corrupt_rows(&SqlBackend::memory().await.expect("open")).await;
}

#[tokio::test]
async fn data_survives_reopening_and_migrations_are_idempotent() {
    let file = TempDb::new();
    let backend = SqlBackend::open_sqlite(file.path()).await.expect("open");
    let account = backend.create_account(&sample_device(9)).await.expect("create");
    account.put_session("1:1", b"kept").await.expect("put");
    let id = account.id();
    backend.close().await.expect("close");
    let backend = SqlBackend::open_sqlite(file.path()).await.expect("reopen");
    let account = backend.open_account(id).await.expect("open account");
    assert_eq!(account.device().await.expect("device"), sample_device(9));
    assert_eq!(account.session("1:1").await.expect("get"), Some(b"kept".to_vec()));
}

#[tokio::test]
async fn sqlite_runs_in_wal_mode_with_foreign_keys() {
    let file = TempDb::new();
    let backend = SqlBackend::open_sqlite(file.path()).await.expect("open");
    // A row for a missing account is refused by the foreign key.
    assert!(
        backend
            .execute_sql("INSERT INTO wa_session (account, address, session) VALUES (999, 'x', X'00')")
            .await
            .is_err()
    );
    // WAL mode leaves a -wal file next to the database once something is written.
    backend.create_account(&sample_device(1)).await.expect("create");
    assert!(std::path::Path::new(&format!("{}-wal", file.path())).exists());
}
