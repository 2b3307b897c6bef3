//! The JSON form of nodes (feature `serde`), the schema of the project's binary test vectors:
//! `{"tag": string, "attrs": {key: string}, "content": C}` with `C` one of `null`, `"hex:<bytes>"`, `"str:<text>"`,
//! `[node, ...]` or `{"content_repeat": {"byte": "ab", "len": N}}`.
//!
//! Attribute values and `str:` contents that contain `@` are JIDs; a server-only JID is written `@server`. A plain
//! string containing `@` therefore reads back as a JID. Attributes keep their order in both directions.

use std::borrow::Cow;
use std::fmt;

use bytes::Bytes;
use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::ser::{SerializeMap, SerializeStruct, Serializer};
use serde::{Deserialize, Serialize};

use crate::jid::Jid;
use crate::node::{Attrs, Content, Node, Value};

/// Largest `content_repeat` length accepted: the vectors use just over 1 MiB; this keeps a JSON file from asking
/// for unbounded memory.
const MAX_REPEAT_LEN: usize = 64 << 20;

/// The JSON string of a JID: its display form, with `@` before a server-only JID so that it reads back as a JID.
fn jid_string(jid: &Jid) -> String {
    if jid.is_server_only() {
        format!("@{}", jid.server())
    } else {
        jid.to_string()
    }
}

impl Serialize for Jid {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Jid {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Jid, D::Error> {
        let text = Cow::<str>::deserialize(deserializer)?;
        text.parse().map_err(de::Error::custom)
    }
}

impl Serialize for Value {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Value::Str(s) => serializer.serialize_str(s),
            Value::Jid(jid) => serializer.serialize_str(&jid_string(jid)),
        }
    }
}

/// A string value, or a JID when it contains `@`.
fn value_from_str<E: de::Error>(text: &str) -> Result<Value, E> {
    if text.contains('@') {
        text.parse().map(Value::Jid).map_err(E::custom)
    } else {
        Ok(Value::Str(Cow::Owned(text.to_owned())))
    }
}

impl<'de> Deserialize<'de> for Value {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Value, D::Error> {
        let text = Cow::<str>::deserialize(deserializer)?;
        value_from_str(&text)
    }
}

impl Serialize for Attrs {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.len()))?;
        for (key, value) in self.iter() {
            map.serialize_entry(key, value)?;
        }
        map.end()
    }
}

impl<'de> Deserialize<'de> for Attrs {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Attrs, D::Error> {
        struct AttrsVisitor;
        impl<'de> Visitor<'de> for AttrsVisitor {
            type Value = Attrs;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a map of attribute strings")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Attrs, A::Error> {
                let mut attrs = Attrs::new();
                while let Some((key, value)) = map.next_entry::<String, Value>()? {
                    attrs.push(key, value);
                }
                Ok(attrs)
            }
            fn visit_unit<E: de::Error>(self) -> Result<Attrs, E> {
                Ok(Attrs::new())
            }
        }
        deserializer.deserialize_any(AttrsVisitor)
    }
}

fn to_hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(4 + bytes.len() * 2);
    out.push_str("hex:");
    for &b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 0x0f)]));
    }
    out
}

fn from_hex<E: de::Error>(text: &str) -> Result<Vec<u8>, E> {
    let digit = |c: u8| match c {
        b'0'..=b'9' => Ok(c - b'0'),
        b'a'..=b'f' => Ok(c - b'a' + 10),
        b'A'..=b'F' => Ok(c - b'A' + 10),
        _ => Err(E::custom(format!("invalid hex digit {:?}", char::from(c)))),
    };
    let pairs = text.as_bytes().chunks_exact(2);
    if !pairs.remainder().is_empty() {
        return Err(E::custom("odd number of hex digits"));
    }
    pairs
        .map(|pair| Ok(digit(pair[0])? << 4 | digit(pair[1])?))
        .collect()
}

impl Serialize for Content {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Content::None => serializer.serialize_unit(),
            Content::Bytes(bytes) => serializer.serialize_str(&to_hex(bytes)),
            Content::Str(s) => serializer.serialize_str(&format!("str:{s}")),
            Content::Jid(jid) => serializer.serialize_str(&format!("str:{}", jid_string(jid))),
            Content::Nodes(nodes) => nodes.serialize(serializer),
        }
    }
}

#[derive(Deserialize)]
struct Repeat {
    content_repeat: RepeatSpec,
}

#[derive(Deserialize)]
struct RepeatSpec {
    byte: String,
    len: usize,
}

impl<'de> Deserialize<'de> for Content {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Content, D::Error> {
        struct ContentVisitor;
        impl<'de> Visitor<'de> for ContentVisitor {
            type Value = Content;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("null, \"hex:...\", \"str:...\", a list of nodes or {\"content_repeat\": ...}")
            }
            fn visit_unit<E: de::Error>(self) -> Result<Content, E> {
                Ok(Content::None)
            }
            fn visit_none<E: de::Error>(self) -> Result<Content, E> {
                Ok(Content::None)
            }
            fn visit_str<E: de::Error>(self, text: &str) -> Result<Content, E> {
                if let Some(hex) = text.strip_prefix("hex:") {
                    Ok(Content::Bytes(Bytes::from(from_hex::<E>(hex)?)))
                } else if let Some(s) = text.strip_prefix("str:") {
                    Ok(match value_from_str(s)? {
                        Value::Jid(jid) => Content::Jid(jid),
                        Value::Str(s) => Content::Str(s),
                    })
                } else {
                    Err(E::custom(format!(
                        "content string without hex:/str: prefix: {text:?}"
                    )))
                }
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Content, A::Error> {
                let mut nodes = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(1024));
                while let Some(node) = seq.next_element::<Node>()? {
                    nodes.push(node);
                }
                Ok(Content::Nodes(nodes))
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Content, A::Error> {
                let repeat = Repeat::deserialize(de::value::MapAccessDeserializer::new(map))?;
                let byte = from_hex::<A::Error>(&repeat.content_repeat.byte)?;
                let [byte] = byte.as_slice() else {
                    return Err(de::Error::custom("content_repeat.byte must be one byte"));
                };
                if repeat.content_repeat.len > MAX_REPEAT_LEN {
                    return Err(de::Error::custom("content_repeat.len too large"));
                }
                Ok(Content::Bytes(Bytes::from(vec![
                    *byte;
                    repeat.content_repeat.len
                ])))
            }
        }
        deserializer.deserialize_any(ContentVisitor)
    }
}

impl Serialize for Node {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut node = serializer.serialize_struct("Node", 3)?;
        node.serialize_field("tag", &self.tag)?;
        node.serialize_field("attrs", &self.attrs)?;
        node.serialize_field("content", &self.content)?;
        node.end()
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NodeRepr {
    tag: String,
    #[serde(default)]
    attrs: Attrs,
    #[serde(default)]
    content: Content,
}

impl<'de> Deserialize<'de> for Node {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Node, D::Error> {
        let repr = NodeRepr::deserialize(deserializer)?;
        Ok(Node {
            tag: Cow::Owned(repr.tag),
            attrs: repr.attrs,
            content: repr.content,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_round_trip_keeps_order_and_jids() {
        let json = r#"{"tag":"iq","attrs":{"type":"get","to":"@s.whatsapp.net","id":"1"},"content":[{"tag":"ping","attrs":{},"content":null},{"tag":"enc","attrs":{"jid":"1:2@lid"},"content":"hex:00ff"},{"tag":"t","attrs":{},"content":"str:abc"}]}"#;
        let node: Node = serde_json::from_str(json).unwrap();
        assert_eq!(
            node.attrs.iter().map(|(k, _)| k).collect::<Vec<_>>(),
            ["type", "to", "id"]
        );
        assert!(node.jid_attr("to").unwrap().is_server_only());
        assert_eq!(serde_json::to_string(&node).unwrap(), json);
        let repeat: Node = serde_json::from_str(
            r#"{"tag":"m","attrs":{},"content":{"content_repeat":{"byte":"ab","len":3}}}"#,
        )
        .unwrap();
        assert_eq!(repeat.content_bytes().map(|b| b.to_vec()), Some(vec![0xab; 3]));
    }
}
