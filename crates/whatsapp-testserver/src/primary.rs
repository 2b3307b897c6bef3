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
use whatsapp_proto::e2e::message::peer_data_operation_request_response_message::PeerDataOperationResult;
use whatsapp_proto::e2e::message::peer_data_operation_request_response_message::peer_data_operation_result::PlaceholderMessageResendResponse;
use whatsapp_proto::e2e::message::{
    AppStateSyncKey, AppStateSyncKeyData, AppStateSyncKeyFingerprint, AppStateSyncKeyId,
    AppStateSyncKeyShare, HistorySyncNotification, PeerDataOperationRequestMessage,
    PeerDataOperationRequestResponseMessage, PeerDataOperationRequestType, ProtocolMessage, protocol_message,
};
use whatsapp_proto::history_sync::{HistorySync, WebMessageInfo};
use whatsapp_proto::server_sync::SyncdPatch;
use whatsapp_signal::{
    LocalIdentity, PreKeyBundle, PreKeySignalMessage, PreKeysForMessage, PublicKey, SignalMessage,
};

use crate::phone::{Phone, PhoneError};
use crate::routing::deliver;
use crate::state::{State, device_jid, unix_now};

impl Phone {
    /// Sends the account's current app-state sync key to every linked companion in a key-share peer message (the
    /// key is made on first use and then kept); returns how many companions it was sent to. Companions need it
    /// to read and write app state.
    pub fn share_app_state_key(&self) -> Result<usize, PhoneError> {
        let mut state = self.shared.lock();
        let key = app_state_key(&mut state, &self.number)?;
        let share = key_share(&[key]);
        let devices = companions(&state, &self.number)?;
        for device in &devices {
            send_peer(&mut state, &self.number, *device, &share)?;
        }
        Ok(devices.len())
    }

    /// Makes a new app-state sync key that encrypts the patches pushed from now on, and shares it with nobody:
    /// companions learn of it only by asking (an `AppStateSyncKeyRequest`, which the phone answers with every
    /// requested key it has). Returns the new key's id.
    pub fn rotate_app_state_key(&self) -> Result<Vec<u8>, PhoneError> {
        let mut state = self.shared.lock();
        let account = state
            .accounts
            .get_mut(&self.number)
            .ok_or(PhoneError::AppState("no such account".to_owned()))?;
        let key = new_key();
        account.app_state_keys.push(key.clone());
        Ok(key.0)
    }

    /// Writes `info` into the account's app state as the phone would (encrypted with the shared key), after the
    /// patches already there; every companion is notified. Returns the collection's new version.
    pub fn push_app_state(&self, info: &PatchInfo) -> Result<u64, PhoneError> {
        let mut state = self.shared.lock();
        let (key_id, key_data) = app_state_key(&mut state, &self.number)?;
        let key = AppStateKey::new(key_data);
        let name = info.collection;
        let account = state.accounts.get(&self.number);
        let log = account
            .and_then(|account| account.app_state.get(name.as_str()).cloned())
            .unwrap_or_default();
        let keys = account
            .map(|account| account.app_state_keys.clone())
            .unwrap_or_default();
        let current = replay(name, &log, &keys)?;
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

    /// What this phone received and decrypted (copies sent to device 0: messages from contacts, and the
    /// `DeviceSentMessage` copies of what its companions sent), oldest first.
    pub fn received_messages(&self) -> Vec<PhoneMessage> {
        self.shared
            .lock()
            .accounts
            .get(&self.number)
            .map(|account| account.phone_inbox.clone())
            .unwrap_or_default()
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

/// A key-share peer message with `keys` (id, key data).
fn key_share(keys: &[(Vec<u8>, Vec<u8>)]) -> Message {
    protocol(ProtocolMessage {
        r#type: Some(protocol_message::Type::AppStateSyncKeyShare as i32),
        app_state_sync_key_share: Some(AppStateSyncKeyShare {
            keys: keys
                .iter()
                .map(|(key_id, key_data)| AppStateSyncKey {
                    key_id: Some(AppStateSyncKeyId {
                        key_id: Some(key_id.clone()),
                    }),
                    key_data: Some(AppStateSyncKeyData {
                        key_data: Some(key_data.clone()),
                        fingerprint: Some(AppStateSyncKeyFingerprint {
                            raw_id: Some(1),
                            current_index: Some(0),
                            device_indexes: vec![0],
                        }),
                        timestamp: Some(unix_now() as i64 * 1000),
                    }),
                })
                .collect(),
        }),
        ..Default::default()
    })
}

/// A new random key: a 6-byte id and 32 bytes of key data.
fn new_key() -> (Vec<u8>, Vec<u8>) {
    let mut id = vec![0u8; 6];
    let mut data = vec![0u8; 32];
    OsRng.fill_bytes(&mut id);
    OsRng.fill_bytes(&mut data);
    (id, data)
}

/// The account's current app-state key, made on first use.
fn app_state_key(state: &mut State, number: &str) -> Result<(Vec<u8>, Vec<u8>), PhoneError> {
    let account = state
        .accounts
        .get_mut(number)
        .ok_or(PhoneError::AppState("no such account".to_owned()))?;
    if account.app_state_keys.is_empty() {
        account.app_state_keys.push(new_key());
    }
    account
        .app_state_keys
        .last()
        .cloned()
        .ok_or(PhoneError::AppState("no app-state key".to_owned()))
}

/// The state of a collection after every logged patch, decoded with the phone's keys.
fn replay(
    name: CollectionName,
    log: &[Vec<u8>],
    keys: &[(Vec<u8>, Vec<u8>)],
) -> Result<CollectionState, PhoneError> {
    let patches = log
        .iter()
        .map(|bytes| SyncdPatch::decode(bytes.as_slice()))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| PhoneError::AppState(e.to_string()))?;
    let lookup = |id: &[u8]| {
        keys.iter()
            .find(|(key_id, _)| key_id == id)
            .map(|(_, data)| AppStateKey::new(data.clone()))
    };
    let decoded = decode_patches(name, &CollectionState::new(), &patches, &lookup)
        .map_err(|e| PhoneError::AppState(e.to_string()))?;
    let mut state = CollectionState::new();
    state.apply(&decoded.update);
    Ok(state)
}

/// A peer message `id` from companion `device` of account `number` to its phone: decrypted with the phone's
/// session with that device (a `msg` on the session the phone started at linking, or a `pkmsg` from a companion
/// that starts one from the phone's prekeys). An `AppStateSyncKeyRequest` is answered with a key share of the requested keys the phone has (none
/// when it has none of them, as a phone that lost them would); a placeholder resend request with the messages
/// the phone received (see [`answer_placeholder_request`]); anything else is read and dropped.
pub(crate) fn receive_peer(
    state: &mut State,
    number: &str,
    device: u16,
    id: &str,
    enc: &Node,
) -> Result<(), String> {
    let kind = enc.optional_str_attr("type").unwrap_or_default();
    let bytes = enc.content_bytes().ok_or("empty <enc>")?;
    // Usually a `msg` on the session the phone started; a companion that lost it starts one with a `pkmsg`.
    let padded = open_pairwise(state, number, &device_jid(number, device), kind, bytes)?;
    let plaintext = whatsapp_signal::padding::unpad(&padded).map_err(|e| e.to_string())?;
    let account = state.accounts.get_mut(number).ok_or("no such account")?;
    let message = Message::decode(plaintext).map_err(|e| e.to_string())?;
    if let Some(request) = message
        .protocol_message
        .as_ref()
        .and_then(|p| p.peer_data_operation_request_message.as_ref())
        .filter(|r| {
            r.peer_data_operation_request_type() == PeerDataOperationRequestType::PlaceholderMessageResend
        })
    {
        let answer = answer_placeholder_request(account, id, request);
        return send_peer(state, number, device, &answer).map_err(|e| e.to_string());
    }
    let Some(request) = message
        .protocol_message
        .as_ref()
        .filter(|p| p.r#type == Some(protocol_message::Type::AppStateSyncKeyRequest as i32))
        .and_then(|p| p.app_state_sync_key_request.as_ref())
    else {
        return Ok(());
    };
    let wanted: Vec<&[u8]> = request
        .key_ids
        .iter()
        .filter_map(|id| id.key_id.as_deref())
        .collect();
    let found: Vec<(Vec<u8>, Vec<u8>)> = account
        .app_state_keys
        .iter()
        .filter(|(id, _)| wanted.contains(&id.as_slice()))
        .cloned()
        .collect();
    send_peer(state, number, device, &key_share(&found)).map_err(|e| e.to_string())
}

/// The phone's answer to a placeholder resend request (whatsmeow `send.go` BuildUnavailableMessageRequest, read
/// back by `message.go` handlePlaceholderResendResponse): for each requested key, the message with that id
/// from the phone's own copies, as a `WebMessageInfo` under the key as asked (the content of a copy from the
/// account's own device is the message inside its `DeviceSentMessage`). A message the phone never received is
/// left out.
fn answer_placeholder_request(
    account: &crate::state::Account,
    request_id: &str,
    request: &PeerDataOperationRequestMessage,
) -> Message {
    let results = request
        .placeholder_message_resend_request
        .iter()
        .filter_map(|asked| {
            let key = asked.message_key.clone()?;
            let received = account
                .phone_inbox
                .iter()
                .rev()
                .find(|m| Some(m.id.as_str()) == key.id.as_deref())?;
            let mut content = received.message.clone();
            if let Some(inner) = content.device_sent_message.take().and_then(|dsm| dsm.message) {
                content = *inner;
            }
            content.sender_key_distribution_message = None;
            let web = WebMessageInfo {
                key,
                message: Some(content),
                message_timestamp: Some(unix_now()),
                ..Default::default()
            };
            Some(PeerDataOperationResult {
                placeholder_message_resend_response: Some(PlaceholderMessageResendResponse {
                    web_message_info_bytes: Some(web.encode_to_vec()),
                }),
                ..Default::default()
            })
        })
        .collect();
    protocol(ProtocolMessage {
        r#type: Some(protocol_message::Type::PeerDataOperationRequestResponseMessage as i32),
        peer_data_operation_request_response_message: Some(PeerDataOperationRequestResponseMessage {
            peer_data_operation_request_type: Some(
                PeerDataOperationRequestType::PlaceholderMessageResend as i32,
            ),
            stanza_id: Some(request_id.to_owned()),
            peer_data_operation_result: results,
        }),
        ..Default::default()
    })
}

/// A message the phone received (a copy sent to device 0 of its account) and decrypted.
#[derive(Debug, Clone, PartialEq)]
pub struct PhoneMessage {
    /// The sending device, by phone number.
    pub from: Jid,
    /// The chat: the group, `status@broadcast`, or the account the message was addressed to.
    pub chat: Jid,
    /// The message id.
    pub id: String,
    /// The decrypted message (a `DeviceSentMessage` when one of the account's own companions sent it).
    pub message: Message,
}

/// Decrypts a copy of message `id` addressed to the phone of account `number` (device 0): a `pkmsg` starts a
/// session from the phone's prekeys (its identity key must be the one the sending device registered), a `msg`
/// continues one, a sender-key distribution inside is kept for the chat, and an `skmsg` is read with the kept
/// sender key. What decrypts goes to the phone's inbox; the error says why a copy did not.
pub(crate) fn receive_copy(
    state: &mut State,
    number: &str,
    sender: &Jid,
    chat: &Jid,
    id: &str,
    enc: &Node,
    described: &crate::message_attrs::Described,
) -> Result<(), String> {
    let bytes = enc.content_bytes().ok_or("empty <enc>")?;
    let kind = enc.optional_str_attr("type").unwrap_or_default();
    let padded = if kind == "skmsg" {
        let account = state.accounts.get_mut(number).ok_or("no such account")?;
        let message = whatsapp_signal::SenderKeyMessage::deserialize(bytes).map_err(|e| e.to_string())?;
        let record = account
            .phone_sender_keys
            .get_mut(&(chat.clone(), sender.clone()))
            .ok_or_else(|| format!("the phone has no sender key of {sender} in {chat}"))?;
        whatsapp_signal::group_decrypt(record, &message).map_err(|e| e.to_string())?
    } else {
        open_pairwise(state, number, sender, kind, bytes)?
    };
    let account = state.accounts.get_mut(number).ok_or("no such account")?;
    let plaintext = whatsapp_signal::padding::unpad(&padded).map_err(|e| e.to_string())?;
    let message = Message::decode(plaintext).map_err(|e| e.to_string())?;
    if let Some(distribution) = message
        .sender_key_distribution_message
        .as_ref()
        .and_then(|skdm| skdm.axolotl_sender_key_distribution_message.as_deref())
    {
        let distribution = whatsapp_signal::SenderKeyDistributionMessage::deserialize(distribution)
            .map_err(|e| e.to_string())?;
        let record = account
            .phone_sender_keys
            .entry((chat.clone(), sender.clone()))
            .or_default();
        whatsapp_signal::process_distribution_message(record, &distribution);
    }
    let content = Message {
        sender_key_distribution_message: None,
        ..message.clone()
    };
    if content == Message::default() {
        // Only the sender key, which the skmsg after it needs.
        return Ok(());
    }
    described.check(&content)?;
    account.phone_inbox.push(PhoneMessage {
        from: sender.clone(),
        chat: chat.clone(),
        id: id.to_owned(),
        message,
    });
    Ok(())
}

/// Decrypts a pairwise copy (`pkmsg` or `msg`) from device `sender` for the phone of account `number`: a
/// `pkmsg` starts a session from the phone's prekeys (its identity key must be the one the sending device
/// registered), a `msg` continues one. Returns the padded plaintext.
fn open_pairwise(
    state: &mut State,
    number: &str,
    sender: &Jid,
    kind: &str,
    bytes: &[u8],
) -> Result<Vec<u8>, String> {
    let sender_identity = state
        .accounts
        .get(sender.user())
        .and_then(|account| match sender.device() {
            0 => Some(account.identity.public.as_bytes().to_owned()),
            device => account
                .devices
                .get(&device)
                .map(|linked| linked.registration.identity),
        })
        .ok_or_else(|| format!("unknown sending device {sender}"))?;
    let account = state.accounts.get_mut(number).ok_or("no such account")?;
    let local = LocalIdentity {
        identity: account.identity.clone(),
        registration_id: account.registration_id,
    };
    let own_companion = sender.user() == number;
    let mut record = match own_companion {
        true => account.sessions.remove(&sender.device()),
        false => account.phone_peers.remove(sender),
    }
    .unwrap_or_default();
    let decrypted = match kind {
        "pkmsg" => {
            let message = PreKeySignalMessage::deserialize(bytes).map_err(|e| e.to_string())?;
            if message.identity_key().as_bytes() != &sender_identity {
                Err(format!(
                    "a pkmsg from {sender} with another identity key than it registered"
                ))
            } else if message.signed_pre_key_id() != account.phone_keys.signed_prekey_id {
                Err(format!(
                    "a pkmsg for unknown signed prekey {}",
                    message.signed_pre_key_id()
                ))
            } else {
                let keys = &mut account.phone_keys;
                let pre_keys = PreKeysForMessage {
                    signed_pre_key: keys.signed_prekey.clone(),
                    pre_key: message
                        .pre_key_id()
                        .and_then(|id| keys.handed_out.get(&id).cloned()),
                };
                whatsapp_signal::decrypt_pre_key(&mut record, &local, &message, &pre_keys, &mut OsRng)
                    .map(|(plaintext, used)| {
                        if let Some(used) = used {
                            keys.handed_out.remove(&used);
                        }
                        plaintext
                    })
                    .map_err(|e| e.to_string())
            }
        }
        "msg" => SignalMessage::deserialize(bytes)
            .map_err(|e| e.to_string())
            .and_then(|message| {
                whatsapp_signal::decrypt(&mut record, &message, &mut OsRng).map_err(|e| e.to_string())
            }),
        other => Err(format!("enc type {other:?}")),
    };
    if record.has_current_session() {
        match own_companion {
            true => account.sessions.insert(sender.device(), record),
            false => account.phone_peers.insert(sender.clone(), record),
        };
    }
    decrypted
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
