//! `Debug` of every key-holding type prints no key bytes: private keys, key pairs, identities, prekeys, session
//! records (root and chain keys), sender-key records and distribution messages (chain keys, signing keys).

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test helpers fail loudly")]

use prost::Message as _;
use rand::SeedableRng;
use rand::rngs::StdRng;
use whatsapp_proto::signal as pb;
use whatsapp_signal::{
    KeyPair, LocalIdentity, PreKeyBundle, PreKeysForMessage, PrivateKey, SenderKeyDistributionMessage,
    SenderKeyRecord, SessionRecord, create_distribution_message, encrypt, group_encrypt, process_bundle,
};
use whatsapp_test_support::{assert_hidden, known};

#[test]
fn private_keys_and_key_pairs_are_redacted() {
    let private = PrivateKey::from_bytes(known(0xa0));
    let secret = private.to_bytes();
    let pair = KeyPair::from_private(private.clone());
    let local = LocalIdentity {
        identity: pair.clone(),
        registration_id: 7,
    };
    let pre_keys = PreKeysForMessage {
        signed_pre_key: pair.clone(),
        pre_key: Some(pair.clone()),
    };
    for text in [
        format!("{private:?}"),
        format!("{pair:?}"),
        format!("{local:?}"),
        format!("{pre_keys:?}"),
        format!("{pre_keys:#?}"),
    ] {
        assert_hidden(&text, &secret, "private key");
    }
    // The public half is still shown, so logs can tell keys apart.
    let public: String = pair
        .public
        .as_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert!(format!("{pair:?}").contains(&public));
}

#[test]
fn session_records_hide_root_chain_and_ratchet_keys() {
    let mut rng = StdRng::seed_from_u64(3);
    let local = LocalIdentity {
        identity: KeyPair::from_private(PrivateKey::from_bytes(known(0x10))),
        registration_id: 1,
    };
    let peer_identity = KeyPair::generate(&mut rng);
    let signed = KeyPair::generate(&mut rng);
    let signature = peer_identity.private.sign(&signed.public.serialize(), &mut rng);
    let bundle = PreKeyBundle {
        registration_id: 2,
        identity_key: peer_identity.public,
        signed_pre_key_id: 1,
        signed_pre_key: signed.public,
        signed_pre_key_signature: signature.to_vec(),
        pre_key: None,
    };
    let mut record = SessionRecord::new();
    process_bundle(&mut record, &local, &bundle, &mut rng).unwrap();
    encrypt(&mut record, b"hello").unwrap();

    let stored = pb::RecordStructure::decode(record.serialize().as_slice()).unwrap();
    let session = stored.current_session.unwrap();
    let chain = session.sender_chain.unwrap();
    let secrets = [
        ("root key", session.root_key.unwrap()),
        ("ratchet private key", chain.sender_ratchet_key_private.unwrap()),
        ("chain key", chain.chain_key.unwrap().key.unwrap()),
        ("identity private key", local.identity.private.to_bytes().to_vec()),
    ];
    for text in [format!("{record:?}"), format!("{record:#?}")] {
        for (what, secret) in &secrets {
            assert_hidden(&text, secret, what);
        }
    }
}

#[test]
fn sender_key_records_and_distribution_messages_hide_chain_and_signing_keys() {
    let signing = KeyPair::from_private(PrivateKey::from_bytes(known(0x40)));
    let chain_key = known(0x80);
    let mut record = SenderKeyRecord::new();
    record.add_state(9, 0, chain_key, signing.public, Some(signing.private.clone()));
    let mut rng = StdRng::seed_from_u64(5);
    let distribution = create_distribution_message(&mut record, &mut rng).unwrap();
    assert_eq!(distribution.chain_key(), &chain_key);
    let parsed = SenderKeyDistributionMessage::deserialize(distribution.serialized()).unwrap();
    group_encrypt(&mut record, b"hello", &mut rng).unwrap();

    for text in [
        format!("{record:?}"),
        format!("{distribution:?}"),
        format!("{parsed:#?}"),
    ] {
        assert_hidden(&text, &chain_key, "chain key");
        assert_hidden(&text, &signing.private.to_bytes(), "signing key");
    }
    let message = SenderKeyDistributionMessage::new(1, 2, known(0xc0), signing.public);
    assert_hidden(&format!("{message:?}"), &known(0xc0), "chain key");
}
