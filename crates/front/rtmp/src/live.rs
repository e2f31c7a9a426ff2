//! The default application: the original `rtmp.py` media server (seed spec §4.4).
//!
//! * **Live relay.** Within a scope (the full `app` path, e.g. `live` or `live/room1`)
//!   one publisher per stream name, any number of players. A second publisher of a
//!   name gets `NetStream.Publish.BadName`. A player that joins late gets the stream's
//!   `onMetaData` and its last AVC and AAC sequence headers first, then media from the
//!   next video key frame on (audio at once); timestamps start near 0 for every player.
//!   Players that join before the publisher wait (`NetStream.Play.PublishNotify` when it
//!   starts, `UnpublishNotify` when it stops). Slow players are handled by the server's
//!   bounded queues ([`QueueLimits`](crate::QueueLimits)).
//! * **Recording.** `publish(name, "record")` writes `ROOT/<instance>/<name>.flv` anew,
//!   `"append"` continues an existing file (timestamps continue after its last tag).
//!   Audio, video and `onMetaData` are written, with timestamps relative to the first
//!   recorded message. Writing happens on its own task behind a bounded channel: a
//!   disk that cannot keep up loses tags (with a log line), never memory.
//! * **Playback.** `play(name, start)` with no live publisher (or `start ≥ 0`) plays
//!   `ROOT/<instance>/<name>.flv` in real time from `start` seconds, ending with
//!   `NetStream.Play.Stop`; `seek` restarts it at the new position. A missing file
//!   gets `NetStream.Play.StreamNotFound` (for `start ≥ 0`, or `start = -2` when
//!   nothing is published under the name either).
//!
//! `start` follows the RTMP spec and the clients: -2 (and ffmpeg's -2000) is "live,
//! else recorded", -1 (and librtmp's -1000) is "live only", ≥ 0 is "recorded from
//! there". Names may contain `/` between path segments of letters, digits, `.`, `-`,
//! `_`; anything else (`..`, absolute paths) is refused for files.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use rtmp::flv::{self, FlvReader};
use rtmp::{ChunkedBody, MediaKind, PublishType, status};
use tokio::io::{AsyncReadExt, AsyncSeekExt, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tracing::{info, warn};

use crate::app::{
    Application, ConnectRequest, Connection, MediaTag, PlayRequest, PublishRequest, StreamDecision,
};
use crate::client::Client;

/// An AMF0 data body that starts with the string "onMetaData".
const ON_META_DATA: &[u8] = b"\x02\x00\x0aonMetaData";
/// Tags waiting for the recorder's disk writes.
const RECORD_QUEUE: usize = 4096;
/// How far ahead of real time file playback sends.
const PLAYBACK_LEAD: Duration = Duration::from_millis(500);

/// The live relay with FLV recording and playback; see the module docs.
pub struct LiveApp {
    inner: Arc<Inner>,
}

/// (scope, stream name).
type StreamKey = (String, String);

struct Inner {
    root: Option<PathBuf>,
    /// Streams by (scope, name).
    streams: Mutex<HashMap<StreamKey, Arc<Mutex<LiveStream>>>>,
}

impl LiveApp {
    /// A relay whose recordings and files live under `root` (`None`: no recording,
    /// no file playback).
    pub fn new(root: Option<PathBuf>) -> LiveApp {
        LiveApp {
            inner: Arc::new(Inner {
                root,
                streams: Mutex::new(HashMap::new()),
            }),
        }
    }
}

impl Application for LiveApp {
    fn connect(&self, request: ConnectRequest, client: Client) -> Box<dyn Connection> {
        let _ = client.accept();
        let scope = request
            .app
            .split('?')
            .next()
            .unwrap_or("")
            .trim_matches('/')
            .to_owned();
        Box::new(LiveConn {
            inner: self.inner.clone(),
            client,
            scope,
            instance: request.instance,
            publishing: HashMap::new(),
            playing: HashMap::new(),
        })
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

#[derive(Default)]
struct LiveStream {
    /// The publishing connection's id.
    publisher: Option<u64>,
    players: Vec<Player>,
    meta: Option<Bytes>,
    video_header: Option<Bytes>,
    audio_header: Option<Bytes>,
    recorder: Option<mpsc::Sender<MediaTag>>,
    record_dropped: u64,
}

struct Player {
    client: Client,
    stream: u32,
    /// Timestamp of the first media message this player got (its zero).
    base: Option<u32>,
    /// Video waits for a key frame.
    wait_key: bool,
}

impl Player {
    fn new(client: Client, stream: u32) -> Player {
        Player {
            client,
            stream,
            base: None,
            wait_key: true,
        }
    }

    /// Sends a relayed tag, whose chunks all players share; false if the player is
    /// gone.
    fn relay(&mut self, tag: &MediaTag, chunks: &Arc<OnceLock<ChunkedBody>>) -> bool {
        if tag.kind == MediaKind::Video && !tag.is_sequence_header() {
            if self.wait_key && !tag.is_keyframe() {
                return true;
            }
            self.wait_key = false;
        }
        let base = *self.base.get_or_insert(tag.timestamp);
        let t = MediaTag {
            // Audio may run slightly ahead of the first video key frame: clamp at 0.
            timestamp: tag.timestamp.saturating_sub(base),
            ..tag.clone()
        };
        self.client.send_relayed(self.stream, t, chunks).is_ok()
    }

    /// Codec headers and metadata for a player that joins a running stream.
    fn prime(&mut self, s: &LiveStream) {
        for (kind, body) in [
            (MediaKind::Data, &s.meta),
            (MediaKind::Video, &s.video_header),
            (MediaKind::Audio, &s.audio_header),
        ] {
            if let Some(b) = body {
                let _ = self.client.send_media(
                    self.stream,
                    MediaTag {
                        kind,
                        timestamp: 0,
                        payload: b.clone(),
                    },
                );
            }
        }
    }
}

enum Playing {
    Live(String, Arc<Mutex<LiveStream>>),
    File {
        path: PathBuf,
        request: PlayRequest,
        task: JoinHandle<()>,
    },
}

struct LiveConn {
    inner: Arc<Inner>,
    client: Client,
    scope: String,
    instance: String,
    publishing: HashMap<u32, (String, Arc<Mutex<LiveStream>>)>,
    playing: HashMap<u32, Playing>,
}

impl LiveConn {
    fn entry(&self, name: &str) -> Arc<Mutex<LiveStream>> {
        lock(&self.inner.streams)
            .entry((self.scope.clone(), name.to_owned()))
            .or_default()
            .clone()
    }

    /// Drops the map entry of a stream nobody uses any more.
    fn forget_if_unused(&self, name: &str) {
        let mut map = lock(&self.inner.streams);
        let key = (self.scope.clone(), name.to_owned());
        if let Some(s) = map.get(&key) {
            let unused = {
                let s = lock(s);
                s.publisher.is_none() && s.players.is_empty()
            };
            if unused {
                map.remove(&key);
            }
        }
    }

    /// `ROOT/<instance>/<name>.flv`, if there is a root and the name is safe.
    fn file_path(&self, name: &str) -> Option<PathBuf> {
        let root = self.inner.root.as_ref()?;
        let name = name.strip_prefix("flv:").unwrap_or(name);
        if !safe_path(name) || !(self.instance.is_empty() || safe_path(&self.instance)) {
            return None;
        }
        let mut p = root.join(&self.instance);
        if name.ends_with(".flv") {
            p.push(name);
        } else {
            p.push(format!("{name}.flv"));
        }
        Some(p)
    }

    fn start_file(
        &self,
        stream: u32,
        path: PathBuf,
        request: PlayRequest,
        seek_ms: u64,
    ) -> Playing {
        let client = self.client.clone();
        let task_path = path.clone();
        let duration_ms = (request.duration >= 0.0).then_some((request.duration * 1000.0) as u64);
        let task = tokio::spawn(async move {
            play_file(client, stream, task_path, seek_ms, duration_ms).await;
        });
        Playing::File {
            path,
            request,
            task,
        }
    }
}

impl Connection for LiveConn {
    fn publish(&mut self, stream: u32, request: &PublishRequest) -> StreamDecision {
        let recording = request.kind != PublishType::Live;
        let path = if recording {
            match self.file_path(&request.name) {
                Some(p) => Some(p),
                None => {
                    return StreamDecision::reject(
                        "NetStream.Record.NoAccess",
                        format!("Cannot record {}", request.name),
                    );
                }
            }
        } else {
            None
        };
        let entry = self.entry(&request.name);
        {
            let mut s = lock(&entry);
            if s.publisher.is_some() {
                drop(s);
                return StreamDecision::bad_name("Stream name already in use");
            }
            s.publisher = Some(self.client.id());
            s.meta = None;
            s.video_header = None;
            s.audio_header = None;
            s.record_dropped = 0;
            if let Some(path) = path {
                let (tx, rx) = mpsc::channel(RECORD_QUEUE);
                let append = request.kind == PublishType::Append;
                tokio::spawn(record(path, append, rx));
                s.recorder = Some(tx);
            }
            s.players.retain(|p| {
                p.client
                    .on_status(
                        p.stream,
                        "status",
                        status::PLAY_PUBLISH_NOTIFY,
                        &format!("{} is now published.", request.name),
                    )
                    .is_ok()
            });
            for p in &mut s.players {
                p.base = None;
                p.wait_key = true;
            }
        }
        self.publishing
            .insert(stream, (request.name.clone(), entry));
        StreamDecision::Accept
    }

    fn media(&mut self, stream: u32, mut tag: MediaTag) {
        let Some((_, entry)) = self.publishing.get(&stream) else {
            return;
        };
        if tag.kind == MediaKind::Data {
            // ffmpeg and OBS send `@setDataFrame("onMetaData", {...})`: players and
            // files get `onMetaData({...})`.
            const SET_DATA_FRAME: &[u8] = b"\x02\x00\x0d@setDataFrame";
            if tag.payload.starts_with(SET_DATA_FRAME) {
                tag.payload = tag.payload.slice(SET_DATA_FRAME.len()..);
            }
        }
        let mut s = lock(entry);
        match tag.kind {
            MediaKind::Data if tag.payload.starts_with(ON_META_DATA) => {
                s.meta = Some(tag.payload.clone());
            }
            MediaKind::Video if flv::is_avc_sequence_header(&tag.payload) => {
                s.video_header = Some(tag.payload.clone());
            }
            MediaKind::Audio if flv::is_aac_sequence_header(&tag.payload) => {
                s.audio_header = Some(tag.payload.clone());
            }
            _ => {}
        }
        if let Some(rec) = &s.recorder
            && rec.try_send(tag.clone()).is_err()
        {
            s.record_dropped += 1;
            if s.record_dropped.is_power_of_two() {
                warn!(
                    conn = self.client.id(),
                    dropped = s.record_dropped,
                    "recording cannot keep up; tags dropped"
                );
            }
        }
        // Cut into chunks once, by the first player that writes it, for all of them.
        let chunks = Arc::new(OnceLock::new());
        s.players.retain_mut(|p| p.relay(&tag, &chunks));
    }

    fn unpublish(&mut self, stream: u32) {
        let Some((name, entry)) = self.publishing.remove(&stream) else {
            return;
        };
        {
            let mut s = lock(&entry);
            s.publisher = None;
            s.recorder = None;
            s.meta = None;
            s.video_header = None;
            s.audio_header = None;
            for p in &s.players {
                let _ = p.client.on_status(
                    p.stream,
                    "status",
                    status::PLAY_UNPUBLISH_NOTIFY,
                    &format!("{name} is now unpublished."),
                );
            }
        }
        self.forget_if_unused(&name);
    }

    fn play(&mut self, stream: u32, request: &PlayRequest) -> StreamDecision {
        let recorded_only = request.start >= 0.0;
        let live_only = request.start == -1.0 || request.start == -1000.0;
        if !recorded_only {
            let entry = self.entry(&request.name);
            let mut s = lock(&entry);
            if s.publisher.is_some() || live_only {
                let mut p = Player::new(self.client.clone(), stream);
                if s.publisher.is_some() {
                    p.prime(&s);
                }
                s.players.push(p);
                drop(s);
                self.playing
                    .insert(stream, Playing::Live(request.name.clone(), entry));
                return StreamDecision::Accept;
            }
        }
        let file = self.file_path(&request.name).filter(|p| p.is_file());
        match file {
            Some(path) => {
                let seek = (request.start.max(0.0) * 1000.0) as u64;
                let playing = self.start_file(stream, path, request.clone(), seek);
                self.playing.insert(stream, playing);
                StreamDecision::Accept
            }
            None if recorded_only => StreamDecision::not_found(&request.name),
            None => {
                // "any" with nothing published and no file: nothing to wait for that we
                // know of, so say so (the original waited silently).
                self.forget_if_unused(&request.name);
                StreamDecision::not_found(&request.name)
            }
        }
    }

    fn seek(&mut self, stream: u32, ms: f64) -> bool {
        let Some(Playing::File {
            path,
            request,
            task,
        }) = self.playing.remove(&stream)
        else {
            return false;
        };
        task.abort();
        let playing = self.start_file(stream, path, request, ms.max(0.0) as u64);
        self.playing.insert(stream, playing);
        true
    }

    fn stop(&mut self, stream: u32) {
        match self.playing.remove(&stream) {
            Some(Playing::Live(name, entry)) => {
                let id = self.client.id();
                lock(&entry)
                    .players
                    .retain(|p| !(p.client.id() == id && p.stream == stream));
                self.forget_if_unused(&name);
            }
            Some(Playing::File { task, .. }) => task.abort(),
            None => {}
        }
    }
}

/// A name that can become a path under the root: segments of `[A-Za-z0-9._-]`, not
/// `.` or `..`, separated by single `/`.
fn safe_path(name: &str) -> bool {
    !name.is_empty()
        && name.split('/').all(|seg| {
            !seg.is_empty()
                && seg != "."
                && seg != ".."
                && seg
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"._-@".contains(&b))
        })
}

/// Writes a published stream to an FLV file until the channel closes.
async fn record(path: PathBuf, append: bool, mut rx: mpsc::Receiver<MediaTag>) {
    let result: std::io::Result<()> = async {
        if let Some(dir) = path.parent() {
            tokio::fs::create_dir_all(dir).await?;
        }
        // Append: continue after the last complete tag of the existing file.
        let mut offset = 0u32;
        let mut existing = 0u64;
        if append && let Ok(bytes) = tokio::fs::read(&path).await {
            let mut r = FlvReader::new();
            r.push(&bytes);
            let mut last = None;
            while let Ok(Some(t)) = r.next_tag() {
                last = Some(t.timestamp);
            }
            if r.header().is_some() {
                existing = (bytes.len() - r.truncated()) as u64;
                offset = last.map_or(0, |t| t.saturating_add(20));
            }
        }
        let mut file = tokio::fs::OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(existing == 0)
            .open(&path)
            .await?;
        if existing > 0 {
            // Cut a torn last tag before appending.
            file.set_len(existing).await?;
            file.seek(std::io::SeekFrom::End(0)).await?;
        } else {
            file.write_all(&flv::file_header(true, true)).await?;
        }
        info!(file = %path.display(), append, "recording");
        let mut first: Option<u32> = None;
        // One onMetaData per file: the first publisher's (an appended part's would be
        // read as a second stream description).
        let mut has_meta = existing > 0;
        let mut buf = Vec::with_capacity(64 * 1024);
        let mut add = |buf: &mut Vec<u8>, tag: MediaTag| {
            if tag.kind == MediaKind::Data && tag.payload.starts_with(ON_META_DATA) {
                if has_meta {
                    return;
                }
                has_meta = true;
            }
            let base = *first.get_or_insert(tag.timestamp);
            let ts = offset.saturating_add(tag.timestamp.saturating_sub(base));
            flv::write_tag(buf, tag.kind, ts, &tag.payload);
        };
        while let Some(tag) = rx.recv().await {
            add(&mut buf, tag);
            // Batch what is already queued into one write.
            while buf.len() < 256 * 1024 {
                match rx.try_recv() {
                    Ok(tag) => add(&mut buf, tag),
                    Err(_) => break,
                }
            }
            file.write_all(&buf).await?;
            buf.clear();
        }
        file.flush().await?;
        info!(file = %path.display(), "recording closed");
        Ok(())
    }
    .await;
    if let Err(e) = result {
        warn!(file = %path.display(), "recording failed: {e}");
    }
}

/// Plays an FLV file in real time from `seek_ms`, then `NetStream.Play.Stop`.
async fn play_file(
    client: Client,
    stream: u32,
    path: PathBuf,
    seek_ms: u64,
    duration_ms: Option<u64>,
) {
    match send_file(&client, stream, &path, seek_ms, duration_ms).await {
        Ok(()) => {
            let _ = client.stream_eof(stream);
            let _ = client.on_status(stream, "status", status::PLAY_STOP, "File ended");
        }
        Err(e) => {
            warn!(conn = client.id(), file = %path.display(), "playback failed: {e}");
            let _ = client.on_status(stream, "error", status::FAILED, "Cannot read the file");
        }
    }
}

async fn send_file(
    client: &Client,
    stream: u32,
    path: &Path,
    seek_ms: u64,
    duration_ms: Option<u64>,
) -> std::io::Result<()> {
    let mut file = tokio::fs::File::open(path).await?;
    let mut reader = FlvReader::new();
    let mut buf = vec![0u8; 64 * 1024];
    let start = tokio::time::Instant::now();
    // Before the seek point only codec headers and metadata are sent (the decoder needs
    // them); media starts at the first key frame at or after it when there is video.
    let mut first: Option<u64> = None;
    let mut seen_video_key = false;
    loop {
        let tag = match reader.next_tag() {
            Ok(Some(t)) => t,
            Ok(None) => {
                let n = file.read(&mut buf).await?;
                if n == 0 {
                    return Ok(());
                }
                reader.push(&buf[..n]);
                continue;
            }
            Err(e) => {
                return Err(std::io::Error::new(std::io::ErrorKind::InvalidData, e));
            }
        };
        let ts = u64::from(tag.timestamp);
        let header = tag.kind == MediaKind::Data || flv::is_sequence_header(tag.kind, &tag.body);
        if ts < seek_ms && !header {
            continue;
        }
        if tag.kind == MediaKind::Video && !header && !seen_video_key {
            if !flv::is_keyframe(&tag.body) {
                continue;
            }
            seen_video_key = true;
        }
        let t0 = if header {
            first.unwrap_or(ts.max(seek_ms))
        } else {
            *first.get_or_insert(ts)
        };
        let rel = ts.saturating_sub(t0);
        if duration_ms.is_some_and(|d| rel > d) {
            return Ok(());
        }
        let due = start + Duration::from_millis(rel);
        tokio::time::sleep_until(due.checked_sub(PLAYBACK_LEAD).unwrap_or(start)).await;
        let out = MediaTag {
            kind: tag.kind,
            timestamp: ts.min(u64::from(u32::MAX)) as u32,
            payload: tag.body,
        };
        if client.send_media(stream, out).is_err() {
            return Ok(());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_that_may_become_paths() {
        assert!(safe_path("cam"));
        assert!(safe_path("room1/cam-2_x.v1"));
        assert!(!safe_path(""));
        assert!(!safe_path("../etc/passwd"));
        assert!(!safe_path("a/../b"));
        assert!(!safe_path("/abs"));
        assert!(!safe_path("a//b"));
        assert!(!safe_path("a\\b"));
        assert!(!safe_path("a b"));
        assert!(!safe_path("."));
    }
}
