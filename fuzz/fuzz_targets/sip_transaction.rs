//! Drives the transaction layer with an arbitrary sequence of operations: requests and
//! responses from the network, requests and responses from the TU, time passing and
//! transport errors. Nothing may panic, and after `handle_timeout(now)` no timer may be
//! left in the past.
#![no_main]

use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;
use switchboard_sip::transaction::{Config, Flow, Output, Transactions, TxnId};
use switchboard_sip::{Message, Transport};

const METHODS: [&str; 5] = ["INVITE", "ACK", "CANCEL", "BYE", "OPTIONS"];

fn request(method: &str, branch: u8, cseq_method: &str) -> Option<Message> {
    let b = if branch % 5 == 0 {
        "old".to_string()
    } else {
        format!("z9hG4bK{}", branch % 4)
    };
    let s = format!(
        "{method} sip:a@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5070;branch={b}\r\nFrom: <sip:b@x>;tag=f{branch}\r\nTo: <sip:a@x>\r\nCall-ID: c{}\r\nCSeq: 1 {cseq_method}\r\nContent-Length: 0\r\n\r\n",
        branch % 3
    );
    Message::parse(s.as_bytes()).ok()
}

fn response(code: u16, branch: u8, method: &str) -> Option<Message> {
    let s = format!(
        "SIP/2.0 {code} X\r\nVia: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bK{}\r\nFrom: <sip:b@x>;tag=f\r\nTo: <sip:a@x>;tag=t{branch}\r\nCall-ID: c\r\nCSeq: 1 {method}\r\nContent-Length: 0\r\n\r\n",
        branch % 4
    );
    Message::parse(s.as_bytes()).ok()
}

fuzz_target!(|data: &[u8]| {
    // One anchor: libFuzzer calls us many times and only differences of time matter.
    #[allow(clippy::disallowed_methods)]
    let start = Instant::now();
    let mut now = start;
    let mut txns = Transactions::new(Config::default());
    let mut ids: Vec<TxnId> = Vec::new();
    for op in data.chunks(3) {
        let [kind, a, b] = [op[0], *op.get(1).unwrap_or(&0), *op.get(2).unwrap_or(&0)];
        let transport = if b & 0x80 != 0 {
            Transport::Tcp
        } else {
            Transport::Udp
        };
        let flow = Flow {
            transport,
            remote: "127.0.0.1:5070".parse().unwrap(),
            local: "127.0.0.1:5060".parse().unwrap(),
            conn: (transport == Transport::Tcp).then_some(1),
        };
        let method = METHODS[(a % 5) as usize];
        match kind % 7 {
            0 => {
                let cseq = if method == "ACK" && b & 1 == 0 {
                    "ACK"
                } else {
                    method
                };
                if let Some(m) = request(method, b, cseq) {
                    txns.receive(now, m, flow);
                }
            }
            1 => {
                let code = 100 + (u16::from(a) * 3 % 600);
                if let Some(m) = response(code, b, METHODS[(b % 5) as usize]) {
                    txns.receive(now, m, flow);
                }
            }
            2 => {
                if let Some(m) = request(method, b | 1, method) {
                    ids.push(txns.send_request(now, m, flow));
                }
            }
            3 => {
                if let Some(id) = ids.get(usize::from(a) % ids.len().max(1)).copied()
                    && let Some((req, _)) = txns.server_request(id)
                {
                    let code = 100 + (u16::from(b) * 5 % 600);
                    let r = switchboard_sip::ResponseBuilder::new(req, code, None)
                        .to_tag("t")
                        .build();
                    let _ = txns.respond(now, id, r);
                }
            }
            4 => {
                now += Duration::from_millis(u64::from(a) * 250);
                txns.handle_timeout(now);
                if let Some(t) = txns.poll_timeout() {
                    assert!(t > now, "timer left in the past");
                }
            }
            5 => {
                if let Some(id) = ids.get(usize::from(a) % ids.len().max(1)).copied() {
                    txns.transport_error(now, id);
                }
            }
            _ => {
                if let Some(m) = request("CANCEL", b, "CANCEL") {
                    let _ = txns.find_invite_for_cancel(&m);
                }
            }
        }
        while let Some(o) = txns.poll_output() {
            if let Output::Event(switchboard_sip::transaction::Event::Request {
                id: Some(id),
                ..
            }) = o
            {
                ids.push(id);
            }
        }
    }
});
