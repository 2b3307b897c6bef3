//! Media retry: asking the phone to upload a file again once the media host no longer has it (HTTP 403, 404 or
//! 410), and reading the phone's answer (protocol-facts §3.9, whatsmeow `mediaretry.go`).
//!
//! The request is a `<receipt type="server-error">` to this account's own JID, naming the message in `<rmr>` and
//! carrying an encrypted `ServerErrorReceipt`; the answer is a `<notification type="mediaretry">` whose encrypted
//! `MediaRetryNotification` holds the new direct path, or an `<error code>` when the phone could not help. Both
//! payloads are AES-256-GCM under `HKDF-SHA256(media key, no salt, "WhatsApp Media Retry Notification", 32)` with
//! the message id as associated data, so only holders of the media key can read or forge them.

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use hkdf::Hkdf;
use sha2::Sha256;
use whatsapp_binary::{Content, Jid, Node};
use whatsapp_proto::ProtoMessage;
use whatsapp_proto::mms_retry::media_retry_notification::ResultType;
use whatsapp_proto::mms_retry::{MediaRetryNotification as RetryPayload, ServerErrorReceipt};
use zeroize::Zeroizing;

/// The HKDF info of the retry key (protocol-facts §3.9).
pub const RETRY_KEY_INFO: &str = "WhatsApp Media Retry Notification";

/// Length of the AES-GCM IV of both payloads.
pub const IV_LEN: usize = 12;

/// The `<error code>` with which the server says the phone no longer has the media.
const ERROR_NOT_ON_PHONE: u32 = 2;

/// Why a media retry notification could not be read.
#[derive(Clone, Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum MediaRetryError {
    /// A part of the notification is missing or has the wrong type; names the part.
    #[error("media retry notification without {0}")]
    Missing(&'static str),
    /// An attribute does not parse.
    #[error("media retry notification: {0}")]
    Attr(String),
    /// The IV is not 12 bytes.
    #[error("media retry IV is {0} bytes, not 12")]
    BadIv(usize),
    /// The payload does not decrypt: damaged, or not encrypted with this media key for this message.
    #[error("media retry payload does not decrypt with this media key")]
    Decrypt,
    /// The decrypted payload is not a `MediaRetryNotification`.
    #[error("media retry payload does not decode")]
    Payload,
    /// The payload names another message than the notification.
    #[error("media retry payload is for message {payload:?}, the notification for {notification:?}")]
    WrongMessage {
        /// The id in the notification's `id` attribute.
        notification: String,
        /// The id inside the payload.
        payload: String,
    },
    /// The phone reported success but gave no new direct path.
    #[error("media retry success without a direct path")]
    NoDirectPath,
}

/// The message whose media is asked for again, as the receipt's `<rmr>` names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetryTarget<'a> {
    /// The message id.
    pub id: &'a str,
    /// The chat: the other user of a direct chat, or the group.
    pub chat: &'a Jid,
    /// Whether this account sent the message.
    pub from_me: bool,
    /// The sender of a group message.
    pub participant: Option<&'a Jid>,
}

fn retry_key(media_key: &[u8; 32]) -> Zeroizing<[u8; 32]> {
    let mut key = Zeroizing::new([0u8; 32]);
    // 32 bytes is far below HKDF-SHA256's limit of 8160, so expansion cannot fail.
    let _ = Hkdf::<Sha256>::new(None, media_key).expand(RETRY_KEY_INFO.as_bytes(), key.as_mut());
    key
}

fn cipher(media_key: &[u8; 32]) -> Aes256Gcm {
    let key = retry_key(media_key);
    Aes256Gcm::new(key.as_ref().into())
}

/// The `<receipt type="server-error">` asking this account's phone to upload the media of `target` again:
/// addressed to `own` (this account's JID without device), carrying `ServerErrorReceipt{stanzaId}` encrypted with
/// the retry key of `media_key` under `iv`, the message id as associated data.
pub fn retry_receipt(own: &Jid, target: &RetryTarget<'_>, media_key: &[u8; 32], iv: [u8; IV_LEN]) -> Node {
    let payload = ServerErrorReceipt {
        stanza_id: Some(target.id.to_owned()),
    }
    .encode_to_vec();
    let sealed = cipher(media_key)
        .encrypt(
            Nonce::from_slice(&iv),
            Payload {
                msg: &payload,
                aad: target.id.as_bytes(),
            },
        )
        // AES-GCM encryption fails only for inputs of gigabytes; this payload is a few bytes.
        .unwrap_or_default();
    let mut rmr = Node::new("rmr")
        .attr("jid", target.chat.to_non_ad())
        .attr("from_me", if target.from_me { "true" } else { "false" });
    if let Some(participant) = target.participant {
        rmr = rmr.attr("participant", participant.clone());
    }
    Node::new("receipt")
        .attr("id", target.id.to_owned())
        .attr("to", own.to_non_ad())
        .attr("type", "server-error")
        .children([
            Node::new("encrypt").children([
                Node::new("enc_p").bytes(sealed),
                Node::new("enc_iv").bytes(iv.to_vec()),
            ]),
            rmr,
        ])
}

/// What the phone answered to a media retry request.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum MediaRetryResult {
    /// The phone uploaded the file again: download it from this direct path (the key and hashes are unchanged).
    Success {
        /// The new direct path.
        direct_path: String,
    },
    /// The phone no longer has the file (result `NOT_FOUND`, or the server's `<error code="2">`).
    NotFound,
    /// The phone could not decrypt the request (result `DECRYPTION_ERROR`).
    DecryptionFailed,
    /// Another failure: result `GENERAL_ERROR` or an unknown result (`code` `None`), or an `<error>` with another
    /// code.
    Failed {
        /// The server's error code, when the failure came as `<error code>`.
        code: Option<u32>,
    },
}

/// The answer as it arrives, encrypted or as the server's error code.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum RetryAnswer {
    /// The phone's encrypted `MediaRetryNotification`.
    Encrypted {
        /// The AES-GCM ciphertext and tag.
        ciphertext: Vec<u8>,
        /// The IV.
        iv: [u8; IV_LEN],
    },
    /// The server answered for the phone with `<error code>`.
    Error {
        /// The code (2: the media is not on the phone).
        code: u32,
    },
}

/// A `<notification type="mediaretry">`, parsed but not yet decrypted (that needs the media key, which only the
/// requester knows).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MediaRetryNotification {
    /// The id of the message whose media was asked for.
    pub message_id: String,
    /// The notification's timestamp, unix seconds, when present.
    pub timestamp: Option<i64>,
    /// The chat of the message.
    pub chat: Jid,
    /// Whether this account sent the message.
    pub from_me: bool,
    /// The sender of a group message.
    pub participant: Option<Jid>,
    /// The answer.
    pub answer: RetryAnswer,
}

fn attr_error(error: whatsapp_binary::AttrError) -> MediaRetryError {
    MediaRetryError::Attr(error.to_string())
}

fn bytes_of<'n>(node: &'n Node, tag: &'static str) -> Result<&'n [u8], MediaRetryError> {
    match node.child(tag).map(|child| &child.content) {
        Some(Content::Bytes(bytes)) => Ok(bytes),
        _ => Err(MediaRetryError::Missing(tag)),
    }
}

impl MediaRetryNotification {
    /// Reads a `<notification type="mediaretry">`: the message id, `<rmr>`, and `<encrypt>` or `<error>`.
    pub fn parse(node: &Node) -> Result<MediaRetryNotification, MediaRetryError> {
        if node.tag != "notification" || node.optional_str_attr("type") != Some("mediaretry") {
            return Err(MediaRetryError::Missing("notification type mediaretry"));
        }
        let message_id = node.str_attr("id").map_err(attr_error)?.to_owned();
        let timestamp = node.optional_i64_attr("t").map_err(attr_error)?;
        let rmr = node.child("rmr").ok_or(MediaRetryError::Missing("rmr"))?;
        let chat = rmr.jid_attr("jid").map_err(attr_error)?;
        let from_me = rmr
            .optional_bool_attr("from_me")
            .map_err(attr_error)?
            .unwrap_or(false);
        let participant = rmr.optional_jid_attr("participant").map_err(attr_error)?;
        let answer = if let Some(error) = node.child("error") {
            let code = error.u64_attr("code").map_err(attr_error)?;
            RetryAnswer::Error {
                code: u32::try_from(code).map_err(|_| MediaRetryError::Attr(format!("error code {code}")))?,
            }
        } else {
            let encrypt = node.child("encrypt").ok_or(MediaRetryError::Missing("encrypt"))?;
            let ciphertext = bytes_of(encrypt, "enc_p")?.to_vec();
            let iv = bytes_of(encrypt, "enc_iv")?;
            RetryAnswer::Encrypted {
                ciphertext,
                iv: iv.try_into().map_err(|_| MediaRetryError::BadIv(iv.len()))?,
            }
        };
        Ok(MediaRetryNotification {
            message_id,
            timestamp,
            chat,
            from_me,
            participant,
            answer,
        })
    }

    /// Decrypts the answer with the media key of the message and says what the phone did.
    pub fn decrypt(&self, media_key: &[u8; 32]) -> Result<MediaRetryResult, MediaRetryError> {
        let (ciphertext, iv) = match &self.answer {
            RetryAnswer::Error {
                code: ERROR_NOT_ON_PHONE,
            } => return Ok(MediaRetryResult::NotFound),
            RetryAnswer::Error { code } => return Ok(MediaRetryResult::Failed { code: Some(*code) }),
            RetryAnswer::Encrypted { ciphertext, iv } => (ciphertext, iv),
        };
        let plaintext = Zeroizing::new(
            cipher(media_key)
                .decrypt(
                    Nonce::from_slice(iv),
                    Payload {
                        msg: ciphertext,
                        aad: self.message_id.as_bytes(),
                    },
                )
                .map_err(|_| MediaRetryError::Decrypt)?,
        );
        let payload = RetryPayload::decode(plaintext.as_slice()).map_err(|_| MediaRetryError::Payload)?;
        if let Some(id) = payload.stanza_id.as_deref()
            && id != self.message_id
        {
            return Err(MediaRetryError::WrongMessage {
                notification: self.message_id.clone(),
                payload: id.to_owned(),
            });
        }
        Ok(match ResultType::try_from(payload.result.unwrap_or_default()) {
            Ok(ResultType::Success) => MediaRetryResult::Success {
                direct_path: payload
                    .direct_path
                    .filter(|path| !path.is_empty())
                    .ok_or(MediaRetryError::NoDirectPath)?,
            },
            Ok(ResultType::NotFound) => MediaRetryResult::NotFound,
            Ok(ResultType::DecryptionError) => MediaRetryResult::DecryptionFailed,
            Ok(ResultType::GeneralError) | Err(_) => MediaRetryResult::Failed { code: None },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: [u8; 32] = [0x42; 32];

    fn own() -> Jid {
        Jid::with_device("15551234567", Jid::DEFAULT_USER_SERVER, 3)
    }

    fn chat() -> Jid {
        Jid::new("15557654321", Jid::DEFAULT_USER_SERVER)
    }

    /// The phone's side, written from the facts with the primitives directly: HKDF, then AES-256-GCM.
    fn phone_seal(message_id: &str, payload: &RetryPayload, iv: [u8; 12]) -> Vec<u8> {
        let mut key = [0u8; 32];
        Hkdf::<Sha256>::new(None, &KEY)
            .expand(b"WhatsApp Media Retry Notification", &mut key)
            .unwrap();
        Aes256Gcm::new(&key.into())
            .encrypt(
                Nonce::from_slice(&iv),
                Payload {
                    msg: &payload.encode_to_vec(),
                    aad: message_id.as_bytes(),
                },
            )
            .unwrap()
    }

    fn notification(message_id: &str, inner: Node) -> Node {
        Node::new("notification")
            .attr("id", message_id.to_owned())
            .attr("type", "mediaretry")
            .attr("t", "1700000000")
            .attr("from", own().to_non_ad())
            .children([
                Node::new("rmr")
                    .attr("jid", chat())
                    .attr("from_me", "false")
                    .attr(
                        "participant",
                        Jid::with_device("15550000000", Jid::DEFAULT_USER_SERVER, 2),
                    ),
                inner,
            ])
    }

    fn encrypted(message_id: &str, payload: &RetryPayload) -> Node {
        let iv = [7u8; 12];
        notification(
            message_id,
            Node::new("encrypt").children([
                Node::new("enc_p").bytes(phone_seal(message_id, payload, iv)),
                Node::new("enc_iv").bytes(iv.to_vec()),
            ]),
        )
    }

    fn payload(id: &str, result: ResultType, path: Option<&str>) -> RetryPayload {
        RetryPayload {
            stanza_id: Some(id.to_owned()),
            direct_path: path.map(str::to_owned),
            result: Some(result as i32),
            message_secret: None,
        }
    }

    #[test]
    fn receipt_layout_and_payload() {
        let group = Jid::new("120363000000000001", Jid::GROUP_SERVER);
        let sender = Jid::with_device("15557654321", Jid::DEFAULT_USER_SERVER, 1);
        let target = RetryTarget {
            id: "3EB0ABCDEF",
            chat: &group,
            from_me: false,
            participant: Some(&sender),
        };
        let receipt = retry_receipt(&own(), &target, &KEY, [9; 12]);
        assert_eq!(receipt.str_attr("type").unwrap(), "server-error");
        assert_eq!(receipt.str_attr("id").unwrap(), "3EB0ABCDEF");
        assert_eq!(receipt.jid_attr("to").unwrap(), own().to_non_ad());
        let rmr = receipt.child("rmr").unwrap();
        assert_eq!(rmr.jid_attr("jid").unwrap(), group);
        assert_eq!(rmr.str_attr("from_me").unwrap(), "false");
        assert_eq!(rmr.jid_attr("participant").unwrap(), sender);
        // The phone opens it with the key and the message id as associated data.
        let encrypt = receipt.child("encrypt").unwrap();
        let sealed = bytes_of(encrypt, "enc_p").unwrap();
        assert_eq!(bytes_of(encrypt, "enc_iv").unwrap(), &[9; 12]);
        let mut key = [0u8; 32];
        Hkdf::<Sha256>::new(None, &KEY)
            .expand(b"WhatsApp Media Retry Notification", &mut key)
            .unwrap();
        let cipher = Aes256Gcm::new(&key.into());
        let open = |aad: &[u8]| cipher.decrypt(Nonce::from_slice(&[9; 12]), Payload { msg: sealed, aad });
        let plain = open(b"3EB0ABCDEF").unwrap();
        assert_eq!(
            ServerErrorReceipt::decode(plain.as_slice())
                .unwrap()
                .stanza_id
                .as_deref(),
            Some("3EB0ABCDEF")
        );
        assert!(open(b"another id").is_err());
        // A direct chat names no participant.
        let direct = retry_receipt(
            &own(),
            &RetryTarget {
                id: "X",
                chat: &chat(),
                from_me: true,
                participant: None,
            },
            &KEY,
            [0; 12],
        );
        let rmr = direct.child("rmr").unwrap();
        assert_eq!(rmr.str_attr("from_me").unwrap(), "true");
        assert!(rmr.optional_str_attr("participant").is_none());
    }

    #[test]
    fn results_of_notifications() {
        let check = |node: Node, expected: Result<MediaRetryResult, MediaRetryError>| {
            let parsed = MediaRetryNotification::parse(&node).unwrap();
            assert_eq!(parsed.message_id, "MSG1");
            assert_eq!(parsed.chat, chat());
            assert_eq!(parsed.timestamp, Some(1_700_000_000));
            assert_eq!(parsed.decrypt(&KEY), expected);
        };
        check(
            encrypted(
                "MSG1",
                &payload("MSG1", ResultType::Success, Some("/v/t62/new?ccb=1")),
            ),
            Ok(MediaRetryResult::Success {
                direct_path: "/v/t62/new?ccb=1".to_owned(),
            }),
        );
        check(
            encrypted("MSG1", &payload("MSG1", ResultType::NotFound, None)),
            Ok(MediaRetryResult::NotFound),
        );
        check(
            encrypted("MSG1", &payload("MSG1", ResultType::DecryptionError, None)),
            Ok(MediaRetryResult::DecryptionFailed),
        );
        check(
            encrypted("MSG1", &payload("MSG1", ResultType::GeneralError, None)),
            Ok(MediaRetryResult::Failed { code: None }),
        );
        check(
            encrypted("MSG1", &payload("MSG1", ResultType::Success, None)),
            Err(MediaRetryError::NoDirectPath),
        );
        check(
            encrypted("MSG1", &payload("OTHER", ResultType::Success, Some("/p"))),
            Err(MediaRetryError::WrongMessage {
                notification: "MSG1".to_owned(),
                payload: "OTHER".to_owned(),
            }),
        );
        check(
            notification("MSG1", Node::new("error").attr("code", "2")),
            Ok(MediaRetryResult::NotFound),
        );
        check(
            notification("MSG1", Node::new("error").attr("code", "503")),
            Ok(MediaRetryResult::Failed { code: Some(503) }),
        );
        // Sealed for another message id: the associated data differs.
        let mut moved = encrypted("MSG2", &payload("MSG1", ResultType::Success, Some("/p")));
        moved = Node::new("notification")
            .attr("id", "MSG1")
            .attr("type", "mediaretry")
            .attr("t", "1700000000")
            .children(moved.child_nodes().to_vec());
        check(moved, Err(MediaRetryError::Decrypt));
        // The wrong key.
        let node = encrypted("MSG1", &payload("MSG1", ResultType::Success, Some("/p")));
        let parsed = MediaRetryNotification::parse(&node).unwrap();
        assert_eq!(parsed.decrypt(&[0; 32]), Err(MediaRetryError::Decrypt));
    }

    #[test]
    fn malformed_notifications_are_errors() {
        let iv = Node::new("enc_iv").bytes(vec![0; 12]);
        let cases = [
            (Node::new("receipt").attr("type", "mediaretry"), "wrong tag"),
            (
                Node::new("notification")
                    .attr("type", "mediaretry")
                    .attr("id", "X"),
                "no rmr",
            ),
            (
                notification("X", Node::new("encrypt").children([iv.clone()])),
                "no enc_p",
            ),
            (
                notification(
                    "X",
                    Node::new("encrypt").children([
                        Node::new("enc_p").bytes(vec![1]),
                        Node::new("enc_iv").bytes(vec![0; 5]),
                    ]),
                ),
                "short iv",
            ),
            (
                notification(
                    "X",
                    Node::new("encrypt").children([Node::new("enc_p").text("text"), iv]),
                ),
                "enc_p not bytes",
            ),
            (
                notification("X", Node::new("error").attr("code", "x")),
                "bad code",
            ),
            (notification("X", Node::new("other")), "neither encrypt nor error"),
            (
                Node::new("notification")
                    .attr("type", "mediaretry")
                    .attr("id", "X")
                    .children([Node::new("rmr")]),
                "rmr without jid",
            ),
        ];
        for (node, what) in cases {
            assert!(MediaRetryNotification::parse(&node).is_err(), "{what}");
        }
        // A payload that decrypts but is not the protobuf.
        let mut key = [0u8; 32];
        Hkdf::<Sha256>::new(None, &KEY)
            .expand(RETRY_KEY_INFO.as_bytes(), &mut key)
            .unwrap();
        let garbage = Aes256Gcm::new(&key.into())
            .encrypt(
                Nonce::from_slice(&[1; 12]),
                Payload {
                    msg: &[0xFF, 0xFF, 0xFF],
                    aad: b"X",
                },
            )
            .unwrap();
        let node = notification(
            "X",
            Node::new("encrypt").children([
                Node::new("enc_p").bytes(garbage),
                Node::new("enc_iv").bytes(vec![1; 12]),
            ]),
        );
        assert_eq!(
            MediaRetryNotification::parse(&node).unwrap().decrypt(&KEY),
            Err(MediaRetryError::Payload)
        );
    }
}
