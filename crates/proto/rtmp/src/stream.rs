//! Typed views of the NetConnection/NetStream commands a server acts on (RTMP spec
//! §7.2.1.3, §7.2.2) and the `onStatus` codes Flash clients expect.
//!
//! The session hands every command to the application by name; [`StreamCommand::parse`]
//! turns the usual ones into values, with the defaults the specification and the
//! encoders (Flash, ffmpeg, OBS via librtmp) rely on.

use crate::amf::{Value, as_bool, as_f64, as_str};

/// `onStatus` and `_result` codes.
pub mod status {
    /// Connect accepted.
    pub const CONNECT_SUCCESS: &str = "NetConnection.Connect.Success";
    /// Connect refused.
    pub const CONNECT_REJECTED: &str = "NetConnection.Connect.Rejected";
    /// A call failed.
    pub const CALL_FAILED: &str = "NetConnection.Call.Failed";
    /// Publishing started.
    pub const PUBLISH_START: &str = "NetStream.Publish.Start";
    /// The name is already published in this scope.
    pub const PUBLISH_BAD_NAME: &str = "NetStream.Publish.BadName";
    /// Publishing stopped.
    pub const UNPUBLISH_SUCCESS: &str = "NetStream.Unpublish.Success";
    /// Playlist reset (sent before `Play.Start` when `reset` is true).
    pub const PLAY_RESET: &str = "NetStream.Play.Reset";
    /// Playing started.
    pub const PLAY_START: &str = "NetStream.Play.Start";
    /// Playing stopped (end of file).
    pub const PLAY_STOP: &str = "NetStream.Play.Stop";
    /// Nothing to play under that name.
    pub const PLAY_STREAM_NOT_FOUND: &str = "NetStream.Play.StreamNotFound";
    /// A live stream's publisher started.
    pub const PLAY_PUBLISH_NOTIFY: &str = "NetStream.Play.PublishNotify";
    /// A live stream's publisher stopped.
    pub const PLAY_UNPUBLISH_NOTIFY: &str = "NetStream.Play.UnpublishNotify";
    /// Seek done.
    pub const SEEK_NOTIFY: &str = "NetStream.Seek.Notify";
    /// Seek not possible.
    pub const SEEK_FAILED: &str = "NetStream.Seek.Failed";
    /// Paused.
    pub const PAUSE_NOTIFY: &str = "NetStream.Pause.Notify";
    /// Resumed.
    pub const UNPAUSE_NOTIFY: &str = "NetStream.Unpause.Notify";
    /// A stream failed (e.g. a player too slow to keep up).
    pub const FAILED: &str = "NetStream.Failed";
}

/// How a stream is published (`publish(name, type)`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PublishType {
    /// Not recorded (the default).
    Live,
    /// Recorded to a new file.
    Record,
    /// Recorded, appended to an existing file (also `appendWithGap`).
    Append,
}

/// A command the server side of the RTMP spec gives meaning to.
#[derive(Debug, Clone, PartialEq)]
pub enum StreamCommand {
    /// `createStream()` on stream 0.
    CreateStream,
    /// `publish(name[, type])`; a `?query` suffix is removed from the name.
    Publish {
        /// Stream name.
        name: String,
        /// Live, record or append.
        kind: PublishType,
    },
    /// `play(name[, start[, duration[, reset]]])`; a `?query` suffix is removed.
    Play {
        /// Stream name.
        name: String,
        /// -2 (default): live, else a recording; -1: live only; ≥ 0: a recording from
        /// that many seconds.
        start: f64,
        /// -1 (default): to the end.
        duration: f64,
        /// Flush the playlist (default true).
        reset: bool,
    },
    /// `closeStream()` on the stream.
    CloseStream,
    /// `deleteStream(id)` on stream 0.
    DeleteStream {
        /// Stream to delete.
        stream_id: u32,
    },
    /// `receiveAudio(flag)`.
    ReceiveAudio(bool),
    /// `receiveVideo(flag)`.
    ReceiveVideo(bool),
    /// `seek(ms)`.
    Seek {
        /// Position in milliseconds.
        ms: f64,
    },
    /// `pause(flag, ms)`.
    Pause {
        /// True to pause, false to resume.
        pause: bool,
        /// Position in milliseconds.
        ms: f64,
    },
    /// `FCPublish(name)` (encoders, before publish).
    FcPublish {
        /// Stream name.
        name: String,
    },
    /// `FCUnpublish(name)`.
    FcUnpublish {
        /// Stream name.
        name: String,
    },
    /// `releaseStream(name)`.
    ReleaseStream {
        /// Stream name.
        name: String,
    },
}

impl StreamCommand {
    /// Parses a command by name from its arguments (the values after the command
    /// object); `None` for other names or a missing required argument.
    pub fn parse(name: &str, args: &[Value]) -> Option<StreamCommand> {
        let text = |i: usize| args.get(i).and_then(as_str);
        let num = |i: usize| args.get(i).and_then(as_f64);
        let flag = |i: usize| args.get(i).and_then(as_bool);
        Some(match name {
            "createStream" => StreamCommand::CreateStream,
            "publish" => StreamCommand::Publish {
                name: strip_query(text(0)?),
                kind: match text(1) {
                    Some("record") => PublishType::Record,
                    Some("append") | Some("appendWithGap") => PublishType::Append,
                    _ => PublishType::Live,
                },
            },
            "play" => StreamCommand::Play {
                name: strip_query(text(0)?),
                start: num(1).unwrap_or(-2.0),
                duration: num(2).unwrap_or(-1.0),
                reset: flag(3).unwrap_or(true),
            },
            "closeStream" => StreamCommand::CloseStream,
            "deleteStream" => {
                let id = num(0)?;
                if !(0.0..=f64::from(u32::MAX)).contains(&id) {
                    return None;
                }
                StreamCommand::DeleteStream {
                    stream_id: id as u32,
                }
            }
            "receiveAudio" => StreamCommand::ReceiveAudio(flag(0).unwrap_or(true)),
            "receiveVideo" => StreamCommand::ReceiveVideo(flag(0).unwrap_or(true)),
            "seek" => StreamCommand::Seek { ms: num(0)? },
            "pause" => StreamCommand::Pause {
                pause: flag(0).unwrap_or(true),
                ms: num(1).unwrap_or(0.0),
            },
            "FCPublish" => StreamCommand::FcPublish {
                name: strip_query(text(0)?),
            },
            "FCUnpublish" => StreamCommand::FcUnpublish {
                name: strip_query(text(0)?),
            },
            "releaseStream" => StreamCommand::ReleaseStream {
                name: strip_query(text(0)?),
            },
            _ => return None,
        })
    }
}

fn strip_query(name: &str) -> String {
    name.split_once('?').map_or(name, |(n, _)| n).to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::amf::{number, string};

    #[test]
    fn parses_the_usual_commands() {
        assert_eq!(
            StreamCommand::parse("publish", &[string("cam?token=1"), string("record")]),
            Some(StreamCommand::Publish {
                name: "cam".into(),
                kind: PublishType::Record
            })
        );
        assert_eq!(
            StreamCommand::parse("publish", &[string("local")]),
            Some(StreamCommand::Publish {
                name: "local".into(),
                kind: PublishType::Live
            })
        );
        assert_eq!(
            StreamCommand::parse("play", &[string("remote")]),
            Some(StreamCommand::Play {
                name: "remote".into(),
                start: -2.0,
                duration: -1.0,
                reset: true
            })
        );
        assert_eq!(
            StreamCommand::parse(
                "play",
                &[
                    string("x"),
                    number(0.0),
                    number(10.0),
                    Value::Boolean(false)
                ]
            ),
            Some(StreamCommand::Play {
                name: "x".into(),
                start: 0.0,
                duration: 10.0,
                reset: false
            })
        );
        assert_eq!(
            StreamCommand::parse("deleteStream", &[number(1.0)]),
            Some(StreamCommand::DeleteStream { stream_id: 1 })
        );
        assert_eq!(
            StreamCommand::parse("receiveVideo", &[Value::Boolean(false)]),
            Some(StreamCommand::ReceiveVideo(false))
        );
        assert_eq!(
            StreamCommand::parse("pause", &[Value::Boolean(true), number(1500.0)]),
            Some(StreamCommand::Pause {
                pause: true,
                ms: 1500.0
            })
        );
        assert_eq!(
            StreamCommand::parse("FCPublish", &[string("s")]),
            Some(StreamCommand::FcPublish { name: "s".into() })
        );
        assert_eq!(StreamCommand::parse("publish", &[]), None);
        assert_eq!(StreamCommand::parse("deleteStream", &[number(-1.0)]), None);
        assert_eq!(StreamCommand::parse("invite", &[string("bob")]), None);
    }
}
