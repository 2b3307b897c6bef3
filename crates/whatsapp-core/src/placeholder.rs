//! Asking this account's phone for a message this device could not read: a placeholder resend (whatsmeow
//! `send.go` BuildUnavailableMessageRequest, `message.go` decryptMessages and handlePlaceholderResendResponse,
//! `retry.go` delayedRequestMessageFromPhone).
//!
//! Two cases lead here. The server delivers a `<message>` with `<unavailable type>` instead of `<enc>` (the
//! copy for this device was never made, for instance a view-once message): the phone is asked at once. Or a
//! copy does not decrypt: the sender is asked first (a retry receipt) and the phone only if the sender's copy
//! has not arrived after [`REQUEST_FROM_PHONE_DELAY`]. The phone answers with a peer message carrying the
//! message as a `WebMessageInfo`.
//!
//! [`PlaceholderRequests`] keeps the decision of what to emit deterministic: a message is emitted once, from
//! whichever of the sender's copy and the phone's answer comes first.

use std::collections::{HashMap, VecDeque};
use std::time::Duration;

use whatsapp_binary::Node;
use whatsapp_proto::ProtoMessage;
use whatsapp_proto::e2e::message::peer_data_operation_request_message::PlaceholderMessageResendRequest;
use whatsapp_proto::e2e::message::protocol_message::Type as ProtocolType;
use whatsapp_proto::e2e::message::{
    PeerDataOperationRequestMessage, PeerDataOperationRequestType, ProtocolMessage,
};
use whatsapp_proto::e2e::{Message, MessageKey};
use whatsapp_proto::history_sync::WebMessageInfo;

use crate::error::ResponseError;

/// How long a message that did not decrypt waits for the sender's copy before the phone is asked (whatsmeow
/// `RequestFromPhoneDelay`).
pub const REQUEST_FROM_PHONE_DELAY: Duration = Duration::from_secs(5);

/// How many messages [`PlaceholderRequests`] remembers; the oldest is forgotten first. A message forgotten
/// while its request is open is emitted when the phone answers, even if the sender's copy was emitted too: a
/// duplicate rather than a loss.
pub const TRACKED_PLACEHOLDERS: usize = 1024;

/// The `type` of a `<message>`'s `<unavailable>` child, when it has one and no `<enc>`: the server has no copy
/// of the message for this device.
pub fn unavailable(message: &Node) -> Option<String> {
    if message.child("enc").is_some() {
        return None;
    }
    let unavailable = message.child("unavailable")?;
    Some(
        unavailable
            .optional_str_attr("type")
            .unwrap_or_default()
            .to_owned(),
    )
}

/// The peer message asking the phone for the message `key` names.
pub fn resend_request(key: MessageKey) -> Message {
    Message {
        protocol_message: Some(Box::new(ProtocolMessage {
            r#type: Some(ProtocolType::PeerDataOperationRequestMessage as i32),
            peer_data_operation_request_message: Some(PeerDataOperationRequestMessage {
                peer_data_operation_request_type: Some(
                    PeerDataOperationRequestType::PlaceholderMessageResend as i32,
                ),
                placeholder_message_resend_request: vec![PlaceholderMessageResendRequest {
                    message_key: Some(key),
                }],
                ..Default::default()
            }),
            ..Default::default()
        })),
        ..Default::default()
    }
}

/// The phone's answer to placeholder resend requests.
#[derive(Debug)]
pub struct ResendResponse {
    /// The id of the request message it answers.
    pub request_id: String,
    /// Each message the phone sent, or why its item could not be read.
    pub messages: Vec<Result<WebMessageInfo, ResponseError>>,
}

/// Reads a placeholder resend answer out of a protocol message from this account's phone; `None` for any
/// other protocol message.
pub fn resend_response(protocol: &ProtocolMessage) -> Option<ResendResponse> {
    let response = protocol.peer_data_operation_request_response_message.as_ref()?;
    if response.peer_data_operation_request_type() != PeerDataOperationRequestType::PlaceholderMessageResend {
        return None;
    }
    let messages = response
        .peer_data_operation_result
        .iter()
        .map(|result| {
            let bytes = result
                .placeholder_message_resend_response
                .as_ref()
                .and_then(|r| r.web_message_info_bytes.as_deref())
                .ok_or(ResponseError::Missing("placeholderMessageResendResponse"))?;
            WebMessageInfo::decode(bytes).map_err(|_| ResponseError::Invalid("webMessageInfoBytes"))
        })
        .collect();
    Some(ResendResponse {
        request_id: response.stanza_id.clone().unwrap_or_default(),
        messages,
    })
}

/// Where one message stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Placeholder {
    /// It did not decrypt; the phone is asked if the sender's copy does not come first.
    Waiting,
    /// The phone was asked.
    Requested,
    /// It was emitted (from the sender's copy or the phone's answer).
    Emitted,
}

/// The messages this device asked (or will ask) its phone for, so that each is emitted once. Deterministic and
/// free of I/O: the caller sends the requests and runs the delay.
#[derive(Debug, Default)]
pub struct PlaceholderRequests {
    states: HashMap<String, Placeholder>,
    order: VecDeque<String>,
}

impl PlaceholderRequests {
    fn set(&mut self, id: &str, state: Placeholder) {
        if self.states.insert(id.to_owned(), state).is_none() {
            self.order.push_back(id.to_owned());
            if self.order.len() > TRACKED_PLACEHOLDERS
                && let Some(oldest) = self.order.pop_front()
            {
                self.states.remove(&oldest);
            }
        }
    }

    /// Message `id` did not decrypt. `true` the first time: the caller asks the phone after
    /// [`REQUEST_FROM_PHONE_DELAY`] through [`PlaceholderRequests::due`].
    pub fn failed(&mut self, id: &str) -> bool {
        if self.states.contains_key(id) {
            return false;
        }
        self.set(id, Placeholder::Waiting);
        true
    }

    /// The delay of a failed message `id` ran out: `true` when the phone should be asked now (the sender's copy
    /// has not been emitted meanwhile).
    pub fn due(&mut self, id: &str) -> bool {
        if self.states.get(id) != Some(&Placeholder::Waiting) {
            return false;
        }
        self.set(id, Placeholder::Requested);
        true
    }

    /// Message `id` arrived without a copy for this device: `true` when the phone should be asked at once
    /// (not asked for it already).
    pub fn unavailable(&mut self, id: &str) -> bool {
        match self.states.get(id) {
            Some(Placeholder::Requested | Placeholder::Emitted) => false,
            Some(Placeholder::Waiting) | None => {
                self.set(id, Placeholder::Requested);
                true
            }
        }
    }

    /// Message `id` decrypted from the sender's copy: `true` when it should be emitted (the phone's answer was
    /// not emitted first).
    pub fn decrypted(&mut self, id: &str) -> bool {
        match self.states.get(id) {
            None => true,
            Some(Placeholder::Emitted) => false,
            Some(Placeholder::Waiting | Placeholder::Requested) => {
                self.set(id, Placeholder::Emitted);
                true
            }
        }
    }

    /// The phone answered with message `id`: `true` when it should be emitted (the sender's copy was not
    /// emitted first).
    pub fn answered(&mut self, id: &str) -> bool {
        if self.states.get(id) == Some(&Placeholder::Emitted) {
            return false;
        }
        self.set(id, Placeholder::Emitted);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use whatsapp_proto::e2e::message::PeerDataOperationRequestResponseMessage;
    use whatsapp_proto::e2e::message::peer_data_operation_request_response_message::PeerDataOperationResult;
    use whatsapp_proto::e2e::message::peer_data_operation_request_response_message::peer_data_operation_result::PlaceholderMessageResendResponse;

    #[test]
    fn each_message_is_emitted_once_whichever_copy_comes_first() {
        let mut requests = PlaceholderRequests::default();
        // The sender's copy comes back after the retry: the phone is never asked.
        assert!(requests.failed("A"));
        assert!(!requests.failed("A"), "one request per message");
        assert!(requests.decrypted("A"));
        assert!(!requests.due("A"));
        // The phone answers first; the sender's late copy is not emitted again.
        assert!(requests.failed("B"));
        assert!(requests.due("B"));
        assert!(requests.answered("B"));
        assert!(!requests.decrypted("B"));
        assert!(!requests.answered("B"));
        // The sender's copy wins the race against an open request; the phone's answer is dropped.
        assert!(requests.failed("C"));
        assert!(requests.due("C"));
        assert!(requests.decrypted("C"));
        assert!(!requests.answered("C"));
        // Unavailable: asked at once, and only once.
        assert!(requests.unavailable("D"));
        assert!(!requests.unavailable("D"));
        assert!(requests.answered("D"));
        // A message never tracked decrypts and is emitted as usual.
        assert!(requests.decrypted("E"));
    }

    #[test]
    fn the_oldest_is_forgotten_first() {
        let mut requests = PlaceholderRequests::default();
        for n in 0..=TRACKED_PLACEHOLDERS {
            assert!(requests.failed(&n.to_string()));
        }
        assert_eq!(requests.states.len(), TRACKED_PLACEHOLDERS);
        assert!(requests.failed("0"), "forgotten, so tracked anew");
        assert!(
            !requests.failed("2"),
            "still tracked (tracking 0 again made 1 the oldest to go)"
        );
    }

    #[test]
    fn unavailable_needs_no_enc() {
        let stanza = Node::new("message").children([Node::new("unavailable").attr("type", "view_once")]);
        assert_eq!(unavailable(&stanza).as_deref(), Some("view_once"));
        let with_enc = Node::new("message").children([Node::new("unavailable"), Node::new("enc")]);
        assert_eq!(unavailable(&with_enc), None);
        assert_eq!(unavailable(&Node::new("message")), None);
    }

    #[test]
    fn the_request_and_the_answer_round_trip() {
        let key = MessageKey {
            remote_jid: Some("123@lid".to_owned()),
            from_me: Some(false),
            id: Some("3EB0AA".to_owned()),
            participant: None,
        };
        let request = resend_request(key.clone());
        let asked = request
            .protocol_message
            .unwrap()
            .peer_data_operation_request_message
            .unwrap();
        assert_eq!(
            asked.peer_data_operation_request_type(),
            PeerDataOperationRequestType::PlaceholderMessageResend
        );
        assert_eq!(
            asked.placeholder_message_resend_request[0].message_key,
            Some(key.clone())
        );

        let info = WebMessageInfo {
            key: key.clone(),
            message_timestamp: Some(7),
            ..Default::default()
        };
        let answer = |bytes: Option<Vec<u8>>| ProtocolMessage {
            r#type: Some(ProtocolType::PeerDataOperationRequestResponseMessage as i32),
            peer_data_operation_request_response_message: Some(PeerDataOperationRequestResponseMessage {
                peer_data_operation_request_type: Some(
                    PeerDataOperationRequestType::PlaceholderMessageResend as i32,
                ),
                stanza_id: Some("REQ".to_owned()),
                peer_data_operation_result: vec![PeerDataOperationResult {
                    placeholder_message_resend_response: Some(PlaceholderMessageResendResponse {
                        web_message_info_bytes: bytes,
                    }),
                    ..Default::default()
                }],
            }),
            ..Default::default()
        };
        let read = resend_response(&answer(Some(info.encode_to_vec()))).unwrap();
        assert_eq!(read.request_id, "REQ");
        assert_eq!(read.messages[0].as_ref().unwrap().key, key);
        // Garbage in an item is an error for that item, not a panic.
        let bad = resend_response(&answer(Some(vec![0xff, 0xff]))).unwrap();
        assert!(bad.messages[0].is_err());
        let empty = resend_response(&answer(None)).unwrap();
        assert!(empty.messages[0].is_err());
        assert!(resend_response(&ProtocolMessage::default()).is_none());
    }
}
