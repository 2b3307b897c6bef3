//! The PostgreSQL backend (`WHATSAPP_TEST_POSTGRES_URL`): the conformance suite, concurrency and leases through
//! two pools, and corrupt rows. Each test runs in a schema of its own, dropped at the end, so tests run in
//! parallel on one database.

// Test fixtures fail loudly, like the tests that use them.
#![allow(clippy::expect_used)]

mod common;

use sea_orm::{ConnectionTrait, DatabaseConnection};
use whatsapp_store::conformance;
use whatsapp_store_sql::SqlBackend;

/// A schema of its own on the test database; `None` (after a note) without `WHATSAPP_TEST_POSTGRES_URL`.
struct TestSchema {
    /// A plain connection for creating and dropping the schema: it runs no migrations, so the test never
    /// touches the database's `public` schema, whatever another checkout migrated there.
    admin: DatabaseConnection,
    name: String,
    url: String,
}

impl TestSchema {
    async fn new() -> Option<TestSchema> {
        let Ok(base) = std::env::var("WHATSAPP_TEST_POSTGRES_URL") else {
            println!("skipped: WHATSAPP_TEST_POSTGRES_URL not set");
            return None;
        };
        let admin = sea_orm::Database::connect(&base)
            .await
            .expect("connect to the test database");
        let name = common::unique_name("wa_test");
        admin
            .execute_unprepared(&format!("CREATE SCHEMA {name}"))
            .await
            .expect("create schema");
        let sep = if base.contains('?') { '&' } else { '?' };
        let url = format!("{base}{sep}options=-c%20search_path%3D{name}");
        Some(TestSchema { admin, name, url })
    }

    async fn backend(&self) -> SqlBackend {
        SqlBackend::connect(&self.url).await.expect("connect in schema")
    }

    async fn drop_schema(self) {
        self.admin
            .execute_unprepared(&format!("DROP SCHEMA {} CASCADE", self.name))
            .await
            .expect("drop schema");
    }
}

#[tokio::test]
async fn conformance() {
    let Some(schema) = TestSchema::new().await else {
        return;
    };
    let backend = schema.backend().await;
    assert!(backend.is_postgres());
    conformance::run(&backend).await;
    backend.close().await.expect("close");
    schema.drop_schema().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_writers_lose_nothing() {
    let Some(schema) = TestSchema::new().await else {
        return;
    };
    let (first, second) = (schema.backend().await, schema.backend().await);
    common::concurrent_writes(&first, &second).await;
    first.close().await.expect("close");
    second.close().await.expect("close");
    schema.drop_schema().await;
}

#[tokio::test]
async fn lease_is_exclusive_across_pools() {
    let Some(schema) = TestSchema::new().await else {
        return;
    };
    let (first, second) = (schema.backend().await, schema.backend().await);
    common::lease_across_pools(&first, &second).await;
    first.close().await.expect("close");
    second.close().await.expect("close");
    schema.drop_schema().await;
}

#[tokio::test]
async fn corrupt_rows_name_table_and_key() {
    let Some(schema) = TestSchema::new().await else {
        return;
    };
    let backend = schema.backend().await;
    common::corrupt_rows(&backend).await;
    backend.close().await.expect("close");
    schema.drop_schema().await;
}
