//! Decoding node bytes, following whatsmeow's `binary/decoder.go` (protocol-facts §3.10) with stricter checks.
//!
//! [`NodeTree::parse`] is the fast path: one pass over the input into two flat vectors (nodes, attributes), with
//! raw strings and byte payloads borrowed from the input and only packed strings (NIBBLE_8/HEX_8) unpacked into one
//! shared text buffer. [`NodeRef`] is a cheap copyable view into it. [`decode`] and [`decode_shared`] build the
//! owned [`Node`] from that tree.
//!
//! Every malformed input is a [`DecodeError`]; nothing panics, and no allocation is sized by a length field before
//! the input is known to hold that many bytes.

use std::borrow::Cow;
use std::fmt;

use bytes::Bytes;

use crate::error::DecodeError;
use crate::frame::MAX_FRAME_SIZE;
use crate::jid::{Jid, intern_server};
use crate::node::{Attrs, Content, Node, Value};
use crate::token::{self, DOUBLE_BYTE, SINGLE_BYTE};

/// Deepest node nesting accepted. Real stanzas nest fewer than 10 levels; the vectors test 50. The cap bounds the
/// decoder's recursion (and so its stack use) on hostile input.
pub const MAX_DEPTH: usize = 128;

/// Most children in one list, and most attributes on one node: the largest count LIST_16 can express. A count is
/// also checked against the bytes left (every node takes at least [`MIN_NODE_LEN`] bytes) before anything is
/// allocated for it, so hostile counts cannot reserve memory the input does not back.
pub const MAX_LIST_LEN: usize = 0xffff;

/// Fewest bytes one node can take: LIST_8, its size, a one-byte token tag.
const MIN_NODE_LEN: usize = 3;

/// A string of the tree: a dictionary token, a raw UTF-8 string borrowed from the input, or a range of the tree's
/// buffer of unpacked NIBBLE_8/HEX_8 strings.
#[derive(Clone, Copy)]
enum Str<'a> {
    Token(&'static str),
    Raw(&'a str),
    Unpacked { start: u32, len: u32 },
}

#[derive(Clone, Copy)]
struct RawJid<'a> {
    user: Str<'a>,
    server: Str<'a>,
    agent: u8,
    device: u16,
    integrator: u16,
}

#[derive(Clone, Copy)]
enum RawValue<'a> {
    Str(Str<'a>),
    Jid(RawJid<'a>),
}

#[derive(Clone, Copy)]
enum RawContent<'a> {
    None,
    Bytes(&'a [u8]),
    Nodes { start: u32, len: u32 },
    Str(Str<'a>),
    Jid(RawJid<'a>),
}

#[derive(Clone, Copy)]
struct RawNode<'a> {
    tag: Str<'a>,
    attrs_start: u32,
    attrs_len: u32,
    content: RawContent<'a>,
}

impl RawNode<'_> {
    const PLACEHOLDER: RawNode<'static> = RawNode {
        tag: Str::Token(""),
        attrs_start: 0,
        attrs_len: 0,
        content: RawContent::None,
    };
}

/// A decoded node tree borrowing the input bytes.
///
/// ```
/// use whatsapp_binary::NodeTree;
/// let bytes = [0xf8, 0x02, 0x19, 0x00]; // <iq/> with an empty child list
/// let tree = NodeTree::parse(&bytes).unwrap();
/// assert_eq!(tree.root().tag(), "iq");
/// ```
pub struct NodeTree<'a> {
    nodes: Vec<RawNode<'a>>,
    attrs: Vec<(Str<'a>, RawValue<'a>)>,
    text: String,
}

impl fmt::Debug for NodeTree<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "NodeTree({})", self.root().to_node())
    }
}

/// Decodes node bytes (without the flags byte) into an owned [`Node`], copying byte payloads.
pub fn decode(node_bytes: &[u8]) -> Result<Node, DecodeError> {
    Ok(NodeTree::parse(node_bytes)?.root().to_node())
}

/// Decodes node bytes held in a [`Bytes`] into an owned [`Node`] whose byte payloads share that buffer (no copy).
pub fn decode_shared(node_bytes: &Bytes) -> Result<Node, DecodeError> {
    Ok(NodeTree::parse(node_bytes)?.root().to_node_shared(node_bytes))
}

impl<'a> NodeTree<'a> {
    /// Decodes node bytes (without the flags byte). The whole input must be one node.
    pub fn parse(data: &'a [u8]) -> Result<NodeTree<'a>, DecodeError> {
        if data.len() > MAX_FRAME_SIZE {
            return Err(DecodeError::FrameTooLarge);
        }
        let mut parser = Parser {
            data,
            pos: 0,
            nodes: Vec::with_capacity(data.len() / 24 + 1),
            attrs: Vec::with_capacity(data.len() / 10 + 1),
            text: Vec::new(),
        };
        parser.nodes.push(RawNode::PLACEHOLDER);
        parser.read_node(0, 1)?;
        if parser.pos != data.len() {
            return Err(DecodeError::TrailingBytes {
                count: data.len() - parser.pos,
            });
        }
        // Unpacked strings hold only ASCII digits, `-`, `.` and `A-F`, so this cannot fail.
        let text = String::from_utf8(parser.text).map_err(|_| DecodeError::InvalidPacked {
            at: 0,
            reason: "non-ASCII output",
        })?;
        Ok(NodeTree {
            nodes: parser.nodes,
            attrs: parser.attrs,
            text,
        })
    }

    /// The root node.
    pub fn root(&self) -> NodeRef<'_> {
        NodeRef { tree: self, index: 0 }
    }

    /// How many nodes the tree holds.
    pub fn node_count(&self) -> usize {
        self.nodes.len()
    }

    fn str(&self, s: Str<'a>) -> &str {
        match s {
            Str::Token(t) => t,
            Str::Raw(r) => r,
            Str::Unpacked { start, len } => {
                let start = start as usize;
                self.text.get(start..start + len as usize).unwrap_or_default()
            }
        }
    }
}

/// A node of a [`NodeTree`].
#[derive(Clone, Copy)]
pub struct NodeRef<'t> {
    tree: &'t NodeTree<'t>,
    index: usize,
}

/// An attribute value of a [`NodeRef`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ValueRef<'t> {
    /// A string.
    Str(&'t str),
    /// A JID.
    Jid(JidRef<'t>),
}

/// A JID of a [`NodeRef`], its parts borrowed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct JidRef<'t> {
    /// The user part.
    pub user: &'t str,
    /// The server.
    pub server: &'t str,
    /// The raw agent byte (see [`Jid::raw_agent`]).
    pub raw_agent: u8,
    /// The device.
    pub device: u16,
    /// The integrator of an interop JID.
    pub integrator: u16,
}

/// The content of a [`NodeRef`].
#[derive(Clone, Debug)]
pub enum ContentRef<'t> {
    /// Nothing.
    None,
    /// Bytes, borrowed from the input.
    Bytes(&'t [u8]),
    /// Children.
    Nodes(Children<'t>),
    /// A string (token or packed string).
    Str(&'t str),
    /// A JID.
    Jid(JidRef<'t>),
}

/// The children of a [`NodeRef`].
#[derive(Clone)]
pub struct Children<'t> {
    tree: &'t NodeTree<'t>,
    range: std::ops::Range<usize>,
}

impl<'t> Iterator for Children<'t> {
    type Item = NodeRef<'t>;

    fn next(&mut self) -> Option<NodeRef<'t>> {
        self.range.next().map(|index| NodeRef {
            tree: self.tree,
            index,
        })
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.range.size_hint()
    }
}

impl ExactSizeIterator for Children<'_> {}

impl DoubleEndedIterator for Children<'_> {
    fn next_back(&mut self) -> Option<Self::Item> {
        self.range.next_back().map(|index| NodeRef {
            tree: self.tree,
            index,
        })
    }
}

impl fmt::Debug for Children<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.clone()).finish()
    }
}

impl JidRef<'_> {
    /// The owned [`Jid`].
    pub fn to_jid(&self) -> Jid {
        Jid::from_parts(
            self.user.to_owned(),
            intern_server(self.server),
            self.raw_agent,
            self.device,
            self.integrator,
        )
    }
}

impl fmt::Display for JidRef<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.to_jid(), f)
    }
}

impl fmt::Display for ValueRef<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ValueRef::Str(s) => f.write_str(s),
            ValueRef::Jid(jid) => fmt::Display::fmt(jid, f),
        }
    }
}

impl<'t> ValueRef<'t> {
    /// The string, if this is a string value.
    pub fn as_str(&self) -> Option<&'t str> {
        match self {
            ValueRef::Str(s) => Some(s),
            ValueRef::Jid(_) => None,
        }
    }

    /// The JID, if this is a JID value.
    pub fn as_jid(&self) -> Option<JidRef<'t>> {
        match self {
            ValueRef::Jid(jid) => Some(*jid),
            ValueRef::Str(_) => None,
        }
    }
}

impl fmt::Debug for NodeRef<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "NodeRef({})", self.to_node())
    }
}

impl<'t> NodeRef<'t> {
    fn raw(&self) -> RawNode<'t> {
        self.tree
            .nodes
            .get(self.index)
            .copied()
            .unwrap_or(RawNode::PLACEHOLDER)
    }

    fn value(&self, value: RawValue<'t>) -> ValueRef<'t> {
        match value {
            RawValue::Str(s) => ValueRef::Str(self.tree.str(s)),
            RawValue::Jid(jid) => ValueRef::Jid(self.jid(jid)),
        }
    }

    fn jid(&self, jid: RawJid<'t>) -> JidRef<'t> {
        JidRef {
            user: self.tree.str(jid.user),
            server: self.tree.str(jid.server),
            raw_agent: jid.agent,
            device: jid.device,
            integrator: jid.integrator,
        }
    }

    fn raw_attrs(&self) -> &'t [(Str<'t>, RawValue<'t>)] {
        let raw = self.raw();
        let start = raw.attrs_start as usize;
        self.tree
            .attrs
            .get(start..start + raw.attrs_len as usize)
            .unwrap_or_default()
    }

    /// The tag.
    pub fn tag(&self) -> &'t str {
        self.tree.str(self.raw().tag)
    }

    /// The attributes in wire order.
    pub fn attrs(&self) -> impl ExactSizeIterator<Item = (&'t str, ValueRef<'t>)> + 't {
        let this = *self;
        self.raw_attrs()
            .iter()
            .map(move |(k, v)| (this.tree.str(*k), this.value(*v)))
    }

    /// The value of attribute `key`.
    pub fn attr(&self, key: &str) -> Option<ValueRef<'t>> {
        self.raw_attrs()
            .iter()
            .find(|(k, _)| self.tree.str(*k) == key)
            .map(|(_, v)| self.value(*v))
    }

    /// The content.
    pub fn content(&self) -> ContentRef<'t> {
        match self.raw().content {
            RawContent::None => ContentRef::None,
            RawContent::Bytes(bytes) => ContentRef::Bytes(bytes),
            RawContent::Str(s) => ContentRef::Str(self.tree.str(s)),
            RawContent::Jid(jid) => ContentRef::Jid(self.jid(jid)),
            RawContent::Nodes { .. } => ContentRef::Nodes(self.children()),
        }
    }

    /// The children (none unless the content is a list).
    pub fn children(&self) -> Children<'t> {
        let range = match self.raw().content {
            RawContent::Nodes { start, len } => start as usize..(start + len) as usize,
            _ => 0..0,
        };
        Children {
            tree: self.tree,
            range,
        }
    }

    /// The first child with `tag`.
    pub fn child(&self, tag: &str) -> Option<NodeRef<'t>> {
        self.children().find(|c| c.tag() == tag)
    }

    /// The byte content, if the content is bytes.
    pub fn content_bytes(&self) -> Option<&'t [u8]> {
        match self.raw().content {
            RawContent::Bytes(bytes) => Some(bytes),
            _ => None,
        }
    }

    /// The owned node, byte payloads copied.
    pub fn to_node(&self) -> Node {
        self.build(&|bytes: &[u8]| Bytes::copy_from_slice(bytes))
    }

    /// The owned node, byte payloads sliced out of `source` (which must be the buffer the tree was parsed from;
    /// payloads that are not inside it are copied).
    pub fn to_node_shared(&self, source: &Bytes) -> Node {
        self.build(&|bytes: &[u8]| {
            let offset = (bytes.as_ptr() as usize).checked_sub(source.as_ptr() as usize);
            match offset {
                Some(offset) if offset + bytes.len() <= source.len() && !bytes.is_empty() => {
                    source.slice(offset..offset + bytes.len())
                }
                _ => Bytes::copy_from_slice(bytes),
            }
        })
    }

    fn owned_str(&self, s: Str<'t>) -> Cow<'static, str> {
        match s {
            Str::Token(t) => Cow::Borrowed(t),
            other => Cow::Owned(self.tree.str(other).to_owned()),
        }
    }

    fn owned_jid(&self, jid: RawJid<'t>) -> Jid {
        let server = match jid.server {
            Str::Token(t) => intern_server(t),
            other => intern_server(self.tree.str(other)),
        };
        Jid::from_parts(
            self.tree.str(jid.user).to_owned(),
            server,
            jid.agent,
            jid.device,
            jid.integrator,
        )
    }

    fn build(&self, bytes: &dyn Fn(&[u8]) -> Bytes) -> Node {
        let raw = self.raw();
        let raw_attrs = self.raw_attrs();
        let mut attrs = Attrs::with_capacity(raw_attrs.len());
        for (key, value) in raw_attrs {
            let value = match value {
                RawValue::Str(s) => Value::Str(self.owned_str(*s)),
                RawValue::Jid(jid) => Value::Jid(self.owned_jid(*jid)),
            };
            attrs.push(self.owned_str(*key), value);
        }
        let content = match raw.content {
            RawContent::None => Content::None,
            RawContent::Bytes(b) => Content::Bytes(bytes(b)),
            RawContent::Str(s) => Content::Str(self.owned_str(s)),
            RawContent::Jid(jid) => Content::Jid(self.owned_jid(jid)),
            RawContent::Nodes { .. } => Content::Nodes(self.children().map(|c| c.build(bytes)).collect()),
        };
        Node {
            tag: self.owned_str(raw.tag),
            attrs,
            content,
        }
    }
}

/// One item read where a value may appear.
enum Item<'a> {
    Nil,
    Str(Str<'a>),
    Jid(RawJid<'a>),
    Raw(&'a [u8]),
    List(usize),
}

struct Parser<'a> {
    data: &'a [u8],
    pos: usize,
    nodes: Vec<RawNode<'a>>,
    attrs: Vec<(Str<'a>, RawValue<'a>)>,
    text: Vec<u8>,
}

/// Characters of NIBBLE_8 digits; 0 marks the invalid values 12-14 and the padding value 15.
const NIBBLE_CHARS: [u8; 16] = *b"0123456789-.\0\0\0\0";
/// Characters of HEX_8 digits.
const HEX_CHARS: [u8; 16] = *b"0123456789ABCDEF";
const PAD: u8 = 0x0f;

impl<'a> Parser<'a> {
    fn eof(&self, what: &'static str) -> DecodeError {
        DecodeError::UnexpectedEof { at: self.pos, what }
    }

    #[inline]
    fn byte(&mut self, what: &'static str) -> Result<u8, DecodeError> {
        let b = *self.data.get(self.pos).ok_or_else(|| self.eof(what))?;
        self.pos += 1;
        Ok(b)
    }

    #[inline]
    fn array<const N: usize>(&mut self, what: &'static str) -> Result<[u8; N], DecodeError> {
        let bytes = self
            .data
            .get(self.pos..self.pos + N)
            .and_then(|b| <[u8; N]>::try_from(b).ok())
            .ok_or_else(|| self.eof(what))?;
        self.pos += N;
        Ok(bytes)
    }

    fn remaining(&self) -> usize {
        self.data.len() - self.pos
    }

    #[inline]
    fn take(&mut self, len: usize, at: usize, what: &'static str) -> Result<&'a [u8], DecodeError> {
        let end = self.pos.checked_add(len).filter(|end| *end <= self.data.len());
        let Some(end) = end else {
            return Err(DecodeError::LengthOverrun {
                at,
                what,
                declared: len,
                available: self.remaining(),
            });
        };
        let bytes = self.data.get(self.pos..end).unwrap_or_default();
        self.pos = end;
        Ok(bytes)
    }

    fn read_item(&mut self, what: &'static str) -> Result<Item<'a>, DecodeError> {
        let at = self.pos;
        let tag = self.byte(what)?;
        Ok(match tag {
            token::LIST_EMPTY => Item::Nil,
            token::LIST_8 => Item::List(usize::from(self.byte("list size")?)),
            token::LIST_16 => Item::List(usize::from(u16::from_be_bytes(self.array("list size")?))),
            1..=235 => Item::Str(Str::Token(
                SINGLE_BYTE.get(usize::from(tag)).copied().unwrap_or_default(),
            )),
            token::DICTIONARY_0..=token::DICTIONARY_3 => {
                let index = self.byte("dictionary index")?;
                let table = DOUBLE_BYTE.get(usize::from(tag - token::DICTIONARY_0));
                let text = table.and_then(|t| t.get(usize::from(index)));
                Item::Str(Str::Token(text.copied().unwrap_or_default()))
            }
            token::BINARY_8 => {
                let len = usize::from(self.byte("BINARY_8 length")?);
                Item::Raw(self.take(len, at, "BINARY_8")?)
            }
            token::BINARY_20 => {
                let [a, b, c] = self.array("BINARY_20 length")?;
                let len = (usize::from(a & 0x0f) << 16) | (usize::from(b) << 8) | usize::from(c);
                Item::Raw(self.take(len, at, "BINARY_20")?)
            }
            token::BINARY_32 => {
                let len = u32::from_be_bytes(self.array("BINARY_32 length")?) as usize;
                Item::Raw(self.take(len, at, "BINARY_32")?)
            }
            token::NIBBLE_8 => Item::Str(self.read_packed(at, &NIBBLE_CHARS)?),
            token::HEX_8 => Item::Str(self.read_packed(at, &HEX_CHARS)?),
            token::JID_PAIR => Item::Jid(self.read_jid_pair(at)?),
            token::AD_JID => Item::Jid(self.read_ad_jid(at)?),
            token::FB_JID => Item::Jid(self.read_fb_jid(at)?),
            token::INTEROP_JID => Item::Jid(self.read_interop_jid(at)?),
            byte => {
                return Err(DecodeError::InvalidTag {
                    at,
                    byte,
                    expected: what,
                });
            }
        })
    }

    fn utf8(at: usize, bytes: &'a [u8]) -> Result<Str<'a>, DecodeError> {
        std::str::from_utf8(bytes)
            .map(Str::Raw)
            .map_err(|_| DecodeError::InvalidUtf8 { at })
    }

    /// Reads an item that must be a string (a tag, key or JID part); `Nil` gives `None`.
    fn read_string(&mut self, what: &'static str) -> Result<Option<Str<'a>>, DecodeError> {
        let at = self.pos;
        match self.read_item(what)? {
            Item::Nil => Ok(None),
            Item::Str(s) => Ok(Some(s)),
            Item::Raw(bytes) => Self::utf8(at + 1, bytes).map(Some),
            Item::Jid(_) | Item::List(_) => Err(DecodeError::NotAString { at, what }),
        }
    }

    fn read_packed(&mut self, at: usize, chars: &[u8; 16]) -> Result<Str<'a>, DecodeError> {
        let head = self.byte("packed string length")?;
        let odd = head & 0x80 != 0;
        let packed = self.take(usize::from(head & 0x7f), at, "packed string")?;
        let invalid = |reason| DecodeError::InvalidPacked { at, reason };
        let Some((&last, pairs)) = packed.split_last() else {
            if odd {
                return Err(invalid("odd flag on an empty string"));
            }
            return Ok(Str::Token(""));
        };
        let start = self.text.len();
        let is_hex = chars[10] == b'A';
        let valid = |nibble: u8| is_hex || chars[usize::from(nibble)] != 0;
        for &b in pairs {
            let (hi, lo) = (b >> 4, b & 0x0f);
            if !valid(hi) || !valid(lo) {
                return Err(invalid("invalid digit"));
            }
            self.text
                .extend_from_slice(&[chars[usize::from(hi)], chars[usize::from(lo)]]);
        }
        let (hi, lo) = (last >> 4, last & 0x0f);
        if !valid(hi) {
            return Err(invalid("invalid digit"));
        }
        self.text.push(chars[usize::from(hi)]);
        if odd {
            // The dropped half must still be a digit or the padding value, as in whatsmeow.
            if !(valid(lo) || lo == PAD) {
                return Err(invalid("invalid digit"));
            }
        } else {
            if !valid(lo) {
                return Err(invalid("invalid digit"));
            }
            self.text.push(chars[usize::from(lo)]);
        }
        let len = self.text.len() - start;
        Ok(Str::Unpacked {
            start: start as u32,
            len: len as u32,
        })
    }

    fn read_jid_pair(&mut self, at: usize) -> Result<RawJid<'a>, DecodeError> {
        let user = self.read_string("JID user")?.unwrap_or(Str::Token(""));
        let server = self.read_string("JID server")?.ok_or(DecodeError::InvalidJid {
            at,
            reason: "JID_PAIR without server",
        })?;
        Ok(RawJid {
            user,
            server,
            agent: 0,
            device: 0,
            integrator: 0,
        })
    }

    fn read_ad_jid(&mut self, at: usize) -> Result<RawJid<'a>, DecodeError> {
        let [domain, device] = self.array("AD_JID agent and device")?;
        let user = self.read_string("AD_JID user")?.ok_or(DecodeError::InvalidJid {
            at,
            reason: "AD_JID without user",
        })?;
        // The domain byte picks the server; any other value is a raw agent on s.whatsapp.net (whatsmeow NewADJID).
        let (server, agent) = match domain {
            Jid::LID_DOMAIN => (Jid::LID_SERVER, 0),
            Jid::HOSTED_DOMAIN => (Jid::HOSTED_SERVER, 0),
            Jid::HOSTED_LID_DOMAIN => (Jid::HOSTED_LID_SERVER, 0),
            other => (Jid::DEFAULT_USER_SERVER, other),
        };
        Ok(RawJid {
            user,
            server: Str::Token(server),
            agent,
            device: u16::from(device),
            integrator: 0,
        })
    }

    fn expect_server(
        &mut self,
        at: usize,
        expected: &'static str,
        reason: &'static str,
    ) -> Result<(), DecodeError> {
        let server = self.read_string("JID server")?;
        let matches = match server {
            Some(Str::Token(t)) => t == expected,
            Some(Str::Raw(r)) => r == expected,
            _ => false,
        };
        if matches {
            Ok(())
        } else {
            Err(DecodeError::InvalidJid { at, reason })
        }
    }

    fn read_fb_jid(&mut self, at: usize) -> Result<RawJid<'a>, DecodeError> {
        let user = self.read_string("FB_JID user")?.unwrap_or(Str::Token(""));
        let device = u16::from_be_bytes(self.array("FB_JID device")?);
        self.expect_server(at, Jid::MESSENGER_SERVER, "FB_JID server is not \"msgr\"")?;
        Ok(RawJid {
            user,
            server: Str::Token(Jid::MESSENGER_SERVER),
            agent: 0,
            device,
            integrator: 0,
        })
    }

    fn read_interop_jid(&mut self, at: usize) -> Result<RawJid<'a>, DecodeError> {
        let user = self.read_string("INTEROP_JID user")?.unwrap_or(Str::Token(""));
        let device = u16::from_be_bytes(self.array("INTEROP_JID device")?);
        let integrator = u16::from_be_bytes(self.array("INTEROP_JID integrator")?);
        self.expect_server(at, Jid::INTEROP_SERVER, "INTEROP_JID server is not \"interop\"")?;
        Ok(RawJid {
            user,
            server: Str::Token(Jid::INTEROP_SERVER),
            agent: 0,
            device,
            integrator,
        })
    }

    fn read_node(&mut self, slot: usize, depth: usize) -> Result<(), DecodeError> {
        let at = self.pos;
        if depth > MAX_DEPTH {
            return Err(DecodeError::TooDeep { at });
        }
        let size = match self.byte("node list")? {
            token::LIST_8 => usize::from(self.byte("node list size")?),
            token::LIST_16 => usize::from(u16::from_be_bytes(self.array("node list size")?)),
            token::LIST_EMPTY => 0,
            byte => {
                return Err(DecodeError::InvalidTag {
                    at,
                    byte,
                    expected: "a node list",
                });
            }
        };
        if size == 0 {
            return Err(DecodeError::EmptyNode { at });
        }
        let tag_at = self.pos;
        let tag = match self.read_string("node tag")? {
            Some(tag) if !matches!(tag, Str::Token("") | Str::Raw("")) => tag,
            _ => return Err(DecodeError::EmptyNode { at: tag_at }),
        };
        let attr_count = (size - 1) / 2;
        // Every attribute takes at least two bytes.
        if attr_count * 2 > self.remaining() {
            return Err(DecodeError::LengthOverrun {
                at,
                what: "node attributes",
                declared: attr_count,
                available: self.remaining(),
            });
        }
        let attrs_start = self.attrs.len();
        for _ in 0..attr_count {
            let key_at = self.pos;
            let key = self
                .read_string("attribute key")?
                .ok_or(DecodeError::NotAString {
                    at: key_at,
                    what: "attribute key",
                })?;
            let value_at = self.pos;
            let value = match self.read_item("attribute value")? {
                // whatsmeow keeps a nil value; an empty string is its closest form and is not re-encoded.
                Item::Nil => RawValue::Str(Str::Token("")),
                Item::Str(s) => RawValue::Str(s),
                Item::Raw(bytes) => RawValue::Str(Self::utf8(value_at + 1, bytes)?),
                Item::Jid(jid) => RawValue::Jid(jid),
                Item::List(_) => {
                    return Err(DecodeError::NotAString {
                        at: value_at,
                        what: "attribute value",
                    });
                }
            };
            self.attrs.push((key, value));
        }
        let content = if size % 2 == 0 {
            self.read_content(depth)?
        } else {
            RawContent::None
        };
        let node = RawNode {
            tag,
            attrs_start: attrs_start as u32,
            attrs_len: attr_count as u32,
            content,
        };
        if let Some(entry) = self.nodes.get_mut(slot) {
            *entry = node;
        }
        Ok(())
    }

    fn read_content(&mut self, depth: usize) -> Result<RawContent<'a>, DecodeError> {
        let at = self.pos;
        Ok(match self.read_item("node content")? {
            Item::Nil => RawContent::None,
            Item::Str(s) => RawContent::Str(s),
            Item::Jid(jid) => RawContent::Jid(jid),
            Item::Raw(bytes) => RawContent::Bytes(bytes),
            Item::List(len) => {
                if len > MAX_LIST_LEN || len * MIN_NODE_LEN > self.remaining() {
                    return Err(DecodeError::LengthOverrun {
                        at,
                        what: "child list",
                        declared: len,
                        available: self.remaining(),
                    });
                }
                let start = self.nodes.len();
                self.nodes.resize(start + len, RawNode::PLACEHOLDER);
                for i in 0..len {
                    self.read_node(start + i, depth + 1)?;
                }
                RawContent::Nodes {
                    start: start as u32,
                    len: len as u32,
                }
            }
        })
    }
}
