//! Pacing for calls that share an account-wide budget. EC2 refills its
//! DeleteSnapshot bucket at 5 requests per second per account and region; a
//! purge that bursts past that starves every other tool in the account (and
//! itself, through throttling). A [`Pacer`] hands out start times at a fixed
//! rate, however many tasks ask at once.

use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use tokio::time::Instant;

const MAX_INTERVAL: Duration = Duration::from_secs(3600);

#[derive(Debug)]
pub struct Pacer {
    interval: Option<Duration>,
    next: Mutex<Option<Instant>>,
}

impl Pacer {
    /// `rate` calls per second; zero, less, or not a number means no
    /// pacing. The interval is capped at an hour, so no rate can overflow
    /// the clock.
    pub fn per_second(rate: f64) -> Self {
        let interval = (rate > 0.0 && rate.is_finite()).then(|| {
            Duration::try_from_secs_f64(1.0 / rate)
                .unwrap_or(MAX_INTERVAL)
                .min(MAX_INTERVAL)
        });
        Pacer {
            interval,
            next: Mutex::new(None),
        }
    }

    /// Waits for this caller's turn.
    pub async fn wait(&self) {
        let Some(interval) = self.interval else {
            return;
        };
        let slot = {
            // The lock is held only for arithmetic that cannot panic, so a
            // poisoned lock still holds a valid instant.
            let mut next = self.next.lock().unwrap_or_else(PoisonError::into_inner);
            let now = Instant::now();
            let slot = next.map_or(now, |n| n.max(now));
            *next = Some(slot + interval);
            slot
        };
        tokio::time::sleep_until(slot).await;
    }
}

#[cfg(test)]
#[path = "tests/pace.rs"]
mod tests;
