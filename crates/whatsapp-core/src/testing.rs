//! Helpers shared by the engine's unit tests: devices on a memory backend with a prekey, and their bundles.

use rand::rngs::StdRng;
use whatsapp_signal::{PreKeyBundle, PublicKey};
use whatsapp_store::{Backend, Device, MemoryAccount, MemoryBackend, PreKeyStore};

use crate::device::{generate_prekeys, new_device};

/// A new device stored on `backend`, with one prekey generated and not yet uploaded.
pub(crate) async fn device_with_prekey(backend: &MemoryBackend, rng: &mut StdRng) -> (MemoryAccount, Device) {
    let device = new_device(rng);
    let account = backend.create_account(&device).await.unwrap();
    let ids = account.reserve_prekey_ids(1).await.unwrap();
    account.put_prekeys(&generate_prekeys(&ids, rng)).await.unwrap();
    (account, device)
}

/// The bundle the server would hand out for `device`: its signed prekey and its first pending prekey.
pub(crate) async fn bundle(account: &MemoryAccount, device: &Device) -> PreKeyBundle {
    let prekey = account.pending_prekeys(1).await.unwrap().remove(0);
    PreKeyBundle {
        registration_id: device.registration_id,
        identity_key: PublicKey::from_bytes(device.identity_key.public),
        signed_pre_key_id: device.signed_prekey.id,
        signed_pre_key: PublicKey::from_bytes(device.signed_prekey.key_pair.public),
        signed_pre_key_signature: device.signed_prekey.signature.to_vec(),
        pre_key: Some((prekey.id, PublicKey::from_bytes(prekey.key_pair.public))),
    }
}
