//! What every fuzz target shares: the bytes Lambda would hand a function,
//! read as JSON and opened the way `shared::invocation::dispatch` opens
//! them, so each target reaches its function's own parse step with every
//! payload the event carries (one, or one per SQS message).
//!
//! A panic anywhere below is the finding: the parsers must answer every
//! input with a value or an error. Nothing here touches AWS or the network.

use serde_json::Value;
use shared::envelope::{self, Envelope, Payload};

/// Every payload in `data` that a handler would get to parse; none when
/// the bytes are not JSON or the envelope is refused (both errors are the
/// right answer, and the error text is formatted to exercise it).
pub fn payloads(data: &[u8]) -> Vec<Payload> {
    let Ok(value) = serde_json::from_slice::<Value>(data) else {
        return Vec::new();
    };
    match envelope::open(value) {
        Ok(Envelope::Single(delivery)) => {
            let _ = delivery.route();
            vec![delivery.payload]
        }
        Ok(Envelope::Sqs(items)) => items
            .into_iter()
            .filter_map(|item| match item.delivery {
                Ok(delivery) => Some(delivery.payload),
                Err(err) => {
                    let _ = err.to_string();
                    None
                }
            })
            .collect(),
        Err(err) => {
            let _ = err.to_string();
            Vec::new()
        }
    }
}

/// Formats an error's message as the handler would log and return it.
pub fn shown<T, E: std::fmt::Display>(result: &Result<T, E>) {
    if let Err(err) = result {
        let _ = err.to_string();
    }
}
