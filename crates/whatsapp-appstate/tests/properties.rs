//! Property tests: random sequences of SET and REMOVE patches, built by the encoder and decoded by the decoder,
//! keep both sides' states equal and the LTHash equal to the sum of the live value MACs.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test helpers fail loudly")]

use std::collections::BTreeMap;

use proptest::prelude::*;
use whatsapp_appstate::{
    AppStateKey, CollectionName, CollectionState, LtHash, MutationInfo, Operation, PatchBuilder, PatchInfo,
    decode_patches,
};
use whatsapp_proto::sync_action::SyncActionValue;

const KEY_ID: [u8; 2] = [0x12, 0x34];

fn lookup(id: &[u8]) -> Option<AppStateKey> {
    (id == KEY_ID).then(|| AppStateKey::new(vec![0x11; 32]))
}

/// One mutation: which of a few indexes, SET or REMOVE, and a timestamp that makes the value differ.
fn mutation() -> impl Strategy<Value = (u8, bool, i64)> {
    (0u8..4, any::<bool>(), 0i64..1_000)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn encoder_and_decoder_agree(patches in prop::collection::vec(prop::collection::vec(mutation(), 1..4), 1..8)) {
        let builder = PatchBuilder::new(KEY_ID.to_vec(), &AppStateKey::new(vec![0x11; 32]));
        let mut sender = CollectionState::new();
        let mut receiver = CollectionState::new();
        // The model: which index is live, with the timestamp of its last SET.
        let mut live: BTreeMap<u8, i64> = BTreeMap::new();
        for (n, patch) in patches.iter().enumerate() {
            let info = PatchInfo {
                collection: CollectionName::Regular,
                mutations: patch
                    .iter()
                    .map(|&(index, set, timestamp)| MutationInfo {
                        operation: if set { Operation::Set } else { Operation::Remove },
                        index: vec!["test".to_owned(), index.to_string()],
                        version: 1,
                        value: SyncActionValue { timestamp: Some(timestamp), ..SyncActionValue::default() },
                    })
                    .collect(),
            };
            let ivs: Vec<[u8; 16]> = (0..patch.len()).map(|i| [(n * 4 + i) as u8; 16]).collect();
            let built = builder.build_patch(&info, &sender, &ivs).unwrap();
            let decoded = decode_patches(info.collection, &receiver, std::slice::from_ref(&built.patch), &lookup).unwrap();
            prop_assert_eq!(&decoded.update, &built.update);
            sender.apply(&built.update);
            receiver.apply(&decoded.update);
            for &(index, set, timestamp) in patch {
                if set {
                    live.insert(index, timestamp);
                } else {
                    live.remove(&index);
                }
            }
        }
        prop_assert_eq!(&sender, &receiver);
        prop_assert_eq!(receiver.index_value_macs.len(), live.len());
        let mut expected = LtHash::ZERO;
        for value_mac in receiver.index_value_macs.values() {
            expected.add(value_mac);
        }
        prop_assert_eq!(receiver.hash, expected);
        prop_assert_eq!(receiver.version, patches.len() as u64);
    }
}
