//! WhatsApp's Noise transport: the XX handshake, the server certificate chain, the frame codec, the transport
//! cipher and (feature `tokio`) the WebSocket connection that carries them.
//!
//! Layer: transport, below the protocol engine and above the wire schema (`whatsapp-proto`); XEdDSA comes from
//! `whatsapp-signal`'s curve module.
//!
//! Entry types:
//! * [`Initiator`] → [`InitiatorFinish`] → ([ClientFinish bytes], [`TransportCipher`]): the client side.
//! * [`Responder`] → [`ResponderFinish`] → [`ClientAccepted`]: the server side, for test servers.
//! * [`TrustRoot`], [`verify_chain`], [`issue_chain`], [`self_issued_identity`]: the certificate chain.
//! * [`FrameDecoder`], [`encode_frame`], [`INTRO_HEADER`]: 3-byte length framing.
//! * [`TransportCipher`]: per-direction AES-256-GCM after the handshake.
//! * with feature `tokio`: `connect`, `NoiseListener`, `NoiseSocket` (documented when the feature is on).
//!
//! The core is sans-IO: time (`now`, unix seconds) and randomness (an RNG, or explicit ephemeral keys) are passed
//! in. What this crate does not do: it does not build or parse the `ClientPayload` (opaque bytes here), does not
//! decode binary nodes or decompress frame payloads (the flags byte is the caller's), and does not reconnect.

#![forbid(unsafe_code)]

mod cert;
mod error;
mod frame;
mod handshake;
#[cfg(feature = "tokio")]
mod socket;
mod transport;

pub use cert::{
    ChainParams, ROOT_SERIAL, TrustRoot, VerifiedChain, WHATSAPP_ROOT_KEY, issue_chain, self_issued_identity,
    verify_chain,
};
pub use error::{CertError, FrameError, HandshakeError, TransportError};
pub use frame::{FrameDecoder, INTRO_HEADER, LENGTH_PREFIX_LEN, MAX_FRAME_LEN, encode_frame};
pub use handshake::{
    ClientAccepted, Initiator, InitiatorFinish, PROTOCOL_NAME, Responder, ResponderFinish, ResponderIdentity,
};
#[cfg(feature = "tokio")]
pub use socket::{
    Accepted, ClientParams, Connection, IncomingConnection, NoiseListener, NoiseSocket, ORIGIN, SocketError,
    Stream, WHATSAPP_URL, connect,
};
pub use transport::{TAG_LEN, TransportCipher};
/// The key types the handshake takes, re-exported from `whatsapp-signal`.
pub use whatsapp_signal::{KeyPair, PrivateKey, PublicKey};
