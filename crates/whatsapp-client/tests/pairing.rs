//! End to end: the client against `whatsapp-testserver` over real sockets on 127.0.0.1, with a SQLite store on
//! disk. Pairing by QR code and by phone-number code, login from the store after a restart, reconnects, logout by
//! the phone and by the client, and the refusals (forged server certificate, tampered pairing).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::Duration;

use common::*;
use whatsapp_client::sql::SqlBackend;
use whatsapp_client::store::{AccountStore, Backend, IdentityStore};
use whatsapp_client::{Client, ClientError, Event, Jid, KeepaliveTiming, TrustRoot};
use whatsapp_core::PairError;
use whatsapp_testserver::{ServerEvent, Tamper, TestServer};

#[tokio::test]
async fn qr_pairing_then_login() {
    let server = TestServer::start().await.unwrap();
    let mut server_events = server.subscribe();
    let (backend, _path) = sqlite().await;
    let (client, mut events) = client_for(&server, backend.clone()).await;

    let jid = pair_by_qr(&server, &client, &mut events).await;
    assert!(client.is_logged_in());
    assert_eq!(jid.user(), PHONE);
    assert_eq!(client.jid().await.unwrap(), Some(jid.clone()));
    assert_eq!(server.devices(PHONE), vec![jid.clone()]);

    // The phone's identity was stored for its LID's device 0, and the signed ADV identity for this device.
    let account = backend.open_account(client.account_id()).await.unwrap();
    let device = account.device().await.unwrap();
    let phone = server.add_phone(PHONE);
    let mut primary = phone.lid();
    primary.set_device(0);
    assert_eq!(
        account.identity(&primary.signal_address()).await.unwrap(),
        Some(phone.identity_public())
    );
    assert!(device.account_identity.is_some());
    assert_eq!(device.lid.as_ref().map(Jid::user), Some(phone.lid().user()));

    // A new device uploads its first 812 prekeys; the server keeps them.
    let uploaded = server_wait(&mut server_events, "prekey upload", |e| {
        matches!(e, ServerEvent::PrekeysUploaded { .. })
    })
    .await;
    assert!(matches!(
        uploaded,
        ServerEvent::PrekeysUploaded { count: 812, .. }
    ));
    assert_eq!(server.prekey_count(&jid), 812);
    client.disconnect().await;
}

#[tokio::test]
async fn phone_code_pairing_then_login() {
    let server = TestServer::start().await.unwrap();
    let phone = server.add_phone(PHONE);
    let (backend, _path) = sqlite().await;
    let (client, mut events) = client_for(&server, backend).await;
    client.connect().await.unwrap();
    // The QR code shows the server is ready for pairing; the user chose a code instead.
    next_qr(&mut events).await;
    let code = client.pair_phone("+1 555 123 4567").await.unwrap();
    assert_eq!(code.len(), 9);
    assert_eq!(&code[4..5], "-");
    phone.enter_code(&code).await.unwrap();
    let paired = wait_for(&mut events, "pair success", |e| {
        matches!(e, Event::PairSuccess { .. })
    })
    .await;
    let Event::PairSuccess { jid, .. } = paired else {
        unreachable!()
    };
    next_is(&mut events, "connected", |e| matches!(e, Event::Connected)).await;
    assert_eq!(client.jid().await.unwrap(), Some(jid.clone()));
    assert_eq!(server.devices(PHONE), vec![jid]);
    client.disconnect().await;
}

#[tokio::test]
async fn wrong_pairing_code_fails_and_stores_nothing() {
    let server = TestServer::start().await.unwrap();
    let phone = server.add_phone(PHONE);
    let (backend, _path) = sqlite().await;
    let (client, mut events) = client_for(&server, backend).await;
    client.connect().await.unwrap();
    next_qr(&mut events).await;
    let code = client.pair_phone(PHONE).await.unwrap();
    let wrong = if code.starts_with('A') {
        "BBBB-BBBB"
    } else {
        "AAAA-AAAA"
    };
    // The phone cannot tell a wrong code until the key bundle fails to decrypt.
    let _ = phone.enter_code(wrong).await;
    wait_for(&mut events, "pair error", |e| {
        matches!(e, Event::PairError { .. })
    })
    .await;
    assert_eq!(client.jid().await.unwrap(), None);
    assert!(server.devices(PHONE).is_empty());
    client.disconnect().await;
}

#[tokio::test]
async fn restart_logs_in_from_the_store() {
    let server = TestServer::start().await.unwrap();
    let (backend, path) = sqlite().await;
    let (client, mut events) = client_for(&server, backend).await;
    let jid = pair_by_qr(&server, &client, &mut events).await;
    let account = client.account_id();
    client.disconnect().await;
    drop(client);

    // A new process: a new connection to the database file, a new client for the same account.
    let backend = SqlBackend::open_sqlite(&path).await.unwrap();
    let (client, mut events) = Client::builder(backend)
        .account(account)
        .server(server.url(), server.trust_root())
        .build()
        .await
        .unwrap();
    client.connect().await.unwrap();
    next_is(&mut events, "connected without pairing", |e| {
        matches!(e, Event::Connected)
    })
    .await;
    assert_eq!(client.jid().await.unwrap(), Some(jid));
    client.disconnect().await;
}

#[tokio::test]
async fn dropped_connection_reconnects() {
    let server = TestServer::start().await.unwrap();
    let (backend, _path) = sqlite().await;
    let (client, mut events) = client_for(&server, backend).await;
    pair_by_qr(&server, &client, &mut events).await;

    server.drop_connections();
    next_is(&mut events, "disconnected", |e| matches!(e, Event::Disconnected)).await;
    next_is(&mut events, "connected again", |e| matches!(e, Event::Connected)).await;
    assert!(client.is_logged_in());

    // A transient server error at login: the client backs off and tries again.
    server.fail_logins(Some(503));
    server.drop_connections();
    next_is(&mut events, "disconnected", |e| matches!(e, Event::Disconnected)).await;
    next_is(&mut events, "refused login", |e| matches!(e, Event::Disconnected)).await;
    server.fail_logins(None);
    wait_for(&mut events, "connected after backoff", |e| {
        matches!(e, Event::Connected)
    })
    .await;
    client.disconnect().await;
}

/// A stalled link: the server stops answering pings. The client reports each failed ping, reports the link
/// restored when answers come back, and when pings fail for longer than its give-up time it drops the connection
/// and logs in on a new one. The timing is shortened from WhatsApp Web's 20-30 s / 10 s / 3 min so the test takes
/// seconds; the state machine is the same.
#[tokio::test]
async fn unanswered_pings_give_the_connection_up_and_a_new_one_is_made() {
    let server = TestServer::start().await.unwrap();
    let (backend, _path) = sqlite().await;
    let timing = KeepaliveTiming {
        interval_min: Duration::from_millis(100),
        interval_max: Duration::from_millis(150),
        response_deadline: Duration::from_millis(300),
        max_fail_time: Duration::from_millis(1500),
    };
    let (client, mut events) = Client::builder(backend)
        .server(server.url(), server.trust_root())
        .keepalive(timing)
        .build()
        .await
        .unwrap();
    let phone = server.add_phone(PHONE);
    let device = pair_with(&phone, &client, &mut events).await;
    let mut server_events = server.subscribe();

    server.answer_pings(false);
    wait_for(&mut events, "a failed ping", |e| {
        matches!(e, Event::KeepaliveTimeout { error_count: 1 })
    })
    .await;
    server.answer_pings(true);
    wait_for(&mut events, "pings answered again", |e| {
        matches!(e, Event::KeepaliveRestored)
    })
    .await;

    server.answer_pings(false);
    let mut counts = Vec::new();
    let ended = tokio::time::timeout(STEP, async {
        while let Some(event) = events.recv().await {
            match event {
                Event::KeepaliveTimeout { error_count } => counts.push(error_count),
                Event::Disconnected => return true,
                Event::KeepaliveRestored => counts.clear(),
                _ => {}
            }
        }
        false
    })
    .await;
    assert_eq!(ended, Ok(true), "the stalled connection was not given up");
    // Each failure takes at least 100 ms of interval and 300 ms of deadline, so giving up after 1.5 s of failures
    // takes at least four of them, counted up one by one.
    assert!(counts.len() >= 4, "{counts:?}");
    assert!(counts.windows(2).all(|w| w[1] == w[0] + 1), "{counts:?}");

    server.answer_pings(true);
    server_wait(&mut server_events, "a new connection", |e| {
        matches!(e, ServerEvent::Connected { .. })
    })
    .await;
    wait_for(&mut events, "logged in again", |e| matches!(e, Event::Connected)).await;
    assert!(client.is_logged_in());
    assert_eq!(client.jid().await.unwrap(), Some(device));
    client.disconnect().await;
}

#[tokio::test]
async fn removed_device_is_logged_out_and_its_store_deleted() {
    let server = TestServer::start().await.unwrap();
    let (backend, _path) = sqlite().await;
    let (client, mut events) = client_for(&server, backend.clone()).await;
    let jid = pair_by_qr(&server, &client, &mut events).await;
    let account = client.account_id();

    server.add_phone(PHONE).remove_device(&jid).await;
    next_is(&mut events, "logged out", |e| {
        matches!(
            e,
            Event::LoggedOut {
                on_connect: false,
                code: 401
            }
        )
    })
    .await;
    assert!(!backend.accounts().await.unwrap().contains(&account));
    assert!(matches!(client.connect().await, Err(ClientError::LoggedOut)));
    assert!(server.devices(PHONE).is_empty());
}

#[tokio::test]
async fn logout_unlinks_the_device() {
    let server = TestServer::start().await.unwrap();
    let (backend, _path) = sqlite().await;
    let (client, mut events) = client_for(&server, backend.clone()).await;
    pair_by_qr(&server, &client, &mut events).await;
    let account = client.account_id();

    client.logout().await.unwrap();
    wait_for(&mut events, "logged out", |e| {
        matches!(
            e,
            Event::LoggedOut {
                on_connect: false,
                code: 0
            }
        )
    })
    .await;
    assert!(server.devices(PHONE).is_empty());
    assert!(!backend.accounts().await.unwrap().contains(&account));
}

#[tokio::test]
async fn stream_errors_end_the_client_as_documented() {
    let server = TestServer::start().await.unwrap();
    let (backend, _path) = sqlite().await;
    let (client, mut events) = client_for(&server, backend).await;
    let jid = pair_by_qr(&server, &client, &mut events).await;

    server.send_stream_error(&jid, 0, Some("replaced")).await;
    next_is(&mut events, "stream replaced", |e| {
        matches!(e, Event::StreamReplaced)
    })
    .await;
    assert!(!client.is_logged_in());

    // Connecting again works; then the server says the version is too old.
    client.connect().await.unwrap();
    next_is(&mut events, "connected", |e| matches!(e, Event::Connected)).await;
    server.fail_logins(Some(405));
    server.drop_connections();
    next_is(&mut events, "disconnected", |e| matches!(e, Event::Disconnected)).await;
    next_is(&mut events, "client outdated", |e| {
        matches!(e, Event::ClientOutdated)
    })
    .await;

    // A temporary ban refuses the login; the client stops.
    server.fail_logins(Some(402));
    client.connect().await.unwrap();
    next_is(&mut events, "temporary ban", |e| {
        matches!(e, Event::TemporaryBan { .. })
    })
    .await;
    assert!(!client.is_logged_in());
    client.disconnect().await;
}

#[tokio::test]
async fn requests_time_out_without_an_answer() {
    let server = TestServer::start().await.unwrap();
    let (backend, _path) = sqlite().await;
    let (client, mut events) = Client::builder(backend)
        .server(server.url(), server.trust_root())
        .iq_timeout(Duration::from_secs(2))
        .build()
        .await
        .unwrap();
    pair_by_qr(&server, &client, &mut events).await;
    let count = whatsapp_core::policy::prekey_count_query;
    server.set_iq_delay(Duration::from_secs(10));
    assert!(matches!(
        client.send_iq(count()).await,
        Err(ClientError::IqTimeout)
    ));
    server.set_iq_delay(Duration::ZERO);
    let answer = client.send_iq(count()).await.unwrap();
    assert_eq!(whatsapp_core::policy::parse_prekey_count(&answer), Some(812));
    client.disconnect().await;
}

#[tokio::test]
async fn forged_server_certificate_is_refused() {
    let server = TestServer::start().await.unwrap();
    let (backend, _path) = sqlite().await;
    // A root the server's chain was not issued by.
    let other = TestServer::start().await.unwrap();
    let (client, _events) = Client::builder(backend)
        .server(server.url(), other.trust_root())
        .build()
        .await
        .unwrap();
    let error = client.connect().await.unwrap_err();
    assert!(matches!(error, ClientError::Socket(_)), "{error:?}");
    // Nor does the real WhatsApp root accept it.
    let (backend, _path) = sqlite().await;
    let (client, _events) = Client::builder(backend)
        .server(server.url(), TrustRoot::whatsapp())
        .build()
        .await
        .unwrap();
    assert!(matches!(client.connect().await, Err(ClientError::Socket(_))));
}

async fn tampered_pairing_is_refused(tamper: Tamper, expected: PairError, text: &str) {
    let server = TestServer::start().await.unwrap();
    let phone = server.add_phone(PHONE);
    let mut server_events = server.subscribe();
    let (backend, _path) = sqlite().await;
    let (client, mut events) = client_for(&server, backend.clone()).await;
    client.connect().await.unwrap();
    let code = next_qr(&mut events).await;
    phone.scan_qr_tampered(&code, tamper).await.unwrap();
    match next_is(&mut events, "pair error", |e| {
        matches!(e, Event::PairError { .. })
    })
    .await
    {
        Event::PairError {
            error: ClientError::Pair(error),
        } => assert_eq!(error, expected),
        other => panic!("expected a pairing error, got {other:?}"),
    }
    let rejected = server_wait(&mut server_events, "pair rejected", |e| {
        matches!(e, ServerEvent::PairRejected { .. })
    })
    .await;
    match rejected {
        ServerEvent::PairRejected { code, text: got } => {
            assert_eq!(code, 401);
            assert_eq!(got, text);
        }
        _ => unreachable!(),
    }
    // Nothing was stored: the device is still unpaired and knows no identity of the phone.
    let account = backend.open_account(client.account_id()).await.unwrap();
    assert_eq!(account.device().await.unwrap().jid.clone(), None);
    let mut primary = phone.lid();
    primary.set_device(0);
    assert_eq!(account.identity(&primary.signal_address()).await.unwrap(), None);
    assert!(server.devices(PHONE).is_empty());
    client.disconnect().await;
}

#[tokio::test]
async fn tampered_hmac_is_refused() {
    tampered_pairing_is_refused(Tamper::Hmac, PairError::HmacMismatch, "hmac-mismatch").await;
}

#[tokio::test]
async fn tampered_account_signature_is_refused() {
    tampered_pairing_is_refused(
        Tamper::AccountSignature,
        PairError::SignatureMismatch,
        "signature-mismatch",
    )
    .await;
}

#[tokio::test]
async fn one_process_per_account() {
    let server = TestServer::start().await.unwrap();
    let (backend, _path) = sqlite().await;
    let (client, mut events) = client_for(&server, backend.clone()).await;
    pair_by_qr(&server, &client, &mut events).await;
    let (second, _events) = Client::builder(backend)
        .account(client.account_id())
        .server(server.url(), server.trust_root())
        .build()
        .await
        .unwrap();
    assert!(matches!(
        second.connect().await,
        Err(ClientError::Store(
            whatsapp_client::store::StoreError::LeaseHeld { .. }
        ))
    ));
    assert!(matches!(
        client.connect().await,
        Err(ClientError::AlreadyConnected)
    ));
    client.disconnect().await;
    // Released on disconnect: the other client may take over.
    second.connect().await.unwrap();
    second.disconnect().await;
}

#[tokio::test]
async fn requests_need_a_connection() {
    let server = TestServer::start().await.unwrap();
    let (backend, _path) = sqlite().await;
    let (client, _events) = client_for(&server, backend).await;
    assert!(matches!(
        client.pair_phone(PHONE).await,
        Err(ClientError::NotConnected)
    ));
    assert!(matches!(
        client.send_iq(whatsapp_core::policy::prekey_count_query()).await,
        Err(ClientError::NotConnected)
    ));
}
