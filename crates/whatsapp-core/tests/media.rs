//! Media encryption against the shared vectors (`tests/data/media.json`): key expansion for every media type,
//! encryption byte for byte at every size, decryption back, chunked streaming equal to the one-shot form, and the
//! tampered cases refused.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use serde_json::Value;
use whatsapp_core::media::{self, MediaDecryptor, MediaEncryptor, MediaError, MediaKeys, MediaType};

fn vectors() -> Value {
    serde_json::from_str(include_str!("data/media.json")).unwrap()
}

fn bytes(v: &Value) -> Vec<u8> {
    hex::decode(v.as_str().unwrap()).unwrap()
}

fn key(v: &Value) -> [u8; 32] {
    bytes(v).try_into().unwrap()
}

fn media_type(v: &Value) -> MediaType {
    MediaType::from_mms_type(v.as_str().unwrap()).unwrap()
}

fn plaintext(encryption: &Value) -> Vec<u8> {
    if let Some(p) = encryption.get("plaintext") {
        return bytes(p);
    }
    let generator = &encryption["plaintext_gen"];
    let n = |k: &str| generator[k].as_u64().unwrap();
    (0..n("len"))
        .map(|i| ((n("mul") * i + n("add")) % n("mod")) as u8)
        .collect()
}

#[test]
fn every_case_encrypts_and_decrypts_byte_for_byte() {
    let vectors = vectors();
    let cases = vectors["cases"].as_array().unwrap();
    assert_eq!(cases.len(), 8);
    let mut encryptions = 0;
    for case in cases {
        let name = case["name"].as_str().unwrap();
        let kind = media_type(&case["media_type"]);
        assert_eq!(kind.hkdf_info(), case["hkdf_info"].as_str().unwrap(), "{name}");
        let media_key = key(&case["media_key"]);
        let keys = MediaKeys::expand(&media_key, kind);
        assert_eq!(keys.iv.to_vec(), bytes(&case["iv"]), "{name} iv");
        assert_eq!(
            keys.cipher_key.to_vec(),
            bytes(&case["cipher_key"]),
            "{name} cipher key"
        );
        assert_eq!(keys.mac_key.to_vec(), bytes(&case["mac_key"]), "{name} mac key");
        assert_eq!(keys.ref_key.to_vec(), bytes(&case["ref_key"]), "{name} ref key");
        for encryption in case["encryptions"].as_array().unwrap() {
            let size = encryption["size"].as_u64().unwrap();
            let plain = plaintext(encryption);
            assert_eq!(plain.len() as u64, size);
            let (enc, digest) = media::encrypt(&plain, &media_key, kind);
            assert_eq!(
                enc.len() as u64,
                encryption["enc_len"].as_u64().unwrap(),
                "{name}/{size}"
            );
            match encryption.get("enc") {
                Some(expected) => assert_eq!(enc, bytes(expected), "{name}/{size}"),
                None => {
                    assert_eq!(
                        enc[..32].to_vec(),
                        bytes(&encryption["enc_first_32"]),
                        "{name}/{size}"
                    );
                    assert_eq!(
                        enc[enc.len() - 32..].to_vec(),
                        bytes(&encryption["enc_last_32"]),
                        "{name}/{size}"
                    );
                }
            }
            assert_eq!(
                enc[enc.len() - 10..].to_vec(),
                bytes(&encryption["mac"]),
                "{name}/{size} mac"
            );
            assert_eq!(
                digest.file_sha256.to_vec(),
                bytes(&encryption["file_sha256"]),
                "{name}/{size}"
            );
            assert_eq!(
                digest.file_enc_sha256.to_vec(),
                bytes(&encryption["file_enc_sha256"]),
                "{name}/{size}"
            );
            assert_eq!(digest.file_length, size);
            let decrypted = media::decrypt(&enc, &media_key, kind, Some(&digest.file_sha256)).unwrap();
            assert_eq!(decrypted, plain, "{name}/{size} decrypt");
            encryptions += 1;
        }
    }
    assert_eq!(encryptions, 56);
}

#[test]
fn streaming_in_any_chunks_equals_the_one_shot_form() {
    let media_key = [7u8; 32];
    let plain: Vec<u8> = (0..70_001u32).map(|i| (i * 31 % 251) as u8).collect();
    let (whole, digest) = media::encrypt(&plain, &media_key, MediaType::Video);
    for chunk in [1usize, 5, 15, 16, 17, 26, 1000, 65_536] {
        let mut encryptor = MediaEncryptor::new(&media_key, MediaType::Video);
        let mut enc = Vec::new();
        for piece in plain.chunks(chunk) {
            encryptor.update(piece, &mut enc);
        }
        assert_eq!(encryptor.finish(&mut enc), digest, "chunk {chunk}");
        assert_eq!(enc, whole, "chunk {chunk}");

        let mut decryptor = MediaDecryptor::new(&media_key, MediaType::Video);
        let mut out = Vec::new();
        for piece in whole.chunks(chunk) {
            decryptor.update(piece, &mut out);
        }
        assert_eq!(decryptor.finish(&mut out).unwrap(), digest, "chunk {chunk}");
        assert_eq!(out, plain, "chunk {chunk}");
    }
}

#[test]
fn tampered_and_truncated_files_are_refused() {
    let vectors = vectors();
    let negatives = vectors["negative"].as_array().unwrap();
    assert_eq!(negatives.len(), 4);
    for case in negatives {
        let name = case["name"].as_str().unwrap();
        let result = media::decrypt(
            &bytes(&case["enc"]),
            &key(&case["media_key"]),
            media_type(&case["media_type"]),
            None,
        );
        match case["expect"].as_str().unwrap() {
            "mac_error" => assert_eq!(result, Err(MediaError::BadMac), "{name}"),
            _ => assert!(result.is_err(), "{name}"),
        }
    }
    // Lengths that cannot be a file, and a wrong announced hash.
    let (enc, _) = media::encrypt(b"hello", &[1; 32], MediaType::Image);
    for len in [0, 9, 10, 25, enc.len() - 1] {
        assert!(
            media::decrypt(&enc[..len], &[1; 32], MediaType::Image, None).is_err(),
            "length {len}"
        );
    }
    assert_eq!(
        media::decrypt(&enc, &[1; 32], MediaType::Image, Some(&[0; 32])),
        Err(MediaError::BadHash)
    );
}
