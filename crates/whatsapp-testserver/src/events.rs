//! What the server reports to tests: one [`ServerEvent`] per thing that happened, delivered to every
//! [`ServerEvents`] subscriber in order.

use std::net::SocketAddr;

use tokio::sync::broadcast;
use whatsapp_binary::Jid;

/// How many events a slow subscriber may fall behind before it misses some (it is told in the log).
pub(crate) const EVENT_BUFFER: usize = 4096;

/// Something the server saw or did.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ServerEvent {
    /// A client completed the Noise handshake.
    Connected {
        /// The client's address.
        peer: SocketAddr,
    },
    /// A client's handshake failed (bad frames, bad keys, or it went away).
    HandshakeFailed {
        /// The client's address.
        peer: SocketAddr,
        /// What went wrong.
        error: String,
    },
    /// A registration payload failed a check; the client got `<failure reason="400"/>`.
    RegistrationRefused {
        /// The check that failed.
        reason: String,
    },
    /// An unpaired client was sent its QR references.
    PairDeviceSent {
        /// The references, in the order sent.
        refs: Vec<String>,
    },
    /// A client asked to pair with a phone-number code; the phone may now [`enter_code`](crate::Phone::enter_code).
    CodePairingStarted {
        /// The phone number.
        number: String,
        /// The server's reference for the attempt.
        pairing_ref: String,
    },
    /// A device countersigned its identity correctly and is now linked.
    PairSucceeded {
        /// The new device.
        device: Jid,
    },
    /// Pairing failed: the client refused the `pair-success` (its `<error code text>`), or the server refused the
    /// client's answer (code 401 with the failed check as text), or the code-pairing key bundle did not decrypt
    /// (code 400).
    PairRejected {
        /// The error code.
        code: u16,
        /// The error text.
        text: String,
    },
    /// A paired device logged in and got `<success>`.
    LoggedIn {
        /// The device.
        device: Jid,
    },
    /// A login was answered with `<failure reason=..>`.
    LoginRefused {
        /// The reason code sent.
        reason: u16,
    },
    /// A device asked to become active (`<iq xmlns="passive"><active/></iq>`).
    Activated {
        /// The device.
        device: Jid,
    },
    /// A device asked for a group's description (`<iq xmlns="w:g2" type="get"><query>`).
    GroupInfoQueried {
        /// The asking device.
        from: Jid,
        /// The group.
        group: Jid,
    },
    /// A device asked for users' device lists (a `usync` device query).
    DeviceListsQueried {
        /// The asking device.
        from: Jid,
        /// How many users the query listed.
        users: usize,
    },
    /// A device sent a message; a copy was queued for each addressed device.
    MessageRouted {
        /// The sending device.
        from: Jid,
        /// The message id.
        id: String,
        /// How many device copies were queued.
        copies: usize,
        /// How many pairwise-encrypted copies the stanza carried (for a group message: sender-key distributions).
        pairwise: usize,
        /// How many of those were `pkmsg`, each starting a new Signal session.
        prekey: usize,
    },
    /// A device sent a message whose id the server had routed before from the same account to the same chat
    /// (a repeat after a lost ack, or a retried send): it got the first ack again and nothing was queued.
    MessageDuplicate {
        /// The sending device.
        from: Jid,
        /// The message id.
        id: String,
    },
    /// A device sent a malformed message; it got an `<ack error="400">`.
    MessageRefused {
        /// The sending device.
        from: Jid,
        /// What was wrong.
        reason: String,
    },
    /// A device sent a receipt; a copy was queued for each device of the addressed account.
    ReceiptRouted {
        /// The sending device.
        from: Jid,
        /// The receipt's (first message's) id.
        id: String,
        /// The receipt type (`None` for a plain delivery receipt).
        kind: Option<String>,
        /// How many device copies were queued.
        copies: usize,
    },
    /// A device acknowledged its copy of a message or receipt; the copy left its inbox.
    Acked {
        /// The device.
        device: Jid,
        /// What was acknowledged: `message` or `receipt`.
        class: String,
        /// The stanza id.
        id: String,
    },
    /// A device's prekey upload passed the checks and was stored.
    PrekeysUploaded {
        /// The device.
        device: Jid,
        /// How many one-time prekeys the upload carried.
        count: usize,
    },
    /// A device's prekey upload failed a check and was answered with an IQ error.
    PrekeyUploadRefused {
        /// The device.
        device: Jid,
        /// The error code sent (400, or 406 for a bad signature).
        code: u16,
        /// The check that failed.
        reason: String,
    },
    /// A keepalive ping arrived (whether or not it was answered).
    Pinged {
        /// The device, if the connection is logged in.
        device: Option<Jid>,
    },
    /// A device logged itself out (`remove-companion-device`) and was unlinked.
    LoggedOut {
        /// The device.
        device: Jid,
    },
    /// The phone unlinked a device ([`Phone::remove_device`](crate::Phone::remove_device)).
    DeviceRemoved {
        /// The device.
        device: Jid,
    },
    /// A second login of a device replaced its older connection, which got `<conflict type="replaced"/>`.
    StreamReplaced {
        /// The device.
        device: Jid,
    },
    /// A client sent something the protocol does not allow (a frame that does not decode, an IQ without id);
    /// the server closed the connection.
    ProtocolViolation {
        /// The device, if the connection was logged in.
        device: Option<Jid>,
        /// What was wrong.
        reason: String,
    },
    /// A connection that completed the handshake ended, for whatever reason (refused, closed by either side,
    /// dropped).
    Disconnected {
        /// The device, if the connection was logged in.
        device: Option<Jid>,
    },
    /// An account went online or offline (`<presence type="available|unavailable">`); its subscribers' live
    /// devices were told.
    PresenceChanged {
        /// The account.
        account: Jid,
        /// Whether it is online now.
        available: bool,
    },
    /// A device subscribed to an account's presence and was sent its current presence.
    PresenceSubscribed {
        /// The subscribing device.
        subscriber: Jid,
        /// The account.
        target: Jid,
    },
    /// A device sent a chat state; it was forwarded to the chat's live devices.
    ChatStateRouted {
        /// The sending device.
        from: Jid,
        /// The chat.
        to: Jid,
        /// The state's tag (`composing`, `paused`).
        state: String,
        /// How many devices it was sent to (0 when the recipient blocked the sender).
        copies: usize,
    },
    /// A device declined a call.
    CallRejected {
        /// The device.
        device: Jid,
        /// The call id.
        call_id: String,
        /// The caller named in the rejection.
        call_creator: Jid,
    },
    /// A one-to-one message carried a privacy token (`<tctoken>`).
    PrivacyTokenAttached {
        /// The sending device.
        from: Jid,
        /// The message id.
        id: String,
        /// The token.
        token: Vec<u8>,
    },
    /// A one-to-one message carried a `<cstoken>` (sent when the sender knows no privacy token of the recipient).
    CsTokenAttached {
        /// The sending device.
        from: Jid,
        /// The message id.
        id: String,
        /// The token.
        token: Vec<u8>,
    },
    /// A device issued its account's privacy token to a contact (`<iq xmlns="privacy"><tokens>`); the contact's
    /// devices were sent a `privacy_token` notification.
    PrivacyTokenIssued {
        /// The issuing device.
        from: Jid,
        /// The contact, as the request named it.
        contact: Jid,
        /// The token's timestamp as requested, unix seconds.
        timestamp: i64,
    },
    /// A message was accepted and acknowledged but not delivered, because the recipient blocked the sender.
    MessageBlocked {
        /// The sending device.
        from: Jid,
        /// The message id.
        id: String,
    },
}

/// A subscription to the server's events, from the moment of [`TestServer::subscribe`](crate::TestServer::subscribe).
#[derive(Debug)]
pub struct ServerEvents {
    rx: broadcast::Receiver<ServerEvent>,
}

impl ServerEvents {
    pub(crate) fn new(rx: broadcast::Receiver<ServerEvent>) -> ServerEvents {
        ServerEvents { rx }
    }

    /// The next event; `None` once the server and all its phones are gone.
    pub async fn next(&mut self) -> Option<ServerEvent> {
        loop {
            match self.rx.recv().await {
                Ok(event) => return Some(event),
                Err(broadcast::error::RecvError::Lagged(missed)) => {
                    tracing::warn!(missed, "event subscriber fell behind; events were dropped");
                }
                Err(broadcast::error::RecvError::Closed) => return None,
            }
        }
    }

    /// Skips events until one matches `predicate` and returns it; `None` if the server is gone first. Wrap it in
    /// `tokio::time::timeout` in tests.
    pub async fn wait_for(&mut self, mut predicate: impl FnMut(&ServerEvent) -> bool) -> Option<ServerEvent> {
        while let Some(event) = self.next().await {
            if predicate(&event) {
                return Some(event);
            }
        }
        None
    }
}
