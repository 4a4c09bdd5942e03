//! A snapshot run: every tagged volume gets one snapshot for the run's tier
//! and period, tagged for retention and restore.
//!
//! Idempotency. The key is (volume, tier, period), written on the snapshot
//! as tags. Before creating, the run lists what its period already has; a
//! group of volumes is done when one complete snapshot set holds all of
//! them (`dedupe`), otherwise the whole group is taken again, so a
//! redelivered event, an async retry or a rerun after a deadline finish the
//! job without a second snapshot, and a group's volumes always have one
//! crash-consistent set. Deliveries that race each other can both create;
//! every run then lists again and removes duplicate sets, whole.
//!
//! A group in application backup mode (`AppHooks::supports` its
//! `ninelives:app`) is done only by a set that proves the backup
//! (`AppHooks::proves_backup`: for PostgreSQL, the backup label). A run cut
//! off between the snapshot call and tagging (the deadline, a Lambda that
//! died) leaves snapshots without it, taken in a backup the server then
//! aborted; they do not count, the group is taken again, and once it has a
//! set that counts they are removed (`not_backups_removed`). Only
//! snapshots of this tier and period, made by ninelives, of the group's own
//! volumes are ever removed so.
//!
//! Failure of one group never stops the others: it is reported, and the
//! run's outcome is an error so that Lambda's retry of the same event (same
//! period) takes exactly what is missing.

use std::collections::{BTreeSet, HashMap};
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use chrono::{DateTime, Utc};
use futures::StreamExt;
use serde::Serialize;

use super::dedupe;
use super::hooks::AppHooks;
use super::model::{
    DeleteOutcome, InstanceDisks, MultiSnapshot, SingleSnapshot, Snapshot, SnapshotQuery, Tags,
};
use super::ports::BackupApi;
use super::select::{Group, Skipped, Target, select};
use super::tier::{Retention, Tier, format_time};
use crate::error::Error;
use crate::function::Summary;
use crate::invocation::Deadline;
use crate::tags;

/// Groups snapshotted at once. The SDK retries throttles; four keeps a run
/// of hundreds of volumes to tens of seconds without bursting.
pub const CONCURRENCY: usize = 4;

/// EC2's limits: description characters, tag value characters, and volume
/// ids `CreateSnapshots` can exclude.
const MAX_DESCRIPTION: usize = 255;
const MAX_TAG_VALUE: usize = 256;
const MAX_EXCLUDED: usize = 40;

/// EC2 refuses a second snapshot of a volume within about 15 seconds
/// (`SnapshotCreationPerVolumeRateExceeded`), which happens when several
/// tiers' schedules fire at the same minute. Wait this long between tries.
const PER_VOLUME_WAIT: Duration = Duration::from_secs(15);
const PER_VOLUME_TRIES: u32 = 4;

/// What one run is asked to do.
#[derive(Debug, Clone)]
pub struct SnapshotRun {
    pub tier: Tier,
    /// The event's time: period and expiry derive from it, so every delivery
    /// of one event computes the same key and the same tags.
    pub time: DateTime<Utc>,
    /// Whether `time` came from the event. Without it (plain constant
    /// input) a retry of this request continues the period its earlier
    /// attempt started, found by the request id.
    pub time_from_event: bool,
    pub retention: Retention,
    /// Lambda's request id (shared by Lambda's retries of one event).
    pub run_id: String,
    pub dry_run: bool,
}

impl SnapshotRun {
    pub fn period(&self) -> String {
        self.tier.period(self.time)
    }

    pub fn expires_at(&self) -> String {
        format_time(self.retention.expires_at(self.tier, self.time))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Method {
    CreateSnapshot,
    CreateSnapshots,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Created {
    pub snapshot_id: String,
    #[serde(flatten)]
    pub target: Target,
    pub method: Method,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Planned {
    #[serde(flatten)]
    pub target: Target,
    pub method: Method,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Existing {
    pub volume_id: String,
    pub snapshot_id: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Failed {
    pub volume_ids: Vec<String>,
    pub error: String,
    pub error_type: String,
}

/// The JSON result of a snapshot run.
#[derive(Debug, Serialize)]
pub struct SnapshotSummary {
    pub function: &'static str,
    pub tier: Tier,
    pub period: String,
    pub expires_at: String,
    pub dry_run: bool,
    /// Every selected volume has its snapshot for this period.
    pub complete: bool,
    pub created: Vec<Created>,
    /// Dry run only: what a real run would create.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub would_create: Vec<Planned>,
    /// Volumes that already had their snapshot for this period.
    pub already_done: Vec<Existing>,
    pub skipped: Vec<Skipped>,
    pub failed: Vec<Failed>,
    /// Volumes not started because the invocation's deadline was near.
    pub not_started: Vec<String>,
    /// Duplicate snapshots of this period removed (made by a racing run).
    pub duplicates_removed: Vec<String>,
    /// Snapshots of this period whose per-volume tags were missing and added.
    pub tags_repaired: Vec<String>,
    /// Snapshots of this period of volumes in backup mode that lacked its
    /// proof (their run was cut off before backup mode ended), removed
    /// once the volume had a snapshot that has it.
    pub not_backups_removed: Vec<String>,
    pub notes: Vec<String>,
    /// The errors behind `failed`, causes intact, for the outcome.
    #[serde(skip)]
    pub errors: Vec<Error>,
}

impl SnapshotSummary {
    fn new(run: &SnapshotRun) -> Self {
        SnapshotSummary {
            function: "snapshot-volumes",
            tier: run.tier,
            period: run.period(),
            expires_at: run.expires_at(),
            dry_run: run.dry_run,
            complete: false,
            created: Vec::new(),
            would_create: Vec::new(),
            already_done: Vec::new(),
            skipped: Vec::new(),
            failed: Vec::new(),
            not_started: Vec::new(),
            duplicates_removed: Vec::new(),
            tags_repaired: Vec::new(),
            not_backups_removed: Vec::new(),
            notes: Vec::new(),
            errors: Vec::new(),
        }
    }

    /// Volumes that failed, each counted once.
    fn failed_volumes(&self) -> usize {
        self.failed
            .iter()
            .flat_map(|f| f.volume_ids.iter())
            .collect::<BTreeSet<_>>()
            .len()
    }

    fn fail(&mut self, volume_ids: Vec<String>, err: Error) {
        tracing::error!(volume_ids = ?volume_ids, error = %err, "snapshot failed");
        self.failed.push(Failed {
            volume_ids,
            error: err.to_string(),
            error_type: err.error_type(),
        });
        self.errors.push(err);
    }
}

impl Summary for SnapshotSummary {
    /// One line for a notification subject.
    fn headline(&self) -> String {
        let (verb, n) = if self.dry_run {
            ("would create", self.would_create.len())
        } else {
            ("created", self.created.len())
        };
        let mut s = format!("{} {}: {verb} {n} snapshots", self.tier, self.period);
        let failed = self.failed_volumes();
        if failed > 0 {
            s.push_str(&format!(", {failed} failed"));
        }
        if !self.not_started.is_empty() {
            s.push_str(&format!(", {} left", self.not_started.len()));
        }
        s
    }

    /// Whether the run changed something worth telling.
    fn changed(&self) -> bool {
        !self.dry_run
            && (!self.created.is_empty()
                || !self.failed.is_empty()
                || !self.not_started.is_empty()
                || !self.duplicates_removed.is_empty()
                || !self.not_backups_removed.is_empty())
    }

    /// The error a function reports when the run did not finish, so that
    /// Lambda's retry (same event, same period) completes it. Takes the
    /// kept errors.
    fn take_outcome_error(&mut self) -> Option<Error> {
        if !self.errors.is_empty() {
            let errors = std::mem::take(&mut self.errors);
            let failed = self.failed_volumes();
            let retryable = errors.iter().any(Error::is_retryable);
            let first = errors.into_iter().next().map(Box::new)?;
            let created: BTreeSet<&str> = self.created.iter().map(|c| c.target.volume_id.as_str()).collect();
            let attempted = self
                .failed
                .iter()
                .flat_map(|f| f.volume_ids.iter().map(String::as_str))
                .chain(created)
                .collect::<BTreeSet<_>>()
                .len();
            return Some(Error::Partial {
                what: "volumes",
                failed,
                attempted,
                retryable,
                first,
            });
        }
        if !self.not_started.is_empty() {
            return Some(Error::Incomplete {
                detail: format!(
                    "deadline reached with {} volumes not yet snapshotted; a retry of this event takes them",
                    self.not_started.len()
                ),
                retryable: true,
            });
        }
        None
    }
}

/// Runs one snapshot run.
pub async fn take_snapshots<A: BackupApi, H: AppHooks>(
    api: &A,
    hooks: &H,
    run: &SnapshotRun,
    deadline: &Deadline,
) -> Result<SnapshotSummary, Error> {
    let mut summary = SnapshotSummary::new(run);
    if !run.time_from_event {
        continue_earlier_attempt(api, run, deadline, &mut summary).await?;
    }
    let query = period_query(run.tier, &summary.period);

    // The two listings do not depend on each other: one round trip, not
    // two. The first to fail ends the run (and drops the other call).
    let (volumes, existing) = futures::try_join!(
        deadline.within("ec2:DescribeVolumes", api.tagged_volumes()),
        deadline.within("ec2:DescribeSnapshots", api.managed_snapshots(&query)),
    )?;
    let selection = select(&volumes);
    for skip in &selection.skipped {
        tracing::warn!(volume_id = %skip.volume_id, kind = ?skip.kind, reason = %skip.reason, "volume skipped");
    }
    summary.skipped = selection.skipped;

    let groups = selection.groups;
    // Volumes in backup mode count only a snapshot that proves it.
    let hooked: HashMap<&str, &Group> = groups
        .iter()
        .filter(|g| g.app().is_some_and(|app| hooks.supports(app)))
        .flat_map(|g| g.targets.iter().map(move |t| (t.volume_id.as_str(), g)))
        .collect();
    let counts = |s: &Snapshot| {
        dedupe::source_volume(s)
            .and_then(|v| hooked.get(v))
            .is_none_or(|g| hooks.proves_backup(g, &s.tags))
    };

    let targets: HashMap<&str, &Target> = groups
        .iter()
        .flat_map(|g| g.targets.iter())
        .map(|t| (t.volume_id.as_str(), t))
        .collect();
    for (snapshot, tags) in missing_volume_tags(&existing, &targets) {
        if run.dry_run {
            summary
                .notes
                .push(format!("would add the missing per-volume tags to {snapshot}"));
            continue;
        }
        if deadline.should_stop() {
            break;
        }
        match api.tag_snapshots(std::slice::from_ref(&snapshot), &tags).await {
            Ok(()) => summary.tags_repaired.push(snapshot),
            Err(err) => summary
                .notes
                .push(format!("could not add the missing tags to {snapshot}: {err}")),
        }
    }

    let sets = dedupe::ranked_sets_where(&existing, counts);
    let mut pending: Vec<Group> = Vec::new();
    for group in &groups {
        match dedupe::covering(&sets, &group.volume_ids()) {
            Some(set) => {
                for target in &group.targets {
                    if let Some(snapshot) = set.members.get(target.volume_id.as_str()) {
                        summary.already_done.push(Existing {
                            snapshot_id: snapshot.id.clone(),
                            volume_id: target.volume_id.clone(),
                        });
                    }
                }
            }
            None => pending.push(group.clone()),
        }
    }
    let not_backups = not_backups(&existing, &hooked, counts, run.tier, &summary.period);

    for group in &pending {
        if let Some(app) = group.app()
            && !hooks.supports(app)
        {
            summary.notes.push(format!(
                "{}={app} on {}: no backup-mode hook for {app} in this build; the snapshot is crash-consistent only",
                tags::APP,
                group.volume_ids().join(",")
            ));
        }
    }

    if run.dry_run {
        for (volume, id) in &not_backups {
            summary.notes.push(format!(
                "{id} of {volume} was taken outside its backup mode; it does not count, and would be removed once replaced"
            ));
        }
        for group in pending {
            let method = if group.is_multi_volume() {
                Method::CreateSnapshots
            } else {
                Method::CreateSnapshot
            };
            summary
                .would_create
                .extend(group.targets.into_iter().map(|target| Planned { target, method }));
        }
        summary.complete = true;
        return Ok(summary);
    }

    let multi_instances: Vec<String> = pending
        .iter()
        .filter(|g| g.is_multi_volume())
        .filter_map(|g| g.instance_id.clone())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let mut disks: HashMap<String, InstanceDisks> = HashMap::new();
    if !multi_instances.is_empty() {
        match deadline
            .within("ec2:DescribeInstances", api.instance_disks(&multi_instances))
            .await
        {
            Ok(found) => disks.extend(found.into_iter().map(|d| (d.instance_id.clone(), d))),
            Err(err) => summary.notes.push(format!(
                "could not describe instances {}: {err}; their volumes are taken one by one",
                multi_instances.join(",")
            )),
        }
    }

    let common = CommonTags {
        tier: run.tier,
        period: &summary.period,
        expires_at: &summary.expires_at,
        run_id: &run.run_id,
    };
    let outcomes: Vec<GroupOutcome> = futures::stream::iter(pending)
        .map(|group| {
            let disks = group.instance_id.as_ref().and_then(|i| disks.get(i));
            snapshot_group(api, hooks, &common, group, disks, deadline)
        })
        .buffer_unordered(CONCURRENCY)
        .collect()
        .await;
    for outcome in outcomes {
        summary.created.extend(outcome.created);
        summary.not_started.extend(outcome.not_started);
        summary.notes.extend(outcome.notes);
        for (volumes, err) in outcome.failures {
            summary.fail(volumes, err);
        }
    }
    summary
        .created
        .sort_by(|a, b| a.target.volume_id.cmp(&b.target.volume_id));
    summary.not_started.sort();

    remove_duplicates(api, &query, deadline, counts, &targets, &mut summary).await;
    remove_not_backups(api, &not_backups, deadline, &mut summary).await;
    summary.complete = summary.failed.is_empty() && summary.not_started.is_empty();
    Ok(summary)
}

/// Without a time in the event, a retry of this request (same request id)
/// would otherwise fall into the next hour or day; continue the period the
/// earlier attempt wrote on its snapshots instead.
async fn continue_earlier_attempt<A: BackupApi>(
    api: &A,
    run: &SnapshotRun,
    deadline: &Deadline,
    summary: &mut SnapshotSummary,
) -> Result<(), Error> {
    let query = SnapshotQuery {
        tags: vec![
            (tags::TIER, run.tier.as_str().to_owned()),
            (tags::RUN, run.run_id.clone()),
        ],
    };
    let earlier = deadline
        .within("ec2:DescribeSnapshots", api.managed_snapshots(&query))
        .await?;
    let found = earlier
        .iter()
        .filter_map(|s| Some((s.tag(tags::PERIOD)?, s.tag(tags::EXPIRES_AT)?)))
        .min();
    if let Some((period, expires_at)) = found
        && period != summary.period
    {
        summary.notes.push(format!(
            "continuing period {period} started by an earlier attempt of this request"
        ));
        summary.period = period.to_owned();
        summary.expires_at = expires_at.to_owned();
    }
    Ok(())
}

fn period_query(tier: Tier, period: &str) -> SnapshotQuery {
    SnapshotQuery {
        tags: vec![
            (tags::TIER, tier.as_str().to_owned()),
            (tags::PERIOD, period.to_owned()),
        ],
    }
}

/// Live snapshots of the period that lack a per-volume tag (a run stopped
/// between `CreateSnapshots` and `CreateTags`), with the tags they should
/// have.
fn missing_volume_tags(existing: &[Snapshot], targets: &HashMap<&str, &Target>) -> Vec<(String, Tags)> {
    existing
        .iter()
        .filter(|s| dedupe::source_volume(s).is_some())
        .filter(|s| s.tag(tags::NAME).is_none() || s.tag(tags::VOLUME_ID).is_none())
        .filter_map(|s| {
            let target = targets.get(s.volume_id.as_deref()?)?;
            let tier = s.tag(tags::TIER).unwrap_or_default();
            let period = s.tag(tags::PERIOD).unwrap_or_default();
            Some((s.id.clone(), volume_tags(target, tier, period)))
        })
        .collect()
}

/// Snapshots of the period, made by a snapshot run, of volumes in backup
/// mode, that do not prove it (`counts` says no): `(volume, snapshot id)`.
/// The tags are checked here again, whatever the listing was asked for:
/// these are deleted.
fn not_backups<'s>(
    existing: &'s [Snapshot],
    hooked: &HashMap<&str, &Group>,
    counts: impl Fn(&Snapshot) -> bool,
    tier: Tier,
    period: &str,
) -> Vec<(&'s str, &'s str)> {
    existing
        .iter()
        .filter(|s| {
            s.tag(tags::MANAGED_BY) == Some(tags::MANAGED_BY_VALUE)
                && s.tag(tags::TIER) == Some(tier.as_str())
                && s.tag(tags::PERIOD) == Some(period)
        })
        .filter_map(|s| {
            let volume = dedupe::source_volume(s)?;
            (hooked.contains_key(volume) && !counts(s)).then_some((volume, s.id.as_str()))
        })
        .collect()
}

/// Removes the snapshots that do not prove their backup mode, of the
/// volumes that now have one that does (made by this run or found). Until
/// then one is kept: it does not count, but it is the only copy of the
/// volume for the period if the node stays down. Never fails the run.
async fn remove_not_backups<A: BackupApi>(
    api: &A,
    not_backups: &[(&str, &str)],
    deadline: &Deadline,
    summary: &mut SnapshotSummary,
) {
    let replaced: BTreeSet<String> = summary
        .created
        .iter()
        .map(|c| c.target.volume_id.clone())
        .chain(summary.already_done.iter().map(|e| e.volume_id.clone()))
        .collect();
    for &(volume, id) in not_backups {
        if !replaced.contains(volume) {
            summary.notes.push(format!(
                "{id} of {volume} was taken outside its backup mode; it does not count, and is removed once replaced"
            ));
            continue;
        }
        if deadline.should_stop() {
            summary.notes.push(format!(
                "deadline reached; {id} of {volume}, taken outside its backup mode, is left for the next run"
            ));
            continue;
        }
        match discard(api, id, "taken outside its backup mode", LISTED).await {
            Ok(()) => {
                tracing::info!(snapshot_id = %id, volume_id = %volume, "snapshot taken outside backup mode removed");
                summary.not_backups_removed.push(id.to_owned());
            }
            Err(why) => summary.notes.push(format!(
                "{id} of {volume} was taken outside its backup mode: {why}"
            )),
        }
    }
}

/// Lists the period again and removes duplicate sets (among the snapshots
/// that count). Never fails the run: what it cannot do is noted and left
/// for the next delivery.
async fn remove_duplicates<A: BackupApi>(
    api: &A,
    query: &SnapshotQuery,
    deadline: &Deadline,
    counts: impl Fn(&Snapshot) -> bool + Copy,
    targets: &HashMap<&str, &Target>,
    summary: &mut SnapshotSummary,
) {
    let after = match deadline
        .within("ec2:DescribeSnapshots", api.managed_snapshots(query))
        .await
    {
        Ok(after) => after,
        Err(err) => {
            summary
                .notes
                .push(format!("could not check for duplicate snapshots: {err}"));
            return;
        }
    };
    for id in dedupe::duplicates_where(&after, counts) {
        if deadline.should_stop() {
            summary
                .notes
                .push("deadline reached; remaining duplicates are left for the next run".into());
            break;
        }
        match api.delete_snapshot(&id).await {
            Ok(DeleteOutcome::Deleted | DeleteOutcome::NotFound) => {
                tracing::info!(snapshot_id = %id, "duplicate snapshot of this period removed");
                summary.duplicates_removed.push(id);
            }
            Ok(DeleteOutcome::InUse(why)) => summary
                .notes
                .push(format!("duplicate {id} could not be removed: {why}")),
            Err(err) => summary
                .notes
                .push(format!("duplicate {id} could not be removed: {err}")),
        }
    }
    let removed: BTreeSet<&String> = summary.duplicates_removed.iter().collect();
    let (kept, superseded): (Vec<Created>, Vec<Created>) = std::mem::take(&mut summary.created)
        .into_iter()
        .partition(|c| !removed.contains(&c.snapshot_id));
    let sets = dedupe::ranked_sets_where(&after, counts);
    for c in superseded {
        let survivor = sets
            .iter()
            .filter(|s| s.members.values().all(|m| !removed.contains(&m.id)))
            .find_map(|s| s.members.get(c.target.volume_id.as_str()));
        match survivor {
            Some(s) => {
                summary.notes.push(format!(
                    "{} of {} was removed in favour of a racing run's {}",
                    c.snapshot_id, c.target.volume_id, s.id
                ));
                summary.already_done.push(Existing {
                    snapshot_id: s.id.clone(),
                    volume_id: c.target.volume_id,
                });
            }
            None => summary.notes.push(format!(
                "{} of {} was removed in favour of a racing run's snapshot",
                c.snapshot_id, c.target.volume_id
            )),
        }
    }
    summary.created = kept;

    // CreateSnapshot(s) has no idempotency token: when EC2 made the
    // snapshots but the response was lost, the SDK's retry made a second
    // copy with the same set token, and this run tagged only the copy it
    // heard of. The clean-up above keeps each set's earliest copy, which
    // can be the untagged one; give the survivors their per-volume tags
    // now (the next delivery would, but the run succeeded: there is none).
    let survivors: Vec<Snapshot> = after.into_iter().filter(|s| !removed.contains(&s.id)).collect();
    for (snapshot, tags) in missing_volume_tags(&survivors, targets) {
        if deadline.should_stop() {
            summary.notes.push(format!(
                "deadline reached; {snapshot} keeps its missing tags for the next delivery"
            ));
            break;
        }
        match api.tag_snapshots(std::slice::from_ref(&snapshot), &tags).await {
            Ok(()) => summary.tags_repaired.push(snapshot),
            Err(err) => summary
                .notes
                .push(format!("could not add the missing tags to {snapshot}: {err}")),
        }
    }
}

struct CommonTags<'a> {
    tier: Tier,
    period: &'a str,
    expires_at: &'a str,
    run_id: &'a str,
}

impl CommonTags<'_> {
    /// Tags every snapshot of one create call gets.
    fn tags(&self, cluster: &str, instance_id: Option<&str>, set: &str, set_size: usize) -> Tags {
        let mut t = Tags::new();
        t.insert(tags::MANAGED_BY.into(), tags::MANAGED_BY_VALUE.into());
        t.insert(tags::CLUSTER.into(), cluster.into());
        t.insert(tags::TIER.into(), self.tier.as_str().into());
        t.insert(tags::PERIOD.into(), self.period.into());
        t.insert(tags::EXPIRES_AT.into(), self.expires_at.into());
        t.insert(tags::RUN.into(), self.run_id.into());
        t.insert(tags::SET.into(), set.into());
        t.insert(tags::SET_SIZE.into(), set_size.to_string());
        if let Some(instance) = instance_id {
            t.insert(tags::INSTANCE_ID.into(), instance.into());
        }
        t
    }
}

/// A token unique to one create call: the run id (shared by Lambda's retries
/// of an event, and by the messages of one SQS batch) plus the time and a
/// process-wide counter.
fn new_set_token(run_id: &str) -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    clip(format!("{run_id}/{nanos:x}-{n}"), MAX_TAG_VALUE)
}

/// The tags that differ per volume. `Name` is for people in the console.
fn volume_tags(target: &Target, tier: &str, period: &str) -> Tags {
    let mut t = Tags::new();
    t.insert(tags::CLUSTER.into(), target.cluster.clone());
    t.insert(tags::NAME.into(), target.name.clone());
    t.insert(tags::VOLUME_ID.into(), target.volume_id.clone());
    t.insert(
        "Name".into(),
        clip(
            format!("{}/{} {tier} {period}", target.cluster, target.name),
            MAX_TAG_VALUE,
        ),
    );
    t
}

/// `text` cut to `max` characters.
fn clip(mut text: String, max: usize) -> String {
    if let Some((cut, _)) = text.char_indices().nth(max) {
        text.truncate(cut);
    }
    text
}

#[derive(Default)]
struct GroupOutcome {
    created: Vec<Created>,
    failures: Vec<(Vec<String>, Error)>,
    not_started: Vec<String>,
    notes: Vec<String>,
    /// Snapshots of volumes attached mid-run, to be removed.
    strays: Vec<(String, String)>,
}

impl GroupOutcome {
    /// Volumes of `group` with neither a snapshot nor a failure yet.
    fn unaccounted(&self, group: &Group) -> Vec<String> {
        group
            .volume_ids()
            .into_iter()
            .filter(|v| {
                !self.created.iter().any(|c| &c.target.volume_id == v)
                    && !self.failures.iter().any(|(vs, _)| vs.contains(v))
            })
            .collect()
    }
}

async fn snapshot_group<A: BackupApi, H: AppHooks>(
    api: &A,
    hooks: &H,
    common: &CommonTags<'_>,
    group: Group,
    disks: Option<&InstanceDisks>,
    deadline: &Deadline,
) -> GroupOutcome {
    let mut out = GroupOutcome::default();
    if deadline.should_stop() {
        out.not_started = group.volume_ids();
        return out;
    }
    let hooked = group.app().is_some_and(|app| hooks.supports(app));
    let guard = if hooked {
        match deadline
            .within("the application's backup start", hooks.before(&group))
            .await
        {
            Ok(guard) => Some(guard),
            Err(err) => {
                out.failures.push((group.volume_ids(), err));
                return out;
            }
        }
    } else {
        None
    };

    if deadline
        .bound(start_group(api, common, &group, disks, deadline, &mut out))
        .await
        .is_none()
    {
        let cut = out.unaccounted(&group);
        if !cut.is_empty() {
            out.failures.push((
                cut,
                Error::Incomplete {
                    detail:
                        "the invocation's deadline cut the snapshot call short; a retry finds or makes it"
                            .into(),
                    retryable: true,
                },
            ));
        }
    }

    // End backup mode as soon as the point in time is set, before any
    // tagging or clean-up.
    if let Some(guard) = guard {
        let ids: Vec<String> = out.created.iter().map(|c| c.snapshot_id.clone()).collect();
        let ended = match deadline
            .within("the application's backup stop", hooks.after(&group, guard, &ids))
            .await
        {
            Ok(extra) if !extra.is_empty() && !ids.is_empty() => api.tag_snapshots(&ids, &extra).await,
            Ok(_) => Ok(()),
            Err(err) => Err(err),
        };
        if let Err(err) = ended {
            // Without a completed backup mode the snapshots are not valid
            // backups; remove them so the retry takes them again.
            for c in std::mem::take(&mut out.created) {
                if let Err(why) = discard_fresh(api, &c.snapshot_id, "its backup mode did not end").await {
                    out.notes
                        .push(format!("{} is not a valid backup: {why}", c.snapshot_id));
                }
            }
            let volumes = out.unaccounted(&group);
            out.failures.push((volumes, err));
            return out;
        }
    }

    finish_group(api, common, &group, &mut out).await;
    let missing = out.unaccounted(&group);
    if !missing.is_empty() {
        out.failures.push((
            missing,
            Error::Incomplete {
                detail: "EC2 started no snapshot for these volumes".into(),
                retryable: true,
            },
        ));
    }
    for c in &out.created {
        tracing::info!(
            snapshot_id = %c.snapshot_id,
            volume_id = %c.target.volume_id,
            cluster = %c.target.cluster,
            name = %c.target.name,
            method = ?c.method,
            "snapshot started"
        );
    }
    out
}

/// Retries a snapshot call that EC2 refused for the per-volume rate, while
/// the deadline allows.
async fn with_volume_rate_retry<T, F, Fut>(deadline: &Deadline, mut call: F) -> Result<T, Error>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, Error>>,
{
    let mut tries = 1;
    loop {
        match call().await {
            Err(err)
                if err.aws_code() == Some("SnapshotCreationPerVolumeRateExceeded")
                    && tries < PER_VOLUME_TRIES
                    && deadline.allows(PER_VOLUME_WAIT) =>
            {
                tracing::warn!(error = %err, "EC2's per-volume snapshot rate; waiting before the next try");
                tokio::time::sleep(PER_VOLUME_WAIT).await;
                tries += 1;
            }
            other => return other,
        }
    }
}

/// What `CreateSnapshots` must leave out to take exactly `group` from the
/// instance: whether the boot volume is excluded, and the other volumes.
fn exclusions<'a>(group: &Group, disks: &'a InstanceDisks) -> (bool, Vec<&'a str>) {
    let wanted: BTreeSet<&str> = group.targets.iter().map(|t| t.volume_id.as_str()).collect();
    let root = disks.root_volume_id();
    let exclude_boot = root.is_none_or(|r| !wanted.contains(r));
    let others = disks
        .volumes
        .iter()
        .map(|(_, id)| id.as_str())
        .filter(|id| !wanted.contains(id) && Some(*id) != root)
        .collect();
    (exclude_boot, others)
}

/// Starts the group's snapshot(s), recording into `out` as it goes (so what
/// was started before a deadline cut is still reported).
async fn start_group<A: BackupApi>(
    api: &A,
    common: &CommonTags<'_>,
    group: &Group,
    disks: Option<&InstanceDisks>,
    deadline: &Deadline,
    out: &mut GroupOutcome,
) {
    let multi = match (group.is_multi_volume(), group.instance_id.as_deref(), disks) {
        (false, _, _) | (true, None, _) => None,
        (true, Some(instance), None) => {
            out.notes.push(format!(
                "instance {instance} was not described; volumes {} were taken one by one, not as one crash-consistent set",
                group.volume_ids().join(",")
            ));
            None
        }
        (true, Some(instance), Some(disks)) => {
            let (exclude_boot, others) = exclusions(group, disks);
            if others.len() > MAX_EXCLUDED {
                out.notes.push(format!(
                    "instance {instance} has {} other volumes, more than CreateSnapshots can exclude; volumes {} were taken one by one",
                    others.len(),
                    group.volume_ids().join(",")
                ));
                None
            } else {
                Some((instance, exclude_boot, others))
            }
        }
    };
    let Some((instance, exclude_boot_volume, others)) = multi else {
        for target in &group.targets {
            let set = new_set_token(common.run_id);
            let mut tags = common.tags(&group.cluster, target.instance_id.as_deref(), &set, 1);
            tags.extend(volume_tags(target, common.tier.as_str(), common.period));
            let request = SingleSnapshot {
                volume_id: target.volume_id.clone(),
                description: clip(
                    format!(
                        "Backup of {} - for {}/{} - {} - expires {}",
                        target.volume_id, target.cluster, target.name, common.tier, common.expires_at
                    ),
                    MAX_DESCRIPTION,
                ),
                tags,
            };
            match with_volume_rate_retry(deadline, || api.create_snapshot(&request)).await {
                Ok(snapshot_id) => out.created.push(Created {
                    snapshot_id,
                    target: target.clone(),
                    method: Method::CreateSnapshot,
                }),
                Err(err) => out.failures.push((vec![target.volume_id.clone()], err)),
            }
        }
        return;
    };

    let set = new_set_token(common.run_id);
    let request = MultiSnapshot {
        instance_id: instance.to_owned(),
        exclude_boot_volume,
        exclude_volume_ids: others.into_iter().map(str::to_owned).collect(),
        description: clip(
            format!(
                "Backup of {instance} ({} volumes) - for {} - {} - expires {}",
                group.targets.len(),
                group.cluster,
                common.tier,
                common.expires_at
            ),
            MAX_DESCRIPTION,
        ),
        tags: common.tags(&group.cluster, Some(instance), &set, group.targets.len()),
    };
    match with_volume_rate_retry(deadline, || api.create_snapshots(&request)).await {
        Ok(started) => {
            for (volume_id, snapshot_id) in started {
                match group.targets.iter().find(|t| t.volume_id == volume_id) {
                    Some(target) => out.created.push(Created {
                        snapshot_id,
                        target: target.clone(),
                        method: Method::CreateSnapshots,
                    }),
                    None => out.strays.push((volume_id, snapshot_id)),
                }
            }
        }
        Err(err) => out.failures.push((group.volume_ids(), err)),
    }
}

/// After the point in time: removes strays and adds the per-volume tags a
/// `CreateSnapshots` set could not get at creation.
async fn finish_group<A: BackupApi>(api: &A, common: &CommonTags<'_>, group: &Group, out: &mut GroupOutcome) {
    let instance = group.instance_id.as_deref().unwrap_or("the instance");
    // A volume attached after the instance was described is not excluded
    // and gets a snapshot carrying this cluster's tags: remove it.
    for (volume_id, snapshot_id) in std::mem::take(&mut out.strays) {
        let note = match discard_fresh(api, &snapshot_id, "volume attached during the run").await {
            Ok(()) => format!(
                "{volume_id} was attached to {instance} during the run; its unwanted snapshot {snapshot_id} was removed"
            ),
            Err(why) => format!(
                "{volume_id} was attached to {instance} during the run; its unwanted snapshot {snapshot_id}: {why}"
            ),
        };
        out.notes.push(note);
    }
    let sets: Vec<Created> = out
        .created
        .iter()
        .filter(|c| c.method == Method::CreateSnapshots)
        .cloned()
        .collect();
    for c in sets {
        let tags = volume_tags(&c.target, common.tier.as_str(), common.period);
        if let Err(err) = api
            .tag_snapshots(std::slice::from_ref(&c.snapshot_id), &tags)
            .await
        {
            // The snapshot exists and holds the data; the next delivery of
            // this event adds the tags (see `missing_volume_tags`).
            out.notes.push(format!(
                "{} of {} is missing its per-volume tags ({err}); the next delivery adds them",
                c.snapshot_id, c.target.volume_id
            ));
            out.failures.push((vec![c.target.volume_id.clone()], err));
            out.created.retain(|x| x.snapshot_id != c.snapshot_id);
        }
    }
}

/// Seconds to wait before each delete of a snapshot this run has just
/// made: EC2's API is eventually consistent, and a fresh id can answer
/// "not found" for a few seconds, which then means "not yet", not "gone".
const FRESH: &[u64] = &[0, 1, 2, 4];
/// The same for a snapshot found in a listing: "not found" is "gone".
const LISTED: &[u64] = &[0];

/// Deletes a snapshot this run has just made that must not count.
async fn discard_fresh<A: BackupApi>(api: &A, snapshot_id: &str, why: &str) -> Result<(), String> {
    discard(api, snapshot_id, why, FRESH).await
}

/// Deletes a snapshot that must not count, trying after each of `waits`
/// seconds while EC2 answers "not found". If it cannot be deleted it is
/// tagged `ninelives:invalid`, so it never counts as a backup and purge
/// removes it when it expires.
async fn discard<A: BackupApi>(api: &A, snapshot_id: &str, why: &str, waits: &[u64]) -> Result<(), String> {
    let mut last = String::from("EC2 did not know it yet");
    for &wait in waits {
        tokio::time::sleep(Duration::from_secs(wait)).await;
        match api.delete_snapshot(snapshot_id).await {
            Ok(DeleteOutcome::Deleted) => return Ok(()),
            Ok(DeleteOutcome::NotFound) => {}
            Ok(DeleteOutcome::InUse(reason)) => {
                last = reason;
                break;
            }
            Err(err) => {
                last = err.to_string();
                break;
            }
        }
    }
    let mark: Tags = [(tags::INVALID.to_owned(), clip(why.to_owned(), MAX_TAG_VALUE))].into();
    match api.tag_snapshots(&[snapshot_id.to_owned()], &mark).await {
        Ok(()) => Err(format!(
            "could not be deleted ({last}); tagged {} so it never counts and is purged when it expires",
            tags::INVALID
        )),
        // Still unknown after the adapter's own waits: it does not exist.
        Err(err) if err.aws_code() == Some("InvalidSnapshot.NotFound") => Ok(()),
        Err(err) => Err(format!(
            "could not be deleted ({last}) nor tagged ({err}): delete it by hand"
        )),
    }
}

#[cfg(test)]
#[path = "tests/snapshot.rs"]
mod tests;
