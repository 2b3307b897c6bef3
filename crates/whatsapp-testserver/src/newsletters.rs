//! Channels (newsletters): the server keeps each channel's metadata, its owner and followers with their mute
//! state, its posts numbered by server id, who viewed and who reacted to each post, and the devices that asked
//! for live updates (whatsmeow `newsletter.go`, `types/newsletter.go`, `send.go`, `notification.go`).
//!
//! Metadata requests arrive as GraphQL `w:mex` IQs with a JSON body and are answered in JSON (the Argo form is
//! never used). Posts are `<message>` stanzas with a `<plaintext>` child; only the owner may post, and each post
//! goes to every device of every follower (and the owner's other devices) through the inbox, so it is
//! redelivered until acknowledged. Reactions and views change counts, which go live to the devices that
//! subscribed with `<live_updates/>`. Following, unfollowing and muting are told to the account's other devices
//! as `mex` notifications.
//!
//! Not kept: admins other than the owner, pictures, settings, edits and deletions of posts, and media.

use std::collections::{BTreeMap, BTreeSet};

use rand::Rng;
use rand::distributions::Alphanumeric;
use serde_json::{Value, json};
use whatsapp_binary::{Content, Jid, Node};

use crate::routing::deliver;
use crate::state::{Command, Shared, State, device_jid, server_jid, unix_now};

/// GraphQL query ids of the web client, as whatsmeow's `newsletter.go` lists them.
const FETCH: &str = "6563316087068696";
const SUBSCRIBED: &str = "6388546374527196";
const CREATE: &str = "6234210096708695";
const FOLLOW: &str = "9926858900719341";
const UNFOLLOW: &str = "6392786840836363";
const MUTE: &str = "6274038279359549";
const UNMUTE: &str = "6068417879924485";

/// How long a live-updates subscription lasts, in seconds (what the answer's `duration` says).
const LIVE_UPDATES_SECONDS: u64 = 300;

/// The most posts one `<messages>` request returns.
const MAX_PAGE: usize = 100;

/// A post's number is this plus its place in the channel, so server ids never look like list indices.
const FIRST_SERVER_ID: u64 = 100;

/// One account's place in a channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    Owner,
    Subscriber,
}

impl Role {
    fn as_json(self) -> &'static str {
        match self {
            Role::Owner => "OWNER",
            Role::Subscriber => "SUBSCRIBER",
        }
    }
}

#[derive(Debug)]
struct Member {
    role: Role,
    muted: bool,
}

#[derive(Debug)]
struct Post {
    server_id: u64,
    id: String,
    kind: String,
    timestamp: u64,
    plaintext: Vec<u8>,
    media_type: Option<String>,
    /// The accounts (numbers) that viewed it.
    viewers: BTreeSet<String>,
    /// Each reacting account's (number's) reaction.
    reactions: BTreeMap<String, String>,
}

#[derive(Debug)]
struct Channel {
    name: String,
    description: String,
    invite: String,
    created: u64,
    members: BTreeMap<String, Member>,
    posts: Vec<Post>,
    /// Devices that asked for live updates.
    live: BTreeSet<Jid>,
}

/// Every channel, by id (the user part of its JID).
#[derive(Debug, Default)]
pub(crate) struct Channels {
    by_id: BTreeMap<String, Channel>,
}

fn channel_jid(id: &str) -> Jid {
    Jid::new(id, Jid::NEWSLETTER_SERVER)
}

fn result(id: &str) -> Node {
    Node::new("iq")
        .attr("from", server_jid())
        .attr("type", "result")
        .attr("id", id.to_owned())
}

/// `<iq type="result"><result>JSON</result></iq>`.
fn mex_result(id: &str, body: Value) -> Node {
    result(id).children([Node::new("result").bytes(body.to_string().into_bytes())])
}

/// A GraphQL error answer, as the real server sends for an unknown channel or a refused change.
fn graphql_error(code: u16, message: &str) -> Value {
    json!({
        "data": null,
        "errors": [{
            "message": message,
            "extensions": {"error_code": code, "is_retryable": false, "severity": "CRITICAL"},
        }],
    })
}

fn metadata(id: &str, channel: &Channel, viewer: Option<&str>) -> Value {
    let subscribers = channel
        .members
        .values()
        .filter(|member| member.role == Role::Subscriber)
        .count();
    let created = channel.created.to_string();
    let mut value = json!({
        "id": channel_jid(id).to_string(),
        "state": {"type": "ACTIVE"},
        "thread_metadata": {
            "creation_time": created,
            "invite": channel.invite,
            "name": {"text": channel.name, "id": format!("{id}-name"), "update_time": format!("{created}000000")},
            "description": {"text": channel.description, "id": format!("{id}-description"), "update_time": format!("{created}000000")},
            "subscribers_count": subscribers.to_string(),
            "verification": "UNVERIFIED",
        },
    });
    if let Some(number) = viewer {
        let (role, muted) = channel
            .members
            .get(number)
            .map_or(("GUEST", false), |member| (member.role.as_json(), member.muted));
        value["viewer_metadata"] = json!({"mute": if muted { "ON" } else { "OFF" }, "role": role});
    }
    value
}

/// Whether this module answers the IQ.
pub(crate) fn handles(iq: &Node) -> bool {
    matches!(iq.optional_str_attr("xmlns"), Some("w:mex" | "newsletter"))
}

/// Answers an IQ [`handles`] accepted, from logged-in `device`: the answer, or an IQ error code.
pub(crate) fn answer(shared: &Shared, id: &str, device: &Jid, iq: &Node) -> Result<Node, u16> {
    match iq.optional_str_attr("xmlns") {
        Some("w:mex") => mex(shared, id, device, iq),
        _ => newsletter_iq(&mut shared.lock(), id, device, iq),
    }
}

fn mex(shared: &Shared, id: &str, device: &Jid, iq: &Node) -> Result<Node, u16> {
    if iq.optional_jid_attr("to").ok().flatten() != Some(server_jid()) {
        return Err(400);
    }
    let query = iq.child("query").ok_or(400u16)?;
    let query_id = query.str_attr("query_id").map_err(|_| 400u16)?.to_owned();
    let body = match &query.content {
        Content::Bytes(bytes) => bytes.to_vec(),
        Content::Str(text) => text.as_bytes().to_vec(),
        _ => return Err(400),
    };
    let body: Value = serde_json::from_slice(&body).map_err(|_| 400u16)?;
    let variables = body.get("variables").filter(|v| v.is_object()).ok_or(400u16)?;
    let number = device.user().to_owned();
    let answer = match query_id.as_str() {
        FETCH => fetch(&shared.lock(), &number, variables),
        SUBSCRIBED => {
            let state = shared.lock();
            let list: Vec<Value> = state
                .newsletters
                .by_id
                .iter()
                .filter(|(_, channel)| channel.members.contains_key(&number))
                .map(|(id, channel)| metadata(id, channel, Some(&number)))
                .collect();
            json!({"data": {"xwa2_newsletter_subscribed": list}})
        }
        CREATE => {
            let channel_id = format!("120363{:012}", shared.next_number());
            create(&mut shared.lock(), &number, &channel_id, variables)
        }
        FOLLOW | UNFOLLOW | MUTE | UNMUTE => {
            let notification_id = shared.next_stanza_id();
            membership(&mut shared.lock(), device, &query_id, variables, &notification_id)
        }
        _ => return Err(501),
    };
    Ok(mex_result(id, answer))
}

fn fetch(state: &State, number: &str, variables: &Value) -> Value {
    let input = &variables["input"];
    let (Some(key), Some(kind)) = (input["key"].as_str(), input["type"].as_str()) else {
        return graphql_error(400, "input.key and input.type are required");
    };
    let found = match kind {
        "JID" => key
            .parse::<Jid>()
            .ok()
            .filter(Jid::is_newsletter)
            .and_then(|jid| {
                state
                    .newsletters
                    .by_id
                    .get_key_value(jid.user())
                    .map(|(id, channel)| (id.clone(), channel))
            }),
        "INVITE" => state
            .newsletters
            .by_id
            .iter()
            .find(|(_, channel)| channel.invite == key)
            .map(|(id, channel)| (id.clone(), channel)),
        _ => return graphql_error(400, "unknown input.type"),
    };
    let Some((id, channel)) = found else {
        return graphql_error(404, "channel not found");
    };
    let viewer = (variables["fetch_viewer_metadata"] == json!(true)).then_some(number);
    json!({"data": {"xwa2_newsletter": metadata(&id, channel, viewer)}})
}

fn create(state: &mut State, number: &str, channel_id: &str, variables: &Value) -> Value {
    let input = &variables["newsletter_input"];
    let Some(name) = input["name"].as_str().filter(|name| !name.trim().is_empty()) else {
        return graphql_error(400, "newsletter_input.name is required");
    };
    let invite: String = format!(
        "0029{}",
        rand::thread_rng()
            .sample_iter(&Alphanumeric)
            .take(20)
            .map(char::from)
            .collect::<String>()
    );
    let channel = Channel {
        name: name.to_owned(),
        description: input["description"].as_str().unwrap_or_default().to_owned(),
        invite,
        created: unix_now(),
        members: BTreeMap::from([(
            number.to_owned(),
            Member {
                role: Role::Owner,
                muted: false,
            },
        )]),
        posts: Vec::new(),
        live: BTreeSet::new(),
    };
    let answer = metadata(channel_id, &channel, Some(number));
    state.newsletters.by_id.insert(channel_id.to_owned(), channel);
    json!({"data": {"xwa2_newsletter_create": answer}})
}

/// Follow, unfollow, mute and unmute: the change, told to the account's other devices as a `mex` notification.
fn membership(
    state: &mut State,
    device: &Jid,
    query_id: &str,
    variables: &Value,
    notification_id: &str,
) -> Value {
    let number = device.user();
    let Some(jid) = variables["newsletter_id"]
        .as_str()
        .and_then(|id| id.parse::<Jid>().ok())
        .filter(Jid::is_newsletter)
    else {
        return graphql_error(400, "newsletter_id is required");
    };
    let Some(channel) = state.newsletters.by_id.get_mut(jid.user()) else {
        return graphql_error(404, "channel not found");
    };
    let (field, update) = match query_id {
        FOLLOW => {
            channel.members.entry(number.to_owned()).or_insert(Member {
                role: Role::Subscriber,
                muted: false,
            });
            let joined = metadata(jid.user(), channel, Some(number));
            ("xwa2_notify_newsletter_on_join", joined)
        }
        UNFOLLOW => match channel.members.get(number).map(|member| member.role) {
            Some(Role::Owner) => return graphql_error(400, "the owner cannot unfollow its channel"),
            Some(role) => {
                channel.members.remove(number);
                channel.live.retain(|live| live.user() != number);
                (
                    "xwa2_notify_newsletter_on_leave",
                    json!({"id": jid.to_string(), "role": role.as_json()}),
                )
            }
            None => return graphql_error(404, "not a follower of this channel"),
        },
        _ => {
            let Some(member) = channel.members.get_mut(number) else {
                return graphql_error(403, "not a follower of this channel");
            };
            member.muted = query_id == MUTE;
            (
                "xwa2_notify_newsletter_on_mute_change",
                json!({"id": jid.to_string(), "mute": if member.muted { "ON" } else { "OFF" }}),
            )
        }
    };
    let notification = Node::new("notification")
        .attr("from", server_jid())
        .attr("type", "mex")
        .attr("id", notification_id.to_owned())
        .attr("t", unix_now().to_string())
        .children([Node::new("update")
            .attr("op_name", field)
            .bytes(json!({"data": {field: update}}).to_string().into_bytes())]);
    for other in account_devices(state, number)
        .into_iter()
        .filter(|other| other != device)
    {
        deliver(
            state,
            other,
            "notification",
            notification_id,
            notification.clone(),
        );
    }
    // whatsmeow reads nothing but errors from these answers; the channel id is returned under the update's name.
    json!({"data": {field: {"id": jid.to_string()}}})
}

fn account_devices(state: &State, number: &str) -> Vec<Jid> {
    state
        .accounts
        .get(number)
        .map(|account| {
            account
                .devices
                .keys()
                .map(|device| device_jid(number, *device))
                .collect()
        })
        .unwrap_or_default()
}

/// `<message server_id id t type>` with the post's plaintext (when `with_content`), views and reactions.
fn post_node(post: &Post, with_content: bool) -> Node {
    let mut counts: BTreeMap<&str, u64> = BTreeMap::new();
    for code in post.reactions.values() {
        *counts.entry(code.as_str()).or_default() += 1;
    }
    let mut children = Vec::new();
    if with_content {
        let mut plaintext = Node::new("plaintext");
        if let Some(media) = &post.media_type {
            plaintext = plaintext.attr("mediatype", media.clone());
        }
        children.push(plaintext.bytes(post.plaintext.clone()));
    }
    children.push(Node::new("views_count").attr("count", post.viewers.len().to_string()));
    children.push(
        Node::new("reactions").children(
            counts
                .into_iter()
                .map(|(code, count)| {
                    Node::new("reaction")
                        .attr("code", code.to_owned())
                        .attr("count", count.to_string())
                })
                .collect::<Vec<_>>(),
        ),
    );
    Node::new("message")
        .attr("server_id", post.server_id.to_string())
        .attr("id", post.id.clone())
        .attr("t", post.timestamp.to_string())
        .attr("type", post.kind.clone())
        .children(children)
}

/// The `newsletter` namespace: a channel's posts (`get <messages>`) and live-updates subscriptions
/// (`set <live_updates/>`, addressed to the channel).
fn newsletter_iq(state: &mut State, id: &str, device: &Jid, iq: &Node) -> Result<Node, u16> {
    match iq.optional_str_attr("type") {
        Some("get") => {
            let query = iq.child("messages").ok_or(400u16)?;
            let jid = query.jid_attr("jid").map_err(|_| 400u16)?;
            let count = query
                .optional_u64_attr("count")
                .map_err(|_| 400u16)?
                .map_or(MAX_PAGE, |count| (count as usize).min(MAX_PAGE));
            let before = query.optional_u64_attr("before").map_err(|_| 400u16)?;
            let channel = state.newsletters.by_id.get(jid.user()).ok_or(404u16)?;
            let older: Vec<&Post> = channel
                .posts
                .iter()
                .filter(|post| before.is_none_or(|before| post.server_id < before))
                .collect();
            let page = older[older.len().saturating_sub(count)..]
                .iter()
                .map(|post| post_node(post, true))
                .collect::<Vec<_>>();
            Ok(result(id).children([Node::new("messages")
                .attr("jid", jid)
                .attr("t", unix_now().to_string())
                .children(page)]))
        }
        Some("set") if iq.child("live_updates").is_some() => {
            let jid = iq.jid_attr("to").map_err(|_| 400u16)?;
            let channel = state.newsletters.by_id.get_mut(jid.user()).ok_or(404u16)?;
            channel.live.insert(device.clone());
            Ok(result(id)
                .children([Node::new("live_updates").attr("duration", LIVE_UPDATES_SECONDS.to_string())]))
        }
        _ => Err(400),
    }
}

/// Whether a `<message>` or `<receipt>` is addressed to a channel.
pub(crate) fn to_channel(stanza: &Node) -> bool {
    stanza
        .optional_jid_attr("to")
        .ok()
        .flatten()
        .is_some_and(|to| to.is_newsletter())
}

fn refusal(class: &'static str, id: &str, code: u16) -> Node {
    Node::new("ack")
        .attr("class", class)
        .attr("id", id.to_owned())
        .attr("error", code.to_string())
}

/// A `<message>` to a channel from logged-in `sender`: a reaction (`type="reaction"`), or a post by the owner.
/// Returns the ack for the sender (with `error` when refused) and why it was refused.
pub(crate) fn message(state: &mut State, sender: &Jid, message: &Node) -> (Node, Option<String>) {
    let id = message.optional_str_attr("id").unwrap_or_default().to_owned();
    let outcome = if message.optional_str_attr("type") == Some("reaction") {
        react(state, sender, message, &id)
    } else {
        post(state, sender, message, &id)
    };
    match outcome {
        Ok(ack) => (ack, None),
        Err((code, reason)) => (refusal("message", &id, code), Some(reason)),
    }
}

type Refused = (u16, String);

fn react(state: &mut State, sender: &Jid, message: &Node, id: &str) -> Result<Node, Refused> {
    let jid = message.jid_attr("to").map_err(|e| (400, e.to_string()))?;
    let server_id = message.u64_attr("server_id").map_err(|e| (400, e.to_string()))?;
    let reaction = message
        .child("reaction")
        .ok_or((400, "reaction without <reaction>".to_owned()))?;
    let removal = message.optional_str_attr("edit") == Some("7");
    let code = reaction.optional_str_attr("code").map(str::to_owned);
    let channel = state
        .newsletters
        .by_id
        .get_mut(jid.user())
        .ok_or((404, format!("no channel {jid}")))?;
    let post = channel
        .posts
        .iter_mut()
        .find(|post| post.server_id == server_id)
        .ok_or((404, format!("no post {server_id} in {jid}")))?;
    match code.filter(|code| !removal && !code.is_empty()) {
        Some(code) => post.reactions.insert(sender.user().to_owned(), code),
        None => post.reactions.remove(sender.user()),
    };
    let update = post_node(post, false);
    live_update(state, &jid, update);
    Ok(Node::new("ack")
        .attr("class", "message")
        .attr("id", id.to_owned())
        .attr("t", unix_now().to_string()))
}

fn post(state: &mut State, sender: &Jid, message: &Node, id: &str) -> Result<Node, Refused> {
    let jid = message.jid_attr("to").map_err(|e| (400, e.to_string()))?;
    if id.is_empty() {
        return Err((400, "post without id".to_owned()));
    }
    let plaintext = message
        .child("plaintext")
        .ok_or((400, "post without <plaintext>".to_owned()))?;
    let Content::Bytes(body) = &plaintext.content else {
        return Err((400, "post whose <plaintext> holds no bytes".to_owned()));
    };
    if message.child("enc").is_some() {
        return Err((400, "channel posts are not encrypted".to_owned()));
    }
    let channel = state
        .newsletters
        .by_id
        .get_mut(jid.user())
        .ok_or((404, format!("no channel {jid}")))?;
    if channel.members.get(sender.user()).map(|member| member.role) != Some(Role::Owner) {
        return Err((403, format!("{sender} is not an admin of {jid}")));
    }
    let timestamp = unix_now();
    let post = Post {
        server_id: FIRST_SERVER_ID + channel.posts.len() as u64,
        id: id.to_owned(),
        kind: message.optional_str_attr("type").unwrap_or("text").to_owned(),
        timestamp,
        plaintext: body.to_vec(),
        media_type: plaintext.optional_str_attr("mediatype").map(str::to_owned),
        viewers: BTreeSet::new(),
        reactions: BTreeMap::new(),
    };
    let server_id = post.server_id;
    let mut copy = Node::new("plaintext");
    if let Some(media) = &post.media_type {
        copy = copy.attr("mediatype", media.clone());
    }
    let stanza = Node::new("message")
        .attr("from", jid.clone())
        .attr("id", id.to_owned())
        .attr("server_id", server_id.to_string())
        .attr("t", timestamp.to_string())
        .attr("type", post.kind.clone())
        .children([copy.bytes(post.plaintext.clone())]);
    channel.posts.push(post);
    let members: Vec<String> = channel.members.keys().cloned().collect();
    for number in members {
        for device in account_devices(state, &number) {
            if &device != sender {
                deliver(state, device, "message", id, stanza.clone());
            }
        }
    }
    Ok(Node::new("ack")
        .attr("class", "message")
        .attr("id", id.to_owned())
        .attr("server_id", server_id.to_string())
        .attr("t", timestamp.to_string()))
}

/// A `<receipt type="view">` to a channel: the listed posts count `sender`'s account as a viewer. Returns the
/// ack (with `error` when refused) and why it was refused.
pub(crate) fn receipt(state: &mut State, sender: &Jid, receipt: &Node) -> (Node, Option<String>) {
    let id = receipt.optional_str_attr("id").unwrap_or_default().to_owned();
    match view(state, sender, receipt) {
        Ok(jid) => (
            Node::new("ack")
                .attr("class", "receipt")
                .attr("id", id)
                .attr("from", jid)
                .attr("type", "view"),
            None,
        ),
        Err((code, reason)) => (refusal("receipt", &id, code), Some(reason)),
    }
}

fn view(state: &mut State, sender: &Jid, receipt: &Node) -> Result<Jid, Refused> {
    let jid = receipt.jid_attr("to").map_err(|e| (400, e.to_string()))?;
    if receipt.optional_str_attr("type") != Some("view") {
        return Err((400, "only view receipts go to channels".to_owned()));
    }
    let items = receipt
        .child("list")
        .map(|list| list.children_by_tag("item").collect::<Vec<_>>())
        .unwrap_or_default();
    if items.is_empty() {
        return Err((400, "view receipt without <list><item>".to_owned()));
    }
    let channel = state
        .newsletters
        .by_id
        .get_mut(jid.user())
        .ok_or((404, format!("no channel {jid}")))?;
    let mut updates = Vec::new();
    for item in items {
        let server_id = item.u64_attr("server_id").map_err(|e| (400, e.to_string()))?;
        let post = channel
            .posts
            .iter_mut()
            .find(|post| post.server_id == server_id)
            .ok_or((404, format!("no post {server_id} in {jid}")))?;
        if post.viewers.insert(sender.user().to_owned()) {
            updates.push(post_node(post, false));
        }
    }
    for update in updates {
        live_update(state, &jid, update);
    }
    Ok(jid)
}

/// Sends `<notification type="newsletter"><live_updates>message</live_updates></notification>` to the live
/// connections of the devices that subscribed to the channel's live updates (not queued: live only).
fn live_update(state: &State, jid: &Jid, message: Node) {
    let Some(channel) = state.newsletters.by_id.get(jid.user()) else {
        return;
    };
    let notification = Node::new("notification")
        .attr("from", jid.clone())
        .attr("type", "newsletter")
        .attr("id", format!("live-{}-{}", jid.user(), unix_now()))
        .attr("t", unix_now().to_string())
        .children([Node::new("live_updates").children([message])]);
    for device in &channel.live {
        if let Some((_, conn)) = state.conn_of(device) {
            // A connection that just ended misses the update, as live updates are not queued.
            let _ = conn.tx.send(Command::Send(notification.clone()));
        }
    }
}
