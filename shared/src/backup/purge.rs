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

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};
use futures::StreamExt;
use serde::Serialize;

use super::model::{DeleteOutcome, Snapshot, SnapshotQuery, SnapshotState};
use super::ports::BackupApi;
use super::tier::{format_time, parse_time};
use crate::error::Error;
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

    // Newest completed per (cluster, name), whatever its expiry.
    let mut newest: BTreeMap<(&str, &str), &Snapshot> = BTreeMap::new();
    let valid = |s: &&Snapshot| s.state == SnapshotState::Completed && s.tag(tags::INVALID).is_none();
    for s in snapshots.iter().filter(valid) {
        if let (Some(cluster), Some(name)) = (s.tag(tags::CLUSTER), s.tag(tags::NAME)) {
            let entry = newest.entry((cluster, name)).or_insert(s);
            if (s.start_time, &s.id) > (entry.start_time, &entry.id) {
                *entry = s;
            }
        }
    }

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

impl PurgeSummary {
    pub fn headline(&self) -> String {
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

    /// Failures make the invocation fail (after the summary is logged), so
    /// alarms see them; what was deleted stays deleted. Running out of time
    /// is not a failure: the next scheduled run continues.
    pub fn take_outcome_error(&mut self) -> Option<Error> {
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

    pub fn changed(&self) -> bool {
        !self.dry_run && (!self.deleted.is_empty() || !self.failed.is_empty())
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
    let snapshots = deadline
        .within(
            "ec2:DescribeSnapshots",
            api.managed_snapshots(&SnapshotQuery::default()),
        )
        .await?;
    let images = deadline
        .within("ec2:DescribeImages", api.image_snapshot_ids())
        .await?;
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
mod tests {
    use std::time::Duration;

    use chrono::TimeZone;
    use tokio::time::Instant;

    use super::*;
    use crate::backup::fake::FakeEc2;
    use crate::backup::model::Tags;

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 24, 12, 0, 0).unwrap()
    }

    /// A managed snapshot of `cluster/name` started `age_days` ago and
    /// expiring `expires_in_days` from now (negative: expired).
    fn snap(id: &str, cluster: &str, name: &str, age_days: i64, expires_in_days: i64) -> Snapshot {
        let mut tags = Tags::new();
        tags.insert(tags::MANAGED_BY.into(), tags::MANAGED_BY_VALUE.into());
        tags.insert(tags::CLUSTER.into(), cluster.into());
        tags.insert(tags::NAME.into(), name.into());
        tags.insert(
            tags::EXPIRES_AT.into(),
            format_time(now() + chrono::Duration::days(expires_in_days)),
        );
        Snapshot {
            id: id.into(),
            volume_id: Some("vol-1".into()),
            state: SnapshotState::Completed,
            start_time: Some(now() - chrono::Duration::days(age_days)),
            tags,
        }
    }

    fn ids(c: &[Candidate]) -> Vec<&str> {
        c.iter().map(|c| c.snapshot_id.as_str()).collect()
    }

    #[test]
    fn plan_keeps_the_newest_and_everything_it_cannot_judge() {
        let mut pending = snap("snap-p", "a", "main", 1, -1);
        pending.state = SnapshotState::Pending;
        let mut bad_expiry = snap("snap-bad", "a", "main", 30, -10);
        bad_expiry.tags.insert(tags::EXPIRES_AT.into(), "soon".into());
        let mut no_expiry = snap("snap-none", "a", "main", 30, -10);
        no_expiry.tags.remove(tags::EXPIRES_AT);
        let mut no_name = snap("snap-anon", "a", "main", 30, -10);
        no_name.tags.remove(tags::NAME);
        let snapshots = vec![
            snap("snap-a1", "a", "main", 20, -6),
            snap("snap-a2", "a", "main", 10, -1),
            snap("snap-a3", "a", "main", 2, 5),
            snap("snap-a4", "a", "main", 30, -9),
            // b/main: all expired; the newest completed stays.
            snap("snap-b1", "b", "main", 40, -20),
            snap("snap-b2", "b", "main", 30, -10),
            // b/ts1 is its own (cluster, name).
            snap("snap-b3", "b", "ts1", 40, -20),
            snap("snap-ami", "a", "main", 25, -3),
            pending,
            bad_expiry,
            no_expiry,
            no_name,
            // Exactly at its expiry: expired.
            snap("snap-edge", "a", "main", 14, 0),
        ];
        let amis: BTreeSet<String> = ["snap-ami".to_owned()].into();
        let plan = plan_purge(&snapshots, &amis, now());

        assert_eq!(
            ids(&plan.delete),
            ["snap-b1", "snap-a4", "snap-a1", "snap-a2", "snap-edge"]
        );
        assert_eq!(ids(&plan.kept_newest), ["snap-b2", "snap-b3"]);
        assert_eq!(plan.in_use.len(), 1);
        assert_eq!(plan.in_use[0].snapshot_id, "snap-ami");
        assert_eq!(plan.pending, ["snap-p"]);
        assert_eq!(plan.not_expired, 1);
        assert_eq!(plan.managed, 13);
        let invalid: Vec<(&str, &str)> = plan
            .invalid
            .iter()
            .map(|s| (s.snapshot_id.as_str(), s.reason.as_str()))
            .collect();
        assert_eq!(invalid.len(), 3);
        assert!(invalid[0].0 == "snap-anon" && invalid[0].1.contains("ninelives:name"));
        assert!(invalid[1].0 == "snap-bad" && invalid[1].1.contains("\"soon\""));
        assert!(invalid[2].0 == "snap-none" && invalid[2].1.contains("never expires"));
    }

    #[test]
    fn snapshots_marked_invalid_never_count_and_go_when_expired() {
        let mut bad_new = snap("snap-bad-new", "a", "main", 0, -1);
        bad_new
            .tags
            .insert(tags::INVALID.into(), "backup mode did not end".into());
        let mut bad_fresh = snap("snap-bad-fresh", "a", "main", 0, 3);
        bad_fresh.tags.insert(tags::INVALID.into(), "stray".into());
        let mut stray = snap("snap-stray", "a", "main", 0, -1);
        stray.tags.remove(tags::NAME);
        stray
            .tags
            .insert(tags::INVALID.into(), "volume attached during the run".into());
        let snapshots = vec![snap("snap-1", "a", "main", 5, -2), bad_new, bad_fresh, stray];
        let plan = plan_purge(&snapshots, &BTreeSet::new(), now());
        assert_eq!(
            ids(&plan.kept_newest),
            ["snap-1"],
            "an invalid snapshot is never the newest"
        );
        assert_eq!(ids(&plan.delete), ["snap-bad-new", "snap-stray"]);
        assert_eq!(plan.not_expired, 1);
    }

    #[test]
    fn newest_is_by_start_time_among_completed_only() {
        let mut newest_pending = snap("snap-3", "a", "main", 0, -1);
        newest_pending.state = SnapshotState::Pending;
        let mut errored = snap("snap-4", "a", "main", 0, -1);
        errored.state = SnapshotState::Error;
        let snapshots = vec![
            snap("snap-1", "a", "main", 9, -2),
            snap("snap-2", "a", "main", 5, -1),
            newest_pending,
            errored,
        ];
        let plan = plan_purge(&snapshots, &BTreeSet::new(), now());
        assert_eq!(ids(&plan.kept_newest), ["snap-2"]);
        // The errored snapshot is useless and expired: it goes.
        assert_eq!(ids(&plan.delete), ["snap-1", "snap-4"]);
    }

    fn fake_with(snapshots: Vec<Snapshot>) -> FakeEc2 {
        FakeEc2::with(|s| {
            for snap in snapshots {
                s.snapshots.insert(snap.id.clone(), snap);
            }
        })
    }

    fn expired_fleet(n: usize) -> Vec<Snapshot> {
        let mut v: Vec<Snapshot> = (0..n)
            .map(|i| {
                snap(
                    &format!("snap-{i:05}"),
                    "c",
                    "main",
                    100 + i as i64,
                    -1 - i as i64,
                )
            })
            .collect();
        // The newest completed snapshot has expired too: it stays.
        v.push(snap("snap-newest", "c", "main", 1, -1));
        // An older one (another tier) that has not expired yet.
        v.push(snap("snap-fresh", "c", "main", 5, 6));
        v
    }

    fn run(dry_run: bool, rate: f64) -> PurgeRun {
        PurgeRun {
            now: now(),
            dry_run,
            deletes_per_second: rate,
            concurrency: 8,
        }
    }

    fn remaining_ids(ec2: &FakeEc2) -> Vec<String> {
        ec2.snapshots().into_iter().map(|s| s.id).collect()
    }

    #[tokio::test]
    async fn purge_deletes_exactly_the_plan_and_a_rerun_does_nothing() {
        let ec2 = fake_with(expired_fleet(30));
        let deadline = Deadline::after(Duration::from_secs(900));
        let summary = purge(&ec2, &run(false, 0.0), &deadline).await.unwrap();
        assert!(summary.complete);
        assert_eq!(summary.deleted.len(), 30);
        assert_eq!(remaining_ids(&ec2), ["snap-fresh", "snap-newest"]);
        assert_eq!(ids(&summary.kept_newest), ["snap-newest"]);

        let again = purge(&ec2, &run(false, 0.0), &deadline).await.unwrap();
        assert!(again.deleted.is_empty() && again.already_gone.is_empty());
        assert_eq!(ec2.calls("DeleteSnapshot"), 30);
    }

    #[tokio::test]
    async fn dry_run_lists_and_deletes_nothing() {
        let ec2 = fake_with(expired_fleet(5));
        let summary = purge(&ec2, &run(true, 0.0), &Deadline::after(Duration::from_secs(60)))
            .await
            .unwrap();
        assert_eq!(summary.would_delete.len(), 5);
        assert!(summary.deleted.is_empty());
        assert_eq!(ec2.calls("DeleteSnapshot"), 0);
        assert_eq!(ec2.snapshots().len(), 7);
    }

    #[tokio::test(start_paused = true)]
    async fn deadline_stops_a_paced_purge_and_the_next_run_finishes_without_repeats() {
        let ec2 = fake_with(expired_fleet(40));
        // 10 deletions a second; stop starting new ones after 2 s.
        let start = Instant::now();
        let deadline = Deadline::at(
            start + Duration::from_millis(2050),
            start + Duration::from_secs(3),
        );
        let mut first = purge(&ec2, &run(false, 10.0), &deadline).await.unwrap();
        assert!(!first.complete);
        assert_eq!(first.deleted.len(), 21, "slots at 0, 0.1, ... 2.0 s");
        assert_eq!(first.remaining.len(), 19);
        assert!(
            first.take_outcome_error().is_none(),
            "running out of time is not a failure"
        );

        let second = purge(
            &ec2,
            &run(false, 10.0),
            &Deadline::after(Duration::from_secs(900)),
        )
        .await
        .unwrap();
        assert!(second.complete);
        assert_eq!(second.deleted.len(), 19);
        assert!(second.already_gone.is_empty());
        assert_eq!(ec2.calls("DeleteSnapshot"), 40, "no snapshot was deleted twice");
        assert_eq!(remaining_ids(&ec2), ["snap-fresh", "snap-newest"]);
    }

    #[tokio::test]
    async fn in_use_and_failures_are_reported_not_fatal() {
        let ec2 = fake_with(expired_fleet(6));
        {
            let mut s = ec2.state.lock().unwrap();
            s.in_use.insert("snap-00001".into());
            s.fail_deletes.insert("snap-00002".into());
        }
        let mut summary = purge(&ec2, &run(false, 0.0), &Deadline::after(Duration::from_secs(60)))
            .await
            .unwrap();
        assert_eq!(summary.deleted.len(), 4);
        assert_eq!(summary.in_use[0].snapshot_id, "snap-00001");
        assert_eq!(summary.failed[0].snapshot_id, "snap-00002");
        assert!(!summary.complete);
        let err = summary.take_outcome_error().unwrap();
        assert!(err.to_string().contains("1 of 5 deletions failed"), "{err}");
        assert!(
            err.to_string().contains("injected failure: snap-00002"),
            "the cause is kept: {err}"
        );
        assert!(err.is_retryable());
    }

    #[tokio::test]
    async fn concurrent_purges_delete_each_snapshot_once() {
        let mut ec2 = fake_with(expired_fleet(25));
        ec2.latency = Duration::from_millis(1);
        let (r, d) = (run(false, 0.0), Deadline::after(Duration::from_secs(60)));
        let (a, b) = tokio::join!(purge(&ec2, &r, &d), purge(&ec2, &r, &d));
        let (a, b) = (a.unwrap(), b.unwrap());
        let mut deleted: Vec<String> = a.deleted.iter().chain(&b.deleted).cloned().collect();
        deleted.sort();
        deleted.dedup();
        assert_eq!(
            deleted.len(),
            a.deleted.len() + b.deleted.len(),
            "nothing reported deleted twice"
        );
        assert_eq!(deleted.len(), 25);
        assert_eq!(a.already_gone.len() + b.already_gone.len(), 25);
        assert!(a.failed.is_empty() && b.failed.is_empty());
        assert_eq!(remaining_ids(&ec2), ["snap-fresh", "snap-newest"]);
    }

    #[tokio::test]
    async fn deletions_in_flight_never_exceed_the_concurrency() {
        let mut ec2 = fake_with(expired_fleet(40));
        ec2.latency = Duration::from_millis(2);
        let mut r = run(false, 0.0);
        r.concurrency = 3;
        let summary = purge(&ec2, &r, &Deadline::after(Duration::from_secs(60)))
            .await
            .unwrap();
        assert_eq!(summary.deleted.len(), 40);
        assert_eq!(ec2.peak_deletes.load(std::sync::atomic::Ordering::SeqCst), 3);
    }

    #[test]
    fn the_newest_set_stays_whole() {
        // main and ts1 were taken together (set s1) and are both the
        // newest; ts1 also has a later single snapshot, so s1's ts1 member is
        // not ts1's newest, but it stays as main's set-mate.
        let with_set = |mut s: Snapshot, set: &str| {
            s.tags.insert(tags::SET.into(), set.into());
            s
        };
        let snapshots = vec![
            with_set(snap("snap-m1", "c", "main", 3, -1), "s1"),
            with_set(snap("snap-t1", "c", "ts1", 3, -1), "s1"),
            with_set(snap("snap-t2", "c", "ts1", 2, -1), "s2"),
            with_set(snap("snap-m0", "c", "main", 9, -5), "s0"),
            with_set(snap("snap-t0", "c", "ts1", 9, -5), "s0"),
        ];
        let plan = plan_purge(&snapshots, &BTreeSet::new(), now());
        assert_eq!(ids(&plan.kept_newest), ["snap-m1", "snap-t1", "snap-t2"]);
        assert_eq!(ids(&plan.delete), ["snap-m0", "snap-t0"]);
    }
}
