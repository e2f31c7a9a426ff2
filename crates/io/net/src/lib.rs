//! SIP transports and the driver of the sans-IO core.
//!
//! One task owns the [`sipd::Sipd`] core. Transport tasks (a UDP receiver per socket, a
//! task per TCP or WebSocket connection) turn bytes into [`NetEvent`]s on a bounded
//! channel; the core task feeds them in, drains transmits to the right socket or
//! connection, and sleeps until the core's next deadline. No SIP logic lives here.

pub mod dns;
mod stream;
mod ws;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
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
    for addr in udp {
        let sock = Arc::new(
            UdpSocket::bind(addr)
                .await
                .map_err(|e| anyhow::anyhow!("cannot bind SIP UDP {addr}: {e}"))?,
        );
        let local = sock.local_addr()?;
        udp_addrs.push(local);
        sockets.insert(local, sock.clone());
        tokio::spawn(udp_receiver(sock, local, handle.clone()));
    }
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
    let task = tokio::spawn(core_loop(sipd, rx, sockets, handle.clone(), resolving));
    Ok(SipServer {
        handle,
        udp: udp_addrs,
        tcp: tcp_addrs,
        task,
    })
}

async fn udp_receiver(sock: Arc<UdpSocket>, local: SocketAddr, handle: SipHandle) {
    // Room for the largest datagram; oversized requests are answered 513 by the core.
    let mut buf = vec![0u8; 65536];
    loop {
        match sock.recv_from(&mut buf).await {
            Ok((n, remote)) => {
                let flow = Flow {
                    transport: Transport::Udp,
                    remote,
                    local,
                    conn: None,
                };
                let ev = NetEvent::Message {
                    bytes: Bytes::copy_from_slice(&buf[..n]),
                    flow,
                };
                // Under overload drop datagrams rather than queue without bound: UDP
                // senders retransmit (RFC 3261 §17).
                if let Err(mpsc::error::TrySendError::Closed(_)) = handle.tx.try_send(ev) {
                    return;
                }
            }
            // ICMP errors surface as recv errors on some platforms: keep serving.
            Err(e) => debug!(error = %e, "udp recv"),
        }
    }
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

/// Events handled per wake-up of the core task before it looks at its timers again.
const BATCH: usize = 64;

async fn core_loop<L: Locations>(
    mut sipd: Sipd<L>,
    mut rx: mpsc::Receiver<NetEvent>,
    sockets: HashMap<SocketAddr, Arc<UdpSocket>>,
    handle: SipHandle,
    resolving: Resolving,
) {
    let mut conns = Conns::default();
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
            ev = rx.recv() => {
                let Some(ev) = ev else { break };
                on_net_event(&mut sipd, &mut conns, ev);
                flush(&mut sipd, &sockets, &conns, &handle, &resolving).await;
                // Take what is already queued without going back to the scheduler.
                for _ in 1..BATCH {
                    let Ok(ev) = rx.try_recv() else { break };
                    on_net_event(&mut sipd, &mut conns, ev);
                    flush(&mut sipd, &sockets, &conns, &handle, &resolving).await;
                }
            }
            _ = &mut sleep => {
                sipd.handle_timeout(Instant::now());
                flush(&mut sipd, &sockets, &conns, &handle, &resolving).await;
                // A fired `Sleep` stays ready until it is reset.
                armed = sipd.poll_timeout().unwrap_or_else(idle);
                sleep.as_mut().reset(armed.into());
            }
        }
    }
    info!("SIP core stopped");
}

fn on_net_event<L: Locations>(sipd: &mut Sipd<L>, conns: &mut Conns, ev: NetEvent) {
    let now = Instant::now();
    match ev {
        NetEvent::Message { bytes, flow } => sipd.handle_message(now, &bytes, flow),
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
async fn flush<L: Locations>(
    sipd: &mut Sipd<L>,
    sockets: &HashMap<SocketAddr, Arc<UdpSocket>>,
    conns: &Conns,
    handle: &SipHandle,
    resolving: &Resolving,
) {
    while let Some(t) = sipd.poll_transmit() {
        transmit(&t, sockets, conns, handle).await;
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

async fn transmit(
    t: &sipd::Transmit,
    sockets: &HashMap<SocketAddr, Arc<UdpSocket>>,
    conns: &Conns,
    handle: &SipHandle,
) {
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
            let sock = sockets
                .get(&t.flow.local)
                .or_else(|| sockets.values().next());
            if let Some(sock) = sock
                && let Err(e) = sock.send_to(&t.bytes, t.flow.remote).await
            {
                debug!(error = %e, remote = %t.flow.remote, "udp send");
            }
        }
    }
}
