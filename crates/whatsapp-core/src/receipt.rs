//! Receipts: the delivery receipt a device sends for every message it handled, read and played receipts, and
//! reading the receipts others send (protocol-facts §3.7, whatsmeow `receipt.go`).

use whatsapp_binary::{Jid, Node};

use crate::error::ResponseError;

/// What a receipt says happened to the messages it names.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ReceiptKind {
    /// Delivered to a device whose user is active (no `type`).
    Delivered,
    /// Delivered to a device whose user is not active (`inactive`): the default of a companion.
    Inactive,
    /// Read (`read`).
    Read,
    /// Read, with read receipts turned off: only this account's devices learn it (`read-self`).
    ReadSelf,
    /// A voice message or video was played (`played`).
    Played,
    /// Played, for this account's devices only (`played-self`).
    PlayedSelf,
    /// Delivered to another device of the sending account (`sender`).
    Sender,
    /// The device could not decrypt and asks for the message again (`retry`).
    Retry,
    /// A peer message was delivered (`peer_msg`).
    PeerMessage,
    /// Anything else.
    Other(String),
}

impl ReceiptKind {
    /// The `type` attribute, `None` for [`ReceiptKind::Delivered`].
    pub fn as_attr(&self) -> Option<&str> {
        Some(match self {
            ReceiptKind::Delivered => return None,
            ReceiptKind::Inactive => "inactive",
            ReceiptKind::Read => "read",
            ReceiptKind::ReadSelf => "read-self",
            ReceiptKind::Played => "played",
            ReceiptKind::PlayedSelf => "played-self",
            ReceiptKind::Sender => "sender",
            ReceiptKind::Retry => "retry",
            ReceiptKind::PeerMessage => "peer_msg",
            ReceiptKind::Other(other) => other,
        })
    }

    fn from_attr(kind: Option<&str>) -> ReceiptKind {
        match kind {
            None | Some("") => ReceiptKind::Delivered,
            Some("inactive") => ReceiptKind::Inactive,
            Some("read") => ReceiptKind::Read,
            Some("read-self") => ReceiptKind::ReadSelf,
            Some("played") => ReceiptKind::Played,
            Some("played-self") => ReceiptKind::PlayedSelf,
            Some("sender") => ReceiptKind::Sender,
            Some("retry") => ReceiptKind::Retry,
            Some("peer_msg") => ReceiptKind::PeerMessage,
            Some(other) => ReceiptKind::Other(other.to_owned()),
        }
    }
}

/// The delivery receipt for a handled `<message>` (whatsmeow `receipt.go` sendMessageReceipt): to its sender,
/// naming its id; `sender` when another device of this account sent it (`peer_msg` for a stanza of type
/// `peer_msg`); otherwise plain while the user is `active` (this client said it is available) and `inactive`
/// while not.
pub fn delivery_receipt(message: &Node, from_own_device: bool, active: bool) -> Node {
    let receipt = answering(message);
    let kind = if from_own_device && message.optional_str_attr("type") == Some("peer_msg") {
        ReceiptKind::PeerMessage
    } else if from_own_device {
        ReceiptKind::Sender
    } else if active {
        ReceiptKind::Delivered
    } else {
        ReceiptKind::Inactive
    };
    match kind.as_attr() {
        Some(kind) => receipt.attr("type", kind.to_owned()),
        None => receipt,
    }
}

/// The receipt that confirms a handled peer message (`category="peer"`) from this account's phone: type
/// `peer_msg`, addressed to the account itself (`own` without its device), as whatsmeow `message.go`
/// SendProtocolMessageReceipt sends it.
pub fn peer_message_receipt(id: &str, own: &Jid) -> Node {
    Node::new("receipt")
        .attr("id", id.to_owned())
        .attr("type", "peer_msg")
        .attr("to", own.to_non_ad())
}

/// A `<receipt>` answering `message`: its id, addressed to its sender, with its recipient and participant.
pub(crate) fn answering(message: &Node) -> Node {
    let mut receipt = Node::new("receipt");
    for key in ["id", "from", "recipient", "participant"] {
        if let Some(value) = message.attr_value(key) {
            let key = if key == "from" { "to" } else { key };
            receipt = receipt.attr(key, value.clone());
        }
    }
    receipt
}

/// A read (or played) receipt for messages of `chat`; `sender` names the author in groups. The first id is the
/// receipt's `id`, the others are listed as `<list><item id/></list>`.
pub fn read_receipt(
    ids: &[String],
    chat: &Jid,
    sender: Option<&Jid>,
    kind: &ReceiptKind,
    unix_seconds: i64,
) -> Option<Node> {
    let (first, rest) = ids.split_first()?;
    let mut receipt = Node::new("receipt")
        .attr("id", first.clone())
        .attr("to", chat.clone())
        .attr("t", unix_seconds.to_string());
    if let Some(kind) = kind.as_attr() {
        receipt = receipt.attr("type", kind.to_owned());
    }
    if let Some(sender) = sender.filter(|_| !(chat.is_pn() || chat.is_lid())) {
        receipt = receipt.attr("participant", sender.to_non_ad());
    }
    if !rest.is_empty() {
        receipt =
            receipt
                .children([Node::new("list")
                    .children(rest.iter().map(|id| Node::new("item").attr("id", id.clone())))]);
    }
    Some(receipt)
}

/// A receipt someone sent for messages of ours.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Receipt {
    /// The chat the messages are in.
    pub chat: Jid,
    /// The device that sent the receipt.
    pub sender: Jid,
    /// What happened.
    pub kind: ReceiptKind,
    /// The messages, first the receipt's own id.
    pub ids: Vec<String>,
    /// When, unix seconds (0 when absent).
    pub timestamp: i64,
}

impl Receipt {
    /// Reads a `<receipt>` (not the grouped form of large groups).
    pub fn parse(node: &Node) -> Result<Receipt, ResponseError> {
        let from = node
            .jid_attr("from")
            .map_err(|_| ResponseError::Missing("from"))?;
        let id = node.str_attr("id").map_err(|_| ResponseError::Missing("id"))?;
        let (chat, sender) = match node.optional_jid_attr("participant").ok().flatten() {
            Some(participant) if from.is_group() || from.is_status_broadcast() => (from, participant),
            _ => (from.to_non_ad(), from),
        };
        let mut ids = vec![id.to_owned()];
        if let Some(list) = node.child("list") {
            ids.extend(
                list.children_by_tag("item")
                    .filter_map(|item| item.optional_str_attr("id"))
                    .map(str::to_owned),
            );
        }
        Ok(Receipt {
            chat,
            sender,
            kind: ReceiptKind::from_attr(node.optional_str_attr("type")),
            ids,
            timestamp: node.optional_i64_attr("t").ok().flatten().unwrap_or(0),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delivery_receipt_answers_the_message() {
        let alice = Jid::with_device("111", Jid::DEFAULT_USER_SERVER, 3);
        let message = Node::new("message")
            .attr("from", alice.clone())
            .attr("id", "M1")
            .attr("type", "text");
        let receipt = delivery_receipt(&message, false, false);
        assert_eq!(receipt.str_attr("id").unwrap(), "M1");
        assert_eq!(receipt.jid_attr("to").unwrap(), alice);
        assert_eq!(receipt.str_attr("type").unwrap(), "inactive");
        // While the user is active the receipt is plain, as the sender's apps show it.
        assert_eq!(delivery_receipt(&message, false, true).attr_value("type"), None);
        for active in [false, true] {
            assert_eq!(
                delivery_receipt(&message, true, active).str_attr("type").unwrap(),
                "sender"
            );
        }
        let peer = message.clone().attr("type", "peer_msg");
        assert_eq!(
            delivery_receipt(&peer, true, false).str_attr("type").unwrap(),
            "peer_msg"
        );
        let group = Jid::new("1-2", Jid::GROUP_SERVER);
        let in_group = Node::new("message")
            .attr("from", group.clone())
            .attr("participant", alice.clone())
            .attr("id", "M2");
        let receipt = delivery_receipt(&in_group, false, false);
        assert_eq!(receipt.jid_attr("to").unwrap(), group);
        assert_eq!(receipt.jid_attr("participant").unwrap(), alice);
    }

    #[test]
    fn read_receipts_list_extra_ids_and_round_trip() {
        let chat = Jid::new("111", Jid::DEFAULT_USER_SERVER);
        let ids = vec!["A".to_owned(), "B".to_owned(), "C".to_owned()];
        let sent = read_receipt(&ids, &chat, Some(&chat), &ReceiptKind::Read, 1_700_000_000).unwrap();
        assert!(
            sent.attr_value("participant").is_none(),
            "no participant in a direct chat"
        );
        // What the other side receives: the same stanza, from this device.
        let me = Jid::with_device("222", Jid::DEFAULT_USER_SERVER, 4);
        let mut received = sent.clone();
        received.attrs.remove("to");
        received.attrs.insert("from", me.clone());
        let parsed = Receipt::parse(&received).unwrap();
        assert_eq!(parsed.ids, ids);
        assert_eq!(parsed.kind, ReceiptKind::Read);
        assert_eq!(parsed.sender, me);
        assert_eq!(parsed.chat, me.to_non_ad());
        assert_eq!(parsed.timestamp, 1_700_000_000);
        assert!(read_receipt(&[], &chat, None, &ReceiptKind::Read, 0).is_none());
        let group = Jid::new("1-2", Jid::GROUP_SERVER);
        let in_group = read_receipt(&ids[..1], &group, Some(&me), &ReceiptKind::Played, 0).unwrap();
        assert_eq!(in_group.jid_attr("participant").unwrap(), me.to_non_ad());
        assert_eq!(in_group.str_attr("type").unwrap(), "played");
    }

    #[test]
    fn kinds_map_to_their_attributes() {
        for kind in [
            ReceiptKind::Inactive,
            ReceiptKind::Read,
            ReceiptKind::ReadSelf,
            ReceiptKind::Played,
            ReceiptKind::PlayedSelf,
            ReceiptKind::Sender,
            ReceiptKind::Retry,
            ReceiptKind::PeerMessage,
            ReceiptKind::Other("server-error".to_owned()),
        ] {
            assert_eq!(ReceiptKind::from_attr(kind.as_attr()), kind);
        }
        assert_eq!(ReceiptKind::from_attr(None), ReceiptKind::Delivered);
        assert!(Receipt::parse(&Node::new("receipt").attr("id", "x")).is_err());
    }
}
