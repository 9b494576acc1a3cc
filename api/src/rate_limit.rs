//! Token-bucket rate limits, sans-I/O (the caller passes the time): WHIP/WHEP session creation
//! server-wide, and the messages and `data` bytes of one WebSocket session.

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// A token bucket: `rate` tokens per second, holding at most `burst`; a rate of 0 is unlimited.
#[derive(Debug)]
pub struct RateLimit {
    rate: f64,
    burst: f64,
    state: Mutex<(f64, Option<Instant>)>,
}

impl RateLimit {
    /// `per_second` tokens per second after a burst of twice as many; 0 = unlimited.
    pub fn new(per_second: u32) -> Self {
        Self::with_burst(f64::from(per_second), f64::from(per_second) * 2.0)
    }

    /// `rate` tokens per second, at most `burst` at once (starts full); a rate of 0 = unlimited.
    pub fn with_burst(rate: f64, burst: f64) -> Self {
        Self {
            rate,
            burst,
            state: Mutex::new((burst, None)),
        }
    }

    /// Takes a token at `now`; when none is left, how long until one is.
    pub fn take(&self, now: Instant) -> Result<(), Duration> {
        self.take_n(now, 1.0)
    }

    /// Takes `n` tokens at `now` (all or none); when too few are left, how long until there
    /// are enough. A cost above the burst is charged as the whole burst, so it passes once the
    /// bucket is full.
    pub fn take_n(&self, now: Instant, n: f64) -> Result<(), Duration> {
        if self.rate == 0.0 {
            return Ok(());
        }
        let n = n.min(self.burst);
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let (tokens, last) = &mut *state;
        if let Some(last) = *last {
            let elapsed = now.saturating_duration_since(last).as_secs_f64();
            *tokens = (*tokens + elapsed * self.rate).min(self.burst);
        }
        *last = Some(now);
        if *tokens >= n {
            *tokens -= n;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((n - *tokens) / self.rate))
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
    fn costs_are_taken_whole_and_capped_at_the_burst() {
        let limit = RateLimit::with_burst(1000.0, 4000.0);
        let t0 = Instant::now();
        assert_eq!(limit.take_n(t0, 3000.0), Ok(()));
        // 1000 left: a cost of 1500 waits for 500 more, and takes nothing meanwhile.
        assert_eq!(limit.take_n(t0, 1500.0), Err(Duration::from_millis(500)));
        assert_eq!(limit.take_n(t0, 1000.0), Ok(()));
        // More than the burst passes once the bucket is full again (4 s later), not before.
        assert!(limit.take_n(t0 + Duration::from_secs(3), 10_000.0).is_err());
        assert_eq!(limit.take_n(t0 + Duration::from_secs(4), 10_000.0), Ok(()));
    }

    #[test]
    fn zero_is_unlimited() {
        let limit = RateLimit::new(0);
        let t0 = Instant::now();
        assert!((0..10_000).all(|_| limit.take(t0).is_ok()));
    }
}
