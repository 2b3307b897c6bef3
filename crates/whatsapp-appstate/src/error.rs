//! The errors of decoding and verifying snapshots and patches.

use crate::state::CollectionName;

/// Why a snapshot or patch was rejected.
///
/// Every variant names the collection and the version of the snapshot or patch it happened in, so the client can
/// log it and start recovery (protocol-facts §3.8): a MAC mismatch means the local state or the server's data is
/// inconsistent, a missing key means the key must be requested from the primary device first.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AppStateError {
    /// The key lookup has no key with this id; `key_id` is lowercase hex.
    #[error("{collection} v{version}: no app-state key with id {key_id}")]
    MissingKey {
        /// The collection being decoded.
        collection: CollectionName,
        /// The version of the snapshot or patch.
        version: u64,
        /// The missing key's id, lowercase hex.
        key_id: String,
    },
    /// A mutation's value MAC does not match its encrypted value.
    #[error("{collection} v{version}: value MAC mismatch in mutation {mutation}")]
    ValueMacMismatch {
        /// The collection being decoded.
        collection: CollectionName,
        /// The version of the snapshot or patch.
        version: u64,
        /// Position of the mutation (or snapshot record), from 0.
        mutation: usize,
    },
    /// A mutation's index MAC does not match the index inside its decrypted value.
    #[error("{collection} v{version}: index MAC mismatch in mutation {mutation}")]
    IndexMacMismatch {
        /// The collection being decoded.
        collection: CollectionName,
        /// The version of the snapshot or patch.
        version: u64,
        /// Position of the mutation (or snapshot record), from 0.
        mutation: usize,
    },
    /// The snapshot MAC (over the LTHash after applying) does not match: the local state and the server disagree.
    #[error("{collection} v{version}: snapshot MAC mismatch (LTHash differs from the server's)")]
    SnapshotMacMismatch {
        /// The collection being decoded.
        collection: CollectionName,
        /// The version of the snapshot or patch.
        version: u64,
    },
    /// The patch MAC does not match the patch's snapshot MAC, value MACs, version and collection.
    #[error("{collection} v{version}: patch MAC mismatch")]
    PatchMacMismatch {
        /// The collection being decoded.
        collection: CollectionName,
        /// The version of the patch.
        version: u64,
    },
    /// A mutation is malformed: its value is too short, does not decrypt, or does not decode.
    #[error("{collection} v{version}: malformed mutation {mutation}: {reason}")]
    MalformedMutation {
        /// The collection being decoded.
        collection: CollectionName,
        /// The version of the snapshot or patch.
        version: u64,
        /// Position of the mutation (or snapshot record), from 0.
        mutation: usize,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A field the protocol requires is absent.
    #[error("{collection} v{version}: missing field {field}")]
    MissingField {
        /// The collection being decoded.
        collection: CollectionName,
        /// The version of the snapshot or patch (0 when the version itself is missing).
        version: u64,
        /// The field's name.
        field: &'static str,
    },
    /// The patch's mutations are in an external blob that was not downloaded and attached yet
    /// (see [`PendingPatch`](crate::PendingPatch)).
    #[error("{collection} v{version}: external mutations not downloaded")]
    ExternalMutationsPending {
        /// The collection being decoded.
        collection: CollectionName,
        /// The version of the patch.
        version: u64,
    },
    /// Bytes that should be a protobuf message did not decode.
    #[error("{what} does not decode: {source}")]
    Protobuf {
        /// Which message was expected.
        what: &'static str,
        /// The decoder's error.
        source: prost::DecodeError,
    },
}

impl AppStateError {
    /// True for the MAC and LTHash mismatches after which the client runs recovery (a full sync of the
    /// collection, protocol-facts §3.8).
    pub fn needs_recovery(&self) -> bool {
        matches!(
            self,
            Self::ValueMacMismatch { .. }
                | Self::IndexMacMismatch { .. }
                | Self::SnapshotMacMismatch { .. }
                | Self::PatchMacMismatch { .. }
        )
    }
}

/// Lowercase hex of a key id, for error messages and logs.
pub(crate) fn hex_id(bytes: &[u8]) -> String {
    use std::fmt::Write;
    let mut out = String::with_capacity(bytes.len() * 2);
    for byte in bytes {
        let _ = write!(out, "{byte:02x}");
    }
    out
}
