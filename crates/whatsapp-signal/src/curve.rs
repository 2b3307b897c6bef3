//! Curve25519 keys: X25519 agreement and XEdDSA signatures compatible with libsignal.
//!
//! Keys are Montgomery u-coordinates (32 bytes); on the wire libsignal prefixes them with the type byte 0x05.
//! Signatures follow Signal's XEdDSA specification as libsignal implements it: the private scalar is used
//! as-is, and the sign bit of the Edwards public key travels in the top bit of the signature's last byte, so a
//! verifier can lift the Montgomery key to the right Edwards point.

use curve25519_dalek::constants::ED25519_BASEPOINT_TABLE;
use curve25519_dalek::edwards::EdwardsPoint;
use curve25519_dalek::montgomery::MontgomeryPoint;
use curve25519_dalek::scalar::Scalar;
use rand_core::{CryptoRng, RngCore};
use sha2::{Digest, Sha512};
use subtle::ConstantTimeEq;
use zeroize::{Zeroize, ZeroizeOnDrop};

use crate::Error;

/// The key type byte libsignal puts before a Curve25519 public key ("DJB" type, protocol-facts §3.5).
pub const DJB_TYPE: u8 = 0x05;

/// Length of an XEdDSA signature.
pub const SIGNATURE_LENGTH: usize = 64;

/// A Curve25519 public key (Montgomery u-coordinate).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct PublicKey([u8; 32]);

impl PublicKey {
    /// Wraps 32 raw bytes.
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// The 32 raw bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// The 33-byte libsignal encoding: 0x05 followed by the key.
    pub fn serialize(&self) -> [u8; 33] {
        let mut out = [0u8; 33];
        out[0] = DJB_TYPE;
        out[1..].copy_from_slice(&self.0);
        out
    }

    /// Decodes a key from 33 bytes starting with 0x05, or from 32 raw bytes.
    pub fn deserialize(bytes: &[u8]) -> Result<Self, Error> {
        let raw = match bytes {
            [DJB_TYPE, rest @ ..] if rest.len() == 32 => rest,
            _ if bytes.len() == 32 => bytes,
            _ => return Err(Error::BadPublicKey { len: bytes.len() }),
        };
        let mut key = [0u8; 32];
        key.copy_from_slice(raw);
        Ok(Self(key))
    }

    /// Verifies an XEdDSA signature over `message`.
    ///
    /// Returns false for a signature of any length other than 64 bytes, a non-canonical `s`, or a key that has
    /// no Edwards form; never panics.
    pub fn verify_signature(&self, message: &[u8], signature: &[u8]) -> bool {
        let Ok(signature) = <&[u8; SIGNATURE_LENGTH]>::try_from(signature) else {
            return false;
        };
        let sign_bit = (signature[63] & 0x80) >> 7;
        let Some(ed_public) = MontgomeryPoint(self.0).to_edwards(sign_bit) else {
            return false;
        };
        let mut cap_r = [0u8; 32];
        cap_r.copy_from_slice(&signature[..32]);
        let mut s = [0u8; 32];
        s.copy_from_slice(&signature[32..]);
        s[31] &= 0x7f;
        // `s` must be below 2^253 (libsignal's check); the full canonicity check follows.
        if s[31] & 0xe0 != 0 {
            return false;
        }
        let Some(s) = Option::<Scalar>::from(Scalar::from_canonical_bytes(s)) else {
            return false;
        };
        let cap_a = ed_public.compress();
        let h = Scalar::from_hash(
            Sha512::new()
                .chain_update(cap_r)
                .chain_update(cap_a.as_bytes())
                .chain_update(message),
        );
        let check = EdwardsPoint::vartime_double_scalar_mul_basepoint(&h, &-ed_public, &s).compress();
        bool::from(check.as_bytes().ct_eq(&cap_r))
    }
}

impl std::fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PublicKey(")?;
        for byte in self.0 {
            write!(f, "{byte:02x}")?;
        }
        write!(f, ")")
    }
}

/// A Curve25519 private key (clamped scalar), zeroized on drop.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct PrivateKey([u8; 32]);

impl PrivateKey {
    /// Wraps 32 bytes, clamping them as X25519 requires.
    pub fn from_bytes(mut bytes: [u8; 32]) -> Self {
        bytes[0] &= 248;
        bytes[31] &= 127;
        bytes[31] |= 64;
        Self(bytes)
    }

    /// Decodes a key from a 32-byte slice (as stored in records).
    pub fn deserialize(bytes: &[u8]) -> Result<Self, Error> {
        let bytes = <[u8; 32]>::try_from(bytes).map_err(|_| Error::BadPrivateKey { len: bytes.len() })?;
        Ok(Self::from_bytes(bytes))
    }

    /// Draws a fresh private key.
    pub fn generate(rng: &mut (impl RngCore + CryptoRng)) -> Self {
        let mut bytes = [0u8; 32];
        rng.fill_bytes(&mut bytes);
        let key = Self::from_bytes(bytes);
        bytes.zeroize();
        key
    }

    /// The clamped scalar bytes, for persistence.
    pub fn to_bytes(&self) -> [u8; 32] {
        self.0
    }

    /// The clamped scalar bytes, for persistence.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// The matching public key.
    pub fn public_key(&self) -> PublicKey {
        PublicKey(MontgomeryPoint::mul_base_clamped(self.0).to_bytes())
    }

    /// X25519 agreement with a peer's public key.
    pub fn agree(&self, peer: &PublicKey) -> [u8; 32] {
        MontgomeryPoint(peer.0).mul_clamped(self.0).to_bytes()
    }

    /// XEdDSA signature over `message` with a fresh random 64-byte nonce input.
    pub fn sign(&self, message: &[u8], rng: &mut (impl RngCore + CryptoRng)) -> [u8; 64] {
        let mut random = [0u8; 64];
        rng.fill_bytes(&mut random);
        let signature = self.sign_with_random(message, &random);
        random.zeroize();
        signature
    }

    /// XEdDSA signature over `message` with the given 64 random bytes (Signal's XEdDSA, hash_1 nonce).
    pub fn sign_with_random(&self, message: &[u8], random: &[u8; 64]) -> [u8; 64] {
        let a = Scalar::from_bytes_mod_order(self.0);
        let ed_public = (&a * ED25519_BASEPOINT_TABLE).compress();
        let sign_bit = ed_public.as_bytes()[31] & 0x80;
        // hash_1 prefix: 0xFE followed by 31 bytes of 0xFF (XEdDSA specification §2.5).
        let mut prefix = [0xffu8; 32];
        prefix[0] = 0xfe;
        let r = Scalar::from_hash(
            Sha512::new()
                .chain_update(prefix)
                .chain_update(self.0)
                .chain_update(message)
                .chain_update(random),
        );
        let cap_r = (&r * ED25519_BASEPOINT_TABLE).compress();
        let h = Scalar::from_hash(
            Sha512::new()
                .chain_update(cap_r.as_bytes())
                .chain_update(ed_public.as_bytes())
                .chain_update(message),
        );
        let s = h * a + r;
        let mut out = [0u8; 64];
        out[..32].copy_from_slice(cap_r.as_bytes());
        out[32..].copy_from_slice(s.as_bytes());
        out[63] &= 0x7f;
        out[63] |= sign_bit;
        out
    }
}

impl std::fmt::Debug for PrivateKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PrivateKey(<redacted>)")
    }
}

/// A Curve25519 key pair.
#[derive(Clone, Debug)]
pub struct KeyPair {
    /// The public half.
    pub public: PublicKey,
    /// The private half.
    pub private: PrivateKey,
}

impl KeyPair {
    /// Draws a fresh key pair.
    pub fn generate(rng: &mut (impl RngCore + CryptoRng)) -> Self {
        Self::from_private(PrivateKey::generate(rng))
    }

    /// Derives the public key of `private`.
    pub fn from_private(private: PrivateKey) -> Self {
        Self {
            public: private.public_key(),
            private,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sign_and_verify_round_trip() {
        let key = KeyPair::from_private(PrivateKey::from_bytes([7u8; 32]));
        for len in [0usize, 1, 33, 200] {
            let message = vec![0x5a; len];
            let signature = key.private.sign_with_random(&message, &[3u8; 64]);
            assert!(key.public.verify_signature(&message, &signature));
            assert!(!key.public.verify_signature(&[1], &signature));
            assert!(!key.public.verify_signature(&message, &signature[..63]));
        }
    }

    #[test]
    fn key_encodings() {
        let key = PublicKey::from_bytes([9u8; 32]);
        assert_eq!(PublicKey::deserialize(&key.serialize()), Ok(key));
        assert_eq!(PublicKey::deserialize(key.as_bytes()), Ok(key));
        assert!(PublicKey::deserialize(&[6u8; 33]).is_err());
        assert!(PublicKey::deserialize(&[5u8; 34]).is_err());
        assert!(PublicKey::deserialize(&[]).is_err());
        assert_eq!(
            format!("{:?}", PrivateKey::from_bytes([1; 32])),
            "PrivateKey(<redacted>)"
        );
    }
}
