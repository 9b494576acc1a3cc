//! Server configuration and the `cascade` command line.
//!
//! Layers, highest first: CLI flags > `CASCADE_*` environment variables > the TOML file given by
//! `--config` > built-in defaults. Documented in docs/configuration.md.
//!
//! Layering uses `figment` (toml feature): it merges serde providers in a fixed order and its
//! errors name the offending key and where it came from (e.g. the TOML file), so we need no
//! merging code of our own. Environment variables are parsed here instead of by figment's `Env`
//! provider so that lists can be comma-separated, every value gets a typed error naming its
//! variable, and tests can pass an explicit environment rather than mutate the process's.

use std::collections::BTreeMap;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, anyhow, bail, ensure};
use clap::{Parser, Subcommand, ValueEnum};
use figment::Figment;
use figment::providers::{Format, Serialized, Toml};
use serde::{Deserialize, Serialize};

/// API key used when none is configured. Development only.
pub const DEFAULT_API_KEY: &str = "devkey";
/// API secret used when none is configured. Development only: it is public.
pub const DEFAULT_API_SECRET: &str = "devsecret-cascade-development-only-0123456789";
/// Shortest accepted API secret, in bytes (HS256 wants at least 256 bits of key).
pub const MIN_API_SECRET_LEN: usize = 32;
/// Prefix of the environment variables read by [`load`].
pub const ENV_PREFIX: &str = "CASCADE_";

/// Log output format.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// The server's configuration, after layering (see the module docs).
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Address of the HTTP/WebSocket listener.
    pub http_addr: SocketAddr,
    /// The one UDP port for all media, bound on 0.0.0.0 (0 = ephemeral, for tests).
    pub udp_port: u16,
    /// Addresses advertised in ICE candidates (1:1 NAT); empty = the host's interface addresses.
    pub public_ips: Vec<IpAddr>,
    /// API key: the `iss` of accepted tokens.
    pub api_key: String,
    /// API secret: the HS256 key of accepted tokens (at least 32 bytes).
    pub api_secret: String,
    /// How long an empty room is kept before it is closed.
    #[serde(with = "humantime_serde")]
    pub room_empty_timeout: Duration,
    /// Most participants in one room (0 = unlimited).
    pub max_participants: u32,
    /// Log output format.
    pub log_format: LogFormat,
    /// Media worker threads (0 = one per core).
    pub workers: usize,
    /// STUN/TURN URLs handed to clients.
    pub ice_servers: Vec<String>,
    /// URLs that receive webhook events (http or https); empty = no webhooks.
    pub webhook_urls: Vec<String>,
    /// HMAC-SHA256 key of webhook signatures; `None` = the API secret.
    pub webhook_secret: Option<String>,
    /// Timeout of one webhook request (connect, send, response).
    #[serde(with = "humantime_serde")]
    pub webhook_timeout: Duration,
    /// Attempts per webhook event before it is given up (at least 1).
    pub webhook_max_attempts: u32,
    /// WHIP/WHEP sessions created per second, server-wide, after a burst of twice as many;
    /// more get 429 (0 = unlimited).
    pub session_rate_limit: u32,

    // The HTTP edge (api/src/listener.rs) and draining.
    /// Most open HTTP connections (WebSockets included), server-wide; more are refused with a
    /// 503 and closed (0 = unlimited).
    pub max_connections: usize,
    /// Most open HTTP connections from one source address (0 = unlimited).
    pub max_connections_per_ip: usize,
    /// Time a client has to send a request's headers; also how long an idle keep-alive
    /// connection stays open.
    #[serde(with = "humantime_serde")]
    pub header_timeout: Duration,
    /// Time a client has to send a request's body once its headers are in (408 after it).
    #[serde(with = "humantime_serde")]
    pub body_timeout: Duration,
    /// On SIGTERM or `POST /api/drain`: how long existing rooms may go on before their
    /// participants are told `leave {reason: "server_shutdown"}` and the server exits.
    #[serde(with = "humantime_serde")]
    pub drain_timeout: Duration,

    // Per WebSocket session (api/src/session.rs).
    /// Messages one WebSocket session may send per second, after a burst of twice as many;
    /// more get `rate_limited` and are dropped (0 = unlimited).
    pub message_rate_limit: u32,
    /// Bytes of `data` messages one WebSocket session may send per second, after a burst of
    /// four times as many; more get `rate_limited` and are dropped (0 = unlimited).
    pub data_rate_limit: u32,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            http_addr: SocketAddr::new(Ipv4Addr::UNSPECIFIED.into(), 7880),
            udp_port: 7882,
            public_ips: Vec::new(),
            api_key: DEFAULT_API_KEY.to_owned(),
            api_secret: DEFAULT_API_SECRET.to_owned(),
            room_empty_timeout: Duration::from_secs(30),
            max_participants: 100,
            log_format: LogFormat::Text,
            workers: 0,
            ice_servers: Vec::new(),
            webhook_urls: Vec::new(),
            webhook_secret: None,
            webhook_timeout: Duration::from_secs(5),
            webhook_max_attempts: 5,
            session_rate_limit: 50,
            max_connections: 10_000,
            max_connections_per_ip: 256,
            header_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(10),
            drain_timeout: Duration::from_secs(30),
            message_rate_limit: 50,
            data_rate_limit: 256 * 1024,
        }
    }
}

/// Like a derived `Debug`, but never prints the API secret.
impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("http_addr", &self.http_addr)
            .field("udp_port", &self.udp_port)
            .field("public_ips", &self.public_ips)
            .field("api_key", &self.api_key)
            .field("api_secret", &"<redacted>")
            .field("room_empty_timeout", &self.room_empty_timeout)
            .field("max_participants", &self.max_participants)
            .field("log_format", &self.log_format)
            .field("workers", &self.workers)
            .field("ice_servers", &self.ice_servers)
            .field("webhook_urls", &self.webhook_urls)
            .field(
                "webhook_secret",
                &self.webhook_secret.as_ref().map(|_| "<redacted>"),
            )
            .field("webhook_timeout", &self.webhook_timeout)
            .field("webhook_max_attempts", &self.webhook_max_attempts)
            .field("session_rate_limit", &self.session_rate_limit)
            .field("max_connections", &self.max_connections)
            .field("max_connections_per_ip", &self.max_connections_per_ip)
            .field("header_timeout", &self.header_timeout)
            .field("body_timeout", &self.body_timeout)
            .field("drain_timeout", &self.drain_timeout)
            .field("message_rate_limit", &self.message_rate_limit)
            .field("data_rate_limit", &self.data_rate_limit)
            .finish()
    }
}

impl Config {
    /// Whether tokens are signed with the public development secret ([`DEFAULT_API_SECRET`]),
    /// i.e. anyone can mint tokens for this server.
    pub fn is_dev_secret(&self) -> bool {
        self.api_secret == DEFAULT_API_SECRET
    }

    /// The key that signs webhook events: `webhook_secret`, or else the API secret.
    pub fn webhook_key(&self) -> &str {
        self.webhook_secret.as_deref().unwrap_or(&self.api_secret)
    }

    fn validate(&self) -> anyhow::Result<()> {
        ensure!(!self.api_key.is_empty(), "api_key must not be empty");
        ensure!(
            self.api_secret.len() >= MIN_API_SECRET_LEN,
            "api_secret must be at least {MIN_API_SECRET_LEN} bytes long (it is {})",
            self.api_secret.len()
        );
        if let Some(ip) = self.public_ips.iter().find(|ip| ip.is_unspecified()) {
            bail!("public IP {ip} is unspecified and cannot be advertised");
        }
        for url in &self.ice_servers {
            let scheme = url.split_once(':').map_or("", |(scheme, _)| scheme);
            ensure!(
                matches!(scheme, "stun" | "stuns" | "turn" | "turns"),
                "ICE server URL {url:?} must start with stun:, stuns:, turn: or turns:"
            );
        }
        for url in &self.webhook_urls {
            crate::webhooks::parse_url(url)?;
        }
        if let Some(secret) = &self.webhook_secret {
            ensure!(
                secret.len() >= MIN_API_SECRET_LEN,
                "webhook_secret must be at least {MIN_API_SECRET_LEN} bytes long (it is {})",
                secret.len()
            );
        }
        ensure!(
            !self.webhook_timeout.is_zero(),
            "webhook_timeout must be longer than 0s"
        );
        ensure!(
            self.webhook_max_attempts >= 1,
            "webhook_max_attempts must be at least 1"
        );
        ensure!(
            !self.header_timeout.is_zero(),
            "header_timeout must be longer than 0s"
        );
        ensure!(
            !self.body_timeout.is_zero(),
            "body_timeout must be longer than 0s"
        );
        Ok(())
    }
}

/// The `cascade` command line.
#[derive(Debug, Parser)]
#[command(name = "cascade", version, about = "Cascade SFU media server")]
pub struct Cli {
    /// Server options (the server runs when no subcommand is given).
    #[command(flatten)]
    pub serve: ServeArgs,
    /// Subcommand; none runs the server.
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// `cascade` subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Print an access token (JWT) signed with the configured API key and secret.
    Token(TokenArgs),
}

/// Flags of `cascade token`.
#[derive(Debug, clap::Args)]
pub struct TokenArgs {
    /// Room the token grants joining.
    #[arg(long)]
    pub room: String,
    /// Participant identity (unique within the room).
    #[arg(long)]
    pub identity: String,
    /// Forbid publishing media.
    #[arg(long)]
    pub no_publish: bool,
    /// Forbid subscribing to media.
    #[arg(long)]
    pub no_subscribe: bool,
    /// Forbid publishing data.
    #[arg(long)]
    pub no_publish_data: bool,
    /// Grant room administration.
    #[arg(long)]
    pub admin: bool,
    /// Validity, e.g. "6h" or "30m".
    #[arg(long, default_value = "6h", value_parser = humantime::parse_duration)]
    pub ttl: Duration,
}

/// Server flags. Each overrides its `CASCADE_*` variable, the TOML file and the default.
#[derive(Debug, Default, clap::Args)]
pub struct ServeArgs {
    /// TOML configuration file (keys as in docs/configuration.md).
    #[arg(long, value_name = "FILE", global = true)]
    pub config: Option<PathBuf>,
    /// HTTP/WebSocket listen address [env: CASCADE_HTTP_ADDR] [default: 0.0.0.0:7880].
    #[arg(long, value_name = "ADDR")]
    pub http_addr: Option<SocketAddr>,
    /// UDP media port, bound on 0.0.0.0 (loopback if --http-addr is); 0 = ephemeral [env: CASCADE_UDP_PORT] [default: 7882].
    #[arg(long, value_name = "PORT")]
    pub udp_port: Option<u16>,
    /// IP to advertise for 1:1 NAT; repeat or comma-separate [env: CASCADE_PUBLIC_IP]
    /// [default: the host's interface addresses].
    #[arg(long = "public-ip", value_name = "IP", value_delimiter = ',')]
    pub public_ips: Vec<IpAddr>,
    /// API key, the issuer of accepted tokens [env: CASCADE_API_KEY] [default: devkey].
    #[arg(long, value_name = "KEY", global = true)]
    pub api_key: Option<String>,
    /// API secret, at least 32 bytes; prefer the env variable, flags are visible in `ps`
    /// [env: CASCADE_API_SECRET] [default: a public development secret].
    #[arg(long, value_name = "SECRET", global = true)]
    pub api_secret: Option<String>,
    /// How long an empty room is kept, e.g. "30s" [env: CASCADE_ROOM_EMPTY_TIMEOUT]
    /// [default: 30s].
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
    pub room_empty_timeout: Option<Duration>,
    /// Most participants per room, 0 = unlimited [env: CASCADE_MAX_PARTICIPANTS] [default: 100].
    #[arg(long, value_name = "N")]
    pub max_participants: Option<u32>,
    /// Log format [env: CASCADE_LOG_FORMAT] [default: text].
    #[arg(long, value_name = "FORMAT")]
    pub log_format: Option<LogFormat>,
    /// Media worker threads, 0 = one per core [env: CASCADE_WORKERS] [default: 0].
    #[arg(long, value_name = "N")]
    pub workers: Option<usize>,
    /// STUN/TURN URL given to clients; repeat or comma-separate [env: CASCADE_ICE_SERVERS].
    #[arg(long = "ice-server", value_name = "URL", value_delimiter = ',')]
    pub ice_servers: Vec<String>,
    /// URL that receives webhook events (http or https); repeat or comma-separate
    /// [env: CASCADE_WEBHOOK_URLS] [default: none].
    #[arg(long = "webhook-url", value_name = "URL", value_delimiter = ',')]
    pub webhook_urls: Vec<String>,
    /// Key of the webhook signatures, at least 32 bytes [env: CASCADE_WEBHOOK_SECRET]
    /// [default: the API secret].
    #[arg(long, value_name = "SECRET")]
    pub webhook_secret: Option<String>,
    /// Timeout of one webhook request, e.g. "5s" [env: CASCADE_WEBHOOK_TIMEOUT] [default: 5s].
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
    pub webhook_timeout: Option<Duration>,
    /// Attempts per webhook event before it is given up [env: CASCADE_WEBHOOK_MAX_ATTEMPTS]
    /// [default: 5].
    #[arg(long, value_name = "N")]
    pub webhook_max_attempts: Option<u32>,
    /// WHIP/WHEP sessions created per second, after a burst of twice as many; 0 = unlimited
    /// [env: CASCADE_SESSION_RATE_LIMIT] [default: 50].
    #[arg(long, value_name = "N")]
    pub session_rate_limit: Option<u32>,
    /// Most open HTTP connections server-wide, 0 = unlimited [env: CASCADE_MAX_CONNECTIONS]
    /// [default: 10000].
    #[arg(long, value_name = "N")]
    pub max_connections: Option<usize>,
    /// Most open HTTP connections per source address, 0 = unlimited
    /// [env: CASCADE_MAX_CONNECTIONS_PER_IP] [default: 256].
    #[arg(long, value_name = "N")]
    pub max_connections_per_ip: Option<usize>,
    /// Time to send a request's headers (and idle keep-alive time), e.g. "10s"
    /// [env: CASCADE_HEADER_TIMEOUT] [default: 10s].
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
    pub header_timeout: Option<Duration>,
    /// Time to send a request's body, e.g. "10s" [env: CASCADE_BODY_TIMEOUT] [default: 10s].
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
    pub body_timeout: Option<Duration>,
    /// How long rooms may go on after SIGTERM or `POST /api/drain`, e.g. "30s"
    /// [env: CASCADE_DRAIN_TIMEOUT] [default: 30s].
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
    pub drain_timeout: Option<Duration>,
    /// Messages per second one WebSocket session may send, after a burst of twice as many;
    /// 0 = unlimited [env: CASCADE_MESSAGE_RATE_LIMIT] [default: 50].
    #[arg(long, value_name = "N")]
    pub message_rate_limit: Option<u32>,
    /// Bytes per second of `data` messages one WebSocket session may send, after a burst of
    /// four times as many; 0 = unlimited [env: CASCADE_DATA_RATE_LIMIT] [default: 262144].
    #[arg(long, value_name = "BYTES")]
    pub data_rate_limit: Option<u32>,
}

impl ServeArgs {
    fn overrides(&self) -> Overrides {
        fn list<T: Clone>(v: &[T]) -> Option<Vec<T>> {
            (!v.is_empty()).then(|| v.to_vec())
        }
        Overrides {
            http_addr: self.http_addr,
            udp_port: self.udp_port,
            public_ips: list(&self.public_ips),
            api_key: self.api_key.clone(),
            api_secret: self.api_secret.clone(),
            room_empty_timeout: self.room_empty_timeout,
            max_participants: self.max_participants,
            log_format: self.log_format,
            workers: self.workers,
            ice_servers: list(&self.ice_servers),
            webhook_urls: list(&self.webhook_urls),
            webhook_secret: self.webhook_secret.clone(),
            webhook_timeout: self.webhook_timeout,
            webhook_max_attempts: self.webhook_max_attempts,
            session_rate_limit: self.session_rate_limit,
            max_connections: self.max_connections,
            max_connections_per_ip: self.max_connections_per_ip,
            header_timeout: self.header_timeout,
            body_timeout: self.body_timeout,
            drain_timeout: self.drain_timeout,
            message_rate_limit: self.message_rate_limit,
            data_rate_limit: self.data_rate_limit,
        }
    }
}

/// One layer of set values; unset ones are left out so lower layers show through.
#[derive(Debug, Default, Serialize)]
struct Overrides {
    #[serde(skip_serializing_if = "Option::is_none")]
    http_addr: Option<SocketAddr>,
    #[serde(skip_serializing_if = "Option::is_none")]
    udp_port: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    public_ips: Option<Vec<IpAddr>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    api_key: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    api_secret: Option<String>,
    #[serde(
        with = "humantime_serde::option",
        skip_serializing_if = "Option::is_none"
    )]
    room_empty_timeout: Option<Duration>,
    #[serde(skip_serializing_if = "Option::is_none")]
    max_participants: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    log_format: Option<LogFormat>,
    #[serde(skip_serializing_if = "Option::is_none")]
    workers: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    ice_servers: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    webhook_urls: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    webhook_secret: Option<String>,
    #[serde(
        with = "humantime_serde::option",
        skip_serializing_if = "Option::is_none"
    )]
    webhook_timeout: Option<Duration>,
    #[serde(skip_serializing_if = "Option::is_none")]
    webhook_max_attempts: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    session_rate_limit: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    max_connections: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    max_connections_per_ip: Option<usize>,
    #[serde(
        with = "humantime_serde::option",
        skip_serializing_if = "Option::is_none"
    )]
    header_timeout: Option<Duration>,
    #[serde(
        with = "humantime_serde::option",
        skip_serializing_if = "Option::is_none"
    )]
    body_timeout: Option<Duration>,
    #[serde(
        with = "humantime_serde::option",
        skip_serializing_if = "Option::is_none"
    )]
    drain_timeout: Option<Duration>,
    #[serde(skip_serializing_if = "Option::is_none")]
    message_rate_limit: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    data_rate_limit: Option<u32>,
}

impl Overrides {
    /// Reads the `CASCADE_*` variables of `env`; empty values count as unset.
    fn from_env(env: &BTreeMap<String, String>) -> anyhow::Result<Self> {
        fn var<T, E: fmt::Display>(
            env: &BTreeMap<String, String>,
            name: &str,
            parse: impl Fn(&str) -> Result<T, E>,
        ) -> anyhow::Result<Option<T>> {
            match env.get(name).map(|v| v.trim()).filter(|v| !v.is_empty()) {
                None => Ok(None),
                Some(v) => parse(v)
                    .map(Some)
                    .map_err(|e| anyhow!("invalid {name}={v:?}: {e}")),
            }
        }
        fn list<T: std::str::FromStr>(s: &str) -> Result<Vec<T>, T::Err> {
            s.split(',')
                .map(str::trim)
                .filter(|item| !item.is_empty())
                .map(str::parse)
                .collect()
        }
        let string = |s: &str| Ok::<_, std::convert::Infallible>(s.to_owned());
        Ok(Self {
            http_addr: var(env, "CASCADE_HTTP_ADDR", str::parse)?,
            udp_port: var(env, "CASCADE_UDP_PORT", str::parse)?,
            public_ips: var(env, "CASCADE_PUBLIC_IP", list)?,
            api_key: var(env, "CASCADE_API_KEY", string)?,
            api_secret: var(env, "CASCADE_API_SECRET", string)?,
            room_empty_timeout: var(env, "CASCADE_ROOM_EMPTY_TIMEOUT", humantime::parse_duration)?,
            max_participants: var(env, "CASCADE_MAX_PARTICIPANTS", str::parse)?,
            log_format: var(env, "CASCADE_LOG_FORMAT", |s| LogFormat::from_str(s, true))?,
            workers: var(env, "CASCADE_WORKERS", str::parse)?,
            ice_servers: var(env, "CASCADE_ICE_SERVERS", list)?,
            webhook_urls: var(env, "CASCADE_WEBHOOK_URLS", list)?,
            webhook_secret: var(env, "CASCADE_WEBHOOK_SECRET", string)?,
            webhook_timeout: var(env, "CASCADE_WEBHOOK_TIMEOUT", humantime::parse_duration)?,
            webhook_max_attempts: var(env, "CASCADE_WEBHOOK_MAX_ATTEMPTS", str::parse)?,
            session_rate_limit: var(env, "CASCADE_SESSION_RATE_LIMIT", str::parse)?,
            max_connections: var(env, "CASCADE_MAX_CONNECTIONS", str::parse)?,
            max_connections_per_ip: var(env, "CASCADE_MAX_CONNECTIONS_PER_IP", str::parse)?,
            header_timeout: var(env, "CASCADE_HEADER_TIMEOUT", humantime::parse_duration)?,
            body_timeout: var(env, "CASCADE_BODY_TIMEOUT", humantime::parse_duration)?,
            drain_timeout: var(env, "CASCADE_DRAIN_TIMEOUT", humantime::parse_duration)?,
            message_rate_limit: var(env, "CASCADE_MESSAGE_RATE_LIMIT", str::parse)?,
            data_rate_limit: var(env, "CASCADE_DATA_RATE_LIMIT", str::parse)?,
        })
    }
}

/// Loads the configuration from `cli`, the process environment, the `--config` file and the
/// defaults, and validates it.
pub fn load(cli: &Cli) -> anyhow::Result<Config> {
    let mut env = BTreeMap::new();
    for (name, value) in std::env::vars_os() {
        let Some(name) = name.to_str().filter(|n| n.starts_with(ENV_PREFIX)) else {
            continue;
        };
        let value = value
            .into_string()
            .map_err(|_| anyhow!("{name} is not valid UTF-8"))?;
        env.insert(name.to_owned(), value);
    }
    load_with_env(cli, &env)
}

/// Like [`load`], but reads the `CASCADE_*` variables from `env` instead of the process
/// environment (for tests).
pub fn load_with_env(cli: &Cli, env: &BTreeMap<String, String>) -> anyhow::Result<Config> {
    let mut figment = Figment::new();
    if let Some(path) = &cli.serve.config {
        std::fs::metadata(path)
            .with_context(|| format!("cannot read config file {}", path.display()))?;
        figment = figment.merge(Toml::file_exact(path));
    }
    let config: Config = figment
        .merge(Serialized::defaults(Overrides::from_env(env)?))
        .merge(Serialized::defaults(cli.serve.overrides()))
        .extract()
        .context("invalid configuration")?;
    config.validate().context("invalid configuration")?;
    Ok(config)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cli(args: &[&str]) -> Cli {
        Cli::try_parse_from(std::iter::once("cascade").chain(args.iter().copied())).unwrap()
    }

    fn env(vars: &[(&str, &str)]) -> BTreeMap<String, String> {
        vars.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    /// A TOML file in the temp dir, removed on drop.
    struct TempToml(PathBuf);

    impl TempToml {
        fn new(name: &str, contents: &str) -> Self {
            let path = std::env::temp_dir().join(format!(
                "cascade-config-test-{}-{name}.toml",
                std::process::id()
            ));
            std::fs::write(&path, contents).unwrap();
            Self(path)
        }

        fn arg(&self) -> &str {
            self.0.to_str().unwrap()
        }
    }

    impl Drop for TempToml {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
        }
    }

    #[test]
    fn cli_definition_is_valid() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }

    #[test]
    fn defaults_apply_when_nothing_is_set() {
        let config = load_with_env(&cli(&[]), &env(&[])).unwrap();
        assert_eq!(config, Config::default());
        assert_eq!(
            config.http_addr,
            "0.0.0.0:7880".parse::<SocketAddr>().unwrap()
        );
        assert_eq!(config.room_empty_timeout, Duration::from_secs(30));
        assert!(config.is_dev_secret());
    }

    #[test]
    fn cli_beats_env_beats_file_beats_defaults() {
        let file = TempToml::new(
            "precedence",
            r#"
            udp_port = 1001
            api_key = "filekey"
            max_participants = 5
            room_empty_timeout = "1m"
            "#,
        );
        let env = env(&[
            ("CASCADE_UDP_PORT", "1002"),
            ("CASCADE_API_KEY", "envkey"),
            ("CASCADE_ROOM_EMPTY_TIMEOUT", "2m 30s"),
        ]);
        let config =
            load_with_env(&cli(&["--config", file.arg(), "--udp-port", "1003"]), &env).unwrap();
        assert_eq!(config.udp_port, 1003, "CLI wins over env and file");
        assert_eq!(config.api_key, "envkey", "env wins over file");
        assert_eq!(config.room_empty_timeout, Duration::from_secs(150));
        assert_eq!(config.max_participants, 5, "file wins over default");
        assert_eq!(config.workers, 0, "default when unset everywhere");
    }

    #[test]
    fn lists_are_repeatable_and_comma_separated() {
        let config = load_with_env(
            &cli(&[
                "--public-ip",
                "203.0.113.1,203.0.113.2",
                "--public-ip",
                "2001:db8::1",
            ]),
            &env(&[("CASCADE_ICE_SERVERS", "stun:a.example:3478, turn:b.example")]),
        )
        .unwrap();
        let ips: Vec<IpAddr> = ["203.0.113.1", "203.0.113.2", "2001:db8::1"]
            .map(|ip| ip.parse().unwrap())
            .into();
        assert_eq!(config.public_ips, ips);
        assert_eq!(
            config.ice_servers,
            ["stun:a.example:3478", "turn:b.example"]
        );

        let config =
            load_with_env(&cli(&[]), &env(&[("CASCADE_PUBLIC_IP", "198.51.100.7")])).unwrap();
        assert_eq!(
            config.public_ips,
            ["198.51.100.7".parse::<IpAddr>().unwrap()]
        );
    }

    #[test]
    fn every_env_variable_is_read() {
        let config = load_with_env(
            &cli(&[]),
            &env(&[
                ("CASCADE_HTTP_ADDR", "127.0.0.1:9000"),
                ("CASCADE_UDP_PORT", "0"),
                (
                    "CASCADE_API_SECRET",
                    "an-operator-secret-of-at-least-32-bytes",
                ),
                ("CASCADE_MAX_PARTICIPANTS", "0"),
                ("CASCADE_LOG_FORMAT", "JSON"),
                ("CASCADE_WORKERS", "3"),
            ]),
        )
        .unwrap();
        assert_eq!(
            config.http_addr,
            "127.0.0.1:9000".parse::<SocketAddr>().unwrap()
        );
        assert_eq!(config.udp_port, 0);
        assert!(!config.is_dev_secret());
        assert_eq!(config.max_participants, 0);
        assert_eq!(config.log_format, LogFormat::Json);
        assert_eq!(config.workers, 3);
    }

    #[test]
    fn token_subcommand_takes_config_and_key_flags() {
        let cli = cli(&[
            "token",
            "--room",
            "demo",
            "--identity",
            "alice",
            "--no-publish",
            "--api-key",
            "k",
        ]);
        let Some(Command::Token(args)) = &cli.command else {
            panic!("expected token subcommand");
        };
        assert_eq!(
            (args.room.as_str(), args.identity.as_str()),
            ("demo", "alice")
        );
        assert!(args.no_publish && !args.no_subscribe && !args.admin);
        assert_eq!(args.ttl, Duration::from_secs(6 * 3600));
        assert_eq!(load_with_env(&cli, &env(&[])).unwrap().api_key, "k");
    }

    #[test]
    fn invalid_values_are_errors() {
        let err = |cli: &Cli, vars: &[(&str, &str)]| {
            format!("{:#}", load_with_env(cli, &env(vars)).unwrap_err())
        };
        let e = err(&cli(&[]), &[("CASCADE_UDP_PORT", "seventy")]);
        assert!(e.contains("CASCADE_UDP_PORT"), "{e}");
        let e = err(&cli(&[]), &[("CASCADE_API_SECRET", "short")]);
        assert!(e.contains("at least 32 bytes"), "{e}");
        let e = err(&cli(&[]), &[("CASCADE_ICE_SERVERS", "http://x")]);
        assert!(e.contains("stun:"), "{e}");
        let e = err(&cli(&["--public-ip", "0.0.0.0"]), &[]);
        assert!(e.contains("unspecified"), "{e}");

        let file = TempToml::new("bad-type", "udp_port = \"many\"");
        let e = err(&cli(&["--config", file.arg()]), &[]);
        assert!(e.contains("udp_port"), "{e}");
        let file = TempToml::new("unknown-key", "udp_prot = 1");
        let e = err(&cli(&["--config", file.arg()]), &[]);
        assert!(e.contains("udp_prot"), "{e}");
        let e = err(&cli(&["--config", "/nonexistent/cascade.toml"]), &[]);
        assert!(e.contains("cascade.toml"), "{e}");

        assert!(Cli::try_parse_from(["cascade", "--udp-port", "70000"]).is_err());
    }

    #[test]
    fn webhook_options_are_read_from_every_layer() {
        let config = load_with_env(&cli(&[]), &env(&[])).unwrap();
        assert!(config.webhook_urls.is_empty());
        assert_eq!(config.webhook_key(), DEFAULT_API_SECRET);
        assert_eq!(config.webhook_timeout, Duration::from_secs(5));
        assert_eq!(config.webhook_max_attempts, 5);

        let file = TempToml::new(
            "webhooks",
            r#"
            webhook_urls = ["https://hooks.example/a", "http://10.0.0.1:8080/b?x=1,2"]
            webhook_timeout = "3s"
            webhook_max_attempts = 2
            "#,
        );
        let config = load_with_env(&cli(&["--config", file.arg()]), &env(&[])).unwrap();
        assert_eq!(
            config.webhook_urls,
            ["https://hooks.example/a", "http://10.0.0.1:8080/b?x=1,2"]
        );
        assert_eq!(config.webhook_timeout, Duration::from_secs(3));
        assert_eq!(config.webhook_max_attempts, 2);

        let config = load_with_env(
            &cli(&["--webhook-max-attempts", "9"]),
            &env(&[
                (
                    "CASCADE_WEBHOOK_URLS",
                    "http://127.0.0.1:9/hook, https://h.example/",
                ),
                (
                    "CASCADE_WEBHOOK_SECRET",
                    "a-webhook-secret-of-at-least-32-bytes",
                ),
                ("CASCADE_WEBHOOK_TIMEOUT", "750ms"),
                ("CASCADE_WEBHOOK_MAX_ATTEMPTS", "3"),
            ]),
        )
        .unwrap();
        assert_eq!(
            config.webhook_urls,
            ["http://127.0.0.1:9/hook", "https://h.example/"]
        );
        assert_eq!(
            config.webhook_key(),
            "a-webhook-secret-of-at-least-32-bytes"
        );
        assert_eq!(config.webhook_timeout, Duration::from_millis(750));
        assert_eq!(config.webhook_max_attempts, 9, "CLI wins over env");
        assert!(!format!("{config:?}").contains("a-webhook-secret"));
    }

    #[test]
    fn invalid_webhook_options_are_errors() {
        let err = |vars: &[(&str, &str)]| {
            format!("{:#}", load_with_env(&cli(&[]), &env(vars)).unwrap_err())
        };
        for bad in ["ftp://h.example/", "not a url", "http://", "/relative/path"] {
            let e = err(&[("CASCADE_WEBHOOK_URLS", bad)]);
            assert!(e.contains("webhook URL"), "{bad}: {e}");
        }
        let e = err(&[("CASCADE_WEBHOOK_SECRET", "short")]);
        assert!(e.contains("webhook_secret"), "{e}");
        let e = err(&[("CASCADE_WEBHOOK_TIMEOUT", "0s")]);
        assert!(e.contains("webhook_timeout"), "{e}");
        let e = err(&[("CASCADE_WEBHOOK_MAX_ATTEMPTS", "0")]);
        assert!(e.contains("webhook_max_attempts"), "{e}");
    }

    #[test]
    fn edge_and_drain_options_are_read_from_every_layer() {
        let file = TempToml::new(
            "edge",
            r#"
            max_connections = 500
            header_timeout = "3s"
            drain_timeout = "2m"
            "#,
        );
        let config = load_with_env(
            &cli(&["--config", file.arg(), "--body-timeout", "4s"]),
            &env(&[
                ("CASCADE_MAX_CONNECTIONS_PER_IP", "8"),
                ("CASCADE_DRAIN_TIMEOUT", "5s"),
            ]),
        )
        .unwrap();
        assert_eq!(config.max_connections, 500);
        assert_eq!(config.max_connections_per_ip, 8);
        assert_eq!(config.header_timeout, Duration::from_secs(3));
        assert_eq!(config.body_timeout, Duration::from_secs(4));
        assert_eq!(
            config.drain_timeout,
            Duration::from_secs(5),
            "env wins over file"
        );
        let defaults = Config::default();
        assert_eq!(
            (defaults.max_connections, defaults.max_connections_per_ip),
            (10_000, 256)
        );
        for var in ["CASCADE_HEADER_TIMEOUT", "CASCADE_BODY_TIMEOUT"] {
            let e = load_with_env(&cli(&[]), &env(&[(var, "0s")])).unwrap_err();
            assert!(
                format!("{e:#}").contains("_timeout must be"),
                "{var}: {e:#}"
            );
        }
    }

    #[test]
    fn session_rate_limits_are_read_from_every_layer() {
        let file = TempToml::new("rates", "message_rate_limit = 20\ndata_rate_limit = 1000\n");
        let config = load_with_env(&cli(&["--config", file.arg()]), &env(&[])).unwrap();
        assert_eq!(
            (config.message_rate_limit, config.data_rate_limit),
            (20, 1000)
        );
        let config = load_with_env(
            &cli(&["--config", file.arg(), "--data-rate-limit", "0"]),
            &env(&[("CASCADE_MESSAGE_RATE_LIMIT", "7")]),
        )
        .unwrap();
        assert_eq!((config.message_rate_limit, config.data_rate_limit), (7, 0));
        let defaults = Config::default();
        assert_eq!(
            (defaults.message_rate_limit, defaults.data_rate_limit),
            (50, 262_144)
        );
        assert!(load_with_env(&cli(&[]), &env(&[("CASCADE_DATA_RATE_LIMIT", "-1")])).is_err());
    }
}
