//! A WhatsApp Web multi-device client: link this program to a phone as a companion device and stay connected.
//!
//! Layer: the facade. It drives the protocol engine (`whatsapp-core`) over the Noise/WebSocket transport
//! (`whatsapp-noise`) on tokio, keeps the device in a store (`whatsapp-store`; SQLite or PostgreSQL through the
//! default `sql` feature), and reports what happens as a stream of [`Event`]s.
//!
//! ```no_run
//! use futures::StreamExt;
//! use whatsapp_client::{Client, Event, sql::SqlBackend};
//!
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! let store = SqlBackend::open_sqlite("whatsapp.db").await?;
//! let (client, mut events) = Client::builder(store).build().await?;
//! client.connect().await?;
//! while let Some(event) = events.next().await {
//!     match event {
//!         Event::Qr { code, .. } => println!("scan: {code}"),
//!         Event::Connected => println!("logged in"),
//!         _ => {}
//!     }
//! }
//! # Ok(()) }
//! ```
//!
//! One [`Client`] drives one account. Many clients may share one backend (one database); each holds a lease on
//! its account while connected, so two processes never drive the same account at once.

mod app_state;
mod calls;
mod devices;
mod error;
mod event;
mod groups;
mod history;
mod lid;
mod media;
mod messages;
mod newsletters;
mod pacing;
mod placeholder;
mod polls;
mod presence;
mod privacy;
mod session;
mod spool;
mod users;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::sync::{Mutex, mpsc, oneshot};
use tokio::task::JoinHandle;
use tracing::Instrument;
use whatsapp_store::{AccountId, AccountStore, Backend};

pub use error::ClientError;
pub use event::{Event, Events, MessageInfo};
pub use history::HistoryCounts;
pub use media::{MediaRef, Uploaded};
pub use messages::SendResponse;
pub use newsletters::NewsletterSendResponse;
pub use whatsapp_appstate as appstate;
pub use whatsapp_binary::{Jid, Node};
pub use whatsapp_core::business::{BusinessCategory, BusinessHours, BusinessProfile};
pub use whatsapp_core::call::CallMeta;
pub use whatsapp_core::compose::{self, EditKind};
pub use whatsapp_core::group_admin::{
    AddRequest, AddressingMode, CreateGroup, GroupInfo, GroupParticipant, GroupTopic, INVITE_LINK_PREFIX,
    JoinOutcome, JoinRequest, LinkedGroup, MemberAddMode, ParticipantChange,
};
pub use whatsapp_core::group_notification::{GroupChange, JoinedGroup, LinkChange, SubjectChange};
pub use whatsapp_core::media::MediaType;
pub use whatsapp_core::media_retry::MediaRetryResult;
pub use whatsapp_core::newsletter::{
    INVITE_LINK_PREFIX as NEWSLETTER_LINK_PREFIX, LiveUpdate, NewsletterError, NewsletterMessage,
    NewsletterMetadata, NewsletterRole, NewsletterState, NewsletterText, ViewerMetadata,
};
pub use whatsapp_core::payload::{ClientIdentity, ClientVersion};
pub use whatsapp_core::policy::KeepaliveTiming;
pub use whatsapp_core::presence::{ChatMedia, ChatState, Presence};
pub use whatsapp_core::privacy::{BlockAction, Blocklist, PrivacyCategory, PrivacySettings, PrivacyValue};
pub use whatsapp_core::receipt::{Receipt, ReceiptKind};
pub use whatsapp_core::secret::option_hashes;
pub use whatsapp_core::user::{OnWhatsApp, PictureInfo, UserInfo};
pub use whatsapp_noise::TrustRoot;
/// The protobuf types of the protocol (`whatsapp-proto`): what events such as
/// [`Event::HistoryConversation`] carry.
pub use whatsapp_proto as proto;
pub use whatsapp_proto::e2e::Message;
pub use whatsapp_store as store;
/// The SQL store backends (SQLite and PostgreSQL).
#[cfg(feature = "sql")]
pub use whatsapp_store_sql as sql;

use session::Command;

/// How long a lease on the account lasts before it must be renewed, unless [`ClientBuilder::lease_ttl`] says
/// otherwise; the connection task renews it at a third of this. Another process takes over the account at most
/// this long after the one holding it died.
pub const LEASE_TTL: Duration = Duration::from_secs(60);

/// The handshake must finish within this (protocol-facts §3.1).
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(20);

/// Connection settings.
#[derive(Clone, Debug)]
pub(crate) struct Config {
    pub(crate) url: String,
    pub(crate) trust_root: TrustRoot,
    pub(crate) identity: ClientIdentity,
    pub(crate) auto_reconnect: bool,
    pub(crate) iq_timeout: Duration,
    pub(crate) keepalive: KeepaliveTiming,
    /// Messages per second and burst of the send pacing; `None` sends at once.
    pub(crate) send_rate_limit: Option<(f64, u32)>,
    /// History blobs larger than this are spooled to a temporary file.
    pub(crate) spool_threshold: usize,
    /// Where spooled blobs go.
    pub(crate) spool_dir: std::path::PathBuf,
    /// How long a message that did not decrypt waits for the sender's new copy before the phone is asked.
    pub(crate) phone_request_delay: Duration,
    /// How long the account's store lease lasts (renewed at a third of it).
    pub(crate) lease_ttl: Duration,
    /// The lease owner name, when the application gives a stable one.
    pub(crate) lease_owner: Option<String>,
}

/// A client for one account. Cheap to clone; every clone drives the same connection.
pub struct Client<B: Backend> {
    shared: Arc<Shared<B>>,
}

impl<B: Backend> Clone for Client<B> {
    fn clone(&self) -> Self {
        Client {
            shared: Arc::clone(&self.shared),
        }
    }
}

impl<B: Backend> std::fmt::Debug for Client<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("account", &self.shared.account.id())
            .field("url", &self.shared.config.url)
            .finish_non_exhaustive()
    }
}

/// State shared by the handles and the connection task.
pub(crate) struct Shared<B: Backend> {
    pub(crate) backend: B,
    pub(crate) account: B::Account,
    pub(crate) config: Config,
    pub(crate) events: mpsc::UnboundedSender<event::Emitted>,
    /// Which emitted messages the application still holds, and the replies waiting for them.
    pub(crate) delivery: Arc<event::Delivery>,
    /// The lease owner name of this client.
    pub(crate) owner: String,
    pub(crate) logged_in: AtomicBool,
    /// How many times a connection reached `Connected`; a send whose connection ended waits for the next one.
    pub(crate) logins: tokio::sync::watch::Sender<u64>,
    pub(crate) logged_out: AtomicBool,
    /// Held while Signal records are read, changed and committed, so a send and a receive never interleave on
    /// one session. Never held while waiting for the network.
    pub(crate) signal_lock: Mutex<()>,
    /// The HTTP client for media hosts.
    pub(crate) http: reqwest::Client,
    /// Messages sent lately, to answer retry receipts (at most `RECENT_MESSAGES`, oldest first).
    pub(crate) recent: std::sync::Mutex<std::collections::VecDeque<messages::Recent>>,
    /// Retry receipts sent per message id, and retry requests answered per (device, message id).
    pub(crate) retries: std::sync::Mutex<messages::RetryCounters>,
    /// Held while a collection is synced or changed: one app-state operation at a time.
    pub(crate) app_state_lock: Mutex<()>,
    /// Collections with a sync waiting for `app_state_lock`.
    /// with the acks of the `server_sync` notifications that wait for that sync.
    pub(crate) app_state_waiting: std::sync::Mutex<
        std::collections::HashMap<appstate::CollectionName, Vec<Arc<app_state::AckAfterSync>>>,
    >,
    /// Collections whose last sync stopped at a key the phone had not shared; they are synced again when the
    /// phone's answer to the key request arrives.
    pub(crate) app_state_key_waits: std::sync::Mutex<std::collections::HashSet<appstate::CollectionName>>,
    /// Media retry requests waiting for the phone's answer.
    pub(crate) media_retries: std::sync::Mutex<media::PendingRetries>,
    /// The send pacing, when the builder set a rate limit.
    pub(crate) pacer: Option<pacing::SendPacer>,
    /// What this client read or wrote of the LID map, and whose Signal records it moved to their LID.
    pub(crate) lids: std::sync::Mutex<lid::LidMemory>,
    /// Users' device lists as last listed (see [`devices`]).
    pub(crate) device_lists: std::sync::Mutex<devices::DeviceLists>,
    /// Groups' members as last asked for (see [`devices`]).
    pub(crate) group_members: std::sync::Mutex<devices::GroupMembers>,
    /// When this account last issued its privacy token to each contact, unix seconds (see [`privacy`]).
    pub(crate) issued_tokens: std::sync::Mutex<std::collections::HashMap<Jid, i64>>,
    /// Whether delivery receipts are plain (the user is active) rather than `inactive`: [`ACTIVE_BY_PRESENCE`]
    /// while this client says it is available, [`ACTIVE_FORCED`] when the user asked for it (whatsmeow
    /// `sendActiveReceipts`).
    pub(crate) active_receipts: std::sync::atomic::AtomicU8,
    /// Messages asked (or to be asked) from the phone, so each is emitted once (see
    /// [`whatsapp_core::placeholder`]).
    pub(crate) placeholders: std::sync::Mutex<whatsapp_core::placeholder::PlaceholderRequests>,
    running: Mutex<Option<Running>>,
}

/// [`Shared::active_receipts`]: delivery receipts are plain because this client sent `available` presence.
pub(crate) const ACTIVE_BY_PRESENCE: u8 = 1;
/// [`Shared::active_receipts`]: delivery receipts are plain whatever the presence.
pub(crate) const ACTIVE_FORCED: u8 = 2;

impl<B: Backend> Shared<B> {
    /// Marks a sync of `collection` as waiting, with `ack` to send after it; returns whether none was waiting
    /// already.
    pub(crate) fn app_state_waiting(
        &self,
        collection: appstate::CollectionName,
        ack: Arc<app_state::AckAfterSync>,
    ) -> bool {
        let mut waiting = self
            .app_state_waiting
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let acks = waiting.entry(collection).or_default();
        acks.push(ack);
        acks.len() == 1
    }

    /// Marks the waiting sync of `collection` as started; returns the acks that wait for it.
    pub(crate) fn app_state_started(
        &self,
        collection: appstate::CollectionName,
    ) -> Vec<Arc<app_state::AckAfterSync>> {
        self.app_state_waiting
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .remove(&collection)
            .unwrap_or_default()
    }

    /// This device's JID; [`ClientError::NotConnected`] before it is paired.
    pub(crate) async fn own_jid(&self) -> Result<whatsapp_binary::Jid, ClientError> {
        self.account
            .device()
            .await?
            .jid
            .clone()
            .ok_or(ClientError::NotConnected)
    }

    /// This device under each of its addresses: its phone-number JID, and its LID device when it has one.
    pub(crate) async fn own_devices(&self) -> Result<Vec<whatsapp_binary::Jid>, ClientError> {
        let device = self.account.device().await?;
        let own = device.jid.clone().ok_or(ClientError::NotConnected)?;
        let lid = device.lid.as_ref().map(|lid| {
            whatsapp_binary::Jid::with_device(lid.user(), whatsapp_binary::Jid::LID_SERVER, own.device())
        });
        Ok(std::iter::once(own).chain(lid).collect())
    }

    pub(crate) fn emit(&self, event: Event) {
        // The receiver may be gone (the user dropped `Events`); the connection keeps working without it.
        let _ = self.events.send(event::Emitted { event, hash: None });
    }

    /// Emits a received message, which the application holds until it asks for the next event (see [`Events`]).
    pub(crate) fn emit_received(&self, event: Event, hash: whatsapp_core::delivery::PayloadHash) {
        self.delivery.lock().emitted(hash);
        if self
            .events
            .send(event::Emitted {
                event,
                hash: Some(hash),
            })
            .is_err()
        {
            self.delivery.finish(hash);
        }
    }
}

struct Running {
    commands: mpsc::Sender<Command>,
    task: JoinHandle<()>,
}

/// Builds a [`Client`]: `Client::builder(store).build().await`.
#[derive(Debug)]
#[must_use]
pub struct ClientBuilder<B: Backend> {
    backend: B,
    account: Option<AccountId>,
    config: Config,
}

impl<B: Backend> ClientBuilder<B> {
    /// Drives an existing account of the store (a device created, and possibly paired, earlier). Without this,
    /// `build` creates a new unpaired device.
    pub fn account(mut self, id: AccountId) -> Self {
        self.account = Some(id);
        self
    }

    /// How the client describes itself (version, OS name shown on the phone).
    pub fn identity(mut self, identity: ClientIdentity) -> Self {
        self.config.identity = identity;
        self
    }

    /// Connects to another server than WhatsApp's, trusting its certificate root instead of WhatsApp's. This is
    /// for test servers (`whatsapp-testserver`); a client talking to WhatsApp never calls it.
    pub fn server(mut self, url: impl Into<String>, trust_root: TrustRoot) -> Self {
        self.config.url = url.into();
        self.config.trust_root = trust_root;
        self
    }

    /// Whether to reconnect by itself after the connection drops (default: yes).
    pub fn auto_reconnect(mut self, enabled: bool) -> Self {
        self.config.auto_reconnect = enabled;
        self
    }

    /// How long a message that did not decrypt waits for its sender's new copy (asked with a retry receipt)
    /// before this account's phone is asked for it (default 5 s, as whatsmeow's `RequestFromPhoneDelay`).
    /// Zero asks the phone at once.
    pub fn phone_request_delay(mut self, delay: Duration) -> Self {
        self.config.phone_request_delay = delay;
        self
    }

    /// How long requests wait for the server's answer (default 75 s).
    pub fn iq_timeout(mut self, timeout: Duration) -> Self {
        self.config.iq_timeout = timeout;
        self
    }

    /// How often the connection is pinged and how long failed pings are borne before it is made again (default:
    /// WhatsApp Web's, pings every 20-30 s answered within 10 s, given up after 3 minutes of failures). Shorter
    /// numbers notice a dead link sooner at the price of more traffic.
    pub fn keepalive(mut self, timing: KeepaliveTiming) -> Self {
        self.config.keepalive = timing;
        self
    }

    /// Paces message sends to at most `per_second` on average, with bursts of up to `burst` (default: no
    /// limit). WhatsApp bans accounts that send in bulk; pacing makes each send wait for a token before it
    /// fetches device lists or encrypts anything, so callers wait in their own tasks and nothing queues inside
    /// the client. Presence, receipts and other stanzas are not paced. A `per_second` that is not a positive
    /// number turns pacing off.
    pub fn send_rate_limit(mut self, per_second: f64, burst: u32) -> Self {
        self.config.send_rate_limit = Some((per_second, burst));
        self
    }

    /// The size above which a downloaded history blob is written to a temporary file while it downloads and is
    /// read back from there, instead of being held in memory (default 8 MiB). Lowering it trades memory for
    /// disk I/O; the project's tests lower it to exercise the file path with small blobs.
    pub fn spool_threshold(mut self, bytes: usize) -> Self {
        self.config.spool_threshold = bytes;
        self
    }

    /// The directory of those temporary files (default: [`std::env::temp_dir`]). Each file is readable by its
    /// owner alone (on Unix) and removed as soon as its blob was read or its download failed.
    pub fn spool_dir(mut self, dir: impl Into<std::path::PathBuf>) -> Self {
        self.config.spool_dir = dir.into();
        self
    }

    /// The name this client holds the account's store lease under (default: a random name per client). A process
    /// that restarts after a crash and gives the same name takes its lease back at once, instead of waiting up to
    /// the lease's lifetime for the dead process's lease to expire. Two processes that may run at the same time
    /// must give different names (host and service, say): the lease is what keeps them from driving one account
    /// together.
    pub fn lease_owner(mut self, owner: impl Into<String>) -> Self {
        self.config.lease_owner = Some(owner.into());
        self
    }

    /// How long the account's store lease lasts without renewal (default [`LEASE_TTL`]; renewed at a third of
    /// it). A shorter lease lets a standby process take over sooner after the owner died, for a write to the
    /// store that often. Durations under three seconds are raised to three.
    pub fn lease_ttl(mut self, ttl: Duration) -> Self {
        self.config.lease_ttl = ttl.max(Duration::from_secs(3));
        self
    }

    /// Opens the account (or creates a new device) and returns the client and its event stream.
    pub async fn build(self) -> Result<(Client<B>, Events), ClientError> {
        let account = match self.account {
            Some(id) => self.backend.open_account(id).await?,
            None => {
                let device = whatsapp_core::device::new_device(&mut rand::rngs::OsRng);
                self.backend.create_account(&device).await?
            }
        };
        let (events, receiver) = mpsc::unbounded_channel();
        let delivery = Arc::new(event::Delivery::default());
        let owner = self
            .config
            .lease_owner
            .clone()
            .unwrap_or_else(|| format!("whatsapp-client-{:016x}", rand::random::<u64>()));
        let pacer = self
            .config
            .send_rate_limit
            .and_then(|(per_second, burst)| pacing::SendPacer::new(per_second, burst));
        let shared = Shared {
            backend: self.backend,
            account,
            config: self.config,
            events,
            delivery: Arc::clone(&delivery),
            owner,
            logged_in: AtomicBool::new(false),
            logins: tokio::sync::watch::Sender::new(0),
            logged_out: AtomicBool::new(false),
            signal_lock: Mutex::new(()),
            http: reqwest::Client::new(),
            recent: Default::default(),
            retries: Default::default(),
            app_state_lock: Mutex::new(()),
            app_state_waiting: Default::default(),
            app_state_key_waits: Default::default(),
            media_retries: Default::default(),
            pacer,
            lids: Default::default(),
            device_lists: Default::default(),
            group_members: Default::default(),
            issued_tokens: Default::default(),
            active_receipts: Default::default(),
            placeholders: Default::default(),
            running: Mutex::new(None),
        };
        Ok((
            Client {
                shared: Arc::new(shared),
            },
            Events::new(receiver, delivery),
        ))
    }
}

impl<B: Backend> Client<B> {
    /// Starts building a client on `backend`.
    pub fn builder(backend: B) -> ClientBuilder<B> {
        ClientBuilder {
            backend,
            account: None,
            config: Config {
                url: whatsapp_noise::WHATSAPP_URL.to_owned(),
                trust_root: TrustRoot::whatsapp(),
                identity: ClientIdentity::default(),
                auto_reconnect: true,
                iq_timeout: whatsapp_core::iq::DEFAULT_IQ_TIMEOUT,
                keepalive: KeepaliveTiming::default(),
                send_rate_limit: None,
                spool_threshold: spool::DEFAULT_SPOOL_THRESHOLD,
                spool_dir: std::env::temp_dir(),
                phone_request_delay: whatsapp_core::placeholder::REQUEST_FROM_PHONE_DELAY,
                lease_ttl: LEASE_TTL,
                lease_owner: None,
            },
        }
    }

    /// The account this client drives in its store; pass it to [`ClientBuilder::account`] after a restart.
    pub fn account_id(&self) -> AccountId {
        self.shared.account.id()
    }

    /// The device's phone-number JID, once paired.
    pub async fn jid(&self) -> Result<Option<Jid>, ClientError> {
        Ok(self.shared.account.device().await?.jid.clone())
    }

    /// Whether the server has accepted the login on the current connection.
    pub fn is_logged_in(&self) -> bool {
        self.shared.logged_in.load(Ordering::Acquire)
    }

    /// Connects and starts the connection task; returns once the Noise handshake succeeded (the login result and
    /// QR codes arrive as events). Fails if the server cannot be reached, its certificate does not chain to the
    /// trust root, or the account is leased by another process.
    pub async fn connect(&self) -> Result<(), ClientError> {
        if self.shared.logged_out.load(Ordering::Acquire) {
            return Err(ClientError::LoggedOut);
        }
        let mut running = self.shared.running.lock().await;
        if running.as_ref().is_some_and(|r| !r.commands.is_closed()) {
            return Err(ClientError::AlreadyConnected);
        }
        let opened = session::open(&self.shared).await?;
        let (commands, receiver) = mpsc::channel(32);
        let span = tracing::info_span!("whatsapp", account = %self.shared.account.id());
        let task = tokio::spawn(session::run(Arc::clone(&self.shared), opened, receiver).instrument(span));
        *running = Some(Running { commands, task });
        Ok(())
    }

    /// Closes the connection and stops reconnecting. Returns once the connection task has ended.
    pub async fn disconnect(&self) {
        let running = self.shared.running.lock().await.take();
        if let Some(running) = running {
            let (done, wait) = oneshot::channel();
            if running.commands.send(Command::Disconnect { done }).await.is_ok() {
                let _ = wait.await;
            }
            let _ = running.task.await;
        }
    }

    /// Asks for a phone-number pairing code for `phone` (international form, digits only or with `+`/spaces).
    /// Show the returned `XXXX-XXXX` code to the user, who types it on the phone; the result arrives as
    /// [`Event::PairSuccess`] or [`Event::PairError`]. The client must be connected and not yet paired.
    pub async fn pair_phone(&self, phone: &str) -> Result<String, ClientError> {
        let (reply, answer) = oneshot::channel();
        self.command(Command::PairPhone {
            phone: phone.to_owned(),
            reply,
        })
        .await?;
        answer.await.map_err(|_| ClientError::ConnectionClosed)?
    }

    /// Sends an IQ stanza and waits for the server's answer (an `id` is assigned). Returns the `result` stanza,
    /// or [`ClientError::Iq`] for an `error` answer.
    pub async fn send_iq(&self, iq: Node) -> Result<Node, ClientError> {
        let (reply, answer) = oneshot::channel();
        self.command(Command::Iq { node: iq, reply }).await?;
        answer.await.map_err(|_| ClientError::ConnectionClosed)?
    }

    /// Unlinks this device from the account (as the phone's "log out" would), disconnects and deletes the
    /// account from the store. Emits [`Event::LoggedOut`].
    pub async fn logout(&self) -> Result<(), ClientError> {
        let jid = self.jid().await?.ok_or(ClientError::NotConnected)?;
        self.send_iq(whatsapp_core::connection::remove_companion_device(&jid))
            .await?;
        self.disconnect().await;
        // The server may have ended the stream with "device removed" first; then the account is already gone.
        if !self.shared.logged_out.swap(true, Ordering::AcqRel) {
            self.shared
                .backend
                .delete_account(self.shared.account.id())
                .await?;
            self.shared.emit(Event::LoggedOut {
                on_connect: false,
                code: 0,
            });
        }
        Ok(())
    }

    pub(crate) async fn command(&self, command: Command) -> Result<(), ClientError> {
        let running = self.shared.running.lock().await;
        let running = running.as_ref().ok_or(ClientError::NotConnected)?;
        running
            .commands
            .send(command)
            .await
            .map_err(|_| ClientError::NotConnected)
    }
}

/// Unix time in seconds and milliseconds.
pub(crate) fn unix_now() -> Duration {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default()
}
