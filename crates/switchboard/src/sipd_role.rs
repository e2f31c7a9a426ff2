//! Wiring of the SIP server role: listeners, store, registrar, HTTP for WebSocket.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use axum::Router;
use axum::routing::get;
use registrar::{Authenticator, Registrar, RegistrarConfig};
use sip::auth::DigestConfig;
use sipd::{Sipd, SipdConfig};
use store::SqliteLocations;
use tracing::info;

use crate::{SipdArgs, config, parse_listen};

#[derive(Debug, PartialEq, Eq)]
enum Listen {
    Udp(SocketAddr),
    Tcp(SocketAddr),
    Ws(SocketAddr),
}

fn listeners(args: &SipdArgs) -> anyhow::Result<Vec<Listen>> {
    let (locals, transports) = match (args.local.len(), args.transport.len()) {
        (0, 0) => (
            vec!["127.0.0.1:5060".to_string(), "127.0.0.1:5060".to_string()],
            vec!["udp".to_string(), "tcp".to_string()],
        ),
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

/// Runs the SIP server until interrupted. `quick_start` labels the all-in-one mode.
/// `extra` lines (other roles started alongside, e.g. RTMP) are printed with the listeners.
pub async fn run(
    args: SipdArgs,
    data: PathBuf,
    quick_start: bool,
    extra: &[String],
) -> anyhow::Result<()> {
    let listen = listeners(&args)?;
    let users = match &args.users {
        Some(p) => Some(config::load_users(p)?),
        None => None,
    };
    // Secure by default: open registration only when every listener is on loopback.
    if users.is_none() {
        for l in &listen {
            let (Listen::Udp(a) | Listen::Tcp(a) | Listen::Ws(a)) = l;
            if !a.ip().is_loopback() {
                anyhow::bail!(
                    "refusing to listen on {a} without --users: open registration is only \
                     allowed on loopback; give a users file to enable digest authentication"
                );
            }
        }
    }
    std::fs::create_dir_all(&data)
        .with_context(|| format!("cannot create data directory {}", data.display()))?;
    let db_path = data.join("locations.db");
    let locations = SqliteLocations::open(&db_path)
        .with_context(|| format!("cannot open {}", db_path.display()))?;
    // Registrations are written behind to SQLite; on shutdown every one acknowledged
    // so far is committed before the process exits.
    let flusher = locations.flusher();

    let realm = args
        .realm
        .clone()
        .or_else(|| args.domain.first().cloned())
        .unwrap_or_else(|| "switchboard".to_string());
    let auth_desc = match &users {
        Some(u) => format!("digest (realm \"{realm}\", {} users)", u.len()),
        None => "open (loopback only)".to_string(),
    };
    let auth = users.map(|u| {
        let mut dc = DigestConfig::new(&realm);
        if args.sha256 {
            dc = dc.with_sha256();
        }

        dc.qop = !args.no_qop;
        Authenticator::new(u, dc, net::os_secret())
    });
    let reg_config = RegistrarConfig {
        domains: args.domain.iter().map(|d| d.to_ascii_lowercase()).collect(),
        min_expires: args.min_expires,
        max_expires: args.max_expires.max(args.min_expires),
        default_expires: 3600.clamp(args.min_expires, args.max_expires.max(args.min_expires)),
        ..RegistrarConfig::default()
    };
    let registrar = Registrar::new(reg_config, auth, locations, net::os_seed());

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
    let sipd_config = SipdConfig::default();
    let proxy_config = proxy::ProxyConfig {
        mode: if args.mode == "redirect" {
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
        domains: args.domain.iter().map(|d| d.to_ascii_lowercase()).collect(),
    };
    let proxy = proxy::Proxy::new(proxy_config, local, net::os_seed());
    let (mono, unix) = net::now_anchor();
    let core = Sipd::new(sipd_config, registrar, proxy, mono, unix);

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
    let server = net::start(core, &udp, &tcp, net::Limits::default(), resolver).await?;

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
            anyhow::anyhow!("--phone needs a UDP listener for the web phone's lines")
        })?;
        let mut uc = ua::UaConfig::new(SocketAddr::new(proxy_addr.ip(), 0));
        uc.media_ip = Some(proxy_addr.ip());
        let running = ua::Ua::start(uc).await.context("web phone user agent")?;
        let webrtc_addr = args.webrtc.unwrap_or(http_addr);
        let rtc = front_web::RtcHandle::start(webrtc_addr)
            .await
            .with_context(|| format!("cannot bind WebRTC UDP {webrtc_addr}"))?;
        let mut pc = front_web::PhoneConfig::default();
        pc.origins.clone_from(&args.origins);
        pc.require_credentials = !http_addr.ip().is_loopback();
        pc.outbound_proxy = Some(
            sip::Uri::parse(&format!("sip:{proxy_addr};lr"))
                .map_err(|e| anyhow::anyhow!("outbound proxy sip:{proxy_addr}: {e}"))?,
        );
        phone_lines.push(format!("  WebRTC UDP     {}", rtc.local()));
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
    if !args.domain.is_empty() {
        println!("  domains        {}", args.domain.join(", "));
    }
    println!("  data           {}", db_path.display());
    if quick_start {
        println!(
            "Open the web phone in two tabs and call between them, or point a SIP phone at \
             127.0.0.1:5060 (any user@127.0.0.1, any password). Ctrl-C stops."
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
    }
}
