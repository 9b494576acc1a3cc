//! The results: a serializable report and its human-readable table.

use std::fmt::Write as _;

use serde::Serialize;

use crate::scenario::Scenario;
use crate::stats::percentile;

/// Summary of a set of durations, ms.
#[derive(Debug, Default, Clone, Copy, Serialize)]
pub struct Dist {
    /// Median.
    pub p50: f64,
    /// 95th percentile.
    pub p95: f64,
    /// 99th percentile.
    pub p99: f64,
    /// Largest.
    pub max: f64,
}

impl Dist {
    /// The distribution of `us` (microseconds, any order), in ms.
    pub fn from_us(mut us: Vec<u32>) -> Self {
        us.sort_unstable();
        let ms = |p| f64::from(percentile(&us, p)) / 1000.0;
        Self {
            p50: ms(50.0),
            p95: ms(95.0),
            p99: ms(99.0),
            max: ms(100.0),
        }
    }
}

/// What the server cost during the window (from /proc, with `--server-pid`).
#[derive(Debug, Clone, Serialize)]
pub struct ServerCost {
    /// CPU used, % of one core.
    pub cpu_pct: f64,
    /// Server CPU time per packet received by the subscribers, us.
    pub cpu_us_per_forwarded_packet: f64,
    /// Server CPU time per packet sent according to its `/metrics`, us.
    pub cpu_us_per_metrics_packet: Option<f64>,
    /// RSS before the receivers joined, MiB.
    pub rss_before_mib: f64,
    /// RSS at the end of the window, MiB.
    pub rss_after_mib: f64,
    /// RSS growth per receiving participant, KiB.
    pub rss_per_subscriber_kib: f64,
}

/// The outcome of one run.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// The load.
    pub scenario: Scenario,
    /// Receiving participants that joined.
    pub receivers: usize,
    /// Participants that failed to join or connect.
    pub failed_joins: usize,
    /// Receivers that got every stream before the window.
    pub receivers_complete: usize,
    /// From WebSocket connect to `joined` (WHEP: from the POST to the connected peer
    /// connection), ms.
    pub join_ms: Dist,
    /// From WebSocket connect (WHEP: the POST) to the first media packet, ms.
    pub first_packet_ms: Dist,
    /// Length of the window, s.
    pub window_s: f64,
    /// Packets the publishers sent per second.
    pub sent_pps: f64,
    /// Packets the receivers got in the window (the forwarded packets).
    pub forwarded_packets: u64,
    /// Forwarded packets per second.
    pub forwarded_pps: f64,
    /// Forwarded packets per second according to the server's `/metrics`.
    pub metrics_forwarded_pps: Option<f64>,
    /// Forwarded packets per second if every sent packet reached every receiver of its stream.
    pub expected_pps: f64,
    /// Forwarded packets received in the window, % of `expected_pps`: below 100 without loss
    /// means packets are queued somewhere (server or load tester falling behind).
    pub delivered_pct: f64,
    /// Packets lost in the window (gaps in the stamps' sequence numbers), % of those expected.
    pub loss_pct: f64,
    /// Mean interarrival jitter over all received streams, ms.
    pub jitter_ms: f64,
    /// One-way latency publisher -> subscriber (webrtc-rs send + server + webrtc-rs receive), ms.
    pub latency_ms: Dist,
    /// Server cost, with `--server-pid`.
    pub server: Option<ServerCost>,
    /// CPU used by this load tester, % of one core (it shares the machine with the server).
    pub load_tester_cpu_pct: f64,
}

impl Report {
    /// The human-readable table.
    pub fn table(&self) -> String {
        let s = &self.scenario;
        let mut t = String::new();
        let preset = s
            .preset
            .and_then(|p| serde_json::to_value(p).ok())
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_else(|| "custom".to_owned());
        let mut row = |k: &str, v: String| {
            let _ = writeln!(t, "  {k:<34} {v}");
        };
        row(
            "scenario",
            format!(
                "{preset}: {} room(s) x ({} publishers{} + {} subscribers), audio {}, video {} kbit/s @ {} fps",
                s.rooms,
                s.publishers,
                if s.publishers_receive {
                    " receiving"
                } else {
                    ""
                },
                s.subscribers,
                if s.audio { "on" } else { "off" },
                s.video_kbps,
                s.fps
            ),
        );
        row(
            "receivers (complete / failed)",
            format!(
                "{} ({} / {})",
                self.receivers, self.receivers_complete, self.failed_joins
            ),
        );
        let d = |d: &Dist| {
            format!(
                "p50 {:.1}  p95 {:.1}  p99 {:.1}  max {:.1}",
                d.p50, d.p95, d.p99, d.max
            )
        };
        row("join, ms", d(&self.join_ms));
        row("first packet, ms", d(&self.first_packet_ms));
        row("window, s", format!("{:.1}", self.window_s));
        row("sent, packets/s", format!("{:.0}", self.sent_pps));
        row(
            "forwarded (received), packets/s",
            format!(
                "{:.0} ({} packets{})",
                self.forwarded_pps,
                self.forwarded_packets,
                self.metrics_forwarded_pps
                    .map(|m| format!("; /metrics: {m:.0}/s"))
                    .unwrap_or_default()
            ),
        );
        row(
            "delivered, % of sent x fan-out",
            format!(
                "{:.1} (expected {:.0}/s)",
                self.delivered_pct, self.expected_pps
            ),
        );
        row("loss, %", format!("{:.3}", self.loss_pct));
        row("jitter, ms", format!("{:.2}", self.jitter_ms));
        row("one-way latency, ms", d(&self.latency_ms));
        match &self.server {
            Some(c) => {
                row("server CPU, % of a core", format!("{:.1}", c.cpu_pct));
                row(
                    "server CPU per forwarded packet, us",
                    format!(
                        "{:.2}{}",
                        c.cpu_us_per_forwarded_packet,
                        c.cpu_us_per_metrics_packet
                            .map(|m| format!(" (per /metrics packet: {m:.2})"))
                            .unwrap_or_default()
                    ),
                );
                row(
                    "server RSS, MiB",
                    format!("{:.1} -> {:.1}", c.rss_before_mib, c.rss_after_mib),
                );
                row(
                    "server RSS per subscriber, KiB",
                    format!("{:.0}", c.rss_per_subscriber_kib),
                );
            }
            None => row("server cost", "(give --server-pid)".to_owned()),
        }
        row(
            "load tester CPU, % of a core",
            format!("{:.1}", self.load_tester_cpu_pct),
        );
        t
    }
}
