//! Rate limit for the log lines a remote party can trigger on the media path.
//!
//! Every datagram a peer sends may make the WebRTC stack (`rtc`, `rtc_*` crates, bridged from
//! `log`) or the media core log a line (an unparsable packet, bad RTCP, a failed handshake
//! step); a flood of junk must not become a flood of log output. [`LogLimiter`] is the
//! sans-I/O rule: at most [`LINES_PER_INTERVAL`] lines per call site per [`INTERVAL`], the rest
//! suppressed and counted; the first line let through afterwards is preceded by one summary
//! (`"log lines suppressed"`, with the count). [`MediaLogLimit`] applies it, as a
//! `tracing_subscriber` layer, to events of the media path ([`is_media_path`]); suppressed
//! lines are counted in [`suppressed_total`] (the `cascade_log_lines_suppressed_total` metric).

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

use tracing::{Event, Subscriber};
use tracing_log::NormalizeEvent;
use tracing_subscriber::layer::{Context, Layer};

/// Lines one call site may log per [`INTERVAL`].
pub const LINES_PER_INTERVAL: u32 = 20;
/// The window of [`LINES_PER_INTERVAL`].
pub const INTERVAL: Duration = Duration::from_secs(10);
/// Target of the summary lines (itself never limited).
const SUMMARY_TARGET: &str = "cascade_sfu::log_limit";

/// Lines suppressed by every [`MediaLogLimit`] of the process.
static SUPPRESSED: AtomicU64 = AtomicU64::new(0);

/// Log lines suppressed so far by the rate limit, process-wide.
pub fn suppressed_total() -> u64 {
    SUPPRESSED.load(Relaxed)
}

/// What to do with one line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Log it; `suppressed` lines of the same site were dropped since the last one logged
    /// (report them first if non-zero).
    Log {
        /// Lines dropped before this one.
        suppressed: u64,
    },
    /// Drop it (counted).
    Suppress,
}

/// One call site's window.
#[derive(Debug, Clone, Copy)]
struct Window {
    start: Instant,
    logged: u32,
    suppressed: u64,
}

/// Per-key fixed-window line limiter. Keys are call sites, so the map is bounded by the code.
#[derive(Debug)]
pub struct LogLimiter<K> {
    per_interval: u32,
    interval: Duration,
    sites: HashMap<K, Window>,
}

impl<K: Hash + Eq> LogLimiter<K> {
    /// Allows `per_interval` lines per key per `interval`.
    pub fn new(per_interval: u32, interval: Duration) -> Self {
        Self {
            per_interval,
            interval,
            sites: HashMap::new(),
        }
    }

    /// Decides about one line of `key` at `now`.
    pub fn check(&mut self, key: K, now: Instant) -> Verdict {
        let w = self.sites.entry(key).or_insert(Window {
            start: now,
            logged: 0,
            suppressed: 0,
        });
        if now.saturating_duration_since(w.start) >= self.interval {
            w.start = now;
            w.logged = 0;
        }
        if w.logged < self.per_interval {
            w.logged += 1;
            Verdict::Log {
                suppressed: std::mem::take(&mut w.suppressed),
            }
        } else {
            w.suppressed += 1;
            Verdict::Suppress
        }
    }
}

/// Whether events of `target` belong to the media path a remote party drives: the WebRTC
/// stack and the media core (the room model and the limiter's own summaries excepted).
pub fn is_media_path(target: &str) -> bool {
    let sfu = target.starts_with("cascade_sfu")
        && !target.starts_with("cascade_sfu::room")
        && target != SUMMARY_TARGET;
    sfu || target == "rtc" || target.starts_with("rtc::") || target.starts_with("rtc_")
}

/// A `tracing_subscriber` layer that applies [`LogLimiter`] ([`LINES_PER_INTERVAL`] per
/// [`INTERVAL`]) to every media-path event, `log` records included; add it to the subscriber
/// (`subscriber.with(MediaLogLimit::default())`).
#[derive(Debug)]
pub struct MediaLogLimit {
    limiter: Mutex<LogLimiter<u64>>,
}

impl Default for MediaLogLimit {
    fn default() -> Self {
        Self {
            limiter: Mutex::new(LogLimiter::new(LINES_PER_INTERVAL, INTERVAL)),
        }
    }
}

impl<S: Subscriber> Layer<S> for MediaLogLimit {
    fn event_enabled(&self, event: &Event<'_>, _ctx: Context<'_, S>) -> bool {
        let normalized = event.normalized_metadata();
        let meta = normalized.as_ref().unwrap_or_else(|| event.metadata());
        let target = meta.target();
        if !is_media_path(target) {
            return true;
        }
        let mut site = std::collections::hash_map::DefaultHasher::new();
        (target, meta.file(), meta.line(), meta.level().as_str()).hash(&mut site);
        let verdict = self
            .limiter
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .check(site.finish(), Instant::now());
        match verdict {
            Verdict::Log { suppressed: 0 } => true,
            Verdict::Log { suppressed } => {
                tracing::warn!(
                    target: SUMMARY_TARGET,
                    suppressed,
                    site = target,
                    line = meta.line(),
                    "log lines suppressed by the rate limit"
                );
                true
            }
            Verdict::Suppress => {
                SUPPRESSED.fetch_add(1, Relaxed);
                false
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_each_site_per_interval_and_reports_the_suppressed() {
        let t0 = Instant::now();
        let mut l = LogLimiter::new(3, Duration::from_secs(10));
        for _ in 0..3 {
            assert_eq!(l.check("a", t0), Verdict::Log { suppressed: 0 });
        }
        for _ in 0..1000 {
            assert_eq!(l.check("a", t0), Verdict::Suppress);
        }
        assert_eq!(
            l.check("b", t0),
            Verdict::Log { suppressed: 0 },
            "sites are independent"
        );
        let t1 = t0 + Duration::from_secs(9);
        assert_eq!(l.check("a", t1), Verdict::Suppress, "same window");
        let t2 = t0 + Duration::from_secs(10);
        assert_eq!(l.check("a", t2), Verdict::Log { suppressed: 1001 });
        assert_eq!(l.check("a", t2), Verdict::Log { suppressed: 0 });
    }

    #[test]
    fn media_path_targets() {
        for t in [
            "rtc",
            "rtc::peer_connection::handler::endpoint",
            "rtc_ice::agent",
            "rtc_dtls::conn",
            "cascade_sfu::net::tcp",
            "cascade_sfu::worker",
        ] {
            assert!(is_media_path(t), "{t}");
        }
        for t in [
            "cascade_sfu::room",
            "cascade_sfu::room::admin",
            SUMMARY_TARGET,
            "cascade_api::session",
            "rtcp_other_crate_name_is_not_rtc",
            "hyper",
        ] {
            assert!(!is_media_path(t), "{t}");
        }
    }
}
