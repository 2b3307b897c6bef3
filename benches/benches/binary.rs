//! Binary-node codec: encode and decode throughput (MB/s, and nodes/s from the corpus shape printed at start) on a
//! realistic stanza corpus, side by side with the peer crate `wacore-binary` 0.7.0 in the same run.
//!
//! The corpus: incoming 1:1 and group messages with `<enc>` payloads, outgoing group fan-outs with per-device
//! `<enc>` children, delivery/read receipts with `<list>`s, presence and chat states, usync iq results with many
//! `<device>` children, and a 200-participant group info. Both codecs decode the same bytes (ours; the peer's
//! encoder produces identical bytes, checked at start) and encode equivalent trees built from the same data.
//!
//! Run: `cargo bench -p whatsapp-benches --bench binary`.

#![allow(
    missing_docs,
    reason = "criterion_group! generates an undocumented public function"
)]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "benchmark setup fails loudly"
)]

use std::hint::black_box;

use bytes::Bytes;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use whatsapp_binary::{Content, Jid, Node, NodeTree, Value, decode_shared, encode, encode_frame};

/// A small deterministic generator, so that every run measures the same corpus.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.0 >> 33
    }
    fn bytes(&mut self, len: usize) -> Vec<u8> {
        (0..len).map(|_| self.next() as u8).collect()
    }
    fn digits(&mut self, len: usize) -> String {
        (0..len)
            .map(|_| char::from(b'0' + (self.next() % 10) as u8))
            .collect()
    }
    fn message_id(&mut self) -> String {
        let hex: String = (0..18)
            .map(|_| char::from(b"0123456789ABCDEF"[(self.next() % 16) as usize]))
            .collect();
        format!("3EB0{hex}")
    }
    fn phone(&mut self) -> String {
        format!("1555{}", self.digits(7))
    }
    fn lid(&mut self) -> String {
        format!("1{}", self.digits(14))
    }
    fn timestamp(&mut self) -> String {
        format!("17000{}", self.digits(5))
    }
}

fn enc(kind: &'static str, payload: Vec<u8>) -> Node {
    Node::new("enc").attr("v", "2").attr("type", kind).bytes(payload)
}

fn corpus() -> Vec<Node> {
    let mut r = Lcg(0x5eed);
    let mut stanzas = Vec::new();
    for i in 0..12 {
        // Incoming 1:1 message.
        let from = Jid::with_device(r.phone(), Jid::DEFAULT_USER_SERVER, (i % 3) as u16);
        let payload_len = 120 + (r.next() % 200) as usize;
        stanzas.push(
            Node::new("message")
                .attr("from", from)
                .attr("id", r.message_id())
                .attr("notify", "Alice")
                .attr("t", r.timestamp())
                .attr("type", "text")
                .children([enc(
                    if i % 4 == 0 { "pkmsg" } else { "msg" },
                    r.bytes(payload_len),
                )]),
        );
        // Incoming group message from a LID participant.
        let group = Jid::new(format!("120363{}", r.digits(12)), Jid::GROUP_SERVER);
        let skmsg_len = 90 + (r.next() % 120) as usize;
        stanzas.push(
            Node::new("message")
                .attr("from", group)
                .attr("id", r.message_id())
                .attr("participant", Jid::with_device(r.lid(), Jid::LID_SERVER, 1))
                .attr("t", r.timestamp())
                .attr("type", "text")
                .attr("addressing_mode", "lid")
                .children([enc("skmsg", r.bytes(skmsg_len))]),
        );
    }
    for _ in 0..3 {
        // Outgoing group message fanned out to 24 devices.
        let participants: Vec<Node> = (0..24)
            .map(|d| {
                Node::new("to")
                    .attr("jid", Jid::with_device(r.lid(), Jid::LID_SERVER, (d % 4) as u16))
                    .children([enc("pkmsg", r.bytes(380))])
            })
            .collect();
        stanzas.push(
            Node::new("message")
                .attr("id", r.message_id())
                .attr(
                    "to",
                    Jid::new(format!("120363{}", r.digits(12)), Jid::GROUP_SERVER),
                )
                .attr("type", "text")
                .children([
                    Node::new("participants").children(participants),
                    enc("skmsg", r.bytes(160)),
                ]),
        );
    }
    for i in 0..15 {
        // Receipts, some with a list of further ids.
        let mut receipt = Node::new("receipt")
            .attr("from", Jid::with_device(r.phone(), Jid::DEFAULT_USER_SERVER, 0))
            .attr("id", r.message_id())
            .attr("t", r.timestamp());
        if i % 3 == 0 {
            receipt = receipt.attr("type", "read");
        }
        if i % 5 == 0 {
            receipt =
                receipt
                    .children([Node::new("list")
                        .children((0..6).map(|_| Node::new("item").attr("id", r.message_id())))]);
        }
        stanzas.push(receipt);
    }
    for i in 0..12 {
        // Presence and chat states.
        let who = Jid::new(r.phone(), Jid::DEFAULT_USER_SERVER);
        stanzas.push(if i % 2 == 0 {
            Node::new("presence")
                .attr("from", who)
                .attr("type", "unavailable")
                .attr("last", r.timestamp())
        } else {
            Node::new("chatstate")
                .attr("from", who)
                .children([Node::new("composing")])
        });
    }
    for _ in 0..3 {
        // usync device-list result for 30 users.
        let users: Vec<Node> = (0..30)
            .map(|_| {
                let devices: Vec<Node> = (0..4)
                    .map(|d| {
                        let device = Node::new("device").attr("id", d.to_string());
                        if d > 0 {
                            device.attr("key-index", (d + 1).to_string())
                        } else {
                            device
                        }
                    })
                    .collect();
                Node::new("user")
                    .attr("jid", Jid::new(r.phone(), Jid::DEFAULT_USER_SERVER))
                    .children([Node::new("devices").children([
                        Node::new("device-list").children(devices),
                        Node::new("key-index-list")
                            .attr("ts", r.timestamp())
                            .bytes(r.bytes(40)),
                    ])])
            })
            .collect();
        stanzas.push(
            Node::new("iq")
                .attr("from", Jid::server_only(Jid::DEFAULT_USER_SERVER))
                .attr("id", r.digits(5))
                .attr("type", "result")
                .children([Node::new("usync")
                    .attr("context", "message")
                    .attr("index", "0")
                    .attr("last", "true")
                    .attr("mode", "query")
                    .attr("sid", r.message_id())
                    .children([Node::new("list").children(users)])]),
        );
    }
    // Group info with 200 participants.
    let participants: Vec<Node> = (0..200)
        .map(|i| {
            let p = Node::new("participant")
                .attr("jid", Jid::new(r.lid(), Jid::LID_SERVER))
                .attr("phone_number", Jid::new(r.phone(), Jid::DEFAULT_USER_SERVER));
            if i < 3 {
                p.attr("type", if i == 0 { "superadmin" } else { "admin" })
            } else {
                p
            }
        })
        .collect();
    stanzas.push(
        Node::new("iq")
            .attr("from", Jid::server_only(Jid::GROUP_SERVER))
            .attr("id", r.digits(5))
            .attr("type", "result")
            .children([Node::new("group")
                .attr("id", format!("120363{}", r.digits(12)))
                .attr("addressing_mode", "lid")
                .attr("creation", r.timestamp())
                .attr("creator", Jid::new(r.lid(), Jid::LID_SERVER))
                .attr("s_o", Jid::new(r.lid(), Jid::LID_SERVER))
                .attr("s_t", r.timestamp())
                .attr("size", "200")
                .attr("subject", "Neighbourhood association")
                .children(
                    participants.into_iter().chain([Node::new("description")
                        .attr("id", r.message_id())
                        .children([Node::new("body").bytes(b"Weekly meetings on Thursday.".to_vec())])]),
                )]),
    );
    stanzas
}

fn count_nodes(node: &Node) -> usize {
    1 + node.child_nodes().iter().map(count_nodes).sum::<usize>()
}

/// The same tree as a `wacore-binary` node.
fn to_peer(node: &Node) -> wacore_binary::Node {
    let mut attrs = wacore_binary::Attrs::new();
    for (key, value) in node.attrs.iter() {
        let value = match value {
            Value::Str(s) => wacore_binary::NodeValue::from(s.to_string()),
            Value::Jid(jid) => {
                wacore_binary::NodeValue::Jid(jid.to_string().parse::<wacore_binary::Jid>().unwrap())
            }
        };
        attrs.push(key.to_owned(), value);
    }
    let content = match &node.content {
        Content::None => None,
        Content::Bytes(bytes) => Some(wacore_binary::NodeContent::Bytes(bytes.to_vec())),
        Content::Nodes(children) => Some(wacore_binary::NodeContent::Nodes(
            children.iter().map(to_peer).collect(),
        )),
        Content::Str(s) => Some(wacore_binary::NodeContent::String(s.as_ref().into())),
        Content::Jid(jid) => Some(wacore_binary::NodeContent::String(jid.to_string().into())),
    };
    wacore_binary::Node::new(node.tag.to_string(), attrs, content)
}

fn codec(c: &mut Criterion) {
    let ours = corpus();
    let peers: Vec<wacore_binary::Node> = ours.iter().map(to_peer).collect();
    let encoded: Vec<Bytes> = ours.iter().map(|n| Bytes::from(encode(n))).collect();
    for ((node, peer), bytes) in ours.iter().zip(&peers).zip(&encoded) {
        // The peer's marshal returns a frame payload (flags byte first), like our `encode_frame`.
        assert_eq!(
            wacore_binary::marshal(peer).unwrap(),
            encode_frame(node),
            "peer bytes differ for {node}"
        );
        assert_eq!(&encode_frame(node)[1..], bytes.as_ref());
        assert!(wacore_binary::marshal::unmarshal_ref(bytes).is_ok());
    }
    let total_bytes: usize = encoded.iter().map(|b| b.len()).sum();
    let total_nodes: usize = ours.iter().map(count_nodes).sum();
    eprintln!(
        "binary corpus: {} stanzas, {} nodes, {} bytes ({:.1} bytes/node)",
        ours.len(),
        total_nodes,
        total_bytes,
        total_bytes as f64 / total_nodes as f64
    );

    interleaved_summary(&ours, &peers, &encoded, total_bytes, total_nodes);

    let mut group = c.benchmark_group("binary_decode");
    group.throughput(Throughput::Bytes(total_bytes as u64));
    group.bench_function("ours_tree", |b| {
        b.iter(|| {
            for bytes in &encoded {
                let tree = NodeTree::parse(black_box(bytes)).unwrap();
                black_box(tree.root().tag());
            }
        });
    });
    group.bench_function("wacore_ref", |b| {
        b.iter(|| {
            for bytes in &encoded {
                let node = wacore_binary::marshal::unmarshal_ref(black_box(bytes)).unwrap();
                black_box(&node.tag);
            }
        });
    });
    group.bench_function("ours_owned", |b| {
        b.iter(|| {
            for bytes in &encoded {
                black_box(decode_shared(black_box(bytes)).unwrap());
            }
        });
    });
    group.bench_function("wacore_owned", |b| {
        b.iter(|| {
            for bytes in &encoded {
                black_box(
                    wacore_binary::marshal::unmarshal_ref(black_box(bytes))
                        .unwrap()
                        .to_owned(),
                );
            }
        });
    });
    group.finish();

    let mut group = c.benchmark_group("binary_encode");
    group.throughput(Throughput::Bytes(total_bytes as u64));
    group.bench_function("ours", |b| {
        b.iter(|| {
            for node in &ours {
                black_box(encode_frame(black_box(node)));
            }
        });
    });
    group.bench_function("wacore_marshal", |b| {
        b.iter(|| {
            for node in &peers {
                black_box(wacore_binary::marshal(black_box(node)).unwrap());
            }
        });
    });
    group.bench_function("wacore_marshal_auto", |b| {
        b.iter(|| {
            for node in &peers {
                black_box(wacore_binary::marshal_auto(black_box(node)).unwrap());
            }
        });
    });
    group.bench_function("wacore_marshal_exact", |b| {
        b.iter(|| {
            for node in &peers {
                black_box(wacore_binary::marshal_exact(black_box(node)).unwrap());
            }
        });
    });
    group.finish();
}

/// Times each codec alternately, round after round, and prints the median of each: on a shared machine the load
/// drifts between criterion's consecutive benchmarks, while alternating rounds see the same load.
fn interleaved_summary(
    ours: &[Node],
    peers: &[wacore_binary::Node],
    encoded: &[Bytes],
    bytes: usize,
    nodes: usize,
) {
    use std::time::{Duration, Instant};
    const ROUNDS: usize = 41;
    const PASSES: usize = 20;
    fn time(f: &mut dyn FnMut()) -> Duration {
        let start = Instant::now();
        for _ in 0..PASSES {
            f();
        }
        start.elapsed() / PASSES as u32
    }
    type Case<'c> = (&'static str, Box<dyn FnMut() + 'c>, Vec<Duration>);
    let mut cases: Vec<Case<'_>> = vec![
        (
            "decode ours (NodeTree)",
            Box::new(|| {
                for b in encoded {
                    black_box(NodeTree::parse(black_box(b)).unwrap().root().tag());
                }
            }),
            Vec::new(),
        ),
        (
            "decode wacore (unmarshal_ref)",
            Box::new(|| {
                for b in encoded {
                    black_box(
                        wacore_binary::marshal::unmarshal_ref(black_box(b))
                            .unwrap()
                            .tag
                            .len(),
                    );
                }
            }),
            Vec::new(),
        ),
        (
            "decode ours owned (decode_shared)",
            Box::new(|| {
                for b in encoded {
                    black_box(decode_shared(black_box(b)).unwrap());
                }
            }),
            Vec::new(),
        ),
        (
            "decode wacore owned (unmarshal_ref + to_owned)",
            Box::new(|| {
                for b in encoded {
                    black_box(
                        wacore_binary::marshal::unmarshal_ref(black_box(b))
                            .unwrap()
                            .to_owned(),
                    );
                }
            }),
            Vec::new(),
        ),
        (
            "encode ours (encode_frame)",
            Box::new(|| {
                for n in ours {
                    black_box(encode_frame(black_box(n)));
                }
            }),
            Vec::new(),
        ),
        (
            "encode wacore (marshal)",
            Box::new(|| {
                for n in peers {
                    black_box(wacore_binary::marshal(black_box(n)).unwrap());
                }
            }),
            Vec::new(),
        ),
    ];
    for _ in 0..ROUNDS {
        for (_, f, times) in cases.iter_mut() {
            times.push(time(f.as_mut()));
        }
    }
    eprintln!("interleaved medians over {ROUNDS} rounds (corpus: {bytes} bytes, {nodes} nodes):");
    for (name, _, times) in cases.iter_mut() {
        times.sort();
        let median = times[ROUNDS / 2].as_secs_f64();
        eprintln!(
            "  {name:<48} {:>8.1} us  {:>7.1} MB/s  {:>6.2} M nodes/s",
            median * 1e6,
            bytes as f64 / median / 1e6,
            nodes as f64 / median / 1e6
        );
    }
}

criterion_group!(benches, codec);
criterion_main!(benches);
