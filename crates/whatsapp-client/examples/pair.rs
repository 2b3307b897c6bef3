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
//! ```
//!
//! `RUST_LOG=whatsapp_client=debug` shows the protocol steps.

use futures::StreamExt;
use whatsapp_client::sql::SqlBackend;
use whatsapp_client::store::Backend;
use whatsapp_client::{Client, Event};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .init();
    let mut args = std::env::args().skip(1);
    let mut db = whatsapp_client::sql::DEFAULT_SQLITE_PATH.to_owned();
    let mut phone = None;
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--db" => db = args.next().ok_or("--db needs a path")?,
            "--phone" => phone = Some(args.next().ok_or("--phone needs a number")?),
            other => return Err(format!("unknown argument {other}").into()),
        }
    }

    let store = SqlBackend::open_sqlite(&db).await?;
    // One device per database in this example: reuse it if it exists.
    let mut builder = Client::builder(store.clone());
    if let Some(&id) = store.accounts().await?.first() {
        builder = builder.account(id);
    }
    let (client, mut events) = builder.build().await?;
    client.connect().await?;

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
                    println!("{picture}\nScan within {} s", timeout.as_secs());
                }
            }
            Event::PairSuccess { jid, .. } => println!("Paired as {jid}"),
            Event::PairError { error } => println!("Pairing failed: {error}"),
            Event::Connected => println!("Connected as {:?}; press Ctrl-C to quit", client.jid().await?),
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
