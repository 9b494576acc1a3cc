//! The `cascade` binary: runs the server, or mints a token with `cascade token`.

use std::io::IsTerminal;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::process::ExitCode;
use std::time::SystemTime;

use anyhow::{Context, anyhow};
use cascade_api::auth::{self, Grants};
use cascade_api::config::{self, Cli, Command, Config, LogFormat, TokenArgs};
use clap::Parser;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(&cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: &Cli) -> anyhow::Result<()> {
    let config = config::load(cli)?;
    match &cli.command {
        Some(Command::Token(args)) => print_token(&config, args),
        None => serve(config),
    }
}

/// Prints just the JWT on stdout (warnings go to stderr).
fn print_token(config: &Config, args: &TokenArgs) -> anyhow::Result<()> {
    let grants = Grants {
        can_publish: !args.no_publish,
        can_subscribe: !args.no_subscribe,
        can_publish_data: !args.no_publish_data,
        room_admin: args.admin,
        ..Grants::new(args.room.as_str())
    };
    let token = auth::mint(
        &config.api_key,
        &config.api_secret,
        &args.identity,
        grants,
        args.ttl,
        SystemTime::now(),
    )?;
    if config.is_dev_secret() {
        eprintln!("warning: signed with the built-in development secret");
    }
    println!("{token}");
    Ok(())
}

fn serve(config: Config) -> anyhow::Result<()> {
    init_tracing(config.log_format)?;
    print_banner(&config);
    tokio::runtime::Runtime::new()
        .context("starting the async runtime")?
        .block_on(cascade_api::server::run(config))
}

/// Logs to stderr, filtered by `RUST_LOG` (default `info`); `log` records are bridged in;
/// media-path lines are rate-limited ([`cascade_sfu::log_limit`]).
fn init_tracing(format: LogFormat) -> anyhow::Result<()> {
    let filter = EnvFilter::builder()
        .with_default_directive(LevelFilter::INFO.into())
        .from_env()
        .map_err(|e| anyhow!("invalid RUST_LOG: {e}"))?;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    // Lines a remote party can trigger on the media path are rate-limited per call site.
    let limit = cascade_sfu::log_limit::MediaLogLimit::default();
    match format {
        LogFormat::Text => builder
            .with_ansi(std::io::stderr().is_terminal())
            .finish()
            .with(limit)
            .try_init(),
        LogFormat::Json => builder.json().finish().with(limit).try_init(),
    }
    .map_err(|e| anyhow!("initializing logging: {e}"))
}

fn print_banner(config: &Config) {
    let ip = match config.http_addr.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => Ipv4Addr::LOCALHOST.into(),
        IpAddr::V6(ip) if ip.is_unspecified() => Ipv6Addr::LOCALHOST.into(),
        ip => ip,
    };
    let addr = SocketAddr::new(ip, config.http_addr.port());
    let udp = match config.udp_port {
        0 => "an ephemeral port".to_owned(),
        port => format!("port {port}"),
    };
    let public_ips = match config.public_ips.as_slice() {
        [] => "the host's interface addresses".to_owned(),
        ips => ips
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(", "),
    };
    eprintln!("Cascade {}", env!("CARGO_PKG_VERSION"));
    eprintln!("  HTTP:       http://{addr}/");
    eprintln!("  WebSocket:  ws://{addr}/ws");
    eprintln!("  UDP media:  {udp} on all interfaces, advertised as {public_ips}");
    if config.is_dev_secret() {
        eprintln!();
        eprintln!("WARNING: using the built-in development API key and secret.");
        eprintln!("WARNING: they are public; for development only, never in production.");
        eprintln!("  API key:    {}", config.api_key);
        eprintln!("  API secret: {}", config.api_secret);
        eprintln!("  Mint a token: cargo run --release -- token --room demo --identity alice");
    }
    eprintln!();
}
