//! WhatsApp's message padding, applied to the `Message` protobuf before it enters the Signal cipher.
//!
//! WhatsApp appends `n` bytes each equal to `n`, with `n` a random nibble where 0 becomes 15, so `n` is in 1..=15
//! (protocol-facts §3.5). It is kept apart from the cipher on purpose: Armadillo (`enc v="3"`) payloads are not
//! padded, and the cipher itself never pads.

use rand_core::RngCore;

use crate::Error;

/// Largest padding length WhatsApp draws (protocol-facts §3.5).
pub const MAX_PADDING: u8 = 15;

/// Appends `n` bytes of value `n` (`n` in 1..=255; 0 is treated as 15 like a drawn zero nibble).
pub fn pad_with(message: &[u8], n: u8) -> Vec<u8> {
    let n = if n == 0 { MAX_PADDING } else { n };
    let mut out = Vec::with_capacity(message.len() + usize::from(n));
    out.extend_from_slice(message);
    out.resize(message.len() + usize::from(n), n);
    out
}

/// Appends a random padding of 1..=15 bytes.
pub fn pad(message: &[u8], rng: &mut impl RngCore) -> Vec<u8> {
    let mut byte = [0u8; 1];
    rng.fill_bytes(&mut byte);
    pad_with(message, byte[0] & 0x0f)
}

/// Strips the padding: the last byte `n` says how many bytes to remove, and all of them must equal `n`.
///
/// Lengths above 15 are accepted when consistent, since other clients draw up to 16.
pub fn unpad(padded: &[u8]) -> Result<&[u8], Error> {
    let Some(&n) = padded.last() else {
        return Err(Error::BadPadding);
    };
    let n_len = usize::from(n);
    if n == 0 || n_len > padded.len() {
        return Err(Error::BadPadding);
    }
    let (message, padding) = padded.split_at(padded.len() - n_len);
    if padding.iter().any(|&b| b != n) {
        return Err(Error::BadPadding);
    }
    Ok(message)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_rejects() {
        for n in 1..=16u8 {
            let padded = pad_with(b"hello", n);
            assert_eq!(padded.len(), 5 + usize::from(n));
            assert_eq!(unpad(&padded), Ok(&b"hello"[..]));
        }
        assert_eq!(pad_with(b"", 0), vec![15u8; 15]);
        assert_eq!(unpad(&[]), Err(Error::BadPadding));
        assert_eq!(unpad(&[1, 0]), Err(Error::BadPadding));
        assert_eq!(unpad(&[3, 3]), Err(Error::BadPadding));
        assert_eq!(unpad(&[1, 2, 3]), Err(Error::BadPadding));
    }
}
