use super::*;

fn node(f: &Figures, name: &str) -> Option<f64> {
    f.node.iter().find(|(n, ..)| *n == name).map(|(_, _, v)| *v)
}

fn db<'a>(f: &'a Figures, database: &str) -> &'a [(&'static str, Unit, f64)] {
    &f.databases
        .iter()
        .find(|(d, _)| d == database)
        .unwrap_or_else(|| panic!("no figures for {database}: {f:?}"))
        .1
}

fn value(values: &[(&'static str, Unit, f64)], name: &str) -> Option<f64> {
    values.iter().find(|(n, ..)| *n == name).map(|(_, _, v)| *v)
}

fn primary() -> Readings {
    Readings {
        server_version_num: 150008,
        in_recovery: false,
        connections: 25,
        max_connections: "100".into(),
        wal_files: Some(7),
        current_wal_lsn: Some("1/00000100".into()),
        wal_senders: vec![
            WalSender {
                application_name: "replica1".into(),
                client_addr: Some("10.0.0.2".into()),
                state: "streaming".into(),
                replay_lag_bytes: Some(4096.0),
            },
            WalSender {
                application_name: "replica2".into(),
                client_addr: None,
                state: "catchup".into(),
                replay_lag_bytes: Some(10.0),
            },
        ],
        ..Readings::default()
    }
}

fn replica(replay: &str) -> Readings {
    Readings {
        server_version_num: 150008,
        in_recovery: true,
        connections: 3,
        max_connections: "100".into(),
        receive_lsn: Some("1/00000100".into()),
        replay_lsn: Some(replay.into()),
        replay_delay_seconds: Some(2.5),
        replay_paused: Some(true),
        ..Readings::default()
    }
}

#[test]
fn lsns_are_64_bit_byte_positions() {
    assert_eq!(parse_lsn("0/0"), Ok(0));
    assert_eq!(parse_lsn("0/3000148"), Ok(0x0300_0148));
    assert_eq!(parse_lsn("16/B374D848"), Ok(0x16_B374_D848));
    assert_eq!(parse_lsn(" FFFFFFFF/FFFFFFFF "), Ok(u64::MAX));
    assert_eq!(parse_lsn("a/b"), Ok(0xa_0000_000b));
    for bad in ["", "0", "/1", "1/", "x/1", "1/-1", "100000000/0", "1/2/3", "+1/2"] {
        assert!(parse_lsn(bad).is_err(), "{bad:?} was read as an LSN");
    }
}

#[test]
fn a_primary_reports_connections_wal_and_its_largest_replica_lag() {
    let f = figures(&primary());
    assert!(f.skipped.is_empty(), "{:?}", f.skipped);
    assert_eq!(node(&f, "InRecovery"), Some(0.0));
    assert_eq!(node(&f, "Connections"), Some(25.0));
    assert_eq!(node(&f, "MaxConnections"), Some(100.0));
    assert_eq!(node(&f, "ConnectionsUsedPercent"), Some(25.0));
    assert_eq!(node(&f, "WalFiles"), Some(7.0));
    assert_eq!(node(&f, "ConnectedReplicas"), Some(2.0));
    assert_eq!(node(&f, "StreamingReplicas"), Some(1.0));
    assert_eq!(node(&f, "MaxReplicaLagBytes"), Some(4096.0));
    assert_eq!(node(&f, "ReplayBacklogBytes"), None, "a replica's figure");
    assert_eq!(node(&f, "ReplicationLagBytes"), None, "a replica's figure");
    assert_eq!(node(&f, "ReplayPaused"), None);
}

#[test]
fn a_primary_without_replicas_has_no_lag_figure() {
    let mut r = primary();
    r.wal_senders.clear();
    let f = figures(&r);
    assert_eq!(node(&f, "ConnectedReplicas"), Some(0.0));
    assert_eq!(node(&f, "MaxReplicaLagBytes"), None);
}

#[test]
fn a_replica_reports_its_own_replay_backlog_and_replay_state() {
    let f = figures(&replica("1/00000000"));
    assert!(f.skipped.is_empty(), "{:?}", f.skipped);
    assert_eq!(node(&f, "InRecovery"), Some(1.0));
    assert_eq!(node(&f, "ReplayBacklogBytes"), Some(256.0));
    assert_eq!(
        node(&f, "ReplicationLagBytes"),
        None,
        "the lag behind the primary comes from replica_lags only"
    );
    assert_eq!(node(&f, "ReplayDelaySeconds"), Some(2.5));
    assert_eq!(node(&f, "ReplayPaused"), Some(1.0));
    assert_eq!(node(&f, "ConnectedReplicas"), None, "a primary's figure");

    // Replay ahead of what this walreceiver got (WAL from an archive).
    let f = figures(&replica("1/00000200"));
    assert_eq!(node(&f, "ReplayBacklogBytes"), Some(0.0));

    // Not streaming: no receive position, no backlog figure.
    let mut r = replica("1/0");
    r.receive_lsn = None;
    let f = figures(&r);
    assert_eq!(node(&f, "ReplayBacklogBytes"), None);
    assert!(f.skipped.is_empty(), "{:?}", f.skipped);
}

#[test]
fn values_that_are_not_numbers_are_skipped_with_why() {
    let mut r = replica("zz/1");
    r.max_connections = "lots".into();
    r.replay_delay_seconds = Some(f64::NAN);
    r.skipped.push("pg_ls_waldir: permission denied".into());
    let f = figures(&r);
    assert_eq!(node(&f, "MaxConnections"), None);
    assert_eq!(node(&f, "ConnectionsUsedPercent"), None);
    assert_eq!(node(&f, "ReplayBacklogBytes"), None);
    assert_eq!(node(&f, "ReplayDelaySeconds"), None);
    assert_eq!(node(&f, "Connections"), Some(3.0), "the rest is still there");
    let all = f.skipped.join("\n");
    for expected in [
        "pg_ls_waldir: permission denied",
        "max_connections: \"lots\"",
        "pg_last_wal_replay_lsn: \"zz/1\"",
        "replay delay: NaN",
    ] {
        assert!(all.contains(expected), "{expected:?} not in {all}");
    }

    let mut p = primary();
    p.max_connections = "0".into();
    p.wal_senders[0].replay_lag_bytes = Some(f64::INFINITY);
    let f = figures(&p);
    assert_eq!(node(&f, "MaxConnections"), None, "0 cannot be a limit");
    assert_eq!(node(&f, "MaxReplicaLagBytes"), Some(10.0));
    assert_eq!(f.skipped.len(), 2, "{:?}", f.skipped);
}

#[test]
fn hit_ratios_are_hits_over_all_block_requests() {
    let mut r = primary();
    r.databases = vec![
        DatabaseReadings {
            name: "app".into(),
            heap_blocks_read: Some(10),
            heap_blocks_hit: Some(990),
            index_blocks_read: Some(1),
            index_blocks_hit: Some(3),
            table_bytes: Some(8192),
            index_bytes: Some(16384),
            database_bytes: Some(7_000_000),
        },
        DatabaseReadings {
            // Tables but never read: no ratio at all, not 0 % or 100 %.
            name: "idle".into(),
            heap_blocks_read: Some(0),
            heap_blocks_hit: Some(0),
            index_blocks_read: None,
            index_blocks_hit: None,
            table_bytes: Some(0),
            index_bytes: Some(0),
            database_bytes: Some(7_000_000),
        },
        DatabaseReadings {
            // Only reads from disk: 0 %, where the book's formula divided by zero.
            name: "cold".into(),
            heap_blocks_read: Some(5),
            heap_blocks_hit: Some(0),
            index_blocks_read: Some(-1),
            index_blocks_hit: Some(2),
            table_bytes: None,
            index_bytes: None,
            database_bytes: Some(-5),
        },
    ];
    let f = figures(&r);
    let app = db(&f, "app");
    assert_eq!(value(app, "HeapHitRatio"), Some(99.0));
    assert_eq!(value(app, "IndexHitRatio"), Some(75.0));
    assert_eq!(value(app, "TableBytes"), Some(8192.0));
    assert_eq!(value(app, "IndexBytes"), Some(16384.0));
    assert_eq!(value(app, "DatabaseBytes"), Some(7_000_000.0));
    assert!(
        app.iter()
            .all(|(_, unit, v)| *unit != Unit::Percent || (0.0..=100.0).contains(v))
    );

    let idle = db(&f, "idle");
    assert_eq!(value(idle, "HeapHitRatio"), None);
    assert_eq!(value(idle, "IndexHitRatio"), None);
    assert_eq!(value(idle, "TableBytes"), Some(0.0));

    let cold = db(&f, "cold");
    assert_eq!(value(cold, "HeapHitRatio"), Some(0.0));
    assert_eq!(value(cold, "IndexHitRatio"), None, "a negative count is reported");
    assert_eq!(value(cold, "DatabaseBytes"), None);
    assert_eq!(value(cold, "TableBytes"), None);
    let all = f.skipped.join("\n");
    assert!(all.contains("cold: IndexHitRatio: negative"), "{all}");
    assert!(all.contains("cold: DatabaseBytes: -5 is negative"), "{all}");
}

#[test]
fn replica_lags_compare_with_the_one_primary_of_the_run() {
    let p = primary();
    let behind = replica("0/FFFFFF00");
    let caught_up = replica("1/00000100");
    let ahead = replica("1/00000200");
    let unreadable = replica("nonsense");
    let lags = replica_lags(&[
        ("i-p", &p),
        ("i-behind", &behind),
        ("i-caught-up", &caught_up),
        ("i-ahead", &ahead),
        ("i-unreadable", &unreadable),
    ]);
    assert_eq!(
        lags,
        vec![("i-behind", 512.0), ("i-caught-up", 0.0), ("i-ahead", 0.0)]
    );

    // No primary, two primaries, or a primary without a readable position:
    // nothing to compare with.
    assert!(replica_lags(&[("i-behind", &behind)]).is_empty());
    let other = primary();
    assert!(replica_lags(&[("i-p", &p), ("i-q", &other), ("i-behind", &behind)]).is_empty());
    let mut blind = primary();
    blind.current_wal_lsn = Some("?".into());
    assert!(replica_lags(&[("i-p", &blind), ("i-behind", &behind)]).is_empty());
    // A primary alone: no replicas, no lags.
    assert!(replica_lags(&[("i-p", &p)]).is_empty());
}
