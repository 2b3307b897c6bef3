//! The MACs of app-state sync and the encryption of mutation values (protocol-facts §3.8).

use aes::Aes256;
use cbc::cipher::block_padding::Pkcs7;
use cbc::cipher::{BlockDecryptMut, BlockEncryptMut, KeyIvInit};
use hmac::{Hmac, Mac};
use sha2::{Sha256, Sha512};

use crate::keys::MutationKeys;
use crate::lthash::LtHash;
use crate::state::Operation;

/// Length of every MAC kept by app-state sync (index, value, snapshot and patch MACs).
pub const MAC_LEN: usize = 32;

/// Length of the AES-CBC IV prepended to an encrypted value.
pub const IV_LEN: usize = 16;

/// AES block length; a PKCS7 ciphertext is a non-zero multiple of it.
const BLOCK_LEN: usize = 16;

/// The MAC of a mutation's index: `HMAC-SHA256(indexKey, indexJSON)`.
pub type IndexMac = [u8; MAC_LEN];

/// The MAC of a mutation's encrypted value: the first 32 bytes of an HMAC-SHA512.
pub type ValueMac = [u8; MAC_LEN];

fn hmac_sha256(key: &[u8; 32], parts: &[&[u8]]) -> [u8; MAC_LEN] {
    #[allow(clippy::expect_used, reason = "HMAC accepts keys of any length")]
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC accepts any key length");
    for part in parts {
        mac.update(part);
    }
    mac.finalize().into_bytes().into()
}

/// `indexMAC = HMAC-SHA256(indexKey, indexJSON)`.
pub fn index_mac(keys: &MutationKeys, index_json: &[u8]) -> IndexMac {
    hmac_sha256(keys.index(), &[index_json])
}

/// `valueMAC = HMAC-SHA512(valueMacKey, [op + 1] || keyID || iv || ciphertext || u64be(len(keyID) + 1))[..32]`.
///
/// `data` is the IV followed by the ciphertext.
pub fn value_mac(keys: &MutationKeys, operation: Operation, key_id: &[u8], data: &[u8]) -> ValueMac {
    #[allow(clippy::expect_used, reason = "HMAC accepts keys of any length")]
    let mut mac = Hmac::<Sha512>::new_from_slice(keys.value_mac()).expect("HMAC accepts any key length");
    mac.update(&[operation.mac_byte()]);
    mac.update(key_id);
    mac.update(data);
    mac.update(&(key_id.len() as u64 + 1).to_be_bytes());
    let full = mac.finalize().into_bytes();
    let mut out = [0u8; MAC_LEN];
    out.copy_from_slice(&full[..MAC_LEN]);
    out
}

/// `snapshotMAC = HMAC-SHA256(snapshotMacKey, ltHash || u64be(version) || collectionName)`.
pub fn snapshot_mac(keys: &MutationKeys, hash: &LtHash, version: u64, collection: &str) -> [u8; MAC_LEN] {
    hmac_sha256(
        keys.snapshot_mac(),
        &[hash.as_bytes(), &version.to_be_bytes(), collection.as_bytes()],
    )
}

/// `patchMAC = HMAC-SHA256(patchMacKey, snapshotMAC || valueMAC_1 .. valueMAC_n || u64be(version) || name)`.
pub fn patch_mac<'a>(
    keys: &MutationKeys,
    snapshot_mac: &[u8],
    value_macs: impl IntoIterator<Item = &'a [u8]>,
    version: u64,
    collection: &str,
) -> [u8; MAC_LEN] {
    #[allow(clippy::expect_used, reason = "HMAC accepts keys of any length")]
    let mut mac = Hmac::<Sha256>::new_from_slice(keys.patch_mac()).expect("HMAC accepts any key length");
    mac.update(snapshot_mac);
    for value_mac in value_macs {
        mac.update(value_mac);
    }
    mac.update(&version.to_be_bytes());
    mac.update(collection.as_bytes());
    mac.finalize().into_bytes().into()
}

/// Encrypts a `SyncActionData` with AES-256-CBC (PKCS7) and returns `iv || ciphertext`.
pub fn encrypt_value(keys: &MutationKeys, iv: &[u8; IV_LEN], plaintext: &[u8]) -> Vec<u8> {
    let ciphertext = cbc::Encryptor::<Aes256>::new(keys.value_encryption().into(), iv.into())
        .encrypt_padded_vec_mut::<Pkcs7>(plaintext);
    let mut out = Vec::with_capacity(IV_LEN + ciphertext.len());
    out.extend_from_slice(iv);
    out.extend_from_slice(&ciphertext);
    out
}

/// Why an encrypted value could not be decrypted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DecryptFailure {
    /// The ciphertext is empty or not a multiple of the block length.
    Length,
    /// The PKCS7 padding is wrong.
    Padding,
}

/// Decrypts `iv || ciphertext` with AES-256-CBC (PKCS7).
pub(crate) fn decrypt_value(keys: &MutationKeys, data: &[u8]) -> Result<Vec<u8>, DecryptFailure> {
    let (iv, ciphertext) = data.split_at_checked(IV_LEN).ok_or(DecryptFailure::Length)?;
    if ciphertext.is_empty() || ciphertext.len() % BLOCK_LEN != 0 {
        return Err(DecryptFailure::Length);
    }
    let iv: &[u8; IV_LEN] = iv.try_into().map_err(|_| DecryptFailure::Length)?;
    cbc::Decryptor::<Aes256>::new(keys.value_encryption().into(), iv.into())
        .decrypt_padded_vec_mut::<Pkcs7>(ciphertext)
        .map_err(|_| DecryptFailure::Padding)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::AppStateKey;

    #[test]
    fn value_round_trip() {
        let keys = AppStateKey::new(vec![7; 32]).expand();
        for len in [0usize, 1, 15, 16, 17, 100] {
            let plaintext = vec![0xab; len];
            let data = encrypt_value(&keys, &[3; IV_LEN], &plaintext);
            assert_eq!(data.len(), IV_LEN + (len / 16 + 1) * 16);
            assert_eq!(decrypt_value(&keys, &data), Ok(plaintext));
        }
        assert_eq!(decrypt_value(&keys, &[0; 16]), Err(DecryptFailure::Length));
        assert_eq!(decrypt_value(&keys, &[0; 33]), Err(DecryptFailure::Length));
    }
}
