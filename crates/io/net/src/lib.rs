//! SIP transports and the driver of the sans-IO core.
//!
//! The server runs several [`sipd::Sipd`] cores side by side, each with its own transaction
//! layer and proxy contexts, and sharing the location service and the authenticator. A
//! message belongs to the core its Call-ID hashes to ([`sip::call_id_of`], found without
//! parsing): a transaction, its CANCEL and ACK, and their responses all carry the same
//! Call-ID, so every match stays inside one core. Each core sits behind a mutex that is
//! held for one message. `workers` threads per UDP socket wait in `recvfrom` on the same
//! socket, as Kamailio's UDP processes do (the kernel gives each datagram to one waiter;
//! `SO_REUSEPORT` would not help: it spreads by source address, and a load generator or a
//! busy peer uses one); the thread that reads a datagram locks the owning core, serves it
//! and sends what it produced (so a core's output leaves in order). Stream transports (a
//! task per TCP or WebSocket connection) turn bytes into [`NetEvent`]s on a bounded
//! channel, served by one task the same way; responses to a stream's request go back on
//! its connection whichever core produced them. A timer thread sleeps until the earliest
//! deadline of any core; a core whose deadline moves earlier wakes it. No SIP logic lives
//! here.
//!
//! With `-d` (the `debug` level) every SIP message in and out is logged with its first
//! line, transport and peer.

pub mod dns;
pub mod mmsg;
mod stream;
mod ws;

use std::borrow::Cow;
use std::collections::{HashMap, VecDeque};
use std::hash::Hasher;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError, RwLock, TryLockError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use registrar::Locations;
use sip::Transport;
use sip::transaction::Flow;
use sipd::Sipd;
use tokio::net::TcpListener;
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
    /// Answer to a name resolution core `shard` asked for.
    Resolved {
        shard: usize,
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
    /// The task that serves stream transports' events; it ends only if every handle to
    /// the server is gone.
    pub task: tokio::task::JoinHandle<()>,
    stats: Arc<dyn CoreStats>,
}

impl SipServer {
    /// The cores' counters, added up.
    pub fn counters(&self) -> sipd::Counters {
        self.stats.counters()
    }

    /// Live SIP transactions over all cores.
    pub fn transactions(&self) -> usize {
        self.stats.transactions()
    }
}

/// Totals over the cores, without naming their location-service type.
trait CoreStats: Send + Sync {
    fn counters(&self) -> sipd::Counters;
    fn transactions(&self) -> usize;
}

/// Binds the UDP and TCP listeners and starts one core with one UDP worker.
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
    start_sharded(vec![sipd], 1, udp, tcp, limits, resolver).await
}

/// Binds the UDP and TCP listeners and starts the server over `cores`: each message
/// goes to the core its Call-ID hashes to, so a transaction, its CANCEL and ACK, its
/// responses and the proxy context they belong to stay in one core. `workers` threads
/// read each UDP socket (the kernel hands each datagram to one of them). The cores
/// should share one location service, authenticator and users (see
/// [`registrar::SharedLocations`]) and differ in their seeds; exactly one should have
/// [`sipd::SipdConfig::location_upkeep`]. WebSocket listeners are served by the HTTP
/// server through [`ws_router`] with the returned handle.
pub async fn start_sharded<L>(
    cores: Vec<Sipd<L>>,
    workers: usize,
    udp: &[SocketAddr],
    tcp: &[SocketAddr],
    limits: Limits,
    resolver: SipResolver,
) -> anyhow::Result<SipServer>
where
    L: Locations + Send + 'static,
{
    anyhow::ensure!(!cores.is_empty(), "no SIP core");
    let (tx, rx) = mpsc::channel(8192);
    let handle = SipHandle {
        tx,
        next_conn: Arc::new(AtomicU64::new(1)),
        conns: Arc::new(ConnCounter::default()),
        limits,
    };
    let mut sockets = HashMap::new();
    let mut udp_addrs = Vec::new();
    let mut udp_socks = Vec::new();
    for addr in udp {
        let sock =
            bind_udp(*addr).map_err(|e| anyhow::anyhow!("cannot bind SIP UDP {addr}: {e}"))?;
        let local = sock.local_addr()?;
        udp_addrs.push(local);
        sockets.insert(local, udp_socks.len());
        udp_socks.push((local, Arc::new(sock)));
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
    let base = Instant::now();
    let shards = cores
        .into_iter()
        .map(|s| {
            let d = nanos_after(base, s.poll_timeout());
            Shard {
                sipd: Mutex::new(s),
                deadline: AtomicU64::new(d),
                inbox: Mutex::new(VecDeque::new()),
            }
        })
        .collect();
    let core = Arc::new(Core {
        shards,
        base,
        conns: RwLock::new(Conns::default()),
        udp: udp_socks.clone(),
        sockets,
        handle: handle.clone(),
        resolving,
        rt: tokio::runtime::Handle::current(),
        timer: TimerWake::default(),
    });
    {
        let c = core.clone();
        std::thread::Builder::new()
            .name("sip-timer".into())
            .spawn(move || c.timer_loop())?;
    }
    for (local, sock) in udp_socks {
        let turn = Arc::new(Mutex::new(()));
        for w in 0..workers.max(1) {
            let (c, sock, turn) = (core.clone(), sock.clone(), turn.clone());
            std::thread::Builder::new()
                .name(format!("sip-udp-{w}"))
                .spawn(move || c.udp_worker(&sock, local, &turn))?;
        }
    }
    let stats: Arc<dyn CoreStats> = core.clone();
    let task = tokio::spawn(event_loop(core, rx));
    Ok(SipServer {
        handle,
        udp: udp_addrs,
        tcp: tcp_addrs,
        task,
        stats,
    })
}

/// Which of `cores` cores serves the messages with this Call-ID.
pub fn core_for(call_id: &[u8], cores: usize) -> usize {
    let mut h = std::hash::DefaultHasher::new();
    h.write(call_id);
    (h.finish() % cores.max(1) as u64) as usize
}

/// Receive buffer asked for each UDP socket. The kernel caps it at `net.core.rmem_max`
/// (and doubles the value for its bookkeeping, ~1-2 KiB per datagram): 12,000 REGISTERs
/// a second overflowed 1 MiB while the workers were preempted.
const UDP_RCVBUF: usize = 8 << 20;
/// Datagrams a UDP worker takes per `recvmmsg` (16 × 64 KiB of buffer per worker).
const UDP_BATCH: usize = 16;
/// Datagrams a core's inbox holds before the workers wait for the core instead of
/// receiving more (a flood then fills the socket's buffer, where the kernel drops it,
/// not memory).
const INBOX_CAP: usize = 1024;
/// The timer thread wakes on this grid (nanoseconds), serving every deadline that has
/// passed: under load a deadline falls due every few hundred microseconds, and waking
/// for each cost more than the work. RFC 3261's timers (T1 = 500 ms, Timer C = 3 min)
/// allow the lateness this adds (under two grid steps); timers due at once still fire
/// inline.
const TIMER_GRID: u64 = 10_000_000;

/// A blocking UDP socket with a large receive buffer: the workers wait in `recvfrom` on
/// it, as Kamailio's UDP processes do, and everyone sends on it.
fn bind_udp(addr: SocketAddr) -> io::Result<std::net::UdpSocket> {
    use socket2::{Domain, Protocol, Socket, Type};
    let s = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    if let Err(e) = s.set_recv_buffer_size(UDP_RCVBUF) {
        debug!(error = %e, "SO_RCVBUF");
    }
    match s.recv_buffer_size() {
        Ok(got) if got < UDP_RCVBUF => info!(
            %addr,
            asked = UDP_RCVBUF,
            got,
            "SIP UDP receive buffer capped (raise net.core.rmem_max for more)"
        ),
        Ok(got) => debug!(%addr, got, "SIP UDP receive buffer"),
        Err(_) => {}
    }
    s.bind(&addr.into())?;
    let s: std::net::UdpSocket = s.into();
    if let Err(e) = mmsg::enable_timestamps(&s) {
        info!(%addr, error = %e, "no receive timestamps: overload protection off");
    }
    Ok(s)
}

/// One core, its next deadline and the UDP datagrams waiting for it.
struct Shard<L: Locations> {
    sipd: Mutex<Sipd<L>>,
    /// Nanoseconds after [`Core::base`]; `u64::MAX`: none. Written under the lock.
    deadline: AtomicU64,
    /// UDP datagrams for this core in the order the kernel handed them to the workers;
    /// whoever holds `sipd` next serves them all, oldest first (see [`Core::udp_worker`]).
    inbox: Mutex<VecDeque<Datagram>>,
}

/// A UDP datagram taken from a socket, waiting in a core's inbox.
struct Datagram {
    bytes: Vec<u8>,
    flow: Flow,
    /// How long it waited in the kernel's receive queue.
    queued: Duration,
    /// When a worker took it from the socket: its wait in the inbox counts too.
    taken: Instant,
}

/// Wakes the timer thread when a core's deadline comes before the one it sleeps to.
#[derive(Default)]
struct TimerWake {
    /// The deadline the timer thread sleeps to; `u64::MAX` while it scans the shards, so
    /// that any deadline set meanwhile wakes it.
    next: AtomicU64,
    kicked: Mutex<bool>,
    cv: Condvar,
}

/// Everything the workers, the timer thread and the stream task share.
struct Core<L: Locations> {
    shards: Vec<Shard<L>>,
    base: Instant,
    conns: RwLock<Conns>,
    /// The UDP sockets in bind order, and local address to index.
    udp: Vec<(SocketAddr, Arc<std::net::UdpSocket>)>,
    sockets: HashMap<SocketAddr, usize>,
    handle: SipHandle,
    resolving: Resolving,
    rt: tokio::runtime::Handle,
    timer: TimerWake,
}

fn nanos_after(base: Instant, t: Option<Instant>) -> u64 {
    t.map_or(u64::MAX, |t| {
        u64::try_from(t.saturating_duration_since(base).as_nanos()).unwrap_or(u64::MAX - 1)
    })
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl<L: Locations> CoreStats for Core<L>
where
    L: Send,
{
    fn counters(&self) -> sipd::Counters {
        let mut c = sipd::Counters::default();
        for s in &self.shards {
            c.add(lock(&s.sipd).counters());
        }
        c
    }

    fn transactions(&self) -> usize {
        self.shards
            .iter()
            .map(|s| lock(&s.sipd).transactions())
            .sum()
    }
}

impl<L: Locations> Core<L> {
    /// The core that owns a message: by its Call-ID; one without (it gets a stateless
    /// answer, or none) goes to the first.
    fn shard_of(&self, bytes: &[u8]) -> usize {
        let n = self.shards.len();
        if n == 1 {
            return 0;
        }
        sip::call_id_of(bytes).map_or(0, |id| core_for(&id, n))
    }

    /// [`Core::serve`], then wakes the timer thread if the core's deadline is now earlier
    /// than the one it sleeps to.
    fn with_shard(&self, i: usize, f: impl FnOnce(&mut Sipd<L>, Instant)) {
        let d = self.serve(i, f);
        self.wake_timer_for(d);
    }

    /// Wakes the timer thread for deadline `d` (nanoseconds after `base`): only a
    /// deadline a grid step before the one it sleeps to does; `next` is MAX while it
    /// scans, so nothing set meanwhile is missed.
    fn wake_timer_for(&self, d: u64) {
        if d.saturating_add(TIMER_GRID) < self.timer.next.load(Ordering::SeqCst) {
            *lock(&self.timer.kicked) = true;
            self.timer.cv.notify_one();
        }
    }

    /// Runs `f` on core `i` (after the datagrams in its inbox) and drains it: sends
    /// (under the lock, so a core's messages leave in the order it produced them),
    /// resolutions, the next deadline (returned).
    fn serve(&self, i: usize, f: impl FnOnce(&mut Sipd<L>, Instant)) -> u64 {
        let Some(shard) = self.shards.get(i) else {
            return u64::MAX;
        };
        let d = self.serve_locked(i, &mut lock(&shard.sipd), f);
        // A worker that found the core busy meanwhile left its datagrams to us.
        if !lock(&shard.inbox).is_empty() {
            self.serve_inbox(i);
        }
        d
    }

    /// Serves core `i`'s inbox unless another thread holds the core: that one serves
    /// it before letting go (see [`Core::serve`]), so no datagram waits for the next.
    fn serve_inbox(&self, i: usize) {
        let Some(shard) = self.shards.get(i) else {
            return;
        };
        loop {
            let mut s = match shard.sipd.try_lock() {
                Ok(s) => s,
                Err(TryLockError::Poisoned(e)) => e.into_inner(),
                Err(TryLockError::WouldBlock) => return,
            };
            let d = self.serve_locked(i, &mut s, |_, _| {});
            drop(s);
            self.wake_timer_for(d);
            if lock(&shard.inbox).is_empty() {
                return;
            }
        }
    }

    fn serve_locked(
        &self,
        i: usize,
        s: &mut Sipd<L>,
        f: impl FnOnce(&mut Sipd<L>, Instant),
    ) -> u64 {
        let Some(shard) = self.shards.get(i) else {
            return u64::MAX;
        };
        // UDP datagrams first: they arrived before whatever `f` brings. Their delay for
        // overload protection is the kernel's queue plus the inbox's (a core that falls
        // behind its workers is as overloaded as one whose socket backs up).
        loop {
            let next = lock(&shard.inbox).pop_front();
            let Some(d) = next else { break };
            let now = Instant::now();
            s.set_queue_delay(d.queued + now.saturating_duration_since(d.taken));
            s.handle_message(now, &d.bytes, d.flow);
        }
        let now = Instant::now();
        f(s, now);
        // Timers due now (Timer J/K are zero on reliable transports) fire at once.
        if s.poll_timeout().is_some_and(|d| d <= now) {
            s.handle_timeout(now);
        }
        while let Some(t) = s.poll_transmit() {
            self.transmit(&t);
        }
        while let Some(r) = s.poll_resolve() {
            self.rt.spawn(resolve(
                r,
                i,
                self.resolving.resolver.clone(),
                self.resolving.supported.clone(),
                self.handle.clone(),
            ));
        }
        let d = nanos_after(self.base, s.poll_timeout());
        shard.deadline.store(d, Ordering::SeqCst);
        d
    }

    /// A UDP worker: waits on the shared socket for a datagram, takes the ones queued
    /// behind it in the same system call (`recvmmsg`, up to [`UDP_BATCH`]), and serves
    /// each in the core that owns it. Under load one wake-up serves many datagrams.
    ///
    /// The workers of a socket take `turn` to receive, and put what they got into the
    /// cores' inboxes before giving it up; a core serves its inbox in order. So a phone's
    /// 180 and the 200 right behind it leave in that order even when two workers took
    /// them: otherwise the one holding the 200 could reach the core first, and the 180
    /// would be dropped as late (RFC 3261 §17.1.1.2) — the caller would never hear it ring.
    fn udp_worker(&self, sock: &std::net::UdpSocket, local: SocketAddr, turn: &Mutex<()>) {
        // Room for the largest datagram; oversized requests are answered 513 by the core.
        let mut batch = mmsg::Datagrams::<UDP_BATCH>::new(65536);
        let mut cores = Vec::with_capacity(UDP_BATCH);
        loop {
            let my_turn = lock(turn);
            match batch.recv(sock, true) {
                Ok(n) => {
                    // The kernel's receive stamps against the wall clock now: how far
                    // behind the workers are (overload protection in the core).
                    let wall = SystemTime::now()
                        .duration_since(UNIX_EPOCH)
                        .unwrap_or_default();
                    let taken = Instant::now();
                    for i in 0..n {
                        let queued = batch
                            .received_at(i)
                            .map_or(Duration::ZERO, |at| wall.saturating_sub(at));
                        let Some((bytes, Some(remote))) = batch.get(i) else {
                            continue;
                        };
                        debug!(transport = "UDP", peer = %remote, len = bytes.len(), "recv {}", first_line(bytes));
                        let flow = Flow {
                            transport: Transport::Udp,
                            remote,
                            local,
                            conn: None,
                        };
                        let i = self.shard_of(bytes);
                        if let Some(shard) = self.shards.get(i) {
                            lock(&shard.inbox).push_back(Datagram {
                                bytes: bytes.to_vec(),
                                flow,
                                queued,
                                taken,
                            });
                            if !cores.contains(&i) {
                                cores.push(i);
                            }
                        }
                    }
                    drop(my_turn);
                    for i in cores.drain(..) {
                        let backlog = self.shards.get(i).map_or(0, |s| lock(&s.inbox).len());
                        if backlog > INBOX_CAP {
                            // The core falls behind: wait for it, so that the kernel's
                            // receive buffer (bounded; it drops) takes the excess.
                            self.with_shard(i, |_, _| {});
                        } else {
                            self.serve_inbox(i);
                        }
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                // ICMP errors surface as recv errors on some platforms: keep serving.
                Err(e) => {
                    drop(my_turn);
                    debug!(error = %e, "udp recv");
                    std::thread::sleep(Duration::from_millis(1));
                }
            }
        }
    }

    /// Fires the cores' timers: sleeps until the earliest deadline, or until a core
    /// reports an earlier one.
    fn timer_loop(&self) {
        loop {
            self.timer.next.store(u64::MAX, Ordering::SeqCst);
            let now = nanos_after(self.base, Some(Instant::now()));
            for (i, s) in self.shards.iter().enumerate() {
                if s.deadline.load(Ordering::SeqCst) <= now {
                    self.serve(i, |s, now| s.handle_timeout(now));
                }
            }
            let next = self
                .shards
                .iter()
                .map(|s| s.deadline.load(Ordering::SeqCst))
                .min()
                .unwrap_or(u64::MAX);
            self.timer.next.store(next, Ordering::SeqCst);
            let mut kicked = lock(&self.timer.kicked);
            if !*kicked {
                let at = nanos_after(self.base, Some(Instant::now()));
                let on_grid = next.div_ceil(TIMER_GRID).saturating_mul(TIMER_GRID);
                let wait =
                    Duration::from_nanos(on_grid.saturating_sub(at)).min(Duration::from_secs(3600));
                kicked = self
                    .timer
                    .cv
                    .wait_timeout(kicked, wait)
                    .unwrap_or_else(PoisonError::into_inner)
                    .0;
            }
            *kicked = false;
        }
    }

    fn on_net_event(&self, ev: NetEvent) {
        match ev {
            NetEvent::Message { bytes, flow } => {
                debug!(transport = %flow.transport, peer = %flow.remote, conn = ?flow.conn, len = bytes.len(), "recv {}", first_line(&bytes));
                self.with_shard(self.shard_of(&bytes), |s, now| {
                    s.set_queue_delay(Duration::ZERO);
                    s.handle_message(now, &bytes, flow)
                });
            }
            NetEvent::Unframeable { bytes, flow, error } => {
                self.with_shard(0, |s, _| s.reject_unframeable(&bytes, flow, &error))
            }
            NetEvent::Opened { conn, tx, flow } => {
                debug!(conn, transport = %flow.transport, remote = %flow.remote, "connection open");
                {
                    let mut c = self.conns.write().unwrap_or_else(PoisonError::into_inner);
                    c.writers.insert(conn, tx);
                    c.by_remote.insert((flow.transport, flow.remote), conn);
                    c.remote_of.insert(conn, (flow.transport, flow.remote));
                }
                // Every core may route to it (a binding registered over it, a flow token).
                for i in 0..self.shards.len() {
                    self.with_shard(i, |s, _| s.connection_opened(flow));
                }
            }
            NetEvent::Closed { conn } => {
                debug!(conn, "connection closed");
                {
                    let mut c = self.conns.write().unwrap_or_else(PoisonError::into_inner);
                    c.writers.remove(&conn);
                    if let Some(key) = c.remote_of.remove(&conn)
                        && c.by_remote.get(&key) == Some(&conn)
                    {
                        c.by_remote.remove(&key);
                    }
                }
                for i in 0..self.shards.len() {
                    self.with_shard(i, |s, now| s.connection_closed(now, conn));
                }
            }
            NetEvent::Resolved { shard, id, targets } => {
                self.with_shard(shard, |s, now| s.resolved(now, id, &targets))
            }
        }
    }

    fn transmit(&self, t: &sipd::Transmit) {
        debug!(transport = %t.flow.transport, peer = %t.flow.remote, conn = ?t.flow.conn, len = t.bytes.len(), "send {}", first_line(&t.bytes));
        if t.flow.conn.is_none() && t.flow.transport == Transport::Udp {
            let i = self.sockets.get(&t.flow.local).copied().unwrap_or(0);
            if let Some((_, sock)) = self.udp.get(i)
                && let Err(e) = sock.send_to(&t.bytes, t.flow.remote)
            {
                debug!(error = %e, remote = %t.flow.remote, "udp send");
            }
            return;
        }
        let conns = self.conns.read().unwrap_or_else(PoisonError::into_inner);
        let conn = match t.flow.conn {
            Some(c) => c,
            // RFC 3261 §18.2.2 / §18.1.1: reuse a connection to that address, else open one.
            None => match conns.by_remote.get(&(t.flow.transport, t.flow.remote)) {
                Some(c) => *c,
                None => {
                    if t.flow.transport == Transport::Tcp {
                        self.rt.spawn(stream::connect(
                            t.flow.remote,
                            t.bytes.clone(),
                            self.handle.clone(),
                        ));
                    } else {
                        debug!(transport = %t.flow.transport, remote = %t.flow.remote, "no connection; message dropped");
                    }
                    return;
                }
            },
        };
        match conns.writers.get(&conn) {
            // A full writer queue means a peer that does not read: drop, it will be
            // timed out by its reader.
            Some(tx) => {
                if tx.try_send(t.bytes.clone()).is_err() {
                    warn!(conn, "stream writer full or closed; message dropped");
                }
            }
            None => debug!(conn, "connection gone; message dropped"),
        }
    }
}

/// Serves the stream transports' events (and answered resolutions) in arrival order.
async fn event_loop<L: Locations>(core: Arc<Core<L>>, mut rx: mpsc::Receiver<NetEvent>) {
    while let Some(ev) = rx.recv().await {
        core.on_net_event(ev);
    }
    info!("SIP core stopped");
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

/// Live stream connections.
#[derive(Default)]
struct Conns {
    writers: HashMap<u64, mpsc::Sender<Bytes>>,
    by_remote: HashMap<(Transport, SocketAddr), u64>,
    remote_of: HashMap<u64, (Transport, SocketAddr)>,
}

/// Locates the SIP server for a host per RFC 3263 (NAPTR, SRV, A/AAAA) for core `shard`.
async fn resolve(
    r: proxy::ResolveRequest,
    shard: usize,
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
    handle
        .send(NetEvent::Resolved {
            shard,
            id: r.id,
            targets,
        })
        .await;
}
