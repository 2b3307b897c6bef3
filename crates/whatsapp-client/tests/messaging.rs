//! End to end: one-to-one messages between two accounts' companions through `whatsapp-testserver`, over real
//! sockets with SQLite stores: both directions, copies to the sender's other devices, and delivery of what
//! arrived while a device was offline.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::*;
use whatsapp_client::sql::SqlBackend;
use whatsapp_client::{Client, ClientError, Event, Events, Jid, ReceiptKind};
use whatsapp_testserver::{ServerEvent, TestServer};

#[tokio::test]
async fn text_both_ways_and_to_own_devices() {
    let server = TestServer::start().await.unwrap();
    let mut alice = companion(&server, PHONE).await;
    let mut alice_laptop = companion(&server, PHONE).await;
    let mut bob = companion(&server, BOB).await;

    let sent = alice.client.send_text(&user(BOB), "hello bob").await.unwrap();
    assert!(sent.id.starts_with("3EB0"));
    let (info, message) = next_message(&mut bob.events).await;
    assert_eq!(message.conversation.as_deref(), Some("hello bob"));
    assert_eq!(info.id, sent.id);
    // Written to Bob's LID, as WhatsApp addresses chats today: Alice's device arrives by LID, her phone number
    // beside it.
    assert_eq!(info.sender, alice.lid);
    assert_eq!(info.sender_alt.as_ref(), Some(&alice.jid));
    assert_eq!(info.chat, alice.lid.to_non_ad());
    assert!(!info.is_from_me);

    // Alice's other companion gets the copy, unwrapped, in the chat with Bob.
    let (info, message) = next_message(&mut alice_laptop.events).await;
    assert_eq!(message.conversation.as_deref(), Some("hello bob"));
    assert!(info.is_from_me);
    assert_eq!(info.chat, bob.lid.to_non_ad());

    // Both phones are devices of the chat too: Bob's phone reads the message, Alice's phone the copy of it.
    let bob_phone = server.add_phone(BOB).received_messages();
    assert!(
        bob_phone.iter().any(|m| m.id == sent.id
            && m.from == alice.jid
            && m.message.conversation.as_deref() == Some("hello bob")),
        "{bob_phone:?}"
    );
    let alice_phone = server.add_phone(PHONE).received_messages();
    assert!(
        alice_phone.iter().any(|m| m.id == sent.id
            && m.message
                .device_sent_message
                .as_ref()
                .and_then(|dsm| dsm.message.as_ref())
                .and_then(|inner| inner.conversation.as_deref())
                == Some("hello bob")),
        "{alice_phone:?}"
    );

    // Bob answers over the session Alice started; both of Alice's companions read it.
    bob.client.send_text(&user(PHONE), "hi alice").await.unwrap();
    for events in [&mut alice.events, &mut alice_laptop.events] {
        let (info, message) = next_message(events).await;
        assert_eq!(message.conversation.as_deref(), Some("hi alice"));
        assert_eq!(info.sender, bob.lid);
    }
    assert!(
        server
            .add_phone(PHONE)
            .received_messages()
            .iter()
            .any(|m| m.from == bob.jid),
        "Alice's phone got Bob's answer"
    );
    assert_eq!(server.phone_decrypt_failures(), Vec::new());
    // A second message in the same direction rides the established sessions.
    alice.client.send_text(&user(BOB), "second").await.unwrap();
    let (_, message) = next_message(&mut bob.events).await;
    assert_eq!(message.conversation.as_deref(), Some("second"));

    for companion in [alice, alice_laptop, bob] {
        companion.client.disconnect().await;
    }
}

#[tokio::test]
async fn messages_wait_for_an_offline_device() {
    let server = TestServer::start().await.unwrap();
    let alice = companion(&server, PHONE).await;
    let mut bob = companion(&server, BOB).await;
    bob.client.disconnect().await;

    alice
        .client
        .send_text(&user(BOB), "while you were away")
        .await
        .unwrap();
    bob.client.connect().await.unwrap();
    let (_, message) = next_message(&mut bob.events).await;
    assert_eq!(message.conversation.as_deref(), Some("while you were away"));
    alice.client.disconnect().await;
    bob.client.disconnect().await;
}

#[tokio::test]
async fn a_redelivered_message_is_not_emitted_twice() {
    let server = TestServer::start().await.unwrap();
    let mut server_events = server.subscribe();
    let alice = companion(&server, PHONE).await;
    let mut bob = companion(&server, BOB).await;
    // The server forgets acks: every copy is delivered again at the next login.
    server.honour_acks(false);

    let first = alice.client.send_text(&user(BOB), "once").await.unwrap();
    let (_, message) = next_message(&mut bob.events).await;
    assert_eq!(message.conversation.as_deref(), Some("once"));
    // Alice's first message to Bob also issues her privacy token to him; it stays queued beside the message.
    wait_for(&mut bob.events, "Alice's privacy token", |e| {
        matches!(e, Event::PrivacyToken { .. })
    })
    .await;
    server_wait(
        &mut server_events,
        "first ack",
        |e| matches!(e, ServerEvent::Acked { class, id, .. } if class == "message" && *id == first.id),
    )
    .await;

    server.drop_connections();
    // Bob reconnects, is sent "once" again, and acknowledges it without emitting it.
    server_wait(
        &mut server_events,
        "ack of the redelivery",
        |e| matches!(e, ServerEvent::Acked { device, class, id } if class == "message" && *id == first.id && *device == bob.jid),
    )
    .await;
    assert_eq!(server.inbox_len(&bob.jid), 2, "the message and the privacy token");
    server.honour_acks(true);
    alice.client.send_text(&user(BOB), "twice").await.unwrap();
    let (_, message) = next_message(&mut bob.events).await;
    assert_eq!(message.conversation.as_deref(), Some("twice"));
    alice.client.disconnect().await;
    bob.client.disconnect().await;
}

#[tokio::test]
async fn a_copy_sent_again_while_the_first_is_handled_is_only_acknowledged() {
    let server = TestServer::start().await.unwrap();
    let mut server_events = server.subscribe();
    let alice = companion(&server, PHONE).await;
    let mut bob = companion(&server, BOB).await;
    // The server writes the copy twice in one WebSocket message: Bob reads the second while the application still
    // has the first, so its plaintext is still in the decrypt buffer and its ack not sent. Acks are seen but not
    // acted on, so both of Bob's acks show, once the first copy is handled.
    server.honour_acks(false);
    server.send_next_message_twice(&bob.jid);
    let sent = alice.client.send_text(&user(BOB), "once").await.unwrap();
    let (info, message) = next_message(&mut bob.events).await;
    assert_eq!(info.id, sent.id);
    assert_eq!(message.conversation.as_deref(), Some("once"));
    bob.events.mark_handled();
    for copy in ["first", "second"] {
        server_wait(
            &mut server_events,
            &format!("the ack of the {copy} copy"),
            |e| matches!(e, ServerEvent::Acked { device, class, id } if *device == bob.jid && class == "message" && *id == sent.id),
        )
        .await;
    }
    server.honour_acks(true);
    // The next message is the next event: the second copy was not emitted.
    alice.client.send_text(&user(BOB), "after").await.unwrap();
    let (_, message) = next_message(&mut bob.events).await;
    assert_eq!(message.conversation.as_deref(), Some("after"));
    alice.client.disconnect().await;
    bob.client.disconnect().await;
}

/// What `device`'s decrypt buffer holds: the text of each message whose plaintext is still there (empty for one
/// without text), and how many hashes it keeps in all. Read from the database file beside the client.
async fn decrypt_buffer(device: &Companion) -> (Vec<String>, usize) {
    use sea_orm::{ConnectionTrait, Statement};
    use whatsapp_client::proto::ProtoMessage;
    let db = sea_orm::Database::connect(format!("sqlite:{}", device.path))
        .await
        .unwrap();
    let rows = db
        .query_all_raw(Statement::from_string(
            db.get_database_backend(),
            "SELECT plaintext FROM wa_event_buffer",
        ))
        .await
        .unwrap();
    let mut texts = Vec::new();
    for row in &rows {
        let plaintext: Option<Vec<u8>> = row.try_get("", "plaintext").unwrap();
        if let Some(plaintext) = plaintext {
            let message = whatsapp_client::Message::decode(plaintext.as_slice()).unwrap();
            texts.push(message.conversation.unwrap_or_default());
        }
    }
    db.close().await.unwrap();
    (texts, rows.len())
}

#[tokio::test]
async fn handled_messages_leave_only_their_hashes_in_the_decrypt_buffer() {
    let server = TestServer::start().await.unwrap();
    let alice = companion(&server, PHONE).await;
    let mut bob = companion(&server, BOB).await;
    // A burst: everything queued while Bob was away arrives at once when he logs in.
    bob.client.disconnect().await;
    let burst: Vec<String> = (0..100).map(|i| format!("burst {i}")).collect();
    for text in &burst {
        alice.client.send_text(&user(BOB), text).await.unwrap();
    }
    bob.client.connect().await.unwrap();
    for text in &burst {
        let (_, message) = next_message(&mut bob.events).await;
        assert_eq!(message.conversation.as_deref(), Some(text.as_str()));
    }
    // Whatever of the burst was still waiting to be cleared is cleared by the next decryption's transaction.
    alice.client.send_text(&user(BOB), "marker").await.unwrap();
    let (_, message) = next_message(&mut bob.events).await;
    assert_eq!(message.conversation.as_deref(), Some("marker"));
    let (texts, hashes) = decrypt_buffer(&bob).await;
    assert!(
        texts.iter().all(|text| !burst.contains(text)),
        "plaintexts of handled messages: {texts:?}"
    );
    assert!(hashes > burst.len(), "{hashes} hashes kept");
    // A client that stopped has cleared every message it emitted; the hashes stay for de-duplication.
    bob.client.disconnect().await;
    let (texts, hashes_after) = decrypt_buffer(&bob).await;
    assert_eq!(texts, Vec::<String>::new());
    assert_eq!(hashes_after, hashes);
    alice.client.disconnect().await;
}

#[tokio::test]
async fn messages_without_a_session_or_to_unknown_users_fail_cleanly() {
    let server = TestServer::start().await.unwrap();
    let alice = companion(&server, PHONE).await;
    // A number the server does not know has no devices.
    let error = alice
        .client
        .send_text(&user("19998887777"), "anyone?")
        .await
        .unwrap_err();
    assert!(matches!(error, ClientError::Response(_)), "{error:?}");
    // A group the server does not know is refused.
    let group = Jid::new("123-456", Jid::GROUP_SERVER);
    assert!(matches!(
        alice.client.send_text(&group, "hi").await,
        Err(ClientError::Iq { code: 404, .. })
    ));
    // Broadcasts are not supported yet.
    assert!(matches!(
        alice.client.send_text(&Jid::status_broadcast(), "hi").await,
        Err(ClientError::Unsupported(_))
    ));
    alice.client.disconnect().await;
}

#[tokio::test]
async fn delivery_and_read_receipts_reach_the_sender() {
    let server = TestServer::start().await.unwrap();
    let mut alice = companion(&server, PHONE).await;
    let mut bob = companion(&server, BOB).await;

    let first = alice.client.send_text(&user(BOB), "one").await.unwrap();
    let second = alice.client.send_text(&user(BOB), "two").await.unwrap();
    for expected in [&first.id, &second.id] {
        let (info, _) = next_message(&mut bob.events).await;
        assert_eq!(&info.id, expected);
    }
    // Bob's device confirms delivery of each message as it handles it.
    for expected in [&first.id, &second.id] {
        let receipt = next_receipt(&mut alice.events).await;
        assert_eq!(receipt.ids, vec![expected.clone()]);
        assert_eq!(receipt.kind, ReceiptKind::Inactive);
        assert_eq!(receipt.sender, bob.jid);
        assert_eq!(receipt.chat, user(BOB));
    }
    // Bob reads both; one receipt names them.
    let ids = vec![first.id.clone(), second.id.clone()];
    bob.client
        .mark_read(&user(PHONE), None, &ids, ReceiptKind::Read)
        .await
        .unwrap();
    let receipt = next_receipt(&mut alice.events).await;
    assert_eq!(receipt.kind, ReceiptKind::Read);
    assert_eq!(receipt.ids, ids);
    assert_eq!(receipt.sender, bob.jid);
    // A receipt without ids is refused before it is sent.
    assert!(
        bob.client
            .mark_read(&user(PHONE), None, &[], ReceiptKind::Read)
            .await
            .is_err()
    );
    alice.client.disconnect().await;
    bob.client.disconnect().await;
}

async fn next_receipt(events: &mut Events) -> whatsapp_client::Receipt {
    match wait_for(events, "a receipt", |e| matches!(e, Event::Receipt(_))).await {
        Event::Receipt(receipt) => receipt,
        _ => unreachable!(),
    }
}

#[tokio::test]
async fn an_undecryptable_message_is_sent_again_after_a_retry_receipt() {
    let server = TestServer::start().await.unwrap();
    let mut server_events = server.subscribe();
    let alice = companion(&server, PHONE).await;
    let mut bob = companion(&server, BOB).await;

    // The first copy for Bob arrives damaged: Bob reports it and asks Alice for it again.
    server.corrupt_next_messages(&bob.jid, 1);
    let sent = alice
        .client
        .send_text(&user(BOB), "despite the damage")
        .await
        .unwrap();
    match wait_for(&mut bob.events, "undecryptable", |e| {
        matches!(e, Event::UndecryptableMessage { .. })
    })
    .await
    {
        Event::UndecryptableMessage { info, .. } => assert_eq!(info.id, sent.id),
        _ => unreachable!(),
    }
    server_wait(&mut server_events, "retry receipt", |e| {
        matches!(e, ServerEvent::ReceiptRouted { id, kind: Some(kind), .. } if *id == sent.id && kind == "retry")
    })
    .await;
    // Alice's client answers with a copy for Bob's device alone, which decrypts.
    let (info, message) = next_message(&mut bob.events).await;
    assert_eq!(info.id, sent.id);
    assert_eq!(message.conversation.as_deref(), Some("despite the damage"));

    // The session survives: the next message needs no retry.
    alice.client.send_text(&user(BOB), "and after").await.unwrap();
    let (_, message) = next_message(&mut bob.events).await;
    assert_eq!(message.conversation.as_deref(), Some("and after"));
    alice.client.disconnect().await;
    bob.client.disconnect().await;
}

#[tokio::test]
async fn a_second_retry_starts_a_new_session_from_the_receipts_keys() {
    let server = TestServer::start().await.unwrap();
    let mut server_events = server.subscribe();
    let alice = companion(&server, PHONE).await;
    let mut bob = companion(&server, BOB).await;
    // A session exists before the damage.
    alice.client.send_text(&user(BOB), "hello").await.unwrap();
    next_message(&mut bob.events).await;

    // The message and its first resend arrive damaged; the second retry receipt carries Bob's keys and the
    // second resend, on a session started from them, decrypts.
    server.corrupt_next_messages(&bob.jid, 2);
    let sent = alice
        .client
        .send_text(&user(BOB), "third time lucky")
        .await
        .unwrap();
    for _ in 0..2 {
        let failed = wait_for(&mut bob.events, "undecryptable", |e| {
            matches!(e, Event::UndecryptableMessage { .. })
        })
        .await;
        assert!(matches!(failed, Event::UndecryptableMessage { info, .. } if info.id == sent.id));
        server_wait(&mut server_events, "retry receipt", |e| {
            matches!(e, ServerEvent::ReceiptRouted { id, kind: Some(kind), .. } if *id == sent.id && kind == "retry")
        })
        .await;
    }
    let (info, message) = next_message(&mut bob.events).await;
    assert_eq!(info.id, sent.id);
    assert_eq!(message.conversation.as_deref(), Some("third time lucky"));
    alice.client.disconnect().await;
    bob.client.disconnect().await;
}

#[tokio::test]
async fn messaging_with_a_postgresql_store() {
    let Some(schema) = PostgresSchema::new().await else {
        return;
    };
    let server = TestServer::start().await.unwrap();
    // Alice keeps her device in PostgreSQL, Bob in SQLite.
    let alice_store = SqlBackend::connect(&schema.url).await.unwrap();
    assert!(alice_store.is_postgres());
    let (alice_client, mut alice_events) = client_for(&server, alice_store).await;
    let alice_phone = server.add_phone(PHONE);
    pair_with(&alice_phone, &alice_client, &mut alice_events).await;
    let mut bob = companion(&server, BOB).await;

    alice_client.send_text(&user(BOB), "from postgres").await.unwrap();
    let (_, message) = next_message(&mut bob.events).await;
    assert_eq!(message.conversation.as_deref(), Some("from postgres"));
    bob.client.send_text(&user(PHONE), "to postgres").await.unwrap();
    let (_, message) = next_message(&mut alice_events).await;
    assert_eq!(message.conversation.as_deref(), Some("to postgres"));

    // Alice's process restarts from the database and reads what arrived meanwhile, on the same sessions.
    let account = alice_client.account_id();
    alice_client.disconnect().await;
    drop(alice_client);
    bob.client
        .send_text(&user(PHONE), "while restarting")
        .await
        .unwrap();
    let store = SqlBackend::connect(&schema.url).await.unwrap();
    let (alice_client, mut alice_events) = Client::builder(store)
        .account(account)
        .server(server.url(), server.trust_root())
        .build()
        .await
        .unwrap();
    alice_client.connect().await.unwrap();
    let (_, message) = next_message(&mut alice_events).await;
    assert_eq!(message.conversation.as_deref(), Some("while restarting"));
    alice_client.disconnect().await;
    bob.client.disconnect().await;
    schema.drop_schema().await;
}

#[tokio::test]
async fn group_messages_reach_every_member_device_and_distribute_the_key_once() {
    group_messages(Db::Sqlite, true).await;
}

#[tokio::test]
async fn group_messages_with_postgresql_stores() {
    // A phone-number group here, so both addressing modes run end to end.
    on_postgres(|db| group_messages(db, false)).await;
}

/// Messages in a LID-addressed group (`lid`) or a phone-number one.
async fn group_messages(db: Db, lid: bool) {
    const CAROL: &str = "15550001111";
    let server = TestServer::start().await.unwrap();
    let mut server_events = server.subscribe();
    let mut alice = companion_in(&server, PHONE, &db).await;
    let mut alice_laptop = companion_in(&server, PHONE, &db).await;
    let mut bob = companion_in(&server, BOB, &db).await;
    let mut carol = companion_in(&server, CAROL, &db).await;
    let group = match lid {
        true => server.create_group("Friends", &[PHONE, BOB, CAROL]),
        false => server.create_pn_group("Friends", &[PHONE, BOB, CAROL]),
    };
    let named = |companion: &Companion| match lid {
        true => companion.lid.clone(),
        false => companion.jid.clone(),
    };

    let first = alice.client.send_text(&group, "hello group").await.unwrap();
    for events in [&mut bob.events, &mut carol.events, &mut alice_laptop.events] {
        let (info, message) = next_message(events).await;
        assert_eq!(message.conversation.as_deref(), Some("hello group"));
        assert_eq!(info.id, first.id);
        assert_eq!(info.chat, group);
        assert_eq!(info.sender, named(&alice));
        assert!(info.is_group);
    }
    // The members' phones are member devices too: each got the sender key and read the message.
    for number in [BOB, CAROL] {
        let read = server.add_phone(number).received_messages();
        assert!(
            read.iter().any(|m| m.id == first.id
                && m.chat == group
                && m.message.conversation.as_deref() == Some("hello group")),
            "{read:?}"
        );
    }
    assert_eq!(server.phone_decrypt_failures(), Vec::new());
    let routed = server_wait(
        &mut server_events,
        "first group message",
        |e| matches!(e, ServerEvent::MessageRouted { id, .. } if *id == first.id),
    )
    .await;
    assert!(
        matches!(
            routed,
            ServerEvent::MessageRouted {
                copies: 3,
                pairwise: 3,
                ..
            }
        ),
        "{routed:?}"
    );

    // The key reached every device: the second message is the skmsg alone.
    let second = alice.client.send_text(&group, "again").await.unwrap();
    let routed = server_wait(
        &mut server_events,
        "second group message",
        |e| matches!(e, ServerEvent::MessageRouted { id, .. } if *id == second.id),
    )
    .await;
    assert!(
        matches!(
            routed,
            ServerEvent::MessageRouted {
                copies: 3,
                pairwise: 0,
                ..
            }
        ),
        "{routed:?}"
    );
    for events in [&mut bob.events, &mut carol.events, &mut alice_laptop.events] {
        let (_, message) = next_message(events).await;
        assert_eq!(message.conversation.as_deref(), Some("again"));
    }

    // Each member's device confirmed delivery to Alice, in the group.
    let receipt = wait_for(
        &mut alice.events,
        "a group receipt",
        |e| matches!(e, Event::Receipt(r) if r.ids.contains(&first.id)),
    )
    .await;
    match receipt {
        Event::Receipt(receipt) => {
            assert_eq!(receipt.chat, group);
            assert_ne!(receipt.sender, alice.jid);
        }
        _ => unreachable!(),
    }

    // Another member answers; its own key goes out with its first message.
    bob.client.send_text(&group, "hi all").await.unwrap();
    for events in [&mut carol.events, &mut alice_laptop.events] {
        let (info, message) = next_message(events).await;
        assert_eq!(message.conversation.as_deref(), Some("hi all"));
        assert_eq!(info.sender, named(&bob));
    }
    for companion in [alice, alice_laptop, bob, carol] {
        companion.client.disconnect().await;
    }
}

#[tokio::test]
async fn the_sender_key_distribution_survives_a_restart() {
    let server = TestServer::start().await.unwrap();
    let mut server_events = server.subscribe();
    let (store, path) = sqlite().await;
    let (alice_client, mut alice_events) = client_for(&server, store).await;
    pair_with(&server.add_phone(PHONE), &alice_client, &mut alice_events).await;
    let mut bob = companion(&server, BOB).await;
    let group = server.create_group("Two", &[PHONE, BOB]);

    let first = alice_client.send_text(&group, "before").await.unwrap();
    let routed = server_wait(
        &mut server_events,
        "first",
        |e| matches!(e, ServerEvent::MessageRouted { id, .. } if *id == first.id),
    )
    .await;
    assert!(
        matches!(routed, ServerEvent::MessageRouted { pairwise: 1, .. }),
        "{routed:?}"
    );
    next_message(&mut bob.events).await;

    // A new process on the same database knows Bob's device holds the key already.
    let account = alice_client.account_id();
    alice_client.disconnect().await;
    drop(alice_client);
    let (alice_client, _alice_events) = Client::builder(SqlBackend::open_sqlite(&path).await.unwrap())
        .account(account)
        .server(server.url(), server.trust_root())
        .build()
        .await
        .unwrap();
    alice_client.connect().await.unwrap();
    let second = alice_client.send_text(&group, "after").await.unwrap();
    let routed = server_wait(
        &mut server_events,
        "second",
        |e| matches!(e, ServerEvent::MessageRouted { id, .. } if *id == second.id),
    )
    .await;
    assert!(
        matches!(routed, ServerEvent::MessageRouted { pairwise: 0, .. }),
        "{routed:?}"
    );
    let (_, message) = next_message(&mut bob.events).await;
    assert_eq!(message.conversation.as_deref(), Some("after"));
    alice_client.disconnect().await;
    bob.client.disconnect().await;
}

#[tokio::test]
async fn messages_delivered_out_of_order_all_decrypt() {
    let server = TestServer::start().await.unwrap();
    let alice = companion(&server, PHONE).await;
    let mut bob = companion(&server, BOB).await;
    // Bob answers once, so Alice's later messages are ordinary `msg`s of one chain; then he goes offline.
    alice.client.send_text(&user(BOB), "first").await.unwrap();
    next_message(&mut bob.events).await;
    bob.client.send_text(&user(PHONE), "ok").await.unwrap();
    let mut alice_events = alice.events;
    next_message(&mut alice_events).await;
    bob.client.disconnect().await;

    let texts = ["one", "two", "three", "four"];
    for text in texts {
        alice.client.send_text(&user(BOB), text).await.unwrap();
    }
    // Bob's device gets them newest first.
    server.reverse_inbox(true);
    bob.client.connect().await.unwrap();
    let mut received = Vec::new();
    for _ in texts {
        let (_, message) = next_message(&mut bob.events).await;
        received.push(message.conversation.unwrap_or_default());
    }
    assert_eq!(received, ["four", "three", "two", "one"]);
    alice.client.disconnect().await;
    bob.client.disconnect().await;
}

#[tokio::test]
async fn first_messages_delivered_out_of_order_all_decrypt() {
    let server = TestServer::start().await.unwrap();
    let alice = companion(&server, PHONE).await;
    let mut bob = companion(&server, BOB).await;
    bob.client.disconnect().await;
    // Every message of a session the recipient has not answered is a pkmsg on the same prekey.
    let texts = ["one", "two", "three"];
    for text in texts {
        alice.client.send_text(&user(BOB), text).await.unwrap();
    }
    server.reverse_inbox(true);
    bob.client.connect().await.unwrap();
    let mut received = Vec::new();
    for _ in texts {
        let (_, message) = next_message(&mut bob.events).await;
        received.push(message.conversation.unwrap_or_default());
    }
    assert_eq!(received, ["three", "two", "one"]);
    alice.client.disconnect().await;
    bob.client.disconnect().await;
}

/// A companion on an in-memory SQLite store (many of them in one test).
async fn light_companion(server: &TestServer, phone: &str) -> Companion {
    let phone = server.add_phone(phone);
    let (client, mut events) = client_for(server, SqlBackend::memory().await.unwrap()).await;
    let jid = pair_with(&phone, &client, &mut events).await;
    let lid = Jid::with_device(phone.lid().user(), Jid::LID_SERVER, jid.device());
    Companion {
        client,
        events,
        jid,
        lid,
        path: String::new(),
    }
}

#[tokio::test]
async fn a_fifty_member_group_with_three_devices_each() {
    const MEMBERS: usize = 50;
    const DEVICES: usize = 3;
    let server = TestServer::start().await.unwrap();
    let mut server_events = server.subscribe();
    let numbers: Vec<String> = (0..MEMBERS).map(|i| format!("1555200{i:04}")).collect();
    // Pair the 150 devices, ten at a time.
    let mut companions = Vec::new();
    for round in 0..DEVICES {
        for chunk in numbers.chunks(10) {
            let paired = futures::future::join_all(chunk.iter().map(|n| light_companion(&server, n))).await;
            companions.extend(paired.into_iter().map(|c| (round, c)));
        }
    }
    let members: Vec<&str> = numbers.iter().map(String::as_str).collect();
    let group = server.create_group("Fifty", &members);

    let (_, sender) = companions.remove(0);
    let sent = sender.client.send_text(&group, "hello fifty").await.unwrap();
    let routed = server_wait(
        &mut server_events,
        "the group message",
        |e| matches!(e, ServerEvent::MessageRouted { id, .. } if *id == sent.id),
    )
    .await;
    let others = MEMBERS * DEVICES - 1;
    assert!(
        matches!(routed, ServerEvent::MessageRouted { copies, pairwise, .. } if copies == others && pairwise == others),
        "{routed:?}"
    );
    for (_, companion) in &mut companions {
        let (info, message) = next_message(&mut companion.events).await;
        assert_eq!(message.conversation.as_deref(), Some("hello fifty"));
        assert_eq!(info.chat, group);
    }
    // Everyone holds the key now: the second message is one skmsg.
    let second = sender.client.send_text(&group, "again").await.unwrap();
    let routed = server_wait(
        &mut server_events,
        "the second message",
        |e| matches!(e, ServerEvent::MessageRouted { id, .. } if *id == second.id),
    )
    .await;
    assert!(
        matches!(routed, ServerEvent::MessageRouted { pairwise: 0, .. }),
        "{routed:?}"
    );
    for (_, companion) in &mut companions {
        let (_, message) = next_message(&mut companion.events).await;
        assert_eq!(message.conversation.as_deref(), Some("again"));
    }
    sender.client.disconnect().await;
    for (_, companion) in companions {
        companion.client.disconnect().await;
    }
}

#[tokio::test]
async fn a_five_mebibyte_document_round_trip() {
    let server = TestServer::start().await.unwrap();
    let alice = companion(&server, PHONE).await;
    let mut bob = companion(&server, BOB).await;
    let data: Vec<u8> = (0..5 * 1024 * 1024u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
        .collect();

    alice
        .client
        .send_document(&user(BOB), &data, "application/octet-stream", "data.bin")
        .await
        .unwrap();
    assert_eq!(server.media_file_count(), 1);
    let (_, message) = next_message(&mut bob.events).await;
    let document = message.document_message.as_deref().unwrap();
    assert_eq!(document.file_name.as_deref(), Some("data.bin"));
    assert_eq!(document.file_length, Some(data.len() as u64));
    let media = whatsapp_client::MediaRef::of(&message).unwrap();
    let downloaded = bob.client.download(&media).await.unwrap();
    assert!(downloaded == data, "the download differs from the upload");

    // A wrong key does not decrypt; an expired file is its own error.
    let mut wrong = media.clone();
    wrong.media_key[0] ^= 1;
    assert!(matches!(
        bob.client.download(&wrong).await,
        Err(ClientError::Media(_))
    ));
    server.forget_media();
    assert!(matches!(
        bob.client.download(&media).await,
        Err(ClientError::MediaExpired { status: 404 })
    ));
    alice.client.disconnect().await;
    bob.client.disconnect().await;
}

#[tokio::test]
async fn reactions_edits_and_revokes() {
    use whatsapp_client::EditKind;
    use whatsapp_proto::e2e::message::protocol_message::Type;
    let server = TestServer::start().await.unwrap();
    let mut alice = companion(&server, PHONE).await;
    let mut bob = companion(&server, BOB).await;

    let original = alice.client.send_text(&user(BOB), "helo").await.unwrap();
    let (info, _) = next_message(&mut bob.events).await;
    assert_eq!(info.edit, None);

    // Bob reacts to Alice's message; Alice sees the reaction naming it.
    bob.client
        .send_reaction(&user(PHONE), Some(&alice.jid), &original.id, "👍")
        .await
        .unwrap();
    let (_, message) = next_message(&mut alice.events).await;
    let reaction = message.reaction_message.unwrap();
    assert_eq!(reaction.text.as_deref(), Some("👍"));
    let key = reaction.key.unwrap();
    assert_eq!(key.id.as_deref(), Some(original.id.as_str()));
    assert_eq!(key.from_me, Some(false), "from Bob's side the message is Alice's");

    // Alice fixes the typo.
    let fixed = whatsapp_client::Message {
        conversation: Some("hello".to_owned()),
        ..Default::default()
    };
    alice
        .client
        .edit_message(&user(BOB), &original.id, fixed.clone())
        .await
        .unwrap();
    let (info, message) = next_message(&mut bob.events).await;
    assert_eq!(info.edit, Some(EditKind::Edit));
    let protocol = message.protocol_message.unwrap();
    assert_eq!(protocol.r#type(), Type::MessageEdit);
    assert_eq!(protocol.key.unwrap().id.as_deref(), Some(original.id.as_str()));
    assert_eq!(protocol.edited_message.as_deref(), Some(&fixed));

    // And deletes it for everyone.
    alice.client.revoke(&user(BOB), None, &original.id).await.unwrap();
    let (info, message) = next_message(&mut bob.events).await;
    assert_eq!(info.edit, Some(EditKind::SenderRevoke));
    let protocol = message.protocol_message.unwrap();
    assert_eq!(protocol.r#type(), Type::Revoke);
    assert_eq!(protocol.key.unwrap().from_me, Some(true));
    alice.client.disconnect().await;
    bob.client.disconnect().await;
}

#[tokio::test]
async fn a_connection_cut_mid_receive_loses_and_repeats_nothing() {
    let server = TestServer::start().await.unwrap();
    let mut server_events = server.subscribe();
    let alice = companion(&server, PHONE).await;
    let mut bob = companion(&server, BOB).await;
    // Bob's connection ends right after the message is written to it, and the server keeps the copy whatever Bob
    // acked: it arrives again after the reconnect.
    server.honour_acks(false);
    server.cut_after_next_message(&bob.jid);
    let sent = alice
        .client
        .send_text(&user(BOB), "across the cut")
        .await
        .unwrap();
    let (info, message) = next_message(&mut bob.events).await;
    assert_eq!(info.id, sent.id);
    assert_eq!(message.conversation.as_deref(), Some("across the cut"));
    bob.events.mark_handled();
    server_wait(
        &mut server_events,
        "an ack of the message",
        |e| matches!(e, ServerEvent::Acked { device, id, .. } if *device == bob.jid && *id == sent.id),
    )
    .await;
    // Whether Bob's first ack got through or not, the copy is still queued and comes again with the next login,
    // ahead of the next message: it must be acknowledged without a second event.
    server.honour_acks(true);
    alice.client.send_text(&user(BOB), "after the cut").await.unwrap();
    let (_, message) = next_message(&mut bob.events).await;
    assert_eq!(message.conversation.as_deref(), Some("after the cut"));
    alice.client.disconnect().await;
    bob.client.disconnect().await;
}

#[tokio::test]
async fn a_connection_lost_mid_send_loses_and_duplicates_nothing() {
    let server = TestServer::start().await.unwrap();
    let alice = companion(&server, PHONE).await;
    let mut bob = companion(&server, BOB).await;

    // The server routes the message, then the connection ends before the ack: the client cannot know the message
    // arrived, sends the same stanza again after the reconnect, and Bob still sees it once.
    server.cut_before_next_ack(&alice.jid, true);
    alice.client.send_text(&user(BOB), "ack lost").await.unwrap();
    // The connection ends before the message even reaches the server: the resend is what delivers it.
    server.cut_before_next_ack(&alice.jid, false);
    alice.client.send_text(&user(BOB), "message lost").await.unwrap();
    alice.client.send_text(&user(BOB), "marker").await.unwrap();

    let mut texts = Vec::new();
    while texts.last().map(String::as_str) != Some("marker") {
        let (_, message) = next_message(&mut bob.events).await;
        texts.push(message.conversation.unwrap_or_default());
    }
    assert_eq!(texts, ["ack lost", "message lost", "marker"]);
}

#[tokio::test]
async fn a_send_tried_again_under_its_id_is_delivered_once() {
    let server = TestServer::start().await.unwrap();
    let mut server_events = server.subscribe();
    let alice = companion(&server, PHONE).await;
    let mut bob = companion(&server, BOB).await;
    let group = server.create_group("Once", &[PHONE, BOB]);
    let text = |t: &str| whatsapp_client::Message {
        conversation: Some(t.to_owned()),
        ..Default::default()
    };

    // A caller that did not see the ack sends again under the same id: the server routes the id once and
    // answers the repeat with the first ack; Bob sees the message once, in a chat and in a group alike.
    for chat in [user(BOB), group] {
        let id = alice.client.generate_message_id().await.unwrap();
        let first = alice
            .client
            .send_message_with_id(&chat, &text("once"), &id)
            .await
            .unwrap();
        let again = alice
            .client
            .send_message_with_id(&chat, &text("once"), &id)
            .await
            .unwrap();
        assert_eq!((first.id.as_str(), again.id.as_str()), (id.as_str(), id.as_str()));
        assert_eq!(again.timestamp, first.timestamp, "the first ack, again");
        server_wait(
            &mut server_events,
            "the repeat",
            |e| matches!(e, ServerEvent::MessageDuplicate { id: repeated, .. } if *repeated == id),
        )
        .await;
        let marker = alice.client.send_text(&chat, "marker").await.unwrap();
        let (info, message) = next_message(&mut bob.events).await;
        assert_eq!((info.id, message.conversation.as_deref()), (id, Some("once")));
        let (info, _) = next_message(&mut bob.events).await;
        assert_eq!(info.id, marker.id, "nothing between the message and the marker");
    }
    for bad in ["", "has space", &"A".repeat(65)] {
        assert!(matches!(
            alice
                .client
                .send_message_with_id(&user(BOB), &text("x"), bad)
                .await,
            Err(ClientError::InvalidRequest(_))
        ));
    }
}

#[tokio::test]
async fn a_group_message_that_does_not_decrypt_is_sent_again_with_the_sender_key() {
    let server = TestServer::start().await.unwrap();
    let mut server_events = server.subscribe();
    let alice = companion(&server, PHONE).await;
    let mut bob = companion(&server, BOB).await;
    let group = server.create_group("Two", &[PHONE, BOB]);

    // Bob's copy of the skmsg arrives damaged: his device asks again, and Alice answers with one pairwise copy,
    // from the group, carrying the message and her sender key.
    server.corrupt_next_messages(&bob.jid, 1);
    let sent = alice.client.send_text(&group, "please retry").await.unwrap();
    match wait_for(&mut bob.events, "undecryptable", |e| {
        matches!(e, Event::UndecryptableMessage { .. })
    })
    .await
    {
        Event::UndecryptableMessage { info, .. } => assert_eq!(info.id, sent.id),
        _ => unreachable!(),
    }
    server_wait(&mut server_events, "retry receipt", |e| {
        matches!(e, ServerEvent::ReceiptRouted { id, kind: Some(kind), .. } if *id == sent.id && kind == "retry")
    })
    .await;
    let (info, message) = next_message(&mut bob.events).await;
    assert_eq!(message.conversation.as_deref(), Some("please retry"));
    assert_eq!(
        (info.id, info.chat, info.sender),
        (sent.id, group.clone(), alice.lid.clone())
    );
    assert!(info.is_group);

    // The group keeps working for him with the skmsg alone.
    alice.client.send_text(&group, "next").await.unwrap();
    let (_, message) = next_message(&mut bob.events).await;
    assert_eq!(message.conversation.as_deref(), Some("next"));
}

#[tokio::test]
async fn messages_to_a_lid_address_arrive() {
    let server = TestServer::start().await.unwrap();
    let alice = companion(&server, PHONE).await;
    let mut bob = companion(&server, BOB).await;
    let bob_lid = server.add_phone(BOB).lid();

    let sent = alice.client.send_text(&bob_lid, "to your lid").await.unwrap();
    let (info, message) = next_message(&mut bob.events).await;
    assert_eq!(info.id, sent.id);
    assert_eq!(message.conversation.as_deref(), Some("to your lid"));
}

/// The copies of message `id` as the server routed them: (pairwise copies, of which `pkmsg`).
async fn routed_copies(server_events: &mut whatsapp_testserver::ServerEvents, id: &str) -> (usize, usize) {
    match server_wait(
        server_events,
        "the message routed",
        |e| matches!(e, ServerEvent::MessageRouted { id: routed, .. } if routed == id),
    )
    .await
    {
        ServerEvent::MessageRouted { pairwise, prekey, .. } => (pairwise, prekey),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn a_peer_moved_to_lid_addressing_keeps_its_sessions_and_sender_keys() {
    use whatsapp_client::store::{Backend, IdentityStore, SenderKeyStore, SessionStore};
    let server = TestServer::start().await.unwrap();
    let mut server_events = server.subscribe();
    let mut alice = companion(&server, PHONE).await;
    let mut bob = companion(&server, BOB).await;
    // A group from before the move to LIDs: members by phone number.
    let group = server.create_pn_group("Moving", &[PHONE, BOB]);
    let bob_lid = Jid::with_device(
        server.add_phone(BOB).lid().user(),
        Jid::LID_SERVER,
        bob.jid.device(),
    );

    // Sessions both ways and Bob's sender key, all made while Bob is addressed by phone number.
    alice.client.send_text(&group, "hello").await.unwrap();
    next_message(&mut bob.events).await;
    bob.client.send_text(&group, "hi all").await.unwrap();
    let (info, _) = next_message(&mut alice.events).await;
    assert_eq!(info.sender, bob.jid);
    assert_eq!(info.sender_alt, None);

    server.address_by_lid(BOB);

    // His group message now comes from his LID and decrypts with the sender key Alice stored under his phone
    // number: no new distribution.
    let sent = bob.client.send_text(&group, "group, from my lid").await.unwrap();
    assert_eq!(routed_copies(&mut server_events, &sent.id).await, (0, 0));
    let (info, message) = next_message(&mut alice.events).await;
    assert_eq!(message.conversation.as_deref(), Some("group, from my lid"));
    assert_eq!(info.sender, bob_lid);
    assert_eq!(info.sender_alt.as_ref(), Some(&bob.jid));

    // Bob's first direct message rides the session the group made, from his LID: Alice finds the session made
    // under his phone number (no new session, no retry: an undecryptable message would fail `next_message`).
    let sent = bob.client.send_text(&user(PHONE), "from my lid").await.unwrap();
    assert_eq!(routed_copies(&mut server_events, &sent.id).await, (1, 0));
    let (info, message) = next_message(&mut alice.events).await;
    assert_eq!(message.conversation.as_deref(), Some("from my lid"));
    assert_eq!(info.sender, bob_lid);
    assert_eq!(info.sender_alt.as_ref(), Some(&bob.jid));
    assert_eq!(info.chat, bob_lid.to_non_ad());

    // Alice writes to Bob's phone number: it goes to his LID, encrypted with the moved session, so a `msg`.
    let sent = alice.client.send_text(&user(BOB), "still here").await.unwrap();
    assert_eq!(routed_copies(&mut server_events, &sent.id).await, (1, 0));
    let (_, message) = next_message(&mut bob.events).await;
    assert_eq!(message.conversation.as_deref(), Some("still here"));

    // Alice's store keeps Bob's records under his LID address only.
    let store = reopen(&alice).await;
    let account = store.open_account(alice.client.account_id()).await.unwrap();
    let lid_user = bob_lid.signal_address_user();
    assert_eq!(account.user_sessions(BOB).await.unwrap(), vec![]);
    assert_eq!(account.user_identities(BOB).await.unwrap(), vec![]);
    assert_eq!(account.user_sender_keys(BOB).await.unwrap(), vec![]);
    // His companion's and his phone's.
    assert_eq!(account.user_sessions(&lid_user).await.unwrap().len(), 2);
    assert_eq!(account.user_identities(&lid_user).await.unwrap().len(), 2);
    assert_eq!(account.user_sender_keys(&lid_user).await.unwrap().len(), 1);

    // A new process on the same store reads the mapping and the moved records as they are.
    let account_id = alice.client.account_id();
    alice.client.disconnect().await;
    let (client, mut events) = Client::builder(reopen(&alice).await)
        .account(account_id)
        .server(server.url(), server.trust_root())
        .build()
        .await
        .unwrap();
    client.connect().await.unwrap();
    let sent = client.send_text(&user(BOB), "after a restart").await.unwrap();
    assert_eq!(routed_copies(&mut server_events, &sent.id).await, (1, 0));
    assert_eq!(
        next_message(&mut bob.events).await.1.conversation.as_deref(),
        Some("after a restart")
    );
    bob.client.send_text(&user(PHONE), "welcome back").await.unwrap();
    let (info, message) = next_message(&mut events).await;
    assert_eq!(message.conversation.as_deref(), Some("welcome back"));
    assert_eq!(info.sender, bob_lid);
    client.disconnect().await;
    bob.client.disconnect().await;
}

/// Device-list queries by `device` among `events`.
fn list_queries(events: &[ServerEvent], device: &Jid) -> usize {
    events
        .iter()
        .filter(|e| matches!(e, ServerEvent::DeviceListsQueried { from, .. } if from == device))
        .count()
}

/// Sends `text` from `client` to `to`, returning the server's events up to its routing and the routed copies.
async fn send_and_watch(
    client: &Client<SqlBackend>,
    server_events: &mut whatsapp_testserver::ServerEvents,
    to: &Jid,
    text: &str,
) -> (Vec<ServerEvent>, usize) {
    let sent = client.send_text(to, text).await.unwrap();
    let events = events_until(
        server_events,
        text,
        |e| matches!(e, ServerEvent::MessageRouted { id, .. } if *id == sent.id),
    )
    .await;
    let copies = match events.last() {
        Some(ServerEvent::MessageRouted { copies, .. }) => *copies,
        other => panic!("{other:?}"),
    };
    (events, copies)
}

#[tokio::test]
async fn device_lists_are_remembered_kept_true_and_repaired_when_stale() {
    let server = TestServer::start().await.unwrap();
    let mut server_events = server.subscribe();
    let alice = companion(&server, PHONE).await;
    let mut bob = companion(&server, BOB).await;
    let group = server.create_group("Devices", &[PHONE, BOB]);

    // The first message asks for the lists, the next ones do not.
    let (events, copies) = send_and_watch(&alice.client, &mut server_events, &user(BOB), "one").await;
    assert_eq!((list_queries(&events, &alice.jid), copies), (1, 1));
    next_message(&mut bob.events).await;
    let (events, copies) = send_and_watch(&alice.client, &mut server_events, &user(BOB), "two").await;
    assert_eq!((list_queries(&events, &alice.jid), copies), (0, 1));
    next_message(&mut bob.events).await;

    // Bob links a second device: the server tells Alice, whose list follows without asking.
    let mut bob2 = companion(&server, BOB).await;
    server_wait(&mut server_events, "Alice told of the new device", |e| {
        matches!(e, ServerEvent::Acked { device, class, .. } if *device == alice.jid && class == "notification")
    })
    .await;
    let (events, copies) = send_and_watch(&alice.client, &mut server_events, &user(BOB), "three").await;
    assert_eq!((list_queries(&events, &alice.jid), copies), (0, 2));
    for events in [&mut bob.events, &mut bob2.events] {
        let (_, message) = next_message(events).await;
        assert_eq!(message.conversation.as_deref(), Some("three"));
    }

    // A device linked without a notification: the ack's participant hash shows Alice's list is stale, so she asks
    // again and sends the missed device its copy (same message id).
    server.announce_device_changes(false);
    let mut bob3 = companion(&server, BOB).await;
    let sent = alice.client.send_text(&user(BOB), "four").await.unwrap();
    let (info, message) = next_message(&mut bob3.events).await;
    assert_eq!(
        (info.id.as_str(), message.conversation.as_deref()),
        (sent.id.as_str(), Some("four"))
    );
    for events in [&mut bob.events, &mut bob2.events] {
        assert_eq!(next_message(events).await.1.conversation.as_deref(), Some("four"));
    }
    // Routed twice: to the two devices Alice knew, then to the one she learnt of by asking again.
    let events = events_until(
        &mut server_events,
        "the copy for the missed device",
        |e| matches!(e, ServerEvent::MessageRouted { id, copies: 1, .. } if *id == sent.id),
    )
    .await;
    let routed: Vec<usize> = events
        .iter()
        .filter_map(|e| match e {
            ServerEvent::MessageRouted { id, copies, .. } if *id == sent.id => Some(*copies),
            _ => None,
        })
        .collect();
    assert_eq!((list_queries(&events, &alice.jid), routed), (1, vec![2, 1]));
    let (events, copies) = send_and_watch(&alice.client, &mut server_events, &user(BOB), "five").await;
    assert_eq!((list_queries(&events, &alice.jid), copies), (0, 3));
    for events in [&mut bob.events, &mut bob2.events, &mut bob3.events] {
        assert_eq!(next_message(events).await.1.conversation.as_deref(), Some("five"));
    }

    // The same in a group: the missed device gets the message with the sender key, so the next one is a plain
    // skmsg for it too.
    let first = alice.client.send_text(&group, "group one").await.unwrap();
    assert_eq!(routed_copies(&mut server_events, &first.id).await.0, 3);
    for events in [&mut bob.events, &mut bob2.events, &mut bob3.events] {
        next_message(events).await;
    }
    let mut bob4 = companion(&server, BOB).await;
    let second = alice.client.send_text(&group, "group two").await.unwrap();
    // The server hands bob4 the skmsg, which it cannot read yet; the copy Alice sends after the ack (before
    // `send_text` returns) can. If bob4 reads the skmsg first, it also asks for a retry, and Alice's answer starts
    // a new session with bob4 over which her next message hands the sender key out again: let that settle with one
    // more message before checking that the one after is a bare skmsg.
    let mut retried = false;
    loop {
        match wait_for(&mut bob4.events, "group two", |e| {
            matches!(e, Event::Message { .. } | Event::UndecryptableMessage { .. })
        })
        .await
        {
            Event::UndecryptableMessage { info, .. } if info.id == second.id => retried = true,
            Event::Message { message, .. } if message.conversation.as_deref() == Some("group two") => break,
            other => eprintln!("bob4, before group two: {other:?}"),
        }
    }
    if retried {
        eprintln!("bob4 asked for a retry of group two");
        // The repair's copy and the retry's answer, each to bob4 alone.
        for copy in ["the repair's copy", "the retry's answer"] {
            server_wait(
                &mut server_events,
                copy,
                |e| matches!(e, ServerEvent::MessageRouted { id, copies: 1, .. } if *id == second.id),
            )
            .await;
        }
        alice.client.send_text(&group, "settled").await.unwrap();
        wait_text(&mut bob4.events, "settled").await;
    }
    let third = alice.client.send_text(&group, "group three").await.unwrap();
    assert_eq!(routed_copies(&mut server_events, &third.id).await, (0, 0));
    wait_text(&mut bob4.events, "group three").await;

    // An unlinked device leaves the list through the notification.
    server.announce_device_changes(true);
    server.add_phone(BOB).remove_device(&bob2.jid).await;
    server_wait(&mut server_events, "Alice told of the removal", |e| {
        matches!(e, ServerEvent::Acked { device, class, .. } if *device == alice.jid && class == "notification")
    })
    .await;
    let (events, copies) = send_and_watch(&alice.client, &mut server_events, &user(BOB), "six").await;
    assert_eq!((list_queries(&events, &alice.jid), copies), (0, 3));
    for companion in [alice, bob, bob3, bob4] {
        companion.client.disconnect().await;
    }
}

#[tokio::test]
async fn a_status_update_reaches_its_audience_and_distributes_the_key_once() {
    const CAROL: &str = "15550001111";
    const DAVE: &str = "15550002222";
    let server = TestServer::start().await.unwrap();
    let mut server_events = server.subscribe();
    let alice = companion(&server, PHONE).await;
    let mut alice_laptop = companion(&server, PHONE).await;
    let mut bob = companion(&server, BOB).await;
    let mut carol = companion(&server, CAROL).await;
    let mut dave = companion(&server, DAVE).await;
    let audience = [user(BOB), user(CAROL)];
    let text = |text: &str| whatsapp_client::Message {
        conversation: Some(text.to_owned()),
        ..Default::default()
    };

    let first = alice
        .client
        .send_status(&text("out for lunch"), &audience)
        .await
        .unwrap();
    for events in [&mut bob.events, &mut carol.events, &mut alice_laptop.events] {
        let (info, message) = next_message(events).await;
        assert_eq!(message.conversation.as_deref(), Some("out for lunch"));
        assert_eq!(info.id, first.id);
        assert_eq!(info.chat, Jid::status_broadcast());
        assert_eq!(info.sender, alice.jid);
        assert!(!info.is_group);
    }
    let routed = server_wait(
        &mut server_events,
        "first status",
        |e| matches!(e, ServerEvent::MessageRouted { id, .. } if *id == first.id),
    )
    .await;
    assert!(
        matches!(
            routed,
            ServerEvent::MessageRouted {
                copies: 3,
                pairwise: 3,
                ..
            }
        ),
        "{routed:?}"
    );

    // Everyone in the audience holds the key now: the second status is the skmsg alone.
    let second = alice.client.send_status(&text("back"), &audience).await.unwrap();
    let routed = server_wait(
        &mut server_events,
        "second status",
        |e| matches!(e, ServerEvent::MessageRouted { id, .. } if *id == second.id),
    )
    .await;
    assert!(
        matches!(
            routed,
            ServerEvent::MessageRouted {
                copies: 3,
                pairwise: 0,
                ..
            }
        ),
        "{routed:?}"
    );
    for events in [&mut bob.events, &mut carol.events, &mut alice_laptop.events] {
        let (info, message) = next_message(events).await;
        assert_eq!(message.conversation.as_deref(), Some("back"));
        assert_eq!(info.chat, Jid::status_broadcast());
    }

    // Dave, outside the audience, got neither: the next thing he receives is a direct message.
    alice.client.send_text(&user(DAVE), "direct").await.unwrap();
    let (info, message) = next_message(&mut dave.events).await;
    assert_eq!(message.conversation.as_deref(), Some("direct"));
    assert_eq!(info.chat, alice.lid.to_non_ad());

    // Sending a status through send_message is refused with a pointer to send_status.
    let refused = alice
        .client
        .send_message(&Jid::status_broadcast(), &text("no"))
        .await;
    assert!(matches!(refused, Err(ClientError::Unsupported(_))), "{refused:?}");
    for companion in [alice, alice_laptop, bob, carol, dave] {
        companion.client.disconnect().await;
    }
}

/// Every query a device made among `events`: device lists and group metadata.
fn queries(events: &[ServerEvent], device: &Jid) -> usize {
    list_queries(events, device)
        + events
            .iter()
            .filter(|e| matches!(e, ServerEvent::GroupInfoQueried { from, .. } if from == device))
            .count()
}

#[tokio::test]
async fn messages_after_the_first_to_a_group_or_contact_cost_no_queries() {
    // The participant hash covers the sending device too, as WhatsApp computes it: a hash that left it out
    // would differ from the server's on every message and set off a device-list and group query each time.
    let server = TestServer::start().await.unwrap();
    let mut server_events = server.subscribe();
    let alice = companion(&server, PHONE).await;
    let mut alice_laptop = companion(&server, PHONE).await;
    let mut bob = companion(&server, BOB).await;
    for group in [
        server.create_group("Quiet", &[PHONE, BOB]),
        server.create_pn_group("Old and quiet", &[PHONE, BOB]),
    ] {
        let (events, _) = send_and_watch(&alice.client, &mut server_events, &group, "one").await;
        assert_eq!(
            queries(&events, &alice.jid),
            2,
            "the first message asks once: {events:?}"
        );
        let mut seen = Vec::new();
        for text in ["two", "three"] {
            let (events, copies) = send_and_watch(&alice.client, &mut server_events, &group, text).await;
            assert_eq!(copies, 2, "Bob and Alice's laptop");
            seen.extend(events);
        }
        // Whatever "two" set off after its ack comes before "three" is routed.
        assert_eq!(queries(&seen, &alice.jid), 0, "{seen:?}");
        for events in [&mut bob.events, &mut alice_laptop.events] {
            for text in ["one", "two", "three"] {
                assert_eq!(next_message(events).await.1.conversation.as_deref(), Some(text));
            }
        }
    }
    // The same for a contact: the LID is asked for once, the devices once.
    send_and_watch(&alice.client, &mut server_events, &user(BOB), "direct").await;
    let mut seen = Vec::new();
    for text in ["direct two", "direct three"] {
        seen.extend(
            send_and_watch(&alice.client, &mut server_events, &user(BOB), text)
                .await
                .0,
        );
    }
    assert_eq!(queries(&seen, &alice.jid), 0, "{seen:?}");
}

#[tokio::test]
async fn a_message_the_application_had_not_handled_comes_again_after_a_restart() {
    let server = TestServer::start().await.unwrap();
    let mut server_events = server.subscribe();
    let alice = companion(&server, PHONE).await;
    let Companion {
        client: bob,
        events: mut bob_events,
        jid: bob_jid,
        path,
        ..
    } = companion(&server, BOB).await;
    let sent = alice.client.send_text(&user(BOB), "in hand").await.unwrap();
    // The application takes the message from the stream, and its process dies before it asks for the next event:
    // nothing of `Events` runs again (no drop either).
    let taken = tokio::time::timeout(STEP, async {
        while let Some(event) = bob_events.recv().await {
            if let Event::Message { info, .. } = event {
                return info.id;
            }
        }
        panic!("Bob's events ended");
    })
    .await
    .expect("the message did not arrive");
    assert_eq!(taken, sent.id);
    std::mem::forget(bob_events);
    bob.disconnect().await;
    drop(bob);
    // Not acknowledged: the server still holds it for Bob.
    assert!(server.inbox_len(&bob_jid) >= 1);

    // The restarted process gets it from the server again, and emits it from the decrypt buffer.
    let backend = SqlBackend::open_sqlite(&path).await.unwrap();
    let account = whatsapp_client::store::Backend::accounts(&backend).await.unwrap()[0];
    let (bob, mut bob_events) = Client::builder(backend)
        .account(account)
        .server(server.url(), server.trust_root())
        .build()
        .await
        .unwrap();
    bob.connect().await.unwrap();
    let (info, message) = next_message(&mut bob_events).await;
    assert_eq!(info.id, sent.id);
    assert_eq!(message.conversation.as_deref(), Some("in hand"));
    // Handled this time: acknowledged.
    server_wait(
        &mut server_events,
        "the ack after the restart",
        |e| matches!(e, ServerEvent::Acked { device, id, .. } if *device == bob_jid && *id == sent.id),
    )
    .await;
    alice.client.disconnect().await;
    bob.disconnect().await;
}
