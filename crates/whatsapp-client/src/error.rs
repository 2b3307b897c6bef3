//! Errors of the client's operations.

use whatsapp_core::PairError;
use whatsapp_noise::SocketError;
use whatsapp_store::StoreError;

/// Why a client operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// The connection or its handshake failed (including a server certificate that does not chain to the trust
    /// root).
    #[error("connection failed: {0}")]
    Socket(#[from] SocketError),
    /// The handshake did not finish in time.
    #[error("the handshake did not finish within {0:?}")]
    HandshakeTimeout(std::time::Duration),
    /// The store failed.
    #[error("store: {0}")]
    Store(#[from] StoreError),
    /// A pairing step failed.
    #[error("pairing: {0}")]
    Pair(#[from] PairError),
    /// `connect` was called while a connection task is running.
    #[error("already connected")]
    AlreadyConnected,
    /// The operation needs a live, logged-in connection.
    #[error("not connected")]
    NotConnected,
    /// The operation needs a device that is not paired yet.
    #[error("this device is already paired")]
    AlreadyPaired,
    /// The device was logged out; its store is gone. Build a new client to pair again.
    #[error("logged out")]
    LoggedOut,
    /// The server answered an IQ with an error.
    #[error("server answered {code} {text}")]
    Iq {
        /// The error code.
        code: u16,
        /// The error text.
        text: String,
    },
    /// An IQ got no answer in time.
    #[error("no answer to the request in time")]
    IqTimeout,
    /// The connection ended while a request was waiting.
    #[error("the connection closed before the answer arrived")]
    ConnectionClosed,
    /// Signal encryption or decryption failed.
    #[error("signal: {0}")]
    Signal(#[from] whatsapp_signal::Error),
    /// The server's answer could not be read.
    #[error("answer: {0}")]
    Response(#[from] whatsapp_core::ResponseError),
    /// A message did not decode.
    #[error("malformed message: {0}")]
    Malformed(String),
    /// A media host request failed.
    #[error("media transfer: {0}")]
    Http(String),
    /// A downloaded file did not decrypt or match its hashes.
    #[error("media: {0}")]
    Media(#[from] whatsapp_core::media::MediaError),
    /// App-state data did not verify or decode.
    #[error("app state: {0}")]
    AppState(#[from] whatsapp_appstate::AppStateError),
    /// The original message's secret is not known (the poll or message was never seen by this device).
    #[error("the original message's secret is not known")]
    MissingSecret,
    /// A secret-encrypted payload (a poll vote) did not decrypt.
    #[error("secret: {0}")]
    Secret(#[from] whatsapp_core::secret::SecretError),
    /// The media host no longer has the file (HTTP 403, 404 or 410): ask the phone to upload it again with
    /// [`Client::request_media_retry`](crate::Client::request_media_retry).
    #[error("the media host no longer has the file (HTTP {status})")]
    MediaExpired {
        /// The HTTP status.
        status: u16,
    },
    /// A file to send is not what its message kind needs (an image that does not decode, a sticker that is not
    /// WebP).
    #[error("media to send: {0}")]
    MediaInfo(#[from] whatsapp_core::media_info::MediaInfoError),
    /// The phone's answer to a media retry request could not be read.
    #[error("media retry: {0}")]
    MediaRetry(#[from] whatsapp_core::media_retry::MediaRetryError),
    /// A large download could not be written to (or read back from) its temporary file.
    #[error("temporary file: {0}")]
    TempFile(#[source] std::io::Error),
    /// The operation is not supported for this kind of recipient yet.
    #[error("unsupported: {0}")]
    Unsupported(&'static str),
    /// Presence needs a push name: set one with [`Client::set_push_name`](crate::Client::set_push_name) first.
    #[error("no push name set; contacts would see none")]
    NoPushName,
    /// A stanza from the server (an answer or a pushed stanza) could not be read.
    #[error("stanza: {0}")]
    Stanza(#[from] whatsapp_core::StanzaError),
    /// A channel (newsletter) request could not be made, or its answer read; GraphQL errors of the server are
    /// here too.
    #[error("channel: {0}")]
    Newsletter(#[from] whatsapp_core::newsletter::NewsletterError),
    /// A request was refused before it was sent (what is wrong is named).
    #[error("invalid request: {0}")]
    InvalidRequest(&'static str),
    /// The server delivered a message without a copy for this device (`<unavailable type>`; the type, such as
    /// `view_once`, when given): there is nothing to decrypt, and the message is asked from the phone.
    #[error("the server has no copy of the message for this device ({0:?})")]
    MessageUnavailable(String),
}
