//! RTP receive in batches: one `recvmmsg(2)` takes every datagram waiting on a call's
//! socket, and a short batch proves the queue empty, so the socket's readiness is
//! cleared without the extra `recvfrom` that only returns `EAGAIN` (what tokio's
//! `recv_from` costs per packet: one call for the datagram, one to learn there is no
//! other). The unsafe FFI is confined to this module.
#![allow(unsafe_code)]

use std::io;
use std::net::SocketAddr;

use crate::ports::DatagramSocket;

/// Datagrams per `recvmmsg` call.
const SLOTS: usize = 4;
/// Room per datagram; longer ones are truncated, as `recv_from` into a buffer this size.
const SLOT: usize = 2048;

/// Datagrams received and not yet handed out, with their buffers.
pub(crate) struct RecvBatch {
    buf: Box<[u8]>,
    got: [(usize, Option<SocketAddr>); SLOTS],
    count: usize,
    next: usize,
}

impl RecvBatch {
    pub(crate) fn new() -> RecvBatch {
        RecvBatch {
            buf: vec![0u8; SLOTS * SLOT].into_boxed_slice(),
            got: [(0, None); SLOTS],
            count: 0,
            next: 0,
        }
    }

    /// The next datagram on `sock` and its source. Cancel-safe: datagrams taken from
    /// the socket stay here until handed out.
    pub(crate) async fn recv(&mut self, sock: &DatagramSocket) -> io::Result<(&[u8], SocketAddr)> {
        loop {
            while self.next < self.count {
                let i = self.next;
                self.next += 1;
                if let (len, Some(from)) = self.got[i] {
                    return Ok((&self.buf[i * SLOT..i * SLOT + len], from));
                }
            }
            self.count = 0;
            self.next = 0;
            sock.readable().await?;
            // `WouldBlock` from the closure clears tokio's readiness: returned when the
            // kernel had nothing, or fewer datagrams than asked (the queue is empty
            // now; a datagram arriving later raises a new readiness event, as after
            // EAGAIN). Same reasoning as tokio's own short-read rule for streams.
            match sock.try_read_io(|s| self.fill(s)) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => return Err(e),
            }
        }
    }

    #[cfg(target_os = "linux")]
    fn fill(&mut self, sock: &std::net::UdpSocket) -> io::Result<()> {
        use std::os::fd::AsRawFd;
        // SAFETY: all-zero is a valid value of these plain C structs.
        let mut names: [libc::sockaddr_storage; SLOTS] = unsafe { std::mem::zeroed() };
        let mut iov: [libc::iovec; SLOTS] = unsafe { std::mem::zeroed() };
        let mut msgs: [libc::mmsghdr; SLOTS] = unsafe { std::mem::zeroed() };
        let base = self.buf.as_mut_ptr();
        for i in 0..SLOTS {
            // SAFETY: slot i lies inside `buf` (SLOTS * SLOT bytes).
            iov[i].iov_base = unsafe { base.add(i * SLOT) }.cast();
            iov[i].iov_len = SLOT;
            let h = &mut msgs[i].msg_hdr;
            h.msg_name = (&raw mut names[i]).cast();
            h.msg_namelen = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
            h.msg_iov = &raw mut iov[i];
            h.msg_iovlen = 1;
        }
        // SAFETY: every header points at live buffers of the lengths given, which
        // outlive the call; no timeout.
        let n = unsafe {
            libc::recvmmsg(
                sock.as_raw_fd(),
                msgs.as_mut_ptr(),
                SLOTS as libc::c_uint,
                libc::MSG_DONTWAIT,
                std::ptr::null_mut(),
            )
        };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        let n = (n as usize).min(SLOTS);
        for i in 0..n {
            let len = (msgs[i].msg_len as usize).min(SLOT);
            self.got[i] = (len, socket_addr(&names[i]));
        }
        self.count = n;
        if n < SLOTS {
            Err(io::ErrorKind::WouldBlock.into())
        } else {
            Ok(())
        }
    }

    #[cfg(not(target_os = "linux"))]
    fn fill(&mut self, sock: &std::net::UdpSocket) -> io::Result<()> {
        let (len, from) = sock.recv_from(&mut self.buf[..SLOT])?;
        self.got[0] = (len, Some(from));
        self.count = 1;
        Ok(())
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
            let a = unsafe { &*(&raw const *s).cast::<libc::sockaddr_in>() };
            Some(SocketAddr::V4(SocketAddrV4::new(
                Ipv4Addr::from(u32::from_be(a.sin_addr.s_addr)),
                u16::from_be(a.sin_port),
            )))
        }
        libc::AF_INET6 => {
            // SAFETY: as above, for sockaddr_in6.
            let a = unsafe { &*(&raw const *s).cast::<libc::sockaddr_in6>() };
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

    /// Real sockets on loopback (v4 and v6): every datagram arrives once, in order,
    /// with its source, whether it waited alone or in a queue longer than a batch, and
    /// the receiver still wakes for a datagram sent after it drained the queue.
    #[tokio::test]
    async fn datagrams_arrive_in_order_with_their_source() {
        for ip in ["127.0.0.1", "::1"] {
            let any: std::net::IpAddr = ip.parse().unwrap();
            let Ok(rx) = DatagramSocket::bind(SocketAddr::new(any, 0)) else {
                continue; // no IPv6 on this host
            };
            let tx = tokio::net::UdpSocket::bind((ip, 0)).await.unwrap();
            let to = rx.local_addr().unwrap();
            let mut batch = RecvBatch::new();
            for burst in [1usize, 3, SLOTS, SLOTS + 3, 2 * SLOTS] {
                for k in 0..burst {
                    tx.send_to(&vec![k as u8; 100 + k], to).await.unwrap();
                }
                for k in 0..burst {
                    let (data, from) =
                        tokio::time::timeout(std::time::Duration::from_secs(2), batch.recv(&rx))
                            .await
                            .expect("datagram lost")
                            .unwrap();
                    assert_eq!(from, tx.local_addr().unwrap());
                    assert_eq!(data, vec![k as u8; 100 + k].as_slice(), "burst {burst}");
                }
            }
            // Longer than a slot: truncated to it, as recv_from into 2048 bytes.
            tx.send_to(&[7u8; SLOT + 100], to).await.unwrap();
            let (data, _) = batch.recv(&rx).await.unwrap();
            assert_eq!(data.len(), SLOT);
        }
    }
}
