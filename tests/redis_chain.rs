//! redis-failover and the lifecycle hook's redis role against real
//! redis-server processes (127.0.0.2-4, one port per test: this file owns
//! 17100-17199) and the local AWS for EC2 and Route 53. Each test asserts
//! what the nodes and the records say afterwards.

use std::time::Duration;

use aws_config::SdkConfig;
use ninelives_tests::redis::{RedisServer, redis_instance};
use ninelives_tests::{env, event, hosted_zone, sdk, secs, unique};
use redis::Value as RedisValue;
use redis_failover::{Config, RedisFailover};
use serde_json::{Value, json};
use shared::chain::membership;
use shared::chain::model::{Node, ReplicationRole};
use shared::chain::plan::Policy;
use shared::chain::reconcile::Settings;
use shared::ec2::Ec2 as Ec2Adapter;
use shared::notify::SnsNotifier;
use shared::redis_node::RedisNodes;
use shared::route53::Route53;

const REGION: &str = "af-south-1";
const HOSTS: [&str; 4] = ["127.0.0.2", "127.0.0.3", "127.0.0.4", "127.0.0.5"];

struct Cluster {
    sdk: SdkConfig,
    zone: String,
    name: String,
    port: u16,
    password: Option<&'static str>,
    servers: Vec<RedisServer>,
    instances: Vec<String>,
}

impl Cluster {
    /// `n` nodes on `port`, chained in order (the first is head), each an
    /// EC2 instance tagged as a node of the cluster.
    async fn start(port: u16, n: usize, password: Option<&'static str>) -> Cluster {
        let sdk = sdk(REGION).await;
        let domain = format!("z{}.test", unique());
        let zone = hosted_zone(&sdk, &domain).await;
        let mut cluster = Cluster {
            sdk,
            zone,
            name: format!("kate.{domain}"),
            port,
            password,
            servers: Vec::new(),
            instances: Vec::new(),
        };
        for i in 0..n {
            cluster.add_node(i).await;
        }
        for i in 1..n {
            cluster.attach(i, i - 1);
        }
        cluster
    }

    async fn add_node(&mut self, i: usize) -> String {
        self.servers
            .push(RedisServer::start(HOSTS[i], self.port, self.password));
        let endpoint = format!("{}:{}", HOSTS[i], self.port);
        let instance = redis_instance(&self.sdk, &self.name, &endpoint).await;
        self.instances.push(instance.clone());
        instance
    }

    fn attach(&self, i: usize, to: usize) {
        self.servers[i].cmd(&["REPLICAOF", HOSTS[to], &self.port.to_string()]);
        self.servers[i].wait_for("link up", secs(10), |r| {
            matches!(r.role, ReplicationRole::Replica { link_up: true, .. })
        });
    }

    fn config(&self, extra: &[(&'static str, &'static str)]) -> Config {
        let zone: &'static str = Box::leak(self.zone.clone().into_boxed_str());
        let mut pairs = vec![("HOSTED_ZONE_ID", zone), ("REDIS_COMMAND_TIMEOUT_MS", "1000")];
        if let Some(p) = self.password {
            pairs.push(("REDIS_PASSWORD", p));
        }
        pairs.extend_from_slice(extra);
        Config::from_env(&env(&pairs)).expect("config")
    }

    fn failover(&self, extra: &[(&'static str, &'static str)]) -> RedisFailover {
        let config = self.config(extra);
        RedisFailover::with(
            config.clone(),
            RedisNodes::new(config.redis.clone()),
            Route53::from_conf(&self.sdk, self.zone.clone()),
            Ec2Adapter::from_conf(&self.sdk),
            SnsNotifier::from_conf(&self.sdk, None),
        )
    }

    async fn run(&self, f: &RedisFailover) -> Result<Value, shared::Error> {
        f.handle_event(event(json!({ "cluster": self.name }), secs(60)))
            .await
    }

    /// The type and value of a record, if it exists.
    async fn record(&self, name: &str) -> Option<(String, String)> {
        let out = aws_sdk_route53::Client::new(&self.sdk)
            .list_resource_record_sets()
            .hosted_zone_id(&self.zone)
            .start_record_name(name)
            .send()
            .await
            .expect("ListResourceRecordSets");
        let found: Vec<(String, String)> = out
            .resource_record_sets()
            .iter()
            .filter(|r| r.name().trim_end_matches('.') == name)
            .map(|r| {
                let values: Vec<&str> = r.resource_records().iter().map(|v| v.value()).collect();
                (r.r#type().as_str().to_owned(), values.join(","))
            })
            .collect();
        assert!(found.len() <= 1, "{name} has {found:?}");
        found.into_iter().next()
    }

    async fn head_record(&self) -> Option<String> {
        self.record(&self.name).await.map(|(t, v)| {
            assert_eq!(t, "A");
            v
        })
    }

    async fn tail_record(&self) -> Option<String> {
        self.record(&format!("tail.{}", self.name)).await.map(|(_, v)| v)
    }

    fn server_at(&self, host: &str) -> &RedisServer {
        let i = HOSTS.iter().position(|h| *h == host).expect("a test host");
        &self.servers[i]
    }

    fn is_master(&self, i: usize) -> bool {
        self.servers[i].info_replication().is_master()
    }

    /// Waits until node `i` replicates `master` with its link up.
    fn assert_replica_of(&self, i: usize, master: usize) {
        let want = HOSTS[master];
        self.servers[i].wait_for(&format!("replica of {want} with link up"), secs(15), |r| {
            matches!(&r.role, ReplicationRole::Replica { master_host, link_up: true, .. } if master_host == want)
        });
    }

    fn node(&self, i: usize) -> Node {
        Node {
            instance_id: self.instances[i].clone(),
            cluster: self.name.clone(),
            endpoint: self.servers[i].endpoint(),
            aliases: Vec::new(),
            launch_time: None,
        }
    }
}

fn statuses(result: &Value) -> Vec<String> {
    result["clusters"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|c| c["status"].as_str().unwrap_or_default().to_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// Writes `key:i = value-i` on one connection, then `WAIT 1`: what a
/// careful client does before it counts a write as safe. Returns how many
/// replicas acknowledged them.
fn write_acked(server: &RedisServer, n: usize) -> i64 {
    let pairs: Vec<(String, String)> = (0..n)
        .map(|i| (format!("key:{i}"), format!("value-{i}")))
        .collect();
    writes_acked(server, &pairs)
}

fn set_acked(server: &RedisServer, key: &str, value: &str) -> i64 {
    writes_acked(server, &[(key.to_owned(), value.to_owned())])
}

fn writes_acked(server: &RedisServer, pairs: &[(String, String)]) -> i64 {
    let client = redis::Client::open((server.host(), server.port())).expect("client");
    let mut conn = client.get_connection_with_timeout(secs(5)).expect("connection");
    for (key, value) in pairs {
        // Its replication state names who made it a replica, should it be
        // one: the evidence a failure here needs.
        redis::cmd("SET")
            .arg(key)
            .arg(value)
            .exec(&mut conn)
            .unwrap_or_else(|e| {
                panic!(
                    "SET on {}: {e}; its replication state: {:?}",
                    server.endpoint(),
                    server.info_replication()
                )
            });
    }
    redis::cmd("WAIT")
        .arg(1)
        .arg(5000)
        .query(&mut conn)
        .expect("WAIT")
}

fn replicaof_calls(server: &RedisServer) -> u64 {
    let RedisValue::BulkString(text) = server.cmd(&["INFO", "commandstats"]) else {
        panic!("INFO is a bulk string")
    };
    let text = String::from_utf8_lossy(&text).to_string();
    text.lines()
        .filter(|l| l.starts_with("cmdstat_replicaof:") || l.starts_with("cmdstat_slaveof:"))
        .filter_map(|l| l.split("calls=").nth(1))
        .filter_map(|rest| rest.split(',').next()?.parse::<u64>().ok())
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_healthy_chain_gets_its_records_once_and_then_no_writes() {
    let c = Cluster::start(17100, 3, None).await;
    let f = c.failover(&[]);
    let first = c.run(&f).await.expect("first check");
    assert_eq!(statuses(&first), ["repaired"], "{first:#}");
    assert_eq!(c.head_record().await.as_deref(), Some("127.0.0.2"));
    assert_eq!(c.tail_record().await.as_deref(), Some("127.0.0.4"));
    let second = c.run(&f).await.expect("second check");
    assert_eq!(statuses(&second), ["healthy"], "{second:#}");
    let actions: Vec<&str> = second["clusters"][0]["records"]
        .as_array()
        .expect("records")
        .iter()
        .map(|r| r["action"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(actions, ["unchanged", "unchanged"]);
    assert!(second["clusters"][0].get("steps").is_none(), "{second:#}");
    assert!(c.is_master(0));
    c.assert_replica_of(1, 0);
    c.assert_replica_of(2, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_head_is_replaced_without_losing_acknowledged_writes_and_fenced_when_it_returns() {
    let mut c = Cluster::start(17101, 3, None).await;
    let f = c.failover(&[]);
    let first = c.run(&f).await.expect("records");
    assert_eq!(statuses(&first), ["repaired"], "{first:#}");
    assert!(c.is_master(0), "the first run changed the head: {first:#}");
    // Writes acknowledged by at least one replica (WAIT 1) before the kill.
    let acked = write_acked(&c.servers[0], 500);
    assert!(acked >= 1, "no replica acknowledged the writes");
    c.servers[0].kill();

    let result = c.run(&f).await.expect("failover");
    assert_eq!(statuses(&result), ["promoted"], "{result:#}");
    assert_eq!(result["clusters"][0]["promoted"], json!(c.instances[1]));
    assert!(c.is_master(1), "the replica was not promoted");
    c.assert_replica_of(2, 1);
    assert_eq!(c.head_record().await.as_deref(), Some("127.0.0.3"));
    assert_eq!(c.tail_record().await.as_deref(), Some("127.0.0.4"));

    // Every acknowledged write is on the new head, reached by the record.
    let head = c.head_record().await.expect("a head record");
    let via_record = c.server_at(&head);
    for i in 0..500 {
        let value = via_record.cmd(&["GET", &format!("key:{i}")]);
        assert_eq!(
            value,
            RedisValue::BulkString(format!("value-{i}").into_bytes()),
            "key:{i}"
        );
    }
    // And it takes new writes, which reach the rest of the chain.
    let acked = set_acked(via_record, "after-failover", "yes");
    assert_eq!(acked, 1);
    assert_eq!(
        c.servers[2].cmd(&["GET", "after-failover"]),
        RedisValue::BulkString(b"yes".to_vec())
    );

    // The old head comes back empty, as a master: fenced behind the tail.
    c.servers[0].restart();
    assert!(c.is_master(0));
    let result = c.run(&f).await.expect("fencing");
    assert_eq!(statuses(&result), ["repaired"], "{result:#}");
    let steps = &result["clusters"][0]["steps"];
    assert_eq!(steps[0]["reason"], "fence", "{result:#}");
    c.assert_replica_of(0, 2);
    assert!(c.is_master(1), "the head changed");
    assert_eq!(c.head_record().await.as_deref(), Some("127.0.0.3"));
    assert_eq!(c.tail_record().await.as_deref(), Some("127.0.0.2"));
    // The fenced node now holds the chain's data, not a history of its own.
    let fenced = &c.servers[0];
    fenced.wait_for("synced", secs(10), |r| {
        matches!(
            r.role,
            ReplicationRole::Replica {
                link_up: true,
                sync_in_progress: false,
                ..
            }
        )
    });
    assert_eq!(
        fenced.cmd(&["GET", "after-failover"]),
        RedisValue::BulkString(b"yes".to_vec())
    );
    let result = c.run(&f).await.expect("after fencing");
    assert_eq!(statuses(&result), ["healthy"], "{result:#}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_middle_node_is_bypassed() {
    let mut c = Cluster::start(17102, 3, None).await;
    let f = c.failover(&[]);
    c.run(&f).await.expect("records");
    c.servers[1].kill();
    // On a loaded machine the live head can miss the 1 s command timeout;
    // the run then refuses to promote the dead node's replica (the head is
    // unconfirmed) and fails retryably, and Lambda would run it again.
    let mut result = c.run(&f).await;
    for _ in 0..2 {
        match &result {
            Err(e) if e.is_retryable() => result = c.run(&f).await,
            _ => break,
        }
    }
    let result = result.expect("repair");
    assert_eq!(statuses(&result), ["repaired"], "{result:#}");
    assert_eq!(
        result["clusters"][0]["steps"][0]["reason"], "reattach",
        "{result:#}"
    );
    assert!(c.is_master(0), "{result:#}");
    c.assert_replica_of(2, 0);
    assert_eq!(c.head_record().await.as_deref(), Some("127.0.0.2"));
    assert_eq!(c.tail_record().await.as_deref(), Some("127.0.0.4"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_concurrent_invocations_promote_once() {
    let mut c = Cluster::start(17103, 3, None).await;
    let setup = c.failover(&[]);
    c.run(&setup).await.expect("records");
    let before = replicaof_calls(&c.servers[1]);
    c.servers[0].kill();
    let (a, b) = (c.failover(&[]), c.failover(&[]));
    let (ra, rb) = tokio::join!(c.run(&a), c.run(&b));
    let (ra, rb) = (ra.expect("first run"), rb.expect("second run"));
    let promoted: Vec<&Value> = [&ra, &rb]
        .into_iter()
        .filter(|r| r["clusters"][0].get("promoted").is_some())
        .collect();
    assert_eq!(promoted.len(), 1, "{ra:#}\n{rb:#}");
    assert_eq!(
        replicaof_calls(&c.servers[1]) - before,
        1,
        "REPLICAOF NO ONE sent more than once"
    );
    assert!(c.is_master(1));
    c.assert_replica_of(2, 1);
    assert_eq!(c.head_record().await.as_deref(), Some("127.0.0.3"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_refusing_auth_blocks_any_promotion() {
    let mut c = Cluster::start(17104, 3, Some("chain-secret")).await;
    c.run(&c.failover(&[])).await.expect("records");
    c.servers[0].kill();
    let wrong = c.failover(&[("REDIS_PASSWORD", "not-the-password")]);
    let err = c.run(&wrong).await.expect_err("blocked");
    let text = err.to_string();
    assert!(text.contains("authentication"), "{text}");
    assert!(!text.contains("not-the-password"), "the password leaked: {text}");
    assert!(!c.is_master(1), "promoted despite an unreadable node");
    assert_eq!(c.head_record().await.as_deref(), Some("127.0.0.2"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_cut_off_too_long_is_left_to_a_person() {
    let mut c = Cluster::start(17105, 2, None).await;
    let f = c.failover(&[("REDIS_MAX_LINK_DOWN_SECONDS", "1")]);
    c.run(&f).await.expect("records");
    c.servers[0].kill();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let err = c.run(&f).await.expect_err("blocked");
    assert!(err.to_string().contains("decision is left to a person"), "{err}");
    assert!(!c.is_master(1));
    assert_eq!(c.head_record().await.as_deref(), Some("127.0.0.2"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_cluster_is_a_clear_error() {
    let c = Cluster::start(17106, 1, None).await;
    let f = c.failover(&[]);
    let err = f
        .handle_event(event(json!({ "cluster": "nobody.example.com" }), secs(30)))
        .await
        .expect_err("unknown");
    assert!(err.to_string().contains("unknown cluster"), "{err}");
    assert!(err.to_string().contains("nobody.example.com"), "{err}");
    assert!(c.is_master(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_join_at_the_tail_and_leave_spliced_out() {
    let mut c = Cluster::start(17107, 2, None).await;
    let redis = RedisNodes::new(c.config(&[]).redis);
    let dns = Route53::from_conf(&c.sdk, c.zone.clone());
    let inventory = Ec2Adapter::from_conf(&c.sdk);
    let settings = Settings::new(
        Policy {
            max_link_down_seconds: 120,
        },
        60,
        false,
    );
    c.run(&c.failover(&[])).await.expect("records");

    // A third node launches: it becomes the tail.
    c.add_node(2).await;
    let report = membership::join(&redis, &dns, &inventory, &c.node(2), &settings, secs(5)).await;
    assert!(report.failure.is_none(), "{report:?}");
    assert_eq!(report.status, "joined");
    c.assert_replica_of(2, 1);
    assert_eq!(c.tail_record().await.as_deref(), Some("127.0.0.4"));
    assert_eq!(c.head_record().await.as_deref(), Some("127.0.0.2"));
    // A duplicate delivery changes nothing.
    let again = membership::join(&redis, &dns, &inventory, &c.node(2), &settings, secs(5)).await;
    assert!(again.failure.is_none() && again.steps.is_empty(), "{again:?}");

    // Writes on the head, then the head terminates: it hands over first.
    for i in 0..200 {
        c.servers[0].cmd(&["SET", &format!("k{i}"), "v"]);
    }
    let report = membership::leave(&redis, &dns, &inventory, &c.node(0), &settings).await;
    assert!(report.failure.is_none(), "{report:?}");
    assert!(c.is_master(1), "the head did not hand over to its replica");
    assert_eq!(c.head_record().await.as_deref(), Some("127.0.0.3"));
    assert_eq!(c.servers[1].cmd(&["DBSIZE"]), RedisValue::Int(200));
    c.assert_replica_of(2, 1);
    c.servers[0].kill();

    // The tail leaves: its master, now the head, becomes the tail.
    let report = membership::leave(&redis, &dns, &inventory, &c.node(2), &settings).await;
    assert!(report.failure.is_none(), "{report:?}");
    assert_eq!(c.tail_record().await.as_deref(), Some("127.0.0.3"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leaving_middle_node_is_spliced_out() {
    let c = Cluster::start(17108, 3, None).await;
    let redis = RedisNodes::new(c.config(&[]).redis);
    let dns = Route53::from_conf(&c.sdk, c.zone.clone());
    let inventory = Ec2Adapter::from_conf(&c.sdk);
    let settings = Settings::new(
        Policy {
            max_link_down_seconds: 120,
        },
        60,
        false,
    );
    c.run(&c.failover(&[])).await.expect("records");
    let report = membership::leave(&redis, &dns, &inventory, &c.node(1), &settings).await;
    assert!(report.failure.is_none(), "{report:?}");
    assert_eq!(report.status, "left");
    c.assert_replica_of(2, 0);
    assert_eq!(report.chain, vec![c.instances[0].clone(), c.instances[2].clone()]);
}
