//! App-state sync (protocol-facts §3.8): each account's collections as a log of the patches its devices
//! uploaded, served with `w:sync:app:state` IQs.
//!
//! The server cannot read patches (they are encrypted with keys only the account's devices hold); like the real
//! one it only orders them. An upload must be built on the collection's latest version, or it is refused with 409
//! and the patches the device is missing; an accepted upload becomes the next version and every other device of
//! the account is told with a `server_sync` notification. Fetches return the patches after the asked version, at
//! most [`PAGE`] at a time with `has_more_patches`. No snapshots are kept: a full sync gets every patch.

use whatsapp_binary::{Jid, Node};
use whatsapp_proto::ProtoMessage;
use whatsapp_proto::server_sync::SyncdPatch;

use crate::routing::deliver;
use crate::state::{State, device_jid, server_jid, unix_now};

/// The most patches one answer carries.
pub(crate) const PAGE: usize = 20;

/// The collection names the protocol knows.
const COLLECTIONS: [&str; 5] = [
    "critical_block",
    "critical_unblock_low",
    "regular_high",
    "regular_low",
    "regular",
];

/// The answer to a `w:sync:app:state` request from `device`, after queueing the `server_sync` notifications an
/// accepted upload causes. A malformed request is refused with the reason.
pub(crate) fn sync_answer(state: &mut State, id: &str, device: &Jid, iq: &Node) -> Result<Node, String> {
    let sync = iq.child("sync").ok_or("app-state request without <sync>")?;
    let mut answers = Vec::new();
    for collection in sync.children_by_tag("collection") {
        let name = collection
            .optional_str_attr("name")
            .filter(|name| COLLECTIONS.contains(name))
            .ok_or("app-state request for an unknown collection")?
            .to_owned();
        let since = match collection.optional_str_attr("version") {
            Some(version) => version.parse::<u64>().map_err(|_| "bad collection version")?,
            None => 0,
        };
        answers.push(match collection.child("patch") {
            Some(patch) => upload(state, device, &name, since, patch)?,
            None => fetch(state, device, &name, since),
        });
    }
    Ok(Node::new("iq")
        .attr("from", server_jid())
        .attr("type", "result")
        .attr("id", id.to_owned())
        .children([Node::new("sync").children(answers)]))
}

fn log<'s>(state: &'s mut State, device: &Jid, name: &str) -> Option<&'s mut Vec<Vec<u8>>> {
    let account = state.accounts.get_mut(device.user())?;
    Some(account.app_state.entry(name.to_owned()).or_default())
}

/// Up to [`PAGE`] patches after version `since`.
fn fetch(state: &mut State, device: &Jid, name: &str, since: u64) -> Node {
    let patches = log(state, device, name)
        .map(|log| log.clone())
        .unwrap_or_default();
    page(name, &patches, since)
}

fn page(name: &str, patches: &[Vec<u8>], since: u64) -> Node {
    let start = usize::try_from(since).unwrap_or(usize::MAX).min(patches.len());
    let end = (start + PAGE).min(patches.len());
    let mut answer = Node::new("collection")
        .attr("name", name.to_owned())
        .attr("version", end.to_string());
    if end < patches.len() {
        answer = answer.attr("has_more_patches", "true");
    }
    answer.children([Node::new("patches").children(
        patches[start..end]
            .iter()
            .map(|patch| Node::new("patch").bytes(patch.clone()))
            .collect::<Vec<_>>(),
    )])
}

/// Appends an uploaded patch when it is built on the latest version (409 with the missing patches otherwise),
/// and tells the account's other devices.
fn upload(state: &mut State, device: &Jid, name: &str, since: u64, patch: &Node) -> Result<Node, String> {
    let bytes = patch.content_bytes().ok_or("<patch> without content")?.to_vec();
    let decoded = SyncdPatch::decode(bytes.as_slice()).map_err(|e| format!("undecodable patch: {e}"))?;
    let version = decoded
        .version
        .and_then(|v| v.version)
        .ok_or("patch without a version")?;
    let log = log(state, device, name).ok_or("upload from an unknown account")?;
    let latest = log.len() as u64;
    if since != latest || version != latest + 1 {
        let missing = page(name, log, since);
        let children: Vec<Node> = [Node::new("error").attr("code", "409").attr("text", "conflict")]
            .into_iter()
            .chain(missing.child_nodes().iter().cloned())
            .collect();
        return Ok(missing.attr("type", "error").children(children));
    }
    log.push(bytes);
    notify(state, device.user(), Some(device.device()), name, version);
    Ok(Node::new("collection")
        .attr("name", name.to_owned())
        .attr("version", version.to_string()))
}

/// Appends a patch as the account's phone does (no conflict check: the phone is the authority), notifying every
/// companion; returns the new version.
pub(crate) fn push_from_phone(state: &mut State, number: &str, name: &str, patch: Vec<u8>) -> Option<u64> {
    let account = state.accounts.get_mut(number)?;
    let log = account.app_state.entry(name.to_owned()).or_default();
    log.push(patch);
    let version = log.len() as u64;
    notify(state, number, None, name, version);
    Some(version)
}

/// Queues a `server_sync` notification for `version` of collection `name` to every device of the account but
/// `except`.
fn notify(state: &mut State, number: &str, except: Option<u16>, name: &str, version: u64) {
    let devices: Vec<u16> = state
        .accounts
        .get(number)
        .map(|account| {
            account
                .devices
                .keys()
                .copied()
                .filter(|d| Some(*d) != except)
                .collect()
        })
        .unwrap_or_default();
    for device in devices {
        let id = format!("sync-{name}-{version}-{device}");
        let notification = Node::new("notification")
            .attr("from", server_jid())
            .attr("type", "server_sync")
            .attr("id", id.clone())
            .attr("t", unix_now().to_string())
            .children([Node::new("collection")
                .attr("name", name.to_owned())
                .attr("version", version.to_string())]);
        deliver(
            state,
            device_jid(number, device),
            "notification",
            &id,
            notification,
        );
    }
}
