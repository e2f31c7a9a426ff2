//! A connection's pending output: its own bytes, with shared pieces between them (the
//! chunks of relayed media, one copy for every player of a stream, see
//! [`rtmp::ChunkedBody`]), written with vectored writes so that nothing is copied per
//! player in user space.

use std::collections::VecDeque;
use std::io::IoSlice;

use bytes::Bytes;

/// Writes `iov` into `socket` without waiting: a few small slices (a call's audio
/// message: its chunk header and body) are copied into one buffer and sent with one
/// `send(2)`; more than [`SMALL_WRITE`] bytes go as they are, with `writev(2)`. For a
/// message this small the copy costs less than `writev`'s iovec import and file layer
/// (3.7 % of the gateway's CPU samples above `tcp_sendmsg` at 400 pass-through calls,
/// docs/benchmarks.md, gateway run 7).
pub(crate) fn try_write_iov(
    socket: &tokio::net::TcpStream,
    iov: &[IoSlice<'_>],
) -> std::io::Result<usize> {
    let total: usize = iov.iter().map(|s| s.len()).sum();
    match iov {
        [one] => socket.try_write(one),
        _ if total <= SMALL_WRITE => {
            let mut buf = [0u8; SMALL_WRITE];
            let mut at = 0;
            for s in iov {
                if let Some(dst) = buf.get_mut(at..at + s.len()) {
                    dst.copy_from_slice(s);
                }
                at += s.len();
            }
            socket.try_write(buf.get(..total).unwrap_or_default())
        }
        _ => socket.try_write_vectored(iov),
    }
}

/// Largest output written through one copied buffer by [`try_write_iov`].
const SMALL_WRITE: usize = 1024;

/// Most slices handed to one vectored write (Linux takes 1024; a few dozen messages
/// per write is plenty).
const MAX_SLICES: usize = 64;

/// Bytes waiting for the socket, in order: `own[pos..at0]`, the rest of piece 0,
/// `own[at0..at1]`, piece 1, ..., `own[atN..]`.
#[derive(Debug, Default)]
pub(crate) struct OutBuf {
    own: Vec<u8>,
    /// Bytes of `own` written.
    pos: usize,
    /// Shared pieces, each before `own[at..]`; `at` ascending, none below `pos`.
    shared: VecDeque<(usize, Bytes)>,
    /// Bytes of the first piece written (only while `pos` is its `at`).
    piece_pos: usize,
    /// Unwritten bytes of the pieces.
    shared_len: usize,
}

impl OutBuf {
    /// Bytes not yet written.
    pub(crate) fn pending(&self) -> usize {
        self.own.len() - self.pos + self.shared_len
    }

    /// Appends bytes; returns an empty buffer for the session to fill next (when
    /// nothing was pending `bytes` becomes the buffer instead of being copied, and the
    /// old one comes back).
    pub(crate) fn push(&mut self, bytes: Vec<u8>) -> Vec<u8> {
        self.push_with(bytes, &mut Vec::new())
    }

    /// Appends bytes with shared pieces (as [`rtmp::SessionOutput::SendWith`] gives
    /// them: each `(at, piece)` goes after `bytes[..at]`), emptying `shared`.
    pub(crate) fn push_with(
        &mut self,
        mut bytes: Vec<u8>,
        shared: &mut Vec<(usize, Bytes)>,
    ) -> Vec<u8> {
        let base = if self.pending() == 0 {
            std::mem::swap(&mut self.own, &mut bytes);
            self.pos = 0;
            bytes.clear();
            0
        } else {
            let base = self.own.len();
            self.own.extend_from_slice(&bytes);
            bytes.clear();
            base
        };
        for (at, piece) in shared.drain(..) {
            if !piece.is_empty() {
                self.shared_len += piece.len();
                self.shared
                    .push_back((base + at.min(self.own.len() - base), piece));
            }
        }
        bytes
    }

    /// Hands what is pending (at most [`MAX_SLICES`] slices of it) to `write`, a
    /// vectored write, and consumes what it took.
    pub(crate) fn write_with(
        &mut self,
        write: impl FnOnce(&[IoSlice<'_>]) -> std::io::Result<usize>,
    ) -> std::io::Result<usize> {
        let n = if self.shared.is_empty() {
            write(&[IoSlice::new(&self.own[self.pos..])])?
        } else {
            let mut iov = [IoSlice::new(&[]); MAX_SLICES];
            let mut k = 0;
            let mut from = self.pos;
            let mut skip = self.piece_pos;
            let mut all = true;
            for (at, piece) in &self.shared {
                if k + 2 > MAX_SLICES {
                    all = false;
                    break;
                }
                if *at > from {
                    iov[k] = IoSlice::new(&self.own[from..*at]);
                    k += 1;
                }
                iov[k] = IoSlice::new(&piece[skip..]);
                k += 1;
                skip = 0;
                from = *at;
            }
            if all && from < self.own.len() {
                iov[k] = IoSlice::new(&self.own[from..]);
                k += 1;
            }
            write(&iov[..k])?
        };
        self.advance(n);
        Ok(n)
    }

    /// `n` bytes reached the socket.
    fn advance(&mut self, mut n: usize) {
        while n > 0 {
            match self.shared.front() {
                Some((at, piece)) if *at == self.pos => {
                    let left = piece.len() - self.piece_pos;
                    if n >= left {
                        n -= left;
                        self.shared_len -= left;
                        self.piece_pos = 0;
                        self.shared.pop_front();
                    } else {
                        self.piece_pos += n;
                        self.shared_len -= n;
                        n = 0;
                    }
                }
                Some((at, _)) => {
                    let k = n.min(at - self.pos);
                    self.pos += k;
                    n -= k;
                }
                None => {
                    self.pos = (self.pos + n).min(self.own.len());
                    n = 0;
                }
            }
        }
        if self.pos == self.own.len() && self.shared.is_empty() {
            self.own.clear();
            self.pos = 0;
        }
    }

    /// Everything pending as one buffer (for the last write before closing).
    pub(crate) fn take_all(&mut self) -> Vec<u8> {
        let mut v = Vec::with_capacity(self.pending());
        while self.pending() > 0 {
            let _ = self.write_with(|iov| {
                let mut n = 0;
                for s in iov {
                    v.extend_from_slice(s);
                    n += s.len();
                }
                Ok(n)
            });
        }
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A socket that takes at most `max` bytes per write.
    fn drain(b: &mut OutBuf, max: usize) -> Vec<u8> {
        let mut got = Vec::new();
        while b.pending() > 0 {
            let n = b
                .write_with(|iov| {
                    let mut n = 0;
                    for s in iov {
                        let take = s.len().min(max - n);
                        got.extend_from_slice(&s[..take]);
                        n += take;
                        if n == max {
                            break;
                        }
                    }
                    Ok(n)
                })
                .unwrap();
            assert!(n > 0);
        }
        got
    }

    #[test]
    fn pieces_come_out_in_place_whatever_the_write_sizes() {
        for max in [1, 2, 3, 5, 7, 64, 10_000] {
            let mut b = OutBuf::default();
            let _ = b.push(b"ab".to_vec());
            let mut shared = vec![
                (1, Bytes::from_static(b"XY")),
                (2, Bytes::from_static(b"Z")),
            ];
            let _ = b.push_with(b"cd".to_vec(), &mut shared);
            assert!(shared.is_empty());
            let mut shared = vec![
                (0, Bytes::from_static(b"123")),
                (3, Bytes::from_static(b"45")),
            ];
            let _ = b.push_with(b"efg".to_vec(), &mut shared);
            assert_eq!(b.pending(), 15);
            assert_eq!(drain(&mut b, max), b"abcXYdZ123efg45", "max {max}");
            assert_eq!(b.pending(), 0);
        }
    }

    #[test]
    fn more_pieces_than_one_write_takes() {
        let mut b = OutBuf::default();
        let mut want = Vec::new();
        for i in 0..200u8 {
            let mut shared = vec![(1, Bytes::from(vec![i; 3]))];
            let _ = b.push_with(vec![b'h', b't'], &mut shared);
            want.extend_from_slice(&[b'h', i, i, i, b't']);
        }
        assert_eq!(drain(&mut b, usize::MAX), want);
    }

    #[test]
    fn pending_bytes_are_taken_whole_before_closing() {
        let mut b = OutBuf::default();
        let mut shared = vec![(2, Bytes::from_static(b"--"))];
        let _ = b.push_with(b"head".to_vec(), &mut shared);
        let _ = drain_some(&mut b, 3);
        assert_eq!(b.take_all(), b"-ad");
        assert_eq!(b.pending(), 0);
    }

    fn drain_some(b: &mut OutBuf, n: usize) -> usize {
        b.write_with(|iov| {
            let mut left = n;
            for s in iov {
                left -= s.len().min(left);
            }
            Ok(n - left)
        })
        .unwrap()
    }

    #[test]
    fn an_empty_buffer_takes_the_new_bytes_without_copying() {
        let mut b = OutBuf::default();
        let first = vec![1u8; 100];
        let ptr = first.as_ptr();
        let back = b.push(first);
        assert!(back.is_empty());
        assert_eq!(b.own.as_ptr(), ptr);
    }

    /// Small and large sets of slices, and a single one, reach the peer whole and in
    /// order (copied into one buffer or written as they are).
    #[tokio::test]
    async fn slices_arrive_in_order_copied_or_not() {
        use tokio::io::AsyncReadExt;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let tx = tokio::net::TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let (mut rx, _) = listener.accept().await.unwrap();
        let mut want = Vec::new();
        for sizes in [vec![12usize, 161], vec![300], vec![7, 600, 500, 9]] {
            let parts: Vec<Vec<u8>> = sizes
                .iter()
                .enumerate()
                .map(|(i, &n)| (0..n).map(|k| (k + i * 31) as u8).collect())
                .collect();
            let iov: Vec<IoSlice<'_>> = parts.iter().map(|p| IoSlice::new(p)).collect();
            tx.writable().await.unwrap();
            let n = try_write_iov(&tx, &iov).unwrap();
            assert_eq!(n, sizes.iter().sum::<usize>());
            want.extend(parts.concat());
        }
        let mut got = vec![0u8; want.len()];
        rx.read_exact(&mut got).await.unwrap();
        assert_eq!(got, want);
    }
}
