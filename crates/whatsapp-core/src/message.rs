//! One-to-one message stanzas: ids, per-device encryption into `<message><participants>`, and reading and
//! decrypting an incoming `<message>` (protocol-facts §3.5-3.7).
//!
//! Sending: the caller has the recipient's device list ([`crate::usync`]) and sessions (started from
//! [`crate::prekeys`] bundles); [`encrypt_for_devices`] pads the serialized `Message` and encrypts it once per
//! device through a [`StagedSignalStore`], and [`message_stanza`] wraps the results. The caller commits the stage
//! once the stanza is sent. Receiving: [`IncomingMessage::parse`] reads the stanza, [`decrypt`] opens one `<enc>`
//! and strips the padding; the caller commits the stage before it acknowledges the message.

use bytes::Bytes;
use rand_core::{CryptoRng, RngCore};
use sha2::{Digest, Sha256};
use whatsapp_binary::{Jid, Node};
use whatsapp_signal::store::ProtocolAddress;
use whatsapp_signal::{CiphertextMessage, PreKeySignalMessage, SignalMessage, padding};
use whatsapp_store::AccountStore;

use crate::compose::EditKind;
use crate::error::ResponseError;
use crate::signal_store::StagedSignalStore;

/// The prefix of message ids made by web clients (whatsmeow `WebMessageIDPrefix`).
pub const WEB_MESSAGE_ID_PREFIX: &str = "3EB0";

/// A new message id: `3EB0` and the upper-case hex of the first 9 bytes of
/// `SHA-256(unix seconds as 8 bytes BE || own user "@c.us" || 16 random bytes)` (protocol-facts §3.6).
pub fn message_id(unix_seconds: u64, own_user: Option<&str>, random: &[u8; 16]) -> String {
    let mut hasher = Sha256::new();
    hasher.update(unix_seconds.to_be_bytes());
    if let Some(user) = own_user {
        hasher.update(user.as_bytes());
        hasher.update(b"@c.us");
    }
    hasher.update(random);
    let hash = hasher.finalize();
    let mut id = String::with_capacity(WEB_MESSAGE_ID_PREFIX.len() + 18);
    id.push_str(WEB_MESSAGE_ID_PREFIX);
    for byte in &hash[..9] {
        id.push_str(&format!("{byte:02X}"));
    }
    id
}

/// The Signal address of a device JID (`user[_agent]`, device).
pub fn protocol_address(device: &Jid) -> ProtocolAddress {
    ProtocolAddress::new(device.signal_address_user(), u32::from(device.device()))
}

/// A message encrypted for one device.
#[derive(Debug)]
pub struct Encrypted {
    /// The device.
    pub device: Jid,
    /// `pkmsg` or `msg`.
    pub message: CiphertextMessage,
}

/// Pads `plaintext` (a serialized `Message`) and encrypts it for every device, staging the session changes.
/// Fails on the first device without a usable session, naming it.
pub async fn encrypt_for_devices<A: AccountStore>(
    stage: &StagedSignalStore<'_, A>,
    devices: &[Jid],
    plaintext: &[u8],
    rng: &mut (impl RngCore + CryptoRng),
) -> Result<Vec<Encrypted>, (Jid, whatsapp_signal::Error)> {
    let padded = padding::pad(plaintext, rng);
    let mut out = Vec::with_capacity(devices.len());
    for device in devices {
        let message = whatsapp_signal::store::encrypt(stage, &protocol_address(device), &padded)
            .await
            .map_err(|error| (device.clone(), error))?;
        out.push(Encrypted {
            device: device.clone(),
            message,
        });
    }
    Ok(out)
}

/// What a `<message>` stanza says about the message inside it, in attributes the server reads without
/// decrypting (it uses them for notifications and for what a recipient shows when decryption fails). The rules
/// are whatsmeow's (`send.go` getTypeFromMessage, getMediaTypeFromMessage, getEditAttribute, prepareMessageNode
/// and getMessageContent).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StanzaAttrs {
    /// The stanza `type`: `reaction`, `poll`, `media` or `text`.
    pub kind: &'static str,
    /// The `mediatype` of the `<enc>` children (one-to-one copies and a group's `skmsg`), for media, contact
    /// cards, link previews and list or button answers.
    pub media_type: Option<&'static str>,
    /// The stanza `edit` attribute.
    pub edit: Option<EditKind>,
    /// Whether the pairwise `<enc>` children say `decrypt-fail="hide"`: edits, revokes, reactions and poll
    /// votes, which a recipient that cannot decrypt them should not show as a failed message.
    pub hide_decrypt_failure: bool,
    /// The `<meta polltype>` of polls: `creation` or `vote`.
    pub poll_type: Option<&'static str>,
}

impl StanzaAttrs {
    /// The attributes of a stanza carrying `message`.
    pub fn of(message: &whatsapp_proto::e2e::Message) -> StanzaAttrs {
        let kind = stanza_type(message);
        let edit = EditKind::for_message(message);
        StanzaAttrs {
            kind,
            media_type: media_type(message),
            hide_decrypt_failure: edit.is_some()
                || kind == "reaction"
                || message.poll_update_message.is_some(),
            edit,
            poll_type: (kind == "poll").then_some(match message.poll_update_message {
                Some(_) => "vote",
                None => "creation",
            }),
        }
    }

    /// `enc` with the attributes of a pairwise copy: `mediatype` when `with_media_type` (one-to-one copies;
    /// a group's pairwise copies carry only the sender key) and `decrypt-fail`.
    fn pairwise(&self, enc: Node, with_media_type: bool) -> Node {
        let enc = match self.media_type.filter(|_| with_media_type) {
            Some(media) => enc.attr("mediatype", media),
            None => enc,
        };
        match self.hide_decrypt_failure {
            true => enc.attr("decrypt-fail", "hide"),
            false => enc,
        }
    }

    /// `stanza` with `type` and `edit`, and `children` followed by the poll's `<meta>`.
    pub(crate) fn stanza(&self, stanza: Node, mut children: Vec<Node>) -> Node {
        let stanza = stanza.attr("type", self.kind);
        let stanza = match &self.edit {
            Some(edit) => stanza.attr("edit", edit.as_attr().to_owned()),
            None => stanza,
        };
        if let Some(poll) = self.poll_type {
            children.push(Node::new("meta").attr("polltype", poll));
        }
        stanza.children(children)
    }

    /// The group `skmsg` `<enc>`, with `mediatype` (whatsmeow `send.go` sendGroup).
    pub(crate) fn skmsg(&self, ciphertext: &[u8]) -> Node {
        let enc = Node::new("enc")
            .attr("v", "2")
            .attr("type", "skmsg")
            .bytes(ciphertext.to_vec());
        match self.media_type {
            Some(media) => enc.attr("mediatype", media),
            None => enc,
        }
    }

    /// A pairwise `<to jid><enc/></to>` of a group or status message (no `mediatype`).
    pub(crate) fn group_copy(&self, copy: &Encrypted) -> Node {
        Node::new("to")
            .attr("jid", copy.device.clone())
            .children([self.pairwise(enc_node(&copy.message), false)])
    }

    /// The `<enc>` of a single-device resend (whatsmeow `retry.go` handleRetryReceipt: `mediatype` only).
    pub(crate) fn resent(&self, message: &CiphertextMessage) -> Node {
        match self.media_type {
            Some(media) => enc_node(message).attr("mediatype", media),
            None => enc_node(message),
        }
    }
}

/// The wrapped message (`Some(None)` for an empty wrapper) of the wrappers that only change how a message is
/// shown (view once, disappearing, document with caption, animated sticker), which `type` and `mediatype` look
/// through.
fn unwrapped(message: &whatsapp_proto::e2e::Message) -> Option<Option<&whatsapp_proto::e2e::Message>> {
    [
        &message.view_once_message,
        &message.view_once_message_v2,
        &message.view_once_message_v2_extension,
        &message.lottie_sticker_message,
        &message.ephemeral_message,
        &message.document_with_caption_message,
    ]
    .into_iter()
    .find_map(|wrapper| wrapper.as_ref())
    .map(|wrapper| wrapper.message.as_deref())
}

/// The stanza `type` of `message` (whatsmeow `send.go` getTypeFromMessage): `reaction` (also encrypted
/// reactions), `poll` (creations and votes), `media` (anything with a [`media_type`]), else `text`, looking
/// through view-once, disappearing, document-with-caption and animated-sticker wrappers.
pub fn stanza_type(message: &whatsapp_proto::e2e::Message) -> &'static str {
    if let Some(inner) = unwrapped(message) {
        return inner.map_or("text", stanza_type);
    }
    if message.reaction_message.is_some() || message.enc_reaction_message.is_some() {
        "reaction"
    } else if message.poll_creation_message.is_some() || message.poll_update_message.is_some() {
        "poll"
    } else if media_type(message).is_some() {
        "media"
    } else {
        "text"
    }
}

/// The `mediatype` of `message`'s `<enc>` (whatsmeow `send.go` getMediaTypeFromMessage), looking through the
/// same wrappers as [`stanza_type`]; `None` for text and everything else.
pub fn media_type(message: &whatsapp_proto::e2e::Message) -> Option<&'static str> {
    if let Some(inner) = unwrapped(message) {
        return inner.and_then(media_type);
    }
    let m = message;
    Some(
        if m.extended_text_message
            .as_ref()
            .is_some_and(|t| t.title.is_some())
        {
            "url"
        } else if m.image_message.is_some() {
            "image"
        } else if m.sticker_message.is_some() {
            "sticker"
        } else if m.document_message.is_some() {
            "document"
        } else if let Some(audio) = &m.audio_message {
            if audio.ptt == Some(true) { "ptt" } else { "audio" }
        } else if let Some(video) = &m.video_message {
            if video.gif_playback == Some(true) {
                "gif"
            } else {
                "video"
            }
        } else if m.contact_message.is_some() {
            "vcard"
        } else if m.contacts_array_message.is_some() {
            "contact_array"
        } else if m.list_message.is_some() {
            "list"
        } else if m.list_response_message.is_some() {
            "list_response"
        } else if m.buttons_response_message.is_some() {
            "buttons_response"
        } else if m.order_message.is_some() {
            "order"
        } else if m.product_message.is_some() {
            "product"
        } else if m.interactive_response_message.is_some() {
            "native_flow_response"
        } else {
            return None;
        },
    )
}

/// `<enc v="2" type="pkmsg|msg">`.
fn enc_node(message: &CiphertextMessage) -> Node {
    Node::new("enc")
        .attr("v", "2")
        .attr("type", message.kind())
        .bytes(message.serialized().to_vec())
}

/// The `<message>` stanza carrying `encrypted` to `to`, with the attributes of its message (`type`, `edit`, and
/// `mediatype` and `decrypt-fail` on every copy, as whatsmeow `send.go` prepareMessageNode sets them for a
/// one-to-one message). `device_identity` (this device's signed ADV identity, stored at pairing) is attached
/// when any copy is a `pkmsg`, so the recipients can check this device belongs to the account.
pub fn message_stanza(
    id: &str,
    to: &Jid,
    attrs: &StanzaAttrs,
    encrypted: &[Encrypted],
    device_identity: &[u8],
) -> Node {
    let participants = encrypted.iter().map(|copy| {
        Node::new("to")
            .attr("jid", copy.device.clone())
            .children([attrs.pairwise(enc_node(&copy.message), true)])
    });
    let mut children = vec![Node::new("participants").children(participants)];
    if encrypted
        .iter()
        .any(|copy| matches!(copy.message, CiphertextMessage::PreKey(_)))
    {
        children.push(Node::new("device-identity").bytes(device_identity.to_vec()));
    }
    let stanza = Node::new("message")
        .attr("id", id.to_owned())
        .attr("to", to.clone());
    attrs.stanza(stanza, children)
}

/// A peer message: `encrypted` for one device of this account (the phone, device 0), as whatsmeow `send.go`
/// preparePeerMessageNode sends it: `category="peer"`, `<meta appdata="default"/>` before the `<enc>`, and a
/// push priority for what the phone should act on at once (`high` for an app-state key request, `high_force`
/// with `privacy_sensitive` for an on-demand history request).
pub fn peer_stanza(
    id: &str,
    encrypted: &Encrypted,
    message: &whatsapp_proto::e2e::Message,
    device_identity: &[u8],
) -> Node {
    use whatsapp_proto::e2e::message::PeerDataOperationRequestType as Request;
    use whatsapp_proto::e2e::message::protocol_message::Type;
    let mut children = vec![
        Node::new("meta").attr("appdata", "default"),
        enc_node(&encrypted.message),
    ];
    if matches!(encrypted.message, CiphertextMessage::PreKey(_)) {
        children.push(Node::new("device-identity").bytes(device_identity.to_vec()));
    }
    let stanza = Node::new("message")
        .attr("id", id.to_owned())
        .attr("to", encrypted.device.clone())
        .attr("type", "text")
        .attr("category", "peer");
    let protocol = message.protocol_message.as_deref();
    let request = protocol
        .and_then(|p| p.peer_data_operation_request_message.as_ref())
        .map(|r| r.peer_data_operation_request_type());
    let stanza = if protocol.is_some_and(|p| p.r#type() == Type::AppStateSyncKeyRequest) {
        stanza.attr("push_priority", "high")
    } else if request == Some(Request::HistorySyncOnDemand) {
        stanza
            .attr("push_priority", "high_force")
            .attr("privacy_sensitive", "1")
    } else {
        stanza
    };
    stanza.children(children)
}

/// The kind of an `<enc>` payload.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum EncKind {
    /// `pkmsg`: a PreKeySignalMessage (first message of a session).
    PreKey,
    /// `msg`: a SignalMessage.
    Whisper,
    /// `skmsg`: a group SenderKeyMessage.
    SenderKey,
    /// Anything else (`msmsg`...), not handled here.
    Other(String),
}

/// One `<enc>` child of an incoming message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EncPayload {
    /// Its type.
    pub kind: EncKind,
    /// The `v` attribute (2: a padded `Message` protobuf).
    pub version: u32,
    /// The ciphertext.
    pub ciphertext: Bytes,
}

/// What an incoming `<message>` says about itself, and its encrypted payloads.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IncomingMessage {
    /// The message id.
    pub id: String,
    /// The chat: the sender's user for a direct message, the group for a group message.
    pub chat: Jid,
    /// The sending device.
    pub sender: Jid,
    /// The sending device under its other address, when the server names it: the LID device of a sender named
    /// by phone number (`sender_lid`, `participant_lid`) or the phone-number device of a sender named by LID
    /// (`sender_pn`, `participant_pn`). Without a device number of its own it gets the sender's.
    pub sender_alt: Option<Jid>,
    /// Whether the chat is a group.
    pub is_group: bool,
    /// The server timestamp, unix seconds.
    pub timestamp: i64,
    /// The sender's push name, when the server sends it.
    pub push_name: Option<String>,
    /// The `type` attribute (`text`, `media`, `reaction`, `poll`...).
    pub kind: String,
    /// The `<enc>` payloads, in order.
    pub payloads: Vec<EncPayload>,
}

impl IncomingMessage {
    /// Reads a `<message>` stanza.
    pub fn parse(node: &Node) -> Result<IncomingMessage, ResponseError> {
        let from = node
            .jid_attr("from")
            .map_err(|_| ResponseError::Missing("from"))?;
        let is_group = from.is_group();
        let shared_chat = is_group || from.is_status_broadcast();
        let (chat, sender) = if shared_chat {
            let participant = node
                .jid_attr("participant")
                .map_err(|_| ResponseError::Missing("participant"))?;
            (from, participant)
        } else {
            // A copy of this account's own message carries the chat as `recipient` (whatsmeow `message.go`
            // parseMessageSource); it names the chat even when the copy does not decrypt.
            let chat = match node.optional_jid_attr("recipient") {
                Ok(Some(recipient)) => recipient.to_non_ad(),
                _ => from.to_non_ad(),
            };
            (chat, from)
        };
        let alt_attr = match (shared_chat, sender.server() == Jid::LID_SERVER) {
            (true, true) => "participant_pn",
            (true, false) => "participant_lid",
            (false, true) => "sender_pn",
            (false, false) => "sender_lid",
        };
        // Only a hint: a malformed or mismatched one is ignored rather than costing the message.
        let sender_alt = node
            .optional_jid_attr(alt_attr)
            .ok()
            .flatten()
            .filter(|alt| {
                let expected = if sender.server() == Jid::LID_SERVER {
                    Jid::DEFAULT_USER_SERVER
                } else {
                    Jid::LID_SERVER
                };
                alt.server() == expected && !alt.user().is_empty()
            })
            .map(|alt| match alt.device() {
                0 => Jid::with_device(alt.user(), alt.server(), sender.device()),
                _ => alt,
            });
        let payloads = node
            .children_by_tag("enc")
            .map(|enc| {
                let kind = match enc.optional_str_attr("type") {
                    Some("pkmsg") => EncKind::PreKey,
                    Some("msg") => EncKind::Whisper,
                    Some("skmsg") => EncKind::SenderKey,
                    other => EncKind::Other(other.unwrap_or_default().to_owned()),
                };
                Ok(EncPayload {
                    kind,
                    version: enc
                        .optional_str_attr("v")
                        .and_then(|v| v.parse().ok())
                        .unwrap_or(2),
                    ciphertext: enc
                        .content_bytes()
                        .cloned()
                        .ok_or(ResponseError::Missing("enc content"))?,
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(IncomingMessage {
            id: node
                .str_attr("id")
                .map_err(|_| ResponseError::Missing("id"))?
                .to_owned(),
            chat,
            sender,
            sender_alt,
            is_group,
            timestamp: node.optional_i64_attr("t").ok().flatten().unwrap_or(0),
            push_name: node.optional_str_attr("notify").map(str::to_owned),
            kind: node.optional_str_attr("type").unwrap_or_default().to_owned(),
            payloads,
        })
    }
}

/// The key under which a decrypted payload is remembered (protocol-facts §3.7, decrypt buffer): SHA-256 over the
/// ciphertext, the kind, the sender and the chat, each separated by a zero byte. A redelivered message has the same
/// key, so it is recognised without decrypting it again.
pub fn payload_hash(sender: &Jid, chat: &Jid, payload: &EncPayload) -> [u8; 32] {
    let kind = match &payload.kind {
        EncKind::PreKey => "prekey",
        EncKind::Whisper => "normal",
        EncKind::SenderKey => "senderkey",
        EncKind::Other(other) => other.as_str(),
    };
    let mut hasher = Sha256::new();
    hasher.update(&payload.ciphertext);
    hasher.update([0]);
    hasher.update(kind.as_bytes());
    hasher.update([0]);
    hasher.update(sender.to_string().as_bytes());
    hasher.update([0]);
    hasher.update(chat.to_string().as_bytes());
    hasher.update([0, 0]);
    hasher.finalize().into()
}

/// Decrypts a `pkmsg` or `msg` payload from `sender` and strips the padding (version 2 payloads are padded,
/// protocol-facts §3.5). The session changes are staged; commit them before acknowledging.
pub async fn decrypt<A: AccountStore>(
    stage: &StagedSignalStore<'_, A>,
    sender: &Jid,
    payload: &EncPayload,
    rng: &mut (impl RngCore + CryptoRng + Send),
) -> Result<Vec<u8>, whatsapp_signal::Error> {
    let address = protocol_address(sender);
    let padded = match payload.kind {
        EncKind::PreKey => {
            let message = PreKeySignalMessage::deserialize(&payload.ciphertext)?;
            whatsapp_signal::store::decrypt_pre_key(stage, &address, &message, rng).await?
        }
        EncKind::Whisper => {
            let message = SignalMessage::deserialize(&payload.ciphertext)?;
            whatsapp_signal::store::decrypt(stage, &address, &message, rng).await?
        }
        EncKind::SenderKey | EncKind::Other(_) => {
            return Err(whatsapp_signal::Error::Malformed {
                what: "enc type for a pairwise session",
            });
        }
    };
    if payload.version == 3 {
        return Ok(padded);
    }
    Ok(padding::unpad(&padded)?.to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::executor::block_on;
    use rand::SeedableRng;
    use rand::rngs::StdRng;
    use whatsapp_proto::ProtoMessage;
    use whatsapp_proto::e2e::Message;
    use whatsapp_store::{MemoryBackend, SessionStore};

    use crate::testing::{bundle, device_with_prekey};

    #[test]
    fn message_ids_follow_the_web_format() {
        let id = message_id(1_700_000_000, Some("15551234567"), &[7; 16]);
        assert_eq!(id.len(), 22);
        assert!(id.starts_with("3EB0"));
        assert!(
            id[4..]
                .chars()
                .all(|c| c.is_ascii_digit() || ('A'..='F').contains(&c))
        );
        let mut hasher = Sha256::new();
        hasher.update(1_700_000_000u64.to_be_bytes());
        hasher.update(b"15551234567@c.us");
        hasher.update([7; 16]);
        let hash = hasher.finalize();
        let expected: String = hash[..9].iter().map(|b| format!("{b:02X}")).collect();
        assert_eq!(&id[4..], expected);
        assert_ne!(id, message_id(1_700_000_000, Some("15551234567"), &[8; 16]));
    }

    /// What the server does with `<participants>`: the copy for `device`, as the stanza that device receives.
    fn deliver(sent: &Node, device: &Jid, from: &Jid) -> Node {
        let copy = sent
            .child("participants")
            .unwrap()
            .children_by_tag("to")
            .find(|to| &to.jid_attr("jid").unwrap() == device)
            .unwrap();
        Node::new("message")
            .attr("from", from.clone())
            .attr("id", sent.str_attr("id").unwrap().to_owned())
            .attr("type", "text")
            .attr("t", "1700000000")
            .attr("notify", "Alice")
            .children([copy.child("enc").unwrap().clone()])
    }

    #[test]
    fn a_message_reaches_every_device_and_decrypts() {
        block_on(async {
            let mut rng = StdRng::seed_from_u64(21);
            let backend = MemoryBackend::new();
            let (alice, alice_device) = device_with_prekey(&backend, &mut rng).await;
            let (bob_phone, bob_phone_device) = device_with_prekey(&backend, &mut rng).await;
            let (bob_web, bob_web_device) = device_with_prekey(&backend, &mut rng).await;
            let alice_jid = Jid::with_device("111", Jid::LID_SERVER, 3);
            let bob = Jid::new("222", Jid::LID_SERVER);
            let bob_devices = [
                Jid::with_device("222", Jid::LID_SERVER, 0),
                Jid::with_device("222", Jid::LID_SERVER, 5),
            ];

            let stage = StagedSignalStore::new(&alice, &alice_device);
            for (device, (account, keys)) in bob_devices
                .iter()
                .zip([(&bob_phone, &bob_phone_device), (&bob_web, &bob_web_device)])
            {
                whatsapp_signal::store::process_bundle(
                    &stage,
                    &protocol_address(device),
                    &bundle(account, keys).await,
                    &mut rng,
                )
                .await
                .unwrap();
            }
            let message = Message {
                conversation: Some("hello bob".to_owned()),
                ..Default::default()
            };
            let encrypted = encrypt_for_devices(&stage, &bob_devices, &message.encode_to_vec(), &mut rng)
                .await
                .unwrap();
            stage.commit().await.unwrap();
            let id = message_id(1_700_000_000, Some("111"), &[1; 16]);
            let stanza = message_stanza(
                &id,
                &bob,
                &StanzaAttrs::of(&Default::default()),
                &encrypted,
                b"signed identity",
            );
            assert_eq!(stanza.child("participants").unwrap().child_nodes().len(), 2);
            assert_eq!(
                stanza
                    .child("device-identity")
                    .unwrap()
                    .content_bytes()
                    .unwrap()
                    .as_ref(),
                b"signed identity"
            );

            for (device, (account, keys)) in bob_devices
                .iter()
                .zip([(&bob_phone, &bob_phone_device), (&bob_web, &bob_web_device)])
            {
                let received = IncomingMessage::parse(&deliver(&stanza, device, &alice_jid)).unwrap();
                assert_eq!(received.id, id);
                assert_eq!(received.sender, alice_jid);
                assert_eq!(received.chat, alice_jid.to_non_ad());
                assert_eq!(received.push_name.as_deref(), Some("Alice"));
                assert_eq!(received.payloads[0].kind, EncKind::PreKey);
                let stage = StagedSignalStore::new(account, keys);
                let plaintext = decrypt(&stage, &received.sender, &received.payloads[0], &mut rng)
                    .await
                    .unwrap();
                stage.commit().await.unwrap();
                assert_eq!(Message::decode(plaintext.as_slice()).unwrap(), message);
                assert!(
                    account
                        .session(&alice_jid.signal_address())
                        .await
                        .unwrap()
                        .is_some()
                );
            }

            // The second message to a device that answered nothing yet is still a pkmsg; after a reply it is a msg.
            let stage = StagedSignalStore::new(&bob_phone, &bob_phone_device);
            let reply = encrypt_for_devices(&stage, std::slice::from_ref(&alice_jid), b"x", &mut rng)
                .await
                .unwrap();
            stage.commit().await.unwrap();
            let reply_stanza = message_stanza(
                "r1",
                &alice_jid.to_non_ad(),
                &StanzaAttrs::of(&Default::default()),
                &reply,
                b"",
            );
            assert!(
                reply_stanza.child("device-identity").is_none(),
                "a msg needs no identity"
            );
            let received =
                IncomingMessage::parse(&deliver(&reply_stanza, &alice_jid, &bob_devices[0])).unwrap();
            assert_eq!(received.payloads[0].kind, EncKind::Whisper);
            let stage = StagedSignalStore::new(&alice, &alice_device);
            assert_eq!(
                decrypt(&stage, &received.sender, &received.payloads[0], &mut rng)
                    .await
                    .unwrap(),
                b"x"
            );
        });
    }

    #[test]
    fn payload_hash_names_one_delivery() {
        let sender = Jid::with_device("1", Jid::LID_SERVER, 2);
        let chat = sender.to_non_ad();
        let payload = EncPayload {
            kind: EncKind::Whisper,
            version: 2,
            ciphertext: Bytes::from_static(b"ciphertext"),
        };
        let hash = payload_hash(&sender, &chat, &payload);
        assert_eq!(hash, payload_hash(&sender, &chat, &payload.clone()));
        let other_kind = EncPayload {
            kind: EncKind::PreKey,
            ..payload.clone()
        };
        assert_ne!(hash, payload_hash(&sender, &chat, &other_kind));
        let other_sender = Jid::with_device("1", Jid::LID_SERVER, 3);
        assert_ne!(hash, payload_hash(&other_sender, &chat, &payload));
    }

    #[test]
    fn group_messages_name_chat_and_participant() {
        let group = Jid::new("123-456", Jid::GROUP_SERVER);
        let sender = Jid::with_device("222", Jid::LID_SERVER, 5);
        let node = Node::new("message")
            .attr("from", group.clone())
            .attr("participant", sender.clone())
            .attr("id", "m")
            .attr("type", "text")
            .children([Node::new("enc")
                .attr("v", "2")
                .attr("type", "skmsg")
                .bytes(vec![1, 2])]);
        let parsed = IncomingMessage::parse(&node).unwrap();
        assert!(parsed.is_group);
        assert_eq!(parsed.chat, group);
        assert_eq!(parsed.sender, sender);
        assert_eq!(parsed.payloads[0].kind, EncKind::SenderKey);
        let without_participant = Node::new("message").attr("from", group).attr("id", "m");
        assert_eq!(
            IncomingMessage::parse(&without_participant),
            Err(ResponseError::Missing("participant"))
        );
        let empty_enc = Node::new("message")
            .attr("from", sender)
            .attr("id", "m")
            .children([Node::new("enc").attr("type", "msg")]);
        assert_eq!(
            IncomingMessage::parse(&empty_enc),
            Err(ResponseError::Missing("enc content"))
        );
    }

    #[test]
    fn the_senders_other_address_is_read_for_each_addressing() {
        let pn = |device| Jid::with_device("15550001", Jid::DEFAULT_USER_SERVER, device);
        let lid = |device| Jid::with_device("777", Jid::LID_SERVER, device);
        let group = Jid::new("123-456", Jid::GROUP_SERVER);
        let enc = || Node::new("enc").attr("type", "msg").bytes(vec![1]);
        let direct = |from: Jid| Node::new("message").attr("from", from).attr("id", "m");
        let in_group = |participant: Jid| {
            Node::new("message")
                .attr("from", group.clone())
                .attr("participant", participant)
                .attr("id", "m")
        };
        let cases = [
            // A LID sender with its phone number, whose device comes from the sender.
            (direct(lid(4)).attr("sender_pn", pn(0)), Some(pn(4))),
            (direct(pn(2)).attr("sender_lid", lid(0)), Some(lid(2))),
            (
                in_group(lid(3))
                    .attr("participant_pn", pn(0))
                    .attr("addressing_mode", "lid"),
                Some(pn(3)),
            ),
            (in_group(pn(1)).attr("participant_lid", lid(0)), Some(lid(1))),
            // An alternative with its own device keeps it.
            (direct(lid(4)).attr("sender_pn", pn(9)), Some(pn(9))),
            // The attribute for the other addressing, one on the wrong server, or garbage: ignored.
            (direct(lid(4)).attr("sender_lid", lid(0)), None),
            (direct(pn(2)).attr("sender_lid", pn(0)), None),
            (direct(pn(2)).attr("sender_lid", "not a jid@@"), None),
            (in_group(pn(1)).attr("participant_pn", pn(0)), None),
            (direct(pn(2)), None),
        ];
        for (node, expected) in cases {
            let parsed = IncomingMessage::parse(&node.children([enc()])).unwrap();
            assert_eq!(parsed.sender_alt, expected);
        }
    }

    fn wrapped(inner: Message) -> Option<Box<whatsapp_proto::e2e::message::FutureProofMessage>> {
        Some(Box::new(whatsapp_proto::e2e::message::FutureProofMessage {
            message: Some(Box::new(inner)),
        }))
    }

    #[test]
    fn stanza_attributes_look_through_wrappers() {
        use whatsapp_proto::e2e::message::{AudioMessage, ImageMessage, ReactionMessage, VideoMessage};
        let image = Message {
            image_message: Some(Box::<ImageMessage>::default()),
            ..Default::default()
        };
        let check = |message: &Message, kind: &str, media: Option<&str>, hide: bool| {
            let attrs = StanzaAttrs::of(message);
            assert_eq!((attrs.kind, attrs.media_type), (kind, media), "{message:?}");
            assert_eq!(attrs.hide_decrypt_failure, hide, "{message:?}");
        };
        check(&image, "media", Some("image"), false);
        let disappearing = Message {
            ephemeral_message: wrapped(image.clone()),
            ..Default::default()
        };
        check(&disappearing, "media", Some("image"), false);
        let view_once = Message {
            view_once_message_v2: wrapped(Message {
                video_message: Some(Box::new(VideoMessage {
                    gif_playback: Some(true),
                    ..Default::default()
                })),
                ..Default::default()
            }),
            ..Default::default()
        };
        check(&view_once, "media", Some("gif"), false);
        let voice = Message {
            audio_message: Some(Box::new(AudioMessage {
                ptt: Some(true),
                ..Default::default()
            })),
            ..Default::default()
        };
        check(&voice, "media", Some("ptt"), false);
        let empty_wrapper = Message {
            document_with_caption_message: Some(Box::default()),
            ..Default::default()
        };
        check(&empty_wrapper, "text", None, false);
        let reaction = Message {
            reaction_message: Some(ReactionMessage {
                text: Some("👍".to_owned()),
                ..Default::default()
            }),
            ..Default::default()
        };
        check(&reaction, "reaction", None, true);
        check(&Message::default(), "text", None, false);
    }

    #[test]
    fn one_to_one_copies_carry_media_type_and_decrypt_fail() {
        let attrs = StanzaAttrs {
            kind: "media",
            media_type: Some("image"),
            edit: Some(EditKind::Edit),
            hide_decrypt_failure: true,
            poll_type: None,
        };
        let enc = attrs.pairwise(Node::new("enc"), true);
        assert_eq!(enc.optional_str_attr("mediatype"), Some("image"));
        assert_eq!(enc.optional_str_attr("decrypt-fail"), Some("hide"));
        let group_copy = attrs.pairwise(Node::new("enc"), false);
        assert_eq!(group_copy.optional_str_attr("mediatype"), None);
        assert_eq!(attrs.skmsg(b"x").optional_str_attr("mediatype"), Some("image"));
        let stanza = attrs.stanza(Node::new("message"), Vec::new());
        assert_eq!(stanza.optional_str_attr("edit"), Some("1"));
        assert_eq!(stanza.optional_str_attr("type"), Some("media"));
    }

    #[test]
    fn a_copy_of_this_accounts_message_names_the_chat_by_recipient() {
        let own = Jid::with_device("111", Jid::LID_SERVER, 2);
        let chat = Jid::new("222", Jid::LID_SERVER);
        let copy = Node::new("message")
            .attr("from", own.clone())
            .attr("recipient", chat.clone())
            .attr("id", "A");
        let parsed = IncomingMessage::parse(&copy).unwrap();
        assert_eq!((parsed.chat, parsed.sender), (chat, own.clone()));
        let plain = Node::new("message").attr("from", own.clone()).attr("id", "B");
        assert_eq!(IncomingMessage::parse(&plain).unwrap().chat, own.to_non_ad());
    }

    #[test]
    fn garbage_ciphertext_is_an_error_not_a_panic() {
        block_on(async {
            let mut rng = StdRng::seed_from_u64(22);
            let backend = MemoryBackend::new();
            let (bob, bob_device) = device_with_prekey(&backend, &mut rng).await;
            let stage = StagedSignalStore::new(&bob, &bob_device);
            let sender = Jid::with_device("1", Jid::DEFAULT_USER_SERVER, 0);
            for kind in [EncKind::PreKey, EncKind::Whisper, EncKind::SenderKey] {
                let payload = EncPayload {
                    kind,
                    version: 2,
                    ciphertext: Bytes::from_static(&[0x33, 1, 2, 3]),
                };
                assert!(decrypt(&stage, &sender, &payload, &mut rng).await.is_err());
            }
            assert!(!stage.has_changes());
        });
    }
}
