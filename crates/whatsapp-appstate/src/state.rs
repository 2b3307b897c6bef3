//! Collections, mutation operations and the per-collection state the caller persists.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::str::FromStr;

use crate::lthash::LtHash;
use crate::mac::{IndexMac, ValueMac};

/// An app-state collection (protocol-facts §3.8). Its name enters the snapshot and patch MACs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum CollectionName {
    /// `critical_block`: push name, locale.
    CriticalBlock,
    /// `critical_unblock_low`: contacts.
    CriticalUnblockLow,
    /// `regular_high`: mute, star, delete and clear chat.
    RegularHigh,
    /// `regular_low`: pin, archive, mark read.
    RegularLow,
    /// `regular`: labels and other settings.
    Regular,
}

impl CollectionName {
    /// Every collection, in the order a full sync requests them.
    pub const ALL: [Self; 5] = [
        Self::CriticalBlock,
        Self::CriticalUnblockLow,
        Self::RegularHigh,
        Self::Regular,
        Self::RegularLow,
    ];

    /// The wire name, as used in the `<collection name=...>` attribute and in MACs.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::CriticalBlock => "critical_block",
            Self::CriticalUnblockLow => "critical_unblock_low",
            Self::RegularHigh => "regular_high",
            Self::RegularLow => "regular_low",
            Self::Regular => "regular",
        }
    }
}

impl fmt::Display for CollectionName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The error of parsing an unknown collection name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown app-state collection {0:?}")]
pub struct UnknownCollection(pub String);

impl FromStr for CollectionName {
    type Err = UnknownCollection;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|name| name.as_str() == s)
            .ok_or_else(|| UnknownCollection(s.to_owned()))
    }
}

/// What a mutation does to its index (`SyncdMutation.SyncdOperation`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Operation {
    /// Sets the index to a new value (wire value 0).
    Set,
    /// Removes the index (wire value 1).
    Remove,
}

impl Operation {
    /// The first byte of the value MAC input: the wire value plus one.
    pub const fn mac_byte(self) -> u8 {
        match self {
            Self::Set => 0x01,
            Self::Remove => 0x02,
        }
    }

    /// The protobuf enum value.
    pub const fn wire_value(self) -> i32 {
        match self {
            Self::Set => 0,
            Self::Remove => 1,
        }
    }

    /// The operation of a protobuf enum value, if known.
    pub const fn from_wire_value(value: i32) -> Option<Self> {
        match value {
            0 => Some(Self::Set),
            1 => Some(Self::Remove),
            _ => None,
        }
    }
}

/// The verified state of one collection, as the caller persists it between syncs.
///
/// Plain data: the version of the last applied patch, the LTHash, and for every live index its value MAC (the
/// previous value MAC is needed to subtract it from the LTHash when the index is overwritten or removed).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CollectionState {
    /// Version of the last applied snapshot or patch; 0 before the first sync.
    pub version: u64,
    /// LTHash over the value MACs of every live index.
    pub hash: LtHash,
    /// Index MAC to value MAC of every live index.
    pub index_value_macs: HashMap<IndexMac, ValueMac>,
}

impl CollectionState {
    /// The state of a collection that was never synced: version 0, zero hash, no indexes.
    pub fn new() -> Self {
        Self::default()
    }

    /// Applies a verified update, as the store does when it persists it.
    pub fn apply(&mut self, update: &StateUpdate) {
        if update.replaces_all {
            self.index_value_macs.clear();
        }
        for index_mac in &update.removed {
            self.index_value_macs.remove(index_mac);
        }
        self.index_value_macs
            .extend(update.added.iter().map(|(index, value)| (*index, *value)));
        self.version = update.version;
        self.hash = update.hash;
    }
}

/// The change to a [`CollectionState`] that a decoded (and fully verified) snapshot or patch list makes, or that a
/// built patch will make once the server accepts it.
///
/// To persist: if `replaces_all`, drop every stored index first; then delete `removed`, insert or overwrite
/// `added`, and store `version` and `hash`. An index is never in both `added` and `removed`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StateUpdate {
    /// The new version.
    pub version: u64,
    /// The new LTHash.
    pub hash: LtHash,
    /// True when a snapshot replaced the whole collection: earlier indexes are gone.
    pub replaces_all: bool,
    /// Indexes set, with their new value MACs.
    pub added: BTreeMap<IndexMac, ValueMac>,
    /// Indexes removed.
    pub removed: BTreeSet<IndexMac>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn collection_names_round_trip() {
        for name in CollectionName::ALL {
            assert_eq!(name.as_str().parse::<CollectionName>(), Ok(name));
        }
        assert!("nope".parse::<CollectionName>().is_err());
    }
}
