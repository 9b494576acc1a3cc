//! What the server (or this process) costs: CPU time and RSS from /proc, and the forwarded
//! packet counter from the server's Prometheus `/metrics`.

use std::time::Duration;

use anyhow::{Context, Result, anyhow};

use crate::http;

/// Clock ticks per second of /proc/PID/stat times (USER_HZ, 100 on Linux).
const USER_HZ: u64 = 100;

/// CPU time and memory of a process at one instant.
#[derive(Debug, Clone, Copy)]
pub struct ProcSample {
    /// utime + stime, us.
    pub cpu_us: u64,
    /// Resident set size, KiB.
    pub rss_kib: u64,
}

/// Samples `/proc/<pid>` (`"self"` for this process).
pub fn sample(pid: &str) -> Result<ProcSample> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .with_context(|| format!("reading /proc/{pid}/stat"))?;
    // The command name (field 2) may contain spaces: count fields after its closing ')'.
    let rest = &stat[stat.rfind(')').ok_or_else(|| anyhow!("bad /proc stat"))? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // Fields 14 and 15 (utime, stime) are the 12th and 13th after the command name.
    let ticks = |i: usize| -> Result<u64> {
        Ok(fields
            .get(i)
            .ok_or_else(|| anyhow!("short /proc stat"))?
            .parse()?)
    };
    let cpu_us = (ticks(11)? + ticks(12)?) * (1_000_000 / USER_HZ);
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let rss_kib = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .ok_or_else(|| anyhow!("no VmRSS in /proc/{pid}/status"))?
        .parse()?;
    Ok(ProcSample { cpu_us, rss_kib })
}

/// `cascade_rtp_packets_total{direction="out"}` of the server at `ws_url`: RTP packets it
/// sent to subscribers (retransmissions included).
pub async fn forwarded_packets(ws_url: &str) -> Result<u64> {
    let addr = http::server_addr(ws_url)?;
    let response = tokio::time::timeout(
        Duration::from_secs(5),
        http::request(&addr, "GET", "/metrics", &[], ""),
    )
    .await
    .context("timed out reading /metrics")??;
    anyhow::ensure!(response.status == 200, "GET /metrics: {}", response.status);
    response
        .body
        .lines()
        .find_map(|l| l.strip_prefix(r#"cascade_rtp_packets_total{direction="out"} "#))
        .ok_or_else(|| anyhow!("no forwarded packet counter in /metrics"))?
        .trim()
        .parse::<f64>()
        .map(|v| v as u64)
        .context("parsing the forwarded packet counter")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_this_process() {
        let s = sample("self").unwrap();
        assert!(s.rss_kib > 0);
    }
}
