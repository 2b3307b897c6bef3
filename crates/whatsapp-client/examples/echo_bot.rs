//! An echo bot: it answers every text message of a direct chat with the same text and marks the message read.
//!
//! ```text
//! cargo run -p whatsapp-client --example echo_bot        # scan the QR code: Settings > Linked devices > Link a device
//! cargo run -p whatsapp-client --example echo_bot -- --server ws://127.0.0.1:PORT/ws/chat --root HEX
//! ```
//!
//! The linked device is kept in `echo_bot.db`, so the next run logs in without a QR code. `--server` and `--root`
//! point the bot at `whatsapp-testserver` (its first output line gives both) instead of WhatsApp.
//! `RUST_LOG=whatsapp_client=debug` shows the protocol steps.

use futures::StreamExt;
use whatsapp_client::sql::SqlBackend;
use whatsapp_client::store::Backend;
use whatsapp_client::{Client, ClientBuilder, Event, ReceiptKind, TrustRoot};

type Error = Box<dyn std::error::Error + Send + Sync>;

#[tokio::main]
async fn main() -> Result<(), Error> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .init();
    let store = SqlBackend::open_sqlite("echo_bot.db").await?;
    let mut builder = Client::builder(store.clone());
    if let Some(&id) = store.accounts().await?.first() {
        builder = builder.account(id); // Log in as the device linked on an earlier run.
    }
    let (client, mut events) = server_from_args(builder)?.build().await?;
    client.connect().await?;
    // Ctrl-C gives the account's store lease back before leaving, so the next run may log in at once.
    let stopper = client.clone();
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            stopper.disconnect().await;
            std::process::exit(0);
        }
    });
    while let Some(event) = events.next().await {
        match event {
            Event::Qr { code, .. } => print_qr(&code)?,
            Event::Connected => println!("Connected; answering text messages"),
            Event::Message { info, message } if !info.is_group && !info.is_from_me => {
                let text = message
                    .conversation
                    .or(message.extended_text_message.and_then(|m| m.text));
                let Some(text) = text else { continue };
                let answer = async {
                    client
                        .mark_read(&info.chat, None, &[info.id], ReceiptKind::Read)
                        .await?;
                    client.send_text(&info.chat, &text).await
                };
                if let Err(error) = answer.await {
                    eprintln!("Could not answer {}: {error}", info.chat);
                }
            }
            Event::LoggedOut { .. } | Event::QrTimeout => break,
            _ => {}
        }
    }
    Ok(())
}

/// Applies `--server URL --root HEX` (a `whatsapp-testserver`) when they are given.
fn server_from_args(builder: ClientBuilder<SqlBackend>) -> Result<ClientBuilder<SqlBackend>, Error> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.as_slice() {
        [] => Ok(builder),
        [flag_server, url, flag_root, root] if flag_server == "--server" && flag_root == "--root" => {
            let bytes = (0..root.len())
                .step_by(2)
                .map(|i| u8::from_str_radix(root.get(i..i + 2).unwrap_or("invalid"), 16))
                .collect::<Result<Vec<u8>, _>>()
                .map_err(|_| "--root takes 64 hex digits")?;
            let key: [u8; 32] = bytes.try_into().map_err(|_| "--root takes 64 hex digits")?;
            Ok(builder.server(
                url,
                TrustRoot::custom(whatsapp_signal::PublicKey::from_bytes(key)),
            ))
        }
        _ => Err("usage: echo_bot [--server URL --root HEX]".into()),
    }
}

/// Draws the QR code in the terminal, and prints its text for tools that scan it from there.
fn print_qr(code: &str) -> Result<(), Error> {
    let picture = qrcode::QrCode::new(code.as_bytes())?
        .render::<qrcode::render::unicode::Dense1x2>()
        .quiet_zone(true)
        .build();
    println!(
        "{picture}\nOn the phone: Settings > Linked devices > Link a device, and scan.\nQR data: {code}"
    );
    Ok(())
}
