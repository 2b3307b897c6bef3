//! Simulated primary phones: scanning QR codes, entering pairing codes, signing the ADV device identity of a new
//! companion, and unlinking devices (protocol-facts §3.4).
//!
//! Everything the phone computes is written here from the protocol facts, not borrowed from the client's engine,
//! so the two sides check each other.

use std::sync::Arc;

use aes::Aes256;
use aes_gcm::aead::{Aead, KeyInit};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use ctr::cipher::{KeyIvInit, StreamCipher};
use hkdf::Hkdf;
use hmac::{Hmac, Mac};
use rand::RngCore;
use rand::rngs::OsRng;
use sha2::Sha256;
use whatsapp_binary::{Jid, Node};
use whatsapp_proto::ProtoMessage;
use whatsapp_proto::adv::{
    AdvDeviceIdentity, AdvEncryptionType, AdvSignedDeviceIdentity, AdvSignedDeviceIdentityHmac,
};
use whatsapp_signal::{KeyPair, PublicKey};

use crate::events::ServerEvent;
use crate::state::{
    Account, CodePairingState, Command, PendingPair, Role, Shared, State, device_jid, device_lid, server_jid,
    unix_now,
};

/// Prefix of the message the account key signs (`AdvAccountSignaturePrefix`, protocol-facts §3.4).
const ACCOUNT_SIGNATURE_PREFIX: [u8; 2] = [0x06, 0x00];
/// Prefix of the message the companion countersigns (`AdvDeviceSignaturePrefix`, protocol-facts §3.4).
const DEVICE_SIGNATURE_PREFIX: [u8; 2] = [0x06, 0x01];
/// The start of every companion QR code (protocol-facts §3.4).
const QR_PREFIX: &str = "https://wa.me/settings/linked_devices#";
/// The pairing-code alphabet: base32 without 0, I, O and U (protocol-facts §3.4).
const CODE_ALPHABET: &str = "123456789ABCDEFGHJKLMNPQRSTVWXYZ";
/// PBKDF2 rounds of the code key, `2 << 16` (protocol-facts §3.4).
const CODE_KEY_ROUNDS: u32 = 2 << 16;
/// HKDF info of the key bundle key (protocol-facts §3.4).
const KEY_BUNDLE_INFO: &[u8] = b"link_code_pairing_key_bundle_encryption_key";
/// HKDF info of the ADV secret derived by code pairing (protocol-facts §3.4).
const ADV_SECRET_INFO: &[u8] = b"adv_secret";

type Aes256Ctr = ctr::Ctr128BE<Aes256>;

/// Why a phone could not do what it was asked.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PhoneError {
    /// The QR string is not `https://wa.me/settings/linked_devices#ref,noise,identity,adv[,type]` with 32-byte
    /// base64 keys.
    #[error("not a companion QR code: {0}")]
    BadQr(String),
    /// No live unpaired connection was sent this reference (it expired, or the client went away).
    #[error("no live connection was sent this QR reference")]
    UnknownRef,
    /// The QR code's Noise key is not the key of the connection that was sent the reference.
    #[error("the QR code's Noise key is not the connection's")]
    NoiseKeyMismatch,
    /// The QR code's identity key is not the one the connection registered with.
    #[error("the QR code's identity key is not the registered one")]
    IdentityMismatch,
    /// The code is not 8 characters of the pairing-code alphabet (a dash is allowed).
    #[error("not a pairing code: {0}")]
    BadCode(String),
    /// No client is waiting for a pairing code for this phone number.
    #[error("no code pairing is pending for this number")]
    NoPendingCodePairing,
    /// The connection went away before the phone's answer could be sent.
    #[error("the companion's connection is closed")]
    ConnectionClosed,
    /// The device is not a linked companion of this phone's account.
    #[error("{0} is not a companion of this account")]
    UnknownDevice(Jid),
    /// A Signal session with the companion could not be started or used.
    #[error("signal: {0}")]
    Signal(String),
    /// The account's app state could not be read or written.
    #[error("app state: {0}")]
    AppState(String),
}

/// How [`Phone::scan_qr_tampered`] spoils the `pair-success`, to test the client's checks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Tamper {
    /// One bit of the HMAC is flipped: the client must answer `hmac-mismatch`.
    Hmac,
    /// One bit of the account signature is flipped and the HMAC is computed over the spoiled identity: the client
    /// must answer `signature-mismatch`.
    AccountSignature,
}

/// An account's primary phone. Cheap to clone; it stays usable while any handle to its server lives.
#[derive(Clone, Debug)]
pub struct Phone {
    pub(crate) shared: Arc<Shared>,
    pub(crate) number: String,
}

/// A parsed QR code.
struct Qr {
    reference: String,
    noise: [u8; 32],
    identity: [u8; 32],
    adv_secret: [u8; 32],
}

fn parse_qr(qr: &str) -> Result<Qr, PhoneError> {
    let bad = |why: &str| PhoneError::BadQr(why.to_owned());
    let rest = qr
        .trim()
        .strip_prefix(QR_PREFIX)
        .ok_or_else(|| bad("missing the linked-devices URL prefix"))?;
    let parts: Vec<&str> = rest.split(',').collect();
    // Older clients leave out the platform character (protocol-facts §3.4).
    if parts.len() != 4 && parts.len() != 5 {
        return Err(bad("expected 4 or 5 comma-separated fields"));
    }
    let key = |field: &str, name: &str| -> Result<[u8; 32], PhoneError> {
        let bytes = STANDARD
            .decode(field)
            .map_err(|e| PhoneError::BadQr(format!("{name} is not base64: {e}")))?;
        bytes
            .try_into()
            .map_err(|_| PhoneError::BadQr(format!("{name} is not 32 bytes")))
    };
    if parts[0].is_empty() {
        return Err(bad("empty reference"));
    }
    Ok(Qr {
        reference: parts[0].to_owned(),
        noise: key(parts[1], "noise key")?,
        identity: key(parts[2], "identity key")?,
        adv_secret: key(parts[3], "ADV secret")?,
    })
}

/// A pairing code in the form the phone types it: 8 characters of the alphabet, dash removed, upper case.
fn normalise_code(code: &str) -> Result<String, PhoneError> {
    let code: String = code
        .chars()
        .filter(|c| *c != '-')
        .map(|c| c.to_ascii_uppercase())
        .collect();
    if code.len() != 8 || !code.chars().all(|c| CODE_ALPHABET.contains(c)) {
        return Err(PhoneError::BadCode(code));
    }
    Ok(code)
}

/// The AES-256-CTR key that wraps an ephemeral key: PBKDF2-HMAC-SHA256(code, salt).
fn code_key(code: &str, salt: &[u8]) -> [u8; 32] {
    let mut key = [0u8; 32];
    pbkdf2::pbkdf2_hmac::<Sha256>(code.as_bytes(), salt, CODE_KEY_ROUNDS, &mut key);
    key
}

/// `salt(32) || iv(16) || AES-CTR(code key, iv, key(32))` in both directions: CTR is its own inverse.
fn code_cipher(code: &str, salt: &[u8; 32], iv: &[u8; 16], key: &[u8; 32]) -> [u8; 32] {
    let mut out = *key;
    Aes256Ctr::new(&code_key(code, salt).into(), iv.into()).apply_keystream(&mut out);
    out
}

fn split_wrapped(wrapped: &[u8; 80]) -> ([u8; 32], [u8; 16], [u8; 32]) {
    let mut salt = [0u8; 32];
    let mut iv = [0u8; 16];
    let mut key = [0u8; 32];
    salt.copy_from_slice(&wrapped[..32]);
    iv.copy_from_slice(&wrapped[32..48]);
    key.copy_from_slice(&wrapped[48..]);
    (salt, iv, key)
}

impl Phone {
    pub(crate) fn new(shared: Arc<Shared>, number: String) -> Phone {
        Phone { shared, number }
    }

    fn with_account<T>(&self, f: impl FnOnce(&Account) -> T) -> Option<T> {
        self.shared.lock().accounts.get(&self.number).map(f)
    }

    /// The account's phone-number JID (`NUMBER@s.whatsapp.net`).
    pub fn jid(&self) -> Jid {
        Jid::new(self.number.clone(), Jid::DEFAULT_USER_SERVER)
    }

    /// The account's LID (`LIDUSER@lid`).
    pub fn lid(&self) -> Jid {
        let user = self.with_account(|a| a.lid_user.clone()).unwrap_or_default();
        Jid::new(user, Jid::LID_SERVER)
    }

    /// The account identity public key: what signs companions (`accountSignatureKey`).
    pub fn identity_public(&self) -> [u8; 32] {
        self.with_account(|a| *a.identity.public.as_bytes())
            .unwrap_or_default()
    }

    /// Scans a companion's QR code: checks it against the live connection that was sent its reference, and sends
    /// that connection a `pair-success` signed by the account. Returns the new device's JID once sent; the device
    /// is linked when its countersignature checks out ([`ServerEvent::PairSucceeded`]).
    pub async fn scan_qr(&self, qr: &str) -> Result<Jid, PhoneError> {
        self.scan(qr, None)
    }

    /// Like [`scan_qr`](Self::scan_qr), with the `pair-success` spoiled as `tamper` says; the client must refuse
    /// it ([`ServerEvent::PairRejected`]).
    pub async fn scan_qr_tampered(&self, qr: &str, tamper: Tamper) -> Result<(), PhoneError> {
        self.scan(qr, Some(tamper)).map(|_| ())
    }

    fn scan(&self, qr: &str, tamper: Option<Tamper>) -> Result<Jid, PhoneError> {
        let qr = parse_qr(qr)?;
        let mut state = self.shared.lock();
        let (conn, entry) = state
            .conns
            .iter()
            .find(|(_, c)| matches!(&c.role, Role::Unpaired { refs, .. } if refs.contains(&qr.reference)))
            .ok_or(PhoneError::UnknownRef)?;
        let Role::Unpaired { registration, .. } = &entry.role else {
            return Err(PhoneError::UnknownRef);
        };
        if entry.client_static != qr.noise {
            return Err(PhoneError::NoiseKeyMismatch);
        }
        if registration.identity != qr.identity {
            return Err(PhoneError::IdentityMismatch);
        }
        let (conn, tx) = (*conn, entry.tx.clone());
        let iq_id = self.shared.next_stanza_id();
        let (node, jid) = send_pair_success(
            &mut state,
            &self.number,
            conn,
            &qr.identity,
            &qr.adv_secret,
            tamper,
            iq_id,
        );
        drop(state);
        tx.send(Command::Send(node))
            .map_err(|_| PhoneError::ConnectionClosed)?;
        Ok(jid)
    }

    /// Enters a pairing code shown by a companion of this number: unwraps the companion's ephemeral key with the
    /// code, wraps a fresh ephemeral key of the phone's with it, and sends the `primary_hello` notification. A
    /// wrong code is not detected here (any code unwraps to some key): the companion's key bundle then fails to
    /// decrypt and the server answers its `companion_finish` with error 400.
    pub async fn enter_code(&self, code: &str) -> Result<(), PhoneError> {
        let code = normalise_code(code)?;
        let (pairing_ref, wrapped) = {
            let state = self.shared.lock();
            state
                .code_pairings
                .iter()
                .filter(|(_, p)| p.number == self.number && state.conns.contains_key(&p.conn))
                .max_by_key(|(_, p)| p.sequence)
                .map(|(r, p)| (r.clone(), p.wrapped_companion_ephemeral))
                .ok_or(PhoneError::NoPendingCodePairing)?
        };
        // PBKDF2 with 131072 rounds is slow by design; keep it off the runtime's worker threads.
        let (phone_ephemeral, companion_ephemeral, wrapped_primary) =
            tokio::task::spawn_blocking(move || {
                let (salt, iv, encrypted) = split_wrapped(&wrapped);
                let companion_ephemeral = code_cipher(&code, &salt, &iv, &encrypted);
                let phone_ephemeral = KeyPair::generate(&mut OsRng);
                let mut salt = [0u8; 32];
                let mut iv = [0u8; 16];
                OsRng.fill_bytes(&mut salt);
                OsRng.fill_bytes(&mut iv);
                let encrypted = code_cipher(&code, &salt, &iv, phone_ephemeral.public.as_bytes());
                let wrapped_primary = [&salt[..], &iv, &encrypted].concat();
                (phone_ephemeral, companion_ephemeral, wrapped_primary)
            })
            .await
            .map_err(|_| PhoneError::ConnectionClosed)?;

        let mut state = self.shared.lock();
        let identity = state
            .accounts
            .get(&self.number)
            .map(|a| *a.identity.public.as_bytes())
            .ok_or(PhoneError::NoPendingCodePairing)?;
        let pairing = state
            .code_pairings
            .get_mut(&pairing_ref)
            .ok_or(PhoneError::NoPendingCodePairing)?;
        pairing.exchange = Some((phone_ephemeral, companion_ephemeral));
        let conn = pairing.conn;
        let tx = state
            .conns
            .get(&conn)
            .map(|c| c.tx.clone())
            .ok_or(PhoneError::ConnectionClosed)?;
        let notification = Node::new("notification")
            .attr("from", server_jid())
            .attr("type", "link_code_companion_reg")
            .attr("id", self.shared.next_stanza_id())
            .attr("t", unix_now().to_string())
            .children([Node::new("link_code_companion_reg")
                .attr("stage", "primary_hello")
                .children([
                    Node::new("link_code_pairing_ref").bytes(pairing_ref.into_bytes()),
                    Node::new("link_code_pairing_wrapped_primary_ephemeral_pub").bytes(wrapped_primary),
                    Node::new("primary_identity_pub").bytes(identity.to_vec()),
                ])]);
        drop(state);
        tx.send(Command::Send(notification))
            .map_err(|_| PhoneError::ConnectionClosed)
    }

    /// Unlinks `device` from the account: its live connection gets `<stream:error code="401"><conflict
    /// type="device_removed"/></stream:error>` and is closed, and later logins of it are refused.
    pub async fn remove_device(&self, device: &Jid) {
        let mut state = self.shared.lock();
        if device.user() != self.number {
            return;
        }
        let removed = state
            .accounts
            .get_mut(&self.number)
            .and_then(|a| a.devices.remove(&device.device()))
            .is_some();
        if removed {
            crate::routing::devices_changed(&mut state, &self.number, "remove", device.device());
        }
        if let Some((_, conn)) = state.conn_of(device) {
            let error = Node::new("stream:error")
                .attr("code", "401")
                .children([Node::new("conflict").attr("type", "device_removed")]);
            // A connection that already ended needs no notice.
            let _ = conn.tx.send(Command::Close(Some(error)));
        }
        drop(state);
        if removed {
            self.shared.emit(ServerEvent::DeviceRemoved {
                device: device.clone(),
            });
        }
    }
}

/// Builds the `pair-success` for a new companion of `number` on connection `conn`, signed by the account and
/// MACed with `adv_secret`, and records it as pending. Returns the stanza and the device JID it announces.
///
/// The identity is `ADVDeviceIdentity{rawId, timestamp, keyIndex, accountType, deviceType}`, signed as
/// `XEdDSA(account key, 06 00 || details || companion identity)`, wrapped in `ADVSignedDeviceIdentity`, and MACed
/// as `HMAC-SHA256(adv_secret, inner)` in `ADVSignedDeviceIdentityHMAC` (protocol-facts §3.4).
pub(crate) fn send_pair_success(
    state: &mut State,
    number: &str,
    conn: u64,
    companion_identity: &[u8; 32],
    adv_secret: &[u8; 32],
    tamper: Option<Tamper>,
    iq_id: String,
) -> (Node, Jid) {
    let Some(account) = state.accounts.get_mut(number) else {
        // Phones are only made by `add_phone`, which creates the account first.
        return (Node::new("iq"), Jid::new(number, Jid::DEFAULT_USER_SERVER));
    };
    let device_id = account.next_device;
    account.next_device = account.next_device.saturating_add(1);
    let key_index = key_index(device_id);
    let details = AdvDeviceIdentity {
        raw_id: Some(account.raw_id),
        timestamp: Some(unix_now()),
        key_index: Some(key_index),
        account_type: Some(AdvEncryptionType::E2ee as i32),
        device_type: Some(AdvEncryptionType::E2ee as i32),
    }
    .encode_to_vec();
    let message = [&ACCOUNT_SIGNATURE_PREFIX[..], &details, companion_identity].concat();
    let mut account_signature = account.identity.private.sign(&message, &mut OsRng).to_vec();
    if tamper == Some(Tamper::AccountSignature) {
        account_signature[10] ^= 0x01;
    }
    let inner = AdvSignedDeviceIdentity {
        details: Some(details.clone()),
        account_signature_key: Some(account.identity.public.as_bytes().to_vec()),
        account_signature: Some(account_signature.clone()),
        device_signature: None,
    }
    .encode_to_vec();
    let mut hmac = adv_hmac(adv_secret, &inner);
    if tamper == Some(Tamper::Hmac) {
        hmac[0] ^= 0x01;
    }
    let container = AdvSignedDeviceIdentityHmac {
        details: Some(inner),
        hmac: Some(hmac),
        account_type: Some(AdvEncryptionType::E2ee as i32),
    }
    .encode_to_vec();
    let jid = device_jid(number, device_id);
    let lid = device_lid(&account.lid_user, device_id);
    let node = Node::new("iq")
        .attr("from", server_jid())
        .attr("type", "set")
        .attr("id", iq_id.clone())
        .attr("xmlns", "md")
        .children([Node::new("pair-success").children([
            Node::new("device").attr("jid", jid.clone()).attr("lid", lid),
            Node::new("platform").attr("name", "android"),
            Node::new("device-identity")
                .attr("key-index", key_index.to_string())
                .bytes(container),
        ])]);
    state.pending_pairs.insert(
        iq_id,
        PendingPair {
            conn,
            number: number.to_owned(),
            device_id,
            key_index,
            details,
            account_signature,
            companion_identity: *companion_identity,
        },
    );
    (node, jid)
}

fn adv_hmac(adv_secret: &[u8; 32], inner: &[u8]) -> Vec<u8> {
    match <Hmac<Sha256> as Mac>::new_from_slice(adv_secret) {
        Ok(mut mac) => {
            mac.update(inner);
            mac.finalize().into_bytes().to_vec()
        }
        // HMAC accepts keys of any length, so this is never reached; an empty MAC would fail every check.
        Err(_) => Vec::new(),
    }
}

/// Checks the companion's answer to a `pair-success`: the same details and account signature, no account key,
/// and a device signature by the companion's identity key over `06 01 || details || companion identity ||
/// account identity` (protocol-facts §3.4). Returns the failed check.
pub(crate) fn check_device_signature(
    pending: &PendingPair,
    account_identity: &[u8; 32],
    device_identity: &Node,
) -> Result<(), String> {
    let key_index = device_identity
        .optional_str_attr("key-index")
        .ok_or("device-identity has no key-index")?;
    if key_index != pending.key_index.to_string() {
        return Err(format!("key-index {key_index} is not {}", pending.key_index));
    }
    let bytes = device_identity
        .content_bytes()
        .ok_or("device-identity has no content")?;
    let signed = AdvSignedDeviceIdentity::decode(bytes.as_ref())
        .map_err(|e| format!("ADVSignedDeviceIdentity does not decode: {e}"))?;
    if signed.details.as_deref() != Some(pending.details.as_slice()) {
        return Err("details differ from the ones sent".to_owned());
    }
    if signed.account_signature.as_deref() != Some(pending.account_signature.as_slice()) {
        return Err("account signature differs from the one sent".to_owned());
    }
    if signed.account_signature_key.is_some() {
        return Err("account signature key must be left out of the reply".to_owned());
    }
    let device_signature = signed
        .device_signature
        .as_deref()
        .ok_or("device signature is missing")?;
    let message = [
        &DEVICE_SIGNATURE_PREFIX[..],
        &pending.details,
        &pending.companion_identity,
        account_identity,
    ]
    .concat();
    if !PublicKey::from_bytes(pending.companion_identity).verify_signature(&message, device_signature) {
        return Err("device signature does not verify".to_owned());
    }
    Ok(())
}

/// What the phone learns from a companion's `companion_finish`.
#[derive(Debug)]
pub(crate) struct CodeFinish {
    pub(crate) companion_identity: [u8; 32],
    pub(crate) adv_secret: [u8; 32],
}

/// The phone's side of `companion_finish`: decrypts the key bundle with the key both ephemeral keys agree on,
/// checks that it names the companion's identity key and the account's, and derives the ADV secret as
/// `HKDF-SHA256(ECDH(ephemerals) || ECDH(account identity, companion identity) || adv_random, "adv_secret")`
/// (protocol-facts §3.4). An `Err` is the reason the bundle is refused.
pub(crate) fn finish_code_pairing(
    pairing: &CodePairingState,
    account: &Account,
    wrapped_bundle: &[u8],
    companion_identity: &[u8; 32],
) -> Result<CodeFinish, String> {
    let (phone_ephemeral, companion_ephemeral) = pairing
        .exchange
        .as_ref()
        .ok_or("the phone has not entered a code yet")?;
    if wrapped_bundle.len() < 32 + 12 + 16 {
        return Err(format!(
            "wrapped key bundle is only {} bytes",
            wrapped_bundle.len()
        ));
    }
    let (salt, rest) = wrapped_bundle.split_at(32);
    let (nonce, ciphertext) = rest.split_at(12);
    let ephemeral_shared = phone_ephemeral
        .private
        .agree(&PublicKey::from_bytes(*companion_ephemeral));
    let mut bundle_key = [0u8; 32];
    Hkdf::<Sha256>::new(Some(salt), &ephemeral_shared)
        .expand(KEY_BUNDLE_INFO, &mut bundle_key)
        .map_err(|_| "key bundle key derivation failed")?;
    let plaintext = Aes256Gcm::new(&bundle_key.into())
        .decrypt(Nonce::from_slice(nonce), ciphertext)
        .map_err(|_| "key bundle does not decrypt (wrong code?)")?;
    if plaintext.len() != 96 {
        return Err(format!("key bundle is {} bytes, expected 96", plaintext.len()));
    }
    if plaintext[..32] != companion_identity[..] {
        return Err("key bundle names another companion identity".to_owned());
    }
    if plaintext[32..64] != account.identity.public.as_bytes()[..] {
        return Err("key bundle names another primary identity".to_owned());
    }
    let identity_shared = account
        .identity
        .private
        .agree(&PublicKey::from_bytes(*companion_identity));
    let input = [&ephemeral_shared[..], &identity_shared, &plaintext[64..]].concat();
    let mut adv_secret = [0u8; 32];
    Hkdf::<Sha256>::new(None, &input)
        .expand(ADV_SECRET_INFO, &mut adv_secret)
        .map_err(|_| "ADV secret derivation failed")?;
    Ok(CodeFinish {
        companion_identity: *companion_identity,
        adv_secret,
    })
}

/// The ADV key index a companion's device identity is signed with: its device id (each new companion gets the
/// next one, as the phone counts them). Device lists carry it beside the device id.
pub(crate) fn key_index(device_id: u16) -> u32 {
    u32::from(device_id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn qr_parsing_checks_every_field() {
        let key = STANDARD.encode([7u8; 32]);
        let good = format!("{QR_PREFIX}REF,{key},{key},{key},1");
        let qr = parse_qr(&good).unwrap();
        assert_eq!(qr.reference, "REF");
        assert_eq!(qr.noise, [7; 32]);
        assert!(parse_qr(&format!("{QR_PREFIX}REF,{key},{key},{key}")).is_ok());
        for bad in [
            format!("https://example.com#REF,{key},{key},{key},1"),
            format!("{QR_PREFIX}REF,{key},{key}"),
            format!("{QR_PREFIX}REF,{key},{key},AAAA,1"),
            format!("{QR_PREFIX}REF,{key},not base64!,{key},1"),
            format!("{QR_PREFIX},{key},{key},{key},1"),
        ] {
            assert!(matches!(parse_qr(&bad), Err(PhoneError::BadQr(_))), "{bad}");
        }
    }

    #[test]
    fn codes_are_normalised_and_checked() {
        assert_eq!(normalise_code("abcd-efgh").unwrap(), "ABCDEFGH");
        assert!(normalise_code("ABCD-EFG0").is_err());
        assert!(normalise_code("ABC").is_err());
        assert!(normalise_code("ABCDEFGHJ").is_err());
    }

    #[test]
    fn code_wrapping_round_trips_and_differs_per_code() {
        let (salt, iv, key) = ([1u8; 32], [2u8; 16], [3u8; 32]);
        let wrapped = code_cipher("ABCDEFGH", &salt, &iv, &key);
        assert_ne!(wrapped, key);
        assert_eq!(code_cipher("ABCDEFGH", &salt, &iv, &wrapped), key);
        assert_ne!(code_cipher("ABCDEFGJ", &salt, &iv, &wrapped), key);
    }
}
