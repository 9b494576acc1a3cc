//! The HTTP server: binds the ports, routes WebSocket signaling, the documented routes and the
//! embedded web pages; and its life: serving, draining (SIGTERM or `POST /api/drain`),
//! stopping.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use axum::Router;
use axum::routing::get;
use cascade_sfu::room::{RoomConfig, Rooms};
use cascade_sfu::{MediaConfig, MediaServer};
use tracing::{info, warn};

use crate::assets;
use crate::config::Config;
use crate::listener::{self, Limits};
use crate::metrics::{Metrics, TurnCounters};
use crate::state::AppState;
use crate::tls::Tls;
use crate::turn::{self, TurnConfig};
use crate::webhooks::{self, WebhookSettings, Webhooks};
use crate::ws::{self, WS_PATH};

/// How long shutdown waits for sessions to say goodbye.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(2);

/// A running server.
pub struct ServerHandle {
    /// Where HTTP is served.
    pub http_addr: SocketAddr,
    /// The TLS side of the HTTP port; `None` = plain HTTP.
    pub tls: Option<Tls>,
    /// Shared state, for inspection by tests.
    pub state: Arc<AppState>,
    task: tokio::task::JoinHandle<()>,
}

impl ServerHandle {
    /// The UDP media port.
    pub fn udp_port(&self) -> u16 {
        self.state.media().port()
    }

    /// The address the UDP media socket is bound to.
    pub fn udp_addr(&self) -> SocketAddr {
        self.state.media().local_addr()
    }

    /// The embedded TURN server's UDP address, when it runs.
    pub fn turn_udp_addr(&self) -> Option<SocketAddr> {
        self.state.turn.as_ref().map(|t| t.udp_addr)
    }

    /// The embedded TURN server's TCP address, when it runs.
    pub fn turn_tcp_addr(&self) -> Option<SocketAddr> {
        self.state.turn.as_ref().map(|t| t.tcp_addr)
    }

    /// The embedded TURN server's TLS address, when it runs with TLS.
    pub fn turn_tls_addr(&self) -> Option<SocketAddr> {
        self.state.turn.as_ref().and_then(|t| t.tls_addr)
    }

    /// The WebSocket URL (`wss:` with TLS).
    pub fn ws_url(&self) -> String {
        let scheme = if self.tls.is_some() { "wss" } else { "ws" };
        format!("{scheme}://{}{WS_PATH}", self.http_addr)
    }

    /// Tells every participant to leave, waits briefly for them, then stops serving.
    pub async fn shutdown(self) {
        let state = self.state.clone();
        state.rooms.kick_all("server_shutdown");
        state.begin_shutdown();
        let deadline = Instant::now() + SHUTDOWN_GRACE;
        while state.sessions() > 0 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        state.webhooks.shutdown(webhooks::SHUTDOWN_GRACE).await;
        if let Some(turn) = &state.turn {
            turn.stop();
        }
        let _ = tokio::time::timeout(Duration::from_secs(1), self.task).await;
        let media = state.media().clone();
        tokio::task::spawn_blocking(move || media.shutdown())
            .await
            .ok();
    }
}

/// Binds the HTTP and UDP ports (and, with `turn` on, the embedded TURN server's) and starts
/// serving. TURN over TLS (`turn_tls_port`) uses the HTTPS certificate.
pub async fn start(mut config: Config) -> anyhow::Result<ServerHandle> {
    if config.turn && config.turn_secret.is_none() {
        let secret: [u8; 32] = rand::random();
        config.turn_secret = Some(secret.iter().map(|b| format!("{b:02x}")).collect());
        info!("generated a TURN credential secret at start-up (set turn_secret to choose one)");
    }
    let mut bind = config.http_addr;
    let tls = Tls::from_config(&config).context("setting up TLS")?;
    let media = MediaServer::start(MediaConfig {
        bind: SocketAddr::new(media_bind_ip(&config), config.udp_port),
        ice_tcp: config.ice_tcp.then(Default::default),
        public_ips: config.public_ips.clone(),
        workers: config.workers,
        stun_server: config.resolve_stun_server()?,
        ..MediaConfig::default()
    })
    .with_context(|| {
        format!(
            "binding the media port {} (UDP, and TCP for ICE-TCP)",
            config.udp_port
        )
    })?;
    let listener = tokio::net::TcpListener::bind(bind)
        .await
        .with_context(|| format!("binding HTTP address {bind}"))?;
    bind = listener.local_addr()?;
    let metrics = Metrics::new();
    let webhooks = Webhooks::start(WebhookSettings::from_config(&config)?, metrics.webhooks())?;
    let mut rooms = Rooms::new(
        media.clone(),
        RoomConfig {
            max_participants: config.max_participants,
            empty_timeout: config.room_empty_timeout,
        },
    );
    if webhooks.is_enabled() {
        rooms = rooms.with_observer(webhooks.observer());
    }
    let mut state = AppState::new(config, media, rooms, metrics, webhooks);
    if state.config.turn {
        let started = match turn_config(&state.config, state.media()) {
            Ok(mut settings) => {
                settings.metrics = state.metrics.turn();
                turn::start(settings, tls.as_ref().map(Tls::acceptor)).await
            }
            Err(e) => Err(e),
        };
        match started {
            Ok(turn) => state.turn = Some(turn),
            Err(e) => {
                // Release the media port (its threads) before reporting.
                let media = state.media().clone();
                tokio::task::spawn_blocking(move || media.shutdown())
                    .await
                    .ok();
                return Err(e);
            }
        }
    }
    let state = Arc::new(state);
    let app = router(state.clone());
    let reaper = state.clone();
    tokio::spawn(async move {
        let mut stopped = reaper.shutdown_signal();
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        loop {
            tokio::select! {
                _ = tick.tick() => reaper.rooms.reap_empty(Instant::now()),
                _ = stopped.changed() => break,
            }
        }
    });
    let config = &state.config;
    let limits = Limits {
        max_connections: config.max_connections,
        max_connections_per_ip: config.max_connections_per_ip,
        header_timeout: config.header_timeout,
        body_timeout: config.body_timeout,
    };
    if let Some(tls) = &tls {
        tls.spawn_watch(state.shutdown_signal());
    }
    let task = tokio::spawn(listener::serve(
        listener,
        app,
        limits,
        tls.clone(),
        state.metrics.connections(),
        state.shutdown_signal(),
    ));
    Ok(ServerHandle {
        http_addr: bind,
        tls,
        state,
        task,
    })
}

/// How a server's run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// Drained (rooms emptied or `drain_timeout` passed) and shut down.
    Drained,
    /// A second SIGINT/SIGTERM during the drain: stopped at once, without telling anyone.
    Interrupted,
}

/// Serves until drained, then shuts down gracefully. The first SIGINT or SIGTERM caught by
/// `signals` begins the drain (as does `POST /api/drain`); a second one returns at once.
pub async fn run(handle: ServerHandle, mut signals: Signals) -> anyhow::Result<Exit> {
    let state = handle.state.clone();
    loop {
        tokio::select! {
            _ = state.drained() => break,
            _ = signals.next() => {
                if !state.begin_drain() {
                    warn!("second signal during the drain: exiting at once");
                    return Ok(Exit::Interrupted);
                }
            }
        }
    }
    info!("shutting down");
    tokio::time::timeout(Duration::from_secs(4), handle.shutdown())
        .await
        .ok();
    Ok(Exit::Drained)
}

/// SIGINT and SIGTERM, as a stream; caught from [`Signals::new`] on, so create it before the
/// server announces itself.
pub struct Signals {
    #[cfg(unix)]
    term: tokio::signal::unix::Signal,
}

impl Signals {
    /// Installs the handlers.
    pub fn new() -> anyhow::Result<Self> {
        Ok(Self {
            #[cfg(unix)]
            term: tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                .context("installing the SIGTERM handler")?,
        })
    }

    async fn next(&mut self) {
        let ctrl_c = tokio::signal::ctrl_c();
        #[cfg(unix)]
        tokio::select! {
            _ = ctrl_c => {}
            _ = self.term.recv() => {}
        }
        #[cfg(not(unix))]
        let _ = ctrl_c.await;
    }
}

/// The embedded TURN server's settings: listening where the media socket does, allowing as
/// peers only the media socket's advertised addresses (and its bound IP if specific).
fn turn_config(config: &Config, media: &MediaServer) -> anyhow::Result<TurnConfig> {
    let listen_ip = bind_ip(config);
    let port = media.port();
    let mut allowed_peers: Vec<SocketAddr> = media
        .candidate_ips()
        .iter()
        .map(|ip| SocketAddr::new(*ip, port))
        .collect();
    if !listen_ip.is_unspecified() {
        allowed_peers.push(SocketAddr::new(listen_ip, port));
    }
    allowed_peers.sort();
    allowed_peers.dedup();
    // Advertised IPs this host does not hold (a 1:1 NAT's public address): relays send to the
    // media socket's local address instead of relying on the NAT to hairpin.
    let relay_ip = config.turn_relay_ip.unwrap_or(listen_ip);
    let local_ip = [listen_ip, relay_ip]
        .into_iter()
        .find(|ip| !ip.is_unspecified())
        .unwrap_or(Ipv4Addr::LOCALHOST.into());
    let translations = allowed_peers
        .iter()
        .filter(|peer| peer.is_ipv4()) // relays are IPv4
        .filter(|peer| std::net::UdpSocket::bind(SocketAddr::new(peer.ip(), 0)).is_err())
        .map(|peer| (*peer, SocketAddr::new(local_ip, port)))
        .collect();
    let advertised_ip = media
        .candidate_ips()
        .iter()
        .copied()
        .find(IpAddr::is_ipv4)
        .unwrap_or(listen_ip);
    Ok(TurnConfig {
        listen_ip,
        udp_port: config.turn_udp_port,
        tcp_port: config.turn_tcp_port,
        tls_port: config.turn_tls_port,
        relay_ip: config.turn_relay_ip,
        relay_ports: config.turn_relay_port_range()?,
        advertised_ip,
        max_allocations: config.turn_max_allocations,
        realm: config.turn_realm.clone(),
        secret: config
            .turn_secret
            .clone()
            .context("the TURN secret is set before the TURN server starts")?
            .into_bytes(),
        allowed_peers,
        translations,
        metrics: TurnCounters::unregistered(),
    })
}

/// The media port's address: the loopback address if HTTP is on one (a local-only server is
/// local-only on every port), else every IPv4 and IPv6 address.
fn media_bind_ip(config: &Config) -> std::net::IpAddr {
    match config.http_addr.ip() {
        ip if ip.is_loopback() => ip,
        _ => std::net::Ipv6Addr::UNSPECIFIED.into(),
    }
}

/// The embedded TURN server's address (IPv4: relays are IPv4): the loopback address if HTTP is
/// on one, else every IPv4 address.
fn bind_ip(config: &Config) -> std::net::IpAddr {
    match config.http_addr.ip() {
        ip if ip.is_loopback() => ip,
        _ => std::net::Ipv4Addr::UNSPECIFIED.into(),
    }
}

fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route(WS_PATH, get(ws::upgrade))
        .merge(crate::openapi::router())
        .route("/lib/{version}/{*path}", get(assets::versioned))
        .fallback(get(assets::file))
        .with_state(state)
}
