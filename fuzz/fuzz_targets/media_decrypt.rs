//! Fuzzes media decryption on downloaded bytes fed in arbitrary chunks: it may refuse the file but never panic,
//! and whatever the fuzzer gives as plaintext encrypts and decrypts back to itself.
#![no_main]

use libfuzzer_sys::fuzz_target;
use whatsapp_core::media::{self, MediaDecryptor, MediaType};

fuzz_target!(|data: &[u8]| {
    let Some((&chunk, rest)) = data.split_first() else {
        return;
    };
    let key = [0x42u8; 32];
    let mut decryptor = MediaDecryptor::new(&key, MediaType::Document);
    let mut out = Vec::new();
    for piece in rest.chunks(usize::from(chunk).max(1)) {
        decryptor.update(piece, &mut out);
    }
    let _ = decryptor.finish(&mut out);

    let (enc, digest) = media::encrypt(rest, &key, MediaType::Image);
    let back = media::decrypt(&enc, &key, MediaType::Image, Some(&digest.file_sha256))
        .expect("own encryption decrypts");
    assert_eq!(back, rest);
});
