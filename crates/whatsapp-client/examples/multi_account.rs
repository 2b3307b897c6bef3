//! Hosts every account of one database in one process: a client per account, each in its own task, printing what
//! arrives with the account's JID.
//!
//! ```text
//! cargo run -p whatsapp-client --example multi_account -- --new     # link a device (QR code), host it and the others
//! cargo run -p whatsapp-client --example multi_account               # host every linked device of the database
//! cargo run -p whatsapp-client --example multi_account -- --database postgres://USER@HOST/DB
//! cargo run -p whatsapp-client --example multi_account -- --server ws://127.0.0.1:PORT/ws/chat --root HEX --new
//! ```
//!
//! The database defaults to the SQLite file `multi_account.db`; `--database` takes any URL `SqlBackend::connect`
//! does (`sqlite:PATH`, `postgres://...`). Each client holds a lease on its account while it runs, so a second
//! process started on the same database reports those accounts as in use instead of driving them twice. Each
//! `--new` links one more device (`--new --new` two); a device whose pairing never finished is reused by the next
//! `--new` instead of piling up.

use futures::StreamExt;
use whatsapp_client::sql::SqlBackend;
use whatsapp_client::store::{Backend, StoreError};
use whatsapp_client::{Client, ClientError, Event, Events, TrustRoot};

type Error = Box<dyn std::error::Error + Send + Sync>;

const USAGE: &str = "usage: multi_account [--database URL] [--new]... [--server URL --root HEX]";

/// The command line.
struct Options {
    /// The database URL.
    database: String,
    /// How many new devices to link.
    new: usize,
    /// A test server's URL and trust root, instead of WhatsApp.
    server: Option<(String, TrustRoot)>,
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .init();
    let options = parse_args()?;
    let store = SqlBackend::connect(&options.database).await?;

    let mut want_new = options.new;
    let mut hosts = tokio::task::JoinSet::new();
    for id in store.accounts().await? {
        let (client, events) = builder(&store, &options).account(id).build().await?;
        if client.jid().await?.is_none() {
            if want_new == 0 {
                println!("[account {id}] never paired; run with --new to pair it");
                continue;
            }
            want_new -= 1;
        }
        hosts.spawn(host(client, events));
    }
    for _ in 0..want_new {
        let (client, events) = builder(&store, &options).build().await?;
        hosts.spawn(host(client, events));
    }
    if hosts.is_empty() {
        return Err("the database holds no linked device yet; run with --new to link one".into());
    }
    while hosts.join_next().await.is_some() {}
    println!("No account left to host");
    Ok(())
}

/// A builder on `store`, pointed at the test server when one was given.
fn builder(store: &SqlBackend, options: &Options) -> whatsapp_client::ClientBuilder<SqlBackend> {
    let builder = Client::builder(store.clone());
    match &options.server {
        Some((url, root)) => builder.server(url.clone(), *root),
        None => builder,
    }
}

/// Drives one account until it stops for good, printing its events.
async fn host(client: Client<SqlBackend>, mut events: Events) {
    let account = client.account_id();
    let mut name = match client.jid().await {
        Ok(Some(jid)) => jid.to_string(),
        _ => format!("new device {account}"),
    };
    match client.connect().await {
        Ok(()) => {}
        Err(ClientError::Store(StoreError::LeaseHeld { owner, .. })) => {
            println!(
                "[{name}] in use by another process ({owner}); after a crash its lease runs out within a minute"
            );
            return;
        }
        Err(error) => {
            println!("[{name}] cannot connect: {error}");
            return;
        }
    }
    while let Some(event) = events.next().await {
        match event {
            Event::Qr { code, .. } => print_qr(&name, &code),
            Event::PairSuccess { jid, .. } => {
                name = jid.to_string();
                println!("[{name}] paired");
            }
            Event::Connected => println!("[{name}] connected"),
            Event::Message { info, message } => {
                let text = message
                    .conversation
                    .or(message.extended_text_message.and_then(|m| m.text));
                let text = text.unwrap_or_else(|| "(not a text message)".to_owned());
                println!("[{name}] {} in {}: {text}", info.sender, info.chat);
            }
            Event::Receipt(receipt) => {
                println!(
                    "[{name}] {:?} from {} for {:?}",
                    receipt.kind, receipt.sender, receipt.ids
                );
            }
            // These end the client: it does not reconnect after them.
            stop @ (Event::LoggedOut { .. }
            | Event::QrTimeout
            | Event::LeaseLost
            | Event::StreamReplaced
            | Event::TemporaryBan { .. }
            | Event::ClientOutdated) => {
                println!("[{name}] stopped: {stop:?}");
                break;
            }
            other => println!("[{name}] {other:?}"),
        }
    }
}

/// Draws the QR code in the terminal with the account's name, and prints its text.
fn print_qr(name: &str, code: &str) {
    match qrcode::QrCode::new(code.as_bytes()) {
        Ok(qr) => {
            let picture = qr
                .render::<qrcode::render::unicode::Dense1x2>()
                .quiet_zone(true)
                .build();
            println!("[{name}] scan with the phone (Settings > Linked devices):\n{picture}");
        }
        Err(error) => println!("[{name}] cannot draw the QR code: {error}"),
    }
    println!("[{name}] QR data: {code}");
}

/// Reads the command line.
fn parse_args() -> Result<Options, Error> {
    let mut options = Options {
        database: "sqlite:multi_account.db".to_owned(),
        new: 0,
        server: None,
    };
    let (mut url, mut root) = (None, None);
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--database" => options.database = args.next().ok_or("--database needs a URL")?,
            "--new" => options.new += 1,
            "--server" => url = Some(args.next().ok_or("--server needs a URL")?),
            "--root" => root = Some(parse_key(&args.next().ok_or("--root needs a key in hex")?)?),
            other => return Err(format!("unknown argument {other}\n{USAGE}").into()),
        }
    }
    options.server = match (url, root) {
        (Some(url), Some(root)) => Some((url, TrustRoot::custom(root))),
        (None, None) => None,
        _ => return Err("--server and --root go together".into()),
    };
    Ok(options)
}

/// A 32-byte public key from 64 hex digits.
fn parse_key(hex: &str) -> Result<whatsapp_signal::PublicKey, Error> {
    let bytes = (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(hex.get(i..i + 2).unwrap_or("invalid"), 16))
        .collect::<Result<Vec<u8>, _>>()
        .map_err(|_| "--root takes 64 hex digits")?;
    let key: [u8; 32] = bytes.try_into().map_err(|_| "--root takes 64 hex digits")?;
    Ok(whatsapp_signal::PublicKey::from_bytes(key))
}
