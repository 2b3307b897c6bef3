//! History sync: a ~200 MB (decompressed) `HistorySync` blob, zlib-compressed, read with `whatsapp-core`'s
//! streaming [`HistoryReader`](whatsapp_core::history::HistoryReader) and, for comparison in the same run, inflated
//! whole and decoded with prost in one go.
//!
//! The 200 MB blob (`WHATSAPP_BENCH_HISTORY_MB` changes the size) is read once with the streaming reader: its
//! throughput (decompressed MB/s) and the peak heap in use above the baseline (the compressed blob already in
//! memory), counted by this binary's global allocator, are recorded as figures. Decoding a blob whole needs about
//! 70 times its size in memory (prost's `WebMessageInfo` with its inline `Message` is several KB per message), so
//! the two methods are compared on a 20 MB blob: one counted pass each, and criterion's timings.
//!
//! The blob: 2,000-odd conversations of 400 messages each, as a phone sends them: message keys, timestamps,
//! push names in groups, and texts of 20 to 300 characters drawn from a small vocabulary (so the compression
//! ratio is near that of real chats), plus a push name per chat and the sync's scalar fields.

#![allow(
    missing_docs,
    reason = "criterion_group! generates an undocumented public function"
)]
#![allow(clippy::expect_used, reason = "benchmark setup fails loudly")]

use std::io::{Read, Write};
use std::time::Instant;

use criterion::{Criterion, SamplingMode, Throughput, criterion_group, criterion_main};
use whatsapp_benches::alloc::{CountingAllocator, peak_bytes, reset_peak};
use whatsapp_benches::figures;
use whatsapp_core::history::{HistoryItem, inflate};
use whatsapp_proto::ProtoMessage;
use whatsapp_proto::e2e::{Message, MessageKey};
use whatsapp_proto::history_sync::{Conversation, HistorySync, HistorySyncMsg, Pushname, WebMessageInfo};

#[global_allocator]
static ALLOC: CountingAllocator = CountingAllocator;

const MESSAGES_PER_CHAT: usize = 400;
/// The size of the blob the two methods are compared on, in MB.
const COMPARED_MB: usize = 20;
const MIB: f64 = 1024.0 * 1024.0;
const WORDS: &[&str] = &[
    "the", "meeting", "is", "at", "six", "tomorrow", "see", "you", "there", "thanks", "ok", "sure", "sounds",
    "good", "where", "are", "we", "going", "tonight", "I", "will", "call", "later", "did", "get", "photos",
    "from", "trip", "yes", "no", "maybe", "let", "me", "know", "when", "home", "happy", "birthday", "haha",
    "great", "idea", "train", "late", "again", "sorry", "coffee", "lunch", "weekend", "plans", "kids",
];

struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.0 >> 33
    }
    fn text(&mut self) -> String {
        let target = 20 + (self.next() % 280) as usize;
        let mut text = String::with_capacity(target + 10);
        while text.len() < target {
            if !text.is_empty() {
                text.push(' ');
            }
            text.push_str(WORDS[(self.next() as usize) % WORDS.len()]);
        }
        text
    }
    fn message_id(&mut self) -> String {
        format!("3EB0{:09X}{:09X}", self.next(), self.next())
    }
}

fn put_varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

/// A length-delimited top-level field of `HistorySync`.
fn put_field(out: &mut Vec<u8>, field: u64, bytes: &[u8]) {
    put_varint(out, field << 3 | 2);
    put_varint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

fn conversation(r: &mut Lcg, n: usize) -> Conversation {
    let is_group = n.is_multiple_of(5);
    let id = if is_group {
        format!("1203630{n:011}@g.us")
    } else {
        format!("1555{n:07}@s.whatsapp.net")
    };
    let messages = (0..MESSAGES_PER_CHAT)
        .map(|m| {
            let from_me = r.next().is_multiple_of(3);
            let participant =
                (is_group && !from_me).then(|| format!("1555{:07}@s.whatsapp.net", r.next() % 10_000_000));
            HistorySyncMsg {
                message: Some(WebMessageInfo {
                    key: MessageKey {
                        remote_jid: Some(id.clone()),
                        from_me: Some(from_me),
                        id: Some(r.message_id()),
                        participant: participant.clone(),
                    },
                    message: Some(Message {
                        conversation: Some(r.text()),
                        ..Default::default()
                    }),
                    message_timestamp: Some(1_600_000_000 + (n * MESSAGES_PER_CHAT + m) as u64 * 37),
                    participant,
                    push_name: (is_group && !from_me).then(|| "Friend".to_owned()),
                    ..Default::default()
                }),
                msg_order_id: Some(m as u64 + 1),
            }
        })
        .collect();
    Conversation {
        id,
        messages,
        name: is_group.then(|| format!("Group {n}")),
        unread_count: Some((r.next() % 5) as u32),
        ..Default::default()
    }
}

/// The compressed blob and its decompressed size, written one conversation at a time so the set-up never holds the
/// whole decompressed blob.
fn blob(target_bytes: usize) -> (Vec<u8>, usize) {
    let mut encoder = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::fast());
    let mut r = Lcg(0x4157);
    let mut chunk = Vec::new();
    let mut total = 0;
    // syncType = INITIAL_BOOTSTRAP, chunkOrder, progress.
    chunk.extend_from_slice(&[0x08, 0x00, 0x28, 0x01, 0x30, 0x64]);
    let mut n = 0;
    while total + chunk.len() < target_bytes {
        put_field(&mut chunk, 2, &conversation(&mut r, n).encode_to_vec());
        let name = Pushname {
            id: Some(format!("1555{n:07}@s.whatsapp.net")),
            pushname: Some(format!("Contact {n}")),
        };
        put_field(&mut chunk, 7, &name.encode_to_vec());
        encoder.write_all(&chunk).expect("compress");
        total += chunk.len();
        chunk.clear();
        n += 1;
    }
    (encoder.finish().expect("compress"), total)
}

/// Reads every item with the streaming reader; returns the number of messages.
fn stream(compressed: &[u8]) -> usize {
    let mut messages = 0;
    for item in inflate(compressed) {
        if let HistoryItem::Conversation(conversation) = item.expect("history item") {
            messages += conversation.messages.len();
        }
    }
    messages
}

/// Inflates the whole blob and decodes it with prost in one go; returns the number of messages.
fn whole(compressed: &[u8]) -> usize {
    let mut inflated = Vec::new();
    flate2::read::ZlibDecoder::new(compressed)
        .read_to_end(&mut inflated)
        .expect("inflate");
    let history = HistorySync::decode(inflated.as_slice()).expect("decode");
    history.conversations.iter().map(|c| c.messages.len()).sum()
}

/// One pass under the counting allocator: (messages, seconds, peak bytes above the baseline).
fn measure(read: fn(&[u8]) -> usize, compressed: &[u8]) -> (usize, f64, usize) {
    let baseline = reset_peak();
    let started = Instant::now();
    let messages = read(compressed);
    let seconds = started.elapsed().as_secs_f64();
    (messages, seconds, peak_bytes().saturating_sub(baseline))
}

fn history(c: &mut Criterion) {
    let megabytes: usize = std::env::var("WHATSAPP_BENCH_HISTORY_MB")
        .ok()
        .and_then(|mb| mb.parse().ok())
        .unwrap_or(200);
    let (compressed, decompressed) = built(megabytes);
    let (messages, seconds, peak) = measure(stream, &compressed);
    let label = format!("{megabytes} MB blob, streaming HistoryReader");
    figures::record(
        "history",
        &format!("{label}: messages"),
        messages as f64,
        "messages",
    );
    figures::record(
        "history",
        &format!("{label}: peak heap above baseline"),
        peak as f64 / MIB,
        "MiB",
    );
    figures::record(
        "history",
        &format!("{label}: one pass"),
        decompressed as f64 / 1e6 / seconds,
        "MB/s",
    );
    drop(compressed);

    // The whole-blob decode holds every decoded message at once (prost's `WebMessageInfo` with its inline
    // `Message` is several KB in memory), about 70 times the blob's size: the comparison runs on a smaller blob.
    let (compressed, decompressed) = built(COMPARED_MB);
    for (name, read) in [
        ("streaming HistoryReader", stream as fn(&[u8]) -> usize),
        ("prost whole blob", whole),
    ] {
        let (messages, seconds, peak) = measure(read, &compressed);
        let label = format!("{COMPARED_MB} MB blob, {name}");
        figures::record(
            "history",
            &format!("{label}: messages"),
            messages as f64,
            "messages",
        );
        figures::record(
            "history",
            &format!("{label}: peak heap above baseline"),
            peak as f64 / MIB,
            "MiB",
        );
        figures::record(
            "history",
            &format!("{label}: one pass"),
            decompressed as f64 / 1e6 / seconds,
            "MB/s",
        );
    }

    let mut g = c.benchmark_group("history");
    g.sample_size(10);
    g.sampling_mode(SamplingMode::Flat);
    g.throughput(Throughput::Bytes(decompressed as u64));
    g.bench_function("streaming_reader", |b| b.iter(|| stream(&compressed)));
    g.bench_function("prost_whole_blob", |b| b.iter(|| whole(&compressed)));
    g.finish();
}

/// A blob of about `megabytes` MB decompressed, with its figures recorded.
fn built(megabytes: usize) -> (Vec<u8>, usize) {
    let started = Instant::now();
    let (compressed, decompressed) = blob(megabytes * 1_000_000);
    println!("history: {megabytes} MB blob built in {:.1?}", started.elapsed());
    figures::record(
        "history",
        &format!("{megabytes} MB blob: decompressed size"),
        decompressed as f64 / 1e6,
        "MB",
    );
    figures::record(
        "history",
        &format!("{megabytes} MB blob: compressed size"),
        compressed.len() as f64 / 1e6,
        "MB",
    );
    (compressed, decompressed)
}

criterion_group!(benches, history);
criterion_main!(benches);
