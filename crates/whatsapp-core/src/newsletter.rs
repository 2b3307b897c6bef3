//! WhatsApp channels ("newsletters", JIDs on the `newsletter` server): their metadata, following, muting, their
//! messages with reactions and view counts, and posting to them (whatsmeow `newsletter.go`, `types/newsletter.go`,
//! the newsletter branch of `send.go` and the newsletter parts of `message.go` and `notification.go`).
//!
//! Two kinds of request are involved:
//! - Metadata, the subscribed list, creating, following, unfollowing and muting are GraphQL requests in a `w:mex`
//!   IQ: `<iq xmlns="w:mex" type="get" to="s.whatsapp.net"><query query_id="…">{"variables":{…}}</query></iq>`,
//!   answered with `<result>{"data":{…}}</result>` (or `{"errors":[…]}`). Only the JSON form is read: whatsmeow
//!   also knows an `Argo` binary form (`<result format="argo">`) but its own decoding of it is disabled as
//!   broken, so an Argo answer is refused here with [`NewsletterError::Argo`].
//! - A channel's messages, live updates, reactions and views use classic stanzas: `<iq xmlns="newsletter">`,
//!   `<message type="reaction" server_id>` and `<receipt type="view">`.
//!
//! Channel messages are not end-to-end encrypted: a post is a `<message>` with a `<plaintext>` child holding the
//! encoded `Message` (instead of `<enc>`), and the server numbers every post with a `server_id`.
//!
//! Not here: media uploads for channels (they are unencrypted and go to `/newsletter/newsletter-<type>/` paths),
//! pictures, the recommended-channels directory, the admin settings mutations and Argo decoding.

use std::collections::BTreeMap;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use whatsapp_binary::{AttrError, Content, Jid, Node};
use whatsapp_proto::ProtoMessage;
use whatsapp_proto::e2e::Message;

/// GraphQL query ids of the web client, as whatsmeow's `newsletter.go` lists them (`queryFetchNewsletter`,
/// `querySubscribedNewsletters`, `mutationCreateNewsletter`, `mutationFollowNewsletter`,
/// `mutationUnfollowNewsletter`, `mutationMuteNewsletter`, `mutationUnmuteNewsletter`). whatsmeow swaps them for
/// other ids when it poses as a desktop or mobile client; this client always presents itself as a web browser.
pub mod query_id {
    /// Fetches one channel's metadata by JID or invite code (`xwa2_newsletter`).
    pub const FETCH: &str = "6563316087068696";
    /// Lists the channels this account follows (`xwa2_newsletter_subscribed`).
    pub const SUBSCRIBED: &str = "6388546374527196";
    /// Creates a channel (`xwa2_newsletter_create`).
    pub const CREATE: &str = "6234210096708695";
    /// Follows (joins) a channel.
    pub const FOLLOW: &str = "9926858900719341";
    /// Unfollows (leaves) a channel.
    pub const UNFOLLOW: &str = "6392786840836363";
    /// Mutes a channel's notifications.
    pub const MUTE: &str = "6274038279359549";
    /// Unmutes a channel's notifications.
    pub const UNMUTE: &str = "6068417879924485";
}

/// The prefix of a channel invite link; [`info_with_invite_query`] accepts the link or only the code after it.
pub const INVITE_LINK_PREFIX: &str = "https://whatsapp.com/channel/";

/// The `type` of a `<notification>` carrying a channel's live updates (reaction and view counts).
pub const LIVE_UPDATE_NOTIFICATION_TYPE: &str = "newsletter";

/// The `type` of a `<notification>` carrying GraphQL updates (`xwa2_notify_newsletter_on_join` and the like).
pub const MEX_NOTIFICATION_TYPE: &str = "mex";

/// The IQ namespace of channel message requests.
const NEWSLETTER_XMLNS: &str = "newsletter";

/// Why a channel request could not be made or its answer read.
#[derive(Debug, thiserror::Error, PartialEq, Eq, Clone)]
#[non_exhaustive]
pub enum NewsletterError {
    /// A required element is missing (the path names it).
    #[error("newsletter answer has no {0}")]
    Missing(&'static str),
    /// An attribute is missing or invalid.
    #[error("newsletter stanza: {0}")]
    Attr(#[from] AttrError),
    /// The answer is in the Argo binary form, which is not read (whatsmeow's own decoder for it is disabled).
    #[error("the answer is in the Argo binary form, which is not supported")]
    Argo,
    /// The JSON of an answer or notification does not parse, or lacks a field (serde's message).
    #[error("newsletter JSON: {0}")]
    Json(String),
    /// The server reported GraphQL errors; the first one is given.
    #[error("GraphQL error {code}: {message}")]
    GraphQl {
        /// The error code of its `extensions` (0 when absent).
        code: u32,
        /// The message.
        message: String,
    },
    /// A value has the wrong form (what is named).
    #[error("newsletter answer has an invalid {0}")]
    Invalid(&'static str),
    /// A request was refused before it was built (what is wrong is named).
    #[error("invalid newsletter request: {0}")]
    Request(&'static str),
}

/// A channel's state.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum NewsletterState {
    /// The channel is live.
    Active,
    /// The channel was suspended.
    Suspended,
    /// The channel is suspended in this account's country.
    GeoSuspended,
    /// A state this client does not know, lower-cased.
    Other(String),
}

impl NewsletterState {
    fn parse(value: &str) -> NewsletterState {
        match value.to_ascii_lowercase().as_str() {
            "active" => NewsletterState::Active,
            "suspended" => NewsletterState::Suspended,
            "geosuspended" => NewsletterState::GeoSuspended,
            other => NewsletterState::Other(other.to_owned()),
        }
    }
}

/// This account's relation to a channel.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum NewsletterRole {
    /// It follows the channel.
    Subscriber,
    /// It does not follow the channel.
    Guest,
    /// It administers the channel.
    Admin,
    /// It created the channel.
    Owner,
    /// A role this client does not know, lower-cased.
    Other(String),
}

impl NewsletterRole {
    fn parse(value: &str) -> NewsletterRole {
        match value.to_ascii_lowercase().as_str() {
            "subscriber" => NewsletterRole::Subscriber,
            "guest" => NewsletterRole::Guest,
            "admin" => NewsletterRole::Admin,
            "owner" => NewsletterRole::Owner,
            other => NewsletterRole::Other(other.to_owned()),
        }
    }
}

/// A channel's name or description, with the id and time of its last change.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NewsletterText {
    /// The text.
    pub text: String,
    /// The id of the last change.
    pub id: String,
    /// When it last changed, unix microseconds, when given.
    pub update_time: Option<i64>,
}

/// What this account's own relation to a channel is (present when it was asked for).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ViewerMetadata {
    /// Whether this account muted the channel's notifications.
    pub muted: bool,
    /// This account's role in the channel.
    pub role: NewsletterRole,
}

/// A channel's metadata (whatsmeow `NewsletterMetadata`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewsletterMetadata {
    /// The channel's JID (`…@newsletter`).
    pub jid: Jid,
    /// Whether it is live.
    pub state: NewsletterState,
    /// Its name.
    pub name: NewsletterText,
    /// Its description.
    pub description: NewsletterText,
    /// The invite code (the part after [`INVITE_LINK_PREFIX`]).
    pub invite_code: String,
    /// How many accounts follow it.
    pub subscribers: u64,
    /// Whether WhatsApp verified it.
    pub verified: bool,
    /// When it was created, unix seconds, when given.
    pub creation_time: Option<i64>,
    /// This account's relation to it; absent for a lookup by invite code.
    pub viewer: Option<ViewerMetadata>,
}

/// A message of a channel, as listed by [`parse_messages`], pushed live ([`parse_incoming`]) or updated
/// ([`parse_live_update`]).
#[derive(Clone, Debug, PartialEq)]
pub struct NewsletterMessage {
    /// The number the server gave the post in its channel.
    pub server_id: u64,
    /// The message id the poster chose.
    pub id: String,
    /// The stanza type (`text`, `media`, `reaction`…), when given.
    pub kind: Option<String>,
    /// The server timestamp, unix seconds (0 when absent).
    pub timestamp: i64,
    /// The post itself. Absent in live updates (which only carry counts), and when the `<plaintext>` does not
    /// decode as a `Message`.
    pub message: Option<Box<Message>>,
    /// How many accounts viewed it, when given.
    pub views: Option<u64>,
    /// How many accounts reacted with each reaction, by reaction text.
    pub reactions: BTreeMap<String, u64>,
    /// For an edit: when the post was edited, unix milliseconds (from `<meta msg_edit_t>`).
    pub edit_time: Option<i64>,
}

/// A change to this account's channels on another device, or made for it (`mex` notifications).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum NewsletterNotification {
    /// This account now follows a channel (`xwa2_notify_newsletter_on_join`).
    Join(Box<NewsletterMetadata>),
    /// This account left a channel (`xwa2_notify_newsletter_on_leave`).
    Leave {
        /// The channel.
        jid: Jid,
        /// The role it had.
        role: NewsletterRole,
    },
    /// This account muted or unmuted a channel (`xwa2_notify_newsletter_on_mute_change`).
    MuteChange {
        /// The channel.
        jid: Jid,
        /// Whether it is muted now.
        muted: bool,
    },
}

/// A channel's live update (`<notification type="newsletter"><live_updates>`): new counts of its messages.
#[derive(Clone, Debug, PartialEq)]
pub struct LiveUpdate {
    /// The channel.
    pub jid: Jid,
    /// When, unix seconds (0 when absent).
    pub timestamp: i64,
    /// The messages whose counts changed.
    pub messages: Vec<NewsletterMessage>,
}

// ---------------------------------------------------------------------------------------------------------------
// GraphQL (`w:mex`) requests.

#[derive(Serialize)]
struct Request<T> {
    variables: T,
}

/// `<iq xmlns="w:mex" type="get" to="s.whatsapp.net"><query query_id>{"variables":…}</query></iq>`.
fn mex_iq<T: Serialize>(query_id: &'static str, variables: T) -> Node {
    // Serialising plain structs of strings and booleans into a `Vec` cannot fail; an empty body would be refused
    // by the server rather than panic here.
    let body = serde_json::to_vec(&Request { variables }).unwrap_or_default();
    Node::new("iq")
        .attr("xmlns", "w:mex")
        .attr("type", "get")
        .attr("to", crate::server_jid())
        .children([Node::new("query").attr("query_id", query_id).bytes(body)])
}

#[derive(Serialize)]
struct FetchInput<'a> {
    key: &'a str,
    #[serde(rename = "type")]
    kind: &'static str,
}

#[derive(Serialize)]
struct FetchVariables<'a> {
    fetch_creation_time: bool,
    fetch_full_image: bool,
    fetch_viewer_metadata: bool,
    input: FetchInput<'a>,
}

fn fetch(key: &str, kind: &'static str, viewer: bool) -> Node {
    mex_iq(
        query_id::FETCH,
        FetchVariables {
            fetch_creation_time: true,
            fetch_full_image: true,
            fetch_viewer_metadata: viewer,
            input: FetchInput { key, kind },
        },
    )
}

/// The metadata of channel `jid`, with this account's viewer metadata. Read the answer with [`parse_info`].
pub fn info_query(jid: &Jid) -> Node {
    fetch(&jid.to_string(), "JID", true)
}

/// The metadata of the channel an invite link (or only its code) names, without viewer metadata. Read the
/// answer with [`parse_info`].
pub fn info_with_invite_query(invite: &str) -> Node {
    let code = invite.strip_prefix(INVITE_LINK_PREFIX).unwrap_or(invite);
    fetch(code, "INVITE", false)
}

#[derive(Serialize)]
struct NoVariables {}

/// The channels this account follows. Read the answer with [`parse_subscribed`].
pub fn subscribed_query() -> Node {
    mex_iq(query_id::SUBSCRIBED, NoVariables {})
}

#[derive(Serialize)]
struct CreateInput<'a> {
    name: &'a str,
    #[serde(skip_serializing_if = "str::is_empty")]
    description: &'a str,
}

#[derive(Serialize)]
struct CreateVariables<'a> {
    newsletter_input: CreateInput<'a>,
}

/// Creates a channel named `name` (an empty `description` is left out). Read the answer with [`parse_created`].
pub fn create_query(name: &str, description: &str) -> Result<Node, NewsletterError> {
    if name.trim().is_empty() {
        return Err(NewsletterError::Request("a channel needs a name"));
    }
    Ok(mex_iq(
        query_id::CREATE,
        CreateVariables {
            newsletter_input: CreateInput { name, description },
        },
    ))
}

#[derive(Serialize)]
struct IdVariables {
    newsletter_id: String,
}

fn by_id(query_id: &'static str, jid: &Jid) -> Node {
    mex_iq(
        query_id,
        IdVariables {
            newsletter_id: jid.to_string(),
        },
    )
}

/// Follows channel `jid`. Check the answer with [`parse_mex_ok`].
pub fn follow_query(jid: &Jid) -> Node {
    by_id(query_id::FOLLOW, jid)
}

/// Unfollows channel `jid`. Check the answer with [`parse_mex_ok`].
pub fn unfollow_query(jid: &Jid) -> Node {
    by_id(query_id::UNFOLLOW, jid)
}

/// Mutes (or unmutes) channel `jid`. Check the answer with [`parse_mex_ok`].
pub fn mute_query(jid: &Jid, mute: bool) -> Node {
    by_id(if mute { query_id::MUTE } else { query_id::UNMUTE }, jid)
}

// ---------------------------------------------------------------------------------------------------------------
// GraphQL answers.

#[derive(Deserialize)]
struct GraphQlResponse<T> {
    data: Option<T>,
    #[serde(default)]
    errors: Vec<GraphQlError>,
}

#[derive(Deserialize)]
struct GraphQlError {
    #[serde(default)]
    message: String,
    #[serde(default)]
    extensions: Option<GraphQlExtensions>,
}

#[derive(Deserialize)]
struct GraphQlExtensions {
    #[serde(default)]
    error_code: Option<u32>,
}

fn json_error(error: serde_json::Error) -> NewsletterError {
    NewsletterError::Json(error.to_string())
}

/// The `data` of a `w:mex` answer: `<result>` must be there and hold JSON; GraphQL errors are errors.
fn mex_data<T: DeserializeOwned>(answer: &Node) -> Result<T, NewsletterError> {
    let result = answer.child("result").ok_or(NewsletterError::Missing("result"))?;
    if result.optional_str_attr("format") == Some("argo") {
        return Err(NewsletterError::Argo);
    }
    let body = text_bytes(result).ok_or(NewsletterError::Missing("result content"))?;
    let response: GraphQlResponse<T> = serde_json::from_slice(body).map_err(json_error)?;
    if let Some(first) = response.errors.into_iter().next() {
        return Err(NewsletterError::GraphQl {
            code: first
                .extensions
                .and_then(|extensions| extensions.error_code)
                .unwrap_or(0),
            message: first.message,
        });
    }
    response.data.ok_or(NewsletterError::Missing("result data"))
}

fn text_bytes(node: &Node) -> Option<&[u8]> {
    match &node.content {
        Content::Bytes(bytes) => Some(bytes.as_ref()),
        Content::Str(text) => Some(text.as_bytes()),
        _ => None,
    }
}

/// A number the server may send as a JSON string (`"12"`) or as a number.
#[derive(Deserialize)]
#[serde(untagged)]
enum Number {
    Int(i64),
    Text(String),
}

impl Number {
    fn value(&self, what: &'static str) -> Result<i64, NewsletterError> {
        match self {
            Number::Int(value) => Ok(*value),
            Number::Text(text) => text.trim().parse().map_err(|_| NewsletterError::Invalid(what)),
        }
    }
}

#[derive(Deserialize)]
struct RawMetadata {
    id: String,
    #[serde(default)]
    state: Option<RawState>,
    #[serde(default)]
    thread_metadata: Option<RawThread>,
    #[serde(default)]
    viewer_metadata: Option<RawViewer>,
}

#[derive(Deserialize)]
struct RawState {
    #[serde(rename = "type")]
    kind: String,
}

#[derive(Deserialize, Default)]
struct RawThread {
    #[serde(default)]
    creation_time: Option<Number>,
    #[serde(default)]
    invite: Option<String>,
    #[serde(default)]
    name: Option<RawText>,
    #[serde(default)]
    description: Option<RawText>,
    #[serde(default)]
    subscribers_count: Option<Number>,
    #[serde(default)]
    verification: Option<String>,
}

#[derive(Deserialize)]
struct RawText {
    #[serde(default)]
    text: String,
    #[serde(default)]
    id: String,
    #[serde(default)]
    update_time: Option<Number>,
}

#[derive(Deserialize)]
struct RawViewer {
    #[serde(default)]
    mute: Option<String>,
    #[serde(default)]
    role: Option<String>,
}

fn newsletter_jid(id: &str) -> Result<Jid, NewsletterError> {
    let jid: Jid = id.parse().map_err(|_| NewsletterError::Invalid("channel id"))?;
    if !jid.is_newsletter() {
        return Err(NewsletterError::Invalid("channel id (not a newsletter JID)"));
    }
    Ok(jid)
}

fn is_muted(mute: Option<&str>) -> bool {
    mute.is_some_and(|mute| mute.eq_ignore_ascii_case("on"))
}

impl RawText {
    fn convert(self) -> Result<NewsletterText, NewsletterError> {
        Ok(NewsletterText {
            text: self.text,
            id: self.id,
            update_time: self
                .update_time
                .map(|time| time.value("update time"))
                .transpose()?,
        })
    }
}

impl RawMetadata {
    fn convert(self) -> Result<NewsletterMetadata, NewsletterError> {
        let thread = self.thread_metadata.unwrap_or_default();
        let text = |raw: Option<RawText>| {
            raw.map(RawText::convert)
                .transpose()
                .map(Option::unwrap_or_default)
        };
        let subscribers = thread
            .subscribers_count
            .map(|count| count.value("subscriber count"))
            .transpose()?
            .unwrap_or(0);
        Ok(NewsletterMetadata {
            jid: newsletter_jid(&self.id)?,
            state: self.state.map_or(NewsletterState::Active, |state| {
                NewsletterState::parse(&state.kind)
            }),
            name: text(thread.name)?,
            description: text(thread.description)?,
            invite_code: thread.invite.unwrap_or_default(),
            subscribers: u64::try_from(subscribers)
                .map_err(|_| NewsletterError::Invalid("subscriber count"))?,
            verified: thread
                .verification
                .is_some_and(|state| state.eq_ignore_ascii_case("verified")),
            creation_time: thread
                .creation_time
                .map(|time| time.value("creation time"))
                .transpose()?,
            viewer: self.viewer_metadata.map(|viewer| ViewerMetadata {
                muted: is_muted(viewer.mute.as_deref()),
                role: NewsletterRole::parse(viewer.role.as_deref().unwrap_or("guest")),
            }),
        })
    }
}

#[derive(Deserialize)]
struct InfoData {
    xwa2_newsletter: Option<RawMetadata>,
}

/// Reads the answer to [`info_query`] or [`info_with_invite_query`].
pub fn parse_info(answer: &Node) -> Result<NewsletterMetadata, NewsletterError> {
    mex_data::<InfoData>(answer)?
        .xwa2_newsletter
        .ok_or(NewsletterError::Missing("xwa2_newsletter"))?
        .convert()
}

#[derive(Deserialize)]
struct SubscribedData {
    #[serde(default)]
    xwa2_newsletter_subscribed: Vec<RawMetadata>,
}

/// Reads the answer to [`subscribed_query`].
pub fn parse_subscribed(answer: &Node) -> Result<Vec<NewsletterMetadata>, NewsletterError> {
    mex_data::<SubscribedData>(answer)?
        .xwa2_newsletter_subscribed
        .into_iter()
        .map(RawMetadata::convert)
        .collect()
}

#[derive(Deserialize)]
struct CreateData {
    xwa2_newsletter_create: Option<RawMetadata>,
}

/// Reads the answer to [`create_query`]: the new channel.
pub fn parse_created(answer: &Node) -> Result<NewsletterMetadata, NewsletterError> {
    mex_data::<CreateData>(answer)?
        .xwa2_newsletter_create
        .ok_or(NewsletterError::Missing("xwa2_newsletter_create"))?
        .convert()
}

/// Checks the answer to [`follow_query`], [`unfollow_query`] or [`mute_query`]: a JSON `<result>` without
/// GraphQL errors (whatsmeow reads nothing else from these answers either).
pub fn parse_mex_ok(answer: &Node) -> Result<(), NewsletterError> {
    mex_data::<serde_json::Value>(answer).map(drop)
}

// ---------------------------------------------------------------------------------------------------------------
// Messages, reactions, views and live updates.

/// `<iq xmlns="newsletter" type="get" to="s.whatsapp.net"><messages type="jid" jid count [before]/></iq>`: up to
/// `count` messages of channel `jid`, newest first, older than server id `before` when given. Read the answer
/// with [`parse_messages`].
pub fn messages_query(jid: &Jid, count: u32, before: Option<u64>) -> Node {
    let mut messages = Node::new("messages")
        .attr("type", "jid")
        .attr("jid", jid.clone())
        .attr("count", count.to_string());
    if let Some(before) = before {
        messages = messages.attr("before", before.to_string());
    }
    Node::new("iq")
        .attr("xmlns", NEWSLETTER_XMLNS)
        .attr("type", "get")
        .attr("to", crate::server_jid())
        .children([messages])
}

/// Reads one `<message server_id id t type>` of a channel: its `<plaintext>`, `<views_count count>`,
/// `<reactions><reaction code count/></reactions>` and `<meta msg_edit_t>` children. A plaintext that does not
/// decode leaves [`NewsletterMessage::message`] empty; a missing or malformed attribute is an error.
pub fn parse_message(node: &Node) -> Result<NewsletterMessage, NewsletterError> {
    let mut message = NewsletterMessage {
        server_id: node.u64_attr("server_id")?,
        id: node.str_attr("id")?.to_owned(),
        kind: node.optional_str_attr("type").map(str::to_owned),
        timestamp: node.optional_i64_attr("t")?.unwrap_or(0),
        message: None,
        views: None,
        reactions: BTreeMap::new(),
        edit_time: None,
    };
    for child in node.child_nodes() {
        match child.tag.as_ref() {
            "plaintext" => {
                message.message = text_bytes(child)
                    .and_then(|bytes| Message::decode(bytes).ok())
                    .map(Box::new);
            }
            "views_count" => message.views = Some(child.u64_attr("count")?),
            "reactions" => {
                for reaction in child.children_by_tag("reaction") {
                    let code = reaction.str_attr("code")?.to_owned();
                    message.reactions.insert(code, reaction.u64_attr("count")?);
                }
            }
            "meta" => message.edit_time = child.optional_i64_attr("msg_edit_t")?,
            _ => {}
        }
    }
    Ok(message)
}

fn parse_message_list(list: &Node) -> Result<Vec<NewsletterMessage>, NewsletterError> {
    list.children_by_tag("message").map(parse_message).collect()
}

/// Reads the answer to [`messages_query`].
pub fn parse_messages(answer: &Node) -> Result<Vec<NewsletterMessage>, NewsletterError> {
    parse_message_list(
        answer
            .child("messages")
            .ok_or(NewsletterError::Missing("messages"))?,
    )
}

/// Whether a `<message>` stanza comes from a channel (and is read with [`parse_incoming`], not decrypted).
pub fn is_newsletter_message(stanza: &Node) -> bool {
    stanza.tag == "message"
        && stanza
            .optional_jid_attr("from")
            .ok()
            .flatten()
            .is_some_and(|from| from.is_newsletter())
}

/// Reads a post pushed by the server to a follower: `<message from="…@newsletter" id server_id t
/// type><plaintext>…</plaintext></message>`. Returns the channel and the message, which must carry a post that
/// decodes.
pub fn parse_incoming(stanza: &Node) -> Result<(Jid, NewsletterMessage), NewsletterError> {
    let from = stanza.jid_attr("from")?;
    if !from.is_newsletter() {
        return Err(NewsletterError::Invalid("sender (not a newsletter JID)"));
    }
    let plaintext = stanza
        .child("plaintext")
        .ok_or(NewsletterError::Missing("plaintext"))?;
    let message = parse_message(stanza)?;
    if message.message.is_none() {
        let what = if text_bytes(plaintext).is_some() {
            "plaintext (not a Message)"
        } else {
            "plaintext (no bytes)"
        };
        return Err(NewsletterError::Invalid(what));
    }
    Ok((from, message))
}

/// `<iq xmlns="newsletter" type="set" to=jid><live_updates/></iq>`: asks for the channel's live updates (reaction
/// and view counts) for a while. Read the answer with [`parse_live_updates_duration`].
pub fn live_updates_query(jid: &Jid) -> Node {
    Node::new("iq")
        .attr("xmlns", NEWSLETTER_XMLNS)
        .attr("type", "set")
        .attr("to", jid.clone())
        .children([Node::new("live_updates")])
}

/// Reads the answer to [`live_updates_query`]: for how many seconds the updates come.
pub fn parse_live_updates_duration(answer: &Node) -> Result<u64, NewsletterError> {
    Ok(answer
        .child("live_updates")
        .ok_or(NewsletterError::Missing("live_updates"))?
        .u64_attr("duration")?)
}

/// Reads `<notification type="newsletter" from t><live_updates><message …/>…</live_updates></notification>`.
pub fn parse_live_update(notification: &Node) -> Result<LiveUpdate, NewsletterError> {
    let jid = notification.jid_attr("from")?;
    if !jid.is_newsletter() {
        return Err(NewsletterError::Invalid("sender (not a newsletter JID)"));
    }
    let updates = notification
        .child("live_updates")
        .ok_or(NewsletterError::Missing("live_updates"))?;
    Ok(LiveUpdate {
        jid,
        timestamp: notification.optional_i64_attr("t")?.unwrap_or(0),
        messages: parse_message_list(updates)?,
    })
}

#[derive(Deserialize)]
struct MexNotification {
    data: MexNotificationData,
}

#[derive(Deserialize)]
struct MexNotificationData {
    #[serde(default)]
    xwa2_notify_newsletter_on_join: Option<RawMetadata>,
    #[serde(default)]
    xwa2_notify_newsletter_on_leave: Option<RawLeave>,
    #[serde(default)]
    xwa2_notify_newsletter_on_mute_change: Option<RawMuteChange>,
}

#[derive(Deserialize)]
struct RawLeave {
    id: String,
    #[serde(default)]
    role: Option<String>,
}

#[derive(Deserialize)]
struct RawMuteChange {
    id: String,
    #[serde(default)]
    mute: Option<String>,
}

/// Reads `<notification type="mex"><update op_name>{"data":{…}}</update>…</notification>`: the channel changes
/// among its updates. Updates of other kinds are skipped; an update whose JSON does not parse is an error.
pub fn parse_mex_notification(notification: &Node) -> Result<Vec<NewsletterNotification>, NewsletterError> {
    let mut changes = Vec::new();
    for update in notification.children_by_tag("update") {
        let body = text_bytes(update).ok_or(NewsletterError::Missing("update content"))?;
        let data = serde_json::from_slice::<MexNotification>(body)
            .map_err(json_error)?
            .data;
        if let Some(join) = data.xwa2_notify_newsletter_on_join {
            changes.push(NewsletterNotification::Join(Box::new(join.convert()?)));
        } else if let Some(leave) = data.xwa2_notify_newsletter_on_leave {
            changes.push(NewsletterNotification::Leave {
                jid: newsletter_jid(&leave.id)?,
                role: NewsletterRole::parse(leave.role.as_deref().unwrap_or("guest")),
            });
        } else if let Some(change) = data.xwa2_notify_newsletter_on_mute_change {
            changes.push(NewsletterNotification::MuteChange {
                jid: newsletter_jid(&change.id)?,
                muted: is_muted(change.mute.as_deref()),
            });
        }
    }
    Ok(changes)
}

/// `<message to=jid id server_id type="reaction"><reaction code/></message>`: reacts to post `server_id` of a
/// channel; an empty `reaction` removes this account's reaction (`edit="7"`, no `code`).
pub fn reaction_stanza(jid: &Jid, server_id: u64, reaction: &str, id: &str) -> Node {
    let mut message = Node::new("message")
        .attr("to", jid.clone())
        .attr("id", id.to_owned())
        .attr("server_id", server_id.to_string())
        .attr("type", "reaction");
    let mut child = Node::new("reaction");
    if reaction.is_empty() {
        message = message.attr(
            "edit",
            crate::compose::EditKind::SenderRevoke.as_attr().to_owned(),
        );
    } else {
        child = child.attr("code", reaction.to_owned());
    }
    message.children([child])
}

/// `<receipt to=jid type="view" id><list><item server_id/>…</list></receipt>`: marks posts of a channel as
/// viewed, which counts toward their view counts.
pub fn view_receipt(jid: &Jid, server_ids: &[u64], id: &str) -> Result<Node, NewsletterError> {
    if server_ids.is_empty() {
        return Err(NewsletterError::Request("no messages to mark as viewed"));
    }
    let items = server_ids
        .iter()
        .map(|server_id| Node::new("item").attr("server_id", server_id.to_string()));
    Ok(Node::new("receipt")
        .attr("to", jid.clone())
        .attr("type", "view")
        .attr("id", id.to_owned())
        .children([Node::new("list").children(items.collect::<Vec<_>>())]))
}

/// The `mediatype` of a post's `<plaintext>` (whatsmeow `getMediaTypeFromMessage`), when it has one.
pub fn media_type(message: &Message) -> Option<&'static str> {
    if message.image_message.is_some() {
        Some("image")
    } else if message.sticker_message.is_some() {
        Some("sticker")
    } else if message.document_message.is_some() {
        Some("document")
    } else if let Some(audio) = &message.audio_message {
        Some(if audio.ptt == Some(true) { "ptt" } else { "audio" })
    } else if let Some(video) = &message.video_message {
        Some(if video.gif_playback == Some(true) {
            "gif"
        } else {
            "video"
        })
    } else if message.contact_message.is_some() {
        Some("vcard")
    } else if message.contacts_array_message.is_some() {
        Some("contact_array")
    } else if message
        .extended_text_message
        .as_ref()
        .is_some_and(|text| text.title.is_some())
    {
        Some("url")
    } else {
        None
    }
}

/// `<message to=jid id type><plaintext [mediatype]>Message</plaintext></message>`: a post to a channel. Posts are
/// not encrypted; the server answers with an `<ack>` carrying the post's `server_id`
/// ([`parse_post_ack`]).
pub fn post_stanza(jid: &Jid, id: &str, message: &Message) -> Node {
    let mut plaintext = Node::new("plaintext");
    if let Some(media) = media_type(message) {
        plaintext = plaintext.attr("mediatype", media);
    }
    Node::new("message")
        .attr("to", jid.clone())
        .attr("id", id.to_owned())
        .attr("type", crate::message::stanza_type(message))
        .children([plaintext.bytes(message.encode_to_vec())])
}

/// What the server's `<ack>` of a post says: the post's server id and timestamp.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PostAck {
    /// The number of the post in its channel.
    pub server_id: u64,
    /// The server's timestamp, unix seconds, when given.
    pub timestamp: Option<i64>,
}

/// Reads the `<ack server_id t>` answering [`post_stanza`].
pub fn parse_post_ack(ack: &Node) -> Result<PostAck, NewsletterError> {
    Ok(PostAck {
        server_id: ack.u64_attr("server_id")?,
        timestamp: ack.optional_i64_attr("t")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn channel() -> Jid {
        Jid::new("120363000000000001", Jid::NEWSLETTER_SERVER)
    }

    fn answer(json: &str) -> Node {
        Node::new("iq").children([Node::new("result").bytes(json.as_bytes().to_vec())])
    }

    fn variables(iq: &Node) -> (String, serde_json::Value) {
        assert_eq!(iq.str_attr("xmlns").unwrap(), "w:mex");
        assert_eq!(iq.jid_attr("to").unwrap(), crate::server_jid());
        let query = iq.child("query").unwrap();
        let body: serde_json::Value = serde_json::from_slice(query.content_bytes().unwrap()).unwrap();
        (
            query.str_attr("query_id").unwrap().to_owned(),
            body["variables"].clone(),
        )
    }

    const METADATA: &str = r#"{"id":"120363000000000001@newsletter","state":{"type":"ACTIVE"},
        "thread_metadata":{"creation_time":"1700000000","invite":"AbCd","name":{"text":"News","id":"1",
        "update_time":"1700000000000000"},"description":{"text":"Daily","id":"2"},"subscribers_count":"12",
        "verification":"VERIFIED"},"viewer_metadata":{"mute":"ON","role":"OWNER"}}"#;

    #[test]
    fn requests_carry_the_web_query_ids_and_variables() {
        let (id, vars) = variables(&info_query(&channel()));
        assert_eq!(id, query_id::FETCH);
        assert_eq!(vars["input"]["key"], "120363000000000001@newsletter");
        assert_eq!(vars["input"]["type"], "JID");
        assert_eq!(vars["fetch_viewer_metadata"], true);

        let (_, vars) = variables(&info_with_invite_query("https://whatsapp.com/channel/AbCd"));
        assert_eq!(
            (vars["input"]["key"].as_str(), vars["input"]["type"].as_str()),
            (Some("AbCd"), Some("INVITE"))
        );
        assert_eq!(vars["fetch_viewer_metadata"], false);

        let (id, vars) = variables(&subscribed_query());
        assert_eq!((id.as_str(), vars), (query_id::SUBSCRIBED, serde_json::json!({})));

        let (id, vars) = variables(&create_query("News", "").unwrap());
        assert_eq!(id, query_id::CREATE);
        assert_eq!(vars, serde_json::json!({"newsletter_input": {"name": "News"}}));
        assert!(create_query("  ", "x").is_err());

        for (iq, expected) in [
            (follow_query(&channel()), query_id::FOLLOW),
            (unfollow_query(&channel()), query_id::UNFOLLOW),
            (mute_query(&channel(), true), query_id::MUTE),
            (mute_query(&channel(), false), query_id::UNMUTE),
        ] {
            let (id, vars) = variables(&iq);
            assert_eq!(id, expected);
            assert_eq!(vars["newsletter_id"], "120363000000000001@newsletter");
        }
    }

    #[test]
    fn metadata_is_read() {
        let info = parse_info(&answer(&format!(
            r#"{{"data":{{"xwa2_newsletter":{METADATA}}}}}"#
        )))
        .unwrap();
        assert_eq!(info.jid, channel());
        assert_eq!(info.state, NewsletterState::Active);
        assert_eq!(info.name.text, "News");
        assert_eq!(info.name.update_time, Some(1_700_000_000_000_000));
        assert_eq!(info.description.text, "Daily");
        assert_eq!(info.invite_code, "AbCd");
        assert_eq!(info.subscribers, 12);
        assert!(info.verified);
        assert_eq!(info.creation_time, Some(1_700_000_000));
        assert_eq!(
            info.viewer,
            Some(ViewerMetadata {
                muted: true,
                role: NewsletterRole::Owner
            })
        );

        let list = parse_subscribed(&answer(&format!(
            r#"{{"data":{{"xwa2_newsletter_subscribed":[{METADATA},{{"id":"9@newsletter"}}]}}}}"#
        )))
        .unwrap();
        assert_eq!(list.len(), 2);
        assert_eq!((list[1].subscribers, list[1].viewer.as_ref()), (0, None));
        let created = parse_created(&answer(&format!(
            r#"{{"data":{{"xwa2_newsletter_create":{METADATA}}}}}"#
        )))
        .unwrap();
        assert_eq!(created.name.text, "News");
        assert_eq!(parse_mex_ok(&answer(r#"{"data":{"anything":1}}"#)), Ok(()));
    }

    #[test]
    fn bad_answers_are_errors() {
        assert_eq!(
            parse_info(&Node::new("iq")),
            Err(NewsletterError::Missing("result"))
        );
        assert_eq!(
            parse_mex_ok(&Node::new("iq")),
            Err(NewsletterError::Missing("result"))
        );
        let empty = Node::new("iq").children([Node::new("result")]);
        assert_eq!(
            parse_info(&empty),
            Err(NewsletterError::Missing("result content"))
        );
        assert!(matches!(
            parse_info(&answer("{not json")),
            Err(NewsletterError::Json(_))
        ));
        assert!(matches!(
            parse_subscribed(&answer("[1,2]")),
            Err(NewsletterError::Json(_))
        ));
        assert!(matches!(
            parse_info(&answer(r#"{"data":{"xwa2_newsletter":{"name":1}}}"#)),
            Err(NewsletterError::Json(_))
        ));
        assert_eq!(
            parse_info(&answer(r#"{"data":{"xwa2_newsletter":null}}"#)),
            Err(NewsletterError::Missing("xwa2_newsletter"))
        );
        assert_eq!(
            parse_mex_ok(&answer(r#"{}"#)),
            Err(NewsletterError::Missing("result data"))
        );
        assert_eq!(
            parse_info(&answer(
                r#"{"data":null,"errors":[{"message":"not found","extensions":{"error_code":404}}]}"#
            )),
            Err(NewsletterError::GraphQl {
                code: 404,
                message: "not found".into()
            })
        );
        assert_eq!(
            parse_info(&answer(
                r#"{"data":{"xwa2_newsletter":{"id":"1@s.whatsapp.net"}}}"#
            )),
            Err(NewsletterError::Invalid("channel id (not a newsletter JID)"))
        );
        assert_eq!(
            parse_info(&answer(
                r#"{"data":{"xwa2_newsletter":{"id":"1@newsletter","thread_metadata":{"subscribers_count":"many"}}}}"#
            )),
            Err(NewsletterError::Invalid("subscriber count"))
        );
        assert_eq!(
            parse_info(&answer(
                r#"{"data":{"xwa2_newsletter":{"id":"1@newsletter","thread_metadata":{"subscribers_count":-1}}}}"#
            )),
            Err(NewsletterError::Invalid("subscriber count"))
        );
        let argo = Node::new("iq").children([Node::new("result").attr("format", "argo").bytes(vec![1, 2])]);
        assert_eq!(parse_info(&argo), Err(NewsletterError::Argo));
    }

    fn post(text: &str) -> Message {
        Message {
            conversation: Some(text.into()),
            ..Default::default()
        }
    }

    #[test]
    fn messages_and_their_counts() {
        let iq = messages_query(&channel(), 20, Some(100));
        assert_eq!(iq.str_attr("xmlns").unwrap(), "newsletter");
        let query = iq.child("messages").unwrap();
        assert_eq!(query.jid_attr("jid").unwrap(), channel());
        assert_eq!(
            (
                query.u64_attr("count").unwrap(),
                query.u64_attr("before").unwrap()
            ),
            (20, 100)
        );
        assert!(
            messages_query(&channel(), 5, None)
                .child("messages")
                .unwrap()
                .attr_value("before")
                .is_none()
        );

        let listed = Node::new("iq").children([Node::new("messages").children([
            Node::new("message")
                .attr("server_id", "101")
                .attr("id", "M1")
                .attr("t", "1700000000")
                .attr("type", "text")
                .children([
                    Node::new("plaintext").bytes(post("hello").encode_to_vec()),
                    Node::new("views_count").attr("count", "7"),
                    Node::new("reactions").children([
                        Node::new("reaction").attr("code", "👍").attr("count", "3"),
                        Node::new("reaction").attr("code", "❤").attr("count", "1"),
                    ]),
                ]),
            Node::new("message")
                .attr("server_id", "102")
                .attr("id", "M2")
                .children([Node::new("plaintext").bytes(vec![0xff])]),
        ])]);
        let messages = parse_messages(&listed).unwrap();
        assert_eq!(messages.len(), 2);
        assert_eq!(messages[0].server_id, 101);
        assert_eq!(messages[0].message.as_deref(), Some(&post("hello")));
        assert_eq!(messages[0].views, Some(7));
        assert_eq!(messages[0].reactions.get("👍"), Some(&3));
        assert_eq!(messages[0].timestamp, 1_700_000_000);
        assert_eq!((messages[1].message.as_ref(), messages[1].views), (None, None));

        assert_eq!(
            parse_messages(&Node::new("iq")),
            Err(NewsletterError::Missing("messages"))
        );
        let no_id = Node::new("iq")
            .children([Node::new("messages").children([Node::new("message").attr("id", "x")])]);
        assert!(matches!(parse_messages(&no_id), Err(NewsletterError::Attr(_))));
        let bad_count = Node::new("message")
            .attr("server_id", "1")
            .attr("id", "x")
            .children([Node::new("reactions")
                .children([Node::new("reaction").attr("code", "👍").attr("count", "lots")])]);
        assert!(matches!(parse_message(&bad_count), Err(NewsletterError::Attr(_))));
    }

    #[test]
    fn incoming_posts() {
        let stanza = Node::new("message")
            .attr("from", channel())
            .attr("id", "M1")
            .attr("server_id", "5")
            .attr("t", "1700000001")
            .attr("type", "text")
            .children([Node::new("plaintext").bytes(post("hi").encode_to_vec())]);
        assert!(is_newsletter_message(&stanza));
        let (jid, message) = parse_incoming(&stanza).unwrap();
        assert_eq!((jid, message.server_id), (channel(), 5));
        assert_eq!(message.message.as_deref(), Some(&post("hi")));

        let from_user = stanza
            .clone()
            .attr("from", Jid::new("1", Jid::DEFAULT_USER_SERVER));
        assert!(!is_newsletter_message(&from_user));
        assert!(parse_incoming(&from_user).is_err());
        let without = Node::new("message")
            .attr("from", channel())
            .attr("id", "M")
            .attr("server_id", "1");
        assert_eq!(
            parse_incoming(&without),
            Err(NewsletterError::Missing("plaintext"))
        );
        let garbage = without
            .clone()
            .children([Node::new("plaintext").bytes(vec![0xff, 0xff])]);
        assert_eq!(
            parse_incoming(&garbage),
            Err(NewsletterError::Invalid("plaintext (not a Message)"))
        );
        let no_server_id = Node::new("message")
            .attr("from", channel())
            .attr("id", "M")
            .children([Node::new("plaintext").bytes(post("x").encode_to_vec())]);
        assert!(matches!(
            parse_incoming(&no_server_id),
            Err(NewsletterError::Attr(_))
        ));
    }

    #[test]
    fn live_updates_and_notifications() {
        let iq = live_updates_query(&channel());
        assert_eq!(
            (iq.jid_attr("to").unwrap(), iq.str_attr("type").unwrap()),
            (channel(), "set")
        );
        let duration = Node::new("iq").children([Node::new("live_updates").attr("duration", "300")]);
        assert_eq!(parse_live_updates_duration(&duration), Ok(300));
        assert!(parse_live_updates_duration(&Node::new("iq")).is_err());

        let notification = Node::new("notification")
            .attr("from", channel())
            .attr("type", LIVE_UPDATE_NOTIFICATION_TYPE)
            .attr("t", "9")
            .children([Node::new("live_updates").children([Node::new("message")
                .attr("server_id", "5")
                .attr("id", "M1")
                .children([Node::new("reactions")
                    .children([Node::new("reaction").attr("code", "👍").attr("count", "2")])])])]);
        let update = parse_live_update(&notification).unwrap();
        assert_eq!((update.jid, update.timestamp), (channel(), 9));
        assert_eq!(update.messages[0].reactions.get("👍"), Some(&2));
        assert_eq!(
            parse_live_update(&Node::new("notification").attr("from", channel())),
            Err(NewsletterError::Missing("live_updates"))
        );

        let mex = |json: &str| {
            Node::new("notification")
                .attr("type", MEX_NOTIFICATION_TYPE)
                .children([Node::new("update")
                    .attr("op_name", "x")
                    .bytes(json.as_bytes().to_vec())])
        };
        let join = parse_mex_notification(&mex(&format!(
            r#"{{"data":{{"xwa2_notify_newsletter_on_join":{METADATA}}}}}"#
        )))
        .unwrap();
        assert!(matches!(&join[..], [NewsletterNotification::Join(info)] if info.name.text == "News"));
        assert_eq!(
            parse_mex_notification(&mex(
                r#"{"data":{"xwa2_notify_newsletter_on_leave":{"id":"120363000000000001@newsletter","role":"SUBSCRIBER"}}}"#
            ))
            .unwrap(),
            vec![NewsletterNotification::Leave {
                jid: channel(),
                role: NewsletterRole::Subscriber
            }]
        );
        assert_eq!(
            parse_mex_notification(&mex(
                r#"{"data":{"xwa2_notify_newsletter_on_mute_change":{"id":"120363000000000001@newsletter","mute":"ON"}}}"#
            ))
            .unwrap(),
            vec![NewsletterNotification::MuteChange {
                jid: channel(),
                muted: true
            }]
        );
        assert_eq!(
            parse_mex_notification(&mex(r#"{"data":{"other":{}}}"#)).unwrap(),
            vec![]
        );
        assert!(matches!(
            parse_mex_notification(&mex("{")),
            Err(NewsletterError::Json(_))
        ));
        assert!(matches!(
            parse_mex_notification(&mex(
                r#"{"data":{"xwa2_notify_newsletter_on_leave":{"id":"x@g.us"}}}"#
            )),
            Err(NewsletterError::Invalid(_))
        ));
        let bodiless = Node::new("notification").children([Node::new("update")]);
        assert_eq!(
            parse_mex_notification(&bodiless),
            Err(NewsletterError::Missing("update content"))
        );
    }

    #[test]
    fn outgoing_stanzas() {
        let reaction = reaction_stanza(&channel(), 5, "👍", "R1");
        assert_eq!(reaction.str_attr("type").unwrap(), "reaction");
        assert_eq!(reaction.u64_attr("server_id").unwrap(), 5);
        assert_eq!(
            reaction.child("reaction").unwrap().str_attr("code").unwrap(),
            "👍"
        );
        assert!(reaction.attr_value("edit").is_none());
        let removal = reaction_stanza(&channel(), 5, "", "R2");
        assert_eq!(removal.str_attr("edit").unwrap(), "7");
        assert!(removal.child("reaction").unwrap().attr_value("code").is_none());

        let receipt = view_receipt(&channel(), &[5, 6], "V1").unwrap();
        let items: Vec<u64> = receipt
            .child("list")
            .unwrap()
            .children_by_tag("item")
            .map(|item| item.u64_attr("server_id").unwrap())
            .collect();
        assert_eq!((receipt.str_attr("type").unwrap(), items), ("view", vec![5, 6]));
        assert!(view_receipt(&channel(), &[], "V").is_err());

        let stanza = post_stanza(&channel(), "P1", &post("hello"));
        assert_eq!(stanza.str_attr("type").unwrap(), "text");
        assert!(stanza.child("enc").is_none());
        let plaintext = stanza.child("plaintext").unwrap();
        assert_eq!(
            Message::decode(plaintext.content_bytes().unwrap().as_ref()).unwrap(),
            post("hello")
        );
        assert!(plaintext.attr_value("mediatype").is_none());
        let image = Message {
            image_message: Some(Box::default()),
            ..Default::default()
        };
        let stanza = post_stanza(&channel(), "P2", &image);
        assert_eq!(stanza.str_attr("type").unwrap(), "media");
        assert_eq!(
            stanza.child("plaintext").unwrap().str_attr("mediatype").unwrap(),
            "image"
        );

        let ack = Node::new("ack")
            .attr("id", "P1")
            .attr("server_id", "42")
            .attr("t", "7");
        assert_eq!(
            parse_post_ack(&ack),
            Ok(PostAck {
                server_id: 42,
                timestamp: Some(7)
            })
        );
        assert!(parse_post_ack(&Node::new("ack")).is_err());
    }
}
