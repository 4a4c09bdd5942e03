//! Observing a chain, planning it ([`super::plan`]) and making it so:
//! the one procedure behind redis-failover and the lifecycle hook's join
//! and leave.
//!
//! Safety under at-least-once delivery and concurrent runs:
//! - a promotion is re-checked right before it is made: the candidate is
//!   read again and the old head must still be down;
//! - it is then claimed on Route 53 with a compare-and-swap (one batch that
//!   DELETEs the cluster record exactly as it was read and CREATEs the new
//!   one). Route 53 applies batches one at a time and rejects a DELETE that
//!   does not match, so of two concurrent runs exactly one wins; the loser
//!   promotes nothing and reports the winner's change;
//! - only then is `REPLICAOF NO ONE` sent. Should a run die between the
//!   claim and the command, the next run finds the record on a replica of a
//!   dead head and finishes the promotion (a repeated `REPLICAOF NO ONE` on
//!   a master changes nothing);
//! - records are written only when they differ from what is wanted.

use std::time::Duration;

use futures::future::join_all;
use serde::Serialize;

use super::model::{Endpoint, Node, ReplicationRole};
use super::plan::{Blocked, Intent, NodeState, Observed, Plan, Policy, Records, Step, plan};
use super::ports::{NodeError, RedisApi};
use crate::dns::Dns;
use crate::error::Error;
pub use crate::pointer::RecordResult;
use crate::pointer::{Claim, host_of, own_records, point};

#[derive(Debug, Clone)]
pub struct Settings {
    pub policy: Policy,
    /// TTL of the records written.
    pub ttl: i64,
    pub dry_run: bool,
    /// How long a head's `FAILOVER` to its replica may take (leave).
    pub handover_timeout: Duration,
    /// Between checks while waiting on a node.
    pub poll: Duration,
}

impl Settings {
    /// The settings every caller uses: a head's handover may take 10 s, and
    /// nodes are checked every 200 ms while waiting on them.
    pub fn new(policy: Policy, ttl: i64, dry_run: bool) -> Self {
        Settings {
            policy,
            ttl,
            dry_run,
            handover_timeout: Duration::from_secs(10),
            poll: Duration::from_millis(200),
        }
    }
}

/// What happened to one cluster.
#[derive(Debug, Serialize)]
pub struct ClusterReport {
    pub cluster: String,
    /// `healthy` (nothing to do), `repaired`, `promoted`, `joined`, `left`,
    /// `concurrent` (another run made the promotion), `blocked`, `failed`,
    /// `dry-run`.
    pub status: &'static str,
    pub chain: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub head: Option<Endpoint>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tail: Option<Endpoint>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub promoted: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub steps: Vec<StepResult>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub records: Vec<RecordResult>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub findings: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub down: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub blocked: Option<Blocked>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(skip)]
    pub failure: Option<Error>,
}

#[derive(Debug, Serialize)]
pub struct StepResult {
    #[serde(flatten)]
    pub step: Step,
    /// `done`, `would-do` (dry run), `failed`.
    pub result: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl ClusterReport {
    pub fn empty(cluster: &str) -> Self {
        ClusterReport {
            cluster: cluster.to_owned(),
            status: "healthy",
            chain: Vec::new(),
            head: None,
            tail: None,
            promoted: None,
            steps: Vec::new(),
            records: Vec::new(),
            findings: Vec::new(),
            down: Vec::new(),
            blocked: None,
            error: None,
            failure: None,
        }
    }

    pub fn fail(mut self, err: Error) -> Self {
        self.status = "failed";
        self.error = Some(err.to_string());
        self.failure = Some(err);
        self
    }

    fn take_plan(&mut self, plan: &Plan) {
        self.chain = plan.chain.clone();
        self.head = plan.head.clone();
        self.tail = plan.tail.clone();
        self.findings = plan.findings.clone();
        self.down = plan.down.clone();
    }

    /// Whether something was (or, in a dry run, would be) changed.
    pub fn changed(&self) -> bool {
        self.steps.iter().any(|s| s.result != "failed")
            || self.records.iter().any(|r| r.action != "unchanged")
            || self.blocked.is_some()
    }
}

/// The tail record of a cluster.
pub fn tail_name(cluster: &str) -> String {
    format!("tail.{cluster}")
}

/// Asks every node for its replication state, all at once.
pub async fn observe(redis: &impl RedisApi, nodes: &[Node]) -> Vec<Observed> {
    join_all(nodes.iter().map(|n| async move {
        Observed {
            node: n.clone(),
            state: state_of(redis.replication(&n.endpoint).await),
        }
    }))
    .await
}

fn state_of(r: Result<super::model::Replication, NodeError>) -> NodeState {
    match r {
        Ok(info) => NodeState::Up(info),
        Err(e) if e.is_down() => NodeState::Down(e.to_string()),
        Err(e) => NodeState::Unknown(e.to_string()),
    }
}

/// Brings one cluster's chain and records in line with what its nodes say.
pub async fn reconcile(
    redis: &impl RedisApi,
    dns: &impl Dns,
    cluster: &str,
    nodes: &[Node],
    intent: &Intent,
    settings: &Settings,
) -> ClusterReport {
    let mut report = ClusterReport::empty(cluster);
    let tail_name = tail_name(cluster);
    // A round ends early when a re-check finds the world changed; the
    // next round plans again from what the nodes say then.
    const ROUNDS: usize = 3;
    for round in 1..=ROUNDS {
        let observed = observe(redis, nodes).await;
        let (head_records, tail_records) = match (
            own_records(dns, cluster).await,
            own_records(dns, &tail_name).await,
        ) {
            (Ok(h), Ok(t)) => (h, t),
            (Err(e), _) | (_, Err(e)) => return report.fail(e),
        };
        let records = Records {
            head: host_of(&head_records),
            tail: host_of(&tail_records),
        };
        let plan = plan(&observed, &records, intent, &settings.policy);
        report.take_plan(&plan);
        if let Some(blocked) = plan.blocked.clone() {
            let retryable = matches!(
                blocked,
                Blocked::NoReachableNode { .. }
                    | Blocked::HeadSeenByReplica { .. }
                    | Blocked::HeadUnconfirmed { .. }
            );
            report.blocked = Some(blocked.clone());
            let detail = format!("{cluster}: {}", blocked.describe());
            let err = if retryable {
                Error::Incomplete {
                    detail,
                    retryable: true,
                }
            } else {
                Error::resource(cluster, blocked.describe())
            };
            let mut report = report.fail(err);
            report.status = "blocked";
            return report;
        }
        if plan.chain.is_empty() {
            return report;
        }

        if let Some(Step::Promote {
            instance_id,
            endpoint,
            ..
        }) = plan.promotion().cloned()
        {
            if !still_promotable(redis, &observed, &instance_id, &endpoint).await {
                if round < ROUNDS {
                    tracing::info!(cluster, instance_id = %instance_id, "the chain changed before the promotion; planning again");
                    continue;
                }
                return report.fail(Error::Incomplete {
                    detail: format!(
                        "{cluster}: the chain kept changing while a promotion was planned; nothing promoted"
                    ),
                    retryable: true,
                });
            }
            let step = plan.promotion().cloned();
            if settings.dry_run {
                report.steps.extend(step.map(|step| StepResult {
                    step,
                    result: "would-do",
                    error: None,
                }));
            } else {
                // The claim: only the run whose compare-and-swap succeeds promotes.
                match point(
                    dns,
                    cluster,
                    &head_records,
                    &endpoint.host,
                    settings.ttl,
                    true,
                    false,
                )
                .await
                {
                    Ok(result) => report.records.push(result),
                    Err(Claim::Lost(result)) => {
                        tracing::info!(cluster, instance_id = %instance_id, "another run claimed the promotion first");
                        report.records.push(result);
                        report.status = "concurrent";
                        return report;
                    }
                    Err(Claim::Failed(e)) => return report.fail(e),
                }
                let outcome = redis.replicate(&endpoint, None).await;
                let failed = outcome.as_ref().err().map(ToString::to_string);
                report.steps.extend(step.map(|step| StepResult {
                    step,
                    result: if failed.is_some() { "failed" } else { "done" },
                    error: failed,
                }));
                if let Err(e) = outcome {
                    return report.fail(Error::Incomplete {
                        detail: format!(
                            "{cluster}: the record points at {instance_id} but it could not be promoted: {e}"
                        ),
                        retryable: true,
                    });
                }
                tracing::warn!(cluster, instance_id = %instance_id, endpoint = %endpoint, "promoted to head");
            }
            report.promoted = Some(instance_id);
        }

        let mut failures = Vec::new();
        for step in plan.steps.iter().filter(|s| matches!(s, Step::Attach { .. })) {
            let Step::Attach {
                endpoint,
                master,
                instance_id,
                reason,
                ..
            } = step
            else {
                continue;
            };
            if settings.dry_run {
                report.steps.push(StepResult {
                    step: step.clone(),
                    result: "would-do",
                    error: None,
                });
                continue;
            }
            match redis.replicate(endpoint, Some(master)).await {
                Ok(()) => {
                    tracing::info!(cluster, instance_id = %instance_id, master = %master, reason = ?reason, "attached");
                    report.steps.push(StepResult {
                        step: step.clone(),
                        result: "done",
                        error: None,
                    });
                }
                Err(e) => {
                    report.steps.push(StepResult {
                        step: step.clone(),
                        result: "failed",
                        error: Some(e.to_string()),
                    });
                    failures.push(e);
                }
            }
        }

        // Records: the head's when no promotion claimed it already, and
        // the tail's.
        if let Some(head) = &plan.head
            && report.records.iter().all(|r| r.name != cluster)
        {
            match point(
                dns,
                cluster,
                &head_records,
                &head.host,
                settings.ttl,
                true,
                settings.dry_run,
            )
            .await
            {
                Ok(r) | Err(Claim::Lost(r)) => report.records.push(r),
                Err(Claim::Failed(e)) => return report.fail(e),
            }
        }
        if let Some(tail) = &plan.tail {
            match point(
                dns,
                &tail_name,
                &tail_records,
                &tail.host,
                settings.ttl,
                false,
                settings.dry_run,
            )
            .await
            {
                Ok(r) | Err(Claim::Lost(r)) => report.records.push(r),
                Err(Claim::Failed(e)) => return report.fail(e),
            }
        }

        report.status = if settings.dry_run && report.changed() {
            "dry-run"
        } else if report.promoted.is_some() {
            "promoted"
        } else if report.changed() {
            "repaired"
        } else {
            "healthy"
        };
        if let Some(first) = failures.into_iter().next() {
            let attempted = report.steps.len();
            let failed = report.steps.iter().filter(|s| s.result == "failed").count();
            return report.fail(Error::Partial {
                what: "chain commands",
                failed,
                attempted,
                retryable: true,
                first: Box::new(Error::Incomplete {
                    detail: first.to_string(),
                    retryable: true,
                }),
            });
        }
        return report;
    }
    report
}

/// Right before a promotion: the candidate still a replica of a master
/// that is not serving, and no node turned master since it was observed.
async fn still_promotable(
    redis: &impl RedisApi,
    observed: &[Observed],
    candidate: &str,
    endpoint: &Endpoint,
) -> bool {
    let Ok(now) = redis.replication(endpoint).await else {
        return false;
    };
    let ReplicationRole::Replica {
        master_host,
        master_port,
        link_up,
        ..
    } = &now.role
    else {
        return false;
    };
    if *link_up {
        // Unless its master is a live node of a cycle, a live link means
        // its master is back.
        let master_down = observed
            .iter()
            .find(|o| o.node.answers_to(master_host, *master_port))
            .is_none_or(|o| !matches!(o.state, NodeState::Up(_)));
        if master_down {
            return false;
        }
    }
    // Its master, if a node we know, must still not answer.
    if let Some(master) = observed
        .iter()
        .find(|o| o.node.answers_to(master_host, *master_port))
        && matches!(master.state, NodeState::Down(_))
        && redis.replication(&master.node.endpoint).await.is_ok()
    {
        return false;
    }
    // No other node became master meanwhile (a concurrent promotion or a
    // returning head).
    for o in observed.iter().filter(|o| o.node.instance_id != candidate) {
        if let NodeState::Up(before) = &o.state
            && !before.is_master()
            && let Ok(after) = redis.replication(&o.node.endpoint).await
            && after.is_master()
        {
            return false;
        }
    }
    true
}
