//! Encoding and decoding the generated types: round trips, unknown fields, and the module split.

use whatsapp_proto::ProtoMessage;
use whatsapp_proto::e2e::{self, Message};
use whatsapp_proto::handshake::{HandshakeMessage, handshake_message};

#[test]
fn handshake_message_round_trips() {
    let hello = HandshakeMessage {
        client_hello: Some(handshake_message::ClientHello {
            ephemeral: Some(vec![7; 32]),
            ..Default::default()
        }),
        ..Default::default()
    };
    let bytes = hello.encode_to_vec();
    // Field 2 (clientHello), length 34, then field 1 (ephemeral), length 32.
    assert_eq!(&bytes[..4], &[0x12, 34, 0x0a, 32]);
    let decoded = HandshakeMessage::decode(bytes.as_slice()).unwrap();
    assert_eq!(decoded, hello);
    assert_eq!(decoded.client_hello.unwrap().ephemeral.unwrap(), vec![7; 32]);
}

#[test]
fn message_round_trips() {
    let message = Message {
        extended_text_message: Some(Box::new(e2e::message::ExtendedTextMessage {
            text: Some("hello from the test".to_owned()),
            context_info: Some(Box::new(e2e::ContextInfo {
                stanza_id: Some("3EB0ABCDEF".to_owned()),
                mentioned_jid: vec!["1234@s.whatsapp.net".to_owned()],
                ..Default::default()
            })),
            ..Default::default()
        })),
        ..Default::default()
    };
    let bytes = message.encode_to_vec();
    let decoded = Message::decode(bytes.as_slice()).unwrap();
    assert_eq!(decoded, message);
    let text = decoded.extended_text_message.unwrap();
    assert_eq!(text.text.as_deref(), Some("hello from the test"));
    assert_eq!(
        text.context_info.unwrap().mentioned_jid,
        vec!["1234@s.whatsapp.net".to_owned()]
    );
}

#[test]
fn conversation_text_has_the_wire_field_number_one() {
    let message = Message {
        conversation: Some("hi".to_owned()),
        ..Default::default()
    };
    assert_eq!(message.encode_to_vec(), vec![0x0a, 2, b'h', b'i']);
}

#[test]
fn unknown_fields_are_skipped() {
    let mut bytes = Message {
        conversation: Some("kept".to_owned()),
        ..Default::default()
    }
    .encode_to_vec();
    // Field 9999 as a length-delimited value, and field 9998 as a varint: neither exists in the schema.
    bytes.extend_from_slice(&[0xfa, 0xf0, 0x04, 3, 1, 2, 3]);
    bytes.extend_from_slice(&[0xf0, 0xf0, 0x04, 42]);
    let decoded = Message::decode(bytes.as_slice()).unwrap();
    assert_eq!(decoded.conversation.as_deref(), Some("kept"));
}

#[test]
fn truncated_input_is_an_error() {
    let bytes = Message {
        conversation: Some("truncated".to_owned()),
        ..Default::default()
    }
    .encode_to_vec();
    assert!(Message::decode(&bytes[..bytes.len() - 1]).is_err());
}

#[test]
fn modules_reference_each_other() {
    // A history-sync message embeds an end-to-end `Message` from another module.
    let info = whatsapp_proto::history_sync::WebMessageInfo {
        key: e2e::MessageKey {
            id: Some("ABC".to_owned()),
            ..Default::default()
        },
        message: Some(Message {
            conversation: Some("old".to_owned()),
            ..Default::default()
        }),
        ..Default::default()
    };
    let decoded =
        whatsapp_proto::history_sync::WebMessageInfo::decode(info.encode_to_vec().as_slice()).unwrap();
    assert_eq!(decoded.message.unwrap().conversation.as_deref(), Some("old"));
    assert_eq!(decoded.key.id.as_deref(), Some("ABC"));
}
