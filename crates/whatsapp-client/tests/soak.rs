//! Fault-injection soak, on loopback: two accounts exchange many messages while the test server drops connections,
//! cuts them between a delivery and its ack, holds back IQ answers and acks, and forgets acks so that copies are
//! redelivered; then the same with a store that fails write transactions now and then. Nothing may be lost, no
//! message may be emitted twice, and afterwards every Signal session still decrypts.
//!
//! The faults are drawn from a seeded RNG (`WHATSAPP_SOAK_SEED`), so a failing run replays the same plan. The
//! number of messages is `WHATSAPP_SOAK_MESSAGES` (default [`DEFAULT_MESSAGES`], a few seconds in a debug build).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
#[path = "common/faults.rs"]
mod faults;

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use common::*;
use faults::{CommitFaults, FlakyBackend};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::sync::{mpsc, watch};
use whatsapp_client::{Client, Event, Jid};
use whatsapp_testserver::TestServer;

/// Messages per run unless `WHATSAPP_SOAK_MESSAGES` says otherwise.
const DEFAULT_MESSAGES: usize = 300;
/// The fault plan's seed unless `WHATSAPP_SOAK_SEED` says otherwise.
const DEFAULT_SEED: u64 = 0x5EED_0001;

fn env_number(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .map(|v| v.parse().unwrap_or_else(|_| panic!("{name} must be a number")))
        .unwrap_or(default)
}

// ---------------------------------------------------------------------------------------------------------------
// The soak itself.

/// One account's companion, its store's failure switch, and what its event stream delivered.
struct Peer {
    client: Client<FlakyBackend>,
    jid: Jid,
    switch: Arc<CommitFaults>,
    /// Message events, as (id, text), in arrival order.
    messages: mpsc::UnboundedReceiver<(String, String)>,
    /// How many times the client logged in.
    logins: watch::Receiver<u64>,
    undecryptable: Arc<AtomicU64>,
    /// The ids of every message event so far.
    seen: HashSet<String>,
    /// Message events whose id was seen before.
    duplicates: usize,
}

async fn peer(server: &TestServer, number: &str) -> Peer {
    let phone = server.add_phone(number);
    let (inner, _path) = sqlite().await;
    let switch = Arc::new(CommitFaults::default());
    let backend = FlakyBackend::new(inner, Arc::clone(&switch));
    let (client, mut events) = Client::builder(backend)
        .server(server.url(), server.trust_root())
        .iq_timeout(Duration::from_secs(10))
        .build()
        .await
        .unwrap();
    let jid = pair_with(&phone, &client, &mut events).await;
    let (message_tx, messages) = mpsc::unbounded_channel();
    let (login_tx, logins) = watch::channel(0u64);
    let undecryptable = Arc::new(AtomicU64::new(0));
    let counted = Arc::clone(&undecryptable);
    tokio::spawn(async move {
        while let Some(event) = events.recv().await {
            match event {
                Event::Message { info, message } => {
                    let _ = message_tx.send((info.id, message.conversation.unwrap_or_default()));
                }
                Event::Connected => login_tx.send_modify(|n| *n += 1),
                Event::UndecryptableMessage { info, error, .. } => {
                    eprintln!("undecryptable {}: {error}", info.id);
                    counted.fetch_add(1, Ordering::Relaxed);
                }
                _ => {}
            }
        }
    });
    Peer {
        client,
        jid,
        switch,
        messages,
        logins,
        undecryptable,
        seen: HashSet::new(),
        duplicates: 0,
    }
}

impl Peer {
    /// The next message event as (id, text), counting one whose id was seen before as a duplicate.
    async fn next_message(&mut self, missing: impl Fn() -> String) -> (String, String) {
        let (id, text) = tokio::time::timeout(STEP, self.messages.recv())
            .await
            .unwrap_or_else(|_| panic!("lost: {}", missing()))
            .unwrap();
        if !self.seen.insert(id.clone()) {
            eprintln!("duplicate message {id} ({text})");
            self.duplicates += 1;
        }
        (id, text)
    }

    /// Sends `text` to `to` until the server acknowledges it; returns its id and how many attempts failed. Every
    /// attempt carries the same id, so one that reached the server before failing is not delivered twice.
    async fn send_until_acked(&mut self, to: &str, text: &str) -> (String, u32) {
        let mut failures = 0;
        let id = self.client.generate_message_id().await.unwrap();
        let message = whatsapp_client::Message {
            conversation: Some(text.to_owned()),
            ..Default::default()
        };
        loop {
            self.logins.borrow_and_update();
            match self.client.send_message_with_id(&user(to), &message, &id).await {
                Ok(sent) => return (sent.id, failures),
                Err(error) => {
                    failures += 1;
                    assert!(
                        failures < 100,
                        "{text}: still failing after 100 attempts: {error}"
                    );
                    if !self.client.is_logged_in() {
                        tokio::time::timeout(STEP, self.logins.changed())
                            .await
                            .expect("no login after a failed send")
                            .unwrap();
                    }
                }
            }
        }
    }
}

/// What one soak run saw.
#[derive(Debug, Default)]
struct Tally {
    sent: usize,
    failed_attempts: u32,
    received: usize,
    duplicates: usize,
    store_failures: u64,
}

/// Sends `count` messages alternating at random between Alice and Bob, with the faults `plan` draws before each
/// one, then waits until every acknowledged message (and every text) arrived, exactly once per id.
async fn soak(
    server: &TestServer,
    alice: &mut Peer,
    bob: &mut Peer,
    count: usize,
    rng: &mut StdRng,
    network_faults: bool,
) -> Tally {
    let mut tally = Tally::default();
    // Per receiver: the ids the server acknowledged and the texts sent.
    let mut expected: [Vec<String>; 2] = Default::default();
    let mut texts: [Vec<String>; 2] = Default::default();
    let mut ignore_acks_until = 0;
    for i in 0..count {
        let to_bob = rng.gen_bool(0.5);
        if network_faults {
            let receiver = if to_bob { &bob.jid } else { &alice.jid };
            match rng.gen_range(0..100) {
                0..=2 => server.drop_connections(),
                3..=5 => server.cut_after_next_message(receiver),
                6..=8 => {
                    server.honour_acks(false);
                    ignore_acks_until = i + rng.gen_range(1..6);
                }
                _ => {}
            }
            if i >= ignore_acks_until {
                server.honour_acks(true);
            }
            let delay = |rng: &mut StdRng| {
                if rng.gen_bool(0.1) {
                    Duration::from_millis(rng.gen_range(1..40))
                } else {
                    Duration::ZERO
                }
            };
            server.set_iq_delay(delay(rng));
            server.set_ack_delay(delay(rng));
        }
        let text = format!("soak {i}");
        let (sender, to, slot) = if to_bob {
            (&mut *alice, BOB, 1)
        } else {
            (&mut *bob, PHONE, 0)
        };
        let (id, failures) = sender.send_until_acked(to, &text).await;
        tally.sent += 1;
        tally.failed_attempts += failures;
        expected[slot].push(id);
        texts[slot].push(text);
    }
    server.honour_acks(true);
    server.set_iq_delay(Duration::ZERO);
    server.set_ack_delay(Duration::ZERO);
    for (slot, peer) in [(0, &mut *alice), (1, &mut *bob)] {
        let mut missing: HashSet<String> = expected[slot].iter().cloned().collect();
        let mut missing_texts: HashSet<String> = texts[slot].iter().cloned().collect();
        while !missing.is_empty() || !missing_texts.is_empty() {
            let (id, text) = peer
                .next_message(|| {
                    format!(
                        "{} ids and {} texts never arrived, e.g. {:?}",
                        missing.len(),
                        missing_texts.len(),
                        missing_texts.iter().take(5).collect::<Vec<_>>()
                    )
                })
                .await;
            missing.remove(&id);
            missing_texts.remove(&text);
            tally.received += 1;
        }
        tally.duplicates += peer.duplicates;
    }
    tally.store_failures =
        alice.switch.failed.load(Ordering::Relaxed) + bob.switch.failed.load(Ordering::Relaxed);
    tally
}

/// A last message each way with every fault off: every session still decrypts, nothing else is pending.
async fn final_exchange(alice: &mut Peer, bob: &mut Peer) {
    final_message(alice, bob, BOB).await;
    final_message(bob, alice, PHONE).await;
    for peer in [alice, bob] {
        assert_eq!(peer.undecryptable.load(Ordering::Relaxed), 0, "a session broke");
        assert_eq!(peer.duplicates, 0, "a message was emitted twice");
        peer.client.disconnect().await;
    }
}

async fn final_message(sender: &mut Peer, receiver: &mut Peer, to: &str) {
    let (id, _) = sender.send_until_acked(to, "final").await;
    // Every soak message arrived once before; the next one is the final message.
    let (got, text) = receiver.next_message(|| "the final message".to_owned()).await;
    assert_eq!((got, text.as_str()), (id, "final"));
}

fn report(name: &str, count: usize, seed: u64, started: Instant, tally: &Tally) {
    println!(
        "{name}: {count} messages, seed {seed:#x}, {:.1} s; {} received, {} duplicates, {} failed send attempts, \
         {} injected store failures",
        started.elapsed().as_secs_f64(),
        tally.received,
        tally.duplicates,
        tally.failed_attempts,
        tally.store_failures,
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn soak_with_network_faults_loses_and_repeats_nothing() {
    let count = env_number("WHATSAPP_SOAK_MESSAGES", DEFAULT_MESSAGES as u64) as usize;
    let seed = env_number("WHATSAPP_SOAK_SEED", DEFAULT_SEED);
    let mut rng = StdRng::seed_from_u64(seed);
    let server = TestServer::start().await.unwrap();
    let mut alice = peer(&server, PHONE).await;
    let mut bob = peer(&server, BOB).await;
    let started = Instant::now();
    let tally = soak(&server, &mut alice, &mut bob, count, &mut rng, true).await;
    report("network faults", count, seed, started, &tally);
    assert_eq!(tally.duplicates, 0, "{tally:?}");
    // Exactly what was sent: a retried send keeps its id, and the server routes an id once.
    assert_eq!(tally.received, tally.sent, "{tally:?}");
    final_exchange(&mut alice, &mut bob).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn soak_with_failing_store_writes_loses_and_repeats_nothing() {
    let count = env_number("WHATSAPP_SOAK_MESSAGES", DEFAULT_MESSAGES as u64) as usize;
    let seed = env_number("WHATSAPP_SOAK_SEED", DEFAULT_SEED);
    let mut rng = StdRng::seed_from_u64(seed);
    let server = TestServer::start().await.unwrap();
    let mut alice = peer(&server, PHONE).await;
    let mut bob = peer(&server, BOB).await;
    // From now on every seventh write transaction of each store fails: a send's session update (the send is
    // refused and tried again) or a receive's (the message is not acknowledged and comes again).
    for peer in [&alice, &bob] {
        peer.switch.every.store(7, Ordering::Relaxed);
    }
    let started = Instant::now();
    let tally = soak(&server, &mut alice, &mut bob, count, &mut rng, false).await;
    report("failing store writes", count, seed, started, &tally);
    assert!(tally.store_failures > 0, "{tally:?}");
    assert_eq!(tally.duplicates, 0, "{tally:?}");
    // Exactly what was sent: a retried send keeps its id, and the server routes an id once.
    assert_eq!(tally.received, tally.sent, "{tally:?}");
    for peer in [&alice, &bob] {
        peer.switch.every.store(0, Ordering::Relaxed);
    }
    final_exchange(&mut alice, &mut bob).await;
}
