//! The churn soak (`--soak SECONDS`): a steady population of participants that keep joining,
//! publishing or subscribing, and leaving over WebSocket and WHIP/WHEP, with the server's
//! resources compared between two idle points: after the warm-up and at the end.

use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow};
use serde::Serialize;
use tokio::task::JoinSet;

use crate::client::Participant;
use crate::cpu;
use crate::http;
use cascade_testkit::random_u32;

use crate::media::Media;
use crate::scenario::{Args, Scenario};
use crate::stats::{Collector, Receiver};
use crate::token::Minter;

/// Timeout of each join, publish and connection step.
const STEP_TIMEOUT: Duration = Duration::from_secs(20);
/// How long the server may take to close every room once all have left (its default
/// `room_empty_timeout` is 30 s).
const DRAIN_TIMEOUT: Duration = Duration::from_secs(90);
/// Settling time after the rooms are gone, before an idle sample (closing sockets, peers
/// dropped by their workers). Slower stragglers get up to [`RETURN_TIMEOUT`] at the end.
const SETTLE: Duration = Duration::from_secs(2);
/// How long the end sample may take to return to the baseline (idle tokio blocking threads
/// exit after 10 s).
const RETURN_TIMEOUT: Duration = Duration::from_secs(30);
/// Errors kept for the report.
const MAX_ERRORS: usize = 10;

/// The server's resources at one instant.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct State {
    /// Seconds since the soak started.
    pub at_s: f64,
    /// Resident set size, KiB.
    pub rss_kib: u64,
    /// Open file descriptors.
    pub fds: u64,
    /// Threads.
    pub threads: u64,
    /// `cascade_rooms`.
    pub rooms: u64,
    /// `cascade_participants`.
    pub participants: u64,
    /// `cascade_tracks`, all kinds.
    pub tracks: u64,
}

/// The outcome of a soak.
#[derive(Debug, Serialize)]
pub struct SoakReport {
    /// Churn time in seconds, warm-up included.
    pub seconds: u64,
    /// Warm-up seconds.
    pub warmup_s: u64,
    /// Participants present at once.
    pub population: usize,
    /// Join-stay-leave cycles completed.
    pub cycles: u64,
    /// Cycles that failed (join, publish, connect or leave).
    pub failed_cycles: u64,
    /// The first errors.
    pub errors: Vec<String>,
    /// The fresh server, before any load.
    pub fresh: State,
    /// Idle after the warm-up: the baseline.
    pub baseline: State,
    /// Highest of each value sampled under load.
    pub peak_under_load: State,
    /// Idle at the end.
    pub end: State,
    /// Allowed RSS growth from the baseline to the end, percent.
    pub max_rss_growth_pct: f64,
    /// What did not return to the baseline (empty: passed).
    pub problems: Vec<String>,
}

/// Samples the server: /proc/<pid> and /metrics.
async fn sample(pid: u32, addr: &str, started: Instant) -> Result<State> {
    let proc = cpu::sample(&pid.to_string())?;
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .with_context(|| format!("reading /proc/{pid}/fd"))?
        .count() as u64;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let threads = status
        .lines()
        .find_map(|l| l.strip_prefix("Threads:"))
        .and_then(|v| v.trim().parse().ok())
        .ok_or_else(|| anyhow!("no Threads in /proc/{pid}/status"))?;
    let response = tokio::time::timeout(
        Duration::from_secs(5),
        http::request(addr, "GET", "/metrics", &[], ""),
    )
    .await
    .context("timed out reading /metrics")??;
    anyhow::ensure!(response.status == 200, "GET /metrics: {}", response.status);
    let (rooms, participants, tracks) = gauges(&response.body);
    Ok(State {
        at_s: started.elapsed().as_secs_f64(),
        rss_kib: proc.rss_kib,
        fds,
        threads,
        rooms,
        participants,
        tracks,
    })
}

/// Rooms, participants and tracks (summed over kinds) of a `/metrics` body.
fn gauges(metrics: &str) -> (u64, u64, u64) {
    let (mut rooms, mut participants, mut tracks) = (0, 0, 0);
    for line in metrics.lines() {
        let Some((name, value)) = line.rsplit_once(' ') else {
            continue;
        };
        let value = value.parse::<f64>().unwrap_or(0.0) as u64;
        match name.split('{').next() {
            Some("cascade_rooms") => rooms = value,
            Some("cascade_participants") => participants = value,
            Some("cascade_tracks") => tracks += value,
            _ => {}
        }
    }
    (rooms, participants, tracks)
}

/// Shared counters of the churning slots.
#[derive(Default)]
struct Churn {
    cycles: AtomicU64,
    failed: AtomicU64,
    errors: Mutex<Vec<String>>,
}

impl Churn {
    fn fail(&self, e: anyhow::Error) {
        self.failed.fetch_add(1, Ordering::Relaxed);
        let mut errors = self.errors.lock().expect("errors");
        if errors.len() < MAX_ERRORS {
            errors.push(format!("{e:#}"));
        }
    }
}

/// What one slot of the population does, by slot number.
#[derive(Debug, Clone, Copy)]
enum Role {
    WsPublisher,
    WsSubscriber,
    WhipPublisher,
    WhepViewer,
}

impl Role {
    fn of(slot: usize) -> Self {
        [
            Role::WsPublisher,
            Role::WsSubscriber,
            Role::WhipPublisher,
            Role::WhepViewer,
        ][slot % 4]
    }
}

/// Everything a slot needs.
struct Ctx {
    url: String,
    addr: String,
    minter: Minter,
    media: Vec<Media>,
    collector: Arc<Collector>,
    run_id: u16,
    /// Mean time a participant stays.
    lifetime: Duration,
    churn: Churn,
}

/// One join-stay-leave cycle of `slot`, staying until `leave_at` at the latest.
async fn cycle(ctx: &Ctx, slot: usize, n: u64, leave_at: Instant) -> Result<()> {
    let group = slot / 4;
    let ws_room = format!("soak-{:04x}-ws-{group}", ctx.run_id);
    let whip_room = format!("soak-{:04x}-whip-{group}", ctx.run_id);
    let identity = format!("s{slot}-c{n}");
    let stream = slot as u32 * 2;
    let role = Role::of(slot);
    let publishes = matches!(role, Role::WsPublisher | Role::WhipPublisher);
    let room = match role {
        Role::WsPublisher | Role::WsSubscriber => &ws_room,
        Role::WhipPublisher | Role::WhepViewer => &whip_room,
    };
    let token = ctx.minter.mint(room, &identity, publishes)?;
    let receiver = Arc::new(Receiver::new(ctx.collector.clone()));
    let (p, pumps) = match role {
        Role::WsPublisher => {
            let p = Participant::join(&ctx.url, token, None, STEP_TIMEOUT).await?;
            let pumps = p.publish(&ctx.media, stream).await?;
            (p, pumps)
        }
        Role::WsSubscriber => {
            let p = Participant::join(&ctx.url, token, Some(&receiver), STEP_TIMEOUT).await?;
            p.wait_connected(STEP_TIMEOUT).await?;
            (p, vec![])
        }
        Role::WhipPublisher => {
            Participant::whip(&ctx.addr, room, &token, &ctx.media, stream, STEP_TIMEOUT).await?
        }
        Role::WhepViewer => {
            let p = Participant::whep(&ctx.addr, room, &token, &receiver, STEP_TIMEOUT).await?;
            p.wait_connected(STEP_TIMEOUT).await?;
            (p, vec![])
        }
    };
    let pumps: Vec<_> = pumps
        .into_iter()
        .map(|pump| pump.spawn(&ctx.collector))
        .collect();
    // Stay between half and one and a half times the mean lifetime.
    let stay = ctx.lifetime / 2
        + ctx
            .lifetime
            .mul_f64(f64::from(random_u32() as u16) / 65_535.0);
    tokio::time::sleep_until((Instant::now() + stay).min(leave_at).into()).await;
    drop(pumps);
    tokio::time::timeout(STEP_TIMEOUT, p.leave())
        .await
        .context("timed out leaving")?;
    Ok(())
}

/// Runs `population` slots churning until `until`.
async fn churn(ctx: &Arc<Ctx>, population: usize, until: Instant) {
    let mut slots = JoinSet::new();
    for slot in 0..population {
        let ctx = ctx.clone();
        slots.spawn(async move {
            // Staggered start: the population is reached over one lifetime.
            let offset = ctx.lifetime.mul_f64(slot as f64 / population as f64);
            tokio::time::sleep(offset).await;
            let mut n = 0;
            while Instant::now() + Duration::from_millis(500) < until {
                let leave_at = until;
                match tokio::time::timeout(STEP_TIMEOUT * 4, cycle(&ctx, slot, n, leave_at)).await {
                    Ok(Ok(())) => {
                        ctx.churn.cycles.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok(Err(e)) => ctx.churn.fail(e.context(format!("slot {slot} cycle {n}"))),
                    Err(_) => ctx
                        .churn
                        .fail(anyhow!("slot {slot} cycle {n}: cycle timed out")),
                }
                n += 1;
                tokio::time::sleep(Duration::from_millis(100 + u64::from(random_u32() % 400)))
                    .await;
            }
        });
    }
    while slots.join_next().await.is_some() {}
}

/// Waits until the server has no rooms, participants or tracks, then [`SETTLE`], and
/// samples it.
async fn idle_sample(pid: u32, addr: &str, started: Instant) -> Result<State> {
    let deadline = Instant::now() + DRAIN_TIMEOUT;
    loop {
        let s = sample(pid, addr, started).await?;
        if s.rooms == 0 && s.participants == 0 && s.tracks == 0 {
            break;
        }
        if Instant::now() > deadline {
            eprintln!(
                "\n[soak] still {} rooms, {} participants, {} tracks after {DRAIN_TIMEOUT:?}",
                s.rooms, s.participants, s.tracks
            );
            return Ok(s);
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    tokio::time::sleep(SETTLE).await;
    sample(pid, addr, started).await
}

/// What differs between `base` and `end` beyond the bounds.
fn problems(base: &State, end: &State, max_rss_growth_pct: f64) -> Vec<String> {
    let mut out = vec![];
    let growth = 100.0 * (end.rss_kib as f64 - base.rss_kib as f64) / base.rss_kib.max(1) as f64;
    if growth > max_rss_growth_pct {
        out.push(format!(
            "RSS grew {growth:.1}% ({} -> {} KiB), more than {max_rss_growth_pct}%",
            base.rss_kib, end.rss_kib
        ));
    }
    for (what, b, e) in [
        ("open fds", base.fds, end.fds),
        ("threads", base.threads, end.threads),
        ("rooms", base.rooms, end.rooms),
        ("participants", base.participants, end.participants),
        ("tracks", base.tracks, end.tracks),
    ] {
        if e > b {
            out.push(format!("{what}: {b} after the warm-up, {e} at the end"));
        }
    }
    out
}

/// Runs the soak against the server at `args.url` whose pid is `args.server_pid`.
pub async fn soak(args: &Args, sc: &Scenario, total: Duration) -> Result<SoakReport> {
    let pid = args
        .server_pid
        .ok_or_else(|| anyhow!("--soak needs --server-pid"))?;
    let addr = http::server_addr(&args.url)?;
    let warmup = Duration::from_secs(args.soak_warmup);
    anyhow::ensure!(total > warmup, "--soak must be longer than --soak-warmup");
    let ctx = Arc::new(Ctx {
        url: args.url.clone(),
        addr: addr.clone(),
        minter: Minter::new(&args.api_key, &args.api_secret),
        media: sc.media(),
        collector: Arc::new(Collector::default()),
        run_id: random_u32() as u16,
        lifetime: Duration::from_millis(args.soak_lifetime_ms),
        churn: Churn::default(),
    });
    let started = Instant::now();
    let fresh = sample(pid, &addr, started).await?;
    eprintln!("[soak] warm-up: {warmup:?} of churn");
    churn(&ctx, args.soak_population, Instant::now() + warmup).await;
    let baseline = idle_sample(pid, &addr, started).await?;
    eprintln!("[soak] baseline {baseline:?}");

    let until = Instant::now() + total - warmup;
    let churning = tokio::spawn({
        let ctx = ctx.clone();
        let population = args.soak_population;
        async move { churn(&ctx, population, until).await }
    });
    let mut peak = baseline;
    // Under load: a sample every 30 s (every 2 s in runs under five minutes).
    let every = Duration::from_secs(if total.as_secs() >= 300 { 30 } else { 2 });
    let mut next = Instant::now() + every;
    while !churning.is_finished() {
        tokio::time::sleep(Duration::from_millis(200)).await;
        if Instant::now() < next {
            continue;
        }
        next += every;
        if let Ok(s) = sample(pid, &addr, started).await {
            peak.rss_kib = peak.rss_kib.max(s.rss_kib);
            peak.fds = peak.fds.max(s.fds);
            peak.threads = peak.threads.max(s.threads);
            peak.rooms = peak.rooms.max(s.rooms);
            peak.participants = peak.participants.max(s.participants);
            peak.tracks = peak.tracks.max(s.tracks);
            peak.at_s = s.at_s;
            eprintln!(
                "[soak] {:.0} s: cycles {} failed {} | rss {} KiB fds {} threads {} rooms {} participants {} tracks {}",
                s.at_s,
                ctx.churn.cycles.load(Ordering::Relaxed),
                ctx.churn.failed.load(Ordering::Relaxed),
                s.rss_kib,
                s.fds,
                s.threads,
                s.rooms,
                s.participants,
                s.tracks
            );
        }
    }
    churning.await?;
    let mut end = idle_sample(pid, &addr, started).await?;
    // Give stragglers (lingering sockets, blocking threads) time to return.
    for _ in 0..RETURN_TIMEOUT.as_secs() {
        if problems(&baseline, &end, args.soak_max_rss_growth_pct).is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
        end = sample(pid, &addr, started).await?;
    }
    let cycles = ctx.churn.cycles.load(Ordering::Relaxed);
    let failed = ctx.churn.failed.load(Ordering::Relaxed);
    let mut problems = problems(&baseline, &end, args.soak_max_rss_growth_pct);
    if cycles == 0 {
        problems.push("no cycle completed".into());
    }
    // Churn on a loaded machine may time a join out now and then; more than 1% is a failure.
    if failed * 100 > cycles + failed {
        problems.push(format!("{failed} of {} cycles failed", cycles + failed));
    }
    let errors = ctx.churn.errors.lock().expect("errors").clone();
    Ok(SoakReport {
        seconds: total.as_secs(),
        warmup_s: warmup.as_secs(),
        population: args.soak_population,
        cycles,
        failed_cycles: failed,
        errors,
        fresh,
        baseline,
        peak_under_load: peak,
        end,
        max_rss_growth_pct: args.soak_max_rss_growth_pct,
        problems,
    })
}

impl SoakReport {
    /// A human-readable summary.
    pub fn table(&self) -> String {
        let row = |name: &str, s: &State| {
            format!(
                "{name:<16} {:>8.0} {:>10} {:>6} {:>8} {:>6} {:>13} {:>7}\n",
                s.at_s, s.rss_kib, s.fds, s.threads, s.rooms, s.participants, s.tracks
            )
        };
        let mut out = format!(
            "soak: {} s ({} s warm-up), population {}, {} cycles, {} failed\n\n\
             {:<16} {:>8} {:>10} {:>6} {:>8} {:>6} {:>13} {:>7}\n",
            self.seconds,
            self.warmup_s,
            self.population,
            self.cycles,
            self.failed_cycles,
            "",
            "at s",
            "RSS KiB",
            "fds",
            "threads",
            "rooms",
            "participants",
            "tracks"
        );
        out += &row("fresh", &self.fresh);
        out += &row("baseline (idle)", &self.baseline);
        out += &row("peak under load", &self.peak_under_load);
        out += &row("end (idle)", &self.end);
        let d = |a: u64, b: u64| b as i64 - a as i64;
        out += &format!(
            "delta baseline -> end: RSS {:+} KiB ({:+.2}%), fds {:+}, threads {:+}\n",
            d(self.baseline.rss_kib, self.end.rss_kib),
            100.0 * d(self.baseline.rss_kib, self.end.rss_kib) as f64
                / self.baseline.rss_kib.max(1) as f64,
            d(self.baseline.fds, self.end.fds),
            d(self.baseline.threads, self.end.threads),
        );
        for e in &self.errors {
            out += &format!("error: {e}\n");
        }
        if self.problems.is_empty() {
            out += "PASS: everything returned to the baseline\n";
        } else {
            for p in &self.problems {
                out += &format!("FAIL: {p}\n");
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_gauges_and_flags_growth() {
        let m = "# HELP x\ncascade_rooms 2\ncascade_participants 5\n\
                 cascade_tracks{kind=\"audio\"} 3\ncascade_tracks{kind=\"video\"} 1\n\
                 cascade_rtp_packets_total{direction=\"out\"} 9\n";
        assert_eq!(gauges(m), (2, 5, 4));
        let base = State {
            rss_kib: 1000,
            fds: 20,
            threads: 8,
            ..State::default()
        };
        assert!(problems(&base, &base, 5.0).is_empty());
        let grown = State {
            rss_kib: 1060,
            fds: 21,
            ..base
        };
        let p = problems(&base, &grown, 5.0);
        assert_eq!(p.len(), 2, "{p:?}");
        assert!(p[0].starts_with("RSS grew 6.0%"));
        assert!(p[1].starts_with("open fds: 20"));
    }
}
