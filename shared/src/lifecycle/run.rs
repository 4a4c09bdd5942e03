//! One lifecycle action from start to end (SPEC item 3): read the instance,
//! restore its data volume and join its role on launch, leave the role on
//! terminate, then complete the action, and never leave it hanging without
//! a word:
//!
//! - every step succeeded: `CompleteLifecycleAction` CONTINUE;
//! - a failure retrying cannot fix (bad tags, an unknown role, a snapshot
//!   that does not exist, an instance that is gone): ABANDON, with the
//!   reason logged and notified; the event is then fully handled;
//! - a transient failure (throttling after the SDK's retries, a snapshot
//!   still pending, the invocation's deadline): a heartbeat so the action
//!   outlives the retry, and a retryable error so the event is delivered
//!   again. Every step is idempotent, so the retry resumes.
//!
//! Instances without any `ninelives:` tag are not ours: their actions are
//! left to whichever hook owns them, with the reason logged.

use std::time::Duration;

use serde::Serialize;

use super::action::{LifecycleAction, Transition};
use super::node::{self, NodePlan};
use super::ports::{Accepted, ActionResult, Instance, LifecycleApi, RestoreApi, RoleChange, Roles};
use super::restore::{RestoreSettings, VolumeOutcome, VolumeReport, restore};
use super::wait::Waiter;
use crate::error::Error;
use crate::function::Summary;
use crate::invocation::Deadline;

/// How recently an action must have started for EC2 not knowing its
/// instance to count as EC2's eventual consistency (retry) rather than a
/// bogus or stale event (abandon).
const NEW_INSTANCE_GRACE: chrono::TimeDelta = chrono::TimeDelta::minutes(5);

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    pub dry_run: bool,
    /// EBS volume type for new volumes.
    pub volume_type: String,
    /// Time between checks while EC2 creates or attaches a volume.
    pub poll: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Status {
    /// Completed with CONTINUE.
    Continued,
    /// Completed with ABANDON after a failure retrying cannot fix.
    Abandoned,
    /// Auto Scaling no longer had the action: completed by a duplicate
    /// delivery, or timed out (its default result applied).
    NotActive,
    /// Not a ninelives instance; the action was not touched.
    Ignored,
    /// A transient failure; the event will be delivered again.
    WillRetry,
    /// The completion call failed for a reason retrying cannot fix.
    Failed,
    /// DRY_RUN: nothing was changed; `result` is what would be sent.
    DryRun,
}

/// What one action came to: the function's JSON result and notification.
#[derive(Debug, Serialize)]
pub struct ActionSummary {
    pub lifecycle_action: LifecycleAction,
    pub status: Status,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub result: Option<ActionResult>,
    pub dry_run: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub node: Option<NodePlan>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub volume: Option<VolumeReport>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub role: Option<RoleChange>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error_type: Option<String>,
    pub heartbeats: u32,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
    /// The error to return (a retryable one makes Lambda deliver the event
    /// again); not part of the JSON.
    #[serde(skip)]
    outcome_error: Option<Error>,
}

impl ActionSummary {
    fn new(action: &LifecycleAction, dry_run: bool) -> Self {
        ActionSummary {
            lifecycle_action: action.clone(),
            status: Status::WillRetry,
            result: None,
            dry_run,
            node: None,
            volume: None,
            role: None,
            error: None,
            error_type: None,
            heartbeats: 0,
            notes: Vec::new(),
            outcome_error: None,
        }
    }
}

impl Summary for ActionSummary {
    fn headline(&self) -> String {
        let a = &self.lifecycle_action;
        let mut parts = vec![format!("{} of {} in {}", a.transition, a.instance_id, a.group)];
        if let Some(v) = &self.volume {
            let id = v.volume_id.as_deref().unwrap_or("a volume");
            parts.push(match v.outcome {
                VolumeOutcome::Restored => format!(
                    "{id} restored from {} at {}",
                    v.snapshot_id.as_deref().unwrap_or("?"),
                    v.device
                ),
                VolumeOutcome::CreatedEmpty => format!("{id} created empty at {}", v.device),
                VolumeOutcome::Resumed => format!("{id} attached at {}", v.device),
                VolumeOutcome::AlreadyAttached => format!("{id} already at {}", v.device),
                VolumeOutcome::DeviceInUse => format!("{} already in use, left alone", v.device),
                VolumeOutcome::WouldRestore => format!(
                    "would restore {} at {}",
                    v.snapshot_id.as_deref().unwrap_or("?"),
                    v.device
                ),
                VolumeOutcome::WouldCreateEmpty => format!("would create an empty volume at {}", v.device),
                VolumeOutcome::WouldResume => format!("would finish attaching {id} at {}", v.device),
                VolumeOutcome::Unfinished => format!("volume at {} unfinished", v.device),
            });
        }
        if let Some(r) = &self.role
            && r.action != "none"
        {
            parts.push(format!("{} record {}", r.role, r.action));
        }
        let status = match (self.status, self.result) {
            (Status::DryRun, Some(r)) => format!("would {}", r.as_str()),
            (Status::Continued, _) => "CONTINUE".to_owned(),
            (Status::Abandoned, _) => "ABANDON".to_owned(),
            (Status::NotActive, _) => "action no longer active".to_owned(),
            (Status::Ignored, _) => "ignored".to_owned(),
            (Status::WillRetry, _) => "will retry".to_owned(),
            (Status::DryRun, None) => "dry run stopped by a transient failure".to_owned(),
            (Status::Failed, _) => "failed".to_owned(),
        };
        parts.push(status);
        let mut line = parts.join("; ");
        if let Some(e) = &self.error {
            line.push_str(": ");
            line.push_str(e);
        }
        line
    }

    /// Something a person should hear about: a volume made, a record
    /// changed, an action abandoned, a failure.
    fn changed(&self) -> bool {
        self.volume
            .as_ref()
            .is_some_and(|v| v.created() || v.outcome == VolumeOutcome::DeviceInUse)
            || self.role.as_ref().is_some_and(RoleChange::changed)
            || matches!(
                self.status,
                Status::Abandoned | Status::WillRetry | Status::Failed
            )
    }

    /// The error the invocation must return, if any.
    fn take_outcome_error(&mut self) -> Option<Error> {
        self.outcome_error.take()
    }
}

/// Runs one lifecycle action.
pub async fn handle<A: RestoreApi, L: LifecycleApi, R: Roles>(
    ec2: &A,
    lifecycle: &L,
    roles: &R,
    action: &LifecycleAction,
    settings: &Settings,
    deadline: &Deadline,
) -> ActionSummary {
    let mut summary = ActionSummary::new(action, settings.dry_run);
    let mut waiter = Waiter::new(lifecycle, action, deadline, settings.poll, settings.dry_run);
    let work = deadline
        .bound(work(ec2, roles, action, settings, &mut waiter, &mut summary))
        .await
        .unwrap_or_else(|| {
            Err(Error::Incomplete {
                detail: "the invocation's deadline was reached before the work finished".to_owned(),
                retryable: true,
            })
        });
    summary.notes.append(&mut waiter.notes);
    match work {
        Ok(Flow::Ignore(reason)) => {
            tracing::warn!(instance_id = %action.instance_id, group = %action.group, hook = %action.hook, reason = %reason, "lifecycle action ignored");
            summary.status = Status::Ignored;
            summary.notes.push(reason);
        }
        Ok(Flow::NotActive(message)) => {
            tracing::warn!(instance_id = %action.instance_id, message = %message, "lifecycle action no longer active; nothing done");
            summary.status = Status::NotActive;
            summary.notes.push(format!(
                "nothing done: {message} (completed by an earlier delivery, or timed out and the hook's default result applied)"
            ));
        }
        Ok(Flow::Done) => complete(lifecycle, action, ActionResult::Continue, &mut summary).await,
        Err(err) if err.is_retryable() => {
            tracing::warn!(instance_id = %action.instance_id, error = %err, error_type = %err.error_type(), "lifecycle action not finished; the event will be retried");
            waiter.beat().await;
            summary.notes.append(&mut waiter.notes);
            summary.status = if settings.dry_run {
                Status::DryRun
            } else {
                Status::WillRetry
            };
            record_error(&mut summary, &err);
            summary.outcome_error = Some(err);
        }
        Err(err) => {
            tracing::error!(instance_id = %action.instance_id, error = %err, error_type = %err.error_type(), "lifecycle action failed; abandoning it");
            record_error(&mut summary, &err);
            complete(lifecycle, action, ActionResult::Abandon, &mut summary).await;
        }
    }
    summary.heartbeats += waiter.heartbeats;
    summary
}

enum Flow {
    Done,
    Ignore(String),
    /// Auto Scaling no longer holds the action; nothing was done.
    NotActive(String),
}

fn record_error(summary: &mut ActionSummary, err: &Error) {
    summary.error = Some(err.to_string());
    summary.error_type = Some(err.error_type());
}

async fn work<A: RestoreApi, L: LifecycleApi, R: Roles>(
    ec2: &A,
    roles: &R,
    action: &LifecycleAction,
    settings: &Settings,
    waiter: &mut Waiter<'_, L>,
    summary: &mut ActionSummary,
) -> Result<Flow, Error> {
    let instance = find_instance(ec2, action).await?;
    if !node::is_managed(&instance.tags) {
        return Ok(Flow::Ignore(format!(
            "{} has no ninelives tags; its lifecycle action is left to the hook's owner",
            instance.id
        )));
    }
    let plan =
        node::plan(&instance.tags).map_err(|e| Error::resource(format!("instance {}", instance.id), e))?;
    summary.node = Some(plan.clone());
    if action.is_warm_pool_only() {
        summary.notes.push(format!(
            "warm pool transition ({} to {}): the node neither serves nor leaves a cluster; nothing to do",
            action.origin.as_deref().unwrap_or("?"),
            action.destination.as_deref().unwrap_or("?")
        ));
        return Ok(Flow::Done);
    }
    match action.transition {
        Transition::Launch => {
            // A launch event delivered late (a retry after the action timed
            // out, or after the node was already terminated) must not
            // restore or join anything: Auto Scaling has moved on.
            if let Some(message) = waiter.still_active().await? {
                return Ok(Flow::NotActive(message));
            }
            if instance.is_gone() {
                return Err(Error::resource(
                    format!("instance {}", instance.id),
                    format!("is {}: nothing to restore or join", instance.state),
                ));
            }
            if let Some(volume) = &plan.volume {
                let report = summary.volume.insert(VolumeReport {
                    outcome: VolumeOutcome::Unfinished,
                    device: volume.device.clone(),
                    availability_zone: instance.availability_zone.clone(),
                    volume_id: None,
                    snapshot_id: None,
                    size_gib: None,
                    delete_on_termination: false,
                });
                let restore_settings = RestoreSettings {
                    volume_type: settings.volume_type.clone(),
                    dry_run: settings.dry_run,
                };
                restore(
                    ec2,
                    waiter,
                    &instance,
                    &plan.cluster,
                    volume,
                    &restore_settings,
                    report,
                )
                .await?;
            }
            summary.role = Some(roles.join(&instance, &plan, settings.dry_run).await?);
        }
        Transition::Terminate => {
            summary.role = Some(roles.leave(&instance, &plan, settings.dry_run).await?);
        }
    }
    Ok(Flow::Done)
}

async fn find_instance<A: RestoreApi>(ec2: &A, action: &LifecycleAction) -> Result<Instance, Error> {
    if let Some(instance) = ec2.instance(&action.instance_id).await? {
        return Ok(instance);
    }
    let fresh = action
        .time
        .is_some_and(|t| chrono::Utc::now() - t < NEW_INSTANCE_GRACE);
    if fresh && action.transition == Transition::Launch {
        return Err(Error::Incomplete {
            detail: format!(
                "EC2 does not list instance {} yet (a new instance can take a moment to appear)",
                action.instance_id
            ),
            retryable: true,
        });
    }
    Err(Error::resource(
        format!("instance {}", action.instance_id),
        "does not exist (EC2 does not know it): the event is stale or names the wrong instance",
    ))
}

async fn complete<L: LifecycleApi>(
    lifecycle: &L,
    action: &LifecycleAction,
    result: ActionResult,
    summary: &mut ActionSummary,
) {
    summary.result = Some(result);
    if summary.dry_run {
        summary.status = Status::DryRun;
        return;
    }
    match lifecycle.complete(action, result).await {
        Ok(Accepted::Yes) => {
            tracing::info!(instance_id = %action.instance_id, group = %action.group, hook = %action.hook, result = result.as_str(), "lifecycle action completed");
            summary.status = match result {
                ActionResult::Continue => Status::Continued,
                ActionResult::Abandon => Status::Abandoned,
            };
        }
        Ok(Accepted::NotActive(message)) => {
            tracing::warn!(instance_id = %action.instance_id, result = result.as_str(), message = %message, "lifecycle action was no longer active");
            summary.status = Status::NotActive;
            summary.notes.push(format!(
                "{} not needed: {message} (completed by an earlier delivery, or timed out and the hook's default result applied)",
                result.as_str()
            ));
        }
        Err(err) => {
            tracing::error!(instance_id = %action.instance_id, result = result.as_str(), error = %err, "CompleteLifecycleAction failed");
            summary.status = if err.is_retryable() {
                Status::WillRetry
            } else {
                Status::Failed
            };
            // Keep the action alive for the retry (best effort).
            if err.is_retryable() && matches!(lifecycle.heartbeat(action).await, Ok(Accepted::Yes)) {
                summary.heartbeats += 1;
            }
            if summary.error.is_none() {
                record_error(summary, &err);
            } else {
                summary
                    .notes
                    .push(format!("{} failed too: {err}", result.as_str()));
            }
            summary.outcome_error = Some(err);
        }
    }
}

#[cfg(test)]
#[path = "tests/run.rs"]
mod tests;
