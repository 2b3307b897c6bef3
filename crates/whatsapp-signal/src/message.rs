//! Wire messages: `SignalMessage`, `PreKeySignalMessage`, `SenderKeyMessage`, `SenderKeyDistributionMessage`.
//!
//! Every message starts with a version byte whose high nibble is the message version and low nibble the current
//! version; only version 3 (`0x33`, protocol-facts §3.5) is accepted. The protobuf body follows. A
//! `SignalMessage` ends with an 8-byte truncated HMAC, a `SenderKeyMessage` with a 64-byte XEdDSA signature.
//! Parsers never panic; they return [`Error`] for anything malformed.

use prost::Message as _;
use whatsapp_proto::signal as pb;
use zeroize::{Zeroize, ZeroizeOnDrop};

use crate::Error;
use crate::crypto::hmac_sha256;
use crate::curve::{PrivateKey, PublicKey, SIGNATURE_LENGTH};

/// The only message version supported (libsignal CurrentVersion, protocol-facts §3.5).
pub const CIPHERTEXT_VERSION: u8 = 3;

/// Version byte: message version in the high nibble, current version in the low nibble.
pub const VERSION_BYTE: u8 = (CIPHERTEXT_VERSION << 4) | CIPHERTEXT_VERSION;

/// Length of the truncated HMAC-SHA256 at the end of a `SignalMessage` (protocol-facts §3.5).
pub const MAC_LENGTH: usize = 8;

fn check_version(bytes: &[u8], what: &'static str) -> Result<(), Error> {
    let Some(&version) = bytes.first() else {
        return Err(Error::Malformed { what });
    };
    if version >> 4 != CIPHERTEXT_VERSION {
        return Err(Error::UnsupportedVersion { version });
    }
    Ok(())
}

fn field<T>(value: Option<T>, field: &'static str) -> Result<T, Error> {
    value.ok_or(Error::MissingField { field })
}

fn public_key(value: Option<Vec<u8>>, name: &'static str) -> Result<PublicKey, Error> {
    PublicKey::deserialize(&field(value, name)?)
}

/// A Double Ratchet message (`msg`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignalMessage {
    ratchet_key: PublicKey,
    counter: u32,
    previous_counter: u32,
    ciphertext: Vec<u8>,
    serialized: Vec<u8>,
}

impl SignalMessage {
    /// Builds and authenticates a message.
    #[allow(clippy::too_many_arguments, reason = "mirrors the MAC input fields")]
    pub(crate) fn new(
        mac_key: &[u8; 32],
        ratchet_key: PublicKey,
        counter: u32,
        previous_counter: u32,
        ciphertext: Vec<u8>,
        sender_identity: &PublicKey,
        receiver_identity: &PublicKey,
    ) -> Self {
        let body = pb::SignalMessage {
            ratchet_key: Some(ratchet_key.serialize().to_vec()),
            counter: Some(counter),
            previous_counter: Some(previous_counter),
            ciphertext: Some(ciphertext.clone()),
        };
        let mut serialized = Vec::with_capacity(1 + body.encoded_len() + MAC_LENGTH);
        serialized.push(VERSION_BYTE);
        body.encode_raw(&mut serialized);
        let mac = compute_mac(mac_key, sender_identity, receiver_identity, &serialized);
        serialized.extend_from_slice(&mac);
        Self {
            ratchet_key,
            counter,
            previous_counter,
            ciphertext,
            serialized,
        }
    }

    /// Parses a message (version byte, protobuf body, MAC); the MAC is checked later by the session.
    pub fn deserialize(bytes: &[u8]) -> Result<Self, Error> {
        const WHAT: &str = "SignalMessage";
        if bytes.len() < 1 + MAC_LENGTH {
            return Err(Error::Malformed { what: WHAT });
        }
        check_version(bytes, WHAT)?;
        let body = bytes
            .get(1..bytes.len() - MAC_LENGTH)
            .ok_or(Error::Malformed { what: WHAT })?;
        let body = pb::SignalMessage::decode(body).map_err(|_| Error::Malformed { what: WHAT })?;
        Ok(Self {
            ratchet_key: public_key(body.ratchet_key, "SignalMessage.ratchetKey")?,
            counter: field(body.counter, "SignalMessage.counter")?,
            previous_counter: body.previous_counter.unwrap_or(0),
            ciphertext: field(body.ciphertext, "SignalMessage.ciphertext")?,
            serialized: bytes.to_vec(),
        })
    }

    /// The sender's current ratchet public key.
    pub fn ratchet_key(&self) -> &PublicKey {
        &self.ratchet_key
    }

    /// The message's index in its sending chain.
    pub fn counter(&self) -> u32 {
        self.counter
    }

    /// The length of the sender's previous sending chain.
    pub fn previous_counter(&self) -> u32 {
        self.previous_counter
    }

    /// The AES-256-CBC ciphertext.
    pub fn ciphertext(&self) -> &[u8] {
        &self.ciphertext
    }

    /// The complete wire bytes.
    pub fn serialized(&self) -> &[u8] {
        &self.serialized
    }

    /// Checks the truncated MAC in constant time.
    pub(crate) fn verify_mac(
        &self,
        mac_key: &[u8; 32],
        sender_identity: &PublicKey,
        receiver_identity: &PublicKey,
    ) -> bool {
        let split = self.serialized.len() - MAC_LENGTH;
        let (body, mac) = self.serialized.split_at(split);
        let expected = compute_mac(mac_key, sender_identity, receiver_identity, body);
        subtle::ConstantTimeEq::ct_eq(&expected[..], mac).into()
    }
}

fn compute_mac(
    mac_key: &[u8; 32],
    sender_identity: &PublicKey,
    receiver_identity: &PublicKey,
    body: &[u8],
) -> [u8; MAC_LENGTH] {
    let full = hmac_sha256(
        mac_key,
        &[&sender_identity.serialize(), &receiver_identity.serialize(), body],
    );
    let mut mac = [0u8; MAC_LENGTH];
    mac.copy_from_slice(&full[..MAC_LENGTH]);
    mac
}

/// The first messages of a new session (`pkmsg`): X3DH parameters wrapped around a [`SignalMessage`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PreKeySignalMessage {
    registration_id: u32,
    pre_key_id: Option<u32>,
    signed_pre_key_id: u32,
    base_key: PublicKey,
    identity_key: PublicKey,
    message: SignalMessage,
    serialized: Vec<u8>,
}

impl PreKeySignalMessage {
    pub(crate) fn new(
        registration_id: u32,
        pre_key_id: Option<u32>,
        signed_pre_key_id: u32,
        base_key: PublicKey,
        identity_key: PublicKey,
        message: SignalMessage,
    ) -> Self {
        let body = pb::PreKeySignalMessage {
            registration_id: Some(registration_id),
            pre_key_id,
            signed_pre_key_id: Some(signed_pre_key_id),
            base_key: Some(base_key.serialize().to_vec()),
            identity_key: Some(identity_key.serialize().to_vec()),
            message: Some(message.serialized.clone()),
        };
        let mut serialized = Vec::with_capacity(1 + body.encoded_len());
        serialized.push(VERSION_BYTE);
        body.encode_raw(&mut serialized);
        Self {
            registration_id,
            pre_key_id,
            signed_pre_key_id,
            base_key,
            identity_key,
            message,
            serialized,
        }
    }

    /// Parses a message and the [`SignalMessage`] inside it.
    pub fn deserialize(bytes: &[u8]) -> Result<Self, Error> {
        const WHAT: &str = "PreKeySignalMessage";
        check_version(bytes, WHAT)?;
        let body =
            pb::PreKeySignalMessage::decode(&bytes[1..]).map_err(|_| Error::Malformed { what: WHAT })?;
        Ok(Self {
            registration_id: body.registration_id.unwrap_or(0),
            pre_key_id: body.pre_key_id,
            signed_pre_key_id: field(body.signed_pre_key_id, "PreKeySignalMessage.signedPreKeyId")?,
            base_key: public_key(body.base_key, "PreKeySignalMessage.baseKey")?,
            identity_key: public_key(body.identity_key, "PreKeySignalMessage.identityKey")?,
            message: SignalMessage::deserialize(&field(body.message, "PreKeySignalMessage.message")?)?,
            serialized: bytes.to_vec(),
        })
    }

    /// The sender's registration id.
    pub fn registration_id(&self) -> u32 {
        self.registration_id
    }

    /// The recipient's one-time prekey used, if any.
    pub fn pre_key_id(&self) -> Option<u32> {
        self.pre_key_id
    }

    /// The recipient's signed prekey used.
    pub fn signed_pre_key_id(&self) -> u32 {
        self.signed_pre_key_id
    }

    /// The sender's X3DH base key.
    pub fn base_key(&self) -> &PublicKey {
        &self.base_key
    }

    /// The sender's identity key.
    pub fn identity_key(&self) -> &PublicKey {
        &self.identity_key
    }

    /// The wrapped ratchet message.
    pub fn message(&self) -> &SignalMessage {
        &self.message
    }

    /// The complete wire bytes.
    pub fn serialized(&self) -> &[u8] {
        &self.serialized
    }
}

/// An encrypted 1:1 message as it goes on the wire, with its `enc` stanza type.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum CiphertextMessage {
    /// `pkmsg`: the session is not yet acknowledged by the peer.
    PreKey(PreKeySignalMessage),
    /// `msg`: an ordinary ratchet message.
    Whisper(SignalMessage),
}

impl CiphertextMessage {
    /// The `type` attribute of the `enc` stanza: `pkmsg` or `msg`.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::PreKey(_) => "pkmsg",
            Self::Whisper(_) => "msg",
        }
    }

    /// The wire bytes.
    pub fn serialized(&self) -> &[u8] {
        match self {
            Self::PreKey(message) => message.serialized(),
            Self::Whisper(message) => message.serialized(),
        }
    }
}

/// A group message (`skmsg`), signed by the sender's signing key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SenderKeyMessage {
    key_id: u32,
    iteration: u32,
    ciphertext: Vec<u8>,
    serialized: Vec<u8>,
}

impl SenderKeyMessage {
    pub(crate) fn new(
        key_id: u32,
        iteration: u32,
        ciphertext: Vec<u8>,
        signing_key: &PrivateKey,
        rng: &mut (impl rand_core::RngCore + rand_core::CryptoRng),
    ) -> Self {
        let body = pb::SenderKeyMessage {
            id: Some(key_id),
            iteration: Some(iteration),
            ciphertext: Some(ciphertext.clone()),
        };
        let mut serialized = Vec::with_capacity(1 + body.encoded_len() + SIGNATURE_LENGTH);
        serialized.push(VERSION_BYTE);
        body.encode_raw(&mut serialized);
        let signature = signing_key.sign(&serialized, rng);
        serialized.extend_from_slice(&signature);
        Self {
            key_id,
            iteration,
            ciphertext,
            serialized,
        }
    }

    /// Parses a message; the signature is checked later against the sender's state.
    pub fn deserialize(bytes: &[u8]) -> Result<Self, Error> {
        const WHAT: &str = "SenderKeyMessage";
        if bytes.len() < 1 + SIGNATURE_LENGTH {
            return Err(Error::Malformed { what: WHAT });
        }
        check_version(bytes, WHAT)?;
        let body = bytes
            .get(1..bytes.len() - SIGNATURE_LENGTH)
            .ok_or(Error::Malformed { what: WHAT })?;
        let body = pb::SenderKeyMessage::decode(body).map_err(|_| Error::Malformed { what: WHAT })?;
        Ok(Self {
            key_id: field(body.id, "SenderKeyMessage.id")?,
            iteration: field(body.iteration, "SenderKeyMessage.iteration")?,
            ciphertext: field(body.ciphertext, "SenderKeyMessage.ciphertext")?,
            serialized: bytes.to_vec(),
        })
    }

    /// The sender-key state id.
    pub fn key_id(&self) -> u32 {
        self.key_id
    }

    /// The chain iteration this message was encrypted at.
    pub fn iteration(&self) -> u32 {
        self.iteration
    }

    /// The AES-256-CBC ciphertext.
    pub fn ciphertext(&self) -> &[u8] {
        &self.ciphertext
    }

    /// The complete wire bytes (body and signature).
    pub fn serialized(&self) -> &[u8] {
        &self.serialized
    }

    /// Verifies the trailing signature over the rest of the message.
    pub fn verify_signature(&self, signing_key: &PublicKey) -> bool {
        let (body, signature) = self.serialized.split_at(self.serialized.len() - SIGNATURE_LENGTH);
        signing_key.verify_signature(body, signature)
    }
}

/// The message that hands a sender key to group members (`SenderKeyDistributionMessage`).
///
/// It carries a chain key, so it is zeroized on drop (the key and the wire bytes holding it) and `Debug` prints
/// neither.
#[derive(Clone, PartialEq, Eq, Zeroize, ZeroizeOnDrop)]
pub struct SenderKeyDistributionMessage {
    #[zeroize(skip)]
    key_id: u32,
    #[zeroize(skip)]
    iteration: u32,
    chain_key: [u8; 32],
    #[zeroize(skip)]
    signing_key: PublicKey,
    serialized: Vec<u8>,
}

impl std::fmt::Debug for SenderKeyDistributionMessage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SenderKeyDistributionMessage")
            .field("key_id", &self.key_id)
            .field("iteration", &self.iteration)
            .field("signing_key", &self.signing_key)
            .field("serialized_len", &self.serialized.len())
            .finish_non_exhaustive()
    }
}

impl SenderKeyDistributionMessage {
    /// Builds a distribution message.
    pub fn new(key_id: u32, iteration: u32, chain_key: [u8; 32], signing_key: PublicKey) -> Self {
        let mut body = pb::SenderKeyDistributionMessage {
            id: Some(key_id),
            iteration: Some(iteration),
            chain_key: Some(chain_key.to_vec()),
            signing_key: Some(signing_key.serialize().to_vec()),
        };
        let mut serialized = Vec::with_capacity(1 + body.encoded_len());
        serialized.push(VERSION_BYTE);
        body.encode_raw(&mut serialized);
        body.chain_key.zeroize();
        Self {
            key_id,
            iteration,
            chain_key,
            signing_key,
            serialized,
        }
    }

    /// Parses a distribution message.
    pub fn deserialize(bytes: &[u8]) -> Result<Self, Error> {
        const WHAT: &str = "SenderKeyDistributionMessage";
        check_version(bytes, WHAT)?;
        let body = pb::SenderKeyDistributionMessage::decode(&bytes[1..])
            .map_err(|_| Error::Malformed { what: WHAT })?;
        let mut chain_key_bytes = field(body.chain_key, "SenderKeyDistributionMessage.chainKey")?;
        let chain_key = <[u8; 32]>::try_from(chain_key_bytes.as_slice());
        chain_key_bytes.zeroize();
        let chain_key = chain_key.map_err(|_| Error::Malformed { what: WHAT })?;
        Ok(Self {
            key_id: field(body.id, "SenderKeyDistributionMessage.id")?,
            iteration: field(body.iteration, "SenderKeyDistributionMessage.iteration")?,
            chain_key,
            signing_key: public_key(body.signing_key, "SenderKeyDistributionMessage.signingKey")?,
            serialized: bytes.to_vec(),
        })
    }

    /// The sender-key state id.
    pub fn key_id(&self) -> u32 {
        self.key_id
    }

    /// The chain iteration the chain key belongs to.
    pub fn iteration(&self) -> u32 {
        self.iteration
    }

    /// The chain key at [`iteration`](Self::iteration).
    pub fn chain_key(&self) -> &[u8; 32] {
        &self.chain_key
    }

    /// The sender's signing public key.
    pub fn signing_key(&self) -> &PublicKey {
        &self.signing_key
    }

    /// The complete wire bytes.
    pub fn serialized(&self) -> &[u8] {
        &self.serialized
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parsers_reject_garbage() {
        for bytes in [
            &[][..],
            &[0x33],
            &[0x23; 20],
            &[0x33, 0xff, 0xff, 0, 0, 0, 0, 0, 0, 0, 0],
        ] {
            assert!(SignalMessage::deserialize(bytes).is_err());
            assert!(PreKeySignalMessage::deserialize(bytes).is_err());
            assert!(SenderKeyMessage::deserialize(bytes).is_err());
            assert!(SenderKeyDistributionMessage::deserialize(bytes).is_err());
        }
        assert_eq!(
            SignalMessage::deserialize(&[0x43; 20]),
            Err(Error::UnsupportedVersion { version: 0x43 })
        );
    }
}
