//! Passive ICE-TCP (RFC 6544) on the media port, for clients whose UDP is blocked.
//!
//! One thread serves every connection with one `mio` poll: no task or thread per peer. Each
//! connection carries RFC 4571 frames (a 16-bit length, then one STUN, DTLS, RTP or RTCP
//! packet), decoded with webrtc-rs's `tcp_framing`. A frame is routed like a UDP datagram
//! whose path is the connection ([`Proto::Tcp`]): the first one must be an ICE check that the
//! demultiplexer verifies (by the ufrag in its USERNAME and the peer's password), or the
//! connection is closed; the later ones follow the bound path.
//!
//! Bounds and policies ([`TcpLimits`]):
//! - at most [`MAX_CONNECTIONS`] connections; one more is closed at once (counted);
//! - a connection that has not sent a verified check within [`HANDSHAKE_TIMEOUT`], or sends
//!   nothing (not even a consent check) for [`IDLE_TIMEOUT`], is closed;
//! - workers hand the thread their frames through [`TcpOutlet`], a queue of
//!   [`OUTLET_QUEUE`] batches: when it is full the batch is dropped (counted), a worker never
//!   waits;
//! - each connection's write queue holds at most [`WRITE_QUEUE_BYTES`]: a frame that does not
//!   fit is dropped whole (counted), as a congested UDP path would lose it; the connection
//!   never blocks the thread or another connection.

use std::collections::{HashMap, VecDeque};
use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::ops::Range;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender};
use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token, Waker};
use rtc::shared::tcp_framing::{FRAMING_HEADER_LEN, TcpFrameDecoder};
use tracing::{debug, info};

use super::{Path, Proto};
use crate::stats::MediaStats;

/// Open ICE-TCP connections, at most.
pub const MAX_CONNECTIONS: usize = 1024;
/// Bytes waiting to be written on one connection, at most.
pub const WRITE_QUEUE_BYTES: usize = 256 * 1024;
/// A connection must send a verified ICE check within this long.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// A connection that sends nothing for this long is closed (clients send consent checks
/// every few seconds).
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(30);
/// Batches of frames waiting for the TCP thread, at most.
pub const OUTLET_QUEUE: usize = 1024;

/// The bounds of the ICE-TCP port (the defaults are the constants above).
#[derive(Debug, Clone, Copy)]
pub struct TcpLimits {
    /// Open connections, at most.
    pub max_connections: usize,
    /// Bytes waiting to be written on one connection, at most.
    pub write_queue_bytes: usize,
    /// A connection must send a verified ICE check within this long.
    pub handshake_timeout: Duration,
    /// A connection that sends nothing for this long is closed.
    pub idle_timeout: Duration,
}

impl Default for TcpLimits {
    fn default() -> Self {
        Self {
            max_connections: MAX_CONNECTIONS,
            write_queue_bytes: WRITE_QUEUE_BYTES,
            handshake_timeout: HANDSHAKE_TIMEOUT,
            idle_timeout: IDLE_TIMEOUT,
        }
    }
}

const LISTENER: Token = Token(0);
const WAKER: Token = Token(1);
/// Connection tokens start here.
const FIRST_CONN: usize = 2;
/// Bytes read from a connection per `read` call.
const READ_CHUNK: usize = 16 * 1024;

/// Frames for ICE-TCP paths, framed (RFC 4571) one after another, with each path's range.
#[derive(Debug, Default)]
struct Batch {
    bytes: Vec<u8>,
    paths: Vec<(Path, Range<usize>)>,
}

/// A worker's handle on the TCP thread: where it sends frames for ICE-TCP paths. The
/// default outlet (no ICE-TCP) drops them.
#[derive(Debug, Clone, Default)]
pub struct TcpOutlet {
    inner: Option<(Sender<Batch>, Arc<Waker>, Arc<MediaStats>)>,
}

impl TcpOutlet {
    /// Queues `frames` (grouped by path) for the TCP thread, without waiting: when its queue
    /// is full they are dropped and counted.
    pub(crate) fn send(&self, frames: &[(Path, &[u8])]) {
        let Some((tx, waker, stats)) = &self.inner else {
            return;
        };
        if frames.is_empty() {
            return;
        }
        let mut batch = Batch::default();
        for (path, data) in frames {
            let Ok(len) = u16::try_from(data.len()) else {
                continue;
            };
            let start = batch.bytes.len();
            batch.bytes.extend_from_slice(&len.to_be_bytes());
            batch.bytes.extend_from_slice(data);
            match batch.paths.last_mut() {
                Some((p, range)) if p == path => range.end = batch.bytes.len(),
                _ => batch.paths.push((*path, start..batch.bytes.len())),
            }
        }
        if tx.try_send(batch).is_err() {
            MediaStats::add(&stats.tcp_frames_dropped, frames.len() as u64);
            return;
        }
        let _ = waker.wake();
    }
}

/// What the TCP thread does with each frame it reads: hands it to its peer (true) or finds
/// none (false: on a connection whose first frame this is, the connection is closed).
pub trait Deliver: Send + 'static {
    /// Delivers the frame `data`, read at `at` on `path`.
    fn deliver(&mut self, path: Path, data: Vec<u8>, at: Instant) -> bool;
    /// `path`'s connection closed.
    fn closed(&mut self, path: Path);
}

/// The running ICE-TCP listener.
pub struct TcpPort {
    outlet: TcpOutlet,
    thread: JoinHandle<()>,
    local: SocketAddr,
}

impl TcpPort {
    /// Listens on `addr` (an unspecified IPv6 address takes IPv4 too) and starts the thread,
    /// which stops when `stop` is set.
    pub fn start(
        addr: SocketAddr,
        limits: TcpLimits,
        deliver: impl Deliver,
        stats: Arc<MediaStats>,
        stop: Arc<AtomicBool>,
    ) -> io::Result<Self> {
        let listener = listen(addr)?;
        let local = listener.local_addr()?;
        let poll = Poll::new()?;
        let waker = Arc::new(Waker::new(poll.registry(), WAKER)?);
        let (tx, rx) = crossbeam_channel::bounded(OUTLET_QUEUE);
        let outlet = TcpOutlet {
            inner: Some((tx, waker.clone(), stats.clone())),
        };
        let mut server = Server {
            poll,
            listener,
            conns: Vec::new(),
            by_path: HashMap::new(),
            rx,
            deliver,
            stats,
            limits,
        };
        server
            .poll
            .registry()
            .register(&mut server.listener, LISTENER, Interest::READABLE)?;
        let thread = std::thread::Builder::new()
            .name("cascade-ice-tcp".into())
            .spawn(move || server.run(&stop))?;
        info!(%local, "ICE-TCP listening");
        Ok(Self {
            outlet,
            thread,
            local,
        })
    }

    /// The listening address.
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// The workers' handle.
    pub fn outlet(&self) -> TcpOutlet {
        self.outlet.clone()
    }

    /// Waits for the thread (after `stop` was set), waking it first.
    pub fn join(self) {
        if let Some((_, waker, _)) = &self.outlet.inner {
            let _ = waker.wake();
        }
        let _ = self.thread.join();
    }
}

/// A TCP listener on `addr`, dual-stack when it is the unspecified IPv6 address.
fn listen(addr: SocketAddr) -> io::Result<TcpListener> {
    let socket = super::socket_for(addr, socket2::Type::STREAM)?;
    socket.set_reuse_address(true)?;
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    socket.listen(128)?;
    Ok(TcpListener::from_std(socket.into()))
}

/// One ICE-TCP connection.
struct Conn {
    stream: TcpStream,
    path: Path,
    frames: TcpFrameDecoder,
    out: VecDeque<u8>,
    /// A frame of it reached a peer.
    routed: bool,
    opened: Instant,
    last_read: Instant,
    /// WRITABLE is registered (the write queue is not empty).
    writing: bool,
}

struct Server<D> {
    poll: Poll,
    listener: TcpListener,
    /// Connections by token (minus [`FIRST_CONN`]); closed ones leave a `None` to reuse.
    conns: Vec<Option<Conn>>,
    by_path: HashMap<Path, usize>,
    rx: Receiver<Batch>,
    deliver: D,
    stats: Arc<MediaStats>,
    limits: TcpLimits,
}

impl<D: Deliver> Server<D> {
    fn run(mut self, stop: &AtomicBool) {
        let mut events = Events::with_capacity(256);
        let mut buf = vec![0u8; READ_CHUNK];
        while !stop.load(Relaxed) {
            if let Err(e) = self.poll.poll(&mut events, Some(Duration::from_secs(1))) {
                if e.kind() != io::ErrorKind::Interrupted {
                    debug!("ICE-TCP poll failed: {e}");
                }
                continue;
            }
            let now = Instant::now();
            for event in &events {
                match event.token() {
                    LISTENER => self.accept(now),
                    WAKER => self.take_batches(),
                    Token(t) => {
                        let i = t - FIRST_CONN;
                        if event.is_readable() || event.is_read_closed() {
                            self.read(i, &mut buf, now);
                        }
                        if event.is_writable() {
                            self.flush(i);
                        }
                    }
                }
            }
            self.expire(Instant::now());
        }
        for i in 0..self.conns.len() {
            self.close(i);
        }
    }

    fn accept(&mut self, now: Instant) {
        loop {
            let (mut stream, remote) = match self.listener.accept() {
                Ok(accepted) => accepted,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) => {
                    debug!("ICE-TCP accept failed: {e}");
                    return;
                }
            };
            if self.by_path.len() >= self.limits.max_connections {
                MediaStats::add(&self.stats.tcp_connections_refused, 1);
                debug!(%remote, "ICE-TCP connection refused: at the connection limit");
                continue;
            }
            let local = stream.local_addr().ok().map(|a| a.ip());
            let path = Path::new(Proto::Tcp, remote, local);
            let i = match self.conns.iter().position(Option::is_none) {
                Some(i) => i,
                None => {
                    self.conns.push(None);
                    self.conns.len() - 1
                }
            };
            let registered = self.poll.registry().register(
                &mut stream,
                Token(i + FIRST_CONN),
                Interest::READABLE,
            );
            if registered.is_err() {
                continue;
            }
            let _ = stream.set_nodelay(true);
            debug!(%path, "ICE-TCP connection");
            self.by_path.insert(path, i);
            self.conns[i] = Some(Conn {
                stream,
                path,
                frames: TcpFrameDecoder::new(),
                out: VecDeque::new(),
                routed: false,
                opened: now,
                last_read: now,
                writing: false,
            });
        }
    }

    /// Reads what connection `i` has (until the socket would block), delivering each frame.
    fn read(&mut self, i: usize, buf: &mut [u8], now: Instant) {
        loop {
            let Some(conn) = self.conns.get_mut(i).and_then(Option::as_mut) else {
                return;
            };
            let n = match conn.stream.read(buf) {
                Ok(0) => return self.close(i),
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => return self.close(i),
            };
            conn.last_read = now;
            conn.frames.extend_from_slice(&buf[..n]);
            while let Some(frame) = conn.frames.next_packet() {
                if self.deliver.deliver(conn.path, frame, now) {
                    conn.routed = true;
                    continue;
                }
                if !conn.routed {
                    debug!(path = %conn.path, "ICE-TCP: the first frame is no verified check");
                    return self.close(i);
                }
            }
        }
    }

    /// Appends the workers' frames to their connections' write queues and writes.
    fn take_batches(&mut self) {
        let mut touched = Vec::new();
        while let Ok(batch) = self.rx.try_recv() {
            for (path, range) in &batch.paths {
                let Some(&i) = self.by_path.get(path) else {
                    continue;
                };
                let Some(conn) = self.conns[i].as_mut() else {
                    continue;
                };
                let mut frames = &batch.bytes[range.clone()];
                while frames.len() >= FRAMING_HEADER_LEN {
                    let len = FRAMING_HEADER_LEN
                        + usize::from(u16::from_be_bytes([frames[0], frames[1]]));
                    let Some(frame) = frames.get(..len) else {
                        break;
                    };
                    if conn.out.len() + len <= self.limits.write_queue_bytes {
                        conn.out.extend(frame);
                    } else {
                        MediaStats::add(&self.stats.tcp_frames_dropped, 1);
                    }
                    frames = &frames[len..];
                }
                touched.push(i);
            }
        }
        touched.sort_unstable();
        touched.dedup();
        for i in touched {
            self.flush(i);
        }
    }

    /// Writes connection `i`'s queue until it is empty or the socket would block (then waits
    /// for WRITABLE).
    fn flush(&mut self, i: usize) {
        let Some(conn) = self.conns.get_mut(i).and_then(Option::as_mut) else {
            return;
        };
        while !conn.out.is_empty() {
            let (front, _) = conn.out.as_slices();
            match conn.stream.write(front) {
                Ok(0) => return self.close(i),
                Ok(n) => {
                    conn.out.drain(..n);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => return self.close(i),
            }
        }
        let want = !conn.out.is_empty();
        if want != conn.writing {
            let interest = if want {
                Interest::READABLE | Interest::WRITABLE
            } else {
                Interest::READABLE
            };
            let token = Token(i + FIRST_CONN);
            if self
                .poll
                .registry()
                .reregister(&mut conn.stream, token, interest)
                .is_err()
            {
                return self.close(i);
            }
            conn.writing = want;
        }
    }

    /// Closes the connections past their handshake or idle deadline.
    fn expire(&mut self, now: Instant) {
        for i in 0..self.conns.len() {
            let Some(conn) = &self.conns[i] else {
                continue;
            };
            let limits = &self.limits;
            let unverified =
                !conn.routed && now.duration_since(conn.opened) > limits.handshake_timeout;
            if unverified || now.duration_since(conn.last_read) > limits.idle_timeout {
                debug!(path = %conn.path, unverified, "ICE-TCP connection timed out");
                self.close(i);
            }
        }
    }

    fn close(&mut self, i: usize) {
        let Some(mut conn) = self.conns.get_mut(i).and_then(Option::take) else {
            return;
        };
        let _ = self.poll.registry().deregister(&mut conn.stream);
        self.by_path.remove(&conn.path);
        self.deliver.closed(conn.path);
        debug!(path = %conn.path, "ICE-TCP connection closed");
    }
}

#[cfg(test)]
#[path = "tcp_tests.rs"]
mod tests;
