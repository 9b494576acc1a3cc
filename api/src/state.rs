//! The state every request handler shares ([`AppState`]): configuration, rooms, metrics,
//! webhooks, the WHIP/WHEP resources, the count of live participant tasks, and the server's
//! drain and shutdown signals.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::time::{Duration, Instant};

use cascade_sfu::MediaServer;
use cascade_sfu::room::Rooms;
use tokio::sync::watch;
use tracing::info;

use crate::config::Config;
use crate::metrics::Metrics;
use crate::turn::TurnHandle;
use crate::turn_credentials;
use crate::webhooks::Webhooks;
use crate::whip::resource::WhipResources;
use crate::ws::ResumeTable;

/// How often a drain checks whether the rooms are empty.
const DRAIN_POLL: Duration = Duration::from_millis(100);

/// State shared by every request handler.
pub struct AppState {
    /// Effective configuration.
    pub config: Config,
    /// The room model (and through it the media plane).
    pub rooms: Rooms,
    /// The media plane (the rooms' peer factory).
    media: Arc<MediaServer>,
    /// Prometheus metrics.
    pub metrics: Metrics,
    /// Webhook delivery (idle when no URL is configured).
    pub webhooks: Arc<Webhooks>,
    /// Live WHIP and WHEP session resources.
    pub whip_resources: WhipResources,
    /// The embedded TURN server, when it runs.
    pub turn: Option<TurnHandle>,
    /// The live and parked WebSocket sessions, by resume token.
    pub resume: ResumeTable,
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
    /// The embedded TURN server's URLs for a client that reached the HTTP server at
    /// `request_host` (see [`turn_credentials::turn_host`]); empty when it does not run.
    pub fn embedded_turn_urls(&self, request_host: Option<&str>) -> Vec<String> {
        let Some(turn) = &self.turn else {
            return Vec::new();
        };
        let Some(host) = turn_credentials::turn_host(&self.config, request_host) else {
            return Vec::new();
        };
        let tls = turn.tls_addr.map(|a| a.port());
        turn_credentials::embedded_urls(&host, turn.udp_addr.port(), turn.tcp_addr.port(), tls)
    }

    /// The state of a server that is not draining or shutting down and has no session yet.
    pub fn new(
        config: Config,
        media: Arc<MediaServer>,
        rooms: Rooms,
        metrics: Metrics,
        webhooks: Arc<Webhooks>,
    ) -> Self {
        let whip_resources = WhipResources::new(config.session_rate_limit);
        Self {
            config,
            rooms,
            media,
            metrics,
            webhooks,
            whip_resources,
            turn: None,
            resume: ResumeTable::default(),
            sessions: AtomicUsize::new(0),
            shutdown: watch::channel(false).0,
            drain: watch::channel(None).0,
        }
    }

    /// Counts a live session (a WebSocket, or a WHIP/WHEP resource's task) until the guard
    /// drops.
    pub fn session_guard(self: &Arc<Self>) -> SessionGuard {
        self.sessions.fetch_add(1, Relaxed);
        SessionGuard(self.clone())
    }

    /// Live sessions: WebSocket tasks and WHIP/WHEP resource tasks.
    pub fn sessions(&self) -> usize {
        self.sessions.load(Relaxed)
    }

    /// Changes when the server begins shutting down.
    pub fn shutdown_signal(&self) -> watch::Receiver<bool> {
        self.shutdown.subscribe()
    }

    /// Tells every holder of a [`shutdown_signal`](Self::shutdown_signal) that the server
    /// shuts down.
    pub fn begin_shutdown(&self) {
        self.shutdown.send_replace(true);
    }

    /// Whether the server has begun shutting down.
    pub fn is_shutting_down(&self) -> bool {
        *self.shutdown.borrow()
    }

    /// The media plane.
    pub fn media(&self) -> &Arc<MediaServer> {
        &self.media
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
