//! publish-metrics end to end: real redis-server nodes, the MongoDB
//! wire-protocol peer, a real PostgreSQL primary and streaming replica,
//! EC2 tags and CloudWatch in the local AWS. What the run published is
//! read back from CloudWatch (`GetMetricStatistics`), and the number of
//! `PutMetricData` calls is counted on the way out.

use std::sync::atomic::{AtomicUsize, Ordering};

use aws_sdk_cloudwatch::primitives::DateTime;
use aws_sdk_cloudwatch::types::{Dimension, Statistic};
use ninelives_tests::mongo::{MongoPeer, arbiter, data, mongo_instance};
use ninelives_tests::postgres::{PASSWORD, PgServer, postgres_instance};
use ninelives_tests::redis::{RedisServer, redis_instance};
use ninelives_tests::{env, event, fresh, secs, unique};
use publish_metrics::{Config, PublishMetrics};
use serde_json::{Value, json};
use shared::cloudwatch::CloudWatch;
use shared::ec2::Ec2;
use shared::metrics::{Batch, MetricsSink};
use shared::mongo_node::MongoNodes;
use shared::notify::SnsNotifier;
use shared::redis_node::RedisNodes;

const REGION: &str = "eu-central-2";

/// The CloudWatch adapter, counting the calls that go through it.
struct Counted {
    inner: CloudWatch,
    calls: AtomicUsize,
}

impl MetricsSink for Counted {
    async fn put(&self, batch: &Batch) -> Result<(), shared::Error> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        self.inner.put(batch).await
    }
}

fn function(sdk: &aws_config::SdkConfig, pairs: &[(&str, &str)]) -> PublishMetrics<Ec2, Counted> {
    let config = Config::from_env(&env(pairs)).expect("config");
    PublishMetrics::with(
        config.clone(),
        Ec2::from_conf(sdk),
        Counted {
            inner: CloudWatch::from_conf(sdk),
            calls: AtomicUsize::new(0),
        },
        RedisNodes::new(config.redis.clone()),
        MongoNodes::new(config.mongo.clone()),
        config.postgres_nodes(),
        SnsNotifier::from_conf(sdk, None),
    )
}

/// Reads one metric back: `(minimum, maximum, sample count)` of each
/// datapoint around `at`.
async fn read(
    sdk: &aws_config::SdkConfig,
    at: i64,
    namespace: &str,
    name: &str,
    dims: &[(&str, &str)],
) -> Vec<(f64, f64, f64)> {
    let mut req = aws_sdk_cloudwatch::Client::new(sdk)
        .get_metric_statistics()
        .namespace(namespace)
        .metric_name(name)
        .start_time(DateTime::from_secs(at - 120))
        .end_time(DateTime::from_secs(at + 120))
        .period(60)
        .statistics(Statistic::Minimum)
        .statistics(Statistic::Maximum)
        .statistics(Statistic::SampleCount);
    for (k, v) in dims {
        req = req.dimensions(Dimension::builder().name(*k).value(*v).build());
    }
    req.send()
        .await
        .expect("GetMetricStatistics")
        .datapoints()
        .iter()
        .map(|p| {
            (
                p.minimum().unwrap_or(f64::NAN),
                p.maximum().unwrap_or(f64::NAN),
                p.sample_count().unwrap_or(0.0),
            )
        })
        .collect()
}

/// The single value of a metric read back (one datapoint, one sample).
async fn one(
    sdk: &aws_config::SdkConfig,
    at: i64,
    namespace: &str,
    name: &str,
    dims: &[(&str, &str)],
) -> f64 {
    let points = read(sdk, at, namespace, name, dims).await;
    assert_eq!(points.len(), 1, "{namespace} {name} {dims:?}: {points:?}");
    assert_eq!(points[0].2, 1.0, "{namespace} {name} {dims:?}: one sample");
    points[0].0
}

fn timestamp(summary: &Value) -> i64 {
    let at = summary["timestamp"].as_str().expect("the run's timestamp");
    chrono::DateTime::parse_from_rfc3339(at)
        .expect("RFC 3339")
        .timestamp()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_tagged_node_is_published_and_a_dead_one_is_node_up_0() {
    let sdk = fresh(REGION).await;
    let redis_cluster = format!("chain-{}.example.com", unique());
    let locked_cluster = format!("locked-{}.example.com", unique());

    // A Redis chain of two, plus a third node tagged but not running, and
    // a node of another cluster whose password is not ours.
    let head = RedisServer::start("127.0.0.2", 17200, Some("s3cret"));
    let replica = RedisServer::start("127.0.0.3", 17200, Some("s3cret"));
    replica.cmd(&["REPLICAOF", "127.0.0.2", "17200"]);
    replica.wait_for("link up", secs(10), |r| {
        matches!(
            r.role,
            shared::chain::model::ReplicationRole::Replica { link_up: true, .. }
        )
    });
    let locked = RedisServer::start("127.0.0.4", 17201, Some("not-ours"));
    let head_id = redis_instance(&sdk, &redis_cluster, "127.0.0.2:17200").await;
    let replica_id = redis_instance(&sdk, &redis_cluster, "127.0.0.3:17200").await;
    let dead_id = redis_instance(&sdk, &redis_cluster, "127.0.0.4:17299").await;
    let locked_id = redis_instance(&sdk, &locked_cluster, &locked.endpoint().to_string()).await;

    // A replica set of three data members and an arbiter (the wire-protocol
    // peer): one member 12 s behind, one gone, one figure not a number.
    let set = format!("rs-{}.example.com", unique());
    let peer = MongoPeer::start(
        &set,
        &[
            data("127.0.0.2"),
            data("127.0.0.3"),
            data("127.0.0.4"),
            arbiter("127.0.0.5"),
        ],
        &[],
        None,
    )
    .await;
    let mut member_ids = Vec::new();
    for (i, member) in peer.members.iter().enumerate() {
        member_ids.push(mongo_instance(&sdk, i == 3, &set, member).await);
    }
    let (primary, behind, gone) = (&peer.members[0], &peer.members[1], &peer.members[2]);
    peer.set_lag(behind, 12.0).await;
    peer.set_down(gone, true).await;
    peer.set_status(primary, "globalLock.currentQueue.total", json!("busy"))
        .await;
    peer.set_status(primary, "connections.current", json!(42)).await;

    // A PostgreSQL primary and its streaming replica, replay paused on the
    // replica while ~1 MB of WAL is written, and a third node not running.
    let pg = format!("pg-{}.example.com", unique());
    let pg_primary = PgServer::primary("127.0.0.2", 17390).await;
    let pg_replica = PgServer::replica_of(&pg_primary, "127.0.0.3", 17391, "replica1").await;
    let pg_primary_id = postgres_instance(&sdk, &pg, "127.0.0.2:17390").await;
    let pg_replica_id = postgres_instance(&sdk, &pg, "127.0.0.3:17391").await;
    let pg_dead_id = postgres_instance(&sdk, &pg, "127.0.0.4:17399").await;
    pg_replica.pause_replay().await;
    let before = pg_primary.current_lsn().await;
    pg_primary
        .execute(
            "CREATE TABLE filler (x text PRIMARY KEY); \
             INSERT INTO filler SELECT repeat(md5(i::text), 32) FROM generate_series(1, 1000) i",
        )
        .await;
    let pg_written = pg_primary.current_lsn().await - before;
    assert!(pg_written >= 1_000_000, "only {pg_written} bytes of WAL");

    // The replica hangs (SIGSTOP) while 1 MB is written to the head: the
    // head's view of it falls behind by at least that.
    replica.stop();
    let value = "x".repeat(100_000);
    for i in 0..10 {
        head.cmd(&["SET", &format!("k{i}"), &value]);
    }

    let f = function(
        &sdk,
        &[
            ("REDIS_PASSWORD", "s3cret"),
            ("REDIS_COMMAND_TIMEOUT_MS", "1000"),
            ("NODE_TIMEOUT_MS", "2000"),
            ("MONGODB_CONNECT_TIMEOUT_MS", "1000"),
            ("PGPASSWORD", PASSWORD),
            ("PG_CONNECT_TIMEOUT_MS", "1000"),
        ],
    );
    // A dry run reads every node and sends nothing.
    let dry = f
        .handle_event(event(json!({"dry_run": true}), secs(60)))
        .await
        .expect("a dry run");
    assert_eq!(dry["dry_run"], true);
    assert_eq!(dry["calls"], 3, "{dry:#}");
    assert!(
        dry["datums"]["NineLives/Redis"].as_u64().unwrap_or(0) > 20,
        "{dry:#}"
    );
    assert_eq!(f_calls(&f), 0);
    let listed = aws_sdk_cloudwatch::Client::new(&sdk)
        .list_metrics()
        .namespace("NineLives/Redis")
        .dimensions(
            aws_sdk_cloudwatch::types::DimensionFilter::builder()
                .name("cluster")
                .value(&redis_cluster)
                .build(),
        )
        .send()
        .await
        .expect("ListMetrics");
    assert!(listed.metrics().is_empty(), "{:?}", listed.metrics());

    let summary = f
        .handle_event(event(json!({}), secs(60)))
        .await
        .expect("the run publishes what it read");
    replica.cont();
    let at = timestamp(&summary);

    // One call per namespace, each far under 1,000 datums.
    assert_eq!(f_calls(&f), 3, "{summary:#}");
    assert_eq!(summary["calls"], 3, "{summary:#}");
    assert_eq!(
        summary["nodes"],
        json!({"mongodb": 3, "mongodb-arbiter": 1, "postgres": 3, "redis": 4})
    );
    let down: Vec<(&str, &str)> = summary["down"]
        .as_array()
        .expect("down")
        .iter()
        .map(|d| {
            (
                d["node"].as_str().unwrap_or(""),
                d["reason"].as_str().unwrap_or(""),
            )
        })
        .collect();
    assert_eq!(down.len(), 5, "{summary:#}");
    let reason = |id: &str| {
        down.iter()
            .find(|(n, _)| *n == id)
            .map(|(_, r)| r.to_string())
            .unwrap_or_default()
    };
    // The hung node: the client's own 1 s command timeout ends it first.
    assert!(
        reason(&replica_id).contains("timed out"),
        "{}",
        reason(&replica_id)
    );
    assert!(reason(&dead_id).contains("not answering"), "{}", reason(&dead_id));
    assert!(
        reason(&locked_id).contains("authentication"),
        "{}",
        reason(&locked_id)
    );
    assert!(
        reason(&member_ids[2]).contains("not answering"),
        "{}",
        reason(&member_ids[2])
    );
    assert!(!reason(&pg_dead_id).is_empty(), "{summary:#}");
    assert!(
        !summary.to_string().contains(PASSWORD),
        "no password in the summary"
    );
    assert!(
        !summary.to_string().contains("s3cret"),
        "no password in the summary"
    );
    let skipped = summary["skipped"].to_string();
    assert!(
        skipped.contains("globalLock.currentQueue.total") && skipped.contains("busy"),
        "{skipped}"
    );

    let ns = "NineLives/Redis";
    assert_eq!(
        one(&sdk, at, ns, "NodeUp", &of(&redis_cluster, &head_id)).await,
        1.0
    );
    assert_eq!(
        one(&sdk, at, ns, "NodeUp", &of(&redis_cluster, &replica_id)).await,
        0.0
    );
    assert_eq!(
        one(&sdk, at, ns, "NodeUp", &of(&redis_cluster, &dead_id)).await,
        0.0
    );
    assert_eq!(
        one(
            &sdk,
            at,
            ns,
            "NodeUp",
            &[("cluster", &locked_cluster), ("node", &locked_id)]
        )
        .await,
        0.0
    );
    let lag = one(&sdk, at, ns, "MaxReplicaLagBytes", &of(&redis_cluster, &head_id)).await;
    assert!(lag >= 1_000_000.0, "the head sees its replica {lag} bytes behind");
    assert!(one(&sdk, at, ns, "UsedMemory", &of(&redis_cluster, &head_id)).await > 1_000_000.0);
    assert_eq!(
        one(&sdk, at, ns, "IsMaster", &of(&redis_cluster, &head_id)).await,
        1.0
    );
    assert_eq!(
        one(&sdk, at, ns, "HeadUp", &[("cluster", &redis_cluster)]).await,
        1.0
    );
    assert_eq!(
        one(&sdk, at, ns, "Masters", &[("cluster", &redis_cluster)]).await,
        1.0
    );
    let ns = "NineLives/MongoDB";
    let counts = [
        ("HealthyHostCount", 2.0),
        ("UnHealthyHostCount", 1.0),
        ("ArbiterCount", 1.0),
        ("UnHealthyArbiterCount", 0.0),
    ];
    for (name, want) in counts {
        assert_eq!(
            one(&sdk, at, ns, name, &[("cluster", &set)]).await,
            want,
            "{name}"
        );
    }
    let lag = one(&sdk, at, ns, "ReplicationLagSeconds", &of(&set, &member_ids[1])).await;
    assert!((lag - 12.0).abs() < 0.01, "{lag}");
    assert_eq!(
        one(&sdk, at, ns, "ActiveConnections", &of(&set, &member_ids[0])).await,
        42.0
    );
    assert_eq!(one(&sdk, at, ns, "NodeUp", &of(&set, &member_ids[2])).await, 0.0);
    assert_eq!(one(&sdk, at, ns, "NodeUp", &of(&set, &member_ids[3])).await, 1.0);
    assert!(
        read(
            &sdk,
            at,
            ns,
            "OperationsQueuedWaitingForLock",
            &of(&set, &member_ids[0])
        )
        .await
        .is_empty(),
        "a figure that is not a number is not sent"
    );

    let ns = "NineLives/Postgres";
    assert_eq!(one(&sdk, at, ns, "NodeUp", &of(&pg, &pg_dead_id)).await, 0.0);
    assert_eq!(
        one(&sdk, at, ns, "InRecovery", &of(&pg, &pg_primary_id)).await,
        0.0
    );
    assert_eq!(
        one(&sdk, at, ns, "InRecovery", &of(&pg, &pg_replica_id)).await,
        1.0
    );
    assert_eq!(
        one(&sdk, at, ns, "ReplayPaused", &of(&pg, &pg_replica_id)).await,
        1.0
    );
    let lag = one(&sdk, at, ns, "ReplicationLagBytes", &of(&pg, &pg_replica_id)).await;
    assert!(
        lag >= pg_written as f64,
        "the replica is {lag} bytes behind; {pg_written} were written while its replay was paused"
    );
    let db = [
        ("cluster", pg.as_str()),
        ("node", pg_primary_id.as_str()),
        ("database", "postgres"),
    ];
    assert!(one(&sdk, at, ns, "TableBytes", &db).await >= 1_000_000.0);
    assert!(one(&sdk, at, ns, "IndexBytes", &db).await > 0.0);
    pg_replica.resume_replay().await;

    // The cluster-only copies exist as a metric of their own...
    let listed = aws_sdk_cloudwatch::Client::new(&sdk)
        .list_metrics()
        .namespace("NineLives/Redis")
        .metric_name("NodeUp")
        .dimensions(
            aws_sdk_cloudwatch::types::DimensionFilter::builder()
                .name("cluster")
                .value(&redis_cluster)
                .build(),
        )
        .send()
        .await
        .expect("ListMetrics");
    let mut shapes: Vec<usize> = listed.metrics().iter().map(|m| m.dimensions().len()).collect();
    shapes.sort_unstable();
    assert_eq!(shapes, [1, 2, 2, 2], "one per node and one per cluster");
    // ... but moto's GetMetricStatistics matches every datum whose
    // dimensions include the asked ones (real CloudWatch matches exactly,
    // and would say 3 samples): 3 node datums and 3 cluster copies.
    let all = read(
        &sdk,
        at,
        "NineLives/Redis",
        "NodeUp",
        &[("cluster", &redis_cluster)],
    )
    .await;
    assert_eq!(all, [(0.0, 1.0, 6.0)]);
}

fn of<'a>(cluster: &'a str, node: &'a str) -> [(&'static str, &'a str); 2] {
    [("cluster", cluster), ("node", node)]
}

fn f_calls(f: &PublishMetrics<Ec2, Counted>) -> usize {
    f.sink().calls.load(Ordering::SeqCst)
}
