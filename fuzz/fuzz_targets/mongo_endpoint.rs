//! mongo-endpoint: any event bytes through the envelope to the trigger reader
//! (`shared::alarm::parse`: alarm actions, EventBridge alarm and schedule
//! events, SNS alarm messages, direct input). The seeds are mongo-endpoint's own.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    for payload in ninelives_fuzz::payloads(data) {
        let trigger = shared::alarm::parse(&payload);
        ninelives_fuzz::shown(&trigger);
        if let Ok(trigger) = trigger {
            let _ = serde_json::to_string(&trigger);
        }
    }
});
