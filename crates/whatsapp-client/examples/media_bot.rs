//! A media bot: it answers every image of a direct chat with the image's dimensions (as its message states them)
//! and sends the image back. When the image has expired on the media host, it asks the phone to upload it again
//! and answers once it has.
//!
//! ```text
//! cargo run -p whatsapp-client --example media_bot       # scan the QR code: Settings > Linked devices > Link a device
//! cargo run -p whatsapp-client --example media_bot -- --server ws://127.0.0.1:PORT/ws/chat --root HEX
//! ```
//!
//! The linked device is kept in `media_bot.db`, so the next run logs in without a QR code. `--server` and `--root`
//! point the bot at `whatsapp-testserver` (its first output line gives both) instead of WhatsApp.
//! `RUST_LOG=whatsapp_client=debug` shows the protocol steps.

use std::collections::HashMap;

use futures::StreamExt;
use whatsapp_client::sql::SqlBackend;
use whatsapp_client::store::Backend;
use whatsapp_client::{
    Client, ClientBuilder, ClientError, Event, Jid, MediaRef, MediaRetryResult, TrustRoot,
};

type Error = Box<dyn std::error::Error + Send + Sync>;

#[tokio::main]
async fn main() -> Result<(), Error> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .init();
    let store = SqlBackend::open_sqlite("media_bot.db").await?;
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
    // Images whose download found the file expired, by message id, until the phone answers the retry request.
    let mut expired: HashMap<String, Image> = HashMap::new();
    while let Some(event) = events.next().await {
        match event {
            Event::Qr { code, .. } => print_qr(&code)?,
            Event::Connected => println!("Connected; answering images"),
            Event::Message { info, message } if !info.is_group && !info.is_from_me => {
                let (Some(received), Some(media)) =
                    (message.image_message.as_deref(), MediaRef::of(&message))
                else {
                    continue;
                };
                let image = Image {
                    chat: info.chat.clone(),
                    size: received.width.zip(received.height),
                    media,
                };
                match client.download(&image.media).await {
                    Ok(data) => answer(&client, &image, &data).await,
                    Err(ClientError::MediaExpired { .. }) => {
                        match client.request_media_retry(&info, &image.media).await {
                            Ok(()) => {
                                expired.insert(info.id.clone(), image);
                            }
                            Err(error) => eprintln!("Could not ask for {} again: {error}", info.id),
                        }
                    }
                    Err(error) => eprintln!("Could not download {}: {error}", info.id),
                }
            }
            Event::MediaRetry { message_id, result } => {
                let Some(mut image) = expired.remove(&message_id) else {
                    continue;
                };
                match result {
                    Ok(MediaRetryResult::Success { direct_path }) => {
                        image.media.direct_path = direct_path;
                        match client.download(&image.media).await {
                            Ok(data) => answer(&client, &image, &data).await,
                            Err(error) => eprintln!("Could not download {message_id} again: {error}"),
                        }
                    }
                    Ok(other) => eprintln!("The phone could not upload {message_id} again: {other:?}"),
                    Err(error) => eprintln!("Unreadable answer for {message_id}: {error}"),
                }
            }
            Event::LoggedOut { .. } | Event::QrTimeout => break,
            _ => {}
        }
    }
    Ok(())
}

/// A received image: where it came from, its size as its message states it, and how to download it.
struct Image {
    chat: Jid,
    size: Option<(u32, u32)>,
    media: MediaRef,
}

/// Tells the sender the image's dimensions and sends it back (`send_image` measures it again and makes a
/// thumbnail).
async fn answer(client: &Client<SqlBackend>, image: &Image, data: &[u8]) {
    let text = match image.size {
        Some((width, height)) => format!("Your image is {width} × {height} pixels, {} bytes", data.len()),
        None => format!(
            "Your image has {} bytes; its message does not say its size",
            data.len()
        ),
    };
    let sent = async {
        client.send_text(&image.chat, &text).await?;
        client
            .send_image(&image.chat, data, Some("Here it is back"))
            .await
    };
    if let Err(error) = sent.await {
        eprintln!("Could not answer {}: {error}", image.chat);
    }
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
        _ => Err("usage: media_bot [--server URL --root HEX]".into()),
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
