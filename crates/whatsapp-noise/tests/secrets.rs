//! `Debug` of every key-holding type prints no key bytes: handshake states (ephemeral keys), server identities
//! and chain parameters (static, root and intermediate keys), client parameters (noise key) and transport
//! ciphers (session keys), through a whole handshake with known keys.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test helpers fail loudly")]

use rand::SeedableRng;
use rand::rngs::StdRng;
use whatsapp_noise::{
    ChainParams, ClientParams, Initiator, KeyPair, PrivateKey, Responder, ResponderIdentity, TransportCipher,
    TrustRoot, issue_chain,
};
use whatsapp_test_support::{assert_hidden, known};

const NOW: u64 = 1_700_000_000;

#[test]
fn handshake_states_identities_and_ciphers_hide_their_keys() {
    let mut rng = StdRng::seed_from_u64(11);
    let root = PrivateKey::from_bytes(known(0x10));
    let intermediate = PrivateKey::from_bytes(known(0x30));
    let server_static = KeyPair::from_private(PrivateKey::from_bytes(known(0x50)));
    let client_ephemeral = PrivateKey::from_bytes(known(0x70));
    let server_ephemeral = PrivateKey::from_bytes(known(0x90));
    let noise_key = KeyPair::from_private(PrivateKey::from_bytes(known(0xb0)));
    let secrets = [
        ("root key", root.to_bytes()),
        ("intermediate key", intermediate.to_bytes()),
        ("server static key", server_static.private.to_bytes()),
        ("client ephemeral key", client_ephemeral.to_bytes()),
        ("server ephemeral key", server_ephemeral.to_bytes()),
        ("noise key", noise_key.private.to_bytes()),
    ];
    let mut texts = Vec::new();

    let params = ChainParams {
        root: &root,
        intermediate: &intermediate,
        server_static: &server_static.public,
        intermediate_serial: 1,
        not_before: 0,
        not_after: NOW + 3600,
    };
    texts.push(format!("{params:?}"));
    let identity = ResponderIdentity {
        static_key: server_static.clone(),
        cert_chain: issue_chain(&params, &mut rng),
    };
    texts.push(format!("{identity:?}"));
    let trust = TrustRoot::custom(root.public_key());

    let initiator = Initiator::new(client_ephemeral.clone());
    texts.push(format!("{initiator:?}"));
    let responder = Responder::new(server_ephemeral.clone());
    texts.push(format!("{responder:?}"));
    let (responder, server_hello) = responder
        .read_client_hello(&initiator.client_hello(), &identity)
        .unwrap();
    texts.push(format!("{responder:?}"));
    let initiator = initiator.read_server_hello(&server_hello, &trust, NOW).unwrap();
    texts.push(format!("{initiator:?}"));
    let (client_finish, client_cipher) = initiator.finish(&noise_key, b"payload");
    texts.push(format!("{client_cipher:?}"));
    let accepted = responder.read_client_finish(&client_finish).unwrap();
    texts.push(format!("{accepted:#?}"));

    let client_params = ClientParams {
        noise_key: &noise_key,
        client_payload: b"payload",
        trust_root: trust,
        now: NOW,
        ephemeral: client_ephemeral.clone(),
        user_agent: None,
    };
    texts.push(format!("{client_params:?}"));

    for text in &texts {
        for (what, secret) in &secrets {
            assert_hidden(text, secret, what);
        }
    }

    let (write, read) = (known(0xd0), known(0xf0));
    let cipher = TransportCipher::from_keys(write, read);
    let text = format!("{cipher:#?}");
    assert_hidden(&text, &write, "write key");
    assert_hidden(&text, &read, "read key");
}
