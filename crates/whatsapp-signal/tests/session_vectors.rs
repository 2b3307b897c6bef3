//! 1:1 session vectors: both parties replay every event in `seq` order with the listed key pairs; every
//! decryption gives the stated plaintext and every encryption reproduces the stated bytes. After each event the
//! record goes through a serialize/deserialize round trip, so persistence is exercised too.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test helpers fail loudly")]

use std::collections::VecDeque;

use serde_json::Value;
use whatsapp_signal::{
    KeyPair, KeySource, LocalIdentity, PreKeyBundle, PreKeySignalMessage, PreKeysForMessage, PrivateKey,
    PublicKey, SessionRecord, SignalMessage, padding,
};

/// Replays recorded key pairs in draw order.
struct RecordedKeys(VecDeque<KeyPair>);

impl KeySource for RecordedKeys {
    fn next_key_pair(&mut self) -> KeyPair {
        self.0.pop_front().expect("the vector lists every key pair drawn")
    }
}

fn bytes(value: &Value) -> Vec<u8> {
    hex::decode(value.as_str().unwrap()).unwrap()
}

fn pair(value: &Value) -> KeyPair {
    let private = PrivateKey::from_bytes(bytes(&value["priv"]).try_into().unwrap());
    let pair = KeyPair::from_private(private);
    assert_eq!(pair.public.as_bytes().to_vec(), bytes(&value["pub"]));
    pair
}

fn public(value: &Value) -> PublicKey {
    PublicKey::deserialize(&bytes(value)).unwrap()
}

fn num(value: &Value) -> u32 {
    match value {
        Value::String(s) => s.parse().unwrap(),
        other => u32::try_from(other.as_u64().unwrap()).unwrap(),
    }
}

fn round_trip(record: &SessionRecord) -> SessionRecord {
    let serialized = record.serialize();
    let back = SessionRecord::deserialize(&serialized).unwrap();
    assert_eq!(back.serialize(), serialized, "record round trip is stable");
    back
}

fn check(vectors: &str) -> usize {
    let doc: Value = serde_json::from_str(vectors).unwrap();
    let alice = &doc["alice"];
    let bob = &doc["bob"];
    let alice_local = LocalIdentity {
        identity: pair(&alice["identity"]),
        registration_id: num(&alice["registration_id"]),
    };
    let bob_local = LocalIdentity {
        identity: pair(&bob["identity"]),
        registration_id: num(&bob["registration_id"]),
    };
    let signed = pair(&bob["signed_pre_key"]);
    // The signed prekey signature is over the 33-byte key and verifies under XEdDSA.
    assert!(bob_local.identity.public.verify_signature(
        &signed.public.serialize(),
        &bytes(&bob["signed_pre_key"]["signature"])
    ));
    let one_time = (!bob["one_time_pre_key"].is_null()).then(|| {
        (
            num(&bob["one_time_pre_key"]["id"]),
            pair(&bob["one_time_pre_key"]),
        )
    });

    let b = &doc["bundle_for_alice"];
    let bundle = PreKeyBundle {
        registration_id: num(&b["registration_id"]),
        identity_key: public(&b["identity_key"]),
        signed_pre_key_id: num(&b["signed_pre_key"]["id"]),
        signed_pre_key: public(&b["signed_pre_key"]["public"]),
        signed_pre_key_signature: bytes(&b["signed_pre_key"]["signature"]),
        pre_key: (!b["pre_key"].is_null())
            .then(|| (num(&b["pre_key"]["id"]), public(&b["pre_key"]["public"]))),
    };

    let messages = doc["messages"].as_array().unwrap();
    let mut alice_record = SessionRecord::new();
    let mut bob_record = SessionRecord::new();
    let mut checked = 0;
    for event in doc["events"].as_array().unwrap() {
        let mut keys = RecordedKeys(
            event["generated_keys"]
                .as_array()
                .map(|keys| keys.iter().map(pair).collect())
                .unwrap_or_default(),
        );
        let is_alice = event["party"] == "alice";
        let (record, local) = if is_alice {
            (&mut alice_record, &alice_local)
        } else {
            (&mut bob_record, &bob_local)
        };
        let seq = &event["seq"];
        match event["op"].as_str().unwrap() {
            "process_bundle" => whatsapp_signal::process_bundle(record, local, &bundle, &mut keys).unwrap(),
            "encrypt" => {
                let message = &messages[num(&event["message"]) as usize];
                let out = whatsapp_signal::encrypt(record, &bytes(&message["plaintext"])).unwrap();
                assert_eq!(out.kind(), message["type"].as_str().unwrap(), "seq {seq}");
                assert_eq!(
                    hex::encode(out.serialized()),
                    message["ciphertext"].as_str().unwrap(),
                    "seq {seq}: ciphertext"
                );
                checked += 1;
            }
            "decrypt" => {
                let message = &messages[num(&event["message"]) as usize];
                let wire = bytes(&message["ciphertext"]);
                let plaintext = if message["type"] == "pkmsg" {
                    let parsed = PreKeySignalMessage::deserialize(&wire).unwrap();
                    assert_eq!(parsed.serialized(), &wire[..]);
                    assert_eq!(parsed.signed_pre_key_id(), num(&bob["signed_pre_key"]["id"]));
                    let pre_keys = PreKeysForMessage {
                        signed_pre_key: signed.clone(),
                        pre_key: one_time
                            .as_ref()
                            .filter(|(id, _)| parsed.pre_key_id() == Some(*id))
                            .map(|(_, pair)| pair.clone()),
                    };
                    whatsapp_signal::decrypt_pre_key(record, local, &parsed, &pre_keys, &mut keys)
                        .unwrap()
                        .0
                } else {
                    let parsed = SignalMessage::deserialize(&wire).unwrap();
                    assert_eq!(parsed.counter(), num(&message["counter"]));
                    assert_eq!(parsed.previous_counter(), num(&message["previous_counter"]));
                    whatsapp_signal::decrypt(record, &parsed, &mut keys).unwrap()
                };
                assert_eq!(
                    hex::encode(&plaintext),
                    message["plaintext"].as_str().unwrap(),
                    "seq {seq}: plaintext"
                );
                assert_eq!(
                    hex::encode(padding::unpad(&plaintext).unwrap()),
                    message["message_proto_hex"].as_str().unwrap()
                );
                checked += 1;
            }
            other => panic!("unknown op {other}"),
        }
        assert!(keys.0.is_empty(), "seq {seq}: every listed key pair was drawn");
        *record = round_trip(record);
    }
    checked
}

#[test]
fn session_with_one_time_prekey() {
    assert_eq!(check(include_str!("data/session_with_one_time_prekey.json")), 26);
}

#[test]
fn session_without_one_time_prekey() {
    assert_eq!(
        check(include_str!("data/session_without_one_time_prekey.json")),
        6
    );
}
