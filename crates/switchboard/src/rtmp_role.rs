//! Wiring of the RTMP media server role (the original `rtmp.py`): the live relay with
//! FLV recording and playback for every application name.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use clap::Args;
use front_rtmp::{Application, LiveApp, Server, ServerConfig, ServerHandle};
use tracing::{info, warn};

use crate::parse_listen;

#[derive(Args, Debug, Clone)]
pub struct RtmpArgs {
    /// Listen address. Default loopback; plain RTMP has no authentication, so any other
    /// address lets everyone who reaches it publish, play and record (a warning says so).
    #[arg(short = 'i', long = "host", default_value = "127.0.0.1")]
    pub host: String,
    /// Listen port.
    #[arg(short = 'p', long = "port", default_value_t = 1935)]
    pub port: u16,
    /// Document root: `publish(name, "record"|"append")` writes ROOT/NAME.flv, `play`
    /// reads it.
    #[arg(short = 'r', long = "root", default_value = ".")]
    pub root: PathBuf,
    /// Event-loop threads for RTMP connections, each a single-threaded runtime that
    /// connections are dealt to round-robin (0: tasks on the shared runtime).
    #[arg(long = "threads", default_value_t = 1)]
    pub threads: usize,
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
pub async fn run(args: RtmpArgs) -> anyhow::Result<()> {
    let addr = parse_listen(&args.host, args.port)?;
    let addr = SocketAddr::new(addr.ip(), args.port);
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
