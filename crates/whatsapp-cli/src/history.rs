//! `wa history export`: writes the messages of the history syncs the phone sends as JSON lines.
//!
//! The phone sends a linked device its chat history in chunks, soon after pairing (and the server keeps them for a
//! device that is offline). This command connects, turns every conversation of every chunk into one JSON object per
//! message, and stops when the phone says the sync is complete (a chunk at 100 %), or when no chunk has come for
//! `--idle` seconds, or on Ctrl-C. A progress bar on stderr counts conversations and messages.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};
use serde_json::{Value, json};
use whatsapp_client::Event;
use whatsapp_client::proto::history_sync::Conversation;

use crate::account;
use crate::cli::{Global, HistoryFormat};
use crate::failure::{client_error, fix};
use crate::listen::message_text;

/// What one export wrote.
#[derive(Debug, Default, PartialEq, Eq)]
struct Written {
    conversations: usize,
    messages: usize,
}

/// Exports the history the phone sends to `output` (`-`: stdout).
pub(crate) async fn export(
    global: &Global,
    format: HistoryFormat,
    output: &Path,
    idle: Duration,
) -> anyhow::Result<()> {
    let HistoryFormat::Jsonl = format;
    let mut sink: Box<dyn Write> = if output == Path::new("-") {
        Box::new(std::io::stdout().lock())
    } else {
        let file = File::create(output).map_err(|error| {
            fix(format!(
                "cannot create {}: {error}; choose another --output",
                output.display()
            ))
        })?;
        Box::new(file)
    };
    let mut sink = BufWriter::new(&mut sink);
    let (client, mut events, jid) = account::linked_client(global, true).await?;
    if let Err(error) = client.connect().await {
        client.disconnect().await;
        return Err(client_error(error, "connecting"));
    }
    let bar = ProgressBar::new_spinner().with_style(
        ProgressStyle::with_template("{spinner} {msg} [{elapsed}]")
            .unwrap_or_else(|_| ProgressStyle::default_spinner()),
    );
    bar.set_message(format!("waiting for the history of {jid}"));
    bar.enable_steady_tick(Duration::from_millis(200));
    let mut written = Written::default();
    let mut chunks = Chunks::default();
    let result = account::interruptible(async {
        let mut logged_in = false;
        loop {
            let event = match tokio::time::timeout(
                if logged_in { idle } else { account::LOGIN_TIMEOUT },
                events.recv(),
            )
            .await
            {
                Ok(Some(event)) => event,
                Ok(None) => anyhow::bail!("the client stopped"),
                Err(_) if logged_in => return Ok(false),
                Err(_) => anyhow::bail!(
                    "not logged in within {} s; check the network",
                    account::LOGIN_TIMEOUT.as_secs()
                ),
            };
            match event {
                Event::Connected => logged_in = true,
                Event::Qr { .. } => return Err(fix("this device is not linked; run `wa login` first")),
                Event::HistoryConversation(conversation) => {
                    written.messages += write_conversation(&mut sink, &conversation)?;
                    written.conversations += 1;
                    bar.set_message(format!(
                        "{} conversations, {} messages",
                        written.conversations, written.messages
                    ));
                }
                Event::HistorySynced {
                    sync_type,
                    chunk_order,
                    progress,
                    ..
                } => {
                    sink.flush()?;
                    if let Some(progress) = progress {
                        bar.set_message(format!(
                            "{} conversations, {} messages, sync at {progress} %",
                            written.conversations, written.messages
                        ));
                    }
                    if chunks.read(sync_type, chunk_order, progress) {
                        return Ok(true);
                    }
                }
                Event::HistorySyncError { error } => {
                    bar.println(format!("a history chunk was lost: {error}"))
                }
                other => {
                    if let Some(error) = account::stopping_error(&other) {
                        return Err(error);
                    }
                }
            }
        }
    })
    .await;
    client.disconnect().await;
    bar.finish_and_clear();
    sink.flush()?;
    let complete = result?;
    eprintln!(
        "Exported {} messages in {} conversations{}",
        written.messages,
        written.conversations,
        if complete {
            ""
        } else {
            " (the phone sent nothing more; run again later for the rest)"
        }
    );
    Ok(())
}

/// The history chunks read so far, to tell when a sync is complete: the phone numbers the chunks of one sync
/// (1, 2, ...) and says 100 % on the last one, but the client reads chunks as they arrive, so the last may be read
/// before the others.
#[derive(Debug, Default)]
struct Chunks {
    /// The chunk orders read, by sync type.
    read: std::collections::BTreeMap<i32, std::collections::BTreeSet<u32>>,
    /// Per sync type, the order of the chunk that said 100 %.
    last: std::collections::BTreeMap<i32, u32>,
}

impl Chunks {
    /// Records a chunk; returns whether its sync is now complete (the 100 % chunk and every chunk before it read).
    fn read(&mut self, sync_type: i32, order: u32, progress: Option<u32>) -> bool {
        self.read.entry(sync_type).or_default().insert(order);
        if progress == Some(100) {
            self.last.insert(sync_type, order);
        }
        let Some(&last) = self.last.get(&sync_type) else {
            return false;
        };
        let read = &self.read[&sync_type];
        (1..=last).all(|order| read.contains(&order))
    }
}

/// Writes one line per message of `conversation`; returns how many.
fn write_conversation(sink: &mut impl Write, conversation: &Conversation) -> anyhow::Result<usize> {
    let mut count = 0;
    for entry in &conversation.messages {
        let Some(line) = entry
            .message
            .as_ref()
            .map(|info| message_line(conversation, info))
        else {
            continue;
        };
        serde_json::to_writer(&mut *sink, &line)?;
        sink.write_all(b"\n")?;
        count += 1;
    }
    Ok(count)
}

/// The JSON object of one history message: where and when, who, and its text when it has one.
fn message_line(
    conversation: &Conversation,
    info: &whatsapp_client::proto::history_sync::WebMessageInfo,
) -> Value {
    let key = &info.key;
    let from_me = key.from_me.unwrap_or(false);
    let sender = if from_me {
        None
    } else {
        info.participant
            .as_deref()
            .or(key.participant.as_deref())
            .or(key.remote_jid.as_deref())
    };
    let message = info.message.as_ref();
    json!({
        "chat": conversation.id,
        "chat_name": conversation.name,
        "id": key.id,
        "from_me": from_me,
        "sender": sender,
        "push_name": info.push_name,
        "timestamp": info.message_timestamp,
        "text": message.and_then(message_text),
        "kind": message.map_or("none", kind),
    })
}

/// The kind of content a message carries, for the `kind` field.
fn kind(message: &whatsapp_client::Message) -> &'static str {
    if message.conversation.is_some() || message.extended_text_message.is_some() {
        "text"
    } else if message.image_message.is_some() {
        "image"
    } else if message.video_message.is_some() {
        "video"
    } else if message.audio_message.is_some() {
        "audio"
    } else if message.document_message.is_some() {
        "document"
    } else if message.sticker_message.is_some() {
        "sticker"
    } else if message.location_message.is_some() {
        "location"
    } else if message.contact_message.is_some() {
        "contact"
    } else if message.reaction_message.is_some() {
        "reaction"
    } else if message.protocol_message.is_some() {
        "protocol"
    } else {
        "other"
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use whatsapp_client::proto::e2e::MessageKey;
    use whatsapp_client::proto::history_sync::{HistorySyncMsg, WebMessageInfo};

    #[test]
    fn a_sync_is_complete_when_its_last_chunk_and_every_earlier_one_were_read() {
        let mut chunks = Chunks::default();
        assert!(!chunks.read(0, 3, Some(100)), "chunks 1 and 2 are missing");
        assert!(!chunks.read(2, 1, Some(40)), "another sync type");
        assert!(!chunks.read(0, 1, Some(30)));
        assert!(chunks.read(0, 2, Some(60)));
        // A sync in one chunk.
        assert!(Chunks::default().read(3, 1, Some(100)));
    }

    #[test]
    fn messages_become_one_line_each_with_sender_and_text() {
        let conversation = Conversation {
            id: "120363000000000001@g.us".to_owned(),
            name: Some("Climbing".to_owned()),
            messages: vec![
                HistorySyncMsg {
                    message: Some(WebMessageInfo {
                        key: MessageKey {
                            remote_jid: Some("120363000000000001@g.us".to_owned()),
                            from_me: Some(false),
                            id: Some("3EB0A".to_owned()),
                            participant: Some("15550002222@s.whatsapp.net".to_owned()),
                        },
                        message: Some(whatsapp_client::Message {
                            conversation: Some("Saturday?".to_owned()),
                            ..Default::default()
                        }),
                        message_timestamp: Some(1_700_000_000),
                        push_name: Some("Bea".to_owned()),
                        ..Default::default()
                    }),
                    msg_order_id: Some(1),
                },
                HistorySyncMsg {
                    message: Some(WebMessageInfo {
                        key: MessageKey {
                            remote_jid: Some("120363000000000001@g.us".to_owned()),
                            from_me: Some(true),
                            id: Some("3EB0B".to_owned()),
                            participant: None,
                        },
                        ..Default::default()
                    }),
                    msg_order_id: Some(2),
                },
                HistorySyncMsg {
                    message: None,
                    msg_order_id: Some(3),
                },
            ],
            ..Default::default()
        };
        let mut out = Vec::new();
        assert_eq!(write_conversation(&mut out, &conversation).unwrap(), 2);
        let lines: Vec<Value> = out
            .split(|b| *b == b'\n')
            .filter(|line| !line.is_empty())
            .map(|line| serde_json::from_slice(line).unwrap())
            .collect();
        assert_eq!(
            lines[0],
            json!({
                "chat": "120363000000000001@g.us", "chat_name": "Climbing", "id": "3EB0A", "from_me": false,
                "sender": "15550002222@s.whatsapp.net", "push_name": "Bea", "timestamp": 1_700_000_000u64,
                "text": "Saturday?", "kind": "text",
            })
        );
        assert_eq!(lines[1]["from_me"], true);
        assert_eq!(lines[1]["sender"], Value::Null);
        assert_eq!(lines[1]["kind"], "none");
    }
}
