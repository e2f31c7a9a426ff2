//! Several datagrams per system call: `recvmmsg(2)` into fixed slots. The SIP UDP
//! workers wait for the first datagram and take whatever else is queued with it; the
//! RTP receivers (`ua`) take what is queued without waiting. The unsafe FFI of the I/O
//! layer is confined to this module.
#![allow(unsafe_code)]

use std::io;
use std::net::SocketAddr;

/// Up to `N` received datagrams, one fixed-size slot each; longer ones are truncated to
/// a slot, as `recv_from` into a buffer that size would.
pub struct Datagrams<const N: usize> {
    buf: Box<[u8]>,
    slot: usize,
    got: [(usize, Option<SocketAddr>); N],
    count: usize,
}

impl<const N: usize> Datagrams<N> {
    /// Room for `N` datagrams of up to `slot` bytes.
    pub fn new(slot: usize) -> Datagrams<N> {
        Datagrams {
            buf: vec![0u8; N * slot].into_boxed_slice(),
            slot,
            got: [(0, None); N],
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
        let (len, from) = *self.got.get(i)?;
        let data = self.buf.get(i * self.slot..i * self.slot + len)?;
        Some((data, from))
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
        let base = self.buf.as_mut_ptr();
        for (i, ((name, v), m)) in names
            .iter_mut()
            .zip(iov.iter_mut())
            .zip(msgs.iter_mut())
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
            self.got[i] = (
                (msgs[i].msg_len as usize).min(self.slot),
                socket_addr(&names[i]),
            );
        }
        self.count = n;
        Ok(n)
    }

    #[cfg(not(target_os = "linux"))]
    pub fn recv(&mut self, sock: &std::net::UdpSocket, wait: bool) -> io::Result<usize> {
        self.count = 0;
        sock.set_nonblocking(!wait)?;
        let (len, from) = sock.recv_from(&mut self.buf[..self.slot])?;
        self.got[0] = (len, Some(from));
        self.count = 1;
        Ok(1)
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
        }
    }
}
