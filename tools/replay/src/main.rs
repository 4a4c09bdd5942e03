//! `replay FUNCTION EVENT_FILE`: runs a function's handler in this process
//! on an event file, with the current environment (SPEC "Local use").
//!
//! The handler is built exactly as the Lambda entry point builds it
//! (`shared::function`), and given a context like Lambda's: a fresh request
//! id and a deadline `NINELIVES_REPLAY_TIMEOUT_SECONDS` (default 900) away.
//!
//! stdout: the handler's JSON result, and nothing else. stderr: one line
//! `replay: ...` on failure, plus the JSON log lines when `RUST_LOG` is set
//! (off by default, so a failure is one clear line). Exit status: 0 on
//! success, 1 when the handler (or its configuration) fails, 2 for a usage
//! error, an unknown function or an unreadable or malformed event file, 101
//! for a bug (a panic, still reported on one line).

use std::process::ExitCode;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use lambda_runtime::{Context, LambdaEvent};
use serde_json::Value;
use shared::config::{self, ProcessEnv};
use shared::function::{Function, from_env};

const FUNCTIONS: [&str; 7] = [
    snapshot_volumes::NAME,
    purge_snapshots::NAME,
    lifecycle_hook::NAME,
    redis_failover::NAME,
    mongo_endpoint::NAME,
    replset_tasks::NAME,
    publish_metrics::NAME,
];

const USAGE: &str = "usage: replay FUNCTION EVENT_FILE";

/// A failure and the exit status it maps to.
struct Failure {
    status: u8,
    message: String,
}

fn usage(message: String) -> Failure {
    Failure { status: 2, message }
}

fn main() -> ExitCode {
    // A panic is a bug, but even then the contract holds: one line on
    // stderr (and exit status 101).
    std::panic::set_hook(Box::new(|info| {
        eprintln!(
            "replay: internal error (please report): {}",
            info.to_string().replace('\n', " ")
        );
    }));
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|a| a == "-h" || a == "--help") {
        println!("{USAGE}\n\nFUNCTION is one of: {}", FUNCTIONS.join(", "));
        return ExitCode::SUCCESS;
    }
    match replay(&args) {
        Ok(result) => {
            println!("{result}");
            ExitCode::SUCCESS
        }
        Err(failure) => {
            // One line, whatever the message holds.
            eprintln!("replay: {}", failure.message.replace('\n', " "));
            ExitCode::from(failure.status)
        }
    }
}

fn replay(args: &[String]) -> Result<String, Failure> {
    let [function, path] = args else {
        return Err(usage(format!(
            "expected 2 arguments, got {}; {USAGE}",
            args.len()
        )));
    };
    if !FUNCTIONS.contains(&function.as_str()) {
        return Err(usage(format!(
            "unknown function {function:?}; expected one of: {}",
            FUNCTIONS.join(", ")
        )));
    }
    let text =
        std::fs::read_to_string(path).map_err(|e| usage(format!("cannot read event file {path}: {e}")))?;
    let event: Value = serde_json::from_str(&text)
        .map_err(|e| usage(format!("event file {path} is not valid JSON: {e}")))?;
    let timeout = config::number(&ProcessEnv, "NINELIVES_REPLAY_TIMEOUT_SECONDS", 900u64, 1, 86_400)
        .map_err(|e| usage(e.to_string()))?;

    shared::telemetry::init("off");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Failure {
            status: 1,
            message: format!("cannot start the async runtime: {e}"),
        })?;
    let result = runtime.block_on(async {
        match function.as_str() {
            snapshot_volumes::NAME => invoke::<snapshot_volumes::SnapshotVolumes>(event, timeout).await,
            purge_snapshots::NAME => invoke::<purge_snapshots::PurgeSnapshots>(event, timeout).await,
            lifecycle_hook::NAME => invoke::<lifecycle_hook::LifecycleHook>(event, timeout).await,
            redis_failover::NAME => invoke::<redis_failover::RedisFailover>(event, timeout).await,
            mongo_endpoint::NAME => invoke::<mongo_endpoint::MongoEndpoint>(event, timeout).await,
            replset_tasks::NAME => invoke::<replset_tasks::ReplsetTasks>(event, timeout).await,
            publish_metrics::NAME => invoke::<publish_metrics::PublishMetrics>(event, timeout).await,
            other => Err(usage(format!("unknown function {other:?}"))),
        }
    })?;
    serde_json::to_string_pretty(&result).map_err(|e| Failure {
        status: 1,
        message: format!("{function} returned a result that cannot be printed: {e}"),
    })
}

async fn invoke<F: Function>(payload: Value, timeout_secs: u64) -> Result<Value, Failure> {
    let handler = from_env::<F>(&ProcessEnv).await.map_err(|e| Failure {
        status: 1,
        message: format!("{} cannot start [{}]: {e}", F::NAME, e.error_type()),
    })?;
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO);
    let mut context = Context::default();
    context.request_id = format!("replay-{:x}-{}", now.as_nanos(), std::process::id());
    context.deadline = (now + Duration::from_secs(timeout_secs)).as_millis() as u64;
    context.invoked_function_arn = format!("arn:aws:lambda:local:000000000000:function:{}", F::NAME);
    handler
        .handle(LambdaEvent::new(payload, context))
        .await
        .map_err(|e| Failure {
            status: 1,
            message: format!("{} failed [{}]: {e}", F::NAME, e.error_type()),
        })
}
