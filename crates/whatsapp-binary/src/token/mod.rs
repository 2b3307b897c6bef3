//! Wire tags and token dictionaries of the binary-node format (protocol-facts §3.10, dictionary version 3).

mod lookup;
mod tables;

#[cfg(test)]
pub(crate) use lookup::lookup;
pub(crate) use lookup::{might_be_token, search};
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

impl Token {
    /// The token as one number: 1..=235 for a single-byte token, `0x100 + dictionary * 256 + index` for a
    /// double-byte token (0 is left for "no token").
    #[inline(always)]
    pub(crate) fn to_code(self) -> u32 {
        match self {
            Token::Single(index) => u32::from(index),
            Token::Double(dictionary, index) => 0x100 + u32::from(dictionary) * 256 + u32::from(index),
        }
    }

    /// The inverse of [`to_code`](Self::to_code); `None` for 0.
    #[inline(always)]
    pub(crate) fn from_code(code: u32) -> Option<Token> {
        match code {
            0 => None,
            1..0x100 => Some(Token::Single(code as u8)),
            _ => Some(Token::Double(((code - 0x100) >> 8) as u8, code as u8)),
        }
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
        assert_eq!(longest.max(), Some(lookup::LONGEST_TOKEN));
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
