use chrono::TimeZone;

use super::*;

fn at() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 25, 10, 0, 0)
        .single()
        .expect("a valid date")
}

fn body(v: Value) -> String {
    v.to_string()
}

fn good() -> Value {
    serde_json::json!({
        "schema": 1, "type": "add", "set": "kate.example.com", "host": "10.0.1.17:27017",
        "instance_id": "i-0123456789abcdef0", "transition": "launch",
        "requested_at": "2026-11-25T10:00:00Z"
    })
}

#[test]
fn a_task_round_trips_through_its_json() {
    for kind in [Kind::Data, Kind::Arbiter] {
        for task in Task::for_launch(
            "kate.example.com",
            "10.0.1.17:27017",
            "i-0123456789abcdef0",
            kind,
            at(),
        )
        .into_iter()
        .chain(Task::for_terminate(
            "kate.example.com",
            "10.0.1.17:27017",
            "i-0123456789abcdef0",
            kind,
            at(),
        )) {
            assert_eq!(Task::parse(&task.to_json()), Ok(task.clone()), "{task:?}");
        }
    }
}

#[test]
fn launch_and_terminate_make_the_documented_tasks() {
    let launch = Task::for_launch(
        "kate.example.com",
        "h:27017",
        "i-0123456789abcdef0",
        Kind::Data,
        at(),
    );
    assert_eq!(launch.iter().map(|t| t.kind).collect::<Vec<_>>(), [TaskType::Add]);
    let launch = Task::for_launch(
        "kate.example.com",
        "h:27017",
        "i-0123456789abcdef0",
        Kind::Arbiter,
        at(),
    );
    assert_eq!(
        launch.iter().map(|t| t.kind).collect::<Vec<_>>(),
        [TaskType::AddArbiter]
    );
    let gone = Task::for_terminate(
        "kate.example.com",
        "h:27017",
        "i-0123456789abcdef0",
        Kind::Data,
        at(),
    );
    assert_eq!(
        gone.iter().map(|t| t.kind).collect::<Vec<_>>(),
        [TaskType::StepDownIfPrimary, TaskType::Remove]
    );
    assert!(gone.iter().all(|t| t.transition == Transition::Terminate));
    let gone = Task::for_terminate(
        "kate.example.com",
        "h:27017",
        "i-0123456789abcdef0",
        Kind::Arbiter,
        at(),
    );
    assert_eq!(
        gone.iter().map(|t| t.kind).collect::<Vec<_>>(),
        [TaskType::Remove]
    );
}

#[test]
fn the_deduplication_id_is_instance_transition_and_type() {
    let gone = Task::for_terminate(
        "kate.example.com",
        "h:27017",
        "i-0123456789abcdef0",
        Kind::Data,
        at(),
    );
    let ids: Vec<String> = gone.iter().map(Task::deduplication_id).collect();
    assert_eq!(
        ids,
        [
            "i-0123456789abcdef0.terminate.step-down-if-primary",
            "i-0123456789abcdef0.terminate.remove"
        ]
    );
    assert!(ids.iter().all(|i| i.len() <= 128));
    assert_eq!(gone[0].group_id(), "kate.example.com");
}

#[test]
fn the_documented_example_parses() {
    let task = Task::parse(&body(good())).expect("the example in the module docs");
    assert_eq!(task.kind, TaskType::Add);
    assert_eq!(task.requested_at, at());
}

#[test]
fn unknown_fields_are_ignored() {
    let mut v = good();
    v["note"] = "from a newer writer".into();
    assert!(Task::parse(&body(v)).is_ok());
}

#[test]
fn bad_tasks_say_what_is_wrong() {
    let with = |field: &str, value: Value| {
        let mut v = good();
        if value.is_null() {
            v.as_object_mut().expect("an object").remove(field);
        } else {
            v[field] = value;
        }
        Task::parse(&body(v)).expect_err("a bad task")
    };
    assert!(matches!(Task::parse("not json"), Err(TaskError::NotJson(_))));
    assert!(matches!(Task::parse("[1]"), Err(TaskError::NotJson(m)) if m.contains("an array")));
    assert_eq!(with("schema", Value::Null), TaskError::NoSchema);
    assert_eq!(
        with("schema", 2.into()),
        TaskError::UnknownSchema { found: "2".into() }
    );
    assert_eq!(
        with("schema", "1".into()),
        TaskError::UnknownSchema {
            found: "\"1\"".into()
        }
    );
    let err = with("type", "resize".into());
    assert_eq!(
        err,
        TaskError::UnknownType {
            found: "\"resize\"".into()
        }
    );
    assert!(err.to_string().contains("add-arbiter"));
    for (field, value) in [
        ("set", Value::Null),
        ("set", 3.into()),
        ("host", Value::Null),
        ("instance_id", Value::Null),
        ("transition", "reboot".into()),
        ("requested_at", "yesterday".into()),
    ] {
        let err = with(field, value.clone());
        assert!(
            matches!(&err, TaskError::Invalid { field: f, .. } if *f == field),
            "{field} = {value}: {err:?}"
        );
    }
    for (field, value) in [
        ("set", "Kate.Example.com."),
        ("set", "bad name with spaces"),
        ("host", "10.0.1.17"),
        ("host", "10.0.1.17:99999"),
        ("host", ""),
        ("instance_id", "vol-0123456789abcdef0"),
    ] {
        let err = with(field, value.into());
        assert!(
            matches!(&err, TaskError::Invalid { field: f, .. } if *f == field),
            "{field} = {value}: {err:?}"
        );
        assert!(err.to_string().contains(field), "{err}");
    }
    let long = format!("{}.example.com", "a".repeat(60) + "." + &"b".repeat(60));
    assert!(matches!(
        with("set", long.into()),
        TaskError::Invalid { field: "set", .. }
    ));
}

#[test]
fn aliases_are_optional_checked_and_kept() {
    let mut v = good();
    v["aliases"] = serde_json::json!(["ip-10-0-1-17.ec2.internal:27017", "[::1]:27017"]);
    let task = Task::parse(&body(v.clone())).expect("valid aliases");
    assert_eq!(task.aliases.len(), 2);
    assert_eq!(
        task.names().collect::<Vec<_>>(),
        [
            "10.0.1.17:27017",
            "ip-10-0-1-17.ec2.internal:27017",
            "[::1]:27017"
        ]
    );
    assert_eq!(Task::parse(&task.to_json()), Ok(task));
    for bad in [
        serde_json::json!("h:27017"),
        serde_json::json!([1]),
        serde_json::json!(["h"]),
        serde_json::json!(["a,b:1"]),
    ] {
        let mut v = good();
        v["aliases"] = bad.clone();
        let err = Task::parse(&body(v)).expect_err("bad aliases");
        assert!(
            matches!(err, TaskError::Invalid { field: "aliases", .. }),
            "{bad}: {err:?}"
        );
    }
    // Written only when there are some.
    let plain = Task::parse(&body(good())).expect("valid");
    assert!(!plain.to_json().contains("aliases"));
}

#[test]
fn a_host_longer_than_any_host_port_is_refused_before_use() {
    // normalize_host has no length limit; a megabyte "host" used to pass
    // and be quoted whole in the inventory's "unknown member" error.
    for field in ["host", "aliases"] {
        let mut task = good();
        let long = format!("{}:27017", "a".repeat(1 << 20));
        task[field] = if field == "host" {
            serde_json::json!(long)
        } else {
            serde_json::json!([long])
        };
        let err = Task::parse(&body(task)).unwrap_err().to_string();
        assert!(
            err.contains(&format!("the task's {field}")) && err.contains("bytes long"),
            "{err:.200}"
        );
        assert!(err.len() < 300, "{} bytes", err.len());
    }
}
