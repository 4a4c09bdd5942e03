//! snapshot-volumes and purge-snapshots against the local AWS: each test
//! builds a fleet, invokes the handler as Lambda would, and asserts what
//! exists in EC2 afterwards.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use chrono::{SecondsFormat, Utc};
use futures::StreamExt;
use ninelives_tests::{Ec2, env, event, fixture, fresh, ids, secs, tag, unique};
use purge_snapshots::PurgeSnapshots;
use serde_json::{Value, json};
use shared::Error;
use shared::backup::model::{
    DeleteOutcome, InstanceDisks, MultiSnapshot, SingleSnapshot, Snapshot, SnapshotQuery, Tags, Volume,
};
use shared::backup::ports::BackupApi;
use shared::function::Function;
use shared::notify::SnsNotifier;
use shared::tags;
use snapshot_volumes::SnapshotVolumes;
use tokio::sync::Barrier;

fn snapshotter(sdk: &aws_config::SdkConfig, pairs: &[(&str, &str)]) -> SnapshotVolumes {
    let config = snapshot_volumes::Config::from_env(&env(pairs)).expect("config");
    SnapshotVolumes::new(config, sdk)
}

fn purger(sdk: &aws_config::SdkConfig, pairs: &[(&str, &str)]) -> PurgeSnapshots {
    let mut all = vec![("PURGE_DELETES_PER_SECOND", "0"), ("PURGE_CONCURRENCY", "16")];
    all.extend_from_slice(pairs);
    let config = purge_snapshots::Config::from_env(&env(&all)).expect("config");
    PurgeSnapshots::new(config, sdk)
}

fn rfc3339(t: chrono::DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// The entries of result list `key` whose `field` is `value`. Tests share
/// the local AWS with earlier runs of themselves, so they look only at
/// their own clusters, volumes and snapshots.
fn pick<'a>(result: &'a Value, key: &str, field: &str, value: &str) -> Vec<&'a Value> {
    result[key]
        .as_array()
        .unwrap_or_else(|| panic!("{key} is not a list: {result:#}"))
        .iter()
        .filter(|e| e[field] == value)
        .collect()
}

/// The snapshot ids in result list `key` (plain ids or objects with one).
fn strings(result: &Value, key: &str) -> BTreeSet<String> {
    result[key]
        .as_array()
        .unwrap_or_else(|| panic!("{key} is not a list: {result:#}"))
        .iter()
        .map(|e| e.get("snapshot_id").unwrap_or(e).as_str().unwrap().to_owned())
        .collect()
}

/// A scheduled event of `tier` at `time`, from the fixture of that tier.
fn scheduled(tier: &str, time: chrono::DateTime<Utc>) -> Value {
    let mut e = fixture(&format!("snapshot-volumes/scheduled-{tier}.json"));
    e["time"] = json!(rfc3339(time));
    e
}

#[tokio::test]
async fn snapshots_tagged_volumes_together_per_instance_and_cluster() {
    let sdk = fresh("us-west-1").await;
    let ec2 = Ec2::new(&sdk);
    let db = format!("db-{}.example.com", unique());
    let kate = format!("kate-{}.example.com", unique());
    let a = ec2.instance().await;
    let b = ec2.instance().await;
    let main = ec2
        .volume(
            &a.az,
            &[(tags::CLUSTER, &db), (tags::NAME, "main")],
            Some((&a, "/dev/sdf")),
        )
        .await;
    let ts1 = ec2
        .volume(
            &a.az,
            &[(tags::CLUSTER, &db), (tags::NAME, "ts1")],
            Some((&a, "/dev/sdg")),
        )
        .await;
    let scratch = ec2
        .volume(&a.az, &[("Name", "scratch")], Some((&a, "/dev/sdh")))
        .await;
    let cache = ec2
        .volume(
            &a.az,
            &[(tags::CLUSTER, &kate), (tags::NAME, "data")],
            Some((&a, "/dev/sdi")),
        )
        .await;
    let replica = ec2
        .volume(
            &b.az,
            &[(tags::CLUSTER, &db), (tags::NAME, "main")],
            Some((&b, "/dev/sdf")),
        )
        .await;
    let spare = ec2
        .volume(&a.az, &[(tags::CLUSTER, &db), (tags::NAME, "spare")], None)
        .await;
    let off = ec2
        .volume(
            &a.az,
            &[(tags::CLUSTER, &db), (tags::NAME, "old"), (tags::BACKUP, "off")],
            None,
        )
        .await;
    let nameless = ec2.volume(&a.az, &[(tags::CLUSTER, &db)], None).await;

    let time = Utc::now();
    let handler = snapshotter(&sdk, &[]);
    let result = handler
        .handle(event(scheduled("daily", time), secs(300)))
        .await
        .expect("snapshot run");
    assert_eq!(result["complete"], true, "{result:#}");

    let period = time.format("%Y-%m-%d").to_string();
    let expires = rfc3339(time + chrono::Duration::days(14));
    for (volume, cluster, name, instance) in [
        (&main, &db, "main", Some(&a.id)),
        (&ts1, &db, "ts1", Some(&a.id)),
        (&cache, &kate, "data", Some(&a.id)),
        (&replica, &db, "main", Some(&b.id)),
        (&spare, &db, "spare", None),
    ] {
        let snaps = ec2.snapshots_of(volume).await;
        assert_eq!(snaps.len(), 1, "{volume}: exactly one snapshot");
        let s = &snaps[0];
        assert_eq!(tag(s, tags::CLUSTER), Some(cluster.as_str()));
        assert_eq!(tag(s, tags::NAME), Some(name));
        assert_eq!(tag(s, tags::TIER), Some("daily"));
        assert_eq!(tag(s, tags::VOLUME_ID), Some(volume.as_str()));
        assert_eq!(tag(s, tags::EXPIRES_AT), Some(expires.as_str()));
        assert_eq!(tag(s, tags::MANAGED_BY), Some("ninelives"));
        assert_eq!(tag(s, tags::PERIOD), Some(period.as_str()));
        assert_eq!(tag(s, tags::INSTANCE_ID), instance.map(String::as_str));
    }
    for volume in [&scratch, &off, &nameless, &a.root_volume, &b.root_volume] {
        assert!(
            ec2.snapshots_of(volume).await.is_empty(),
            "{volume} must not be snapshotted"
        );
    }

    // db's two volumes on instance a are one CreateSnapshots set: one
    // description for the set, one run; kate's volume on the same instance
    // is its own snapshot with the book's description.
    let set: Vec<_> = [&main, &ts1]
        .into_iter()
        .map(|v| async { ec2.snapshots_of(v).await })
        .collect();
    let set: Vec<_> = futures::future::join_all(set)
        .await
        .into_iter()
        .flatten()
        .collect();
    assert_eq!(set[0].description(), set[1].description());
    assert!(
        set[0]
            .description()
            .unwrap()
            .starts_with(&format!("Backup of {} (2 volumes) - for {db}", a.id))
    );
    let single = &ec2.snapshots_of(&cache).await[0];
    assert_eq!(
        single.description().unwrap(),
        format!("Backup of {cache} - for {kate}/data - daily - expires {expires}")
    );

    let skipped: BTreeMap<String, String> = result["skipped"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["volume_id"] == off.as_str() || s["volume_id"] == nameless.as_str())
        .map(|s| {
            (
                s["volume_id"].as_str().unwrap().to_owned(),
                s["reason"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(skipped.len(), 2, "{skipped:?}");
    assert_eq!(skipped[&off], "ninelives:backup=off");
    assert!(
        skipped[&nameless].contains("no ninelives:name tag"),
        "{skipped:?}"
    );
}

#[tokio::test]
async fn duplicate_deliveries_sequential_and_concurrent_make_one_snapshot() {
    let sdk = fresh("us-west-2").await;
    let ec2 = Ec2::new(&sdk);
    let cluster = format!("dup-{}.example.com", unique());
    let a = ec2.instance().await;
    let mut volumes = Vec::new();
    for (name, device) in [("main", "/dev/sdf"), ("ts1", "/dev/sdg")] {
        volumes.push(
            ec2.volume(
                &a.az,
                &[(tags::CLUSTER, &cluster), (tags::NAME, name)],
                Some((&a, device)),
            )
            .await,
        );
    }
    volumes.push(
        ec2.volume(&a.az, &[(tags::CLUSTER, &cluster), (tags::NAME, "spare")], None)
            .await,
    );

    let the_event = scheduled("hourly", Utc::now());
    let handler = snapshotter(&sdk, &[]);
    let first = handler.handle(event(the_event.clone(), secs(300))).await.unwrap();
    assert_eq!(pick(&first, "created", "cluster", &cluster).len(), 3);
    let second = handler.handle(event(the_event.clone(), secs(300))).await.unwrap();
    assert!(
        pick(&second, "created", "cluster", &cluster).is_empty(),
        "{second:#}"
    );
    let done = strings(&second, "already_done");
    assert_eq!(
        done,
        strings(&first, "created"),
        "the first delivery's snapshots count"
    );

    // Two more deliveries at once, through two handlers (two Lambda
    // execution environments), after the first finished: still one
    // snapshot per volume. (Two first deliveries racing: see below.)
    let other = snapshotter(&sdk, &[]);
    let (x, y) = tokio::join!(
        handler.handle(event(the_event.clone(), secs(300))),
        other.handle(event(the_event.clone(), secs(300)))
    );
    x.unwrap();
    y.unwrap();
    for v in &volumes {
        assert_eq!(ec2.snapshots_of(v).await.len(), 1, "{v}");
    }

    // Another period (the hour before) is another snapshot.
    let earlier = scheduled("hourly", Utc::now() - chrono::Duration::hours(1));
    let third = handler.handle(event(earlier, secs(300))).await.unwrap();
    assert_eq!(pick(&third, "created", "cluster", &cluster).len(), 3);
    for v in &volumes {
        assert_eq!(ec2.snapshots_of(v).await.len(), 2, "{v}");
    }
}

#[tokio::test]
async fn racing_first_deliveries_converge_to_one_consistent_set() {
    // Two deliveries of a new period at once, both listing before either
    // creates: both create, and afterwards each volume has exactly one
    // snapshot, the two CreateSnapshots members from the same set.
    let sdk = fresh("eu-west-1").await;
    let ec2 = Ec2::new(&sdk);
    let cluster = format!("race-{}.example.com", unique());
    let a = ec2.instance().await;
    let main = ec2
        .volume(
            &a.az,
            &[(tags::CLUSTER, &cluster), (tags::NAME, "main")],
            Some((&a, "/dev/sdf")),
        )
        .await;
    let ts1 = ec2
        .volume(
            &a.az,
            &[(tags::CLUSTER, &cluster), (tags::NAME, "ts1")],
            Some((&a, "/dev/sdg")),
        )
        .await;
    let spare = ec2
        .volume(&a.az, &[(tags::CLUSTER, &cluster), (tags::NAME, "spare")], None)
        .await;

    // Both deliveries list the period, then wait for each other before
    // creating: the race EC2's eventually consistent listing allows.
    let gate = Arc::new(Barrier::new(2));
    let the_event = scheduled("weekly", Utc::now());
    let config = || snapshot_volumes::Config::from_env(&env(&[])).unwrap();
    let racer = || {
        SnapshotVolumes::with(
            config(),
            Gated::new(&sdk, gate.clone()),
            SnsNotifier::from_conf(&sdk, None),
        )
    };
    let (h1, h2) = (racer(), racer());
    let (x, y) = tokio::join!(
        h1.handle_event(event(the_event.clone(), secs(300))),
        h2.handle_event(event(the_event.clone(), secs(300)))
    );
    let (x, y) = (x.unwrap(), y.unwrap());
    let ids_in = |key: &str| -> BTreeSet<String> {
        [&x, &y]
            .iter()
            .flat_map(|v| v[key].as_array().unwrap().iter())
            .map(|c| c.get("snapshot_id").unwrap_or(c).as_str().unwrap().to_owned())
            .collect()
    };
    let (made, removed) = (ids_in("created"), ids_in("duplicates_removed"));
    assert_eq!(
        removed.len(),
        3,
        "both created a full set; one set was removed: {x:#}\n{y:#}"
    );

    let main_snaps = ec2.snapshots_of(&main).await;
    let ts1_snaps = ec2.snapshots_of(&ts1).await;
    let spare_snaps = ec2.snapshots_of(&spare).await;
    assert_eq!((main_snaps.len(), ts1_snaps.len(), spare_snaps.len()), (1, 1, 1));
    assert!(tag(&main_snaps[0], tags::SET).is_some());
    assert_eq!(
        tag(&main_snaps[0], tags::SET),
        tag(&ts1_snaps[0], tags::SET),
        "one CreateSnapshots set survives whole"
    );
    let survivors: Vec<String> = made.difference(&removed).cloned().collect();
    assert_eq!(
        ids(&[main_snaps, ts1_snaps, spare_snaps].concat()),
        survivors,
        "what the runs report is what exists"
    );
}

/// The EC2 adapter, holding each run at a barrier after its first listing
/// of managed snapshots (the pre-check) until the other run got there too.
struct Gated {
    inner: shared::ec2::Ec2,
    gate: Arc<Barrier>,
    waited: AtomicBool,
}

impl Gated {
    fn new(sdk: &aws_config::SdkConfig, gate: Arc<Barrier>) -> Self {
        Gated {
            inner: shared::ec2::Ec2::from_conf(sdk),
            gate,
            waited: AtomicBool::new(false),
        }
    }
}

impl BackupApi for Gated {
    async fn tagged_volumes(&self) -> Result<Vec<Volume>, Error> {
        self.inner.tagged_volumes().await
    }
    async fn instance_disks(&self, ids: &[String]) -> Result<Vec<InstanceDisks>, Error> {
        self.inner.instance_disks(ids).await
    }
    async fn managed_snapshots(&self, query: &SnapshotQuery) -> Result<Vec<Snapshot>, Error> {
        let listed = self.inner.managed_snapshots(query).await;
        if !self.waited.swap(true, Ordering::SeqCst) {
            // Bounded, so a racer that failed early cannot hang the other.
            tokio::time::timeout(Duration::from_secs(30), self.gate.wait())
                .await
                .expect("the other racer reached the gate");
        }
        listed
    }
    async fn create_snapshot(&self, request: &SingleSnapshot) -> Result<String, Error> {
        self.inner.create_snapshot(request).await
    }
    async fn create_snapshots(&self, request: &MultiSnapshot) -> Result<Vec<(String, String)>, Error> {
        self.inner.create_snapshots(request).await
    }
    async fn tag_snapshots(&self, ids: &[String], tags: &Tags) -> Result<(), Error> {
        self.inner.tag_snapshots(ids, tags).await
    }
    async fn delete_snapshot(&self, id: &str) -> Result<DeleteOutcome, Error> {
        self.inner.delete_snapshot(id).await
    }
    async fn image_snapshot_ids(&self) -> Result<BTreeSet<String>, Error> {
        self.inner.image_snapshot_ids().await
    }
}

#[tokio::test]
async fn dry_runs_change_nothing() {
    let sdk = fresh("eu-west-2").await;
    let ec2 = Ec2::new(&sdk);
    let cluster = format!("dry-{}.example.com", unique());
    let a = ec2.instance().await;
    let vol = ec2
        .volume(
            &a.az,
            &[(tags::CLUSTER, &cluster), (tags::NAME, "main")],
            Some((&a, "/dev/sdf")),
        )
        .await;

    // DRY_RUN in the configuration.
    let r = snapshotter(&sdk, &[("DRY_RUN", "true")])
        .handle(event(
            fixture("snapshot-volumes/constant-input-daily.json"),
            secs(60),
        ))
        .await
        .unwrap();
    assert_eq!(pick(&r, "would_create", "volume_id", &vol).len(), 1);
    // The event asking for one (and unable to cancel the configuration's).
    let r = snapshotter(&sdk, &[])
        .handle(event(
            fixture("snapshot-volumes/constant-input-dry-run.json"),
            secs(60),
        ))
        .await
        .unwrap();
    assert_eq!(r["dry_run"], true);
    assert!(ec2.snapshots_of(&vol).await.is_empty());

    // Purge dry run on an expired, deletable snapshot.
    let past = rfc3339(Utc::now() - chrono::Duration::days(1));
    let managed = [
        (tags::MANAGED_BY, "ninelives"),
        (tags::CLUSTER, cluster.as_str()),
        (tags::NAME, "main"),
        (tags::EXPIRES_AT, past.as_str()),
    ];
    let old = ec2.snapshot(&vol, &managed).await;
    // Snapshot start times have whole seconds: make "newest" unambiguous.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let newest = ec2.snapshot(&vol, &managed).await;
    let r = purger(&sdk, &[])
        .handle(event(fixture("purge-snapshots/direct-dry-run.json"), secs(60)))
        .await
        .unwrap();
    let would: Vec<&Value> = pick(&r, "would_delete", "cluster", &cluster);
    assert_eq!(would.len(), 1);
    assert_eq!(would[0]["snapshot_id"], json!(old));
    let r = purger(&sdk, &[("DRY_RUN", "1")])
        .handle(event(fixture("purge-snapshots/scheduled.json"), secs(60)))
        .await
        .unwrap();
    assert_eq!(pick(&r, "would_delete", "cluster", &cluster).len(), 1);
    let mut both = vec![old, newest];
    both.sort();
    assert_eq!(ids(&ec2.snapshots_of(&vol).await), both);
}

/// Tags of a managed snapshot of `cluster/name` expiring at `expires`.
fn managed<'a>(cluster: &'a str, name: &'a str, expires: &'a str) -> Vec<(&'a str, &'a str)> {
    vec![
        (tags::MANAGED_BY, "ninelives"),
        (tags::CLUSTER, cluster),
        (tags::NAME, name),
        (tags::TIER, "hourly"),
        (tags::EXPIRES_AT, expires),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn purge_of_more_than_1200_expired_keeps_exactly_what_it_must() {
    let sdk = fresh("eu-central-1").await;
    let ec2 = Ec2::new(&sdk);
    let cluster = format!("big-{}.example.com", unique());
    let a = ec2.instance().await;
    let vol = ec2
        .volume(&a.az, &[(tags::CLUSTER, &cluster), (tags::NAME, "main")], None)
        .await;
    let past = rfc3339(Utc::now() - chrono::Duration::days(2));
    let future = rfc3339(Utc::now() + chrono::Duration::days(5));

    // 1,250 expired managed snapshots, made 16 at a time.
    let expired_tags = managed(&cluster, "main", &past);
    let expired: Vec<String> = futures::stream::iter(0..1250)
        .map(|_| ec2.snapshot(&vol, &expired_tags))
        .buffer_unordered(16)
        .collect()
        .await;
    // Kept: the newest completed of (cluster, main), expired too; ten not
    // yet expired; one an AMI uses; one whose expiry cannot be read; one
    // not managed by ninelives although it looks expired.
    let unexpired_tags = managed(&cluster, "main", &future);
    let mut kept = Vec::new();
    for _ in 0..10 {
        kept.push(ec2.snapshot(&vol, &unexpired_tags).await);
    }
    let in_ami = ec2.snapshot(&vol, &expired_tags).await;
    ec2.image_of(&in_ami).await;
    let unreadable = ec2
        .snapshot(&vol, &managed(&cluster, "main", "the day after tomorrow"))
        .await;
    let unmanaged = ec2
        .snapshot(
            &vol,
            &[
                (tags::CLUSTER, cluster.as_str()),
                (tags::NAME, "main"),
                (tags::EXPIRES_AT, past.as_str()),
            ],
        )
        .await;
    // moto's start times have whole seconds: wait so the newest is newest.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let newest = ec2.snapshot(&vol, &expired_tags).await;
    kept.extend([
        in_ami.clone(),
        unreadable.clone(),
        unmanaged.clone(),
        newest.clone(),
    ]);
    kept.sort();

    let result = purger(&sdk, &[])
        .handle(event(fixture("purge-snapshots/scheduled.json"), secs(600)))
        .await
        .expect("purge");
    assert_eq!(result["complete"], true);
    assert!(strings(&result, "kept_newest").contains(&newest));
    assert!(strings(&result, "in_use").contains(&in_ami));
    assert!(strings(&result, "invalid").contains(&unreadable));
    assert!(result["not_expired"].as_u64().unwrap() >= 10);

    let left = ids(&ec2.snapshots_of(&vol).await);
    assert_eq!(left, kept, "exactly the kept snapshots remain");
    let expired: BTreeSet<String> = expired.into_iter().collect();
    let deleted = strings(&result, "deleted");
    assert_eq!(
        deleted.intersection(&expired).count(),
        1250,
        "all 1,250 expired went"
    );
    assert!(
        deleted.is_disjoint(&kept.iter().cloned().collect()),
        "nothing kept was deleted"
    );

    // Delivered again: nothing left to do.
    let again = purger(&sdk, &[])
        .handle(event(fixture("purge-snapshots/scheduled.json"), secs(600)))
        .await
        .unwrap();
    assert!(strings(&again, "deleted").is_disjoint(&expired));
    assert_eq!(ids(&ec2.snapshots_of(&vol).await), kept);
}

#[tokio::test]
async fn a_paced_purge_stops_before_its_deadline_and_the_next_run_finishes() {
    let sdk = fresh("ap-northeast-1").await;
    let ec2 = Ec2::new(&sdk);
    let cluster = format!("paced-{}.example.com", unique());
    let a = ec2.instance().await;
    let vol = ec2
        .volume(&a.az, &[(tags::CLUSTER, &cluster), (tags::NAME, "main")], None)
        .await;
    let past = rfc3339(Utc::now() - chrono::Duration::days(1));
    let tags = managed(&cluster, "main", &past);
    let mut made = Vec::new();
    for _ in 0..61 {
        made.push(ec2.snapshot(&vol, &tags).await);
    }

    // 20 deletions a second, and an invocation of 3 s: new work stops 2 s
    // before the deadline, so about 20 go in this run.
    let paced = |sdk| purger(sdk, &[("PURGE_DELETES_PER_SECOND", "20")]);
    let started = std::time::Instant::now();
    let first = paced(&sdk)
        .handle(event(fixture("purge-snapshots/scheduled.json"), secs(3)))
        .await
        .unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "answered before the deadline"
    );
    let made: BTreeSet<String> = made.into_iter().collect();
    let first_deleted = strings(&first, "deleted").intersection(&made).count();
    assert_eq!(first["complete"], false, "{first:#}");
    assert!((10..=30).contains(&first_deleted), "{first_deleted}: {first:#}");
    let left: BTreeSet<String> = strings(&first, "remaining")
        .intersection(&made)
        .cloned()
        .collect();
    assert_eq!(left.len(), 60 - first_deleted, "what is left is listed");

    let second = paced(&sdk)
        .handle(event(fixture("purge-snapshots/scheduled.json"), secs(60)))
        .await
        .unwrap();
    assert_eq!(second["complete"], true);
    let second_deleted: BTreeSet<String> = strings(&second, "deleted").intersection(&made).cloned().collect();
    assert_eq!(second_deleted, left, "the next run deletes exactly what was left");
    assert!(
        second["already_gone"].as_array().unwrap().is_empty(),
        "nothing deleted twice"
    );
    assert_eq!(ec2.snapshots_of(&vol).await.len(), 1, "the newest stays");
}

#[tokio::test]
async fn notifications_carry_the_summary_to_the_topic() {
    let sdk = fresh("ap-southeast-1").await;
    let ec2 = Ec2::new(&sdk);
    let sns = aws_sdk_sns::Client::new(&sdk);
    let sqs = aws_sdk_sqs::Client::new(&sdk);
    let topic = sns
        .create_topic()
        .name(format!("ninelives-{}", unique()))
        .send()
        .await
        .unwrap()
        .topic_arn()
        .unwrap()
        .to_owned();
    let queue = sqs
        .create_queue()
        .queue_name(format!("inbox-{}", unique()))
        .send()
        .await
        .unwrap()
        .queue_url()
        .unwrap()
        .to_owned();
    let queue_arn = sqs
        .get_queue_attributes()
        .queue_url(&queue)
        .attribute_names(aws_sdk_sqs::types::QueueAttributeName::QueueArn)
        .send()
        .await
        .unwrap()
        .attributes()
        .unwrap()[&aws_sdk_sqs::types::QueueAttributeName::QueueArn]
        .clone();
    sns.subscribe()
        .topic_arn(&topic)
        .protocol("sqs")
        .endpoint(&queue_arn)
        .attributes("RawMessageDelivery", "true")
        .send()
        .await
        .unwrap();

    let cluster = format!("told-{}.example.com", unique());
    let a = ec2.instance().await;
    let vol = ec2
        .volume(&a.az, &[(tags::CLUSTER, &cluster), (tags::NAME, "main")], None)
        .await;
    let result = snapshotter(&sdk, &[("NOTIFY_TOPIC_ARN", &topic)])
        .handle(event(
            fixture("snapshot-volumes/constant-input-daily.json"),
            secs(60),
        ))
        .await
        .unwrap();
    assert!(result.get("notify_error").is_none(), "{result:#}");
    let ours = pick(&result, "created", "volume_id", &vol);
    let snapshot_id = ours[0]["snapshot_id"].as_str().unwrap().to_owned();

    let received = sqs
        .receive_message()
        .queue_url(&queue)
        .wait_time_seconds(2)
        .send()
        .await
        .unwrap();
    let body: Value = serde_json::from_str(received.messages()[0].body().unwrap()).unwrap();
    assert_eq!(body["function"], "snapshot-volumes");
    assert_eq!(
        pick(&body, "created", "volume_id", &vol)[0]["snapshot_id"],
        json!(snapshot_id)
    );

    // A run that changes nothing says nothing.
    snapshotter(&sdk, &[("NOTIFY_TOPIC_ARN", &topic)])
        .handle(event(
            fixture("snapshot-volumes/constant-input-daily.json"),
            secs(60),
        ))
        .await
        .unwrap();
    let quiet = sqs
        .receive_message()
        .queue_url(&queue)
        .wait_time_seconds(1)
        .send()
        .await
        .unwrap();
    assert!(quiet.messages().is_empty());
}

#[tokio::test]
async fn bad_input_is_named_and_nothing_is_lost() {
    let sdk = fresh("ap-southeast-2").await;
    let ec2 = Ec2::new(&sdk);
    let cluster = format!("bad-{}.example.com", unique());
    let a = ec2.instance().await;
    let vol = ec2
        .volume(&a.az, &[(tags::CLUSTER, &cluster), (tags::NAME, "main")], None)
        .await;
    let handler = snapshotter(&sdk, &[]);

    for (payload, needle) in [
        (json!({"tier": "yearly"}), "unknown tier \"yearly\""),
        (json!({"teir": "daily"}), "unknown field `teir`"),
        (json!({}), "names no tier"),
        (
            json!({"tier": "daily", "time": "noon"}),
            "\"noon\" is not an RFC 3339 time",
        ),
        (
            json!({"tier": "monthly", "time": "2099-01-01T00:00:00Z"}),
            "is in the future",
        ),
        (json!([1, 2]), "snapshot-volumes input"),
    ] {
        let err = handler
            .handle(event(payload.clone(), secs(60)))
            .await
            .unwrap_err();
        assert!(err.to_string().contains(needle), "{payload}: {err}");
        assert!(!err.is_retryable(), "{payload}");
    }
    let mut unnamed = fixture("snapshot-volumes/scheduled-daily.json");
    unnamed["resources"] = json!(["arn:aws:events:us-east-1:123456789012:rule/nightly-backup"]);
    let err = handler.handle(event(unnamed, secs(60))).await.unwrap_err();
    assert!(err.to_string().contains("cannot tell the tier"), "{err}");
    let mut ahead = fixture("snapshot-volumes/scheduled-daily.json");
    ahead["time"] = json!("2099-01-01T03:00:00Z");
    let err = handler.handle(event(ahead, secs(60))).await.unwrap_err();
    assert!(err.to_string().contains("is in the future"), "{err}");
    assert!(
        ec2.snapshots_of(&vol).await.is_empty(),
        "no snapshot from a bad event"
    );

    let err = purger(&sdk, &[])
        .handle(event(json!({"dry-run": true}), secs(60)))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("unknown field `dry-run`"), "{err}");

    // Settings are checked before anything else, naming the variable.
    for (name, value) in [
        ("RETENTION_DAILY", "fortnight"),
        ("RETENTION_HOURLY", "0"),
        ("DRY_RUN", "perhaps"),
        ("NOTIFY_TOPIC_ARN", "my-topic"),
    ] {
        let err = snapshot_volumes::Config::from_env(&env(&[(name, value)])).unwrap_err();
        assert!(err.to_string().contains(name), "{err}");
    }
    let err = purge_snapshots::Config::from_env(&env(&[("PURGE_DELETES_PER_SECOND", "fast")])).unwrap_err();
    assert!(err.to_string().contains("PURGE_DELETES_PER_SECOND"), "{err}");
}
