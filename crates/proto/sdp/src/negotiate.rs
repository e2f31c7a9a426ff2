//! RFC 3264 offer/answer: building offers and answers from local capabilities, reading
//! the result of a negotiation, and re-offers for hold and resume.

use std::net::{IpAddr, SocketAddr};

use sdp_types::{Attribute, Connection, Media, NetType, Origin, Time};

use crate::attr::{Direction, MediaKind};
use crate::session::{MediaDesc, direction_of};
use crate::{Format, SdpError, Session};

/// What this side can do, one entry per stream it is willing to run.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Capabilities {
    /// Local streams, in the order an offer lists them.
    pub media: Vec<LocalMedia>,
}

impl Capabilities {
    /// The first local stream of a kind.
    pub fn first(&self, kind: &MediaKind) -> Option<&LocalMedia> {
        self.media.iter().find(|m| m.kind.same_as(kind))
    }
}

/// One local stream: its media type, the transports and formats it accepts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalMedia {
    /// Media type.
    pub kind: MediaKind,
    /// Transport profiles accepted in an offer, compared case-insensitively. The first
    /// is the one written in our own offers. An offered stream with any other profile is
    /// rejected, because RFC 3264 §6 makes the answer use the offer's profile.
    pub protos: Vec<String>,
    /// Formats in order of preference. Each format's own payload type is used in our
    /// offers; answers use the offer's payload types.
    pub formats: Vec<Format>,
    /// The directions this stream supports (sendrecv unless the application only sends
    /// or only receives).
    pub direction: Direction,
    /// `a=ptime` to write, if any.
    pub ptime: Option<u32>,
    /// Whether RTP/RTCP multiplexing (RFC 5761) is supported.
    pub rtcp_mux: bool,
}

impl LocalMedia {
    /// A sendrecv `RTP/AVP` stream with the given formats.
    pub fn new(kind: MediaKind, formats: Vec<Format>) -> LocalMedia {
        LocalMedia {
            kind,
            protos: vec!["RTP/AVP".to_owned()],
            formats,
            direction: Direction::SendRecv,
            ptime: None,
            rtcp_mux: false,
        }
    }

    fn accepts_proto(&self, proto: &str) -> bool {
        self.protos.iter().any(|p| p.eq_ignore_ascii_case(proto))
    }
}

/// Values an offer or answer needs that the caller owns: addresses, ports and the
/// o= line numbers (no clock is read here).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionParams {
    /// Address written in `o=` and the session-level `c=`.
    pub addr: IpAddr,
    /// RTP port of each local stream, aligned with [`Capabilities::media`]. A port of 0
    /// disables that stream.
    pub ports: Vec<u16>,
    /// `<sess-id>` of the o= line.
    pub session_id: u64,
    /// `<sess-version>` of the o= line.
    pub session_version: u64,
}

/// The parameters of [`answer`]; the same as those of [`offer`].
pub type AnswerParams = SessionParams;

/// The outcome of a negotiation, one entry per m-line in m-line order.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Negotiated {
    /// One entry per m-line of the offer (and of the answer).
    pub media: Vec<NegotiatedMedia>,
}

/// The outcome for one m-line. "Remote" is the peer: the offerer for [`answer`], the
/// answerer for [`apply_answer`]. Payload types are the remote's, which are the ones to
/// send with (RFC 3264 §5.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NegotiatedMedia {
    /// Position of the m-line.
    pub index: usize,
    /// Media type.
    pub kind: MediaKind,
    /// The local stream used: for [`answer`] an index into [`Capabilities::media`]; for
    /// [`apply_answer`] the m-line index of our offer (the same thing when the offer
    /// came from [`offer`]).
    pub local_media: Option<usize>,
    /// Both sides have a non-zero port and there is a common codec.
    pub accepted: bool,
    /// Our port in our SDP (0 when rejected).
    pub local_port: u16,
    /// The remote's port in its SDP (0 when it rejected or disabled the stream).
    pub remote_port: u16,
    /// The codec to use: the first common format that is not auxiliary
    /// (telephone-event, CN, …), in the order of the remote's m-line. It is the remote's
    /// description (its payload type, name spelling and fmtp).
    pub codec: Option<Format>,
    /// Every common format, in the order of the remote's m-line.
    pub formats: Vec<Format>,
    /// Every format of the remote's m-line that could be resolved.
    pub remote_formats: Vec<Format>,
    /// Where to send RTP (None when rejected, unknown or a hold address).
    pub remote_rtp: Option<SocketAddr>,
    /// Where to send RTCP (the RTP address when multiplexed).
    pub remote_rtcp: Option<SocketAddr>,
    /// RTP and RTCP share one port (RFC 5761): both sides asked for it.
    pub rtcp_mux: bool,
    /// Payload type of a common telephone-event format (RFC 4733), preferring the
    /// codec's clock rate.
    pub telephone_event: Option<u8>,
    /// The remote's `a=ptime`.
    pub ptime: Option<u32>,
    /// The remote's `a=maxptime`.
    pub maxptime: Option<u32>,
    /// Our direction for the stream, as written in (or implied by) our SDP.
    pub direction: Direction,
    /// The remote's direction, with a legacy `c=0.0.0.0` read as "do not send to me".
    pub remote_direction: Direction,
    /// The remote has put us on hold (it does not want to receive).
    pub remote_hold: bool,
}

impl NegotiatedMedia {
    fn rejected(index: usize, m: &MediaDesc<'_>, local_media: Option<usize>) -> NegotiatedMedia {
        NegotiatedMedia {
            index,
            kind: m.kind(),
            local_media,
            accepted: false,
            local_port: 0,
            remote_port: m.port(),
            codec: None,
            formats: Vec::new(),
            remote_formats: m.formats(),
            remote_rtp: None,
            remote_rtcp: None,
            rtcp_mux: false,
            telephone_event: None,
            ptime: m.ptime(),
            maxptime: m.maxptime(),
            direction: Direction::Inactive,
            remote_direction: m.effective_direction(),
            remote_hold: m.is_hold(),
        }
    }
}

impl Negotiated {
    /// The first accepted stream of a kind.
    pub fn first_accepted(&self, kind: &MediaKind) -> Option<&NegotiatedMedia> {
        self.media
            .iter()
            .find(|m| m.accepted && m.kind.same_as(kind))
    }

    /// The first accepted audio stream.
    pub fn audio(&self) -> Option<&NegotiatedMedia> {
        self.first_accepted(&MediaKind::Audio)
    }

    /// The first accepted video stream.
    pub fn video(&self) -> Option<&NegotiatedMedia> {
        self.first_accepted(&MediaKind::Video)
    }

    /// Both SDPs have a stream of this kind with a non-zero port (the original gateway's
    /// `hasType`, seed-spec §2.6).
    pub fn has_kind(&self, kind: &MediaKind) -> bool {
        self.media
            .iter()
            .any(|m| m.kind.same_as(kind) && m.local_port != 0 && m.remote_port != 0)
    }

    /// Some remote m-line with a non-zero port has a format equal to `format` by name,
    /// clock rate and channels, or, for a payload type below 96, by payload type (the
    /// original gateway's `hasYourFormat`, seed-spec §2.6).
    pub fn remote_has(&self, format: &Format) -> bool {
        self.media
            .iter()
            .filter(|m| m.remote_port != 0)
            .flat_map(|m| &m.remote_formats)
            .any(|r| {
                (format.pt < 96 && r.pt == format.pt)
                    || (r.name.eq_ignore_ascii_case(&format.name)
                        && r.rate == format.rate
                        && r.channels == format.channels)
            })
    }

    /// The remote has put every accepted stream on hold (and at least one is accepted).
    pub fn is_remote_hold(&self) -> bool {
        let mut accepted = self.media.iter().filter(|m| m.accepted).peekable();
        accepted.peek().is_some() && accepted.all(|m| m.remote_hold)
    }
}

/// Answers an offer (RFC 3264 §6).
///
/// - Each offered m-line, in order, takes the first local stream of the same media type
///   not used yet. The answer has exactly as many m-lines as the offer.
/// - Formats follow the **offer's** order and carry the **offer's** payload types; so do
///   our `a=fmtp` lines (the original gateway kept its own numbers there, seed-spec §7.29).
///   Every common format is listed. Formats match as in [`Format::matches`].
/// - A stream that is rejected in the offer, has no local stream of its type, uses a
///   transport the local stream does not accept, or has no common codec (auxiliary
///   formats such as telephone-event alone do not count) is answered with port 0 and the
///   offer's format list (RFC 3264 §6).
/// - Directions follow RFC 3264 §6.1 (sendonly ↔ recvonly, inactive ↔ inactive), limited
///   by the local stream's direction; a legacy `c=0.0.0.0` offer is read as "the offerer
///   does not receive".
/// - `t=` is copied from the offer; `o=`, `s=-` and a session-level `c=` are ours.
///
/// Fails with [`SdpError::NoAcceptableMedia`] (→ 488) when no stream can be accepted.
pub fn answer(
    offer: &Session,
    local: &Capabilities,
    params: &AnswerParams,
) -> Result<(Session, Negotiated), SdpError> {
    if params.ports.len() < local.media.len() {
        return Err(SdpError::InvalidArgument("fewer ports than local streams"));
    }
    let mut used = vec![false; local.media.len()];
    let mut medias = Vec::with_capacity(offer.media_count());
    let mut negotiated = Negotiated::default();

    for m in offer.medias() {
        let index = m.index();
        let kind = m.kind();
        let slot = if m.is_rejected() {
            None
        } else {
            local
                .media
                .iter()
                .enumerate()
                .position(|(i, l)| !used[i] && l.kind.same_as(&kind))
        };
        if let Some(i) = slot {
            used[i] = true;
        }
        let accepted = slot.and_then(|i| {
            let l = &local.media[i];
            let port = params.ports[i];
            if port == 0 || !m.is_rtp() || !l.accepts_proto(m.proto()) {
                return None;
            }
            let common: Vec<(Format, &Format)> = m
                .formats()
                .into_iter()
                .filter_map(|o| l.formats.iter().find(|lf| lf.matches(&o)).map(|lf| (o, lf)))
                .collect();
            common
                .iter()
                .any(|(o, _)| !o.is_auxiliary())
                .then_some((i, l, port, common))
        });

        let Some((i, l, port, common)) = accepted else {
            medias.push(rejected_media(&m));
            negotiated
                .media
                .push(NegotiatedMedia::rejected(index, &m, slot));
            continue;
        };

        let remote_direction = m.effective_direction();
        let direction = l.direction.intersect(remote_direction.reversed());
        let rtcp_mux = l.rtcp_mux && m.rtcp_mux();

        let mut media = Media {
            media: m.raw().media.clone(),
            port,
            num_ports: None,
            proto: m.proto().to_owned(),
            fmt: join_pts(common.iter().map(|(o, _)| o.pt)),
            media_title: None,
            connections: Vec::new(),
            bandwidths: Vec::new(),
            key: None,
            attributes: Vec::new(),
        };
        if let Some(mid) = m.mid() {
            media.attributes.push(Attribute::with_value("mid", mid));
        }
        for (o, lf) in &common {
            // Echo the offer's own rtpmap spelling where it wrote one.
            let rtpmap = m
                .rtpmap_value(o.pt)
                .map_or_else(|| o.rtpmap_value(o.pt), str::to_owned);
            media
                .attributes
                .push(Attribute::with_value("rtpmap", rtpmap));
            if let Some(fmtp) = &lf.fmtp {
                media
                    .attributes
                    .push(Attribute::with_value("fmtp", format!("{} {fmtp}", o.pt)));
            }
        }
        push_common_attributes(&mut media, l.ptime, direction, rtcp_mux, true);
        medias.push(media);

        let formats: Vec<Format> = common.into_iter().map(|(o, _)| o).collect();
        let remote_rtp = m.rtp_addr();
        negotiated.media.push(NegotiatedMedia {
            index,
            kind,
            local_media: Some(i),
            accepted: true,
            local_port: port,
            remote_port: m.port(),
            codec: formats.iter().find(|f| !f.is_auxiliary()).cloned(),
            telephone_event: telephone_event(&formats),
            formats,
            remote_formats: m.formats(),
            remote_rtp,
            remote_rtcp: if rtcp_mux { remote_rtp } else { m.rtcp_addr() },
            rtcp_mux,
            ptime: m.ptime(),
            maxptime: m.maxptime(),
            direction,
            remote_direction,
            remote_hold: m.is_hold(),
        });
    }

    if !negotiated.media.iter().any(|m| m.accepted) {
        return Err(SdpError::NoAcceptableMedia);
    }
    let times = if offer.inner.times.is_empty() {
        vec![Time::new(0, 0)]
    } else {
        offer.inner.times.clone()
    };
    let session = new_session(params, times, medias);
    Ok((session, negotiated))
}

/// Builds an offer with every local stream, in order (RFC 3264 §5).
///
/// Each stream lists its formats with their own payload types, one `a=rtpmap` per
/// payload type followed by its `a=fmtp` (the original gateway wrote `a=fmtp` before
/// `a=rtpmap`, seed-spec §2.6; the order of attributes carries no meaning). A payload
/// type listed twice is written once. A direction other than sendrecv is written
/// explicitly; `c=` is at session level.
pub fn offer(local: &Capabilities, params: &SessionParams) -> Result<Session, SdpError> {
    if local.media.is_empty() {
        return Err(SdpError::InvalidArgument("no local streams to offer"));
    }
    if params.ports.len() < local.media.len() {
        return Err(SdpError::InvalidArgument("fewer ports than local streams"));
    }
    let mut medias = Vec::with_capacity(local.media.len());
    for (l, &port) in local.media.iter().zip(&params.ports) {
        let mut formats: Vec<&Format> = Vec::with_capacity(l.formats.len());
        for f in &l.formats {
            match formats.iter_mut().find(|g| g.pt == f.pt) {
                // Keep the first entry, but let a later duplicate supply a missing fmtp.
                Some(g) if g.fmtp.is_none() && f.fmtp.is_some() => *g = f,
                Some(_) => {}
                None => formats.push(f),
            }
        }
        if formats.is_empty() {
            return Err(SdpError::InvalidArgument("local stream without formats"));
        }
        let mut media = Media {
            media: l.kind.as_str().to_owned(),
            port,
            num_ports: None,
            proto: l
                .protos
                .first()
                .cloned()
                .unwrap_or_else(|| "RTP/AVP".to_owned()),
            fmt: join_pts(formats.iter().map(|f| f.pt)),
            media_title: None,
            connections: Vec::new(),
            bandwidths: Vec::new(),
            key: None,
            attributes: Vec::new(),
        };
        for f in &formats {
            media
                .attributes
                .push(Attribute::with_value("rtpmap", f.rtpmap_value(f.pt)));
            if let Some(fmtp) = &f.fmtp {
                media
                    .attributes
                    .push(Attribute::with_value("fmtp", format!("{} {fmtp}", f.pt)));
            }
        }
        push_common_attributes(&mut media, l.ptime, l.direction, l.rtcp_mux, false);
        medias.push(media);
    }
    Ok(new_session(params, vec![Time::new(0, 0)], medias))
}

/// Reads the answer to our offer (RFC 3264 §5, §6; UAC side).
///
/// The answer must have one m-line per offered m-line. Formats are matched against
/// those of our offer by [`Format::matches`], so an answerer that renumbered payload
/// types is still understood; the payload types reported are the answer's.
/// Fails with [`SdpError::NoAcceptableMedia`] when no stream was accepted.
pub fn apply_answer(offer: &Session, answer: &Session) -> Result<Negotiated, SdpError> {
    if offer.media_count() != answer.media_count() {
        return Err(SdpError::MediaCountMismatch {
            offer: offer.media_count(),
            answer: answer.media_count(),
        });
    }
    let mut negotiated = Negotiated::default();
    for (o, a) in offer.medias().zip(answer.medias()) {
        let index = o.index();
        if o.is_rejected() || a.is_rejected() {
            let mut n = NegotiatedMedia::rejected(index, &a, Some(index));
            n.local_port = o.port();
            negotiated.media.push(n);
            continue;
        }
        let offered = o.formats();
        let formats: Vec<Format> = a
            .formats()
            .into_iter()
            .filter(|af| offered.iter().any(|of| of.matches(af)))
            .collect();
        let codec = formats.iter().find(|f| !f.is_auxiliary()).cloned();
        let remote_direction = a.effective_direction();
        let rtcp_mux = o.rtcp_mux() && a.rtcp_mux();
        let remote_rtp = a.rtp_addr();
        negotiated.media.push(NegotiatedMedia {
            index,
            kind: o.kind(),
            local_media: Some(index),
            accepted: codec.is_some(),
            local_port: o.port(),
            remote_port: a.port(),
            codec,
            telephone_event: telephone_event(&formats),
            formats,
            remote_formats: a.formats(),
            remote_rtp,
            remote_rtcp: if rtcp_mux { remote_rtp } else { a.rtcp_addr() },
            rtcp_mux,
            ptime: a.ptime(),
            maxptime: a.maxptime(),
            direction: o.direction().intersect(remote_direction.reversed()),
            remote_direction,
            remote_hold: a.is_hold(),
        });
    }
    if !negotiated.media.iter().any(|m| m.accepted) {
        return Err(SdpError::NoAcceptableMedia);
    }
    Ok(negotiated)
}

/// A new offer for an existing session, for hold (`hold = true`) or resume.
///
/// The o= version is incremented (RFC 3264 §8). Session-level direction attributes are
/// removed and each stream that is not rejected gets one at media level (RFC 3264 §8.4):
/// on hold a stream that was sendrecv (or sendonly) becomes `a=sendonly`, one that was
/// recvonly (or inactive) becomes `a=inactive`; on resume every stream becomes
/// `a=sendrecv`. Addresses, ports and formats are unchanged, so `c=` keeps the real
/// address (the original gateway wrote `0.0.0.0`, seed-spec §2.5).
pub fn reoffer(prev: &Session, hold: bool) -> Session {
    let directions: Vec<Direction> = prev
        .medias()
        .map(|m| {
            if hold {
                Direction::from_parts(m.direction().sends(), false)
            } else {
                Direction::SendRecv
            }
        })
        .collect();
    reoffer_with(prev, &directions)
}

/// A new offer for an existing session with the o= version incremented and the given
/// direction on every stream that is not rejected.
pub fn reoffer_with_direction(prev: &Session, direction: Direction) -> Session {
    reoffer_with(prev, &vec![direction; prev.media_count()])
}

fn reoffer_with(prev: &Session, directions: &[Direction]) -> Session {
    let mut next = prev.clone();
    let inner = &mut next.inner;
    inner.origin.sess_version = inner.origin.sess_version.saturating_add(1);
    inner.attributes.retain(|a| !is_direction_attribute(a));
    for (media, &direction) in inner.medias.iter_mut().zip(directions) {
        if media.port == 0 {
            continue;
        }
        let attr = Attribute::new(direction.as_str());
        match media.attributes.iter().position(is_direction_attribute) {
            Some(pos) => {
                media.attributes[pos] = attr;
                let mut i = pos + 1;
                while i < media.attributes.len() {
                    if is_direction_attribute(&media.attributes[i]) {
                        media.attributes.remove(i);
                    } else {
                        i += 1;
                    }
                }
            }
            None => media.attributes.push(attr),
        }
    }
    next
}

/// Whether the writer of `session` has put the other party on hold; see
/// [`Session::is_hold`].
pub fn is_hold(session: &Session) -> bool {
    session.is_hold()
}

fn is_direction_attribute(a: &Attribute) -> bool {
    direction_of(std::slice::from_ref(a)).is_some()
}

fn rejected_media(m: &MediaDesc<'_>) -> Media {
    let raw = m.raw();
    Media {
        media: raw.media.clone(),
        port: 0,
        num_ports: None,
        proto: raw.proto.clone(),
        fmt: raw.fmt.clone(),
        media_title: None,
        connections: Vec::new(),
        bandwidths: Vec::new(),
        key: None,
        attributes: Vec::new(),
    }
}

fn push_common_attributes(
    media: &mut Media,
    ptime: Option<u32>,
    direction: Direction,
    rtcp_mux: bool,
    always_direction: bool,
) {
    if let Some(ptime) = ptime {
        media.attributes.push(Attribute::with_value("ptime", ptime));
    }
    if always_direction || direction != Direction::SendRecv {
        media.attributes.push(Attribute::new(direction.as_str()));
    }
    if rtcp_mux {
        media.attributes.push(Attribute::new("rtcp-mux"));
    }
}

fn join_pts(pts: impl Iterator<Item = u8>) -> String {
    pts.map(|pt| pt.to_string()).collect::<Vec<_>>().join(" ")
}

fn telephone_event(formats: &[Format]) -> Option<u8> {
    let rate = formats.iter().find(|f| !f.is_auxiliary()).map(|f| f.rate);
    let events = || formats.iter().filter(|f| f.is_telephone_event());
    events()
        .find(|f| Some(f.rate) == rate)
        .or_else(|| events().next())
        .map(|f| f.pt)
}

fn new_session(params: &SessionParams, times: Vec<Time>, medias: Vec<Media>) -> Session {
    let mut origin = Origin::with_ip_addr(params.session_id, params.session_version, params.addr);
    origin.nettype = NetType::In;
    Session {
        inner: sdp_types::Session {
            origin,
            session_name: "-".to_owned(),
            session_description: None,
            uri: None,
            emails: Vec::new(),
            phones: Vec::new(),
            connection: Some(Connection::from_ip_addr(params.addr)),
            bandwidths: Vec::new(),
            times,
            time_zones: Vec::new(),
            key: None,
            attributes: Vec::new(),
            medias,
        },
    }
}
