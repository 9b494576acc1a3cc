//! Small helpers of the kit: waiting on a change signal, random numbers.

use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use anyhow::{Result, bail};
use tokio::sync::watch;

/// Waits until `check` returns `Some`, re-checking whenever `changed` is bumped.
pub(crate) async fn wait_for<T, W>(
    changed: &watch::Sender<W>,
    timeout: Duration,
    what: impl Fn() -> String,
    mut check: impl FnMut() -> Result<Option<T>>,
) -> Result<T> {
    let mut rx = changed.subscribe();
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        rx.borrow_and_update();
        if let Some(v) = check()? {
            return Ok(v);
        }
        match tokio::time::timeout_at(deadline, rx.changed()).await {
            Ok(Ok(())) => {}
            Ok(Err(_)) => bail!("{}: client dropped", what()),
            Err(_) => bail!("timed out after {timeout:?} waiting for {}", what()),
        }
    }
}

/// A pseudo-random `u32` (std only: hashes the time with a randomly keyed hasher).
pub fn random_u32() -> u32 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default(),
    );
    h.finish() as u32
}

/// A value behind a mutex, with a change signal that wakes waiters on every update.
#[derive(Debug)]
pub struct Watched<T> {
    value: Mutex<T>,
    changed: watch::Sender<u64>,
}

impl<T: Default> Default for Watched<T> {
    fn default() -> Self {
        Self {
            value: Mutex::default(),
            changed: watch::channel(0).0,
        }
    }
}

impl<T> Watched<T> {
    /// The value, locked (changes made through this guard wake nobody).
    pub fn lock(&self) -> MutexGuard<'_, T> {
        self.value.lock().expect("watched value")
    }

    /// Changes the value and wakes the waiters.
    pub fn update<R>(&self, f: impl FnOnce(&mut T) -> R) -> R {
        let out = f(&mut self.lock());
        self.changed.send_modify(|g| *g += 1);
        out
    }

    /// Waits until `check` finds what it looks for in the value (re-checked on every update);
    /// `what` describes it for the timeout error.
    pub async fn wait<R>(
        &self,
        timeout: Duration,
        what: impl Fn(&T) -> String,
        mut check: impl FnMut(&mut T) -> Result<Option<R>>,
    ) -> Result<R> {
        let what = || what(&self.lock());
        wait_for(&self.changed, timeout, what, || check(&mut self.lock())).await
    }
}
