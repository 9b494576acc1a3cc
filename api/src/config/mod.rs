//! Server configuration: the [`Config`] model with its defaults and validation, and its
//! loading. The command line is in [`cli`], the `CASCADE_*` environment variables in [`env`].
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
use std::net::{IpAddr, Ipv4Addr, SocketAddr, ToSocketAddrs};
use std::ops::RangeInclusive;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, anyhow, bail, ensure};
use clap::ValueEnum;
use figment::Figment;
use figment::providers::{Format, Serialized, Toml};
use figment::value::{Dict, Value};
use serde::{Deserialize, Serialize};

mod cli;
mod env;
#[cfg(test)]
mod tests;

pub use cli::{Cli, Command, ServeArgs, TokenArgs};

/// API key used when none is configured. Development only.
pub const DEFAULT_API_KEY: &str = "devkey";
/// API secret used when none is configured. Development only: it is public.
pub const DEFAULT_API_SECRET: &str = "devsecret-cascade-development-only-0123456789";
/// Shortest accepted API secret, in bytes (HS256 wants at least 256 bits of key).
pub const MIN_API_SECRET_LEN: usize = 32;
/// Validity of minted TURN credentials when none is configured.
pub const DEFAULT_TURN_CREDENTIAL_TTL: Duration = Duration::from_secs(24 * 3600);
/// Longest accepted validity of minted TURN credentials.
pub const MAX_TURN_CREDENTIAL_TTL: Duration = Duration::from_secs(7 * 24 * 3600);
/// Time a client has to complete its TLS handshake when none is configured.
pub const DEFAULT_TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// The embedded TURN server's default UDP and TCP port (the IANA port of TURN).
pub const DEFAULT_TURN_PORT: u16 = 3478;
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
    /// The URL users reach the server at (`https://cascade.example.com`), e.g. through a reverse
    /// proxy: shown in the banner and the demo's invite links; `None` = the listen address.
    pub public_url: Option<String>,
    /// PEM certificate chain of the HTTP port: with `tls_key`, the port speaks HTTPS and WSS.
    /// Reloaded when the file changes or on SIGHUP.
    pub tls_cert: Option<PathBuf>,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1) of `tls_cert`.
    pub tls_key: Option<PathBuf>,
    /// Serve HTTPS with a certificate generated at start-up (development; browsers warn).
    pub tls_self_signed: bool,
    /// Time a client has to complete its TLS handshake.
    #[serde(with = "humantime_serde")]
    pub tls_handshake_timeout: Duration,
    /// The one UDP port for all media, bound on every IPv4 and IPv6 address (0 = ephemeral,
    /// for tests); ICE-TCP listens on the same number.
    pub udp_port: u16,
    /// Passive ICE-TCP candidates on the media port number.
    pub ice_tcp: bool,
    /// Addresses advertised in ICE candidates (1:1 NAT); empty = the host's interface addresses.
    pub public_ips: Vec<IpAddr>,
    /// STUN server (`HOST:PORT`) asked at start-up for the media port's public address, which
    /// is then advertised too; `None` = no discovery.
    pub stun_server: Option<String>,
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
    /// Run the embedded TURN server ([`crate::turn`]).
    pub turn: bool,
    /// UDP port of the embedded TURN server (0 = ephemeral, for tests).
    pub turn_udp_port: u16,
    /// TCP port of the embedded TURN server (0 = ephemeral, for tests).
    pub turn_tcp_port: u16,
    /// TLS port of the embedded TURN server (the HTTPS certificate); `None` = no TURN over TLS.
    pub turn_tls_port: Option<u16>,
    /// IP the embedded TURN server's relay sockets bind; `None` = its listen IP.
    pub turn_relay_ip: Option<IpAddr>,
    /// Ports of the relay sockets, `MIN-MAX`; `None` = ephemeral ports.
    pub turn_relay_ports: Option<String>,
    /// Most live allocations of the embedded TURN server.
    pub turn_max_allocations: usize,
    /// Realm of the embedded TURN server's long-term credentials.
    pub turn_realm: String,
    /// Secret of the time-limited TURN credentials (coturn's `static-auth-secret`): when set,
    /// or generated at start-up for the embedded server, each participant gets credentials
    /// for the embedded server and `turn_urls` (see [`crate::turn_credentials`]).
    pub turn_secret: Option<String>,
    /// `turn:`/`turns:` URLs of an external TURN server, handed out with minted credentials.
    pub turn_urls: Vec<String>,
    /// Validity of minted TURN credentials, from the participant's join.
    #[serde(with = "humantime_serde")]
    pub turn_credential_ttl: Duration,
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
    /// How long the participant of a dropped WebSocket waits for a `resume` (0 = it leaves at
    /// once).
    #[serde(with = "humantime_serde")]
    pub resume_grace: Duration,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            http_addr: SocketAddr::new(Ipv4Addr::UNSPECIFIED.into(), 7880),
            public_url: None,
            tls_cert: None,
            tls_key: None,
            tls_self_signed: false,
            tls_handshake_timeout: DEFAULT_TLS_HANDSHAKE_TIMEOUT,
            udp_port: 7882,
            ice_tcp: true,
            public_ips: Vec::new(),
            stun_server: None,
            api_key: DEFAULT_API_KEY.to_owned(),
            api_secret: DEFAULT_API_SECRET.to_owned(),
            room_empty_timeout: Duration::from_secs(30),
            max_participants: 100,
            log_format: LogFormat::Text,
            workers: 0,
            ice_servers: Vec::new(),
            turn: false,
            turn_udp_port: DEFAULT_TURN_PORT,
            turn_tcp_port: DEFAULT_TURN_PORT,
            turn_tls_port: None,
            turn_relay_ip: None,
            turn_relay_ports: None,
            turn_max_allocations: 1000,
            turn_realm: "cascade".to_owned(),
            turn_secret: None,
            turn_urls: Vec::new(),
            turn_credential_ttl: DEFAULT_TURN_CREDENTIAL_TTL,
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
            resume_grace: Duration::from_secs(20),
        }
    }
}

/// Like a derived `Debug`, but never prints the API, webhook or TURN secrets.
impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        debug_struct!(f, "Config", self, {
            http_addr, public_url, tls_cert, tls_key, tls_self_signed, tls_handshake_timeout,
            udp_port, ice_tcp, public_ips, stun_server, api_key, api_secret = "<redacted>",
            room_empty_timeout, max_participants, log_format, workers, ice_servers, turn,
            turn_udp_port, turn_tcp_port, turn_tls_port, turn_relay_ip, turn_relay_ports,
            turn_max_allocations, turn_realm,
            turn_secret = self.turn_secret.as_ref().map(|_| "<redacted>"),
            turn_urls, turn_credential_ttl, webhook_urls,
            webhook_secret = self.webhook_secret.as_ref().map(|_| "<redacted>"),
            webhook_timeout, webhook_max_attempts, session_rate_limit, max_connections,
            max_connections_per_ip, header_timeout, body_timeout, drain_timeout,
            message_rate_limit, data_rate_limit, resume_grace,
        })
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

    /// Whether the HTTP port speaks TLS (a certificate file or a generated one).
    pub fn tls_enabled(&self) -> bool {
        self.tls_self_signed || self.tls_cert.is_some()
    }

    fn validate(&self) -> anyhow::Result<()> {
        self.validate_tls()?;
        if let Some(url) = &self.public_url {
            parse_public_url(url)?;
        }
        ensure!(!self.api_key.is_empty(), "api_key must not be empty");
        ensure!(
            self.api_secret.len() >= MIN_API_SECRET_LEN,
            "api_secret must be at least {MIN_API_SECRET_LEN} bytes long (it is {})",
            self.api_secret.len()
        );
        if let Some(ip) = self.public_ips.iter().find(|ip| ip.is_unspecified()) {
            bail!("public IP {ip} is unspecified and cannot be advertised");
        }
        if let Some(server) = &self.stun_server {
            split_host_port(server)?;
        }
        for url in &self.ice_servers {
            let scheme = url.split_once(':').map_or("", |(scheme, _)| scheme);
            ensure!(
                matches!(scheme, "stun" | "stuns" | "turn" | "turns"),
                "ICE server URL {url:?} must start with stun:, stuns:, turn: or turns:"
            );
        }
        self.validate_turn()?;
        for url in &self.webhook_urls {
            parse_webhook_url(url)?;
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

    /// The STUN server's address: `stun_server` resolved now (its first IPv4 address: the media
    /// socket is IPv4); `None` if unset.
    pub fn resolve_stun_server(&self) -> anyhow::Result<Option<SocketAddr>> {
        let Some(server) = &self.stun_server else {
            return Ok(None);
        };
        let (host, port) = split_host_port(server)?;
        let addrs = (host, port)
            .to_socket_addrs()
            .with_context(|| format!("stun_server {server:?} does not resolve"))?;
        addrs
            .into_iter()
            .find(SocketAddr::is_ipv4)
            .map(Some)
            .ok_or_else(|| anyhow!("stun_server {server:?} has no IPv4 address"))
    }

    /// Checks the TURN options: the external server's URLs need the secret they share (the
    /// embedded server alone may do without: one is generated at start-up), the URLs are
    /// `turn:`/`turns:`, the credential TTL is within bounds, the embedded server's ports,
    /// relay port range, allocation cap and realm are usable.
    fn validate_turn(&self) -> anyhow::Result<()> {
        match (&self.turn_secret, self.turn_urls.is_empty()) {
            (None, false) => bail!(
                "turn_urls are set but turn_secret is not: an external TURN server needs the \
                 secret it shares with Cascade"
            ),
            (Some(_), true) if !self.turn => bail!(
                "turn_secret is set but neither turn_urls nor turn is: set turn_urls for an \
                 external TURN server, or turn for the embedded one"
            ),
            (Some(secret), _) => ensure!(!secret.is_empty(), "turn_secret must not be empty"),
            (None, true) => {}
        }
        for url in &self.turn_urls {
            let scheme = url.split_once(':').map_or("", |(scheme, _)| scheme);
            ensure!(
                matches!(scheme, "turn" | "turns"),
                "TURN URL {url:?} must start with turn: or turns:"
            );
        }
        ensure!(
            !self.turn_credential_ttl.is_zero()
                && self.turn_credential_ttl <= MAX_TURN_CREDENTIAL_TTL,
            "turn_credential_ttl must be longer than 0s and at most {}",
            humantime::format_duration(MAX_TURN_CREDENTIAL_TTL)
        );
        self.turn_relay_port_range()?;
        ensure!(
            self.turn_max_allocations >= 1,
            "turn_max_allocations must be at least 1"
        );
        ensure!(!self.turn_realm.is_empty(), "turn_realm must not be empty");
        if let Some(ip) = self.turn_relay_ip {
            ensure!(
                ip.is_ipv4(),
                "turn_relay_ip {ip} must be IPv4 (relays are IPv4 only)"
            );
        }
        if self.ice_tcp && self.udp_port != 0 {
            ensure!(
                self.http_addr.port() != self.udp_port,
                "http_addr's port and udp_port are both {}: ICE-TCP listens on udp_port, so they \
                 must differ (or set ice_tcp = false)",
                self.udp_port
            );
        }
        if self.turn {
            ensure!(
                self.turn_udp_port == 0 || self.turn_udp_port != self.udp_port,
                "turn_udp_port and udp_port are both {}: they must differ",
                self.udp_port
            );
            ensure!(
                !self.ice_tcp || self.turn_tcp_port == 0 || self.turn_tcp_port != self.udp_port,
                "turn_tcp_port and udp_port are both {}: ICE-TCP listens on udp_port, so they \
                 must differ (or set ice_tcp = false)",
                self.udp_port
            );
            if let Some(tls) = self.turn_tls_port {
                ensure!(
                    !self.ice_tcp || tls == 0 || tls != self.udp_port,
                    "turn_tls_port and udp_port are both {tls}: ICE-TCP listens on udp_port, so \
                     they must differ (or set ice_tcp = false)"
                );
            }
            if let Some(tls) = self.turn_tls_port {
                ensure!(
                    tls == 0 || tls != self.turn_tcp_port,
                    "turn_tls_port and turn_tcp_port are both {tls}: they must differ"
                );
            }
        }
        Ok(())
    }

    /// The relay port range of `turn_relay_ports` (`MIN-MAX`, 1 ≤ MIN ≤ MAX); `None` if unset.
    pub fn turn_relay_port_range(&self) -> anyhow::Result<Option<RangeInclusive<u16>>> {
        let Some(ports) = &self.turn_relay_ports else {
            return Ok(None);
        };
        let parsed = ports.split_once('-').and_then(|(min, max)| {
            let (min, max): (u16, u16) = (min.trim().parse().ok()?, max.trim().parse().ok()?);
            (min >= 1 && min <= max).then_some(min..=max)
        });
        parsed
            .map(Some)
            .ok_or_else(|| anyhow!("turn_relay_ports {ports:?} must be MIN-MAX, 1 <= MIN <= MAX"))
    }
}

impl Config {
    /// Checks the TLS options: certificate and key come together, and exclude a generated one.
    fn validate_tls(&self) -> anyhow::Result<()> {
        match (&self.tls_cert, &self.tls_key) {
            (Some(_), None) => bail!("tls_cert is set but tls_key is not: set both or neither"),
            (None, Some(_)) => bail!("tls_key is set but tls_cert is not: set both or neither"),
            _ => {}
        }
        ensure!(
            !(self.tls_self_signed && self.tls_cert.is_some()),
            "tls_self_signed and tls_cert exclude each other: use one"
        );
        ensure!(
            !self.tls_handshake_timeout.is_zero(),
            "tls_handshake_timeout must be longer than 0s"
        );
        Ok(())
    }
}

/// Parses a `public_url`: absolute `http` or `https` with a host, and no path, query or fragment
/// beyond `/`.
pub fn parse_public_url(url: &str) -> anyhow::Result<reqwest::Url> {
    let parsed = reqwest::Url::parse(url).with_context(|| format!("public_url {url:?}"))?;
    ensure!(
        matches!(parsed.scheme(), "http" | "https"),
        "public_url {url:?} must start with http:// or https://"
    );
    ensure!(
        parsed.host_str().is_some_and(|h| !h.is_empty()),
        "public_url {url:?} has no host"
    );
    ensure!(
        parsed.path() == "/" && parsed.query().is_none() && parsed.fragment().is_none(),
        "public_url {url:?} must be just scheme, host and port (no path, query or fragment)"
    );
    Ok(parsed)
}

/// Splits a `stun_server` value into host (brackets of an IPv6 literal removed) and port.
fn split_host_port(server: &str) -> anyhow::Result<(&str, u16)> {
    let parsed = server.rsplit_once(':').and_then(|(host, port)| {
        let host = host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(host);
        Some((host, port.parse().ok()?)).filter(|(host, _)| !host.is_empty())
    });
    parsed.ok_or_else(|| anyhow!("stun_server {server:?} must be HOST:PORT"))
}

/// Parses a webhook URL: absolute, `http` or `https`, with a host.
pub fn parse_webhook_url(url: &str) -> anyhow::Result<reqwest::Url> {
    let parsed = reqwest::Url::parse(url).with_context(|| format!("webhook URL {url:?}"))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        bail!("webhook URL {url:?} must start with http:// or https://");
    }
    if parsed.host_str().is_none_or(str::is_empty) {
        bail!("webhook URL {url:?} has no host");
    }
    Ok(parsed)
}

/// One layer of set values (CLI flags or `CASCADE_*` variables) by configuration key; unset
/// ones are left out so that lower layers show through.
#[derive(Debug, Default)]
struct Layer(Dict);

impl Layer {
    /// Sets `key` to `value`, if there is one.
    fn set<T: Serialize>(&mut self, key: &str, value: Option<T>) {
        if let Some(value) = value {
            let value = Value::serialize(value).expect("configuration values serialize");
            self.0.insert(key.to_owned(), value);
        }
    }

    /// Sets `key` to a duration, if there is one, written as in the TOML file ("1m 30s").
    fn set_duration(&mut self, key: &str, value: Option<Duration>) {
        self.set(
            key,
            value.map(|d| humantime::format_duration(d).to_string()),
        );
    }

    /// Sets `key` to a list, unless it is empty.
    fn set_list<T: Serialize>(&mut self, key: &str, values: &[T]) {
        self.set(key, (!values.is_empty()).then_some(values));
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
        .merge(Serialized::defaults(env::layer(env)?.0))
        .merge(Serialized::defaults(cli.serve.layer().0))
        .extract()
        .context("invalid configuration")?;
    config.validate().context("invalid configuration")?;
    Ok(config)
}
