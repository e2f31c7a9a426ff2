//! The tokio driver of [`webrtc::Peers`]: one UDP socket for every browser, the peers
//! behind one lock, each peer's audio to and from its call's [`ua::FramePort`] — or,
//! for a call from a WebRTC SIP client (JsSIP, SIP.js), straight to the peer that
//! answers that client's offer: two peers on one codec, linked, frames passing between
//! them untouched.
//!
//! Wake-ups and system calls are the cost of a call (issue 8), so: one task reads the
//! socket, draining every queued datagram per wake-up (`recvmmsg`), and serves the
//! peers' timers on [`webrtc::PeersConfig::timer_tick`]'s grid; on the packet clock
//! a tick's datagrams for all browsers leave in one `sendmmsg`; the browser's frames go into the call
//! through its [`FrameInlet`] on this task (bridge and RTP send included) unless the
//! call transcodes them; a call's media task hands its frames for the browser straight
//! to the peer and the socket ([`RtcHandle::attach`]'s sink). No task or channel in
//! between either way; the task is woken from outside only when a frame sent made a
//! timer earlier than the one it sleeps to.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use media::bridge::FrameKind;
use media::codec::Codec;
use tokio::sync::{Notify, mpsc, oneshot};
use tracing::{debug, warn};
use ua::{DatagramSocket, Datagrams, Frame, FrameInlet, FrameRef, FrameSink, SinkError};
use webrtc::{Answer, PeerEvent, PeerId, Peers, PeersConfig, Transmit};

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

struct Attached {
    notes: mpsc::UnboundedSender<(PeerId, PeerNote)>,
    to_call: Option<Arc<ToCall>>,
}

/// Where a browser's frames go into its call.
struct ToCall {
    inlet: FrameInlet,
    /// When the inlet does not take them (the media task not running yet, or
    /// transcoding), and from outside the task.
    channel: mpsc::Sender<Frame>,
}

impl ToCall {
    fn via_channel(&self, frame: Frame) {
        let _ = self.channel.try_send(frame);
    }

    fn deliver(&self, frame: Frame) {
        let taken = self.inlet.push(FrameRef {
            kind: frame.kind,
            payload: &frame.payload,
            media_time: frame.media_time,
            marker: frame.marker,
        });
        if !taken {
            self.via_channel(frame);
        }
    }
}

/// Frames for calls, collected under the lock and handed over after it is released
/// (a call's inlet takes the call's own lock, under which its media task may be waiting
/// for ours).
type Outbox = Vec<(Arc<ToCall>, Frame)>;

/// Everything behind the lock.
struct State {
    peers: Peers,
    attached: HashMap<PeerId, Attached>,
    links: HashMap<PeerId, PeerId>,
    /// The deadline the task sleeps to.
    armed: Option<Instant>,
    /// The task reads the socket on the packet clock (every peer connected), not on
    /// each datagram.
    clocked: bool,
    /// A tick is running: datagrams wait in `held` for its end.
    hold: bool,
    held: Vec<Transmit>,
}

struct Shared {
    state: Mutex<State>,
    /// Registered for reading only: no wake-up per datagram sent.
    sock: DatagramSocket,
    /// Browser calls run on the packet clock once connected (`web.packet_clock`).
    packet_clock: bool,
    /// Wakes the task when a call outside it made a timer earlier than `armed`.
    kick: Notify,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic elsewhere while holding it leaves plain data: keep going.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Sends what the peers queued and passes their events on: frames for calls into
    /// `outbox` (the task) or their channels (elsewhere, where a call's lock may be
    /// held). From outside the task, kicks it when the peers now want an earlier
    /// wake-up than it sleeps to.
    fn pump(&self, s: &mut State, mut outbox: Option<&mut Outbox>) {
        // A linked peer's audio is sent on at once, which makes more to transmit.
        let mut more = true;
        while more {
            transmit(&self.sock, s);
            more = false;
            while let Some((id, e)) = s.peers.poll_event() {
                if let (
                    Some(&to),
                    PeerEvent::Audio {
                        payload,
                        media_time,
                        marker,
                    },
                ) = (s.links.get(&id), &e)
                {
                    let _ = s.peers.send_audio(now(), to, payload, *media_time, *marker);
                    more = true;
                    continue;
                }
                if let Some((call, frame)) = deliver(&mut s.attached, id, e) {
                    match outbox.as_deref_mut() {
                        Some(o) => o.push((call, frame)),
                        None => call.via_channel(frame),
                    }
                }
            }
        }
        // On the packet clock the task wakes every tick anyway.
        if outbox.is_none() && !s.clocked {
            let next = s.peers.poll_timeout();
            if next.is_some_and(|n| s.armed.is_none_or(|a| n < a)) {
                self.kick.notify_one();
            }
        }
    }
}

/// Cloneable access to the WebRTC peers and their task.
#[derive(Clone)]
pub struct RtcHandle {
    shared: Arc<Shared>,
    local: SocketAddr,
    /// The task stops when the last handle is dropped.
    _alive: Arc<oneshot::Sender<()>>,
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
    /// candidate) and starts the task. `packet_clock`: connected browser calls share
    /// the 20 ms packet clock ([`ua::clock`]: least CPU, up to a tick more latency each
    /// way); otherwise every packet is forwarded as it arrives (least latency).
    pub async fn start(bind: SocketAddr, packet_clock: bool) -> std::io::Result<RtcHandle> {
        if bind.ip().is_unspecified() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "the WebRTC UDP address is the ICE host candidate: bind a specific IP, not a wildcard",
            ));
        }
        let sock = DatagramSocket::bind(bind)?;
        let local = sock.local_addr()?;
        let peers = Peers::new(local, PeersConfig::default())
            .map_err(|e| std::io::Error::other(e.to_string()))?;
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                peers,
                attached: HashMap::new(),
                links: HashMap::new(),
                armed: None,
                clocked: false,
                hold: false,
                held: Vec::new(),
            }),
            sock,
            packet_clock,
            kick: Notify::new(),
        });
        let (alive, stop) = oneshot::channel();
        tokio::spawn(run(shared.clone(), stop));
        Ok(RtcHandle {
            shared,
            local,
            _alive: Arc::new(alive),
        })
    }

    /// The shared UDP address (host candidate).
    pub fn local(&self) -> SocketAddr {
        self.local
    }

    /// Whether connected browser calls run on the packet clock (see [`RtcHandle::start`]).
    pub fn packet_clock(&self) -> bool {
        self.shared.packet_clock
    }

    pub(crate) async fn offer(
        &self,
        sdp: String,
        codec: Codec,
        notes: mpsc::UnboundedSender<(PeerId, PeerNote)>,
    ) -> Result<Answer, webrtc::Error> {
        let mut s = self.shared.lock();
        let r = s.peers.accept_offer(now(), &sdp, codec);
        if let Ok(a) = &r {
            s.attached.insert(
                a.id,
                Attached {
                    notes,
                    to_call: None,
                },
            );
        }
        self.shared.pump(&mut s, None);
        if s.clocked {
            // Its ICE and DTLS go at the pace of their datagrams, not the clock's.
            self.shared.kick.notify_one();
        }
        r
    }

    /// Connects peer `id` to its call: what the browser sends goes into `inlet`, or
    /// `channel` when the inlet does not take it; the returned sink, called on the
    /// call's media task, sends the call's audio to the browser. Called from the UA's
    /// audio factory (synchronous, inside the runtime).
    pub(crate) fn attach(
        &self,
        id: PeerId,
        inlet: FrameInlet,
        channel: mpsc::Sender<Frame>,
    ) -> Box<dyn FrameSink> {
        if let Some(a) = self.shared.lock().attached.get_mut(&id) {
            a.to_call = Some(Arc::new(ToCall { inlet, channel }));
        }
        Box::new(PeerSink {
            shared: self.shared.clone(),
            id,
        })
    }

    /// Links two peers that run the same codec: each one's audio is sent to the other.
    pub(crate) fn link(&self, a: PeerId, b: PeerId) {
        let mut s = self.shared.lock();
        s.links.insert(a, b);
        s.links.insert(b, a);
    }

    pub(crate) fn close(&self, id: PeerId) {
        let mut s = self.shared.lock();
        s.peers.close(id);
        s.attached.remove(&id);
        if let Some(other) = s.links.remove(&id) {
            s.links.remove(&other);
        }
        self.shared.pump(&mut s, None);
    }
}

/// A call's audio for its browser, written into the peer and out of the socket on
/// the caller's (the media task's) own turn.
struct PeerSink {
    shared: Arc<Shared>,
    id: PeerId,
}

impl FrameSink for PeerSink {
    fn send(&mut self, frame: FrameRef<'_>) -> Result<(), SinkError> {
        // Telephone-events towards the browser are dropped: browsers do not surface
        // them; the socket gets a `dtmf` message instead.
        if frame.kind != FrameKind::Audio {
            return Ok(());
        }
        let mut s = self.shared.lock();
        // Before the peer connects the frame is dropped (as RTP before the far end
        // listens); a peer that is gone closes the sink.
        let sent = s.peers.send_audio(
            now(),
            self.id,
            frame.payload,
            frame.media_time,
            frame.marker,
        );
        if let Err(webrtc::Error::UnknownPeer(_)) = sent {
            return Err(SinkError::Closed);
        }
        self.shared.pump(&mut s, None);
        Ok(())
    }
}

/// Datagrams per `recvmmsg`.
const RECV_SLOTS: usize = 32;
/// Room per datagram (longer ones are cut, and fail to authenticate).
const RECV_SLOT: usize = 2048;
/// `recvmmsg` calls per wake-up before the task yields to others.
const RECV_BATCHES: usize = 2;
/// On the packet clock: a tick's worth of every call's datagrams (the socket's
/// receive buffer bounds what can wait).
const CLOCKED_BATCHES: usize = 512;

/// The socket is read per datagram while a peer is setting up (its handshake goes at
/// the pace of its datagrams) or none exists (an idle server sleeps); once every peer
/// is connected it is read on the packet clock ([`ua::clock`]), out of epoll. Every
/// tick also runs each attached call's side ([`FrameInlet::tick`]: its RTP socket,
/// deadlines, frames for the browser), so all browser calls share this task's one
/// wake-up per tick instead of two wake-ups per packet each, at the price of up to a
/// tick of latency each way.
async fn run(shared: Arc<Shared>, mut stop: oneshot::Receiver<()>) {
    let mut batch = Datagrams::<RECV_SLOTS>::new(RECV_SLOT);
    let mut outbox = Outbox::new();
    let mut calls: Vec<Arc<ToCall>> = Vec::new();
    // One timer, re-armed only when the deadline changes (off the packet clock).
    let sleep = tokio::time::sleep_until(tokio::time::Instant::now());
    tokio::pin!(sleep);
    let mut armed: Option<Instant> = None;
    // On the packet clock: two timers taking turns.
    let mut ticks = TickTimers::new();
    loop {
        let (wake, clocked, tick) = {
            let mut s = shared.lock();
            let clocked = shared.packet_clock && !s.peers.is_empty() && s.peers.connecting() == 0;
            if clocked && !s.clocked {
                shared.sock.unwatch();
            }
            s.clocked = clocked;
            let ticking = clocked
                || (shared.packet_clock && s.attached.values().any(|a| a.to_call.is_some()));
            let tick = ticking.then(|| ua::clock::next_tick(now()));
            s.armed = match (tick, clocked) {
                (Some(t), true) => Some(t),
                (t, _) => t.into_iter().chain(s.peers.poll_timeout()).min(),
            };
            (s.armed, clocked, tick)
        };
        match (clocked, tick) {
            (true, Some(t)) => {
                ticks.arm(t);
                armed = None;
            }
            _ => {
                if let Some(at) = wake
                    && armed != Some(at)
                {
                    sleep.as_mut().reset(tokio::time::Instant::from_std(at));
                }
                armed = wake;
            }
        }
        let fired = tokio::select! {
            r = shared.sock.readable(), if !clocked => {
                if let Err(e) = r {
                    debug!(error = %e, "webrtc readable");
                    continue;
                }
                let mut s = shared.lock();
                receive(&shared.sock, &mut s.peers, &mut batch, RECV_BATCHES);
                shared.pump(&mut s, Some(&mut outbox));
                false
            }
            () = shared.kick.notified() => {
                let mut s = shared.lock();
                shared.pump(&mut s, Some(&mut outbox));
                false
            }
            () = &mut sleep, if wake.is_some() && !clocked => {
                armed = None;
                true
            }
            _ = std::future::poll_fn(|cx| ticks.poll_fired(cx)), if clocked => true,
            _ = &mut stop => break,
        };
        if fired {
            let now = now();
            let mut s = shared.lock();
            // What the tick sends, the calls' frames included, leaves at its end.
            s.hold = true;
            if clocked {
                receive(&shared.sock, &mut s.peers, &mut batch, CLOCKED_BATCHES);
            }
            if s.peers.poll_timeout().is_some_and(|t| t <= now) {
                s.peers.handle_timeout(now);
            }
            shared.pump(&mut s, Some(&mut outbox));
            if tick.is_some_and(|t| t <= now) {
                calls.extend(s.attached.values().filter_map(|a| a.to_call.clone()));
            }
        }
        // Our lock is released: into the calls, then the calls' own tick.
        for (call, frame) in outbox.drain(..) {
            call.deliver(frame);
        }
        for call in calls.drain(..) {
            call.inlet.tick();
        }
        let mut s = shared.lock();
        if s.hold {
            s.hold = false;
            flush(&shared.sock, &mut s.held);
        }
    }
}

/// The packet clock's timers for [`run`]: two that take turns, one on the next tick and
/// one on the tick after. When one fires and is re-armed two ticks ahead, the other is
/// already the runtime's next timer, so re-arming does not make tokio wake its own
/// driver (an `eventfd` write and one more `epoll_wait` per tick, as a single timer
/// re-armed after firing does: the runtime has nothing earlier left to wait for).
struct TickTimers {
    sleeps: [std::pin::Pin<Box<tokio::time::Sleep>>; 2],
    at: [Option<Instant>; 2],
}

impl TickTimers {
    fn new() -> TickTimers {
        let far = tokio::time::Instant::now() + std::time::Duration::from_secs(86_400);
        TickTimers {
            sleeps: [
                Box::pin(tokio::time::sleep_until(far)),
                Box::pin(tokio::time::sleep_until(far)),
            ],
            at: [None, None],
        }
    }

    /// Puts the timers on `tick` and the tick after; one already on either keeps it.
    fn arm(&mut self, tick: Instant) {
        let want = [tick, tick + ua::clock::PACKET_TICK];
        for w in want {
            if self.at.contains(&Some(w)) {
                continue;
            }
            let free = (0..2).find(|&i| !self.at[i].is_some_and(|a| want.contains(&a)));
            if let Some(i) = free {
                self.sleeps[i]
                    .as_mut()
                    .reset(tokio::time::Instant::from_std(w));
                self.at[i] = Some(w);
            }
        }
    }

    /// Ready when an armed timer fires (it is then disarmed), with its deadline.
    fn poll_fired(&mut self, cx: &mut std::task::Context<'_>) -> std::task::Poll<Instant> {
        for i in 0..2 {
            if let Some(at) = self.at[i]
                && self.sleeps[i].as_mut().poll(cx).is_ready()
            {
                self.at[i] = None;
                return std::task::Poll::Ready(at);
            }
        }
        std::task::Poll::Pending
    }
}

/// The datagrams queued on the socket into the peers: up to `batches` `recvmmsg`
/// calls, stopping at the first short one (the queue is empty).
fn receive(
    sock: &DatagramSocket,
    peers: &mut Peers,
    batch: &mut Datagrams<RECV_SLOTS>,
    batches: usize,
) {
    for _ in 0..batches {
        let got = sock.try_recv_batch(batch);
        let now = now();
        for i in 0..batch.len() {
            if let Some((data, Some(from))) = batch.get(i) {
                peers.handle_datagram(now, from, data);
            }
        }
        match got {
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
            Err(e) => {
                debug!(error = %e, "webrtc recv");
                break;
            }
        }
    }
}

/// Sends what the peers queued, or holds it while a tick runs. Never waits: a
/// datagram the socket cannot take now (its send buffer full) is dropped, as the
/// network would; str0m retransmits what needs it (DTLS, STUN answers are re-asked).
fn transmit(sock: &DatagramSocket, s: &mut State) {
    while let Some(t) = s.peers.poll_transmit() {
        s.held.push(t);
    }
    if !s.hold {
        flush(sock, &mut s.held);
    }
}

/// Sends `held` with as few `sendmmsg` calls as fit.
fn flush(sock: &DatagramSocket, held: &mut Vec<Transmit>) {
    if held.is_empty() {
        return;
    }
    let out: Vec<(&[u8], SocketAddr)> = held.iter().map(|t| (&t.payload[..], t.to)).collect();
    if let Err(e) = sock.try_send_all(&out) {
        debug!(error = %e, "webrtc send");
    }
    held.clear();
}

/// A peer's event to its call; a frame is returned with where it goes.
fn deliver(
    attached: &mut HashMap<PeerId, Attached>,
    id: PeerId,
    e: PeerEvent,
) -> Option<(Arc<ToCall>, Frame)> {
    let a = attached.get(&id)?;
    let (kind, payload, media_time, marker) = match e {
        PeerEvent::Connected => {
            let _ = a.notes.send((id, PeerNote::Connected));
            return None;
        }
        PeerEvent::Failed(why) => {
            let _ = a.notes.send((id, PeerNote::Failed(why)));
            attached.remove(&id);
            return None;
        }
        PeerEvent::Audio {
            payload,
            media_time,
            marker,
        } => (FrameKind::Audio, payload, media_time, marker),
        PeerEvent::Dtmf {
            payload,
            media_time,
        } => (FrameKind::Dtmf, payload, media_time, false),
        other => {
            warn!(?other, "unhandled peer event");
            return None;
        }
    };
    let frame = Frame {
        kind,
        payload,
        media_time,
        marker,
    };
    Some((a.to_call.clone()?, frame))
}

#[cfg(test)]
mod tests {
    use super::*;
    use ua::clock::PACKET_TICK;

    /// The two timers fire on consecutive ticks, each once, and re-arming after a fire
    /// keeps one on the next tick and one on the tick after.
    #[tokio::test(start_paused = true)]
    async fn tick_timers_take_turns() {
        let mut ticks = TickTimers::new();
        let t0 = ua::clock::next_tick(now());
        ticks.arm(t0);
        let mut fired = Vec::new();
        for _ in 0..4 {
            let at = std::future::poll_fn(|cx| ticks.poll_fired(cx)).await;
            assert!(now() >= at);
            fired.push(at);
            ticks.arm(ua::clock::next_tick(now()));
            let mut armed: Vec<Instant> = ticks.at.iter().flatten().copied().collect();
            armed.sort();
            let next = ua::clock::next_tick(now());
            assert_eq!(armed, vec![next, next + PACKET_TICK]);
        }
        let want: Vec<Instant> = (0..4u32).map(|i| t0 + PACKET_TICK * i).collect();
        assert_eq!(fired, want);
    }
}
