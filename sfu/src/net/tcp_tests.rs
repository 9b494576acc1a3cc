use std::io::{Read, Write};
use std::net::TcpStream as StdStream;

use crossbeam_channel::{Receiver, Sender, unbounded};

use super::*;

const WAIT: Duration = Duration::from_secs(3);

/// Takes frames whose first byte is 0 (a stand-in for a verified ICE check) on any
/// connection, and any frame on a connection that sent one.
struct Recorder {
    frames: Sender<(Path, Vec<u8>)>,
    closed: Sender<Path>,
    verified: Vec<Path>,
}

impl Deliver for Recorder {
    fn deliver(&mut self, path: Path, data: Vec<u8>, _at: Instant) -> bool {
        if data.first() == Some(&0) {
            self.verified.push(path);
        }
        if !self.verified.contains(&path) {
            return false;
        }
        self.frames.send((path, data)).unwrap();
        true
    }

    fn closed(&mut self, path: Path) {
        self.closed.send(path).unwrap();
    }
}

struct Harness {
    port: Option<TcpPort>,
    stop: Arc<AtomicBool>,
    stats: Arc<MediaStats>,
    frames: Receiver<(Path, Vec<u8>)>,
    closed: Receiver<Path>,
}

impl Harness {
    fn start(limits: TcpLimits) -> Self {
        let (ftx, frames) = unbounded();
        let (ctx, closed) = unbounded();
        let stop = Arc::new(AtomicBool::new(false));
        let stats = Arc::new(MediaStats::default());
        let recorder = Recorder {
            frames: ftx,
            closed: ctx,
            verified: Vec::new(),
        };
        let port = TcpPort::start(
            "127.0.0.1:0".parse().unwrap(),
            limits,
            recorder,
            stats.clone(),
            stop.clone(),
        )
        .unwrap();
        Self {
            port: Some(port),
            stop,
            stats,
            frames,
            closed,
        }
    }

    fn port(&self) -> &TcpPort {
        self.port.as_ref().unwrap()
    }

    fn connect(&self) -> StdStream {
        let s = StdStream::connect(self.port().local_addr()).unwrap();
        s.set_read_timeout(Some(WAIT)).unwrap();
        s
    }

    /// Connects and sends a check: the connection's path.
    fn verified(&self) -> (StdStream, Path) {
        let mut s = self.connect();
        s.write_all(&frame(&[0, 1, 2])).unwrap();
        let (path, data) = self.frames.recv_timeout(WAIT).unwrap();
        assert_eq!(data, [0, 1, 2]);
        (s, path)
    }
}

impl Drop for Harness {
    fn drop(&mut self) {
        self.stop.store(true, Relaxed);
        if let Some(port) = self.port.take() {
            port.join();
        }
    }
}

fn frame(data: &[u8]) -> Vec<u8> {
    let mut f = (data.len() as u16).to_be_bytes().to_vec();
    f.extend_from_slice(data);
    f
}

/// Whether the server closed `s` (EOF or reset within the read timeout).
fn closed_by_server(s: &mut StdStream) -> bool {
    let mut buf = [0u8; 16];
    matches!(s.read(&mut buf), Ok(0) | Err(_))
        && !matches!(s.read(&mut buf), Err(e) if e.kind() == io::ErrorKind::WouldBlock)
}

#[test]
fn frames_reach_their_peer_in_order_and_answers_go_back_framed() {
    let h = Harness::start(TcpLimits::default());
    let mut s = h.connect();
    let mut bytes = frame(&[0, 0xAA, 0xBB]);
    bytes.extend(frame(&[0x80; 1200]));
    bytes.extend(frame(&[0x81; 5]));
    // Split mid-header and mid-frame: the framing survives any segmentation.
    for part in [&bytes[..1], &bytes[1..700], &bytes[700..]] {
        s.write_all(part).unwrap();
        s.flush().unwrap();
        std::thread::sleep(Duration::from_millis(20));
    }
    let got: Vec<(Path, Vec<u8>)> = (0..3)
        .map(|_| h.frames.recv_timeout(WAIT).unwrap())
        .collect();
    let path = got[0].0;
    assert_eq!(path.proto, Proto::Tcp);
    assert_eq!(path.remote, s.local_addr().unwrap());
    assert_eq!(path.local, "127.0.0.1".parse::<std::net::IpAddr>().unwrap());
    assert_eq!(got[0].1, [0, 0xAA, 0xBB]);
    assert_eq!(got[1].1, vec![0x80; 1200]);
    assert_eq!(got[2].1, vec![0x81; 5]);

    let other = Path::new(Proto::Tcp, "127.0.0.1:9".parse().unwrap(), None);
    h.port()
        .outlet()
        .send(&[(path, b"first"), (path, &[7u8; 1500]), (other, b"nobody's")]);
    let mut want = frame(b"first");
    want.extend(frame(&[7u8; 1500]));
    let mut back = vec![0u8; want.len()];
    s.read_exact(&mut back).unwrap();
    assert_eq!(back, want);
}

#[test]
fn a_first_frame_that_is_no_verified_check_closes_the_connection() {
    let h = Harness::start(TcpLimits::default());
    let mut s = h.connect();
    s.write_all(&frame(&[0x80; 40])).unwrap();
    assert!(closed_by_server(&mut s));
    assert_eq!(
        h.closed.recv_timeout(WAIT).unwrap().remote,
        s.local_addr().unwrap()
    );
    assert!(h.frames.try_recv().is_err(), "nothing delivered");
    // A verified connection is not affected by it.
    let (_ok, path) = h.verified();
    assert_eq!(path.proto, Proto::Tcp);
}

#[test]
fn a_client_that_stops_reading_loses_frames_and_delays_no_one() {
    let h = Harness::start(TcpLimits {
        write_queue_bytes: 64 * 1024,
        ..TcpLimits::default()
    });
    let (_stalled, stalled) = h.verified();
    let (mut reader, path) = h.verified();
    let packet = [0x90u8; 1200];
    // ~24 MB for a client that reads nothing: more than the kernel's buffers and the queue.
    for _ in 0..20_000 {
        h.port().outlet().send(&[(stalled, &packet)]);
        if h.stats.tcp_frames_dropped.load(Relaxed) > 0 {
            break;
        }
        std::thread::sleep(Duration::from_micros(50));
    }
    assert!(
        h.stats.tcp_frames_dropped.load(Relaxed) > 0,
        "frames dropped, not queued"
    );
    h.port().outlet().send(&[(path, b"on time")]);
    let mut back = [0u8; 9];
    reader.read_exact(&mut back).unwrap();
    assert_eq!(&back[..], &frame(b"on time")[..]);
}

#[test]
fn connections_past_the_limit_or_silent_ones_are_closed() {
    let h = Harness::start(TcpLimits {
        max_connections: 1,
        handshake_timeout: Duration::from_millis(200),
        ..TcpLimits::default()
    });
    let mut first = h.connect();
    std::thread::sleep(Duration::from_millis(50));
    let mut second = h.connect();
    assert!(closed_by_server(&mut second), "over the limit");
    assert_eq!(h.stats.tcp_connections_refused.load(Relaxed), 1);
    // The first never sends a check: closed after the handshake timeout (checked each second).
    assert!(closed_by_server(&mut first), "silent");
    assert_eq!(
        h.closed.recv_timeout(WAIT).unwrap().remote,
        first.local_addr().unwrap()
    );
}
