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
use config::Mode;

/// Switchboard: a SIP server and gateway for putting phones in web pages.
///
/// With no subcommand, every role runs on loopback (the all-in-one). Settings come from
/// the built-in defaults, then `--config FILE`, then `SWITCHBOARD_<SECTION>_<KEY>`
/// environment variables, then the command line (switchboard.example.toml lists them).
#[derive(Parser, Debug)]
#[command(version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    /// TOML config file (every role's settings; see switchboard.example.toml).
    #[arg(long, global = true, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Print the effective configuration (defaults, file, environment, options) as TOML,
    /// passwords redacted, and exit.
    #[arg(long, global = true)]
    print_config: bool,
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

/// `switchboard sipd` options; each one given overrides the config file's `[sip]` and
/// `[web]` keys.
#[derive(Args, Debug, Default, Clone)]
pub struct SipdArgs {
    /// Listen address HOST[:PORT] (repeatable, paired in order with -t). HOST alone means
    /// port 5060. Replaces sip.udp, sip.tcp and web.listen. Default: UDP and TCP 127.0.0.1:5060.
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
    /// Shortest registration interval accepted (423 below it). Default: 60.
    #[arg(long)]
    pub min_expires: Option<u32>,
    /// Longest registration interval granted. Default: 3600.
    #[arg(long)]
    pub max_expires: Option<u32>,
    /// Do not offer qop=auth in challenges (for RFC 2069-only clients).
    #[arg(long)]
    pub no_qop: bool,
    /// Also offer a SHA-256 digest challenge after the MD5 one (RFC 8760). Off by default:
    /// baresip 1.0 and JsSIP fail when a 401 carries more than one challenge.
    #[arg(long)]
    pub sha256: bool,

    /// `proxy` forks calls to every registered contact; `redirect` answers 302 with them.
    /// Default: proxy.
    #[arg(long, value_parser = ["proxy", "redirect"])]
    pub mode: Option<String>,
    /// Challenge (407) calls from local users before proxying them (needs --users).
    #[arg(long)]
    pub auth_invite: bool,
    /// DNS server for RFC 3263 lookups (NAPTR/SRV/A), HOST:PORT. Default: the system's.
    #[arg(long)]
    pub dns: Option<SocketAddr>,
    /// Threads serving SIP (sip.workers); 0: one per CPU core.
    #[arg(long)]
    pub workers: Option<u32>,

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

/// The configuration of `mode`: defaults < `--config` < environment < the options given.
fn configure(cli: &Cli) -> anyhow::Result<config::Loaded> {
    let mode = match &cli.command {
        None => Mode::AllInOne,
        Some(Command::Sipd(_)) => Mode::Sipd,
        Some(Command::Gateway(_)) => Mode::Gateway,
        Some(Command::Rtmp(_)) => Mode::Rtmp,
        Some(Command::Phone(_) | Command::RtmpPhone(_)) => {
            anyhow::bail!(
                "--config and --print-config are for the server roles (switchboard, sipd, \
                 gateway, rtmp); the phones take their options on the command line"
            )
        }
    };
    let mut l = config::load(mode, cli.config.as_deref(), std::env::vars())?;
    let s = |p: &PathBuf| p.to_string_lossy().into_owned();
    l.cli("data", cli.data.as_ref(), |c, v| c.data = s(v));
    l.cli("log", cli.verbose.then_some(()), |c, ()| {
        c.log = "debug".into();
    });
    match &cli.command {
        Some(Command::Sipd(a)) => sipd_role::apply_args(&mut l, a)?,
        Some(Command::Gateway(a)) => gateway_role::apply_args(&mut l, a),
        Some(Command::Rtmp(a)) => rtmp_role::apply_args(&mut l, a),
        _ => {}
    }
    l.finish();
    Ok(l)
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let server = matches!(
        cli.command,
        None | Some(Command::Sipd(_) | Command::Gateway(_) | Command::Rtmp(_))
    );
    let loaded = if server || cli.config.is_some() || cli.print_config {
        match configure(&cli) {
            Ok(l) => Some(l),
            Err(e) => {
                eprintln!("switchboard: {e:#}");
                return std::process::ExitCode::FAILURE;
            }
        }
    } else {
        None
    };
    if let Some(l) = &loaded {
        for name in &l.ignored_env {
            eprintln!("switchboard: warning: ignoring {name}: it names no setting");
        }
    }
    let settings = match loaded.as_ref().map(config::Loaded::resolve).transpose() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("switchboard: {e:#}");
            return std::process::ExitCode::FAILURE;
        }
    };
    if cli.print_config
        && let Some(l) = &loaded
    {
        return match l.to_toml() {
            Ok(text) => {
                print!("{text}");
                std::process::ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("switchboard: {e:#}");
                std::process::ExitCode::FAILURE
            }
        };
    }
    let filter = match (&cli.command, &loaded) {
        (Some(Command::Gateway(g)), _) if g.verbose_all => "trace".to_owned(),
        (_, Some(l)) => l.config.log.clone(),
        _ if cli.verbose => "debug".to_owned(),
        _ => "info".to_owned(),
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
    let result = runtime.block_on(async move {
        match (cli.command, settings) {
            (Some(Command::Phone(args)), _) => phone::run(args).await,
            (Some(Command::RtmpPhone(args)), _) => rtmp_phone::run(args).await,
            (_, None) => anyhow::bail!("no configuration"),
            (Some(Command::Sipd(_)), Some(s)) => sipd_role::run(s.sip, s.data, false, &[]).await,
            (Some(Command::Rtmp(_)), Some(s)) => rtmp_role::run(s.rtmp).await,
            (Some(Command::Gateway(_)), Some(s)) => {
                gateway_role::run(s.gateway, s.rtmp.threads).await
            }
            (None, Some(s)) => all_in_one(s).await,
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

/// Every role: the SIP server with the web front, and one RTMP server hosting the
/// gateway's `sip` application and the live relay for every other name; the gateway's
/// lines register at the SIP server.
async fn all_in_one(s: config::Settings) -> anyhow::Result<()> {
    if s.sip.udp.is_empty() {
        anyhow::bail!(
            "the all-in-one needs a SIP UDP listener (sip.udp): the gateway's and the web \
             phone's lines send their SIP there"
        );
    }
    sipd_role::check_open_registration(&s.sip)?;
    let gw = gateway_role::start(&s.gateway).await?;
    let rtmp = rtmp_role::start(
        s.rtmp.listen,
        s.rtmp.root.clone(),
        vec![(
            gateway::APP_NAME,
            gw.app.clone() as Arc<dyn front_rtmp::Application>,
        )],
        s.rtmp.threads,
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
            s.rtmp.root.display()
        ),
    ];
    sipd_role::run(s.sip, s.data, true, &extra).await
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
