//! Unit tests of `run`: which result each outcome completes the action with.

use std::time::Duration;

use super::*;
use crate::backup::model::SnapshotState;
use crate::lifecycle::fake::{FakeCloud, action, instance, snapshot};
use crate::lifecycle::roles::{ClusterRoles, SearchRecords};
use crate::tags;

const ID: &str = "i-0000000000000000a";

fn settings(dry_run: bool) -> Settings {
    Settings {
        dry_run,
        volume_type: "gp3".into(),
        poll: Duration::from_millis(1),
    }
}

async fn go(cloud: &FakeCloud, transition: Transition, dry_run: bool) -> ActionSummary {
    let roles = ClusterRoles::new(Some(SearchRecords::new(cloud, 60)));
    let deadline = Deadline::after(Duration::from_secs(60));
    handle(
        cloud,
        cloud,
        &roles,
        &action(transition, ID),
        &settings(dry_run),
        &deadline,
    )
    .await
}

fn cloud_with(pairs: &[(&str, &str)]) -> FakeCloud {
    FakeCloud::with(
        vec![instance(ID, pairs)],
        vec![snapshot(
            "snap-00000001",
            "kate.example.com",
            "main",
            1,
            SnapshotState::Completed,
        )],
    )
}

fn completed(cloud: &FakeCloud) -> Vec<ActionResult> {
    cloud
        .state
        .lock()
        .unwrap()
        .completed
        .iter()
        .map(|(_, r)| *r)
        .collect()
}

#[tokio::test]
async fn launch_restores_joins_and_continues() {
    let cloud = cloud_with(&[
        (tags::CLUSTER, "kate.example.com"),
        (tags::ROLE, "search"),
        (tags::RESTORE, "latest"),
    ]);
    let mut s = go(&cloud, Transition::Launch, false).await;
    assert_eq!(s.status, Status::Continued, "{}", s.headline());
    assert_eq!(s.result, Some(ActionResult::Continue));
    assert!(s.take_outcome_error().is_none());
    assert!(s.changed());
    assert_eq!(completed(&cloud), vec![ActionResult::Continue]);
    assert_eq!(cloud.data_volumes().len(), 1);
    assert_eq!(cloud.state.lock().unwrap().records.len(), 1);
    let headline = s.headline();
    assert!(
        headline.contains("restored from snap-00000001") && headline.contains("CONTINUE"),
        "{headline}"
    );

    // The duplicate: nothing new, and "not active" is not a failure.
    let mut again = go(&cloud, Transition::Launch, false).await;
    assert_eq!(again.status, Status::NotActive);
    assert!(again.take_outcome_error().is_none());
    assert!(!again.changed());
    assert_eq!(cloud.data_volumes().len(), 1);
    assert_eq!(completed(&cloud).len(), 1);

    let left = go(&cloud, Transition::Terminate, false).await;
    assert_eq!(left.status, Status::Continued);
    assert_eq!(left.role.as_ref().unwrap().action, "deleted");
    assert!(cloud.state.lock().unwrap().records.is_empty());
    assert_eq!(cloud.data_volumes().len(), 1, "terminate deletes no volume");
}

#[tokio::test]
async fn a_late_launch_after_terminate_restores_and_joins_nothing() {
    let cloud = cloud_with(&[(tags::CLUSTER, "kate.example.com"), (tags::ROLE, "search")]);
    assert_eq!(
        go(&cloud, Transition::Launch, false).await.status,
        Status::Continued
    );
    assert_eq!(
        go(&cloud, Transition::Terminate, false).await.status,
        Status::Continued
    );
    assert!(cloud.state.lock().unwrap().records.is_empty());
    // The launch event again, long after (a redelivery).
    let s = go(&cloud, Transition::Launch, false).await;
    assert_eq!(s.status, Status::NotActive);
    assert!(s.role.is_none() && s.volume.is_none());
    assert!(
        cloud.state.lock().unwrap().records.is_empty(),
        "no record brought back"
    );
    assert_eq!(cloud.calls("ChangeResourceRecordSets"), 2);
}

#[tokio::test]
async fn unfixable_failures_abandon_with_the_reason() {
    let cases: Vec<(Vec<(&str, &str)>, &str)> = vec![
        (
            vec![(tags::CLUSTER, "kate.example.com"), (tags::ROLE, "cassandra")],
            "unknown role",
        ),
        (vec![(tags::ROLE, "search")], "no ninelives:cluster tag"),
        (
            vec![
                (tags::CLUSTER, "kate.example.com"),
                (tags::RESTORE, "snap-0123456789abcdef0"),
            ],
            "snapshot snap-0123456789abcdef0",
        ),
        (
            vec![(tags::CLUSTER, "kate.example.com"), (tags::ROLE, "mongodb")],
            "TASK_QUEUE_URL",
        ),
    ];
    for (pairs, expected) in cases {
        let cloud = cloud_with(&pairs);
        let mut s = go(&cloud, Transition::Launch, false).await;
        assert_eq!(s.status, Status::Abandoned, "{pairs:?}");
        assert_eq!(completed(&cloud), vec![ActionResult::Abandon]);
        assert!(s.error.as_deref().unwrap().contains(expected), "{:?}", s.error);
        assert!(s.error_type.as_deref().unwrap().starts_with("NonRetryable."));
        assert!(s.take_outcome_error().is_none(), "handled: no retry");
        assert!(s.changed(), "an abandon is notified");
        assert!(s.headline().contains("ABANDON"));
    }
}

#[tokio::test]
async fn transient_failures_heartbeat_and_return_a_retryable_error() {
    let cloud = cloud_with(&[(tags::CLUSTER, "kate.example.com")]);
    cloud.fail("CreateVolume", 1, true);
    let mut s = go(&cloud, Transition::Launch, false).await;
    assert_eq!(s.status, Status::WillRetry);
    let err = s.take_outcome_error().unwrap();
    assert!(err.is_retryable());
    assert!(
        completed(&cloud).is_empty(),
        "the action stays open for the retry"
    );
    assert_eq!(
        s.heartbeats, 2,
        "one to check the action is active, one for the retry"
    );
    assert!(s.changed());

    let again = go(&cloud, Transition::Launch, false).await;
    assert_eq!(again.status, Status::Continued);
    assert_eq!(completed(&cloud), vec![ActionResult::Continue]);
}

#[tokio::test]
async fn a_failing_completion_is_returned() {
    let cloud = cloud_with(&[(tags::CLUSTER, "kate.example.com")]);
    cloud.fail("CompleteLifecycleAction", 1, true);
    let mut s = go(&cloud, Transition::Launch, false).await;
    assert_eq!(s.status, Status::WillRetry);
    assert!(s.take_outcome_error().unwrap().is_retryable());
}

#[tokio::test]
async fn instances_without_ninelives_tags_are_left_alone() {
    let cloud = cloud_with(&[("Name", "web-1")]);
    let s = go(&cloud, Transition::Launch, false).await;
    assert_eq!(s.status, Status::Ignored);
    assert!(s.notes[0].contains("no ninelives tags"));
    assert!(completed(&cloud).is_empty(), "not ours to complete");
    assert!(cloud.data_volumes().is_empty());
}

#[tokio::test]
async fn a_missing_instance_is_abandoned_unless_the_event_is_fresh() {
    let cloud = FakeCloud::with(vec![], vec![]);
    let s = go(&cloud, Transition::Terminate, false).await;
    assert_eq!(s.status, Status::Abandoned);
    assert!(s.error.as_deref().unwrap().contains(&format!("instance {ID}")));

    let cloud = FakeCloud::with(vec![], vec![]);
    let roles = ClusterRoles::new(Some(SearchRecords::new(&cloud, 60)));
    let mut a = action(Transition::Launch, ID);
    a.time = Some(chrono::Utc::now());
    let deadline = Deadline::after(Duration::from_secs(60));
    let mut s = handle(&cloud, &cloud, &roles, &a, &settings(false), &deadline).await;
    assert_eq!(s.status, Status::WillRetry);
    assert!(s.take_outcome_error().unwrap().is_retryable());
}

#[tokio::test]
async fn a_terminated_instance_cannot_launch() {
    let cloud = cloud_with(&[(tags::CLUSTER, "kate.example.com")]);
    cloud.state.lock().unwrap().instances.get_mut(ID).unwrap().state = "terminated".into();
    let s = go(&cloud, Transition::Launch, false).await;
    assert_eq!(s.status, Status::Abandoned);
    assert!(s.error.as_deref().unwrap().contains("is terminated"));
}

#[tokio::test]
async fn dry_run_reports_the_result_it_would_send() {
    let cloud = cloud_with(&[(tags::CLUSTER, "kate.example.com"), (tags::ROLE, "search")]);
    let s = go(&cloud, Transition::Launch, true).await;
    assert_eq!(s.status, Status::DryRun);
    assert_eq!(s.result, Some(ActionResult::Continue));
    assert!(s.headline().contains("would CONTINUE"), "{}", s.headline());
    assert!(completed(&cloud).is_empty());
    assert!(cloud.data_volumes().is_empty());
    assert!(cloud.state.lock().unwrap().records.is_empty());

    let cloud = cloud_with(&[(tags::CLUSTER, "kate.example.com"), (tags::ROLE, "nope")]);
    let s = go(&cloud, Transition::Launch, true).await;
    assert_eq!(s.result, Some(ActionResult::Abandon));
    assert!(completed(&cloud).is_empty());
}

#[tokio::test]
async fn warm_pool_transitions_only_continue() {
    let cloud = cloud_with(&[(tags::CLUSTER, "kate.example.com"), (tags::ROLE, "redis")]);
    let roles = ClusterRoles::new(Some(SearchRecords::new(&cloud, 60)));
    let mut a = action(Transition::Launch, ID);
    a.destination = Some("WarmPool".into());
    let deadline = Deadline::after(Duration::from_secs(60));
    let s = handle(&cloud, &cloud, &roles, &a, &settings(false), &deadline).await;
    assert_eq!(s.status, Status::Continued);
    assert!(cloud.data_volumes().is_empty());
    assert!(s.notes.iter().any(|n| n.contains("warm pool")));
}

#[tokio::test]
async fn the_summary_serialises_without_the_internal_error() {
    let cloud = cloud_with(&[(tags::CLUSTER, "kate.example.com")]);
    cloud.fail("CreateVolume", 1, true);
    let s = go(&cloud, Transition::Launch, false).await;
    let v = serde_json::to_value(&s).unwrap();
    assert_eq!(v["status"], "will-retry");
    assert_eq!(v["lifecycle_action"]["transition"], "launch");
    assert_eq!(v["volume"]["outcome"], "unfinished");
    assert!(v.get("outcome_error").is_none());
}
