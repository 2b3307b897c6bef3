//! Voice and video call signalling: reading the `<call>` stanzas the server pushes (offer, accept, terminate...)
//! and building the rejection of an incoming call (whatsmeow `call.go`, `types/call.go`).
//!
//! This engine does not place or carry calls (no media, no relay); it tells the user a call is ringing, ended or
//! was answered elsewhere, and can decline it. Every `<call>` is acknowledged with
//! [`connection::ack`](crate::connection::ack).

use whatsapp_binary::{Jid, Node};

use crate::error::StanzaError;

/// What every call stanza says about its call.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CallMeta {
    /// Who sent the stanza (the caller's device for an offer).
    pub from: Jid,
    /// The server timestamp, unix seconds (0 when absent).
    pub timestamp: i64,
    /// Who started the call.
    pub call_creator: Jid,
    /// The call id.
    pub call_id: String,
    /// The group, for a group call.
    pub group: Option<Jid>,
}

/// What happened to the call.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum CallKind {
    /// Someone is calling (`<offer>`).
    Offer {
        /// The caller's platform (`platform` attribute), when given.
        platform: Option<String>,
        /// The caller's app version, when given.
        version: Option<String>,
    },
    /// A call offer seen as a notice only (`<offer_notice>`), for example on a device that cannot take calls.
    OfferNotice {
        /// `audio` or `video`, when given.
        media: Option<String>,
        /// The notice type, when given.
        kind: Option<String>,
    },
    /// The call was accepted (possibly on another device of this account).
    Accept,
    /// The callee's device is ringing (`<preaccept>`).
    PreAccept,
    /// Transport candidates (`<transport>`); the payload is not read.
    Transport,
    /// The call ended.
    Terminate {
        /// Why, when given.
        reason: Option<String>,
    },
    /// The call was declined.
    Reject,
    /// Relay latency measurements (`<relaylatency>`).
    RelayLatency,
    /// A call element this engine does not know, by tag.
    Other(String),
}

/// One `<call>` stanza, read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CallStanza {
    /// The call it is about.
    pub meta: CallMeta,
    /// What happened.
    pub kind: CallKind,
}

impl CallStanza {
    /// Reads `<call from t [platform version]><offer|accept|... call-id call-creator [group-jid]/></call>`. The
    /// stanza must have exactly one child, with a call id and creator.
    pub fn parse(node: &Node) -> Result<CallStanza, StanzaError> {
        if node.tag != "call" {
            return Err(StanzaError::Invalid("call tag"));
        }
        let [child] = node.child_nodes() else {
            return Err(StanzaError::Invalid("number of call children"));
        };
        let meta = CallMeta {
            from: node.jid_attr("from")?,
            timestamp: node.optional_i64_attr("t")?.unwrap_or(0),
            call_creator: child.jid_attr("call-creator")?,
            call_id: child.str_attr("call-id")?.to_owned(),
            group: child.optional_jid_attr("group-jid")?,
        };
        let text = |node: &Node, key: &str| node.optional_str_attr(key).map(str::to_owned);
        let kind = match child.tag.as_ref() {
            "offer" => CallKind::Offer {
                platform: text(node, "platform"),
                version: text(node, "version"),
            },
            "offer_notice" => CallKind::OfferNotice {
                media: text(child, "media"),
                kind: text(child, "type"),
            },
            "accept" => CallKind::Accept,
            "preaccept" => CallKind::PreAccept,
            "transport" => CallKind::Transport,
            "terminate" => CallKind::Terminate {
                reason: text(child, "reason"),
            },
            "reject" => CallKind::Reject,
            "relaylatency" => CallKind::RelayLatency,
            other => CallKind::Other(other.to_owned()),
        };
        Ok(CallStanza { meta, kind })
    }
}

/// `<call id from=own to=caller><reject call-id call-creator=caller count="0"/></call>`: declines an incoming
/// call (whatsmeow `RejectCall`). `id` is a fresh stanza id; JIDs lose their device part.
pub fn reject_stanza(id: &str, own: &Jid, caller: &Jid, call_id: &str) -> Node {
    Node::new("call")
        .attr("id", id.to_owned())
        .attr("from", own.to_non_ad())
        .attr("to", caller.to_non_ad())
        .children([Node::new("reject")
            .attr("call-id", call_id.to_owned())
            .attr("call-creator", caller.to_non_ad())
            .attr("count", "0")])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn caller() -> Jid {
        Jid::with_device("15551234567", Jid::DEFAULT_USER_SERVER, 0)
    }

    fn call(child: Node) -> Node {
        Node::new("call")
            .attr("from", caller())
            .attr("id", "c1")
            .attr("t", "1700000000")
            .attr("platform", "android")
            .attr("version", "2.24.1")
            .children([child.attr("call-id", "CALL1").attr("call-creator", caller())])
    }

    #[test]
    fn offer_and_terminate() {
        let offer = CallStanza::parse(&call(Node::new("offer"))).unwrap();
        assert_eq!(offer.meta.call_id, "CALL1");
        assert_eq!(offer.meta.call_creator, caller());
        assert_eq!(offer.meta.timestamp, 1_700_000_000);
        assert_eq!(
            offer.kind,
            CallKind::Offer {
                platform: Some("android".into()),
                version: Some("2.24.1".into())
            }
        );
        let end = CallStanza::parse(&call(Node::new("terminate").attr("reason", "timeout"))).unwrap();
        assert_eq!(
            end.kind,
            CallKind::Terminate {
                reason: Some("timeout".into())
            }
        );
        assert_eq!(
            CallStanza::parse(&call(Node::new("hologram"))).unwrap().kind,
            CallKind::Other("hologram".into())
        );
    }

    #[test]
    fn malformed_calls_are_errors() {
        assert!(CallStanza::parse(&Node::new("call").attr("from", caller())).is_err());
        let no_id = Node::new("call")
            .attr("from", caller())
            .children([Node::new("offer").attr("call-creator", caller())]);
        assert!(matches!(CallStanza::parse(&no_id), Err(StanzaError::Attr(_))));
        let bad_time = call(Node::new("offer")).attr("t", "noon");
        assert!(CallStanza::parse(&bad_time).is_err());
    }

    #[test]
    fn reject_names_the_call_without_devices() {
        let own = Jid::with_device("15557654321", Jid::DEFAULT_USER_SERVER, 2);
        let caller = Jid::with_device("15551234567", Jid::DEFAULT_USER_SERVER, 5);
        let node = reject_stanza("r1", &own, &caller, "CALL1");
        assert_eq!(node.jid_attr("from").unwrap(), own.to_non_ad());
        assert_eq!(node.jid_attr("to").unwrap(), caller.to_non_ad());
        let reject = node.child("reject").unwrap();
        assert_eq!(reject.str_attr("call-id").unwrap(), "CALL1");
        assert_eq!(reject.jid_attr("call-creator").unwrap(), caller.to_non_ad());
    }
}
