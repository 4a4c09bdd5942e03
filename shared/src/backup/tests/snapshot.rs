//! Unit tests of `snapshot`.

use std::sync::Mutex;
use std::time::Duration;

use chrono::TimeZone;
use tokio::time::Instant;

use super::*;
use crate::backup::fake::{FakeEc2, volume};
use crate::backup::hooks::NoAppHooks;
use std::collections::BTreeMap;

use crate::backup::model::InstanceDisks;

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
        time_from_event: true,
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
    let mut first = first;
    let err = first.take_outcome_error().unwrap();
    assert!(err.is_retryable());
    assert_eq!(err.kind(), "Incomplete");

    let retry = take_snapshots(&ec2, &NoAppHooks, &run("r-2"), &open())
        .await
        .unwrap();
    assert!(retry.complete);
    assert_eq!(retry.created.len(), 5);
    let mut retry = retry;
    assert!(retry.take_outcome_error().is_none());
}

#[tokio::test]
async fn a_failing_volume_is_reported_and_the_rest_are_taken() {
    let ec2 = fleet();
    ec2.state.lock().unwrap().fail_volumes.insert("vol-4".into());
    let mut summary = take_snapshots(&ec2, &NoAppHooks, &run("r-1"), &open())
        .await
        .unwrap();
    assert_eq!(summary.created.len(), 4);
    assert_eq!(summary.failed.len(), 1);
    assert_eq!(summary.failed[0].volume_ids, ["vol-4"]);
    let err = summary.take_outcome_error().unwrap();
    assert!(err.to_string().contains("1 of 5 volumes failed"), "{err}");
    assert!(
        err.to_string().contains("injected failure: vol-4"),
        "the cause is kept: {err}"
    );
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
async fn a_lost_create_response_keeps_a_fully_tagged_snapshot_of_each_volume() {
    // CreateSnapshot(s) has no idempotency token: when a response is lost
    // after EC2 made the snapshots, the SDK's retry makes a second copy
    // with the same set token. The run only hears of the second copy and
    // tags it; the clean-up keeps the earlier, untagged one.
    let ec2 = fleet();
    ec2.state.lock().unwrap().lost_responses = 2;
    let summary = take_snapshots(&ec2, &NoAppHooks, &run("r-1"), &open())
        .await
        .unwrap();
    assert!(summary.complete, "{summary:?}");
    let volumes = by_volume(&ec2);
    for (volume, name) in [
        ("vol-1", "main"),
        ("vol-2", "ts1"),
        ("vol-3", "data"),
        ("vol-4", "main"),
        ("vol-5", "spare"),
    ] {
        let snaps = &volumes[volume];
        assert_eq!(snaps.len(), 1, "{volume}: {snaps:?}");
        assert_eq!(snaps[0].tag(tags::NAME), Some(name), "{volume}: {snaps:?}");
        assert_eq!(snaps[0].tag(tags::VOLUME_ID), Some(volume), "{volume}: {snaps:?}");
    }
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

/// Records the hook calls in order; can fail the end of backup mode.
#[derive(Default)]
struct Recorder {
    calls: Mutex<Vec<String>>,
    fail_after: bool,
}

impl AppHooks for Recorder {
    type Guard = String;

    fn supports(&self, app: &str) -> bool {
        app == "postgres"
    }

    fn proves_backup(&self, _group: &Group, snapshot_tags: &Tags) -> bool {
        snapshot_tags.contains_key("ninelives:backup-label")
    }

    async fn before(&self, group: &Group) -> Result<String, Error> {
        self.calls
            .lock()
            .unwrap()
            .push(format!("before {}", group.volume_ids().join(",")));
        Ok("label-1".into())
    }

    async fn after(&self, _group: &Group, guard: String, ids: &[String]) -> Result<Tags, Error> {
        self.calls
            .lock()
            .unwrap()
            .push(format!("after {guard} {}", ids.len()));
        if self.fail_after {
            return Err(Error::Incomplete {
                detail: "pg_backup_stop failed".into(),
                retryable: true,
            });
        }
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
    let mut calls = hooks.calls.lock().unwrap().clone();
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

#[tokio::test]
async fn a_failed_end_of_backup_mode_removes_the_snapshots_for_the_retry() {
    let ec2 = fleet();
    ec2.state.lock().unwrap().volumes[1]
        .tags
        .insert(tags::APP.into(), "postgres".into());
    let hooks = Recorder {
        fail_after: true,
        ..Recorder::default()
    };
    let mut summary = take_snapshots(&ec2, &hooks, &run("r-1"), &open()).await.unwrap();
    let snaps = by_volume(&ec2);
    assert!(!snaps.contains_key("vol-1") && !snaps.contains_key("vol-2"));
    assert_eq!(summary.failed[0].volume_ids, ["vol-1", "vol-2"]);
    assert!(
        summary
            .take_outcome_error()
            .unwrap()
            .to_string()
            .contains("pg_backup_stop failed")
    );
    // The retry of the event takes them again.
    let retry = take_snapshots(&ec2, &NoAppHooks, &run("r-1"), &open())
        .await
        .unwrap();
    assert!(retry.created.iter().any(|c| c.target.volume_id == "vol-1"));
}

#[tokio::test]
async fn lambda_retries_sharing_a_request_id_still_keep_whole_sets() {
    // Lambda's async retries reuse the request id; two of them racing
    // must still not mix one set's vol-1 with another's vol-2.
    let mut ec2 = fleet();
    ec2.latency = Duration::from_millis(5);
    let (r, d) = (run("same-request"), open());
    let (a, b) = tokio::join!(
        take_snapshots(&ec2, &NoAppHooks, &r, &d),
        take_snapshots(&ec2, &NoAppHooks, &r, &d)
    );
    let (a, b) = (a.unwrap(), b.unwrap());
    let snaps = by_volume(&ec2);
    assert!(snaps.values().all(|v| v.len() == 1), "{snaps:?}");
    assert_eq!(
        snaps["vol-1"][0].tag(tags::SET),
        snaps["vol-2"][0].tag(tags::SET),
        "one CreateSnapshots set survives whole"
    );
    assert!(!a.duplicates_removed.is_empty() || !b.duplicates_removed.is_empty());
}

#[tokio::test]
async fn a_later_delivery_removes_duplicates_it_did_not_make() {
    let ec2 = fleet();
    take_snapshots(&ec2, &NoAppHooks, &run("r-1"), &open())
        .await
        .unwrap();
    // A racing run's duplicate of vol-5 that nobody cleaned up.
    {
        let mut state = ec2.state.lock().unwrap();
        let mut copy = state
            .snapshots
            .values()
            .find(|s| s.volume_id.as_deref() == Some("vol-5"))
            .unwrap()
            .clone();
        copy.id = "snap-zzzz".into();
        copy.tags.insert(tags::SET.into(), "zzz-later-set".into());
        state.snapshots.insert(copy.id.clone(), copy);
    }
    let again = take_snapshots(&ec2, &NoAppHooks, &run("r-2"), &open())
        .await
        .unwrap();
    assert!(again.created.is_empty());
    assert_eq!(again.duplicates_removed, ["snap-zzzz"]);
    assert_eq!(by_volume(&ec2)["vol-5"].len(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_fresh_stray_that_ec2_does_not_know_yet_is_still_deleted() {
    let ec2 = fleet();
    {
        let mut state = ec2.state.lock().unwrap();
        state.late_attached.push("vol-late".into());
        state.fresh_not_found = 2;
    }
    let summary = take_snapshots(&ec2, &NoAppHooks, &run("r-1"), &open())
        .await
        .unwrap();
    assert!(!by_volume(&ec2).contains_key("vol-late"));
    assert!(
        summary
            .notes
            .iter()
            .any(|n| n.contains("vol-late") && n.contains("was removed")),
        "{:?}",
        summary.notes
    );
}

#[tokio::test(start_paused = true)]
async fn the_per_volume_rate_limit_is_waited_out() {
    let ec2 = fleet();
    ec2.state.lock().unwrap().rate_limited = 2;
    let start = Instant::now();
    let summary = take_snapshots(&ec2, &NoAppHooks, &run("r-1"), &open())
        .await
        .unwrap();
    assert!(summary.complete, "{:?}", summary.failed);
    assert_eq!(by_volume(&ec2).len(), 5);
    assert!(
        start.elapsed() >= PER_VOLUME_WAIT,
        "it waited before trying again"
    );
}

#[tokio::test]
async fn a_tagged_boot_volume_joins_its_instance_set() {
    let ec2 = fleet();
    {
        let mut state = ec2.state.lock().unwrap();
        let root = state.volumes.iter_mut().find(|v| v.id == "vol-r").unwrap();
        root.tags.insert(tags::CLUSTER.into(), DB.into());
        root.tags.insert(tags::NAME.into(), "root".into());
    }
    let summary = take_snapshots(&ec2, &NoAppHooks, &run("r-1"), &open())
        .await
        .unwrap();
    assert_eq!(ec2.calls("CreateSnapshots"), 1);
    let snaps = by_volume(&ec2);
    assert_eq!(snaps["vol-r"][0].tag(tags::SET), snaps["vol-1"][0].tag(tags::SET));
    assert!(
        !snaps.contains_key("vol-x"),
        "the untagged data volume stays excluded"
    );
    assert!(summary.complete);
}

#[tokio::test]
async fn without_instance_details_volumes_are_taken_one_by_one() {
    let ec2 = fleet();
    ec2.state.lock().unwrap().fail_describe_instances = true;
    let summary = take_snapshots(&ec2, &NoAppHooks, &run("r-1"), &open())
        .await
        .unwrap();
    assert!(summary.complete);
    assert_eq!(ec2.calls("CreateSnapshots"), 0);
    assert_eq!(by_volume(&ec2).len(), 5);
    assert!(
        summary
            .notes
            .iter()
            .any(|n| n.contains("could not describe instances i-1")),
        "{:?}",
        summary.notes
    );
    assert!(
        summary.notes.iter().any(|n| n.contains("taken one by one")),
        "{:?}",
        summary.notes
    );
}

#[tokio::test]
async fn too_many_other_volumes_for_create_snapshots_falls_back_to_singles() {
    let ec2 = fleet();
    {
        let mut state = ec2.state.lock().unwrap();
        let i1 = state
            .instances
            .iter_mut()
            .find(|i| i.instance_id == "i-1")
            .unwrap();
        for n in 0..41 {
            i1.volumes
                .push((format!("/dev/xvd{n}"), format!("vol-other-{n}")));
        }
    }
    let summary = take_snapshots(&ec2, &NoAppHooks, &run("r-1"), &open())
        .await
        .unwrap();
    assert!(summary.complete);
    assert_eq!(ec2.calls("CreateSnapshots"), 0);
    assert!(
        summary
            .notes
            .iter()
            .any(|n| n.contains("more than CreateSnapshots can exclude")),
        "{:?}",
        summary.notes
    );
}

#[tokio::test]
async fn a_group_seen_only_in_part_is_taken_again_whole() {
    let ec2 = fleet();
    take_snapshots(&ec2, &NoAppHooks, &run("r-1"), &open())
        .await
        .unwrap();
    // Hide vol-2's member of the set, as a lagging listing would.
    let hidden = by_volume(&ec2)["vol-2"][0].clone();
    ec2.state.lock().unwrap().snapshots.remove(&hidden.id);
    let again = take_snapshots(&ec2, &NoAppHooks, &run("r-2"), &open())
        .await
        .unwrap();
    let retaken: Vec<(&str, Method)> = again
        .created
        .iter()
        .map(|c| (c.target.volume_id.as_str(), c.method))
        .collect();
    assert_eq!(
        retaken,
        [
            ("vol-1", Method::CreateSnapshots),
            ("vol-2", Method::CreateSnapshots)
        ]
    );
    // The partial set is never deleted by the clean-up (it cannot be
    // seen whole): an extra snapshot of vol-1, never a missing one.
    assert!(again.duplicates_removed.is_empty());
    let snaps = by_volume(&ec2);
    assert_eq!(snaps["vol-1"].len(), 2);
    assert_eq!(snaps["vol-2"].len(), 1);
}

#[tokio::test]
async fn a_retry_of_a_request_without_a_time_continues_its_period() {
    let ec2 = fleet();
    let mut first = run("request-1");
    first.time_from_event = false;
    take_snapshots(&ec2, &NoAppHooks, &first, &open()).await.unwrap();
    // Lambda retries the same request (same id) after midnight.
    let mut retry = first.clone();
    retry.time += chrono::Duration::hours(12);
    let summary = take_snapshots(&ec2, &NoAppHooks, &retry, &open()).await.unwrap();
    assert_eq!(summary.period, "2026-11-24");
    assert!(summary.created.is_empty(), "{:?}", summary.created);
    assert!(
        summary
            .notes
            .iter()
            .any(|n| n.contains("continuing period 2026-11-24"))
    );
    // Another request at that time is a new day.
    let mut other = retry.clone();
    other.run_id = "request-2".into();
    let next = take_snapshots(&ec2, &NoAppHooks, &other, &open()).await.unwrap();
    assert_eq!(next.period, "2026-11-25");
    assert_eq!(next.created.len(), 5);
}

/// The ids of `ec2`'s snapshots of `volume`, sorted.
fn ids_of(ec2: &FakeEc2, volume: &str) -> Vec<String> {
    let mut ids: Vec<String> = by_volume(ec2)
        .get(volume)
        .map(|v| v.iter().map(|s| s.id.clone()).collect())
        .unwrap_or_default();
    ids.sort();
    ids
}

/// i-1's db group (vol-1, vol-2) asks for backup mode, and already has a
/// set of the period without the backup's proof: a run cut off between
/// the snapshot call and tagging (here: a build without the hook).
async fn fleet_with_an_unproven_set() -> (FakeEc2, Vec<String>) {
    let ec2 = fleet();
    ec2.state.lock().unwrap().volumes[1]
        .tags
        .insert(tags::APP.into(), "postgres".into());
    take_snapshots(&ec2, &NoAppHooks, &run("r-1"), &open())
        .await
        .unwrap();
    let mut unproven = ids_of(&ec2, "vol-1");
    unproven.extend(ids_of(&ec2, "vol-2"));
    unproven.sort();
    assert_eq!(unproven.len(), 2);
    (ec2, unproven)
}

#[tokio::test]
async fn a_set_without_its_backup_proof_does_not_count_and_goes_once_replaced() {
    let (ec2, unproven) = fleet_with_an_unproven_set().await;
    let kate = ids_of(&ec2, "vol-3");
    let hooks = Recorder::default();
    let again = take_snapshots(&ec2, &hooks, &run("r-1"), &open()).await.unwrap();
    assert!(again.complete, "{again:?}");
    let done: Vec<&str> = again.already_done.iter().map(|e| e.volume_id.as_str()).collect();
    assert_eq!(
        done,
        ["vol-3", "vol-4", "vol-5"],
        "groups not in backup mode are unchanged"
    );
    let created: Vec<&str> = again
        .created
        .iter()
        .map(|c| c.target.volume_id.as_str())
        .collect();
    assert_eq!(created, ["vol-1", "vol-2"], "the group is taken again, whole");
    assert_eq!(
        *hooks.calls.lock().unwrap(),
        ["before vol-1,vol-2", "after label-1 2"]
    );
    let mut removed = again.not_backups_removed.clone();
    removed.sort();
    assert_eq!(removed, unproven);
    assert!(again.duplicates_removed.is_empty());
    for volume in ["vol-1", "vol-2"] {
        let snaps = &by_volume(&ec2)[volume];
        assert_eq!(snaps.len(), 1, "{volume}: {snaps:?}");
        assert_eq!(snaps[0].tag("ninelives:backup-label"), Some("label-1"));
    }
    assert_eq!(ids_of(&ec2, "vol-3"), kate);
    assert!(again.changed());

    // Now proven: the next delivery finds the group done.
    let third = take_snapshots(&ec2, &hooks, &run("r-1"), &open()).await.unwrap();
    assert!(
        third.created.is_empty() && third.not_backups_removed.is_empty(),
        "{third:?}"
    );
    assert_eq!(third.already_done.len(), 5);
    assert_eq!(
        hooks.calls.lock().unwrap().len(),
        2,
        "no backup mode for a done group"
    );
}

#[tokio::test]
async fn an_unproven_set_is_kept_without_counting_until_a_retake_works() {
    let (ec2, unproven) = fleet_with_an_unproven_set().await;
    let failing = Recorder {
        fail_after: true,
        ..Recorder::default()
    };
    let mut summary = take_snapshots(&ec2, &failing, &run("r-1"), &open())
        .await
        .unwrap();
    assert_eq!(summary.failed.len(), 1, "{summary:?}");
    assert_eq!(summary.failed[0].volume_ids, ["vol-1", "vol-2"]);
    assert!(summary.not_backups_removed.is_empty());
    assert!(
        summary
            .notes
            .iter()
            .any(|n| n.contains(&unproven[0]) && n.contains("does not count")),
        "{:?}",
        summary.notes
    );
    assert!(summary.take_outcome_error().unwrap().is_retryable());
    let mut left = ids_of(&ec2, "vol-1");
    left.extend(ids_of(&ec2, "vol-2"));
    left.sort();
    assert_eq!(
        left, unproven,
        "the failed retake's snapshots went, the old ones stay"
    );

    // A dry run says what it would do, and does nothing.
    let mut dry = run("r-1");
    dry.dry_run = true;
    let planned = take_snapshots(&ec2, &Recorder::default(), &dry, &open())
        .await
        .unwrap();
    assert_eq!(planned.would_create.len(), 2);
    assert!(
        planned
            .notes
            .iter()
            .any(|n| n.contains("would be removed once replaced"))
    );

    let retry = take_snapshots(&ec2, &Recorder::default(), &run("r-1"), &open())
        .await
        .unwrap();
    assert!(retry.complete);
    let mut removed = retry.not_backups_removed.clone();
    removed.sort();
    assert_eq!(removed, unproven);
}

#[test]
fn only_this_periods_own_snapshots_of_volumes_in_backup_mode_are_not_backups() {
    let group = Group {
        cluster: DB.into(),
        instance_id: Some("i-1".into()),
        targets: vec![Target {
            volume_id: "vol-1".into(),
            cluster: DB.into(),
            name: "main".into(),
            instance_id: Some("i-1".into()),
            device: Some("/dev/sdf".into()),
            app: Some("postgres".into()),
        }],
    };
    let hooked: HashMap<&str, &Group> = [("vol-1", &group)].into();
    let snap = |id: &str, volume: &str, extra: &[(&str, &str)]| {
        let mut tags: Tags = [
            (tags::MANAGED_BY, tags::MANAGED_BY_VALUE),
            (tags::TIER, "daily"),
            (tags::PERIOD, "2026-11-24"),
        ]
        .iter()
        .chain(extra)
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        tags.retain(|_, v| !v.is_empty());
        Snapshot {
            id: id.into(),
            volume_id: Some(volume.into()),
            state: crate::backup::model::SnapshotState::Completed,
            start_time: None,
            volume_size_gib: Some(8),
            tags,
        }
    };
    let listing = vec![
        snap("snap-unproven", "vol-1", &[]),
        snap("snap-proven", "vol-1", &[("ninelives:backup-label", "x")]),
        snap("snap-other-volume", "vol-9", &[]),
        snap("snap-other-period", "vol-1", &[(tags::PERIOD, "2026-11-23")]),
        snap("snap-other-tier", "vol-1", &[(tags::TIER, "weekly")]),
        snap("snap-not-ours", "vol-1", &[(tags::MANAGED_BY, "")]),
        snap("snap-invalid", "vol-1", &[(tags::INVALID, "why")]),
        snap("snap-copy", "vol-ffffffff", &[]),
        snap("snap-tagged-elsewhere", "vol-1", &[(tags::VOLUME_ID, "vol-2")]),
    ];
    let hooks = Recorder::default();
    let counts = |s: &Snapshot| {
        dedupe::source_volume(s)
            .and_then(|v| hooked.get(v))
            .is_none_or(|g| hooks.proves_backup(g, &s.tags))
    };
    assert_eq!(
        not_backups(&listing, &hooked, counts, Tier::Daily, "2026-11-24"),
        [("vol-1", "snap-unproven")]
    );
}
