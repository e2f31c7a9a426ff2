//! SIP over TCP: Content-Length framing (RFC 3261 §18.3), one task per connection.

use std::net::SocketAddr;

use bytes::{Buf, Bytes, BytesMut};
use sip::Transport;
use sip::transaction::Flow;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tracing::{debug, warn};

use crate::{NetEvent, SipHandle};

pub(crate) async fn accept_loop(listener: TcpListener, local: SocketAddr, handle: SipHandle) {
    loop {
        match listener.accept().await {
            Ok((stream, remote)) => {
                let Some(slot) = handle.admit(remote.ip()) else {
                    warn!(%remote, "connection limit reached; refusing TCP connection");
                    continue;
                };
                let _ = stream.set_nodelay(true);
                let handle = handle.clone();
                tokio::spawn(async move {
                    serve(stream, local, remote, handle).await;
                    drop(slot);
                });
            }
            Err(e) => {
                warn!(error = %e, "TCP accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
        }
    }
}

/// Opens a TCP connection to send a request or response that has no connection yet.
pub(crate) async fn connect(remote: SocketAddr, first: Bytes, handle: SipHandle) {
    let Some(slot) = handle.admit(remote.ip()) else {
        return;
    };
    let stream = match tokio::time::timeout(
        std::time::Duration::from_secs(10),
        TcpStream::connect(remote),
    )
    .await
    {
        Ok(Ok(s)) => s,
        _ => {
            debug!(%remote, "TCP connect failed");
            return;
        }
    };
    let _ = stream.set_nodelay(true);
    let local = match stream.local_addr() {
        Ok(a) => a,
        Err(_) => return,
    };
    serve_with(stream, local, remote, handle, Some(first)).await;
    drop(slot);
}

async fn serve(stream: TcpStream, local: SocketAddr, remote: SocketAddr, handle: SipHandle) {
    serve_with(stream, local, remote, handle, None).await;
}

async fn serve_with(
    stream: TcpStream,
    local: SocketAddr,
    remote: SocketAddr,
    handle: SipHandle,
    first: Option<Bytes>,
) {
    let conn = handle.new_conn_id();
    let flow = Flow {
        transport: Transport::Tcp,
        remote,
        local,
        conn: Some(conn),
    };
    let (out_tx, mut out_rx) = mpsc::channel::<Bytes>(256);
    if let Some(b) = first {
        let _ = out_tx.try_send(b);
    }
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
    let (mut rd, mut wr) = stream.into_split();
    let writer = tokio::spawn(async move {
        while let Some(b) = out_rx.recv().await {
            if wr.write_all(&b).await.is_err() {
                break;
            }
        }
        let _ = wr.shutdown().await;
    });
    let limits = handle.limits().clone();
    let max = sipd::MAX_STREAM_MESSAGE;
    let mut buf = BytesMut::with_capacity(4096);
    let mut seen_message = false;
    'read: loop {
        // Frame every complete message in the buffer.
        loop {
            match sip::frame_len(&buf, max) {
                Ok(Some(n)) => {
                    let bytes = buf.split_to(n).freeze();
                    seen_message = true;
                    if !handle.send(NetEvent::Message { bytes, flow }).await {
                        break 'read;
                    }
                }
                Ok(None) => {
                    // Only CRLF keepalives left (RFC 5626 §3.5.1): discard them.
                    if !buf.is_empty() && buf.iter().all(|&c| c == b'\r' || c == b'\n') {
                        buf.advance(buf.len());
                    }
                    break;
                }
                Err(error) => {
                    debug!(conn, %error, "unframeable stream");
                    let bytes = buf.split().freeze();
                    let _ = handle
                        .send(NetEvent::Unframeable { bytes, flow, error })
                        .await;
                    break 'read;
                }
            }
        }
        let wait = if buf.is_empty() && seen_message {
            limits.idle_timeout
        } else {
            limits.partial_timeout
        };
        match tokio::time::timeout(wait, rd.read_buf(&mut buf)).await {
            Ok(Ok(0)) => break,
            Ok(Ok(_)) => {}
            Ok(Err(e)) => {
                debug!(conn, error = %e, "read failed");
                break;
            }
            Err(_) => {
                debug!(conn, "stream timed out");
                break;
            }
        }
    }
    let _ = handle.send(NetEvent::Closed { conn }).await;
    // Let queued responses (e.g. a 400 or 513) go out before the socket closes.
    let _ = tokio::time::timeout(std::time::Duration::from_secs(2), writer).await;
}
