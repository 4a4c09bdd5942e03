//! The Redis adapter (`shared::redis_node::RedisNodes`) against real
//! redis-server processes: what it reads, what its commands do to the
//! servers (checked afterwards with the servers' own `INFO replication`),
//! and how each failure is classified.
//!
//! Needs only `redis-server` (installed by `scripts/test.sh`), not the
//! local AWS. Ports 17000-17099 on 127.0.0.2-127.0.0.4 belong to this file
//! (see `ninelives_tests::redis`); each test uses its own tens.

use std::error::Error as _;
use std::time::{Duration, Instant};

use ninelives_tests::redis::RedisServer;
use shared::chain::model::{Endpoint, Replication, ReplicationRole};
use shared::chain::ports::{NodeError, RedisApi};
use shared::redis_node::{RedisNodes, RedisSettings};

/// How long replication takes to settle on loopback, at most.
const SETTLE: Duration = Duration::from_secs(15);

fn nodes(password: Option<&str>) -> RedisNodes {
    RedisNodes::new(RedisSettings {
        connect_timeout: Duration::from_secs(2),
        command_timeout: Duration::from_secs(2),
        username: None,
        password: password.map(str::to_owned),
    })
}

/// `(master_host, master_port, link_up, link_down_seconds, sync_in_progress)`
/// of a replica; panics for a master.
fn link(replication: &Replication) -> (&str, u16, bool, Option<u64>, bool) {
    match &replication.role {
        ReplicationRole::Replica {
            master_host,
            master_port,
            link_up,
            link_down_seconds,
            sync_in_progress,
            ..
        } => (
            master_host,
            *master_port,
            *link_up,
            *link_down_seconds,
            *sync_in_progress,
        ),
        ReplicationRole::Master => panic!("expected a replica: {replication:?}"),
    }
}

fn is_replica_of(replication: &Replication, master: &RedisServer) -> bool {
    matches!(&replication.role, ReplicationRole::Replica { master_host, master_port, link_up: true, sync_in_progress: false, .. }
        if master.endpoint().is(master_host, *master_port))
}

/// The kind of `err`, for assertions that show the error when they fail.
fn kind(err: &NodeError) -> &'static str {
    match err {
        NodeError::Down { .. } => "down",
        NodeError::Auth { .. } => "auth",
        NodeError::Malformed { .. } => "malformed",
        NodeError::Command { .. } => "command",
    }
}

/// The `redis` error an adapter error was made from.
fn redis_source(err: &NodeError) -> &redis::RedisError {
    err.source()
        .and_then(|s| s.downcast_ref::<redis::RedisError>())
        .unwrap_or_else(|| panic!("{err:?} has no redis::RedisError source"))
}

#[tokio::test]
async fn reads_the_replication_of_a_master() {
    let server = RedisServer::start("127.0.0.2", 17000, None);
    server.cmd(&["SET", "greeting", "hello"]);
    let adapter = nodes(None);

    adapter.ping(&server.endpoint()).await.expect("PING");
    let replication = adapter
        .replication(&server.endpoint())
        .await
        .expect("INFO replication");

    assert_eq!(replication.role, ReplicationRole::Master);
    assert_eq!(replication.connected_replicas, 0);
    assert_eq!(replication.failover_state, None);
    assert_eq!(replication.replid.len(), 40);
    assert_eq!(replication.replid2, shared::chain::model::NO_REPLID);
    // What the server says through another client, read the same way.
    assert_eq!(replication, server.info_replication());
}

#[tokio::test]
async fn replicaof_makes_a_replica_and_no_one_promotes_it() {
    let password = Some("chain-17010");
    let master = RedisServer::start("127.0.0.2", 17010, password);
    let replica = RedisServer::start("127.0.0.3", 17010, password);
    master.cmd(&["SET", "k", "v1"]);
    let adapter = nodes(password);

    adapter
        .replicate(&replica.endpoint(), Some(&master.endpoint()))
        .await
        .expect("REPLICAOF");

    // The link comes up, as the adapter reads it and as Redis reports it.
    let deadline = Instant::now() + SETTLE;
    let seen = loop {
        let seen = adapter
            .replication(&replica.endpoint())
            .await
            .expect("INFO replication");
        if is_replica_of(&seen, &master) || Instant::now() > deadline {
            break seen;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(link(&seen), ("127.0.0.2", 17010, true, None, false), "{seen:?}");
    let on_replica = replica.info_replication();
    assert_eq!(link(&on_replica), ("127.0.0.2", 17010, true, None, false));
    let on_master = master.wait_for("one replica", SETTLE, |r| r.connected_replicas == 1);
    assert!(on_master.is_master());
    assert_eq!(
        on_replica.replid, on_master.replid,
        "the replica shares the master's history"
    );
    assert_eq!(
        replica.cmd(&["GET", "k"]),
        redis::Value::BulkString(b"v1".to_vec())
    );

    // Replication goes on; then REPLICAOF NO ONE makes the replica a master
    // continuing the same history.
    master.cmd(&["SET", "k", "v2"]);
    replica.wait_for("the master's offset", SETTLE, |r| {
        r.data_offset() >= master.info_replication().offset
    });
    adapter
        .replicate(&replica.endpoint(), None)
        .await
        .expect("REPLICAOF NO ONE");

    let promoted = adapter
        .replication(&replica.endpoint())
        .await
        .expect("INFO replication");
    assert!(promoted.is_master(), "{promoted:?}");
    assert_eq!(
        promoted.replid2, on_master.replid,
        "it continued the master's history"
    );
    assert_ne!(promoted.replid, on_master.replid);
    assert_eq!(replica.info_replication().role, ReplicationRole::Master);
    assert_eq!(
        replica.cmd(&["GET", "k"]),
        redis::Value::BulkString(b"v2".to_vec())
    );
    replica.cmd(&["SET", "k", "written on the promoted node"]);
    master.wait_for("no replica", SETTLE, |r| r.connected_replicas == 0);
    assert!(master.info_replication().is_master());
}

#[tokio::test]
async fn failover_to_swaps_the_roles_of_a_head_and_its_replica() {
    let password = Some("chain-17020");
    let head = RedisServer::start("127.0.0.2", 17020, password);
    let replica = RedisServer::start("127.0.0.3", 17020, password);
    let stranger = RedisServer::start("127.0.0.4", 17020, password);
    let adapter = nodes(password);
    adapter
        .replicate(&replica.endpoint(), Some(&head.endpoint()))
        .await
        .expect("REPLICAOF");
    replica.wait_for("a synced link", SETTLE, |r| is_replica_of(r, &head));
    head.cmd(&["SET", "k", "before the failover"]);

    // A node that is not the head's replica: Redis refuses, the head stays.
    let err = adapter
        .failover_to(&head.endpoint(), &stranger.endpoint(), Duration::from_secs(5))
        .await
        .expect_err("FAILOVER to a stranger");
    match &err {
        NodeError::Command { command, .. } => assert_eq!(*command, "FAILOVER"),
        other => panic!("expected Command, got {other:?}"),
    }
    assert_eq!(
        redis_source(&err).detail(),
        Some("FAILOVER target HOST and PORT is not a replica.")
    );
    assert!(head.info_replication().is_master());

    adapter
        .failover_to(&head.endpoint(), &replica.endpoint(), Duration::from_secs(5))
        .await
        .expect("FAILOVER TO");

    // The swap completes asynchronously: the old head follows the new one.
    let old_head = head.wait_for("replica of the new head, failover done", SETTLE, |r| {
        is_replica_of(r, &replica) && r.failover_state.is_none()
    });
    assert_eq!(link(&old_head), ("127.0.0.3", 17020, true, None, false));
    let new_head = replica.wait_for("master, failover done", SETTLE, |r| {
        r.is_master() && r.failover_state.is_none() && r.connected_replicas == 1
    });
    assert_eq!(
        new_head.replid2, old_head.replid2,
        "both continued the old head's history"
    );
    let read = adapter
        .replication(&replica.endpoint())
        .await
        .expect("INFO replication");
    assert!(read.is_master());
    let read = adapter
        .replication(&head.endpoint())
        .await
        .expect("INFO replication");
    assert_eq!(link(&read), ("127.0.0.3", 17020, true, None, false));

    // Writes go to the new head and reach the old one.
    replica.cmd(&["SET", "k", "after the failover"]);
    head.wait_for("the new head's offset", SETTLE, |r| {
        r.data_offset() >= replica.info_replication().offset
    });
    assert_eq!(
        head.cmd(&["GET", "k"]),
        redis::Value::BulkString(b"after the failover".to_vec())
    );
    assert!(
        head.try_cmd(&["SET", "k", "x"]).is_err(),
        "the old head is read-only"
    );
    assert!(stranger.info_replication().is_master());
}

#[tokio::test]
async fn a_wrong_password_is_auth_and_changes_nothing() {
    let server = RedisServer::start("127.0.0.2", 17030, Some("right-17030"));
    let other = Endpoint::new("127.0.0.3", 17030);
    let adapter = nodes(Some("wrong"));
    let node = server.endpoint();

    for err in [
        adapter.ping(&node).await.expect_err("PING"),
        adapter.replication(&node).await.expect_err("INFO"),
        adapter
            .replicate(&node, Some(&other))
            .await
            .expect_err("REPLICAOF"),
        adapter
            .failover_to(&node, &other, Duration::from_secs(1))
            .await
            .expect_err("FAILOVER"),
    ] {
        assert_eq!(kind(&err), "auth", "{err:?}");
        assert!(
            err.to_string()
                .starts_with("127.0.0.2:17030 refused authentication"),
            "{err}"
        );
        assert!(
            !err.to_string().contains("wrong"),
            "the password is not in the message: {err}"
        );
    }
    assert_eq!(server.info_replication().role, ReplicationRole::Master);
}

#[tokio::test]
async fn no_password_where_one_is_required_is_auth_and_one_where_none_is_too() {
    let locked = RedisServer::start("127.0.0.2", 17040, Some("right-17040"));
    let open = RedisServer::start("127.0.0.3", 17040, None);

    // NOAUTH on the command itself.
    let err = nodes(None)
        .replication(&locked.endpoint())
        .await
        .expect_err("INFO");
    assert_eq!(kind(&err), "auth", "{err:?}");
    assert_eq!(redis_source(&err).code(), Some("NOAUTH"));
    let err = nodes(None)
        .replicate(&locked.endpoint(), Some(&open.endpoint()))
        .await
        .expect_err("REPLICAOF");
    assert_eq!(kind(&err), "auth", "{err:?}");
    assert!(locked.info_replication().is_master());

    // A password for a server that has none: a misconfiguration, not "down".
    let err = nodes(Some("right-17040"))
        .replication(&open.endpoint())
        .await
        .expect_err("INFO");
    assert_eq!(kind(&err), "auth", "{err:?}");
}

#[tokio::test]
async fn an_acl_user_authenticates_with_its_name() {
    let server = RedisServer::start("127.0.0.2", 17050, Some("admin-17050"));
    server.cmd(&["ACL", "SETUSER", "ninelives", "on", ">user-17050", "+@all", "~*"]);
    let user = |name: &str, password: &str| {
        RedisNodes::new(RedisSettings {
            connect_timeout: Duration::from_secs(2),
            command_timeout: Duration::from_secs(2),
            username: Some(name.to_owned()),
            password: Some(password.to_owned()),
        })
    };

    let replication = user("ninelives", "user-17050")
        .replication(&server.endpoint())
        .await
        .expect("INFO");
    assert!(replication.is_master());
    let err = user("ninelives", "admin-17050")
        .replication(&server.endpoint())
        .await
        .expect_err("INFO");
    assert_eq!(kind(&err), "auth", "{err:?}");

    // A user without the right to a command: refused, not an auth failure.
    server.cmd(&[
        "ACL",
        "SETUSER",
        "reader",
        "on",
        ">reader-17050",
        "+info",
        "+ping",
    ]);
    let reader = user("reader", "reader-17050");
    assert!(reader.replication(&server.endpoint()).await.is_ok());
    let err = reader
        .replicate(&server.endpoint(), Some(&Endpoint::new("127.0.0.3", 17050)))
        .await
        .expect_err("REPLICAOF");
    assert_eq!(kind(&err), "command", "{err:?}");
    assert_eq!(redis_source(&err).code(), Some("NOPERM"));
    assert!(server.info_replication().is_master());
}

#[tokio::test]
async fn nothing_listening_is_down_at_once() {
    // Nobody listens on 127.0.0.4:17099 (this file's range).
    let adapter = RedisNodes::new(RedisSettings {
        connect_timeout: Duration::from_secs(10),
        command_timeout: Duration::from_secs(10),
        username: None,
        password: None,
    });
    let started = Instant::now();
    let err = adapter
        .replication(&Endpoint::new("127.0.0.4", 17099))
        .await
        .expect_err("nothing listens");
    assert_eq!(kind(&err), "down", "{err:?}");
    assert!(redis_source(&err).is_connection_refusal(), "{err:?}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "a refused connection does not wait for the timeout ({:?})",
        started.elapsed()
    );

    // A server that was killed is refused the same way.
    let mut server = RedisServer::start("127.0.0.4", 17090, None);
    server.kill();
    let err = adapter.ping(&server.endpoint()).await.expect_err("killed");
    assert_eq!(kind(&err), "down", "{err:?}");
}

/// A stopped (SIGSTOP) server's kernel still accepts TCP connections, so
/// only the timeouts end a call: the connect timeout when the AUTH
/// handshake goes unanswered, the command timeout when there is no
/// handshake. Each call is given a generous bound (the other timeout is
/// long); reaching it would mean the intended timeout did not fire.
#[tokio::test]
async fn a_stopped_server_is_down_after_the_timeouts() {
    let locked = RedisServer::start("127.0.0.2", 17060, Some("pass-17060"));
    let open = RedisServer::start("127.0.0.3", 17060, None);
    let short = Duration::from_millis(500);
    let long = Duration::from_secs(60);
    let bound = Duration::from_secs(20);

    locked.stop();
    let connect_bound = RedisNodes::new(RedisSettings {
        connect_timeout: short,
        command_timeout: long,
        username: None,
        password: Some("pass-17060".to_owned()),
    });
    let started = Instant::now();
    let err = tokio::time::timeout(bound, connect_bound.replication(&locked.endpoint()))
        .await
        .expect("the connect timeout ends the call")
        .expect_err("stopped");
    println!("stopped, AUTH unanswered: {err} after {:?}", started.elapsed());
    assert_eq!(kind(&err), "down", "{err:?}");
    assert!(redis_source(&err).is_timeout(), "{err:?}");

    open.stop();
    let command_bound = RedisNodes::new(RedisSettings {
        connect_timeout: long,
        command_timeout: short,
        username: None,
        password: None,
    });
    let started = Instant::now();
    let err = tokio::time::timeout(bound, command_bound.replication(&open.endpoint()))
        .await
        .expect("the command timeout ends the call")
        .expect_err("stopped");
    println!("stopped, INFO unanswered: {err} after {:?}", started.elapsed());
    assert_eq!(kind(&err), "down", "{err:?}");
    assert!(redis_source(&err).is_timeout(), "{err:?}");
    let err = tokio::time::timeout(bound, command_bound.replicate(&open.endpoint(), None))
        .await
        .expect("the command timeout ends the call")
        .expect_err("stopped");
    assert_eq!(kind(&err), "down", "{err:?}");

    // Resumed, both answer again, unchanged.
    locked.cont();
    open.cont();
    assert!(
        connect_bound
            .replication(&locked.endpoint())
            .await
            .expect("resumed")
            .is_master()
    );
    assert!(
        command_bound
            .replication(&open.endpoint())
            .await
            .expect("resumed")
            .is_master()
    );
    assert!(locked.info_replication().is_master());
}

#[tokio::test]
async fn a_replica_reports_its_link_down_when_its_master_dies_and_up_when_it_returns() {
    let password = Some("chain-17070");
    let mut master = RedisServer::start("127.0.0.2", 17070, password);
    let replica = RedisServer::start("127.0.0.3", 17070, password);
    let adapter = nodes(password);
    adapter
        .replicate(&replica.endpoint(), Some(&master.endpoint()))
        .await
        .expect("REPLICAOF");
    replica.wait_for("a synced link", SETTLE, |r| is_replica_of(r, &master));

    master.kill();
    assert_eq!(
        kind(&adapter.replication(&master.endpoint()).await.expect_err("killed")),
        "down"
    );
    let down = replica.wait_for("a link down", SETTLE, |r| !link(r).2);
    let (host, port, up, since, syncing) = link(&down);
    assert_eq!((host, port, up, syncing), ("127.0.0.2", 17070, false, false));
    assert!(
        since.is_some(),
        "it was connected, so it says since when: {down:?}"
    );
    let read = adapter
        .replication(&replica.endpoint())
        .await
        .expect("INFO replication");
    assert!(
        matches!(link(&read), ("127.0.0.2", 17070, false, Some(_), false)),
        "{read:?}"
    );

    // The master comes back empty; the replica resyncs from it.
    master.restart();
    replica.wait_for("the link up again", SETTLE, |r| is_replica_of(r, &master));
    assert_eq!(master.info_replication().connected_replicas, 1);
}

#[tokio::test]
async fn a_replica_of_nothing_never_connects() {
    let replica = RedisServer::start("127.0.0.2", 17080, None);
    let nowhere = Endpoint::new("127.0.0.4", 17089);
    let adapter = nodes(None);
    adapter
        .replicate(&replica.endpoint(), Some(&nowhere))
        .await
        .expect("REPLICAOF");

    let read = adapter
        .replication(&replica.endpoint())
        .await
        .expect("INFO replication");
    // Redis 7 reports master_link_down_since_seconds:-1: no down time.
    assert_eq!(link(&read), ("127.0.0.4", 17089, false, None, false));
    std::thread::sleep(Duration::from_millis(1500));
    let read = adapter
        .replication(&replica.endpoint())
        .await
        .expect("INFO replication");
    assert_eq!(link(&read), ("127.0.0.4", 17089, false, None, false));
    assert_eq!(
        link(&replica.info_replication()),
        ("127.0.0.4", 17089, false, None, false)
    );
}
