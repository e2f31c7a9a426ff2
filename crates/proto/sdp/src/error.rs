//! Errors, split by whose fault they are (style.md habit 8), with one mapping to SIP status codes.

use thiserror::Error;

/// Everything that can go wrong while parsing SDP or running offer/answer.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum SdpError {
    /// The peer sent bytes that are not a valid session description (RFC 4566 §5, §9).
    #[error("malformed SDP: {0}")]
    Malformed(String),
    /// The offer is valid SDP, but not one of its streams can be accepted
    /// (RFC 3264 §6: every m-line would be answered with port 0). A UAS answers 488.
    #[error("no acceptable media in the offer")]
    NoAcceptableMedia,
    /// The answer does not have one m-line per m-line of the offer (RFC 3264 §6).
    #[error("answer has {answer} m-lines, the offer has {offer}")]
    MediaCountMismatch {
        /// m-lines in the offer.
        offer: usize,
        /// m-lines in the answer.
        answer: usize,
    },
    /// The caller passed inconsistent arguments (for example fewer ports than local streams,
    /// or capabilities with no stream at all).
    #[error("invalid argument: {0}")]
    InvalidArgument(&'static str),
}

impl SdpError {
    /// The SIP status a UAS sends when the offer in a request fails with this error.
    ///
    /// `Malformed` → 400, `NoAcceptableMedia` and `MediaCountMismatch` → 488
    /// (RFC 3261 §21.4.26), `InvalidArgument` (our own fault) → 500.
    pub fn sip_status(&self) -> u16 {
        match self {
            SdpError::Malformed(_) => 400,
            SdpError::NoAcceptableMedia | SdpError::MediaCountMismatch { .. } => 488,
            SdpError::InvalidArgument(_) => 500,
        }
    }
}
