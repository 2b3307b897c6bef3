//! The server's side of groups and communities (`w:g2`, and the group photo of `w:profile:picture`): it keeps
//! each group's members, admins and settings, enforces who may do what, answers as WhatsApp does (whatsmeow
//! `group.go` reads the answers), and tells the members' devices of every change with a
//! `<notification type="w:gp2">` queued until acknowledged.
//!
//! Refusals: 401 when the requester is not an admin where one must be, 403 when not a member, 404 for an unknown
//! group, 406 for an unknown invite code, 409 for a description change whose `prev` is not the current one, 410
//! for a revoked invite code, 400 for a malformed request. Per-participant results carry `error` codes: 404 not
//! on WhatsApp (or not in the group, or no pending request), 409 already a member, 403 the creator cannot be
//! removed or demoted.

use std::collections::BTreeSet;

use rand::distributions::{Alphanumeric, DistString};
use rand::rngs::OsRng;
use whatsapp_binary::{Jid, Node};

use crate::ServerEvent;
use crate::routing::{deliver, resolve};
use crate::state::{Shared, State, device_jid, unix_now};

/// A group's description.
#[derive(Debug, Clone)]
pub(crate) struct Description {
    pub(crate) id: String,
    pub(crate) text: String,
    pub(crate) by: String,
    pub(crate) at: u64,
}

/// A group: its subject, members (account phone numbers) and admins, and its settings.
#[derive(Debug, Clone)]
pub(crate) struct Group {
    pub(crate) subject: String,
    pub(crate) subject_at: u64,
    pub(crate) subject_by: Option<String>,
    /// The creator, the group's super admin.
    pub(crate) creator: Option<String>,
    pub(crate) created: u64,
    pub(crate) members: Vec<String>,
    /// Admins other than the creator.
    pub(crate) admins: BTreeSet<String>,
    pub(crate) description: Option<Description>,
    pub(crate) announce: bool,
    pub(crate) locked: bool,
    pub(crate) ephemeral: u32,
    pub(crate) join_approval: bool,
    pub(crate) admin_add_only: bool,
    pub(crate) invite_code: String,
    pub(crate) revoked_codes: Vec<String>,
    /// Who asked to join and when.
    pub(crate) join_requests: Vec<(String, u64)>,
    /// The photo: its id and JPEG bytes.
    pub(crate) photo: Option<(String, Vec<u8>)>,
    pub(crate) is_parent: bool,
    /// The community (group id) this group is linked to.
    pub(crate) linked_parent: Option<String>,
    /// Whether members are addressed by LID (`addressing_mode="lid"`, what WhatsApp creates today) rather than
    /// by phone number.
    pub(crate) lid: bool,
}

impl Group {
    /// A new LID-addressed group with `members`, the first of them its creator and super admin.
    pub(crate) fn new(subject: &str, members: Vec<String>) -> Group {
        let now = unix_now();
        Group {
            subject: subject.to_owned(),
            subject_at: now,
            subject_by: members.first().cloned(),
            creator: members.first().cloned(),
            created: now,
            members,
            admins: BTreeSet::new(),
            description: None,
            announce: false,
            locked: false,
            ephemeral: 0,
            join_approval: false,
            admin_add_only: false,
            invite_code: new_code(),
            revoked_codes: Vec::new(),
            join_requests: Vec::new(),
            photo: None,
            is_parent: false,
            linked_parent: None,
            lid: true,
        }
    }

    fn is_member(&self, number: &str) -> bool {
        self.members.iter().any(|m| m == number)
    }

    fn is_admin(&self, number: &str) -> bool {
        self.creator.as_deref() == Some(number) || self.admins.contains(number)
    }
}

/// A fresh invite code (22 characters, as WhatsApp's).
fn new_code() -> String {
    Alphanumeric.sample_string(&mut OsRng, 22)
}

fn pn(number: &str) -> Jid {
    Jid::new(number, Jid::DEFAULT_USER_SERVER)
}

fn group_jid(id: &str) -> Jid {
    Jid::new(id, Jid::GROUP_SERVER)
}

/// How account `number` is named in `group`: by LID in a LID-addressed group, else by phone number.
fn member_jid(state: &State, group: &Group, number: &str) -> Jid {
    match state.accounts.get(number) {
        Some(account) if group.lid => Jid::new(account.lid_user.clone(), Jid::LID_SERVER),
        _ => pn(number),
    }
}

/// A `<participant jid>` naming account `number` as `group` addresses it, with the other address beside
/// (`phone_number` for a LID, `lid` for a phone number), as whatsmeow `group.go` parseParticipant reads it.
fn member_node(state: &State, group: &Group, number: &str) -> Node {
    let node = Node::new("participant").attr("jid", member_jid(state, group, number));
    match state.accounts.get(number) {
        Some(_) if group.lid => node.attr("phone_number", pn(number)),
        Some(account) => node.attr("lid", Jid::new(account.lid_user.clone(), Jid::LID_SERVER)),
        None => node,
    }
}

/// How account `number` is named in group `group_id` (see [`member_jid`]); by phone number when the group is gone.
fn member_jid_in(state: &State, group_id: &str, number: &str) -> Jid {
    match state.groups.get(group_id) {
        Some(group) => member_jid(state, group, number),
        None => pn(number),
    }
}

/// A `<participant jid>` for account `number` in group `group_id` (see [`member_node`]); by phone number when the
/// group is gone.
fn member_node_in(state: &State, group_id: &str, number: &str) -> Node {
    match state.groups.get(group_id) {
        Some(group) => member_node(state, group, number),
        None => Node::new("participant").attr("jid", pn(number)),
    }
}

/// The `<participant>` of a member in the group's metadata: addressed as the group addresses members, with the
/// other address and the admin type.
fn participant_node(state: &State, group: &Group, number: &str) -> Node {
    let mut node = member_node(state, group, number);
    if group.creator.as_deref() == Some(number) {
        node = node.attr("type", "superadmin");
    } else if group.admins.contains(number) {
        node = node.attr("type", "admin");
    }
    node
}

/// The `<group>` element of the metadata answers, as whatsmeow's `parseGroupNode` reads it.
fn group_node(state: &State, id: &str, group: &Group) -> Node {
    let mut node = Node::new("group")
        .attr("id", id.to_owned())
        .attr("subject", group.subject.clone())
        .attr("s_t", group.subject_at.to_string())
        .attr("creation", group.created.to_string())
        .attr("size", group.members.len().to_string())
        .attr("addressing_mode", if group.lid { "lid" } else { "pn" });
    if let Some(by) = &group.subject_by {
        node = node.attr("s_o", member_jid(state, group, by));
        if group.lid {
            node = node.attr("s_o_pn", pn(by));
        }
    }
    if let Some(creator) = &group.creator {
        node = node.attr("creator", member_jid(state, group, creator));
        if group.lid {
            node = node.attr("creator_pn", pn(creator));
        }
    }
    let mut children: Vec<Node> = group
        .members
        .iter()
        .map(|number| participant_node(state, group, number))
        .collect();
    if let Some(description) = &group.description {
        children.push(
            Node::new("description")
                .attr("id", description.id.clone())
                .attr("participant", member_jid(state, group, &description.by))
                .attr("t", description.at.to_string())
                .children([Node::new("body").bytes(description.text.as_bytes().to_vec())]),
        );
    }
    if group.announce {
        children.push(Node::new("announcement"));
    }
    if group.locked {
        children.push(Node::new("locked"));
    }
    if group.ephemeral > 0 {
        children.push(Node::new("ephemeral").attr("expiration", group.ephemeral.to_string()));
    }
    let mode = if group.admin_add_only {
        "admin_add"
    } else {
        "all_member_add"
    };
    children.push(Node::new("member_add_mode").bytes(mode.as_bytes().to_vec()));
    if group.join_approval {
        children.push(
            Node::new("membership_approval_mode").children([Node::new("group_join").attr("state", "on")]),
        );
    }
    if group.is_parent {
        children.push(Node::new("parent").attr("default_membership_approval_mode", "request_required"));
    }
    if let Some(parent) = &group.linked_parent {
        children.push(Node::new("linked_parent").attr("jid", group_jid(parent)));
    }
    node.children(children)
}

fn result(id: &str, from: Jid) -> Node {
    Node::new("iq")
        .attr("from", from)
        .attr("type", "result")
        .attr("id", id.to_owned())
}

/// Queues a `w:gp2` notification with `children` for every device of `recipients`, except the acting device.
fn notify(
    shared: &Shared,
    state: &mut State,
    group_id: &str,
    actor: &Jid,
    recipients: &[String],
    children: Vec<Node>,
) {
    let id = shared.next_stanza_id();
    let stanza = Node::new("notification")
        .attr("from", group_jid(group_id))
        .attr("type", "w:gp2")
        .attr("id", id.clone());
    // In a LID group the actor is named by LID with the phone number beside (whatsmeow `notification.go`
    // reads `participant` and `participant_pn`).
    let stanza = match state.groups.get(group_id) {
        Some(group) if group.lid => stanza
            .attr("participant", member_jid(state, group, actor.user()))
            .attr("participant_pn", pn(actor.user()))
            .attr("addressing_mode", "lid"),
        _ => stanza.attr("participant", pn(actor.user())),
    };
    let stanza = stanza.attr("t", unix_now().to_string()).children(children);
    let mut devices = Vec::new();
    for number in recipients {
        if let Some(account) = state.accounts.get(number) {
            devices.extend(
                account
                    .devices
                    .keys()
                    .map(|device| device_jid(number, *device))
                    .filter(|device| device != actor),
            );
        }
    }
    for device in devices {
        deliver(state, device, "notification", &id, stanza.clone());
    }
}

fn participants_of(node: &Node) -> Vec<Node> {
    node.children_by_tag("participant").cloned().collect()
}

/// Answers a `w:g2` IQ from `device`, or refuses it with a code.
pub(crate) fn answer(shared: &Shared, id: &str, device: &Jid, iq: &Node) -> Result<Node, u16> {
    let to = iq.jid_attr("to").map_err(|_| 400u16)?;
    let kind = iq.optional_str_attr("type").unwrap_or_default();
    let content = iq.child_nodes().first().ok_or(400u16)?;
    let me = device.user().to_owned();
    let mut state = shared.lock();
    if to.is_server_only() {
        return server_request(shared, &mut state, id, device, &me, kind, content);
    }
    let group_id = to.user().to_owned();
    let group = state.groups.get(&group_id).ok_or(404u16)?;
    let tag = content.tag.as_ref();
    // Joining with an invite message is the one request of someone not (yet) in the group.
    if (kind, tag) == ("set", "accept") {
        if content.optional_str_attr("code") != Some(group.invite_code.as_str()) {
            return Err(406);
        }
        let already = group.is_member(&me);
        join(shared, &mut state, &group_id, device, &me, already, "invite");
        return Ok(result(id, to));
    }
    if !group.is_member(&me) {
        return Err(403);
    }
    let admin = group.is_admin(&me);
    let may_edit_info = admin || !group.locked;
    match (kind, tag) {
        ("get", "query") => {
            shared.emit(ServerEvent::GroupInfoQueried {
                from: device.clone(),
                group: to.clone(),
            });
            let node = group_node(&state, &group_id, group);
            Ok(result(id, to).children([node]))
        }
        ("set", "add" | "remove" | "promote" | "demote") => {
            let allowed = match tag {
                "add" => admin || !group.admin_add_only,
                _ => admin,
            };
            if !allowed {
                return Err(401);
            }
            let lines = change_participants(
                shared,
                &mut state,
                &group_id,
                device,
                tag,
                &participants_of(content),
            );
            Ok(result(id, to).children([Node::new(tag.to_owned()).children(lines)]))
        }
        ("set", "subject") => {
            if !may_edit_info {
                return Err(401);
            }
            let subject = content
                .content_bytes()
                .map(|bytes| String::from_utf8_lossy(bytes).into_owned())
                .ok_or(400u16)?;
            let now = unix_now();
            let group = state.groups.get_mut(&group_id).ok_or(404u16)?;
            group.subject = subject.clone();
            group.subject_at = now;
            group.subject_by = Some(me.clone());
            let members = group.members.clone();
            let change = Node::new("subject")
                .attr("subject", subject)
                .attr("s_t", now.to_string())
                .attr("s_o", member_jid_in(&state, &group_id, &me));
            notify(shared, &mut state, &group_id, device, &members, vec![change]);
            Ok(result(id, to))
        }
        ("set", "description") => {
            if !may_edit_info {
                return Err(401);
            }
            let current = group.description.as_ref().map(|d| d.id.as_str());
            if content.optional_str_attr("prev") != current {
                return Err(409);
            }
            let new_id = content.str_attr("id").map_err(|_| 400u16)?.to_owned();
            let delete = content.optional_str_attr("delete") == Some("true");
            let text = match content.child("body").and_then(Node::content_bytes) {
                Some(body) if !delete => String::from_utf8_lossy(body).into_owned(),
                None if delete => String::new(),
                _ => return Err(400),
            };
            let group = state.groups.get_mut(&group_id).ok_or(404u16)?;
            group.description = (!delete).then(|| Description {
                id: new_id.clone(),
                text: text.clone(),
                by: me.clone(),
                at: unix_now(),
            });
            let members = group.members.clone();
            let change = if delete {
                Node::new("description")
                    .attr("id", new_id)
                    .children([Node::new("delete")])
            } else {
                Node::new("description")
                    .attr("id", new_id)
                    .children([Node::new("body").bytes(text.into_bytes())])
            };
            notify(shared, &mut state, &group_id, device, &members, vec![change]);
            Ok(result(id, to))
        }
        ("set", "ephemeral" | "not_ephemeral") => {
            if !may_edit_info {
                return Err(401);
            }
            let timer = if tag == "ephemeral" {
                u32::try_from(content.u64_attr("expiration").map_err(|_| 400u16)?).map_err(|_| 400u16)?
            } else {
                0
            };
            let group = state.groups.get_mut(&group_id).ok_or(404u16)?;
            group.ephemeral = timer;
            let members = group.members.clone();
            let change = if timer > 0 {
                Node::new("ephemeral").attr("expiration", timer.to_string())
            } else {
                Node::new("not_ephemeral")
            };
            notify(shared, &mut state, &group_id, device, &members, vec![change]);
            Ok(result(id, to))
        }
        (
            "set",
            "locked"
            | "unlocked"
            | "announcement"
            | "not_announcement"
            | "membership_approval_mode"
            | "member_add_mode",
        ) => {
            if !admin {
                return Err(401);
            }
            let group = state.groups.get_mut(&group_id).ok_or(404u16)?;
            let change = match tag {
                "locked" | "unlocked" => {
                    group.locked = tag == "locked";
                    Node::new(tag.to_owned())
                }
                "announcement" | "not_announcement" => {
                    group.announce = tag == "announcement";
                    Node::new(tag.to_owned())
                }
                "membership_approval_mode" => {
                    let state_attr = content
                        .child("group_join")
                        .and_then(|join| join.optional_str_attr("state"))
                        .ok_or(400u16)?;
                    group.join_approval = state_attr == "on";
                    Node::new("membership_approval_mode")
                        .children([Node::new("group_join").attr("state", state_attr.to_owned())])
                }
                _ => {
                    let mode = content.content_bytes().ok_or(400u16)?;
                    group.admin_add_only = match mode.as_ref() {
                        b"admin_add" => true,
                        b"all_member_add" => false,
                        _ => return Err(400),
                    };
                    Node::new("member_add_mode").bytes(mode.to_vec())
                }
            };
            let members = group.members.clone();
            notify(shared, &mut state, &group_id, device, &members, vec![change]);
            Ok(result(id, to))
        }
        (_, "invite") => {
            if !admin {
                return Err(401);
            }
            let group = state.groups.get_mut(&group_id).ok_or(404u16)?;
            if kind == "set" {
                let old = std::mem::replace(&mut group.invite_code, new_code());
                group.revoked_codes.push(old);
                let code = group.invite_code.clone();
                let members = group.members.clone();
                notify(
                    shared,
                    &mut state,
                    &group_id,
                    device,
                    &members,
                    vec![Node::new("invite").attr("code", code.clone())],
                );
                return Ok(result(id, to).children([Node::new("invite").attr("code", code)]));
            }
            Ok(result(id, to).children([Node::new("invite").attr("code", group.invite_code.clone())]))
        }
        ("get", "membership_approval_requests") => {
            if !admin {
                return Err(401);
            }
            let requests = group.join_requests.iter().map(|(number, at)| {
                Node::new("membership_approval_request")
                    .attr("jid", pn(number))
                    .attr("request_time", at.to_string())
            });
            Ok(result(id, to).children([Node::new("membership_approval_requests").children(requests)]))
        }
        ("set", "membership_requests_action") => {
            if !admin {
                return Err(401);
            }
            let action = content.child_nodes().first().ok_or(400u16)?;
            let approve = match action.tag.as_ref() {
                "approve" => true,
                "reject" => false,
                _ => return Err(400),
            };
            let mut lines = Vec::new();
            let mut approved = Vec::new();
            for participant in action.children_by_tag("participant") {
                let jid = participant.jid_attr("jid").map_err(|_| 400u16)?;
                let number = resolve(&state, &jid).map(|(number, _)| number);
                let group = state.groups.get_mut(&group_id).ok_or(404u16)?;
                let position = number
                    .as_ref()
                    .and_then(|number| group.join_requests.iter().position(|(n, _)| n == number));
                let mut line = Node::new("participant").attr("jid", jid.clone());
                match (position, number) {
                    (Some(position), Some(number)) => {
                        group.join_requests.remove(position);
                        if approve {
                            group.members.push(number.clone());
                            approved.push(number);
                        }
                    }
                    _ => line = line.attr("error", "404"),
                }
                lines.push(line);
            }
            if !approved.is_empty() {
                let members = state
                    .groups
                    .get(&group_id)
                    .map(|g| g.members.clone())
                    .unwrap_or_default();
                let add = Node::new("add")
                    .attr("reason", "approval")
                    .children(approved.iter().map(|n| member_node_in(&state, &group_id, n)));
                notify(shared, &mut state, &group_id, device, &members, vec![add]);
            }
            let tag = if approve { "approve" } else { "reject" };
            Ok(result(id, to).children([
                Node::new("membership_requests_action").children([Node::new(tag).children(lines)])
            ]))
        }
        ("set", "links" | "unlink") => {
            if !admin || !group.is_parent {
                return Err(401);
            }
            let link = if tag == "links" {
                content.child("link").ok_or(400u16)?
            } else {
                content
            };
            let child = link
                .child("group")
                .and_then(|g| g.jid_attr("jid").ok())
                .ok_or(400u16)?;
            let sub = state.groups.get_mut(child.user()).ok_or(404u16)?;
            if !sub.is_admin(&me) {
                return Err(401);
            }
            sub.linked_parent = (tag == "links").then(|| group_id.clone());
            let subject = sub.subject.clone();
            let members = state
                .groups
                .get(&group_id)
                .map(|g| g.members.clone())
                .unwrap_or_default();
            let target = Node::new("group").attr("jid", child).attr("subject", subject);
            let change = if tag == "links" {
                Node::new("link")
                    .attr("link_type", "sub_group")
                    .children([target])
            } else {
                Node::new("unlink")
                    .attr("unlink_type", "sub_group")
                    .attr("unlink_reason", "unlink_group")
                    .children([target])
            };
            notify(shared, &mut state, &group_id, device, &members, vec![change]);
            Ok(result(id, to))
        }
        ("get", "sub_groups") => {
            let subs = state
                .groups
                .iter()
                .filter(|(_, g)| g.linked_parent.as_deref() == Some(group_id.as_str()))
                .map(|(sub_id, g)| {
                    Node::new("group")
                        .attr("id", sub_id.clone())
                        .attr("subject", g.subject.clone())
                        .attr("s_t", g.subject_at.to_string())
                });
            Ok(result(id, to).children([Node::new("sub_groups").children(subs.collect::<Vec<_>>())]))
        }
        ("get", "linked_groups_participants") => {
            let mut numbers = BTreeSet::new();
            for (_, sub) in state
                .groups
                .iter()
                .filter(|(_, g)| g.linked_parent.as_deref() == Some(group_id.as_str()))
            {
                numbers.extend(sub.members.iter().cloned());
            }
            let list = numbers
                .iter()
                .map(|number| Node::new("participant").attr("jid", pn(number)));
            Ok(result(id, to).children([Node::new("linked_groups_participants").children(list)]))
        }
        _ => Err(501),
    }
}

/// Requests to `g.us` itself: create, list, leave, and the invite-link lookups and joins.
fn server_request(
    shared: &Shared,
    state: &mut State,
    id: &str,
    device: &Jid,
    me: &str,
    kind: &str,
    content: &Node,
) -> Result<Node, u16> {
    let from = Jid::server_only(Jid::GROUP_SERVER);
    match (kind, content.tag.as_ref()) {
        ("set", "create") => {
            let subject = content.optional_str_attr("subject").unwrap_or_default();
            let mut members = vec![me.to_owned()];
            for participant in content.children_by_tag("participant") {
                let jid = participant.jid_attr("jid").map_err(|_| 400u16)?;
                if let Some((number, _)) = resolve(state, &jid)
                    && !members.contains(&number)
                {
                    members.push(number);
                }
            }
            let mut group = Group::new(subject, members);
            group.lid = !state.pn_groups;
            group.is_parent = content.child("parent").is_some();
            group.locked = content.child("locked").is_some();
            group.announce = content.child("announcement").is_some();
            group.ephemeral = content
                .child("ephemeral")
                .and_then(|e| e.optional_u64_attr("expiration").ok().flatten())
                .and_then(|e| u32::try_from(e).ok())
                .unwrap_or(0);
            group.admin_add_only = content
                .child("member_add_mode")
                .and_then(Node::content_bytes)
                .is_some_and(|mode| mode.as_ref() == b"admin_add");
            group.join_approval = content
                .child("membership_approval_mode")
                .and_then(|m| m.child("group_join"))
                .and_then(|j| j.optional_str_attr("state"))
                == Some("on");
            if let Some(parent) = content.child("linked_parent") {
                let parent = parent.jid_attr("jid").map_err(|_| 400u16)?;
                let community = state.groups.get(parent.user()).ok_or(404u16)?;
                if !community.is_parent || !community.is_admin(me) {
                    return Err(401);
                }
                group.linked_parent = Some(parent.user().to_owned());
            }
            let group_id = format!("1203630{}", shared.next_number() + 10_000_000);
            let node = group_node(state, &group_id, &group);
            let others: Vec<String> = group.members.clone();
            state.groups.insert(group_id.clone(), group);
            notify(
                shared,
                state,
                &group_id,
                device,
                &others,
                vec![Node::new("create").children([node.clone()])],
            );
            Ok(result(id, from).children([node]))
        }
        ("get", "participating") => {
            let state: &State = state;
            let groups: Vec<Node> = state
                .groups
                .iter()
                .filter(|(_, g)| g.is_member(me))
                .map(|(group_id, g)| group_node(state, group_id, g))
                .collect();
            Ok(result(id, from).children([Node::new("groups").children(groups)]))
        }
        ("set", "leave") => {
            let mut left = Vec::new();
            for target in content.children_by_tag("group") {
                let jid = target.jid_attr("id").map_err(|_| 400u16)?;
                let group = state.groups.get_mut(jid.user()).ok_or(404u16)?;
                if !group.is_member(me) {
                    return Err(403);
                }
                let recipients = group.members.clone();
                group.members.retain(|m| m != me);
                group.admins.remove(me);
                let change = Node::new("remove").children([member_node_in(state, jid.user(), me)]);
                notify(shared, state, jid.user(), device, &recipients, vec![change]);
                left.push(Node::new("group").attr("id", jid));
            }
            Ok(result(id, from).children([Node::new("leave").children(left)]))
        }
        (_, "invite") => {
            let code = content.str_attr("code").map_err(|_| 400u16)?;
            let found = state
                .groups
                .iter()
                .find(|(_, g)| g.invite_code == code)
                .map(|(group_id, _)| group_id.clone());
            let Some(group_id) = found else {
                let revoked = state
                    .groups
                    .values()
                    .any(|g| g.revoked_codes.iter().any(|c| c == code));
                return Err(if revoked { 410 } else { 406 });
            };
            let group = state.groups.get(&group_id).ok_or(404u16)?;
            if kind == "get" {
                let node = group_node(state, &group_id, group);
                return Ok(result(id, from).children([node]));
            }
            let jid = group_jid(&group_id);
            if group.join_approval && !group.is_member(me) {
                let group = state.groups.get_mut(&group_id).ok_or(404u16)?;
                if !group.join_requests.iter().any(|(n, _)| n == me) {
                    group.join_requests.push((me.to_owned(), unix_now()));
                }
                return Ok(
                    result(id, from).children([Node::new("membership_approval_request").attr("jid", jid)])
                );
            }
            let already = group.is_member(me);
            join(shared, state, &group_id, device, me, already, "invite");
            Ok(result(id, from).children([Node::new("group").attr("jid", jid)]))
        }
        _ => Err(501),
    }
}

/// Adds `me` to a group it joined by itself (link or invite message) and tells the members.
fn join(
    shared: &Shared,
    state: &mut State,
    group_id: &str,
    device: &Jid,
    me: &str,
    already: bool,
    reason: &str,
) {
    if already {
        return;
    }
    let Some(group) = state.groups.get_mut(group_id) else {
        return;
    };
    group.members.push(me.to_owned());
    let members = group.members.clone();
    let add = Node::new("add")
        .attr("reason", reason.to_owned())
        .children([member_node_in(state, group_id, me)]);
    notify(shared, state, group_id, device, &members, vec![add]);
}

/// Applies add/remove/promote/demote for each participant; returns the answer's lines and tells the members
/// (and those removed) of what changed.
fn change_participants(
    shared: &Shared,
    state: &mut State,
    group_id: &str,
    device: &Jid,
    tag: &str,
    participants: &[Node],
) -> Vec<Node> {
    let mut lines = Vec::new();
    let mut changed = Vec::new();
    let mut recipients = state
        .groups
        .get(group_id)
        .map(|g| g.members.clone())
        .unwrap_or_default();
    for participant in participants {
        let Ok(jid) = participant.jid_attr("jid") else {
            continue;
        };
        let number = resolve(state, &jid.to_non_ad()).map(|(number, _)| number);
        let Some(group) = state.groups.get_mut(group_id) else {
            break;
        };
        let error = match (tag, number) {
            (_, None) => Some("404"),
            ("add", Some(number)) if group.is_member(&number) => Some("409"),
            ("add", Some(number)) => {
                group.members.push(number.clone());
                group.join_requests.retain(|(n, _)| *n != number);
                recipients.push(number.clone());
                changed.push(number);
                None
            }
            (_, Some(number)) if !group.is_member(&number) => Some("404"),
            ("remove" | "demote", Some(number)) if group.creator.as_deref() == Some(number.as_str()) => {
                Some("403")
            }
            ("remove", Some(number)) => {
                group.members.retain(|m| *m != number);
                group.admins.remove(&number);
                changed.push(number);
                None
            }
            ("promote", Some(number)) => {
                group.admins.insert(number.clone());
                changed.push(number);
                None
            }
            (_, Some(number)) => {
                group.admins.remove(&number);
                changed.push(number);
                None
            }
        };
        let mut line = Node::new("participant").attr("jid", jid);
        if let Some(error) = error {
            line = line.attr("error", error);
        }
        lines.push(line);
    }
    if !changed.is_empty() {
        let change = Node::new(tag.to_owned()).children(
            changed
                .iter()
                .map(|number| member_node_in(state, group_id, number)),
        );
        notify(shared, state, group_id, device, &recipients, vec![change]);
    }
    lines
}

/// Where a group's photo is (`w:profile:picture` get with `target` a group), for its members: the photo is
/// served by the media host at the URL answered. 401 for a non-member, 404 when there is no photo,
/// `status="304"` when the caller's id is current.
pub(crate) fn photo(shared: &Shared, id: &str, device: &Jid, iq: &Node) -> Result<Node, u16> {
    let target = iq.jid_attr("target").map_err(|_| 400u16)?;
    let query = iq.child("picture").ok_or(400u16)?;
    let (picture_id, jpeg) = {
        let state = shared.lock();
        let group = state.groups.get(target.user()).ok_or(404u16)?;
        if !group.is_member(device.user()) {
            return Err(401);
        }
        group.photo.clone().ok_or(404u16)?
    };
    if query.optional_str_attr("id") == Some(picture_id.as_str()) {
        return Ok(
            result(id, crate::state::server_jid()).children([Node::new("picture").attr("status", "304")])
        );
    }
    let kind = query.optional_str_attr("type").unwrap_or("image").to_owned();
    let direct_path = crate::media::MediaHost::picture_path(target.user(), &picture_id, &kind);
    // The real server scales a preview down; the test server serves the same JPEG for both kinds.
    let url = shared.media.get().ok_or(503u16)?.host_picture(&direct_path, jpeg);
    Ok(
        result(id, crate::state::server_jid()).children([Node::new("picture")
            .attr("id", picture_id)
            .attr("type", kind)
            .attr("url", url)
            .attr("direct_path", direct_path)]),
    )
}

/// Sets or removes a group's photo (`w:profile:picture` with `target` a group): members may when the group is
/// not locked, admins always. Answers with the picture's id.
pub(crate) fn set_photo(shared: &Shared, id: &str, device: &Jid, iq: &Node) -> Result<Node, u16> {
    let target = iq.jid_attr("target").map_err(|_| 400u16)?;
    let mut state = shared.lock();
    let group = state.groups.get_mut(target.user()).ok_or(404u16)?;
    let me = device.user();
    if !group.is_member(me) {
        return Err(403);
    }
    if group.locked && !group.is_admin(me) {
        return Err(401);
    }
    let Some(picture) = iq.child("picture") else {
        group.photo = None;
        return Ok(result(id, crate::state::server_jid()));
    };
    let jpeg = picture.content_bytes().ok_or(400u16)?;
    // A JPEG starts with the SOI marker; anything else is refused as WhatsApp refuses other formats.
    if !jpeg.starts_with(&[0xFF, 0xD8]) {
        return Err(406);
    }
    let picture_id = shared.next_number().to_string();
    group.photo = Some((picture_id.clone(), jpeg.to_vec()));
    Ok(result(id, crate::state::server_jid()).children([Node::new("picture").attr("id", picture_id)]))
}
