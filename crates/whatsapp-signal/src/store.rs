//! Async store traits the client implements (over `whatsapp-store`), and functions that load records, run the
//! pure protocol functions and save the results.
//!
//! Traits use `impl Future + Send` returns, so no runtime and no boxing are imposed. Identity trust is surfaced
//! as [`Error::UntrustedIdentity`]: the caller decides (for WhatsApp, usually to accept the new key and archive
//! the old session), records that with [`IdentityKeyStore::save_identity`], and retries.

use std::fmt;
use std::future::Future;

use rand_core::{CryptoRng, RngCore};

use crate::Error;
use crate::curve::{KeyPair, PublicKey};
use crate::message::{
    CiphertextMessage, PreKeySignalMessage, SenderKeyDistributionMessage, SenderKeyMessage, SignalMessage,
};
use crate::sender_key::{self, SenderKeyRecord};
use crate::session::{self, KeySource, LocalIdentity, PreKeyBundle, PreKeysForMessage, SessionRecord};

/// A peer device: `user[_agent]` and device id; displayed as `user[_agent]:device` (protocol-facts §2).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ProtocolAddress {
    /// The user part, with `_agent` when the domain is not the phone-number one.
    pub name: String,
    /// The device id.
    pub device_id: u32,
}

impl ProtocolAddress {
    /// Builds an address.
    pub fn new(name: impl Into<String>, device_id: u32) -> Self {
        Self {
            name: name.into(),
            device_id,
        }
    }
}

impl fmt::Display for ProtocolAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.name, self.device_id)
    }
}

/// The key of a sender-key record: a group and a sender device.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SenderKeyName {
    /// The group JID string.
    pub group: String,
    /// The sending device.
    pub sender: ProtocolAddress,
}

/// Whether an identity is checked for sending to or receiving from the peer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Direction {
    /// We are about to encrypt to the peer.
    Sending,
    /// We received a message from the peer.
    Receiving,
}

/// Our identity and the identities we know of peers.
pub trait IdentityKeyStore: Send + Sync {
    /// Our identity key pair.
    fn identity_key_pair(&self) -> impl Future<Output = Result<KeyPair, Error>> + Send;
    /// Our registration id.
    fn local_registration_id(&self) -> impl Future<Output = Result<u32, Error>> + Send;
    /// Whether `identity` is acceptable for `address` (typically: unknown, or equal to the stored key).
    fn is_trusted_identity(
        &self,
        address: &ProtocolAddress,
        identity: &PublicKey,
        direction: Direction,
    ) -> impl Future<Output = Result<bool, Error>> + Send;
    /// Records `identity` as the peer's key.
    fn save_identity(
        &self,
        address: &ProtocolAddress,
        identity: &PublicKey,
    ) -> impl Future<Output = Result<(), Error>> + Send;
}

/// Session records by peer device.
pub trait SessionStore: Send + Sync {
    /// The peer's record, if any.
    fn load_session(
        &self,
        address: &ProtocolAddress,
    ) -> impl Future<Output = Result<Option<SessionRecord>, Error>> + Send;
    /// Saves the peer's record.
    fn store_session(
        &self,
        address: &ProtocolAddress,
        record: &SessionRecord,
    ) -> impl Future<Output = Result<(), Error>> + Send;
}

/// Our one-time prekeys.
pub trait PreKeyStore: Send + Sync {
    /// The key pair of prekey `id`, if still present.
    fn load_pre_key(&self, id: u32) -> impl Future<Output = Result<Option<KeyPair>, Error>> + Send;
    /// Deletes prekey `id` once a session used it.
    fn remove_pre_key(&self, id: u32) -> impl Future<Output = Result<(), Error>> + Send;
}

/// Our signed prekeys.
pub trait SignedPreKeyStore: Send + Sync {
    /// The key pair of signed prekey `id`, if present.
    fn load_signed_pre_key(&self, id: u32) -> impl Future<Output = Result<Option<KeyPair>, Error>> + Send;
}

/// Sender-key records by (group, sender).
pub trait SenderKeyStore: Send + Sync {
    /// The record, if any.
    fn load_sender_key(
        &self,
        name: &SenderKeyName,
    ) -> impl Future<Output = Result<Option<SenderKeyRecord>, Error>> + Send;
    /// Saves the record.
    fn store_sender_key(
        &self,
        name: &SenderKeyName,
        record: &SenderKeyRecord,
    ) -> impl Future<Output = Result<(), Error>> + Send;
}

async fn local_identity(store: &impl IdentityKeyStore) -> Result<LocalIdentity, Error> {
    Ok(LocalIdentity {
        identity: store.identity_key_pair().await?,
        registration_id: store.local_registration_id().await?,
    })
}

async fn require_trust(
    store: &impl IdentityKeyStore,
    address: &ProtocolAddress,
    identity: &PublicKey,
    direction: Direction,
) -> Result<(), Error> {
    if store.is_trusted_identity(address, identity, direction).await? {
        Ok(())
    } else {
        Err(Error::UntrustedIdentity {
            address: address.to_string(),
        })
    }
}

/// Starts a session with `address` from its bundle; fails with [`Error::UntrustedIdentity`] if its identity is
/// not trusted.
pub async fn process_bundle<S: IdentityKeyStore + SessionStore>(
    store: &S,
    address: &ProtocolAddress,
    bundle: &PreKeyBundle,
    keys: &mut (impl KeySource + Send),
) -> Result<(), Error> {
    require_trust(store, address, &bundle.identity_key, Direction::Sending).await?;
    let local = local_identity(store).await?;
    let mut record = store.load_session(address).await?.unwrap_or_default();
    session::process_bundle(&mut record, &local, bundle, keys)?;
    store.save_identity(address, &bundle.identity_key).await?;
    store.store_session(address, &record).await
}

/// Encrypts `plaintext` (already padded) for `address`.
pub async fn encrypt<S: IdentityKeyStore + SessionStore>(
    store: &S,
    address: &ProtocolAddress,
    plaintext: &[u8],
) -> Result<CiphertextMessage, Error> {
    let mut record = store.load_session(address).await?.ok_or(Error::NoSession)?;
    let remote = record.remote_identity().ok_or(Error::NoSession)?;
    require_trust(store, address, &remote, Direction::Sending).await?;
    let message = session::encrypt(&mut record, plaintext)?;
    store.save_identity(address, &remote).await?;
    store.store_session(address, &record).await?;
    Ok(message)
}

/// Decrypts a `msg` from `address`.
pub async fn decrypt<S: IdentityKeyStore + SessionStore>(
    store: &S,
    address: &ProtocolAddress,
    message: &SignalMessage,
    keys: &mut (impl KeySource + Send),
) -> Result<Vec<u8>, Error> {
    let mut record = store.load_session(address).await?.ok_or(Error::NoSession)?;
    let plaintext = session::decrypt(&mut record, message, keys)?;
    let remote = record.remote_identity().ok_or(Error::NoSession)?;
    require_trust(store, address, &remote, Direction::Receiving).await?;
    store.save_identity(address, &remote).await?;
    store.store_session(address, &record).await?;
    Ok(plaintext)
}

/// Decrypts a `pkmsg` from `address`, setting up the session and consuming the one-time prekey it used.
pub async fn decrypt_pre_key<S>(
    store: &S,
    address: &ProtocolAddress,
    message: &PreKeySignalMessage,
    keys: &mut (impl KeySource + Send),
) -> Result<Vec<u8>, Error>
where
    S: IdentityKeyStore + SessionStore + PreKeyStore + SignedPreKeyStore,
{
    require_trust(store, address, message.identity_key(), Direction::Receiving).await?;
    let local = local_identity(store).await?;
    let signed_id = message.signed_pre_key_id();
    let signed_pre_key = store
        .load_signed_pre_key(signed_id)
        .await?
        .ok_or(Error::UnknownSignedPreKey { id: signed_id })?;
    let pre_key = match message.pre_key_id() {
        Some(id) => store.load_pre_key(id).await?,
        None => None,
    };
    let mut record = store.load_session(address).await?.unwrap_or_default();
    let (plaintext, used) = session::decrypt_pre_key(
        &mut record,
        &local,
        message,
        &PreKeysForMessage {
            signed_pre_key,
            pre_key,
        },
        keys,
    )?;
    store.save_identity(address, message.identity_key()).await?;
    store.store_session(address, &record).await?;
    if let Some(id) = used {
        store.remove_pre_key(id).await?;
    }
    Ok(plaintext)
}

/// Our distribution message for `name` (creating our sender key on first use).
pub async fn create_distribution_message(
    store: &impl SenderKeyStore,
    name: &SenderKeyName,
    rng: &mut (impl RngCore + CryptoRng + Send),
) -> Result<SenderKeyDistributionMessage, Error> {
    let mut record = store.load_sender_key(name).await?.unwrap_or_default();
    let message = sender_key::create_distribution_message(&mut record, rng)?;
    store.store_sender_key(name, &record).await?;
    Ok(message)
}

/// Stores a peer's distribution message.
pub async fn process_distribution_message(
    store: &impl SenderKeyStore,
    name: &SenderKeyName,
    message: &SenderKeyDistributionMessage,
) -> Result<(), Error> {
    let mut record = store.load_sender_key(name).await?.unwrap_or_default();
    sender_key::process_distribution_message(&mut record, message);
    store.store_sender_key(name, &record).await
}

/// Encrypts a group message (already padded) with our sender key for `name`.
pub async fn group_encrypt(
    store: &impl SenderKeyStore,
    name: &SenderKeyName,
    plaintext: &[u8],
    rng: &mut (impl RngCore + CryptoRng + Send),
) -> Result<SenderKeyMessage, Error> {
    let mut record = store
        .load_sender_key(name)
        .await?
        .ok_or(Error::NoSenderKeyState { key_id: 0 })?;
    let message = sender_key::group_encrypt(&mut record, plaintext, rng)?;
    store.store_sender_key(name, &record).await?;
    Ok(message)
}

/// Verifies and decrypts a group message from `name.sender`.
pub async fn group_decrypt(
    store: &impl SenderKeyStore,
    name: &SenderKeyName,
    message: &SenderKeyMessage,
) -> Result<Vec<u8>, Error> {
    let mut record = store
        .load_sender_key(name)
        .await?
        .ok_or(Error::NoSenderKeyState {
            key_id: message.key_id(),
        })?;
    let plaintext = sender_key::group_decrypt(&mut record, message)?;
    store.store_sender_key(name, &record).await?;
    Ok(plaintext)
}
