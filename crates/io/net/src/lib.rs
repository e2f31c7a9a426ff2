//! SIP transports and the driver of the sans-IO core.
//!
//! One task owns the [`sipd::Sipd`] core. It reads the UDP sockets itself (a batch of
//! datagrams per wake-up, straight from the socket into the core, no copy and no channel
//! hop). It sends the UDP datagrams it produces itself, after each wake-up's batch
//! (`sendto` on a non-blocking socket); only when a send would block do the rest go to a
//! sender thread, which waits for room and keeps the order. Handing every batch to that
//! thread cost a futex wake-up and two context switches per batch, more than the
//! overlap of sending with processing gained. Stream transports (a task per TCP or WebSocket
//! connection) turn bytes into [`NetEvent`]s on a bounded channel. The core task feeds
//! everything in, drains transmits to the right socket or connection, and sleeps until
//! the core's next deadline. No SIP logic lives here.
//!
//! With `-d` (the `debug` level) every SIP message in and out is logged with its first
//! line, transport and peer.

pub mod dns;
mod stream;
mod ws;

use std::borrow::Cow;
use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::Poll;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use registrar::Locations;
use sip::Transport;
use sip::transaction::Flow;
use sipd::Sipd;
use tokio::net::{TcpListener, UdpSocket};
use tokio::sync::mpsc;
use tracing::{debug, info, warn};

pub use dns::SipResolver;
pub use ws::router as ws_router;

/// Limits that keep misbehaving peers from holding resources.
#[derive(Clone, Debug)]
pub struct Limits {
    /// Time a stream connection may take to deliver its first complete message, and to
    /// finish any message it has started.
    pub partial_timeout: Duration,
    /// Silence allowed on a stream connection that has sent complete messages.
    pub idle_timeout: Duration,
    pub max_connections: usize,
    pub max_connections_per_ip: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            partial_timeout: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(3660),
            max_connections: 16384,
            max_connections_per_ip: 64,
        }
    }
}

/// Input to the core task.
#[derive(Debug)]
pub enum NetEvent {
    Message {
        bytes: Bytes,
        flow: Flow,
    },
    /// A stream that could not be framed; answer if possible, then it is closed.
    Unframeable {
        bytes: Bytes,
        flow: Flow,
        error: sip::ParseError,
    },
    Opened {
        conn: u64,
        flow: Flow,
        tx: mpsc::Sender<Bytes>,
    },
    Closed {
        conn: u64,
    },
    /// Answer to a name resolution the core asked for.
    Resolved {
        id: u64,
        targets: Vec<(Transport, SocketAddr)>,
    },
}

/// What the core task needs to answer the proxy's resolution requests.
struct Resolving {
    resolver: Arc<SipResolver>,
    supported: Arc<[Transport]>,
}

/// Cloneable handle for transport tasks to reach the core.
#[derive(Clone)]
pub struct SipHandle {
    tx: mpsc::Sender<NetEvent>,
    next_conn: Arc<AtomicU64>,
    conns: Arc<ConnCounter>,
    limits: Limits,
}

/// Counts live stream connections, globally and per IP.
#[derive(Default)]
struct ConnCounter {
    per_ip: std::sync::Mutex<HashMap<std::net::IpAddr, usize>>,
}

/// Releases a connection slot when dropped.
pub(crate) struct ConnSlot {
    counter: Arc<ConnCounter>,
    ip: std::net::IpAddr,
}

impl Drop for ConnSlot {
    fn drop(&mut self) {
        if let Ok(mut m) = self.counter.per_ip.lock()
            && let Some(n) = m.get_mut(&self.ip)
        {
            *n -= 1;
            if *n == 0 {
                m.remove(&self.ip);
            }
        }
    }
}

impl SipHandle {
    pub(crate) fn new_conn_id(&self) -> u64 {
        self.next_conn.fetch_add(1, Ordering::Relaxed)
    }

    /// Reserves a connection slot for `ip`, or `None` when a limit is reached.
    pub(crate) fn admit(&self, ip: std::net::IpAddr) -> Option<ConnSlot> {
        let mut m = self.conns.per_ip.lock().ok()?;
        let total: usize = m.values().sum();
        let n = m.entry(ip).or_insert(0);
        if total >= self.limits.max_connections || *n >= self.limits.max_connections_per_ip {
            return None;
        }
        *n += 1;
        Some(ConnSlot {
            counter: self.conns.clone(),
            ip,
        })
    }

    pub(crate) fn limits(&self) -> &Limits {
        &self.limits
    }

    pub(crate) async fn send(&self, ev: NetEvent) -> bool {
        self.tx.send(ev).await.is_ok()
    }
}

/// Listening sockets of a running SIP server.
pub struct SipServer {
    pub handle: SipHandle,
    pub udp: Vec<SocketAddr>,
    pub tcp: Vec<SocketAddr>,
    pub task: tokio::task::JoinHandle<()>,
}

/// Binds the UDP and TCP listeners and starts the core task. WebSocket listeners are
/// served by the HTTP server through [`ws_router`] with the returned handle.
pub async fn start<L>(
    sipd: Sipd<L>,
    udp: &[SocketAddr],
    tcp: &[SocketAddr],
    limits: Limits,
    resolver: SipResolver,
) -> anyhow::Result<SipServer>
where
    L: Locations + Send + 'static,
{
    let (tx, rx) = mpsc::channel(8192);
    let handle = SipHandle {
        tx,
        next_conn: Arc::new(AtomicU64::new(1)),
        conns: Arc::new(ConnCounter::default()),
        limits,
    };
    let mut sockets = HashMap::new();
    let mut udp_addrs = Vec::new();
    let mut readers = Vec::new();
    let mut senders = Vec::new();
    let mut writers = Vec::new();
    for addr in udp {
        let (sock, send) =
            bind_udp(*addr).map_err(|e| anyhow::anyhow!("cannot bind SIP UDP {addr}: {e}"))?;
        writers.push(send.try_clone()?);
        let sock = Arc::new(sock);
        let local = sock.local_addr()?;
        udp_addrs.push(local);
        sockets.insert(local, readers.len());
        readers.push((local, sock));
        senders.push(send);
    }
    let sender = UdpSender::start(senders)?;
    let mut tcp_addrs = Vec::new();
    for addr in tcp {
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|e| anyhow::anyhow!("cannot bind SIP TCP {addr}: {e}"))?;
        let local = listener.local_addr()?;
        tcp_addrs.push(local);
        tokio::spawn(stream::accept_loop(listener, local, handle.clone()));
    }
    // Transports we can open toward a resolved target (WebSocket only reuses flows).
    let mut supported = Vec::new();
    if !udp.is_empty() {
        supported.push(Transport::Udp);
    }
    if !tcp.is_empty() {
        supported.push(Transport::Tcp);
    }
    let resolving = Resolving {
        resolver: Arc::new(resolver),
        supported: supported.into(),
    };
    let udp = Udp {
        readers,
        writers,
        sockets,
        sender,
        pending: Vec::new(),
    };
    let task = tokio::spawn(core_loop(sipd, rx, udp, handle.clone(), resolving));
    Ok(SipServer {
        handle,
        udp: udp_addrs,
        tcp: tcp_addrs,
        task,
    })
}

/// Receive buffer asked for each UDP socket (the kernel caps it at `net.core.rmem_max`
/// and counts ~1-2 KiB per datagram): room for a burst of about a thousand datagrams
/// while the core task is preempted, but not for so many that a request waits longer
/// than the sender's retransmit interval (T1 = 500 ms) behind the others.
const UDP_RCVBUF: usize = 1 << 20;

/// A non-blocking UDP socket with a large receive buffer, for tokio, and a blocking
/// handle on the same socket for the sender thread.
fn bind_udp(addr: SocketAddr) -> io::Result<(UdpSocket, std::net::UdpSocket)> {
    use socket2::{Domain, Protocol, Socket, Type};
    let s = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    if let Err(e) = s.set_recv_buffer_size(UDP_RCVBUF) {
        debug!(error = %e, "SO_RCVBUF");
    }
    s.bind(&addr.into())?;
    // The duplicate shares the file description, so the non-blocking flag too: the
    // sender thread waits on a full send buffer itself.
    let send: std::net::UdpSocket = s.try_clone()?.into();
    s.set_nonblocking(true)?;
    Ok((UdpSocket::from_std(s.into())?, send))
}

/// Datagrams for the sender thread: (socket index, destination, bytes).
type Outgoing = Vec<(usize, SocketAddr, Bytes)>;

#[derive(Default)]
struct SendQueue {
    items: Outgoing,
    /// The sender thread waits for work (it needs a wake-up).
    idle: bool,
    closed: bool,
}

#[derive(Default)]
struct SendShared {
    queue: std::sync::Mutex<SendQueue>,
    work: std::sync::Condvar,
}

/// The thread that sends the datagrams the core task could not send without blocking,
/// in order.
struct UdpSender {
    shared: Arc<SendShared>,
}

impl UdpSender {
    fn start(sockets: Vec<std::net::UdpSocket>) -> io::Result<UdpSender> {
        let shared = Arc::new(SendShared::default());
        let s = shared.clone();
        std::thread::Builder::new()
            .name("sip-udp-send".into())
            .spawn(move || udp_send_loop(&sockets, &s))?;
        Ok(UdpSender { shared })
    }

    /// True when the thread has nothing queued and nothing in hand: a datagram sent
    /// now by someone else cannot overtake one of its own.
    fn is_idle(&self) -> bool {
        let q = self
            .shared
            .queue
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        q.idle && q.items.is_empty()
    }

    /// Hands a batch over; wakes the thread only if it is waiting.
    fn send(&self, batch: &mut Outgoing) {
        if batch.is_empty() {
            return;
        }
        let mut q = self
            .shared
            .queue
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if q.items.is_empty() {
            std::mem::swap(&mut q.items, batch);
        } else {
            q.items.append(batch);
        }
        let wake = q.idle;
        drop(q);
        if wake {
            self.shared.work.notify_one();
        }
    }
}

impl Drop for UdpSender {
    fn drop(&mut self) {
        if let Ok(mut q) = self.shared.queue.lock() {
            q.closed = true;
        }
        self.shared.work.notify_one();
    }
}

fn udp_send_loop(sockets: &[std::net::UdpSocket], shared: &SendShared) {
    let mut batch = Outgoing::new();
    loop {
        {
            let mut q = shared
                .queue
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            while q.items.is_empty() && !q.closed {
                q.idle = true;
                q = shared
                    .work
                    .wait(q)
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
            }
            q.idle = false;
            if q.items.is_empty() {
                return;
            }
            std::mem::swap(&mut q.items, &mut batch);
        }
        for (i, remote, bytes) in batch.drain(..) {
            let Some(sock) = sockets.get(i) else { continue };
            // A full send buffer (rare: the kernel takes a datagram at once unless the
            // interface queue is full): retry briefly, then drop as the network would.
            for attempt in 0..100 {
                match sock.send_to(&bytes, remote) {
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock && attempt < 99 => {
                        std::thread::sleep(Duration::from_micros(100));
                    }
                    Err(e) => {
                        debug!(error = %e, %remote, "udp send");
                        break;
                    }
                    Ok(_) => break,
                }
            }
        }
    }
}

/// The UDP sockets: read by the core task; written by the core task while that never
/// blocks, by the sender thread otherwise.
struct Udp {
    /// In bind order; polled round-robin.
    readers: Vec<(SocketAddr, Arc<UdpSocket>)>,
    /// Non-blocking handles on the same sockets, in the same order, for direct sends.
    writers: Vec<std::net::UdpSocket>,
    /// Local address to index in `readers`.
    sockets: HashMap<SocketAddr, usize>,
    sender: UdpSender,
    /// Datagrams produced since the last hand-over.
    pending: Outgoing,
}

impl Udp {
    /// Sends the datagrams produced so far. While the sender thread is idle they go out
    /// at once from this task (no hand-over, no wake-up of another thread); what would
    /// block, and everything after it, goes to the thread, which keeps the order.
    fn kick(&mut self) {
        if self.pending.is_empty() {
            return;
        }
        if self.sender.is_idle() {
            let mut sent = 0;
            for (i, remote, bytes) in &self.pending {
                let Some(sock) = self.writers.get(*i) else {
                    sent += 1;
                    continue;
                };
                match sock.send_to(bytes, *remote) {
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) => debug!(error = %e, %remote, "udp send"),
                    Ok(_) => {}
                }
                sent += 1;
            }
            self.pending.drain(..sent);
        }
        self.sender.send(&mut self.pending);
    }

    /// Resolves to the index of a socket with datagrams waiting (never, without sockets).
    async fn ready(&self, start: usize) -> usize {
        let n = self.readers.len();
        std::future::poll_fn(|cx| {
            for k in 0..n {
                let i = (start + k) % n;
                if self.readers[i].1.poll_recv_ready(cx).is_ready() {
                    return Poll::Ready(i);
                }
            }
            Poll::Pending
        })
        .await
    }
}

/// The first line of a SIP message, for logs.
fn first_line(bytes: &[u8]) -> Cow<'_, str> {
    let end = line_end(bytes).unwrap_or(bytes.len().min(200));
    String::from_utf8_lossy(&bytes[..end])
}

fn line_end(bytes: &[u8]) -> Option<usize> {
    bytes
        .iter()
        .take(512)
        .position(|&b| b == b'\r' || b == b'\n')
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Builds the core with the wall clock anchored now.
pub fn now_anchor() -> (Instant, u64) {
    (Instant::now(), unix_now())
}

/// A random seed from the OS for tags, branches and nonce salts.
pub fn os_seed() -> u64 {
    let mut b = [0u8; 8];
    let _ = getrandom::fill(&mut b);
    u64::from_le_bytes(b)
}

/// A random 32-byte secret from the OS (nonce keys).
pub fn os_secret() -> [u8; 32] {
    let mut b = [0u8; 32];
    let _ = getrandom::fill(&mut b);
    b
}

/// Live stream connections known to the core task.
#[derive(Default)]
struct Conns {
    writers: HashMap<u64, mpsc::Sender<Bytes>>,
    by_remote: HashMap<(Transport, SocketAddr), u64>,
    remote_of: HashMap<u64, (Transport, SocketAddr)>,
}

/// Events (or datagrams) handled per wake-up of the core task before it looks at its
/// other inputs and timers again.
const BATCH: usize = 64;

async fn core_loop<L: Locations>(
    mut sipd: Sipd<L>,
    mut rx: mpsc::Receiver<NetEvent>,
    mut udp: Udp,
    handle: SipHandle,
    resolving: Resolving,
) {
    let mut conns = Conns::default();
    // Room for the largest datagram; oversized requests are answered 513 by the core.
    let mut buf = vec![0u8; 65536];
    let mut next_socket = 0;
    // One timer, moved only when the core's deadline changes: arming a fresh `Sleep` per
    // message costs a timer-wheel insert and removal each time.
    let idle = || Instant::now() + Duration::from_secs(3600);
    let mut armed = sipd.poll_timeout().unwrap_or_else(idle);
    let sleep = tokio::time::sleep_until(armed.into());
    tokio::pin!(sleep);
    loop {
        if let Some(d) = sipd.poll_timeout()
            && d != armed
        {
            armed = d;
            sleep.as_mut().reset(armed.into());
        }
        tokio::select! {
            i = udp.ready(next_socket) => {
                next_socket = i + 1;
                let (local, sock) = udp.readers[i].clone();
                // Read until the socket is empty (which clears its readiness) or the batch
                // is done; each datagram goes straight from the buffer into the core.
                for _ in 0..BATCH {
                    match sock.try_recv_from(&mut buf) {
                        Ok((n, remote)) => {
                            let flow = Flow {
                                transport: Transport::Udp,
                                remote,
                                local,
                                conn: None,
                            };
                            let bytes = &buf[..n];
                            debug!(transport = "UDP", peer = %remote, len = n, "recv {}", first_line(bytes));
                            sipd.handle_message(Instant::now(), bytes, flow);
                            flush(&mut sipd, &mut udp, &conns, &handle, &resolving);
                        }
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                        // ICMP errors surface as recv errors on some platforms: keep serving.
                        Err(e) => debug!(error = %e, "udp recv"),
                    }
                }
            }
            ev = rx.recv() => {
                let Some(ev) = ev else { break };
                on_net_event(&mut sipd, &mut conns, ev);
                flush(&mut sipd, &mut udp, &conns, &handle, &resolving);
                // Take what is already queued without going back to the scheduler.
                for _ in 1..BATCH {
                    let Ok(ev) = rx.try_recv() else { break };
                    on_net_event(&mut sipd, &mut conns, ev);
                    flush(&mut sipd, &mut udp, &conns, &handle, &resolving);
                }
            }
            _ = &mut sleep => {
                sipd.handle_timeout(Instant::now());
                flush(&mut sipd, &mut udp, &conns, &handle, &resolving);
                // A fired `Sleep` stays ready until it is reset.
                armed = sipd.poll_timeout().unwrap_or_else(idle);
                sleep.as_mut().reset(armed.into());
            }
        }
        udp.kick();
    }
    info!("SIP core stopped");
}

fn on_net_event<L: Locations>(sipd: &mut Sipd<L>, conns: &mut Conns, ev: NetEvent) {
    let now = Instant::now();
    match ev {
        NetEvent::Message { bytes, flow } => {
            debug!(transport = %flow.transport, peer = %flow.remote, conn = ?flow.conn, len = bytes.len(), "recv {}", first_line(&bytes));
            sipd.handle_message(now, &bytes, flow)
        }
        NetEvent::Unframeable { bytes, flow, error } => {
            sipd.reject_unframeable(&bytes, flow, &error)
        }
        NetEvent::Opened { conn, tx, flow } => {
            debug!(conn, transport = %flow.transport, remote = %flow.remote, "connection open");
            conns.writers.insert(conn, tx);
            conns.by_remote.insert((flow.transport, flow.remote), conn);
            conns.remote_of.insert(conn, (flow.transport, flow.remote));
        }
        NetEvent::Closed { conn } => {
            debug!(conn, "connection closed");
            conns.writers.remove(&conn);
            if let Some(key) = conns.remote_of.remove(&conn)
                && conns.by_remote.get(&key) == Some(&conn)
            {
                conns.by_remote.remove(&key);
            }
            sipd.connection_closed(now, conn);
        }
        NetEvent::Resolved { id, targets } => sipd.resolved(now, id, &targets),
    }
}

/// The drain rule: everything the core wants sent, and every name it wants resolved.
fn flush<L: Locations>(
    sipd: &mut Sipd<L>,
    udp: &mut Udp,
    conns: &Conns,
    handle: &SipHandle,
    resolving: &Resolving,
) {
    while let Some(t) = sipd.poll_transmit() {
        transmit(&t, udp, conns, handle);
    }
    while let Some(r) = sipd.poll_resolve() {
        tokio::spawn(resolve(
            r,
            resolving.resolver.clone(),
            resolving.supported.clone(),
            handle.clone(),
        ));
    }
}

/// Resolves a host name to addresses (A/AAAA through the system resolver).
/// Locates the SIP server for a host per RFC 3263 (NAPTR, SRV, A/AAAA).
async fn resolve(
    r: proxy::ResolveRequest,
    resolver: Arc<SipResolver>,
    supported: Arc<[Transport]>,
    handle: SipHandle,
) {
    let targets = resolver
        .locate(&r.host, r.port, r.transport, r.secure, &supported)
        .await;
    if targets.is_empty() {
        debug!(host = %r.host, "cannot resolve");
    }
    handle.send(NetEvent::Resolved { id: r.id, targets }).await;
}

fn transmit(t: &sipd::Transmit, udp: &mut Udp, conns: &Conns, handle: &SipHandle) {
    debug!(transport = %t.flow.transport, peer = %t.flow.remote, conn = ?t.flow.conn, len = t.bytes.len(), "send {}", first_line(&t.bytes));
    let conn = match (t.flow.conn, t.flow.transport) {
        (Some(c), _) => Some(c),
        (None, Transport::Udp) => None,
        // RFC 3261 §18.2.2 / §18.1.1: reuse a connection to that address, else open one.
        (None, transport) => match conns.by_remote.get(&(transport, t.flow.remote)) {
            Some(c) => Some(*c),
            None => {
                if transport == Transport::Tcp {
                    tokio::spawn(stream::connect(
                        t.flow.remote,
                        t.bytes.clone(),
                        handle.clone(),
                    ));
                } else {
                    debug!(%transport, remote = %t.flow.remote, "no connection; message dropped");
                }
                return;
            }
        },
    };
    match conn {
        Some(conn) => match conns.writers.get(&conn) {
            // A full writer queue means a peer that does not read: drop, it will be
            // timed out by its reader.
            Some(tx) => {
                if tx.try_send(t.bytes.clone()).is_err() {
                    warn!(conn, "stream writer full or closed; message dropped");
                }
            }
            None => debug!(conn, "connection gone; message dropped"),
        },
        None => {
            let i = udp.sockets.get(&t.flow.local).copied().unwrap_or(0);
            if !udp.readers.is_empty() {
                udp.pending.push((i, t.flow.remote, t.bytes.clone()));
            }
        }
    }
}
