//! Feeds arbitrary datagrams to the whole SIP server core (registrar + proxy +
//! transactions): chunks separated by 0xFF arrive from three different peers, with time
//! passing between them. No input may panic the server.
#![no_main]

use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;
use switchboard_proxy::{Listener, Local, Proxy, ProxyConfig};
use switchboard_registrar::{MemoryLocations, Registrar, RegistrarConfig};
use switchboard_sip::Transport;
use switchboard_sip::transaction::Flow;
use switchboard_sipd::{Sipd, SipdConfig};

fuzz_target!(|data: &[u8]| {
    #[allow(clippy::disallowed_methods)]
    let mut now = Instant::now();
    let reg = Registrar::new(RegistrarConfig::default(), None, MemoryLocations::new(), 1);
    let local = Local {
        listeners: vec![
            Listener {
                transport: Transport::Udp,
                addr: "127.0.0.1:5060".parse().unwrap(),
            },
            Listener {
                transport: Transport::Ws,
                addr: "127.0.0.1:8080".parse().unwrap(),
            },
        ],
        domains: vec![],
    };
    let proxy = Proxy::new(ProxyConfig::default(), local, 2);
    let mut sipd = Sipd::new(SipdConfig::default(), reg, proxy, now, 1_800_000_000);
    for (i, chunk) in data.split(|b| *b == 0xff).enumerate() {
        let flow = Flow {
            transport: if i % 3 == 2 {
                Transport::Ws
            } else {
                Transport::Udp
            },
            remote: format!("127.0.0.1:{}", 5070 + i % 3).parse().unwrap(),
            local: "127.0.0.1:5060".parse().unwrap(),
            conn: (i % 3 == 2).then_some(9),
        };
        sipd.handle_message(now, chunk, flow);
        while sipd.poll_transmit().is_some() {}
        while let Some(r) = sipd.poll_resolve() {
            sipd.resolved(now, r.id, &[]);
        }
        now += Duration::from_millis(chunk.len() as u64 * 10);
        sipd.handle_timeout(now);
        while sipd.poll_transmit().is_some() {}
        if i % 7 == 6 {
            sipd.connection_closed(now, 9);
        }
    }
});
