//! What a PostgreSQL node's readings become in CloudWatch
//! (`NineLives/Postgres`): the figures the book's Postgres `monitor.py`
//! watched, read from outside the node. Whether the node is in recovery,
//! its connections against `max_connections`, its WAL file count, how far
//! its replicas are behind (in bytes, and in seconds of replay), and per
//! database the buffer cache hit ratio of heap and index blocks and the
//! size of tables, indexes and the whole database.
//!
//! Pure: [`Readings`] are what the adapter (`crate::pg_node`) read, as the
//! server answered; [`figures`] turns them into values, and
//! [`replica_lags`] compares the nodes of one cluster read in the same run
//! (a replica's `ReplicationLagBytes`, which only that comparison gives).
//!
//! The hit ratio is `hit / (hit + read)`, the share of block requests the
//! shared buffers answered. (The book's `(hit - read) / hit` is not a
//! ratio: it goes negative when reads outnumber hits.) The counters are
//! cumulative since the statistics were last reset, so the ratio moves
//! slowly on a node that has run for long; a database with no block
//! requests at all has no ratio, and none is sent.
//!
//! LSNs travel as the server prints them (`16/B374D848`) and are read here
//! ([`parse_lsn`]): an LSN that cannot be read is reported, never guessed.

use std::future::Future;

use serde::Serialize;

use super::Unit;

pub const NAMESPACE: &str = "NineLives/Postgres";

/// One node's readings, as the adapter read them.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct Readings {
    /// `server_version_num` (`150008` for 15.8).
    pub server_version_num: i32,
    /// `pg_is_in_recovery()`: a replica (or a primary still recovering).
    pub in_recovery: bool,
    /// Client backends in `pg_stat_activity`.
    pub connections: i64,
    /// `current_setting('max_connections')`, as text.
    pub max_connections: String,
    /// `count(*)` of `pg_ls_waldir()`; `None` when it could not be read
    /// (the reason is in `skipped`: it needs superuser or `pg_monitor`).
    pub wal_files: Option<i64>,
    /// On a primary: `pg_current_wal_lsn()`.
    pub current_wal_lsn: Option<String>,
    /// On a primary: its `pg_stat_replication` rows.
    pub wal_senders: Vec<WalSender>,
    /// On a replica: `pg_last_wal_receive_lsn()` (`None` when it streams
    /// nothing, e.g. it restores from an archive only).
    pub receive_lsn: Option<String>,
    /// On a replica: `pg_last_wal_replay_lsn()`.
    pub replay_lsn: Option<String>,
    /// On a replica: seconds since the last replayed transaction committed
    /// on the primary (`now() - pg_last_xact_replay_timestamp()`). Grows on
    /// an idle primary too: read it with the byte lag.
    pub replay_delay_seconds: Option<f64>,
    /// On a replica: `pg_is_wal_replay_paused()`.
    pub replay_paused: Option<bool>,
    pub databases: Vec<DatabaseReadings>,
    /// What could not be read, with why (a database that refused the
    /// connection, `pg_ls_waldir` without the privilege).
    pub skipped: Vec<String>,
}

/// One row of a primary's `pg_stat_replication`.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct WalSender {
    /// `application_name` (a replica's `cluster_name` or what its
    /// `primary_conninfo` says).
    pub application_name: String,
    pub client_addr: Option<String>,
    /// `streaming`, `catchup`, `startup`, `backup`, `stopping`.
    pub state: String,
    /// `pg_wal_lsn_diff(pg_current_wal_lsn(), replay_lsn)`; `None` before
    /// the replica reported a position (or without `pg_monitor`).
    pub replay_lag_bytes: Option<f64>,
}

/// One database's readings (a connection of its own).
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct DatabaseReadings {
    pub name: String,
    /// Sums over `pg_statio_user_tables` (`None`: no user tables).
    pub heap_blocks_read: Option<i64>,
    pub heap_blocks_hit: Option<i64>,
    /// Sums over `pg_statio_user_indexes` (`None`: no user indexes).
    pub index_blocks_read: Option<i64>,
    pub index_blocks_hit: Option<i64>,
    /// Sums of `pg_table_size` and `pg_indexes_size` over user tables.
    pub table_bytes: Option<i64>,
    pub index_bytes: Option<i64>,
    /// `pg_database_size`.
    pub database_bytes: Option<i64>,
}

/// `(metric name, unit, value)` figures.
pub type Values = Vec<(&'static str, Unit, f64)>;

/// What readings become.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct Figures {
    /// Node-level `(metric name, unit, value)`.
    pub node: Values,
    /// Per database `(database name, values)`.
    pub databases: Vec<(String, Values)>,
    /// Readings that were there but unusable, with why.
    pub skipped: Vec<String>,
}

/// A WAL position (`X/Y`, two hexadecimal halves of a 64-bit byte
/// position) as a number of bytes.
pub fn parse_lsn(text: &str) -> Result<u64, String> {
    let (hi, lo) = text
        .trim()
        .split_once('/')
        .ok_or_else(|| format!("{text:?} is not an LSN (X/Y)"))?;
    let half = |h: &str| {
        if h.is_empty() || h.len() > 8 || !h.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(format!("{text:?} is not an LSN (X/Y, 1 to 8 hex digits each)"));
        }
        u32::from_str_radix(h, 16).map_err(|_| format!("{text:?} is not an LSN (hex digits expected)"))
    };
    Ok((u64::from(half(hi)?) << 32) | u64::from(half(lo)?))
}

/// The figures of one node. A replica's `ReplayBacklogBytes` is its own
/// received-minus-replayed WAL: what it holds and has not applied. It is
/// not its lag behind the primary (WAL it never received is not in it; it
/// reads about 0 when the primary is gone, or the stream is cut):
/// `ReplicationLagBytes` is that lag, and comes only from
/// [`replica_lags`], when the cluster's primary was read in the same run.
pub fn figures(r: &Readings) -> Figures {
    let mut out = Figures {
        skipped: r.skipped.clone(),
        ..Figures::default()
    };
    let flag = |b: bool| if b { 1.0 } else { 0.0 };
    out.node.push(("InRecovery", Unit::None, flag(r.in_recovery)));
    push_number(
        &mut out,
        "Connections",
        Unit::Count,
        r.connections as f64,
        "connections",
    );
    match r.max_connections.trim().parse::<f64>() {
        Ok(max) if max.is_finite() && max > 0.0 => {
            out.node.push(("MaxConnections", Unit::Count, max));
            out.node.push((
                "ConnectionsUsedPercent",
                Unit::Percent,
                100.0 * r.connections as f64 / max,
            ));
        }
        _ => out.skipped.push(format!(
            "max_connections: {:?} is not a positive number",
            r.max_connections
        )),
    }
    if let Some(n) = r.wal_files {
        push_number(&mut out, "WalFiles", Unit::Count, n as f64, "pg_ls_waldir");
    }

    if r.in_recovery {
        let receive = lsn(&mut out, "pg_last_wal_receive_lsn", r.receive_lsn.as_deref());
        let replay = lsn(&mut out, "pg_last_wal_replay_lsn", r.replay_lsn.as_deref());
        if let (Some(receive), Some(replay)) = (receive, replay) {
            // Replay can pass what this walreceiver received (WAL from the
            // archive, or a restart): never a negative backlog.
            let backlog = receive.saturating_sub(replay);
            out.node.push(("ReplayBacklogBytes", Unit::Bytes, backlog as f64));
        }
        if let Some(s) = r.replay_delay_seconds {
            // A clock step on either side can make it negative (and
            // `max` would turn NaN into 0: only finite values are clamped).
            let s = if s.is_finite() { s.max(0.0) } else { s };
            push_number(&mut out, "ReplayDelaySeconds", Unit::Seconds, s, "replay delay");
        }
        if let Some(paused) = r.replay_paused {
            out.node.push(("ReplayPaused", Unit::None, flag(paused)));
        }
    } else {
        out.node
            .push(("ConnectedReplicas", Unit::Count, r.wal_senders.len() as f64));
        let streaming = r.wal_senders.iter().filter(|w| w.state == "streaming").count();
        out.node
            .push(("StreamingReplicas", Unit::Count, streaming as f64));
        let mut max: Option<f64> = None;
        for w in &r.wal_senders {
            match w.replay_lag_bytes {
                Some(b) if b.is_finite() => max = Some(max.map_or(b.max(0.0), |m| m.max(b.max(0.0)))),
                Some(b) => out.skipped.push(format!(
                    "pg_stat_replication of {}: replay lag {b} is not a number",
                    w.application_name
                )),
                None => {}
            }
        }
        if let Some(m) = max {
            out.node.push(("MaxReplicaLagBytes", Unit::Bytes, m));
        }
    }

    for d in &r.databases {
        let mut values = Vec::new();
        for (metric, read, hit) in [
            ("HeapHitRatio", d.heap_blocks_read, d.heap_blocks_hit),
            ("IndexHitRatio", d.index_blocks_read, d.index_blocks_hit),
        ] {
            match hit_ratio(read, hit) {
                Ok(Some(p)) => values.push((metric, Unit::Percent, p)),
                Ok(None) => {}
                Err(why) => out.skipped.push(format!("{}: {metric}: {why}", d.name)),
            }
        }
        for (metric, bytes) in [
            ("TableBytes", d.table_bytes),
            ("IndexBytes", d.index_bytes),
            ("DatabaseBytes", d.database_bytes),
        ] {
            match bytes {
                Some(b) if b >= 0 => values.push((metric, Unit::Bytes, b as f64)),
                Some(b) => out.skipped.push(format!("{}: {metric}: {b} is negative", d.name)),
                None => {}
            }
        }
        out.databases.push((d.name.clone(), values));
    }
    out
}

/// `hit / (hit + read)` in percent; `None` without a single block request.
fn hit_ratio(read: Option<i64>, hit: Option<i64>) -> Result<Option<f64>, String> {
    let (read, hit) = (read.unwrap_or(0), hit.unwrap_or(0));
    if read < 0 || hit < 0 {
        return Err(format!("negative block counts (read {read}, hit {hit})"));
    }
    let total = read as f64 + hit as f64;
    if total == 0.0 {
        return Ok(None);
    }
    Ok(Some(100.0 * hit as f64 / total))
}

fn push_number(out: &mut Figures, metric: &'static str, unit: Unit, value: f64, what: &str) {
    if value.is_finite() && value >= 0.0 {
        out.node.push((metric, unit, value));
    } else {
        out.skipped
            .push(format!("{what}: {value} is not a usable number"));
    }
}

fn lsn(out: &mut Figures, what: &str, text: Option<&str>) -> Option<u64> {
    match parse_lsn(text?) {
        Ok(v) => Some(v),
        Err(why) => {
            out.skipped.push(format!("{what}: {why}"));
            None
        }
    }
}

/// Replication lag per replica of one cluster, from the readings of all
/// its nodes taken in the same run: for each replica (in recovery), the
/// bytes between the primary's current WAL position and the replica's
/// replay position, when exactly one primary's readings are present
/// (none: nothing to compare with; two: a split cluster, and neither is
/// the reference). Otherwise empty: no replica has a lag figure then
/// (its own `ReplayBacklogBytes` is no stand-in, see [`figures`]), and an
/// alarm on the lag should treat missing data as breaching. A replica
/// whose replay position cannot be read is left out. The primary was read
/// at a slightly different moment than each replica, so a replica that
/// caught up may appear ahead: that counts as 0.
pub fn replica_lags<'a>(nodes: &[(&'a str, &Readings)]) -> Vec<(&'a str, f64)> {
    let primaries: Vec<&Readings> = nodes
        .iter()
        .filter(|(_, r)| !r.in_recovery)
        .map(|(_, r)| *r)
        .collect();
    let [primary] = primaries.as_slice() else {
        return Vec::new();
    };
    let Some(current) = primary.current_wal_lsn.as_deref().and_then(|l| parse_lsn(l).ok()) else {
        return Vec::new();
    };
    nodes
        .iter()
        .filter(|(_, r)| r.in_recovery)
        .filter_map(|(id, r)| {
            let replay = parse_lsn(r.replay_lsn.as_deref()?).ok()?;
            Some((*id, current.saturating_sub(replay) as f64))
        })
        .collect()
}

/// What reads a node (implemented on `crate::pg_node::PgNodes`).
pub trait PgProbe: Sync {
    fn readings(
        &self,
        node: &crate::chain::model::Endpoint,
    ) -> impl Future<Output = Result<Readings, crate::pg_node::PgError>> + Send;
}

#[cfg(test)]
#[path = "tests/postgres.rs"]
mod tests;
