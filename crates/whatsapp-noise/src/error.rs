//! Error types, one per operation: framing, transport encryption, certificate checks, the handshake.

/// A frame could not be written or read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FrameError {
    /// The payload is longer than a 3-byte length can express (or than the decoder's configured limit).
    #[error("frame of {len} bytes exceeds the limit of {max} bytes")]
    TooLarge {
        /// Length of the rejected payload (or the length announced by the peer).
        len: usize,
        /// The limit in force.
        max: usize,
    },
    /// The first bytes of the stream were not the intro header `57 41 06 03`.
    #[error("the stream does not start with the intro header WA 6 3")]
    BadIntroHeader,
    /// The stream ended in the middle of a frame (or of the intro header).
    #[error("the stream ended inside a frame ({buffered} bytes left over)")]
    Truncated {
        /// Bytes buffered when the stream ended.
        buffered: usize,
    },
}

/// Transport encryption or decryption failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TransportError {
    /// The frame did not authenticate under the read key and the expected counter.
    #[error("frame failed to decrypt")]
    Decrypt,
    /// The ciphertext is shorter than the 16-byte tag.
    #[error("ciphertext of {len} bytes is shorter than the tag")]
    ShortCiphertext {
        /// Length of the ciphertext.
        len: usize,
    },
    /// All 2^32 nonces of this direction are used; the connection must be replaced.
    #[error("the {direction} counter is exhausted")]
    CounterExhausted {
        /// "write" or "read".
        direction: &'static str,
    },
    /// The sealed frame would not fit the 3-byte length.
    #[error(transparent)]
    Frame(#[from] FrameError),
}

/// The server's certificate chain was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CertError {
    /// The chain, a certificate or its details did not decode as protobuf.
    #[error("certificate chain does not decode: {0}")]
    Decode(String),
    /// The chain lacks its leaf or intermediate certificate, or a certificate lacks details or a signature.
    #[error("certificate chain is missing the {0}")]
    Missing(&'static str),
    /// A signature did not verify (or is not 64 bytes).
    #[error("the {0} certificate signature does not verify")]
    BadSignature(&'static str),
    /// The intermediate's issuer serial is not the root's serial (0).
    #[error("intermediate issuer serial {0} is not the root serial")]
    BadIntermediateIssuer(u32),
    /// The leaf's issuer serial does not match the intermediate's serial.
    #[error("leaf issuer serial {leaf_issuer} does not match intermediate serial {intermediate}")]
    IssuerMismatch {
        /// The leaf's `issuer_serial`.
        leaf_issuer: u32,
        /// The intermediate's `serial`.
        intermediate: u32,
    },
    /// A certificate key is not 32 bytes.
    #[error("the {0} certificate key is not 32 bytes")]
    BadKey(&'static str),
    /// The leaf key is not the static key the server proved it holds in the handshake.
    #[error("the leaf certificate key does not match the server's static key")]
    LeafKeyMismatch,
    /// `now` is outside a certificate's validity window.
    #[error("the {which} certificate is not valid at {now} (valid {not_before}..={not_after})")]
    Expired {
        /// "leaf" or "intermediate".
        which: &'static str,
        /// The time checked, unix seconds.
        now: u64,
        /// Start of validity, unix seconds.
        not_before: u64,
        /// End of validity, unix seconds.
        not_after: u64,
    },
}

/// The Noise handshake failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum HandshakeError {
    /// The handshake message did not decode as a `HandshakeMessage` protobuf.
    #[error("handshake message does not decode: {0}")]
    Decode(String),
    /// The handshake message lacks the part this step needs (e.g. a ServerHello without an ephemeral key).
    #[error("handshake message is missing {0}")]
    Missing(&'static str),
    /// A key field has the wrong length.
    #[error("{field} is {len} bytes, expected {expected}")]
    BadLength {
        /// Which field.
        field: &'static str,
        /// Its length.
        len: usize,
        /// The length required.
        expected: usize,
    },
    /// An encrypted handshake field did not authenticate.
    #[error("handshake field {0} failed to decrypt")]
    Decrypt(&'static str),
    /// The server's certificate chain was rejected.
    #[error(transparent)]
    Cert(#[from] CertError),
}
