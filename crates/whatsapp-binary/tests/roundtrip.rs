//! Property tests: random node trees survive encode/decode unchanged (through the owned, shared and tree decoders),
//! and arbitrary or mutated bytes never make the decoder panic.

use bytes::Bytes;
use proptest::prelude::*;
use whatsapp_binary::{
    Content, Jid, Node, NodeTree, Value, decode, decode_frame, decode_shared, encode, encode_frame,
};

/// Tokens, packed-looking strings and raw words, so that every string rule is exercised.
fn word() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(vec![
            "iq",
            "type",
            "get",
            "result",
            "message",
            "id",
            "enc",
            "v",
            "participant",
            "to"
        ])
        .prop_map(str::to_owned),
        "[0-9.-]{1,20}",
        "[0-9A-F]{1,20}",
        "[a-z_]{1,12}",
    ]
    // Tag "0" is written as an empty list by whatsmeow's rules and cannot round-trip.
    .prop_filter("not the tag 0", |s| s != "0")
}

/// Strings that decode back as strings when they are contents: tokens and packed strings (raw strings decode as
/// bytes).
fn content_text() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(vec!["text", "media", "available", "composing"]).prop_map(str::to_owned),
        "[0-9.-]{0,30}",
        "[0-9A-F]{1,30}",
    ]
}

fn jid() -> impl Strategy<Value = Jid> {
    let user = "[1-9][0-9]{0,14}";
    prop_oneof![
        (
            user,
            prop::sample::select(vec![
                "s.whatsapp.net",
                "lid",
                "g.us",
                "broadcast",
                "newsletter",
                "c.us",
                "bot"
            ])
        )
            .prop_map(|(u, s)| Jid::new(u, s)),
        (
            user,
            prop::sample::select(vec!["s.whatsapp.net", "lid", "hosted", "hosted.lid"]),
            1u16..=255
        )
            .prop_map(|(u, s, d)| Jid::with_device(u, s, d)),
        (user, any::<u16>()).prop_map(|(u, d)| Jid::messenger(u, d)),
        (user, any::<u16>(), any::<u16>()).prop_map(|(u, d, i)| Jid::interop(u, d, i)),
        prop::sample::select(vec!["s.whatsapp.net", "g.us"]).prop_map(Jid::server_only),
        Just(Jid::status_broadcast()),
        "[1-9][0-9]{3}-[0-9]{4}".prop_map(|u| Jid::new(u, Jid::GROUP_SERVER)),
    ]
}

fn value() -> impl Strategy<Value = Value> {
    prop_oneof![
        word().prop_map(Value::from),
        // Any non-empty UTF-8 (empty values are not written).
        "\\PC{1,40}".prop_map(Value::from),
        jid().prop_map(Value::Jid),
    ]
}

fn leaf() -> impl Strategy<Value = Node> {
    let content = prop_oneof![
        Just(Content::None),
        prop::collection::vec(any::<u8>(), 0..300).prop_map(|b| Content::Bytes(Bytes::from(b))),
        content_text().prop_map(|s| Content::Str(s.into())),
        jid().prop_map(Content::Jid),
    ];
    (word(), prop::collection::vec((word(), value()), 0..5), content).prop_map(|(tag, attrs, content)| {
        let mut node = Node::new(tag);
        for (key, value) in attrs {
            node.attrs.insert(key, value);
        }
        node.content(content)
    })
}

fn tree() -> impl Strategy<Value = Node> {
    leaf().prop_recursive(5, 64, 6, |inner| {
        (leaf(), prop::collection::vec(inner, 1..6)).prop_map(|(node, children)| node.children(children))
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn trees_round_trip(node in tree()) {
        let bytes = encode(&node);
        prop_assert_eq!(&decode(&bytes).unwrap(), &node);
        let shared = Bytes::from(bytes.clone());
        prop_assert_eq!(&decode_shared(&shared).unwrap(), &node);
        let tree = NodeTree::parse(&bytes).unwrap();
        prop_assert_eq!(&tree.root().to_node(), &node);
        prop_assert_eq!(&decode_frame(&encode_frame(&node)).unwrap(), &node);
    }

    #[test]
    fn random_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        let _ = decode(&bytes);
        let _ = decode_frame(&bytes);
    }

    #[test]
    fn mutated_encodings_never_panic(node in tree(), edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..6)) {
        let mut bytes = encode(&node);
        for (at, byte) in edits {
            let i = at.index(bytes.len());
            bytes[i] = byte;
        }
        let _ = decode(&bytes);
    }

    #[test]
    fn every_strict_prefix_is_an_error(node in tree(), cut in any::<prop::sample::Index>()) {
        let bytes = encode(&node);
        let end = cut.index(bytes.len());
        prop_assert!(decode(&bytes[..end]).is_err());
    }
}
