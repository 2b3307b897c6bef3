//! Calls: incoming call signalling as events, and declining a call (stanzas in `whatsapp_core::call`). This
//! client carries no call media.

use tracing::warn;
use whatsapp_binary::{Jid, Node};
use whatsapp_core::call::{CallKind, CallStanza, reject_stanza};
use whatsapp_store::Backend;

use crate::{Client, ClientError, Event, Shared};

impl<B: Backend> Client<B> {
    /// Declines the incoming call `call_id` from `caller` (the `call_creator` of its [`Event::CallOffer`]).
    pub async fn reject_call(&self, caller: &Jid, call_id: &str) -> Result<(), ClientError> {
        let own = self.shared.own_jid().await?;
        let id = format!("{:016X}", rand::random::<u64>());
        self.send_stanza(reject_stanza(&id, &own, caller, call_id)).await
    }
}

impl<B: Backend> Shared<B> {
    /// A `<call>` from the server (already acknowledged), as an event.
    pub(crate) fn on_call(&self, node: &Node) {
        let call = match CallStanza::parse(node) {
            Ok(call) => call,
            Err(error) => {
                warn!(%error, "malformed call stanza");
                return;
            }
        };
        let meta = call.meta;
        let event = match call.kind {
            CallKind::Offer { platform, version } => Event::CallOffer {
                call: meta,
                platform,
                version,
            },
            CallKind::Accept => Event::CallAccept { call: meta },
            CallKind::PreAccept => Event::CallPreAccept { call: meta },
            CallKind::Transport => Event::CallTransport { call: meta },
            CallKind::Terminate { reason } => Event::CallTerminate { call: meta, reason },
            CallKind::Reject => Event::CallReject { call: meta },
            CallKind::OfferNotice { .. } => Event::CallOther {
                call: meta,
                tag: "offer_notice".to_owned(),
            },
            CallKind::RelayLatency => Event::CallOther {
                call: meta,
                tag: "relaylatency".to_owned(),
            },
            CallKind::Other(tag) => Event::CallOther { call: meta, tag },
            // `CallKind` is non-exhaustive: a kind added later is reported by its place, not dropped.
            _ => Event::CallOther {
                call: meta,
                tag: String::new(),
            },
        };
        self.emit(event);
    }
}
