//! App-state fixtures: a large contacts snapshot built with the crate's own encoder.

use whatsapp_appstate::{Action, AppStateKey, CollectionName, KeyLookup, PatchBuilder};
use whatsapp_binary::Jid;
use whatsapp_proto::ProtoMessage;

/// The number of records in the benchmark snapshot: a large address book.
pub const SNAPSHOT_RECORDS: usize = 50_000;

/// The id of the benchmark's app-state key.
pub const KEY_ID: [u8; 6] = [0, 0, 0, 1, 0, 0xa1];

/// The benchmark's key data.
const KEY_DATA: [u8; 32] = [0x5c; 32];

/// The collection that holds contacts.
pub const COLLECTION: CollectionName = CollectionName::CriticalUnblockLow;

/// Looks up the benchmark key.
pub fn key_lookup() -> impl KeyLookup {
    |id: &[u8]| (id == KEY_ID).then(|| AppStateKey::new(KEY_DATA.to_vec()))
}

/// The protobuf bytes of a `SyncdSnapshot` of `records` contacts (distinct phone numbers, with full and first
/// names), as a server sends it after the blob download.
pub fn contacts_snapshot(records: usize) -> Vec<u8> {
    let builder = PatchBuilder::new(KEY_ID.to_vec(), &AppStateKey::new(KEY_DATA.to_vec()));
    let mutations: Vec<_> = (0..records)
        .filter_map(|i| {
            let action = Action::Contact {
                jid: Jid::new(format!("1555{i:07}"), Jid::DEFAULT_USER_SERVER),
                full_name: Some(format!("Contact Number {i}")),
                first_name: Some(format!("Contact{i}")),
                lid_jid: None,
                pn_jid: None,
            };
            action
                .to_mutation(1_700_000_000_000 + i as i64)
                .map(|(_, mutation)| mutation)
        })
        .collect();
    // Deterministic IVs: the benchmark measures decoding, not the quality of randomness.
    let ivs: Vec<[u8; 16]> = (0..records)
        .map(|i| {
            let mut iv = [0u8; 16];
            iv[..8].copy_from_slice(&(i as u64).to_le_bytes());
            iv
        })
        .collect();
    match builder.build_snapshot(COLLECTION, 1, &mutations, &ivs) {
        Ok(built) => built.snapshot.encode_to_vec(),
        Err(error) => unreachable!("one IV per SET mutation: {error}"),
    }
}
