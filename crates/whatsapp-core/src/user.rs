//! Other users: whether phone numbers are on WhatsApp, their about text, profile photo and devices, and this
//! account's own about text (whatsmeow `user.go`: `IsOnWhatsApp`, `GetUserInfo`, `GetProfilePictureInfo`).
//!
//! The lookups are `usync` queries like the device list of [`crate::usync`], with other protocols in the
//! `<query>`: `contact` (registered or not), `status` (about text), `picture` (photo id), `business`
//! (verified name), `lid`. Photos have their own IQ, `w:profile:picture`.

use whatsapp_binary::{Jid, Node};
use whatsapp_proto::ProtoMessage;
use whatsapp_proto::e2e::VerifiedNameCertificate;
use whatsapp_proto::e2e::verified_name_certificate::Details;

use crate::error::StanzaError;

/// The server suffix of a phone number in a `contact` query (whatsmeow `types.LegacyUserServer`).
pub const LEGACY_USER_SERVER: &str = "c.us";

fn usync_iq(
    sid: &str,
    mode: &'static str,
    context: &'static str,
    query: Vec<Node>,
    users: Vec<Node>,
) -> Node {
    Node::new("iq")
        .attr("xmlns", "usync")
        .attr("type", "get")
        .attr("to", crate::server_jid())
        .children([Node::new("usync")
            .attr("sid", sid.to_owned())
            .attr("mode", mode)
            .attr("last", "true")
            .attr("index", "0")
            .attr("context", context)
            .children([
                Node::new("query").children(query),
                Node::new("list").children(users),
            ])])
}

fn business_query() -> Node {
    Node::new("business").children([Node::new("verified_name")])
}

/// The `contact` query for phone numbers in international form (`+` and separators are allowed; only digits are
/// kept): `<user><contact>+15551234567@c.us</contact></user>` per number, mode `query`, context `interactive`.
/// Returns `None` for a number without digits.
pub fn contact_query(phones: &[&str], sid: &str) -> Option<Node> {
    let users = phones
        .iter()
        .map(|phone| {
            let digits: String = phone.chars().filter(char::is_ascii_digit).collect();
            (!digits.is_empty()).then(|| {
                Node::new("user")
                    .children([Node::new("contact").text(format!("+{digits}@{LEGACY_USER_SERVER}"))])
            })
        })
        .collect::<Option<Vec<_>>>()?;
    Some(usync_iq(
        sid,
        "query",
        "interactive",
        vec![Node::new("contact"), business_query()],
        users,
    ))
}

/// Whether one queried phone number is on WhatsApp.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OnWhatsApp {
    /// The number as queried (`+15551234567`).
    pub query: String,
    /// The user's JID.
    pub jid: Jid,
    /// Whether the number is registered.
    pub is_in: bool,
    /// The verified business name, for business accounts.
    pub verified_name: Option<String>,
}

fn usync_list(answer: &Node) -> Result<&Node, StanzaError> {
    answer
        .child("usync")
        .and_then(|usync| usync.child("list"))
        .ok_or(StanzaError::Missing("usync/list"))
}

fn text_content(node: &Node) -> Option<String> {
    match &node.content {
        whatsapp_binary::Content::Bytes(bytes) => Some(String::from_utf8_lossy(bytes).into_owned()),
        whatsapp_binary::Content::Str(text) => Some(text.to_string()),
        _ => None,
    }
}

/// The verified business name inside `<business><verified_name>certificate</verified_name></business>`; a
/// certificate that does not decode counts as none (whatsmeow logs and goes on).
fn verified_name(user: &Node) -> Option<String> {
    let certificate = user.child("business")?.child("verified_name")?.content_bytes()?;
    let certificate = VerifiedNameCertificate::decode(certificate.as_ref()).ok()?;
    Details::decode(certificate.details?.as_slice())
        .ok()?
        .verified_name
}

/// Reads the answer to [`contact_query`]: one entry per `<user jid><contact type="in|out">query</contact>`;
/// entries without a JID are skipped.
pub fn parse_contacts(answer: &Node) -> Result<Vec<OnWhatsApp>, StanzaError> {
    let suffix = format!("@{LEGACY_USER_SERVER}");
    Ok(usync_list(answer)?
        .children_by_tag("user")
        .filter_map(|user| {
            let jid = user.jid_attr("jid").ok()?;
            let contact = user.child("contact");
            let query = contact.and_then(text_content).unwrap_or_default();
            Some(OnWhatsApp {
                query: query.strip_suffix(&suffix).unwrap_or(&query).to_owned(),
                jid,
                is_in: contact.and_then(|c| c.optional_str_attr("type")) == Some("in"),
                verified_name: verified_name(user),
            })
        })
        .collect())
}

/// The user-info query for `users` (mode `full`, context `background`): business, status, picture, devices
/// and LID, each user with our privacy token for them when there is one (whatsmeow `GetUserInfo`).
pub fn info_query(users: &[(Jid, Option<Vec<u8>>)], sid: &str) -> Node {
    let list = users
        .iter()
        .map(|(jid, token)| {
            let user = Node::new("user").attr("jid", jid.to_non_ad());
            match token {
                Some(token) => user.children([crate::privacy::tctoken_node(token)]),
                None => user,
            }
        })
        .collect();
    usync_iq(
        sid,
        "full",
        "background",
        vec![
            business_query(),
            Node::new("status"),
            Node::new("picture"),
            Node::new("devices").attr("version", "2"),
            Node::new("lid"),
        ],
        list,
    )
}

/// What [`info_query`] tells about one user.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UserInfo {
    /// The user.
    pub jid: Jid,
    /// The about text, when visible to us.
    pub status: Option<String>,
    /// The profile photo's id, when there is one visible to us.
    pub picture_id: Option<String>,
    /// The user's devices.
    pub devices: Vec<Jid>,
    /// The user's LID, when given.
    pub lid: Option<Jid>,
    /// The verified business name, for business accounts.
    pub verified_name: Option<String>,
}

/// Reads the answer to [`info_query`]; entries without a JID are skipped, as are parts that are absent.
pub fn parse_user_info(answer: &Node) -> Result<Vec<UserInfo>, StanzaError> {
    let devices = crate::usync::parse_devices(answer).unwrap_or_default();
    Ok(usync_list(answer)?
        .children_by_tag("user")
        .filter_map(|user| {
            let jid = user.jid_attr("jid").ok()?;
            let status = user
                .child("status")
                .and_then(text_content)
                .filter(|text| !text.is_empty());
            let picture_id = user
                .child("picture")
                .and_then(|picture| picture.optional_str_attr("id"))
                .map(str::to_owned);
            let lid = user
                .child("lid")
                .and_then(|lid| lid.optional_jid_attr("val").ok().flatten());
            let devices = devices
                .iter()
                .find(|listed| listed.user == jid)
                .map(|listed| listed.devices.clone())
                .unwrap_or_default();
            Some(UserInfo {
                status,
                picture_id,
                devices,
                lid,
                verified_name: verified_name(user),
                jid,
            })
        })
        .collect())
}

/// `<iq xmlns="w:profile:picture" type="get" target=user><picture query="url" type="image|preview" [id]>
/// [<tctoken/>]</picture></iq>`: asks where `user`'s (or a group's) photo is. With `existing_id`, the server
/// answers "not modified" when the photo is still that one.
pub fn picture_query(user: &Jid, preview: bool, existing_id: Option<&str>, token: Option<&[u8]>) -> Node {
    let mut picture = Node::new("picture")
        .attr("query", "url")
        .attr("type", if preview { "preview" } else { "image" });
    if let Some(id) = existing_id {
        picture = picture.attr("id", id.to_owned());
    }
    if let Some(token) = token {
        picture = picture.children([crate::privacy::tctoken_node(token)]);
    }
    Node::new("iq")
        .attr("xmlns", "w:profile:picture")
        .attr("type", "get")
        .attr("to", crate::server_jid())
        .attr("target", user.to_non_ad())
        .children([picture])
}

/// Where a profile photo is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PictureInfo {
    /// The photo's id (changes with the photo).
    pub id: String,
    /// The download URL.
    pub url: String,
    /// `image` or `preview`.
    pub kind: String,
    /// The direct path on the media hosts, when given.
    pub direct_path: Option<String>,
}

/// Reads the answer to [`picture_query`]: `Ok(None)` when the photo did not change (`status="304"`, or no
/// `<picture>` after a query with an existing id); `Err(Missing)` when there is no photo (`status="204"`).
pub fn parse_picture(answer: &Node, had_existing_id: bool) -> Result<Option<PictureInfo>, StanzaError> {
    let Some(picture) = answer.child("picture") else {
        return if had_existing_id {
            Ok(None)
        } else {
            Err(StanzaError::Missing("picture"))
        };
    };
    match picture.optional_u64_attr("status")? {
        Some(304) => return Ok(None),
        Some(204) => return Err(StanzaError::Missing("profile picture (none set)")),
        _ => {}
    }
    Ok(Some(PictureInfo {
        id: picture.str_attr("id")?.to_owned(),
        url: picture.str_attr("url")?.to_owned(),
        kind: picture.optional_str_attr("type").unwrap_or("image").to_owned(),
        direct_path: picture.optional_str_attr("direct_path").map(str::to_owned),
    }))
}

/// `<iq xmlns="status" type="set"><status>text</status></iq>`: sets this account's about text. This is the
/// classic form; current whatsmeow sends the same change as a GraphQL (`w:mex`) mutation.
pub fn set_status_query(text: &str) -> Node {
    Node::new("iq")
        .attr("xmlns", "status")
        .attr("type", "set")
        .attr("to", crate::server_jid())
        .children([Node::new("status").bytes(text.as_bytes().to_vec())])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(number: &str) -> Jid {
        Jid::new(number, Jid::DEFAULT_USER_SERVER)
    }

    fn answer(users: Vec<Node>) -> Node {
        Node::new("iq").children([Node::new("usync").children([Node::new("list").children(users)])])
    }

    #[test]
    fn contact_query_normalises_numbers() {
        let iq = contact_query(&["+1 555-123 4567"], "s").unwrap();
        let list = iq.child("usync").unwrap().child("list").unwrap();
        let contact = list.child("user").unwrap().child("contact").unwrap();
        assert_eq!(text_content(contact).unwrap(), "+15551234567@c.us");
        assert!(contact_query(&["+", "1"], "s").is_none());
    }

    #[test]
    fn contacts_answer() {
        let details = Details {
            verified_name: Some("Shop".into()),
            ..Default::default()
        };
        let certificate = VerifiedNameCertificate {
            details: Some(details.encode_to_vec()),
            ..Default::default()
        };
        let parsed = parse_contacts(&answer(vec![
            Node::new("user").attr("jid", user("1")).children([
                Node::new("contact").attr("type", "in").bytes(b"+1@c.us".to_vec()),
                Node::new("business")
                    .children([Node::new("verified_name").bytes(certificate.encode_to_vec())]),
            ]),
            Node::new("user")
                .attr("jid", user("2"))
                .children([Node::new("contact")
                    .attr("type", "out")
                    .bytes(b"+2@c.us".to_vec())]),
            Node::new("user").children([Node::new("contact")]),
            Node::new("user").attr("jid", user("3")).children([
                Node::new("business").children([Node::new("verified_name").bytes(vec![0xff, 0xff])])
            ]),
        ]))
        .unwrap();
        assert_eq!(parsed.len(), 3);
        assert_eq!(
            parsed[0],
            OnWhatsApp {
                query: "+1".into(),
                jid: user("1"),
                is_in: true,
                verified_name: Some("Shop".into())
            }
        );
        assert!(!parsed[1].is_in);
        assert_eq!(
            (parsed[2].is_in, parsed[2].verified_name.as_deref()),
            (false, None)
        );
        assert!(parse_contacts(&Node::new("iq")).is_err());
    }

    #[test]
    fn user_info_answer() {
        let token = b"tok".to_vec();
        let iq = info_query(&[(user("1"), Some(token.clone())), (user("2"), None)], "s");
        let list = iq.child("usync").unwrap().child("list").unwrap();
        assert_eq!(
            list.child("user")
                .unwrap()
                .child("tctoken")
                .unwrap()
                .content_bytes()
                .unwrap()
                .as_ref(),
            token
        );
        let lid = Jid::new("999", Jid::LID_SERVER);
        let parsed = parse_user_info(&answer(vec![Node::new("user").attr("jid", user("1")).children(
            [
                Node::new("status").bytes(b"Busy".to_vec()),
                Node::new("picture").attr("id", "42"),
                Node::new("lid").attr("val", lid.clone()),
                Node::new("devices").children([Node::new("device-list").children([
                    Node::new("device").attr("id", "0"),
                    Node::new("device").attr("id", "3"),
                ])]),
            ],
        )]))
        .unwrap();
        assert_eq!(parsed.len(), 1);
        assert_eq!(parsed[0].status.as_deref(), Some("Busy"));
        assert_eq!(parsed[0].picture_id.as_deref(), Some("42"));
        assert_eq!(parsed[0].lid, Some(lid));
        assert_eq!(parsed[0].devices.len(), 2);
    }

    #[test]
    fn picture_answers() {
        let iq = picture_query(&user("1"), true, Some("7"), None);
        assert_eq!(iq.jid_attr("target").unwrap(), user("1"));
        let picture = iq.child("picture").unwrap();
        assert_eq!(picture.str_attr("type").unwrap(), "preview");
        assert_eq!(picture.str_attr("id").unwrap(), "7");

        let found = Node::new("iq").children([Node::new("picture")
            .attr("id", "8")
            .attr("url", "https://example/p.jpg")
            .attr("type", "image")]);
        let info = parse_picture(&found, false).unwrap().unwrap();
        assert_eq!(
            (info.id.as_str(), info.url.as_str()),
            ("8", "https://example/p.jpg")
        );
        let same = Node::new("iq").children([Node::new("picture").attr("status", "304")]);
        assert_eq!(parse_picture(&same, true).unwrap(), None);
        let none = Node::new("iq").children([Node::new("picture").attr("status", "204")]);
        assert!(parse_picture(&none, false).is_err());
        assert_eq!(parse_picture(&Node::new("iq"), true).unwrap(), None);
        assert!(parse_picture(&Node::new("iq"), false).is_err());
        let no_url = Node::new("iq").children([Node::new("picture").attr("id", "1")]);
        assert!(matches!(parse_picture(&no_url, false), Err(StanzaError::Attr(_))));
    }
}
