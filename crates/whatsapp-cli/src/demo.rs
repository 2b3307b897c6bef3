//! `wa demo`: the offline proof that the pieces work together. It starts the embedded test server, creates two
//! accounts (simulated phones), links one companion device to each by scanning its QR code with the phone, sends
//! text messages both ways, has the receiver mark them read, sends a file (encrypted, uploaded to the test
//! server's media host, downloaded and checked by the receiver), and sends a message to a group of both, printing
//! every step.
//!
//! Every device keeps its store in its own in-memory SQLite database; nothing touches `--database` or the
//! network beyond 127.0.0.1.

use std::time::Duration;

use anyhow::Context as _;
use whatsapp_client::sql::SqlBackend;
use whatsapp_client::{Client, Event, Events, Jid, MediaRef, ReceiptKind};
use whatsapp_testserver::{Phone, TestServer};

use crate::account::{SqlClient, stopping_error};
use crate::listen::{message_text, receipt_kind};

/// How long one step may take before the demo fails.
const STEP: Duration = Duration::from_secs(30);

/// The simulated phones' numbers (the 555 range is reserved for fiction).
const ALICE: &str = "15550100001";
const BOB: &str = "15550100002";

/// A companion device and its events.
struct Companion {
    name: &'static str,
    client: SqlClient,
    events: Events,
    jid: Jid,
}

/// Runs the demo; an error names the step that failed.
pub(crate) async fn run() -> anyhow::Result<()> {
    let server = TestServer::start().await.context("starting the test server")?;
    println!("[server] test server listening on {}", server.url());
    let result = exchange(&server).await;
    server.shutdown();
    result?;
    println!("[done] pairing, messages both ways, receipts, a file and a group message all worked");
    Ok(())
}

async fn exchange(server: &TestServer) -> anyhow::Result<()> {
    let mut alice = link(server, "alice", ALICE).await?;
    let mut bob = link(server, "bob", BOB).await?;
    let mut result = talk(&mut alice, &mut bob).await;
    if result.is_ok() {
        result = file(&mut alice, &mut bob).await;
    }
    if result.is_ok() {
        result = group(server, &mut alice, &mut bob).await;
    }
    alice.client.disconnect().await;
    bob.client.disconnect().await;
    result
}

/// Creates the phone `number` and links a new companion device to it by QR code.
async fn link(server: &TestServer, name: &'static str, number: &str) -> anyhow::Result<Companion> {
    let phone: Phone = server.add_phone(number);
    println!("[{name}] phone +{number} created on the server");
    let store = SqlBackend::memory().await.context("opening an in-memory store")?;
    let (client, mut events) = Client::builder(store)
        .server(server.url(), server.trust_root())
        .build()
        .await
        .context("creating the device")?;
    client.connect().await.context("connecting to the test server")?;
    let qr = match step(&mut events, "a QR code", |e| matches!(e, Event::Qr { .. })).await? {
        Event::Qr { code, .. } => code,
        _ => unreachable_event("a QR code")?,
    };
    println!(
        "[{name}] companion shows QR code {}...",
        qr.chars().take(48).collect::<String>()
    );
    phone.scan_qr(&qr).await.context("scanning the QR code")?;
    println!("[{name}] phone scanned it");
    let jid = match step(&mut events, "pair success", |e| {
        matches!(e, Event::PairSuccess { .. })
    })
    .await?
    {
        Event::PairSuccess { jid, .. } => jid,
        _ => unreachable_event("pair success")?,
    };
    println!("[{name}] linked as device {jid}");
    step(&mut events, "the login", |e| matches!(e, Event::Connected)).await?;
    println!("[{name}] logged in");
    Ok(Companion {
        name,
        client,
        events,
        jid,
    })
}

/// A message from Alice, its delivery and read receipts, then Bob's answer. (Receipts are awaited before the
/// answer because waiting for one event skips the others.)
async fn talk(alice: &mut Companion, bob: &mut Companion) -> anyhow::Result<()> {
    let first = send(alice, bob, "Hello Bob, this is Alice").await?;
    let delivered = receipt(alice, &first, |kind| *kind != ReceiptKind::Read).await?;
    println!(
        "[{}] delivery receipt ({}) from {} for {first}",
        alice.name,
        receipt_kind(&delivered),
        bob.jid
    );
    bob.client
        .mark_read(
            &alice.jid.to_non_ad(),
            None,
            std::slice::from_ref(&first),
            ReceiptKind::Read,
        )
        .await
        .context("marking the message read")?;
    println!("[{}] marked {first} read", bob.name);
    receipt(alice, &first, |kind| *kind == ReceiptKind::Read).await?;
    println!("[{}] read receipt from {} for {first}", alice.name, bob.jid);
    send(bob, alice, "Hi Alice! Bob here.").await?;
    Ok(())
}

/// A 256 KiB document from Alice: encrypted and uploaded by her client, downloaded, verified and decrypted by
/// Bob's.
async fn file(alice: &mut Companion, bob: &mut Companion) -> anyhow::Result<()> {
    let content: Vec<u8> = (0..256 * 1024u32)
        .map(|i| b"whatsapp-rs demo "[(i % 17) as usize])
        .collect();
    let sent = alice
        .client
        .send_document(&bob.jid.to_non_ad(), &content, "text/plain", "demo.txt")
        .await
        .context("alice sending a file")?;
    println!(
        "[{}] uploaded demo.txt ({} bytes, encrypted) and sent it (id {})",
        alice.name,
        content.len(),
        sent.id
    );
    let event = step(&mut bob.events, "the file", |e| {
        matches!(e, Event::Message { info, .. } | Event::UndecryptableMessage { info, .. } if info.id == sent.id)
    })
    .await?;
    let Event::Message { message, .. } = event else {
        anyhow::bail!("bob could not decrypt the file message");
    };
    let media = MediaRef::of(&message).context("the file message carries no media")?;
    let downloaded = bob
        .client
        .download(&media)
        .await
        .context("bob downloading the file")?;
    anyhow::ensure!(
        downloaded == content,
        "bob downloaded other bytes than alice sent"
    );
    println!(
        "[{}] downloaded demo.txt ({} bytes), hashes and MAC checked, same bytes",
        bob.name,
        downloaded.len()
    );
    Ok(())
}

/// A group of both accounts: Alice's first message to it carries her sender key for Bob's device.
async fn group(server: &TestServer, alice: &mut Companion, bob: &mut Companion) -> anyhow::Result<()> {
    let group = server.create_group("Demo group", &[ALICE, BOB]);
    println!("[server] group {group} created with both accounts");
    let text = "Hello everyone in the group";
    let sent = alice
        .client
        .send_text(&group, text)
        .await
        .context("alice sending to the group")?;
    println!(
        "[{}] sent {text:?} to the group (id {}), with her sender key for bob",
        alice.name, sent.id
    );
    let event = step(&mut bob.events, "the group message", |e| {
        matches!(e, Event::Message { info, .. } | Event::UndecryptableMessage { info, .. } if info.id == sent.id)
    })
    .await?;
    match event {
        Event::Message { info, message } => {
            let got = message_text(&message).unwrap_or_default();
            anyhow::ensure!(got == text, "bob received {got:?} instead of {text:?}");
            anyhow::ensure!(info.chat == group, "bob received it outside the group");
            println!(
                "[{}] received {got:?} in {} from {}, decrypted with the sender key",
                bob.name, info.chat, info.sender
            );
            Ok(())
        }
        Event::UndecryptableMessage { error, .. } => {
            anyhow::bail!("bob could not decrypt the group message: {error}")
        }
        _ => unreachable_event("the group message"),
    }
}

/// Sends `text` from `from` to `to`'s account and waits until `to` received it; returns the message id.
async fn send(from: &mut Companion, to: &mut Companion, text: &str) -> anyhow::Result<String> {
    let sent = from
        .client
        .send_text(&to.jid.to_non_ad(), text)
        .await
        .with_context(|| format!("{} sending a message", from.name))?;
    println!(
        "[{}] sent {:?} (id {}), the server acked it",
        from.name, text, sent.id
    );
    let what = format!("{}'s message", from.name);
    let event = step(&mut to.events, &what, |e| {
        matches!(e, Event::Message { info, .. } | Event::UndecryptableMessage { info, .. } if info.id == sent.id)
    })
    .await?;
    match event {
        Event::Message { info, message } => {
            let got = message_text(&message).unwrap_or_default();
            anyhow::ensure!(got == text, "{} received {got:?} instead of {text:?}", to.name);
            println!("[{}] received {got:?} from {}, decrypted", to.name, info.sender);
            Ok(sent.id)
        }
        Event::UndecryptableMessage { error, .. } => {
            anyhow::bail!("{} could not decrypt {what}: {error}", to.name)
        }
        _ => unreachable_event(&what),
    }
}

/// Waits for a receipt for message `id` whose kind satisfies `kind`; returns the kind.
async fn receipt(
    at: &mut Companion,
    id: &str,
    kind: impl Fn(&ReceiptKind) -> bool,
) -> anyhow::Result<ReceiptKind> {
    let event = step(
        &mut at.events,
        "a receipt",
        |e| matches!(e, Event::Receipt(r) if r.ids.iter().any(|i| i == id) && kind(&r.kind)),
    )
    .await?;
    match event {
        Event::Receipt(receipt) => Ok(receipt.kind),
        _ => unreachable_event("a receipt"),
    }
}

/// The next event matching `wanted`, skipping others; fails on an event that stops the client, or after
/// [`STEP`].
async fn step(events: &mut Events, what: &str, wanted: impl Fn(&Event) -> bool) -> anyhow::Result<Event> {
    let found = tokio::time::timeout(STEP, async {
        while let Some(event) = events.recv().await {
            if wanted(&event) {
                // The demo has what it waited for: its ack and delivery receipt go out now.
                events.mark_handled();
                return Ok(event);
            }
            if let Some(error) = stopping_error(&event) {
                return Err(error.context(format!("waiting for {what}")));
            }
            if let Event::PairError { error } = event {
                return Err(anyhow::Error::new(error).context(format!("waiting for {what}")));
            }
        }
        Err(anyhow::anyhow!("the client stopped while waiting for {what}"))
    })
    .await;
    found.unwrap_or_else(|_| Err(anyhow::anyhow!("no {what} within {} s", STEP.as_secs())))
}

/// `step` returned an event its predicate did not accept; cannot happen.
fn unreachable_event<T>(what: &str) -> anyhow::Result<T> {
    Err(anyhow::anyhow!(
        "internal error: a wrong event while waiting for {what}"
    ))
}
