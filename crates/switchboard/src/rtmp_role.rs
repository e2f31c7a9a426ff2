//! Wiring of the RTMP media server role (the original `rtmp.py`): the live relay with
//! FLV recording and playback for every application name.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use clap::Args;
use front_rtmp::{Application, LiveApp, Server, ServerConfig, ServerHandle};
use tracing::{info, warn};

use crate::config::{self, RtmpSettings};
use crate::parse_listen;

/// `switchboard rtmp` options; each one given overrides the config file's `[rtmp]` key.
#[derive(Args, Debug, Clone)]
pub struct RtmpArgs {
    /// Listen address (rtmp.listen). Default loopback; plain RTMP has no authentication,
    /// so any other address lets everyone who reaches it publish, play and record (a
    /// warning says so).
    #[arg(short = 'i', long = "host")]
    pub host: Option<String>,
    /// Listen port (rtmp.listen). Default: 1935.
    #[arg(short = 'p', long = "port")]
    pub port: Option<u16>,
    /// Document root (rtmp.root): `publish(name, "record"|"append")` writes ROOT/NAME.flv,
    /// `play` reads it. Default: the current directory.
    #[arg(short = 'r', long = "root")]
    pub root: Option<PathBuf>,
    /// Event-loop threads for RTMP connections (rtmp.threads), each a single-threaded
    /// runtime that connections are dealt to round-robin (0: tasks on the shared runtime).
    /// Default: 1.
    #[arg(long = "threads")]
    pub threads: Option<u32>,
}

/// The options given, over the configuration. A bad -i is reported by `resolve`.
pub fn apply_args(l: &mut config::Loaded, a: &RtmpArgs) {
    if a.host.is_some() || a.port.is_some() {
        let old = parse_listen(&l.config.rtmp.listen, 1935).ok();
        let port = a.port.or(old.map(|o| o.port())).unwrap_or(1935);
        let listen = match &a.host {
            Some(h) => match parse_listen(h, port) {
                Ok(addr) => SocketAddr::new(addr.ip(), port).to_string(),
                Err(_) => h.clone(),
            },
            None => SocketAddr::new(
                old.map(|o| o.ip())
                    .unwrap_or(std::net::IpAddr::from([127, 0, 0, 1])),
                port,
            )
            .to_string(),
        };
        l.cli("rtmp.listen", Some(listen), |c, v| c.rtmp.listen = v);
    }
    l.cli("rtmp.root", a.root.as_ref(), |c, v| {
        c.rtmp.root = v.to_string_lossy().into_owned();
    });
    l.cli("rtmp.threads", a.threads, |c, v| c.rtmp.threads = v);
}

/// Binds and starts the RTMP server: `apps` by name (e.g. the gateway's `sip`), the
/// live relay for every other name. Returns the running server.
pub async fn start(
    addr: SocketAddr,
    root: PathBuf,
    apps: Vec<(&str, Arc<dyn Application>)>,
    threads: usize,
) -> anyhow::Result<ServerHandle> {
    if !addr.ip().is_loopback() {
        warn!(
            %addr,
            "RTMP listens beyond loopback: plain RTMP has no authentication, anyone who \
             reaches this address can publish, play and record streams"
        );
    }
    std::fs::create_dir_all(&root)
        .with_context(|| format!("cannot create RTMP root {}", root.display()))?;
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| anyhow::anyhow!("cannot bind RTMP {addr}: {e}"))?;
    let config = ServerConfig {
        threads,
        ..ServerConfig::default()
    };
    let mut server = Server::new(config).default_app(Arc::new(LiveApp::new(Some(root))));
    for (name, app) in apps {
        server = server.app(name, app);
    }
    let server = server.spawn(listener);
    Ok(server)
}

/// `switchboard rtmp`: runs the RTMP server until interrupted.
pub async fn run(args: RtmpSettings) -> anyhow::Result<()> {
    let addr = args.listen;
    let server = start(addr, args.root.clone(), Vec::new(), args.threads).await?;
    println!("Switchboard RTMP server is running (live relay, FLV record and playback)");
    println!("  RTMP           rtmp://{}/live/NAME", server.local_addr());
    println!("  root           {}", args.root.display());
    if !addr.ip().is_loopback() {
        println!(
            "  warning        no authentication: anyone who reaches {addr} can publish and play"
        );
    }
    info!("ready");
    crate::sipd_role::shutdown_signal().await;
    info!("shutting down");
    server.shutdown();
    server.join().await;
    Ok(())
}
