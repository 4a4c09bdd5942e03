//! From what the nodes say to one chain: which node is head, the order of
//! the rest, and the few commands that make the nodes agree. Pure, so that
//! every inconsistent state (a dead head, a dead middle node, two heads, a
//! cycle, a replica of a stranger, a fan-out) is decided by one function
//! that the unit tests exercise exhaustively.
//!
//! The rules, in the order they apply:
//!
//! 1. A node whose state is unknown (it refused our password, its INFO made
//!    no sense) blocks everything: it may be the head.
//! 2. The head is an up master. A master whose history another up node has
//!    continued (its `master_replid` is someone's `master_replid2`: it was
//!    the head before a promotion and came back) is stale and is fenced,
//!    never head. So is a master promoted from the same old head as the
//!    master the cluster record names (the same `master_replid2`): the
//!    record's head won the promotion's claim, the other lost it (a target
//!    that hung after the claim and promoted itself when it woke up), and
//!    offsets counted in forked histories do not compare. Among the other
//!    masters the most up-to-date wins (`master_repl_offset`), then the one
//!    the cluster record points at, then the one with the longer chain
//!    under it; a joining node is head only when it is alone.
//! 3. No up master: the head is down. A replica whose master is not serving
//!    is promoted, the most up-to-date first, but only if (a) its own link
//!    says the head is down (if it still sees the head, the head is alive
//!    and only unreachable from here), (b) it has a complete copy (no sync
//!    under way, it did connect once), and (c) its link went down no longer
//!    ago than the policy allows (a replica cut off before the head died
//!    misses writes the head acknowledged), and (d) when the cluster record
//!    names a head that does not answer, the candidate is that head's own
//!    replica (a replica of a dead middle node says nothing about a head
//!    that is only slow from here). Otherwise nothing is promoted and a
//!    person decides.
//! 4. From the head the chain follows the existing links (a node with two
//!    replicas keeps its best one); every up node left over is attached to
//!    the tail: replicas of a dead or departed node (re-attach), extra
//!    masters (fence), a joining node (join), strays (repair).

use std::cmp::Reverse;
use std::collections::HashSet;

use serde::Serialize;

use super::model::{Endpoint, NO_REPLID, Node, Replication, ReplicationRole};

/// A node and what it said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Observed {
    pub node: Node,
    pub state: NodeState,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "state", content = "detail", rename_all = "lowercase")]
pub enum NodeState {
    Up(Replication),
    /// Not answering (refused, reset, timed out, loading).
    Down(String),
    /// Answered, but its state cannot be known (AUTH refused, malformed INFO).
    Unknown(String),
}

/// What the Route 53 records say now: the hosts they point at.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Records {
    pub head: Option<String>,
    pub tail: Option<String>,
}

/// Why the chain is being planned.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Intent {
    /// A node being added (lifecycle launch): it goes to the tail, and is
    /// head only when no other node is up.
    pub joining: Option<String>,
    /// A node being removed (lifecycle terminate): it is left out of the
    /// chain; its replica re-attaches to the node before it.
    pub leaving: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    /// The longest a candidate's link to the dead head may have been down
    /// for it to be promoted.
    pub max_link_down_seconds: u64,
}

/// One command to send.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "step", rename_all = "kebab-case")]
pub enum Step {
    /// `REPLICAOF NO ONE`.
    Promote {
        instance_id: String,
        endpoint: Endpoint,
        /// The master it replicated (the dead head), for the report.
        #[serde(skip_serializing_if = "Option::is_none")]
        was_replica_of: Option<String>,
        offset: i64,
    },
    /// `REPLICAOF master`.
    Attach {
        instance_id: String,
        endpoint: Endpoint,
        master_instance_id: String,
        master: Endpoint,
        reason: AttachReason,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum AttachReason {
    /// Its master is down or leaving: it re-attaches to the node before.
    Reattach,
    /// A second master (typically an old head that came back): made a
    /// replica so that it can never take writes beside the head.
    Fence,
    /// A launched node joining as the new tail.
    Join,
    /// Any other node off the chain (a second replica of one node, a
    /// replica of a stranger, a cycle).
    Repair,
}

/// Why nothing may be changed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "blocked", rename_all = "kebab-case")]
pub enum Blocked {
    /// Some nodes' state is unknown.
    Unknown { nodes: Vec<(String, String)> },
    /// Every member is down.
    NoReachableNode { down: Vec<String> },
    /// The head looks down from here, but its replica's link is up.
    HeadSeenByReplica { head: String, replica: String },
    /// The head (the record's target) does not answer here, and no replica
    /// of it says it is down: the only candidate hangs off another node.
    HeadUnconfirmed { head: String, candidate: String },
    /// The only candidates would lose data; a person must decide.
    WouldLoseData { candidate: String, reason: String },
}

impl Blocked {
    pub fn describe(&self) -> String {
        match self {
            Blocked::Unknown { nodes } => {
                let list: Vec<String> = nodes.iter().map(|(id, why)| format!("{id} ({why})")).collect();
                format!(
                    "the state of {} cannot be read, and any of them may be the head: nothing changed",
                    list.join(", ")
                )
            }
            Blocked::NoReachableNode { down } => {
                format!(
                    "no node of the chain is reachable ({} down): nothing changed",
                    down.join(", ")
                )
            }
            Blocked::HeadSeenByReplica { head, replica } => format!(
                "{head} does not answer here, but its replica {replica} still has its link up: \
                 not promoting while the head may be alive (a partition between ninelives and the head?)"
            ),
            Blocked::HeadUnconfirmed { head, candidate } => format!(
                "{head} (the cluster record's head) does not answer here, and no replica of it says it \
                 is down; {candidate} only says its own master is gone: not promoting while the head may \
                 be alive and only slow or cut off from ninelives"
            ),
            Blocked::WouldLoseData { candidate, reason } => format!(
                "not promoting {candidate}: {reason}; promoting it could lose acknowledged writes, \
                 so the decision is left to a person"
            ),
        }
    }
}

/// The chain that should be, and how to get there.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Plan {
    /// Instance ids, head first.
    pub chain: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub head: Option<Endpoint>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tail: Option<Endpoint>,
    pub steps: Vec<Step>,
    /// Inconsistencies found (and repaired by `steps`), for the report.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub findings: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub down: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub blocked: Option<Blocked>,
}

impl Plan {
    pub fn promotion(&self) -> Option<&Step> {
        self.steps.iter().find(|s| matches!(s, Step::Promote { .. }))
    }
}

struct Up<'a> {
    node: &'a Node,
    info: &'a Replication,
}

/// Plans the chain of one cluster.
pub fn plan(observed: &[Observed], records: &Records, intent: &Intent, policy: &Policy) -> Plan {
    let mut out = Plan::default();
    let leaving = intent.leaving.as_deref();
    let members: Vec<&Observed> = observed
        .iter()
        .filter(|o| Some(o.node.instance_id.as_str()) != leaving)
        .collect();

    let unknown: Vec<(String, String)> = members
        .iter()
        .filter_map(|o| match &o.state {
            NodeState::Unknown(why) => Some((o.node.instance_id.clone(), why.clone())),
            _ => None,
        })
        .collect();
    out.down = members
        .iter()
        .filter(|o| matches!(o.state, NodeState::Down(_)))
        .map(|o| o.node.instance_id.clone())
        .collect();
    if !unknown.is_empty() {
        out.blocked = Some(Blocked::Unknown { nodes: unknown });
        return out;
    }
    let up: Vec<Up> = members
        .iter()
        .filter_map(|o| match &o.state {
            NodeState::Up(info) => Some(Up { node: &o.node, info }),
            _ => None,
        })
        .collect();
    if up.is_empty() {
        if !members.is_empty() {
            out.blocked = Some(Blocked::NoReachableNode {
                down: out.down.clone(),
            });
        }
        return out;
    }
    for id in &out.down {
        out.findings.push(format!("{id} is down"));
    }

    // Who each replica replicates, among all observed nodes (the leaving
    // one included, so that its replica is known to hang off it).
    let parent_of = |u: &Up| -> Option<&Observed> {
        match &u.info.role {
            ReplicationRole::Replica {
                master_host,
                master_port,
                ..
            } => observed
                .iter()
                .find(|o| o.node.answers_to(master_host, *master_port)),
            ReplicationRole::Master => None,
        }
    };
    let is_up_member = |id: &str| up.iter().any(|u| u.node.instance_id == id);
    let record_target = |n: &Node| {
        records
            .head
            .as_deref()
            .is_some_and(|h| n.endpoint.host.eq_ignore_ascii_case(h))
    };

    // Masters whose history another up node continued.
    let mut stale: HashSet<&str> = up
        .iter()
        .filter(|m| m.info.is_master() && m.info.replid != NO_REPLID)
        .filter(|m| {
            up.iter().any(|o| {
                o.node.instance_id != m.node.instance_id
                    && o.info.replid2 == m.info.replid
                    && o.info.replid != m.info.replid
            })
        })
        .map(|m| m.node.instance_id.as_str())
        .collect();
    for id in &stale {
        out.findings.push(format!(
            "{id} is a master whose history another node continued (an old head that came back): fenced"
        ));
    }
    // Masters promoted from the same old head as the record's head (the
    // same `master_replid2`): the record's head won the promotion's claim,
    // and the other is a rival that lost it, typically a target that hung
    // after the claim and ran its REPLICAOF NO ONE when it woke up. Their
    // offsets count in histories that forked, so the rival's (writes no
    // replica acknowledged) says nothing against the head's.
    let recorded_master = up.iter().find(|u| {
        u.info.is_master()
            && u.info.replid2 != NO_REPLID
            && record_target(u.node)
            && !stale.contains(u.node.instance_id.as_str())
    });
    if let Some(r) = recorded_master {
        for m in up.iter().filter(|m| {
            m.info.is_master()
                && m.node.instance_id != r.node.instance_id
                && m.info.replid2 == r.info.replid2
                && m.info.replid != r.info.replid
        }) {
            if stale.insert(m.node.instance_id.as_str()) {
                out.findings.push(format!(
                    "{} is a master promoted from the same old head as the record's head {} \
                     (a promotion that lost its claim and completed late): fenced",
                    m.node.instance_id, r.node.instance_id
                ));
            }
        }
    }

    // The length of the chain hanging off a node through existing links.
    let below = |start: &str| -> usize {
        let mut seen: HashSet<&str> = HashSet::from([start]);
        let mut count = 0;
        let mut frontier = vec![start];
        while let Some(cur) = frontier.pop() {
            for u in &up {
                let id = u.node.instance_id.as_str();
                if !seen.contains(id) && parent_of(u).is_some_and(|p| p.node.instance_id == cur) {
                    seen.insert(id);
                    count += 1;
                    frontier.push(id);
                }
            }
        }
        count
    };

    let masters: Vec<&Up> = up
        .iter()
        .filter(|u| u.info.is_master() && !stale.contains(u.node.instance_id.as_str()))
        .collect();
    if masters.len() > 1 {
        let ids: Vec<&str> = masters.iter().map(|m| m.node.instance_id.as_str()).collect();
        out.findings.push(format!(
            "{} nodes claim to be head: {}",
            ids.len(),
            ids.join(", ")
        ));
    }
    let not_joining = |u: &&&Up| Some(u.node.instance_id.as_str()) != intent.joining.as_deref();
    let head: &Up = if !masters.is_empty() {
        let pool: Vec<&&Up> = if masters.iter().any(|m| not_joining(&m)) {
            masters.iter().filter(not_joining).collect()
        } else {
            masters.iter().collect()
        };
        let Some(best) = pool.into_iter().max_by_key(|m| {
            (
                m.info.offset,
                record_target(m.node),
                below(&m.node.instance_id),
                Reverse(m.node.instance_id.clone()),
            )
        }) else {
            return out;
        };
        best
    } else {
        // The head is down: the candidates are replicas whose master is
        // not serving (down, leaving, a stranger) and members of a cycle.
        let candidates: Vec<&Up> = up
            .iter()
            .filter(|u| !stale.contains(u.node.instance_id.as_str()))
            .filter(|u| match parent_of(u) {
                None => true,
                Some(p) => !is_up_member(&p.node.instance_id) || in_cycle(u, &up, &parent_of),
            })
            .collect();
        let pool: Vec<&&Up> = if candidates.iter().any(|c| not_joining(&c)) {
            candidates.iter().filter(not_joining).collect()
        } else {
            candidates.iter().collect()
        };
        let rank = |c: &&&Up| {
            (
                c.info.data_offset(),
                record_target(c.node),
                Reverse(c.node.instance_id.clone()),
            )
        };
        // A replica's dead link is evidence against its own master only.
        // When the record's head does not answer, only its own replicas
        // can say it is dead; a replica of another dead node says nothing
        // about a head that may be alive and slow from here (promoting it
        // would make two heads).
        let recorded_down = members
            .iter()
            .find(|o| matches!(o.state, NodeState::Down(_)) && record_target(&o.node));
        let pool: Vec<&&Up> = match recorded_down {
            Some(head) => {
                let own: Vec<&&Up> = pool
                    .iter()
                    .copied()
                    .filter(|c| parent_of(c).is_some_and(|p| p.node.instance_id == head.node.instance_id))
                    .collect();
                if own.is_empty()
                    && let Some(other) = pool.iter().copied().max_by_key(rank)
                {
                    out.blocked = Some(Blocked::HeadUnconfirmed {
                        head: head.node.instance_id.clone(),
                        candidate: other.node.instance_id.clone(),
                    });
                    return out;
                }
                own
            }
            None => pool,
        };
        let Some(best) = pool.into_iter().max_by_key(rank) else {
            // Every up node is a stale master: nothing safe to promote.
            out.blocked = Some(Blocked::WouldLoseData {
                candidate: up
                    .iter()
                    .map(|u| u.node.instance_id.clone())
                    .collect::<Vec<_>>()
                    .join(", "),
                reason: "every reachable node is an old head whose history continued elsewhere".to_owned(),
            });
            return out;
        };
        let parent = parent_of(best);
        if let Err(blocked) = promotable(best, parent, leaving, policy) {
            out.blocked = Some(blocked);
            return out;
        }
        out.steps.push(Step::Promote {
            instance_id: best.node.instance_id.clone(),
            endpoint: best.node.endpoint.clone(),
            was_replica_of: parent.map(|p| p.node.instance_id.clone()),
            offset: best.info.data_offset(),
        });
        best
    };

    // Follow the links from the head.
    let mut chain: Vec<&Up> = vec![head];
    let mut placed: HashSet<&str> = HashSet::from([head.node.instance_id.as_str()]);
    while let Some(cur) = chain.last().map(|u| u.node.instance_id.clone()) {
        let kids: Vec<&Up> = up
            .iter()
            .filter(|u| !placed.contains(u.node.instance_id.as_str()) && !u.info.is_master())
            .filter(|u| parent_of(u).is_some_and(|p| p.node.instance_id == cur))
            .collect();
        if kids.len() > 1 {
            out.findings.push(format!(
                "{cur} has {} replicas; a chain gives each node one, the others move to the tail",
                kids.len()
            ));
        }
        let Some(next) = kids.into_iter().max_by_key(|k| kid_rank(k)) else {
            break;
        };
        placed.insert(next.node.instance_id.as_str());
        chain.push(next);
    }

    // Everything else goes to the tail, nodes that lost their master first.
    while let Some(tail) = chain.last().map(|u| u.node) {
        let rest: Vec<&Up> = up
            .iter()
            .filter(|u| !placed.contains(u.node.instance_id.as_str()))
            .collect();
        if rest.is_empty() {
            break;
        }
        // One already replicating the tail needs no command.
        let linked = rest
            .iter()
            .filter(|u| {
                !u.info.is_master() && parent_of(u).is_some_and(|p| p.node.instance_id == tail.instance_id)
            })
            .max_by_key(|k| kid_rank(k));
        let (next, step) = match linked {
            Some(next) => (*next, None),
            None => {
                // Nodes that head a sub-chain of their own go first, so the
                // nodes under them keep their links.
                let in_rest = |id: &str| rest.iter().any(|r| r.node.instance_id == id);
                let roots: Vec<&&Up> = rest
                    .iter()
                    .filter(|u| {
                        u.info.is_master() || !parent_of(u).is_some_and(|p| in_rest(&p.node.instance_id))
                    })
                    .collect();
                let pool: Vec<&&Up> = if roots.is_empty() {
                    rest.iter().collect()
                } else {
                    roots
                };
                let Some(next) = pool.into_iter().min_by_key(|u| {
                    let reason = attach_reason(u, parent_of(u), &stale, intent, &is_up_member);
                    (
                        reason_order(reason),
                        Reverse(u.info.data_offset()),
                        u.node.instance_id.clone(),
                    )
                }) else {
                    break;
                };
                let reason = attach_reason(next, parent_of(next), &stale, intent, &is_up_member);
                (
                    *next,
                    Some(Step::Attach {
                        instance_id: next.node.instance_id.clone(),
                        endpoint: next.node.endpoint.clone(),
                        master_instance_id: tail.instance_id.clone(),
                        master: tail.endpoint.clone(),
                        reason,
                    }),
                )
            }
        };
        if let Some(Step::Attach { reason, .. }) = &step {
            match reason {
                AttachReason::Repair => out.findings.push(format!(
                    "{} is off the chain ({}): attached to the tail",
                    next.node.instance_id,
                    describe_link(next, parent_of(next))
                )),
                AttachReason::Reattach => out.findings.push(format!(
                    "{} lost its master ({}): re-attached to {}",
                    next.node.instance_id,
                    describe_link(next, parent_of(next)),
                    tail.instance_id
                )),
                AttachReason::Fence | AttachReason::Join => {}
            }
        }
        placed.insert(next.node.instance_id.as_str());
        chain.push(next);
        out.steps.extend(step);
    }

    out.chain = chain.iter().map(|u| u.node.instance_id.clone()).collect();
    out.head = chain.first().map(|u| u.node.endpoint.clone());
    out.tail = chain.last().map(|u| u.node.endpoint.clone());
    out
}

/// How to choose between several replicas of one node: a live link, then
/// the most data, then a stable order.
fn kid_rank(u: &Up) -> (bool, i64, Reverse<String>) {
    let link_up = matches!(u.info.role, ReplicationRole::Replica { link_up: true, .. });
    (link_up, u.info.data_offset(), Reverse(u.node.instance_id.clone()))
}

fn attach_reason(
    u: &Up,
    parent: Option<&Observed>,
    stale: &HashSet<&str>,
    intent: &Intent,
    is_up_member: &dyn Fn(&str) -> bool,
) -> AttachReason {
    if intent.joining.as_deref() == Some(u.node.instance_id.as_str()) {
        return AttachReason::Join;
    }
    if u.info.is_master() || stale.contains(u.node.instance_id.as_str()) {
        return AttachReason::Fence;
    }
    match parent {
        Some(p) if !is_up_member(&p.node.instance_id) => AttachReason::Reattach,
        _ => AttachReason::Repair,
    }
}

fn reason_order(reason: AttachReason) -> u8 {
    match reason {
        AttachReason::Reattach => 0,
        AttachReason::Repair => 1,
        AttachReason::Fence => 2,
        AttachReason::Join => 3,
    }
}

fn describe_link(u: &Up, parent: Option<&Observed>) -> String {
    match (&u.info.role, parent) {
        (ReplicationRole::Master, _) => "a master".to_owned(),
        (ReplicationRole::Replica { .. }, Some(p)) => match &p.state {
            NodeState::Up(_) => format!("replica of {}", p.node.instance_id),
            _ => format!("replica of {}, which is down or leaving", p.node.instance_id),
        },
        (
            ReplicationRole::Replica {
                master_host,
                master_port,
                ..
            },
            None,
        ) => format!("replica of {master_host}:{master_port}, which is not a node of this cluster"),
    }
}

/// Whether following `u`'s masters comes back to `u`.
fn in_cycle<'a>(u: &Up<'a>, up: &[Up<'a>], parent_of: &dyn Fn(&Up) -> Option<&'a Observed>) -> bool {
    let mut cur = u.node.instance_id.clone();
    for _ in 0..=up.len() {
        let Some(node) = up.iter().find(|x| x.node.instance_id == cur) else {
            return false;
        };
        let Some(parent) = parent_of(node) else {
            return false;
        };
        if parent.node.instance_id == u.node.instance_id {
            return true;
        }
        cur = parent.node.instance_id.clone();
    }
    false
}

/// Rule 3's checks on the replica about to become head.
fn promotable(
    candidate: &Up,
    parent: Option<&Observed>,
    leaving: Option<&str>,
    policy: &Policy,
) -> Result<(), Blocked> {
    let id = candidate.node.instance_id.clone();
    let ReplicationRole::Replica {
        link_up,
        link_down_seconds,
        sync_in_progress,
        ..
    } = &candidate.info.role
    else {
        return Ok(());
    };
    if *sync_in_progress {
        return Err(Blocked::WouldLoseData {
            candidate: id,
            reason: "it is in the middle of a full sync and has no complete copy".to_owned(),
        });
    }
    let parent_is_leaving = parent.is_some_and(|p| Some(p.node.instance_id.as_str()) == leaving);
    if *link_up {
        // A cycle or a stranger as master: the link says nothing about our
        // head. A down member as master: it is alive as far as its replica
        // knows.
        if let Some(p) = parent
            && matches!(p.state, NodeState::Down(_))
            && !parent_is_leaving
        {
            return Err(Blocked::HeadSeenByReplica {
                head: p.node.instance_id.clone(),
                replica: id,
            });
        }
        return Ok(());
    }
    match link_down_seconds {
        None => Err(Blocked::WouldLoseData {
            candidate: id,
            reason: "its replication link never came up, so it may hold none of the head's data".to_owned(),
        }),
        Some(s) if *s > policy.max_link_down_seconds => Err(Blocked::WouldLoseData {
            candidate: id,
            reason: format!(
                "its replication link has been down for {s} s, longer than the head can have been down \
                 ({} s allowed)",
                policy.max_link_down_seconds
            ),
        }),
        Some(_) => Ok(()),
    }
}

#[cfg(test)]
#[path = "tests/plan.rs"]
mod tests;
