//! The `wa` binary as a user runs it: the offline demo, `node` round trips of the binary-codec vectors, bad usage
//! with its one-line fixes and exit code 2, and login (QR code and pairing code), send, listen, logout against an
//! in-process test server whose simulated phones scan and type what `wa` prints.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::ffi::OsStr;
use std::process::{Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use serde_json::Value as Json;
use tokio::io::{AsyncBufReadExt, BufReader, Lines};
use tokio::process::{Child, ChildStdout, Command};
use whatsapp_binary::{Content, Node};
use whatsapp_testserver::TestServer;

/// How long one step may take before the test fails.
const STEP: Duration = Duration::from_secs(60);

const ALICE: &str = "15551230001";
const BOB: &str = "15551230002";

/// `wa` with `args`, isolated from the caller's environment.
fn wa<S: AsRef<OsStr>>(args: &[S]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_wa"));
    command
        .args(args)
        .env_remove("WA_DATABASE")
        .env_remove("WA_SERVER")
        .env_remove("WA_ROOT")
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .kill_on_drop(true);
    command
}

async fn output<S: AsRef<OsStr> + std::fmt::Debug>(args: &[S]) -> Output {
    tokio::time::timeout(STEP, wa(args).output())
        .await
        .unwrap_or_else(|_| panic!("wa {args:?} did not finish"))
        .unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A database path that does not exist yet.
fn fresh_database() -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let path = format!(
        "{}/wa-{}-{}.db",
        env!("CARGO_TARGET_TMPDIR"),
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    );
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{path}{suffix}"));
    }
    path
}

#[tokio::test]
async fn demo_runs_every_step() {
    let out = output(&["demo"]).await;
    let stdout = text(&out.stdout);
    assert!(
        out.status.success(),
        "stdout:\n{stdout}\nstderr:\n{}",
        text(&out.stderr)
    );
    for step in [
        "[alice] linked as device 15550100001:1@s.whatsapp.net",
        "[bob] linked as device 15550100002:1@s.whatsapp.net",
        "[bob] received \"Hello Bob, this is Alice\"",
        "[alice] delivery receipt",
        "[alice] read receipt",
        "[alice] received \"Hi Alice! Bob here.\"",
        "[bob] downloaded demo.txt (262144 bytes), hashes and MAC checked, same bytes",
        "[done]",
    ] {
        assert!(stdout.contains(step), "missing {step:?} in:\n{stdout}");
    }
}

/// What decoding gives back for a tree: an empty child list reads back as no content.
fn as_decoded(mut node: Node) -> Node {
    node.content = match node.content {
        Content::Nodes(children) if children.is_empty() => Content::None,
        Content::Nodes(children) => Content::Nodes(children.into_iter().map(as_decoded).collect()),
        other => other,
    };
    node
}

#[tokio::test]
async fn node_encode_and_decode_round_trip_the_vectors() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../whatsapp-binary/tests/data/encode.json"
    );
    let vectors: Json = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let mut checked = 0;
    for case in vectors["cases"].as_array().unwrap() {
        // Cases with a quirk flag encode differently on purpose (see whatsapp-binary's vector tests).
        let (Some(hex), None) = (case["hex"].as_str(), case.get("quirks")) else {
            continue;
        };
        let name = case["name"].as_str().unwrap();
        let json = case["node"].to_string();
        let out = output(&["node", "encode", &json]).await;
        assert!(out.status.success(), "{name}: {}", text(&out.stderr));
        assert_eq!(text(&out.stdout).trim(), hex, "{name}: encode");

        let out = output(&["node", "decode", hex]).await;
        assert!(out.status.success(), "{name}: {}", text(&out.stderr));
        let decoded: Node = serde_json::from_slice(&out.stdout).unwrap();
        let expected = case
            .get("decoded")
            .filter(|d| !d.is_null())
            .unwrap_or(&case["node"]);
        let expected: Node = serde_json::from_value(expected.clone()).unwrap();
        assert_eq!(decoded, as_decoded(expected), "{name}: decode");
        checked += 1;
    }
    assert!(checked >= 70, "only {checked} cases ran");

    // zlib-compressed frames (flags 02) decode to their node.
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../whatsapp-binary/tests/data/compressed.json"
    );
    let vectors: Json = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let cases = vectors["cases"].as_array().unwrap();
    assert_eq!(cases.len(), 5);
    for case in cases {
        let name = case["name"].as_str().unwrap();
        let out = output(&["node", "decode", case["frame_hex"].as_str().unwrap()]).await;
        assert!(out.status.success(), "{name}: {}", text(&out.stderr));
        let decoded: Node = serde_json::from_slice(&out.stdout).unwrap();
        let expected: Node = serde_json::from_value(case["node"].clone()).unwrap();
        assert_eq!(decoded, as_decoded(expected), "{name}: decode");
    }

    // `-` reads the argument from stdin.
    let mut child = wa(&["node", "decode", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    tokio::io::AsyncWriteExt::write_all(&mut stdin, b"00 f8 01 56\n")
        .await
        .unwrap();
    drop(stdin);
    let out = child.wait_with_output().await.unwrap();
    assert!(out.status.success());
    let decoded: Json = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        decoded,
        serde_json::json!({"tag": "ping", "attrs": {}, "content": null})
    );
}

/// Runs `wa args`, expecting exit code 2 and one line on stderr containing `needle`.
async fn check_usage_error(args: &[&str], needle: &str) {
    let out = output(args).await;
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "wa {args:?}: {stderr}");
    if needle.is_empty() {
        return;
    }
    assert_eq!(
        stderr.trim_end().lines().count(),
        1,
        "wa {args:?}: one line, got {stderr:?}"
    );
    assert!(stderr.starts_with("error: "), "wa {args:?}: {stderr:?}");
    assert!(
        stderr.contains(needle),
        "wa {args:?}: {stderr:?} lacks {needle:?}"
    );
}

#[tokio::test]
async fn bad_usage_exits_2_with_the_fix() {
    let fresh = fresh_database();
    let db = ["--database", fresh.as_str()];
    check_usage_error(&[&db[..], &["send", "bob", "hi"]].concat(), "wrong recipient").await;
    check_usage_error(
        &[&db[..], &["send", "status@broadcast", "hi"]].concat(),
        "not supported yet",
    )
    .await;
    check_usage_error(
        &[&db[..], &["send", "15551234567", "hi"]].concat(),
        "run `wa login` first",
    )
    .await;
    check_usage_error(&[&db[..], &["listen"]].concat(), "run `wa login` first").await;
    check_usage_error(&[&db[..], &["logout"]].concat(), "run `wa login` first").await;
    check_usage_error(
        &[
            "--database",
            "/nonexistent/directory/whatsapp.db",
            "send",
            "15551234567",
            "hi",
        ],
        "cannot open the database",
    )
    .await;
    check_usage_error(
        &[
            &db[..],
            &["login", "--server", "ws://127.0.0.1:9/ws/chat", "--root", "abcd"],
        ]
        .concat(),
        "--root abcd is not a 32-byte key",
    )
    .await;
    check_usage_error(
        &[&db[..], &["login", "--phone", "555-CALL-NOW"]].concat(),
        "not a phone number",
    )
    .await;
    check_usage_error(&["node", "decode", "not hex"], "not hex").await;
    check_usage_error(&["node", "decode", "00f8"], "not a binary node").await;
    check_usage_error(&["node", "encode", "{\"tag\":"], "not a node in JSON").await;
    // clap's own usage errors use the same code (their message spans several lines).
    check_usage_error(&["frobnicate"], "").await;
    check_usage_error(&["send", "15551234567"], "").await;
    check_usage_error(&["--server", "ws://127.0.0.1:9/ws/chat", "logout"], "").await;
}

/// A running `wa` whose stdout is read line by line.
struct Running {
    child: Child,
    lines: Lines<BufReader<ChildStdout>>,
}

impl Running {
    fn spawn<S: AsRef<OsStr>>(args: &[S]) -> Running {
        let mut child = wa(args).stdout(Stdio::piped()).spawn().unwrap();
        let lines = BufReader::new(child.stdout.take().unwrap()).lines();
        Running { child, lines }
    }

    /// Reads lines until one starts with `prefix`; returns the rest of it.
    async fn line_after(&mut self, prefix: &str) -> String {
        let found = tokio::time::timeout(STEP, async {
            while let Some(line) = self.lines.next_line().await.unwrap() {
                if let Some(rest) = line.strip_prefix(prefix) {
                    return Some(rest.to_owned());
                }
            }
            None
        })
        .await;
        match found {
            Ok(Some(rest)) => rest,
            Ok(None) => panic!("wa ended without printing {prefix:?}"),
            Err(_) => panic!("wa did not print {prefix:?} in time"),
        }
    }

    /// Reads JSON lines until one whose `event` is `event`.
    async fn next_json(&mut self, event: &str) -> Json {
        loop {
            let line = self.line_after("").await;
            let value: Json = serde_json::from_str(&line).unwrap_or_else(|e| panic!("{line:?}: {e}"));
            if value["event"] == event {
                return value;
            }
        }
    }

    async fn success(mut self) {
        let status = tokio::time::timeout(STEP, self.child.wait())
            .await
            .unwrap()
            .unwrap();
        assert!(status.success(), "{status}");
    }
}

#[tokio::test]
async fn login_send_listen_logout_against_the_test_server() {
    let server = TestServer::start().await.unwrap();
    let url = server.url();
    let root: String = server
        .trust_root()
        .key()
        .as_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let (alice_db, bob_db) = (fresh_database(), fresh_database());
    let at = |db: &str, args: &[&str]| -> Vec<String> {
        [
            "--database",
            db,
            "--server",
            url.as_str(),
            "--root",
            root.as_str(),
        ]
        .iter()
        .chain(args)
        .map(|s| (*s).to_owned())
        .collect()
    };

    // Alice links by QR code: her phone scans the data `wa` prints under the drawing.
    let alice_phone = server.add_phone(ALICE);
    let mut login = Running::spawn(&at(&alice_db, &["login"]));
    let qr = login.line_after("QR data: ").await;
    let device = alice_phone.scan_qr(&qr).await.unwrap();
    assert_eq!(login.line_after("Logged in as ").await, device.to_string());
    login.success().await;

    // Bob links by pairing code: his phone types the code `wa` prints.
    let bob_phone = server.add_phone(BOB);
    let mut login = Running::spawn(&at(&bob_db, &["login", "--phone", &format!("+{BOB}")]));
    let code = login.line_after("Pairing code: ").await;
    bob_phone.enter_code(&code).await.unwrap();
    login.line_after("Logged in as ").await;
    login.success().await;

    // Logging in again keeps the linked device.
    let out = output(&at(&alice_db, &["login"])).await;
    assert!(out.status.success());
    assert!(text(&out.stdout).starts_with("Already logged in as 15551230001:"));

    let out = output(&at(&alice_db, &["send", BOB, "hello from wa"])).await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    let id = stdout
        .trim()
        .strip_prefix("Sent to 15551230002@s.whatsapp.net (id ")
        .and_then(|rest| rest.strip_suffix(')'))
        .unwrap_or_else(|| panic!("{stdout}"))
        .to_owned();

    // A file goes as a document.
    let file = format!(
        "{}/wa-send-file-{}.txt",
        env!("CARGO_TARGET_TMPDIR"),
        std::process::id()
    );
    std::fs::write(&file, b"file contents").unwrap();
    let out = output(&at(
        &alice_db,
        &["send-file", BOB, &file, "--mimetype", "text/plain"],
    ))
    .await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    let file_id = stdout
        .trim()
        .rsplit_once("(id ")
        .and_then(|(_, rest)| rest.strip_suffix(')'))
        .unwrap_or_else(|| panic!("{stdout}"))
        .to_owned();
    assert_eq!(server.media_file_count(), 1);

    // Bob was offline; `wa listen --json` prints the messages the server kept for him.
    let mut listen = Running::spawn(&at(&bob_db, &["listen", "--json"]));
    assert_eq!(listen.line_after("").await, r#"{"event":"connected"}"#);
    let message = listen.next_json("message").await;
    assert_eq!(message["event"], "message");
    assert_eq!(message["id"], id.as_str());
    assert_eq!(message["text"], "hello from wa");
    // The chat is Alice's LID, as WhatsApp addresses one-to-one chats today; her device's phone number is
    // beside the sender.
    assert_eq!(message["chat"], alice_phone.lid().to_string());
    assert_eq!(
        message["sender"].as_str().unwrap().split_once(':').unwrap().0,
        alice_phone.lid().user()
    );
    assert_eq!(message["sender_alt"], device.to_string());
    assert_eq!(message["from_me"], false);
    let document = listen.next_json("message").await;
    assert_eq!(document["event"], "message");
    assert_eq!(document["id"], file_id.as_str());
    // Ctrl-C stops it cleanly, giving the account back for the next command.
    let pid = listen.child.id().unwrap().to_string();
    let status = std::process::Command::new("kill")
        .args(["-INT", &pid])
        .status()
        .unwrap();
    assert!(status.success());
    listen.success().await;

    let out = output(&at(&alice_db, &["logout"])).await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        server.devices(ALICE).iter().all(|jid| *jid != device),
        "{:?}",
        server.devices(ALICE)
    );
    let out = output(&at(&alice_db, &["send", BOB, "still there?"])).await;
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("not logged in"));
    server.shutdown();
}

/// Two numbers no earlier run used, so that tests sharing a PostgreSQL database never meet old rows.
fn fresh_numbers() -> (String, String) {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    let base = (nanos / 1000 + COUNTER.fetch_add(2, Ordering::Relaxed)) % 1_000_000;
    (format!("1666{base:06}0"), format!("1666{base:06}1"))
}

/// Two linked devices in one database: without `--account` a command names the choice; with it, each device
/// sends, listens and logs out on its own.
async fn two_devices_in_one_database(database: &str) {
    let server = TestServer::start().await.unwrap();
    let url = server.url();
    let root: String = server
        .trust_root()
        .key()
        .as_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let (first, second) = fresh_numbers();
    let at = |account: Option<&str>, args: &[&str]| -> Vec<String> {
        let mut all = vec!["--database", database, "--server", &url, "--root", &root];
        if let Some(account) = account {
            all.extend(["--account", account]);
        }
        all.iter().chain(args).map(|s| (*s).to_owned()).collect()
    };

    let first_phone = server.add_phone(&first);
    let mut login = Running::spawn(&at(None, &["login", "--phone", &first]));
    first_phone
        .enter_code(&login.line_after("Pairing code: ").await)
        .await
        .unwrap();
    login.line_after("Logged in as ").await;
    login.success().await;
    // A QR login for a second number while the first is linked.
    let second_phone = server.add_phone(&second);
    let mut login = Running::spawn(&at(Some(&second), &["login"]));
    let second_device = second_phone
        .scan_qr(&login.line_after("QR data: ").await)
        .await
        .unwrap();
    login.line_after("Logged in as ").await;
    login.success().await;

    let out = output(&at(None, &["send", &second, "which one?"])).await;
    assert_eq!(out.status.code(), Some(2));
    let stderr = text(&out.stderr);
    assert!(stderr.contains("choose one with --account NUMBER"), "{stderr}");
    assert!(stderr.contains(&first) && stderr.contains(&second), "{stderr}");

    let out = output(&at(Some(&first), &["send", &second, "to the second"])).await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    let mut listen = Running::spawn(&at(Some(&second), &["listen", "--json"]));
    let message = listen.next_json("message").await;
    assert_eq!(message["text"], "to the second");
    assert_eq!(message["chat"], first_phone.lid().to_string());
    let pid = listen.child.id().unwrap().to_string();
    assert!(
        std::process::Command::new("kill")
            .args(["-INT", &pid])
            .status()
            .unwrap()
            .success()
    );
    listen.success().await;

    for number in [&second, &first] {
        let out = output(&at(Some(number), &["logout"])).await;
        assert!(out.status.success(), "{}", text(&out.stderr));
    }
    assert!(!server.devices(&second).contains(&second_device));
    let out = output(&at(Some(&first), &["send", &second, "gone"])).await;
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("not logged in"));
    server.shutdown();
}

#[tokio::test]
async fn two_devices_in_one_sqlite_database() {
    two_devices_in_one_database(&fresh_database()).await;
}

#[tokio::test]
async fn two_devices_in_one_postgres_database() {
    let Ok(url) = std::env::var("WHATSAPP_TEST_POSTGRES_URL") else {
        eprintln!("skipped: set WHATSAPP_TEST_POSTGRES_URL to run against PostgreSQL");
        return;
    };
    two_devices_in_one_database(&url).await;
}

#[tokio::test]
async fn groups_lists_and_shows_the_joined_groups() {
    let server = TestServer::start().await.unwrap();
    let url = server.url();
    let root: String = server
        .trust_root()
        .key()
        .as_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let database = fresh_database();
    let at = |args: &[&str]| -> Vec<String> {
        [
            "--database",
            database.as_str(),
            "--server",
            url.as_str(),
            "--root",
            root.as_str(),
        ]
        .iter()
        .chain(args)
        .map(|s| (*s).to_owned())
        .collect()
    };
    let phone = server.add_phone(ALICE);
    server.add_phone(BOB);
    let mut login = Running::spawn(&at(&["login"]));
    let qr = login.line_after("QR data: ").await;
    phone.scan_qr(&qr).await.unwrap();
    login.line_after("Logged in as ").await;
    login.success().await;

    let out = output(&at(&["groups"])).await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "No groups\n");

    let club = server.create_group("Book club", &[ALICE, BOB]);
    let other = server.create_group("Not mine", &[BOB]);
    let out = output(&at(&["groups"])).await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), format!("{club}\tBook club\t2 participants\n"));
    let out = output(&at(&["groups", "--json"])).await;
    let listed: Json = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        listed,
        serde_json::json!([{"jid": club.to_string(), "subject": "Book club", "participants": 2}])
    );

    let out = output(&at(&["groups", "info", &club.to_string(), "--json"])).await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    let info: Json = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(info["subject"], "Book club");
    // A new group addresses its members by LID, with the phone number beside.
    assert_eq!(info["participants"][0]["jid"], phone.lid().to_string());
    assert_eq!(
        info["participants"][0]["phone_number"],
        format!("{ALICE}@s.whatsapp.net")
    );
    assert_eq!(info["participants"][0]["role"], "superadmin");
    assert_eq!(info["participants"][1]["role"], "member");
    let out = output(&at(&["groups", "info", &club.to_string()])).await;
    assert!(
        text(&out.stdout).contains("Subject: Book club\n"),
        "{}",
        text(&out.stdout)
    );

    // A group this account is not in is the server's refusal (exit 1); a malformed JID is bad usage (exit 2).
    let out = output(&at(&["groups", "info", &other.to_string()])).await;
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("403"), "{}", text(&out.stderr));
    let out = output(&at(&["groups", "info", "not-a-group"])).await;
    assert_eq!(out.status.code(), Some(2));
    server.shutdown();
}

/// A history message for the export test: `n` of conversation `chat`.
fn history_message(chat: &str, n: usize) -> whatsapp_client::proto::history_sync::HistorySyncMsg {
    use whatsapp_client::proto::e2e::MessageKey;
    use whatsapp_client::proto::history_sync::{HistorySyncMsg, WebMessageInfo};
    HistorySyncMsg {
        message: Some(WebMessageInfo {
            key: MessageKey {
                remote_jid: Some(chat.to_owned()),
                from_me: Some(n.is_multiple_of(2)),
                id: Some(format!("3EB0{n:04}")),
                participant: None,
            },
            message: Some(whatsapp_client::Message {
                conversation: Some(format!("line {n} of {chat}")),
                ..Default::default()
            }),
            message_timestamp: Some(1_700_000_000 + n as u64),
            ..Default::default()
        }),
        msg_order_id: Some(n as u64),
    }
}

#[tokio::test]
async fn history_export_writes_every_message_the_phone_sends() {
    use whatsapp_client::proto::history_sync::{Conversation, HistorySync, history_sync::HistorySyncType};
    let server = TestServer::start().await.unwrap();
    let root: String = server
        .trust_root()
        .key()
        .as_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let database = fresh_database();
    let export = format!("{database}.jsonl");
    let args = |more: &[&str]| -> Vec<String> {
        [
            "--database",
            &database,
            "--server",
            &server.url(),
            "--root",
            &root,
        ]
        .iter()
        .chain(more)
        .map(|s| (*s).to_owned())
        .collect()
    };
    let phone = server.add_phone(ALICE);
    let mut login = Running::spawn(&args(&["login"]));
    let device = phone.scan_qr(&login.line_after("QR data: ").await).await.unwrap();
    login.line_after("Logged in as ").await;
    login.success().await;

    // Two chunks while the device is offline: the server keeps them, the export reads both and stops at 100 %.
    let chats = [
        "15550001111@s.whatsapp.net",
        "120363000000000009@g.us",
        "15550002222@s.whatsapp.net",
    ];
    for (chunk, (progress, chats)) in [(50, &chats[..2]), (100, &chats[2..])].into_iter().enumerate() {
        let history = HistorySync {
            sync_type: HistorySyncType::InitialBootstrap as i32,
            chunk_order: Some(chunk as u32 + 1),
            progress: Some(progress),
            conversations: chats
                .iter()
                .map(|chat| Conversation {
                    id: (*chat).to_owned(),
                    messages: (0..25).map(|n| history_message(chat, n)).collect(),
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        };
        phone.send_history_sync(&device, &history).unwrap();
    }
    let out = output(&args(&[
        "history", "export", "--format", "jsonl", "--output", &export,
    ]))
    .await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("Exported 75 messages in 3 conversations\n"),
        "{}",
        text(&out.stderr)
    );
    let lines: Vec<Json> = std::fs::read_to_string(&export)
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    assert_eq!(lines.len(), 75);
    // The client reads the two chunks as they come, so their conversations may come in either order; each
    // conversation's messages stay together and in order.
    let mut by_chat: Vec<&[Json]> = lines.chunks(25).collect();
    by_chat.sort_by_key(|messages| chats.iter().position(|chat| messages[0]["chat"] == *chat));
    for (i, line) in by_chat.concat().iter().enumerate() {
        let (chat, n) = (chats[i / 25], i % 25);
        assert_eq!(line["chat"], chat);
        assert_eq!(line["id"], format!("3EB0{n:04}"));
        assert_eq!(line["text"], format!("line {n} of {chat}"));
        assert_eq!(line["from_me"], n.is_multiple_of(2));
        assert_eq!(line["timestamp"], 1_700_000_000 + n as u64);
        assert_eq!(line["kind"], "text");
    }
    let _ = std::fs::remove_file(&export);
}
