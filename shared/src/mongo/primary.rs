//! Which member of a replica set is primary, from what each member says
//! about itself (`hello`). MongoDB elects its primary; ninelives only
//! needs to find it, and must not be fooled by a member that was primary
//! before an election it has not heard about yet.
//!
//! [`choose`] is pure: one member claiming to be primary is the primary;
//! two claiming it (a partition healing) are told apart by `electionId`,
//! which grows with every election; none claiming it is an election in
//! progress (or a primary we cannot reach), and nothing is decided.
//! Members that disagree on the set's name are not one set: nothing is
//! decided either.

use futures::future::join_all;
use serde::Serialize;

use super::ports::{Hello, Member, MemberError, MongoApi};
use super::replset::Kind;
use crate::chain::model::Endpoint;

/// One member and its answer.
#[derive(Debug)]
pub struct Observed {
    pub member: Member,
    pub hello: Result<Hello, MemberError>,
}

/// How a member answered, for reports.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MemberView {
    pub instance_id: String,
    pub endpoint: Endpoint,
    pub kind: Kind,
    /// `primary`, `secondary`, `arbiter`, `not-in-set` (no config yet, or
    /// removed), `other` (recovering, startup, rollback), `down`, `error`.
    pub state: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

/// What the answers say.
#[derive(Debug, Clone, PartialEq)]
#[expect(
    clippy::large_enum_variant,
    reason = "made once per set and run; boxing would only add noise"
)]
pub enum Finding {
    Primary {
        member: Member,
        hello: Hello,
    },
    /// No member answers as primary: an election is in progress, or the
    /// primary does not answer us. The reason says which.
    NoPrimary {
        reason: String,
    },
    /// No member answered at all.
    Unreachable {
        reason: String,
    },
    /// The members are not one set.
    Conflict {
        reason: String,
    },
}

/// Asks every member at once.
pub async fn observe(api: &impl MongoApi, members: &[Member]) -> Vec<Observed> {
    join_all(members.iter().map(|m| async move {
        Observed {
            member: m.clone(),
            hello: api.hello(&m.node.endpoint).await,
        }
    }))
    .await
}

pub fn view(observed: &[Observed]) -> Vec<MemberView> {
    observed
        .iter()
        .map(|o| {
            let (state, detail) = match &o.hello {
                Ok(h) if h.writable_primary => ("primary", None),
                Ok(h) if h.secondary => ("secondary", None),
                Ok(h) if h.arbiter_only => ("arbiter", None),
                Ok(h) if h.set_name.is_none() => ("not-in-set", None),
                Ok(_) => ("other", None),
                Err(e) if e.is_down() => ("down", Some(e.to_string())),
                Err(e) => ("error", Some(e.to_string())),
            };
            MemberView {
                instance_id: o.member.node.instance_id.clone(),
                endpoint: o.member.node.endpoint.clone(),
                kind: o.member.kind,
                state,
                detail,
            }
        })
        .collect()
}

/// The primary, if the answers agree on one; with findings worth
/// reporting either way (a stale primary, a member in no set).
pub fn choose(observed: &[Observed]) -> (Finding, Vec<String>) {
    let mut findings = Vec::new();
    let answers: Vec<(&Member, &Hello)> = observed
        .iter()
        .filter_map(|o| o.hello.as_ref().ok().map(|h| (&o.member, h)))
        .collect();
    if answers.is_empty() {
        let reason = if observed.is_empty() {
            "no member to ask".to_owned()
        } else {
            let errors: Vec<String> = observed
                .iter()
                .filter_map(|o| o.hello.as_ref().err().map(ToString::to_string))
                .collect();
            format!("no member answered: {}", errors.join("; "))
        };
        return (Finding::Unreachable { reason }, findings);
    }
    let mut names: Vec<(&str, &str)> = answers
        .iter()
        .filter_map(|(m, h)| h.set_name.as_deref().map(|n| (m.node.instance_id.as_str(), n)))
        .collect();
    names.sort_by(|a, b| a.1.cmp(b.1).then(a.0.cmp(b.0)));
    names.dedup_by(|a, b| a.1 == b.1);
    if names.len() > 1 {
        let said: Vec<String> = names.iter().map(|(id, n)| format!("{id} is in {n:?}")).collect();
        return (
            Finding::Conflict {
                reason: format!(
                    "the instances tagged as this set's members are in different replica sets ({}); fix their tags",
                    said.join(", ")
                ),
            },
            findings,
        );
    }
    for (m, h) in &answers {
        if h.set_name.is_none() {
            findings.push(format!(
                "{} ({}) is not in the set yet (no replica-set config)",
                m.node.instance_id, m.node.endpoint
            ));
        }
    }
    let mut claims: Vec<&(&Member, &Hello)> = answers.iter().filter(|(_, h)| h.writable_primary).collect();
    match claims.len() {
        0 => {
            let named: Vec<&str> = answers.iter().filter_map(|(_, h)| h.primary.as_deref()).collect();
            let reason = match named.first() {
                Some(p) => format!(
                    "no member we can reach answers as primary; members name {p} as primary, which is not one of the tagged instances that answered"
                ),
                None => {
                    "no member is primary: an election is in progress or the set has no majority".to_owned()
                }
            };
            (Finding::NoPrimary { reason }, findings)
        }
        1 => {
            let (m, h) = claims[0];
            (
                Finding::Primary {
                    member: (*m).clone(),
                    hello: (*h).clone(),
                },
                findings,
            )
        }
        _ => {
            // The newest election wins; the others have not yet heard of it
            // and will step down when they do.
            claims.sort_by(|a, b| b.1.election_id.cmp(&a.1.election_id));
            let (first, second) = (claims[0], claims[1]);
            if first.1.election_id.is_none() || first.1.election_id == second.1.election_id {
                let who: Vec<String> = claims.iter().map(|(m, _)| m.node.instance_id.clone()).collect();
                return (
                    Finding::NoPrimary {
                        reason: format!(
                            "{} all claim to be primary and their election ids do not tell which is current",
                            who.join(", ")
                        ),
                    },
                    findings,
                );
            }
            for (m, h) in &claims[1..] {
                findings.push(format!(
                    "{} ({}) still claims to be primary from an older election ({}); {} is current",
                    m.node.instance_id,
                    m.node.endpoint,
                    h.election_id.as_deref().unwrap_or("no election id"),
                    first.0.node.instance_id
                ));
            }
            (
                Finding::Primary {
                    member: first.0.clone(),
                    hello: first.1.clone(),
                },
                findings,
            )
        }
    }
}

#[cfg(test)]
#[path = "tests/primary.rs"]
mod tests;
