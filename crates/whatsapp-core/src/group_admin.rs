//! Group management: the `w:g2` requests that create, read, list, leave and administer groups and communities,
//! and the readers of their answers (whatsmeow `group.go`, `types/group.go`).
//!
//! Every builder returns the whole `<iq>` (without an `id`; the driver assigns one); every reader takes the
//! `result` stanza and returns a [`ResponseError`] for an answer it cannot read, never a panic. The group
//! notifications (`<notification type="w:gp2">`) are read in [`crate::group_notification`].

use whatsapp_binary::{Jid, Node};

use crate::error::ResponseError;

/// The prefix of an invite link; the code follows it (whatsmeow `InviteLinkPrefix`).
pub const INVITE_LINK_PREFIX: &str = "https://chat.whatsapp.com/";

/// How many members a reader accepts in one group; larger answers are refused rather than read into memory.
/// WhatsApp groups hold at most 1024 members and communities a few thousand, so this leaves ample room.
pub const MAX_PARTICIPANTS: usize = 10_000;

/// The `g.us` server JID that group-wide requests (create, list, join by link) go to.
pub fn group_server() -> Jid {
    Jid::server_only(Jid::GROUP_SERVER)
}

/// A `w:g2` IQ of `kind` (`get` or `set`) to `to` with one child.
fn group_iq(kind: &'static str, to: &Jid, content: Node) -> Node {
    Node::new("iq")
        .attr("xmlns", "w:g2")
        .attr("type", kind)
        .attr("to", to.clone())
        .children([content])
}

/// Who may add members (whatsmeow `GroupMemberAddMode`); unknown values are kept.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum MemberAddMode {
    /// `admin_add`: only admins add members.
    AdminAdd,
    /// `all_member_add`: every member may add members.
    AllMemberAdd,
    /// A value this library does not know.
    Other(String),
}

impl MemberAddMode {
    /// The wire value.
    pub fn as_str(&self) -> &str {
        match self {
            MemberAddMode::AdminAdd => "admin_add",
            MemberAddMode::AllMemberAdd => "all_member_add",
            MemberAddMode::Other(other) => other,
        }
    }

    /// Reads a wire value.
    pub fn parse(value: &str) -> MemberAddMode {
        match value {
            "admin_add" => MemberAddMode::AdminAdd,
            "all_member_add" => MemberAddMode::AllMemberAdd,
            other => MemberAddMode::Other(other.to_owned()),
        }
    }
}

/// How a group addresses its members (`addressing_mode`): by phone number or by LID; unknown values are kept.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum AddressingMode {
    /// `pn`: participants are phone-number JIDs (with their `lid` beside).
    PhoneNumber,
    /// `lid`: participants are LIDs (with their `phone_number` beside).
    Lid,
    /// A value this library does not know.
    Other(String),
}

impl AddressingMode {
    fn parse(value: &str) -> AddressingMode {
        match value {
            "pn" => AddressingMode::PhoneNumber,
            "lid" => AddressingMode::Lid,
            other => AddressingMode::Other(other.to_owned()),
        }
    }
}

/// The group's description (whatsmeow `GroupTopic`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GroupTopic {
    /// The text; empty when it was deleted.
    pub text: String,
    /// The description's id; a change names it as `prev`.
    pub id: String,
    /// When it was set (unix seconds).
    pub set_at: Option<u64>,
    /// Who set it.
    pub set_by: Option<Jid>,
    /// Who set it, by phone number, when the group is LID-addressed.
    pub set_by_pn: Option<Jid>,
    /// Whether the change deleted the description (notifications only).
    pub deleted: bool,
}

/// An invitation the server issued instead of adding a member whose privacy settings forbid being added
/// (whatsmeow `GroupParticipantAddRequest`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AddRequest {
    /// The invite code to send to the person.
    pub code: String,
    /// When it expires (unix seconds).
    pub expiration: u64,
}

/// A member of a group, or one line of a participant change's answer (whatsmeow `GroupParticipant`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GroupParticipant {
    /// The member as the group addresses it (phone number or LID, see [`GroupInfo::addressing_mode`]).
    pub jid: Jid,
    /// The phone-number JID, when known.
    pub phone_number: Option<Jid>,
    /// The LID, when known.
    pub lid: Option<Jid>,
    /// Whether the member is an admin (a super admin is one too).
    pub is_admin: bool,
    /// Whether the member is the super admin (the creator).
    pub is_super_admin: bool,
    /// The name shown for a member whose number is hidden.
    pub display_name: Option<String>,
    /// In the answer to a change: the error code for this participant (403 not allowed by their privacy
    /// settings, 404 not found, 409 already a member...), `None` when the change succeeded.
    pub error: Option<u16>,
    /// With error 403 on an add: the invitation the server made instead.
    pub add_request: Option<AddRequest>,
}

impl GroupParticipant {
    /// The per-participant status: 200 when the change succeeded, else its error code.
    pub fn status(&self) -> u16 {
        self.error.unwrap_or(200)
    }
}

/// Everything the server says about a group (whatsmeow `types.GroupInfo`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GroupInfo {
    /// The group.
    pub jid: Jid,
    /// Who created it.
    pub owner: Option<Jid>,
    /// Who created it, by phone number.
    pub owner_pn: Option<Jid>,
    /// The subject (name).
    pub subject: String,
    /// When the subject was set (unix seconds).
    pub subject_set_at: Option<u64>,
    /// Who set the subject.
    pub subject_set_by: Option<Jid>,
    /// Who set the subject, by phone number.
    pub subject_set_by_pn: Option<Jid>,
    /// When the group was created (unix seconds).
    pub created: Option<u64>,
    /// The creator's country code.
    pub creator_country_code: Option<String>,
    /// The description, if there is one.
    pub topic: Option<GroupTopic>,
    /// Whether only admins may send messages.
    pub announce: bool,
    /// The version id of the announce setting.
    pub announce_version_id: Option<String>,
    /// Whether only admins may change the group's settings (subject, description, photo).
    pub locked: bool,
    /// The disappearing-messages timer in seconds, when disappearing messages are on.
    pub ephemeral_timer: Option<u32>,
    /// Whether the group is incognito.
    pub incognito: bool,
    /// Who may add members, when the server says.
    pub member_add_mode: Option<MemberAddMode>,
    /// Whether joining by link needs an admin's approval.
    pub join_approval_required: bool,
    /// Whether this group is a community (the parent of linked groups).
    pub is_parent: bool,
    /// For a community: the approval mode new sub-groups get (`request_required`).
    pub default_membership_approval_mode: Option<String>,
    /// The community this group is linked to.
    pub linked_parent: Option<Jid>,
    /// Whether this is the community's default (announcement) sub-group.
    pub is_default_sub_group: bool,
    /// How the group addresses members.
    pub addressing_mode: Option<AddressingMode>,
    /// The version id of the participant list.
    pub participant_version_id: Option<String>,
    /// The member count the server reports (`size`), which may exceed `participants` in a partial answer.
    pub participant_count: Option<u32>,
    /// The members.
    pub participants: Vec<GroupParticipant>,
    /// Whether the group is suspended.
    pub suspended: bool,
}

/// An optional JID attribute as an error of the answer when present but malformed.
fn opt_jid(node: &Node, key: &'static str) -> Result<Option<Jid>, ResponseError> {
    node.optional_jid_attr(key)
        .map_err(|_| ResponseError::Invalid(key))
}

/// An optional number attribute, as an error of the answer when present but malformed.
fn opt_u64(node: &Node, key: &'static str) -> Result<Option<u64>, ResponseError> {
    node.optional_u64_attr(key)
        .map_err(|_| ResponseError::Invalid(key))
}

/// The text content of a node (bytes or a string).
pub(crate) fn content_text(node: &Node) -> Option<String> {
    match &node.content {
        whatsapp_binary::Content::Bytes(bytes) => Some(String::from_utf8_lossy(bytes).into_owned()),
        whatsapp_binary::Content::Str(text) => Some(text.to_string()),
        _ => None,
    }
}

/// A group JID from an `id` (a bare user part) or a `jid` attribute.
fn group_jid(node: &Node) -> Result<Jid, ResponseError> {
    if let Some(jid) = opt_jid(node, "jid")? {
        return Ok(jid);
    }
    let id = node
        .str_attr("id")
        .map_err(|_| ResponseError::Missing("group id"))?;
    if id.contains('@') {
        id.parse().map_err(|_| ResponseError::Invalid("group id"))
    } else if id.is_empty() {
        Err(ResponseError::Invalid("group id"))
    } else {
        Ok(Jid::new(id, Jid::GROUP_SERVER))
    }
}

/// Reads a `<participant>` (whatsmeow `parseParticipant`): the JID, its phone-number or LID counterpart, the admin
/// type, and on a change's answer the error and the add request.
pub fn parse_participant(node: &Node) -> Result<GroupParticipant, ResponseError> {
    let jid = node
        .jid_attr("jid")
        .map_err(|_| ResponseError::Missing("participant jid"))?;
    let kind = node.optional_str_attr("type");
    let (phone_number, lid) = match jid.server() {
        Jid::LID_SERVER => (opt_jid(node, "phone_number")?, Some(jid.clone())),
        Jid::DEFAULT_USER_SERVER => (Some(jid.clone()), opt_jid(node, "lid")?),
        _ => (None, None),
    };
    let error = match node.optional_str_attr("error") {
        None => None,
        Some(code) => match code.parse::<u16>() {
            Ok(0) => None,
            Ok(code) => Some(code),
            Err(_) => return Err(ResponseError::Invalid("participant error")),
        },
    };
    let add_request = match (error, node.child("add_request")) {
        (Some(_), Some(request)) => Some(AddRequest {
            code: request
                .str_attr("code")
                .map_err(|_| ResponseError::Missing("add_request code"))?
                .to_owned(),
            expiration: opt_u64(request, "expiration")?.unwrap_or_default(),
        }),
        _ => None,
    };
    Ok(GroupParticipant {
        jid,
        phone_number,
        lid,
        is_admin: matches!(kind, Some("admin" | "superadmin")),
        is_super_admin: kind == Some("superadmin"),
        display_name: node.optional_str_attr("display_name").map(str::to_owned),
        error,
        add_request,
    })
}

/// Reads a `<group>` element (whatsmeow `parseGroupNode`). Children this library does not know are skipped.
pub fn parse_group_node(group: &Node) -> Result<GroupInfo, ResponseError> {
    let mut info = GroupInfo {
        jid: group_jid(group)?,
        owner: opt_jid(group, "creator")?,
        owner_pn: opt_jid(group, "creator_pn")?,
        subject: group.optional_str_attr("subject").unwrap_or_default().to_owned(),
        subject_set_at: opt_u64(group, "s_t")?,
        subject_set_by: opt_jid(group, "s_o")?,
        subject_set_by_pn: opt_jid(group, "s_o_pn")?,
        created: opt_u64(group, "creation")?,
        creator_country_code: group.optional_str_attr("creator_country_code").map(str::to_owned),
        announce_version_id: group.optional_str_attr("a_v_id").map(str::to_owned),
        participant_version_id: group.optional_str_attr("p_v_id").map(str::to_owned),
        participant_count: opt_u64(group, "size")?
            .map(|size| u32::try_from(size).map_err(|_| ResponseError::Invalid("size")))
            .transpose()?,
        addressing_mode: group
            .optional_str_attr("addressing_mode")
            .map(AddressingMode::parse),
        ..GroupInfo::default()
    };
    for child in group.child_nodes() {
        match child.tag.as_ref() {
            "participant" => {
                if info.participants.len() == MAX_PARTICIPANTS {
                    return Err(ResponseError::Invalid("participant count"));
                }
                info.participants.push(parse_participant(child)?);
            }
            "description" => {
                if let Some(body) = child.child("body") {
                    info.topic = Some(GroupTopic {
                        text: content_text(body).unwrap_or_default(),
                        id: child
                            .str_attr("id")
                            .map_err(|_| ResponseError::Missing("description id"))?
                            .to_owned(),
                        set_at: opt_u64(child, "t")?,
                        set_by: opt_jid(child, "participant")?,
                        set_by_pn: opt_jid(child, "participant_pn")?,
                        deleted: false,
                    });
                }
            }
            "announcement" => info.announce = true,
            "locked" => info.locked = true,
            "ephemeral" => {
                let expiration = opt_u64(child, "expiration")?.unwrap_or_default();
                info.ephemeral_timer =
                    Some(u32::try_from(expiration).map_err(|_| ResponseError::Invalid("expiration"))?);
            }
            "member_add_mode" => {
                info.member_add_mode = content_text(child).map(|mode| MemberAddMode::parse(&mode));
            }
            "linked_parent" => {
                info.linked_parent = Some(
                    child
                        .jid_attr("jid")
                        .map_err(|_| ResponseError::Missing("linked_parent jid"))?,
                );
            }
            "default_sub_group" => info.is_default_sub_group = true,
            "parent" => {
                info.is_parent = true;
                info.default_membership_approval_mode = child
                    .optional_str_attr("default_membership_approval_mode")
                    .map(str::to_owned);
            }
            "incognito" => info.incognito = true,
            // whatsmeow treats the element's presence as "on"; an explicit `<group_join state="off"/>` is read
            // as off.
            "membership_approval_mode" => {
                info.join_approval_required = child
                    .child("group_join")
                    .and_then(|join| join.optional_str_attr("state"))
                    != Some("off");
            }
            "suspended" => info.suspended = true,
            _ => {}
        }
    }
    Ok(info)
}

/// `<iq xmlns="w:g2" type="get" to=group><query request="interactive"/></iq>`: the group's metadata; read the
/// answer with [`parse_group_info`].
pub fn group_info_query(group: &Jid) -> Node {
    group_iq("get", group, Node::new("query").attr("request", "interactive"))
}

/// Reads the answer to [`group_info_query`], [`create_group`] or [`group_info_from_link`]: its `<group>`.
pub fn parse_group_info(result: &Node) -> Result<GroupInfo, ResponseError> {
    parse_group_node(result.child("group").ok_or(ResponseError::Missing("group"))?)
}

/// What a new group starts with (whatsmeow `ReqCreateGroup`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CreateGroup {
    /// The subject.
    pub subject: String,
    /// The first members besides the creator (users, no device part).
    pub participants: Vec<Jid>,
    /// Who may add members (default: every member).
    pub member_add_mode: Option<MemberAddMode>,
    /// Only admins may change the settings.
    pub locked: bool,
    /// Only admins may send messages.
    pub announce: bool,
    /// The disappearing-messages timer in seconds, if any.
    pub ephemeral_timer: Option<u32>,
    /// Joining by link needs an admin's approval.
    pub join_approval_required: bool,
    /// Create a community (a parent group) rather than a group.
    pub community: bool,
    /// Link the new group to this community.
    pub linked_parent: Option<Jid>,
}

/// `<iq set to=g.us><create subject><participant jid/>...<member_add_mode>...</create></iq>` (whatsmeow
/// `CreateGroup`); the answer is read with [`parse_group_info`].
pub fn create_group(request: &CreateGroup) -> Node {
    let mut children: Vec<Node> = request
        .participants
        .iter()
        .map(|jid| Node::new("participant").attr("jid", jid.to_non_ad()))
        .collect();
    let mode = request
        .member_add_mode
        .clone()
        .unwrap_or(MemberAddMode::AllMemberAdd);
    children.push(Node::new("member_add_mode").bytes(mode.as_str().as_bytes().to_vec()));
    if request.community {
        // whatsmeow's default for a community's sub-groups.
        children.push(Node::new("parent").attr("default_membership_approval_mode", "request_required"));
    } else if let Some(parent) = &request.linked_parent {
        children.push(Node::new("linked_parent").attr("jid", parent.clone()));
    }
    if request.locked {
        children.push(Node::new("locked"));
    }
    if request.announce {
        children.push(Node::new("announcement"));
    }
    children.push(match request.ephemeral_timer {
        // `trigger="1"` is what whatsmeow sends with a timer; its meaning is not documented.
        Some(timer) => Node::new("ephemeral")
            .attr("expiration", timer.to_string())
            .attr("trigger", "1"),
        None => Node::new("ephemeral").attr("expiration", "0"),
    });
    children.push(join_approval_node(request.join_approval_required));
    let mut create = Node::new("create");
    if !request.subject.is_empty() {
        create = create.attr("subject", request.subject.clone());
    }
    group_iq("set", &group_server(), create.children(children))
}

fn join_approval_node(required: bool) -> Node {
    Node::new("membership_approval_mode")
        .children([Node::new("group_join").attr("state", if required { "on" } else { "off" })])
}

/// `<iq get to=g.us><participating><participants/><description/></participating></iq>`: the groups this account
/// is a member of; read with [`parse_joined_groups`].
pub fn joined_groups_query() -> Node {
    group_iq(
        "get",
        &group_server(),
        Node::new("participating").children([Node::new("participants"), Node::new("description")]),
    )
}

/// Reads the answer to [`joined_groups_query`]: every `<group>` of `<groups>`.
pub fn parse_joined_groups(result: &Node) -> Result<Vec<GroupInfo>, ResponseError> {
    result
        .child("groups")
        .ok_or(ResponseError::Missing("groups"))?
        .children_by_tag("group")
        .map(parse_group_node)
        .collect()
}

/// `<iq set to=g.us><leave><group id=group/></leave></iq>`.
pub fn leave_group(group: &Jid) -> Node {
    group_iq(
        "set",
        &group_server(),
        Node::new("leave").children([Node::new("group").attr("id", group.clone())]),
    )
}

/// A change to a group's members (whatsmeow `ParticipantChange`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ParticipantChange {
    /// Add members.
    Add,
    /// Remove members.
    Remove,
    /// Make members admins.
    Promote,
    /// Make admins members.
    Demote,
}

impl ParticipantChange {
    /// The element name on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            ParticipantChange::Add => "add",
            ParticipantChange::Remove => "remove",
            ParticipantChange::Promote => "promote",
            ParticipantChange::Demote => "demote",
        }
    }
}

/// `<iq set to=group><add|remove|promote|demote><participant jid/>...</...></iq>`; the answer is read with
/// [`parse_participant_change`].
pub fn update_participants(group: &Jid, change: ParticipantChange, participants: &[Jid]) -> Node {
    group_iq(
        "set",
        group,
        Node::new(change.as_str()).children(
            participants
                .iter()
                .map(|jid| Node::new("participant").attr("jid", jid.to_non_ad())),
        ),
    )
}

fn participant_list(node: &Node) -> Result<Vec<GroupParticipant>, ResponseError> {
    let mut list = Vec::new();
    for child in node.children_by_tag("participant") {
        if list.len() == MAX_PARTICIPANTS {
            return Err(ResponseError::Invalid("participant count"));
        }
        list.push(parse_participant(child)?);
    }
    Ok(list)
}

/// Reads the answer to [`update_participants`]: one line per participant, with its error code when the change
/// did not apply to it.
pub fn parse_participant_change(
    result: &Node,
    change: ParticipantChange,
) -> Result<Vec<GroupParticipant>, ResponseError> {
    participant_list(
        result
            .child(change.as_str())
            .ok_or(ResponseError::Missing("participant change"))?,
    )
}

/// Someone waiting for an admin's approval to join (whatsmeow `GroupParticipantRequest`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JoinRequest {
    /// Who asked.
    pub jid: Jid,
    /// When (unix seconds).
    pub requested_at: Option<u64>,
}

/// `<iq get to=group><membership_approval_requests/></iq>`: the pending join requests; read with
/// [`parse_join_requests`].
pub fn join_requests_query(group: &Jid) -> Node {
    group_iq("get", group, Node::new("membership_approval_requests"))
}

/// Reads the answer to [`join_requests_query`].
pub fn parse_join_requests(result: &Node) -> Result<Vec<JoinRequest>, ResponseError> {
    result
        .child("membership_approval_requests")
        .ok_or(ResponseError::Missing("membership_approval_requests"))?
        .children_by_tag("membership_approval_request")
        .take(MAX_PARTICIPANTS)
        .map(|request| {
            Ok(JoinRequest {
                jid: request
                    .jid_attr("jid")
                    .map_err(|_| ResponseError::Missing("request jid"))?,
                requested_at: opt_u64(request, "request_time")?,
            })
        })
        .collect()
}

/// `<iq set to=group><membership_requests_action><approve|reject><participant jid/>...</...></...></iq>`; the
/// answer is read with [`parse_join_request_action`].
pub fn join_request_action(group: &Jid, approve: bool, participants: &[Jid]) -> Node {
    let action = if approve { "approve" } else { "reject" };
    group_iq(
        "set",
        group,
        Node::new("membership_requests_action").children([Node::new(action).children(
            participants
                .iter()
                .map(|jid| Node::new("participant").attr("jid", jid.to_non_ad())),
        )]),
    )
}

/// Reads the answer to [`join_request_action`]: one line per participant, with its error code when it failed.
pub fn parse_join_request_action(
    result: &Node,
    approve: bool,
) -> Result<Vec<GroupParticipant>, ResponseError> {
    let action = result
        .child("membership_requests_action")
        .ok_or(ResponseError::Missing("membership_requests_action"))?;
    participant_list(
        action
            .child(if approve { "approve" } else { "reject" })
            .ok_or(ResponseError::Missing("approve or reject"))?,
    )
}

/// `<iq set to=group><subject>name</subject></iq>`.
pub fn set_subject(group: &Jid, subject: &str) -> Node {
    group_iq(
        "set",
        group,
        Node::new("subject").bytes(subject.as_bytes().to_vec()),
    )
}

/// `<iq set to=group><description id=new prev=previous><body>text</body></description></iq>`, or with
/// `delete="true"` and no body for an empty `text` (whatsmeow `SetGroupTopic`). `previous` is the current
/// description's id ([`GroupTopic::id`]), `new_id` a fresh id.
pub fn set_description(group: &Jid, previous: Option<&str>, new_id: &str, text: &str) -> Node {
    let mut description = Node::new("description").attr("id", new_id.to_owned());
    if let Some(previous) = previous {
        description = description.attr("prev", previous.to_owned());
    }
    description = if text.is_empty() {
        description.attr("delete", "true")
    } else {
        description.children([Node::new("body").bytes(text.as_bytes().to_vec())])
    };
    group_iq("set", group, description)
}

/// `<iq set to=group><locked/>` or `<unlocked/>`: whether only admins may change the settings.
pub fn set_locked(group: &Jid, locked: bool) -> Node {
    group_iq(
        "set",
        group,
        Node::new(if locked { "locked" } else { "unlocked" }),
    )
}

/// `<iq set to=group><announcement/>` or `<not_announcement/>`: whether only admins may send.
pub fn set_announce(group: &Jid, announce: bool) -> Node {
    group_iq(
        "set",
        group,
        Node::new(if announce {
            "announcement"
        } else {
            "not_announcement"
        }),
    )
}

/// `<iq set to=group><ephemeral expiration/>` or `<not_ephemeral/>`: the disappearing-messages timer.
pub fn set_ephemeral(group: &Jid, timer: Option<u32>) -> Node {
    let node = match timer {
        Some(timer) if timer > 0 => Node::new("ephemeral").attr("expiration", timer.to_string()),
        _ => Node::new("not_ephemeral"),
    };
    group_iq("set", group, node)
}

/// `<iq set to=group><membership_approval_mode><group_join state="on|off"/></...></iq>`.
pub fn set_join_approval(group: &Jid, required: bool) -> Node {
    group_iq("set", group, join_approval_node(required))
}

/// `<iq set to=group><member_add_mode>admin_add|all_member_add</member_add_mode></iq>`.
pub fn set_member_add_mode(group: &Jid, mode: &MemberAddMode) -> Node {
    group_iq(
        "set",
        group,
        Node::new("member_add_mode").bytes(mode.as_str().as_bytes().to_vec()),
    )
}

/// `<iq xmlns="w:profile:picture" type="set" to=s.whatsapp.net target=group><picture type="image">JPEG</...>`
/// (whatsmeow `SetGroupPhoto`); `None` removes the photo. Read the answer with [`parse_photo_id`].
pub fn set_group_photo(group: &Jid, jpeg: Option<&[u8]>) -> Node {
    let iq = Node::new("iq")
        .attr("xmlns", "w:profile:picture")
        .attr("type", "set")
        .attr("to", Jid::server_only(Jid::DEFAULT_USER_SERVER))
        .attr("target", group.clone());
    match jpeg {
        Some(jpeg) => iq.children([Node::new("picture").attr("type", "image").bytes(jpeg.to_vec())]),
        None => iq,
    }
}

/// Reads the new picture's id from the answer to [`set_group_photo`].
pub fn parse_photo_id(result: &Node) -> Result<String, ResponseError> {
    Ok(result
        .child("picture")
        .ok_or(ResponseError::Missing("picture"))?
        .str_attr("id")
        .map_err(|_| ResponseError::Missing("picture id"))?
        .to_owned())
}

/// `<iq get|set to=group><invite/></iq>`: the invite link, or (`reset`) a new one that revokes the old; read with
/// [`parse_invite_link`].
pub fn invite_link_query(group: &Jid, reset: bool) -> Node {
    group_iq(if reset { "set" } else { "get" }, group, Node::new("invite"))
}

/// Reads the invite link (`https://chat.whatsapp.com/CODE`) from the answer to [`invite_link_query`].
pub fn parse_invite_link(result: &Node) -> Result<String, ResponseError> {
    let code = result
        .child("invite")
        .ok_or(ResponseError::Missing("invite"))?
        .str_attr("code")
        .map_err(|_| ResponseError::Missing("invite code"))?;
    Ok(format!("{INVITE_LINK_PREFIX}{code}"))
}

/// The code of an invite link, with or without its `https://chat.whatsapp.com/` prefix.
pub fn invite_code(link: &str) -> &str {
    link.strip_prefix(INVITE_LINK_PREFIX).unwrap_or(link)
}

/// `<iq get to=g.us><invite code/></iq>`: the group behind an invite link, without joining; read with
/// [`parse_group_info`].
pub fn group_info_from_link(link: &str) -> Node {
    group_iq(
        "get",
        &group_server(),
        Node::new("invite").attr("code", invite_code(link).to_owned()),
    )
}

/// `<iq set to=g.us><invite code/></iq>`: join by invite link; read with [`parse_join_with_link`].
pub fn join_with_link(link: &str) -> Node {
    group_iq(
        "set",
        &group_server(),
        Node::new("invite").attr("code", invite_code(link).to_owned()),
    )
}

/// What joining by link did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum JoinOutcome {
    /// This account is now a member of the group.
    Joined(Jid),
    /// The group needs an admin's approval; the request is pending.
    Requested(Jid),
}

/// Reads the answer to [`join_with_link`]: `<group jid/>`, or `<membership_approval_request jid/>` when an admin
/// must approve.
pub fn parse_join_with_link(result: &Node) -> Result<JoinOutcome, ResponseError> {
    if let Some(request) = result.child("membership_approval_request") {
        return Ok(JoinOutcome::Requested(
            request
                .jid_attr("jid")
                .map_err(|_| ResponseError::Missing("group jid"))?,
        ));
    }
    let group = result.child("group").ok_or(ResponseError::Missing("group"))?;
    Ok(JoinOutcome::Joined(group_jid(group)?))
}

/// `<iq set to=group><accept code expiration admin/></iq>`: join with an invite *message* (a
/// `GroupInviteMessage` an admin sent, whatsmeow `JoinGroupWithInvite`).
pub fn join_with_invite(group: &Jid, inviter: &Jid, code: &str, expiration: u64) -> Node {
    group_iq(
        "set",
        group,
        Node::new("accept")
            .attr("code", code.to_owned())
            .attr("expiration", expiration.to_string())
            .attr("admin", inviter.clone()),
    )
}

/// A group linked to a community, as listed by [`sub_groups_query`] or named in a link notification
/// (whatsmeow `GroupLinkTarget`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LinkedGroup {
    /// The group.
    pub jid: Jid,
    /// Its subject.
    pub subject: String,
    /// When its subject was set (unix seconds).
    pub subject_set_at: Option<u64>,
    /// Whether it is the community's default (announcement) group.
    pub is_default_sub_group: bool,
}

/// Reads a linked group's `<group jid|id subject s_t>` (whatsmeow `parseGroupLinkTargetNode`).
pub fn parse_linked_group(group: &Node) -> Result<LinkedGroup, ResponseError> {
    Ok(LinkedGroup {
        jid: group_jid(group)?,
        subject: group.optional_str_attr("subject").unwrap_or_default().to_owned(),
        subject_set_at: opt_u64(group, "s_t")?,
        is_default_sub_group: group.child("default_sub_group").is_some(),
    })
}

/// `<iq set to=community><links><link link_type="sub_group"><group jid=child/></link></links></iq>`.
pub fn link_group(community: &Jid, child: &Jid) -> Node {
    group_iq(
        "set",
        community,
        Node::new("links").children([Node::new("link")
            .attr("link_type", "sub_group")
            .children([Node::new("group").attr("jid", child.clone())])]),
    )
}

/// `<iq set to=community><unlink unlink_type="sub_group"><group jid=child/></unlink></iq>`.
pub fn unlink_group(community: &Jid, child: &Jid) -> Node {
    group_iq(
        "set",
        community,
        Node::new("unlink")
            .attr("unlink_type", "sub_group")
            .children([Node::new("group").attr("jid", child.clone())]),
    )
}

/// `<iq get to=community><sub_groups/></iq>`: the groups linked to a community; read with
/// [`parse_sub_groups`].
pub fn sub_groups_query(community: &Jid) -> Node {
    group_iq("get", community, Node::new("sub_groups"))
}

/// Reads the answer to [`sub_groups_query`].
pub fn parse_sub_groups(result: &Node) -> Result<Vec<LinkedGroup>, ResponseError> {
    result
        .child("sub_groups")
        .ok_or(ResponseError::Missing("sub_groups"))?
        .children_by_tag("group")
        .map(parse_linked_group)
        .collect()
}

/// `<iq get to=community><linked_groups_participants/></iq>`: the members of all of a community's groups; read
/// with [`parse_linked_groups_participants`].
pub fn linked_groups_participants_query(community: &Jid) -> Node {
    group_iq("get", community, Node::new("linked_groups_participants"))
}

/// Reads the answer to [`linked_groups_participants_query`].
pub fn parse_linked_groups_participants(result: &Node) -> Result<Vec<GroupParticipant>, ResponseError> {
    participant_list(
        result
            .child("linked_groups_participants")
            .ok_or(ResponseError::Missing("linked_groups_participants"))?,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pn(user: &str) -> Jid {
        Jid::new(user, Jid::DEFAULT_USER_SERVER)
    }

    fn lid(user: &str) -> Jid {
        Jid::new(user, Jid::LID_SERVER)
    }

    fn full_group() -> Node {
        Node::new("group")
            .attr("id", "120363001")
            .attr("creator", pn("111"))
            .attr("subject", "Friends")
            .attr("s_t", "1700000000")
            .attr("s_o", pn("111"))
            .attr("creation", "1690000000")
            .attr("size", "2")
            .attr("addressing_mode", "pn")
            .attr("p_v_id", "pv1")
            .children([
                Node::new("participant")
                    .attr("jid", pn("111"))
                    .attr("lid", lid("900"))
                    .attr("type", "superadmin"),
                Node::new("participant")
                    .attr("jid", lid("901"))
                    .attr("phone_number", pn("222")),
                Node::new("description")
                    .attr("id", "D1")
                    .attr("participant", pn("111"))
                    .attr("t", "1700000001")
                    .children([Node::new("body").bytes(b"About us".to_vec())]),
                Node::new("announcement"),
                Node::new("locked"),
                Node::new("ephemeral").attr("expiration", "86400"),
                Node::new("member_add_mode").bytes(b"admin_add".to_vec()),
                Node::new("membership_approval_mode").children([Node::new("group_join").attr("state", "on")]),
                Node::new("linked_parent").attr("jid", Jid::new("120363999", Jid::GROUP_SERVER)),
                Node::new("something_new"),
            ])
    }

    #[test]
    fn group_node_reads_every_field() {
        let info = parse_group_info(&Node::new("iq").children([full_group()])).unwrap();
        assert_eq!(info.jid, Jid::new("120363001", Jid::GROUP_SERVER));
        assert_eq!(info.owner, Some(pn("111")));
        assert_eq!(info.subject, "Friends");
        assert_eq!(info.subject_set_at, Some(1_700_000_000));
        assert_eq!(info.created, Some(1_690_000_000));
        assert_eq!(info.participant_count, Some(2));
        assert_eq!(info.addressing_mode, Some(AddressingMode::PhoneNumber));
        let topic = info.topic.as_ref().unwrap();
        assert_eq!((topic.text.as_str(), topic.id.as_str()), ("About us", "D1"));
        assert_eq!(topic.set_by, Some(pn("111")));
        assert!(info.announce && info.locked && info.join_approval_required);
        assert_eq!(info.ephemeral_timer, Some(86_400));
        assert_eq!(info.member_add_mode, Some(MemberAddMode::AdminAdd));
        assert_eq!(info.linked_parent, Some(Jid::new("120363999", Jid::GROUP_SERVER)));
        let owner = &info.participants[0];
        assert!(owner.is_admin && owner.is_super_admin);
        assert_eq!(
            (owner.phone_number.clone(), owner.lid.clone()),
            (Some(pn("111")), Some(lid("900")))
        );
        let member = &info.participants[1];
        assert!(!member.is_admin);
        assert_eq!(
            (member.phone_number.clone(), member.lid.clone()),
            (Some(pn("222")), Some(lid("901")))
        );
        assert_eq!(member.status(), 200);
    }

    #[test]
    fn defaults_and_an_explicit_off_approval() {
        let group = Node::new("group")
            .attr("id", "1-2")
            .children([Node::new("membership_approval_mode")
                .children([Node::new("group_join").attr("state", "off")])]);
        let info = parse_group_node(&group).unwrap();
        assert!(!info.join_approval_required && !info.announce && !info.locked);
        assert_eq!(info.topic, None);
        assert_eq!(info.ephemeral_timer, None);
    }

    #[test]
    fn malformed_answers_are_errors() {
        let check = |group: Node| parse_group_info(&Node::new("iq").children([group]));
        assert_eq!(
            parse_group_info(&Node::new("iq")),
            Err(ResponseError::Missing("group"))
        );
        assert_eq!(check(Node::new("group")), Err(ResponseError::Missing("group id")));
        assert_eq!(
            check(Node::new("group").attr("id", "")),
            Err(ResponseError::Invalid("group id"))
        );
        assert_eq!(
            check(Node::new("group").attr("id", "1").attr("size", "many")),
            Err(ResponseError::Invalid("size"))
        );
        assert_eq!(
            check(Node::new("group").attr("id", "1").attr("size", "99999999999")),
            Err(ResponseError::Invalid("size"))
        );
        assert_eq!(
            check(
                Node::new("group")
                    .attr("id", "1")
                    .children([Node::new("participant")])
            ),
            Err(ResponseError::Missing("participant jid"))
        );
        assert_eq!(
            check(
                Node::new("group")
                    .attr("id", "1")
                    .children([Node::new("description").children([Node::new("body").bytes(b"x".to_vec())])])
            ),
            Err(ResponseError::Missing("description id"))
        );
        assert_eq!(
            check(
                Node::new("group")
                    .attr("id", "1")
                    .children([Node::new("ephemeral").attr("expiration", "99999999999")])
            ),
            Err(ResponseError::Invalid("expiration"))
        );
        let huge = Node::new("group").attr("id", "1").children(
            (0..=MAX_PARTICIPANTS).map(|i| Node::new("participant").attr("jid", pn(&i.to_string()))),
        );
        assert_eq!(check(huge), Err(ResponseError::Invalid("participant count")));
    }

    #[test]
    fn create_carries_members_and_settings() {
        let request = CreateGroup {
            subject: "Team".to_owned(),
            participants: vec![Jid::with_device("222", Jid::DEFAULT_USER_SERVER, 3)],
            announce: true,
            ephemeral_timer: Some(604_800),
            join_approval_required: true,
            ..CreateGroup::default()
        };
        let iq = create_group(&request);
        assert_eq!(iq.optional_str_attr("xmlns"), Some("w:g2"));
        assert_eq!(iq.jid_attr("to").unwrap(), group_server());
        let create = iq.child("create").unwrap();
        assert_eq!(create.optional_str_attr("subject"), Some("Team"));
        assert_eq!(
            create.child("participant").unwrap().jid_attr("jid").unwrap(),
            pn("222")
        );
        assert_eq!(
            content_text(create.child("member_add_mode").unwrap()).unwrap(),
            "all_member_add"
        );
        assert!(create.child("announcement").is_some() && create.child("locked").is_none());
        assert_eq!(
            create.child("ephemeral").unwrap().optional_str_attr("expiration"),
            Some("604800")
        );
        let join = create
            .child("membership_approval_mode")
            .unwrap()
            .child("group_join")
            .unwrap();
        assert_eq!(join.optional_str_attr("state"), Some("on"));
        let community = create_group(&CreateGroup {
            community: true,
            ..CreateGroup::default()
        });
        assert!(community.child("create").unwrap().child("parent").is_some());
    }

    #[test]
    fn participant_change_reads_per_participant_codes() {
        let iq = update_participants(
            &Jid::new("1-2", Jid::GROUP_SERVER),
            ParticipantChange::Add,
            &[pn("222")],
        );
        assert_eq!(iq.child("add").unwrap().child_nodes().len(), 1);
        let answer = Node::new("iq").children([Node::new("add").children([
            Node::new("participant").attr("jid", pn("222")),
            Node::new("participant")
                .attr("jid", pn("333"))
                .attr("error", "409"),
            Node::new("participant")
                .attr("jid", pn("444"))
                .attr("error", "403")
                .children([Node::new("add_request")
                    .attr("code", "C0DE")
                    .attr("expiration", "1700")]),
        ])]);
        let lines = parse_participant_change(&answer, ParticipantChange::Add).unwrap();
        let codes: Vec<u16> = lines.iter().map(GroupParticipant::status).collect();
        assert_eq!(codes, [200, 409, 403]);
        assert_eq!(
            lines[2].add_request,
            Some(AddRequest {
                code: "C0DE".to_owned(),
                expiration: 1700
            })
        );
        assert_eq!(
            parse_participant_change(&answer, ParticipantChange::Remove),
            Err(ResponseError::Missing("participant change"))
        );
        let bad =
            Node::new("iq")
                .children([Node::new("add")
                    .children([Node::new("participant").attr("jid", pn("1")).attr("error", "x")])]);
        assert_eq!(
            parse_participant_change(&bad, ParticipantChange::Add),
            Err(ResponseError::Invalid("participant error"))
        );
    }

    #[test]
    fn settings_requests() {
        let group = Jid::new("1-2", Jid::GROUP_SERVER);
        assert!(set_locked(&group, true).child("locked").is_some());
        assert!(set_locked(&group, false).child("unlocked").is_some());
        assert!(set_announce(&group, false).child("not_announcement").is_some());
        assert!(set_ephemeral(&group, None).child("not_ephemeral").is_some());
        let description = set_description(&group, Some("D1"), "D2", "new text");
        let node = description.child("description").unwrap();
        assert_eq!(node.optional_str_attr("prev"), Some("D1"));
        assert_eq!(content_text(node.child("body").unwrap()).unwrap(), "new text");
        let delete = set_description(&group, None, "D3", "");
        assert_eq!(
            delete.child("description").unwrap().optional_str_attr("delete"),
            Some("true")
        );
        assert_eq!(
            content_text(set_subject(&group, "S").child("subject").unwrap()).unwrap(),
            "S"
        );
        let photo = set_group_photo(&group, Some(b"\xff\xd8jpeg"));
        assert_eq!(photo.jid_attr("target").unwrap(), group);
        assert_eq!(
            photo.child("picture").unwrap().content_bytes().unwrap().as_ref(),
            b"\xff\xd8jpeg"
        );
        assert_eq!(
            parse_photo_id(&Node::new("iq").children([Node::new("picture").attr("id", "77")])).unwrap(),
            "77"
        );
        assert_eq!(
            parse_photo_id(&Node::new("iq")),
            Err(ResponseError::Missing("picture"))
        );
    }

    #[test]
    fn invite_links_and_joins() {
        let answer = Node::new("iq").children([Node::new("invite").attr("code", "AbC")]);
        let link = parse_invite_link(&answer).unwrap();
        assert_eq!(link, "https://chat.whatsapp.com/AbC");
        assert_eq!(
            join_with_link(&link)
                .child("invite")
                .unwrap()
                .optional_str_attr("code"),
            Some("AbC")
        );
        assert_eq!(
            group_info_from_link("AbC")
                .child("invite")
                .unwrap()
                .optional_str_attr("code"),
            Some("AbC")
        );
        let group = Jid::new("1-2", Jid::GROUP_SERVER);
        assert_eq!(
            parse_join_with_link(&Node::new("iq").children([Node::new("group").attr("jid", group.clone())])),
            Ok(JoinOutcome::Joined(group.clone()))
        );
        assert_eq!(
            parse_join_with_link(
                &Node::new("iq")
                    .children([Node::new("membership_approval_request").attr("jid", group.clone())])
            ),
            Ok(JoinOutcome::Requested(group))
        );
        assert_eq!(
            parse_join_with_link(&Node::new("iq")),
            Err(ResponseError::Missing("group"))
        );
        assert_eq!(
            parse_invite_link(&Node::new("iq")),
            Err(ResponseError::Missing("invite"))
        );
    }

    #[test]
    fn join_requests_and_sub_groups() {
        let answer =
            Node::new("iq").children([Node::new("membership_approval_requests").children([Node::new(
                "membership_approval_request",
            )
            .attr("jid", pn("555"))
            .attr("request_time", "1700")])]);
        assert_eq!(
            parse_join_requests(&answer).unwrap(),
            [JoinRequest {
                jid: pn("555"),
                requested_at: Some(1700)
            }]
        );
        let approved = Node::new("iq").children([Node::new("membership_requests_action")
            .children([Node::new("approve").children([Node::new("participant").attr("jid", pn("555"))])])]);
        assert_eq!(
            parse_join_request_action(&approved, true).unwrap()[0].jid,
            pn("555")
        );
        assert!(parse_join_request_action(&approved, false).is_err());
        let subs = Node::new("iq").children([Node::new("sub_groups").children([Node::new("group")
            .attr("id", "777")
            .attr("subject", "Sub")
            .children([Node::new("default_sub_group")])])]);
        let list = parse_sub_groups(&subs).unwrap();
        assert_eq!(list[0].jid, Jid::new("777", Jid::GROUP_SERVER));
        assert!(list[0].is_default_sub_group);
        assert_eq!(
            parse_sub_groups(&Node::new("iq")),
            Err(ResponseError::Missing("sub_groups"))
        );
    }
}
