//! TURN over UDP: the listener's receive loop.

use std::sync::Arc;

use tokio::net::UdpSocket;
use tokio::sync::{mpsc, watch};

use super::Event;

/// Pause after a receive error, so that a lasting one cannot spin.
const ERROR_PAUSE: std::time::Duration = std::time::Duration::from_millis(10);
/// Largest datagram received.
const MAX_DATAGRAM: usize = 65_535;

/// Hands every datagram on `socket` to the TURN server task until `shutdown` fires. When the
/// task is behind, this waits and the kernel's socket buffer drops datagrams, as UDP may.
pub async fn receive(
    socket: Arc<UdpSocket>,
    core: mpsc::Sender<Event>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut buf = vec![0u8; MAX_DATAGRAM];
    loop {
        let received = tokio::select! {
            received = socket.recv_from(&mut buf) => received,
            _ = shutdown.changed() => return,
        };
        // Errors are per datagram on UDP (e.g. ICMP unreachable reported late): go on,
        // without spinning.
        let Ok((n, from)) = received else {
            tokio::time::sleep(ERROR_PAUSE).await;
            continue;
        };
        let event = Event::Client {
            from,
            data: buf[..n].to_vec(),
        };
        if core.send(event).await.is_err() {
            return;
        }
    }
}
