//! RTP port pairs from a configured range: an even port for RTP and the next one for
//! RTCP (RFC 3550 §11).

use std::collections::HashSet;
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;
use std::sync::{Arc, Mutex};

use net::mmsg::Datagrams;
use tokio::io::Interest;
use tokio::io::unix::AsyncFd;

/// An inclusive range of UDP ports for RTP/RTCP pairs. Only even ports start a pair.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PortRange {
    pub lo: u16,
    pub hi: u16,
}

impl PortRange {
    /// The usual range, 16384-32767.
    pub const DEFAULT: PortRange = PortRange {
        lo: 16384,
        hi: 32767,
    };

    /// `lo..=hi`; `None` unless it holds at least one even/odd pair.
    pub fn new(lo: u16, hi: u16) -> Option<PortRange> {
        let first = lo.checked_add(lo & 1)?;
        (lo > 0 && first < hi).then_some(PortRange { lo, hi })
    }

    /// Even ports that start a pair.
    fn starts(self) -> impl Iterator<Item = u16> {
        let first = self.lo + (self.lo & 1);
        (first..self.hi).step_by(2)
    }
}

impl Default for PortRange {
    fn default() -> Self {
        PortRange::DEFAULT
    }
}

impl fmt::Display for PortRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.lo, self.hi)
    }
}

impl FromStr for PortRange {
    type Err = String;
    fn from_str(s: &str) -> Result<PortRange, String> {
        let (lo, hi) = s
            .split_once('-')
            .ok_or_else(|| format!("{s:?}: expected LO-HI"))?;
        let lo: u16 = lo
            .trim()
            .parse()
            .map_err(|_| format!("{s:?}: bad port {lo:?}"))?;
        let hi: u16 = hi
            .trim()
            .parse()
            .map_err(|_| format!("{s:?}: bad port {hi:?}"))?;
        PortRange::new(lo, hi).ok_or_else(|| format!("{s:?}: no even/odd port pair in range"))
    }
}

/// A UDP socket registered with the runtime for reading only, and only while a task
/// waits on it. tokio's `UdpSocket` also asks epoll for writability, so every datagram
/// sent wakes the runtime once more when the kernel frees its buffer space (an
/// edge-triggered EPOLLOUT nobody waits for): one needless wake-up per packet sent.
/// Sends never wait: a datagram the socket cannot take now is dropped, as the network
/// would drop it.
///
/// A socket read on the packet clock ([`crate::clock`]) is taken out of epoll
/// ([`DatagramSocket::unwatch`]): registered, every datagram arriving would wake a
/// parked worker thread whether or not a task waits for it.
///
/// Datagrams between two sockets of this process where the receiver is read on the
/// clock ([`DatagramSocket::read_on_clock`]) skip the kernel: see [`Inbox`].
#[derive(Debug)]
pub struct DatagramSocket {
    sock: std::net::UdpSocket,
    /// The bound address (the source of what it sends).
    local: SocketAddr,
    /// A duplicate descriptor of `sock` in the runtime's epoll (reading only); made by
    /// the first wait for readiness, dropped (deregistered) by `unwatch`.
    watch: Mutex<Option<Arc<AsyncFd<std::net::UdpSocket>>>>,
    /// Set while the socket is read on the clock and takes in-process datagrams.
    inbox: Mutex<Option<Arc<Inbox>>>,
}

/// Datagrams sent to a socket of this process read on the packet clock, by another
/// socket of this process: queued here by the sender instead of going through the
/// kernel's loopback, and taken by the reader's next tick with what the kernel queued
/// ([`DatagramSocket::take_inbox`]). Two lines of one server in a call with each
/// other (two browser tabs, say) send each other RTP this way: the bytes, the source
/// address and the loss when the reader falls behind are what the kernel would give
/// (the reader does not wait on the socket, so no wake-up is lost); the system calls
/// and the loopback stack on both sides are not paid (issue 8). A capture on `lo`
/// does not see these datagrams.
#[derive(Debug, Default)]
pub struct Inbox {
    queue: Mutex<std::collections::VecDeque<(Vec<u8>, SocketAddr)>>,
}

/// Datagrams an [`Inbox`] holds before it drops new ones (a full socket buffer): a
/// few seconds of one call's packets, far more than one tick brings.
const INBOX_LIMIT: usize = 256;

/// The sockets read on the clock, by bound address.
static INBOXES: Mutex<Option<std::collections::HashMap<SocketAddr, Arc<Inbox>>>> = Mutex::new(None);
/// How many there are: a send looks the destination up only when any exist.
static INBOX_COUNT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

fn inboxes()
-> std::sync::MutexGuard<'static, Option<std::collections::HashMap<SocketAddr, Arc<Inbox>>>> {
    INBOXES.lock().unwrap_or_else(|e| e.into_inner())
}

impl Inbox {
    fn push(&self, data: &[u8], from: SocketAddr) {
        let mut q = self.queue.lock().unwrap_or_else(|e| e.into_inner());
        if q.len() < INBOX_LIMIT {
            q.push_back((data.to_vec(), from));
        }
    }
}

impl DatagramSocket {
    /// Binds `addr` (non-blocking; registered for reading when first waited on).
    pub fn bind(addr: SocketAddr) -> std::io::Result<DatagramSocket> {
        let sock = std::net::UdpSocket::bind(addr)?;
        sock.set_nonblocking(true)?;
        let local = sock.local_addr()?;
        Ok(DatagramSocket {
            sock,
            local,
            watch: Mutex::new(None),
            inbox: Mutex::new(None),
        })
    }

    /// For a reader that polls the socket on the packet clock and never waits on it:
    /// takes it out of epoll ([`DatagramSocket::unwatch`]) and lets other sockets of
    /// this process deliver to it in memory ([`Inbox`]; not for a socket bound to a
    /// wildcard address). A later wait for readiness ends both.
    pub fn read_on_clock(&self) {
        self.unwatch();
        if self.local.ip().is_unspecified() {
            return;
        }
        let mut mine = self.inbox.lock().unwrap_or_else(|e| e.into_inner());
        if mine.is_some() {
            return;
        }
        let inbox = Arc::new(Inbox::default());
        let mut all = inboxes();
        let map = all.get_or_insert_with(Default::default);
        if map.insert(self.local, inbox.clone()).is_none() {
            INBOX_COUNT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
        *mine = Some(inbox);
    }

    /// Stops in-process delivery to this socket (what is queued is dropped).
    fn close_inbox(&self) {
        let Some(inbox) = self.inbox.lock().unwrap_or_else(|e| e.into_inner()).take() else {
            return;
        };
        let mut all = inboxes();
        if let Some(map) = all.as_mut()
            && map.get(&self.local).is_some_and(|i| Arc::ptr_eq(i, &inbox))
        {
            map.remove(&self.local);
            INBOX_COUNT.fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
        }
    }

    /// Hands every datagram delivered in memory since the last call, oldest first, with
    /// its source, to `f`.
    pub(crate) fn take_inbox(&self, mut f: impl FnMut(&[u8], SocketAddr)) {
        let Some(inbox) = self.inbox.lock().unwrap_or_else(|e| e.into_inner()).clone() else {
            return;
        };
        let queued = std::mem::take(&mut *inbox.queue.lock().unwrap_or_else(|e| e.into_inner()));
        for (data, from) in &queued {
            f(data, *from);
        }
    }

    fn watched(&self) -> Option<Arc<AsyncFd<std::net::UdpSocket>>> {
        self.watch.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// The registration, made now if there is none.
    pub(crate) fn watcher(&self) -> std::io::Result<Arc<AsyncFd<std::net::UdpSocket>>> {
        let mut w = self.watch.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(a) = w.as_ref() {
            return Ok(a.clone());
        }
        // Waited on: datagrams must come through the kernel, which wakes the waiter.
        self.close_inbox();
        // Deprecated for types whose descriptor may be closed or replaced while
        // registered (tokio#8587); this duplicate is owned by the registration alone
        // and never given out mutably. The replacement is `unsafe`, which this crate
        // keeps to its `recv` module.
        #[allow(deprecated)]
        let a = Arc::new(AsyncFd::with_interest(
            self.sock.try_clone()?,
            Interest::READABLE,
        )?);
        *w = Some(a.clone());
        Ok(a)
    }

    /// Takes the socket out of the runtime's epoll until the next wait for readiness:
    /// for a reader that polls it on a clock ([`DatagramSocket::try_recv_from`]).
    pub fn unwatch(&self) {
        let gone = self.watch.lock().unwrap_or_else(|e| e.into_inner()).take();
        drop(gone);
    }

    /// Waits for a datagram.
    pub async fn recv_from(&self, buf: &mut [u8]) -> std::io::Result<(usize, SocketAddr)> {
        self.watcher()?
            .async_io(Interest::READABLE, |s| s.recv_from(buf))
            .await
    }

    /// Waits until a datagram may be queued (see [`DatagramSocket::try_recv_from`]).
    pub async fn readable(&self) -> std::io::Result<()> {
        self.watcher()?.readable().await.map(drop)
    }

    /// A datagram if one is queued; `WouldBlock` when none is (and the next
    /// [`DatagramSocket::readable`] waits for one).
    pub fn try_recv_from(&self, buf: &mut [u8]) -> std::io::Result<(usize, SocketAddr)> {
        self.try_read_io(|s| s.recv_from(buf))
    }

    /// Runs a read `f` on the socket; a `WouldBlock` from it clears the readiness (the
    /// next [`DatagramSocket::readable`] waits for a new datagram).
    pub(crate) fn try_read_io<R>(
        &self,
        f: impl FnOnce(&std::net::UdpSocket) -> std::io::Result<R>,
    ) -> std::io::Result<R> {
        match self.watched() {
            Some(w) => w.try_io(Interest::READABLE, f),
            None => f(&self.sock),
        }
    }

    /// Sends one datagram, in memory when `to` is a socket of this process read on the
    /// clock ([`Inbox`]) and this one is bound to a specific address.
    pub fn try_send_to(&self, buf: &[u8], to: SocketAddr) -> std::io::Result<usize> {
        if INBOX_COUNT.load(std::sync::atomic::Ordering::Relaxed) > 0
            && !self.local.ip().is_unspecified()
        {
            let inbox = inboxes().as_ref().and_then(|m| m.get(&to).cloned());
            if let Some(inbox) = inbox {
                inbox.push(buf, self.local);
                return Ok(buf.len());
            }
        }
        self.sock.send_to(buf, to)
    }

    /// Sends every datagram of `out` with as few `sendmmsg` calls as fit, never
    /// waiting; one the kernel refuses is dropped ([`net::mmsg::send_all`]).
    pub fn try_send_all(&self, out: &[(&[u8], SocketAddr)]) -> std::io::Result<usize> {
        net::mmsg::send_all(&self.sock, out)
    }

    /// Takes up to `N` queued datagrams into `batch` with one `recvmmsg`, without
    /// waiting. A batch shorter than `N` proves the queue empty: it reads as
    /// `WouldBlock` (the datagrams are in `batch`, and the next
    /// [`DatagramSocket::readable`] waits for a new one), as an empty queue does.
    pub fn try_recv_batch<const N: usize>(
        &self,
        batch: &mut Datagrams<N>,
    ) -> std::io::Result<usize> {
        self.try_read_io(|s| match batch.recv(s, false)? {
            n if n < N => Err(std::io::ErrorKind::WouldBlock.into()),
            n => Ok(n),
        })
    }

    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        Ok(self.local)
    }
}

impl Drop for DatagramSocket {
    fn drop(&mut self) {
        self.close_inbox();
    }
}

/// One bound RTP/RTCP socket pair.
#[derive(Clone, Debug)]
pub(crate) struct RtpPair {
    pub port: u16,
    pub rtp: Arc<DatagramSocket>,
    pub rtcp: Arc<DatagramSocket>,
}

impl RtpPair {
    pub fn rtp_addr(&self, ip: IpAddr) -> SocketAddr {
        SocketAddr::new(ip, self.port)
    }
}

/// Hands out pairs round-robin through the range, so a freed pair is reused only after
/// the others (stray packets of the old call have time to die out).
#[derive(Debug)]
pub(crate) struct RtpPorts {
    range: PortRange,
    cursor: u16,
    used: HashSet<u16>,
}

impl RtpPorts {
    pub fn new(range: PortRange) -> RtpPorts {
        RtpPorts {
            range,
            cursor: range.lo + (range.lo & 1),
            used: HashSet::new(),
        }
    }

    /// Binds the next free pair on `ip`; ports taken by other programs are skipped.
    pub fn allocate(&mut self, ip: IpAddr) -> Option<RtpPair> {
        let starts: Vec<u16> = self.range.starts().collect();
        let begin = starts.iter().position(|p| *p >= self.cursor).unwrap_or(0);
        for i in 0..starts.len() {
            let port = starts[(begin + i) % starts.len()];
            if self.used.contains(&port) {
                continue;
            }
            let Some(pair) = bind_pair(ip, port) else {
                continue;
            };
            self.used.insert(port);
            self.cursor = port.saturating_add(2);
            return Some(pair);
        }
        None
    }

    /// Gives a pair back (its sockets close when the last user drops them).
    pub fn release(&mut self, port: u16) {
        self.used.remove(&port);
    }

    #[cfg(test)]
    pub fn in_use(&self) -> usize {
        self.used.len()
    }
}

/// Binds `port` (RTP) and `port + 1` (RTCP) on `ip`.
pub(crate) fn bind_pair(ip: IpAddr, port: u16) -> Option<RtpPair> {
    let bind = |p: u16| -> Option<Arc<DatagramSocket>> {
        DatagramSocket::bind(SocketAddr::new(ip, p))
            .ok()
            .map(Arc::new)
    };
    let rtp = bind(port)?;
    let rtcp = bind(port.checked_add(1)?)?;
    Some(RtpPair { port, rtp, rtcp })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_parse() {
        assert_eq!(
            "20000-20009".parse::<PortRange>(),
            Ok(PortRange {
                lo: 20000,
                hi: 20009
            })
        );
        assert!("20001-20002".parse::<PortRange>().is_err());
        assert!("5-".parse::<PortRange>().is_err());
        assert!("0-10".parse::<PortRange>().is_err());
        let r = PortRange::new(20001, 20006).unwrap();
        assert_eq!(r.starts().collect::<Vec<_>>(), vec![20002, 20004]);
    }

    #[tokio::test]
    async fn pairs_are_even_distinct_and_reused_after_release() {
        let ip: IpAddr = "127.0.0.1".parse().unwrap();
        let mut ports = RtpPorts::new(PortRange::new(19950, 19955).unwrap());
        let a = ports.allocate(ip).unwrap();
        let b = ports.allocate(ip).unwrap();
        let c = ports.allocate(ip).unwrap();
        let mut got = [a.port, b.port, c.port];
        got.sort_unstable();
        assert_eq!(got, [19950, 19952, 19954]);
        assert_eq!(a.rtcp.local_addr().unwrap().port(), a.port + 1);
        assert!(ports.allocate(ip).is_none());
        let freed = b.port;
        ports.release(freed);
        drop(b);
        assert_eq!(ports.allocate(ip).unwrap().port, freed);
        assert_eq!(ports.in_use(), 3);
    }
}
