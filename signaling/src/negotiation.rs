//! Offer/answer bookkeeping of one participant's peer connection, seen from the server.
//!
//! Cascade follows "perfect negotiation" with fixed roles: the **server is impolite** and the
//! **client is polite**. When both offer at once (glare), the server ignores the client's offer
//! and keeps its own; the client rolls its offer back, answers the server, then offers again.
//! The server offers only from the stable state, and coalesces every change that arrives while
//! an offer is outstanding into one follow-up offer.
//!
//! [`Negotiation`] is the server's (impolite) side; [`PoliteNegotiation`] is the client's
//! (polite) side, as the Rust test kit drives it.

/// What the session should do with an incoming client offer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OfferAction {
    /// Apply the offer and answer it.
    Answer,
    /// Glare: the server's own offer is outstanding; ignore the client's offer.
    IgnoreGlare,
}

/// Server-side negotiation state of one peer connection.
#[derive(Debug, Default, Clone)]
pub struct Negotiation {
    offer_outstanding: bool,
    needed: bool,
}

impl Negotiation {
    /// A fresh, stable negotiation.
    pub fn new() -> Self {
        Self::default()
    }

    /// Records that the server's set of sent tracks changed and a server offer is needed.
    pub fn mark_needed(&mut self) {
        self.needed = true;
    }

    /// Whether the server should create and send an offer now. If so, the caller must send it
    /// and then call [`Negotiation::offer_sent`].
    pub fn should_offer(&self) -> bool {
        self.needed && !self.offer_outstanding
    }

    /// Records that a server offer was sent.
    pub fn offer_sent(&mut self) {
        self.needed = false;
        self.offer_outstanding = true;
    }

    /// Whether a server offer awaits its answer.
    pub fn offer_outstanding(&self) -> bool {
        self.offer_outstanding
    }

    /// Decides what to do with a client offer.
    pub fn on_client_offer(&self) -> OfferAction {
        if self.offer_outstanding {
            OfferAction::IgnoreGlare
        } else {
            OfferAction::Answer
        }
    }

    /// Records a client answer; returns false (and changes nothing) if no offer was outstanding.
    pub fn on_client_answer(&mut self) -> bool {
        std::mem::replace(&mut self.offer_outstanding, false)
    }

    /// Forgets an outstanding offer that could not be completed (e.g. the answer was invalid
    /// and the offer was rolled back); the change is offered again.
    pub fn offer_failed(&mut self) {
        if self.offer_outstanding {
            self.offer_outstanding = false;
            self.needed = true;
        }
    }
}

/// Client-side (polite) negotiation state of one peer connection, with the waiters of the
/// offers it owes: `W` is whatever the caller resolves once an offer's answer is applied
/// (a channel, a callback).
///
/// Requests made while an offer is outstanding are coalesced into one follow-up offer. A server
/// offer arriving while the client's offer is outstanding (glare) withdraws the client's offer:
/// the caller rolls it back, answers the server, and the withdrawn offer's waiters ride on the
/// next offer.
#[derive(Debug)]
pub struct PoliteNegotiation<W> {
    outstanding: bool,
    want_offer: bool,
    ice_restart: bool,
    /// Waiters not yet covered by a sent offer.
    pending: Vec<W>,
    /// Waiters covered by the outstanding offer.
    inflight: Vec<W>,
}

impl<W> Default for PoliteNegotiation<W> {
    fn default() -> Self {
        Self {
            outstanding: false,
            want_offer: false,
            ice_restart: false,
            pending: Vec::new(),
            inflight: Vec::new(),
        }
    }
}

impl<W> PoliteNegotiation<W> {
    /// A fresh, stable negotiation.
    pub fn new() -> Self {
        Self::default()
    }

    /// Asks for an offer (one with new ICE credentials if `ice_restart`); `waiter` is handed
    /// back once that offer's answer is applied or it fails.
    pub fn request(&mut self, waiter: W, ice_restart: bool) {
        self.pending.push(waiter);
        self.want_offer = true;
        self.ice_restart |= ice_restart;
    }

    /// Whether the client's offer awaits the server's answer.
    pub fn offer_outstanding(&self) -> bool {
        self.outstanding
    }

    /// If an offer should be created now, returns whether it restarts ICE; the caller must then
    /// report [`PoliteNegotiation::offer_sent`] or [`PoliteNegotiation::offer_not_sent`].
    pub fn next_offer(&mut self) -> Option<bool> {
        if !self.want_offer || self.outstanding {
            return None;
        }
        self.want_offer = false;
        Some(std::mem::take(&mut self.ice_restart))
    }

    /// Records that the offer was sent: the pending waiters now wait for its answer.
    pub fn offer_sent(&mut self) {
        self.outstanding = true;
        self.inflight.append(&mut self.pending);
    }

    /// The offer could not be created or sent: returns the waiters to fail.
    pub fn offer_not_sent(&mut self) -> Vec<W> {
        std::mem::take(&mut self.pending)
    }

    /// A server offer arrived. Returns true on glare: the client's outstanding offer is
    /// withdrawn (the caller rolls it back) and offered again later.
    pub fn on_server_offer(&mut self) -> bool {
        if !self.outstanding {
            return false;
        }
        self.withdraw();
        true
    }

    /// A server answer arrived. Returns false (and changes nothing) if no offer was
    /// outstanding; otherwise the caller applies it and reports
    /// [`PoliteNegotiation::answer_applied`] or [`PoliteNegotiation::answer_failed`].
    pub fn on_server_answer(&mut self) -> bool {
        std::mem::replace(&mut self.outstanding, false)
    }

    /// The answer was applied: returns the waiters to resolve.
    pub fn answer_applied(&mut self) -> Vec<W> {
        std::mem::take(&mut self.inflight)
    }

    /// The answer could not be applied (the caller rolls the offer back): returns the waiters
    /// of that offer and those that arrived after it, to fail; nothing is offered again.
    pub fn answer_failed(&mut self) -> (Vec<W>, Vec<W>) {
        self.want_offer = false;
        (
            std::mem::take(&mut self.inflight),
            std::mem::take(&mut self.pending),
        )
    }

    /// The server refused the outstanding offer with an `error`. Returns `None` if no offer
    /// was outstanding; otherwise the offer's waiters, to fail (the caller rolls it back).
    /// Only waiters that arrived after the refused offer get a new one.
    pub fn on_offer_rejected(&mut self) -> Option<Vec<W>> {
        if !self.outstanding {
            return None;
        }
        let refused = std::mem::take(&mut self.inflight);
        self.withdraw();
        self.want_offer = !self.pending.is_empty();
        Some(refused)
    }

    /// Withdraws the outstanding offer; its waiters wait for the next one.
    fn withdraw(&mut self) {
        self.outstanding = false;
        self.want_offer = true;
        let mut waiters = std::mem::take(&mut self.inflight);
        waiters.append(&mut self.pending);
        self.pending = waiters;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn polite_requests_coalesce_and_resolve_on_the_answer() {
        let mut p = PoliteNegotiation::new();
        assert_eq!(p.next_offer(), None);
        p.request(1, false);
        assert_eq!(p.next_offer(), Some(false));
        p.offer_sent();
        p.request(2, false);
        p.request(3, true);
        assert_eq!(
            p.next_offer(),
            None,
            "no second offer while one is outstanding"
        );
        assert!(p.on_server_answer());
        assert_eq!(p.answer_applied(), vec![1]);
        assert_eq!(p.next_offer(), Some(true), "one follow-up, restarting ICE");
        p.offer_sent();
        assert!(p.on_server_answer());
        assert_eq!(p.answer_applied(), vec![2, 3]);
        assert!(!p.on_server_answer(), "stray answer");
    }

    #[test]
    fn polite_side_yields_on_glare_and_offers_again() {
        let mut p = PoliteNegotiation::new();
        assert!(!p.on_server_offer(), "no glare when stable");
        p.request(1, false);
        assert_eq!(p.next_offer(), Some(false));
        p.offer_sent();
        p.request(2, false);
        assert!(p.on_server_offer(), "glare: roll back");
        assert!(!p.offer_outstanding());
        assert_eq!(p.next_offer(), Some(false));
        p.offer_sent();
        assert!(p.on_server_answer());
        assert_eq!(p.answer_applied(), vec![1, 2]);
    }

    #[test]
    fn polite_refusals_and_failures_fail_their_waiters() {
        let mut p = PoliteNegotiation::new();
        assert_eq!(p.on_offer_rejected(), None);
        p.request(1, false);
        p.next_offer();
        p.offer_sent();
        p.request(2, false);
        assert_eq!(p.on_offer_rejected(), Some(vec![1]));
        assert_eq!(
            p.next_offer(),
            Some(false),
            "the later waiter gets a new offer"
        );
        p.offer_sent();
        p.request(3, false);
        assert!(p.on_server_answer());
        assert_eq!(p.answer_failed(), (vec![2], vec![3]));
        assert_eq!(p.next_offer(), None);
        p.request(4, false);
        assert_eq!(p.next_offer(), Some(false));
        assert_eq!(p.offer_not_sent(), vec![4]);
    }

    #[test]
    fn changes_while_offer_outstanding_coalesce_into_one_follow_up() {
        let mut n = Negotiation::new();
        assert!(!n.should_offer());
        n.mark_needed();
        assert!(n.should_offer());
        n.offer_sent();
        n.mark_needed();
        n.mark_needed();
        assert!(
            !n.should_offer(),
            "no second offer while one is outstanding"
        );
        assert!(n.on_client_answer());
        assert!(n.should_offer());
        n.offer_sent();
        assert!(n.on_client_answer());
        assert!(!n.should_offer());
    }

    #[test]
    fn glare_is_won_by_the_server() {
        let mut n = Negotiation::new();
        assert_eq!(n.on_client_offer(), OfferAction::Answer);
        n.mark_needed();
        n.offer_sent();
        assert_eq!(n.on_client_offer(), OfferAction::IgnoreGlare);
    }

    #[test]
    fn stray_answer_is_refused() {
        let mut n = Negotiation::new();
        assert!(!n.on_client_answer());
    }

    #[test]
    fn failed_offer_is_retried() {
        let mut n = Negotiation::new();
        n.mark_needed();
        n.offer_sent();
        n.offer_failed();
        assert!(n.should_offer());
    }
}
