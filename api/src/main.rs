//! The `cascade` binary: runs the server, or mints a token with `cascade token`.

use std::io::IsTerminal;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::process::ExitCode;
use std::time::SystemTime;

use anyhow::anyhow;
use cascade_api::auth::{self, Grants};
use cascade_api::config::{self, Cli, Command, Config, LogFormat, TokenArgs};
use cascade_api::server::{self, Exit, ServerHandle};
use cascade_api::tls::{Source, Tls};
use clap::Parser;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let config = match config::load(&cli) {
        Ok(config) => config,
        Err(e) => return fail(&e),
    };
    match &cli.command {
        Some(Command::Token(args)) => match print_token(&config, args) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => fail(&e),
        },
        None => serve(config),
    }
}

/// Reports an error before logging is set up.
fn fail(e: &anyhow::Error) -> ExitCode {
    eprintln!("error: {e:#}");
    ExitCode::FAILURE
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

/// Runs the server until it has drained; exits 0 then, 1 on an error or when a second signal
/// cut the drain short. Every line on stderr is a log event in JSON mode.
fn serve(config: Config) -> ExitCode {
    let format = config.log_format;
    if let Err(e) = init_tracing(format) {
        return fail(&e);
    }
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(e) => return report(format, &anyhow!("starting the async runtime: {e}")),
    };
    let result = runtime.block_on(async {
        // Caught from before the banner: a SIGTERM right after it drains rather than kills.
        let signals = server::Signals::new()?;
        let handle = server::start(config).await?;
        announce(&handle, format);
        server::run(handle, signals).await
    });
    // Tasks still running after a cut-short drain are not waited for.
    runtime.shutdown_background();
    match result {
        Ok(Exit::Drained) => ExitCode::SUCCESS,
        Ok(Exit::Interrupted) => ExitCode::FAILURE,
        Err(e) => report(format, &e),
    }
}

/// Reports a fatal error in the log format.
fn report(format: LogFormat, e: &anyhow::Error) -> ExitCode {
    match format {
        LogFormat::Text => return fail(e),
        LogFormat::Json => tracing::error!(error = %format!("{e:#}"), "cascade stopped"),
    }
    ExitCode::FAILURE
}

/// Logs to stderr, filtered by `RUST_LOG` (default `info`); `log` records are bridged in;
/// media-path lines are rate-limited ([`cascade_sfu::log_limit`]). In JSON mode a panic is
/// logged as an `ERROR` event too, so that stderr stays JSON.
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
    .map_err(|e| anyhow!("initializing logging: {e}"))?;
    if format == LogFormat::Json {
        std::panic::set_hook(Box::new(|info| tracing::error!(panic = %info, "panic")));
    }
    Ok(())
}

/// Tells the operator where the server is reachable: a banner in text mode, log events in JSON
/// mode, with the addresses actually bound, the public URL, and what TLS serves.
fn announce(handle: &ServerHandle, format: LogFormat) {
    let config = &handle.state.config;
    // An unspecified listen address is reachable on loopback: show a URL one can open.
    let ip = match handle.http_addr.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => Ipv4Addr::LOCALHOST.into(),
        IpAddr::V6(ip) if ip.is_unspecified() => Ipv6Addr::LOCALHOST.into(),
        ip => ip,
    };
    let http = SocketAddr::new(ip, handle.http_addr.port());
    let (scheme, ws) = if handle.tls.is_some() {
        ("https", "wss")
    } else {
        ("http", "ws")
    };
    let local = format!("{scheme}://{http}/");
    let open = config.public_url.clone().unwrap_or_else(|| local.clone());
    let udp = handle.udp_addr();
    let interfaces = match udp.ip() {
        ip if ip.is_unspecified() => "all interfaces",
        ip if ip.is_loopback() => "loopback only",
        _ => "one interface",
    };
    let advertised = handle
        .state
        .media()
        .candidates()
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ");
    let ice_tcp = handle.state.media().ice_tcp();
    let version = env!("CARGO_PKG_VERSION");
    const MINT: &str = "cargo run --release -- token --room demo --identity alice";
    // Browsers give a page the camera only in a secure context: HTTPS, or localhost.
    let plain_in_production =
        handle.tls.is_none() && !config.is_dev_secret() && !open.starts_with("https://");
    const PLAIN: &str = "serving plain HTTP: browsers allow camera and microphone only on \
        https:// pages (or localhost). Set --tls-cert and --tls-key, or put a TLS reverse proxy \
        in front and set --public-url https://... (docs/deployment.md)";
    match format {
        LogFormat::Text => {
            eprintln!("Cascade {version}");
            eprintln!("  Open:       {open}");
            if config.public_url.is_some() {
                eprintln!("  Listening:  {local}");
            } else if handle.http_addr.ip().is_unspecified() {
                // Listening on every interface: the URLs other machines can open too.
                let port = handle.http_addr.port();
                let others: Vec<String> = handle
                    .state
                    .media()
                    .candidate_ips()
                    .iter()
                    .filter(|ip| !ip.is_loopback())
                    .map(|ip| format!("{scheme}://{}/", SocketAddr::new(*ip, port)))
                    .collect();
                if !others.is_empty() {
                    eprintln!("  Also at:    {}", others.join(", "));
                }
            }
            eprintln!("  WebSocket:  {ws}://{http}/ws");
            eprintln!("  UDP media:  {udp} ({interfaces}), advertised as {advertised}");
            if ice_tcp {
                eprintln!(
                    "  ICE-TCP:    TCP port {}, for clients without UDP",
                    udp.port()
                );
            }
            if let Some(report) = handle.state.media().stun_report() {
                let check = if report.reaches_socket {
                    "a probe to it came back"
                } else {
                    "a probe to it did not come back; check from outside"
                };
                eprintln!(
                    "  STUN:       mapped {}: {}",
                    report.mapped,
                    report.assessment.describe()
                );
                eprintln!("              self-check: {check}");
            }
            if let Some(turn) = &handle.state.turn {
                let tls = turn
                    .tls_addr
                    .map_or(String::new(), |a| format!(", TLS {a}"));
                eprintln!(
                    "  TURN:       UDP {}, TCP {}{tls}; relays only to the media port",
                    turn.udp_addr, turn.tcp_addr
                );
            }
            if let Some(tls) = &handle.tls {
                print_tls(tls);
            }
            if plain_in_production {
                eprintln!();
                eprintln!("WARNING: {PLAIN}");
            }
            if config.is_dev_secret() {
                eprintln!();
                eprintln!("WARNING: using the built-in development API key and secret.");
                eprintln!("WARNING: they are public; for development only, never in production.");
                eprintln!("  API key:    {}", config.api_key);
                eprintln!("  API secret: {}", config.api_secret);
                eprintln!("  Mint a token: {MINT}");
            }
            eprintln!();
        }
        LogFormat::Json => {
            if config.is_dev_secret() {
                tracing::warn!(
                    api_key = %config.api_key,
                    api_secret = %config.api_secret,
                    mint_a_token = MINT,
                    "using the built-in development API key and secret: they are public; for \
                     development only, never in production"
                );
            }
            if plain_in_production {
                tracing::warn!("{PLAIN}");
            }
        }
    }
    let tls = handle.tls.as_ref();
    tracing::info!(
        version,
        open = %open,
        http = %local,
        websocket = %format!("{ws}://{http}/ws"),
        udp = %udp,
        udp_interfaces = interfaces,
        ice_tcp,
        advertised = %advertised,
        tls_fingerprint = tls.map(|t| t.fingerprint()),
        "cascade serving"
    );
}

/// The TLS lines of the banner: where the certificate comes from, its fingerprint, and for a
/// generated one what browsers will say and how to get past it.
fn print_tls(tls: &Tls) {
    let fingerprint = tls.fingerprint();
    match &tls.source {
        Source::Files { cert, .. } => {
            eprintln!(
                "  TLS:        {} (reloaded on change or SIGHUP)",
                cert.display()
            );
            eprintln!("              SHA-256 {fingerprint}");
        }
        Source::SelfSigned { spki_sha256 } => {
            eprintln!("  TLS:        self-signed development certificate, made at start-up");
            eprintln!("              SHA-256 {fingerprint}");
            eprintln!(
                "              Browsers will say it is not trusted (Chrome: \"Your connection is \
                 not private\", NET::ERR_CERT_AUTHORITY_INVALID; Firefox: SEC_ERROR_UNKNOWN_ISSUER)."
            );
            eprintln!(
                "              Check the fingerprint, then Advanced > Proceed; or start Chromium \
                 with --ignore-certificate-errors-spki-list={spki_sha256}"
            );
        }
    }
}
