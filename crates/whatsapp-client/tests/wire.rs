//! End to end: what the stanzas say as WhatsApp reads them, checked by a test server that refuses what WhatsApp
//! would and phones that check each stanza against the content they decrypt: message types and media types
//! through wrappers, hidden decryption failures, delivery receipts that follow presence, peer-message receipts,
//! resends to this account's own devices, the message secret on their copies, and messages asked from the phone
//! when this device has no readable copy. Real sockets, SQLite stores.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::Duration;

use common::*;
use whatsapp_client::proto::e2e::message::{
    AudioMessage, ContactMessage, DocumentMessage, ExtendedTextMessage, FutureProofMessage, ImageMessage,
    VideoMessage,
};
use whatsapp_client::{Client, ClientError, Event, Events, Message, Presence, ReceiptKind};
use whatsapp_testserver::{ServerEvent, TestServer};

fn wrapped(inner: Message) -> Option<Box<FutureProofMessage>> {
    Some(Box::new(FutureProofMessage {
        message: Some(Box::new(inner)),
    }))
}

/// A message of each shape whose stanza attributes differ, named for the failure message.
fn shapes() -> Vec<(&'static str, Message)> {
    let image = Message {
        image_message: Some(Box::new(ImageMessage {
            mimetype: Some("image/jpeg".to_owned()),
            caption: Some("a picture".to_owned()),
            ..Default::default()
        })),
        ..Default::default()
    };
    let video = Message {
        video_message: Some(Box::new(VideoMessage {
            mimetype: Some("video/mp4".to_owned()),
            ..Default::default()
        })),
        ..Default::default()
    };
    let document = Message {
        document_message: Some(Box::new(DocumentMessage {
            file_name: Some("notes.txt".to_owned()),
            caption: Some("the notes".to_owned()),
            ..Default::default()
        })),
        ..Default::default()
    };
    vec![
        (
            "disappearing image",
            Message {
                ephemeral_message: wrapped(image),
                ..Default::default()
            },
        ),
        (
            "view-once video",
            Message {
                view_once_message_v2: wrapped(video),
                ..Default::default()
            },
        ),
        (
            "document with caption",
            Message {
                document_with_caption_message: wrapped(document),
                ..Default::default()
            },
        ),
        (
            "voice note",
            Message {
                audio_message: Some(Box::new(AudioMessage {
                    ptt: Some(true),
                    ..Default::default()
                })),
                ..Default::default()
            },
        ),
        (
            "contact card",
            Message {
                contact_message: Some(Box::new(ContactMessage {
                    display_name: Some("Dee".to_owned()),
                    ..Default::default()
                })),
                ..Default::default()
            },
        ),
        (
            "link preview",
            Message {
                extended_text_message: Some(Box::new(ExtendedTextMessage {
                    text: Some("see https://example.org".to_owned()),
                    title: Some("Example".to_owned()),
                    ..Default::default()
                })),
                ..Default::default()
            },
        ),
        (
            "text",
            Message {
                conversation: Some("plain".to_owned()),
                ..Default::default()
            },
        ),
    ]
}

/// The next message event for message `id`, skipping everything else.
async fn message_with_id(events: &mut Events, id: &str) -> (whatsapp_client::MessageInfo, Message) {
    match wait_for(
        events,
        id,
        |e| matches!(e, Event::Message { info, .. } if info.id == id),
    )
    .await
    {
        Event::Message { info, message } => (info, *message),
        _ => unreachable!(),
    }
}

#[tokio::test]
async fn stanza_attributes_describe_each_kind_of_message() {
    let server = TestServer::start().await.unwrap();
    let alice = companion(&server, PHONE).await;
    let mut bob = companion(&server, BOB).await;
    let group = server.create_group("Shapes", &[PHONE, BOB]);

    for chat in [user(BOB), group] {
        let mut last = String::new();
        for (what, message) in shapes() {
            let sent = alice
                .client
                .send_message(&chat, &message)
                .await
                .unwrap_or_else(|e| panic!("{what} to {chat}: {e}"));
            let (_, got) = message_with_id(&mut bob.events, &sent.id).await;
            assert_eq!(got, message, "{what} to {chat}");
            last = sent.id;
        }
        // Reactions, edits and deletions hide a failed decryption, and the edit kind is on the stanza.
        let reaction = alice
            .client
            .send_reaction(&chat, None, &last, "👍")
            .await
            .unwrap();
        let (_, got) = message_with_id(&mut bob.events, &reaction.id).await;
        assert_eq!(got.reaction_message.unwrap().text.as_deref(), Some("👍"));
        let edited = Message {
            conversation: Some("edited".to_owned()),
            ..Default::default()
        };
        let edit = alice.client.edit_message(&chat, &last, edited).await.unwrap();
        let (info, _) = message_with_id(&mut bob.events, &edit.id).await;
        assert_eq!(info.edit, Some(whatsapp_client::EditKind::Edit));
        let revoke = alice.client.revoke(&chat, None, &last).await.unwrap();
        let (info, _) = message_with_id(&mut bob.events, &revoke.id).await;
        assert_eq!(info.edit, Some(whatsapp_client::EditKind::SenderRevoke));
    }
    // Both phones decrypted every copy and found the attributes true to the content; the server refused nothing.
    assert_eq!(server.phone_decrypt_failures(), Vec::new());
    assert_eq!(server.protocol_violations(), Vec::new());
    alice.client.disconnect().await;
    bob.client.disconnect().await;
}

/// The kind of the receipt the server routed for message `id`, skipping other receipts.
async fn routed_receipt(server_events: &mut whatsapp_testserver::ServerEvents, id: &str) -> Option<String> {
    match server_wait(
        server_events,
        "a receipt",
        |e| matches!(e, ServerEvent::ReceiptRouted { id: routed, .. } if routed == id),
    )
    .await
    {
        ServerEvent::ReceiptRouted { kind, .. } => kind,
        _ => unreachable!(),
    }
}

#[tokio::test]
async fn delivery_receipts_follow_presence_and_peer_messages_are_confirmed() {
    let server = TestServer::start().await.unwrap();
    let mut server_events = server.subscribe();
    let mut alice = companion(&server, PHONE).await;
    let Companion {
        client: bob,
        events: mut bob_events,
        ..
    } = companion(&server, BOB).await;
    // Bob's application reads its events: each message is handled, and its receipt goes out.
    tokio::spawn(async move { while bob_events.recv().await.is_some() {} });

    // In the background a companion's delivery receipts say `inactive`: the sender's apps show no ticks.
    let sent = alice.client.send_text(&user(BOB), "one").await.unwrap();
    assert_eq!(
        routed_receipt(&mut server_events, &sent.id).await.as_deref(),
        Some("inactive")
    );
    // Once Bob's client says he is available, they are plain delivery receipts.
    bob.set_push_name("Bob").await.unwrap();
    bob.send_presence(Presence::Available).await.unwrap();
    let sent = alice.client.send_text(&user(BOB), "two").await.unwrap();
    assert_eq!(routed_receipt(&mut server_events, &sent.id).await, None);
    let receipt = match wait_for(
        &mut alice.events,
        "Bob's receipt",
        |e| matches!(e, Event::Receipt(r) if r.ids.contains(&sent.id)),
    )
    .await
    {
        Event::Receipt(receipt) => receipt,
        _ => unreachable!(),
    };
    assert_eq!(receipt.kind, ReceiptKind::Delivered);
    // Unavailable again: inactive again.
    bob.send_presence(Presence::Unavailable).await.unwrap();
    let sent = alice.client.send_text(&user(BOB), "three").await.unwrap();
    assert_eq!(
        routed_receipt(&mut server_events, &sent.id).await.as_deref(),
        Some("inactive")
    );
    // Forced active, whatever the presence.
    bob.set_force_active_delivery_receipts(true);
    let sent = alice.client.send_text(&user(BOB), "four").await.unwrap();
    assert_eq!(routed_receipt(&mut server_events, &sent.id).await, None);

    // A peer message from Alice's phone (an app-state key share) is confirmed to the account with `peer_msg`,
    // beside the `sender` delivery receipt.
    server.add_phone(PHONE).share_app_state_key().unwrap();
    let mut kinds = Vec::new();
    while kinds.len() < 2 {
        match server_wait(
            &mut server_events,
            "receipts of the peer message",
            |e| matches!(e, ServerEvent::ReceiptRouted { from, .. } if *from == alice.jid),
        )
        .await
        {
            ServerEvent::ReceiptRouted { kind, .. } => kinds.push(kind),
            _ => unreachable!(),
        }
    }
    kinds.sort();
    assert_eq!(kinds, [Some("peer_msg".to_owned()), Some("sender".to_owned())]);
    assert_eq!(server.protocol_violations(), Vec::new());
    alice.client.disconnect().await;
    bob.disconnect().await;
}

#[tokio::test]
async fn a_resend_to_this_accounts_other_device_keeps_the_chat() {
    let server = TestServer::start().await.unwrap();
    let alice = companion(&server, PHONE).await;
    let mut laptop = companion(&server, PHONE).await;
    let bob = companion(&server, BOB).await;

    // The laptop's copy of Alice's message to Bob arrives damaged; its retry receipt names the chat
    // (`recipient`), and the resend must name it again or the laptop files the message in no chat.
    server.corrupt_next_messages(&laptop.jid, 1);
    let sent = alice.client.send_text(&user(BOB), "to Bob").await.unwrap();
    let (info, message) = message_with_id(&mut laptop.events, &sent.id).await;
    assert_eq!(message.conversation.as_deref(), Some("to Bob"));
    assert!(info.is_from_me);
    assert_eq!(info.chat, bob.lid.to_non_ad());
    assert_eq!(server.protocol_violations(), Vec::new());
    for device in [alice, laptop, bob] {
        device.client.disconnect().await;
    }
}

#[tokio::test]
async fn this_accounts_devices_get_the_message_secret_on_top_of_their_copy() {
    let server = TestServer::start().await.unwrap();
    let alice = companion(&server, PHONE).await;
    let mut laptop = companion(&server, PHONE).await;
    let mut bob = companion(&server, BOB).await;

    // Alice's phone reads the poll's secret where WhatsApp's apps look for it, so it can open Bob's vote.
    let sent = alice
        .client
        .send_poll(&user(BOB), "Lunch?", &["pizza", "sushi"], 1)
        .await
        .unwrap();
    message_with_id(&mut laptop.events, &sent.id).await;
    let (poll, _) = message_with_id(&mut bob.events, &sent.id).await;
    let vote = bob.client.vote(&poll, &["sushi"]).await.unwrap();
    let (vote_info, vote_message) = message_with_id(&mut laptop.events, &vote.id).await;
    assert_eq!(
        laptop
            .client
            .decrypt_poll_vote(&vote_info, &vote_message.poll_update_message.unwrap())
            .await
            .unwrap(),
        whatsapp_client::option_hashes(&["sushi"])
    );
    assert_eq!(server.phone_decrypt_failures(), Vec::new());
    for device in [alice, laptop, bob] {
        device.client.disconnect().await;
    }
}

#[tokio::test]
async fn a_message_without_a_copy_for_this_device_is_asked_from_the_phone() {
    let server = TestServer::start().await.unwrap();
    let alice = companion(&server, PHONE).await;
    let mut bob = companion(&server, BOB).await;

    server.withhold_next_message(&bob.jid, "view_once");
    let sent = alice.client.send_text(&user(BOB), "seen once").await.unwrap();
    match wait_for(
        &mut bob.events,
        "the unavailable message",
        |e| matches!(e, Event::UndecryptableMessage { info, .. } if info.id == sent.id),
    )
    .await
    {
        Event::UndecryptableMessage {
            error,
            requested_from_phone,
            ..
        } => {
            assert!(matches!(error, ClientError::MessageUnavailable(kind) if kind == "view_once"));
            assert!(requested_from_phone);
        }
        _ => unreachable!(),
    }
    // Bob's phone has its own copy and sends the message.
    let (info, message) = next_message(&mut bob.events).await;
    assert_eq!(info.id, sent.id);
    assert_eq!(message.conversation.as_deref(), Some("seen once"));
    assert!(info.unavailable_request_id.is_some());
    assert_eq!(info.chat, alice.lid.to_non_ad());
    assert!(!info.is_from_me);
    // Once: the next event is the next message.
    let next = alice.client.send_text(&user(BOB), "after").await.unwrap();
    let (info, _) = next_message(&mut bob.events).await;
    assert_eq!(info.id, next.id);
    assert_eq!(server.protocol_violations(), Vec::new());
    alice.client.disconnect().await;
    bob.client.disconnect().await;
}

#[tokio::test]
async fn a_message_that_never_decrypts_comes_from_the_phone_once() {
    let server = TestServer::start().await.unwrap();
    let mut server_events = server.subscribe();
    let alice = companion(&server, PHONE).await;
    // Bob's client asks the phone as soon as a message fails, beside the retry receipt.
    let bob_phone = server.add_phone(BOB);
    let (backend, _) = sqlite().await;
    let (bob, mut bob_events) = Client::builder(backend)
        .server(server.url(), server.trust_root())
        .phone_request_delay(Duration::ZERO)
        .build()
        .await
        .unwrap();
    let bob_jid = pair_with(&bob_phone, &bob, &mut bob_events).await;
    alice.client.send_text(&user(BOB), "hello").await.unwrap();
    next_message(&mut bob_events).await;

    // The message and every resend the retry receipts ask for arrive damaged (the original and four
    // resends): only the phone can help.
    server.corrupt_next_messages(&bob_jid, 5);
    let sent = alice.client.send_text(&user(BOB), "stubborn").await.unwrap();
    let failed = wait_for(
        &mut bob_events,
        "the failure",
        |e| matches!(e, Event::UndecryptableMessage { info, .. } if info.id == sent.id),
    )
    .await;
    assert!(matches!(
        failed,
        Event::UndecryptableMessage {
            requested_from_phone: true,
            ..
        }
    ));
    let (info, message) = message_with_id(&mut bob_events, &sent.id).await;
    assert_eq!(message.conversation.as_deref(), Some("stubborn"));
    assert!(info.unavailable_request_id.is_some());

    // Every copy Alice sent (the original and four resends) reached Bob and failed; then a new message.
    for _ in 0..5 {
        server_wait(
            &mut server_events,
            "a copy of the stubborn message",
            |e| matches!(e, ServerEvent::MessageRouted { id, .. } if *id == sent.id),
        )
        .await;
    }
    let next = alice.client.send_text(&user(BOB), "after").await.unwrap();
    // The next message Bob emits is the new one: the stubborn one was not emitted again.
    let emitted = wait_for(&mut bob_events, "the next message", |e| {
        matches!(e, Event::Message { .. })
    })
    .await;
    assert!(
        matches!(&emitted, Event::Message { info, .. } if info.id == next.id),
        "emitted again: {emitted:?}"
    );
    alice.client.disconnect().await;
    bob.disconnect().await;
}

#[tokio::test]
async fn a_message_with_no_readable_payload_is_reported_not_dropped() {
    let server = TestServer::start().await.unwrap();
    let alice = companion(&server, PHONE).await;
    let mut bob = companion(&server, BOB).await;

    // A payload kind this client does not read (WhatsApp uses others for bots and business messages).
    let stanza = whatsapp_client::Node::new("message")
        .attr("from", alice.lid.clone())
        .attr("sender_pn", alice.jid.clone())
        .attr("id", "3EB0UNREADABLE")
        .attr("type", "text")
        .attr("t", "1700000000")
        .children([whatsapp_client::Node::new("enc")
            .attr("v", "3")
            .attr("type", "msmsg")
            .bytes(vec![1, 2, 3])]);
    assert!(server.send_stanza(&bob.jid, stanza));
    match wait_for(&mut bob.events, "the report", |e| {
        matches!(e, Event::UndecryptableMessage { .. })
    })
    .await
    {
        Event::UndecryptableMessage {
            info,
            error,
            requested_from_phone,
        } => {
            assert_eq!(info.id, "3EB0UNREADABLE");
            assert!(matches!(error, ClientError::Unsupported(_)), "{error:?}");
            assert!(requested_from_phone);
        }
        _ => unreachable!(),
    }
    alice.client.disconnect().await;
    bob.client.disconnect().await;
}
