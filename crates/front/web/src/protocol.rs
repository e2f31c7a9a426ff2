//! The JSON messages of `docs/web-api.md`: parsing what a client sends (never panics,
//! every defect is a message for the client) and printing what the server sends.

use serde_json::{Map, Value, json};

/// What one text frame asked for.
#[derive(Clone, Debug, PartialEq)]
pub enum Request {
    Connect {
        authname: Option<String>,
        authpass: Option<String>,
        displayname: Option<String>,
    },
    Invite {
        dest: String,
        codecs: Vec<String>,
        sdp: Option<String>,
    },
    Accept {
        codecs: Vec<String>,
        sdp: Option<String>,
    },
    Reject {
        reason: Option<String>,
    },
    Bye,
    SendDtmf(char),
    Hold(bool),
    Ping,
}

/// A request with its id (echoed in the result; `null` when absent).
#[derive(Clone, Debug, PartialEq)]
pub struct Incoming {
    pub id: Value,
    pub request: Request,
}

/// Why a frame is not a request. `Error` becomes an `error` event, `BadArgs` the
/// request's `result` with an error.
#[derive(Clone, Debug, PartialEq)]
pub enum Reject {
    /// Not JSON, not an object, no type, unknown type: `{"type":"error"}`.
    Error { id: Option<Value>, error: String },
    /// A known request with bad arguments: `{"type":"result","id":..,"error":..}`.
    BadArgs { id: Value, error: String },
}

fn string(obj: &Map<String, Value>, key: &str) -> Result<Option<String>, String> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(format!("{key} must be a string")),
    }
}

fn codecs(obj: &Map<String, Value>) -> Result<Vec<String>, String> {
    match obj.get("codecs") {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(a)) => a
            .iter()
            .map(|v| match v {
                Value::String(s) => Ok(s.to_ascii_lowercase()),
                _ => Err("codecs must be an array of strings".to_string()),
            })
            .collect(),
        // A single string with spaces, as the command-line phone takes it.
        Some(Value::String(s)) => Ok(s
            .split([' ', ','])
            .filter(|c| !c.is_empty())
            .map(str::to_ascii_lowercase)
            .collect()),
        Some(_) => Err("codecs must be an array of strings".to_string()),
    }
}

/// Parses one text frame.
pub fn parse(text: &str) -> Result<Incoming, Reject> {
    let value: Value = serde_json::from_str(text).map_err(|e| Reject::Error {
        id: None,
        error: format!("malformed JSON: {e}"),
    })?;
    let Value::Object(obj) = value else {
        return Err(Reject::Error {
            id: None,
            error: "a message must be a JSON object".into(),
        });
    };
    let id = match obj.get("id") {
        None => Value::Null,
        Some(v @ (Value::Null | Value::Number(_) | Value::String(_))) => v.clone(),
        Some(_) => {
            return Err(Reject::Error {
                id: None,
                error: "id must be a number or a string".into(),
            });
        }
    };
    let Some(kind) = obj.get("type") else {
        return Err(Reject::Error {
            id: Some(id),
            error: "message has no \"type\"".into(),
        });
    };
    let Value::String(kind) = kind else {
        return Err(Reject::Error {
            id: Some(id),
            error: "\"type\" must be a string".into(),
        });
    };
    let bad = |error: String| Reject::BadArgs {
        id: id.clone(),
        error,
    };
    let request = match kind.as_str() {
        "connect" => Request::Connect {
            authname: string(&obj, "authname").map_err(bad)?,
            authpass: string(&obj, "authpass").map_err(bad)?,
            displayname: string(&obj, "displayname").map_err(bad)?,
        },
        "invite" => {
            let dest = string(&obj, "dest")
                .map_err(bad)?
                .filter(|d| !d.trim().is_empty())
                .ok_or_else(|| bad("invite needs a dest".into()))?;
            Request::Invite {
                dest,
                codecs: codecs(&obj).map_err(bad)?,
                sdp: string(&obj, "sdp").map_err(bad)?,
            }
        }
        "accept" => Request::Accept {
            codecs: codecs(&obj).map_err(bad)?,
            sdp: string(&obj, "sdp").map_err(bad)?,
        },
        "reject" => Request::Reject {
            reason: string(&obj, "reason").map_err(bad)?,
        },
        "bye" => Request::Bye,
        "sendDTMF" => {
            let digit = string(&obj, "digit").map_err(bad)?.unwrap_or_default();
            let mut chars = digit.chars();
            match (chars.next(), chars.next()) {
                (Some(c), None) if is_dtmf(c) => Request::SendDtmf(c.to_ascii_uppercase()),
                _ => return Err(bad("sendDTMF needs one digit of 0-9 * # A-D".into())),
            }
        }
        "hold" => match obj.get("hold") {
            Some(Value::Bool(b)) => Request::Hold(*b),
            None => Request::Hold(true),
            Some(_) => return Err(bad("hold must be true or false".into())),
        },
        "ping" => Request::Ping,
        other => {
            let mut shown: String = other.chars().take(40).collect();
            if shown.len() < other.len() {
                shown.push('…');
            }
            return Err(Reject::Error {
                id: Some(id),
                error: format!("unknown message type {shown:?}"),
            });
        }
    };
    Ok(Incoming { id, request })
}

fn is_dtmf(c: char) -> bool {
    matches!(c, '0'..='9' | '*' | '#' | 'A'..='D' | 'a'..='d')
}

/// `{"type":"result","id":..}` plus `fields`.
pub fn result(id: &Value, fields: &[(&str, Value)]) -> String {
    let mut m = Map::new();
    m.insert("type".into(), json!("result"));
    m.insert("id".into(), id.clone());
    for (k, v) in fields {
        m.insert((*k).into(), v.clone());
    }
    Value::Object(m).to_string()
}

pub fn result_error(id: &Value, error: &str) -> String {
    result(id, &[("error", json!(error))])
}

/// `{"type":"error","error":..}`, with the id when the message had one.
pub fn error(id: Option<&Value>, error: &str) -> String {
    match id {
        Some(id) if !id.is_null() => json!({"type": "error", "id": id, "error": error}),
        _ => json!({"type": "error", "error": error}),
    }
    .to_string()
}

/// Any other server message: `{"type": kind, ...fields}`.
pub fn event(kind: &str, fields: &[(&str, Value)]) -> String {
    let mut m = Map::new();
    m.insert("type".into(), json!(kind));
    for (k, v) in fields {
        m.insert((*k).into(), v.clone());
    }
    Value::Object(m).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(text: &str) -> String {
        match parse(text) {
            Err(Reject::Error { error, .. }) => error,
            other => panic!("{text}: {other:?}"),
        }
    }

    fn bad_args(text: &str) -> (Value, String) {
        match parse(text) {
            Err(Reject::BadArgs { id, error }) => (id, error),
            other => panic!("{text}: {other:?}"),
        }
    }

    #[test]
    fn every_request_of_the_doc_parses() {
        let r = parse(r#"{"type":"connect","authname":"alice","authpass":"secret","displayname":"Alice Smith"}"#).unwrap();
        assert_eq!(r.id, Value::Null);
        assert_eq!(
            r.request,
            Request::Connect {
                authname: Some("alice".into()),
                authpass: Some("secret".into()),
                displayname: Some("Alice Smith".into())
            }
        );
        let r = parse(r#"{"type":"invite","id":1,"dest":"bob@example.com","codecs":["opus","PCMU","dtmf"],"sdp":"v=0"}"#).unwrap();
        assert_eq!(r.id, json!(1));
        assert_eq!(
            r.request,
            Request::Invite {
                dest: "bob@example.com".into(),
                codecs: vec!["opus".into(), "pcmu".into(), "dtmf".into()],
                sdp: Some("v=0".into())
            }
        );
        let r = parse(r#"{"type":"accept","id":"a","codecs":"pcmu opus"}"#).unwrap();
        assert_eq!(r.id, json!("a"));
        assert_eq!(
            r.request,
            Request::Accept {
                codecs: vec!["pcmu".into(), "opus".into()],
                sdp: None
            }
        );
        assert_eq!(
            parse(r#"{"type":"reject","reason":"486 Busy Here"}"#)
                .unwrap()
                .request,
            Request::Reject {
                reason: Some("486 Busy Here".into())
            }
        );
        assert_eq!(parse(r#"{"type":"bye"}"#).unwrap().request, Request::Bye);
        assert_eq!(
            parse(r##"{"type":"sendDTMF","digit":"#"}"##)
                .unwrap()
                .request,
            Request::SendDtmf('#')
        );
        assert_eq!(
            parse(r#"{"type":"sendDTMF","digit":"b"}"#).unwrap().request,
            Request::SendDtmf('B')
        );
        assert_eq!(
            parse(r#"{"type":"hold","hold":false}"#).unwrap().request,
            Request::Hold(false)
        );
        assert_eq!(
            parse(r#"{"type":"ping","id":8}"#).unwrap().request,
            Request::Ping
        );
    }

    #[test]
    fn malformed_input_gets_a_message_not_a_panic() {
        assert!(err("").starts_with("malformed JSON"));
        assert!(err("{").starts_with("malformed JSON"));
        assert!(err("\u{0}\u{ffff}").starts_with("malformed JSON"));
        assert_eq!(err("[1,2]"), "a message must be a JSON object");
        assert_eq!(err("42"), "a message must be a JSON object");
        assert_eq!(err(r#"{"id":3}"#), "message has no \"type\"");
        assert_eq!(err(r#"{"type":7}"#), "\"type\" must be a string");
        assert_eq!(
            err(r#"{"type":"x","id":[1]}"#),
            "id must be a number or a string"
        );
        assert_eq!(
            err(r#"{"type":"dance","id":9}"#),
            "unknown message type \"dance\""
        );
        assert!(err(&format!(r#"{{"type":"{}"}}"#, "x".repeat(1000))).len() < 100);
        // Deep nesting is refused by serde_json's recursion limit, not a stack overflow.
        let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
        assert!(err(&deep).starts_with("malformed JSON"));
    }

    #[test]
    fn bad_arguments_are_the_requests_result() {
        assert_eq!(
            bad_args(r#"{"type":"invite","id":1}"#),
            (json!(1), "invite needs a dest".into())
        );
        assert_eq!(
            bad_args(r#"{"type":"invite","dest":" "}"#).1,
            "invite needs a dest"
        );
        assert_eq!(
            bad_args(r#"{"type":"invite","dest":5}"#).1,
            "dest must be a string"
        );
        assert_eq!(
            bad_args(r#"{"type":"invite","dest":"b","codecs":[1]}"#).1,
            "codecs must be an array of strings"
        );
        assert_eq!(
            bad_args(r#"{"type":"sendDTMF","digit":"12"}"#).1,
            "sendDTMF needs one digit of 0-9 * # A-D"
        );
        assert_eq!(
            bad_args(r#"{"type":"sendDTMF","digit":"x"}"#).1,
            "sendDTMF needs one digit of 0-9 * # A-D"
        );
        assert_eq!(
            bad_args(r#"{"type":"hold","hold":"yes"}"#).1,
            "hold must be true or false"
        );
        assert_eq!(
            bad_args(r#"{"type":"connect","authpass":{}}"#).1,
            "authpass must be a string"
        );
    }

    #[test]
    fn printing() {
        assert_eq!(result(&json!(1), &[]), r#"{"id":1,"type":"result"}"#);
        assert_eq!(
            result_error(&Value::Null, "not connected"),
            r#"{"error":"not connected","id":null,"type":"result"}"#
        );
        assert_eq!(error(None, "x"), r#"{"error":"x","type":"error"}"#);
        assert_eq!(
            event("ringing", &[("reason", json!("180 Ringing"))]),
            r#"{"reason":"180 Ringing","type":"ringing"}"#
        );
    }
}
