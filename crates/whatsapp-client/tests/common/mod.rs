//! Helpers shared by the end-to-end tests: SQLite stores on disk, clients pointed at a test server, waiting for
//! events with a deadline, and pairing by QR code.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use whatsapp_client::sql::SqlBackend;
use whatsapp_client::{Client, Event, Events, Jid};
use whatsapp_testserver::{Phone, ServerEvent, ServerEvents, TestServer};

/// How long any single step may take before the test fails.
pub(crate) const STEP: Duration = Duration::from_secs(30);

/// The phone number of the first simulated phone.
pub(crate) const PHONE: &str = "15551234567";

/// A fresh SQLite database file for one test.
pub(crate) async fn sqlite() -> (SqlBackend, String) {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let path = format!(
        "{}/e2e-{}-{}.db",
        env!("CARGO_TARGET_TMPDIR"),
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    );
    let _ = std::fs::remove_file(&path);
    (SqlBackend::open_sqlite(&path).await.unwrap(), path)
}

/// A new device on `backend`, pointed at `server`.
pub(crate) async fn client_for(server: &TestServer, backend: SqlBackend) -> (Client<SqlBackend>, Events) {
    Client::builder(backend)
        .server(server.url(), server.trust_root())
        .build()
        .await
        .unwrap()
}

/// Waits for the next event matching `pred`, failing on timeout; other events are skipped and logged.
pub(crate) async fn wait_for(events: &mut Events, what: &str, pred: impl Fn(&Event) -> bool) -> Event {
    let found = tokio::time::timeout(STEP, async {
        while let Some(event) = events.recv().await {
            if pred(&event) {
                return Some(event);
            }
            eprintln!("while waiting for {what}: skipped {event:?}");
        }
        None
    })
    .await;
    match found {
        Ok(Some(event)) => {
            // The test has what it waited for: the message counts as handled, and its ack goes out now.
            events.mark_handled();
            event
        }
        Ok(None) => panic!("event stream ended while waiting for {what}"),
        Err(_) => panic!("timed out waiting for {what}"),
    }
}

/// The next event, which must be the one `pred` describes.
pub(crate) async fn next_is(events: &mut Events, what: &str, pred: impl Fn(&Event) -> bool) -> Event {
    let event = tokio::time::timeout(STEP, events.recv())
        .await
        .unwrap_or_else(|_| panic!("timed out waiting for {what}"))
        .unwrap_or_else(|| panic!("event stream ended while waiting for {what}"));
    assert!(pred(&event), "expected {what}, got {event:?}");
    events.mark_handled();
    event
}

pub(crate) async fn server_wait(
    events: &mut ServerEvents,
    what: &str,
    pred: impl Fn(&ServerEvent) -> bool,
) -> ServerEvent {
    tokio::time::timeout(STEP, events.wait_for(pred))
        .await
        .unwrap_or_else(|_| panic!("timed out waiting for server event {what}"))
        .unwrap_or_else(|| panic!("server event stream ended while waiting for {what}"))
}

pub(crate) async fn next_qr(events: &mut Events) -> String {
    match wait_for(events, "a QR code", |e| matches!(e, Event::Qr { .. })).await {
        Event::Qr { code, .. } => code,
        _ => unreachable!(),
    }
}

/// Pairs a client with `phone` by QR code and waits until it logged in; returns the device JID.
pub(crate) async fn pair_with<B: whatsapp_client::store::Backend>(
    phone: &Phone,
    client: &Client<B>,
    events: &mut Events,
) -> Jid {
    client.connect().await.unwrap();
    let code = next_qr(events).await;
    let jid = phone.scan_qr(&code).await.unwrap();
    match next_is(events, "pair success", |e| matches!(e, Event::PairSuccess { .. })).await {
        Event::PairSuccess { jid: paired, lid, .. } => {
            assert_eq!(paired, jid);
            assert_eq!(lid.user(), phone.lid().user());
            assert_eq!(lid.device(), jid.device());
        }
        _ => unreachable!(),
    }
    next_is(events, "connected", |e| matches!(e, Event::Connected)).await;
    jid
}

/// Pairs a new client by QR code with a new phone numbered [`PHONE`]; returns the device JID.
pub(crate) async fn pair_by_qr(server: &TestServer, client: &Client<SqlBackend>, events: &mut Events) -> Jid {
    let phone = server.add_phone(PHONE);
    pair_with(&phone, client, events).await
}

/// The phone number of the second simulated account.
pub(crate) const BOB: &str = "15557654321";

/// A user's JID from its phone number.
pub(crate) fn user(number: &str) -> Jid {
    Jid::new(number, Jid::DEFAULT_USER_SERVER)
}

/// A companion device linked to its account's phone, with its events and its database file.
pub(crate) struct Companion {
    pub(crate) client: Client<SqlBackend>,
    pub(crate) events: Events,
    /// The device by phone number.
    pub(crate) jid: Jid,
    /// The same device by LID, as LID-addressed chats and groups name it.
    pub(crate) lid: Jid,
    /// The SQLite file or PostgreSQL URL, for a second look at what the client stored (see [`reopen`]; empty for
    /// an in-memory store).
    pub(crate) path: String,
}

/// A new companion of the account numbered `number` (its phone is added if it is not there yet), on a SQLite file,
/// paired and logged in.
pub(crate) async fn companion(server: &TestServer, number: &str) -> Companion {
    companion_in(server, number, &Db::Sqlite).await
}

/// Which database a test's companions keep their accounts in.
#[derive(Clone, Debug)]
pub(crate) enum Db {
    /// A SQLite file per companion.
    Sqlite,
    /// One PostgreSQL schema (this URL) for all of them, an account each.
    Postgres(String),
}

/// A new store on `db`, with what reopens it: the SQLite file's path, or the PostgreSQL URL.
pub(crate) async fn store_on(db: &Db) -> (SqlBackend, String) {
    match db {
        Db::Sqlite => sqlite().await,
        Db::Postgres(url) => {
            let backend = SqlBackend::connect(url).await.unwrap();
            assert!(backend.is_postgres());
            (backend, url.clone())
        }
    }
}

/// The backend `device` keeps its account in, opened separately from its client's.
pub(crate) async fn reopen(device: &Companion) -> SqlBackend {
    if device.path.starts_with("postgres") {
        SqlBackend::connect(&device.path).await.unwrap()
    } else {
        SqlBackend::open_sqlite(&device.path).await.unwrap()
    }
}

/// [`companion`] with its account on `db`.
pub(crate) async fn companion_in(server: &TestServer, number: &str, db: &Db) -> Companion {
    let phone = server.add_phone(number);
    let (backend, path) = store_on(db).await;
    let (client, mut events) = client_for(server, backend).await;
    let jid = pair_with(&phone, &client, &mut events).await;
    let lid = Jid::with_device(phone.lid().user(), Jid::LID_SERVER, jid.device());
    Companion {
        client,
        events,
        jid,
        lid,
        path,
    }
}

/// The next message, failing on an undecryptable one.
pub(crate) async fn next_message(
    events: &mut Events,
) -> (whatsapp_client::MessageInfo, whatsapp_client::Message) {
    match wait_for(events, "a message", |e| {
        matches!(e, Event::Message { .. } | Event::UndecryptableMessage { .. })
    })
    .await
    {
        Event::Message { info, message } => (info, *message),
        other => panic!("expected a message, got {other:?}"),
    }
}

/// A schema of its own on the PostgreSQL test database (`WHATSAPP_TEST_POSTGRES_URL`), dropped at the end; `None`
/// after a note when the variable is not set.
pub(crate) struct PostgresSchema {
    admin: sea_orm::DatabaseConnection,
    name: String,
    pub(crate) url: String,
}

impl PostgresSchema {
    pub(crate) async fn new() -> Option<PostgresSchema> {
        use sea_orm::ConnectionTrait;
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        let Ok(base) = std::env::var("WHATSAPP_TEST_POSTGRES_URL") else {
            println!("skipped: WHATSAPP_TEST_POSTGRES_URL not set");
            return None;
        };
        // A plain connection: it runs no migrations, so nothing touches the database's public schema.
        let admin = sea_orm::Database::connect(&base).await.unwrap();
        let name = format!(
            "wa_client_{}_{}_{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed),
            rand_suffix()
        );
        admin
            .execute_unprepared(&format!("CREATE SCHEMA {name}"))
            .await
            .unwrap();
        let sep = if base.contains('?') { '&' } else { '?' };
        let url = format!("{base}{sep}options=-c%20search_path%3D{name}");
        Some(PostgresSchema { admin, name, url })
    }

    pub(crate) async fn drop_schema(self) {
        use sea_orm::ConnectionTrait;
        self.admin
            .execute_unprepared(&format!("DROP SCHEMA {} CASCADE", self.name))
            .await
            .unwrap();
    }
}

fn rand_suffix() -> u64 {
    use std::time::{SystemTime, UNIX_EPOCH};
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_nanos() as u64 % 1_000_000_007
}

/// Runs `body` with its accounts in a PostgreSQL schema of its own, dropped afterwards; prints that it skipped
/// without `WHATSAPP_TEST_POSTGRES_URL`.
pub(crate) async fn on_postgres<F: std::future::Future<Output = ()>>(body: impl FnOnce(Db) -> F) {
    let Some(schema) = PostgresSchema::new().await else {
        return;
    };
    body(Db::Postgres(schema.url.clone())).await;
    schema.drop_schema().await;
}

/// The server's events up to and including the first that `done` accepts.
pub(crate) async fn events_until(
    server_events: &mut ServerEvents,
    what: &str,
    done: impl Fn(&ServerEvent) -> bool,
) -> Vec<ServerEvent> {
    let mut seen = Vec::new();
    loop {
        let event = tokio::time::timeout(STEP, server_events.next())
            .await
            .unwrap_or_else(|_| panic!("timed out waiting for {what}"))
            .expect("the server is gone");
        let last = done(&event);
        seen.push(event);
        if last {
            return seen;
        }
    }
}

/// Waits for a message reading `text`, skipping other events (undecryptable ones included).
pub(crate) async fn wait_text(events: &mut Events, text: &str) {
    wait_for(
        events,
        text,
        |e| matches!(e, Event::Message { message, .. } if message.conversation.as_deref() == Some(text)),
    )
    .await;
}
