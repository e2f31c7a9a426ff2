//! The public vocabulary of the stack: configuration, commands in, outputs and events out.

use std::fmt;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use sip::transaction::{Config as TxnConfig, Flow};
use sip::{ParseError, Transport, Uri};

/// Identifies one line of a [`crate::Stack`] for its whole life (ids are never reused).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LineId(pub(crate) u64);

impl LineId {
    /// The raw number, for logs and maps in the I/O layer.
    pub fn get(self) -> u64 {
        self.0
    }
}

impl fmt::Display for LineId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line-{}", self.0)
    }
}

/// Settings shared by every line of a [`crate::Stack`].
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct StackConfig {
    /// The local address of the one SIP socket all lines share; used as `Flow::local`.
    pub local: SocketAddr,
    /// The address written in Via and Contact when it differs from `local` (a wildcard
    /// bind, NAT with a known public address). Defaults to `local`.
    pub public: Option<SocketAddr>,
    /// The transport of that socket. Every request goes out on it; resolved targets of
    /// another transport are skipped.
    pub transport: Transport,
    /// Value of the User-Agent header (requests) and the Server header (responses).
    pub user_agent: String,
    /// Transaction timers (T1, T2, T4).
    pub txn: TxnConfig,
    /// Seed of the generator for Call-IDs, tags, branches and SDP session ids.
    pub rng_seed: u64,
    /// The media layer can transcode between Speex, G.711, G.722 and Opus: answers then
    /// accept any of them whatever the client's codec list (seed-spec §2.6 "transcoder").
    pub transcoder: bool,
    /// Longest time [`crate::Stack::remove_line`] waits for BYE and unregister responses
    /// before reporting [`LineEvent::Closed`]. 5 s, as the original gateway's BYE wait.
    pub close_timeout: Duration,
    /// How long a resolved next hop is reused before it is resolved again.
    pub resolve_cache: Duration,
}

impl StackConfig {
    /// UDP on `local`, default timers, no transcoder.
    pub fn new(local: SocketAddr) -> StackConfig {
        StackConfig {
            local,
            public: None,
            transport: Transport::Udp,
            user_agent: format!("Switchboard/{}", env!("CARGO_PKG_VERSION")),
            txn: TxnConfig::default(),
            rng_seed: 0,
            transcoder: false,
            close_timeout: Duration::from_secs(5),
            resolve_cache: Duration::from_secs(300),
        }
    }
}

/// One line: its identity, credentials and where its requests go.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct LineConfig {
    /// Address of record, `sip:user@domain`.
    pub aor: Uri,
    /// Display name of the local identity (`"<name>" <sip:AOR>` in From/To).
    pub display_name: Option<String>,
    /// Digest user name; the AOR's user part when `None` (seed-spec §1.1 `authname`).
    pub auth_user: Option<String>,
    /// Digest password. `None` or empty: anonymous line, no REGISTER (seed-spec §1.2).
    pub password: Option<String>,
    /// Where every request of the line goes. `None`: RFC 3263 location of the
    /// Request-URI (REGISTER: the AOR's domain) or of the dialog's route set / target.
    pub outbound_proxy: Option<Uri>,
    /// Expires asked for in REGISTER; 600 s by default.
    pub register_expires: u32,
    /// The connect-time `rate` was `narrowband`: the default offer (no codec list) leads
    /// with speex/8000.
    pub narrowband: bool,
    /// An outgoing call not answered within this time is cancelled and reported as
    /// `rejected("408 Request Timeout")`. 120 s by default.
    pub invite_timeout: Duration,
    /// An incoming call not accepted or rejected within this time gets a 480 and is
    /// reported as `cancelled(..)`. 120 s by default.
    pub ring_timeout: Duration,
    /// The front can answer a WebRTC offer (DTLS-SRTP, RFC 5764) with media of its own:
    /// such an INVITE rings with [`LineEvent::WebRtcOffer`] and is answered with
    /// [`Command::AcceptWebRtc`]. Without it such offers get 488.
    pub webrtc_offers: bool,
}

impl LineConfig {
    /// A line for `aor`, written `user@domain` (as in the RTMP URL) or as a full
    /// `sip:`/`sips:` URI. Anonymous until a password is set.
    pub fn new(aor: &str) -> Result<LineConfig, ParseError> {
        let aor = aor.trim();
        let text = if aor.contains(':') && Uri::parse(aor).is_ok_and(|u| u.opaque.is_none()) {
            aor.to_string()
        } else {
            format!("sip:{aor}")
        };
        let mut uri = Uri::parse(&text)?;
        if uri.opaque.is_some() || uri.host.is_empty() {
            return Err(ParseError::BadUri("AOR must be a sip: or sips: URI"));
        }
        uri.params.clear();
        uri.headers = None;
        uri.password = None;
        Ok(LineConfig {
            aor: uri,
            display_name: None,
            auth_user: None,
            password: None,
            outbound_proxy: None,
            register_expires: 600,
            narrowband: false,
            invite_timeout: Duration::from_secs(120),
            ring_timeout: Duration::from_secs(120),
            webrtc_offers: false,
        })
    }
}

/// What the client asks of its line (seed-spec §1.3). `register` is implicit: a line
/// with a password registers when it is added.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Command {
    /// Outbound call to `dest` (`"Bob" <sip:bob@host>`, `sip:bob@host`, `bob@host`).
    /// `codecs` is the seed's codec-string list (`wideband narrowband pcmu pcma ulaw alaw
    /// dtmf h264 flv`), empty for the default offer; `rtp` is the local RTP address the
    /// front allocated, written in the SDP. `video` is the local video RTP address: with
    /// it, the list's `flv` and `h264` entries add the seed's video m-line (seed-spec
    /// §2.6); without it the call is audio only.
    Invite {
        dest: String,
        codecs: Vec<String>,
        rtp: SocketAddr,
        video: Option<SocketAddr>,
    },
    /// Answer the ringing incoming call (`video` as for [`Command::Invite`]).
    Accept {
        codecs: Vec<String>,
        rtp: SocketAddr,
        video: Option<SocketAddr>,
    },
    /// Answer the ringing call whose offer was WebRTC ([`LineEvent::WebRtcOffer`]) with
    /// `answer`, the SDP of the front's own WebRTC endpoint for that offer. The front
    /// carries the media; the line sends no [`MediaCommand`]s for the call, answers
    /// re-offers with this answer (direction mirrored) and sends DTMF by SIP INFO.
    AcceptWebRtc { answer: String },
    /// Refuse the ringing incoming call: `None` → 603 Decline, `"486 Busy Here"` → 486,
    /// `"Go away"` → 603 Go away (seed-spec §1.3, §8 item 14).
    Reject { reason: Option<String> },
    /// Hang up: cancels a pending outbound call, declines a ringing inbound one, ends
    /// an active call. No event follows.
    Bye,
    /// One DTMF digit (`0-9 * # A-D`): RFC 4733 by the media layer when telephone-event
    /// was negotiated, SIP INFO `application/dtmf-relay` otherwise.
    SendDtmf(char),
    /// Put the remote on hold (true) or resume (false) with a re-INVITE.
    Hold(bool),
    /// Ask the remote's video encoder for a key frame: a SIP INFO `picture_fast_update`
    /// (`application/media_control+xml`, RFC 5168) in the active video call. The caller
    /// rate-limits (seed-spec §3.5: at most once per 5 s).
    RequestKeyFrame,
}

/// What the line tells its client: the seed's callbacks (seed-spec §1.4) plus the
/// registration outcome and the end of a removed line.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum LineEvent {
    /// The initial REGISTER succeeded; `expires` is the granted interval.
    /// Also sent when a registration that was lost is restored.
    Registered { expires: u32 },
    /// The initial REGISTER failed (`"401 Unauthorized"`, `"408 Request Timeout"`, ...).
    RegistrationFailed { code: u16, reason: String },
    /// A refresh failed: the line is no longer reachable. It retries in the background
    /// and reports [`LineEvent::Registered`] when that works again.
    RegistrationLost { code: u16, reason: String },
    /// `ringing("180 Ringing")`: a 180 or 183 for the outbound INVITE.
    Ringing(String),
    /// `accepted()` (`None`: no codec list was given) or `accepted(audio, video)`.
    Accepted(Option<(Option<String>, Option<String>)>),
    /// `rejected("486 Busy Here")`: the outbound call failed.
    Rejected(String),
    /// The incoming call's offer is WebRTC (DTLS-SRTP): its SDP, for a front with
    /// [`LineConfig::webrtc_offers`] to answer with [`Command::AcceptWebRtc`]. Comes just
    /// before [`LineEvent::Invited`].
    WebRtcOffer(String),
    /// `invited(from, to)`: an incoming call is ringing.
    Invited { from: String, to: String },
    /// `cancelled(from, to)`: the caller gave up (or the ring timeout passed).
    Cancelled { from: String, to: String },
    /// `byed()`: the remote ended the call, or accepting it failed.
    Byed,
    /// `holded(isHold)`: the remote re-INVITEd with SDP; true when it put us on hold.
    Holded(bool),
    /// A DTMF digit arrived by SIP INFO.
    Dtmf(char),
    /// The remote asked for a video key frame (SIP INFO `picture_fast_update`, RFC 5168).
    KeyFrameRequested,
    /// The line is gone after [`crate::Stack::remove_line`]; its id is dead.
    Closed,
}

/// Where and how to run RTP for a call. Payload types are the remote's.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MediaParams {
    /// Our RTP address (the one written in our SDP).
    pub local: SocketAddr,
    /// Where to send RTP. Unspecified (`0.0.0.0:port`) when the remote gave no usable
    /// address (legacy hold); `send` is then false.
    pub remote_rtp: SocketAddr,
    /// Where to send RTCP, when known.
    pub remote_rtcp: Option<SocketAddr>,
    /// The audio codec on the wire.
    pub codec: sdp::Format,
    /// Payload type of telephone-event (RFC 4733), if negotiated.
    pub telephone_event: Option<u8>,
    /// Packet duration in ms (the remote's `a=ptime`, 20 by default).
    pub ptime: u32,
    /// Set when the client's codec differs from `codec`: the media layer transcodes the
    /// client's audio to this format (the remote's payload type) and back.
    pub transcode_to: Option<sdp::Format>,
    /// With `transcode_to`: the format the client itself speaks (seed-spec §2.6: what its
    /// `accepted` argument names, speex at 16 kHz by default), when the line knows it.
    pub client_codec: Option<sdp::Format>,
    /// We send RTP (not on hold by either side in that direction).
    pub send: bool,
    /// We accept RTP.
    pub recv: bool,
    /// The video stream, when one was agreed (seed-spec §2.6, §3.4, §3.5).
    pub video: Option<Box<VideoParams>>,
}

/// The video stream of a call. Payload types are the remote's.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VideoParams {
    /// Our video RTP address.
    pub local: SocketAddr,
    /// Where to send video RTP (unspecified when the remote gave no usable address).
    pub remote_rtp: SocketAddr,
    pub remote_rtcp: Option<SocketAddr>,
    /// `x-flv/90000` (the gateway-to-gateway tunnel of every RTMP message) or
    /// `h264/90000` (with its fmtp).
    pub codec: sdp::Format,
    /// The x-flv tunnel was agreed: every RTMP message of the client goes through it.
    pub tunnel: bool,
    /// H.264 `packetization-mode` (RFC 6184 §8.1): 0 unless the remote's fmtp says 1.
    pub packetization_mode: u8,
    pub send: bool,
    pub recv: bool,
}

/// What the media layer must do for a line.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum MediaCommand {
    /// The call is up: open the RTP session.
    Start(MediaParams),
    /// A re-INVITE changed the session (hold, resume, new address or codec).
    Update(MediaParams),
    /// The call is over: close the RTP session.
    Stop,
    /// Send one RFC 4733 event for this digit.
    SendDtmf(char),
}

/// A host name the I/O layer must locate (RFC 3263) before a request can be sent.
/// Answer with [`crate::Stack::resolved`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResolveRequest {
    pub id: u64,
    pub host: String,
    /// The URI's port; `None` lets SRV records choose (RFC 3263 §4.2).
    pub port: Option<u16>,
    /// The URI's `transport` parameter, or the stack's transport.
    pub transport: Option<Transport>,
    /// A `sips:` URI: only TLS targets qualify.
    pub secure: bool,
}

/// What [`crate::Stack::poll_output`] returns.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum Output {
    /// Send these bytes on this flow.
    Transmit { flow: Flow, bytes: Bytes },
    /// Tell the line's client.
    Event { line: LineId, event: LineEvent },
    /// Drive the line's media session.
    Media { line: LineId, media: MediaCommand },
    /// Locate a host and call [`crate::Stack::resolved`] with the result.
    Resolve(ResolveRequest),
}
