//! Unit tests of `purge`.

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
        volume_size_gib: Some(8),
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
