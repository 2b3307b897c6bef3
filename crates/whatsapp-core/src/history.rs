//! History sync blobs read one item at a time (protocol-facts §3.9).
//!
//! A history sync blob is a zlib-compressed `HistorySync` protobuf that can hold years of chats. Decoding it whole
//! would hold every conversation in memory at once; [`HistoryReader`] instead walks the top-level fields of the
//! inflated stream and decodes one conversation (or push name, or LID mapping...) at a time, so memory stays
//! bounded by the largest single item ([`MAX_ITEM_LEN`]).

use std::io::Read;

use whatsapp_proto::ProtoMessage;
use whatsapp_proto::history_sync::{Conversation, PhoneNumberToLidMapping, Pushname, WebMessageInfo};

/// The largest single top-level item (one conversation with its messages) a reader accepts.
pub const MAX_ITEM_LEN: usize = 64 * 1024 * 1024;

/// One top-level piece of a `HistorySync`, in stream order.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum HistoryItem {
    /// The kind of sync (`HistorySyncType`).
    SyncType(i32),
    /// One chat with its messages.
    Conversation(Box<Conversation>),
    /// A status message.
    Status(Box<WebMessageInfo>),
    /// The position of this blob among the sync's chunks.
    ChunkOrder(u32),
    /// How far the whole sync is, in percent.
    Progress(u32),
    /// A contact's push name.
    Pushname(Pushname),
    /// A phone number's LID.
    LidMapping(PhoneNumberToLidMapping),
    /// The salt `cstoken`s are derived from (field 19, `nctSalt`).
    NctSalt(crate::privacy::NctSalt),
    /// A field this reader does not decode, skipped.
    Skipped {
        /// Its field number.
        field: u32,
    },
}

/// Why a history blob could not be read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HistoryError {
    /// Reading or inflating failed.
    #[error("reading the history blob: {0}")]
    Io(#[from] std::io::Error),
    /// The stream ended inside an item.
    #[error("history blob ends inside an item")]
    Truncated,
    /// A varint or field key is malformed.
    #[error("history blob has a malformed field header")]
    BadHeader,
    /// An item is larger than [`MAX_ITEM_LEN`].
    #[error("history item of {0} bytes is larger than the limit")]
    TooLarge(u64),
    /// An item does not decode.
    #[error("history item (field {field}) does not decode: {error}")]
    Item {
        /// The field number.
        field: u32,
        /// The protobuf error.
        error: whatsapp_proto::DecodeError,
    },
}

/// Reads the items of an (already inflated) `HistorySync` stream.
#[derive(Debug)]
pub struct HistoryReader<R> {
    input: R,
    buffer: Vec<u8>,
    done: bool,
}

/// A reader over a compressed blob, as downloaded or inlined: zlib is inflated on the fly.
pub fn inflate<R: Read>(compressed: R) -> HistoryReader<flate2::read::ZlibDecoder<R>> {
    HistoryReader::new(flate2::read::ZlibDecoder::new(compressed))
}

impl<R: Read> HistoryReader<R> {
    /// A reader over an inflated `HistorySync` stream.
    pub fn new(input: R) -> HistoryReader<R> {
        HistoryReader {
            input,
            buffer: Vec::new(),
            done: false,
        }
    }

    /// Reads one byte; `None` at a clean end of stream.
    fn byte(&mut self) -> Result<Option<u8>, HistoryError> {
        let mut byte = [0u8; 1];
        loop {
            match self.input.read(&mut byte) {
                Ok(0) => return Ok(None),
                Ok(_) => return Ok(Some(byte[0])),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// A varint; `None` at a clean end of stream before its first byte.
    fn varint(&mut self) -> Result<Option<u64>, HistoryError> {
        let mut value = 0u64;
        for shift in (0..70).step_by(7) {
            let Some(byte) = self.byte()? else {
                return if shift == 0 {
                    Ok(None)
                } else {
                    Err(HistoryError::Truncated)
                };
            };
            if shift == 63 && byte > 1 {
                return Err(HistoryError::BadHeader);
            }
            value |= u64::from(byte & 0x7F) << shift;
            if byte & 0x80 == 0 {
                return Ok(Some(value));
            }
        }
        Err(HistoryError::BadHeader)
    }

    fn skip(&mut self, len: u64) -> Result<(), HistoryError> {
        let copied = std::io::copy(&mut (&mut self.input).take(len), &mut std::io::sink())?;
        if copied < len {
            return Err(HistoryError::Truncated);
        }
        Ok(())
    }

    fn read_item(&mut self) -> Result<Option<HistoryItem>, HistoryError> {
        let Some(key) = self.varint()? else {
            return Ok(None);
        };
        let field = u32::try_from(key >> 3).map_err(|_| HistoryError::BadHeader)?;
        if field == 0 {
            return Err(HistoryError::BadHeader);
        }
        let scalar = |value: u64| u32::try_from(value).map_err(|_| HistoryError::BadHeader);
        match key & 7 {
            0 => {
                let value = self.varint()?.ok_or(HistoryError::Truncated)?;
                Ok(Some(match field {
                    1 => HistoryItem::SyncType(value as i32),
                    5 => HistoryItem::ChunkOrder(scalar(value)?),
                    6 => HistoryItem::Progress(scalar(value)?),
                    _ => HistoryItem::Skipped { field },
                }))
            }
            1 => self.skip(8).map(|()| Some(HistoryItem::Skipped { field })),
            5 => self.skip(4).map(|()| Some(HistoryItem::Skipped { field })),
            2 => {
                let len = self.varint()?.ok_or(HistoryError::Truncated)?;
                if !matches!(field, 2 | 3 | 7 | 15 | 19) {
                    self.skip(len)?;
                    return Ok(Some(HistoryItem::Skipped { field }));
                }
                let len = usize::try_from(len)
                    .ok()
                    .filter(|len| *len <= MAX_ITEM_LEN)
                    .ok_or(HistoryError::TooLarge(len))?;
                // The buffer grows with what actually arrives, never ahead of it from the length field alone.
                self.buffer.clear();
                let read = (&mut self.input).take(len as u64).read_to_end(&mut self.buffer)?;
                if read < len {
                    return Err(HistoryError::Truncated);
                }
                let bytes = self.buffer.as_slice();
                let item = |error| HistoryError::Item { field, error };
                Ok(Some(match field {
                    2 => HistoryItem::Conversation(Box::new(Conversation::decode(bytes).map_err(item)?)),
                    3 => HistoryItem::Status(Box::new(WebMessageInfo::decode(bytes).map_err(item)?)),
                    7 => HistoryItem::Pushname(Pushname::decode(bytes).map_err(item)?),
                    19 => HistoryItem::NctSalt(crate::privacy::NctSalt(bytes.to_vec())),
                    _ => HistoryItem::LidMapping(PhoneNumberToLidMapping::decode(bytes).map_err(item)?),
                }))
            }
            _ => Err(HistoryError::BadHeader),
        }
    }
}

impl<R: Read> Iterator for HistoryReader<R> {
    type Item = Result<HistoryItem, HistoryError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        match self.read_item() {
            Ok(Some(item)) => Some(Ok(item)),
            Ok(None) => {
                self.done = true;
                None
            }
            Err(error) => {
                self.done = true;
                Some(Err(error))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use whatsapp_proto::history_sync::{HistorySync, HistorySyncMsg, history_sync::HistorySyncType};

    fn sample(conversations: usize, messages_each: usize) -> HistorySync {
        HistorySync {
            sync_type: HistorySyncType::InitialBootstrap as i32,
            chunk_order: Some(1),
            progress: Some(42),
            conversations: (0..conversations)
                .map(|c| Conversation {
                    id: format!("{c}@s.whatsapp.net"),
                    messages: (0..messages_each)
                        .map(|m| HistorySyncMsg {
                            message: Some(WebMessageInfo {
                                message: Some(whatsapp_proto::e2e::Message {
                                    conversation: Some(format!("message {m} in chat {c}")),
                                    ..Default::default()
                                }),
                                ..Default::default()
                            }),
                            msg_order_id: Some(m as u64),
                        })
                        .collect(),
                    ..Default::default()
                })
                .collect(),
            pushnames: vec![Pushname {
                id: Some("1@s.whatsapp.net".to_owned()),
                pushname: Some("Alice".to_owned()),
            }],
            phone_number_to_lid_mappings: vec![PhoneNumberToLidMapping {
                pn_jid: Some("1@s.whatsapp.net".to_owned()),
                lid_jid: Some("9@lid".to_owned()),
            }],
            thread_id_user_secret: Some(vec![1, 2, 3]),
            nct_salt: Some(vec![7; 32]),
            ..Default::default()
        }
    }

    fn compress(bytes: &[u8]) -> Vec<u8> {
        let mut encoder = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
        encoder.write_all(bytes).unwrap();
        encoder.finish().unwrap()
    }

    #[test]
    fn ten_thousand_messages_stream_conversation_by_conversation() {
        let history = sample(100, 100);
        let blob = compress(&history.encode_to_vec());
        let mut conversations = 0;
        let mut messages = 0;
        let mut largest_buffer = 0;
        let mut reader = inflate(blob.as_slice());
        let mut others = Vec::new();
        while let Some(item) = reader.next() {
            largest_buffer = largest_buffer.max(reader.buffer.capacity());
            match item.unwrap() {
                HistoryItem::Conversation(conversation) => {
                    assert_eq!(conversation.id, format!("{conversations}@s.whatsapp.net"));
                    messages += conversation.messages.len();
                    conversations += 1;
                }
                other => others.push(other),
            }
        }
        assert_eq!((conversations, messages), (100, 10_000));
        assert!(others.contains(&HistoryItem::SyncType(HistorySyncType::InitialBootstrap as i32)));
        assert!(others.contains(&HistoryItem::Progress(42)));
        assert!(others.contains(&HistoryItem::ChunkOrder(1)));
        assert!(others.contains(&HistoryItem::Skipped { field: 9 }));
        assert!(others.contains(&HistoryItem::NctSalt(crate::privacy::NctSalt(vec![7; 32]))));
        assert!(
            others
                .iter()
                .any(|i| matches!(i, HistoryItem::Pushname(p) if p.pushname.as_deref() == Some("Alice")))
        );
        assert!(
            others
                .iter()
                .any(|i| matches!(i, HistoryItem::LidMapping(m) if m.lid_jid.as_deref() == Some("9@lid")))
        );
        // Memory follows the largest conversation, not the blob.
        let one_conversation = history.conversations[0].encoded_len();
        let whole = history.encoded_len();
        assert!(
            largest_buffer < 4 * one_conversation,
            "{largest_buffer} vs {one_conversation}"
        );
        assert!(whole > 50 * largest_buffer, "{whole} vs {largest_buffer}");
    }

    #[test]
    fn broken_streams_are_errors() {
        let bytes = sample(3, 3).encode_to_vec();
        // Cut inside an item.
        let cut = HistoryReader::new(&bytes[..bytes.len() - 3]).collect::<Vec<_>>();
        assert!(
            matches!(cut.last(), Some(Err(HistoryError::Truncated))),
            "{cut:?}"
        );
        // A length far beyond the limit, with nothing behind it, is refused before reading.
        let huge = [0x12, 0xFF, 0xFF, 0xFF, 0xFF, 0x0F];
        let items = HistoryReader::new(&huge[..]).collect::<Vec<_>>();
        assert!(
            matches!(items.as_slice(), [Err(HistoryError::TooLarge(_))]),
            "{items:?}"
        );
        // Field 0, and a group wire type.
        assert!(matches!(
            HistoryReader::new(&[0x00, 0x01][..]).next(),
            Some(Err(HistoryError::BadHeader))
        ));
        assert!(matches!(
            HistoryReader::new(&[0x0B][..]).next(),
            Some(Err(HistoryError::BadHeader))
        ));
        // A conversation that is not one.
        let bad = [0x12, 0x02, 0xFF, 0xFF];
        assert!(matches!(
            HistoryReader::new(&bad[..]).next(),
            Some(Err(HistoryError::Item { field: 2, .. }))
        ));
        // Not zlib at all.
        assert!(matches!(
            inflate(&b"plain"[..]).next(),
            Some(Err(HistoryError::Io(_)))
        ));
        // An empty stream has no items.
        assert!(HistoryReader::new(&[][..]).next().is_none());
    }
}
