//! Decoding and verification of snapshots and patches.

use std::collections::HashMap;

use prost::Message as _;
use subtle::ConstantTimeEq;
use whatsapp_proto::server_sync::{
    ExternalBlobReference, SyncdMutations, SyncdPatch, SyncdRecord, SyncdSnapshot,
};
use whatsapp_proto::sync_action::SyncActionValue;

use crate::action::{Action, ActionError};
use crate::error::{AppStateError, hex_id};
use crate::keys::{KeyLookup, MutationKeys};
use crate::lthash::LtHash;
use crate::mac::{self, IV_LEN, IndexMac, MAC_LEN, ValueMac};
use crate::state::{CollectionName, CollectionState, Operation, StateUpdate};

/// The shortest valid value blob: a 16-byte IV, one AES block of ciphertext and the 32-byte value MAC.
const MIN_VALUE_BLOB_LEN: usize = IV_LEN + 16 + MAC_LEN;

/// One decoded and verified mutation.
#[derive(Clone, Debug, PartialEq)]
pub struct Mutation {
    /// Whether the index was set or removed.
    pub operation: Operation,
    /// The index: the action name followed by its parameters (e.g. `["mute", "1555...@s.whatsapp.net"]`).
    pub index: Vec<String>,
    /// The decrypted `SyncActionValue` protobuf, kept whole so that actions this crate does not type are not lost;
    /// [`value`](Self::value) decodes it. It stays encoded because a decoded `SyncActionValue` is over 2 KiB, too
    /// much to hold for every record of a large snapshot.
    pub value_proto: Option<Vec<u8>>,
    /// The action's API version (`SyncActionData.version`).
    pub action_version: Option<i32>,
    /// The verified index MAC.
    pub index_mac: IndexMac,
    /// The verified value MAC.
    pub value_mac: ValueMac,
    /// The id of the key the mutation was encrypted with.
    pub key_id: Vec<u8>,
    /// The version of the snapshot or patch that carried the mutation.
    pub patch_version: u64,
}

impl Mutation {
    /// The decoded value, if the mutation has one.
    pub fn value(&self) -> Result<Option<SyncActionValue>, prost::DecodeError> {
        self.value_proto
            .as_deref()
            .map(SyncActionValue::decode)
            .transpose()
    }

    /// The typed action this mutation carries (see [`Action::parse`]).
    pub fn action(&self) -> Result<Action, ActionError> {
        let value = self.value().map_err(ActionError::Value)?;
        Action::parse(&self.index, value.as_ref())
    }
}

/// `SyncActionData` with its value left encoded (see [`Mutation::value_proto`]).
#[derive(Clone, PartialEq, prost::Message)]
struct RawSyncActionData {
    /// The index JSON.
    #[prost(bytes = "vec", optional, tag = "1")]
    index: Option<Vec<u8>>,
    /// The `SyncActionValue` bytes.
    #[prost(bytes = "vec", optional, tag = "2")]
    value: Option<Vec<u8>>,
    /// The action's API version.
    #[prost(int32, optional, tag = "4")]
    version: Option<i32>,
}

/// The result of decoding: the mutations in order, and the state change to persist.
#[derive(Clone, Debug, PartialEq)]
pub struct Decoded {
    /// Every decoded mutation, in the order the snapshot and patches carried them.
    pub mutations: Vec<Mutation>,
    /// The change to the collection's state.
    pub update: StateUpdate,
}

/// A parsed patch: either complete, or with its mutations in an external blob the caller must download.
#[derive(Clone, Debug, PartialEq)]
pub enum ParsedPatch {
    /// The patch carries its mutations inline.
    Complete(SyncdPatch),
    /// The mutations are in an external blob; download it and call [`PendingPatch::complete`].
    NeedsDownload(PendingPatch),
}

/// A patch whose mutations live in an external blob (`externalMutations`).
#[derive(Clone, Debug, PartialEq)]
pub struct PendingPatch {
    patch: SyncdPatch,
}

impl PendingPatch {
    /// The blob to download and decrypt (media type `md-app-state`, "WhatsApp App State Keys").
    pub fn blob(&self) -> Option<&ExternalBlobReference> {
        self.patch.external_mutations.as_ref()
    }

    /// The patch's version, if present.
    pub fn version(&self) -> Option<u64> {
        self.patch.version.as_ref().and_then(|v| v.version)
    }

    /// Attaches the downloaded, decrypted blob (a `SyncdMutations` message) and returns the complete patch.
    pub fn complete(mut self, downloaded: &[u8]) -> Result<SyncdPatch, AppStateError> {
        let mutations = SyncdMutations::decode(downloaded).map_err(|source| AppStateError::Protobuf {
            what: "SyncdMutations",
            source,
        })?;
        self.patch.mutations = mutations.mutations;
        Ok(self.patch)
    }
}

/// Parses the bytes of a `<patch>` node into a [`ParsedPatch`].
pub fn parse_patch(bytes: &[u8]) -> Result<ParsedPatch, AppStateError> {
    let patch = SyncdPatch::decode(bytes).map_err(|source| AppStateError::Protobuf {
        what: "SyncdPatch",
        source,
    })?;
    if patch.mutations.is_empty() && patch.external_mutations.is_some() {
        Ok(ParsedPatch::NeedsDownload(PendingPatch { patch }))
    } else {
        Ok(ParsedPatch::Complete(patch))
    }
}

/// Parses the bytes of a `<snapshot>` node: a reference to the snapshot blob, which the caller downloads.
pub fn parse_snapshot_reference(bytes: &[u8]) -> Result<ExternalBlobReference, AppStateError> {
    ExternalBlobReference::decode(bytes).map_err(|source| AppStateError::Protobuf {
        what: "ExternalBlobReference",
        source,
    })
}

/// Parses a downloaded, decrypted snapshot blob.
pub fn parse_snapshot(bytes: &[u8]) -> Result<SyncdSnapshot, AppStateError> {
    SyncdSnapshot::decode(bytes).map_err(|source| AppStateError::Protobuf {
        what: "SyncdSnapshot",
        source,
    })
}

/// Decodes and verifies a full snapshot of a collection.
pub fn decode_snapshot<K: KeyLookup + ?Sized>(
    collection: CollectionName,
    snapshot: &SyncdSnapshot,
    keys: &K,
) -> Result<Decoded, AppStateError> {
    let base = CollectionState::new();
    let mut decoder = CollectionDecoder::new(collection, &base, keys);
    decoder.snapshot(snapshot)?;
    Ok(decoder.finish())
}

/// Decodes and verifies patches in order, starting from the caller's persisted state.
///
/// Either every patch verifies and the returned update covers them all, or nothing is returned; use
/// [`CollectionDecoder`] to keep the patches that verified before a failure.
pub fn decode_patches<K: KeyLookup + ?Sized>(
    collection: CollectionName,
    state: &CollectionState,
    patches: &[SyncdPatch],
    keys: &K,
) -> Result<Decoded, AppStateError> {
    let mut decoder = CollectionDecoder::new(collection, state, keys);
    for patch in patches {
        decoder.patch(patch)?;
    }
    Ok(decoder.finish())
}

/// Expanded keys by key id, so a snapshot of many records expands each key once.
struct KeyCache {
    entries: Vec<(Vec<u8>, MutationKeys)>,
}

impl KeyCache {
    fn get<K: KeyLookup + ?Sized>(
        &mut self,
        lookup: &K,
        key_id: &[u8],
        collection: CollectionName,
        version: u64,
    ) -> Result<&MutationKeys, AppStateError> {
        let position = match self.entries.iter().position(|(id, _)| id == key_id) {
            Some(position) => position,
            None => {
                let key = lookup
                    .app_state_key(key_id)
                    .ok_or_else(|| AppStateError::MissingKey {
                        collection,
                        version,
                        key_id: hex_id(key_id),
                    })?;
                self.entries.push((key_id.to_vec(), key.expand()));
                self.entries.len() - 1
            }
        };
        self.entries
            .get(position)
            .map(|(_, keys)| keys)
            .ok_or(AppStateError::MissingKey {
                collection,
                version,
                key_id: hex_id(key_id),
            })
    }
}

/// Decodes a snapshot and patches of one collection in order, verifying every MAC.
///
/// The caller's [`CollectionState`] is only read: changes accumulate inside the decoder and come out of
/// [`finish`](Self::finish) as a [`StateUpdate`]. A snapshot or patch that fails verification changes nothing, so
/// after an error `finish` still returns the verified work of the earlier ones.
pub struct CollectionDecoder<'a, K: ?Sized> {
    collection: CollectionName,
    base: &'a CollectionState,
    lookup: &'a K,
    cache: KeyCache,
    version: u64,
    hash: LtHash,
    replaces_all: bool,
    changes: HashMap<IndexMac, Option<ValueMac>>,
    mutations: Vec<Mutation>,
}

impl<'a, K: KeyLookup + ?Sized> CollectionDecoder<'a, K> {
    /// A decoder that starts from the caller's persisted state.
    pub fn new(collection: CollectionName, base: &'a CollectionState, lookup: &'a K) -> Self {
        Self {
            collection,
            base,
            lookup,
            cache: KeyCache { entries: Vec::new() },
            version: base.version,
            hash: base.hash,
            replaces_all: false,
            changes: HashMap::new(),
            mutations: Vec::new(),
        }
    }

    /// The version reached so far.
    pub fn version(&self) -> u64 {
        self.version
    }

    /// Decodes and verifies a snapshot; it replaces the whole collection.
    pub fn snapshot(&mut self, snapshot: &SyncdSnapshot) -> Result<(), AppStateError> {
        let collection = self.collection;
        let version =
            snapshot
                .version
                .as_ref()
                .and_then(|v| v.version)
                .ok_or(AppStateError::MissingField {
                    collection,
                    version: 0,
                    field: "version",
                })?;
        let mut hash = LtHash::ZERO;
        let mut changes = HashMap::with_capacity(snapshot.records.len());
        let mut decoded = Vec::with_capacity(snapshot.records.len());
        for (position, record) in snapshot.records.iter().enumerate() {
            let at = At {
                collection,
                version,
                position,
            };
            let key_id = record_key_id(record, at)?;
            let keys = self.cache.get(self.lookup, key_id, collection, version)?;
            let mutation = decode_record(record, Operation::Set, key_id, keys, at)?;
            hash.add(&mutation.value_mac);
            changes.insert(mutation.index_mac, Some(mutation.value_mac));
            decoded.push(mutation);
        }
        let key_id =
            snapshot
                .key_id
                .as_ref()
                .and_then(|k| k.id.as_deref())
                .ok_or(AppStateError::MissingField {
                    collection,
                    version,
                    field: "keyId",
                })?;
        let keys = self.cache.get(self.lookup, key_id, collection, version)?;
        let expected = mac::snapshot_mac(keys, &hash, version, collection.as_str());
        if !bool::from(expected.ct_eq(snapshot.mac.as_deref().unwrap_or_default())) {
            return Err(AppStateError::SnapshotMacMismatch { collection, version });
        }
        self.version = version;
        self.hash = hash;
        self.replaces_all = true;
        self.changes = changes;
        self.mutations.append(&mut decoded);
        Ok(())
    }

    /// Decodes and verifies one patch on top of the state reached so far.
    pub fn patch(&mut self, patch: &SyncdPatch) -> Result<(), AppStateError> {
        let collection = self.collection;
        let version = patch
            .version
            .as_ref()
            .and_then(|v| v.version)
            .ok_or(AppStateError::MissingField {
                collection,
                version: 0,
                field: "version",
            })?;
        if patch.mutations.is_empty() && patch.external_mutations.is_some() {
            return Err(AppStateError::ExternalMutationsPending { collection, version });
        }
        let mut hash = self.hash;
        // Changes made by this patch alone: a later mutation of the same index sees the earlier one's value.
        let mut changes: HashMap<IndexMac, Option<ValueMac>> = HashMap::new();
        let mut decoded = Vec::with_capacity(patch.mutations.len());
        for (position, mutation) in patch.mutations.iter().enumerate() {
            let at = At {
                collection,
                version,
                position,
            };
            let operation = Operation::from_wire_value(mutation.operation.unwrap_or(0))
                .ok_or_else(|| at.malformed("unknown operation"))?;
            let record = mutation.record.as_ref().ok_or_else(|| at.missing("record"))?;
            let key_id = record_key_id(record, at)?;
            let keys = self.cache.get(self.lookup, key_id, collection, version)?;
            let decoded_mutation = decode_record(record, operation, key_id, keys, at)?;
            let index_mac = decoded_mutation.index_mac;
            let previous = match changes.get(&index_mac) {
                Some(value) => *value,
                None => self.current_value_mac(&index_mac),
            };
            if let Some(previous) = previous {
                hash.subtract(&previous);
            }
            match operation {
                Operation::Set => {
                    hash.add(&decoded_mutation.value_mac);
                    changes.insert(index_mac, Some(decoded_mutation.value_mac));
                }
                Operation::Remove => {
                    changes.insert(index_mac, None);
                }
            }
            decoded.push(decoded_mutation);
        }
        let key_id =
            patch
                .key_id
                .as_ref()
                .and_then(|k| k.id.as_deref())
                .ok_or(AppStateError::MissingField {
                    collection,
                    version,
                    field: "keyId",
                })?;
        let keys = self.cache.get(self.lookup, key_id, collection, version)?;
        let snapshot_mac = patch.snapshot_mac.as_deref().unwrap_or_default();
        let expected = mac::snapshot_mac(keys, &hash, version, collection.as_str());
        if !bool::from(expected.ct_eq(snapshot_mac)) {
            return Err(AppStateError::SnapshotMacMismatch { collection, version });
        }
        let expected = mac::patch_mac(
            keys,
            snapshot_mac,
            decoded.iter().map(|m| &m.value_mac[..]),
            version,
            collection.as_str(),
        );
        if !bool::from(expected.ct_eq(patch.patch_mac.as_deref().unwrap_or_default())) {
            return Err(AppStateError::PatchMacMismatch { collection, version });
        }
        self.version = version;
        self.hash = hash;
        self.changes.extend(changes);
        self.mutations.append(&mut decoded);
        Ok(())
    }

    /// The value MAC an index has in the state reached so far.
    fn current_value_mac(&self, index_mac: &IndexMac) -> Option<ValueMac> {
        match self.changes.get(index_mac) {
            Some(value) => *value,
            None if self.replaces_all => None,
            None => self.base.index_value_macs.get(index_mac).copied(),
        }
    }

    /// The decoded mutations and the state update of everything that verified.
    pub fn finish(self) -> Decoded {
        let mut update = StateUpdate {
            version: self.version,
            hash: self.hash,
            replaces_all: self.replaces_all,
            ..StateUpdate::default()
        };
        for (index_mac, value_mac) in self.changes {
            match value_mac {
                Some(value_mac) => {
                    update.added.insert(index_mac, value_mac);
                }
                None => {
                    update.removed.insert(index_mac);
                }
            }
        }
        Decoded {
            mutations: self.mutations,
            update,
        }
    }
}

/// Where in a snapshot or patch a mutation is, for error reports.
#[derive(Clone, Copy)]
struct At {
    collection: CollectionName,
    version: u64,
    position: usize,
}

impl At {
    fn malformed(self, reason: &'static str) -> AppStateError {
        AppStateError::MalformedMutation {
            collection: self.collection,
            version: self.version,
            mutation: self.position,
            reason,
        }
    }

    fn missing(self, field: &'static str) -> AppStateError {
        AppStateError::MissingField {
            collection: self.collection,
            version: self.version,
            field,
        }
    }
}

fn record_key_id(record: &SyncdRecord, at: At) -> Result<&[u8], AppStateError> {
    record
        .key_id
        .as_ref()
        .and_then(|k| k.id.as_deref())
        .ok_or_else(|| at.missing("record.keyId"))
}

/// Verifies the value MAC, decrypts the value, verifies the index MAC and parses the index.
fn decode_record(
    record: &SyncdRecord,
    operation: Operation,
    key_id: &[u8],
    keys: &MutationKeys,
    at: At,
) -> Result<Mutation, AppStateError> {
    let blob = record
        .value
        .as_ref()
        .and_then(|v| v.blob.as_deref())
        .ok_or_else(|| at.missing("record.value"))?;
    if blob.len() < MIN_VALUE_BLOB_LEN {
        return Err(at.malformed("value blob too short"));
    }
    let (data, value_mac) = blob.split_at(blob.len() - MAC_LEN);
    let expected = mac::value_mac(keys, operation, key_id, data);
    if !bool::from(expected.ct_eq(value_mac)) {
        return Err(AppStateError::ValueMacMismatch {
            collection: at.collection,
            version: at.version,
            mutation: at.position,
        });
    }
    let plaintext = mac::decrypt_value(keys, data).map_err(|_| at.malformed("value does not decrypt"))?;
    let action = RawSyncActionData::decode(plaintext.as_slice())
        .map_err(|_| at.malformed("value is not a SyncActionData"))?;
    let index_json = action.index.as_deref().unwrap_or_default();
    let index_mac = record
        .index
        .as_ref()
        .and_then(|i| i.blob.as_deref())
        .ok_or_else(|| at.missing("record.index"))?;
    let expected = mac::index_mac(keys, index_json);
    if !bool::from(expected.ct_eq(index_mac)) {
        return Err(AppStateError::IndexMacMismatch {
            collection: at.collection,
            version: at.version,
            mutation: at.position,
        });
    }
    let index: Vec<String> = serde_json::from_slice(index_json)
        .map_err(|_| at.malformed("index is not a JSON array of strings"))?;
    Ok(Mutation {
        operation,
        index,
        value_proto: action.value,
        action_version: action.version,
        index_mac: expected,
        value_mac: to_mac_array(value_mac),
        key_id: key_id.to_vec(),
        patch_version: at.version,
    })
}

/// Copies a value MAC slice (already checked to be 32 bytes long) into an array.
fn to_mac_array(slice: &[u8]) -> ValueMac {
    let mut out = [0u8; MAC_LEN];
    out.copy_from_slice(slice);
    out
}
