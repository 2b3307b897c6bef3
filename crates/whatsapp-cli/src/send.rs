//! `wa send TO TEXT` and `wa send-file TO PATH`: one message to a user or a group, waiting for the server's ack.

use whatsapp_client::Jid;

use crate::account;
use crate::cli::Global;
use crate::failure::{client_error, fix};
use crate::login::phone_number;

/// Sends `text` to `to` from the database's linked device.
pub(crate) async fn run(global: &Global, to: &str, text: &str) -> anyhow::Result<()> {
    // A wrong recipient fails before anything is opened.
    let to = recipient(to)?;
    let (client, mut events, _) = account::linked_client(global, false).await?;
    let sent = account::interruptible(async {
        account::connect_logged_in(&client, &mut events).await?;
        (client.send_text(&to, text).await).map_err(|error| client_error(error, &format!("sending to {to}")))
    })
    .await;
    client.disconnect().await;
    let sent = sent?;
    println!("Sent to {to} (id {})", sent.id);
    Ok(())
}

/// Sends the file at `path` to `to` as a document.
pub(crate) async fn run_file(
    global: &Global,
    to: &str,
    path: &std::path::Path,
    mimetype: &str,
) -> anyhow::Result<()> {
    let to = recipient(to)?;
    let data =
        std::fs::read(path).map_err(|error| fix(format!("cannot read {}: {error}", path.display())))?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "file".to_owned());
    let (client, mut events, _) = account::linked_client(global, false).await?;
    let sent = account::interruptible(async {
        account::connect_logged_in(&client, &mut events).await?;
        (client.send_document(&to, &data, mimetype, &name).await)
            .map_err(|error| client_error(error, &format!("sending {name} to {to}")))
    })
    .await;
    client.disconnect().await;
    let sent = sent?;
    println!("Sent {name} ({} bytes) to {to} (id {})", data.len(), sent.id);
    Ok(())
}

/// The user JID of a recipient given as a phone number or a JID.
pub(crate) fn recipient(text: &str) -> anyhow::Result<Jid> {
    let usage = "give a phone number in international form (15551234567), a user JID (15551234567@s.whatsapp.net) \
                 or a group JID (120363000000000000@g.us)";
    if !text.contains('@') {
        let number = phone_number(text).map_err(|_| fix(format!("wrong recipient {text:?}: {usage}")))?;
        return Ok(Jid::new(number, Jid::DEFAULT_USER_SERVER));
    }
    let jid: Jid = text
        .parse()
        .map_err(|error| fix(format!("wrong recipient {text:?} ({error}): {usage}")))?;
    if jid.is_group() {
        let well_formed =
            !jid.user().is_empty() && jid.user().bytes().all(|b| b.is_ascii_digit() || b == b'-');
        if !well_formed {
            return Err(fix(format!("wrong recipient {text:?}: {usage}")));
        }
        return Ok(jid);
    }
    if jid.is_broadcast_list() || jid.is_status_broadcast() || jid.is_newsletter() {
        return Err(fix(format!(
            "cannot send to {text:?}: broadcasts and channels are not supported yet; {usage}"
        )));
    }
    let known_server = [Jid::DEFAULT_USER_SERVER, Jid::LID_SERVER].contains(&jid.server());
    if jid.user().is_empty() || !known_server || !jid.user().bytes().all(|b| b.is_ascii_digit()) {
        return Err(fix(format!("wrong recipient {text:?}: {usage}")));
    }
    Ok(jid)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recipients() {
        for (text, expected) in [
            ("15551234567", "15551234567@s.whatsapp.net"),
            ("+1 555-123 4567", "15551234567@s.whatsapp.net"),
            ("15551234567@s.whatsapp.net", "15551234567@s.whatsapp.net"),
            ("15551234567:3@s.whatsapp.net", "15551234567:3@s.whatsapp.net"),
            ("123456789012345@lid", "123456789012345@lid"),
            ("123-456@g.us", "123-456@g.us"),
            ("120363000000000000@g.us", "120363000000000000@g.us"),
        ] {
            assert_eq!(recipient(text).unwrap().to_string(), expected, "{text}");
        }
        for text in [
            "",
            "bob",
            "12",
            "0015551234567",
            "1555123456789012",
            "@s.whatsapp.net",
            "a@b@c",
            "bob@s.whatsapp.net",
            "15551234567@example.com",
            "abc@g.us",
            "status@broadcast",
            "1555:x@s.whatsapp.net",
        ] {
            let error = recipient(text).unwrap_err();
            assert!(
                error.downcast_ref::<crate::failure::Fix>().is_some(),
                "{text}: {error}"
            );
            assert!(!error.to_string().contains('\n'), "{text}: one line");
        }
    }
}
