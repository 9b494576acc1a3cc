//! TURN over TCP and TLS: the accept loops, one task per connection, and the framing of the
//! byte stream into whole STUN messages and ChannelData frames ([`Framer`]).
//!
//! Every connection is bounded: its buffer holds at most one largest frame, it is closed after
//! [`FIRST_MESSAGE_TIMEOUT`] without a first frame and after [`IDLE_TIMEOUT`] without any, and
//! the listener holds at most `max_connections` of them (more are closed at once).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, mpsc, watch};
use tokio_rustls::TlsAcceptor;
use tracing::{debug, warn};

use super::Event;
use super::core::CLIENT_QUEUE;

/// Length of a STUN message header.
const STUN_HEADER: usize = 20;
/// Length of a ChannelData header.
const CHANNEL_HEADER: usize = 4;
/// The largest frame: a STUN header and the largest body its 16-bit length can announce.
pub const MAX_FRAME: usize = STUN_HEADER + u16::MAX as usize;
/// Time a new connection has to finish TLS and send its first frame.
pub const FIRST_MESSAGE_TIMEOUT: Duration = Duration::from_secs(10);
/// Time a connection may stay silent (longer than the default allocation lifetime, which a
/// client refreshes before it ends).
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(660);

/// Why a stream cannot be framed; the connection is closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameError {
    /// The bytes are neither a STUN message nor a ChannelData frame.
    Garbage,
}

/// One frame taken from the stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// A STUN message, whole.
    Stun(Vec<u8>),
    /// A ChannelData frame, its padding removed.
    Channel(Vec<u8>),
}

impl Frame {
    /// The frame's bytes, as the TURN server takes them.
    pub fn into_bytes(self) -> Vec<u8> {
        match self {
            Self::Stun(b) | Self::Channel(b) => b,
        }
    }
}

/// Splits a TURN byte stream into frames (RFC 8656 §12.5: STUN messages and ChannelData
/// frames padded to a multiple of 4 bytes). Holds at most [`MAX_FRAME`] bytes.
#[derive(Debug, Default)]
pub struct Framer {
    buf: Vec<u8>,
}

impl Framer {
    /// How many bytes the framer can take now: at least 1 while no frame is pending.
    pub fn room(&self) -> usize {
        MAX_FRAME.saturating_sub(self.buf.len())
    }

    /// Appends bytes read from the stream; at most [`Framer::room`] of them.
    pub fn push(&mut self, bytes: &[u8]) {
        debug_assert!(bytes.len() <= self.room());
        self.buf.extend_from_slice(bytes);
    }

    /// The next whole frame, `Ok(None)` if more bytes are needed.
    pub fn next_frame(&mut self) -> Result<Option<Frame>, FrameError> {
        let Some(&first) = self.buf.first() else {
            return Ok(None);
        };
        let (header, body, padded, channel) = match first >> 6 {
            0 => {
                if self.buf.len() < STUN_HEADER {
                    return Ok(None);
                }
                let body = usize::from(u16::from_be_bytes([self.buf[2], self.buf[3]]));
                // The magic cookie tells STUN from garbage early; bodies are 4-byte aligned.
                if self.buf[4..8] != [0x21, 0x12, 0xa4, 0x42] || body % 4 != 0 {
                    return Err(FrameError::Garbage);
                }
                (STUN_HEADER, body, body, false)
            }
            // Channel numbers 0x4000..=0x4fff.
            1 if first <= 0x4f => {
                if self.buf.len() < CHANNEL_HEADER {
                    return Ok(None);
                }
                let body = usize::from(u16::from_be_bytes([self.buf[2], self.buf[3]]));
                (CHANNEL_HEADER, body, body.next_multiple_of(4), true)
            }
            _ => return Err(FrameError::Garbage),
        };
        if self.buf.len() < header + padded {
            return Ok(None);
        }
        let mut frame: Vec<u8> = self.buf.drain(..header + padded).collect();
        if channel {
            frame.truncate(header + body);
            Ok(Some(Frame::Channel(frame)))
        } else {
            Ok(Some(Frame::Stun(frame)))
        }
    }
}

/// Pads an outgoing ChannelData frame to a multiple of 4 bytes, as TCP and TLS need.
pub fn pad_for_stream(mut bytes: Vec<u8>) -> Vec<u8> {
    if bytes.first().is_some_and(|b| b >> 6 == 1) {
        bytes.resize(bytes.len().next_multiple_of(4), 0);
    }
    bytes
}

/// Accepts TCP (or, with `tls`, TLS) connections on `listener` and serves each in its own
/// task, feeding frames to the TURN server task through `core`.
pub async fn accept_loop(
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    core: mpsc::Sender<Event>,
    max_connections: usize,
    mut shutdown: watch::Receiver<bool>,
) {
    let slots = Arc::new(Semaphore::new(max_connections));
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = shutdown.changed() => return,
        };
        let (tcp, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(e) => {
                debug!(error = %e, "TURN accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            warn!(%peer, max_connections, "TURN stream connections at their cap: closing one");
            continue;
        };
        let _ = tcp.set_nodelay(true);
        let core = core.clone();
        let tls = tls.clone();
        let shutdown = shutdown.clone();
        tokio::spawn(async move {
            let _slot = slot;
            match tls {
                None => serve(tcp, peer, core, shutdown).await,
                Some(acceptor) => {
                    let handshake =
                        tokio::time::timeout(FIRST_MESSAGE_TIMEOUT, acceptor.accept(tcp));
                    match handshake.await {
                        Ok(Ok(stream)) => serve(stream, peer, core, shutdown).await,
                        Ok(Err(e)) => debug!(%peer, error = %e, "TURN TLS handshake failed"),
                        Err(_) => debug!(%peer, "TURN TLS handshake timed out"),
                    }
                }
            }
        });
    }
}

/// Serves one connection: frames in to the TURN server task, its replies out, until either
/// side closes, the framing fails, or the connection idles out.
async fn serve<S: AsyncRead + AsyncWrite + Unpin>(
    stream: S,
    peer: SocketAddr,
    core: mpsc::Sender<Event>,
    mut shutdown: watch::Receiver<bool>,
) {
    let (tx, mut outbox) = mpsc::channel(CLIENT_QUEUE);
    if core
        .send(Event::Connected { from: peer, tx })
        .await
        .is_err()
    {
        return;
    }
    let (mut reader, mut writer) = tokio::io::split(stream);
    let mut framer = Framer::default();
    let mut buf = vec![0u8; 16 * 1024];
    let mut timeout = FIRST_MESSAGE_TIMEOUT;
    'conn: loop {
        tokio::select! {
            read = tokio::time::timeout(timeout, reader.read(&mut buf[..framer.room().min(16 * 1024)])) => {
                let n = match read {
                    Ok(Ok(0)) | Ok(Err(_)) => break,
                    Ok(Ok(n)) => n,
                    Err(_) => {
                        debug!(%peer, "TURN connection idle: closing");
                        break;
                    }
                };
                framer.push(&buf[..n]);
                loop {
                    match framer.next_frame() {
                        Ok(Some(frame)) => {
                            timeout = IDLE_TIMEOUT;
                            let event = Event::Client { from: peer, data: frame.into_bytes() };
                            if core.send(event).await.is_err() {
                                break 'conn;
                            }
                        }
                        Ok(None) => break,
                        Err(FrameError::Garbage) => {
                            debug!(%peer, "TURN connection sent neither STUN nor ChannelData: closing");
                            break 'conn;
                        }
                    }
                }
            }
            out = outbox.recv() => {
                let Some(bytes) = out else { break };
                if writer.write_all(&bytes).await.is_err() {
                    break;
                }
            }
            _ = shutdown.changed() => break,
        }
    }
    let _ = writer.shutdown().await;
    let _ = core.send(Event::Closed { from: peer }).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A STUN header of a Binding request with a `body`-byte body, then the body.
    fn stun(body: usize) -> Vec<u8> {
        let mut m = vec![0x00, 0x01];
        m.extend_from_slice(&(body as u16).to_be_bytes());
        m.extend_from_slice(&[0x21, 0x12, 0xa4, 0x42]);
        m.extend_from_slice(&[7; 12]);
        m.extend(std::iter::repeat_n(0xab, body));
        m
    }

    fn channel(len: usize) -> Vec<u8> {
        let mut m = vec![0x40, 0x01];
        m.extend_from_slice(&(len as u16).to_be_bytes());
        m.extend(std::iter::repeat_n(0xcd, len));
        m.resize(m.len().next_multiple_of(4), 0);
        m
    }

    #[test]
    fn frames_arrive_whole_however_the_stream_is_cut() {
        let mut stream = stun(8);
        stream.extend(channel(5)); // 4 + 5, padded to 12
        stream.extend(stun(0));
        for cut in 1..stream.len() {
            let mut f = Framer::default();
            let mut frames = Vec::new();
            for piece in [&stream[..cut], &stream[cut..]] {
                f.push(piece);
                while let Some(frame) = f.next_frame().unwrap() {
                    frames.push(frame);
                }
            }
            assert_eq!(
                frames,
                [
                    Frame::Stun(stun(8)),
                    Frame::Channel(channel(5)[..9].to_vec()),
                    Frame::Stun(stun(0)),
                ],
                "cut at {cut}"
            );
            assert_eq!(f.room(), MAX_FRAME);
        }
    }

    #[test]
    fn a_partial_frame_waits_for_more() {
        let mut f = Framer::default();
        let m = stun(12);
        f.push(&m[..19]);
        assert_eq!(f.next_frame(), Ok(None));
        f.push(&m[19..31]);
        assert_eq!(f.next_frame(), Ok(None));
        f.push(&m[31..]);
        assert_eq!(f.next_frame(), Ok(Some(Frame::Stun(m))));
        assert_eq!(f.next_frame(), Ok(None));
    }

    #[test]
    fn the_largest_frame_fits_and_the_buffer_never_grows_past_it() {
        let mut f = Framer::default();
        let largest = stun(65_532); // the largest 4-aligned body
        assert!(largest.len() <= MAX_FRAME);
        let mut fed = 0;
        while fed < largest.len() {
            let n = f.room().min(largest.len() - fed).min(1000);
            assert!(n > 0, "room while a frame is incomplete");
            f.push(&largest[fed..fed + n]);
            fed += n;
            if fed < largest.len() {
                assert_eq!(f.next_frame(), Ok(None));
            }
        }
        assert_eq!(f.next_frame(), Ok(Some(Frame::Stun(largest))));
        // A channel frame announcing the largest length is bounded too.
        let mut f = Framer::default();
        f.push(&[0x4f, 0xff, 0xff, 0xff]);
        assert_eq!(f.next_frame(), Ok(None));
        assert!(
            f.room() >= 65_536,
            "room for the announced body and its padding"
        );
    }

    #[test]
    fn garbage_is_refused() {
        for bytes in [
            b"POST / HTTP/1.1\r\n\r\n".to_vec(), // first bits 01, above the channel numbers
            vec![0x80; 24],                      // first bits 10
            vec![0xff; 24],                      // first bits 11
            {
                let mut m = stun(4);
                m[4] = 0; // no magic cookie
                m
            },
            {
                let mut m = stun(4);
                m[3] = 5; // a body length that is not a multiple of 4
                m
            },
        ] {
            let mut f = Framer::default();
            f.push(&bytes);
            assert_eq!(f.next_frame(), Err(FrameError::Garbage), "{bytes:02x?}");
        }
    }

    #[test]
    fn outgoing_channel_data_is_padded_and_stun_is_not() {
        assert_eq!(
            pad_for_stream(vec![0x40, 0, 0, 1, 9]),
            [0x40, 0, 0, 1, 9, 0, 0, 0]
        );
        assert_eq!(pad_for_stream(vec![0x40, 0, 0, 4, 1, 2, 3, 4]).len(), 8);
        assert_eq!(pad_for_stream(stun(0)), stun(0));
    }
}
