//! Checks shared by the SQLite and PostgreSQL tests: concurrency, corrupt rows, leases across two pools.

#![allow(dead_code, unreachable_pub, clippy::expect_used, clippy::panic)]

use std::sync::atomic::{AtomicU32, Ordering};

use whatsapp_store::conformance::sample_device;
use whatsapp_store::{AccountStore, Backend, IdentityStore, SessionStore, StoreError, StoreTransaction};
use whatsapp_store_sql::SqlBackend;

/// A name unique within this test process (temporary files, schemas).
pub fn unique_name(prefix: &str) -> String {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    format!(
        "{prefix}_{}_{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// Many tasks write sessions for many accounts at once, through two pools (two "processes"); every write must
/// succeed (no "database is locked") and every session must be there afterwards (no lost write).
pub async fn concurrent_writes(first: &SqlBackend, second: &SqlBackend) {
    const ACCOUNTS: usize = 16;
    const TASKS_PER_ACCOUNT: usize = 4;
    const SESSIONS_PER_TASK: usize = 25;
    let mut accounts = Vec::new();
    for i in 0..ACCOUNTS {
        accounts.push(
            first
                .create_account(&sample_device(i as u8))
                .await
                .expect("create")
                .id(),
        );
    }
    let mut tasks = Vec::new();
    for (i, id) in accounts.iter().enumerate() {
        for t in 0..TASKS_PER_ACCOUNT {
            let backend = if (i + t) % 2 == 0 {
                first.clone()
            } else {
                second.clone()
            };
            let id = *id;
            tasks.push(tokio::spawn(async move {
                let account = backend.open_account(id).await.expect("open");
                for s in 0..SESSIONS_PER_TASK {
                    let address = format!("{t}{s}:1");
                    if s % 5 == 4 {
                        // Every fifth write is a transaction, like a decryption.
                        let mut tx = account.transaction().await.expect("begin");
                        tx_write(&mut tx, &address, id.0).await;
                        tx.commit().await.expect("commit");
                    } else {
                        account
                            .put_session(&address, &id.0.to_be_bytes())
                            .await
                            .expect("put session");
                    }
                }
            }));
        }
    }
    for task in tasks {
        task.await.expect("task");
    }
    for id in accounts {
        let account = second.open_account(id).await.expect("open");
        let wanted: Vec<String> = (0..TASKS_PER_ACCOUNT)
            .flat_map(|t| (0..SESSIONS_PER_TASK).map(move |s| format!("{t}{s}:1")))
            .collect();
        let got = account.sessions(&wanted).await.expect("sessions");
        assert_eq!(got.len(), wanted.len(), "account {id}");
        assert!(got.values().all(|v| v == &id.0.to_be_bytes()), "account {id}");
        assert_eq!(account.identity("00:1").await.expect("identity"), None);
        assert_eq!(account.identity("04:1").await.expect("identity"), Some([7; 32]));
    }
}

async fn tx_write<T: StoreTransaction>(tx: &mut T, address: &str, id: i64) {
    tx.put_session(address, &id.to_be_bytes()).await.expect("tx put");
    tx.put_identity(address, &[7; 32]).await.expect("tx identity");
}

/// Damages rows directly with SQL and checks that reading them fails with an error naming table and key.
pub async fn corrupt_rows(backend: &SqlBackend) {
    let account = backend.create_account(&sample_device(1)).await.expect("create");
    let id = account.id();
    account
        .put_identity("15551234567:0", &[1; 32])
        .await
        .expect("put");
    let blob = if backend.is_postgres() {
        "'\\x0102'::bytea"
    } else {
        "X'0102'"
    };
    let changed = backend
        .execute_sql(&format!(
            "UPDATE wa_identity SET identity_key = {blob} WHERE account = {id} AND address = '15551234567:0'"
        ))
        .await
        .expect("damage identity");
    assert_eq!(changed, 1);
    check_corrupt(
        account.identity("15551234567:0").await,
        "wa_identity",
        &["15551234567:0", "identity_key"],
    );

    backend
        .execute_sql(&format!(
            "UPDATE wa_account SET adv_secret = {blob} WHERE id = {id}"
        ))
        .await
        .expect("damage device");
    check_corrupt(
        account.device().await,
        "wa_account",
        &[&id.to_string(), "adv_secret"],
    );

    backend
        .execute_sql(&format!(
            "UPDATE wa_account SET adv_secret = noise_pub, jid = 'bad@jid@x' WHERE id = {id}"
        ))
        .await
        .expect("damage jid");
    check_corrupt(account.device().await, "wa_account", &["jid"]);
}

fn check_corrupt<T: std::fmt::Debug>(result: Result<T, StoreError>, table: &str, key_parts: &[&str]) {
    match result {
        Err(e @ StoreError::Corrupt { .. }) => {
            let text = e.to_string();
            assert!(text.contains(table), "{text}");
            for part in key_parts {
                assert!(text.contains(part), "{text} should name {part}");
            }
        }
        other => panic!("expected a corrupt-row error, got {other:?}"),
    }
}

/// Two pools on one database: the second owner is refused while the first holds the lease.
pub async fn lease_across_pools(first: &SqlBackend, second: &SqlBackend) {
    let id = first
        .create_account(&sample_device(3))
        .await
        .expect("create")
        .id();
    let lease = first
        .acquire_lease(id, "process-a", 10_000, 5_000)
        .await
        .expect("a acquires");
    match second.acquire_lease(id, "process-b", 11_000, 5_000).await {
        Err(StoreError::LeaseHeld { owner, .. }) => assert_eq!(owner, "process-a"),
        other => panic!("b must be refused, got {other:?}"),
    }
    let lease = first.renew_lease(&lease, 14_000, 5_000).await.expect("a renews");
    assert!(
        second
            .acquire_lease(id, "process-b", 18_999, 5_000)
            .await
            .is_err()
    );
    // Both race for an expired lease: exactly one wins.
    let (x, y) = tokio::join!(
        first.acquire_lease(id, "process-c", 19_000, 5_000),
        second.acquire_lease(id, "process-b", 19_000, 5_000)
    );
    assert!(x.is_ok() != y.is_ok(), "exactly one owner wins: {x:?} {y:?}");
    assert!(matches!(
        first.renew_lease(&lease, 19_500, 5_000).await,
        Err(StoreError::LeaseLost { .. })
    ));
    let winner = x.or(y).expect("winner");
    second.release_lease(&winner).await.expect("release");
    first
        .acquire_lease(id, "process-a", 19_600, 5_000)
        .await
        .expect("a again");
    assert!(matches!(
        first
            .acquire_lease(whatsapp_store::AccountId(i64::MAX), "process-a", 0, 1)
            .await,
        Err(StoreError::AccountNotFound(_))
    ));
}
