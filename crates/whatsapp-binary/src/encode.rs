//! Encoding a [`Node`] to its binary form, following whatsmeow's `binary/encoder.go` rules
//! (protocol-facts §3.10): attributes with an empty string value are skipped, strings are written as a token,
//! else NIBBLE_8, else HEX_8, else raw bytes; JIDs pick JID_PAIR, AD_JID, FB_JID or INTEROP_JID by server.

use crate::jid::Jid;
use crate::node::{Content, Node, Value};
use crate::token::{self, Token};

/// Encodes `node` to node bytes (without the frame's flags byte; see [`encode_frame`]).
///
/// Attributes are written in insertion order. Two whatsmeow behaviours are kept on purpose: a node whose tag is
/// `"0"` is written as `f8 00` (an empty list), and an AD_JID device above 255 keeps its low byte.
pub fn encode(node: &Node) -> Vec<u8> {
    let mut out = Vec::with_capacity(initial_capacity(node));
    encode_into(node, &mut out);
    out
}

/// Encodes `node` as an uncompressed frame payload: the flags byte `00` followed by the node bytes
/// (what whatsmeow's `binary.Marshal` returns and what goes into a Noise transport frame).
pub fn encode_frame(node: &Node) -> Vec<u8> {
    let mut out = Vec::with_capacity(initial_capacity(node) + 1);
    out.push(0x00);
    encode_into(node, &mut out);
    out
}

/// Appends the node bytes of `node` to `out`.
pub fn encode_into(node: &Node, out: &mut Vec<u8>) {
    let mut writer = Writer {
        out,
        seen: [Seen::EMPTY; SEEN_SLOTS],
    };
    write_node(&mut writer, node);
}

/// Number of slots in [`Writer::seen`]: enough for the tags, keys and values a stanza repeats without many
/// collisions, small enough (2 KiB) that clearing it is cheap next to encoding a stanza.
const SEEN_SLOTS: usize = 128;

/// The output of one `encode` call, and the token lookups it has already done.
struct Writer<'o> {
    out: &'o mut Vec<u8>,
    /// Lookup results by string address and length, direct-mapped: a stanza with many children repeats the same
    /// tag, key and value strings (200 `participant` nodes each with `jid` and `phone_number`), and most of them
    /// are the same `&'static str` or the same decoded string, so the address identifies the text.
    /// This is sound only within one call: the node tree is borrowed for the whole call, so no string it holds can
    /// be freed or changed, and two live strings with the same address and length have the same bytes.
    seen: [Seen; SEEN_SLOTS],
}

/// One slot of [`Writer::seen`].
#[derive(Clone, Copy)]
struct Seen {
    /// The string's address; 0 (never the address of a string with bytes) marks an empty slot.
    addr: usize,
    /// The string's length.
    len: u32,
    /// The token in [`Token::to_code`] form, 0 for "not a token".
    code: u32,
}

impl Seen {
    const EMPTY: Seen = Seen {
        addr: 0,
        len: 0,
        code: 0,
    };
}

impl Writer<'_> {
    /// The token for `text`, if any, looked up at most once per distinct string in this call.
    #[inline(always)]
    fn token(&mut self, text: &str) -> Option<Token> {
        let bytes = text.as_bytes();
        if !token::might_be_token(bytes) {
            return None;
        }
        let addr = bytes.as_ptr().addr();
        // Multiplicative hash of the address: its top bits pick the slot.
        let index = ((addr as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> (64 - SEEN_SLOTS.ilog2())) as usize;
        let Some(slot) = self.seen.get_mut(index) else {
            return token::search(text);
        };
        // `might_be_token` bounds the length by the longest token, so it fits u32.
        if slot.addr == addr && slot.len == bytes.len() as u32 {
            return Token::from_code(slot.code);
        }
        let found = token::search(text);
        *slot = Seen {
            addr,
            len: bytes.len() as u32,
            code: found.map_or(0, Token::to_code),
        };
        found
    }
}

/// A starting capacity close to the encoded size (byte payloads dominate), so that the output grows at most once.
fn initial_capacity(node: &Node) -> usize {
    16 + 12 * node.attrs.len()
        + match &node.content {
            Content::Bytes(bytes) => bytes.len(),
            Content::Nodes(children) => children.iter().map(initial_capacity).sum(),
            _ => 16,
        }
}

fn write_node(w: &mut Writer<'_>, node: &Node) {
    if node.tag == "0" {
        // whatsmeow writes a node tagged "0" as an empty list (quirk B-TAG-ZERO in the vectors).
        w.out.extend_from_slice(&[token::LIST_8, token::LIST_EMPTY]);
        return;
    }
    let has_content = usize::from(!matches!(node.content, Content::None));
    let most = 1 + 2 * node.attrs.len() + has_content;
    if most < 256 {
        // One pass: write the size as if every attribute were written, then correct it if empty ones were skipped
        // (both sizes fit LIST_8, so the header keeps its length).
        let header = w.out.len();
        write_list_start(w.out, most);
        write_string(w, &node.tag);
        let written = write_attrs(w, node);
        if written != node.attrs.len()
            && let Some(size) = w.out.get_mut(header + 1)
        {
            *size = (1 + 2 * written + has_content) as u8;
        }
    } else {
        let attr_count = node.attrs.iter().filter(|(_, v)| !v.is_empty_str()).count();
        write_list_start(w.out, 1 + 2 * attr_count + has_content);
        write_string(w, &node.tag);
        write_attrs(w, node);
    }
    match &node.content {
        Content::None => {}
        Content::Bytes(bytes) => write_bytes(w.out, bytes),
        Content::Str(s) => write_string(w, s),
        Content::Jid(jid) => write_jid(w, jid),
        Content::Nodes(children) => {
            write_list_start(w.out, children.len());
            for child in children {
                write_node(w, child);
            }
        }
    }
}

/// Writes the attributes with a non-empty value and returns how many.
fn write_attrs(w: &mut Writer<'_>, node: &Node) -> usize {
    let mut written = 0;
    for (key, value) in node.attrs.iter() {
        match value {
            Value::Str(s) if s.is_empty() => continue,
            Value::Str(s) => {
                write_string(w, key);
                write_string(w, s);
            }
            Value::Jid(jid) => {
                write_string(w, key);
                write_jid(w, jid);
            }
        }
        written += 1;
    }
    written
}

fn write_list_start(out: &mut Vec<u8>, size: usize) {
    if size == 0 {
        out.push(token::LIST_EMPTY);
    } else if size < 256 {
        out.extend_from_slice(&[token::LIST_8, size as u8]);
    } else {
        // More than 65535 items cannot be represented; the count wraps as in whatsmeow.
        let [hi, lo] = (size as u16).to_be_bytes();
        out.extend_from_slice(&[token::LIST_16, hi, lo]);
    }
}

fn write_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    let len = bytes.len();
    if len < 0x100 {
        out.extend_from_slice(&[token::BINARY_8, len as u8]);
    } else if len < 0x10_0000 {
        out.extend_from_slice(&[
            token::BINARY_20,
            ((len >> 16) & 0x0f) as u8,
            (len >> 8) as u8,
            len as u8,
        ]);
    } else {
        out.push(token::BINARY_32);
        out.extend_from_slice(&(len as u32).to_be_bytes());
    }
    out.extend_from_slice(bytes);
}

/// Which packed form a string fits, if any.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Packing {
    Nibble,
    Hex,
}

/// Per byte: bit 0 set if NIBBLE_8 can carry it (`0-9 - .`), bit 1 if HEX_8 can (`0-9 A-F`).
static CLASS: [u8; 256] = {
    let mut table = [0u8; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        let digit = c.is_ascii_digit();
        let nibble = digit || c == b'-' || c == b'.';
        let hex = digit || (c >= b'A' && c <= b'F');
        table[b] = (nibble as u8) | ((hex as u8) << 1);
        b += 1;
    }
    table
};

/// Per byte: its 4-bit code in NIBBLE_8 (`-` 10, `.` 11) and in HEX_8 (`A-F` 10-15); 15 (padding) otherwise.
static NIBBLE_CODE: [u8; 256] = code_table(false);
static HEX_CODE: [u8; 256] = code_table(true);

const fn code_table(hex: bool) -> [u8; 256] {
    let mut table = [0x0fu8; 256];
    let mut c = b'0';
    while c <= b'9' {
        table[c as usize] = c - b'0';
        c += 1;
    }
    if hex {
        let mut c = b'A';
        while c <= b'F' {
            table[c as usize] = c - b'A' + 10;
            c += 1;
        }
    } else {
        table[b'-' as usize] = 10;
        table[b'.' as usize] = 11;
    }
    table
}

#[inline]
fn packing(text: &[u8]) -> Option<Packing> {
    if text.len() > token::PACKED_MAX {
        return None;
    }
    // No early exit: packed candidates (numbers, ids) are the common case, and a branch-free loop runs fastest.
    let class = text.iter().fold(0b11, |class, &b| class & CLASS[usize::from(b)]);
    if class == 0 {
        return None;
    }
    if class & 1 != 0 {
        Some(Packing::Nibble)
    } else {
        Some(Packing::Hex)
    }
}

fn write_packed(out: &mut Vec<u8>, packing: Packing, text: &[u8]) {
    let (tag, codes) = match packing {
        Packing::Nibble => (token::NIBBLE_8, &NIBBLE_CODE),
        Packing::Hex => (token::HEX_8, &HEX_CODE),
    };
    let odd = text.len() % 2;
    let packed_len = text.len() / 2 + odd;
    // The output grows by the largest packed form (at most 127 characters, checked by `packing`, make 64 bytes after
    // the two header bytes) in one fixed-size append, which compiles to a few vector stores; the bytes are then
    // written in place and the excess cut off. Assembling on the stack instead and copying would reload freshly
    // stored bytes with wide loads, which stalls on store forwarding.
    let start = out.len();
    out.extend_from_slice(&[0u8; 2 + token::PACKED_MAX.div_ceil(2)]);
    let packed = out.get_mut(start..).unwrap_or_default();
    if let [tag_slot, len_slot, packed @ ..] = packed {
        *tag_slot = tag;
        *len_slot = (packed_len as u8) | ((odd as u8) << 7);
        let pairs = text.chunks_exact(2);
        let rest = pairs.remainder();
        let mut slots = packed.iter_mut();
        for (pair, slot) in pairs.zip(slots.by_ref()) {
            *slot = codes[usize::from(pair[0])] << 4 | codes[usize::from(pair[1])];
        }
        if let ([last], Some(slot)) = (rest, slots.next()) {
            *slot = codes[usize::from(*last)] << 4 | 0x0f;
        }
    }
    out.truncate(start + 2 + packed_len);
}

/// Writes a string: a token when the dictionaries have it, else packed or raw ([`write_untokenized`]).
///
/// Inlined at every call site: tags, keys and most values are tokens, and for them the lookup and one push are the
/// whole cost, so a call frame would be a large part of it.
#[inline(always)]
fn write_string(w: &mut Writer<'_>, text: &str) {
    let token = w.token(text);
    let out = &mut *w.out;
    match token {
        Some(Token::Single(index)) => out.push(index),
        Some(Token::Double(dictionary, index)) => {
            out.extend_from_slice(&[token::DICTIONARY_0 + dictionary, index]);
        }
        None => write_untokenized(out, text.as_bytes()),
    }
}

/// Writes a string that is not a token: NIBBLE_8 or HEX_8 when it fits, else raw bytes.
#[inline(never)]
fn write_untokenized(out: &mut Vec<u8>, text: &[u8]) {
    match packing(text) {
        Some(packing) => write_packed(out, packing, text),
        None => write_bytes(out, text),
    }
}

/// The wire form a JID takes, decided by one match on its server.
enum JidForm {
    /// AD_JID with this agent/domain byte.
    Device(u8),
    /// FB_JID.
    Messenger,
    /// INTEROP_JID.
    Interop,
    /// JID_PAIR (a device number, if any, is dropped as in whatsmeow).
    Pair,
}

fn jid_form(jid: &Jid) -> JidForm {
    let device = jid.device() > 0;
    match jid.server() {
        Jid::DEFAULT_USER_SERVER if device => JidForm::Device(Jid::WHATSAPP_DOMAIN),
        Jid::LID_SERVER if device => JidForm::Device(Jid::LID_DOMAIN),
        Jid::HOSTED_SERVER => JidForm::Device(Jid::HOSTED_DOMAIN),
        Jid::HOSTED_LID_SERVER => JidForm::Device(Jid::HOSTED_LID_DOMAIN),
        Jid::MESSENGER_SERVER => JidForm::Messenger,
        Jid::INTEROP_SERVER => JidForm::Interop,
        _ => JidForm::Pair,
    }
}

fn write_jid(w: &mut Writer<'_>, jid: &Jid) {
    match jid_form(jid) {
        JidForm::Device(domain) => {
            w.out
                .extend_from_slice(&[token::AD_JID, domain, jid.device() as u8]);
            write_string(w, jid.user());
        }
        JidForm::Messenger => {
            w.out.push(token::FB_JID);
            write_string(w, jid.user());
            w.out.extend_from_slice(&jid.device().to_be_bytes());
            write_string(w, jid.server());
        }
        JidForm::Interop => {
            w.out.push(token::INTEROP_JID);
            write_string(w, jid.user());
            w.out.extend_from_slice(&jid.device().to_be_bytes());
            w.out.extend_from_slice(&jid.integrator().to_be_bytes());
            write_string(w, jid.server());
        }
        JidForm::Pair => {
            w.out.push(token::JID_PAIR);
            if jid.user().is_empty() {
                w.out.push(token::LIST_EMPTY);
            } else {
                write_string(w, jid.user());
            }
            write_string(w, jid.server());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(node: Node, hex: &str) {
        assert_eq!(hex::encode(encode(&node)), hex, "{node}");
    }

    /// whatsmeow's bytes for the cases where the vectors' producer (Baileys) differs (README quirks table).
    #[test]
    fn whatsmeow_quirk_bytes() {
        // B-TAG-ZERO.
        check(Node::new("0"), "f800");
        // B-EMPTY-ATTR: the empty attribute is not written nor counted.
        check(Node::new("t").attr("v", ""), "f8011a");
        // B-EMPTY-STRING-CONTENT: an empty NIBBLE_8.
        check(Node::new("t").text(""), "f8021aff00");
        // B-JID-DEVICE0: JID_PAIR.
        let jid: Jid = "15551234567:0@s.whatsapp.net".parse().unwrap();
        check(Node::new("item").attr("jid", jid), "f8033f0cfaff8615551234567f03");
        // B-JID-HOSTED-NODEVICE: AD_JID with domain 0x80.
        check(
            Node::new("item").attr("jid", Jid::new("1555", "hosted")),
            "f8033f0cf78000ff021555",
        );
        // B-JID-MSGR-INTEROP: FB_JID and INTEROP_JID.
        check(
            Node::new("item").attr("jid", Jid::new("100012345678901", "msgr")),
            "f8033f0cf6ff88100012345678901f0000cc",
        );
        check(
            Node::new("item").attr("jid", Jid::new("12345", "interop")),
            "f8033f0cf5ff8312345f00000000fc07696e7465726f70",
        );
        // B-JID-DEVICE-OTHER-SERVER: JID_PAIR, device dropped.
        check(
            Node::new("item").attr("jid", Jid::with_device("123-456", "g.us", 3)),
            "f8033f0cfaff84123a456f1c",
        );
    }

    /// The packing agrees with a character-by-character reference for every length and character.
    #[test]
    fn packed_strings_match_reference() {
        fn reference(alphabet: &[u8], text: &[u8]) -> Vec<u8> {
            let code = |c: u8| alphabet.iter().position(|&a| a == c).unwrap() as u8;
            let mut out = vec![(text.len().div_ceil(2) as u8) | ((text.len() % 2) as u8) << 7];
            for pair in text.chunks(2) {
                out.push(code(pair[0]) << 4 | pair.get(1).map_or(0x0f, |&c| code(c)));
            }
            out
        }
        let cases: [(&[u8], u8, Packing); 2] = [
            (b"0123456789-.", token::NIBBLE_8, Packing::Nibble),
            (b"0123456789ABCDEF", token::HEX_8, Packing::Hex),
        ];
        for (alphabet, tag, expected) in cases {
            for len in 1..=token::PACKED_MAX {
                let text: Vec<u8> = (0..len)
                    .map(|i| alphabet[(i * 7 + len) % alphabet.len()])
                    .collect();
                // Strings of digits only pack as NIBBLE_8.
                if text.iter().all(u8::is_ascii_digit) {
                    continue;
                }
                assert!(packing(&text) == Some(expected), "{text:?}");
                let mut out = vec![0xaa];
                write_packed(&mut out, expected, &text);
                assert_eq!(out[0], 0xaa);
                assert_eq!(out[1], tag);
                assert_eq!(
                    out[2..],
                    reference(alphabet, &text),
                    "{}",
                    String::from_utf8_lossy(&text)
                );
            }
        }
    }

    /// Strings that share an address but differ in length (prefixes of one static string) are looked up apart, and
    /// many repeated strings (more than the lookup cache holds) encode the same as fresh copies of them.
    #[test]
    fn lookup_cache_tells_strings_apart() {
        static TEXT: &str = "participants";
        let shared: Vec<&'static str> = vec![TEXT, &TEXT[..11], &TEXT[..4], &TEXT[..1], &TEXT[..9], TEXT];
        let mut cached = Node::new(TEXT);
        let mut fresh = Node::new(TEXT.to_owned());
        for (i, text) in shared.iter().enumerate() {
            cached.attrs.push(*text, *text);
            fresh.attrs.push(text.to_string(), text.to_string());
            cached.attrs.push(format!("k{i}"), *text);
            fresh.attrs.push(format!("k{i}"), text.to_string());
        }
        let many: Vec<String> = (0..300).map(|i| format!("item{}", i % 150)).collect();
        let children: Vec<Node> = many
            .iter()
            .map(|k| Node::new("item").attr("id", "0").attr(k.clone(), "participant"))
            .collect();
        let cached = cached.children(children.clone());
        let fresh = fresh.children(children.iter().map(|c| {
            let mut copy = Node::new(c.tag.to_string());
            for (k, v) in c.attrs.iter() {
                copy.attrs.push(k.to_owned(), v.to_string());
            }
            copy
        }));
        assert_eq!(encode(&cached), encode(&fresh));
        let decoded = crate::decode(&encode(&cached)).unwrap();
        assert_eq!(decoded.attrs.len(), 2 * shared.len());
        assert_eq!(
            decoded.attr_value("k1").and_then(Value::as_str),
            Some("participant")
        );
        assert_eq!(decoded.attr_value("k2").and_then(Value::as_str), Some("part"));
    }

    /// Skipped empty attributes shrink the size in the header, on both the LIST_8 and the LIST_16 path.
    #[test]
    fn empty_attributes_are_not_counted() {
        for count in [3usize, 200] {
            let mut node = Node::new("t");
            for i in 0..count {
                node.attrs.push(
                    format!("k{i}"),
                    if i == 1 { String::new() } else { i.to_string() },
                );
            }
            let decoded = crate::decode(&encode(&node)).unwrap();
            assert_eq!(decoded.attrs.len(), count - 1);
            assert!(decoded.attr_value("k1").is_none());
        }
    }
}
