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
mod tests {
    use super::*;
    use futures::StreamExt;

    #[tokio::test(start_paused = true)]
    async fn concurrent_callers_are_spaced_at_the_rate() {
        let pacer = Pacer::per_second(5.0);
        let start = Instant::now();
        let times: Vec<Duration> = futures::stream::iter(0..11)
            .map(|_| async {
                pacer.wait().await;
                start.elapsed()
            })
            .buffer_unordered(8)
            .collect()
            .await;
        let mut times = times;
        times.sort();
        assert_eq!(times.first().copied(), Some(Duration::ZERO));
        // 11 calls at 5/s: the last starts 2 s after the first.
        assert_eq!(times.last().copied(), Some(Duration::from_secs(2)));
        for pair in times.windows(2) {
            assert_eq!(pair[1] - pair[0], Duration::from_millis(200));
        }
    }

    #[tokio::test(start_paused = true)]
    async fn tiny_and_odd_rates_neither_panic_nor_stall_forever() {
        for rate in [1e-20, 1e-320, f64::MIN_POSITIVE] {
            let pacer = Pacer::per_second(rate);
            let start = Instant::now();
            pacer.wait().await;
            pacer.wait().await;
            assert_eq!(start.elapsed(), MAX_INTERVAL, "{rate}");
        }
        for rate in [f64::NAN, f64::INFINITY, -3.0] {
            let pacer = Pacer::per_second(rate);
            let start = Instant::now();
            pacer.wait().await;
            pacer.wait().await;
            assert_eq!(start.elapsed(), Duration::ZERO, "{rate}");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn unpaced_never_waits() {
        let pacer = Pacer::per_second(0.0);
        let start = Instant::now();
        for _ in 0..100 {
            pacer.wait().await;
        }
        assert_eq!(start.elapsed(), Duration::ZERO);
    }
}
