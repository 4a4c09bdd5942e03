//! Every fixture in `events-fixtures/` parses the way its function reads it,
//! and the README beside them notes the source of each one.

use std::path::Path;

use chrono::Utc;
use ninelives_tests::root;
use serde_json::Value;
use shared::envelope::{self, Delivery, Envelope, Payload};

/// Every delivery the fixture holds (one, or one per SQS message).
fn deliveries(path: &Path) -> Vec<Delivery> {
    let text = std::fs::read_to_string(path).unwrap();
    let value: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    match envelope::open(value).unwrap_or_else(|e| panic!("{}: {e}", path.display())) {
        Envelope::Single(d) => vec![*d],
        Envelope::Sqs(items) => items
            .into_iter()
            .map(|i| i.delivery.unwrap_or_else(|e| panic!("{}: {e}", path.display())))
            .collect(),
    }
}

#[test]
fn every_fixture_parses_for_its_function() {
    let dir = root().join("events-fixtures");
    let readme = std::fs::read_to_string(dir.join("README.md")).expect("events-fixtures/README.md");
    let mut seen = 0;
    for function in std::fs::read_dir(&dir).unwrap() {
        let function = function.unwrap().path();
        if !function.is_dir() {
            continue;
        }
        let name = function.file_name().unwrap().to_string_lossy().into_owned();
        assert!(
            root().join("functions").join(&name).is_dir(),
            "events-fixtures/{name} names no function"
        );
        for file in std::fs::read_dir(&function).unwrap() {
            let path = file.unwrap().path();
            let rel = format!("{name}/{}", path.file_name().unwrap().to_string_lossy());
            assert!(
                readme.contains(&rel),
                "README.md does not note the source of {rel}"
            );
            for delivery in deliveries(&path) {
                match name.as_str() {
                    "snapshot-volumes" => {
                        snapshot_volumes::parse_request(&delivery.payload, Utc::now())
                            .unwrap_or_else(|e| panic!("{rel}: {e}"));
                    }
                    "purge-snapshots" => {
                        purge_snapshots::parse_dry_run(&delivery.payload)
                            .unwrap_or_else(|e| panic!("{rel}: {e}"));
                    }
                    "lifecycle-hook" => {
                        use shared::lifecycle::action::{Request, parse};
                        let request = parse(&delivery.payload).unwrap_or_else(|e| panic!("{rel}: {e}"));
                        let ignored = matches!(request, Request::Ignore(_));
                        assert_eq!(ignored, rel.contains("test-notification"), "{rel}: {request:?}");
                    }
                    "redis-failover" => {
                        use shared::alarm::{Trigger, parse};
                        let trigger = parse(&delivery.payload).unwrap_or_else(|e| panic!("{rel}: {e}"));
                        let file = rel.trim_start_matches("redis-failover/");
                        match (&trigger, file) {
                            (Trigger::Ignore(reason), "alarm-ok-eventbridge.json") => {
                                assert!(reason.contains("OK"), "{rel}: {reason}")
                            }
                            (Trigger::All { cause }, "schedule.json") => assert_eq!(cause.kind, "schedule"),
                            (Trigger::Clusters { clusters, cause }, _) => {
                                assert_eq!(clusters, &["kate.example.com"], "{rel}");
                                let kind = if file.starts_with("direct") {
                                    "direct"
                                } else {
                                    "alarm"
                                };
                                assert_eq!(cause.kind, kind, "{rel}");
                            }
                            _ => panic!("{rel}: unexpected {trigger:?}"),
                        }
                    }
                    "mongo-endpoint" => {
                        use shared::alarm::{Trigger, parse};
                        let trigger = parse(&delivery.payload).unwrap_or_else(|e| panic!("{rel}: {e}"));
                        match (&trigger, rel.contains("alarm")) {
                            (Trigger::All { cause }, false) => assert_eq!(cause.kind, "schedule"),
                            (Trigger::Clusters { clusters, cause }, true) => {
                                assert_eq!(clusters, &["kate.example.com"], "{rel}");
                                assert_eq!(cause.kind, "alarm", "{rel}");
                            }
                            _ => panic!("{rel}: unexpected {trigger:?}"),
                        }
                    }
                    "replset-tasks" => {
                        use shared::mongo::task::{Task, TaskError};
                        let Payload::Direct(body) = &delivery.payload else {
                            panic!("{rel}: a task is a plain JSON body");
                        };
                        match Task::parse(&body.to_string()) {
                            Ok(task) => assert!(task.set.ends_with(".example.com"), "{rel}"),
                            // The bad-input fixture's first task is of a
                            // schema version this code does not read.
                            Err(TaskError::UnknownSchema { found }) if rel.contains("bad") => {
                                assert_eq!(found, "2")
                            }
                            Err(e) => panic!("{rel}: {e}"),
                        }
                    }
                    "publish-metrics" => {
                        let dry_run =
                            shared::envelope::dry_run_input(&delivery.payload, "publish-metrics input")
                                .unwrap_or_else(|e| panic!("{rel}: {e}"));
                        assert_eq!(dry_run, rel.contains("dry-run"), "{rel}");
                    }
                    other => panic!("{rel}: fixtures of an unknown function {other:?}"),
                }
            }
            seen += 1;
        }
    }
    assert!(seen >= 35, "found only {seen} fixtures");
}

#[test]
fn tiers_of_the_snapshot_fixtures() {
    use shared::backup::tier::Tier;
    let tier_of = |file: &str| {
        let path = root().join("events-fixtures/snapshot-volumes").join(file);
        let d = deliveries(&path).remove(0);
        snapshot_volumes::parse_request(&d.payload, Utc::now()).unwrap()
    };
    assert_eq!(tier_of("scheduled-hourly.json").tier, Tier::Hourly);
    assert_eq!(tier_of("scheduled-daily.json").tier, Tier::Daily);
    assert_eq!(tier_of("scheduled-weekly.json").tier, Tier::Weekly);
    assert_eq!(tier_of("scheduled-monthly.json").tier, Tier::Monthly);
    assert_eq!(tier_of("constant-input-daily.json").tier, Tier::Daily);
    let dry = tier_of("constant-input-dry-run.json");
    assert!(dry.dry_run && dry.tier == Tier::Weekly);
    let via_sns = tier_of("sns-scheduled-weekly.json");
    assert_eq!(via_sns.tier, Tier::Weekly);
    assert_eq!(via_sns.time.to_rfc3339(), "2026-11-22T04:00:00+00:00");
    let via_sqs = tier_of("sqs-sns-monthly.json");
    assert_eq!(via_sqs.tier, Tier::Monthly);
    assert_eq!(via_sqs.time.to_rfc3339(), "2026-11-01T05:00:00+00:00");
}

#[test]
fn causes_of_the_redis_failover_fixtures() {
    use shared::alarm::{Trigger, parse};
    let trigger_of = |file: &str| {
        let path = root().join("events-fixtures/redis-failover").join(file);
        let d = deliveries(&path).remove(0);
        parse(&d.payload).unwrap_or_else(|e| panic!("{file}: {e}"))
    };
    let alarm = |file: &str, window: u64, time: &str| {
        let Trigger::Clusters { clusters, cause } = trigger_of(file) else {
            panic!("{file}: not a check of clusters");
        };
        assert_eq!(clusters, ["kate.example.com"], "{file}");
        assert_eq!(cause.kind, "alarm", "{file}");
        assert_eq!(
            cause.alarm_name.as_deref(),
            Some("ninelives-kate-head-down"),
            "{file}"
        );
        assert_eq!(cause.alarm_window_seconds, Some(window), "{file}");
        assert_eq!(
            cause.state_change_time.map(|t| t.to_rfc3339()).as_deref(),
            Some(time),
            "{file}"
        );
    };
    alarm("alarm-direct.json", 60, "2026-11-24T13:10:00+00:00");
    alarm("alarm-eventbridge.json", 120, "2026-11-24T13:10:00.989+00:00");
    alarm("alarm-sns.json", 180, "2026-11-24T13:10:00.989+00:00");
    let Trigger::Ignore(reason) = trigger_of("alarm-ok-eventbridge.json") else {
        panic!("alarm-ok-eventbridge.json is not ignored");
    };
    assert!(
        reason.contains("ninelives-kate-head-down") && reason.contains("OK"),
        "{reason}"
    );
    let Trigger::All { cause } = trigger_of("schedule.json") else {
        panic!("schedule.json does not check every cluster");
    };
    assert_eq!((cause.kind, cause.alarm_name), ("schedule", None));
    let Trigger::Clusters { clusters, cause } = trigger_of("direct-cluster.json") else {
        panic!("direct-cluster.json is not a check of clusters");
    };
    assert_eq!(
        (clusters.as_slice(), cause.kind),
        (&["kate.example.com".to_owned()][..], "direct")
    );
}
