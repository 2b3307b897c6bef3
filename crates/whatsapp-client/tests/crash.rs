//! Crash and failover tests with real processes. The test server runs in this (the parent) process; clients run
//! in child processes, which are this test binary started again in child mode (`WHATSAPP_CRASH_CHILD`).
//!
//! Crash: a child drives one account on a SQLite file or a PostgreSQL schema, printing every message it receives
//! and sending numbered messages to a contact that lives in the parent. The parent kills it with SIGKILL at seeded
//! moments: while it starts and connects, right after its handshake (mid-login), from inside the store just
//! before, during or just after a commit (the child aborts itself there), at random while messages flow, and just
//! after the phone pushed an app-state patch or a history sync. Each time it starts the child again on the same
//! store. At the end a last child runs until everything arrived, and the parent checks: every message the contact
//! sent was printed at least once, and a second time only when the process that printed it first was killed;
//! every message the child sent reached the contact exactly once; every app-state patch and history sync was
//! applied; the sessions still decrypt both ways; and the SQLite file passes `PRAGMA integrity_check`.
//!
//! Failover: two children host the same PostgreSQL account under different lease owners; the one holding the
//! lease dies inside a commit while messages reach it, the standby takes the account over when the lease expires,
//! and nothing is lost or printed by both; then a graceful hand-over (the owner gives the lease back when it
//! stops).
//!
//! Store faults at the SQL level: two accounts exchange messages while the store of one fails under it: every
//! connection of its PostgreSQL pool terminated (`pg_terminate_backend`) every 150 to 400 ms; the PostgreSQL server
//! restarted (only with `WHATSAPP_TEST_POSTGRES_RESTART=1`, as it stops every other client of the server); its
//! SQLite file locked exclusively by another process for 3 s. Every message must arrive exactly once.
//!
//! Kills per crash run: `WHATSAPP_CRASH_KILLS` (default [`DEFAULT_KILLS`]; the long form is 500); the plan's seed:
//! `WHATSAPP_CRASH_SEED`. PostgreSQL runs need `WHATSAPP_TEST_POSTGRES_URL` and print that they skipped without
//! it. The binary takes libtest's name filters and `--list`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
#[path = "common/faults.rs"]
mod faults;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use faults::KillPoint;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::mpsc;
use whatsapp_client::appstate::PatchInfo;
use whatsapp_client::sql::SqlBackend;
use whatsapp_client::store::{AccountStore, Backend, ChatSettingsStore};
use whatsapp_client::{Client, Event, Jid};
use whatsapp_proto::e2e::MessageKey;
use whatsapp_proto::history_sync::{Conversation, HistorySync, HistorySyncMsg, WebMessageInfo};
use whatsapp_testserver::{Phone, ServerEvent, TestServer};

/// Set in a child's environment: run as a child.
const CHILD: &str = "WHATSAPP_CRASH_CHILD";
/// Kills per crash run unless `WHATSAPP_CRASH_KILLS` says otherwise.
const DEFAULT_KILLS: u64 = 50;
const DEFAULT_SEED: u64 = 0xC4A5_0001;
/// The account the children drive, and the contact in the parent.
const CHILD_NUMBER: &str = "15558880001";
const CONTACT_NUMBER: &str = "15558880002";
/// The lease owner of the crash test's children: a restarted child takes its predecessor's lease back at once.
const OWNER: &str = "crash-child";
/// The lease of the failover test's children: a standby takes over at most this long after the owner died.
const FAILOVER_LEASE: Duration = Duration::from_secs(3);
const NOW: i64 = 1_700_000_000_000;

const TESTS: [&str; 6] = [
    "crash_on_sqlite",
    "crash_on_postgres",
    "failover_on_postgres",
    "postgres_connections_killed_under_load",
    "postgres_restarted_under_load",
    "sqlite_file_locked_by_another_process",
];

fn main() {
    match std::env::var(CHILD).as_deref() {
        Ok("lock") => return child::hold_lock(),
        Ok(_) => return child::run(),
        Err(_) => {}
    }
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|a| a == "--list") {
        for name in TESTS {
            println!("{name}: test");
        }
        return;
    }
    let exact = args.iter().any(|a| a == "--exact");
    let filters: Vec<&String> = args.iter().filter(|a| !a.starts_with('-')).collect();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut ran = 0;
    for name in TESTS {
        let selected = filters.is_empty()
            || filters.iter().any(|f| {
                if exact {
                    f.as_str() == name
                } else {
                    name.contains(f.as_str())
                }
            });
        if !selected {
            continue;
        }
        println!("test {name} ...");
        runtime.block_on(async {
            match name {
                "crash_on_sqlite" => crash(Db::Sqlite).await,
                "crash_on_postgres" => on_postgres(crash).await,
                "failover_on_postgres" => on_postgres(failover).await,
                "postgres_connections_killed_under_load" => {
                    on_postgres(|db| store_faults(db, StoreFault::KillConnections)).await
                }
                "postgres_restarted_under_load" => {
                    if std::env::var_os("WHATSAPP_TEST_POSTGRES_RESTART").is_some() {
                        on_postgres(|db| store_faults(db, StoreFault::Restart)).await
                    } else {
                        println!(
                            "skipped: restarting PostgreSQL needs WHATSAPP_TEST_POSTGRES_RESTART=1 (it stops every \
                             other client of the server for a moment)"
                        );
                    }
                }
                "sqlite_file_locked_by_another_process" => store_faults(Db::Sqlite, StoreFault::LockFile).await,
                _ => unreachable!(),
            }
        });
        println!("test {name} ... ok");
        ran += 1;
    }
    println!("\ntest result: ok. {ran} passed; 0 failed");
}

fn env_number(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .map(|v| v.parse().unwrap_or_else(|_| panic!("{name} must be a number")))
        .unwrap_or(default)
}

// ---------------------------------------------------------------------------------------------------------------
// The parent's side: children, what they print, and the account they share.

/// What a child prints, a line each.
#[derive(Debug)]
enum Line {
    /// Logged in (after every login of that process).
    Ready,
    /// A message event with this text.
    Got(String),
    /// The contact acknowledged the child's message number k.
    Sent(u64),
    /// A history sync conversation with this chat id.
    History(String),
    /// An undecryptable message event.
    Undecryptable(String),
}

fn parse_line(text: &str) -> Option<Line> {
    let (word, rest) = text.split_once(' ').unwrap_or((text, ""));
    Some(match word {
        "ready" => Line::Ready,
        "got" => Line::Got(rest.to_owned()),
        "sent" => Line::Sent(rest.parse().ok()?),
        "history" => Line::History(rest.to_owned()),
        "undecryptable" => Line::Undecryptable(rest.to_owned()),
        _ => return None,
    })
}

/// Where children find the server, the store and the contact.
struct Setup {
    url: String,
    trust: String,
    db: String,
    contact: String,
    log: String,
}

/// One running child and its lines, tagged with the child's number.
struct Running {
    child: Child,
    /// Held apart from `child`, whose `wait` would close it: closing it asks the child to stop.
    stdin: Option<tokio::process::ChildStdin>,
    number: usize,
    reader: tokio::task::JoinHandle<()>,
}

/// Starts child `number` (owner `owner`), which sends the contact its messages `from..to` and, with `kill_at`,
/// aborts itself at that commit.
fn spawn(
    setup: &Setup,
    number: usize,
    owner: &str,
    sends: (u64, u64),
    kill_at: Option<(&str, u64, KillPoint)>,
    lines: &mpsc::UnboundedSender<(usize, Line)>,
) -> Running {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&setup.log)
        .unwrap();
    let mut command = Command::new(std::env::current_exe().unwrap());
    command
        .env(CHILD, "1")
        .env("WHATSAPP_CRASH_URL", &setup.url)
        .env("WHATSAPP_CRASH_TRUST", &setup.trust)
        .env("WHATSAPP_CRASH_DB", &setup.db)
        .env("WHATSAPP_CRASH_CONTACT", &setup.contact)
        .env("WHATSAPP_CRASH_OWNER", owner)
        .env("WHATSAPP_CRASH_SENDS", format!("{}..{}", sends.0, sends.1))
        .env_remove("WHATSAPP_CRASH_KILL_AT")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::from(log))
        .kill_on_drop(true);
    if let Some((relative, at, point)) = kill_at {
        command.env(
            "WHATSAPP_CRASH_KILL_AT",
            format!("{relative}{at}:{}", point.name()),
        );
    }
    let mut child = command.spawn().unwrap();
    let stdout = child.stdout.take().unwrap();
    let stdin = child.stdin.take();
    let lines = lines.clone();
    let reader = tokio::spawn(async move {
        let mut reader = BufReader::new(stdout).lines();
        while let Ok(Some(text)) = reader.next_line().await {
            if let Some(line) = parse_line(&text) {
                let _ = lines.send((number, line));
            }
        }
    });
    Running {
        child,
        stdin,
        number,
        reader,
    }
}

impl Running {
    /// SIGKILL, then every line it printed before it died.
    async fn kill(mut self) {
        let _ = self.child.start_kill();
        self.wait().await;
    }

    /// Waits for the process to end (it killed itself, or was killed) and for its last lines.
    async fn wait(&mut self) -> std::process::ExitStatus {
        let status = tokio::time::timeout(STEP, self.child.wait())
            .await
            .expect("a child did not end")
            .unwrap();
        (&mut self.reader).await.unwrap();
        status
    }

    /// Asks the child to stop (its stdin closes): it disconnects and exits.
    async fn stop(mut self) {
        drop(self.stdin.take());
        let status = self.wait().await;
        assert!(status.success(), "child {} ended with {status}", self.number);
    }
}

/// Everything the children printed, by child.
#[derive(Default)]
struct Seen {
    /// For each text received, the children that printed it, in order.
    got: HashMap<String, Vec<usize>>,
    /// The highest message number the contact acknowledged, plus one.
    sent_up_to: u64,
    histories: HashSet<String>,
    undecryptable: usize,
    /// Logins per child.
    ready: HashMap<usize, usize>,
}

impl Seen {
    fn take(&mut self, (child, line): (usize, Line)) {
        match line {
            Line::Ready => *self.ready.entry(child).or_default() += 1,
            Line::Got(text) => self.got.entry(text).or_default().push(child),
            Line::Sent(k) => self.sent_up_to = self.sent_up_to.max(k + 1),
            Line::History(chat) => {
                self.histories.insert(chat);
            }
            Line::Undecryptable(id) => {
                eprintln!("child {child}: undecryptable {id}");
                self.undecryptable += 1;
            }
        }
    }

    fn drain(&mut self, lines: &mut mpsc::UnboundedReceiver<(usize, Line)>) {
        while let Ok(line) = lines.try_recv() {
            self.take(line);
        }
    }

    /// Waits until `child` logged in once more than `before` times.
    async fn wait_ready(
        &mut self,
        lines: &mut mpsc::UnboundedReceiver<(usize, Line)>,
        child: usize,
        log: &str,
    ) {
        let deadline = tokio::time::Instant::now() + STEP;
        while self.ready.get(&child).copied().unwrap_or(0) == 0 {
            let line = tokio::time::timeout_at(deadline, lines.recv())
                .await
                .unwrap_or_else(|_| panic!("child {child} did not log in; see {log}"))
                .expect("line channel closed");
            self.take(line);
        }
    }
}

/// A history sync of one conversation, named after `k`.
fn history_chat(k: u64) -> String {
    format!("1555200{k:04}@s.whatsapp.net")
}

fn history(k: u64) -> HistorySync {
    let chat = history_chat(k);
    HistorySync {
        // RECENT (HistorySyncType, WAProto.proto).
        sync_type: 3,
        conversations: vec![Conversation {
            id: chat.clone(),
            messages: vec![HistorySyncMsg {
                message: Some(WebMessageInfo {
                    key: MessageKey {
                        remote_jid: Some(chat),
                        from_me: Some(false),
                        id: Some(format!("HIST{k}")),
                        participant: None,
                    },
                    message: Some(whatsapp_client::Message {
                        conversation: Some(format!("history {k}")),
                        ..Default::default()
                    }),
                    message_timestamp: Some(1_700_000_000 + k),
                    ..Default::default()
                }),
                msg_order_id: Some(0),
            }],
            ..Default::default()
        }],
        ..Default::default()
    }
}

fn pinned_chat(k: u64) -> Jid {
    user(&format!("1555300{k:04}"))
}

/// The account the children drive, paired in the parent on `db` (its app-state key shared), and the contact.
struct World {
    server: TestServer,
    phone: Phone,
    /// The contact, in this process, and the texts it received.
    contact: Client<SqlBackend>,
    inbox: mpsc::UnboundedReceiver<String>,
    /// The children's device.
    device: Jid,
    setup: Setup,
}

async fn world(db: &Db, name: &str) -> World {
    let server = TestServer::start().await.unwrap();
    let Companion {
        client: contact,
        events: contact_events,
        ..
    } = companion(&server, CONTACT_NUMBER).await;
    let inbox = contact_inbox(contact_events);
    let mut paired = companion_in(&server, CHILD_NUMBER, db).await;
    let phone = server.add_phone(CHILD_NUMBER);
    phone.share_app_state_key().unwrap();
    wait_for(&mut paired.events, "the app-state key", |e| {
        matches!(e, Event::AppStateKeys { .. })
    })
    .await;
    paired.client.disconnect().await;
    let device = paired.jid.clone();
    let db = paired.path.clone();
    drop(paired);
    let log = format!(
        "{}/{name}-{}-children.log",
        env!("CARGO_TARGET_TMPDIR"),
        std::process::id()
    );
    let _ = std::fs::remove_file(&log);
    let trust = server
        .trust_root()
        .key()
        .as_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let setup = Setup {
        url: server.url(),
        trust,
        db,
        contact: CONTACT_NUMBER.to_owned(),
        log,
    };
    World {
        server,
        phone,
        contact,
        inbox,
        device,
        setup,
    }
}

/// The contact's received texts, fed by a task.
fn contact_inbox(mut events: whatsapp_client::Events) -> mpsc::UnboundedReceiver<String> {
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Some(event) = events.recv().await {
            if let Event::Message { message, .. } = event
                && let Some(text) = message.conversation
            {
                let _ = tx.send(text);
            }
        }
    });
    rx
}

// ---------------------------------------------------------------------------------------------------------------
// The crash test.

/// How a child incarnation ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum Kill {
    /// Killed at a random moment of its start: process start, store opening, handshake.
    Startup,
    /// Killed when the server saw its handshake complete: during the login.
    Login,
    /// Aborted itself at its n-th commit, at this point.
    Commit(u8),
    /// Killed at a random moment while messages flow.
    Traffic,
    /// Killed just after the phone pushed an app-state patch.
    AppState,
    /// Killed just after the phone sent a history sync.
    History,
}

async fn crash(db: Db) {
    let kills = env_number("WHATSAPP_CRASH_KILLS", DEFAULT_KILLS);
    let seed = env_number("WHATSAPP_CRASH_SEED", DEFAULT_SEED);
    let mut rng = StdRng::seed_from_u64(seed);
    let name = match db {
        Db::Sqlite => "crash-sqlite",
        Db::Postgres(_) => "crash-postgres",
    };
    let started = Instant::now();
    let mut world = world(&db, name).await;
    let (lines_tx, mut lines) = mpsc::unbounded_channel();
    let mut seen = Seen::default();
    // The child's messages to send in all, and the contact's sent so far.
    let child_total = kills * 3;
    let mut contact_sent = 0u64;
    let mut pushes = (0u64, 0u64);
    let mut plan: BTreeMap<Kill, u64> = BTreeMap::new();
    let mut self_aborted = 0u64;
    let mut startup = Duration::from_millis(300);
    let log = world.setup.log.clone();

    for number in 0..kills as usize {
        // Messages queued while the child is down arrive in a burst at its login.
        for _ in 0..rng.gen_range(0..=4) {
            send_numbered(&world.contact, contact_sent).await;
            contact_sent += 1;
        }
        let kill = match rng.gen_range(0..6) {
            0 => Kill::Startup,
            1 => Kill::Login,
            2 => Kill::Commit(KillPoint::ALL[rng.gen_range(0..3)] as u8),
            3 => Kill::Traffic,
            4 => Kill::AppState,
            _ => Kill::History,
        };
        let kill_at = match kill {
            Kill::Commit(point) => Some((
                "",
                rng.gen_range(1..=8),
                KillPoint::ALL.into_iter().find(|p| *p as u8 == point).unwrap(),
            )),
            _ => None,
        };
        let spawned = Instant::now();
        let sends = (seen.sent_up_to, child_total);
        let mut server_events = world.server.subscribe();
        let mut child = spawn(&world.setup, number, OWNER, sends, kill_at, &lines_tx);
        match kill {
            Kill::Startup => {
                tokio::time::sleep(startup.mul_f64(rng.gen_range(0.0..1.0))).await;
                child.kill().await;
            }
            Kill::Login => {
                let server_seen = tokio::time::timeout(
                    STEP,
                    server_events.wait_for(|e| matches!(e, ServerEvent::Connected { .. })),
                )
                .await;
                assert!(server_seen.is_ok(), "child {number} never connected; see {log}");
                child.kill().await;
            }
            Kill::Commit(_) => {
                // It aborts itself at that commit (logging in, or decrypting these); one that makes fewer
                // commits is killed after a while.
                for _ in 0..rng.gen_range(1..=4) {
                    send_numbered(&world.contact, contact_sent).await;
                    contact_sent += 1;
                }
                match tokio::time::timeout(Duration::from_secs(3), child.child.wait()).await {
                    Ok(status) => {
                        let status = status.unwrap();
                        assert!(!status.success(), "child {number} exited by itself: {status}");
                        self_aborted += 1;
                        child.wait().await;
                    }
                    Err(_) => child.kill().await,
                }
            }
            Kill::Traffic => {
                seen.wait_ready(&mut lines, number, &log).await;
                startup = (startup + spawned.elapsed()) / 2;
                for _ in 0..rng.gen_range(1..=6) {
                    send_numbered(&world.contact, contact_sent).await;
                    contact_sent += 1;
                }
                tokio::time::sleep(Duration::from_millis(rng.gen_range(0..600))).await;
                child.kill().await;
            }
            Kill::AppState => {
                seen.wait_ready(&mut lines, number, &log).await;
                world
                    .phone
                    .push_app_state(&PatchInfo::pin(
                        &pinned_chat(pushes.0),
                        true,
                        NOW + pushes.0 as i64,
                    ))
                    .unwrap();
                pushes.0 += 1;
                tokio::time::sleep(Duration::from_millis(rng.gen_range(0..60))).await;
                child.kill().await;
            }
            Kill::History => {
                seen.wait_ready(&mut lines, number, &log).await;
                world
                    .phone
                    .send_history_sync(&world.device, &history(pushes.1))
                    .unwrap();
                pushes.1 += 1;
                tokio::time::sleep(Duration::from_millis(rng.gen_range(0..120))).await;
                child.kill().await;
            }
        }
        *plan.entry(kill).or_default() += 1;
        seen.drain(&mut lines);
    }

    // The last child runs until everything arrived both ways, then stops cleanly.
    let last = kills as usize;
    let child = spawn(
        &world.setup,
        last,
        OWNER,
        (seen.sent_up_to, child_total),
        None,
        &lines_tx,
    );
    send_numbered(&world.contact, contact_sent).await;
    contact_sent += 1;
    let expected: Vec<String> = (0..contact_sent).map(|k| format!("p{k}")).collect();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    while !(expected.iter().all(|text| seen.got.contains_key(text))
        && seen.sent_up_to == child_total
        && (0..pushes.1).all(|k| seen.histories.contains(&history_chat(k))))
    {
        let Ok(line) = tokio::time::timeout_at(deadline, lines.recv()).await else {
            let lost: Vec<&String> = expected.iter().filter(|t| !seen.got.contains_key(*t)).collect();
            panic!(
                "the last child did not get everything: lost {lost:?}, sent {} of {child_total}, histories {} of {}; see {log}",
                seen.sent_up_to,
                seen.histories.len(),
                pushes.1
            );
        };
        seen.take(line.unwrap());
    }
    child.stop().await;
    seen.drain(&mut lines);

    // What the contact got of the child's messages: each exactly once.
    let mut received: HashMap<String, usize> = HashMap::new();
    let contact_deadline = tokio::time::Instant::now() + STEP;
    while received.len() < child_total as usize {
        let text = tokio::time::timeout_at(contact_deadline, world.inbox.recv())
            .await
            .unwrap_or_else(|_| panic!("the contact got {} of {child_total}", received.len()))
            .unwrap();
        *received.entry(text).or_default() += 1;
    }
    while let Ok(text) = world.inbox.try_recv() {
        *received.entry(text).or_default() += 1;
    }
    for k in 0..child_total {
        assert_eq!(
            received.get(&format!("c{k}")),
            Some(&1),
            "c{k} reached the contact {:?} times",
            received.get(&format!("c{k}"))
        );
    }

    // The child's side: none lost (checked above), and a message printed twice only when the process that
    // printed it first was killed afterwards.
    let mut duplicates = 0;
    for (text, children) in &seen.got {
        for pair in children.windows(2) {
            assert!(pair[0] < pair[1], "{text} printed twice by child {}", pair[0]);
            assert!(
                pair[0] < last,
                "{text} printed again after the last child printed it"
            );
            duplicates += 1;
        }
    }

    // The store: app state applied, SQLite file intact.
    let store = match &db {
        Db::Sqlite => SqlBackend::open_sqlite(&world.setup.db).await.unwrap(),
        Db::Postgres(url) => SqlBackend::connect(url).await.unwrap(),
    };
    let account = store
        .open_account(store.accounts().await.unwrap()[0])
        .await
        .unwrap();
    assert_eq!(account.device().await.unwrap().jid.as_ref(), Some(&world.device));
    for k in 0..pushes.0 {
        let settings = account.chat_settings(&pinned_chat(k)).await.unwrap();
        assert!(
            settings.is_some_and(|s| s.pinned),
            "app-state patch {k} (a pin) was not applied"
        );
    }
    if matches!(db, Db::Sqlite) {
        assert_eq!(sqlite_integrity(&world.setup.db).await, "ok");
    }
    world.contact.disconnect().await;

    println!(
        "{name}: {kills} kills ({plan:?}; {self_aborted} aborted inside a commit), {contact_sent} messages to the \
         child, all printed, {duplicates} printed twice (each first by a killed child), {child_total} sent by the \
         children, each received once, {} app-state pins and {} history syncs applied, {} undecryptable events \
         (recovered), seed {seed:#x}, {:.1} s",
        pushes.0,
        pushes.1,
        seen.undecryptable,
        started.elapsed().as_secs_f64()
    );
}

async fn send_numbered(contact: &Client<SqlBackend>, k: u64) {
    contact
        .send_text(&user(CHILD_NUMBER), &format!("p{k}"))
        .await
        .unwrap();
}

async fn sqlite_integrity(path: &str) -> String {
    use sea_orm::{ConnectionTrait, DatabaseBackend, Statement};
    let db = sea_orm::Database::connect(format!("sqlite:{path}?mode=ro"))
        .await
        .unwrap();
    let row = db
        .query_one_raw(Statement::from_string(
            DatabaseBackend::Sqlite,
            "PRAGMA integrity_check",
        ))
        .await
        .unwrap()
        .unwrap();
    row.try_get_by_index::<String>(0).unwrap()
}

// ---------------------------------------------------------------------------------------------------------------
// The failover test.

async fn failover(db: Db) {
    let started = Instant::now();
    let world = world(&db, "failover").await;
    let (lines_tx, mut lines) = mpsc::unbounded_channel();
    let mut seen = Seen::default();
    let log = world.setup.log.clone();
    let total = 50u64;

    // A takes the account; B waits for the lease.
    // A aborts itself before its 15th commit after login: while decrypting the second batch below.
    let mut a = spawn(
        &world.setup,
        0,
        "host-a",
        (0, 0),
        Some(("+", 15, KillPoint::BeforeCommit)),
        &lines_tx,
    );
    seen.wait_ready(&mut lines, 0, &log).await;
    let b = spawn(&world.setup, 1, "host-b", (0, 0), None, &lines_tx);
    let mut sent = 0u64;
    for _ in 0..10 {
        send_numbered(&world.contact, sent).await;
        sent += 1;
    }
    wait_got(&mut seen, &mut lines, sent, &log).await;
    assert_eq!(seen.ready.get(&1), None, "B logged in while A held the lease");

    // A dies while messages reach it; those sent meanwhile wait on the server, and B takes over once the lease
    // expired.
    for _ in 0..10 {
        send_numbered(&world.contact, sent).await;
        sent += 1;
    }
    let killed = Instant::now();
    let a_status = a.wait().await;
    assert!(!a_status.success(), "A was to die inside a commit: {a_status}");
    for _ in 0..10 {
        send_numbered(&world.contact, sent).await;
        sent += 1;
    }
    seen.wait_ready(&mut lines, 1, &log).await;
    let takeover = killed.elapsed();
    wait_got(&mut seen, &mut lines, sent, &log).await;
    assert!(
        takeover < FAILOVER_LEASE * 2,
        "B took {takeover:?} to take over a {FAILOVER_LEASE:?} lease"
    );

    // C waits; B stops cleanly and gives the lease back, and C takes over without waiting for it to expire.
    let c = spawn(&world.setup, 2, "host-c", (0, 0), None, &lines_tx);
    for _ in 0..10 {
        send_numbered(&world.contact, sent).await;
        sent += 1;
    }
    wait_got(&mut seen, &mut lines, sent, &log).await;
    let stopped = Instant::now();
    b.stop().await;
    while sent < total {
        send_numbered(&world.contact, sent).await;
        sent += 1;
    }
    seen.wait_ready(&mut lines, 2, &log).await;
    let handover = stopped.elapsed();
    wait_got(&mut seen, &mut lines, sent, &log).await;
    c.stop().await;
    seen.drain(&mut lines);

    // No message printed by two processes unless the first was killed (A only).
    for (text, children) in &seen.got {
        for pair in children.windows(2) {
            assert_eq!(
                pair[0], 0,
                "{text} printed by child {} and again by {}",
                pair[0], pair[1]
            );
        }
    }
    let duplicates: usize = seen.got.values().map(|c| c.len() - 1).sum();
    world.contact.disconnect().await;
    println!(
        "failover_on_postgres: {total} messages, all printed once ({duplicates} again after the kill); takeover \
         after a kill {:.2} s with a {} s lease, graceful hand-over {:.2} s; {:.1} s",
        takeover.as_secs_f64(),
        FAILOVER_LEASE.as_secs(),
        handover.as_secs_f64(),
        started.elapsed().as_secs_f64()
    );
}

/// Waits until messages `p0..p(sent)` were all printed.
async fn wait_got(seen: &mut Seen, lines: &mut mpsc::UnboundedReceiver<(usize, Line)>, sent: u64, log: &str) {
    let deadline = tokio::time::Instant::now() + STEP;
    while !(0..sent).all(|k| seen.got.contains_key(&format!("p{k}"))) {
        let line = tokio::time::timeout_at(deadline, lines.recv())
            .await
            .unwrap_or_else(|_| panic!("messages up to p{sent} not all printed; see {log}"))
            .unwrap();
        seen.take(line);
    }
}

// ---------------------------------------------------------------------------------------------------------------
// Store faults at the SQL level, under load.

/// What happens to the store while messages flow.
#[derive(Clone, Copy, Debug)]
enum StoreFault {
    /// Every connection of the client's pool is terminated (`pg_terminate_backend`) every 150 to 400 ms.
    KillConnections,
    /// The PostgreSQL server is restarted (`pg_ctlcluster ... restart`).
    Restart,
    /// Another process holds an exclusive lock on the SQLite file for 3 s.
    LockFile,
}

/// Alice (SQLite) and Bob (on `db`, where the fault is played) exchange numbered messages while `fault` hits Bob's
/// store; Bob's sends are retried under their id. Every message must arrive exactly once (Bob's process lives on,
/// so not even the crash window applies).
async fn store_faults(db: Db, fault: StoreFault) {
    let started = Instant::now();
    let server = TestServer::start().await.unwrap();
    let application = format!("wa_faults_{}", std::process::id());
    let db = match db {
        Db::Postgres(url) => Db::Postgres(format!("{url}&application_name={application}")),
        other => other,
    };
    let Companion {
        client: alice,
        events: alice_events,
        ..
    } = companion(&server, CONTACT_NUMBER).await;
    let mut alice_inbox = contact_inbox(alice_events);
    let Companion {
        client: bob,
        events: mut bob_events,
        path: bob_store,
        ..
    } = companion_in(&server, CHILD_NUMBER, &db).await;
    let (bob_tx, mut bob_inbox) = mpsc::unbounded_channel();
    let disconnects = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let counted = Arc::clone(&disconnects);
    tokio::spawn(async move {
        while let Some(event) = bob_events.recv().await {
            match event {
                Event::Message { message, .. } => {
                    let _ = bob_tx.send(message.conversation.unwrap_or_default());
                }
                Event::Disconnected => {
                    counted.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                }
                _ => {}
            }
        }
    });

    // The fault, beside the traffic.
    let (stop_tx, mut stop) = tokio::sync::watch::channel(false);
    let fault_task = tokio::spawn({
        let application = application.clone();
        let bob_store = bob_store.clone();
        async move {
            match fault {
                StoreFault::KillConnections => {
                    use sea_orm::{ConnectionTrait, DatabaseBackend, Statement};
                    let admin =
                        sea_orm::Database::connect(std::env::var("WHATSAPP_TEST_POSTGRES_URL").unwrap())
                            .await
                            .unwrap();
                    let mut rng = StdRng::seed_from_u64(DEFAULT_SEED);
                    let mut terminated = 0usize;
                    while !*stop.borrow() {
                        let pause = Duration::from_millis(rng.gen_range(150..400));
                        let _ = tokio::time::timeout(pause, stop.changed()).await;
                        let rows = admin
                            .query_all_raw(Statement::from_string(
                                DatabaseBackend::Postgres,
                                format!(
                                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
                                     WHERE application_name = '{application}'"
                                ),
                            ))
                            .await
                            .unwrap();
                        terminated += rows.len();
                    }
                    format!("{terminated} connections terminated")
                }
                StoreFault::Restart => {
                    let _ = tokio::time::timeout(Duration::from_millis(300), stop.changed()).await;
                    let version = std::fs::read_dir("/etc/postgresql")
                        .unwrap()
                        .filter_map(|entry| entry.ok()?.file_name().into_string().ok())
                        .max()
                        .unwrap();
                    let restarted = Instant::now();
                    let status = Command::new("pg_ctlcluster")
                        .args(["--skip-systemctl-redirect", &version, "main", "restart"])
                        .status()
                        .await
                        .unwrap();
                    assert!(status.success(), "pg_ctlcluster restart: {status}");
                    format!(
                        "PostgreSQL {version} restarted in {:.1} s",
                        restarted.elapsed().as_secs_f64()
                    )
                }
                StoreFault::LockFile => {
                    let _ = tokio::time::timeout(Duration::from_millis(200), stop.changed()).await;
                    let locked = Instant::now();
                    let status = Command::new(std::env::current_exe().unwrap())
                        .env(CHILD, "lock")
                        .env("WHATSAPP_CRASH_DB", &bob_store)
                        .env("WHATSAPP_CRASH_HOLD_MS", "3000")
                        .status()
                        .await
                        .unwrap();
                    assert!(status.success(), "the locking process failed: {status}");
                    format!(
                        "the file locked exclusively by another process for {:.1} s",
                        locked.elapsed().as_secs_f64()
                    )
                }
            }
        }
    });

    // Traffic both ways: Alice's sends go to the server whatever Bob's store does; Bob's are retried under their
    // id until acknowledged.
    let total = 60u64;
    let bob_sender = bob.clone();
    let bob_sends = tokio::spawn(async move {
        let alice = user(CONTACT_NUMBER);
        let mut failed = 0u32;
        for k in 0..total / 2 {
            let message = whatsapp_client::Message {
                conversation: Some(format!("b{k}")),
                ..Default::default()
            };
            let id = bob_sender
                .generate_message_id()
                .await
                .unwrap_or_else(|_| format!("FAULTB{k:06}"));
            // Bounded by the timeout on the whole task below.
            while let Err(error) = bob_sender.send_message_with_id(&alice, &message, &id).await {
                failed += 1;
                if failed.is_multiple_of(100) {
                    eprintln!("b{k}: {failed} failed attempts, the last: {error}");
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
        failed
    });
    for k in 0..total {
        alice
            .send_text(&user(CHILD_NUMBER), &format!("a{k}"))
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(15)).await;
    }
    let failed_sends = tokio::time::timeout(Duration::from_secs(180), bob_sends)
        .await
        .expect("Bob's sends did not get through")
        .unwrap();
    let _ = stop_tx.send(true);
    let what = fault_task.await.unwrap();

    each_once(&mut bob_inbox, "a", total).await;
    each_once(&mut alice_inbox, "b", total / 2).await;
    println!(
        "{fault:?}: {what}; {total} messages to the client on the faulty store and {} from it, each received once; \
         {} disconnects, {failed_sends} failed send attempts retried under their id; {:.1} s",
        total / 2,
        disconnects.load(std::sync::atomic::Ordering::Relaxed),
        started.elapsed().as_secs_f64()
    );
    alice.disconnect().await;
    bob.disconnect().await;
}

/// Waits until texts `prefix0..prefix(count)` all arrived, each exactly once.
async fn each_once(inbox: &mut mpsc::UnboundedReceiver<String>, prefix: &str, count: u64) {
    let mut got: HashMap<String, usize> = HashMap::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    while got.len() < count as usize {
        let text = tokio::time::timeout_at(deadline, inbox.recv())
            .await
            .unwrap_or_else(|_| panic!("{prefix}: {} of {count} arrived", got.len()))
            .unwrap();
        *got.entry(text).or_default() += 1;
    }
    while let Ok(text) = inbox.try_recv() {
        *got.entry(text).or_default() += 1;
    }
    for k in 0..count {
        let text = format!("{prefix}{k}");
        assert_eq!(
            got.get(&text),
            Some(&1),
            "{text} arrived {:?} times",
            got.get(&text)
        );
    }
}

// ---------------------------------------------------------------------------------------------------------------
// The child's side.

mod child {
    use std::io::Write;
    use std::sync::Arc;
    use std::time::Duration;

    use whatsapp_client::sql::SqlBackend;
    use whatsapp_client::store::Backend;
    use whatsapp_client::{Client, Event, Jid};

    use super::faults::{CommitFaults, FlakyBackend, KillPoint};

    fn var(name: &str) -> String {
        std::env::var(name).unwrap_or_else(|_| panic!("{name} is not set"))
    }

    /// One line to the parent, written through at once.
    fn line(text: &str) {
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{text}");
        let _ = out.flush();
    }

    /// Holds an exclusive lock on the SQLite file for `WHATSAPP_CRASH_HOLD_MS`, as another program on the same
    /// file would.
    pub(super) fn hold_lock() {
        use sea_orm::ConnectionTrait;
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(async {
                let db = sea_orm::Database::connect(format!("sqlite:{}", var("WHATSAPP_CRASH_DB")))
                    .await
                    .unwrap();
                let hold: u64 = var("WHATSAPP_CRASH_HOLD_MS").parse().unwrap();
                let transaction = sea_orm::TransactionTrait::begin(&db).await.unwrap();
                // A write takes the database's write lock for the rest of the transaction.
                transaction
                    .execute_unprepared("CREATE TABLE IF NOT EXISTS lock_holder (x INTEGER)")
                    .await
                    .unwrap();
                transaction
                    .execute_unprepared("INSERT INTO lock_holder VALUES (1)")
                    .await
                    .unwrap();
                tokio::time::sleep(Duration::from_millis(hold)).await;
                transaction.rollback().await.unwrap();
            });
    }

    pub(super) fn run() {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap()
            .block_on(main());
    }

    async fn main() {
        let db = var("WHATSAPP_CRASH_DB");
        let inner = if db.starts_with("postgres") {
            SqlBackend::connect(&db).await
        } else {
            SqlBackend::open_sqlite(&db).await
        }
        .unwrap();
        let faults = Arc::new(CommitFaults::default());
        // `N:point` aborts at the N-th commit; `+N:point` at the N-th commit after the first login.
        let mut armed_after_login = None;
        if let Ok(spec) = std::env::var("WHATSAPP_CRASH_KILL_AT") {
            let (at, point) = spec.split_once(':').unwrap();
            faults.kill_point.store(
                KillPoint::parse(point).unwrap() as u8,
                std::sync::atomic::Ordering::Relaxed,
            );
            match at.strip_prefix('+') {
                Some(after) => armed_after_login = Some(after.parse::<u64>().unwrap()),
                None => faults
                    .kill_at
                    .store(at.parse().unwrap(), std::sync::atomic::Ordering::Relaxed),
            }
        }
        let backend = FlakyBackend::new(inner, Arc::clone(&faults));
        let account = backend.accounts().await.unwrap()[0];
        let trust = var("WHATSAPP_CRASH_TRUST");
        let mut key = [0u8; 32];
        for (i, byte) in key.iter_mut().enumerate() {
            *byte = u8::from_str_radix(&trust[2 * i..2 * i + 2], 16).unwrap();
        }
        let trust = whatsapp_noise::TrustRoot::custom(whatsapp_signal::PublicKey::from_bytes(key));
        let (client, mut events) = Client::builder(backend)
            .account(account)
            .server(var("WHATSAPP_CRASH_URL"), trust)
            .lease_owner(var("WHATSAPP_CRASH_OWNER"))
            .lease_ttl(super::FAILOVER_LEASE)
            .build()
            .await
            .unwrap();
        // A standby waits for the lease: its owner is alive, or dead with the lease not expired yet.
        loop {
            match client.connect().await {
                Ok(()) => break,
                Err(error) => {
                    eprintln!("connect: {error}");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
        }
        let contact = Jid::new(var("WHATSAPP_CRASH_CONTACT"), Jid::DEFAULT_USER_SERVER);
        let (from, to) = var("WHATSAPP_CRASH_SENDS")
            .split_once("..")
            .map(|(a, b)| (a.parse::<u64>().unwrap(), b.parse::<u64>().unwrap()))
            .unwrap();
        let sender = client.clone();
        tokio::spawn(async move {
            for k in from..to {
                let message = whatsapp_client::Message {
                    conversation: Some(format!("c{k}")),
                    ..Default::default()
                };
                // The same id on every attempt, in this process and the next: the server keeps one.
                let id = format!("CRASHC{k:08}");
                loop {
                    match sender.send_message_with_id(&contact, &message, &id).await {
                        Ok(_) => {
                            line(&format!("sent {k}"));
                            break;
                        }
                        Err(error) => {
                            eprintln!("send c{k}: {error}");
                            tokio::time::sleep(Duration::from_millis(50)).await;
                        }
                    }
                }
            }
        });
        // The parent closes stdin to stop this process cleanly.
        let (stop_tx, mut stop) = tokio::sync::oneshot::channel::<()>();
        std::thread::spawn(move || {
            let mut buffer = String::new();
            while std::io::stdin().read_line(&mut buffer).is_ok_and(|n| n > 0) {
                buffer.clear();
            }
            let _ = stop_tx.send(());
        });
        loop {
            tokio::select! {
                event = events.recv() => match event {
                    None => break,
                    Some(Event::Connected) => {
                        if let Some(after) = armed_after_login.take() {
                            let done = faults.commits.load(std::sync::atomic::Ordering::Relaxed);
                            faults.kill_at.store(done + after, std::sync::atomic::Ordering::Relaxed);
                        }
                        line("ready");
                    }
                    Some(Event::Message { message, .. }) => {
                        if let Some(text) = message.conversation {
                            line(&format!("got {text}"));
                        }
                    }
                    Some(Event::HistoryConversation(conversation)) => line(&format!("history {}", conversation.id)),
                    Some(Event::UndecryptableMessage { info, .. }) => line(&format!("undecryptable {}", info.id)),
                    Some(Event::LeaseLost) => {
                        eprintln!("lease lost");
                        break;
                    }
                    Some(_) => {}
                },
                _ = &mut stop => break,
            }
        }
        events.mark_handled();
        client.disconnect().await;
    }
}
