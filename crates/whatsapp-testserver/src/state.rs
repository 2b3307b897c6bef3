//! The server's shared state: accounts and their linked devices, live connections, pairings in progress and the
//! fault switches. One mutex guards it; nothing awaits while holding it.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::sync::{broadcast, mpsc};
use whatsapp_binary::{Jid, Node};
use whatsapp_signal::KeyPair;

use crate::events::ServerEvent;

/// The keys a device registered with (its registration payload), kept when it is linked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Registration {
    pub(crate) registration_id: u32,
    pub(crate) identity: [u8; 32],
    pub(crate) signed_prekey_id: u32,
    pub(crate) signed_prekey: [u8; 32],
    pub(crate) signed_prekey_signature: [u8; 64],
}

/// A companion linked to an account.
#[derive(Debug)]
pub(crate) struct LinkedDevice {
    /// The Noise static key the device paired with; its logins must use it.
    pub(crate) noise_key: [u8; 32],
    pub(crate) registration: Registration,
    /// One-time prekeys by id.
    pub(crate) prekeys: BTreeMap<u32, [u8; 32]>,
}

/// An account: its phone number, LID, the primary phone's identity key and its companions.
#[derive(Debug)]
pub(crate) struct Account {
    pub(crate) lid_user: String,
    pub(crate) identity: KeyPair,
    /// The account's ADV raw id, the same in every device identity it signs.
    pub(crate) raw_id: u32,
    /// The next device id to hand out (the phone is 0; companions count up from 1).
    pub(crate) next_device: u16,
    pub(crate) devices: BTreeMap<u16, LinkedDevice>,
    /// The phone's Signal registration id (its identity key is `identity`).
    pub(crate) registration_id: u32,
    /// The phone's Signal sessions with its companions, by device id.
    pub(crate) sessions: HashMap<u16, whatsapp_signal::SessionRecord>,
    /// The app-state sync keys the phone made (id, key data), oldest first; the last one encrypts new patches.
    /// The first is made on first use.
    pub(crate) app_state_keys: Vec<(Vec<u8>, Vec<u8>)>,
    /// The account's app-state collections by name: the patches uploaded so far, oldest first.
    pub(crate) app_state: BTreeMap<String, Vec<Vec<u8>>>,
    /// Whether the account's messages reach others from its LID devices (see
    /// [`crate::TestServer::address_by_lid`]).
    pub(crate) lid_addressed: bool,
    /// The phone's own prekeys (device 0 is listed and has its bundle served like any device).
    pub(crate) phone_keys: PhoneKeys,
    /// The phone's Signal sessions with other accounts' devices, by their phone-number device JID.
    pub(crate) phone_peers: HashMap<Jid, whatsapp_signal::SessionRecord>,
    /// The sender keys the phone holds, by chat and sending device (phone-number device JID).
    pub(crate) phone_sender_keys: HashMap<(Jid, Jid), whatsapp_signal::SenderKeyRecord>,
    /// What the phone received and decrypted, oldest first.
    pub(crate) phone_inbox: Vec<crate::primary::PhoneMessage>,
}

/// The primary phone's signed prekey and one-time prekeys, private halves included: the phone decrypts what is
/// sent to device 0.
#[derive(Debug)]
pub(crate) struct PhoneKeys {
    pub(crate) signed_prekey_id: u32,
    pub(crate) signed_prekey: KeyPair,
    pub(crate) signature: [u8; 64],
    /// One-time prekeys by id; each is handed out once.
    pub(crate) prekeys: BTreeMap<u32, KeyPair>,
    /// The one-time prekeys handed out in bundles and not used yet, by id.
    pub(crate) handed_out: BTreeMap<u32, KeyPair>,
}

impl PhoneKeys {
    /// How many one-time prekeys a phone starts with.
    const PREKEYS: u32 = 50;

    /// Fresh keys, the signed prekey signed with the phone's identity.
    pub(crate) fn generate(
        identity: &KeyPair,
        rng: &mut (impl rand::RngCore + rand::CryptoRng),
    ) -> PhoneKeys {
        let signed_prekey = KeyPair::generate(rng);
        let signature = identity.private.sign(&signed_prekey.public.serialize(), rng);
        PhoneKeys {
            signed_prekey_id: 1,
            signed_prekey,
            signature,
            prekeys: (1..=Self::PREKEYS)
                .map(|id| (id, KeyPair::generate(rng)))
                .collect(),
            handed_out: BTreeMap::new(),
        }
    }
}

/// What a connection task is told to do.
#[derive(Debug)]
pub(crate) enum Command {
    /// Send this stanza.
    Send(Node),
    /// Send this stanza (if any), close the WebSocket, end the connection.
    Close(Option<Node>),
    /// End the connection at once: no stanza, no WebSocket close.
    Abort,
    /// Do something hostile to the byte stream (hostile-server tests).
    Hostile(crate::hostile::Act),
}

/// What a live connection is.
#[derive(Debug, Clone)]
pub(crate) enum Role {
    /// A registering device: its keys and the QR references it was sent.
    Unpaired {
        registration: Registration,
        refs: Vec<String>,
    },
    /// A logged-in device.
    Device(Jid),
}

/// A live connection.
#[derive(Debug)]
pub(crate) struct ConnEntry {
    pub(crate) tx: mpsc::UnboundedSender<Command>,
    pub(crate) client_static: [u8; 32],
    pub(crate) role: Role,
}

/// A `pair-success` sent and not yet answered.
#[derive(Debug)]
pub(crate) struct PendingPair {
    pub(crate) conn: u64,
    pub(crate) number: String,
    pub(crate) device_id: u16,
    pub(crate) key_index: u32,
    /// The encoded `ADVDeviceIdentity` sent.
    pub(crate) details: Vec<u8>,
    pub(crate) account_signature: Vec<u8>,
    pub(crate) companion_identity: [u8; 32],
}

/// A phone-number code pairing in progress.
#[derive(Debug)]
pub(crate) struct CodePairingState {
    pub(crate) conn: u64,
    pub(crate) number: String,
    /// Orders attempts, so that the phone answers the latest.
    pub(crate) sequence: u64,
    pub(crate) wrapped_companion_ephemeral: [u8; 80],
    /// Set once the phone entered a code: the phone's ephemeral key and the companion's, as unwrapped.
    pub(crate) exchange: Option<(KeyPair, [u8; 32])>,
}

/// The fault-injection switches.
#[derive(Debug, Clone)]
pub(crate) struct Faults {
    pub(crate) fail_logins: Option<u16>,
    pub(crate) iq_delay: Duration,
    pub(crate) answer_pings: bool,
    /// Acks of messages are reported but do not empty inboxes, so every copy is delivered again.
    pub(crate) ignore_acks: bool,
    /// Queued stanzas are sent newest first at login (out-of-order delivery tests).
    pub(crate) reverse_inbox: bool,
    /// Devices whose next message copies get a flipped ciphertext byte (they will not decrypt), with how many.
    pub(crate) corrupt_next: HashMap<Jid, usize>,
    /// Devices whose next message copy is delivered as `<unavailable type>` (the type) without its `<enc>`.
    pub(crate) withhold_next: HashMap<Jid, String>,
    /// Devices whose connection is cut right after the next message copy is written to it.
    pub(crate) cut_after_next: std::collections::HashSet<Jid>,
    /// Device-list changes are not announced (`devices` notifications), so senders keep stale lists.
    pub(crate) silent_device_changes: bool,
    /// Devices whose connection ends right after their next message arrives, before its ack, and whether that
    /// message is routed first.
    pub(crate) cut_before_ack: HashMap<Jid, bool>,
}

/// Everything behind the mutex.
#[derive(Debug)]
pub(crate) struct State {
    pub(crate) accounts: BTreeMap<String, Account>,
    pub(crate) conns: HashMap<u64, ConnEntry>,
    pub(crate) pending_pairs: HashMap<String, PendingPair>,
    pub(crate) code_pairings: HashMap<String, CodePairingState>,
    pub(crate) faults: Faults,
    pub(crate) next_conn: u64,
    /// Messages each device has not acknowledged yet, by device phone-number JID, oldest first.
    pub(crate) inboxes: HashMap<Jid, Vec<crate::routing::Queued>>,
    /// Groups by id (the user part of the group JID).
    pub(crate) groups: BTreeMap<String, Group>,
    /// Who asked for whose device list: by account number, the accounts told when its devices change.
    pub(crate) device_watchers: HashMap<String, std::collections::BTreeSet<String>>,
    /// The last number used in a notification id made under the lock.
    pub(crate) notifications: u64,
    /// The hostile-server switches.
    pub(crate) hostile: crate::hostile::Hostile,
    /// Presence, profiles, privacy and blocklists.
    pub(crate) social: crate::social::Social,
    /// Channels (newsletters), their followers and posts.
    pub(crate) newsletters: crate::newsletters::Channels,
    /// Business profiles of the accounts that have one.
    pub(crate) businesses: crate::business::Businesses,
    /// Where photo URLs point: the media host once it listens.
    pub(crate) picture_host: String,
    /// Groups that clients create are addressed by phone number rather than by LID.
    pub(crate) pn_groups: bool,
    /// Copies for phones (device 0) that did not decrypt: the phone, the message id and why.
    pub(crate) phone_failures: Vec<(Jid, String, String)>,
    /// What clients sent that WhatsApp would refuse: the device (when logged in) and why.
    pub(crate) violations: Vec<(Option<Jid>, String)>,
    /// The acks of the message fan-outs routed so far, by sending account, chat and message id, oldest first
    /// in `routed_order` (at most [`ROUTED_IDS`]): a message id is routed once.
    pub(crate) routed: HashMap<(String, String, String), Node>,
    pub(crate) routed_order: std::collections::VecDeque<(String, String, String)>,
}

/// How many routed message ids the server remembers to refuse routing one twice.
pub(crate) const ROUTED_IDS: usize = 100_000;

pub(crate) use crate::groups::Group;

impl State {
    /// A fresh number for a notification id.
    pub(crate) fn next_notification_id(&mut self) -> u64 {
        self.notifications += 1;
        self.notifications
    }

    /// The live connection of `device`, if it is logged in.
    pub(crate) fn conn_of(&self, device: &Jid) -> Option<(u64, &ConnEntry)> {
        self.conns
            .iter()
            .find(|(_, c)| matches!(&c.role, Role::Device(jid) if jid == device))
            .map(|(id, c)| (*id, c))
    }

    /// The linked device behind a device JID.
    pub(crate) fn device_mut(&mut self, device: &Jid) -> Option<&mut LinkedDevice> {
        self.accounts
            .get_mut(device.user())?
            .devices
            .get_mut(&device.device())
    }
}

/// What every task shares.
#[derive(Debug)]
pub(crate) struct Shared {
    state: Mutex<State>,
    events: broadcast::Sender<ServerEvent>,
    next_id: AtomicU64,
    /// How many QR references an unpaired connection is sent.
    pub(crate) qr_refs: usize,
    /// The media host, set once it listens.
    pub(crate) media: std::sync::OnceLock<Arc<crate::media::MediaHost>>,
}

impl Shared {
    pub(crate) fn new(qr_refs: usize) -> Arc<Shared> {
        let (events, _) = broadcast::channel(crate::events::EVENT_BUFFER);
        Arc::new(Shared {
            state: Mutex::new(State {
                accounts: BTreeMap::new(),
                conns: HashMap::new(),
                pending_pairs: HashMap::new(),
                code_pairings: HashMap::new(),
                faults: Faults {
                    fail_logins: None,
                    iq_delay: Duration::ZERO,
                    answer_pings: true,
                    ignore_acks: false,
                    reverse_inbox: false,
                    corrupt_next: Default::default(),
                    withhold_next: Default::default(),
                    cut_after_next: Default::default(),
                    cut_before_ack: Default::default(),
                    silent_device_changes: false,
                },
                device_watchers: HashMap::new(),
                notifications: 0,
                next_conn: 1,
                inboxes: HashMap::new(),
                groups: BTreeMap::new(),
                hostile: Default::default(),
                social: Default::default(),
                newsletters: Default::default(),
                businesses: Default::default(),
                picture_host: "https://pps.whatsapp.net".to_owned(),
                phone_failures: Vec::new(),
                violations: Vec::new(),
                routed: HashMap::new(),
                routed_order: Default::default(),
                pn_groups: false,
            }),
            events,
            next_id: AtomicU64::new(1),
            qr_refs,
            media: std::sync::OnceLock::new(),
        })
    }

    /// The state. A task that panicked while holding the lock leaves the state as it was mid-update, which is
    /// still the best information there is; the server keeps going rather than poisoning every test after it.
    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub(crate) fn emit(&self, event: ServerEvent) {
        tracing::debug!(?event, "server event");
        // No subscriber is not an error: tests subscribe to what they need.
        let _ = self.events.send(event);
    }

    pub(crate) fn subscribe(&self) -> broadcast::Receiver<ServerEvent> {
        self.events.subscribe()
    }

    /// A number never handed out before by this server.
    pub(crate) fn next_number(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }

    /// A fresh id for a server-originated stanza.
    pub(crate) fn next_stanza_id(&self) -> String {
        format!("srv-{}", self.next_number())
    }
}

/// The server's own JID, `s.whatsapp.net`.
pub(crate) fn server_jid() -> Jid {
    Jid::server_only(Jid::DEFAULT_USER_SERVER)
}

/// The current time, unix seconds.
pub(crate) fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// A device's phone-number JID.
pub(crate) fn device_jid(number: &str, device: u16) -> Jid {
    Jid::with_device(number, Jid::DEFAULT_USER_SERVER, device)
}

/// A device's LID.
pub(crate) fn device_lid(lid_user: &str, device: u16) -> Jid {
    Jid::with_device(lid_user, Jid::LID_SERVER, device)
}
