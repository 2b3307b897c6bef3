//! String-to-token lookup for the encoder: an open-addressing table laid out at compile time from the dictionaries.
//!
//! A string of 1 to 16 bytes is fully described by its length and two little-endian words (overlapping loads of its
//! first and last bytes), so a table slot stores those words inline: one hash of the words, usually one slot, and a
//! comparison of two integers decide the lookup without following a pointer to the token text.
//! Longer tokens (about one in seven) are confirmed against the dictionary text after the words match.

use super::{DOUBLE_BYTE, SINGLE_BYTE, Token};

/// One table slot: the words and length of a token and its wire code.
#[derive(Clone, Copy)]
struct Slot {
    /// First bytes of the token (see [`words`]).
    head: u64,
    /// Last bytes of the token, or 0 for tokens of at most 7 bytes.
    tail: u64,
    /// `code << 8 | length`; 0 marks an empty slot (no token is empty).
    /// The code is 1..=235 for a single-byte token and `0x100 + dictionary * 256 + index` for a double-byte token.
    meta: u32,
}

impl Slot {
    const EMPTY: Slot = Slot {
        head: 0,
        tail: 0,
        meta: 0,
    };
}

/// log2 of the table size: 4096 slots for the 1259 tokens (a third full) keep probe sequences short.
const BITS: u32 = 12;
const SIZE: usize = 1 << BITS;
const MASK: usize = SIZE - 1;
/// Constants mixed into the two words before the multiply, so that neither factor is small or zero
/// (the 64-bit golden ratio and a prime from wyhash).
const SEED_HEAD: u64 = 0x9E37_79B9_7F4A_7C15;
const SEED_TAIL: u64 = 0xE703_7ED1_A0B4_28DB;

/// Longest token (tokens.json); longer strings skip the lookup.
pub(crate) const LONGEST_TOKEN: usize = 48;

/// The table and the longest probe sequence it needs, computed by the compiler from the dictionaries.
static TABLE: ([Slot; SIZE], usize) = build();

/// The code (see [`Token::to_code`]) of each one-character token by its byte, 0 for none: one-character strings
/// (`t`, `v`, digits) are frequent and need no hash.
static ONE_CHAR: [u16; 256] = one_char_codes();

/// For each first byte, the set of lengths of the tokens starting with it: a one-load filter that turns most
/// non-token strings (numbers, ids, names) away before hashing.
static FIRST_BYTE_LENGTHS: [u64; 256] = first_byte_lengths();

#[inline(always)]
fn load4(bytes: &[u8], at: usize) -> u64 {
    bytes
        .get(at..at + 4)
        .and_then(|w| <[u8; 4]>::try_from(w).ok())
        .map_or(0, |w| u64::from(u32::from_le_bytes(w)))
}

#[inline(always)]
fn load8(bytes: &[u8], at: usize) -> u64 {
    bytes
        .get(at..at + 8)
        .and_then(|w| <[u8; 8]>::try_from(w).ok())
        .map_or(0, u64::from_le_bytes)
}

/// The two words of `bytes` (1 to 48 bytes long): together with the length they identify a string of up to 16 bytes.
///
/// 1-3 bytes: first, middle and last byte; 4-7: first and last four bytes; 8 and more: first and last eight bytes.
#[inline(always)]
fn words(bytes: &[u8]) -> (u64, u64) {
    let n = bytes.len();
    match n {
        0 => (0, 0),
        1..=3 => {
            let at = |i: usize| u64::from(bytes.get(i).copied().unwrap_or(0));
            (at(0) | at(n / 2) << 8 | at(n - 1) << 16, 0)
        }
        4..=7 => (load4(bytes, 0) | load4(bytes, n - 4) << 32, 0),
        _ => (load8(bytes, 0), load8(bytes, n - 8)),
    }
}

/// [`words`] for the compiler, byte by byte.
const fn const_words(bytes: &[u8]) -> (u64, u64) {
    const fn le(bytes: &[u8], at: usize, len: usize) -> u64 {
        let mut word = 0u64;
        let mut i = 0;
        while i < len {
            word |= (bytes[at + i] as u64) << (8 * i);
            i += 1;
        }
        word
    }
    let n = bytes.len();
    if n == 0 {
        (0, 0)
    } else if n <= 3 {
        (
            bytes[0] as u64 | (bytes[n / 2] as u64) << 8 | (bytes[n - 1] as u64) << 16,
            0,
        )
    } else if n <= 7 {
        (le(bytes, 0, 4) | le(bytes, n - 4, 4) << 32, 0)
    } else {
        (le(bytes, 0, 8), le(bytes, n - 8, 8))
    }
}

/// The slot where the search for a string with these words and length starts: a folded 64x64->128-bit multiply
/// (one instruction on 64-bit targets) mixes every input bit into the top bits that pick the slot.
#[inline(always)]
const fn slot(head: u64, tail: u64, len: usize) -> usize {
    let product = (head ^ SEED_HEAD) as u128 * (tail ^ SEED_TAIL ^ len as u64) as u128;
    let folded = product as u64 ^ (product >> 64) as u64;
    (folded >> (64 - BITS)) as usize
}

const fn build() -> ([Slot; SIZE], usize) {
    const fn insert(table: &mut [Slot; SIZE], longest_probe: &mut usize, text: &str, code: u32) {
        let bytes = text.as_bytes();
        assert!(!bytes.is_empty() && bytes.len() <= LONGEST_TOKEN);
        let (head, tail) = const_words(bytes);
        let start = slot(head, tail, bytes.len());
        let mut probe = 0;
        while table[(start + probe) & MASK].meta != 0 {
            probe += 1;
        }
        table[(start + probe) & MASK] = Slot {
            head,
            tail,
            meta: code << 8 | bytes.len() as u32,
        };
        if probe > *longest_probe {
            *longest_probe = probe;
        }
    }
    let mut table = [Slot::EMPTY; SIZE];
    let mut longest_probe = 0;
    let mut index = 1;
    while index < SINGLE_BYTE.len() {
        insert(&mut table, &mut longest_probe, SINGLE_BYTE[index], index as u32);
        index += 1;
    }
    let mut dictionary = 0;
    while dictionary < DOUBLE_BYTE.len() {
        let mut index = 0;
        while index < DOUBLE_BYTE[dictionary].len() {
            let code = 0x100 + (dictionary * 256 + index) as u32;
            insert(
                &mut table,
                &mut longest_probe,
                DOUBLE_BYTE[dictionary][index],
                code,
            );
            index += 1;
        }
        dictionary += 1;
    }
    (table, longest_probe)
}

const fn one_char_codes() -> [u16; 256] {
    let mut codes = [0u16; 256];
    let (table, _) = &TABLE;
    let mut slot = 0;
    while slot < SIZE {
        let entry = table[slot];
        if entry.meta & 0xff == 1 {
            codes[entry.head as u8 as usize] = (entry.meta >> 8) as u16;
        }
        slot += 1;
    }
    codes
}

const fn first_byte_lengths() -> [u64; 256] {
    const fn add(lengths: &mut [u64; 256], text: &str) {
        let bytes = text.as_bytes();
        lengths[bytes[0] as usize] |= 1 << bytes.len();
    }
    let mut lengths = [0u64; 256];
    let mut index = 1;
    while index < SINGLE_BYTE.len() {
        add(&mut lengths, SINGLE_BYTE[index]);
        index += 1;
    }
    let mut dictionary = 0;
    while dictionary < DOUBLE_BYTE.len() {
        let mut index = 0;
        while index < DOUBLE_BYTE[dictionary].len() {
            add(&mut lengths, DOUBLE_BYTE[dictionary][index]);
            index += 1;
        }
        dictionary += 1;
    }
    lengths
}

/// Finds the token that encodes `text`, if any.
#[cfg(test)]
pub(crate) fn lookup(text: &str) -> Option<Token> {
    if might_be_token(text.as_bytes()) {
        search(text)
    } else {
        None
    }
}

/// A one-load filter on the first byte and the length: `false` means `bytes` is certainly not a token (this also
/// turns away the empty string and strings longer than every token).
#[inline(always)]
pub(crate) fn might_be_token(bytes: &[u8]) -> bool {
    let Some(&first) = bytes.first() else {
        return false;
    };
    let lengths = FIRST_BYTE_LENGTHS.get(usize::from(first)).copied().unwrap_or(0);
    bytes.len() <= LONGEST_TOKEN && lengths >> bytes.len() & 1 != 0
}

/// Searches the table for `text` (call [`might_be_token`] first: it is the cheap half of the answer).
#[inline(always)]
pub(crate) fn search(text: &str) -> Option<Token> {
    let bytes = text.as_bytes();
    let n = bytes.len();
    if let [byte] = bytes {
        return Token::from_code(u32::from(ONE_CHAR.get(usize::from(*byte)).copied().unwrap_or(0)));
    }
    let (head, tail) = words(bytes);
    let (table, longest_probe) = &TABLE;
    let start = slot(head, tail, n);
    for probe in 0..=*longest_probe {
        let entry = table.get((start + probe) & MASK)?;
        if entry.meta == 0 {
            return None;
        }
        if entry.head == head && entry.tail == tail && (entry.meta & 0xff) as usize == n {
            let token = Token::from_code(entry.meta >> 8)?;
            // Up to 16 bytes the words are the whole string; longer tokens are confirmed on their text (two long
            // tokens may share their first and last eight bytes, so a mismatch goes on probing).
            if n <= 16 || token_text(token) == Some(text) {
                return Some(token);
            }
        }
    }
    None
}

/// The text of a token.
fn token_text(token: Token) -> Option<&'static str> {
    match token {
        Token::Single(index) => SINGLE_BYTE.get(usize::from(index)).copied(),
        Token::Double(dictionary, index) => super::double_token(dictionary, index),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runtime_words_equal_compile_time_words() {
        let long = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFGHIJKL";
        for n in 0..=LONGEST_TOKEN {
            let bytes = &long.as_bytes()[..n];
            assert_eq!(words(bytes), const_words(bytes), "length {n}");
        }
    }

    #[test]
    fn probe_sequences_are_short() {
        assert!(TABLE.1 <= 8, "longest probe {}", TABLE.1);
    }

    /// Strings that share words or a prefix with a long token are not mistaken for it.
    #[test]
    fn near_misses_are_not_tokens() {
        let long = SINGLE_BYTE
            .iter()
            .find(|t| t.len() > 16)
            .copied()
            .unwrap_or_default();
        assert!(lookup(long).is_some());
        let mut altered = long.as_bytes().to_vec();
        altered[10] ^= 0x20;
        let altered = String::from_utf8(altered).unwrap();
        assert_eq!(lookup(&altered), None);
        assert_eq!(lookup(&long[..long.len() - 1]), None);
    }
}
