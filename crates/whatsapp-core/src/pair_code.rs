//! Pairing with a phone-number code instead of a QR code (protocol-facts §3.4, "Pairing code").
//!
//! The companion shows an 8-character code; the user types it on the phone. Both sides wrap their ephemeral
//! public keys with a key derived from the code (PBKDF2, then AES-CTR), so only someone who knows the code can
//! unwrap them. After the key exchange the companion derives a new ADV secret that replaces the one a QR code
//! would have carried.

use aes::Aes256;
use aes_gcm::aead::{Aead, KeyInit};
use aes_gcm::{Aes256Gcm, Nonce};
use ctr::cipher::{KeyIvInit, StreamCipher};
use hkdf::Hkdf;
use rand_core::{CryptoRng, RngCore};
use sha2::Sha256;
use whatsapp_binary::{Jid, Node};
use whatsapp_signal::{KeyPair, PublicKey};
use zeroize::{Zeroize, Zeroizing};

use crate::error::PairError;
use crate::pair::PairClientType;

/// The alphabet of pairing codes: base32 without `0`, `I`, `O` and `U` (protocol-facts §3.4).
pub const CODE_ALPHABET: &[u8; 32] = b"123456789ABCDEFGHJKLMNPQRSTVWXYZ";
/// PBKDF2-HMAC-SHA256 iterations for the code key: `2 << 16` (protocol-facts §3.4).
pub const PBKDF2_ROUNDS: u32 = 2 << 16;
/// Length of a wrapped ephemeral key: salt (32) || IV (16) || encrypted key (32).
pub const WRAPPED_KEY_LEN: usize = 80;
/// HKDF info of the key that encrypts the companion's key bundle.
pub const KEY_BUNDLE_INFO: &[u8] = b"link_code_pairing_key_bundle_encryption_key";
/// HKDF info of the ADV secret derived at the end of code pairing.
pub const ADV_SECRET_INFO: &[u8] = b"adv_secret";

type Aes256Ctr = ctr::Ctr128BE<Aes256>;

/// An 8-character pairing code, shown to the user as `XXXX-XXXX`.
#[derive(Clone, PartialEq, Eq)]
pub struct PairingCode(String);

impl PairingCode {
    /// Encodes 5 random bytes as 8 base32 characters of [`CODE_ALPHABET`].
    pub fn from_bytes(bytes: [u8; 5]) -> PairingCode {
        let mut value = bytes.iter().fold(0u64, |acc, b| (acc << 8) | u64::from(*b));
        let mut chars = [0u8; 8];
        for slot in chars.iter_mut().rev() {
            *slot = CODE_ALPHABET[(value & 31) as usize];
            value >>= 5;
        }
        PairingCode(chars.iter().map(|&c| char::from(c)).collect())
    }

    /// Draws a new code.
    pub fn generate(rng: &mut (impl RngCore + CryptoRng)) -> PairingCode {
        let mut bytes = [0u8; 5];
        rng.fill_bytes(&mut bytes);
        PairingCode::from_bytes(bytes)
    }

    /// The code as typed on the phone, without the dash.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The code as shown to the user: `XXXX-XXXX`.
    pub fn display(&self) -> String {
        format!("{}-{}", &self.0[..4], &self.0[4..])
    }
}

impl std::fmt::Debug for PairingCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PairingCode(..)")
    }
}

fn code_key(code: &PairingCode, salt: &[u8]) -> Zeroizing<[u8; 32]> {
    let mut key = Zeroizing::new([0u8; 32]);
    pbkdf2::pbkdf2_hmac::<Sha256>(code.as_str().as_bytes(), salt, PBKDF2_ROUNDS, key.as_mut());
    key
}

/// Wraps a 32-byte ephemeral public key with the code: `salt || iv || AES-CTR(PBKDF2(code, salt), iv, key)`.
pub fn wrap_ephemeral(code: &PairingCode, salt: [u8; 32], iv: [u8; 16], public: &[u8; 32]) -> [u8; 80] {
    let key = code_key(code, &salt);
    let mut out = [0u8; WRAPPED_KEY_LEN];
    out[..32].copy_from_slice(&salt);
    out[32..48].copy_from_slice(&iv);
    out[48..].copy_from_slice(public);
    Aes256Ctr::new(key.as_ref().into(), &iv.into()).apply_keystream(&mut out[48..]);
    out
}

/// Unwraps a key wrapped by [`wrap_ephemeral`]. Any 80 bytes unwrap to *some* key: a wrong code shows up later,
/// as a key agreement the peer cannot complete.
pub fn unwrap_ephemeral(code: &PairingCode, wrapped: &[u8]) -> Result<[u8; 32], PairError> {
    let wrapped: &[u8; WRAPPED_KEY_LEN] = wrapped
        .get(..WRAPPED_KEY_LEN)
        .and_then(|w| w.try_into().ok())
        .ok_or(PairError::PairCode(
            "wrapped ephemeral key is shorter than 80 bytes",
        ))?;
    let key = code_key(code, &wrapped[..32]);
    let mut public = [0u8; 32];
    public.copy_from_slice(&wrapped[48..]);
    let iv: [u8; 16] = wrapped[32..48]
        .try_into()
        .map_err(|_| PairError::PairCode("bad IV"))?;
    Aes256Ctr::new(key.as_ref().into(), &iv.into()).apply_keystream(&mut public);
    Ok(public)
}

/// The companion's state between `companion_hello` and the phone's answer.
pub struct CodePairing {
    /// The phone number's JID.
    pub phone: Jid,
    /// The code the user types.
    pub code: PairingCode,
    ephemeral: KeyPair,
    /// The server's reference for this attempt, from the `companion_hello` response.
    pub pairing_ref: Option<Vec<u8>>,
}

impl std::fmt::Debug for CodePairing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CodePairing")
            .field("phone", &self.phone)
            .finish_non_exhaustive()
    }
}

/// Normalises a phone number typed by a user: keeps digits only, and refuses numbers that are too short or that
/// start with `0` (not in international form).
pub fn phone_jid(number: &str) -> Result<Jid, PairError> {
    let digits: String = number.chars().filter(char::is_ascii_digit).collect();
    if digits.len() <= 6 {
        return Err(PairError::PairCode("phone number is too short"));
    }
    if digits.starts_with('0') {
        return Err(PairError::PairCode("phone number is not in international form"));
    }
    Ok(Jid::new(digits, Jid::DEFAULT_USER_SERVER))
}

impl CodePairing {
    /// Starts code pairing for `phone`: draws the code and the ephemeral key, and builds the `companion_hello` IQ
    /// content (the caller wraps it in `<iq xmlns="md" type="set" to="s.whatsapp.net">`).
    pub fn start(
        phone: Jid,
        noise_public: &[u8; 32],
        client_type: PairClientType,
        client_display: &str,
        show_push_notification: bool,
        rng: &mut (impl RngCore + CryptoRng),
    ) -> (CodePairing, Node) {
        let code = PairingCode::generate(rng);
        let ephemeral = KeyPair::generate(rng);
        let mut salt = [0u8; 32];
        let mut iv = [0u8; 16];
        rng.fill_bytes(&mut salt);
        rng.fill_bytes(&mut iv);
        let wrapped = wrap_ephemeral(&code, salt, iv, ephemeral.public.as_bytes());
        let node = Node::new("link_code_companion_reg")
            .attr("jid", phone.clone())
            .attr("stage", "companion_hello")
            .attr(
                "should_show_push_notification",
                show_push_notification.to_string(),
            )
            .children([
                Node::new("link_code_pairing_wrapped_companion_ephemeral_pub").bytes(wrapped.to_vec()),
                Node::new("companion_server_auth_key_pub").bytes(noise_public.to_vec()),
                Node::new("companion_platform_id").text(client_type.code().to_string()),
                Node::new("companion_platform_display").text(client_display.to_owned()),
                Node::new("link_code_pairing_nonce").bytes(vec![0]),
            ]);
        (
            CodePairing {
                phone,
                code,
                ephemeral,
                pairing_ref: None,
            },
            node,
        )
    }

    /// Records the `link_code_pairing_ref` of the server's answer to `companion_hello`.
    pub fn handle_hello_response(&mut self, iq_result: &Node) -> Result<(), PairError> {
        let reference = iq_result
            .child("link_code_companion_reg")
            .and_then(|reg| reg.child("link_code_pairing_ref"))
            .and_then(Node::content_bytes)
            .ok_or(PairError::MissingElement("link_code_pairing_ref"))?;
        self.pairing_ref = Some(reference.to_vec());
        Ok(())
    }

    /// Handles the phone's `<notification type="link_code_companion_reg">`: unwraps the phone's ephemeral key,
    /// encrypts this device's key bundle for it, and derives the new ADV secret.
    ///
    /// Returns the ADV secret to store and the `companion_finish` IQ content to send.
    pub fn finish(
        &self,
        notification: &Node,
        identity: &KeyPair,
        rng: &mut (impl RngCore + CryptoRng),
    ) -> Result<(Zeroizing<[u8; 32]>, Node), PairError> {
        let reg = notification
            .child("link_code_companion_reg")
            .ok_or(PairError::MissingElement("link_code_companion_reg"))?;
        let bytes_of = |tag: &'static str| {
            reg.child(tag)
                .and_then(Node::content_bytes)
                .ok_or(PairError::MissingElement(tag))
        };
        let reference = bytes_of("link_code_pairing_ref")?;
        if self.pairing_ref.as_deref() != Some(reference.as_ref()) {
            return Err(PairError::PairCode(
                "pairing ref does not match the pending pairing",
            ));
        }
        let primary_ephemeral = unwrap_ephemeral(
            &self.code,
            bytes_of("link_code_pairing_wrapped_primary_ephemeral_pub")?,
        )?;
        let primary_identity: [u8; 32] = bytes_of("primary_identity_pub")?
            .as_ref()
            .try_into()
            .map_err(|_| PairError::PairCode("primary identity key is not 32 bytes"))?;

        let mut adv_random = Zeroizing::new([0u8; 32]);
        let mut bundle_salt = [0u8; 32];
        let mut bundle_nonce = [0u8; 12];
        rng.fill_bytes(adv_random.as_mut());
        rng.fill_bytes(&mut bundle_salt);
        rng.fill_bytes(&mut bundle_nonce);

        let ephemeral_shared = Zeroizing::new(
            self.ephemeral
                .private
                .agree(&PublicKey::from_bytes(primary_ephemeral)),
        );
        let mut bundle_key = Zeroizing::new([0u8; 32]);
        Hkdf::<Sha256>::new(Some(&bundle_salt), ephemeral_shared.as_ref())
            .expand(KEY_BUNDLE_INFO, bundle_key.as_mut())
            .map_err(|_| PairError::PairCode("key bundle key derivation failed"))?;
        let plaintext = Zeroizing::new(
            [
                identity.public.as_bytes().as_slice(),
                &primary_identity,
                adv_random.as_ref(),
            ]
            .concat(),
        );
        let ciphertext = Aes256Gcm::new(bundle_key.as_ref().into())
            .encrypt(Nonce::from_slice(&bundle_nonce), plaintext.as_slice())
            .map_err(|_| PairError::PairCode("key bundle encryption failed"))?;
        let wrapped_bundle = [&bundle_salt[..], &bundle_nonce, &ciphertext].concat();

        let identity_shared =
            Zeroizing::new(identity.private.agree(&PublicKey::from_bytes(primary_identity)));
        let mut input = Zeroizing::new(
            [
                ephemeral_shared.as_ref(),
                identity_shared.as_ref(),
                adv_random.as_ref(),
            ]
            .concat(),
        );
        let mut adv_secret = Zeroizing::new([0u8; 32]);
        Hkdf::<Sha256>::new(None, input.as_slice())
            .expand(ADV_SECRET_INFO, adv_secret.as_mut())
            .map_err(|_| PairError::PairCode("ADV secret derivation failed"))?;
        input.zeroize();

        let node = Node::new("link_code_companion_reg")
            .attr("jid", self.phone.clone())
            .attr("stage", "companion_finish")
            .children([
                Node::new("link_code_pairing_wrapped_key_bundle").bytes(wrapped_bundle),
                Node::new("companion_identity_public").bytes(identity.public.as_bytes().to_vec()),
                Node::new("link_code_pairing_ref").bytes(reference.to_vec()),
            ]);
        Ok((adv_secret, node))
    }
}
