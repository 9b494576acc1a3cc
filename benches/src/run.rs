//! One load run: publishers join and send, receivers ramp up, then a steady measurement window.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use cascade_testkit::random_u32;

use crate::client::Participant;
use crate::cpu::{self, ProcSample};
use crate::http;
use crate::report::{Dist, Report, ServerCost};
use crate::scenario::{Args, Scenario, Transport};
use crate::stats::{Collector, Counts, Receiver, window_counts};
use crate::token::Minter;

/// Timeout of each join, publish and connection step.
const STEP_TIMEOUT: Duration = Duration::from_secs(20);
/// How long receivers may take to get every stream after the last join.
const RAMP_TIMEOUT: Duration = Duration::from_secs(20);

/// A receiving participant and what it measured.
struct Joined {
    receiver: Arc<Receiver>,
    /// Streams it should get.
    expected: usize,
    /// WebSocket connect to `joined`.
    join_time: Duration,
}

/// Everything measured at one edge of the window.
struct Edge {
    at: Instant,
    counts: Vec<Counts>,
    sent: u64,
    server: Option<ProcSample>,
    this: Option<ProcSample>,
    metrics: Option<u64>,
}

/// Runs the scenario against the server at `args.url`.
pub async fn run(args: &Args, sc: &Scenario) -> Result<Report> {
    let minter = Arc::new(Minter::new(&args.api_key, &args.api_secret));
    let collector = Arc::new(Collector::default());
    let run_id = random_u32() as u16;
    let server_pid = args.server_pid.map(|p| p.to_string());
    let addr = http::server_addr(&args.url)?;
    let sample_server = || server_pid.as_deref().map(cpu::sample).transpose();
    let media = sc.media();

    let mut rss_before = None;
    if sc.publishers_receive {
        rss_before = sample_server()?;
    }
    let mut participants = vec![];
    let mut joined = vec![];
    let mut pumps = vec![];
    let mut stream = 0;
    for room in 0..sc.rooms {
        for i in 0..sc.publishers {
            let token = minter.mint(&room_name(run_id, room), &format!("pub-{i}"), true)?;
            let receiver = sc
                .publishers_receive
                .then(|| Arc::new(Receiver::new(collector.clone())));
            let started = Instant::now();
            let (p, join_time, published) = if args.transport == Transport::Whip {
                let name = room_name(run_id, room);
                let (p, published) =
                    Participant::whip(&addr, &name, &token, &media, stream, STEP_TIMEOUT)
                        .await
                        .with_context(|| format!("WHIP publisher {i} of room {room}"))?;
                (p, started.elapsed(), published)
            } else {
                let p = Participant::join(&args.url, token, receiver.as_ref(), STEP_TIMEOUT)
                    .await
                    .with_context(|| format!("publisher {i} of room {room}"))?;
                let join_time = started.elapsed();
                let published = p.publish(&media, stream).await?;
                (p, join_time, published)
            };
            pumps.extend(published.into_iter().map(|pump| pump.spawn(&collector)));
            stream += media.len() as u32;
            if let Some(receiver) = receiver {
                joined.push(Joined {
                    receiver,
                    expected: sc.streams_per_receiver(true) as usize,
                    join_time,
                });
            }
            participants.push(p);
            eprint!(
                "\r[ramp] publishers {}/{}   ",
                participants.len(),
                sc.rooms * sc.publishers
            );
        }
    }
    // Tracks are published on their first packet: give the server a moment.
    tokio::time::sleep(Duration::from_millis(500)).await;
    if !sc.publishers_receive {
        rss_before = sample_server()?;
    }

    let failed = join_subscribers(
        args,
        sc,
        run_id,
        &minter,
        &collector,
        &mut participants,
        &mut joined,
    )
    .await;
    if joined.is_empty() {
        bail!("no receiver joined ({failed} failed)");
    }
    wait_complete(&joined).await;
    tokio::time::sleep(sc.warmup).await;

    let edge = |collector: &Collector| -> Result<Edge> {
        Ok(Edge {
            at: Instant::now(),
            counts: joined.iter().map(|j| j.receiver.counts()).collect(),
            sent: collector.sent.load(Ordering::Relaxed),
            server: sample_server()?,
            this: cpu::sample("self").ok(),
            metrics: None,
        })
    };
    let mut start = edge(&collector)?;
    start.metrics = cpu::forwarded_packets(&args.url).await.ok();
    for j in &joined {
        j.receiver.take_latencies();
    }
    collector.measuring.store(true, Ordering::Relaxed);
    let received_before = collector.received.load(Ordering::Relaxed);
    for s in 1..=sc.window.as_secs().max(1) {
        tokio::time::sleep(sc.window / sc.window.as_secs().max(1) as u32).await;
        let got = collector.received.load(Ordering::Relaxed) - received_before;
        eprint!(
            "\r[measure] {s}/{} s, {:.0} packets/s received   ",
            sc.window.as_secs(),
            got as f64 / start.at.elapsed().as_secs_f64()
        );
    }
    collector.measuring.store(false, Ordering::Relaxed);
    let mut end = edge(&collector)?;
    end.metrics = cpu::forwarded_packets(&args.url).await.ok();
    eprintln!();

    let report = build_report(sc, &joined, failed, rss_before, &start, &end);
    drop(pumps);
    let leaving: Vec<_> = participants.into_iter().map(Participant::leave).collect();
    let _ = tokio::time::timeout(
        Duration::from_secs(5),
        futures_util::future::join_all(leaving),
    )
    .await;
    Ok(report)
}

/// The name of room `i` of run `run_id`.
fn room_name(run_id: u16, i: u32) -> String {
    format!("load-{run_id:04x}-{i}")
}

/// Joins the receive-only participants, `--join-concurrency` at a time, with a progress line.
/// Returns how many failed.
async fn join_subscribers(
    args: &Args,
    sc: &Scenario,
    run_id: u16,
    minter: &Arc<Minter>,
    collector: &Arc<Collector>,
    participants: &mut Vec<Participant>,
    joined: &mut Vec<Joined>,
) -> usize {
    let total = (sc.rooms * sc.subscribers) as usize;
    let permits = Arc::new(Semaphore::new(args.join_concurrency.max(1)));
    let receivers = Arc::new(Mutex::new(Vec::<Arc<Receiver>>::new()));
    let mut tasks = JoinSet::new();
    for room in 0..sc.rooms {
        for i in 0..sc.subscribers {
            let (permits, minter, collector, receivers) = (
                permits.clone(),
                minter.clone(),
                collector.clone(),
                receivers.clone(),
            );
            let url = args.url.clone();
            let whep = args.transport == Transport::Whip;
            tasks.spawn(async move {
                let _permit = permits.acquire_owned().await?;
                let token = minter.mint(&room_name(run_id, room), &format!("sub-{i}"), false)?;
                let receiver = Arc::new(Receiver::new(collector));
                receivers.lock().expect("receivers").push(receiver.clone());
                let started = Instant::now();
                let p = if whep {
                    let (addr, name) = (http::server_addr(&url)?, room_name(run_id, room));
                    Participant::whep(&addr, &name, &token, &receiver, STEP_TIMEOUT).await?
                } else {
                    Participant::join(&url, token, Some(&receiver), STEP_TIMEOUT).await?
                };
                let join_time = started.elapsed();
                p.wait_connected(STEP_TIMEOUT).await?;
                anyhow::Ok((p, receiver, join_time))
            });
        }
    }
    let expected = sc.streams_per_receiver(false) as usize;
    let mut failed = 0;
    let mut tick = tokio::time::interval(Duration::from_millis(500));
    let started = Instant::now();
    while !tasks.is_empty() {
        tokio::select! {
            done = tasks.join_next() => match done {
                Some(Ok(Ok((p, receiver, join_time)))) => {
                    participants.push(p);
                    joined.push(Joined { receiver, expected, join_time });
                }
                Some(Ok(Err(e))) => {
                    failed += 1;
                    eprintln!("\ncascade-load: a subscriber failed: {e:#}");
                }
                Some(Err(e)) => {
                    failed += 1;
                    eprintln!("\ncascade-load: a subscriber task failed: {e}");
                }
                None => {}
            },
            _ = tick.tick() => {
                let receiving = receivers
                    .lock()
                    .expect("receivers")
                    .iter()
                    .filter(|r| r.streams() >= expected)
                    .count();
                let connected = participants.iter().filter(|p| p.is_connected()).count();
                eprint!(
                    "\r[ramp] {:.1} s: subscribers joined {}/{total}, connected {connected}, receiving all streams {receiving}, failed {failed}   ",
                    started.elapsed().as_secs_f64(),
                    joined.len(),
                );
            }
        }
    }
    failed
}

/// Waits until every receiver has all its streams, or [`RAMP_TIMEOUT`].
async fn wait_complete(joined: &[Joined]) {
    let deadline = Instant::now() + RAMP_TIMEOUT;
    loop {
        let complete = joined
            .iter()
            .filter(|j| j.receiver.streams() >= j.expected)
            .count();
        eprint!(
            "\r[ramp] receivers with every stream: {complete}/{}                          ",
            joined.len()
        );
        if complete == joined.len() || Instant::now() > deadline {
            eprintln!();
            return;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn build_report(
    sc: &Scenario,
    joined: &[Joined],
    failed: usize,
    rss_before: Option<ProcSample>,
    start: &Edge,
    end: &Edge,
) -> Report {
    let secs = end.at.duration_since(start.at).as_secs_f64();
    let (mut got, mut expected) = (0, 0);
    for (before, after) in start.counts.iter().zip(&end.counts) {
        let (g, e) = window_counts(before, after);
        got += g;
        expected += e;
    }
    let mut latencies = vec![];
    let mut jitters = vec![];
    for j in joined {
        latencies.extend(j.receiver.take_latencies());
        jitters.extend(j.receiver.jitters_ms());
    }
    let us = |d: Duration| u32::try_from(d.as_micros()).unwrap_or(u32::MAX);
    let metrics = start
        .metrics
        .zip(end.metrics)
        .map(|(a, b)| b.saturating_sub(a));
    let cpu_pct = |a: Option<ProcSample>, b: Option<ProcSample>| {
        a.zip(b)
            .map_or(0.0, |(a, b)| (b.cpu_us - a.cpu_us) as f64 / secs / 1e4)
    };
    let server = start.server.zip(end.server).map(|(a, b)| {
        let cpu = (b.cpu_us - a.cpu_us) as f64;
        let before = rss_before.unwrap_or(a).rss_kib;
        ServerCost {
            cpu_pct: cpu / secs / 1e4,
            cpu_us_per_forwarded_packet: cpu / got.max(1) as f64,
            cpu_us_per_metrics_packet: metrics.map(|m| cpu / m.max(1) as f64),
            rss_before_mib: before as f64 / 1024.0,
            rss_after_mib: b.rss_kib as f64 / 1024.0,
            rss_per_subscriber_kib: (b.rss_kib as f64 - before as f64) / joined.len() as f64,
        }
    });
    let fan_out = sc.receivers_per_room() - u32::from(sc.publishers_receive);
    let expected_pps = (end.sent - start.sent) as f64 * f64::from(fan_out) / secs;
    Report {
        scenario: sc.clone(),
        receivers: joined.len(),
        failed_joins: failed,
        receivers_complete: joined
            .iter()
            .filter(|j| j.receiver.streams() >= j.expected)
            .count(),
        join_ms: Dist::from_us(joined.iter().map(|j| us(j.join_time)).collect()),
        first_packet_ms: Dist::from_us(
            joined
                .iter()
                .filter_map(|j| j.receiver.time_to_first_packet())
                .map(us)
                .collect(),
        ),
        window_s: secs,
        sent_pps: (end.sent - start.sent) as f64 / secs,
        forwarded_packets: got,
        forwarded_pps: got as f64 / secs,
        metrics_forwarded_pps: metrics.map(|m| m as f64 / secs),
        expected_pps,
        delivered_pct: 100.0 * got as f64 / secs / expected_pps.max(1.0),
        loss_pct: if expected == 0 {
            0.0
        } else {
            100.0 * expected.saturating_sub(got) as f64 / expected as f64
        },
        jitter_ms: if jitters.is_empty() {
            0.0
        } else {
            jitters.iter().sum::<f64>() / jitters.len() as f64
        },
        latency_ms: Dist::from_us(latencies),
        server,
        load_tester_cpu_pct: cpu_pct(start.this, end.this),
    }
}
