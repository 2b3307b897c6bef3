//! `Debug` of the key-holding types of the client API prints no key bytes: uploaded files and the media
//! references of received messages (media keys).

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test helpers fail loudly")]

use whatsapp_client::{MediaRef, Uploaded};
use whatsapp_proto::e2e::Message;
use whatsapp_proto::e2e::message::ImageMessage;

/// 32 distinct known bytes, `start`, `start + 1`, ...
fn known(start: u8) -> [u8; 32] {
    std::array::from_fn(|i| start.wrapping_add(i as u8))
}

/// Fails if `text` shows any 8-byte run of `secret` as lower or upper hex, or as the decimal or hex list that
/// `{:?}` / `{:x?}` print for byte slices.
fn assert_hidden(text: &str, secret: &[u8], what: &str) {
    assert!(secret.len() >= 8, "{what}: too short to check");
    let lower = text.to_lowercase();
    for run in secret.windows(8) {
        let hex: String = run.iter().map(|b| format!("{b:02x}")).collect();
        assert!(!lower.contains(&hex), "{what} shown as hex in {text}");
        let decimal = format!("{run:?}");
        assert!(
            !text.contains(&decimal[1..decimal.len() - 1]),
            "{what} shown as a decimal list in {text}"
        );
        let hex_list = format!("{run:x?}");
        assert!(
            !lower.contains(&hex_list[1..hex_list.len() - 1]),
            "{what} shown as a hex list in {text}"
        );
    }
}

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
    for text in [format!("{media:?}"), format!("{media:#?}")] {
        assert_hidden(&text, &known(0x60), "media key");
        assert!(text.contains("/v/t62/y"));
    }
}
