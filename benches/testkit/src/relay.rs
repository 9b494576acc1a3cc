//! A UDP relay between one client and the server's media port, whose server-facing socket can
//! be replaced: the server then sees the client's traffic come from a new address, as after a
//! NAT rebinding or a move to another network, and the old path is dead.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Result;
use tokio::net::UdpSocket;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// The relay: the client sends to [`Relay::front`]; the server sees [`Relay::upstream`].
pub struct Relay {
    front: SocketAddr,
    upstream: watch::Sender<Arc<UdpSocket>>,
    tasks: Vec<JoinHandle<()>>,
}

impl Relay {
    /// Starts relaying to `server` (on loopback).
    pub async fn start(server: SocketAddr) -> Result<Self> {
        let front = Arc::new(UdpSocket::bind("127.0.0.1:0").await?);
        let (upstream, mut rx) = watch::channel(Arc::new(UdpSocket::bind("127.0.0.1:0").await?));
        let client = Arc::new(std::sync::Mutex::new(None::<SocketAddr>));
        let mut tasks = Vec::new();
        // Client -> server, through the current upstream socket.
        {
            let (front, rx, client) = (front.clone(), upstream.subscribe(), client.clone());
            tasks.push(tokio::spawn(async move {
                let mut buf = vec![0u8; 2048];
                while let Ok((n, from)) = front.recv_from(&mut buf).await {
                    *client.lock().unwrap() = Some(from);
                    let up = rx.borrow().clone();
                    let _ = up.send_to(&buf[..n], server).await;
                }
            }));
        }
        // Server -> client, from the current upstream socket only (the old one is dropped).
        {
            let front = front.clone();
            tasks.push(tokio::spawn(async move {
                let mut buf = vec![0u8; 2048];
                loop {
                    let up = rx.borrow_and_update().clone();
                    tokio::select! {
                        r = up.recv_from(&mut buf) => {
                            let Ok((n, _)) = r else { return };
                            let to = *client.lock().unwrap();
                            if let Some(to) = to {
                                let _ = front.send_to(&buf[..n], to).await;
                            }
                        }
                        changed = rx.changed() => if changed.is_err() { return },
                    }
                }
            }));
        }
        Ok(Self {
            front: front.local_addr()?,
            upstream,
            tasks,
        })
    }

    /// Where the client sends.
    pub fn front(&self) -> SocketAddr {
        self.front
    }

    /// The address the server sees the client's traffic come from.
    pub fn upstream(&self) -> SocketAddr {
        self.upstream.borrow().local_addr().expect("bound")
    }

    /// Moves to a new server-facing socket; the old one is closed.
    pub async fn change_path(&self) -> Result<()> {
        let next = Arc::new(UdpSocket::bind("127.0.0.1:0").await?);
        self.upstream.send_replace(next);
        Ok(())
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}
