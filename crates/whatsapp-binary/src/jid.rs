//! WhatsApp addresses (JIDs): users, devices, groups, broadcasts, newsletters, bots and bridged networks.
//!
//! A JID has a user part, a server, and for device addresses an agent (or "domain type") byte and a device number.
//! Interop JIDs also carry an integrator number. The string form follows whatsmeow's `types.JID`:
//!
//! | form | meaning |
//! | --- | --- |
//! | `user@server` | a user, group (`123-456@g.us`), broadcast list... |
//! | `user:device@server` | one device of a user (`user:3@s.whatsapp.net`, `user:5@lid`) |
//! | `user.agent:device@server` | a device with a raw agent byte that is not a domain type |
//! | `integrator-user:device@interop` | an interop user with its integrator (not in whatsmeow, which drops it) |
//! | `server` | a server-only JID (`s.whatsapp.net`); `@server` is also accepted when parsing |
//!
//! Facts: protocol-facts §3.10 (servers, AD_JID domain bytes), whatsmeow `types/jid.go`.

use std::borrow::Cow;
use std::fmt;
use std::str::FromStr;

/// A WhatsApp address.
///
/// Fields are private so the representation can stay compact (known servers are not allocated); read them with
/// [`Jid::user`], [`Jid::server`], [`Jid::device`], [`Jid::raw_agent`] and [`Jid::integrator`].
/// The derived ordering compares user, then server, then agent, device and integrator.
#[derive(Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Jid {
    user: String,
    server: Cow<'static, str>,
    raw_agent: u8,
    device: u16,
    integrator: u16,
}

/// Why a string is not a JID.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum JidParseError {
    /// The string has more than one `@`.
    #[error("JID {0:?} has more than one '@'")]
    TooManyAts(String),
    /// The user part has more than one `.` (the agent separator).
    #[error("JID {0:?} has more than one '.' in its user part")]
    TooManyDots(String),
    /// The user part has more than one `:` (the device separator).
    #[error("JID {0:?} has more than one ':' in its user part")]
    TooManyColons(String),
    /// The agent after `.` is not a number from 0 to 255.
    #[error("JID {0:?} has an invalid agent")]
    InvalidAgent(String),
    /// The device after `:` is not a number from 0 to 65535.
    #[error("JID {0:?} has an invalid device")]
    InvalidDevice(String),
    /// The integrator before `-` of an interop JID is not a number from 0 to 65535.
    #[error("JID {0:?} has an invalid integrator")]
    InvalidIntegrator(String),
}

/// The server names JIDs are built from, each interned so that decoding a known server never allocates.
const KNOWN_SERVERS: [&str; 11] = [
    Jid::DEFAULT_USER_SERVER,
    Jid::GROUP_SERVER,
    Jid::LEGACY_USER_SERVER,
    Jid::BROADCAST_SERVER,
    Jid::LID_SERVER,
    Jid::MESSENGER_SERVER,
    Jid::INTEROP_SERVER,
    Jid::NEWSLETTER_SERVER,
    Jid::HOSTED_SERVER,
    Jid::HOSTED_LID_SERVER,
    Jid::BOT_SERVER,
];

/// Returns a server name that borrows a static string when the name is well known.
pub(crate) fn intern_server(server: &str) -> Cow<'static, str> {
    match KNOWN_SERVERS.iter().find(|known| **known == server) {
        Some(known) => Cow::Borrowed(known),
        None => Cow::Owned(server.to_owned()),
    }
}

impl Jid {
    /// Phone-number users and their devices (protocol-facts §3.10).
    pub const DEFAULT_USER_SERVER: &'static str = "s.whatsapp.net";
    /// Groups (`123-456@g.us` or `120363...@g.us`).
    pub const GROUP_SERVER: &'static str = "g.us";
    /// The legacy user server, still used for a few service accounts.
    pub const LEGACY_USER_SERVER: &'static str = "c.us";
    /// Broadcast lists and `status@broadcast`.
    pub const BROADCAST_SERVER: &'static str = "broadcast";
    /// Hidden users ("LID", linked identities) and their devices.
    pub const LID_SERVER: &'static str = "lid";
    /// Facebook Messenger users (FB_JID).
    pub const MESSENGER_SERVER: &'static str = "msgr";
    /// Users of bridged networks (INTEROP_JID).
    pub const INTEROP_SERVER: &'static str = "interop";
    /// Newsletters (channels).
    pub const NEWSLETTER_SERVER: &'static str = "newsletter";
    /// Hosted (business platform) phone-number devices.
    pub const HOSTED_SERVER: &'static str = "hosted";
    /// Hosted (business platform) LID devices.
    pub const HOSTED_LID_SERVER: &'static str = "hosted.lid";
    /// AI bots.
    pub const BOT_SERVER: &'static str = "bot";

    /// AD_JID domain byte of `s.whatsapp.net` devices (protocol-facts §3.10).
    pub const WHATSAPP_DOMAIN: u8 = 0x00;
    /// AD_JID domain byte of `lid` devices.
    pub const LID_DOMAIN: u8 = 0x01;
    /// AD_JID domain byte of `hosted` devices.
    pub const HOSTED_DOMAIN: u8 = 0x80;
    /// AD_JID domain byte of `hosted.lid` devices.
    pub const HOSTED_LID_DOMAIN: u8 = 0x81;

    /// The user of status updates.
    pub const STATUS_BROADCAST_USER: &'static str = "status";

    /// A JID of `user` on `server` with no device (`user@server`; an empty user gives a server-only JID).
    pub fn new(user: impl Into<String>, server: impl AsRef<str>) -> Jid {
        Jid {
            user: user.into(),
            server: intern_server(server.as_ref()),
            raw_agent: 0,
            device: 0,
            integrator: 0,
        }
    }

    /// A JID of one device of `user` on `server` (`user:device@server`).
    pub fn with_device(user: impl Into<String>, server: impl AsRef<str>, device: u16) -> Jid {
        Jid {
            device,
            ..Jid::new(user, server)
        }
    }

    /// A server-only JID (`s.whatsapp.net`, `g.us`...).
    pub fn server_only(server: impl AsRef<str>) -> Jid {
        Jid::new(String::new(), server)
    }

    /// A device JID as an AD_JID carries it: `domain` picks the server (0 `s.whatsapp.net`, 1 `lid`,
    /// 0x80 `hosted`, 0x81 `hosted.lid`); any other byte is kept as a raw agent on `s.whatsapp.net`
    /// (whatsmeow `NewADJID`).
    pub fn new_ad(user: impl Into<String>, domain: u8, device: u16) -> Jid {
        let (server, raw_agent) = match domain {
            Jid::LID_DOMAIN => (Jid::LID_SERVER, 0),
            Jid::HOSTED_DOMAIN => (Jid::HOSTED_SERVER, 0),
            Jid::HOSTED_LID_DOMAIN => (Jid::HOSTED_LID_SERVER, 0),
            other => (Jid::DEFAULT_USER_SERVER, other),
        };
        Jid {
            user: user.into(),
            server: Cow::Borrowed(server),
            raw_agent,
            device,
            integrator: 0,
        }
    }

    /// A Messenger JID (`user:device@msgr`, FB_JID on the wire).
    pub fn messenger(user: impl Into<String>, device: u16) -> Jid {
        Jid::with_device(user, Jid::MESSENGER_SERVER, device)
    }

    /// An interop JID (`integrator-user:device@interop`, INTEROP_JID on the wire).
    pub fn interop(user: impl Into<String>, device: u16, integrator: u16) -> Jid {
        Jid {
            integrator,
            ..Jid::with_device(user, Jid::INTEROP_SERVER, device)
        }
    }

    /// `status@broadcast`, where status updates are sent.
    pub fn status_broadcast() -> Jid {
        Jid::new(Jid::STATUS_BROADCAST_USER, Jid::BROADCAST_SERVER)
    }

    /// The user part (a phone number, LID, group id...); empty for a server-only JID.
    pub fn user(&self) -> &str {
        &self.user
    }

    /// The server part (`s.whatsapp.net`, `lid`, `g.us`...); empty only for the empty JID.
    pub fn server(&self) -> &str {
        &self.server
    }

    /// The device number; 0 is the primary device (and the "no device" value).
    pub fn device(&self) -> u16 {
        self.device
    }

    /// The raw agent byte: non-zero only for AD_JIDs whose agent byte is not a domain type.
    pub fn raw_agent(&self) -> u8 {
        self.raw_agent
    }

    /// The integrator of an interop JID, 0 otherwise.
    pub fn integrator(&self) -> u16 {
        self.integrator
    }

    /// The agent or domain byte written in an AD_JID: derived from the server for the four device servers, the
    /// raw agent otherwise (whatsmeow `ActualAgent`).
    pub fn actual_agent(&self) -> u8 {
        match self.server() {
            Jid::DEFAULT_USER_SERVER => Jid::WHATSAPP_DOMAIN,
            Jid::LID_SERVER => Jid::LID_DOMAIN,
            Jid::HOSTED_SERVER => Jid::HOSTED_DOMAIN,
            Jid::HOSTED_LID_SERVER => Jid::HOSTED_LID_DOMAIN,
            _ => self.raw_agent,
        }
    }

    /// Sets the device number.
    pub fn set_device(&mut self, device: u16) {
        self.device = device;
    }

    /// Sets the raw agent byte.
    pub fn set_raw_agent(&mut self, raw_agent: u8) {
        self.raw_agent = raw_agent;
    }

    /// Sets the integrator number.
    pub fn set_integrator(&mut self, integrator: u16) {
        self.integrator = integrator;
    }

    /// The same user without agent and device: the account rather than one of its devices
    /// (whatsmeow `ToNonAD`; the integrator is kept).
    pub fn to_non_ad(&self) -> Jid {
        Jid {
            user: self.user.clone(),
            server: self.server.clone(),
            raw_agent: 0,
            device: 0,
            integrator: self.integrator,
        }
    }

    /// The Signal protocol name of this user: `user`, or `user_agent` when the actual agent is not 0
    /// (so LID users are `user_1`).
    pub fn signal_address_user(&self) -> String {
        match self.actual_agent() {
            0 => self.user.clone(),
            agent => format!("{}_{agent}", self.user),
        }
    }

    /// The Signal protocol address of this device: `user[_agent]:device`.
    pub fn signal_address(&self) -> String {
        format!("{}:{}", self.signal_address_user(), self.device)
    }

    /// The user part as a number, if it is one (phone numbers and LIDs are).
    pub fn user_int(&self) -> Option<u64> {
        self.user.parse().ok()
    }

    /// Whether this is the empty JID (no server), the value of a missing address.
    pub fn is_empty(&self) -> bool {
        self.server.is_empty()
    }

    /// Whether this JID names one device (agent or device set) rather than an account.
    pub fn is_ad(&self) -> bool {
        self.device != 0 || self.raw_agent != 0
    }

    /// Whether this is a server-only JID (`s.whatsapp.net`, `g.us`...).
    pub fn is_server_only(&self) -> bool {
        self.user.is_empty() && !self.server.is_empty()
    }

    /// Whether this is a group.
    pub fn is_group(&self) -> bool {
        self.server() == Jid::GROUP_SERVER
    }

    /// Whether this is a phone-number user or device (`s.whatsapp.net`).
    pub fn is_pn(&self) -> bool {
        self.server() == Jid::DEFAULT_USER_SERVER
    }

    /// Whether this is a hidden user (LID) or one of its devices.
    pub fn is_lid(&self) -> bool {
        self.server() == Jid::LID_SERVER
    }

    /// Whether this is a hosted device (`hosted` or `hosted.lid`).
    pub fn is_hosted(&self) -> bool {
        matches!(self.server(), Jid::HOSTED_SERVER | Jid::HOSTED_LID_SERVER)
    }

    /// Whether this is a newsletter.
    pub fn is_newsletter(&self) -> bool {
        self.server() == Jid::NEWSLETTER_SERVER
    }

    /// Whether this is `status@broadcast`.
    pub fn is_status_broadcast(&self) -> bool {
        self.server() == Jid::BROADCAST_SERVER && self.user == Jid::STATUS_BROADCAST_USER
    }

    /// Whether this is a broadcast list other than `status@broadcast`.
    pub fn is_broadcast_list(&self) -> bool {
        self.server() == Jid::BROADCAST_SERVER && self.user != Jid::STATUS_BROADCAST_USER
    }

    /// Whether this is a Messenger user.
    pub fn is_messenger(&self) -> bool {
        self.server() == Jid::MESSENGER_SERVER
    }

    /// Whether this is an interop user.
    pub fn is_interop(&self) -> bool {
        self.server() == Jid::INTEROP_SERVER
    }

    /// Whether this is a bot: anything on `bot`, or a primary-device phone number in the bot ranges
    /// `1313555xxxx` and `131655500xx` (whatsmeow `IsBot`).
    pub fn is_bot(&self) -> bool {
        if self.server() == Jid::BOT_SERVER {
            return true;
        }
        let digits_after = |prefix: &str, count: usize| {
            self.user
                .strip_prefix(prefix)
                .is_some_and(|rest| rest.len() == count && rest.bytes().all(|b| b.is_ascii_digit()))
        };
        self.server() == Jid::DEFAULT_USER_SERVER
            && self.device == 0
            && (digits_after("1313555", 4) || digits_after("131655500", 2))
    }

    /// Builds a JID from decoded parts.
    pub(crate) fn from_parts(
        user: String,
        server: Cow<'static, str>,
        raw_agent: u8,
        device: u16,
        integrator: u16,
    ) -> Jid {
        Jid {
            user,
            server,
            raw_agent,
            device,
            integrator,
        }
    }
}

impl fmt::Display for Jid {
    /// whatsmeow's `JID.String()`, except that an interop JID with an integrator shows it as
    /// `integrator-user:device@interop` so that the string parses back to the same JID.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.server.is_empty() {
            return Ok(());
        }
        if self.user.is_empty() && self.raw_agent == 0 && self.device == 0 {
            return f.write_str(&self.server);
        }
        if self.integrator != 0 && self.is_interop() {
            write!(f, "{}-", self.integrator)?;
        }
        f.write_str(&self.user)?;
        if self.raw_agent != 0 {
            write!(f, ".{}:{}", self.raw_agent, self.device)?;
        } else if self.device != 0 {
            write!(f, ":{}", self.device)?;
        }
        write!(f, "@{}", self.server)
    }
}

impl fmt::Debug for Jid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Jid({self})")
    }
}

impl FromStr for Jid {
    type Err = JidParseError;

    /// Parses the forms listed in the module docs. A string without `@` is a server-only JID, like
    /// whatsmeow's `ParseJID`; `@server` is one too.
    fn from_str(s: &str) -> Result<Jid, JidParseError> {
        let Some((user_part, server)) = s.split_once('@') else {
            return Ok(Jid::server_only(s));
        };
        if server.contains('@') {
            return Err(JidParseError::TooManyAts(s.to_owned()));
        }
        let mut jid = Jid::server_only(server);
        let (user_agent, device) = match user_part.split_once(':') {
            Some((user_agent, device)) => {
                if device.contains(':') {
                    return Err(JidParseError::TooManyColons(s.to_owned()));
                }
                let device =
                    parse_number(device).ok_or_else(|| JidParseError::InvalidDevice(s.to_owned()))?;
                (user_agent, device)
            }
            None => (user_part, 0),
        };
        jid.device = device;
        let user = match user_agent.split_once('.') {
            Some((user, agent)) => {
                if agent.contains('.') {
                    return Err(JidParseError::TooManyDots(s.to_owned()));
                }
                jid.raw_agent =
                    parse_number(agent).ok_or_else(|| JidParseError::InvalidAgent(s.to_owned()))?;
                user
            }
            None => user_agent,
        };
        let user = if jid.is_interop() {
            match user.split_once('-') {
                Some((integrator, user)) => {
                    jid.integrator = parse_number(integrator)
                        .ok_or_else(|| JidParseError::InvalidIntegrator(s.to_owned()))?;
                    user
                }
                None => user,
            }
        } else {
            user
        };
        jid.user = user.to_owned();
        Ok(jid)
    }
}

/// Parses a plain decimal number (no sign, no spaces) that fits in `T`.
fn parse_number<T: FromStr>(text: &str) -> Option<T> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

impl TryFrom<&str> for Jid {
    type Error = JidParseError;

    fn try_from(value: &str) -> Result<Jid, JidParseError> {
        value.parse()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Parses `text`, checks the parts, and checks that displaying gives `display` back.
    fn check(text: &str, user: &str, server: &str, agent: u8, device: u16, display: &str) {
        let jid: Jid = text.parse().unwrap();
        assert_eq!(jid.user(), user, "{text}");
        assert_eq!(jid.server(), server, "{text}");
        assert_eq!(jid.raw_agent(), agent, "{text}");
        assert_eq!(jid.device(), device, "{text}");
        assert_eq!(jid.to_string(), display, "{text}");
        assert_eq!(display.parse::<Jid>().unwrap(), jid, "{display}");
    }

    #[test]
    fn string_forms_round_trip() {
        let s = "s.whatsapp.net";
        check(
            "15551234567@s.whatsapp.net",
            "15551234567",
            s,
            0,
            0,
            "15551234567@s.whatsapp.net",
        );
        check(
            "15551234567:3@s.whatsapp.net",
            "15551234567",
            s,
            0,
            3,
            "15551234567:3@s.whatsapp.net",
        );
        check(
            "15551234567:0@s.whatsapp.net",
            "15551234567",
            s,
            0,
            0,
            "15551234567@s.whatsapp.net",
        );
        check(
            "15551234567.5:2@s.whatsapp.net",
            "15551234567",
            s,
            5,
            2,
            "15551234567.5:2@s.whatsapp.net",
        );
        check(
            "123456789012345@lid",
            "123456789012345",
            "lid",
            0,
            0,
            "123456789012345@lid",
        );
        check(
            "123456789012345:5@lid",
            "123456789012345",
            "lid",
            0,
            5,
            "123456789012345:5@lid",
        );
        check("123-456@g.us", "123-456", "g.us", 0, 0, "123-456@g.us");
        check(
            "status@broadcast",
            "status",
            "broadcast",
            0,
            0,
            "status@broadcast",
        );
        check("@newsletter", "", "newsletter", 0, 0, "newsletter");
        check("s.whatsapp.net", "", s, 0, 0, "s.whatsapp.net");
        check(
            "120363012345678@newsletter",
            "120363012345678",
            "newsletter",
            0,
            0,
            "120363012345678@newsletter",
        );
        check(
            "4455:2@hosted.lid",
            "4455",
            "hosted.lid",
            0,
            2,
            "4455:2@hosted.lid",
        );
        check("4455:2@hosted", "4455", "hosted", 0, 2, "4455:2@hosted");
        check(
            "100012345678901:3@msgr",
            "100012345678901",
            "msgr",
            0,
            3,
            "100012345678901:3@msgr",
        );
        check(
            "867051314767696@bot",
            "867051314767696",
            "bot",
            0,
            0,
            "867051314767696@bot",
        );
        check("", "", "", 0, 0, "");
    }

    #[test]
    fn interop_keeps_integrator() {
        let jid: Jid = "5-5551234:1@interop".parse().unwrap();
        assert_eq!((jid.user(), jid.device(), jid.integrator()), ("5551234", 1, 5));
        assert_eq!(jid, Jid::interop("5551234", 1, 5));
        assert_eq!(jid.to_string(), "5-5551234:1@interop");
        let plain: Jid = "5551234:1@interop".parse().unwrap();
        assert_eq!(plain.integrator(), 0);
        assert_eq!(jid.to_non_ad(), Jid::interop("5551234", 0, 5));
    }

    #[test]
    fn malformed_strings_are_errors() {
        for bad in [
            "a@b@c",
            "1:2:3@s.whatsapp.net",
            "1.2.3@s.whatsapp.net",
            "1:x@s.whatsapp.net",
            "1:@s.whatsapp.net",
            "1:70000@s.whatsapp.net",
            "1.300:1@s.whatsapp.net",
            "1:-1@s.whatsapp.net",
            "x-1@interop",
        ] {
            assert!(bad.parse::<Jid>().is_err(), "{bad}");
        }
    }

    #[test]
    fn ad_constructor_maps_domains() {
        assert_eq!(
            Jid::new_ad("1", 0, 2),
            Jid::with_device("1", Jid::DEFAULT_USER_SERVER, 2)
        );
        assert_eq!(Jid::new_ad("1", 1, 2), Jid::with_device("1", Jid::LID_SERVER, 2));
        assert_eq!(
            Jid::new_ad("1", 0x80, 2),
            Jid::with_device("1", Jid::HOSTED_SERVER, 2)
        );
        assert_eq!(
            Jid::new_ad("1", 0x81, 2),
            Jid::with_device("1", Jid::HOSTED_LID_SERVER, 2)
        );
        let raw = Jid::new_ad("1", 5, 2);
        assert_eq!(
            (raw.server(), raw.raw_agent(), raw.actual_agent()),
            (Jid::DEFAULT_USER_SERVER, 5, 0)
        );
        assert_eq!(Jid::new_ad("1", 0x81, 2).actual_agent(), 0x81);
    }

    #[test]
    fn non_ad_and_signal_address() {
        let device: Jid = "15551234567:3@s.whatsapp.net".parse().unwrap();
        assert_eq!(device.to_non_ad().to_string(), "15551234567@s.whatsapp.net");
        assert_eq!(device.signal_address(), "15551234567:3");
        let lid: Jid = "123456789012345:5@lid".parse().unwrap();
        assert_eq!(lid.signal_address(), "123456789012345_1:5");
        assert_eq!(lid.signal_address_user(), "123456789012345_1");
        let hosted: Jid = "4455:2@hosted.lid".parse().unwrap();
        assert_eq!(hosted.signal_address(), "4455_129:2");
        assert!(device.is_ad() && !device.to_non_ad().is_ad());
    }

    #[test]
    fn predicates() {
        let parse = |s: &str| s.parse::<Jid>().unwrap();
        assert!(parse("123-456@g.us").is_group());
        assert!(parse("status@broadcast").is_status_broadcast());
        assert!(!parse("status@broadcast").is_broadcast_list());
        assert!(parse("12345@broadcast").is_broadcast_list());
        assert!(parse("1@newsletter").is_newsletter());
        assert!(parse("1@lid").is_lid() && parse("1@s.whatsapp.net").is_pn());
        assert!(parse("1:1@hosted").is_hosted() && parse("1:1@hosted.lid").is_hosted());
        assert!(parse("13135550002@s.whatsapp.net").is_bot());
        assert!(parse("13165550012@s.whatsapp.net").is_bot());
        assert!(!parse("13135550002:1@s.whatsapp.net").is_bot());
        assert!(!parse("131355500023@s.whatsapp.net").is_bot());
        assert!(parse("867051314767696@bot").is_bot());
        assert!(parse("s.whatsapp.net").is_server_only());
        assert!(Jid::default().is_empty());
        assert_eq!(parse("15551234567@s.whatsapp.net").user_int(), Some(15551234567));
        assert_eq!(Jid::status_broadcast().to_string(), "status@broadcast");
    }

    #[test]
    fn known_servers_are_not_allocated() {
        assert!(matches!(intern_server("lid"), Cow::Borrowed(_)));
        assert!(matches!(intern_server("example"), Cow::Owned(_)));
        assert_eq!(Jid::new("a", String::from("g.us")), Jid::new("a", "g.us"));
    }
}
