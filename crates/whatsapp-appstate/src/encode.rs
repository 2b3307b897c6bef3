//! Building outgoing patches (and snapshots) with the MACs a server verifies.

use std::collections::HashMap;

use prost::Message as _;
use whatsapp_proto::server_sync::{
    KeyId, SyncdIndex, SyncdMutation, SyncdPatch, SyncdRecord, SyncdSnapshot, SyncdValue, SyncdVersion,
};
use whatsapp_proto::sync_action::{SyncActionData, SyncActionValue};

use crate::keys::{AppStateKey, MutationKeys};
use crate::lthash::LtHash;
use crate::mac::{self, IV_LEN, IndexMac, ValueMac};
use crate::state::{CollectionName, CollectionState, Operation, StateUpdate};

/// One mutation to encode.
#[derive(Clone, Debug, PartialEq)]
pub struct MutationInfo {
    /// Set or remove.
    pub operation: Operation,
    /// The index: action name and parameters; it is written as a compact JSON array of strings.
    pub index: Vec<String>,
    /// The action's API version (`SyncActionData.version`), fixed per action.
    pub version: i32,
    /// The value, including its `timestamp` (milliseconds), which the caller sets.
    pub value: SyncActionValue,
}

/// The mutations of one outgoing patch and the collection they belong to.
#[derive(Clone, Debug, PartialEq)]
pub struct PatchInfo {
    /// The collection the patch is sent to.
    pub collection: CollectionName,
    /// The mutations, in order.
    pub mutations: Vec<MutationInfo>,
}

/// A built patch and the state the collection will have once the server accepts it.
#[derive(Clone, Debug, PartialEq)]
pub struct BuiltPatch {
    /// The patch, with version `state.version + 1`, snapshot MAC and patch MAC.
    pub patch: SyncdPatch,
    /// The state change to persist after the server accepted the patch.
    pub update: StateUpdate,
}

impl BuiltPatch {
    /// The protobuf bytes that go into the `<patch>` node.
    pub fn to_bytes(&self) -> Vec<u8> {
        self.patch.encode_to_vec()
    }
}

/// A built snapshot and the state it describes.
#[derive(Clone, Debug, PartialEq)]
pub struct BuiltSnapshot {
    /// The snapshot, with its MAC.
    pub snapshot: SyncdSnapshot,
    /// The complete state of the collection at the snapshot's version.
    pub update: StateUpdate,
}

/// Why a patch could not be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BuildError {
    /// One IV is needed per mutation.
    #[error("{given} IVs given for {expected} mutations")]
    IvCount {
        /// The number of mutations.
        expected: usize,
        /// The number of IVs given.
        given: usize,
    },
    /// A snapshot holds live values only.
    #[error("a snapshot cannot hold a REMOVE mutation")]
    RemoveInSnapshot,
}

/// Encodes mutations with one app-state key.
///
/// Randomness is passed in: every call takes one 16-byte IV per mutation (fresh random bytes in production,
/// fixed bytes in tests), so output is deterministic.
pub struct PatchBuilder {
    key_id: Vec<u8>,
    keys: MutationKeys,
}

impl std::fmt::Debug for PatchBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PatchBuilder")
            .field("key_id", &crate::error::hex_id(&self.key_id))
            .finish_non_exhaustive()
    }
}

impl PatchBuilder {
    /// A builder that encrypts with `key`, identified by `key_id`.
    pub fn new(key_id: impl Into<Vec<u8>>, key: &AppStateKey) -> Self {
        Self {
            key_id: key_id.into(),
            keys: key.expand(),
        }
    }

    /// The index MACs `info` writes, in order: the entries of the collection state that
    /// [`build_patch`](Self::build_patch) reads, so a caller can load only those from its store.
    pub fn index_macs(&self, info: &PatchInfo) -> Vec<IndexMac> {
        info.mutations
            .iter()
            .map(|mutation| mac::index_mac(&self.keys, &index_json(&mutation.index)))
            .collect()
    }

    /// Builds the next patch of a collection on top of its current state.
    pub fn build_patch(
        &self,
        info: &PatchInfo,
        state: &CollectionState,
        ivs: &[[u8; IV_LEN]],
    ) -> Result<BuiltPatch, BuildError> {
        check_ivs(info.mutations.len(), ivs)?;
        let mut hash = state.hash;
        let mut changes: HashMap<IndexMac, Option<ValueMac>> = HashMap::new();
        let mut mutations = Vec::with_capacity(info.mutations.len());
        let mut value_macs = Vec::with_capacity(info.mutations.len());
        for (mutation, iv) in info.mutations.iter().zip(ivs) {
            let (record, index_mac, value_mac) = self.encode_record(mutation, iv);
            let previous = match changes.get(&index_mac) {
                Some(value) => *value,
                None => state.index_value_macs.get(&index_mac).copied(),
            };
            if let Some(previous) = previous {
                hash.subtract(&previous);
            }
            match mutation.operation {
                Operation::Set => {
                    hash.add(&value_mac);
                    changes.insert(index_mac, Some(value_mac));
                }
                Operation::Remove => {
                    changes.insert(index_mac, None);
                }
            }
            value_macs.push(value_mac);
            mutations.push(SyncdMutation {
                operation: Some(mutation.operation.wire_value()),
                record: Some(record),
            });
        }
        let version = state.version + 1;
        let name = info.collection.as_str();
        let snapshot_mac = mac::snapshot_mac(&self.keys, &hash, version, name);
        let patch_mac = mac::patch_mac(
            &self.keys,
            &snapshot_mac,
            value_macs.iter().map(|m| &m[..]),
            version,
            name,
        );
        let patch = SyncdPatch {
            version: Some(SyncdVersion {
                version: Some(version),
            }),
            mutations,
            snapshot_mac: Some(snapshot_mac.to_vec()),
            patch_mac: Some(patch_mac.to_vec()),
            key_id: Some(KeyId {
                id: Some(self.key_id.clone()),
            }),
            ..SyncdPatch::default()
        };
        let mut update = StateUpdate {
            version,
            hash,
            ..StateUpdate::default()
        };
        for (index_mac, value_mac) in changes {
            match value_mac {
                Some(value_mac) => {
                    update.added.insert(index_mac, value_mac);
                }
                None => {
                    update.removed.insert(index_mac);
                }
            }
        }
        Ok(BuiltPatch { patch, update })
    }

    /// Builds a full snapshot of a collection at `version` from SET mutations, as a server sends it.
    pub fn build_snapshot(
        &self,
        collection: CollectionName,
        version: u64,
        mutations: &[MutationInfo],
        ivs: &[[u8; IV_LEN]],
    ) -> Result<BuiltSnapshot, BuildError> {
        check_ivs(mutations.len(), ivs)?;
        let mut hash = LtHash::ZERO;
        let mut update = StateUpdate {
            version,
            replaces_all: true,
            ..StateUpdate::default()
        };
        let mut records = Vec::with_capacity(mutations.len());
        for (mutation, iv) in mutations.iter().zip(ivs) {
            if mutation.operation != Operation::Set {
                return Err(BuildError::RemoveInSnapshot);
            }
            let (record, index_mac, value_mac) = self.encode_record(mutation, iv);
            hash.add(&value_mac);
            update.added.insert(index_mac, value_mac);
            records.push(record);
        }
        update.hash = hash;
        let snapshot = SyncdSnapshot {
            version: Some(SyncdVersion {
                version: Some(version),
            }),
            records,
            mac: Some(mac::snapshot_mac(&self.keys, &hash, version, collection.as_str()).to_vec()),
            key_id: Some(KeyId {
                id: Some(self.key_id.clone()),
            }),
        };
        Ok(BuiltSnapshot { snapshot, update })
    }

    /// Encrypts one mutation into a record; returns it with its index and value MACs.
    fn encode_record(&self, mutation: &MutationInfo, iv: &[u8; IV_LEN]) -> (SyncdRecord, IndexMac, ValueMac) {
        let index_json = index_json(&mutation.index);
        let index_mac = mac::index_mac(&self.keys, &index_json);
        let data = SyncActionData {
            index: Some(index_json),
            value: Some(mutation.value.clone()),
            padding: Some(Vec::new()),
            version: Some(mutation.version),
        }
        .encode_to_vec();
        let mut blob = mac::encrypt_value(&self.keys, iv, &data);
        let value_mac = mac::value_mac(&self.keys, mutation.operation, &self.key_id, &blob);
        blob.extend_from_slice(&value_mac);
        let record = SyncdRecord {
            index: Some(SyncdIndex {
                blob: Some(index_mac.to_vec()),
            }),
            value: Some(SyncdValue { blob: Some(blob) }),
            key_id: Some(KeyId {
                id: Some(self.key_id.clone()),
            }),
        };
        (record, index_mac, value_mac)
    }
}

/// The compact JSON array of an index, as `JSON.stringify` and `json.Marshal` write it for plain strings.
pub(crate) fn index_json(index: &[String]) -> Vec<u8> {
    #[allow(
        clippy::expect_used,
        reason = "serializing a slice of strings to a Vec cannot fail"
    )]
    serde_json::to_vec(index).expect("a slice of strings always serializes")
}

fn check_ivs(expected: usize, ivs: &[[u8; IV_LEN]]) -> Result<(), BuildError> {
    if ivs.len() == expected {
        Ok(())
    } else {
        Err(BuildError::IvCount {
            expected,
            given: ivs.len(),
        })
    }
}
