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
                    // Functions of later issues: the envelope must open to a
                    // payload that asks for work.
                    _ => assert!(!matches!(delivery.payload, Payload::NoOp { .. }), "{rel}"),
                }
            }
            seen += 1;
        }
    }
    assert!(seen >= 21, "found only {seen} fixtures");
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
