//! Prometheus metrics for `/metrics`, on a registry of their own.
//!
//! Signaling counters are incremented as messages flow; room gauges and the media counters
//! (mirrored from [`StatsSnapshot`]) are brought up to date at scrape time by [`Metrics::render`].

use std::sync::Mutex;

use crate::listener::Refusal;
use cascade_sfu::stats::StatsSnapshot;
use prometheus::{IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry, TextEncoder};

/// `Content-Type` of [`Metrics::render`]'s output.
pub const CONTENT_TYPE: &str = prometheus::TEXT_FORMAT;

/// Room-level counts at scrape time.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct RoomGauges {
    /// Open rooms.
    pub rooms: u64,
    /// Participants in all rooms.
    pub participants: u64,
    /// Published audio tracks.
    pub audio_tracks: u64,
    /// Published video tracks.
    pub video_tracks: u64,
}

/// The webhook counters (see [`crate::webhooks`]); clones count into the same series.
#[derive(Debug, Clone)]
pub struct WebhookCounters {
    deliveries: IntCounterVec,
    retries: IntCounter,
}

impl WebhookCounters {
    /// Counters on no registry, for webhook senders outside a server (tests).
    pub fn unregistered() -> Self {
        Self {
            deliveries: IntCounterVec::new(Opts::new("deliveries", "-"), &["result"])
                .expect("valid metric"),
            retries: IntCounter::new("retries", "-").expect("valid metric"),
        }
    }

    /// Counts one event delivered with a 2xx answer.
    pub fn delivered(&self) {
        self.deliveries.with_label_values(&["ok"]).inc();
    }

    /// Counts one event given up after its last attempt.
    pub fn failed(&self) {
        self.deliveries.with_label_values(&["failed"]).inc();
    }

    /// Counts `n` events dropped without (complete) delivery.
    pub fn dropped(&self, n: u64) {
        self.deliveries.with_label_values(&["dropped"]).inc_by(n);
    }

    /// Counts one repeated request.
    pub fn retried(&self) {
        self.retries.inc();
    }

    /// The count of one `result` (`ok`, `failed` or `dropped`).
    pub fn deliveries(&self, result: &str) -> u64 {
        self.deliveries.with_label_values(&[result]).get()
    }

    /// The count of repeated requests.
    pub fn retries(&self) -> u64 {
        self.retries.get()
    }
}

/// The accept loop's metrics (see [`crate::listener`]); clones count into the same series.
#[derive(Debug, Clone)]
pub struct ConnectionCounters {
    open: IntGauge,
    refused: IntCounterVec,
    timeouts: IntCounterVec,
}

impl ConnectionCounters {
    /// Counts one accepted connection as open.
    pub fn opened(&self) {
        self.open.inc();
    }

    /// Counts one connection (and any WebSocket it carried) as closed.
    pub fn closed(&self) {
        self.open.dec();
    }

    /// Counts one connection refused at accept.
    pub fn refused(&self, reason: Refusal) {
        self.refused.with_label_values(&[reason.label()]).inc();
    }

    /// Counts one request cut off in `phase` (`header` or `body`).
    pub fn timed_out(&self, phase: &str) {
        self.timeouts.with_label_values(&[phase]).inc();
    }

    /// Open connections now.
    pub fn open(&self) -> i64 {
        self.open.get()
    }
}
/// The `reason` labels of `cascade_turn_refused_total`.
pub const TURN_REFUSALS: [&str; 6] = [
    "malformed_username",
    "expired",
    "forged",
    "user_table_full",
    "forbidden_peer",
    "capacity",
];

/// The embedded TURN server's metrics (see [`crate::turn`]); clones count into the same series.
#[derive(Debug, Clone)]
pub struct TurnCounters {
    allocations: IntGauge,
    refused: IntCounterVec,
}

impl TurnCounters {
    /// Counters on no registry, for a TURN server outside a Cascade server (tests).
    pub fn unregistered() -> Self {
        Self {
            allocations: IntGauge::new("allocations", "-").expect("valid metric"),
            refused: IntCounterVec::new(Opts::new("refused", "-"), &["reason"])
                .expect("valid metric"),
        }
    }

    /// Counts one allocation as live.
    pub fn allocated(&self) {
        self.allocations.inc();
    }

    /// Counts one allocation as ended.
    pub fn deallocated(&self) {
        self.allocations.dec();
    }

    /// Counts one refusal; `reason` is one of [`TURN_REFUSALS`].
    pub fn refused(&self, reason: &str) {
        self.refused.with_label_values(&[reason]).inc();
    }

    /// Refusals so far for `reason`.
    pub fn refusals(&self, reason: &str) -> u64 {
        self.refused.with_label_values(&[reason]).get()
    }
}

/// The `limit` labels of `cascade_session_limits_total`.
pub const SESSION_LIMITS: [&str; 4] = [
    "slow_reader",
    "join_timeout",
    "too_many_candidates",
    "rate_limited",
];

/// The server's metrics.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    signaling_messages: IntCounterVec,
    rooms: IntGauge,
    participants: IntGauge,
    tracks: IntGaugeVec,
    rtp_packets: IntCounterVec,
    rtp_bytes: IntCounterVec,
    nacks: IntCounterVec,
    keyframe_requests: IntCounterVec,
    retransmissions: IntCounter,
    peer_connection_failures: IntCounter,
    webhooks: WebhookCounters,
    connections: ConnectionCounters,
    draining: IntGauge,
    session_limits: IntCounterVec,
    turn: TurnCounters,
    /// Media-port hardening: datagrams, forwarded packets and log lines dropped.
    media_drops: MediaDropCounters,
    /// Serializes scrapes so two cannot both add the same snapshot delta.
    mirror: Mutex<()>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Creates every metric on a fresh registry.
    pub fn new() -> Self {
        let registry = Registry::new();
        fn register<C: prometheus::core::Collector + Clone + 'static>(r: &Registry, c: C) -> C {
            r.register(Box::new(c.clone()))
                .expect("metric names and labels are fixed and unique");
            c
        }
        let counter_vec = |name: &str, help: &str, labels: &[&str]| {
            let c = IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric");
            register(&registry, c)
        };
        let counter = |name: &str, help: &str| {
            register(
                &registry,
                IntCounter::new(name, help).expect("valid metric"),
            )
        };
        let gauge = |name: &str, help: &str| {
            register(&registry, IntGauge::new(name, help).expect("valid metric"))
        };
        let metrics = Self {
            signaling_messages: counter_vec(
                "cascade_signaling_messages_total",
                "Signaling messages, by direction (in/out) and message type.",
                &["direction", "type"],
            ),
            rooms: gauge("cascade_rooms", "Open rooms."),
            participants: gauge("cascade_participants", "Participants in all rooms."),
            tracks: register(
                &registry,
                IntGaugeVec::new(
                    Opts::new("cascade_tracks", "Published tracks, by kind."),
                    &["kind"],
                )
                .expect("valid metric"),
            ),
            rtp_packets: counter_vec(
                "cascade_rtp_packets_total",
                "RTP packets received from publishers (in) and sent to subscribers (out).",
                &["direction"],
            ),
            rtp_bytes: counter_vec(
                "cascade_rtp_bytes_total",
                "RTP bytes received from publishers (in) and sent to subscribers (out).",
                &["direction"],
            ),
            nacks: counter_vec(
                "cascade_nacks_total",
                "NACKs received from subscribers and sent to publishers.",
                &["direction"],
            ),
            keyframe_requests: counter_vec(
                "cascade_keyframe_requests_total",
                "PLIs and FIRs received from subscribers; keyframe requests sent to publishers.",
                &["type"],
            ),
            retransmissions: counter(
                "cascade_retransmissions_total",
                "Packets retransmitted to subscribers from the packet cache.",
            ),
            peer_connection_failures: counter(
                "cascade_peer_connection_failures_total",
                "Peer connections that failed (ICE or DTLS failure, timeout).",
            ),
            webhooks: WebhookCounters {
                deliveries: counter_vec(
                    "cascade_webhook_deliveries_total",
                    "Webhook events by outcome, per receiving URL: ok (a 2xx answer), failed \
                     (every attempt failed), dropped (queue full, or pending at shutdown).",
                    &["result"],
                ),
                retries: counter(
                    "cascade_webhook_retries_total",
                    "Webhook requests repeated after a failed attempt.",
                ),
            },
            connections: ConnectionCounters {
                open: gauge(
                    "cascade_http_connections",
                    "Open HTTP connections, including those upgraded to WebSockets.",
                ),
                refused: counter_vec(
                    "cascade_http_connections_refused_total",
                    "Connections refused at accept, by reason: max_connections or \
                     max_connections_per_ip.",
                    &["reason"],
                ),
                timeouts: counter_vec(
                    "cascade_http_timeouts_total",
                    "Requests cut off because their headers (header) or body (body) did not \
                     arrive in time.",
                    &["phase"],
                ),
            },
            draining: gauge(
                "cascade_draining",
                "1 while the server drains (refuses new joins, waits for rooms to empty).",
            ),
            session_limits: counter_vec(
                "cascade_session_limits_total",
                "Session limits enforced: slow_reader and join_timeout (WebSocket sessions \
                 closed), too_many_candidates (candidates refused), rate_limited (WebSocket \
                 messages dropped by message_rate_limit or data_rate_limit).",
                &["limit"],
            ),
            turn: TurnCounters {
                allocations: gauge(
                    "cascade_turn_allocations",
                    "Live allocations of the embedded TURN server.",
                ),
                refused: counter_vec(
                    "cascade_turn_refused_total",
                    "Requests and relayed datagrams the embedded TURN server refused, by \
                     reason: malformed_username, expired (credential), forged (signed \
                     with a wrong credential, for a username not yet known), user_table_full, \
                     forbidden_peer (not a Cascade media address), capacity (allocation caps).",
                    &["reason"],
                ),
            },
            media_drops: MediaDropCounters {
                datagrams: counter_vec(
                    "cascade_media_dropped_datagrams_total",
                    "Datagrams dropped on the media port: unknown_source (from an address no \
                     peer has bound with a verified STUN binding request), queue_full (the \
                     worker's data queue was full), tcp_queue_full (an ICE-TCP frame: its \
                     connection's write queue was full), tcp_connection_limit (an ICE-TCP \
                     connection closed at once: too many open).",
                    &["reason"],
                ),
                forwards: counter(
                    "cascade_media_dropped_forwards_total",
                    "RTP packets not forwarded to another worker's subscribers: its data queue \
                     was full.",
                ),
                log_lines: counter(
                    "cascade_log_lines_suppressed_total",
                    "Media-path log lines suppressed by the per-call-site rate limit.",
                ),
            },
            mirror: Mutex::new(()),
            registry,
        };
        // Mirrored children exist from the start so every series is exported, even at 0.
        metrics.mirror_snapshot(&StatsSnapshot::default());
        metrics.set_gauges(&RoomGauges::default());
        for result in ["ok", "failed", "dropped"] {
            metrics.webhooks.deliveries.with_label_values(&[result]);
        }
        for reason in [Refusal::Global, Refusal::PerIp] {
            metrics
                .connections
                .refused
                .with_label_values(&[reason.label()]);
        }
        for phase in ["header", "body"] {
            metrics.connections.timeouts.with_label_values(&[phase]);
        }
        for limit in SESSION_LIMITS {
            metrics.session_limits.with_label_values(&[limit]);
        }
        for reason in TURN_REFUSALS {
            metrics.turn.refused.with_label_values(&[reason]);
        }
        metrics
    }

    /// The embedded TURN server's metrics (they share this registry).
    pub fn turn(&self) -> TurnCounters {
        self.turn.clone()
    }

    /// The connection metrics, for the accept loop (they share this registry).
    pub fn connections(&self) -> ConnectionCounters {
        self.connections.clone()
    }

    /// Sets `cascade_draining`.
    pub fn set_draining(&self, draining: bool) {
        self.draining.set(i64::from(draining));
    }

    /// The webhook counters, for the delivery tasks (they share this registry).
    pub fn webhooks(&self) -> WebhookCounters {
        self.webhooks.clone()
    }

    /// Counts one signaling message; `direction` is `"in"` or `"out"`, `ty` the message `type`
    /// (keep it to the protocol's fixed set: each value is a time series).
    pub fn signaling_message(&self, direction: &str, ty: &str) {
        self.signaling_messages
            .with_label_values(&[direction, ty])
            .inc();
    }

    /// Counts one enforcement of a session limit (one of [`SESSION_LIMITS`]).
    pub fn session_limit(&self, limit: &str) {
        self.session_limits.with_label_values(&[limit]).inc();
    }

    /// Updates the gauges and mirrored media counters from the inputs, then renders every
    /// metric in the Prometheus text exposition format.
    pub fn render(&self, media: &StatsSnapshot, gauges: &RoomGauges) -> String {
        {
            let _guard = self.mirror.lock().unwrap_or_else(|e| e.into_inner());
            self.mirror_snapshot(media);
        }
        self.set_gauges(gauges);
        TextEncoder::new()
            .encode_to_string(&self.registry.gather())
            .unwrap_or_else(|e| {
                tracing::error!("encoding metrics: {e}");
                String::new()
            })
    }

    fn set_gauges(&self, g: &RoomGauges) {
        let set = |gauge: &IntGauge, v: u64| gauge.set(i64::try_from(v).unwrap_or(i64::MAX));
        set(&self.rooms, g.rooms);
        set(&self.participants, g.participants);
        set(&self.tracks.with_label_values(&["audio"]), g.audio_tracks);
        set(&self.tracks.with_label_values(&["video"]), g.video_tracks);
    }

    /// Raises each mirrored counter to its snapshot value (counters never go down).
    fn mirror_snapshot(&self, s: &StatsSnapshot) {
        let mirror = |c: &IntCounter, v: u64| c.inc_by(v.saturating_sub(c.get()));
        let vec =
            |c: &IntCounterVec, label: &str, v: u64| mirror(&c.with_label_values(&[label]), v);
        vec(&self.rtp_packets, "in", s.rtp_packets_in);
        vec(&self.rtp_packets, "out", s.rtp_packets_out);
        vec(&self.rtp_bytes, "in", s.rtp_bytes_in);
        vec(&self.rtp_bytes, "out", s.rtp_bytes_out);
        vec(&self.nacks, "received", s.nacks_received);
        vec(&self.nacks, "sent", s.nacks_sent);
        vec(&self.keyframe_requests, "pli_received", s.plis_received);
        vec(&self.keyframe_requests, "fir_received", s.firs_received);
        vec(&self.keyframe_requests, "sent", s.keyframe_requests_sent);
        mirror(&self.retransmissions, s.retransmissions);
        mirror(&self.peer_connection_failures, s.peer_connection_failures);
        self.media_drops.mirror(s);
    }
}

/// Drop counters of the media port (see [`MediaDropCounters::mirror`]).
#[derive(Debug)]
struct MediaDropCounters {
    datagrams: IntCounterVec,
    forwards: IntCounter,
    log_lines: IntCounter,
}

impl MediaDropCounters {
    /// Raises each counter to its snapshot value.
    fn mirror(&self, s: &StatsSnapshot) {
        let mirror = |c: &IntCounter, v: u64| c.inc_by(v.saturating_sub(c.get()));
        let datagrams = |reason: &str| self.datagrams.with_label_values(&[reason]);
        mirror(&datagrams("unknown_source"), s.datagrams_unknown_source);
        mirror(&datagrams("queue_full"), s.datagrams_queue_full);
        mirror(&datagrams("tcp_queue_full"), s.tcp_frames_dropped);
        mirror(
            &datagrams("tcp_connection_limit"),
            s.tcp_connections_refused,
        );
        mirror(&self.forwards, s.forwards_queue_full);
        mirror(&self.log_lines, s.log_lines_suppressed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn render_exports_every_metric() {
        let metrics = Metrics::new();
        metrics.signaling_message("in", "join");
        metrics.signaling_message("out", "joined");
        let out = metrics.render(&StatsSnapshot::default(), &RoomGauges::default());
        for name in [
            "cascade_signaling_messages_total",
            "cascade_rooms",
            "cascade_participants",
            "cascade_tracks",
            "cascade_rtp_packets_total",
            "cascade_rtp_bytes_total",
            "cascade_nacks_total",
            "cascade_keyframe_requests_total",
            "cascade_retransmissions_total",
            "cascade_peer_connection_failures_total",
            "cascade_webhook_deliveries_total",
            "cascade_webhook_retries_total",
            "cascade_http_connections",
            "cascade_http_connections_refused_total",
            "cascade_http_timeouts_total",
            "cascade_draining",
            "cascade_session_limits_total",
            "cascade_media_dropped_datagrams_total",
            "cascade_media_dropped_forwards_total",
            "cascade_log_lines_suppressed_total",
            "cascade_turn_allocations",
            "cascade_turn_refused_total",
        ] {
            assert!(
                out.contains(&format!("# TYPE {name} ")),
                "{name} missing in:\n{out}"
            );
        }
        assert!(out.contains(r#"cascade_signaling_messages_total{direction="in",type="join"} 1"#));
        for result in ["ok", "failed", "dropped"] {
            let line = format!(r#"cascade_webhook_deliveries_total{{result="{result}"}} 0"#);
            assert!(out.lines().any(|l| l == line), "{line} missing in:\n{out}");
        }
        for reason in TURN_REFUSALS {
            let line = format!(r#"cascade_turn_refused_total{{reason="{reason}"}} 0"#);
            assert!(out.lines().any(|l| l == line), "{line} missing in:\n{out}");
        }
        metrics.webhooks().retried();
        let out = metrics.render(&StatsSnapshot::default(), &RoomGauges::default());
        assert!(out.lines().any(|l| l == "cascade_webhook_retries_total 1"));
    }

    #[test]
    fn render_mirrors_inputs() {
        let metrics = Metrics::new();
        let mut media = StatsSnapshot {
            rtp_packets_in: 10,
            plis_received: 2,
            retransmissions: 4,
            ..Default::default()
        };
        let gauges = RoomGauges {
            rooms: 1,
            participants: 3,
            audio_tracks: 2,
            video_tracks: 1,
        };
        metrics.render(&media, &gauges);
        media.rtp_packets_in = 25;
        let out = metrics.render(&media, &gauges);
        for line in [
            r#"cascade_rtp_packets_total{direction="in"} 25"#,
            r#"cascade_rtp_packets_total{direction="out"} 0"#,
            r#"cascade_keyframe_requests_total{type="pli_received"} 2"#,
            "cascade_retransmissions_total 4",
            "cascade_rooms 1",
            "cascade_participants 3",
            r#"cascade_tracks{kind="audio"} 2"#,
            r#"cascade_tracks{kind="video"} 1"#,
            r#"cascade_media_dropped_datagrams_total{reason="queue_full"} 0"#,
        ] {
            assert!(
                out.lines().any(|l| l == line),
                "{line:?} missing in:\n{out}"
            );
        }
    }
}
