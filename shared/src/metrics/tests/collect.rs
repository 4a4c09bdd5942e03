use std::collections::HashMap;
use std::sync::Mutex;

use chrono::TimeZone;
use mongodb::bson::{Document, doc};

use super::*;
use crate::chain::ports::NodeError;
use crate::metrics::Batch;
use crate::mongo::ports::{Hello, MemberError};
use crate::pg_node::PgError;

fn node(id: &str, cluster: &str, endpoint: &str) -> Node {
    Node {
        instance_id: id.to_owned(),
        cluster: cluster.to_owned(),
        endpoint: Endpoint::parse(endpoint, 6379).expect("a valid endpoint"),
        aliases: Vec::new(),
        launch_time: None,
    }
}

fn at() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 25, 10, 0, 0)
        .single()
        .expect("a valid time")
}

const SETTINGS: Settings = Settings {
    node_timeout: Duration::from_millis(200),
    concurrency: 4,
};

/// INFO of a master with the given replicas (`ip:port`, acknowledged
/// offset) at `offset`.
fn master_info(offset: u64, replicas: &[(&str, u64)]) -> String {
    let mut s = format!(
        "# Memory\r\nused_memory:1000\r\nused_memory_peak:2000\r\n# Replication\r\nrole:master\r\nconnected_slaves:{}\r\nmaster_repl_offset:{offset}\r\n",
        replicas.len()
    );
    for (i, (at, acked)) in replicas.iter().enumerate() {
        let (ip, port) = at.split_once(':').expect("ip:port");
        s.push_str(&format!(
            "slave{i}:ip={ip},port={port},state=online,offset={acked},lag=1\r\n"
        ));
    }
    s
}

fn replica_info(master: &str, offset: u64, replicas: &[(&str, u64)]) -> String {
    let (host, port) = master.split_once(':').expect("host:port");
    master_info(offset, replicas).replace(
        "role:master\r\n",
        &format!("role:slave\r\nmaster_host:{host}\r\nmaster_port:{port}\r\nmaster_link_status:up\r\n"),
    )
}

/// Nodes answer from a table; a missing entry is a node that refuses the
/// connection; "hang" never answers.
#[derive(Default)]
struct Fake {
    info: HashMap<String, String>,
    status: HashMap<String, Document>,
    hello: Vec<String>,
    set: Option<(ReplSetConfig, Vec<MemberHealth>)>,
}

fn refused(node: &Endpoint) -> NodeError {
    NodeError::Down {
        endpoint: node.clone(),
        source: "connection refused".into(),
    }
}

impl RedisInfo for Fake {
    async fn info(&self, node: &Endpoint) -> Result<String, NodeError> {
        match self.info.get(&node.to_string()).map(String::as_str) {
            Some("hang") => {
                tokio::time::sleep(Duration::from_secs(3600)).await;
                Err(refused(node))
            }
            Some(text) => Ok(text.to_owned()),
            None => Err(refused(node)),
        }
    }
}

fn member_down(member: &Endpoint) -> MemberError {
    MemberError::Down {
        endpoint: member.clone(),
        source: "connection refused".into(),
    }
}

impl MongoStats for Fake {
    async fn server_status(&self, member: &Endpoint) -> Result<Document, MemberError> {
        self.status
            .get(&member.to_string())
            .cloned()
            .ok_or_else(|| member_down(member))
    }
}

impl MongoApi for Fake {
    async fn hello(&self, member: &Endpoint) -> Result<Hello, MemberError> {
        if self.hello.contains(&member.to_string()) {
            Ok(Hello::default())
        } else {
            Err(member_down(member))
        }
    }
    async fn status(&self, member: &Endpoint) -> Result<Vec<MemberHealth>, MemberError> {
        self.set
            .as_ref()
            .map(|s| s.1.clone())
            .ok_or_else(|| member_down(member))
    }
    async fn config(&self, member: &Endpoint) -> Result<ReplSetConfig, MemberError> {
        self.set
            .as_ref()
            .map(|s| s.0.clone())
            .ok_or_else(|| member_down(member))
    }
    async fn reconfig(&self, _: &Endpoint, _: &ReplSetConfig) -> Result<(), MemberError> {
        unreachable!("publish-metrics never reconfigures")
    }
    async fn step_down(&self, _: &Endpoint, _: Duration, _: Duration) -> Result<(), MemberError> {
        unreachable!("publish-metrics never steps down")
    }
}

impl PgProbe for Fake {
    async fn readings(&self, node: &Endpoint) -> Result<Readings, PgError> {
        Err(PgError::Down {
            endpoint: node.clone(),
            source: "connection refused".into(),
        })
    }
}

fn probes(fake: &Fake) -> Probes<'_, Fake, Fake, Fake> {
    Probes {
        redis: fake,
        mongo: fake,
        postgres: fake,
    }
}

/// The value of `name` with exactly `dims` (as `k=v`).
fn value(c: &Collection, name: &str, dims: &[&str]) -> Option<f64> {
    let found: Vec<f64> = c
        .data
        .iter()
        .filter(|d| {
            d.name == name
                && d.dimensions.len() == dims.len()
                && d.dimensions
                    .iter()
                    .all(|(k, v)| dims.contains(&format!("{k}={v}").as_str()))
        })
        .map(|d| d.value)
        .collect();
    assert!(
        found.len() <= 1,
        "{name} {dims:?} published {} times",
        found.len()
    );
    found.first().copied()
}

#[tokio::test]
async fn a_chain_with_a_dead_tail_publishes_its_lags_head_and_the_dead_node() {
    let c = "kate.example.com";
    let nodes = vec![
        (node("i-1", c, "10.0.0.1:6379"), Role::Redis),
        (node("i-2", c, "10.0.0.2:6379"), Role::Redis),
        (node("i-3", c, "10.0.0.3:6379"), Role::Redis),
    ];
    let fake = Fake {
        info: HashMap::from([
            (
                "10.0.0.1:6379".into(),
                master_info(5000, &[("10.0.0.2:6379", 4000)]),
            ),
            (
                "10.0.0.2:6379".into(),
                replica_info("10.0.0.1:6379", 4000, &[("10.0.0.3:6379", 3990)]),
            ),
        ]),
        ..Fake::default()
    };
    let out = collect(&probes(&fake), &nodes, SETTINGS, at()).await;
    assert_eq!(out.nodes, 3);
    assert_eq!(
        value(&out, "NodeUp", &["cluster=kate.example.com", "node=i-1"]),
        Some(1.0)
    );
    assert_eq!(
        value(&out, "NodeUp", &["cluster=kate.example.com", "node=i-3"]),
        Some(0.0)
    );
    assert_eq!(out.down.len(), 1);
    assert_eq!(out.down[0].node, "i-3");
    assert!(
        out.down[0].reason.contains("connection refused"),
        "{}",
        out.down[0].reason
    );
    assert_eq!(value(&out, "HeadUp", &["cluster=kate.example.com"]), Some(1.0));
    assert_eq!(value(&out, "Masters", &["cluster=kate.example.com"]), Some(1.0));
    // i-2 is 1,000 bytes behind the head, as the head sees it; the head
    // and the middle node say how far their replica is.
    assert_eq!(
        value(
            &out,
            "ReplicationLagBytes",
            &["cluster=kate.example.com", "node=i-2"]
        ),
        Some(1000.0)
    );
    assert_eq!(
        value(
            &out,
            "MaxReplicaLagBytes",
            &["cluster=kate.example.com", "node=i-2"]
        ),
        Some(10.0)
    );
    assert_eq!(
        value(&out, "UsedMemory", &["cluster=kate.example.com", "node=i-1"]),
        Some(1000.0)
    );
    // Every node figure is there once more per cluster, for statistics
    // over the cluster.
    let per_cluster = out
        .data
        .iter()
        .filter(|d| d.name == "NodeUp" && d.dimensions.len() == 1)
        .map(|d| d.value)
        .sum::<f64>();
    assert_eq!(per_cluster, 2.0);
    assert!(
        out.data
            .iter()
            .all(|d| d.namespace == "NineLives/Redis" && d.timestamp == at())
    );
}

#[tokio::test(start_paused = true)]
async fn a_node_that_hangs_is_down_after_the_timeout_and_the_head_gone_is_headup_0() {
    let c = "kate.example.com";
    let nodes = vec![
        (node("i-1", c, "10.0.0.1:6379"), Role::Redis),
        (node("i-2", c, "10.0.0.2:6379"), Role::Redis),
    ];
    let fake = Fake {
        info: HashMap::from([
            ("10.0.0.1:6379".into(), "hang".into()),
            ("10.0.0.2:6379".into(), replica_info("10.0.0.1:6379", 4000, &[])),
        ]),
        ..Fake::default()
    };
    let out = collect(&probes(&fake), &nodes, SETTINGS, at()).await;
    assert_eq!(out.down.len(), 1);
    assert_eq!(out.down[0].reason, "no answer within 200 ms");
    assert_eq!(value(&out, "HeadUp", &["cluster=kate.example.com"]), Some(0.0));
    assert_eq!(value(&out, "Masters", &["cluster=kate.example.com"]), Some(0.0));
    assert_eq!(
        value(&out, "MasterLinkUp", &["cluster=kate.example.com", "node=i-2"]),
        Some(1.0)
    );
}

#[tokio::test]
async fn two_heads_are_two_masters() {
    let c = "kate.example.com";
    let nodes = vec![
        (node("i-1", c, "10.0.0.1:6379"), Role::Redis),
        (node("i-2", c, "10.0.0.2:6379"), Role::Redis),
    ];
    let fake = Fake {
        info: HashMap::from([
            ("10.0.0.1:6379".into(), master_info(10, &[])),
            ("10.0.0.2:6379".into(), master_info(10, &[])),
        ]),
        ..Fake::default()
    };
    let out = collect(&probes(&fake), &nodes, SETTINGS, at()).await;
    assert_eq!(value(&out, "Masters", &["cluster=kate.example.com"]), Some(2.0));
}

#[tokio::test]
async fn a_field_that_is_not_a_number_is_skipped_and_the_node_is_up() {
    let nodes = vec![(node("i-1", "a.example.com", "10.0.0.1:6379"), Role::Redis)];
    let fake = Fake {
        info: HashMap::from([(
            "10.0.0.1:6379".into(),
            master_info(10, &[]).replace("used_memory:1000", "used_memory:lots"),
        )]),
        ..Fake::default()
    };
    let out = collect(&probes(&fake), &nodes, SETTINGS, at()).await;
    assert_eq!(
        value(&out, "NodeUp", &["cluster=a.example.com", "node=i-1"]),
        Some(1.0)
    );
    assert_eq!(
        value(&out, "UsedMemory", &["cluster=a.example.com", "node=i-1"]),
        None
    );
    assert_eq!(out.skipped.len(), 1);
    assert!(
        out.skipped[0].reason.contains("\"lots\" is not a number"),
        "{:?}",
        out.skipped
    );
}

#[tokio::test]
async fn a_postgres_node_that_refuses_is_down_and_nothing_else_of_it_is_published() {
    let nodes = vec![(node("i-9", "pg.example.com", "10.0.0.9:5432"), Role::Postgres)];
    let fake = Fake::default();
    let out = collect(&probes(&fake), &nodes, SETTINGS, at()).await;
    assert_eq!(out.down.len(), 1);
    assert_eq!(out.down[0].role, Role::Postgres);
    assert!(
        out.data
            .iter()
            .all(|d| d.name == "NodeUp" && d.value == 0.0 && d.namespace == "NineLives/Postgres")
    );
    assert_eq!(out.data.len(), 2);
}

#[tokio::test]
async fn a_set_nobody_answers_for_counts_every_member_unhealthy() {
    let c = "rs.example.com";
    let nodes = vec![
        (node("i-1", c, "10.0.0.1:27017"), Role::Mongodb),
        (node("i-2", c, "10.0.0.2:27017"), Role::Mongodb),
        (node("i-3", c, "10.0.0.3:27017"), Role::MongodbArbiter),
    ];
    let fake = Fake::default();
    let out = collect(&probes(&fake), &nodes, SETTINGS, at()).await;
    assert_eq!(
        value(&out, "HealthyHostCount", &["cluster=rs.example.com"]),
        Some(0.0)
    );
    assert_eq!(
        value(&out, "UnHealthyHostCount", &["cluster=rs.example.com"]),
        Some(2.0)
    );
    assert_eq!(
        value(&out, "ArbiterCount", &["cluster=rs.example.com"]),
        Some(1.0)
    );
    assert_eq!(
        value(&out, "UnHealthyArbiterCount", &["cluster=rs.example.com"]),
        Some(1.0)
    );
    assert_eq!(out.down.len(), 3);
    assert!(
        out.skipped
            .iter()
            .any(|s| s.node.is_none() && s.reason.contains("counted unhealthy"))
    );
}

#[tokio::test]
async fn a_set_is_counted_from_its_primarys_status_with_each_members_lag() {
    let c = "rs.example.com";
    let nodes = vec![
        (node("i-1", c, "10.0.0.1:27017"), Role::Mongodb),
        (node("i-2", c, "10.0.0.2:27017"), Role::Mongodb),
        (node("i-3", c, "10.0.0.3:27017"), Role::MongodbArbiter),
    ];
    let primary = doc! {
        "globalLock": {"currentQueue": {"total": 3, "readers": 1, "writers": 2}},
        "repl": {"setName": "rs0", "isWritablePrimary": true},
    };
    let secondary = doc! {
        "globalLock": {"currentQueue": {"total": 0, "readers": 0, "writers": 0}},
        "repl": {"setName": "rs0", "isWritablePrimary": false, "secondary": true},
    };
    let t0 = at();
    let config = ReplSetConfig::from_document(&doc! {
        "_id": "rs0", "version": 1,
        "members": [
            {"_id": 0, "host": "10.0.0.1:27017"},
            {"_id": 1, "host": "10.0.0.2:27017"},
            {"_id": 2, "host": "10.0.0.3:27017", "arbiterOnly": true},
        ],
    })
    .expect("a valid config");
    let health = vec![
        MemberHealth {
            host: "10.0.0.1:27017".into(),
            health: 1.0,
            state: 1,
            optime: Some(t0),
        },
        MemberHealth {
            host: "10.0.0.2:27017".into(),
            health: 1.0,
            state: 2,
            optime: Some(t0 - chrono::Duration::seconds(7)),
        },
        MemberHealth {
            host: "10.0.0.3:27017".into(),
            health: 0.0,
            state: 8,
            optime: None,
        },
    ];
    let fake = Fake {
        status: HashMap::from([
            ("10.0.0.1:27017".into(), primary),
            ("10.0.0.2:27017".into(), secondary),
        ]),
        set: Some((config, health)),
        ..Fake::default()
    };
    let out = collect(&probes(&fake), &nodes, SETTINGS, at()).await;
    assert_eq!(
        value(&out, "HealthyHostCount", &["cluster=rs.example.com"]),
        Some(2.0)
    );
    assert_eq!(
        value(&out, "UnHealthyHostCount", &["cluster=rs.example.com"]),
        Some(0.0)
    );
    assert_eq!(
        value(&out, "UnHealthyArbiterCount", &["cluster=rs.example.com"]),
        Some(1.0)
    );
    assert_eq!(
        value(
            &out,
            "ReplicationLagSeconds",
            &["cluster=rs.example.com", "node=i-2"]
        ),
        Some(7.0)
    );
    assert_eq!(
        value(
            &out,
            "OperationsQueuedWaitingForLock",
            &["cluster=rs.example.com", "node=i-1"]
        ),
        Some(3.0)
    );
    // The arbiter is down: it does not answer hello.
    assert_eq!(
        value(&out, "NodeUp", &["cluster=rs.example.com", "node=i-3"]),
        Some(0.0)
    );
    assert!(out.data.iter().all(|d| d.namespace == "NineLives/MongoDB"));
}

/// Counts calls; fails the namespaces it is told to.
#[derive(Default)]
struct Sink {
    calls: Mutex<Vec<(&'static str, usize)>>,
    fail: Vec<&'static str>,
}

impl MetricsSink for Sink {
    async fn put(&self, batch: &Batch) -> Result<(), Error> {
        self.calls
            .lock()
            .expect("no test panics while holding it")
            .push((batch.namespace, batch.data.len()));
        if self.fail.contains(&batch.namespace) {
            return Err(Error::Incomplete {
                detail: "throttled".into(),
                retryable: true,
            });
        }
        Ok(())
    }
}

fn datums(namespace: &'static str, n: usize) -> Vec<Datum> {
    (0..n)
        .map(|i| Datum {
            namespace,
            name: format!("M{i}"),
            dimensions: vec![("cluster".into(), "a".into())],
            value: i as f64,
            unit: Unit::Count,
            timestamp: at(),
        })
        .collect()
}

#[tokio::test]
async fn publish_makes_the_fewest_calls_and_one_failure_does_not_stop_the_others() {
    let mut data = datums("NineLives/Redis", 2500);
    data.extend(datums("NineLives/MongoDB", 10));
    let sink = Sink {
        fail: vec!["NineLives/MongoDB"],
        ..Sink::default()
    };
    let out = publish(&sink, data, false).await;
    assert_eq!(out.calls, 4);
    assert_eq!(sink.calls.lock().expect("not poisoned").len(), 4);
    assert_eq!(out.by_namespace["NineLives/Redis"], 2500);
    assert_eq!(out.failures.len(), 1);
}

#[tokio::test]
async fn a_dry_run_sends_nothing_and_says_what_it_would() {
    let sink = Sink::default();
    let mut data = datums("NineLives/Postgres", 3);
    data[1].value = f64::NAN;
    let out = publish(&sink, data, true).await;
    assert_eq!(out.calls, 1);
    assert_eq!(out.rejected.len(), 1);
    assert!(sink.calls.lock().expect("not poisoned").is_empty());
}

#[tokio::test]
async fn a_launching_standalone_master_is_no_head_while_the_real_one_is_dead() {
    let c = "kate.example.com";
    let nodes = vec![
        (node("i-1", c, "10.0.0.1:6379"), Role::Redis),
        (node("i-2", c, "10.0.0.2:6379"), Role::Redis),
        (node("i-9", c, "10.0.0.9:6379"), Role::Redis),
    ];
    let fake = Fake {
        info: HashMap::from([
            // i-1 (the head) is dead; i-2 still names it; i-9 is new.
            ("10.0.0.2:6379".into(), replica_info("10.0.0.1:6379", 4000, &[])),
            ("10.0.0.9:6379".into(), master_info(0, &[])),
        ]),
        ..Fake::default()
    };
    let out = collect(&probes(&fake), &nodes, SETTINGS, at()).await;
    assert_eq!(value(&out, "HeadUp", &["cluster=kate.example.com"]), Some(0.0));
    assert_eq!(value(&out, "Masters", &["cluster=kate.example.com"]), Some(0.0));

    // A chain of one with no replica is its own head.
    let one = vec![(node("i-1", c, "10.0.0.1:6379"), Role::Redis)];
    let fake = Fake {
        info: HashMap::from([("10.0.0.1:6379".into(), master_info(10, &[]))]),
        ..Fake::default()
    };
    let out = collect(&probes(&fake), &one, SETTINGS, at()).await;
    assert_eq!(value(&out, "HeadUp", &["cluster=kate.example.com"]), Some(1.0));
}

#[tokio::test]
async fn a_replica_connecting_from_another_address_gets_its_lag_when_it_is_the_only_one() {
    let c = "kate.example.com";
    let nodes = vec![
        (node("i-1", c, "10.0.0.1:6379"), Role::Redis),
        (node("i-2", c, "10.0.0.2:6379"), Role::Redis),
    ];
    // The head lists its replica by an address no node has (NAT).
    let fake = Fake {
        info: HashMap::from([
            (
                "10.0.0.1:6379".into(),
                master_info(5000, &[("192.168.9.9:6379", 4200)]),
            ),
            ("10.0.0.2:6379".into(), replica_info("10.0.0.1:6379", 4200, &[])),
        ]),
        ..Fake::default()
    };
    let out = collect(&probes(&fake), &nodes, SETTINGS, at()).await;
    assert_eq!(
        value(
            &out,
            "ReplicationLagBytes",
            &["cluster=kate.example.com", "node=i-2"]
        ),
        Some(800.0)
    );
}
