//! A new device's keys, and the prekeys it uploads (protocol-facts §2, §3.5).
//!
//! Key generation takes the random source as an argument, like the rest of the engine; the caller stores what
//! comes out.

use rand_core::{CryptoRng, RngCore};
use whatsapp_signal::{KeyPair, PrivateKey};
use whatsapp_store::{Device, KeyPairBytes, PreKey, SignedPreKey};
use zeroize::Zeroize;

use crate::payload::RegistrationKeys;
use crate::policy::UploadKey;

/// The id of the signed prekey a new device creates.
pub const SIGNED_PREKEY_ID: u32 = 1;

/// The stored form of a key pair.
pub fn key_pair_bytes(pair: &KeyPair) -> KeyPairBytes {
    KeyPairBytes {
        public: *pair.public.as_bytes(),
        private: pair.private.to_bytes(),
    }
}

/// The key pair of a stored form (the public half is recomputed from the private one).
pub fn key_pair(bytes: &KeyPairBytes) -> KeyPair {
    KeyPair::from_private(PrivateKey::from_bytes(bytes.private))
}

/// A device that has never paired: fresh Noise and identity keys, a registration id in `1..=16380` (Signal's
/// 14-bit range), a signed prekey signed by the identity key, and a random ADV secret.
pub fn new_device(rng: &mut (impl RngCore + CryptoRng)) -> Device {
    let noise = KeyPair::generate(rng);
    let identity = KeyPair::generate(rng);
    let signed = KeyPair::generate(rng);
    let signature = identity.private.sign(&signed.public.serialize(), rng);
    let mut adv_secret = [0u8; 32];
    rng.fill_bytes(&mut adv_secret);
    let device = Device {
        noise_key: key_pair_bytes(&noise),
        identity_key: key_pair_bytes(&identity),
        registration_id: rng.next_u32() % 16_380 + 1,
        signed_prekey: SignedPreKey {
            id: SIGNED_PREKEY_ID,
            key_pair: key_pair_bytes(&signed),
            signature,
        },
        adv_secret,
        jid: None,
        lid: None,
        account_identity: None,
        platform: String::new(),
        business_name: String::new(),
        push_name: String::new(),
    };
    adv_secret.zeroize();
    device
}

/// The public keys of `device` for its registration payload.
pub fn registration_keys(device: &Device) -> RegistrationKeys {
    RegistrationKeys {
        registration_id: device.registration_id,
        identity_public: device.identity_key.public,
        signed_prekey_id: device.signed_prekey.id,
        signed_prekey_public: device.signed_prekey.key_pair.public,
        signed_prekey_signature: device.signed_prekey.signature,
    }
}

/// Fresh one-time prekeys for the reserved `ids`, not yet uploaded.
pub fn generate_prekeys(ids: &[u32], rng: &mut (impl RngCore + CryptoRng)) -> Vec<PreKey> {
    ids.iter()
        .map(|&id| PreKey {
            id,
            key_pair: key_pair_bytes(&KeyPair::generate(rng)),
            uploaded: false,
        })
        .collect()
}

/// The prekey upload IQ of `device` carrying `prekeys` (see [`crate::policy::prekey_upload`]).
pub fn prekey_upload_for(device: &Device, prekeys: &[PreKey]) -> whatsapp_binary::Node {
    let keys: Vec<UploadKey> = prekeys
        .iter()
        .map(|k| UploadKey {
            id: k.id,
            public: k.key_pair.public,
        })
        .collect();
    crate::policy::prekey_upload(
        device.registration_id,
        &device.identity_key.public,
        &keys,
        &UploadKey {
            id: device.signed_prekey.id,
            public: device.signed_prekey.key_pair.public,
        },
        &device.signed_prekey.signature,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use whatsapp_signal::PublicKey;

    #[test]
    fn new_device_is_consistent() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(3);
        let device = new_device(&mut rng);
        // The stored public halves match the private halves.
        for pair in [
            &device.noise_key,
            &device.identity_key,
            &device.signed_prekey.key_pair,
        ] {
            assert_eq!(*key_pair(pair).public.as_bytes(), pair.public);
        }
        let identity = PublicKey::from_bytes(device.identity_key.public);
        let signed = PublicKey::from_bytes(device.signed_prekey.key_pair.public);
        assert!(identity.verify_signature(&signed.serialize(), &device.signed_prekey.signature));
        assert!((1..=16_380).contains(&device.registration_id));
        assert!(device.jid.is_none());
        assert_ne!(
            new_device(&mut rng).identity_key.public,
            device.identity_key.public
        );
    }

    #[test]
    fn prekeys_get_their_ids_and_upload_carries_them() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(4);
        let device = new_device(&mut rng);
        let prekeys = generate_prekeys(&[7, 8, 0x00AB_CDEF], &mut rng);
        assert_eq!(
            prekeys.iter().map(|k| k.id).collect::<Vec<_>>(),
            vec![7, 8, 0x00AB_CDEF]
        );
        assert!(prekeys.iter().all(|k| !k.uploaded));
        let iq = prekey_upload_for(&device, &prekeys);
        let list = iq.child("list").unwrap();
        let ids: Vec<Vec<u8>> = list
            .children_by_tag("key")
            .map(|k| k.child("id").unwrap().content_bytes().unwrap().to_vec())
            .collect();
        assert_eq!(ids, vec![vec![0, 0, 7], vec![0, 0, 8], vec![0xAB, 0xCD, 0xEF]]);
        let skey = iq.child("skey").unwrap();
        assert_eq!(
            skey.child("signature").unwrap().content_bytes().unwrap().as_ref(),
            device.signed_prekey.signature.as_slice()
        );
    }
}
