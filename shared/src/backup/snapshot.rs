//! A snapshot run: every tagged volume gets one snapshot for the run's tier
//! and period, tagged for retention and restore.
//!
//! Idempotency. The key is (volume, tier, period), written on the snapshot
//! as tags. Before creating, the run lists what already exists for its tier
//! and period and takes only what is missing, so a redelivered event, an
//! async retry or a rerun after a deadline all finish the job without a
//! second snapshot. EC2 has no idempotency token for `CreateSnapshot(s)`, so
//! two runs racing each other can both create; afterwards each run lists
//! again and deletes, per volume, every snapshot but the one from the run
//! with the smallest run id. Every run applies the same rule, so they agree
//! on the survivor, and the survivor is never deleted by anyone.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use chrono::{DateTime, Utc};
use futures::StreamExt;
use serde::Serialize;

use super::hooks::AppHooks;
use super::model::{
    DeleteOutcome, InstanceDisks, MultiSnapshot, SingleSnapshot, Snapshot, SnapshotQuery, Tags,
};
use super::ports::BackupApi;
use super::select::{Group, Skipped, Target, select};
use super::tier::{Retention, Tier, format_time};
use crate::error::Error;
use crate::invocation::Deadline;
use crate::tags;

/// Groups snapshotted at once. EC2 limits concurrent snapshots per volume,
/// not per account, and the SDK retries throttles; four keeps a run of
/// hundreds of volumes to tens of seconds without bursting.
pub const CONCURRENCY: usize = 4;

/// EC2's limit on snapshot descriptions.
const MAX_DESCRIPTION: usize = 255;

/// What one run is asked to do.
#[derive(Debug, Clone)]
pub struct SnapshotRun {
    pub tier: Tier,
    /// The event's time: period and expiry derive from it, so every delivery
    /// of one event computes the same key and the same tags.
    pub time: DateTime<Utc>,
    pub retention: Retention,
    /// Unique per invocation (Lambda's request id).
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
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
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
    /// Extra snapshots of this period removed (made by a concurrent run).
    pub duplicates_removed: Vec<String>,
    /// Snapshots of this period whose per-volume tags were missing and added.
    pub tags_repaired: Vec<String>,
    pub notes: Vec<String>,
}

impl SnapshotSummary {
    /// One line for a notification subject.
    pub fn headline(&self) -> String {
        let verb = if self.dry_run { "would create" } else { "created" };
        let n = if self.dry_run {
            self.would_create.len()
        } else {
            self.created.len()
        };
        let mut s = format!("{} {}: {verb} {n} snapshots", self.tier, self.period);
        if !self.failed.is_empty() {
            s.push_str(&format!(", {} failed", self.failed.len()));
        }
        if !self.not_started.is_empty() {
            s.push_str(&format!(", {} left", self.not_started.len()));
        }
        s
    }

    /// The error a function reports when the run did not finish, so that
    /// Lambda's retry (same event, same period) completes it.
    pub fn outcome_error(&self) -> Option<Error> {
        if let Some(first) = self.failed.first() {
            return Some(Error::Partial {
                what: "snapshot groups",
                failed: self.failed.len(),
                attempted: self.failed.len() + self.created.len(),
                first: Box::new(Error::Incomplete {
                    detail: format!("{}: {}", first.volume_ids.join(","), first.error),
                    retryable: first.error_type.starts_with("Retryable"),
                }),
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
    let period = run.period();
    let expires_at = run.expires_at();
    let mut summary = SnapshotSummary {
        function: "snapshot-volumes",
        tier: run.tier,
        period: period.clone(),
        expires_at: expires_at.clone(),
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
        notes: Vec::new(),
    };

    let volumes = api.tagged_volumes().await?;
    let selection = select(&volumes);
    for skip in &selection.skipped {
        tracing::warn!(volume_id = %skip.volume_id, kind = ?skip.kind, reason = %skip.reason, "volume skipped");
    }
    summary.skipped = selection.skipped;

    let query = period_query(run.tier, &period);
    let existing = api.managed_snapshots(&query).await?;
    let done = done_by_volume(&existing);

    let targets: HashMap<&str, &Target> = selection
        .groups
        .iter()
        .flat_map(|g| g.targets.iter())
        .map(|t| (t.volume_id.as_str(), t))
        .collect();
    for (snapshot, tags) in missing_volume_tags(&existing, &targets) {
        if !run.dry_run {
            api.tag_snapshots(std::slice::from_ref(&snapshot), &tags).await?;
            tracing::info!(snapshot_id = %snapshot, "per-volume tags repaired");
        }
        summary.tags_repaired.push(snapshot);
    }

    let mut pending: Vec<Group> = Vec::new();
    for group in selection.groups {
        let (finished, todo): (Vec<Target>, Vec<Target>) = group
            .targets
            .into_iter()
            .partition(|t| done.contains_key(t.volume_id.as_str()));
        for t in finished {
            let snapshot_id = done[t.volume_id.as_str()].id.clone();
            summary.already_done.push(Existing {
                volume_id: t.volume_id,
                snapshot_id,
            });
        }
        if !todo.is_empty() {
            pending.push(Group {
                cluster: group.cluster,
                instance_id: group.instance_id,
                targets: todo,
            });
        }
    }

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
        for group in pending {
            let method = method_of(&group);
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
    let disks: HashMap<String, InstanceDisks> = if multi_instances.is_empty() {
        HashMap::new()
    } else {
        api.instance_disks(&multi_instances)
            .await?
            .into_iter()
            .map(|d| (d.instance_id.clone(), d))
            .collect()
    };

    let common = CommonTags {
        tier: run.tier,
        period: &period,
        expires_at: &expires_at,
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
        summary.failed.extend(outcome.failed);
        summary.not_started.extend(outcome.not_started);
        summary.notes.extend(outcome.notes);
    }
    summary
        .created
        .sort_by(|a, b| a.target.volume_id.cmp(&b.target.volume_id));
    summary.not_started.sort();

    if !summary.created.is_empty() {
        remove_duplicates(api, &query, &mut summary).await?;
    }
    summary.complete = summary.failed.is_empty() && summary.not_started.is_empty();
    Ok(summary)
}

fn period_query(tier: Tier, period: &str) -> SnapshotQuery {
    SnapshotQuery {
        tags: vec![
            (tags::TIER, tier.as_str().to_owned()),
            (tags::PERIOD, period.to_owned()),
        ],
    }
}

fn method_of(group: &Group) -> Method {
    if group.is_multi_volume() {
        Method::CreateSnapshots
    } else {
        Method::CreateSnapshot
    }
}

/// For each volume, the snapshot of this period that counts (see
/// [`duplicates`] for which one).
fn done_by_volume(existing: &[Snapshot]) -> BTreeMap<&str, &Snapshot> {
    let mut done: BTreeMap<&str, &Snapshot> = BTreeMap::new();
    for snapshot in existing.iter().filter(|s| s.is_live()) {
        if let Some(volume) = snapshot.source_volume() {
            let entry = done.entry(volume).or_insert(snapshot);
            if survivor_key(snapshot) < survivor_key(entry) {
                *entry = snapshot;
            }
        }
    }
    done
}

/// Orders the snapshots of one volume and period: the smallest is kept.
fn survivor_key(snapshot: &Snapshot) -> (&str, &str) {
    (snapshot.tag(tags::RUN).unwrap_or(&snapshot.id), &snapshot.id)
}

/// Snapshots (of the listed period) that should be deleted so that each
/// volume keeps exactly one. Pure; applied identically by every run.
pub fn duplicates(snapshots: &[Snapshot]) -> Vec<String> {
    let keep: BTreeSet<&str> = done_by_volume(snapshots)
        .values()
        .map(|s| s.id.as_str())
        .collect();
    let mut extra: Vec<String> = snapshots
        .iter()
        .filter(|s| s.is_live() && s.source_volume().is_some() && !keep.contains(s.id.as_str()))
        .map(|s| s.id.clone())
        .collect();
    extra.sort();
    extra
}

/// Live snapshots of the period that lack `ninelives:name` or
/// `ninelives:volume-id` (a run stopped between `CreateSnapshots` and
/// `CreateTags`), with the tags they should get.
fn missing_volume_tags(existing: &[Snapshot], targets: &HashMap<&str, &Target>) -> Vec<(String, Tags)> {
    existing
        .iter()
        .filter(|s| s.is_live() && (s.tag(tags::NAME).is_none() || s.tag(tags::VOLUME_ID).is_none()))
        .filter_map(|s| {
            let target = targets.get(s.volume_id.as_deref()?)?;
            Some((
                s.id.clone(),
                volume_tags(
                    target,
                    s.tag(tags::TIER).unwrap_or(""),
                    s.tag(tags::PERIOD).unwrap_or(""),
                ),
            ))
        })
        .collect()
}

async fn remove_duplicates<A: BackupApi>(
    api: &A,
    query: &SnapshotQuery,
    summary: &mut SnapshotSummary,
) -> Result<(), Error> {
    let after = api.managed_snapshots(query).await?;
    for id in duplicates(&after) {
        match api.delete_snapshot(&id).await? {
            DeleteOutcome::Deleted | DeleteOutcome::NotFound => {
                tracing::info!(snapshot_id = %id, "duplicate snapshot of this period removed");
                summary.duplicates_removed.push(id);
            }
            DeleteOutcome::InUse(why) => summary
                .notes
                .push(format!("duplicate {id} could not be removed: {why}")),
        }
    }
    let removed: BTreeSet<&String> = summary.duplicates_removed.iter().collect();
    let (kept, superseded): (Vec<Created>, Vec<Created>) = std::mem::take(&mut summary.created)
        .into_iter()
        .partition(|c| !removed.contains(&c.snapshot_id));
    for c in superseded {
        summary.notes.push(format!(
            "{} of {} was removed in favour of a concurrent run's snapshot",
            c.snapshot_id, c.target.volume_id
        ));
        summary.already_done.push(Existing {
            snapshot_id: done_by_volume(&after)
                .get(c.target.volume_id.as_str())
                .map(|s| s.id.clone())
                .unwrap_or_default(),
            volume_id: c.target.volume_id,
        });
    }
    summary.created = kept;
    Ok(())
}

struct CommonTags<'a> {
    tier: Tier,
    period: &'a str,
    expires_at: &'a str,
    run_id: &'a str,
}

impl CommonTags<'_> {
    fn tags(&self, cluster: &str, instance_id: Option<&str>) -> Tags {
        let mut t = Tags::new();
        t.insert(tags::MANAGED_BY.into(), tags::MANAGED_BY_VALUE.into());
        t.insert(tags::CLUSTER.into(), cluster.into());
        t.insert(tags::TIER.into(), self.tier.as_str().into());
        t.insert(tags::PERIOD.into(), self.period.into());
        t.insert(tags::EXPIRES_AT.into(), self.expires_at.into());
        t.insert(tags::RUN.into(), self.run_id.into());
        if let Some(instance) = instance_id {
            t.insert(tags::INSTANCE_ID.into(), instance.into());
        }
        t
    }
}

/// The tags that differ per volume. `Name` is for people in the console.
fn volume_tags(target: &Target, tier: &str, period: &str) -> Tags {
    let mut t = Tags::new();
    t.insert(tags::NAME.into(), target.name.clone());
    t.insert(tags::VOLUME_ID.into(), target.volume_id.clone());
    t.insert(
        "Name".into(),
        format!("{}/{} {tier} {period}", target.cluster, target.name),
    );
    t
}

fn describe(text: String) -> String {
    let mut text = text;
    if text.len() > MAX_DESCRIPTION {
        let mut cut = MAX_DESCRIPTION;
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        text.truncate(cut);
    }
    text
}

#[derive(Default)]
struct GroupOutcome {
    created: Vec<Created>,
    failed: Vec<Failed>,
    not_started: Vec<String>,
    notes: Vec<String>,
}

impl GroupOutcome {
    fn fail(&mut self, volume_ids: Vec<String>, err: &Error) {
        tracing::error!(volume_ids = ?volume_ids, error = %err, "snapshot failed");
        self.failed.push(Failed {
            volume_ids,
            error: err.to_string(),
            error_type: err.error_type(),
        });
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
        match hooks.before(&group).await {
            Ok(guard) => Some(guard),
            Err(err) => {
                out.fail(group.volume_ids(), &err);
                return out;
            }
        }
    } else {
        None
    };

    let created = match deadline
        .bound(create_group(api, common, &group, disks, &mut out.notes))
        .await
    {
        Some(Ok(created)) => {
            let missing: Vec<String> = group
                .volume_ids()
                .into_iter()
                .filter(|v| !created.iter().any(|c| &c.target.volume_id == v))
                .collect();
            if !missing.is_empty() {
                let err = Error::Incomplete {
                    detail: "EC2 started no snapshot for these volumes".into(),
                    retryable: true,
                };
                out.fail(missing, &err);
            }
            created
        }
        Some(Err(err)) => {
            out.fail(group.volume_ids(), &err);
            Vec::new()
        }
        None => {
            let err = Error::Incomplete {
                detail: "the invocation's deadline cut the snapshot call short; a retry finds or makes it"
                    .into(),
                retryable: true,
            };
            out.fail(group.volume_ids(), &err);
            Vec::new()
        }
    };

    if let Some(guard) = guard {
        let ids: Vec<String> = created.iter().map(|c| c.snapshot_id.clone()).collect();
        match hooks.after(&group, guard, &ids).await {
            Ok(extra) if !extra.is_empty() && !ids.is_empty() => {
                if let Err(err) = api.tag_snapshots(&ids, &extra).await {
                    out.fail(group.volume_ids(), &err);
                }
            }
            Ok(_) => {}
            Err(err) => out.fail(group.volume_ids(), &err),
        }
    }
    for c in &created {
        tracing::info!(
            snapshot_id = %c.snapshot_id,
            volume_id = %c.target.volume_id,
            cluster = %c.target.cluster,
            name = %c.target.name,
            method = ?c.method,
            "snapshot started"
        );
    }
    out.created = created;
    out
}

/// Starts the group's snapshot(s) and tags them. Errors leave nothing
/// half-made that the next run would not find and finish.
async fn create_group<A: BackupApi>(
    api: &A,
    common: &CommonTags<'_>,
    group: &Group,
    disks: Option<&InstanceDisks>,
    notes: &mut Vec<String>,
) -> Result<Vec<Created>, Error> {
    let multi = match (group.is_multi_volume(), group.instance_id.as_deref(), disks) {
        (true, Some(instance), Some(disks)) => Some((instance, disks)),
        (true, Some(instance), None) => {
            notes.push(format!(
                "instance {instance} was not found; its volumes {} were taken one by one",
                group.volume_ids().join(",")
            ));
            None
        }
        _ => None,
    };
    let Some((instance, disks)) = multi else {
        let mut created = Vec::new();
        for target in &group.targets {
            let mut tags = common.tags(&group.cluster, target.instance_id.as_deref());
            tags.extend(volume_tags(target, common.tier.as_str(), common.period));
            let request = SingleSnapshot {
                volume_id: target.volume_id.clone(),
                description: describe(format!(
                    "Backup of {} - for {}/{} - {} - expires {}",
                    target.volume_id, target.cluster, target.name, common.tier, common.expires_at
                )),
                tags,
            };
            let snapshot_id = api.create_snapshot(&request).await?;
            created.push(Created {
                snapshot_id,
                target: target.clone(),
                method: Method::CreateSnapshot,
            });
        }
        return Ok(created);
    };

    let wanted: BTreeSet<&str> = group.targets.iter().map(|t| t.volume_id.as_str()).collect();
    let root = disks.root_volume_id();
    let request = MultiSnapshot {
        instance_id: instance.to_owned(),
        exclude_boot_volume: root.is_none_or(|r| !wanted.contains(r)),
        exclude_volume_ids: disks
            .volumes
            .iter()
            .map(|(_, id)| id.as_str())
            .filter(|id| !wanted.contains(id) && Some(*id) != root)
            .map(str::to_owned)
            .collect(),
        description: describe(format!(
            "Backup of {instance} ({} volumes) - for {} - {} - expires {}",
            wanted.len(),
            group.cluster,
            common.tier,
            common.expires_at
        )),
        tags: common.tags(&group.cluster, Some(instance)),
    };
    let started = api.create_snapshots(&request).await?;

    let mut created = Vec::new();
    let mut strays = Vec::new();
    for (volume_id, snapshot_id) in started {
        match group.targets.iter().find(|t| t.volume_id == volume_id) {
            Some(target) => created.push(Created {
                snapshot_id,
                target: target.clone(),
                method: Method::CreateSnapshots,
            }),
            None => strays.push((volume_id, snapshot_id)),
        }
    }
    // A volume attached after the instance was described is not excluded
    // and gets a snapshot carrying this cluster's tags: remove it.
    for (volume_id, snapshot_id) in strays {
        api.delete_snapshot(&snapshot_id).await?;
        notes.push(format!(
            "{volume_id} was attached to {instance} during the run; its unwanted snapshot {snapshot_id} was deleted"
        ));
    }
    for c in &created {
        api.tag_snapshots(
            std::slice::from_ref(&c.snapshot_id),
            &volume_tags(&c.target, common.tier.as_str(), common.period),
        )
        .await?;
    }
    Ok(created)
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;
    use std::time::Duration;

    use chrono::TimeZone;
    use tokio::time::Instant;

    use super::*;
    use crate::backup::fake::{FakeEc2, volume};
    use crate::backup::hooks::NoAppHooks;
    use crate::backup::model::{InstanceDisks, SnapshotState};

    const DB: &str = "db.example.com";
    const KATE: &str = "kate.example.com";

    /// i-1: boot vol-r, db main (vol-1) and ts1 (vol-2), an untagged data
    /// volume vol-x, and kate's vol-3. i-2: db main (vol-4). vol-5 detached.
    /// vol-6 is excluded, vol-7 has no name.
    fn fleet() -> FakeEc2 {
        FakeEc2::with(|s| {
            s.volumes = vec![
                volume("vol-r", &[], Some(("i-1", "/dev/xvda"))),
                volume(
                    "vol-1",
                    &[(tags::CLUSTER, DB), (tags::NAME, "main")],
                    Some(("i-1", "/dev/sdf")),
                ),
                volume(
                    "vol-2",
                    &[(tags::CLUSTER, DB), (tags::NAME, "ts1")],
                    Some(("i-1", "/dev/sdg")),
                ),
                volume("vol-x", &[], Some(("i-1", "/dev/sdh"))),
                volume(
                    "vol-3",
                    &[(tags::CLUSTER, KATE), (tags::NAME, "data")],
                    Some(("i-1", "/dev/sdi")),
                ),
                volume(
                    "vol-4",
                    &[(tags::CLUSTER, DB), (tags::NAME, "main")],
                    Some(("i-2", "/dev/sdf")),
                ),
                volume("vol-5", &[(tags::CLUSTER, DB), (tags::NAME, "spare")], None),
                volume(
                    "vol-6",
                    &[(tags::CLUSTER, DB), (tags::NAME, "main"), (tags::BACKUP, "off")],
                    None,
                ),
                volume("vol-7", &[(tags::CLUSTER, DB)], None),
            ];
            s.instances = vec![
                InstanceDisks {
                    instance_id: "i-1".into(),
                    root_device_name: Some("/dev/xvda".into()),
                    volumes: [
                        "/dev/xvda:vol-r",
                        "/dev/sdf:vol-1",
                        "/dev/sdg:vol-2",
                        "/dev/sdh:vol-x",
                        "/dev/sdi:vol-3",
                    ]
                    .iter()
                    .map(|p| {
                        let (d, v) = p.split_once(':').unwrap();
                        (d.to_owned(), v.to_owned())
                    })
                    .collect(),
                },
                InstanceDisks {
                    instance_id: "i-2".into(),
                    root_device_name: Some("/dev/xvda".into()),
                    volumes: vec![("/dev/sdf".into(), "vol-4".into())],
                },
            ];
        })
    }

    fn run(run_id: &str) -> SnapshotRun {
        SnapshotRun {
            tier: Tier::Daily,
            time: Utc.with_ymd_and_hms(2026, 11, 24, 13, 0, 0).unwrap(),
            retention: Retention::default(),
            run_id: run_id.into(),
            dry_run: false,
        }
    }

    fn open() -> Deadline {
        Deadline::after(Duration::from_secs(900))
    }

    fn by_volume(ec2: &FakeEc2) -> BTreeMap<String, Vec<Snapshot>> {
        let mut map: BTreeMap<String, Vec<Snapshot>> = BTreeMap::new();
        for s in ec2.snapshots() {
            map.entry(s.volume_id.clone().unwrap()).or_default().push(s);
        }
        map
    }

    #[tokio::test]
    async fn snapshots_every_selected_volume_once_with_the_contract_tags() {
        let ec2 = fleet();
        let summary = take_snapshots(&ec2, &NoAppHooks, &run("r-1"), &open())
            .await
            .unwrap();
        assert!(summary.complete);
        assert_eq!(summary.period, "2026-11-24");
        assert_eq!(summary.expires_at, "2026-12-08T13:00:00Z");

        let snaps = by_volume(&ec2);
        assert_eq!(
            snaps.keys().collect::<Vec<_>>(),
            ["vol-1", "vol-2", "vol-3", "vol-4", "vol-5"]
        );
        assert!(snaps.values().all(|v| v.len() == 1));
        let s = &snaps["vol-2"][0];
        let expect = [
            (tags::CLUSTER, DB),
            (tags::NAME, "ts1"),
            (tags::TIER, "daily"),
            (tags::VOLUME_ID, "vol-2"),
            (tags::EXPIRES_AT, "2026-12-08T13:00:00Z"),
            (tags::MANAGED_BY, "ninelives"),
            (tags::PERIOD, "2026-11-24"),
            (tags::RUN, "r-1"),
            (tags::INSTANCE_ID, "i-1"),
        ];
        for (k, v) in expect {
            assert_eq!(s.tag(k), Some(v), "{k}");
        }
        assert_eq!(snaps["vol-5"][0].tag(tags::INSTANCE_ID), None);

        // One CreateSnapshots for db on i-1; kate's volume on the same
        // instance, db on i-2 and the detached volume each alone.
        assert_eq!(ec2.calls("CreateSnapshots"), 1);
        assert_eq!(ec2.calls("CreateSnapshot"), 3);
        let methods: Vec<(&str, Method)> = summary
            .created
            .iter()
            .map(|c| (c.target.volume_id.as_str(), c.method))
            .collect();
        assert_eq!(
            methods,
            [
                ("vol-1", Method::CreateSnapshots),
                ("vol-2", Method::CreateSnapshots),
                ("vol-3", Method::CreateSnapshot),
                ("vol-4", Method::CreateSnapshot),
                ("vol-5", Method::CreateSnapshot),
            ]
        );
        let skipped: Vec<&str> = summary.skipped.iter().map(|s| s.volume_id.as_str()).collect();
        assert_eq!(skipped, ["vol-6", "vol-7"]);
    }

    #[tokio::test]
    async fn a_second_delivery_creates_nothing() {
        let ec2 = fleet();
        take_snapshots(&ec2, &NoAppHooks, &run("r-1"), &open())
            .await
            .unwrap();
        let before = ec2.snapshots();
        let again = take_snapshots(&ec2, &NoAppHooks, &run("r-2"), &open())
            .await
            .unwrap();
        assert!(again.complete);
        assert!(again.created.is_empty());
        assert_eq!(again.already_done.len(), 5);
        assert_eq!(ec2.snapshots(), before);
        assert_eq!(ec2.calls("CreateSnapshots") + ec2.calls("CreateSnapshot"), 4);
    }

    #[tokio::test]
    async fn another_tier_or_period_is_a_new_snapshot() {
        let ec2 = fleet();
        take_snapshots(&ec2, &NoAppHooks, &run("r-1"), &open())
            .await
            .unwrap();
        let mut weekly = run("r-2");
        weekly.tier = Tier::Weekly;
        let w = take_snapshots(&ec2, &NoAppHooks, &weekly, &open()).await.unwrap();
        assert_eq!(w.created.len(), 5);
        assert_eq!(w.expires_at, "2027-01-24T13:00:00Z");
        let mut tomorrow = run("r-3");
        tomorrow.time += chrono::Duration::days(1);
        let t = take_snapshots(&ec2, &NoAppHooks, &tomorrow, &open())
            .await
            .unwrap();
        assert_eq!(t.created.len(), 5);
        assert_eq!(ec2.snapshots().len(), 15);
    }

    #[tokio::test]
    async fn dry_run_changes_nothing_and_says_what_it_would_do() {
        let ec2 = fleet();
        let mut r = run("r-1");
        r.dry_run = true;
        let summary = take_snapshots(&ec2, &NoAppHooks, &r, &open()).await.unwrap();
        assert!(ec2.snapshots().is_empty());
        assert_eq!(ec2.calls("CreateTags"), 0);
        let planned: Vec<(&str, Method)> = summary
            .would_create
            .iter()
            .map(|p| (p.target.volume_id.as_str(), p.method))
            .collect();
        assert_eq!(planned.len(), 5);
        assert!(planned.contains(&("vol-1", Method::CreateSnapshots)));
        assert!(planned.contains(&("vol-5", Method::CreateSnapshot)));
    }

    #[tokio::test]
    async fn concurrent_duplicates_end_with_one_consistent_set() {
        let mut ec2 = fleet();
        ec2.latency = Duration::from_millis(5);
        let (run_b, run_a, deadline) = (run("r-b"), run("r-a"), open());
        let (a, b) = tokio::join!(
            take_snapshots(&ec2, &NoAppHooks, &run_b, &deadline),
            take_snapshots(&ec2, &NoAppHooks, &run_a, &deadline),
        );
        let (a, b) = (a.unwrap(), b.unwrap());
        let snaps = by_volume(&ec2);
        assert_eq!(snaps.len(), 5);
        for (volume, list) in &snaps {
            assert_eq!(list.len(), 1, "{volume}: {list:?}");
            // The run with the smaller id wins everywhere, so the two
            // CreateSnapshots members come from the same set.
            assert_eq!(list[0].tag(tags::RUN), Some("r-a"), "{volume}");
        }
        let removed = a.duplicates_removed.len() + b.duplicates_removed.len();
        assert!(
            removed >= 5,
            "both runs created; the loser's five were removed ({removed})"
        );
        // Each summary is true when written; together they account for
        // every snapshot made: made minus removed is what is left.
        assert_eq!(a.created.len() + b.created.len() - removed, 5);
    }

    #[test]
    fn duplicates_keep_the_smallest_run_and_ignore_dead_snapshots() {
        let snap = |id: &str, vol: &str, run: Option<&str>, state| Snapshot {
            id: id.into(),
            volume_id: Some(vol.into()),
            state,
            start_time: None,
            tags: run
                .map(|r| (tags::RUN.to_owned(), r.to_owned()))
                .into_iter()
                .collect(),
        };
        let list = vec![
            snap("snap-3", "vol-1", Some("b"), SnapshotState::Completed),
            snap("snap-2", "vol-1", Some("a"), SnapshotState::Pending),
            snap("snap-1", "vol-1", Some("c"), SnapshotState::Error),
            snap("snap-5", "vol-2", None, SnapshotState::Completed),
            snap("snap-4", "vol-2", None, SnapshotState::Completed),
        ];
        assert_eq!(duplicates(&list), ["snap-3", "snap-5"]);
    }

    #[tokio::test]
    async fn past_the_deadline_nothing_starts_and_a_retry_finishes() {
        let ec2 = fleet();
        let now = Instant::now();
        let expired = Deadline::at(now, now + Duration::from_secs(1));
        let first = take_snapshots(&ec2, &NoAppHooks, &run("r-1"), &expired)
            .await
            .unwrap();
        assert!(!first.complete);
        assert_eq!(first.not_started.len(), 5);
        assert!(ec2.snapshots().is_empty());
        let err = first.outcome_error().unwrap();
        assert!(err.is_retryable());
        assert_eq!(err.kind(), "Incomplete");

        let retry = take_snapshots(&ec2, &NoAppHooks, &run("r-2"), &open())
            .await
            .unwrap();
        assert!(retry.complete);
        assert_eq!(retry.created.len(), 5);
        assert!(retry.outcome_error().is_none());
    }

    #[tokio::test]
    async fn a_failing_volume_is_reported_and_the_rest_are_taken() {
        let ec2 = fleet();
        ec2.state.lock().unwrap().fail_volumes.insert("vol-4".into());
        let summary = take_snapshots(&ec2, &NoAppHooks, &run("r-1"), &open())
            .await
            .unwrap();
        assert_eq!(summary.created.len(), 4);
        assert_eq!(summary.failed.len(), 1);
        assert_eq!(summary.failed[0].volume_ids, ["vol-4"]);
        let err = summary.outcome_error().unwrap();
        assert_eq!(err.error_type(), "Retryable.PartialFailure");
        assert!(!by_volume(&ec2).contains_key("vol-4"));
    }

    #[tokio::test]
    async fn a_volume_attached_mid_run_loses_its_unwanted_snapshot() {
        let ec2 = fleet();
        ec2.state.lock().unwrap().late_attached.push("vol-late".into());
        let summary = take_snapshots(&ec2, &NoAppHooks, &run("r-1"), &open())
            .await
            .unwrap();
        assert!(!by_volume(&ec2).contains_key("vol-late"));
        assert!(
            summary.notes.iter().any(|n| n.contains("vol-late")),
            "{:?}",
            summary.notes
        );
        assert!(summary.complete);
    }

    #[tokio::test]
    async fn missing_per_volume_tags_are_repaired_by_the_next_delivery() {
        let ec2 = fleet();
        take_snapshots(&ec2, &NoAppHooks, &run("r-1"), &open())
            .await
            .unwrap();
        let victim = by_volume(&ec2)["vol-2"][0].id.clone();
        {
            let mut state = ec2.state.lock().unwrap();
            let s = state.snapshots.get_mut(&victim).unwrap();
            s.tags.remove(tags::NAME);
            s.tags.remove(tags::VOLUME_ID);
        }
        let again = take_snapshots(&ec2, &NoAppHooks, &run("r-2"), &open())
            .await
            .unwrap();
        assert_eq!(again.tags_repaired, std::slice::from_ref(&victim));
        assert!(again.created.is_empty());
        let repaired = ec2.snapshots().into_iter().find(|s| s.id == victim).unwrap();
        assert_eq!(repaired.tag(tags::NAME), Some("ts1"));
        assert_eq!(repaired.tag(tags::VOLUME_ID), Some("vol-2"));
    }

    #[tokio::test]
    async fn unsupported_app_is_noted() {
        let ec2 = fleet();
        ec2.state.lock().unwrap().volumes[1]
            .tags
            .insert(tags::APP.into(), "postgres".into());
        let summary = take_snapshots(&ec2, &NoAppHooks, &run("r-1"), &open())
            .await
            .unwrap();
        assert!(summary.complete);
        assert!(
            summary
                .notes
                .iter()
                .any(|n| n.contains("crash-consistent only") && n.contains("vol-1,vol-2")),
            "{:?}",
            summary.notes
        );
    }

    /// Records the hook calls in order.
    #[derive(Default)]
    struct Recorder(Mutex<Vec<String>>);

    impl AppHooks for Recorder {
        type Guard = String;

        fn supports(&self, app: &str) -> bool {
            app == "postgres"
        }

        async fn before(&self, group: &Group) -> Result<String, Error> {
            self.0
                .lock()
                .unwrap()
                .push(format!("before {}", group.volume_ids().join(",")));
            Ok("label-1".into())
        }

        async fn after(&self, _group: &Group, guard: String, ids: &[String]) -> Result<Tags, Error> {
            self.0
                .lock()
                .unwrap()
                .push(format!("after {guard} {}", ids.len()));
            Ok([("ninelives:backup-label".to_owned(), guard)].into())
        }
    }

    #[tokio::test]
    async fn hooks_wrap_the_snapshot_and_always_end() {
        let ec2 = fleet();
        {
            let mut state = ec2.state.lock().unwrap();
            state.volumes[1].tags.insert(tags::APP.into(), "postgres".into());
            state.volumes[5].tags.insert(tags::APP.into(), "postgres".into());
            state.fail_volumes.insert("vol-4".into());
        }
        let hooks = Recorder::default();
        let summary = take_snapshots(&ec2, &hooks, &run("r-1"), &open()).await.unwrap();
        let mut calls = hooks.0.lock().unwrap().clone();
        calls.sort();
        assert_eq!(
            calls,
            [
                "after label-1 0",
                "after label-1 2",
                "before vol-1,vol-2",
                "before vol-4"
            ]
        );
        let labelled: Vec<String> = ec2
            .snapshots()
            .into_iter()
            .filter(|s| s.tag("ninelives:backup-label") == Some("label-1"))
            .filter_map(|s| s.volume_id)
            .collect();
        assert_eq!(labelled, ["vol-1", "vol-2"]);
        assert!(summary.notes.is_empty(), "{:?}", summary.notes);
        assert_eq!(summary.failed.len(), 1);
    }
}
