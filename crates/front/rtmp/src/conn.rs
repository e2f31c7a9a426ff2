//! One connection's task: socket ⇄ sans-IO [`Session`], session events ⇄ the
//! application's [`Connection`] handler, and the [`Client`] queue ⇄ session.
//!
//! The loop waits on four things at once: bytes from the client (only while less
//! than [`OUT_HIGH`] bytes wait to be written, so a client that does not read cannot
//! make us buffer its answers), room in the socket for pending bytes, the client queue
//! (drained only while less than [`OUT_LOW`] bytes are pending, so media waits in the
//! bounded queue where the slow-player policy applies), and the next deadline.
//!
//! While it waits with nothing pending and nothing queued, the media that a sender
//! queues (the relay's publisher) is written by the sender's task straight into the
//! socket (`client::Direct`), so an idle player's task does not wake per message; a
//! socket that would block sends the message through the queue, where the limits apply.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use rtmp::amf::{self, Value};
use rtmp::{
    ApiError, CloseReason, MediaKind, PublishType, Session, SessionConfig, SessionEvent,
    SessionOutput, StreamCommand, status,
};
use tokio::io::{AsyncWriteExt, Interest};
use tokio::net::TcpStream;
use tokio::sync::{oneshot, watch};
use tokio::time::Instant;
use tracing::{debug, info, warn};

use crate::app::{
    Call, CloseInfo, ConnectRequest, Connection, MediaTag, PlayRequest, PublishRequest,
    StreamDecision,
};
use crate::client::{self, CallError, Client, Direct, DirectStream, Out, Reply, status_info};
use crate::outbuf::OutBuf;
use crate::server::Context;

/// Pending output above which we stop reading from the client.
const OUT_HIGH: usize = 256 * 1024;
/// Pending output below which queued media is moved into the session.
const OUT_LOW: usize = 64 * 1024;
/// Calls to the client remembered while waiting for their answers (as the session).
const MAX_PENDING_CALLS: usize = 1024;
/// Longest time a player stays on a publisher's list of held batches.
const HELD_SWEEP: Duration = Duration::from_secs(1);
/// Time to write what is pending when closing.
const FLUSH_TIMEOUT: Duration = Duration::from_secs(2);

#[derive(Debug, Default)]
struct StreamState {
    publishing: Option<String>,
    playing: Option<String>,
    no_audio: bool,
    no_video: bool,
    paused: bool,
}

struct Conn {
    ctx: Arc<Context>,
    id: u64,
    peer: SocketAddr,
    session: Session,
    client: Client,
    handler: Option<Box<dyn Connection>>,
    streams: HashMap<u32, StreamState>,
    calls: BTreeMap<u64, oneshot::Sender<Reply>>,
    out: OutBuf,
    closing: Option<CloseInfo>,
    decision_deadline: Option<Instant>,
    reject_deadline: Option<Instant>,
    last_input: Instant,
    pinged: bool,
    /// Players whose batch of this connection's media waits for more of the stream.
    held: Vec<Arc<client::Shared>>,
    /// When the first of them started waiting.
    held_since: Instant,
}

pub(crate) async fn run(
    socket: TcpStream,
    peer: SocketAddr,
    id: u64,
    rng_seed: u64,
    ctx: Arc<Context>,
    mut stop: watch::Receiver<bool>,
) {
    // Shared with the client queue, whose senders write relayed media into it while
    // this task is idle (see `Conn::enter_direct`).
    let socket = Arc::new(socket);
    let now = Instant::now();
    let config = SessionConfig {
        rng_seed,
        ..ctx.config.session.clone()
    };
    let session = Session::new(config, now.into_std());
    let client = Client::new(id, peer, ctx.config.queue);
    let mut c = Conn {
        ctx,
        id,
        peer,
        session,
        client,
        handler: None,
        streams: HashMap::new(),
        calls: BTreeMap::new(),
        out: OutBuf::default(),
        closing: None,
        decision_deadline: None,
        reject_deadline: None,
        last_input: now,
        pinged: false,
        held: Vec::new(),
        held_since: now,
    };
    let mut rbuf = vec![0u8; 16 * 1024];

    enum Ev {
        Readable,
        Writable,
        Queue,
        Timer,
        Stop,
        StopGone,
    }
    let mut stop_alive = true;
    // The stop future stays registered once polled; after that a cheap version check
    // tells whether it needs polling again.
    let stop_probe = stop.clone();
    let mut stop_polled = false;
    let stop_changed = stop.changed();
    tokio::pin!(stop_changed);
    // One timer, re-armed only when the deadline comes closer or has passed: a player
    // wakes for every relayed message, and registering a fresh timer each time costs
    // more than the message.
    let mut deadline = c.next_deadline();
    let timer = tokio::time::sleep_until(deadline);
    tokio::pin!(timer);
    let mut timer_polled = false;

    loop {
        // Media this turn relays to idle players is written at its end, or within
        // MERGE_WAIT if it waits for more of the stream (`client::turn`).
        let held = client::turn(|| c.pump());
        if !held.is_empty() {
            if c.held.is_empty() {
                c.held_since = Instant::now();
            }
            c.held.extend(held);
        }
        if !c.held.is_empty() && Instant::now() >= c.held_deadline() {
            client::flush(std::mem::take(&mut c.held));
        }
        if c.closing.is_some() {
            break;
        }
        // Write at once while the socket takes it, instead of a trip through the
        // wait below (a relayed message reaches every player this way in one wake-up).
        if c.out.pending() > 0 {
            match c
                .out
                .write_with(|iov| crate::outbuf::try_write_iov(&socket, iov))
            {
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                Err(e) => {
                    c.close_error(format!("write failed: {e}"));
                    break;
                }
            }
        }
        let pending = c.out.pending();
        // A later deadline (input moved the idle timer) waits for the armed one to fire.
        let next = c.next_deadline();
        // While batches are held the deadline follows the input (a silent publisher
        // writes them), so it may move later too: once per turn of a publisher.
        if next < deadline || timer.is_elapsed() || (!c.held.is_empty() && next != deadline) {
            deadline = next;
            timer.as_mut().reset(deadline);
            timer_polled = false;
        }
        if pending == 0 {
            c.enter_direct(&socket);
        }
        // One hand-written wait instead of a select!: no futures built and dropped per
        // wake-up, and the queue wakes the task through the waker it keeps under the
        // queue's own lock.
        let ev = std::future::poll_fn(|cx| {
            if stop_alive && (!stop_polled || !matches!(stop_probe.has_changed(), Ok(false))) {
                stop_polled = true;
                if let Poll::Ready(r) = stop_changed.as_mut().poll(cx) {
                    return Poll::Ready(if r.is_ok() { Ev::Stop } else { Ev::StopGone });
                }
            }
            if c.client.shared.poll_work(cx, pending < OUT_LOW).is_ready() {
                return Poll::Ready(Ev::Queue);
            }
            if pending < OUT_HIGH && socket.poll_read_ready(cx).is_ready() {
                return Poll::Ready(Ev::Readable);
            }
            if pending > 0 && socket.poll_write_ready(cx).is_ready() {
                return Poll::Ready(Ev::Writable);
            }
            // Polled once after each reset (to leave the waker), then only once it
            // has fired.
            if !timer_polled || timer.is_elapsed() {
                timer_polled = true;
                if timer.as_mut().poll(cx).is_ready() {
                    return Poll::Ready(Ev::Timer);
                }
            }
            Poll::Pending
        })
        .await;
        c.leave_direct();
        let now = Instant::now();
        match ev {
            Ev::Readable => match read_drained(&socket, &mut rbuf) {
                Ok(0) => c.session.handle_eof(now.into_std()),
                Ok(n) => {
                    c.last_input = now;
                    c.pinged = false;
                    c.session.handle_input(now.into_std(), &rbuf[..n]);
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                Err(e) => c.close_error(format!("read failed: {e}")),
            },
            // The write is tried at the top of the loop.
            Ev::Writable => {}
            Ev::Queue => c.drain_queue(),
            Ev::Timer => c.on_timer(now),
            Ev::Stop => c.closing = Some(CloseInfo::Shutdown),
            Ev::StopGone => stop_alive = false,
        }
    }

    // Write what is pending (a rejection, a policy file, a last status), then close.
    client::flush(std::mem::take(&mut c.held));
    c.pump_session_only();
    c.client.shared.lock().direct = None;
    if let Ok(mut socket) = Arc::try_unwrap(socket) {
        if c.out.pending() > 0 {
            let last = c.out.take_all();
            let _ = tokio::time::timeout(FLUSH_TIMEOUT, socket.write_all(&last)).await;
        }
        let _ = socket.shutdown().await;
    }
    c.finish();
}

/// Reads what the socket has. A read shorter than the buffer emptied the socket, so
/// its readiness is cleared at once (the next bytes raise it again), instead of by a
/// read that fails with `WouldBlock`: one system call less per wake-up.
fn read_drained(socket: &TcpStream, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut short = None;
    let len = buf.len();
    let r = socket.try_io(Interest::READABLE, || match socket.try_read(buf) {
        Ok(n) if n > 0 && n < len => {
            short = Some(n);
            Err(std::io::ErrorKind::WouldBlock.into())
        }
        other => other,
    });
    match short {
        Some(n) => Ok(n),
        None => r,
    }
}

impl Conn {
    /// Before waiting with nothing to write: lets the senders of relayed media write
    /// it into the socket themselves while nothing is queued (no wake-up of this task
    /// per message).
    fn enter_direct(&mut self, socket: &Arc<TcpStream>) {
        if self.closing.is_some() {
            return;
        }
        let mut q = self.client.shared.lock();
        if q.closed || !q.items.is_empty() || q.spill.is_some() {
            return;
        }
        let d = q.direct.get_or_insert_with(|| Direct {
            socket: socket.clone(),
            streams: Vec::new(),
        });
        d.streams.clear();
        for (&id, s) in &self.streams {
            if s.playing.is_none() {
                continue;
            }
            if let Some(writer) = self.session.media_writer(id) {
                let on = !s.paused;
                d.streams.push(DirectStream {
                    writer,
                    audio: on && !s.no_audio,
                    video: on && !s.no_video,
                    data: on,
                });
            }
        }
        q.direct_on = !d.streams.is_empty();
    }

    /// After waking: takes the socket back, with what senders wrote meanwhile and
    /// what the socket did not take.
    fn leave_direct(&mut self) {
        let (mut bytes, spill, batch) = {
            let mut q = self.client.shared.lock();
            q.direct_on = false;
            let batch = (!q.batch.is_empty()).then(|| std::mem::take(&mut q.batch));
            q.batch_first = None;
            q.batch_due = false;
            (std::mem::take(&mut q.direct_bytes), q.spill.take(), batch)
        };
        if let Some(rest) = spill {
            let empty = self.out.push(rest);
            self.session.recycle(empty);
        }
        for (head, body) in batch.into_iter().flatten() {
            let head = head.as_bytes();
            bytes += (head.len() + body.len()) as u64;
            let mut shared = vec![(head.len(), body)];
            let _ = self.out.push_with(head.to_vec(), &mut shared);
        }
        if bytes > 0 {
            self.session.sent_elsewhere(bytes);
        }
    }

    /// When the batches held for more of this publisher's stream are written: once it
    /// has sent nothing for MERGE_WAIT, or a second after the oldest entry of the list
    /// (which bounds it; batches the stream completed are already written).
    fn held_deadline(&self) -> Instant {
        (self.last_input + client::MERGE_WAIT).min(self.held_since + HELD_SWEEP)
    }

    fn next_deadline(&self) -> Instant {
        let idle = self.ctx.config.idle_timeout;
        let mut d = self.last_input + if self.pinged { idle } else { idle / 2 };
        if !self.held.is_empty() {
            d = d.min(self.held_deadline());
        }
        if let Some(t) = self.session.poll_timeout() {
            d = d.min(Instant::from_std(t));
        }
        for t in [self.decision_deadline, self.reject_deadline]
            .into_iter()
            .flatten()
        {
            d = d.min(t);
        }
        d
    }

    fn on_timer(&mut self, now: Instant) {
        self.session.handle_timeout(now.into_std());
        if self.decision_deadline.is_some_and(|d| now >= d) {
            self.decision_deadline = None;
            if self.session.is_connect_pending() {
                warn!(conn = self.id, peer = %self.peer, "application did not decide the connect in time; rejecting");
                let _ = self
                    .session
                    .reject_connect(status::CONNECT_REJECTED, "Connect timed out");
                self.reject_deadline = Some(now + self.ctx.config.reject_grace);
            }
        }
        if self.reject_deadline.is_some_and(|d| now >= d) {
            self.close_error("rejected client did not close the connection".into());
            return;
        }
        let idle = self.ctx.config.idle_timeout;
        if now >= self.last_input + idle {
            self.close_error(format!("idle for {} s", idle.as_secs()));
        } else if !self.pinged && now >= self.last_input + idle / 2 {
            self.pinged = true;
            if self.session.is_connected() {
                let _ = self
                    .session
                    .ping(now.into_std().elapsed().as_millis() as u32);
            }
        }
    }

    fn close_error(&mut self, why: String) {
        if self.closing.is_none() {
            warn!(conn = self.id, peer = %self.peer, app = self.client.app(), "closing RTMP connection: {why}");
            self.closing = Some(CloseInfo::Error(why));
        }
    }

    /// Moves session output to the write buffer and session events to the handler,
    /// until the session has nothing more to say.
    fn pump(&mut self) {
        while let Some(o) = self.session.poll_output() {
            match o {
                SessionOutput::Send(b) => {
                    let empty = self.out.push(b);
                    self.session.recycle(empty);
                }
                SessionOutput::SendWith { bytes, mut shared } => {
                    let empty = self.out.push_with(bytes, &mut shared);
                    self.session.recycle(empty);
                    self.session.recycle_shared(shared);
                }
                SessionOutput::Event(e) => self.on_event(e),
            }
        }
    }

    /// A queue limit was exceeded (a player too slow for its stream): tell each
    /// playing stream, then close.
    fn on_overflow(&mut self, why: String) {
        for (&id, s) in &self.streams {
            if s.playing.is_some() {
                let _ = self.session.on_status_info(
                    id,
                    status_info("error", status::FAILED, "Too slow: disconnecting"),
                );
            }
        }
        self.close_error(why);
    }

    fn pump_session_only(&mut self) {
        while let Some(o) = self.session.poll_output() {
            match o {
                SessionOutput::Send(b) => {
                    let _ = self.out.push(b);
                }
                SessionOutput::SendWith { bytes, mut shared } => {
                    let _ = self.out.push_with(bytes, &mut shared);
                }
                SessionOutput::Event(_) => {}
            }
        }
    }

    // ---- session events ----

    fn on_event(&mut self, e: SessionEvent) {
        match e {
            SessionEvent::Connect {
                app,
                tc_url,
                object_encoding,
                command_object,
                args,
            } => {
                self.on_connect(app, tc_url, object_encoding, command_object, args);
                // A decision the application made at once applies before the next
                // message (a client may send createStream right behind connect).
                self.drain_queue();
            }
            SessionEvent::Command {
                stream_id,
                name,
                transaction_id,
                command_object,
                args,
            } => {
                self.on_command(stream_id, name, transaction_id, command_object, args);
                self.drain_queue();
            }
            SessionEvent::Response {
                transaction_id,
                ok,
                args,
                ..
            } => {
                if let Some(tx) = self.calls.remove(&(transaction_id as u64)) {
                    let _ = tx.send(if ok {
                        Ok(args)
                    } else {
                        Err(CallError::Error(args))
                    });
                }
            }
            SessionEvent::Media {
                stream_id,
                kind,
                timestamp,
                payload,
            } => {
                let publishing = self
                    .streams
                    .get(&stream_id)
                    .is_some_and(|s| s.publishing.is_some());
                if publishing {
                    if let Some(h) = self.handler.as_mut() {
                        h.media(
                            stream_id,
                            MediaTag {
                                kind,
                                timestamp,
                                payload,
                            },
                        );
                    }
                } else {
                    debug!(
                        conn = self.id,
                        stream = stream_id,
                        "media on a stream that is not publishing; dropped"
                    );
                }
            }
            SessionEvent::Discarded {
                stream_id,
                type_id,
                reason,
            } => {
                debug!(
                    conn = self.id,
                    stream = stream_id,
                    type_id,
                    "discarded message: {reason}"
                );
            }
            SessionEvent::Closed { reason } => self.on_closed(reason),
            _ => {}
        }
    }

    fn on_closed(&mut self, reason: CloseReason) {
        let info = match reason {
            CloseReason::PeerClosed { mid_message: false } => {
                debug!(conn = self.id, peer = %self.peer, "client closed the connection");
                CloseInfo::ClientClosed
            }
            CloseReason::PolicyServed => {
                debug!(conn = self.id, peer = %self.peer, "served a Flash policy file");
                CloseInfo::ClientClosed
            }
            CloseReason::PeerClosed { mid_message: true } => {
                let why = "client closed the connection in the middle of a message".to_owned();
                warn!(conn = self.id, peer = %self.peer, app = self.client.app(), "closing RTMP connection: {why}");
                CloseInfo::Error(why)
            }
            CloseReason::Timeout => {
                let why = "no handshake and connect in time".to_owned();
                warn!(conn = self.id, peer = %self.peer, "closing RTMP connection: {why}");
                CloseInfo::Error(why)
            }
            CloseReason::Handshake(e) => {
                let why = format!("bad handshake: {e}");
                warn!(conn = self.id, peer = %self.peer, "closing RTMP connection: {why}");
                CloseInfo::Error(why)
            }
            CloseReason::Chunk(e) => {
                let why = format!("bad chunk stream: {e}");
                warn!(conn = self.id, peer = %self.peer, app = self.client.app(), "closing RTMP connection: {why}");
                CloseInfo::Error(why)
            }
            other => {
                let why = format!("{other:?}");
                warn!(conn = self.id, peer = %self.peer, "closing RTMP connection: {why}");
                CloseInfo::Error(why)
            }
        };
        if self.closing.is_none() {
            self.closing = Some(info);
        }
    }

    fn on_connect(
        &mut self,
        app: String,
        tc_url: Option<String>,
        object_encoding: rtmp::ObjectEncoding,
        command_object: Value,
        args: Vec<Value>,
    ) {
        let path = app.split('?').next().unwrap_or("");
        let path = path.trim_matches('/');
        let (app_name, instance) = match path.split_once('/') {
            Some((a, i)) => (a.to_owned(), i.to_owned()),
            None => (path.to_owned(), String::new()),
        };
        let _ = self.client.shared.app.set(app.clone());
        let Some(application) = self.ctx.app(&app_name) else {
            info!(conn = self.id, peer = %self.peer, app = %app, "connect to an unknown application; rejected");
            let _ = self.session.reject_connect(
                status::CONNECT_REJECTED,
                &format!("Application not found: {app_name}"),
            );
            self.reject_deadline = Some(Instant::now() + self.ctx.config.reject_grace);
            return;
        };
        if app_name.is_empty() {
            let _ = self
                .session
                .reject_connect(status::CONNECT_REJECTED, "Missing app path");
            self.reject_deadline = Some(Instant::now() + self.ctx.config.reject_grace);
            return;
        }
        debug!(conn = self.id, peer = %self.peer, app = %app, extra_args = args.len(), "connect");
        let request = ConnectRequest {
            app,
            app_name,
            instance,
            tc_url,
            object_encoding,
            command_object,
            args,
            peer: self.peer,
        };
        self.decision_deadline = Some(Instant::now() + self.ctx.config.connect_decision_timeout);
        self.handler = Some(application.connect(request, self.client.clone()));
    }

    fn on_command(
        &mut self,
        stream: u32,
        name: String,
        transaction_id: f64,
        command_object: Value,
        args: Vec<Value>,
    ) {
        let Some(handler) = self.handler.as_mut() else {
            // Only possible for a connection whose connect the server rejected.
            let _ = self.session.error(
                transaction_id,
                status_info("error", status::CALL_FAILED, "Connect first"),
            );
            return;
        };
        let connected = self.session.is_connected();
        match name.as_str() {
            "createStream" if stream == 0 => {
                if !connected {
                    let _ = self.session.error(
                        transaction_id,
                        status_info("error", status::CALL_FAILED, "Not connected yet"),
                    );
                    return;
                }
                match self.session.accept_create_stream(transaction_id) {
                    Ok(id) => {
                        self.streams.insert(id, StreamState::default());
                    }
                    Err(e) => {
                        let _ = self.session.error(
                            transaction_id,
                            status_info("error", status::CALL_FAILED, &e.to_string()),
                        );
                    }
                }
            }
            "deleteStream" if stream == 0 => {
                if let Some(StreamCommand::DeleteStream { stream_id }) =
                    StreamCommand::parse(&name, &args)
                {
                    self.end_stream(stream_id, true);
                    self.streams.remove(&stream_id);
                    self.session.remove_stream(stream_id);
                }
            }
            "closeStream" if stream != 0 => self.end_stream(stream, true),
            "publish" if stream != 0 => self.on_publish(stream, transaction_id, &args),
            "play" if stream != 0 => self.on_play(stream, transaction_id, &args),
            "receiveAudio" | "receiveVideo" | "pause" | "seek" if stream != 0 => {
                self.on_stream_control(stream, &name, &args)
            }
            "releaseStream" | "FCPublish" | "FCSubscribe" | "FCUnsubscribe" => {
                // Encoders send these before publishing; nothing to do but answer.
                if transaction_id != 0.0 {
                    let _ = self.session.result(transaction_id, vec![Value::Null]);
                }
            }
            "FCUnpublish" => {
                if transaction_id != 0.0 {
                    let _ = self.session.result(transaction_id, vec![Value::Null]);
                }
            }
            "getStreamLength" => {
                let _ = self.session.result(transaction_id, vec![amf::number(0.0)]);
            }
            _ => {
                let call = Call {
                    stream,
                    name,
                    transaction_id,
                    command_object,
                    args,
                    client: self.client.clone(),
                };
                handler.call(call);
            }
        }
    }

    fn on_publish(&mut self, stream: u32, transaction_id: f64, args: &[Value]) {
        let raw_name = args.first().and_then(amf::as_str).unwrap_or("").to_owned();
        let Some(StreamCommand::Publish { name, kind }) = StreamCommand::parse("publish", args)
        else {
            return self.stream_status(
                stream,
                "error",
                status::PUBLISH_BAD_NAME,
                "publish needs a stream name",
            );
        };
        if name.is_empty() {
            return self.stream_status(
                stream,
                "error",
                status::PUBLISH_BAD_NAME,
                "publish needs a stream name",
            );
        }
        let _ = transaction_id;
        self.end_stream(stream, false);
        let request = PublishRequest {
            name: name.clone(),
            raw_name,
            kind,
        };
        let decision = match self.handler.as_mut() {
            Some(h) => h.publish(stream, &request),
            None => return,
        };
        match decision {
            StreamDecision::Accept => {
                if let Some(s) = self.streams.get_mut(&stream) {
                    s.publishing = Some(name.clone());
                }
                let what = match kind {
                    PublishType::Live => "published",
                    PublishType::Record => "recorded",
                    PublishType::Append => "appended",
                };
                info!(conn = self.id, peer = %self.peer, app = self.client.app(), stream = %name, "publish ({what})");
                self.stream_status(
                    stream,
                    "status",
                    status::PUBLISH_START,
                    &format!("{name} is now {what}."),
                );
            }
            StreamDecision::Reject { code, description } => {
                info!(conn = self.id, peer = %self.peer, app = self.client.app(), stream = %name, "publish refused: {code}");
                self.stream_status(stream, "error", &code, &description);
            }
        }
    }

    fn on_play(&mut self, stream: u32, transaction_id: f64, args: &[Value]) {
        let _ = transaction_id;
        let raw_name = args.first().and_then(amf::as_str).unwrap_or("").to_owned();
        let Some(StreamCommand::Play {
            name,
            start,
            duration,
            reset,
        }) = StreamCommand::parse("play", args)
        else {
            return self.stream_status(
                stream,
                "error",
                status::PLAY_STREAM_NOT_FOUND,
                "play needs a stream name",
            );
        };
        self.end_stream(stream, false);
        let request = PlayRequest {
            name: name.clone(),
            raw_name,
            start,
            duration,
            reset,
        };
        let decision = match self.handler.as_mut() {
            Some(h) => h.play(stream, &request),
            None => return,
        };
        match decision {
            StreamDecision::Accept => {
                if let Some(s) = self.streams.get_mut(&stream) {
                    s.playing = Some(name.clone());
                    s.paused = false;
                }
                info!(conn = self.id, peer = %self.peer, app = self.client.app(), stream = %name, "play");
                let _ = self.session.stream_begin(stream);
                if reset {
                    self.stream_status(
                        stream,
                        "status",
                        status::PLAY_RESET,
                        &format!("Playing and resetting {name}."),
                    );
                }
                self.stream_status(
                    stream,
                    "status",
                    status::PLAY_START,
                    &format!("Started playing {name}."),
                );
            }
            StreamDecision::Reject { code, description } => {
                info!(conn = self.id, peer = %self.peer, app = self.client.app(), stream = %name, "play refused: {code}");
                self.stream_status(stream, "error", &code, &description);
            }
        }
    }

    fn on_stream_control(&mut self, stream: u32, name: &str, args: &[Value]) {
        let Some(cmd) = StreamCommand::parse(name, args) else {
            return;
        };
        let Some(s) = self.streams.get_mut(&stream) else {
            return;
        };
        match cmd {
            StreamCommand::ReceiveAudio(on) => s.no_audio = !on,
            StreamCommand::ReceiveVideo(on) => s.no_video = !on,
            StreamCommand::Pause { pause, ms } => {
                if s.playing.is_none() {
                    return;
                }
                s.paused = pause;
                let (code, what) = if pause {
                    (status::PAUSE_NOTIFY, "Paused")
                } else {
                    (status::UNPAUSE_NOTIFY, "Unpaused")
                };
                let name = s.playing.clone().unwrap_or_default();
                let _ = ms;
                self.stream_status(stream, "status", code, &format!("{what} {name}."));
            }
            StreamCommand::Seek { ms } => {
                let ok = s.playing.is_some()
                    && self.handler.as_mut().is_some_and(|h| h.seek(stream, ms));
                if ok {
                    self.stream_status(
                        stream,
                        "status",
                        status::SEEK_NOTIFY,
                        &format!("Seeking {ms} ms."),
                    );
                } else {
                    self.stream_status(
                        stream,
                        "error",
                        status::SEEK_FAILED,
                        "Stream is not seekable",
                    );
                }
            }
            _ => {}
        }
    }

    /// Ends publishing or playing on a stream, telling the handler; with `notify`,
    /// also tells the client (`closeStream`).
    fn end_stream(&mut self, stream: u32, notify: bool) {
        let Some(s) = self.streams.get_mut(&stream) else {
            return;
        };
        let published = s.publishing.take();
        let played = s.playing.take();
        if let Some(name) = published {
            info!(conn = self.id, app = self.client.app(), stream = %name, "unpublish");
            if let Some(h) = self.handler.as_mut() {
                h.unpublish(stream);
            }
            if notify && self.closing.is_none() {
                self.stream_status(
                    stream,
                    "status",
                    status::UNPUBLISH_SUCCESS,
                    &format!("{name} is now unpublished."),
                );
            }
        }
        if played.is_some()
            && let Some(h) = self.handler.as_mut()
        {
            h.stop(stream);
        }
    }

    fn stream_status(&mut self, stream: u32, level: &str, code: &str, description: &str) {
        if let Err(e) = self.session.on_status(stream, level, code, description) {
            debug!(conn = self.id, stream, "cannot send {code}: {e}");
        }
    }

    // ---- the client queue ----

    /// Applies queued application actions to the session. Their bytes stay in the
    /// session until the next [`Conn::pump`], which keeps them in order with the
    /// session's own output; at most about [`OUT_LOW`] bytes are produced per call.
    fn drain_queue(&mut self) {
        let start = self.session.bytes_sent();
        loop {
            let produced = (self.session.bytes_sent() - start) as usize;
            let item = {
                let mut q = self.client.shared.lock();
                if let Some(why) = q.overflow.clone() {
                    drop(q);
                    return self.on_overflow(why);
                }
                if self.out.pending() + produced >= OUT_LOW {
                    // The task asks again once the socket has taken some.
                    return;
                }
                let item = q.items.pop_front();
                match &item {
                    Some(Out::Media { tag, .. }) => q.media_bytes -= tag.payload.len(),
                    Some(_) => q.commands -= 1,
                    None => {}
                }
                item
            };
            let Some(item) = item else { return };
            self.apply(item);
            if self.closing.is_some() {
                return;
            }
        }
    }

    fn apply(&mut self, item: Out) {
        let r: Result<(), ApiError> = match item {
            Out::Accept { description, extra } => {
                self.decision_deadline = None;
                let r = self.session.accept_connect_with(&description, extra);
                if r.is_ok() {
                    info!(conn = self.id, peer = %self.peer, app = self.client.app(), "connected");
                }
                r
            }
            Out::Reject {
                code,
                description,
                extra,
            } => {
                self.decision_deadline = None;
                let r = self.session.reject_connect_with(&code, &description, extra);
                if r.is_ok() {
                    info!(conn = self.id, peer = %self.peer, app = self.client.app(), "connect rejected: {description}");
                    self.reject_deadline = Some(Instant::now() + self.ctx.config.reject_grace);
                }
                r
            }
            Out::Result {
                transaction_id,
                args,
            } => self.session.result(transaction_id, args),
            Out::Error {
                transaction_id,
                info,
            } => self.session.error(transaction_id, info),
            Out::Call {
                method,
                args,
                reply,
            } => match self.session.call(&method, args) {
                Ok(txn) => {
                    self.calls.insert(txn as u64, reply);
                    while self.calls.len() > MAX_PENDING_CALLS {
                        self.calls.pop_first();
                    }
                    Ok(())
                }
                Err(e) => Err(e),
            },
            Out::Status { stream, info } => self.session.on_status_info(stream, info),
            Out::StreamEof { stream } => self.session.stream_eof(stream),
            Out::Media {
                stream,
                tag,
                chunks,
            } => {
                let Some(s) = self.streams.get(&stream) else {
                    return;
                };
                let off = s.playing.is_none()
                    || s.paused
                    || (tag.kind == MediaKind::Audio && s.no_audio)
                    || (tag.kind == MediaKind::Video && s.no_video);
                if off {
                    return;
                }
                match chunks {
                    Some(c) => self.session.send_media_chunked(
                        stream,
                        tag.kind,
                        tag.timestamp,
                        &tag.payload,
                        &c,
                    ),
                    None => self
                        .session
                        .send_media(stream, tag.kind, tag.timestamp, &tag.payload),
                }
            }
            Out::Close => {
                if self.closing.is_none() {
                    debug!(conn = self.id, "closed by the application");
                    self.closing = Some(CloseInfo::ByApplication);
                }
                Ok(())
            }
        };
        if let Err(e) = r {
            debug!(conn = self.id, "application action not applied: {e}");
        }
    }

    /// After the socket is closed: the handler hears about every open stream, then the
    /// close; the client handle refuses everything; pending calls fail.
    fn finish(mut self) {
        {
            let mut q = self.client.shared.lock();
            q.closed = true;
            q.items.clear();
            q.media_bytes = 0;
            q.commands = 0;
        }
        let ids: Vec<u32> = self.streams.keys().copied().collect();
        for id in ids {
            self.end_stream(id, false);
        }
        let reason = self.closing.take().unwrap_or(CloseInfo::ClientClosed);
        if let Some(h) = self.handler.as_mut() {
            h.closed(&reason);
        }
        for (_, tx) in std::mem::take(&mut self.calls) {
            let _ = tx.send(Err(CallError::Closed));
        }
        debug!(conn = self.id, peer = %self.peer, "connection finished: {reason:?}");
    }
}
