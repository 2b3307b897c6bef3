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
}
