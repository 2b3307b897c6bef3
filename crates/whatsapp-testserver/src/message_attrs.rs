//! What a `<message>` stanza must say about the message it carries, checked twice as WhatsApp would see it:
//! by the server, which reads only the attributes (`type`, `edit`, `<meta>`, and `mediatype` and `decrypt-fail`
//! on each `<enc>`) and refuses a stanza whose attributes contradict each other; and by the receiving phone,
//! which decrypts the copy and checks that the attributes describe the content (a disappearing image must say
//! `type="media"` and `mediatype="image"`, or the recipients' notifications say "text").
//!
//! The rules are whatsmeow's (`send.go` getTypeFromMessage, getMediaTypeFromMessage, getEditAttribute,
//! prepareMessageNode, preparePeerMessageNode and sendGroup; `retry.go` handleRetryReceipt for resends), written
//! here from those functions and not shared with the client.

use whatsapp_binary::Node;
use whatsapp_proto::e2e::Message;
use whatsapp_proto::e2e::message::protocol_message::Type as ProtocolType;

/// The stanza types a client sends.
const TYPES: [&str; 4] = ["text", "media", "reaction", "poll"];

/// The `mediatype` values of `<enc>`.
const MEDIA_TYPES: [&str; 16] = [
    "url",
    "image",
    "sticker",
    "document",
    "ptt",
    "audio",
    "gif",
    "video",
    "vcard",
    "contact_array",
    "list",
    "list_response",
    "buttons_response",
    "order",
    "product",
    "native_flow_response",
];

/// Checks the attributes of an outgoing `<message>` against each other. `group` says the message goes to a
/// group or `status@broadcast` (its `<participants>` copies then carry only the sender key and no
/// `mediatype`, the `skmsg` carries it).
pub(crate) fn check_stanza(message: &Node, group: bool) -> Result<(), String> {
    if message.optional_str_attr("category") == Some("peer") {
        let meta = message.child("meta").and_then(|m| m.optional_str_attr("appdata"));
        if meta != Some("default") {
            return Err("a peer message without <meta appdata=\"default\"/>".to_owned());
        }
        return Ok(());
    }
    let kind = message.optional_str_attr("type").unwrap_or_default();
    if !TYPES.contains(&kind) {
        return Err(format!("message type {kind:?} is none of {TYPES:?}"));
    }
    let poll = message
        .children_by_tag("meta")
        .find_map(|meta| meta.optional_str_attr("polltype"));
    match poll {
        Some("creation" | "vote") if kind == "poll" => {}
        None if kind != "poll" => {}
        _ => {
            return Err(format!("message type {kind:?} with <meta polltype={poll:?}>"));
        }
    }
    let single = message.child("participants").is_none();
    let pairwise: Vec<&Node> = match message.child("participants") {
        Some(participants) => participants
            .children_by_tag("to")
            .filter_map(|to| to.child("enc"))
            .collect(),
        None => message
            .children_by_tag("enc")
            .filter(|enc| enc.optional_str_attr("type") != Some("skmsg"))
            .collect(),
    };
    let skmsg = message
        .children_by_tag("enc")
        .find(|enc| enc.optional_str_attr("type") == Some("skmsg"));
    for enc in pairwise.iter().copied().chain(skmsg) {
        if let Some(fail) = enc.optional_str_attr("decrypt-fail")
            && fail != "hide"
        {
            return Err(format!("decrypt-fail={fail:?}, not \"hide\""));
        }
        if let Some(media) = enc.optional_str_attr("mediatype")
            && !MEDIA_TYPES.contains(&media)
        {
            return Err(format!("unknown mediatype {media:?}"));
        }
    }
    // Where the media type belongs: on every one-to-one copy and on a resent copy, on a group's skmsg only.
    let media_carriers: Vec<&Node> = match (group && !single, skmsg) {
        (true, Some(skmsg)) => {
            if let Some(copy) = pairwise.iter().find(|enc| enc.attr_value("mediatype").is_some()) {
                return Err(format!(
                    "mediatype {:?} on a group's pairwise copy (it belongs on the skmsg)",
                    copy.optional_str_attr("mediatype")
                ));
            }
            vec![skmsg]
        }
        _ => pairwise.clone(),
    };
    for enc in media_carriers {
        let media = enc.optional_str_attr("mediatype");
        if (kind == "media") != media.is_some() {
            return Err(format!(
                "message type {kind:?} with an <enc> of mediatype {media:?}"
            ));
        }
    }
    // Edits, revokes, reactions and votes hide a failed decryption; nothing else does. A resend (its <enc> has
    // a `count`) carries only the media type.
    let resend = pairwise.iter().any(|enc| enc.attr_value("count").is_some());
    if !resend {
        let hidden = message.attr_value("edit").is_some() || kind == "reaction" || poll == Some("vote");
        for enc in &pairwise {
            let hides = enc.optional_str_attr("decrypt-fail") == Some("hide");
            if hides != hidden {
                return Err(match hidden {
                    true => format!(
                        "a {kind} message (edit {:?}) without decrypt-fail=\"hide\" on each copy",
                        message.optional_str_attr("edit")
                    ),
                    false => format!("decrypt-fail=\"hide\" on a plain {kind} message"),
                });
            }
        }
    }
    Ok(())
}

/// What a copy's stanza said about it, for the phone that decrypts it.
#[derive(Clone, Debug, Default)]
pub(crate) struct Described {
    /// The stanza `type`.
    pub(crate) kind: String,
    /// The stanza `edit` attribute.
    pub(crate) edit: Option<String>,
    /// The `mediatype` of the `<enc>` that carries the content (the copy, or a group's skmsg).
    pub(crate) media_type: Option<String>,
    /// Whether this `<enc>` is one whose `mediatype` is checked (not a group's pairwise sender-key copy).
    pub(crate) carries_media_type: bool,
}

impl Described {
    /// The description a `<message>` gives of the content of `enc`.
    pub(crate) fn of(message: &Node, enc: &Node, group: bool) -> Described {
        let skmsg = enc.optional_str_attr("type") == Some("skmsg");
        Described {
            kind: message.optional_str_attr("type").unwrap_or("text").to_owned(),
            edit: message.optional_str_attr("edit").map(str::to_owned),
            media_type: enc.optional_str_attr("mediatype").map(str::to_owned),
            carries_media_type: !group || skmsg || enc.attr_value("count").is_some(),
        }
    }

    /// Checks the description against the decrypted `message` (a `DeviceSentMessage` is looked into). The
    /// copy of a message for the sender's own devices must also carry the message's `messageContextInfo` at
    /// its top (whatsmeow `send.go` marshalMessage), where WhatsApp's apps read the message secret that opens
    /// the poll votes and reactions answering it.
    pub(crate) fn check(&self, message: &Message) -> Result<(), String> {
        if let Some(inner) = message
            .device_sent_message
            .as_ref()
            .and_then(|dsm| dsm.message.as_deref())
        {
            let secret = |m: &Message| {
                m.message_context_info
                    .as_ref()
                    .and_then(|info| info.message_secret.clone())
            };
            if secret(inner).is_some() && secret(inner) != secret(message) {
                return Err(
                    "a DeviceSentMessage whose message secret is not in its top-level messageContextInfo"
                        .to_owned(),
                );
            }
        }
        let message = message
            .device_sent_message
            .as_ref()
            .and_then(|dsm| dsm.message.as_deref())
            .unwrap_or(message);
        let (kind, media) = classify(message);
        if self.kind != kind {
            return Err(format!(
                "the stanza says type {:?} for a {kind} message",
                self.kind
            ));
        }
        if self.carries_media_type && self.media_type.as_deref() != media {
            return Err(format!(
                "the <enc> says mediatype {:?} for content of mediatype {media:?}",
                self.media_type
            ));
        }
        if changes_another_message(message) && self.edit.is_none() {
            return Err("an edit, revoke or removed reaction without the stanza's edit attribute".to_owned());
        }
        Ok(())
    }
}

/// The stanza type and media type WhatsApp gives `message`: wrappers that only change the presentation are
/// looked through; reactions and polls have their own types; anything with a media type is `media`.
fn classify(message: &Message) -> (&'static str, Option<&'static str>) {
    let mut message = message;
    loop {
        let wrapped = [
            &message.ephemeral_message,
            &message.view_once_message,
            &message.view_once_message_v2,
            &message.view_once_message_v2_extension,
            &message.document_with_caption_message,
            &message.lottie_sticker_message,
        ]
        .into_iter()
        .find_map(Option::as_ref);
        match wrapped {
            Some(wrapper) => match wrapper.message.as_deref() {
                Some(inner) => message = inner,
                None => return ("text", None),
            },
            None => break,
        }
    }
    let media = media_of(message);
    let kind = if message.reaction_message.is_some() || message.enc_reaction_message.is_some() {
        "reaction"
    } else if message.poll_creation_message.is_some() || message.poll_update_message.is_some() {
        "poll"
    } else if media.is_some() {
        "media"
    } else {
        "text"
    };
    (kind, media)
}

/// The media type of unwrapped content, first match in whatsmeow's order.
fn media_of(m: &Message) -> Option<&'static str> {
    let link_preview = m
        .extended_text_message
        .as_ref()
        .is_some_and(|t| t.title.is_some());
    let ptt = m.audio_message.as_ref().map(|a| a.ptt == Some(true));
    let gif = m.video_message.as_ref().map(|v| v.gif_playback == Some(true));
    [
        (link_preview, "url"),
        (m.image_message.is_some(), "image"),
        (m.sticker_message.is_some(), "sticker"),
        (m.document_message.is_some(), "document"),
        (ptt == Some(true), "ptt"),
        (ptt == Some(false), "audio"),
        (gif == Some(true), "gif"),
        (gif == Some(false), "video"),
        (m.contact_message.is_some(), "vcard"),
        (m.contacts_array_message.is_some(), "contact_array"),
        (m.list_message.is_some(), "list"),
        (m.list_response_message.is_some(), "list_response"),
        (m.buttons_response_message.is_some(), "buttons_response"),
        (m.order_message.is_some(), "order"),
        (m.product_message.is_some(), "product"),
        (m.interactive_response_message.is_some(), "native_flow_response"),
    ]
    .into_iter()
    .find_map(|(present, media)| present.then_some(media))
}

/// Whether `message` changes an earlier one in a way the stanza's `edit` attribute must announce.
fn changes_another_message(message: &Message) -> bool {
    let protocol = message.protocol_message.as_deref().filter(|p| p.key.is_some());
    let revoke_or_edit = protocol.is_some_and(|p| {
        matches!(p.r#type(), ProtocolType::Revoke)
            || (p.r#type() == ProtocolType::MessageEdit && p.edited_message.is_some())
    });
    let removed_reaction = message
        .reaction_message
        .as_ref()
        .is_some_and(|r| r.text.as_deref().unwrap_or_default().is_empty());
    revoke_or_edit || removed_reaction
}

#[cfg(test)]
mod tests {
    use super::*;
    use whatsapp_proto::e2e::message::FutureProofMessage;

    fn enc(attrs: &[(&'static str, &'static str)]) -> Node {
        attrs
            .iter()
            .fold(
                Node::new("enc").attr("v", "2").attr("type", "msg"),
                |enc, (k, v)| enc.attr(*k, *v),
            )
            .bytes(vec![1])
    }

    fn one_to_one(kind: &str, copy: Node) -> Node {
        Node::new("message")
            .attr("type", kind.to_owned())
            .children([Node::new("participants").children([Node::new("to").children([copy])])])
    }

    #[test]
    fn the_server_refuses_attributes_that_contradict_each_other() {
        assert_eq!(check_stanza(&one_to_one("text", enc(&[])), false), Ok(()));
        assert_eq!(
            check_stanza(&one_to_one("media", enc(&[("mediatype", "image")])), false),
            Ok(())
        );
        for (kind, copy) in [
            ("media", enc(&[])),
            ("text", enc(&[("mediatype", "image")])),
            ("media", enc(&[("mediatype", "hologram")])),
            ("reaction", enc(&[])),
            ("text", enc(&[("decrypt-fail", "hide")])),
            ("chat", enc(&[])),
        ] {
            assert!(
                check_stanza(&one_to_one(kind, copy.clone()), false).is_err(),
                "{kind} {copy:?}"
            );
        }
        let edit = one_to_one("text", enc(&[])).attr("edit", "1");
        assert!(check_stanza(&edit, false).is_err());
        let poll = one_to_one("poll", enc(&[]));
        assert!(
            check_stanza(&poll, false).is_err(),
            "a poll without <meta polltype>"
        );
        let peer = Node::new("message").attr("category", "peer").children([enc(&[])]);
        assert!(check_stanza(&peer, false).is_err());
    }

    #[test]
    fn a_group_carries_the_media_type_on_its_skmsg() {
        let skmsg = Node::new("enc")
            .attr("type", "skmsg")
            .attr("mediatype", "video")
            .bytes(vec![1]);
        let good = Node::new("message").attr("type", "media").children([
            Node::new("participants").children([Node::new("to").children([enc(&[])])]),
            skmsg.clone(),
        ]);
        assert_eq!(check_stanza(&good, true), Ok(()));
        let bad = Node::new("message").attr("type", "media").children([
            Node::new("participants").children([Node::new("to").children([enc(&[("mediatype", "video")])])]),
            skmsg,
        ]);
        assert!(check_stanza(&bad, true).is_err());
    }

    #[test]
    fn the_phone_checks_the_description_against_the_content() {
        let image = Message {
            image_message: Some(Box::default()),
            ..Default::default()
        };
        let disappearing = Message {
            ephemeral_message: Some(Box::new(FutureProofMessage {
                message: Some(Box::new(image.clone())),
            })),
            ..Default::default()
        };
        let said = |kind: &str, media: Option<&str>| Described {
            kind: kind.to_owned(),
            edit: None,
            media_type: media.map(str::to_owned),
            carries_media_type: true,
        };
        assert_eq!(said("media", Some("image")).check(&disappearing), Ok(()));
        assert!(said("text", None).check(&disappearing).is_err());
        assert!(said("media", None).check(&disappearing).is_err());
    }
}
