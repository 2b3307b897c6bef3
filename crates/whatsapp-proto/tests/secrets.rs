//! `Debug` of the generated types prints no secret bytes: media keys, message secrets, app-state keys, sender-key
//! distributions, Signal private, root and chain keys, tokens. Everything else still prints as prost prints it.

use whatsapp_proto::e2e::message::{
    AppStateSyncKey, AppStateSyncKeyData, AppStateSyncKeyId, AppStateSyncKeyShare, HistorySyncNotification,
    HistorySyncType, ImageMessage, ProtocolMessage, SenderKeyDistributionMessage, protocol_message,
};
use whatsapp_proto::e2e::{ContextInfo, Message, MessageContextInfo};
use whatsapp_proto::history_sync::{Conversation, HistorySync, WebMessageInfo};
use whatsapp_proto::signal::session_structure::{Chain, chain};
use whatsapp_proto::signal::{SessionStructure, SignedPreKeyRecordStructure};
use whatsapp_test_support::{assert_hidden, known};

fn both(value: &impl std::fmt::Debug) -> [String; 2] {
    [format!("{value:?}"), format!("{value:#?}")]
}

#[test]
fn messages_hide_media_keys_and_message_secrets_but_show_the_rest() {
    let message = Message {
        image_message: Some(Box::new(ImageMessage {
            direct_path: Some("/v/t62/photo".to_owned()),
            media_key: Some(known(0x10).to_vec()),
            file_sha256: Some(vec![9; 32]),
            context_info: Some(Box::new(ContextInfo {
                stanza_id: Some("3EB0QUOTED".to_owned()),
                ephemeral_shared_secret: Some(known(0x30).to_vec()),
                ..Default::default()
            })),
            ..Default::default()
        })),
        message_context_info: Some(MessageContextInfo {
            message_secret: Some(known(0x50).to_vec()),
            ..Default::default()
        }),
        ..Default::default()
    };
    for text in both(&message) {
        assert_hidden(&text, &known(0x10), "media key");
        assert_hidden(&text, &known(0x30), "ephemeral shared secret");
        assert_hidden(&text, &known(0x50), "message secret");
        assert!(text.contains("/v/t62/photo"), "{text}");
        assert!(text.contains("3EB0QUOTED"), "{text}");
        assert!(text.contains("32 bytes redacted"), "{text}");
    }
    // Non-secret bytes still print.
    assert!(format!("{message:?}").contains("9, 9, 9"));
    // None stays None, and an empty message prints no redaction marker.
    let empty = format!("{:?}", Message::default());
    assert!(!empty.contains("redacted"), "{empty}");
}

#[test]
fn key_shares_history_notifications_and_sender_keys_are_hidden() {
    let share = Message {
        protocol_message: Some(Box::new(ProtocolMessage {
            r#type: Some(protocol_message::Type::AppStateSyncKeyShare as i32),
            app_state_sync_key_share: Some(AppStateSyncKeyShare {
                keys: vec![AppStateSyncKey {
                    key_id: Some(AppStateSyncKeyId {
                        key_id: Some(vec![0, 0, 0, 1, 0, 7]),
                    }),
                    key_data: Some(AppStateSyncKeyData {
                        key_data: Some(known(0x70).to_vec()),
                        timestamp: Some(1_700_000_000),
                        ..Default::default()
                    }),
                }],
            }),
            history_sync_notification: Some(HistorySyncNotification {
                media_key: Some(known(0x90).to_vec()),
                sync_type: Some(HistorySyncType::Full as i32),
                direct_path: Some("/v/t62/history".to_owned()),
                ..Default::default()
            }),
            ..Default::default()
        })),
        sender_key_distribution_message: Some(SenderKeyDistributionMessage {
            group_id: Some("120363000000000001@g.us".to_owned()),
            axolotl_sender_key_distribution_message: Some(known(0xb0).to_vec()),
        }),
        ..Default::default()
    };
    for text in both(&share) {
        assert_hidden(&text, &known(0x70), "app-state key");
        assert_hidden(&text, &known(0x90), "history media key");
        assert_hidden(&text, &known(0xb0), "sender key distribution");
        // Enums of redacted messages still print by name, key ids and timestamps as they are.
        assert!(text.contains("Full"), "{text}");
        assert!(text.contains("AppStateSyncKeyShare"), "{text}");
        assert!(text.contains("1700000000"), "{text}");
        assert!(text.contains("/v/t62/history"), "{text}");
        assert!(text.contains("120363000000000001@g.us"), "{text}");
    }
    assert!(format!("{share:?}").contains("[0, 0, 0, 1, 0, 7]"));
}

#[test]
fn history_blobs_hide_message_secrets_and_privacy_tokens() {
    let history = HistorySync {
        conversations: vec![Conversation {
            id: "15550001111@s.whatsapp.net".to_owned(),
            tc_token: Some(known(0x20).to_vec()),
            messages: vec![whatsapp_proto::history_sync::HistorySyncMsg {
                message: Some(WebMessageInfo {
                    message_secret: Some(known(0x40).to_vec()),
                    ..Default::default()
                }),
                msg_order_id: Some(3),
            }],
            ..Default::default()
        }],
        nct_salt: Some(known(0x60).to_vec()),
        ..Default::default()
    };
    for text in both(&history) {
        assert_hidden(&text, &known(0x20), "privacy token");
        assert_hidden(&text, &known(0x60), "NCT salt");
        assert_hidden(&text, &known(0x40), "message secret");
        assert!(text.contains("15550001111@s.whatsapp.net"), "{text}");
    }
}

#[test]
fn signal_records_hide_private_root_and_chain_keys_but_show_public_keys() {
    let session = SessionStructure {
        session_version: Some(3),
        root_key: Some(known(0x11).to_vec()),
        remote_identity_public: Some(known(0xc1).to_vec()),
        sender_chain: Some(Chain {
            sender_ratchet_key: Some(known(0xd1).to_vec()),
            sender_ratchet_key_private: Some(known(0x31).to_vec()),
            chain_key: Some(chain::ChainKey {
                index: Some(4),
                key: Some(known(0x51).to_vec()),
            }),
            message_keys: vec![chain::MessageKey {
                index: Some(2),
                cipher_key: Some(known(0x71).to_vec()),
                mac_key: Some(known(0x91).to_vec()),
                iv: Some(vec![5; 16]),
            }],
        }),
        ..Default::default()
    };
    let signed = SignedPreKeyRecordStructure {
        id: Some(1),
        public_key: Some(known(0xe1).to_vec()),
        private_key: Some(known(0x21).to_vec()),
        ..Default::default()
    };
    for text in both(&session) {
        for (secret, what) in [
            (0x11, "root key"),
            (0x31, "ratchet private key"),
            (0x51, "chain key"),
        ] {
            assert_hidden(&text, &known(secret), what);
        }
        assert_hidden(&text, &known(0x71), "cipher key");
        assert_hidden(&text, &known(0x91), "mac key");
    }
    // Public keys are not secret and stay visible for debugging.
    assert!(format!("{session:?}").contains(&format!("{:?}", known(0xc1))));
    for text in both(&signed) {
        assert_hidden(&text, &known(0x21), "signed prekey private key");
    }
}
