//! Building messages: text with replies, mentions and disappearing timers, locations, contact cards, and the
//! messages that refer to other messages (reactions, edits and revokes), with the message key that names the
//! target and the stanza `edit` attribute that tells the server what kind of change it is (whatsmeow `send.go`).

use whatsapp_binary::{Jid, Node};
use whatsapp_proto::e2e::message::protocol_message::Type as ProtocolType;
use whatsapp_proto::e2e::message::{
    ContactMessage, ExtendedTextMessage, LocationMessage, ProtocolMessage, ReactionMessage,
};
use whatsapp_proto::e2e::{ContextInfo, KeepType, Message, MessageKey};

/// The message a reply quotes.
#[derive(Clone, Debug)]
pub struct Quote<'a> {
    /// Its id.
    pub id: &'a str,
    /// Its sender.
    pub sender: &'a Jid,
    /// Its content, shown above the reply.
    pub message: &'a Message,
}

/// What a text message carries besides its text.
#[derive(Clone, Debug, Default)]
pub struct TextOptions<'a> {
    /// The message it replies to.
    pub quote: Option<Quote<'a>>,
    /// Users it mentions (their `@number` should appear in the text).
    pub mentions: &'a [Jid],
    /// The chat's disappearing-message timer in seconds, when it has one: the message disappears after it.
    pub expiration: Option<u32>,
}

/// A text message. Plain text without options is a `conversation`; a reply, mentions or a timer make it an
/// `extendedTextMessage` with the `contextInfo` that carries them.
pub fn text(text: &str, options: &TextOptions<'_>) -> Message {
    if options.quote.is_none() && options.mentions.is_empty() && options.expiration.is_none() {
        return Message {
            conversation: Some(text.to_owned()),
            ..Default::default()
        };
    }
    let context = ContextInfo {
        stanza_id: options.quote.as_ref().map(|q| q.id.to_owned()),
        participant: options.quote.as_ref().map(|q| q.sender.to_non_ad().to_string()),
        quoted_message: options.quote.as_ref().map(|q| Box::new(q.message.clone())),
        mentioned_jid: options
            .mentions
            .iter()
            .map(|jid| jid.to_non_ad().to_string())
            .collect(),
        expiration: options.expiration,
        ..Default::default()
    };
    Message {
        extended_text_message: Some(Box::new(ExtendedTextMessage {
            text: Some(text.to_owned()),
            context_info: Some(Box::new(context)),
            ..Default::default()
        })),
        ..Default::default()
    }
}

/// A location pin, with an optional place name and address.
pub fn location(latitude: f64, longitude: f64, name: Option<&str>, address: Option<&str>) -> Message {
    Message {
        location_message: Some(Box::new(LocationMessage {
            degrees_latitude: Some(latitude),
            degrees_longitude: Some(longitude),
            name: name.map(str::to_owned),
            address: address.map(str::to_owned),
            ..Default::default()
        })),
        ..Default::default()
    }
}

/// A contact card for `name` with phone number `number` (digits, international form): a vCard 3.0 whose `waid`
/// lets WhatsApp offer to message the contact.
pub fn contact(name: &str, number: &str) -> Message {
    let digits: String = number.chars().filter(char::is_ascii_digit).collect();
    let escaped = name
        .replace('\\', "\\\\")
        .replace(';', "\\;")
        .replace(',', "\\,")
        .replace('\n', " ");
    let vcard =
        format!("BEGIN:VCARD\nVERSION:3.0\nFN:{escaped}\nTEL;type=CELL;waid={digits}:+{digits}\nEND:VCARD");
    Message {
        contact_message: Some(Box::new(ContactMessage {
            display_name: Some(name.to_owned()),
            vcard: Some(vcard),
            ..Default::default()
        })),
        ..Default::default()
    }
}

/// The `edit` attribute of a `<message>` stanza: what kind of change to an earlier message it carries.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum EditKind {
    /// `1`: the sender edited the message.
    Edit,
    /// `2`: a message was pinned or unpinned in the chat.
    PinInChat,
    /// `7`: the sender deleted the message for everyone (also a removed reaction).
    SenderRevoke,
    /// `8`: a group admin deleted someone's message.
    AdminRevoke,
    /// Any other value.
    Other(String),
}

impl EditKind {
    /// The attribute value.
    pub fn as_attr(&self) -> &str {
        match self {
            EditKind::Edit => "1",
            EditKind::PinInChat => "2",
            EditKind::SenderRevoke => "7",
            EditKind::AdminRevoke => "8",
            EditKind::Other(other) => other,
        }
    }

    /// Reads the attribute of an incoming stanza; `None` when absent (an ordinary message).
    pub fn of(stanza: &Node) -> Option<EditKind> {
        EditKind::from_attr(stanza.optional_str_attr("edit")?)
    }

    /// The kind an `edit` attribute value names; `None` for the empty value.
    pub fn from_attr(value: &str) -> Option<EditKind> {
        Some(match value {
            "" => return None,
            "1" => EditKind::Edit,
            "2" => EditKind::PinInChat,
            "7" => EditKind::SenderRevoke,
            "8" => EditKind::AdminRevoke,
            other => EditKind::Other(other.to_owned()),
        })
    }

    /// The attribute an outgoing message needs, if any (whatsmeow `send.go` getEditAttribute): edits and
    /// revokes (also inside an `editedMessage` wrapper), a removed reaction, an undone keep-in-chat of this
    /// account's message, and pins.
    pub fn for_message(message: &Message) -> Option<EditKind> {
        if let Some(inner) = message.edited_message.as_ref().and_then(|e| e.message.as_deref()) {
            return EditKind::for_message(inner);
        }
        if let Some(protocol) = message.protocol_message.as_deref()
            && protocol.key.is_some()
        {
            return match protocol.r#type() {
                ProtocolType::Revoke if protocol.key.as_ref().and_then(|k| k.from_me) == Some(true) => {
                    Some(EditKind::SenderRevoke)
                }
                ProtocolType::Revoke => Some(EditKind::AdminRevoke),
                ProtocolType::MessageEdit if protocol.edited_message.is_some() => Some(EditKind::Edit),
                _ => None,
            };
        }
        if let Some(reaction) = message.reaction_message.as_ref() {
            return reaction
                .text
                .as_deref()
                .unwrap_or_default()
                .is_empty()
                .then_some(EditKind::SenderRevoke);
        }
        if let Some(keep) = message.keep_in_chat_message.as_ref() {
            let own = keep.key.as_ref().and_then(|k| k.from_me) == Some(true);
            return (own && keep.keep_type == Some(KeepType::UndoKeepForAll as i32))
                .then_some(EditKind::SenderRevoke);
        }
        message.pin_in_chat_message.as_ref().map(|_| EditKind::PinInChat)
    }
}

/// The key naming message `id` in `chat`, sent by `sender` (`None` or one of `own`: this account).
pub fn message_key(chat: &Jid, sender: Option<&Jid>, id: &str, own: &[&Jid]) -> MessageKey {
    let from_me = sender.is_none_or(|sender| own.iter().any(|own| own.user() == sender.user()));
    let participant = match sender {
        Some(sender) if !(from_me || chat.is_pn() || chat.is_lid()) => Some(sender.to_non_ad().to_string()),
        _ => None,
    };
    MessageKey {
        remote_jid: Some(chat.to_string()),
        from_me: Some(from_me),
        id: Some(id.to_owned()),
        participant,
    }
}

/// A reaction to a message; an empty `emoji` removes an earlier reaction.
pub fn reaction(key: MessageKey, emoji: &str, unix_millis: i64) -> Message {
    Message {
        reaction_message: Some(ReactionMessage {
            key: Some(key),
            text: Some(emoji.to_owned()),
            grouping_key: None,
            sender_timestamp_ms: Some(unix_millis),
        }),
        ..Default::default()
    }
}

/// Deletes a message for everyone (the sender's own, or, as a group admin, someone else's).
pub fn revoke(key: MessageKey) -> Message {
    Message {
        protocol_message: Some(Box::new(ProtocolMessage {
            key: Some(key),
            r#type: Some(ProtocolType::Revoke as i32),
            ..Default::default()
        })),
        ..Default::default()
    }
}

/// Replaces the content of this account's message `id` in `chat` with `new`.
pub fn edit(chat: &Jid, id: &str, new: Message, unix_millis: i64) -> Message {
    Message {
        protocol_message: Some(Box::new(ProtocolMessage {
            key: Some(MessageKey {
                remote_jid: Some(chat.to_string()),
                from_me: Some(true),
                id: Some(id.to_owned()),
                participant: None,
            }),
            r#type: Some(ProtocolType::MessageEdit as i32),
            edited_message: Some(Box::new(new)),
            timestamp_ms: Some(unix_millis),
            ..Default::default()
        })),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn text_grows_a_context_only_when_needed() {
        use super::*;
        let plain = text("hi", &TextOptions::default());
        assert_eq!(plain.conversation.as_deref(), Some("hi"));
        let bob: Jid = "15550002222:4@s.whatsapp.net".parse().unwrap();
        let quoted = text("original", &TextOptions::default());
        let reply = text(
            "@15550002222 yes",
            &TextOptions {
                quote: Some(Quote {
                    id: "3EB0A",
                    sender: &bob,
                    message: &quoted,
                }),
                mentions: std::slice::from_ref(&bob),
                expiration: Some(86_400),
            },
        );
        let extended = reply.extended_text_message.unwrap();
        let context = extended.context_info.unwrap();
        assert_eq!(extended.text.as_deref(), Some("@15550002222 yes"));
        assert_eq!(context.stanza_id.as_deref(), Some("3EB0A"));
        assert_eq!(context.participant.as_deref(), Some("15550002222@s.whatsapp.net"));
        assert_eq!(context.quoted_message.as_deref(), Some(&quoted));
        assert_eq!(
            context.mentioned_jid,
            vec!["15550002222@s.whatsapp.net".to_owned()]
        );
        assert_eq!(context.expiration, Some(86_400));
    }

    #[test]
    fn locations_and_contact_cards() {
        use super::*;
        let pin = location(52.37, 4.89, Some("Dam"), None).location_message.unwrap();
        assert_eq!(
            (pin.degrees_latitude, pin.name.as_deref()),
            (Some(52.37), Some("Dam"))
        );
        let card = contact("Ann; Lee", "+1 555 000 1111").contact_message.unwrap();
        let vcard = card.vcard.unwrap();
        assert!(vcard.contains("FN:Ann\\; Lee\n"), "{vcard}");
        assert!(vcard.contains("waid=15550001111:+15550001111"), "{vcard}");
    }

    use super::*;

    #[test]
    fn keys_name_the_author() {
        let me = Jid::with_device("111", Jid::DEFAULT_USER_SERVER, 2);
        let bob = Jid::with_device("222", Jid::DEFAULT_USER_SERVER, 1);
        let direct = Jid::new("222", Jid::DEFAULT_USER_SERVER);
        let group = Jid::new("1-2", Jid::GROUP_SERVER);
        let mine = message_key(&direct, None, "A", &[&me]);
        assert_eq!((mine.from_me, mine.participant), (Some(true), None));
        let theirs = message_key(&direct, Some(&bob), "B", &[&me]);
        assert_eq!((theirs.from_me, theirs.participant), (Some(false), None));
        let in_group = message_key(&group, Some(&bob), "C", &[&me]);
        assert_eq!(in_group.participant.as_deref(), Some("222@s.whatsapp.net"));
        assert_eq!(in_group.remote_jid.as_deref(), Some("1-2@g.us"));
    }

    #[test]
    fn edit_attributes_follow_the_content() {
        let me = Jid::new("111", Jid::DEFAULT_USER_SERVER);
        let chat = Jid::new("222", Jid::DEFAULT_USER_SERVER);
        let own_key = message_key(&chat, None, "A", &[&me]);
        assert_eq!(
            EditKind::for_message(&revoke(own_key.clone())),
            Some(EditKind::SenderRevoke)
        );
        let group = Jid::new("1-2", Jid::GROUP_SERVER);
        let other = message_key(&group, Some(&chat), "B", &[&me]);
        assert_eq!(EditKind::for_message(&revoke(other)), Some(EditKind::AdminRevoke));
        let text = Message {
            conversation: Some("new".to_owned()),
            ..Default::default()
        };
        assert_eq!(
            EditKind::for_message(&edit(&chat, "A", text.clone(), 1)),
            Some(EditKind::Edit)
        );
        assert_eq!(EditKind::for_message(&reaction(own_key.clone(), "👍", 1)), None);
        assert_eq!(
            EditKind::for_message(&reaction(own_key, "", 1)),
            Some(EditKind::SenderRevoke)
        );
        assert_eq!(EditKind::for_message(&text), None);
        for kind in [
            EditKind::Edit,
            EditKind::SenderRevoke,
            EditKind::AdminRevoke,
            EditKind::Other("3".into()),
        ] {
            let stanza = Node::new("message").attr("edit", kind.as_attr().to_owned());
            assert_eq!(EditKind::of(&stanza), Some(kind));
        }
        assert_eq!(EditKind::of(&Node::new("message")), None);
    }
}
