//! Pairing flows checked against a phone simulated here from the protocol facts (protocol-facts §3.4): the
//! phone side is written independently of the engine's code, so a disagreement shows as a failure.
#![allow(clippy::unwrap_used)]

use aes::Aes256;
use aes_gcm::aead::{Aead, KeyInit};
use aes_gcm::{Aes256Gcm, Nonce};
use ctr::cipher::{KeyIvInit, StreamCipher};
use hkdf::Hkdf;
use hmac::{Hmac, Mac};
use rand::SeedableRng;
use rand::rngs::StdRng;
use sha2::Sha256;
use whatsapp_binary::{Jid, Node};
use whatsapp_core::PairError;
use whatsapp_core::pair::{self, PairClientType, PairSuccess};
use whatsapp_core::pair_code::{self, CodePairing, PairingCode};
use whatsapp_proto::ProtoMessage;
use whatsapp_proto::adv::{AdvDeviceIdentity, AdvSignedDeviceIdentity, AdvSignedDeviceIdentityHmac};
use whatsapp_signal::{KeyPair, PublicKey};

struct Phone {
    account: KeyPair,
}

impl Phone {
    /// The phone's `pair-success` for a companion whose identity key and ADV secret it learned.
    fn pair_success(&self, identity: &PublicKey, adv_secret: &[u8; 32], rng: &mut StdRng) -> Node {
        let details = AdvDeviceIdentity {
            raw_id: Some(77),
            timestamp: Some(1_700_000_000),
            key_index: Some(3),
            ..Default::default()
        }
        .encode_to_vec();
        let message = [&[6u8, 0][..], &details, identity.as_bytes()].concat();
        let signed = AdvSignedDeviceIdentity {
            details: Some(details),
            account_signature_key: Some(self.account.public.as_bytes().to_vec()),
            account_signature: Some(self.account.private.sign(&message, rng).to_vec()),
            device_signature: None,
        }
        .encode_to_vec();
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(adv_secret).unwrap();
        mac.update(&signed);
        let container = AdvSignedDeviceIdentityHmac {
            details: Some(signed),
            hmac: Some(mac.finalize().into_bytes().to_vec()),
            account_type: None,
        };
        Node::new("iq")
            .attr("id", "pair-1")
            .attr("type", "set")
            .children([Node::new("pair-success").children([
                Node::new("device-identity").bytes(container.encode_to_vec()),
                Node::new("device")
                    .attr(
                        "jid",
                        Jid::with_device("15551234567", Jid::DEFAULT_USER_SERVER, 12),
                    )
                    .attr("lid", Jid::with_device("9876543210", Jid::LID_SERVER, 12)),
                Node::new("platform").attr("name", "android"),
            ])])
    }
}

fn setup() -> (StdRng, Phone, KeyPair, [u8; 32]) {
    let mut rng = StdRng::seed_from_u64(42);
    let phone = Phone {
        account: KeyPair::generate(&mut rng),
    };
    let identity = KeyPair::generate(&mut rng);
    (rng, phone, identity, [0x5a; 32])
}

#[test]
fn qr_code_has_the_documented_layout() {
    let code = pair::qr_code(b"2@abc", &[1; 32], &[2; 32], &[3; 32], PairClientType::Chrome);
    let rest = code
        .strip_prefix("https://wa.me/settings/linked_devices#")
        .unwrap();
    let parts: Vec<&str> = rest.split(',').collect();
    assert_eq!(parts.len(), 5);
    assert_eq!(parts[0], "2@abc");
    assert_eq!(parts[1], "AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=");
    assert_eq!(parts[4], "1");
}

#[test]
fn pair_success_is_verified_and_countersigned() {
    let (mut rng, phone, identity, adv) = setup();
    let stanza = phone.pair_success(&identity.public, &adv, &mut rng);
    let success = PairSuccess::parse(&stanza).unwrap();
    assert_eq!(success.platform.as_deref(), Some("android"));
    let paired = pair::complete_pair_success(&success, &identity, &adv).unwrap();
    assert_eq!(paired.primary_identity, *phone.account.public.as_bytes());
    assert_eq!(paired.lid, Jid::with_device("9876543210", Jid::LID_SERVER, 12));

    // The reply carries the identity without the account key and with a device signature the phone can check.
    let sign = paired
        .reply
        .child("pair-device-sign")
        .unwrap()
        .child("device-identity")
        .unwrap();
    assert_eq!(sign.optional_str_attr("key-index"), Some("3"));
    let replied = AdvSignedDeviceIdentity::decode(sign.content_bytes().unwrap().as_ref()).unwrap();
    assert!(replied.account_signature_key.is_none());
    let details = replied.details.unwrap();
    let message = [
        &[6u8, 1][..],
        &details,
        identity.public.as_bytes(),
        phone.account.public.as_bytes(),
    ]
    .concat();
    assert!(
        identity
            .public
            .verify_signature(&message, &replied.device_signature.unwrap())
    );
    assert_eq!(paired.reply.optional_str_attr("id"), Some("pair-1"));
}

#[test]
fn wrong_adv_secret_is_an_hmac_mismatch() {
    let (mut rng, phone, identity, adv) = setup();
    let success = PairSuccess::parse(&phone.pair_success(&identity.public, &adv, &mut rng)).unwrap();
    let error = pair::complete_pair_success(&success, &identity, &[0; 32]).unwrap_err();
    assert_eq!(error, PairError::HmacMismatch);
    let reply = pair::pair_error_reply(&success.iq_id, &error);
    let error_node = reply.child("error").unwrap();
    assert_eq!(error_node.optional_str_attr("code"), Some("401"));
    assert_eq!(error_node.optional_str_attr("text"), Some("hmac-mismatch"));
}

#[test]
fn identity_signed_for_another_device_is_a_signature_mismatch() {
    let (mut rng, phone, identity, adv) = setup();
    let other = KeyPair::generate(&mut rng);
    // The phone signed another device's identity key, with a valid HMAC: the account signature must fail.
    let success = PairSuccess::parse(&phone.pair_success(&other.public, &adv, &mut rng)).unwrap();
    assert_eq!(
        pair::complete_pair_success(&success, &identity, &adv).unwrap_err(),
        PairError::SignatureMismatch
    );
}

#[test]
fn garbage_device_identity_is_malformed_not_a_panic() {
    let (_, _, identity, adv) = setup();
    let success = PairSuccess {
        iq_id: "x".into(),
        jid: Jid::new("1", Jid::DEFAULT_USER_SERVER),
        lid: Jid::new("1", Jid::LID_SERVER),
        business_name: None,
        platform: None,
        device_identity: vec![0xff, 0xff, 0xff],
    };
    assert!(matches!(
        pair::complete_pair_success(&success, &identity, &adv),
        Err(PairError::Malformed(_))
    ));
    assert!(PairSuccess::parse(&Node::new("iq")).is_err());
}

#[test]
fn pairing_codes_use_the_custom_alphabet() {
    assert_eq!(PairingCode::from_bytes([0; 5]).as_str(), "11111111");
    assert_eq!(PairingCode::from_bytes([0xff; 5]).as_str(), "ZZZZZZZZ");
    // 0x0842108421 packs the 5-bit groups 1,1,1,1,1,1,1,1: the second alphabet character each time.
    assert_eq!(
        PairingCode::from_bytes([0x08, 0x42, 0x10, 0x84, 0x21]).display(),
        "2222-2222"
    );
}

#[test]
fn phone_numbers_are_normalised() {
    assert_eq!(
        pair_code::phone_jid("+1 (555) 123-4567").unwrap().user(),
        "15551234567"
    );
    assert!(pair_code::phone_jid("12345").is_err());
    assert!(pair_code::phone_jid("0555123456").is_err());
}

type Aes256Ctr = ctr::Ctr128BE<Aes256>;

/// The phone's side of code pairing, written from protocol-facts §3.4.
fn phone_unwrap(code: &str, wrapped: &[u8]) -> [u8; 32] {
    let mut key = [0u8; 32];
    pbkdf2::pbkdf2_hmac::<Sha256>(code.as_bytes(), &wrapped[..32], 131_072, &mut key);
    let mut out: [u8; 32] = wrapped[48..80].try_into().unwrap();
    Aes256Ctr::new(&key.into(), wrapped[32..48].into()).apply_keystream(&mut out);
    out
}

#[test]
fn code_pairing_agrees_with_the_phone() {
    let (mut rng, phone, identity, _) = setup();
    let noise = KeyPair::generate(&mut rng);
    let number = pair_code::phone_jid("15551234567").unwrap();
    let (mut pairing, hello) = CodePairing::start(
        number.clone(),
        noise.public.as_bytes(),
        PairClientType::Chrome,
        "Chrome (Linux)",
        true,
        &mut rng,
    );
    assert_eq!(hello.optional_str_attr("stage"), Some("companion_hello"));
    assert_eq!(hello.jid_attr("jid").unwrap(), number);

    // The phone learns the companion's ephemeral key from the code the user typed.
    let wrapped = hello
        .child("link_code_pairing_wrapped_companion_ephemeral_pub")
        .unwrap()
        .content_bytes()
        .unwrap();
    assert_eq!(wrapped.len(), 80);
    let companion_ephemeral = PublicKey::from_bytes(phone_unwrap(pairing.code.as_str(), wrapped));

    pairing
        .handle_hello_response(
            &Node::new("iq").children([Node::new("link_code_companion_reg")
                .children([Node::new("link_code_pairing_ref").bytes(b"ref-1".to_vec())])]),
        )
        .unwrap();

    let primary_ephemeral = KeyPair::generate(&mut rng);
    let wrapped_primary = pair_code::wrap_ephemeral(
        &pairing.code,
        [7; 32],
        [8; 16],
        primary_ephemeral.public.as_bytes(),
    );
    let notification = Node::new("notification").children([Node::new("link_code_companion_reg").children([
        Node::new("link_code_pairing_ref").bytes(b"ref-1".to_vec()),
        Node::new("link_code_pairing_wrapped_primary_ephemeral_pub").bytes(wrapped_primary.to_vec()),
        Node::new("primary_identity_pub").bytes(phone.account.public.as_bytes().to_vec()),
    ])]);
    let (adv_secret, finish) = pairing.finish(&notification, &identity, &mut rng).unwrap();
    assert_eq!(finish.optional_str_attr("stage"), Some("companion_finish"));

    // The phone decrypts the key bundle and derives the same ADV secret.
    let shared = primary_ephemeral.private.agree(&companion_ephemeral);
    let bundle = finish
        .child("link_code_pairing_wrapped_key_bundle")
        .unwrap()
        .content_bytes()
        .unwrap();
    let mut bundle_key = [0u8; 32];
    Hkdf::<Sha256>::new(Some(&bundle[..32]), &shared)
        .expand(b"link_code_pairing_key_bundle_encryption_key", &mut bundle_key)
        .unwrap();
    let plain = Aes256Gcm::new(&bundle_key.into())
        .decrypt(Nonce::from_slice(&bundle[32..44]), &bundle[44..])
        .unwrap();
    assert_eq!(&plain[..32], identity.public.as_bytes());
    assert_eq!(&plain[32..64], phone.account.public.as_bytes());
    let identity_shared = phone.account.private.agree(&identity.public);
    let mut expected = [0u8; 32];
    Hkdf::<Sha256>::new(None, &[&shared[..], &identity_shared, &plain[64..96]].concat())
        .expand(b"adv_secret", &mut expected)
        .unwrap();
    assert_eq!(*adv_secret, expected);
}

#[test]
fn code_pairing_refuses_a_foreign_ref() {
    let (mut rng, phone, identity, _) = setup();
    let (pairing, _) = CodePairing::start(
        pair_code::phone_jid("15551234567").unwrap(),
        &[0; 32],
        PairClientType::Chrome,
        "Chrome (Linux)",
        false,
        &mut rng,
    );
    let notification = Node::new("notification").children([Node::new("link_code_companion_reg").children([
        Node::new("link_code_pairing_ref").bytes(b"other".to_vec()),
        Node::new("link_code_pairing_wrapped_primary_ephemeral_pub").bytes(vec![0; 80]),
        Node::new("primary_identity_pub").bytes(phone.account.public.as_bytes().to_vec()),
    ])]);
    assert!(matches!(
        pairing.finish(&notification, &identity, &mut rng),
        Err(PairError::PairCode(_))
    ));
}
