//! replset-tasks' work for one task: find the set's primary from its
//! members (EC2 tags, then `hello`), read the config from it, let the pure
//! rules in [`super::replset`] decide, and send `replSetReconfig` or
//! `replSetStepDown` to that primary.
//!
//! Every task is idempotent: an add of a member already there, a remove of
//! a member already gone and a step-down of a member that is not primary
//! change nothing. A reconfig that fails because another one got there
//! first (a duplicate delivery) is read back: if the task is applied now,
//! that is success. Nothing is ever applied half-way: a task is one
//! reconfig or one step-down.
//!
//! A member may be in the config under another name than the task's host
//! (the config says `10.0.1.17:27017` where the tags give a DNS name): the
//! task's `aliases` are tried too, so a remove or a step-down finds it and
//! an add does not add the same mongod twice.
//!
//! An `add` is applied only for a host that EC2 says is a member of the
//! set (a live instance tagged with the set and the matching role whose
//! endpoint is that host), so a stray or forged task cannot add a host
//! the set's owner never launched.

use std::time::Duration;

use serde::Serialize;

use super::ports::{Member, MemberInventory, MongoApi};
use super::primary::{Finding, choose, observe};
use super::replset::{self, Decision, Kind, Refusal, same_host};
use super::task::{Task, TaskType};
use crate::chain::model::Endpoint;
use crate::error::Error;

#[derive(Debug, Clone, PartialEq)]
pub struct TaskSettings {
    /// `replSetStepDown`'s seconds: how long the old primary stays
    /// unelectable.
    pub step_down: Duration,
    /// `secondaryCatchUpPeriodSecs`: how long it waits for a secondary to
    /// have every write before stepping down.
    pub catch_up: Duration,
    pub dry_run: bool,
}

/// What one task did.
#[derive(Debug, Clone, Serialize)]
pub struct TaskReport {
    #[serde(rename = "type")]
    pub kind: TaskType,
    pub set: String,
    pub host: String,
    pub instance_id: String,
    /// `applied`, `already-applied`, `would-apply` (dry run),
    /// `stepped-down`, `would-step-down`, `not-primary` (nothing to step
    /// down), `skipped` (the host belongs to another instance now).
    pub result: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub primary: Option<Endpoint>,
    /// The config version after the task.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub member_id: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub votes: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

impl TaskReport {
    fn new(task: &Task, result: &'static str) -> Self {
        TaskReport {
            kind: task.kind,
            set: task.set.clone(),
            host: task.host.clone(),
            instance_id: task.instance_id.clone(),
            result,
            primary: None,
            version: None,
            member_id: None,
            votes: None,
            note: None,
        }
    }

    pub fn changed(&self) -> bool {
        matches!(self.result, "applied" | "stepped-down")
    }
}

/// Applies one task to its set.
pub async fn apply(
    api: &impl MongoApi,
    inventory: &impl MemberInventory,
    task: &Task,
    settings: &TaskSettings,
) -> Result<TaskReport, Error> {
    let listing = inventory.mongo_members(Some(&task.set)).await?;
    let members: Vec<Member> = listing.into_iter().filter_map(Result::ok).collect();
    let wanted_kind = match task.kind {
        TaskType::Add => Some(Kind::Data),
        TaskType::AddArbiter => Some(Kind::Arbiter),
        TaskType::Remove | TaskType::StepDownIfPrimary => None,
    };
    if let Some(kind) = wanted_kind {
        check_launched(task, &members, kind)?;
    }
    let observed = observe(api, &members).await;
    let (finding, _) = choose(&observed);
    let (primary, hello) = match finding {
        Finding::Primary { member, hello } => (member, hello),
        Finding::NoPrimary { reason } | Finding::Unreachable { reason } => {
            return Err(Error::Incomplete {
                detail: format!(
                    "{}: cannot apply {} of {}: {reason}",
                    task.set, task.kind, task.host
                ),
                retryable: true,
            });
        }
        Finding::Conflict { reason } => return Err(Error::resource(&task.set, reason)),
    };
    let endpoint = primary.node.endpoint.clone();
    // The primary as the set's config names it (its `me`), which is what
    // task hosts are compared with.
    let primary_host = hello.me.clone().unwrap_or_else(|| endpoint.to_string());
    let mut report = TaskReport::new(task, "applied");
    report.primary = Some(endpoint.clone());

    match task.kind {
        TaskType::StepDownIfPrimary => {
            if !task.names().any(|n| same_host(n, &primary_host)) {
                report.result = "not-primary";
                return Ok(report);
            }
            if settings.dry_run {
                report.result = "would-step-down";
                return Ok(report);
            }
            step_down(api, &endpoint, settings).await?;
            report.result = "stepped-down";
            Ok(report)
        }
        TaskType::Remove => {
            if let Some(owner) = members
                .iter()
                .find(|m| same_host(&m.node.endpoint.to_string(), &task.host))
                .filter(|m| m.node.instance_id != task.instance_id)
            {
                report.result = "skipped";
                report.note = Some(format!(
                    "{} now belongs to {}, a live member of the set; it stays",
                    task.host, owner.node.instance_id
                ));
                return Ok(report);
            }
            let config = api.config(&endpoint).await?;
            let health = api.status(&endpoint).await?;
            let decide = |config: &replset::ReplSetConfig| {
                replset::remove(config, config_name(config, task), Some(&primary_host), &health)
            };
            reconfigure(api, &endpoint, config, decide, settings.dry_run, &mut report).await?;
            Ok(report)
        }
        TaskType::Add | TaskType::AddArbiter => {
            let kind = wanted_kind.unwrap_or(Kind::Data);
            let config = api.config(&endpoint).await?;
            let decide =
                |config: &replset::ReplSetConfig| replset::add(config, config_name(config, task), kind);
            reconfigure(api, &endpoint, config, decide, settings.dry_run, &mut report).await?;
            Ok(report)
        }
    }
}

/// The name the set's config has for the task's member: its host, or the
/// first alias the config holds (a set configured with addresses where the
/// tags give DNS names, or the reverse); the host when it holds none.
fn config_name<'a>(config: &replset::ReplSetConfig, task: &'a Task) -> &'a str {
    task.names()
        .find(|n| config.member(n).is_some())
        .unwrap_or(&task.host)
}

/// An add is for a host EC2 knows as a member of the set, of the right
/// kind.
fn check_launched(task: &Task, members: &[Member], kind: Kind) -> Result<(), Error> {
    let Some(member) = members
        .iter()
        .find(|m| same_host(&m.node.endpoint.to_string(), &task.host))
    else {
        let tagged: Vec<String> = members.iter().map(|m| m.node.endpoint.to_string()).collect();
        return Err(Error::resource(
            &task.host,
            format!(
                "is not a member of {}: no pending or running instance tagged {}={} with a mongodb role has this endpoint (tagged members: {})",
                task.set,
                crate::tags::CLUSTER,
                task.set,
                if tagged.is_empty() {
                    "none".to_owned()
                } else {
                    tagged.join(", ")
                }
            ),
        ));
    };
    if member.kind != kind {
        return Err(Error::resource(
            &task.host,
            format!(
                "{} is tagged as a {} member of {}, but the task is {}",
                member.node.instance_id,
                match member.kind {
                    Kind::Data => "data",
                    Kind::Arbiter => "arbiter",
                },
                task.set,
                task.kind
            ),
        ));
    }
    Ok(())
}

fn refused(set: &str, r: Refusal) -> Error {
    if r.is_retryable() {
        Error::Incomplete {
            detail: format!("{set}: {r}"),
            retryable: true,
        }
    } else {
        Error::resource(set, r.to_string())
    }
}

/// Decides on `config` and sends the new one; when the send fails, reads
/// the config again: a duplicate run may have applied the same task.
async fn reconfigure(
    api: &impl MongoApi,
    primary: &Endpoint,
    config: replset::ReplSetConfig,
    decide: impl Fn(&replset::ReplSetConfig) -> Result<Decision, Refusal>,
    dry_run: bool,
    report: &mut TaskReport,
) -> Result<(), Error> {
    let set = config.id.clone();
    let (new, member, note) = match decide(&config).map_err(|r| refused(&set, r))? {
        Decision::Unchanged { reason } => {
            report.result = "already-applied";
            report.version = Some(config.version);
            report.note = Some(reason);
            return Ok(());
        }
        Decision::Reconfig { config, member, note } => (config, member, note),
    };
    report.version = Some(new.version);
    report.member_id = Some(member.id);
    report.votes = Some(member.votes);
    report.note = note;
    if dry_run {
        report.result = "would-apply";
        return Ok(());
    }
    if let Err(e) = api.reconfig(primary, &new).await {
        if let Ok(now) = api.config(primary).await
            && let Ok(Decision::Unchanged { reason }) = decide(&now)
        {
            report.result = "already-applied";
            report.version = Some(now.version);
            report.note = Some(format!("{reason} (applied by another run: {e})"));
            return Ok(());
        }
        return Err(e.into());
    }
    tracing::info!(set = %set, version = new.version, member = %member.host, member_id = member.id, "replica set reconfigured");
    report.result = "applied";
    Ok(())
}

/// Steps the primary down. Before 4.2 a step-down closed every connection,
/// so a lost answer is checked by asking again.
async fn step_down(api: &impl MongoApi, primary: &Endpoint, settings: &TaskSettings) -> Result<(), Error> {
    match api
        .step_down(primary, settings.step_down, settings.catch_up)
        .await
    {
        Ok(()) => Ok(()),
        Err(e) if e.is_down() => match api.hello(primary).await {
            Ok(h) if !h.writable_primary => Ok(()),
            _ => Err(e.into()),
        },
        Err(e) => Err(e.into()),
    }
}

#[cfg(test)]
#[path = "tests/apply.rs"]
mod tests;
