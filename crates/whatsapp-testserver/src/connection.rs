//! One client connection: the handshake, the registration or login decision, then every stanza until the
//! connection ends (protocol-facts §3.2 to §3.5).

use std::sync::Arc;

use rand::Rng;
use rand::distributions::Alphanumeric;
use rand::rngs::OsRng;
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use whatsapp_binary::{Jid, Node, decode_frame, encode_frame};
use whatsapp_noise::{IncomingConnection, NoiseSocket, PrivateKey};
use whatsapp_proto::ProtoMessage;
use whatsapp_proto::handshake::ClientPayload;

use crate::events::ServerEvent;
use crate::phone::{check_device_signature, finish_code_pairing, send_pair_success};
use crate::routing;
use crate::state::{
    CodePairingState, Command, ConnEntry, LinkedDevice, Registration, Role, Shared, device_jid, server_jid,
    unix_now,
};
use crate::validate::{self, child_fixed, content_bytes};

/// Browser names a `companion_platform_display` must start with for code pairing (protocol-facts §3.2, the
/// `DeviceProps.Os` note).
const BROWSERS: [&str; 7] = ["Chrome", "Firefox", "Safari", "Edge", "Opera", "IE", "Brave"];

/// Length of a generated QR or pairing reference.
const REF_LEN: usize = 40;

/// Whether the connection goes on after a stanza.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Flow {
    Continue,
    Close,
}

fn random_ref() -> String {
    OsRng
        .sample_iter(&Alphanumeric)
        .take(REF_LEN)
        .map(char::from)
        .collect()
}

fn iq_result(id: &str) -> Node {
    Node::new("iq")
        .attr("from", server_jid())
        .attr("type", "result")
        .attr("id", id.to_owned())
}

fn iq_error(id: &str, code: u16, text: &'static str) -> Node {
    Node::new("iq")
        .attr("from", server_jid())
        .attr("type", "error")
        .attr("id", id.to_owned())
        .children([Node::new("error")
            .attr("code", code.to_string())
            .attr("text", text)])
}

/// The `<ack error="400">` refusing a malformed message or receipt.
fn nack(stanza: &Node) -> Node {
    let mut nack = Node::new("ack")
        .attr("class", stanza.tag.clone())
        .attr("error", "400");
    if let Some(id) = stanza.attr_value("id") {
        nack = nack.attr("id", id.clone());
    }
    nack
}

/// Whether a message stanza is addressed to a group.
fn to_group(message: &Node) -> bool {
    message
        .optional_jid_attr("to")
        .ok()
        .flatten()
        .is_some_and(|to| to.is_group())
}

fn error_text(code: u16) -> &'static str {
    match code {
        401 => "not-authorized",
        403 => "forbidden",
        404 => "item-not-found",
        406 => "not-acceptable",
        409 => "conflict",
        410 => "gone",
        501 => "feature-not-implemented",
        _ => "bad-request",
    }
}

/// Serves one accepted TCP connection to its end.
pub(crate) async fn serve(shared: Arc<Shared>, incoming: IncomingConnection) {
    let peer = incoming.peer_addr();
    let accepted = match incoming.handshake(PrivateKey::generate(&mut OsRng)).await {
        Ok(accepted) => accepted,
        Err(error) => {
            tracing::debug!(%peer, %error, "handshake failed");
            shared.emit(ServerEvent::HandshakeFailed {
                peer,
                error: error.to_string(),
            });
            return;
        }
    };
    shared.emit(ServerEvent::Connected { peer });
    let (tx, rx) = mpsc::unbounded_channel();
    let mut conn = Conn {
        shared,
        id: 0,
        tx,
        rx,
        socket: accepted.socket,
        client_static: *accepted.client_static.as_bytes(),
        registration: None,
        device: None,
    };
    if conn.start(&accepted.client_payload).await == Flow::Continue {
        conn.run().await;
    }
    conn.finish();
}

struct Conn {
    shared: Arc<Shared>,
    /// The id in the server's connection table; 0 until registered there.
    id: u64,
    tx: mpsc::UnboundedSender<Command>,
    rx: mpsc::UnboundedReceiver<Command>,
    socket: NoiseSocket<TcpStream>,
    client_static: [u8; 32],
    /// The keys of a registering (unpaired) connection.
    registration: Option<Registration>,
    /// The device of a logged-in connection.
    device: Option<Jid>,
}

impl Conn {
    /// Reads the client payload: registration or login.
    async fn start(&mut self, payload: &[u8]) -> Flow {
        let payload = match ClientPayload::decode(payload) {
            Ok(payload) => payload,
            Err(error) => {
                self.violation(format!("client payload does not decode: {error}"));
                return self.fail(400).await;
            }
        };
        match (&payload.device_pairing_data, payload.username) {
            (Some(data), None) => match validate::registration(data) {
                Ok(registration) => self.register(registration).await,
                Err(reason) => {
                    tracing::info!(%reason, "registration refused");
                    self.shared.emit(ServerEvent::RegistrationRefused { reason });
                    self.fail(400).await
                }
            },
            (None, Some(user)) => self.login(user, payload.device.unwrap_or(0)).await,
            _ => {
                let reason = "payload must carry either devicePairingData or username".to_owned();
                self.shared.emit(ServerEvent::RegistrationRefused { reason });
                self.fail(400).await
            }
        }
    }

    /// Sends `<failure reason=..>` and ends the connection.
    async fn fail(&mut self, reason: u16) -> Flow {
        let failure = Node::new("failure").attr("reason", reason.to_string());
        self.close(Some(failure)).await
    }

    /// An unpaired connection: record it and send its QR references.
    async fn register(&mut self, registration: Registration) -> Flow {
        let refs: Vec<String> = (0..self.shared.qr_refs).map(|_| random_ref()).collect();
        {
            let mut state = self.shared.lock();
            self.id = state.next_conn;
            state.next_conn += 1;
            state.conns.insert(
                self.id,
                ConnEntry {
                    tx: self.tx.clone(),
                    client_static: self.client_static,
                    role: Role::Unpaired {
                        registration: registration.clone(),
                        refs: refs.clone(),
                    },
                },
            );
        }
        self.registration = Some(registration);
        let pair_device = Node::new("iq")
            .attr("from", server_jid())
            .attr("type", "set")
            .attr("id", self.shared.next_stanza_id())
            .attr("xmlns", "md")
            .children([Node::new("pair-device").children(
                refs.iter()
                    .map(|r| Node::new("ref").bytes(r.clone().into_bytes())),
            )]);
        let flow = self.send(pair_device).await;
        self.shared.emit(ServerEvent::PairDeviceSent { refs });
        flow
    }

    /// A login: the device must be linked and the Noise key must be the one it paired with.
    async fn login(&mut self, user: u64, device: u32) -> Flow {
        let number = user.to_string();
        let outcome = {
            let mut state = self.shared.lock();
            let checked = if let Some(reason) = state.faults.fail_logins {
                Err(reason)
            } else {
                let device_id = u16::try_from(device).ok().filter(|d| *d != 0);
                let account = state.accounts.get(&number);
                match (device_id, account) {
                    (Some(device_id), Some(account)) => match account.devices.get(&device_id) {
                        Some(linked) if linked.noise_key == self.client_static => {
                            Ok((device_id, account.lid_user.clone()))
                        }
                        _ => Err(401),
                    },
                    _ => Err(401),
                }
            };
            checked.map(|(device_id, lid_user)| {
                let jid = device_jid(&number, device_id);
                if let Some((old, entry)) = state.conn_of(&jid) {
                    let conflict =
                        Node::new("stream:error").children([Node::new("conflict").attr("type", "replaced")]);
                    // The old connection may have ended already; then there is nothing to replace.
                    let _ = entry.tx.send(Command::Close(Some(conflict)));
                    tracing::info!(%jid, old, "login replaces an older connection");
                    self.shared
                        .emit(ServerEvent::StreamReplaced { device: jid.clone() });
                }
                self.id = state.next_conn;
                state.next_conn += 1;
                state.conns.insert(
                    self.id,
                    ConnEntry {
                        tx: self.tx.clone(),
                        client_static: self.client_static,
                        role: Role::Device(jid.clone()),
                    },
                );
                (jid, lid_user)
            })
        };
        match outcome {
            Ok((jid, lid_user)) => {
                let now = unix_now().to_string();
                let success = Node::new("success")
                    .attr("t", now.clone())
                    .attr("lid", Jid::new(lid_user, Jid::LID_SERVER))
                    .attr("display_name", "")
                    .attr("creation", now);
                self.device = Some(jid.clone());
                let flow = self.send(success).await;
                self.shared.emit(ServerEvent::LoggedIn { device: jid });
                flow
            }
            Err(reason) => {
                tracing::info!(%number, device, reason, "login refused");
                self.shared.emit(ServerEvent::LoginRefused { reason });
                self.fail(reason).await
            }
        }
    }

    /// Stanzas in, commands in, until either side ends the connection.
    async fn run(&mut self) {
        loop {
            let flow = tokio::select! {
                frame = self.socket.recv_frame() => match frame {
                    Ok(Some(frame)) => match decode_frame(&frame) {
                        Ok(node) => self.handle(node).await,
                        Err(error) => {
                            self.violation(format!("frame does not decode: {error}"));
                            self.close(None).await
                        }
                    },
                    Ok(None) => Flow::Close,
                    Err(error) => {
                        tracing::debug!(%error, "connection read failed");
                        Flow::Close
                    }
                },
                command = self.rx.recv() => match command {
                    Some(Command::Send(node)) => self.send(node).await,
                    Some(Command::Close(node)) => self.close(node).await,
                    Some(Command::Abort) | None => Flow::Close,
                    Some(Command::Hostile(act)) => match crate::hostile::perform(&mut self.socket, &mut self.rx, act).await {
                        Ok(true) => Flow::Continue,
                        Ok(false) | Err(_) => Flow::Close,
                    },
                },
            };
            if flow == Flow::Close {
                return;
            }
        }
    }

    /// Forgets the connection and what was pending on it.
    fn finish(&mut self) {
        {
            let mut state = self.shared.lock();
            state.conns.remove(&self.id);
            let id = self.id;
            state.pending_pairs.retain(|_, p| p.conn != id);
            state.code_pairings.retain(|_, p| p.conn != id);
        }
        self.shared.emit(ServerEvent::Disconnected {
            device: self.device.clone(),
        });
    }

    fn violation(&self, reason: String) {
        tracing::warn!(device = ?self.device, %reason, "protocol violation");
        self.shared
            .lock()
            .violations
            .push((self.device.clone(), reason.clone()));
        self.shared.emit(ServerEvent::ProtocolViolation {
            device: self.device.clone(),
            reason,
        });
    }

    async fn send(&mut self, node: Node) -> Flow {
        tracing::trace!(%node, "send");
        let sent = match crate::hostile::before_send(&self.shared, &self.tx, self.device.as_ref(), &node) {
            crate::hostile::Write::Whole => self.socket.send_frame(&encode_frame(&node)).await,
            crate::hostile::Write::Dribble(pause) => {
                crate::hostile::dribble(&mut self.socket, &encode_frame(&node), pause).await
            }
            crate::hostile::Write::Deferred => Ok(()),
            crate::hostile::Write::Twice => {
                let frame = encode_frame(&node);
                self.socket.send_frames(&[&frame, &frame]).await
            }
        };
        match sent {
            Ok(()) => Flow::Continue,
            Err(error) => {
                tracing::debug!(%error, "send failed");
                Flow::Close
            }
        }
    }

    async fn close(&mut self, node: Option<Node>) -> Flow {
        if let Some(node) = node {
            self.send(node).await;
        }
        // The peer may be gone already; the connection ends either way.
        let _ = self.socket.close().await;
        Flow::Close
    }

    /// Sends IQ answers (and what must follow them), after the configured IQ delay.
    async fn respond(&mut self, nodes: Vec<Node>) -> Flow {
        let delay = self.shared.lock().faults.iq_delay;
        if delay.is_zero() {
            for node in nodes {
                if self.send(node).await == Flow::Close {
                    return Flow::Close;
                }
            }
        } else {
            let tx = self.tx.clone();
            tokio::spawn(async move {
                tokio::time::sleep(delay).await;
                for node in nodes {
                    // The connection may have ended during the delay.
                    let _ = tx.send(Command::Send(node));
                }
            });
        }
        Flow::Continue
    }

    /// `<iq xmlns="privacy" type="set"><tokens><token jid t type/>...`: the sender issues its privacy token to
    /// each named contact, who gets it in a `privacy_token` notification; each is reported as
    /// [`ServerEvent::PrivacyTokenIssued`]. A malformed request is refused with 400, an unknown contact with 404.
    async fn issue_privacy_tokens(&mut self, id: &str, iq: &Node) -> Flow {
        let Some(device) = self.device.clone() else {
            return self.respond_error(id, 401).await;
        };
        let issued: Option<Vec<(Jid, i64)>> = iq.child("tokens").and_then(|tokens| {
            tokens
                .children_by_tag("token")
                .map(|token| {
                    (token.optional_str_attr("type") == Some("trusted_contact"))
                        .then(|| Some((token.jid_attr("jid").ok()?, token.i64_attr("t").ok()?)))
                        .flatten()
                })
                .collect()
        });
        let issued = match issued {
            Some(issued) if !issued.is_empty() && iq.optional_str_attr("type") == Some("set") => issued,
            _ => return self.respond_error(id, 400).await,
        };
        let ids: Vec<String> = issued.iter().map(|_| self.shared.next_stanza_id()).collect();
        let delivered =
            crate::social::issue_privacy_tokens(&mut self.shared.lock(), device.user(), &issued, &ids);
        if let Err(code) = delivered {
            return self.respond_error(id, code).await;
        }
        for (contact, timestamp) in issued {
            self.shared.emit(ServerEvent::PrivacyTokenIssued {
                from: device.clone(),
                contact,
                timestamp,
            });
        }
        let result = Node::new("iq")
            .attr("from", server_jid())
            .attr("type", "result")
            .attr("id", id.to_owned());
        self.respond(vec![result]).await
    }

    async fn respond_error(&mut self, id: &str, code: u16) -> Flow {
        self.respond(vec![iq_error(id, code, error_text(code))]).await
    }

    async fn handle(&mut self, node: Node) -> Flow {
        tracing::trace!(%node, "received");
        match node.tag.as_ref() {
            "iq" => self.handle_iq(node).await,
            "message" => self.route_message(&node).await,
            "receipt" => self.route_receipt(&node).await,
            "presence" | "chatstate" | "call" => self.social_stanza(&node).await,
            "ack" => {
                if let Some(device) = self.device.clone() {
                    let acked = routing::acknowledged(&mut self.shared.lock(), &device, &node);
                    if let Some((class, id)) = acked {
                        self.shared.emit(ServerEvent::Acked { device, class, id });
                    }
                }
                Flow::Continue
            }
            // Acks of our notifications and anything this server does not route yet are accepted silently.
            _ => Flow::Continue,
        }
    }

    async fn handle_iq(&mut self, iq: Node) -> Flow {
        let Some(id) = iq.optional_str_attr("id").map(str::to_owned) else {
            self.violation("iq without id".to_owned());
            return self.close(None).await;
        };
        match iq.optional_str_attr("type") {
            Some("result") => self.handle_result(&id, &iq).await,
            Some("error") => {
                self.handle_error(&id, &iq);
                Flow::Continue
            }
            Some("get" | "set") => self.handle_request(&id, &iq).await,
            other => {
                self.violation(format!("iq {id} has type {other:?}"));
                self.close(None).await
            }
        }
    }

    async fn handle_request(&mut self, id: &str, iq: &Node) -> Flow {
        let to_groups = iq
            .optional_jid_attr("to")
            .ok()
            .flatten()
            .is_some_and(|to| to.is_group());
        let group_photo = iq.optional_str_attr("xmlns") == Some("w:profile:picture")
            && iq
                .optional_jid_attr("target")
                .ok()
                .flatten()
                .is_some_and(|to| to.is_group());
        if to_groups || group_photo {
            let answer = match self.device.as_ref() {
                Some(device) if group_photo && iq.optional_str_attr("type") == Some("get") => {
                    crate::groups::photo(&self.shared, id, device, iq)
                }
                Some(device) if group_photo => crate::groups::set_photo(&self.shared, id, device, iq),
                Some(device) if iq.optional_str_attr("xmlns") == Some("w:g2") => {
                    crate::groups::answer(&self.shared, id, device, iq)
                }
                Some(_) => Err(501),
                None => Err(401),
            };
            return match answer {
                Ok(answer) => self.respond(vec![answer]).await,
                Err(code) => self.respond_error(id, code).await,
            };
        }
        if crate::newsletters::handles(iq) {
            let answer = match self.device.as_ref() {
                Some(device) => crate::newsletters::answer(&self.shared, id, device, iq),
                None => Err(401),
            };
            return match answer {
                Ok(answer) => self.respond(vec![answer]).await,
                Err(code) => self.respond_error(id, code).await,
            };
        }
        if iq.optional_jid_attr("to").ok().flatten() != Some(server_jid()) {
            return self.respond_error(id, 400).await;
        }
        if crate::business::handles(iq) {
            let answer = match self.device.as_ref() {
                Some(_) => crate::business::answer(&self.shared.lock(), id, iq),
                None => Err(401),
            };
            return match answer {
                Ok(answer) => self.respond(vec![answer]).await,
                Err(code) => self.respond_error(id, code).await,
            };
        }
        if iq.optional_str_attr("xmlns") == Some("privacy") && iq.child("tokens").is_some() {
            return self.issue_privacy_tokens(id, iq).await;
        }
        if crate::social::handles(iq) {
            let answer = match self.device.as_ref() {
                Some(device) => crate::social::answer(&mut self.shared.lock(), device, id, iq),
                None => Err(401),
            };
            return match answer {
                Ok(answer) => self.respond(vec![answer]).await,
                Err(code) => self.respond_error(id, code).await,
            };
        }
        let kind = iq.optional_str_attr("type").unwrap_or_default();
        match (iq.optional_str_attr("xmlns").unwrap_or_default(), kind) {
            ("w:p", "get") => self.ping(id).await,
            ("passive", "set") if iq.child("active").is_some() => {
                let Some(device) = self.device.clone() else {
                    return self.respond_error(id, 401).await;
                };
                // An active device gets everything it has not acknowledged (the offline queue).
                let queued = routing::inbox(&self.shared.lock(), &device);
                self.shared.emit(ServerEvent::Activated { device });
                let mut nodes = vec![iq_result(id)];
                nodes.extend(queued);
                self.respond(nodes).await
            }
            ("encrypt", "get") if iq.child("count").is_some() => self.prekey_count(id).await,
            ("encrypt", "get") if iq.child("digest").is_some() => self.prekey_digest(id).await,
            ("w:m", "set") if iq.child("media_conn").is_some() && self.device.is_some() => {
                let answer = self
                    .shared
                    .media
                    .get()
                    .map(|host| crate::media::media_conn_answer(host, id));
                match answer {
                    Some(answer) => self.respond(vec![answer]).await,
                    None => self.respond_error(id, 503).await,
                }
            }
            ("encrypt", "get") if iq.child("key").is_some() && self.device.is_some() => {
                let answer = routing::bundle_answer(&mut self.shared.lock(), id, iq);
                self.answer_or_refuse(id, answer).await
            }
            ("w:sync:app:state", "set") => {
                let Some(device) = self.device.clone() else {
                    return self.respond_error(id, 401).await;
                };
                let answer = crate::app_state::sync_answer(&mut self.shared.lock(), id, &device, iq);
                match answer {
                    Ok(answer) => self.respond(vec![answer]).await,
                    Err(reason) => {
                        self.violation(reason);
                        self.respond_error(id, 400).await
                    }
                }
            }
            ("usync", "get") if let Some(device) = self.device.clone() => {
                let answer = routing::usync_answer(&mut self.shared.lock(), &device, id, iq);
                let users = iq
                    .child("usync")
                    .and_then(|usync| usync.child("list"))
                    .map_or(0, |list| list.children_by_tag("user").count());
                self.shared
                    .emit(ServerEvent::DeviceListsQueried { from: device, users });
                self.answer_or_refuse(id, answer).await
            }
            ("encrypt", "set") if iq.child("registration").is_some() => self.prekey_upload(id, iq).await,
            ("md", "set") if iq.child("link_code_companion_reg").is_some() => self.code_pairing(id, iq).await,
            ("md", "set") if iq.child("remove-companion-device").is_some() => self.logout(id, iq).await,
            _ => self.respond_error(id, 501).await,
        }
    }

    async fn answer_or_refuse(&mut self, id: &str, answer: Result<Node, &'static str>) -> Flow {
        match answer {
            Ok(answer) => self.respond(vec![answer]).await,
            Err(reason) => {
                self.violation(reason.to_owned());
                self.respond_error(id, 400).await
            }
        }
    }

    /// A `<message>` from a logged-in device: fan it out, then ack it (or refuse it with `error="400"`).
    async fn route_message(&mut self, message: &Node) -> Flow {
        let Some(sender) = self.device.clone() else {
            self.violation("message from a connection that is not logged in".to_owned());
            return self.close(None).await;
        };
        if crate::newsletters::to_channel(message) {
            return self.channel_stanza(&sender, message).await;
        }
        let cut = self.shared.lock().faults.cut_before_ack.remove(&sender);
        if cut == Some(false) {
            return Flow::Close;
        }
        if let Some(token) = message.child("tctoken").and_then(Node::content_bytes) {
            self.shared.emit(ServerEvent::PrivacyTokenAttached {
                from: sender.clone(),
                id: message.optional_str_attr("id").unwrap_or_default().to_owned(),
                token: token.to_vec(),
            });
        }
        if let Some(token) = message.child("cstoken").and_then(Node::content_bytes) {
            self.shared.emit(ServerEvent::CsTokenAttached {
                from: sender.clone(),
                id: message.optional_str_attr("id").unwrap_or_default().to_owned(),
                token: token.to_vec(),
            });
        }
        let blocked = {
            let state = self.shared.lock();
            message
                .optional_jid_attr("to")
                .ok()
                .flatten()
                .filter(|to| !to.is_group())
                .and_then(|to| routing::resolve(&state, &to))
                .is_some_and(|(number, _)| crate::social::blocks(&state, &number, sender.user()))
        };
        if blocked {
            // As the real server does, the sender cannot tell: the message is acknowledged and dropped.
            let id = message.optional_str_attr("id").unwrap_or_default().to_owned();
            self.shared.emit(ServerEvent::MessageBlocked {
                from: sender,
                id: id.clone(),
            });
            let ack = Node::new("ack")
                .attr("class", "message")
                .attr("id", id)
                .attr("t", unix_now().to_string());
            return self.send(ack).await;
        }
        let routed = routing::route_message(&mut self.shared.lock(), &sender, message);
        match routed {
            Ok(routing::Routed {
                ack, duplicate: true, ..
            }) => {
                let id = message.optional_str_attr("id").unwrap_or_default().to_owned();
                self.shared
                    .emit(ServerEvent::MessageDuplicate { from: sender, id });
                if cut.is_some() {
                    return Flow::Close;
                }
                self.send(ack).await
            }
            Ok(routing::Routed { ack, copies, .. }) => {
                let id = message.optional_str_attr("id").unwrap_or_default().to_owned();
                let pairwise = match message.child("participants") {
                    Some(_) => companion_targets(message)
                        .filter(|to| to.child("enc").is_some())
                        .count(),
                    None => usize::from(message.child("enc").is_some() && !to_group(message)),
                };
                let prekey = pairwise_encs(message)
                    .filter(|enc| enc.optional_str_attr("type") == Some("pkmsg"))
                    .count();
                self.shared.emit(ServerEvent::MessageRouted {
                    from: sender,
                    id,
                    copies,
                    pairwise,
                    prekey,
                });
                if cut.is_some() {
                    return Flow::Close;
                }
                self.send(ack).await
            }
            Err(reason) => {
                tracing::info!(%sender, %reason, "message refused");
                self.shared
                    .lock()
                    .violations
                    .push((Some(sender.clone()), reason.clone()));
                self.shared
                    .emit(ServerEvent::MessageRefused { from: sender, reason });
                self.send(nack(message)).await
            }
        }
    }

    /// A `<message>` (post or reaction) or `<receipt>` (views) to a channel (see [`crate::newsletters`]): acked,
    /// or refused with the ack's `error` code.
    async fn channel_stanza(&mut self, sender: &Jid, stanza: &Node) -> Flow {
        let (ack, refused) = if stanza.tag == "receipt" {
            crate::newsletters::receipt(&mut self.shared.lock(), sender, stanza)
        } else {
            crate::newsletters::message(&mut self.shared.lock(), sender, stanza)
        };
        if let Some(reason) = refused {
            tracing::info!(%sender, %reason, "channel stanza refused");
            self.shared.emit(ServerEvent::MessageRefused {
                from: sender.clone(),
                reason,
            });
        }
        self.send(ack).await
    }

    /// A `<presence>`, `<chatstate>` or `<call>` from a logged-in device (see [`crate::social`]). Presence and
    /// chat states get no answer; a call rejection is acked. Anything malformed is a protocol violation.
    async fn social_stanza(&mut self, node: &Node) -> Flow {
        let Some(sender) = self.device.clone() else {
            self.violation(format!("{} from a connection that is not logged in", node.tag));
            return self.close(None).await;
        };
        let outcome = match node.tag.as_ref() {
            "presence" => crate::social::presence(&mut self.shared.lock(), &sender, node).map(|e| (e, None)),
            "chatstate" => {
                crate::social::chat_state(&mut self.shared.lock(), &sender, node).map(|e| (e, None))
            }
            _ => crate::social::call(&sender, node).map(|(e, ack)| (e, Some(ack))),
        };
        match outcome {
            Ok((event, ack)) => {
                self.shared.emit(event);
                match ack {
                    Some(ack) => self.send(ack).await,
                    None => Flow::Continue,
                }
            }
            Err(reason) => {
                self.violation(reason);
                Flow::Continue
            }
        }
    }

    /// A `<receipt>` from a logged-in device: forward it to the addressed account's devices, then ack it.
    async fn route_receipt(&mut self, receipt: &Node) -> Flow {
        let Some(sender) = self.device.clone() else {
            self.violation("receipt from a connection that is not logged in".to_owned());
            return self.close(None).await;
        };
        if crate::newsletters::to_channel(receipt) {
            return self.channel_stanza(&sender, receipt).await;
        }
        if receipt.optional_str_attr("type") == Some("server-error") {
            return self.media_retry(&sender, receipt).await;
        }
        let routed = routing::route_receipt(&mut self.shared.lock(), &sender, receipt);
        match routed {
            Ok((ack, copies)) => {
                self.shared.emit(ServerEvent::ReceiptRouted {
                    from: sender,
                    id: receipt.optional_str_attr("id").unwrap_or_default().to_owned(),
                    kind: receipt.optional_str_attr("type").map(str::to_owned),
                    copies,
                });
                self.send(ack).await
            }
            Err(reason) => {
                self.violation(reason);
                self.send(nack(receipt)).await
            }
        }
    }

    /// A media retry request (`<receipt type="server-error">`): the account's phone answers it at once with a
    /// `mediaretry` notification (see [`crate::media`]).
    async fn media_retry(&mut self, sender: &Jid, receipt: &Node) -> Flow {
        let answer = match self.shared.media.get() {
            Some(host) => host.answer_retry(sender, receipt),
            None => Err("media retry before the media host started".to_owned()),
        };
        match answer {
            Ok((ack, notification)) => {
                if self.send(ack).await == Flow::Close {
                    return Flow::Close;
                }
                self.send(notification).await
            }
            Err(reason) => {
                self.violation(reason);
                self.send(nack(receipt)).await
            }
        }
    }

    async fn ping(&mut self, id: &str) -> Flow {
        let answer = self.shared.lock().faults.answer_pings;
        self.shared.emit(ServerEvent::Pinged {
            device: self.device.clone(),
        });
        if answer {
            self.respond(vec![iq_result(id)]).await
        } else {
            Flow::Continue
        }
    }

    /// The digest of this device's key bundle as the server holds it (`<iq xmlns="encrypt" type="get"><digest/>`),
    /// which WhatsApp Web compares with its own keys: registration id, identity, signed prekey, the ids of the
    /// one-time prekeys left, and a SHA-1 over the identity, the signed prekey and its signature, and those
    /// prekeys' public keys in order.
    async fn prekey_digest(&mut self, id: &str) -> Flow {
        use sha1::Digest as _;
        let Some(device) = self.device.clone() else {
            return self.respond_error(id, 401).await;
        };
        let digest = {
            let mut state = self.shared.lock();
            state.device_mut(&device).map(|linked| {
                let registration = &linked.registration;
                let mut hash = sha1::Sha1::new();
                hash.update(registration.identity);
                hash.update(registration.signed_prekey);
                hash.update(registration.signed_prekey_signature);
                for public in linked.prekeys.values() {
                    hash.update(public);
                }
                Node::new("digest").children([
                    Node::new("registration").bytes(registration.registration_id.to_be_bytes().to_vec()),
                    Node::new("type").bytes(vec![crate::validate::DJB_KEY_TYPE]),
                    Node::new("identity").bytes(registration.identity.to_vec()),
                    Node::new("skey").children([
                        Node::new("id").bytes(registration.signed_prekey_id.to_be_bytes()[1..].to_vec()),
                        Node::new("value").bytes(registration.signed_prekey.to_vec()),
                        Node::new("signature").bytes(registration.signed_prekey_signature.to_vec()),
                    ]),
                    Node::new("list").children(
                        linked
                            .prekeys
                            .keys()
                            .map(|key_id| Node::new("id").bytes(key_id.to_be_bytes()[1..].to_vec())),
                    ),
                    Node::new("hash").bytes(hash.finalize().to_vec()),
                ])
            })
        };
        match digest {
            Some(digest) => self.respond(vec![iq_result(id).children([digest])]).await,
            None => self.respond_error(id, 401).await,
        }
    }

    async fn prekey_count(&mut self, id: &str) -> Flow {
        let Some(device) = self.device.clone() else {
            return self.respond_error(id, 401).await;
        };
        let count = self.shared.lock().device_mut(&device).map(|d| d.prekeys.len());
        match count {
            Some(count) => {
                let result = iq_result(id).children([Node::new("count").attr("value", count.to_string())]);
                self.respond(vec![result]).await
            }
            None => self.respond_error(id, 401).await,
        }
    }

    async fn prekey_upload(&mut self, id: &str, iq: &Node) -> Flow {
        let Some(device) = self.device.clone() else {
            return self.respond_error(id, 401).await;
        };
        let Some(registration) = self
            .shared
            .lock()
            .device_mut(&device)
            .map(|d| d.registration.clone())
        else {
            return self.respond_error(id, 401).await;
        };
        match validate::prekey_upload(iq, &registration) {
            Ok(upload) => {
                let count = upload.prekeys.len();
                if let Some(linked) = self.shared.lock().device_mut(&device) {
                    linked.prekeys.extend(upload.prekeys);
                    linked.registration.signed_prekey_id = upload.signed_prekey_id;
                    linked.registration.signed_prekey = upload.signed_prekey;
                    linked.registration.signed_prekey_signature = upload.signed_prekey_signature;
                }
                self.shared.emit(ServerEvent::PrekeysUploaded { device, count });
                self.respond(vec![iq_result(id)]).await
            }
            Err(refusal) => {
                tracing::info!(%device, reason = %refusal.reason, "prekey upload refused");
                self.shared.emit(ServerEvent::PrekeyUploadRefused {
                    device,
                    code: refusal.code,
                    reason: refusal.reason,
                });
                self.respond_error(id, refusal.code).await
            }
        }
    }

    async fn logout(&mut self, id: &str, iq: &Node) -> Flow {
        let Some(device) = self.device.clone() else {
            return self.respond_error(id, 401).await;
        };
        let named = iq
            .child("remove-companion-device")
            .and_then(|r| r.optional_jid_attr("jid").ok().flatten());
        if named.as_ref() != Some(&device) {
            return self.respond_error(id, 400).await;
        }
        let removed = {
            let mut state = self.shared.lock();
            let removed = state
                .accounts
                .get_mut(device.user())
                .and_then(|a| a.devices.remove(&device.device()))
                .is_some();
            if removed {
                routing::devices_changed(&mut state, device.user(), "remove", device.device());
            }
            removed
        };
        if !removed {
            return self.respond_error(id, 404).await;
        }
        self.shared.emit(ServerEvent::LoggedOut { device });
        self.respond(vec![iq_result(id)]).await
    }

    async fn code_pairing(&mut self, id: &str, iq: &Node) -> Flow {
        let Some(reg) = iq.child("link_code_companion_reg") else {
            return self.respond_error(id, 400).await;
        };
        if self.registration.is_none() {
            // Only a registering connection pairs.
            return self.respond_error(id, 400).await;
        }
        match reg.optional_str_attr("stage") {
            Some("companion_hello") => self.companion_hello(id, reg).await,
            Some("companion_finish") => self.companion_finish(id, reg).await,
            _ => self.respond_error(id, 400).await,
        }
    }

    /// Checks a `companion_hello` and answers with a pairing reference.
    async fn companion_hello(&mut self, id: &str, reg: &Node) -> Flow {
        let checked = (|| -> Result<(String, [u8; 80]), u16> {
            let jid = reg.jid_attr("jid").map_err(|_| 400u16)?;
            if jid.server() != Jid::DEFAULT_USER_SERVER || jid.device() != 0 {
                return Err(400);
            }
            let wrapped = child_fixed::<80>(reg, "link_code_pairing_wrapped_companion_ephemeral_pub")
                .map_err(|_| 400u16)?;
            let auth_key = child_fixed::<32>(reg, "companion_server_auth_key_pub").map_err(|_| 400u16)?;
            if auth_key != self.client_static {
                return Err(400);
            }
            let platform_id = reg.child("companion_platform_id").and_then(content_bytes);
            if platform_id.is_none_or(|p| p.is_empty()) {
                return Err(400);
            }
            let display = reg
                .child("companion_platform_display")
                .and_then(content_bytes)
                .and_then(|d| String::from_utf8(d).ok())
                .ok_or(400u16)?;
            if !BROWSERS.iter().any(|b| display.starts_with(b)) {
                return Err(400);
            }
            if !self.shared.lock().accounts.contains_key(jid.user()) {
                return Err(404);
            }
            Ok((jid.user().to_owned(), wrapped))
        })();
        let (number, wrapped) = match checked {
            Ok(checked) => checked,
            Err(code) => return self.respond_error(id, code).await,
        };
        let pairing_ref = random_ref();
        let sequence = self.shared.next_number();
        self.shared.lock().code_pairings.insert(
            pairing_ref.clone(),
            CodePairingState {
                conn: self.id,
                number: number.clone(),
                sequence,
                wrapped_companion_ephemeral: wrapped,
                exchange: None,
            },
        );
        let result = iq_result(id).children([Node::new("link_code_companion_reg")
            .children([Node::new("link_code_pairing_ref").bytes(pairing_ref.clone().into_bytes())])]);
        let flow = self.respond(vec![result]).await;
        self.shared
            .emit(ServerEvent::CodePairingStarted { number, pairing_ref });
        flow
    }

    /// The phone's half of `companion_finish`, then the `pair-success`.
    async fn companion_finish(&mut self, id: &str, reg: &Node) -> Flow {
        let pairing_ref = reg
            .child("link_code_pairing_ref")
            .and_then(content_bytes)
            .and_then(|r| String::from_utf8(r).ok());
        let bundle = reg
            .child("link_code_pairing_wrapped_key_bundle")
            .and_then(content_bytes);
        let identity = child_fixed::<32>(reg, "companion_identity_public").ok();
        let jid = reg.optional_jid_attr("jid").ok().flatten();
        let (Some(pairing_ref), Some(bundle), Some(identity), Some(jid)) =
            (pairing_ref, bundle, identity, jid)
        else {
            return self.respond_error(id, 400).await;
        };
        if self.registration.as_ref().map(|r| r.identity) != Some(identity) {
            return self.respond_error(id, 400).await;
        }
        let outcome = {
            let mut state = self.shared.lock();
            match state.code_pairings.remove(&pairing_ref) {
                Some(pairing) if pairing.conn == self.id && pairing.number == jid.user() => {
                    let finished = state
                        .accounts
                        .get(&pairing.number)
                        .ok_or_else(|| "account is gone".to_owned())
                        .and_then(|account| finish_code_pairing(&pairing, account, &bundle, &identity));
                    Some(finished.map(|finish| {
                        let iq_id = self.shared.next_stanza_id();
                        send_pair_success(
                            &mut state,
                            &pairing.number,
                            self.id,
                            &finish.companion_identity,
                            &finish.adv_secret,
                            None,
                            iq_id,
                        )
                        .0
                    }))
                }
                Some(other) => {
                    // Not this connection's pairing: leave it for its owner.
                    state.code_pairings.insert(pairing_ref, other);
                    None
                }
                None => None,
            }
        };
        match outcome {
            None => self.respond_error(id, 404).await,
            Some(Ok(pair_success)) => self.respond(vec![iq_result(id), pair_success]).await,
            Some(Err(reason)) => {
                tracing::info!(%reason, "code pairing refused");
                self.shared.emit(ServerEvent::PairRejected {
                    code: 400,
                    text: reason,
                });
                self.respond_error(id, 400).await
            }
        }
    }

    /// A result: the answer to a `pair-success` is checked; other results (the `pair-device` ack) need nothing.
    async fn handle_result(&mut self, id: &str, iq: &Node) -> Flow {
        let checked = {
            let mut state = self.shared.lock();
            let pending = match state.pending_pairs.remove(id) {
                Some(pending) if pending.conn == self.id => pending,
                Some(other) => {
                    state.pending_pairs.insert(id.to_owned(), other);
                    return Flow::Continue;
                }
                None => return Flow::Continue,
            };
            let account_identity = state
                .accounts
                .get(&pending.number)
                .map(|a| *a.identity.public.as_bytes());
            let device_identity = iq
                .child("pair-device-sign")
                .and_then(|s| s.child("device-identity"));
            let verdict = match (account_identity, device_identity) {
                (Some(account_identity), Some(device_identity)) => {
                    check_device_signature(&pending, &account_identity, device_identity)
                }
                (None, _) => Err("account is gone".to_owned()),
                (_, None) => Err("pair-device-sign/device-identity is missing".to_owned()),
            };
            verdict.and_then(|()| {
                let registration = self
                    .registration
                    .clone()
                    .ok_or_else(|| "connection did not register".to_owned())?;
                let account = state
                    .accounts
                    .get_mut(&pending.number)
                    .ok_or_else(|| "account is gone".to_owned())?;
                account.devices.insert(
                    pending.device_id,
                    LinkedDevice {
                        noise_key: self.client_static,
                        registration,
                        prekeys: Default::default(),
                    },
                );
                routing::devices_changed(&mut state, &pending.number, "add", pending.device_id);
                Ok(device_jid(&pending.number, pending.device_id))
            })
        };
        match checked {
            Ok(device) => {
                tracing::info!(%device, "device linked");
                self.shared.emit(ServerEvent::PairSucceeded { device });
                self.close(Some(Node::new("stream:error").attr("code", "515")))
                    .await
            }
            Err(reason) => {
                tracing::info!(%reason, "pair-device-sign refused");
                self.shared.emit(ServerEvent::PairRejected {
                    code: 401,
                    text: reason,
                });
                self.close(Some(Node::new("stream:error").attr("code", "401")))
                    .await
            }
        }
    }

    /// An error: a refused `pair-success` is reported; the connection stays open.
    fn handle_error(&mut self, id: &str, iq: &Node) {
        let pending = {
            let mut state = self.shared.lock();
            match state.pending_pairs.remove(id) {
                Some(pending) if pending.conn == self.id => Some(pending),
                Some(other) => {
                    state.pending_pairs.insert(id.to_owned(), other);
                    None
                }
                None => None,
            }
        };
        if pending.is_some() {
            let error = iq.child("error");
            let code = error
                .and_then(|e| e.optional_str_attr("code"))
                .and_then(|c| c.parse().ok())
                .unwrap_or(0);
            let text = error
                .and_then(|e| e.optional_str_attr("text"))
                .unwrap_or_default()
                .to_owned();
            tracing::info!(code, %text, "client refused pair-success");
            self.shared.emit(ServerEvent::PairRejected { code, text });
        }
    }
}

/// The pairwise `<enc>` children of an outgoing message: those under `<participants><to>`, or the direct one.
/// The `<to>` entries of a fan-out that name companions (not phones, device 0).
fn companion_targets(message: &Node) -> impl Iterator<Item = &Node> {
    message
        .child("participants")
        .into_iter()
        .flat_map(|participants| participants.children_by_tag("to"))
        .filter(|to| to.jid_attr("jid").is_ok_and(|jid| jid.device() != 0))
}

fn pairwise_encs(message: &Node) -> impl Iterator<Item = &Node> {
    let fanned = companion_targets(message).filter_map(|to| to.child("enc"));
    let direct = message
        .children_by_tag("enc")
        .filter(|enc| enc.optional_str_attr("type") != Some("skmsg"));
    fanned.chain(direct)
}
