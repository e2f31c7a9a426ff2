//! The tokio driver of [`webrtc::Peers`]: one UDP socket for every browser, one task
//! owning the peers, commands in over a channel, each peer's audio to and from its
//! call's [`ua::FramePort`] — or, for a call from a WebRTC SIP client (JsSIP, SIP.js),
//! straight to the peer that answers that client's offer: two peers on one codec,
//! linked, frames passing between them untouched.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use media::bridge::FrameKind;
use media::codec::Codec;
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, oneshot};
use tracing::{debug, warn};
use ua::Frame;
use webrtc::{Answer, PeerEvent, PeerId, Peers, PeersConfig};

/// What a call's socket task hears about its peer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum PeerNote {
    Connected,
    Failed(String),
    /// A caller's WebRTC leg failed this long ago and its call is still up
    /// ([`SIP_LEG_GRACE`]).
    StillFailed(String),
}

/// How long a call whose WebRTC SIP caller closed its media waits for that caller's BYE
/// before ending the call itself: a hanging-up browser closes DTLS and sends its BYE at
/// the same moment, and the BYE may first need a 407 round trip.
pub(crate) const SIP_LEG_GRACE: std::time::Duration = std::time::Duration::from_secs(3);

enum Cmd {
    Offer {
        sdp: String,
        codec: Codec,
        notes: mpsc::UnboundedSender<(PeerId, PeerNote)>,
        reply: oneshot::Sender<Result<Answer, webrtc::Error>>,
    },
    /// The call's media started: browser audio goes to `to_call` from now on.
    Attach {
        id: PeerId,
        to_call: mpsc::Sender<Frame>,
    },
    /// Audio from the call for the browser.
    Audio {
        id: PeerId,
        frame: Frame,
    },
    /// Everything each of the two peers receives goes to the other.
    Link(PeerId, PeerId),
    Close(PeerId),
}

struct Attached {
    notes: mpsc::UnboundedSender<(PeerId, PeerNote)>,
    to_call: Option<mpsc::Sender<Frame>>,
}

/// Cloneable access to the WebRTC task.
#[derive(Clone)]
pub struct RtcHandle {
    tx: mpsc::UnboundedSender<Cmd>,
    local: SocketAddr,
}

impl std::fmt::Debug for RtcHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RtcHandle")
            .field("local", &self.local)
            .finish()
    }
}

fn now() -> Instant {
    tokio::time::Instant::now().into_std()
}

impl RtcHandle {
    /// Binds the WebRTC UDP socket on `bind` (a specific address: it is the ICE host
    /// candidate) and starts the task.
    pub async fn start(bind: SocketAddr) -> std::io::Result<RtcHandle> {
        if bind.ip().is_unspecified() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "the WebRTC UDP address is the ICE host candidate: bind a specific IP, not a wildcard",
            ));
        }
        let sock = UdpSocket::bind(bind).await?;
        let local = sock.local_addr()?;
        let peers = Peers::new(local, PeersConfig::default())
            .map_err(|e| std::io::Error::other(e.to_string()))?;
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(run(Arc::new(sock), peers, rx));
        Ok(RtcHandle { tx, local })
    }

    /// The shared UDP address (host candidate).
    pub fn local(&self) -> SocketAddr {
        self.local
    }

    pub(crate) async fn offer(
        &self,
        sdp: String,
        codec: Codec,
        notes: mpsc::UnboundedSender<(PeerId, PeerNote)>,
    ) -> Result<Answer, webrtc::Error> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Cmd::Offer {
                sdp,
                codec,
                notes,
                reply,
            })
            .map_err(|_| webrtc::Error::Rtc("the WebRTC task stopped".into()))?;
        rx.await
            .map_err(|_| webrtc::Error::Rtc("the WebRTC task stopped".into()))?
    }

    /// Connects peer `id` to a call's frame port halves: what the browser sends goes to
    /// `to_call`; what arrives on `from_call` goes to the browser. Called from the
    /// UA's audio factory (synchronous, inside the runtime).
    pub(crate) fn attach(
        &self,
        id: PeerId,
        to_call: mpsc::Sender<Frame>,
        mut from_call: mpsc::Receiver<Frame>,
    ) {
        let _ = self.tx.send(Cmd::Attach { id, to_call });
        let tx = self.tx.clone();
        tokio::spawn(async move {
            while let Some(frame) = from_call.recv().await {
                if tx.send(Cmd::Audio { id, frame }).is_err() {
                    break;
                }
            }
        });
    }

    /// Links two peers that run the same codec: each one's audio is sent to the other.
    pub(crate) fn link(&self, a: PeerId, b: PeerId) {
        let _ = self.tx.send(Cmd::Link(a, b));
    }

    pub(crate) fn close(&self, id: PeerId) {
        let _ = self.tx.send(Cmd::Close(id));
    }
}

async fn run(sock: Arc<UdpSocket>, mut peers: Peers, mut rx: mpsc::UnboundedReceiver<Cmd>) {
    let mut buf = vec![0u8; 2048];
    let mut attached: HashMap<PeerId, Attached> = HashMap::new();
    let mut links: HashMap<PeerId, PeerId> = HashMap::new();
    loop {
        let wake = peers.poll_timeout().map(tokio::time::Instant::from_std);
        tokio::select! {
            r = sock.recv_from(&mut buf) => match r {
                Ok((n, from)) => {
                    peers.handle_datagram(now(), from, &buf[..n]);
                }
                Err(e) => debug!(error = %e, "webrtc recv"),
            },
            c = rx.recv() => match c {
                None => break,
                Some(Cmd::Offer { sdp, codec, notes, reply }) => {
                    let r = peers.accept_offer(now(), &sdp, codec);
                    if let Ok(a) = &r {
                        attached.insert(a.id, Attached { notes, to_call: None });
                    }
                    let _ = reply.send(r);
                }
                Some(Cmd::Attach { id, to_call }) => {
                    if let Some(a) = attached.get_mut(&id) {
                        a.to_call = Some(to_call);
                    }
                }
                Some(Cmd::Audio { id, frame }) => {
                    // Telephone-events towards the browser are dropped: browsers do not
                    // surface them; the socket gets a `dtmf` message instead.
                    if frame.kind == FrameKind::Audio {
                        let _ = peers.send_audio(now(), id, &frame.payload, frame.media_time);
                    }
                }
                Some(Cmd::Link(a, b)) => {
                    links.insert(a, b);
                    links.insert(b, a);
                }
                Some(Cmd::Close(id)) => {
                    peers.close(id);
                    attached.remove(&id);
                    if let Some(other) = links.remove(&id) {
                        links.remove(&other);
                    }
                }
            },
            _ = sleep_until(wake), if wake.is_some() => peers.handle_timeout(now()),
        }
        // A linked peer's audio is sent on at once, which makes more to transmit.
        let mut more = true;
        while more {
            transmit(&sock, &mut peers).await;
            more = false;
            while let Some((id, e)) = peers.poll_event() {
                if let (
                    Some(&to),
                    PeerEvent::Audio {
                        payload,
                        media_time,
                        ..
                    },
                ) = (links.get(&id), &e)
                {
                    let _ = peers.send_audio(now(), to, payload, *media_time);
                    more = true;
                    continue;
                }
                deliver(&mut attached, id, e);
            }
        }
    }
}

async fn transmit(sock: &UdpSocket, peers: &mut Peers) {
    while let Some(t) = peers.poll_transmit() {
        if let Err(e) = sock.try_send_to(&t.payload, t.to) {
            if e.kind() == std::io::ErrorKind::WouldBlock {
                let _ = sock.send_to(&t.payload, t.to).await;
            } else {
                debug!(to = %t.to, error = %e, "webrtc send");
            }
        }
    }
}

/// A peer's event to its call.
fn deliver(attached: &mut HashMap<PeerId, Attached>, id: PeerId, e: PeerEvent) {
    let Some(a) = attached.get(&id) else { return };
    match e {
        PeerEvent::Connected => {
            let _ = a.notes.send((id, PeerNote::Connected));
        }
        PeerEvent::Failed(why) => {
            let _ = a.notes.send((id, PeerNote::Failed(why)));
            attached.remove(&id);
        }
        PeerEvent::Audio {
            payload,
            media_time,
            marker,
        } => {
            if let Some(tx) = &a.to_call {
                let _ = tx.try_send(Frame {
                    kind: FrameKind::Audio,
                    payload,
                    media_time,
                    marker,
                });
            }
        }
        PeerEvent::Dtmf {
            payload,
            media_time,
        } => {
            if let Some(tx) = &a.to_call {
                let _ = tx.try_send(Frame {
                    kind: FrameKind::Dtmf,
                    payload,
                    media_time,
                    marker: false,
                });
            }
        }
        other => warn!(?other, "unhandled peer event"),
    }
}

async fn sleep_until(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}
