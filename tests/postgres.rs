//! The PostgreSQL adapter (`shared::pg_node`) and snapshot-volumes'
//! PostgreSQL backup mode (`shared::backup::pg_hooks`) against real
//! servers: a primary and a streaming replica on loopback, started by the
//! tests (`ninelives_tests::postgres`), and, for backup mode, the local
//! AWS in region `ap-east-1` (no other test uses it).
//!
//! Ports 17300-17389 on 127.0.0.2 and up belong to this file; each test
//! uses its own tens. The tests that use the local AWS share one region,
//! so they take [`REGION`]'s lock for their whole run.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use chrono::Utc;
use ninelives_tests::postgres::{PASSWORD, PgServer, postgres_instance, postgres_volume, statements};
use ninelives_tests::{Ec2, env, event, fixture, fresh, secs};
use serde_json::{Value, json};
use shared::Error;
use shared::backup::model::{
    DeleteOutcome, InstanceDisks, MultiSnapshot, SingleSnapshot, Snapshot, SnapshotQuery, Tags, Volume,
};
use shared::backup::pg_hooks::{PgBackupHooks, label_from_tags};
use shared::backup::ports::BackupApi;
use shared::backup::snapshot::{SnapshotRun, take_snapshots};
use shared::backup::tier::{Retention, Tier};
use shared::chain::model::Endpoint;
use shared::function::Function;
use shared::invocation::Deadline;
use shared::metrics::postgres::{Figures, PgProbe, Readings, figures, parse_lsn, replica_lags};
use shared::pg_node::{PgError, PgNodes, PgSettings};
use shared::tags;
use snapshot_volumes::SnapshotVolumes;

const REGION: &str = "ap-east-1";

/// The local AWS tests of this file share [`REGION`]; one at a time.
static REGION_LOCK: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// How long replication may take to catch up on loopback, at most.
const SETTLE: Duration = Duration::from_secs(30);

async fn read(nodes: &PgNodes, server: &PgServer) -> Readings {
    nodes.readings(&server.endpoint()).await.unwrap_or_else(|e| {
        panic!(
            "readings of {}: {e}\nlog:\n{}",
            server.endpoint(),
            server.log_tail()
        )
    })
}

fn node_value(f: &Figures, name: &str) -> Option<f64> {
    f.node.iter().find(|(n, ..)| *n == name).map(|(_, _, v)| *v)
}

/// Polls `check` every 100 ms until it gives a value; panics after `within`
/// with the last state.
async fn until<T, F, Fut>(what: &str, within: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, String>>,
{
    let deadline = Instant::now() + within;
    loop {
        match check().await {
            Ok(v) => return v,
            Err(last) if Instant::now() >= deadline => panic!("{what} not within {within:?}: {last}"),
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}

#[tokio::test]
async fn readings_of_a_primary_and_its_replica_and_the_lag_while_replay_is_paused() {
    let primary = PgServer::primary("127.0.0.2", 17300).await;
    let replica = PgServer::replica_of(&primary, "127.0.0.3", 17301, "replica1").await;
    let nodes = PgNodes::new(primary.settings());

    let p = until("the replica streaming", SETTLE, || async {
        let p = read(&nodes, &primary).await;
        match p.wal_senders.iter().any(|w| w.state == "streaming") {
            true => Ok(p),
            false => Err(format!("{:?}", p.wal_senders)),
        }
    })
    .await;
    assert!(!p.in_recovery);
    assert!(p.server_version_num >= 150_000, "{}", p.server_version_num);
    assert!(p.connections >= 1, "this session at least: {p:?}");
    assert!(p.wal_files.is_some_and(|n| n > 0), "{p:?}");
    assert!(p.skipped.is_empty(), "{:?}", p.skipped);
    assert_eq!(p.wal_senders[0].application_name, "replica1");
    assert_eq!(p.wal_senders[0].client_addr.as_deref(), Some("127.0.0.1"));
    let pf = figures(&p);
    assert_eq!(node_value(&pf, "InRecovery"), Some(0.0));
    assert_eq!(node_value(&pf, "StreamingReplicas"), Some(1.0));
    assert_eq!(node_value(&pf, "MaxConnections"), Some(40.0));

    let r = read(&nodes, &replica).await;
    assert!(r.in_recovery);
    assert_eq!(r.replay_paused, Some(false));
    assert!(r.receive_lsn.is_some() && r.replay_lsn.is_some(), "{r:?}");
    assert_eq!(node_value(&figures(&r), "InRecovery"), Some(1.0));

    // Replay paused, ~5 MB written on the primary: the replica receives it
    // but does not apply it.
    replica.pause_replay().await;
    let before = primary.current_lsn().await;
    primary
        .execute(
            "CREATE TABLE filler (x text); \
             INSERT INTO filler SELECT repeat(md5(i::text), 32) FROM generate_series(1, 5000) i",
        )
        .await;
    let after = primary.current_lsn().await;
    let written = after - before;
    assert!(written >= 5_000_000, "only {written} bytes of WAL");

    let (p, r) = until("the replica receiving everything", SETTLE, || async {
        let (p, r) = (read(&nodes, &primary).await, read(&nodes, &replica).await);
        let received = r
            .receive_lsn
            .as_deref()
            .and_then(|l| parse_lsn(l).ok())
            .unwrap_or(0);
        match received >= after {
            true => Ok((p, r)),
            false => Err(format!("received {received}, want {after}")),
        }
    })
    .await;
    let lags = replica_lags(&[("primary", &p), ("replica", &r)]);
    assert_eq!(lags.len(), 1, "{lags:?}");
    assert!(
        lags[0].1 >= written as f64,
        "lag {} < written {written}",
        lags[0].1
    );
    let rf = figures(&r);
    assert_eq!(node_value(&rf, "ReplayPaused"), Some(1.0));
    let own = node_value(&rf, "ReplayBacklogBytes").expect("the replica's own backlog");
    assert!(
        own >= written as f64,
        "receive - replay {own} < written {written}"
    );
    assert_eq!(
        node_value(&rf, "ReplicationLagBytes"),
        None,
        "the lag behind the primary comes from replica_lags only"
    );
    let pf = figures(&p);
    let max = node_value(&pf, "MaxReplicaLagBytes").expect("the primary's view");
    assert!(
        max >= written as f64,
        "pg_stat_replication lag {max} < written {written}"
    );

    replica.resume_replay().await;
    until("the replica catching up", SETTLE, || async {
        let (p, r) = (read(&nodes, &primary).await, read(&nodes, &replica).await);
        let lags = replica_lags(&[("primary", &p), ("replica", &r)]);
        let own = node_value(&figures(&r), "ReplayBacklogBytes");
        match (lags.as_slice(), own, r.replay_paused) {
            ([(_, lag)], Some(own), Some(false)) if *lag == 0.0 && own == 0.0 => Ok(()),
            _ => Err(format!(
                "lags {lags:?}, own {own:?}, paused {:?}",
                r.replay_paused
            )),
        }
    })
    .await;
}

#[tokio::test]
async fn hit_ratios_sizes_and_what_cannot_be_read() {
    let primary = PgServer::primary("127.0.0.2", 17310).await;
    primary.execute("CREATE DATABASE app").await;
    primary.execute("CREATE DATABASE closed").await;
    primary
        .execute_in(
            "app",
            "CREATE TABLE t (id int PRIMARY KEY, v text); \
             INSERT INTO t SELECT i, md5(i::text) FROM generate_series(1, 20000) i; \
             CREATE INDEX t_v ON t (v); ANALYZE t;",
        )
        .await;
    {
        // A few reads of the table and its index, on a session that ends
        // (a backend's statistics are flushed at its exit at the latest).
        let client = primary.client_to("app").await;
        for i in 0..20 {
            client.query("SELECT count(*) FROM t", &[]).await.unwrap();
            client
                .query("SELECT v FROM t WHERE id = $1", &[&(i * 97)])
                .await
                .unwrap();
        }
    }
    // `closed` refuses every connection (pg_hba.conf), as a database
    // reserved to others would.
    primary.hba_prepend("host closed all 127.0.0.0/8 reject").await;

    let nodes = PgNodes::new(primary.settings());
    let (r, f) = until("the hit ratios of app", SETTLE, || async {
        let r = read(&nodes, &primary).await;
        let f = figures(&r);
        let app = f
            .databases
            .iter()
            .find(|(d, _)| d == "app")
            .map(|(_, v)| v.clone());
        match app {
            Some(v)
                if v.iter().any(|(n, ..)| *n == "IndexHitRatio")
                    && v.iter().any(|(n, ..)| *n == "HeapHitRatio") =>
            {
                Ok((r, f))
            }
            _ => Err(format!("{f:?}")),
        }
    })
    .await;
    let app = &f.databases.iter().find(|(d, _)| d == "app").unwrap().1;
    let value = |name: &str| app.iter().find(|(n, ..)| *n == name).map(|(_, _, v)| *v);
    for ratio in ["HeapHitRatio", "IndexHitRatio"] {
        let v = value(ratio).unwrap();
        assert!((0.0..=100.0).contains(&v), "{ratio} {v}");
    }
    assert!(value("TableBytes").unwrap() > 1_000_000.0, "{app:?}");
    assert!(value("IndexBytes").unwrap() > 500_000.0, "{app:?}");
    assert!(value("DatabaseBytes").unwrap() > value("TableBytes").unwrap());

    let names: BTreeSet<&str> = r.databases.iter().map(|d| d.name.as_str()).collect();
    assert_eq!(
        names,
        BTreeSet::from(["app", "postgres"]),
        "templates are not read"
    );
    let closed = r
        .skipped
        .iter()
        .find(|s| s.contains("closed"))
        .expect("closed is reported");
    assert!(closed.contains("pg_hba.conf"), "{closed}");

    // A user without pg_monitor: no WAL file count, everything else.
    primary
        .execute("CREATE ROLE watcher LOGIN PASSWORD 'watcher-pw'")
        .await;
    let watcher = PgNodes::new(PgSettings {
        user: "watcher".into(),
        password: Some("watcher-pw".into()),
        ..primary.settings()
    });
    let w = read(&watcher, &primary).await;
    assert_eq!(w.wal_files, None);
    assert!(
        w.skipped
            .iter()
            .any(|s| s.contains("pg_ls_waldir") && s.contains("permission denied")),
        "{:?}",
        w.skipped
    );
    assert!(node_value(&figures(&w), "Connections").is_some());
}

#[tokio::test]
async fn wrong_password_is_auth_and_silence_is_down_within_the_timeouts() {
    let mut primary = PgServer::primary("127.0.0.2", 17320).await;
    let quick = PgSettings {
        connect_timeout: Duration::from_millis(500),
        command_timeout: Duration::from_millis(500),
        ..primary.settings()
    };
    let wrong = PgNodes::new(PgSettings {
        password: Some("not-the-password".into()),
        ..quick.clone()
    });
    let started = Instant::now();
    match wrong.readings(&primary.endpoint()).await {
        Err(e @ PgError::Auth { .. }) => {
            assert!(!e.is_retryable());
            assert_eq!(e.code(), Some("28P01"));
            assert!(e.to_string().contains("password authentication failed"), "{e}");
        }
        other => panic!("expected Auth, got {other:?}"),
    }
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );

    let nodes = PgNodes::new(quick);
    let nobody = Endpoint::new("127.0.0.2", 17329);
    let started = Instant::now();
    match nodes.readings(&nobody).await {
        Err(e @ PgError::Down { .. }) => {
            assert!(e.is_retryable());
            assert!(e.to_string().contains("127.0.0.2:17329"), "{e}");
        }
        other => panic!("expected Down, got {other:?}"),
    }
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );

    // A hung server (SIGSTOP) accepts the TCP connection and says nothing.
    primary.stop();
    let started = Instant::now();
    let result = nodes.readings(&primary.endpoint()).await;
    let took = started.elapsed();
    primary.cont();
    match result {
        Err(e @ PgError::Down { .. }) => assert!(e.is_retryable()),
        other => panic!("expected Down, got {other:?}"),
    }
    assert!(took < Duration::from_millis(1500), "{took:?}");
    // And it answers again.
    assert!(!read(&nodes, &primary).await.in_recovery);
}

fn snapshot_tags(s: &aws_sdk_ec2::types::Snapshot) -> Tags {
    s.tags()
        .iter()
        .filter_map(|t| Some((t.key()?.to_owned(), t.value()?.to_owned())))
        .collect()
}

/// A scheduled daily event at the current time.
fn daily_event() -> Value {
    let mut e = fixture("snapshot-volumes/scheduled-daily.json");
    e["time"] = json!(Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true));
    e
}

/// The start and stop statements in the log, checked to come from one
/// backend, start first; that backend's pid.
fn one_backend_started_and_stopped(server: &PgServer) -> u32 {
    let log = server.log();
    let starts = statements(&log, "pg_backup_start");
    let stops = statements(&log, "pg_backup_stop");
    assert_eq!(starts.len(), 1, "one start: {starts:?}\n{}", server.log_tail());
    assert_eq!(stops.len(), 1, "one stop: {stops:?}\n{}", server.log_tail());
    assert_eq!(
        starts[0].0, stops[0].0,
        "start and stop on one session:\n{starts:?}\n{stops:?}"
    );
    let at = |line: &str| log.find(line).expect("the line is in the log");
    assert!(at(&starts[0].1) < at(&stops[0].1), "stop after start");
    starts[0].0
}

#[tokio::test]
async fn backup_mode_end_to_end_through_the_handler() {
    let _region = REGION_LOCK.lock().await;
    let primary = PgServer::primary("127.0.0.2", 17330).await;
    let sdk = fresh(REGION).await;
    let ec2 = Ec2::new(&sdk);
    let cluster = format!("pg-{}.example.com", ninelives_tests::unique());
    let instance = postgres_instance(&sdk, &cluster, &primary.endpoint().to_string()).await;
    let described = ec2
        .client
        .describe_instances()
        .instance_ids(&instance)
        .send()
        .await
        .expect("DescribeInstances");
    let az = described.reservations()[0].instances()[0]
        .placement()
        .and_then(|p| p.availability_zone())
        .expect("an AZ")
        .to_owned();
    let handle = ninelives_tests::Instance {
        id: instance.clone(),
        az: az.clone(),
        root_volume: String::new(),
    };
    let app = [(tags::CLUSTER, cluster.as_str()), (tags::APP, "postgres")];
    let main = ec2
        .volume(
            &az,
            &[app[0], app[1], (tags::NAME, "main")],
            Some((&handle, "/dev/sdf")),
        )
        .await;
    let wal = ec2
        .volume(
            &az,
            &[app[0], app[1], (tags::NAME, "wal")],
            Some((&handle, "/dev/sdg")),
        )
        .await;

    let config = snapshot_volumes::Config::from_env(&env(&[("PGPASSWORD", PASSWORD)])).expect("config");
    let handler = SnapshotVolumes::new(config, &sdk);
    let result = handler
        .handle(event(daily_event(), secs(120)))
        .await
        .unwrap_or_else(|e| panic!("snapshot run: {e}\nlog:\n{}", primary.log_tail()));
    assert_eq!(result["complete"], true, "{result:#}");
    assert_eq!(result["created"].as_array().map(Vec::len), Some(2), "{result:#}");
    assert!(result["notes"].as_array().unwrap().is_empty(), "{result:#}");

    let mut labels = Vec::new();
    for volume in [&main, &wal] {
        let snaps = ec2.snapshots_of(volume).await;
        assert_eq!(snaps.len(), 1, "{volume}");
        let t = snapshot_tags(&snaps[0]);
        let label = label_from_tags(&t).unwrap_or_else(|| panic!("no label on {volume}'s snapshot: {t:?}"));
        assert!(label.starts_with("START WAL LOCATION: "), "{label}");
        assert!(
            label.contains(&format!("LABEL: ninelives {cluster} {instance}")),
            "{label}"
        );
        assert!(label.ends_with('\n'), "exactly as the server wrote it: {label:?}");
        let start = label
            .lines()
            .next()
            .and_then(|l| l.strip_prefix("START WAL LOCATION: "))
            .and_then(|l| l.split_whitespace().next())
            .and_then(|l| parse_lsn(l).ok())
            .expect("a start LSN");
        let stop = parse_lsn(&t[tags::PG_BACKUP_STOP_LSN]).expect("a stop LSN");
        assert!(stop > start, "stop {stop} after start {start}");
        for (key, value) in &t {
            assert!(value.chars().count() <= 256, "{key}");
        }
        labels.push(label);
    }
    assert_eq!(
        labels[0], labels[1],
        "one backup, one label, on every snapshot of the set"
    );
    one_backend_started_and_stopped(&primary);
    // The backup is over: a new one can start.
    assert_eq!(
        primary
            .value("SELECT count(*) FROM pg_stat_activity WHERE application_name = 'ninelives-backup'")
            .await,
        Some("0".into())
    );
}

/// What a [`Sabotaged`] EC2 does to snapshot calls.
#[derive(Clone, Copy)]
enum Sabotage {
    /// Refuse the create call.
    FailCreate,
    /// Create the snapshot, then end the backup session on the server.
    KillSession,
    /// Wait this long (the backup session idle), then create the snapshot:
    /// EC2's rate limit waited out, say.
    Slow(Duration),
}

/// The EC2 adapter with its snapshot calls sabotaged.
struct Sabotaged<'a> {
    inner: shared::ec2::Ec2,
    how: Sabotage,
    server: &'a PgServer,
}

impl Sabotaged<'_> {
    async fn sabotage<T>(
        &self,
        create: impl std::future::Future<Output = Result<T, Error>>,
    ) -> Result<T, Error> {
        match self.how {
            Sabotage::FailCreate => Err(Error::Incomplete {
                detail: "the test refused the snapshot call".into(),
                retryable: true,
            }),
            Sabotage::KillSession => {
                let made = create.await;
                self.server
                    .execute(
                        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
                         WHERE application_name = 'ninelives-backup'",
                    )
                    .await;
                made
            }
            Sabotage::Slow(wait) => {
                tokio::time::sleep(wait).await;
                create.await
            }
        }
    }
}

impl BackupApi for Sabotaged<'_> {
    async fn tagged_volumes(&self) -> Result<Vec<Volume>, Error> {
        self.inner.tagged_volumes().await
    }
    async fn instance_disks(&self, ids: &[String]) -> Result<Vec<InstanceDisks>, Error> {
        self.inner.instance_disks(ids).await
    }
    async fn managed_snapshots(&self, query: &SnapshotQuery) -> Result<Vec<Snapshot>, Error> {
        self.inner.managed_snapshots(query).await
    }
    async fn create_snapshot(&self, request: &SingleSnapshot) -> Result<String, Error> {
        self.sabotage(self.inner.create_snapshot(request)).await
    }
    async fn create_snapshots(&self, request: &MultiSnapshot) -> Result<Vec<(String, String)>, Error> {
        self.sabotage(self.inner.create_snapshots(request)).await
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

fn run() -> SnapshotRun {
    SnapshotRun {
        tier: Tier::Daily,
        time: Utc::now(),
        time_from_event: true,
        retention: Retention::default(),
        run_id: format!("test-{}", ninelives_tests::unique()),
        dry_run: false,
    }
}

#[tokio::test]
async fn backup_mode_is_always_ended_and_its_snapshots_go_when_it_cannot_be() {
    let _region = REGION_LOCK.lock().await;
    let primary = PgServer::primary("127.0.0.2", 17340).await;

    // The create call fails: the backup is stopped all the same.
    let sdk = fresh(REGION).await;
    let (_, volume) = postgres_volume(&sdk, &primary.endpoint().to_string()).await;
    let api = Sabotaged {
        inner: shared::ec2::Ec2::from_conf(&sdk),
        how: Sabotage::FailCreate,
        server: &primary,
    };
    let hooks = PgBackupHooks::new(primary.settings(), shared::ec2::Ec2::from_conf(&sdk));
    let summary = take_snapshots(&api, &hooks, &run(), &Deadline::after(Duration::from_secs(120)))
        .await
        .expect("the run reports, it does not fail outright");
    assert_eq!(summary.failed.len(), 1, "{summary:?}");
    assert_eq!(summary.failed[0].volume_ids, vec![volume.clone()]);
    assert!(
        summary.failed[0].error.contains("the test refused"),
        "{summary:?}"
    );
    assert!(summary.created.is_empty());
    one_backend_started_and_stopped(&primary);
    assert!(Ec2::new(&sdk).snapshots().await.is_empty(), "nothing was left");

    // The session dies while the snapshot is taken: the server aborted the
    // backup, the stop fails, and the fresh snapshot is not a backup.
    let sdk = fresh(REGION).await;
    let (instance, volume) = postgres_volume(&sdk, &primary.endpoint().to_string()).await;
    let api = Sabotaged {
        inner: shared::ec2::Ec2::from_conf(&sdk),
        how: Sabotage::KillSession,
        server: &primary,
    };
    let hooks = PgBackupHooks::new(primary.settings(), shared::ec2::Ec2::from_conf(&sdk));
    let mut summary = take_snapshots(&api, &hooks, &run(), &Deadline::after(Duration::from_secs(120)))
        .await
        .expect("the run reports");
    assert!(summary.created.is_empty(), "{summary:?}");
    assert_eq!(summary.failed.len(), 1, "{summary:?}");
    assert_eq!(summary.failed[0].volume_ids, vec![volume.clone()]);
    let error = &summary.failed[0].error;
    assert!(
        error.contains(&instance) && error.contains("pg_backup_stop"),
        "{error}"
    );
    let outcome = shared::function::Summary::take_outcome_error(&mut summary).expect("the run fails");
    assert!(outcome.is_retryable(), "{outcome}");
    let left = Ec2::new(&sdk).snapshots().await;
    assert!(left.is_empty(), "the snapshot was deleted: {left:?}");
}

#[tokio::test]
async fn a_node_that_is_down_fails_its_group_retryably_and_nothing_is_snapshotted() {
    let _region = REGION_LOCK.lock().await;
    let sdk = fresh(REGION).await;
    let nobody = "127.0.0.2:17389";
    let (instance, _volume) = postgres_volume(&sdk, nobody).await;

    let config = snapshot_volumes::Config::from_env(&env(&[
        ("PGPASSWORD", PASSWORD),
        ("PG_CONNECT_TIMEOUT_MS", "500"),
    ]))
    .expect("config");
    let handler = SnapshotVolumes::new(config, &sdk);
    let started = Instant::now();
    let err = handler
        .handle(event(daily_event(), secs(120)))
        .await
        .expect_err("the group fails");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    assert!(err.is_retryable(), "{err}");
    let text = err.to_string();
    assert!(text.contains(&instance) && text.contains(nobody), "{text}");
    assert!(text.contains("pg_backup_start"), "{text}");
    assert!(
        Ec2::new(&sdk).snapshots().await.is_empty(),
        "nothing was snapshotted"
    );
}

#[tokio::test]
async fn backup_mode_holds_through_the_timeouts_a_role_sets() {
    let _region = REGION_LOCK.lock().await;
    // Archiving that takes 3 s a segment: pg_backup_stop(wait_for_archive)
    // waits seconds for it, as on a real node with archiving to S3.
    let primary = PgServer::primary_with(
        "127.0.0.2",
        17350,
        &["archive_mode = on", "archive_command = 'sleep 3'"],
    )
    .await;
    // A backup user whose role sets timeouts of a second, below what the
    // stop waits (statement_timeout) and what the snapshot call takes
    // (idle_session_timeout). The harness' own sessions are postgres'.
    primary
        .execute(
            "CREATE ROLE nlbackup LOGIN SUPERUSER PASSWORD 'nlbackup-pw'; \
             ALTER ROLE nlbackup SET statement_timeout = '1s'; \
             ALTER ROLE nlbackup SET idle_session_timeout = '1s'; \
             ALTER ROLE nlbackup SET idle_in_transaction_session_timeout = '1s'; \
             ALTER ROLE nlbackup SET lock_timeout = '1s'",
        )
        .await;
    let settings = PgSettings {
        user: "nlbackup".into(),
        password: Some("nlbackup-pw".into()),
        ..primary.settings()
    };

    let sdk = fresh(REGION).await;
    let (_, volume) = postgres_volume(&sdk, &primary.endpoint().to_string()).await;
    let api = Sabotaged {
        inner: shared::ec2::Ec2::from_conf(&sdk),
        how: Sabotage::Slow(Duration::from_millis(2500)),
        server: &primary,
    };
    let hooks = PgBackupHooks::new(settings, shared::ec2::Ec2::from_conf(&sdk));
    let started = Instant::now();
    let summary = take_snapshots(&api, &hooks, &run(), &Deadline::after(Duration::from_secs(120)))
        .await
        .expect("the run reports");
    let took = started.elapsed();
    assert!(
        summary.failed.is_empty(),
        "{summary:?}\nlog:\n{}",
        primary.log_tail()
    );
    assert_eq!(summary.created.len(), 1, "{summary:?}");
    let snaps = Ec2::new(&sdk).snapshots_of(&volume).await;
    assert_eq!(snaps.len(), 1);
    assert!(label_from_tags(&snapshot_tags(&snaps[0])).is_some(), "labelled");
    one_backend_started_and_stopped(&primary);
    // The session idled through the snapshot call, and the stop waited
    // for the archive, both longer than the role allows.
    assert!(took > Duration::from_millis(3500), "{took:?}");
    let log = primary.log();
    assert!(!log.contains("idle-session timeout"), "{}", primary.log_tail());
    assert!(!log.contains("canceling statement"), "{}", primary.log_tail());
}

#[tokio::test]
async fn a_snapshot_of_the_period_without_its_label_is_replaced() {
    let _region = REGION_LOCK.lock().await;
    let primary = PgServer::primary("127.0.0.2", 17360).await;
    let sdk = fresh(REGION).await;
    let ec2 = Ec2::new(&sdk);
    let (instance, volume) = postgres_volume(&sdk, &primary.endpoint().to_string()).await;
    let run = run();
    let period = run.period();
    let expires_at = run.expires_at();
    // What a run cut off between CreateSnapshot and tagging the label
    // leaves: every tag of the period, no label.
    let cluster = ec2
        .client
        .describe_volumes()
        .volume_ids(&volume)
        .send()
        .await
        .expect("DescribeVolumes")
        .volumes()[0]
        .tags()
        .iter()
        .find(|t| t.key() == Some(tags::CLUSTER))
        .and_then(|t| t.value())
        .expect("the cluster tag")
        .to_owned();
    let set = format!("{}/cut-off-0", run.run_id);
    let cut_off = ec2
        .snapshot(
            &volume,
            &[
                (tags::MANAGED_BY, tags::MANAGED_BY_VALUE),
                (tags::CLUSTER, &cluster),
                (tags::NAME, "main"),
                (tags::VOLUME_ID, &volume),
                (tags::INSTANCE_ID, &instance),
                (tags::TIER, "daily"),
                (tags::PERIOD, &period),
                (tags::EXPIRES_AT, &expires_at),
                (tags::RUN, &run.run_id),
                (tags::SET, &set),
                (tags::SET_SIZE, "1"),
            ],
        )
        .await;

    let api = shared::ec2::Ec2::from_conf(&sdk);
    let hooks = PgBackupHooks::new(primary.settings(), shared::ec2::Ec2::from_conf(&sdk));
    let summary = take_snapshots(&api, &hooks, &run, &Deadline::after(Duration::from_secs(120)))
        .await
        .expect("the run reports");
    assert!(summary.complete, "{summary:?}");
    assert!(summary.already_done.is_empty(), "not a backup: {summary:?}");
    assert_eq!(summary.created.len(), 1, "{summary:?}");
    assert_eq!(summary.not_backups_removed, vec![cut_off.clone()]);
    let snaps = ec2.snapshots_of(&volume).await;
    assert_eq!(snaps.len(), 1, "{snaps:?}");
    assert_eq!(
        snaps[0].snapshot_id(),
        Some(summary.created[0].snapshot_id.as_str())
    );
    assert!(label_from_tags(&snapshot_tags(&snaps[0])).is_some(), "labelled");
    one_backend_started_and_stopped(&primary);
}

#[tokio::test]
async fn a_node_with_more_databases_than_its_budget_keeps_its_own_readings() {
    let primary = PgServer::primary("127.0.0.2", 17370).await;
    for n in 1..=6 {
        primary.execute(&format!("CREATE DATABASE d{n}")).await;
    }
    primary.execute("CREATE DATABASE slow").await;
    primary.execute_in("slow", "CREATE TABLE t (x int)").await;
    // pg_table_size waits for this lock: slow's read outlasts the budget.
    let holder = primary.client_to("slow").await;
    holder
        .batch_execute("BEGIN; LOCK TABLE t IN ACCESS EXCLUSIVE MODE")
        .await
        .expect("the lock");

    let budget = Duration::from_millis(1500);
    let nodes = PgNodes::new(primary.settings()).with_budget(budget);
    let started = Instant::now();
    let r = read(&nodes, &primary).await;
    let took = started.elapsed();
    assert!(took < budget + Duration::from_millis(1000), "{took:?}");
    assert!(r.server_version_num >= 150_000 && r.connections >= 1, "{r:?}");
    assert!(r.wal_files.is_some(), "{r:?}");
    let read_in_time: Vec<&str> = r.databases.iter().map(|d| d.name.as_str()).collect();
    assert_eq!(read_in_time, ["d1", "d2", "d3", "d4", "d5", "d6", "postgres"]);
    assert_eq!(
        r.skipped,
        ["database slow not read: the node's time budget was spent"],
        "cut short while it waited"
    );

    // A budget spent before the databases: none started, the node's own
    // figures all the same.
    let nodes = PgNodes::new(primary.settings()).with_budget(Duration::ZERO);
    let r = read(&nodes, &primary).await;
    assert!(r.databases.is_empty(), "{r:?}");
    assert_eq!(r.skipped.len(), 8, "{:?}", r.skipped);
    for name in ["d1", "d6", "postgres", "slow"] {
        let line = format!("database {name} not read: the node's time budget was spent");
        assert!(r.skipped.contains(&line), "{:?}", r.skipped);
    }
    let f = figures(&r);
    assert_eq!(node_value(&f, "InRecovery"), Some(0.0));
    assert!(node_value(&f, "Connections").is_some());

    // Without a budget, slow is read once its lock goes.
    drop(holder);
    let r = read(&PgNodes::new(primary.settings()), &primary).await;
    assert!(r.skipped.is_empty(), "{:?}", r.skipped);
    assert_eq!(r.databases.len(), 8);
}
