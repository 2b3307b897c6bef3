//! Group messaging with sender keys: distribution messages and signed `SenderKeyMessage`s.
//!
//! A sender key state is a symmetric chain (chain key `ck`, iteration): the message seed is `HMAC(ck, 01)`, the
//! next chain key `HMAC(ck, 02)`, and the seed expands with HKDF-SHA256 (zero salt, info "WhisperGroup", 48
//! bytes) into the CBC IV (first 16) and the AES-256 key (last 32). Each message is signed with the state's
//! signing key. A record keeps up to [`MAX_SENDER_KEY_STATES`] states, newest first.

use std::collections::VecDeque;

use prost::Message as _;
use rand_core::{CryptoRng, RngCore};
use whatsapp_proto::signal as pb;
use zeroize::{Zeroize, ZeroizeOnDrop};

use crate::Error;
use crate::crypto::{aes_cbc_decrypt, aes_cbc_encrypt, hkdf, hmac_sha256};
use crate::curve::{KeyPair, PrivateKey, PublicKey};
use crate::message::{SenderKeyDistributionMessage, SenderKeyMessage};

/// Sender-key states kept per (group, sender) record (protocol-facts §3.5).
pub const MAX_SENDER_KEY_STATES: usize = 5;

/// Skipped message keys kept per sender-key state (protocol-facts §3.5).
pub const MAX_SENDER_MESSAGE_KEYS: usize = 2000;

/// Furthest an iteration may jump ahead of its chain, bounding the work one message can cause (protocol-facts
/// §3.5's skipped-key limit).
pub const MAX_SENDER_FORWARD_JUMPS: u32 = 2000;

const WHISPER_GROUP: &[u8] = b"WhisperGroup";

#[derive(Clone, Zeroize, ZeroizeOnDrop)]
struct SenderChainKey {
    #[zeroize(skip)]
    iteration: u32,
    seed: [u8; 32],
}

impl SenderChainKey {
    fn message_seed(&self) -> SenderMessageKey {
        SenderMessageKey {
            iteration: self.iteration,
            seed: hmac_sha256(&self.seed, &[&[0x01]]),
        }
    }

    fn next(&self) -> Self {
        Self {
            iteration: self.iteration.wrapping_add(1),
            seed: hmac_sha256(&self.seed, &[&[0x02]]),
        }
    }
}

#[derive(Clone, Zeroize, ZeroizeOnDrop)]
struct SenderMessageKey {
    #[zeroize(skip)]
    iteration: u32,
    seed: [u8; 32],
}

impl SenderMessageKey {
    fn keys(&self) -> ([u8; 16], [u8; 32]) {
        let okm: [u8; 48] = hkdf(None, &self.seed, WHISPER_GROUP);
        let mut iv = [0u8; 16];
        let mut key = [0u8; 32];
        iv.copy_from_slice(&okm[..16]);
        key.copy_from_slice(&okm[16..]);
        (iv, key)
    }
}

#[derive(Clone)]
struct SenderKeyState {
    key_id: u32,
    chain_key: SenderChainKey,
    signing_public: PublicKey,
    signing_private: Option<PrivateKey>,
    message_keys: VecDeque<SenderMessageKey>,
}

/// The sender-key states of one sender in one group, newest first.
///
/// Serialized as libsignal's `SenderKeyRecordStructure` protobuf (`whatsapp_proto::signal`): chain seeds and
/// stored message seeds as 32 bytes, the signing public key as 33 bytes, the signing private key (own states
/// only) as 32 bytes.
#[derive(Clone, Default)]
pub struct SenderKeyRecord {
    states: VecDeque<SenderKeyState>,
}

impl std::fmt::Debug for SenderKeyRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SenderKeyRecord")
            .field("states", &self.states.len())
            .finish_non_exhaustive()
    }
}

impl SenderKeyRecord {
    /// An empty record.
    pub fn new() -> Self {
        Self::default()
    }

    /// Whether the record has no state.
    pub fn is_empty(&self) -> bool {
        self.states.is_empty()
    }

    /// Adds a state (newest first), keeping at most [`MAX_SENDER_KEY_STATES`].
    ///
    /// A state with the same key id and signing key as an existing one is ignored, so a repeated distribution
    /// message does not rewind the chain.
    pub fn add_state(
        &mut self,
        key_id: u32,
        iteration: u32,
        chain_key: [u8; 32],
        signing_public: PublicKey,
        signing_private: Option<PrivateKey>,
    ) {
        if self
            .states
            .iter()
            .any(|state| state.key_id == key_id && state.signing_public == signing_public)
        {
            return;
        }
        self.states.retain(|state| state.key_id != key_id);
        self.states.push_front(SenderKeyState {
            key_id,
            chain_key: SenderChainKey {
                iteration,
                seed: chain_key,
            },
            signing_public,
            signing_private,
            message_keys: VecDeque::new(),
        });
        self.states.truncate(MAX_SENDER_KEY_STATES);
    }

    /// Serializes as a `SenderKeyRecordStructure` protobuf.
    pub fn serialize(&self) -> Vec<u8> {
        use pb::sender_key_state_structure as st;
        pb::SenderKeyRecordStructure {
            sender_key_states: self
                .states
                .iter()
                .map(|state| pb::SenderKeyStateStructure {
                    sender_key_id: Some(state.key_id),
                    sender_chain_key: Some(st::SenderChainKey {
                        iteration: Some(state.chain_key.iteration),
                        seed: Some(state.chain_key.seed.to_vec()),
                    }),
                    sender_signing_key: Some(st::SenderSigningKey {
                        public: Some(state.signing_public.serialize().to_vec()),
                        private: state.signing_private.as_ref().map(|key| key.to_bytes().to_vec()),
                    }),
                    sender_message_keys: state
                        .message_keys
                        .iter()
                        .map(|key| st::SenderMessageKey {
                            iteration: Some(key.iteration),
                            seed: Some(key.seed.to_vec()),
                        })
                        .collect(),
                })
                .collect(),
        }
        .encode_to_vec()
    }

    /// Parses a `SenderKeyRecordStructure` protobuf; bad bytes are [`Error::BadRecord`], never a panic.
    pub fn deserialize(bytes: &[u8]) -> Result<Self, Error> {
        const BAD: Error = Error::BadRecord {
            what: "sender key record",
        };
        let seed = |bytes: Option<Vec<u8>>| -> Result<[u8; 32], Error> {
            bytes
                .as_deref()
                .and_then(|bytes| <[u8; 32]>::try_from(bytes).ok())
                .ok_or(BAD)
        };
        let record = pb::SenderKeyRecordStructure::decode(bytes).map_err(|_| BAD)?;
        let mut states = VecDeque::new();
        for state in record.sender_key_states.into_iter().take(MAX_SENDER_KEY_STATES) {
            let chain = state.sender_chain_key.ok_or(BAD)?;
            let signing = state.sender_signing_key.ok_or(BAD)?;
            let mut message_keys = VecDeque::new();
            for key in state
                .sender_message_keys
                .into_iter()
                .rev()
                .take(MAX_SENDER_MESSAGE_KEYS)
                .rev()
            {
                message_keys.push_back(SenderMessageKey {
                    iteration: key.iteration.unwrap_or(0),
                    seed: seed(key.seed)?,
                });
            }
            states.push_back(SenderKeyState {
                key_id: state.sender_key_id.unwrap_or(0),
                chain_key: SenderChainKey {
                    iteration: chain.iteration.unwrap_or(0),
                    seed: seed(chain.seed)?,
                },
                signing_public: PublicKey::deserialize(&signing.public.ok_or(BAD)?).map_err(|_| BAD)?,
                signing_private: signing
                    .private
                    .map(|bytes| PrivateKey::deserialize(&bytes).map_err(|_| BAD))
                    .transpose()?,
                message_keys,
            });
        }
        Ok(Self { states })
    }
}

/// Returns the distribution message for our own sender key, creating the state if the record is empty.
///
/// A new state draws a 31-bit key id, a 32-byte chain key and a signing key pair from `rng`.
pub fn create_distribution_message(
    record: &mut SenderKeyRecord,
    rng: &mut (impl RngCore + CryptoRng),
) -> Result<SenderKeyDistributionMessage, Error> {
    if record
        .states
        .front()
        .is_none_or(|state| state.signing_private.is_none())
    {
        let key_id = rng.next_u32() & 0x7fff_ffff;
        let mut chain_key = [0u8; 32];
        rng.fill_bytes(&mut chain_key);
        let signing = KeyPair::generate(rng);
        record.add_state(key_id, 0, chain_key, signing.public, Some(signing.private));
        chain_key.zeroize();
    }
    let state = record
        .states
        .front()
        .ok_or(Error::NoSenderKeyState { key_id: 0 })?;
    Ok(SenderKeyDistributionMessage::new(
        state.key_id,
        state.chain_key.iteration,
        state.chain_key.seed,
        state.signing_public,
    ))
}

/// Stores a peer's sender key from its distribution message.
pub fn process_distribution_message(record: &mut SenderKeyRecord, message: &SenderKeyDistributionMessage) {
    record.add_state(
        message.key_id(),
        message.iteration(),
        *message.chain_key(),
        *message.signing_key(),
        None,
    );
}

/// Encrypts `plaintext` (already padded by the caller) with our newest sender-key state and signs it.
pub fn group_encrypt(
    record: &mut SenderKeyRecord,
    plaintext: &[u8],
    rng: &mut (impl RngCore + CryptoRng),
) -> Result<SenderKeyMessage, Error> {
    let state = record
        .states
        .front_mut()
        .ok_or(Error::NoSenderKeyState { key_id: 0 })?;
    let signing = state
        .signing_private
        .as_ref()
        .ok_or(Error::NoSenderKeyState { key_id: state.key_id })?;
    let message_key = state.chain_key.message_seed();
    let (iv, key) = message_key.keys();
    let ciphertext = aes_cbc_encrypt(&key, &iv, plaintext);
    let message = SenderKeyMessage::new(state.key_id, message_key.iteration, ciphertext, signing, rng);
    state.chain_key = state.chain_key.next();
    Ok(message)
}

/// Verifies and decrypts a group message; the record changes only on success.
pub fn group_decrypt(record: &mut SenderKeyRecord, message: &SenderKeyMessage) -> Result<Vec<u8>, Error> {
    let key_id = message.key_id();
    let index = record
        .states
        .iter()
        .position(|state| state.key_id == key_id)
        .ok_or(Error::NoSenderKeyState { key_id })?;
    let mut state = record
        .states
        .get(index)
        .ok_or(Error::NoSenderKeyState { key_id })?
        .clone();
    if !message.verify_signature(&state.signing_public) {
        return Err(Error::BadSignature);
    }
    let iteration = message.iteration();
    let current = state.chain_key.iteration;
    let message_key = if current > iteration {
        let position = state
            .message_keys
            .iter()
            .position(|key| key.iteration == iteration);
        position
            .and_then(|position| state.message_keys.remove(position))
            .ok_or(Error::DuplicateMessage { counter: iteration })?
    } else {
        if iteration - current > MAX_SENDER_FORWARD_JUMPS {
            return Err(Error::CounterTooFarAhead {
                counter: iteration,
                current,
            });
        }
        let mut chain = state.chain_key.clone();
        while chain.iteration < iteration {
            state.message_keys.push_back(chain.message_seed());
            if state.message_keys.len() > MAX_SENDER_MESSAGE_KEYS {
                state.message_keys.pop_front();
            }
            chain = chain.next();
        }
        state.chain_key = chain.next();
        chain.message_seed()
    };
    let (iv, key) = message_key.keys();
    let plaintext = aes_cbc_decrypt(&key, &iv, message.ciphertext())?;
    if let Some(slot) = record.states.get_mut(index) {
        *slot = state;
    }
    Ok(plaintext)
}
