//! publish-metrics: any event bytes through the envelope to its input
//! reader (`dry_run_input`, as the handler calls it).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    for payload in ninelives_fuzz::payloads(data) {
        ninelives_fuzz::shown(&shared::envelope::dry_run_input(
            &payload,
            "publish-metrics input",
        ));
    }
});
