//! Wire tags and token dictionaries of the binary-node format (protocol-facts §3.10, dictionary version 3).

mod tables;

pub(crate) use tables::{DOUBLE_BYTE, SINGLE_BYTE};

/// Version of the token dictionaries, sent in the connection header (`WA 06 03`).
pub const DICTIONARY_VERSION: u8 = 0x03;

/// An empty list; also a missing value (a nil attribute, a JID without user).
pub(crate) const LIST_EMPTY: u8 = 0x00;
/// First of the four double-byte dictionary tags (`0xec..=0xef`), each followed by an index byte.
pub(crate) const DICTIONARY_0: u8 = 0xec;
/// Last double-byte dictionary tag.
pub(crate) const DICTIONARY_3: u8 = 0xef;
/// A bridged-network JID: user, u16 device, u16 integrator, server `interop`.
pub(crate) const INTEROP_JID: u8 = 0xf5;
/// A Messenger JID: user, u16 device, server `msgr`.
pub(crate) const FB_JID: u8 = 0xf6;
/// A device JID: agent/domain byte, device byte, user.
pub(crate) const AD_JID: u8 = 0xf7;
/// A list with a u8 length.
pub(crate) const LIST_8: u8 = 0xf8;
/// A list with a big-endian u16 length.
pub(crate) const LIST_16: u8 = 0xf9;
/// A user/server JID pair.
pub(crate) const JID_PAIR: u8 = 0xfa;
/// A packed string of `0-9A-F`.
pub(crate) const HEX_8: u8 = 0xfb;
/// Bytes with a u8 length.
pub(crate) const BINARY_8: u8 = 0xfc;
/// Bytes with a 20-bit big-endian length (top 4 bits of the first byte ignored).
pub(crate) const BINARY_20: u8 = 0xfd;
/// Bytes with a big-endian u32 length.
pub(crate) const BINARY_32: u8 = 0xfe;
/// A packed string of `0-9`, `-` and `.`.
pub(crate) const NIBBLE_8: u8 = 0xff;

/// Longest string that NIBBLE_8 or HEX_8 can carry: the length byte holds 7 bits of byte count.
pub(crate) const PACKED_MAX: usize = 127;

/// A token's wire form.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Token {
    /// One byte, 1..=235.
    Single(u8),
    /// `DICTIONARY_0 + dictionary`, then `index`.
    Double(u8, u8),
}

/// The lookup table slot where the search for `bytes` starts: a multiplicative hash of the length and six sampled
/// bytes, the same function `tools/gen_tables.py` laid the table out with.
#[inline]
fn slot(bytes: &[u8]) -> usize {
    let n = bytes.len();
    let at = |i: usize| u64::from(bytes.get(i).copied().unwrap_or(0));
    let key = n as u64
        | at(0) << 8
        | at(n.wrapping_sub(1)) << 16
        | at(n / 2) << 24
        | at(n / 3) << 32
        | at(2 * n / 3) << 40
        | at(n.wrapping_sub(1).wrapping_sub(n / 4)) << 48;
    (key.wrapping_mul(tables::HASH_MUL) >> (64 - tables::HASH_BITS)) as usize
}

/// Longest token string (tokens.json); longer strings skip the lookup.
const LONGEST_TOKEN: usize = 48;

/// Finds the token that encodes `text`, if any (the encoder calls the two halves itself, caching the probe).
#[cfg(test)]
pub(crate) fn lookup(text: &str) -> Option<Token> {
    if might_be_token(text.as_bytes()) {
        probe(text)
    } else {
        None
    }
}

/// A one-load filter on the first byte and the length: `false` means `bytes` is certainly not a token.
#[inline]
pub(crate) fn might_be_token(bytes: &[u8]) -> bool {
    let Some(&first) = bytes.first() else {
        return false;
    };
    let lengths = tables::FIRST_BYTE_LENGTHS
        .get(usize::from(first))
        .copied()
        .unwrap_or(0);
    bytes.len() <= LONGEST_TOKEN && lengths >> bytes.len() & 1 != 0
}

/// Searches the lookup table for `text`.
#[inline]
pub(crate) fn probe(text: &str) -> Option<Token> {
    let bytes = text.as_bytes();
    let mask = tables::LOOKUP.len() - 1;
    let first = slot(bytes);
    // Every token sits at most MAX_PROBE slots after its hash slot, so the probe sequence is bounded.
    for index in first..=first + tables::MAX_PROBE {
        let code = *tables::LOOKUP.get(index & mask)?;
        if code == 0 {
            return None;
        }
        let (token, candidate) = decode_code(code);
        if eq_short(candidate.as_bytes(), bytes) {
            return Some(token);
        }
    }
    None
}

/// Byte-string equality for short strings without a call to memcmp: two overlapping word loads cover 4 to 16 bytes.
#[inline]
fn eq_short(a: &[u8], b: &[u8]) -> bool {
    let n = a.len();
    if n != b.len() {
        return false;
    }
    let word8 = |s: &[u8], at: usize| {
        s.get(at..at + 8)
            .and_then(|w| <[u8; 8]>::try_from(w).ok())
            .map(u64::from_ne_bytes)
    };
    let word4 = |s: &[u8], at: usize| {
        s.get(at..at + 4)
            .and_then(|w| <[u8; 4]>::try_from(w).ok())
            .map(u32::from_ne_bytes)
    };
    match n {
        0..=3 => a.iter().zip(b).all(|(x, y)| x == y),
        4..=7 => word4(a, 0) == word4(b, 0) && word4(a, n - 4) == word4(b, n - 4),
        8..=16 => word8(a, 0) == word8(b, 0) && word8(a, n - 8) == word8(b, n - 8),
        _ => a == b,
    }
}

/// Splits a lookup-table code into the token and its string.
#[inline]
fn decode_code(code: u16) -> (Token, &'static str) {
    if code < 0x100 {
        let index = code as u8;
        (
            Token::Single(index),
            SINGLE_BYTE.get(usize::from(index)).copied().unwrap_or(""),
        )
    } else {
        let dictionary = ((code - 0x100) >> 8) as u8;
        let index = (code & 0xff) as u8;
        (
            Token::Double(dictionary, index),
            double_token(dictionary, index).unwrap_or(""),
        )
    }
}

/// The string of a double-byte token.
#[inline]
pub(crate) fn double_token(dictionary: u8, index: u8) -> Option<&'static str> {
    DOUBLE_BYTE
        .get(usize::from(dictionary))
        .and_then(|table| table.get(usize::from(index)))
        .copied()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The committed tables equal `data/tokens.json`, and every token is found at its own code.
    #[test]
    fn tables_match_json_and_lookup_finds_every_token() {
        let json: serde_json::Value = serde_json::from_str(include_str!("../../data/tokens.json")).unwrap();
        assert_eq!(json["dictionary_version"], 3);
        let single: Vec<&str> = json["single_byte"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
        assert_eq!(single, SINGLE_BYTE);
        for (i, token) in single.iter().enumerate().skip(1) {
            assert_eq!(lookup(token), Some(Token::Single(i as u8)), "{token}");
        }
        for (d, table) in json["double_byte"].as_array().unwrap().iter().enumerate() {
            for (i, token) in table.as_array().unwrap().iter().enumerate() {
                let token = token.as_str().unwrap();
                assert_eq!(DOUBLE_BYTE[d][i], token);
                assert_eq!(lookup(token), Some(Token::Double(d as u8, i as u8)), "{token}");
            }
        }
        let longest = SINGLE_BYTE
            .iter()
            .chain(DOUBLE_BYTE.iter().flatten())
            .map(|t| t.len());
        assert_eq!(longest.max(), Some(LONGEST_TOKEN));
    }

    #[test]
    fn short_equality() {
        for (a, b) in [
            ("", ""),
            ("ab", "ab"),
            ("abcde", "abcde"),
            ("abcdefghijklmnop", "abcdefghijklmnop"),
        ] {
            assert!(eq_short(a.as_bytes(), b.as_bytes()));
        }
        for (a, b) in [
            ("a", ""),
            ("ab", "ac"),
            ("abcde", "abcdf"),
            ("abxde", "abcde"),
            ("abcdefghij", "abcdefghiJ"),
        ] {
            assert!(!eq_short(a.as_bytes(), b.as_bytes()));
        }
        let long = "x".repeat(30);
        assert!(eq_short(long.as_bytes(), long.as_bytes()));
    }

    #[test]
    fn non_tokens_are_not_found() {
        for text in [
            "",
            "15551234567",
            "3EB0ABCDEF",
            "not-a-token",
            "Message",
            "x".repeat(60).as_str(),
        ] {
            assert_eq!(lookup(text), None, "{text}");
        }
    }
}
