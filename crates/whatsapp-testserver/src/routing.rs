//! Messaging between accounts: device lists (`usync`), prekey bundles, and the fan-out of `<message>` stanzas to
//! every addressed device with an offline queue that redelivers until the device acknowledges
//! (protocol-facts §3.5-3.7).
//!
//! Each device has an inbox of messages it has not acknowledged. A message is sent to a live device when it
//! arrives, and the whole inbox is sent again when the device next sets itself active after a login, so a message
//! survives both an offline recipient and a connection lost before the ack.

use whatsapp_binary::{Content, Jid, Node};

use crate::message_attrs::Described;
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

/// The answer to a `usync` device-list query: the phone (device 0) and the linked companions of each listed user,
/// named as the query named the user (phone number or LID). The asking account is told of later changes to the
/// listed accounts' devices ([`devices_changed`]).
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
            .map(device_list)
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

/// The `<device>` entries of an account's device list: the phone first, then each companion with the key index its
/// device identity was signed with (whatsmeow `user.go` parseDeviceList reads `id`, `key-index` and `is_hosted`).
pub(crate) fn device_list(account: &crate::state::Account) -> Vec<Node> {
    std::iter::once(Node::new("device").attr("id", "0"))
        .chain(account.devices.keys().map(|device| {
            Node::new("device")
                .attr("id", device.to_string())
                .attr("key-index", crate::phone::key_index(*device).to_string())
        }))
        .collect()
}

/// The devices of account `number` a device list names (the phone and the companions), on the server of `named`
/// (phone number or LID).
fn listed_devices(state: &State, number: &str, named: &Jid) -> Vec<Jid> {
    let Some(account) = state.accounts.get(number) else {
        return Vec::new();
    };
    std::iter::once(0)
        .chain(account.devices.keys().copied())
        .map(|device| match named.server() {
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

/// Announces a linked or unlinked device of account `number` (`kind` is `add` or `remove`) with a `devices`
/// notification carrying the new device-list hash, to every device of the accounts that asked for the list and to
/// the account's other devices; queued like messages, so an offline device gets it at its next login.
pub(crate) fn devices_changed(state: &mut State, number: &str, kind: &'static str, device_id: u16) {
    if state.faults.silent_device_changes {
        return;
    }
    let user = Jid::new(number, Jid::DEFAULT_USER_SERVER);
    let hash = participant_hash(&listed_devices(state, number, &user));
    let Some(lid_user) = state.accounts.get(number).map(|account| account.lid_user.clone()) else {
        return;
    };
    let lid = Jid::new(lid_user.clone(), Jid::LID_SERVER);
    let lid_hash = participant_hash(&listed_devices(state, number, &lid));
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
            // The LID side beside the phone-number one, as whatsmeow `notification.go` handleDeviceNotification
            // reads it (`lid`, `device_lid_hash`, `<device lid>`).
            let notification = Node::new("notification")
                .attr("from", user.clone())
                .attr("lid", lid.clone())
                .attr("type", "devices")
                .attr("id", id.clone())
                .attr("t", unix_now().to_string())
                .children([Node::new(kind)
                    .attr("device_hash", hash.clone())
                    .attr("device_lid_hash", lid_hash.clone())
                    .children([Node::new("device")
                        .attr("jid", device_jid(number, device_id))
                        .attr("lid", crate::state::device_lid(&lid_user, device_id))])]);
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

/// The bundle of an account's phone (device 0): its identity, signed prekey and the lowest one-time prekey left,
/// which is then kept aside until a `pkmsg` uses it.
fn phone_bundle(account: &mut crate::state::Account) -> Vec<Node> {
    let keys = &mut account.phone_keys;
    let mut children = vec![
        Node::new("registration").bytes(account.registration_id.to_be_bytes().to_vec()),
        Node::new("type").bytes(vec![5]),
        Node::new("identity").bytes(account.identity.public.as_bytes().to_vec()),
        Node::new("skey").children([
            Node::new("id").bytes(id3(keys.signed_prekey_id)),
            Node::new("value").bytes(keys.signed_prekey.public.as_bytes().to_vec()),
            Node::new("signature").bytes(keys.signature.to_vec()),
        ]),
    ];
    if let Some((prekey_id, pair)) = keys.prekeys.pop_first() {
        children.push(Node::new("key").children([
            Node::new("id").bytes(id3(prekey_id)),
            Node::new("value").bytes(pair.public.as_bytes().to_vec()),
        ]));
        keys.handed_out.insert(prekey_id, pair);
    }
    children
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
        if let Some((number, 0)) = resolve(state, &jid)
            && let Some(account) = state.accounts.get_mut(&number)
        {
            users.push(Node::new("user").attr("jid", jid).children(phone_bundle(account)));
            continue;
        }
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

/// Checks an outgoing `<message>` from `sender`, queues one copy per addressed companion and hands the copies for
/// phones (device 0) to the simulated phones, sends the copies to the devices that are online, and returns the ack
/// for the sender and the number of companion copies. A malformed stanza is refused with the reason.
///
/// One-to-one messages are checked against how WhatsApp addresses them today (whatsmeow `send.go` SendMessage and
/// sendDM): a fan-out goes to the recipient's LID with `peer_recipient_pn` naming the same account, every
/// `<to>` names a LID device, and no `phash` is sent (the ack carries the server's when a device was missed).
pub(crate) fn route_message(state: &mut State, sender: &Jid, message: &Node) -> Result<Routed, String> {
    let id = message.str_attr("id").map_err(|e| e.to_string())?.to_owned();
    let to = message.jid_attr("to").map_err(|e| e.to_string())?;
    // A fan-out (not a copy for one device, which answers a retry under the message's own id) is routed once per
    // id: a sender that sends the same message again, after a lost ack or as a retried send, gets the first
    // ack back and nobody gets a second copy.
    let fan_out = message.child("participants").is_some()
        || to.is_status_broadcast()
        || (to.is_group() && message.attr_value("participant").is_none());
    let key = (sender.user().to_owned(), to.to_non_ad().to_string(), id.clone());
    if fan_out && let Some(ack) = state.routed.get(&key) {
        return Ok(Routed {
            ack: ack.clone(),
            copies: 0,
            duplicate: true,
        });
    }
    let (ack, copies) = route_once(state, sender, &to, &id, message)?;
    if fan_out {
        state.routed.insert(key.clone(), ack.clone());
        state.routed_order.push_back(key);
        if state.routed_order.len() > crate::state::ROUTED_IDS
            && let Some(oldest) = state.routed_order.pop_front()
        {
            state.routed.remove(&oldest);
        }
    }
    Ok(Routed {
        ack,
        copies,
        duplicate: false,
    })
}

/// What routing a `<message>` came to.
#[derive(Debug)]
pub(crate) struct Routed {
    /// The ack for the sender.
    pub(crate) ack: Node,
    /// How many companion copies were queued.
    pub(crate) copies: usize,
    /// The message id was routed before: nothing was queued, and `ack` is the first one.
    pub(crate) duplicate: bool,
}

/// Checks and routes one `<message>` (see [`route_message`]).
fn route_once(
    state: &mut State,
    sender: &Jid,
    to: &Jid,
    id: &str,
    message: &Node,
) -> Result<(Node, usize), String> {
    let (to, id) = (to.clone(), id.to_owned());
    crate::message_attrs::check_stanza(message, to.is_group() || to.is_status_broadcast())?;
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
    let (recipient, _) = resolve(state, &to.to_non_ad()).ok_or_else(|| format!("unknown recipient {to}"))?;
    let peer_pn = message
        .optional_jid_attr("peer_recipient_pn")
        .map_err(|e| e.to_string())?;
    if let Some(pn) = &peer_pn
        && (pn.server() != Jid::DEFAULT_USER_SERVER
            || pn.user() != recipient
            || to.server() != Jid::LID_SERVER)
    {
        return Err(format!(
            "peer_recipient_pn {pn} does not name the account of {to}"
        ));
    }
    // Either a fan-out (`<participants><to jid><enc/></to>...`) or a copy for one device (`to` is the device and
    // the `<enc>` is a direct child), as a resend after a retry receipt is.
    let fan_out = message.child("participants");
    let targets: Vec<(Jid, &Node)> = match fan_out {
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
    if fan_out.is_some() {
        if message.attr_value("phash").is_some() {
            return Err(
                "phash on a one-to-one message (WhatsApp takes it on group messages only)".to_owned(),
            );
        }
        if to.server() != Jid::LID_SERVER {
            return Err(format!(
                "a one-to-one message to {to} by phone number: the recipient has a LID, and the login said the \
                 LID migration is done"
            ));
        }
        if let Some((device, _)) = targets
            .iter()
            .find(|(device, _)| device.server() != Jid::LID_SERVER)
        {
            return Err(format!(
                "a copy for {device} by phone number in a LID-addressed message"
            ));
        }
    }
    let mut copies = Vec::new();
    let mut addressed = Vec::new();
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
        if number != recipient && number != sender.user() {
            return Err(format!(
                "a copy for {device}, neither the recipient's nor the sender's"
            ));
        }
        let device_pn = device_jid(&number, device_id);
        if device_pn == *sender {
            return Err(format!("a copy for the sending device itself ({device})"));
        }
        addressed.push(device.clone());
        if device_id == 0 {
            // The phone reads its copy at once (it is always online here).
            if let Err(reason) = crate::primary::receive_copy(
                state,
                &number,
                sender,
                &to.to_non_ad(),
                &id,
                enc,
                &Described::of(message, enc, false),
            ) {
                tracing::warn!(%device, %reason, "the phone could not decrypt its copy");
                state.phone_failures.push((device_pn, id.clone(), reason));
            }
            continue;
        }
        let linked = state
            .accounts
            .get(&number)
            .is_some_and(|account| account.devices.contains_key(&device_id));
        if !linked {
            // Unlinked since the sender listed it: no copy, and the participant hash in the ack tells the sender
            // its list is stale.
            continue;
        }
        let mut children = vec![take_corruption(state, &device_pn, enc.clone())];
        if enc_type == "pkmsg"
            && let Some(identity) = &identity
        {
            children.push(identity.clone());
        }
        let own = number == sender.user();
        // The chat an own device files the copy under: the message's `to` in a fan-out, the `recipient` the
        // sender names in a copy for one device (whatsmeow `retry.go` keeps the retry receipt's `recipient`).
        let chat = match (fan_out, message.optional_jid_attr("recipient")) {
            (Some(_), _) => to.to_non_ad(),
            (None, Ok(Some(recipient))) => recipient,
            (None, _) if own => {
                return Err(format!(
                    "a copy for this account's own device {device} without `recipient`: it cannot tell the chat"
                ));
            }
            (None, _) => to.to_non_ad(),
        };
        let head = dm_head(state, sender, &to, &chat, peer_pn.as_ref(), own);
        let stanza = delivered(head, message, &id, &kind, children);
        copies.push((device_pn, stanza));
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
    if fan_out.is_none() {
        return Ok((ack, count));
    }
    // The devices WhatsApp counts (whatsmeow `send.go` sendDM hashes the whole device query, the sending device
    // included): a fan-out that addressed fewer was sent from a stale list, and the ack says so.
    let own = match to.server() {
        Jid::LID_SERVER => state
            .accounts
            .get(sender.user())
            .map(|account| Jid::new(account.lid_user.clone(), Jid::LID_SERVER)),
        _ => Some(sender.to_non_ad()),
    };
    let mut expected = listed_devices(state, &recipient, &to);
    if let Some(own) = &own {
        expected.extend(listed_devices(state, sender.user(), own));
    }
    let sending = match to.server() {
        Jid::LID_SERVER => state
            .accounts
            .get(sender.user())
            .map(|account| crate::state::device_lid(&account.lid_user, sender.device())),
        _ => Some(sender.clone()),
    };
    addressed.extend(sending);
    let hash = participant_hash(&expected);
    if participant_hash(&addressed) == hash {
        Ok((ack, count))
    } else {
        Ok((ack.attr("phash", hash), count))
    }
}

/// The head of a one-to-one message copy. To the recipient: from the sender's LID device with `sender_pn` when
/// the message went to a LID (or the sender's account is addressed by LID), else from its phone-number device. To
/// the sender's own other devices: from the sending device as the message named the sender, with `recipient` the
/// chat (and `peer_recipient_pn`), as whatsmeow `message.go` parseMessageSource reads it.
fn dm_head(state: &State, sender: &Jid, to: &Jid, chat: &Jid, peer_pn: Option<&Jid>, own: bool) -> Node {
    let by_lid = to.server() == Jid::LID_SERVER;
    let lid = state
        .accounts
        .get(sender.user())
        .filter(|account| by_lid || account.lid_addressed)
        .map(|account| crate::state::device_lid(&account.lid_user, sender.device()));
    let head = match lid {
        Some(lid) => Node::new("message")
            .attr("from", lid)
            .attr("sender_pn", sender.clone()),
        None => Node::new("message").attr("from", sender.clone()),
    };
    if !own {
        return head;
    }
    let head = head.attr("recipient", chat.clone());
    match peer_pn {
        Some(pn) => head.attr("peer_recipient_pn", pn.clone()),
        None => head,
    }
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
    crate::primary::receive_peer(state, &number, device, id, enc)?;
    let ack = Node::new("ack")
        .attr("class", "message")
        .attr("id", id.to_owned())
        .attr("from", to.clone())
        .attr("t", unix_now().to_string());
    Ok((ack, 1))
}

/// Fans a group `<message>` out to every member device except the sender's: each gets the shared `skmsg` and,
/// when the stanza has one for it, its pairwise copy (the sender-key distribution), from the group with the
/// sender as `participant`. The members' phones read their copies at once.
///
/// Checked as WhatsApp addresses groups today (whatsmeow `send.go` SendMessage and sendGroup): a LID group's
/// message says `addressing_mode="lid"` and names every device by LID; no copy is for the sending device; the
/// `phash` covers every device of every member, the sender's own included.
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
    let lid_group = info.lid;
    if let Some(target) = message.optional_jid_attr("participant").ok().flatten() {
        return route_group_resend(state, sender, group, &target, message);
    }
    match (lid_group, message.optional_str_attr("addressing_mode")) {
        (true, Some("lid")) | (false, None | Some("pn")) => {}
        (true, other) => {
            return Err(format!(
                "a message to LID-addressed group {group} with addressing_mode {other:?}, not \"lid\""
            ));
        }
        (false, Some(other)) => {
            return Err(format!(
                "a message to phone-number group {group} with addressing_mode {other:?}"
            ));
        }
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
            if lid_group && device.server() != Jid::LID_SERVER {
                return Err(format!(
                    "a copy for {device} by phone number in LID-addressed group {group}"
                ));
            }
            let (number, device_id) =
                resolve(state, &device).ok_or_else(|| format!("unknown device {device}"))?;
            let device_pn = device_jid(&number, device_id);
            if device_pn == *sender {
                return Err(format!("a copy for the sending device itself ({device})"));
            }
            pairwise.insert(device_pn, enc);
        }
    }
    let members = info.members.clone();
    let mut copies = Vec::new();
    for member in members.clone() {
        let device_ids: Vec<u16> = match state.accounts.get(&member) {
            Some(account) => std::iter::once(0)
                .chain(account.devices.keys().copied())
                .collect(),
            None => continue,
        };
        for device_id in device_ids {
            let device = device_jid(&member, device_id);
            if &device == sender {
                continue;
            }
            if device_id == 0 {
                let pairwise = pairwise.remove(&device);
                let read = pairwise.iter().chain([&skmsg]).try_for_each(|enc| {
                    let described = Described::of(message, enc, true);
                    crate::primary::receive_copy(state, &member, sender, group, &id, enc, &described)
                });
                if let Err(reason) = read {
                    tracing::warn!(%device, %reason, "the phone could not decrypt its copy");
                    state.phone_failures.push((device, id.clone(), reason));
                }
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
    let expected: Vec<Jid> = members
        .iter()
        .flat_map(|member| {
            let named = match (lid_group, state.accounts.get(member)) {
                (true, Some(account)) => Jid::new(account.lid_user.clone(), Jid::LID_SERVER),
                _ => Jid::new(member.clone(), Jid::DEFAULT_USER_SERVER),
            };
            listed_devices(state, member, &named)
        })
        .collect();
    let hash = participant_hash(&expected);
    if message.optional_str_attr("phash") == Some(hash.as_str()) {
        Ok((ack, count))
    } else {
        Ok((ack.attr("phash", hash), count))
    }
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
            .is_some_and(|account| device_id == 0 || account.devices.contains_key(&device_id));
        if !linked {
            return Err(format!("device {listed} is not linked"));
        }
        let device = device_jid(&number, device_id);
        if &device == sender {
            return Err("a status update lists its own sender".to_owned());
        }
        if device_id == 0 {
            let status = Jid::status_broadcast();
            let read = target
                .child("enc")
                .into_iter()
                .chain([&skmsg])
                .try_for_each(|enc| {
                    let described = Described::of(message, enc, true);
                    crate::primary::receive_copy(state, &number, sender, &status, &id, enc, &described)
                });
            if let Err(reason) = read {
                tracing::warn!(%device, %reason, "the phone could not decrypt its copy");
                state.phone_failures.push((device, id.clone(), reason));
            }
            continue;
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
/// named by LID (and the phone number beside it) in a LID-addressed group or when its account is addressed by
/// LID.
fn participant_head(state: &State, chat: &Jid, sender: &Jid) -> Node {
    let head = Node::new("message").attr("from", chat.clone());
    let lid_group = chat.is_group() && state.groups.get(chat.user()).is_some_and(|group| group.lid);
    let lid = match lid_group {
        true => state
            .accounts
            .get(sender.user())
            .map(|account| crate::state::device_lid(&account.lid_user, sender.device())),
        false => sender_lid(state, sender),
    };
    match lid {
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
    let withheld = class == "message"
        && stanza.child("enc").is_some()
        && stanza.optional_str_attr("category") != Some("peer");
    let stanza = match withheld
        .then(|| state.faults.withhold_next.remove(&device))
        .flatten()
    {
        Some(kind) => {
            let children = stanza
                .child_nodes()
                .iter()
                .filter(|child| !matches!(&*child.tag, "enc" | "device-identity"))
                .cloned()
                .chain([Node::new("unavailable").attr("type", kind)])
                .collect::<Vec<_>>();
            stanza.children(children)
        }
        None => stanza,
    };
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
    // The kinds a client sends, and whose messages each may answer (whatsmeow `receipt.go` sendMessageReceipt
    // and `message.go` SendProtocolMessageReceipt).
    let kind = receipt.optional_str_attr("type");
    let own = number == sender.user();
    match kind {
        None | Some("inactive") if own => {
            return Err(format!(
                "a delivery receipt of kind {kind:?} for a message of this account's own device (it is \"sender\")"
            ));
        }
        Some("sender") if !own => {
            return Err(format!(
                "a \"sender\" receipt for a message of {author}, another account"
            ));
        }
        Some("peer_msg") if !own || to.device() != 0 || group.is_some() => {
            return Err(format!(
                "a peer_msg receipt to {to}: it goes to this account itself, without a device"
            ));
        }
        Some("peer_msg") => {
            // The phone takes it; no companion is told.
            let ack = Node::new("ack")
                .attr("class", "receipt")
                .attr("id", id)
                .attr("from", to)
                .attr("type", "peer_msg");
            return Ok((ack, 0));
        }
        None
        | Some(
            "inactive" | "read" | "read-self" | "played" | "played-self" | "sender" | "retry" | "hist_sync"
            | "server-error",
        ) => {}
        Some(other) => return Err(format!("unknown receipt type {other:?}")),
    }
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
    // The chat, when this account's own device answers a one-to-one message.
    if let Some(recipient) = receipt.attr_value("recipient") {
        forwarded = forwarded.attr("recipient", recipient.clone());
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
