//! Business profiles (`w:biz`): the profile a test gave an account with [`TestServer::set_business_profile`],
//! answered to `<business_profile><profile jid/></business_profile>` queries as whatsmeow's `GetBusinessProfile`
//! reads them. An account without one answers with an empty `<business_profile/>`, as WhatsApp answers for
//! accounts that are not businesses; an unknown JID is 404.
//!
//! [`TestServer::set_business_profile`]: crate::TestServer::set_business_profile

use std::collections::BTreeMap;

use whatsapp_binary::{Jid, Node};

use crate::state::{State, server_jid};

/// The opening hours of one day, as a business sets them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BusinessDay {
    /// `mon` ... `sun`.
    pub day_of_week: String,
    /// `open_24h`, `appointment_only` or `specific_hours`.
    pub mode: String,
    /// Opening time, minutes after midnight.
    pub open_time: u32,
    /// Closing time, minutes after midnight.
    pub close_time: u32,
}

/// What a business account publishes, as the server answers it to `w:biz` queries.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BusinessInfo {
    /// The street address (left out of the answer when empty).
    pub address: String,
    /// The contact email (left out when empty).
    pub email: String,
    /// The description (left out when empty).
    pub description: String,
    /// The websites, one `<website>` each.
    pub websites: Vec<String>,
    /// The categories: id and name.
    pub categories: Vec<(String, String)>,
    /// The time zone of the hours (the `<business_hours>` element is left out when this is empty).
    pub time_zone: String,
    /// The opening hours.
    pub hours: Vec<BusinessDay>,
}

/// The business profiles of the accounts that have one, by phone number.
#[derive(Debug, Default)]
pub(crate) struct Businesses {
    profiles: BTreeMap<String, BusinessInfo>,
}

/// Gives account `number` a business profile, or (`None`) makes it an ordinary account again.
pub(crate) fn set(state: &mut State, number: &str, profile: Option<BusinessInfo>) {
    match profile {
        Some(profile) => state.businesses.profiles.insert(number.to_owned(), profile),
        None => state.businesses.profiles.remove(number),
    };
}

/// Whether this module answers the IQ.
pub(crate) fn handles(iq: &Node) -> bool {
    iq.optional_str_attr("xmlns") == Some("w:biz")
}

fn text(tag: &'static str, value: &str) -> Node {
    Node::new(tag).bytes(value.as_bytes().to_vec())
}

/// Answers a `w:biz` query: the profile of the account its `<profile jid>` names.
pub(crate) fn answer(state: &State, id: &str, iq: &Node) -> Result<Node, u16> {
    if iq.optional_str_attr("type") != Some("get") {
        return Err(400);
    }
    let query = iq.child("business_profile").ok_or(400u16)?;
    let target = query
        .child("profile")
        .ok_or(400u16)?
        .jid_attr("jid")
        .map_err(|_| 400u16)?;
    let (number, _) = crate::routing::resolve(state, &target).ok_or(404u16)?;
    let mut business = Node::new("business_profile").attr("v", "244");
    if let Some(info) = state.businesses.profiles.get(&number) {
        let mut children = Vec::new();
        for (tag, value) in [
            ("address", &info.address),
            ("email", &info.email),
            ("description", &info.description),
        ] {
            if !value.is_empty() {
                children.push(text(tag, value));
            }
        }
        children.extend(info.websites.iter().map(|site| text("website", site)));
        if !info.time_zone.is_empty() {
            let days = info.hours.iter().map(|day| {
                Node::new("business_hours_config")
                    .attr("day_of_week", day.day_of_week.clone())
                    .attr("mode", day.mode.clone())
                    .attr("open_time", day.open_time.to_string())
                    .attr("close_time", day.close_time.to_string())
            });
            children.push(
                Node::new("business_hours")
                    .attr("timezone", info.time_zone.clone())
                    .children(days.collect::<Vec<_>>()),
            );
        }
        let categories = info
            .categories
            .iter()
            .map(|(id, name)| text("category", name).attr("id", id.clone()));
        children.push(Node::new("categories").children(categories.collect::<Vec<_>>()));
        let jid = Jid::new(number, Jid::DEFAULT_USER_SERVER);
        business = business.children([Node::new("profile").attr("jid", jid).children(children)]);
    }
    Ok(Node::new("iq")
        .attr("from", server_jid())
        .attr("type", "result")
        .attr("id", id.to_owned())
        .children([business]))
}
