//! Business profiles: the address, email, opening hours, categories and websites a WhatsApp Business account
//! publishes (whatsmeow `user.go`: `GetBusinessProfile`, `types.BusinessProfile`).
//!
//! The query is `<iq xmlns="w:biz" type="get"><business_profile v="244"><profile jid/></business_profile></iq>`.
//! A business answers with a `<profile jid>` inside `<business_profile>`; an account that is not a business
//! answers with an empty `<business_profile>`, which [`parse_business_profile`] reads as `None`.

use std::collections::BTreeMap;

use whatsapp_binary::{Content, Jid, Node};

use crate::error::StanzaError;

/// The version of the business-profile schema the query asks for (whatsmeow sends `v="244"`).
pub const BUSINESS_PROFILE_VERSION: &str = "244";

/// `<iq xmlns="w:biz" type="get" to="s.whatsapp.net"><business_profile v="244"><profile jid=user/>
/// </business_profile></iq>`: asks for `user`'s business profile.
pub fn business_profile_query(user: &Jid) -> Node {
    Node::new("iq")
        .attr("xmlns", "w:biz")
        .attr("type", "get")
        .attr("to", crate::server_jid())
        .children([Node::new("business_profile")
            .attr("v", BUSINESS_PROFILE_VERSION)
            .children([Node::new("profile").attr("jid", user.to_non_ad())])])
}

/// One category a business lists itself under.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BusinessCategory {
    /// The category's id (a decimal number, as a string).
    pub id: String,
    /// The category's name, in the language of the business.
    pub name: String,
}

/// The opening hours of one day of the week.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BusinessHours {
    /// The day: `mon`, `tue`, ... `sun`.
    pub day_of_week: String,
    /// `open_24h`, `appointment_only`, or `specific_hours` (then the times below apply).
    pub mode: String,
    /// Opening time, minutes after midnight (`"0"` when the mode has no times).
    pub open_time: String,
    /// Closing time, minutes after midnight (`"0"` when the mode has no times).
    pub close_time: String,
}

/// What a business account tells about itself.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BusinessProfile {
    /// The business.
    pub jid: Jid,
    /// The street address; empty when not given.
    pub address: String,
    /// The contact email; empty when not given.
    pub email: String,
    /// The description; empty when not given.
    pub description: String,
    /// The websites, in the order given.
    pub websites: Vec<String>,
    /// The categories the business lists itself under.
    pub categories: Vec<BusinessCategory>,
    /// The time zone the opening hours are in (an IANA name such as `Europe/Berlin`); empty when not given.
    pub hours_time_zone: String,
    /// The opening hours, one entry per day listed.
    pub hours: Vec<BusinessHours>,
    /// Other profile options by tag (for example `commerce_experience`, `cart_enabled`).
    pub profile_options: BTreeMap<String, String>,
}

/// The UTF-8 text of a node: empty for a node without content; an error for bytes that are not UTF-8 or for
/// child elements where text belongs.
fn text(node: &Node, what: &'static str) -> Result<String, StanzaError> {
    match &node.content {
        Content::None => Ok(String::new()),
        Content::Str(text) => Ok(text.to_string()),
        Content::Bytes(bytes) => String::from_utf8(bytes.to_vec()).map_err(|_| StanzaError::Invalid(what)),
        Content::Nodes(_) | Content::Jid(_) => Err(StanzaError::Invalid(what)),
    }
}

fn optional_text(profile: &Node, tag: &str, what: &'static str) -> Result<String, StanzaError> {
    profile
        .child(tag)
        .map_or_else(|| Ok(String::new()), |node| text(node, what))
}

/// Reads the answer to [`business_profile_query`]: `Ok(None)` for an account that is not a business (no
/// `<profile>` in the `<business_profile>`), the profile otherwise. Missing parts are empty; an answer without
/// `<business_profile>`, a profile whose `jid` is not a JID, or text that is not UTF-8 is an error.
pub fn parse_business_profile(answer: &Node) -> Result<Option<BusinessProfile>, StanzaError> {
    let business = answer
        .child("business_profile")
        .ok_or(StanzaError::Missing("business_profile"))?;
    let Some(profile) = business.child("profile") else {
        return Ok(None);
    };
    let jid = profile.jid_attr("jid")?;
    let mut hours = Vec::new();
    let mut hours_time_zone = String::new();
    if let Some(business_hours) = profile.child("business_hours") {
        hours_time_zone = business_hours
            .optional_str_attr("timezone")
            .unwrap_or_default()
            .to_owned();
        for config in business_hours.children_by_tag("business_hours_config") {
            let attr = |key| config.optional_str_attr(key).unwrap_or_default().to_owned();
            hours.push(BusinessHours {
                day_of_week: attr("day_of_week"),
                mode: attr("mode"),
                open_time: attr("open_time"),
                close_time: attr("close_time"),
            });
        }
    }
    let mut categories = Vec::new();
    if let Some(list) = profile.child("categories") {
        for category in list.children_by_tag("category") {
            categories.push(BusinessCategory {
                id: category.str_attr("id")?.to_owned(),
                name: text(category, "business category name")?,
            });
        }
    }
    let mut profile_options = BTreeMap::new();
    if let Some(options) = profile.child("profile_options") {
        for option in options.child_nodes() {
            // Options with structure of their own (bot fields) are not plain values; they are left out.
            if let Ok(value) = text(option, "business profile option") {
                profile_options.insert(option.tag.to_string(), value);
            }
        }
    }
    Ok(Some(BusinessProfile {
        jid,
        address: optional_text(profile, "address", "business address")?,
        email: optional_text(profile, "email", "business email")?,
        description: optional_text(profile, "description", "business description")?,
        websites: profile
            .children_by_tag("website")
            .map(|site| text(site, "business website"))
            .collect::<Result<_, _>>()?,
        categories,
        hours_time_zone,
        hours,
        profile_options,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(number: &str) -> Jid {
        Jid::new(number, Jid::DEFAULT_USER_SERVER)
    }

    fn answer(profile: Option<Node>) -> Node {
        Node::new("iq").children([Node::new("business_profile").children(profile)])
    }

    fn check(profile: Node) -> Result<Option<BusinessProfile>, StanzaError> {
        parse_business_profile(&answer(Some(profile)))
    }

    #[test]
    fn query_names_the_user_without_device() {
        let device = Jid::new_ad("15551234567", 0, 3);
        let iq = business_profile_query(&device);
        assert_eq!(iq.str_attr("xmlns").unwrap(), "w:biz");
        let business = iq.child("business_profile").unwrap();
        assert_eq!(business.str_attr("v").unwrap(), "244");
        let jid = business.child("profile").unwrap().jid_attr("jid").unwrap();
        assert_eq!(jid, user("15551234567"));
    }

    #[test]
    fn full_profile() {
        let profile = Node::new("profile").attr("jid", user("1")).children([
            Node::new("address").bytes(b"1 Main St".to_vec()),
            Node::new("email").bytes(b"shop@example.com".to_vec()),
            Node::new("description").bytes("Caf\u{e9}".as_bytes().to_vec()),
            Node::new("website").bytes(b"https://a.example".to_vec()),
            Node::new("website").bytes(b"https://b.example".to_vec()),
            Node::new("business_hours")
                .attr("timezone", "Europe/Berlin")
                .children([
                    Node::new("business_hours_config")
                        .attr("day_of_week", "mon")
                        .attr("mode", "specific_hours")
                        .attr("open_time", "540")
                        .attr("close_time", "1080"),
                    Node::new("other"),
                ]),
            Node::new("categories").children([Node::new("category")
                .attr("id", "133436743388217")
                .bytes(b"Bakery".to_vec())]),
            Node::new("profile_options").children([
                Node::new("cart_enabled").bytes(b"true".to_vec()),
                Node::new("bot_fields").children([Node::new("x")]),
            ]),
        ]);
        let parsed = check(profile).unwrap().unwrap();
        assert_eq!(parsed.jid, user("1"));
        assert_eq!(parsed.address, "1 Main St");
        assert_eq!(parsed.email, "shop@example.com");
        assert_eq!(parsed.description, "Caf\u{e9}");
        assert_eq!(parsed.websites, ["https://a.example", "https://b.example"]);
        assert_eq!(parsed.hours_time_zone, "Europe/Berlin");
        assert_eq!(
            parsed.hours,
            [BusinessHours {
                day_of_week: "mon".into(),
                mode: "specific_hours".into(),
                open_time: "540".into(),
                close_time: "1080".into(),
            }]
        );
        assert_eq!(
            parsed.categories,
            [BusinessCategory {
                id: "133436743388217".into(),
                name: "Bakery".into()
            }]
        );
        assert_eq!(parsed.profile_options.len(), 1);
        assert_eq!(parsed.profile_options["cart_enabled"], "true");
    }

    #[test]
    fn sparse_profile_and_non_business() {
        let parsed = check(Node::new("profile").attr("jid", user("2")))
            .unwrap()
            .unwrap();
        assert_eq!(
            parsed,
            BusinessProfile {
                jid: user("2"),
                ..Default::default()
            }
        );
        assert_eq!(parse_business_profile(&answer(None)).unwrap(), None);
    }

    #[test]
    fn malformed_answers_are_errors() {
        assert!(matches!(
            parse_business_profile(&Node::new("iq")),
            Err(StanzaError::Missing("business_profile"))
        ));
        assert!(matches!(check(Node::new("profile")), Err(StanzaError::Attr(_))));
        assert!(check(Node::new("profile").attr("jid", "not a jid@@")).is_err());
        let bad_text = Node::new("profile")
            .attr("jid", user("1"))
            .children([Node::new("email").bytes(vec![0xff, 0xfe])]);
        assert!(matches!(check(bad_text), Err(StanzaError::Invalid(_))));
        let nested = Node::new("profile")
            .attr("jid", user("1"))
            .children([Node::new("address").children([Node::new("x")])]);
        assert!(matches!(check(nested), Err(StanzaError::Invalid(_))));
        let category_without_id = Node::new("profile")
            .attr("jid", user("1"))
            .children([Node::new("categories").children([Node::new("category")])]);
        assert!(matches!(check(category_without_id), Err(StanzaError::Attr(_))));
    }
}
