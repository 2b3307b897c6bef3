//! End to end against a hostile server: `whatsapp-testserver` sends a logged-in client stanzas that make no sense,
//! frames that are not binary nodes, frame headers that claim more than ever follows, frames dribbled a byte at a
//! time, and replays of message copies. After each, the client has not panicked, has reported what it must, and
//! still sends and receives with its peer over the same Signal sessions.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::io::Write;
use std::time::Duration;

use common::*;
use whatsapp_client::{ClientError, Event, Events, Jid, Node};
use whatsapp_testserver::{ServerEvent, TestServer};

/// Alice and Bob, paired, with a Signal session each way (so later messages are plain `msg`s).
async fn alice_and_bob(server: &TestServer) -> (Companion, Companion) {
    let mut alice = companion(server, PHONE).await;
    let mut bob = companion(server, BOB).await;
    exchange(&mut alice, &mut bob, "hello").await;
    (alice, bob)
}

/// The events before the message whose text is `text`, which must come within the step deadline.
async fn events_until_text(events: &mut Events, text: &str) -> Vec<Event> {
    let mut before = Vec::new();
    let found = tokio::time::timeout(STEP, async {
        while let Some(event) = events.recv().await {
            match event {
                Event::Message { message, .. } if message.conversation.as_deref() == Some(text) => {
                    events.mark_handled();
                    return true;
                }
                other => before.push(other),
            }
        }
        false
    })
    .await;
    assert!(matches!(found, Ok(true)), "no message {text:?}; saw {before:?}");
    before
}

/// One message each way, which must arrive as the next message event on each side; returns what came before on
/// Bob's side.
async fn exchange(alice: &mut Companion, bob: &mut Companion, text: &str) -> Vec<Event> {
    let to_bob = format!("{text} bob");
    alice.client.send_text(&user(BOB), &to_bob).await.unwrap();
    let before = events_until_text(&mut bob.events, &to_bob).await;
    let to_alice = format!("{text} alice");
    bob.client.send_text(&user(PHONE), &to_alice).await.unwrap();
    let on_alice = events_until_text(&mut alice.events, &to_alice).await;
    assert!(
        !on_alice.iter().any(|e| matches!(e, Event::Message { .. })),
        "{on_alice:?}"
    );
    before
}

fn no_messages(events: &[Event]) {
    assert!(
        !events.iter().any(|e| matches!(e, Event::Message { .. })),
        "{events:?}"
    );
}

fn count(events: &[Event], pred: impl Fn(&Event) -> bool) -> usize {
    events.iter().filter(|e| pred(e)).count()
}

#[tokio::test]
async fn stanzas_that_make_no_sense_are_refused_and_the_client_carries_on() {
    let server = TestServer::start().await.unwrap();
    let (mut alice, mut bob) = alice_and_bob(&server).await;
    let from_alice = alice.jid.clone();
    let garbage_enc = || {
        Node::new("enc")
            .attr("v", "2")
            .attr("type", "msg")
            .bytes(vec![0x33; 40])
    };
    let hostile = [
        // A message without an id.
        Node::new("message")
            .attr("from", from_alice.clone())
            .attr("type", "text")
            .children([garbage_enc()]),
        // A message without a sender.
        Node::new("message")
            .attr("id", "NOFROM")
            .children([garbage_enc()]),
        // A message whose `<enc>` has no bytes.
        Node::new("message")
            .attr("id", "EMPTYENC")
            .attr("from", from_alice.clone())
            .children([Node::new("enc").attr("type", "msg")]),
        // A message of unknown payload kinds only.
        Node::new("message")
            .attr("id", "ODDKIND")
            .attr("from", from_alice.clone())
            .children([Node::new("enc").attr("type", "frob").bytes(vec![1, 2, 3])]),
        // A group message without a participant.
        Node::new("message")
            .attr("id", "NOPART")
            .attr("from", Jid::new("123-456", Jid::GROUP_SERVER))
            .children([garbage_enc()]),
        // Answers nobody asked for, and a request nobody understands.
        Node::new("iq")
            .attr("type", "result")
            .attr("id", "nobody-asked")
            .attr("from", Jid::server_only(Jid::DEFAULT_USER_SERVER)),
        Node::new("iq")
            .attr("type", "error")
            .attr("id", "nobody-asked-either")
            .children([Node::new("error").attr("code", "500")]),
        Node::new("iq").attr("type", "result"),
        Node::new("iq")
            .attr("type", "get")
            .attr("id", "what")
            .attr("xmlns", "frob"),
        // A pair-device for a paired device, a receipt without a sender, one for nothing we sent, a retry receipt
        // for a message we never sent.
        Node::new("iq")
            .attr("type", "set")
            .attr("id", "pd")
            .children([Node::new("pair-device").children([Node::new("ref").bytes(b"ref".to_vec())])]),
        Node::new("receipt").attr("id", "NOFROM"),
        Node::new("receipt")
            .attr("id", "UNKNOWN")
            .attr("from", from_alice.clone()),
        Node::new("receipt")
            .attr("id", "NEVERSENT")
            .attr("type", "retry")
            .attr("from", from_alice.clone())
            .children([Node::new("retry").attr("count", "1").attr("id", "NEVERSENT")]),
        // A notification of a type nobody knows, an ack for nothing, and tags nobody knows.
        Node::new("notification")
            .attr("type", "frobnicate")
            .attr("id", "n1")
            .attr("from", Jid::server_only(Jid::DEFAULT_USER_SERVER))
            .children([Node::new("frob").bytes(vec![0; 16])]),
        Node::new("ack").attr("class", "message").attr("id", "nothing"),
        Node::new("frobnicate").attr("id", "x"),
    ];
    for stanza in hostile {
        assert!(server.send_stanza(&bob.jid, stanza));
    }
    let before = exchange(&mut alice, &mut bob, "after the nonsense").await;
    no_messages(&before);
    assert_eq!(
        count(&before, |e| matches!(e, Event::Disconnected)),
        0,
        "{before:?}"
    );
    // Malformed messages are acknowledged (so the server stops sending them) and dropped with a warning; none is
    // mistaken for a message that failed to decrypt. The well-formed one with only a payload kind this client does
    // not read is reported (and asked from the phone), not dropped in silence.
    let reported: Vec<&Event> = before
        .iter()
        .filter(|e| matches!(e, Event::UndecryptableMessage { .. }))
        .collect();
    assert!(
        matches!(
            reported.as_slice(),
            [Event::UndecryptableMessage { info, error: ClientError::Unsupported(_), .. }] if info.id == "ODDKIND"
        ),
        "{before:?}"
    );
    // The receipt for something never sent is still a receipt, reported as such.
    assert!(
        before
            .iter()
            .any(|e| matches!(e, Event::Receipt(r) if r.ids == ["UNKNOWN"])),
        "{before:?}"
    );
    alice.client.disconnect().await;
    bob.client.disconnect().await;
}

#[tokio::test]
async fn a_message_full_of_bad_ciphertexts_is_one_undecryptable_event() {
    let server = TestServer::start().await.unwrap();
    let mut server_events = server.subscribe();
    let (mut alice, mut bob) = alice_and_bob(&server).await;
    // Fifty copies that do not authenticate, in one stanza: one event and one retry receipt, not fifty.
    let encs: Vec<Node> = (0..50u8)
        .map(|i| {
            Node::new("enc")
                .attr("v", "2")
                .attr("type", "msg")
                .bytes(vec![0x33 ^ i; 60])
        })
        .collect();
    let stanza = Node::new("message")
        .attr("id", "FIFTYBAD")
        .attr("from", alice.jid.clone())
        .attr("type", "text")
        .attr("t", "1700000000")
        .children(encs);
    assert!(server.send_stanza(&bob.jid, stanza));
    let before = exchange(&mut alice, &mut bob, "after fifty").await;
    no_messages(&before);
    assert_eq!(
        count(
            &before,
            |e| matches!(e, Event::UndecryptableMessage { info, .. } if info.id == "FIFTYBAD")
        ),
        1,
        "{before:?}"
    );
    server_wait(&mut server_events, "the retry receipt", |e| {
        matches!(e, ServerEvent::ReceiptRouted { id, kind: Some(kind), .. } if id == "FIFTYBAD" && kind == "retry")
    })
    .await;
    alice.client.disconnect().await;
    bob.client.disconnect().await;
}

#[tokio::test]
async fn a_damaged_ciphertext_is_reported_and_the_session_survives() {
    let server = TestServer::start().await.unwrap();
    let (mut alice, mut bob) = alice_and_bob(&server).await;
    // A real message whose MAC no longer verifies: reported, a retry receipt brings a good copy, and the session
    // the bad copy named is unchanged.
    server.corrupt_next_messages(&bob.jid, 1);
    let sent = alice.client.send_text(&user(BOB), "damaged").await.unwrap();
    let before = events_until_text(&mut bob.events, "damaged").await;
    assert_eq!(
        count(
            &before,
            |e| matches!(e, Event::UndecryptableMessage { info, .. } if info.id == sent.id)
        ),
        1,
        "{before:?}"
    );
    let before = exchange(&mut alice, &mut bob, "after damage").await;
    no_messages(&before);
    alice.client.disconnect().await;
    bob.client.disconnect().await;
}

#[tokio::test]
async fn a_replayed_ciphertext_is_not_emitted_twice() {
    let server = TestServer::start().await.unwrap();
    let mut server_events = server.subscribe();
    let (mut alice, mut bob) = alice_and_bob(&server).await;
    let sent = alice.client.send_text(&user(BOB), "only once").await.unwrap();
    events_until_text(&mut bob.events, "only once").await;
    bob.events.mark_handled();
    server_wait(
        &mut server_events,
        "the ack",
        |e| matches!(e, ServerEvent::Acked { device, id, .. } if *device == bob.jid && *id == sent.id),
    )
    .await;

    // The same ciphertext under a new stanza id, then under its own id after it was acked: both are acked, and
    // neither is a second message.
    assert!(server.replay_last_message(&bob.jid, Some("REPLAYED1")));
    assert!(server.replay_last_message(&bob.jid, None));
    for id in ["REPLAYED1", sent.id.as_str()] {
        server_wait(
            &mut server_events,
            "the ack of a replay",
            |e| matches!(e, ServerEvent::Acked { device, id: acked, .. } if *device == bob.jid && acked == id),
        )
        .await;
    }
    assert_eq!(server.inbox_len(&bob.jid), 0);
    let before = exchange(&mut alice, &mut bob, "after the replays").await;
    no_messages(&before);
    assert_eq!(
        count(&before, |e| matches!(e, Event::UndecryptableMessage { .. })),
        0,
        "a replay is recognised, not decrypted again: {before:?}"
    );
    alice.client.disconnect().await;
    bob.client.disconnect().await;
}

#[tokio::test]
async fn frames_that_are_not_nodes_end_the_connection_and_nothing_is_lost() {
    let server = TestServer::start().await.unwrap();
    let (mut alice, mut bob) = alice_and_bob(&server).await;
    // A compressed frame that inflates beyond the limit (40 MiB of zeros in about 40 KiB).
    let mut bomb = flate2::write::ZlibEncoder::new(vec![0x02], flate2::Compression::best());
    let zeros = vec![0u8; 1 << 20];
    for _ in 0..40 {
        bomb.write_all(&zeros).unwrap();
    }
    let bomb = bomb.finish().unwrap();
    let garbage: [Vec<u8>; 5] = [
        // Not a node at all.
        vec![0x00, 0xFF, 0xFE, 0x13, 0x37],
        // No flags byte.
        Vec::new(),
        // A compressed frame that is not zlib.
        vec![0x02, 0x01, 0x02, 0x03],
        // A list header announcing more items than bytes follow.
        vec![0x00, 0xF9, 0xFF, 0xFF],
        bomb,
    ];
    for (round, frame) in garbage.into_iter().enumerate() {
        assert!(server.send_frame_bytes(&bob.jid, frame));
        // Bob drops the connection (the server redelivers what he did not ack) and logs in again.
        wait_for(&mut bob.events, "the disconnect", |e| {
            matches!(e, Event::Disconnected)
        })
        .await;
        wait_for(&mut bob.events, "the reconnect", |e| {
            matches!(e, Event::Connected)
        })
        .await;
        let before = exchange(&mut alice, &mut bob, &format!("after garbage {round}")).await;
        no_messages(&before);
    }
    alice.client.disconnect().await;
    bob.client.disconnect().await;
}

#[tokio::test]
async fn a_frame_header_claiming_sixteen_mebibytes_then_silence() {
    let server = TestServer::start().await.unwrap();
    let (mut alice, mut bob) = alice_and_bob(&server).await;
    // The header claims the most three length bytes can say; 64 KiB of it arrive, then nothing. The client
    // buffers what arrived (it never reserves what the header claims) and keeps sending: Alice's message reaches
    // the server, which queues it behind the stalled stream.
    assert!(server.send_frame_header_then_stall(&bob.jid, 0xFF_FFFF, 64 * 1024));
    let sent = alice
        .client
        .send_text(&user(BOB), "behind the stall")
        .await
        .unwrap();
    assert!(!sent.id.is_empty());
    // The stream ends with the frame incomplete: that is a lost connection, and the login after it delivers
    // what was queued.
    server.drop_connections();
    let before = events_until_text(&mut bob.events, "behind the stall").await;
    no_messages(&before);
    assert!(
        before.iter().any(|e| matches!(e, Event::Disconnected)),
        "{before:?}"
    );
    let before = exchange(&mut alice, &mut bob, "after the stall").await;
    no_messages(&before);
    alice.client.disconnect().await;
    bob.client.disconnect().await;
}

#[tokio::test]
async fn a_message_dribbled_one_byte_at_a_time_arrives_whole() {
    let server = TestServer::start().await.unwrap();
    let (mut alice, mut bob) = alice_and_bob(&server).await;
    server.dribble_next_message(&bob.jid, Duration::from_millis(1));
    alice.client.send_text(&user(BOB), "slowly").await.unwrap();
    let before = events_until_text(&mut bob.events, "slowly").await;
    no_messages(&before);
    assert_eq!(
        count(&before, |e| matches!(e, Event::Disconnected)),
        0,
        "{before:?}"
    );
    let before = exchange(&mut alice, &mut bob, "after the dribble").await;
    no_messages(&before);
    alice.client.disconnect().await;
    bob.client.disconnect().await;
}

#[tokio::test]
async fn the_decrypt_buffer_forgets_what_the_server_can_no_longer_redeliver() {
    use whatsapp_client::store::{Backend, BufferedEvent, EventBufferStore};
    let server = TestServer::start().await.unwrap();
    let phone = server.add_phone(BOB);
    let (backend, _path) = sqlite().await;
    let (client, mut events) = client_for(&server, backend.clone()).await;
    pair_with(&phone, &client, &mut events).await;
    let account = backend.open_account(client.account_id()).await.unwrap();
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let day_ms = 24 * 3600 * 1000;
    // Two handled messages: one 15 days old, past the server's 14 days of redelivery, and one from yesterday.
    for (hash, age_days) in [([1u8; 32], 15), ([2u8; 32], 1)] {
        let event = BufferedEvent {
            plaintext: None,
            server_timestamp: now_ms - age_days * day_ms,
            insert_time: now_ms - age_days * day_ms,
        };
        account.put_buffered_event(&hash, &event).await.unwrap();
    }
    // The next login prunes the buffer before it reports the connection ready.
    server.drop_connections();
    wait_for(&mut events, "the reconnect", |e| matches!(e, Event::Connected)).await;
    assert_eq!(account.buffered_event(&[1; 32]).await.unwrap(), None);
    assert!(account.buffered_event(&[2; 32]).await.unwrap().is_some());
    client.disconnect().await;
}
