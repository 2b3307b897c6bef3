//! The test server driven at stanza level over real sockets on 127.0.0.1, with the client played by the engine's
//! pure functions (`whatsapp-core`): pairing by QR code and by phone-number code, login, prekeys, pings, logout,
//! and every fault the server can inject.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test helpers fail loudly")]

use std::future::Future;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rand::SeedableRng;
use rand::rngs::{OsRng, StdRng};
use whatsapp_binary::{Jid, Node};
use whatsapp_core::connection::{Incoming, md_set, remove_companion_device, set_active};
use whatsapp_core::device::{generate_prekeys, key_pair, new_device, prekey_upload_for, registration_keys};
use whatsapp_core::pair::{PairClientType, complete_pair_success, pair_error_reply, qr_code};
use whatsapp_core::pair_code::{CODE_ALPHABET, CodePairing};
use whatsapp_core::payload::ClientIdentity;
use whatsapp_core::policy::{Keepalive, parse_prekey_count, prekey_count_query};
use whatsapp_core::{PairError, server_jid};
use whatsapp_noise::{ClientParams, NoiseSocket, PrivateKey, Stream, connect};
use whatsapp_proto::ProtoMessage;
use whatsapp_proto::adv::AdvSignedDeviceIdentity;
use whatsapp_proto::handshake::ClientPayload;
use whatsapp_store::Device;
use whatsapp_testserver::{Phone, PhoneError, ServerEvent, ServerEvents, Tamper, TestServer};

const NUMBER: &str = "15551234567";

/// Fails the test instead of hanging when the server never answers.
async fn within<T>(future: impl Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(30), future)
        .await
        .expect("timed out waiting")
}

async fn wait(events: &mut ServerEvents, predicate: impl FnMut(&ServerEvent) -> bool) -> ServerEvent {
    within(events.wait_for(predicate)).await.expect("server gone")
}

fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs()
}

/// A client socket that speaks nodes.
struct Client {
    socket: NoiseSocket<Stream>,
}

impl Client {
    async fn connect(server: &TestServer, device: &Device, payload: &ClientPayload) -> Client {
        let noise_key = key_pair(&device.noise_key);
        let connection = within(connect(
            &server.url(),
            ClientParams {
                noise_key: &noise_key,
                client_payload: &payload.encode_to_vec(),
                trust_root: server.trust_root(),
                now: now(),
                ephemeral: PrivateKey::generate(&mut OsRng),
                user_agent: None,
            },
        ))
        .await
        .unwrap();
        Client {
            socket: connection.socket,
        }
    }

    async fn register(server: &TestServer, device: &Device) -> Client {
        let payload = ClientIdentity::default().registration_payload(&registration_keys(device));
        Client::connect(server, device, &payload).await
    }

    async fn send(&mut self, node: Node) {
        self.socket
            .send_frame(&whatsapp_binary::encode_frame(&node))
            .await
            .unwrap();
    }

    /// The next stanza, or `None` once the server closed the connection.
    async fn recv(&mut self) -> Option<Node> {
        match within(self.socket.recv_frame()).await {
            Ok(Some(frame)) => Some(whatsapp_binary::decode_frame(&frame).unwrap()),
            Ok(None) | Err(_) => None,
        }
    }

    async fn expect(&mut self) -> Node {
        self.recv().await.expect("the server closed the connection")
    }

    async fn expect_closed(&mut self) {
        assert_eq!(self.recv().await, None);
    }

    /// Sends an IQ request and returns the server's answer (the next stanza).
    async fn iq(&mut self, request: Node, id: &'static str) -> Node {
        self.send(request.attr("id", id)).await;
        let answer = self.expect().await;
        assert_eq!(answer.tag, "iq");
        assert_eq!(answer.str_attr("id").unwrap(), id, "{answer}");
        assert_eq!(answer.jid_attr("from").unwrap(), server_jid());
        answer
    }
}

fn iq_type(node: &Node) -> &str {
    node.optional_str_attr("type").unwrap_or_default()
}

fn error_code(node: &Node) -> Option<&str> {
    node.child("error")?.optional_str_attr("code")
}

/// The server, one phone, and an event subscription.
async fn setup() -> (TestServer, Phone, ServerEvents) {
    let server = TestServer::start().await.unwrap();
    let events = server.subscribe();
    let phone = server.add_phone(NUMBER);
    (server, phone, events)
}

/// Registers a new device and reads its QR references, acknowledging them.
async fn register(server: &TestServer, rng: &mut StdRng) -> (Device, Client, Vec<Vec<u8>>) {
    let device = new_device(rng);
    let mut client = Client::register(server, &device).await;
    let iq = client.expect().await;
    assert_eq!(iq.jid_attr("from").unwrap(), server_jid());
    let Incoming::PairDevice { refs, ack } = Incoming::classify(&iq) else {
        panic!("expected pair-device, got {iq}");
    };
    client.send(ack).await;
    (device, client, refs)
}

fn qr_of(device: &Device, reference: &[u8]) -> String {
    qr_code(
        reference,
        &device.noise_key.public,
        &device.identity_key.public,
        &device.adv_secret,
        PairClientType::Chrome,
    )
}

/// Reads a `pair-success`, checks it as a client does, and answers with the countersignature.
async fn countersign(client: &mut Client, device: &Device, adv_secret: &[u8; 32], phone: &Phone) -> Jid {
    let iq = client.expect().await;
    let Incoming::PairSuccess(Ok(success)) = Incoming::classify(&iq) else {
        panic!("expected pair-success, got {iq}");
    };
    assert_eq!(iq.jid_attr("from").unwrap(), server_jid());
    let paired = complete_pair_success(&success, &key_pair(&device.identity_key), adv_secret).unwrap();
    assert_eq!(paired.primary_identity, phone.identity_public());
    assert_eq!(paired.lid.user(), phone.lid().user());
    assert_eq!(paired.lid.device(), paired.jid.device());
    client.send(paired.reply).await;
    let end = client.expect().await;
    assert_eq!(end.tag, "stream:error");
    assert_eq!(end.str_attr("code").unwrap(), "515");
    client.expect_closed().await;
    paired.jid
}

/// Pairs a new device by QR code; returns it with its JID.
async fn pair(
    server: &TestServer,
    phone: &Phone,
    events: &mut ServerEvents,
    rng: &mut StdRng,
) -> (Device, Jid) {
    let (mut device, mut client, refs) = register(server, rng).await;
    assert_eq!(refs.len(), 6);
    let announced = phone.scan_qr(&qr_of(&device, &refs[1])).await.unwrap();
    let adv_secret = device.adv_secret;
    let jid = countersign(&mut client, &device, &adv_secret, phone).await;
    assert_eq!(jid, announced);
    let linked = wait(events, |e| matches!(e, ServerEvent::PairSucceeded { .. })).await;
    assert_eq!(linked, ServerEvent::PairSucceeded { device: jid.clone() });
    device.jid = Some(jid.clone());
    (device, jid)
}

fn login_payload(jid: &Jid) -> ClientPayload {
    ClientIdentity::default().login_payload(jid.user_int().unwrap(), jid.device())
}

/// Logs a paired device in and checks `<success>`.
async fn login(server: &TestServer, phone: &Phone, device: &Device, jid: &Jid) -> Client {
    let mut client = Client::connect(server, device, &login_payload(jid)).await;
    let success = client.expect().await;
    assert_eq!(success.tag, "success", "{success}");
    assert_eq!(success.jid_attr("lid").unwrap(), phone.lid());
    assert!(success.u64_attr("t").unwrap() >= now() - 60);
    client
}

/// Logs in with `payload` and expects `<failure reason=..>` and the end of the connection.
async fn login_refused(server: &TestServer, device: &Device, payload: &ClientPayload, reason: &str) {
    let mut client = Client::connect(server, device, payload).await;
    let failure = client.expect().await;
    assert_eq!(failure.tag, "failure", "{failure}");
    assert_eq!(failure.str_attr("reason").unwrap(), reason);
    client.expect_closed().await;
}

#[tokio::test]
async fn qr_pairing_links_the_device_and_it_logs_in() {
    let (server, phone, mut events) = setup().await;
    let mut rng = StdRng::seed_from_u64(1);
    let (device, jid) = pair(&server, &phone, &mut events, &mut rng).await;
    assert_eq!(jid, Jid::with_device(NUMBER, Jid::DEFAULT_USER_SERVER, 1));
    assert_eq!(server.devices(NUMBER), vec![jid.clone()]);

    let mut client = login(&server, &phone, &device, &jid).await;
    assert_eq!(
        wait(&mut events, |e| matches!(e, ServerEvent::LoggedIn { .. })).await,
        ServerEvent::LoggedIn { device: jid.clone() }
    );
    let active = client.iq(set_active(), "a1").await;
    assert_eq!(iq_type(&active), "result");
    wait(&mut events, |e| matches!(e, ServerEvent::Activated { .. })).await;

    // A second companion gets the next device id.
    let (_, second) = pair(&server, &phone, &mut events, &mut rng).await;
    assert_eq!(second.device(), 2);
    assert_eq!(server.devices(NUMBER), vec![jid, second]);
}

#[tokio::test]
async fn bad_device_signature_is_refused_and_nothing_is_linked() {
    let (server, phone, mut events) = setup().await;
    let mut rng = StdRng::seed_from_u64(2);
    let (device, mut client, refs) = register(&server, &mut rng).await;
    phone.scan_qr(&qr_of(&device, &refs[0])).await.unwrap();
    let iq = client.expect().await;
    let Incoming::PairSuccess(Ok(success)) = Incoming::classify(&iq) else {
        panic!("expected pair-success, got {iq}");
    };
    let paired =
        complete_pair_success(&success, &key_pair(&device.identity_key), &device.adv_secret).unwrap();

    // Flip one bit of the device signature in the reply.
    let mut reply = paired.reply.clone();
    let whatsapp_binary::Content::Nodes(sign) = &mut reply.content else {
        panic!("reply has no children");
    };
    let whatsapp_binary::Content::Nodes(identity) = &mut sign[0].content else {
        panic!("pair-device-sign has no children");
    };
    let bytes = identity[0].content_bytes().unwrap().clone();
    let mut signed = AdvSignedDeviceIdentity::decode(bytes.as_ref()).unwrap();
    signed.device_signature.as_mut().unwrap()[5] ^= 0x40;
    identity[0].content = whatsapp_binary::Content::Bytes(signed.encode_to_vec().into());
    client.send(reply).await;

    let end = client.expect().await;
    assert_eq!(end.tag, "stream:error");
    assert_eq!(end.str_attr("code").unwrap(), "401");
    client.expect_closed().await;
    let ServerEvent::PairRejected { code, text } =
        wait(&mut events, |e| matches!(e, ServerEvent::PairRejected { .. })).await
    else {
        unreachable!()
    };
    assert_eq!(code, 401);
    assert!(text.contains("device signature"), "{text}");
    assert!(server.devices(NUMBER).is_empty());
    login_refused(&server, &device, &login_payload(&paired.jid), "401").await;
}

#[tokio::test]
async fn client_refusing_a_tampered_pair_success_is_reported() {
    let (server, phone, mut events) = setup().await;
    let mut rng = StdRng::seed_from_u64(3);
    for (tamper, expected) in [
        (Tamper::Hmac, "hmac-mismatch"),
        (Tamper::AccountSignature, "signature-mismatch"),
    ] {
        let (device, mut client, refs) = register(&server, &mut rng).await;
        phone
            .scan_qr_tampered(&qr_of(&device, &refs[0]), tamper)
            .await
            .unwrap();
        let iq = client.expect().await;
        let Incoming::PairSuccess(Ok(success)) = Incoming::classify(&iq) else {
            panic!("expected pair-success, got {iq}");
        };
        let error = complete_pair_success(&success, &key_pair(&device.identity_key), &device.adv_secret)
            .expect_err("the client must refuse a tampered identity");
        match tamper {
            Tamper::Hmac => assert_eq!(error, PairError::HmacMismatch),
            _ => assert_eq!(error, PairError::SignatureMismatch),
        }
        client.send(pair_error_reply(&success.iq_id, &error)).await;
        assert_eq!(
            wait(&mut events, |e| matches!(e, ServerEvent::PairRejected { .. })).await,
            ServerEvent::PairRejected {
                code: 401,
                text: expected.to_owned()
            }
        );
        // The connection stays open.
        let pong = client.iq(Keepalive::ping(), "p1").await;
        assert_eq!(iq_type(&pong), "result");
    }
    assert!(server.devices(NUMBER).is_empty());
}

#[tokio::test]
async fn scanning_checks_the_qr_against_the_connection() {
    let (server, phone, _events) = setup().await;
    let mut rng = StdRng::seed_from_u64(4);
    let (device, _client, refs) = register(&server, &mut rng).await;
    assert_eq!(
        phone.scan_qr(&qr_of(&device, b"no-such-ref")).await,
        Err(PhoneError::UnknownRef)
    );
    let mut other_noise = new_device(&mut rng);
    other_noise.identity_key = device.identity_key.clone();
    other_noise.adv_secret = device.adv_secret;
    assert_eq!(
        phone.scan_qr(&qr_of(&other_noise, &refs[0])).await,
        Err(PhoneError::NoiseKeyMismatch)
    );
    let mut other_identity = new_device(&mut rng);
    other_identity.noise_key = device.noise_key.clone();
    assert_eq!(
        phone.scan_qr(&qr_of(&other_identity, &refs[0])).await,
        Err(PhoneError::IdentityMismatch)
    );
    assert!(matches!(
        phone.scan_qr("https://example.com/").await,
        Err(PhoneError::BadQr(_))
    ));
}

#[tokio::test]
async fn bad_registration_and_bad_logins_are_refused() {
    let (server, phone, mut events) = setup().await;
    let mut rng = StdRng::seed_from_u64(5);

    // A signed prekey signature that does not verify.
    let device = new_device(&mut rng);
    let mut keys = registration_keys(&device);
    keys.signed_prekey_signature[0] ^= 1;
    let payload = ClientIdentity::default().registration_payload(&keys);
    login_refused(&server, &device, &payload, "400").await;
    let ServerEvent::RegistrationRefused { reason } = wait(&mut events, |e| {
        matches!(e, ServerEvent::RegistrationRefused { .. })
    })
    .await
    else {
        unreachable!()
    };
    assert!(reason.contains("eSkeySig"), "{reason}");

    let (device, jid) = pair(&server, &phone, &mut events, &mut rng).await;
    // Another Noise key for the same device.
    let mut impostor = new_device(&mut rng);
    impostor.jid = Some(jid.clone());
    login_refused(&server, &impostor, &login_payload(&jid), "401").await;
    // A device id that was never linked, and an unknown number.
    let unknown = Jid::with_device(NUMBER, Jid::DEFAULT_USER_SERVER, 9);
    login_refused(&server, &device, &login_payload(&unknown), "401").await;
    let stranger = Jid::with_device("15550000000", Jid::DEFAULT_USER_SERVER, 1);
    login_refused(&server, &device, &login_payload(&stranger), "401").await;
    assert_eq!(
        wait(&mut events, |e| matches!(e, ServerEvent::LoginRefused { .. })).await,
        ServerEvent::LoginRefused { reason: 401 }
    );

    // Injected login failures.
    server.fail_logins(Some(503));
    login_refused(&server, &device, &login_payload(&jid), "503").await;
    server.fail_logins(None);
    login(&server, &phone, &device, &jid).await;
}

#[tokio::test]
async fn prekey_uploads_are_checked_stored_and_counted() {
    let (server, phone, mut events) = setup().await;
    let mut rng = StdRng::seed_from_u64(6);
    let (device, jid) = pair(&server, &phone, &mut events, &mut rng).await;
    let mut client = login(&server, &phone, &device, &jid).await;

    let count = client.iq(prekey_count_query(), "c1").await;
    assert_eq!(parse_prekey_count(&count), Some(0));

    let prekeys = generate_prekeys(&[1, 2, 3, 4, 0x00ab_cdef], &mut rng);
    let upload = client.iq(prekey_upload_for(&device, &prekeys), "u1").await;
    assert_eq!(iq_type(&upload), "result", "{upload}");
    assert_eq!(
        wait(&mut events, |e| matches!(e, ServerEvent::PrekeysUploaded { .. })).await,
        ServerEvent::PrekeysUploaded {
            device: jid.clone(),
            count: 5
        }
    );
    let count = client.iq(prekey_count_query(), "c2").await;
    assert_eq!(parse_prekey_count(&count), Some(5));
    assert_eq!(server.prekey_count(&jid), 5);

    // A signed prekey signature that does not verify: 406.
    let mut forged = new_device(&mut rng);
    forged.identity_key = device.identity_key.clone();
    forged.registration_id = device.registration_id;
    forged.signed_prekey.signature = device.signed_prekey.signature;
    let refused = client.iq(prekey_upload_for(&forged, &prekeys), "u2").await;
    assert_eq!((iq_type(&refused), error_code(&refused)), ("error", Some("406")));
    // Another identity key: 400.
    let stranger = new_device(&mut rng);
    let mut other = new_device(&mut rng);
    other.registration_id = device.registration_id;
    other.identity_key = stranger.identity_key.clone();
    other.signed_prekey = stranger.signed_prekey.clone();
    let refused = client.iq(prekey_upload_for(&other, &prekeys), "u3").await;
    assert_eq!((iq_type(&refused), error_code(&refused)), ("error", Some("400")));
    assert!(matches!(
        wait(&mut events, |e| matches!(
            e,
            ServerEvent::PrekeyUploadRefused { .. }
        ))
        .await,
        ServerEvent::PrekeyUploadRefused { code: 406, .. }
    ));
    assert_eq!(server.prekey_count(&jid), 5);
}

#[tokio::test]
async fn pings_are_answered_unless_switched_off_and_iqs_can_be_delayed() {
    let (server, phone, mut events) = setup().await;
    let mut rng = StdRng::seed_from_u64(7);
    let (device, jid) = pair(&server, &phone, &mut events, &mut rng).await;
    let mut client = login(&server, &phone, &device, &jid).await;

    let pong = client.iq(Keepalive::ping(), "p1").await;
    assert_eq!(iq_type(&pong), "result");
    assert_eq!(
        wait(&mut events, |e| matches!(e, ServerEvent::Pinged { .. })).await,
        ServerEvent::Pinged {
            device: Some(jid.clone())
        }
    );

    server.answer_pings(false);
    client.send(Keepalive::ping().attr("id", "p2")).await;
    wait(&mut events, |e| matches!(e, ServerEvent::Pinged { .. })).await;
    // Answers keep their order on a connection: had the ping been answered, its answer would come first.
    let count = client.iq(prekey_count_query(), "c1").await;
    assert_eq!(iq_type(&count), "result");

    server.answer_pings(true);
    server.set_iq_delay(Duration::from_millis(300));
    let started = Instant::now();
    client.iq(Keepalive::ping(), "p3").await;
    assert!(started.elapsed() >= Duration::from_millis(300));
}

#[tokio::test]
async fn unknown_and_malformed_requests_are_answered_with_errors() {
    let (server, phone, mut events) = setup().await;
    let mut rng = StdRng::seed_from_u64(8);
    let (device, jid) = pair(&server, &phone, &mut events, &mut rng).await;
    let mut client = login(&server, &phone, &device, &jid).await;

    let unknown = Node::new("iq")
        .attr("xmlns", "w:mystery")
        .attr("type", "get")
        .attr("to", server_jid())
        .children([Node::new("riddle")]);
    let answer = client.iq(unknown, "x1").await;
    assert_eq!((iq_type(&answer), error_code(&answer)), ("error", Some("501")));
    let text = answer.child("error").unwrap().str_attr("text").unwrap();
    assert_eq!(text, "feature-not-implemented");

    let unaddressed = Node::new("iq").attr("xmlns", "w:p").attr("type", "get");
    let answer = client.iq(unaddressed, "x2").await;
    assert_eq!((iq_type(&answer), error_code(&answer)), ("error", Some("400")));

    // Bytes that are not a node end the connection.
    client.socket.send_frame(&[0, 0xff, 0xff, 0xff]).await.unwrap();
    client.expect_closed().await;
    let ServerEvent::ProtocolViolation { device, .. } = wait(&mut events, |e| {
        matches!(e, ServerEvent::ProtocolViolation { .. })
    })
    .await
    else {
        unreachable!()
    };
    assert_eq!(device, Some(jid.clone()));
    assert_eq!(
        wait(&mut events, |e| matches!(
            e,
            ServerEvent::Disconnected { device: Some(_) }
        ))
        .await,
        ServerEvent::Disconnected { device: Some(jid) }
    );
}

#[tokio::test]
async fn faults_end_connections_as_asked() {
    let (server, phone, mut events) = setup().await;
    let mut rng = StdRng::seed_from_u64(9);
    let (device, jid) = pair(&server, &phone, &mut events, &mut rng).await;

    let mut client = login(&server, &phone, &device, &jid).await;
    server.drop_connections();
    client.expect_closed().await;
    wait(&mut events, |e| {
        matches!(e, ServerEvent::Disconnected { device: Some(_) })
    })
    .await;

    let mut client = login(&server, &phone, &device, &jid).await;
    wait(&mut events, |e| matches!(e, ServerEvent::LoggedIn { .. })).await;
    server.send_stream_error(&jid, 503, None).await;
    let error = client.expect().await;
    assert_eq!(error.tag, "stream:error");
    assert_eq!(error.str_attr("code").unwrap(), "503");
    assert!(error.child("conflict").is_none());
    client.expect_closed().await;

    // A second login of the same device replaces the first.
    let mut first = login(&server, &phone, &device, &jid).await;
    let _second = login(&server, &phone, &device, &jid).await;
    let replaced = first.expect().await;
    assert_eq!(replaced.tag, "stream:error");
    assert_eq!(
        replaced.child("conflict").unwrap().str_attr("type").unwrap(),
        "replaced"
    );
    first.expect_closed().await;
    assert_eq!(
        wait(&mut events, |e| matches!(e, ServerEvent::StreamReplaced { .. })).await,
        ServerEvent::StreamReplaced { device: jid.clone() }
    );
}

#[tokio::test]
async fn logout_and_removal_unlink_devices() {
    let (server, phone, mut events) = setup().await;
    let mut rng = StdRng::seed_from_u64(10);
    let (device, jid) = pair(&server, &phone, &mut events, &mut rng).await;
    let (other_device, other) = pair(&server, &phone, &mut events, &mut rng).await;

    // The device logs itself out.
    let mut client = login(&server, &phone, &device, &jid).await;
    let answer = client.iq(remove_companion_device(&jid), "l1").await;
    assert_eq!(iq_type(&answer), "result");
    assert_eq!(
        wait(&mut events, |e| matches!(e, ServerEvent::LoggedOut { .. })).await,
        ServerEvent::LoggedOut { device: jid.clone() }
    );
    login_refused(&server, &device, &login_payload(&jid), "401").await;

    // The phone unlinks the other one while it is connected.
    let mut client = login(&server, &phone, &other_device, &other).await;
    wait(
        &mut events,
        |e| matches!(e, ServerEvent::LoggedIn { device } if *device == other),
    )
    .await;
    phone.remove_device(&other).await;
    let removed = client.expect().await;
    assert_eq!(removed.tag, "stream:error");
    assert_eq!(removed.str_attr("code").unwrap(), "401");
    assert_eq!(
        removed.child("conflict").unwrap().str_attr("type").unwrap(),
        "device_removed"
    );
    client.expect_closed().await;
    assert!(server.devices(NUMBER).is_empty());
    login_refused(&server, &other_device, &login_payload(&other), "401").await;
}

/// Code pairing up to the client's `companion_finish`; returns the answer to it and what the client derived.
async fn code_pairing(
    server: &TestServer,
    phone: &Phone,
    rng: &mut StdRng,
    wrong_code: bool,
) -> (Device, Client, Node, [u8; 32]) {
    let (device, mut client, _refs) = register(server, rng).await;
    let (mut pairing, hello) = CodePairing::start(
        phone.jid(),
        &device.noise_key.public,
        PairClientType::Chrome,
        "Chrome (Linux)",
        true,
        rng,
    );
    let answer = client.iq(md_set(hello), "h1").await;
    assert_eq!(iq_type(&answer), "result", "{answer}");
    pairing.handle_hello_response(&answer).unwrap();

    let code = pairing.code.as_str().to_owned();
    let entered = if wrong_code {
        let first = code.as_bytes()[0];
        let other = CODE_ALPHABET.iter().find(|c| **c != first).unwrap();
        format!("{}{}", char::from(*other), &code[1..])
    } else {
        format!("{}-{}", &code[..4], &code[4..])
    };
    phone.enter_code(&entered).await.unwrap();

    let notification = client.expect().await;
    assert_eq!(notification.jid_attr("from").unwrap(), server_jid());
    let Incoming::CodePairingHello { notification, ack } = Incoming::classify(&notification) else {
        panic!("expected the code pairing notification, got {notification}");
    };
    client.send(ack).await;
    let (adv_secret, finish) = pairing
        .finish(notification, &key_pair(&device.identity_key), rng)
        .unwrap();
    let answer = client.iq(md_set(finish), "f1").await;
    (device, client, answer, *adv_secret)
}

#[tokio::test]
async fn code_pairing_links_the_device() {
    let (server, phone, mut events) = setup().await;
    let mut rng = StdRng::seed_from_u64(11);
    let (device, mut client, answer, adv_secret) = code_pairing(&server, &phone, &mut rng, false).await;
    assert_eq!(iq_type(&answer), "result", "{answer}");
    // The pair-success is MACed with the secret both sides derived, not the one a QR code would carry.
    let jid = countersign(&mut client, &device, &adv_secret, &phone).await;
    assert_eq!(
        wait(&mut events, |e| matches!(e, ServerEvent::PairSucceeded { .. })).await,
        ServerEvent::PairSucceeded { device: jid.clone() }
    );
    login(&server, &phone, &device, &jid).await;
}

#[tokio::test]
async fn code_pairing_with_a_wrong_code_is_refused() {
    let (server, phone, mut events) = setup().await;
    let mut rng = StdRng::seed_from_u64(12);
    let (_device, mut client, answer, _) = code_pairing(&server, &phone, &mut rng, true).await;
    assert_eq!((iq_type(&answer), error_code(&answer)), ("error", Some("400")));
    assert!(matches!(
        wait(&mut events, |e| matches!(e, ServerEvent::PairRejected { .. })).await,
        ServerEvent::PairRejected { code: 400, .. }
    ));
    assert!(server.devices(NUMBER).is_empty());
    // The connection stays open for another attempt.
    assert_eq!(iq_type(&client.iq(Keepalive::ping(), "p1").await), "result");
}

#[tokio::test]
async fn code_pairing_hello_is_checked() {
    let (server, phone, _events) = setup().await;
    let mut rng = StdRng::seed_from_u64(13);
    let (device, mut client, _refs) = register(&server, &mut rng).await;
    let hello = |number: &str, display: &str, rng: &mut StdRng| {
        let phone_jid = Jid::new(number, Jid::DEFAULT_USER_SERVER);
        md_set(
            CodePairing::start(
                phone_jid,
                &device.noise_key.public,
                PairClientType::Chrome,
                display,
                true,
                rng,
            )
            .1,
        )
    };
    let unknown = client
        .iq(hello("15550000000", "Chrome (Linux)", &mut rng), "h1")
        .await;
    assert_eq!(error_code(&unknown), Some("404"));
    let not_a_browser = client.iq(hello(NUMBER, "whatsmeow", &mut rng), "h2").await;
    assert_eq!(error_code(&not_a_browser), Some("400"));
    assert_eq!(
        phone.enter_code("ABCD-EFGH").await,
        Err(PhoneError::NoPendingCodePairing)
    );
    assert!(matches!(
        phone.enter_code("0000-0000").await,
        Err(PhoneError::BadCode(_))
    ));
}

#[tokio::test]
async fn expired_chain_is_refused_by_the_client() {
    let mut config = whatsapp_testserver::ServerConfig::default();
    config.chain_validity = Some((0, 1000));
    config.qr_refs = 2;
    let server = TestServer::start_with(config).await.unwrap();
    let mut events = server.subscribe();
    let device = new_device(&mut StdRng::seed_from_u64(14));
    let noise_key = key_pair(&device.noise_key);
    let result = connect(
        &server.url(),
        ClientParams {
            noise_key: &noise_key,
            client_payload: b"",
            trust_root: server.trust_root(),
            now: now(),
            ephemeral: PrivateKey::generate(&mut OsRng),
            user_agent: None,
        },
    )
    .await;
    assert!(result.is_err());
    drop(result);
    wait(&mut events, |e| matches!(e, ServerEvent::HandshakeFailed { .. })).await;
}

/// The next `<ack>` for stanza `id`, skipping anything else the server sends meanwhile.
async fn ack_for(client: &mut Client, id: &str) -> Node {
    loop {
        let node = client.expect().await;
        if node.tag == "ack" && node.optional_str_attr("id") == Some(id) {
            return node;
        }
    }
}

#[tokio::test]
async fn device_lists_name_the_phone_and_key_indexes_and_the_phone_has_keys() {
    let (server, phone, mut events) = setup().await;
    let mut rng = StdRng::seed_from_u64(21);
    let (device, jid) = pair(&server, &phone, &mut events, &mut rng).await;
    let mut client = login(&server, &phone, &device, &jid).await;

    // The phone first, as device 0; the companion with the key index its identity was signed with.
    let answer = client
        .iq(
            whatsapp_core::usync::device_query(&[Jid::new(NUMBER, Jid::DEFAULT_USER_SERVER)], "s1"),
            "d1",
        )
        .await;
    let list = answer
        .child("usync")
        .and_then(|u| u.child("list"))
        .and_then(|l| l.child("user"))
        .and_then(|u| u.child("devices"))
        .and_then(|d| d.child("device-list"))
        .expect("a device list");
    let listed: Vec<(String, Option<String>)> = list
        .children_by_tag("device")
        .map(|d| {
            (
                d.str_attr("id").unwrap().to_owned(),
                d.optional_str_attr("key-index").map(str::to_owned),
            )
        })
        .collect();
    let companion = jid.device().to_string();
    assert_eq!(
        listed,
        [("0".to_owned(), None), (companion.clone(), Some(companion))]
    );

    // The phone's bundle is served under its phone number and its LID alike, with its identity key.
    let by_pn = Jid::with_device(NUMBER, Jid::DEFAULT_USER_SERVER, 0);
    let by_lid = Jid::with_device(phone.lid().user(), Jid::LID_SERVER, 0);
    let answer = client
        .iq(whatsapp_core::prekeys::bundle_query(&[by_pn, by_lid]), "b1")
        .await;
    let bundles = whatsapp_core::prekeys::parse_bundles(&answer).unwrap();
    assert_eq!(bundles.len(), 2);
    for (named, bundle) in bundles {
        let bundle = bundle.unwrap_or_else(|e| panic!("no bundle for {named}: {e}"));
        assert_eq!(*bundle.identity_key.as_bytes(), phone.identity_public());
        assert!(bundle.pre_key.is_some());
    }

    // The prekey digest, as WhatsApp Web checks its keys against the server's.
    let prekeys = generate_prekeys(&[1, 2, 3], &mut rng);
    let upload = client.iq(prekey_upload_for(&device, &prekeys), "u1").await;
    assert_eq!(iq_type(&upload), "result", "{upload}");
    let digest_query = Node::new("iq")
        .attr("xmlns", "encrypt")
        .attr("type", "get")
        .attr("to", server_jid())
        .children([Node::new("digest")]);
    let answer = client.iq(digest_query, "g1").await;
    assert_eq!(iq_type(&answer), "result", "{answer}");
    let digest = answer.child("digest").expect("a <digest>");
    let bytes = |node: Option<&Node>| node.and_then(Node::content_bytes).unwrap().to_vec();
    assert_eq!(
        bytes(digest.child("registration")),
        device.registration_id.to_be_bytes().to_vec()
    );
    let ids: Vec<Vec<u8>> = digest
        .child("list")
        .unwrap()
        .children_by_tag("id")
        .map(|id| id.content_bytes().unwrap().to_vec())
        .collect();
    assert_eq!(ids, [vec![0, 0, 1], vec![0, 0, 2], vec![0, 0, 3]]);
    use sha1::Digest as _;
    let mut expected = sha1::Sha1::new();
    expected.update(device.identity_key.public);
    expected.update(device.signed_prekey.key_pair.public);
    expected.update(device.signed_prekey.signature);
    for prekey in &prekeys {
        expected.update(prekey.key_pair.public);
    }
    assert_eq!(bytes(digest.child("hash")), expected.finalize().to_vec());
}

#[tokio::test]
async fn messages_addressed_as_whatsapp_no_longer_takes_them_are_refused_with_the_reason() {
    const BOB: &str = "15557654321";
    let (server, phone, mut events) = setup().await;
    let bob_phone = server.add_phone(BOB);
    let mut rng = StdRng::seed_from_u64(22);
    let (device, jid) = pair(&server, &phone, &mut events, &mut rng).await;
    let (_, bob) = pair(&server, &bob_phone, &mut events, &mut rng).await;
    let mut client = login(&server, &phone, &device, &jid).await;
    let own_lid = Jid::with_device(phone.lid().user(), Jid::LID_SERVER, jid.device());
    let bob_lid = Jid::with_device(bob_phone.lid().user(), Jid::LID_SERVER, bob.device());
    let lid_group = server.create_group("New", &[NUMBER, BOB]);
    let pn_group = server.create_pn_group("Old", &[NUMBER, BOB]);

    let enc = |kind: &str| {
        Node::new("enc")
            .attr("v", "2")
            .attr("type", kind.to_owned())
            .bytes(vec![1, 2, 3])
    };
    let copy_for = |device: &Jid| Node::new("to").attr("jid", device.clone()).children([enc("msg")]);
    let message = |id: &str, to: Jid| {
        Node::new("message")
            .attr("id", id.to_owned())
            .attr("type", "text")
            .attr("to", to)
    };
    let cases = [
        (
            message("m1", lid_group.clone()).children([enc("skmsg")]),
            "addressing_mode",
        ),
        (
            message("m2", lid_group.clone())
                .attr("addressing_mode", "lid")
                .children([
                    Node::new("participants").children([copy_for(&own_lid)]),
                    enc("skmsg"),
                ]),
            "sending device itself",
        ),
        (
            message("m3", lid_group.clone())
                .attr("addressing_mode", "lid")
                .children([Node::new("participants").children([copy_for(&bob)]), enc("skmsg")]),
            "by phone number in LID-addressed group",
        ),
        (
            message("m4", pn_group.clone())
                .attr("addressing_mode", "lid")
                .children([enc("skmsg")]),
            "phone-number group",
        ),
        (
            message("m5", bob.to_non_ad()).children([Node::new("participants").children([copy_for(&bob)])]),
            "by phone number",
        ),
        (
            message("m6", bob_lid.to_non_ad())
                .attr("peer_recipient_pn", Jid::new(NUMBER, Jid::DEFAULT_USER_SERVER))
                .children([Node::new("participants").children([copy_for(&bob_lid)])]),
            "does not name the account",
        ),
        (
            message("m7", bob_lid.to_non_ad())
                .attr("peer_recipient_pn", bob.to_non_ad())
                .attr("phash", "2:abcdefgh")
                .children([Node::new("participants").children([copy_for(&bob_lid)])]),
            "phash on a one-to-one message",
        ),
        (
            message("m8", bob_lid.to_non_ad())
                .attr("peer_recipient_pn", bob.to_non_ad())
                .children([Node::new("participants").children([copy_for(&bob)])]),
            "by phone number in a LID-addressed message",
        ),
    ];
    for (stanza, reason) in cases {
        let id = stanza.str_attr("id").unwrap().to_owned();
        client.send(stanza).await;
        let ack = ack_for(&mut client, &id).await;
        assert_eq!(ack.optional_str_attr("error"), Some("400"), "{id}: {ack}");
        match wait(&mut events, |e| matches!(e, ServerEvent::MessageRefused { .. })).await {
            ServerEvent::MessageRefused { reason: said, .. } => {
                assert!(said.contains(reason), "{id}: {said:?} does not say {reason:?}")
            }
            _ => unreachable!(),
        }
    }
}
