//! The HTTP server: WebSocket signaling at `/ws`, health, metrics and the embedded web pages;
//! its life: serving, draining (SIGTERM or `POST /api/drain`), stopping.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::time::{Duration, Instant};

use anyhow::Context;
use axum::Router;
use axum::extract::{Extension, State, WebSocketUpgrade};
use axum::http::{StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use cascade_sfu::room::{RoomConfig, Rooms};
use cascade_sfu::{MediaConfig, MediaServer};
use tokio::sync::watch;
use tracing::{info, warn};

use crate::config::Config;
use crate::listener::{self, ConnectionSlot, Limits};
use crate::metrics::{Metrics, RoomGauges};
use crate::session;
use crate::webhooks::{self, WebhookSettings, Webhooks};

/// Path of the WebSocket signaling endpoint.
pub const WS_PATH: &str = "/ws";
/// Largest WebSocket message the transport accepts; larger ones close the connection (1009).
/// Messages between this and the protocol limit (64 KiB) get a `message_too_large` error.
const WS_TRANSPORT_LIMIT: usize = 1024 * 1024;
/// Read buffer of a WebSocket (tungstenite allocates it up front; its default is 128 KiB).
/// Larger frames still arrive: the buffer grows while one is read.
const WS_READ_BUFFER: usize = 4 * 1024;
/// Most bytes tungstenite keeps queued for a WebSocket whose client does not read (a send
/// past it fails); its default is unbounded.
const WS_MAX_WRITE_BUFFER: usize = 2 * WS_TRANSPORT_LIMIT;
/// How often a drain checks whether the rooms are empty.
const DRAIN_POLL: Duration = Duration::from_millis(100);
/// Development-only token endpoint, served only with the embedded development secret.
pub const DEV_TOKEN_PATH: &str = "/api/dev/token";
/// Lifetime of development tokens.
const DEV_TOKEN_TTL: Duration = Duration::from_secs(6 * 3600);
/// How long shutdown waits for sessions to say goodbye.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(2);

/// State shared by every request handler.
pub struct AppState {
    /// Effective configuration.
    pub config: Config,
    /// The room model (and through it the media plane).
    pub rooms: Rooms,
    /// Prometheus metrics.
    pub metrics: Metrics,
    /// Webhook delivery (idle when no URL is configured).
    pub webhooks: Arc<Webhooks>,
    /// Live WHIP and WHEP sessions.
    pub rest_sessions: crate::whip::session::RestSessions,
    sessions: AtomicUsize,
    shutdown: watch::Sender<bool>,
    /// When the drain began, once it has.
    drain: watch::Sender<Option<Instant>>,
}

/// Decrements the live-session count when a session ends.
pub struct SessionGuard(Arc<AppState>);

impl Drop for SessionGuard {
    fn drop(&mut self) {
        self.0.sessions.fetch_sub(1, Relaxed);
    }
}

impl AppState {
    /// Counts a live session until the guard drops.
    pub fn session_guard(self: &Arc<Self>) -> SessionGuard {
        self.sessions.fetch_add(1, Relaxed);
        SessionGuard(self.clone())
    }

    /// Live WebSocket sessions (tasks).
    pub fn sessions(&self) -> usize {
        self.sessions.load(Relaxed)
    }

    /// Changes when the server begins shutting down.
    pub fn shutdown_signal(&self) -> watch::Receiver<bool> {
        self.shutdown.subscribe()
    }

    /// The media plane.
    pub fn media(&self) -> &Arc<MediaServer> {
        self.rooms.media()
    }

    /// Begins draining: readiness answers 503, joins and new rooms are refused
    /// (`server_draining`), existing rooms go on. Returns false if a drain had begun already.
    pub fn begin_drain(&self) -> bool {
        if !self.rooms.drain() {
            return false;
        }
        self.metrics.set_draining(true);
        self.drain.send_replace(Some(Instant::now()));
        let participants = self.rooms.counts().participants;
        info!(
            participants,
            drain_timeout = %humantime::format_duration(self.config.drain_timeout),
            "draining: no new participants; waiting for the rooms to empty"
        );
        true
    }

    /// Resolves once a drain has begun and then every room has emptied or `drain_timeout`
    /// has passed.
    pub async fn drained(&self) {
        let mut drain = self.drain.subscribe();
        let started = drain.wait_for(Option::is_some).await.ok().and_then(|s| *s);
        let Some(started) = started else {
            return; // the state is gone
        };
        let deadline = started + self.config.drain_timeout;
        loop {
            let participants = self.rooms.counts().participants;
            if participants == 0 {
                info!("drained: every room is empty");
                return;
            }
            let now = Instant::now();
            if now >= deadline {
                info!(participants, "drain timed out");
                return;
            }
            tokio::time::sleep(DRAIN_POLL.min(deadline - now)).await;
        }
    }
}

/// A running server.
pub struct ServerHandle {
    /// Where HTTP is served.
    pub http_addr: SocketAddr,
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
        SocketAddr::new(bind_ip(&self.state.config), self.udp_port())
    }

    /// The WebSocket URL.
    pub fn ws_url(&self) -> String {
        format!("ws://{}{WS_PATH}", self.http_addr)
    }

    /// Tells every participant to leave, waits briefly for them, then stops serving.
    pub async fn shutdown(self) {
        let state = self.state.clone();
        state.rooms.kick_all("server_shutdown");
        let _ = state.shutdown.send(true);
        let deadline = Instant::now() + SHUTDOWN_GRACE;
        while state.sessions() > 0 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        state.webhooks.shutdown(webhooks::SHUTDOWN_GRACE).await;
        let _ = tokio::time::timeout(Duration::from_secs(1), self.task).await;
        let media = state.media().clone();
        tokio::task::spawn_blocking(move || media.shutdown())
            .await
            .ok();
    }
}

/// Binds the HTTP and UDP ports and starts serving.
pub async fn start(config: Config) -> anyhow::Result<ServerHandle> {
    let mut bind = config.http_addr;
    let media = MediaServer::start(MediaConfig {
        bind: SocketAddr::new(bind_ip(&config), config.udp_port),
        public_ips: config.public_ips.clone(),
        workers: config.workers,
        ..MediaConfig::default()
    })
    .with_context(|| format!("binding UDP port {}", config.udp_port))?;
    let listener = tokio::net::TcpListener::bind(bind)
        .await
        .with_context(|| format!("binding HTTP address {bind}"))?;
    bind = listener.local_addr()?;
    let (shutdown, stopped) = watch::channel(false);
    let metrics = Metrics::new();
    let webhooks = Webhooks::start(WebhookSettings::from_config(&config)?, metrics.webhooks())?;
    let mut rooms = Rooms::new(
        media,
        RoomConfig {
            max_participants: config.max_participants,
            empty_timeout: config.room_empty_timeout,
        },
    );
    if webhooks.is_enabled() {
        rooms = rooms.with_observer(webhooks.observer());
    }
    let rest_sessions = crate::whip::session::RestSessions::new(config.session_rate_limit);
    let state = Arc::new(AppState {
        rooms,
        config,
        metrics,
        webhooks,
        rest_sessions,
        sessions: AtomicUsize::new(0),
        shutdown,
        drain: watch::channel(None).0,
    });
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
    let task = tokio::spawn(listener::serve(
        listener,
        app,
        limits,
        state.metrics.connections(),
        stopped,
    ));
    Ok(ServerHandle {
        http_addr: bind,
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

/// Serves until drained, then shuts down gracefully. The first SIGINT or SIGTERM begins the
/// drain (as does `POST /api/drain`); a second one returns at once.
pub async fn run(handle: ServerHandle) -> anyhow::Result<Exit> {
    let mut signals = Signals::new()?;
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

/// SIGINT and SIGTERM, as a stream.
struct Signals {
    #[cfg(unix)]
    term: tokio::signal::unix::Signal,
}

impl Signals {
    fn new() -> anyhow::Result<Self> {
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

fn bind_ip(config: &Config) -> std::net::IpAddr {
    match config.http_addr.ip() {
        ip if ip.is_loopback() => ip,
        _ => std::net::Ipv4Addr::UNSPECIFIED.into(),
    }
}

fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route(WS_PATH, get(ws))
        .merge(crate::rest::router())
        .fallback(get(static_file))
        .with_state(state)
}

/// The documented operational routes: health, readiness, metrics, development tokens.
pub(crate) fn ops_routes() -> utoipa_axum::router::OpenApiRouter<Arc<AppState>> {
    use utoipa_axum::routes;
    utoipa_axum::router::OpenApiRouter::new()
        .routes(routes!(healthz))
        .routes(routes!(readyz))
        .routes(routes!(metrics))
        .routes(routes!(dev_token))
}

/// Liveness: the process serves HTTP.
#[utoipa::path(get, path = "/healthz", tag = "operations", operation_id = "healthz",
    responses((status = 200, description = "`ok`", body = String, content_type = "text/plain")))]
async fn healthz() -> &'static str {
    "ok"
}

/// Upgrades to a signaling session; the session keeps the connection's place in the caps.
async fn ws(
    State(state): State<Arc<AppState>>,
    slot: Option<Extension<ConnectionSlot>>,
    upgrade: WebSocketUpgrade,
) -> Response {
    upgrade
        .max_message_size(WS_TRANSPORT_LIMIT)
        .max_frame_size(WS_TRANSPORT_LIMIT)
        .read_buffer_size(WS_READ_BUFFER)
        .write_buffer_size(0)
        .max_write_buffer_size(WS_MAX_WRITE_BUFFER)
        .on_upgrade(move |socket| async move {
            let _slot = slot;
            session::run(socket, state).await
        })
}

/// Query of [`DEV_TOKEN_PATH`].
#[derive(serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
struct DevTokenQuery {
    #[param(
        min_length = 1,
        max_length = 128,
        pattern = r"^(?:[^\x00-\x1F\x7F-\x9F\x20\xA0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000.]|\.[^\x00-\x1F\x7F-\x9F\x20\xA0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000.]|[^\x00-\x1F\x7F-\x9F\x20\xA0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000.][^\x00-\x1F\x7F-\x9F\x20\xA0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000]|[^\x00-\x1F\x7F-\x9F\x20\xA0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000][^\x00-\x1F\x7F-\x9F]+[^\x00-\x1F\x7F-\x9F\x20\xA0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000])$"
    )]
    room: String,
    #[param(
        min_length = 1,
        max_length = 128,
        pattern = r"^(?:[^\x00-\x1F\x7F-\x9F\x20\xA0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000.]|\.[^\x00-\x1F\x7F-\x9F\x20\xA0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000.]|[^\x00-\x1F\x7F-\x9F\x20\xA0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000.][^\x00-\x1F\x7F-\x9F\x20\xA0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000]|[^\x00-\x1F\x7F-\x9F\x20\xA0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000][^\x00-\x1F\x7F-\x9F]+[^\x00-\x1F\x7F-\x9F\x20\xA0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000])$"
    )]
    identity: String,
    #[serde(default)]
    #[param(inline)]
    role: DevRole,
}

#[derive(serde::Deserialize, Default, PartialEq, Eq, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
enum DevRole {
    #[default]
    Publisher,
    Viewer,
}

fn json_error(status: StatusCode, code: &'static str, message: &str) -> Response {
    crate::rest::error::ApiError::new(status, code, message).into_response()
}

/// Mints a token for the demo page; exists only while the embedded development secret is in use.
#[utoipa::path(get, path = "/api/dev/token", tag = "operations", operation_id = "dev_token",
    params(DevTokenQuery),
    responses(
        (status = 200, description = "A token (6 h)", body = crate::rest::model::DevTokenBody),
        (status = 400, description = "Bad query", body = crate::rest::error::ErrorBody),
        (status = 404, description = "An API secret is configured: development tokens are disabled",
            body = crate::rest::error::ErrorBody)))]
async fn dev_token(
    State(state): State<Arc<AppState>>,
    query: Result<axum::extract::Query<DevTokenQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let config = &state.config;
    if !config.is_dev_secret() {
        return json_error(
            StatusCode::NOT_FOUND,
            "not_found",
            "development tokens are disabled when an API secret is configured",
        );
    }
    let Ok(axum::extract::Query(q)) = query else {
        return json_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "query needs room, identity and optionally role=publisher|viewer",
        );
    };
    let names = cascade_signaling::names::validate("room name", &q.room)
        .and_then(|()| cascade_signaling::names::validate("identity", &q.identity));
    if let Err(e) = names {
        return crate::rest::error::ApiError::from(e).into_response();
    }
    let grants = crate::auth::Grants {
        can_publish: q.role == DevRole::Publisher,
        ..crate::auth::Grants::new(q.room.as_str())
    };
    match crate::auth::mint(
        &config.api_key,
        &config.api_secret,
        &q.identity,
        grants,
        DEV_TOKEN_TTL,
        std::time::SystemTime::now(),
    ) {
        Ok(token) => axum::Json(serde_json::json!({ "token": token })).into_response(),
        Err(e) => json_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            &e.to_string(),
        ),
    }
}

/// Readiness: 503 from the moment a drain begins (SIGTERM or `POST /api/drain`).
#[utoipa::path(get, path = "/readyz", tag = "operations", operation_id = "readyz",
    responses(
        (status = 200, description = "`ready`", body = String, content_type = "text/plain"),
        (status = 503, description = "`draining` or `shutting down`", body = String, content_type = "text/plain")))]
async fn readyz(State(state): State<Arc<AppState>>) -> Response {
    if *state.shutdown.borrow() {
        (StatusCode::SERVICE_UNAVAILABLE, "shutting down").into_response()
    } else if state.rooms.is_draining() {
        (StatusCode::SERVICE_UNAVAILABLE, "draining").into_response()
    } else {
        "ready".into_response()
    }
}

/// Prometheus metrics (text exposition format).
#[utoipa::path(get, path = "/metrics", tag = "operations", operation_id = "metrics",
    responses((status = 200, description = "Prometheus text format", body = String, content_type = "text/plain")))]
async fn metrics(State(state): State<Arc<AppState>>) -> Response {
    let c = state.rooms.counts();
    let gauges = RoomGauges {
        rooms: c.rooms,
        participants: c.participants,
        audio_tracks: c.audio_tracks,
        video_tracks: c.video_tracks,
    };
    let body = state.metrics.render(&state.media().stats(), &gauges);
    ([(header::CONTENT_TYPE, crate::metrics::CONTENT_TYPE)], body).into_response()
}

/// The browser pages and scripts of `web-demo/`, compiled into the binary.
#[derive(rust_embed::RustEmbed)]
#[folder = "../web-demo/"]
#[exclude = "tests/*"]
#[exclude = "node_modules/*"]
#[exclude = "package*.json"]
#[exclude = "test-results/*"]
struct Assets;

async fn static_file(uri: Uri) -> Response {
    let path = uri.path().trim_start_matches('/');
    let path = if path.is_empty() { "index.html" } else { path };
    match Assets::get(path) {
        Some(file) => {
            let mime = mime_guess::from_path(path).first_or_octet_stream();
            (
                [(header::CONTENT_TYPE, mime.as_ref().to_owned())],
                file.data.into_owned(),
            )
                .into_response()
        }
        None => (StatusCode::NOT_FOUND, "not found").into_response(),
    }
}
