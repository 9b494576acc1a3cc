//! Caps on the ICE candidates a client trickles: per ICE generation and per session. Sans-I/O.
//!
//! Every candidate line counts (whether it then parses or not); the empty end-of-candidates
//! marker does not. A generation is one remote ICE username fragment: an offer with a new
//! `a=ice-ufrag` (an ICE restart) starts a new generation, the session total keeps counting.

use crate::error::MediaError;

/// Most candidates accepted in one ICE generation.
pub const MAX_PER_GENERATION: u32 = 64;
/// Most candidates accepted over a session's lifetime (all generations).
pub const MAX_PER_SESSION: u32 = 256;

/// How many candidates a peer has accepted, in its current generation and in all.
#[derive(Debug, Default)]
pub struct CandidateBudget {
    ufrag: Option<String>,
    generation: u32,
    total: u32,
}

impl CandidateBudget {
    /// A remote description was applied: a new ICE username fragment starts a new generation.
    pub fn on_remote_ufrag(&mut self, ufrag: Option<&str>) {
        if let Some(u) = ufrag
            && self.ufrag.as_deref() != Some(u)
        {
            self.ufrag = Some(u.to_owned());
            self.generation = 0;
        }
    }

    /// Counts one candidate, or refuses it with [`MediaError::TooManyCandidates`] past a cap.
    pub fn take(&mut self) -> Result<(), MediaError> {
        if self.total >= MAX_PER_SESSION {
            return Err(MediaError::TooManyCandidates(format!(
                "at most {MAX_PER_SESSION} candidates per session"
            )));
        }
        if self.generation >= MAX_PER_GENERATION {
            return Err(MediaError::TooManyCandidates(format!(
                "at most {MAX_PER_GENERATION} candidates per ICE generation; restart ICE for more"
            )));
        }
        self.generation += 1;
        self.total += 1;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn take_n(b: &mut CandidateBudget, n: u32) -> u32 {
        (0..n).filter(|_| b.take().is_ok()).count() as u32
    }

    #[test]
    fn caps_each_generation_and_the_session() {
        let mut b = CandidateBudget::default();
        b.on_remote_ufrag(Some("a"));
        assert_eq!(take_n(&mut b, 100), MAX_PER_GENERATION);
        assert!(matches!(b.take(), Err(MediaError::TooManyCandidates(_))));
        // The same ufrag again (a renegotiation, no restart) does not refill.
        b.on_remote_ufrag(Some("a"));
        assert_eq!(take_n(&mut b, 1), 0);
        // Each ICE restart refills the generation until the session total is reached.
        let mut accepted = MAX_PER_GENERATION;
        for g in 0..10 {
            b.on_remote_ufrag(Some(&format!("r{g}")));
            accepted += take_n(&mut b, 100);
        }
        assert_eq!(accepted, MAX_PER_SESSION);
        b.on_remote_ufrag(Some("last"));
        let err = b.take().unwrap_err();
        assert!(err.to_string().contains("per session"), "{err}");
    }

    #[test]
    fn a_description_without_ufrag_keeps_the_generation() {
        let mut b = CandidateBudget::default();
        b.on_remote_ufrag(Some("a"));
        assert_eq!(take_n(&mut b, 10), 10);
        b.on_remote_ufrag(None);
        assert_eq!(take_n(&mut b, 100), MAX_PER_GENERATION - 10);
    }
}
