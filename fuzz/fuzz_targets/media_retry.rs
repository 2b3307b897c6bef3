//! Fuzzes the media retry notification reader: arbitrary frames are parsed as `<notification type="mediaretry">`
//! and decrypted with a fixed media key, and arbitrary bytes sealed with that key (as the phone would seal its
//! answer) go through the payload decoding. Either may refuse the input but neither may panic.
#![no_main]

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use hkdf::Hkdf;
use libfuzzer_sys::fuzz_target;
use sha2::Sha256;
use whatsapp_binary::{Jid, Node, NodeTree, unpack_frame};
use whatsapp_core::media_retry::{MediaRetryNotification, RETRY_KEY_INFO};

/// The media key the seeds were sealed with.
const KEY: [u8; 32] = [0x42; 32];

fuzz_target!(|data: &[u8]| {
    if let Ok(body) = unpack_frame(data)
        && let Ok(tree) = NodeTree::parse(&body)
        && let Ok(notification) = MediaRetryNotification::parse(&tree.root().to_node())
    {
        let _ = notification.decrypt(&KEY);
    }

    let mut key = [0u8; 32];
    Hkdf::<Sha256>::new(None, &KEY)
        .expand(RETRY_KEY_INFO.as_bytes(), &mut key)
        .expect("32 bytes is a valid HKDF-SHA256 length");
    let sealed = Aes256Gcm::new(&key.into())
        .encrypt(
            Nonce::from_slice(&[1; 12]),
            Payload {
                msg: data,
                aad: b"MSG",
            },
        )
        .expect("small inputs encrypt");
    let node = Node::new("notification")
        .attr("id", "MSG")
        .attr("type", "mediaretry")
        .children([
            Node::new("rmr")
                .attr("jid", Jid::new("15551234567", Jid::DEFAULT_USER_SERVER))
                .attr("from_me", "true"),
            Node::new("encrypt").children([
                Node::new("enc_p").bytes(sealed),
                Node::new("enc_iv").bytes(vec![1; 12]),
            ]),
        ]);
    let notification = MediaRetryNotification::parse(&node).expect("the stanza built here parses");
    let _ = notification.decrypt(&KEY);
});
