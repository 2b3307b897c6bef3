//! Decoding and verification against patches and snapshots built by the crate's own encoder: SET then REMOVE,
//! tampered MACs, missing keys, external blobs, and typed actions.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test helpers fail loudly")]

use whatsapp_appstate::{
    Action, AppStateError, AppStateKey, CollectionDecoder, CollectionName, CollectionState, MessageRef,
    MutationInfo, Operation, ParsedPatch, PatchBuilder, PatchInfo, decode_patches, decode_snapshot,
    parse_patch, parse_snapshot,
};
use whatsapp_binary::Jid;
use whatsapp_proto::ProtoMessage;
use whatsapp_proto::server_sync::{ExternalBlobReference, SyncdMutations, SyncdPatch};
use whatsapp_proto::sync_action::SyncActionValue;
use whatsapp_proto::sync_action::sync_action_value::{SyncActionMessageRange, UnarchiveChatsSetting};

const KEY_ID: [u8; 6] = [0, 0, 0, 1, 0, 0xa1];
const KEY_DATA: [u8; 32] = [0x53; 32];
const NOW_MS: i64 = 1_700_000_000_000;

fn lookup(id: &[u8]) -> Option<AppStateKey> {
    (id == KEY_ID).then(|| AppStateKey::new(KEY_DATA.to_vec()))
}

fn builder() -> PatchBuilder {
    PatchBuilder::new(KEY_ID.to_vec(), &AppStateKey::new(KEY_DATA.to_vec()))
}

fn jid(text: &str) -> Jid {
    text.parse().unwrap()
}

fn ivs(count: usize, seed: u8) -> Vec<[u8; 16]> {
    (0..count).map(|i| [seed.wrapping_add(i as u8); 16]).collect()
}

/// Builds a patch on top of `state`, decodes it, checks that both agree, and applies it.
fn build_and_apply(state: &mut CollectionState, info: &PatchInfo) -> whatsapp_appstate::Decoded {
    let built = builder()
        .build_patch(info, state, &ivs(info.mutations.len(), 7))
        .unwrap();
    let ParsedPatch::Complete(patch) = parse_patch(&built.to_bytes()).unwrap() else {
        panic!("inline patch expected");
    };
    let decoded = decode_patches(info.collection, state, &[patch], &lookup).unwrap();
    assert_eq!(
        decoded.update, built.update,
        "encoder and decoder agree on the new state"
    );
    state.apply(&decoded.update);
    decoded
}

#[test]
fn set_then_remove_of_the_same_index() {
    let chat = jid("15550002222@s.whatsapp.net");
    let mut state = CollectionState::new();
    let set = PatchInfo::mute(&chat, true, None, NOW_MS);
    let decoded = build_and_apply(&mut state, &set);
    assert_eq!(state.version, 1);
    assert_eq!(state.index_value_macs.len(), 1);
    let index_mac = decoded.mutations[0].index_mac;

    let mut remove = set.clone();
    remove.mutations[0].operation = Operation::Remove;
    let decoded = build_and_apply(&mut state, &remove);
    assert_eq!(decoded.mutations[0].operation, Operation::Remove);
    assert!(decoded.update.removed.contains(&index_mac));
    assert_eq!(state.version, 2);
    assert!(state.index_value_macs.is_empty());
    assert_eq!(
        state.hash,
        whatsapp_appstate::LtHash::ZERO,
        "SET then REMOVE cancels out"
    );

    // Both in one patch: the REMOVE subtracts the value MAC of the SET before it.
    let mut both = set.clone();
    both.mutations.push(remove.mutations[0].clone());
    build_and_apply(&mut state, &both);
    assert!(state.index_value_macs.is_empty());
    assert_eq!(state.hash, whatsapp_appstate::LtHash::ZERO);
}

/// Builds a two-mutation patch, tampers with it, and checks the decoder's error.
fn check_tamper(name: &str, tamper: fn(&mut SyncdPatch), expected: fn(&AppStateError) -> bool) {
    let state = CollectionState::new();
    let info = PatchInfo {
        collection: CollectionName::RegularHigh,
        mutations: vec![
            PatchInfo::star(&message_ref(), true, NOW_MS).mutations.remove(0),
            PatchInfo::mute(&jid("15550002222@s.whatsapp.net"), false, None, NOW_MS)
                .mutations
                .remove(0),
        ],
    };
    let mut patch = builder().build_patch(&info, &state, &ivs(2, 1)).unwrap().patch;
    assert!(decode_patches(info.collection, &state, std::slice::from_ref(&patch), &lookup).is_ok());
    tamper(&mut patch);
    let error = decode_patches(info.collection, &state, &[patch], &lookup).expect_err(name);
    assert!(expected(&error), "{name}: unexpected error {error:?}");
    assert!(error.to_string().contains("regular_high v"), "{name}: {error}");
}

fn flip(bytes: &mut Option<Vec<u8>>, at_end: bool) {
    let bytes = bytes.as_mut().unwrap();
    let at = if at_end { bytes.len() - 1 } else { 0 };
    bytes[at] ^= 0x01;
}

fn record(patch: &mut SyncdPatch, i: usize) -> &mut whatsapp_proto::server_sync::SyncdRecord {
    patch.mutations[i].record.as_mut().unwrap()
}

#[test]
fn tampering_is_detected() {
    use AppStateError as E;
    check_tamper(
        "value MAC",
        |p| flip(&mut record(p, 1).value.as_mut().unwrap().blob, true),
        |e| {
            matches!(
                e,
                E::ValueMacMismatch {
                    mutation: 1,
                    version: 1,
                    ..
                }
            ) && e.needs_recovery()
        },
    );
    check_tamper(
        "ciphertext",
        |p| flip(&mut record(p, 0).value.as_mut().unwrap().blob, false),
        |e| matches!(e, E::ValueMacMismatch { mutation: 0, .. }),
    );
    check_tamper(
        "operation",
        |p| p.mutations[0].operation = Some(Operation::Remove.wire_value()),
        |e| matches!(e, E::ValueMacMismatch { mutation: 0, .. }),
    );
    check_tamper(
        "index MAC",
        |p| flip(&mut record(p, 1).index.as_mut().unwrap().blob, false),
        |e| matches!(e, E::IndexMacMismatch { mutation: 1, .. }) && e.needs_recovery(),
    );
    check_tamper(
        "snapshot MAC",
        |p| flip(&mut p.snapshot_mac, false),
        |e| matches!(e, E::SnapshotMacMismatch { version: 1, .. }) && e.needs_recovery(),
    );
    check_tamper(
        "patch MAC",
        |p| flip(&mut p.patch_mac, true),
        |e| matches!(e, E::PatchMacMismatch { version: 1, .. }) && e.needs_recovery(),
    );
    check_tamper(
        "dropped mutation",
        |p| {
            p.mutations.pop();
        },
        |e| matches!(e, E::SnapshotMacMismatch { .. }),
    );
    check_tamper(
        "version",
        |p| p.version.as_mut().unwrap().version = Some(2),
        |e| matches!(e, E::SnapshotMacMismatch { version: 2, .. }),
    );
    check_tamper(
        "missing key",
        |p| record(p, 1).key_id.as_mut().unwrap().id = Some(vec![0xde, 0xad, 0xbe, 0xef]),
        |e| {
            matches!(e, E::MissingKey { key_id, version: 1, .. } if key_id == "deadbeef")
                && e.to_string().contains("deadbeef")
                && !e.needs_recovery()
        },
    );
    check_tamper(
        "short blob",
        |p| record(p, 0).value.as_mut().unwrap().blob = Some(vec![0; 40]),
        |e| matches!(e, E::MalformedMutation { mutation: 0, .. }),
    );
    check_tamper(
        "no version",
        |p| p.version = None,
        |e| matches!(e, E::MissingField { field: "version", .. }),
    );
}

#[test]
fn stale_state_is_an_lthash_mismatch() {
    let chat = jid("15550003333@s.whatsapp.net");
    let mut state = CollectionState::new();
    build_and_apply(&mut state, &PatchInfo::pin(&chat, true, NOW_MS));
    let built = builder()
        .build_patch(&PatchInfo::pin(&chat, false, NOW_MS + 1), &state, &ivs(1, 9))
        .unwrap();
    // The receiver lost the previous value MAC of the index: its LTHash no longer matches.
    let mut forgetful = state.clone();
    forgetful.index_value_macs.clear();
    let error = decode_patches(
        CollectionName::RegularLow,
        &forgetful,
        std::slice::from_ref(&built.patch),
        &lookup,
    )
    .unwrap_err();
    assert!(
        matches!(error, AppStateError::SnapshotMacMismatch { .. }),
        "{error:?}"
    );
    assert!(decode_patches(CollectionName::RegularLow, &state, &[built.patch], &lookup).is_ok());
}

#[test]
fn failed_patch_leaves_earlier_work_and_caller_state_alone() {
    let chat = jid("15550003333@s.whatsapp.net");
    let mut sender = CollectionState::new();
    let first = builder()
        .build_patch(&PatchInfo::pin(&chat, true, NOW_MS), &sender, &ivs(1, 1))
        .unwrap();
    sender.apply(&first.update);
    let mut second = builder()
        .build_patch(&PatchInfo::pin(&chat, false, NOW_MS), &sender, &ivs(1, 2))
        .unwrap()
        .patch;
    flip(&mut second.patch_mac, false);

    let receiver = CollectionState::new();
    assert!(
        decode_patches(
            CollectionName::RegularLow,
            &receiver,
            &[first.patch.clone(), second.clone()],
            &lookup
        )
        .is_err()
    );
    let mut decoder = CollectionDecoder::new(CollectionName::RegularLow, &receiver, &lookup);
    decoder.patch(&first.patch).unwrap();
    assert!(decoder.patch(&second).is_err());
    assert_eq!(decoder.version(), 1);
    let decoded = decoder.finish();
    assert_eq!(decoded.mutations.len(), 1);
    assert_eq!(decoded.update, first.update);
    assert_eq!(receiver, CollectionState::new());
}

#[test]
fn snapshot_then_patches() {
    let chats: Vec<Jid> = (0..20)
        .map(|i| jid(&format!("1555000{i:04}@s.whatsapp.net")))
        .collect();
    let records: Vec<MutationInfo> = chats
        .iter()
        .map(|chat| {
            PatchInfo::mute(chat, true, Some(NOW_MS + 1), NOW_MS)
                .mutations
                .remove(0)
        })
        .collect();
    let built = builder()
        .build_snapshot(CollectionName::RegularHigh, 5, &records, &ivs(records.len(), 3))
        .unwrap();
    let snapshot = parse_snapshot(&built.snapshot.encode_to_vec()).unwrap();

    let mut old = CollectionState::new();
    old.index_value_macs.insert([1; 32], [2; 32]);
    let mut decoder = CollectionDecoder::new(CollectionName::RegularHigh, &old, &lookup);
    decoder.snapshot(&snapshot).unwrap();
    let mut after_snapshot = CollectionState::new();
    after_snapshot.apply(&built.update);
    let unmute = builder()
        .build_patch(
            &PatchInfo::mute(&chats[3], false, None, NOW_MS + 2),
            &after_snapshot,
            &ivs(1, 4),
        )
        .unwrap();
    decoder.patch(&unmute.patch).unwrap();
    let decoded = decoder.finish();
    assert_eq!(decoded.mutations.len(), 21);
    assert!(decoded.update.replaces_all);
    assert_eq!(decoded.update.version, 6);

    let mut state = old.clone();
    state.apply(&decoded.update);
    after_snapshot.apply(&unmute.update);
    assert_eq!(state, after_snapshot);
    assert_eq!(
        decoded.mutations[20].action().unwrap(),
        Action::Mute {
            chat: chats[3].clone(),
            muted: false,
            mute_end_ms: None
        }
    );

    let mut tampered = snapshot.clone();
    flip(&mut tampered.mac, false);
    let error = decode_snapshot(CollectionName::RegularHigh, &tampered, &lookup).unwrap_err();
    assert!(
        matches!(error, AppStateError::SnapshotMacMismatch { version: 5, .. }),
        "{error:?}"
    );
    let error = decode_snapshot(CollectionName::RegularLow, &snapshot, &lookup).unwrap_err();
    assert!(
        matches!(error, AppStateError::SnapshotMacMismatch { .. }),
        "collection name is in the MAC"
    );
    let no_keys = |_: &[u8]| None;
    let error = decode_snapshot(CollectionName::RegularHigh, &snapshot, &no_keys).unwrap_err();
    assert!(matches!(&error, AppStateError::MissingKey { key_id, .. } if key_id == "0000000100a1"));
}

#[test]
fn external_mutations_come_back_as_downloads() {
    let state = CollectionState::new();
    let info = PatchInfo::push_name("Alice", NOW_MS);
    let built = builder().build_patch(&info, &state, &ivs(1, 5)).unwrap();
    let downloaded = SyncdMutations {
        mutations: built.patch.mutations.clone(),
    }
    .encode_to_vec();
    let mut remote = built.patch.clone();
    remote.mutations.clear();
    remote.external_mutations = Some(ExternalBlobReference {
        direct_path: Some("/v/t62/app-state".to_owned()),
        ..ExternalBlobReference::default()
    });
    let error = decode_patches(info.collection, &state, std::slice::from_ref(&remote), &lookup).unwrap_err();
    assert!(matches!(
        error,
        AppStateError::ExternalMutationsPending { version: 1, .. }
    ));
    let ParsedPatch::NeedsDownload(pending) = parse_patch(&remote.encode_to_vec()).unwrap() else {
        panic!("a download is needed");
    };
    assert_eq!(pending.version(), Some(1));
    assert_eq!(
        pending.blob().and_then(|b| b.direct_path.as_deref()),
        Some("/v/t62/app-state")
    );
    assert!(pending.clone().complete(&[0xff]).is_err());
    let patch = pending.complete(&downloaded).unwrap();
    let decoded = decode_patches(info.collection, &state, &[patch], &lookup).unwrap();
    assert_eq!(
        decoded.mutations[0].action().unwrap(),
        Action::PushName {
            name: "Alice".to_owned()
        }
    );
}

fn message_ref() -> MessageRef {
    MessageRef {
        chat: jid("120363025246125888@g.us"),
        id: "3EB0C0FFEE".to_owned(),
        from_me: false,
        participant: Some(jid("15550002222@s.whatsapp.net")),
    }
}

/// Encodes an action, decodes it back through a verified patch, and compares.
fn check_round_trip(action: Action, collection: CollectionName, index: &[&str]) {
    let info = PatchInfo::from_action(&action, NOW_MS).expect("encodable action");
    assert_eq!(info.collection, collection, "{action:?}");
    assert_eq!(info.mutations[0].index, index, "{action:?}");
    let mut state = CollectionState::new();
    let decoded = build_and_apply(&mut state, &info);
    assert_eq!(decoded.mutations[0].action().unwrap(), action);
    assert_eq!(
        decoded.mutations[0].value().unwrap().unwrap().timestamp,
        Some(NOW_MS)
    );
}

#[test]
fn typed_actions_round_trip() {
    let chat = jid("15550002222@s.whatsapp.net");
    let group = "120363025246125888@g.us";
    let range = Some(SyncActionMessageRange {
        last_message_timestamp: Some(1_700_000_000),
        ..SyncActionMessageRange::default()
    });
    let own = MessageRef {
        chat: chat.clone(),
        id: "3EB0AA".to_owned(),
        from_me: true,
        participant: None,
    };
    let cases = [
        (
            Action::Contact {
                jid: chat.clone(),
                full_name: Some("Bob Example".to_owned()),
                first_name: Some("Bob".to_owned()),
                lid_jid: Some(jid("123456789012345@lid")),
                pn_jid: None,
            },
            CollectionName::CriticalUnblockLow,
            vec!["contact", "15550002222@s.whatsapp.net"],
        ),
        (
            Action::PushName {
                name: "Alice".to_owned(),
            },
            CollectionName::CriticalBlock,
            vec!["setting_pushName"],
        ),
        (
            Action::Mute {
                chat: chat.clone(),
                muted: true,
                mute_end_ms: Some(-1),
            },
            CollectionName::RegularHigh,
            vec!["mute", "15550002222@s.whatsapp.net"],
        ),
        (
            Action::Pin {
                chat: jid(group),
                pinned: true,
            },
            CollectionName::RegularLow,
            vec!["pin_v1", group],
        ),
        (
            Action::Archive {
                chat: chat.clone(),
                archived: false,
                range: range.clone(),
            },
            CollectionName::RegularLow,
            vec!["archive", "15550002222@s.whatsapp.net"],
        ),
        (
            Action::MarkChatRead {
                chat: chat.clone(),
                read: true,
                range: range.clone(),
            },
            CollectionName::RegularLow,
            vec!["markChatAsRead", "15550002222@s.whatsapp.net"],
        ),
        (
            Action::Star {
                message: message_ref(),
                starred: true,
            },
            CollectionName::RegularHigh,
            vec!["star", group, "3EB0C0FFEE", "0", "15550002222@s.whatsapp.net"],
        ),
        (
            Action::DeleteChat {
                chat: chat.clone(),
                delete_media: true,
                range: range.clone(),
            },
            CollectionName::RegularHigh,
            vec!["deleteChat", "15550002222@s.whatsapp.net", "1"],
        ),
        (
            Action::ClearChat {
                chat: chat.clone(),
                delete_starred: false,
                delete_media: true,
                range,
            },
            CollectionName::RegularHigh,
            vec!["clearChat", "15550002222@s.whatsapp.net", "0", "1"],
        ),
        (
            Action::DeleteMessageForMe {
                message: own.clone(),
                delete_media: false,
                message_timestamp: Some(1_699_999_995),
            },
            CollectionName::RegularHigh,
            vec![
                "deleteMessageForMe",
                "15550002222@s.whatsapp.net",
                "3EB0AA",
                "1",
                "0",
            ],
        ),
        (
            Action::LabelEdit {
                label_id: "5".to_owned(),
                name: Some("Work".to_owned()),
                color: Some(3),
                predefined_id: None,
                deleted: false,
            },
            CollectionName::Regular,
            vec!["label_edit", "5"],
        ),
        (
            Action::LabelChat {
                label_id: "5".to_owned(),
                chat: chat.clone(),
                labeled: true,
            },
            CollectionName::Regular,
            vec!["label_jid", "5", "15550002222@s.whatsapp.net"],
        ),
        (
            Action::LabelMessage {
                label_id: "5".to_owned(),
                message: own,
                labeled: true,
            },
            CollectionName::Regular,
            vec![
                "label_message",
                "5",
                "15550002222@s.whatsapp.net",
                "3EB0AA",
                "1",
                "0",
            ],
        ),
    ];
    for (action, collection, index) in cases {
        check_round_trip(action, collection, &index);
    }
}

#[test]
fn builders_follow_the_official_clients() {
    let chat = jid("15550002222@s.whatsapp.net");
    let mute = PatchInfo::mute(&chat, true, None, NOW_MS);
    assert_eq!(
        mute.mutations[0]
            .value
            .mute_action
            .as_ref()
            .unwrap()
            .mute_end_timestamp,
        Some(-1)
    );
    let archive = PatchInfo::archive(&chat, true, None, NOW_MS);
    assert_eq!(archive.mutations.len(), 2, "archiving also unpins");
    assert_eq!(
        archive.mutations[1].index,
        ["pin_v1", "15550002222@s.whatsapp.net"]
    );
    assert_eq!(
        PatchInfo::delete_chat(&chat, false, None, NOW_MS).mutations[0].version,
        6
    );
    assert_eq!(
        PatchInfo::label_edit("1", "New", 2, false, NOW_MS).collection,
        CollectionName::Regular
    );
    assert_eq!(
        PatchInfo::label_chat("1", &chat, true, NOW_MS).mutations[0].version,
        3
    );
    assert_eq!(
        PatchInfo::label_message("1", &message_ref(), true, NOW_MS).mutations[0]
            .index
            .len(),
        6
    );
    assert_eq!(
        PatchInfo::mark_chat_read(&chat, true, None, NOW_MS).collection,
        CollectionName::RegularLow
    );
    let error = builder()
        .build_patch(&mute, &CollectionState::new(), &[])
        .unwrap_err();
    assert_eq!(error.to_string(), "0 IVs given for 1 mutations");
}

#[test]
fn settings_and_unknown_actions_parse() {
    let index = |items: &[&str]| items.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
    let value = SyncActionValue {
        unarchive_chats_setting: Some(UnarchiveChatsSetting {
            unarchive_chats: Some(true),
        }),
        ..SyncActionValue::default()
    };
    assert_eq!(
        Action::parse(&index(&["setting_unarchiveChats"]), Some(&value)),
        Ok(Action::UnarchiveChats { unarchive: true })
    );
    assert_eq!(
        Action::parse(&index(&["setting_locale"]), None),
        Ok(Action::Locale {
            locale: String::new()
        })
    );
    assert_eq!(
        Action::parse(&index(&["favoriteSticker", "abc"]), Some(&value)),
        Ok(Action::Other {
            name: "favoriteSticker".to_owned()
        })
    );
    assert!(Action::parse(&[], None).is_err());
    assert!(Action::parse(&index(&["mute"]), None).is_err());
    assert!(Action::parse(&index(&["mute", "a@b@c"]), None).is_err());
    assert!(Action::parse(&index(&["star", "1@s.whatsapp.net", "ID", "yes", "0"]), None).is_err());
    assert_eq!(
        Action::parse(&index(&["deleteChat", "1@s.whatsapp.net"]), None),
        Ok(Action::DeleteChat {
            chat: jid("1@s.whatsapp.net"),
            delete_media: false,
            range: None
        })
    );
}
