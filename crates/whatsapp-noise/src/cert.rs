//! The server's Noise certificate chain: root → intermediate → leaf, checked with XEdDSA.
//!
//! Signatures use `whatsapp_signal`'s curve module, so XEdDSA lives in one place in the workspace.

use prost::Message;
use rand_core::{CryptoRng, RngCore};
use whatsapp_proto::cert::CertChain;
use whatsapp_proto::cert::cert_chain::NoiseCertificate;
use whatsapp_proto::cert::cert_chain::noise_certificate::Details;
use whatsapp_signal::{KeyPair, PrivateKey, PublicKey};

use crate::{CertError, ResponderIdentity};

/// WhatsApp's root certificate key, `WACertPubKey` (protocol-facts §3.1).
pub const WHATSAPP_ROOT_KEY: [u8; 32] = [
    0x14, 0x23, 0x75, 0x57, 0x4d, 0x0a, 0x58, 0x71, 0x66, 0xaa, 0xe7, 0x1e, 0xbe, 0x51, 0x64, 0x37, 0xc4,
    0xa2, 0x8b, 0x73, 0xe3, 0x69, 0x5c, 0x6c, 0xe1, 0xf7, 0xf9, 0x54, 0x5d, 0xa8, 0xee, 0x6b,
];

/// The serial of the root, which the intermediate must name as its issuer (`WACertIssuerSerial`,
/// protocol-facts §3.1).
pub const ROOT_SERIAL: u32 = 0;

/// The key a certificate chain must lead back to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TrustRoot(PublicKey);

impl Default for TrustRoot {
    fn default() -> Self {
        Self::whatsapp()
    }
}

impl TrustRoot {
    /// WhatsApp's real root key: what a client connecting to WhatsApp must use.
    pub fn whatsapp() -> Self {
        Self(PublicKey::from_bytes(WHATSAPP_ROOT_KEY))
    }

    /// A root of the caller's choosing, **for tests and test servers only**: a client that trusts anything
    /// other than [`TrustRoot::whatsapp`] can be impersonated by whoever holds that root's private key.
    pub fn custom(key: PublicKey) -> Self {
        Self(key)
    }

    /// The root public key.
    pub fn key(&self) -> &PublicKey {
        &self.0
    }
}

/// What a verified chain says about the server.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifiedChain {
    /// The intermediate certificate's serial.
    pub intermediate_serial: u32,
    /// The leaf certificate's serial.
    pub leaf_serial: u32,
    /// The leaf's validity end, unix seconds (the earlier of the two certificates' ends).
    pub not_after: u64,
}

struct Checked {
    details: Details,
}

fn open_cert(
    cert: Option<&NoiseCertificate>,
    which: &'static str,
    signer: &PublicKey,
) -> Result<Checked, CertError> {
    let cert = cert.ok_or(CertError::Missing(which))?;
    let details_bytes = cert
        .details
        .as_deref()
        .ok_or(CertError::Missing("certificate details"))?;
    let signature = cert
        .signature
        .as_deref()
        .ok_or(CertError::Missing("certificate signature"))?;
    if !signer.verify_signature(details_bytes, signature) {
        return Err(CertError::BadSignature(which));
    }
    let details = Details::decode(details_bytes).map_err(|e| CertError::Decode(e.to_string()))?;
    Ok(Checked { details })
}

fn key_of(details: &Details, which: &'static str) -> Result<PublicKey, CertError> {
    let key = details.key.as_deref().ok_or(CertError::BadKey(which))?;
    let key = <[u8; 32]>::try_from(key).map_err(|_| CertError::BadKey(which))?;
    Ok(PublicKey::from_bytes(key))
}

fn check_validity(details: &Details, which: &'static str, now: u64) -> Result<(), CertError> {
    // Missing bounds read as 0, as Go's getters do: a certificate without `not_after` is never valid.
    let not_before = details.not_before.unwrap_or(0);
    let not_after = details.not_after.unwrap_or(0);
    if not_before <= now && now <= not_after {
        Ok(())
    } else {
        Err(CertError::Expired {
            which,
            now,
            not_before,
            not_after,
        })
    }
}

/// Verifies an encoded `CertChain` against `root`, requiring the leaf key to equal `server_static` and both
/// certificates to be valid at `now` (unix seconds). Checks per protocol-facts §3.1.
pub fn verify_chain(
    chain: &[u8],
    root: &TrustRoot,
    server_static: &[u8; 32],
    now: u64,
) -> Result<VerifiedChain, CertError> {
    let chain = CertChain::decode(chain).map_err(|e| CertError::Decode(e.to_string()))?;
    let intermediate = open_cert(chain.intermediate.as_ref(), "intermediate", root.key())?;
    let issuer = intermediate.details.issuer_serial.unwrap_or(0);
    if issuer != ROOT_SERIAL {
        return Err(CertError::BadIntermediateIssuer(issuer));
    }
    let intermediate_key = key_of(&intermediate.details, "intermediate")?;
    let leaf = open_cert(chain.leaf.as_ref(), "leaf", &intermediate_key)?;
    let intermediate_serial = intermediate.details.serial.unwrap_or(0);
    let leaf_issuer = leaf.details.issuer_serial.unwrap_or(0);
    if leaf_issuer != intermediate_serial {
        return Err(CertError::IssuerMismatch {
            leaf_issuer,
            intermediate: intermediate_serial,
        });
    }
    let leaf_key = key_of(&leaf.details, "leaf")?;
    if leaf_key.as_bytes() != server_static {
        return Err(CertError::LeafKeyMismatch);
    }
    check_validity(&intermediate.details, "intermediate", now)?;
    check_validity(&leaf.details, "leaf", now)?;
    Ok(VerifiedChain {
        intermediate_serial,
        leaf_serial: leaf.details.serial.unwrap_or(0),
        not_after: leaf
            .details
            .not_after
            .unwrap_or(0)
            .min(intermediate.details.not_after.unwrap_or(0)),
    })
}

/// The inputs of [`issue_chain`]: what a test server needs to present a chain.
#[derive(Debug)]
pub struct ChainParams<'a> {
    /// The root private key (its public key is the clients' [`TrustRoot::custom`]).
    pub root: &'a PrivateKey,
    /// The intermediate private key.
    pub intermediate: &'a PrivateKey,
    /// The server's Noise static public key, certified by the leaf.
    pub server_static: &'a PublicKey,
    /// The intermediate's serial; the leaf gets `serial + 1`.
    pub intermediate_serial: u32,
    /// Start of validity of both certificates, unix seconds.
    pub not_before: u64,
    /// End of validity of both certificates, unix seconds.
    pub not_after: u64,
}

/// Issues an encoded `CertChain` (for test servers): the intermediate signed by the root, the leaf (the server
/// static key) signed by the intermediate.
pub fn issue_chain(params: &ChainParams<'_>, rng: &mut (impl RngCore + CryptoRng)) -> Vec<u8> {
    let intermediate = Details {
        serial: Some(params.intermediate_serial),
        issuer_serial: Some(ROOT_SERIAL),
        key: Some(params.intermediate.public_key().as_bytes().to_vec()),
        not_before: Some(params.not_before),
        not_after: Some(params.not_after),
    };
    let leaf = Details {
        serial: Some(params.intermediate_serial.wrapping_add(1)),
        issuer_serial: Some(params.intermediate_serial),
        key: Some(params.server_static.as_bytes().to_vec()),
        not_before: Some(params.not_before),
        not_after: Some(params.not_after),
    };
    CertChain {
        leaf: Some(sign_cert(params.intermediate, &leaf, rng)),
        intermediate: Some(sign_cert(params.root, &intermediate, rng)),
    }
    .encode_to_vec()
}

fn sign_cert(key: &PrivateKey, details: &Details, rng: &mut (impl RngCore + CryptoRng)) -> NoiseCertificate {
    let details = details.encode_to_vec();
    let signature = key.sign(&details, rng);
    NoiseCertificate {
        details: Some(details),
        signature: Some(signature.to_vec()),
    }
}

/// A fresh server identity under a fresh root, **for test servers and tests only**: a new root key, a new
/// intermediate (serial 1) and a new Noise static key, certified from `not_before` to `not_after` (unix seconds).
///
/// Returns what the server presents and the [`TrustRoot`] its clients must be given. The root and intermediate
/// private keys are dropped: nobody can issue a second chain under this root.
pub fn self_issued_identity(
    rng: &mut (impl RngCore + CryptoRng),
    not_before: u64,
    not_after: u64,
) -> (ResponderIdentity, TrustRoot) {
    let root = PrivateKey::generate(rng);
    let intermediate = PrivateKey::generate(rng);
    let static_key = KeyPair::generate(rng);
    let cert_chain = issue_chain(
        &ChainParams {
            root: &root,
            intermediate: &intermediate,
            server_static: &static_key.public,
            intermediate_serial: 1,
            not_before,
            not_after,
        },
        rng,
    );
    (
        ResponderIdentity {
            static_key,
            cert_chain,
        },
        TrustRoot::custom(root.public_key()),
    )
}
