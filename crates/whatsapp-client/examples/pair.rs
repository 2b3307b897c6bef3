//! Links this program to a phone and stays connected, printing what happens.
//!
//! By default it pairs with the real WhatsApp: run it, then on the phone open Settings > Linked devices > Link a
//! device and scan the QR code printed in the terminal. The device is kept in `whatsapp.db`, so the next run logs
//! in without pairing.
//!
//! ```text
//! cargo run -p whatsapp-client --example pair                       # QR code
//! cargo run -p whatsapp-client --example pair -- --phone 15551234567  # pairing code instead
//! cargo run -p whatsapp-client --example pair -- --db other.db
//! cargo run -p whatsapp-client --example pair -- --server ws://127.0.0.1:PORT/ws/chat --root HEX  # a test server
//! ```
//!
//! `--server` and `--root` point the example at `whatsapp-testserver` (its first output line gives both).
//!
//! `RUST_LOG=whatsapp_client=debug` shows the protocol steps.

use futures::StreamExt;
use whatsapp_client::sql::SqlBackend;
use whatsapp_client::store::Backend;
use whatsapp_client::{Client, Event, TrustRoot};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .init();
    let mut args = std::env::args().skip(1);
    let mut db = whatsapp_client::sql::DEFAULT_SQLITE_PATH.to_owned();
    let mut phone = None;
    let mut server = None;
    let mut root = None;
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--db" => db = args.next().ok_or("--db needs a path")?,
            "--phone" => phone = Some(args.next().ok_or("--phone needs a number")?),
            "--server" => server = Some(args.next().ok_or("--server needs a URL")?),
            "--root" => root = Some(parse_key(&args.next().ok_or("--root needs a key in hex")?)?),
            other => return Err(format!("unknown argument {other}").into()),
        }
    }

    let store = SqlBackend::open_sqlite(&db).await?;
    // One device per database in this example: reuse it if it exists.
    let mut builder = Client::builder(store.clone());
    if let Some(&id) = store.accounts().await?.first() {
        builder = builder.account(id);
    }
    match (server, root) {
        (Some(url), Some(root)) => builder = builder.server(url, TrustRoot::custom(root)),
        (None, None) => {}
        _ => return Err("--server and --root go together".into()),
    }
    let (client, mut events) = builder.build().await?;
    client.connect().await?;
    // Ctrl-C gives the account's store lease back before leaving, so the next run may log in at once.
    let stopper = client.clone();
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            stopper.disconnect().await;
            std::process::exit(0);
        }
    });

    let mut asked_for_code = false;
    while let Some(event) = events.next().await {
        match event {
            Event::Qr { code, timeout } => {
                if let Some(phone) = phone.as_deref().filter(|_| !asked_for_code) {
                    asked_for_code = true;
                    let code = client.pair_phone(phone).await?;
                    println!("On the phone: Linked devices > Link with phone number, and type {code}");
                } else if phone.is_none() {
                    let qr = qrcode::QrCode::new(code.as_bytes())?;
                    let picture = qr
                        .render::<qrcode::render::unicode::Dense1x2>()
                        .quiet_zone(true)
                        .build();
                    println!("{picture}\nScan within {} s (QR data: {code})", timeout.as_secs());
                }
            }
            Event::PairSuccess { jid, .. } => println!("Paired as {jid}"),
            Event::PairError { error } => println!("Pairing failed: {error}"),
            Event::Connected => {
                let jid = client.jid().await?.map(|jid| jid.to_string()).unwrap_or_default();
                println!("Connected as {jid}; press Ctrl-C to quit");
            }
            Event::Message { info, message } => {
                println!(
                    "{} ({}): {:?}",
                    info.sender,
                    info.chat,
                    message.conversation.unwrap_or_default()
                );
            }
            Event::LoggedOut { .. } => {
                println!("Logged out; the device was deleted from {db}");
                break;
            }
            Event::QrTimeout => {
                println!("No QR code was scanned in time");
                break;
            }
            other => println!("{other:?}"),
        }
    }
    Ok(())
}

/// A 32-byte public key from 64 hex digits.
fn parse_key(hex: &str) -> Result<whatsapp_signal::PublicKey, Box<dyn std::error::Error>> {
    let bytes = (0..hex.len())
        .step_by(2)
        .map(|i| {
            u8::from_str_radix(hex.get(i..i + 2).ok_or("odd number of hex digits")?, 16).map_err(Into::into)
        })
        .collect::<Result<Vec<u8>, Box<dyn std::error::Error>>>()?;
    let key: [u8; 32] = bytes.try_into().map_err(|_| "the key must be 32 bytes")?;
    Ok(whatsapp_signal::PublicKey::from_bytes(key))
}
