//! The core task in virtual time (tokio's paused clock): a line registers with a fake
//! registrar on 127.0.0.1, refreshes before the granted 40 s run out, and un-registers
//! when removed.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use line::{LineConfig, LineEvent};
use switchboard_ua::{LineSetup, PortRange, Ua, UaConfig, UaEvent};
use tokio::net::UdpSocket;

/// Answers every REGISTER with 200 and `Expires: 40` (0 for an un-REGISTER), keeping
/// the requests.
async fn registrar(sock: UdpSocket, seen: Arc<Mutex<Vec<String>>>) {
    let mut buf = vec![0u8; 65536];
    loop {
        let (n, from) = sock.recv_from(&mut buf).await.unwrap();
        let req = String::from_utf8_lossy(&buf[..n]).to_string();
        let unregister = req.lines().any(|l| {
            let l = l.to_ascii_lowercase();
            (l.starts_with("expires:") && l.trim_end().ends_with(": 0"))
                || (l.starts_with("contact:") && l.contains("expires=0"))
        });
        let mut resp = String::from("SIP/2.0 200 OK\r\n");
        for l in req.lines() {
            let lower = l.to_ascii_lowercase();
            if lower.starts_with("to:") {
                resp.push_str(&format!("{l};tag=reg1\r\n"));
            } else if ["via:", "from:", "call-id:", "cseq:"]
                .iter()
                .any(|h| lower.starts_with(h))
            {
                resp.push_str(l);
                resp.push_str("\r\n");
            }
        }
        let expires = if unregister { 0 } else { 40 };
        resp.push_str(&format!("Expires: {expires}\r\nContent-Length: 0\r\n\r\n"));
        seen.lock().unwrap().push(req);
        sock.send_to(resp.as_bytes(), from).await.unwrap();
    }
}

#[tokio::test(start_paused = true)]
async fn registers_refreshes_and_unregisters_in_virtual_time() {
    let reg = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let reg_addr = reg.local_addr().unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    tokio::spawn(registrar(reg, Arc::clone(&seen)));

    let mut cfg = UaConfig::new("127.0.0.1:0".parse().unwrap());
    cfg.rtp_ports = PortRange::new(19940, 19949).unwrap();
    let ua = Ua::start(cfg).await.unwrap();
    let mut line = LineConfig::new(&format!("alice@{reg_addr}")).unwrap();
    line.password = Some("secret".into());
    let (id, mut events) = ua.handle().add_line(LineSetup::new(line)).await.unwrap();
    assert_eq!(
        events.recv().await,
        Some(UaEvent::Line(LineEvent::Registered { expires: 40 }))
    );
    assert_eq!(seen.lock().unwrap().len(), 1);

    // Before the 40 s are over, the line has refreshed (quietly: no second event).
    tokio::time::sleep(Duration::from_secs(39)).await;
    let n = seen.lock().unwrap().len();
    assert!(n >= 2, "no refresh within 39 s ({n} REGISTERs)");
    assert!(events.try_recv().is_err(), "a refresh is not an event");

    ua.handle().remove_line(id).await.unwrap();
    assert_eq!(events.recv().await, Some(UaEvent::Line(LineEvent::Closed)));
    let last = seen.lock().unwrap().last().cloned().unwrap();
    assert!(
        last.to_ascii_lowercase().contains("expires: 0") || last.contains("expires=0"),
        "the last REGISTER is no un-REGISTER:\n{last}"
    );
    ua.shutdown().await;
}
