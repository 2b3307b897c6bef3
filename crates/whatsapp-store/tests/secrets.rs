//! `Debug` of every key-holding type prints no key bytes: key pairs, signed and one-time prekeys, the device
//! record (noise, identity and signed prekey private keys, ADV secret), app-state sync keys and message secrets.

use whatsapp_binary::Jid;
use whatsapp_store::{AppStateSyncKey, Device, KeyPairBytes, MessageSecret, PreKey, SignedPreKey};
use whatsapp_test_support::{assert_hidden, known};

fn pair(private: u8, public: u8) -> KeyPairBytes {
    KeyPairBytes {
        private: known(private),
        public: known(public),
    }
}

#[test]
fn key_pairs_prekeys_and_devices_hide_private_keys_and_adv_secret() {
    let signed = SignedPreKey {
        id: 1,
        key_pair: pair(0x40, 0x01),
        signature: [7; 64],
    };
    let device = Device {
        noise_key: pair(0x20, 0x02),
        identity_key: pair(0x60, 0x03),
        registration_id: 5,
        signed_prekey: signed.clone(),
        adv_secret: known(0x80),
        jid: Some(Jid::new("15551234567", Jid::DEFAULT_USER_SERVER)),
        lid: None,
        account_identity: Some(vec![1, 2, 3]),
        platform: "android".to_owned(),
        business_name: String::new(),
        push_name: "Alice".to_owned(),
    };
    let prekey = PreKey {
        id: 3,
        key_pair: pair(0xa0, 0x04),
        uploaded: false,
    };
    let secrets = [
        ("noise key", known(0x20)),
        ("signed prekey", known(0x40)),
        ("identity key", known(0x60)),
        ("ADV secret", known(0x80)),
        ("prekey", known(0xa0)),
    ];
    for text in [
        format!("{:?}", pair(0x20, 0x02)),
        format!("{signed:?}"),
        format!("{device:?}"),
        format!("{device:#?}"),
        format!("{prekey:?}"),
    ] {
        for (what, secret) in &secrets {
            assert_hidden(&text, secret, what);
        }
    }
    // Public keys stay visible.
    assert!(format!("{device:?}").contains("02030405060708090a0b"));
}

#[test]
fn app_state_sync_keys_and_message_secrets_hide_their_bytes() {
    let key = AppStateSyncKey {
        id: vec![0, 0, 0, 1, 0, 0xa1],
        data: known(0x30).to_vec(),
        fingerprint: vec![9; 4],
        timestamp: 1,
    };
    let secret = MessageSecret {
        chat: Jid::new("15551234567", Jid::DEFAULT_USER_SERVER),
        sender: Jid::new("15557654321", Jid::DEFAULT_USER_SERVER),
        id: "3EB0ABCDEF".to_owned(),
        secret: known(0x50).to_vec(),
    };
    assert_hidden(&format!("{key:?}"), &known(0x30), "app-state key data");
    assert_hidden(&format!("{key:#?}"), &known(0x30), "app-state key data");
    assert_hidden(&format!("{secret:?}"), &known(0x50), "message secret");
    assert_hidden(&format!("{secret:#?}"), &known(0x50), "message secret");
    assert!(format!("{key:?}").contains("0000000100a1"));
}
