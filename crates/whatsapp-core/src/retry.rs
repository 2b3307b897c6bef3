//! Retry receipts: asking a sender to encrypt a message again when it did not decrypt, and answering such
//! requests (protocol-facts §3.7, whatsmeow `retry.go`).
//!
//! The receiver sends `<receipt type="retry"><retry count id t v="1"/><registration/>` and, from the second
//! attempt on, `<keys>` with a fresh prekey so the sender can start a new session. The sender looks the message up
//! among the ones it sent recently and sends it again to that device alone, with `count` on the `<enc>`.

use whatsapp_binary::{Jid, Node};
use whatsapp_signal::PreKeyBundle;

use crate::compose::EditKind;
use crate::error::ResponseError;
use crate::message::{Encrypted, StanzaAttrs};

/// No retry receipt is sent once a message's counter reaches this (at most 4 per message).
pub const MAX_RETRY_RECEIPTS: u32 = 5;

/// Requests for the same message from the same device beyond this many are dropped.
pub const MAX_RETRIES_ANSWERED: u32 = 10;

/// How many sent messages a client keeps to answer retry receipts.
pub const RECENT_MESSAGES: usize = 256;

/// This device's keys, attached to a retry receipt so the sender can start a new session.
#[derive(Clone, Debug)]
pub struct RetryKeys<'a> {
    /// The identity public key.
    pub identity: &'a [u8; 32],
    /// A fresh one-time prekey: id and public key.
    pub prekey: (u32, [u8; 32]),
    /// The signed prekey: id, public key and signature.
    pub signed_prekey: (u32, [u8; 32], [u8; 64]),
    /// The signed device identity (the `Account`), so the sender can check this device.
    pub device_identity: &'a [u8],
}

fn key_node(tag: &'static str, id: u32, public: &[u8; 32]) -> Node {
    Node::new(tag).children([
        Node::new("id").bytes(id.to_be_bytes()[1..].to_vec()),
        Node::new("value").bytes(public.to_vec()),
    ])
}

/// The retry receipt for a `<message>` that did not decrypt; `count` is this device's attempt number for it.
/// A `peer_msg` from another device of this account (`from_own_account`) is asked again with
/// `category="peer"` (whatsmeow `retry.go` sendRetryReceipt).
pub fn retry_receipt(
    message: &Node,
    from_own_account: bool,
    count: u32,
    registration_id: u32,
    keys: Option<&RetryKeys<'_>>,
) -> Node {
    let receipt = crate::receipt::answering(message);
    let mut retry = Node::new("retry").attr("count", count.to_string());
    if let Some(id) = message.attr_value("id") {
        retry = retry.attr("id", id.clone());
    }
    if let Some(t) = message.attr_value("t") {
        retry = retry.attr("t", t.clone());
    }
    let mut children = vec![
        retry.attr("v", "1"),
        Node::new("registration").bytes(registration_id.to_be_bytes().to_vec()),
    ];
    if let Some(keys) = keys {
        let (signed_id, signed_public, signature) = &keys.signed_prekey;
        let skey = Node::new("skey").children([
            Node::new("id").bytes(signed_id.to_be_bytes()[1..].to_vec()),
            Node::new("value").bytes(signed_public.to_vec()),
            Node::new("signature").bytes(signature.to_vec()),
        ]);
        children.push(Node::new("keys").children([
            Node::new("type").bytes(vec![crate::payload::DJB_KEY_TYPE]),
            Node::new("identity").bytes(keys.identity.to_vec()),
            key_node("key", keys.prekey.0, &keys.prekey.1),
            skey,
            Node::new("device-identity").bytes(keys.device_identity.to_vec()),
        ]));
    }
    let receipt = receipt.attr("type", "retry");
    let receipt = if from_own_account && message.optional_str_attr("type") == Some("peer_msg") {
        receipt.attr("category", "peer")
    } else {
        receipt
    };
    receipt.children(children)
}

/// A retry receipt someone sent for a message of ours.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RetryRequest {
    /// The message id.
    pub id: String,
    /// The device that could not decrypt.
    pub device: Jid,
    /// The chat (the device's user for a direct chat, the group otherwise).
    pub chat: Jid,
    /// The device's attempt number.
    pub count: u32,
    /// The keys for a new session, when the receipt carries them.
    pub bundle: Option<PreKeyBundle>,
    /// The receipt's `recipient`: the chat, when another device of this account asks for a one-to-one message
    /// it did not decrypt. The resend carries it again.
    pub recipient: Option<Jid>,
    /// The receipt's `edit` attribute, carried again by the resend.
    pub edit: Option<String>,
    /// The message's own timestamp from the `<retry t>`, kept by the resend (unix seconds).
    pub timestamp: Option<i64>,
}

impl RetryRequest {
    /// Reads a `<receipt type="retry">`.
    pub fn parse(receipt: &Node) -> Result<RetryRequest, ResponseError> {
        let from = receipt
            .jid_attr("from")
            .map_err(|_| ResponseError::Missing("from"))?;
        let retry = receipt.child("retry").ok_or(ResponseError::Missing("retry"))?;
        let id = receipt
            .str_attr("id")
            .or_else(|_| retry.str_attr("id"))
            .map_err(|_| ResponseError::Missing("id"))?
            .to_owned();
        let count = retry
            .optional_str_attr("count")
            .and_then(|c| c.parse().ok())
            .ok_or(ResponseError::Invalid("retry count"))?;
        let (chat, device) = match receipt.optional_jid_attr("participant").ok().flatten() {
            Some(participant) if from.is_group() => (from, participant),
            _ => (from.to_non_ad(), from),
        };
        let bundle = match receipt.child("keys") {
            Some(_) => Some(crate::prekeys::parse_bundle(receipt)?),
            None => None,
        };
        Ok(RetryRequest {
            id,
            device,
            chat,
            count,
            bundle,
            recipient: receipt.optional_jid_attr("recipient").ok().flatten(),
            edit: receipt.optional_str_attr("edit").map(str::to_owned),
            timestamp: retry.optional_i64_attr("t").ok().flatten(),
        })
    }
}

/// The message sent again to one device, as whatsmeow `retry.go` handleRetryReceipt builds it:
/// `<message to=device id type t device_fanout="false"><enc count=N/>` with the message's `type`, its
/// `mediatype` on the `<enc>`, the receipt's `recipient` and `edit`, the `t` of the retry request (the
/// message's own time; `unix_seconds` when the request had none), and the device identity when the copy is a
/// `pkmsg`. In a group the copy goes to the group with the device as `participant`.
pub fn resend_stanza(
    request: &RetryRequest,
    attrs: &StanzaAttrs,
    unix_seconds: i64,
    copy: &Encrypted,
    device_identity: &[u8],
) -> Node {
    let mut stanza = if request.chat.is_group() {
        Node::new("message")
            .attr("to", request.chat.clone())
            .attr("participant", request.device.clone())
    } else {
        Node::new("message").attr("to", request.device.clone())
    }
    .attr("id", request.id.clone())
    .attr("t", request.timestamp.unwrap_or(unix_seconds).to_string());
    if !request.chat.is_group() {
        stanza = stanza.attr("device_fanout", "false");
    }
    if let Some(recipient) = &request.recipient {
        stanza = stanza.attr("recipient", recipient.clone());
    }
    let attrs = StanzaAttrs {
        edit: request.edit.as_deref().and_then(EditKind::from_attr),
        ..attrs.clone()
    };
    let enc = attrs
        .resent(&copy.message)
        .attr("count", request.count.to_string());
    let mut children = vec![enc];
    if copy.message.kind() == "pkmsg" {
        children.push(Node::new("device-identity").bytes(device_identity.to_vec()));
    }
    attrs.stanza(stanza, children)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_receipt_round_trips_with_keys() {
        let alice = Jid::with_device("111", Jid::DEFAULT_USER_SERVER, 3);
        let message = Node::new("message")
            .attr("from", alice.clone())
            .attr("id", "M1")
            .attr("t", "1700000000");
        let plain = retry_receipt(&message, false, 1, 0x0102_0304, None);
        assert_eq!(plain.str_attr("type").unwrap(), "retry");
        assert_eq!(plain.jid_attr("to").unwrap(), alice);
        assert!(plain.child("keys").is_none());
        assert_eq!(plain.optional_str_attr("category"), None);
        // A peer message from this account's own device is asked again as one.
        let peer = message.clone().attr("type", "peer_msg");
        let asked = retry_receipt(&peer, true, 1, 0x0102_0304, None);
        assert_eq!(asked.optional_str_attr("category"), Some("peer"));
        let not_own = retry_receipt(&peer, false, 1, 0x0102_0304, None);
        assert_eq!(not_own.optional_str_attr("category"), None);

        let keys = RetryKeys {
            identity: &[7; 32],
            prekey: (0x00AB_CDEF, [8; 32]),
            signed_prekey: (1, [9; 32], [10; 64]),
            device_identity: b"account",
        };
        let with_keys = retry_receipt(&message, false, 2, 0x0102_0304, Some(&keys));
        // What the sender receives: the same stanza, from the device that failed.
        let bob = Jid::with_device("222", Jid::DEFAULT_USER_SERVER, 5);
        let mut received = with_keys.clone();
        received.attrs.remove("to");
        received.attrs.insert("from", bob.clone());
        let request = RetryRequest::parse(&received).unwrap();
        assert_eq!(request.id, "M1");
        assert_eq!(request.device, bob);
        assert_eq!(request.chat, bob.to_non_ad());
        assert_eq!(request.count, 2);
        let bundle = request.bundle.unwrap();
        assert_eq!(bundle.registration_id, 0x0102_0304);
        assert_eq!(bundle.identity_key.as_bytes(), &[7; 32]);
        assert_eq!(bundle.pre_key.unwrap().0, 0x00AB_CDEF);
        assert_eq!(bundle.signed_pre_key_signature, vec![10; 64]);

        received.attrs.remove("id");
        assert_eq!(
            RetryRequest::parse(&received).unwrap().id,
            "M1",
            "the id also sits in <retry>"
        );
        let without_retry = Node::new("receipt")
            .attr("from", bob)
            .attr("id", "x")
            .attr("type", "retry");
        assert_eq!(
            RetryRequest::parse(&without_retry),
            Err(ResponseError::Missing("retry"))
        );
    }
}
