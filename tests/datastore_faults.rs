//! Data-store faults (issue 9, part 2): real `redis-server` and PostgreSQL
//! processes fail at a known step while redis-failover and
//! snapshot-volumes work on them, and each test asserts the state of the
//! world afterwards: the nodes' own replication state, the Route 53
//! records, every acknowledged write, the snapshots in the local AWS, the
//! server's sessions.
//!
//! Redis (a chain of three, `REPLICAOF`s as in `tests/redis_chain.rs`):
//! the promotion target killed after the Route 53 claim and at the re-check
//! before it, the promotion target hung after the claim (it completes its
//! promotion late, beside the head promoted meanwhile), a SIGSTOPped head
//! and middle node (and their SIGCONT), a partition between the head and
//! its replica (healed, and with the head then killed). A writer
//! thread follows the cluster record like a client and writes keys in
//! batches; a batch is *acknowledged* when `WAIT 1` says a replica has it
//! (what `tests/redis_chain.rs` and the planner's rule 3 take as
//! acknowledged: the head's own replica has the write, so one failure
//! cannot lose it). Every acknowledged key must be on the head afterwards.
//!
//! PostgreSQL (backup mode, `ninelives:app=postgres`): the server killed
//! (SIGKILL of every process) between `pg_backup_start` and the snapshot,
//! shut down fast during the snapshot call, SIGSTOPped (every process)
//! before the start and during the snapshot. Each run must end within its
//! bounds with a retryable failure, leave no unproven snapshot behind, and
//! leave no session in backup mode once the server is back; the retry then
//! makes one labelled backup.
//!
//! Every fault is injected at a known step (the wrapped [`RedisApi`] and
//! [`BackupApi`] below fire it at a given call), every wait is bounded,
//! and every fault is undone by a guard that also runs when a test fails:
//! servers are killed on drop (the harness), frozen processes continued
//! ([`Frozen`]), the nftables table of a partition deleted ([`Partition`];
//! tables left by a test process that was killed outright are deleted by
//! the next partition).
//!
//! Resources of this file (issue 9's allocation): the local AWS region
//! `il-central-1`, ports 17660-17699 (Redis 17660-17679, PostgreSQL
//! 17680-17699), loopback addresses 127.0.13.2-9, nftables tables
//! `nl9c_<pid>_<n>`. Partitions need root and `nft`
//! (`scripts/datastore-faults-setup.sh` installs it).

use std::collections::{BTreeSet, HashMap};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_config::SdkConfig;
use chrono::Utc;
use ninelives_tests::postgres::{PgServer, postgres_volume, statements};
use ninelives_tests::redis::{RedisServer, redis_instance};
use ninelives_tests::{Ec2, env, event, hosted_zone, sdk, secs, unique};
use redis::Value as RedisValue;
use redis_failover::{Config, RedisFailover};
use serde_json::{Value, json};
use shared::Error;
use shared::backup::model::{
    DeleteOutcome, InstanceDisks, MultiSnapshot, SingleSnapshot, Snapshot, SnapshotQuery, Tags, Volume,
};
use shared::backup::pg_hooks::{PgBackupHooks, label_from_tags};
use shared::backup::ports::BackupApi;
use shared::backup::snapshot::{SnapshotRun, SnapshotSummary, take_snapshots};
use shared::backup::tier::{Retention, Tier};
use shared::chain::model::{Endpoint, Replication, ReplicationRole};
use shared::chain::ports::{NodeError, RedisApi};
use shared::ec2::Ec2 as Ec2Adapter;
use shared::function::Summary as _;
use shared::invocation::Deadline;
use shared::notify::SnsNotifier;
use shared::redis_node::RedisNodes;
use shared::route53::Route53;

const REGION: &str = "il-central-1";
/// Redis nodes: one address each, one port per test.
const HOSTS: [&str; 3] = ["127.0.13.2", "127.0.13.3", "127.0.13.4"];
/// The PostgreSQL server of each PostgreSQL test.
const PG_HOST: &str = "127.0.13.6";

/// Replicas notice a silent master after this many seconds (Redis'
/// default is 60; the master pings every second so a healthy link never
/// trips it).
const REPL_TIMEOUT: &str = "3";
/// The function's bounds on each Redis call (connect, reply).
const REDIS_CONNECT_MS: &str = "500";
const REDIS_COMMAND_MS: &str = "1000";
/// The longest one redis-failover invocation may take against these
/// bounds: a few rounds of reads of a silent node, each at most connect +
/// command, with room for a loaded machine. A run that hangs on a node
/// goes far past it.
const RUN_BOUND: Duration = Duration::from_secs(12);
/// The longest the writer thread runs, whatever the test does.
const WRITER_LIMIT: Duration = Duration::from_secs(90);
/// Bound on waiting for a node to reach a state.
const SETTLE: Duration = Duration::from_secs(20);

// ---------------------------------------------------------------------------
// Redis: the chain, the writer, the faults.

struct Chain {
    sdk: SdkConfig,
    zone: String,
    name: String,
    port: u16,
    servers: Vec<RedisServer>,
    instances: Vec<String>,
}

impl Chain {
    /// Three nodes on `port`, chained in order (the first is head), each
    /// an EC2 instance tagged as a node of the cluster, and the records
    /// written by a first run.
    async fn start(port: u16) -> Chain {
        let sdk = sdk(REGION).await;
        let domain = format!("f{}.test", unique());
        let zone = hosted_zone(&sdk, &domain).await;
        let mut chain = Chain {
            sdk,
            zone,
            name: format!("kate.{domain}"),
            port,
            servers: Vec::new(),
            instances: Vec::new(),
        };
        for host in HOSTS {
            let server = RedisServer::start(host, port, None);
            server.cmd(&["CONFIG", "SET", "repl-ping-replica-period", "1"]);
            server.cmd(&["CONFIG", "SET", "repl-timeout", REPL_TIMEOUT]);
            let endpoint = format!("{host}:{port}");
            chain
                .instances
                .push(redis_instance(&chain.sdk, &chain.name, &endpoint).await);
            chain.servers.push(server);
        }
        for i in 1..HOSTS.len() {
            chain.servers[i].cmd(&["REPLICAOF", HOSTS[i - 1], &port.to_string()]);
            chain.wait_link(i, true);
        }
        let first = chain.run(&chain.failover()).await.expect("the first run");
        assert_eq!(status(&first), "repaired", "{first:#}");
        assert_eq!(
            chain.records().await,
            (Some(HOSTS[0].to_owned()), Some(HOSTS[2].to_owned()))
        );
        chain
    }

    fn config(&self) -> Config {
        let zone: &'static str = Box::leak(self.zone.clone().into_boxed_str());
        Config::from_env(&env(&[
            ("HOSTED_ZONE_ID", zone),
            ("REDIS_CONNECT_TIMEOUT_MS", REDIS_CONNECT_MS),
            ("REDIS_COMMAND_TIMEOUT_MS", REDIS_COMMAND_MS),
        ]))
        .expect("config")
    }

    fn failover(&self) -> RedisFailover {
        self.failover_with(RedisNodes::new(self.config().redis))
    }

    fn failover_with<R: RedisApi>(&self, redis: R) -> RedisFailover<R> {
        RedisFailover::with(
            self.config(),
            redis,
            Route53::from_conf(&self.sdk, self.zone.clone()),
            Ec2Adapter::from_conf(&self.sdk),
            SnsNotifier::from_conf(&self.sdk, None),
        )
    }

    /// One invocation as the alarm or the schedule makes it (60 s
    /// deadline); it must end within [`RUN_BOUND`] whatever the nodes do.
    async fn run<R: RedisApi>(&self, f: &RedisFailover<R>) -> Result<Value, Error> {
        let started = Instant::now();
        let result = f
            .handle_event(event(json!({ "cluster": self.name }), secs(60)))
            .await;
        let took = started.elapsed();
        assert!(took < RUN_BOUND, "a run took {took:?}: {result:?}");
        result
    }

    /// Runs the function as a schedule would (every half second here)
    /// until two runs in a row find nothing to do; at most `max` runs.
    /// Returns every result, in order.
    async fn schedule(&self, max: usize) -> Vec<Result<Value, Error>> {
        let f = self.failover();
        let mut results = Vec::new();
        let mut quiet = 0;
        while results.len() < max && quiet < 2 {
            let result = self.run(&f).await;
            quiet = match &result {
                Ok(v) if status(v) == "healthy" => quiet + 1,
                _ => 0,
            };
            results.push(result);
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        assert_eq!(quiet, 2, "the chain did not settle in {max} runs: {results:#?}");
        results
    }

    /// (head record, tail record): the hosts they point at.
    async fn records(&self) -> (Option<String>, Option<String>) {
        let client = aws_sdk_route53::Client::new(&self.sdk);
        (
            record(&client, &self.zone, &self.name).await,
            record(&client, &self.zone, &format!("tail.{}", self.name)).await,
        )
    }

    fn wait_link(&self, i: usize, up: bool) -> Replication {
        self.servers[i].wait_for(
            &format!("link up: {up}"),
            SETTLE,
            |r| matches!(r.role, ReplicationRole::Replica { link_up, .. } if link_up == up),
        )
    }

    /// Waits until the nodes `alive` form exactly one chain: one master,
    /// every other node a fully synced replica with its link up, each of a
    /// different node of `alive`, so that the links from the master reach
    /// them all. Then checks the records name its head and tail, and
    /// returns the hosts, head first. Panics with the nodes' state after
    /// [`SETTLE`].
    async fn assert_one_chain(&self, alive: &[usize]) -> Vec<String> {
        let deadline = Instant::now() + SETTLE;
        let chain = loop {
            let infos: Vec<(usize, Replication)> = alive
                .iter()
                .map(|&i| (i, self.servers[i].info_replication()))
                .collect();
            match chain_of(&infos, self.port) {
                Ok(chain) => break chain,
                Err(why) if Instant::now() >= deadline => {
                    panic!("the nodes do not form one chain ({why}):\n{infos:#?}")
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        };
        let hosts: Vec<String> = chain.iter().map(|&i| HOSTS[i].to_owned()).collect();
        assert_eq!(
            self.records().await,
            (hosts.first().cloned(), hosts.last().cloned()),
            "the records name the chain's head and tail ({hosts:?})"
        );
        hosts
    }

    /// Waits until every node of `alive` but the head has everything the
    /// head has (the same offset), so that reads of a replica see it all.
    fn wait_synced(&self, alive: &[usize]) {
        let deadline = Instant::now() + SETTLE;
        loop {
            let infos: Vec<Replication> = alive
                .iter()
                .map(|&i| self.servers[i].info_replication())
                .collect();
            let head = infos.iter().find(|r| r.is_master()).map(|r| r.offset);
            if head.is_some_and(|o| infos.iter().all(|r| r.data_offset() == o)) {
                return;
            }
            assert!(Instant::now() < deadline, "not synced: {infos:#?}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// The host a record points at, if it exists.
async fn record(client: &aws_sdk_route53::Client, zone: &str, name: &str) -> Option<String> {
    let out = client
        .list_resource_record_sets()
        .hosted_zone_id(zone)
        .start_record_name(name)
        .send()
        .await
        .expect("ListResourceRecordSets");
    let found: Vec<String> = out
        .resource_record_sets()
        .iter()
        .filter(|r| r.name().trim_end_matches('.') == name)
        .map(|r| {
            r.resource_records()
                .iter()
                .map(|v| v.value())
                .collect::<Vec<_>>()
                .join(",")
        })
        .collect();
    assert!(found.len() <= 1, "{name} has {found:?}");
    found.into_iter().next()
}

/// The chain `infos` (node index, INFO replication) form, head first, or
/// why they do not form one.
fn chain_of(infos: &[(usize, Replication)], port: u16) -> Result<Vec<usize>, String> {
    let masters: Vec<usize> = infos
        .iter()
        .filter(|(_, r)| r.is_master())
        .map(|(i, _)| *i)
        .collect();
    let [head] = masters[..] else {
        return Err(format!("{} masters", masters.len()));
    };
    let mut master_of = HashMap::new();
    for (i, r) in infos {
        if let ReplicationRole::Replica {
            master_host,
            master_port,
            link_up,
            sync_in_progress,
            ..
        } = &r.role
        {
            if !link_up || *sync_in_progress || *master_port != port {
                return Err(format!(
                    "{} is not synced to {master_host}:{master_port}",
                    HOSTS[*i]
                ));
            }
            let Some(m) = HOSTS.iter().position(|h| h == master_host) else {
                return Err(format!("{} replicates a stranger {master_host}", HOSTS[*i]));
            };
            master_of.insert(*i, m);
        }
    }
    let mut chain = vec![head];
    while let Some(&cur) = chain.last() {
        let kids: Vec<usize> = master_of
            .iter()
            .filter(|(_, m)| **m == cur)
            .map(|(i, _)| *i)
            .collect();
        match kids[..] {
            [] => break,
            [next] if !chain.contains(&next) => chain.push(next),
            _ => return Err(format!("{} has replicas {kids:?}", HOSTS[cur])),
        }
    }
    if chain.len() != infos.len() {
        return Err(format!("the chain from the head is {chain:?}"));
    }
    Ok(chain)
}

/// The status of the one cluster in a result.
fn status(result: &Value) -> String {
    result["clusters"][0]["status"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

/// The keys a client wrote, by what the chain told it.
#[derive(Debug, Default, Clone)]
struct Writes {
    /// `WAIT 1` answered 1: a replica has them.
    acked: Vec<String>,
    /// `SET` answered OK but no replica acknowledged them (or the
    /// connection broke before it could say).
    unacked: Vec<String>,
    /// Batches that found no head to write to.
    failed: usize,
}

/// A client of the chain on a thread of its own: resolves the cluster
/// record (Route 53, each batch), writes ten keys to the head it names,
/// then `WAIT 1` (300 ms); and again every 20 ms until stopped (or
/// [`WRITER_LIMIT`]).
struct Writer {
    stop: Arc<AtomicBool>,
    writes: Arc<Mutex<Writes>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Writer {
    fn start(chain: &Chain) -> Writer {
        let stop = Arc::new(AtomicBool::new(false));
        let writes = Arc::new(Mutex::new(Writes::default()));
        let (zone, name, port) = (chain.zone.clone(), chain.name.clone(), chain.port);
        let thread = {
            let (stop, writes) = (stop.clone(), writes.clone());
            std::thread::spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("a runtime");
                // Its own SDK client: no connection shared with the test's runtime.
                let route53 = aws_sdk_route53::Client::new(&runtime.block_on(sdk(REGION)));
                let started = Instant::now();
                let mut n = 0usize;
                while !stop.load(Ordering::Relaxed) && started.elapsed() < WRITER_LIMIT {
                    let head = runtime.block_on(record(&route53, &zone, &name));
                    let keys: Vec<String> = (n..n + 10).map(|k| format!("w:{k}")).collect();
                    n += keys.len();
                    let (acked, sent) = match head {
                        Some(host) => write_batch(&host, port, &keys),
                        None => (false, 0),
                    };
                    let mut w = writes.lock().expect("the writes");
                    if acked {
                        w.acked.extend(keys);
                    } else {
                        w.unacked.extend(keys.into_iter().take(sent));
                        w.failed += 1;
                    }
                    drop(w);
                    std::thread::sleep(Duration::from_millis(20));
                }
            })
        };
        Writer {
            stop,
            writes,
            thread: Some(thread),
        }
    }

    fn snapshot(&self) -> Writes {
        self.writes.lock().expect("the writes").clone()
    }

    /// Waits until `more` batches beyond those acknowledged now are.
    fn wait_acked(&self, more: usize) {
        let want = self.snapshot().acked.len() + more * 10;
        let deadline = Instant::now() + SETTLE;
        while self.snapshot().acked.len() < want {
            assert!(
                Instant::now() < deadline,
                "the writer got no acknowledgement: {:?}",
                self.snapshot().failed
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits until at least one batch more was written without an
    /// acknowledgement.
    fn wait_unacked(&self) {
        let want = self.snapshot().unacked.len() + 1;
        let deadline = Instant::now() + SETTLE;
        while self.snapshot().unacked.len() < want {
            assert!(Instant::now() < deadline, "every write was acknowledged");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn finish(mut self) -> Writes {
        self.halt();
        self.snapshot()
    }

    fn halt(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        self.halt();
    }
}

/// Writes `keys` (value `v-<key>`) to `host:port`, then `WAIT 1 300`:
/// (acknowledged by a replica, how many SETs were sent on a connection
/// that was made). A connection that breaks after a SET was sent counts
/// that SET as sent (the server may have applied it), never as
/// acknowledged.
fn write_batch(host: &str, port: u16, keys: &[String]) -> (bool, usize) {
    let client = match redis::Client::open((host, port)) {
        Ok(client) => client,
        Err(_) => return (false, 0),
    };
    let Ok(mut conn) = client.get_connection_with_timeout(Duration::from_millis(300)) else {
        return (false, 0);
    };
    let timeouts = conn
        .set_read_timeout(Some(Duration::from_secs(1)))
        .and_then(|()| conn.set_write_timeout(Some(Duration::from_secs(1))));
    if timeouts.is_err() {
        return (false, 0);
    }
    let mut sent = 0;
    for key in keys {
        sent += 1;
        if redis::cmd("SET")
            .arg(key)
            .arg(format!("v-{key}"))
            .exec(&mut conn)
            .is_err()
        {
            return (false, sent);
        }
    }
    let replicas: redis::RedisResult<i64> = redis::cmd("WAIT").arg(1).arg(300).query(&mut conn);
    (replicas.is_ok_and(|n| n >= 1), sent)
}

/// The keys of `keys` that `server` does not hold with the writer's value.
fn missing(server: &RedisServer, keys: &[String]) -> Vec<String> {
    let mut gone = Vec::new();
    for chunk in keys.chunks(500) {
        let mut args = vec!["MGET"];
        args.extend(chunk.iter().map(String::as_str));
        let RedisValue::Array(values) = server.cmd(&args) else {
            panic!("MGET answers an array")
        };
        for (key, value) in chunk.iter().zip(values) {
            if value != RedisValue::BulkString(format!("v-{key}").into_bytes()) {
                gone.push(key.clone());
            }
        }
    }
    gone
}

fn assert_all_on(server: &RedisServer, writes: &Writes) {
    assert!(
        !writes.acked.is_empty(),
        "nothing was acknowledged: the check would be empty"
    );
    let gone = missing(server, &writes.acked);
    assert!(
        gone.is_empty(),
        "{} of {} acknowledged writes are not on {}: {:?}",
        gone.len(),
        writes.acked.len(),
        server.endpoint(),
        &gone[..gone.len().min(20)]
    );
}

/// Sends `signal` to `pid` (any process of this test, child or not); one
/// already gone is no error.
fn signal(pid: u32, signal: libc::c_int) {
    // SAFETY: kill(2) has no memory effects; the pids are servers this test
    // started (or their children), which are not reaped while we signal
    // them.
    unsafe { libc::kill(pid as libc::pid_t, signal) };
}

/// Whether `pid` is gone or a zombie (it has ended, not been reaped).
fn ended(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .is_none_or(|state| state == "Z" || state == "X"),
    }
}

fn wait_ended(pids: &[u32]) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !pids.iter().all(|&p| ended(p)) {
        assert!(Instant::now() < deadline, "{pids:?} did not end");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Where the wrapped [`RedisApi`] kills its target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum KillAt {
    /// At the second `INFO replication` of the target in the run: the
    /// re-check right before a promotion (the first is the observation).
    Recheck,
    /// At `REPLICAOF NO ONE` to the target, before it is sent: after the
    /// promotion was claimed on Route 53.
    Promote,
}

/// [`RedisNodes`] with a signal to one node at a known call: SIGKILL (it
/// dies) or SIGSTOP (it hangs; [`RedisServer::cont`] wakes it).
struct KillingRedis {
    inner: RedisNodes,
    target: Endpoint,
    pid: u32,
    at: KillAt,
    signal: libc::c_int,
    reads: AtomicUsize,
    fired: AtomicBool,
}

impl KillingRedis {
    fn new(chain: &Chain, target: usize, at: KillAt) -> Self {
        KillingRedis {
            inner: RedisNodes::new(chain.config().redis),
            target: chain.servers[target].endpoint(),
            pid: chain.servers[target].pid(),
            at,
            signal: libc::SIGKILL,
            reads: AtomicUsize::new(0),
            fired: AtomicBool::new(false),
        }
    }

    /// The same, with SIGSTOP instead of SIGKILL.
    fn freezing(chain: &Chain, target: usize, at: KillAt) -> Self {
        KillingRedis {
            signal: libc::SIGSTOP,
            ..KillingRedis::new(chain, target, at)
        }
    }

    /// Signals the target once; after a SIGKILL, returns when it no longer
    /// listens.
    fn fire(&self) {
        if !self.fired.swap(true, Ordering::SeqCst) {
            signal(self.pid, self.signal);
            if self.signal == libc::SIGKILL {
                wait_ended(&[self.pid]);
            }
        }
    }
}

impl RedisApi for KillingRedis {
    async fn replication(&self, node: &Endpoint) -> Result<Replication, NodeError> {
        if *node == self.target
            && self.at == KillAt::Recheck
            && self.reads.fetch_add(1, Ordering::SeqCst) + 1 == 2
        {
            self.fire();
        }
        self.inner.replication(node).await
    }

    async fn replicate(&self, node: &Endpoint, master: Option<&Endpoint>) -> Result<(), NodeError> {
        if *node == self.target && master.is_none() && self.at == KillAt::Promote {
            self.fire();
        }
        self.inner.replicate(node, master).await
    }

    async fn failover_to(
        &self,
        head: &Endpoint,
        replica: &Endpoint,
        timeout: Duration,
    ) -> Result<(), NodeError> {
        self.inner.failover_to(head, replica, timeout).await
    }

    async fn abort_failover(&self, head: &Endpoint) -> Result<(), NodeError> {
        self.inner.abort_failover(head).await
    }
}

/// Waits until replica `i` has everything its master had sent (its offset
/// equals `offset`): the writes its master acknowledged have moved down the
/// chain. Two failures in a row lose what only the second node held; this
/// makes the tests' double failures start from a chain that had settled,
/// as a loopback chain does within milliseconds.
fn wait_offset(chain: &Chain, i: usize, offset: i64) {
    chain.servers[i].wait_for(&format!("offset {offset}"), SETTLE, |r| r.data_offset() >= offset);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_promotion_target_killed_after_the_claim_leaves_the_head_to_the_tail() {
    let mut c = Chain::start(17660).await;
    let writer = Writer::start(&c);
    writer.wait_acked(5);
    c.servers[0].kill();
    // The middle node's offset is final once its master is gone.
    let m = c.wait_link(1, false);
    wait_offset(&c, 2, m.data_offset());

    // The run claims the promotion of the middle node on Route 53, then the
    // node dies before REPLICAOF NO ONE reaches it.
    let killing = c.failover_with(KillingRedis::new(&c, 1, KillAt::Promote));
    let err = c.run(&killing).await.expect_err("the promotion fails");
    assert!(err.is_retryable(), "{err}");
    assert!(err.to_string().contains("could not be promoted"), "{err}");
    assert_eq!(
        c.records().await.0.as_deref(),
        Some(HOSTS[1]),
        "the claim moved the record"
    );

    // The retry (and the schedule after it): the record's head is dead and
    // its own replica, the tail, says so: the tail is promoted.
    let results = c.schedule(8).await;
    let first = results[0].as_ref().expect("the retry promotes");
    assert_eq!(status(first), "promoted", "{first:#}");
    assert_eq!(first["clusters"][0]["promoted"], json!(c.instances[2]));
    assert_eq!(c.assert_one_chain(&[2]).await, [HOSTS[2]]);

    // Both dead nodes are replaced (same addresses, empty): they join behind
    // the head, never as heads of their own.
    c.servers[0].restart();
    c.servers[1].restart();
    c.schedule(8).await;
    let hosts = c.assert_one_chain(&[0, 1, 2]).await;
    assert_eq!(hosts[0], HOSTS[2]);
    // Acknowledged again once the head has a replica.
    writer.wait_acked(5);
    let writes = writer.finish();
    assert_all_on(&c.servers[2], &writes);
    c.wait_synced(&[0, 1, 2]);
    for i in [0, 1] {
        assert_all_on(&c.servers[i], &writes);
    }
    eprintln!(
        "killed after the claim: {} acknowledged, {} unacknowledged, {} batches without a head",
        writes.acked.len(),
        writes.unacked.len(),
        writes.failed
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_promotion_target_killed_at_the_recheck_blocks_every_run_and_promotes_nobody() {
    let mut c = Chain::start(17661).await;
    let writer = Writer::start(&c);
    writer.wait_acked(5);
    c.servers[0].kill();
    let m = c.wait_link(1, false);
    wait_offset(&c, 2, m.data_offset());

    // The middle node dies after the run observed it, at the re-check
    // right before its promotion: nothing was claimed yet.
    let killing = c.failover_with(KillingRedis::new(&c, 1, KillAt::Recheck));
    let err = c.run(&killing).await.expect_err("blocked");
    assert!(err.is_retryable(), "{err}");
    assert!(
        err.to_string().contains("no replica of it says it is down"),
        "{err}"
    );

    // Every scheduled run after it: the record's head (dead) has no live
    // replica; the tail only knows that the middle node is gone, which
    // says nothing about the head. Nobody is promoted, nothing is written.
    let f = c.failover();
    for _ in 0..3 {
        let err = c.run(&f).await.expect_err("still blocked");
        assert!(err.is_retryable(), "{err}");
        assert!(
            err.to_string().contains("no replica of it says it is down"),
            "{err}"
        );
    }
    assert!(!c.servers[2].info_replication().is_master(), "no head was made");
    assert_eq!(
        c.records().await,
        (Some(HOSTS[0].to_owned()), Some(HOSTS[2].to_owned()))
    );
    // The tail still holds every acknowledged write, for whoever decides.
    let writes = writer.finish();
    assert_all_on(&c.servers[2], &writes);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_promotion_target_that_hangs_and_completes_its_promotion_late_is_fenced_not_made_head() {
    let mut c = Chain::start(17666).await;
    let writer = Writer::start(&c);
    writer.wait_acked(5);
    c.servers[0].kill();
    let m = c.wait_link(1, false);
    wait_offset(&c, 2, m.data_offset());

    // The middle node hangs after the promotion was claimed for it, with
    // REPLICAOF NO ONE on its way: the command times out here, and waits
    // in the node's socket.
    let freezing = c.failover_with(KillingRedis::freezing(&c, 1, KillAt::Promote));
    let err = c.run(&freezing).await.expect_err("the promotion times out");
    assert!(err.is_retryable(), "{err}");
    assert!(err.to_string().contains("could not be promoted"), "{err}");

    // Once the tail's link to it times out, the tail is promoted; the dead
    // head's replacement (same address, empty) joins behind it, and writes
    // are acknowledged again.
    let f = c.failover();
    let mut runs = 0;
    loop {
        runs += 1;
        assert!(runs < 20, "the tail was never promoted");
        match c.run(&f).await {
            Ok(v) if status(&v) == "promoted" => {
                assert_eq!(v["clusters"][0]["promoted"], json!(c.instances[2]));
                break;
            }
            Err(e) if e.is_retryable() => tokio::time::sleep(Duration::from_millis(500)).await,
            other => panic!("{other:?}"),
        }
    }
    c.servers[0].restart();
    c.schedule(8).await;
    assert_eq!(c.assert_one_chain(&[0, 2]).await, [HOSTS[2], HOSTS[0]]);
    writer.wait_acked(5);

    // The hung node wakes up and runs the REPLICAOF NO ONE it was sent: a
    // master, its history forked from the same old head as the tail's.
    // Clients that still hold the record's old value (its TTL) write to
    // it; nothing acknowledges those writes, but they carry its offset past
    // the real head's.
    c.servers[1].cont();
    c.servers[1].wait_for("the late promotion", SETTLE, Replication::is_master);
    // 3 MB: far more than the head takes meanwhile, however slow the runs.
    let value = "x".repeat(1024);
    let mut pipe = redis::pipe();
    for i in 0..3000 {
        pipe.cmd("SET").arg(format!("late:{i}")).arg(&value).ignore();
    }
    let client = redis::Client::open((HOSTS[1], c.port)).expect("client");
    let mut conn = client.get_connection_with_timeout(secs(5)).expect("connection");
    pipe.exec(&mut conn).expect("the writes to the late head");
    assert_eq!(c.servers[1].cmd(&["WAIT", "1", "200"]), RedisValue::Int(0));
    let (late, head) = (c.servers[1].info_replication(), c.servers[2].info_replication());
    assert!(late.offset > head.offset, "the premise: {late:?} {head:?}");

    // The record's head, which won the claim and holds the acknowledged
    // writes, stays head; the late one is fenced.
    c.schedule(8).await;
    let hosts = c.assert_one_chain(&[0, 1, 2]).await;
    assert_eq!(hosts[0], HOSTS[2], "the head changed: {hosts:?}");
    writer.wait_acked(5);
    let writes = writer.finish();
    assert_all_on(&c.servers[2], &writes);
    c.wait_synced(&[0, 1, 2]);
    for i in [0, 1] {
        assert_all_on(&c.servers[i], &writes);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sigstopped_head_is_replaced_only_once_its_replica_gives_up_and_is_fenced_after_sigcont() {
    let c = Chain::start(17662).await;
    let writer = Writer::start(&c);
    writer.wait_acked(5);
    c.servers[0].stop();

    // Runs until the middle node is promoted. The stopped head never
    // answers (each run is bounded by the Redis timeouts); while its
    // replica still has its link up the head may be alive, and nothing
    // may be promoted.
    let f = c.failover();
    let mut blocked = 0;
    let promoted = loop {
        assert!(blocked < 20, "never promoted");
        let result = c.run(&f).await;
        let after = c.servers[1].info_replication();
        if let ReplicationRole::Replica { link_up: true, .. } = after.role {
            let err = result.expect_err("nothing promoted while the replica sees the head");
            assert!(err.is_retryable(), "{err}");
            assert!(err.to_string().contains("still has its link up"), "{err}");
            assert!(!c.servers[2].info_replication().is_master());
            blocked += 1;
            tokio::time::sleep(Duration::from_millis(500)).await;
            continue;
        }
        match result {
            Ok(v) if status(&v) == "promoted" => break v,
            // The link went down between the run's reads and ours.
            Err(e) if e.is_retryable() => blocked += 1,
            other => panic!("{other:?}"),
        }
    };
    assert_eq!(promoted["clusters"][0]["promoted"], json!(c.instances[1]));
    assert_eq!(c.assert_one_chain(&[1, 2]).await, [HOSTS[1], HOSTS[2]]);
    writer.wait_acked(5);

    // The old head wakes up still a master with its old data. A client
    // that still talks to it can write, but no replica acknowledges it.
    c.servers[0].cont();
    let stale = c.servers[0].cmd(&["SET", "written-to-the-old-head", "lost"]);
    assert_eq!(stale, RedisValue::Okay);
    assert_eq!(c.servers[0].cmd(&["WAIT", "1", "500"]), RedisValue::Int(0));

    // The next runs fence it behind the tail: one head.
    c.schedule(8).await;
    let hosts = c.assert_one_chain(&[0, 1, 2]).await;
    assert_eq!(hosts, [HOSTS[1], HOSTS[2], HOSTS[0]]);
    writer.wait_acked(5);
    let writes = writer.finish();
    assert_all_on(&c.servers[1], &writes);
    c.wait_synced(&[0, 1, 2]);
    assert_all_on(&c.servers[0], &writes);
    // What only the old head took is gone, from it as well.
    for i in 0..3 {
        assert_eq!(
            c.servers[i].cmd(&["EXISTS", "written-to-the-old-head"]),
            RedisValue::Int(0)
        );
    }
    eprintln!(
        "sigstop: {blocked} blocked runs; {} acknowledged, {} unacknowledged",
        writes.acked.len(),
        writes.unacked.len()
    );
}

/// Checks that `master` lists its replica as connected from `host`.
fn assert_replica_listed(master: &RedisServer, host: &str, port: u16) {
    let RedisValue::BulkString(text) = master.cmd(&["INFO", "replication"]) else {
        panic!("INFO is a bulk string")
    };
    let text = String::from_utf8_lossy(&text);
    assert!(text.contains(&format!("slave0:ip={host},port={port},")), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sigstopped_middle_node_is_bypassed_and_rejoins_the_chain_after_sigcont() {
    let c = Chain::start(17665).await;
    let writer = Writer::start(&c);
    writer.wait_acked(5);
    c.servers[1].stop();

    // The hung middle node never answers (every run is bounded by the
    // Redis timeouts): its replica is re-attached to the head.
    let results = c.schedule(8).await;
    let first = results[0].as_ref().expect("a repair");
    assert_eq!(status(first), "repaired", "{first:#}");
    assert_eq!(
        first["clusters"][0]["steps"][0]["reason"], "reattach",
        "{first:#}"
    );
    assert_eq!(c.assert_one_chain(&[0, 2]).await, [HOSTS[0], HOSTS[2]]);
    writer.wait_acked(5);

    // Woken up, it is still a replica of the head and reconnects to it:
    // the head has two replicas, and the next runs make one chain again.
    c.servers[1].cont();
    c.wait_link(1, true);
    c.schedule(8).await;
    let hosts = c.assert_one_chain(&[0, 1, 2]).await;
    assert_eq!(hosts[0], HOSTS[0]);
    writer.wait_acked(5);
    let writes = writer.finish();
    assert_all_on(&c.servers[0], &writes);
    c.wait_synced(&[0, 1, 2]);
    for i in [1, 2] {
        assert_all_on(&c.servers[i], &writes);
    }
}

/// An nftables table of this test process that drops every packet between
/// two loopback addresses, both ways; deleted on drop.
struct Partition {
    table: String,
}

impl Partition {
    fn between(a: &str, b: &str) -> Partition {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        remove_stale_tables();
        let table = format!(
            "nl9c_{}_{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::SeqCst)
        );
        let script = format!(
            "table ip {table} {{\n  chain out {{\n    type filter hook output priority 0; policy accept;\n    \
             ip saddr {a} ip daddr {b} drop\n    ip saddr {b} ip daddr {a} drop\n  }}\n}}\n"
        );
        nft(&["-f", "-"], Some(&script));
        Partition { table }
    }
}

impl Drop for Partition {
    fn drop(&mut self) {
        let _ = try_nft(&["delete", "table", "ip", &self.table], None);
    }
}

/// Tables of test processes that no longer run (killed before their
/// guards could drop them).
fn remove_stale_tables() {
    let Ok(list) = try_nft(&["list", "tables"], None) else {
        return;
    };
    for name in list.split_whitespace().filter(|w| w.starts_with("nl9c_")) {
        let pid = name.split('_').nth(1).and_then(|p| p.parse::<u32>().ok());
        if pid.is_some_and(|p| p != std::process::id() && ended(p)) {
            let _ = try_nft(&["delete", "table", "ip", name], None);
        }
    }
}

fn nft(args: &[&str], stdin: Option<&str>) -> String {
    try_nft(args, stdin).unwrap_or_else(|e| {
        panic!("nft {args:?}: {e} (partitions need root and nft: run scripts/datastore-faults-setup.sh)")
    })
}

fn try_nft(args: &[&str], stdin: Option<&str>) -> Result<String, String> {
    use std::io::Write as _;
    let mut child = Command::new("nft")
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .map_err(|e| e.to_string())?;
    if let Some(mut input) = child.stdin.take() {
        input
            .write_all(stdin.unwrap_or_default().as_bytes())
            .map_err(|e| e.to_string())?;
    }
    let out = child.wait_with_output().map_err(|e| e.to_string())?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partition_between_the_head_and_its_replica_promotes_nobody_and_heals() {
    let c = Chain::start(17663).await;
    // The partition drops packets by address: the replica must connect
    // from its own (the harness' `bind-source-addr`), as on EC2, not from
    // 127.0.0.1 as a loopback connection otherwise would.
    assert_replica_listed(&c.servers[0], HOSTS[1], c.port);
    let writer = Writer::start(&c);
    writer.wait_acked(5);
    let partition = Partition::between(HOSTS[0], HOSTS[1]);
    c.wait_link(1, false);
    // The head takes writes, but no replica acknowledges them.
    writer.wait_unacked();

    // The head is up: every run keeps it, changes nothing, writes nothing.
    let f = c.failover();
    for _ in 0..3 {
        let result = c.run(&f).await.expect("a run");
        assert_eq!(status(&result), "healthy", "{result:#}");
        assert!(c.servers[0].info_replication().is_master());
        assert!(!c.servers[1].info_replication().is_master());
        assert!(!c.servers[2].info_replication().is_master());
    }
    assert_eq!(
        c.records().await,
        (Some(HOSTS[0].to_owned()), Some(HOSTS[2].to_owned()))
    );

    drop(partition);
    c.wait_link(1, true);
    writer.wait_acked(5);
    let writes = writer.finish();
    c.schedule(4).await;
    assert_eq!(c.assert_one_chain(&[0, 1, 2]).await, HOSTS);
    c.wait_synced(&[0, 1, 2]);
    for i in 0..3 {
        assert_all_on(&c.servers[i], &writes);
    }
    eprintln!(
        "partition healed: {} acknowledged, {} unacknowledged",
        writes.acked.len(),
        writes.unacked.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_head_killed_behind_a_partition_gives_way_to_its_replica_without_losing_acknowledged_writes() {
    let mut c = Chain::start(17664).await;
    assert_replica_listed(&c.servers[0], HOSTS[1], c.port);
    let writer = Writer::start(&c);
    writer.wait_acked(5);
    let partition = Partition::between(HOSTS[0], HOSTS[1]);
    c.wait_link(1, false);
    writer.wait_unacked();
    let before = writer.snapshot();
    c.servers[0].kill();

    // The replica's link has been down for seconds (less than the policy's
    // 120 s): it is promoted, without what the head took alone.
    let results = c.schedule(8).await;
    let first = results[0].as_ref().expect("a promotion");
    assert_eq!(status(first), "promoted", "{first:#}");
    assert_eq!(first["clusters"][0]["promoted"], json!(c.instances[1]));
    assert_eq!(c.assert_one_chain(&[1, 2]).await, [HOSTS[1], HOSTS[2]]);
    drop(partition);
    writer.wait_acked(5);
    let writes = writer.finish();
    assert_all_on(&c.servers[1], &writes);
    c.wait_synced(&[1, 2]);
    assert_all_on(&c.servers[2], &writes);
    let lost = missing(&c.servers[1], &before.unacked);
    eprintln!(
        "head killed behind a partition: {} acknowledged (all kept); {} of {} unacknowledged writes the \
         old head took alone are gone",
        writes.acked.len(),
        lost.len(),
        before.unacked.len()
    );
}

// ---------------------------------------------------------------------------
// PostgreSQL backup mode.

/// The PostgreSQL tests empty the region's volumes and snapshots; one at a
/// time.
static PG_LOCK: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Every process of a server: the postmaster and its children (backends,
/// checkpointer, ...), found by their parent in `/proc`.
fn process_tree(postmaster: u32) -> Vec<u32> {
    let mut pids = vec![postmaster];
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else {
            continue;
        };
        let parent = std::fs::read_to_string(entry.path().join("stat"))
            .ok()
            .and_then(|s| s.rsplit_once(')').map(|(_, rest)| rest.to_owned()))
            .and_then(|rest| rest.split_whitespace().nth(1).and_then(|p| p.parse::<u32>().ok()));
        if parent == Some(postmaster) {
            pids.push(pid);
        }
    }
    pids
}

/// A server whose every process is SIGSTOPped, as a hung machine: TCP
/// connections are still accepted by the kernel, nothing answers, and the
/// open backup session hangs too. SIGCONT on drop (also when a test fails,
/// so the harness can then shut the server down).
struct Frozen {
    pids: Vec<u32>,
}

impl Frozen {
    fn server(server: &PgServer) -> Frozen {
        let pids = process_tree(server.pid());
        for &pid in &pids {
            signal(pid, libc::SIGSTOP);
        }
        Frozen { pids }
    }
}

impl Drop for Frozen {
    fn drop(&mut self) {
        for &pid in &self.pids {
            signal(pid, libc::SIGCONT);
        }
    }
}

/// SIGKILL of every process of the server at once, as a machine that lost
/// its power; returns when they have all ended.
fn kill_server(server: &PgServer) {
    let pids = process_tree(server.pid());
    for &pid in &pids {
        signal(pid, libc::SIGKILL);
    }
    wait_ended(&pids);
}

/// Fast shutdown (SIGINT to the postmaster: sessions are terminated, then
/// the server stops); returns when the postmaster has ended.
async fn fast_shutdown(server: &PgServer) {
    let pid = server.pid();
    signal(pid, libc::SIGINT);
    let deadline = Instant::now() + Duration::from_secs(20);
    while !ended(pid) {
        assert!(
            Instant::now() < deadline,
            "no fast shutdown:\n{}",
            server.log_tail()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// What happens to the server while the snapshot call runs.
#[derive(Clone, Copy, PartialEq, Eq)]
enum PgFault {
    /// SIGKILL of every process before the call.
    KillBefore,
    /// Fast shutdown while the call is under way; the call returns once
    /// the server is down.
    ShutdownDuring,
    /// Every process SIGSTOPped once the snapshot is made, before the
    /// backup is stopped.
    FreezeAfter,
}

/// The EC2 adapter with a fault of the server at the snapshot call.
struct Faulty<'a> {
    inner: Ec2Adapter,
    fault: PgFault,
    server: &'a PgServer,
    frozen: &'a Mutex<Option<Frozen>>,
}

impl Faulty<'_> {
    async fn around<T>(
        &self,
        create: impl std::future::Future<Output = Result<T, Error>>,
    ) -> Result<T, Error> {
        match self.fault {
            PgFault::KillBefore => {
                kill_server(self.server);
                create.await
            }
            PgFault::ShutdownDuring => {
                let (made, ()) = tokio::join!(create, fast_shutdown(self.server));
                made
            }
            PgFault::FreezeAfter => {
                let made = create.await;
                *self.frozen.lock().expect("the frozen slot") = Some(Frozen::server(self.server));
                made
            }
        }
    }
}

impl BackupApi for Faulty<'_> {
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
        self.around(self.inner.create_snapshot(request)).await
    }
    async fn create_snapshots(&self, request: &MultiSnapshot) -> Result<Vec<(String, String)>, Error> {
        self.around(self.inner.create_snapshots(request)).await
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

/// A server, and one volume tagged for backup mode on an instance whose
/// endpoint is the server's, in an emptied region.
struct PgCase {
    server: PgServer,
    sdk: SdkConfig,
    instance: String,
    volume: String,
}

impl PgCase {
    async fn start(port: u16) -> PgCase {
        let server = PgServer::primary(PG_HOST, port).await;
        let sdk = sdk(REGION).await;
        // Not `fresh`: the Redis tests' nodes are instances of this region.
        Ec2::new(&sdk).clear_volumes().await;
        let (instance, volume) = postgres_volume(&sdk, &server.endpoint().to_string()).await;
        PgCase {
            server,
            sdk,
            instance,
            volume,
        }
    }

    fn hooks(&self) -> PgBackupHooks<Ec2Adapter> {
        let settings = shared::pg_node::PgSettings {
            connect_timeout: Duration::from_millis(1000),
            ..self.server.settings()
        };
        PgBackupHooks::new(settings, Ec2Adapter::from_conf(&self.sdk))
    }

    /// One run of today's daily snapshot through `api`, with `deadline`.
    async fn run(&self, api: &impl BackupApi, deadline: Duration) -> (SnapshotSummary, Duration) {
        let run = SnapshotRun {
            tier: Tier::Daily,
            time: Utc::now(),
            time_from_event: true,
            retention: Retention::default(),
            run_id: format!("test-{}", unique()),
            dry_run: false,
        };
        let started = Instant::now();
        let summary = take_snapshots(api, &self.hooks(), &run, &Deadline::after(deadline))
            .await
            .expect("the run reports, it does not fail outright");
        (summary, started.elapsed())
    }

    /// A run cut by a fault: the group failed, retryably, naming the
    /// instance and `step`; nothing created, nothing left in EC2.
    async fn assert_failed_and_nothing_left(&self, mut summary: SnapshotSummary, step: &str) {
        assert!(summary.created.is_empty(), "{summary:?}");
        assert_eq!(summary.failed.len(), 1, "{summary:?}");
        assert_eq!(summary.failed[0].volume_ids, vec![self.volume.clone()]);
        let error = &summary.failed[0].error;
        assert!(error.contains(step), "{error}");
        let outcome = summary.take_outcome_error().expect("the run fails");
        assert!(outcome.is_retryable(), "{outcome}");
        let left = Ec2::new(&self.sdk).snapshots().await;
        assert!(
            left.is_empty(),
            "a snapshot that is not a backup was left: {left:?}"
        );
    }

    /// No session of ninelives' is left on the server, so no backup of
    /// ours is running (a non-exclusive backup lives and dies with its
    /// session); waits for one that is still ending.
    async fn assert_no_backup_session(&self) {
        let deadline = Instant::now() + SETTLE;
        loop {
            let left = self
                .server
                .value("SELECT count(*) FROM pg_stat_activity WHERE application_name = 'ninelives-backup'")
                .await;
            if left.as_deref() == Some("0") {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "a backup session is still there:\n{}",
                self.server.log_tail()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The retry, on a healthy server: one labelled backup of the volume,
    /// and nothing else.
    async fn assert_retry_makes_one_backup(&self) {
        let (summary, _) = self
            .run(&Ec2Adapter::from_conf(&self.sdk), Duration::from_secs(60))
            .await;
        assert!(summary.complete, "{summary:?}\n{}", self.server.log_tail());
        assert_eq!(summary.created.len(), 1, "{summary:?}");
        let snaps = Ec2::new(&self.sdk).snapshots_of(&self.volume).await;
        assert_eq!(snaps.len(), 1, "{snaps:?}");
        let tags: Tags = snaps[0]
            .tags()
            .iter()
            .filter_map(|t| Some((t.key()?.to_owned(), t.value()?.to_owned())))
            .collect();
        let label = label_from_tags(&tags).expect("the backup's label");
        assert!(label.contains(&self.instance), "{label}");
        self.assert_no_backup_session().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_killed_or_shut_down_in_backup_mode_leaves_no_backup_and_no_false_snapshot() {
    let _region = PG_LOCK.lock().await;
    let mut case = PgCase::start(17680).await;
    let frozen = Mutex::new(None);

    // Killed between pg_backup_start and the snapshot call.
    let api = Faulty {
        inner: Ec2Adapter::from_conf(&case.sdk),
        fault: PgFault::KillBefore,
        server: &case.server,
        frozen: &frozen,
    };
    let (summary, took) = case.run(&api, Duration::from_secs(60)).await;
    assert!(took < Duration::from_secs(20), "{took:?}");
    case.assert_failed_and_nothing_left(summary, "pg_backup_stop")
        .await;
    assert_eq!(statements(&case.server.log(), "pg_backup_start").len(), 1);
    case.server.restart().await;
    case.assert_no_backup_session().await;

    // Fast shutdown while the snapshot call is under way: the server ends
    // the backup session itself.
    let api = Faulty {
        inner: Ec2Adapter::from_conf(&case.sdk),
        fault: PgFault::ShutdownDuring,
        server: &case.server,
        frozen: &frozen,
    };
    let (summary, took) = case.run(&api, Duration::from_secs(60)).await;
    assert!(took < Duration::from_secs(30), "{took:?}");
    case.assert_failed_and_nothing_left(summary, "pg_backup_stop")
        .await;
    assert!(
        case.server
            .log()
            .contains("terminating connection due to administrator command"),
        "{}",
        case.server.log_tail()
    );
    case.server.restart().await;
    case.assert_no_backup_session().await;

    case.assert_retry_makes_one_backup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_postgres_cannot_hold_a_run_past_its_deadline_or_leave_its_backup_open() {
    let _region = PG_LOCK.lock().await;
    let case = PgCase::start(17681).await;
    let frozen = Mutex::new(None);

    // Hung before the run: the start cannot connect within its 1 s bound;
    // nothing is snapshotted without backup mode.
    let hung = Frozen::server(&case.server);
    let (summary, took) = case
        .run(&Ec2Adapter::from_conf(&case.sdk), Duration::from_secs(60))
        .await;
    assert!(took < Duration::from_secs(10), "{took:?}");
    case.assert_failed_and_nothing_left(summary, "pg_backup_start")
        .await;
    drop(hung);
    case.assert_no_backup_session().await;

    // Hung after the snapshot, before the stop: the stop (allowed two
    // minutes for the WAL archive) is cut by the invocation's deadline
    // (8 s here: its hard limit is 7.5 s away), and the snapshot, not
    // proven a backup, is deleted.
    let api = Faulty {
        inner: Ec2Adapter::from_conf(&case.sdk),
        fault: PgFault::FreezeAfter,
        server: &case.server,
        frozen: &frozen,
    };
    let (summary, took) = case.run(&api, Duration::from_secs(8)).await;
    assert!(took < Duration::from_secs(15), "{took:?}");
    assert!(
        summary
            .failed
            .first()
            .is_some_and(|f| f.error.contains("deadline")),
        "{summary:?}"
    );
    case.assert_failed_and_nothing_left(summary, "backup stop").await;
    let held = frozen.lock().expect("the frozen slot").take();
    assert!(held.is_some(), "the fault fired");
    // Woken up, the backend finds its client gone: the server aborts the
    // backup with the session (or, had the stop reached it first, ends it).
    drop(held);
    case.assert_no_backup_session().await;
    let log = case.server.log();
    assert!(
        log.contains("aborting backup due to backend exiting before pg_backup_stop was called")
            || !statements(&log, "pg_backup_stop").is_empty(),
        "{}",
        case.server.log_tail()
    );

    case.assert_retry_makes_one_backup().await;
}
