//! Structured JSON logging. One JSON object per line on stderr: Lambda sends
//! both streams to CloudWatch Logs, and keeping stdout free lets `replay`
//! print nothing but the handler's result there.
//!
//! The level comes from `RUST_LOG` (full `tracing` directives) or Lambda's own
//! `AWS_LAMBDA_LOG_LEVEL`; without either, `default_level` applies.

use tracing_subscriber::EnvFilter;

/// Installs the global subscriber. Calling it twice is harmless (the second
/// call is ignored), so tests and tools can call it freely.
pub fn init(default_level: &str) {
    let directives = std::env::var("RUST_LOG")
        .ok()
        .filter(|v| !v.trim().is_empty())
        .or_else(|| {
            std::env::var("AWS_LAMBDA_LOG_LEVEL")
                .ok()
                .map(|v| v.to_ascii_lowercase())
        })
        .unwrap_or_else(|| default_level.to_owned());
    let filter = EnvFilter::try_new(&directives).unwrap_or_else(|_| EnvFilter::new(default_level));
    let _ = tracing_subscriber::fmt()
        .json()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .with_target(false)
        .with_current_span(false)
        .flatten_event(true)
        .try_init();
}
