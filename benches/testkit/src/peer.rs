//! The kit's webrtc-rs peer connection: one UDP socket on a loopback address (so it only ever
//! produces a loopback host candidate, which is what runs inside `unshare -n` need), no ICE
//! servers, mDNS off, ICE restricted to UDP over IPv4.

use std::sync::{Arc, Weak};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use rtc::ice::mdns::MulticastDnsMode;
use rtc::ice::network_type::NetworkType;
use webrtc::media_stream::track_remote::{TrackRemote, TrackRemoteEvent};
use webrtc::peer_connection::{
    PeerConnection, PeerConnectionBuilder, PeerConnectionEventHandler, RTCConfigurationBuilder,
    RTCPeerConnectionIceEvent, RTCPeerConnectionState, SettingEngineBuilder,
};
use webrtc::rtp_transceiver::{RTCRtpTransceiverDirection, RTCRtpTransceiverInit};

use crate::codec::{MediaKind, media_engine};
use crate::util::wait_for;
use crate::wire::WireRecorderHandle;

/// How a peer connection is built.
#[derive(Debug, Clone)]
pub struct PeerOptions {
    /// Register RTX (`video/rtx` PT 97, `apt=96`). On by default, like browsers: without RTX a
    /// retransmission reuses the original SSRC and sequence number, and the client's SRTP replay
    /// protection drops it if the original was received.
    pub rtx: bool,
    /// Offer `goog-remb` feedback for VP8 (on by default).
    pub remb: bool,
    /// Local UDP address the peer connection binds; the only host candidate it gathers (an
    /// IPv6 one, e.g. `[::1]:0`, makes an IPv6-only peer).
    pub udp_addr: String,
    /// Records inbound RTP and RTCP at the wire end of the interceptor chain, if set.
    pub wire: Option<WireRecorderHandle>,
}

impl Default for PeerOptions {
    fn default() -> Self {
        Self {
            rtx: true,
            remb: true,
            udp_addr: "127.0.0.1:0".to_owned(),
            wire: None,
        }
    }
}

/// What a peer connection's owner hears about: local candidates and remote tracks.
#[async_trait::async_trait]
pub trait PeerEvents: Send + Sync {
    /// A local ICE candidate was gathered (default: ignored).
    async fn on_candidate(&self, _event: RTCPeerConnectionIceEvent) {}
    /// A remote track arrived.
    async fn on_track(&self, track: Arc<dyn TrackRemote>);
}

/// A peer connection's state, watched.
#[derive(Clone)]
pub struct PcState(Arc<tokio::sync::watch::Sender<RTCPeerConnectionState>>);

impl Default for PcState {
    fn default() -> Self {
        Self(Arc::new(
            tokio::sync::watch::channel(RTCPeerConnectionState::New).0,
        ))
    }
}

impl PcState {
    /// The current state.
    pub fn get(&self) -> RTCPeerConnectionState {
        *self.0.borrow()
    }

    /// Waits until the state is `Connected`; fails early if it is `Failed`/`Closed`.
    pub async fn wait_connected(&self, timeout: Duration) -> Result<()> {
        self.wait("Connected", timeout, |s| match s {
            RTCPeerConnectionState::Connected => Ok(Some(())),
            s @ (RTCPeerConnectionState::Failed | RTCPeerConnectionState::Closed) => {
                bail!("peer connection is {s}")
            }
            _ => Ok(None),
        })
        .await
    }

    /// Waits until the state is `state`.
    pub async fn wait_state(&self, state: RTCPeerConnectionState, timeout: Duration) -> Result<()> {
        self.wait(&state.to_string(), timeout, |s| {
            Ok((s == state).then_some(()))
        })
        .await
    }

    async fn wait(
        &self,
        what: &str,
        timeout: Duration,
        check: impl Fn(RTCPeerConnectionState) -> Result<Option<()>>,
    ) -> Result<()> {
        let what = || format!("peer connection {what} (now {})", self.get());
        wait_for(&self.0, timeout, what, || check(self.get())).await
    }
}

/// Forwards webrtc-rs's events to the state and the owner.
struct Handler {
    state: PcState,
    events: Weak<dyn PeerEvents>,
}

#[async_trait::async_trait]
impl PeerConnectionEventHandler for Handler {
    async fn on_ice_candidate(&self, event: RTCPeerConnectionIceEvent) {
        if let Some(events) = self.events.upgrade() {
            events.on_candidate(event).await;
        }
    }

    async fn on_connection_state_change(&self, state: RTCPeerConnectionState) {
        self.state.0.send_replace(state);
    }

    async fn on_track(&self, track: Arc<dyn TrackRemote>) {
        if let Some(events) = self.events.upgrade() {
            events.on_track(track).await;
        }
    }
}

/// Builds a peer connection per `options` whose state goes to `state` and whose events go to
/// `events`.
pub async fn build_peer_connection(
    options: &PeerOptions,
    state: PcState,
    events: Weak<dyn PeerEvents>,
) -> Result<Arc<dyn PeerConnection>> {
    let (engine, registry) = media_engine(options)?;
    // mDNS off: its default (query-only) joins a multicast group, which fails with ENODEV
    // inside `unshare -n` (loopback only) and aborts the peer connection's construction.
    let network = if options.udp_addr.starts_with('[') {
        NetworkType::Udp6
    } else {
        NetworkType::Udp4
    };
    let settings = SettingEngineBuilder::new()
        .with_multicast_dns_mode(MulticastDnsMode::Disabled)
        .with_network_types(vec![network])
        .with_include_loopback_candidate(true)
        .build();
    let pc = PeerConnectionBuilder::new()
        .with_configuration(RTCConfigurationBuilder::new().build())
        .with_media_engine(engine)
        .with_interceptor_registry(registry)
        .with_setting_engine(settings)
        .with_handler(Arc::new(Handler { state, events }))
        .with_udp_addrs(vec![options.udp_addr.clone()])
        .build()
        .await
        .context("building the peer connection")?;
    Ok(Arc::new(pc))
}

/// Adds a receive-only m-line of `kind` (e.g. for a WHEP viewer).
pub async fn add_receive_only(pc: &Arc<dyn PeerConnection>, kind: MediaKind) -> Result<()> {
    pc.add_transceiver_from_kind(
        kind.codec_kind(),
        Some(RTCRtpTransceiverInit {
            direction: RTCRtpTransceiverDirection::Recvonly,
            streams: vec![],
            send_encodings: vec![],
        }),
    )
    .await
    .context("adding a receive-only transceiver")?;
    Ok(())
}

/// Hands the payload of every packet of a remote track to `on_payload`, until the track ends.
pub async fn forward_payloads(track: Arc<dyn TrackRemote>, on_payload: PayloadFn) {
    while let Some(event) = track.poll().await {
        match event {
            TrackRemoteEvent::OnRtpPacket(p) => on_payload(&p.payload),
            TrackRemoteEvent::OnEnded => return,
            _ => {}
        }
    }
}

/// A consumer of received payloads (see [`forward_payloads`]).
pub type PayloadFn = Arc<dyn Fn(&[u8]) + Send + Sync>;
