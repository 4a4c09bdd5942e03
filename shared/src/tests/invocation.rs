//! Unit tests of `invocation`.

use super::*;
use crate::error::EventError;

fn sqs_event(bodies: &[(&str, &str)]) -> Value {
    let records: Vec<Value> = bodies
        .iter()
        .enumerate()
        .map(|(i, (group, body))| {
            json!({
                "messageId": format!("m{i}"),
                "body": body,
                "attributes": {"MessageGroupId": group},
                "eventSource": "aws:sqs"
            })
        })
        .collect();
    json!({ "Records": records })
}

#[tokio::test]
async fn sqs_failures_are_reported_per_message_and_block_their_group() {
    let event = sqs_event(&[
        ("a", r#"{"n": 1}"#),
        ("a", r#"{"n": "fail"}"#),
        ("b", r#"{"n": 3}"#),
        ("a", r#"{"n": 4}"#),
        ("b", "garbage"),
        ("c", r#"{"Event": "autoscaling:TEST_NOTIFICATION"}"#),
    ]);
    let mut seen = Vec::new();
    let out = dispatch("t", event, &Deadline::after(Duration::from_secs(60)), |d| {
        let Payload::Direct(v) = d.payload else { panic!() };
        seen.push(v["n"].clone());
        async move {
            if v["n"] == "fail" {
                Err(Error::Event(EventError::Invalid("boom".into())))
            } else {
                Ok(json!({}))
            }
        }
    })
    .await
    .unwrap();
    let ids: Vec<&str> = out["batchItemFailures"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["itemIdentifier"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["m1", "m3", "m4"]);
    // m3 (group a after the failure) was never run.
    assert_eq!(seen, [json!(1), json!("fail"), json!(3)]);
}

#[tokio::test]
async fn single_noop_is_acknowledged_without_work() {
    let deadline = Deadline::after(Duration::from_secs(60));
    let out = dispatch(
        "t",
        json!({"Event": "autoscaling:TEST_NOTIFICATION"}),
        &deadline,
        |_| async { panic!("work must not run") },
    )
    .await
    .unwrap();
    assert_eq!(out["ignored"], "autoscaling:TEST_NOTIFICATION");
}

#[tokio::test]
async fn sqs_messages_are_not_started_past_the_deadline() {
    let event = sqs_event(&[("a", r#"{"n": 1}"#), ("b", r#"{"n": 2}"#)]);
    let now = Instant::now();
    let late = Deadline::at(now, now + Duration::from_secs(5));
    let out = dispatch("t", event, &late, |_| async { panic!("must not start") })
        .await
        .unwrap();
    assert_eq!(out["batchItemFailures"].as_array().unwrap().len(), 2);
}

#[tokio::test(start_paused = true)]
async fn deadline_margins() {
    let d = Deadline::after(Duration::from_secs(100));
    assert!(!d.should_stop());
    tokio::time::advance(Duration::from_secs(89)).await;
    assert!(!d.should_stop());
    tokio::time::advance(Duration::from_secs(2)).await;
    assert!(d.should_stop());
    // Hard limit at 100 - 2.5 s.
    let late = d.bound(tokio::time::sleep(Duration::from_secs(7))).await;
    assert!(late.is_none());
    let short = Deadline::after(Duration::from_secs(1));
    assert!(short.should_stop(), "a 1 s invocation has no time for new work");
}
