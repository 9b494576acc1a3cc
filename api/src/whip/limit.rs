//! The server-wide rate limit of WHIP/WHEP session creation: a token bucket, sans-I/O (the
//! caller passes the time).

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// A token bucket: `rate` tokens per second, holding at most `burst`.
#[derive(Debug)]
pub struct RateLimit {
    rate: f64,
    burst: f64,
    state: Mutex<(f64, Option<Instant>)>,
}

impl RateLimit {
    /// `per_second` creations per second after a burst of twice as many; 0 = unlimited.
    pub fn new(per_second: u32) -> Self {
        let rate = f64::from(per_second);
        Self {
            rate,
            burst: rate * 2.0,
            state: Mutex::new((rate * 2.0, None)),
        }
    }

    /// Takes a token at `now`; when none is left, how long until one is.
    pub fn take(&self, now: Instant) -> Result<(), Duration> {
        if self.rate == 0.0 {
            return Ok(());
        }
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let (tokens, last) = &mut *state;
        if let Some(last) = *last {
            let elapsed = now.saturating_duration_since(last).as_secs_f64();
            *tokens = (*tokens + elapsed * self.rate).min(self.burst);
        }
        *last = Some(now);
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - *tokens) / self.rate))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_then_the_rate() {
        let limit = RateLimit::new(2);
        let t0 = Instant::now();
        for _ in 0..4 {
            assert_eq!(limit.take(t0), Ok(()));
        }
        let wait = limit.take(t0).unwrap_err();
        assert_eq!(wait, Duration::from_millis(500));
        assert!(limit.take(t0 + Duration::from_millis(400)).is_err());
        assert_eq!(limit.take(t0 + Duration::from_millis(500)), Ok(()));
        // Idle time refills up to the burst, no more.
        let later = t0 + Duration::from_secs(60);
        for _ in 0..4 {
            assert_eq!(limit.take(later), Ok(()));
        }
        assert!(limit.take(later).is_err());
    }

    #[test]
    fn zero_is_unlimited() {
        let limit = RateLimit::new(0);
        let t0 = Instant::now();
        assert!((0..10_000).all(|_| limit.take(t0).is_ok()));
    }
}
