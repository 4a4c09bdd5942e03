use chrono::Utc;

use super::*;
use crate::mongo::fake::{FakeSet, SET, command_error};
use crate::mongo::ports::MemberError;
use crate::mongo::task::Transition;

fn task(kind: TaskType, host: &str, instance_id: &str) -> Task {
    Task {
        schema: 1,
        kind,
        set: SET.to_owned(),
        host: host.to_owned(),
        aliases: Vec::new(),
        instance_id: instance_id.to_owned(),
        transition: match kind {
            TaskType::Add | TaskType::AddArbiter => Transition::Launch,
            _ => Transition::Terminate,
        },
        requested_at: Utc::now(),
    }
}

fn settings() -> TaskSettings {
    TaskSettings {
        step_down: Duration::from_secs(60),
        catch_up: Duration::from_secs(10),
        dry_run: false,
    }
}

const NEW: &str = "i-00000000000000004";

#[tokio::test]
async fn an_add_reconfigures_the_primary_once() {
    let set = FakeSet::three().with_member(NEW, "d3:27017", Kind::Data);
    let t = task(TaskType::Add, "d3:27017", NEW);
    let report = apply(&set, &set, &t, &settings()).await.expect("applied");
    assert_eq!(report.result, "applied");
    assert_eq!(report.version, Some(2));
    assert_eq!(report.member_id, Some(3));
    assert_eq!(report.votes, Some(1));
    assert_eq!(
        report.primary.as_ref().map(ToString::to_string).as_deref(),
        Some("d1:27017")
    );
    let config = set.config_now();
    assert_eq!(config.version, 2);
    let added = config.member("d3:27017").expect("added");
    assert!(!added.arbiter_only && added.votes == 1 && added.priority > 0.0);

    // Delivered again: nothing to do, nothing sent.
    let again = apply(&set, &set, &t, &settings()).await.expect("a no-op");
    assert_eq!(again.result, "already-applied");
    assert_eq!(set.calls("replSetReconfig"), 1);
    assert_eq!(set.config_now().version, 2);
}

#[tokio::test]
async fn an_arbiter_is_added_as_an_arbiter() {
    let set = FakeSet::three().with_member(NEW, "a2:27017", Kind::Arbiter);
    let report = apply(
        &set,
        &set,
        &task(TaskType::AddArbiter, "a2:27017", NEW),
        &settings(),
    )
    .await
    .expect("applied");
    assert_eq!(report.result, "applied");
    let added = set.config_now().member("a2:27017").cloned().expect("added");
    assert!(added.arbiter_only);
    assert_eq!(added.priority, 0.0);
}

#[tokio::test]
async fn an_add_for_a_host_ec2_does_not_know_is_refused() {
    let set = FakeSet::three();
    let err = apply(&set, &set, &task(TaskType::Add, "evil:27017", NEW), &settings())
        .await
        .expect_err("not a member");
    assert_eq!(err.error_type(), "NonRetryable.InvalidResource");
    let msg = err.to_string();
    assert!(
        msg.contains("evil:27017") && msg.contains("is not a member of kate.example.com"),
        "{msg}"
    );
    assert_eq!(set.calls("replSetReconfig"), 0);
    assert_eq!(set.calls("hello"), 0, "refused before any member is asked");
}

#[tokio::test]
async fn an_add_of_the_wrong_kind_is_refused() {
    let set = FakeSet::three().with_member(NEW, "d3:27017", Kind::Data);
    let err = apply(
        &set,
        &set,
        &task(TaskType::AddArbiter, "d3:27017", NEW),
        &settings(),
    )
    .await
    .expect_err("tagged as data");
    assert!(err.to_string().contains("tagged as a data member"), "{err}");
    assert_eq!(set.calls("replSetReconfig"), 0);
}

#[tokio::test]
async fn no_primary_is_a_retryable_error_and_nothing_is_sent() {
    let set = FakeSet::three().with_member(NEW, "d3:27017", Kind::Data);
    set.lock().primary = None;
    let err = apply(&set, &set, &task(TaskType::Add, "d3:27017", NEW), &settings())
        .await
        .expect_err("no primary");
    assert!(err.is_retryable(), "{err}");
    assert!(err.to_string().contains("no member is primary"), "{err}");
    assert_eq!(set.calls("replSetGetConfig") + set.calls("replSetReconfig"), 0);
}

#[tokio::test]
async fn no_reachable_member_is_a_retryable_error() {
    let set = FakeSet::three().with_member(NEW, "d3:27017", Kind::Data);
    {
        let mut s = set.lock();
        for h in ["d1:27017", "d2:27017", "a1:27017", "d3:27017"] {
            s.down.insert(h.to_owned());
        }
    }
    let err = apply(&set, &set, &task(TaskType::Add, "d3:27017", NEW), &settings())
        .await
        .expect_err("nobody answers");
    assert!(err.is_retryable());
    assert!(err.to_string().contains("no member answered"), "{err}");
}

#[tokio::test]
async fn a_reconfig_lost_to_a_duplicate_run_is_success() {
    let set = FakeSet::three().with_member(NEW, "d3:27017", Kind::Data);
    // A duplicate delivery applies the same task between our read and our
    // reconfig, which the primary then refuses (not a newer version).
    let Decision::Reconfig { config: theirs, .. } =
        replset::add(&set.config_now(), "d3:27017", Kind::Data).expect("a decision")
    else {
        panic!("expected a reconfig");
    };
    set.lock().race = Some(theirs);
    let report = apply(&set, &set, &task(TaskType::Add, "d3:27017", NEW), &settings())
        .await
        .expect("the task is applied, by the other run");
    assert_eq!(report.result, "already-applied");
    assert!(
        report.note.as_deref().is_some_and(|n| n.contains("another run")),
        "{report:?}"
    );
    assert_eq!(set.calls("replSetReconfig"), 1);
    assert_eq!(set.config_now().version, 2);
}

#[tokio::test]
async fn a_failed_reconfig_that_did_not_apply_is_returned() {
    let set = FakeSet::three().with_member(NEW, "d3:27017", Kind::Data);
    let primary = set.members[0].node.endpoint.clone();
    set.fail(
        "replSetReconfig",
        command_error(&primary, "replSetReconfig", 109, "ConfigurationInProgress"),
    );
    let err = apply(&set, &set, &task(TaskType::Add, "d3:27017", NEW), &settings())
        .await
        .expect_err("failed");
    assert!(err.is_retryable(), "ConfigurationInProgress passes: {err}");
    assert_eq!(err.error_type(), "Retryable.DataStoreError");
    assert_eq!(set.config_now().version, 1, "nothing applied");
    let primary = set.members[0].node.endpoint.clone();
    set.fail(
        "replSetReconfig",
        command_error(&primary, "replSetReconfig", 93, "InvalidReplicaSetConfig"),
    );
    let err = apply(&set, &set, &task(TaskType::Add, "d3:27017", NEW), &settings())
        .await
        .expect_err("failed");
    assert!(!err.is_retryable(), "an invalid config needs a person: {err}");
}

#[tokio::test]
async fn dry_run_decides_and_sends_nothing() {
    let set = FakeSet::three().with_member(NEW, "d3:27017", Kind::Data);
    let dry = TaskSettings {
        dry_run: true,
        ..settings()
    };
    let report = apply(&set, &set, &task(TaskType::Add, "d3:27017", NEW), &dry)
        .await
        .expect("a plan");
    assert_eq!(report.result, "would-apply");
    assert_eq!(report.version, Some(2));
    let report = apply(
        &set,
        &set,
        &task(TaskType::StepDownIfPrimary, "d1:27017", "i-00000000000000001"),
        &dry,
    )
    .await
    .expect("a plan");
    assert_eq!(report.result, "would-step-down");
    assert_eq!(set.calls("replSetReconfig") + set.calls("replSetStepDown"), 0);
    assert_eq!(set.config_now().version, 1);
}

#[tokio::test]
async fn terminate_steps_a_primary_down_then_removes_it() {
    let set = FakeSet::three().with_member(NEW, "d3:27017", Kind::Data);
    apply(&set, &set, &task(TaskType::Add, "d3:27017", NEW), &settings())
        .await
        .expect("added");
    let old = "i-00000000000000001";
    let down = apply(
        &set,
        &set,
        &task(TaskType::StepDownIfPrimary, "d1:27017", old),
        &settings(),
    )
    .await
    .expect("stepped down");
    assert_eq!(down.result, "stepped-down");
    assert_eq!(set.lock().primary.as_deref(), Some("d2:27017"));
    // Delivered again: d1 is no longer primary.
    let again = apply(
        &set,
        &set,
        &task(TaskType::StepDownIfPrimary, "d1:27017", old),
        &settings(),
    )
    .await
    .expect("a no-op");
    assert_eq!(again.result, "not-primary");
    assert_eq!(set.calls("replSetStepDown"), 1);

    let removed = apply(&set, &set, &task(TaskType::Remove, "d1:27017", old), &settings())
        .await
        .expect("removed");
    assert_eq!(removed.result, "applied");
    assert_eq!(
        removed.primary.as_ref().map(ToString::to_string).as_deref(),
        Some("d2:27017")
    );
    assert!(set.config_now().member("d1:27017").is_none());
    let again = apply(&set, &set, &task(TaskType::Remove, "d1:27017", old), &settings())
        .await
        .expect("a no-op");
    assert_eq!(again.result, "already-applied");
}

#[tokio::test]
async fn removing_the_primary_without_a_step_down_is_retryable() {
    let set = FakeSet::three();
    let err = apply(
        &set,
        &set,
        &task(TaskType::Remove, "d1:27017", "i-00000000000000001"),
        &settings(),
    )
    .await
    .expect_err("the primary");
    assert!(err.is_retryable(), "{err}");
    assert_eq!(set.calls("replSetReconfig"), 0);
}

#[tokio::test]
async fn a_remove_that_would_leave_no_majority_is_refused() {
    let set = FakeSet::three();
    set.lock().down.insert("a1:27017".to_owned());
    // d1 primary, a1 down: removing d2 leaves d1 and a1 voting, one of two up.
    let err = apply(
        &set,
        &set,
        &task(TaskType::Remove, "d2:27017", "i-00000000000000002"),
        &settings(),
    )
    .await
    .expect_err("no majority");
    assert!(err.is_retryable(), "health can come back: {err}");
    assert_eq!(set.calls("replSetReconfig"), 0);
    assert_eq!(set.config_now().members.len(), 3);
}

#[tokio::test]
async fn a_remove_of_a_host_now_owned_by_another_instance_is_skipped() {
    // The old instance's late remove task names a host a new instance has
    // taken over (same private address): the new member stays.
    let set = FakeSet::three();
    let report = apply(
        &set,
        &set,
        &task(TaskType::Remove, "d2:27017", "i-0000000000000000f"),
        &settings(),
    )
    .await
    .expect("skipped");
    assert_eq!(report.result, "skipped");
    assert!(
        report
            .note
            .as_deref()
            .is_some_and(|n| n.contains("i-00000000000000002"))
    );
    assert!(set.config_now().member("d2:27017").is_some());
}

#[tokio::test]
async fn a_step_down_with_no_electable_secondary_is_retryable() {
    let set = FakeSet::three();
    set.lock().down.insert("d2:27017".to_owned());
    let err = apply(
        &set,
        &set,
        &task(TaskType::StepDownIfPrimary, "d1:27017", "i-00000000000000001"),
        &settings(),
    )
    .await
    .expect_err("nobody to hand over to");
    assert!(err.is_retryable(), "{err}");
    assert!(err.to_string().contains("ExceededTimeLimit"), "{err}");
}

#[tokio::test]
async fn a_lost_step_down_answer_is_checked() {
    // The member steps down and the connection drops before its answer:
    // asking again shows it is no longer primary, so the task is done.
    let set = FakeSet::three();
    set.lock().lose_step_down_answer = true;
    let t = task(TaskType::StepDownIfPrimary, "d1:27017", "i-00000000000000001");
    let report = apply(&set, &set, &t, &settings())
        .await
        .expect("done, answer lost");
    assert_eq!(report.result, "stepped-down");
    assert_eq!(set.lock().primary.as_deref(), Some("d2:27017"));

    // A lost answer from a member that is still primary is an error.
    let set = FakeSet::three();
    let primary = set.members[0].node.endpoint.clone();
    set.fail(
        "replSetStepDown",
        MemberError::Down {
            endpoint: primary,
            source: "connection reset by peer".into(),
        },
    );
    let err = apply(&set, &set, &t, &settings())
        .await
        .expect_err("not stepped down");
    assert!(err.is_retryable(), "{err}");
    assert_eq!(set.lock().primary.as_deref(), Some("d1:27017"));
}

#[tokio::test]
async fn an_arbiter_change_that_needs_a_default_write_concern_is_not_retried() {
    // MongoDB 5.0+ refuses a reconfig that would change the implicit
    // default write concern (PSS + A) until setDefaultRWConcern is run.
    let set = FakeSet::three().with_member(NEW, "a2:27017", Kind::Arbiter);
    let primary = set.members[0].node.endpoint.clone();
    set.fail(
        "replSetReconfig",
        MemberError::Command {
            endpoint: primary,
            command: "replSetReconfig",
            code: 103,
            code_name: "NewReplicaSetConfigurationIncompatible".into(),
            message: "Reconfig attempted to install a config that would change the implicit default write concern. \
                      Use the setDefaultRWConcern command to set a cluster-wide write concern and try the reconfig again."
                .into(),
        },
    );
    let err = apply(
        &set,
        &set,
        &task(TaskType::AddArbiter, "a2:27017", NEW),
        &settings(),
    )
    .await
    .expect_err("refused");
    assert!(!err.is_retryable(), "{err}");
    assert!(err.to_string().contains("setDefaultRWConcern"), "{err}");
    assert_eq!(set.config_now().version, 1);
}

#[tokio::test]
async fn a_member_configured_under_another_name_is_found_by_its_aliases() {
    // The set was configured with addresses; the tags give DNS names.
    let set = FakeSet::three();
    let old = "i-00000000000000002";
    let by_name = |kind| task(kind, "ip-10-0-0-2.internal:27017", old).with_aliases(vec!["d2:27017".into()]);
    let report = apply(&set, &set, &by_name(TaskType::Remove), &settings())
        .await
        .expect("removed");
    assert_eq!(report.result, "applied", "{report:?}");
    assert!(set.config_now().member("d2:27017").is_none());

    // Without its aliases the same remove would find nothing to do.
    let set = FakeSet::three();
    let report = apply(
        &set,
        &set,
        &task(TaskType::Remove, "ip-10-0-0-2.internal:27017", old),
        &settings(),
    )
    .await
    .expect("a no-op");
    assert_eq!(report.result, "already-applied");

    // A primary known by its address steps down for a task naming its DNS name.
    let set = FakeSet::three();
    let primary = task(
        TaskType::StepDownIfPrimary,
        "ip-10-0-0-1.internal:27017",
        "i-00000000000000001",
    )
    .with_aliases(vec!["d1:27017".into()]);
    let report = apply(&set, &set, &primary, &settings())
        .await
        .expect("stepped down");
    assert_eq!(report.result, "stepped-down");
}

#[tokio::test]
async fn an_add_of_a_member_already_there_under_an_alias_adds_nothing() {
    let set = FakeSet::three().with_member(NEW, "ip-10-0-0-2.internal:27017", Kind::Data);
    // d2 is already in the config by address; its instance is tagged by name.
    let t = task(TaskType::Add, "ip-10-0-0-2.internal:27017", NEW).with_aliases(vec!["d2:27017".into()]);
    let report = apply(&set, &set, &t, &settings()).await.expect("a no-op");
    assert_eq!(report.result, "already-applied");
    assert_eq!(set.config_now().members.len(), 3);
}
