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
        Ok(Some(event)) => event,
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
    pub(crate) jid: Jid,
    /// The SQLite file, for a second look at what the client stored (empty for an in-memory store).
    pub(crate) path: String,
}

/// A new companion of the account numbered `number` (its phone is added if it is not there yet), on a SQLite file,
/// paired and logged in.
pub(crate) async fn companion(server: &TestServer, number: &str) -> Companion {
    let phone = server.add_phone(number);
    let (backend, path) = sqlite().await;
    let (client, mut events) = client_for(server, backend).await;
    let jid = pair_with(&phone, &client, &mut events).await;
    Companion {
        client,
        events,
        jid,
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
