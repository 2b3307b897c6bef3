//! SQL backends of the store: SQLite (embedded, the default) and PostgreSQL, on sea-orm with sqlx.
//!
//! Layer: storage, implementing the traits of `whatsapp-store`. Entry type: [`SqlBackend`] (open with
//! [`SqlBackend::connect`], [`SqlBackend::open_sqlite`] or [`SqlBackend::memory`]), which implements
//! [`whatsapp_store::Backend`]; its accounts are [`SqlAccount`] handles and their transactions
//! [`SqlTransaction`]. Migrations ([`Migrator`]) run on connect.
//!
//! One database holds many accounts: every per-account table is keyed by the account id and cascades from
//! `wa_account`; the LID map is global. Leases (`wa_lease`) are taken with one atomic conditional upsert, so two
//! processes sharing a PostgreSQL database never drive the same account; lease times are the callers' clocks
//! (`now` passed in), so the processes' clocks must agree to within the lease margin.
//!
//! SQLite is opened with WAL, a busy timeout and foreign keys on; a file database uses a small pool (readers run
//! in parallel, writers queue on the busy timeout), an in-memory one a single connection. Every commit is flushed
//! to disk before it returns (`synchronous=FULL`) unless the database is opened with [`SqliteSync::Normal`]
//! ([`SqlBackend::open_sqlite_with`]).
//!
//! This crate does no protocol logic, and sea-orm types do not appear in its public API.

// Trait methods keep the trait's `impl Future + Send` signature, whether the body delegates or is an async block,
// so that every method reads the same and a lost `Send` shows up at the impl.
#![allow(clippy::manual_async_fn)]

mod account;
mod migration;
mod query;

use core::future::Future;
use std::time::Duration;

use sea_orm::sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqliteSynchronous};
use sea_orm::{ConnectOptions, Database, DatabaseConnection, DbBackend, SqlErr, TransactionTrait, Value};
use sea_orm_migration::MigratorTrait;
use whatsapp_binary::Jid;
use whatsapp_store::{
    AccountId, Backend, Device, Lease, LidMapping, LidStore, Result, StoreError, UnixMillis,
};

pub use account::{SqlAccount, SqlTransaction};
pub use migration::Migrator;

use query::{Row, db_err, placeholders};

/// The SQLite file the command-line tool uses when none is given.
pub const DEFAULT_SQLITE_PATH: &str = "./whatsapp.db";

/// How long a SQLite writer waits for another connection's write to finish before failing. Writes are short
/// (one upsert, or one transaction of a decrypted message), so this is a generous bound under heavy contention.
pub const SQLITE_BUSY_TIMEOUT: Duration = Duration::from_secs(30);

/// Connections of a SQLite file pool: enough for parallel readers under WAL; SQLite writes one at a time anyway.
const SQLITE_POOL_SIZE: u32 = 4;

/// The PostgreSQL advisory lock key held while migrating (ASCII "wa-store").
const MIGRATION_LOCK_KEY: i64 = 0x7761_2d73_746f_7265;

/// Connections of a PostgreSQL pool (at least 2: migrations run beside the connection holding their lock).
const POSTGRES_POOL_SIZE: u32 = 10;

/// When SQLite flushes a commit to disk (its `synchronous` setting, in WAL mode; <https://www.sqlite.org/pragma.html#pragma_synchronous>).
///
/// The client acknowledges a message to the server only after the message and its Signal state are committed,
/// and the server does not deliver an acknowledged message again. What a commit survives is therefore what an
/// acknowledged message survives.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum SqliteSync {
    /// Every commit is flushed to disk before it returns (`synchronous=FULL`): a committed message survives the
    /// process crashing, the operating system crashing and a power loss. The default.
    #[default]
    Full,
    /// Commits are written to the write-ahead log without a flush; the log is flushed at checkpoints
    /// (`synchronous=NORMAL`). A committed message survives the process crashing, but the last commits before an
    /// operating-system crash or a power loss can be lost, and with them messages already acknowledged (and, if
    /// a sent message's ratchet step is lost, the next message to that device needs a retry). Commits no longer
    /// wait for the disk, which on most disks is most of their time.
    Normal,
}

/// A pooled connection idle for this long is checked (a ping) before it is used again; one in use more recently
/// is used as it is. Checking every connection handed out (the pool's default) costs a round trip per statement
/// run outside a transaction, which on PostgreSQL is as much as the statement itself. A connection that broke
/// while recently used makes that one statement fail, which the client handles as any store error (the message
/// is not acknowledged and is delivered again).
const PING_AFTER_IDLE: Duration = Duration::from_secs(30);

/// A SQL database hosting many accounts. Clones share the pool.
#[derive(Clone, Debug)]
pub struct SqlBackend {
    db: DatabaseConnection,
}

impl SqlBackend {
    /// Connects to `url` (`sqlite:PATH`, `sqlite::memory:`, `postgres://...`) and brings the schema up to date.
    pub async fn connect(url: &str) -> Result<SqlBackend> {
        SqlBackend::connect_with(url, SqliteSync::Full).await
    }

    /// [`connect`](Self::connect), with `sync` for a SQLite database (ignored for PostgreSQL, whose
    /// durability is the server's `synchronous_commit`).
    async fn connect_with(url: &str, sync: SqliteSync) -> Result<SqlBackend> {
        let synchronous = match sync {
            SqliteSync::Full => SqliteSynchronous::Full,
            SqliteSync::Normal => SqliteSynchronous::Normal,
        };
        let mut options = ConnectOptions::new(url.to_owned());
        options.sqlx_logging(false);
        options.test_before_acquire_if_idle_for(PING_AFTER_IDLE);
        if url.starts_with("sqlite:") {
            let memory = url.contains(":memory:") || url.contains("mode=memory");
            options.max_connections(if memory { 1 } else { SQLITE_POOL_SIZE });
            options.map_sqlx_sqlite_opts(move |o: SqliteConnectOptions| {
                o.journal_mode(SqliteJournalMode::Wal)
                    .busy_timeout(SQLITE_BUSY_TIMEOUT)
                    .foreign_keys(true)
                    .synchronous(synchronous)
                    .create_if_missing(true)
            });
        } else {
            options.max_connections(POSTGRES_POOL_SIZE);
        }
        let db = Database::connect(options).await.map_err(db_err)?;
        if db.get_database_backend() == DbBackend::Postgres {
            // Processes starting together must not race to create the same tables: hold a transaction-scoped
            // advisory lock on one connection while the migrator runs on the others.
            let guard = db.begin().await.map_err(db_err)?;
            query::exec(
                &guard,
                "SELECT pg_advisory_xact_lock($1)",
                vec![MIGRATION_LOCK_KEY.into()],
            )
            .await?;
            Migrator::up(&db, None).await.map_err(db_err)?;
            guard.commit().await.map_err(db_err)?;
        } else {
            Migrator::up(&db, None).await.map_err(db_err)?;
        }
        Ok(SqlBackend { db })
    }

    /// Opens (creating if needed) the SQLite database file at `path` ([`DEFAULT_SQLITE_PATH`] for the CLI).
    pub async fn open_sqlite(path: &str) -> Result<SqlBackend> {
        SqlBackend::connect(&format!("sqlite:{path}")).await
    }

    /// [`open_sqlite`](Self::open_sqlite) with a choice of when commits are flushed to disk; see [`SqliteSync`]
    /// for what [`SqliteSync::Normal`] gives up.
    pub async fn open_sqlite_with(path: &str, sync: SqliteSync) -> Result<SqlBackend> {
        SqlBackend::connect_with(&format!("sqlite:{path}"), sync).await
    }

    /// A fresh in-memory SQLite database (`sqlite::memory:`), for tests.
    pub async fn memory() -> Result<SqlBackend> {
        SqlBackend::connect("sqlite::memory:").await
    }

    /// Whether this is a PostgreSQL database (otherwise SQLite).
    pub fn is_postgres(&self) -> bool {
        self.db.get_database_backend() == DbBackend::Postgres
    }

    /// Runs one SQL statement with no parameters and returns the rows it changed. For tools and tests (for
    /// example to inspect or damage rows); the store's own operations never need it.
    pub async fn execute_sql(&self, sql: &str) -> Result<u64> {
        query::exec(&self.db, sql, Vec::new()).await
    }

    /// Closes the pool.
    pub async fn close(self) -> Result<()> {
        self.db.close().await.map_err(db_err)
    }
}

fn account_missing(e: StoreError, account: AccountId) -> StoreError {
    if let StoreError::Backend(inner) = &e
        && let Some(db) = inner.downcast_ref::<sea_orm::DbErr>()
        && matches!(db.sql_err(), Some(SqlErr::ForeignKeyConstraintViolation(_)))
    {
        return StoreError::AccountNotFound(account);
    }
    e
}

impl LidStore for SqlBackend {
    fn put_lid_mappings(&self, mappings: &[LidMapping]) -> impl Future<Output = Result<()>> + Send {
        async move {
            if mappings.is_empty() {
                return Ok(());
            }
            let tx = self.db.begin().await.map_err(db_err)?;
            for m in mappings {
                query::exec(
                    &tx,
                    "DELETE FROM wa_lid_map WHERE pn = $2 AND lid <> $1",
                    vec![m.lid.clone().into(), m.pn.clone().into()],
                )
                .await?;
                query::exec(
                    &tx,
                    "INSERT INTO wa_lid_map (lid, pn) VALUES ($1, $2) ON CONFLICT (lid) DO UPDATE SET pn = excluded.pn",
                    vec![m.lid.clone().into(), m.pn.clone().into()],
                )
                .await?;
            }
            tx.commit().await.map_err(db_err)
        }
    }
    fn pn_for_lid(&self, lid: &Jid) -> impl Future<Output = Result<Option<Jid>>> + Send {
        async move {
            let row = query::one(
                &self.db,
                "SELECT pn FROM wa_lid_map WHERE lid = $1",
                vec![lid.user().into()],
            )
            .await?;
            let pn: Option<String> = row
                .map(|row| {
                    Row {
                        row: &row,
                        table: "wa_lid_map",
                        key: lid.user(),
                    }
                    .get("pn")
                })
                .transpose()?;
            Ok(pn.map(|pn| Jid::with_device(pn, Jid::DEFAULT_USER_SERVER, lid.device())))
        }
    }
    fn lid_for_pn(&self, pn: &Jid) -> impl Future<Output = Result<Option<Jid>>> + Send {
        async move {
            let row = query::one(
                &self.db,
                "SELECT lid FROM wa_lid_map WHERE pn = $1",
                vec![pn.user().into()],
            )
            .await?;
            let lid: Option<String> = row
                .map(|row| {
                    Row {
                        row: &row,
                        table: "wa_lid_map",
                        key: pn.user(),
                    }
                    .get("lid")
                })
                .transpose()?;
            Ok(lid.map(|lid| Jid::with_device(lid, Jid::LID_SERVER, pn.device())))
        }
    }
    fn lids_for_pns(&self, pn_users: &[String]) -> impl Future<Output = Result<Vec<LidMapping>>> + Send {
        async move {
            let mut users: Vec<&String> = pn_users.iter().collect();
            users.sort();
            users.dedup();
            let mut out = Vec::new();
            for chunk in users.chunks(query::BATCH_ROWS) {
                let sql = format!(
                    "SELECT lid, pn FROM wa_lid_map WHERE pn IN ({})",
                    placeholders(1, chunk.len())
                );
                let values = chunk.iter().map(|u| Value::from((*u).clone())).collect();
                for row in query::all(&self.db, &sql, values).await? {
                    let r = Row {
                        row: &row,
                        table: "wa_lid_map",
                        key: "(batch)",
                    };
                    out.push(LidMapping {
                        lid: r.get("lid")?,
                        pn: r.get("pn")?,
                    });
                }
            }
            out.sort();
            Ok(out)
        }
    }
}

impl Backend for SqlBackend {
    type Account = SqlAccount;

    fn create_account(&self, device: &Device) -> impl Future<Output = Result<SqlAccount>> + Send {
        async move {
            let sql = format!(
                "INSERT INTO wa_account ({}) VALUES ({}) RETURNING id",
                query::DEVICE_COLUMNS,
                placeholders(1, 16)
            );
            let row = query::one(&self.db, &sql, query::device_values(device))
                .await?
                .ok_or_else(|| StoreError::InvalidArgument("insert returned no id".into()))?;
            let id: i64 = Row {
                row: &row,
                table: "wa_account",
                key: "(new)",
            }
            .get("id")?;
            Ok(SqlAccount {
                id: AccountId(id),
                db: self.db.clone(),
            })
        }
    }
    fn open_account(&self, id: AccountId) -> impl Future<Output = Result<SqlAccount>> + Send {
        async move {
            match query::one(
                &self.db,
                "SELECT id FROM wa_account WHERE id = $1",
                vec![id.0.into()],
            )
            .await?
            {
                Some(_) => Ok(SqlAccount {
                    id,
                    db: self.db.clone(),
                }),
                None => Err(StoreError::AccountNotFound(id)),
            }
        }
    }
    fn accounts(&self) -> impl Future<Output = Result<Vec<AccountId>>> + Send {
        async move {
            let rows = query::all(&self.db, "SELECT id FROM wa_account ORDER BY id", Vec::new()).await?;
            rows.iter()
                .map(|row| {
                    Row {
                        row,
                        table: "wa_account",
                        key: "(list)",
                    }
                    .get("id")
                    .map(AccountId)
                })
                .collect()
        }
    }
    fn account_for_jid(&self, jid: &Jid) -> impl Future<Output = Result<Option<AccountId>>> + Send {
        async move {
            let row = query::one(
                &self.db,
                "SELECT id FROM wa_account WHERE jid = $1 ORDER BY id LIMIT 1",
                vec![jid.to_string().into()],
            )
            .await?;
            row.map(|row| {
                Row {
                    row: &row,
                    table: "wa_account",
                    key: jid,
                }
                .get("id")
                .map(AccountId)
            })
            .transpose()
        }
    }
    fn delete_account(&self, id: AccountId) -> impl Future<Output = Result<()>> + Send {
        async move {
            query::exec(
                &self.db,
                "DELETE FROM wa_account WHERE id = $1",
                vec![id.0.into()],
            )
            .await
            .map(drop)
        }
    }
    fn acquire_lease(
        &self,
        account: AccountId,
        owner: &str,
        now: UnixMillis,
        ttl_ms: i64,
    ) -> impl Future<Output = Result<Lease>> + Send {
        async move {
            let expires = now.saturating_add(ttl_ms);
            // One statement: insert, or take over a lease that is ours or expired. A live lease of another owner
            // makes the update's condition false, so nothing is returned.
            let won = query::one(
                &self.db,
                "INSERT INTO wa_lease (account, owner, expires_at) VALUES ($1, $2, $3) \
                 ON CONFLICT (account) DO UPDATE SET owner = excluded.owner, expires_at = excluded.expires_at \
                 WHERE wa_lease.owner = excluded.owner OR wa_lease.expires_at <= $4 RETURNING owner",
                vec![account.0.into(), owner.into(), expires.into(), now.into()],
            )
            .await
            .map_err(|e| account_missing(e, account))?;
            if won.is_some() {
                return Ok(Lease {
                    account,
                    owner: owner.to_owned(),
                    expires_at_ms: expires,
                });
            }
            let row = query::one(
                &self.db,
                "SELECT owner, expires_at FROM wa_lease WHERE account = $1",
                vec![account.0.into()],
            )
            .await?;
            match row {
                Some(row) => {
                    let r = Row {
                        row: &row,
                        table: "wa_lease",
                        key: account,
                    };
                    Err(StoreError::LeaseHeld {
                        account,
                        owner: r.get("owner")?,
                        expires_at_ms: r.get("expires_at")?,
                    })
                }
                // Released between the two statements: the caller may simply try again.
                None => Err(StoreError::LeaseLost {
                    account,
                    owner: owner.to_owned(),
                }),
            }
        }
    }
    fn renew_lease(
        &self,
        lease: &Lease,
        now: UnixMillis,
        ttl_ms: i64,
    ) -> impl Future<Output = Result<Lease>> + Send {
        async move {
            let expires = now.saturating_add(ttl_ms);
            let changed = query::exec(
                &self.db,
                "UPDATE wa_lease SET expires_at = $3 WHERE account = $1 AND owner = $2",
                vec![lease.account.0.into(), lease.owner.clone().into(), expires.into()],
            )
            .await?;
            match changed {
                0 => Err(StoreError::LeaseLost {
                    account: lease.account,
                    owner: lease.owner.clone(),
                }),
                _ => Ok(Lease {
                    expires_at_ms: expires,
                    ..lease.clone()
                }),
            }
        }
    }
    fn release_lease(&self, lease: &Lease) -> impl Future<Output = Result<()>> + Send {
        async move {
            query::exec(
                &self.db,
                "DELETE FROM wa_lease WHERE account = $1 AND owner = $2",
                vec![lease.account.0.into(), lease.owner.clone().into()],
            )
            .await
            .map(drop)
        }
    }
}
