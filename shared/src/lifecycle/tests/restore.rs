//! Unit tests of `restore`: what volume an instance gets, and that retries
//! and duplicates never make a second one.

use std::time::Duration;

use super::*;
use crate::invocation::Deadline;
use crate::lifecycle::action::Transition;
use crate::lifecycle::fake::{AZ, FakeCloud, action, instance, snapshot};
use crate::lifecycle::node::plan;

const ID: &str = "i-0000000000000000a";
const CLUSTER: &str = "kate.example.com";

fn settings(dry_run: bool) -> RestoreSettings {
    RestoreSettings {
        volume_type: "gp3".into(),
        dry_run,
    }
}

fn empty_report(device: &str) -> VolumeReport {
    VolumeReport {
        outcome: VolumeOutcome::Unfinished,
        device: device.into(),
        availability_zone: AZ.into(),
        volume_id: None,
        snapshot_id: None,
        size_gib: None,
        delete_on_termination: false,
    }
}

async fn run(
    cloud: &FakeCloud,
    extra: &[(&str, &str)],
    dry_run: bool,
) -> (Result<(), Error>, VolumeReport, Vec<String>) {
    let mut pairs = vec![(tags::CLUSTER, CLUSTER)];
    pairs.extend_from_slice(extra);
    let inst = {
        let mut s = cloud.state.lock().unwrap();
        let i = s
            .instances
            .entry(ID.into())
            .or_insert_with(|| instance(ID, &pairs));
        i.tags = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        i.clone()
    };
    let node = plan(&inst.tags).unwrap();
    let volume_plan = node.volume.unwrap();
    let a = action(Transition::Launch, ID);
    let deadline = Deadline::after(Duration::from_secs(60));
    let mut waiter = Waiter::new(cloud, &a, &deadline, Duration::from_millis(1), dry_run);
    let mut report = empty_report(&volume_plan.device);
    let result = restore(
        cloud,
        &mut waiter,
        &inst,
        CLUSTER,
        &volume_plan,
        &settings(dry_run),
        &mut report,
    )
    .await;
    (result, report, waiter.notes)
}

fn snapshots() -> Vec<Snapshot> {
    vec![
        snapshot("snap-00000001", CLUSTER, "main", 10, SnapshotState::Completed),
        snapshot("snap-00000002", CLUSTER, "main", 20, SnapshotState::Completed),
        snapshot("snap-00000003", CLUSTER, "logs", 30, SnapshotState::Completed),
        snapshot(
            "snap-00000004",
            "other.example.com",
            "main",
            40,
            SnapshotState::Completed,
        ),
    ]
}

#[tokio::test]
async fn latest_restores_the_newest_snapshot_of_its_cluster_and_name() {
    let cloud = FakeCloud::with(vec![], snapshots());
    cloud.state.lock().unwrap().creating_polls = 3;
    let (result, report, _) = run(&cloud, &[], false).await;
    result.unwrap();
    assert_eq!(report.outcome, VolumeOutcome::Restored);
    assert_eq!(report.snapshot_id.as_deref(), Some("snap-00000002"));
    assert!(report.delete_on_termination);

    let volumes = cloud.data_volumes();
    assert_eq!(volumes.len(), 1);
    let v = &volumes[0];
    assert_eq!(report.volume_id.as_deref(), Some(v.id.as_str()));
    assert_eq!(v.availability_zone, AZ);
    assert_eq!(v.attachments[0].instance_id, ID);
    assert_eq!(v.attachments[0].device, "/dev/sdf");
    assert_eq!(v.tags.get(tags::CLUSTER).unwrap(), CLUSTER);
    assert_eq!(v.tags.get(tags::NAME).unwrap(), "main");
    assert_eq!(v.tags.get(tags::RESTORED_FROM).unwrap(), "snap-00000002");
    assert_eq!(v.tags.get(tags::RESTORED_FOR).unwrap(), ID);
    assert_eq!(
        v.tags.get("team").unwrap(),
        "data",
        "the snapshot's own tags are copied"
    );
    assert!(!v.tags.contains_key(tags::TIER), "snapshot-only tags are not");
    assert!(
        !v.tags.contains_key(tags::MANAGED_BY),
        "a volume is never purge's to delete"
    );
    let s = cloud.state.lock().unwrap();
    let dev = s.instances[ID].device("/dev/sdf").unwrap();
    assert!(dev.delete_on_termination);
}

#[tokio::test]
async fn a_second_delivery_attaches_nothing_twice() {
    let cloud = FakeCloud::with(vec![], snapshots());
    run(&cloud, &[], false).await.0.unwrap();
    let (result, report, notes) = run(&cloud, &[], false).await;
    result.unwrap();
    assert_eq!(report.outcome, VolumeOutcome::AlreadyAttached);
    assert_eq!(cloud.data_volumes().len(), 1);
    assert_eq!(cloud.calls("CreateVolume"), 1);
    assert_eq!(cloud.calls("AttachVolume"), 1);
    assert!(notes.is_empty(), "{notes:?}");
}

#[tokio::test]
async fn a_retry_after_a_failed_attach_resumes_the_same_volume() {
    let cloud = FakeCloud::with(vec![], snapshots());
    cloud.fail("AttachVolume", 1, true);
    let (result, report, _) = run(&cloud, &[], false).await;
    assert!(result.unwrap_err().is_retryable());
    assert_eq!(report.outcome, VolumeOutcome::Unfinished);
    let made = report.volume_id.clone().unwrap();

    let (result, report, notes) = run(&cloud, &[], false).await;
    result.unwrap();
    assert_eq!(report.outcome, VolumeOutcome::Resumed);
    assert_eq!(report.volume_id.as_deref(), Some(made.as_str()));
    assert_eq!(report.snapshot_id.as_deref(), Some("snap-00000002"));
    assert!(notes.iter().any(|n| n.contains("earlier delivery")), "{notes:?}");
    assert_eq!(cloud.data_volumes().len(), 1);
}

#[tokio::test]
async fn a_retry_after_delete_on_termination_failed_finishes_that_step() {
    let cloud = FakeCloud::with(vec![], snapshots());
    cloud.fail("ModifyInstanceAttribute", 1, true);
    assert!(run(&cloud, &[], false).await.0.is_err());
    let (result, report, _) = run(&cloud, &[], false).await;
    result.unwrap();
    assert_eq!(report.outcome, VolumeOutcome::AlreadyAttached);
    assert!(report.delete_on_termination);
    assert!(
        cloud.state.lock().unwrap().instances[ID]
            .device("/dev/sdf")
            .unwrap()
            .delete_on_termination
    );
}

#[tokio::test]
async fn a_device_holding_someone_elses_volume_is_left_alone() {
    let cloud = FakeCloud::with(vec![instance(ID, &[(tags::CLUSTER, CLUSTER)])], snapshots());
    {
        let mut s = cloud.state.lock().unwrap();
        s.volumes.insert(
            "vol-theirs".into(),
            Volume {
                id: "vol-theirs".into(),
                state: "in-use".into(),
                availability_zone: AZ.into(),
                size_gib: 5,
                tags: Tags::new(),
                attachments: vec![],
            },
        );
        s.instances
            .get_mut(ID)
            .unwrap()
            .block_devices
            .push(crate::lifecycle::ports::BlockDevice {
                device: "/dev/sdf".into(),
                volume_id: "vol-theirs".into(),
                delete_on_termination: false,
            });
    }
    let (result, report, notes) = run(&cloud, &[], false).await;
    result.unwrap();
    assert_eq!(report.outcome, VolumeOutcome::DeviceInUse);
    assert_eq!(report.volume_id.as_deref(), Some("vol-theirs"));
    assert!(!notes.is_empty());
    assert_eq!(cloud.calls("CreateVolume"), 0);
    assert_eq!(
        cloud.calls("ModifyInstanceAttribute"),
        0,
        "not ours: not even delete-on-termination"
    );
}

#[tokio::test]
async fn explicit_snapshot_and_empty_volumes() {
    let cloud = FakeCloud::with(vec![], snapshots());
    let (result, report, _) = run(
        &cloud,
        &[(tags::RESTORE, "snap-00000001"), (tags::SIZE, "50")],
        false,
    )
    .await;
    result.unwrap();
    assert_eq!(report.snapshot_id.as_deref(), Some("snap-00000001"));
    assert_eq!(report.size_gib, Some(50), "grown to the tagged size");

    let cloud = FakeCloud::with(vec![], snapshots());
    let (result, report, _) = run(&cloud, &[(tags::RESTORE, "none"), (tags::SIZE, "20")], false).await;
    result.unwrap();
    assert_eq!(report.outcome, VolumeOutcome::CreatedEmpty);
    assert_eq!(report.size_gib, Some(20));
    let v = &cloud.data_volumes()[0];
    assert_eq!(v.tags.get(tags::RESTORED_FROM).unwrap(), "none");
    assert_eq!(v.size_gib, 20);
}

#[tokio::test]
async fn a_smaller_size_tag_restores_at_the_snapshot_size() {
    let cloud = FakeCloud::with(vec![], snapshots());
    let (result, report, notes) = run(&cloud, &[(tags::SIZE, "2")], false).await;
    result.unwrap();
    assert_eq!(report.size_gib, Some(8));
    assert!(notes.iter().any(|n| n.contains("restored at 8 GiB")), "{notes:?}");
}

#[tokio::test]
async fn no_snapshot_yet() {
    // Nothing at all and a size: an empty volume, said out loud.
    let cloud = FakeCloud::with(vec![], vec![]);
    let (result, report, notes) = run(&cloud, &[(tags::SIZE, "10")], false).await;
    result.unwrap();
    assert_eq!(report.outcome, VolumeOutcome::CreatedEmpty);
    assert!(
        notes
            .iter()
            .any(|n| n.contains("no snapshot of kate.example.com/main")),
        "{notes:?}"
    );

    // Nothing and no size: an error that names both.
    let cloud = FakeCloud::with(vec![], vec![]);
    let err = run(&cloud, &[], false).await.0.unwrap_err();
    assert!(!err.is_retryable());
    assert!(
        err.to_string().contains("no completed snapshot") && err.to_string().contains(tags::SIZE),
        "{err}"
    );

    // Only a pending one: wait for it (retryable), never start empty.
    let cloud = FakeCloud::with(
        vec![],
        vec![snapshot(
            "snap-00000009",
            CLUSTER,
            "main",
            10,
            SnapshotState::Pending,
        )],
    );
    let err = run(&cloud, &[(tags::SIZE, "10")], false).await.0.unwrap_err();
    assert!(err.is_retryable());
    assert!(err.to_string().contains("snap-00000009"), "{err}");
    assert!(cloud.data_volumes().is_empty());
}

#[tokio::test]
async fn snapshots_that_are_no_backup_never_lead_to_an_empty_volume() {
    let mut invalid = snapshot("snap-00000011", CLUSTER, "main", 10, SnapshotState::Completed);
    invalid
        .tags
        .insert(tags::INVALID.into(), "attached mid-run".into());
    let broken = snapshot("snap-00000012", CLUSTER, "main", 20, SnapshotState::Error);
    let cloud = FakeCloud::with(vec![], vec![invalid, broken]);
    let err = run(&cloud, &[(tags::SIZE, "10")], false).await.0.unwrap_err();
    assert!(!err.is_retryable());
    assert!(
        err.to_string()
            .contains("2 snapshots of kate.example.com/main exist"),
        "{err}"
    );
    assert!(cloud.data_volumes().is_empty());
}

#[tokio::test]
async fn a_dry_run_after_a_half_finished_delivery_would_resume() {
    let cloud = FakeCloud::with(vec![], snapshots());
    cloud.fail("AttachVolume", 1, true);
    assert!(run(&cloud, &[], false).await.0.is_err());
    let (result, report, _) = run(&cloud, &[], true).await;
    result.unwrap();
    assert_eq!(report.outcome, VolumeOutcome::WouldResume);
    assert!(!report.created());
    assert!(cloud.data_volumes()[0].attachments.is_empty());
}

#[tokio::test]
async fn a_newer_pending_snapshot_is_noted_not_waited_for() {
    let mut list = snapshots();
    list.push(snapshot(
        "snap-00000010",
        CLUSTER,
        "main",
        99,
        SnapshotState::Pending,
    ));
    let cloud = FakeCloud::with(vec![], list);
    let (result, report, notes) = run(&cloud, &[], false).await;
    result.unwrap();
    assert_eq!(report.snapshot_id.as_deref(), Some("snap-00000002"));
    assert!(notes.iter().any(|n| n.contains("snap-00000010")), "{notes:?}");
}

#[tokio::test]
async fn a_named_snapshot_must_exist_and_be_complete() {
    let cloud = FakeCloud::with(vec![], snapshots());
    let err = run(&cloud, &[(tags::RESTORE, "snap-0123456789abcdef0")], false)
        .await
        .0
        .unwrap_err();
    assert!(!err.is_retryable());
    assert!(
        err.to_string().contains("snapshot snap-0123456789abcdef0"),
        "{err}"
    );
    assert!(err.to_string().contains(ID), "{err}");

    let cloud = FakeCloud::with(
        vec![],
        vec![snapshot(
            "snap-0000000e",
            CLUSTER,
            "main",
            10,
            SnapshotState::Error,
        )],
    );
    let err = run(&cloud, &[(tags::RESTORE, "snap-0000000e")], false)
        .await
        .0
        .unwrap_err();
    assert!(!err.is_retryable());
    assert!(cloud.data_volumes().is_empty());
}

#[tokio::test]
async fn dry_run_creates_nothing() {
    let cloud = FakeCloud::with(vec![], snapshots());
    let (result, report, _) = run(&cloud, &[], true).await;
    result.unwrap();
    assert_eq!(report.outcome, VolumeOutcome::WouldRestore);
    assert_eq!(report.snapshot_id.as_deref(), Some("snap-00000002"));
    assert!(cloud.data_volumes().is_empty());
    assert_eq!(cloud.calls("CreateVolume") + cloud.calls("AttachVolume"), 0);
}

#[tokio::test]
async fn a_pending_instance_is_waited_for() {
    let cloud = FakeCloud::with(vec![instance(ID, &[(tags::CLUSTER, CLUSTER)])], snapshots());
    cloud.state.lock().unwrap().instances.get_mut(ID).unwrap().state = "pending".into();
    let handle = {
        // Start it after a few polls, as EC2 would.
        let cloud = &cloud;
        async move {
            tokio::time::sleep(Duration::from_millis(20)).await;
            cloud.state.lock().unwrap().instances.get_mut(ID).unwrap().state = "running".into();
        }
    };
    let ((result, report, _), ()) = tokio::join!(run(&cloud, &[], false), handle);
    result.unwrap();
    assert_eq!(report.outcome, VolumeOutcome::Restored);
    assert!(cloud.calls("AttachVolume") > 1);
}

#[tokio::test]
async fn waiting_past_the_deadline_is_retryable_and_heartbeats_first() {
    let cloud = FakeCloud::with(vec![instance(ID, &[(tags::CLUSTER, CLUSTER)])], snapshots());
    {
        let mut s = cloud.state.lock().unwrap();
        s.creating_polls = u32::MAX;
        s.hook_timeout = Some(Duration::from_secs(3));
    }
    let inst = cloud.state.lock().unwrap().instances[ID].clone();
    let volume_plan = plan(&inst.tags).unwrap().volume.unwrap();
    let mut a = action(Transition::Launch, ID);
    // The action started a while ago: the first pause must heartbeat.
    a.time = Some(chrono::Utc::now() - chrono::Duration::seconds(2));
    let now = tokio::time::Instant::now();
    let deadline = Deadline::at(now + Duration::from_millis(200), now + Duration::from_millis(300));
    let mut waiter = Waiter::new(&cloud, &a, &deadline, Duration::from_millis(5), false);
    let mut report = empty_report("/dev/sdf");
    let err = restore(
        &cloud,
        &mut waiter,
        &inst,
        CLUSTER,
        &volume_plan,
        &settings(false),
        &mut report,
    )
    .await
    .unwrap_err();
    assert!(err.is_retryable());
    assert!(err.to_string().contains("to become available"), "{err}");
    assert_eq!(
        waiter.heartbeats, 1,
        "one heartbeat: the next is due a second later"
    );
    assert!(
        report.volume_id.is_some(),
        "the report names the volume left behind"
    );
}
