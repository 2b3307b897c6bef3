//! Curve25519 vectors (`tests/data/curve.json`): X25519 agreement and every signature case, valid or not.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test helpers fail loudly")]

use serde::Deserialize;
use whatsapp_signal::{KeyPair, PrivateKey, PublicKey};

#[derive(Deserialize)]
struct Pair {
    #[serde(rename = "priv")]
    private: String,
    #[serde(rename = "pub")]
    public: String,
}

#[derive(Deserialize)]
struct Agreement {
    name: String,
    a: Pair,
    b: Pair,
    shared: String,
}

#[derive(Deserialize)]
struct Signature {
    name: String,
    #[serde(rename = "priv")]
    private: Option<String>,
    #[serde(rename = "pub")]
    public: String,
    message: String,
    signature: String,
    valid: bool,
}

#[derive(Deserialize)]
struct Vectors {
    x25519: Vec<Agreement>,
    signatures: Vec<Signature>,
}

fn vectors() -> Vectors {
    serde_json::from_str(include_str!("data/curve.json")).unwrap()
}

fn key32(hex_str: &str) -> [u8; 32] {
    hex::decode(hex_str).unwrap().try_into().unwrap()
}

fn check_pair(name: &str, pair: &Pair) -> KeyPair {
    let pair_keys = KeyPair::from_private(PrivateKey::from_bytes(key32(&pair.private)));
    assert_eq!(
        pair_keys.public.as_bytes(),
        &key32(&pair.public),
        "{name}: public key"
    );
    pair_keys
}

#[test]
fn x25519_agreement() {
    let vectors = vectors();
    assert!(!vectors.x25519.is_empty());
    for case in &vectors.x25519 {
        let a = check_pair(&case.name, &case.a);
        let b = check_pair(&case.name, &case.b);
        let shared = key32(&case.shared);
        assert_eq!(a.private.agree(&b.public), shared, "{}", case.name);
        assert_eq!(b.private.agree(&a.public), shared, "{}", case.name);
    }
}

#[test]
fn signatures() {
    let vectors = vectors();
    assert_eq!(vectors.signatures.len(), 12);
    for case in &vectors.signatures {
        let public = PublicKey::from_bytes(key32(&case.public));
        let message = hex::decode(&case.message).unwrap();
        let signature = hex::decode(&case.signature).unwrap();
        assert_eq!(
            public.verify_signature(&message, &signature),
            case.valid,
            "{}",
            case.name
        );
        // The 33-byte wire form decodes to the same key.
        assert_eq!(PublicKey::deserialize(&public.serialize()).unwrap(), public);
        if let Some(private) = &case.private {
            // Our randomized signatures differ from the deterministic vector ones but must verify too.
            let pair = check_pair(
                &case.name,
                &Pair {
                    private: private.clone(),
                    public: case.public.clone(),
                },
            );
            let ours = pair.private.sign(&message, &mut rand::rngs::OsRng);
            assert!(
                public.verify_signature(&message, &ours),
                "{}: own signature",
                case.name
            );
            let mut tampered = ours;
            tampered[5] ^= 1;
            assert!(
                !public.verify_signature(&message, &tampered),
                "{}: tampered own signature",
                case.name
            );
        }
    }
}
