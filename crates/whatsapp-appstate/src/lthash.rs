//! LTHash, the homomorphic set hash that summarises a collection's state.

use std::fmt;

use hkdf::Hkdf;
use sha2::Sha256;

/// Length of the LTHash state in bytes: 64 little-endian `u16` lanes (protocol-facts §3.8).
pub const LT_HASH_LEN: usize = 128;

/// HKDF info string that expands one item into 128 bytes (`lthash.WAPatchIntegrity`, protocol-facts §3.8).
const PATCH_INTEGRITY_INFO: &[u8] = b"WhatsApp Patch Integrity";

/// The 128-byte LTHash of a collection ("WhatsApp Patch Integrity").
///
/// Each item (a value MAC) is expanded with `HKDF-SHA256(item, salt = empty, "WhatsApp Patch Integrity", 128)`
/// and added to or subtracted from the state lane-wise, as 64 little-endian `u16` values with wrap-around.
/// Adding and then subtracting the same item gives the original state back.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct LtHash([u8; LT_HASH_LEN]);

impl LtHash {
    /// The state of an empty collection: all zero.
    pub const ZERO: Self = Self([0; LT_HASH_LEN]);

    /// A state from its 128 bytes, as persisted.
    pub const fn from_bytes(bytes: [u8; LT_HASH_LEN]) -> Self {
        Self(bytes)
    }

    /// The 128 bytes of the state, to persist or to feed the snapshot MAC.
    pub const fn as_bytes(&self) -> &[u8; LT_HASH_LEN] {
        &self.0
    }

    /// Expands one item into the 128 bytes that are added or subtracted.
    pub fn expand(item: &[u8]) -> [u8; LT_HASH_LEN] {
        let mut out = [0u8; LT_HASH_LEN];
        let hkdf = Hkdf::<Sha256>::new(None, item);
        #[allow(
            clippy::expect_used,
            reason = "128 bytes is far below HKDF-SHA256's 8160-byte limit"
        )]
        hkdf.expand(PATCH_INTEGRITY_INFO, &mut out)
            .expect("128 bytes is a valid HKDF-SHA256 output length");
        out
    }

    /// Adds one item.
    pub fn add(&mut self, item: &[u8]) {
        self.combine(&Self::expand(item), u16::wrapping_add);
    }

    /// Subtracts one item.
    pub fn subtract(&mut self, item: &[u8]) {
        self.combine(&Self::expand(item), u16::wrapping_sub);
    }

    /// Subtracts every item of `removed`, then adds every item of `added`.
    pub fn subtract_then_add<'a>(
        &mut self,
        removed: impl IntoIterator<Item = &'a [u8]>,
        added: impl IntoIterator<Item = &'a [u8]>,
    ) {
        for item in removed {
            self.subtract(item);
        }
        for item in added {
            self.add(item);
        }
    }

    fn combine(&mut self, expanded: &[u8; LT_HASH_LEN], op: fn(u16, u16) -> u16) {
        for (lane, other) in self.0.chunks_exact_mut(2).zip(expanded.chunks_exact(2)) {
            let a = u16::from_le_bytes([lane[0], lane[1]]);
            let b = u16::from_le_bytes([other[0], other[1]]);
            lane.copy_from_slice(&op(a, b).to_le_bytes());
        }
    }
}

impl Default for LtHash {
    fn default() -> Self {
        Self::ZERO
    }
}

impl From<[u8; LT_HASH_LEN]> for LtHash {
    fn from(bytes: [u8; LT_HASH_LEN]) -> Self {
        Self(bytes)
    }
}

impl TryFrom<&[u8]> for LtHash {
    type Error = std::array::TryFromSliceError;

    fn try_from(bytes: &[u8]) -> Result<Self, Self::Error> {
        Ok(Self(bytes.try_into()?))
    }
}

impl fmt::Debug for LtHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("LtHash(")?;
        for byte in &self.0 {
            write!(f, "{byte:02x}")?;
        }
        f.write_str(")")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn add_then_subtract_is_identity() {
        let mut hash = LtHash::ZERO;
        hash.add(b"first");
        let one = hash;
        hash.add(b"second");
        hash.subtract(b"second");
        assert_eq!(hash, one);
        hash.subtract(b"first");
        assert_eq!(hash, LtHash::ZERO);
    }
}
