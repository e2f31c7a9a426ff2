//! Who "we" are: our listeners, hosted domains, and the URIs we put in Via and
//! Record-Route (RFC 3261 §16.4, §16.6 steps 4 and 8).

use std::net::{IpAddr, SocketAddr};

use sip::text::push_decimal;
use sip::{Transport, Uri};

/// One listening socket of this server.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Listener {
    pub transport: Transport,
    pub addr: SocketAddr,
}

/// Parameter of our Record-Route URI naming the stream connection a dialog's requests
/// must go back on (a flow token in the spirit of RFC 5626 §5.3).
pub const FLOW_PARAM: &str = "sbflow";

#[derive(Clone, Debug, Default)]
pub struct Local {
    pub listeners: Vec<Listener>,
    /// Hosted domains, lower-case. Empty: any name that resolves to us is local.
    pub domains: Vec<String>,
}

fn host_ip(host: &str) -> Option<IpAddr> {
    let h = host.trim_start_matches('[').trim_end_matches(']');
    if h.eq_ignore_ascii_case("localhost") {
        return Some(IpAddr::from([127, 0, 0, 1]));
    }
    h.parse().ok()
}

impl Local {
    /// The listener to send from for a transport (the first one of that kind).
    pub fn listener(&self, transport: Transport) -> Option<Listener> {
        self.listeners
            .iter()
            .copied()
            .find(|l| l.transport == transport)
    }

    /// True if `uri` addresses this server itself: one of our listener addresses
    /// (the port must match when given) or, for URIs with a user part, a hosted domain.
    pub fn is_us(&self, uri: &Uri) -> bool {
        let Some(ip) = host_ip(&uri.host) else {
            return false;
        };
        self.listeners.iter().any(|l| {
            (l.addr.ip() == ip || (l.addr.ip().is_unspecified() && ip.is_loopback()))
                && match uri.port {
                    Some(p) => p == l.addr.port(),
                    None => l.addr.port() == l.transport.default_port(),
                }
        })
    }

    /// True if the Request-URI's domain is served by this proxy: a hosted domain, or our
    /// own address (with no domain list, any of our IPs whatever the port).
    pub fn is_local_domain(&self, uri: &Uri) -> bool {
        let host = uri.host_lower();
        if self.domains.contains(&host) {
            return true;
        }
        if self.is_us(uri) {
            return true;
        }
        if self.domains.is_empty()
            && let Some(ip) = host_ip(&uri.host)
        {
            return self
                .listeners
                .iter()
                .any(|l| l.addr.ip() == ip || (l.addr.ip().is_unspecified() && ip.is_loopback()));
        }
        false
    }

    /// `Via` value for a request we send from `listener` (RFC 3261 §16.6 step 8, RFC 3581).
    pub fn via(&self, listener: Listener, branch: &str) -> String {
        let mut s = String::with_capacity(64 + branch.len());
        s.push_str("SIP/2.0/");
        s.push_str(listener.transport.as_str());
        s.push(' ');
        push_addr(&mut s, listener.addr);
        s.push_str(";branch=");
        s.push_str(branch);
        s.push_str(";rport");
        s
    }

    /// Our Record-Route URI on `listener`, with a flow token when requests must come back
    /// over a specific connection.
    pub fn record_route(&self, listener: Listener, flow: Option<u64>) -> String {
        let mut s = String::with_capacity(64);
        s.push_str("<sip:");
        push_addr(&mut s, listener.addr);
        if listener.transport != Transport::Udp {
            s.push_str(";transport=");
            s.push_str(&listener.transport.as_str().to_ascii_lowercase());
        }
        s.push_str(";lr");
        if let Some(c) = flow {
            s.push(';');
            s.push_str(FLOW_PARAM);
            s.push('=');
            push_decimal(&mut s, c);
        }
        s.push('>');
        s
    }
}

/// `ip:port`, with IPv6 in brackets.
pub fn fmt_addr(a: SocketAddr) -> String {
    let mut s = String::with_capacity(24);
    push_addr(&mut s, a);
    s
}

/// Appends `ip:port`, IPv6 in brackets. An IPv4 address (the common case, once per
/// forwarded request) is written digit by digit rather than through `Display`.
fn push_addr(s: &mut String, a: SocketAddr) {
    match a {
        SocketAddr::V4(v4) => {
            for (i, octet) in v4.ip().octets().into_iter().enumerate() {
                if i > 0 {
                    s.push('.');
                }
                push_decimal(s, u64::from(octet));
            }
        }
        SocketAddr::V6(v6) => {
            s.push('[');
            s.push_str(&v6.ip().to_string());
            s.push(']');
        }
    }
    s.push(':');
    push_decimal(s, u64::from(a.port()));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn local() -> Local {
        Local {
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
            domains: vec!["example.com".into()],
        }
    }

    #[test]
    fn recognises_itself() {
        let l = local();
        let u = |s: &str| Uri::parse(s).unwrap();
        assert!(l.is_us(&u("sip:127.0.0.1;lr")));
        assert!(l.is_us(&u("sip:127.0.0.1:8080;transport=ws;lr")));
        assert!(!l.is_us(&u("sip:127.0.0.1:5070")));
        assert!(l.is_local_domain(&u("sip:alice@Example.COM")));
        assert!(!l.is_local_domain(&u("sip:alice@other.org")));
        assert!(!l.is_local_domain(&u("sip:alice@127.0.0.1:5070")));
        assert_eq!(
            l.record_route(l.listeners[1], Some(4)),
            "<sip:127.0.0.1:8080;transport=ws;lr;sbflow=4>"
        );
        assert_eq!(
            l.via(l.listeners[0], "z9hG4bKx"),
            "SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKx;rport"
        );
    }
}
