//! lifecycle-hook: any event bytes through the envelope to the lifecycle
//! action reader (`shared::lifecycle::action::parse`); an action it
//! accepts is also asked the warm-pool question the handler asks.
#![no_main]

use libfuzzer_sys::fuzz_target;
use shared::lifecycle::action::{Request, parse};

fuzz_target!(|data: &[u8]| {
    for payload in ninelives_fuzz::payloads(data) {
        let request = parse(&payload);
        ninelives_fuzz::shown(&request);
        if let Ok(Request::Action(action)) = request {
            let _ = (action.is_warm_pool_only(), action.transition.to_string());
        }
    }
});
