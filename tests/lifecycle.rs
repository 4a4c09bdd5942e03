//! lifecycle-hook against the local AWS: Auto Scaling groups of one whose
//! instances are replaced, events delivered as AWS delivers them, and the
//! world checked afterwards: which volume exists, made from which snapshot,
//! where it is attached, which records Route 53 holds, and which result each
//! lifecycle action was completed with (recorded by the local AWS).

use std::time::Duration;

use aws_sdk_ec2::types::Filter;
use lifecycle_hook::LifecycleHook;
use ninelives_tests::{
    Ec2, Group, completions, env, event, fixture, fresh, hosted_zone, secs, token, unique,
};
use serde_json::{Value, json};
use shared::function::Function;
use shared::tags;
use snapshot_volumes::SnapshotVolumes;

fn hook(sdk: &aws_config::SdkConfig, pairs: &[(&str, &str)]) -> LifecycleHook {
    let config = lifecycle_hook::Config::from_env(&env(pairs)).expect("config");
    LifecycleHook::new(config, sdk)
}

async fn invoke(h: &LifecycleHook, payload: Value) -> Result<Value, shared::Error> {
    h.handle(event(payload, secs(120))).await
}

/// Data volumes (not root volumes) of the region, as EC2 lists them.
async fn data_volumes(ec2: &Ec2) -> Vec<aws_sdk_ec2::types::Volume> {
    ec2.client
        .describe_volumes()
        .filters(Filter::builder().name("tag-key").values(tags::CLUSTER).build())
        .send()
        .await
        .expect("DescribeVolumes")
        .volumes()
        .to_vec()
}

fn vtag<'a>(v: &'a aws_sdk_ec2::types::Volume, key: &str) -> Option<&'a str> {
    v.tags()
        .iter()
        .find(|t| t.key() == Some(key))
        .and_then(|t| t.value())
}

/// The instance as EC2 describes it.
async fn described(ec2: &Ec2, instance: &str) -> aws_sdk_ec2::types::Instance {
    let out = ec2
        .client
        .describe_instances()
        .instance_ids(instance)
        .send()
        .await
        .expect("DescribeInstances");
    out.reservations()[0].instances()[0].clone()
}

/// (device, volume id, delete on termination) of an instance's block devices.
async fn devices(ec2: &Ec2, instance: &str) -> Vec<(String, String, bool)> {
    described(ec2, instance)
        .await
        .block_device_mappings()
        .iter()
        .filter_map(|m| {
            let ebs = m.ebs()?;
            Some((
                m.device_name()?.to_owned(),
                ebs.volume_id()?.to_owned(),
                ebs.delete_on_termination().unwrap_or(false),
            ))
        })
        .collect()
}

/// A region emptied for one test, its EC2, a cluster name of its own
/// (`<prefix>-<unique>.example.com`), and a group of one whose instances
/// carry that cluster tag and `extra`.
async fn setup(
    region: &'static str,
    prefix: &str,
    extra: &[(&str, &str)],
) -> (aws_config::SdkConfig, Ec2, String, Group) {
    let sdk = fresh(region).await;
    let ec2 = Ec2::new(&sdk);
    let cluster = format!("{prefix}-{}.example.com", unique());
    let mut pairs = vec![(tags::CLUSTER, cluster.as_str())];
    pairs.extend_from_slice(extra);
    let group = Group::create(&sdk, region, &pairs).await;
    (sdk, ec2, cluster, group)
}

fn token_of(e: &Value) -> String {
    e["detail"]["LifecycleActionToken"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn a_replacement_gets_its_data_back_from_the_latest_snapshot() {
    let region = "us-east-2";
    let (sdk, ec2, cluster, group) =
        setup(region, "pg", &[(tags::ROLE, "postgres"), (tags::SIZE, "10")]).await;
    let h = hook(&sdk, &[]);
    let first = group.instances().await.remove(0);

    // The group's first instance: no backup exists yet, so an empty volume
    // of the tagged size.
    let launch = group.event("launch", &first);
    let result = invoke(&h, launch.clone()).await.expect("first launch");
    assert_eq!(result["status"], "continued", "{result:#}");
    assert_eq!(result["volume"]["outcome"], "created-empty", "{result:#}");
    let empty = result["volume"]["volume_id"].as_str().unwrap().to_owned();

    // Two backups of it; the second is the one to restore.
    let snapshotter = SnapshotVolumes::new(snapshot_volumes::Config::from_env(&env(&[])).unwrap(), &sdk);
    let older = snapshotter
        .handle(event(json!({"tier": "daily"}), secs(60)))
        .await
        .expect("daily snapshot");
    tokio::time::sleep(Duration::from_millis(1100)).await; // EC2 start times have second resolution
    let newer = snapshotter
        .handle(event(json!({"tier": "weekly"}), secs(60)))
        .await
        .expect("weekly snapshot");
    let snapshot_of = |r: &Value| -> String {
        let created = r["created"].as_array().unwrap();
        let mine: Vec<&Value> = created
            .iter()
            .filter(|c| c["volume_id"] == empty.as_str())
            .collect();
        assert_eq!(mine.len(), 1, "{r:#}");
        mine[0]["snapshot_id"].as_str().unwrap().to_owned()
    };
    let (older, newer) = (snapshot_of(&older), snapshot_of(&newer));

    // The instance dies; Auto Scaling launches a replacement.
    let second = group.replace(&first).await;
    assert_ne!(second, first);
    let az = described(&ec2, &second)
        .await
        .placement()
        .and_then(|p| p.availability_zone())
        .unwrap()
        .to_owned();
    let launch2 = group.event("launch", &second);
    let result = invoke(&h, launch2.clone()).await.expect("replacement launch");
    assert_eq!(result["status"], "continued", "{result:#}");
    assert_eq!(result["volume"]["outcome"], "restored");
    assert_eq!(result["volume"]["snapshot_id"], newer.as_str(), "not {older}");

    let restored: Vec<_> = data_volumes(&ec2)
        .await
        .into_iter()
        .filter(|v| vtag(v, tags::RESTORED_FOR) == Some(second.as_str()))
        .collect();
    assert_eq!(restored.len(), 1);
    let v = &restored[0];
    assert_eq!(v.snapshot_id(), Some(newer.as_str()));
    assert_eq!(v.availability_zone(), Some(az.as_str()));
    assert_eq!(v.size(), Some(10));
    assert_eq!(vtag(v, tags::CLUSTER), Some(cluster.as_str()));
    assert_eq!(vtag(v, tags::NAME), Some("main"));
    assert_eq!(vtag(v, tags::RESTORED_FROM), Some(newer.as_str()));
    assert_eq!(vtag(v, tags::MANAGED_BY), None);
    let attachment = &v.attachments()[0];
    assert_eq!(attachment.instance_id(), Some(second.as_str()));
    assert_eq!(attachment.device(), Some("/dev/sdf"));
    let at_sdf: Vec<_> = devices(&ec2, &second)
        .await
        .into_iter()
        .filter(|(d, _, _)| d == "/dev/sdf")
        .collect();
    assert_eq!(
        at_sdf,
        vec![("/dev/sdf".to_owned(), v.volume_id().unwrap().to_owned(), true)]
    );

    // Auto Scaling heard CONTINUE once per action, with its token.
    let done = completions(region, &group.name);
    assert!(
        done.contains(&(first.clone(), token_of(&launch), "CONTINUE".into())),
        "{done:?}"
    );
    assert!(
        done.contains(&(second.clone(), token_of(&launch2), "CONTINUE".into())),
        "{done:?}"
    );

    // The same event again: Auto Scaling has moved on, so nothing is made
    // or attached.
    let again = invoke(&h, launch2.clone()).await.expect("duplicate");
    assert_eq!(again["status"], "not-active", "{again:#}");
    assert!(again.get("volume").is_none(), "{again:#}");
    let restored_now = data_volumes(&ec2)
        .await
        .into_iter()
        .filter(|v| vtag(v, tags::RESTORED_FOR) == Some(second.as_str()))
        .count();
    assert_eq!(restored_now, 1);
    assert_eq!(devices(&ec2, &second).await.len(), 2, "root and /dev/sdf only");
    assert_eq!(completions(region, &group.name).len(), 2);

    // Terminate: a postgres node has nothing to leave; the action continues
    // and no volume is touched.
    let term = group.event("terminate", &second);
    let result = invoke(&h, term.clone()).await.expect("terminate");
    assert_eq!(result["status"], "continued", "{result:#}");
    assert!(completions(region, &group.name).contains(&(second.clone(), token_of(&term), "CONTINUE".into())));
    assert_eq!(devices(&ec2, &second).await.len(), 2);
}

#[tokio::test]
async fn search_nodes_get_a_weighted_record_and_lose_only_theirs() {
    use aws_sdk_route53::types::{
        Change, ChangeAction, ChangeBatch, ResourceRecord, ResourceRecordSet, RrType,
    };
    let region = "sa-east-1";
    let sdk = fresh(region).await;
    let ec2 = Ec2::new(&sdk);
    let domain = format!("search-{}.example.com", unique());
    let zone = hosted_zone(&sdk, &domain).await;
    let name = format!("es.{domain}");
    let route53 = aws_sdk_route53::Client::new(&sdk);

    // Other nodes' records in the same weighted set: more than one page of
    // ListResourceRecordSets (300), so finding ours means paging.
    let others: Vec<Change> = (0..310)
        .map(|n| {
            Change::builder()
                .action(ChangeAction::Create)
                .resource_record_set(
                    ResourceRecordSet::builder()
                        .name(&name)
                        .r#type(RrType::Cname)
                        .set_identifier(format!("i-{n:017x}"))
                        .weight(100)
                        .ttl(60)
                        .resource_records(
                            ResourceRecord::builder()
                                .value(format!("node{n}.internal"))
                                .build()
                                .unwrap(),
                        )
                        .build()
                        .unwrap(),
                )
                .build()
                .unwrap()
        })
        .collect();
    route53
        .change_resource_record_sets()
        .hosted_zone_id(&zone)
        .change_batch(ChangeBatch::builder().set_changes(Some(others)).build().unwrap())
        .send()
        .await
        .expect("other nodes' records");

    let group = Group::create(&sdk, region, &[(tags::CLUSTER, &name), (tags::ROLE, "search")]).await;
    let node = group.instances().await.remove(0);
    let h = hook(&sdk, &[("HOSTED_ZONE_ID", &zone), ("RECORD_TTL", "30")]);

    let records = || async {
        let mut all = Vec::new();
        let mut start: Option<(String, Option<RrType>, Option<String>)> = None;
        loop {
            let mut req = route53.list_resource_record_sets().hosted_zone_id(&zone);
            if let Some((n, t, i)) = start.take() {
                req = req
                    .start_record_name(n)
                    .set_start_record_type(t)
                    .set_start_record_identifier(i);
            }
            let page = req.send().await.expect("ListResourceRecordSets");
            all.extend(page.resource_record_sets().iter().cloned());
            if !page.is_truncated() {
                break all;
            }
            start = Some((
                page.next_record_name().unwrap().to_owned(),
                page.next_record_type().cloned(),
                page.next_record_identifier().map(str::to_owned),
            ));
        }
    };

    let launch = group.event("launch", &node);
    let result = invoke(&h, launch.clone()).await.expect("launch");
    assert_eq!(result["status"], "continued", "{result:#}");
    assert_eq!(result["role"]["action"], "upserted");
    assert!(
        result.get("volume").is_none(),
        "a search node gets no volume unless asked"
    );
    let mine: Vec<_> = records()
        .await
        .into_iter()
        .filter(|r| r.set_identifier() == Some(node.as_str()))
        .collect();
    assert_eq!(mine.len(), 1);
    let r = &mine[0];
    assert_eq!(r.name().trim_end_matches('.'), name);
    assert_eq!(r.r#type(), &RrType::Cname);
    assert_eq!(r.weight(), Some(100));
    assert_eq!(r.ttl(), Some(30));
    let private_dns = described(&ec2, &node)
        .await
        .private_dns_name()
        .unwrap()
        .to_owned();
    assert_eq!(r.resource_records()[0].value().trim_end_matches('.'), private_dns);
    assert_eq!(data_volumes(&ec2).await.len(), 0);

    // A duplicate after completion writes nothing.
    let again = invoke(&h, launch).await.expect("duplicate launch");
    assert_eq!(again["status"], "not-active", "{again:#}");
    assert!(again.get("role").is_none(), "{again:#}");

    let term = group.event("terminate", &node);
    let result = invoke(&h, term.clone()).await.expect("terminate");
    assert_eq!(result["status"], "continued", "{result:#}");
    assert_eq!(result["role"]["action"], "deleted");
    let left = records().await;
    assert!(left.iter().all(|r| r.set_identifier() != Some(node.as_str())));
    assert_eq!(
        left.iter()
            .filter(|r| r.name().trim_end_matches('.') == name)
            .count(),
        310,
        "every other node's record stays"
    );
    let again = invoke(&h, group.event("terminate", &node))
        .await
        .expect("second terminate");
    assert_eq!(again["role"]["action"], "already-gone", "{again:#}");
    let done = completions(region, &group.name);
    assert!(
        done.contains(&(node.clone(), token_of(&term), "CONTINUE".into())),
        "{done:?}"
    );
}

#[tokio::test]
async fn bad_input_abandons_with_the_reason_and_creates_nothing() {
    let region = "eu-north-1";
    let sdk = fresh(region).await;
    let ec2 = Ec2::new(&sdk);
    let cluster = format!("bad-{}.example.com", unique());
    let h = hook(&sdk, &[]);
    let cases: Vec<(Vec<(&str, &str)>, &str)> = vec![
        (
            vec![(tags::CLUSTER, &cluster), (tags::ROLE, "cassandra")],
            "unknown role \"cassandra\"",
        ),
        (vec![(tags::ROLE, "postgres")], "no ninelives:cluster tag"),
        (
            vec![
                (tags::CLUSTER, &cluster),
                (tags::RESTORE, "snap-0123456789abcdef0"),
            ],
            "snapshot snap-0123456789abcdef0",
        ),
        (
            vec![
                (tags::CLUSTER, &cluster),
                (tags::ROLE, "redis"),
                (tags::RESTORE, "none"),
                (tags::SIZE, "1"),
            ],
            "HOSTED_ZONE_ID",
        ),
        (
            vec![(tags::CLUSTER, &cluster), (tags::ROLE, "search")],
            "HOSTED_ZONE_ID",
        ),
        (vec![(tags::CLUSTER, &cluster)], "no completed snapshot"),
    ];
    for (pairs, expected) in cases {
        let group = Group::create(&sdk, region, &pairs).await;
        let node = group.instances().await.remove(0);
        let launch = group.event("launch", &node);
        let result = invoke(&h, launch.clone()).await.expect("handled, not retried");
        assert_eq!(result["status"], "abandoned", "{pairs:?}: {result:#}");
        assert_eq!(result["result"], "ABANDON");
        let error = result["error"].as_str().unwrap();
        assert!(error.contains(expected), "{pairs:?}: {error}");
        assert!(
            result["error_type"]
                .as_str()
                .unwrap()
                .starts_with("NonRetryable.")
        );
        assert_eq!(
            completions(region, &group.name),
            vec![(node.clone(), token_of(&launch), "ABANDON".to_owned())]
        );
    }
    // Only the redis case made a volume (before its role failed); it is
    // attached and goes with the instance Auto Scaling now terminates.
    let volumes = data_volumes(&ec2).await;
    assert_eq!(volumes.len(), 1, "{volumes:?}");
    assert_eq!(volumes[0].attachments().len(), 1);

    // An instance that no longer exists, in an old event: named, and the
    // action (which Auto Scaling no longer has) is not left to a retry.
    let group = Group::create(&sdk, region, &[(tags::CLUSTER, &cluster)]).await;
    let mut stale = group.event("terminate", "i-0aaaaaaaaaaaaaaa1");
    stale["time"] = json!("2026-01-01T00:00:00Z");
    let result = invoke(&h, stale).await.expect("handled");
    assert_eq!(result["status"], "not-active", "{result:#}");
    assert!(
        result["error"]
            .as_str()
            .unwrap()
            .contains("instance i-0aaaaaaaaaaaaaaa1")
    );
    assert!(completions(region, &group.name).is_empty());
}

#[tokio::test]
async fn duplicate_deliveries_at_once_attach_one_volume() {
    let region = "ap-south-1";
    let sdk = fresh(region).await;
    let ec2 = Ec2::new(&sdk);
    let cluster = format!("dup-{}.example.com", unique());
    // A backup to restore, from a volume of an earlier instance.
    let old = ec2.instance().await;
    let source = ec2
        .volume(
            &old.az,
            &[(tags::CLUSTER, &cluster), (tags::NAME, "main")],
            Some((&old, "/dev/sdf")),
        )
        .await;
    let snapshotter = SnapshotVolumes::new(snapshot_volumes::Config::from_env(&env(&[])).unwrap(), &sdk);
    snapshotter
        .handle(event(json!({"tier": "daily"}), secs(60)))
        .await
        .expect("snapshot");
    let snapshot = ec2
        .snapshots_of(&source)
        .await
        .remove(0)
        .snapshot_id()
        .unwrap()
        .to_owned();

    let group = Group::create(
        &sdk,
        region,
        &[
            (tags::CLUSTER, &cluster),
            (tags::ROLE, "mongodb-arbiter"),
            (tags::RESTORE, "latest"),
        ],
    )
    .await;
    let node = group.instances().await.remove(0);
    let h = hook(&sdk, &[]);
    let launch = group.event("launch", &node);
    let (a, b) = tokio::join!(invoke(&h, launch.clone()), invoke(&h, launch.clone()));
    // Without TASK_QUEUE_URL the arbiter cannot queue its task: both end in
    // ABANDON or not-active,
    // but the volume is made and attached exactly once.
    let statuses = [a.unwrap()["status"].clone(), b.unwrap()["status"].clone()];
    assert!(statuses.contains(&json!("abandoned")), "{statuses:?}");
    let restored: Vec<_> = data_volumes(&ec2)
        .await
        .into_iter()
        .filter(|v| vtag(v, tags::RESTORED_FOR) == Some(node.as_str()))
        .collect();
    assert_eq!(restored.len(), 1, "one volume for two deliveries");
    assert_eq!(restored[0].snapshot_id(), Some(snapshot.as_str()));
    assert_eq!(restored[0].attachments().len(), 1);
    let at_sdf = devices(&ec2, &node)
        .await
        .into_iter()
        .filter(|(d, _, _)| d == "/dev/sdf")
        .count();
    assert_eq!(at_sdf, 1);
    assert_eq!(completions(region, &group.name).len(), 1, "one completion");
}

/// Replaces the inner lifecycle message of a fixture (however wrapped).
fn rewrite(mut fixture: Value, set: &dyn Fn(&mut Value)) -> Value {
    fn inner(v: &mut Value, set: &dyn Fn(&mut Value)) {
        if v.get("LifecycleTransition").is_some() {
            set(v);
            return;
        }
        for key in ["Message", "body"] {
            if let Some(text) = v.get(key).and_then(Value::as_str) {
                // A deliberately broken body stays as it is.
                if let Ok(mut parsed) = serde_json::from_str::<Value>(text) {
                    inner(&mut parsed, set);
                    v[key] = Value::from(parsed.to_string());
                }
                return;
            }
        }
        if let Some(records) = v.get_mut("Records").and_then(Value::as_array_mut) {
            for r in records {
                match r.get_mut("Sns") {
                    Some(sns) => inner(sns, set),
                    None => inner(r, set),
                }
            }
        }
    }
    inner(&mut fixture, set);
    fixture
}

#[tokio::test]
async fn every_delivery_shape_completes_its_action() {
    let region = "eu-west-3";
    let (sdk, ec2, _, group) = setup(
        region,
        "shape",
        &[(tags::ROLE, "search"), (tags::RESTORE, "none"), (tags::SIZE, "1")],
    )
    .await;
    let h = hook(&sdk, &[]);
    let node = group.instances().await.remove(0);
    let zone = hosted_zone(&sdk, "example.com").await;
    let h_search = hook(&sdk, &[("HOSTED_ZONE_ID", &zone)]);

    let mut tokens = Vec::new();
    for file in [
        "direct-launch.json",
        "sns-launch.json",
        "sqs-sns-launch.json",
        "sqs-terminate.json",
    ] {
        let t = token();
        tokens.push((file, t.clone()));
        let e = rewrite(fixture(&format!("lifecycle-hook/{file}")), &|m| {
            m["AutoScalingGroupName"] = json!(group.name);
            m["EC2InstanceId"] = json!(node);
            m["LifecycleActionToken"] = json!(t);
            m["LifecycleHookName"] = json!(ninelives_tests::LAUNCH_HOOK);
            m["Time"] = json!(chrono::Utc::now().to_rfc3339());
        });
        let result = invoke(&h_search, e)
            .await
            .unwrap_or_else(|err| panic!("{file}: {err}"));
        if file.starts_with("sqs") {
            assert_eq!(result, json!({"batchItemFailures": []}), "{file}");
        } else {
            assert!(
                matches!(result["status"].as_str(), Some("continued" | "not-active")),
                "{file}: {result:#}"
            );
        }
    }
    let done = completions(region, &group.name);
    for (file, t) in &tokens {
        assert!(
            done.iter()
                .any(|(i, tok, r)| i == &node && tok == t && r == "CONTINUE"),
            "{file}: {done:?}"
        );
    }
    let volumes = data_volumes(&ec2).await;
    assert_eq!(volumes.len(), 1, "one empty volume, whatever the route");

    // Test notifications and instances that are not ours: acknowledged,
    // nothing completed.
    let result = invoke(&h, fixture("lifecycle-hook/sqs-test-notification.json"))
        .await
        .unwrap();
    assert_eq!(result, json!({"batchItemFailures": []}));
    let plain = Group::create(&sdk, region, &[("team", "web")]).await;
    let web = plain.instances().await.remove(0);
    let result = invoke(&h, plain.event("launch", &web)).await.unwrap();
    assert_eq!(result["status"], "ignored", "{result:#}");
    assert!(completions(region, &plain.name).is_empty(), "someone else's hook");

    // A broken message in a batch fails alone.
    let mut batch = fixture("lifecycle-hook/sqs-terminate.json");
    let good = batch["Records"][0].clone();
    let mut bad = good.clone();
    bad["messageId"] = json!("bad-1");
    bad["body"] = json!("{\"LifecycleTransition\": ");
    batch["Records"] = json!([bad, good]);
    let batch = rewrite(batch, &|m| {
        m["AutoScalingGroupName"] = json!(plain.name);
        m["EC2InstanceId"] = json!(web);
    });
    let result = invoke(&h, batch).await.unwrap();
    assert_eq!(
        result,
        json!({"batchItemFailures": [{"itemIdentifier": "bad-1"}]})
    );
}

#[tokio::test]
async fn dry_run_creates_and_completes_nothing() {
    let region = "ap-northeast-2";
    let (sdk, ec2, _, group) = setup(region, "dry", &[(tags::RESTORE, "none"), (tags::SIZE, "5")]).await;
    let node = group.instances().await.remove(0);
    let h = hook(&sdk, &[("DRY_RUN", "true")]);
    let result = invoke(&h, group.event("launch", &node)).await.expect("dry run");
    assert_eq!(result["status"], "dry-run", "{result:#}");
    assert_eq!(result["result"], "CONTINUE");
    assert_eq!(result["volume"]["outcome"], "would-create-empty");
    assert!(data_volumes(&ec2).await.is_empty());
    assert!(ninelives_tests::lifecycle_actions(region, &group.name).is_empty());
}

#[tokio::test]
async fn the_auto_scaling_adapter_heartbeats_completes_once_and_reads_the_timeout() {
    use shared::autoscaling::AutoScaling;
    use shared::lifecycle::action::{LifecycleAction, Transition};
    use shared::lifecycle::ports::{Accepted, ActionResult, LifecycleApi};
    let region = "eu-south-1";
    let sdk = fresh(region).await;
    let group = Group::create(&sdk, region, &[(tags::CLUSTER, "adapter.example.com")]).await;
    let node = group.instances().await.remove(0);
    let api = AutoScaling::from_conf(&sdk);
    let action = LifecycleAction {
        transition: Transition::Launch,
        group: group.name.clone(),
        hook: ninelives_tests::LAUNCH_HOOK.into(),
        instance_id: node.clone(),
        token: Some(token()),
        time: None,
        origin: None,
        destination: None,
    };
    assert_eq!(
        api.heartbeat_timeout(&group.name, ninelives_tests::LAUNCH_HOOK)
            .await
            .unwrap(),
        Some(Duration::from_secs(300))
    );
    assert_eq!(
        api.heartbeat_timeout(&group.name, "no-such-hook").await.unwrap(),
        None
    );
    assert_eq!(api.heartbeat(&action).await.unwrap(), Accepted::Yes);
    assert_eq!(ninelives_tests::heartbeats(region, &group.name, &node), 1);
    assert_eq!(
        api.complete(&action, ActionResult::Continue).await.unwrap(),
        Accepted::Yes
    );
    assert!(matches!(
        api.complete(&action, ActionResult::Abandon).await.unwrap(),
        Accepted::NotActive(m) if m.contains("No active Lifecycle Action")
    ));
    assert!(matches!(
        api.heartbeat(&action).await.unwrap(),
        Accepted::NotActive(_)
    ));
    assert_eq!(
        completions(region, &group.name),
        vec![(node, action.token.clone().unwrap(), "CONTINUE".to_owned())]
    );
    // Anything else Auto Scaling refuses stays an error.
    let mut wrong = action.clone();
    wrong.group = "no-such-group".into();
    let err = api.complete(&wrong, ActionResult::Continue).await.unwrap_err();
    assert_eq!(err.aws_code(), Some("ValidationError"));
    assert!(!err.is_retryable());
}
