//! A node joining and leaving its chain (the lifecycle hook's `redis`
//! role; the book's join.py and leave.py, without SimpleDB: the nodes are
//! the truth).
//!
//! - Join: wait (bounded) for the new node's Redis to answer, then plan the
//!   chain with the node as joining: it attaches to the tail and becomes the
//!   new tail, or is the head when no other node is up.
//! - Leave: a head hands over first (`FAILOVER TO` its replica: writes are
//!   paused until the replica has everything, then they swap), the record
//!   moves to the new head; a middle node's replica re-attaches to its
//!   master; a tail's master becomes the tail.

use std::net::IpAddr;
use std::time::Instant;

use super::model::{Endpoint, Node};
use super::plan::{Intent, NodeState};
use super::ports::{Inventory, RedisApi};
use super::reconcile::{ClusterReport, Settings, observe, reconcile};
use crate::dns::Dns;
use crate::error::Error;

/// The cluster's nodes as the inventory lists them, plus `node` itself
/// (a launching instance may not be listed yet).
async fn members(inventory: &impl Inventory, node: &Node) -> Result<Vec<Node>, Error> {
    let mut nodes: Vec<Node> = inventory
        .redis_nodes(Some(&node.cluster))
        .await?
        .into_iter()
        .filter_map(|n| match n {
            Ok(n) => Some(n),
            Err(bad) => {
                tracing::warn!(instance_id = %bad.instance_id, reason = %bad.reason, "redis node with unusable tags left out");
                None
            }
        })
        .filter(|n| n.instance_id != node.instance_id)
        .collect();
    nodes.push(node.clone());
    Ok(nodes)
}

pub async fn join(
    redis: &impl RedisApi,
    dns: &impl Dns,
    inventory: &impl Inventory,
    node: &Node,
    settings: &Settings,
    wait: std::time::Duration,
) -> ClusterReport {
    let nodes = match members(inventory, node).await {
        Ok(n) => n,
        Err(e) => return failed(&node.cluster, e),
    };
    // The instance is booting: its Redis may not answer yet.
    let started = Instant::now();
    loop {
        match redis.replication(&node.endpoint).await {
            Ok(_) => break,
            Err(e) if e.is_down() && started.elapsed() < wait => tokio::time::sleep(settings.poll).await,
            Err(e) => {
                return failed(
                    &node.cluster,
                    Error::Incomplete {
                        detail: format!("{} cannot join {} yet: {e}", node.instance_id, node.cluster),
                        retryable: e.is_down(),
                    },
                );
            }
        }
    }
    let intent = Intent {
        joining: Some(node.instance_id.clone()),
        leaving: None,
    };
    let mut report = reconcile(redis, dns, &node.cluster, &nodes, &intent, settings).await;
    if report.failure.is_none() && report.status != "dry-run" && report.chain.contains(&node.instance_id) {
        report.status = "joined";
    }
    report
}

pub async fn leave(
    redis: &impl RedisApi,
    dns: &impl Dns,
    inventory: &impl Inventory,
    node: &Node,
    settings: &Settings,
) -> ClusterReport {
    let nodes = match members(inventory, node).await {
        Ok(n) => n,
        Err(e) => return failed(&node.cluster, e),
    };
    if let Err(e) = hand_over(redis, &nodes, node, settings).await {
        return failed(&node.cluster, e);
    }
    let intent = Intent {
        joining: None,
        leaving: Some(node.instance_id.clone()),
    };
    let mut report = reconcile(redis, dns, &node.cluster, &nodes, &intent, settings).await;
    if report.failure.is_none() && report.status != "dry-run" {
        report.status = "left";
    }
    report
}

/// When the leaving node is the head of a chain of more than one node:
/// `FAILOVER TO` the next node and wait until they swapped.
async fn hand_over(
    redis: &impl RedisApi,
    nodes: &[Node],
    leaving: &Node,
    settings: &Settings,
) -> Result<(), Error> {
    let observed = observe(redis, nodes).await;
    let plan = super::plan::plan(
        &observed,
        &super::plan::Records::default(),
        &Intent::default(),
        &settings.policy,
    );
    let is_head = plan.chain.first() == Some(&leaving.instance_id) && plan.promotion().is_none();
    let Some(next_id) = plan.chain.get(1).filter(|_| is_head) else {
        return Ok(());
    };
    let Some(next) = nodes.iter().find(|n| &n.instance_id == next_id) else {
        return Ok(());
    };
    // The head knows its replicas by the address they connect from.
    let target = address_of(next).ok_or_else(|| {
        Error::resource(
            &next.instance_id,
            "cannot hand the head over to it: its IP address is unknown (FAILOVER TO needs the address the replica connects from)",
        )
    })?;
    if settings.dry_run {
        tracing::info!(instance_id = %leaving.instance_id, to = %next.instance_id, "would hand the head over");
        return Ok(());
    }
    let in_sync = observed.iter().any(|o| {
        o.node.instance_id == next.instance_id
            && matches!(&o.state, NodeState::Up(r) if matches!(r.role, super::model::ReplicationRole::Replica { link_up: true, .. }))
    });
    if !in_sync {
        return Err(Error::Incomplete {
            detail: format!(
                "{} cannot hand the head over to {}: its replication link is not up",
                leaving.instance_id, next.instance_id
            ),
            retryable: true,
        });
    }
    redis
        .failover_to(&leaving.endpoint, &target, settings.handover_timeout)
        .await
        .map_err(|e| Error::Incomplete {
            detail: format!(
                "{} could not start its handover to {}: {e}",
                leaving.instance_id, next.instance_id
            ),
            retryable: true,
        })?;
    let deadline = Instant::now() + settings.handover_timeout + settings.poll * 5;
    loop {
        let swapped = matches!(redis.replication(&next.endpoint).await, Ok(r) if r.is_master())
            && matches!(redis.replication(&leaving.endpoint).await, Ok(r) if !r.is_master());
        if swapped {
            tracing::warn!(from = %leaving.instance_id, to = %next.instance_id, "head handed over");
            return Ok(());
        }
        if Instant::now() > deadline {
            // Never leave the head stuck half-way: it would refuse writes
            // with nobody taking over.
            if let Err(e) = redis.abort_failover(&leaving.endpoint).await {
                tracing::warn!(instance_id = %leaving.instance_id, error = %e, "FAILOVER ABORT failed");
            }
            return Err(Error::Incomplete {
                detail: format!(
                    "{} did not finish handing the head over to {} within {:?}",
                    leaving.instance_id, next.instance_id, settings.handover_timeout
                ),
                retryable: true,
            });
        }
        tokio::time::sleep(settings.poll).await;
    }
}

fn address_of(node: &Node) -> Option<Endpoint> {
    std::iter::once(&node.endpoint.host)
        .chain(node.aliases.iter())
        .find(|h| h.parse::<IpAddr>().is_ok())
        .map(|h| Endpoint::new(h.clone(), node.endpoint.port))
}

fn failed(cluster: &str, e: Error) -> ClusterReport {
    let mut report = super::reconcile::ClusterReport::empty(cluster);
    report.status = "failed";
    report.error = Some(e.to_string());
    report.failure = Some(e);
    report
}
