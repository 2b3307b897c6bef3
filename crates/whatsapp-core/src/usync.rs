//! Device lists: which devices a user has, asked with a `usync` query (protocol-facts §3.6, whatsmeow `user.go`).
//!
//! A message to a user is encrypted once per device, so the sender first asks for the device list:
//! `<iq xmlns="usync" type="get"><usync sid mode="query" last="true" index="0" context="message"><query>
//! <devices version="2"/></query><list><user jid=../>...</list></usync></iq>`. The answer lists, per user,
//! `<devices><device-list><device id=.. [key-index] [is_hosted]/>...</device-list></devices>`.

use whatsapp_binary::{Jid, Node};

use crate::error::ResponseError;

/// The device-list query for `users` (their device part is ignored), with the request's `sid`.
pub fn device_query(users: &[Jid], sid: &str) -> Node {
    let list = users
        .iter()
        .map(|user| Node::new("user").attr("jid", user.to_non_ad()));
    Node::new("iq")
        .attr("xmlns", "usync")
        .attr("type", "get")
        .attr("to", crate::server_jid())
        .children([Node::new("usync")
            .attr("sid", sid.to_owned())
            .attr("mode", "query")
            .attr("last", "true")
            .attr("index", "0")
            .attr("context", "message")
            .children([
                Node::new("query").children([Node::new("devices").attr("version", "2")]),
                Node::new("list").children(list),
            ])])
}

/// One user's devices from a device-list answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UserDevices {
    /// The user, as the server named it (no device part).
    pub user: Jid,
    /// Every device of the user, as full device JIDs (device 0 is the phone). Hosted devices are on the hosted
    /// servers.
    pub devices: Vec<Jid>,
}

/// Reads the answer to [`device_query`]. Users whose entry is malformed are skipped (a `user` without a JID),
/// as are device entries without a numeric id; a missing `<usync><list>` is an error.
pub fn parse_devices(result: &Node) -> Result<Vec<UserDevices>, ResponseError> {
    let list = result
        .child("usync")
        .and_then(|usync| usync.child("list"))
        .ok_or(ResponseError::Missing("usync/list"))?;
    Ok(list
        .children_by_tag("user")
        .filter_map(|user| {
            let jid = user.jid_attr("jid").ok()?;
            let devices = user
                .child("devices")
                .and_then(|d| d.child("device-list"))
                .map(|list| device_jids(&jid, list))
                .unwrap_or_default();
            Some(UserDevices { user: jid, devices })
        })
        .collect())
}

fn device_jids(user: &Jid, list: &Node) -> Vec<Jid> {
    list.children_by_tag("device")
        .filter_map(|device| {
            let id = u16::try_from(device.u64_attr("id").ok()?).ok()?;
            let hosted = device.optional_bool_attr("is_hosted").ok().flatten() == Some(true);
            let server = match (hosted, user.server()) {
                (true, Jid::LID_SERVER) => Jid::HOSTED_LID_SERVER,
                (true, _) => Jid::HOSTED_SERVER,
                (false, server) => server,
            };
            Some(Jid::with_device(user.user(), server, id))
        })
        .collect()
}

/// The participant hash ("phash") of a set of devices (protocol-facts §3.6, whatsmeow `participantListHashV2`):
/// `2:` and the unpadded base64 of the first six bytes of SHA-256 over the devices' `user.agent:device@server`
/// strings, sorted and concatenated. A sender puts it on a message; a server that counts other devices answers
/// with its own in the ack.
pub fn participant_hash(devices: &[Jid]) -> String {
    use base64::Engine as _;
    use sha2::Digest as _;
    let mut names: Vec<String> = devices
        .iter()
        .map(|d| format!("{}.{}:{}@{}", d.user(), d.raw_agent(), d.device(), d.server()))
        .collect();
    names.sort_unstable();
    let digest = sha2::Sha256::digest(names.concat().as_bytes());
    format!(
        "2:{}",
        base64::engine::general_purpose::STANDARD_NO_PAD.encode(&digest[..6])
    )
}

/// What happened to a device in a `devices` notification.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeviceChangeKind {
    /// A device was linked.
    Add,
    /// A device was unlinked.
    Remove,
    /// Something else about the list changed (whatsmeow drops its cached list).
    Update,
}

/// One change of a `devices` notification.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeviceChange {
    /// Added, removed or updated.
    pub kind: DeviceChangeKind,
    /// The device, when the change names one.
    pub device: Option<Jid>,
    /// The participant hash of the user's device list after the change (`device_hash`), when given.
    pub hash: Option<String>,
    /// The same device under the user's LID (the `<device lid>`), when given.
    pub lid_device: Option<Jid>,
    /// The participant hash of the user's LID device list after the change (`device_lid_hash`), when given.
    pub lid_hash: Option<String>,
}

/// `<notification type="devices" from=USER [lid]>` with `<add|remove|update device_hash [device_lid_hash]><device
/// jid [lid]/></..>` children: another user's device list changed (whatsmeow `handleDeviceNotification`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeviceNotification {
    /// The user whose devices changed (no device part).
    pub user: Jid,
    /// The user's LID, when the notification names it.
    pub lid: Option<Jid>,
    /// The changes, in order; children of other tags are skipped.
    pub changes: Vec<DeviceChange>,
}

impl DeviceNotification {
    /// Reads a `devices` notification; one without a `from` JID is an error.
    pub fn parse(node: &Node) -> Result<DeviceNotification, ResponseError> {
        let user = node
            .jid_attr("from")
            .map_err(|_| ResponseError::Missing("from"))?
            .to_non_ad();
        let lid = node
            .optional_jid_attr("lid")
            .ok()
            .flatten()
            .filter(|lid| lid.server() == Jid::LID_SERVER)
            .map(|lid| lid.to_non_ad());
        let changes = node
            .child_nodes()
            .iter()
            .filter_map(|child| {
                let kind = match &*child.tag {
                    "add" => DeviceChangeKind::Add,
                    "remove" => DeviceChangeKind::Remove,
                    "update" => DeviceChangeKind::Update,
                    _ => return None,
                };
                let device = child.child("device");
                Some(DeviceChange {
                    kind,
                    device: device.and_then(|device| device.optional_jid_attr("jid").ok().flatten()),
                    hash: child.optional_str_attr("device_hash").map(str::to_owned),
                    lid_device: device
                        .and_then(|device| device.optional_jid_attr("lid").ok().flatten())
                        .filter(|lid| lid.server() == Jid::LID_SERVER),
                    lid_hash: child.optional_str_attr("device_lid_hash").map(str::to_owned),
                })
            })
            .collect();
        Ok(DeviceNotification { user, lid, changes })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_lists_users_without_device_parts() {
        let users = [
            Jid::with_device("15551234567", Jid::DEFAULT_USER_SERVER, 3),
            Jid::new("987654321", Jid::LID_SERVER),
        ];
        let iq = device_query(&users, "sid-1");
        let usync = iq.child("usync").unwrap();
        assert_eq!(usync.str_attr("context").unwrap(), "message");
        assert_eq!(
            usync
                .child("query")
                .unwrap()
                .child("devices")
                .unwrap()
                .str_attr("version")
                .unwrap(),
            "2"
        );
        let jids: Vec<Jid> = usync
            .child("list")
            .unwrap()
            .children_by_tag("user")
            .map(|u| u.jid_attr("jid").unwrap())
            .collect();
        assert_eq!(
            jids,
            vec![
                Jid::new("15551234567", Jid::DEFAULT_USER_SERVER),
                Jid::new("987654321", Jid::LID_SERVER)
            ]
        );
    }

    #[test]
    fn answer_gives_device_jids() {
        let user = Jid::new("987654321", Jid::LID_SERVER);
        let answer = Node::new("iq")
            .attr("type", "result")
            .children([Node::new("usync").children([Node::new("list").children([
                Node::new("user")
                    .attr("jid", user.clone())
                    .children(
                        [Node::new("devices").children([Node::new("device-list").children([
                            Node::new("device").attr("id", "0"),
                            Node::new("device").attr("id", "7").attr("key-index", "2"),
                            Node::new("device").attr("id", "99").attr("is_hosted", "true"),
                            Node::new("device").attr("id", "not a number"),
                        ])])],
                    ),
                Node::new("user"),
            ])])]);
        let parsed = parse_devices(&answer).unwrap();
        assert_eq!(parsed.len(), 1);
        assert_eq!(
            parsed[0].devices,
            vec![
                Jid::with_device("987654321", Jid::LID_SERVER, 0),
                Jid::with_device("987654321", Jid::LID_SERVER, 7),
                Jid::with_device("987654321", Jid::HOSTED_LID_SERVER, 99),
            ]
        );
        assert_eq!(
            parse_devices(&Node::new("iq")),
            Err(ResponseError::Missing("usync/list"))
        );
    }

    #[test]
    fn participant_hash_is_whatsmeows() {
        // Order does not matter; the agent is the raw one (0 for LIDs), so `@lid` devices hash as `.0`.
        let a = Jid::with_device("15551234567", Jid::DEFAULT_USER_SERVER, 1);
        let b = Jid::with_device("15557654321", Jid::DEFAULT_USER_SERVER, 0);
        let c = Jid::with_device("987654321", Jid::LID_SERVER, 2);
        assert_eq!(
            participant_hash(&[a.clone(), b.clone(), c.clone()]),
            participant_hash(&[c.clone(), a.clone(), b.clone()])
        );
        // SHA-256("15551234567.0:1@s.whatsapp.net15557654321.0:0@s.whatsapp.net987654321.0:2@lid")[..6] in
        // unpadded base64, computed independently with Python's hashlib.
        assert_eq!(participant_hash(&[a, b, c]), "2:bmfvQ5CX");
        // The hash of no devices is common enough to be in WhatsApp's token dictionary.
        assert_eq!(participant_hash(&[]), "2:47DEQpj8");
    }

    #[test]
    fn device_notifications_are_read_leniently() {
        let node = Node::new("notification")
            .attr("from", Jid::new("15551234567", Jid::DEFAULT_USER_SERVER))
            .attr("lid", Jid::new("777", Jid::LID_SERVER))
            .attr("type", "devices")
            .children([
                Node::new("add")
                    .attr("device_hash", "2:abc")
                    .attr("device_lid_hash", "2:def")
                    .children([Node::new("device")
                        .attr(
                            "jid",
                            Jid::with_device("15551234567", Jid::DEFAULT_USER_SERVER, 4),
                        )
                        .attr("lid", Jid::with_device("777", Jid::LID_SERVER, 4))]),
                Node::new("remove").children([Node::new("device").attr("jid", "garbage@@")]),
                Node::new("update"),
                Node::new("something-else"),
            ]);
        let parsed = DeviceNotification::parse(&node).unwrap();
        assert_eq!(parsed.user, Jid::new("15551234567", Jid::DEFAULT_USER_SERVER));
        assert_eq!(parsed.lid, Some(Jid::new("777", Jid::LID_SERVER)));
        assert_eq!(
            parsed.changes,
            vec![
                DeviceChange {
                    kind: DeviceChangeKind::Add,
                    device: Some(Jid::with_device("15551234567", Jid::DEFAULT_USER_SERVER, 4)),
                    hash: Some("2:abc".to_owned()),
                    lid_device: Some(Jid::with_device("777", Jid::LID_SERVER, 4)),
                    lid_hash: Some("2:def".to_owned()),
                },
                DeviceChange {
                    kind: DeviceChangeKind::Remove,
                    device: None,
                    hash: None,
                    lid_device: None,
                    lid_hash: None,
                },
                DeviceChange {
                    kind: DeviceChangeKind::Update,
                    device: None,
                    hash: None,
                    lid_device: None,
                    lid_hash: None,
                },
            ]
        );
        assert_eq!(
            DeviceNotification::parse(&Node::new("notification")),
            Err(ResponseError::Missing("from"))
        );
    }
}
