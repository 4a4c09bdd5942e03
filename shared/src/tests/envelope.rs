//! Unit tests of `envelope`.

use super::*;
use serde_json::json;

fn scheduled() -> Value {
    json!({
        "version": "0",
        "id": "53dc4d37-cffa-4f76-80c9-8b7d4a4d2eaa",
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": "123456789012",
        "time": "2026-11-24T13:00:00Z",
        "region": "us-east-1",
        "resources": ["arn:aws:events:us-east-1:123456789012:rule/ninelives-snapshot-daily"],
        "detail": {}
    })
}

fn sns_record(message: &str) -> Value {
    json!({
        "EventSource": "aws:sns",
        "EventVersion": "1.0",
        "EventSubscriptionArn": "arn:aws:sns:us-east-1:123456789012:ninelives:2bcfbf39-05c3-41de-beaa-fcfcc21c8f55",
        "Sns": {
            "Type": "Notification",
            "MessageId": "95df01b4-ee98-5cb9-9903-4c221d41eb5e",
            "TopicArn": "arn:aws:sns:us-east-1:123456789012:ninelives",
            "Subject": null,
            "Message": message,
            "Timestamp": "2026-11-24T13:00:01.000Z",
            "SignatureVersion": "1",
            "Signature": "EXAMPLE",
            "SigningCertUrl": "https://sns.us-east-1.amazonaws.com/cert.pem",
            "UnsubscribeUrl": "https://sns.us-east-1.amazonaws.com/?Action=Unsubscribe",
            "MessageAttributes": {}
        }
    })
}

fn sns_envelope(message: &str) -> Value {
    json!({
        "Type": "Notification",
        "MessageId": "b1f2c3d4-0000-4000-8000-000000000001",
        "TopicArn": "arn:aws:sns:us-east-1:123456789012:ninelives",
        "Message": message,
        "Timestamp": "2026-11-24T13:00:01.000Z",
        "SignatureVersion": "1",
        "Signature": "EXAMPLE",
        "SigningCertURL": "https://sns.us-east-1.amazonaws.com/cert.pem",
        "UnsubscribeURL": "https://sns.us-east-1.amazonaws.com/?Action=Unsubscribe"
    })
}

fn sqs(bodies: &[String]) -> Value {
    let records: Vec<Value> = bodies
        .iter()
        .enumerate()
        .map(|(i, body)| {
            json!({
                "messageId": format!("m-{i}"),
                "receiptHandle": "AQEB",
                "body": body,
                "attributes": {"ApproximateReceiveCount": "1", "MessageGroupId": "g"},
                "messageAttributes": {},
                "md5OfBody": "x",
                "eventSource": "aws:sqs",
                "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:q.fifo",
                "awsRegion": "us-east-1"
            })
        })
        .collect();
    json!({ "Records": records })
}

fn single(event: Value) -> Delivery {
    match open(event).unwrap() {
        Envelope::Single(d) => *d,
        Envelope::Sqs(_) => panic!("expected a single delivery"),
    }
}

#[test]
fn direct_and_eventbridge() {
    let d = single(json!({"tier": "daily"}));
    assert_eq!(d.payload, Payload::Direct(json!({"tier": "daily"})));
    assert_eq!(d.route(), "direct");

    let d = single(scheduled());
    let Payload::EventBridge(e) = d.payload else {
        panic!()
    };
    assert_eq!(e.detail_type, "Scheduled Event");
    assert_eq!(e.resources.unwrap().len(), 1);
}

#[test]
fn sns_trigger_unwraps_the_message() {
    let d = single(json!({"Records": [sns_record(&scheduled().to_string())]}));
    assert_eq!(d.route(), "sns>eventbridge");
    assert!(matches!(&d.hops[0], Hop::Sns { topic_arn, .. } if topic_arn.ends_with(":ninelives")));
}

#[test]
fn sqs_batch_with_raw_and_enveloped_bodies() {
    let bodies = vec![
        scheduled().to_string(),
        sns_envelope(r#"{"tier":"weekly"}"#).to_string(),
        "not json".to_owned(),
        sns_envelope("not json either").to_string(),
        json!({"Event": "autoscaling:TEST_NOTIFICATION", "AccountId": "1"}).to_string(),
    ];
    let Envelope::Sqs(items) = open(sqs(&bodies)).unwrap() else {
        panic!()
    };
    assert_eq!(items.len(), 5);
    assert_eq!(items[0].delivery.as_ref().unwrap().route(), "sqs>eventbridge");
    let second = items[1].delivery.as_ref().unwrap();
    assert_eq!(second.route(), "sqs>sns>direct");
    assert_eq!(second.payload, Payload::Direct(json!({"tier": "weekly"})));
    assert!(matches!(
        items[2].delivery,
        Err(EventError::InnerNotJson {
            context: "SQS message body",
            ..
        })
    ));
    assert!(matches!(
        items[3].delivery,
        Err(EventError::InnerNotJson {
            context: "SNS message",
            ..
        })
    ));
    assert!(matches!(
        items[4].delivery.as_ref().unwrap().payload,
        Payload::NoOp { .. }
    ));
    assert_eq!(items[0].message_group_id.as_deref(), Some("g"));
    assert_eq!(items[3].message_id, "m-3");
}

#[test]
fn no_ops() {
    let d = single(json!({"Records": [sns_record(r#"{"Event":"autoscaling:TEST_NOTIFICATION"}"#)]}));
    assert_eq!(
        d.payload,
        Payload::NoOp {
            reason: "autoscaling:TEST_NOTIFICATION".into()
        }
    );
    let mut confirm = sns_envelope("You have chosen to subscribe");
    confirm["Type"] = json!("SubscriptionConfirmation");
    assert!(matches!(single(confirm).payload, Payload::NoOp { .. }));
}

#[test]
fn malformed_wrappers_are_errors() {
    // EventBridge-looking but with a wrongly typed field.
    let mut bad = scheduled();
    bad["time"] = json!(12);
    assert!(matches!(
        open(bad),
        Err(EventError::Shape {
            context: "EventBridge event",
            ..
        })
    ));
    // SNS record with its message missing.
    let mut rec = sns_record("{}");
    rec["Sns"].as_object_mut().unwrap().remove("Message");
    assert!(matches!(
        open(json!({"Records": [rec]})),
        Err(EventError::Shape { .. })
    ));
    // Two SNS records cannot come from Lambda's SNS trigger.
    let two = json!({"Records": [sns_record("{}"), sns_record("{}")]});
    assert!(open(two).unwrap_err().to_string().contains("exactly one record"));
    // Some other service's records.
    let s3 = json!({"Records": [{"eventSource": "aws:s3"}]});
    assert!(open(s3).unwrap_err().to_string().contains("aws:s3"));
    // Unknown SNS message type.
    let mut odd = sns_envelope("{}");
    odd["Type"] = json!("Telegram");
    assert!(open(odd).is_err());
}

#[test]
fn nesting_is_bounded() {
    let mut event = json!({"tier": "daily"});
    for _ in 0..6 {
        event = sns_envelope(&event.to_string());
    }
    assert!(open(event).unwrap_err().to_string().contains("levels deep"));
}

#[test]
fn a_list_is_not_read_as_the_dry_run_input() {
    // serde reads a sequence as a struct's fields in order: `[false]`
    // would have been a real (not dry) run.
    for value in [json!([true]), json!([false]), json!(7), json!("dry_run")] {
        let err = dry_run_input(&Payload::Direct(value.clone()), "purge-snapshots input").unwrap_err();
        assert!(
            err.to_string().contains("must be a JSON object"),
            "{value}: {err}"
        );
    }
    assert!(dry_run_input(&Payload::Direct(json!({"dry_run": true})), "x").unwrap());
    assert!(!dry_run_input(&Payload::Direct(Value::Null), "x").unwrap());
}

#[test]
fn shape_errors_quote_only_the_start_of_a_huge_value() {
    let huge = "x".repeat(1 << 20);
    let err = dry_run_input(
        &Payload::Direct(json!({ "dry_run": huge })),
        "publish-metrics input",
    )
    .unwrap_err();
    let message = err.to_string();
    assert!(
        message.contains("expected a boolean") || message.contains("invalid type"),
        "{message:.200}"
    );
    assert!(message.len() < 500, "{} bytes", message.len());
    let err = dry_run_input(
        &Payload::Direct(json!({ huge.clone(): true })),
        "purge-snapshots input",
    )
    .unwrap_err();
    assert!(err.to_string().len() < 500);
    // The unknown source of a record is quoted, and clipped.
    let odd = json!({"Records": [{"eventSource": huge}]});
    assert!(open(odd).unwrap_err().to_string().len() < 200);
    let empty = json!({"Records": [{"eventSource": ""}]});
    assert!(open(empty).unwrap_err().to_string().contains("events from \"\""));
}
