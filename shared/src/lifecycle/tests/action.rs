//! Unit tests of `action`: every delivery shape, and the inputs refused.

use serde_json::json;

use super::*;
use crate::envelope::{Envelope, open};

fn detail() -> Value {
    json!({
        "LifecycleActionToken": "87654321-4321-4321-4321-210987654321",
        "AutoScalingGroupName": "kate-asg",
        "LifecycleHookName": "ninelives",
        "EC2InstanceId": "i-1234567890abcdef0",
        "LifecycleTransition": "autoscaling:EC2_INSTANCE_LAUNCHING",
        "NotificationMetadata": "",
        "Origin": "EC2",
        "Destination": "AutoScalingGroup"
    })
}

fn eventbridge(detail_type: &str, detail: Value) -> Value {
    json!({
        "version": "0",
        "id": "468fe059-f4b7-445f-bb22-2a8ed2ef4c3b",
        "detail-type": detail_type,
        "source": "aws.autoscaling",
        "account": "123456789012",
        "time": "2026-11-24T13:05:00Z",
        "region": "eu-west-1",
        "resources": [],
        "detail": detail
    })
}

fn notification(transition: &str) -> Value {
    json!({
        "Origin": "EC2",
        "LifecycleHookName": "ninelives",
        "Destination": "AutoScalingGroup",
        "AccountId": "123456789012",
        "RequestId": "4b4d8f2e-2c21-4e6c-a6b1-9c2cf6c12c36",
        "LifecycleTransition": transition,
        "AutoScalingGroupName": "kate-asg",
        "Service": "AWS Auto Scaling",
        "Time": "2026-11-24T13:05:01.250Z",
        "EC2InstanceId": "i-1234567890abcdef0",
        "LifecycleActionToken": "87654321-4321-4321-4321-210987654321"
    })
}

/// The payload a function sees for `event`, through the real envelope.
fn payload(event: Value) -> Payload {
    match open(event).unwrap() {
        Envelope::Single(d) => d.payload,
        Envelope::Sqs(mut items) => items.remove(0).delivery.unwrap().payload,
    }
}

fn parsed(event: Value) -> Result<Request, EventError> {
    parse(&payload(event))
}

fn action_of(event: Value) -> LifecycleAction {
    match parsed(event).unwrap() {
        Request::Action(a) => a,
        other => panic!("expected an action, got {other:?}"),
    }
}

#[test]
fn eventbridge_launch_and_terminate() {
    let a = action_of(eventbridge(LAUNCH_DETAIL_TYPE, detail()));
    assert_eq!(a.transition, Transition::Launch);
    assert_eq!(a.group, "kate-asg");
    assert_eq!(a.hook, "ninelives");
    assert_eq!(a.instance_id, "i-1234567890abcdef0");
    assert_eq!(a.token.as_deref(), Some("87654321-4321-4321-4321-210987654321"));
    assert_eq!(a.time.unwrap().to_rfc3339(), "2026-11-24T13:05:00+00:00");
    assert!(!a.is_warm_pool_only());

    let mut d = detail();
    d["LifecycleTransition"] = json!("autoscaling:EC2_INSTANCE_TERMINATING");
    d["Origin"] = json!("AutoScalingGroup");
    d["Destination"] = json!("EC2");
    let a = action_of(eventbridge(TERMINATE_DETAIL_TYPE, d));
    assert_eq!(a.transition, Transition::Terminate);
}

#[test]
fn the_notification_directly_through_sns_and_through_sqs() {
    let message = notification("autoscaling:EC2_INSTANCE_TERMINATING");
    let direct = action_of(message.clone());
    assert_eq!(direct.transition, Transition::Terminate);
    assert_eq!(direct.time.unwrap().to_rfc3339(), "2026-11-24T13:05:01.250+00:00");

    let sns = json!({"Records": [{
        "EventSource": "aws:sns", "EventVersion": "1.0", "EventSubscriptionArn": "arn:aws:sns:eu-west-1:123456789012:t:1",
        "Sns": {"Type": "Notification", "MessageId": "m-1", "TopicArn": "arn:aws:sns:eu-west-1:123456789012:t",
                "Message": message.to_string(), "Timestamp": "2026-11-24T13:05:02.000Z",
                "SignatureVersion": "1", "Signature": "x", "SigningCertUrl": "https://x", "UnsubscribeUrl": "https://x",
                "MessageAttributes": {}}
    }]});
    assert_eq!(action_of(sns), direct);

    let sqs = json!({"Records": [{
        "messageId": "q-1", "receiptHandle": "r", "body": message.to_string(),
        "attributes": {"ApproximateReceiveCount": "1", "SentTimestamp": "1800000000000"},
        "messageAttributes": {}, "md5OfBody": "x", "eventSource": "aws:sqs",
        "eventSourceARN": "arn:aws:sqs:eu-west-1:123456789012:q", "awsRegion": "eu-west-1"
    }]});
    assert_eq!(action_of(sqs), direct);
}

#[test]
fn test_notifications_and_other_autoscaling_events_are_ignored() {
    let test = json!({
        "AccountId": "123456789012", "RequestId": "r", "AutoScalingGroupARN": "arn:aws:autoscaling:x",
        "AutoScalingGroupName": "kate-asg", "Service": "AWS Auto Scaling",
        "Event": "autoscaling:TEST_NOTIFICATION", "Time": "2026-11-24T13:00:00Z"
    });
    assert!(matches!(parsed(test).unwrap(), Request::Ignore(r) if r.contains("TEST_NOTIFICATION")));

    let launch_notice = json!({"Event": "autoscaling:EC2_INSTANCE_LAUNCH", "AutoScalingGroupName": "kate-asg",
                               "EC2InstanceId": "i-1234567890abcdef0"});
    assert!(
        matches!(parsed(launch_notice).unwrap(), Request::Ignore(r) if r.contains("EC2_INSTANCE_LAUNCH"))
    );

    let success = eventbridge(
        "EC2 Instance Launch Successful",
        json!({"EC2InstanceId": "i-1234567890abcdef0"}),
    );
    assert!(matches!(parsed(success).unwrap(), Request::Ignore(r) if r.contains("Launch Successful")));
}

#[test]
fn warm_pool_transitions_are_recognised() {
    let mut d = detail();
    d["Destination"] = json!("WarmPool");
    assert!(action_of(eventbridge(LAUNCH_DETAIL_TYPE, d)).is_warm_pool_only());
    let mut d = detail();
    d["Origin"] = json!("WarmPool");
    assert!(!action_of(eventbridge(LAUNCH_DETAIL_TYPE, d)).is_warm_pool_only());
}

#[test]
fn bad_input_names_what_is_wrong() {
    let cases: Vec<(Value, &str)> = vec![
        (
            json!({"detail-type": "Scheduled Event", "source": "aws.events", "detail": {}}),
            "Scheduled Event",
        ),
        (
            eventbridge(LAUNCH_DETAIL_TYPE, {
                let mut d = detail();
                d["LifecycleTransition"] = json!("autoscaling:EC2_INSTANCE_TERMINATING");
                d
            }),
            "does not match",
        ),
        (
            eventbridge(LAUNCH_DETAIL_TYPE, json!("text")),
            "must be a JSON object",
        ),
        (
            eventbridge(LAUNCH_DETAIL_TYPE, {
                let mut d = detail();
                d.as_object_mut().unwrap().remove("EC2InstanceId");
                d
            }),
            "no EC2InstanceId",
        ),
        (
            eventbridge(LAUNCH_DETAIL_TYPE, {
                let mut d = detail();
                d["EC2InstanceId"] = json!("i-xyz");
                d
            }),
            "EC2InstanceId \"i-xyz\"",
        ),
        (
            eventbridge(LAUNCH_DETAIL_TYPE, {
                let mut d = detail();
                d["EC2InstanceId"] = json!(42);
                d
            }),
            "does not have the expected shape",
        ),
        (
            eventbridge(LAUNCH_DETAIL_TYPE, {
                let mut d = detail();
                d["LifecycleHookName"] = json!("");
                d
            }),
            "no LifecycleHookName",
        ),
        (
            eventbridge(LAUNCH_DETAIL_TYPE, {
                let mut d = detail();
                d["AutoScalingGroupName"] = json!("x".repeat(100_000));
                d
            }),
            "AutoScalingGroupName",
        ),
        (
            eventbridge(LAUNCH_DETAIL_TYPE, {
                let mut d = detail();
                d["LifecycleActionToken"] = json!("not a token!");
                d
            }),
            "LifecycleActionToken",
        ),
        (
            notification("autoscaling:EC2_INSTANCE_REBOOTING"),
            "LifecycleTransition",
        ),
        (
            {
                let mut n = notification("autoscaling:EC2_INSTANCE_LAUNCHING");
                n["Time"] = json!("yesterday");
                n
            },
            "Time \"yesterday\"",
        ),
        (json!([1, 2]), "must be a JSON object"),
        (json!({}), "no LifecycleTransition"),
    ];
    for (event, expected) in cases {
        let err = parsed(event.clone()).unwrap_err().to_string();
        assert!(err.contains(expected), "{event}: {err}");
        assert!(err.len() < 400, "error quotes too much: {} bytes", err.len());
    }
}

#[test]
fn instance_ids() {
    assert!(is_instance_id("i-12345678"));
    assert!(is_instance_id("i-1234567890abcdef0"));
    for bad in [
        "i-1234567",
        "i-1234567890ABCDEF0",
        "x-12345678",
        "i-",
        "",
        "i-123456789",
    ] {
        assert!(!is_instance_id(bad), "{bad}");
    }
}
