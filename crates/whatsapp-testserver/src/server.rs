//! [`TestServer`]: the listener, the accept loop, accounts, and the fault-injection switches.

use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use rand::Rng;
use rand::rngs::OsRng;
use tokio::task::JoinHandle;
use whatsapp_binary::{Jid, Node};
use whatsapp_noise::{NoiseListener, TrustRoot, self_issued_identity};
use whatsapp_signal::KeyPair;

use crate::connection::serve;
use crate::events::ServerEvents;
use crate::hostile::Act;
use crate::phone::Phone;
use crate::state::{Account, Command, Shared, device_jid, unix_now};

/// How a [`TestServer`] starts. Build it with [`ServerConfig::default`] and change the fields.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct ServerConfig {
    /// The address to listen on; the default `127.0.0.1:0` picks a free port.
    pub listen: SocketAddr,
    /// How many QR references an unpaired client is sent in its `pair-device` (whatsmeow sees 6).
    pub qr_refs: usize,
    /// The validity of the certificate chain, `(not_before, not_after)` in unix seconds; `None` is from a day ago
    /// to a year ahead. An expired chain tests the client's certificate check.
    pub chain_validity: Option<(u64, u64)>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
            qr_refs: 6,
            chain_validity: None,
        }
    }
}

/// A running test server. Clones share the server; it stops when the last clone is dropped or on
/// [`shutdown`](Self::shutdown).
#[derive(Clone, Debug)]
pub struct TestServer {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    shared: Arc<Shared>,
    addr: SocketAddr,
    trust_root: TrustRoot,
    accept: JoinHandle<()>,
    media: JoinHandle<()>,
}

impl Inner {
    fn stop(&self) {
        self.accept.abort();
        self.media.abort();
        for conn in self.shared.lock().conns.values() {
            // A connection that already ended needs nothing.
            let _ = conn.tx.send(Command::Abort);
        }
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.stop();
    }
}

const DAY: u64 = 24 * 3600;

impl TestServer {
    /// Starts a server on `127.0.0.1` with a free port, a fresh root and certificate chain, 6 QR references per
    /// pairing attempt, and no accounts. Must be called within a tokio runtime.
    pub async fn start() -> io::Result<TestServer> {
        TestServer::start_with(ServerConfig::default()).await
    }

    /// Starts a server as `config` says.
    pub async fn start_with(config: ServerConfig) -> io::Result<TestServer> {
        let now = unix_now();
        let (not_before, not_after) = config
            .chain_validity
            .unwrap_or((now.saturating_sub(DAY), now + 365 * DAY));
        let (identity, trust_root) = self_issued_identity(&mut OsRng, not_before, not_after);
        let listener = NoiseListener::bind(config.listen, identity).await?;
        let addr = listener.local_addr()?;
        let shared = Shared::new(config.qr_refs);
        let auth = format!(
            "auth-{:x}",
            shared.next_number() ^ u64::from(rand::random::<u32>())
        );
        let (media_host, media) = crate::media::MediaHost::start(auth).await?;
        shared.lock().picture_host = format!("http://{}", media_host.addr);
        let _ = shared.media.set(media_host);
        let accept = tokio::spawn(accept_loop(listener, Arc::clone(&shared)));
        tracing::info!(%addr, "test server listening");
        Ok(TestServer {
            inner: Arc::new(Inner {
                shared,
                addr,
                trust_root,
                accept,
                media,
            }),
        })
    }

    fn shared(&self) -> &Arc<Shared> {
        &self.inner.shared
    }

    /// The address the server listens on.
    pub fn addr(&self) -> SocketAddr {
        self.inner.addr
    }

    /// The WebSocket URL clients connect to: `ws://127.0.0.1:PORT/ws/chat`.
    pub fn url(&self) -> String {
        format!("ws://{}/ws/chat", self.inner.addr)
    }

    /// The root key the server's certificate chain leads to; give it to clients as their trust root.
    pub fn trust_root(&self) -> TrustRoot {
        self.inner.trust_root
    }

    /// How many media files clients have uploaded.
    pub fn media_file_count(&self) -> usize {
        self.shared().media.get().map_or(0, |host| host.file_count())
    }

    /// Takes every uploaded media file offline, so downloads get 404 (expired media). The bytes are kept, as the
    /// sending phone keeps the original, for [`rehost_on_media_retry`](Self::rehost_on_media_retry).
    pub fn forget_media(&self) {
        if let Some(host) = self.shared().media.get() {
            host.forget_files();
        }
    }

    /// Makes the phone answer a media retry request for message `message_id` by uploading its file again.
    ///
    /// This is a test API standing in for what only a real phone knows. A device asks for expired media with a
    /// `<receipt type="server-error">` encrypted with a key derived from the message's media key; the phone
    /// finds the message, checks the request, uploads the file again and answers with a `mediaretry`
    /// notification encrypted with the same key. The simulated phones cannot read messages (they have no Signal
    /// keys), so the test hands over the message's `media_key` and `file_enc_sha256` (both in the received
    /// message). With them, the server decrypts and checks the request, re-hosts the file under a new direct
    /// path, and sends the encrypted answer; a request for a message not registered here is answered with
    /// `<error code="2">` (not on the phone), and one that does not decrypt with result `DECRYPTION_ERROR`.
    /// Each registration answers one request.
    pub fn rehost_on_media_retry(&self, message_id: &str, media_key: [u8; 32], file_enc_sha256: &[u8]) {
        if let Some(host) = self.shared().media.get() {
            host.grant_retry(message_id, media_key, file_enc_sha256);
        }
    }

    /// Creates a group with these members (phone numbers of accounts added with [`add_phone`](Self::add_phone))
    /// and returns its JID. The first member is its creator and super admin. Members' devices can then read its
    /// metadata, send and receive its messages and administer it as their rights allow. The group is addressed by
    /// LID (`addressing_mode="lid"`), as WhatsApp creates groups today: its metadata, notifications and messages
    /// name members by LID with the phone number beside.
    pub fn create_group(&self, subject: &str, members: &[&str]) -> Jid {
        self.insert_group(subject, members, true)
    }

    /// Creates a group addressed by phone number (`addressing_mode="pn"`), as groups made before WhatsApp's
    /// move to LIDs are: members, participants and notifications are named by phone number. Otherwise as
    /// [`TestServer::create_group`].
    pub fn create_pn_group(&self, subject: &str, members: &[&str]) -> Jid {
        self.insert_group(subject, members, false)
    }

    fn insert_group(&self, subject: &str, members: &[&str], lid: bool) -> Jid {
        let id = format!("1203630{}", self.shared().next_number() + 10_000_000);
        let mut group = crate::groups::Group::new(subject, members.iter().map(|m| (*m).to_owned()).collect());
        group.lid = lid;
        self.shared().lock().groups.insert(id.clone(), group);
        Jid::new(id, Jid::GROUP_SERVER)
    }

    /// Adds account `number` to `group` without telling anyone (as when every notification of it was lost):
    /// members keep their old member list until a message's participant hash shows it is stale.
    pub fn add_group_member_silently(&self, group: &Jid, number: &str) {
        if let Some(info) = self.shared().lock().groups.get_mut(group.user())
            && !info.members.iter().any(|m| m == number)
        {
            info.members.push(number.to_owned());
        }
    }

    /// Has the phone of account `from` call account `to`: a `<call><offer>` with `call_id` is queued for every
    /// device of `to` (redelivered until acked); returns how many. A device's rejection is reported as
    /// [`ServerEvent::CallRejected`](crate::ServerEvent::CallRejected).
    pub fn place_call(&self, from: &str, to: &str, call_id: &str) -> usize {
        let id = self.shared().next_stanza_id();
        crate::social::place_call(&mut self.shared().lock(), from, to, call_id, &id)
    }

    /// Has account `from` give account `to` a privacy token: a `privacy_token` notification (naming `from` by
    /// phone number, with its LID as `sender_lid`) queued for every device of `to`.
    pub fn send_privacy_token(&self, from: &str, to: &str, token: &[u8]) {
        let id = self.shared().next_stanza_id();
        crate::social::send_privacy_token(&mut self.shared().lock(), from, to, token, &id);
    }

    /// Sets account `number`'s profile photo id (`None`: no photo), as answered to photo and user-info queries.
    pub fn set_profile_picture(&self, number: &str, id: Option<&str>) {
        crate::social::set_picture(&mut self.shared().lock(), number, id);
    }

    /// Makes account `number` a business with `profile` (answered to business-profile queries), or (`None`) an
    /// ordinary account, for which the server answers as for any account that is not a business.
    pub fn set_business_profile(&self, number: &str, profile: Option<crate::BusinessInfo>) {
        crate::business::set(&mut self.shared().lock(), number, profile);
    }

    /// Gives account `number` a profile photo with these JPEG bytes, served by the media host at the URL photo
    /// queries answer (both sizes serve the same bytes); returns the photo's new id.
    pub fn set_profile_photo(&self, number: &str, jpeg: &[u8]) -> String {
        let id = self.shared().next_number().to_string();
        if let Some(media) = self.shared().media.get() {
            for kind in ["image", "preview"] {
                let path = crate::media::MediaHost::picture_path(number, &id, kind);
                media.host_picture(&path, jpeg.to_vec());
            }
        }
        crate::social::set_picture(&mut self.shared().lock(), number, Some(&id));
        id
    }

    /// Account `number`'s about text, last push name sent with presence, and default disappearing timer
    /// (seconds), as the server holds them.
    pub fn profile(&self, number: &str) -> (String, String, u32) {
        crate::social::profile_of(&mut self.shared().lock(), number)
    }

    /// The photo a group's member set (JPEG bytes), if any.
    pub fn group_photo(&self, group: &Jid) -> Option<Vec<u8>> {
        let state = self.shared().lock();
        state
            .groups
            .get(group.user())?
            .photo
            .as_ref()
            .map(|(_, jpeg)| jpeg.clone())
    }

    /// The members of a group (phone numbers), in the order they joined; `None` for an unknown group.
    pub fn group_members(&self, group: &Jid) -> Option<Vec<String>> {
        Some(self.shared().lock().groups.get(group.user())?.members.clone())
    }

    /// Creates an account with a primary phone for `number` (digits, international form, no `+`), with a random
    /// LID and a fresh account identity key, and returns its phone. Calling it again for the same number returns
    /// the same account's phone.
    pub fn add_phone(&self, number: &str) -> Phone {
        let mut state = self.shared().lock();
        state.accounts.entry(number.to_owned()).or_insert_with(|| {
            let lid_user = OsRng.gen_range(100_000_000_000_000u64..1_000_000_000_000_000);
            let identity = KeyPair::generate(&mut OsRng);
            Account {
                lid_user: lid_user.to_string(),
                phone_keys: crate::state::PhoneKeys::generate(&identity, &mut OsRng),
                phone_peers: Default::default(),
                phone_sender_keys: Default::default(),
                phone_inbox: Vec::new(),
                identity,
                raw_id: OsRng.r#gen(),
                next_device: 1,
                devices: Default::default(),
                registration_id: OsRng.gen_range(1..16_380),
                sessions: Default::default(),
                app_state_keys: Vec::new(),
                app_state: Default::default(),
                lid_addressed: false,
            }
        });
        drop(state);
        Phone::new(Arc::clone(self.shared()), number.to_owned())
    }

    /// Moves the account of `number` to LID addressing, as WhatsApp does: from now on its messages reach others
    /// from the sending device's LID, with the phone-number device beside it (`from` and `sender_pn` in direct
    /// messages; `participant`, `participant_pn` and `addressing_mode="lid"` in groups and status updates).
    /// Nothing changes for the account's own devices or its sessions: the recipients must find the sessions they
    /// made with the phone-number address under the LID one.
    pub fn address_by_lid(&self, number: &str) {
        if let Some(account) = self.shared().lock().accounts.get_mut(number) {
            account.lid_addressed = true;
        }
    }

    /// Every event from now on.
    pub fn subscribe(&self) -> ServerEvents {
        ServerEvents::new(self.shared().subscribe())
    }

    /// Ends every live connection abruptly: no stream error, no WebSocket close.
    pub fn drop_connections(&self) {
        for conn in self.shared().lock().conns.values() {
            // A connection that already ended needs nothing.
            let _ = conn.tx.send(Command::Abort);
        }
    }

    /// Sends `<stream:error code=CODE>` (with `<conflict type=..>` when `conflict` is given) to the live
    /// connection of `device`, then closes it. Does nothing if the device is not connected.
    pub async fn send_stream_error(&self, device: &Jid, code: u16, conflict: Option<&str>) {
        let mut error = Node::new("stream:error").attr("code", code.to_string());
        if let Some(kind) = conflict {
            error = error.children([Node::new("conflict").attr("type", kind.to_owned())]);
        }
        if let Some((_, conn)) = self.shared().lock().conn_of(device) {
            let _ = conn.tx.send(Command::Close(Some(error)));
        }
    }

    /// While `Some(reason)`, every login is answered with `<failure reason=REASON/>` and closed.
    pub fn fail_logins(&self, reason: Option<u16>) {
        self.shared().lock().faults.fail_logins = reason;
    }

    /// Delays every IQ answer by `delay` (zero: answer at once).
    pub fn set_iq_delay(&self, delay: Duration) {
        self.shared().lock().faults.iq_delay = delay;
    }

    /// Whether keepalive pings are answered; `false` ignores them (they still raise
    /// [`ServerEvent::Pinged`](crate::ServerEvent::Pinged)).
    pub fn answer_pings(&self, yes: bool) {
        self.shared().lock().faults.answer_pings = yes;
    }

    /// Whether message acks empty the devices' inboxes (the default); `false` keeps every copy queued, so each
    /// login delivers it again (duplicate-delivery tests). Acks still raise
    /// [`ServerEvent::Acked`](crate::ServerEvent::Acked).
    pub fn honour_acks(&self, yes: bool) {
        self.shared().lock().faults.ignore_acks = !yes;
    }

    /// Flips a byte of the ciphertext of the next `count` message copies for `device`, so that they fail to
    /// decrypt there (retry-receipt tests); in a group, the device's copy of the `skmsg`.
    pub fn corrupt_next_messages(&self, device: &Jid, count: usize) {
        self.shared()
            .lock()
            .faults
            .corrupt_next
            .insert(device.clone(), count);
    }

    /// Delivers the next message copy for `device` as WhatsApp does when it has no copy for that device: the
    /// `<message>` with `<unavailable type=kind>` (such as `view_once`) in place of its `<enc>`. The device has to
    /// ask its phone for the message, which the simulated phone answers from the copies it received.
    pub fn withhold_next_message(&self, device: &Jid, kind: &str) {
        self.shared()
            .lock()
            .faults
            .withhold_next
            .insert(device.clone(), kind.to_owned());
    }

    /// Whether linking and unlinking a device is announced to the accounts that asked for the account's device
    /// list (a `devices` notification, queued like messages) and to the account's other devices; on by default.
    /// Off, senders keep stale device lists and only the participant hash in the message ack tells them.
    pub fn announce_device_changes(&self, yes: bool) {
        self.shared().lock().faults.silent_device_changes = !yes;
    }

    /// Whether the groups clients create from now on are addressed by phone number (`addressing_mode="pn"`, as
    /// groups made before WhatsApp's move to LIDs) instead of by LID; off by default.
    pub fn create_pn_groups(&self, yes: bool) {
        self.shared().lock().pn_groups = yes;
    }

    /// Whether the stanzas queued for a device are sent newest first when it logs in (out-of-order delivery);
    /// off by default.
    pub fn reverse_inbox(&self, yes: bool) {
        self.shared().lock().faults.reverse_inbox = yes;
    }

    /// Ends `device`'s connection as soon as its next `<message>` arrives, without the ack: the stanza is routed
    /// first when `routed` (the ack was lost: recipients have it) or dropped when not (the message was lost in
    /// transit). Either way the sender cannot tell which, as when a connection drops mid-send.
    pub fn cut_before_next_ack(&self, device: &Jid, routed: bool) {
        self.shared()
            .lock()
            .faults
            .cut_before_ack
            .insert(device.clone(), routed);
    }

    /// Cuts `device`'s connection right after the next message copy is written to it (mid-receive faults).
    pub fn cut_after_next_message(&self, device: &Jid) {
        self.shared().lock().faults.cut_after_next.insert(device.clone());
    }

    /// Sends `stanza` to the live connection of `device` exactly as given, however little sense it makes (a
    /// `<message>` without id, an `<iq>` answer nobody asked for, a `<receipt>` without `from`...). Returns whether
    /// the device is connected.
    pub fn send_stanza(&self, device: &Jid, stanza: Node) -> bool {
        self.shared()
            .lock()
            .conn_of(device)
            .is_some_and(|(_, conn)| conn.tx.send(Command::Send(stanza)).is_ok())
    }

    /// Sends `plaintext` to the live connection of `device` as one encrypted frame, whether or not it is a binary
    /// node (a frame of garbage, a flags byte with nothing after it, a zlib bomb). Returns whether the device is
    /// connected.
    pub fn send_frame_bytes(&self, device: &Jid, plaintext: Vec<u8>) -> bool {
        self.hostile(device, Act::Frame(plaintext))
    }

    /// Writes to the live connection of `device` a frame header claiming `claimed` bytes (at most 16 MiB - 1, what
    /// three length bytes can say), then `filler` bytes of that frame, and then nothing ever again: the connection
    /// reads and ignores what the client sends, answers no ping, and ends only when the client leaves or
    /// [`drop_connections`](Self::drop_connections) is called. Oversized-frame and stalled-stream tests.
    pub fn send_frame_header_then_stall(&self, device: &Jid, claimed: u32, filler: usize) -> bool {
        self.hostile(device, Act::HeaderThenSilence { claimed, filler })
    }

    /// Writes the next message copy for `device` one byte per WebSocket message, pausing `pause` after each byte
    /// (a slow sender); the connection sends nothing else meanwhile.
    pub fn dribble_next_message(&self, device: &Jid, pause: Duration) {
        crate::hostile::dribble_next_message(&mut self.shared().lock(), device, pause);
    }

    /// Writes the next message copy for `device` twice, the same stanza under the same id, both frames in one
    /// WebSocket message: a server that sends a copy again before the device's ack reached it. The device reads
    /// the second copy while it is still handling the first. The copy is queued once.
    pub fn send_next_message_twice(&self, device: &Jid) {
        crate::hostile::send_next_message_twice(&mut self.shared().lock(), device);
    }

    /// Sends the last message copy written to `device` again, byte for byte the same ciphertext: under the stanza
    /// id `new_id`, or under its own id when `None` (a replay after the device acknowledged it). The replay is
    /// queued until acked like any copy. Returns whether there was a copy to replay and the device is connected.
    pub fn replay_last_message(&self, device: &Jid, new_id: Option<&str>) -> bool {
        crate::hostile::replay(&mut self.shared().lock(), device, new_id.map(str::to_owned))
    }

    /// Holds back the server's ack of every message a client sends by `delay` (zero: ack at once). An ack whose
    /// connection ends during the delay is lost.
    pub fn set_ack_delay(&self, delay: Duration) {
        self.shared().lock().hostile.ack_delay = delay;
    }

    fn hostile(&self, device: &Jid, act: Act) -> bool {
        self.shared()
            .lock()
            .conn_of(device)
            .is_some_and(|(_, conn)| conn.tx.send(Command::Hostile(act)).is_ok())
    }

    /// How many messages `device` has not acknowledged.
    pub fn inbox_len(&self, device: &Jid) -> usize {
        self.shared().lock().inboxes.get(device).map_or(0, Vec::len)
    }

    /// How many one-time prekeys the server holds for `device` (0 for an unknown device).
    pub fn prekey_count(&self, device: &Jid) -> usize {
        self.shared()
            .lock()
            .device_mut(device)
            .map_or(0, |d| d.prekeys.len())
    }

    /// The companions linked to the account of `number`, in device order.
    pub fn devices(&self, number: &str) -> Vec<Jid> {
        self.shared()
            .lock()
            .accounts
            .get(number)
            .map(|a| a.devices.keys().map(|d| device_jid(number, *d)).collect())
            .unwrap_or_default()
    }

    /// The copies for phones (device 0) that the phone could not decrypt, oldest first: the phone's device JID,
    /// the message id and why. A correct client leaves this empty.
    pub fn phone_decrypt_failures(&self) -> Vec<(Jid, String, String)> {
        self.shared().lock().phone_failures.clone()
    }

    /// Everything a client sent that the server refused as a protocol violation (a malformed stanza, a message
    /// whose attributes contradict each other, a receipt of the wrong kind), oldest first: the device (when the
    /// connection was logged in) and why. Refused messages are also reported as
    /// [`ServerEvent::MessageRefused`](crate::ServerEvent::MessageRefused). A correct client leaves this empty.
    pub fn protocol_violations(&self) -> Vec<(Option<Jid>, String)> {
        self.shared().lock().violations.clone()
    }

    /// Stops accepting connections and ends every live one abruptly. Phones and subscriptions stay usable for
    /// inspection.
    pub fn shutdown(&self) {
        self.inner.stop();
    }
}

async fn accept_loop(listener: NoiseListener, shared: Arc<Shared>) {
    loop {
        match listener.accept().await {
            Ok(incoming) => {
                tokio::spawn(serve(Arc::clone(&shared), incoming));
            }
            Err(error) => {
                // Accept errors (a reset before accept, descriptor exhaustion) concern one connection; keep going.
                tracing::warn!(%error, "accept failed");
                tokio::task::yield_now().await;
            }
        }
    }
}
