//! The `cascade` command line: the server's flags ([`ServeArgs`], each overriding its
//! `CASCADE_*` variable, the TOML file and the default) and the `token` subcommand.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, Subcommand};

use super::{Layer, LogFormat};

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
    /// URL users reach the server at, e.g. https://cascade.example.com (banner, invite links)
    /// [env: CASCADE_PUBLIC_URL] [default: the listen address].
    #[arg(long, value_name = "URL")]
    pub public_url: Option<String>,
    /// PEM certificate chain: the HTTP port speaks HTTPS/WSS; reloaded when the file changes
    /// or on SIGHUP [env: CASCADE_TLS_CERT] [default: none, plain HTTP].
    #[arg(long, value_name = "PATH")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key of --tls-cert [env: CASCADE_TLS_KEY] [default: none].
    #[arg(long, value_name = "PATH")]
    pub tls_key: Option<PathBuf>,
    /// Serve HTTPS with a certificate generated at start-up, for development
    /// [env: CASCADE_TLS_SELF_SIGNED] [default: false].
    #[arg(long)]
    pub tls_self_signed: bool,
    /// Time a client has to complete its TLS handshake, e.g. "10s"
    /// [env: CASCADE_TLS_HANDSHAKE_TIMEOUT] [default: 10s].
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
    pub tls_handshake_timeout: Option<Duration>,
    /// Media port, UDP on every IPv4 and IPv6 address (loopback if --http-addr is), and
    /// ICE-TCP on the same number; 0 = ephemeral [env: CASCADE_UDP_PORT] [default: 7882].
    #[arg(long, value_name = "PORT")]
    pub udp_port: Option<u16>,
    /// Passive ICE-TCP candidates on the media port number, for clients whose UDP is blocked;
    /// `--ice-tcp=false` turns them off [env: CASCADE_ICE_TCP] [default: true].
    #[arg(long, value_name = "BOOL", num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    pub ice_tcp: Option<bool>,
    /// IP to advertise for 1:1 NAT; repeat or comma-separate [env: CASCADE_PUBLIC_IP]
    /// [default: the host's interface addresses].
    #[arg(long = "public-ip", value_name = "IP", value_delimiter = ',')]
    pub public_ips: Vec<IpAddr>,
    /// STUN server asked at start-up for the media port's public address, which is then
    /// advertised too [env: CASCADE_STUN_SERVER] [default: none].
    #[arg(long, value_name = "HOST:PORT")]
    pub stun_server: Option<String>,
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
    /// Run the embedded TURN server (UDP, TCP, optionally TLS), relaying only to Cascade's own
    /// media addresses; `--turn=false` turns it off [env: CASCADE_TURN] [default: false].
    #[arg(long, value_name = "BOOL", num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    pub turn: Option<bool>,
    /// UDP port of the embedded TURN server; 0 = ephemeral [env: CASCADE_TURN_UDP_PORT]
    /// [default: 3478].
    #[arg(long, value_name = "PORT")]
    pub turn_udp_port: Option<u16>,
    /// TCP port of the embedded TURN server; 0 = ephemeral [env: CASCADE_TURN_TCP_PORT]
    /// [default: 3478].
    #[arg(long, value_name = "PORT")]
    pub turn_tcp_port: Option<u16>,
    /// TLS port of the embedded TURN server, with the HTTPS certificate
    /// [env: CASCADE_TURN_TLS_PORT] [default: none, no TURN over TLS].
    #[arg(long, value_name = "PORT")]
    pub turn_tls_port: Option<u16>,
    /// IPv4 address the embedded TURN server's relay sockets bind [env: CASCADE_TURN_RELAY_IP]
    /// [default: the TURN listen address].
    #[arg(long, value_name = "IP")]
    pub turn_relay_ip: Option<IpAddr>,
    /// Port range of the relay sockets, e.g. "49152-49999" [env: CASCADE_TURN_RELAY_PORTS]
    /// [default: ephemeral ports].
    #[arg(long, value_name = "MIN-MAX")]
    pub turn_relay_ports: Option<String>,
    /// Most live allocations of the embedded TURN server [env: CASCADE_TURN_MAX_ALLOCATIONS]
    /// [default: 1000].
    #[arg(long, value_name = "N")]
    pub turn_max_allocations: Option<usize>,
    /// Realm of the embedded TURN server [env: CASCADE_TURN_REALM] [default: cascade].
    #[arg(long, value_name = "REALM")]
    pub turn_realm: Option<String>,
    /// Secret of the minted TURN credentials, shared with an external TURN server (coturn's
    /// `static-auth-secret`); prefer the env variable, flags are visible in `ps`
    /// [env: CASCADE_TURN_SECRET] [default: none; generated at start-up with --turn].
    #[arg(long, value_name = "SECRET")]
    pub turn_secret: Option<String>,
    /// `turn:`/`turns:` URL of the external TURN server, handed out with minted credentials;
    /// repeat or comma-separate [env: CASCADE_TURN_URLS] [default: none].
    #[arg(long = "turn-url", value_name = "URL", value_delimiter = ',')]
    pub turn_urls: Vec<String>,
    /// Validity of minted TURN credentials, e.g. "12h" [env: CASCADE_TURN_CREDENTIAL_TTL]
    /// [default: 24h].
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
    pub turn_credential_ttl: Option<Duration>,
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
    /// How long the participant of a dropped WebSocket waits for a `resume`, e.g. "20s";
    /// 0s = it leaves at once [env: CASCADE_RESUME_GRACE] [default: 20s].
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
    pub resume_grace: Option<Duration>,
}

impl ServeArgs {
    /// The flags that are set, as a configuration layer.
    pub(super) fn layer(&self) -> Layer {
        let mut layer = Layer::default();
        layer.set("http_addr", self.http_addr);
        layer.set("public_url", self.public_url.as_ref());
        layer.set("tls_cert", self.tls_cert.as_ref());
        layer.set("tls_key", self.tls_key.as_ref());
        layer.set("tls_self_signed", self.tls_self_signed.then_some(true));
        layer.set_duration("tls_handshake_timeout", self.tls_handshake_timeout);
        layer.set("udp_port", self.udp_port);
        layer.set("ice_tcp", self.ice_tcp);
        layer.set_list("public_ips", &self.public_ips);
        layer.set("stun_server", self.stun_server.as_ref());
        layer.set("api_key", self.api_key.as_ref());
        layer.set("api_secret", self.api_secret.as_ref());
        layer.set_duration("room_empty_timeout", self.room_empty_timeout);
        layer.set("max_participants", self.max_participants);
        layer.set("log_format", self.log_format);
        layer.set("workers", self.workers);
        layer.set_list("ice_servers", &self.ice_servers);
        layer.set("turn", self.turn);
        layer.set("turn_udp_port", self.turn_udp_port);
        layer.set("turn_tcp_port", self.turn_tcp_port);
        layer.set("turn_tls_port", self.turn_tls_port);
        layer.set("turn_relay_ip", self.turn_relay_ip);
        layer.set("turn_relay_ports", self.turn_relay_ports.as_ref());
        layer.set("turn_max_allocations", self.turn_max_allocations);
        layer.set("turn_realm", self.turn_realm.as_ref());
        layer.set("turn_secret", self.turn_secret.as_ref());
        layer.set_list("turn_urls", &self.turn_urls);
        layer.set_duration("turn_credential_ttl", self.turn_credential_ttl);
        layer.set_list("webhook_urls", &self.webhook_urls);
        layer.set("webhook_secret", self.webhook_secret.as_ref());
        layer.set_duration("webhook_timeout", self.webhook_timeout);
        layer.set("webhook_max_attempts", self.webhook_max_attempts);
        layer.set("session_rate_limit", self.session_rate_limit);
        layer.set("max_connections", self.max_connections);
        layer.set("max_connections_per_ip", self.max_connections_per_ip);
        layer.set_duration("header_timeout", self.header_timeout);
        layer.set_duration("body_timeout", self.body_timeout);
        layer.set_duration("drain_timeout", self.drain_timeout);
        layer.set("message_rate_limit", self.message_rate_limit);
        layer.set("data_rate_limit", self.data_rate_limit);
        layer.set_duration("resume_grace", self.resume_grace);
        layer
    }
}
