//! Runs every case of the app-state vectors in `tests/data/` (keys, LTHash, MACs, patch sequences).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test helpers fail loudly on bad vector files"
)]

use std::collections::{BTreeMap, HashMap};

use serde_json::Value;
use whatsapp_appstate::mac;
use whatsapp_appstate::{
    Action, AppStateKey, CollectionName, CollectionState, LtHash, MutationInfo, Operation, PatchBuilder,
    PatchInfo, decode_patches, parse_patch,
};
use whatsapp_appstate::{ParsedPatch, StateUpdate};
use whatsapp_proto::ProtoMessage;
use whatsapp_proto::sync_action::SyncActionValue;

fn load(name: &str) -> Value {
    let path = format!("{}/tests/data/{name}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_json::from_str(&text).unwrap()
}

fn hex_of(value: &Value) -> Vec<u8> {
    hex::decode(value.as_str().unwrap()).unwrap()
}

fn arr32(value: &Value) -> [u8; 32] {
    hex_of(value).try_into().unwrap()
}

fn str_of(value: &Value) -> &str {
    value.as_str().unwrap()
}

fn lthash_of(value: &Value) -> LtHash {
    LtHash::try_from(hex_of(value).as_slice()).unwrap()
}

fn key_of(case: &Value) -> AppStateKey {
    AppStateKey::new(hex_of(&case["key_data"]))
}

#[test]
fn key_expansion() {
    let file = load("keys.json");
    let cases = file["cases"].as_array().unwrap();
    assert_eq!(cases.len(), 4);
    for case in cases {
        let keys = key_of(case).expand();
        let name = str_of(&case["name"]);
        let mut expanded = Vec::new();
        for (field, got) in [
            ("index_key", keys.index()),
            ("value_encryption_key", keys.value_encryption()),
            ("value_mac_key", keys.value_mac()),
            ("snapshot_mac_key", keys.snapshot_mac()),
            ("patch_mac_key", keys.patch_mac()),
        ] {
            assert_eq!(got, &arr32(&case[field]), "{name}: {field}");
            expanded.extend_from_slice(got);
        }
        assert_eq!(expanded, hex_of(&case["expanded"]), "{name}: expanded");
    }
}

/// Subtracts every `sub` item, then adds every `add` item, and compares with `result`.
fn check_lthash(name: &str, base: LtHash, step: &Value, expected: &Value) -> LtHash {
    let items = |field: &str| -> Vec<Vec<u8>> {
        step.get(field)
            .and_then(Value::as_array)
            .map(|items| items.iter().map(hex_of).collect())
            .unwrap_or_default()
    };
    let (sub, add) = (items("sub"), items("add"));
    let mut hash = base;
    hash.subtract_then_add(sub.iter().map(Vec::as_slice), add.iter().map(Vec::as_slice));
    assert_eq!(hash, lthash_of(expected), "{name}");
    hash
}

#[test]
fn lthash_cases_and_sequence() {
    let file = load("lthash.json");
    let cases = file["cases"].as_array().unwrap();
    assert_eq!(cases.len(), 6);
    for case in cases {
        let name = str_of(&case["name"]);
        check_lthash(name, lthash_of(&case["base"]), case, &case["result"]);
        for (item, expansion) in case["item_expansions"].as_object().unwrap() {
            let item = hex::decode(item).unwrap();
            assert_eq!(LtHash::expand(&item).to_vec(), hex_of(expansion), "{name}");
        }
    }
    let sequence = &file["sequence"];
    let mut hash = lthash_of(&sequence["start"]);
    for step in sequence["steps"].as_array().unwrap() {
        hash = check_lthash(str_of(&sequence["name"]), hash, step, &step["result"]);
    }
    assert_eq!(hash, LtHash::ZERO, "the sequence ends back at zero");
}

#[test]
fn macs() {
    let file = load("macs.json");
    for case in file["index_mac"].as_array().unwrap() {
        let keys = key_of(case).expand();
        let index: Vec<String> = serde_json::from_value(case["index"].clone()).unwrap();
        let json = serde_json::to_vec(&index).unwrap();
        assert_eq!(json, str_of(&case["index_json"]).as_bytes());
        assert_eq!(json, hex_of(&case["index_json_hex"]));
        assert_eq!(
            mac::index_mac(&keys, &json),
            arr32(&case["index_mac"]),
            "{}",
            case["name"]
        );
    }
    for case in file["value_mac"].as_array().unwrap() {
        let keys = key_of(case).expand();
        let operation = match str_of(&case["operation"]) {
            "set" => Operation::Set,
            "remove" => Operation::Remove,
            other => panic!("unknown operation {other}"),
        };
        let got = mac::value_mac(&keys, operation, &hex_of(&case["key_id"]), &hex_of(&case["data"]));
        assert_eq!(got, arr32(&case["value_mac"]), "{}", case["name"]);
    }
    for case in file["snapshot_mac"].as_array().unwrap() {
        let keys = key_of(case).expand();
        let got = mac::snapshot_mac(
            &keys,
            &lthash_of(&case["lthash"]),
            case["version"].as_u64().unwrap(),
            str_of(&case["collection"]),
        );
        assert_eq!(got, arr32(&case["snapshot_mac"]), "{}", case["name"]);
    }
    for case in file["patch_mac"].as_array().unwrap() {
        let keys = key_of(case).expand();
        let value_macs: Vec<Vec<u8>> = case["value_macs"]
            .as_array()
            .unwrap()
            .iter()
            .map(hex_of)
            .collect();
        let got = mac::patch_mac(
            &keys,
            &hex_of(&case["snapshot_mac"]),
            value_macs.iter().map(Vec::as_slice),
            case["version"].as_u64().unwrap(),
            str_of(&case["collection"]),
        );
        assert_eq!(got, arr32(&case["patch_mac"]), "{}", case["name"]);
    }
}

fn index_value_map(value: &Value) -> HashMap<[u8; 32], [u8; 32]> {
    value
        .as_object()
        .unwrap()
        .iter()
        .map(|(index, value)| (hex::decode(index).unwrap().try_into().unwrap(), arr32(value)))
        .collect()
}

fn operation_of(mutation: &Value) -> Operation {
    match str_of(&mutation["operation"]) {
        "set" => Operation::Set,
        _ => Operation::Remove,
    }
}

/// Decodes one vector patch on top of `state`, checks every mutation and the state after it, and applies it.
fn check_decode(sequence: &str, collection: CollectionName, state: &mut CollectionState, patch: &Value) {
    let key_id = hex_of(&patch["mutations"][0]["key_id"]);
    let key_data = hex_of(&patch["key_data"]);
    let lookup = |id: &[u8]| (id == key_id.as_slice()).then(|| AppStateKey::new(key_data.clone()));
    let ParsedPatch::Complete(syncd) = parse_patch(&hex_of(&patch["patch_hex"])).unwrap() else {
        panic!("{sequence}: inline patch expected");
    };
    let version = patch["version"].as_u64().unwrap();
    let decoded = decode_patches(collection, state, &[syncd], &lookup)
        .unwrap_or_else(|e| panic!("{sequence} v{version}: {e}"));
    let expected = patch["mutations"].as_array().unwrap();
    assert_eq!(decoded.mutations.len(), expected.len());
    for (got, want) in decoded.mutations.iter().zip(expected) {
        let index: Vec<String> = serde_json::from_value(want["index"].clone()).unwrap();
        assert_eq!(got.operation, operation_of(want));
        assert_eq!(got.index, index);
        assert_eq!(got.index_mac, arr32(&want["index_mac"]));
        assert_eq!(got.value_mac, arr32(&want["value_mac"]));
        assert_eq!(got.key_id, hex_of(&want["key_id"]));
        assert_eq!(got.patch_version, version);
        assert_eq!(
            got.action_version,
            want["sync_action_data"]["version"].as_i64().map(|v| v as i32)
        );
        let action = got
            .action()
            .unwrap_or_else(|e| panic!("{sequence} v{version}: {e}"));
        assert!(
            !matches!(action, Action::Other { .. }),
            "{sequence} v{version}: {action:?} is typed"
        );
        assert_eq!(
            got.value_proto.as_deref().unwrap(),
            hex_of(&want["sync_action_value_hex"]),
            "{sequence} v{version}: value"
        );
    }
    let after = &patch["state_after"];
    assert_eq!(decoded.update.version, after["version"].as_u64().unwrap());
    assert_eq!(decoded.update.hash, lthash_of(&after["hash"]));
    state.apply(&decoded.update);
    assert_eq!(
        state.index_value_macs,
        index_value_map(&after["index_value_map"]),
        "{sequence} v{version}: index -> value MAC map"
    );
}

/// Rebuilds a vector patch with its IVs on top of `state` and compares bytes, MACs and the state change.
fn check_build(sequence: &str, collection: CollectionName, state: &CollectionState, patch: &Value) {
    let mutations = patch["mutations"].as_array().unwrap();
    let key_id = hex_of(&mutations[0]["key_id"]);
    let builder = PatchBuilder::new(key_id, &AppStateKey::new(hex_of(&patch["key_data"])));
    let info = PatchInfo {
        collection,
        mutations: mutations
            .iter()
            .map(|m| MutationInfo {
                operation: operation_of(m),
                index: serde_json::from_value(m["index"].clone()).unwrap(),
                version: m["sync_action_data"]["version"].as_i64().unwrap() as i32,
                value: SyncActionValue::decode(hex_of(&m["sync_action_value_hex"]).as_slice()).unwrap(),
            })
            .collect(),
    };
    let ivs: Vec<[u8; 16]> = mutations
        .iter()
        .map(|m| hex_of(&m["iv"]).try_into().unwrap())
        .collect();
    let built = builder.build_patch(&info, state, &ivs).unwrap();
    let version = patch["version"].as_u64().unwrap();
    assert_eq!(
        hex::encode(built.to_bytes()),
        str_of(&patch["patch_hex"]),
        "{sequence} v{version}: patch bytes"
    );
    assert_eq!(
        built.patch.snapshot_mac.as_deref(),
        Some(hex_of(&patch["snapshot_mac"]).as_slice())
    );
    assert_eq!(
        built.patch.patch_mac.as_deref(),
        Some(hex_of(&patch["patch_mac"]).as_slice())
    );
    // A-ENCODER-KEEPS-REMOVED: Baileys' encoder keeps a removed index in its own map; the vectors' `state_after`
    // is the decoder's correct state, which this encoder must produce too.
    let mut after = state.clone();
    after.apply(&built.update);
    let expected = &patch["state_after"];
    assert_eq!(after.version, expected["version"].as_u64().unwrap());
    assert_eq!(after.hash, lthash_of(&expected["hash"]));
    assert_eq!(
        after.index_value_macs,
        index_value_map(&expected["index_value_map"])
    );
}

#[test]
fn patch_sequences_decode_and_rebuild() {
    let file = load("patches.json");
    let sequences = file["sequences"].as_array().unwrap();
    assert_eq!(sequences.len(), 4);
    let mut patches_seen = 0;
    for sequence in sequences {
        let name = str_of(&sequence["name"]);
        let collection: CollectionName = str_of(&sequence["collection"]).parse().unwrap();
        let initial = &sequence["initial_state"];
        let mut state = CollectionState {
            version: initial["version"].as_u64().unwrap(),
            hash: lthash_of(&initial["hash"]),
            index_value_macs: index_value_map(&initial["index_value_map"]),
        };
        for patch in sequence["patches"].as_array().unwrap() {
            let mut patch = patch.clone();
            patch["key_data"] = sequence["key_data"].clone();
            check_build(name, collection, &state, &patch);
            check_decode(name, collection, &mut state, &patch);
            patches_seen += 1;
        }
    }
    assert_eq!(patches_seen, 11);
}

#[test]
fn state_update_is_plain_data() {
    let update = StateUpdate {
        version: 3,
        hash: LtHash::ZERO,
        replaces_all: true,
        added: BTreeMap::from([([1; 32], [2; 32])]),
        removed: Default::default(),
    };
    let mut state = CollectionState::new();
    state.index_value_macs.insert([9; 32], [9; 32]);
    state.apply(&update);
    assert_eq!(state.version, 3);
    assert_eq!(state.index_value_macs, HashMap::from([([1; 32], [2; 32])]));
}
