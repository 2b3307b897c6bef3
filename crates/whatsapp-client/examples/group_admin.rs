//! Group administration: create a group, add people, make one of them an admin, set the description, and print
//! the invite link; then print the changes other admins make until Ctrl-C.
//!
//! ```text
//! cargo run -p whatsapp-client --example group_admin -- 15551234567 15557654321
//! cargo run -p whatsapp-client --example group_admin -- --server ws://127.0.0.1:PORT/ws/chat --root HEX 1555...
//! ```
//!
//! The arguments are the phone numbers to add (international form, digits only); the first one is made an admin.
//! The linked device is kept in `group_admin.db` (scan the QR code on the first run). `--server` and `--root`
//! point it at `whatsapp-testserver` instead of WhatsApp.

use futures::StreamExt;
use whatsapp_client::sql::SqlBackend;
use whatsapp_client::store::Backend;
use whatsapp_client::{Client, CreateGroup, Event, Jid, ParticipantChange, TrustRoot};

type Error = Box<dyn std::error::Error + Send + Sync>;

#[tokio::main]
async fn main() -> Result<(), Error> {
    let (server, numbers) = parse_args()?;
    let store = SqlBackend::open_sqlite("group_admin.db").await?;
    let mut builder = Client::builder(store.clone());
    if let Some(&id) = store.accounts().await?.first() {
        builder = builder.account(id);
    }
    if let Some((url, root)) = server {
        builder = builder.server(
            url,
            TrustRoot::custom(whatsapp_signal::PublicKey::from_bytes(root)),
        );
    }
    let (client, mut events) = builder.build().await?;
    client.connect().await?;
    loop {
        match events.next().await.ok_or("the client stopped")? {
            Event::Qr { code, .. } => println!("Scan on the phone (Settings > Linked devices): {code}"),
            Event::Connected => break,
            Event::LoggedOut { .. } | Event::QrTimeout => return Err("not linked".into()),
            _ => {}
        }
    }

    let people: Vec<Jid> = numbers
        .iter()
        .map(|n| Jid::new(n.clone(), Jid::DEFAULT_USER_SERVER))
        .collect();
    let group = client
        .create_group(&CreateGroup {
            subject: "Project team".to_owned(),
            ..CreateGroup::default()
        })
        .await?;
    println!("Created {} ({})", group.jid, group.subject);

    // Each person gets a line: 200 when added, else why not (403 their privacy settings, 409 already in).
    for line in client
        .update_group_participants(&group.jid, ParticipantChange::Add, &people)
        .await?
    {
        println!("add {}: {}", line.jid, line.status());
    }
    if let Some(first) = people.first() {
        let promoted = client
            .update_group_participants(
                &group.jid,
                ParticipantChange::Promote,
                std::slice::from_ref(first),
            )
            .await?;
        println!(
            "promote {first}: {}",
            promoted.first().map_or(0, |line| line.status())
        );
    }
    client
        .set_group_description(&group.jid, "Where the project team talks.")
        .await?;
    println!(
        "Invite link: {}",
        client.group_invite_link(&group.jid, false).await?
    );

    println!("Watching the group; Ctrl-C to stop");
    loop {
        tokio::select! {
            event = events.next() => match event {
                Some(Event::GroupChanged(change)) => println!(
                    "{} changed by {:?}: joined {:?}, left {:?}, subject {:?}",
                    change.group,
                    change.sender,
                    change.join,
                    change.leave,
                    change.subject.map(|s| s.subject)
                ),
                Some(_) => {}
                None => break,
            },
            _ = tokio::signal::ctrl_c() => break,
        }
    }
    client.disconnect().await;
    Ok(())
}

type ServerArgs = Option<(String, [u8; 32])>;

/// `[--server URL --root HEX] NUMBER...`.
fn parse_args() -> Result<(ServerArgs, Vec<String>), Error> {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let mut server = None;
    if args.first().map(String::as_str) == Some("--server") {
        let [_, url, flag, root, ..] = args.as_slice() else {
            return Err("usage: group_admin [--server URL --root HEX] NUMBER...".into());
        };
        if flag != "--root" {
            return Err("--server needs --root HEX".into());
        }
        let bytes = (0..root.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(root.get(i..i + 2).unwrap_or("invalid"), 16))
            .collect::<Result<Vec<u8>, _>>()
            .map_err(|_| "--root takes 64 hex digits")?;
        let key: [u8; 32] = bytes.try_into().map_err(|_| "--root takes 64 hex digits")?;
        server = Some((url.clone(), key));
        args.drain(..4);
    }
    if args
        .iter()
        .any(|n| n.is_empty() || !n.bytes().all(|b| b.is_ascii_digit()))
    {
        return Err("phone numbers are digits in international form, such as 15551234567".into());
    }
    Ok((server, args))
}
