//! Several datagrams per system call: `recvmmsg(2)` into fixed slots, `sendmmsg(2)`
//! from a list. The SIP UDP workers wait for the first datagram and take whatever else
//! is queued with it; the RTP receivers (`ua`) take what is queued without waiting; the
//! WebRTC task sends a packet-clock tick's datagrams in one call. The unsafe FFI of the
//! I/O layer is confined to this module.
#![allow(unsafe_code)]

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

/// Room for the control messages of one datagram: a `SCM_TIMESTAMPNS` (a cmsghdr and a
/// timespec, 32 bytes) with margin, aligned for `cmsghdr`.
#[cfg(target_os = "linux")]
type Control = [u64; 8];

/// Up to `N` received datagrams, one fixed-size slot each; longer ones are truncated to
/// a slot, as `recv_from` into a buffer that size would.
pub struct Datagrams<const N: usize> {
    buf: Box<[u8]>,
    slot: usize,
    got: [Got; N],
    count: usize,
}

/// Length, source and kernel receive time of one datagram.
#[derive(Clone, Copy, Default)]
struct Got {
    len: usize,
    from: Option<SocketAddr>,
    at: Option<Duration>,
}

/// Has the kernel stamp each datagram of `sock` with its arrival time
/// (`SO_TIMESTAMPNS`, wall clock), which [`Datagrams::received_at`] then reports: how long
/// a datagram waited in the queue says whether the server keeps up.
#[cfg(target_os = "linux")]
pub fn enable_timestamps(sock: &std::net::UdpSocket) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    let on: libc::c_int = 1;
    // SAFETY: a valid socket and an int option of the size given.
    let r = unsafe {
        libc::setsockopt(
            sock.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_TIMESTAMPNS,
            (&on as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

#[cfg(not(target_os = "linux"))]
pub fn enable_timestamps(_sock: &std::net::UdpSocket) -> io::Result<()> {
    Ok(())
}

impl<const N: usize> Datagrams<N> {
    /// Room for `N` datagrams of up to `slot` bytes.
    pub fn new(slot: usize) -> Datagrams<N> {
        Datagrams {
            buf: vec![0u8; N * slot].into_boxed_slice(),
            slot,
            got: [Got::default(); N],
            count: 0,
        }
    }

    /// Datagrams the last [`Datagrams::recv`] took.
    pub fn len(&self) -> usize {
        self.count
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Datagram `i` of the last receive and its source (`None` for an address family
    /// other than IPv4/IPv6).
    pub fn get(&self, i: usize) -> Option<(&[u8], Option<SocketAddr>)> {
        if i >= self.count {
            return None;
        }
        let Got { len, from, .. } = *self.got.get(i)?;
        let data = self.buf.get(i * self.slot..i * self.slot + len)?;
        Some((data, from))
    }

    /// When datagram `i` arrived, as time since the Unix epoch, if the socket has
    /// [`enable_timestamps`] on.
    pub fn received_at(&self, i: usize) -> Option<Duration> {
        if i >= self.count {
            return None;
        }
        self.got.get(i)?.at
    }

    /// Receives up to `N` datagrams from `sock`. `wait`: block until
    /// the first one arrives (on a blocking socket), then take only what is already
    /// queued (`MSG_WAITFORONE`); otherwise never block (`MSG_DONTWAIT`: `WouldBlock`
    /// when nothing is queued). Returns how many were taken.
    #[cfg(target_os = "linux")]
    pub fn recv(&mut self, sock: &std::net::UdpSocket, wait: bool) -> io::Result<usize> {
        use std::os::fd::AsRawFd;
        // SAFETY: all-zero is a valid value of these plain C structs.
        let mut names: [libc::sockaddr_storage; N] = unsafe { std::mem::zeroed() };
        let mut iov: [libc::iovec; N] = unsafe { std::mem::zeroed() };
        let mut msgs: [libc::mmsghdr; N] = unsafe { std::mem::zeroed() };
        let mut control: [Control; N] = [[0; 8]; N];
        let base = self.buf.as_mut_ptr();
        for (i, (((name, v), m), c)) in names
            .iter_mut()
            .zip(iov.iter_mut())
            .zip(msgs.iter_mut())
            .zip(control.iter_mut())
            .enumerate()
        {
            // SAFETY: slot i lies inside `buf` (N * slot bytes).
            v.iov_base = unsafe { base.add(i * self.slot) }.cast();
            v.iov_len = self.slot;
            let h = &mut m.msg_hdr;
            h.msg_name = (name as *mut libc::sockaddr_storage).cast();
            h.msg_namelen = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
            h.msg_iov = v;
            h.msg_iovlen = 1;
            h.msg_control = c.as_mut_ptr().cast();
            h.msg_controllen = std::mem::size_of::<Control>();
        }
        let flags = if wait {
            libc::MSG_WAITFORONE
        } else {
            libc::MSG_DONTWAIT
        };
        self.count = 0;
        // SAFETY: every header points at live buffers of the lengths given, which
        // outlive the call; no timeout.
        let n = unsafe {
            libc::recvmmsg(
                sock.as_raw_fd(),
                msgs.as_mut_ptr(),
                N as libc::c_uint,
                flags,
                std::ptr::null_mut(),
            )
        };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        let n = (n as usize).min(N);
        for i in 0..n {
            self.got[i] = Got {
                len: (msgs[i].msg_len as usize).min(self.slot),
                from: socket_addr(&names[i]),
                at: timestamp(&msgs[i].msg_hdr),
            };
        }
        self.count = n;
        Ok(n)
    }

    #[cfg(not(target_os = "linux"))]
    pub fn recv(&mut self, sock: &std::net::UdpSocket, wait: bool) -> io::Result<usize> {
        self.count = 0;
        sock.set_nonblocking(!wait)?;
        let (len, from) = sock.recv_from(&mut self.buf[..self.slot])?;
        self.got[0] = Got {
            len,
            from: Some(from),
            at: None,
        };
        self.count = 1;
        Ok(1)
    }
}

/// The `SCM_TIMESTAMPNS` the kernel put among `h`'s control messages, if any.
#[cfg(target_os = "linux")]
fn timestamp(h: &libc::msghdr) -> Option<Duration> {
    // SAFETY: `h` was filled by recvmmsg: msg_control/msg_controllen describe the
    // control bytes it wrote into our buffer, which the CMSG macros walk within.
    let mut c = unsafe { libc::CMSG_FIRSTHDR(h) };
    while !c.is_null() {
        // SAFETY: a non-null header returned by CMSG_FIRSTHDR/CMSG_NXTHDR lies in the buffer.
        let hdr = unsafe { &*c };
        if hdr.cmsg_level == libc::SOL_SOCKET
            && hdr.cmsg_type == libc::SCM_TIMESTAMPNS
            && hdr.cmsg_len as usize
                >= unsafe { libc::CMSG_LEN(std::mem::size_of::<libc::timespec>() as u32) } as usize
        {
            // SAFETY: the length check above: the data holds a timespec (maybe unaligned).
            let ts =
                unsafe { std::ptr::read_unaligned(libc::CMSG_DATA(c).cast::<libc::timespec>()) };
            let secs = u64::try_from(ts.tv_sec).ok()?;
            let nanos = u32::try_from(ts.tv_nsec).ok()?;
            return Some(Duration::new(secs, nanos));
        }
        // SAFETY: as for CMSG_FIRSTHDR.
        c = unsafe { libc::CMSG_NXTHDR(h, c) };
    }
    None
}

/// Datagrams per `sendmmsg` call in [`send_all`].
const SEND_BATCH: usize = 64;

/// Sends every datagram of `out` (payload, destination) from `sock`, `SEND_BATCH` per
/// `sendmmsg`, never waiting (`MSG_DONTWAIT`). A datagram the kernel refuses (a full
/// send buffer, an unreachable destination) is dropped, as a lost packet; the rest are
/// still sent. Returns how many were sent, or the first error when none was.
#[cfg(target_os = "linux")]
pub fn send_all(sock: &std::net::UdpSocket, out: &[(&[u8], SocketAddr)]) -> io::Result<usize> {
    use std::os::fd::AsRawFd;
    let mut sent = 0;
    let mut first_err = None;
    let mut rest = out;
    while !rest.is_empty() {
        let chunk = rest.get(..SEND_BATCH.min(rest.len())).unwrap_or(rest);
        // SAFETY: all-zero is a valid value of these plain C structs.
        let mut names: [libc::sockaddr_storage; SEND_BATCH] = unsafe { std::mem::zeroed() };
        let mut iov: [libc::iovec; SEND_BATCH] = unsafe { std::mem::zeroed() };
        let mut msgs: [libc::mmsghdr; SEND_BATCH] = unsafe { std::mem::zeroed() };
        for (((data, to), name), (v, m)) in chunk
            .iter()
            .zip(names.iter_mut())
            .zip(iov.iter_mut().zip(msgs.iter_mut()))
        {
            // The kernel only reads the buffer.
            v.iov_base = data.as_ptr().cast_mut().cast();
            v.iov_len = data.len();
            let h = &mut m.msg_hdr;
            h.msg_namelen = sockaddr_of(*to, name);
            h.msg_name = (name as *mut libc::sockaddr_storage).cast();
            h.msg_iov = v;
            h.msg_iovlen = 1;
        }
        // SAFETY: the first `chunk.len()` headers point at live buffers of the lengths
        // given (names, iovecs and the caller's payloads), which outlive the call.
        let n = unsafe {
            libc::sendmmsg(
                sock.as_raw_fd(),
                msgs.as_mut_ptr(),
                chunk.len() as libc::c_uint,
                libc::MSG_DONTWAIT,
            )
        };
        let skip = if n < 0 {
            // The first datagram of the chunk failed: drop it, go on with the rest.
            first_err.get_or_insert(io::Error::last_os_error());
            1
        } else {
            // A short count: the datagram after the last one sent failed.
            let n = n as usize;
            sent += n;
            if n < chunk.len() { n + 1 } else { n }
        };
        rest = rest.get(skip..).unwrap_or(&[]);
    }
    match first_err {
        Some(e) if sent == 0 => Err(e),
        _ => Ok(sent),
    }
}

#[cfg(not(target_os = "linux"))]
pub fn send_all(sock: &std::net::UdpSocket, out: &[(&[u8], SocketAddr)]) -> io::Result<usize> {
    let mut sent = 0;
    let mut first_err = None;
    for (data, to) in out {
        match sock.send_to(data, to) {
            Ok(_) => sent += 1,
            Err(e) => {
                first_err.get_or_insert(e);
            }
        }
    }
    match first_err {
        Some(e) if sent == 0 => Err(e),
        _ => Ok(sent),
    }
}

/// Writes `a` into `s` as a `sockaddr_in`/`sockaddr_in6`; returns its length.
#[cfg(target_os = "linux")]
fn sockaddr_of(a: SocketAddr, s: &mut libc::sockaddr_storage) -> libc::socklen_t {
    match a {
        SocketAddr::V4(a) => {
            // SAFETY: sockaddr_storage is large and aligned enough for a sockaddr_in.
            let v = unsafe { &mut *(s as *mut libc::sockaddr_storage).cast::<libc::sockaddr_in>() };
            v.sin_family = libc::AF_INET as libc::sa_family_t;
            v.sin_port = a.port().to_be();
            v.sin_addr.s_addr = u32::from(*a.ip()).to_be();
            std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t
        }
        SocketAddr::V6(a) => {
            // SAFETY: as above, for sockaddr_in6.
            let v =
                unsafe { &mut *(s as *mut libc::sockaddr_storage).cast::<libc::sockaddr_in6>() };
            v.sin6_family = libc::AF_INET6 as libc::sa_family_t;
            v.sin6_port = a.port().to_be();
            v.sin6_addr.s6_addr = a.ip().octets();
            v.sin6_flowinfo = a.flowinfo();
            v.sin6_scope_id = a.scope_id();
            std::mem::size_of::<libc::sockaddr_in6>() as libc::socklen_t
        }
    }
}

/// The address the kernel wrote into `s`, if IPv4 or IPv6.
#[cfg(target_os = "linux")]
fn socket_addr(s: &libc::sockaddr_storage) -> Option<SocketAddr> {
    use std::net::{Ipv4Addr, Ipv6Addr, SocketAddrV4, SocketAddrV6};
    match libc::c_int::from(s.ss_family) {
        libc::AF_INET => {
            // SAFETY: the family says the storage holds a sockaddr_in, which it is
            // large and aligned enough for.
            let a = unsafe { &*(s as *const libc::sockaddr_storage).cast::<libc::sockaddr_in>() };
            Some(SocketAddr::V4(SocketAddrV4::new(
                Ipv4Addr::from(u32::from_be(a.sin_addr.s_addr)),
                u16::from_be(a.sin_port),
            )))
        }
        libc::AF_INET6 => {
            // SAFETY: as above, for sockaddr_in6.
            let a = unsafe { &*(s as *const libc::sockaddr_storage).cast::<libc::sockaddr_in6>() };
            Some(SocketAddr::V6(SocketAddrV6::new(
                Ipv6Addr::from(a.sin6_addr.s6_addr),
                u16::from_be(a.sin6_port),
                a.sin6_flowinfo,
                a.sin6_scope_id,
            )))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use std::time::Duration;

    /// Real sockets on loopback (v4 and v6): a blocking receive waits for the first
    /// datagram and takes the queued ones with it, in order, with their source; a
    /// queue longer than a batch comes in several; the non-waiting form says
    /// `WouldBlock` when nothing is queued; a long datagram is cut to its slot.
    #[test]
    fn batches_in_order_with_their_source() {
        for ip in ["127.0.0.1", "::1"] {
            let Ok(rx) = std::net::UdpSocket::bind((ip, 0)) else {
                continue; // no IPv6 on this host
            };
            rx.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
            let tx = std::net::UdpSocket::bind((ip, 0)).unwrap();
            let to = rx.local_addr().unwrap();
            let mut batch = Datagrams::<4>::new(256);
            for k in 0..6u8 {
                tx.send_to(&vec![k; 10 + usize::from(k)], to).unwrap();
            }
            let mut seen = Vec::new();
            while seen.len() < 6 {
                let n = batch.recv(&rx, true).unwrap();
                assert!((1..=4).contains(&n));
                for i in 0..n {
                    let (data, from) = batch.get(i).unwrap();
                    assert_eq!(from, Some(tx.local_addr().unwrap()));
                    seen.push(data.to_vec());
                }
            }
            for (k, d) in seen.iter().enumerate() {
                assert_eq!(d, &vec![k as u8; 10 + k]);
            }
            let e = batch.recv(&rx, false).unwrap_err();
            assert_eq!(e.kind(), io::ErrorKind::WouldBlock);
            tx.send_to(&[9u8; 300], to).unwrap();
            assert_eq!(batch.recv(&rx, true).unwrap(), 1);
            assert_eq!(batch.get(0).unwrap().0.len(), 256);
            assert!(batch.get(1).is_none());
            assert!(batch.received_at(0).is_none(), "no stamps unless asked for");
        }
    }

    /// With timestamps on, each datagram carries its arrival time: after the fact, and
    /// as old as the time it waited in the queue.
    #[cfg(target_os = "linux")]
    #[test]
    fn timestamps_tell_how_long_a_datagram_waited() {
        use std::time::{SystemTime, UNIX_EPOCH};
        let wall = || SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
        let rx = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        rx.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        enable_timestamps(&rx).unwrap();
        let tx = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let to = rx.local_addr().unwrap();
        let mut batch = Datagrams::<4>::new(64);
        // The kernel turns arrival stamping on asynchronously (a deferred static-key
        // switch, the first time any socket asks); until then a datagram is stamped
        // when read. Probe until arrival stamps show.
        let mut on = false;
        for _ in 0..50 {
            tx.send_to(b"probe", to).unwrap();
            std::thread::sleep(Duration::from_millis(20));
            assert_eq!(batch.recv(&rx, true).unwrap(), 1);
            let at = batch.received_at(0).expect("stamped");
            if wall() - at >= Duration::from_millis(15) {
                on = true;
                break;
            }
        }
        assert!(on, "arrival stamps never showed");
        let before = wall();
        tx.send_to(b"first", to).unwrap();
        tx.send_to(b"second", to).unwrap();
        std::thread::sleep(Duration::from_millis(100));
        let mut got = 0;
        while got < 2 {
            let n = batch.recv(&rx, true).unwrap();
            let now = wall();
            for i in 0..n {
                let at = batch.received_at(i).expect("stamped");
                assert!(at + Duration::from_millis(5) >= before && at <= now);
                assert!(now - at >= Duration::from_millis(90), "waited in the queue");
            }
            got += n;
        }
    }

    /// `send_all` over real loopback sockets (v4 and v6): more datagrams than one
    /// `sendmmsg` takes, to two receivers, arrive complete, in order, from the sender;
    /// one undeliverable destination (port 0: `EINVAL`) is dropped
    /// and the others still go.
    #[test]
    fn send_all_sends_every_datagram_in_order() {
        for ip in ["127.0.0.1", "::1"] {
            let Ok(tx) = std::net::UdpSocket::bind((ip, 0)) else {
                continue; // no IPv6 on this host
            };
            let rx: Vec<_> = (0..2)
                .map(|_| {
                    let r = std::net::UdpSocket::bind((ip, 0)).unwrap();
                    r.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
                    r
                })
                .collect();
            let bad = SocketAddr::new(ip.parse().unwrap(), 0);
            let payloads: Vec<Vec<u8>> = (0..150u8).map(|k| vec![k; 20 + usize::from(k)]).collect();
            let mut out: Vec<(&[u8], SocketAddr)> = payloads
                .iter()
                .enumerate()
                .map(|(k, p)| (p.as_slice(), rx[k % 2].local_addr().unwrap()))
                .collect();
            out.insert(70, (&[1, 2, 3], bad));
            assert_eq!(send_all(&tx, &out).unwrap(), 150);
            let mut buf = [0u8; 512];
            for k in 0..150usize {
                let (n, from) = rx[k % 2].recv_from(&mut buf).unwrap();
                assert_eq!(from, tx.local_addr().unwrap());
                assert_eq!(&buf[..n], payloads[k].as_slice());
            }
            assert!(send_all(&tx, &[(&[1], bad)]).is_err());
        }
    }
}
