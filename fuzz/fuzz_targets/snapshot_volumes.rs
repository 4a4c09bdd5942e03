//! snapshot-volumes: any event bytes through the envelope to
//! `parse_request` (tier, time, dry run), with a fixed clock.
#![no_main]

use chrono::{TimeZone, Utc};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let now = Utc
        .with_ymd_and_hms(2026, 11, 25, 12, 0, 0)
        .single()
        .expect("a valid time");
    for payload in ninelives_fuzz::payloads(data) {
        ninelives_fuzz::shown(&snapshot_volumes::parse_request(&payload, now));
    }
});
