//! `Debug` of every key-holding type prints no key bytes: media keys and the streaming media ciphers, the
//! code-pairing state (ephemeral key, pairing code), a new device's keys and ADV secret, and the media upload token.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test helpers fail loudly")]

use rand::rngs::StdRng;
use rand::{RngCore, SeedableRng};
use whatsapp_binary::{Jid, Node};
use whatsapp_core::device::{generate_prekeys, new_device};
use whatsapp_core::media::{MediaDecryptor, MediaEncryptor, MediaKeys, MediaType, parse_media_conn};
use whatsapp_core::pair::PairClientType;
use whatsapp_core::pair_code::{CodePairing, PairingCode};
use whatsapp_signal::PrivateKey;
use whatsapp_test_support::{assert_hidden, known};

#[test]
fn media_keys_and_ciphers_hide_key_material() {
    let media_key = known(0x20);
    let keys = MediaKeys::expand(&media_key, MediaType::Image);
    let secrets = [
        ("media key", media_key.as_slice()),
        ("iv", keys.iv.as_slice()),
        ("cipher key", keys.cipher_key.as_slice()),
        ("MAC key", keys.mac_key.as_slice()),
        ("ref key", keys.ref_key.as_slice()),
    ];
    let mut encryptor = MediaEncryptor::new(&media_key, MediaType::Image);
    let mut out = Vec::new();
    encryptor.update(b"some plaintext", &mut out);
    let decryptor = MediaDecryptor::new(&media_key, MediaType::Image);
    for text in [
        format!("{keys:?}"),
        format!("{encryptor:#?}"),
        format!("{decryptor:?}"),
    ] {
        for (what, secret) in secrets {
            assert_hidden(&text, secret, what);
        }
    }
}

#[test]
fn code_pairing_hides_its_ephemeral_key_and_code() {
    let mut rng = StdRng::seed_from_u64(8);
    // `start` draws the 5 code bytes, then the ephemeral key: replay the same draws on a copy.
    let mut replay = rng.clone();
    let mut code_bytes = [0u8; 5];
    replay.fill_bytes(&mut code_bytes);
    let ephemeral = PrivateKey::generate(&mut replay);
    let phone = Jid::new("15551234567", Jid::DEFAULT_USER_SERVER);
    let (pairing, _) = CodePairing::start(
        phone,
        &[1; 32],
        PairClientType::Chrome,
        "Chrome (Linux)",
        true,
        &mut rng,
    );
    assert_eq!(pairing.code, PairingCode::from_bytes(code_bytes));
    let code = pairing.code.as_str().to_owned();
    for text in [format!("{pairing:?}"), format!("{:?}", pairing.code)] {
        assert_hidden(&text, &ephemeral.to_bytes(), "ephemeral key");
        assert!(!text.contains(&code), "pairing code shown in {text}");
        assert!(!text.contains(&code[..4]), "pairing code shown in {text}");
    }
}

#[test]
fn new_devices_and_prekeys_hide_private_keys_and_adv_secret() {
    let mut rng = StdRng::seed_from_u64(9);
    let device = new_device(&mut rng);
    let prekeys = generate_prekeys(&[1, 2], &mut rng);
    let secrets = [
        ("noise key", device.noise_key.private),
        ("identity key", device.identity_key.private),
        ("signed prekey", device.signed_prekey.key_pair.private),
        ("ADV secret", device.adv_secret),
        ("prekey", prekeys[0].key_pair.private),
        ("prekey", prekeys[1].key_pair.private),
    ];
    for text in [
        format!("{device:?}"),
        format!("{device:#?}"),
        format!("{prekeys:?}"),
    ] {
        for (what, secret) in &secrets {
            assert_hidden(&text, secret, what);
        }
    }
}

#[test]
fn media_conn_hides_the_upload_token() {
    let token = "AUTH-TOKEN-0123456789abcdef";
    let answer = Node::new("iq").children([Node::new("media_conn")
        .attr("auth", token)
        .attr("ttl", "300")
        .children([Node::new("host").attr("hostname", "mmg.whatsapp.net")])]);
    let conn = parse_media_conn(&answer).unwrap();
    assert_eq!(conn.auth, token);
    let text = format!("{conn:?}");
    assert!(!text.contains(token), "token shown in {text}");
    assert!(text.contains("mmg.whatsapp.net"));
}

#[test]
fn received_privacy_tokens_hide_their_bytes() {
    let token = whatsapp_core::privacy::ReceivedToken {
        token: known(0x33).to_vec(),
        timestamp: 1_700_000_000,
    };
    for text in [format!("{token:?}"), format!("{token:#?}")] {
        assert_hidden(&text, &known(0x33), "privacy token");
        assert!(text.contains("1700000000"), "{text}");
    }
}

#[test]
fn the_nct_salt_hides_its_bytes_alone_and_as_a_history_item() {
    let salt = whatsapp_core::privacy::NctSalt(known(0x44).to_vec());
    let item = whatsapp_core::history::HistoryItem::NctSalt(salt.clone());
    for text in [
        format!("{salt:?}"),
        format!("{salt:#?}"),
        format!("{item:?}"),
        format!("{item:#?}"),
    ] {
        assert_hidden(&text, &known(0x44), "NCT salt");
        assert!(text.contains("32 bytes redacted"), "{text}");
    }
}
