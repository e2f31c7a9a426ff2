//! RTP receive in batches: one `recvmmsg(2)` takes every datagram waiting on a call's
//! socket, and a short batch proves the queue empty, so the socket's readiness is
//! cleared without the extra `recvfrom` that only returns `EAGAIN` (what tokio's
//! `recv_from` costs per packet: one call for the datagram, one to learn there is no
//! other). The system call itself is `net::mmsg`.

use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::task::{Context, Poll};

use tokio::io::unix::AsyncFd;

use net::mmsg::Datagrams;

use crate::ports::DatagramSocket;

/// Datagrams per `recvmmsg` call.
const SLOTS: usize = 4;
/// Room per datagram; longer ones are truncated, as `recv_from` into a buffer this size.
const SLOT: usize = 2048;

/// Datagrams received and not yet handed out, with their buffers.
pub(crate) struct RecvBatch {
    got: Datagrams<SLOTS>,
    next: usize,
}

impl RecvBatch {
    pub(crate) fn new() -> RecvBatch {
        RecvBatch {
            got: Datagrams::new(SLOT),
            next: 0,
        }
    }

    /// The next datagram on `sock` and its source: [`RecvBatch::poll_ready`] on a
    /// fresh registration, for the tests. Cancel-safe: datagrams taken from the socket
    /// stay here until handed out.
    #[cfg(test)]
    pub(crate) async fn recv(&mut self, sock: &DatagramSocket) -> io::Result<(&[u8], SocketAddr)> {
        let fd = sock.watcher()?;
        std::future::poll_fn(|cx| self.poll_ready(cx, &fd)).await?;
        self.take()
            .ok_or_else(|| io::Error::other("no datagram in the batch"))
    }

    /// The next datagram on a socket and its source, as a poll on the socket's
    /// registration `fd` (which the caller keeps across polls): ready once a datagram
    /// is at hand for [`RecvBatch::take`]. Datagrams taken from the socket stay here
    /// until handed out.
    pub(crate) fn poll_ready(
        &mut self,
        cx: &mut Context<'_>,
        fd: &AsyncFd<UdpSocket>,
    ) -> Poll<io::Result<()>> {
        loop {
            while self.next < self.got.len()
                && !matches!(self.got.get(self.next), Some((_, Some(_))))
            {
                self.next += 1;
            }
            if self.next < self.got.len() {
                return Poll::Ready(Ok(()));
            }
            let mut guard = match fd.poll_read_ready(cx) {
                Poll::Ready(Ok(g)) => g,
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => return Poll::Pending,
            };
            // `WouldBlock` from the closure clears tokio's readiness: returned when the
            // kernel had nothing, or fewer datagrams than asked (the queue is empty
            // now; a datagram arriving later raises a new readiness event, as after
            // EAGAIN). Same reasoning as tokio's own short-read rule for streams.
            match guard.try_io(|s| fill(&mut self.got, s.get_ref())) {
                Ok(Ok(())) | Err(_) => {}
                Ok(Err(e)) => return Poll::Ready(Err(e)),
            }
            self.next = 0;
        }
    }

    /// The datagram [`RecvBatch::poll_ready`] found, and its source.
    pub(crate) fn take(&mut self) -> Option<(&[u8], SocketAddr)> {
        let i = self.next;
        self.next += 1;
        match self.got.get(i) {
            Some((data, Some(from))) => Some((data, from)),
            _ => None,
        }
    }

    /// Every datagram queued on `sock` now, without waiting, each with its source, to
    /// `f`: for a reader on the packet clock. A short batch proves the queue empty, so
    /// an idle socket costs one `recvmmsg` per call (none on a watched socket that
    /// tokio knows to be empty). What the kernel queued comes first, then what this
    /// process delivered in memory ([`DatagramSocket::read_on_clock`]).
    pub(crate) fn drain(
        &mut self,
        sock: &DatagramSocket,
        mut f: impl FnMut(&[u8], SocketAddr),
    ) -> io::Result<()> {
        let r = self.drain_at_most(sock, usize::MAX, &mut f);
        sock.take_inbox(&mut f);
        r
    }

    /// [`RecvBatch::drain`], but stops after the batch that brings the datagrams taken
    /// from the socket to `max` or more (a flood cannot hold the caller).
    pub(crate) fn drain_at_most(
        &mut self,
        sock: &DatagramSocket,
        max: usize,
        mut f: impl FnMut(&[u8], SocketAddr),
    ) -> io::Result<()> {
        let mut last = false;
        let mut taken = 0usize;
        loop {
            while self.next < self.got.len() {
                if let Some((data, Some(from))) = self.got.get(self.next) {
                    f(data, from);
                }
                self.next += 1;
            }
            if last {
                return Ok(());
            }
            // On a watched socket whose readiness is clear, `try_read_io` returns
            // `WouldBlock` without reading: the batch then still holds what was handed
            // out, so `next` moves back only over a new batch.
            match sock.try_read_io(|s| self.got.recv(s, false)) {
                Ok(n) => {
                    self.next = 0;
                    taken = taken.saturating_add(n);
                    last = n < SLOTS || taken >= max;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) => return Err(e),
            }
        }
    }
}

/// One non-blocking `recvmmsg`; a short batch reads as `WouldBlock` (see above).
fn fill(got: &mut Datagrams<SLOTS>, sock: &std::net::UdpSocket) -> io::Result<()> {
    if got.recv(sock, false)? < SLOTS {
        Err(io::ErrorKind::WouldBlock.into())
    } else {
        Ok(())
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

    /// A receiving socket on 127.0.0.1, a plain socket to send to it, its address, and
    /// an empty batch.
    fn receiver_and_sender() -> (DatagramSocket, std::net::UdpSocket, SocketAddr, RecvBatch) {
        let rx = DatagramSocket::bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let tx = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let to = rx.local_addr().unwrap();
        (rx, tx, to, RecvBatch::new())
    }

    /// A socket read on the clock: out of epoll (`unwatch`), `drain` hands over every
    /// datagram queued, in order, in bursts shorter and longer than a batch, and
    /// nothing when none is; waiting on it afterwards registers it again and still
    /// wakes for a new datagram.
    #[tokio::test]
    async fn drain_takes_everything_queued_then_readiness_works_again() {
        let (rx, tx, to, mut batch) = receiver_and_sender();
        // Registered by a first wait, then taken out.
        tx.send_to(&[1], to).unwrap();
        assert_eq!(batch.recv(&rx).await.unwrap().0, &[1]);
        rx.unwatch();
        for burst in [0usize, 1, SLOTS - 1, SLOTS, 3 * SLOTS + 1] {
            for k in 0..burst {
                tx.send_to(&[k as u8; 20], to).unwrap();
            }
            // Loopback delivers before send_to returns.
            let mut got = Vec::new();
            batch
                .drain(&rx, |data, from| {
                    assert_eq!(from, tx.local_addr().unwrap());
                    got.push(data[0]);
                })
                .unwrap();
            let want: Vec<u8> = (0..burst).map(|k| k as u8).collect();
            assert_eq!(got, want, "burst {burst}");
        }
        tx.send_to(&[9], to).unwrap();
        let (data, _) = tokio::time::timeout(std::time::Duration::from_secs(2), batch.recv(&rx))
            .await
            .expect("no wake-up after re-registering")
            .unwrap();
        assert_eq!(data, &[9]);
    }

    /// The media task before a playout deadline: on a watched socket, with a burst
    /// partly taken into the batch by a wait, `drain_at_most` hands over the rest of the
    /// batch and then what is queued, in order, stopping after the batch that reaches
    /// its bound; the next waits get the remainder.
    #[tokio::test]
    async fn bounded_drain_on_a_watched_socket_keeps_order_and_the_rest() {
        let (rx, tx, to, mut batch) = receiver_and_sender();
        let n = 4 * SLOTS;
        for k in 0..n {
            tx.send_to(&[k as u8], to).unwrap();
        }
        assert_eq!(batch.recv(&rx).await.unwrap().0, &[0]);
        let mut got = Vec::new();
        batch
            .drain_at_most(&rx, SLOTS, |data, _| got.push(data[0]))
            .unwrap();
        // The batch's other SLOTS - 1, then one more batch from the socket.
        let want: Vec<u8> = (1..2 * SLOTS).map(|k| k as u8).collect();
        assert_eq!(got, want);
        for k in 2 * SLOTS..n {
            let (data, _) =
                tokio::time::timeout(std::time::Duration::from_secs(2), batch.recv(&rx))
                    .await
                    .expect("datagram lost")
                    .unwrap();
            assert_eq!(data, &[k as u8]);
        }
        // Drained: nothing more, and nothing taken.
        let mut more = 0;
        batch.drain_at_most(&rx, SLOTS, |_, _| more += 1).unwrap();
        assert_eq!(more, 0);
    }

    /// A datagram is handed out once: after a wait took a short batch (the readiness is
    /// cleared, so a bounded drain reads nothing from the socket), neither the drain nor
    /// the next wait gives the old datagram again. (They did: every playout deadline
    /// replayed the last batch, and a phone counted each packet twice.)
    #[tokio::test]
    async fn a_drain_after_a_short_batch_replays_nothing() {
        let (rx, tx, to, mut batch) = receiver_and_sender();
        for k in 1..=3u8 {
            tx.send_to(&[k], to).unwrap();
            let (data, _) =
                tokio::time::timeout(std::time::Duration::from_secs(2), batch.recv(&rx))
                    .await
                    .expect("datagram lost")
                    .unwrap();
            assert_eq!(data, &[k]);
            let mut again = Vec::new();
            batch
                .drain_at_most(&rx, SLOTS, |data, _| again.push(data[0]))
                .unwrap();
            assert_eq!(again, Vec::<u8>::new(), "the drain after datagram {k}");
        }
    }

    /// A socket read on the clock takes datagrams from another socket of the process
    /// in memory, with the sender's address as source, after what the kernel queued;
    /// once waited on again (or dropped) it takes them through the kernel.
    #[tokio::test]
    async fn datagrams_between_sockets_of_the_process_skip_the_kernel_when_read_on_the_clock() {
        let rx = DatagramSocket::bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let tx = DatagramSocket::bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let outside = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let to = rx.local_addr().unwrap();
        let mut batch = RecvBatch::new();
        rx.read_on_clock();
        outside.send_to(&[1], to).unwrap();
        tx.try_send_to(&[2, 2], to).unwrap();
        tx.try_send_to(&[3], to).unwrap();
        let mut got = Vec::new();
        batch
            .drain(&rx, |data, from| got.push((data.to_vec(), from)))
            .unwrap();
        let (o, t) = (outside.local_addr().unwrap(), tx.local_addr().unwrap());
        assert_eq!(got, vec![(vec![1], o), (vec![2, 2], t), (vec![3], t)]);
        // Nothing went through the kernel but the outside datagram.
        let mut buf = [0u8; 16];
        assert!(rx.try_recv_from(&mut buf).is_err());
        // Waited on: through the kernel again, and the waiter wakes.
        let fd = rx.watcher().unwrap();
        tx.try_send_to(&[4], to).unwrap();
        let (data, from) = tokio::time::timeout(std::time::Duration::from_secs(2), batch.recv(&rx))
            .await
            .expect("no wake-up for a datagram after waiting again")
            .unwrap();
        assert_eq!((data, from), (&[4u8][..], t));
        drop(fd);
        // Dropped: its address leaves the table.
        rx.read_on_clock();
        drop(rx);
        assert!(tx.try_send_to(&[5], to).is_ok());
    }
}
