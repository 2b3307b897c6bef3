//! Many accounts in one process on one shared PostgreSQL store: N logged-in clients (default 1,000), each the
//! linked device of its own simulated phone, against the in-process `whatsapp-testserver`, all sharing one
//! `SqlBackend` (one connection pool).
//!
//! Usage: `many_clients [N]`, with `WHATSAPP_TEST_POSTGRES_URL` set (for example
//! `postgres://postgres@127.0.0.1:5432/test`); without it the measurement is skipped with a note. Everything is
//! written in a schema of its own (`wa_many_clients_PID`, through the connection's `search_path`), dropped at the
//! end.
//!
//! The steps, each recorded as a figure:
//!
//! 1. Pairing: every account is linked by QR code (the phone scans the code the client shows), at most
//!    [`PAIRING_AT_ONCE`] at a time. Then every client disconnects and is dropped.
//! 2. Connect-all: the N accounts are opened from the store again and connected all at once; the time until the
//!    last one logged in (`Event::Connected`). Live heap bytes (this binary's counting allocator) are read before
//!    (the baseline: the server with its accounts, the store's pool) and after the connections settled: the
//!    difference divided by N is the heap of one idle logged-in client *including the test server's side of its
//!    connection* (both run in this process). After every client disconnected and was dropped, the memory given
//!    back divided by N is the same cost measured the other way.
//! 3. Messages: every client sends one text to the next account (client i to client i+1, the last to the first),
//!    all at once, through the server; the time until every receiver emitted the message (`Event::Message`: the
//!    message decrypted, persisted and acknowledged). These are first messages (each starts a Signal session from
//!    a prekey bundle), so the figure includes the device-list query and the bundle fetch of every sender.
//! 4. Group send, end to end: the first client sends a text to a group of all N accounts, whose other N - 1
//!    linked devices are the receiving clients in this process. The time from the call until `send_message`
//!    returned (the server's ack: group metadata, device lists, N - 1 prekey bundles, N - 1 pairwise sender-key
//!    distributions and the stanza), and until all N - 1 receivers emitted the message.
//!
//! Thread stacks and PostgreSQL's memory are outside the heap count; the file-descriptor limit must allow two
//! sockets per client (the client's and the server's end).

use std::collections::HashSet;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{Semaphore, mpsc};
use tokio::task::JoinSet;
use whatsapp_benches::alloc::{CountingAllocator, live_bytes};
use whatsapp_benches::figures;
use whatsapp_client::sql::SqlBackend;
use whatsapp_client::store::AccountId;
use whatsapp_client::{Client, Event, Events, Jid};
use whatsapp_testserver::TestServer;

#[global_allocator]
static ALLOC: CountingAllocator = CountingAllocator;

/// The figures' group in the report.
const GROUP: &str = "many_clients";
/// The environment variable with the PostgreSQL URL (the one the store's tests use).
const POSTGRES_ENV: &str = "WHATSAPP_TEST_POSTGRES_URL";
/// How many pairings run at once: each is a handful of round trips and a prekey upload, so a few in parallel
/// keep both cores busy without piling up handshakes.
const PAIRING_AT_ONCE: usize = 16;
/// How long the connected clients are left alone before the heap is read (post-login work settles).
const SETTLE: Duration = Duration::from_secs(5);
/// How long one client's step may take.
const STEP: Duration = Duration::from_secs(120);
/// How long a step of all clients together may take.
const ALL: Duration = Duration::from_secs(900);

/// What the clients' event tasks report.
#[derive(Debug)]
enum Seen {
    /// Client `0` logged in.
    Connected(usize),
    /// Client `0` received a message; `1` says whether in a group.
    Message(usize, bool),
}

fn number(n: usize) -> String {
    format!("1556{n:07}")
}

async fn next_event(events: &mut Events, pred: impl Fn(&Event) -> bool) -> Result<Event, String> {
    tokio::time::timeout(STEP, async {
        while let Some(event) = events.recv().await {
            if pred(&event) {
                return Ok(event);
            }
        }
        Err("the event stream ended".to_owned())
    })
    .await
    .map_err(|_| "timed out".to_owned())?
}

/// Links client `n` to its new phone by QR code; returns its account once it logged in.
async fn pair_one(server: TestServer, store: SqlBackend, n: usize) -> Result<AccountId, String> {
    let phone = server.add_phone(&number(n));
    let (client, mut events) = Client::builder(store)
        .server(server.url(), server.trust_root())
        .build()
        .await
        .map_err(|e| e.to_string())?;
    client.connect().await.map_err(|e| e.to_string())?;
    let Event::Qr { code, .. } = next_event(&mut events, |e| matches!(e, Event::Qr { .. })).await? else {
        return Err("expected a QR code".to_owned());
    };
    phone.scan_qr(&code).await.map_err(|e| e.to_string())?;
    next_event(&mut events, |e| matches!(e, Event::Connected)).await?;
    let account = client.account_id();
    client.disconnect().await;
    Ok(account)
}

/// Drains client `n`'s events, reporting logins and messages.
fn watch(n: usize, mut events: Events, seen: mpsc::UnboundedSender<Seen>) {
    tokio::spawn(async move {
        while let Some(event) = events.recv().await {
            let report = match event {
                Event::Connected => Seen::Connected(n),
                Event::Message { info, .. } => Seen::Message(n, info.is_group),
                _ => continue,
            };
            if seen.send(report).is_err() {
                return;
            }
        }
    });
}

/// Waits until `pred` accepted `count` reports (each client at most once); returns when the last arrived.
async fn collect(
    seen: &mut mpsc::UnboundedReceiver<Seen>,
    count: usize,
    pred: impl Fn(&Seen) -> Option<usize>,
) -> Result<Instant, String> {
    let mut clients = HashSet::new();
    tokio::time::timeout(ALL, async {
        while clients.len() < count {
            let report = seen.recv().await.ok_or("the event tasks ended")?;
            if let Some(n) = pred(&report) {
                clients.insert(n);
            }
        }
        Ok::<_, String>(())
    })
    .await
    .map_err(|_| format!("timed out with {} of {count}", clients.len()))??;
    Ok(Instant::now())
}

fn kib(bytes: usize) -> f64 {
    bytes as f64 / 1024.0
}

async fn run(server: &TestServer, store: &SqlBackend, count: usize) -> Result<(), String> {
    // 1. Pairing, a few at a time.
    let started = Instant::now();
    let limit = Arc::new(Semaphore::new(PAIRING_AT_ONCE));
    let mut pairing = JoinSet::new();
    for n in 0..count {
        let (server, store, limit) = (server.clone(), store.clone(), Arc::clone(&limit));
        pairing.spawn(async move {
            let _turn = limit.acquire_owned().await.map_err(|e| e.to_string())?;
            pair_one(server, store, n).await.map(|account| (n, account))
        });
    }
    let mut accounts = vec![None; count];
    while let Some(done) = pairing.join_next().await {
        let (n, account) = done.map_err(|e| e.to_string())??;
        accounts[n] = Some(account);
    }
    let accounts: Vec<AccountId> = accounts
        .into_iter()
        .map(|a| a.ok_or("unpaired"))
        .collect::<Result<_, _>>()?;
    let paired = started.elapsed();
    println!("{count} accounts paired in {paired:.1?}");
    figures::record(
        GROUP,
        "accounts (one shared PostgreSQL store)",
        count as f64,
        "clients",
    );
    figures::record(
        GROUP,
        &format!("pairing all, {PAIRING_AT_ONCE} at a time"),
        paired.as_secs_f64(),
        "s",
    );
    tokio::time::sleep(SETTLE).await;

    // 2. Connect all at once, from the store.
    let baseline = live_bytes();
    let (seen_tx, mut seen) = mpsc::unbounded_channel();
    let started = Instant::now();
    let mut connecting = JoinSet::new();
    for (n, account) in accounts.iter().enumerate() {
        let (server, store, seen_tx) = (server.clone(), store.clone(), seen_tx.clone());
        let account = *account;
        connecting.spawn(async move {
            let (client, events) = Client::builder(store)
                .account(account)
                .server(server.url(), server.trust_root())
                .build()
                .await
                .map_err(|e| e.to_string())?;
            watch(n, events, seen_tx);
            client.connect().await.map_err(|e| e.to_string())?;
            Ok::<_, String>((n, client))
        });
    }
    drop(seen_tx);
    let mut clients: Vec<Option<Client<SqlBackend>>> = vec![None; count];
    while let Some(done) = connecting.join_next().await {
        let (n, client) = done.map_err(|e| e.to_string())??;
        clients[n] = Some(client);
    }
    let clients: Vec<Client<SqlBackend>> = clients
        .into_iter()
        .map(|c| c.ok_or("not connected"))
        .collect::<Result<_, _>>()?;
    let all_in = collect(&mut seen, count, |s| match s {
        Seen::Connected(n) => Some(*n),
        Seen::Message(..) => None,
    })
    .await?;
    let connect_all = all_in - started;
    tokio::time::sleep(SETTLE).await;
    let connected = live_bytes();
    println!(
        "{count} clients connected in {connect_all:.1?}; live heap: baseline {:.0} KiB, connected {:.0} KiB",
        kib(baseline),
        kib(connected)
    );
    figures::record(
        GROUP,
        "connect all at once, until the last logged in",
        connect_all.as_secs_f64(),
        "s",
    );
    figures::record(
        GROUP,
        "heap per idle logged-in client, with the server's side of its connection",
        kib(connected.saturating_sub(baseline)) / count as f64,
        "KiB",
    );

    // 3. One message from every client to the next, all at once.
    let jids: Vec<Jid> = (0..count)
        .map(|n| Jid::new(number(n), Jid::DEFAULT_USER_SERVER))
        .collect();
    let started = Instant::now();
    let mut sending = JoinSet::new();
    for (n, client) in clients.iter().enumerate() {
        let (client, to) = (client.clone(), jids[(n + 1) % count].clone());
        sending.spawn(async move {
            client
                .send_text(&to, &format!("hello from {n}"))
                .await
                .map_err(|e| format!("client {n}: {e}"))
        });
    }
    let received = collect(&mut seen, count, |s| match s {
        Seen::Message(n, false) => Some(*n),
        _ => None,
    })
    .await?;
    while let Some(done) = sending.join_next().await {
        done.map_err(|e| e.to_string())??;
    }
    let elapsed = received - started;
    figures::record(
        GROUP,
        &format!("{count} first messages, one per client, all at once: time until all received"),
        elapsed.as_secs_f64(),
        "s",
    );
    figures::record(
        GROUP,
        "first messages sent, decrypted, persisted and acknowledged",
        count as f64 / elapsed.as_secs_f64(),
        "messages/s",
    );

    // 4. A group of every account; the first client sends.
    let members: Vec<String> = (0..count).map(number).collect();
    let member_refs: Vec<&str> = members.iter().map(String::as_str).collect();
    let group = server.create_group("bench", &member_refs);
    let started = Instant::now();
    clients[0]
        .send_text(&group, "hello group")
        .await
        .map_err(|e| format!("group send: {e}"))?;
    let acked = started.elapsed();
    let received = collect(&mut seen, count - 1, |s| match s {
        Seen::Message(n, true) => Some(*n),
        _ => None,
    })
    .await?;
    let delivered = received - started;
    println!(
        "group send to {} devices: acked in {acked:.1?}, all decrypted in {delivered:.1?}",
        count - 1
    );
    figures::record(
        GROUP,
        &format!(
            "group send to {} devices (first send): until the server's ack",
            count - 1
        ),
        acked.as_secs_f64() * 1000.0,
        "ms",
    );
    figures::record(
        GROUP,
        &format!(
            "group send to {} devices (first send): until every receiver decrypted",
            count - 1
        ),
        delivered.as_secs_f64() * 1000.0,
        "ms",
    );
    let started = Instant::now();
    clients[0]
        .send_text(&group, "hello again")
        .await
        .map_err(|e| format!("group send: {e}"))?;
    let acked = started.elapsed();
    let received = collect(&mut seen, count - 1, |s| match s {
        Seen::Message(n, true) => Some(*n),
        _ => None,
    })
    .await?;
    let delivered = received - started;
    println!("next group send: acked in {acked:.1?}, all decrypted in {delivered:.1?}");
    figures::record(
        GROUP,
        &format!(
            "group send to {} devices (next send): until the server's ack",
            count - 1
        ),
        acked.as_secs_f64() * 1000.0,
        "ms",
    );
    figures::record(
        GROUP,
        &format!(
            "group send to {} devices (next send): until every receiver decrypted",
            count - 1
        ),
        delivered.as_secs_f64() * 1000.0,
        "ms",
    );

    // Disconnect: the heap given back.
    tokio::time::sleep(SETTLE).await;
    let busy = live_bytes();
    for client in &clients {
        client.disconnect().await;
    }
    drop(clients);
    tokio::time::sleep(SETTLE).await;
    let after = live_bytes();
    figures::record(
        GROUP,
        "heap freed per client at disconnect (client and server connection)",
        kib(busy.saturating_sub(after)) / count as f64,
        "KiB",
    );
    Ok(())
}

async fn measure(count: usize, base: &str) -> Result<(), String> {
    let server = TestServer::start().await.map_err(|e| e.to_string())?;
    let schema = format!("wa_many_clients_{}", std::process::id());
    let admin = SqlBackend::connect(base).await.map_err(|e| e.to_string())?;
    admin
        .execute_sql(&format!("CREATE SCHEMA {schema}"))
        .await
        .map_err(|e| e.to_string())?;
    let sep = if base.contains('?') { '&' } else { '?' };
    let url = format!("{base}{sep}options=-c%20search_path%3D{schema}");
    let outcome = match SqlBackend::connect(&url).await {
        Ok(store) => {
            let outcome = run(&server, &store, count).await;
            let _ = store.close().await;
            outcome
        }
        Err(error) => Err(error.to_string()),
    };
    server.shutdown();
    let dropped = admin.execute_sql(&format!("DROP SCHEMA {schema} CASCADE")).await;
    let _ = admin.close().await;
    outcome?;
    dropped
        .map(|_| ())
        .map_err(|e| format!("drop schema {schema}: {e}"))
}

fn main() -> ExitCode {
    let count = std::env::args()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or(1_000usize)
        .max(2);
    let Ok(base) = std::env::var(POSTGRES_ENV) else {
        figures::note(GROUP, &format!("skipped: {POSTGRES_ENV} not set"));
        return ExitCode::SUCCESS;
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(measure(count, &base)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("{GROUP}: {error}");
            ExitCode::FAILURE
        }
    }
}
