//! Hostile and malformed inputs beyond the vectors: the limits (depth, list length, sizes) and the context every
//! error carries.

#![allow(clippy::unwrap_used, reason = "test helpers fail loudly")]

use whatsapp_binary::{DecodeError, MAX_DEPTH, decode, decode_frame};

/// Decodes `hex` (node bytes) and checks the error's display text contains `expected`.
fn check(hex: &str, expected: &str) {
    let bytes: Vec<u8> = (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
        .collect();
    match decode(&bytes) {
        Ok(node) => panic!("{hex} decoded as {node}"),
        Err(error) => assert!(
            error.to_string().contains(expected),
            "{hex}: {error} does not contain {expected:?}"
        ),
    }
}

/// `depth` nodes `<t>` each holding the next one.
fn nested(depth: usize) -> Vec<u8> {
    let mut bytes = Vec::new();
    for _ in 0..depth - 1 {
        bytes.extend_from_slice(&[0xf8, 0x02, 0x1a, 0xf8, 0x01]);
    }
    bytes.extend_from_slice(&[0xf8, 0x01, 0x1a]);
    bytes
}

#[test]
fn depth_limit() {
    assert!(decode(&nested(MAX_DEPTH)).is_ok());
    assert!(matches!(
        decode(&nested(MAX_DEPTH + 1)),
        Err(DecodeError::TooDeep { .. })
    ));
    // Far deeper than the limit: rejected without exhausting the stack.
    assert!(decode(&nested(100_000)).is_err());
}

#[test]
fn length_fields_cannot_outrun_the_input() {
    // LIST_16 promising 65535 children with 3 bytes left: refused before reserving anything.
    check(
        "f80271f9ffff f8011a".replace(' ', "").as_str(),
        "child list at byte 3 declares 65535",
    );
    // LIST_8 promising 200 attributes.
    check("f8ff1a0304", "node attributes at byte 0 declares 127");
    // BINARY_32 of 4 GiB.
    check("f80237feffffffff00", "BINARY_32 at byte 3 declares 4294967295");
    check("f80237fd0fffff00", "BINARY_20 at byte 3 declares 1048575");
}

#[test]
fn errors_name_the_position_and_item() {
    check(
        "f8021af8",
        "unexpected end of input at byte 4 while reading list size",
    );
    check(
        "f8031a51",
        "node attributes at byte 0 declares 1, but only 1 bytes remain",
    );
    check(
        "f8031af051",
        "invalid byte 0xf0 at byte 3 where attribute key was expected",
    );
    check("f80119f8", "1 bytes left over after the node");
    check("f8031a51fc02c328", "string at byte 5 is not valid UTF-8");
    check(
        "f8031a51ff02123c",
        "invalid packed string at byte 4: invalid digit",
    );
    // A padding nibble in the middle of a packed string is refused (whatsmeow would produce a NUL character).
    check("f8031a51ff021f34", "invalid packed string");
    check("f8031a51f8011a", "attribute value at byte 4 is not a string");
    check("f801fa0003", "node tag at byte 2 is not a string");
    check("f8033f0cfa0000", "JID_PAIR without server");
}

#[test]
fn frames() {
    assert_eq!(decode_frame(&[]).unwrap_err(), DecodeError::EmptyFrame);
    assert!(matches!(
        decode_frame(&[0x02, 0x78, 0x9c]),
        Err(DecodeError::Zlib { .. })
    ));
}
