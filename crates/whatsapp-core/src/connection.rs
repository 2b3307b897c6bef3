//! What arrives on a connection, sorted into what the driver does with it, and the small stanzas the driver sends
//! back (protocol-facts §3.3, §3.4).
//!
//! [`Incoming::classify`] looks at one decoded stanza and says which part of the engine handles it; it never
//! fails, because a stanza the engine does not know is not an error of the connection. The parsing that can fail
//! (a malformed `pair-success`, say) happens in the variant's own handler, so the error is reported where it is
//! understood.

use whatsapp_binary::{Jid, Node, Value};

use crate::PairError;
use crate::pair::{PairSuccess, pair_device_refs};
use crate::stream::{Disconnect, LoginSuccess, classify_failure, classify_stream_error};

/// One stanza from the server, by what the driver must do with it.
#[derive(Debug)]
#[non_exhaustive]
pub enum Incoming<'a> {
    /// `<iq type="result|error">`: the answer to one of our requests; hand it to the IQ tracker.
    IqResponse,
    /// `<iq><pair-device>`: the server's QR references for an unpaired device. Send `ack` first.
    PairDevice {
        /// The references, one QR code each.
        refs: Vec<Vec<u8>>,
        /// The `<iq type="result">` acknowledging the stanza.
        ack: Node,
    },
    /// `<iq><pair-success>`: the phone linked this device; check it with
    /// [`complete_pair_success`](crate::pair::complete_pair_success).
    PairSuccess(Result<PairSuccess, PairError>),
    /// `<notification type="link_code_companion_reg">`: the phone answered a pairing code; finish with
    /// [`CodePairing::finish`](crate::pair_code::CodePairing::finish) after sending `ack`.
    CodePairingHello {
        /// The notification, for `CodePairing::finish`.
        notification: &'a Node,
        /// The `<ack>` for the notification.
        ack: Node,
    },
    /// `<message>`: read it with [`IncomingMessage::parse`](crate::message::IncomingMessage::parse), decrypt,
    /// persist, then send `ack`.
    Message {
        /// The `<ack>` to send once the message's state is persisted.
        ack: Node,
    },
    /// `<receipt>`: a delivery, read or retry receipt for a message we sent; acknowledge it.
    Receipt {
        /// The `<ack>` to send.
        ack: Node,
    },
    /// `<ack>`: the server accepted a stanza we sent (its `id` names it).
    ServerAck,
    /// `<presence>`: a contact's presence; read it with
    /// [`PresenceUpdate::parse`](crate::presence::PresenceUpdate::parse). Not acknowledged.
    Presence,
    /// `<chatstate>`: a contact is typing or stopped; read it with
    /// [`ChatPresence::parse`](crate::presence::ChatPresence::parse). Not acknowledged.
    ChatState,
    /// `<call>`: call signalling; read it with [`CallStanza::parse`](crate::call::CallStanza::parse) and send
    /// `ack`.
    Call {
        /// The `<ack>` to send.
        ack: Node,
    },
    /// Any other `<notification>`: acknowledge it.
    Notification {
        /// The `<ack>` to send.
        ack: Node,
    },
    /// `<success>`: the login was accepted.
    LoginSuccess(LoginSuccess),
    /// `<failure>`: the login was refused.
    LoginFailure(Disconnect),
    /// `<stream:error>`: the server ends the stream.
    StreamError(Disconnect),
    /// `<iq type="get" xmlns="urn:xmpp:ping">`: the server checks that we are alive; send `reply`.
    ServerPing {
        /// The `<iq type="result">` to send.
        reply: Node,
    },
    /// Anything this engine does not handle yet.
    Unhandled,
}

impl<'a> Incoming<'a> {
    /// Sorts a stanza.
    pub fn classify(node: &'a Node) -> Incoming<'a> {
        match node.tag.as_ref() {
            "iq" => Self::classify_iq(node),
            "notification" => {
                let ack = ack(node);
                if node.optional_str_attr("type") == Some("link_code_companion_reg") {
                    Incoming::CodePairingHello {
                        notification: node,
                        ack,
                    }
                } else {
                    Incoming::Notification { ack }
                }
            }
            "message" => Incoming::Message { ack: ack(node) },
            "receipt" => Incoming::Receipt { ack: ack(node) },
            "ack" => Incoming::ServerAck,
            "presence" => Incoming::Presence,
            "chatstate" => Incoming::ChatState,
            "call" => Incoming::Call { ack: ack(node) },
            "success" => Incoming::LoginSuccess(LoginSuccess::parse(node)),
            "failure" => Incoming::LoginFailure(classify_failure(node)),
            "stream:error" => Incoming::StreamError(classify_stream_error(node)),
            _ => Incoming::Unhandled,
        }
    }

    fn classify_iq(node: &'a Node) -> Incoming<'a> {
        match node.optional_str_attr("type") {
            Some("result" | "error") => Incoming::IqResponse,
            Some("get") if node.optional_str_attr("xmlns") == Some("urn:xmpp:ping") => Incoming::ServerPing {
                reply: iq_result(node),
            },
            Some("set") if node.child("pair-device").is_some() => match pair_device_refs(node) {
                Ok(refs) => Incoming::PairDevice {
                    refs,
                    ack: iq_result(node),
                },
                Err(_) => Incoming::Unhandled,
            },
            Some("set") if node.child("pair-success").is_some() => {
                Incoming::PairSuccess(PairSuccess::parse(node))
            }
            _ => Incoming::Unhandled,
        }
    }
}

/// The empty `<iq type="result">` answering a server request: same id, addressed to the sender.
pub fn iq_result(request: &Node) -> Node {
    let mut reply = Node::new("iq").attr("type", "result");
    if let Some(id) = request.attr_value("id") {
        reply = reply.attr("id", id.clone());
    }
    reply.attr("to", reply_address(request))
}

/// The `<ack>` of a notification, receipt or message: the stanza's class (tag), id, sender, participant,
/// recipient and (except for messages) type, as the server expects them.
pub fn ack(node: &Node) -> Node {
    let mut ack = Node::new("ack").attr("class", node.tag.clone());
    if let Some(id) = node.attr_value("id") {
        ack = ack.attr("id", id.clone());
    }
    ack = ack.attr("to", reply_address(node));
    for key in ["participant", "recipient"] {
        if let Some(value) = node.attr_value(key) {
            ack = ack.attr(key, value.clone());
        }
    }
    if node.tag != "message"
        && let Some(kind) = node.attr_value("type")
    {
        ack = ack.attr("type", kind.clone());
    }
    ack
}

fn reply_address(node: &Node) -> Value {
    node.attr_value("from")
        .cloned()
        .unwrap_or_else(|| Value::from(crate::server_jid()))
}

/// `<iq xmlns="passive" type="set"><active/></iq>`: asks the server to start delivering, sent after `<success>`.
pub fn set_active() -> Node {
    Node::new("iq")
        .attr("xmlns", "passive")
        .attr("type", "set")
        .attr("to", crate::server_jid())
        .children([Node::new("active")])
}

/// The `<iq xmlns="md" type="set">` that carries pairing requests (`link_code_companion_reg` stages).
pub fn md_set(content: Node) -> Node {
    Node::new("iq")
        .attr("xmlns", "md")
        .attr("type", "set")
        .attr("to", crate::server_jid())
        .children([content])
}

/// The logout request: `<iq xmlns="md" type="set"><remove-companion-device jid=.. reason="user_initiated"/></iq>`.
pub fn remove_companion_device(device: &Jid) -> Node {
    md_set(
        Node::new("remove-companion-device")
            .attr("jid", device.clone())
            .attr("reason", "user_initiated"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server() -> Jid {
        crate::server_jid()
    }

    #[test]
    fn pair_device_is_acknowledged_with_its_id() {
        let node = Node::new("iq")
            .attr("from", server())
            .attr("type", "set")
            .attr("id", "42")
            .attr("xmlns", "md")
            .children([Node::new("pair-device").children([
                Node::new("ref").bytes(b"one".to_vec()),
                Node::new("ref").bytes(b"two".to_vec()),
            ])]);
        match Incoming::classify(&node) {
            Incoming::PairDevice { refs, ack } => {
                assert_eq!(refs, vec![b"one".to_vec(), b"two".to_vec()]);
                assert_eq!(ack.str_attr("id").unwrap(), "42");
                assert_eq!(ack.str_attr("type").unwrap(), "result");
                assert_eq!(ack.jid_attr("to").unwrap(), server());
            }
            other => panic!("expected PairDevice, got {other:?}"),
        }
    }

    #[test]
    fn notification_ack_keeps_type_and_participant() {
        let from = Jid::new("123-456", Jid::GROUP_SERVER);
        let participant = Jid::with_device("15551234567", Jid::DEFAULT_USER_SERVER, 2);
        let node = Node::new("notification")
            .attr("from", from.clone())
            .attr("id", "n1")
            .attr("type", "w:gp2")
            .attr("participant", participant.clone());
        let Incoming::Notification { ack } = Incoming::classify(&node) else {
            panic!("expected a notification");
        };
        assert_eq!(ack.str_attr("class").unwrap(), "notification");
        assert_eq!(ack.str_attr("id").unwrap(), "n1");
        assert_eq!(ack.jid_attr("to").unwrap(), from);
        assert_eq!(ack.jid_attr("participant").unwrap(), participant);
        assert_eq!(ack.str_attr("type").unwrap(), "w:gp2");
    }

    #[test]
    fn message_ack_has_no_type() {
        let node = Node::new("message")
            .attr("from", server())
            .attr("id", "m1")
            .attr("type", "text");
        let ack = ack(&node);
        assert_eq!(ack.str_attr("class").unwrap(), "message");
        assert!(ack.attr_value("type").is_none());
    }

    #[test]
    fn code_pairing_notification_is_recognised() {
        let node = Node::new("notification")
            .attr("from", server())
            .attr("id", "7")
            .attr("type", "link_code_companion_reg")
            .children([Node::new("link_code_companion_reg").attr("stage", "primary_hello")]);
        assert!(matches!(
            Incoming::classify(&node),
            Incoming::CodePairingHello { .. }
        ));
    }

    #[test]
    fn session_stanzas() {
        assert!(matches!(
            Incoming::classify(&Node::new("success").attr("t", "1")),
            Incoming::LoginSuccess(_)
        ));
        assert!(matches!(
            Incoming::classify(&Node::new("failure").attr("reason", "401")),
            Incoming::LoginFailure(Disconnect::LoggedOut { .. })
        ));
        assert!(matches!(
            Incoming::classify(&Node::new("stream:error").attr("code", "515")),
            Incoming::StreamError(Disconnect::Reconnect)
        ));
        let ping = Node::new("iq")
            .attr("type", "get")
            .attr("xmlns", "urn:xmpp:ping")
            .attr("id", "p")
            .attr("from", server());
        assert!(matches!(Incoming::classify(&ping), Incoming::ServerPing { .. }));
        let result = Node::new("iq").attr("type", "result").attr("id", "x");
        assert!(matches!(Incoming::classify(&result), Incoming::IqResponse));
        assert!(matches!(
            Incoming::classify(&Node::new("presence")),
            Incoming::Presence
        ));
        assert!(matches!(
            Incoming::classify(&Node::new("chatstate")),
            Incoming::ChatState
        ));
        assert!(matches!(
            Incoming::classify(&Node::new("ib")),
            Incoming::Unhandled
        ));
        assert!(matches!(
            Incoming::classify(&Node::new("message").attr("id", "m").attr("from", server())),
            Incoming::Message { .. }
        ));
        assert!(matches!(
            Incoming::classify(&Node::new("receipt").attr("id", "m").attr("from", server())),
            Incoming::Receipt { .. }
        ));
        assert!(matches!(
            Incoming::classify(&Node::new("ack").attr("id", "m")),
            Incoming::ServerAck
        ));
    }

    #[test]
    fn malformed_pair_success_is_reported_not_dropped() {
        let node = Node::new("iq")
            .attr("type", "set")
            .attr("id", "1")
            .children([Node::new("pair-success")]);
        assert!(matches!(
            Incoming::classify(&node),
            Incoming::PairSuccess(Err(PairError::MissingElement("device")))
        ));
    }

    #[test]
    fn logout_names_the_device() {
        let device = Jid::with_device("15551234567", Jid::DEFAULT_USER_SERVER, 3);
        let iq = remove_companion_device(&device);
        let remove = iq.child("remove-companion-device").unwrap();
        assert_eq!(remove.jid_attr("jid").unwrap(), device);
        assert_eq!(iq.str_attr("xmlns").unwrap(), "md");
    }
}
