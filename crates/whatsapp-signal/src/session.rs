//! 1:1 sessions: X3DH setup (no Kyber) and the Double Ratchet, as pure functions over a [`SessionRecord`].
//!
//! Key schedule (Signal's X3DH and Double Ratchet specifications with libsignal's parameters, protocol-facts
//! §3.5): the X3DH secret is `0xFF × 32 || DH1 || DH2 || DH3 [|| DH4]`, expanded with HKDF-SHA256 (zero salt,
//! info "WhisperText") into a root key and a chain key. A DH ratchet step is HKDF(salt = root key, ikm = DH,
//! info "WhisperRatchet") into a new root key and chain key. A chain key `ck` gives the message key seed
//! `HMAC(ck, 01)` and the next chain key `HMAC(ck, 02)`; a seed expands with HKDF (zero salt, info
//! "WhisperMessageKeys") into an AES-256 key, an HMAC key and a CBC IV.
//!
//! Every random key pair is drawn from a [`KeySource`], so tests can replay known keys in draw order.

use std::collections::VecDeque;

use prost::Message as _;
use rand_core::{CryptoRng, RngCore};
use whatsapp_proto::signal as pb;
use zeroize::{Zeroize, ZeroizeOnDrop};

use crate::Error;
use crate::crypto::{aes_cbc_decrypt, aes_cbc_encrypt, hkdf, hmac_sha256};
use crate::curve::{KeyPair, PrivateKey, PublicKey};
use crate::message::{CIPHERTEXT_VERSION, CiphertextMessage, PreKeySignalMessage, SignalMessage};

/// Most message keys kept for skipped messages per receiving chain (protocol-facts §3.5).
pub const MAX_MESSAGE_KEYS: usize = 2000;

/// Furthest a message counter may jump ahead of its chain; a bigger jump would make us derive and store that many
/// keys for one message, so it is rejected (same bound as the skipped-key store, protocol-facts §3.5).
pub const MAX_FORWARD_JUMPS: u32 = 2000;

/// Archived previous session states kept per record (protocol-facts §3.5).
pub const ARCHIVED_STATES_MAX: usize = 40;

/// Receiving chains kept per state; older chains (and their skipped keys) are dropped, as libsignal does.
pub const MAX_RECEIVER_CHAINS: usize = 5;

const WHISPER_TEXT: &[u8] = b"WhisperText";
const WHISPER_RATCHET: &[u8] = b"WhisperRatchet";
const WHISPER_MESSAGE_KEYS: &[u8] = b"WhisperMessageKeys";

/// Where a session draws its random key pairs (base keys and ratchet keys).
///
/// Every cryptographic RNG is a key source; tests supply recorded key pairs instead.
pub trait KeySource {
    /// The next key pair.
    fn next_key_pair(&mut self) -> KeyPair;
}

impl<R: RngCore + CryptoRng> KeySource for R {
    fn next_key_pair(&mut self) -> KeyPair {
        KeyPair::generate(self)
    }
}

/// A peer's published keys, as fetched from the server, used to start a session.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PreKeyBundle {
    /// The peer device's registration id.
    pub registration_id: u32,
    /// The peer's identity key.
    pub identity_key: PublicKey,
    /// The signed prekey id.
    pub signed_pre_key_id: u32,
    /// The signed prekey.
    pub signed_pre_key: PublicKey,
    /// XEdDSA signature of the 33-byte signed prekey by the identity key.
    pub signed_pre_key_signature: Vec<u8>,
    /// An optional one-time prekey (id, key).
    pub pre_key: Option<(u32, PublicKey)>,
}

#[derive(Clone, Zeroize, ZeroizeOnDrop)]
struct MessageKeys {
    cipher_key: [u8; 32],
    mac_key: [u8; 32],
    iv: [u8; 16],
    #[zeroize(skip)]
    index: u32,
}

impl MessageKeys {
    fn derive(seed: &[u8; 32], index: u32) -> Self {
        let okm: [u8; 80] = hkdf(None, seed, WHISPER_MESSAGE_KEYS);
        let mut keys = Self {
            cipher_key: [0; 32],
            mac_key: [0; 32],
            iv: [0; 16],
            index,
        };
        keys.cipher_key.copy_from_slice(&okm[..32]);
        keys.mac_key.copy_from_slice(&okm[32..64]);
        keys.iv.copy_from_slice(&okm[64..]);
        keys
    }
}

#[derive(Clone, Zeroize, ZeroizeOnDrop)]
struct ChainKey {
    key: [u8; 32],
    #[zeroize(skip)]
    index: u32,
}

impl ChainKey {
    fn message_keys(&self) -> MessageKeys {
        MessageKeys::derive(&hmac_sha256(&self.key, &[&[0x01]]), self.index)
    }

    fn next(&self) -> Self {
        Self {
            key: hmac_sha256(&self.key, &[&[0x02]]),
            index: self.index.wrapping_add(1),
        }
    }
}

/// Root key KDF step: HKDF(salt = root, ikm = DH(our, their), "WhisperRatchet") -> (root, chain).
fn create_chain(root_key: &[u8; 32], their: &PublicKey, our: &PrivateKey) -> ([u8; 32], ChainKey) {
    let okm: [u8; 64] = hkdf(Some(root_key), &our.agree(their), WHISPER_RATCHET);
    split_root_chain(&okm)
}

fn split_root_chain(okm: &[u8; 64]) -> ([u8; 32], ChainKey) {
    let mut root = [0u8; 32];
    let mut chain = [0u8; 32];
    root.copy_from_slice(&okm[..32]);
    chain.copy_from_slice(&okm[32..]);
    (root, ChainKey { key: chain, index: 0 })
}

#[derive(Clone)]
struct ReceiverChain {
    ratchet_key: PublicKey,
    chain_key: ChainKey,
    message_keys: VecDeque<MessageKeys>,
}

#[derive(Clone)]
struct SenderChain {
    ratchet_key: KeyPair,
    chain_key: ChainKey,
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct PendingPreKey {
    pre_key_id: Option<u32>,
    signed_pre_key_id: u32,
    base_key: PublicKey,
}

/// One Double Ratchet state.
#[derive(Clone)]
struct SessionState {
    version: u32,
    local_identity: PublicKey,
    remote_identity: PublicKey,
    root_key: [u8; 32],
    previous_counter: u32,
    sender_chain: SenderChain,
    receiver_chains: VecDeque<ReceiverChain>,
    pending_pre_key: Option<PendingPreKey>,
    remote_registration_id: u32,
    local_registration_id: u32,
    alice_base_key: PublicKey,
}

impl Drop for SessionState {
    fn drop(&mut self) {
        self.root_key.zeroize();
    }
}

impl SessionState {
    fn receiver_chain_index(&self, ratchet_key: &PublicKey) -> Option<usize> {
        self.receiver_chains
            .iter()
            .position(|chain| &chain.ratchet_key == ratchet_key)
    }

    fn add_receiver_chain(&mut self, ratchet_key: PublicKey, chain_key: ChainKey) {
        self.receiver_chains.push_back(ReceiverChain {
            ratchet_key,
            chain_key,
            message_keys: VecDeque::new(),
        });
        while self.receiver_chains.len() > MAX_RECEIVER_CHAINS {
            self.receiver_chains.pop_front();
        }
    }

    /// Finds or creates (by a DH ratchet step) the receiving chain for `their_ratchet`; returns its index.
    fn receiver_chain_for(&mut self, their_ratchet: &PublicKey, keys: &mut impl KeySource) -> usize {
        if let Some(index) = self.receiver_chain_index(their_ratchet) {
            return index;
        }
        let (receiver_root, receiver_chain) = create_chain(
            &self.root_key,
            their_ratchet,
            &self.sender_chain.ratchet_key.private,
        );
        let our_new = keys.next_key_pair();
        let (sender_root, sender_chain) = create_chain(&receiver_root, their_ratchet, &our_new.private);
        self.root_key = sender_root;
        self.add_receiver_chain(*their_ratchet, receiver_chain);
        self.previous_counter = self.sender_chain.chain_key.index.saturating_sub(1);
        self.sender_chain = SenderChain {
            ratchet_key: our_new,
            chain_key: sender_chain,
        };
        self.receiver_chains.len() - 1
    }

    fn message_keys_for(&mut self, chain: usize, counter: u32) -> Result<MessageKeys, Error> {
        let chain = self.receiver_chains.get_mut(chain).ok_or(Error::NoSession)?;
        let current = chain.chain_key.index;
        if current > counter {
            let position = chain.message_keys.iter().position(|keys| keys.index == counter);
            return match position.and_then(|position| chain.message_keys.remove(position)) {
                Some(keys) => Ok(keys),
                None => Err(Error::DuplicateMessage { counter }),
            };
        }
        if counter - current > MAX_FORWARD_JUMPS {
            return Err(Error::CounterTooFarAhead { counter, current });
        }
        let mut chain_key = chain.chain_key.clone();
        while chain_key.index < counter {
            chain.message_keys.push_back(chain_key.message_keys());
            if chain.message_keys.len() > MAX_MESSAGE_KEYS {
                chain.message_keys.pop_front();
            }
            chain_key = chain_key.next();
        }
        let keys = chain_key.message_keys();
        chain.chain_key = chain_key.next();
        Ok(keys)
    }

    fn decrypt(&mut self, message: &SignalMessage, keys: &mut impl KeySource) -> Result<Vec<u8>, Error> {
        let chain = self.receiver_chain_for(message.ratchet_key(), keys);
        let message_keys = self.message_keys_for(chain, message.counter())?;
        if !message.verify_mac(&message_keys.mac_key, &self.remote_identity, &self.local_identity) {
            return Err(Error::BadMac);
        }
        let plaintext = aes_cbc_decrypt(&message_keys.cipher_key, &message_keys.iv, message.ciphertext())?;
        self.pending_pre_key = None;
        Ok(plaintext)
    }
}

/// A peer device's session record: the current state and up to [`ARCHIVED_STATES_MAX`] archived ones.
///
/// Serialized as libsignal's `RecordStructure` protobuf (`whatsapp_proto::signal`), the format whatsmeow
/// stores: public keys as 33 bytes (0x05 prefix), private keys as 32 bytes, `sessionVersion` 3. A record
/// without a current session serializes with `currentSession` absent.
#[derive(Clone, Default)]
pub struct SessionRecord {
    current: Option<SessionState>,
    previous: VecDeque<SessionState>,
}

impl std::fmt::Debug for SessionRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionRecord")
            .field("has_current", &self.current.is_some())
            .field("previous", &self.previous.len())
            .finish_non_exhaustive()
    }
}

impl SessionRecord {
    /// An empty record (no session yet).
    pub fn new() -> Self {
        Self::default()
    }

    /// Whether the record holds a current session that can encrypt.
    pub fn has_current_session(&self) -> bool {
        self.current.is_some()
    }

    /// Number of archived states.
    pub fn archived_count(&self) -> usize {
        self.previous.len()
    }

    /// The remote identity key of the current session.
    pub fn remote_identity(&self) -> Option<PublicKey> {
        self.current.as_ref().map(|state| state.remote_identity)
    }

    /// The remote registration id of the current session.
    pub fn remote_registration_id(&self) -> Option<u32> {
        self.current.as_ref().map(|state| state.remote_registration_id)
    }

    /// Moves the current state to the archive (e.g. after the peer's identity changed).
    pub fn archive_current_state(&mut self) {
        if let Some(state) = self.current.take() {
            self.previous.push_front(state);
            self.previous.truncate(ARCHIVED_STATES_MAX);
        }
    }

    /// Takes in the states of another record for the same peer device, kept under another address (a device's
    /// phone-number address before its LID one). This record's current state stays current when it has one and
    /// the other record's states are archived after this record's own, so a message on either session still
    /// decrypts (decryption promotes the archived state it used). Without a current state here, the other
    /// record's current state becomes current. The archive keeps its bound of [`ARCHIVED_STATES_MAX`].
    pub fn absorb(&mut self, other: SessionRecord) {
        let SessionRecord { current, previous } = other;
        match (&self.current, current) {
            (None, current) => self.current = current,
            (Some(_), Some(state)) => self.previous.push_back(state),
            (Some(_), None) => {}
        }
        self.previous.extend(previous);
        self.previous.truncate(ARCHIVED_STATES_MAX);
    }

    fn promote_state(&mut self, state: SessionState) {
        self.archive_current_state();
        self.current = Some(state);
    }

    fn has_state_with_base_key(&self, base_key: &PublicKey) -> bool {
        self.current
            .iter()
            .chain(self.previous.iter())
            .any(|state| state.version == u32::from(CIPHERTEXT_VERSION) && &state.alice_base_key == base_key)
    }

    /// Serializes as a `RecordStructure` protobuf.
    pub fn serialize(&self) -> Vec<u8> {
        pb::RecordStructure {
            current_session: self.current.as_ref().map(state_to_proto),
            previous_sessions: self.previous.iter().map(state_to_proto).collect(),
        }
        .encode_to_vec()
    }

    /// Parses a `RecordStructure` protobuf; bad bytes are [`Error::BadRecord`], never a panic.
    pub fn deserialize(bytes: &[u8]) -> Result<Self, Error> {
        let record = pb::RecordStructure::decode(bytes).map_err(|_| Error::BadRecord {
            what: "session record",
        })?;
        let current = record.current_session.map(state_from_proto).transpose()?;
        let previous = record
            .previous_sessions
            .into_iter()
            .take(ARCHIVED_STATES_MAX)
            .map(state_from_proto)
            .collect::<Result<_, _>>()?;
        Ok(Self { current, previous })
    }
}

const BAD_SESSION: Error = Error::BadRecord {
    what: "session state",
};

fn state_to_proto(state: &SessionState) -> pb::SessionStructure {
    let chain_key = |chain: &ChainKey| pb::session_structure::chain::ChainKey {
        index: Some(chain.index),
        key: Some(chain.key.to_vec()),
    };
    pb::SessionStructure {
        session_version: Some(state.version),
        local_identity_public: Some(state.local_identity.serialize().to_vec()),
        remote_identity_public: Some(state.remote_identity.serialize().to_vec()),
        root_key: Some(state.root_key.to_vec()),
        previous_counter: Some(state.previous_counter),
        sender_chain: Some(pb::session_structure::Chain {
            sender_ratchet_key: Some(state.sender_chain.ratchet_key.public.serialize().to_vec()),
            sender_ratchet_key_private: Some(state.sender_chain.ratchet_key.private.to_bytes().to_vec()),
            chain_key: Some(chain_key(&state.sender_chain.chain_key)),
            message_keys: Vec::new(),
        }),
        receiver_chains: state
            .receiver_chains
            .iter()
            .map(|chain| pb::session_structure::Chain {
                sender_ratchet_key: Some(chain.ratchet_key.serialize().to_vec()),
                sender_ratchet_key_private: None,
                chain_key: Some(chain_key(&chain.chain_key)),
                message_keys: chain
                    .message_keys
                    .iter()
                    .map(|keys| pb::session_structure::chain::MessageKey {
                        index: Some(keys.index),
                        cipher_key: Some(keys.cipher_key.to_vec()),
                        mac_key: Some(keys.mac_key.to_vec()),
                        iv: Some(keys.iv.to_vec()),
                    })
                    .collect(),
            })
            .collect(),
        pending_key_exchange: None,
        pending_pre_key: state
            .pending_pre_key
            .as_ref()
            .map(|pending| pb::session_structure::PendingPreKey {
                pre_key_id: pending.pre_key_id,
                // libsignal's schema declares this field int32; ids are 24-bit, so the cast is lossless.
                signed_pre_key_id: Some(pending.signed_pre_key_id as i32),
                base_key: Some(pending.base_key.serialize().to_vec()),
            }),
        remote_registration_id: Some(state.remote_registration_id),
        local_registration_id: Some(state.local_registration_id),
        needs_refresh: None,
        alice_base_key: Some(state.alice_base_key.serialize().to_vec()),
    }
}

fn array<const N: usize>(bytes: Option<Vec<u8>>) -> Result<[u8; N], Error> {
    bytes
        .as_deref()
        .and_then(|bytes| <[u8; N]>::try_from(bytes).ok())
        .ok_or(BAD_SESSION)
}

fn stored_public(bytes: Option<Vec<u8>>) -> Result<PublicKey, Error> {
    PublicKey::deserialize(&bytes.ok_or(BAD_SESSION)?).map_err(|_| BAD_SESSION)
}

fn chain_key_from(chain: Option<pb::session_structure::chain::ChainKey>) -> Result<ChainKey, Error> {
    let chain = chain.ok_or(BAD_SESSION)?;
    Ok(ChainKey {
        key: array(chain.key)?,
        index: chain.index.unwrap_or(0),
    })
}

fn state_from_proto(state: pb::SessionStructure) -> Result<SessionState, Error> {
    let sender = state.sender_chain.ok_or(BAD_SESSION)?;
    let sender_private = PrivateKey::from_bytes(array(sender.sender_ratchet_key_private)?);
    let sender_chain = SenderChain {
        ratchet_key: KeyPair {
            public: stored_public(sender.sender_ratchet_key)?,
            private: sender_private,
        },
        chain_key: chain_key_from(sender.chain_key)?,
    };
    let mut receiver_chains = VecDeque::new();
    for chain in state
        .receiver_chains
        .into_iter()
        .rev()
        .take(MAX_RECEIVER_CHAINS)
        .rev()
    {
        let mut message_keys = VecDeque::new();
        for keys in chain.message_keys.into_iter().rev().take(MAX_MESSAGE_KEYS).rev() {
            message_keys.push_back(MessageKeys {
                cipher_key: array(keys.cipher_key)?,
                mac_key: array(keys.mac_key)?,
                iv: array(keys.iv)?,
                index: keys.index.unwrap_or(0),
            });
        }
        receiver_chains.push_back(ReceiverChain {
            ratchet_key: stored_public(chain.sender_ratchet_key)?,
            chain_key: chain_key_from(chain.chain_key)?,
            message_keys,
        });
    }
    let pending_pre_key = match state.pending_pre_key {
        Some(pending) => Some(PendingPreKey {
            pre_key_id: pending.pre_key_id,
            signed_pre_key_id: u32::try_from(pending.signed_pre_key_id.unwrap_or(0))
                .map_err(|_| BAD_SESSION)?,
            base_key: stored_public(pending.base_key)?,
        }),
        None => None,
    };
    Ok(SessionState {
        version: state.session_version.unwrap_or(u32::from(CIPHERTEXT_VERSION)),
        local_identity: stored_public(state.local_identity_public)?,
        remote_identity: stored_public(state.remote_identity_public)?,
        root_key: array(state.root_key)?,
        previous_counter: state.previous_counter.unwrap_or(0),
        sender_chain,
        receiver_chains,
        pending_pre_key,
        remote_registration_id: state.remote_registration_id.unwrap_or(0),
        local_registration_id: state.local_registration_id.unwrap_or(0),
        alice_base_key: stored_public(state.alice_base_key)?,
    })
}

/// Our own long-term material needed to set up and answer sessions.
#[derive(Clone, Debug)]
pub struct LocalIdentity {
    /// Our identity key pair.
    pub identity: KeyPair,
    /// Our registration id.
    pub registration_id: u32,
}

fn derive_x3dh(secrets: &[u8]) -> ([u8; 32], ChainKey) {
    let okm: [u8; 64] = hkdf(None, secrets, WHISPER_TEXT);
    split_root_chain(&okm)
}

/// Starts a session from a peer's prekey bundle (we are the X3DH initiator, "Alice").
///
/// Verifies the signed prekey's signature, draws the base key then the first sending ratchet key from `keys`,
/// and promotes the new state (archiving any current one). Identity trust is the caller's decision: check
/// `bundle.identity_key` first (the store layer does).
pub fn process_bundle(
    record: &mut SessionRecord,
    local: &LocalIdentity,
    bundle: &PreKeyBundle,
    keys: &mut impl KeySource,
) -> Result<(), Error> {
    if !bundle.identity_key.verify_signature(
        &bundle.signed_pre_key.serialize(),
        &bundle.signed_pre_key_signature,
    ) {
        return Err(Error::BadSignature);
    }
    let base_key = keys.next_key_pair();
    let sending_ratchet = keys.next_key_pair();
    let mut secrets = Vec::with_capacity(32 * 5);
    secrets.extend_from_slice(&[0xff; 32]);
    secrets.extend_from_slice(&local.identity.private.agree(&bundle.signed_pre_key));
    secrets.extend_from_slice(&base_key.private.agree(&bundle.identity_key));
    secrets.extend_from_slice(&base_key.private.agree(&bundle.signed_pre_key));
    if let Some((_, pre_key)) = &bundle.pre_key {
        secrets.extend_from_slice(&base_key.private.agree(pre_key));
    }
    let (root_key, chain_key) = derive_x3dh(&secrets);
    secrets.zeroize();
    let (sending_root, sending_chain) =
        create_chain(&root_key, &bundle.signed_pre_key, &sending_ratchet.private);
    let mut state = SessionState {
        version: u32::from(CIPHERTEXT_VERSION),
        local_identity: local.identity.public,
        remote_identity: bundle.identity_key,
        root_key: sending_root,
        previous_counter: 0,
        sender_chain: SenderChain {
            ratchet_key: sending_ratchet,
            chain_key: sending_chain,
        },
        receiver_chains: VecDeque::new(),
        pending_pre_key: Some(PendingPreKey {
            pre_key_id: bundle.pre_key.map(|(id, _)| id),
            signed_pre_key_id: bundle.signed_pre_key_id,
            base_key: base_key.public,
        }),
        remote_registration_id: bundle.registration_id,
        local_registration_id: local.registration_id,
        alice_base_key: base_key.public,
    };
    state.add_receiver_chain(bundle.signed_pre_key, chain_key);
    record.promote_state(state);
    Ok(())
}

/// Encrypts `plaintext` (already padded by the caller) with the current session.
///
/// Returns a `pkmsg` until the peer has answered, then `msg`. Encryption draws no randomness.
pub fn encrypt(record: &mut SessionRecord, plaintext: &[u8]) -> Result<CiphertextMessage, Error> {
    let state = record.current.as_mut().ok_or(Error::NoSession)?;
    let chain_key = state.sender_chain.chain_key.clone();
    let keys = chain_key.message_keys();
    let ciphertext = aes_cbc_encrypt(&keys.cipher_key, &keys.iv, plaintext);
    let message = SignalMessage::new(
        &keys.mac_key,
        state.sender_chain.ratchet_key.public,
        chain_key.index,
        state.previous_counter,
        ciphertext,
        &state.local_identity,
        &state.remote_identity,
    );
    state.sender_chain.chain_key = chain_key.next();
    Ok(match &state.pending_pre_key {
        Some(pending) => CiphertextMessage::PreKey(PreKeySignalMessage::new(
            state.local_registration_id,
            pending.pre_key_id,
            pending.signed_pre_key_id,
            pending.base_key,
            state.local_identity,
            message,
        )),
        None => CiphertextMessage::Whisper(message),
    })
}

/// Decrypts a `msg` with the current state or, failing that, an archived one (which then becomes current).
///
/// The record is only changed when decryption succeeds, so a replayed, tampered or garbage message leaves it as
/// it was.
pub fn decrypt(
    record: &mut SessionRecord,
    message: &SignalMessage,
    keys: &mut impl KeySource,
) -> Result<Vec<u8>, Error> {
    let mut first_error = None;
    if let Some(current) = &record.current {
        let mut state = current.clone();
        match state.decrypt(message, keys) {
            Ok(plaintext) => {
                record.current = Some(state);
                return Ok(plaintext);
            }
            Err(error) => first_error = Some(error),
        }
    }
    for index in 0..record.previous.len() {
        let Some(previous) = record.previous.get(index) else {
            break;
        };
        let mut state = previous.clone();
        if let Ok(plaintext) = state.decrypt(message, keys) {
            record.previous.remove(index);
            record.promote_state(state);
            return Ok(plaintext);
        }
    }
    Err(first_error.unwrap_or(Error::NoSession))
}

/// Our prekeys a `pkmsg` refers to, looked up by the caller from the message's ids.
#[derive(Clone, Debug)]
pub struct PreKeysForMessage {
    /// The signed prekey named by [`PreKeySignalMessage::signed_pre_key_id`].
    pub signed_pre_key: KeyPair,
    /// The one-time prekey named by [`PreKeySignalMessage::pre_key_id`], if the message names one.
    pub pre_key: Option<KeyPair>,
}

/// Decrypts a `pkmsg` (we are the X3DH responder, "Bob"), setting up the session if this base key is new.
///
/// Returns the plaintext and the one-time prekey id the caller should now delete (None if the session
/// already existed or none was used). Identity trust is the caller's decision (check
/// [`PreKeySignalMessage::identity_key`] first; the store layer does).
pub fn decrypt_pre_key(
    record: &mut SessionRecord,
    local: &LocalIdentity,
    message: &PreKeySignalMessage,
    pre_keys: &PreKeysForMessage,
    keys: &mut impl KeySource,
) -> Result<(Vec<u8>, Option<u32>), Error> {
    let mut candidate = record.clone();
    let mut used_pre_key = None;
    if !candidate.has_state_with_base_key(message.base_key()) {
        let one_time = match (message.pre_key_id(), &pre_keys.pre_key) {
            (Some(_), Some(pair)) => Some(pair),
            (Some(id), None) => return Err(Error::UnknownPreKey { id }),
            (None, _) => None,
        };
        let their_base = message.base_key();
        let mut secrets = Vec::with_capacity(32 * 5);
        secrets.extend_from_slice(&[0xff; 32]);
        secrets.extend_from_slice(&pre_keys.signed_pre_key.private.agree(message.identity_key()));
        secrets.extend_from_slice(&local.identity.private.agree(their_base));
        secrets.extend_from_slice(&pre_keys.signed_pre_key.private.agree(their_base));
        if let Some(pair) = one_time {
            secrets.extend_from_slice(&pair.private.agree(their_base));
        }
        let (root_key, chain_key) = derive_x3dh(&secrets);
        secrets.zeroize();
        let state = SessionState {
            version: u32::from(CIPHERTEXT_VERSION),
            local_identity: local.identity.public,
            remote_identity: *message.identity_key(),
            root_key,
            previous_counter: 0,
            sender_chain: SenderChain {
                ratchet_key: pre_keys.signed_pre_key.clone(),
                chain_key,
            },
            receiver_chains: VecDeque::new(),
            pending_pre_key: None,
            remote_registration_id: message.registration_id(),
            local_registration_id: local.registration_id,
            alice_base_key: *their_base,
        };
        candidate.promote_state(state);
        used_pre_key = message.pre_key_id();
    }
    let plaintext = decrypt(&mut candidate, message.message(), keys)?;
    *record = candidate;
    Ok((plaintext, used_pre_key))
}
