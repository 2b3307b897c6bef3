//! Group notifications: `<notification type="w:gp2">`, which the server sends to a group's members when the group
//! is created or changes (whatsmeow `parseGroupNotification`, `parseGroupChange`, `parseGroupCreate`).
//!
//! [`parse_group_notification`] reads one stanza into a [`GroupNotification`]; a stanza it cannot read is an
//! error, never a panic. The driver acknowledges the notification either way.

use whatsapp_binary::{Jid, Node};

use crate::error::ResponseError;
use crate::group_admin::{
    GroupInfo, GroupTopic, INVITE_LINK_PREFIX, LinkedGroup, MAX_PARTICIPANTS, content_text, parse_group_node,
    parse_linked_group,
};

/// The notification `type` of group changes.
pub const GROUP_NOTIFICATION_TYPE: &str = "w:gp2";

/// A group notification, read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum GroupNotification {
    /// This account was added to a group (or created one on another device): the group as it stands.
    Joined(JoinedGroup),
    /// A group changed.
    Changed(GroupChange),
}

/// This account joined a group (whatsmeow `events.JoinedGroup`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JoinedGroup {
    /// Why (`reason`, e.g. `invite`), when given.
    pub reason: Option<String>,
    /// The creation's key, when this account created the group on another device.
    pub create_key: Option<String>,
    /// Who made the change.
    pub sender: Option<Jid>,
    /// Who made the change, by phone number.
    pub sender_pn: Option<Jid>,
    /// The sender's push name.
    pub notify: Option<String>,
    /// The group.
    pub info: GroupInfo,
}

/// A new subject (whatsmeow `GroupName`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SubjectChange {
    /// The subject.
    pub subject: String,
    /// When it was set (unix seconds).
    pub set_at: Option<u64>,
    /// Who set it.
    pub set_by: Option<Jid>,
    /// Who set it, by phone number.
    pub set_by_pn: Option<Jid>,
}

/// How a group changed a link to another (whatsmeow `GroupLinkChange`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LinkChange {
    /// `parent_group`, `sub_group` or `sibling_group`.
    pub link_type: String,
    /// For an unlink: why (`unlink_group`, `delete_parent`).
    pub unlink_reason: Option<String>,
    /// The other group.
    pub group: LinkedGroup,
}

/// What changed in a group, by whom and when (whatsmeow `events.GroupInfo`). Every field that is `None` or empty
/// did not change.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GroupChange {
    /// The group.
    pub group: Jid,
    /// Who made the change.
    pub sender: Option<Jid>,
    /// Who made the change, by phone number.
    pub sender_pn: Option<Jid>,
    /// The sender's push name.
    pub notify: Option<String>,
    /// When (unix seconds).
    pub timestamp: u64,
    /// Members who joined (were added, or joined by link).
    pub join: Vec<Jid>,
    /// Why they joined (`reason` of `<add>`, e.g. `invite`).
    pub join_reason: Option<String>,
    /// Members who left or were removed.
    pub leave: Vec<Jid>,
    /// Members made admins.
    pub promote: Vec<Jid>,
    /// Admins made members.
    pub demote: Vec<Jid>,
    /// The participant list's new version id.
    pub participant_version_id: Option<String>,
    /// Its previous version id.
    pub prev_participant_version_id: Option<String>,
    /// A new subject.
    pub subject: Option<SubjectChange>,
    /// A new (or deleted) description.
    pub topic: Option<GroupTopic>,
    /// Whether only admins may now change settings.
    pub locked: Option<bool>,
    /// Whether only admins may now send.
    pub announce: Option<bool>,
    /// The new disappearing-messages timer: `Some(0)` when turned off.
    pub ephemeral_timer: Option<u32>,
    /// Whether joining by link now needs approval.
    pub join_approval_required: Option<bool>,
    /// A new invite link.
    pub invite_link: Option<String>,
    /// The group was deleted, with the reason.
    pub deleted: Option<String>,
    /// A group was linked to this one.
    pub link: Option<LinkChange>,
    /// A group was unlinked from this one.
    pub unlink: Option<LinkChange>,
    /// The group was suspended.
    pub suspended: bool,
    /// The group was unsuspended.
    pub unsuspended: bool,
    /// Children this library does not know, as they came.
    pub unknown: Vec<Node>,
}

/// Reads a `<notification type="w:gp2">`: a single `<create>` is [`GroupNotification::Joined`], anything else a
/// [`GroupNotification::Changed`].
pub fn parse_group_notification(node: &Node) -> Result<GroupNotification, ResponseError> {
    if node.tag != "notification" || node.optional_str_attr("type") != Some(GROUP_NOTIFICATION_TYPE) {
        return Err(ResponseError::Invalid("group notification type"));
    }
    match node.child_nodes() {
        [create] if create.tag == "create" => parse_create(node, create).map(GroupNotification::Joined),
        _ => parse_change(node).map(GroupNotification::Changed),
    }
}

fn opt_jid(node: &Node, key: &'static str) -> Result<Option<Jid>, ResponseError> {
    node.optional_jid_attr(key)
        .map_err(|_| ResponseError::Invalid(key))
}

fn opt_u64(node: &Node, key: &'static str) -> Result<Option<u64>, ResponseError> {
    node.optional_u64_attr(key)
        .map_err(|_| ResponseError::Invalid(key))
}

fn parse_create(notification: &Node, create: &Node) -> Result<JoinedGroup, ResponseError> {
    let group = create
        .child("group")
        .ok_or(ResponseError::Missing("created group"))?;
    let mut info = parse_group_node(group)?;
    if info.addressing_mode.is_none()
        && let Some(mode) = notification.optional_str_attr("addressing_mode")
    {
        // The group element may leave the addressing mode to the notification.
        info = parse_group_node(&group.clone().attr("addressing_mode", mode.to_owned()))?;
    }
    Ok(JoinedGroup {
        reason: create.optional_str_attr("reason").map(str::to_owned),
        create_key: create.optional_str_attr("key").map(str::to_owned),
        sender: opt_jid(notification, "participant")?,
        sender_pn: opt_jid(notification, "participant_pn")?,
        notify: notification.optional_str_attr("notify").map(str::to_owned),
        info,
    })
}

/// The JIDs of a change's `<participant jid>` children (whatsmeow `parseParticipantList`: children without a JID
/// are skipped).
fn participant_jids(node: &Node) -> Result<Vec<Jid>, ResponseError> {
    let jids: Vec<Jid> = node
        .children_by_tag("participant")
        .filter_map(|participant| participant.optional_jid_attr("jid").ok().flatten())
        .take(MAX_PARTICIPANTS + 1)
        .collect();
    if jids.len() > MAX_PARTICIPANTS {
        return Err(ResponseError::Invalid("participant count"));
    }
    Ok(jids)
}

fn link_change(child: &Node, type_key: &'static str) -> Result<LinkChange, ResponseError> {
    Ok(LinkChange {
        link_type: child
            .str_attr(type_key)
            .map_err(|_| ResponseError::Missing(type_key))?
            .to_owned(),
        unlink_reason: child.optional_str_attr("unlink_reason").map(str::to_owned),
        group: parse_linked_group(
            child
                .child("group")
                .ok_or(ResponseError::Missing("linked group"))?,
        )?,
    })
}

fn parse_change(node: &Node) -> Result<GroupChange, ResponseError> {
    let mut change = GroupChange {
        group: node
            .jid_attr("from")
            .map_err(|_| ResponseError::Missing("from"))?,
        sender: opt_jid(node, "participant")?,
        sender_pn: opt_jid(node, "participant_pn")?,
        notify: node.optional_str_attr("notify").map(str::to_owned),
        timestamp: node.u64_attr("t").map_err(|_| ResponseError::Missing("t"))?,
        ..GroupChange::default()
    };
    if !change.group.is_group() {
        return Err(ResponseError::Invalid("from"));
    }
    for child in node.child_nodes() {
        let tag = child.tag.as_ref();
        if matches!(tag, "add" | "remove" | "promote" | "demote") {
            change.prev_participant_version_id = child.optional_str_attr("prev_v_id").map(str::to_owned);
            change.participant_version_id = child.optional_str_attr("v_id").map(str::to_owned);
        }
        match tag {
            "add" => {
                change.join_reason = child.optional_str_attr("reason").map(str::to_owned);
                change.join = participant_jids(child)?;
            }
            "remove" => change.leave = participant_jids(child)?,
            "promote" => change.promote = participant_jids(child)?,
            "demote" => change.demote = participant_jids(child)?,
            "locked" => change.locked = Some(true),
            "unlocked" => change.locked = Some(false),
            "delete" => {
                change.deleted = Some(
                    child
                        .str_attr("reason")
                        .map_err(|_| ResponseError::Missing("delete reason"))?
                        .to_owned(),
                );
            }
            "subject" => {
                change.subject = Some(SubjectChange {
                    subject: child
                        .str_attr("subject")
                        .map_err(|_| ResponseError::Missing("subject"))?
                        .to_owned(),
                    set_at: opt_u64(child, "s_t")?,
                    set_by: opt_jid(child, "s_o")?,
                    set_by_pn: opt_jid(child, "s_o_pn")?,
                });
            }
            "description" => {
                let deleted = child.child("delete").is_some();
                let text = if deleted {
                    String::new()
                } else {
                    child
                        .child("body")
                        .and_then(content_text)
                        .ok_or(ResponseError::Missing("description body"))?
                };
                change.topic = Some(GroupTopic {
                    text,
                    id: child
                        .str_attr("id")
                        .map_err(|_| ResponseError::Missing("description id"))?
                        .to_owned(),
                    set_at: Some(change.timestamp),
                    set_by: change.sender.clone(),
                    set_by_pn: change.sender_pn.clone(),
                    deleted,
                });
            }
            "announcement" => change.announce = Some(true),
            "not_announcement" => change.announce = Some(false),
            "invite" => {
                let code = child
                    .str_attr("code")
                    .map_err(|_| ResponseError::Missing("invite code"))?;
                change.invite_link = Some(format!("{INVITE_LINK_PREFIX}{code}"));
            }
            "ephemeral" => {
                let expiration = child
                    .u64_attr("expiration")
                    .map_err(|_| ResponseError::Missing("expiration"))?;
                change.ephemeral_timer =
                    Some(u32::try_from(expiration).map_err(|_| ResponseError::Invalid("expiration"))?);
            }
            "not_ephemeral" => change.ephemeral_timer = Some(0),
            "link" => change.link = Some(link_change(child, "link_type")?),
            "unlink" => change.unlink = Some(link_change(child, "unlink_type")?),
            // whatsmeow reads the element as "on"; an explicit `<group_join state="off"/>` is read as off.
            "membership_approval_mode" => {
                change.join_approval_required = Some(
                    child
                        .child("group_join")
                        .and_then(|join| join.optional_str_attr("state"))
                        != Some("off"),
                );
            }
            "suspended" => change.suspended = true,
            "unsuspended" => change.unsuspended = true,
            _ => change.unknown.push(child.clone()),
        }
    }
    Ok(change)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn group() -> Jid {
        Jid::new("120363001", Jid::GROUP_SERVER)
    }

    fn pn(user: &str) -> Jid {
        Jid::new(user, Jid::DEFAULT_USER_SERVER)
    }

    fn notification(children: Vec<Node>) -> Node {
        Node::new("notification")
            .attr("type", "w:gp2")
            .attr("id", "N1")
            .attr("from", group())
            .attr("participant", pn("111"))
            .attr("t", "1700000000")
            .children(children)
    }

    fn changed(children: Vec<Node>) -> GroupChange {
        match parse_group_notification(&notification(children)).unwrap() {
            GroupNotification::Changed(change) => change,
            other => panic!("not a change: {other:?}"),
        }
    }

    #[test]
    fn participant_changes() {
        let change = changed(vec![
            Node::new("add")
                .attr("reason", "invite")
                .attr("v_id", "2")
                .attr("prev_v_id", "1")
                .children([
                    Node::new("participant").attr("jid", pn("222")),
                    Node::new("participant"),
                ]),
            Node::new("promote")
                .attr("v_id", "3")
                .attr("prev_v_id", "2")
                .children([Node::new("participant").attr("jid", pn("333"))]),
        ]);
        assert_eq!(change.group, group());
        assert_eq!(change.sender, Some(pn("111")));
        assert_eq!(change.timestamp, 1_700_000_000);
        assert_eq!(change.join, [pn("222")]);
        assert_eq!(change.join_reason.as_deref(), Some("invite"));
        assert_eq!(change.promote, [pn("333")]);
        // As in whatsmeow, the last participant element names the version.
        assert_eq!(change.participant_version_id.as_deref(), Some("3"));
        assert_eq!(change.prev_participant_version_id.as_deref(), Some("2"));
        assert!(change.leave.is_empty() && change.demote.is_empty());
    }

    #[test]
    fn settings_changes() {
        let change = changed(vec![
            Node::new("subject")
                .attr("subject", "New")
                .attr("s_t", "1700000000")
                .attr("s_o", pn("111")),
            Node::new("description")
                .attr("id", "D2")
                .children([Node::new("body").bytes(b"Rules".to_vec())]),
            Node::new("announcement"),
            Node::new("unlocked"),
            Node::new("ephemeral").attr("expiration", "604800"),
            Node::new("invite").attr("code", "XYZ"),
            Node::new("membership_approval_mode").children([Node::new("group_join").attr("state", "on")]),
            Node::new("brand_new_thing"),
        ]);
        assert_eq!(change.subject.unwrap().subject, "New");
        let topic = change.topic.unwrap();
        assert_eq!(
            (topic.text.as_str(), topic.id.as_str(), topic.deleted),
            ("Rules", "D2", false)
        );
        assert_eq!(topic.set_by, Some(pn("111")));
        assert_eq!(change.announce, Some(true));
        assert_eq!(change.locked, Some(false));
        assert_eq!(change.ephemeral_timer, Some(604_800));
        assert_eq!(
            change.invite_link.as_deref(),
            Some("https://chat.whatsapp.com/XYZ")
        );
        assert_eq!(change.join_approval_required, Some(true));
        assert_eq!(change.unknown.len(), 1);
        let deleted = changed(vec![
            Node::new("description")
                .attr("id", "D3")
                .children([Node::new("delete")]),
        ]);
        assert!(deleted.topic.unwrap().deleted);
        assert_eq!(changed(vec![Node::new("not_ephemeral")]).ephemeral_timer, Some(0));
    }

    #[test]
    fn links_and_creation() {
        let change = changed(vec![
            Node::new("link")
                .attr("link_type", "sub_group")
                .children([Node::new("group")
                    .attr("jid", Jid::new("777", Jid::GROUP_SERVER))
                    .attr("subject", "Sub")]),
        ]);
        let link = change.link.unwrap();
        assert_eq!(
            (link.link_type.as_str(), link.group.subject.as_str()),
            ("sub_group", "Sub")
        );
        let created = notification(vec![
            Node::new("create")
                .attr("reason", "invite")
                .children([Node::new("group")
                    .attr("id", "120363001")
                    .attr("subject", "Hi")
                    .children([Node::new("participant")
                        .attr("jid", pn("111"))
                        .attr("type", "superadmin")])]),
        ])
        .attr("addressing_mode", "lid");
        let GroupNotification::Joined(joined) = parse_group_notification(&created).unwrap() else {
            panic!("not a join");
        };
        assert_eq!(joined.info.subject, "Hi");
        assert_eq!(joined.reason.as_deref(), Some("invite"));
        assert_eq!(
            joined.info.addressing_mode,
            Some(crate::group_admin::AddressingMode::Lid)
        );
        assert!(joined.info.participants[0].is_super_admin);
    }

    #[test]
    fn malformed_notifications_are_errors() {
        let check = |node: Node| parse_group_notification(&node).unwrap_err();
        assert_eq!(
            check(Node::new("notification")),
            ResponseError::Invalid("group notification type")
        );
        assert_eq!(
            check(Node::new("notification").attr("type", "w:gp2").attr("t", "1")),
            ResponseError::Missing("from")
        );
        assert_eq!(
            check(
                Node::new("notification")
                    .attr("type", "w:gp2")
                    .attr("from", pn("1"))
                    .attr("t", "1")
            ),
            ResponseError::Invalid("from")
        );
        assert_eq!(
            check(
                Node::new("notification")
                    .attr("type", "w:gp2")
                    .attr("from", group())
            ),
            ResponseError::Missing("t")
        );
        assert_eq!(
            check(notification(vec![Node::new("subject")])),
            ResponseError::Missing("subject")
        );
        assert_eq!(
            check(notification(vec![Node::new("description").attr("id", "D")])),
            ResponseError::Missing("description body")
        );
        assert_eq!(
            check(notification(vec![Node::new("invite")])),
            ResponseError::Missing("invite code")
        );
        assert_eq!(
            check(notification(vec![
                Node::new("ephemeral").attr("expiration", "-1")
            ])),
            ResponseError::Missing("expiration")
        );
        assert_eq!(
            check(notification(vec![
                Node::new("link").attr("link_type", "sub_group")
            ])),
            ResponseError::Missing("linked group")
        );
        assert_eq!(
            check(notification(vec![Node::new("create")])),
            ResponseError::Missing("created group")
        );
        assert_eq!(
            check(notification(vec![
                Node::new("create").children([Node::new("group")])
            ])),
            ResponseError::Missing("group id")
        );
    }
}
