//! Fuzzes the Noise frame decoder fed arbitrary bytes in arbitrary chunks (client and server side): it may
//! reject, but never panics, never yields a frame above the limit, and yields the same frames as one whole push.
#![no_main]

use libfuzzer_sys::fuzz_target;
use whatsapp_noise::FrameDecoder;

/// A small limit so the fuzzer reaches the too-large path with short inputs.
const MAX_LEN: usize = 4096;

fn decode_all(decoder: &mut FrameDecoder, chunks: &[&[u8]]) -> (Vec<Vec<u8>>, bool) {
    let mut frames = Vec::new();
    for chunk in chunks {
        decoder.push(chunk);
        loop {
            match decoder.next_frame() {
                Ok(Some(frame)) => {
                    assert!(frame.len() <= MAX_LEN);
                    frames.push(frame.to_vec());
                }
                Ok(None) => break,
                Err(_) => return (frames, false),
            }
        }
    }
    (frames, true)
}

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    // Chunk sizes 1..=16, from the selector byte.
    let chunk = usize::from(selector % 16) + 1;
    let chunks: Vec<&[u8]> = rest.chunks(chunk).collect();
    for server in [false, true] {
        let make = || {
            let decoder = if server {
                FrameDecoder::with_intro_header()
            } else {
                FrameDecoder::new()
            };
            decoder.with_max_len(MAX_LEN)
        };
        let (split, split_ok) = decode_all(&mut make(), &chunks);
        let (whole, whole_ok) = decode_all(&mut make(), &[rest]);
        assert_eq!(split_ok, whole_ok);
        if split_ok {
            assert_eq!(split, whole);
        }
    }
});
