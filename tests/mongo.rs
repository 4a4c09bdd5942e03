//! mongo-endpoint, replset-tasks and the lifecycle hook's mongodb roles
//! against a replica set played by `local/mongo_peer.py` (a MongoDB
//! wire-protocol peer; members on 127.0.0.2-6, ports chosen by the peer)
//! and the local AWS for EC2, Route 53, SQS and Auto Scaling. Each test
//! asserts what the set's config, its primary, the records and the queues
//! are afterwards.

use std::time::Duration;

use aws_config::SdkConfig;
use aws_sdk_sqs::types::{MessageSystemAttributeName, QueueAttributeName};
use lifecycle_hook::LifecycleHook;
use mongo_endpoint::MongoEndpoint;
use mongodb::bson::doc;
use ninelives_tests::mongo::{MongoPeer, arbiter, data, mongo_instance};
use ninelives_tests::{Group, env, event, fixture, hosted_zone, sdk, secs, unique};
use replset_tasks::ReplsetTasks;
use serde_json::{Value, json};
use shared::chain::model::Endpoint;
use shared::ec2::Ec2 as Ec2Adapter;
use shared::function::Function;
use shared::metrics::Unit;
use shared::metrics::mongo::{MongoStats, lag_seconds, member_figures};
use shared::mongo::ports::{MemberError, MongoApi};
use shared::mongo::replset::{self, Decision, Kind};
use shared::mongo_node::{MongoNodes, MongoSettings};
use shared::notify::SnsNotifier;
use shared::route53::Route53;
use shared::tags;

fn settings() -> MongoSettings {
    MongoSettings {
        connect_timeout: Duration::from_millis(500),
        command_timeout: Duration::from_secs(2),
        username: None,
        password: None,
        auth_source: "admin".into(),
        tls: false,
        tls_ca_file: None,
    }
}

fn endpoint(host_port: &str) -> Endpoint {
    Endpoint::parse(host_port, 27017).expect("host:port")
}

#[tokio::test]
async fn the_adapter_reads_and_changes_a_set_through_each_member() {
    let peer = MongoPeer::start(
        "rs0.adapter.test",
        &[data("127.0.0.2"), data("127.0.0.3"), arbiter("127.0.0.4")],
        &[data("127.0.0.5")],
        None,
    )
    .await;
    let api = MongoNodes::new(settings());
    let m: Vec<Endpoint> = peer.members.iter().map(|h| endpoint(h)).collect();
    let spare = endpoint(&peer.spares[0]);

    let primary = api.hello(&m[0]).await.expect("hello");
    assert!(primary.writable_primary && primary.set_name.as_deref() == Some("rs0.adapter.test"));
    assert_eq!(primary.me.as_deref(), Some(peer.members[0].as_str()));
    assert!(primary.election_id.is_some());
    let secondary = api.hello(&m[1]).await.expect("hello");
    assert!(secondary.secondary && !secondary.writable_primary);
    assert_eq!(secondary.primary.as_deref(), Some(peer.members[0].as_str()));
    assert!(api.hello(&m[2]).await.expect("hello").arbiter_only);
    let fresh = api.hello(&spare).await.expect("hello");
    assert_eq!(fresh.set_name, None, "a mongod not yet in a set");

    let config = api.config(&m[1]).await.expect("config from a secondary");
    assert_eq!((config.version, config.members.len()), (1, 3));
    let health = api.status(&m[0]).await.expect("status");
    assert!(health.iter().all(|h| h.is_up()), "{health:?}");

    // A reconfig on a secondary is refused with NotWritablePrimary.
    let Decision::Reconfig { config: new, .. } =
        replset::add(&config, &peer.spares[0], Kind::Data).expect("a decision")
    else {
        panic!("expected a reconfig");
    };
    let err = api.reconfig(&m[1], &new).await.expect_err("not primary");
    assert_eq!(err.code(), Some(10107), "{err}");
    assert!(err.is_transient());
    api.reconfig(&m[0], &new).await.expect("reconfig on the primary");
    assert_eq!(peer.version().await, 2);
    assert!(
        peer.config_members()
            .await
            .iter()
            .any(|(h, arb, votes, _)| h == &peer.spares[0] && !arb && *votes == 1)
    );
    assert!(
        api.hello(&spare).await.expect("hello").secondary,
        "the added member is a secondary now"
    );
    // The same version again: the primary refuses it.
    let err = api.reconfig(&m[0], &new).await.expect_err("stale version");
    assert_eq!(err.code(), Some(103), "{err}");

    api.step_down(&m[0], secs(60), secs(10)).await.expect("step down");
    let now = peer.primary().await.expect("a new primary");
    assert_ne!(now, peer.members[0]);
    let sent = peer.log().await;
    let (_, _, body) = sent
        .iter()
        .find(|(_, c, _)| c == "replSetStepDown")
        .expect("a step-down");
    assert_eq!(
        body.get_i64("secondaryCatchUpPeriodSecs")
            .ok()
            .or(body.get_i32("secondaryCatchUpPeriodSecs").ok().map(i64::from)),
        Some(10)
    );

    // A member that is down fails fast as Down, not after the driver's 30 s.
    peer.set_down(&peer.members[1], true).await;
    let started = std::time::Instant::now();
    let err = api.hello(&m[1]).await.expect_err("down");
    assert!(err.is_down(), "{err}");
    assert!(started.elapsed() < secs(10), "took {:?}", started.elapsed());
    assert!(matches!(err, MemberError::Down { .. }));
}

#[tokio::test]
async fn server_status_and_lag_are_read_from_each_member() {
    let peer = MongoPeer::start(
        "rs0.metrics.test",
        &[data("127.0.0.2"), data("127.0.0.3"), arbiter("127.0.0.4")],
        &[],
        None,
    )
    .await;
    let api = MongoNodes::new(settings());
    let m: Vec<Endpoint> = peer.members.iter().map(|h| endpoint(h)).collect();
    let secondary = peer.members[1].as_str();
    peer.set_status(secondary, "globalLock.currentQueue.total", json!(7))
        .await;
    peer.set_status(secondary, "mem.resident", json!(1530)).await;
    peer.set_status(
        secondary,
        "wiredTiger.cache.bytes currently in the cache",
        json!(734_003_200_i64),
    )
    .await;
    peer.set_status(secondary, "connections.available", json!("lots"))
        .await;
    peer.unset_status(secondary, "opcounters").await;
    peer.set_lag(secondary, 2.5).await;

    let primary = member_figures(&api.server_status(&m[0]).await.expect("serverStatus"));
    assert!(primary.is_primary);
    assert_eq!(primary.set_name.as_deref(), Some("rs0.metrics.test"));
    assert!(primary.skipped.is_empty(), "{:?}", primary.skipped);
    assert_eq!(primary.values.len(), 19, "every figure: {:?}", primary.values);

    let figures = member_figures(&api.server_status(&m[1]).await.expect("serverStatus"));
    assert!(!figures.is_primary);
    let value = |name: &str| {
        figures
            .values
            .iter()
            .find(|(n, ..)| *n == name)
            .map(|(_, unit, v)| (*unit, *v))
    };
    assert_eq!(value("OperationsQueuedWaitingForLock"), Some((Unit::Count, 7.0)));
    assert_eq!(
        value("ResidentMemory"),
        Some((Unit::Bytes, 1530.0 * 1024.0 * 1024.0))
    );
    assert_eq!(value("CacheUsedBytes"), Some((Unit::Bytes, 734_003_200.0)));
    assert_eq!(
        figures.skipped,
        ["connections.available: \"lots\" is not a number"]
    );
    assert_eq!(value("AvailableConnections"), None);
    assert_eq!(value("InsertOperations"), None, "opcounters left out");
    assert_eq!(figures.values.len(), 19 - 1 - 6);
    // What was asked: the default sections less two never read.
    let sent = peer.log().await;
    let (_, _, body) = sent
        .iter()
        .find(|(_, c, _)| c == "serverStatus")
        .expect("a serverStatus");
    assert_eq!(body.get_i32("locks").ok(), Some(0), "{body}");

    // Lag, from any member's replSetGetStatus (here the arbiter's).
    let health = api.status(&m[2]).await.expect("status");
    assert_eq!(
        lag_seconds(&health),
        [(peer.members[0].clone(), 0.0), (peer.members[1].clone(), 2.5)]
    );

    // A refused serverStatus is the member's error, classified as usual.
    peer.fail("serverStatus", 1, 13, "Unauthorized").await;
    let err = api.server_status(&m[1]).await.expect_err("refused");
    assert!(matches!(err, MemberError::Auth { .. }), "{err}");

    // A member that is down: no serverStatus, and no lag for it.
    peer.set_down(secondary, true).await;
    let err = api.server_status(&m[1]).await.expect_err("down");
    assert!(err.is_down(), "{err}");
    let health = api.status(&m[0]).await.expect("status");
    assert_eq!(lag_seconds(&health), [(peer.members[0].clone(), 0.0)]);
}

/// A set of three members (two data, one arbiter) on 127.0.0.2-4, each an
/// EC2 instance tagged as its member, and a hosted zone for its record.
struct Set {
    sdk: SdkConfig,
    zone: String,
    name: String,
    peer: MongoPeer,
}

impl Set {
    async fn start(region: &'static str, spares: &[ninelives_tests::mongo::Spec<'_>]) -> Set {
        let sdk = sdk(region).await;
        let domain = format!("z{}.test", unique());
        let zone = hosted_zone(&sdk, &domain).await;
        let name = format!("kate.{domain}");
        let peer = MongoPeer::start(
            &name,
            &[data("127.0.0.2"), data("127.0.0.3"), arbiter("127.0.0.4")],
            spares,
            None,
        )
        .await;
        for (i, member) in peer.members.iter().enumerate() {
            mongo_instance(&sdk, i == 2, &name, member).await;
        }
        Set {
            sdk,
            zone,
            name,
            peer,
        }
    }

    fn endpoint_function(&self, extra: &[(&'static str, &'static str)]) -> MongoEndpoint {
        let zone: &'static str = Box::leak(self.zone.clone().into_boxed_str());
        let mut pairs = vec![("HOSTED_ZONE_ID", zone), ("MONGODB_CONNECT_TIMEOUT_MS", "500")];
        pairs.extend_from_slice(extra);
        let config = mongo_endpoint::Config::from_env(&env(&pairs)).expect("config");
        MongoEndpoint::with(
            config.clone(),
            MongoNodes::new(config.mongo.clone()),
            Route53::from_conf(&self.sdk, self.zone.clone()),
            Ec2Adapter::from_conf(&self.sdk),
            SnsNotifier::from_conf(&self.sdk, None),
        )
    }

    fn tasks_function(&self) -> ReplsetTasks {
        let config = replset_tasks::Config::from_env(&env(&[
            ("MONGODB_CONNECT_TIMEOUT_MS", "500"),
            ("STEP_DOWN_SECONDS", "10"),
            ("CATCH_UP_SECONDS", "2"),
        ]))
        .expect("config");
        ReplsetTasks::with(
            config.clone(),
            MongoNodes::new(config.mongo.clone()),
            Ec2Adapter::from_conf(&self.sdk),
            SnsNotifier::from_conf(&self.sdk, None),
        )
    }

    /// The set's record as `(type, value)`.
    async fn record(&self) -> Option<(String, String)> {
        let out = aws_sdk_route53::Client::new(&self.sdk)
            .list_resource_record_sets()
            .hosted_zone_id(&self.zone)
            .start_record_name(&self.name)
            .send()
            .await
            .expect("ListResourceRecordSets");
        out.resource_record_sets()
            .iter()
            .find(|r| r.name().trim_end_matches('.') == self.name)
            .map(|r| {
                let values: Vec<&str> = r.resource_records().iter().map(|v| v.value()).collect();
                (r.r#type().as_str().to_owned(), values.join(","))
            })
    }
}

async fn run_endpoint(f: &MongoEndpoint, payload: Value) -> Result<Value, shared::Error> {
    f.handle_event(event(payload, secs(60))).await
}

#[tokio::test]
async fn the_record_follows_the_primary_and_is_written_only_when_it_differs() {
    ninelives_tests::fresh("ap-southeast-3").await;
    let set = Set::start("ap-southeast-3", &[]).await;
    let f = set.endpoint_function(&[]);
    let schedule = fixture("mongo-endpoint/scheduled.json");

    let first = run_endpoint(&f, schedule.clone()).await.expect("first run");
    let report = first["sets"]
        .as_array()
        .expect("sets")
        .iter()
        .find(|s| s["set"] == set.name.as_str())
        .expect("our set")
        .clone();
    assert_eq!(report["status"], "created", "{first}");
    assert_eq!(set.record().await, Some(("A".into(), "127.0.0.2".into())));

    let again = run_endpoint(&f, json!({ "cluster": set.name }))
        .await
        .expect("second run");
    assert_eq!(again["sets"][0]["status"], "unchanged", "{again}");

    // An election: the record follows, on an alarm naming the set.
    set.peer.set_primary(Some(&set.peer.members[1])).await;
    let mut alarm = fixture("mongo-endpoint/alarm-eventbridge.json");
    let text = alarm.to_string().replace("kate.example.com", &set.name);
    alarm = serde_json::from_str(&text).expect("json");
    let moved = run_endpoint(&f, alarm).await.expect("alarm run");
    assert_eq!(moved["sets"][0]["status"], "moved", "{moved}");
    assert_eq!(moved["sets"][0]["record"]["from"], "127.0.0.2");
    assert_eq!(set.record().await, Some(("A".into(), "127.0.0.3".into())));

    // No primary (an election in progress): reported, record untouched.
    set.peer.set_primary(None).await;
    let none = run_endpoint(&f, json!({ "cluster": set.name }))
        .await
        .expect("reported, not failed");
    assert_eq!(none["sets"][0]["status"], "no-primary", "{none}");
    assert_eq!(set.record().await, Some(("A".into(), "127.0.0.3".into())));

    // Two concurrent runs after the next election write the record once.
    set.peer.set_primary(Some(&set.peer.members[0])).await;
    let g = set.endpoint_function(&[]);
    let (a, b) = tokio::join!(
        run_endpoint(&f, json!({ "cluster": set.name })),
        run_endpoint(&g, json!({ "cluster": set.name }))
    );
    let statuses = [
        a.expect("a")["sets"][0]["status"].clone(),
        b.expect("b")["sets"][0]["status"].clone(),
    ];
    assert_eq!(
        statuses.iter().filter(|s| **s == "moved").count(),
        1,
        "{statuses:?}"
    );
    assert!(
        statuses
            .iter()
            .all(|s| *s == "moved" || *s == "moved-by-another-run" || *s == "unchanged"),
        "{statuses:?}"
    );
    assert_eq!(set.record().await, Some(("A".into(), "127.0.0.2".into())));

    // A dry run reports the move and makes none.
    set.peer.set_primary(Some(&set.peer.members[1])).await;
    let dry = set.endpoint_function(&[("DRY_RUN", "true")]);
    let out = run_endpoint(&dry, json!({ "cluster": set.name }))
        .await
        .expect("dry run");
    assert_eq!(out["sets"][0]["status"], "would-move", "{out}");
    assert_eq!(set.record().await, Some(("A".into(), "127.0.0.2".into())));

    // Every member down: the run fails (retryable) and changes nothing.
    for m in &set.peer.members {
        set.peer.set_down(m, true).await;
    }
    let err = run_endpoint(&f, json!({ "cluster": set.name }))
        .await
        .expect_err("unreachable");
    assert!(err.is_retryable(), "{err}");
    assert!(err.to_string().contains("no member answered"), "{err}");
    assert_eq!(set.record().await, Some(("A".into(), "127.0.0.2".into())));
    // Following the primary only reads the set: no member was told to change.
    assert_eq!(set.peer.count("replSetReconfig").await, 0);
    assert_eq!(set.peer.count("replSetStepDown").await, 0);
}

/// A FIFO task queue with a dead-letter queue after `max_receives`.
async fn task_queue(sdk: &SdkConfig, max_receives: u32) -> (String, String) {
    let sqs = aws_sdk_sqs::Client::new(sdk);
    let name = format!("tasks-{}", unique());
    let dlq = sqs
        .create_queue()
        .queue_name(format!("{name}-dlq.fifo"))
        .attributes(QueueAttributeName::FifoQueue, "true")
        .send()
        .await
        .expect("CreateQueue dlq");
    let dlq_url = dlq.queue_url().expect("url").to_owned();
    let dlq_arn = sqs
        .get_queue_attributes()
        .queue_url(&dlq_url)
        .attribute_names(QueueAttributeName::QueueArn)
        .send()
        .await
        .expect("GetQueueAttributes")
        .attributes()
        .and_then(|a| a.get(&QueueAttributeName::QueueArn).cloned())
        .expect("an ARN");
    let queue = sqs
        .create_queue()
        .queue_name(format!("{name}.fifo"))
        .attributes(QueueAttributeName::FifoQueue, "true")
        .attributes(QueueAttributeName::VisibilityTimeout, "0")
        .attributes(
            QueueAttributeName::RedrivePolicy,
            json!({ "deadLetterTargetArn": dlq_arn, "maxReceiveCount": max_receives }).to_string(),
        )
        .send()
        .await
        .expect("CreateQueue");
    (queue.queue_url().expect("url").to_owned(), dlq_url)
}

/// What Lambda's SQS event source mapping does once: receive a batch, invoke
/// the function with it, delete what it did not report as failed. Returns
/// the response and the bodies received.
async fn deliver(sdk: &SdkConfig, queue_url: &str, f: &ReplsetTasks) -> (Value, Vec<Value>) {
    let sqs = aws_sdk_sqs::Client::new(sdk);
    let out = sqs
        .receive_message()
        .queue_url(queue_url)
        .max_number_of_messages(10)
        .message_system_attribute_names(MessageSystemAttributeName::All)
        .send()
        .await
        .expect("ReceiveMessage");
    let messages = out.messages().to_vec();
    if messages.is_empty() {
        return (json!({ "batchItemFailures": [] }), Vec::new());
    }
    let records: Vec<Value> = messages
        .iter()
        .map(|m| {
            let attributes: serde_json::Map<String, Value> = m
                .attributes()
                .map(|a| {
                    a.iter()
                        .map(|(k, v)| (k.as_str().to_owned(), Value::from(v.as_str())))
                        .collect()
                })
                .unwrap_or_default();
            json!({
                "messageId": m.message_id(),
                "receiptHandle": m.receipt_handle(),
                "body": m.body(),
                "attributes": attributes,
                "messageAttributes": {},
                "md5OfBody": m.md5_of_body(),
                "eventSource": "aws:sqs",
                "eventSourceARN": "arn:aws:sqs:eu-south-2:123456789012:tasks.fifo",
                "awsRegion": "eu-south-2"
            })
        })
        .collect();
    let bodies: Vec<Value> = messages
        .iter()
        .map(|m| serde_json::from_str(m.body().unwrap_or("null")).unwrap_or(Value::Null))
        .collect();
    let response = f
        .handle_event(event(json!({ "Records": records }), secs(120)))
        .await
        .expect("an SQS batch always returns its failures");
    let failed: Vec<&str> = response["batchItemFailures"]
        .as_array()
        .expect("batchItemFailures")
        .iter()
        .filter_map(|f| f["itemIdentifier"].as_str())
        .collect();
    for m in &messages {
        if !failed.contains(&m.message_id().unwrap_or_default()) {
            sqs.delete_message()
                .queue_url(queue_url)
                .receipt_handle(m.receipt_handle().unwrap_or_default())
                .send()
                .await
                .expect("DeleteMessage");
        }
    }
    (response, bodies)
}

async fn queue_depth(sdk: &SdkConfig, queue_url: &str) -> usize {
    let out = aws_sdk_sqs::Client::new(sdk)
        .get_queue_attributes()
        .queue_url(queue_url)
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
        .send()
        .await
        .expect("GetQueueAttributes");
    out.attributes()
        .and_then(|a| a.get(&QueueAttributeName::ApproximateNumberOfMessages))
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

#[tokio::test]
async fn a_launched_member_is_added_and_a_terminated_one_steps_down_and_is_removed() {
    let set = Set::start("eu-south-2", &[data("127.0.0.5")]).await;
    let (queue_url, _dlq) = task_queue(&set.sdk, 3).await;
    let spare = set.peer.spares[0].clone();
    let group = Group::create(
        &set.sdk,
        "eu-south-2",
        &[
            (tags::CLUSTER, &set.name),
            (tags::ROLE, "mongodb"),
            (tags::ENDPOINT, &spare),
            (tags::RESTORE, "none"),
            (tags::SIZE, "1"),
        ],
    )
    .await;
    let node = group.instances().await.remove(0);
    let queue: &'static str = Box::leak(queue_url.clone().into_boxed_str());
    let hook = LifecycleHook::new(
        lifecycle_hook::Config::from_env(&env(&[("TASK_QUEUE_URL", queue)])).expect("config"),
        &set.sdk,
    );
    let launch = group.event("launch", &node);
    let out = hook
        .handle(event(launch.clone(), secs(120)))
        .await
        .expect("launch");
    assert_eq!(out["status"], "continued", "{out}");
    // A duplicate delivery of the event enqueues nothing new.
    hook.handle(event(launch, secs(120))).await.expect("duplicate");
    assert_eq!(queue_depth(&set.sdk, &queue_url).await, 1);

    let f = set.tasks_function();
    let (response, bodies) = deliver(&set.sdk, &queue_url, &f).await;
    assert_eq!(response["batchItemFailures"], json!([]), "{response}");
    assert_eq!(bodies.len(), 1);
    assert_eq!(bodies[0]["type"], "add");
    assert_eq!(bodies[0]["host"], spare.as_str());
    let members = set.peer.config_members().await;
    assert!(
        members
            .iter()
            .any(|(h, arb, votes, prio)| *h == spare && !arb && *votes == 1 && *prio == 1.0),
        "{members:?}"
    );
    assert_eq!(set.peer.version().await, 2);
    assert_eq!(
        queue_depth(&set.sdk, &queue_url).await,
        0,
        "applied tasks are deleted"
    );

    // The new member becomes primary; then its instance is terminated.
    set.peer.set_primary(Some(&spare)).await;
    set.peer.control(doc! { "do": "clearLog" }).await;
    let terminate = group.event("terminate", &node);
    let out = hook.handle(event(terminate, secs(120))).await.expect("terminate");
    assert_eq!(out["status"], "continued", "{out}");
    let (response, bodies) = deliver(&set.sdk, &queue_url, &f).await;
    assert_eq!(response["batchItemFailures"], json!([]), "{response}");
    let kinds: Vec<&str> = bodies.iter().filter_map(|b| b["type"].as_str()).collect();
    assert_eq!(kinds, ["step-down-if-primary", "remove"]);
    let primary = set.peer.primary().await.expect("a primary");
    assert_ne!(primary, spare, "stepped down");
    assert!(
        set.peer.config_members().await.iter().all(|(h, ..)| *h != spare),
        "removed"
    );
    assert_eq!(set.peer.version().await, 3);
    let commands: Vec<String> = set
        .peer
        .log()
        .await
        .into_iter()
        .map(|(_, c, _)| c)
        .filter(|c| c.starts_with("replSet") && c != "replSetGetConfig" && c != "replSetGetStatus")
        .collect();
    assert_eq!(commands, ["replSetStepDown", "replSetReconfig"]);
}

#[tokio::test]
async fn a_bad_task_stays_blocks_its_set_and_reaches_the_dead_letter_queue() {
    let set = Set::start("me-central-1", &[arbiter("127.0.0.6")]).await;
    let other = Set::start("me-central-1", &[data("127.0.0.5")]).await;
    let (queue_url, dlq_url) = task_queue(&set.sdk, 2).await;
    let spare = set.peer.spares[0].clone();
    let newcomer = mongo_instance(&set.sdk, true, &set.name, &spare).await;
    let other_spare = other.peer.spares[0].clone();
    let other_new = mongo_instance(&other.sdk, false, &other.name, &other_spare).await;
    let sqs = aws_sdk_sqs::Client::new(&set.sdk);
    let task = |schema: u64, kind: &str, set: &str, host: &str, instance: &str| json!({ "schema": schema, "type": kind, "set": set, "host": host, "instance_id": instance, "transition": "launch", "requested_at": "2026-11-25T10:00:00Z" });
    for (body, group, dedup) in [
        (
            task(2, "add-arbiter", &set.name, &spare, &newcomer),
            set.name.clone(),
            "bad",
        ),
        (
            task(1, "add-arbiter", &set.name, &spare, &newcomer),
            set.name.clone(),
            "good",
        ),
        (
            task(1, "add", &other.name, &other_spare, &other_new),
            other.name.clone(),
            "other",
        ),
    ] {
        sqs.send_message()
            .queue_url(&queue_url)
            .message_body(body.to_string())
            .message_group_id(group)
            .message_deduplication_id(dedup)
            .send()
            .await
            .expect("SendMessage");
    }
    let f = set.tasks_function();
    let (response, bodies) = deliver(&set.sdk, &queue_url, &f).await;
    assert_eq!(bodies.len(), 3);
    assert_eq!(
        response["batchItemFailures"].as_array().map(Vec::len),
        Some(2),
        "{response}"
    );
    // The later task of the same set was not applied before the bad one.
    assert_eq!(set.peer.version().await, 1);
    assert_eq!(set.peer.count("replSetReconfig").await, 0);
    // The other set went on.
    assert!(
        other
            .peer
            .config_members()
            .await
            .iter()
            .any(|(h, ..)| *h == other_spare)
    );

    // Delivered again until the queue's maxReceiveCount moves the bad task
    // to the dead-letter queue. While it is on the queue, its set's later
    // task is never applied; once it is gone, the later task is.
    for _ in 0..4 {
        let (_, bodies) = deliver(&set.sdk, &queue_url, &f).await;
        if bodies.iter().any(|b| b["schema"] == 2) {
            assert_eq!(
                set.peer.version().await,
                1,
                "applied before the earlier failed task"
            );
        }
    }
    let dead = aws_sdk_sqs::Client::new(&set.sdk)
        .receive_message()
        .queue_url(&dlq_url)
        .max_number_of_messages(10)
        .send()
        .await
        .expect("ReceiveMessage dlq");
    let dead: Vec<Value> = dead
        .messages()
        .iter()
        .filter_map(|m| serde_json::from_str::<Value>(m.body().unwrap_or("{}")).ok())
        .collect();
    assert!(
        dead.iter().any(|b| b["schema"] == 2),
        "the bad task is in the DLQ: {dead:?}"
    );
    // The later task was either applied after it or, having been handed
    // back as often, is beside it in the DLQ: never lost, never early.
    let applied = set
        .peer
        .config_members()
        .await
        .iter()
        .any(|(h, arb, ..)| *h == spare && *arb);
    let parked = dead.iter().any(|b| b["schema"] == 1);
    assert!(applied != parked, "applied: {applied}, in the DLQ: {parked}");
    assert_eq!(queue_depth(&set.sdk, &queue_url).await, 0);
}
