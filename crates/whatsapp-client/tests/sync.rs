//! End to end: what the phone shares with its companions and what companions of one account keep in step:
//! app-state keys, collections synced from scratch and kept up to date between two companions (mute, pin, push
//! name, and concurrent changes), recovery from a state that no longer verifies, and history sync of 10,000
//! messages read one conversation at a time. Real sockets, SQLite stores.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::*;
use whatsapp_client::appstate::{Action, CollectionName, PatchInfo};
use whatsapp_client::sql::SqlBackend;
use whatsapp_client::store::{
    AccountStore, AppStateKeyStore, AppStateStore, AppStateVersion, Backend, ChatSettingsStore, ContactStore,
    LidStore, SecretStore,
};
use whatsapp_client::{Client, ClientBuilder, Event, Events, HistoryCounts, Jid};
use whatsapp_proto::e2e::MessageKey;
use whatsapp_proto::history_sync::{
    Conversation, HistorySync, HistorySyncMsg, PhoneNumberToLidMapping, Pushname, WebMessageInfo,
};
use whatsapp_testserver::TestServer;

/// The account's store of `device`, opened separately from its client's.
async fn store_of(device: &Companion) -> impl AccountStore {
    let backend = reopen(device).await;
    backend.open_account(device.client.account_id()).await.unwrap()
}

const NOW: i64 = 1_700_000_000_000;

async fn synced(events: &mut Events, collection: CollectionName) -> (u64, bool) {
    match wait_for(events, "a collection synced", |e| {
        matches!(e, Event::AppStateSynced { collection: c, .. } | Event::AppStateSyncError { collection: c, .. } if *c == collection)
    })
    .await
    {
        Event::AppStateSynced { version, full_sync, .. } => (version, full_sync),
        other => panic!("{collection} did not sync: {other:?}"),
    }
}

/// Waits until every collection was synced at least once; returns the versions reached.
async fn all_synced(events: &mut Events) -> std::collections::HashMap<CollectionName, u64> {
    let mut versions = std::collections::HashMap::new();
    while versions.len() < CollectionName::ALL.len() {
        match wait_for(events, "collections synced", |e| {
            matches!(e, Event::AppStateSynced { .. } | Event::AppStateSyncError { .. })
        })
        .await
        {
            Event::AppStateSynced {
                collection, version, ..
            } => {
                versions.insert(collection, version);
            }
            other => panic!("a collection did not sync: {other:?}"),
        }
    }
    versions
}

async fn next_change(events: &mut Events) -> (Action, bool) {
    match wait_for(events, "an app-state change", |e| {
        matches!(e, Event::AppState { .. })
    })
    .await
    {
        Event::AppState {
            action,
            from_full_sync,
            ..
        } => (action, from_full_sync),
        _ => unreachable!(),
    }
}

#[tokio::test]
async fn app_state_is_shared_and_kept_in_step_between_companions() {
    app_state_round_trip(Db::Sqlite).await;
}

#[tokio::test]
async fn app_state_round_trip_with_postgresql_stores() {
    on_postgres(app_state_round_trip).await;
}

async fn app_state_round_trip(db: Db) {
    let server = TestServer::start().await.unwrap();
    let phone = server.add_phone(PHONE);
    let mut laptop = companion_in(&server, PHONE, &db).await;
    let mut desktop = companion_in(&server, PHONE, &db).await;
    let bob = user("15557654321");
    let carol = user("15550000003");

    // The phone's existing state: 25 pins and unpins (more than one page of patches), and Carol archived.
    for i in 0..25 {
        phone
            .push_app_state(&PatchInfo::pin(&bob, i % 2 == 0, NOW + i))
            .unwrap();
    }
    phone
        .push_app_state(&PatchInfo::archive(&carol, true, None, NOW))
        .unwrap();
    assert_eq!(phone.share_app_state_key().unwrap(), 2);

    for device in [&mut laptop, &mut desktop] {
        next_is_keys(&mut device.events).await;
        assert_eq!(
            all_synced(&mut device.events).await[&CollectionName::RegularLow],
            26
        );
    }
    let settings = store_of(&laptop)
        .await
        .chat_settings(&bob)
        .await
        .unwrap()
        .unwrap();
    assert!(settings.pinned, "the last of the pins wins");
    let settings = store_of(&laptop)
        .await
        .chat_settings(&carol)
        .await
        .unwrap()
        .unwrap();
    assert!(settings.archived);

    // The laptop mutes Bob: the desktop hears of it and applies it.
    laptop.client.mute_chat(&bob, true, None).await.unwrap();
    let (action, full) = next_change(&mut desktop.events).await;
    assert_eq!(
        action,
        Action::Mute {
            chat: bob.clone(),
            muted: true,
            mute_end_ms: Some(-1)
        }
    );
    assert!(!full);
    assert_eq!(
        store_of(&desktop)
            .await
            .chat_settings(&bob)
            .await
            .unwrap()
            .unwrap()
            .muted_until,
        -1
    );

    // The desktop unpins Bob: the laptop follows.
    desktop.client.pin_chat(&bob, false).await.unwrap();
    loop {
        if let (Action::Pin { chat, pinned }, false) = next_change(&mut laptop.events).await {
            assert_eq!((chat, pinned), (bob.clone(), false));
            break;
        }
    }

    // Both change the same collection at once: one of them is behind and must apply the other's change first
    // (409), then both end with both changes.
    let dave_pinned = PatchInfo::pin(&user("15550000004"), true, NOW);
    let (a, b) = tokio::join!(
        laptop.client.pin_chat(&carol, true),
        desktop.client.send_app_state(&dave_pinned),
    );
    a.unwrap();
    b.unwrap();
    for device in [&laptop, &desktop] {
        let store = store_of(device).await;
        assert!(store.chat_settings(&carol).await.unwrap().unwrap().pinned);
        let version = store
            .app_state_version("regular_low")
            .await
            .unwrap()
            .unwrap()
            .version;
        assert_eq!(version, 26 + 1 + 2);
    }
}

async fn next_is_keys(events: &mut Events) {
    wait_for(events, "app-state keys", |e| {
        matches!(e, Event::AppStateKeys { count: 1 })
    })
    .await;
}

#[tokio::test]
async fn a_state_that_no_longer_verifies_is_synced_again_from_scratch() {
    let server = TestServer::start().await.unwrap();
    let phone = server.add_phone(PHONE);
    let mut laptop = companion(&server, PHONE).await;
    let bob = user("15557654321");
    phone.push_app_state(&PatchInfo::pin(&bob, true, NOW)).unwrap();
    phone.share_app_state_key().unwrap();
    next_is_keys(&mut laptop.events).await;
    assert_eq!(
        all_synced(&mut laptop.events).await[&CollectionName::RegularLow],
        1
    );

    // The stored LTHash is damaged behind the client's back; the next patch cannot verify on top of it.
    store_of(&laptop)
        .await
        .put_app_state_version(
            "regular_low",
            &AppStateVersion {
                version: 1,
                hash: [0x5A; 128],
            },
        )
        .await
        .unwrap();
    phone
        .push_app_state(&PatchInfo::archive(&bob, true, None, NOW + 1))
        .unwrap();
    assert_eq!(
        synced(&mut laptop.events, CollectionName::RegularLow).await,
        (2, true)
    );
    let settings = store_of(&laptop)
        .await
        .chat_settings(&bob)
        .await
        .unwrap()
        .unwrap();
    // Archiving a chat also unpins it (the archive patch carries both changes).
    assert!(!settings.pinned && settings.archived, "{settings:?}");
}

#[tokio::test]
async fn a_key_the_phone_never_shared_is_asked_for_and_the_sync_resumes() {
    let server = TestServer::start().await.unwrap();
    let phone = server.add_phone(PHONE);
    let mut laptop = companion(&server, PHONE).await;
    let bob = user("15557654321");
    phone.push_app_state(&PatchInfo::pin(&bob, true, NOW)).unwrap();
    phone.share_app_state_key().unwrap();
    next_is_keys(&mut laptop.events).await;
    assert_eq!(
        all_synced(&mut laptop.events).await[&CollectionName::RegularLow],
        1
    );

    // The phone moves to a key it keeps to itself; the next two patches (one in each of two collections) use it.
    let secret = phone.rotate_app_state_key().unwrap();
    phone
        .push_app_state(&PatchInfo::archive(&bob, true, None, NOW + 1))
        .unwrap();
    phone
        .push_app_state(&PatchInfo::mute(&bob, true, None, NOW + 2))
        .unwrap();
    // The laptop cannot read them, asks the phone, gets exactly that key, and then both collections sync without
    // an error (`synced` fails on an AppStateSyncError).
    next_is_keys(&mut laptop.events).await;
    let mut reached = std::collections::HashMap::new();
    while reached.len() < 2 {
        match wait_for(&mut laptop.events, "collections synced", |e| {
            matches!(e, Event::AppStateSynced { .. } | Event::AppStateSyncError { .. })
        })
        .await
        {
            Event::AppStateSynced {
                collection,
                version,
                full_sync,
            } => {
                assert!(!full_sync);
                reached.insert(collection, version);
            }
            other => panic!("a collection did not sync: {other:?}"),
        }
    }
    assert_eq!(reached[&CollectionName::RegularLow], 2);
    assert_eq!(reached[&CollectionName::RegularHigh], 1);
    let store = store_of(&laptop).await;
    let keys = store.app_state_sync_keys().await.unwrap();
    assert!(
        keys.iter().any(|key| key.id == secret),
        "the requested key is stored"
    );
    let settings = store.chat_settings(&bob).await.unwrap().unwrap();
    assert!(settings.archived && settings.muted_until == -1, "{settings:?}");
    laptop.client.disconnect().await;
}

fn history(conversations: usize, messages: usize) -> HistorySync {
    let conversations = (0..conversations)
        .map(|c| {
            let chat = format!("1555100{c:04}@s.whatsapp.net");
            Conversation {
                id: chat.clone(),
                messages: (0..messages)
                    .map(|m| HistorySyncMsg {
                        message: Some(WebMessageInfo {
                            key: MessageKey {
                                remote_jid: Some(chat.clone()),
                                from_me: Some(m % 2 == 1),
                                id: Some(format!("M{c}X{m}")),
                                participant: None,
                            },
                            message: Some(whatsapp_client::Message {
                                conversation: Some(format!("message {m} in chat {c}")),
                                ..Default::default()
                            }),
                            message_timestamp: Some(1_700_000_000 + m as u64),
                            message_secret: (m == 0).then(|| vec![c as u8; 32]),
                            ..Default::default()
                        }),
                        msg_order_id: Some(m as u64),
                    })
                    .collect(),
                ..Default::default()
            }
        })
        .collect();
    HistorySync {
        sync_type: 0,
        conversations,
        pushnames: vec![Pushname {
            id: Some("15551000000@s.whatsapp.net".to_owned()),
            pushname: Some("Dana".to_owned()),
        }],
        phone_number_to_lid_mappings: vec![PhoneNumberToLidMapping {
            pn_jid: Some("15551000001@s.whatsapp.net".to_owned()),
            lid_jid: Some("99887766@lid".to_owned()),
        }],
        progress: Some(100),
        chunk_order: Some(1),
        ..Default::default()
    }
}

#[tokio::test]
async fn history_sync_of_ten_thousand_messages_streams_conversation_by_conversation() {
    history_of_ten_thousand_messages(Db::Sqlite).await;
}

#[tokio::test]
async fn history_sync_with_a_postgresql_store() {
    on_postgres(history_of_ten_thousand_messages).await;
}

async fn history_of_ten_thousand_messages(db: Db) {
    let server = TestServer::start().await.unwrap();
    let phone = server.add_phone(PHONE);
    let mut laptop = companion_in(&server, PHONE, &db).await;
    phone.send_history_sync(&laptop.jid, &history(100, 100)).unwrap();

    let mut conversations = Vec::new();
    let mut messages = 0;
    let counts = loop {
        match wait_for(&mut laptop.events, "history", |e| {
            matches!(
                e,
                Event::HistoryConversation(_) | Event::HistorySynced { .. } | Event::HistorySyncError { .. }
            )
        })
        .await
        {
            Event::HistoryConversation(conversation) => {
                messages += conversation.messages.len();
                conversations.push(conversation.id.clone());
            }
            Event::HistorySynced {
                sync_type,
                chunk_order,
                progress,
                counts,
            } => {
                assert_eq!((sync_type, chunk_order, progress), (0, 1, Some(100)));
                break counts;
            }
            other => panic!("history sync failed: {other:?}"),
        }
    };
    assert_eq!(messages, 10_000);
    assert_eq!(conversations.len(), 100);
    assert_eq!(conversations[0], "15551000000@s.whatsapp.net");
    assert_eq!(conversations[99], "15551000099@s.whatsapp.net");
    assert_eq!(
        (
            counts.conversations,
            counts.messages,
            counts.push_names,
            counts.lid_mappings
        ),
        (100, 10_000, 1, 1)
    );

    // What it carried besides messages is stored.
    let store = store_of(&laptop).await;
    let dana = store.contact(&user("15551000000")).await.unwrap().unwrap();
    assert_eq!(dana.push_name, "Dana");
    let backend = reopen(&laptop).await;
    assert_eq!(
        backend.lid_for_pn(&user("15551000001")).await.unwrap(),
        Some(Jid::new("99887766", Jid::LID_SERVER))
    );
    let chat = user("15551000007");
    let secret = store.message_secret(&chat, &chat, "M7X0").await.unwrap();
    assert_eq!(secret, Some(vec![7u8; 32]));
}

#[tokio::test]
async fn history_that_cannot_be_downloaded_is_reported() {
    let server = TestServer::start().await.unwrap();
    let phone = server.add_phone(PHONE);
    let mut laptop = companion(&server, PHONE).await;
    laptop.client.disconnect().await;
    phone.send_history_sync(&laptop.jid, &history(1, 1)).unwrap();
    server.forget_media();
    laptop.client.connect().await.unwrap();
    match wait_for(&mut laptop.events, "history", |e| {
        matches!(e, Event::HistorySynced { .. } | Event::HistorySyncError { .. })
    })
    .await
    {
        Event::HistorySyncError { error } => assert!(error.contains("404"), "{error}"),
        other => panic!("expected a failure, got {other:?}"),
    }
}

/// The conversations and counts of the next history sync, or its error.
async fn next_history(events: &mut Events) -> Result<(Vec<Conversation>, HistoryCounts), String> {
    let mut conversations = Vec::new();
    loop {
        match wait_for(events, "history", |e| {
            matches!(
                e,
                Event::HistoryConversation(_) | Event::HistorySynced { .. } | Event::HistorySyncError { .. }
            )
        })
        .await
        {
            Event::HistoryConversation(conversation) => conversations.push(*conversation),
            Event::HistorySynced { counts, .. } => return Ok((conversations, counts)),
            Event::HistorySyncError { error } => return Err(error),
            _ => unreachable!(),
        }
    }
}

/// A companion of `number` whose client is built with `configure`.
async fn companion_with(
    server: &TestServer,
    number: &str,
    configure: impl FnOnce(ClientBuilder<SqlBackend>) -> ClientBuilder<SqlBackend>,
) -> Companion {
    let phone = server.add_phone(number);
    let (backend, path) = sqlite().await;
    let builder = Client::builder(backend).server(server.url(), server.trust_root());
    let (client, mut events) = configure(builder).build().await.unwrap();
    let jid = pair_with(&phone, &client, &mut events).await;
    let lid = Jid::with_device(phone.lid().user(), Jid::LID_SERVER, jid.device());
    Companion {
        client,
        events,
        jid,
        lid,
        path,
    }
}

#[tokio::test]
async fn a_history_blob_above_the_spool_threshold_goes_through_a_temporary_file() {
    let server = TestServer::start().await.unwrap();
    let phone = server.add_phone(PHONE);
    let spool_dir = format!("{}/spool-{}", env!("CARGO_TARGET_TMPDIR"), std::process::id());
    let _ = std::fs::remove_dir_all(&spool_dir);
    std::fs::create_dir_all(&spool_dir).unwrap();
    let missing_dir = format!("{spool_dir}/does-not-exist");
    // The blob is tens of kibibytes compressed: 1 KiB puts it over the threshold.
    let mut in_memory = companion(&server, PHONE).await;
    let mut spooled = companion_with(&server, PHONE, |builder| {
        builder.spool_threshold(1024).spool_dir(&spool_dir)
    })
    .await;
    let mut unwritable = companion_with(&server, PHONE, |builder| {
        builder.spool_threshold(1024).spool_dir(&missing_dir)
    })
    .await;
    let sync = history(20, 50);
    for device in [&in_memory, &spooled, &unwritable] {
        phone.send_history_sync(&device.jid, &sync).unwrap();
    }

    let (expected, counts) = next_history(&mut in_memory.events).await.unwrap();
    assert_eq!((counts.conversations, counts.messages), (20, 1000));
    let (conversations, spooled_counts) = next_history(&mut spooled.events).await.unwrap();
    assert_eq!(spooled_counts, counts);
    assert!(
        conversations == expected,
        "the spooled blob decodes to the same conversations"
    );
    assert_eq!(
        std::fs::read_dir(&spool_dir).unwrap().count(),
        0,
        "the temporary file is removed once read"
    );
    // Where no file can be made the sync fails: the blob did take the file path.
    let error = next_history(&mut unwritable.events).await.unwrap_err();
    assert!(error.contains("temporary file"), "{error}");
    for device in [in_memory, spooled, unwritable] {
        device.client.disconnect().await;
    }
    std::fs::remove_dir_all(&spool_dir).unwrap();
}

async fn next_push_name(events: &mut Events) -> (String, bool) {
    match wait_for(events, "a push name setting", |e| {
        matches!(e, Event::PushNameSetting { .. })
    })
    .await
    {
        Event::PushNameSetting {
            name, from_full_sync, ..
        } => (name, from_full_sync),
        _ => unreachable!(),
    }
}

#[tokio::test]
async fn a_push_name_set_on_one_companion_reaches_the_others() {
    let server = TestServer::start().await.unwrap();
    let phone = server.add_phone(PHONE);
    let mut laptop = companion(&server, PHONE).await;
    let mut desktop = companion(&server, PHONE).await;

    // The name the phone set earlier arrives with the first (full) sync and is stored. `critical_block` is the
    // first collection synced, so no other collection's sync is skipped while waiting for it.
    phone.push_app_state(&PatchInfo::push_name("Ann", NOW)).unwrap();
    assert_eq!(phone.share_app_state_key().unwrap(), 2);
    for device in [&mut laptop, &mut desktop] {
        next_is_keys(&mut device.events).await;
        assert_eq!(next_push_name(&mut device.events).await, ("Ann".to_owned(), true));
        all_synced(&mut device.events).await;
        assert_eq!(store_of(device).await.device().await.unwrap().push_name, "Ann");
    }

    // The laptop renames the account: the desktop hears of it as a new change and stores it.
    laptop.client.set_push_name("Ann B.").await.unwrap();
    assert_eq!(
        store_of(&laptop).await.device().await.unwrap().push_name,
        "Ann B."
    );
    // The generic change comes first, then the typed event.
    let (action, full) = next_change(&mut desktop.events).await;
    assert!(!full);
    assert_eq!(
        action,
        Action::PushName {
            name: "Ann B.".into()
        }
    );
    assert_eq!(
        next_push_name(&mut desktop.events).await,
        ("Ann B.".to_owned(), false)
    );
    assert_eq!(
        store_of(&desktop).await.device().await.unwrap().push_name,
        "Ann B."
    );
}
