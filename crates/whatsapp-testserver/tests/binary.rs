//! The `whatsapp-testserver` binary: it prints its URL and trust root, accepts a client, and answers commands.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test helpers fail loudly")]

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rand::SeedableRng;
use rand::rngs::StdRng;
use whatsapp_core::connection::Incoming;
use whatsapp_core::device::{key_pair, new_device, registration_keys};
use whatsapp_core::payload::ClientIdentity;
use whatsapp_noise::{ClientParams, PrivateKey, PublicKey, TrustRoot, connect};
use whatsapp_proto::ProtoMessage;

/// Ends the server process even when an assertion fails first.
struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test]
async fn the_binary_serves_a_client() {
    let mut child = KillOnDrop(
        Command::new(env!("CARGO_BIN_EXE_whatsapp-testserver"))
            .args(["--phone", "15551234567"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let child = &mut child.0;
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    stdout.read_line(&mut line).unwrap();
    let (url, root) = line.trim().split_once(' ').expect("URL and trust root");
    let (url, root) = (url.to_owned(), root.to_owned());
    assert!(
        url.starts_with("ws://127.0.0.1:") && url.ends_with("/ws/chat"),
        "{url}"
    );
    let root: [u8; 32] = hex::decode(root).unwrap().try_into().unwrap();
    line.clear();
    stdout.read_line(&mut line).unwrap();
    assert!(line.starts_with("phone 15551234567 "), "{line}");

    let mut rng = StdRng::seed_from_u64(1);
    let device = new_device(&mut rng);
    let payload = ClientIdentity::default().registration_payload(&registration_keys(&device));
    let noise_key = key_pair(&device.noise_key);
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs();
    let mut connection = tokio::time::timeout(
        Duration::from_secs(30),
        connect(
            &url,
            ClientParams {
                noise_key: &noise_key,
                client_payload: &payload.encode_to_vec(),
                trust_root: TrustRoot::custom(PublicKey::from_bytes(root)),
                now,
                ephemeral: PrivateKey::generate(&mut rng),
                user_agent: None,
            },
        ),
    )
    .await
    .unwrap()
    .unwrap();
    let frame = tokio::time::timeout(Duration::from_secs(30), connection.socket.recv_frame())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    let iq = whatsapp_binary::decode_frame(&frame).unwrap();
    assert!(
        matches!(Incoming::classify(&iq), Incoming::PairDevice { .. }),
        "{iq}"
    );

    // A command with an unknown phone is answered with an error, and `quit` ends the process.
    let mut stdin = child.stdin.take().unwrap();
    writeln!(stdin, "code 1999 ABCD-EFGH").unwrap();
    line.clear();
    stdout.read_line(&mut line).unwrap();
    assert!(line.starts_with("error no phone 1999"), "{line}");
    writeln!(stdin, "quit").unwrap();
    assert!(child.wait().unwrap().success());
}
