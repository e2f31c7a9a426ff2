//! Locating SIP servers in DNS (RFC 3263 §4): NAPTR → SRV → A/AAAA.
//!
//! [`SipResolver::locate`] turns the host part of a SIP or SIPS URI (plus its port and
//! `transport` parameter, if any) into an ordered list of `(transport, address)` targets.
//! The caller tries the first and moves down the list on failure (RFC 3263 §4.3).
//!
//! Choices this module makes where the RFCs leave room:
//!
//! * The list is a failover list: results of every usable NAPTR record (in NAPTR order) or
//!   of every transport whose SRV query succeeded (in the caller's `supported` order) are
//!   concatenated, the RFC's first choice first. Duplicates are dropped.
//! * SRV records of equal priority are put in a deterministic order (RFC 3263 §4.4 asks
//!   stateless proxies for one): higher weight first, then target name, then port. There
//!   is no random weighted selection.
//! * A/AAAA lookups list IPv4 addresses before IPv6 ones.
//! * NAPTR records are used when their flags are `s` (next lookup SRV) or `a` (next lookup
//!   A/AAAA, default port) and their regexp is empty, as RFC 3263 prescribes for SIP.
//!   Services understood: `SIP+D2U`, `SIP+D2T`, `SIPS+D2T`, `SIP+D2S`.
//! * An SRV record set consisting only of target `.` means "no service here" (RFC 2782):
//!   that transport yields nothing, with no A/AAAA fallback.
//! * When neither NAPTR nor SRV gives anything, the fallback transport is TLS for a SIPS
//!   URI, else UDP when the caller supports it (or listed nothing), else the first
//!   supported transport.
//! * A host name containing a dot is queried as a fully qualified name; a single label is
//!   left relative so that the system's search domains apply.
//!
//! Every call is bounded by one overall time budget (3 s by default, see
//! [`SipResolver::with_timeout`]); what was found before the budget ran out is returned.

use std::collections::HashSet;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use anyhow::Context;
use hickory_resolver::TokioResolver;
use hickory_resolver::config::{
    LookupIpStrategy, NameServerConfig, ResolveHosts, ResolverConfig, ResolverOpts,
};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::proto::rr::{Name, RData, RecordType};
use sip::Transport;
use tokio::time::{Instant, timeout_at};
use tracing::debug;

/// Default bound on one [`SipResolver::locate`] call.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(3);

/// RFC 3263 server location on top of a hickory DNS resolver.
#[derive(Clone)]
pub struct SipResolver {
    resolver: TokioResolver,
    budget: Duration,
}

impl std::fmt::Debug for SipResolver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SipResolver")
            .field("budget", &self.budget)
            .finish_non_exhaustive()
    }
}

/// One SRV record, reduced to what ordering and expansion need.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Srv {
    priority: u16,
    weight: u16,
    port: u16,
    target: Name,
}

impl SipResolver {
    /// System configuration (/etc/resolv.conf, /etc/hosts).
    pub fn system() -> anyhow::Result<SipResolver> {
        let mut builder = TokioResolver::builder_tokio()
            .context("reading the system DNS configuration (/etc/resolv.conf)")?;
        let opts = builder.options_mut();
        opts.ip_strategy = LookupIpStrategy::Ipv4AndIpv6;
        opts.timeout = opts.timeout.min(DEFAULT_TIMEOUT);
        let resolver = builder.build().context("building the DNS resolver")?;
        Ok(SipResolver {
            resolver,
            budget: DEFAULT_TIMEOUT,
        })
    }

    /// A single nameserver (tests, or `--dns HOST:PORT`). Queries go over UDP, with TCP
    /// to the same address and port when an answer is truncated. /etc/hosts is not read.
    pub fn with_nameserver(addr: SocketAddr) -> anyhow::Result<SipResolver> {
        let mut ns = NameServerConfig::udp_and_tcp(addr.ip());
        for conn in &mut ns.connections {
            conn.port = addr.port();
        }
        let config = ResolverConfig::from_name_servers(vec![ns]);
        let mut opts = ResolverOpts::default();
        opts.ip_strategy = LookupIpStrategy::Ipv4AndIpv6;
        opts.use_hosts_file = ResolveHosts::Never;
        opts.timeout = Duration::from_secs(1);
        opts.attempts = 2;
        let resolver = TokioResolver::builder_with_config(config, TokioRuntimeProvider::default())
            .with_options(opts)
            .build()
            .with_context(|| format!("building a DNS resolver for {addr}"))?;
        Ok(SipResolver {
            resolver,
            budget: DEFAULT_TIMEOUT,
        })
    }

    /// Replaces the overall time bound of each [`locate`](Self::locate) call.
    pub fn with_timeout(mut self, budget: Duration) -> SipResolver {
        self.budget = budget;
        self
    }

    /// RFC 3263 §4: ordered targets for a SIP URI host. `port`/`transport` are None when the
    /// URI gave none; `secure` for sips:.
    /// `supported` lists the transports we can send on (client side, e.g. [Udp, Tcp]).
    ///
    /// * IP literal (`192.0.2.1`, `::1` or `[::1]`): that IP, the given port or the
    ///   transport's default; transport = given, else UDP (TLS if `secure`). No DNS.
    /// * Explicit port: A/AAAA only, transport given or UDP (TLS if `secure`).
    /// * Transport given, no port: SRV `_sip._udp`, `_sip._tcp`, `_sips._tcp` (TLS, or TCP
    ///   when `secure`), `_sip._sctp`; WS/WSS have no SRV (RFC 7118). If no SRV, A/AAAA
    ///   on the transport's default port.
    /// * Neither: NAPTR (SIP+D2U, SIP+D2T, SIPS+D2T, SIP+D2S; only SIPS for `secure`;
    ///   filtered to `supported`; by order then preference), each followed to its SRV;
    ///   if no usable NAPTR, SRV for each supported transport in `supported` order; if
    ///   none, A/AAAA with UDP on 5060 (TLS on 5061 if `secure`).
    ///
    /// SRV targets are ordered by priority, then higher weight first (deterministic), and
    /// expanded to their addresses from the additional section or by a lookup.
    /// Returns an empty Vec when nothing resolves or the time budget runs out first.
    pub async fn locate(
        &self,
        host: &str,
        port: Option<u16>,
        transport: Option<Transport>,
        secure: bool,
        supported: &[Transport],
    ) -> Vec<(Transport, SocketAddr)> {
        let deadline = Instant::now() + self.budget;
        let mut out = Targets::default();

        let bare = host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(host);
        if let Ok(ip) = bare.parse::<IpAddr>() {
            let t = transport.unwrap_or(if secure {
                Transport::Tls
            } else {
                Transport::Udp
            });
            out.push(t, SocketAddr::new(ip, port.unwrap_or(t.default_port())));
            return out.into_vec();
        }

        let Some(name) = query_name(host) else {
            debug!(host, "not a valid DNS name");
            return Vec::new();
        };

        if let Some(port) = port {
            let t = transport.unwrap_or(if secure {
                Transport::Tls
            } else {
                Transport::Udp
            });
            self.push_addresses(&mut out, t, &name, port, deadline)
                .await;
            return out.into_vec();
        }

        if let Some(t) = transport {
            let srv = match srv_name(t, secure, &name) {
                Some(srv_name) => self.srv(&srv_name, deadline).await,
                None => None,
            };
            match srv {
                Some((records, extra)) => {
                    self.push_srv(&mut out, t, &records, &extra, deadline).await
                }
                None => {
                    self.push_addresses(&mut out, t, &name, t.default_port(), deadline)
                        .await
                }
            }
            return out.into_vec();
        }

        // Neither port nor transport: NAPTR first.
        let naptrs = self.naptr(&name, secure, supported, deadline).await;
        if !naptrs.is_empty() {
            for (t, flag, replacement) in naptrs {
                if flag == b's' {
                    if let Some((records, extra)) = self.srv(&replacement, deadline).await {
                        self.push_srv(&mut out, t, &records, &extra, deadline).await;
                    }
                } else {
                    self.push_addresses(&mut out, t, &replacement, t.default_port(), deadline)
                        .await;
                }
            }
            return out.into_vec();
        }

        // No NAPTR: SRV for each supported transport.
        let mut any_srv = false;
        for &t in supported {
            if secure && !matches!(t, Transport::Tls) {
                continue;
            }
            let Some(srv_name) = srv_name(t, secure, &name) else {
                continue;
            };
            if let Some((records, extra)) = self.srv(&srv_name, deadline).await {
                any_srv = true;
                self.push_srv(&mut out, t, &records, &extra, deadline).await;
            }
        }
        if any_srv {
            return out.into_vec();
        }

        let t = if secure {
            Transport::Tls
        } else if supported.is_empty() || supported.contains(&Transport::Udp) {
            Transport::Udp
        } else {
            supported[0]
        };
        self.push_addresses(&mut out, t, &name, t.default_port(), deadline)
            .await;
        out.into_vec()
    }

    /// Usable NAPTR records for `name`, best first: (transport, flag, replacement).
    async fn naptr(
        &self,
        name: &Name,
        secure: bool,
        supported: &[Transport],
        deadline: Instant,
    ) -> Vec<(Transport, u8, Name)> {
        let lookup = match timeout_at(
            deadline,
            self.resolver.lookup(name.clone(), RecordType::NAPTR),
        )
        .await
        {
            Ok(Ok(lookup)) => lookup,
            Ok(Err(e)) => {
                debug!(%name, error = %e, "no NAPTR");
                return Vec::new();
            }
            Err(_) => {
                debug!(%name, "NAPTR lookup timed out");
                return Vec::new();
            }
        };
        let mut found: Vec<(u16, u16, Transport, u8, Name)> = Vec::new();
        for record in lookup.answers() {
            let RData::NAPTR(naptr) = &record.data else {
                continue;
            };
            if !naptr.regexp.is_empty() || naptr.replacement.is_root() {
                continue;
            }
            let flag = match naptr.flags.as_ref() {
                [f] if f.eq_ignore_ascii_case(&b's') => b's',
                [f] if f.eq_ignore_ascii_case(&b'a') => b'a',
                _ => continue,
            };
            let Some((sips, t)) = naptr_service(&naptr.services) else {
                continue;
            };
            if secure && !sips {
                continue;
            }
            if !supported.contains(&t) {
                continue;
            }
            found.push((
                naptr.order,
                naptr.preference,
                t,
                flag,
                naptr.replacement.clone(),
            ));
        }
        // Order, then preference; the replacement breaks ties so the order is deterministic.
        found.sort_by(|a, b| {
            a.0.cmp(&b.0)
                .then(a.1.cmp(&b.1))
                .then_with(|| a.4.cmp(&b.4))
        });
        found
            .into_iter()
            .map(|(_, _, t, flag, replacement)| (t, flag, replacement))
            .collect()
    }

    /// SRV records at `name` in try order, plus the addresses from the additional section.
    /// None when the query gave no SRV record at all.
    async fn srv(&self, name: &Name, deadline: Instant) -> Option<(Vec<Srv>, Vec<(Name, IpAddr)>)> {
        let lookup = match timeout_at(deadline, self.resolver.srv_lookup(name.clone())).await {
            Ok(Ok(lookup)) => lookup,
            Ok(Err(e)) => {
                debug!(%name, error = %e, "no SRV");
                return None;
            }
            Err(_) => {
                debug!(%name, "SRV lookup timed out");
                return None;
            }
        };
        let mut records: Vec<Srv> = lookup
            .answers()
            .iter()
            .filter_map(|r| match &r.data {
                RData::SRV(srv) => Some(Srv {
                    priority: srv.priority,
                    weight: srv.weight,
                    port: srv.port,
                    target: srv.target.clone(),
                }),
                _ => None,
            })
            .collect();
        if records.is_empty() {
            return None;
        }
        sort_srv(&mut records);
        let extra = lookup
            .additionals()
            .iter()
            .filter_map(|r| r.data.ip_addr().map(|ip| (r.name.clone(), ip)))
            .collect();
        Some((records, extra))
    }

    /// Expands SRV records (already in try order) to addresses.
    async fn push_srv(
        &self,
        out: &mut Targets,
        t: Transport,
        records: &[Srv],
        extra: &[(Name, IpAddr)],
        deadline: Instant,
    ) {
        for srv in records {
            if srv.target.is_root() {
                continue;
            }
            let mut glue: Vec<IpAddr> = extra
                .iter()
                .filter(|(n, _)| n == &srv.target)
                .map(|&(_, ip)| ip)
                .collect();
            if glue.is_empty() {
                self.push_addresses(out, t, &srv.target, srv.port, deadline)
                    .await;
            } else {
                glue.sort_by_key(|ip| ip.is_ipv6());
                for ip in glue {
                    out.push(t, SocketAddr::new(ip, srv.port));
                }
            }
        }
    }

    /// A/AAAA lookup of `name`, each address at `port`.
    async fn push_addresses(
        &self,
        out: &mut Targets,
        t: Transport,
        name: &Name,
        port: u16,
        deadline: Instant,
    ) {
        match timeout_at(deadline, self.resolver.lookup_ip(name.clone())).await {
            Ok(Ok(ips)) => {
                for ip in ips.iter() {
                    out.push(t, SocketAddr::new(ip, port));
                }
            }
            Ok(Err(e)) => debug!(%name, error = %e, "no A/AAAA"),
            Err(_) => debug!(%name, "A/AAAA lookup timed out"),
        }
    }
}

/// The name to query for a URI host: fully qualified when it has a dot.
fn query_name(host: &str) -> Option<Name> {
    let mut name = Name::from_ascii(host).ok()?;
    if name.num_labels() == 0 {
        return None;
    }
    if name.num_labels() > 1 {
        name.set_fqdn(true);
    }
    Some(name)
}

/// `_service._proto.name` for a transport (RFC 3263 §4.1, §4.2), None when the transport
/// has no SRV service (WS, WSS: RFC 7118).
fn srv_name(t: Transport, secure: bool, name: &Name) -> Option<Name> {
    let prefix = match (t, secure) {
        (Transport::Udp, _) => "_sip._udp",
        (Transport::Tcp, false) => "_sip._tcp",
        (Transport::Tcp, true) | (Transport::Tls, _) => "_sips._tcp",
        (Transport::Sctp, false) => "_sip._sctp",
        (Transport::Sctp, true) => "_sips._sctp",
        (Transport::Ws | Transport::Wss, _) => return None,
    };
    // append_name keeps `name`'s qualification (relative names get the search list).
    Name::from_ascii(prefix).ok()?.append_name(name).ok()
}

/// NAPTR service field → (is SIPS, transport) (RFC 3263 §4.1).
fn naptr_service(services: &[u8]) -> Option<(bool, Transport)> {
    let s = std::str::from_utf8(services).ok()?.to_ascii_uppercase();
    Some(match s.as_str() {
        "SIP+D2U" => (false, Transport::Udp),
        "SIP+D2T" => (false, Transport::Tcp),
        "SIPS+D2T" => (true, Transport::Tls),
        "SIP+D2S" => (false, Transport::Sctp),
        _ => return None,
    })
}

/// Priority ascending, then weight descending, then target and port: deterministic.
fn sort_srv(records: &mut [Srv]) {
    records.sort_by(|a, b| {
        a.priority
            .cmp(&b.priority)
            .then(b.weight.cmp(&a.weight))
            .then_with(|| a.target.cmp(&b.target))
            .then(a.port.cmp(&b.port))
    });
}

/// Ordered, duplicate-free target list.
#[derive(Default)]
struct Targets {
    list: Vec<(Transport, SocketAddr)>,
    seen: HashSet<(Transport, SocketAddr)>,
}

impl Targets {
    fn push(&mut self, t: Transport, addr: SocketAddr) {
        if self.seen.insert((t, addr)) {
            self.list.push((t, addr));
        }
    }

    fn into_vec(self) -> Vec<(Transport, SocketAddr)> {
        self.list
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn srv(priority: u16, weight: u16, port: u16, target: &str) -> Srv {
        Srv {
            priority,
            weight,
            port,
            target: Name::from_ascii(target).unwrap(),
        }
    }

    #[test]
    fn srv_order_is_priority_then_heavier_first() {
        let mut v = vec![
            srv(20, 100, 1, "c.test."),
            srv(10, 10, 2, "b.test."),
            srv(10, 90, 3, "a.test."),
            srv(10, 10, 4, "a.test."),
        ];
        sort_srv(&mut v);
        let ports: Vec<u16> = v.iter().map(|s| s.port).collect();
        assert_eq!(ports, [3, 4, 2, 1]);
    }

    #[test]
    fn srv_names() {
        let n = query_name("example.com").unwrap();
        let name = |t, s| srv_name(t, s, &n).map(|n| n.to_ascii());
        assert_eq!(
            name(Transport::Udp, false).unwrap(),
            "_sip._udp.example.com."
        );
        assert_eq!(
            name(Transport::Tcp, false).unwrap(),
            "_sip._tcp.example.com."
        );
        assert_eq!(
            name(Transport::Tcp, true).unwrap(),
            "_sips._tcp.example.com."
        );
        assert_eq!(
            name(Transport::Tls, false).unwrap(),
            "_sips._tcp.example.com."
        );
        assert_eq!(name(Transport::Ws, false), None);
    }

    #[test]
    fn naptr_services() {
        assert_eq!(naptr_service(b"SIP+D2U"), Some((false, Transport::Udp)));
        assert_eq!(naptr_service(b"sip+d2t"), Some((false, Transport::Tcp)));
        assert_eq!(naptr_service(b"SIPS+D2T"), Some((true, Transport::Tls)));
        assert_eq!(naptr_service(b"SIPS+D2U"), None);
        assert_eq!(naptr_service(b"E2U+sip"), None);
    }

    #[test]
    fn query_names() {
        assert!(query_name("a.b").unwrap().is_fqdn());
        assert!(!query_name("proxy").unwrap().is_fqdn());
        assert!(query_name("").is_none());
        assert!(query_name(".").is_none());
        assert!(query_name("bad..name").is_none());
    }
}
