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

#[derive(Args, Debug, Clone)]
pub struct GatewayArgs {
    /// RTMP listen IP. Beyond loopback, anonymous connects (empty authpass) are refused.
    #[arg(short = 'i', long = "host", default_value = "127.0.0.1")]
    pub host: IpAddr,
    /// RTMP listen port.
    #[arg(short = 'p', long, default_value_t = 1935)]
    pub port: u16,
    /// Listen IP for the lines' SIP and RTP sockets.
    #[arg(short = 'l', long = "int-ip", default_value = "127.0.0.1")]
    pub int_ip: IpAddr,
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
    /// UDP port of the lines' shared SIP socket (0: any free port).
    #[arg(long, default_value_t = 0)]
    pub sip_port: u16,
    /// RTP/RTCP port range LO-HI for the calls.
    #[arg(long, default_value = "20000-29999")]
    pub rtp_ports: PortRange,
    /// Keep older connections of the same AOR instead of closing them.
    #[arg(long)]
    pub several_per_aor: bool,
    /// DNS server for RFC 3263 lookups, HOST:PORT. Default: the system's.
    #[arg(long)]
    pub dns: Option<SocketAddr>,
}

impl GatewayArgs {
    /// The defaults, with the lines' SIP going to `outbound_proxy` (the all-in-one mode).
    pub fn quick_start(outbound_proxy: &str) -> GatewayArgs {
        GatewayArgs {
            host: IpAddr::from([127, 0, 0, 1]),
            port: 1935,
            int_ip: IpAddr::from([127, 0, 0, 1]),
            ext_ip: None,
            verbose_all: false,
            outbound_proxy: Some(outbound_proxy.to_owned()),
            sip_port: 0,
            rtp_ports: PortRange::new(20000, 29999).unwrap_or(PortRange::DEFAULT),
            several_per_aor: false,
            dns: None,
        }
    }
}

/// A running gateway: its lines' user agent and the `sip` application to register with
/// an RTMP server.
pub struct Gateway {
    pub ua: Ua,
    pub app: Arc<SipGateway>,
}

/// Starts the lines' user agent and the `sip` application.
pub async fn start(args: &GatewayArgs) -> anyhow::Result<Gateway> {
    let ip = args.ext_ip.unwrap_or(args.int_ip);
    if ip.is_unspecified() {
        anyhow::bail!(
            "--int-ip {} needs --ext-ip: the address for SIP and SDP",
            args.int_ip
        );
    }
    let mut cfg = UaConfig::new(SocketAddr::new(args.int_ip, args.sip_port));
    cfg.media_ip = Some(ip);
    if args.ext_ip.is_some() {
        if args.sip_port == 0 {
            anyhow::bail!("--ext-ip needs a fixed --sip-port (it is advertised in Contact)");
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
            Some(sip::Uri::parse(&text).map_err(|e| anyhow!("--outbound-proxy {p:?}: {e}"))?)
        }
        None => None,
    };
    let ua = Ua::start(cfg)
        .await
        .context("starting the lines' SIP socket")?;
    let mut gw = GatewayConfig::default();
    gw.outbound_proxy = outbound_proxy;
    gw.several_per_aor = args.several_per_aor;
    gw.require_credentials = !args.host.is_loopback();
    let app = SipGateway::new(ua.handle(), gw);
    Ok(Gateway { ua, app })
}

/// The RTMP server on `listen` with the gateway's `sip` application.
pub async fn serve_rtmp(gw: &Gateway, listen: SocketAddr) -> anyhow::Result<ServerHandle> {
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("cannot listen for RTMP on {listen}"))?;
    Ok(Server::new(ServerConfig::default())
        .app(gateway::APP_NAME, gw.app.clone())
        .spawn(listener))
}

/// Runs the gateway alone until interrupted.
pub async fn run(args: GatewayArgs) -> anyhow::Result<()> {
    let gw = start(&args).await?;
    let server = serve_rtmp(&gw, SocketAddr::new(args.host, args.port)).await?;
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
