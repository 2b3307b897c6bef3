//! What a primary phone sends its companions after linking them: end-to-end encrypted peer messages carrying the
//! app-state sync key (protocol-facts §3.8) and history sync notifications (§3.9), and app-state patches of its
//! own.
//!
//! The phone is the Signal initiator: it starts a session from the companion's uploaded prekey bundle, with the
//! account identity key, as device 0 of the account. The history blob is compressed, encrypted and hosted on the
//! media host here, independently of the client's media code.

use aes::Aes256;
use cbc::cipher::{BlockEncryptMut, KeyIvInit};
use hkdf::Hkdf;
use hmac::{Hmac, Mac};
use rand::RngCore;
use rand::rngs::OsRng;
use sha2::{Digest, Sha256};
use whatsapp_appstate::{
    AppStateKey, CollectionName, CollectionState, PatchBuilder, PatchInfo, decode_patches,
};
use whatsapp_binary::{Jid, Node};
use whatsapp_proto::ProtoMessage;
use whatsapp_proto::e2e::Message;
use whatsapp_proto::e2e::message::{
    AppStateSyncKey, AppStateSyncKeyData, AppStateSyncKeyFingerprint, AppStateSyncKeyId,
    AppStateSyncKeyShare, HistorySyncNotification, ProtocolMessage, protocol_message,
};
use whatsapp_proto::history_sync::HistorySync;
use whatsapp_proto::server_sync::SyncdPatch;
use whatsapp_signal::{LocalIdentity, PreKeyBundle, PublicKey};

use crate::phone::{Phone, PhoneError};
use crate::routing::deliver;
use crate::state::{State, device_jid, unix_now};

impl Phone {
    /// Sends the account's app-state sync key to every linked companion in a key-share peer message (the key is
    /// made on first use and then kept); returns how many companions it was sent to. Companions need it to read
    /// and write app state.
    pub fn share_app_state_key(&self) -> Result<usize, PhoneError> {
        let mut state = self.shared.lock();
        let (key_id, key_data) = app_state_key(&mut state, &self.number)?;
        let share = ProtocolMessage {
            r#type: Some(protocol_message::Type::AppStateSyncKeyShare as i32),
            app_state_sync_key_share: Some(AppStateSyncKeyShare {
                keys: vec![AppStateSyncKey {
                    key_id: Some(AppStateSyncKeyId { key_id: Some(key_id) }),
                    key_data: Some(AppStateSyncKeyData {
                        key_data: Some(key_data),
                        fingerprint: Some(AppStateSyncKeyFingerprint {
                            raw_id: Some(1),
                            current_index: Some(0),
                            device_indexes: vec![0],
                        }),
                        timestamp: Some(unix_now() as i64 * 1000),
                    }),
                }],
            }),
            ..Default::default()
        };
        let devices = companions(&state, &self.number)?;
        for device in &devices {
            send_peer(&mut state, &self.number, *device, &protocol(share.clone()))?;
        }
        Ok(devices.len())
    }

    /// Writes `info` into the account's app state as the phone would (encrypted with the shared key), after the
    /// patches already there; every companion is notified. Returns the collection's new version.
    pub fn push_app_state(&self, info: &PatchInfo) -> Result<u64, PhoneError> {
        let mut state = self.shared.lock();
        let (key_id, key_data) = app_state_key(&mut state, &self.number)?;
        let key = AppStateKey::new(key_data);
        let name = info.collection;
        let log = state
            .accounts
            .get(&self.number)
            .and_then(|account| account.app_state.get(name.as_str()).cloned())
            .unwrap_or_default();
        let current = replay(name, &log, &key_id, &key)?;
        let mut ivs = vec![[0u8; 16]; info.mutations.len()];
        for iv in &mut ivs {
            OsRng.fill_bytes(iv);
        }
        let built = PatchBuilder::new(key_id, &key)
            .build_patch(info, &current, &ivs)
            .map_err(|e| PhoneError::AppState(e.to_string()))?;
        crate::app_state::push_from_phone(&mut state, &self.number, name.as_str(), built.to_bytes())
            .ok_or(PhoneError::AppState("the account is gone".to_owned()))
    }

    /// Sends companion `device` a history sync: `history` is compressed, encrypted and put on the media host, and
    /// the device gets the notification that names it, as a peer message.
    pub fn send_history_sync(&self, device: &Jid, history: &HistorySync) -> Result<(), PhoneError> {
        if device.user() != self.number {
            return Err(PhoneError::UnknownDevice(device.clone()));
        }
        let host = self
            .shared
            .media
            .get()
            .cloned()
            .ok_or(PhoneError::ConnectionClosed)?;
        let plain = compress(&history.encode_to_vec());
        let mut media_key = [0u8; 32];
        OsRng.fill_bytes(&mut media_key);
        let encrypted = encrypt_media(&plain, &media_key, b"WhatsApp History Keys");
        let notification = HistorySyncNotification {
            file_sha256: Some(Sha256::digest(&plain).to_vec()),
            file_length: Some(plain.len() as u64),
            media_key: Some(media_key.to_vec()),
            file_enc_sha256: Some(Sha256::digest(&encrypted).to_vec()),
            direct_path: Some(host.host("md-msg-hist", encrypted)),
            sync_type: Some(history.sync_type),
            chunk_order: history.chunk_order,
            progress: history.progress,
            ..Default::default()
        };
        let message = protocol(ProtocolMessage {
            r#type: Some(protocol_message::Type::HistorySyncNotification as i32),
            history_sync_notification: Some(notification),
            ..Default::default()
        });
        send_peer(&mut self.shared.lock(), &self.number, device.device(), &message)
    }
}

fn protocol(message: ProtocolMessage) -> Message {
    Message {
        protocol_message: Some(Box::new(message)),
        ..Default::default()
    }
}

/// The account's app-state key, made on first use.
fn app_state_key(state: &mut State, number: &str) -> Result<(Vec<u8>, Vec<u8>), PhoneError> {
    let account = state
        .accounts
        .get_mut(number)
        .ok_or(PhoneError::AppState("no such account".to_owned()))?;
    Ok(account
        .app_state_key
        .get_or_insert_with(|| {
            let mut id = vec![0u8; 6];
            let mut data = vec![0u8; 32];
            OsRng.fill_bytes(&mut id);
            OsRng.fill_bytes(&mut data);
            (id, data)
        })
        .clone())
}

/// The state of a collection after every logged patch, decoded with the phone's key.
fn replay(
    name: CollectionName,
    log: &[Vec<u8>],
    key_id: &[u8],
    key: &AppStateKey,
) -> Result<CollectionState, PhoneError> {
    let patches = log
        .iter()
        .map(|bytes| SyncdPatch::decode(bytes.as_slice()))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| PhoneError::AppState(e.to_string()))?;
    let lookup = |id: &[u8]| (id == key_id).then(|| AppStateKey::new(key.as_bytes().to_vec()));
    let decoded = decode_patches(name, &CollectionState::new(), &patches, &lookup)
        .map_err(|e| PhoneError::AppState(e.to_string()))?;
    let mut state = CollectionState::new();
    state.apply(&decoded.update);
    Ok(state)
}

/// The linked companions of an account.
fn companions(state: &State, number: &str) -> Result<Vec<u16>, PhoneError> {
    Ok(state
        .accounts
        .get(number)
        .ok_or(PhoneError::AppState("no such account".to_owned()))?
        .devices
        .keys()
        .copied()
        .collect())
}

/// Encrypts `message` for companion `device` of the account (starting a session from its uploaded prekeys when
/// there is none) and queues it as a peer message from the phone.
fn send_peer(state: &mut State, number: &str, device: u16, message: &Message) -> Result<(), PhoneError> {
    let jid = device_jid(number, device);
    let account = state
        .accounts
        .get_mut(number)
        .ok_or_else(|| PhoneError::UnknownDevice(jid.clone()))?;
    let local = LocalIdentity {
        identity: account.identity.clone(),
        registration_id: account.registration_id,
    };
    let linked = account
        .devices
        .get_mut(&device)
        .ok_or_else(|| PhoneError::UnknownDevice(jid.clone()))?;
    let mut record = account.sessions.remove(&device).unwrap_or_default();
    if !record.has_current_session() {
        let registration = &linked.registration;
        let bundle = PreKeyBundle {
            registration_id: registration.registration_id,
            identity_key: PublicKey::from_bytes(registration.identity),
            signed_pre_key_id: registration.signed_prekey_id,
            signed_pre_key: PublicKey::from_bytes(registration.signed_prekey),
            signed_pre_key_signature: registration.signed_prekey_signature.to_vec(),
            pre_key: linked
                .prekeys
                .pop_first()
                .map(|(id, key)| (id, PublicKey::from_bytes(key))),
        };
        whatsapp_signal::process_bundle(&mut record, &local, &bundle, &mut OsRng)
            .map_err(|e| PhoneError::Signal(e.to_string()))?;
    }
    let padded = whatsapp_signal::padding::pad(&message.encode_to_vec(), &mut OsRng);
    let encrypted =
        whatsapp_signal::encrypt(&mut record, &padded).map_err(|e| PhoneError::Signal(e.to_string()));
    account.sessions.insert(device, record);
    let encrypted = encrypted?;
    let id = format!("PHONE{:016X}", OsRng.next_u64());
    let stanza = Node::new("message")
        .attr("from", Jid::new(number.to_owned(), Jid::DEFAULT_USER_SERVER))
        .attr("id", id.clone())
        .attr("type", "text")
        .attr("category", "peer")
        .attr("t", unix_now().to_string())
        .children([Node::new("enc")
            .attr("v", "2")
            .attr("type", encrypted.kind())
            .bytes(encrypted.serialized().to_vec())]);
    deliver(state, jid, "message", &id, stanza);
    Ok(())
}

fn compress(data: &[u8]) -> Vec<u8> {
    use std::io::Write as _;
    let mut encoder = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::fast());
    // Writing into a Vec cannot fail.
    let _ = encoder.write_all(data);
    encoder.finish().unwrap_or_default()
}

/// Media encryption (protocol-facts §3.9): HKDF-expanded IV, cipher and MAC keys; AES-256-CBC with PKCS#7; a
/// 10-byte HMAC-SHA256 over IV and ciphertext appended.
fn encrypt_media(plain: &[u8], media_key: &[u8; 32], info: &[u8]) -> Vec<u8> {
    let mut expanded = [0u8; 112];
    // 112 bytes is far below HKDF-SHA256's limit.
    let _ = Hkdf::<Sha256>::new(None, media_key).expand(info, &mut expanded);
    let (iv, rest) = expanded.split_at(16);
    let (cipher_key, rest) = rest.split_at(32);
    let mac_key = &rest[..32];
    let mut file = cbc::Encryptor::<Aes256>::new_from_slices(cipher_key, iv)
        .map(|cipher| cipher.encrypt_padded_vec_mut::<cbc::cipher::block_padding::Pkcs7>(plain))
        .unwrap_or_default();
    let Ok(mut mac) = <Hmac<Sha256> as Mac>::new_from_slice(mac_key) else {
        return Vec::new();
    };
    mac.update(iv);
    mac.update(&file);
    file.extend_from_slice(&mac.finalize().into_bytes()[..10]);
    file
}
