//! The listener: accepts TCP connections within the limits, picks the application for
//! each `connect` and runs one task per connection.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rtmp::SessionConfig;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc, watch};
use tokio::task::{JoinHandle, JoinSet};
use tracing::{debug, info, warn};

use crate::app::Application;
use crate::client::QueueLimits;
use crate::conn;

/// Server settings. The defaults suit a public server.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// The sans-IO session's settings (chunk size, window, stream and message limits).
    /// Its `connect_timeout` is the time from the first byte to a complete handshake and
    /// `connect` command; `rng_seed` is replaced per connection.
    pub session: SessionConfig,
    /// Most connections at once; more are closed at accept with a log line.
    pub max_connections: usize,
    /// Most connections at once from one IP address (loopback included).
    pub max_connections_per_ip: usize,
    /// Time an application may take to accept or reject a connect before the server
    /// rejects it ("Connect timed out").
    pub connect_decision_timeout: Duration,
    /// Silence from the client after which the connection is closed. A ping is sent
    /// at half this time, so a live client (which answers pings) never reaches it.
    pub idle_timeout: Duration,
    /// Time a rejected client has to close the connection itself.
    pub reject_grace: Duration,
    /// Bounds on each connection's outgoing queue (slow players).
    pub queue: QueueLimits,
    /// Event-loop threads for the connections: 0 runs them as tasks on the caller's
    /// runtime; N > 0 starts N threads, each a single-threaded runtime, and deals
    /// connections out round-robin. A live relay wakes every player for every message:
    /// on one event loop that is a queue push, across a work-stealing pool it is a
    /// cross-thread wake-up and a parked worker unparked (about a third more CPU per
    /// player in `bench/rtmp`). Tasks an application spawns from a connection's
    /// callbacks run on that connection's thread.
    pub threads: usize,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            session: SessionConfig {
                connect_timeout: Duration::from_secs(10),
                ..SessionConfig::default()
            },
            max_connections: 4096,
            max_connections_per_ip: 1024,
            connect_decision_timeout: Duration::from_secs(60),
            idle_timeout: Duration::from_secs(60),
            reject_grace: Duration::from_secs(5),
            queue: QueueLimits::default(),
            threads: 0,
        }
    }
}

/// What a connection task needs from the server.
pub(crate) struct Context {
    pub(crate) config: ServerConfig,
    apps: HashMap<String, Arc<dyn Application>>,
    default_app: Option<Arc<dyn Application>>,
    next_id: AtomicU64,
    per_ip: Mutex<HashMap<IpAddr, usize>>,
}

impl Context {
    /// The application for an application name (case-sensitive, as the original).
    pub(crate) fn app(&self, name: &str) -> Option<Arc<dyn Application>> {
        self.apps
            .get(name)
            .cloned()
            .or_else(|| self.default_app.clone())
    }
}

/// An RTMP server: applications by name plus an optional default for every other
/// name.
///
/// ```no_run
/// # async fn f(
/// #     sip: std::sync::Arc<dyn switchboard_front_rtmp::Application>,
/// #     live: std::sync::Arc<dyn switchboard_front_rtmp::Application>,
/// # ) -> std::io::Result<()> {
/// use switchboard_front_rtmp::{Server, ServerConfig};
/// let listener = tokio::net::TcpListener::bind("127.0.0.1:1935").await?;
/// let server = Server::new(ServerConfig::default())
///     .app("sip", sip)
///     .default_app(live)
///     .spawn(listener);
/// println!("RTMP on rtmp://{}", server.local_addr());
/// # Ok(()) }
/// ```
pub struct Server {
    config: ServerConfig,
    apps: HashMap<String, Arc<dyn Application>>,
    default_app: Option<Arc<dyn Application>>,
}

impl Server {
    /// A server with no applications: every connect is rejected with
    /// "Application not found: NAME" until some are added.
    pub fn new(config: ServerConfig) -> Server {
        Server {
            config,
            apps: HashMap::new(),
            default_app: None,
        }
    }

    /// Serves `name` (the first segment of the connect's `app` path) with `app`.
    pub fn app(mut self, name: &str, app: Arc<dyn Application>) -> Server {
        self.apps.insert(name.to_owned(), app);
        self
    }

    /// Serves every name without an application of its own with `app` (the original's
    /// `'*'`).
    pub fn default_app(mut self, app: Arc<dyn Application>) -> Server {
        self.default_app = Some(app);
        self
    }

    /// Starts accepting on `listener` in a task.
    pub fn spawn(self, listener: TcpListener) -> ServerHandle {
        let local_addr = listener
            .local_addr()
            .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)));
        let (stop_tx, stop_rx) = watch::channel(false);
        let task = tokio::spawn(self.run(listener, stop_rx));
        ServerHandle {
            local_addr,
            stop: stop_tx,
            task,
        }
    }

    async fn run(self, listener: TcpListener, mut stop: watch::Receiver<bool>) {
        let ctx = Arc::new(Context {
            config: self.config,
            apps: self.apps,
            default_app: self.default_app,
            next_id: AtomicU64::new(1),
            per_ip: Mutex::new(HashMap::new()),
        });
        let slots = Arc::new(Semaphore::new(ctx.config.max_connections));
        let seed = os_seed();
        let loops = match start_loops(ctx.config.threads) {
            Ok(l) => l,
            Err(e) => {
                warn!(error = %e, "cannot start RTMP threads; serving connections on the runtime");
                Vec::new()
            }
        };
        let mut next_loop = 0usize;
        // A dropped ServerHandle leaves the server running (like a detached task).
        let mut stop_alive = true;
        loop {
            let (socket, peer) = tokio::select! {
                r = stop.changed(), if stop_alive => {
                    if r.is_err() {
                        stop_alive = false;
                        continue;
                    }
                    break;
                }
                r = listener.accept() => match r {
                    Ok(x) => x,
                    Err(e) => {
                        // EMFILE and friends: back off instead of spinning.
                        warn!(error = %e, "RTMP accept failed");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                },
            };
            let Ok(permit) = slots.clone().try_acquire_owned() else {
                warn!(%peer, limit = ctx.config.max_connections, "RTMP connection limit reached; closing new connection");
                continue;
            };
            let Some(ip_guard) = IpGuard::take(&ctx, peer.ip()) else {
                warn!(%peer, limit = ctx.config.max_connections_per_ip, "RTMP per-address connection limit reached; closing new connection");
                continue;
            };
            let _ = socket.set_nodelay(true);
            let id = ctx.next_id.fetch_add(1, Ordering::Relaxed);
            debug!(conn = id, %peer, "RTMP connection");
            let job = Accepted {
                id,
                peer,
                rng_seed: seed ^ id.wrapping_mul(0x9E37_79B9_7F4A_7C15),
                ctx: ctx.clone(),
                stop: stop.clone(),
                guards: (ip_guard, permit),
            };
            if loops.is_empty() {
                tokio::spawn(job.run(socket));
            } else {
                match socket.into_std() {
                    Ok(std) => {
                        let _ = loops[next_loop % loops.len()].send((job, std));
                        next_loop = next_loop.wrapping_add(1);
                    }
                    Err(e) => warn!(%peer, error = %e, "RTMP connection not handed to a thread"),
                }
            }
        }
        // Dropping the senders lets each thread finish its connections, then exit.
        drop(loops);
        info!("RTMP listener stopped");
    }
}

/// An accepted connection, ready to run on some runtime.
struct Accepted {
    id: u64,
    peer: SocketAddr,
    rng_seed: u64,
    ctx: Arc<Context>,
    stop: watch::Receiver<bool>,
    /// Released when the connection ends.
    guards: (IpGuard, OwnedSemaphorePermit),
}

impl Accepted {
    async fn run(self, socket: TcpStream) {
        conn::run(
            socket,
            self.peer,
            self.id,
            self.rng_seed,
            self.ctx,
            self.stop,
        )
        .await;
        drop(self.guards);
    }
}

type LoopSender = mpsc::UnboundedSender<(Accepted, std::net::TcpStream)>;

/// Starts `n` connection threads (see [`ServerConfig::threads`]). Each runs until its
/// sender is dropped and its last connection has ended.
fn start_loops(n: usize) -> std::io::Result<Vec<LoopSender>> {
    let mut loops = Vec::with_capacity(n);
    for i in 0..n {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let (tx, mut rx) = mpsc::unbounded_channel::<(Accepted, std::net::TcpStream)>();
        std::thread::Builder::new()
            .name(format!("rtmp-{i}"))
            .spawn(move || {
                runtime.block_on(async move {
                    let mut conns = JoinSet::new();
                    loop {
                        tokio::select! {
                            job = rx.recv() => match job {
                                Some((job, std)) => match TcpStream::from_std(std) {
                                    Ok(socket) => {
                                        conns.spawn(job.run(socket));
                                    }
                                    Err(e) => warn!(peer = %job.peer, error = %e, "RTMP connection not registered"),
                                },
                                None => break,
                            },
                            Some(_) = conns.join_next() => {}
                        }
                    }
                    while conns.join_next().await.is_some() {}
                });
            })?;
        loops.push(tx);
    }
    Ok(loops)
}

/// A running server.
pub struct ServerHandle {
    local_addr: SocketAddr,
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl ServerHandle {
    /// The address it listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Stops accepting and closes every connection (applications see
    /// [`CloseInfo::Shutdown`](crate::CloseInfo::Shutdown)).
    pub fn shutdown(&self) {
        let _ = self.stop.send(true);
    }

    /// Waits for the listener task (it ends after [`ServerHandle::shutdown`]).
    pub async fn join(self) {
        let _ = self.task.await;
    }
}

/// Counts a connection against its address's limit while alive.
struct IpGuard {
    ctx: Arc<Context>,
    ip: IpAddr,
}

impl IpGuard {
    fn take(ctx: &Arc<Context>, ip: IpAddr) -> Option<IpGuard> {
        let mut m = ctx.per_ip.lock().unwrap_or_else(|e| e.into_inner());
        let n = m.entry(ip).or_insert(0);
        if *n >= ctx.config.max_connections_per_ip {
            return None;
        }
        *n += 1;
        Some(IpGuard {
            ctx: ctx.clone(),
            ip,
        })
    }
}

impl Drop for IpGuard {
    fn drop(&mut self) {
        let mut m = self.ctx.per_ip.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = m.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                m.remove(&self.ip);
            }
        }
    }
}

/// Seed for handshake filler bytes (no security rests on it).
fn os_seed() -> u64 {
    let mut b = [0u8; 8];
    if getrandom::fill(&mut b).is_err() {
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0);
        return t ^ u64::from(std::process::id());
    }
    u64::from_le_bytes(b)
}
