//! Wiring of the SIP server role: listeners, store, registrar, HTTP for WebSocket.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use axum::Router;
use axum::routing::get;
use registrar::{Authenticator, Registrar, RegistrarConfig, SharedLocations};
use sip::auth::DigestConfig;
use sipd::{Sipd, SipdConfig};
use store::SqliteLocations;
use tracing::info;

use crate::config::{self, SipSettings};
use crate::{SipdArgs, parse_listen};

/// SIP cores per serving thread (see `run`).
const SHARDS_PER_WORKER: usize = 8;

#[derive(Debug, PartialEq, Eq)]
enum Listen {
    Udp(SocketAddr),
    Tcp(SocketAddr),
    Ws(SocketAddr),
}

/// The -l/-t pairs given on the command line (none: keep the configured listeners).
fn listeners(args: &SipdArgs) -> anyhow::Result<Vec<Listen>> {
    let (locals, transports) = match (args.local.len(), args.transport.len()) {
        (0, 0) => return Ok(Vec::new()),
        (n, 0) => (args.local.clone(), vec!["udp".to_string(); n]),
        (0, n) => (vec!["127.0.0.1".to_string(); n], args.transport.clone()),
        (a, b) if a == b => (args.local.clone(), args.transport.clone()),
        (a, b) => anyhow::bail!("{a} -l/--local but {b} -t/--transport: give them in pairs"),
    };
    locals
        .iter()
        .zip(&transports)
        .map(|(l, t)| {
            Ok(match t.to_ascii_lowercase().as_str() {
                "udp" => Listen::Udp(parse_listen(l, 5060)?),
                "tcp" => Listen::Tcp(parse_listen(l, 5060)?),
                "ws" => Listen::Ws(parse_listen(l, 5060)?),
                other => anyhow::bail!("unknown transport {other:?}: use udp, tcp or ws"),
            })
        })
        .collect()
}

/// `switchboard sipd` options over the configuration: -l/-t pairs replace `sip.udp`,
/// `sip.tcp` and `web.listen` together.
pub fn apply_args(l: &mut config::Loaded, a: &SipdArgs) -> anyhow::Result<()> {
    let listen = listeners(a)?;
    if !listen.is_empty() {
        let pick = |f: fn(&Listen) -> Option<SocketAddr>| -> Vec<String> {
            listen.iter().filter_map(f).map(|a| a.to_string()).collect()
        };
        let udp = pick(|l| {
            if let Listen::Udp(a) = l {
                Some(*a)
            } else {
                None
            }
        });
        let tcp = pick(|l| {
            if let Listen::Tcp(a) = l {
                Some(*a)
            } else {
                None
            }
        });
        let ws = pick(|l| {
            if let Listen::Ws(a) = l {
                Some(*a)
            } else {
                None
            }
        });
        l.cli("sip.udp", Some(udp), |c, v| c.sip.udp = v);
        l.cli("sip.tcp", Some(tcp), |c, v| c.sip.tcp = v);
        l.cli("web.listen", Some(ws), |c, v| c.web.listen = v);
    }
    let some_vec = |v: &Vec<String>| (!v.is_empty()).then(|| v.clone());
    l.cli("sip.domains", some_vec(&a.domain), |c, v| c.sip.domains = v);
    l.cli("sip.users_file", a.users.as_ref(), |c, v| {
        c.sip.users_file = v.to_string_lossy().into_owned();
    });
    l.cli("sip.realm", a.realm.clone(), |c, v| c.sip.realm = v);
    l.cli("sip.min_expires", a.min_expires, |c, v| {
        c.sip.min_expires = v
    });
    l.cli("sip.max_expires", a.max_expires, |c, v| {
        c.sip.max_expires = v
    });
    l.cli("sip.qop", a.no_qop.then_some(false), |c, v| c.sip.qop = v);
    l.cli("sip.sha256", a.sha256.then_some(true), |c, v| {
        c.sip.sha256 = v
    });
    l.cli("sip.mode", a.mode.clone(), |c, v| c.sip.mode = v);
    l.cli("sip.auth_invite", a.auth_invite.then_some(true), |c, v| {
        c.sip.auth_invite = v;
    });
    l.cli("sip.dns", a.dns, |c, v| c.sip.dns = v.to_string());
    l.cli("sip.workers", a.workers, |c, v| c.sip.workers = v);
    l.cli("web.phone", a.phone.then_some(true), |c, v| c.web.phone = v);
    l.cli("web.webrtc", a.webrtc, |c, v| c.web.webrtc = v.to_string());
    l.cli("web.origins", some_vec(&a.origins), |c, v| {
        c.web.origins = v
    });
    Ok(())
}

/// Secure by default: open registration (no users) only when every SIP and HTTP
/// listener is on loopback, however the listeners were configured.
pub fn check_open_registration(args: &SipSettings) -> anyhow::Result<()> {
    if args.users.is_some() {
        return Ok(());
    }
    if let Some(a) = args
        .udp
        .iter()
        .chain(&args.tcp)
        .chain(&args.http)
        .find(|a| !a.ip().is_loopback())
    {
        anyhow::bail!(
            "refusing to listen on {a} without users: open registration is only allowed on \
             loopback; give a users file (--users, sip.users_file) or a [users] table to \
             enable digest authentication"
        );
    }
    Ok(())
}

/// Runs the SIP server until interrupted. `quick_start` labels the all-in-one mode.
/// `extra` lines (other roles started alongside, e.g. RTMP) are printed with the listeners.
pub async fn run(
    args: SipSettings,
    data: PathBuf,
    quick_start: bool,
    extra: &[String],
) -> anyhow::Result<()> {
    let listen: Vec<Listen> = (args.udp.iter().map(|a| Listen::Udp(*a)))
        .chain(args.tcp.iter().map(|a| Listen::Tcp(*a)))
        .chain(args.http.iter().map(|a| Listen::Ws(*a)))
        .collect();
    check_open_registration(&args)?;
    let users = args.users;
    std::fs::create_dir_all(&data)
        .with_context(|| format!("cannot create data directory {}", data.display()))?;
    let db_path = data.join("locations.db");
    let locations = SqliteLocations::open(&db_path)
        .with_context(|| format!("cannot open {}", db_path.display()))?;
    // Registrations are written behind to SQLite; on shutdown every one acknowledged
    // so far is committed before the process exits.
    let flusher = locations.flusher();

    let realm = args.realm.clone();
    let auth_open = users.is_none();
    let auth_desc = match &users {
        Some(u) => format!("digest (realm \"{realm}\", {} users)", u.len()),
        None => "open (loopback only)".to_string(),
    };
    let auth = users.map(|u| {
        let mut dc = DigestConfig::new(&realm);
        if args.sha256 {
            dc = dc.with_sha256();
        }

        dc.qop = args.qop;
        Authenticator::new(u, dc, net::os_secret())
    });
    let reg_config = RegistrarConfig {
        domains: args.domains.clone(),
        min_expires: args.min_expires,
        max_expires: args.max_expires.max(args.min_expires),
        default_expires: 3600.clamp(args.min_expires, args.max_expires.max(args.min_expires)),
        ..RegistrarConfig::default()
    };
    let locations = SharedLocations::new(locations);

    // HTTP listeners (SIP over WebSocket) are bound first so the proxy knows every
    // address it owns.
    let mut http = Vec::new();
    for l in &listen {
        if let Listen::Ws(addr) = l {
            let listener = tokio::net::TcpListener::bind(addr)
                .await
                .map_err(|e| anyhow::anyhow!("cannot bind HTTP {addr}: {e}"))?;
            http.push(listener);
        }
    }
    let mut owned = Vec::new();
    for l in &listen {
        match l {
            Listen::Udp(a) => owned.push(proxy::Listener {
                transport: sip::Transport::Udp,
                addr: *a,
            }),
            Listen::Tcp(a) => owned.push(proxy::Listener {
                transport: sip::Transport::Tcp,
                addr: *a,
            }),
            Listen::Ws(_) => {}
        }
    }
    for h in &http {
        owned.push(proxy::Listener {
            transport: sip::Transport::Ws,
            addr: h.local_addr()?,
        });
    }
    let sipd_config = SipdConfig {
        overload_queue_delay: args.overload_delay,
        ..SipdConfig::default()
    };
    // Several cores when several threads serve SIP, so that two messages rarely wait for
    // the same core (a core is locked for one message at a time).
    let workers = args.workers.max(1);
    let shards = if workers == 1 {
        1
    } else {
        workers * SHARDS_PER_WORKER
    };
    let proxy_config = proxy::ProxyConfig {
        mode: if args.redirect {
            proxy::Mode::Redirect
        } else {
            proxy::Mode::Proxy
        },
        auth_invite: args.auth_invite,
        server: sipd_config.server.clone(),
        ..proxy::ProxyConfig::default()
    };
    let local = proxy::Local {
        listeners: owned,
        domains: args.domains.clone(),
    };
    let (mono, unix) = net::now_anchor();
    // The cores share the location service and the authenticator (users, nonces' replay
    // state); each has its own seeds. One of them purges and drops closed flows' bindings.
    let cores = (0..shards)
        .map(|i| {
            let registrar = Registrar::new(
                reg_config.clone(),
                auth.clone(),
                locations.clone(),
                net::os_seed(),
            );
            let proxy = proxy::Proxy::new(proxy_config.clone(), local.clone(), net::os_seed());
            let config = SipdConfig {
                location_upkeep: i == 0,
                ..sipd_config.clone()
            };
            Sipd::new(config, registrar, proxy, mono, unix)
        })
        .collect();

    let udp: Vec<SocketAddr> = listen
        .iter()
        .filter_map(|l| {
            if let Listen::Udp(a) = l {
                Some(*a)
            } else {
                None
            }
        })
        .collect();
    let tcp: Vec<SocketAddr> = listen
        .iter()
        .filter_map(|l| {
            if let Listen::Tcp(a) = l {
                Some(*a)
            } else {
                None
            }
        })
        .collect();
    let resolver = match args.dns {
        Some(addr) => net::SipResolver::with_nameserver(addr)?,
        None => net::SipResolver::system()?,
    };
    let server =
        net::start_sharded(cores, workers, &udp, &tcp, net::Limits::default(), resolver).await?;

    // The web phone's lines: a user agent of their own whose requests go through this
    // server's first UDP listener, and one UDP socket for every browser's WebRTC media.
    let mut ua_running = None;
    let mut phone = None;
    let mut phone_lines = Vec::new();
    if args.phone
        && let Some(first_http) = http.first()
    {
        let http_addr = first_http.local_addr()?;
        let proxy_addr = server.udp.first().copied().ok_or_else(|| {
            anyhow::anyhow!(
                "the web phone (--phone, web.phone) needs a SIP UDP listener for its lines"
            )
        })?;
        let mut uc = ua::UaConfig::new(SocketAddr::new(proxy_addr.ip(), 0));
        uc.media_ip = Some(proxy_addr.ip());
        uc.rtp_ports = args.phone_rtp_ports;
        let running = ua::Ua::start(uc).await.context("web phone user agent")?;
        let webrtc_addr = args.webrtc.unwrap_or(http_addr);
        let rtc = front_web::RtcHandle::start(webrtc_addr, args.packet_clock)
            .await
            .with_context(|| format!("cannot bind WebRTC UDP {webrtc_addr}"))?;
        let mut pc = front_web::PhoneConfig::default();
        pc.origins.clone_from(&args.origins);
        pc.per_ip = args.max_per_ip;
        pc.total = args.max_sockets;
        pc.require_credentials = !http_addr.ip().is_loopback();
        pc.outbound_proxy = Some(
            sip::Uri::parse(&format!("sip:{proxy_addr};lr"))
                .map_err(|e| anyhow::anyhow!("outbound proxy sip:{proxy_addr}: {e}"))?,
        );
        phone_lines.push(format!(
            "  WebRTC UDP     {} (media {})",
            rtc.local(),
            if rtc.packet_clock() {
                "on the 20 ms packet clock"
            } else {
                "forwarded per packet"
            }
        ));
        phone = Some(front_web::Phone::new(
            running.handle(),
            running.media_ip(),
            rtc,
            pc,
        ));
        ua_running = Some(running);
    }

    let mut lines = Vec::new();
    for a in &server.udp {
        lines.push(format!("  SIP UDP        {a}"));
    }
    for a in &server.tcp {
        lines.push(format!("  SIP TCP        {a}"));
    }
    for listener in http {
        {
            let local = listener.local_addr()?;
            let mut app = Router::new()
                .route("/healthz", get(|| async { "ok\n" }))
                .merge(net::ws_router(server.handle.clone(), local, false));
            lines.push(format!("  SIP WebSocket  ws://{local}/sip"));
            if let Some(p) = &phone {
                app = app.merge(p.router()).merge(front_web::assets::router());
                lines.push(format!("  web phone      http://{local}/"));
                lines.push(format!("  phone API      ws://{local}/phone/USER@DOMAIN"));
            }
            lines.push(format!("  health         http://{local}/healthz"));
            tokio::spawn(async move {
                let svc = app.into_make_service_with_connect_info::<SocketAddr>();
                if let Err(e) = axum::serve(listener, svc).await {
                    tracing::error!(error = %e, "HTTP server stopped");
                }
            });
        }
    }
    lines.extend(phone_lines);
    let title = if quick_start {
        "Switchboard is running (quick start: every role on loopback)"
    } else {
        "Switchboard SIP server is running (registrar and proxy)"
    };
    println!("{title}");
    for l in lines.iter().chain(extra) {
        println!("{l}");
    }
    println!("  registration   {auth_desc}");
    if !args.domains.is_empty() {
        println!("  domains        {}", args.domains.join(", "));
    }
    println!("  data           {}", db_path.display());
    if quick_start && let Some(sip) = server.udp.first() {
        let who = if auth_open {
            format!("any user@{}, any password", sip.ip())
        } else {
            "a configured user".to_owned()
        };
        println!(
            "Open the web phone in two tabs and call between them, or point a SIP phone at \
             {sip} ({who}). Ctrl-C stops."
        );
    }
    info!("ready");

    let result = tokio::select! {
        _ = shutdown_signal() => {
            info!("shutting down");
            Ok(())
        }
        r = server.task => r.context("SIP core task failed"),
    };
    if let Some(u) = ua_running {
        // Web phone lines end their calls and unregister while the server still runs.
        u.shutdown().await;
    }
    // Every registration answered so far (the lines' unregistrations included) is
    // committed before the process exits.
    let _ = tokio::task::spawn_blocking(move || flusher.flush()).await;
    info!("location store flushed");
    result
}

pub(crate) async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => return std::future::pending().await,
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listener_pairs() {
        let a = SipdArgs {
            local: vec!["127.0.0.1:5070".into(), "127.0.0.1".into()],
            transport: vec!["udp".into(), "TCP".into()],
            ..SipdArgs::default()
        };
        assert_eq!(
            listeners(&a).unwrap(),
            vec![
                Listen::Udp("127.0.0.1:5070".parse().unwrap()),
                Listen::Tcp("127.0.0.1:5060".parse().unwrap())
            ]
        );
        let bad = SipdArgs {
            local: vec!["127.0.0.1".into()],
            transport: vec!["udp".into(), "tcp".into()],
            ..SipdArgs::default()
        };
        assert!(listeners(&bad).is_err());
        let unknown = SipdArgs {
            transport: vec!["sctp".into()],
            ..SipdArgs::default()
        };
        assert!(listeners(&unknown).is_err());
        assert!(listeners(&SipdArgs::default()).unwrap().is_empty());
    }
}
