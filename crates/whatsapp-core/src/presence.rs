//! Presence ("online", "last seen") and chat state ("typing...", "recording audio..."): the stanzas a device
//! sends and reads (whatsmeow `presence.go`, `types/presence.go`; protocol-facts §1 "Presence / chat state").
//!
//! Presence is account-wide: `<presence type="available" name="push name"/>` marks the account online, and
//! `<presence type="subscribe" to="jid">` asks the server to forward a contact's presence. Chat state is per chat:
//! `<chatstate to="jid"><composing media="audio"/></chatstate>`. Neither is acknowledged by the server.

use whatsapp_binary::{Jid, Node};

use crate::error::StanzaError;

/// This account's own presence.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Presence {
    /// Online.
    Available,
    /// Offline.
    Unavailable,
}

impl Presence {
    /// The wire value of the `type` attribute.
    pub fn as_str(self) -> &'static str {
        match self {
            Presence::Available => "available",
            Presence::Unavailable => "unavailable",
        }
    }
}

/// What a user is doing in a chat.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ChatState {
    /// Typing (or recording, with [`ChatMedia::Audio`]).
    Composing,
    /// Stopped typing.
    Paused,
    /// A state this engine does not know, by its tag (kept so that new states are not lost).
    Other(String),
}

impl ChatState {
    /// The tag of the chat state's child element.
    pub fn as_str(&self) -> &str {
        match self {
            ChatState::Composing => "composing",
            ChatState::Paused => "paused",
            ChatState::Other(tag) => tag,
        }
    }

    fn from_tag(tag: &str) -> ChatState {
        match tag {
            "composing" => ChatState::Composing,
            "paused" => ChatState::Paused,
            other => ChatState::Other(other.to_owned()),
        }
    }
}

/// What is being composed.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum ChatMedia {
    /// Text (no `media` attribute).
    #[default]
    Text,
    /// A voice message (`media="audio"`): "recording audio...".
    Audio,
    /// A media value this engine does not know.
    Other(String),
}

/// `<presence type=.. name=..>`: this account's presence, with the push name the server shows to contacts.
/// whatsmeow refuses to send it without a push name (`ErrNoPushName`), since contacts would see "-"; the caller
/// checks that.
pub fn presence_stanza(presence: Presence, push_name: &str) -> Node {
    Node::new("presence")
        .attr("type", presence.as_str())
        .attr("name", push_name.to_owned())
}

/// `<presence type="subscribe" to=..>`: asks for `user`'s presence updates, with our privacy token for them
/// when there is one (whatsmeow `SubscribePresence`).
pub fn subscribe_stanza(user: &Jid, privacy_token: Option<&[u8]>) -> Node {
    let node = Node::new("presence")
        .attr("type", "subscribe")
        .attr("to", user.to_non_ad());
    match privacy_token {
        Some(token) => node.children([Node::new("tctoken").bytes(token.to_vec())]),
        None => node,
    }
}

/// `<chatstate to=..><composing|paused [media="audio"]/></chatstate>`. The media attribute only goes with
/// `composing`, as whatsmeow sends it.
pub fn chat_state_stanza(chat: &Jid, state: &ChatState, media: &ChatMedia) -> Node {
    let mut child = Node::new(state.as_str().to_owned());
    if *state == ChatState::Composing {
        match media {
            ChatMedia::Text => {}
            ChatMedia::Audio => child = child.attr("media", "audio"),
            ChatMedia::Other(value) => child = child.attr("media", value.clone()),
        }
    }
    Node::new("chatstate").attr("to", chat.clone()).children([child])
}

/// A contact's presence, as the server forwards it to subscribers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PresenceUpdate {
    /// Whose presence.
    pub from: Jid,
    /// Whether they went offline.
    pub unavailable: bool,
    /// When they were last seen (unix seconds), when they went offline and their privacy settings share it.
    pub last_seen: Option<i64>,
}

impl PresenceUpdate {
    /// Reads `<presence from [type="unavailable"] [last="unix seconds" | "deny"]>`. An unknown `type` counts as
    /// available and `last="deny"` as no last-seen time (whatsmeow `handlePresence`).
    pub fn parse(node: &Node) -> Result<PresenceUpdate, StanzaError> {
        if node.tag != "presence" {
            return Err(StanzaError::Invalid("presence tag"));
        }
        let from = node.jid_attr("from")?;
        let unavailable = node.optional_str_attr("type") == Some("unavailable");
        let last_seen = match node.optional_str_attr("last") {
            None | Some("" | "deny") => None,
            Some(_) => node.optional_i64_attr("last")?,
        };
        Ok(PresenceUpdate {
            from,
            unavailable,
            last_seen,
        })
    }
}

/// A contact's chat state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChatPresence {
    /// The chat: the contact, or the group.
    pub chat: Jid,
    /// Who is typing: the contact (in a group, the `participant`).
    pub sender: Jid,
    /// What they are doing.
    pub state: ChatState,
    /// What they are composing.
    pub media: ChatMedia,
}

impl ChatPresence {
    /// Reads `<chatstate from [participant]><composing|paused [media]/></chatstate>`; the stanza must have exactly
    /// one child (whatsmeow `handleChatState`).
    pub fn parse(node: &Node) -> Result<ChatPresence, StanzaError> {
        if node.tag != "chatstate" {
            return Err(StanzaError::Invalid("chatstate tag"));
        }
        let chat = node.jid_attr("from")?;
        let sender = match node.optional_jid_attr("participant")? {
            Some(participant) => participant,
            None if chat.is_group() => return Err(StanzaError::Missing("participant of a group chat state")),
            None => chat.clone(),
        };
        let [child] = node.child_nodes() else {
            return Err(StanzaError::Invalid("number of chat state children"));
        };
        let media = match child.optional_str_attr("media") {
            None | Some("") => ChatMedia::Text,
            Some("audio") => ChatMedia::Audio,
            Some(other) => ChatMedia::Other(other.to_owned()),
        };
        Ok(ChatPresence {
            chat,
            sender,
            state: ChatState::from_tag(&child.tag),
            media,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alice() -> Jid {
        Jid::new("15551234567", Jid::DEFAULT_USER_SERVER)
    }

    #[test]
    fn own_presence_carries_type_and_push_name() {
        let node = presence_stanza(Presence::Unavailable, "Alice");
        assert_eq!(node.str_attr("type").unwrap(), "unavailable");
        assert_eq!(node.str_attr("name").unwrap(), "Alice");
    }

    #[test]
    fn subscribe_names_the_user_without_device_and_attaches_the_token() {
        let device = Jid::with_device("15551234567", Jid::DEFAULT_USER_SERVER, 4);
        let node = subscribe_stanza(&device, Some(b"tok"));
        assert_eq!(node.jid_attr("to").unwrap(), alice());
        assert_eq!(
            node.child("tctoken").unwrap().content_bytes().unwrap().as_ref(),
            b"tok"
        );
        assert!(subscribe_stanza(&alice(), None).child_nodes().is_empty());
    }

    #[test]
    fn chat_state_media_only_with_composing() {
        let node = chat_state_stanza(&alice(), &ChatState::Composing, &ChatMedia::Audio);
        assert_eq!(
            node.child("composing").unwrap().str_attr("media").unwrap(),
            "audio"
        );
        let node = chat_state_stanza(&alice(), &ChatState::Paused, &ChatMedia::Audio);
        assert!(node.child("paused").unwrap().attr_value("media").is_none());
    }

    #[test]
    fn presence_updates() {
        let online = Node::new("presence").attr("from", alice());
        assert_eq!(
            PresenceUpdate::parse(&online).unwrap(),
            PresenceUpdate {
                from: alice(),
                unavailable: false,
                last_seen: None
            }
        );
        let offline = Node::new("presence")
            .attr("from", alice())
            .attr("type", "unavailable")
            .attr("last", "1700000000");
        let update = PresenceUpdate::parse(&offline).unwrap();
        assert!(update.unavailable);
        assert_eq!(update.last_seen, Some(1_700_000_000));
        let denied = offline.clone().attr("last", "deny");
        assert_eq!(PresenceUpdate::parse(&denied).unwrap().last_seen, None);
    }

    #[test]
    fn bad_presence_is_an_error() {
        assert!(matches!(
            PresenceUpdate::parse(&Node::new("presence")),
            Err(StanzaError::Attr(_))
        ));
        let garbage = Node::new("presence").attr("from", alice()).attr("last", "soon");
        assert!(PresenceUpdate::parse(&garbage).is_err());
    }

    #[test]
    fn chat_presence_from_a_contact_and_in_a_group() {
        let node = chat_state_stanza(&alice(), &ChatState::Composing, &ChatMedia::Audio);
        // As forwarded: `from` instead of `to`.
        let mut forwarded = Node::new("chatstate").attr("from", alice());
        forwarded.content = node.content.clone();
        let parsed = ChatPresence::parse(&forwarded).unwrap();
        assert_eq!(parsed.chat, alice());
        assert_eq!(parsed.sender, alice());
        assert_eq!(parsed.state, ChatState::Composing);
        assert_eq!(parsed.media, ChatMedia::Audio);

        let group = Jid::new("123-456", Jid::GROUP_SERVER);
        let in_group = Node::new("chatstate")
            .attr("from", group.clone())
            .attr("participant", alice())
            .children([Node::new("typing-in-future")]);
        let parsed = ChatPresence::parse(&in_group).unwrap();
        assert_eq!((parsed.chat, parsed.sender), (group.clone(), alice()));
        assert_eq!(parsed.state, ChatState::Other("typing-in-future".into()));

        let no_participant = Node::new("chatstate")
            .attr("from", group)
            .children([Node::new("paused")]);
        assert!(ChatPresence::parse(&no_participant).is_err());
        let two = Node::new("chatstate")
            .attr("from", alice())
            .children([Node::new("paused"), Node::new("composing")]);
        assert_eq!(
            ChatPresence::parse(&two),
            Err(StanzaError::Invalid("number of chat state children"))
        );
    }
}
