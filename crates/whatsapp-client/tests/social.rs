//! End to end: presence and chat states between two accounts, user lookups, privacy settings and their
//! enforcement, the blocklist, privacy tokens and calls. Real sockets against `whatsapp-testserver`, SQLite
//! stores on disk.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::Duration;

use common::*;
use whatsapp_client::{
    BlockAction, ChatMedia, ChatState, ClientError, Event, Jid, Presence, PrivacyCategory, PrivacyValue,
};
use whatsapp_testserver::{ServerEvent, TestServer};

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

async fn presence_of(events: &mut whatsapp_client::Events, from: &Jid) -> (bool, Option<i64>) {
    match wait_for(
        events,
        "a presence",
        |e| matches!(e, Event::Presence { from: f, .. } if f == from),
    )
    .await
    {
        Event::Presence {
            unavailable,
            last_seen,
            ..
        } => (unavailable, last_seen),
        _ => unreachable!(),
    }
}

async fn chat_state_of(events: &mut whatsapp_client::Events) -> (Jid, Jid, ChatState, ChatMedia) {
    match wait_for(events, "a chat state", |e| {
        matches!(e, Event::ChatPresence { .. })
    })
    .await
    {
        Event::ChatPresence {
            chat,
            sender,
            state,
            media,
        } => (chat, sender, state, media),
        _ => unreachable!(),
    }
}

#[tokio::test]
async fn presence_reaches_subscribers_and_chat_states_reach_the_peer() {
    let server = TestServer::start().await.unwrap();
    let mut server_events = server.subscribe();
    let Companion { client: alice, .. } = companion(&server, PHONE).await;
    let Companion {
        client: bob,
        events: mut bob_events,
        ..
    } = companion(&server, BOB).await;

    // Contacts would see no name: refused before anything is sent.
    assert!(matches!(
        alice.send_presence(Presence::Available).await,
        Err(ClientError::NoPushName)
    ));
    alice.set_push_name("Alice").await.unwrap();
    alice.send_presence(Presence::Available).await.unwrap();
    server_wait(&mut server_events, "alice online", |e| {
        matches!(e, ServerEvent::PresenceChanged { available: true, .. })
    })
    .await;
    assert_eq!(server.profile(PHONE).1, "Alice");

    bob.subscribe_presence(&user(PHONE)).await.unwrap();
    assert_eq!(presence_of(&mut bob_events, &user(PHONE)).await, (false, None));

    let before = now();
    alice.send_presence(Presence::Unavailable).await.unwrap();
    let (unavailable, last_seen) = presence_of(&mut bob_events, &user(PHONE)).await;
    assert!(unavailable);
    let last_seen = last_seen.expect("last seen is shared by default");
    assert!(
        (before..=now()).contains(&last_seen),
        "{last_seen} not in [{before}, now]"
    );

    for (state, media) in [
        (ChatState::Composing, ChatMedia::Text),
        (ChatState::Composing, ChatMedia::Audio),
        (ChatState::Paused, ChatMedia::Text),
    ] {
        alice
            .send_chat_presence(&user(BOB), state.clone(), media.clone())
            .await
            .unwrap();
        assert_eq!(
            chat_state_of(&mut bob_events).await,
            (user(PHONE), user(PHONE), state, media)
        );
    }
}

#[tokio::test]
async fn users_are_looked_up_with_what_their_privacy_settings_show() {
    let server = TestServer::start().await.unwrap();
    let Companion { client: alice, .. } = companion(&server, PHONE).await;
    let Companion {
        client: bob,
        jid: bob_device,
        ..
    } = companion(&server, BOB).await;

    let found = alice
        .is_on_whatsapp(&["+1 555 765 4321", "+1 555 000 9999"])
        .await
        .unwrap();
    assert_eq!(found.len(), 2);
    assert_eq!((found[0].jid.clone(), found[0].is_in), (user(BOB), true));
    assert_eq!(found[0].query, "+15557654321");
    assert_eq!(
        (found[1].jid.clone(), found[1].is_in),
        (user("15550009999"), false)
    );
    assert!(matches!(
        alice.is_on_whatsapp(&["+"]).await,
        Err(ClientError::InvalidRequest(_))
    ));

    bob.set_status_message("At the gym").await.unwrap();
    assert_eq!(server.profile(BOB).0, "At the gym");
    let jpeg = b"\xff\xd8\xff\xe0 Bob's photo".to_vec();
    let photo_id = server.set_profile_photo(BOB, &jpeg);

    // The about text is for contacts by default, and the server keeps no address book: hidden.
    let info = alice.user_info(&[user(BOB)]).await.unwrap();
    assert_eq!(info.len(), 1);
    assert_eq!(info[0].status, None);
    assert_eq!(info[0].picture_id.as_deref(), Some(photo_id.as_str()));
    assert!(info[0].devices.contains(&bob_device), "{:?}", info[0].devices);
    assert_eq!(info[0].lid.as_ref().map(Jid::server), Some(Jid::LID_SERVER));

    bob.set_privacy_setting(PrivacyCategory::Status, PrivacyValue::All)
        .await
        .unwrap();
    let info = alice.user_info(&[user(BOB)]).await.unwrap();
    assert_eq!(info[0].status.as_deref(), Some("At the gym"));

    let picture = alice
        .profile_picture(&user(BOB), false, None)
        .await
        .unwrap()
        .expect("a photo");
    assert_eq!(
        (picture.id.as_str(), picture.kind.as_str()),
        (photo_id.as_str(), "image")
    );
    assert_eq!(alice.download_profile_picture(&picture).await.unwrap(), jpeg);
    assert_eq!(
        alice
            .profile_picture(&user(BOB), true, Some(&photo_id))
            .await
            .unwrap(),
        None
    );

    bob.set_privacy_setting(PrivacyCategory::Profile, PrivacyValue::None)
        .await
        .unwrap();
    assert!(matches!(
        alice.profile_picture(&user(BOB), false, None).await,
        Err(ClientError::Iq { code: 401, .. })
    ));

    alice
        .set_default_disappearing_timer(Duration::from_secs(86_400))
        .await
        .unwrap();
    assert_eq!(server.profile(PHONE).2, 86_400);
}

#[tokio::test]
async fn privacy_settings_and_blocks_are_enforced_and_announced_to_other_devices() {
    let server = TestServer::start().await.unwrap();
    let mut server_events = server.subscribe();
    let Companion {
        client: alice,
        events: mut alice_events,
        ..
    } = companion(&server, PHONE).await;
    // A second device of the same account hears of the changes.
    let Companion {
        events: mut alice_other,
        ..
    } = companion(&server, PHONE).await;
    let Companion {
        client: bob,
        events: mut bob_events,
        ..
    } = companion(&server, BOB).await;

    let settings = alice.privacy_settings().await.unwrap();
    assert_eq!(settings.get(&PrivacyCategory::LastSeen), Some(&PrivacyValue::All));
    assert_eq!(settings.settings.len(), PrivacyCategory::KNOWN.len());

    alice
        .set_privacy_setting(PrivacyCategory::LastSeen, PrivacyValue::None)
        .await
        .unwrap();
    match wait_for(&mut alice_other, "privacy change", |e| {
        matches!(e, Event::PrivacySettings(_))
    })
    .await
    {
        Event::PrivacySettings(changed) => {
            assert_eq!(
                changed.settings,
                vec![(PrivacyCategory::LastSeen, PrivacyValue::None)]
            );
        }
        _ => unreachable!(),
    }
    assert_eq!(
        alice
            .privacy_settings()
            .await
            .unwrap()
            .get(&PrivacyCategory::LastSeen),
        Some(&PrivacyValue::None)
    );
    assert!(matches!(
        alice
            .set_privacy_setting(PrivacyCategory::ReadReceipts, PrivacyValue::Contacts)
            .await,
        Err(ClientError::Iq { code: 400, .. })
    ));

    // Last seen hidden: Bob sees Alice go offline without a time.
    alice.set_push_name("Alice").await.unwrap();
    bob.subscribe_presence(&user(PHONE)).await.unwrap();
    assert!(presence_of(&mut bob_events, &user(PHONE)).await.0);
    alice.send_presence(Presence::Available).await.unwrap();
    assert_eq!(presence_of(&mut bob_events, &user(PHONE)).await, (false, None));
    alice.send_presence(Presence::Unavailable).await.unwrap();
    assert_eq!(presence_of(&mut bob_events, &user(PHONE)).await, (true, None));

    let list = alice
        .update_blocklist(&user(BOB), BlockAction::Block)
        .await
        .unwrap();
    assert_eq!(list.users, vec![user(BOB)]);
    match wait_for(&mut alice_other, "blocklist change", |e| {
        matches!(e, Event::Blocklist { .. })
    })
    .await
    {
        Event::Blocklist { changes, dhash, .. } => {
            assert_eq!(changes, vec![(user(BOB), BlockAction::Block)]);
            assert_eq!(dhash, list.dhash);
        }
        _ => unreachable!(),
    }
    assert_eq!(alice.blocklist().await.unwrap().users, vec![user(BOB)]);

    // A blocked user's message is acknowledged to them and never delivered.
    let blocked = bob.send_text(&user(PHONE), "let me in").await.unwrap();
    server_wait(
        &mut server_events,
        "the blocked message",
        |e| matches!(e, ServerEvent::MessageBlocked { id, .. } if *id == blocked.id),
    )
    .await;

    let list = alice
        .update_blocklist(&user(BOB), BlockAction::Unblock)
        .await
        .unwrap();
    assert!(list.users.is_empty());
    let sent = bob.send_text(&user(PHONE), "hello again").await.unwrap();
    let (info, message) = next_message(&mut alice_events).await;
    assert_eq!(info.id, sent.id, "the blocked message was delivered");
    assert_eq!(message.conversation.as_deref(), Some("hello again"));
}

#[tokio::test]
async fn a_received_privacy_token_goes_back_with_messages_to_its_sender() {
    let server = TestServer::start().await.unwrap();
    let mut server_events = server.subscribe();
    let Companion {
        client: alice,
        events: mut alice_events,
        jid: alice_device,
        ..
    } = companion(&server, PHONE).await;
    let _bob = companion(&server, BOB).await;

    // No token yet: the message carries none (the server reports a token before it routes the message).
    let first = alice.send_text(&user(BOB), "one").await.unwrap();
    let seen = server_wait(&mut server_events, "the first message", |e| {
        matches!(e, ServerEvent::MessageRouted { id, .. } | ServerEvent::PrivacyTokenAttached { id, .. } if *id == first.id)
    })
    .await;
    assert!(matches!(seen, ServerEvent::MessageRouted { .. }), "{seen:?}");

    server.send_privacy_token(BOB, PHONE, b"bob-token");
    wait_for(
        &mut alice_events,
        "the token",
        |e| matches!(e, Event::PrivacyToken { from } if from.server() == Jid::LID_SERVER),
    )
    .await;
    server_wait(&mut server_events, "the token's ack", |e| {
        matches!(e, ServerEvent::Acked { device, class, .. } if *device == alice_device && class == "notification")
    })
    .await;

    let second = alice.send_text(&user(BOB), "two").await.unwrap();
    match server_wait(
        &mut server_events,
        "the second message's token",
        |e| matches!(e, ServerEvent::PrivacyTokenAttached { id, .. } if *id == second.id),
    )
    .await
    {
        ServerEvent::PrivacyTokenAttached { token, .. } => assert_eq!(token, b"bob-token"),
        _ => unreachable!(),
    }
}

/// Waits for the server's verdict on message `id`: routed (with no token) or carrying a tctoken or cstoken (the
/// server reports a token before it routes the message).
async fn tokens_of(server_events: &mut whatsapp_testserver::ServerEvents, id: &str) -> ServerEvent {
    server_wait(server_events, "the message's tokens", |e| {
        matches!(
            e,
            ServerEvent::MessageRouted { id: routed, .. }
                | ServerEvent::PrivacyTokenAttached { id: routed, .. }
                | ServerEvent::CsTokenAttached { id: routed, .. }
                if routed == id
        )
    })
    .await
}

/// Sends `text` from `client` to `to` and waits until the server routed it, failing if `client`'s account issued
/// a privacy token meanwhile. A token issued after an earlier message goes out before this one.
async fn send_without_issuing(
    client: &whatsapp_client::Client<whatsapp_client::sql::SqlBackend>,
    server_events: &mut whatsapp_testserver::ServerEvents,
    to: &Jid,
    text: &str,
) {
    let own = client.jid().await.unwrap().unwrap();
    let sent = client.send_text(to, text).await.unwrap();
    server_wait(server_events, "the message", |e| {
        if let ServerEvent::PrivacyTokenIssued { from, contact, .. } = e {
            assert_ne!(from.user(), own.user(), "issued again, to {contact}");
        }
        matches!(e, ServerEvent::MessageRouted { id, .. } if *id == sent.id)
    })
    .await;
}

#[tokio::test]
async fn our_privacy_token_is_issued_once_per_bucket_and_comes_back_from_the_contact() {
    let server = TestServer::start().await.unwrap();
    let mut server_events = server.subscribe();
    let alice = companion(&server, PHONE).await;
    let Companion {
        client: bob,
        events: mut bob_events,
        ..
    } = companion(&server, BOB).await;

    // The first message carries no token (none known, no NCT salt) and issues ours to Bob.
    let first = alice.client.send_text(&user(BOB), "one").await.unwrap();
    let seen = tokens_of(&mut server_events, &first.id).await;
    assert!(matches!(seen, ServerEvent::MessageRouted { .. }), "{seen:?}");
    let issued_at = match server_wait(
        &mut server_events,
        "the issued token",
        |e| matches!(e, ServerEvent::PrivacyTokenIssued { from, .. } if *from == alice.jid),
    )
    .await
    {
        ServerEvent::PrivacyTokenIssued {
            contact, timestamp, ..
        } => {
            assert!(
                contact.user() == BOB || contact.server() == Jid::LID_SERVER,
                "{contact}"
            );
            assert!((timestamp - now()).abs() < 60, "{timestamp}");
            timestamp
        }
        _ => unreachable!(),
    };
    wait_for(
        &mut bob_events,
        "Alice's token",
        |e| matches!(e, Event::PrivacyToken { from } if from.server() == Jid::LID_SERVER),
    )
    .await;

    // The same bucket: no second issue, in this process or in a new one on the same store.
    send_without_issuing(&alice.client, &mut server_events, &user(BOB), "two").await;
    let account_id = alice.client.account_id();
    alice.client.disconnect().await;
    let (restarted, _events) = whatsapp_client::Client::builder(reopen(&alice).await)
        .account(account_id)
        .server(server.url(), server.trust_root())
        .build()
        .await
        .unwrap();
    restarted.connect().await.unwrap();
    send_without_issuing(&restarted, &mut server_events, &user(BOB), "three").await;
    send_without_issuing(&restarted, &mut server_events, &user(BOB), "four").await;

    // Bob sends our token back when he writes to us.
    let reply = bob.send_text(&user(PHONE), "hi").await.unwrap();
    match tokens_of(&mut server_events, &reply.id).await {
        ServerEvent::PrivacyTokenAttached { token, .. } => {
            assert_eq!(token, format!("tctoken:{PHONE}:{BOB}:{issued_at}").as_bytes())
        }
        other => panic!("no token came back: {other:?}"),
    }
    restarted.disconnect().await;
    bob.disconnect().await;
}

#[tokio::test]
async fn without_a_token_a_cstoken_derived_from_the_history_salt_is_attached() {
    use hmac::Mac;
    let server = TestServer::start().await.unwrap();
    let mut server_events = server.subscribe();
    let phone = server.add_phone(PHONE);
    let Companion {
        client: alice,
        events: mut alice_events,
        jid: alice_device,
        ..
    } = companion(&server, PHONE).await;
    let _bob = companion(&server, BOB).await;
    let bob_lid = server.add_phone(BOB).lid().to_non_ad();

    let salt = [0x5a; 32];
    let history = whatsapp_proto::history_sync::HistorySync {
        sync_type: 0,
        nct_salt: Some(salt.to_vec()),
        phone_number_to_lid_mappings: vec![whatsapp_proto::history_sync::PhoneNumberToLidMapping {
            pn_jid: Some(user(BOB).to_string()),
            lid_jid: Some(bob_lid.to_string()),
        }],
        ..Default::default()
    };
    phone.send_history_sync(&alice_device, &history).unwrap();
    match wait_for(&mut alice_events, "the history", |e| {
        matches!(e, Event::HistorySynced { .. } | Event::HistorySyncError { .. })
    })
    .await
    {
        Event::HistorySynced { .. } => {}
        other => panic!("history sync failed: {other:?}"),
    }

    let sent = alice.send_text(&user(BOB), "one").await.unwrap();
    let mut mac = <hmac::Hmac<sha2::Sha256> as Mac>::new_from_slice(&salt).unwrap();
    mac.update(format!("{}@lid", bob_lid.user()).as_bytes());
    match tokens_of(&mut server_events, &sent.id).await {
        ServerEvent::CsTokenAttached { token, .. } => {
            assert_eq!(token, mac.finalize().into_bytes().to_vec())
        }
        other => panic!("no cstoken: {other:?}"),
    }
    alice.disconnect().await;
}

#[tokio::test]
async fn an_incoming_call_is_reported_acked_and_rejected() {
    let server = TestServer::start().await.unwrap();
    server.add_phone(PHONE);
    let mut server_events = server.subscribe();
    let Companion {
        client: bob,
        events: mut bob_events,
        jid: bob_device,
        ..
    } = companion(&server, BOB).await;

    assert_eq!(server.place_call(PHONE, BOB, "CALL-1"), 1);
    let call = match wait_for(&mut bob_events, "the call offer", |e| {
        matches!(e, Event::CallOffer { .. })
    })
    .await
    {
        Event::CallOffer { call, platform, .. } => {
            assert_eq!(platform.as_deref(), Some("android"));
            call
        }
        _ => unreachable!(),
    };
    assert_eq!(call.call_id, "CALL-1");
    assert_eq!(call.call_creator.user(), PHONE);
    server_wait(
        &mut server_events,
        "the call's ack",
        |e| matches!(e, ServerEvent::Acked { device, class, .. } if *device == bob_device && class == "call"),
    )
    .await;

    bob.reject_call(&call.call_creator, &call.call_id).await.unwrap();
    match server_wait(&mut server_events, "the rejection", |e| {
        matches!(e, ServerEvent::CallRejected { .. })
    })
    .await
    {
        ServerEvent::CallRejected {
            device,
            call_id,
            call_creator,
        } => {
            assert_eq!(device, bob_device);
            assert_eq!(call_id, "CALL-1");
            assert_eq!(call_creator, user(PHONE));
        }
        _ => unreachable!(),
    }
}

#[tokio::test]
async fn business_profiles_are_read_and_ordinary_accounts_have_none() {
    use whatsapp_testserver::{BusinessDay, BusinessInfo};
    let server = TestServer::start().await.unwrap();
    let Companion { client: alice, .. } = companion(&server, PHONE).await;
    let Companion { client: bob, .. } = companion(&server, BOB).await;

    // Bob is not a business (yet).
    assert_eq!(alice.business_profile(&user(BOB)).await.unwrap(), None);

    server.set_business_profile(
        BOB,
        Some(BusinessInfo {
            address: "1 Harbour Road".into(),
            email: "bob@bakery.example".into(),
            description: "Bread since 1990".into(),
            websites: vec!["https://bakery.example".into()],
            categories: vec![("133436743388217".into(), "Bakery".into())],
            time_zone: "Europe/Berlin".into(),
            hours: vec![
                BusinessDay {
                    day_of_week: "mon".into(),
                    mode: "specific_hours".into(),
                    open_time: 420,
                    close_time: 1080,
                },
                BusinessDay {
                    day_of_week: "sun".into(),
                    mode: "appointment_only".into(),
                    open_time: 0,
                    close_time: 0,
                },
            ],
        }),
    );
    let profile = alice
        .business_profile(&user(BOB))
        .await
        .unwrap()
        .expect("Bob is a business now");
    assert_eq!(profile.jid, user(BOB));
    assert_eq!(profile.address, "1 Harbour Road");
    assert_eq!(profile.email, "bob@bakery.example");
    assert_eq!(profile.description, "Bread since 1990");
    assert_eq!(profile.websites, ["https://bakery.example"]);
    assert_eq!(
        profile
            .categories
            .iter()
            .map(|c| (c.id.as_str(), c.name.as_str()))
            .collect::<Vec<_>>(),
        [("133436743388217", "Bakery")]
    );
    assert_eq!(profile.hours_time_zone, "Europe/Berlin");
    assert_eq!(profile.hours.len(), 2);
    assert_eq!(
        (
            profile.hours[0].day_of_week.as_str(),
            profile.hours[0].mode.as_str(),
            profile.hours[0].open_time.as_str(),
            profile.hours[0].close_time.as_str()
        ),
        ("mon", "specific_hours", "420", "1080")
    );
    // A business reads its own profile too.
    assert_eq!(bob.business_profile(&user(BOB)).await.unwrap(), Some(profile));

    // An account unknown to the server is refused, as WhatsApp refuses it.
    assert!(matches!(
        alice.business_profile(&user("15550009999")).await,
        Err(ClientError::Iq { code: 404, .. })
    ));

    server.set_business_profile(BOB, None);
    assert_eq!(alice.business_profile(&user(BOB)).await.unwrap(), None);
}
