//! The fault matrix: each function against the local AWS through the
//! fault-injecting proxy (local/faults/addon.py, tests/support/faults.rs).
//!
//! For each function one realistic scenario runs on a fresh set-up once
//! without faults and once per fault cell. Afterwards the state of the world
//! (what exists in the local AWS, read directly, not through the proxy) must
//! equal the fault-free run's. A run may instead fail, but then only with a
//! retryable error, and a redelivery of the same event (Lambda's retry, no
//! faults) must reach the fault-free state. Every cell asserts that the proxy
//! really injected its fault.
//!
//! Each test owns a proxy port (17700-17709 on 127.0.14.2), so its faults
//! reach no other test. The regions: ap-south-2, ap-southeast-4,
//! ap-southeast-6 and ap-east-2 are each one test's own; redis-failover,
//! mongo-endpoint, replset-tasks and the proxy's own test share us-east-1
//! (where Route 53 is signed), where nothing is ever cleared and each counts
//! only what it made itself (unique names and tags). Each cell prints one `CELL` line (run with `--nocapture` to
//! see the matrix).

#[path = "support/faults.rs"]
mod faults;

use std::collections::BTreeMap;
use std::future::Future;
use std::time::{Duration, Instant};

use aws_sdk_ec2::types::Filter;
use chrono::{SecondsFormat, Utc};
use faults::{Fault, FaultProxy};
use ninelives_tests::{Ec2, Group, completions, env, event, fresh, secs, unique};
use serde_json::{Value, json};
use shared::function::Function;
use shared::tags;

/// What one cell did.
struct Cell {
    name: String,
    /// `ok`, or `failed retryably, redelivered` with the error.
    outcome: String,
    injected: Vec<(String, String)>,
    took: Duration,
    /// What the last (successful) invocation answered.
    result: Value,
}

impl Cell {
    fn print(&self, function: &str) {
        let mut by_op: BTreeMap<&str, usize> = BTreeMap::new();
        for (op, _) in &self.injected {
            *by_op.entry(op.as_str()).or_default() += 1;
        }
        println!(
            "CELL {function} | {} | {} | injected {} {:?} | {:.1} s",
            self.name,
            self.outcome,
            self.injected.len(),
            by_op,
            self.took.as_secs_f64()
        );
    }
}

/// Runs `invoke` with `rules` set for `region` on the proxy. A failure must
/// be retryable; the same event is then redelivered without faults, and must
/// succeed.
async fn run<F, Fut>(proxy: &FaultProxy, region: &str, name: &str, rules: &[Value], invoke: F) -> Cell
where
    F: Fn() -> Fut,
    Fut: Future<Output = Result<Value, shared::Error>>,
{
    let started = Instant::now();
    proxy.set(region, rules);
    let first = invoke().await;
    let injected = proxy.injected(region);
    let seen = proxy.counts(region);
    proxy.clear(region);
    if std::env::var_os("FAULTS_DEBUG").is_some() {
        println!("RESULT {name}: {first:#?}");
    }
    let (outcome, result) = match first {
        Ok(v) => ("ok".to_owned(), v),
        Err(e) => {
            assert!(
                e.is_retryable(),
                "{name}: the run failed with an error Lambda would not retry: {e}"
            );
            // Lambda retries an asynchronous invocation twice.
            let mut again = invoke().await;
            if let Err(e) = &again {
                assert!(e.is_retryable(), "{name}: the redelivery failed for good: {e}");
                again = invoke().await;
            }
            let result =
                again.unwrap_or_else(|e| panic!("{name}: the redeliveries without faults failed: {e}"));
            (format!("failed retryably ({e}), redelivery ok"), result)
        }
    };
    if !rules.is_empty() {
        assert!(
            !injected.is_empty(),
            "{name}: the proxy injected nothing (saw {seen})"
        );
    }
    Cell {
        name: name.to_owned(),
        outcome,
        injected,
        took: started.elapsed(),
        result,
    }
}

/// The cells every function gets: each fault kind over all its calls, and
/// the response-lost kinds aimed at the first of `mutating` (the calls that
/// change the world, where a retry after success matters).
fn cells(mutating: &[&str]) -> Vec<(String, Vec<Value>)> {
    let mut all = Vec::new();
    for (fault, max) in [
        (Fault::Throttle, 12),
        (Fault::Http503, 12),
        (Fault::Latency, 6),
        (Fault::HangBefore, 2),
        (Fault::HangAfter, 2),
        (Fault::DropBefore, 12),
        (Fault::DropAfter, 12),
    ] {
        all.push((
            format!("{} every 2nd ({max} at most)", fault.name()),
            vec![fault.rule(2, None, Some(max))],
        ));
    }
    for op in mutating {
        for fault in [Fault::DropAfter, Fault::HangAfter] {
            all.push((
                format!("{} first {op}", fault.name()),
                vec![fault.rule(1, Some(&[op]), Some(1))],
            ));
        }
    }
    all
}

/// For a function that makes a single AWS call: each fault kind on its
/// first `n` attempts (fewer than the SDK's 6, so the call gets through).
fn cells_first(n: u32) -> Vec<(String, Vec<Value>)> {
    Fault::ALL
        .iter()
        .map(|fault| {
            let n = if matches!(fault, Fault::HangBefore | Fault::HangAfter) {
                1
            } else {
                n
            };
            (
                format!("{} first {n} attempts", fault.name()),
                vec![fault.rule(1, None, Some(n))],
            )
        })
        .collect()
}

/// Replaces every id of `ids` in `text` by its label: worlds of two runs
/// compare equal when they differ only in the ids AWS gave out.
fn relabel(text: &str, ids: &BTreeMap<String, String>) -> String {
    ids.iter()
        .fold(text.to_owned(), |t, (id, label)| t.replace(id.as_str(), label))
}

fn rfc3339(t: chrono::DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// A topic with an SQS queue subscribed (raw delivery): the queue's depth
/// counts the notifications a run published.
async fn inbox(sdk: &aws_config::SdkConfig) -> (String, String) {
    ninelives_tests::topic_with_queue(sdk, "ninelives").await
}

/// Messages waiting in `queue`.
async fn depth(sdk: &aws_config::SdkConfig, queue: &str) -> usize {
    use aws_sdk_sqs::types::QueueAttributeName as A;
    let out = aws_sdk_sqs::Client::new(sdk)
        .get_queue_attributes()
        .queue_url(queue)
        .attribute_names(A::ApproximateNumberOfMessages)
        .send()
        .await
        .expect("GetQueueAttributes");
    out.attributes()
        .and_then(|a| a.get(&A::ApproximateNumberOfMessages))
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

/// Every snapshot of the region as `volume label -> sorted tags`, ids
/// relabelled and the per-call set token left out (random by design).
async fn snapshot_world(ec2: &Ec2, ids: &BTreeMap<String, String>) -> Vec<String> {
    let mut world: Vec<String> = ec2
        .snapshots()
        .await
        .iter()
        .map(|s| {
            let mut t: Vec<String> = s
                .tags()
                .iter()
                .filter(|t| t.key() != Some(tags::SET) && t.key() != Some(tags::RUN))
                .map(|t| {
                    format!(
                        "{}={}",
                        t.key().unwrap_or_default(),
                        t.value().unwrap_or_default()
                    )
                })
                .collect();
            t.sort();
            relabel(
                &format!(
                    "{} [{}] {} | {}",
                    s.volume_id().unwrap_or_default(),
                    s.state().map(|s| s.as_str()).unwrap_or_default(),
                    s.description().unwrap_or_default(),
                    t.join(", ")
                ),
                ids,
            )
        })
        .collect();
    world.sort();
    world
}

// --- snapshot-volumes ----------------------------------------------------------

/// Two instances; a cluster of two volumes on one (a CreateSnapshots set),
/// another cluster's volume on it, a detached volume (CreateSnapshot), a
/// volume of the cluster on the other instance; notifications to a queue.
async fn snapshot_cell(proxy: &FaultProxy, time: &str, name: &str, rules: &[Value]) -> (Vec<String>, Cell) {
    const REGION: &str = "ap-south-2";
    let sdk = fresh(REGION).await;
    let ec2 = Ec2::new(&sdk);
    let (topic, queue) = inbox(&sdk).await;
    let db = "db.faults.example.com";
    let kate = "kate.faults.example.com";
    let a = ec2.instance().await;
    let b = ec2.instance().await;
    let mut ids = BTreeMap::new();
    ids.insert(a.id.clone(), "i-A".to_owned());
    ids.insert(b.id.clone(), "i-B".to_owned());
    for (label, tags, attach) in [
        (
            "vol-main",
            vec![(tags::CLUSTER, db), (tags::NAME, "main")],
            Some((&a, "/dev/sdf")),
        ),
        (
            "vol-ts1",
            vec![(tags::CLUSTER, db), (tags::NAME, "ts1")],
            Some((&a, "/dev/sdg")),
        ),
        // On the other instance: moto's CreateSnapshots ignores
        // ExcludeDataVolumeIds. The run discards such an extra snapshot from
        // the response, but when the response is lost the extra stays in
        // the set (see the report); that is moto's gap, not this matrix's.
        (
            "vol-cache",
            vec![(tags::CLUSTER, kate), (tags::NAME, "data")],
            Some((&b, "/dev/sdi")),
        ),
        (
            "vol-replica",
            vec![(tags::CLUSTER, db), (tags::NAME, "main")],
            Some((&b, "/dev/sdf")),
        ),
        (
            "vol-spare",
            vec![(tags::CLUSTER, db), (tags::NAME, "spare")],
            None,
        ),
    ] {
        let id = ec2.volume(&a.az, &tags, attach).await;
        ids.insert(id, label.to_owned());
    }
    let faulted = proxy.sdk(REGION).await;
    let config = snapshot_volumes::Config::from_env(&env(&[("NOTIFY_TOPIC_ARN", &topic)])).expect("config");
    let handler = snapshot_volumes::SnapshotVolumes::new(config, &faulted);
    let e = event(json!({"tier": "daily", "time": time}), secs(120));
    let cell = run(proxy, REGION, name, rules, || handler.handle(e.clone())).await;
    let mut world = snapshot_world(&ec2, &ids).await;
    world.push(format!("notifications: {}", depth(&sdk, &queue).await));
    (world, cell)
}

#[tokio::test]
async fn snapshot_volumes_under_faults() {
    let proxy = FaultProxy::start(17700);
    let time = rfc3339(Utc::now());
    let (baseline, cell) = snapshot_cell(&proxy, &time, "no faults", &[]).await;
    cell.print("snapshot-volumes");
    assert_eq!(
        baseline.iter().filter(|s| s.starts_with("vol-")).count(),
        5,
        "{baseline:#?}"
    );
    let mut failures = Vec::new();
    for (name, rules) in cells(&["CreateSnapshots", "CreateSnapshot", "CreateTags", "Publish"]) {
        let (world, cell) = snapshot_cell(&proxy, &time, &name, &rules).await;
        cell.print("snapshot-volumes");
        // Known gap: SNS Publish has no idempotency token, so a publish
        // whose response was lost is sent again by the SDK's retry: the
        // subscriber gets the summary twice. Asserted, so that a change
        // (either way) is noticed.
        let lost_publish = cell
            .injected
            .iter()
            .any(|(op, kind)| op == "Publish" && (kind == "drop_after" || kind == "hang_after"));
        let expected: Vec<String> = if lost_publish {
            println!("GAP snapshot-volumes | {name} | the notification is delivered twice");
            baseline
                .iter()
                .map(|w| {
                    if w == "notifications: 1" {
                        "notifications: 2".to_owned()
                    } else {
                        w.clone()
                    }
                })
                .collect()
        } else {
            baseline.clone()
        };
        if world != expected {
            failures.push(format!("{name}: {world:#?}"));
        }
    }
    assert!(
        failures.is_empty(),
        "baseline {baseline:#?}\ndiffers under: {failures:#?}"
    );
}

// --- purge-snapshots -------------------------------------------------------------

/// One volume's managed snapshots: six expired, the newest (expired too, kept
/// as the last one), two unexpired, and an expired one an AMI uses.
async fn purge_cell(proxy: &FaultProxy, name: &str, rules: &[Value]) -> (Vec<String>, Cell) {
    const REGION: &str = "ap-southeast-4";
    let sdk = fresh(REGION).await;
    let ec2 = Ec2::new(&sdk);
    let cluster = "purge.faults.example.com";
    let a = ec2.instance().await;
    let vol = ec2
        .volume(&a.az, &[(tags::CLUSTER, cluster), (tags::NAME, "main")], None)
        .await;
    let past = rfc3339(Utc::now() - chrono::Duration::days(1));
    let future = rfc3339(Utc::now() + chrono::Duration::days(1));
    let mut ids = BTreeMap::new();
    ids.insert(vol.clone(), "vol-main".to_owned());
    let snap = |label: String, expires: String| {
        let ec2 = &ec2;
        let vol = vol.clone();
        async move {
            let tags = [
                (tags::MANAGED_BY, "ninelives"),
                (tags::CLUSTER, cluster),
                (tags::NAME, "main"),
                (tags::EXPIRES_AT, expires.as_str()),
                ("label", label.as_str()),
            ];
            ec2.snapshot(&vol, &tags).await
        }
    };
    for n in 0..6 {
        snap(format!("expired-{n}"), past.clone()).await;
    }
    let in_ami = snap("expired-in-ami".into(), past.clone()).await;
    ec2.image_of(&in_ami).await;
    for n in 0..2 {
        snap(format!("unexpired-{n}"), future.clone()).await;
    }
    // Start times have whole seconds: make the newest unambiguous.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    snap("newest".into(), past.clone()).await;

    let faulted = proxy.sdk(REGION).await;
    let config = purge_snapshots::Config::from_env(&env(&[
        ("PURGE_DELETES_PER_SECOND", "0"),
        ("PURGE_CONCURRENCY", "4"),
    ]))
    .expect("config");
    let handler = purge_snapshots::PurgeSnapshots::new(config, &faulted);
    let e = event(json!({}), secs(120));
    let cell = run(proxy, REGION, name, rules, || handler.handle(e.clone())).await;
    let mut world: Vec<String> = ec2
        .snapshots()
        .await
        .iter()
        .map(|s| {
            let label = ninelives_tests::tag(s, "label").unwrap_or("?");
            relabel(&format!("{label} of {}", s.volume_id().unwrap_or_default()), &ids)
        })
        .collect();
    world.sort();
    (world, cell)
}

#[tokio::test]
async fn purge_snapshots_under_faults() {
    let proxy = FaultProxy::start(17701);
    let (baseline, cell) = purge_cell(&proxy, "no faults", &[]).await;
    cell.print("purge-snapshots");
    assert_eq!(
        baseline,
        [
            "expired-in-ami of vol-main",
            "newest of vol-main",
            "unexpired-0 of vol-main",
            "unexpired-1 of vol-main"
        ],
        "the fault-free purge keeps exactly these"
    );
    let mut failures = Vec::new();
    for (name, rules) in cells(&["DeleteSnapshot"]) {
        let (world, cell) = purge_cell(&proxy, &name, &rules).await;
        cell.print("purge-snapshots");
        if world != baseline {
            failures.push(format!("{name}: {world:#?}"));
        }
    }
    assert!(
        failures.is_empty(),
        "baseline {baseline:#?}\ndiffers under: {failures:#?}"
    );
}

// --- lifecycle-hook ---------------------------------------------------------------

/// A group of one PostgreSQL node with a backup of its data volume; the node
/// is replaced and the replacement's launch event arrives: the volume is
/// restored from the snapshot, attached, and the action completed.
async fn lifecycle_cell(proxy: &FaultProxy, name: &str, rules: &[Value]) -> (Vec<String>, Cell) {
    const REGION: &str = "ap-southeast-6";
    let sdk = fresh(REGION).await;
    let ec2 = Ec2::new(&sdk);
    let cluster = "pg.faults.example.com".to_owned();
    let group = Group::create(
        &sdk,
        REGION,
        &[
            (tags::CLUSTER, cluster.as_str()),
            (tags::ROLE, "postgres"),
            (tags::SIZE, "10"),
        ],
    )
    .await;
    let direct = lifecycle_hook::LifecycleHook::new(
        lifecycle_hook::Config::from_env(&env(&[])).expect("config"),
        &sdk,
    );
    let first = group.instances().await.remove(0);
    direct
        .handle(event(group.event("launch", &first), secs(60)))
        .await
        .expect("the first launch, without faults");
    snapshot_volumes::SnapshotVolumes::new(
        snapshot_volumes::Config::from_env(&env(&[])).expect("config"),
        &sdk,
    )
    .handle(event(json!({"tier": "daily"}), secs(60)))
    .await
    .expect("a backup, without faults");
    let backup = ec2.snapshots().await;
    assert_eq!(backup.len(), 1, "one backup");
    let backup = backup[0].snapshot_id().expect("an id").to_owned();
    let second = group.replace(&first).await;

    let faulted = proxy.sdk(REGION).await;
    let handler = lifecycle_hook::LifecycleHook::new(
        lifecycle_hook::Config::from_env(&env(&[])).expect("config"),
        &faulted,
    );
    let launch = group.event("launch", &second);
    let token = launch["detail"]["LifecycleActionToken"]
        .as_str()
        .expect("a token")
        .to_owned();
    let e = event(launch, secs(120));
    let cell = run(proxy, REGION, name, rules, || handler.handle(e.clone())).await;

    let mut ids = BTreeMap::new();
    ids.insert(first.clone(), "i-first".to_owned());
    ids.insert(second.clone(), "i-second".to_owned());
    ids.insert(backup, "snap-backup".to_owned());
    ids.insert(token, "token-second".to_owned());
    let volumes = ec2
        .client
        .describe_volumes()
        .filters(Filter::builder().name("tag-key").values(tags::CLUSTER).build())
        .send()
        .await
        .expect("DescribeVolumes");
    let mut world: Vec<String> = volumes
        .volumes()
        .iter()
        .map(|v| {
            let mut t: Vec<String> = v
                .tags()
                .iter()
                .map(|t| {
                    format!(
                        "{}={}",
                        t.key().unwrap_or_default(),
                        t.value().unwrap_or_default()
                    )
                })
                .collect();
            t.sort();
            let at: Vec<String> = v
                .attachments()
                .iter()
                .map(|a| {
                    format!(
                        "{}:{}",
                        a.instance_id().unwrap_or_default(),
                        a.device().unwrap_or_default()
                    )
                })
                .collect();
            if let Some(id) = v.volume_id() {
                let label = format!("vol-{}", ids.len());
                ids.entry(id.to_owned()).or_insert(label);
            }
            format!(
                "volume from {} size {} attached {:?} | {}",
                v.snapshot_id().unwrap_or("-"),
                v.size().unwrap_or_default(),
                at,
                t.join(", ")
            )
        })
        .collect();
    let mut done: Vec<String> = completions(REGION, &group.name)
        .into_iter()
        .filter(|(instance, _, _)| *instance == second)
        .map(|(i, t, r)| format!("completed {i} {t} {r}"))
        .collect();
    world.append(&mut done);
    let mut world: Vec<String> = world.iter().map(|w| relabel(w, &ids)).collect();
    world.sort();
    (world, cell)
}

#[tokio::test]
async fn lifecycle_hook_under_faults() {
    let proxy = FaultProxy::start(17702);
    let (baseline, cell) = lifecycle_cell(&proxy, "no faults", &[]).await;
    cell.print("lifecycle-hook");
    assert!(
        baseline
            .iter()
            .any(|w| w.contains("completed i-second token-second CONTINUE")),
        "{baseline:#?}"
    );
    assert!(
        baseline
            .iter()
            .any(|w| w.starts_with("volume from snap-backup") && w.contains("i-second:/dev/sdf")),
        "{baseline:#?}"
    );
    let mut failures = Vec::new();
    for (name, rules) in cells(&["CreateVolume", "AttachVolume", "CompleteLifecycleAction"]) {
        let (world, cell) = lifecycle_cell(&proxy, &name, &rules).await;
        cell.print("lifecycle-hook");
        if world != baseline {
            failures.push(format!("{name}: {world:#?}"));
        }
    }
    assert!(
        failures.is_empty(),
        "baseline {baseline:#?}\ndiffers under: {failures:#?}"
    );
}

// --- publish-metrics --------------------------------------------------------------

/// A Redis head (a real redis-server) and a tagged node that is not
/// running: the run publishes NodeUp 1 and 0, IsMaster, HeadUp.
async fn metrics_cell(
    proxy: &FaultProxy,
    head: &ninelives_tests::redis::RedisServer,
    name: &str,
    rules: &[Value],
) -> (Vec<String>, Cell) {
    use aws_sdk_cloudwatch::primitives::DateTime;
    use aws_sdk_cloudwatch::types::{Dimension, Statistic};
    const REGION: &str = "ap-east-2";
    let sdk = fresh(REGION).await;
    // CloudWatch keeps data between cells: a cluster of the cell's own.
    let cluster = format!("chain-{}.faults.example.com", unique());
    let head_id = ninelives_tests::redis::redis_instance(&sdk, &cluster, &head.endpoint().to_string()).await;
    let dead_id = ninelives_tests::redis::redis_instance(&sdk, &cluster, "127.0.14.4:17729").await;
    let faulted = proxy.sdk(REGION).await;
    let config = publish_metrics::Config::from_env(&env(&[
        ("REDIS_COMMAND_TIMEOUT_MS", "1000"),
        ("NODE_TIMEOUT_MS", "2000"),
    ]))
    .expect("config");
    let handler = publish_metrics::PublishMetrics::new(config, &faulted);
    let e = event(json!({}), secs(120));
    let cell = run(proxy, REGION, name, rules, || handler.handle(e.clone())).await;
    let at = Utc::now().timestamp();
    let cloudwatch = aws_sdk_cloudwatch::Client::new(&sdk);
    let mut world = Vec::new();
    for (metric, node) in [
        ("NodeUp", Some(&head_id)),
        ("NodeUp", Some(&dead_id)),
        ("IsMaster", Some(&head_id)),
        ("HeadUp", None),
    ] {
        let mut req = cloudwatch
            .get_metric_statistics()
            .namespace("NineLives/Redis")
            .metric_name(metric)
            .start_time(DateTime::from_secs(at - 300))
            .end_time(DateTime::from_secs(at + 120))
            .period(60)
            .statistics(Statistic::Minimum)
            .statistics(Statistic::Maximum)
            .statistics(Statistic::SampleCount)
            .dimensions(Dimension::builder().name("cluster").value(&cluster).build());
        if let Some(node) = node {
            req = req.dimensions(Dimension::builder().name("node").value(node).build());
        }
        let points = req.send().await.expect("GetMetricStatistics");
        let (mut min, mut max, mut samples) = (f64::INFINITY, f64::NEG_INFINITY, 0.0);
        for p in points.datapoints() {
            min = min.min(p.minimum().unwrap_or(f64::NAN));
            max = max.max(p.maximum().unwrap_or(f64::NAN));
            samples += p.sample_count().unwrap_or(0.0);
        }
        let who = match node {
            Some(n) if *n == head_id => "head",
            Some(_) => "dead",
            None => "cluster",
        };
        world.push(format!(
            "{metric} of {who}: min {min} max {max} samples {samples}"
        ));
    }
    (world, cell)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publish_metrics_under_faults() {
    let proxy = FaultProxy::start(17703);
    let head = ninelives_tests::redis::RedisServer::start("127.0.14.3", 17720, None);
    let (baseline, cell) = metrics_cell(&proxy, &head, "no faults", &[]).await;
    cell.print("publish-metrics");
    assert_eq!(
        baseline,
        [
            "NodeUp of head: min 1 max 1 samples 1",
            "NodeUp of dead: min 0 max 0 samples 1",
            "IsMaster of head: min 1 max 1 samples 1",
            "HeadUp of cluster: min 1 max 1 samples 1",
        ]
    );
    let mut failures = Vec::new();
    for (name, rules) in cells(&["PutMetricData"]) {
        let (world, cell) = metrics_cell(&proxy, &head, &name, &rules).await;
        cell.print("publish-metrics");
        // Known gap: PutMetricData has no idempotency token; a data point
        // whose response was lost is sent again by the SDK's retry and
        // counted twice (same value: minimum and maximum unchanged).
        let lost = cell
            .injected
            .iter()
            .any(|(op, kind)| op == "PutMetricData" && (kind == "drop_after" || kind == "hang_after"));
        let expected: Vec<String> = if lost {
            println!("GAP publish-metrics | {name} | data points of the lost call are counted twice");
            baseline
                .iter()
                .map(|w| w.replace("samples 1", "samples 2"))
                .collect()
        } else {
            baseline.clone()
        };
        if world != expected {
            failures.push(format!("{name}: {world:#?}"));
        }
    }
    assert!(
        failures.is_empty(),
        "baseline {baseline:#?}\ndiffers under: {failures:#?}"
    );
}

// --- the proxy itself ---------------------------------------------------------------

/// Each protocol's throttling answer is parsed by the SDK as that
/// service's real throttling error; faults follow the region of the
/// request; a request held before forwarding never reaches the local AWS,
/// one dropped after forwarding did.
#[tokio::test]
async fn the_proxy_injects_what_it_is_told_per_region_in_each_protocol() {
    use aws_config::retry::RetryConfig;
    use aws_sdk_ec2::error::ProvideErrorMetadata;
    let proxy = FaultProxy::start(17707);
    // us-east-1, where Route 53 is signed; other tests of this file make
    // instances there at the same time, so nothing is cleared and only the
    // volumes carrying this test's own tag are counted.
    let region = "us-east-1";
    let direct = ninelives_tests::sdk(region).await;
    let mark = format!("proxy-test-{}", unique());
    let marked = || {
        aws_sdk_ec2::types::TagSpecification::builder()
            .resource_type(aws_sdk_ec2::types::ResourceType::Volume)
            .tags(
                aws_sdk_ec2::types::Tag::builder()
                    .key("ninelives-test")
                    .value(&mark)
                    .build(),
            )
            .build()
    };
    let once = proxy
        .sdk(region)
        .await
        .to_builder()
        .retry_config(RetryConfig::standard().with_max_attempts(1))
        .build();
    proxy.set(region, &[Fault::Throttle.rule(1, None, None)]);
    let ec2 = aws_sdk_ec2::Client::new(&once).describe_volumes().send().await;
    assert_eq!(
        ec2.err().and_then(|e| e.code().map(str::to_owned)).as_deref(),
        Some("RequestLimitExceeded")
    );
    let asg = aws_sdk_autoscaling::Client::new(&once)
        .describe_auto_scaling_groups()
        .send()
        .await;
    assert_eq!(
        asg.err().and_then(|e| e.code().map(str::to_owned)).as_deref(),
        Some("Throttling")
    );
    let cw = aws_sdk_cloudwatch::Client::new(&once).list_metrics().send().await;
    assert_eq!(
        cw.err().and_then(|e| e.code().map(str::to_owned)).as_deref(),
        Some("Throttling")
    );
    let sns = aws_sdk_sns::Client::new(&once).list_topics().send().await;
    assert_eq!(
        sns.err().and_then(|e| e.code().map(str::to_owned)).as_deref(),
        Some("Throttling")
    );
    let sqs = aws_sdk_sqs::Client::new(&once).list_queues().send().await;
    assert_eq!(
        sqs.err().and_then(|e| e.code().map(str::to_owned)).as_deref(),
        Some("ThrottlingException")
    );
    let r53 = aws_sdk_route53::Client::new(&once)
        .list_hosted_zones()
        .send()
        .await;
    assert_eq!(
        r53.err().and_then(|e| e.code().map(str::to_owned)).as_deref(),
        Some("Throttling")
    );
    let mut prior = Fault::Throttle.rule(1, None, None);
    prior["code"] = json!("PriorRequestNotComplete");
    proxy.set(region, &[prior]);
    let r53 = aws_sdk_route53::Client::new(&once)
        .list_hosted_zones()
        .send()
        .await;
    assert_eq!(
        r53.err().and_then(|e| e.code().map(str::to_owned)).as_deref(),
        Some("PriorRequestNotComplete")
    );
    assert_eq!(proxy.injected(region).len(), 1);

    // The same throttles with production's retries: every other request
    // is throttled (requests 2, 4, 6 of 7), and every call still succeeds.
    proxy.set(region, &[Fault::Throttle.rule(2, None, None)]);
    let retried = aws_sdk_ec2::Client::new(&proxy.sdk(region).await);
    for _ in 0..4 {
        retried
            .describe_volumes()
            .send()
            .await
            .expect("retried past the throttle");
    }
    assert_eq!(proxy.counts(region)["seen"], 7, "{}", proxy.counts(region));
    assert_eq!(proxy.injected(region).len(), 3, "{}", proxy.counts(region));
    // Another region's requests get none of this region's faults.
    proxy.clear("ap-east-2");
    let other = aws_sdk_ec2::Client::new(
        &once
            .to_builder()
            .region(aws_config::Region::new("ap-east-2"))
            .build(),
    );
    other
        .describe_volumes()
        .send()
        .await
        .expect("no faults in ap-east-2");
    assert_eq!(proxy.counts(region)["seen"], 7);

    // Held before forwarding: the attempt times out and moto never sees
    // the volume; dropped after forwarding: the volume exists.
    let ec2 = aws_sdk_ec2::Client::new(&once);
    let az = format!("{region}a");
    proxy.set(
        region,
        &[Fault::HangBefore.rule(1, Some(&["CreateVolume"]), Some(1))],
    );
    assert!(
        ec2.create_volume()
            .availability_zone(&az)
            .size(1)
            .tag_specifications(marked())
            .send()
            .await
            .is_err()
    );
    tokio::time::sleep(faults::HOLD).await;
    let volumes = || async {
        aws_sdk_ec2::Client::new(&direct)
            .describe_volumes()
            .filters(Filter::builder().name("tag:ninelives-test").values(&mark).build())
            .send()
            .await
            .expect("DescribeVolumes")
            .volumes()
            .len()
    };
    assert_eq!(
        volumes().await,
        0,
        "a request held before forwarding reached the local AWS"
    );
    proxy.set(
        region,
        &[Fault::DropAfter.rule(1, Some(&["CreateVolume"]), Some(1))],
    );
    assert!(
        ec2.create_volume()
            .availability_zone(&az)
            .size(1)
            .tag_specifications(marked())
            .send()
            .await
            .is_err()
    );
    assert_eq!(
        volumes().await,
        1,
        "moto made the volume whose response was dropped"
    );
    assert_eq!(
        proxy.injected(region),
        [("CreateVolume".to_owned(), "drop_after".to_owned())]
    );
    proxy.clear(region);
}

// --- redis-failover -----------------------------------------------------------------

/// Every Route 53 record of `zone` but its NS and SOA, as `name type
/// values`, the zone's domain relabelled.
async fn records(sdk: &aws_config::SdkConfig, zone: &str, domain: &str) -> Vec<String> {
    let out = aws_sdk_route53::Client::new(sdk)
        .list_resource_record_sets()
        .hosted_zone_id(zone)
        .send()
        .await
        .expect("ListResourceRecordSets");
    let mut found: Vec<String> = out
        .resource_record_sets()
        .iter()
        .filter(|r| !matches!(r.r#type().as_str(), "NS" | "SOA"))
        .map(|r| {
            let values: Vec<&str> = r.resource_records().iter().map(|v| v.value()).collect();
            format!(
                "record {} {} ttl {:?} weight {:?} id {:?} = {}",
                r.name().replace(domain, "D"),
                r.r#type().as_str(),
                r.ttl(),
                r.weight(),
                r.set_identifier(),
                values.join(",")
            )
        })
        .collect();
    found.sort();
    found
}

/// A chain of three real redis-server nodes whose records exist; the head
/// dies after acknowledged writes; the faulted run promotes the next node,
/// moves the records and keeps the chain.
///
/// When the world then differs from `expected`, the next scheduled health
/// check (the same handler, faults cleared) runs once more; the answer says
/// whether it had to, and the world is read again after it.
async fn redis_cell(
    proxy: &FaultProxy,
    name: &str,
    rules: &[Value],
    expected: Option<&[String]>,
) -> (Vec<String>, Cell, bool) {
    use ninelives_tests::redis::{RedisServer, redis_instance};
    use shared::chain::model::ReplicationRole;
    const REGION: &str = "us-east-1";
    const HOSTS: [&str; 3] = ["127.0.14.2", "127.0.14.3", "127.0.14.4"];
    const PORT: u16 = 17730;
    let sdk = ninelives_tests::sdk(REGION).await;
    let domain = format!("z{}.test", unique());
    let zone = ninelives_tests::hosted_zone(&sdk, &domain).await;
    let cluster = format!("kate.{domain}");
    let mut servers = Vec::new();
    let mut ids = BTreeMap::new();
    for (i, host) in HOSTS.iter().enumerate() {
        servers.push(RedisServer::start(host, PORT, None));
        let id = redis_instance(&sdk, &cluster, &format!("{host}:{PORT}")).await;
        ids.insert(id, format!("i-{i}"));
    }
    for i in 1..3 {
        servers[i].cmd(&["REPLICAOF", HOSTS[i - 1], &PORT.to_string()]);
        servers[i].wait_for("link up", secs(10), |r| {
            matches!(r.role, ReplicationRole::Replica { link_up: true, .. })
        });
    }
    let settings = env(&[
        ("HOSTED_ZONE_ID", zone.as_str()),
        ("REDIS_COMMAND_TIMEOUT_MS", "1000"),
    ]);
    let config = redis_failover::Config::from_env(&settings).expect("config");
    let payload = json!({ "cluster": cluster });
    redis_failover::RedisFailover::new(config.clone(), &sdk)
        .handle(event(payload.clone(), secs(60)))
        .await
        .expect("the records, without faults");
    let client = redis::Client::open((HOSTS[0], PORT)).expect("client");
    let mut conn = client.get_connection_with_timeout(secs(5)).expect("connection");
    redis::cmd("SET")
        .arg("acked")
        .arg("yes")
        .exec(&mut conn)
        .expect("SET");
    let acked: i64 = redis::cmd("WAIT")
        .arg(1)
        .arg(5000)
        .query(&mut conn)
        .expect("WAIT");
    assert!(acked >= 1, "no replica acknowledged the write");
    servers[0].kill();

    let faulted = proxy.sdk(REGION).await;
    let handler = redis_failover::RedisFailover::new(config, &faulted);
    let e = event(payload, secs(120));
    let cell = run(proxy, REGION, name, rules, || handler.handle(e.clone())).await;

    let world = || async {
        let mut world = records(&sdk, &zone, &domain).await;
        servers[2].wait_for("replica of node 1", secs(15), |r| {
            matches!(&r.role, ReplicationRole::Replica { master_host, link_up: true, .. } if master_host == HOSTS[1])
        });
        let role = servers[1].info_replication();
        world.push(format!("node 1 is master: {}", role.is_master()));
        if !role.is_master() {
            world.push(format!("node 1: {:?}", role.role));
        }
        world.push(format!(
            "acked write on node 1: {:?}",
            servers[1].cmd(&["GET", "acked"])
        ));
        world.push(format!(
            "acked write on node 2: {:?}",
            servers[2].cmd(&["GET", "acked"])
        ));
        world
    };
    let first = world().await;
    match expected {
        Some(expected) if first != expected => {
            handler
                .handle(event(json!({ "cluster": cluster }), secs(120)))
                .await
                .expect("the next health check, without faults");
            (world().await, cell, true)
        }
        _ => (first, cell, false),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_failover_under_faults() {
    let proxy = FaultProxy::start(17704);
    let (baseline, cell, _) = redis_cell(&proxy, "no faults", &[], None).await;
    cell.print("redis-failover");
    assert!(
        baseline
            .iter()
            .any(|w| w.starts_with("record kate.D. A") && w.ends_with("= 127.0.14.3")),
        "{baseline:#?}"
    );
    assert!(
        baseline.contains(&"node 1 is master: true".to_owned()),
        "{baseline:#?}"
    );
    let mut failures = Vec::new();
    for (name, rules) in cells(&["ChangeResourceRecordSets"]) {
        let (world, cell, next_run) = redis_cell(&proxy, &name, &rules, Some(&baseline)).await;
        cell.print("redis-failover");
        // Known gap: the head record is moved with a compare-and-swap batch
        // (DELETE what was read, CREATE the new head) before the promotion,
        // so that of two concurrent runs one promotes. When the batch's
        // response is lost, the SDK's retry of it fails (the record already
        // moved), the run takes its own change for another run's and stops:
        // the record points at a node still replicating the dead head until
        // the next health check promotes it. Asserted: only the lost-response
        // cells of ChangeResourceRecordSets may need the next run, and that
        // run must reach the fault-free state.
        let lost_change = cell.injected.iter().any(|(op, kind)| {
            op == "ChangeResourceRecordSets" && (kind == "drop_after" || kind == "hang_after")
        });
        if next_run {
            println!(
                "GAP redis-failover | {name} | no promotion until the next health check (own CAS change taken for another run's)"
            );
        }
        if world != baseline || (next_run && !lost_change) {
            failures.push(format!("{name} (next run needed: {next_run}): {world:#?}"));
        }
    }
    assert!(
        failures.is_empty(),
        "baseline {baseline:#?}\ndiffers under: {failures:#?}"
    );
}

// --- mongo-endpoint -----------------------------------------------------------------

/// A replica set (the MongoDB wire-protocol peer: two data members and an
/// arbiter) whose record points at its primary; an election moves the
/// primary and the faulted run must move the record. As for redis-failover,
/// a world that differs gets the next scheduled run (faults cleared).
async fn mongo_cell(
    proxy: &FaultProxy,
    name: &str,
    rules: &[Value],
    expected: Option<&[String]>,
) -> (Vec<String>, Cell, bool) {
    use ninelives_tests::mongo::{MongoPeer, arbiter, data, mongo_instance};
    const REGION: &str = "us-east-1";
    let sdk = ninelives_tests::sdk(REGION).await;
    let domain = format!("z{}.test", unique());
    let zone = ninelives_tests::hosted_zone(&sdk, &domain).await;
    let set = format!("kate.{domain}");
    let peer = MongoPeer::start(
        &set,
        &[data("127.0.14.5"), data("127.0.14.6"), arbiter("127.0.14.7")],
        &[],
        None,
    )
    .await;
    for (i, member) in peer.members.iter().enumerate() {
        mongo_instance(&sdk, i == 2, &set, member).await;
    }
    let settings = env(&[
        ("HOSTED_ZONE_ID", zone.as_str()),
        ("MONGODB_CONNECT_TIMEOUT_MS", "500"),
    ]);
    let config = mongo_endpoint::Config::from_env(&settings).expect("config");
    let payload = json!({ "cluster": set });
    mongo_endpoint::MongoEndpoint::new(config.clone(), &sdk)
        .handle(event(payload.clone(), secs(60)))
        .await
        .expect("the record, without faults");
    peer.set_primary(Some(&peer.members[1])).await;

    let faulted = proxy.sdk(REGION).await;
    let handler = mongo_endpoint::MongoEndpoint::new(config, &faulted);
    let e = event(payload.clone(), secs(120));
    let cell = run(proxy, REGION, name, rules, || handler.handle(e.clone())).await;
    let member = |m: &str| {
        m.replace(&peer.members[0], "member-0")
            .replace(&peer.members[1], "member-1")
    };
    let world = || async {
        let mut w: Vec<String> = records(&sdk, &zone, &domain)
            .await
            .iter()
            .map(|r| member(r))
            .collect();
        w.push(format!(
            "replSetReconfig calls: {}",
            peer.count("replSetReconfig").await
        ));
        w
    };
    let first = world().await;
    match expected {
        Some(expected) if first != expected => {
            handler
                .handle(event(payload, secs(120)))
                .await
                .expect("the next scheduled run, without faults");
            (world().await, cell, true)
        }
        _ => (first, cell, false),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mongo_endpoint_under_faults() {
    let proxy = FaultProxy::start(17705);
    let (baseline, cell, _) = mongo_cell(&proxy, "no faults", &[], None).await;
    cell.print("mongo-endpoint");
    assert!(
        baseline
            .iter()
            .any(|w| w.starts_with("record kate.D. A") && w.ends_with("= 127.0.14.6")),
        "{baseline:#?}"
    );
    let mut failures = Vec::new();
    for (name, rules) in cells(&["ChangeResourceRecordSets"]) {
        let (world, cell, next_run) = mongo_cell(&proxy, &name, &rules, Some(&baseline)).await;
        cell.print("mongo-endpoint");
        // Known gap, as for redis-failover: a lost response to the record's
        // compare-and-swap batch; here the record did move (it is the whole
        // of the work), so only the report is wrong, and the next run finds
        // the record right. Asserted the same way.
        let lost_change = cell.injected.iter().any(|(op, kind)| {
            op == "ChangeResourceRecordSets" && (kind == "drop_after" || kind == "hang_after")
        });
        if next_run {
            println!("GAP mongo-endpoint | {name} | needed the next scheduled run");
        }
        if world != baseline || (next_run && !lost_change) {
            failures.push(format!("{name} (next run needed: {next_run}): {world:#?}"));
        }
    }
    assert!(
        failures.is_empty(),
        "baseline {baseline:#?}\ndiffers under: {failures:#?}"
    );
}

// --- replset-tasks ------------------------------------------------------------------

/// A replica set and a spare member whose `add` task arrives in an SQS batch
/// (as Lambda's event source mapping delivers it); the member must end up in
/// the set's config exactly once. A task reported failed stays on the queue
/// and is delivered again (faults cleared).
async fn replset_cell(proxy: &FaultProxy, name: &str, rules: &[Value]) -> (Vec<String>, Cell) {
    use ninelives_tests::mongo::{MongoPeer, arbiter, data, mongo_instance};
    const REGION: &str = "us-east-1";
    let sdk = ninelives_tests::sdk(REGION).await;
    let set = format!("kate.z{}.test", unique());
    let peer = MongoPeer::start(
        &set,
        &[data("127.0.14.5"), data("127.0.14.6"), arbiter("127.0.14.7")],
        &[data("127.0.14.8")],
        None,
    )
    .await;
    for (i, member) in peer.members.iter().enumerate() {
        mongo_instance(&sdk, i == 2, &set, member).await;
    }
    let spare = peer.spares[0].clone();
    let spare_id = mongo_instance(&sdk, false, &set, &spare).await;
    let task = json!({
        "schema": 1, "type": "add", "set": set, "host": spare, "instance_id": spare_id,
        "transition": "launch", "requested_at": rfc3339(Utc::now()),
    });
    let batch = json!({ "Records": [{
        "messageId": format!("m-{}", unique()),
        "receiptHandle": "handle",
        "body": task.to_string(),
        "attributes": { "MessageGroupId": set, "ApproximateReceiveCount": "1" },
        "messageAttributes": {},
        "md5OfBody": "",
        "eventSource": "aws:sqs",
        "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:tasks.fifo",
        "awsRegion": REGION
    }]});
    let faulted = proxy.sdk(REGION).await;
    let config = replset_tasks::Config::from_env(&env(&[
        ("MONGODB_CONNECT_TIMEOUT_MS", "500"),
        ("STEP_DOWN_SECONDS", "10"),
        ("CATCH_UP_SECONDS", "2"),
    ]))
    .expect("config");
    let handler = replset_tasks::ReplsetTasks::new(config, &faulted);
    let e = event(batch, secs(120));
    let mut cell = run(proxy, REGION, name, rules, || handler.handle(e.clone())).await;
    let failed = cell.result["batchItemFailures"].as_array().map_or(0, Vec::len);
    if failed > 0 {
        // The task stays on the queue; the event source mapping delivers it
        // again once it is visible.
        let again = handler.handle(e.clone()).await.expect("the redelivery");
        assert_eq!(
            again["batchItemFailures"],
            json!([]),
            "{name}: the redelivery failed: {again}"
        );
        cell.outcome = format!(
            "task reported failed ({}), redelivery ok",
            cell.result["batchItemFailures"]
        );
    }
    let mut world: Vec<String> = peer
        .config_members()
        .await
        .into_iter()
        .map(|(host, arbiter, votes, priority)| {
            // The peer's ports differ from cell to cell: members by index.
            let host = match peer.members.iter().position(|m| *m == host) {
                Some(i) => format!("member-{i}"),
                None if host == spare => "spare".to_owned(),
                None => host,
            };
            format!("member {host} arbiter {arbiter} votes {votes} priority {priority}")
        })
        .collect();
    world.sort();
    world.push(format!("config version {}", peer.version().await));
    (world, cell)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replset_tasks_under_faults() {
    let proxy = FaultProxy::start(17706);
    let (baseline, cell) = replset_cell(&proxy, "no faults", &[]).await;
    cell.print("replset-tasks");
    assert!(
        baseline.contains(&"member spare arbiter false votes 1 priority 1".to_owned()),
        "{baseline:#?}"
    );
    assert!(baseline.contains(&"config version 2".to_owned()), "{baseline:#?}");
    let mut failures = Vec::new();
    for (name, rules) in cells_first(3) {
        let (world, cell) = replset_cell(&proxy, &name, &rules).await;
        cell.print("replset-tasks");
        if world != baseline {
            failures.push(format!("{name}: {world:#?}"));
        }
    }
    assert!(
        failures.is_empty(),
        "baseline {baseline:#?}\ndiffers under: {failures:#?}"
    );
}
