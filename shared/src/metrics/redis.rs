//! What a Redis node's `INFO` becomes in CloudWatch (`NineLives/Redis`):
//! the figures the book's Redis monitor watched. Memory (used, peak, RSS,
//! fragmentation), clients (connected, replicas, blocked), keys (evicted,
//! expired), persistence (changes since the last save; the last AOF write
//! and rewrite when AOF is on), the role and, for a replica, its link; and
//! from every node with replicas (the head, and each middle node of a
//! chain), each replica's lag in bytes (`master_repl_offset` less the
//! offset the replica acknowledged) and seconds. A replica's own lag is
//! its master's view of it; `crate::metrics::collect` joins the two nodes.
//!
//! A field that is missing is left out (older Redis versions lack some);
//! a field that is there but not a number is reported, not guessed.

use std::collections::HashMap;
use std::future::Future;

use serde::Serialize;

use super::Unit;
use crate::chain::model::Endpoint;
use crate::chain::ports::NodeError;

pub const NAMESPACE: &str = "NineLives/Redis";

/// What reads a node's `INFO` (implemented on `crate::redis_node::RedisNodes`).
pub trait RedisInfo: Sync {
    /// The text of `INFO` (its default sections).
    fn info(&self, node: &Endpoint) -> impl Future<Output = Result<String, NodeError>> + Send;
}

/// One node's figures.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct Figures {
    /// `(metric name, unit, value)`.
    pub values: Vec<(&'static str, Unit, f64)>,
    /// Each replica this node reports (a master, or a middle node of a
    /// chain).
    pub replicas: Vec<ReplicaLag>,
    /// A replica's master as it reports it (`master_host`, `master_port`).
    pub master: Option<(String, u16)>,
    /// Fields that could not be read, with why.
    pub skipped: Vec<String>,
}

/// How far one replica is behind its master, as the master sees it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ReplicaLag {
    /// `ip:port` the replica announced.
    pub replica: String,
    /// `online`, `wait_bgsave`, `send_bulk`, ...
    pub state: String,
    pub bytes: f64,
    pub seconds: f64,
}

/// Counters and gauges read as numbers: `(INFO field, metric, unit)`.
const NUMBERS: [(&str, &str, Unit); 10] = [
    ("used_memory", "UsedMemory", Unit::Bytes),
    ("used_memory_peak", "UsedMemoryPeak", Unit::Bytes),
    ("used_memory_rss", "UsedMemoryRss", Unit::Bytes),
    ("mem_fragmentation_ratio", "MemFragmentationRatio", Unit::None),
    ("connected_clients", "ConnectedClients", Unit::Count),
    ("connected_slaves", "ConnectedReplicas", Unit::Count),
    ("blocked_clients", "BlockedClients", Unit::Count),
    ("evicted_keys", "EvictedKeys", Unit::Count),
    ("expired_keys", "ExpiredKeys", Unit::Count),
    ("rdb_changes_since_last_save", "ChangesSinceLastSave", Unit::Count),
];

/// Reads the text of `INFO` (the default sections).
pub fn figures(info: &str) -> Figures {
    let fields: HashMap<&str, &str> = info
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .filter_map(|l| l.split_once(':'))
        .collect();
    let mut out = Figures::default();
    for (field, metric, unit) in NUMBERS {
        match fields.get(field).map(|v| v.parse::<f64>()) {
            None => {}
            Some(Ok(v)) if v.is_finite() => out.values.push((metric, unit, v)),
            Some(_) => out.skipped.push(format!(
                "{field}: {:?} is not a number",
                fields.get(field).copied().unwrap_or_default()
            )),
        }
    }
    let flag = |v: bool| if v { 1.0 } else { 0.0 };
    if fields.get("aof_enabled") == Some(&"1") {
        for (field, metric) in [
            ("aof_last_write_status", "AofLastWriteOk"),
            ("aof_last_bgrewrite_status", "AofLastRewriteOk"),
        ] {
            if let Some(status) = fields.get(field) {
                out.values.push((metric, Unit::None, flag(*status == "ok")));
            }
        }
    }
    // A middle node of a chain is a replica with replicas of its own.
    out.replicas = replica_lags(&fields, &mut out.skipped);
    if let Some(max) = out.replicas.iter().map(|r| r.bytes).max_by(|a, b| a.total_cmp(b)) {
        out.values.push(("MaxReplicaLagBytes", Unit::Bytes, max));
    }
    match fields.get("role").copied() {
        Some("master") => out.values.push(("IsMaster", Unit::None, 1.0)),
        Some("slave") => {
            out.values.push(("IsMaster", Unit::None, 0.0));
            out.values.push((
                "MasterLinkUp",
                Unit::None,
                flag(fields.get("master_link_status") == Some(&"up")),
            ));
            match (
                fields.get("master_host"),
                fields.get("master_port").map(|p| p.parse::<u16>()),
            ) {
                (Some(host), Some(Ok(port))) if !host.is_empty() => {
                    out.master = Some(((*host).to_owned(), port))
                }
                _ => out
                    .skipped
                    .push("master_host/master_port: missing or not a host and port".to_owned()),
            }
        }
        Some(other) => out.skipped.push(format!("role: unknown role {other:?}")),
        None => out.skipped.push("role: missing".to_owned()),
    }
    out
}

/// `slaveN:ip=...,port=...,state=...,offset=...,lag=...` lines of a master.
fn replica_lags(fields: &HashMap<&str, &str>, skipped: &mut Vec<String>) -> Vec<ReplicaLag> {
    let mut keys: Vec<(&str, &str)> = fields
        .iter()
        .filter(|(k, _)| {
            k.strip_prefix("slave")
                .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
        })
        .map(|(k, v)| (*k, *v))
        .collect();
    if keys.is_empty() {
        return Vec::new();
    }
    let Some(Ok(master_offset)) = fields.get("master_repl_offset").map(|v| v.parse::<f64>()) else {
        skipped.push("master_repl_offset: missing or not a number; replica lag unknown".to_owned());
        return Vec::new();
    };
    keys.sort_by_key(|(k, _)| k[5..].parse::<u32>().unwrap_or(u32::MAX));
    let mut out = Vec::new();
    for (key, value) in keys {
        let parts: HashMap<&str, &str> = value.split(',').filter_map(|p| p.split_once('=')).collect();
        let (Some(ip), Some(port), Some(Ok(offset))) = (
            parts.get("ip"),
            parts.get("port"),
            parts.get("offset").map(|o| o.parse::<f64>()),
        ) else {
            skipped.push(format!("{key}: {value:?} has no ip, port and numeric offset"));
            continue;
        };
        out.push(ReplicaLag {
            replica: format!("{ip}:{port}"),
            state: parts.get("state").unwrap_or(&"unknown").to_string(),
            bytes: (master_offset - offset).max(0.0),
            seconds: parts.get("lag").and_then(|l| l.parse().ok()).unwrap_or(0.0),
        });
    }
    out
}

#[cfg(test)]
#[path = "tests/redis.rs"]
mod tests;
