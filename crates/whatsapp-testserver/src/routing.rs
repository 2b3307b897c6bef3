//! Messaging between accounts: device lists (`usync`), prekey bundles, and the fan-out of `<message>` stanzas to
//! every addressed device with an offline queue that redelivers until the device acknowledges
//! (protocol-facts §3.5-3.7).
//!
//! Each device has an inbox of messages it has not acknowledged. A message is sent to a live device when it
//! arrives, and the whole inbox is sent again when the device next sets itself active after a login, so a message
//! survives both an offline recipient and a connection lost before the ack.

use whatsapp_binary::{Content, Jid, Node};

use crate::state::{Command, State, device_jid, server_jid, unix_now};

/// A message waiting in a device's inbox.
#[derive(Debug, Clone)]
pub(crate) struct Queued {
    /// The stanza's tag (`message` or `receipt`), which the device's ack names as its `class`.
    pub(crate) class: &'static str,
    /// The stanza id (what the device's ack names).
    pub(crate) id: String,
    /// The stanza as delivered.
    pub(crate) stanza: Node,
}

/// The account number (phone-number user) and device id behind a device JID on either server.
pub(crate) fn resolve(state: &State, jid: &Jid) -> Option<(String, u16)> {
    let number = match jid.server() {
        Jid::DEFAULT_USER_SERVER => state
            .accounts
            .contains_key(jid.user())
            .then(|| jid.user().to_owned())?,
        Jid::LID_SERVER => state
            .accounts
            .iter()
            .find(|(_, account)| account.lid_user == jid.user())
            .map(|(number, _)| number.clone())?,
        _ => return None,
    };
    Some((number, jid.device()))
}

/// The answer to a `usync` device-list query: the linked companions of each listed user, named as the query named
/// the user (phone number or LID). The phone (device 0) is not listed: simulated phones have no Signal keys. The
/// asking account is told of later changes to the listed accounts' devices ([`devices_changed`]).
pub(crate) fn usync_answer(
    state: &mut State,
    asker: &Jid,
    id: &str,
    iq: &Node,
) -> Result<Node, &'static str> {
    let usync = iq.child("usync").ok_or("usync query without <usync>")?;
    let list = usync.child("list").ok_or("usync query without <list>")?;
    for user in list.children_by_tag("user") {
        if let Some((number, _)) = user
            .jid_attr("jid")
            .ok()
            .and_then(|jid| resolve(state, &jid.to_non_ad()))
            && number != asker.user()
        {
            state
                .device_watchers
                .entry(number)
                .or_default()
                .insert(asker.user().to_owned());
        }
    }
    let state = &*state;
    let users = list.children_by_tag("user").filter_map(|user| {
        let jid = user.jid_attr("jid").ok()?.to_non_ad();
        let devices = resolve(state, &jid)
            .and_then(|(number, _)| state.accounts.get(&number))
            .map(|account| {
                account
                    .devices
                    .keys()
                    .map(|device| Node::new("device").attr("id", device.to_string()))
                    .collect::<Vec<_>>()
            })
            .unwrap_or_default();
        Some(
            Node::new("user")
                .attr("jid", jid)
                .children([Node::new("devices").children([Node::new("device-list").children(devices)])]),
        )
    });
    let answer = Node::new("usync")
        .attr(
            "sid",
            usync.optional_str_attr("sid").unwrap_or_default().to_owned(),
        )
        .children([Node::new("list").children(users.collect::<Vec<_>>())]);
    Ok(Node::new("iq")
        .attr("from", server_jid())
        .attr("type", "result")
        .attr("id", id.to_owned())
        .children([answer]))
}

/// The devices of account `number` a device list names, on the server of `named` (phone number or LID).
fn listed_devices(state: &State, number: &str, named: &Jid) -> Vec<Jid> {
    let Some(account) = state.accounts.get(number) else {
        return Vec::new();
    };
    account
        .devices
        .keys()
        .map(|&device| match named.server() {
            Jid::LID_SERVER => crate::state::device_lid(&account.lid_user, device),
            _ => device_jid(number, device),
        })
        .collect()
}

/// The participant hash of a device set, as clients compute it (protocol-facts §3.6): `2:` and the unpadded
/// base64 of the first six bytes of SHA-256 over the sorted `user.agent:device@server` strings.
pub(crate) fn participant_hash(devices: &[Jid]) -> String {
    use base64::Engine as _;
    use sha2::Digest as _;
    let mut names: Vec<String> = devices
        .iter()
        .map(|d| format!("{}.{}:{}@{}", d.user(), d.raw_agent(), d.device(), d.server()))
        .collect();
    names.sort();
    let digest = sha2::Sha256::digest(names.concat().as_bytes());
    format!(
        "2:{}",
        base64::engine::general_purpose::STANDARD_NO_PAD.encode(&digest[..6])
    )
}

/// The ack of a message, with the server's participant hash when the message carried a different one (its sender
/// used a stale device list, so some device got no copy).
fn ack_with_phash(ack: Node, message: &Node, expected: impl FnOnce() -> Vec<Jid>) -> Node {
    match message.optional_str_attr("phash") {
        Some(sent) => {
            let hash = participant_hash(&expected());
            if hash == sent {
                ack
            } else {
                ack.attr("phash", hash)
            }
        }
        None => ack,
    }
}

/// Announces a linked or unlinked device of account `number` (`kind` is `add` or `remove`) with a `devices`
/// notification carrying the new device-list hash, to every device of the accounts that asked for the list and to
/// the account's other devices; queued like messages, so an offline device gets it at its next login.
pub(crate) fn devices_changed(state: &mut State, number: &str, kind: &'static str, device_id: u16) {
    if state.faults.silent_device_changes {
        return;
    }
    let user = Jid::new(number, Jid::DEFAULT_USER_SERVER);
    let hash = participant_hash(&listed_devices(state, number, &user));
    let mut told: Vec<String> = state
        .device_watchers
        .get(number)
        .map(|watchers| watchers.iter().cloned().collect())
        .unwrap_or_default();
    told.push(number.to_owned());
    for account in told {
        let devices: Vec<u16> = match state.accounts.get(&account) {
            Some(a) => a.devices.keys().copied().collect(),
            None => continue,
        };
        for device in devices {
            if account == number && device == device_id {
                continue;
            }
            let id = format!("devices-{}", state.next_notification_id());
            let notification = Node::new("notification")
                .attr("from", user.clone())
                .attr("type", "devices")
                .attr("id", id.clone())
                .attr("t", unix_now().to_string())
                .children([Node::new(kind)
                    .attr("device_hash", hash.clone())
                    .children([Node::new("device").attr("jid", device_jid(number, device_id))])]);
            deliver(
                state,
                device_jid(&account, device),
                "notification",
                &id,
                notification,
            );
        }
    }
}

fn id3(id: u32) -> Vec<u8> {
    id.to_be_bytes()[1..].to_vec()
}

/// The answer to a prekey-bundle request. Each bundle takes one one-time prekey off the server (the lowest id),
/// as the real server hands each prekey out once; a device without prekeys left gets a bundle without `<key>`.
pub(crate) fn bundle_answer(state: &mut State, id: &str, iq: &Node) -> Result<Node, &'static str> {
    let key = iq.child("key").ok_or("bundle request without <key>")?;
    let mut users = Vec::new();
    for user in key.children_by_tag("user") {
        let jid = user
            .jid_attr("jid")
            .map_err(|_| "bundle request user without a jid")?;
        let linked = resolve(state, &jid)
            .and_then(|(number, device)| state.accounts.get_mut(&number)?.devices.get_mut(&device));
        let Some(linked) = linked else {
            users.push(
                Node::new("user").attr("jid", jid).children([Node::new("error")
                    .attr("code", "404")
                    .attr("text", "item-not-found")]),
            );
            continue;
        };
        let registration = &linked.registration;
        let mut children = vec![
            Node::new("registration").bytes(registration.registration_id.to_be_bytes().to_vec()),
            Node::new("type").bytes(vec![5]),
            Node::new("identity").bytes(registration.identity.to_vec()),
            Node::new("skey").children([
                Node::new("id").bytes(id3(registration.signed_prekey_id)),
                Node::new("value").bytes(registration.signed_prekey.to_vec()),
                Node::new("signature").bytes(registration.signed_prekey_signature.to_vec()),
            ]),
        ];
        if let Some((prekey_id, public)) = linked.prekeys.pop_first() {
            children.push(Node::new("key").children([
                Node::new("id").bytes(id3(prekey_id)),
                Node::new("value").bytes(public.to_vec()),
            ]));
        }
        users.push(Node::new("user").attr("jid", jid).children(children));
    }
    Ok(Node::new("iq")
        .attr("from", server_jid())
        .attr("type", "result")
        .attr("id", id.to_owned())
        .children([Node::new("list").children(users)]))
}

/// Checks an outgoing `<message>` from `sender`, queues one copy per addressed device, sends the copies to the
/// devices that are online, and returns the ack for the sender and the number of copies. A malformed stanza is
/// refused with the reason.
pub(crate) fn route_message(
    state: &mut State,
    sender: &Jid,
    message: &Node,
) -> Result<(Node, usize), String> {
    let id = message.str_attr("id").map_err(|e| e.to_string())?.to_owned();
    let to = message.jid_attr("to").map_err(|e| e.to_string())?;
    if to.is_group() {
        return route_group_message(state, sender, &to, message);
    }
    if to.is_status_broadcast() {
        return route_status_message(state, sender, message);
    }
    if message.optional_str_attr("category") == Some("peer") && to.device() == 0 {
        return route_to_phone(state, sender, &to, &id, message);
    }
    let kind = message.optional_str_attr("type").unwrap_or("text").to_owned();
    let identity = message.child("device-identity").cloned();
    // Either a fan-out (`<participants><to jid><enc/></to>...`) or a copy for one device (`to` is the device and
    // the `<enc>` is a direct child), as a resend after a retry receipt is.
    let targets: Vec<(Jid, &Node)> = match message.child("participants") {
        Some(participants) => participants
            .children_by_tag("to")
            .map(|target| {
                let device = target.jid_attr("jid").map_err(|e| e.to_string())?;
                let enc = target.child("enc").ok_or("<to> without <enc>")?;
                Ok((device, enc))
            })
            .collect::<Result<_, String>>()?,
        None => {
            let enc = message
                .child("enc")
                .ok_or("message without <participants> or <enc>")?;
            if to.device() == 0 && message.optional_str_attr("device_fanout") != Some("false") {
                return Err("a single-device message names no device".to_owned());
            }
            vec![(to.clone(), enc)]
        }
    };
    let mut copies = Vec::new();
    for (device, enc) in targets {
        let enc_type = enc.optional_str_attr("type").unwrap_or_default();
        if !matches!(enc_type, "pkmsg" | "msg") {
            return Err(format!("enc type {enc_type:?} in a one-to-one message"));
        }
        if !matches!(enc.content, Content::Bytes(ref b) if !b.is_empty()) {
            return Err("empty <enc>".to_owned());
        }
        if enc_type == "pkmsg" && identity.is_none() {
            return Err("pkmsg without <device-identity>".to_owned());
        }
        let (number, device_id) =
            resolve(state, &device).ok_or_else(|| format!("unknown device {device}"))?;
        let linked = state
            .accounts
            .get(&number)
            .is_some_and(|account| account.devices.contains_key(&device_id));
        if !linked {
            // Unlinked since the sender listed it: no copy, and the participant hash in the ack tells the sender
            // its list is stale.
            continue;
        }
        let device_pn = device_jid(&number, device_id);
        let mut children = vec![take_corruption(state, &device_pn, enc.clone())];
        if enc_type == "pkmsg"
            && let Some(identity) = &identity
        {
            children.push(identity.clone());
        }
        let head = match sender_lid(state, sender) {
            Some(lid) => Node::new("message")
                .attr("from", lid)
                .attr("sender_pn", sender.clone()),
            None => Node::new("message").attr("from", sender.clone()),
        };
        let stanza = delivered(head, message, &id, &kind, children);
        copies.push((device_jid(&number, device_id), stanza));
    }
    let count = copies.len();
    for (device, stanza) in copies {
        deliver(state, device, "message", &id, stanza);
    }
    let ack = Node::new("ack")
        .attr("class", "message")
        .attr("id", id)
        .attr("from", to.clone())
        .attr("t", unix_now().to_string());
    let ack = ack_with_phash(ack, message, || {
        let mut expected = resolve(state, &to.to_non_ad())
            .map(|(number, _)| listed_devices(state, &number, &to))
            .unwrap_or_default();
        expected.extend(listed_devices(state, sender.user(), sender));
        expected.retain(|device| device != sender);
        expected
    });
    Ok((ack, count))
}

/// A peer message from a companion to its own phone (device 0 of its account): the simulated phone reads it
/// and answers what it understands ([`crate::primary`]).
fn route_to_phone(
    state: &mut State,
    sender: &Jid,
    to: &Jid,
    id: &str,
    message: &Node,
) -> Result<(Node, usize), String> {
    let (number, device) = resolve(state, sender).ok_or_else(|| format!("unknown sender {sender}"))?;
    let (phone, _) = resolve(state, to).ok_or_else(|| format!("unknown account {to}"))?;
    if phone != number {
        return Err(format!("a peer message to another account's phone: {to}"));
    }
    let enc = message.child("enc").ok_or("peer message without <enc>")?;
    crate::primary::receive_peer(state, &number, device, enc)?;
    let ack = Node::new("ack")
        .attr("class", "message")
        .attr("id", id.to_owned())
        .attr("from", to.clone())
        .attr("t", unix_now().to_string());
    Ok((ack, 1))
}

/// Fans a group `<message>` out to every member device except the sender's: each gets the shared `skmsg` and,
/// when the stanza has one for it, its pairwise copy (the sender-key distribution), from the group with the
/// sender as `participant`.
fn route_group_message(
    state: &mut State,
    sender: &Jid,
    group: &Jid,
    message: &Node,
) -> Result<(Node, usize), String> {
    let id = message.str_attr("id").map_err(|e| e.to_string())?.to_owned();
    let kind = message.optional_str_attr("type").unwrap_or("text").to_owned();
    let info = state
        .groups
        .get(group.user())
        .ok_or_else(|| format!("unknown group {group}"))?;
    if !info.members.iter().any(|m| m == sender.user()) {
        return Err(format!("{sender} is not a member of {group}"));
    }
    if let Some(target) = message.optional_jid_attr("participant").ok().flatten() {
        return route_group_resend(state, sender, group, &target, message);
    }
    let skmsg = message
        .children_by_tag("enc")
        .find(|enc| enc.optional_str_attr("type") == Some("skmsg"))
        .ok_or("group message without an skmsg")?
        .clone();
    let identity = message.child("device-identity").cloned();
    let mut pairwise = std::collections::HashMap::new();
    if let Some(participants) = message.child("participants") {
        for target in participants.children_by_tag("to") {
            let device = target.jid_attr("jid").map_err(|e| e.to_string())?;
            let enc = target.child("enc").ok_or("<to> without <enc>")?.clone();
            if enc.optional_str_attr("type") == Some("pkmsg") && identity.is_none() {
                return Err("pkmsg without <device-identity>".to_owned());
            }
            let (number, device_id) =
                resolve(state, &device).ok_or_else(|| format!("unknown device {device}"))?;
            pairwise.insert(device_jid(&number, device_id), enc);
        }
    }
    let members = info.members.clone();
    let mut copies = Vec::new();
    for member in members.clone() {
        let device_ids: Vec<u16> = match state.accounts.get(&member) {
            Some(account) => account.devices.keys().copied().collect(),
            None => continue,
        };
        for device_id in device_ids {
            let device = device_jid(&member, device_id);
            if &device == sender {
                continue;
            }
            let mut children = Vec::new();
            if let Some(enc) = pairwise.remove(&device) {
                let pkmsg = enc.optional_str_attr("type") == Some("pkmsg");
                children.push(enc);
                if pkmsg && let Some(identity) = &identity {
                    children.push(identity.clone());
                }
            }
            children.push(take_corruption(state, &device, skmsg.clone()));
            let from = participant_head(state, group, sender);
            copies.push((device, delivered(from, message, &id, &kind, children)));
        }
    }
    // A copy for a device of a member that has been unlinked since is dropped (the ack's participant hash tells
    // the sender); one for anybody else is a sender bug.
    if let Some(device) = pairwise
        .keys()
        .find(|device| !members.iter().any(|m| m == device.user()))
    {
        return Err(format!(
            "pairwise copy for {device}, which is not a member device"
        ));
    }
    let count = copies.len();
    for (device, stanza) in copies {
        deliver(state, device, "message", &id, stanza);
    }
    let ack = Node::new("ack")
        .attr("class", "message")
        .attr("id", id)
        .attr("from", group.clone())
        .attr("t", unix_now().to_string());
    let ack = ack_with_phash(ack, message, || {
        let members = state
            .groups
            .get(group.user())
            .map(|info| info.members.clone())
            .unwrap_or_default();
        let mut expected: Vec<Jid> = members
            .iter()
            .flat_map(|member| {
                listed_devices(state, member, &Jid::new(member.clone(), Jid::DEFAULT_USER_SERVER))
            })
            .collect();
        expected.retain(|device| device != sender);
        expected
    });
    Ok((ack, count))
}

/// Fans a status update out to the devices its `<participants>` lists (the sender decides the audience): each
/// gets the shared `skmsg` and, when its `<to>` carries one, its pairwise copy (the sender-key distribution), from
/// `status@broadcast` with the sender as `participant`.
fn route_status_message(state: &mut State, sender: &Jid, message: &Node) -> Result<(Node, usize), String> {
    let id = message.str_attr("id").map_err(|e| e.to_string())?.to_owned();
    let kind = message.optional_str_attr("type").unwrap_or("text").to_owned();
    let skmsg = message
        .children_by_tag("enc")
        .find(|enc| enc.optional_str_attr("type") == Some("skmsg"))
        .ok_or("status update without an skmsg")?
        .clone();
    let identity = message.child("device-identity").cloned();
    let participants = message
        .child("participants")
        .ok_or("status update without <participants>")?;
    let mut copies = Vec::new();
    for target in participants.children_by_tag("to") {
        let listed = target.jid_attr("jid").map_err(|e| e.to_string())?;
        let (number, device_id) =
            resolve(state, &listed).ok_or_else(|| format!("unknown device {listed}"))?;
        let linked = state
            .accounts
            .get(&number)
            .is_some_and(|account| account.devices.contains_key(&device_id));
        if !linked {
            return Err(format!("device {listed} is not linked"));
        }
        let device = device_jid(&number, device_id);
        if &device == sender {
            return Err("a status update lists its own sender".to_owned());
        }
        let mut children = Vec::new();
        if let Some(enc) = target.child("enc") {
            let enc_type = enc.optional_str_attr("type").unwrap_or_default();
            if !matches!(enc_type, "pkmsg" | "msg") {
                return Err(format!("enc type {enc_type:?} in a status distribution"));
            }
            if enc_type == "pkmsg" && identity.is_none() {
                return Err("pkmsg without <device-identity>".to_owned());
            }
            children.push(enc.clone());
            if enc_type == "pkmsg"
                && let Some(identity) = &identity
            {
                children.push(identity.clone());
            }
        }
        children.push(take_corruption(state, &device, skmsg.clone()));
        let from = participant_head(state, &Jid::status_broadcast(), sender);
        copies.push((device, delivered(from, message, &id, &kind, children)));
    }
    if copies.is_empty() {
        return Err("status update for nobody".to_owned());
    }
    let count = copies.len();
    for (device, stanza) in copies {
        deliver(state, device, "message", &id, stanza);
    }
    let ack = Node::new("ack")
        .attr("class", "message")
        .attr("id", id)
        .attr("from", Jid::status_broadcast())
        .attr("t", unix_now().to_string());
    Ok((ack, count))
}

/// A copy of a group message for one member device (`participant`), as the answer to its retry receipt: one
/// pairwise `<enc>` and no `skmsg`, delivered from the group with the sender as participant.
fn route_group_resend(
    state: &mut State,
    sender: &Jid,
    group: &Jid,
    target: &Jid,
    message: &Node,
) -> Result<(Node, usize), String> {
    let id = message.str_attr("id").map_err(|e| e.to_string())?.to_owned();
    let kind = message.optional_str_attr("type").unwrap_or("text").to_owned();
    let enc = message.child("enc").ok_or("group resend without <enc>")?.clone();
    if !matches!(enc.optional_str_attr("type"), Some("pkmsg" | "msg")) {
        return Err("group resend that is not pairwise".to_owned());
    }
    let (number, device_id) = resolve(state, target).ok_or_else(|| format!("unknown device {target}"))?;
    let is_member = state
        .groups
        .get(group.user())
        .is_some_and(|info| info.members.contains(&number));
    if !is_member {
        return Err(format!("{target} is not a member of {group}"));
    }
    let mut children = vec![enc];
    children.extend(message.child("device-identity").cloned());
    let from = participant_head(state, group, sender);
    let stanza = delivered(from, message, &id, &kind, children);
    deliver(state, device_jid(&number, device_id), "message", &id, stanza);
    let ack = Node::new("ack")
        .attr("class", "message")
        .attr("id", id)
        .attr("from", group.clone())
        .attr("t", unix_now().to_string());
    Ok((ack, 1))
}

/// The LID device of `sender` when its account is addressed by LID ([`crate::TestServer::address_by_lid`]).
fn sender_lid(state: &State, sender: &Jid) -> Option<Jid> {
    let account = state.accounts.get(sender.user())?;
    account
        .lid_addressed
        .then(|| crate::state::device_lid(&account.lid_user, sender.device()))
}

/// The head of a message in a shared chat (group or status): from the chat, with the sender as `participant`,
/// named by LID (and the phone number beside it) when its account is addressed by LID.
fn participant_head(state: &State, chat: &Jid, sender: &Jid) -> Node {
    let head = Node::new("message").attr("from", chat.clone());
    match sender_lid(state, sender) {
        Some(lid) => head
            .attr("participant", lid)
            .attr("participant_pn", sender.clone())
            .attr("addressing_mode", "lid"),
        None => head.attr("participant", sender.clone()),
    }
}

/// `enc` as `device` gets it: with a flipped last byte while the device has copies left to damage
/// ([`crate::TestServer::corrupt_next_messages`]).
fn take_corruption(state: &mut State, device: &Jid, mut enc: Node) -> Node {
    let corrupt = match state.faults.corrupt_next.get_mut(device) {
        Some(left) if *left > 0 => {
            *left -= 1;
            true
        }
        _ => false,
    };
    if corrupt && let Content::Bytes(bytes) = &enc.content {
        let mut corrupted = bytes.to_vec();
        if let Some(last) = corrupted.last_mut() {
            *last ^= 0x01;
        }
        enc.content = Content::Bytes(corrupted.into());
    }
    enc
}

/// A device's copy of `message`: `head` (the `<message>` with its sender attributes) plus the id, type, time, the
/// `edit` attribute when the sender set one, and the copy's children.
fn delivered(head: Node, message: &Node, id: &str, kind: &str, children: Vec<Node>) -> Node {
    let mut stanza = head
        .attr("id", id.to_owned())
        .attr("type", kind.to_owned())
        .attr("t", unix_now().to_string());
    if let Some(edit) = message.attr_value("edit") {
        stanza = stanza.attr("edit", edit.clone());
    }
    stanza.children(children)
}

/// Queues `stanza` in `device`'s inbox until the device acks it, and sends it now if the device is online (a
/// connection that just ended keeps the copy for its next login).
pub(crate) fn deliver(state: &mut State, device: Jid, class: &'static str, id: &str, stanza: Node) {
    let cut = class == "message" && state.faults.cut_after_next.contains(&device);
    if let Some((_, conn)) = state.conn_of(&device) {
        let _ = conn.tx.send(Command::Send(stanza.clone()));
        if cut {
            // Written, then the connection ends before the device's ack can arrive.
            let _ = conn.tx.send(Command::Abort);
            state.faults.cut_after_next.remove(&device);
        }
    }
    state.inboxes.entry(device).or_default().push(Queued {
        class,
        id: id.to_owned(),
        stanza,
    });
}

/// Removes what `device` acknowledged from its inbox; returns the class and id when something was removed.
pub(crate) fn acknowledged(state: &mut State, device: &Jid, ack: &Node) -> Option<(String, String)> {
    let class = ack.optional_str_attr("class")?;
    let id = ack.optional_str_attr("id")?;
    let ignore = state.faults.ignore_acks;
    let inbox = state.inboxes.get_mut(device)?;
    let matches = |queued: &Queued| queued.class == class && queued.id == id;
    if ignore {
        return inbox
            .iter()
            .any(matches)
            .then(|| (class.to_owned(), id.to_owned()));
    }
    let before = inbox.len();
    inbox.retain(|queued| !matches(queued));
    (inbox.len() < before).then(|| (class.to_owned(), id.to_owned()))
}

/// Forwards a `<receipt>` from `sender` to every linked device of the account it is addressed to (`to` is the
/// message's sender device, or the chat for read receipts), queued like messages; returns the ack for the sender
/// and the number of copies.
pub(crate) fn route_receipt(
    state: &mut State,
    sender: &Jid,
    receipt: &Node,
) -> Result<(Node, usize), String> {
    let id = receipt.str_attr("id").map_err(|e| e.to_string())?.to_owned();
    let to = receipt.jid_attr("to").map_err(|e| e.to_string())?;
    // In a group (and for a status update) the receipt is for the message's author, named by `participant`; it
    // arrives from the group with the receipt's sender as participant.
    let (author, group) = if to.is_group() || to.is_status_broadcast() {
        let author = receipt
            .jid_attr("participant")
            .map_err(|_| format!("group receipt to {to} without a participant"))?;
        (author, Some(to.clone()))
    } else {
        (to.clone(), None)
    };
    let (number, _) = resolve(state, &author).ok_or_else(|| format!("receipt to unknown {author}"))?;
    let devices: Vec<u16> = state
        .accounts
        .get(&number)
        .map(|account| account.devices.keys().copied().collect())
        .unwrap_or_default();
    let mut forwarded = match &group {
        Some(group) => Node::new("receipt")
            .attr("from", group.clone())
            .attr("participant", sender.clone()),
        None => Node::new("receipt").attr("from", sender.clone()),
    }
    .attr("id", id.clone())
    .attr("t", unix_now().to_string());
    if let Some(kind) = receipt.attr_value("type") {
        forwarded = forwarded.attr("type", kind.clone());
    }
    // The children (`<list>` of further ids, a retry receipt's `<retry>`, `<registration>` and `<keys>`) travel
    // unchanged.
    if !receipt.child_nodes().is_empty() {
        forwarded = forwarded.children(receipt.child_nodes().to_vec());
    }
    for device in &devices {
        deliver(
            state,
            device_jid(&number, *device),
            "receipt",
            &id,
            forwarded.clone(),
        );
    }
    let mut ack = Node::new("ack")
        .attr("class", "receipt")
        .attr("id", id)
        .attr("from", to);
    if let Some(kind) = receipt.attr_value("type") {
        ack = ack.attr("type", kind.clone());
    }
    Ok((ack, devices.len()))
}

/// Everything `device` has not acknowledged, to send again.
pub(crate) fn inbox(state: &State, device: &Jid) -> Vec<Node> {
    let mut stanzas: Vec<Node> = state
        .inboxes
        .get(device)
        .map(|queued| queued.iter().map(|q| q.stanza.clone()).collect())
        .unwrap_or_default();
    if state.faults.reverse_inbox {
        stanzas.reverse();
    }
    stanzas
}
