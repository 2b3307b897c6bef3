//! Heap memory per idle connected client: N clients in this process, each a linked device of its own simulated
//! phone, connected to the in-process `whatsapp-testserver` and sharing one SQLite store, then left idle.
//!
//! Usage: `idle_clients [N]` (default 100). Live heap bytes are counted by this binary's global allocator: after
//! the server and the store are up (the baseline), once every client has connected and the connections have
//! settled, and again after every client disconnected and was dropped. The first difference divided by N is the
//! cost of one idle client *including* the server's side of its connection and its simulated phone (all in this
//! process); the memory the disconnect gives back, divided by N, bounds the client's own share from above (it
//! also frees the server's connection state, but not the phone). Thread stacks and the SQLite page cache are
//! outside the heap count.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use whatsapp_benches::alloc::{CountingAllocator, live_bytes};
use whatsapp_benches::figures;
use whatsapp_client::sql::SqlBackend;
use whatsapp_client::{Client, Event, Events};
use whatsapp_testserver::TestServer;

#[global_allocator]
static ALLOC: CountingAllocator = CountingAllocator;

/// How long the connected clients are left alone before the count (post-login work: prekey upload, presence).
const SETTLE: Duration = Duration::from_secs(3);
/// How long any one step may take.
const STEP: Duration = Duration::from_secs(60);

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

/// Links and connects one client; returns it once `Connected`, its events drained by a task from then on.
async fn connect_one(
    server: &TestServer,
    store: &SqlBackend,
    n: usize,
) -> Result<Client<SqlBackend>, String> {
    let phone = server.add_phone(&format!("1555{n:07}"));
    let (client, mut events) = Client::builder(store.clone())
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
    tokio::spawn(async move { while events.recv().await.is_some() {} });
    Ok(client)
}

async fn measure(count: usize) -> Result<(), String> {
    let server = TestServer::start().await.map_err(|e| e.to_string())?;
    let path = std::env::temp_dir().join(format!("whatsapp_idle_clients_{}.db", std::process::id()));
    let path_text = path.to_str().ok_or("temporary path is not UTF-8")?.to_owned();
    let store = SqlBackend::open_sqlite(&path_text)
        .await
        .map_err(|e| e.to_string())?;
    // One client first, so that lazily built state (TLS of the runtime, statement caches) is in the baseline.
    let warm = connect_one(&server, &store, 0).await?;
    tokio::time::sleep(SETTLE).await;
    let baseline = live_bytes();
    let started = Instant::now();
    let mut clients = Vec::with_capacity(count);
    for n in 1..=count {
        clients.push(connect_one(&server, &store, n).await?);
    }
    let linked = started.elapsed();
    tokio::time::sleep(SETTLE).await;
    let connected = live_bytes();
    for client in &clients {
        client.disconnect().await;
    }
    drop(clients);
    tokio::time::sleep(SETTLE).await;
    let after = live_bytes();
    warm.disconnect().await;
    let _ = store.close().await;
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{path_text}{suffix}"));
    }
    let kib = |bytes: usize| bytes as f64 / 1024.0;
    println!(
        "{count} clients linked and connected in {linked:.1?}; live heap: baseline {:.0} KiB, connected {:.0} KiB, after disconnect {:.0} KiB",
        kib(baseline),
        kib(connected),
        kib(after)
    );
    figures::record("idle_clients", "clients", count as f64, "clients");
    figures::record(
        "idle_clients",
        "heap per idle client, with the server side and the phone",
        kib(connected.saturating_sub(baseline)) / count as f64,
        "KiB",
    );
    figures::record(
        "idle_clients",
        "heap freed per client at disconnect (client + server connection)",
        kib(connected.saturating_sub(after)) / count as f64,
        "KiB",
    );
    Ok(())
}

fn main() -> ExitCode {
    let count = std::env::args()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or(100usize);
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(measure(count)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("idle_clients: {error}");
            ExitCode::FAILURE
        }
    }
}
