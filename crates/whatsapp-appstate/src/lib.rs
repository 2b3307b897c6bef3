//! App-state sync ("syncd") of the WhatsApp Web multi-device protocol.
//!
//! This is the sync layer. WhatsApp keeps per-account settings (mutes, pins, archives, contacts, labels, push
//! name...) in five collections of encrypted key/value mutations. This crate expands sync keys, keeps the
//! collections' LTHash, decodes snapshots and patches verifying every MAC, types the actions they carry, and builds
//! outgoing patches with the MACs a server verifies. The facts it implements are in protocol-facts §3.8.
//!
//! Entry types:
//! - [`CollectionDecoder`] (and [`decode_snapshot`], [`decode_patches`]): verify and decode, returning
//!   [`Mutation`]s and a [`StateUpdate`] for the caller to persist;
//! - [`CollectionState`]: the plain data the caller persists per collection (version, [`LtHash`], index-MAC to
//!   value-MAC map);
//! - [`Action`]: the typed meaning of a mutation (mute, pin, archive, contact, labels...), with unknown actions
//!   kept raw in the [`Mutation`];
//! - [`PatchInfo`] and [`PatchBuilder`]: outgoing patches (and snapshots, for servers and tests);
//! - [`AppStateKey`] and the [`KeyLookup`] the decoder finds keys through.
//!
//! What it does not do: no I/O and no fetching. Patches whose mutations are in an external blob come back as
//! [`ParsedPatch::NeedsDownload`]; the caller downloads and decrypts the blob and hands the bytes back. It does not
//! persist anything, does not request missing keys, and does not read a clock or a random number generator:
//! timestamps and IVs are passed in.

mod action;
mod decode;
mod encode;
mod error;
mod keys;
mod lthash;
pub mod mac;
mod state;

pub use action::{Action, ActionError, MessageRef};
pub use decode::{
    CollectionDecoder, Decoded, Mutation, ParsedPatch, PendingPatch, decode_patches, decode_snapshot,
    parse_patch, parse_snapshot, parse_snapshot_reference,
};
pub use encode::{BuildError, BuiltPatch, BuiltSnapshot, MutationInfo, PatchBuilder, PatchInfo};
pub use error::AppStateError;
pub use keys::{AppStateKey, EXPANDED_KEY_LEN, KeyLookup, MutationKeys};
pub use lthash::{LT_HASH_LEN, LtHash};
pub use mac::{IndexMac, ValueMac};
pub use state::{CollectionName, CollectionState, Operation, StateUpdate, UnknownCollection};
