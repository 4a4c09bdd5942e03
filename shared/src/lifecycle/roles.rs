//! Joining a node to its cluster on launch and taking it out on terminate,
//! per `ninelives:role`:
//!
//! - `search`: one weighted Route 53 record per instance (name = the cluster
//!   tag, set identifier = the instance id, weight 100), pointing at the
//!   node's endpoint host, so clients find any live node (the book's
//!   elasticsearch WRR record). UPSERT on launch, DELETE on terminate; the
//!   record is the only thing this function ever deletes, and only its own
//!   (matched by set identifier).
//! - `redis`: the node joins its chain as the new tail (or as head when it
//!   is alone) and leaves it spliced out, a head handing over first
//!   (`crate::chain::membership`).
//! - `mongodb`, `mongodb-arbiter`: membership tasks on the replica set's
//!   task queue (`crate::mongo::task`): on launch `add` (`add-arbiter`), on
//!   terminate `step-down-if-primary` then `remove`. replset-tasks applies
//!   them on the primary; the node's own mongod may still be starting (the
//!   book's reason for a queue), so the hook does not wait for them.
//! - `postgres` and no role: nothing to join.

use std::time::Duration;

use chrono::Utc;
use serde_json::json;

use super::node::{NodePlan, Role};
use super::ports::{Instance, RoleChange, Roles};
use crate::chain::membership;
use crate::chain::model::node_from;
use crate::chain::ports::{Inventory, RedisApi};
use crate::chain::reconcile::{ClusterReport, Settings};
use crate::dns::{self, Change, Dns, RecordSet};
use crate::error::{ConfigError, Error};
use crate::mongo::ports::TaskQueue;
use crate::mongo::replset::{Kind, normalize_host};
use crate::mongo::task::Task;

/// The roles, with the adapters each needs.
pub struct ClusterRoles<D, C = NoChain, M = NoChain> {
    /// `None` when `HOSTED_ZONE_ID` is not set: a search node is then an
    /// error naming the variable.
    search: Option<SearchRecords<D>>,
    /// Likewise for a redis node.
    redis: Option<C>,
    /// `None` when `TASK_QUEUE_URL` is not set.
    mongo: Option<M>,
}

impl<D: Dns> ClusterRoles<D, NoChain, NoChain> {
    pub fn new(search: Option<SearchRecords<D>>) -> Self {
        ClusterRoles {
            search,
            redis: None,
            mongo: None,
        }
    }
}

impl<D: Dns, C: Roles, M: Roles> ClusterRoles<D, C, M> {
    /// The same roles, with `redis` nodes joining and leaving through
    /// `chain` (`None`: no hosted zone, an error naming the variable).
    pub fn with_redis<C2: Roles>(self, chain: Option<C2>) -> ClusterRoles<D, C2, M> {
        ClusterRoles {
            search: self.search,
            redis: chain,
            mongo: self.mongo,
        }
    }

    /// The same roles, with `mongodb` and `mongodb-arbiter` nodes queueing
    /// their tasks through `tasks` (`None`: no task queue, an error naming
    /// `TASK_QUEUE_URL`).
    pub fn with_mongo<M2: Roles>(self, tasks: Option<M2>) -> ClusterRoles<D, C, M2> {
        ClusterRoles {
            search: self.search,
            redis: self.redis,
            mongo: tasks,
        }
    }

    fn mongo(&self) -> Result<&M, Error> {
        self.mongo.as_ref().ok_or(Error::Config(ConfigError::Missing {
            name: "TASK_QUEUE_URL",
        }))
    }

    fn search(&self) -> Result<&SearchRecords<D>, Error> {
        self.search.as_ref().ok_or_else(missing_zone)
    }

    fn redis(&self) -> Result<&C, Error> {
        self.redis.as_ref().ok_or_else(missing_zone)
    }
}

fn missing_zone() -> Error {
    Error::Config(ConfigError::Missing {
        name: "HOSTED_ZONE_ID",
    })
}

/// No chain configured; never called, since [`ClusterRoles::new`] leaves
/// the redis role empty. The chain is itself a [`Roles`]: join and leave
/// of one role.
pub enum NoChain {}

impl Roles for NoChain {
    async fn join(&self, _: &Instance, _: &NodePlan, _: bool) -> Result<RoleChange, Error> {
        match *self {}
    }
    async fn leave(&self, _: &Instance, _: &NodePlan, _: bool) -> Result<RoleChange, Error> {
        match *self {}
    }
}

/// The `redis` role: the chain of the node's cluster.
pub struct RedisChain<R, D, I> {
    redis: R,
    dns: D,
    inventory: I,
    settings: Settings,
    /// How long a launching node's Redis may take to answer.
    join_wait: Duration,
}

impl<R: RedisApi, D: Dns, I: Inventory> RedisChain<R, D, I> {
    pub fn new(redis: R, dns: D, inventory: I, settings: Settings, join_wait: Duration) -> Self {
        RedisChain {
            redis,
            dns,
            inventory,
            settings,
            join_wait,
        }
    }

    fn settings(&self, dry_run: bool) -> Settings {
        Settings {
            dry_run: dry_run || self.settings.dry_run,
            ..self.settings.clone()
        }
    }
}

/// The chain node an instance is, read from its tags the way the EC2
/// inventory reads every other node.
fn chain_node(instance: &Instance) -> Result<crate::chain::model::Node, Error> {
    node_from(
        &instance.id,
        &instance.tags,
        instance.private_dns_name.as_deref(),
        instance.private_ip.as_deref(),
        None,
        crate::chain::model::DEFAULT_PORT,
    )
    .map_err(|bad| Error::resource(&instance.id, bad.reason))
}

fn chain_change(mut report: ClusterReport) -> Result<RoleChange, Error> {
    if let Some(err) = report.failure.take() {
        return Err(err);
    }
    Ok(RoleChange {
        role: Role::Redis.as_str().to_owned(),
        action: report.status.to_owned(),
        detail: serde_json::to_value(&report).ok(),
    })
}

impl<R: RedisApi, D: Dns, I: Inventory> Roles for RedisChain<R, D, I> {
    async fn join(&self, instance: &Instance, _node: &NodePlan, dry_run: bool) -> Result<RoleChange, Error> {
        let node = chain_node(instance)?;
        let settings = self.settings(dry_run);
        chain_change(
            membership::join(
                &self.redis,
                &self.dns,
                &self.inventory,
                &node,
                &settings,
                self.join_wait,
            )
            .await,
        )
    }

    async fn leave(&self, instance: &Instance, _node: &NodePlan, dry_run: bool) -> Result<RoleChange, Error> {
        let node = chain_node(instance)?;
        let settings = self.settings(dry_run);
        chain_change(membership::leave(&self.redis, &self.dns, &self.inventory, &node, &settings).await)
    }
}

/// The `mongodb` and `mongodb-arbiter` roles: the set's task queue.
pub struct MongoTasks<Q> {
    queue: Q,
}

impl<Q: TaskQueue> MongoTasks<Q> {
    pub fn new(queue: Q) -> Self {
        MongoTasks { queue }
    }

    async fn enqueue(&self, node: &NodePlan, tasks: Vec<Task>, dry_run: bool) -> Result<RoleChange, Error> {
        let role = node.role.map_or("none", Role::as_str).to_owned();
        let mut done = Vec::with_capacity(tasks.len());
        for task in &tasks {
            if dry_run {
                done.push(json!({ "type": task.kind, "host": task.host, "deduplication_id": task.deduplication_id() }));
                continue;
            }
            // In order: a set's tasks are applied in the order they were
            // sent, and a terminating primary must step down before it is
            // removed.
            let sent = self.queue.enqueue(task).await?;
            done.push(json!({ "type": task.kind, "host": task.host, "message_id": sent.message_id, "deduplication_id": sent.deduplication_id }));
        }
        Ok(RoleChange {
            role,
            action: if dry_run { "would-enqueue" } else { "enqueued" }.to_owned(),
            detail: Some(json!({ "set": tasks.first().map(|t| t.set.clone()), "tasks": done })),
        })
    }
}

/// The replica-set member an instance is: its set, its host as the set's
/// config has it (and its other names), and whether it holds data.
struct SetMember {
    set: String,
    host: String,
    aliases: Vec<String>,
    kind: Kind,
}

fn set_member(instance: &Instance, node: &NodePlan) -> Result<SetMember, Error> {
    let member = node_from(
        &instance.id,
        &instance.tags,
        instance.private_dns_name.as_deref(),
        instance.private_ip.as_deref(),
        None,
        crate::mongo::replset::DEFAULT_PORT,
    )
    .map_err(|bad| Error::resource(&instance.id, bad.reason))?;
    let port = member.endpoint.port;
    let canonical = |host: &str| {
        // An IPv6 address (the only host with a ':') goes in brackets.
        let with_port = if host.contains(':') {
            format!("[{host}]:{port}")
        } else {
            format!("{host}:{port}")
        };
        normalize_host(&with_port)
            .map_err(|e| Error::resource(&instance.id, format!("tag {}: {e}", crate::tags::ENDPOINT)))
    };
    let host = canonical(&member.endpoint.host)?;
    let mut aliases = Vec::new();
    for alias in &member.aliases {
        let alias = canonical(alias)?;
        if alias != host && !aliases.contains(&alias) {
            aliases.push(alias);
        }
    }
    Ok(SetMember {
        set: member.cluster,
        host,
        aliases,
        kind: if node.role == Some(Role::MongodbArbiter) {
            Kind::Arbiter
        } else {
            Kind::Data
        },
    })
}

/// The tasks, each checked as replset-tasks will check it: a task it
/// would refuse fails the lifecycle action here, where someone sees it.
fn checked(tasks: Vec<Task>, m: &SetMember, instance: &Instance) -> Result<Vec<Task>, Error> {
    tasks
        .into_iter()
        .map(|t| {
            let t = t.with_aliases(m.aliases.clone());
            t.validate().map_err(|e| {
                Error::resource(&instance.id, format!("cannot queue its {} task: {e}", t.kind))
            })?;
            Ok(t)
        })
        .collect()
}

impl<Q: TaskQueue> Roles for MongoTasks<Q> {
    async fn join(&self, instance: &Instance, node: &NodePlan, dry_run: bool) -> Result<RoleChange, Error> {
        let m = set_member(instance, node)?;
        let tasks = Task::for_launch(&m.set, &m.host, &instance.id, m.kind, Utc::now());
        self.enqueue(node, checked(tasks, &m, instance)?, dry_run).await
    }

    async fn leave(&self, instance: &Instance, node: &NodePlan, dry_run: bool) -> Result<RoleChange, Error> {
        let m = set_member(instance, node)?;
        let tasks = Task::for_terminate(&m.set, &m.host, &instance.id, m.kind, Utc::now());
        self.enqueue(node, checked(tasks, &m, instance)?, dry_run).await
    }
}

fn nothing(role: Option<Role>) -> RoleChange {
    RoleChange {
        role: role.map_or("none", Role::as_str).to_owned(),
        action: "none".to_owned(),
        detail: None,
    }
}

impl<D: Dns, C: Roles, M: Roles> Roles for ClusterRoles<D, C, M> {
    async fn join(&self, instance: &Instance, node: &NodePlan, dry_run: bool) -> Result<RoleChange, Error> {
        match node.role {
            Some(Role::Search) => self.search()?.join(instance, node, dry_run).await,
            Some(Role::Redis) => self.redis()?.join(instance, node, dry_run).await,
            Some(Role::Mongodb | Role::MongodbArbiter) => self.mongo()?.join(instance, node, dry_run).await,
            role @ (Some(Role::Postgres) | None) => Ok(nothing(role)),
        }
    }

    async fn leave(&self, instance: &Instance, node: &NodePlan, dry_run: bool) -> Result<RoleChange, Error> {
        match node.role {
            Some(Role::Search) => self.search()?.leave(instance, node, dry_run).await,
            Some(Role::Redis) => self.redis()?.leave(instance, node, dry_run).await,
            Some(Role::Mongodb | Role::MongodbArbiter) => self.mongo()?.leave(instance, node, dry_run).await,
            role @ (Some(Role::Postgres) | None) => Ok(nothing(role)),
        }
    }
}

/// The `search` role's weighted records.
pub struct SearchRecords<D> {
    dns: D,
    ttl: i64,
}

impl<D: Dns> SearchRecords<D> {
    pub fn new(dns: D, ttl: i64) -> Self {
        SearchRecords { dns, ttl }
    }

    async fn join(&self, instance: &Instance, node: &NodePlan, dry_run: bool) -> Result<RoleChange, Error> {
        let host = node_host(instance, node)?;
        let record = dns::weighted_record(&node.cluster, &instance.id, &host, self.ttl)
            .map_err(|e| Error::resource(&instance.id, format!("cannot make its search record: {e}")))?;
        let ours = self.own_records(&record.name, &instance.id).await?;
        if is_only(&ours, &record) {
            return Ok(change("unchanged", &record));
        }
        if dry_run {
            return Ok(change("would-upsert", &record));
        }
        // A record of ours with another type (the endpoint moved from a name
        // to an address) would stay beside the new one: replace it in the
        // same batch.
        let mut changes: Vec<Change> = ours
            .into_iter()
            .filter(|r| r.record_type != record.record_type)
            .map(Change::Delete)
            .collect();
        // UPSERT, not CREATE, also when none of ours was listed: when the
        // answer to our batch is lost, the SDK's retry of a CREATE would be
        // refused and the run would report the record unchanged, so its
        // change would never be notified. With UPSERT the retry succeeds;
        // the price is that two deliveries racing each other may both
        // notify it (README "Reliability", known gap 7).
        changes.push(Change::Upsert(record.clone()));
        let comment = format!("ninelives lifecycle-hook: {} joins {}", instance.id, record.name);
        if let Err(err) = self.dns.change(&comment, &changes).await {
            // A duplicate delivery may have made the same change first (our
            // delete of the old record then finds nothing to delete).
            if is_only(&self.own_records(&record.name, &instance.id).await?, &record) {
                return Ok(change("unchanged", &record));
            }
            return Err(err);
        }
        Ok(change("upserted", &record))
    }

    async fn leave(&self, instance: &Instance, node: &NodePlan, dry_run: bool) -> Result<RoleChange, Error> {
        let name = dns::record_name(&node.cluster)
            .map_err(|e| Error::resource(&instance.id, format!("cannot find its search record: {e}")))?;
        let gone = || RoleChange {
            role: Role::Search.as_str().to_owned(),
            action: "already-gone".to_owned(),
            detail: Some(json!({ "name": name, "set_identifier": instance.id })),
        };
        let mut ours = self.own_records(&name, &instance.id).await?;
        let Some(first) = ours.first().cloned() else {
            return Ok(gone());
        };
        if dry_run {
            return Ok(change("would-delete", &first));
        }
        let comment = format!("ninelives lifecycle-hook: {} leaves {name}", instance.id);
        // Route 53 deletes a record only as it is now: when it changed
        // between our listing and our delete (another member's join set a
        // new TTL for the whole set), delete it as it is now.
        const ATTEMPTS: usize = 3;
        for attempt in 1..=ATTEMPTS {
            let deletes: Vec<Change> = ours.iter().cloned().map(Change::Delete).collect();
            let Err(err) = self.dns.change(&comment, &deletes).await else {
                return Ok(change("deleted", &first));
            };
            let now = self.own_records(&name, &instance.id).await?;
            if now.is_empty() {
                // A duplicate delivery deleted it first.
                return Ok(change("already-gone", &first));
            }
            if now == ours || attempt == ATTEMPTS {
                return Err(err);
            }
            ours = now;
        }
        Ok(gone())
    }

    /// Records of `name` that belong to `instance_id` (its set identifier).
    async fn own_records(&self, name: &str, instance_id: &str) -> Result<Vec<RecordSet>, Error> {
        Ok(self
            .dns
            .record_sets(name)
            .await?
            .into_iter()
            // Only a plain weighted record is the search role's: never an
            // alias, a latency, failover or geolocation record someone
            // else made with the same identifier.
            .filter(|r| {
                r.set_identifier.as_deref() == Some(instance_id)
                    && r.weight.is_some()
                    && !r.alias
                    && !r.other_routing
            })
            .collect())
    }
}

/// Whether `ours` is exactly the record wanted.
fn is_only(ours: &[RecordSet], wanted: &RecordSet) -> bool {
    ours.len() == 1 && dns::same_record(&ours[0], wanted)
}

fn change(action: &str, record: &RecordSet) -> RoleChange {
    RoleChange {
        role: Role::Search.as_str().to_owned(),
        action: action.to_owned(),
        detail: serde_json::to_value(record).ok(),
    }
}

/// Where clients reach the node: `ninelives:endpoint`'s host, else the
/// instance's private DNS name, else its private address.
pub fn node_host(instance: &Instance, node: &NodePlan) -> Result<String, Error> {
    if let Some(endpoint) = &node.endpoint {
        return dns::endpoint_host(endpoint)
            .map_err(|e| Error::resource(&instance.id, format!("tag {}: {e}", crate::tags::ENDPOINT)));
    }
    instance
        .private_dns_name
        .clone()
        .or_else(|| instance.private_ip.clone())
        .ok_or_else(|| {
            Error::resource(
                &instance.id,
                format!(
                    "has no private DNS name or address to point a record at; set {}",
                    crate::tags::ENDPOINT
                ),
            )
        })
}

#[cfg(test)]
#[path = "tests/roles.rs"]
mod tests;
