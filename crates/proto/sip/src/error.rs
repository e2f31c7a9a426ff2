//! Parse errors. Each names what the peer got wrong, so a server can put it in a 400 reason phrase.

use thiserror::Error;

/// The peer sent something that is not valid SIP.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum ParseError {
    #[error("Empty message")]
    Empty,
    #[error("Message not UTF-8 in its header")]
    NotUtf8,
    #[error("Bad start line")]
    BadStartLine,
    #[error("Bad SIP version")]
    BadVersion,
    #[error("Bad status code")]
    BadStatus,
    #[error("Bad method")]
    BadMethod,
    #[error("Bad header line")]
    BadHeaderLine,
    #[error("Missing blank line after headers")]
    Unterminated,
    #[error("Bad Content-Length")]
    BadContentLength,
    #[error("Multiple Content-Length headers")]
    MultipleContentLength,
    #[error("Body shorter than Content-Length")]
    BodyTooShort,
    #[error("Missing {0} header")]
    MissingHeader(&'static str),
    #[error("Bad {0} header")]
    BadHeader(&'static str),
    #[error("Bad URI: {0}")]
    BadUri(&'static str),
    #[error("CSeq method does not match request method")]
    CSeqMethodMismatch,
    #[error("Message too large")]
    TooLarge,
    /// Well-formed, but asks for something we do not implement (e.g. a digest algorithm).
    #[error("Unsupported {0}")]
    Unsupported(&'static str),
}
