//! SIP over WebSocket (RFC 7118): subprotocol `sip`, one SIP message per frame.

use std::net::SocketAddr;

use axum::Router;
use axum::extract::ws::{Message as WsMessage, WebSocket, WebSocketUpgrade};
use axum::extract::{ConnectInfo, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use bytes::Bytes;
use sip::Transport;
use sip::transaction::Flow;
use tokio::sync::mpsc;
use tracing::debug;

use crate::{NetEvent, SipHandle};

#[derive(Clone)]
struct WsState {
    handle: SipHandle,
    local: SocketAddr,
    transport: Transport,
}

/// A router serving SIP over WebSocket at `/sip`. `local` is the HTTP listener's
/// address (it names the flow); `secure` marks a TLS listener (WSS).
/// Serve it with `into_make_service_with_connect_info::<SocketAddr>()`.
pub fn router(handle: SipHandle, local: SocketAddr, secure: bool) -> Router {
    let state = WsState {
        handle,
        local,
        transport: if secure {
            Transport::Wss
        } else {
            Transport::Ws
        },
    };
    Router::new().route("/sip", get(upgrade)).with_state(state)
}

async fn upgrade(
    ws: WebSocketUpgrade,
    State(state): State<WsState>,
    ConnectInfo(remote): ConnectInfo<SocketAddr>,
) -> Response {
    // RFC 7118 §4.1: the client must offer the `sip` subprotocol.
    let ws = ws.protocols(["sip"]);
    if ws.selected_protocol().is_none() {
        return (
            StatusCode::BAD_REQUEST,
            "WebSocket subprotocol 'sip' required",
        )
            .into_response();
    }
    let Some(slot) = state.handle.admit(remote.ip()) else {
        return (StatusCode::SERVICE_UNAVAILABLE, "too many connections").into_response();
    };
    // Read 8 KiB at a time, not tungstenite's 128 KiB (zero-filled on the first read, per
    // connection); a longer message grows the buffer to its length.
    ws.max_message_size(sipd::MAX_STREAM_MESSAGE)
        .read_buffer_size(8 * 1024)
        .on_upgrade(move |socket| async move {
            serve(socket, state, remote).await;
            drop(slot);
        })
}

async fn serve(mut socket: WebSocket, state: WsState, remote: SocketAddr) {
    let handle = state.handle;
    let conn = handle.new_conn_id();
    let flow = Flow {
        transport: state.transport,
        remote,
        local: state.local,
        conn: Some(conn),
    };
    let (out_tx, mut out_rx) = mpsc::channel::<Bytes>(256);
    if !handle
        .send(NetEvent::Opened {
            conn,
            flow,
            tx: out_tx,
        })
        .await
    {
        return;
    }
    let limits = handle.limits().clone();
    let mut seen_message = false;
    loop {
        let wait = if seen_message {
            limits.idle_timeout
        } else {
            limits.partial_timeout
        };
        tokio::select! {
            incoming = tokio::time::timeout(wait, socket.recv()) => {
                let bytes = match incoming {
                    Ok(Some(Ok(WsMessage::Text(t)))) => Bytes::copy_from_slice(t.as_str().as_bytes()),
                    Ok(Some(Ok(WsMessage::Binary(b)))) => b,
                    Ok(Some(Ok(WsMessage::Ping(_) | WsMessage::Pong(_)))) => continue,
                    Ok(Some(Ok(WsMessage::Close(_)))) | Ok(None) => break,
                    Ok(Some(Err(e))) => {
                        debug!(conn, error = %e, "websocket error");
                        break;
                    }
                    Err(_) => {
                        debug!(conn, "websocket timed out");
                        break;
                    }
                };
                seen_message = true;
                if !handle.send(NetEvent::Message { bytes, flow }).await {
                    break;
                }
            }
            out = out_rx.recv() => {
                let Some(b) = out else { break };
                // SIP messages are UTF-8 text; RFC 7118 §5.1 lets either frame type carry them.
                let frame = match std::str::from_utf8(&b) {
                    Ok(s) => WsMessage::Text(s.into()),
                    Err(_) => WsMessage::Binary(b),
                };
                if socket.send(frame).await.is_err() {
                    break;
                }
            }
        }
    }
    let _ = handle.send(NetEvent::Closed { conn }).await;
}
