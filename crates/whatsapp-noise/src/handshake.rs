//! The handshake state machines: WhatsApp's variant of `Noise_XX_25519_AESGCM_SHA256` (protocol-facts §3.1).
//!
//! Each side is a chain of types, one per step, consumed as the step completes, so a step cannot be repeated or
//! skipped. Methods take and return handshake message bytes (the `HandshakeMessage` protobuf); framing is left to
//! the caller ([`crate::FrameDecoder`], [`crate::encode_frame`]).
//!
//! Where the variant differs from standard Noise XX: the first message carries no payload and its (empty)
//! payload is not hashed, and the messages are protobuf fields rather than one concatenated buffer.

use aes_gcm::Aes256Gcm;
use aes_gcm::aead::{Aead, KeyInit, Payload};
use hkdf::Hkdf;
use prost::Message;
use rand_core::{CryptoRng, RngCore};
use sha2::{Digest, Sha256};
use whatsapp_proto::handshake::HandshakeMessage;
use whatsapp_proto::handshake::handshake_message::{ClientFinish, ClientHello, ServerHello};
use whatsapp_signal::{KeyPair, PrivateKey, PublicKey};
use zeroize::{Zeroize, Zeroizing};

use crate::HandshakeError;
use crate::cert::{TrustRoot, VerifiedChain, verify_chain};
use crate::frame::INTRO_HEADER;
use crate::transport::{TAG_LEN, TransportCipher, nonce};

/// The protocol name, exactly 32 bytes with 4 trailing NULs, used directly as the first h and ck
/// (protocol-facts §3.1).
pub const PROTOCOL_NAME: [u8; 32] = *b"Noise_XX_25519_AESGCM_SHA256\0\0\0\0";

/// Length of an X25519 public key on the wire.
const KEY_LEN: usize = 32;

/// h, ck and the current handshake cipher.
struct SymmetricState {
    h: [u8; 32],
    ck: [u8; 32],
    cipher: Option<Aes256Gcm>,
    counter: u32,
}

impl Drop for SymmetricState {
    fn drop(&mut self) {
        self.h.zeroize();
        self.ck.zeroize();
    }
}

impl SymmetricState {
    fn new() -> Self {
        let mut state = Self {
            h: PROTOCOL_NAME,
            ck: PROTOCOL_NAME,
            cipher: None,
            counter: 0,
        };
        state.mix_hash(&INTRO_HEADER);
        state
    }

    fn mix_hash(&mut self, data: &[u8]) {
        let mut hasher = Sha256::new();
        hasher.update(self.h);
        hasher.update(data);
        self.h = hasher.finalize().into();
    }

    fn mix_key(&mut self, dh: &[u8; 32]) {
        let mut okm = Zeroizing::new([0u8; 64]);
        hkdf_64(&self.ck, dh, &mut okm);
        self.ck.copy_from_slice(&okm[..32]);
        self.cipher =
            Some(Aes256Gcm::new_from_slice(&okm[32..]).unwrap_or_else(|_| unreachable!("32-byte key")));
        self.counter = 0;
    }

    fn encrypt_and_hash(&mut self, plaintext: &[u8]) -> Vec<u8> {
        // Every encryption in the handshake follows a MixKey, and the counter never passes 1.
        let ciphertext = match &self.cipher {
            Some(cipher) => cipher
                .encrypt(
                    &nonce(self.counter),
                    Payload {
                        msg: plaintext,
                        aad: &self.h,
                    },
                )
                .unwrap_or_default(),
            None => plaintext.to_vec(),
        };
        self.counter += 1;
        self.mix_hash(&ciphertext);
        ciphertext
    }

    fn decrypt_and_hash(
        &mut self,
        ciphertext: &[u8],
        field: &'static str,
    ) -> Result<Vec<u8>, HandshakeError> {
        let cipher = self.cipher.as_ref().ok_or(HandshakeError::Decrypt(field))?;
        let plaintext = cipher
            .decrypt(
                &nonce(self.counter),
                Payload {
                    msg: ciphertext,
                    aad: &self.h,
                },
            )
            .map_err(|_| HandshakeError::Decrypt(field))?;
        self.counter += 1;
        self.mix_hash(ciphertext);
        Ok(plaintext)
    }

    /// The two transport keys: `(client_to_server, server_to_client)`.
    fn split(&self) -> ([u8; 32], [u8; 32]) {
        let mut okm = Zeroizing::new([0u8; 64]);
        hkdf_64(&self.ck, &[], &mut okm);
        let mut c2s = [0u8; 32];
        let mut s2c = [0u8; 32];
        c2s.copy_from_slice(&okm[..32]);
        s2c.copy_from_slice(&okm[32..]);
        (c2s, s2c)
    }
}

fn hkdf_64(salt: &[u8; 32], ikm: &[u8], out: &mut [u8; 64]) {
    // 64 bytes is far below HKDF-SHA256's 8160-byte limit, so expand cannot fail.
    let _ = Hkdf::<Sha256>::new(Some(salt), ikm).expand(&[], out);
}

fn agree(private: &PrivateKey, public: &PublicKey) -> Zeroizing<[u8; 32]> {
    Zeroizing::new(private.agree(public))
}

fn key_field(bytes: Option<&[u8]>, field: &'static str) -> Result<PublicKey, HandshakeError> {
    let bytes = bytes.ok_or(HandshakeError::Missing(field))?;
    let key = <[u8; KEY_LEN]>::try_from(bytes).map_err(|_| HandshakeError::BadLength {
        field,
        len: bytes.len(),
        expected: KEY_LEN,
    })?;
    Ok(PublicKey::from_bytes(key))
}

fn decode(message: &[u8]) -> Result<HandshakeMessage, HandshakeError> {
    HandshakeMessage::decode(message).map_err(|e| HandshakeError::Decode(e.to_string()))
}

/// The client side before the server's hello: holds the ephemeral key.
pub struct Initiator {
    state: SymmetricState,
    ephemeral: KeyPair,
}

impl std::fmt::Debug for Initiator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Initiator")
            .field("ephemeral", &self.ephemeral.public)
            .finish_non_exhaustive()
    }
}

impl Initiator {
    /// Starts a handshake with the given ephemeral key (tests replay known keys this way).
    pub fn new(ephemeral: PrivateKey) -> Self {
        let ephemeral = KeyPair::from_private(ephemeral);
        let mut state = SymmetricState::new();
        state.mix_hash(ephemeral.public.as_bytes());
        Self { state, ephemeral }
    }

    /// Starts a handshake with a fresh ephemeral key.
    pub fn generate(rng: &mut (impl RngCore + CryptoRng)) -> Self {
        Self::new(PrivateKey::generate(rng))
    }

    /// The ClientHello handshake message (send it framed, after [`INTRO_HEADER`]).
    pub fn client_hello(&self) -> Vec<u8> {
        HandshakeMessage {
            client_hello: Some(ClientHello {
                ephemeral: Some(self.ephemeral.public.as_bytes().to_vec()),
                ..ClientHello::default()
            }),
            ..HandshakeMessage::default()
        }
        .encode_to_vec()
    }

    /// Reads the ServerHello: checks the server's static key against its certificate chain, which must lead to
    /// `root` and be valid at `now` (unix seconds).
    pub fn read_server_hello(
        mut self,
        message: &[u8],
        root: &TrustRoot,
        now: u64,
    ) -> Result<InitiatorFinish, HandshakeError> {
        let hello = decode(message)?
            .server_hello
            .ok_or(HandshakeError::Missing("serverHello"))?;
        let server_ephemeral = key_field(hello.ephemeral.as_deref(), "serverHello.ephemeral")?;
        let static_ct = hello
            .r#static
            .ok_or(HandshakeError::Missing("serverHello.static"))?;
        let payload_ct = hello
            .payload
            .ok_or(HandshakeError::Missing("serverHello.payload"))?;
        let state = &mut self.state;
        state.mix_hash(server_ephemeral.as_bytes());
        state.mix_key(&agree(&self.ephemeral.private, &server_ephemeral));
        let server_static = state.decrypt_and_hash(&static_ct, "serverHello.static")?;
        let server_static = key_field(Some(&server_static), "server static key")?;
        state.mix_key(&agree(&self.ephemeral.private, &server_static));
        let chain = state.decrypt_and_hash(&payload_ct, "serverHello.payload")?;
        let chain = verify_chain(&chain, root, server_static.as_bytes(), now)?;
        Ok(InitiatorFinish {
            state: self.state,
            server_ephemeral,
            server_static,
            chain,
        })
    }
}

/// The client side after a verified ServerHello.
pub struct InitiatorFinish {
    state: SymmetricState,
    server_ephemeral: PublicKey,
    server_static: PublicKey,
    chain: VerifiedChain,
}

impl std::fmt::Debug for InitiatorFinish {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InitiatorFinish")
            .field("server_static", &self.server_static)
            .field("chain", &self.chain)
            .finish_non_exhaustive()
    }
}

impl InitiatorFinish {
    /// The server's static key, certified by the chain.
    pub fn server_static(&self) -> &PublicKey {
        &self.server_static
    }

    /// What the verified certificate chain said.
    pub fn cert_chain(&self) -> &VerifiedChain {
        &self.chain
    }

    /// Writes the ClientFinish, carrying the client's static (noise) key and `client_payload` (an encoded
    /// `ClientPayload`, opaque here), and returns it with the transport cipher.
    pub fn finish(mut self, noise_key: &KeyPair, client_payload: &[u8]) -> (Vec<u8>, TransportCipher) {
        let state = &mut self.state;
        let static_ct = state.encrypt_and_hash(noise_key.public.as_bytes());
        state.mix_key(&agree(&noise_key.private, &self.server_ephemeral));
        let payload_ct = state.encrypt_and_hash(client_payload);
        let (c2s, s2c) = state.split();
        let message = HandshakeMessage {
            client_finish: Some(ClientFinish {
                r#static: Some(static_ct),
                payload: Some(payload_ct),
                ..ClientFinish::default()
            }),
            ..HandshakeMessage::default()
        }
        .encode_to_vec();
        (message, TransportCipher::from_keys(c2s, s2c))
    }
}

/// What a server presents: its static key pair and its encoded certificate chain.
#[derive(Clone, Debug)]
pub struct ResponderIdentity {
    /// The server's Noise static key pair (the chain's leaf key).
    pub static_key: KeyPair,
    /// The encoded `CertChain` sent in every ServerHello (see [`crate::issue_chain`]).
    pub cert_chain: Vec<u8>,
}

/// The server side before the client's hello.
pub struct Responder {
    state: SymmetricState,
    ephemeral: KeyPair,
}

impl std::fmt::Debug for Responder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Responder")
            .field("ephemeral", &self.ephemeral.public)
            .finish_non_exhaustive()
    }
}

impl Responder {
    /// A responder with the given ephemeral key (tests replay known keys this way).
    pub fn new(ephemeral: PrivateKey) -> Self {
        Self {
            state: SymmetricState::new(),
            ephemeral: KeyPair::from_private(ephemeral),
        }
    }

    /// A responder with a fresh ephemeral key.
    pub fn generate(rng: &mut (impl RngCore + CryptoRng)) -> Self {
        Self::new(PrivateKey::generate(rng))
    }

    /// Reads the ClientHello (the frame after the intro header) and writes the ServerHello.
    pub fn read_client_hello(
        mut self,
        message: &[u8],
        identity: &ResponderIdentity,
    ) -> Result<(ResponderFinish, Vec<u8>), HandshakeError> {
        let hello = decode(message)?
            .client_hello
            .ok_or(HandshakeError::Missing("clientHello"))?;
        let client_ephemeral = key_field(hello.ephemeral.as_deref(), "clientHello.ephemeral")?;
        let state = &mut self.state;
        state.mix_hash(client_ephemeral.as_bytes());
        state.mix_hash(self.ephemeral.public.as_bytes());
        state.mix_key(&agree(&self.ephemeral.private, &client_ephemeral));
        let static_ct = state.encrypt_and_hash(identity.static_key.public.as_bytes());
        state.mix_key(&agree(&identity.static_key.private, &client_ephemeral));
        let payload_ct = state.encrypt_and_hash(&identity.cert_chain);
        let message = HandshakeMessage {
            server_hello: Some(ServerHello {
                ephemeral: Some(self.ephemeral.public.as_bytes().to_vec()),
                r#static: Some(static_ct),
                payload: Some(payload_ct),
                ..ServerHello::default()
            }),
            ..HandshakeMessage::default()
        }
        .encode_to_vec();
        Ok((
            ResponderFinish {
                state: self.state,
                ephemeral: self.ephemeral,
            },
            message,
        ))
    }
}

/// The server side after its hello, waiting for the ClientFinish.
pub struct ResponderFinish {
    state: SymmetricState,
    ephemeral: KeyPair,
}

impl std::fmt::Debug for ResponderFinish {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponderFinish").finish_non_exhaustive()
    }
}

/// A client the responder accepted.
#[derive(Debug)]
pub struct ClientAccepted {
    /// The client's static (noise) public key.
    pub client_static: PublicKey,
    /// The decrypted client payload (an encoded `ClientPayload`).
    pub client_payload: Vec<u8>,
    /// The transport cipher, server side.
    pub transport: TransportCipher,
}

impl ResponderFinish {
    /// Reads the ClientFinish: the client's static key and payload.
    pub fn read_client_finish(mut self, message: &[u8]) -> Result<ClientAccepted, HandshakeError> {
        let finish = decode(message)?
            .client_finish
            .ok_or(HandshakeError::Missing("clientFinish"))?;
        let static_ct = finish
            .r#static
            .ok_or(HandshakeError::Missing("clientFinish.static"))?;
        let payload_ct = finish
            .payload
            .ok_or(HandshakeError::Missing("clientFinish.payload"))?;
        if static_ct.len() != KEY_LEN + TAG_LEN {
            return Err(HandshakeError::BadLength {
                field: "clientFinish.static",
                len: static_ct.len(),
                expected: KEY_LEN + TAG_LEN,
            });
        }
        let state = &mut self.state;
        let client_static = state.decrypt_and_hash(&static_ct, "clientFinish.static")?;
        let client_static = key_field(Some(&client_static), "client static key")?;
        state.mix_key(&agree(&self.ephemeral.private, &client_static));
        let client_payload = state.decrypt_and_hash(&payload_ct, "clientFinish.payload")?;
        let (c2s, s2c) = state.split();
        Ok(ClientAccepted {
            client_static,
            client_payload,
            transport: TransportCipher::from_keys(s2c, c2s),
        })
    }
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    use super::*;
    use crate::cert::self_issued_identity;

    /// Cross-check against snow, a standard Noise implementation, with the same keys.
    ///
    /// Where WhatsApp's variant agrees with standard `Noise_XX_25519_AESGCM_SHA256`: the initial h and ck (the
    /// 28-byte name padded with zeros is what the standard does for names shorter than the hash), the prologue,
    /// the token order of messages 2 and 3 (e, ee, s, es / s, se), MixKey, EncryptAndHash, Split, and the AES-GCM
    /// nonce (the standard's 4 zero bytes + 64-bit counter equals WhatsApp's 8 zero bytes + 32-bit counter for
    /// every counter below 2^32, which is all WhatsApp allows).
    ///
    /// Where it differs: standard Noise hashes the first message's empty payload (MixHash of zero bytes, since
    /// no key is set yet), WhatsApp does not; from then on every h differs, so the second message's ciphertexts
    /// differ. Hashing the empty payload by hand in our initiator makes every later byte agree with snow.
    #[test]
    fn agrees_with_snow_except_the_unhashed_empty_payload() {
        let mut rng = StdRng::seed_from_u64(1);
        let (identity, trust) = self_issued_identity(&mut rng, 0, 10);
        let server_static = identity.static_key;
        let chain = identity.cert_chain;
        let server_ephemeral = PrivateKey::generate(&mut rng);
        let noise_key = KeyPair::generate(&mut rng);
        let client_ephemeral = PrivateKey::generate(&mut rng);

        for standard in [true, false] {
            let params: snow::params::NoiseParams = "Noise_XX_25519_AESGCM_SHA256".parse().unwrap();
            let mut snow_server = snow::Builder::new(params)
                .local_private_key(server_static.private.as_bytes())
                .unwrap()
                .fixed_ephemeral_key_for_testing_only(server_ephemeral.as_bytes())
                .prologue(&INTRO_HEADER)
                .unwrap()
                .build_responder()
                .unwrap();
            let mut initiator = Initiator::new(client_ephemeral.clone());
            if standard {
                initiator.state.mix_hash(&[]);
            }
            let mut buf = vec![0u8; 65535];
            // Message 1 is the bare ephemeral key in both.
            snow_server
                .read_message(initiator.ephemeral.public.as_bytes(), &mut buf)
                .unwrap();
            let len = snow_server.write_message(&chain, &mut buf).unwrap();
            let (e, rest) = buf[..len].split_at(32);
            let (static_ct, payload_ct) = rest.split_at(48);
            let server_hello = HandshakeMessage {
                server_hello: Some(ServerHello {
                    ephemeral: Some(e.to_vec()),
                    r#static: Some(static_ct.to_vec()),
                    payload: Some(payload_ct.to_vec()),
                    ..ServerHello::default()
                }),
                ..HandshakeMessage::default()
            }
            .encode_to_vec();
            let finish = match initiator.read_server_hello(&server_hello, &trust, 5) {
                Ok(finish) if standard => finish,
                Err(HandshakeError::Decrypt("serverHello.static")) if !standard => continue,
                other => panic!("standard={standard}: {other:?}"),
            };
            // Our third message is exactly what snow expects, and the transport ciphers interoperate.
            let (client_finish, mut transport) = finish.finish(&noise_key, b"payload");
            let finish = decode(&client_finish).unwrap().client_finish.unwrap();
            let mut message3 = finish.r#static.unwrap();
            message3.extend(finish.payload.unwrap());
            let len = snow_server.read_message(&message3, &mut buf).unwrap();
            assert_eq!(&buf[..len], b"payload");
            assert_eq!(
                snow_server.get_remote_static(),
                Some(&noise_key.public.as_bytes()[..])
            );
            let mut snow_transport = snow_server.into_transport_mode().unwrap();
            for size in [0, 1, 1000, 60_000] {
                let plaintext = vec![0xab; size];
                let sealed = transport.encrypt(&plaintext).unwrap();
                let len = snow_transport.read_message(&sealed, &mut buf).unwrap();
                assert_eq!(&buf[..len], &plaintext[..]);
                let len = snow_transport.write_message(&plaintext, &mut buf).unwrap();
                assert_eq!(transport.decrypt(&buf[..len]).unwrap(), plaintext);
            }
        }
    }
}
