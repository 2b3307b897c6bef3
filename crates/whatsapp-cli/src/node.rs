//! `wa node decode|encode`: binary stanzas to and from the JSON form of the project's binary test vectors
//! (`{"tag", "attrs", "content"}`, see `whatsapp-binary`'s feature `serde`), for protocol debugging.

use std::io::Read as _;

use anyhow::Context as _;
use whatsapp_binary::{Node, decode_frame, encode_frame};

use crate::failure::fix;

/// Prints the JSON form of the frame payload in `hex_text` (flags byte first; zlib-compressed frames inflate).
pub(crate) fn decode(hex_text: &str) -> anyhow::Result<()> {
    println!("{}", decode_to_json(&argument(hex_text)?)?);
    Ok(())
}

/// Prints the uncompressed frame payload, in hex, of the node given as JSON.
pub(crate) fn encode(json: &str) -> anyhow::Result<()> {
    println!("{}", encode_to_hex(&argument(json)?)?);
    Ok(())
}

/// The argument itself, or stdin's text for `-`.
fn argument(text: &str) -> anyhow::Result<String> {
    if text != "-" {
        return Ok(text.to_owned());
    }
    let mut input = String::new();
    std::io::stdin()
        .read_to_string(&mut input)
        .context("reading stdin")?;
    Ok(input)
}

/// Hex (whitespace and a `0x` prefix allowed) to pretty JSON.
pub(crate) fn decode_to_json(hex_text: &str) -> anyhow::Result<String> {
    let compact: String = hex_text.chars().filter(|c| !c.is_whitespace()).collect();
    let compact = compact.strip_prefix("0x").unwrap_or(&compact);
    let bytes = hex::decode(compact).map_err(|error| {
        fix(format!(
            "the input is not hex ({error}); give the frame payload in hex, flags byte first, like 00f80156"
        ))
    })?;
    let node = decode_frame(&bytes).map_err(|error| {
        fix(format!(
            "the bytes are not a binary node ({error}); give a whole frame payload, flags byte (00 or 02) first"
        ))
    })?;
    Ok(serde_json::to_string_pretty(&node)?)
}

/// JSON to hex.
pub(crate) fn encode_to_hex(json: &str) -> anyhow::Result<String> {
    let node: Node = serde_json::from_str(json).map_err(|error| {
        fix(format!(
            "the input is not a node in JSON ({error}); give {{\"tag\": \"iq\", \"attrs\": {{}}, \"content\": null}}"
        ))
    })?;
    Ok(hex::encode(encode_frame(&node)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ping_round_trip() {
        let json = r#"{"tag":"ping","attrs":{},"content":null}"#;
        assert_eq!(encode_to_hex(json).unwrap(), "00f80156");
        let decoded: serde_json::Value =
            serde_json::from_str(&decode_to_json("0x00 f8 01 56").unwrap()).unwrap();
        assert_eq!(decoded, serde_json::from_str::<serde_json::Value>(json).unwrap());
    }

    #[test]
    fn bad_input_is_a_fix() {
        for error in [
            decode_to_json("zz").unwrap_err(),
            decode_to_json("").unwrap_err(),
            decode_to_json("00f8").unwrap_err(),
            encode_to_hex("{").unwrap_err(),
            encode_to_hex(r#"{"tag": 5}"#).unwrap_err(),
        ] {
            assert!(error.downcast_ref::<crate::failure::Fix>().is_some(), "{error}");
        }
    }
}
