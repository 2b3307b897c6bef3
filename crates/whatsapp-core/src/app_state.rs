//! App-state sync over the connection (protocol-facts §3.8): the `w:sync:app:state` requests and their answers,
//! the `server_sync` notification that says a collection changed, and the sync keys that arrive in key-share
//! messages from the primary device.
//!
//! Verifying and decoding patches is `whatsapp-appstate`'s job; this module only moves them on and off the wire
//! and turns stored rows into the state the decoder starts from.

use whatsapp_appstate::{
    CollectionName, CollectionState, LtHash, ParsedPatch, parse_patch, parse_snapshot_reference,
};
use whatsapp_binary::Node;
use whatsapp_proto::ProtoMessage;
use whatsapp_proto::e2e::Message;
use whatsapp_proto::e2e::message::{
    AppStateSyncKeyId, AppStateSyncKeyRequest, AppStateSyncKeyShare, ProtocolMessage, protocol_message,
};
use whatsapp_proto::server_sync::{ExternalBlobReference, SyncdPatch, SyncdSnapshot};
use whatsapp_store::{AppStateSyncKey, AppStateVersion, MutationMac};

use crate::ResponseError;

/// The IQ namespace of app-state sync.
pub const NAMESPACE: &str = "w:sync:app:state";

/// The request for a collection's changes after `since` (a version this device holds), or for its snapshot and
/// the patches after it when `since` is `None` (a full sync).
pub fn fetch_query(collection: CollectionName, since: Option<u64>) -> Node {
    let mut request = Node::new("collection")
        .attr("name", collection.as_str())
        .attr("return_snapshot", if since.is_none() { "true" } else { "false" });
    if let Some(version) = since {
        request = request.attr("version", version.to_string());
    }
    sync_iq(request)
}

/// The request that uploads `patch`, built on top of `version` of the collection.
pub fn patch_query(collection: CollectionName, version: u64, patch: &SyncdPatch) -> Node {
    sync_iq(
        Node::new("collection")
            .attr("name", collection.as_str())
            .attr("version", version.to_string())
            .attr("return_snapshot", "false")
            .children([Node::new("patch").bytes(patch.encode_to_vec())]),
    )
}

fn sync_iq(collection: Node) -> Node {
    Node::new("iq")
        .attr("xmlns", NAMESPACE)
        .attr("type", "set")
        .attr("to", crate::server_jid())
        .children([Node::new("sync").children([collection])])
}

/// The server's answer for one collection.
#[derive(Debug)]
pub struct CollectionAnswer {
    /// The collection.
    pub collection: CollectionName,
    /// Whether more patches follow; ask again from the version reached.
    pub has_more: bool,
    /// Where to download the snapshot, when one was asked for and the collection has one.
    pub snapshot: Option<ExternalBlobReference>,
    /// The patches, oldest first; some may still need their mutations downloaded.
    pub patches: Vec<ParsedPatch>,
    /// The error the server reported for the collection (409: the upload was not built on the latest version;
    /// the patches it is behind by are in `patches`).
    pub error: Option<ResponseError>,
}

impl CollectionAnswer {
    /// Whether the server refused an upload because this device is behind (409).
    pub fn is_conflict(&self) -> bool {
        matches!(self.error, Some(ResponseError::Server { code: 409, .. }))
    }
}

/// Reads the answer to a [`fetch_query`] or [`patch_query`].
pub fn parse_answer(result: &Node) -> Result<CollectionAnswer, ResponseError> {
    let collection = result
        .child("sync")
        .and_then(|sync| sync.child("collection"))
        .ok_or(ResponseError::Missing("sync/collection"))?;
    let name = collection
        .optional_str_attr("name")
        .ok_or(ResponseError::Missing("collection name"))?;
    let name: CollectionName = name
        .parse()
        .map_err(|_| ResponseError::Invalid("collection name"))?;
    let error = if collection.optional_str_attr("type") == Some("error") {
        let error = collection.child("error");
        Some(ResponseError::Server {
            code: error
                .and_then(|e| e.optional_str_attr("code"))
                .and_then(|c| c.parse().ok())
                .unwrap_or(0),
            text: error
                .and_then(|e| e.optional_str_attr("text"))
                .unwrap_or_default()
                .to_owned(),
        })
    } else {
        None
    };
    let snapshot = match collection.child("snapshot").and_then(Node::content_bytes) {
        Some(bytes) => Some(parse_snapshot_reference(bytes).map_err(|_| ResponseError::Invalid("snapshot"))?),
        None => None,
    };
    let mut patches = Vec::new();
    if let Some(list) = collection.child("patches") {
        for patch in list.children_by_tag("patch") {
            let bytes = patch
                .content_bytes()
                .ok_or(ResponseError::Missing("patch content"))?;
            patches.push(parse_patch(bytes).map_err(|_| ResponseError::Invalid("patch"))?);
        }
    }
    Ok(CollectionAnswer {
        collection: name,
        has_more: collection.optional_str_attr("has_more_patches") == Some("true"),
        snapshot,
        patches,
        error,
    })
}

/// The collections a `<notification type="server_sync">` says changed; unknown names are skipped.
pub fn changed_collections(notification: &Node) -> Vec<CollectionName> {
    if notification.optional_str_attr("type") != Some("server_sync") {
        return Vec::new();
    }
    let mut names: Vec<CollectionName> = notification
        .children_by_tag("collection")
        .filter_map(|c| c.optional_str_attr("name")?.parse().ok())
        .collect();
    names.sort();
    names.dedup();
    names
}

/// The sync keys of a key-share message, as the store keeps them; keys without an id or key data are skipped.
pub fn shared_keys(share: &AppStateSyncKeyShare) -> Vec<AppStateSyncKey> {
    share
        .keys
        .iter()
        .filter_map(|key| {
            let id = key.key_id.as_ref()?.key_id.clone()?;
            let data = key.key_data.as_ref()?;
            Some(AppStateSyncKey {
                id,
                data: data.key_data.clone()?,
                fingerprint: data
                    .fingerprint
                    .as_ref()
                    .map(ProtoMessage::encode_to_vec)
                    .unwrap_or_default(),
                timestamp: data.timestamp.unwrap_or(0),
            })
        })
        .collect()
}

/// The key-share payload of a protocol message, if it is one.
pub fn key_share(message: &ProtocolMessage) -> Option<&AppStateSyncKeyShare> {
    (message.r#type == Some(protocol_message::Type::AppStateSyncKeyShare as i32))
        .then_some(message.app_state_sync_key_share.as_ref())
        .flatten()
}

/// The ids of the keys a snapshot and patches are encrypted with (the patch's, the snapshot's and each record's),
/// each once, in order of first use.
pub fn referenced_key_ids(snapshot: Option<&SyncdSnapshot>, patches: &[SyncdPatch]) -> Vec<Vec<u8>> {
    let snapshot_ids = snapshot.into_iter().flat_map(|snapshot| {
        snapshot.key_id.iter().chain(
            snapshot
                .records
                .iter()
                .filter_map(|record| record.key_id.as_ref()),
        )
    });
    let patch_ids = patches.iter().flat_map(|patch| {
        patch.key_id.iter().chain(
            patch
                .mutations
                .iter()
                .filter_map(|mutation| mutation.record.as_ref()?.key_id.as_ref()),
        )
    });
    let mut ids: Vec<Vec<u8>> = Vec::new();
    for id in snapshot_ids.chain(patch_ids).filter_map(|key| key.id.as_ref()) {
        if !ids.contains(id) {
            ids.push(id.clone());
        }
    }
    ids
}

/// The peer message asking this account's phone for app-state keys it has not shared
/// (`AppStateSyncKeyRequest`, whatsmeow `requestAppStateKeys`); the phone answers with a key share.
pub fn key_request(ids: &[Vec<u8>]) -> Message {
    Message {
        protocol_message: Some(Box::new(ProtocolMessage {
            r#type: Some(protocol_message::Type::AppStateSyncKeyRequest as i32),
            app_state_sync_key_request: Some(AppStateSyncKeyRequest {
                key_ids: ids
                    .iter()
                    .map(|id| AppStateSyncKeyId {
                        key_id: Some(id.clone()),
                    })
                    .collect(),
            }),
            ..Default::default()
        })),
        ..Default::default()
    }
}

/// The key new patches are encrypted with: the newest one (highest timestamp, then the last listed).
pub fn newest_key(keys: &[AppStateSyncKey]) -> Option<&AppStateSyncKey> {
    keys.iter().rev().max_by_key(|key| key.timestamp)
}

/// The index MACs the mutations of `patches` touch: the stored value MACs the decoder needs.
pub fn touched_indexes(patches: &[SyncdPatch]) -> Vec<[u8; 32]> {
    let mut indexes: Vec<[u8; 32]> = patches
        .iter()
        .flat_map(|patch| &patch.mutations)
        .filter_map(|mutation| {
            let blob = mutation.record.as_ref()?.index.as_ref()?.blob.as_deref()?;
            blob.try_into().ok()
        })
        .collect();
    indexes.sort_unstable();
    indexes.dedup();
    indexes
}

/// The state a decoder starts from: the stored version and hash (none stored: version 0) and the value MACs
/// loaded for the indexes it will touch.
pub fn stored_state(
    version: Option<&AppStateVersion>,
    macs: impl IntoIterator<Item = MutationMac>,
) -> CollectionState {
    let mut state = CollectionState::new();
    if let Some(stored) = version {
        state.version = stored.version;
        state.hash = LtHash::from_bytes(stored.hash);
    }
    state
        .index_value_macs
        .extend(macs.into_iter().map(|mac| (mac.index_mac, mac.value_mac)));
    state
}

#[cfg(test)]
mod tests {
    use super::*;
    use whatsapp_appstate::{AppStateKey, PatchBuilder, PatchInfo};
    use whatsapp_proto::e2e::message::{AppStateSyncKey as KeyProto, AppStateSyncKeyData, AppStateSyncKeyId};

    fn answer(collection: Node) -> Node {
        Node::new("iq")
            .attr("type", "result")
            .children([Node::new("sync").children([collection])])
    }

    #[test]
    fn queries_name_the_collection_and_version() {
        let full = fetch_query(CollectionName::RegularHigh, None);
        let request = full.child("sync").and_then(|s| s.child("collection")).unwrap();
        assert_eq!(full.optional_str_attr("xmlns"), Some(NAMESPACE));
        assert_eq!(request.optional_str_attr("name"), Some("regular_high"));
        assert_eq!(request.optional_str_attr("return_snapshot"), Some("true"));
        assert_eq!(request.optional_str_attr("version"), None);
        let since = fetch_query(CollectionName::Regular, Some(7));
        let request = since.child("sync").and_then(|s| s.child("collection")).unwrap();
        assert_eq!(request.optional_str_attr("version"), Some("7"));
        assert_eq!(request.optional_str_attr("return_snapshot"), Some("false"));
    }

    #[test]
    fn patches_travel_both_ways() {
        let key = AppStateKey::new(vec![9; 32]);
        let builder = PatchBuilder::new(vec![1, 2], &key);
        let chat = "15550001111@s.whatsapp.net".parse().unwrap();
        let info = PatchInfo::pin(&chat, true, 1_700_000_000_000);
        let built = builder
            .build_patch(&info, &CollectionState::new(), &[[3; 16]])
            .unwrap();
        let upload = patch_query(info.collection, 0, &built.patch);
        let sent = upload
            .child("sync")
            .and_then(|s| s.child("collection"))
            .unwrap()
            .clone();
        // The server answers with the same patch in a <patches> list.
        let bytes = sent.child("patch").and_then(Node::content_bytes).unwrap().clone();
        let reply = answer(
            Node::new("collection")
                .attr("name", "regular_low")
                .attr("version", "1")
                .children([Node::new("patches").children([Node::new("patch").bytes(bytes)])]),
        );
        let parsed = parse_answer(&reply).unwrap();
        assert_eq!(parsed.collection, CollectionName::RegularLow);
        assert!(!parsed.has_more && parsed.error.is_none() && parsed.snapshot.is_none());
        let [ParsedPatch::Complete(patch)] = parsed.patches.as_slice() else {
            panic!("one inline patch expected");
        };
        assert_eq!(patch, &built.patch);
        assert_eq!(
            touched_indexes(std::slice::from_ref(patch)),
            builder.index_macs(&info)
        );
    }

    #[test]
    fn conflicts_and_bad_answers_are_reported() {
        let conflict = answer(
            Node::new("collection")
                .attr("name", "regular")
                .attr("type", "error")
                .children([Node::new("error").attr("code", "409").attr("text", "conflict")]),
        );
        assert!(parse_answer(&conflict).unwrap().is_conflict());
        assert_eq!(
            parse_answer(&answer(Node::new("collection").attr("name", "nope"))).unwrap_err(),
            ResponseError::Invalid("collection name")
        );
        let garbage = answer(
            Node::new("collection")
                .attr("name", "regular")
                .children([Node::new("patches").children([Node::new("patch").bytes(vec![0xFF; 3])])]),
        );
        assert_eq!(
            parse_answer(&garbage).unwrap_err(),
            ResponseError::Invalid("patch")
        );
        assert_eq!(
            parse_answer(&Node::new("iq")).unwrap_err(),
            ResponseError::Missing("sync/collection")
        );
    }

    #[test]
    fn server_sync_lists_known_collections_once() {
        let notification = Node::new("notification").attr("type", "server_sync").children([
            Node::new("collection")
                .attr("name", "regular_low")
                .attr("version", "3"),
            Node::new("collection")
                .attr("name", "regular_low")
                .attr("version", "4"),
            Node::new("collection").attr("name", "unheard_of"),
            Node::new("collection").attr("name", "critical_block"),
        ]);
        assert_eq!(
            changed_collections(&notification),
            vec![CollectionName::CriticalBlock, CollectionName::RegularLow]
        );
        assert!(changed_collections(&Node::new("notification").attr("type", "devices")).is_empty());
    }

    #[test]
    fn key_shares_become_stored_keys() {
        let share = AppStateSyncKeyShare {
            keys: vec![
                KeyProto {
                    key_id: Some(AppStateSyncKeyId {
                        key_id: Some(vec![0, 1]),
                    }),
                    key_data: Some(AppStateSyncKeyData {
                        key_data: Some(vec![5; 32]),
                        fingerprint: None,
                        timestamp: Some(10),
                    }),
                },
                KeyProto {
                    key_id: Some(AppStateSyncKeyId {
                        key_id: Some(vec![0, 2]),
                    }),
                    key_data: Some(AppStateSyncKeyData {
                        key_data: Some(vec![6; 32]),
                        fingerprint: None,
                        timestamp: Some(20),
                    }),
                },
                KeyProto::default(),
            ],
        };
        let message = ProtocolMessage {
            r#type: Some(protocol_message::Type::AppStateSyncKeyShare as i32),
            app_state_sync_key_share: Some(share),
            ..Default::default()
        };
        let keys = shared_keys(key_share(&message).unwrap());
        assert_eq!(keys.len(), 2);
        assert_eq!(newest_key(&keys).unwrap().id, vec![0, 2]);
        assert!(key_share(&ProtocolMessage::default()).is_none());
    }

    #[test]
    fn stored_rows_become_decoder_state() {
        let version = AppStateVersion {
            version: 4,
            hash: [7; 128],
        };
        let mac = MutationMac {
            index_mac: [1; 32],
            value_mac: [2; 32],
        };
        let state = stored_state(Some(&version), [mac]);
        assert_eq!(state.version, 4);
        assert_eq!(state.hash.as_bytes(), &[7; 128]);
        assert_eq!(state.index_value_macs.get(&[1; 32]), Some(&[2; 32]));
        assert_eq!(stored_state(None, []).version, 0);
    }

    #[test]
    fn key_ids_are_collected_once_and_requested() {
        use whatsapp_proto::server_sync::{KeyId, SyncdMutation, SyncdRecord};
        let key = |id: &[u8]| {
            Some(KeyId {
                id: Some(id.to_vec()),
            })
        };
        let record = |id: &[u8]| SyncdRecord {
            key_id: key(id),
            ..Default::default()
        };
        let snapshot = SyncdSnapshot {
            key_id: key(b"a"),
            records: vec![record(b"a"), record(b"b")],
            ..Default::default()
        };
        let patch = SyncdPatch {
            key_id: key(b"c"),
            mutations: vec![SyncdMutation {
                record: Some(record(b"b")),
                ..Default::default()
            }],
            ..Default::default()
        };
        assert_eq!(
            referenced_key_ids(Some(&snapshot), std::slice::from_ref(&patch)),
            vec![b"a".to_vec(), b"b".to_vec(), b"c".to_vec()]
        );
        assert_eq!(
            referenced_key_ids(None, &[patch]),
            vec![b"c".to_vec(), b"b".to_vec()]
        );
        let request = key_request(&[b"c".to_vec()]);
        let protocol = request.protocol_message.unwrap();
        assert_eq!(
            protocol.r#type,
            Some(protocol_message::Type::AppStateSyncKeyRequest as i32)
        );
        assert_eq!(
            protocol.app_state_sync_key_request.unwrap().key_ids[0]
                .key_id
                .as_deref(),
            Some(&b"c"[..])
        );
    }
}
