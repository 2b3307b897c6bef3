//! The connection task: one tokio task per connected client owns the socket and the engine state, reads stanzas,
//! runs the timers (IQ deadlines, keepalive, QR rotation, lease renewal), and reconnects after a drop.
//!
//! Everything happens in one `select!` loop, so the state needs no locks: the socket's receive future is
//! cancel-safe (a frame is either fully buffered or not taken), and sends run to completion inside the handlers.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant as TokioInstant;
use tracing::{debug, info, warn};
use whatsapp_binary::{Jid, Node, decode_frame, encode_frame};
use whatsapp_core::PairError;
use whatsapp_core::connection::{Incoming, md_set, set_active};
use whatsapp_core::delivery::{PayloadHash, Redelivery};
use whatsapp_core::device::{generate_prekeys, key_pair, prekey_upload_for, registration_keys};
use whatsapp_core::group;
use whatsapp_core::group_notification::GROUP_NOTIFICATION_TYPE;
use whatsapp_core::iq::{Instant, IqOutcome, IqTracker};
use whatsapp_core::message::{self, EncKind, IncomingMessage, payload_hash};
use whatsapp_core::pair::{PairClientType, PairSuccess, complete_pair_success, pair_error_reply, qr_code};
use whatsapp_core::pair_code::{CodePairing, phone_jid};
use whatsapp_core::policy::{
    Keepalive, KeepaliveEvent, parse_prekey_count, prekey_count_query, prekeys_to_upload,
};
use whatsapp_core::receipt::{Receipt, ReceiptKind, delivery_receipt, peer_message_receipt};
use whatsapp_core::retry::{MAX_RETRY_RECEIPTS, RetryKeys, retry_receipt};
use whatsapp_core::signal_store::StagedSignalStore;
use whatsapp_core::stream::{Disconnect, LoginSuccess, reconnect_delay};
use whatsapp_noise::{ClientParams, NoiseSocket, PrivateKey, Stream};
use whatsapp_proto::ProtoMessage;
use whatsapp_proto::e2e::Message;
use whatsapp_proto::e2e::message::protocol_message::Type as ProtocolType;
use whatsapp_store::{
    AccountStore, AppStateKeyStore, Backend, BufferedEvent, Device, EventBufferStore, IdentityStore, Lease,
    PreKeyStore,
};

use crate::{ClientError, Event, HANDSHAKE_TIMEOUT, MessageInfo, Shared, unix_now};

/// The first QR code is shown this long, the others [`QR_TIMEOUT`] (protocol-facts §3.4).
const FIRST_QR_TIMEOUT: Duration = Duration::from_secs(60);
/// How long each QR code after the first is shown.
const QR_TIMEOUT: Duration = Duration::from_secs(20);
/// How long a handled message's hash is kept for de-duplication: the server keeps undelivered messages 14 days
/// (protocol-facts §2, `DeleteOldBufferedHashes`), so nothing older can be redelivered.
const DECRYPT_BUFFER_TTL: Duration = Duration::from_secs(14 * 24 * 3600);
/// How often a long-lived connection prunes the decrypt buffer (whatsmeow: every 12 hours).
const DECRYPT_BUFFER_PRUNE_INTERVAL: Duration = Duration::from_secs(12 * 3600);
/// How many handled messages may wait for their plaintext to be cleared from the decrypt buffer before one write
/// clears them all. Clearing normally rides along with the next decryption's transaction or happens when the
/// connection goes idle; this bounds the list when many messages are handled without a decryption of their own
/// (from the buffer). Their acks went out when they were handled, so a crash before the clearing emits none of
/// them again.
const HANDLED_FLUSH_AT: usize = 64;

/// What the handles ask of the connection task.
pub(crate) enum Command {
    Iq {
        node: Node,
        reply: oneshot::Sender<Result<Node, ClientError>>,
    },
    PairPhone {
        phone: String,
        reply: oneshot::Sender<Result<String, ClientError>>,
    },
    Disconnect {
        done: oneshot::Sender<()>,
    },
    /// Sends a stanza that gets no answer (presence, chat state, call rejection).
    Send {
        node: Node,
        reply: oneshot::Sender<Result<(), ClientError>>,
    },
    /// Sends a stanza and answers with the server's `<ack>` of its id.
    SendNode {
        node: Node,
        reply: oneshot::Sender<Result<Node, ClientError>>,
    },
}

/// A connection that finished its handshake, with the device it was opened for.
pub(crate) struct Opened {
    socket: NoiseSocket<Stream>,
    device: Device,
    lease: Lease,
}

/// Takes the account's lease and opens a connection: login payload for a paired device, registration payload
/// for a new one.
pub(crate) async fn open<B: Backend>(shared: &Shared<B>) -> Result<Opened, ClientError> {
    let now = unix_now();
    let lease = shared
        .backend
        .acquire_lease(
            shared.account.id(),
            &shared.owner,
            now.as_millis() as i64,
            shared.config.lease_ttl.as_millis() as i64,
        )
        .await?;
    match handshake(shared, now).await {
        Ok((socket, device)) => Ok(Opened {
            socket,
            device,
            lease,
        }),
        Err(error) => {
            let _ = shared.backend.release_lease(&lease).await;
            Err(error)
        }
    }
}

async fn handshake<B: Backend>(
    shared: &Shared<B>,
    now: Duration,
) -> Result<(NoiseSocket<Stream>, Device), ClientError> {
    let device = shared.account.device().await?;
    let identity = &shared.config.identity;
    let payload = match device
        .jid
        .as_ref()
        .and_then(|jid| Some((jid.user_int()?, jid.device())))
    {
        Some((user, device_id)) => identity.login_payload(user, device_id),
        None => identity.registration_payload(&registration_keys(&device)),
    };
    let noise_key = key_pair(&device.noise_key);
    let params = ClientParams {
        noise_key: &noise_key,
        client_payload: &payload.encode_to_vec(),
        trust_root: shared.config.trust_root,
        now: now.as_secs(),
        ephemeral: PrivateKey::generate(&mut rand::rngs::OsRng),
        user_agent: None,
    };
    let connection = tokio::time::timeout(
        HANDSHAKE_TIMEOUT,
        whatsapp_noise::connect(&shared.config.url, params),
    )
    .await
    .map_err(|_| ClientError::HandshakeTimeout(HANDSHAKE_TIMEOUT))??;
    debug!(paired = device.jid.is_some(), "handshake complete");
    Ok((connection.socket, device))
}

/// Why a connection ended.
enum End {
    /// The user disconnected, or every handle is gone.
    Stopped,
    /// The QR codes ran out.
    QrTimeout,
    /// The socket closed or failed, or a frame did not decode.
    Lost,
    /// Keepalive pings failed for too long.
    KeepaliveDead,
    /// The server ended or refused the stream.
    Server(Disconnect),
    /// The lease on the account could not be renewed: another process owns the account now.
    LeaseLost,
}

impl From<whatsapp_noise::SocketError> for End {
    fn from(error: whatsapp_noise::SocketError) -> Self {
        debug!(%error, "send failed");
        End::Lost
    }
}

/// Runs connections until the client stops: the first one is `opened`, later ones are reconnects.
///
/// The event that ends the client (logged out, replaced...) is sent after the command channel is closed, so a
/// handle that sees the event can `connect` again at once.
pub(crate) async fn run<B: Backend>(
    shared: Arc<Shared<B>>,
    opened: Opened,
    commands: mpsc::Receiver<Command>,
) {
    if let Some(event) = run_connections(&shared, opened, commands).await {
        shared.emit(event);
    }
}

async fn run_connections<B: Backend>(
    shared: &Arc<Shared<B>>,
    opened: Opened,
    mut commands: mpsc::Receiver<Command>,
) -> Option<Event> {
    let mut rng = StdRng::from_entropy();
    let mut attempt = 0u32;
    let mut opened = opened;
    loop {
        let lease = opened.lease.clone();
        let mut session = Session::new(shared, opened, &mut rng);
        let end = session.run(&mut commands).await;
        let reached_login = session.reached_login;
        let lease = session.lease.unwrap_or(lease);
        shared.logged_in.store(false, Ordering::Release);
        if reached_login {
            attempt = 0;
        }
        let immediate = match end {
            End::Stopped => {
                release(shared, &lease).await;
                return None;
            }
            End::QrTimeout => {
                release(shared, &lease).await;
                return Some(Event::QrTimeout);
            }
            End::LeaseLost => return Some(Event::LeaseLost),
            End::Lost | End::KeepaliveDead => {
                shared.emit(Event::Disconnected);
                false
            }
            End::Server(disconnect) => match disconnect {
                Disconnect::Reconnect => true,
                Disconnect::ReconnectWithBackoff { code } => {
                    debug!(code, "server asked to reconnect later");
                    shared.emit(Event::Disconnected);
                    false
                }
                Disconnect::Unknown { code, node } => {
                    shared.emit(Event::StreamError { code, node });
                    false
                }
                stop => return Some(stopped_by_server(shared, &lease, stop).await),
            },
        };
        if !immediate && !shared.config.auto_reconnect {
            release(shared, &lease).await;
            return None;
        }
        match reconnect(shared, &mut commands, &mut attempt, immediate, &mut rng).await {
            Some(next) => opened = next,
            None => {
                release(shared, &lease).await;
                return None;
            }
        }
    }
}

async fn release<B: Backend>(shared: &Shared<B>, lease: &Lease) {
    if let Err(error) = shared.backend.release_lease(lease).await {
        warn!(%error, "could not release the account lease");
    }
}

/// The server ended the stream for good: delete the account if it was logged out, and say what to report.
async fn stopped_by_server<B: Backend>(shared: &Shared<B>, lease: &Lease, disconnect: Disconnect) -> Event {
    let event = match disconnect {
        Disconnect::LoggedOut { code, on_connect } => {
            info!(
                code,
                on_connect, "logged out by the server; deleting the account's store"
            );
            if !shared.logged_out.swap(true, Ordering::AcqRel)
                && let Err(error) = shared.backend.delete_account(shared.account.id()).await
            {
                warn!(%error, "could not delete the logged-out account");
            }
            Event::LoggedOut { on_connect, code }
        }
        Disconnect::StreamReplaced => Event::StreamReplaced,
        Disconnect::TemporaryBan { reason, expire } => Event::TemporaryBan { reason, expire },
        Disconnect::ClientOutdated => Event::ClientOutdated,
        other => {
            warn!(?other, "unexpected end of stream");
            Event::Disconnected
        }
    };
    if !shared.logged_out.load(Ordering::Acquire) {
        release(shared, lease).await;
    }
    event
}

/// Waits out the backoff and reconnects until it works; `None` if the user disconnected meanwhile.
async fn reconnect<B: Backend>(
    shared: &Shared<B>,
    commands: &mut mpsc::Receiver<Command>,
    attempt: &mut u32,
    immediate: bool,
    rng: &mut StdRng,
) -> Option<Opened> {
    let mut first = immediate;
    loop {
        let delay = if first {
            Duration::ZERO
        } else {
            reconnect_delay(*attempt, rng.r#gen::<f64>())
        };
        first = false;
        *attempt += 1;
        debug!(?delay, attempt = *attempt, "reconnecting");
        let wake = tokio::time::sleep(delay);
        tokio::pin!(wake);
        loop {
            tokio::select! {
                () = &mut wake => break,
                command = commands.recv() => match command {
                    None => return None,
                    Some(Command::Disconnect { done }) => {
                        let _ = done.send(());
                        return None;
                    }
                    Some(other) => refuse(other),
                },
            }
        }
        match open(shared).await {
            Ok(opened) => return Some(opened),
            Err(ClientError::Store(error)) => {
                warn!(%error, "cannot reconnect: store failed");
                if matches!(error, whatsapp_store::StoreError::LeaseHeld { .. }) {
                    return None;
                }
            }
            Err(error) => debug!(%error, "reconnect failed"),
        }
    }
}

/// Answers a command that needs a connection while there is none.
fn refuse(command: Command) {
    match command {
        Command::Iq { reply, .. } => {
            let _ = reply.send(Err(ClientError::NotConnected));
        }
        Command::PairPhone { reply, .. } => {
            let _ = reply.send(Err(ClientError::NotConnected));
        }
        Command::SendNode { reply, .. } => {
            let _ = reply.send(Err(ClientError::NotConnected));
        }
        Command::Send { reply, .. } => {
            let _ = reply.send(Err(ClientError::NotConnected));
        }
        Command::Disconnect { done } => {
            let _ = done.send(());
        }
    }
}

/// Who waits for an IQ answer.
enum Waiter {
    User(oneshot::Sender<Result<Node, ClientError>>),
    Ping,
    Active,
    PrekeyCount,
    PrekeyUpload(Vec<u32>),
    CompanionHello(oneshot::Sender<Result<String, ClientError>>),
    CompanionFinish,
}

struct Session<'a, B: Backend> {
    shared: &'a Arc<Shared<B>>,
    socket: NoiseSocket<Stream>,
    device: Device,
    lease: Option<Lease>,
    rng: &'a mut StdRng,
    start: TokioInstant,
    iqs: IqTracker<Waiter>,
    keepalive: Option<(Keepalive, Instant)>,
    qr_refs: VecDeque<Vec<u8>>,
    qr_expires: Option<Instant>,
    code_pairing: Option<CodePairing>,
    lease_renewal: Instant,
    reached_login: bool,
    /// Stanzas sent with [`Command::SendNode`], by id, waiting for the server's ack.
    awaiting_ack: HashMap<String, oneshot::Sender<Result<Node, ClientError>>>,
    /// When the decrypt buffer is next pruned (at login, then every [`DECRYPT_BUFFER_PRUNE_INTERVAL`]).
    next_buffer_prune: Instant,
    /// [`whatsapp_core::delivery::Deliveries::generation`] at the last attempt to clear handled messages'
    /// plaintexts (cleared by the next decryption's transaction, when the connection goes idle, at
    /// [`HANDLED_FLUSH_AT`], or when it ends), so that an idle connection writes once, and a store that refuses
    /// the write is not asked again until there is more to clear.
    flushed_generation: u64,
}

/// What the connection task's wait ended with.
enum Wake {
    /// A stanza arrived, or the connection ended.
    Frame(Result<Node, End>),
    /// A handle sent a command, or every handle is gone (`None`).
    Command(Option<Command>),
    /// The timer of [`Session::next_wake`] fired.
    Timer,
    /// Nothing was ready and handled messages wait for their plaintext to be cleared.
    Idle,
    /// The application finished with a message: replies may be ready to send.
    Finished,
}

impl<'a, B: Backend> Session<'a, B> {
    fn new(shared: &'a Arc<Shared<B>>, opened: Opened, rng: &'a mut StdRng) -> Self {
        let iqs = IqTracker::new(&mut *rng);
        Session {
            shared,
            socket: opened.socket,
            device: opened.device,
            lease: Some(opened.lease),
            rng,
            start: TokioInstant::now(),
            iqs,
            keepalive: None,
            qr_refs: VecDeque::new(),
            qr_expires: None,
            code_pairing: None,
            lease_renewal: shared.config.lease_ttl / 3,
            reached_login: false,
            awaiting_ack: HashMap::new(),
            next_buffer_prune: Instant::ZERO,
            flushed_generation: 0,
        }
    }

    fn now(&self) -> Instant {
        self.start.elapsed()
    }

    fn next_wake(&self) -> Instant {
        let mut wake = self.lease_renewal;
        for candidate in [
            self.iqs.next_deadline(),
            self.qr_expires,
            self.keepalive.as_ref().map(|(_, next)| *next),
        ]
        .into_iter()
        .flatten()
        {
            wake = wake.min(candidate);
        }
        wake
    }

    async fn run(&mut self, commands: &mut mpsc::Receiver<Command>) -> End {
        let end = self.serve(commands).await;
        // On a disconnect the application may have finished messages since the last wake: their acks go out
        // first.
        if matches!(end, End::Stopped) {
            let _ = self.send_ready_replies().await;
        }
        // Before the lease is given up (and before `disconnect` returns, which waits for this task).
        self.flush_handled().await;
        // Replies held for messages the application still has are for this connection; the server redelivers
        // those messages on the next one.
        self.shared.delivery.lock().connection_ended();
        for (_, reply) in self.awaiting_ack.drain() {
            let _ = reply.send(Err(ClientError::ConnectionClosed));
        }
        for (_, waiter) in self.iqs.drain() {
            match waiter {
                Waiter::User(reply) => {
                    let _ = reply.send(Err(ClientError::ConnectionClosed));
                }
                Waiter::CompanionHello(reply) => {
                    let _ = reply.send(Err(ClientError::ConnectionClosed));
                }
                _ => {}
            }
        }
        if matches!(end, End::Stopped | End::QrTimeout) {
            let _ = self.socket.close().await;
        }
        end
    }

    async fn serve(&mut self, commands: &mut mpsc::Receiver<Command>) -> End {
        loop {
            let outcome = match self.wait(commands).await {
                Wake::Frame(Ok(node)) => self.handle_node(&node).await,
                Wake::Frame(Err(end)) => Err(end),
                Wake::Command(None) => Err(End::Stopped),
                Wake::Command(Some(Command::Disconnect { done })) => {
                    let _ = done.send(());
                    Err(End::Stopped)
                }
                Wake::Command(Some(command)) => self.handle_command(command).await,
                Wake::Timer => self.on_timer().await,
                Wake::Idle => {
                    self.flush_handled().await;
                    Ok(())
                }
                Wake::Finished => Ok(()),
            };
            if let Err(end) = outcome {
                return end;
            }
            if let Err(end) = self.send_ready_replies().await {
                return end;
            }
        }
    }

    /// Waits for the next stanza, command or timer (whichever is ready first, in no fixed order), or returns
    /// [`Wake::Idle`] at once when none is ready and handled messages wait to be cleared: a burst of messages
    /// folds their clearing into the next decryption's transaction, and a quiet moment writes the rest.
    async fn wait(&mut self, commands: &mut mpsc::Receiver<Command>) -> Wake {
        let at = self.start + self.next_wake();
        let idle_flush_due = self.shared.delivery.lock().generation() != self.flushed_generation;
        let delivery = &self.shared.delivery;
        let socket = &mut self.socket;
        // Every branch is cancel-safe: a frame is either fully buffered by the socket or not taken.
        let next = async {
            tokio::select! {
                frame = socket.recv_frame() => Wake::Frame(match frame {
                    Ok(Some(frame)) => decode_frame(&frame).map_err(|error| {
                        warn!(%error, "undecodable stanza; reconnecting so the server redelivers");
                        End::Lost
                    }),
                    Ok(None) => Err(End::Lost),
                    Err(error) => {
                        debug!(%error, "connection lost");
                        Err(End::Lost)
                    }
                }),
                command = commands.recv() => Wake::Command(command),
                () = delivery.finished.notified() => Wake::Finished,
                () = tokio::time::sleep_until(at) => Wake::Timer,
            }
        };
        tokio::select! {
            biased;
            wake = next => wake,
            () = std::future::ready(()), if idle_flush_due => Wake::Idle,
        }
    }

    async fn send(&mut self, node: &Node) -> Result<(), End> {
        self.socket.send_frame(&encode_frame(node)).await?;
        Ok(())
    }

    async fn send_iq(&mut self, node: Node, waiter: Waiter, timeout: Duration) -> Result<(), End> {
        let id = self.iqs.register(self.now() + timeout, waiter);
        self.send(&node.attr("id", id)).await
    }

    async fn handle_command(&mut self, command: Command) -> Result<(), End> {
        match command {
            Command::Iq { node, reply } => {
                let timeout = self.shared.config.iq_timeout;
                self.send_iq(node, Waiter::User(reply), timeout).await
            }
            Command::PairPhone { phone, reply } => self.start_code_pairing(&phone, reply).await,
            Command::Send { node, reply } => {
                self.send(&node).await?;
                let _ = reply.send(Ok(()));
                Ok(())
            }
            Command::SendNode { node, reply } => {
                let Some(id) = node.optional_str_attr("id").map(str::to_owned) else {
                    let _ = reply.send(Err(ClientError::Malformed("stanza without an id".to_owned())));
                    return Ok(());
                };
                self.send(&node).await?;
                self.awaiting_ack.insert(id, reply);
                Ok(())
            }
            Command::Disconnect { done } => {
                let _ = done.send(());
                Err(End::Stopped)
            }
        }
    }

    async fn handle_node(&mut self, node: &Node) -> Result<(), End> {
        debug!(tag = %node.tag, "received");
        match Incoming::classify(node) {
            Incoming::IqResponse => {
                if let Some((waiter, outcome)) = self.iqs.resolve(node) {
                    self.on_iq_answer(waiter, outcome).await?;
                }
            }
            Incoming::PairDevice { refs, ack } => {
                self.send(&ack).await?;
                if self.device.jid.is_none() {
                    self.qr_refs = refs.into();
                    self.show_next_qr(FIRST_QR_TIMEOUT)?;
                }
            }
            Incoming::PairSuccess(parsed) => self.on_pair_success(node, parsed).await?,
            Incoming::CodePairingHello { notification, ack } => {
                self.send(&ack).await?;
                self.on_code_pairing_hello(notification).await?;
            }
            Incoming::Notification { ack } => {
                // Before the ack: a send that follows the ack sees the new list.
                match node.optional_str_attr("type") {
                    Some("devices") => self.shared.on_device_notification(node),
                    Some(GROUP_NOTIFICATION_TYPE) => {
                        if let Ok(group) = node.jid_attr("from") {
                            self.shared.forget_group(&group);
                        }
                    }
                    _ => {}
                }
                if node.optional_str_attr("type") == Some("privacy_token") {
                    // Stored before the ack, so a token is never acknowledged and lost.
                    if let Err(error) = self.shared.store_privacy_tokens(node).await {
                        warn!(%error, "could not store privacy tokens; reconnecting so the server redelivers");
                        return Err(End::Lost);
                    }
                }
                let changed = whatsapp_core::app_state::changed_collections(node);
                if changed.is_empty() {
                    self.send(&ack).await?;
                } else {
                    // Syncing needs IQs this task must read: run it beside, and ack once it is done.
                    let ack = crate::app_state::AckAfterSync::new(ack, changed.len());
                    for collection in changed {
                        self.client().sync_later(collection, Arc::clone(&ack));
                    }
                }
                if node.optional_str_attr("type") == Some("account_sync") {
                    self.shared.on_account_sync(node);
                }
                if node.optional_str_attr("type") == Some("mediaretry") {
                    self.shared.on_media_retry(node);
                }
                if node.optional_str_attr("type") == Some(GROUP_NOTIFICATION_TYPE) {
                    self.shared.emit(crate::groups::notification_event(node));
                }
                crate::newsletters::notification_events(node)
                    .into_iter()
                    .for_each(|event| self.shared.emit(event));
            }
            Incoming::Receipt { ack } => {
                self.send(&ack).await?;
                match Receipt::parse(node) {
                    Ok(receipt) => {
                        if receipt.kind == ReceiptKind::Retry {
                            // Answering may need a bundle fetch (an IQ this task must read): run it beside.
                            let client = self.client();
                            let node = node.clone();
                            tokio::spawn(async move { client.answer_retry(&node).await });
                        }
                        self.shared.emit(Event::Receipt(receipt));
                    }
                    Err(error) => warn!(%error, "malformed receipt"),
                }
            }
            // Channel posts are plaintext: nothing to decrypt or persist before the ack.
            Incoming::Message { ack } if whatsapp_core::newsletter::is_newsletter_message(node) => {
                self.send(&ack).await?;
                self.shared.emit(crate::newsletters::message_event(node));
            }
            Incoming::Message { ack } => self.on_message(node, ack).await?,
            Incoming::ServerAck => {
                if let Some(reply) = node
                    .optional_str_attr("id")
                    .and_then(|id| self.awaiting_ack.remove(id))
                {
                    let _ = reply.send(Ok(node.clone()));
                }
            }
            Incoming::Presence => self.shared.on_presence(node),
            Incoming::ChatState => self.shared.on_chat_state(node),
            Incoming::Call { ack } => {
                self.send(&ack).await?;
                self.shared.on_call(node);
            }
            Incoming::LoginSuccess(success) => self.on_login(success).await?,
            Incoming::LoginFailure(disconnect) | Incoming::StreamError(disconnect) => {
                return Err(End::Server(disconnect));
            }
            Incoming::ServerPing { reply } => self.send(&reply).await?,
            _ => debug!(tag = %node.tag, "unhandled stanza"),
        }
        Ok(())
    }

    fn show_next_qr(&mut self, timeout: Duration) -> Result<(), End> {
        let Some(reference) = self.qr_refs.pop_front() else {
            return Err(End::QrTimeout);
        };
        let code = qr_code(
            &reference,
            &self.device.noise_key.public,
            &self.device.identity_key.public,
            &self.device.adv_secret,
            PairClientType::Chrome,
        );
        self.qr_expires = Some(self.now() + timeout);
        self.shared.emit(Event::Qr { code, timeout });
        Ok(())
    }

    async fn on_pair_success(
        &mut self,
        node: &Node,
        parsed: Result<PairSuccess, PairError>,
    ) -> Result<(), End> {
        self.qr_expires = None;
        let success = match parsed {
            Ok(success) => success,
            Err(error) => {
                if let Some(id) = node.optional_str_attr("id") {
                    self.send(&pair_error_reply(id, &error)).await?;
                }
                self.shared.emit(Event::PairError { error: error.into() });
                return Ok(());
            }
        };
        let identity = key_pair(&self.device.identity_key);
        let paired = match complete_pair_success(&success, &identity, &self.device.adv_secret) {
            Ok(paired) => paired,
            Err(error) => {
                warn!(%error, "refusing pair-success");
                self.send(&pair_error_reply(&success.iq_id, &error)).await?;
                self.shared.emit(Event::PairError { error: error.into() });
                return Ok(());
            }
        };
        let mut device = self.device.clone();
        device.jid = Some(paired.jid.clone());
        device.lid = Some(paired.lid.clone());
        device.account_identity = Some(paired.account.encode_to_vec());
        device.platform = success.platform.clone().unwrap_or_default();
        device.business_name = success.business_name.clone().unwrap_or_default();
        let mut primary = paired.lid.clone();
        primary.set_device(0);
        // Persist before answering: once the phone gets the signature, the pairing is done on its side.
        let stored = async {
            self.shared
                .account
                .put_identity(&primary.signal_address(), &paired.primary_identity)
                .await?;
            self.shared.account.put_device(&device).await
        }
        .await;
        if let Err(error) = stored {
            warn!(%error, "could not store the paired device");
            let internal = PairError::Malformed("stored device");
            self.send(&pair_error_reply(&success.iq_id, &internal)).await?;
            self.shared.emit(Event::PairError { error: error.into() });
            return Ok(());
        }
        self.device = device;
        self.send(&paired.reply).await?;
        info!(jid = %paired.jid, "paired");
        self.shared.emit(Event::PairSuccess {
            jid: paired.jid,
            lid: paired.lid,
            business_name: success.business_name,
            platform: success.platform,
        });
        Ok(())
    }

    async fn start_code_pairing(
        &mut self,
        phone: &str,
        reply: oneshot::Sender<Result<String, ClientError>>,
    ) -> Result<(), End> {
        if self.device.jid.is_some() {
            let _ = reply.send(Err(ClientError::AlreadyPaired));
            return Ok(());
        }
        let phone = match phone_jid(phone) {
            Ok(phone) => phone,
            Err(error) => {
                let _ = reply.send(Err(error.into()));
                return Ok(());
            }
        };
        let (pairing, content) = CodePairing::start(
            phone,
            &self.device.noise_key.public,
            PairClientType::Chrome,
            &self.shared.config.identity.os,
            true,
            self.rng,
        );
        self.code_pairing = Some(pairing);
        let timeout = self.shared.config.iq_timeout;
        self.send_iq(md_set(content), Waiter::CompanionHello(reply), timeout)
            .await
    }

    async fn on_code_pairing_hello(&mut self, notification: &Node) -> Result<(), End> {
        let stage = notification
            .child("link_code_companion_reg")
            .and_then(|reg| reg.optional_str_attr("stage"));
        let Some(pairing) = self
            .code_pairing
            .as_ref()
            .filter(|_| stage == Some("primary_hello"))
        else {
            debug!(?stage, "code pairing notification without a pending pairing");
            return Ok(());
        };
        let identity = key_pair(&self.device.identity_key);
        match pairing.finish(notification, &identity, self.rng) {
            Ok((adv_secret, content)) => {
                // The phone's pair-success is MACed with this secret instead of the QR code's.
                self.device.adv_secret = *adv_secret;
                self.qr_expires = None;
                let timeout = self.shared.config.iq_timeout;
                self.send_iq(md_set(content), Waiter::CompanionFinish, timeout)
                    .await
            }
            Err(error) => {
                self.shared.emit(Event::PairError { error: error.into() });
                Ok(())
            }
        }
    }

    async fn on_login(&mut self, success: LoginSuccess) -> Result<(), End> {
        info!(lid = ?success.lid, "logged in");
        self.reached_login = true;
        self.qr_expires = None;
        let now = self.now();
        let keepalive = Keepalive::with_timing(now, self.shared.config.keepalive);
        let first_ping = keepalive.next_ping(now, self.rng);
        self.keepalive = Some((keepalive, first_ping));
        if self.next_buffer_prune <= now {
            self.prune_decrypt_buffer().await;
        }
        // This account's own LID and phone number, so its own devices are handled under the LID too (whatsmeow
        // stores the pair on connect).
        if let (Some(lid), Some(pn)) = (&self.device.lid, &self.device.jid)
            && let Err(error) = self
                .shared
                .put_lid_mappings(&[whatsapp_store::LidMapping::new(lid, pn)])
                .await
        {
            warn!(%error, "cannot store this account's LID");
        }
        // As whatsmeow does: prekey count, a refill if needed, `active`, then `Connected` (protocol-facts §3.3).
        // A failed step is logged and the sequence goes on.
        let timeout = self.shared.config.iq_timeout;
        self.send_iq(prekey_count_query(), Waiter::PrekeyCount, timeout)
            .await
    }

    async fn send_active(&mut self) -> Result<(), End> {
        let timeout = self.shared.config.iq_timeout;
        self.send_iq(set_active(), Waiter::Active, timeout).await
    }

    fn connected(&mut self) {
        self.shared.logged_in.store(true, Ordering::Release);
        self.shared.logins.send_modify(|count| *count += 1);
        self.shared.emit(Event::Connected);
    }

    async fn on_iq_answer(&mut self, waiter: Waiter, outcome: IqOutcome) -> Result<(), End> {
        match (waiter, outcome) {
            (Waiter::User(reply), IqOutcome::Result(node)) => {
                let _ = reply.send(Ok(node));
            }
            (Waiter::User(reply), IqOutcome::Error { code, text, .. }) => {
                let _ = reply.send(Err(ClientError::Iq { code, text }));
            }
            (Waiter::Ping, _) => {
                let now = self.now();
                if let Some((keepalive, _)) = self.keepalive.as_mut()
                    && keepalive.succeeded(now) == Some(KeepaliveEvent::Restored)
                {
                    self.shared.emit(Event::KeepaliveRestored);
                }
            }
            (Waiter::PrekeyCount, IqOutcome::Result(node)) => match parse_prekey_count(&node) {
                Some(count) => self.refill_prekeys(count).await?,
                None => {
                    warn!("prekey count answer without a count");
                    self.send_active().await?;
                }
            },
            (Waiter::PrekeyUpload(ids), IqOutcome::Result(_)) => {
                if let Err(error) = self.shared.account.mark_prekeys_uploaded(&ids).await {
                    warn!(%error, "could not mark prekeys uploaded");
                } else {
                    info!(count = ids.len(), "prekeys uploaded");
                }
                self.send_active().await?;
            }
            (Waiter::Active, outcome) => {
                if let IqOutcome::Error { code, text, .. } = outcome {
                    warn!(code, text, "server refused to set the connection active");
                }
                self.connected();
            }
            (waiter @ (Waiter::PrekeyCount | Waiter::PrekeyUpload(_)), outcome) => {
                warn!(
                    waiter = waiter.name(),
                    ?outcome,
                    "prekey request refused by the server"
                );
                self.send_active().await?;
            }
            (Waiter::CompanionHello(reply), IqOutcome::Result(node)) => {
                let answer = match self.code_pairing.as_mut() {
                    Some(pairing) => pairing
                        .handle_hello_response(&node)
                        .map(|()| pairing.code.display())
                        .map_err(ClientError::from),
                    None => Err(ClientError::ConnectionClosed),
                };
                let _ = reply.send(answer);
            }
            (Waiter::CompanionHello(reply), IqOutcome::Error { code, text, .. }) => {
                self.code_pairing = None;
                let _ = reply.send(Err(ClientError::Iq { code, text }));
            }
            (Waiter::CompanionFinish, IqOutcome::Error { code, text, .. }) => {
                self.code_pairing = None;
                self.shared.emit(Event::PairError {
                    error: ClientError::Iq { code, text },
                });
            }
            (Waiter::CompanionFinish, IqOutcome::Result(_)) => {}
            (waiter, outcome) => {
                warn!(waiter = waiter.name(), ?outcome, "request refused by the server");
            }
        }
        Ok(())
    }

    /// Uploads prekeys when the server runs low (policy in `whatsapp_core::policy`); keys generated earlier but
    /// never uploaded are sent first.
    async fn refill_prekeys(&mut self, server_count: u32) -> Result<(), End> {
        let account = &self.shared.account;
        let planned = async {
            let local = u32::try_from(account.uploaded_prekey_count().await?).unwrap_or(u32::MAX);
            let wanted = prekeys_to_upload(server_count, local, None);
            if wanted == 0 {
                return Ok(Vec::new());
            }
            let mut keys = account.pending_prekeys(wanted).await?;
            let missing = wanted.saturating_sub(keys.len() as u32);
            if missing > 0 {
                let ids = account.reserve_prekey_ids(missing).await?;
                let fresh = generate_prekeys(&ids, &mut rand::rngs::OsRng);
                account.put_prekeys(&fresh).await?;
                keys.extend(fresh);
            }
            Ok::<_, whatsapp_store::StoreError>(keys)
        }
        .await;
        let keys = match planned {
            Ok(keys) if keys.is_empty() => return self.send_active().await,
            Ok(keys) => keys,
            Err(error) => {
                warn!(%error, "could not prepare prekeys");
                return self.send_active().await;
            }
        };
        debug!(count = keys.len(), server_count, "uploading prekeys");
        let node = prekey_upload_for(&self.device, &keys);
        let ids = keys.iter().map(|k| k.id).collect();
        let timeout = self.shared.config.iq_timeout;
        self.send_iq(node, Waiter::PrekeyUpload(ids), timeout).await
    }

    async fn on_timer(&mut self) -> Result<(), End> {
        let now = self.now();
        for (id, waiter) in self.iqs.expire(now) {
            match waiter {
                Waiter::User(reply) => {
                    let _ = reply.send(Err(ClientError::IqTimeout));
                }
                Waiter::CompanionHello(reply) => {
                    let _ = reply.send(Err(ClientError::IqTimeout));
                }
                Waiter::Ping => {
                    if let Some((keepalive, _)) = self.keepalive.as_mut() {
                        for event in keepalive.failed(now) {
                            match event {
                                KeepaliveEvent::Timeout { error_count } => {
                                    self.shared.emit(Event::KeepaliveTimeout { error_count });
                                }
                                KeepaliveEvent::Reconnect => return Err(End::KeepaliveDead),
                                _ => {}
                            }
                        }
                    }
                }
                Waiter::PrekeyCount | Waiter::PrekeyUpload(_) => {
                    warn!(id, "prekey request timed out");
                    self.send_active().await?;
                }
                Waiter::Active => {
                    warn!(id, "no answer to `active`");
                    self.connected();
                }
                Waiter::CompanionFinish => {
                    self.code_pairing = None;
                    self.shared.emit(Event::PairError {
                        error: ClientError::IqTimeout,
                    });
                }
            }
        }
        if self.qr_expires.is_some_and(|at| at <= now) {
            self.show_next_qr(QR_TIMEOUT)?;
        }
        if let Some((keepalive, next)) = self.keepalive.as_mut()
            && *next <= now
        {
            *next = keepalive.next_ping(now, self.rng);
            let deadline = keepalive.timing().response_deadline;
            self.send_iq(Keepalive::ping(), Waiter::Ping, deadline).await?;
        }
        if self.lease_renewal <= now {
            self.renew_lease().await?;
        }
        if self.reached_login && self.next_buffer_prune <= now {
            self.prune_decrypt_buffer().await;
        }
        Ok(())
    }

    /// Forgets the hashes of messages handled longer ago than the server could redeliver them, so the decrypt
    /// buffer does not grow without bound. A failure is logged and tried again at the next interval.
    async fn prune_decrypt_buffer(&mut self) {
        self.next_buffer_prune = self.now() + DECRYPT_BUFFER_PRUNE_INTERVAL;
        let cutoff = unix_now().saturating_sub(DECRYPT_BUFFER_TTL).as_millis() as i64;
        match self.shared.account.delete_old_buffered_events(cutoff).await {
            Ok(0) => {}
            Ok(deleted) => debug!(deleted, "pruned the decrypt buffer"),
            Err(error) => warn!(%error, "could not prune the decrypt buffer"),
        }
    }

    async fn renew_lease(&mut self) -> Result<(), End> {
        self.lease_renewal = self.now() + self.shared.config.lease_ttl / 3;
        let Some(lease) = self.lease.as_ref() else {
            return Ok(());
        };
        let renewed = self
            .shared
            .backend
            .renew_lease(
                lease,
                unix_now().as_millis() as i64,
                self.shared.config.lease_ttl.as_millis() as i64,
            )
            .await;
        match renewed {
            Ok(lease) => {
                self.lease = Some(lease);
                Ok(())
            }
            Err(whatsapp_store::StoreError::LeaseLost { .. }) => {
                warn!("another process took the account's lease; stopping");
                self.lease = None;
                Err(End::LeaseLost)
            }
            Err(error) => {
                warn!(%error, "could not renew the account lease; retrying later");
                Ok(())
            }
        }
    }
}

impl<B: Backend> Session<'_, B> {
    /// Decrypts a `<message>`, persists the Signal changes with the plaintext (decrypt buffer) in one transaction,
    /// emits it, and acknowledges it once the application has handled it (see [`whatsapp_core::delivery`]; its
    /// plaintext is cleared with a later write, see [`Session::flush_handled`]). A redelivery of a handled message
    /// is only acked; one that was persisted but not handled (a crash in between) is emitted from the buffer.
    async fn on_message(&mut self, node: &Node, ack: Node) -> Result<(), End> {
        let parsed = match IncomingMessage::parse(node) {
            Ok(parsed) => parsed,
            Err(error) => {
                warn!(%error, "malformed message stanza");
                return self.send(&ack).await;
            }
        };
        let info = MessageInfo {
            id: parsed.id.clone(),
            chat: parsed.chat.clone(),
            sender: parsed.sender.clone(),
            sender_alt: parsed.sender_alt.clone(),
            is_from_me: self.is_own_user(&parsed.sender),
            is_group: parsed.is_group,
            timestamp: parsed.timestamp,
            push_name: parsed.push_name.clone(),
            edit: whatsapp_core::compose::EditKind::of(node),
            unavailable_request_id: None,
        };
        // No copy for this device: there is nothing to decrypt or keep, so it is acknowledged, and the phone
        // is asked for it at once (whatsmeow `message.go` decryptMessages).
        if let Some(kind) = whatsapp_core::placeholder::unavailable(node) {
            self.send(&ack).await?;
            let ask = self.shared.placeholder_requests().unavailable(&info.id);
            if ask {
                self.client().request_from_phone(&info, None);
            }
            warn!(id = %info.id, %kind, "the server has no copy of a message for this device");
            self.shared.emit(Event::UndecryptableMessage {
                info,
                error: ClientError::MessageUnavailable(kind),
                requested_from_phone: true,
            });
            return Ok(());
        }
        // The address the sender's Signal records are under: its LID once known (records kept under its phone
        // number move there first). Not acknowledged on a store failure: the redelivery tries again.
        let address = match self.sender_address(&parsed).await {
            Ok(address) => address,
            Err(error) => {
                warn!(%error, "cannot resolve the sender's address; reconnecting for a redelivery");
                return Err(End::Lost);
            }
        };
        let account = &self.shared.account;
        let mut decrypted = Vec::new();
        // Payloads of a redelivery whose first delivery the application still holds.
        let mut held = Vec::new();
        let mut failures = Vec::new();
        // A message with no payload this client reads (none at all, or only kinds such as `msmsg`) is not
        // acknowledged in silence: it is reported, and asked from the phone like one that did not decrypt.
        if !parsed.payloads.iter().any(|payload| {
            matches!(
                payload.kind,
                EncKind::PreKey | EncKind::Whisper | EncKind::SenderKey
            )
        }) {
            failures.push(ClientError::Unsupported(
                "a message without a payload this client reads",
            ));
        }
        for payload in &parsed.payloads {
            if !matches!(
                payload.kind,
                EncKind::PreKey | EncKind::Whisper | EncKind::SenderKey
            ) {
                debug!(kind = ?payload.kind, "message payload kind not handled yet");
                continue;
            }
            let hash = payload_hash(&parsed.sender, &parsed.chat, payload);
            match account.buffered_event(&hash).await {
                Ok(Some(buffered)) => {
                    // A plaintext still buffered was not handled (the process stopped first), unless this
                    // process emitted it: the application still has it, or its clearing waits for a write.
                    if let Some(plaintext) = buffered.plaintext {
                        match self.shared.delivery.lock().redelivery(&hash) {
                            Redelivery::Emit => decrypted.push((hash, plaintext)),
                            Redelivery::Wait => held.push(hash),
                            Redelivery::Answer => {}
                        }
                    }
                    continue;
                }
                Ok(None) => {}
                Err(error) => {
                    // Not acknowledged: the server redelivers it after the next login, which a new connection
                    // brings at once.
                    warn!(%error, "cannot read the decrypt buffer; reconnecting for a redelivery");
                    return Err(End::Lost);
                }
            }
            let _signal = self.shared.signal_lock.lock().await;
            let stage = StagedSignalStore::new(account, &self.device);
            let decrypted_payload = match payload.kind {
                EncKind::SenderKey => {
                    group::decrypt(&stage, &parsed.chat, &address, &payload.ciphertext).await
                }
                _ => message::decrypt(&stage, &address, payload, self.rng).await,
            };
            match decrypted_payload {
                Ok(plaintext) => {
                    // In a group or a status update, a pairwise copy carries the sender's key: store it with this
                    // payload's changes, so the skmsg after it decrypts.
                    if (parsed.is_group || parsed.chat.is_status_broadcast())
                        && let Ok(Message {
                            sender_key_distribution_message: Some(skdm),
                            ..
                        }) = Message::decode(plaintext.as_slice())
                        && let Err(error) =
                            group::process_distribution(&stage, &parsed.chat, &address, &skdm).await
                    {
                        warn!(%error, "bad sender-key distribution");
                    }
                    let now = unix_now().as_millis() as i64;
                    let event = BufferedEvent {
                        plaintext: Some(plaintext.clone()),
                        server_timestamp: parsed.timestamp.saturating_mul(1000),
                        insert_time: now,
                    };
                    let clearing = self.shared.delivery.lock().handled().to_vec();
                    stage.clear_buffered_plaintexts(&clearing);
                    if let Err(error) = stage.commit_with_event(Some((&hash, &event))).await {
                        // Not acknowledged, and nothing of it persisted: the redelivery after the reconnect
                        // decrypts it again from the same state.
                        warn!(%error, "cannot persist a decrypted message; reconnecting for a redelivery");
                        return Err(End::Lost);
                    }
                    self.shared.delivery.lock().cleared(clearing.len());
                    decrypted.push((hash, plaintext));
                }
                Err(error) => {
                    drop(stage);
                    drop(_signal);
                    // One retry receipt and one event per message, however many copies in it fail: the sender
                    // answers a retry with every copy again, and a hostile stanza cannot multiply the work.
                    self.send_retry_receipt(node).await?;
                    failures.push(ClientError::from(error));
                    break;
                }
            }
        }
        // The ack, and the delivery receipt of a message read, go out once the application has handled what this
        // stanza emitted (whatsmeow `message.go` decryptMessages with `SynchronousAck`).
        let mut replies = vec![ack];
        if !decrypted.is_empty() || !held.is_empty() {
            let active = self
                .shared
                .active_receipts
                .load(std::sync::atomic::Ordering::SeqCst)
                != 0;
            replies.push(delivery_receipt(node, info.is_from_me, active));
        }
        // The sender was asked for a new copy; the phone is asked too if that copy has not decrypted in time
        // (whatsmeow `retry.go` sendRetryReceipt). A peer message from this account's phone is not asked back.
        let from_phone = node.optional_str_attr("category") == Some("peer");
        if !failures.is_empty() && !from_phone && self.shared.placeholder_requests().failed(&info.id) {
            self.client()
                .request_from_phone(&info, Some(self.shared.config.phone_request_delay));
        }
        for error in failures {
            warn!(id = %info.id, %error, "undecryptable message");
            self.shared.emit(Event::UndecryptableMessage {
                info: info.clone(),
                error,
                requested_from_phone: !from_phone,
            });
        }
        for (hash, plaintext) in decrypted {
            match Message::decode(plaintext.as_slice()) {
                Ok(message) if is_only_distribution(&message) => self.shared.delivery.finish(hash),
                Ok(message) if info.is_from_me && message.protocol_message.is_some() => {
                    if let Err(error) = self.on_peer_protocol(&info, message, hash).await {
                        // Not handled and not acknowledged: the plaintext stays in the buffer, and the redelivery
                        // after the reconnect is handled from there.
                        warn!(%error, "cannot handle a message from this account's device; reconnecting");
                        return Err(End::Lost);
                    }
                    // A peer message is confirmed to the account itself once handled (whatsmeow `message.go`
                    // handleProtocolMessage).
                    if node.optional_str_attr("category") == Some("peer")
                        && let Some(own) = &self.device.jid
                    {
                        self.send(&peer_message_receipt(&info.id, own)).await?;
                    }
                }
                Ok(message) => {
                    // Unless this account's phone already sent it in answer to a request.
                    if self.shared.placeholder_requests().decrypted(&info.id) {
                        self.emit_message(info.clone(), message, Some(hash)).await;
                    } else {
                        self.shared.delivery.finish(hash);
                    }
                }
                Err(error) => {
                    self.shared.emit(Event::UndecryptableMessage {
                        info: info.clone(),
                        error: ClientError::Malformed(error.to_string()),
                        requested_from_phone: false,
                    });
                    self.shared.delivery.finish(hash);
                }
            }
            held.push(hash);
        }
        let now = self.shared.delivery.lock().reply_after(&held, replies);
        for reply in &now {
            self.send(reply).await?;
        }
        if self.shared.delivery.lock().handled().len() >= HANDLED_FLUSH_AT {
            self.flush_handled().await;
        }
        Ok(())
    }

    /// The Signal address of a message's sender (see [`crate::lid`]), after storing the LID to phone-number
    /// mapping the stanza carries.
    async fn sender_address(&self, parsed: &IncomingMessage) -> Result<Jid, ClientError> {
        if let Some(alt) = &parsed.sender_alt {
            let (lid, pn) = match alt.server() {
                Jid::LID_SERVER => (alt, &parsed.sender),
                _ => (&parsed.sender, alt),
            };
            self.shared
                .put_lid_mappings(&[whatsapp_store::LidMapping::new(lid, pn)])
                .await?;
        }
        self.shared.signal_address(&parsed.sender).await
    }

    /// Sends the acks and receipts of messages the application has finished with since the last look.
    async fn send_ready_replies(&mut self) -> Result<(), End> {
        let ready = self.shared.delivery.lock().take_ready();
        for reply in &ready {
            self.send(reply).await?;
        }
        if self.shared.delivery.lock().handled().len() >= HANDLED_FLUSH_AT {
            self.flush_handled().await;
        }
        Ok(())
    }

    /// Clears the plaintexts of the handled messages from the decrypt buffer in one write. If the store refuses,
    /// the hashes stay remembered (and redeliveries recognised) and the next decryption's transaction or flush
    /// tries again; should the process stop first, the buffer keeps those plaintexts, but their acks went out,
    /// so the server does not deliver them again.
    async fn flush_handled(&mut self) {
        let clearing = {
            let delivery = self.shared.delivery.lock();
            self.flushed_generation = delivery.generation();
            delivery.handled().to_vec()
        };
        if clearing.is_empty() {
            return;
        }
        match self.shared.account.clear_buffered_plaintexts(&clearing).await {
            Ok(()) => self.shared.delivery.lock().cleared(clearing.len()),
            Err(error) => {
                warn!(%error, count = clearing.len(), "cannot clear handled messages from the decrypt buffer")
            }
        }
    }

    /// Asks the sender to encrypt a message again (at most four times per message); from the second attempt the
    /// receipt carries a fresh prekey so the sender can start a new session.
    async fn send_retry_receipt(&mut self, node: &Node) -> Result<(), End> {
        let Some(id) = node.optional_str_attr("id") else {
            return Ok(());
        };
        let count = self.shared.retries_for(id);
        if count >= MAX_RETRY_RECEIPTS {
            warn!(id, "not sending more retry receipts");
            return Ok(());
        }
        let account = &self.shared.account;
        let mut fresh = None;
        if count >= 2 {
            let generated = async {
                let ids = account.reserve_prekey_ids(1).await?;
                let prekeys = generate_prekeys(&ids, &mut rand::rngs::OsRng);
                account.put_prekeys(&prekeys).await?;
                account.mark_prekeys_uploaded(&ids).await?;
                Ok::<_, whatsapp_store::StoreError>(prekeys)
            }
            .await;
            match generated {
                Ok(prekeys) => fresh = prekeys.into_iter().next(),
                Err(error) => warn!(%error, "no prekey for the retry receipt"),
            }
        }
        let identity = self.device.account_identity.clone().unwrap_or_default();
        let keys = fresh.as_ref().map(|prekey| RetryKeys {
            identity: &self.device.identity_key.public,
            prekey: (prekey.id, prekey.key_pair.public),
            signed_prekey: (
                self.device.signed_prekey.id,
                self.device.signed_prekey.key_pair.public,
                self.device.signed_prekey.signature,
            ),
            device_identity: &identity,
        });
        let from_own_account = node.jid_attr("from").is_ok_and(|from| self.is_own_user(&from));
        let receipt = retry_receipt(
            node,
            from_own_account,
            count,
            self.device.registration_id,
            keys.as_ref(),
        );
        debug!(id, count, "sending retry receipt");
        self.send(&receipt).await
    }

    /// A handle on this client, for work that runs beside the connection task.
    fn client(&self) -> crate::Client<B> {
        crate::Client {
            shared: Arc::clone(self.shared),
        }
    }

    /// Protocol messages from this account's own devices: app-state keys are stored (then never-synced
    /// collections are synced), history sync notifications are downloaded and read beside this task; anything
    /// else is emitted as a message.
    /// Work that outlives this call (a history download, the sync that shared keys start) holds the message
    /// as emitted (`hash`) until it is done, so its ack waits for it and a process that stops first is sent the
    /// message again.
    async fn on_peer_protocol(
        &self,
        info: &MessageInfo,
        mut message: Message,
        hash: PayloadHash,
    ) -> Result<(), ClientError> {
        let Some(protocol) = message.protocol_message.take() else {
            self.shared.delivery.finish(hash);
            return Ok(());
        };
        if let Some(share) = whatsapp_core::app_state::key_share(&protocol) {
            let keys = whatsapp_core::app_state::shared_keys(share);
            for key in &keys {
                self.shared.account.put_app_state_sync_key(key).await?;
            }
            debug!(count = keys.len(), "app-state keys received");
            self.shared.emit(Event::AppStateKeys { count: keys.len() });
            // An empty share (the phone has none of the keys asked for) starts nothing: syncing again would only
            // ask again.
            if keys.is_empty() {
                self.shared.delivery.finish(hash);
            } else {
                let client = self.client();
                self.shared.delivery.lock().emitted(hash);
                tokio::spawn(async move {
                    client.sync_new_collections().await;
                    client.shared.delivery.finish(hash);
                });
            }
            return Ok(());
        }
        if let Some(response) = whatsapp_core::placeholder::resend_response(&protocol) {
            self.on_placeholder_response(response).await;
            self.shared.delivery.finish(hash);
            return Ok(());
        }
        if protocol.r#type == Some(ProtocolType::HistorySyncNotification as i32)
            && let Some(notification) = protocol.history_sync_notification.clone()
        {
            let client = self.client();
            // Held as emitted until the application moved past the history's last event.
            self.shared.delivery.lock().emitted(hash);
            tokio::spawn(async move { client.receive_history(notification, hash).await });
            return Ok(());
        }
        message.protocol_message = Some(protocol);
        self.emit_message(info.clone(), message, Some(hash)).await;
        Ok(())
    }

    /// The phone's answer to requests for messages this device could not read: each message it sent is emitted
    /// unless its sender's copy was emitted first (whatsmeow `message.go` handlePlaceholderResendResponse).
    async fn on_placeholder_response(&self, response: whatsapp_core::placeholder::ResendResponse) {
        let own = self.device.jid.clone();
        for item in response.messages {
            let web = match item {
                Ok(web) => web,
                Err(error) => {
                    warn!(request = %response.request_id, %error, "unreadable item in the phone's resend");
                    continue;
                }
            };
            let Some((mut info, message)) = own.as_ref().and_then(|own| web_message(&web, own)) else {
                warn!(request = %response.request_id, "the phone's resend names no chat or message");
                continue;
            };
            if !self.shared.placeholder_requests().answered(&info.id) {
                debug!(id = %info.id, "the sender's copy came first; the phone's is dropped");
                continue;
            }
            info.unavailable_request_id = Some(response.request_id.clone());
            self.emit_message(info, message, None).await;
        }
    }

    fn is_own_user(&self, jid: &Jid) -> bool {
        [&self.device.jid, &self.device.lid]
            .into_iter()
            .flatten()
            .any(|own| own.user() == jid.user() && own.server() == jid.server())
    }

    /// Emits a message, unwrapping what another device of this account sent (`DeviceSentMessage`).
    /// A message from the decrypt buffer carries its payload `hash`: it is held by the application until handled.
    async fn emit_message(&self, mut info: MessageInfo, mut message: Message, hash: Option<PayloadHash>) {
        if info.is_from_me
            && let Some(sent) = message.device_sent_message.take()
        {
            if let Some(destination) = sent
                .destination_jid
                .as_deref()
                .and_then(|d| d.parse::<Jid>().ok())
            {
                info.chat = destination;
            }
            message = sent.message.map(|m| *m).unwrap_or_default();
        }
        self.client()
            .remember_secret(&info.chat, &info.sender, &info.id, &message)
            .await;
        let event = Event::Message {
            info,
            message: Box::new(message),
        };
        match hash {
            Some(hash) => self.shared.emit_received(event, hash),
            None => self.shared.emit(event),
        }
    }
}

/// The envelope and content of a message this account's phone sent as a `WebMessageInfo` (its key names the
/// chat, whether this account sent it, and in groups the author); `None` without a chat, an id or a message.
fn web_message(
    web: &whatsapp_proto::history_sync::WebMessageInfo,
    own: &Jid,
) -> Option<(MessageInfo, Message)> {
    let chat: Jid = web.key.remote_jid.as_deref()?.parse().ok()?;
    let is_from_me = web.key.from_me == Some(true);
    let author = web
        .key
        .participant
        .as_deref()
        .or(web.participant.as_deref())
        .and_then(|p| p.parse::<Jid>().ok());
    let sender = match (is_from_me, author) {
        (true, _) => own.clone(),
        (false, Some(author)) => author,
        (false, None) => chat.clone(),
    };
    let info = MessageInfo {
        id: web.key.id.clone()?,
        is_group: chat.is_group(),
        chat,
        sender,
        sender_alt: None,
        is_from_me,
        timestamp: web
            .message_timestamp
            .and_then(|t| i64::try_from(t).ok())
            .unwrap_or(0),
        push_name: web.push_name.clone(),
        edit: None,
        unavailable_request_id: None,
    };
    Some((info, web.message.clone()?))
}

/// Whether a decrypted message only carries a sender-key distribution (nothing to show).
fn is_only_distribution(message: &Message) -> bool {
    message.sender_key_distribution_message.is_some()
        && Message {
            sender_key_distribution_message: None,
            message_context_info: None,
            ..message.clone()
        } == Message::default()
}

impl Waiter {
    fn name(&self) -> &'static str {
        match self {
            Waiter::User(_) => "user",
            Waiter::Ping => "ping",
            Waiter::Active => "active",
            Waiter::PrekeyCount => "prekey count",
            Waiter::PrekeyUpload(_) => "prekey upload",
            Waiter::CompanionHello(_) => "companion hello",
            Waiter::CompanionFinish => "companion finish",
        }
    }
}
