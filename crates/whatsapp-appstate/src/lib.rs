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
//! ```
//! use whatsapp_appstate::{Action, AppStateKey, CollectionState, PatchBuilder, PatchInfo, decode_patches};
//!
//! let lookup = |id: &[u8]| (id == [0, 1]).then(|| AppStateKey::new(vec![7; 32]));
//! let chat: whatsapp_binary::Jid = "15550002222@s.whatsapp.net".parse()?;
//! let mut state = CollectionState::new();
//!
//! // Pin a chat: build the patch this device sends (one fresh random IV per mutation in real use)...
//! let info = PatchInfo::pin(&chat, true, 1_700_000_000_000);
//! let builder = PatchBuilder::new(vec![0, 1], &AppStateKey::new(vec![7; 32]));
//! let built = builder.build_patch(&info, &state, &[[0x42; 16]])?;
//!
//! // ...and decode it the way another device receives it, verifying every MAC.
//! let decoded = decode_patches(info.collection, &state, &[built.patch], &lookup)?;
//! assert_eq!(decoded.mutations[0].action()?, Action::Pin { chat, pinned: true });
//! state.apply(&decoded.update);
//! assert_eq!(state.version, 1);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
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
