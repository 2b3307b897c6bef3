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
use crate::token::{self, SINGLE_BYTE};

/// Deepest node nesting accepted. Real stanzas nest fewer than 10 levels; the vectors test 50. The cap bounds the
/// decoder's recursion (and so its stack use) on hostile input.
pub const MAX_DEPTH: usize = 128;

/// Most children in one list, and most attributes on one node: the largest count LIST_16 can express. A count is
/// also checked against the bytes left (every node takes at least three bytes) before anything is
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

/// An attribute value; JIDs live in the tree's side table so that values and contents stay small.
#[derive(Clone, Copy)]
enum RawValue<'a> {
    Str(Str<'a>),
    Jid(u32),
}

#[derive(Clone, Copy)]
enum RawContent<'a> {
    None,
    Bytes(&'a [u8]),
    /// This many children follow the node in `nodes`, each spanning up to its `end`.
    Nodes(u32),
    Str(Str<'a>),
    Jid(u32),
}

/// A node in depth-first order: its children start right after it, and `end` is the index after its subtree
/// (where its next sibling starts).
#[derive(Clone, Copy)]
struct RawNode<'a> {
    tag: Str<'a>,
    attrs_start: u32,
    attrs_len: u32,
    end: u32,
    content: RawContent<'a>,
}

impl RawNode<'_> {
    const PLACEHOLDER: RawNode<'static> = RawNode {
        tag: Str::Token(""),
        attrs_start: 0,
        attrs_len: 0,
        end: 0,
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
    jids: Vec<RawJid<'a>>,
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
            // Rough sizes for typical stanzas (about 16 structure bytes per node, 8 per attribute), small enough
            // that a one-node stanza allocates under a kilobyte per vector.
            nodes: Vec::with_capacity(4 + data.len() / 64),
            attrs: Vec::with_capacity(8 + data.len() / 32),
            jids: Vec::with_capacity(2 + data.len() / 128),
            text: Vec::with_capacity(64 + data.len() / 8),
        };
        parser.read_node(1).map_err(|fail| *fail.0)?;
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
            jids: parser.jids,
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

    fn raw_jid(&self, index: u32) -> RawJid<'a> {
        self.jids.get(index as usize).copied().unwrap_or(RawJid {
            user: Str::Token(""),
            server: Str::Token(""),
            agent: 0,
            device: 0,
            integrator: 0,
        })
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
    next: usize,
    remaining: usize,
}

impl<'t> Iterator for Children<'t> {
    type Item = NodeRef<'t>;

    fn next(&mut self) -> Option<NodeRef<'t>> {
        if self.remaining == 0 {
            return None;
        }
        let index = self.next;
        self.remaining -= 1;
        self.next = self.tree.nodes.get(index).map_or(usize::MAX, |n| n.end as usize);
        Some(NodeRef {
            tree: self.tree,
            index,
        })
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.remaining, Some(self.remaining))
    }
}

impl ExactSizeIterator for Children<'_> {}

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

    fn jid(&self, index: u32) -> JidRef<'t> {
        let jid = self.tree.raw_jid(index);
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
            RawContent::Nodes(_) => ContentRef::Nodes(self.children()),
        }
    }

    /// The children (none unless the content is a list).
    pub fn children(&self) -> Children<'t> {
        let remaining = match self.raw().content {
            RawContent::Nodes(count) => count as usize,
            _ => 0,
        };
        Children {
            tree: self.tree,
            next: self.index + 1,
            remaining,
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

    fn owned_jid(&self, index: u32) -> Jid {
        let jid = self.tree.raw_jid(index);
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
    Jid(u32),
    Raw(&'a [u8]),
    List(usize),
}

/// A decode failure on the parser's hot path: boxed, so that `Result`s stay as small as their values.
struct Fail(Box<DecodeError>);

type Res<T> = Result<T, Fail>;

#[cold]
#[inline(never)]
fn fail<T>(error: DecodeError) -> Res<T> {
    Err(Fail(Box::new(error)))
}

struct Parser<'a> {
    data: &'a [u8],
    pos: usize,
    nodes: Vec<RawNode<'a>>,
    attrs: Vec<(Str<'a>, RawValue<'a>)>,
    jids: Vec<RawJid<'a>>,
    text: Vec<u8>,
}

/// Marks a nibble value with no character in the unpacking tables.
const NO_CHAR: u8 = 0xff;

/// Both characters of every NIBBLE_8 byte: digits 0-9, 10 `-`, 11 `.`; 12-14 are invalid and 15 (padding) has no
/// character either.
static NIBBLE_PAIRS: [[u8; 2]; 256] = pair_table(b"0123456789-.\xff\xff\xff\xff");
/// Both characters of every HEX_8 byte.
static HEX_PAIRS: [[u8; 2]; 256] = pair_table(b"0123456789ABCDEF");
const PAD: u8 = 0x0f;

const fn pair_table(chars: &[u8; 16]) -> [[u8; 2]; 256] {
    let mut table = [[0u8; 2]; 256];
    let mut i = 0;
    while i < 256 {
        table[i] = [chars[i >> 4], chars[i & 0x0f]];
        i += 1;
    }
    table
}

impl<'a> Parser<'a> {
    #[cold]
    fn eof<T>(&self, what: &'static str) -> Res<T> {
        fail(DecodeError::UnexpectedEof { at: self.pos, what })
    }

    #[inline]
    fn byte(&mut self, what: &'static str) -> Res<u8> {
        match self.data.get(self.pos) {
            Some(&b) => {
                self.pos += 1;
                Ok(b)
            }
            None => self.eof(what),
        }
    }

    #[inline]
    fn array<const N: usize>(&mut self, what: &'static str) -> Res<[u8; N]> {
        let bytes = self
            .data
            .get(self.pos..self.pos + N)
            .and_then(|b| <[u8; N]>::try_from(b).ok());
        match bytes {
            Some(bytes) => {
                self.pos += N;
                Ok(bytes)
            }
            None => self.eof(what),
        }
    }

    fn remaining(&self) -> usize {
        self.data.len() - self.pos
    }

    #[inline]
    fn take(&mut self, len: usize, at: usize, what: &'static str) -> Res<&'a [u8]> {
        match self.data.get(self.pos..).and_then(|rest| rest.get(..len)) {
            Some(bytes) => {
                self.pos += len;
                Ok(bytes)
            }
            None => fail(DecodeError::LengthOverrun {
                at,
                what,
                declared: len,
                available: self.remaining(),
            }),
        }
    }

    #[inline]
    fn read_item(&mut self, what: &'static str) -> Res<Item<'a>> {
        let at = self.pos;
        let tag = self.byte(what)?;
        Ok(match tag {
            1..=235 => Item::Str(Str::Token(
                SINGLE_BYTE.get(usize::from(tag)).copied().unwrap_or_default(),
            )),
            token::LIST_EMPTY => Item::Nil,
            token::NIBBLE_8 => Item::Str(self.read_packed(at, &NIBBLE_PAIRS)?),
            token::HEX_8 => Item::Str(self.read_packed(at, &HEX_PAIRS)?),
            token::BINARY_8 => {
                let len = usize::from(self.byte("BINARY_8 length")?);
                Item::Raw(self.take(len, at, "BINARY_8")?)
            }
            token::AD_JID => self.read_ad_jid(at)?,
            token::JID_PAIR => self.read_jid_pair(at)?,
            token::LIST_8 => Item::List(usize::from(self.byte("list size")?)),
            token::LIST_16 => Item::List(usize::from(u16::from_be_bytes(self.array("list size")?))),
            token::DICTIONARY_0..=token::DICTIONARY_3 => {
                let index = self.byte("dictionary index")?;
                let text = token::double_token(tag - token::DICTIONARY_0, index);
                Item::Str(Str::Token(text.unwrap_or_default()))
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
            token::FB_JID => self.read_fb_jid(at)?,
            token::INTEROP_JID => self.read_interop_jid(at)?,
            byte => {
                return fail(DecodeError::InvalidTag {
                    at,
                    byte,
                    expected: what,
                });
            }
        })
    }

    #[inline]
    fn utf8(at: usize, bytes: &'a [u8]) -> Res<Str<'a>> {
        match std::str::from_utf8(bytes) {
            Ok(s) => Ok(Str::Raw(s)),
            Err(_) => fail(DecodeError::InvalidUtf8 { at }),
        }
    }

    /// Reads an item that must be a string (a tag, key or JID part); `Nil` gives `None`.
    #[inline(always)]
    fn read_string(&mut self, what: &'static str) -> Res<Option<Str<'a>>> {
        // Fast path, inlined: tags and keys are nearly always single-byte tokens.
        if let Some(&b @ 1..=235) = self.data.get(self.pos) {
            self.pos += 1;
            return Ok(Some(Str::Token(
                SINGLE_BYTE.get(usize::from(b)).copied().unwrap_or_default(),
            )));
        }
        self.read_string_slow(what)
    }

    #[inline(never)]
    fn read_string_slow(&mut self, what: &'static str) -> Res<Option<Str<'a>>> {
        let at = self.pos;
        match self.read_item(what)? {
            Item::Str(s) => Ok(Some(s)),
            Item::Nil => Ok(None),
            Item::Raw(bytes) => Self::utf8(at + 1, bytes).map(Some),
            Item::Jid(_) | Item::List(_) => fail(DecodeError::NotAString { at, what }),
        }
    }

    fn read_packed(&mut self, at: usize, pairs: &[[u8; 2]; 256]) -> Res<Str<'a>> {
        let head = self.byte("packed string length")?;
        let odd = head & 0x80 != 0;
        let packed = self.take(usize::from(head & 0x7f), at, "packed string")?;
        let invalid = |reason| fail(DecodeError::InvalidPacked { at, reason });
        let Some((&last, body)) = packed.split_last() else {
            if odd {
                return invalid("odd flag on an empty string");
            }
            return Ok(Str::Token(""));
        };
        let start = self.text.len();
        // Unpack into a stack buffer (at most 127 bytes, 254 characters), checking validity once at the end.
        let mut buf = [0u8; 2 * 0x7f];
        let mut bad = false;
        for (out, &b) in buf.chunks_exact_mut(2).zip(body) {
            let pair = pairs[usize::from(b)];
            bad |= pair[0] == NO_CHAR || pair[1] == NO_CHAR;
            out.copy_from_slice(&pair);
        }
        let [hi, lo] = pairs[usize::from(last)];
        let mut len = 2 * body.len();
        bad |= hi == NO_CHAR;
        if let Some(slot) = buf.get_mut(len) {
            *slot = hi;
        }
        len += 1;
        if odd {
            // The dropped half must still be a digit or the padding value, as in whatsmeow.
            bad |= lo == NO_CHAR && last & 0x0f != PAD;
        } else {
            bad |= lo == NO_CHAR;
            if let Some(slot) = buf.get_mut(len) {
                *slot = lo;
            }
            len += 1;
        }
        if bad {
            return invalid("invalid digit");
        }
        self.text.extend_from_slice(buf.get(..len).unwrap_or_default());
        Ok(Str::Unpacked {
            start: start as u32,
            len: (self.text.len() - start) as u32,
        })
    }

    fn push_jid(&mut self, jid: RawJid<'a>) -> Item<'a> {
        self.jids.push(jid);
        Item::Jid((self.jids.len() - 1) as u32)
    }

    fn read_jid_pair(&mut self, at: usize) -> Res<Item<'a>> {
        let user = self.read_string("JID user")?.unwrap_or(Str::Token(""));
        let Some(server) = self.read_string("JID server")? else {
            return fail(DecodeError::InvalidJid {
                at,
                reason: "JID_PAIR without server",
            });
        };
        Ok(self.push_jid(RawJid {
            user,
            server,
            agent: 0,
            device: 0,
            integrator: 0,
        }))
    }

    fn read_ad_jid(&mut self, at: usize) -> Res<Item<'a>> {
        let [domain, device] = self.array("AD_JID agent and device")?;
        let Some(user) = self.read_string("AD_JID user")? else {
            return fail(DecodeError::InvalidJid {
                at,
                reason: "AD_JID without user",
            });
        };
        // The domain byte picks the server; any other value is a raw agent on s.whatsapp.net (whatsmeow NewADJID).
        let (server, agent) = match domain {
            Jid::LID_DOMAIN => (Jid::LID_SERVER, 0),
            Jid::HOSTED_DOMAIN => (Jid::HOSTED_SERVER, 0),
            Jid::HOSTED_LID_DOMAIN => (Jid::HOSTED_LID_SERVER, 0),
            other => (Jid::DEFAULT_USER_SERVER, other),
        };
        Ok(self.push_jid(RawJid {
            user,
            server: Str::Token(server),
            agent,
            device: u16::from(device),
            integrator: 0,
        }))
    }

    fn expect_server(&mut self, at: usize, expected: &'static str, reason: &'static str) -> Res<()> {
        let server = self.read_string("JID server")?;
        let matches = match server {
            Some(Str::Token(t)) => t == expected,
            Some(Str::Raw(r)) => r == expected,
            _ => false,
        };
        if matches {
            Ok(())
        } else {
            fail(DecodeError::InvalidJid { at, reason })
        }
    }

    fn read_fb_jid(&mut self, at: usize) -> Res<Item<'a>> {
        let user = self.read_string("FB_JID user")?.unwrap_or(Str::Token(""));
        let device = u16::from_be_bytes(self.array("FB_JID device")?);
        self.expect_server(at, Jid::MESSENGER_SERVER, "FB_JID server is not \"msgr\"")?;
        Ok(self.push_jid(RawJid {
            user,
            server: Str::Token(Jid::MESSENGER_SERVER),
            agent: 0,
            device,
            integrator: 0,
        }))
    }

    fn read_interop_jid(&mut self, at: usize) -> Res<Item<'a>> {
        let user = self.read_string("INTEROP_JID user")?.unwrap_or(Str::Token(""));
        let device = u16::from_be_bytes(self.array("INTEROP_JID device")?);
        let integrator = u16::from_be_bytes(self.array("INTEROP_JID integrator")?);
        self.expect_server(at, Jid::INTEROP_SERVER, "INTEROP_JID server is not \"interop\"")?;
        Ok(self.push_jid(RawJid {
            user,
            server: Str::Token(Jid::INTEROP_SERVER),
            agent: 0,
            device,
            integrator,
        }))
    }

    /// Reads one node and its subtree, appending them to `nodes` in depth-first order.
    fn read_node(&mut self, depth: usize) -> Res<()> {
        let at = self.pos;
        if depth > MAX_DEPTH {
            return fail(DecodeError::TooDeep { at });
        }
        let size = match self.byte("node list")? {
            token::LIST_8 => usize::from(self.byte("node list size")?),
            token::LIST_16 => usize::from(u16::from_be_bytes(self.array("node list size")?)),
            token::LIST_EMPTY => 0,
            byte => {
                return fail(DecodeError::InvalidTag {
                    at,
                    byte,
                    expected: "a node list",
                });
            }
        };
        if size == 0 {
            return fail(DecodeError::EmptyNode { at });
        }
        let tag_at = self.pos;
        let tag = match self.read_string("node tag")? {
            Some(tag) if !matches!(tag, Str::Token("") | Str::Raw("")) => tag,
            _ => return fail(DecodeError::EmptyNode { at: tag_at }),
        };
        let attr_count = (size - 1) / 2;
        // Every attribute takes at least two bytes.
        if attr_count * 2 > self.remaining() {
            return fail(DecodeError::LengthOverrun {
                at,
                what: "node attributes",
                declared: attr_count,
                available: self.remaining(),
            });
        }
        let attrs_start = self.attrs.len();
        for _ in 0..attr_count {
            let key_at = self.pos;
            let Some(key) = self.read_string("attribute key")? else {
                return fail(DecodeError::NotAString {
                    at: key_at,
                    what: "attribute key",
                });
            };
            let value_at = self.pos;
            // Fast path, inlined: a single-byte token value.
            if let Some(&b @ 1..=235) = self.data.get(value_at) {
                self.pos += 1;
                let token = SINGLE_BYTE.get(usize::from(b)).copied().unwrap_or_default();
                self.attrs.push((key, RawValue::Str(Str::Token(token))));
                continue;
            }
            let value = match self.read_item("attribute value")? {
                Item::Str(s) => RawValue::Str(s),
                Item::Jid(jid) => RawValue::Jid(jid),
                Item::Raw(bytes) => RawValue::Str(Self::utf8(value_at + 1, bytes)?),
                // whatsmeow keeps a nil value; an empty string is its closest form and is not re-encoded.
                Item::Nil => RawValue::Str(Str::Token("")),
                Item::List(_) => {
                    return fail(DecodeError::NotAString {
                        at: value_at,
                        what: "attribute value",
                    });
                }
            };
            self.attrs.push((key, value));
        }
        let index = self.nodes.len();
        self.nodes.push(RawNode {
            tag,
            attrs_start: attrs_start as u32,
            attrs_len: attr_count as u32,
            end: 0,
            content: RawContent::None,
        });
        if size % 2 == 0 {
            let content = self.read_content(depth)?;
            if let Some(node) = self.nodes.get_mut(index) {
                node.content = content;
            }
        }
        let end = self.nodes.len() as u32;
        if let Some(node) = self.nodes.get_mut(index) {
            node.end = end;
        }
        Ok(())
    }

    fn read_content(&mut self, depth: usize) -> Res<RawContent<'a>> {
        let at = self.pos;
        Ok(match self.read_item("node content")? {
            Item::Raw(bytes) => RawContent::Bytes(bytes),
            Item::List(len) => {
                if len > MAX_LIST_LEN || len * MIN_NODE_LEN > self.remaining() {
                    return fail(DecodeError::LengthOverrun {
                        at,
                        what: "child list",
                        declared: len,
                        available: self.remaining(),
                    });
                }
                for _ in 0..len {
                    self.read_node(depth + 1)?;
                }
                RawContent::Nodes(len as u32)
            }
            Item::Nil => RawContent::None,
            Item::Str(s) => RawContent::Str(s),
            Item::Jid(jid) => RawContent::Jid(jid),
        })
    }
}
