//! The owned node tree: [`Node`], its [`Attrs`], attribute [`Value`]s and [`Content`], builders, typed attribute
//! accessors and the XML-like debug `Display`.

use std::borrow::Cow;
use std::fmt;

use bytes::Bytes;

use crate::jid::Jid;

/// One stanza or element: a tag, attributes in insertion order, and content.
///
/// Build with [`Node::new`] and the chaining methods:
/// `Node::new("iq").attr("type", "get").attr("xmlns", "w:p").children([Node::new("ping")])`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Node {
    /// The tag (`iq`, `message`, `enc`...).
    pub tag: Cow<'static, str>,
    /// The attributes, written in this order.
    pub attrs: Attrs,
    /// The content.
    pub content: Content,
}

/// An attribute value: a string or a JID (the wire keeps them apart).
///
/// Numbers and booleans become decimal strings and `true`/`false` through the `From` impls.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Value {
    /// A string (a token, a packed number or hex string, or raw UTF-8 on the wire).
    Str(Cow<'static, str>),
    /// A JID.
    Jid(Jid),
}

/// What a node holds after its tag and attributes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Content {
    /// Nothing.
    #[default]
    None,
    /// Raw bytes (BINARY_8/20/32 on the wire); decoding shares the input buffer instead of copying.
    Bytes(Bytes),
    /// Child nodes.
    Nodes(Vec<Node>),
    /// A string written with the string rules (token, packed, or raw bytes).
    ///
    /// A raw string comes back from the wire as [`Content::Bytes`]: only tokens and packed strings decode as strings.
    Str(Cow<'static, str>),
    /// A JID.
    Jid(Jid),
}

/// The attributes of a node, in insertion order (the order they are encoded in).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Attrs(Vec<(Cow<'static, str>, Value)>);

impl Attrs {
    /// No attributes.
    pub fn new() -> Attrs {
        Attrs(Vec::new())
    }

    /// Room for `capacity` attributes.
    pub fn with_capacity(capacity: usize) -> Attrs {
        Attrs(Vec::with_capacity(capacity))
    }

    /// The value of `key`.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.0.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    /// Sets `key`: replaces the value in place if present, appends otherwise.
    pub fn insert(&mut self, key: impl Into<Cow<'static, str>>, value: impl Into<Value>) {
        let key = key.into();
        let value = value.into();
        match self.0.iter_mut().find(|(k, _)| *k == key) {
            Some(slot) => slot.1 = value,
            None => self.0.push((key, value)),
        }
    }

    /// Appends without checking for an existing key (the decoder's path; the wire allows repeats).
    pub fn push(&mut self, key: impl Into<Cow<'static, str>>, value: impl Into<Value>) {
        self.0.push((key.into(), value.into()));
    }

    /// Removes `key` and returns its value.
    pub fn remove(&mut self, key: &str) -> Option<Value> {
        let index = self.0.iter().position(|(k, _)| k == key)?;
        Some(self.0.remove(index).1)
    }

    /// The number of attributes.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there are no attributes.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The attributes in order.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = (&str, &Value)> {
        self.0.iter().map(|(k, v)| (k.as_ref(), v))
    }
}

impl<K: Into<Cow<'static, str>>, V: Into<Value>> FromIterator<(K, V)> for Attrs {
    fn from_iter<I: IntoIterator<Item = (K, V)>>(iter: I) -> Attrs {
        Attrs(iter.into_iter().map(|(k, v)| (k.into(), v.into())).collect())
    }
}

impl Value {
    /// The string, if this is a string value.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Str(s) => Some(s),
            Value::Jid(_) => None,
        }
    }

    /// The JID, if this is a JID value.
    pub fn as_jid(&self) -> Option<&Jid> {
        match self {
            Value::Jid(jid) => Some(jid),
            Value::Str(_) => None,
        }
    }

    /// Whether this is the empty string (such attributes are not written).
    pub fn is_empty_str(&self) -> bool {
        matches!(self, Value::Str(s) if s.is_empty())
    }
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Str(s) => f.write_str(s),
            Value::Jid(jid) => fmt::Display::fmt(jid, f),
        }
    }
}

impl From<&'static str> for Value {
    fn from(value: &'static str) -> Value {
        Value::Str(Cow::Borrowed(value))
    }
}

impl From<String> for Value {
    fn from(value: String) -> Value {
        Value::Str(Cow::Owned(value))
    }
}

impl From<Cow<'static, str>> for Value {
    fn from(value: Cow<'static, str>) -> Value {
        Value::Str(value)
    }
}

impl From<Jid> for Value {
    fn from(value: Jid) -> Value {
        Value::Jid(value)
    }
}

impl From<&Jid> for Value {
    fn from(value: &Jid) -> Value {
        Value::Jid(value.clone())
    }
}

impl From<bool> for Value {
    fn from(value: bool) -> Value {
        Value::Str(Cow::Borrowed(if value { "true" } else { "false" }))
    }
}

macro_rules! value_from_integer {
    ($($t:ty),*) => {$(
        impl From<$t> for Value {
            fn from(value: $t) -> Value {
                Value::Str(Cow::Owned(value.to_string()))
            }
        }
    )*};
}
value_from_integer!(u8, u16, u32, u64, usize, i8, i16, i32, i64, isize);

/// Why a typed attribute read failed, naming the node and attribute (like whatsmeow's `AttrUtility`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AttrError {
    /// The attribute is absent.
    #[error("<{tag}> has no attribute {key:?}")]
    Missing {
        /// The node's tag.
        tag: String,
        /// The attribute.
        key: String,
    },
    /// The attribute is present but its value is not of the expected kind.
    #[error("<{tag}> attribute {key:?} = {value:?} is not {expected}")]
    Invalid {
        /// The node's tag.
        tag: String,
        /// The attribute.
        key: String,
        /// The value found, as a string.
        value: String,
        /// What was expected ("a JID", "an unsigned integer"...).
        expected: &'static str,
    },
}

impl Node {
    /// A node with `tag`, no attributes and no content.
    pub fn new(tag: impl Into<Cow<'static, str>>) -> Node {
        Node {
            tag: tag.into(),
            attrs: Attrs::new(),
            content: Content::None,
        }
    }

    /// Sets attribute `key` (replacing an existing value) and returns the node.
    pub fn attr(mut self, key: impl Into<Cow<'static, str>>, value: impl Into<Value>) -> Node {
        self.attrs.insert(key, value);
        self
    }

    /// Replaces the content with child nodes and returns the node.
    pub fn children(mut self, children: impl IntoIterator<Item = Node>) -> Node {
        self.content = Content::Nodes(children.into_iter().collect());
        self
    }

    /// Replaces the content with bytes and returns the node.
    pub fn bytes(mut self, bytes: impl Into<Bytes>) -> Node {
        self.content = Content::Bytes(bytes.into());
        self
    }

    /// Replaces the content with a string (written with the string rules) and returns the node.
    pub fn text(mut self, text: impl Into<Cow<'static, str>>) -> Node {
        self.content = Content::Str(text.into());
        self
    }

    /// Replaces the content and returns the node.
    pub fn content(mut self, content: Content) -> Node {
        self.content = content;
        self
    }

    /// The child nodes; empty unless the content is [`Content::Nodes`].
    pub fn child_nodes(&self) -> &[Node] {
        match &self.content {
            Content::Nodes(nodes) => nodes,
            _ => &[],
        }
    }

    /// The first child with `tag`.
    pub fn child(&self, tag: &str) -> Option<&Node> {
        self.child_nodes().iter().find(|n| n.tag == tag)
    }

    /// The children with `tag`.
    pub fn children_by_tag<'n>(&'n self, tag: &'n str) -> impl Iterator<Item = &'n Node> + 'n {
        self.child_nodes().iter().filter(move |n| n.tag == tag)
    }

    /// The byte content, if the content is bytes.
    pub fn content_bytes(&self) -> Option<&Bytes> {
        match &self.content {
            Content::Bytes(bytes) => Some(bytes),
            _ => None,
        }
    }

    /// The value of attribute `key`.
    pub fn attr_value(&self, key: &str) -> Option<&Value> {
        self.attrs.get(key)
    }

    fn missing(&self, key: &str) -> AttrError {
        AttrError::Missing {
            tag: self.tag.to_string(),
            key: key.to_owned(),
        }
    }

    fn invalid(&self, key: &str, value: &Value, expected: &'static str) -> AttrError {
        AttrError::Invalid {
            tag: self.tag.to_string(),
            key: key.to_owned(),
            value: value.to_string(),
            expected,
        }
    }

    /// Attribute `key` as a string; a JID value is an error.
    pub fn str_attr(&self, key: &str) -> Result<&str, AttrError> {
        match self.attrs.get(key) {
            Some(Value::Str(s)) => Ok(s),
            Some(other) => Err(self.invalid(key, other, "a string")),
            None => Err(self.missing(key)),
        }
    }

    /// Attribute `key` as a string, if present and a string.
    pub fn optional_str_attr(&self, key: &str) -> Option<&str> {
        self.attrs.get(key).and_then(Value::as_str)
    }

    /// Attribute `key` as a JID; a string value is parsed.
    pub fn jid_attr(&self, key: &str) -> Result<Jid, AttrError> {
        self.optional_jid_attr(key)?.ok_or_else(|| self.missing(key))
    }

    /// Attribute `key` as a JID if present; a string value is parsed.
    pub fn optional_jid_attr(&self, key: &str) -> Result<Option<Jid>, AttrError> {
        match self.attrs.get(key) {
            Some(Value::Jid(jid)) => Ok(Some(jid.clone())),
            Some(value @ Value::Str(s)) => s.parse().map(Some).map_err(|_| self.invalid(key, value, "a JID")),
            None => Ok(None),
        }
    }

    fn parsed_attr<T: std::str::FromStr>(
        &self,
        key: &str,
        expected: &'static str,
    ) -> Result<Option<T>, AttrError> {
        match self.attrs.get(key) {
            Some(value @ Value::Str(s)) => s
                .parse()
                .map(Some)
                .map_err(|_| self.invalid(key, value, expected)),
            Some(value) => Err(self.invalid(key, value, expected)),
            None => Ok(None),
        }
    }

    /// Attribute `key` as an unsigned decimal integer.
    pub fn u64_attr(&self, key: &str) -> Result<u64, AttrError> {
        self.optional_u64_attr(key)?.ok_or_else(|| self.missing(key))
    }

    /// Attribute `key` as an unsigned decimal integer, if present.
    pub fn optional_u64_attr(&self, key: &str) -> Result<Option<u64>, AttrError> {
        self.parsed_attr(key, "an unsigned integer")
    }

    /// Attribute `key` as a signed decimal integer.
    pub fn i64_attr(&self, key: &str) -> Result<i64, AttrError> {
        self.optional_i64_attr(key)?.ok_or_else(|| self.missing(key))
    }

    /// Attribute `key` as a signed decimal integer, if present.
    pub fn optional_i64_attr(&self, key: &str) -> Result<Option<i64>, AttrError> {
        self.parsed_attr(key, "an integer")
    }

    /// Attribute `key` as `true` or `false`.
    pub fn bool_attr(&self, key: &str) -> Result<bool, AttrError> {
        self.optional_bool_attr(key)?.ok_or_else(|| self.missing(key))
    }

    /// Attribute `key` as `true` or `false`, if present.
    pub fn optional_bool_attr(&self, key: &str) -> Result<Option<bool>, AttrError> {
        self.parsed_attr(key, "a boolean")
    }
}

/// Longest byte content the debug form prints as hex; longer content prints its length.
const DISPLAY_HEX_MAX: usize = 64;

impl fmt::Display for Node {
    /// An XML-like form for logs and debugging: `<iq id="1" type="get"><ping/></iq>`, byte content as hex up to
    /// 64 bytes and as `[N bytes]` beyond; `{:#}` indents children on their own lines.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.write_xml(f, 0)
    }
}

impl Node {
    fn write_xml(&self, f: &mut fmt::Formatter<'_>, depth: usize) -> fmt::Result {
        let pretty = f.alternate();
        if pretty {
            write!(f, "{:indent$}", "", indent = depth * 2)?;
        }
        write!(f, "<{}", self.tag)?;
        for (key, value) in self.attrs.iter() {
            write!(f, " {key}=\"{}\"", value.to_string().escape_debug())?;
        }
        match &self.content {
            Content::None => f.write_str("/>"),
            Content::Bytes(bytes) if bytes.len() <= DISPLAY_HEX_MAX => {
                f.write_str(">")?;
                for b in bytes.iter() {
                    write!(f, "{b:02x}")?;
                }
                write!(f, "</{}>", self.tag)
            }
            Content::Bytes(bytes) => write!(f, ">[{} bytes]</{}>", bytes.len(), self.tag),
            Content::Str(s) => write!(f, ">{}</{}>", s.escape_debug(), self.tag),
            Content::Jid(jid) => write!(f, ">{jid}</{}>", self.tag),
            Content::Nodes(children) => {
                f.write_str(">")?;
                for child in children {
                    if pretty {
                        f.write_str("\n")?;
                    }
                    child.write_xml(f, depth + 1)?;
                }
                if pretty && !children.is_empty() {
                    write!(f, "\n{:indent$}", "", indent = depth * 2)?;
                }
                write!(f, "</{}>", self.tag)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Node {
        Node::new("iq")
            .attr("id", "42")
            .attr("type", "result")
            .attr("from", Jid::new("", Jid::DEFAULT_USER_SERVER))
            .attr("t", 1_700_000_000u64)
            .attr("ok", true)
            .children([
                Node::new("ping"),
                Node::new("enc").attr("v", 2).bytes(vec![0xde, 0xad]),
            ])
    }

    #[test]
    fn builders_keep_insertion_order_and_replace_in_place() {
        let node = sample().attr("id", "43");
        let keys: Vec<&str> = node.attrs.iter().map(|(k, _)| k).collect();
        assert_eq!(keys, ["id", "type", "from", "t", "ok"]);
        assert_eq!(node.str_attr("id"), Ok("43"));
    }

    #[test]
    fn typed_accessors_name_the_attribute() {
        let node = sample();
        assert_eq!(node.u64_attr("t"), Ok(1_700_000_000));
        assert_eq!(node.bool_attr("ok"), Ok(true));
        assert_eq!(
            node.jid_attr("from").map(|j| j.to_string()),
            Ok("s.whatsapp.net".into())
        );
        let missing = node.str_attr("nope").unwrap_err();
        assert_eq!(missing.to_string(), "<iq> has no attribute \"nope\"");
        let invalid = node.u64_attr("type").unwrap_err();
        assert_eq!(
            invalid.to_string(),
            "<iq> attribute \"type\" = \"result\" is not an unsigned integer"
        );
        assert!(matches!(node.str_attr("from"), Err(AttrError::Invalid { .. })));
        assert_eq!(node.optional_u64_attr("nope"), Ok(None));
        assert_eq!(
            node.child("enc").and_then(Node::content_bytes).map(|b| b.len()),
            Some(2)
        );
    }

    #[test]
    fn display_is_xml_like() {
        assert_eq!(
            sample().to_string(),
            "<iq id=\"42\" type=\"result\" from=\"s.whatsapp.net\" t=\"1700000000\" ok=\"true\">\
             <ping/><enc v=\"2\">dead</enc></iq>"
        );
        let big = Node::new("media").bytes(vec![0u8; 65]);
        assert_eq!(big.to_string(), "<media>[65 bytes]</media>");
        assert_eq!(
            format!("{:#}", Node::new("a").children([Node::new("b")])),
            "<a>\n  <b/>\n</a>"
        );
    }
}
