//! Message secrets and polls (protocol-facts §3.9).
//!
//! A message may carry a random 32-byte secret (`messageContextInfo.messageSecret`). Later messages that refer to
//! it (a poll vote, an encrypted reaction or comment, an edit of an event...) are encrypted with AES-256-GCM under
//! a key derived from that secret, the original message's id and sender, the modifying sender and the use case,
//! so only those who saw the original can read them. Polls are the common case: the creation carries the secret,
//! and each vote is the SHA-256 of the chosen option names, encrypted that way.

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use hkdf::Hkdf;
use sha2::{Digest, Sha256};
use whatsapp_binary::{Jid, Node};
use whatsapp_proto::ProtoMessage;
use whatsapp_proto::e2e::message::{
    PollCreationMessage, PollEncValue, PollUpdateMessage, PollVoteMessage, poll_creation_message,
};
use whatsapp_proto::e2e::{Message, MessageContextInfo, MessageKey};

/// The length of a message secret.
pub const SECRET_LEN: usize = 32;
/// The length of the AES-GCM IV of secret-encrypted payloads.
pub const IV_LEN: usize = 12;

/// What a secret-derived key is for; the name enters the key derivation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum SecretUse {
    /// A poll vote.
    PollVote,
    /// An encrypted reaction.
    EncReaction,
    /// An encrypted comment.
    EncComment,
    /// A reporting token.
    ReportToken,
    /// A response to an event.
    EventResponse,
    /// An edit of an event.
    EventEdit,
    /// An edit of a message.
    MessageEdit,
    /// An edit of a poll.
    PollEdit,
    /// An option added to a poll.
    PollAddOption,
}

impl SecretUse {
    /// The use-case string of the key derivation.
    pub fn as_str(self) -> &'static str {
        match self {
            SecretUse::PollVote => "Poll Vote",
            SecretUse::EncReaction => "Enc Reaction",
            SecretUse::EncComment => "Enc Comment",
            SecretUse::ReportToken => "Report Token",
            SecretUse::EventResponse => "Event Response",
            SecretUse::EventEdit => "Event Edit",
            SecretUse::MessageEdit => "Message Edit",
            SecretUse::PollEdit => "Poll Edit",
            SecretUse::PollAddOption => "Poll Add Option",
        }
    }

    /// Whether the ciphertext is bound to `"<original id>\0<modifying sender>"` as associated data.
    fn binds_sender(self) -> bool {
        matches!(self, SecretUse::PollVote | SecretUse::EventResponse)
    }
}

/// The original message a secret-encrypted payload refers to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Original<'a> {
    /// Its id.
    pub id: &'a str,
    /// Who sent it.
    pub sender: &'a Jid,
    /// Its secret.
    pub secret: &'a [u8],
}

/// Why a secret-encrypted payload could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SecretError {
    /// The payload or its IV is missing.
    #[error("the encrypted payload or its IV is missing")]
    Missing,
    /// The IV is not 12 bytes.
    #[error("the IV is not {IV_LEN} bytes")]
    BadIv,
    /// Authentication failed: wrong secret, sender or message, or the payload was changed.
    #[error("the payload does not decrypt with this secret")]
    Decrypt,
    /// The decrypted payload does not decode.
    #[error("the decrypted payload does not decode: {0}")]
    Decode(String),
}

/// The key and associated data for `use_case` of `original`'s secret by `modifier`.
fn key_and_ad(use_case: SecretUse, original: &Original<'_>, modifier: &Jid) -> ([u8; 32], Vec<u8>) {
    let original_sender = original.sender.to_non_ad().to_string();
    let modifier = modifier.to_non_ad().to_string();
    let mut info = Vec::with_capacity(original.id.len() + original_sender.len() + modifier.len() + 16);
    info.extend_from_slice(original.id.as_bytes());
    info.extend_from_slice(original_sender.as_bytes());
    info.extend_from_slice(modifier.as_bytes());
    info.extend_from_slice(use_case.as_str().as_bytes());
    let mut key = [0u8; 32];
    // 32 bytes is far below HKDF-SHA256's output limit.
    let _ = Hkdf::<Sha256>::new(None, original.secret).expand(&info, &mut key);
    let ad = if use_case.binds_sender() {
        format!("{}\0{modifier}", original.id).into_bytes()
    } else {
        Vec::new()
    };
    (key, ad)
}

/// Encrypts `plaintext` for `use_case` of `original`'s secret, as `modifier` (this account).
pub fn encrypt(
    use_case: SecretUse,
    original: &Original<'_>,
    modifier: &Jid,
    plaintext: &[u8],
    iv: &[u8; IV_LEN],
) -> Vec<u8> {
    let (key, ad) = key_and_ad(use_case, original, modifier);
    Aes256Gcm::new(&key.into())
        .encrypt(
            Nonce::from_slice(iv),
            Payload {
                msg: plaintext,
                aad: &ad,
            },
        )
        .unwrap_or_default()
}

/// Decrypts a payload `modifier` encrypted for `use_case` of `original`'s secret.
pub fn decrypt(
    use_case: SecretUse,
    original: &Original<'_>,
    modifier: &Jid,
    ciphertext: &[u8],
    iv: &[u8],
) -> Result<Vec<u8>, SecretError> {
    let iv: &[u8; IV_LEN] = iv.try_into().map_err(|_| SecretError::BadIv)?;
    let (key, ad) = key_and_ad(use_case, original, modifier);
    Aes256Gcm::new(&key.into())
        .decrypt(
            Nonce::from_slice(iv),
            Payload {
                msg: ciphertext,
                aad: &ad,
            },
        )
        .map_err(|_| SecretError::Decrypt)
}

/// SHA-256 of each option name: what a vote carries.
pub fn option_hashes<S: AsRef<str>>(names: &[S]) -> Vec<[u8; 32]> {
    names
        .iter()
        .map(|name| Sha256::digest(name.as_ref().as_bytes()).into())
        .collect()
}

/// A poll: `question` with `options`, of which at most `selectable` may be chosen (0: any number), carrying
/// `secret` for its votes.
pub fn poll_creation<S: AsRef<str>>(
    question: &str,
    options: &[S],
    selectable: u32,
    secret: [u8; SECRET_LEN],
) -> Message {
    let selectable = if selectable as usize > options.len() {
        0
    } else {
        selectable
    };
    Message {
        poll_creation_message: Some(Box::new(PollCreationMessage {
            name: Some(question.to_owned()),
            options: options
                .iter()
                .map(|option| poll_creation_message::Option {
                    option_name: Some(option.as_ref().to_owned()),
                    ..Default::default()
                })
                .collect(),
            selectable_options_count: Some(selectable),
            ..Default::default()
        })),
        message_context_info: Some(MessageContextInfo {
            message_secret: Some(secret.to_vec()),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// The key a vote names its poll by: chat, whether the poll is the voter's own, id, and in groups the poll's
/// sender (even the voter's own, unlike [`crate::compose::message_key`]).
fn poll_key(chat: &Jid, sender: &Jid, id: &str, from_me: bool) -> MessageKey {
    MessageKey {
        remote_jid: Some(chat.to_string()),
        from_me: Some(from_me),
        id: Some(id.to_owned()),
        participant: chat.is_group().then(|| sender.to_non_ad().to_string()),
    }
}

/// A vote by `voter` for the options named `chosen` of the poll `original` (sent in `chat`).
pub fn poll_vote<S: AsRef<str>>(
    chat: &Jid,
    original: &Original<'_>,
    from_me: bool,
    voter: &Jid,
    chosen: &[S],
    iv: &[u8; IV_LEN],
    timestamp_ms: i64,
) -> Message {
    let vote = PollVoteMessage {
        selected_options: option_hashes(chosen).into_iter().map(Vec::from).collect(),
    };
    let payload = encrypt(SecretUse::PollVote, original, voter, &vote.encode_to_vec(), iv);
    Message {
        poll_update_message: Some(PollUpdateMessage {
            poll_creation_message_key: Some(poll_key(chat, original.sender, original.id, from_me)),
            vote: Some(PollEncValue {
                enc_payload: Some(payload),
                enc_iv: Some(iv.to_vec()),
            }),
            sender_timestamp_ms: Some(timestamp_ms),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// The option hashes `voter` chose in a vote for the poll `original`.
pub fn decrypt_poll_vote(
    update: &PollUpdateMessage,
    original: &Original<'_>,
    voter: &Jid,
) -> Result<Vec<[u8; 32]>, SecretError> {
    let vote = update.vote.as_ref().ok_or(SecretError::Missing)?;
    let (Some(payload), Some(iv)) = (&vote.enc_payload, &vote.enc_iv) else {
        return Err(SecretError::Missing);
    };
    let plaintext = decrypt(SecretUse::PollVote, original, voter, payload, iv)?;
    let vote =
        PollVoteMessage::decode(plaintext.as_slice()).map_err(|e| SecretError::Decode(e.to_string()))?;
    Ok(vote
        .selected_options
        .iter()
        .filter_map(|hash| <[u8; 32]>::try_from(hash.as_slice()).ok())
        .collect())
}

/// The secret a message carries, if any.
pub fn secret_of(message: &Message) -> Option<&[u8]> {
    message
        .message_context_info
        .as_ref()?
        .message_secret
        .as_deref()
        .filter(|secret| secret.len() == SECRET_LEN)
}

/// The `<meta polltype>` child a poll's stanza carries (`creation` or `vote`), for the stanza type `poll`.
pub fn poll_meta(message: &Message) -> Option<Node> {
    let kind = if message.poll_update_message.is_some() {
        "vote"
    } else if message.poll_creation_message.is_some() {
        "creation"
    } else {
        return None;
    };
    Some(Node::new("meta").attr("polltype", kind))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jid(s: &str) -> Jid {
        s.parse().unwrap()
    }

    #[test]
    fn votes_decrypt_for_the_poll_they_name_only() {
        let chat = jid("120363000000000001@g.us");
        let creator = jid("15550001111:3@s.whatsapp.net");
        let voter = jid("15550002222:7@s.whatsapp.net");
        let secret = [9u8; 32];
        let poll = poll_creation("Lunch?", &["pizza", "sushi", "salad"], 1, secret);
        assert_eq!(secret_of(&poll), Some(&secret[..]));
        let original = Original {
            id: "3EB0POLL",
            sender: &creator,
            secret: &secret,
        };
        let vote = poll_vote(&chat, &original, false, &voter, &["sushi"], &[4; 12], 1);
        let update = vote.poll_update_message.as_ref().unwrap();
        let key = update.poll_creation_message_key.as_ref().unwrap();
        assert_eq!(key.participant.as_deref(), Some("15550001111@s.whatsapp.net"));
        assert_eq!(
            decrypt_poll_vote(update, &original, &voter).unwrap(),
            option_hashes(&["sushi"])
        );
        // Another voter, another poll id or another secret: no.
        let other = jid("15550003333@s.whatsapp.net");
        assert_eq!(
            decrypt_poll_vote(update, &original, &other),
            Err(SecretError::Decrypt)
        );
        let wrong_id = Original {
            id: "3EB0OTHER",
            ..original.clone()
        };
        assert_eq!(
            decrypt_poll_vote(update, &wrong_id, &voter),
            Err(SecretError::Decrypt)
        );
        let wrong_secret = Original {
            secret: &[8; 32],
            ..original.clone()
        };
        assert_eq!(
            decrypt_poll_vote(update, &wrong_secret, &voter),
            Err(SecretError::Decrypt)
        );
        // Damaged or missing parts are errors, not panics.
        let mut damaged = update.clone();
        damaged.vote.as_mut().unwrap().enc_iv = Some(vec![1, 2, 3]);
        assert_eq!(
            decrypt_poll_vote(&damaged, &original, &voter),
            Err(SecretError::BadIv)
        );
        damaged.vote = None;
        assert_eq!(
            decrypt_poll_vote(&damaged, &original, &voter),
            Err(SecretError::Missing)
        );
        assert_eq!(
            poll_meta(&poll).unwrap().optional_str_attr("polltype"),
            Some("creation")
        );
        assert_eq!(
            poll_meta(&vote).unwrap().optional_str_attr("polltype"),
            Some("vote")
        );
        assert!(poll_meta(&Message::default()).is_none());
    }

    #[test]
    fn use_cases_without_sender_binding_have_no_associated_data() {
        let sender = jid("15550001111@s.whatsapp.net");
        let original = Original {
            id: "X",
            sender: &sender,
            secret: &[1; 32],
        };
        let sealed = encrypt(SecretUse::EncReaction, &original, &sender, b"hi", &[0; 12]);
        assert_eq!(
            decrypt(SecretUse::EncReaction, &original, &sender, &sealed, &[0; 12]).unwrap(),
            b"hi"
        );
        // The use case enters the key.
        assert_eq!(
            decrypt(SecretUse::EncComment, &original, &sender, &sealed, &[0; 12]),
            Err(SecretError::Decrypt)
        );
        // Selecting more options than exist means "any number".
        let poll = poll_creation("Q", &["a"], 5, [0; 32]);
        assert_eq!(
            poll.poll_creation_message.unwrap().selectable_options_count,
            Some(0)
        );
    }
}
