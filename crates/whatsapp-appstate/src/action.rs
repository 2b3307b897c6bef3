//! Typed actions: what a mutation's index and value mean.

use whatsapp_binary::{Jid, JidParseError};
use whatsapp_proto::sync_action::SyncActionValue;
use whatsapp_proto::sync_action::sync_action_value::{
    ArchiveChatAction, ClearChatAction, ContactAction, DeleteChatAction, DeleteMessageForMeAction,
    LabelAssociationAction, LabelEditAction, MarkChatAsReadAction, MuteAction, PinAction, PushNameSetting,
    StarAction, SyncActionMessageRange,
};

use crate::encode::{MutationInfo, PatchInfo};
use crate::state::{CollectionName, Operation};

/// Index names (the first index element) of the typed actions, as whatsmeow's `appstate/keys.go` lists them.
mod index {
    pub(super) const CONTACT: &str = "contact";
    pub(super) const PUSH_NAME: &str = "setting_pushName";
    pub(super) const LOCALE: &str = "setting_locale";
    pub(super) const UNARCHIVE_CHATS: &str = "setting_unarchiveChats";
    pub(super) const MUTE: &str = "mute";
    pub(super) const PIN: &str = "pin_v1";
    pub(super) const ARCHIVE: &str = "archive";
    pub(super) const MARK_CHAT_AS_READ: &str = "markChatAsRead";
    pub(super) const STAR: &str = "star";
    pub(super) const DELETE_CHAT: &str = "deleteChat";
    pub(super) const CLEAR_CHAT: &str = "clearChat";
    pub(super) const DELETE_MESSAGE_FOR_ME: &str = "deleteMessageForMe";
    pub(super) const LABEL_EDIT: &str = "label_edit";
    pub(super) const LABEL_CHAT: &str = "label_jid";
    pub(super) const LABEL_MESSAGE: &str = "label_message";
}

/// A message an action points at: the index parameters `chat, id, fromMe ("1"/"0"), participant ("0" if none)`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct MessageRef {
    /// The chat the message is in.
    pub chat: Jid,
    /// The message id.
    pub id: String,
    /// Whether this account sent the message.
    pub from_me: bool,
    /// The sender in a group chat, when not this account.
    pub participant: Option<Jid>,
}

/// What a mutation means, decoded from its index and [`SyncActionValue`].
///
/// Missing value fields read as their protobuf defaults (`false`, empty), as the protocol treats them. An action
/// this crate does not type is [`Action::Other`]; its index and raw value stay in the [`Mutation`](crate::Mutation).
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum Action {
    /// `contact`: a contact's name as saved on the primary device.
    Contact {
        /// The contact.
        jid: Jid,
        /// The full name.
        full_name: Option<String>,
        /// The first name.
        first_name: Option<String>,
        /// The contact's LID, when the primary knows it.
        lid_jid: Option<Jid>,
        /// The contact's phone-number JID, when the index is a LID.
        pn_jid: Option<Jid>,
    },
    /// `setting_pushName`: this account's push name.
    PushName {
        /// The new push name.
        name: String,
    },
    /// `setting_locale`: the primary device's locale.
    Locale {
        /// The locale, e.g. `en_US`.
        locale: String,
    },
    /// `setting_unarchiveChats`: whether new messages unarchive a chat.
    UnarchiveChats {
        /// True when archived chats come back on a new message.
        unarchive: bool,
    },
    /// `mute`: a chat muted or unmuted.
    Mute {
        /// The chat.
        chat: Jid,
        /// Whether it is muted.
        muted: bool,
        /// When the mute ends (milliseconds since the epoch; -1 means forever).
        mute_end_ms: Option<i64>,
    },
    /// `pin_v1`: a chat pinned or unpinned.
    Pin {
        /// The chat.
        chat: Jid,
        /// Whether it is pinned.
        pinned: bool,
    },
    /// `archive`: a chat archived or unarchived.
    Archive {
        /// The chat.
        chat: Jid,
        /// Whether it is archived.
        archived: bool,
        /// The messages the action covers.
        range: Option<SyncActionMessageRange>,
    },
    /// `markChatAsRead`: a chat marked read or unread.
    MarkChatRead {
        /// The chat.
        chat: Jid,
        /// Whether it is read.
        read: bool,
        /// The messages the action covers.
        range: Option<SyncActionMessageRange>,
    },
    /// `star`: a message starred or unstarred.
    Star {
        /// The message.
        message: MessageRef,
        /// Whether it is starred.
        starred: bool,
    },
    /// `deleteChat`: a chat deleted.
    DeleteChat {
        /// The chat.
        chat: Jid,
        /// Whether its media was deleted too (index parameter `"1"`).
        delete_media: bool,
        /// The messages the action covers.
        range: Option<SyncActionMessageRange>,
    },
    /// `clearChat`: a chat's messages cleared.
    ClearChat {
        /// The chat.
        chat: Jid,
        /// Whether starred messages were cleared too.
        delete_starred: bool,
        /// Whether media was deleted too.
        delete_media: bool,
        /// The messages the action covers.
        range: Option<SyncActionMessageRange>,
    },
    /// `deleteMessageForMe`: a message deleted on this account's devices only.
    DeleteMessageForMe {
        /// The message.
        message: MessageRef,
        /// Whether its media was deleted too.
        delete_media: bool,
        /// The message's timestamp (seconds).
        message_timestamp: Option<i64>,
    },
    /// `label_edit`: a label created, renamed, recoloured or deleted.
    LabelEdit {
        /// The label id.
        label_id: String,
        /// The label's name.
        name: Option<String>,
        /// The label's colour index.
        color: Option<i32>,
        /// The id of the predefined label it derives from.
        predefined_id: Option<i32>,
        /// Whether the label was deleted.
        deleted: bool,
    },
    /// `label_jid`: a label added to or removed from a chat.
    LabelChat {
        /// The label id.
        label_id: String,
        /// The chat.
        chat: Jid,
        /// Whether the chat carries the label.
        labeled: bool,
    },
    /// `label_message`: a label added to or removed from a message.
    LabelMessage {
        /// The label id.
        label_id: String,
        /// The message.
        message: MessageRef,
        /// Whether the message carries the label.
        labeled: bool,
    },
    /// An action this crate does not type; its index and value are in the mutation.
    Other {
        /// The index name (first index element).
        name: String,
    },
}

/// Why a known action's index is malformed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum ActionError {
    /// The value is not a `SyncActionValue` protobuf.
    #[error("value does not decode: {0}")]
    Value(prost::DecodeError),
    /// The index is an empty array.
    #[error("empty index")]
    EmptyIndex,
    /// The index has fewer elements than the action needs.
    #[error("index of {action} has {got} elements, needs {needed}")]
    IndexTooShort {
        /// The action name.
        action: &'static str,
        /// The number of elements it needs.
        needed: usize,
        /// The number it has.
        got: usize,
    },
    /// A JID in the index or value does not parse.
    #[error("{action}: {source}")]
    Jid {
        /// The action name.
        action: &'static str,
        /// The parser's error.
        source: JidParseError,
    },
    /// A flag parameter is neither `"0"` nor `"1"`.
    #[error("{action}: flag {value:?} is neither \"0\" nor \"1\"")]
    Flag {
        /// The action name.
        action: &'static str,
        /// The flag's text.
        value: String,
    },
}

/// Reads index parameters for one action, with errors naming it.
struct Params<'a> {
    action: &'static str,
    index: &'a [String],
}

impl<'a> Params<'a> {
    fn new(action: &'static str, index: &'a [String], needed: usize) -> Result<Self, ActionError> {
        if index.len() < needed {
            return Err(ActionError::IndexTooShort {
                action,
                needed,
                got: index.len(),
            });
        }
        Ok(Self { action, index })
    }

    fn text(&self, at: usize) -> &'a str {
        self.index.get(at).map(String::as_str).unwrap_or_default()
    }

    fn jid(&self, at: usize) -> Result<Jid, ActionError> {
        parse_jid(self.action, self.text(at))
    }

    fn flag(&self, at: usize) -> Result<bool, ActionError> {
        match self.text(at) {
            "1" => Ok(true),
            "0" => Ok(false),
            other => Err(ActionError::Flag {
                action: self.action,
                value: other.to_owned(),
            }),
        }
    }

    /// A message reference from four parameters starting at `at`: chat, id, fromMe, participant.
    fn message(&self, at: usize) -> Result<MessageRef, ActionError> {
        let participant = match self.text(at + 3) {
            "0" | "" => None,
            other => Some(parse_jid(self.action, other)?),
        };
        Ok(MessageRef {
            chat: self.jid(at)?,
            id: self.text(at + 1).to_owned(),
            from_me: self.flag(at + 2)?,
            participant,
        })
    }
}

fn parse_jid(action: &'static str, text: &str) -> Result<Jid, ActionError> {
    text.parse().map_err(|source| ActionError::Jid { action, source })
}

fn optional_jid(action: &'static str, text: Option<&str>) -> Result<Option<Jid>, ActionError> {
    match text {
        None | Some("") => Ok(None),
        Some(text) => parse_jid(action, text).map(Some),
    }
}

fn flag_text(flag: bool) -> String {
    if flag { "1" } else { "0" }.to_owned()
}

impl MessageRef {
    fn index_params(&self) -> [String; 4] {
        [
            self.chat.to_string(),
            self.id.clone(),
            flag_text(self.from_me),
            self.participant
                .as_ref()
                .map_or_else(|| "0".to_owned(), Jid::to_string),
        ]
    }
}

impl Action {
    /// Decodes an action from a mutation's index and value.
    pub fn parse(index: &[String], value: Option<&SyncActionValue>) -> Result<Self, ActionError> {
        let name = index.first().ok_or(ActionError::EmptyIndex)?;
        let default_value = SyncActionValue::default();
        let value = value.unwrap_or(&default_value);
        let action = match name.as_str() {
            index::CONTACT => {
                let params = Params::new(index::CONTACT, index, 2)?;
                let contact = value.contact_action.clone().unwrap_or_default();
                Self::Contact {
                    jid: params.jid(1)?,
                    lid_jid: optional_jid(index::CONTACT, contact.lid_jid.as_deref())?,
                    pn_jid: optional_jid(index::CONTACT, contact.pn_jid.as_deref())?,
                    full_name: contact.full_name,
                    first_name: contact.first_name,
                }
            }
            index::PUSH_NAME => Self::PushName {
                name: value
                    .push_name_setting
                    .as_ref()
                    .and_then(|s| s.name.clone())
                    .unwrap_or_default(),
            },
            index::LOCALE => Self::Locale {
                locale: value
                    .locale_setting
                    .as_ref()
                    .and_then(|s| s.locale.clone())
                    .unwrap_or_default(),
            },
            index::UNARCHIVE_CHATS => Self::UnarchiveChats {
                unarchive: value
                    .unarchive_chats_setting
                    .as_ref()
                    .and_then(|s| s.unarchive_chats)
                    .unwrap_or_default(),
            },
            index::MUTE => {
                let params = Params::new(index::MUTE, index, 2)?;
                let mute = value.mute_action.as_ref();
                Self::Mute {
                    chat: params.jid(1)?,
                    muted: mute.and_then(|m| m.muted).unwrap_or_default(),
                    mute_end_ms: mute.and_then(|m| m.mute_end_timestamp),
                }
            }
            index::PIN => Self::Pin {
                chat: Params::new(index::PIN, index, 2)?.jid(1)?,
                pinned: value
                    .pin_action
                    .as_ref()
                    .and_then(|p| p.pinned)
                    .unwrap_or_default(),
            },
            index::ARCHIVE => {
                let archive = value.archive_chat_action.as_ref();
                Self::Archive {
                    chat: Params::new(index::ARCHIVE, index, 2)?.jid(1)?,
                    archived: archive.and_then(|a| a.archived).unwrap_or_default(),
                    range: archive.and_then(|a| a.message_range.clone()),
                }
            }
            index::MARK_CHAT_AS_READ => {
                let read = value.mark_chat_as_read_action.as_ref();
                Self::MarkChatRead {
                    chat: Params::new(index::MARK_CHAT_AS_READ, index, 2)?.jid(1)?,
                    read: read.and_then(|a| a.read).unwrap_or_default(),
                    range: read.and_then(|a| a.message_range.clone()),
                }
            }
            index::STAR => Self::Star {
                message: Params::new(index::STAR, index, 5)?.message(1)?,
                starred: value
                    .star_action
                    .as_ref()
                    .and_then(|s| s.starred)
                    .unwrap_or_default(),
            },
            index::DELETE_CHAT => {
                let params = Params::new(index::DELETE_CHAT, index, 2)?;
                Self::DeleteChat {
                    chat: params.jid(1)?,
                    // Older clients omit the media flag; it then means "keep media".
                    delete_media: index.len() > 2 && params.flag(2)?,
                    range: value
                        .delete_chat_action
                        .as_ref()
                        .and_then(|a| a.message_range.clone()),
                }
            }
            index::CLEAR_CHAT => {
                let params = Params::new(index::CLEAR_CHAT, index, 2)?;
                Self::ClearChat {
                    chat: params.jid(1)?,
                    delete_starred: index.len() > 2 && params.flag(2)?,
                    delete_media: index.len() > 3 && params.flag(3)?,
                    range: value
                        .clear_chat_action
                        .as_ref()
                        .and_then(|a| a.message_range.clone()),
                }
            }
            index::DELETE_MESSAGE_FOR_ME => {
                let delete = value.delete_message_for_me_action.as_ref();
                Self::DeleteMessageForMe {
                    message: Params::new(index::DELETE_MESSAGE_FOR_ME, index, 5)?.message(1)?,
                    delete_media: delete.and_then(|d| d.delete_media).unwrap_or_default(),
                    message_timestamp: delete.and_then(|d| d.message_timestamp),
                }
            }
            index::LABEL_EDIT => {
                let params = Params::new(index::LABEL_EDIT, index, 2)?;
                let edit = value.label_edit_action.clone().unwrap_or_default();
                Self::LabelEdit {
                    label_id: params.text(1).to_owned(),
                    name: edit.name,
                    color: edit.color,
                    predefined_id: edit.predefined_id,
                    deleted: edit.deleted.unwrap_or_default(),
                }
            }
            index::LABEL_CHAT => {
                let params = Params::new(index::LABEL_CHAT, index, 3)?;
                Self::LabelChat {
                    label_id: params.text(1).to_owned(),
                    chat: params.jid(2)?,
                    labeled: labeled(value),
                }
            }
            index::LABEL_MESSAGE => {
                let params = Params::new(index::LABEL_MESSAGE, index, 6)?;
                Self::LabelMessage {
                    label_id: params.text(1).to_owned(),
                    message: params.message(2)?,
                    labeled: labeled(value),
                }
            }
            other => Self::Other {
                name: other.to_owned(),
            },
        };
        Ok(action)
    }

    /// The collection, index, API version and value that encode this action as a SET mutation, stamped with
    /// `timestamp_ms`; `None` for actions this crate does not encode ([`Action::Locale`],
    /// [`Action::UnarchiveChats`], [`Action::Other`]).
    ///
    /// API versions and collections follow what the official clients send (whatsmeow `appstate/encode.go`).
    pub fn to_mutation(&self, timestamp_ms: i64) -> Option<(CollectionName, MutationInfo)> {
        let mut value = SyncActionValue {
            timestamp: Some(timestamp_ms),
            ..SyncActionValue::default()
        };
        let (collection, version, index) = match self {
            Self::Contact {
                jid,
                full_name,
                first_name,
                lid_jid,
                pn_jid,
            } => {
                value.contact_action = Some(ContactAction {
                    full_name: full_name.clone(),
                    first_name: first_name.clone(),
                    lid_jid: lid_jid.as_ref().map(Jid::to_string),
                    pn_jid: pn_jid.as_ref().map(Jid::to_string),
                    ..ContactAction::default()
                });
                (
                    CollectionName::CriticalUnblockLow,
                    2,
                    vec![index::CONTACT.to_owned(), jid.to_string()],
                )
            }
            Self::PushName { name } => {
                value.push_name_setting = Some(PushNameSetting {
                    name: Some(name.clone()),
                });
                (
                    CollectionName::CriticalBlock,
                    1,
                    vec![index::PUSH_NAME.to_owned()],
                )
            }
            Self::Mute {
                chat,
                muted,
                mute_end_ms,
            } => {
                value.mute_action = Some(MuteAction {
                    muted: Some(*muted),
                    mute_end_timestamp: *mute_end_ms,
                    ..MuteAction::default()
                });
                (
                    CollectionName::RegularHigh,
                    2,
                    vec![index::MUTE.to_owned(), chat.to_string()],
                )
            }
            Self::Pin { chat, pinned } => {
                value.pin_action = Some(PinAction {
                    pinned: Some(*pinned),
                });
                (
                    CollectionName::RegularLow,
                    5,
                    vec![index::PIN.to_owned(), chat.to_string()],
                )
            }
            Self::Archive {
                chat,
                archived,
                range,
            } => {
                value.archive_chat_action = Some(ArchiveChatAction {
                    archived: Some(*archived),
                    message_range: range.clone(),
                });
                (
                    CollectionName::RegularLow,
                    3,
                    vec![index::ARCHIVE.to_owned(), chat.to_string()],
                )
            }
            Self::MarkChatRead { chat, read, range } => {
                value.mark_chat_as_read_action = Some(MarkChatAsReadAction {
                    read: Some(*read),
                    message_range: range.clone(),
                });
                (
                    CollectionName::RegularLow,
                    3,
                    vec![index::MARK_CHAT_AS_READ.to_owned(), chat.to_string()],
                )
            }
            Self::Star { message, starred } => {
                value.star_action = Some(StarAction {
                    starred: Some(*starred),
                });
                let mut index = vec![index::STAR.to_owned()];
                index.extend(message.index_params());
                (CollectionName::RegularHigh, 2, index)
            }
            Self::DeleteChat {
                chat,
                delete_media,
                range,
            } => {
                value.delete_chat_action = Some(DeleteChatAction {
                    message_range: range.clone(),
                });
                (
                    CollectionName::RegularHigh,
                    6,
                    vec![
                        index::DELETE_CHAT.to_owned(),
                        chat.to_string(),
                        flag_text(*delete_media),
                    ],
                )
            }
            Self::ClearChat {
                chat,
                delete_starred,
                delete_media,
                range,
            } => {
                value.clear_chat_action = Some(ClearChatAction {
                    message_range: range.clone(),
                });
                (
                    CollectionName::RegularHigh,
                    6,
                    vec![
                        index::CLEAR_CHAT.to_owned(),
                        chat.to_string(),
                        flag_text(*delete_starred),
                        flag_text(*delete_media),
                    ],
                )
            }
            Self::DeleteMessageForMe {
                message,
                delete_media,
                message_timestamp,
            } => {
                value.delete_message_for_me_action = Some(DeleteMessageForMeAction {
                    delete_media: Some(*delete_media),
                    message_timestamp: *message_timestamp,
                });
                let mut index = vec![index::DELETE_MESSAGE_FOR_ME.to_owned()];
                index.extend(message.index_params());
                (CollectionName::RegularHigh, 3, index)
            }
            Self::LabelEdit {
                label_id,
                name,
                color,
                predefined_id,
                deleted,
            } => {
                value.label_edit_action = Some(LabelEditAction {
                    name: name.clone(),
                    color: *color,
                    predefined_id: *predefined_id,
                    deleted: Some(*deleted),
                    ..LabelEditAction::default()
                });
                (
                    CollectionName::Regular,
                    3,
                    vec![index::LABEL_EDIT.to_owned(), label_id.clone()],
                )
            }
            Self::LabelChat {
                label_id,
                chat,
                labeled,
            } => {
                value.label_association_action = Some(LabelAssociationAction {
                    labeled: Some(*labeled),
                });
                (
                    CollectionName::Regular,
                    3,
                    vec![index::LABEL_CHAT.to_owned(), label_id.clone(), chat.to_string()],
                )
            }
            Self::LabelMessage {
                label_id,
                message,
                labeled,
            } => {
                value.label_association_action = Some(LabelAssociationAction {
                    labeled: Some(*labeled),
                });
                let mut index = vec![index::LABEL_MESSAGE.to_owned(), label_id.clone()];
                index.extend(message.index_params());
                (CollectionName::Regular, 3, index)
            }
            Self::Locale { .. } | Self::UnarchiveChats { .. } | Self::Other { .. } => return None,
        };
        Some((
            collection,
            MutationInfo {
                operation: Operation::Set,
                index,
                version,
                value,
            },
        ))
    }
}

fn labeled(value: &SyncActionValue) -> bool {
    value
        .label_association_action
        .as_ref()
        .and_then(|l| l.labeled)
        .unwrap_or_default()
}

impl PatchInfo {
    /// A patch of one action (see [`Action::to_mutation`]); `None` for actions this crate does not encode.
    ///
    /// Archiving a chat also unpins it, as the official clients do.
    pub fn from_action(action: &Action, timestamp_ms: i64) -> Option<Self> {
        let (collection, mutation) = action.to_mutation(timestamp_ms)?;
        let mut mutations = vec![mutation];
        if let Action::Archive {
            chat, archived: true, ..
        } = action
        {
            let unpin = Action::Pin {
                chat: chat.clone(),
                pinned: false,
            };
            mutations.extend(unpin.to_mutation(timestamp_ms).map(|(_, m)| m));
        }
        Some(Self {
            collection,
            mutations,
        })
    }

    /// Mutes a chat until `mute_end_ms` (milliseconds since the epoch), forever when `None`, or unmutes it.
    pub fn mute(chat: &Jid, muted: bool, mute_end_ms: Option<i64>, timestamp_ms: i64) -> Self {
        let mute_end_ms = match (muted, mute_end_ms) {
            // A mute without an end is "forever", written as -1.
            (true, None) => Some(-1),
            (_, end) => end,
        };
        Self::single(
            Action::Mute {
                chat: chat.clone(),
                muted,
                mute_end_ms,
            },
            timestamp_ms,
        )
    }

    /// Pins or unpins a chat.
    pub fn pin(chat: &Jid, pinned: bool, timestamp_ms: i64) -> Self {
        Self::single(
            Action::Pin {
                chat: chat.clone(),
                pinned,
            },
            timestamp_ms,
        )
    }

    /// Archives (and unpins) or unarchives a chat.
    pub fn archive(
        chat: &Jid,
        archived: bool,
        range: Option<SyncActionMessageRange>,
        timestamp_ms: i64,
    ) -> Self {
        Self::single(
            Action::Archive {
                chat: chat.clone(),
                archived,
                range,
            },
            timestamp_ms,
        )
    }

    /// Marks a chat read or unread.
    pub fn mark_chat_read(
        chat: &Jid,
        read: bool,
        range: Option<SyncActionMessageRange>,
        timestamp_ms: i64,
    ) -> Self {
        Self::single(
            Action::MarkChatRead {
                chat: chat.clone(),
                read,
                range,
            },
            timestamp_ms,
        )
    }

    /// Stars or unstars a message.
    pub fn star(message: &MessageRef, starred: bool, timestamp_ms: i64) -> Self {
        Self::single(
            Action::Star {
                message: message.clone(),
                starred,
            },
            timestamp_ms,
        )
    }

    /// Deletes a chat, with or without its media.
    pub fn delete_chat(
        chat: &Jid,
        delete_media: bool,
        range: Option<SyncActionMessageRange>,
        timestamp_ms: i64,
    ) -> Self {
        Self::single(
            Action::DeleteChat {
                chat: chat.clone(),
                delete_media,
                range,
            },
            timestamp_ms,
        )
    }

    /// Creates, edits or deletes a label.
    pub fn label_edit(label_id: &str, name: &str, color: i32, deleted: bool, timestamp_ms: i64) -> Self {
        Self::single(
            Action::LabelEdit {
                label_id: label_id.to_owned(),
                name: Some(name.to_owned()),
                color: Some(color),
                predefined_id: None,
                deleted,
            },
            timestamp_ms,
        )
    }

    /// Adds a label to a chat or removes it.
    pub fn label_chat(label_id: &str, chat: &Jid, labeled: bool, timestamp_ms: i64) -> Self {
        Self::single(
            Action::LabelChat {
                label_id: label_id.to_owned(),
                chat: chat.clone(),
                labeled,
            },
            timestamp_ms,
        )
    }

    /// Adds a label to a message or removes it.
    pub fn label_message(label_id: &str, message: &MessageRef, labeled: bool, timestamp_ms: i64) -> Self {
        Self::single(
            Action::LabelMessage {
                label_id: label_id.to_owned(),
                message: message.clone(),
                labeled,
            },
            timestamp_ms,
        )
    }

    /// Sets this account's push name.
    pub fn push_name(name: &str, timestamp_ms: i64) -> Self {
        Self::single(
            Action::PushName {
                name: name.to_owned(),
            },
            timestamp_ms,
        )
    }

    /// A patch of an action every variant of which [`Action::to_mutation`] encodes.
    fn single(action: Action, timestamp_ms: i64) -> Self {
        Self::from_action(&action, timestamp_ms).unwrap_or(Self {
            collection: CollectionName::Regular,
            mutations: Vec::new(),
        })
    }
}
