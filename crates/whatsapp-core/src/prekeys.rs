//! Fetching other devices' prekey bundles to start Signal sessions with them (protocol-facts §3.5, whatsmeow
//! `prekeys.go`).
//!
//! `<iq xmlns="encrypt" type="get"><key><user jid=.. reason="identity"/>...</key></iq>` is answered with
//! `<list><user jid><registration/><identity/><skey><id/><value/><signature/></skey>[<key><id/><value/></key>]</user>`
//! (the keys may sit inside a `<keys>` child), or an `<error>` per user.

use whatsapp_binary::{Jid, Node};
use whatsapp_signal::{PreKeyBundle, PublicKey};

use crate::error::ResponseError;

/// The bundle request for `devices`.
pub fn bundle_query(devices: &[Jid]) -> Node {
    Node::new("iq")
        .attr("xmlns", "encrypt")
        .attr("type", "get")
        .attr("to", crate::server_jid())
        .children([Node::new("key").children(devices.iter().map(|device| {
            Node::new("user")
                .attr("jid", device.clone())
                .attr("reason", "identity")
        }))])
}

/// One device's bundle, or why the server could not give it.
pub type BundleAnswer = (Jid, Result<PreKeyBundle, ResponseError>);

/// Reads the answer to [`bundle_query`]: one result per device the server answered for. A missing `<list>` is an
/// error of the whole answer; a bad entry is an error of that device only.
pub fn parse_bundles(result: &Node) -> Result<Vec<BundleAnswer>, ResponseError> {
    let list = result.child("list").ok_or(ResponseError::Missing("list"))?;
    Ok(list
        .children_by_tag("user")
        .filter_map(|user| {
            let jid = user.jid_attr("jid").ok()?;
            Some((jid, parse_bundle(user)))
        })
        .collect())
}

fn bytes<'n>(node: &'n Node, tag: &'static str) -> Result<&'n [u8], ResponseError> {
    node.child(tag)
        .and_then(Node::content_bytes)
        .map(|b| b.as_ref())
        .ok_or(ResponseError::Missing(tag))
}

fn fixed<const N: usize>(node: &Node, tag: &'static str) -> Result<[u8; N], ResponseError> {
    bytes(node, tag)?
        .try_into()
        .map_err(|_| ResponseError::Invalid(tag))
}

fn key_id(node: &Node) -> Result<u32, ResponseError> {
    let [a, b, c] = fixed::<3>(node, "id")?;
    Ok(u32::from_be_bytes([0, a, b, c]))
}

/// Reads one bundle: `<registration>` and the keys, directly inside `node` or in a `<keys>` child (as in bundle
/// answers and in retry receipts).
pub fn parse_bundle(node: &Node) -> Result<PreKeyBundle, ResponseError> {
    let user = node;
    if let Some(error) = user.child("error") {
        return Err(ResponseError::Server {
            code: error
                .optional_str_attr("code")
                .and_then(|c| c.parse().ok())
                .unwrap_or(0),
            text: error.optional_str_attr("text").unwrap_or_default().to_owned(),
        });
    }
    let registration_id = u32::from_be_bytes(fixed(user, "registration")?);
    let keys = user.child("keys").unwrap_or(user);
    let identity_key = PublicKey::from_bytes(fixed(keys, "identity")?);
    let skey = keys.child("skey").ok_or(ResponseError::Missing("skey"))?;
    let signature: [u8; 64] = fixed(skey, "signature")?;
    let pre_key = match keys.child("key") {
        Some(key) => Some((key_id(key)?, PublicKey::from_bytes(fixed(key, "value")?))),
        None => None,
    };
    Ok(PreKeyBundle {
        registration_id,
        identity_key,
        signed_pre_key_id: key_id(skey)?,
        signed_pre_key: PublicKey::from_bytes(fixed(skey, "value")?),
        signed_pre_key_signature: signature.to_vec(),
        pre_key,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(tag: &'static str, id: [u8; 3], value: u8) -> Node {
        let mut children = vec![
            Node::new("id").bytes(id.to_vec()),
            Node::new("value").bytes(vec![value; 32]),
        ];
        if tag == "skey" {
            children.push(Node::new("signature").bytes(vec![value; 64]));
        }
        Node::new(tag).children(children)
    }

    #[test]
    fn query_asks_for_each_device() {
        let devices = [
            Jid::with_device("1", Jid::LID_SERVER, 0),
            Jid::with_device("1", Jid::LID_SERVER, 4),
        ];
        let iq = bundle_query(&devices);
        let users: Vec<_> = iq.child("key").unwrap().children_by_tag("user").collect();
        assert_eq!(users.len(), 2);
        assert_eq!(users[1].jid_attr("jid").unwrap(), devices[1]);
        assert_eq!(users[1].str_attr("reason").unwrap(), "identity");
    }

    #[test]
    fn answer_gives_bundles_and_per_device_errors() {
        let good = Jid::with_device("1", Jid::LID_SERVER, 0);
        let nested = Jid::with_device("1", Jid::LID_SERVER, 2);
        let failed = Jid::with_device("1", Jid::LID_SERVER, 4);
        let short = Jid::with_device("1", Jid::LID_SERVER, 5);
        let answer = Node::new("iq").children([Node::new("list").children([
            Node::new("user").attr("jid", good.clone()).children([
                Node::new("registration").bytes(vec![0, 0, 1, 2]),
                Node::new("type").bytes(vec![5]),
                Node::new("identity").bytes(vec![9; 32]),
                key("skey", [0, 0, 1], 3),
                key("key", [0xAB, 0xCD, 0xEF], 4),
            ]),
            Node::new("user").attr("jid", nested.clone()).children([
                Node::new("registration").bytes(vec![0, 0, 0, 7]),
                Node::new("keys").children([
                    Node::new("identity").bytes(vec![8; 32]),
                    key("skey", [0, 0, 2], 5),
                ]),
            ]),
            Node::new("user")
                .attr("jid", failed.clone())
                .children([Node::new("error")
                    .attr("code", "404")
                    .attr("text", "item-not-found")]),
            Node::new("user")
                .attr("jid", short.clone())
                .children([Node::new("registration").bytes(vec![1])]),
        ])]);
        let parsed = parse_bundles(&answer).unwrap();
        assert_eq!(parsed.len(), 4);
        let bundle = parsed[0].1.clone().unwrap();
        assert_eq!(parsed[0].0, good);
        assert_eq!(bundle.registration_id, 0x0102);
        assert_eq!(bundle.signed_pre_key_id, 1);
        assert_eq!(bundle.pre_key.map(|(id, _)| id), Some(0x00AB_CDEF));
        let bundle = parsed[1].1.clone().unwrap();
        assert_eq!(bundle.identity_key, PublicKey::from_bytes([8; 32]));
        assert_eq!(bundle.pre_key, None);
        assert_eq!(
            parsed[2].1,
            Err(ResponseError::Server {
                code: 404,
                text: "item-not-found".to_owned()
            })
        );
        assert_eq!(parsed[3].1, Err(ResponseError::Invalid("registration")));
        assert_eq!(
            parse_bundles(&Node::new("iq")),
            Err(ResponseError::Missing("list"))
        );
    }
}
