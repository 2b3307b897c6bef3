//! The tokio transport: WebSocket (over TLS for `wss://`), carrying Noise frames.
//!
//! [`connect`] opens `wss://web.whatsapp.com/ws/chat` (or a plain `ws://` URL, for local test servers), runs the
//! handshake and returns a [`NoiseSocket`]. [`NoiseListener`] is the server side for test servers. Timeouts are
//! the caller's (wrap the futures in `tokio::time::timeout`; WhatsApp's handshake timeout is 20 s,
//! protocol-facts §3.1).

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::{Bytes, BytesMut};
use futures::{SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream, ToSocketAddrs};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::{self, Message};

use crate::{
    FrameDecoder, FrameError, HandshakeError, INTRO_HEADER, Initiator, KeyPair, PrivateKey, PublicKey,
    Responder, ResponderIdentity, TransportCipher, TransportError, TrustRoot, VerifiedChain, encode_frame,
};

/// WhatsApp's WebSocket endpoint (protocol-facts §3.1).
pub const WHATSAPP_URL: &str = "wss://web.whatsapp.com/ws/chat";

/// The Origin header WhatsApp expects (protocol-facts §3.1).
pub const ORIGIN: &str = "https://web.whatsapp.com";

/// A connection or I/O failure of the WebSocket transport.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SocketError {
    /// A TCP-level failure.
    #[error("I/O error: {0}")]
    Io(#[from] io::Error),
    /// The WebSocket layer failed (upgrade refused, protocol violation...).
    #[error("WebSocket error: {0}")]
    WebSocket(#[from] Box<tungstenite::Error>),
    /// The URL is not a usable `ws://` or `wss://` URL.
    #[error("bad URL: {0}")]
    Url(String),
    /// The peer closed the connection before the handshake completed.
    #[error("connection closed during the handshake")]
    ClosedDuringHandshake,
    /// The frame stream was malformed.
    #[error(transparent)]
    Frame(#[from] FrameError),
    /// A transport frame failed to encrypt or decrypt.
    #[error(transparent)]
    Transport(#[from] TransportError),
    /// The Noise handshake failed.
    #[error(transparent)]
    Handshake(#[from] HandshakeError),
}

impl From<tungstenite::Error> for SocketError {
    fn from(e: tungstenite::Error) -> Self {
        Self::WebSocket(Box::new(e))
    }
}

/// A TCP stream, with or without TLS.
#[derive(Debug)]
pub enum Stream {
    /// Plain TCP (`ws://`).
    Plain(TcpStream),
    /// TLS over TCP (`wss://`), rustls with ring and the webpki roots.
    Tls(Box<tokio_rustls::client::TlsStream<TcpStream>>),
}

impl AsyncRead for Stream {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Self::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Self::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Self::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Plain(s) => Pin::new(s).poll_flush(cx),
            Self::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Self::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

/// An established Noise session over a WebSocket: sends and receives whole plaintext frames.
pub struct NoiseSocket<S> {
    ws: WebSocketStream<S>,
    cipher: TransportCipher,
    decoder: FrameDecoder,
}

impl<S> std::fmt::Debug for NoiseSocket<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NoiseSocket")
            .field("cipher", &self.cipher)
            .finish_non_exhaustive()
    }
}

/// Reads the next binary frame during the handshake (unencrypted).
async fn next_raw_frame<S>(
    ws: &mut WebSocketStream<S>,
    decoder: &mut FrameDecoder,
) -> Result<BytesMut, SocketError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    loop {
        if let Some(frame) = decoder.next_frame()? {
            return Ok(frame);
        }
        match ws.next().await {
            Some(Ok(Message::Binary(data))) => decoder.push(&data),
            Some(Ok(Message::Close(_))) | None => return Err(SocketError::ClosedDuringHandshake),
            Some(Ok(_)) => {}
            Some(Err(e)) => return Err(e.into()),
        }
    }
}

impl<S> NoiseSocket<S>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    /// Encrypts `plaintext` and sends it as one frame in one WebSocket message.
    pub async fn send_frame(&mut self, plaintext: &[u8]) -> Result<(), SocketError> {
        self.send_frames(&[plaintext]).await
    }

    /// Encrypts each plaintext and sends all the frames packed into one WebSocket message.
    pub async fn send_frames(&mut self, plaintexts: &[&[u8]]) -> Result<(), SocketError> {
        let mut out = BytesMut::new();
        for plaintext in plaintexts {
            self.cipher.seal_frame(plaintext, &mut out)?;
        }
        self.send_raw(out.freeze()).await
    }

    /// Encrypts one frame into `out` without sending it, for callers (test servers) that choose how frames are cut
    /// into WebSocket messages; send the bytes with [`send_raw`](Self::send_raw), in order.
    pub fn seal_frame(&mut self, plaintext: &[u8], out: &mut BytesMut) -> Result<(), SocketError> {
        Ok(self.cipher.seal_frame(plaintext, out)?)
    }

    /// Sends already-sealed frame bytes as one binary WebSocket message.
    pub async fn send_raw(&mut self, bytes: Bytes) -> Result<(), SocketError> {
        Ok(self.ws.send(Message::Binary(bytes)).await?)
    }

    /// Receives and decrypts the next frame; `Ok(None)` when the peer closed cleanly between frames.
    pub async fn recv_frame(&mut self) -> Result<Option<BytesMut>, SocketError> {
        loop {
            if let Some(frame) = self.decoder.next_frame()? {
                return Ok(Some(self.cipher.open_frame(frame)?));
            }
            match self.ws.next().await {
                Some(Ok(Message::Binary(data))) => self.decoder.push(&data),
                Some(Ok(Message::Close(_))) | None => {
                    self.decoder.finish()?;
                    return Ok(None);
                }
                Some(Ok(_)) => {}
                Some(Err(e)) => return Err(e.into()),
            }
        }
    }

    /// Sends a WebSocket close and flushes it.
    pub async fn close(&mut self) -> Result<(), SocketError> {
        match self.ws.close(None).await {
            Ok(()) | Err(tungstenite::Error::ConnectionClosed) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }
}

/// What the client side needs for the handshake. Time and the ephemeral key are passed in.
#[derive(Debug)]
pub struct ClientParams<'a> {
    /// The device's Noise static key pair.
    pub noise_key: &'a KeyPair,
    /// The encoded `ClientPayload` (opaque to this crate).
    pub client_payload: &'a [u8],
    /// The certificate root; [`TrustRoot::whatsapp`] for the real service.
    pub trust_root: TrustRoot,
    /// The current time, unix seconds, for the certificate validity check.
    pub now: u64,
    /// A fresh ephemeral key for this handshake.
    pub ephemeral: PrivateKey,
    /// An optional User-Agent header.
    pub user_agent: Option<&'a str>,
}

/// A connected, handshaken client socket and what the server proved.
#[derive(Debug)]
pub struct Connection {
    /// The session.
    pub socket: NoiseSocket<Stream>,
    /// The server's certified static key.
    pub server_static: PublicKey,
    /// What the certificate chain said.
    pub cert_chain: VerifiedChain,
}

/// Connects to `url` (`wss://...`, or `ws://...` for a local test server) and runs the client handshake.
pub async fn connect(url: &str, params: ClientParams<'_>) -> Result<Connection, SocketError> {
    let mut request = url.into_client_request()?;
    let headers = request.headers_mut();
    headers.insert("Origin", HeaderValue::from_static(ORIGIN));
    headers.insert("Cache-Control", HeaderValue::from_static("no-cache"));
    headers.insert("Pragma", HeaderValue::from_static("no-cache"));
    if let Some(agent) = params.user_agent {
        headers.insert(
            "User-Agent",
            HeaderValue::from_str(agent).map_err(|e| SocketError::Url(e.to_string()))?,
        );
    }
    let uri = request.uri();
    let host = uri
        .host()
        .ok_or_else(|| SocketError::Url(format!("{url}: no host")))?
        .to_owned();
    let tls = match uri.scheme_str() {
        Some("wss") => true,
        Some("ws") => false,
        _ => return Err(SocketError::Url(format!("{url}: scheme must be ws or wss"))),
    };
    let port = uri.port_u16().unwrap_or(if tls { 443 } else { 80 });
    let tcp = TcpStream::connect((host.as_str(), port)).await?;
    tcp.set_nodelay(true)?;
    let stream = if tls {
        let mut roots = rustls::RootCertStore::empty();
        roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        let config =
            rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
                .with_safe_default_protocol_versions()
                .map_err(io::Error::other)?
                .with_root_certificates(roots)
                .with_no_client_auth();
        let name =
            rustls::pki_types::ServerName::try_from(host).map_err(|e| SocketError::Url(e.to_string()))?;
        let tls = tokio_rustls::TlsConnector::from(Arc::new(config))
            .connect(name, tcp)
            .await?;
        Stream::Tls(Box::new(tls))
    } else {
        Stream::Plain(tcp)
    };
    let (ws, _response) =
        tokio_tungstenite::client_async_with_config(request, stream, Some(websocket_config())).await?;
    client_handshake(ws, params).await
}

/// tungstenite allocates each connection's read buffer up front, 128 KiB by default: most of an idle connection's
/// memory. Stanzas are small (a few hundred bytes, rarely more than a few KiB) and larger frames are read in several
/// chunks, so 8 KiB costs nothing in throughput and keeps thousands of idle connections in one process cheap.
fn websocket_config() -> tungstenite::protocol::WebSocketConfig {
    tungstenite::protocol::WebSocketConfig::default().read_buffer_size(8 * 1024)
}

async fn client_handshake(
    mut ws: WebSocketStream<Stream>,
    params: ClientParams<'_>,
) -> Result<Connection, SocketError> {
    let initiator = Initiator::new(params.ephemeral);
    let mut hello = BytesMut::from(&INTRO_HEADER[..]);
    encode_frame(&initiator.client_hello(), &mut hello)?;
    ws.send(Message::Binary(hello.freeze())).await?;
    let mut decoder = FrameDecoder::new();
    let server_hello = next_raw_frame(&mut ws, &mut decoder).await?;
    let finish = initiator.read_server_hello(&server_hello, &params.trust_root, params.now)?;
    let server_static = *finish.server_static();
    let cert_chain = finish.cert_chain().clone();
    let (client_finish, cipher) = finish.finish(params.noise_key, params.client_payload);
    let mut out = BytesMut::new();
    encode_frame(&client_finish, &mut out)?;
    ws.send(Message::Binary(out.freeze())).await?;
    Ok(Connection {
        socket: NoiseSocket { ws, cipher, decoder },
        server_static,
        cert_chain,
    })
}

/// A TCP listener that accepts WebSocket clients and runs the responder handshake (for test servers).
#[derive(Debug)]
pub struct NoiseListener {
    tcp: TcpListener,
    identity: Arc<ResponderIdentity>,
}

impl NoiseListener {
    /// Binds to `addr` (e.g. `127.0.0.1:0`), presenting `identity` to every client.
    pub async fn bind(addr: impl ToSocketAddrs, identity: ResponderIdentity) -> io::Result<Self> {
        Ok(Self {
            tcp: TcpListener::bind(addr).await?,
            identity: Arc::new(identity),
        })
    }

    /// The bound address.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.tcp.local_addr()
    }

    /// Waits for the next TCP connection; run [`IncomingConnection::handshake`] on it (in its own task if
    /// several clients may connect).
    pub async fn accept(&self) -> io::Result<IncomingConnection> {
        let (stream, peer) = self.tcp.accept().await?;
        stream.set_nodelay(true)?;
        Ok(IncomingConnection {
            stream,
            peer,
            identity: Arc::clone(&self.identity),
        })
    }
}

/// A TCP connection accepted by [`NoiseListener`], not yet upgraded.
#[derive(Debug)]
pub struct IncomingConnection {
    stream: TcpStream,
    peer: SocketAddr,
    identity: Arc<ResponderIdentity>,
}

/// A client accepted by the server side.
#[derive(Debug)]
pub struct Accepted {
    /// The session.
    pub socket: NoiseSocket<TcpStream>,
    /// The client's static (noise) key.
    pub client_static: PublicKey,
    /// The decrypted client payload (an encoded `ClientPayload`).
    pub client_payload: Vec<u8>,
}

impl IncomingConnection {
    /// The client's address.
    pub fn peer_addr(&self) -> SocketAddr {
        self.peer
    }

    /// Upgrades to WebSocket and runs the responder handshake with the given ephemeral key.
    pub async fn handshake(self, ephemeral: PrivateKey) -> Result<Accepted, SocketError> {
        let mut ws =
            tokio_tungstenite::accept_async_with_config(self.stream, Some(websocket_config())).await?;
        let mut decoder = FrameDecoder::with_intro_header();
        let client_hello = next_raw_frame(&mut ws, &mut decoder).await?;
        let (responder, server_hello) =
            Responder::new(ephemeral).read_client_hello(&client_hello, &self.identity)?;
        let mut out = BytesMut::new();
        encode_frame(&server_hello, &mut out)?;
        ws.send(Message::Binary(out.freeze())).await?;
        let client_finish = next_raw_frame(&mut ws, &mut decoder).await?;
        let accepted = responder.read_client_finish(&client_finish)?;
        Ok(Accepted {
            socket: NoiseSocket {
                ws,
                cipher: accepted.transport,
                decoder,
            },
            client_static: accepted.client_static,
            client_payload: accepted.client_payload,
        })
    }
}
