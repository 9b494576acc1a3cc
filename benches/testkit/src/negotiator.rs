//! The client's side of perfect negotiation as an async task: it drives
//! [`cascade_signaling::negotiation::PoliteNegotiation`] (the decisions) and does the I/O
//! (webrtc-rs descriptions, WebSocket messages). A server offer that arrives while the client's
//! own offer is outstanding rolls that offer back, is answered, and the client offers again.

use std::collections::BTreeMap;
use std::sync::Arc;

use anyhow::{Context, Result, anyhow};
use cascade_signaling::negotiation::PoliteNegotiation;
use cascade_signaling::protocol::{ClientMessage, IceCandidate};
use rtc::peer_connection::configuration::RTCOfferOptions;
use tokio::sync::{mpsc, oneshot};
use webrtc::peer_connection::{PeerConnection, RTCIceCandidateInit, RTCSessionDescription};

use crate::client::Shared;
use crate::socket::{ErrorMsg, Signal};

/// Waits for an offer's answer to be applied.
pub(crate) type Waiter = oneshot::Sender<Result<()>>;

/// Inputs of the negotiation task.
pub(crate) enum Event {
    /// Server signaling.
    Signal(Signal),
    /// Send an offer (restarting ICE if set); report to the waiter when its answer is applied.
    Offer { done: Waiter, ice_restart: bool },
}

/// Counters of the client's offer/answer exchanges.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NegotiationStats {
    /// Offers the client sent.
    pub offers_sent: u32,
    /// Server answers applied.
    pub answers_applied: u32,
    /// Server offers answered.
    pub server_offers_answered: u32,
    /// Client offers rolled back because a server offer arrived (glare).
    pub rollbacks: u32,
}

/// The first `a=mid:` of an SDP.
fn first_mid(sdp: &str) -> Option<String> {
    sdp.lines()
        .find_map(|l| l.trim().strip_prefix("a=mid:"))
        .map(str::to_owned)
}

fn fail(waiters: Vec<Waiter>, err: &anyhow::Error) {
    for w in waiters {
        let _ = w.send(Err(anyhow!("{err:#}")));
    }
}

/// The polite side of perfect negotiation, one task per client.
pub(crate) struct Negotiator {
    pc: Arc<dyn PeerConnection>,
    shared: Arc<Shared>,
    state: PoliteNegotiation<Waiter>,
    /// `ref` of the outstanding offer.
    offer_ref: String,
    /// Descriptions sent (offers and answers), for their `ref`s.
    sent: u32,
    have_remote: bool,
    queued_candidates: Vec<RTCIceCandidateInit>,
}

impl Negotiator {
    pub(crate) fn new(pc: Arc<dyn PeerConnection>, shared: Arc<Shared>) -> Self {
        Self {
            pc,
            shared,
            state: PoliteNegotiation::new(),
            offer_ref: String::new(),
            sent: 0,
            have_remote: false,
            queued_candidates: vec![],
        }
    }

    pub(crate) async fn run(mut self, mut rx: mpsc::UnboundedReceiver<Event>) {
        while let Some(event) = rx.recv().await {
            match event {
                Event::Offer { done, ice_restart } => self.state.request(done, ice_restart),
                Event::Signal(Signal::Offer { sdp, tracks }) => {
                    self.on_server_offer(sdp, tracks).await
                }
                Event::Signal(Signal::Answer(sdp)) => self.on_server_answer(sdp).await,
                Event::Signal(Signal::Candidate(c)) => self.on_server_candidate(c).await,
                Event::Signal(Signal::OfferRejected(err)) => self.on_offer_rejected(err).await,
            }
            if let Some(ice_restart) = self.state.next_offer() {
                self.send_offer(ice_restart).await;
            }
        }
    }

    fn error(&self, err: &anyhow::Error) {
        self.shared.sig_error(format!("{err:#}"));
    }

    fn stats(&self, f: impl FnOnce(&mut NegotiationStats)) {
        f(&mut self.shared.sig.lock().expect("sig").stats);
    }

    async fn rollback(&mut self) {
        let rolled_back = async {
            self.pc
                .set_local_description(RTCSessionDescription::rollback(None)?)
                .await
                .context("rolling back the client's offer")
        };
        if let Err(e) = rolled_back.await {
            self.error(&e);
        }
    }

    /// Applies `desc` as the remote description, then any candidates that waited for one.
    async fn apply_remote(
        &mut self,
        desc: Result<RTCSessionDescription>,
        what: &str,
    ) -> Result<()> {
        self.pc
            .set_remote_description(desc?)
            .await
            .with_context(|| format!("applying the {what}"))?;
        self.have_remote = true;
        for init in std::mem::take(&mut self.queued_candidates) {
            self.add_candidate(init).await;
        }
        Ok(())
    }

    /// Applies `desc` as the local description and sends it.
    async fn apply_local(&mut self, desc: RTCSessionDescription, offer: bool) -> Result<()> {
        if let Some(mid) = first_mid(&desc.sdp) {
            *self.shared.first_mid.lock().expect("mid") = mid;
        }
        let sdp = desc.sdp.clone();
        let what = if offer { "offer" } else { "answer" };
        self.pc
            .set_local_description(desc)
            .await
            .with_context(|| format!("applying the local {what}"))?;
        self.sent += 1;
        let reference = format!("{what}-{}", self.sent);
        let msg = if offer {
            self.offer_ref = reference.clone();
            ClientMessage::Offer { sdp }
        } else {
            ClientMessage::Answer { sdp }
        };
        self.shared.socket.send_message(&msg, Some(&reference))
    }

    async fn on_server_offer(&mut self, sdp: String, tracks: BTreeMap<String, String>) {
        if self.state.on_server_offer() {
            // Glare: the server (impolite) ignores our offer; we roll ours back.
            self.rollback().await;
            self.stats(|s| s.rollbacks += 1);
        }
        self.shared.media.offered(tracks.clone());
        let answered = async {
            let sdp = self.shared.config.rewrite(sdp);
            let offer = RTCSessionDescription::offer(sdp).context("parsing the server offer");
            self.apply_remote(offer, "server offer").await?;
            let answer = self.pc.create_answer(None).await.context("create_answer")?;
            self.apply_local(answer, false).await
        };
        match answered.await {
            Ok(()) => {
                self.stats(|s| s.server_offers_answered += 1);
                self.shared.media.answered(tracks);
            }
            Err(e) => self.error(&e),
        }
    }

    async fn on_server_answer(&mut self, sdp: String) {
        if !self.state.on_server_answer() {
            self.shared
                .sig_error("server answer without an outstanding client offer".to_owned());
            return;
        }
        let sdp = self.shared.config.rewrite(sdp);
        let answer = RTCSessionDescription::answer(sdp).context("parsing the server answer");
        match self.apply_remote(answer, "server answer").await {
            Ok(()) => {
                self.stats(|s| s.answers_applied += 1);
                for w in self.state.answer_applied() {
                    let _ = w.send(Ok(()));
                }
            }
            Err(e) => {
                self.error(&e);
                let (inflight, pending) = self.state.answer_failed();
                fail(inflight, &e);
                self.rollback().await;
                fail(pending, &anyhow!("previous offer failed"));
            }
        }
    }

    async fn on_offer_rejected(&mut self, err: ErrorMsg) {
        if !self.state.offer_outstanding()
            || err.reference.as_ref().and_then(|r| r.as_str()) != Some(self.offer_ref.as_str())
        {
            return;
        }
        let refused = self.state.on_offer_rejected().unwrap_or_default();
        fail(
            refused,
            &anyhow::Error::new(err).context("the server rejected the client's offer"),
        );
        self.rollback().await;
    }

    async fn on_server_candidate(&mut self, c: IceCandidate) {
        if c.candidate.is_empty() {
            return; // end-of-candidates
        }
        let init = RTCIceCandidateInit {
            candidate: c.candidate,
            sdp_mid: c.sdp_mid,
            sdp_mline_index: c.sdp_mline_index,
            username_fragment: c.username_fragment,
            ..Default::default()
        };
        if self.have_remote {
            self.add_candidate(init).await;
        } else {
            self.queued_candidates.push(init);
        }
    }

    async fn add_candidate(&self, init: RTCIceCandidateInit) {
        if let Err(e) = self.pc.add_ice_candidate(init).await {
            self.shared.sig_error(format!("add_ice_candidate: {e}"));
        }
    }

    async fn send_offer(&mut self, ice_restart: bool) {
        let sent = async {
            let options = ice_restart.then_some(RTCOfferOptions { ice_restart: true });
            let offer = self
                .pc
                .create_offer(options)
                .await
                .context("create_offer")?;
            self.apply_local(offer, true).await
        };
        match sent.await {
            Ok(()) => {
                self.stats(|s| s.offers_sent += 1);
                self.state.offer_sent();
            }
            Err(e) => {
                self.error(&e);
                fail(self.state.offer_not_sent(), &e);
            }
        }
    }
}
