//! The hostile-input corpus (`tests/hostile/`, see its README) run through
//! every function's real handler, built as Lambda builds it
//! (`Function::new` with the shared AWS configuration), against the local
//! AWS in a region nothing else uses.
//!
//! Each case must end in an error (or, for an SQS batch, in per-message
//! failures) that is not retryable, whose message names what is wrong
//! (`manifest.json` keeps the expected text of each) and quotes no more
//! than the start of a huge input; no case may panic; and afterwards the
//! region must still hold nothing: no EC2 resource, no metric, no queued
//! task, no notification, no DNS record, no completed lifecycle action.
//! Bodies that are not JSON at all never reach a handler (the runtime
//! rejects them, `scripts/fuzz.sh`'s process check shows how); here they
//! are sent inside SNS and SQS envelopes, whose inner text is the
//! handler's own to read.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_config::SdkConfig;
use futures::FutureExt;
use ninelives_tests::{Ec2, env, event, fresh, hosted_zone, lifecycle_actions, root, unique};
use serde_json::{Value, json};
use shared::function::Function;

/// This file's region (and no other test's).
const REGION: &str = "ap-southeast-5";

/// An error message may quote the start of a huge input, never all of it.
const MAX_MESSAGE_CHARS: usize = 1500;

/// The Auto Scaling group the lifecycle cases name.
const GROUP: &str = "kate-redis-1";

/// What a case must produce.
#[derive(Debug)]
enum Expect {
    /// An error whose message contains this.
    Error(String),
    /// An SQS batch answer failing exactly these messages, each for a
    /// reason containing the text.
    Failures(BTreeMap<String, String>),
    /// Not hostile to this function after all: its documented input (the
    /// manifest says why). It must still succeed and change nothing.
    Accepted,
}

struct Case {
    function: String,
    /// Path under `tests/hostile/`, plus how it was wrapped, for messages.
    name: String,
    payload: Value,
    expect: Expect,
}

fn manifest() -> Value {
    let path = root().join("tests/hostile/manifest.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// A corpus file's bytes, with the manifest's placeholders (`@HUGE@`,
/// `@DEEP@`, ...) expanded in `*.in` files: megabytes are made here rather
/// than kept in the repository.
pub fn corpus_bytes(manifest: &Value, relative: &str) -> Vec<u8> {
    let path = root().join("tests/hostile").join(relative);
    let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    if !relative.ends_with(".in") {
        return bytes;
    }
    let mut text = String::from_utf8(bytes).expect("*.in files are UTF-8");
    for (placeholder, rule) in manifest["expand"].as_object().expect("manifest.expand") {
        if !text.contains(placeholder.as_str()) {
            continue;
        }
        let value = if let Some(depth) = rule["nest"].as_u64() {
            format!("{}{}", "[".repeat(depth as usize), "]".repeat(depth as usize))
        } else {
            let unit = rule["repeat"].as_str().expect("expand: repeat or nest");
            unit.repeat(rule["times"].as_u64().expect("expand: times") as usize)
        };
        text = text.replace(placeholder.as_str(), &value);
    }
    text.into_bytes()
}

fn expectation(function: &str, file: &str, value: &Value) -> Expect {
    match value {
        Value::String(s) => Expect::Error(s.clone()),
        Value::Object(items) if items.contains_key("accepted") => Expect::Accepted,
        Value::Object(items) => Expect::Failures(
            items
                .iter()
                .map(|(id, reason)| {
                    let reason = reason
                        .as_str()
                        .unwrap_or_else(|| panic!("manifest {function} {file}: {id} reason is not a string"));
                    (id.clone(), reason.to_owned())
                })
                .collect(),
        ),
        other => panic!("manifest {function} {file}: expected a string or an object, not {other}"),
    }
}

/// An SNS trigger event whose message is `text`.
fn in_sns(text: &str) -> Value {
    json!({"Records": [{
        "EventSource": "aws:sns",
        "EventVersion": "1.0",
        "EventSubscriptionArn": format!("arn:aws:sns:{REGION}:123456789012:t:1"),
        "Sns": {
            "Type": "Notification",
            "MessageId": "hostile-sns",
            "TopicArn": format!("arn:aws:sns:{REGION}:123456789012:t"),
            "Message": text,
            "Timestamp": "2026-11-24T13:10:01.120Z",
            "SignatureVersion": "1",
            "Signature": "EXAMPLE",
            "SigningCertUrl": "https://example.invalid/c.pem",
            "UnsubscribeUrl": "https://example.invalid/u",
            "MessageAttributes": {}
        }
    }]})
}

/// An SQS batch of one message whose body is `text`.
fn in_sqs(text: &str) -> Value {
    json!({"Records": [{
        "messageId": "hostile-sqs",
        "receiptHandle": "AQEBhostile",
        "body": text,
        "attributes": {"ApproximateReceiveCount": "1"},
        "messageAttributes": {},
        "eventSource": "aws:sqs",
        "eventSourceARN": format!("arn:aws:sqs:{REGION}:123456789012:q"),
        "awsRegion": REGION
    }]})
}

/// Every case of the manifest, and a check that every corpus file is used
/// and every function has an expectation for every `any/` case.
fn cases() -> Vec<Case> {
    let manifest = manifest();
    let dir = root().join("tests/hostile");
    let mut files = BTreeSet::new();
    collect_files(&dir, &dir, &mut files);
    let not_json = manifest["not_json"].as_object().expect("manifest.not_json");
    let functions = manifest["functions"].as_object().expect("manifest.functions");
    let mut used = BTreeSet::new();
    let mut out = Vec::new();
    for (function, entries) in functions {
        for (file, expected) in entries.as_object().expect("a function's cases") {
            used.insert(file.clone());
            let bytes = corpus_bytes(&manifest, file);
            let payload: Value = serde_json::from_slice(&bytes).unwrap_or_else(|e| {
                panic!("{file} is listed for {function} but is not JSON ({e}): list it under not_json")
            });
            out.push(Case {
                function: function.clone(),
                name: file.clone(),
                payload,
                expect: expectation(function, file, expected),
            });
        }
        for file in files.iter().filter(|f| f.starts_with("any/")) {
            assert!(
                entries.get(file).is_some() || not_json.contains_key(file),
                "manifest: {function} has no expectation for {file}"
            );
        }
        for (file, expected) in not_json {
            used.insert(file.clone());
            let bytes = corpus_bytes(&manifest, file);
            let err = serde_json::from_slice::<Value>(&bytes)
                .err()
                .unwrap_or_else(|| panic!("{file} is listed under not_json but parses"));
            let expected = expected.as_str().expect("not_json values are strings");
            assert!(
                err.to_string().contains(expected),
                "{file}: {err} does not contain {expected:?}"
            );
            let text = String::from_utf8_lossy(&bytes);
            out.push(Case {
                function: function.clone(),
                name: format!("{file} as an SNS message"),
                payload: in_sns(&text),
                expect: Expect::Error("SNS message is not valid JSON".into()),
            });
            out.push(Case {
                function: function.clone(),
                name: format!("{file} as an SQS body"),
                payload: in_sqs(&text),
                expect: Expect::Failures(BTreeMap::from([(
                    "hostile-sqs".to_owned(),
                    "SQS message body is not valid JSON".to_owned(),
                )])),
            });
        }
    }
    let unused: Vec<_> = files.difference(&used).collect();
    assert!(
        unused.is_empty(),
        "corpus files the manifest does not list: {unused:?}"
    );
    out
}

fn collect_files(base: &Path, dir: &Path, out: &mut BTreeSet<String>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            collect_files(base, &path, out);
        } else {
            let rel = path.strip_prefix(base).unwrap().to_string_lossy().into_owned();
            if rel != "README.md" && rel != "manifest.json" && !rel.ends_with(".py") {
                out.insert(rel);
            }
        }
    }
}

/// The tracing output of the handlers, where an SQS batch's per-message
/// reasons are written.
#[derive(Clone, Default)]
struct Logs(Arc<Mutex<Vec<u8>>>);

impl Write for Logs {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Logs {
    fn take(&self) -> String {
        String::from_utf8_lossy(&std::mem::take(&mut *self.0.lock().unwrap())).into_owned()
    }
}

/// Where the functions could leave a trace in the local AWS.
struct World {
    sdk: SdkConfig,
    zone: String,
    topic: String,
    inbox: String,
    tasks: String,
}

impl World {
    async fn new() -> World {
        let sdk = fresh(REGION).await;
        let zone = hosted_zone(&sdk, &format!("hostile-{}.example.com", unique())).await;
        let (topic, inbox) = ninelives_tests::topic_with_queue(&sdk, "hostile").await;
        let sqs = aws_sdk_sqs::Client::new(&sdk);
        let tasks = sqs
            .create_queue()
            .queue_name(format!("hostile-tasks-{}.fifo", unique()))
            .attributes(aws_sdk_sqs::types::QueueAttributeName::FifoQueue, "true")
            .attributes(
                aws_sdk_sqs::types::QueueAttributeName::ContentBasedDeduplication,
                "false",
            )
            .send()
            .await
            .expect("CreateQueue fifo")
            .queue_url()
            .unwrap()
            .to_owned();
        World {
            sdk,
            zone,
            topic,
            inbox,
            tasks,
        }
    }

    /// Every handler, with the settings that would let it act.
    fn handlers(&self) -> Handlers {
        let base = [
            ("NOTIFY_TOPIC_ARN", self.topic.as_str()),
            ("HOSTED_ZONE_ID", self.zone.as_str()),
            ("TASK_QUEUE_URL", self.tasks.as_str()),
            ("PURGE_DELETES_PER_SECOND", "0"),
            ("NODE_TIMEOUT_MS", "500"),
        ];
        let env = env(&base);
        macro_rules! build {
            ($t:ty) => {
                <$t as Function>::new(
                    <$t as Function>::config(&env).expect(<$t as Function>::NAME),
                    &self.sdk,
                )
            };
        }
        Handlers {
            snapshot_volumes: build!(snapshot_volumes::SnapshotVolumes),
            purge_snapshots: build!(purge_snapshots::PurgeSnapshots),
            lifecycle_hook: build!(lifecycle_hook::LifecycleHook),
            redis_failover: build!(redis_failover::RedisFailover),
            mongo_endpoint: build!(mongo_endpoint::MongoEndpoint),
            replset_tasks: build!(replset_tasks::ReplsetTasks),
            publish_metrics: build!(publish_metrics::PublishMetrics),
        }
    }

    /// What the functions left behind, as a list of findings (empty when
    /// the region is as it was).
    async fn traces(&self) -> Vec<String> {
        let mut found = Vec::new();
        let ec2 = Ec2::new(&self.sdk);
        let snapshots = ec2.snapshots().await;
        if !snapshots.is_empty() {
            found.push(format!("{} snapshots", snapshots.len()));
        }
        let volumes = ec2
            .client
            .describe_volumes()
            .send()
            .await
            .expect("DescribeVolumes");
        if !volumes.volumes().is_empty() {
            found.push(format!("{} volumes", volumes.volumes().len()));
        }
        let reservations = ec2
            .client
            .describe_instances()
            .send()
            .await
            .expect("DescribeInstances");
        if !reservations.reservations().is_empty() {
            found.push("instances".to_owned());
        }
        let metrics = aws_sdk_cloudwatch::Client::new(&self.sdk)
            .list_metrics()
            .send()
            .await
            .expect("ListMetrics");
        if !metrics.metrics().is_empty() {
            found.push(format!("{} metrics", metrics.metrics().len()));
        }
        let sqs = aws_sdk_sqs::Client::new(&self.sdk);
        for (what, queue) in [("notifications", &self.inbox), ("replica-set tasks", &self.tasks)] {
            let got = sqs
                .receive_message()
                .queue_url(queue)
                .max_number_of_messages(10)
                .send()
                .await
                .expect("ReceiveMessage");
            if !got.messages().is_empty() {
                found.push(format!("{} {what}", got.messages().len()));
            }
        }
        let records = aws_sdk_route53::Client::new(&self.sdk)
            .list_resource_record_sets()
            .hosted_zone_id(&self.zone)
            .send()
            .await
            .expect("ListResourceRecordSets");
        let written: Vec<_> = records
            .resource_record_sets()
            .iter()
            .filter(|r| !matches!(r.r#type().as_str(), "SOA" | "NS"))
            .map(|r| r.name().to_owned())
            .collect();
        if !written.is_empty() {
            found.push(format!("DNS records {written:?}"));
        }
        let actions = lifecycle_actions(REGION, GROUP);
        if !actions.is_empty() {
            found.push(format!("{} lifecycle actions", actions.len()));
        }
        found
    }
}

struct Handlers {
    snapshot_volumes: snapshot_volumes::SnapshotVolumes,
    purge_snapshots: purge_snapshots::PurgeSnapshots,
    lifecycle_hook: lifecycle_hook::LifecycleHook,
    redis_failover: redis_failover::RedisFailover,
    mongo_endpoint: mongo_endpoint::MongoEndpoint,
    replset_tasks: replset_tasks::ReplsetTasks,
    publish_metrics: publish_metrics::PublishMetrics,
}

impl Handlers {
    async fn handle(&self, function: &str, payload: Value) -> Result<Value, shared::Error> {
        let event = event(payload, Duration::from_secs(30));
        match function {
            "snapshot-volumes" => self.snapshot_volumes.handle(event).await,
            "purge-snapshots" => self.purge_snapshots.handle(event).await,
            "lifecycle-hook" => self.lifecycle_hook.handle(event).await,
            "redis-failover" => self.redis_failover.handle(event).await,
            "mongo-endpoint" => self.mongo_endpoint.handle(event).await,
            "replset-tasks" => self.replset_tasks.handle(event).await,
            "publish-metrics" => self.publish_metrics.handle(event).await,
            other => panic!("manifest names an unknown function {other:?}"),
        }
    }
}

/// What is wrong with one case's outcome, if anything.
fn judge(case: &Case, outcome: Result<Value, shared::Error>, logs: &str) -> Option<String> {
    match (&case.expect, outcome) {
        (Expect::Error(expected), Err(err)) => {
            let message = err.to_string();
            if !message.contains(expected.as_str()) {
                return Some(format!("error {message:?} does not contain {expected:?}"));
            }
            if message.chars().count() > MAX_MESSAGE_CHARS {
                return Some(format!(
                    "error message is {} characters long (quotes the input?)",
                    message.chars().count()
                ));
            }
            if err.is_retryable() {
                return Some(format!(
                    "error {message:?} is {}, would be retried",
                    err.error_type()
                ));
            }
            None
        }
        (Expect::Failures(expected), Ok(answer)) => {
            let Some(failed) = answer["batchItemFailures"].as_array() else {
                return Some(format!("not an SQS batch answer: {answer}"));
            };
            let failed: BTreeSet<&str> = failed
                .iter()
                .filter_map(|f| f["itemIdentifier"].as_str())
                .collect();
            let wanted: BTreeSet<&str> = expected.keys().map(String::as_str).collect();
            if failed != wanted {
                return Some(format!("failed messages {failed:?}, expected {wanted:?}"));
            }
            for (id, reason) in expected {
                let line = logs
                    .lines()
                    .find(|l| l.contains("message failed") && l.contains(&format!("message_id={id} ")));
                match line {
                    None => return Some(format!("no failure logged for message {id:?}")),
                    Some(line) if !line.contains(reason.as_str()) => {
                        return Some(format!("message {id:?}: {line:?} does not contain {reason:?}"));
                    }
                    Some(line) if line.chars().count() > MAX_MESSAGE_CHARS + 300 => {
                        return Some(format!(
                            "message {id:?}: log line of {} characters",
                            line.chars().count()
                        ));
                    }
                    Some(_) => {}
                }
            }
            None
        }
        (Expect::Accepted, Ok(answer)) if answer.get("batchItemFailures").is_none() => None,
        (expect, outcome) => Some(format!("expected {expect:?}, got {outcome:?}")),
    }
}

#[tokio::test]
async fn every_hostile_case_is_refused_clearly_and_changes_nothing() {
    let cases = cases();
    let world = World::new().await;
    assert_eq!(
        world.traces().await,
        Vec::<String>::new(),
        "the region is not empty to begin with"
    );
    let handlers = world.handlers();
    let logs = Logs::default();
    let writer = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_ansi(false)
        .without_time()
        .with_writer(move || writer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let mut problems = Vec::new();
    let discover = std::env::var_os("HOSTILE_DISCOVER").is_some();
    for case in &cases {
        let outcome = std::panic::AssertUnwindSafe(handlers.handle(&case.function, case.payload.clone()))
            .catch_unwind()
            .await;
        let log = logs.take();
        let outcome = match outcome {
            Ok(outcome) => outcome,
            Err(_) => {
                problems.push(format!("{} {}: PANICKED", case.function, case.name));
                continue;
            }
        };
        if discover {
            let shown = match &outcome {
                Ok(v) => format!("OK {v}"),
                Err(e) => format!("ERR {e}"),
            };
            let failures: Vec<&str> = log.lines().filter(|l| l.contains("message failed")).collect();
            eprintln!(
                "DISCOVER {} {} => {}\n{}",
                case.function,
                case.name,
                shown.chars().take(400).collect::<String>(),
                failures.join("\n")
            );
        }
        if let Some(problem) = judge(case, outcome, &log) {
            problems.push(format!("{} {}: {problem}", case.function, case.name));
        }
    }
    drop(_guard);
    assert!(
        problems.is_empty(),
        "{} of {} cases went wrong:\n{}",
        problems.len(),
        cases.len(),
        problems.join("\n")
    );
    assert!(cases.len() >= 200, "only {} cases", cases.len());
    assert_eq!(
        world.traces().await,
        Vec::<String>::new(),
        "hostile events left traces"
    );
}

/// snapshot-volumes' own reader, without AWS: a list is not read as the
/// input's fields in order, and huge values are quoted clipped.
#[test]
fn snapshot_volumes_refuses_lists_and_clips_what_it_quotes() {
    use shared::envelope::Payload;
    let now = chrono::Utc::now();
    let err = snapshot_volumes::parse_request(&Payload::Direct(json!(["daily"])), now).unwrap_err();
    assert!(
        err.to_string().contains("must be a JSON object, not a list"),
        "{err}"
    );
    let huge = "x".repeat(1 << 20);
    for input in [
        json!({"tier": "daily", "time": format!("2026-{huge}")}),
        json!({"tier": huge}),
    ] {
        let err = snapshot_volumes::parse_request(&Payload::Direct(input), now).unwrap_err();
        assert!(err.to_string().len() < 400, "{:.200}", err.to_string());
    }
}
