//! The frame layer: a 3-byte big-endian length before every payload, and the intro header before the first.
//!
//! Frames are independent of WebSocket messages (protocol-facts §3.1): one message may hold several frames, and a
//! frame may be split across messages. [`FrameDecoder`] therefore buffers bytes and yields whole frames.

use bytes::{Buf, BufMut, BytesMut};

use crate::FrameError;

/// The 4 bytes the client sends before its first frame: "WA", magic value 6, dictionary version 3
/// (protocol-facts §3.1). They are also the Noise prologue.
pub const INTRO_HEADER: [u8; 4] = [0x57, 0x41, 0x06, 0x03];

/// Length of the frame length prefix.
pub const LENGTH_PREFIX_LEN: usize = 3;

/// The largest payload a 3-byte length can express, 16 MiB - 1 (protocol-facts §3.1: "max frame 1<<24").
pub const MAX_FRAME_LEN: usize = 0xFF_FFFF;

/// Appends one frame (3-byte big-endian length, then `payload`) to `out`.
pub fn encode_frame(payload: &[u8], out: &mut BytesMut) -> Result<(), FrameError> {
    put_length(payload.len(), out)?;
    out.extend_from_slice(payload);
    Ok(())
}

/// Appends the 3-byte big-endian length prefix for a payload of `len` bytes.
pub(crate) fn put_length(len: usize, out: &mut BytesMut) -> Result<(), FrameError> {
    if len > MAX_FRAME_LEN {
        return Err(FrameError::TooLarge {
            len,
            max: MAX_FRAME_LEN,
        });
    }
    // The check above makes `len` fit in 24 bits.
    let len = len as u32;
    out.put_slice(&len.to_be_bytes()[1..]);
    Ok(())
}

/// Splits a byte stream into frames.
///
/// Bytes are fed with [`push`](Self::push) in whatever pieces the transport delivers; [`next_frame`](Self::next_frame)
/// yields each complete payload. Memory grows only as bytes arrive: an announced length is checked against the limit
/// and never used to allocate ahead.
#[derive(Debug)]
pub struct FrameDecoder {
    buf: BytesMut,
    max_len: usize,
    intro_pending: bool,
}

impl Default for FrameDecoder {
    fn default() -> Self {
        Self::new()
    }
}

impl FrameDecoder {
    /// A decoder for the client side: frames from the first byte on.
    pub fn new() -> Self {
        Self {
            buf: BytesMut::new(),
            max_len: MAX_FRAME_LEN,
            intro_pending: false,
        }
    }

    /// A decoder for the server side: the stream must start with [`INTRO_HEADER`], which is checked and dropped.
    pub fn with_intro_header() -> Self {
        Self {
            intro_pending: true,
            ..Self::new()
        }
    }

    /// Lowers the largest accepted payload (at most [`MAX_FRAME_LEN`]).
    pub fn with_max_len(mut self, max_len: usize) -> Self {
        self.max_len = max_len.min(MAX_FRAME_LEN);
        self
    }

    /// Appends received bytes.
    pub fn push(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// Bytes received but not yet returned as a frame.
    pub fn buffered_len(&self) -> usize {
        self.buf.len()
    }

    /// The next complete frame payload, `Ok(None)` if more bytes are needed.
    pub fn next_frame(&mut self) -> Result<Option<BytesMut>, FrameError> {
        if self.intro_pending {
            let seen = self.buf.len().min(INTRO_HEADER.len());
            if self.buf[..seen] != INTRO_HEADER[..seen] {
                return Err(FrameError::BadIntroHeader);
            }
            if seen < INTRO_HEADER.len() {
                return Ok(None);
            }
            self.buf.advance(INTRO_HEADER.len());
            self.intro_pending = false;
        }
        let Some(prefix) = self.buf.get(..LENGTH_PREFIX_LEN) else {
            return Ok(None);
        };
        let len = usize::from(prefix[0]) << 16 | usize::from(prefix[1]) << 8 | usize::from(prefix[2]);
        if len > self.max_len {
            return Err(FrameError::TooLarge {
                len,
                max: self.max_len,
            });
        }
        if self.buf.len() < LENGTH_PREFIX_LEN + len {
            return Ok(None);
        }
        self.buf.advance(LENGTH_PREFIX_LEN);
        Ok(Some(self.buf.split_to(len)))
    }

    /// Call when the stream has ended: fails if a partial frame (or header) is left.
    pub fn finish(&self) -> Result<(), FrameError> {
        if self.buf.is_empty() {
            Ok(())
        } else {
            Err(FrameError::Truncated {
                buffered: self.buf.len(),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frames(decoder: &mut FrameDecoder) -> Result<Vec<Vec<u8>>, FrameError> {
        let mut out = Vec::new();
        while let Some(frame) = decoder.next_frame()? {
            out.push(frame.to_vec());
        }
        Ok(out)
    }

    /// Feeds `stream` in pieces of `chunk` bytes and checks the frames (or the error) that come out.
    fn check(
        mut decoder: FrameDecoder,
        stream: &[u8],
        chunk: usize,
        expected: Result<Vec<Vec<u8>>, FrameError>,
    ) {
        let mut got = Vec::new();
        let mut result = Ok(());
        for piece in stream.chunks(chunk.max(1)) {
            decoder.push(piece);
            match frames(&mut decoder) {
                Ok(f) => got.extend(f),
                Err(e) => {
                    result = Err(e);
                    break;
                }
            }
        }
        let result = result.and_then(|()| decoder.finish()).map(|()| got);
        assert_eq!(result, expected, "chunk size {chunk}");
    }

    fn framed(payloads: &[&[u8]]) -> Vec<u8> {
        let mut out = BytesMut::new();
        for p in payloads {
            encode_frame(p, &mut out).unwrap();
        }
        out.to_vec()
    }

    #[test]
    fn frames_in_any_chunking() {
        let big = vec![7u8; 70_000];
        let payloads: Vec<&[u8]> = vec![b"", b"a", b"hello", &big];
        let stream = framed(&payloads);
        let expected: Vec<Vec<u8>> = payloads.iter().map(|p| p.to_vec()).collect();
        for chunk in [1, 2, 3, 4, 5, 7, 1000, stream.len()] {
            check(FrameDecoder::new(), &stream, chunk, Ok(expected.clone()));
            let mut with_header = INTRO_HEADER.to_vec();
            with_header.extend_from_slice(&stream);
            check(
                FrameDecoder::with_intro_header(),
                &with_header,
                chunk,
                Ok(expected.clone()),
            );
        }
    }

    #[test]
    fn malformed_streams_fail() {
        let stream = framed(&[b"hello"]);
        check(
            FrameDecoder::new(),
            &stream[..stream.len() - 1],
            2,
            Err(FrameError::Truncated { buffered: 7 }),
        );
        check(
            FrameDecoder::new(),
            &[0, 0],
            1,
            Err(FrameError::Truncated { buffered: 2 }),
        );
        check(
            FrameDecoder::with_intro_header(),
            &stream,
            1,
            Err(FrameError::BadIntroHeader),
        );
        check(
            FrameDecoder::with_intro_header(),
            b"WA",
            1,
            Err(FrameError::Truncated { buffered: 2 }),
        );
        check(
            FrameDecoder::new().with_max_len(4),
            &stream,
            3,
            Err(FrameError::TooLarge { len: 5, max: 4 }),
        );
        let mut out = BytesMut::new();
        let too_big = vec![0u8; MAX_FRAME_LEN + 1];
        assert_eq!(
            encode_frame(&too_big, &mut out),
            Err(FrameError::TooLarge {
                len: MAX_FRAME_LEN + 1,
                max: MAX_FRAME_LEN
            })
        );
        assert!(encode_frame(&too_big[1..], &mut out).is_ok());
        assert_eq!(&out[..3], &[0xff, 0xff, 0xff]);
    }

    #[test]
    fn a_claimed_length_reserves_nothing() {
        // A header claiming the largest frame, then a trickle: memory follows the bytes that arrived, not the
        // claim, however the bytes are cut.
        let mut decoder = FrameDecoder::new();
        decoder.push(&[0xff, 0xff, 0xff]);
        for _ in 0..100 {
            decoder.push(&[0x5a; 10]);
            assert_eq!(decoder.next_frame(), Ok(None));
        }
        assert_eq!(decoder.buffered_len(), 1003);
        assert!(decoder.buf.capacity() < 64 * 1024, "{}", decoder.buf.capacity());
        // A limit below the claim refuses the frame at its header.
        let mut limited = FrameDecoder::new().with_max_len(1 << 20);
        limited.push(&[0xff, 0xff, 0xff]);
        assert_eq!(
            limited.next_frame(),
            Err(FrameError::TooLarge {
                len: MAX_FRAME_LEN,
                max: 1 << 20
            })
        );
    }
}
