//! Privacy: settings (who sees last seen, profile photo, about...), the blocklist, privacy tokens, the
//! `account_sync` notifications that announce changes made on other devices, and the default disappearing timer
//! (whatsmeow `privacysettings.go`, `user.go` blocklist, `tctoken.go`, `notification.go`; protocol-facts §3.6
//! "Privacy tokens").

use whatsapp_binary::{Jid, Node};

use crate::error::StanzaError;

/// A privacy setting's category (the `name` of a `<category>`), from whatsmeow `types.PrivacySettingType`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum PrivacyCategory {
    /// Who may add this account to groups (`groupadd`).
    GroupAdd,
    /// Who sees last seen (`last`).
    LastSeen,
    /// Who sees status updates (`status`).
    Status,
    /// Who sees the profile photo (`profile`).
    Profile,
    /// Whether read receipts are sent (`readreceipts`).
    ReadReceipts,
    /// Who sees when this account is online (`online`).
    Online,
    /// Who may call (`calladd`).
    CallAdd,
    /// Who may message (`messages`).
    Messages,
    /// Advanced chat privacy (`defense`).
    Defense,
    /// Who may send avatar stickers (`stickers`).
    Stickers,
    /// A category this engine does not know, by name.
    Other(String),
}

impl PrivacyCategory {
    /// Every category whatsmeow knows, in its order.
    pub const KNOWN: [PrivacyCategory; 10] = [
        PrivacyCategory::GroupAdd,
        PrivacyCategory::LastSeen,
        PrivacyCategory::Status,
        PrivacyCategory::Profile,
        PrivacyCategory::ReadReceipts,
        PrivacyCategory::Online,
        PrivacyCategory::CallAdd,
        PrivacyCategory::Messages,
        PrivacyCategory::Defense,
        PrivacyCategory::Stickers,
    ];

    /// The wire name.
    pub fn as_str(&self) -> &str {
        match self {
            PrivacyCategory::GroupAdd => "groupadd",
            PrivacyCategory::LastSeen => "last",
            PrivacyCategory::Status => "status",
            PrivacyCategory::Profile => "profile",
            PrivacyCategory::ReadReceipts => "readreceipts",
            PrivacyCategory::Online => "online",
            PrivacyCategory::CallAdd => "calladd",
            PrivacyCategory::Messages => "messages",
            PrivacyCategory::Defense => "defense",
            PrivacyCategory::Stickers => "stickers",
            PrivacyCategory::Other(name) => name,
        }
    }

    /// The category with wire name `name`.
    pub fn from_name(name: &str) -> PrivacyCategory {
        Self::KNOWN
            .into_iter()
            .find(|known| known.as_str() == name)
            .unwrap_or_else(|| PrivacyCategory::Other(name.to_owned()))
    }
}

/// A privacy setting's value, from whatsmeow `types.PrivacySetting`. Which values a category accepts is the
/// server's business; whatsmeow's comments list them per category.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum PrivacyValue {
    /// Everyone (`all`).
    All,
    /// Contacts (`contacts`).
    Contacts,
    /// Only the listed contacts (`contact_allowlist`).
    ContactAllowlist,
    /// Contacts except the listed ones (`contact_blacklist`).
    ContactBlacklist,
    /// The same as last seen (`match_last_seen`, for `online`).
    MatchLastSeen,
    /// Known numbers (`known`, for `calladd`).
    Known,
    /// Nobody (`none`).
    None,
    /// On (`on_standard`, for `defense`).
    OnStandard,
    /// Off (`off`).
    Off,
    /// A value this engine does not know.
    Other(String),
}

impl PrivacyValue {
    const KNOWN: [PrivacyValue; 9] = [
        PrivacyValue::All,
        PrivacyValue::Contacts,
        PrivacyValue::ContactAllowlist,
        PrivacyValue::ContactBlacklist,
        PrivacyValue::MatchLastSeen,
        PrivacyValue::Known,
        PrivacyValue::None,
        PrivacyValue::OnStandard,
        PrivacyValue::Off,
    ];

    /// The wire value.
    pub fn as_str(&self) -> &str {
        match self {
            PrivacyValue::All => "all",
            PrivacyValue::Contacts => "contacts",
            PrivacyValue::ContactAllowlist => "contact_allowlist",
            PrivacyValue::ContactBlacklist => "contact_blacklist",
            PrivacyValue::MatchLastSeen => "match_last_seen",
            PrivacyValue::Known => "known",
            PrivacyValue::None => "none",
            PrivacyValue::OnStandard => "on_standard",
            PrivacyValue::Off => "off",
            PrivacyValue::Other(value) => value,
        }
    }

    /// The value with wire form `value`.
    pub fn from_name(value: &str) -> PrivacyValue {
        Self::KNOWN
            .into_iter()
            .find(|known| known.as_str() == value)
            .unwrap_or_else(|| PrivacyValue::Other(value.to_owned()))
    }
}

/// Privacy settings as the server lists them, in its order. Categories the server did not list are absent.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PrivacySettings {
    /// Each listed category with its value.
    pub settings: Vec<(PrivacyCategory, PrivacyValue)>,
}

impl PrivacySettings {
    /// The value of `category`, if listed.
    pub fn get(&self, category: &PrivacyCategory) -> Option<&PrivacyValue> {
        self.settings
            .iter()
            .find(|(listed, _)| listed == category)
            .map(|(_, value)| value)
    }

    /// Reads the `<category name value/>` children of a `<privacy>` element (the answer to
    /// [`settings_query`], or the element of a `account_sync` notification, which lists only what changed).
    /// Children of other tags are skipped; a category without a name or value is an error.
    pub fn parse(privacy: &Node) -> Result<PrivacySettings, StanzaError> {
        let settings = privacy
            .children_by_tag("category")
            .map(|category| {
                Ok((
                    PrivacyCategory::from_name(category.str_attr("name")?),
                    PrivacyValue::from_name(category.str_attr("value")?),
                ))
            })
            .collect::<Result<_, StanzaError>>()?;
        Ok(PrivacySettings { settings })
    }

    /// Reads the answer to [`settings_query`]: `<iq><privacy><category/>...</privacy></iq>`.
    pub fn parse_answer(answer: &Node) -> Result<PrivacySettings, StanzaError> {
        Self::parse(answer.child("privacy").ok_or(StanzaError::Missing("privacy"))?)
    }
}

fn server_iq(xmlns: &'static str, kind: &'static str) -> Node {
    Node::new("iq")
        .attr("xmlns", xmlns)
        .attr("type", kind)
        .attr("to", crate::server_jid())
}

/// `<iq xmlns="privacy" type="get"><privacy/></iq>`: asks for every privacy setting.
pub fn settings_query() -> Node {
    server_iq("privacy", "get").children([Node::new("privacy")])
}

/// `<iq xmlns="privacy" type="set"><privacy><category name value/></privacy></iq>`: changes one setting.
pub fn set_setting_query(category: &PrivacyCategory, value: &PrivacyValue) -> Node {
    server_iq("privacy", "set").children([Node::new("privacy").children([Node::new("category")
        .attr("name", category.as_str().to_owned())
        .attr("value", value.as_str().to_owned())])])
}

/// `<iq xmlns="disappearing_mode" type="set"><disappearing_mode duration=seconds/></iq>`: the timer new chats
/// start with (0 turns it off; whatsmeow `SetDefaultDisappearingTimer`).
pub fn default_disappearing_timer_query(seconds: u32) -> Node {
    server_iq("disappearing_mode", "set")
        .children([Node::new("disappearing_mode").attr("duration", seconds.to_string())])
}

/// Blocking or unblocking.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BlockAction {
    /// Block.
    Block,
    /// Unblock.
    Unblock,
}

impl BlockAction {
    /// The wire value.
    pub fn as_str(self) -> &'static str {
        match self {
            BlockAction::Block => "block",
            BlockAction::Unblock => "unblock",
        }
    }
}

/// The blocklist: the blocked users and the server's hash of the list.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Blocklist {
    /// The server's hash of the list (`dhash`), empty when not given.
    pub dhash: String,
    /// The blocked users.
    pub users: Vec<Jid>,
}

impl Blocklist {
    /// Reads the answer to [`blocklist_query`] or [`update_blocklist_query`]: `<iq><list dhash><item jid/>...`.
    /// Items without a valid JID are skipped, as whatsmeow does.
    pub fn parse_answer(answer: &Node) -> Result<Blocklist, StanzaError> {
        let list = answer.child("list").ok_or(StanzaError::Missing("list"))?;
        Ok(Blocklist {
            dhash: list.optional_str_attr("dhash").unwrap_or_default().to_owned(),
            users: list
                .children_by_tag("item")
                .filter_map(|item| item.jid_attr("jid").ok())
                .collect(),
        })
    }
}

/// `<iq xmlns="blocklist" type="get"/>`: asks for the blocklist.
pub fn blocklist_query() -> Node {
    server_iq("blocklist", "get")
}

/// `<iq xmlns="blocklist" type="set"><item jid action [pn_jid]/></iq>`: blocks or unblocks `user`. whatsmeow names
/// the user by LID and adds the phone number as `pn_jid` when blocking; `phone_number` is that number, when the
/// caller knows it.
pub fn update_blocklist_query(user: &Jid, action: BlockAction, phone_number: Option<&Jid>) -> Node {
    let mut item = Node::new("item")
        .attr("jid", user.to_non_ad())
        .attr("action", action.as_str());
    if action == BlockAction::Block
        && let Some(phone_number) = phone_number
    {
        item = item.attr("pn_jid", phone_number.to_non_ad());
    }
    server_iq("blocklist", "set").children([item])
}

/// A change of the blocklist made on another device, from an `account_sync` notification.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BlocklistChange {
    /// `modify` when the whole list should be fetched again (then `changes` is empty); absent otherwise.
    pub action: Option<String>,
    /// The new hash of the list.
    pub dhash: String,
    /// Each user blocked or unblocked.
    pub changes: Vec<(Jid, BlockAction)>,
}

impl BlocklistChange {
    /// Reads `<blocklist [action] dhash><item jid action/>...</blocklist>`; items with a missing JID or an unknown
    /// action are skipped (whatsmeow `handleBlocklist`).
    pub fn parse(blocklist: &Node) -> BlocklistChange {
        BlocklistChange {
            action: blocklist.optional_str_attr("action").map(str::to_owned),
            dhash: blocklist
                .optional_str_attr("dhash")
                .unwrap_or_default()
                .to_owned(),
            changes: blocklist
                .children_by_tag("item")
                .filter_map(|item| {
                    let action = match item.optional_str_attr("action")? {
                        "block" => BlockAction::Block,
                        "unblock" => BlockAction::Unblock,
                        _ => return None,
                    };
                    Some((item.jid_attr("jid").ok()?, action))
                })
                .collect(),
        }
    }
}

/// One item of an `account_sync` notification.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum AccountSync {
    /// Privacy settings changed; only the changed categories are listed.
    Privacy(PrivacySettings),
    /// The blocklist changed.
    Blocklist(BlocklistChange),
    /// This account's profile picture changed.
    Picture,
    /// Another item (`devices`...), by tag; not read here.
    Other(String),
}

/// Reads the items of `<notification type="account_sync">` (whatsmeow `handleAccountSyncNotification`).
pub fn parse_account_sync(notification: &Node) -> Result<Vec<AccountSync>, StanzaError> {
    notification
        .child_nodes()
        .iter()
        .map(|child| {
            Ok(match child.tag.as_ref() {
                "privacy" => AccountSync::Privacy(PrivacySettings::parse(child)?),
                "blocklist" => AccountSync::Blocklist(BlocklistChange::parse(child)),
                "picture" => AccountSync::Picture,
                other => AccountSync::Other(other.to_owned()),
            })
        })
        .collect()
}

/// How long one privacy-token bucket lasts: 7 days (whatsmeow `tcTokenBucketDuration`, AB prop
/// `tctoken_duration`).
pub const TOKEN_BUCKET_SECONDS: i64 = 604_800;
/// How many buckets a token stays valid: 4, about 28 days (whatsmeow `tcTokenNumBuckets`).
pub const TOKEN_BUCKETS: i64 = 4;

/// The oldest token timestamp (unix seconds) still valid at `now` (whatsmeow `currentTCTokenCutoffTimestamp`).
pub fn token_cutoff(now_seconds: i64) -> i64 {
    (now_seconds / TOKEN_BUCKET_SECONDS - (TOKEN_BUCKETS - 1)) * TOKEN_BUCKET_SECONDS
}

/// A privacy token a contact gave us. `Debug` shows the token's length, not its bytes.
#[derive(Clone, PartialEq, Eq)]
pub struct ReceivedToken {
    /// The token.
    pub token: Vec<u8>,
    /// When it was issued, unix seconds.
    pub timestamp: i64,
}

impl std::fmt::Debug for ReceivedToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReceivedToken")
            .field("token", &format_args!("<{} bytes redacted>", self.token.len()))
            .field("timestamp", &self.timestamp)
            .finish()
    }
}

/// The tokens of one `privacy_token` notification.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PrivacyTokens {
    /// The sender, as tokens are stored: its LID when the stanza names one (as whatsmeow stores them), else
    /// `from`.
    pub sender: Jid,
    /// The sender's phone number when the stanza names both it (`from`) and the LID: a LID mapping to keep.
    pub phone_number: Option<Jid>,
    /// The trusted-contact tokens.
    pub tokens: Vec<ReceivedToken>,
}

/// Reads `<notification type="privacy_token" from [sender_lid]><tokens><token type t>bytes</token>...`.
/// Tokens of another type, without bytes or without a timestamp are skipped (whatsmeow
/// `handlePrivacyTokenNotification`); a notification without a sender or `<tokens>` is an error.
pub fn parse_privacy_tokens(notification: &Node) -> Result<PrivacyTokens, StanzaError> {
    let from = notification.jid_attr("from")?.to_non_ad();
    let (sender, phone_number) = match notification.optional_jid_attr("sender_lid")? {
        Some(lid) => {
            let phone_number = (from.server() == Jid::DEFAULT_USER_SERVER).then_some(from);
            (lid.to_non_ad(), phone_number)
        }
        None => (from, None),
    };
    let tokens = notification
        .child("tokens")
        .ok_or(StanzaError::Missing("tokens"))?;
    let tokens = tokens
        .children_by_tag("token")
        .filter(|token| token.optional_str_attr("type") == Some("trusted_contact"))
        .filter_map(|token| {
            Some(ReceivedToken {
                token: token.content_bytes().filter(|b| !b.is_empty())?.to_vec(),
                timestamp: token.i64_attr("t").ok()?,
            })
        })
        .collect();
    Ok(PrivacyTokens {
        sender,
        phone_number,
        tokens,
    })
}

/// The `<tctoken>` element attached to a one-to-one message, a presence subscription or a profile query.
pub fn tctoken_node(token: &[u8]) -> Node {
    Node::new("tctoken").bytes(token.to_vec())
}

/// The bucket a unix-seconds timestamp falls in: tokens are issued at most once per bucket.
pub fn token_bucket(seconds: i64) -> i64 {
    seconds.div_euclid(TOKEN_BUCKET_SECONDS)
}

/// Whether this account should issue its own token to a contact it last issued one to at `last_issued`
/// (unix seconds; `None` when never): when `now` is in a later bucket (whatsmeow `shouldSendNewTCToken`).
pub fn should_issue_token(last_issued: Option<i64>, now_seconds: i64) -> bool {
    last_issued.is_none_or(|last| token_bucket(now_seconds) > token_bucket(last))
}

/// Whether `jid` is a contact privacy tokens are exchanged with: a user by phone number or LID, not a bot and
/// not the PSA account (whatsmeow `shouldSendTCTokenInChatAction`, `shouldSendCsToken`).
pub fn exchanges_tokens_with(jid: &Jid) -> bool {
    let jid = jid.to_non_ad();
    matches!(jid.server(), Jid::DEFAULT_USER_SERVER | Jid::LID_SERVER) && jid.user() != "0" && !jid.is_bot()
}

/// `<iq xmlns="privacy" type="set"><tokens><token jid t type="trusted_contact"/></tokens></iq>`: issues this
/// account's token to `contact`, stamped `timestamp` (unix seconds; whatsmeow `issuePrivacyToken`). The server
/// delivers the token to the contact in a `privacy_token` notification.
pub fn issue_token_query(contact: &Jid, timestamp: i64) -> Node {
    server_iq("privacy", "set").children([Node::new("tokens").children([Node::new("token")
        .attr("jid", contact.to_non_ad())
        .attr("t", timestamp.to_string())
        .attr("type", "trusted_contact")])])
}

/// Reads the tokens an [`issue_token_query`] issues: each contact with its timestamp (unix seconds). An IQ
/// without `<tokens>`, without any `<token>`, or with a token lacking its JID, timestamp or trusted-contact type
/// is an error.
pub fn parse_issue_token_query(iq: &Node) -> Result<Vec<(Jid, i64)>, StanzaError> {
    let tokens = iq.child("tokens").ok_or(StanzaError::Missing("tokens"))?;
    let issued = tokens
        .children_by_tag("token")
        .map(|token| {
            if token.str_attr("type")? != "trusted_contact" {
                return Err(StanzaError::Missing("trusted_contact type"));
            }
            Ok((token.jid_attr("jid")?, token.i64_attr("t")?))
        })
        .collect::<Result<Vec<_>, _>>()?;
    if issued.is_empty() {
        return Err(StanzaError::Missing("token"));
    }
    Ok(issued)
}

/// The NCT salt a history sync carries: the key `cstoken`s are derived from. `Debug` shows its length only.
#[derive(Clone, PartialEq, Eq)]
pub struct NctSalt(pub Vec<u8>);

impl std::fmt::Debug for NctSalt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "NctSalt(<{} bytes redacted>)", self.0.len())
    }
}

impl NctSalt {
    /// The `cstoken` for a recipient without a privacy token: HMAC-SHA256 keyed by the salt over the recipient's
    /// LID JID as text (`user@lid`; whatsmeow `generateCsToken`).
    pub fn cstoken(&self, recipient_lid: &Jid) -> Vec<u8> {
        use hmac::{Hmac, Mac};
        // HMAC takes a key of any length.
        let mut mac = <Hmac<sha2::Sha256> as Mac>::new_from_slice(&self.0).unwrap_or_else(|_| unreachable!());
        mac.update(recipient_lid.to_non_ad().to_string().as_bytes());
        mac.finalize().into_bytes().to_vec()
    }
}

/// The `<cstoken>` element attached to a one-to-one message when no privacy token is known for the recipient.
pub fn cstoken_node(token: &[u8]) -> Node {
    Node::new("cstoken").bytes(token.to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(number: &str) -> Jid {
        Jid::new(number, Jid::DEFAULT_USER_SERVER)
    }

    #[test]
    fn settings_round_trip_through_the_wire_names() {
        for category in PrivacyCategory::KNOWN {
            assert_eq!(PrivacyCategory::from_name(category.as_str()), category);
        }
        for value in PrivacyValue::KNOWN {
            assert_eq!(PrivacyValue::from_name(value.as_str()), value);
        }
        let set = set_setting_query(&PrivacyCategory::LastSeen, &PrivacyValue::Contacts);
        let category = set.child("privacy").unwrap().child("category").unwrap();
        assert_eq!(category.str_attr("name").unwrap(), "last");
        assert_eq!(category.str_attr("value").unwrap(), "contacts");
        // The answer has the shape of the request.
        let answer = Node::new("iq").children([set.child("privacy").unwrap().clone()]);
        let settings = PrivacySettings::parse_answer(&answer).unwrap();
        assert_eq!(
            settings.get(&PrivacyCategory::LastSeen),
            Some(&PrivacyValue::Contacts)
        );
        assert_eq!(settings.get(&PrivacyCategory::Online), None);
    }

    #[test]
    fn unknown_names_are_kept_and_bad_categories_refused() {
        let privacy = Node::new("privacy").children([
            Node::new("category")
                .attr("name", "future")
                .attr("value", "maybe"),
            Node::new("other"),
        ]);
        let settings = PrivacySettings::parse(&privacy).unwrap();
        assert_eq!(
            settings.settings,
            vec![(
                PrivacyCategory::Other("future".into()),
                PrivacyValue::Other("maybe".into())
            )]
        );
        let bad = Node::new("privacy").children([Node::new("category").attr("name", "last")]);
        assert!(PrivacySettings::parse(&bad).is_err());
        assert_eq!(
            PrivacySettings::parse_answer(&Node::new("iq")),
            Err(StanzaError::Missing("privacy"))
        );
    }

    #[test]
    fn blocklist_queries_and_answers() {
        let lid = Jid::new("123456789", Jid::LID_SERVER);
        let query = update_blocklist_query(&lid, BlockAction::Block, Some(&user("15551234567")));
        let item = query.child("item").unwrap();
        assert_eq!(item.str_attr("action").unwrap(), "block");
        assert_eq!(item.jid_attr("pn_jid").unwrap(), user("15551234567"));
        let unblock = update_blocklist_query(&lid, BlockAction::Unblock, Some(&user("15551234567")));
        assert!(unblock.child("item").unwrap().attr_value("pn_jid").is_none());

        let answer = Node::new("iq").children([Node::new("list")
            .attr("dhash", "h1")
            .children([Node::new("item").attr("jid", user("1")), Node::new("item")])]);
        let list = Blocklist::parse_answer(&answer).unwrap();
        assert_eq!(list.dhash, "h1");
        assert_eq!(list.users, vec![user("1")]);
        assert!(Blocklist::parse_answer(&Node::new("iq")).is_err());
    }

    #[test]
    fn account_sync_items() {
        let notification = Node::new("notification").children([
            Node::new("privacy")
                .children([Node::new("category").attr("name", "online").attr("value", "all")]),
            Node::new("blocklist").attr("dhash", "h2").children([
                Node::new("item").attr("jid", user("2")).attr("action", "block"),
                Node::new("item").attr("jid", user("3")).attr("action", "explode"),
            ]),
            Node::new("picture"),
            Node::new("devices"),
        ]);
        let items = parse_account_sync(&notification).unwrap();
        assert_eq!(items.len(), 4);
        assert!(
            matches!(&items[0], AccountSync::Privacy(s) if s.get(&PrivacyCategory::Online) == Some(&PrivacyValue::All))
        );
        assert_eq!(
            items[1],
            AccountSync::Blocklist(BlocklistChange {
                action: None,
                dhash: "h2".into(),
                changes: vec![(user("2"), BlockAction::Block)]
            })
        );
        assert_eq!(items[2], AccountSync::Picture);
        assert_eq!(items[3], AccountSync::Other("devices".into()));
    }

    #[test]
    fn privacy_tokens_from_a_notification() {
        let lid = Jid::with_device("777", Jid::LID_SERVER, 3);
        let notification = Node::new("notification")
            .attr("from", user("15551234567"))
            .attr("sender_lid", lid.clone())
            .children([Node::new("tokens").children([
                Node::new("token")
                    .attr("type", "trusted_contact")
                    .attr("t", "1700000000")
                    .bytes(b"tok".to_vec()),
                Node::new("token")
                    .attr("type", "other")
                    .attr("t", "1")
                    .bytes(b"x".to_vec()),
                Node::new("token")
                    .attr("type", "trusted_contact")
                    .bytes(b"no time".to_vec()),
            ])]);
        let parsed = parse_privacy_tokens(&notification).unwrap();
        assert_eq!(parsed.sender, lid.to_non_ad());
        assert_eq!(parsed.phone_number, Some(user("15551234567")));
        assert_eq!(
            parsed.tokens,
            vec![ReceivedToken {
                token: b"tok".to_vec(),
                timestamp: 1_700_000_000
            }]
        );
        assert_eq!(
            parse_privacy_tokens(&Node::new("notification").attr("from", user("1"))),
            Err(StanzaError::Missing("tokens"))
        );
    }

    #[test]
    fn token_cutoff_is_three_buckets_back() {
        let now = 10 * TOKEN_BUCKET_SECONDS + 5;
        assert_eq!(token_cutoff(now), 7 * TOKEN_BUCKET_SECONDS);
    }

    #[test]
    fn one_token_per_seven_day_bucket() {
        let bucket_start = 2_800 * TOKEN_BUCKET_SECONDS;
        assert!(should_issue_token(None, bucket_start));
        assert!(!should_issue_token(
            Some(bucket_start),
            bucket_start + TOKEN_BUCKET_SECONDS - 1
        ));
        assert!(should_issue_token(Some(bucket_start - 1), bucket_start));
        assert!(should_issue_token(
            Some(bucket_start),
            bucket_start + TOKEN_BUCKET_SECONDS
        ));
        // A clock that went back never issues twice in a bucket.
        assert!(!should_issue_token(Some(bucket_start + 10), bucket_start));
        assert_eq!(token_bucket(-1), -1);
    }

    #[test]
    fn tokens_go_to_users_but_not_groups_bots_or_the_psa_account() {
        assert!(exchanges_tokens_with(&user("15551234567")));
        assert!(exchanges_tokens_with(&Jid::with_device(
            "777",
            Jid::LID_SERVER,
            2
        )));
        assert!(!exchanges_tokens_with(&Jid::new("1203630", Jid::GROUP_SERVER)));
        assert!(!exchanges_tokens_with(&user("0")));
        assert!(!exchanges_tokens_with(&Jid::new("1313555", Jid::BOT_SERVER)));
        assert!(!exchanges_tokens_with(&Jid::new("1", Jid::NEWSLETTER_SERVER)));
    }

    #[test]
    fn issuing_query_round_trips_and_bad_ones_are_refused() {
        let contact = Jid::with_device("777", Jid::LID_SERVER, 4);
        let iq = issue_token_query(&contact, 1_700_000_000);
        assert_eq!(iq.str_attr("xmlns").unwrap(), "privacy");
        assert_eq!(iq.str_attr("type").unwrap(), "set");
        let token = iq.child("tokens").unwrap().child("token").unwrap();
        assert_eq!(token.str_attr("type").unwrap(), "trusted_contact");
        assert_eq!(
            parse_issue_token_query(&iq).unwrap(),
            vec![(contact.to_non_ad(), 1_700_000_000)]
        );
        assert!(parse_issue_token_query(&Node::new("iq")).is_err());
        assert!(parse_issue_token_query(&Node::new("iq").children([Node::new("tokens")])).is_err());
        let no_time = Node::new("iq").children([Node::new("tokens").children([Node::new("token")
            .attr("jid", user("1"))
            .attr("type", "trusted_contact")])]);
        assert!(parse_issue_token_query(&no_time).is_err());
    }

    #[test]
    fn cstoken_is_the_hmac_of_the_lid_and_the_salt_stays_hidden() {
        use hmac::{Hmac, Mac};
        let salt = NctSalt(vec![0x5a; 32]);
        let lid = Jid::with_device("777", Jid::LID_SERVER, 3);
        let mut mac = <Hmac<sha2::Sha256> as Mac>::new_from_slice(&[0x5a; 32]).unwrap();
        mac.update(b"777@lid");
        assert_eq!(salt.cstoken(&lid), mac.finalize().into_bytes().to_vec());
        assert_eq!(format!("{salt:?}"), "NctSalt(<32 bytes redacted>)");
        assert_eq!(cstoken_node(&[1, 2]).tag, "cstoken");
    }

    #[test]
    fn default_timer_in_seconds() {
        let iq = default_disappearing_timer_query(86_400);
        assert_eq!(
            iq.child("disappearing_mode")
                .unwrap()
                .str_attr("duration")
                .unwrap(),
            "86400"
        );
    }
}
