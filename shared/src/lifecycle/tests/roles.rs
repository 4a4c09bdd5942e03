//! Unit tests of `roles`: the search role's weighted record, the mongodb
//! roles' tasks, and roles that fail loudly when their setting is missing.

use super::*;
use crate::dns;
use crate::lifecycle::fake::{FakeCloud, instance};
use crate::lifecycle::node::plan;
use crate::tags;

fn search_node(endpoint: Option<&str>) -> (Instance, NodePlan) {
    let mut pairs = vec![(tags::CLUSTER, "search.example.com"), (tags::ROLE, "search")];
    if let Some(e) = endpoint {
        pairs.push((tags::ENDPOINT, e));
    }
    let i = instance("i-0000000000000000a", &pairs);
    let p = plan(&i.tags).unwrap();
    (i, p)
}

#[tokio::test]
async fn search_join_upserts_once_and_leave_deletes_only_its_own_record() {
    let cloud = FakeCloud::default();
    let roles = ClusterRoles::new(Some(SearchRecords::new(&cloud, 60)));
    let (i, p) = search_node(None);
    let (other, _) = search_node(Some("10.0.0.2"));
    let other = Instance {
        id: "i-0000000000000000b".into(),
        ..other
    };
    let other_plan = plan(&other.tags).unwrap();

    let joined = roles.join(&i, &p, false).await.unwrap();
    assert_eq!(joined.action, "upserted");
    roles.join(&other, &other_plan, false).await.unwrap();
    {
        let s = cloud.state.lock().unwrap();
        assert_eq!(s.records.len(), 2);
        let mine = s
            .records
            .iter()
            .find(|r| r.set_identifier.as_deref() == Some(i.id.as_str()))
            .unwrap();
        assert_eq!(mine.name, "search.example.com");
        assert_eq!(mine.record_type, "CNAME");
        assert_eq!(mine.weight, Some(100));
        assert_eq!(mine.ttl, Some(60));
        assert_eq!(mine.values, vec![i.private_dns_name.clone().unwrap()]);
    }

    // A duplicate delivery writes nothing.
    let writes = cloud.calls("ChangeResourceRecordSets");
    assert_eq!(roles.join(&i, &p, false).await.unwrap().action, "unchanged");
    assert_eq!(cloud.calls("ChangeResourceRecordSets"), writes);

    assert_eq!(roles.leave(&i, &p, true).await.unwrap().action, "would-delete");
    assert_eq!(cloud.state.lock().unwrap().records.len(), 2);
    assert_eq!(roles.leave(&i, &p, false).await.unwrap().action, "deleted");
    assert_eq!(roles.leave(&i, &p, false).await.unwrap().action, "already-gone");
    let s = cloud.state.lock().unwrap();
    assert_eq!(s.records.len(), 1, "the other node's record stays");
    assert_eq!(
        s.records[0].set_identifier.as_deref(),
        Some("i-0000000000000000b")
    );
    assert_eq!(s.records[0].record_type, "A");
}

#[tokio::test]
async fn an_endpoint_change_of_type_replaces_the_old_record() {
    let cloud = FakeCloud::default();
    let roles = ClusterRoles::new(Some(SearchRecords::new(&cloud, 60)));
    let (i, p) = search_node(None);
    roles.join(&i, &p, false).await.unwrap();
    let (_, p2) = search_node(Some("10.9.9.9:9200"));
    assert_eq!(roles.join(&i, &p2, false).await.unwrap().action, "upserted");
    let s = cloud.state.lock().unwrap();
    assert_eq!(s.records.len(), 1);
    assert_eq!(s.records[0].record_type, "A");
    assert_eq!(s.records[0].values, vec!["10.9.9.9".to_owned()]);
}

#[tokio::test]
async fn a_delete_retries_when_the_record_changed_since_it_was_listed() {
    let cloud = FakeCloud::default();
    let roles = ClusterRoles::new(Some(SearchRecords::new(&cloud, 60)));
    let (i, p) = search_node(None);
    roles.join(&i, &p, false).await.unwrap();
    // Another member's join set a new TTL for the whole set meanwhile.
    cloud.state.lock().unwrap().before_change = Some(Box::new(|records| {
        for r in records.iter_mut() {
            r.ttl = Some(300);
        }
    }));
    assert_eq!(roles.leave(&i, &p, false).await.unwrap().action, "deleted");
    assert!(cloud.state.lock().unwrap().records.is_empty());
}

#[tokio::test]
async fn a_join_that_a_duplicate_finished_first_is_unchanged() {
    let cloud = FakeCloud::default();
    let roles = ClusterRoles::new(Some(SearchRecords::new(&cloud, 60)));
    let (i, p) = search_node(None);
    roles.join(&i, &p, false).await.unwrap();
    let (_, by_address) = search_node(Some("10.9.9.9"));
    let wanted = dns::weighted_record("search.example.com", &i.id, "10.9.9.9", 60).unwrap();
    // The duplicate replaced the CNAME with the A record just before us.
    cloud.state.lock().unwrap().before_change = Some(Box::new(move |records| {
        records.clear();
        records.push(wanted);
    }));
    assert_eq!(
        roles.join(&i, &by_address, false).await.unwrap().action,
        "unchanged"
    );
    assert_eq!(cloud.state.lock().unwrap().records.len(), 1);
}

#[tokio::test]
async fn records_with_other_routing_are_never_ours() {
    let cloud = FakeCloud::default();
    let roles = ClusterRoles::new(Some(SearchRecords::new(&cloud, 60)));
    let (i, p) = search_node(None);
    let mut failover = dns::weighted_record("search.example.com", &i.id, "10.0.0.7", 60).unwrap();
    failover.weight = None;
    failover.other_routing = true;
    cloud.state.lock().unwrap().records.push(failover.clone());
    assert_eq!(roles.leave(&i, &p, false).await.unwrap().action, "already-gone");
    assert_eq!(cloud.state.lock().unwrap().records, vec![failover]);
}

#[tokio::test]
async fn dry_run_changes_no_record() {
    let cloud = FakeCloud::default();
    let roles = ClusterRoles::new(Some(SearchRecords::new(&cloud, 60)));
    let (i, p) = search_node(None);
    assert_eq!(roles.join(&i, &p, true).await.unwrap().action, "would-upsert");
    assert!(cloud.state.lock().unwrap().records.is_empty());
    assert_eq!(cloud.calls("ChangeResourceRecordSets"), 0);
}

#[tokio::test]
async fn a_delete_that_loses_a_race_is_already_gone() {
    let cloud = FakeCloud::default();
    let roles = ClusterRoles::new(Some(SearchRecords::new(&cloud, 60)));
    let (i, p) = search_node(None);
    roles.join(&i, &p, false).await.unwrap();
    cloud.fail("ChangeResourceRecordSets", 1, false);
    // The failure is only "already gone" when the record really is gone.
    let err = roles.leave(&i, &p, false).await.unwrap_err();
    assert!(err.to_string().contains("injected"), "{err}");
    assert_eq!(cloud.state.lock().unwrap().records.len(), 1);
}

#[tokio::test]
async fn search_without_a_zone_names_the_variable() {
    let roles = ClusterRoles::<&FakeCloud>::new(None);
    let (i, p) = search_node(None);
    let err = roles.join(&i, &p, false).await.unwrap_err();
    assert!(err.to_string().contains("HOSTED_ZONE_ID"), "{err}");
    assert!(!err.is_retryable());
}

#[tokio::test]
async fn search_needs_a_record_name_and_a_host() {
    let cloud = FakeCloud::default();
    let roles = ClusterRoles::new(Some(SearchRecords::new(&cloud, 60)));
    let i = instance(
        "i-0000000000000000a",
        &[(tags::CLUSTER, "search"), (tags::ROLE, "search")],
    );
    let err = roles.join(&i, &plan(&i.tags).unwrap(), false).await.unwrap_err();
    assert!(err.to_string().contains("not a fully qualified name"), "{err}");

    let (mut i, p) = search_node(None);
    i.private_dns_name = None;
    i.private_ip = None;
    let err = roles.join(&i, &p, false).await.unwrap_err();
    assert!(err.to_string().contains(tags::ENDPOINT), "{err}");
    assert!(cloud.state.lock().unwrap().records.is_empty());
}

#[tokio::test]
async fn unconfigured_roles_fail_and_data_only_roles_do_nothing() {
    let cloud = FakeCloud::default();
    let roles = ClusterRoles::new(Some(SearchRecords::new(&cloud, 60)));
    // Without a chain (no hosted zone) a redis node is an error naming it.
    let i = instance(
        "i-0000000000000000a",
        &[(tags::CLUSTER, "kate.example.com"), (tags::ROLE, "redis")],
    );
    let p = plan(&i.tags).unwrap();
    for result in [roles.join(&i, &p, false).await, roles.leave(&i, &p, false).await] {
        let err = result.unwrap_err();
        assert_eq!(err.error_type(), "NonRetryable.InvalidConfiguration");
        assert!(err.to_string().contains("HOSTED_ZONE_ID"), "{err}");
    }
    for role in ["mongodb", "mongodb-arbiter"] {
        let i = instance(
            "i-0000000000000000a",
            &[(tags::CLUSTER, "kate.example.com"), (tags::ROLE, role)],
        );
        let p = plan(&i.tags).unwrap();
        // Without a task queue a mongodb node is an error naming it.
        for result in [roles.join(&i, &p, false).await, roles.leave(&i, &p, false).await] {
            let err = result.unwrap_err();
            assert_eq!(err.error_type(), "NonRetryable.InvalidConfiguration", "{role}");
            assert!(err.to_string().contains("TASK_QUEUE_URL"), "{err}");
        }
    }
    for pairs in [
        vec![(tags::CLUSTER, "kate.example.com"), (tags::ROLE, "postgres")],
        vec![(tags::CLUSTER, "kate.example.com")],
    ] {
        let i = instance("i-0000000000000000a", &pairs);
        let p = plan(&i.tags).unwrap();
        assert_eq!(roles.join(&i, &p, false).await.unwrap().action, "none");
        assert_eq!(roles.leave(&i, &p, false).await.unwrap().action, "none");
    }
    assert_eq!(cloud.calls("ListResourceRecordSets"), 0);
}

/// A task queue in memory: what was sent, in order, deduplicated the way
/// SQS FIFO does.
#[derive(Default)]
struct FakeQueue {
    sent: std::sync::Mutex<Vec<Task>>,
}

impl TaskQueue for FakeQueue {
    async fn enqueue(&self, task: &Task) -> Result<crate::mongo::ports::Enqueued, Error> {
        let mut sent = self.sent.lock().unwrap();
        if !sent
            .iter()
            .any(|t| t.deduplication_id() == task.deduplication_id())
        {
            sent.push(task.clone());
        }
        Ok(crate::mongo::ports::Enqueued {
            message_id: format!("m-{}", sent.len()),
            deduplication_id: task.deduplication_id(),
        })
    }
}

#[tokio::test]
async fn mongodb_nodes_queue_their_tasks_in_order() {
    use crate::mongo::task::TaskType;
    let cloud = FakeCloud::default();
    let queue = FakeQueue::default();
    let roles =
        ClusterRoles::new(Some(SearchRecords::new(&cloud, 60))).with_mongo(Some(MongoTasks::new(&queue)));
    let data = instance(
        "i-0000000000000000a",
        &[(tags::CLUSTER, "Kate.Example.com."), (tags::ROLE, "mongodb")],
    );
    let arbiter = instance(
        "i-0000000000000000b",
        &[
            (tags::CLUSTER, "kate.example.com"),
            (tags::ROLE, "mongodb-arbiter"),
            (tags::ENDPOINT, "10.0.3.3:27018"),
        ],
    );
    let (pd, pa) = (plan(&data.tags).unwrap(), plan(&arbiter.tags).unwrap());

    let dry = roles.join(&data, &pd, true).await.unwrap();
    assert_eq!(dry.action, "would-enqueue");
    assert!(queue.sent.lock().unwrap().is_empty(), "a dry run sends nothing");

    let joined = roles.join(&data, &pd, false).await.unwrap();
    assert_eq!(joined.action, "enqueued");
    assert!(joined.changed());
    // A duplicate delivery of the launch event: SQS drops the copy.
    roles.join(&data, &pd, false).await.unwrap();
    roles.join(&arbiter, &pa, false).await.unwrap();
    roles.leave(&data, &pd, false).await.unwrap();
    roles.leave(&arbiter, &pa, false).await.unwrap();

    let sent = queue.sent.lock().unwrap();
    let got: Vec<(TaskType, &str, &str)> = sent
        .iter()
        .map(|t| (t.kind, t.host.as_str(), t.instance_id.as_str()))
        .collect();
    let host = "ip-10-0-0-19.eu-west-1.compute.internal:27017";
    assert_eq!(
        got,
        [
            (TaskType::Add, host, "i-0000000000000000a"),
            (TaskType::AddArbiter, "10.0.3.3:27018", "i-0000000000000000b"),
            (TaskType::StepDownIfPrimary, host, "i-0000000000000000a"),
            (TaskType::Remove, host, "i-0000000000000000a"),
            (TaskType::Remove, "10.0.3.3:27018", "i-0000000000000000b"),
        ]
    );
    assert!(
        sent.iter().all(|t| t.set == "kate.example.com"),
        "the set name is normalised"
    );
    assert!(sent.iter().all(|t| Task::parse(&t.to_json()).as_ref() == Ok(t)));
}
