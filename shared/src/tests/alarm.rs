//! Unit tests of `alarm`: every delivery shape, through the real envelope
//! where the wrapper matters, and every input refused.

use serde_json::json;

use super::*;
use crate::envelope::{Envelope, open};

const CLUSTER: &str = "kate.example.com";
const ALARM: &str = "ninelives-kate-head-down";
const REASON: &str = "Threshold Crossed: 2 out of the last 3 datapoints [0.0 (24/11/26 13:09:00), 0.0 (24/11/26 13:08:00)] was less than the threshold (1.0) (minimum 2 datapoints for OK -> ALARM transition).";

fn metric(dimensions: Value) -> Value {
    json!({
        "id": "m1",
        "metricStat": {
            "metric": {"namespace": "NineLives/Redis", "name": "NodeUp", "dimensions": dimensions},
            "period": 60,
            "stat": "Minimum"
        },
        "returnData": true
    })
}

/// `alarmData` / EventBridge `detail` of an alarm in `state` over `metrics`.
fn alarm_data(state: &str, metrics: Value) -> Value {
    json!({
        "alarmName": ALARM,
        "state": {"value": state, "reason": REASON, "timestamp": "2026-11-24T13:10:00.123+0000"},
        "previousState": {"value": "OK", "reason": "Threshold Crossed", "timestamp": "2026-11-24T12:00:00.000+0000"},
        "configuration": {"description": "head down", "metrics": metrics}
    })
}

fn node_metrics() -> Value {
    json!([metric(json!({"cluster": CLUSTER, "node": "i-0a1b2c3d4e5f60718"}))])
}

/// The event an alarm's Lambda action sends.
fn lambda_action(data: Value) -> Value {
    json!({
        "source": "aws.cloudwatch",
        "alarmArn": format!("arn:aws:cloudwatch:us-east-1:123456789012:alarm:{ALARM}"),
        "accountId": "123456789012",
        "time": "2026-11-24T13:10:00.500+0000",
        "region": "us-east-1",
        "alarmData": data
    })
}

fn eventbridge(source: &str, detail_type: &str, detail: Value) -> Value {
    json!({
        "version": "0",
        "id": "c4c1c1c9-6542-e61b-6ef0-8c4d36933a92",
        "detail-type": detail_type,
        "source": source,
        "account": "123456789012",
        "time": "2026-11-24T13:10:01Z",
        "region": "us-east-1",
        "resources": [format!("arn:aws:cloudwatch:us-east-1:123456789012:alarm:{ALARM}")],
        "detail": detail
    })
}

fn schedule() -> Value {
    json!({
        "version": "0",
        "id": "53dc4d37-cffa-4f76-80c9-8b7d4a4d2eaa",
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": "123456789012",
        "time": "2026-11-24T13:00:00Z",
        "region": "us-east-1",
        "resources": ["arn:aws:events:us-east-1:123456789012:rule/ninelives-redis-failover"],
        "detail": {}
    })
}

/// The classic alarm JSON an SNS action publishes.
fn sns_alarm(state: &str, dimensions: Value) -> Value {
    json!({
        "AlarmName": ALARM,
        "AlarmDescription": null,
        "AWSAccountId": "123456789012",
        "NewStateValue": state,
        "NewStateReason": REASON,
        "StateChangeTime": "2026-11-24T13:10:00.123+0000",
        "Region": "US East (N. Virginia)",
        "AlarmArn": format!("arn:aws:cloudwatch:us-east-1:123456789012:alarm:{ALARM}"),
        "OldStateValue": "OK",
        "Trigger": {
            "MetricName": "NodeUp",
            "Namespace": "NineLives/Redis",
            "StatisticType": "Statistic",
            "Statistic": "MINIMUM",
            "Unit": null,
            "Dimensions": dimensions,
            "Period": 60,
            "EvaluationPeriods": 3,
            "DatapointsToAlarm": 2,
            "ComparisonOperator": "LessThanThreshold",
            "Threshold": 1.0,
            "TreatMissingData": "breaching",
            "EvaluateLowSampleCountPercentile": ""
        }
    })
}

fn sns_dimensions() -> Value {
    json!([{"value": "i-0a1b2c3d4e5f60718", "name": "node"}, {"value": CLUSTER, "name": "cluster"}])
}

fn sns_record(message: &str) -> Value {
    json!({
        "EventSource": "aws:sns",
        "EventVersion": "1.0",
        "EventSubscriptionArn": "arn:aws:sns:us-east-1:123456789012:ninelives-alarms:2bcfbf39-05c3-41de-beaa-fcfcc21c8f55",
        "Sns": {
            "Type": "Notification",
            "MessageId": "95df01b4-ee98-5cb9-9903-4c221d41eb5e",
            "TopicArn": "arn:aws:sns:us-east-1:123456789012:ninelives-alarms",
            "Subject": "ALARM: \"ninelives-kate-head-down\" in US East (N. Virginia)",
            "Message": message,
            "Timestamp": "2026-11-24T13:10:00.600Z",
            "SignatureVersion": "1",
            "Signature": "EXAMPLE",
            "SigningCertUrl": "https://sns.us-east-1.amazonaws.com/cert.pem",
            "UnsubscribeUrl": "https://sns.us-east-1.amazonaws.com/?Action=Unsubscribe",
            "MessageAttributes": {}
        }
    })
}

/// Lambda's SQS event whose one body is the SNS notification envelope
/// (topic to queue, raw delivery off).
fn sqs_sns(message: &str) -> Value {
    let envelope = json!({
        "Type": "Notification",
        "MessageId": "b1f2c3d4-0000-4000-8000-000000000001",
        "TopicArn": "arn:aws:sns:us-east-1:123456789012:ninelives-alarms",
        "Message": message,
        "Timestamp": "2026-11-24T13:10:00.600Z",
        "SignatureVersion": "1",
        "Signature": "EXAMPLE",
        "SigningCertURL": "https://sns.us-east-1.amazonaws.com/cert.pem",
        "UnsubscribeURL": "https://sns.us-east-1.amazonaws.com/?Action=Unsubscribe"
    });
    json!({"Records": [{
        "messageId": "m-0",
        "receiptHandle": "AQEB",
        "body": envelope.to_string(),
        "attributes": {"ApproximateReceiveCount": "1"},
        "messageAttributes": {},
        "md5OfBody": "x",
        "eventSource": "aws:sqs",
        "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:ninelives-alarms",
        "awsRegion": "us-east-1"
    }]})
}

/// The payload a function sees for `event`, through the real envelope.
fn payload(event: Value) -> Payload {
    match open(event).unwrap() {
        Envelope::Single(d) => d.payload,
        Envelope::Sqs(mut items) => items.remove(0).delivery.unwrap().payload,
    }
}

fn parsed(event: Value) -> Result<Trigger, EventError> {
    parse(&payload(event))
}

fn clusters_of(event: Value) -> (Vec<String>, Cause) {
    match parsed(event).unwrap() {
        Trigger::Clusters { clusters, cause } => (clusters, cause),
        other => panic!("expected clusters, got {other:?}"),
    }
}

fn error_of(event: Value) -> String {
    match parsed(event) {
        Err(e) => e.to_string(),
        Ok(t) => panic!("expected an error, got {t:?}"),
    }
}

fn ignored(event: Value) -> String {
    match parsed(event).unwrap() {
        Trigger::Ignore(reason) => reason,
        other => panic!("expected to be ignored, got {other:?}"),
    }
}

fn at(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text).unwrap().with_timezone(&Utc)
}

#[test]
fn lambda_alarm_action() {
    let event = lambda_action(alarm_data("ALARM", node_metrics()));
    assert!(matches!(payload(event.clone()), Payload::Direct(_)));
    let (clusters, cause) = clusters_of(event);
    assert_eq!(clusters, vec![CLUSTER]);
    assert_eq!(cause.kind, "alarm");
    assert_eq!(cause.alarm_name.as_deref(), Some(ALARM));
    assert_eq!(cause.state_change_time, Some(at("2026-11-24T13:10:00.123Z")));
    // period 60 x "out of the last 3 datapoints"
    assert_eq!(cause.alarm_window_seconds, Some(180));
}

#[test]
fn eventbridge_alarm_state_change() {
    let event = eventbridge(
        "aws.cloudwatch",
        ALARM_STATE_CHANGE,
        alarm_data("ALARM", node_metrics()),
    );
    let (clusters, cause) = clusters_of(event);
    assert_eq!(clusters, vec![CLUSTER]);
    assert_eq!(cause.kind, "alarm");
    assert_eq!(cause.alarm_name.as_deref(), Some(ALARM));
    assert_eq!(cause.state_change_time, Some(at("2026-11-24T13:10:00.123Z")));
    assert_eq!(cause.alarm_window_seconds, Some(180));
}

#[test]
fn evaluation_periods_in_the_configuration_win_over_the_reason() {
    let mut data = alarm_data("ALARM", node_metrics());
    data["configuration"]["evaluationPeriods"] = json!(5);
    let (_, cause) = clusters_of(lambda_action(data));
    assert_eq!(cause.alarm_window_seconds, Some(300));
}

#[test]
fn no_window_without_evaluation_periods() {
    let mut data = alarm_data("ALARM", node_metrics());
    data["state"]["reason"] = json!("Setting state to ALARM for testing");
    let (_, cause) = clusters_of(lambda_action(data));
    assert_eq!(cause.alarm_window_seconds, None);
}

#[test]
fn state_time_falls_back_to_the_event_time() {
    let mut data = alarm_data("ALARM", node_metrics());
    data["state"].as_object_mut().unwrap().remove("timestamp");
    let (_, cause) = clusters_of(eventbridge("aws.cloudwatch", ALARM_STATE_CHANGE, data.clone()));
    assert_eq!(cause.state_change_time, Some(at("2026-11-24T13:10:01Z")));
    let (_, cause) = clusters_of(lambda_action(data));
    assert_eq!(cause.state_change_time, Some(at("2026-11-24T13:10:00.500Z")));
}

#[test]
fn metric_math_alarm_finds_clusters_in_any_metric() {
    let metrics = json!([
        {"expression": "MIN(METRICS())", "id": "e1", "label": "chain up", "returnData": true},
        metric(json!({"cluster": "Kate.Example.com.", "node": "i-0a1b2c3d4e5f60718"})),
        metric(json!({"cluster": "kate.example.com", "node": "i-0a1b2c3d4e5f60719"})),
        metric(json!({"cluster": "bob.example.com", "node": "i-0a1b2c3d4e5f6071a"})),
        metric(json!({"InstanceId": "i-0a1b2c3d4e5f6071a"}))
    ]);
    let (clusters, cause) = clusters_of(eventbridge(
        "aws.cloudwatch",
        ALARM_STATE_CHANGE,
        alarm_data("ALARM", metrics),
    ));
    assert_eq!(clusters, vec!["kate.example.com", "bob.example.com"]);
    assert_eq!(cause.alarm_window_seconds, Some(180));
}

#[test]
fn sns_notification_of_an_alarm() {
    let message = sns_alarm("ALARM", sns_dimensions()).to_string();
    let event = json!({"Records": [sns_record(&message)]});
    assert!(matches!(payload(event.clone()), Payload::Direct(_)));
    let (clusters, cause) = clusters_of(event);
    assert_eq!(clusters, vec![CLUSTER]);
    assert_eq!(cause.kind, "alarm");
    assert_eq!(cause.alarm_name.as_deref(), Some(ALARM));
    assert_eq!(cause.state_change_time, Some(at("2026-11-24T13:10:00.123Z")));
    // Trigger.Period 60 x Trigger.EvaluationPeriods 3
    assert_eq!(cause.alarm_window_seconds, Some(180));
}

#[test]
fn sqs_wrapped_sns_notification_of_an_alarm() {
    let message = sns_alarm("ALARM", sns_dimensions()).to_string();
    let (clusters, cause) = clusters_of(sqs_sns(&message));
    assert_eq!(clusters, vec![CLUSTER]);
    assert_eq!(cause.alarm_name.as_deref(), Some(ALARM));
    assert_eq!(cause.alarm_window_seconds, Some(180));
}

#[test]
fn sns_message_as_direct_input() {
    let (clusters, _) = clusters_of(sns_alarm("ALARM", sns_dimensions()));
    assert_eq!(clusters, vec![CLUSTER]);
}

#[test]
fn sns_metric_math_alarm() {
    let mut message = sns_alarm("ALARM", json!([]));
    let trigger = message["Trigger"].as_object_mut().unwrap();
    for key in [
        "MetricName",
        "Namespace",
        "StatisticType",
        "Statistic",
        "Unit",
        "Dimensions",
        "Period",
    ] {
        trigger.remove(key);
    }
    trigger.insert(
        "Metrics".to_owned(),
        json!([
            {"Expression": "MIN(METRICS())", "Id": "e1", "Label": "chain up", "ReturnData": true},
            {"Id": "m1", "ReturnData": false, "MetricStat": {
                "Metric": {"Dimensions": [{"value": CLUSTER, "name": "cluster"}], "MetricName": "NodeUp", "Namespace": "NineLives/Redis"},
                "Period": 30, "Stat": "Minimum"
            }}
        ]),
    );
    let (clusters, cause) = clusters_of(json!({"Records": [sns_record(&message.to_string())]}));
    assert_eq!(clusters, vec![CLUSTER]);
    assert_eq!(cause.alarm_window_seconds, Some(90));
}

#[test]
fn ok_and_insufficient_data_are_ignored() {
    for state in ["OK", "INSUFFICIENT_DATA"] {
        let reasons = [
            ignored(lambda_action(alarm_data(state, node_metrics()))),
            ignored(eventbridge(
                "aws.cloudwatch",
                ALARM_STATE_CHANGE,
                alarm_data(state, node_metrics()),
            )),
            ignored(json!({"Records": [sns_record(&sns_alarm(state, sns_dimensions()).to_string())]})),
            ignored(sqs_sns(&sns_alarm(state, sns_dimensions()).to_string())),
        ];
        for reason in reasons {
            assert!(reason.contains(state) && reason.contains(ALARM), "{reason}");
        }
    }
    // Even an alarm without a cluster dimension: nothing to do is nothing to do.
    let reason = ignored(lambda_action(alarm_data(
        "OK",
        json!([metric(json!({"InstanceId": "i-1"}))]),
    )));
    assert!(reason.contains("OK"), "{reason}");
}

#[test]
fn other_alarm_events_are_ignored_and_noops_pass_through() {
    let reason = ignored(eventbridge(
        "aws.cloudwatch",
        ALARM_CONFIGURATION_CHANGE,
        json!({}),
    ));
    assert!(reason.contains("configuration"), "{reason}");
    let confirmation = json!({
        "Type": "SubscriptionConfirmation",
        "MessageId": "x",
        "TopicArn": "arn:aws:sns:us-east-1:123456789012:ninelives-alarms",
        "Message": "You have chosen to subscribe",
        "Token": "t",
        "SubscribeURL": "https://sns.us-east-1.amazonaws.com/",
        "Timestamp": "2026-11-24T13:10:00.600Z"
    });
    let reason = ignored(confirmation);
    assert!(reason.contains("SubscriptionConfirmation"), "{reason}");
}

#[test]
fn schedule_checks_every_cluster() {
    let trigger = parsed(schedule()).unwrap();
    assert_eq!(
        trigger,
        Trigger::All {
            cause: Cause::new("schedule")
        }
    );
    assert_eq!(trigger.cause().unwrap().kind, "schedule");
    // Also when the schedule comes through SNS.
    assert!(matches!(
        parsed(json!({"Records": [sns_record(&schedule().to_string())]})).unwrap(),
        Trigger::All { .. }
    ));
}

#[test]
fn direct_input() {
    let (clusters, cause) = clusters_of(json!({"cluster": " Kate.Example.COM. "}));
    assert_eq!(clusters, vec![CLUSTER]);
    assert_eq!(cause, Cause::new("direct"));

    let (clusters, _) =
        clusters_of(json!({"clusters": ["b.example.com", "a.example.com", "B.example.com."]}));
    assert_eq!(clusters, vec!["b.example.com", "a.example.com"]);

    for check in ["all", " ALL "] {
        assert_eq!(
            parsed(json!({"check": check})).unwrap(),
            Trigger::All {
                cause: Cause::new("direct")
            }
        );
    }
    assert_eq!(
        parsed(json!({"check": "all"})).unwrap().cause().unwrap().kind,
        "direct"
    );
    assert_eq!(Trigger::Ignore("x".into()).cause(), None);
}

#[test]
fn clusters_are_capped() {
    let names: Vec<String> = (0..MAX_CLUSTERS).map(|i| format!("c{i}.example.com")).collect();
    let (clusters, _) = clusters_of(json!({ "clusters": names }));
    assert_eq!(clusters.len(), MAX_CLUSTERS);

    let names: Vec<String> = (0..=MAX_CLUSTERS).map(|i| format!("c{i}.example.com")).collect();
    let e = error_of(json!({ "clusters": names }));
    assert!(e.contains("101 clusters") && e.contains("at most 100"), "{e}");

    let huge: Vec<&str> = vec!["kate.example.com"; 1_000_000];
    let e = error_of(json!({ "clusters": huge }));
    assert!(e.contains("1000000 clusters"), "{e}");

    // 101 distinct clusters across an alarm's metrics.
    let metrics: Vec<Value> = (0..=MAX_CLUSTERS)
        .map(|i| metric(json!({"cluster": format!("c{i}.example.com")})))
        .collect();
    let e = error_of(lambda_action(alarm_data("ALARM", json!(metrics))));
    assert!(e.contains("at most 100"), "{e}");
}

#[test]
fn alarm_without_cluster_dimension_is_refused() {
    let cases = [
        lambda_action(alarm_data("ALARM", json!([metric(json!({"InstanceId": "i-1"}))]))),
        lambda_action(alarm_data("ALARM", json!([]))),
        eventbridge(
            "aws.cloudwatch",
            ALARM_STATE_CHANGE,
            alarm_data(
                "ALARM",
                json!([
                    {"expression": "SUM(METRICS())", "id": "e1", "returnData": true},
                    metric(json!({"node": "i-1"})),
                    metric(json!({"Cluster": CLUSTER}))
                ]),
            ),
        ),
        json!({"Records": [sns_record(&sns_alarm("ALARM", json!([{"name": "node", "value": "i-1"}])).to_string())]}),
        sns_alarm("ALARM", json!([])),
    ];
    for event in cases {
        let e = error_of(event);
        assert!(e.contains(ALARM) && e.contains("`cluster` dimension"), "{e}");
    }
    // A composite alarm says so.
    let mut data = alarm_data("ALARM", json!(null));
    data["configuration"] = json!({"alarmRule": "ALARM(a) OR ALARM(b)", "actionsSuppressor": "s"});
    let e = error_of(lambda_action(data));
    assert!(
        e.contains("composite") && e.contains("`cluster` dimension"),
        "{e}"
    );
}

#[test]
fn bad_cluster_names_are_refused_naming_the_value() {
    for bad in [
        "kate",
        "kate example.com",
        "",
        "   ",
        "a..b.com",
        "kate.example.com/x",
    ] {
        let e = error_of(json!({"cluster": bad}));
        assert!(
            e.contains(&format!("{:?}", bad.trim())) || e.contains(&format!("{bad:?}")),
            "{e}"
        );
        let e = error_of(lambda_action(alarm_data(
            "ALARM",
            json!([metric(json!({"cluster": bad}))]),
        )));
        assert!(e.starts_with("cluster "), "{e}");
    }
    let long = format!("{}.example.com", "a".repeat(5000));
    let e = error_of(json!({ "clusters": [CLUSTER, long] }));
    assert!(e.len() < 300 && e.contains("..."), "{e}");

    let e = error_of(json!({"clusters": [CLUSTER, 7]}));
    assert!(e.contains("a number"), "{e}");
    let e = error_of(lambda_action(alarm_data(
        "ALARM",
        json!([metric(json!({"cluster": 7}))]),
    )));
    assert!(e.contains("`cluster` dimension is a number"), "{e}");
    let e = error_of(sns_alarm("ALARM", json!([{"name": "cluster", "value": null}])));
    assert!(e.contains("`cluster` dimension is null"), "{e}");
}

#[test]
fn bad_direct_input_is_refused() {
    let cases = [
        (json!({}), "empty object"),
        (json!({"cluster": 5}), "must be a string"),
        (json!({"clusters": "kate.example.com"}), "must be a list"),
        (json!({"clusters": []}), "is empty"),
        (json!({"check": "some"}), "must be \"all\""),
        (json!({"check": true}), "must be \"all\""),
        (
            json!({"cluster": CLUSTER, "check": "all"}),
            "not cluster and check",
        ),
        (
            json!({"cluster": CLUSTER, "clusters": [CLUSTER]}),
            "not cluster and clusters",
        ),
        (json!({"clustr": CLUSTER}), "unknown field \"clustr\""),
        (
            json!({"cluster": CLUSTER, "dry_run": true}),
            "unknown field \"dry_run\"",
        ),
        (json!({"tier": "daily"}), "accepts a CloudWatch alarm"),
        (json!([CLUSTER]), "a list, not a JSON object"),
        (json!("kate.example.com"), "a string, not a JSON object"),
        (json!(null), "null, not a JSON object"),
    ];
    for (event, expected) in cases {
        let e = error_of(event.clone());
        assert!(e.contains(expected), "{event}: {e}");
    }
}

#[test]
fn unknown_events_are_refused_listing_what_is_accepted() {
    for (source, detail_type) in [
        ("aws.autoscaling", "EC2 Instance Launch Successful"),
        ("aws.cloudwatch", "CloudWatch Alarm Contributor State Change"),
        ("aws.events", "Something Else"),
        ("custom.app", "Scheduled Event"),
    ] {
        let e = error_of(eventbridge(source, detail_type, json!({})));
        assert!(e.contains(detail_type) && e.contains(source), "{e}");
        assert!(
            e.contains("Scheduled Event") && e.contains("{\"check\": \"all\"}"),
            "{e}"
        );
    }
    let e = error_of(eventbridge("x", &"d".repeat(10_000), json!({})));
    assert!(e.len() < 1000, "{e}");
}

#[test]
fn malformed_alarms_are_refused() {
    let mut data = alarm_data("ALARM", node_metrics());
    data.as_object_mut().unwrap().remove("alarmName");
    assert!(error_of(lambda_action(data)).contains("no alarmName"));

    let mut data = alarm_data("ALARM", node_metrics());
    data.as_object_mut().unwrap().remove("state");
    let e = error_of(lambda_action(data));
    assert!(e.contains(ALARM) && e.contains("no state.value"), "{e}");

    let e = error_of(lambda_action(alarm_data("ALARMING", node_metrics())));
    assert!(e.contains("\"ALARMING\""), "{e}");

    let mut data = alarm_data("ALARM", node_metrics());
    data["state"]["timestamp"] = json!("yesterday");
    let e = error_of(eventbridge("aws.cloudwatch", ALARM_STATE_CHANGE, data));
    assert!(e.contains("state.timestamp \"yesterday\""), "{e}");

    let mut data = alarm_data("ALARM", node_metrics());
    data["configuration"]["metrics"] = json!({"m1": {}});
    assert!(error_of(lambda_action(data)).contains("not a list"));

    let e = error_of(lambda_action(json!("not an object")));
    assert!(e.contains("must be a JSON object"), "{e}");

    let mut event = lambda_action(alarm_data("ALARM", node_metrics()));
    event["source"] = json!("aws.ec2");
    assert!(error_of(event).contains("\"aws.ec2\""));

    let mut data = alarm_data("ALARM", node_metrics());
    data["alarmName"] = json!("x".repeat(256));
    assert!(error_of(lambda_action(data)).contains("not an alarm name"));

    let mut message = sns_alarm("ALARM", sns_dimensions());
    message.as_object_mut().unwrap().remove("NewStateValue");
    assert!(error_of(message).contains("no NewStateValue"));

    let mut message = sns_alarm("ALARM", sns_dimensions());
    message["Trigger"]["Dimensions"] = json!({"cluster": CLUSTER});
    assert!(error_of(message).contains("Dimensions is an object"));

    let mut message = sns_alarm("ALARM", sns_dimensions());
    message["StateChangeTime"] = json!(17);
    assert!(error_of(message).contains("StateChangeTime is a number"));
}

#[test]
fn times_in_each_spelling() {
    for (text, expected) in [
        ("2026-11-24T13:10:00.123+0000", "2026-11-24T13:10:00.123Z"),
        ("2026-11-24T13:10:00+0000", "2026-11-24T13:10:00Z"),
        ("2026-11-24T15:10:00.123+0200", "2026-11-24T13:10:00.123Z"),
        ("2026-11-24T13:10:00Z", "2026-11-24T13:10:00Z"),
        ("2026-11-24T13:10:00.123+00:00", "2026-11-24T13:10:00.123Z"),
        ("2026-11-24T13:10:00.123", "2026-11-24T13:10:00.123Z"),
    ] {
        assert_eq!(time(text), Ok(at(expected)), "{text}");
    }
    assert!(time("24/11/26 13:10").is_err());
}

#[test]
fn evaluated_datapoints_from_the_reason() {
    assert_eq!(evaluated_datapoints(REASON), Some(3));
    assert_eq!(
        evaluated_datapoints("Threshold Crossed: 1 out of the last 1 datapoints [0.0 (24/11/26 13:09:00)]"),
        Some(1)
    );
    assert_eq!(
        evaluated_datapoints("Thresholds Crossed: 1 out of the last 1 datapoints"),
        Some(1)
    );
    assert_eq!(
        evaluated_datapoints("Insufficient Data: 5 datapoints were unknown."),
        None
    );
    assert_eq!(evaluated_datapoints("1 out of the last x datapoints"), None);
    assert_eq!(evaluated_datapoints("1 out of the last 0 datapoints"), None);
    assert_eq!(evaluated_datapoints("1 out of the last 3"), None);
    assert_eq!(evaluated_datapoints("1 out of the last 3 minutes"), None);
}

#[test]
fn window_overflow_is_no_window() {
    let mut data = alarm_data("ALARM", node_metrics());
    data["configuration"]["metrics"][0]["metricStat"]["period"] = json!(u64::MAX);
    let (_, cause) = clusters_of(lambda_action(data));
    assert_eq!(cause.alarm_window_seconds, None);
}

#[test]
fn triggers_serialise_for_the_summary() {
    let (clusters, cause) = clusters_of(lambda_action(alarm_data("ALARM", node_metrics())));
    let value = serde_json::to_value(Trigger::Clusters { clusters, cause }).unwrap();
    assert_eq!(
        value,
        json!({"clusters": {
            "clusters": [CLUSTER],
            "cause": {
                "kind": "alarm",
                "alarm_name": ALARM,
                "state_change_time": "2026-11-24T13:10:00.123Z",
                "alarm_window_seconds": 180
            }
        }})
    );
    let value = serde_json::to_value(parsed(schedule()).unwrap()).unwrap();
    assert_eq!(value, json!({"all": {"cause": {"kind": "schedule"}}}));
    let value = serde_json::to_value(Trigger::Ignore("why".into())).unwrap();
    assert_eq!(value, json!({"ignore": "why"}));
}

#[test]
fn refusals_do_not_name_one_function() {
    // mongo-endpoint reads its triggers with this parser too.
    for value in [json!(null), json!({}), json!({"Records": 1})] {
        let err = parse(&Payload::Direct(value.clone())).unwrap_err().to_string();
        assert!(err.contains("this function accepts"), "{value}: {err}");
        assert!(!err.contains("redis-failover"), "{value}: {err}");
    }
}
