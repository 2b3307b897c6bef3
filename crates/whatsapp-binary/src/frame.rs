//! The frame payload around node bytes: one flags byte (bit 0x02 = zlib), then the node, maybe compressed
//! (protocol-facts §3.10; whatsmeow `binary.Unpack`).

use std::borrow::Cow;

use flate2::{Decompress, FlushDecompress, Status};

use crate::decode::decode;
use crate::error::DecodeError;
use crate::node::Node;

/// Largest frame payload accepted, compressed input and inflated output alike: 32 MiB.
///
/// Noise transport frames carry at most 16 MiB (3-byte length), and real stanzas are far smaller (media travels by
/// HTTP); the cap stops a small zlib bomb from inflating without bound.
pub const MAX_FRAME_SIZE: usize = 32 << 20;

/// Flags bit meaning "the rest is a zlib stream".
const FLAG_COMPRESSED: u8 = 0x02;

/// Takes the flags byte off a frame payload and inflates the rest when flag 0x02 is set (other flag bits are
/// ignored, as by whatsmeow). Returns the node bytes, borrowed when the frame was not compressed.
pub fn unpack_frame(frame: &[u8]) -> Result<Cow<'_, [u8]>, DecodeError> {
    let (&flags, body) = frame.split_first().ok_or(DecodeError::EmptyFrame)?;
    if frame.len() > MAX_FRAME_SIZE {
        return Err(DecodeError::FrameTooLarge);
    }
    if flags & FLAG_COMPRESSED == 0 {
        return Ok(Cow::Borrowed(body));
    }
    inflate(body).map(Cow::Owned)
}

/// Unpacks and decodes a frame payload in one step.
pub fn decode_frame(frame: &[u8]) -> Result<Node, DecodeError> {
    decode(&unpack_frame(frame)?)
}

/// Inflates a complete zlib stream (RFC 1950), refusing output beyond [`MAX_FRAME_SIZE`] and streams that end early.
fn inflate(input: &[u8]) -> Result<Vec<u8>, DecodeError> {
    let zlib = |reason: &str| DecodeError::Zlib {
        reason: reason.to_owned(),
    };
    let mut inflater = Decompress::new(true);
    let mut out = Vec::with_capacity(input.len().saturating_mul(4).clamp(256, MAX_FRAME_SIZE));
    // One byte beyond the cap is room to notice that the stream goes on past it.
    let limit = MAX_FRAME_SIZE + 1;
    loop {
        if out.len() == out.capacity() {
            if out.len() >= limit {
                return Err(DecodeError::FrameTooLarge);
            }
            let grow = out.len().max(4096).min(limit - out.len());
            out.reserve_exact(grow);
        }
        let consumed = usize::try_from(inflater.total_in()).map_err(|_| zlib("input too long"))?;
        let rest = input.get(consumed..).unwrap_or_default();
        let before = (inflater.total_in(), out.len());
        let status = inflater
            .decompress_vec(rest, &mut out, FlushDecompress::None)
            .map_err(|e| DecodeError::Zlib {
                reason: e.to_string(),
            })?;
        match status {
            Status::StreamEnd if out.len() > MAX_FRAME_SIZE => {
                return Err(DecodeError::FrameTooLarge);
            }
            Status::StreamEnd => return Ok(out),
            Status::Ok | Status::BufError => {
                let progressed = (inflater.total_in(), out.len()) != before;
                if !progressed && out.len() < out.capacity() {
                    return Err(zlib("stream ends before its end marker"));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn compress(data: &[u8]) -> Vec<u8> {
        let mut encoder = flate2::write::ZlibEncoder::new(vec![0x02], flate2::Compression::best());
        encoder.write_all(data).unwrap();
        encoder.finish().unwrap()
    }

    #[test]
    fn plain_frames_borrow_and_compressed_frames_inflate() {
        assert!(matches!(unpack_frame(&[0, 1, 2]), Ok(Cow::Borrowed([1, 2]))));
        assert!(matches!(unpack_frame(&[0x01, 7]), Ok(Cow::Borrowed([7]))));
        let body: Vec<u8> = (0..100_000u32).map(|i| (i % 7) as u8).collect();
        assert_eq!(unpack_frame(&compress(&body)).unwrap().as_ref(), body.as_slice());
    }

    #[test]
    fn bombs_and_truncations_are_errors() {
        assert_eq!(unpack_frame(&[]), Err(DecodeError::EmptyFrame));
        let bomb = compress(&vec![0u8; MAX_FRAME_SIZE + 1]);
        assert!(bomb.len() < 64 * 1024);
        assert_eq!(unpack_frame(&bomb), Err(DecodeError::FrameTooLarge));
        let exact = compress(&vec![0u8; MAX_FRAME_SIZE]);
        assert_eq!(unpack_frame(&exact).map(|b| b.len()), Ok(MAX_FRAME_SIZE));
        let full = compress(b"hello hello hello");
        for cut in 1..full.len() {
            assert!(unpack_frame(&full[..cut]).is_err(), "cut at {cut}");
        }
    }
}
