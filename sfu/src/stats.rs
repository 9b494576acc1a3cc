//! Media-plane counters, shared lock-free by every worker and read by `/metrics`.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// Monotonic counters of the media plane. Workers add with relaxed atomics; readers take a
/// [`StatsSnapshot`].
#[derive(Debug, Default)]
pub struct MediaStats {
    /// RTP packets received from publishers.
    pub rtp_packets_in: AtomicU64,
    /// RTP payload+header bytes received from publishers.
    pub rtp_bytes_in: AtomicU64,
    /// RTP packets sent to subscribers (retransmissions included).
    pub rtp_packets_out: AtomicU64,
    /// RTP bytes sent to subscribers.
    pub rtp_bytes_out: AtomicU64,
    /// NACKs received from subscribers.
    pub nacks_received: AtomicU64,
    /// NACKs sent to publishers for packets lost upstream.
    pub nacks_sent: AtomicU64,
    /// PLIs received from subscribers.
    pub plis_received: AtomicU64,
    /// FIRs received from subscribers.
    pub firs_received: AtomicU64,
    /// Keyframe requests (PLI) sent to publishers, after throttling.
    pub keyframe_requests_sent: AtomicU64,
    /// Packets retransmitted to subscribers from the packet cache.
    pub retransmissions: AtomicU64,
    /// Peer connections that failed (ICE or DTLS failure, timeout).
    pub peer_connection_failures: AtomicU64,
    /// Datagrams dropped by the demultiplexer: from an unbound address and not a verified
    /// binding request for a known peer.
    pub datagrams_unknown_source: AtomicU64,
    /// Datagrams dropped because their worker's data queue was full.
    pub datagrams_queue_full: AtomicU64,
    /// RTP packets not forwarded to another worker's subscribers because its data queue was
    /// full.
    pub forwards_queue_full: AtomicU64,
    /// Frames for ICE-TCP connections dropped: a connection's write queue, or the TCP thread's
    /// queue, was full.
    pub tcp_frames_dropped: AtomicU64,
    /// ICE-TCP connections closed at once: the connection limit was reached.
    pub tcp_connections_refused: AtomicU64,
}

/// A point-in-time copy of [`MediaStats`].
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct StatsSnapshot {
    /// See [`MediaStats::rtp_packets_in`].
    pub rtp_packets_in: u64,
    /// See [`MediaStats::rtp_bytes_in`].
    pub rtp_bytes_in: u64,
    /// See [`MediaStats::rtp_packets_out`].
    pub rtp_packets_out: u64,
    /// See [`MediaStats::rtp_bytes_out`].
    pub rtp_bytes_out: u64,
    /// See [`MediaStats::nacks_received`].
    pub nacks_received: u64,
    /// See [`MediaStats::nacks_sent`].
    pub nacks_sent: u64,
    /// See [`MediaStats::plis_received`].
    pub plis_received: u64,
    /// See [`MediaStats::firs_received`].
    pub firs_received: u64,
    /// See [`MediaStats::keyframe_requests_sent`].
    pub keyframe_requests_sent: u64,
    /// See [`MediaStats::retransmissions`].
    pub retransmissions: u64,
    /// See [`MediaStats::peer_connection_failures`].
    pub peer_connection_failures: u64,
    /// See [`MediaStats::datagrams_unknown_source`].
    pub datagrams_unknown_source: u64,
    /// See [`MediaStats::datagrams_queue_full`].
    pub datagrams_queue_full: u64,
    /// See [`MediaStats::forwards_queue_full`].
    pub forwards_queue_full: u64,
    /// See [`MediaStats::tcp_frames_dropped`].
    pub tcp_frames_dropped: u64,
    /// See [`MediaStats::tcp_connections_refused`].
    pub tcp_connections_refused: u64,
    /// Log lines suppressed by the rate limit, process-wide ([`crate::log_limit`]).
    pub log_lines_suppressed: u64,
}

impl MediaStats {
    /// Adds `n` to a counter.
    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Relaxed);
    }

    /// Reads every counter.
    pub fn snapshot(&self) -> StatsSnapshot {
        StatsSnapshot {
            rtp_packets_in: self.rtp_packets_in.load(Relaxed),
            rtp_bytes_in: self.rtp_bytes_in.load(Relaxed),
            rtp_packets_out: self.rtp_packets_out.load(Relaxed),
            rtp_bytes_out: self.rtp_bytes_out.load(Relaxed),
            nacks_received: self.nacks_received.load(Relaxed),
            nacks_sent: self.nacks_sent.load(Relaxed),
            plis_received: self.plis_received.load(Relaxed),
            firs_received: self.firs_received.load(Relaxed),
            keyframe_requests_sent: self.keyframe_requests_sent.load(Relaxed),
            retransmissions: self.retransmissions.load(Relaxed),
            peer_connection_failures: self.peer_connection_failures.load(Relaxed),
            datagrams_unknown_source: self.datagrams_unknown_source.load(Relaxed),
            datagrams_queue_full: self.datagrams_queue_full.load(Relaxed),
            forwards_queue_full: self.forwards_queue_full.load(Relaxed),
            tcp_frames_dropped: self.tcp_frames_dropped.load(Relaxed),
            tcp_connections_refused: self.tcp_connections_refused.load(Relaxed),
            log_lines_suppressed: crate::log_limit::suppressed_total(),
        }
    }
}
