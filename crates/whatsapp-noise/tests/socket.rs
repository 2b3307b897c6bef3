//! A real `ws://` listener on 127.0.0.1 and a client handshake over real sockets, then frames both ways: a frame
//! larger than 64 KiB, several frames packed into one WebSocket message, and one frame split across messages.

#![cfg(feature = "tokio")]
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test helpers fail loudly")]

use bytes::BytesMut;
use rand::SeedableRng;
use rand::rngs::StdRng;
use whatsapp_noise::{
    ClientParams, KeyPair, NoiseListener, NoiseSocket, PrivateKey, SocketError, TrustRoot, connect,
    self_issued_identity,
};

const NOW: u64 = 1_700_000_000;

/// The frames each side sends, in order: small, > 64 KiB, three packed in one message, one split in two.
fn frames(tag: u8) -> Vec<Vec<u8>> {
    vec![
        vec![tag],
        vec![tag; 70_000],
        vec![tag, 1],
        vec![tag, 2],
        vec![tag, 3],
        vec![tag; 300],
    ]
}

/// Sends `frames(tag)` with the packing described above.
async fn send_all<S>(socket: &mut NoiseSocket<S>, tag: u8) -> Result<(), SocketError>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let f = frames(tag);
    socket.send_frame(&f[0]).await?;
    socket.send_frame(&f[1]).await?;
    socket.send_frames(&[&f[2], &f[3], &f[4]]).await?;
    let mut sealed = BytesMut::new();
    socket.seal_frame(&f[5], &mut sealed)?;
    let second = sealed.split_off(2);
    socket.send_raw(sealed.freeze()).await?;
    socket.send_raw(second.freeze()).await?;
    Ok(())
}

async fn receive_all<S>(socket: &mut NoiseSocket<S>, tag: u8)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    for expected in frames(tag) {
        let got = socket.recv_frame().await.unwrap().expect("a frame");
        assert_eq!(got.to_vec(), expected);
    }
}

#[tokio::test]
async fn handshake_and_frames_over_real_sockets() {
    let mut rng = StdRng::seed_from_u64(7);
    let (identity, trust_root) = self_issued_identity(&mut rng, 0, NOW + 3600);
    let server_static = identity.static_key.clone();
    let listener = NoiseListener::bind("127.0.0.1:0", identity).await.unwrap();
    let url = format!("ws://{}/ws/chat", listener.local_addr().unwrap());
    let server_ephemeral = PrivateKey::generate(&mut rng);
    let server = tokio::spawn(async move {
        let incoming = listener.accept().await.unwrap();
        let mut accepted = incoming.handshake(server_ephemeral).await.unwrap();
        receive_all(&mut accepted.socket, 0xc1).await;
        send_all(&mut accepted.socket, 0x5e).await.unwrap();
        // The client closes after reading: a clean end.
        assert!(accepted.socket.recv_frame().await.unwrap().is_none());
        (accepted.client_static, accepted.client_payload)
    });

    let noise_key = KeyPair::generate(&mut rng);
    let mut connection = connect(
        &url,
        ClientParams {
            noise_key: &noise_key,
            client_payload: b"client payload",
            trust_root,
            now: NOW,
            ephemeral: PrivateKey::generate(&mut rng),
            user_agent: Some("whatsapp-noise test"),
        },
    )
    .await
    .unwrap();
    assert_eq!(connection.server_static, server_static.public);
    send_all(&mut connection.socket, 0xc1).await.unwrap();
    receive_all(&mut connection.socket, 0x5e).await;
    connection.socket.close().await.unwrap();

    let (client_static, client_payload) = server.await.unwrap();
    assert_eq!(client_static, noise_key.public);
    assert_eq!(client_payload, b"client payload");
}

#[tokio::test]
async fn untrusted_server_is_refused() {
    let mut rng = StdRng::seed_from_u64(8);
    // A chain under a root of its own, presented to a client that trusts only WhatsApp's root.
    let (identity, _own_root) = self_issued_identity(&mut rng, 0, NOW + 3600);
    let listener = NoiseListener::bind("127.0.0.1:0", identity).await.unwrap();
    let url = format!("ws://{}/ws/chat", listener.local_addr().unwrap());
    let server_ephemeral = PrivateKey::generate(&mut rng);
    let server = tokio::spawn(async move {
        let incoming = listener.accept().await.unwrap();
        incoming.handshake(server_ephemeral).await.map(|_| ())
    });
    let noise_key = KeyPair::generate(&mut rng);
    let result = connect(
        &url,
        ClientParams {
            noise_key: &noise_key,
            client_payload: b"",
            trust_root: TrustRoot::whatsapp(),
            now: NOW,
            ephemeral: PrivateKey::generate(&mut rng),
            user_agent: None,
        },
    )
    .await;
    assert!(matches!(result, Err(SocketError::Handshake(_))), "{result:?}");
    drop(result);
    // The client dropped the connection mid-handshake: the server sees it end, never a hang.
    assert!(server.await.unwrap().is_err());
}
