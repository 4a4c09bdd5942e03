//! publish-metrics' run (SPEC item 7): read every node tagged with a role
//! from outside, at once, each within a timeout, and turn what each says
//! into CloudWatch datums; then send them in as few `PutMetricData` calls
//! as the limits allow ([`publish`]).
//!
//! The book ran a monitor by cron on every node, which went silent exactly
//! when its node died. Here a node that does not answer is a figure of its
//! own: `NodeUp` 0, with the reason in the run's summary, and the other
//! nodes are read and published as usual.
//!
//! Dimensions: a node's figures carry `cluster` and `node` (the instance
//! id), and the same value again with `cluster` alone, so CloudWatch's
//! statistics over a cluster (Sum of `NodeUp`, Maximum of a lag) need no
//! metric math. Figures of a cluster as a whole (`HeadUp` and `Masters` of
//! a Redis chain, the host counts of a replica set) carry `cluster` only;
//! a PostgreSQL database's figures carry `database` too.

use std::collections::BTreeMap;
use std::future::Future;
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::future::join_all;
use futures::stream::{self, StreamExt};
use serde::Serialize;

use super::mongo::{self as mongo_figures, MemberFigures, MongoStats};
use super::postgres::{self as pg_figures, PgProbe, Readings};
use super::redis::{self as redis_figures, RedisInfo};
use super::{Datum, MetricsSink, Rejected, Unit, batches};
use crate::chain::model::{Endpoint, InvalidNode, Node};
use crate::error::Error;
use crate::mongo::ports::MongoApi;
use crate::mongo::replset::{MemberHealth, ReplSetConfig};

/// The roles publish-metrics watches, as `ninelives:role` spells them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    Redis,
    Mongodb,
    MongodbArbiter,
    Postgres,
}

impl Role {
    pub const ALL: [Role; 4] = [Role::Redis, Role::Mongodb, Role::MongodbArbiter, Role::Postgres];

    pub fn tag(self) -> &'static str {
        match self {
            Role::Redis => "redis",
            Role::Mongodb => "mongodb",
            Role::MongodbArbiter => "mongodb-arbiter",
            Role::Postgres => "postgres",
        }
    }

    pub fn from_tag(tag: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|r| r.tag() == tag)
    }

    /// The port of a node whose `ninelives:endpoint` names none.
    pub fn default_port(self) -> u16 {
        match self {
            Role::Redis => crate::chain::model::DEFAULT_PORT,
            Role::Mongodb | Role::MongodbArbiter => crate::mongo::replset::DEFAULT_PORT,
            Role::Postgres => 5432,
        }
    }

    pub fn namespace(self) -> &'static str {
        match self {
            Role::Redis => redis_figures::NAMESPACE,
            Role::Mongodb | Role::MongodbArbiter => mongo_figures::NAMESPACE,
            Role::Postgres => pg_figures::NAMESPACE,
        }
    }
}

/// An instance tagged with a role: the node it is, or why its tags make
/// none.
pub type Tagged = (Result<Node, InvalidNode>, Role);

/// Every instance tagged with one of [`Role::ALL`] (implemented on
/// `crate::ec2::Ec2`).
pub trait MetricInventory: Sync {
    fn metric_nodes(&self) -> impl Future<Output = Result<Vec<Tagged>, Error>> + Send;
}

/// How nodes are read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Settings {
    /// Bound on reading one node (every call to it together).
    pub node_timeout: Duration,
    /// How many nodes are read at once.
    pub concurrency: usize,
}

/// What reads each kind of node.
pub struct Probes<'a, R, M, P> {
    pub redis: &'a R,
    pub mongo: &'a M,
    pub postgres: &'a P,
}

/// A node whose figures could not be read: it is published as `NodeUp` 0.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Down {
    pub cluster: String,
    pub node: String,
    pub role: Role,
    pub endpoint: String,
    pub reason: String,
}

/// A figure left out (a field that is not a number, a database that
/// refused us, a set whose status nobody gave), with why.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Skip {
    pub cluster: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    pub reason: String,
}

/// What one collection found.
#[derive(Debug, Clone, Default)]
pub struct Collection {
    pub data: Vec<Datum>,
    /// Nodes read (or tried).
    pub nodes: usize,
    pub down: Vec<Down>,
    pub skipped: Vec<Skip>,
}

/// What one node answered.
enum Reading {
    Redis(redis_figures::Figures),
    MongoData(MemberFigures),
    MongoArbiter,
    Postgres(Box<(Readings, pg_figures::Figures)>),
}

/// Reads every node in `nodes` (at most `settings.concurrency` at once,
/// each within `settings.node_timeout`) and returns the datums of all of
/// them, stamped `at`.
pub async fn collect<R, M, P>(
    probes: &Probes<'_, R, M, P>,
    nodes: &[(Node, Role)],
    settings: Settings,
    at: DateTime<Utc>,
) -> Collection
where
    R: RedisInfo,
    M: MongoApi + MongoStats,
    P: PgProbe,
{
    // The futures are made first: a closure inside the stream would make
    // the run's future not provably `Send` (a known rustc limitation with
    // higher-ranked lifetimes).
    let reads: Vec<_> = nodes
        .iter()
        .map(|(node, role)| read_node(probes, node, *role, settings.node_timeout))
        .collect();
    let readings: Vec<Result<Reading, String>> = stream::iter(reads)
        .buffered(settings.concurrency.max(1))
        .collect()
        .await;

    // By cluster (and namespace: one name may be a Redis chain and a
    // PostgreSQL cluster at once), in a stable order.
    let mut clusters: BTreeMap<(&'static str, &str), Vec<Answer<'_>>> = BTreeMap::new();
    for ((node, role), reading) in nodes.iter().zip(readings) {
        clusters
            .entry((role.namespace(), node.cluster.as_str()))
            .or_default()
            .push((node, *role, reading));
    }

    let mut out = Collection {
        nodes: nodes.len(),
        ..Collection::default()
    };
    let mut sets = Vec::new();
    for ((namespace, cluster), members) in clusters {
        let mut c = ClusterData::new(namespace, cluster, at);
        for (node, role, reading) in &members {
            if let Err(reason) = reading {
                tracing::warn!(cluster, node = %node.instance_id, endpoint = %node.endpoint, role = role.tag(), reason = %reason, "node skipped");
                out.down.push(Down {
                    cluster: cluster.to_owned(),
                    node: node.instance_id.clone(),
                    role: *role,
                    endpoint: node.endpoint.to_string(),
                    reason: reason.clone(),
                });
            }
            c.node(
                node,
                "NodeUp",
                Unit::None,
                if reading.is_ok() { 1.0 } else { 0.0 },
            );
        }
        if namespace == redis_figures::NAMESPACE {
            redis_cluster(&mut c, &members);
        } else if namespace == mongo_figures::NAMESPACE {
            sets.push((c, members));
            continue;
        } else {
            postgres_cluster(&mut c, &members);
        }
        out.data.append(&mut c.data);
        out.skipped.append(&mut c.skipped);
    }

    // A set's own figures need one more round of calls (its status and
    // config, from the primary if one answered); all sets at once.
    let done = join_all(sets.into_iter().map(|(mut c, members)| async move {
        mongo_set(probes.mongo, &mut c, &members, settings.node_timeout).await;
        c
    }))
    .await;
    for mut c in done {
        out.data.append(&mut c.data);
        out.skipped.append(&mut c.skipped);
    }
    out
}

/// Reads one node within `timeout`; the error is the reason it is down.
async fn read_node<R, M, P>(
    probes: &Probes<'_, R, M, P>,
    node: &Node,
    role: Role,
    timeout: Duration,
) -> Result<Reading, String>
where
    R: RedisInfo,
    M: MongoApi + MongoStats,
    P: PgProbe,
{
    let endpoint = &node.endpoint;
    let read = async {
        match role {
            Role::Redis => probes
                .redis
                .info(endpoint)
                .await
                .map(|text| Reading::Redis(redis_figures::figures(&text)))
                .map_err(|e| e.to_string()),
            Role::Mongodb => probes
                .mongo
                .server_status(endpoint)
                .await
                .map(|doc| Reading::MongoData(mongo_figures::member_figures(&doc)))
                .map_err(|e| e.to_string()),
            // An arbiter holds no users, so it cannot be asked for its
            // serverStatus with credentials; that it answers `hello` is
            // its health (the set's status says the rest).
            Role::MongodbArbiter => probes
                .mongo
                .hello(endpoint)
                .await
                .map(|_| Reading::MongoArbiter)
                .map_err(|e| e.to_string()),
            Role::Postgres => probes
                .postgres
                .readings(endpoint)
                .await
                .map(|r| {
                    let figures = pg_figures::figures(&r);
                    Reading::Postgres(Box::new((r, figures)))
                })
                .map_err(|e| e.to_string()),
        }
    };
    match tokio::time::timeout(timeout, read).await {
        Ok(result) => result,
        Err(_) => Err(format!("no answer within {} ms", timeout.as_millis())),
    }
}

/// The datums and skips of one cluster, as they are made.
struct ClusterData<'a> {
    namespace: &'static str,
    cluster: &'a str,
    at: DateTime<Utc>,
    data: Vec<Datum>,
    skipped: Vec<Skip>,
}

impl<'a> ClusterData<'a> {
    fn new(namespace: &'static str, cluster: &'a str, at: DateTime<Utc>) -> Self {
        ClusterData {
            namespace,
            cluster,
            at,
            data: Vec::new(),
            skipped: Vec::new(),
        }
    }

    fn push(&mut self, name: &str, unit: Unit, value: f64, dimensions: Vec<(String, String)>) {
        self.data.push(Datum {
            namespace: self.namespace,
            name: name.to_owned(),
            dimensions,
            value,
            unit,
            timestamp: self.at,
        });
    }

    /// A node's figure: with `cluster` and `node`, and again with
    /// `cluster` alone.
    fn node(&mut self, node: &Node, name: &str, unit: Unit, value: f64) {
        let cluster = ("cluster".to_owned(), self.cluster.to_owned());
        self.push(
            name,
            unit,
            value,
            vec![cluster.clone(), ("node".to_owned(), node.instance_id.clone())],
        );
        self.push(name, unit, value, vec![cluster]);
    }

    /// A figure of the cluster as a whole.
    fn cluster(&mut self, name: &str, unit: Unit, value: f64) {
        self.push(
            name,
            unit,
            value,
            vec![("cluster".to_owned(), self.cluster.to_owned())],
        );
    }

    fn skip(&mut self, node: Option<&Node>, reason: String) {
        tracing::warn!(cluster = self.cluster, node = ?node.map(|n| &n.instance_id), reason = %reason, "figure skipped");
        self.skipped.push(Skip {
            cluster: self.cluster.to_owned(),
            node: node.map(|n| n.instance_id.clone()),
            reason,
        });
    }
}

/// A node, its role and what it answered.
type Answer<'a> = (&'a Node, Role, Result<Reading, String>);
type Members<'a> = [Answer<'a>];

/// A Redis chain: each node's INFO figures, each replica's lag as its
/// master sees it (`ReplicationLagBytes`; `ReplicationLagSeconds`, the age
/// of the replica's last acknowledgement, INFO's `lag`), and whether the
/// chain has a head: `Masters` (reachable masters that lead: followed by a
/// node, or with no replica anywhere; 2 or more is a split) and `HeadUp` (1
/// when there is one), the figure the failover alarm watches. A node's own
/// `NodeUp` cannot be that alarm, because the head moves from node to node.
fn redis_cluster(c: &mut ClusterData<'_>, members: &Members<'_>) {
    let figures: Vec<(&Node, &redis_figures::Figures)> = members
        .iter()
        .filter_map(|(node, _, r)| match r {
            Ok(Reading::Redis(f)) => Some((*node, f)),
            _ => None,
        })
        .collect();
    let follows = |f: &redis_figures::Figures, m: &Node| {
        f.master
            .as_ref()
            .is_some_and(|(host, port)| m.answers_to(host, *port))
    };
    let any_replica = figures.iter().any(|(_, f)| f.master.is_some());
    let mut masters = 0u32;
    for (node, f) in &figures {
        for (name, unit, value) in &f.values {
            c.node(node, name, *unit, *value);
        }
        for reason in &f.skipped {
            c.skip(Some(node), reason.clone());
        }
        // A master leads the chain when a node follows it, or when no node
        // follows anyone (a chain of one, or all replicas gone). A node
        // that is launching answers as a standalone master until it is
        // attached; it must not pass for a head while the real one is dead.
        let is_master = f.values.iter().any(|(n, _, v)| *n == "IsMaster" && *v == 1.0);
        if is_master && (!any_replica || figures.iter().any(|(_, r)| follows(r, node))) {
            masters += 1;
        }
        // The replica's lag is in its master's INFO, under the address the
        // replica connected from; a master with one replica, followed by
        // one node, is that node's even when the address is another (NAT,
        // or several addresses on one host).
        let Some((host, port)) = &f.master else { continue };
        let Some((master_node, mf)) = figures.iter().find(|(m, _)| m.answers_to(host, *port)) else {
            continue;
        };
        let by_address = mf.replicas.iter().find(|r| {
            r.replica
                .rsplit_once(':')
                .and_then(|(h, p)| p.parse().ok().map(|p| node.answers_to(h, p)))
                .unwrap_or(false)
        });
        let only_one = match mf.replicas.as_slice() {
            [one] if figures.iter().filter(|(_, r)| follows(r, master_node)).count() == 1 => Some(one),
            _ => None,
        };
        if let Some(lag) = by_address.or(only_one) {
            c.node(node, "ReplicationLagBytes", Unit::Bytes, lag.bytes);
            c.node(node, "ReplicationLagSeconds", Unit::Seconds, lag.seconds);
        }
    }
    c.cluster("Masters", Unit::Count, f64::from(masters));
    c.cluster("HeadUp", Unit::None, if masters > 0 { 1.0 } else { 0.0 });
}

/// A PostgreSQL cluster: each node's figures, its databases', and each
/// replica's lag behind the primary read in this same run.
fn postgres_cluster(c: &mut ClusterData<'_>, members: &Members<'_>) {
    let read: Vec<(&Node, &Readings, &pg_figures::Figures)> = members
        .iter()
        .filter_map(|(node, _, r)| match r {
            Ok(Reading::Postgres(both)) => Some((*node, &both.0, &both.1)),
            _ => None,
        })
        .collect();
    let ids: Vec<(&str, &Readings)> = read
        .iter()
        .map(|(n, r, _)| (n.instance_id.as_str(), *r))
        .collect();
    let lags = pg_figures::replica_lags(&ids);
    for (node, _, f) in &read {
        let lag = lags
            .iter()
            .find(|(id, _)| *id == node.instance_id)
            .map(|(_, l)| *l);
        for (name, unit, value) in &f.node {
            c.node(node, name, *unit, *value);
        }
        // The primary's position less the replica's, read in this run; a
        // replica's own received-less-replayed bytes are its
        // `ReplayBacklogBytes`.
        if let Some(lag) = lag {
            c.node(node, "ReplicationLagBytes", Unit::Bytes, lag);
        }
        for (database, values) in &f.databases {
            for (name, unit, value) in values {
                c.push(
                    name,
                    *unit,
                    *value,
                    vec![
                        ("cluster".to_owned(), c.cluster.to_owned()),
                        ("node".to_owned(), node.instance_id.clone()),
                        ("database".to_owned(), database.clone()),
                    ],
                );
            }
        }
        for reason in &f.skipped {
            c.skip(Some(node), reason.clone());
        }
    }
}

/// A replica set: each data member's serverStatus figures, each member's
/// lag behind the primary, and the set's host counts, from the status and
/// config of the primary (else of another member that answers).
async fn mongo_set<M: MongoApi>(
    mongo: &M,
    c: &mut ClusterData<'_>,
    members: &Members<'_>,
    timeout: Duration,
) {
    let mut candidates: Vec<(&Node, bool)> = Vec::new();
    for (node, _, reading) in members {
        if let Ok(Reading::MongoData(f)) = reading {
            for (name, unit, value) in &f.values {
                c.node(node, name, *unit, *value);
            }
            for reason in &f.skipped {
                c.skip(Some(node), reason.clone());
            }
            candidates.push((node, f.is_primary));
        }
    }
    // The primary's view first: it is the one whose optimes are current.
    candidates.sort_by_key(|(_, primary)| !primary);

    let mut view: Option<(ReplSetConfig, Vec<MemberHealth>)> = None;
    let mut why = Vec::new();
    for (node, _) in &candidates {
        let read = async { futures::join!(mongo.config(&node.endpoint), mongo.status(&node.endpoint)) };
        match tokio::time::timeout(timeout, read).await {
            Ok((Ok(config), Ok(status))) => {
                view = Some((config, status));
                break;
            }
            Ok((Err(e), _) | (_, Err(e))) => why.push(format!("{}: {e}", node.endpoint)),
            Err(_) => why.push(format!(
                "{}: no answer within {} ms",
                node.endpoint,
                timeout.as_millis()
            )),
        }
    }

    match view {
        Some((config, status)) => {
            for (name, unit, value) in mongo_figures::set_counts(&config, &status) {
                c.cluster(name, unit, value);
            }
            for (host, lag) in mongo_figures::lag_seconds(&status) {
                let Ok(at) = Endpoint::parse(&host, crate::mongo::replset::DEFAULT_PORT) else {
                    continue;
                };
                if let Some((node, ..)) = members.iter().find(|(n, ..)| n.answers_to(&at.host, at.port)) {
                    c.node(node, "ReplicationLagSeconds", Unit::Seconds, lag);
                }
            }
        }
        None => {
            // Nobody gave the set's status: count from the tags, every
            // member unhealthy, so the alarm on UnHealthyHostCount fires
            // rather than going without data.
            let data = members.iter().filter(|(_, r, _)| *r == Role::Mongodb).count() as f64;
            let arbiters = members
                .iter()
                .filter(|(_, r, _)| *r == Role::MongodbArbiter)
                .count() as f64;
            c.cluster("HealthyHostCount", Unit::Count, 0.0);
            c.cluster("UnHealthyHostCount", Unit::Count, data);
            c.cluster("ArbiterCount", Unit::Count, arbiters);
            c.cluster("UnHealthyArbiterCount", Unit::Count, arbiters);
            let reason = if why.is_empty() {
                "no data member answered, so the set's status is unknown; every member is counted unhealthy"
                    .to_owned()
            } else {
                format!(
                    "no member gave the set's status ({}); every member is counted unhealthy",
                    why.join("; ")
                )
            };
            c.skip(None, reason);
        }
    }
}

/// What [`publish`] did.
#[derive(Debug, Default)]
pub struct Published {
    /// `PutMetricData` calls made (or, in a dry run, that would be).
    pub calls: usize,
    /// Datums sent (or that would be), by namespace.
    pub by_namespace: BTreeMap<&'static str, usize>,
    /// Datums CloudWatch would refuse, left out.
    pub rejected: Vec<Rejected>,
    /// Calls that failed; their datums are lost for this minute.
    pub failures: Vec<Error>,
}

/// Sends `data` in the fewest calls the limits allow, all at once; a
/// failed call does not stop the others. A dry run sends nothing.
pub async fn publish<S: MetricsSink>(sink: &S, data: Vec<Datum>, dry_run: bool) -> Published {
    let (batches, rejected) = batches(data);
    let mut out = Published {
        calls: batches.len(),
        rejected,
        ..Published::default()
    };
    for b in &batches {
        *out.by_namespace.entry(b.namespace).or_default() += b.data.len();
    }
    if dry_run {
        return out;
    }
    let results = join_all(batches.iter().map(|b| sink.put(b))).await;
    for (b, result) in batches.iter().zip(results) {
        if let Err(err) = result {
            tracing::error!(namespace = b.namespace, datums = b.data.len(), error = %err, "PutMetricData failed");
            out.failures.push(err);
        }
    }
    out
}

#[cfg(test)]
#[path = "tests/collect.rs"]
mod tests;
