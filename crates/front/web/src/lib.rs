//! The browser front (docs/web-api.md): `/phone/<user>@<domain>` WebSockets carrying the
//! gateway's JSON vocabulary, one line per socket on a shared [`ua::Ua`], and each call's
//! audio over WebRTC through [`webrtc::Peers`] on one UDP socket, handed to the line's
//! media as an encoded-frame port (pass-through when the SIP leg has the browser's
//! codec, transcoded otherwise).

pub mod assets;
mod phone;
pub mod protocol;
mod rtc;

pub use phone::{DEFAULT_CODECS, Phone, PhoneConfig, origin_allowed};
pub use rtc::RtcHandle;
