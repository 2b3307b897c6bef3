//! Errors of the engine's operations.

use whatsapp_binary::AttrError;

/// Why a pairing step failed.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum PairError {
    /// A required element of the stanza is missing.
    #[error("pairing stanza has no <{0}> element")]
    MissingElement(&'static str),
    /// An attribute is missing or invalid.
    #[error("pairing stanza: {0}")]
    Attr(#[from] AttrError),
    /// A protobuf inside the stanza does not decode.
    #[error("pairing stanza carries a malformed {0}")]
    Malformed(&'static str),
    /// The ADV identity's HMAC does not match this device's ADV secret.
    #[error("device identity HMAC does not match the ADV secret")]
    HmacMismatch,
    /// The account signature over the device identity is invalid.
    #[error("account signature over the device identity is invalid")]
    SignatureMismatch,
    /// The phone-number pairing code flow failed.
    #[error("pairing code: {0}")]
    PairCode(&'static str),
}

impl PairError {
    /// The error code and text sent back to the server (protocol-facts §3.4).
    pub fn reply_code(&self) -> (u16, &'static str) {
        match self {
            PairError::HmacMismatch => (401, "hmac-mismatch"),
            PairError::SignatureMismatch => (401, "signature-mismatch"),
            _ => (500, "internal-error"),
        }
    }
}

/// Why an answer from the server could not be read.
#[derive(Debug, thiserror::Error, PartialEq, Eq, Clone)]
#[non_exhaustive]
pub enum ResponseError {
    /// A required element is missing (the path names it).
    #[error("answer has no {0}")]
    Missing(&'static str),
    /// An element has the wrong size or form.
    #[error("answer has an invalid {0}")]
    Invalid(&'static str),
    /// The server reported an error for this item.
    #[error("server error {code} {text}")]
    Server {
        /// The error code.
        code: u16,
        /// The error text.
        text: String,
    },
}

/// Why a stanza the server pushed (presence, chat state, call, account notification) could not be read.
#[derive(Debug, thiserror::Error, PartialEq, Eq, Clone)]
#[non_exhaustive]
pub enum StanzaError {
    /// An attribute is missing or invalid.
    #[error("{0}")]
    Attr(#[from] AttrError),
    /// A required child element is missing (the path names it).
    #[error("stanza has no {0}")]
    Missing(&'static str),
    /// The stanza has a shape this engine does not accept (what is wrong is named).
    #[error("stanza has an invalid {0}")]
    Invalid(&'static str),
}
