//! Every case of the shared binary-codec vectors (`tests/data`, schema in the shared `vectors/README.md`):
//! encode, encode_bulk, decode_valid, decode_errors and compressed, checking whatsmeow's behaviour wherever a case
//! carries a quirk flag.

#![allow(clippy::unwrap_used, reason = "test helpers fail loudly on bad vector files")]

use serde_json::Value as Json;
use sha2::{Digest, Sha256};
use whatsapp_binary::{Content, Jid, Node, Value, decode_frame, encode_frame, unpack_frame};

fn load(file: &str) -> Vec<Json> {
    let path = format!("{}/tests/data/{file}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap();
    let json: Json = serde_json::from_str(&text).unwrap();
    json["cases"].as_array().unwrap().clone()
}

fn node(json: &Json) -> Node {
    serde_json::from_value(json.clone()).unwrap()
}

fn quirks(case: &Json) -> Vec<&str> {
    case["quirks"]
        .as_array()
        .map(|q| q.iter().map(|v| v.as_str().unwrap()).collect())
        .unwrap_or_default()
}

fn hex_of(case: &Json, key: &str) -> Option<Vec<u8>> {
    case[key].as_str().map(|h| hex::decode(h).unwrap())
}

/// What whatsmeow's decoder gives for the tree `node`: an empty child list reads back as no content
/// (B-EMPTY-LIST-CONTENT).
fn whatsmeow_decoded(mut node: Node) -> Node {
    node.content = match node.content {
        Content::Nodes(children) if children.is_empty() => Content::None,
        Content::Nodes(children) => Content::Nodes(children.into_iter().map(whatsmeow_decoded).collect()),
        other => other,
    };
    node
}

/// What whatsmeow's encoder writes, read back: no empty attributes (B-EMPTY-ATTR), an empty string content as an
/// empty NIBBLE_8 (B-EMPTY-STRING-CONTENT), raw string contents as bytes.
fn whatsmeow_round_trip(mut node: Node) -> Node {
    node.attrs = node
        .attrs
        .iter()
        .filter(|(_, v)| !v.is_empty_str())
        .map(|(k, v)| (k.to_owned(), v.clone()))
        .collect();
    node.content = match node.content {
        Content::Nodes(children) if children.is_empty() => Content::None,
        Content::Nodes(children) => Content::Nodes(children.into_iter().map(whatsmeow_round_trip).collect()),
        other => other,
    };
    node
}

/// Quirks under which Baileys and whatsmeow write the same bytes.
const SAME_BYTES: [&str; 2] = ["B-JID-SERVER-ONLY", "B-EMPTY-LIST-CONTENT"];

fn check_encode_case(case: &Json) {
    let name = case["name"].as_str().unwrap();
    let input = node(&case["node"]);
    let quirks = quirks(case);
    let ours = encode_frame(&input);
    let same_bytes = quirks.iter().all(|q| SAME_BYTES.contains(q));
    if let Some(expected) = hex_of(case, "hex") {
        if same_bytes {
            assert_eq!(hex::encode(&ours), hex::encode(&expected), "{name}: encoding");
        } else {
            assert_ne!(
                ours, expected,
                "{name}: the quirk {quirks:?} should make whatsmeow's bytes differ"
            );
        }
        // Baileys' bytes decode to `decoded` (or `node`), read the whatsmeow way.
        let expected_tree = case
            .get("decoded")
            .filter(|d| !d.is_null())
            .map(node)
            .unwrap_or_else(|| input.clone());
        let decoded = decode_frame(&expected).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(
            decoded,
            whatsmeow_decoded(expected_tree.clone()),
            "{name}: decoding the vector bytes"
        );
    } else {
        let len = case["encoded_len"].as_u64().unwrap() as usize;
        assert_eq!(ours.len(), len, "{name}: encoded length");
        assert_eq!(
            hex::encode(&ours[..16]),
            case["encoded_prefix_hex"].as_str().unwrap(),
            "{name}: prefix"
        );
        assert_eq!(
            hex::encode(Sha256::digest(&ours)),
            case["encoded_sha256"].as_str().unwrap(),
            "{name}: sha256"
        );
    }
    // Our own bytes decode to what whatsmeow would read back.
    if quirks.contains(&"B-TAG-ZERO") {
        assert!(
            decode_frame(&ours).is_err(),
            "{name}: whatsmeow's f8 00 is not a decodable node"
        );
        return;
    }
    let expected_tree = case
        .get("decoded")
        .filter(|d| !d.is_null())
        .map(node)
        .unwrap_or_else(|| input.clone());
    let mut expected_tree = whatsmeow_round_trip(expected_tree);
    if quirks.contains(&"B-EMPTY-STRING-CONTENT") {
        expected_tree.content = Content::Str("".into());
    }
    let decoded = decode_frame(&ours).unwrap_or_else(|e| panic!("{name}: {e}"));
    assert_eq!(decoded, expected_tree, "{name}: decoding our bytes");
}

#[test]
fn encode_vectors() {
    let cases = load("encode.json");
    assert_eq!(cases.len(), 92);
    cases.iter().for_each(check_encode_case);
}

#[test]
fn encode_bulk_vectors() {
    let cases = load("encode_bulk.json");
    assert_eq!(cases.len(), 3);
    cases.iter().for_each(check_encode_case);
}

#[test]
fn decode_valid_vectors() {
    let cases = load("decode_valid.json");
    assert_eq!(cases.len(), 18);
    for case in &cases {
        let name = case["name"].as_str().unwrap();
        let mut expected = whatsmeow_decoded(node(&case["node"]));
        // Where Baileys' JID string differs, whatsmeow's structure is given by jid_parts or whatsmeow_string.
        let whatsmeow_jid = if let Some(parts) = case.get("jid_parts").filter(|p| p.is_object()) {
            let mut jid = Jid::with_device(
                parts["user"].as_str().unwrap(),
                parts["server"].as_str().unwrap(),
                parts["device"].as_u64().unwrap_or(0) as u16,
            );
            jid.set_integrator(parts["integrator"].as_u64().unwrap_or(0) as u16);
            Some(jid)
        } else {
            case["whatsmeow_string"]
                .as_str()
                .map(|s| s.parse::<Jid>().unwrap())
        };
        if let Some(jid) = whatsmeow_jid {
            expected.attrs.insert("jid", Value::Jid(jid));
        }
        let frame = hex_of(case, "hex").unwrap();
        let decoded = decode_frame(&frame).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(decoded, expected, "{name}");
    }
}

#[test]
fn decode_error_vectors() {
    let cases = load("decode_errors.json");
    assert_eq!(cases.len(), 52);
    for case in &cases {
        let name = case["name"].as_str().unwrap();
        let frame = hex_of(case, "hex").unwrap();
        let result = decode_frame(&frame);
        assert!(
            result.is_err(),
            "{name} ({}): decoded as {:?}",
            case["reason"],
            result
        );
    }
}

#[test]
fn compressed_vectors() {
    let cases = load("compressed.json");
    assert_eq!(cases.len(), 5);
    for case in &cases {
        let name = case["name"].as_str().unwrap();
        let frame = hex_of(case, "frame_hex").unwrap();
        // `uncompressed_*` describe the plain frame: flags byte 00, then the node bytes.
        let mut plain = vec![0x00];
        plain.extend_from_slice(&unpack_frame(&frame).unwrap());
        assert_eq!(
            plain.len() as u64,
            case["uncompressed_len"].as_u64().unwrap(),
            "{name}"
        );
        assert_eq!(
            hex::encode(Sha256::digest(&plain)),
            case["uncompressed_sha256"].as_str().unwrap(),
            "{name}"
        );
        if let Some(hex) = case["uncompressed_hex"].as_str() {
            assert_eq!(hex::encode(&plain), hex, "{name}");
        }
        let expected = case
            .get("decoded")
            .filter(|d| !d.is_null())
            .map(node)
            .unwrap_or_else(|| node(&case["node"]));
        assert_eq!(
            decode_frame(&frame).unwrap(),
            whatsmeow_decoded(expected),
            "{name}"
        );
    }
}
