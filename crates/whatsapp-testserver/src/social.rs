//! Everything between accounts that is not a message: presence and its subscriptions, chat states, calls placed
//! by simulated phones and rejected by devices, user lookups (`usync` contact, status, picture and LID
//! queries), profile photos, about texts, privacy settings and their enforcement (last seen, profile photo),
//! the blocklist (a blocked user's messages, presence and chat states do not reach the blocker), privacy tokens,
//! and the default disappearing timer (protocol-facts §1; whatsmeow `presence.go`, `user.go`,
//! `privacysettings.go`, `call.go`, `notification.go`).
//!
//! Presence and chat states are sent to live connections only, as the real server does; calls, privacy tokens
//! and `account_sync` notifications go through the inbox and are redelivered until acknowledged.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use whatsapp_binary::{Content, Jid, Node};

use crate::events::ServerEvent;
use crate::routing::{deliver, resolve};
use crate::state::{Command, State, device_jid, server_jid, unix_now};

/// Privacy categories and the values each accepts, from whatsmeow's comments on `types.PrivacySettingType`, with
/// the value an account starts with.
const CATEGORIES: [(&str, &[&str], &str); 10] = [
    (
        "groupadd",
        &["all", "contacts", "contact_blacklist", "none"],
        "all",
    ),
    ("last", &["all", "contacts", "contact_blacklist", "none"], "all"),
    (
        "status",
        &["all", "contacts", "contact_blacklist", "none"],
        "contacts",
    ),
    (
        "profile",
        &["all", "contacts", "contact_blacklist", "none"],
        "all",
    ),
    ("readreceipts", &["all", "none"], "all"),
    ("online", &["all", "match_last_seen"], "all"),
    ("calladd", &["all", "known"], "all"),
    ("messages", &["all", "contacts"], "all"),
    ("defense", &["on_standard", "off"], "off"),
    ("stickers", &["contacts", "contact_allowlist", "none"], "contacts"),
];

/// What the server knows of one account beyond its devices.
#[derive(Debug, Default)]
pub(crate) struct Profile {
    push_name: String,
    about: String,
    picture: Option<String>,
    online: bool,
    privacy: BTreeMap<String, String>,
    blocked: BTreeSet<String>,
    default_disappearing: u32,
}

impl Profile {
    fn setting(&self, category: &str) -> &str {
        self.privacy.get(category).map_or_else(
            || {
                CATEGORIES
                    .iter()
                    .find(|(name, _, _)| *name == category)
                    .map_or("all", |(_, _, default)| default)
            },
            String::as_str,
        )
    }
}

/// The social state of every account, by phone number.
#[derive(Debug, Default)]
pub(crate) struct Social {
    profiles: BTreeMap<String, Profile>,
    /// Devices subscribed to an account's presence, by the account's number.
    subscribers: HashMap<String, BTreeSet<Jid>>,
}

fn profile<'s>(state: &'s mut State, number: &str) -> &'s mut Profile {
    state.social.profiles.entry(number.to_owned()).or_default()
}

fn user_jid(number: &str) -> Jid {
    Jid::new(number, Jid::DEFAULT_USER_SERVER)
}

/// Whether account `owner` blocked account `other`.
pub(crate) fn blocks(state: &State, owner: &str, other: &str) -> bool {
    state
        .social
        .profiles
        .get(owner)
        .is_some_and(|profile| profile.blocked.contains(other))
}

/// Sends `stanza` to every live device of account `number` (nothing is queued).
fn send_live(state: &State, number: &str, stanza: &Node) -> usize {
    let Some(account) = state.accounts.get(number) else {
        return 0;
    };
    account
        .devices
        .keys()
        .filter_map(|device| state.conn_of(&device_jid(number, *device)))
        .filter(|(_, conn)| conn.tx.send(Command::Send(stanza.clone())).is_ok())
        .count()
}

/// Queues `notification` (with a fresh id) to every device of account `number` but `except`.
fn notify_account(state: &mut State, number: &str, except: Option<&Jid>, id: &str, notification: Node) {
    let devices: Vec<Jid> = state
        .accounts
        .get(number)
        .map(|account| account.devices.keys().map(|d| device_jid(number, *d)).collect())
        .unwrap_or_default();
    for device in devices.into_iter().filter(|d| Some(d) != except) {
        let id = format!("{id}-{}", device.device());
        deliver(
            state,
            device,
            "notification",
            &id,
            notification.clone().attr("id", id.clone()),
        );
    }
}

/// The `<presence>` the subscribers of account `number` are sent: online, or offline with last seen (or
/// `deny` when the account hides it).
fn presence_of(state: &mut State, number: &str) -> Node {
    let profile = profile(state, number);
    let node = Node::new("presence").attr("from", user_jid(number));
    if profile.online {
        node
    } else {
        let last = if profile.setting("last") == "none" {
            "deny".to_owned()
        } else {
            unix_now().to_string()
        };
        node.attr("type", "unavailable").attr("last", last)
    }
}

/// A `<presence>` from `sender`: its account goes online or offline (and the push name is kept), and its
/// subscribers' live devices are told; or a subscription, answered at once with the target's presence.
pub(crate) fn presence(state: &mut State, sender: &Jid, node: &Node) -> Result<ServerEvent, String> {
    let number = sender.user().to_owned();
    match node.optional_str_attr("type") {
        Some(kind @ ("available" | "unavailable")) => {
            let name = node.optional_str_attr("name").unwrap_or_default();
            if name.is_empty() {
                return Err("presence without a push name".to_owned());
            }
            let available = kind == "available";
            let profile = profile(state, &number);
            profile.push_name = name.to_owned();
            profile.online = available;
            let update = presence_of(state, &number);
            let subscribers: Vec<Jid> = state
                .social
                .subscribers
                .get(&number)
                .map(|s| s.iter().cloned().collect())
                .unwrap_or_default();
            for subscriber in subscribers {
                if blocks(state, &number, subscriber.user()) {
                    continue;
                }
                if let Some((_, conn)) = state.conn_of(&subscriber) {
                    let _ = conn.tx.send(Command::Send(update.clone()));
                }
            }
            Ok(ServerEvent::PresenceChanged {
                account: user_jid(&number),
                available,
            })
        }
        Some("subscribe") => {
            let target = node.jid_attr("to").map_err(|e| e.to_string())?;
            let (target, _) = resolve(state, &target).ok_or_else(|| format!("unknown user {target}"))?;
            state
                .social
                .subscribers
                .entry(target.clone())
                .or_default()
                .insert(sender.clone());
            if !blocks(state, &target, &number) {
                let current = presence_of(state, &target);
                if let Some((_, conn)) = state.conn_of(sender) {
                    let _ = conn.tx.send(Command::Send(current));
                }
            }
            Ok(ServerEvent::PresenceSubscribed {
                subscriber: sender.clone(),
                target: user_jid(&target),
            })
        }
        other => Err(format!("presence of type {other:?}")),
    }
}

/// A `<chatstate to>` from `sender`: forwarded to the live devices of the addressed user (unless they blocked
/// the sender), or of every other member of a group with the sender as `participant`.
pub(crate) fn chat_state(state: &mut State, sender: &Jid, node: &Node) -> Result<ServerEvent, String> {
    let to = node.jid_attr("to").map_err(|e| e.to_string())?;
    let [child] = node.child_nodes() else {
        return Err("chatstate without exactly one child".to_owned());
    };
    let number = sender.user().to_owned();
    let mut copies = 0;
    if to.is_group() {
        let members = state
            .groups
            .get(to.user())
            .map(|group| group.members.clone())
            .ok_or_else(|| format!("unknown group {to}"))?;
        let stanza = Node::new("chatstate")
            .attr("from", to.clone())
            .attr("participant", user_jid(&number))
            .children([child.clone()]);
        for member in members.iter().filter(|m| **m != number) {
            copies += send_live(state, member, &stanza);
        }
    } else {
        let (target, _) = resolve(state, &to).ok_or_else(|| format!("unknown user {to}"))?;
        if !blocks(state, &target, &number) {
            let stanza = Node::new("chatstate")
                .attr("from", user_jid(&number))
                .children([child.clone()]);
            copies = send_live(state, &target, &stanza);
        }
    }
    Ok(ServerEvent::ChatStateRouted {
        from: sender.clone(),
        to,
        state: child.tag.to_string(),
        copies,
    })
}

/// A `<call>` from a device: only rejections are understood. Returns the server event and the ack.
pub(crate) fn call(sender: &Jid, node: &Node) -> Result<(ServerEvent, Node), String> {
    let reject = node.child("reject").ok_or("call stanza without <reject>")?;
    let call_id = reject.str_attr("call-id").map_err(|e| e.to_string())?.to_owned();
    let call_creator = reject.jid_attr("call-creator").map_err(|e| e.to_string())?;
    let mut ack = Node::new("ack").attr("class", "call").attr("type", "reject");
    if let Some(id) = node.attr_value("id") {
        ack = ack.attr("id", id.clone());
    }
    Ok((
        ServerEvent::CallRejected {
            device: sender.clone(),
            call_id,
            call_creator,
        },
        ack,
    ))
}

/// A call offer from account `from`'s phone to every device of account `to`; returns how many devices it was
/// queued for.
pub(crate) fn place_call(state: &mut State, from: &str, to: &str, call_id: &str, id: &str) -> usize {
    let devices: Vec<Jid> = state
        .accounts
        .get(to)
        .map(|account| account.devices.keys().map(|d| device_jid(to, *d)).collect())
        .unwrap_or_default();
    let offer = Node::new("call")
        .attr("from", device_jid(from, 0))
        .attr("id", id.to_owned())
        .attr("t", unix_now().to_string())
        .attr("platform", "android")
        .attr("version", "2.24.1.0")
        .children([Node::new("offer")
            .attr("call-id", call_id.to_owned())
            .attr("call-creator", device_jid(from, 0))
            .children([Node::new("audio").attr("enc", "opus").attr("rate", "16000")])]);
    for device in &devices {
        deliver(state, device.clone(), "call", id, offer.clone());
    }
    devices.len()
}

/// A `privacy_token` notification from account `from` to every device of account `to`.
pub(crate) fn send_privacy_token(state: &mut State, from: &str, to: &str, token: &[u8], id: &str) {
    let Some(lid) = state
        .accounts
        .get(from)
        .map(|a| Jid::new(a.lid_user.clone(), Jid::LID_SERVER))
    else {
        return;
    };
    let notification = Node::new("notification")
        .attr("from", user_jid(from))
        .attr("sender_lid", lid)
        .attr("type", "privacy_token")
        .attr("t", unix_now().to_string())
        .children([Node::new("tokens").children([Node::new("token")
            .attr("jid", user_jid(to))
            .attr("t", unix_now().to_string())
            .attr("type", "trusted_contact")
            .bytes(token.to_vec())])]);
    notify_account(state, to, None, id, notification);
}

/// Account `from` issues its privacy token to each `(contact, timestamp)`: a token made up from both accounts
/// and the timestamp goes to every device of the contact, in a notification with the matching id of `ids`.
/// An unknown contact refuses the whole request with 404, before anything is delivered.
pub(crate) fn issue_privacy_tokens(
    state: &mut State,
    from: &str,
    issued: &[(Jid, i64)],
    ids: &[String],
) -> Result<(), u16> {
    let contacts = issued
        .iter()
        .map(|(contact, timestamp)| Ok((resolve(state, contact).ok_or(404u16)?.0, *timestamp)))
        .collect::<Result<Vec<_>, u16>>()?;
    for ((contact, timestamp), id) in contacts.iter().zip(ids) {
        let token = format!("tctoken:{from}:{contact}:{timestamp}");
        send_privacy_token(state, from, contact, token.as_bytes(), id);
    }
    Ok(())
}

/// Sets account `number`'s profile photo id (`None` removes it).
pub(crate) fn set_picture(state: &mut State, number: &str, id: Option<&str>) {
    profile(state, number).picture = id.map(str::to_owned);
}

/// Account `number`'s about text, push name and default disappearing timer.
pub(crate) fn profile_of(state: &mut State, number: &str) -> (String, String, u32) {
    let profile = profile(state, number);
    (
        profile.about.clone(),
        profile.push_name.clone(),
        profile.default_disappearing,
    )
}

fn text_of(node: &Node) -> Option<String> {
    match &node.content {
        Content::Bytes(bytes) => String::from_utf8(bytes.to_vec()).ok(),
        Content::Str(text) => Some(text.to_string()),
        _ => None,
    }
}

fn result(id: &str) -> Node {
    Node::new("iq")
        .attr("from", server_jid())
        .attr("type", "result")
        .attr("id", id.to_owned())
}

/// Whether this module answers the IQ: its namespaces, and `usync` queries that ask for more than devices.
pub(crate) fn handles(iq: &Node) -> bool {
    match iq.optional_str_attr("xmlns") {
        Some("privacy" | "blocklist" | "status" | "w:profile:picture" | "disappearing_mode") => true,
        Some("usync") => iq
            .child("usync")
            .and_then(|usync| usync.child("query"))
            .is_some_and(|query| query.child_nodes().iter().any(|q| q.tag != "devices")),
        _ => false,
    }
}

/// Answers an IQ [`handles`] accepted, from logged-in `device`: the answer, or an error code.
pub(crate) fn answer(state: &mut State, device: &Jid, id: &str, iq: &Node) -> Result<Node, u16> {
    let number = device.user().to_owned();
    let kind = iq.optional_str_attr("type").unwrap_or_default();
    match (iq.optional_str_attr("xmlns").unwrap_or_default(), kind) {
        ("usync", "get") => usync(state, &number, id, iq),
        ("w:profile:picture", "get") => picture(state, &number, id, iq),
        ("status", "set") => {
            let text = iq.child("status").and_then(text_of).ok_or(400u16)?;
            profile(state, &number).about = text;
            Ok(result(id))
        }
        ("privacy", "get") => {
            let profile = profile(state, &number);
            let categories = CATEGORIES.iter().map(|(name, _, _)| {
                Node::new("category")
                    .attr("name", *name)
                    .attr("value", profile.setting(name).to_owned())
            });
            Ok(result(id).children([Node::new("privacy").children(categories.collect::<Vec<_>>())]))
        }
        ("privacy", "set") => {
            let category = iq
                .child("privacy")
                .and_then(|privacy| privacy.child("category"))
                .ok_or(400u16)?;
            let (name, value) = (
                category.str_attr("name").map_err(|_| 400u16)?,
                category.str_attr("value").map_err(|_| 400u16)?,
            );
            let allowed = CATEGORIES
                .iter()
                .find(|(known, _, _)| *known == name)
                .is_some_and(|(_, values, _)| values.contains(&value));
            if !allowed {
                return Err(400);
            }
            profile(state, &number)
                .privacy
                .insert(name.to_owned(), value.to_owned());
            let notification = Node::new("notification")
                .attr("from", user_jid(&number))
                .attr("type", "account_sync")
                .attr("t", unix_now().to_string())
                .children([Node::new("privacy").children([category.clone()])]);
            notify_account(
                state,
                &number,
                Some(device),
                &format!("privacy-{id}"),
                notification,
            );
            Ok(result(id))
        }
        ("blocklist", "get") => Ok(result(id).children([blocklist(state, &number)])),
        ("blocklist", "set") => {
            let item = iq.child("item").ok_or(400u16)?;
            let target = item.jid_attr("jid").map_err(|_| 400u16)?;
            let action = item.str_attr("action").map_err(|_| 400u16)?.to_owned();
            let (target, _) = resolve(state, &target).ok_or(404u16)?;
            let blocked = &mut profile(state, &number).blocked;
            match action.as_str() {
                "block" => blocked.insert(target.clone()),
                "unblock" => blocked.remove(&target),
                _ => return Err(400),
            };
            let list = blocklist(state, &number);
            let dhash = list.optional_str_attr("dhash").unwrap_or_default().to_owned();
            let notification = Node::new("notification")
                .attr("from", user_jid(&number))
                .attr("type", "account_sync")
                .attr("t", unix_now().to_string())
                .children([Node::new("blocklist")
                    .attr("dhash", dhash)
                    .children([Node::new("item")
                        .attr("jid", user_jid(&target))
                        .attr("action", action)])]);
            notify_account(
                state,
                &number,
                Some(device),
                &format!("blocklist-{id}"),
                notification,
            );
            Ok(result(id).children([list]))
        }
        ("disappearing_mode", "set") => {
            let seconds = iq
                .child("disappearing_mode")
                .and_then(|mode| mode.u64_attr("duration").ok())
                .and_then(|seconds| u32::try_from(seconds).ok())
                .ok_or(400u16)?;
            profile(state, &number).default_disappearing = seconds;
            Ok(result(id))
        }
        _ => Err(501),
    }
}

/// `<list dhash><item jid/>...</list>` of account `number`; the hash is the count and members, which changes
/// whenever the list does.
fn blocklist(state: &mut State, number: &str) -> Node {
    let blocked = &profile(state, number).blocked;
    let dhash = format!(
        "{}:{}",
        blocked.len(),
        blocked.iter().cloned().collect::<Vec<_>>().join(",")
    );
    Node::new("list").attr("dhash", dhash).children(
        blocked
            .iter()
            .map(|n| Node::new("item").attr("jid", user_jid(n)))
            .collect::<Vec<_>>(),
    )
}

/// Whether account `owner` lets account `viewer` see what `category` guards (`contacts` counts as nobody: the
/// server keeps no address books).
fn visible(state: &mut State, owner: &str, viewer: &str, category: &str) -> bool {
    if owner == viewer {
        return true;
    }
    !blocks(state, owner, viewer) && profile(state, owner).setting(category) == "all"
}

fn usync(state: &mut State, viewer: &str, id: &str, iq: &Node) -> Result<Node, u16> {
    let usync = iq.child("usync").ok_or(400u16)?;
    let query = usync.child("query").ok_or(400u16)?;
    let asked = |tag: &str| query.child(tag).is_some();
    let list = usync.child("list").ok_or(400u16)?;
    let mut users = Vec::new();
    for user in list.children_by_tag("user") {
        if let Some(contact) = user.child("contact") {
            let queried = text_of(contact).ok_or(400u16)?;
            let digits: String = queried
                .split('@')
                .next()
                .unwrap_or_default()
                .chars()
                .filter(char::is_ascii_digit)
                .collect();
            let is_in = state.accounts.contains_key(&digits);
            users.push(
                Node::new("user")
                    .attr("jid", user_jid(&digits))
                    .children([Node::new("contact")
                        .attr("type", if is_in { "in" } else { "out" })
                        .bytes(queried.into_bytes())]),
            );
            continue;
        }
        let jid = user.jid_attr("jid").map_err(|_| 400u16)?.to_non_ad();
        let Some((number, _)) = resolve(state, &jid) else {
            users.push(Node::new("user").attr("jid", jid));
            continue;
        };
        let mut children = Vec::new();
        if asked("status") && visible(state, &number, viewer, "status") {
            let about = profile(state, &number).about.clone();
            children.push(Node::new("status").bytes(about.into_bytes()));
        }
        if asked("picture") && visible(state, &number, viewer, "profile") {
            match profile(state, &number).picture.clone() {
                Some(picture) => children.push(Node::new("picture").attr("id", picture)),
                None => children.push(Node::new("picture")),
            }
        }
        if asked("lid")
            && let Some(account) = state.accounts.get(&number)
        {
            children.push(Node::new("lid").attr("val", Jid::new(account.lid_user.clone(), Jid::LID_SERVER)));
        }
        if asked("devices")
            && let Some(account) = state.accounts.get(&number)
        {
            let devices = crate::routing::device_list(account);
            children.push(Node::new("devices").children([Node::new("device-list").children(devices)]));
        }
        users.push(Node::new("user").attr("jid", jid).children(children));
    }
    let answer = Node::new("usync")
        .attr(
            "sid",
            usync.optional_str_attr("sid").unwrap_or_default().to_owned(),
        )
        .children([Node::new("list").children(users)]);
    Ok(result(id).children([answer]))
}

/// The answer to a `w:profile:picture` query: 401 when the owner hides the photo from the viewer, 404 when there
/// is none, `status="304"` when the caller's id is current.
fn picture(state: &mut State, viewer: &str, id: &str, iq: &Node) -> Result<Node, u16> {
    let target = iq.jid_attr("target").map_err(|_| 400u16)?;
    let query = iq.child("picture").ok_or(400u16)?;
    let (number, _) = resolve(state, &target).ok_or(404u16)?;
    if !visible(state, &number, viewer, "profile") {
        return Err(401);
    }
    let picture = profile(state, &number).picture.clone().ok_or(404u16)?;
    if query.optional_str_attr("id") == Some(picture.as_str()) {
        return Ok(result(id).children([Node::new("picture").attr("status", "304")]));
    }
    let kind = query.optional_str_attr("type").unwrap_or("image").to_owned();
    let direct_path = crate::media::MediaHost::picture_path(&number, &picture, &kind);
    Ok(result(id).children([Node::new("picture")
        .attr("id", picture)
        .attr("type", kind)
        .attr("url", format!("{}{direct_path}", state.picture_host))
        .attr("direct_path", direct_path)]))
}
