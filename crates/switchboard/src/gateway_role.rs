//! Wiring of the SIP-RTMP gateway role (the original `siprtmp`): a user agent for the
//! lines and the RTMP server with the `sip` application.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use anyhow::{Context, anyhow};
use clap::Args;
use front_rtmp::{Server, ServerConfig, ServerHandle};
use gateway::{GatewayConfig, SipGateway};
use tracing::info;
use ua::{PortRange, Ua, UaConfig};

use crate::config::{self, GatewaySettings};

/// `switchboard gateway` options; each one given overrides the config file's
/// `[gateway]` key (or `rtmp.listen` for -i/-p).
#[derive(Args, Debug, Clone)]
pub struct GatewayArgs {
    /// RTMP listen IP (rtmp.listen). Beyond loopback, anonymous connects (empty authpass)
    /// are refused. Default: 127.0.0.1.
    #[arg(short = 'i', long = "host")]
    pub host: Option<IpAddr>,
    /// RTMP listen port (rtmp.listen). Default: 1935.
    #[arg(short = 'p', long)]
    pub port: Option<u16>,
    /// Listen IP for the lines' SIP and RTP sockets. Default: 127.0.0.1.
    #[arg(short = 'l', long = "int-ip")]
    pub int_ip: Option<IpAddr>,
    /// IP advertised in SIP and SDP (NAT); default: --int-ip.
    #[arg(short = 'e', long = "ext-ip")]
    pub ext_ip: Option<IpAddr>,
    /// Also trace the RTMP, SIP and media layers (like -d, but everything).
    #[arg(short = 'D', long = "verbose-all")]
    pub verbose_all: bool,
    /// Where the lines send their SIP: HOST:PORT or a SIP URI. Default: RFC 3263 lookup
    /// of each AOR's domain.
    #[arg(long)]
    pub outbound_proxy: Option<String>,
    /// UDP port of the lines' shared SIP socket (0: any free port). Default: 0.
    #[arg(long)]
    pub sip_port: Option<u16>,
    /// RTP/RTCP port range LO-HI for the calls. Default: 20000-29999.
    #[arg(long)]
    pub rtp_ports: Option<PortRange>,
    /// Keep older connections of the same AOR instead of closing them.
    #[arg(long)]
    pub several_per_aor: bool,
    /// DNS server for RFC 3263 lookups, HOST:PORT. Default: the system's.
    #[arg(long)]
    pub dns: Option<SocketAddr>,
}

/// The options given, over the configuration.
pub fn apply_args(l: &mut config::Loaded, a: &GatewayArgs) {
    if a.host.is_some() || a.port.is_some() {
        let old = crate::parse_listen(&l.config.rtmp.listen, 1935).ok();
        let ip = a
            .host
            .or(old.map(|o| o.ip()))
            .unwrap_or(IpAddr::from([127, 0, 0, 1]));
        let port = a.port.or(old.map(|o| o.port())).unwrap_or(1935);
        l.cli("rtmp.listen", Some(SocketAddr::new(ip, port)), |c, v| {
            c.rtmp.listen = v.to_string();
        });
    }
    l.cli("gateway.int_ip", a.int_ip, |c, v| {
        c.gateway.int_ip = v.to_string()
    });
    l.cli("gateway.ext_ip", a.ext_ip, |c, v| {
        c.gateway.ext_ip = v.to_string()
    });
    l.cli(
        "gateway.outbound_proxy",
        a.outbound_proxy.clone(),
        |c, v| {
            c.gateway.outbound_proxy = v;
        },
    );
    l.cli("gateway.sip_port", a.sip_port, |c, v| {
        c.gateway.sip_port = v.into()
    });
    l.cli("gateway.rtp_ports", a.rtp_ports, |c, v| {
        c.gateway.rtp_ports = v.to_string();
    });
    l.cli(
        "gateway.several_per_aor",
        a.several_per_aor.then_some(true),
        |c, v| {
            c.gateway.several_per_aor = v;
        },
    );
    l.cli("gateway.dns", a.dns, |c, v| c.gateway.dns = v.to_string());
}

/// A running gateway: its lines' user agent and the `sip` application to register with
/// an RTMP server.
pub struct Gateway {
    pub ua: Ua,
    pub app: Arc<SipGateway>,
}

/// Starts the lines' user agent and the `sip` application.
pub async fn start(args: &GatewaySettings) -> anyhow::Result<Gateway> {
    let ip = args.ext_ip.unwrap_or(args.int_ip);
    if ip.is_unspecified() {
        anyhow::bail!(
            "gateway.int_ip (--int-ip) {} needs gateway.ext_ip (--ext-ip): the address for SIP and SDP",
            args.int_ip
        );
    }
    let mut cfg = UaConfig::new(SocketAddr::new(args.int_ip, args.sip_port));
    cfg.media_ip = Some(ip);
    if args.ext_ip.is_some() {
        if args.sip_port == 0 {
            anyhow::bail!(
                "gateway.ext_ip (--ext-ip) needs a fixed gateway.sip_port (--sip-port): it is \
                 advertised in Contact"
            );
        }
        cfg.public = Some(SocketAddr::new(ip, args.sip_port));
    }
    cfg.rtp_ports = args.rtp_ports;
    if let Some(dns) = args.dns {
        cfg.resolver = Some(net::SipResolver::with_nameserver(dns)?);
    }
    let outbound_proxy = match &args.outbound_proxy {
        Some(p) => {
            let text = if p.starts_with("sip:") || p.starts_with("sips:") {
                p.clone()
            } else {
                format!("sip:{p};lr")
            };
            Some(
                sip::Uri::parse(&text)
                    .map_err(|e| anyhow!("gateway.outbound_proxy (--outbound-proxy) {p:?}: {e}"))?,
            )
        }
        None => None,
    };
    let ua = Ua::start(cfg)
        .await
        .context("starting the lines' SIP socket")?;
    let mut gw = GatewayConfig::default();
    gw.outbound_proxy = outbound_proxy;
    gw.several_per_aor = args.several_per_aor;
    gw.require_credentials = !args.rtmp.ip().is_loopback();
    let app = SipGateway::new(ua.handle(), gw);
    Ok(Gateway { ua, app })
}

/// The RTMP server on `listen` with the gateway's `sip` application; `threads` > 0 runs
/// its connections, and their calls' media tasks, on that many single-threaded runtimes
/// (rtmp.threads).
pub async fn serve_rtmp(
    gw: &Gateway,
    listen: SocketAddr,
    threads: usize,
) -> anyhow::Result<ServerHandle> {
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("cannot listen for RTMP on {listen}"))?;
    let cfg = ServerConfig {
        threads,
        ..ServerConfig::default()
    };
    Ok(Server::new(cfg)
        .app(gateway::APP_NAME, gw.app.clone())
        .spawn(listener))
}

/// Runs the gateway alone until interrupted.
pub async fn run(args: GatewaySettings, threads: usize) -> anyhow::Result<()> {
    let gw = start(&args).await?;
    let server = serve_rtmp(&gw, args.rtmp, threads).await?;
    info!(rtmp = %server.local_addr(), sip = %gw.ua.local_addr(), "gateway running");
    println!(
        "SIP-RTMP gateway: rtmp://{}/sip/USER@DOMAIN (lines' SIP on udp {})",
        server.local_addr(),
        gw.ua.local_addr()
    );
    crate::sipd_role::shutdown_signal().await;
    info!("shutting down");
    server.shutdown();
    gw.ua.shutdown().await;
    server.join().await;
    Ok(())
}
