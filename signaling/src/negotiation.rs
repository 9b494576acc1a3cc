//! Offer/answer bookkeeping of one participant's peer connection, seen from the server.
//!
//! Cascade follows "perfect negotiation" with fixed roles: the **server is impolite** and the
//! **client is polite**. When both offer at once (glare), the server ignores the client's offer
//! and keeps its own; the client rolls its offer back, answers the server, then offers again.
//! The server offers only from the stable state, and coalesces every change that arrives while
//! an offer is outstanding into one follow-up offer.

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

#[cfg(test)]
mod tests {
    use super::*;

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
