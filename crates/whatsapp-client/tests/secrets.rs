//! `Debug` of the key-holding types of the client API prints no key bytes: uploaded files and the media
//! references of received messages (media keys), and the received messages themselves.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test helpers fail loudly")]

use whatsapp_client::{MediaRef, Uploaded};
use whatsapp_proto::e2e::Message;
use whatsapp_proto::e2e::message::ImageMessage;
use whatsapp_test_support::{assert_hidden, known};

#[test]
fn uploaded_files_and_media_refs_hide_media_keys() {
    let uploaded = Uploaded {
        url: "https://mmg.whatsapp.net/v/t62/x".to_owned(),
        direct_path: "/v/t62/x".to_owned(),
        media_key: known(0x40),
        file_sha256: [1; 32],
        file_enc_sha256: [2; 32],
        file_length: 5,
    };
    let message = Message {
        image_message: Some(Box::new(ImageMessage {
            direct_path: Some("/v/t62/y".to_owned()),
            media_key: Some(known(0x60).to_vec()),
            file_enc_sha256: Some(vec![3; 32]),
            file_sha256: Some(vec![4; 32]),
            ..Default::default()
        })),
        ..Default::default()
    };
    let media = MediaRef::of(&message).unwrap();
    assert_eq!(media.media_key, known(0x60));
    for text in [format!("{uploaded:?}"), format!("{uploaded:#?}")] {
        assert_hidden(&text, &known(0x40), "media key");
        assert!(text.contains("/v/t62/x"));
    }
    // The received message itself, as `Event::Message` carries it.
    for text in [format!("{message:?}"), format!("{message:#?}")] {
        assert_hidden(&text, &known(0x60), "media key in the message");
        assert!(text.contains("/v/t62/y"));
    }
    for text in [format!("{media:?}"), format!("{media:#?}")] {
        assert_hidden(&text, &known(0x60), "media key");
        assert!(text.contains("/v/t62/y"));
    }
}
