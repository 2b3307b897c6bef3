//! Schema migrations (sea-orm-migration): one step per schema version, each written once for both dialects.
//!
//! Version 1 is the first schema, version 2 adds contacts, chat settings, message secrets and privacy tokens,
//! version 3 the recipients of this account's group sender keys, version 4 when this account issued its privacy
//! token to each contact and the NCT salt `cstoken`s are derived from. A
//! later change adds a new step; a database at any earlier version is brought forward by running the missing
//! steps in order (the tests migrate a database filled at every earlier version).

use sea_orm::DbBackend;
use sea_orm_migration::async_trait::async_trait;
use sea_orm_migration::{DbErr, MigrationName, MigrationTrait, MigratorTrait, SchemaManager};

/// The store's migrator. [`crate::SqlBackend::connect`] runs it; it is public for tools that migrate alone.
pub struct Migrator;

impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(V1Initial),
            Box::new(V2Contacts),
            Box::new(V3SenderKeyRecipients),
            Box::new(V4IssuedPrivacyTokens),
        ]
    }
}

/// The initial schema. Every per-account table is keyed by `account` (cascading deletes from `wa_account`);
/// `wa_lid_map` is global.
struct V1Initial;

impl MigrationName for V1Initial {
    fn name(&self) -> &str {
        "m0001_initial"
    }
}

const V1_SCHEMA: &str = "
CREATE TABLE wa_account (
    id {ID},
    noise_pub {BLOB} NOT NULL,
    noise_priv {BLOB} NOT NULL,
    identity_pub {BLOB} NOT NULL,
    identity_priv {BLOB} NOT NULL,
    registration_id BIGINT NOT NULL,
    signed_prekey_id BIGINT NOT NULL,
    signed_prekey_pub {BLOB} NOT NULL,
    signed_prekey_priv {BLOB} NOT NULL,
    signed_prekey_sig {BLOB} NOT NULL,
    adv_secret {BLOB} NOT NULL,
    jid TEXT,
    lid TEXT,
    account_identity {BLOB},
    platform TEXT NOT NULL,
    business_name TEXT NOT NULL,
    push_name TEXT NOT NULL,
    prekeys_reserved BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX wa_account_jid ON wa_account (jid);
CREATE TABLE wa_identity (
    account BIGINT NOT NULL REFERENCES wa_account (id) ON DELETE CASCADE,
    address TEXT NOT NULL,
    identity_key {BLOB} NOT NULL,
    PRIMARY KEY (account, address)
);
CREATE TABLE wa_session (
    account BIGINT NOT NULL REFERENCES wa_account (id) ON DELETE CASCADE,
    address TEXT NOT NULL,
    session {BLOB} NOT NULL,
    PRIMARY KEY (account, address)
);
CREATE TABLE wa_prekey (
    account BIGINT NOT NULL REFERENCES wa_account (id) ON DELETE CASCADE,
    key_id BIGINT NOT NULL,
    public_key {BLOB} NOT NULL,
    private_key {BLOB} NOT NULL,
    uploaded BOOLEAN NOT NULL,
    PRIMARY KEY (account, key_id)
);
CREATE TABLE wa_sender_key (
    account BIGINT NOT NULL REFERENCES wa_account (id) ON DELETE CASCADE,
    group_id TEXT NOT NULL,
    sender TEXT NOT NULL,
    record {BLOB} NOT NULL,
    PRIMARY KEY (account, group_id, sender)
);
CREATE TABLE wa_app_state_sync_key (
    account BIGINT NOT NULL REFERENCES wa_account (id) ON DELETE CASCADE,
    key_id {BLOB} NOT NULL,
    key_data {BLOB} NOT NULL,
    fingerprint {BLOB} NOT NULL,
    key_timestamp BIGINT NOT NULL,
    PRIMARY KEY (account, key_id)
);
CREATE TABLE wa_app_state_version (
    account BIGINT NOT NULL REFERENCES wa_account (id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    version BIGINT NOT NULL,
    hash {BLOB} NOT NULL,
    PRIMARY KEY (account, name)
);
CREATE TABLE wa_app_state_mutation_mac (
    account BIGINT NOT NULL REFERENCES wa_account (id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    index_mac {BLOB} NOT NULL,
    version BIGINT NOT NULL,
    value_mac {BLOB} NOT NULL,
    PRIMARY KEY (account, name, index_mac)
);
CREATE TABLE wa_event_buffer (
    account BIGINT NOT NULL REFERENCES wa_account (id) ON DELETE CASCADE,
    ciphertext_hash {BLOB} NOT NULL,
    plaintext {BLOB},
    server_timestamp BIGINT NOT NULL,
    insert_time BIGINT NOT NULL,
    PRIMARY KEY (account, ciphertext_hash)
);
CREATE TABLE wa_outgoing_event (
    account BIGINT NOT NULL REFERENCES wa_account (id) ON DELETE CASCADE,
    chat TEXT NOT NULL,
    message_id TEXT NOT NULL,
    plaintext {BLOB} NOT NULL,
    insert_time BIGINT NOT NULL,
    PRIMARY KEY (account, chat, message_id)
);
CREATE TABLE wa_lid_map (
    lid TEXT PRIMARY KEY,
    pn TEXT NOT NULL UNIQUE
);
CREATE TABLE wa_lease (
    account BIGINT PRIMARY KEY REFERENCES wa_account (id) ON DELETE CASCADE,
    owner TEXT NOT NULL,
    expires_at BIGINT NOT NULL
);
";

/// Version 2: contacts, chat settings, message secrets and privacy tokens.
struct V2Contacts;

impl MigrationName for V2Contacts {
    fn name(&self) -> &str {
        "m0002_contacts"
    }
}

const V2_SCHEMA: &str = "
CREATE TABLE wa_contact (
    account BIGINT NOT NULL REFERENCES wa_account (id) ON DELETE CASCADE,
    jid TEXT NOT NULL,
    first_name TEXT NOT NULL DEFAULT '',
    full_name TEXT NOT NULL DEFAULT '',
    push_name TEXT NOT NULL DEFAULT '',
    business_name TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (account, jid)
);
CREATE TABLE wa_chat_settings (
    account BIGINT NOT NULL REFERENCES wa_account (id) ON DELETE CASCADE,
    chat TEXT NOT NULL,
    muted_until BIGINT NOT NULL DEFAULT 0,
    pinned BOOLEAN NOT NULL DEFAULT false,
    archived BOOLEAN NOT NULL DEFAULT false,
    PRIMARY KEY (account, chat)
);
CREATE TABLE wa_message_secret (
    account BIGINT NOT NULL REFERENCES wa_account (id) ON DELETE CASCADE,
    chat TEXT NOT NULL,
    sender TEXT NOT NULL,
    message_id TEXT NOT NULL,
    secret {BLOB} NOT NULL,
    PRIMARY KEY (account, chat, sender, message_id)
);
CREATE TABLE wa_privacy_token (
    account BIGINT NOT NULL REFERENCES wa_account (id) ON DELETE CASCADE,
    user_jid TEXT NOT NULL,
    token {BLOB} NOT NULL,
    token_timestamp BIGINT NOT NULL,
    PRIMARY KEY (account, user_jid)
);
";

#[async_trait]
impl MigrationTrait for V2Contacts {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        run_schema(manager, V2_SCHEMA).await
    }
}

/// Version 3: the devices this account's group sender keys were distributed to.
struct V3SenderKeyRecipients;

impl MigrationName for V3SenderKeyRecipients {
    fn name(&self) -> &str {
        "m0003_sender_key_recipients"
    }
}

const V3_SCHEMA: &str = "
CREATE TABLE wa_sender_key_recipient (
    account BIGINT NOT NULL REFERENCES wa_account (id) ON DELETE CASCADE,
    group_id TEXT NOT NULL,
    device TEXT NOT NULL,
    PRIMARY KEY (account, group_id, device)
);
";

#[async_trait]
impl MigrationTrait for V3SenderKeyRecipients {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        run_schema(manager, V3_SCHEMA).await
    }
}

/// Version 4: when this account issued its own privacy token to each contact, and the NCT salt.
struct V4IssuedPrivacyTokens;

impl MigrationName for V4IssuedPrivacyTokens {
    fn name(&self) -> &str {
        "m0004_issued_privacy_tokens"
    }
}

const V4_SCHEMA: &str = "
CREATE TABLE wa_privacy_token_issued (
    account BIGINT NOT NULL REFERENCES wa_account (id) ON DELETE CASCADE,
    user_jid TEXT NOT NULL,
    sender_timestamp BIGINT NOT NULL,
    PRIMARY KEY (account, user_jid)
);
CREATE TABLE wa_nct_salt (
    account BIGINT NOT NULL PRIMARY KEY REFERENCES wa_account (id) ON DELETE CASCADE,
    salt {BLOB} NOT NULL
);
";

#[async_trait]
impl MigrationTrait for V4IssuedPrivacyTokens {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        run_schema(manager, V4_SCHEMA).await
    }
}

async fn run_schema(manager: &SchemaManager<'_>, schema: &str) -> Result<(), DbErr> {
    let sql = dialect(schema, manager.get_database_backend());
    let conn = manager.get_connection();
    for statement in sql.split(';').map(str::trim).filter(|s| !s.is_empty()) {
        sea_orm::ConnectionTrait::execute_unprepared(conn, statement).await?;
    }
    Ok(())
}

/// The schema text for one dialect: byte strings and the account id column differ.
fn dialect(schema: &str, backend: DbBackend) -> String {
    let (id, blob) = match backend {
        // AUTOINCREMENT: an id is never reused, so a stale handle of a deleted account cannot reach a new one.
        DbBackend::Sqlite => ("INTEGER PRIMARY KEY AUTOINCREMENT", "BLOB"),
        _ => ("BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY", "BYTEA"),
    };
    schema.replace("{ID}", id).replace("{BLOB}", blob)
}

#[async_trait]
impl MigrationTrait for V1Initial {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        run_schema(manager, V1_SCHEMA).await
    }
}
