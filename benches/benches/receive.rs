//! The receive path of one account: incoming 1:1 messages (`msg`, within an established session) taken from the
//! encoded stanza to the persisted plaintext and the built replies, the steps and order of the client's
//! `on_message`:
//!
//! decode the stanza, read it ([`IncomingMessage::parse`]), look its payload hash up in the decrypt buffer, decrypt
//! through a [`StagedSignalStore`], commit the Signal changes with the plaintext in one transaction (which also
//! clears the plaintexts of the messages handled before it), build and encode the `<ack>` and the delivery receipt,
//! decode the `Message`, and mark the buffered event handled (remembered, and cleared by the next commit; the
//! messages come in a row, as after a reconnect, so the session is idle only after the last one, where one write
//! clears what is left, and at every [`HANDLED_FLUSH_AT`] handled messages without a commit).
//!
//! Measured on SQLite (a file in the temporary directory; `sqlite` flushes every commit, the default, and
//! `sqlite_sync_normal` is opened with `SqliteSync::Normal`), on PostgreSQL when `WHATSAPP_TEST_POSTGRES_URL` is set
//! (skipped with a note otherwise), and on the in-memory store (the CPU cost alone). The parts, to see where the
//! time goes: `decrypt_only` (load the session, decrypt, stage; nothing written, so the same message decrypts every
//! iteration) and `commit_only` (a session, an identity and a buffered event written in one transaction).
//!
//! A last pass times each stage of the path separately (figures `STORE: stage NAME`), to show where the time of
//! the full path goes on each store.
//!
//! The sender encrypts the messages outside the timed loop (`iter_custom`), as many as criterion asks for.

#![allow(
    missing_docs,
    reason = "criterion_group! generates an undocumented public function"
)]
#![allow(clippy::expect_used, reason = "benchmark setup fails loudly")]

use std::time::{Duration, Instant};

use criterion::{
    BenchmarkGroup, Criterion, Throughput, criterion_group, criterion_main, measurement::WallTime,
};
use rand::SeedableRng;
use rand::rngs::StdRng;
use tokio::runtime::Runtime;
use whatsapp_benches::figures;
use whatsapp_benches::sessions::{Peer, establish, text_message};
use whatsapp_binary::{Jid, Node};
use whatsapp_core::connection::ack;
use whatsapp_core::message::{self, IncomingMessage, payload_hash, protocol_address};
use whatsapp_core::receipt::delivery_receipt;
use whatsapp_core::signal_store::StagedSignalStore;
use whatsapp_proto::ProtoMessage;
use whatsapp_proto::e2e::Message;
use whatsapp_signal::store::{IdentityKeyStore, SessionStore};
use whatsapp_signal::{CiphertextMessage, padding};
use whatsapp_store::{AccountStore, Backend, BufferedEvent, Device, MemoryBackend};
use whatsapp_store_sql::{SqlBackend, SqliteSync};

/// The sending side: its session with our account, and a counter for message ids.
struct Sender {
    peer: Peer,
    sent: u64,
    rng: StdRng,
}

impl Sender {
    /// The encoded `<message>` stanza of the sender's next text message.
    fn next_stanza(&mut self) -> Vec<u8> {
        let padded = padding::pad(&text_message().encode_to_vec(), &mut self.rng);
        let CiphertextMessage::Whisper(ciphertext) =
            whatsapp_signal::encrypt(&mut self.peer.record, &padded).expect("encrypt")
        else {
            panic!("an established session sends msg")
        };
        self.sent += 1;
        let node = Node::new("message")
            .attr("from", self.peer.jid.clone())
            .attr("id", format!("3EB0{:018X}", self.sent))
            .attr("type", "text")
            .attr("t", (1_700_000_000 + self.sent).to_string())
            .attr("notify", "Alice")
            .children([Node::new("enc")
                .attr("v", "2")
                .attr("type", "msg")
                .bytes(ciphertext.serialized().to_vec())]);
        whatsapp_binary::encode(&node)
    }
}

/// The client's bound on handled messages waiting for their plaintext to be cleared (`HANDLED_FLUSH_AT` in
/// `whatsapp-client`'s session).
const HANDLED_FLUSH_AT: usize = 64;

/// Marks a message handled as the client does: remembered, and written only when the list is full.
async fn mark_handled<A: AccountStore>(account: &A, handled: &mut Vec<[u8; 32]>, hash: [u8; 32]) {
    handled.push(hash);
    if handled.len() >= HANDLED_FLUSH_AT {
        flush_handled(account, handled).await;
    }
}

/// Clears the remembered handled messages in one write (what the client does when it goes idle).
async fn flush_handled<A: AccountStore>(account: &A, handled: &mut Vec<[u8; 32]>) {
    account
        .clear_buffered_plaintexts(handled)
        .await
        .expect("mark handled");
    handled.clear();
}

/// The whole receive path for one stanza; returns the encoded replies' length (so nothing is optimised away).
async fn receive<A: AccountStore>(
    account: &A,
    device: &Device,
    stanza: &[u8],
    rng: &mut StdRng,
    handled: &mut Vec<[u8; 32]>,
) -> usize {
    let node = whatsapp_binary::decode(stanza).expect("decode");
    let parsed = IncomingMessage::parse(&node).expect("parse");
    let payload = &parsed.payloads[0];
    let hash = payload_hash(&parsed.sender, &parsed.chat, payload);
    assert!(account.buffered_event(&hash).await.expect("buffer").is_none());
    let stage = StagedSignalStore::new(account, device);
    let plaintext = message::decrypt(&stage, &parsed.sender, payload, rng)
        .await
        .expect("decrypt");
    let event = BufferedEvent {
        plaintext: Some(plaintext.clone()),
        server_timestamp: parsed.timestamp * 1000,
        insert_time: parsed.timestamp * 1000,
    };
    stage.clear_buffered_plaintexts(handled);
    stage
        .commit_with_event(Some((&hash, &event)))
        .await
        .expect("commit");
    handled.clear();
    let replies = whatsapp_binary::encode(&ack(&node)).len()
        + whatsapp_binary::encode(&delivery_receipt(&node, false, false)).len();
    let message = Message::decode(plaintext.as_slice()).expect("message");
    mark_handled(account, handled, hash).await;
    replies + message.conversation.map_or(0, |text| text.len())
}

/// [`receive`] for each stanza in a row, then the write of an idle session.
async fn receive_all<A: AccountStore>(account: &A, device: &Device, stanzas: &[Vec<u8>], rng: &mut StdRng) {
    let mut handled = Vec::new();
    for stanza in stanzas {
        receive(account, device, stanza, rng, &mut handled).await;
    }
    flush_handled(account, &mut handled).await;
}

/// Time spent in each stage of [`receive`], summed over many messages.
#[derive(Default)]
struct Stages {
    /// Decode and parse the stanza, hash the payload.
    parse: Duration,
    /// Look the hash up in the decrypt buffer (one read).
    buffer_lookup: Duration,
    /// Load the session and identity, decrypt, stage the changes.
    decrypt: Duration,
    /// Commit the Signal changes and the buffered plaintext in one transaction (clearing the previous message's).
    commit: Duration,
    /// Build and encode the ack and the receipt, decode the `Message`.
    replies: Duration,
    /// Mark the buffered event handled (remembered; the last one's write when idle is counted here too).
    mark_handled: Duration,
}

/// [`receive`] with the time of each stage added to `stages`.
async fn receive_timed<A: AccountStore>(
    account: &A,
    device: &Device,
    stanza: &[u8],
    rng: &mut StdRng,
    stages: &mut Stages,
    handled: &mut Vec<[u8; 32]>,
) {
    let mut mark = Instant::now();
    let mut lap = |slot: &mut Duration| {
        let now = Instant::now();
        *slot += now - mark;
        mark = now;
    };
    let node = whatsapp_binary::decode(stanza).expect("decode");
    let parsed = IncomingMessage::parse(&node).expect("parse");
    let payload = &parsed.payloads[0];
    let hash = payload_hash(&parsed.sender, &parsed.chat, payload);
    lap(&mut stages.parse);
    assert!(account.buffered_event(&hash).await.expect("buffer").is_none());
    lap(&mut stages.buffer_lookup);
    let stage = StagedSignalStore::new(account, device);
    let plaintext = message::decrypt(&stage, &parsed.sender, payload, rng)
        .await
        .expect("decrypt");
    lap(&mut stages.decrypt);
    let event = BufferedEvent {
        plaintext: Some(plaintext.clone()),
        server_timestamp: parsed.timestamp * 1000,
        insert_time: parsed.timestamp * 1000,
    };
    stage.clear_buffered_plaintexts(handled);
    stage
        .commit_with_event(Some((&hash, &event)))
        .await
        .expect("commit");
    handled.clear();
    lap(&mut stages.commit);
    let replies = whatsapp_binary::encode(&ack(&node)).len()
        + whatsapp_binary::encode(&delivery_receipt(&node, false, false)).len();
    let message = Message::decode(plaintext.as_slice()).expect("message");
    std::hint::black_box((replies, message));
    lap(&mut stages.replies);
    mark_handled(account, handled, hash).await;
    lap(&mut stages.mark_handled);
}

fn run_all<B: Backend>(group: &mut BenchmarkGroup<'_, WallTime>, rt: &Runtime, backend: &B, label: &str) {
    let mut rng = StdRng::seed_from_u64(77);
    let mut device = whatsapp_core::device::new_device(&mut rng);
    device.jid = Some(Jid::with_device("15550000001", Jid::DEFAULT_USER_SERVER, 9));
    let account = rt.block_on(backend.create_account(&device)).expect("account");
    let alice = Jid::with_device("15550000002", Jid::DEFAULT_USER_SERVER, 0);
    let peer = rt
        .block_on(establish(
            &account,
            &device,
            std::slice::from_ref(&alice),
            &mut rng,
        ))
        .pop()
        .expect("one peer");
    let mut sender = Sender {
        peer,
        sent: 0,
        rng: StdRng::seed_from_u64(78),
    };
    group.throughput(Throughput::Elements(1));

    group.bench_function(format!("{label}/full_path"), |b| {
        b.iter_custom(|iters| {
            let stanzas: Vec<Vec<u8>> = (0..iters).map(|_| sender.next_stanza()).collect();
            let started = Instant::now();
            rt.block_on(receive_all(&account, &device, &stanzas, &mut rng));
            started.elapsed()
        })
    });

    let stanza = sender.next_stanza();
    let node = whatsapp_binary::decode(&stanza).expect("decode");
    let parsed = IncomingMessage::parse(&node).expect("parse");
    group.bench_function(format!("{label}/decrypt_only"), |b| {
        b.iter(|| {
            rt.block_on(async {
                let stage = StagedSignalStore::new(&account, &device);
                message::decrypt(&stage, &parsed.sender, &parsed.payloads[0], &mut rng)
                    .await
                    .expect("decrypt")
            })
        })
    });

    let address = protocol_address(&alice);
    let (record, identity) = rt.block_on(async {
        let stage = StagedSignalStore::new(&account, &device);
        let record = stage
            .load_session(&address)
            .await
            .expect("load")
            .expect("session");
        let identity = record.remote_identity().expect("identity");
        (record, identity)
    });
    let event = BufferedEvent {
        plaintext: Some(text_message().encode_to_vec()),
        server_timestamp: 1_700_000_000_000,
        insert_time: 1_700_000_000_000,
    };
    let mut n = 0u64;
    group.bench_function(format!("{label}/commit_only"), |b| {
        b.iter(|| {
            n += 1;
            let mut hash = [0u8; 32];
            hash[..8].copy_from_slice(&n.to_be_bytes());
            rt.block_on(async {
                let stage = StagedSignalStore::new(&account, &device);
                stage.store_session(&address, &record).await.expect("stage");
                stage.save_identity(&address, &identity).await.expect("stage");
                stage
                    .commit_with_event(Some((&hash, &event)))
                    .await
                    .expect("commit")
            })
        })
    });

    // A one-off count over a fixed number of messages, for the report's messages/s.
    let count = 2_000;
    let stanzas: Vec<Vec<u8>> = (0..count).map(|_| sender.next_stanza()).collect();
    let started = Instant::now();
    rt.block_on(receive_all(&account, &device, &stanzas, &mut rng));
    let elapsed: Duration = started.elapsed();
    figures::record(
        "receive",
        &format!("{label}: {count} messages in a row"),
        count as f64 / elapsed.as_secs_f64(),
        "messages/s",
    );

    // Where the time goes: the same path over fewer messages, each stage timed.
    let count = 500;
    let stanzas: Vec<Vec<u8>> = (0..count).map(|_| sender.next_stanza()).collect();
    let mut stages = Stages::default();
    rt.block_on(async {
        let mut handled = Vec::new();
        for stanza in &stanzas {
            receive_timed(&account, &device, stanza, &mut rng, &mut stages, &mut handled).await;
        }
        let idle = Instant::now();
        flush_handled(&account, &mut handled).await;
        stages.mark_handled += idle.elapsed();
    });
    for (name, total) in [
        ("parse", stages.parse),
        ("decrypt-buffer lookup", stages.buffer_lookup),
        ("load and decrypt", stages.decrypt),
        ("commit (Signal state and plaintext)", stages.commit),
        ("replies and decode", stages.replies),
        ("mark handled", stages.mark_handled),
    ] {
        figures::record(
            "receive",
            &format!("{label}: stage {name}, mean of {count}"),
            total.as_secs_f64() * 1e6 / count as f64,
            "µs",
        );
    }
}

fn receive_path(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let mut group = c.benchmark_group("receive");
    group.sample_size(20);

    run_all(&mut group, &rt, &MemoryBackend::new(), "memory");

    for (sync, label) in [
        (SqliteSync::Full, "sqlite"),
        (SqliteSync::Normal, "sqlite_sync_normal"),
    ] {
        let path = std::env::temp_dir().join(format!(
            "whatsapp_receive_bench_{}_{label}.db",
            std::process::id()
        ));
        let path_text = path.to_str().expect("utf-8 temp path").to_owned();
        let sqlite = rt
            .block_on(SqlBackend::open_sqlite_with(&path_text, sync))
            .expect("open sqlite");
        run_all(&mut group, &rt, &sqlite, label);
        rt.block_on(sqlite.close()).expect("close");
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{path_text}{suffix}"));
        }
    }

    match std::env::var("WHATSAPP_TEST_POSTGRES_URL") {
        Err(_) => figures::note("receive", "postgres skipped: WHATSAPP_TEST_POSTGRES_URL not set"),
        Ok(base) => {
            let schema = format!("wa_receive_bench_{}", std::process::id());
            let admin = rt.block_on(SqlBackend::connect(&base)).expect("connect postgres");
            rt.block_on(admin.execute_sql(&format!("CREATE SCHEMA {schema}")))
                .expect("create schema");
            let sep = if base.contains('?') { '&' } else { '?' };
            let url = format!("{base}{sep}options=-c%20search_path%3D{schema}");
            let pg = rt.block_on(SqlBackend::connect(&url)).expect("connect in schema");
            run_all(&mut group, &rt, &pg, "postgres");
            rt.block_on(pg.close()).expect("close");
            rt.block_on(admin.execute_sql(&format!("DROP SCHEMA {schema} CASCADE")))
                .expect("drop schema");
        }
    }
    group.finish();
}

criterion_group!(benches, receive_path);
criterion_main!(benches);
