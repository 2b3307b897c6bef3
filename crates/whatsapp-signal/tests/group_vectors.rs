//! Sender-key vectors (`tests/data/group.json`): the distribution message parses to the listed fields, every
//! delivery order decrypts to the listed plaintexts (including stored-key cases, quirk S-GROUP-STORED-KEY, which
//! a whatsmeow-compatible receiver must handle), every signature verifies, and a sender set to the listed
//! iteration and chain key reproduces every message body byte for byte.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test helpers fail loudly")]

use serde_json::Value;
use whatsapp_signal::{
    KeyPair, PrivateKey, PublicKey, SenderKeyDistributionMessage, SenderKeyMessage, SenderKeyRecord, padding,
};

fn bytes(value: &Value) -> Vec<u8> {
    hex::decode(value.as_str().unwrap()).unwrap()
}

fn num(value: &Value) -> u32 {
    match value {
        Value::String(s) => s.parse().unwrap(),
        other => u32::try_from(other.as_u64().unwrap()).unwrap(),
    }
}

fn check(case: &Value) -> usize {
    let name = case["name"].as_str().unwrap();
    let skdm = SenderKeyDistributionMessage::deserialize(&bytes(&case["skdm"])).unwrap();
    let fields = &case["skdm_fields"];
    assert_eq!(skdm.key_id(), num(&fields["key_id"]), "{name}");
    assert_eq!(skdm.iteration(), num(&fields["iteration"]), "{name}");
    assert_eq!(skdm.chain_key().to_vec(), bytes(&fields["chain_key"]), "{name}");
    assert_eq!(
        skdm.signing_key().serialize().to_vec(),
        bytes(&fields["signing_key_public"]),
        "{name}"
    );
    // Re-encoding gives the same bytes.
    let rebuilt = SenderKeyDistributionMessage::new(
        skdm.key_id(),
        skdm.iteration(),
        *skdm.chain_key(),
        *skdm.signing_key(),
    );
    assert_eq!(rebuilt.serialized(), &bytes(&case["skdm"])[..], "{name}");

    let messages = case["messages"].as_array().unwrap();
    let mut checked = 0;
    for order in case["decrypt_orders"].as_array().unwrap() {
        let mut record = SenderKeyRecord::new();
        whatsapp_signal::process_distribution_message(&mut record, &skdm);
        for index in order["order"].as_array().unwrap() {
            let message = &messages[num(index) as usize];
            let parsed = SenderKeyMessage::deserialize(&bytes(&message["ciphertext"])).unwrap();
            assert_eq!(parsed.iteration(), num(&message["iteration"]));
            let plaintext = whatsapp_signal::group_decrypt(&mut record, &parsed).unwrap();
            assert_eq!(
                hex::encode(&plaintext),
                message["plaintext"].as_str().unwrap(),
                "{name} {index}"
            );
            assert_eq!(
                hex::encode(padding::unpad(&plaintext).unwrap()),
                message["message_proto_hex"].as_str().unwrap()
            );
            // Persist between messages: stored keys must survive a round trip.
            let serialized = record.serialize();
            record = SenderKeyRecord::deserialize(&serialized).unwrap();
            assert_eq!(record.serialize(), serialized);
            checked += 1;
        }
    }

    // Byte-for-byte encryption from (iteration, chain key), with the listed signing key.
    let signing = &case["sender_key"]["signing_key"];
    let signing = KeyPair::from_private(PrivateKey::from_bytes(
        bytes(&signing["priv"]).try_into().unwrap(),
    ));
    for message in messages {
        let mut sender = SenderKeyRecord::new();
        let chain_key = bytes(&message["debug"]["chain_key"]).try_into().unwrap();
        sender.add_state(
            num(&message["key_id"]),
            num(&message["iteration"]),
            chain_key,
            signing.public,
            Some(signing.private.clone()),
        );
        let out = whatsapp_signal::group_encrypt(
            &mut sender,
            &bytes(&message["plaintext"]),
            &mut rand::rngs::OsRng,
        )
        .unwrap();
        let wire = out.serialized();
        let body = &wire[..wire.len() - 64];
        assert_eq!(
            hex::encode(body),
            message["body_hex"].as_str().unwrap(),
            "{name}: body"
        );
        let signature = bytes(&message["signature"]);
        assert!(
            signing.public.verify_signature(body, &signature),
            "{name}: vector signature verifies"
        );
        assert!(
            signing.public.verify_signature(body, &wire[wire.len() - 64..]),
            "{name}: own signature verifies"
        );
        assert_eq!(
            PublicKey::deserialize(&signing.public.serialize()).unwrap(),
            *skdm.signing_key()
        );
        checked += 1;
    }
    checked
}

#[test]
fn group_vectors() {
    let doc: Value = serde_json::from_str(include_str!("data/group.json")).unwrap();
    let cases = doc["cases"].as_array().unwrap();
    assert_eq!(cases.len(), 2);
    let checked: usize = cases.iter().map(check).sum();
    // 4 + 4 + 3 + 3 deliveries and 4 + 3 encryptions.
    assert_eq!(checked, 21);
}
