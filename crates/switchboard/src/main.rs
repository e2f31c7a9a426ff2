//! The `switchboard` binary: command line, configuration and wiring. No protocol logic.

mod config;
mod gateway_role;
mod phone;
mod rtmp_audio;
mod rtmp_phone;
mod rtmp_role;
mod sipd_role;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use clap::{Args, Parser, Subcommand};

/// Switchboard: a SIP server and gateway for putting phones in web pages.
#[derive(Parser, Debug)]
#[command(version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    /// Data directory (SQLite database). Default: ~/.local/share/switchboard
    #[arg(long, global = true)]
    data: Option<PathBuf>,
    /// Debug logging.
    #[arg(short = 'd', long, global = true)]
    verbose: bool,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// The SIP server alone: registrar (the original `sipd`).
    Sipd(SipdArgs),
    /// A command-line SIP phone: register, call or answer, play/record WAV, send DTMF.
    Phone(phone::PhoneArgs),
    /// The SIP-RTMP gateway (the original `siprtmp`): RTMP clients at
    /// rtmp://HOST/sip/USER@DOMAIN become SIP phones.
    Gateway(gateway_role::GatewayArgs),
    /// The RTMP media server alone (the original `rtmp.py`): live relay, FLV record/playback.
    Rtmp(rtmp_role::RtmpArgs),
    /// An RTMP phone like the Flash VideoPhone: connect to a gateway, call or answer,
    /// publish a WAV as Speex/G.711, record the played stream (--no-sip: any RTMP server).
    RtmpPhone(rtmp_phone::RtmpPhoneArgs),
}

#[derive(Args, Debug, Default, Clone)]
pub struct SipdArgs {
    /// Listen address HOST[:PORT] (repeatable, paired in order with -t). HOST alone means port 5060.
    #[arg(short = 'l', long = "local")]
    pub local: Vec<String>,
    /// Transport for the matching -l: udp, tcp or ws (WebSocket at /sip over HTTP).
    #[arg(short = 't', long = "transport")]
    pub transport: Vec<String>,
    /// Hosted domain (repeatable). Registrations for other domains get 403.
    #[arg(short = 'r', long = "domain")]
    pub domain: Vec<String>,
    /// Users file (TOML with a [users] table). Enables digest authentication.
    #[arg(long)]
    pub users: Option<PathBuf>,
    /// Digest realm. Default: the first hosted domain, else "switchboard".
    #[arg(long)]
    pub realm: Option<String>,
    /// Shortest registration interval accepted (423 below it).
    #[arg(long, default_value_t = 60)]
    pub min_expires: u32,
    /// Longest registration interval granted.
    #[arg(long, default_value_t = 3600)]
    pub max_expires: u32,
    /// Do not offer qop=auth in challenges (for RFC 2069-only clients).
    #[arg(long)]
    pub no_qop: bool,
    /// Also offer a SHA-256 digest challenge after the MD5 one (RFC 8760). Off by default:
    /// baresip 1.0 and JsSIP fail when a 401 carries more than one challenge.
    #[arg(long)]
    pub sha256: bool,

    /// `proxy` forks calls to every registered contact; `redirect` answers 302 with them.
    #[arg(long, default_value = "proxy", value_parser = ["proxy", "redirect"])]
    pub mode: String,
    /// Challenge (407) calls from local users before proxying them (needs --users).
    #[arg(long)]
    pub auth_invite: bool,
    /// DNS server for RFC 3263 lookups (NAPTR/SRV/A), HOST:PORT. Default: the system's.
    #[arg(long)]
    pub dns: Option<SocketAddr>,

    /// Serve the web phone API (`/phone/USER@DOMAIN`, JSON over WebSocket, audio over
    /// WebRTC) on every ws listener; its lines register and call through this server.
    #[arg(long)]
    pub phone: bool,
    /// UDP address for the browsers' WebRTC media (the ICE host candidate, so a
    /// specific IP). Default: the first ws listener's address and port, over UDP.
    #[arg(long)]
    pub webrtc: Option<SocketAddr>,
    /// Origin allowed to open /phone sockets (repeatable; `*` for any). Default: pages
    /// served by this server only.
    #[arg(long = "origin")]
    pub origins: Vec<String>,
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let filter = match &cli.command {
        Some(Command::Gateway(g)) if g.verbose_all => "trace",
        _ if cli.verbose => "debug",
        _ => "info",
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(filter)),
        )
        .with_target(false)
        .with_writer(std::io::stderr)
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("switchboard: cannot start runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let data = cli.data.clone().unwrap_or_else(config::default_data_dir);
    let result = runtime.block_on(async move {
        match cli.command {
            Some(Command::Sipd(args)) => sipd_role::run(args, data, false, &[]).await,
            Some(Command::Rtmp(args)) => rtmp_role::run(args).await,
            Some(Command::Phone(args)) => phone::run(args).await,
            Some(Command::Gateway(args)) => gateway_role::run(args).await,
            Some(Command::RtmpPhone(args)) => rtmp_phone::run(args).await,
            None => {
                // Every role that exists so far, on loopback, with open registration.
                let args = SipdArgs {
                    local: vec![
                        "127.0.0.1:5060".into(),
                        "127.0.0.1:5060".into(),
                        "127.0.0.1:8080".into(),
                    ],
                    transport: vec!["udp".into(), "tcp".into(), "ws".into()],
                    min_expires: 60,
                    max_expires: 3600,
                    mode: "proxy".into(),
                    phone: true,
                    ..SipdArgs::default()
                };
                // The gateway's lines register at the SIP server above; one RTMP server
                // hosts its `sip` application and the live relay for every other name.
                let gw =
                    gateway_role::start(&gateway_role::GatewayArgs::quick_start("127.0.0.1:5060"))
                        .await?;
                let rtmp_root = data.join("rtmp");
                let rtmp = rtmp_role::start(
                    ([127, 0, 0, 1], 1935).into(),
                    rtmp_root.clone(),
                    vec![(
                        gateway::APP_NAME,
                        gw.app.clone() as Arc<dyn front_rtmp::Application>,
                    )],
                    0,
                )
                .await?;
                let extra = [
                    format!(
                        "  SIP-RTMP       rtmp://{}/sip/USER@DOMAIN (lines register here)",
                        rtmp.local_addr()
                    ),
                    format!(
                        "  RTMP           rtmp://{}/live/NAME (publish, play; recordings in {})",
                        rtmp.local_addr(),
                        rtmp_root.display()
                    ),
                ];
                sipd_role::run(args, data, true, &extra).await
            }
        }
    });
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("switchboard: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// Parses `HOST[:PORT]` (IPv6 as `[addr]:port`), with `default_port` when absent.
pub fn parse_listen(s: &str, default_port: u16) -> anyhow::Result<SocketAddr> {
    if let Ok(a) = s.parse::<SocketAddr>() {
        return Ok(a);
    }
    let host = s.trim_start_matches('[').trim_end_matches(']');
    let host = if host == "localhost" {
        "127.0.0.1"
    } else {
        host
    };
    match host.parse::<std::net::IpAddr>() {
        Ok(ip) => Ok(SocketAddr::new(ip, default_port)),
        Err(_) => anyhow::bail!("bad listen address {s:?}: expected IP[:PORT]"),
    }
}
