//! `wa listen`: stays connected and prints every event, as text or as JSON lines, until Ctrl-C.

use serde_json::{Value, json};
use whatsapp_client::{Event, GroupChange, Jid, Message, MessageInfo, Receipt, ReceiptKind};

use crate::account;
use crate::cli::Global;

/// Prints the events of the database's linked device until Ctrl-C or an event that stops the client.
pub(crate) async fn run(global: &Global, as_json: bool) -> anyhow::Result<()> {
    let (client, mut events, jid) = account::linked_client(global, true).await?;
    if let Err(error) = account::interruptible(account::connect_logged_in(&client, &mut events)).await {
        client.disconnect().await;
        return Err(error);
    }
    print(&Event::Connected, as_json);
    if !as_json {
        eprintln!("Listening as {jid}; press Ctrl-C to stop");
    }
    let result = loop {
        tokio::select! {
            event = events.recv() => {
                let Some(event) = event else { break Ok(()) };
                print(&event, as_json);
                // Printed: its ack may go out now rather than when the next event comes.
                events.mark_handled();
                if let Some(error) = account::stopping_error(&event) {
                    break Err(error);
                }
            }
            _ = tokio::signal::ctrl_c() => break Ok(()),
        }
    };
    client.disconnect().await;
    result
}

fn print(event: &Event, as_json: bool) {
    if as_json {
        println!("{}", event_json(event));
    } else {
        println!("{}", event_text(event));
    }
}

/// The text of a message, for the kinds that carry text.
pub(crate) fn message_text(message: &Message) -> Option<&str> {
    message.conversation.as_deref().or_else(|| {
        message
            .extended_text_message
            .as_ref()
            .and_then(|extended| extended.text.as_deref())
    })
}

/// The name of a receipt kind as the protocol writes it (`delivered` for the one without a type).
pub(crate) fn receipt_kind(kind: &ReceiptKind) -> &str {
    kind.as_attr().unwrap_or("delivered")
}

/// One line of text for an event.
pub(crate) fn event_text(event: &Event) -> String {
    match event {
        Event::Message { info, message } => {
            let from = if info.is_from_me {
                "me (another device)".to_owned()
            } else {
                who(info)
            };
            match message_text(message) {
                Some(text) => format!("message {} from {from} in {}: {text}", info.id, info.chat),
                None => format!("message {} from {from} in {} (not text)", info.id, info.chat),
            }
        }
        Event::Receipt(receipt) => format!(
            "receipt {} from {} in {} for {}",
            receipt_kind(&receipt.kind),
            receipt.sender,
            receipt.chat,
            receipt.ids.join(", ")
        ),
        Event::UndecryptableMessage { info, error, .. } => {
            format!("undecryptable message {} from {}: {error}", info.id, who(info))
        }
        Event::Connected => "connected".to_owned(),
        Event::Disconnected => "disconnected; reconnecting".to_owned(),
        Event::LoggedOut { code, .. } => format!("logged out (code {code})"),
        Event::JoinedGroup(joined) => format!("joined group {} ({})", joined.info.jid, joined.info.subject),
        Event::GroupChanged(change) => {
            let by = change
                .sender
                .as_ref()
                .map_or_else(|| "the server".to_owned(), ToString::to_string);
            format!(
                "group {} changed by {by}: {}",
                change.group,
                group_change_json(change)
            )
        }
        other => format!("{other:?}"),
    }
}

fn who(info: &MessageInfo) -> String {
    match &info.push_name {
        Some(name) => format!("{} ({name})", info.sender),
        None => info.sender.to_string(),
    }
}

/// One JSON object for an event; `"event"` names its kind.
pub(crate) fn event_json(event: &Event) -> Value {
    match event {
        Event::Message { info, message } => {
            let mut value = info_json("message", info);
            value["text"] = message_text(message).map_or(Value::Null, |text| json!(text));
            value
        }
        Event::UndecryptableMessage { info, error, .. } => {
            let mut value = info_json("undecryptable_message", info);
            value["error"] = json!(error.to_string());
            value
        }
        Event::Receipt(receipt) => receipt_json(receipt),
        Event::Connected => json!({"event": "connected"}),
        Event::Disconnected => json!({"event": "disconnected"}),
        Event::LoggedOut { on_connect, code } => {
            json!({"event": "logged_out", "on_connect": on_connect, "code": code})
        }
        Event::StreamReplaced => json!({"event": "stream_replaced"}),
        Event::ClientOutdated => json!({"event": "client_outdated"}),
        Event::TemporaryBan { reason, expire } => {
            json!({"event": "temporary_ban", "reason": format!("{reason:?}"), "expire_secs": expire.as_secs()})
        }
        Event::LeaseLost => json!({"event": "lease_lost"}),
        Event::KeepaliveTimeout { error_count } => {
            json!({"event": "keepalive_timeout", "error_count": error_count})
        }
        Event::KeepaliveRestored => json!({"event": "keepalive_restored"}),
        Event::StreamError { code, node } => {
            json!({"event": "stream_error", "code": code, "node": node.to_string()})
        }
        Event::JoinedGroup(joined) => json!({
            "event": "joined_group",
            "group": joined.info.jid.to_string(),
            "subject": joined.info.subject,
            "sender": joined.sender.as_ref().map(Jid::to_string),
        }),
        Event::GroupChanged(change) => {
            let mut value = group_change_json(change);
            value["event"] = json!("group_changed");
            value["group"] = json!(change.group.to_string());
            value["sender"] = json!(change.sender.as_ref().map(Jid::to_string));
            value["timestamp"] = json!(change.timestamp);
            value
        }
        other => json!({"event": "other", "debug": format!("{other:?}")}),
    }
}

/// What changed in a group: only the fields that did.
fn group_change_json(change: &GroupChange) -> Value {
    let mut value = json!({});
    let jids = |list: &[Jid]| json!(list.iter().map(Jid::to_string).collect::<Vec<_>>());
    for (key, list) in [
        ("join", &change.join),
        ("leave", &change.leave),
        ("promote", &change.promote),
        ("demote", &change.demote),
    ] {
        if !list.is_empty() {
            value[key] = jids(list);
        }
    }
    if let Some(subject) = &change.subject {
        value["subject"] = json!(subject.subject);
    }
    if let Some(topic) = &change.topic {
        value["description"] = json!(topic.text);
    }
    if let Some(locked) = change.locked {
        value["locked"] = json!(locked);
    }
    if let Some(announce) = change.announce {
        value["announce"] = json!(announce);
    }
    if let Some(timer) = change.ephemeral_timer {
        value["ephemeral_timer"] = json!(timer);
    }
    if let Some(required) = change.join_approval_required {
        value["join_approval"] = json!(required);
    }
    if let Some(link) = &change.invite_link {
        value["invite_link"] = json!(link);
    }
    value
}

fn info_json(kind: &str, info: &MessageInfo) -> Value {
    json!({
        "event": kind,
        "id": info.id,
        "chat": info.chat.to_string(),
        "sender": info.sender.to_string(),
        "sender_alt": info.sender_alt.as_ref().map(Jid::to_string),
        "from_me": info.is_from_me,
        "group": info.is_group,
        "timestamp": info.timestamp,
        "push_name": info.push_name,
    })
}

fn receipt_json(receipt: &Receipt) -> Value {
    json!({
        "event": "receipt",
        "kind": receipt_kind(&receipt.kind),
        "chat": receipt.chat.to_string(),
        "sender": receipt.sender.to_string(),
        "ids": receipt.ids,
        "timestamp": receipt.timestamp,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use whatsapp_client::Jid;

    fn info() -> MessageInfo {
        MessageInfo {
            id: "3EB0ABC".to_owned(),
            chat: Jid::new("15551234567", Jid::DEFAULT_USER_SERVER),
            sender: Jid::with_device("15551234567", Jid::DEFAULT_USER_SERVER, 2),
            sender_alt: None,
            is_from_me: false,
            is_group: false,
            timestamp: 1_700_000_000,
            push_name: Some("Alice".to_owned()),
            edit: None,
            unavailable_request_id: None,
        }
    }

    #[test]
    fn messages_as_text_and_json() {
        let mut extended = Message {
            extended_text_message: Some(Box::default()),
            ..Default::default()
        };
        assert_eq!(message_text(&extended), None);
        if let Some(inner) = extended.extended_text_message.as_mut() {
            inner.text = Some("a link".to_owned());
        }
        assert_eq!(message_text(&extended), Some("a link"));
        let event = Event::Message {
            info: info(),
            message: Box::new(Message {
                conversation: Some("hi there".to_owned()),
                ..Default::default()
            }),
        };
        assert_eq!(
            event_text(&event),
            "message 3EB0ABC from 15551234567:2@s.whatsapp.net (Alice) in 15551234567@s.whatsapp.net: hi there"
        );
        assert_eq!(
            event_json(&event),
            json!({
                "event": "message", "id": "3EB0ABC", "chat": "15551234567@s.whatsapp.net",
                "sender": "15551234567:2@s.whatsapp.net", "sender_alt": null, "from_me": false,
                "group": false, "timestamp": 1_700_000_000, "push_name": "Alice", "text": "hi there",
            })
        );
        let receipt = Event::Receipt(Receipt {
            chat: Jid::new("15551234567", Jid::DEFAULT_USER_SERVER),
            sender: Jid::with_device("15551234567", Jid::DEFAULT_USER_SERVER, 2),
            kind: ReceiptKind::Read,
            ids: vec!["A".to_owned(), "B".to_owned()],
            timestamp: 5,
        });
        assert_eq!(
            event_text(&receipt),
            "receipt read from 15551234567:2@s.whatsapp.net in 15551234567@s.whatsapp.net for A, B"
        );
        assert_eq!(event_json(&receipt)["ids"], json!(["A", "B"]));
        assert_eq!(event_json(&Event::Disconnected), json!({"event": "disconnected"}));
    }

    #[test]
    fn group_changes_as_text_and_json() {
        let change = Event::GroupChanged(Box::new(GroupChange {
            group: Jid::new("120363001", Jid::GROUP_SERVER),
            sender: Some(Jid::new("111", Jid::DEFAULT_USER_SERVER)),
            timestamp: 7,
            join: vec![Jid::new("222", Jid::DEFAULT_USER_SERVER)],
            announce: Some(true),
            ..GroupChange::default()
        }));
        assert_eq!(
            event_json(&change),
            json!({
                "event": "group_changed", "group": "120363001@g.us", "sender": "111@s.whatsapp.net",
                "timestamp": 7, "join": ["222@s.whatsapp.net"], "announce": true,
            })
        );
        assert_eq!(
            event_text(&change),
            r#"group 120363001@g.us changed by 111@s.whatsapp.net: {"announce":true,"join":["222@s.whatsapp.net"]}"#
        );
    }
}
