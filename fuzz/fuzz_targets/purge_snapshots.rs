//! purge-snapshots: any event bytes through the envelope to
//! `parse_dry_run`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    for payload in ninelives_fuzz::payloads(data) {
        ninelives_fuzz::shown(&purge_snapshots::parse_dry_run(&payload));
    }
});
