//! The `replay` command line as SPEC "Local use" defines it: JSON result on
//! stdout and exit 0, or one clear line on stderr and a non-zero exit.

use std::path::PathBuf;
use std::process::{Command, Output};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn replay(args: &[&str], envs: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_replay"));
    cmd.current_dir(root()).args(args).env_remove("RUST_LOG");
    for (k, v) in envs {
        cmd.env(k, v);
    }
    cmd.output().expect("replay runs")
}

/// The JSON result of a run that must have succeeded (exit 0).
fn success(out: &Output) -> serde_json::Value {
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("stdout is JSON")
}

/// A file holding `contents`, in a folder of this test process; removed
/// with the folder by the caller.
fn event_file(folder: &str, name: &str, contents: &str) -> (PathBuf, PathBuf) {
    let dir = std::env::temp_dir().join(format!("replay-cli-{folder}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join(name);
    std::fs::write(&file, contents).unwrap();
    (dir, file)
}

fn stderr_line(out: &Output) -> String {
    let text = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(text.lines().count(), 1, "exactly one line on stderr: {text:?}");
    assert!(out.stdout.is_empty(), "nothing on stdout on failure");
    text
}

#[test]
fn usage_errors_exit_2_with_one_line() {
    let cases: [(&[&str], &str); 5] = [
        (&[], "expected 2 arguments, got 0"),
        (&["snapshot-volumes"], "expected 2 arguments, got 1"),
        (
            &["backup-everything", "x.json"],
            "unknown function \"backup-everything\"; expected one of: snapshot-volumes",
        ),
        (
            &["purge-snapshots", "events-fixtures/none.json"],
            "cannot read event file events-fixtures/none.json",
        ),
        (
            &["purge-snapshots", "events-fixtures/README.md"],
            "event file events-fixtures/README.md is not valid JSON",
        ),
    ];
    for (args, needle) in cases {
        let out = replay(args, &[]);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let line = stderr_line(&out);
        assert!(
            line.starts_with("replay: ") && line.contains(needle),
            "{args:?}: {line}"
        );
    }
}

#[test]
fn mongo_endpoint_needs_its_hosted_zone() {
    let out = replay(
        &["mongo-endpoint", "events-fixtures/mongo-endpoint/scheduled.json"],
        &[("AWS_REGION", "us-east-1")],
    );
    assert_eq!(out.status.code(), Some(1));
    let line = stderr_line(&out);
    assert!(line.contains("HOSTED_ZONE_ID"), "{line}");
}

#[test]
fn replset_tasks_refuses_what_is_not_a_task() {
    let out = replay(
        &["replset-tasks", "events-fixtures/mongo-endpoint/scheduled.json"],
        &[("AWS_REGION", "us-east-1")],
    );
    assert_eq!(out.status.code(), Some(1));
    let line = stderr_line(&out);
    assert!(
        line.contains("[NonRetryable.InvalidEvent]") && line.contains("not a replica-set task"),
        "{line}"
    );
}

#[test]
fn redis_failover_needs_its_hosted_zone() {
    let out = replay(
        &[
            "redis-failover",
            "events-fixtures/redis-failover/alarm-direct.json",
        ],
        &[("AWS_REGION", "us-east-1")],
    );
    assert_eq!(out.status.code(), Some(1));
    let line = stderr_line(&out);
    assert!(line.contains("HOSTED_ZONE_ID"), "{line}");
}

#[test]
fn configuration_errors_name_the_variable() {
    let out = replay(
        &[
            "snapshot-volumes",
            "events-fixtures/snapshot-volumes/scheduled-daily.json",
        ],
        &[("RETENTION_MONTHLY", "forever"), ("AWS_REGION", "us-east-1")],
    );
    assert_eq!(out.status.code(), Some(1));
    let line = stderr_line(&out);
    assert!(line.contains("[NonRetryable.InvalidConfiguration]"), "{line}");
    assert!(line.contains("RETENTION_MONTHLY=\"forever\""), "{line}");

    let out = replay(
        &[
            "purge-snapshots",
            "events-fixtures/purge-snapshots/scheduled.json",
        ],
        &[("NINELIVES_REPLAY_TIMEOUT_SECONDS", "0")],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr_line(&out).contains("NINELIVES_REPLAY_TIMEOUT_SECONDS"));
}

#[test]
fn a_bad_event_is_a_handler_error() {
    let (dir, file) = event_file("tier", "bad-tier.json", r#"{"tier": "fortnightly"}"#);
    let out = replay(
        &["snapshot-volumes", file.to_str().unwrap()],
        &[("AWS_REGION", "us-east-1")],
    );
    assert_eq!(out.status.code(), Some(1));
    let line = stderr_line(&out);
    assert!(
        line.contains("[NonRetryable.InvalidEvent]: unknown tier \"fortnightly\""),
        "{line}"
    );
    std::fs::remove_dir_all(dir).ok();
}

#[test]
fn publish_metrics_takes_nothing_but_a_dry_run_switch() {
    let (dir, file) = event_file("pm", "clusters.json", r#"{"clusters": ["kate.example.com"]}"#);
    let out = replay(
        &["publish-metrics", file.to_str().unwrap()],
        &[("AWS_REGION", "us-east-1")],
    );
    assert_eq!(out.status.code(), Some(1));
    let line = stderr_line(&out);
    assert!(
        line.contains("[NonRetryable.InvalidEvent]") && line.contains("publish-metrics input"),
        "{line}"
    );
    std::fs::remove_dir_all(dir).ok();
}

/// Needs the local AWS (scripts/test.sh starts it).
#[test]
fn a_dry_run_prints_the_json_result() {
    let endpoint = std::env::var("AWS_ENDPOINT_URL").unwrap_or_default();
    assert!(
        endpoint.starts_with("http://127."),
        "needs the local AWS: run scripts/test.sh"
    );
    let out = replay(
        &[
            "snapshot-volumes",
            "events-fixtures/snapshot-volumes/constant-input-dry-run.json",
        ],
        &[("AWS_REGION", "ca-central-1")],
    );
    let result = success(&out);
    assert!(out.stderr.is_empty(), "logging is off by default");
    assert_eq!(result["function"], "snapshot-volumes");
    assert_eq!(result["tier"], "weekly");
    assert_eq!(result["dry_run"], true);

    // RUST_LOG turns the JSON log lines on, still on stderr.
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_replay"));
    let out = cmd
        .current_dir(root())
        .args([
            "purge-snapshots",
            "events-fixtures/purge-snapshots/direct-dry-run.json",
        ])
        .env("AWS_REGION", "ca-central-1")
        .env("RUST_LOG", "info")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let result: serde_json::Value = serde_json::from_slice(&out.stdout).expect("stdout stays pure JSON");
    assert_eq!(result["function"], "purge-snapshots");
    let logs = String::from_utf8_lossy(&out.stderr);
    let first: serde_json::Value = serde_json::from_str(logs.lines().next().unwrap()).expect("JSON log line");
    assert_eq!(first["level"], "INFO");
    assert_eq!(first["function"], "purge-snapshots");
}

/// Needs the local AWS for the dry run (scripts/test.sh starts it).
#[test]
fn lifecycle_hook_ignores_test_notifications_and_dry_runs_an_action() {
    let out = replay(
        &[
            "lifecycle-hook",
            "events-fixtures/lifecycle-hook/sqs-test-notification.json",
        ],
        &[("AWS_REGION", "us-east-1")],
    );
    let result = success(&out);
    assert_eq!(result, serde_json::json!({"batchItemFailures": []}));

    // The fixture's instance does not exist here; an old event for it is
    // abandoned, which a dry run reports without calling Auto Scaling.
    let mut event: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(root().join("events-fixtures/lifecycle-hook/eventbridge-launch.json"))
            .unwrap(),
    )
    .unwrap();
    event["time"] = serde_json::json!("2026-01-01T00:00:00Z");
    let (dir, file) = event_file("lh", "old-launch.json", &event.to_string());
    let out = replay(
        &["lifecycle-hook", file.to_str().unwrap()],
        &[("AWS_REGION", "ca-central-1"), ("DRY_RUN", "true")],
    );
    std::fs::remove_dir_all(&dir).ok();
    let result = success(&out);
    assert_eq!(result["status"], "dry-run");
    assert_eq!(result["result"], "ABANDON");
    assert_eq!(result["error_type"], "NonRetryable.InvalidResource");
    assert!(
        result["error"]
            .as_str()
            .unwrap()
            .contains("instance i-1234567890abcdef0"),
        "{result}"
    );
}

/// Needs the local AWS (scripts/test.sh starts it); no node is tagged in
/// this region, so the run reads none and would send nothing.
#[test]
fn publish_metrics_dry_run_prints_its_summary() {
    let out = replay(
        &[
            "publish-metrics",
            "events-fixtures/publish-metrics/direct-dry-run.json",
        ],
        &[("AWS_REGION", "ca-central-1")],
    );
    let result = success(&out);
    assert_eq!(result["function"], "publish-metrics");
    assert_eq!(result["dry_run"], true);
    assert_eq!(result["calls"], 0, "{result}");
    assert_eq!(result["down"], serde_json::json!([]), "{result}");
}
