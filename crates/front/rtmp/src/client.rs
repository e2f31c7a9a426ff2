//! The application's handle on one connection, and the bounded queue behind it.
//!
//! Everything a [`Client`] method does is queued for the connection's task, which
//! applies it to the sans-IO session in order and writes the bytes. The queue is
//! bounded: commands by count, media by bytes. Media beyond
//! [`QueueLimits::soft_bytes`] drops video until the next key frame (audio and codec
//! headers still pass); beyond [`QueueLimits::hard_bytes`] the connection is closed
//! with a log line. So a player that reads slower than its stream arrives costs at
//! most `hard_bytes` of memory, never more.

use std::cell::RefCell;
use std::collections::{HashSet, VecDeque};
use std::future::Future;
use std::io::IoSlice;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use bytes::Bytes;
use rtmp::amf::{self, Value};
use rtmp::{ChunkedBody, FullHeader, MediaKind, MediaWriter, status};
use tokio::net::TcpStream;
use tokio::sync::oneshot;

use crate::app::{Call, MediaTag};

/// Bounds on what may wait in a connection's outgoing queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueLimits {
    /// Queued media bytes above which video is dropped until the next key frame.
    pub soft_bytes: usize,
    /// Queued media bytes above which the connection is closed (a player too slow for
    /// its stream).
    pub hard_bytes: usize,
    /// Queued commands (answers, calls, statuses) above which the connection is closed.
    pub max_commands: usize,
}

impl Default for QueueLimits {
    fn default() -> Self {
        QueueLimits {
            soft_bytes: 1 << 20,
            hard_bytes: 4 << 20,
            max_commands: 4096,
        }
    }
}

/// Why a [`Client`] method did nothing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// The connection is closed (or closing).
    #[error("connection closed")]
    Closed,
}

/// Why a [`PendingCall`] has no `_result`.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum CallError {
    /// The client answered `_error` with these values (usually one info object).
    #[error("client answered _error")]
    Error(Vec<Value>),
    /// The connection closed first, or too many calls were outstanding and this, the
    /// oldest, was forgotten.
    #[error("no answer: connection closed")]
    Closed,
}

/// An answer the connection task delivers for a call.
pub(crate) type Reply = Result<Vec<Value>, CallError>;

/// The `_result` of a [`Client::call`]: a future of the client's answer values. Drop it
/// to ignore the answer.
#[derive(Debug)]
pub struct PendingCall {
    rx: Option<oneshot::Receiver<Reply>>,
}

impl Future for PendingCall {
    type Output = Result<Vec<Value>, CallError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.rx.as_mut() {
            None => Poll::Ready(Err(CallError::Closed)),
            Some(rx) => match Pin::new(rx).poll(cx) {
                Poll::Ready(Ok(r)) => Poll::Ready(r),
                Poll::Ready(Err(_)) => Poll::Ready(Err(CallError::Closed)),
                Poll::Pending => Poll::Pending,
            },
        }
    }
}

/// One queued action.
#[derive(Debug)]
pub(crate) enum Out {
    Accept {
        description: String,
        extra: Vec<(String, Value)>,
    },
    Reject {
        code: String,
        description: String,
        extra: Vec<(String, Value)>,
    },
    Result {
        transaction_id: f64,
        args: Vec<Value>,
    },
    Error {
        transaction_id: f64,
        info: Value,
    },
    Call {
        method: String,
        args: Vec<Value>,
        reply: oneshot::Sender<Reply>,
    },
    Status {
        stream: u32,
        info: Value,
    },
    Media {
        stream: u32,
        tag: MediaTag,
        /// The body in chunks, shared by every player of a relayed message.
        chunks: Option<Arc<OnceLock<ChunkedBody>>>,
    },
    StreamEof {
        stream: u32,
    },
    Close,
}

#[derive(Debug, Default)]
pub(crate) struct Outbox {
    pub(crate) items: VecDeque<Out>,
    pub(crate) media_bytes: usize,
    pub(crate) commands: usize,
    /// Set when the connection is over; everything is refused.
    pub(crate) closed: bool,
    /// Set when a limit was exceeded; the task closes the connection with this text.
    pub(crate) overflow: Option<String>,
    /// Streams dropping video until the next key frame.
    skipping_video: HashSet<u32>,
    /// Media messages dropped so far.
    pub(crate) dropped: u64,
    /// The connection task, while it waits: woken by a new item when `want_items`, and
    /// by an exceeded limit always. Taken by the wake, so a burst wakes it once.
    waker: Option<Waker>,
    /// The task takes new items (its socket is not backed up).
    want_items: bool,
    /// How to write media straight into the socket; used while `direct_on`.
    pub(crate) direct: Option<Direct>,
    /// Set by the task while it waits with nothing to write and nothing queued: media
    /// then goes from the sender's task into the socket, without waking this task.
    pub(crate) direct_on: bool,
    /// Messages taken that way and not yet written: the sender writes them at the end
    /// of its turn ([`turn`]), all with one vectored write (the messages of one read
    /// of a publisher).
    pub(crate) batch: Vec<(FullHeader, Bytes)>,
    /// Media timestamp of the batch's first message.
    pub(crate) batch_first: Option<u32>,
    /// The batch is on the current turn's list.
    pub(crate) batch_due: bool,
    /// Bytes written that way since the task last looked (it tells its session).
    pub(crate) direct_bytes: u64,
    /// The rest of a batch that the socket took only part of: the task writes it
    /// before anything else.
    pub(crate) spill: Option<Vec<u8>>,
}

/// Most messages in one batch (two slices each in the vectored write).
const MAX_BATCH: usize = 32;
/// Stream time (ms) that relayed media may wait in a batch for the next messages.
const MERGE_MS: u32 = 40;

/// What a sender needs to write media into an idle player's socket itself, as
/// nginx-rtmp does: the socket, and the playing streams with what they take.
#[derive(Debug)]
pub(crate) struct Direct {
    pub(crate) socket: Arc<TcpStream>,
    pub(crate) streams: Vec<DirectStream>,
}

/// A playing stream of a [`Direct`] connection.
#[derive(Debug)]
pub(crate) struct DirectStream {
    pub(crate) writer: MediaWriter,
    pub(crate) audio: bool,
    pub(crate) video: bool,
    pub(crate) data: bool,
}

impl Direct {
    /// A message's bytes for this connection: `Some(None)` when its stream does not
    /// take this kind now (dropped, as the task would drop it), `None` when it must
    /// go through the queue.
    fn message(
        &self,
        stream: u32,
        tag: &MediaTag,
        chunks: &OnceLock<ChunkedBody>,
    ) -> Option<Option<(FullHeader, Bytes)>> {
        let s = self
            .streams
            .iter()
            .find(|s| s.writer.stream_id() == stream)?;
        let takes = match tag.kind {
            MediaKind::Audio => s.audio,
            MediaKind::Video => s.video,
            MediaKind::Data => s.data,
        };
        if !takes {
            return Some(None);
        }
        s.writer
            .message(tag.kind, tag.timestamp, &tag.payload, chunks)
            .map(Some)
    }
}

impl Outbox {
    /// The waker to wake after an item was queued or a limit exceeded (call it
    /// after unlocking).
    fn take_waker(&mut self) -> Option<Waker> {
        if self.want_items || self.overflow.is_some() || self.has_leftovers() {
            self.waker.take()
        } else {
            None
        }
    }

    /// Directly written output that the task must take over (the socket was full).
    fn has_leftovers(&self) -> bool {
        self.spill.is_some() || (!self.direct_on && !self.batch.is_empty())
    }

    /// Writes the batch into the socket. What the socket does not take is left to
    /// the task (direct writing stops): returns its waker then.
    fn flush_batch(&mut self) -> Option<Waker> {
        self.batch_first = None;
        self.batch_due = false;
        let Some(d) = &self.direct else {
            return None;
        };
        if self.batch.is_empty() || !self.direct_on {
            return None;
        }
        let mut iov = [IoSlice::new(&[]); 2 * MAX_BATCH];
        let mut total = 0;
        for (i, (head, body)) in self.batch.iter().enumerate() {
            iov[2 * i] = IoSlice::new(head.as_bytes());
            iov[2 * i + 1] = IoSlice::new(body);
            total += head.as_bytes().len() + body.len();
        }
        let k = 2 * self.batch.len();
        match crate::outbuf::try_write_iov(&d.socket, &iov[..k]) {
            Ok(n) if n >= total => {}
            Ok(n) => {
                let mut rest = Vec::with_capacity(total - n);
                let mut skip = n;
                for s in &iov[..k] {
                    let t = skip.min(s.len());
                    rest.extend_from_slice(&s[t..]);
                    skip -= t;
                }
                self.spill = Some(rest);
            }
            // Would block (or failed: the task meets the error on its own write):
            // the task takes the batch.
            Err(_) => {
                self.direct_on = false;
                return self.take_waker();
            }
        }
        self.batch.clear();
        self.direct_bytes += total as u64;
        if self.spill.is_some() {
            self.direct_on = false;
            return self.take_waker();
        }
        None
    }
}

thread_local! {
    /// Connections with a batch to write at the end of this thread's current turn, and
    /// those whose batch waits for more of the stream (see [`turn`]).
    static TURN: RefCell<Option<Turn>> = const { RefCell::new(None) };
}

#[derive(Default)]
struct Turn {
    due: Vec<Arc<Shared>>,
    held: Vec<Arc<Shared>>,
}

/// Wall-clock bound on how long relayed media waits in a batch ([`MERGE_MS`] of stream
/// time), for a publisher that stops sending.
pub(crate) const MERGE_WAIT: Duration = Duration::from_millis(MERGE_MS as u64);

/// Runs a connection's turn `f` (its session's events, where a publisher's messages
/// reach every player), then writes the batches of direct media it left, one vectored
/// write per player. Returns the connections whose batch waits for more of the stream:
/// the caller writes them with [`flush`] within [`MERGE_WAIT`]. Media sent outside a
/// turn is written at once.
pub(crate) fn turn(f: impl FnOnce()) -> Vec<Arc<Shared>> {
    let outer = TURN.with(|t| {
        let mut t = t.borrow_mut();
        t.is_none().then(|| *t = Some(Turn::default())).is_some()
    });
    f();
    if !outer {
        return Vec::new();
    }
    let t = TURN.with(|t| t.borrow_mut().take()).unwrap_or_default();
    flush(t.due);
    t.held
}

/// Writes the batches of these connections.
pub(crate) fn flush(list: Vec<Arc<Shared>>) {
    for shared in list {
        let wake = shared.lock().flush_batch();
        if let Some(w) = wake {
            w.wake();
        }
    }
}

/// Puts `shared` on the current turn's list of due (or held) batches; false outside a
/// turn.
fn join_turn(shared: &Arc<Shared>, held: bool) -> bool {
    TURN.with(|t| match t.borrow_mut().as_mut() {
        Some(t) => {
            if held { &mut t.held } else { &mut t.due }.push(shared.clone());
            true
        }
        None => false,
    })
}

#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) id: u64,
    pub(crate) peer: SocketAddr,
    pub(crate) app: OnceLock<String>,
    pub(crate) limits: QueueLimits,
    pub(crate) outbox: Mutex<Outbox>,
}

impl Shared {
    pub(crate) fn lock(&self) -> MutexGuard<'_, Outbox> {
        // A panic while holding the lock cannot leave the queue inconsistent in a way
        // that matters more than losing the connection, so poisoning is ignored.
        self.outbox.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// For the connection task: ready when a limit was exceeded, or when items wait
    /// and `want_items`; otherwise the task's waker is kept for the next push.
    pub(crate) fn poll_work(&self, cx: &mut Context<'_>, want_items: bool) -> Poll<()> {
        let mut q = self.lock();
        if q.overflow.is_some() || q.has_leftovers() || (want_items && !q.items.is_empty()) {
            return Poll::Ready(());
        }
        q.want_items = want_items;
        if !q.waker.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
            q.waker = Some(cx.waker().clone());
        }
        Poll::Pending
    }
}

/// The application's handle on one RTMP connection: cheap to clone, usable from any
/// task. Every method queues its action and returns at once; actions are applied in
/// the order they were queued. After the connection closes every method returns
/// [`ClientError::Closed`].
#[derive(Debug, Clone)]
pub struct Client {
    pub(crate) shared: Arc<Shared>,
}

impl Client {
    pub(crate) fn new(id: u64, peer: SocketAddr, limits: QueueLimits) -> Client {
        Client {
            shared: Arc::new(Shared {
                id,
                peer,
                app: OnceLock::new(),
                limits,
                outbox: Mutex::new(Outbox::default()),
            }),
        }
    }

    /// A number for this connection, unique in this server process (for logs).
    pub fn id(&self) -> u64 {
        self.shared.id
    }

    /// The client's address.
    pub fn peer(&self) -> SocketAddr {
        self.shared.peer
    }

    /// The `app` path the client connected to (empty before `connect`).
    pub fn app(&self) -> &str {
        self.shared.app.get().map_or("", String::as_str)
    }

    /// True once the connection is over.
    pub fn is_closed(&self) -> bool {
        self.shared.lock().closed
    }

    /// Media messages dropped for this client because it read too slowly.
    pub fn dropped(&self) -> u64 {
        self.shared.lock().dropped
    }

    fn push(&self, item: Out) -> Result<(), ClientError> {
        let wake = {
            let mut q = self.shared.lock();
            if q.closed || q.overflow.is_some() {
                return Err(ClientError::Closed);
            }
            if q.commands >= self.shared.limits.max_commands {
                q.overflow = Some(format!(
                    "more than {} commands queued for the client",
                    self.shared.limits.max_commands
                ));
            } else {
                q.commands += 1;
                q.items.push_back(item);
            }
            q.take_waker()
        };
        if let Some(w) = wake {
            w.wake();
        }
        Ok(())
    }

    // ---- connect ----

    /// Accepts the `connect`: `_result` with `NetConnection.Connect.Success` and the
    /// description "Connection succeeded.".
    pub fn accept(&self) -> Result<(), ClientError> {
        self.accept_with("Connection succeeded.", Vec::new())
    }

    /// Accepts with a description of the application's choosing and extra fields in
    /// the info object (a field named like a standard one — `code`, `details`, ... —
    /// replaces it).
    pub fn accept_with(
        &self,
        description: &str,
        extra: Vec<(String, Value)>,
    ) -> Result<(), ClientError> {
        self.push(Out::Accept {
            description: description.to_owned(),
            extra,
        })
    }

    /// Rejects the `connect`: `_error` with `NetConnection.Connect.Rejected` and this
    /// description (the seed gateway used e.g. "401 Unauthorized"). The client is
    /// expected to close; the server closes after a grace period if it does not.
    pub fn reject(&self, description: &str) -> Result<(), ClientError> {
        self.reject_with(status::CONNECT_REJECTED, description, Vec::new())
    }

    /// Rejects with any code and extra fields in the info object.
    pub fn reject_with(
        &self,
        code: &str,
        description: &str,
        extra: Vec<(String, Value)>,
    ) -> Result<(), ClientError> {
        self.push(Out::Reject {
            code: code.to_owned(),
            description: description.to_owned(),
            extra,
        })
    }

    // ---- answers to the client's calls ----

    /// Answers a call with `_result(transaction_id, null, args...)`. Does nothing for
    /// transaction id 0 (the client expects no answer).
    pub fn result(&self, transaction_id: f64, args: Vec<Value>) -> Result<(), ClientError> {
        if transaction_id == 0.0 {
            return Ok(());
        }
        self.push(Out::Result {
            transaction_id,
            args,
        })
    }

    /// Answers a call with `_error(transaction_id, null, info)`. Does nothing for
    /// transaction id 0.
    pub fn error(&self, transaction_id: f64, info: Value) -> Result<(), ClientError> {
        if transaction_id == 0.0 {
            return Ok(());
        }
        self.push(Out::Error {
            transaction_id,
            info,
        })
    }

    /// Answers `call` with `_error` and the info object `{level: "error", code:
    /// "NetConnection.Call.Failed", description, details: null}`.
    pub fn call_failed(&self, call: &Call, description: &str) -> Result<(), ClientError> {
        self.error(
            call.transaction_id,
            status_info("error", status::CALL_FAILED, description),
        )
    }

    // ---- calls to the client ----

    /// Calls `method(args...)` on the client's `NetConnection.client` (e.g.
    /// `invited(from, to)`), with transaction ids counting up from 2. The returned
    /// future resolves to the values of the client's `_result`, or to
    /// [`CallError`]; drop it to ignore the answer. If the connection is closed the
    /// future resolves to [`CallError::Closed`] at once.
    pub fn call(&self, method: &str, args: Vec<Value>) -> PendingCall {
        let (tx, rx) = oneshot::channel();
        match self.push(Out::Call {
            method: method.to_owned(),
            args,
            reply: tx,
        }) {
            Ok(()) => PendingCall { rx: Some(rx) },
            Err(_) => PendingCall { rx: None },
        }
    }

    // ---- streams ----

    /// Sends `onStatus(0, null, {level, code, description, details: null})` on a
    /// stream (or on the connection, stream 0).
    pub fn on_status(
        &self,
        stream: u32,
        level: &str,
        code: &str,
        description: &str,
    ) -> Result<(), ClientError> {
        self.on_status_info(stream, status_info(level, code, description))
    }

    /// Sends `onStatus(0, null, info)` with an info object of the caller's making.
    pub fn on_status_info(&self, stream: u32, info: Value) -> Result<(), ClientError> {
        self.push(Out::Status { stream, info })
    }

    /// User control StreamEOF for a stream (e.g. after a file ended).
    pub fn stream_eof(&self, stream: u32) -> Result<(), ClientError> {
        self.push(Out::StreamEof { stream })
    }

    /// Sends an audio, video or data tag on a stream the client plays. Returns
    /// `Ok(false)` if the tag was dropped because the client is behind (see the module
    /// docs); tags for a stream that is not playing, or whose kind the client turned
    /// off (`receiveAudio(false)`, `receiveVideo(false)`, `pause`), are dropped when
    /// their turn comes.
    pub fn send_media(&self, stream: u32, tag: MediaTag) -> Result<bool, ClientError> {
        self.queue_media(stream, tag, None)
    }

    /// [`Client::send_media`] for a message sent to many clients (the relay): the
    /// first to write it cuts it into chunks in `chunks`, the others share those.
    pub(crate) fn send_relayed(
        &self,
        stream: u32,
        tag: MediaTag,
        chunks: &Arc<OnceLock<ChunkedBody>>,
    ) -> Result<bool, ClientError> {
        self.queue_media(stream, tag, Some(chunks.clone()))
    }

    fn queue_media(
        &self,
        stream: u32,
        tag: MediaTag,
        chunks: Option<Arc<OnceLock<ChunkedBody>>>,
    ) -> Result<bool, ClientError> {
        let limits = self.shared.limits;
        let wake = {
            let mut q = self.shared.lock();
            if q.closed || q.overflow.is_some() {
                return Err(ClientError::Closed);
            }
            let len = tag.payload.len();
            if tag.kind == MediaKind::Video && !tag.is_sequence_header() {
                if q.skipping_video.contains(&stream) {
                    if tag.is_keyframe() && q.media_bytes + len <= limits.soft_bytes {
                        q.skipping_video.remove(&stream);
                    } else {
                        q.dropped += 1;
                        return Ok(false);
                    }
                } else if q.media_bytes + len > limits.soft_bytes {
                    q.skipping_video.insert(stream);
                    q.dropped += 1;
                    return Ok(false);
                }
            }
            // An idle player: straight into its socket, in order since nothing waits.
            if q.direct_on
                && q.items.is_empty()
                && let Some(d) = &q.direct
            {
                let own = OnceLock::new();
                match d.message(stream, &tag, chunks.as_deref().unwrap_or(&own)) {
                    Some(None) => return Ok(true),
                    Some(Some(m)) => {
                        q.batch.push(m);
                        let first = *q.batch_first.get_or_insert(tag.timestamp);
                        // Relayed media waits for the stream's next messages, up to
                        // MERGE_MS of stream time, so that one write carries several
                        // (fewer system calls and TCP segments per player; SRS calls
                        // this merged write). Other media waits to the end of the turn.
                        let waited = tag.timestamp.wrapping_sub(first);
                        let hold = chunks.is_some() && waited < MERGE_MS;
                        let n = q.batch.len();
                        let room = n < MAX_BATCH;
                        if room && q.batch_due {
                            return Ok(true);
                        }
                        // The first held message puts the batch on the turn's held list
                        // (written within MERGE_WAIT if the stream stops).
                        if room && hold && (n > 1 || join_turn(&self.shared, true)) {
                            return Ok(true);
                        }
                        if room && join_turn(&self.shared, false) {
                            q.batch_due = true;
                            return Ok(true);
                        }
                        if let Some(w) = q.flush_batch() {
                            drop(q);
                            w.wake();
                        }
                        return Ok(true);
                    }
                    None => q.direct_on = false,
                }
            }
            if q.media_bytes + len > limits.hard_bytes {
                q.overflow = Some(format!(
                    "player too slow: {} bytes of media queued (limit {})",
                    q.media_bytes, limits.hard_bytes
                ));
            } else {
                q.media_bytes += len;
                q.items.push_back(Out::Media {
                    stream,
                    tag,
                    chunks,
                });
            }
            q.take_waker()
        };
        if let Some(w) = wake {
            w.wake();
        }
        Ok(true)
    }

    /// Shorthand for [`Client::send_media`] with an audio tag (first byte the FLV
    /// SoundFormat/rate/size/type byte, e.g. `0xB2` for Speex).
    pub fn send_audio(
        &self,
        stream: u32,
        timestamp: u32,
        payload: bytes::Bytes,
    ) -> Result<bool, ClientError> {
        self.send_media(stream, MediaTag::audio(timestamp, payload))
    }

    /// Closes the connection after what is queued so far has been written.
    pub fn close(&self) -> Result<(), ClientError> {
        self.push(Out::Close)
    }
}

/// `{level, code, description, details: null}`.
pub fn status_info(level: &str, code: &str, description: &str) -> Value {
    amf::object([
        ("level", amf::string(level)),
        ("code", amf::string(code)),
        ("description", amf::string(description)),
        ("details", Value::Null),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn client(soft: usize, hard: usize) -> Client {
        Client::new(
            1,
            SocketAddr::from(([127, 0, 0, 1], 1)),
            QueueLimits {
                soft_bytes: soft,
                hard_bytes: hard,
                max_commands: 3,
            },
        )
    }

    fn video(key: bool, n: usize) -> MediaTag {
        let mut b = vec![if key { 0x17 } else { 0x27 }, 1];
        b.resize(n, 0);
        MediaTag {
            kind: MediaKind::Video,
            timestamp: 0,
            payload: Bytes::from(b),
        }
    }

    #[test]
    fn slow_player_drops_video_until_a_key_frame_then_overflows() {
        let c = client(100, 300);
        assert_eq!(c.send_media(1, video(true, 60)), Ok(true));
        assert_eq!(c.send_media(1, video(false, 60)), Ok(false), "over soft");
        // Even a small inter frame is dropped until a key frame.
        assert_eq!(c.send_media(1, video(false, 10)), Ok(false));
        assert_eq!(
            c.send_media(1, video(true, 60)),
            Ok(false),
            "still over soft"
        );
        // Audio still passes, up to the hard limit.
        let audio = MediaTag::audio(0, Bytes::from(vec![0xB2; 100]));
        assert_eq!(c.send_media(1, audio.clone()), Ok(true));
        assert_eq!(c.send_media(1, audio.clone()), Ok(true));
        assert_eq!(c.dropped(), 3);
        // The hard limit: refused and the connection is marked for closing.
        assert_eq!(c.send_media(1, audio.clone()), Ok(true));
        assert!(c.shared.lock().overflow.is_some());
        assert_eq!(c.send_media(1, audio), Err(ClientError::Closed));
        assert_eq!(c.accept(), Err(ClientError::Closed));
    }

    #[test]
    fn key_frame_resumes_video_once_drained() {
        let c = client(100, 1000);
        c.send_media(1, video(true, 90)).unwrap();
        assert_eq!(c.send_media(1, video(false, 20)), Ok(false));
        {
            let mut q = c.shared.lock();
            q.items.clear();
            q.media_bytes = 0;
        }
        assert_eq!(
            c.send_media(1, video(false, 20)),
            Ok(false),
            "waits for a key"
        );
        assert_eq!(c.send_media(1, video(true, 20)), Ok(true));
        assert_eq!(c.send_media(1, video(false, 20)), Ok(true));
        // Sequence headers always pass.
        let hdr = MediaTag {
            kind: MediaKind::Video,
            timestamp: 0,
            payload: Bytes::from_static(&[0x17, 0, 0, 0, 0]),
        };
        c.send_media(1, video(true, 60)).unwrap();
        assert_eq!(c.send_media(1, video(false, 20)), Ok(false));
        assert_eq!(c.send_media(1, hdr), Ok(true));
    }

    #[test]
    fn command_count_is_bounded() {
        let c = client(100, 1000);
        c.result(2.0, vec![]).unwrap();
        c.result(0.0, vec![]).unwrap();
        c.result(3.0, vec![]).unwrap();
        c.result(4.0, vec![]).unwrap();
        assert_eq!(
            c.shared.lock().items.len(),
            3,
            "transaction 0 sends nothing"
        );
        c.result(5.0, vec![]).unwrap();
        assert!(c.shared.lock().overflow.is_some());
        assert_eq!(c.result(6.0, vec![]), Err(ClientError::Closed));
    }

    #[tokio::test]
    async fn call_on_a_closed_client_resolves_at_once() {
        let c = client(100, 1000);
        c.shared.lock().closed = true;
        assert_eq!(c.call("invited", vec![]).await, Err(CallError::Closed));
    }
}
