//! What a replica set becomes in CloudWatch (`NineLives/MongoDB`).
//!
//! Per set, from `replSetGetStatus`: the book's host counts. Data members
//! that are up (PRIMARY or SECONDARY, health 1) are healthy, every other
//! data member of the config is not; arbiters are counted apart. The
//! config says who is an arbiter, so a dead arbiter (which reports no
//! ARBITER state) still counts as an arbiter. And each member's lag behind
//! the primary, from the members' `optimeDate`s ([`lag_seconds`]).
//!
//! Per data member, from its `serverStatus` ([`member_figures`]): the
//! figures the book's put-status.php published, where MongoDB 4.4-8.0 keep
//! them. Lock queue and active clients (`globalLock`), resident and virtual
//! memory (`mem`, in MiB, sent as bytes), connections, open cursors (now
//! `metrics.cursor.open.total`; the book's `cursors.totalOpen` is gone);
//! added: the operation counters and the WiredTiger cache. The book's
//! `mem.mapped` and `backgroundFlushing` belonged to MMAPv1, which 4.2
//! removed: they are not there, so they are not published. A field that
//! is missing is left out; one that is there but not a number is reported,
//! not guessed.

use std::future::Future;

use chrono::{DateTime, Utc};
use mongodb::bson::{Bson, Document};
use serde::Serialize;

use super::Unit;
use crate::chain::model::Endpoint;
use crate::mongo::ports::MemberError;
use crate::mongo::replset::{MemberHealth, ReplSetConfig, same_host};

pub const NAMESPACE: &str = "NineLives/MongoDB";

/// `HealthyHostCount`, `UnHealthyHostCount`, `ArbiterCount`,
/// `UnHealthyArbiterCount` of one set.
pub fn set_counts(config: &ReplSetConfig, health: &[MemberHealth]) -> Vec<(&'static str, Unit, f64)> {
    let (mut healthy, mut unhealthy, mut arbiters, mut bad_arbiters) = (0u32, 0u32, 0u32, 0u32);
    for m in &config.members {
        let up = health
            .iter()
            .find(|h| same_host(&h.host, &m.host))
            .is_some_and(MemberHealth::is_up);
        match (m.arbiter_only, up) {
            (false, true) => healthy += 1,
            (false, false) => unhealthy += 1,
            (true, true) => arbiters += 1,
            (true, false) => {
                arbiters += 1;
                bad_arbiters += 1;
            }
        }
    }
    vec![
        ("HealthyHostCount", Unit::Count, f64::from(healthy)),
        ("UnHealthyHostCount", Unit::Count, f64::from(unhealthy)),
        ("ArbiterCount", Unit::Count, f64::from(arbiters)),
        ("UnHealthyArbiterCount", Unit::Count, f64::from(bad_arbiters)),
    ]
}

/// `replSetGetStatus` state of the primary.
const PRIMARY: i32 = 1;
const MIB: f64 = 1024.0 * 1024.0;

/// `(serverStatus path, metric)` of the counts and gauges read, in the
/// order published. Operation counters are cumulative since the member
/// started (CloudWatch's `RATE()` makes a rate of them).
const COUNTS: [(&str, &str); 17] = [
    ("globalLock.currentQueue.total", "OperationsQueuedWaitingForLock"),
    (
        "globalLock.currentQueue.readers",
        "ReadOperationsQueuedWaitingForLock",
    ),
    (
        "globalLock.currentQueue.writers",
        "WriteOperationsQueuedWaitingForLock",
    ),
    ("globalLock.activeClients.total", "ActiveClients"),
    ("globalLock.activeClients.readers", "ActiveReaders"),
    ("globalLock.activeClients.writers", "ActiveWriters"),
    ("mem.resident", "ResidentMemory"),
    ("mem.virtual", "VirtualMemory"),
    ("connections.current", "ActiveConnections"),
    ("connections.available", "AvailableConnections"),
    ("metrics.cursor.open.total", "OpenCursors"),
    ("opcounters.insert", "InsertOperations"),
    ("opcounters.query", "QueryOperations"),
    ("opcounters.update", "UpdateOperations"),
    ("opcounters.delete", "DeleteOperations"),
    ("opcounters.getmore", "GetMoreOperations"),
    ("opcounters.command", "CommandOperations"),
];

/// `mem`'s figures are in MiB; CloudWatch gets bytes.
const IN_MIB: [&str; 2] = ["mem.resident", "mem.virtual"];

/// The WiredTiger cache, in bytes (its keys are phrases).
const CACHE_BYTES: [(&str, &str); 2] = [
    ("wiredTiger.cache.bytes currently in the cache", "CacheUsedBytes"),
    ("wiredTiger.cache.maximum bytes configured", "CacheMaxBytes"),
];

/// One data member's figures from its serverStatus reply.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct MemberFigures {
    /// `(metric name, unit, value)`, names as the book's where it had them.
    pub values: Vec<(&'static str, Unit, f64)>,
    /// Fields that are there but cannot be read, with why.
    pub skipped: Vec<String>,
    /// From serverStatus.repl: whether it says it is the writable primary
    /// (`isWritablePrimary`, or `ismaster` before 5.0).
    pub is_primary: bool,
    /// serverStatus.repl.setName, when present.
    pub set_name: Option<String>,
}

/// Reads one member's `serverStatus` reply.
pub fn member_figures(server_status: &Document) -> MemberFigures {
    let mut out = MemberFigures::default();
    for (path, metric) in COUNTS.into_iter().chain(CACHE_BYTES) {
        let (unit, factor) = if IN_MIB.contains(&path) {
            (Unit::Bytes, MIB)
        } else if path.starts_with("wiredTiger.") {
            (Unit::Bytes, 1.0)
        } else {
            (Unit::Count, 1.0)
        };
        match lookup(server_status, path) {
            Ok(None) => {}
            Ok(Some(value)) => match number(value) {
                Some(v) => out.values.push((metric, unit, v * factor)),
                None => out
                    .skipped
                    .push(format!("{path}: {} is not a number", shown(value))),
            },
            // A section that is not a document: said once, not per field.
            Err(problem) => {
                if !out.skipped.contains(&problem) {
                    out.skipped.push(problem);
                }
            }
        }
    }
    // 4.9 renamed repl.ismaster to repl.isWritablePrimary; a 4.4 member
    // still says ismaster.
    for key in ["repl.isWritablePrimary", "repl.ismaster"] {
        match lookup(server_status, key) {
            Ok(Some(Bson::Boolean(b))) => {
                out.is_primary = *b;
                break;
            }
            Ok(Some(other)) => out
                .skipped
                .push(format!("{key}: {} is not a boolean", shown(other))),
            Ok(None) | Err(_) => {}
        }
    }
    if let Ok(Some(Bson::String(name))) = lookup(server_status, "repl.setName") {
        out.set_name = Some(name.clone());
    }
    out
}

/// Seconds each member is behind the primary, from one `replSetGetStatus`:
/// the primary's `optimeDate` less the member's (never below 0; a member
/// may have applied a write the status has not seen the primary's heartbeat
/// for yet), for every member with an optime, the primary included (0).
/// Only when the status shows exactly one primary with an optime: with
/// none or two there is no reference, and a guess would trip an alarm.
/// Keyed by the host as the status names it, in its order.
pub fn lag_seconds(health: &[MemberHealth]) -> Vec<(String, f64)> {
    let mut primaries = health.iter().filter(|h| h.state == PRIMARY);
    let (Some(primary), None) = (primaries.next(), primaries.next()) else {
        return Vec::new();
    };
    let Some(reference) = primary.optime else {
        return Vec::new();
    };
    health
        .iter()
        .filter_map(|h| {
            let at: DateTime<Utc> = h.optime?;
            let behind = (reference - at).num_milliseconds() as f64 / 1000.0;
            Some((h.host.clone(), behind.max(0.0)))
        })
        .collect()
}

/// serverStatus on one member (implemented on `crate::mongo_node::MongoNodes`).
pub trait MongoStats: Sync {
    fn server_status(&self, member: &Endpoint) -> impl Future<Output = Result<Document, MemberError>> + Send;
}

/// The value at a dotted path: `Ok(None)` when it or a section on the way
/// is missing, `Err` when a step on the way is not a document. Keys may
/// hold spaces (WiredTiger's do) but never dots.
fn lookup<'a>(doc: &'a Document, path: &str) -> Result<Option<&'a Bson>, String> {
    let steps: Vec<&str> = path.split('.').collect();
    let mut current = doc;
    for (i, step) in steps.iter().enumerate() {
        let Some(value) = current.get(step) else {
            return Ok(None);
        };
        if i + 1 == steps.len() {
            return Ok(Some(value));
        }
        match value {
            Bson::Document(d) => current = d,
            other => {
                return Err(format!(
                    "{}: {} is not a document",
                    steps[..=i].join("."),
                    shown(other)
                ));
            }
        }
    }
    Ok(None)
}

/// Int32, Int64 and Double, as MongoDB sends numbers; a double that is not
/// finite is no figure.
fn number(value: &Bson) -> Option<f64> {
    match value {
        Bson::Int32(i) => Some(f64::from(*i)),
        Bson::Int64(i) => Some(*i as f64),
        Bson::Double(d) if d.is_finite() => Some(*d),
        _ => None,
    }
}

/// A value as a reason shows it: strings quoted, the rest as BSON prints.
fn shown(value: &Bson) -> String {
    match value {
        Bson::String(s) => format!("{s:?}"),
        other => other.to_string(),
    }
}

#[cfg(test)]
#[path = "tests/mongo.rs"]
mod tests;
