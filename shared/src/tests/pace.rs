//! Unit tests of `pace`.

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
