//! Webhooks: room events POSTed, signed, to configured URLs. Documented in docs/webhooks.md.
//!
//! The room model calls the observer ([`Webhooks::observer`]) with its lock held, so that path
//! only stamps the event (id, time) and `try_send`s it into one bounded queue per URL; a full
//! queue drops the event and counts it. One task per URL takes events in order and POSTs each
//! until a 2xx answer, retrying connection errors, timeouts and other statuses with exponential
//! backoff up to `webhook_max_attempts` attempts. A slow or dead receiver therefore only delays
//! its own queue: never joining, signaling, media, or the other URLs.
//!
//! Each request carries `Content-Type: application/json`, [`TIMESTAMP_HEADER`] (Unix seconds at
//! the time of that attempt) and [`SIGNATURE_HEADER`] `v1=<hex>`, the HMAC-SHA256 under the
//! webhook secret of `<timestamp>.<body>` ([`sign`]; [`verify`] is the receiver's side).
//!
//! The HTTP client is `reqwest` without default features, with `rustls-tls`: rustls on `ring`
//! (already in the dependency tree through the WebRTC stack) and the bundled webpki roots, so
//! neither building nor running needs OpenSSL or a system certificate store. Redirects are not
//! followed (a 3xx is a failed attempt): a receiver that moved must be reconfigured.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use cascade_sfu::ids::new_id;
use cascade_sfu::room::{RoomEvent, RoomObserver};
use hmac::{Hmac, Mac};
use serde::Serialize;
use sha2::Sha256;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tracing::{debug, warn};

use crate::config::{Config, parse_webhook_url};
use crate::metrics::WebhookCounters;

/// Header with the Unix time (seconds) at which the request was signed.
pub const TIMESTAMP_HEADER: &str = "Cascade-Timestamp";
/// Header with the signature: `v1=` and the lowercase hex HMAC-SHA256.
pub const SIGNATURE_HEADER: &str = "Cascade-Signature";
/// Header repeating the event's `id`, for deduplication without parsing the body.
pub const EVENT_ID_HEADER: &str = "Cascade-Event-Id";
/// Events waiting per URL before new ones are dropped.
pub const QUEUE_CAPACITY: usize = 10_000;
/// Wait after the first failed attempt; it doubles after each further one.
pub const BACKOFF_INITIAL: Duration = Duration::from_millis(500);
/// Longest wait between two attempts.
pub const BACKOFF_MAX: Duration = Duration::from_secs(30);
/// How long shutdown lets pending deliveries finish before dropping them.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(1);
/// How much of a receiver's answer is read (the rest is discarded).
const MAX_RESPONSE_BODY: usize = 64 * 1024;

/// What is POSTed: the event's own fields (`event`, `room`, ...) plus an id and a time.
#[derive(Debug, Clone, Serialize)]
pub struct Envelope {
    /// Unique id of the event (`EV_…`), the same in every attempt and for every URL.
    pub id: String,
    /// When the event happened, Unix seconds.
    pub created_at: u64,
    /// The event; serialized flat, with `"event": "<name>"`.
    #[serde(flatten)]
    pub event: RoomEvent,
}

impl Envelope {
    /// Stamps `event` with a new id and the current time.
    pub fn new(event: RoomEvent) -> Self {
        Self {
            id: new_id("EV"),
            created_at: unix_now(),
            event,
        }
    }
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn mac(secret: &[u8], timestamp: u64, body: &[u8]) -> Hmac<Sha256> {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes keys of any length");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    mac
}

/// The [`SIGNATURE_HEADER`] value for `body` sent at `timestamp`: `v1=` followed by the
/// lowercase hex HMAC-SHA256 under `secret` of the decimal timestamp, `.`, and the body bytes.
pub fn sign(secret: &[u8], timestamp: u64, body: &[u8]) -> String {
    let tag = mac(secret, timestamp, body).finalize().into_bytes();
    let mut out = String::with_capacity(3 + 2 * tag.len());
    out.push_str("v1=");
    for b in tag {
        out.push_str(&format!("{b:02x}"));
    }
    out
}

/// Why [`verify`] refused a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    /// The timestamp header is not a decimal number.
    #[error("malformed timestamp")]
    BadTimestamp,
    /// The timestamp is further than the tolerance from now (a replay, or a skewed clock).
    #[error("timestamp outside the tolerance")]
    Stale,
    /// No `v1=` signature matches the body.
    #[error("signature does not match")]
    BadSignature,
}

/// Checks a received webhook as a receiver should: the timestamp is within `tolerance` of
/// `now` (Unix seconds) and one of the comma-separated `v1=` signatures matches (compared in
/// constant time).
pub fn verify(
    secret: &[u8],
    timestamp: &str,
    signature: &str,
    body: &[u8],
    now: u64,
    tolerance: Duration,
) -> Result<(), VerifyError> {
    let ts: u64 = timestamp
        .trim()
        .parse()
        .map_err(|_| VerifyError::BadTimestamp)?;
    if ts.abs_diff(now) > tolerance.as_secs() {
        return Err(VerifyError::Stale);
    }
    let expected = mac(secret, ts, body);
    let matches = signature
        .split(',')
        .filter_map(|s| s.trim().strip_prefix("v1="))
        .filter_map(decode_hex)
        .any(|tag| expected.clone().verify_slice(&tag).is_ok());
    if matches {
        Ok(())
    } else {
        Err(VerifyError::BadSignature)
    }
}

fn decode_hex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) || !s.is_ascii() {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).ok())
        .collect()
}

/// How webhooks are delivered.
#[derive(Clone)]
pub struct WebhookSettings {
    /// Receivers; empty = webhooks off.
    pub urls: Vec<reqwest::Url>,
    /// Signing key.
    pub secret: Vec<u8>,
    /// Timeout of one request.
    pub timeout: Duration,
    /// Attempts per event (at least 1).
    pub max_attempts: u32,
    /// Wait after the first failed attempt; doubles up to [`WebhookSettings::backoff_max`].
    pub backoff_initial: Duration,
    /// Longest wait between attempts.
    pub backoff_max: Duration,
    /// Events waiting per URL before new ones are dropped.
    pub queue_capacity: usize,
}

impl std::fmt::Debug for WebhookSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        debug_struct!(f, "WebhookSettings", self, {
            urls = self.urls.iter().map(|u| u.as_str()).collect::<Vec<_>>(),
            secret = "<redacted>",
            timeout, max_attempts, backoff_initial, backoff_max, queue_capacity,
        })
    }
}

impl WebhookSettings {
    /// The settings of a server configuration.
    pub fn from_config(config: &Config) -> anyhow::Result<Self> {
        Ok(Self {
            urls: config
                .webhook_urls
                .iter()
                .map(|u| parse_webhook_url(u))
                .collect::<anyhow::Result<_>>()?,
            secret: config.webhook_key().as_bytes().to_vec(),
            timeout: config.webhook_timeout,
            max_attempts: config.webhook_max_attempts.max(1),
            backoff_initial: BACKOFF_INITIAL,
            backoff_max: BACKOFF_MAX,
            queue_capacity: QUEUE_CAPACITY,
        })
    }

    /// The wait after failed attempt number `attempt` (1-based).
    pub fn backoff(&self, attempt: u32) -> Duration {
        let factor = 1u32 << attempt.saturating_sub(1).min(20);
        self.backoff_initial
            .saturating_mul(factor)
            .min(self.backoff_max)
    }
}

/// One receiver's queue.
struct Queue {
    url: reqwest::Url,
    tx: mpsc::Sender<Arc<Envelope>>,
    /// Set while events are being dropped, so a full queue logs once per episode.
    dropping: AtomicBool,
}

/// The webhook sender: per-URL queues and their delivery tasks.
pub struct Webhooks {
    queues: Vec<Queue>,
    counters: WebhookCounters,
    closing: watch::Sender<bool>,
    tasks: Mutex<Vec<JoinHandle<()>>>,
}

impl Webhooks {
    /// Starts one delivery task per URL (none when there are no URLs). Needs a tokio runtime.
    pub fn start(
        settings: WebhookSettings,
        counters: WebhookCounters,
    ) -> anyhow::Result<Arc<Self>> {
        let client = reqwest::Client::builder()
            .timeout(settings.timeout)
            .connect_timeout(settings.timeout)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("cascade-webhooks/", env!("CARGO_PKG_VERSION")))
            .build()
            .context("building the webhook HTTP client")?;
        let (closing, _) = watch::channel(false);
        let settings = Arc::new(settings);
        let mut queues = Vec::new();
        let mut tasks = Vec::new();
        for url in &settings.urls {
            let (tx, rx) = mpsc::channel(settings.queue_capacity.max(1));
            let worker = Delivery {
                url: url.clone(),
                client: client.clone(),
                settings: settings.clone(),
                counters: counters.clone(),
                closing: closing.subscribe(),
            };
            tasks.push(tokio::spawn(worker.run(rx)));
            queues.push(Queue {
                url: url.clone(),
                tx,
                dropping: AtomicBool::new(false),
            });
        }
        Ok(Arc::new(Self {
            queues,
            counters,
            closing,
            tasks: Mutex::new(tasks),
        }))
    }

    /// Whether any URL is configured.
    pub fn is_enabled(&self) -> bool {
        !self.queues.is_empty()
    }

    /// Queues `event` for every URL without waiting; counts it as dropped where a queue is full.
    pub fn enqueue(&self, event: RoomEvent) {
        if self.queues.is_empty() {
            return;
        }
        let envelope = Arc::new(Envelope::new(event));
        for q in &self.queues {
            match q.tx.try_send(envelope.clone()) {
                Ok(()) => {
                    if q.dropping.load(Ordering::Relaxed) {
                        q.dropping.store(false, Ordering::Relaxed);
                    }
                }
                Err(mpsc::error::TrySendError::Full(_)) => {
                    self.counters.dropped(1);
                    if !q.dropping.swap(true, Ordering::Relaxed) {
                        warn!(url = %q.url, "webhook queue full: dropping events");
                    }
                }
                // Shut down: pending events are dropped (and counted) there.
                Err(mpsc::error::TrySendError::Closed(_)) => self.counters.dropped(1),
            }
        }
    }

    /// The room observer that feeds [`Webhooks::enqueue`].
    pub fn observer(self: &Arc<Self>) -> RoomObserver {
        let this = self.clone();
        Box::new(move |event| this.enqueue(event))
    }

    /// Stops accepting retries and lets the queued events go out for at most `grace`; whatever
    /// is still pending then is dropped (and counted).
    pub async fn shutdown(&self, grace: Duration) {
        let _ = self.closing.send(true);
        let tasks = std::mem::take(&mut *self.tasks.lock().unwrap_or_else(|e| e.into_inner()));
        let deadline = tokio::time::Instant::now() + grace;
        for mut task in tasks {
            if tokio::time::timeout_at(deadline, &mut task).await.is_err() {
                // Dropping the task's state counts its in-flight and queued events.
                task.abort();
                let _ = task.await;
            }
        }
    }
}

/// The delivery task of one URL.
struct Delivery {
    url: reqwest::Url,
    client: reqwest::Client,
    settings: Arc<WebhookSettings>,
    counters: WebhookCounters,
    closing: watch::Receiver<bool>,
}

/// The outcome of one event at one URL.
enum Outcome {
    Delivered,
    Failed,
    Dropped,
}

/// A delivery task's end of its queue: when the task ends or is aborted, the queue is closed
/// and whatever is still in it is counted as dropped.
struct QueueRx {
    rx: mpsc::Receiver<Arc<Envelope>>,
    counters: WebhookCounters,
}

impl Drop for QueueRx {
    fn drop(&mut self) {
        self.rx.close();
        let mut pending = 0;
        while self.rx.try_recv().is_ok() {
            pending += 1;
        }
        if pending > 0 {
            warn!(pending, "webhook events dropped at shutdown");
            self.counters.dropped(pending);
        }
    }
}

/// Counts the event being delivered as dropped if its delivery is abandoned (task aborted).
struct InFlight(Option<WebhookCounters>);

impl Drop for InFlight {
    fn drop(&mut self) {
        if let Some(counters) = self.0.take() {
            counters.dropped(1);
        }
    }
}

impl Delivery {
    async fn run(mut self, rx: mpsc::Receiver<Arc<Envelope>>) {
        let mut queue = QueueRx {
            rx,
            counters: self.counters.clone(),
        };
        loop {
            let next = if *self.closing.borrow() {
                // Closing: send what is already queued (one attempt each), then stop.
                queue.rx.try_recv().ok()
            } else {
                tokio::select! {
                    next = queue.rx.recv() => next,
                    changed = self.closing.changed() => {
                        if changed.is_err() {
                            break; // the sender is gone
                        }
                        continue;
                    }
                }
            };
            let Some(envelope) = next else { break };
            let mut in_flight = InFlight(Some(self.counters.clone()));
            let outcome = self.deliver(&envelope).await;
            in_flight.0 = None;
            match outcome {
                Outcome::Delivered => self.counters.delivered(),
                Outcome::Failed => self.counters.failed(),
                Outcome::Dropped => self.counters.dropped(1),
            }
        }
    }

    /// Posts one event until it is accepted or its attempts run out (or shutdown begins).
    async fn deliver(&mut self, envelope: &Envelope) -> Outcome {
        let body = match serde_json::to_vec(envelope) {
            Ok(body) => body,
            Err(e) => {
                warn!(id = %envelope.id, "webhook event not serializable: {e}");
                return Outcome::Failed;
            }
        };
        let mut attempt = 1;
        loop {
            let reason = match self.post(envelope, &body).await {
                Ok(()) => return Outcome::Delivered,
                Err(reason) => reason,
            };
            if attempt >= self.settings.max_attempts {
                warn!(url = %self.url, id = %envelope.id, attempt, "webhook given up: {reason}");
                return Outcome::Failed;
            }
            let wait = self.settings.backoff(attempt);
            debug!(url = %self.url, id = %envelope.id, attempt, ?wait, "webhook attempt failed: {reason}");
            if *self.closing.borrow() {
                return Outcome::Dropped;
            }
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = self.closing.changed() => return Outcome::Dropped,
            }
            self.counters.retried();
            attempt += 1;
        }
    }

    /// One attempt: a signed POST that must be answered with a 2xx status.
    async fn post(&self, envelope: &Envelope, body: &[u8]) -> Result<(), String> {
        let timestamp = unix_now();
        let response = self
            .client
            .post(self.url.clone())
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header(TIMESTAMP_HEADER, timestamp.to_string())
            .header(
                SIGNATURE_HEADER,
                sign(&self.settings.secret, timestamp, body),
            )
            .header(EVENT_ID_HEADER, envelope.id.as_str())
            .body(body.to_vec())
            .send()
            .await
            .map_err(|e| format!("{e:#}"))?;
        let status = response.status();
        // Read (a bounded part of) the answer so the connection can be reused.
        let mut response = response;
        let mut read = 0;
        while read < MAX_RESPONSE_BODY {
            match response.chunk().await {
                Ok(Some(chunk)) => read += chunk.len(),
                Ok(None) | Err(_) => break,
            }
        }
        if status.is_success() {
            Ok(())
        } else {
            Err(format!("answered {status}"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cascade_sfu::room::RoomSummary;

    fn room_event(name: &str) -> RoomEvent {
        RoomEvent::RoomStarted {
            room: RoomSummary {
                name: name.into(),
                num_participants: 0,
                num_tracks: 0,
                max_participants: 0,
                empty_timeout_secs: 30,
                created_at: 1,
            },
        }
    }

    #[test]
    fn envelope_is_flat_with_the_event_name() {
        let v = serde_json::to_value(Envelope::new(room_event("r"))).unwrap();
        assert_eq!(v["event"], "room_started");
        assert_eq!(v["room"]["name"], "r");
        assert!(v["id"].as_str().unwrap().starts_with("EV_"));
        assert!(v["created_at"].as_u64().unwrap() > 1_600_000_000);
    }

    #[test]
    fn signature_matches_an_independent_computation() {
        // Computed with Python: hmac.new(b"key", b'1700000000.{"event":"x"}', "sha256").
        assert_eq!(
            sign(b"key", 1_700_000_000, br#"{"event":"x"}"#),
            "v1=47523adf0d7a4582ed29b23c5da82307133f3f300d2d2253ac716853571b2806"
        );
    }

    #[test]
    fn verify_accepts_fresh_signed_bodies_only() {
        let tol = Duration::from_secs(300);
        let sig = sign(b"secret", 1000, b"{}");
        assert_eq!(verify(b"secret", "1000", &sig, b"{}", 1100, tol), Ok(()));
        let both = format!("v1=00, {sig}");
        assert_eq!(verify(b"secret", "1000", &both, b"{}", 1000, tol), Ok(()));
        use VerifyError::{BadSignature, BadTimestamp, Stale};
        let refused = [
            ("secret", "1000", sig.as_str(), "{ }", 1000, BadSignature),
            ("other", "1000", &sig, "{}", 1000, BadSignature),
            ("secret", "1001", &sig, "{}", 1000, BadSignature),
            ("secret", "1000", &sig, "{}", 1400, Stale),
            ("secret", "soon", &sig, "{}", 1000, BadTimestamp),
            ("secret", "1000", "v1=zz", "{}", 1000, BadSignature),
        ];
        for (secret, timestamp, signature, body, now, error) in refused {
            assert_eq!(
                verify(
                    secret.as_bytes(),
                    timestamp,
                    signature,
                    body.as_bytes(),
                    now,
                    tol
                ),
                Err(error),
                "{timestamp} {signature}"
            );
        }
    }

    #[test]
    fn backoff_doubles_and_is_capped() {
        let mut s = WebhookSettings::from_config(&Config::default()).unwrap();
        s.backoff_max = Duration::from_secs(3);
        let waits: Vec<_> = (1..=5).map(|a| s.backoff(a).as_millis()).collect();
        assert_eq!(waits, [500, 1000, 2000, 3000, 3000]);
        assert_eq!(s.backoff(u32::MAX), Duration::from_secs(3));
    }

    /// A TCP listener that accepts connections and never answers.
    async fn black_hole() -> (reqwest::Url, JoinHandle<()>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url =
            parse_webhook_url(&format!("http://{}/hook", listener.local_addr().unwrap())).unwrap();
        let task = tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((sock, _)) = listener.accept().await {
                held.push(sock);
            }
        });
        (url, task)
    }

    #[tokio::test]
    async fn full_queue_drops_and_shutdown_is_bounded() {
        let (url, hole) = black_hole().await;
        let counters = WebhookCounters::unregistered();
        let settings = WebhookSettings {
            urls: vec![url],
            secret: b"k".to_vec(),
            timeout: Duration::from_secs(30),
            max_attempts: 3,
            backoff_initial: BACKOFF_INITIAL,
            backoff_max: BACKOFF_MAX,
            queue_capacity: 2,
        };
        let hooks = Webhooks::start(settings, counters.clone()).unwrap();
        let observer = hooks.observer();
        let started = std::time::Instant::now();
        for i in 0..10 {
            observer(room_event(&format!("r{i}")));
        }
        assert!(
            started.elapsed() < Duration::from_millis(500),
            "enqueue blocked"
        );
        // One event is in flight (hanging), two wait, the other seven were dropped.
        assert!(counters.deliveries("dropped") >= 7, "{counters:?}");
        let started = std::time::Instant::now();
        hooks.shutdown(Duration::from_millis(200)).await;
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "shutdown not bounded"
        );
        // The in-flight and the queued events are counted as dropped too.
        assert_eq!(counters.deliveries("dropped"), 10);
        assert_eq!(counters.deliveries("ok") + counters.deliveries("failed"), 0);
        // After shutdown, events are dropped (counted), never queued.
        observer(room_event("late"));
        assert_eq!(counters.deliveries("dropped"), 11);
        hole.abort();
    }
}
