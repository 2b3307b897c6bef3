//! Fuzzes app-state decoding: arbitrary bytes as a `SyncdPatch` or `SyncdSnapshot`, decoded and verified against
//! a fixed key, and arbitrary bytes as the plaintext of a correctly encrypted and MACed snapshot record, so the
//! fuzzer also reaches value decoding, index JSON parsing and action typing. Decoding may fail, but never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use whatsapp_appstate::{
    AppStateKey, CollectionName, CollectionState, LtHash, Operation, ParsedPatch, decode_patches,
    decode_snapshot, mac, parse_patch, parse_snapshot,
};
use whatsapp_proto::ProtoMessage;
use whatsapp_proto::server_sync::{KeyId, SyncdIndex, SyncdRecord, SyncdSnapshot, SyncdValue, SyncdVersion};
use whatsapp_proto::sync_action::SyncActionData;

/// The key of the first app-state vector sequence, so seeds taken from it verify completely.
const KEY_DATA: [u8; 32] = [
    0x53, 0x5c, 0x0a, 0x63, 0x96, 0x83, 0xe2, 0xfb, 0xaa, 0x85, 0x47, 0xa4, 0xe8, 0x82, 0x4b, 0xea, 0xc9,
    0x84, 0xbd, 0xad, 0xfd, 0x63, 0xff, 0x48, 0x5b, 0x65, 0x14, 0x98, 0x0c, 0xe9, 0x34, 0x82,
];
const KEY_ID: [u8; 6] = [0x00, 0x00, 0x00, 0x01, 0x00, 0xa1];
const COLLECTION: CollectionName = CollectionName::RegularHigh;

fn lookup(_: &[u8]) -> Option<AppStateKey> {
    Some(AppStateKey::new(KEY_DATA.to_vec()))
}

fn check_mutations(decoded: &whatsapp_appstate::Decoded) {
    for mutation in &decoded.mutations {
        let _ = mutation.action();
    }
    let mut state = CollectionState::new();
    state.apply(&decoded.update);
}

/// Wraps `plaintext` into a snapshot record with valid value, index and snapshot MACs.
fn valid_snapshot(plaintext: &[u8]) -> SyncdSnapshot {
    let keys = AppStateKey::new(KEY_DATA.to_vec()).expand();
    let index_json = SyncActionData::decode(plaintext)
        .ok()
        .and_then(|data| data.index)
        .unwrap_or_default();
    let mut blob = mac::encrypt_value(&keys, &[7; 16], plaintext);
    let value_mac = mac::value_mac(&keys, Operation::Set, &KEY_ID, &blob);
    blob.extend_from_slice(&value_mac);
    let mut hash = LtHash::ZERO;
    hash.add(&value_mac);
    SyncdSnapshot {
        version: Some(SyncdVersion { version: Some(1) }),
        records: vec![SyncdRecord {
            index: Some(SyncdIndex {
                blob: Some(mac::index_mac(&keys, &index_json).to_vec()),
            }),
            value: Some(SyncdValue { blob: Some(blob) }),
            key_id: Some(KeyId {
                id: Some(KEY_ID.to_vec()),
            }),
        }],
        mac: Some(mac::snapshot_mac(&keys, &hash, 1, COLLECTION.as_str()).to_vec()),
        key_id: Some(KeyId {
            id: Some(KEY_ID.to_vec()),
        }),
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    match mode % 3 {
        0 => {
            if let Ok(ParsedPatch::Complete(patch)) = parse_patch(rest) {
                let state = CollectionState::new();
                if let Ok(decoded) = decode_patches(COLLECTION, &state, &[patch], &lookup) {
                    check_mutations(&decoded);
                }
            }
        }
        1 => {
            if let Ok(snapshot) = parse_snapshot(rest)
                && let Ok(decoded) = decode_snapshot(COLLECTION, &snapshot, &lookup)
            {
                check_mutations(&decoded);
            }
        }
        _ => {
            if let Ok(decoded) = decode_snapshot(COLLECTION, &valid_snapshot(rest), &lookup) {
                check_mutations(&decoded);
            }
        }
    }
});
