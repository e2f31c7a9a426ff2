//! Configuration: one TOML file for every role (`--config`), environment overrides
//! (`SWITCHBOARD_<SECTION>_<KEY>`, `SWITCHBOARD_<KEY>` for the top-level keys) and the
//! users file.
//!
//! Precedence, lowest first: the built-in defaults of the mode being run (the all-in-one's
//! differ from `sipd`'s in a few keys, e.g. `web.listen`), the config file, the
//! environment, the command line. `switchboard.example.toml` documents every key.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, anyhow, bail};
use serde::{Deserialize, Serialize};
use toml::{Table, Value};

/// Which roles run: the defaults and the printed sections depend on it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// `switchboard` alone: SIP server, web front, RTMP server with the gateway.
    AllInOne,
    Sipd,
    Gateway,
    Rtmp,
}

impl Mode {
    /// Whether this mode reads a section, top-level key or `section.key`.
    fn uses(self, key: &str) -> bool {
        if let Some((section, _)) = key.split_once('.')
            && !(self == Mode::Gateway && section == "rtmp")
        {
            return self.uses(section);
        }
        match self {
            Mode::AllInOne => true,
            Mode::Sipd => matches!(key, "data" | "log" | "sip" | "web" | "users"),
            Mode::Gateway => matches!(
                key,
                "log" | "gateway" | "rtmp" | "rtmp.listen" | "rtmp.threads"
            ),
            Mode::Rtmp => matches!(key, "log" | "rtmp"),
        }
    }
}

/// Every setting. Strings that may be empty mean "not set" (TOML has no null); the
/// effective value is filled in by [`Loaded::finish`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Data directory (the SQLite location database, the all-in-one's RTMP recordings).
    pub data: String,
    /// Log filter: error, warn, info, debug, trace (or a tracing directive list).
    pub log: String,
    pub sip: Sip,
    pub web: Web,
    pub gateway: Gateway,
    pub rtmp: Rtmp,
    /// Digest users: `"user"` (any hosted domain) or `"user@domain"` = password.
    pub users: BTreeMap<String, String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Sip {
    pub udp: Vec<String>,
    pub tcp: Vec<String>,
    pub domains: Vec<String>,
    pub users_file: String,
    pub realm: String,
    pub min_expires: u32,
    pub max_expires: u32,
    pub qop: bool,
    pub sha256: bool,
    pub mode: String,
    pub auth_invite: bool,
    pub dns: String,
    pub workers: u32,
    /// Overload protection: new calls get 503 once SIP datagrams have waited this many
    /// milliseconds in the receive queue for a second on end; 0 turns it off.
    pub overload_ms: u32,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Web {
    pub listen: Vec<String>,
    pub phone: bool,
    pub webrtc: String,
    pub origins: Vec<String>,
    pub rtp_ports: String,
    pub packet_clock: bool,
    pub max_per_ip: u32,
    pub max_sockets: u32,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Gateway {
    pub int_ip: String,
    pub ext_ip: String,
    pub sip_port: u32,
    pub rtp_ports: String,
    pub outbound_proxy: String,
    pub several_per_aor: bool,
    pub dns: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rtmp {
    pub listen: String,
    pub root: String,
    pub threads: u32,
}

/// Keys holding paths: relative ones in a config file are relative to its directory.
const PATH_KEYS: [&str; 3] = ["data", "sip.users_file", "rtmp.root"];

impl Config {
    /// The built-in defaults of `mode` (what the command line used before config files).
    pub fn defaults(mode: Mode) -> Config {
        let all = mode == Mode::AllInOne;
        Config {
            data: default_data_dir().to_string_lossy().into_owned(),
            log: "info".into(),
            sip: Sip {
                udp: vec!["127.0.0.1:5060".into()],
                tcp: vec!["127.0.0.1:5060".into()],
                domains: Vec::new(),
                users_file: String::new(),
                realm: String::new(),
                min_expires: 60,
                max_expires: 3600,
                qop: true,
                sha256: false,
                mode: "proxy".into(),
                auth_invite: false,
                dns: String::new(),
                workers: 0,
                overload_ms: 300,
            },
            web: Web {
                listen: if all {
                    vec!["127.0.0.1:8080".into()]
                } else {
                    Vec::new()
                },
                phone: all,
                webrtc: String::new(),
                origins: Vec::new(),
                rtp_ports: "16384-32767".into(),
                packet_clock: true,
                max_per_ip: 16,
                max_sockets: 10_000,
            },
            gateway: Gateway {
                int_ip: "127.0.0.1".into(),
                ext_ip: String::new(),
                sip_port: 0,
                rtp_ports: "20000-29999".into(),
                outbound_proxy: String::new(),
                several_per_aor: false,
                dns: String::new(),
            },
            rtmp: Rtmp {
                listen: "127.0.0.1:1935".into(),
                root: if mode == Mode::Rtmp {
                    ".".into()
                } else {
                    String::new()
                },
                // The all-in-one keeps the gateway's connections on the shared runtime;
                // the gateway alone runs each connection and its call's RTP on one of
                // two threads (docs/benchmarks.md, gateway run 6: -14 % CPU per call).
                threads: match mode {
                    Mode::Rtmp => 1,
                    Mode::Gateway => 2,
                    Mode::AllInOne | Mode::Sipd => 0,
                },
            },
            users: BTreeMap::new(),
        }
    }
}

/// A configuration and where each non-default value came from.
#[derive(Debug)]
pub struct Loaded {
    pub mode: Mode,
    pub config: Config,
    /// `section.key` → "FILE", "SWITCHBOARD_X" or "the command line".
    origins: BTreeMap<String, String>,
    /// `SWITCHBOARD_*` variables that name no setting (printed as warnings).
    pub ignored_env: Vec<String>,
}

/// Defaults of `mode` < `file` < the `SWITCHBOARD_*` variables among `env`.
pub fn load(
    mode: Mode,
    file: Option<&Path>,
    env: impl IntoIterator<Item = (String, String)>,
) -> anyhow::Result<Loaded> {
    let mut table = Table::try_from(Config::defaults(mode)).context("built-in defaults")?;
    let mut origins = BTreeMap::new();
    if let Some(path) = file {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read config file {}", path.display()))?;
        let from: Table = text
            .parse()
            .map_err(|e| anyhow!("config file {}: {e}", path.display()))?;
        let dir = path.parent().unwrap_or(Path::new("."));
        merge_file(&mut table, from, path, dir, &mut origins)?;
    }
    let mut ignored_env = Vec::new();
    let mut env: Vec<(String, String)> = env
        .into_iter()
        .filter(|(k, _)| k.starts_with("SWITCHBOARD_"))
        .collect();
    env.sort();
    for (name, value) in env {
        match env_key(&table, &name)? {
            Some(key) => {
                set_from_env(&mut table, &key, &name, &value)?;
                origins.insert(key, name);
            }
            None => ignored_env.push(name),
        }
    }
    let config: Config = Value::Table(table)
        .try_into()
        .map_err(|e| anyhow!("configuration: {e}"))?;
    Ok(Loaded {
        mode,
        config,
        origins,
        ignored_env,
    })
}

/// The `section.key` a `SWITCHBOARD_*` variable sets; `None` if it names no section or
/// top-level key (another program's variable); an error for an unknown key in a section.
fn env_key(table: &Table, name: &str) -> anyhow::Result<Option<String>> {
    let rest = name["SWITCHBOARD_".len()..].to_ascii_lowercase();
    if let Some((section, key)) = rest.split_once('_')
        && section != "users"
        && let Some(Value::Table(t)) = table.get(section)
    {
        if t.contains_key(key) {
            return Ok(Some(format!("{section}.{key}")));
        }
        bail!(
            "environment variable {name}: [{section}] has no key `{key}` (its keys: {})",
            keys_of(t)
        );
    }
    match table.get(&rest) {
        Some(Value::Table(_)) | None => Ok(None),
        Some(_) => Ok(Some(rest)),
    }
}

fn keys_of(t: &Table) -> String {
    t.keys().cloned().collect::<Vec<_>>().join(", ")
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::String(_) => "a string",
        Value::Integer(_) => "an integer",
        Value::Float(_) => "a float",
        Value::Boolean(_) => "a boolean (true or false)",
        Value::Datetime(_) => "a date",
        Value::Array(_) => "a list of strings",
        Value::Table(_) => "a table",
    }
}

/// Whether `v` may replace `default`: the same kind, integers non-negative and within
/// u32, lists of strings only.
fn check_value(key: &str, default: &Value, v: &Value) -> Result<(), String> {
    let same = std::mem::discriminant(default) == std::mem::discriminant(v);
    if !same {
        return Err(format!(
            "`{key}` must be {}, not {}",
            kind(default),
            kind(v)
        ));
    }
    match v {
        Value::Integer(i) if u32::try_from(*i).is_err() => {
            Err(format!("`{key}` = {i}: must be between 0 and {}", u32::MAX))
        }
        Value::Array(a) if a.iter().any(|e| !e.is_str()) => {
            Err(format!("`{key}` must be a list of strings"))
        }
        _ => Ok(()),
    }
}

fn merge_file(
    table: &mut Table,
    from: Table,
    path: &Path,
    dir: &Path,
    origins: &mut BTreeMap<String, String>,
) -> anyhow::Result<()> {
    let file = path.display().to_string();
    for (name, value) in from {
        let Some(default) = table.get_mut(&name) else {
            bail!(
                "config file {file}: unknown key `{name}` (top-level keys and sections: {})",
                keys_of(table)
            );
        };
        match (default, value) {
            (Value::Table(users), Value::Table(given)) if name == "users" => {
                for (user, pw) in given {
                    if !pw.is_str() || user.is_empty() || pw.as_str() == Some("") {
                        bail!(
                            "config file {file}: `users.{user}` must be a non-empty user \
                             name = a non-empty password string"
                        );
                    }
                    origins.insert(format!("users.{user}"), file.clone());
                    users.insert(user, pw);
                }
            }
            (Value::Table(section), Value::Table(given)) => {
                for (key, v) in given {
                    let full = format!("{name}.{key}");
                    let Some(d) = section.get(&key) else {
                        bail!(
                            "config file {file}: unknown key `{full}` (the [{name}] keys: {})",
                            keys_of(section)
                        );
                    };
                    check_value(&full, d, &v).map_err(|e| anyhow!("config file {file}: {e}"))?;
                    section.insert(key, relative_to(&full, v, dir));
                    origins.insert(full, file.clone());
                }
            }
            (Value::Table(_), v) => {
                bail!(
                    "config file {file}: `{name}` must be a section ([{name}]), not {}",
                    kind(&v)
                )
            }
            (d, v) => {
                check_value(&name, d, &v).map_err(|e| anyhow!("config file {file}: {e}"))?;
                *d = relative_to(&name, v, dir);
                origins.insert(name, file.clone());
            }
        }
    }
    Ok(())
}

/// A relative path from a config file, made relative to the file's directory.
fn relative_to(key: &str, v: Value, dir: &Path) -> Value {
    match v {
        Value::String(s)
            if PATH_KEYS.contains(&key) && !s.is_empty() && Path::new(&s).is_relative() =>
        {
            Value::String(dir.join(s).to_string_lossy().into_owned())
        }
        v => v,
    }
}

fn set_from_env(table: &mut Table, key: &str, name: &str, value: &str) -> anyhow::Result<()> {
    let slot = match key.split_once('.') {
        Some((section, k)) => table
            .get_mut(section)
            .and_then(Value::as_table_mut)
            .and_then(|t| t.get_mut(k)),
        None => table.get_mut(key),
    }
    .ok_or_else(|| anyhow!("environment variable {name}: no setting `{key}`"))?;
    let bad = |want: &str| anyhow!("environment variable {name}={value:?}: `{key}` must be {want}");
    *slot = match slot {
        Value::String(_) => Value::String(value.to_owned()),
        Value::Integer(_) => Value::Integer(
            value
                .trim()
                .parse::<u32>()
                .map_err(|_| bad("a whole number (0 to 4294967295)"))?
                .into(),
        ),
        Value::Boolean(_) => Value::Boolean(match value.trim().to_ascii_lowercase().as_str() {
            "true" | "1" | "yes" | "on" => true,
            "false" | "0" | "no" | "off" => false,
            _ => return Err(bad("true or false")),
        }),
        // Lists: comma-separated.
        Value::Array(_) => Value::Array(
            value
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(|s| Value::String(s.to_owned()))
                .collect(),
        ),
        _ => return Err(bad("set in the config file")),
    };
    Ok(())
}

impl Loaded {
    /// Sets `key` from the command line (called for each option given).
    pub fn cli<T>(&mut self, key: &str, value: Option<T>, set: impl FnOnce(&mut Config, T)) {
        if let Some(v) = value {
            set(&mut self.config, v);
            self.origins
                .insert(key.to_owned(), "the command line".into());
        }
    }

    /// Where `key`'s value came from, for error messages.
    fn origin(&self, key: &str) -> String {
        match self.origins.get(key) {
            Some(o) if o.starts_with("SWITCHBOARD_") => format!("environment variable {o}"),
            Some(o) if o == "the command line" => o.clone(),
            Some(o) => format!("config file {o}"),
            None => "the default".into(),
        }
    }

    fn err(&self, key: &str, what: impl std::fmt::Display) -> anyhow::Error {
        anyhow!("`{key}` (from {}): {what}", self.origin(key))
    }

    /// Fills in the values that default to other settings, so that the printed
    /// configuration is the effective one.
    pub fn finish(&mut self) {
        let c = &mut self.config;
        if c.sip.realm.is_empty() {
            c.sip.realm = c
                .sip
                .domains
                .first()
                .cloned()
                .unwrap_or_else(|| "switchboard".into());
        }
        if c.web.webrtc.is_empty()
            && c.web.phone
            && let Some(first) = c.web.listen.first()
        {
            c.web.webrtc = first.clone();
        }
        if self.mode == Mode::AllInOne {
            if c.gateway.outbound_proxy.is_empty()
                && let Some(first) = c.sip.udp.first()
            {
                c.gateway.outbound_proxy = first.clone();
            }
            if c.rtmp.root.is_empty() {
                c.rtmp.root = Path::new(&c.data)
                    .join("rtmp")
                    .to_string_lossy()
                    .into_owned();
            }
        }
    }

    /// The effective configuration as TOML: only what this mode reads, passwords
    /// redacted, each value not from the defaults followed by where it came from.
    pub fn to_toml(&self) -> anyhow::Result<String> {
        let mut shown = self.config.clone();
        for pw in shown.users.values_mut() {
            *pw = "<redacted>".into();
        }
        let text = toml::to_string(&shown).context("printing the configuration")?;
        let mut out = String::from(
            "# Switchboard effective configuration: built-in defaults < config file <\n\
             # environment (SWITCHBOARD_<SECTION>_<KEY>) < command line.\n",
        );
        let mut section = String::new();
        let mut skipping = false;
        for line in text.lines() {
            if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
                section = name.to_owned();
                skipping = !self.mode.uses(name);
                if !skipping {
                    let _ = writeln!(out, "\n{line}");
                }
                continue;
            }
            let key = line.split_once(" = ").map(|(k, _)| k.trim_matches('"'));
            let full = match key {
                Some(k) if section.is_empty() => k.to_owned(),
                Some(k) => format!("{section}.{k}"),
                None => String::new(),
            };
            if skipping || !self.mode.uses(&full) || line.is_empty() {
                continue;
            }
            match self.origins.get(&full) {
                Some(o) => {
                    let _ = writeln!(out, "{line}  # {o}");
                }
                None => {
                    let _ = writeln!(out, "{line}");
                }
            }
        }
        Ok(out)
    }

    /// The typed settings, each bad value an error naming its key and origin.
    pub fn resolve(&self) -> anyhow::Result<Settings> {
        let c = &self.config;
        let addrs = |key: &str, list: &[String], port: u16| {
            list.iter()
                .map(|s| crate::parse_listen(s, port).map_err(|e| self.err(key, e)))
                .collect::<anyhow::Result<Vec<_>>>()
        };
        let opt_addr = |key: &str, s: &str, port: u16| {
            (!s.is_empty())
                .then(|| crate::parse_listen(s, port).map_err(|e| self.err(key, e)))
                .transpose()
        };
        let ip = |key: &str, s: &str| {
            s.parse::<IpAddr>()
                .map_err(|_| self.err(key, format!("{s:?} is not an IP address")))
        };
        let ports = |key: &str, s: &str| {
            s.parse::<ua::PortRange>()
                .map_err(|e| self.err(key, format!("{e} (want LO-HI, e.g. 20000-29999)")))
        };
        let mode = match c.sip.mode.as_str() {
            "proxy" => false,
            "redirect" => true,
            other => return Err(self.err("sip.mode", format!("{other:?}: use proxy or redirect"))),
        };
        let sip_port = u16::try_from(c.gateway.sip_port)
            .map_err(|_| self.err("gateway.sip_port", "must be a port (0 to 65535)"))?;
        let users_file = (!c.sip.users_file.is_empty()).then(|| PathBuf::from(&c.sip.users_file));
        let users = if users_file.is_some() || !c.users.is_empty() {
            let mut u = match &users_file {
                Some(p) => {
                    load_users(p).map_err(|e| self.err("sip.users_file", format!("{e:#}")))?
                }
                None => registrar::Users::new(),
            };
            for (name, pw) in &c.users {
                u.insert(name, pw);
            }
            Some(u)
        } else {
            None
        };
        let rtmp_listen =
            crate::parse_listen(&c.rtmp.listen, 1935).map_err(|e| self.err("rtmp.listen", e))?;
        Ok(Settings {
            data: PathBuf::from(&c.data),
            sip: SipSettings {
                udp: addrs("sip.udp", &c.sip.udp, 5060)?,
                tcp: addrs("sip.tcp", &c.sip.tcp, 5060)?,
                http: addrs("web.listen", &c.web.listen, 8080)?,
                domains: c
                    .sip
                    .domains
                    .iter()
                    .map(|d| d.to_ascii_lowercase())
                    .collect(),
                users,
                realm: c.sip.realm.clone(),
                min_expires: c.sip.min_expires,
                max_expires: c.sip.max_expires,
                qop: c.sip.qop,
                sha256: c.sip.sha256,
                redirect: mode,
                auth_invite: c.sip.auth_invite,
                dns: opt_addr("sip.dns", &c.sip.dns, 53)?,
                workers: match c.sip.workers {
                    0 => std::thread::available_parallelism().map_or(1, usize::from),
                    n => n as usize,
                },
                overload_delay: match c.sip.overload_ms {
                    0 => Duration::MAX,
                    ms => Duration::from_millis(u64::from(ms)),
                },
                phone: c.web.phone,
                webrtc: opt_addr("web.webrtc", &c.web.webrtc, 8080)?,
                origins: c.web.origins.clone(),
                phone_rtp_ports: ports("web.rtp_ports", &c.web.rtp_ports)?,
                packet_clock: c.web.packet_clock,
                max_per_ip: c.web.max_per_ip as usize,
                max_sockets: c.web.max_sockets as usize,
            },
            gateway: GatewaySettings {
                rtmp: rtmp_listen,
                int_ip: ip("gateway.int_ip", &c.gateway.int_ip)?,
                ext_ip: (!c.gateway.ext_ip.is_empty())
                    .then(|| ip("gateway.ext_ip", &c.gateway.ext_ip))
                    .transpose()?,
                sip_port,
                rtp_ports: ports("gateway.rtp_ports", &c.gateway.rtp_ports)?,
                outbound_proxy: (!c.gateway.outbound_proxy.is_empty())
                    .then(|| c.gateway.outbound_proxy.clone()),
                several_per_aor: c.gateway.several_per_aor,
                dns: opt_addr("gateway.dns", &c.gateway.dns, 53)?,
            },
            rtmp: RtmpSettings {
                listen: rtmp_listen,
                root: PathBuf::from(&c.rtmp.root),
                threads: c.rtmp.threads as usize,
            },
        })
    }
}

/// The typed, validated settings the roles run with.
pub struct Settings {
    pub data: PathBuf,
    pub sip: SipSettings,
    pub gateway: GatewaySettings,
    pub rtmp: RtmpSettings,
}

pub struct SipSettings {
    pub udp: Vec<SocketAddr>,
    pub tcp: Vec<SocketAddr>,
    /// HTTP listeners: SIP over WebSocket at /sip, /healthz, the web phone.
    pub http: Vec<SocketAddr>,
    pub domains: Vec<String>,
    pub users: Option<registrar::Users>,
    pub realm: String,
    pub min_expires: u32,
    pub max_expires: u32,
    pub qop: bool,
    pub sha256: bool,
    pub redirect: bool,
    pub auth_invite: bool,
    pub dns: Option<SocketAddr>,
    /// Threads serving SIP (resolved: at least 1).
    pub workers: usize,
    /// Receive-queue delay from which new calls are refused (`Duration::MAX`: never).
    pub overload_delay: Duration,
    pub phone: bool,
    pub webrtc: Option<SocketAddr>,
    pub origins: Vec<String>,
    pub phone_rtp_ports: ua::PortRange,
    /// Connected browser calls run on the 20 ms packet clock (least CPU) rather than
    /// per packet (least latency).
    pub packet_clock: bool,
    pub max_per_ip: usize,
    pub max_sockets: usize,
}

pub struct GatewaySettings {
    pub rtmp: SocketAddr,
    pub int_ip: IpAddr,
    pub ext_ip: Option<IpAddr>,
    pub sip_port: u16,
    pub rtp_ports: ua::PortRange,
    pub outbound_proxy: Option<String>,
    pub several_per_aor: bool,
    pub dns: Option<SocketAddr>,
}

pub struct RtmpSettings {
    pub listen: SocketAddr,
    pub root: PathBuf,
    pub threads: usize,
}

/// The users file: `[users]` maps `"user"` or `"user@domain"` to a password.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct UsersFile {
    users: BTreeMap<String, String>,
}

pub fn load_users(path: &Path) -> anyhow::Result<registrar::Users> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read users file {}", path.display()))?;
    let file: UsersFile =
        toml::from_str(&text).with_context(|| format!("bad users file {}", path.display()))?;
    let mut users = registrar::Users::new();
    for (name, password) in &file.users {
        if name.is_empty() || password.is_empty() {
            anyhow::bail!("users file {}: empty user name or password", path.display());
        }
        users.insert(name, password);
    }
    Ok(users)
}

pub fn default_data_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("XDG_DATA_HOME") {
        return PathBuf::from(d).join("switchboard");
    }
    match std::env::var_os("HOME") {
        Some(h) => PathBuf::from(h).join(".local/share/switchboard"),
        None => PathBuf::from("switchboard-data"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A config file with `text` in a fresh directory.
    fn file(name: &str, text: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("sb-config-{}-{name}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("switchboard.toml");
        std::fs::write(&p, text).unwrap();
        p
    }

    fn env(vars: &[(&str, &str)]) -> Vec<(String, String)> {
        vars.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn err(mode: Mode, f: Option<&Path>, vars: &[(&str, &str)]) -> String {
        format!("{:#}", load(mode, f, env(vars)).unwrap_err())
    }

    /// The defaults are what the command line had before config files.
    #[test]
    fn defaults_per_mode() {
        let mut l = load(Mode::AllInOne, None, Vec::new()).unwrap();
        l.finish();
        let s = l.resolve().unwrap();
        let a = |t: &str| t.parse::<SocketAddr>().unwrap();
        assert_eq!(s.sip.udp, vec![a("127.0.0.1:5060")]);
        assert_eq!(s.sip.tcp, vec![a("127.0.0.1:5060")]);
        assert_eq!(s.sip.http, vec![a("127.0.0.1:8080")]);
        assert!(s.sip.phone && s.sip.users.is_none() && s.sip.qop && !s.sip.sha256);
        assert!(!s.sip.redirect && !s.sip.auth_invite);
        assert_eq!((s.sip.min_expires, s.sip.max_expires), (60, 3600));
        assert_eq!(s.sip.realm, "switchboard");
        assert_eq!(s.sip.webrtc, Some(a("127.0.0.1:8080")));
        assert_eq!(s.sip.phone_rtp_ports, ua::PortRange::DEFAULT);
        assert_eq!((s.sip.max_per_ip, s.sip.max_sockets), (16, 10_000));
        assert_eq!(s.gateway.rtmp, a("127.0.0.1:1935"));
        assert_eq!(s.gateway.outbound_proxy.as_deref(), Some("127.0.0.1:5060"));
        assert_eq!(
            s.gateway.rtp_ports,
            ua::PortRange::new(20000, 29999).unwrap()
        );
        assert_eq!(s.gateway.int_ip, IpAddr::from([127, 0, 0, 1]));
        assert_eq!((s.gateway.ext_ip, s.gateway.sip_port), (None, 0));
        assert_eq!(s.rtmp.root, default_data_dir().join("rtmp"));
        assert_eq!(s.rtmp.threads, 0);
        assert_eq!(s.data, default_data_dir());

        let mut l = load(Mode::Sipd, None, Vec::new()).unwrap();
        l.finish();
        let s = l.resolve().unwrap();
        assert!(s.sip.http.is_empty() && !s.sip.phone && s.sip.webrtc.is_none());
        let mut l = load(Mode::Gateway, None, Vec::new()).unwrap();
        l.finish();
        let s = l.resolve().unwrap();
        assert_eq!((s.gateway.outbound_proxy, s.rtmp.threads), (None, 2));
        let mut l = load(Mode::Rtmp, None, Vec::new()).unwrap();
        l.finish();
        let s = l.resolve().unwrap();
        assert_eq!((s.rtmp.root, s.rtmp.threads), (PathBuf::from("."), 1));
    }

    /// defaults < file < environment < command line, and the printout says which.
    #[test]
    fn precedence() {
        let f = file(
            "precedence",
            "log = \"debug\"\ndata = \"state\"\n[sip]\nudp = [\"127.0.0.1:7000\"]\n\
             min_expires = 30\nmax_expires = 600\ndomains = [\"example.com\"]\n\
             [web]\nlisten = [\"127.0.0.1:7002\"]\n[users]\nalice = \"wonderland\"\n",
        );
        let mut l = load(
            Mode::AllInOne,
            Some(&f),
            env(&[
                ("SWITCHBOARD_SIP_UDP", "127.0.0.1:7100, 127.0.0.1:7101"),
                ("SWITCHBOARD_SIP_MIN_EXPIRES", "45"),
                ("SWITCHBOARD_SIP_QOP", "false"),
                ("SWITCHBOARD_LOG", "warn"),
                ("SWITCHBOARD", "/path/to/binary"),
                ("SWITCHBOARD_RELEASE", "x"),
            ]),
        )
        .unwrap();
        l.cli("sip.min_expires", Some(50), |c, v| c.sip.min_expires = v);
        l.cli::<u32>("sip.max_expires", None, |c, v| c.sip.max_expires = v);
        l.finish();
        assert_eq!(l.ignored_env, vec!["SWITCHBOARD_RELEASE".to_string()]);
        let c = &l.config;
        assert_eq!(c.sip.udp, vec!["127.0.0.1:7100", "127.0.0.1:7101"]);
        assert_eq!(c.sip.tcp, vec!["127.0.0.1:5060"]);
        assert_eq!((c.sip.min_expires, c.sip.max_expires), (50, 600));
        assert!(!c.sip.qop);
        assert_eq!(c.log, "warn");
        assert_eq!(c.sip.realm, "example.com");
        assert_eq!(c.web.webrtc, "127.0.0.1:7002");
        assert_eq!(c.gateway.outbound_proxy, "127.0.0.1:7100");
        // A relative path in the file is relative to the file.
        let dir = f.parent().unwrap();
        assert_eq!(PathBuf::from(&c.data), dir.join("state"));
        assert_eq!(PathBuf::from(&c.rtmp.root), dir.join("state").join("rtmp"));
        let s = l.resolve().unwrap();
        assert_eq!(
            s.sip
                .users
                .as_ref()
                .unwrap()
                .password("alice", "example.com"),
            Some("wonderland")
        );

        let text = l.to_toml().unwrap();
        let origin = |key: &str| {
            text.lines()
                .find(|line| line.starts_with(&format!("{key} = ")))
                .unwrap_or_else(|| panic!("no {key} in\n{text}"))
                .to_string()
        };
        assert!(origin("udp").ends_with("  # SWITCHBOARD_SIP_UDP"), "{text}");
        assert!(
            origin("min_expires").ends_with("  # the command line"),
            "{text}"
        );
        assert!(
            origin("max_expires").ends_with(&format!("  # {}", f.display())),
            "{text}"
        );
        assert_eq!(origin("tcp"), "tcp = [\"127.0.0.1:5060\"]");
        assert_eq!(
            origin("alice"),
            format!("alice = \"<redacted>\"  # {}", f.display())
        );
        assert!(!text.contains("wonderland"), "{text}");

        // The printout, minus the users, is itself a config file giving the same result.
        let shown: String = text
            .lines()
            .filter(|l| !l.starts_with("alice"))
            .collect::<Vec<_>>()
            .join("\n");
        let again = file("precedence-again", &shown);
        let mut l2 = load(Mode::AllInOne, Some(&again), Vec::new()).unwrap();
        l2.finish();
        let mut want = l.config.clone();
        want.users.clear();
        assert_eq!(l2.config, want);
    }

    /// switchboard.example.toml sets every key (but the per-user `data`) to its default.
    #[test]
    fn example_file_is_complete_and_the_defaults() {
        let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../switchboard.example.toml");
        let mut l = load(Mode::AllInOne, Some(&example), Vec::new()).unwrap();
        let mut keys: Vec<String> = Vec::new();
        for (k, v) in Table::try_from(Config::defaults(Mode::AllInOne)).unwrap() {
            match v {
                Value::Table(t) if k != "users" => {
                    keys.extend(t.keys().map(|kk| format!("{k}.{kk}")))
                }
                _ if k == "users" || k == "data" => {}
                _ => keys.push(k),
            }
        }
        let given: Vec<String> = l.origins.keys().cloned().collect();
        keys.sort();
        assert_eq!(given, keys);
        l.finish();
        let mut d = load(Mode::AllInOne, None, Vec::new()).unwrap();
        d.finish();
        assert_eq!(l.config, d.config);
    }

    /// Unknown keys and bad values name the key and where it came from.
    #[test]
    fn errors_name_key_and_source() {
        let cases = [
            ("[sip]\nudpp = []\n", "unknown key `sip.udpp`"),
            ("[sipd]\nudp = []\n", "unknown key `sipd`"),
            ("color = \"red\"\n", "unknown key `color`"),
            ("sip = 3\n", "`sip` must be a section"),
            (
                "[sip]\nmin_expires = \"60\"\n",
                "`sip.min_expires` must be an integer, not a string",
            ),
            (
                "[sip]\nmin_expires = -1\n",
                "`sip.min_expires` = -1: must be between 0",
            ),
            (
                "[sip]\nudp = \"127.0.0.1\"\n",
                "`sip.udp` must be a list of strings, not a string",
            ),
            (
                "[sip]\nudp = [5060]\n",
                "`sip.udp` must be a list of strings",
            ),
            ("[web]\nphone = \"yes\"\n", "`web.phone` must be a boolean"),
            ("[users]\nalice = 1\n", "`users.alice` must be"),
            ("[sip\n", "TOML parse error at line 1"),
        ];
        for (i, (text, want)) in cases.iter().enumerate() {
            let f = file(&format!("err{i}"), text);
            let e = err(Mode::AllInOne, Some(&f), &[]);
            assert!(e.contains(want), "{text:?}: {e}");
            assert!(e.contains(&f.display().to_string()), "{text:?}: {e}");
        }
        let e = err(Mode::Sipd, None, &[("SWITCHBOARD_SIP_UDPP", "x")]);
        assert!(
            e.contains("SWITCHBOARD_SIP_UDPP") && e.contains("no key `udpp`"),
            "{e}"
        );
        let e = err(Mode::Sipd, None, &[("SWITCHBOARD_SIP_MAX_EXPIRES", "lots")]);
        assert!(
            e.contains("SWITCHBOARD_SIP_MAX_EXPIRES=\"lots\"") && e.contains("whole number"),
            "{e}"
        );
        let e = err(Mode::Sipd, None, &[("SWITCHBOARD_WEB_PHONE", "maybe")]);
        assert!(e.contains("`web.phone` must be true or false"), "{e}");
        assert!(
            load(
                Mode::Sipd,
                Some(Path::new("/nonexistent/sb.toml")),
                Vec::new()
            )
            .unwrap_err()
            .to_string()
            .contains("/nonexistent/sb.toml")
        );

        // Values that parse as TOML but not as settings: named with their origin.
        let f = file(
            "resolve",
            "[rtmp]\nlisten = \"localhost:x\"\n[gateway]\nsip_port = 70000\n",
        );
        let resolve = |vars: &[(&str, &str)]| {
            let mut l = load(Mode::AllInOne, Some(&f), env(vars)).unwrap();
            l.finish();
            format!("{:#}", l.resolve().err().unwrap())
        };
        let e = resolve(&[]);
        assert!(
            e.contains("`gateway.sip_port`") || e.contains("`rtmp.listen`"),
            "{e}"
        );
        assert!(e.contains(&f.display().to_string()), "{e}");
        let e = resolve(&[
            ("SWITCHBOARD_RTMP_LISTEN", "127.0.0.1:1935"),
            ("SWITCHBOARD_GATEWAY_SIP_PORT", "5062"),
            ("SWITCHBOARD_SIP_MODE", "fork"),
        ]);
        assert!(
            e.contains("`sip.mode` (from environment variable SWITCHBOARD_SIP_MODE)"),
            "{e}"
        );
        let e = resolve(&[
            ("SWITCHBOARD_RTMP_LISTEN", "127.0.0.1:1935"),
            ("SWITCHBOARD_GATEWAY_SIP_PORT", "5062"),
            ("SWITCHBOARD_GATEWAY_RTP_PORTS", "9-8"),
        ]);
        assert!(
            e.contains("`gateway.rtp_ports` (from environment variable"),
            "{e}"
        );
    }

    #[test]
    fn users_file() {
        let dir = std::env::temp_dir().join(format!("sb-users-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("users.toml");
        std::fs::write(
            &p,
            "[users]\nalice = \"secret\"\n\"bob@example.com\" = \"pw\"\n",
        )
        .unwrap();
        let u = load_users(&p).unwrap();
        assert_eq!(u.password("alice", "x"), Some("secret"));
        assert_eq!(u.password("bob", "example.com"), Some("pw"));
        std::fs::write(&p, "[users]\nalice = 3\n").unwrap();
        assert!(load_users(&p).is_err());
        std::fs::write(&p, "[user]\nalice = \"x\"\n").unwrap();
        assert!(load_users(&p).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
