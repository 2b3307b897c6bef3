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

/// A statement that fails unless the connection's `synchronous` setting is `level` (1 NORMAL, 2 FULL): `abs` of
/// the smallest integer is an overflow error in SQLite.
fn fails_unless_synchronous(level: u8) -> String {
    format!(
        "SELECT CASE WHEN synchronous = {level} THEN 1 ELSE abs(-9223372036854775808) END FROM pragma_synchronous"
    )
}

#[tokio::test]
async fn commits_are_flushed_unless_normal_sync_is_asked_for() {
    use whatsapp_store_sql::SqliteSync;
    let file = TempDb::new();
    let full = SqlBackend::open_sqlite(file.path()).await.expect("open");
    full.execute_sql(&fails_unless_synchronous(2))
        .await
        .expect("FULL by default");
    assert!(full.execute_sql(&fails_unless_synchronous(1)).await.is_err());
    full.close().await.expect("close");

    let normal = SqlBackend::open_sqlite_with(file.path(), SqliteSync::Normal)
        .await
        .expect("open with NORMAL");
    normal
        .execute_sql(&fails_unless_synchronous(1))
        .await
        .expect("NORMAL when asked");
    // Still in WAL mode, where NORMAL keeps commits consistent.
    let account = normal.create_account(&sample_device(2)).await.expect("create");
    account.put_session("1:1", b"kept").await.expect("put");
    assert!(std::path::Path::new(&format!("{}-wal", file.path())).exists());
    let id = account.id();
    normal.close().await.expect("close");
    let reopened = SqlBackend::open_sqlite(file.path()).await.expect("reopen");
    let account = reopened.open_account(id).await.expect("open account");
    assert_eq!(account.session("1:1").await.expect("get"), Some(b"kept".to_vec()));
}

/// A database left at each earlier schema version, holding data, is brought to the latest version on open with
/// its data intact and the newer tables usable.
#[tokio::test]
async fn migrates_from_every_earlier_schema_version() {
    use sea_orm_migration::MigratorTrait;
    use whatsapp_binary::Jid;
    use whatsapp_store::{AccountId, ContactStore};
    use whatsapp_store_sql::Migrator;

    let latest = Migrator::migrations().len() as u32;
    for version in 1..latest {
        let file = TempDb::new();
        let old = sea_orm::Database::connect(format!("sqlite:{}?mode=rwc", file.path()))
            .await
            .expect("raw connect");
        Migrator::up(&old, Some(version))
            .await
            .expect("migrate to the old version");
        // Version-1 tables exist at every version: fill them with plain SQL, as an old release would have.
        for sql in [
            "INSERT INTO wa_account (noise_pub, noise_priv, identity_pub, identity_priv, registration_id, \
             signed_prekey_id, signed_prekey_pub, signed_prekey_priv, signed_prekey_sig, adv_secret, jid, lid, \
             account_identity, platform, business_name, push_name) VALUES (zeroblob(32), zeroblob(32), \
             zeroblob(32), zeroblob(32), 7, 1, zeroblob(32), zeroblob(32), zeroblob(64), zeroblob(32), \
             '15551234567:3@s.whatsapp.net', NULL, NULL, 'android', '', 'Old')",
            "INSERT INTO wa_session (account, address, session) VALUES (1, '1555:0', X'0102')",
        ] {
            sea_orm::ConnectionTrait::execute_unprepared(&old, sql)
                .await
                .expect("fill old schema");
        }
        old.close().await.expect("close old");

        let backend = SqlBackend::open_sqlite(file.path())
            .await
            .expect("open and migrate");
        let account = backend.open_account(AccountId(1)).await.expect("old account");
        let device = account.device().await.expect("old device");
        assert_eq!(
            (device.registration_id, device.push_name.as_str()),
            (7, "Old"),
            "from version {version}"
        );
        assert_eq!(
            device.jid,
            Some(Jid::with_device("15551234567", Jid::DEFAULT_USER_SERVER, 3))
        );
        assert_eq!(
            account.session("1555:0").await.expect("old session"),
            Some(vec![1, 2])
        );
        let contact = Jid::new("1666", Jid::DEFAULT_USER_SERVER);
        assert_eq!(
            account.put_push_name(&contact, "New").await.expect("new table"),
            Some(String::new())
        );
    }
}
