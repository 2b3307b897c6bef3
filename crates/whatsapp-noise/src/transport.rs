//! The transport cipher after the handshake: AES-256-GCM with one key and one counter per direction, no AD.

use aes_gcm::aead::{AeadInPlace, KeyInit};
use aes_gcm::{Aes256Gcm, Nonce, Tag};
use bytes::BytesMut;
use zeroize::Zeroize;

use crate::TransportError;
use crate::frame::{MAX_FRAME_LEN, put_length};

/// Length of the AES-GCM tag appended to every ciphertext.
pub const TAG_LEN: usize = 16;

/// The nonce for `counter`: 8 zero bytes, then the counter as 4 big-endian bytes (protocol-facts §3.1).
pub(crate) fn nonce(counter: u32) -> Nonce<aes_gcm::aead::consts::U12> {
    let mut iv = [0u8; 12];
    iv[8..].copy_from_slice(&counter.to_be_bytes());
    Nonce::from(iv)
}

/// One direction: a key and the next counter. `None` once the 2^32 nonces are used up.
struct Direction {
    cipher: Aes256Gcm,
    counter: Option<u32>,
    name: &'static str,
}

impl Direction {
    fn new(mut key: [u8; 32], name: &'static str) -> Self {
        let cipher = Aes256Gcm::new(&key.into());
        key.zeroize();
        Self {
            cipher,
            counter: Some(0),
            name,
        }
    }

    fn take_counter(&mut self) -> Result<u32, TransportError> {
        let counter = self
            .counter
            .ok_or(TransportError::CounterExhausted { direction: self.name })?;
        self.counter = counter.checked_add(1);
        Ok(counter)
    }
}

/// The two directions of an established Noise session.
///
/// Encryption and decryption are in place where possible; [`seal_frame`](Self::seal_frame) and
/// [`open_frame`](Self::open_frame) combine them with the frame layer. Key schedules are wiped on drop.
pub struct TransportCipher {
    write: Direction,
    read: Direction,
}

impl std::fmt::Debug for TransportCipher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TransportCipher")
            .field("write_counter", &self.write.counter)
            .field("read_counter", &self.read.counter)
            .finish_non_exhaustive()
    }
}

impl TransportCipher {
    /// A cipher from raw keys, both counters at 0. The handshake builds it; this constructor serves tests and
    /// benchmarks that start from known transport keys.
    pub fn from_keys(write_key: [u8; 32], read_key: [u8; 32]) -> Self {
        Self {
            write: Direction::new(write_key, "write"),
            read: Direction::new(read_key, "read"),
        }
    }

    /// The counter the next encrypted frame will use (`None` when exhausted).
    pub fn write_counter(&self) -> Option<u32> {
        self.write.counter
    }

    /// The counter the next decrypted frame must use (`None` when exhausted).
    pub fn read_counter(&self) -> Option<u32> {
        self.read.counter
    }

    /// Encrypts `plaintext` into a new buffer (ciphertext || tag).
    pub fn encrypt(&mut self, plaintext: &[u8]) -> Result<Vec<u8>, TransportError> {
        let mut out = Vec::with_capacity(plaintext.len() + TAG_LEN);
        out.extend_from_slice(plaintext);
        let counter = self.write.take_counter()?;
        let tag = self
            .write
            .cipher
            .encrypt_in_place_detached(&nonce(counter), &[], &mut out)
            .map_err(|_| {
                TransportError::Frame(crate::FrameError::TooLarge {
                    len: plaintext.len(),
                    max: MAX_FRAME_LEN,
                })
            })?;
        out.extend_from_slice(&tag);
        Ok(out)
    }

    /// Decrypts `ciphertext` (ciphertext || tag) into a new buffer.
    pub fn decrypt(&mut self, ciphertext: &[u8]) -> Result<Vec<u8>, TransportError> {
        let mut buf = ciphertext.to_vec();
        self.decrypt_in_place(&mut buf)?;
        Ok(buf)
    }

    /// Decrypts in place: on success `buf` holds the plaintext. The read counter advances only on success.
    pub fn decrypt_in_place(&mut self, buf: &mut Vec<u8>) -> Result<(), TransportError> {
        let len = self.open(buf.as_mut_slice())?;
        buf.truncate(len);
        Ok(())
    }

    /// Encrypts `plaintext` and appends the whole frame (3-byte length, ciphertext, tag) to `out`.
    pub fn seal_frame(&mut self, plaintext: &[u8], out: &mut BytesMut) -> Result<(), TransportError> {
        let frame_len = plaintext.len() + TAG_LEN;
        if frame_len > MAX_FRAME_LEN {
            return Err(crate::FrameError::TooLarge {
                len: frame_len,
                max: MAX_FRAME_LEN,
            }
            .into());
        }
        let counter = self.write.take_counter()?;
        out.reserve(3 + frame_len);
        put_length(frame_len, out)?;
        let start = out.len();
        out.extend_from_slice(plaintext);
        let tag = self
            .write
            .cipher
            .encrypt_in_place_detached(&nonce(counter), &[], &mut out[start..])
            .map_err(|_| crate::FrameError::TooLarge {
                len: frame_len,
                max: MAX_FRAME_LEN,
            })?;
        out.extend_from_slice(&tag);
        Ok(())
    }

    /// Decrypts one frame payload (as returned by [`FrameDecoder`](crate::FrameDecoder)) in place and returns the
    /// plaintext, which shares the frame's buffer.
    pub fn open_frame(&mut self, mut frame: BytesMut) -> Result<BytesMut, TransportError> {
        let len = self.open(&mut frame)?;
        frame.truncate(len);
        Ok(frame)
    }

    /// Decrypts `buf` (ciphertext || tag) in place and returns the plaintext length.
    fn open(&mut self, buf: &mut [u8]) -> Result<usize, TransportError> {
        let len = buf
            .len()
            .checked_sub(TAG_LEN)
            .ok_or(TransportError::ShortCiphertext { len: buf.len() })?;
        let counter = self
            .read
            .counter
            .ok_or(TransportError::CounterExhausted { direction: "read" })?;
        let (data, tag) = buf.split_at_mut(len);
        let tag = Tag::clone_from_slice(tag);
        self.read
            .cipher
            .decrypt_in_place_detached(&nonce(counter), &[], data, &tag)
            .map_err(|_| TransportError::Decrypt)?;
        self.read.counter = counter.checked_add(1);
        Ok(len)
    }

    #[cfg(test)]
    pub(crate) fn set_counters(&mut self, write: Option<u32>, read: Option<u32>) {
        self.write.counter = write;
        self.read.counter = read;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_failures() {
        let mut a = TransportCipher::from_keys([1; 32], [2; 32]);
        let mut b = TransportCipher::from_keys([2; 32], [1; 32]);
        for message in [&b""[..], b"x", &[9u8; 70_000]] {
            let sealed = a.encrypt(message).unwrap();
            assert_eq!(b.decrypt(&sealed).unwrap(), message);
        }
        // A replayed frame uses the wrong counter now.
        let sealed = a.encrypt(b"once").unwrap();
        assert_eq!(b.decrypt(&sealed).unwrap(), b"once");
        assert_eq!(b.decrypt(&sealed), Err(TransportError::Decrypt));
        assert_eq!(
            b.decrypt(&[0; 15]),
            Err(TransportError::ShortCiphertext { len: 15 })
        );
        // A failed decryption does not advance the counter.
        let sealed = a.encrypt(b"next").unwrap();
        let mut tampered = sealed.clone();
        tampered[0] ^= 1;
        assert_eq!(b.decrypt(&tampered), Err(TransportError::Decrypt));
        assert_eq!(b.decrypt(&sealed).unwrap(), b"next");
    }

    #[test]
    fn counters_exhaust() {
        let mut a = TransportCipher::from_keys([1; 32], [2; 32]);
        let mut b = TransportCipher::from_keys([2; 32], [1; 32]);
        a.set_counters(Some(u32::MAX), None);
        b.set_counters(None, Some(u32::MAX));
        let sealed = a.encrypt(b"last").unwrap();
        assert_eq!(b.decrypt(&sealed).unwrap(), b"last");
        assert_eq!(
            a.encrypt(b"more"),
            Err(TransportError::CounterExhausted { direction: "write" })
        );
        assert_eq!(
            b.decrypt(&sealed),
            Err(TransportError::CounterExhausted { direction: "read" })
        );
        let mut out = BytesMut::new();
        assert_eq!(
            a.seal_frame(b"x", &mut out),
            Err(TransportError::CounterExhausted { direction: "write" })
        );
    }

    /// The transport path does not copy beyond the one copy of the plaintext into the output: sealing into a buffer
    /// with room writes there without reallocating, and opening decrypts in the frame's own buffer.
    #[test]
    fn seal_and_open_stay_in_their_buffers() {
        let mut a = TransportCipher::from_keys([1; 32], [2; 32]);
        let mut b = TransportCipher::from_keys([2; 32], [1; 32]);
        let plaintext = vec![0x5a; 64 * 1024];
        let mut out = BytesMut::with_capacity(3 + plaintext.len() + TAG_LEN);
        let start = out.as_ptr();
        a.seal_frame(&plaintext, &mut out).unwrap();
        assert_eq!(out.as_ptr(), start, "sealing reallocated the output");
        assert_eq!(out.len(), 3 + plaintext.len() + TAG_LEN);

        let mut decoder = crate::FrameDecoder::new();
        decoder.push(&out);
        let frame = decoder.next_frame().unwrap().unwrap();
        let frame_start = frame.as_ptr();
        let opened = b.open_frame(frame).unwrap();
        assert_eq!(opened.as_ptr(), frame_start, "opening copied the frame");
        assert_eq!(opened, plaintext);
    }

    #[test]
    fn oversized_frame_is_refused() {
        let mut a = TransportCipher::from_keys([1; 32], [2; 32]);
        let mut out = BytesMut::new();
        let plaintext = vec![0u8; MAX_FRAME_LEN - TAG_LEN + 1];
        assert!(matches!(
            a.seal_frame(&plaintext, &mut out),
            Err(TransportError::Frame(_))
        ));
        assert_eq!(a.write_counter(), Some(0));
        assert!(a.seal_frame(&plaintext[1..], &mut out).is_ok());
    }
}
