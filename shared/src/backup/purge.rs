//! Purging expired snapshots. Safety first, in this order:
//!
//! 1. only snapshots this account owns that carry
//!    `ninelives:managed-by=ninelives` are ever looked at;
//! 2. a snapshot whose tags cannot prove it expired (missing or unreadable
//!    `ninelives:expires-at`, no cluster or name) is skipped and reported;
//! 3. the newest completed snapshot of each (cluster, name) is kept, expired
//!    or not, so a cluster whose backups stopped still has something to
//!    restore;
//! 4. snapshots an AMI uses are skipped and reported (EC2 would refuse);
//! 5. pending snapshots are left to finish.
//!
//! A snapshot tagged `ninelives:invalid` (a snapshot run could not delete
//! one it made in error) is never a backup: it does not count as the
//! newest, and goes once its expiry has passed.
//!
//! The plan is a pure function of the listing; the run then deletes at a
//! steady pace with bounded concurrency, stops starting new deletions when
//! the invocation's deadline nears, and reports what is left. Running again
//! (the next schedule, or a duplicate delivery) re-lists and continues:
//! deleted snapshots are gone from the listing, and one deleted meanwhile by
//! a concurrent run answers "not found", which counts as done.

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use futures::StreamExt;
use serde::Serialize;

use super::latest;
use super::model::{DeleteOutcome, Snapshot, SnapshotQuery, SnapshotState};
use super::ports::BackupApi;
use super::tier::{format_time, parse_time};
use crate::error::Error;
use crate::function::Summary;
use crate::invocation::Deadline;
use crate::pace::Pacer;
use crate::tags;

/// How a purge runs.
#[derive(Debug, Clone)]
pub struct PurgeRun {
    pub now: DateTime<Utc>,
    pub dry_run: bool,
    /// Deletions started per second at most; 0 for no pacing.
    pub deletes_per_second: f64,
    /// Deletions in flight at most.
    pub concurrency: usize,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Candidate {
    pub snapshot_id: String,
    pub cluster: String,
    pub name: String,
    pub expires_at: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Skip {
    pub snapshot_id: String,
    pub reason: String,
}

/// What a purge would do with the managed snapshots it found.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct PurgePlan {
    /// Expired and deletable, most overdue first.
    pub delete: Vec<Candidate>,
    /// Expired but the newest completed snapshot of its (cluster, name), or
    /// of the same set as one.
    pub kept_newest: Vec<Candidate>,
    /// Expired but used by an AMI.
    pub in_use: Vec<Skip>,
    /// Tags that do not allow a decision.
    pub invalid: Vec<Skip>,
    /// Expired but still pending.
    pub pending: Vec<String>,
    pub not_expired: usize,
    pub managed: usize,
}

/// Decides, without side effects, what a purge at `now` deletes.
pub fn plan_purge(snapshots: &[Snapshot], ami_snapshots: &BTreeSet<String>, now: DateTime<Utc>) -> PurgePlan {
    let mut plan = PurgePlan {
        managed: snapshots.len(),
        ..PurgePlan::default()
    };

    // Newest completed per (cluster, name), whatever its expiry: the
    // snapshot a replacement instance would be restored from.
    let newest = latest::newest_by_volume(snapshots);

    // The newest snapshot's set-mates (the other volumes of the same
    // `CreateSnapshots` call) stay too, so the last backup of a
    // multi-volume cluster is a whole, consistent set.
    let newest_sets: BTreeSet<&str> = newest.values().filter_map(|s| s.tag(tags::SET)).collect();

    let mut delete: Vec<(DateTime<Utc>, Candidate)> = Vec::new();
    for s in snapshots {
        let skip = |reason: String| Skip {
            snapshot_id: s.id.clone(),
            reason,
        };
        if s.tag(tags::INVALID).is_some() {
            match s.tag(tags::EXPIRES_AT).and_then(parse_time) {
                Some(t) if t <= now && s.state != SnapshotState::Pending => delete.push((
                    t,
                    Candidate {
                        snapshot_id: s.id.clone(),
                        cluster: s.tag(tags::CLUSTER).unwrap_or_default().to_owned(),
                        name: s.tag(tags::NAME).unwrap_or_default().to_owned(),
                        expires_at: format_time(t),
                    },
                )),
                Some(_) => plan.not_expired += 1,
                None => plan.invalid.push(skip(format!(
                    "{} and no readable expiry: left alone",
                    tags::INVALID
                ))),
            }
            continue;
        }
        let (Some(cluster), Some(name)) = (s.tag(tags::CLUSTER), s.tag(tags::NAME)) else {
            plan.invalid.push(skip(format!(
                "missing {} or {} tag: cannot tell which backups it belongs to",
                tags::CLUSTER,
                tags::NAME
            )));
            continue;
        };
        let expires_at = match s.tag(tags::EXPIRES_AT) {
            None => {
                plan.invalid
                    .push(skip(format!("no {} tag: never expires", tags::EXPIRES_AT)));
                continue;
            }
            Some(raw) => match parse_time(raw) {
                Some(t) => t,
                None => {
                    plan.invalid.push(skip(format!(
                        "{}={raw:?} is not an RFC 3339 time: left alone",
                        tags::EXPIRES_AT
                    )));
                    continue;
                }
            },
        };
        if expires_at > now {
            plan.not_expired += 1;
            continue;
        }
        let candidate = Candidate {
            snapshot_id: s.id.clone(),
            cluster: cluster.to_owned(),
            name: name.to_owned(),
            expires_at: format_time(expires_at),
        };
        let newest_of_its_volume = newest.get(&(cluster, name)).is_some_and(|n| n.id == s.id);
        let in_newest_set = s.tag(tags::SET).is_some_and(|set| newest_sets.contains(set));
        if newest_of_its_volume || in_newest_set {
            plan.kept_newest.push(candidate);
        } else if s.state == SnapshotState::Pending {
            plan.pending.push(s.id.clone());
        } else if ami_snapshots.contains(&s.id) {
            plan.in_use.push(skip("used by an AMI".to_owned()));
        } else {
            delete.push((expires_at, candidate));
        }
    }
    delete.sort_by(|a, b| (a.0, &a.1.snapshot_id).cmp(&(b.0, &b.1.snapshot_id)));
    plan.delete = delete.into_iter().map(|(_, c)| c).collect();
    plan.invalid.sort_by(|a, b| a.snapshot_id.cmp(&b.snapshot_id));
    plan.in_use.sort_by(|a, b| a.snapshot_id.cmp(&b.snapshot_id));
    plan.kept_newest.sort_by(|a, b| a.snapshot_id.cmp(&b.snapshot_id));
    plan.pending.sort();
    plan
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FailedDelete {
    pub snapshot_id: String,
    pub error: String,
    pub error_type: String,
}

/// The JSON result of a purge.
#[derive(Debug, Serialize)]
pub struct PurgeSummary {
    pub function: &'static str,
    pub dry_run: bool,
    pub now: String,
    /// Nothing expired and deletable is left.
    pub complete: bool,
    pub managed: usize,
    pub not_expired: usize,
    pub deleted: Vec<String>,
    /// Dry run only: what a real run would delete.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub would_delete: Vec<Candidate>,
    /// Deleted by someone else between listing and deleting.
    pub already_gone: Vec<String>,
    pub kept_newest: Vec<Candidate>,
    pub in_use: Vec<Skip>,
    pub invalid: Vec<Skip>,
    pub pending: Vec<String>,
    pub failed: Vec<FailedDelete>,
    /// Expired snapshots not attempted because the deadline was near; the
    /// next run deletes them.
    pub remaining: Vec<String>,
    pub deletes_per_second: f64,
    /// The errors behind `failed`, causes intact, for the outcome.
    #[serde(skip)]
    pub errors: Vec<Error>,
}

impl PurgeSummary {}

impl Summary for PurgeSummary {
    fn headline(&self) -> String {
        let mut s = if self.dry_run {
            format!("would delete {} expired snapshots", self.would_delete.len())
        } else {
            format!("deleted {} expired snapshots", self.deleted.len())
        };
        for (n, what) in [
            (self.kept_newest.len(), "kept as newest"),
            (self.in_use.len(), "used by AMIs"),
            (self.invalid.len(), "with bad tags"),
            (self.failed.len(), "failed"),
            (self.remaining.len(), "left for the next run"),
        ] {
            if n > 0 {
                s.push_str(&format!(", {n} {what}"));
            }
        }
        s
    }

    fn changed(&self) -> bool {
        !self.dry_run && (!self.deleted.is_empty() || !self.failed.is_empty())
    }

    /// Failures make the invocation fail (after the summary is logged), so
    /// alarms see them; what was deleted stays deleted. Running out of time
    /// is not a failure: the next scheduled run continues.
    fn take_outcome_error(&mut self) -> Option<Error> {
        let errors = std::mem::take(&mut self.errors);
        let retryable = errors.iter().any(Error::is_retryable);
        let first = errors.into_iter().next()?;
        Some(Error::Partial {
            what: "deletions",
            failed: self.failed.len(),
            attempted: self.failed.len() + self.deleted.len() + self.already_gone.len(),
            retryable,
            first: Box::new(first),
        })
    }
}

enum Attempt {
    Done(DeleteOutcome),
    Failed(Error),
    NotAttempted,
}

/// Lists, plans and deletes.
pub async fn purge<A: BackupApi>(
    api: &A,
    run: &PurgeRun,
    deadline: &Deadline,
) -> Result<PurgeSummary, Error> {
    // Independent listings, side by side; the first to fail ends the run.
    // An AMI registered after its listing is still safe: EC2 refuses to
    // delete a snapshot in use (`InvalidSnapshot.InUse`), which counts as
    // in use here too.
    let everything = SnapshotQuery::default();
    let (snapshots, images) = futures::try_join!(
        deadline.within("ec2:DescribeSnapshots", api.managed_snapshots(&everything)),
        deadline.within("ec2:DescribeImages", api.image_snapshot_ids()),
    )?;
    let plan = plan_purge(&snapshots, &images, run.now);
    drop(snapshots);

    for skip in &plan.invalid {
        tracing::warn!(snapshot_id = %skip.snapshot_id, reason = %skip.reason, "managed snapshot skipped");
    }
    let mut summary = PurgeSummary {
        function: "purge-snapshots",
        dry_run: run.dry_run,
        now: format_time(run.now),
        complete: false,
        managed: plan.managed,
        not_expired: plan.not_expired,
        deleted: Vec::new(),
        would_delete: Vec::new(),
        already_gone: Vec::new(),
        kept_newest: plan.kept_newest,
        in_use: plan.in_use,
        invalid: plan.invalid,
        pending: plan.pending,
        failed: Vec::new(),
        remaining: Vec::new(),
        deletes_per_second: run.deletes_per_second.max(0.0),
        errors: Vec::new(),
    };
    if run.dry_run {
        summary.would_delete = plan.delete;
        summary.complete = true;
        return Ok(summary);
    }

    let pacer = Pacer::per_second(run.deletes_per_second);
    let attempts: Vec<(String, Attempt)> = futures::stream::iter(plan.delete)
        .map(|candidate| {
            let pacer = &pacer;
            async move {
                if deadline.should_stop() {
                    return (candidate.snapshot_id, Attempt::NotAttempted);
                }
                // A slot reserved far ahead (a low rate, many in flight)
                // must not outlive the invocation.
                if deadline.bound(pacer.wait()).await.is_none() || deadline.should_stop() {
                    return (candidate.snapshot_id, Attempt::NotAttempted);
                }
                let attempt = match deadline.bound(api.delete_snapshot(&candidate.snapshot_id)).await {
                    None => Attempt::NotAttempted,
                    Some(Ok(outcome)) => Attempt::Done(outcome),
                    Some(Err(err)) => Attempt::Failed(err),
                };
                if let Attempt::Done(DeleteOutcome::Deleted) = attempt {
                    tracing::info!(
                        snapshot_id = %candidate.snapshot_id,
                        cluster = %candidate.cluster,
                        name = %candidate.name,
                        expires_at = %candidate.expires_at,
                        "expired snapshot deleted"
                    );
                }
                (candidate.snapshot_id, attempt)
            }
        })
        .buffer_unordered(run.concurrency.max(1))
        .collect()
        .await;

    for (id, attempt) in attempts {
        match attempt {
            Attempt::Done(DeleteOutcome::Deleted) => summary.deleted.push(id),
            Attempt::Done(DeleteOutcome::NotFound) => summary.already_gone.push(id),
            Attempt::Done(DeleteOutcome::InUse(reason)) => {
                tracing::warn!(snapshot_id = %id, reason = %reason, "snapshot in use; skipped");
                summary.in_use.push(Skip {
                    snapshot_id: id,
                    reason,
                });
            }
            Attempt::Failed(err) => {
                tracing::error!(snapshot_id = %id, error = %err, "deletion failed");
                summary.failed.push(FailedDelete {
                    snapshot_id: id,
                    error: err.to_string(),
                    error_type: err.error_type(),
                });
                summary.errors.push(err);
            }
            Attempt::NotAttempted => summary.remaining.push(id),
        }
    }
    summary.deleted.sort();
    summary.already_gone.sort();
    summary.in_use.sort_by(|a, b| a.snapshot_id.cmp(&b.snapshot_id));
    summary.remaining.sort();
    summary.complete = summary.failed.is_empty() && summary.remaining.is_empty();
    Ok(summary)
}

#[cfg(test)]
#[path = "tests/purge.rs"]
mod tests;
