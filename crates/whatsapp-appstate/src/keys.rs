//! App-state sync keys and their expansion into the five mutation keys.

use std::fmt;

use hkdf::Hkdf;
use sha2::Sha256;
use zeroize::{Zeroize, ZeroizeOnDrop};

/// HKDF info string of the mutation key expansion (protocol-facts §3.8).
const MUTATION_KEYS_INFO: &[u8] = b"WhatsApp Mutation Keys";

/// Length of the expanded key material: five 32-byte keys (protocol-facts §3.8).
pub const EXPANDED_KEY_LEN: usize = 160;

/// An app-state sync key as shared by the primary device (`AppStateSyncKeyShare`).
///
/// The key data is kept secret: it is zeroized on drop and `Debug` does not print it.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct AppStateKey {
    data: Vec<u8>,
}

impl AppStateKey {
    /// Wraps the `keyData` of an `AppStateSyncKey`.
    pub fn new(data: impl Into<Vec<u8>>) -> Self {
        Self { data: data.into() }
    }

    /// The raw key data.
    pub fn as_bytes(&self) -> &[u8] {
        &self.data
    }

    /// Expands the key into the five mutation keys with
    /// `HKDF-SHA256(keyData, salt = empty, "WhatsApp Mutation Keys", 160)` (protocol-facts §3.8).
    pub fn expand(&self) -> MutationKeys {
        let mut okm = [0u8; EXPANDED_KEY_LEN];
        let hkdf = Hkdf::<Sha256>::new(None, &self.data);
        #[allow(
            clippy::expect_used,
            reason = "160 bytes is far below HKDF-SHA256's 8160-byte limit"
        )]
        hkdf.expand(MUTATION_KEYS_INFO, &mut okm)
            .expect("160 bytes is a valid HKDF-SHA256 output length");
        let keys = MutationKeys::from_expanded(&okm);
        okm.zeroize();
        keys
    }
}

impl fmt::Debug for AppStateKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AppStateKey { .. }")
    }
}

/// The five keys expanded from an [`AppStateKey`] (protocol-facts §3.8).
///
/// Zeroized on drop; `Debug` does not print them.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct MutationKeys {
    index: [u8; 32],
    value_encryption: [u8; 32],
    value_mac: [u8; 32],
    snapshot_mac: [u8; 32],
    patch_mac: [u8; 32],
}

impl MutationKeys {
    fn from_expanded(okm: &[u8; EXPANDED_KEY_LEN]) -> Self {
        let mut keys = Self {
            index: [0; 32],
            value_encryption: [0; 32],
            value_mac: [0; 32],
            snapshot_mac: [0; 32],
            patch_mac: [0; 32],
        };
        keys.index.copy_from_slice(&okm[0..32]);
        keys.value_encryption.copy_from_slice(&okm[32..64]);
        keys.value_mac.copy_from_slice(&okm[64..96]);
        keys.snapshot_mac.copy_from_slice(&okm[96..128]);
        keys.patch_mac.copy_from_slice(&okm[128..160]);
        keys
    }

    /// Bytes 0..32: the HMAC-SHA256 key of index MACs.
    pub fn index(&self) -> &[u8; 32] {
        &self.index
    }

    /// Bytes 32..64: the AES-256-CBC key of mutation values.
    pub fn value_encryption(&self) -> &[u8; 32] {
        &self.value_encryption
    }

    /// Bytes 64..96: the HMAC-SHA512 key of value MACs.
    pub fn value_mac(&self) -> &[u8; 32] {
        &self.value_mac
    }

    /// Bytes 96..128: the HMAC-SHA256 key of snapshot MACs.
    pub fn snapshot_mac(&self) -> &[u8; 32] {
        &self.snapshot_mac
    }

    /// Bytes 128..160: the HMAC-SHA256 key of patch MACs.
    pub fn patch_mac(&self) -> &[u8; 32] {
        &self.patch_mac
    }
}

impl fmt::Debug for MutationKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("MutationKeys { .. }")
    }
}

/// Where the decoder finds app-state keys by key id.
///
/// Any `Fn(&[u8]) -> Option<AppStateKey>` closure is a lookup. A key that is not found makes decoding fail with
/// [`AppStateError::MissingKey`](crate::AppStateError::MissingKey), which carries the key id so the caller can
/// request it from the primary device.
pub trait KeyLookup {
    /// The key with this id, if the caller has it.
    fn app_state_key(&self, key_id: &[u8]) -> Option<AppStateKey>;
}

impl<F> KeyLookup for F
where
    F: Fn(&[u8]) -> Option<AppStateKey>,
{
    fn app_state_key(&self, key_id: &[u8]) -> Option<AppStateKey> {
        self(key_id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_is_redacted() {
        let key = AppStateKey::new(vec![0x42; 32]);
        assert_eq!(format!("{key:?}"), "AppStateKey { .. }");
        assert_eq!(format!("{:?}", key.expand()), "MutationKeys { .. }");
    }
}
