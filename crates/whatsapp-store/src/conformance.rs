//! The conformance suite: one async function every backend's tests call, checking every trait method
//! (single and batch operations, ordering, deletes, account isolation, transactions and leases).
//!
//! The suite panics (with `assert!`) on the first difference, like any test; it expects a fresh, empty backend.

// This module is test code shipped for other crates' tests: failing loudly is its purpose.
#![allow(clippy::expect_used, clippy::panic)]

use whatsapp_binary::Jid;

use crate::{
    AccountId, AccountStore, AppStateSyncKey, AppStateVersion, Backend, BufferedEvent, ChatSettings, Contact,
    ContactName, Device, KeyPairBytes, LidMapping, MessageSecret, MutationMac, PreKey, PreKeyStore,
    PrivacyToken, SessionStore, SignedPreKey, StoreError, StoreTransaction,
};

/// A deterministic device record whose every field depends on `seed` (for tests and benchmarks).
pub fn sample_device(seed: u8) -> Device {
    let pair = |tag: u8| KeyPairBytes {
        public: [tag ^ seed; 32],
        private: [tag.wrapping_add(seed); 32],
    };
    Device {
        noise_key: pair(1),
        identity_key: pair(2),
        registration_id: 0xF000_0000 | u32::from(seed),
        signed_prekey: SignedPreKey {
            id: 1,
            key_pair: pair(3),
            signature: [seed; 64],
        },
        adv_secret: [seed ^ 0x5A; 32],
        jid: None,
        lid: None,
        account_identity: None,
        platform: String::new(),
        business_name: String::new(),
        push_name: format!("device {seed}"),
    }
}

/// A deterministic prekey with `id`.
pub fn sample_prekey(id: u32) -> PreKey {
    let b = id.to_le_bytes();
    PreKey {
        id,
        key_pair: KeyPairBytes {
            public: [b[0]; 32],
            private: [b[1] ^ 0xFF; 32],
        },
        uploaded: false,
    }
}

/// Runs the whole suite against a fresh, empty backend.
pub async fn run<B: Backend>(backend: &B) {
    accounts(backend).await;
    let a = backend
        .create_account(&sample_device(10))
        .await
        .expect("create a");
    let b = backend
        .create_account(&sample_device(11))
        .await
        .expect("create b");
    identities(&a, &b).await;
    sessions(&a, &b).await;
    prekeys(&a, &b).await;
    sender_keys(&a, &b).await;
    app_state_keys(&a, &b).await;
    app_state(&a, &b).await;
    event_buffer(&a, &b).await;
    transactions(&a).await;
    contacts(&a, &b).await;
    chat_settings(&a, &b).await;
    secrets(&a, &b).await;
    lid_map(backend).await;
    leases(backend, a.id()).await;
    // Deleting an account removes all its data and leaves the other one alone.
    backend.delete_account(a.id()).await.expect("delete a");
    assert!(matches!(
        backend.open_account(a.id()).await,
        Err(StoreError::AccountNotFound(_))
    ));
    assert!(matches!(
        a.session("s:1").await,
        Err(StoreError::AccountNotFound(_)) | Ok(None)
    ));
    assert_eq!(
        b.session("100:1").await.expect("b session"),
        Some(b"b-session".to_vec())
    );
    // A new account never reuses the data of a deleted one.
    let c = backend
        .create_account(&sample_device(12))
        .await
        .expect("create c");
    assert_eq!(c.session("100:1").await.expect("c session"), None);
    assert_eq!(c.uploaded_prekey_count().await.expect("c count"), 0);
}

async fn accounts<B: Backend>(backend: &B) {
    assert!(backend.accounts().await.expect("accounts").is_empty());
    let d1 = sample_device(1);
    let a1 = backend.create_account(&d1).await.expect("create");
    let a2 = backend.create_account(&sample_device(2)).await.expect("create");
    assert_ne!(a1.id(), a2.id());
    assert_eq!(backend.accounts().await.expect("accounts"), {
        let mut v = vec![a1.id(), a2.id()];
        v.sort();
        v
    });
    assert_eq!(a1.device().await.expect("device"), d1);
    // Pairing fills in the identity; the JID then finds the account.
    let mut paired = sample_device(1);
    paired.jid = Some(Jid::with_device("15551234567", Jid::DEFAULT_USER_SERVER, 7));
    paired.lid = Some(Jid::with_device("98765432101234", Jid::LID_SERVER, 7));
    paired.account_identity = Some(vec![1, 2, 3, 4]);
    paired.platform = "android".into();
    paired.business_name = "Shop".into();
    paired.push_name = "Ann".into();
    paired.registration_id = u32::MAX;
    a2.put_device(&paired).await.expect("put device");
    assert_eq!(a2.device().await.expect("device"), paired);
    let reopened = backend.open_account(a2.id()).await.expect("open");
    assert_eq!(reopened.device().await.expect("device"), paired);
    assert_eq!(
        backend
            .account_for_jid(&Jid::with_device("15551234567", Jid::DEFAULT_USER_SERVER, 7))
            .await
            .expect("find"),
        Some(a2.id())
    );
    assert_eq!(
        backend
            .account_for_jid(&Jid::with_device("15551234567", Jid::DEFAULT_USER_SERVER, 8))
            .await
            .expect("find"),
        None
    );
    assert!(matches!(
        backend.open_account(AccountId(i64::MAX)).await,
        Err(StoreError::AccountNotFound(_))
    ));
    backend.delete_account(a1.id()).await.expect("delete");
    backend.delete_account(a2.id()).await.expect("delete");
    assert!(backend.accounts().await.expect("accounts").is_empty());
}

async fn identities<A: AccountStore>(a: &A, b: &A) {
    assert_eq!(a.identity("100:1").await.expect("get"), None);
    for (address, byte) in [
        ("100:1", 1),
        ("100:2", 2),
        ("1000:1", 3),
        ("100_1:1", 4),
        ("200:0", 5),
    ] {
        a.put_identity(address, &[byte; 32]).await.expect("put");
    }
    b.put_identity("100:1", &[9; 32]).await.expect("put b");
    a.put_identity("100:2", &[6; 32]).await.expect("replace");
    assert_eq!(a.identity("100:1").await.expect("get"), Some([1; 32]));
    assert_eq!(a.identity("100:2").await.expect("get"), Some([6; 32]));
    assert_eq!(b.identity("100:1").await.expect("get b"), Some([9; 32]));
    a.delete_identity("200:0").await.expect("delete");
    assert_eq!(a.identity("200:0").await.expect("get"), None);
    // `user:*` only: not `1000:*` and not the agent address `100_1:*`.
    assert_eq!(
        a.user_identities("100").await.expect("list"),
        vec![("100:1".to_owned(), [1; 32]), ("100:2".to_owned(), [6; 32])]
    );
    assert_eq!(
        a.user_identities("100_1").await.expect("list agent"),
        vec![("100_1:1".to_owned(), [4; 32])]
    );
    // An underscore is not a wildcard: `10_:` matches nothing.
    assert!(a.user_identities("10_").await.expect("list").is_empty());
    assert_eq!(
        b.user_identities("100").await.expect("list b"),
        vec![("100:1".to_owned(), [9; 32])]
    );
    assert_eq!(a.delete_all_identities("100").await.expect("delete all"), 2);
    assert_eq!(a.identity("100:1").await.expect("get"), None);
    assert_eq!(a.identity("1000:1").await.expect("get"), Some([3; 32]));
    assert_eq!(a.identity("100_1:1").await.expect("get"), Some([4; 32]));
    assert_eq!(b.identity("100:1").await.expect("get b"), Some([9; 32]));
}

async fn sessions<A: AccountStore>(a: &A, b: &A) {
    assert_eq!(a.session("100:1").await.expect("get"), None);
    a.put_session("100:1", b"one").await.expect("put");
    a.put_session("100:1", b"one-v2").await.expect("replace");
    b.put_session("100:1", b"b-session").await.expect("put b");
    assert_eq!(a.session("100:1").await.expect("get"), Some(b"one-v2".to_vec()));
    let batch: Vec<(String, Vec<u8>)> = (0..300)
        .map(|i| {
            (
                format!("{}:{}", 500 + i / 10, i % 10),
                format!("s{i}").into_bytes(),
            )
        })
        .collect();
    a.put_sessions(&batch).await.expect("put many");
    a.put_sessions(&[]).await.expect("put none");
    let mut wanted: Vec<String> = batch.iter().map(|(k, _)| k.clone()).collect();
    wanted.push("999:9".into());
    wanted.push("100:1".into());
    let got = a.sessions(&wanted).await.expect("get many");
    assert_eq!(got.len(), 301);
    for (k, v) in &batch {
        assert_eq!(got.get(k), Some(v));
    }
    assert!(!got.contains_key("999:9"));
    assert!(a.sessions(&[]).await.expect("get none").is_empty());
    assert!(b.sessions(&wanted[..5]).await.expect("b many").is_empty());
    a.delete_session("500:0").await.expect("delete");
    assert_eq!(a.session("500:0").await.expect("get"), None);
    let of_501 = a.user_sessions("501").await.expect("list");
    assert_eq!(of_501.len(), 10);
    assert_eq!(of_501[3], ("501:3".to_owned(), b"s13".to_vec()));
    assert!(a.user_sessions("50").await.expect("list prefix").is_empty());
    assert!(b.user_sessions("501").await.expect("list b").is_empty());
    assert_eq!(a.delete_all_sessions("501").await.expect("delete all"), 10);
    assert_eq!(a.session("501:3").await.expect("get"), None);
    assert_eq!(a.session("502:3").await.expect("get"), Some(b"s23".to_vec()));
    assert_eq!(
        b.session("100:1").await.expect("get b"),
        Some(b"b-session".to_vec())
    );
}

async fn prekeys<A: AccountStore>(a: &A, b: &A) {
    assert_eq!(a.reserve_prekey_ids(3).await.expect("reserve"), vec![1, 2, 3]);
    assert_eq!(a.reserve_prekey_ids(0).await.expect("reserve"), Vec::<u32>::new());
    let ids = a.reserve_prekey_ids(50).await.expect("reserve");
    assert_eq!(ids, (4..54).collect::<Vec<u32>>());
    // Accounts have their own counters.
    assert_eq!(b.reserve_prekey_ids(2).await.expect("reserve b"), vec![1, 2]);
    let keys: Vec<PreKey> = (1..54).map(sample_prekey).collect();
    a.put_prekeys(&keys).await.expect("put many");
    assert_eq!(a.prekey(7).await.expect("get"), Some(sample_prekey(7)));
    assert_eq!(a.prekey(54).await.expect("get"), None);
    assert_eq!(b.prekey(7).await.expect("get b"), None);
    assert_eq!(a.uploaded_prekey_count().await.expect("count"), 0);
    let pending = a.pending_prekeys(5).await.expect("pending");
    assert_eq!(
        pending.iter().map(|p| p.id).collect::<Vec<_>>(),
        vec![1, 2, 3, 4, 5]
    );
    a.mark_prekeys_uploaded(&(1..=50).collect::<Vec<u32>>())
        .await
        .expect("mark");
    assert_eq!(a.uploaded_prekey_count().await.expect("count"), 50);
    assert!(a.prekey(50).await.expect("get").is_some_and(|p| p.uploaded));
    let pending = a.pending_prekeys(10).await.expect("pending");
    assert_eq!(pending.iter().map(|p| p.id).collect::<Vec<_>>(), vec![51, 52, 53]);
    a.remove_prekey(2).await.expect("remove");
    a.remove_prekey(2).await.expect("remove twice");
    assert_eq!(a.prekey(2).await.expect("get"), None);
    assert_eq!(a.uploaded_prekey_count().await.expect("count"), 49);
}

async fn sender_keys<A: AccountStore>(a: &A, b: &A) {
    let group = "120363000000000001@g.us";
    assert_eq!(a.sender_key(group, "100:1").await.expect("get"), None);
    a.put_sender_key(group, "100:1", b"k1").await.expect("put");
    a.put_sender_key(group, "100:2", b"k2").await.expect("put");
    a.put_sender_key(group, "100:1", b"k1-v2").await.expect("replace");
    assert_eq!(
        a.sender_key(group, "100:1").await.expect("get"),
        Some(b"k1-v2".to_vec())
    );
    assert_eq!(a.sender_key("other@g.us", "100:1").await.expect("get"), None);
    assert_eq!(b.sender_key(group, "100:1").await.expect("get b"), None);
    a.put_sender_key("other@g.us", "100:5", b"k5").await.expect("put");
    a.put_sender_key(group, "1000:1", b"k10").await.expect("put");
    assert_eq!(
        a.user_sender_keys("100").await.expect("list"),
        vec![
            (group.to_owned(), "100:1".to_owned(), b"k1-v2".to_vec()),
            (group.to_owned(), "100:2".to_owned(), b"k2".to_vec()),
            ("other@g.us".to_owned(), "100:5".to_owned(), b"k5".to_vec()),
        ]
    );
    assert!(b.user_sender_keys("100").await.expect("list b").is_empty());
    a.delete_sender_key(group, "100:1").await.expect("delete");
    assert_eq!(a.sender_key(group, "100:1").await.expect("get"), None);

    // Who holds our sender key: added in any order, repeated ids kept once, listed sorted, per group and account.
    assert!(
        a.sender_key_recipients(group)
            .await
            .expect("recipients")
            .is_empty()
    );
    let devices = |list: &[&str]| list.iter().map(|d| (*d).to_owned()).collect::<Vec<_>>();
    a.add_sender_key_recipients(group, &devices(&["200:3@s.whatsapp.net", "200:1@s.whatsapp.net"]))
        .await
        .expect("add");
    a.add_sender_key_recipients(group, &devices(&["200:1@s.whatsapp.net", "300:0@lid"]))
        .await
        .expect("add again");
    assert_eq!(
        a.sender_key_recipients(group).await.expect("recipients"),
        devices(&["200:1@s.whatsapp.net", "200:3@s.whatsapp.net", "300:0@lid"])
    );
    a.add_sender_key_recipients(group, &[])
        .await
        .expect("add nothing");
    assert!(
        a.sender_key_recipients("other@g.us")
            .await
            .expect("other group")
            .is_empty()
    );
    assert!(
        b.sender_key_recipients(group)
            .await
            .expect("other account")
            .is_empty()
    );
    a.clear_sender_key_recipients(group).await.expect("clear");
    assert!(a.sender_key_recipients(group).await.expect("cleared").is_empty());
    assert_eq!(
        a.sender_key(group, "100:2").await.expect("get"),
        Some(b"k2".to_vec())
    );
}

fn app_key(id: u8, timestamp: i64) -> AppStateSyncKey {
    AppStateSyncKey {
        id: vec![0, id],
        data: vec![id; 32],
        fingerprint: vec![id, 1, 2],
        timestamp,
    }
}

async fn app_state_keys<A: AccountStore>(a: &A, b: &A) {
    assert_eq!(a.latest_app_state_sync_key_id().await.expect("latest"), None);
    assert!(a.app_state_sync_keys().await.expect("all").is_empty());
    for k in [app_key(3, 200), app_key(1, 300), app_key(2, 100), app_key(4, 300)] {
        a.put_app_state_sync_key(&k).await.expect("put");
    }
    assert_eq!(
        a.app_state_sync_key(&[0, 2]).await.expect("get"),
        Some(app_key(2, 100))
    );
    assert_eq!(a.app_state_sync_key(&[0, 9]).await.expect("get"), None);
    assert_eq!(
        a.latest_app_state_sync_key_id().await.expect("latest"),
        Some(vec![0, 4])
    );
    let all = a.app_state_sync_keys().await.expect("all");
    assert_eq!(all.iter().map(|k| k.id[1]).collect::<Vec<_>>(), vec![2, 3, 1, 4]);
    a.put_app_state_sync_key(&app_key(2, 400)).await.expect("replace");
    assert_eq!(
        a.latest_app_state_sync_key_id().await.expect("latest"),
        Some(vec![0, 2])
    );
    assert_eq!(b.latest_app_state_sync_key_id().await.expect("latest b"), None);
}

async fn app_state<A: AccountStore>(a: &A, b: &A) {
    let v1 = AppStateVersion {
        version: 7,
        hash: [7; 128],
    };
    let v2 = AppStateVersion {
        version: u64::from(u32::MAX) + 5,
        hash: [8; 128],
    };
    assert_eq!(a.app_state_version("regular").await.expect("get"), None);
    a.put_app_state_version("regular", &v1).await.expect("put");
    a.put_app_state_version("critical_block", &v1).await.expect("put");
    assert_eq!(
        a.app_state_version("regular").await.expect("get"),
        Some(v1.clone())
    );
    a.put_app_state_version("regular", &v2).await.expect("replace");
    assert_eq!(a.app_state_version("regular").await.expect("get"), Some(v2));
    assert_eq!(b.app_state_version("regular").await.expect("get b"), None);
    let macs: Vec<MutationMac> = (0..500u16)
        .map(|i| {
            let [x, y] = i.to_be_bytes();
            let mut index_mac = [x; 32];
            index_mac[31] = y;
            MutationMac {
                index_mac,
                value_mac: [y; 32],
            }
        })
        .collect();
    a.put_mutation_macs("regular", 8, &macs).await.expect("put macs");
    a.put_mutation_macs("critical_block", 8, &macs[..3])
        .await
        .expect("put macs");
    assert_eq!(
        a.mutation_mac("regular", &macs[499].index_mac)
            .await
            .expect("get"),
        Some(macs[499].value_mac)
    );
    assert_eq!(a.mutation_mac("regular", &[0xEE; 32]).await.expect("get"), None);
    // A newer value of the same index replaces the old one.
    let newer = MutationMac {
        index_mac: macs[0].index_mac,
        value_mac: [0xAB; 32],
    };
    a.put_mutation_macs("regular", 9, &[newer])
        .await
        .expect("replace mac");
    assert_eq!(
        a.mutation_mac("regular", &macs[0].index_mac).await.expect("get"),
        Some([0xAB; 32])
    );
    a.delete_mutation_macs("regular", &[macs[1].index_mac, macs[2].index_mac])
        .await
        .expect("delete macs");
    assert_eq!(
        a.mutation_mac("regular", &macs[1].index_mac).await.expect("get"),
        None
    );
    assert_eq!(
        a.mutation_mac("regular", &macs[3].index_mac).await.expect("get"),
        Some(macs[3].value_mac)
    );
    assert_eq!(
        a.mutation_mac("critical_block", &macs[1].index_mac)
            .await
            .expect("get"),
        Some(macs[1].value_mac)
    );
    assert_eq!(
        b.mutation_mac("regular", &macs[3].index_mac)
            .await
            .expect("get b"),
        None
    );
    a.delete_app_state_version("regular")
        .await
        .expect("delete collection");
    assert_eq!(a.app_state_version("regular").await.expect("get"), None);
    assert_eq!(
        a.mutation_mac("regular", &macs[3].index_mac).await.expect("get"),
        None
    );
    assert_eq!(
        a.app_state_version("critical_block").await.expect("get"),
        Some(v1)
    );
    assert_eq!(
        a.mutation_mac("critical_block", &macs[1].index_mac)
            .await
            .expect("get"),
        Some(macs[1].value_mac)
    );
}

async fn event_buffer<A: AccountStore>(a: &A, b: &A) {
    let e1 = BufferedEvent {
        plaintext: Some(b"hello".to_vec()),
        server_timestamp: 1_700_000_000_000,
        insert_time: 1000,
    };
    let e2 = BufferedEvent {
        plaintext: None,
        server_timestamp: 1_700_000_000_001,
        insert_time: 2000,
    };
    assert_eq!(a.buffered_event(&[1; 32]).await.expect("get"), None);
    a.put_buffered_event(&[1; 32], &e1).await.expect("put");
    a.put_buffered_event(&[2; 32], &e2).await.expect("put");
    assert_eq!(a.buffered_event(&[1; 32]).await.expect("get"), Some(e1.clone()));
    assert_eq!(b.buffered_event(&[1; 32]).await.expect("get b"), None);
    // The same hash in another account keeps its plaintext; an unknown hash is ignored; an empty list is a no-op.
    b.put_buffered_event(&[1; 32], &e1).await.expect("put b");
    a.clear_buffered_plaintexts(&[]).await.expect("clear none");
    assert_eq!(a.buffered_event(&[1; 32]).await.expect("get"), Some(e1.clone()));
    a.clear_buffered_plaintexts(&[[1; 32], [9; 32]])
        .await
        .expect("clear");
    let cleared = BufferedEvent {
        plaintext: None,
        ..e1.clone()
    };
    assert_eq!(
        a.buffered_event(&[1; 32]).await.expect("get"),
        Some(cleared.clone())
    );
    assert_eq!(a.buffered_event(&[9; 32]).await.expect("get"), None);
    assert_eq!(b.buffered_event(&[1; 32]).await.expect("get b"), Some(e1.clone()));
    // Clearing again changes nothing.
    a.clear_buffered_plaintexts(&[[1; 32]])
        .await
        .expect("clear again");
    assert_eq!(a.buffered_event(&[1; 32]).await.expect("get"), Some(cleared));
    assert_eq!(a.delete_old_buffered_events(2000).await.expect("delete old"), 1);
    assert_eq!(a.buffered_event(&[1; 32]).await.expect("get"), None);
    assert_eq!(a.buffered_event(&[2; 32]).await.expect("get"), Some(e2));
    assert_eq!(b.delete_old_buffered_events(2000).await.expect("delete old b"), 1);

    // A long list (more than one statement's worth on the SQL backends) clears every event in it, and only those.
    let hashes: Vec<[u8; 32]> = (0u16..1200)
        .map(|i| {
            let mut hash = [0x40; 32];
            hash[..2].copy_from_slice(&i.to_be_bytes());
            hash
        })
        .collect();
    let mut tx = a.transaction().await.expect("begin");
    for hash in &hashes {
        tx.put_buffered_event(hash, &e1).await.expect("tx event");
    }
    tx.commit().await.expect("commit");
    let (kept, handled) = hashes.split_at(100);
    a.clear_buffered_plaintexts(handled).await.expect("clear many");
    for hash in [handled[0], handled[599], handled[handled.len() - 1]] {
        let event = a
            .buffered_event(&hash)
            .await
            .expect("get")
            .expect("still buffered");
        assert_eq!(event.plaintext, None);
    }
    for hash in [kept[0], kept[kept.len() - 1]] {
        let event = a
            .buffered_event(&hash)
            .await
            .expect("get")
            .expect("still buffered");
        assert_eq!(event.plaintext, e1.plaintext);
    }
    assert_eq!(
        a.delete_old_buffered_events(2000).await.expect("delete old"),
        hashes.len() as u64
    );

    let chat = Jid::new("15550001111", Jid::DEFAULT_USER_SERVER);
    let group = Jid::new("120363000000000001", Jid::GROUP_SERVER);
    assert_eq!(a.outgoing_event(&chat, "ID1").await.expect("get"), None);
    a.put_outgoing_event(&chat, "ID1", b"p1", 100).await.expect("put");
    a.put_outgoing_event(&group, "ID1", b"p2", 200)
        .await
        .expect("put");
    assert_eq!(
        a.outgoing_event(&chat, "ID1").await.expect("get"),
        Some(b"p1".to_vec())
    );
    assert_eq!(
        a.outgoing_event(&group, "ID1").await.expect("get"),
        Some(b"p2".to_vec())
    );
    assert_eq!(b.outgoing_event(&chat, "ID1").await.expect("get b"), None);
    assert_eq!(a.delete_old_outgoing_events(150).await.expect("delete old"), 1);
    assert_eq!(a.outgoing_event(&chat, "ID1").await.expect("get"), None);
    assert_eq!(
        a.outgoing_event(&group, "ID1").await.expect("get"),
        Some(b"p2".to_vec())
    );
}

async fn transactions<A: AccountStore>(a: &A) {
    let event = BufferedEvent {
        plaintext: Some(b"decrypted".to_vec()),
        server_timestamp: 5,
        insert_time: 6,
    };
    let keys: Vec<PreKey> = (900..903).map(sample_prekey).collect();
    a.put_prekeys(&keys).await.expect("put prekeys");
    a.put_session("700:1", b"old").await.expect("put");

    // Dropped: nothing persists.
    {
        let mut tx = a.transaction().await.expect("begin");
        tx.put_session("700:1", b"dropped").await.expect("tx put");
        tx.remove_prekey(900).await.expect("tx remove");
        tx.put_buffered_event(&[7; 32], &event).await.expect("tx event");
        drop(tx);
    }
    // A handled event whose clearing is folded into a transaction keeps its plaintext until that commits.
    a.put_buffered_event(&[8; 32], &event).await.expect("put");
    {
        let mut tx = a.transaction().await.expect("begin");
        tx.clear_buffered_plaintexts(&[[8; 32]]).await.expect("tx clear");
        drop(tx);
    }
    assert_eq!(
        a.buffered_event(&[8; 32]).await.expect("get"),
        Some(event.clone())
    );
    // Rolled back: nothing persists.
    let mut tx = a.transaction().await.expect("begin");
    tx.put_session("700:2", b"rolled back").await.expect("tx put");
    tx.remove_prekey(901).await.expect("tx remove");
    tx.rollback().await.expect("rollback");
    assert_eq!(a.session("700:1").await.expect("get"), Some(b"old".to_vec()));
    assert_eq!(a.session("700:2").await.expect("get"), None);
    assert!(a.prekey(900).await.expect("get").is_some());
    assert!(a.prekey(901).await.expect("get").is_some());
    assert_eq!(a.buffered_event(&[7; 32]).await.expect("get"), None);

    // Committed: everything persists.
    let mut tx = a.transaction().await.expect("begin");
    tx.put_session("700:1", b"new").await.expect("tx put");
    tx.put_identity("700:1", &[0x70; 32]).await.expect("tx identity");
    tx.put_sender_key("g@g.us", "700:1", b"sk")
        .await
        .expect("tx sender key");
    tx.remove_prekey(900).await.expect("tx remove");
    tx.put_buffered_event(&[7; 32], &event).await.expect("tx event");
    tx.clear_buffered_plaintexts(&[]).await.expect("tx clear none");
    tx.clear_buffered_plaintexts(&[[8; 32], [9; 32]])
        .await
        .expect("tx clear");
    tx.put_session("700:3", b"temp").await.expect("tx put");
    tx.delete_session("700:3").await.expect("tx delete");
    tx.put_identity("700:4", &[0x74; 32]).await.expect("tx identity");
    tx.delete_identity("700:4").await.expect("tx delete identity");
    tx.put_sender_key("g@g.us", "700:4", b"temp")
        .await
        .expect("tx sender key");
    tx.delete_sender_key("g@g.us", "700:4")
        .await
        .expect("tx delete sender key");
    tx.commit().await.expect("commit");
    assert_eq!(a.identity("700:4").await.expect("get"), None);
    assert_eq!(a.sender_key("g@g.us", "700:4").await.expect("get"), None);
    assert_eq!(a.session("700:1").await.expect("get"), Some(b"new".to_vec()));
    assert_eq!(a.session("700:3").await.expect("get"), None);
    assert_eq!(a.identity("700:1").await.expect("get"), Some([0x70; 32]));
    assert_eq!(
        a.sender_key("g@g.us", "700:1").await.expect("get"),
        Some(b"sk".to_vec())
    );
    assert_eq!(a.prekey(900).await.expect("get"), None);
    assert!(a.prekey(901).await.expect("get").is_some());
    assert_eq!(
        a.buffered_event(&[7; 32]).await.expect("get"),
        Some(event.clone())
    );
    assert_eq!(
        a.buffered_event(&[8; 32]).await.expect("get"),
        Some(BufferedEvent {
            plaintext: None,
            ..event
        })
    );
    assert_eq!(a.buffered_event(&[9; 32]).await.expect("get"), None);
}

async fn lid_map<B: Backend>(backend: &B) {
    let lid = |u: &str, d: u16| Jid::with_device(u, Jid::LID_SERVER, d);
    let pn = |u: &str, d: u16| Jid::with_device(u, Jid::DEFAULT_USER_SERVER, d);
    assert_eq!(backend.pn_for_lid(&lid("111", 0)).await.expect("get"), None);
    backend
        .put_lid_mappings(&[
            LidMapping::new(&lid("111", 0), &pn("1555", 0)),
            LidMapping::new(&lid("222", 3), &pn("1666", 3)),
        ])
        .await
        .expect("put");
    backend.put_lid_mappings(&[]).await.expect("put none");
    assert_eq!(
        backend.pn_for_lid(&lid("111", 4)).await.expect("get"),
        Some(pn("1555", 4))
    );
    assert_eq!(
        backend.lid_for_pn(&pn("1666", 0)).await.expect("get"),
        Some(lid("222", 0))
    );
    // Re-mapping a LID drops its old phone number, and re-mapping a phone number drops its old LID.
    backend
        .put_lid_mappings(&[LidMapping::new(&lid("111", 0), &pn("1777", 0))])
        .await
        .expect("remap lid");
    assert_eq!(backend.lid_for_pn(&pn("1555", 0)).await.expect("get"), None);
    assert_eq!(
        backend.pn_for_lid(&lid("111", 0)).await.expect("get"),
        Some(pn("1777", 0))
    );
    backend
        .put_lid_mappings(&[LidMapping::new(&lid("333", 0), &pn("1666", 0))])
        .await
        .expect("remap pn");
    assert_eq!(backend.pn_for_lid(&lid("222", 0)).await.expect("get"), None);
    let many = backend
        .lids_for_pns(&["1777".into(), "1666".into(), "1555".into(), "1666".into()])
        .await
        .expect("many");
    assert_eq!(
        many,
        vec![
            LidMapping {
                lid: "111".into(),
                pn: "1777".into()
            },
            LidMapping {
                lid: "333".into(),
                pn: "1666".into()
            }
        ]
    );
}

async fn leases<B: Backend>(backend: &B, account: AccountId) {
    let l1 = backend
        .acquire_lease(account, "proc-1", 1000, 500)
        .await
        .expect("acquire");
    assert_eq!(l1.expires_at_ms, 1500);
    match backend.acquire_lease(account, "proc-2", 1200, 500).await {
        Err(StoreError::LeaseHeld {
            owner, expires_at_ms, ..
        }) => {
            assert_eq!((owner.as_str(), expires_at_ms), ("proc-1", 1500));
        }
        other => panic!("second owner must be refused, got {other:?}"),
    }
    // The holder may acquire again (a restart with the same owner id) and renew.
    let l1 = backend
        .acquire_lease(account, "proc-1", 1300, 500)
        .await
        .expect("re-acquire");
    let l1 = backend.renew_lease(&l1, 1400, 1000).await.expect("renew");
    assert_eq!(l1.expires_at_ms, 2400);
    assert!(backend.acquire_lease(account, "proc-2", 2399, 500).await.is_err());
    // Once expired, another owner takes it, and the old owner can no longer renew.
    let l2 = backend
        .acquire_lease(account, "proc-2", 2400, 500)
        .await
        .expect("take expired");
    assert!(matches!(
        backend.renew_lease(&l1, 2450, 500).await,
        Err(StoreError::LeaseLost { .. })
    ));
    // Releasing a lost lease does nothing; releasing a held one frees the account.
    backend.release_lease(&l1).await.expect("release lost");
    assert!(backend.acquire_lease(account, "proc-3", 2500, 500).await.is_err());
    backend.release_lease(&l2).await.expect("release");
    let l3 = backend
        .acquire_lease(account, "proc-3", 2500, 500)
        .await
        .expect("acquire released");
    backend.release_lease(&l3).await.expect("release");
}

async fn contacts<A: AccountStore>(a: &A, b: &A) {
    let jid = |n: u32| Jid::new(format!("1555000{n:04}"), Jid::DEFAULT_USER_SERVER);
    assert_eq!(a.contact(&jid(1)).await.expect("get"), None);
    assert_eq!(
        a.put_push_name(&jid(1), "Ann").await.expect("push"),
        Some(String::new())
    );
    assert_eq!(a.put_push_name(&jid(1), "Ann").await.expect("push same"), None);
    assert_eq!(
        a.put_push_name(&jid(1), "Anna").await.expect("push new"),
        Some("Ann".into())
    );
    assert_eq!(
        a.put_business_name(&jid(2), "Shop").await.expect("business"),
        Some(String::new())
    );
    let names: Vec<ContactName> = (0..400)
        .map(|n| ContactName {
            jid: jid(n),
            first_name: format!("F{n}"),
            full_name: format!("F{n} L"),
        })
        .collect();
    a.put_contact_names(&names).await.expect("names");
    let one = a.contact(&jid(1)).await.expect("get").expect("contact 1");
    assert_eq!(
        one,
        Contact {
            jid: jid(1),
            first_name: "F1".into(),
            full_name: "F1 L".into(),
            push_name: "Anna".into(),
            business_name: String::new()
        }
    );
    assert_eq!(
        a.contact(&jid(2)).await.expect("get").map(|c| c.business_name),
        Some("Shop".into())
    );
    let all = a.contacts().await.expect("all");
    assert_eq!(all.len(), 400);
    assert!(
        all.windows(2)
            .all(|w| w[0].jid.to_string() < w[1].jid.to_string()),
        "ordered by JID"
    );
    assert!(b.contacts().await.expect("b all").is_empty());
}

async fn chat_settings<A: AccountStore>(a: &A, b: &A) {
    let chat = Jid::new("120363000000000009", Jid::GROUP_SERVER);
    assert_eq!(a.chat_settings(&chat).await.expect("get"), None);
    a.put_pinned(&chat, true).await.expect("pin");
    assert_eq!(
        a.chat_settings(&chat).await.expect("get"),
        Some(ChatSettings {
            muted_until: 0,
            pinned: true,
            archived: false
        })
    );
    a.put_muted_until(&chat, -1).await.expect("mute");
    a.put_archived(&chat, true).await.expect("archive");
    a.put_pinned(&chat, false).await.expect("unpin");
    assert_eq!(
        a.chat_settings(&chat).await.expect("get"),
        Some(ChatSettings {
            muted_until: -1,
            pinned: false,
            archived: true
        })
    );
    assert_eq!(b.chat_settings(&chat).await.expect("get b"), None);
}

async fn secrets<A: AccountStore>(a: &A, b: &A) {
    let chat = Jid::new("120363000000000009", Jid::GROUP_SERVER);
    let sender = Jid::new("15550001111", Jid::DEFAULT_USER_SERVER);
    let secret = |id: &str, byte: u8| MessageSecret {
        chat: chat.clone(),
        sender: sender.clone(),
        id: id.into(),
        secret: vec![byte; 32],
    };
    a.put_message_secrets(&[secret("M1", 1), secret("M2", 2)])
        .await
        .expect("put");
    a.put_message_secrets(&[secret("M1", 9)])
        .await
        .expect("put again");
    a.put_message_secrets(&[]).await.expect("put none");
    assert_eq!(
        a.message_secret(&chat, &sender, "M1").await.expect("get"),
        Some(vec![1; 32])
    );
    assert_eq!(
        a.message_secret(&chat, &sender, "M2").await.expect("get"),
        Some(vec![2; 32])
    );
    assert_eq!(a.message_secret(&chat, &chat, "M2").await.expect("get"), None);
    assert_eq!(b.message_secret(&chat, &sender, "M1").await.expect("get b"), None);

    let token = |user: &str, ts: i64| PrivacyToken {
        user: Jid::new(user, Jid::DEFAULT_USER_SERVER),
        token: user.as_bytes().to_vec(),
        timestamp: ts,
    };
    a.put_privacy_tokens(&[token("1555", 100), token("1666", 200)])
        .await
        .expect("put tokens");
    a.put_privacy_tokens(&[token("1555", 300)])
        .await
        .expect("replace token");
    assert_eq!(a.privacy_token(&sender).await.expect("get"), None);
    assert_eq!(
        a.privacy_token(&Jid::new("1555", Jid::DEFAULT_USER_SERVER))
            .await
            .expect("get"),
        Some(token("1555", 300))
    );
    assert_eq!(a.delete_expired_privacy_tokens(250).await.expect("expire"), 1);
    assert_eq!(
        a.privacy_token(&Jid::new("1666", Jid::DEFAULT_USER_SERVER))
            .await
            .expect("get"),
        None
    );
    assert_eq!(
        b.privacy_token(&Jid::new("1555", Jid::DEFAULT_USER_SERVER))
            .await
            .expect("get b"),
        None
    );

    let contact = Jid::new("777", Jid::LID_SERVER);
    assert_eq!(a.issued_privacy_token(&contact).await.expect("issued"), None);
    a.put_issued_privacy_token(&contact, 1_000).await.expect("issue");
    a.put_issued_privacy_token(&contact, 2_000)
        .await
        .expect("reissue");
    assert_eq!(
        a.issued_privacy_token(&contact).await.expect("issued"),
        Some(2_000)
    );
    // Expiring received tokens leaves the issue records alone.
    a.delete_expired_privacy_tokens(i64::MAX)
        .await
        .expect("expire all");
    assert_eq!(
        a.issued_privacy_token(&contact).await.expect("issued"),
        Some(2_000)
    );
    assert_eq!(b.issued_privacy_token(&contact).await.expect("issued b"), None);

    assert_eq!(a.nct_salt().await.expect("salt"), None);
    a.put_nct_salt(&[1; 32]).await.expect("put salt");
    a.put_nct_salt(&[2; 32]).await.expect("replace salt");
    assert_eq!(a.nct_salt().await.expect("salt"), Some(vec![2; 32]));
    assert_eq!(b.nct_salt().await.expect("salt b"), None);
}
