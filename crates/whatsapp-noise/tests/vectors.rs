//! The Noise vectors (`tests/data/handshake.json`): both sides replay each transcript byte for byte from the
//! listed keys, then the transport frames; tampered messages, a wrong root, an expired chain and a mismatched
//! leaf key all fail cleanly.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test helpers fail loudly")]

use bytes::BytesMut;
use serde_json::Value;
use whatsapp_noise::{
    CertError, FrameDecoder, HandshakeError, INTRO_HEADER, Initiator, KeyPair, PrivateKey, PublicKey,
    Responder, ResponderIdentity, TransportCipher, TrustRoot, encode_frame,
};

/// A time inside the vectors' validity window (0 ..= 4102444800).
const NOW: u64 = 1_700_000_000;

fn transcripts() -> Vec<Value> {
    let text =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/handshake.json")).unwrap();
    let file: Value = serde_json::from_str(&text).unwrap();
    file["transcripts"].as_array().unwrap().clone()
}

fn bytes(v: &Value) -> Vec<u8> {
    hex::decode(v.as_str().unwrap()).unwrap()
}

fn key32(v: &Value) -> [u8; 32] {
    bytes(v).try_into().unwrap()
}

fn private(t: &Value, name: &str) -> PrivateKey {
    PrivateKey::from_bytes(key32(&t["keys"][name]["priv"]))
}

fn root(t: &Value) -> TrustRoot {
    TrustRoot::custom(PublicKey::from_bytes(key32(&t["keys"]["cert_root"]["pub"])))
}

fn frame(payload: &[u8]) -> Vec<u8> {
    let mut out = BytesMut::new();
    encode_frame(payload, &mut out).unwrap();
    out.to_vec()
}

/// Replays one transcript on both sides and checks every byte; returns the two transport ciphers.
fn check(t: &Value) -> (TransportCipher, TransportCipher) {
    let name = t["name"].as_str().unwrap();
    let frames = t["handshake_frames"].as_array().unwrap();
    let identity = ResponderIdentity {
        static_key: KeyPair::from_private(private(t, "server_static")),
        cert_chain: bytes(&t["cert_chain_hex"]),
    };
    let noise_key = KeyPair::from_private(private(t, "client_static"));
    let payload = bytes(&t["client_payload_hex"]);

    // Client hello: intro header, then the frame.
    let initiator = Initiator::new(private(t, "client_ephemeral"));
    let mut wire = INTRO_HEADER.to_vec();
    wire.extend(frame(&initiator.client_hello()));
    assert_eq!(wire, bytes(&frames[0]["wire_hex"]), "{name}: client hello");

    // The responder reads it through the server-side decoder.
    let mut server_decoder = FrameDecoder::with_intro_header();
    server_decoder.push(&wire);
    let hello = server_decoder.next_frame().unwrap().unwrap();
    let (responder, server_hello) = Responder::new(private(t, "server_ephemeral"))
        .read_client_hello(&hello, &identity)
        .unwrap();
    assert_eq!(
        frame(&server_hello),
        bytes(&frames[1]["wire_hex"]),
        "{name}: server hello"
    );

    let finish = initiator.read_server_hello(&server_hello, &root(t), NOW).unwrap();
    assert_eq!(finish.server_static(), &identity.static_key.public);
    let (client_finish, client_cipher) = finish.finish(&noise_key, &payload);
    assert_eq!(
        frame(&client_finish),
        bytes(&frames[2]["wire_hex"]),
        "{name}: client finish"
    );

    let accepted = responder.read_client_finish(&client_finish).unwrap();
    assert_eq!(accepted.client_static, noise_key.public);
    assert_eq!(accepted.client_payload, payload);
    (client_cipher, accepted.transport)
}

#[test]
fn transcripts_replay_on_both_sides() {
    let transcripts = transcripts();
    assert_eq!(transcripts.len(), 2);
    let mut frames_checked = 0;
    for t in &transcripts {
        let (mut client, mut server) = check(t);
        // The same frames from the listed transport keys, to tie the split to `transport_keys`.
        let keys = &t["transport_keys"];
        let mut client_from_keys =
            TransportCipher::from_keys(key32(&keys["client_to_server"]), key32(&keys["server_to_client"]));
        for f in t["transport_frames"].as_array().unwrap() {
            let plaintext = bytes(&f["plaintext_hex"]);
            let wire = bytes(&f["wire_hex"]);
            let (sender, receiver) = match f["direction"].as_str().unwrap() {
                "c2s" => (&mut client, &mut server),
                _ => (&mut server, &mut client),
            };
            let mut out = BytesMut::new();
            sender.seal_frame(&plaintext, &mut out).unwrap();
            assert_eq!(out.to_vec(), wire, "{}: frame {}", t["name"], f["counter"]);
            let mut decoder = FrameDecoder::new();
            decoder.push(&wire);
            let payload = decoder.next_frame().unwrap().unwrap();
            assert_eq!(receiver.open_frame(payload).unwrap().to_vec(), plaintext);
            if f["direction"] == "c2s" {
                let mut again = BytesMut::new();
                client_from_keys.seal_frame(&plaintext, &mut again).unwrap();
                assert_eq!(again.to_vec(), wire);
            }
            frames_checked += 1;
        }
    }
    assert_eq!(frames_checked, 12);
}

/// Runs the initiator against a transcript's server hello, possibly altered, and returns its verdict.
fn client_verdict(t: &Value, server_hello: &[u8], root: &TrustRoot, now: u64) -> Result<(), HandshakeError> {
    Initiator::new(private(t, "client_ephemeral"))
        .read_server_hello(server_hello, root, now)
        .map(|_| ())
}

#[test]
fn tampered_and_untrusted_handshakes_fail() {
    let t = &transcripts()[0];
    let frames = t["handshake_frames"].as_array().unwrap();
    let server_hello = bytes(&frames[1]["handshake_message_hex"]);
    let client_finish = bytes(&frames[2]["handshake_message_hex"]);
    assert_eq!(client_verdict(t, &server_hello, &root(t), NOW), Ok(()));

    // Every byte of the server hello matters: flip each one.
    for i in 0..server_hello.len() {
        let mut bad = server_hello.clone();
        bad[i] ^= 0x01;
        assert!(
            client_verdict(t, &bad, &root(t), NOW).is_err(),
            "flipped byte {i}"
        );
    }
    // Truncations fail cleanly.
    for len in 0..server_hello.len() {
        assert!(
            client_verdict(t, &server_hello[..len], &root(t), NOW).is_err(),
            "truncated to {len}"
        );
    }
    // The real WhatsApp root does not accept the test chain.
    assert_eq!(
        client_verdict(t, &server_hello, &TrustRoot::whatsapp(), NOW),
        Err(HandshakeError::Cert(CertError::BadSignature("intermediate")))
    );
    // Outside the validity window.
    assert!(matches!(
        client_verdict(t, &server_hello, &root(t), 4_102_444_801),
        Err(HandshakeError::Cert(CertError::Expired { .. }))
    ));

    // A server whose static key is not the leaf key.
    let identity = ResponderIdentity {
        static_key: KeyPair::from_private(PrivateKey::from_bytes([7; 32])),
        cert_chain: bytes(&t["cert_chain_hex"]),
    };
    let (_, hello) = Responder::new(private(t, "server_ephemeral"))
        .read_client_hello(&bytes(&frames[0]["handshake_message_hex"]), &identity)
        .unwrap();
    assert_eq!(
        client_verdict(t, &hello, &root(t), NOW),
        Err(HandshakeError::Cert(CertError::LeafKeyMismatch))
    );

    // The responder rejects a tampered client finish.
    let fresh_responder = || {
        let identity = ResponderIdentity {
            static_key: KeyPair::from_private(private(t, "server_static")),
            cert_chain: bytes(&t["cert_chain_hex"]),
        };
        Responder::new(private(t, "server_ephemeral"))
            .read_client_hello(&bytes(&frames[0]["handshake_message_hex"]), &identity)
            .unwrap()
            .0
    };
    assert!(fresh_responder().read_client_finish(&client_finish).is_ok());
    for i in 0..client_finish.len() {
        let mut bad = client_finish.clone();
        bad[i] ^= 0x80;
        assert!(
            fresh_responder().read_client_finish(&bad).is_err(),
            "flipped byte {i}"
        );
    }
    // Messages for the wrong step.
    assert_eq!(
        fresh_responder().read_client_finish(&server_hello).map(|_| ()),
        Err(HandshakeError::Missing("clientFinish"))
    );
    assert_eq!(
        client_verdict(t, &client_finish, &root(t), NOW),
        Err(HandshakeError::Missing("serverHello"))
    );
}

#[test]
fn truncated_transport_frames_fail() {
    let t = &transcripts()[0];
    let (_, mut server) = check(t);
    let f = &t["transport_frames"][0];
    let wire = bytes(&f["wire_hex"]);
    let mut decoder = FrameDecoder::new();
    decoder.push(&wire[..wire.len() - 1]);
    assert_eq!(decoder.next_frame().unwrap(), None);
    assert!(decoder.finish().is_err());
    // A frame cut short but re-framed with a consistent length fails authentication.
    let short = BytesMut::from(&wire[3..wire.len() - 1]);
    assert!(server.open_frame(short).is_err());
    // The untouched frame still opens: a failure does not advance the counter.
    assert!(server.open_frame(BytesMut::from(&wire[3..])).is_ok());
}
