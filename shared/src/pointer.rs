//! The one plain record that points a cluster's name at its writable node
//! (the Redis chain's head and tail records, a MongoDB replica set's
//! primary record): read it, and move it with a compare-and-swap so that of
//! two concurrent runs exactly one writes and the other reports the change.
//! Records are written only when they differ from what is wanted.

use std::time::Duration;

use serde::Serialize;

use crate::dns::{self, Change, Dns, RecordSet};
use crate::error::Error;

#[derive(Debug, Serialize)]
pub struct RecordResult {
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    pub to: String,
    /// `unchanged`, `created`, `moved`, `would-move`, `moved-by-another-run`.
    pub action: &'static str,
}

/// The plain records of `name` ninelives may replace; an error when the
/// name holds records it must not touch (weighted, alias, ...).
pub async fn own_records(dns: &impl Dns, name: &str) -> Result<Vec<RecordSet>, Error> {
    let all = dns.record_sets(name).await?;
    let pointers: Vec<RecordSet> = all
        .into_iter()
        .filter(|r| matches!(r.record_type.as_str(), "A" | "AAAA" | "CNAME"))
        .collect();
    if let Some(foreign) = pointers.iter().find(|r| !dns::is_simple(r)) {
        return Err(Error::resource(
            name,
            format!(
                "has a {} record with a set identifier, weight, alias or other routing; ninelives manages only a plain A, AAAA or CNAME record there and changes nothing",
                foreign.record_type
            ),
        ));
    }
    Ok(pointers)
}

pub fn host_of(records: &[RecordSet]) -> Option<String> {
    records
        .iter()
        .find(|r| r.record_type == "CNAME")
        .or_else(|| records.first())
        .and_then(|r| r.values.first())
        .map(|v| dns::normalize_name(v))
}

pub enum Claim {
    /// A compare-and-swap lost to another writer; what the record is now.
    Lost(RecordResult),
    Failed(Error),
}

/// Points `name` at `host`. With `cas`, the batch DELETEs the records as
/// read and CREATEs the new one, so it fails if anyone changed them since.
pub async fn point(
    dns: &impl Dns,
    name: &str,
    current: &[RecordSet],
    host: &str,
    ttl: i64,
    cas: bool,
    dry_run: bool,
) -> Result<RecordResult, Claim> {
    let wanted = dns::simple_record(name, host, ttl)
        .map_err(|e| Claim::Failed(Error::resource(name, format!("cannot point it at {host}: {e}"))))?;
    let from = host_of(current);
    let result = |action| RecordResult {
        name: name.to_owned(),
        from: from.clone(),
        to: wanted.values.first().cloned().unwrap_or_default(),
        action,
    };
    if current.len() == 1 && dns::same_record(&current[0], &wanted) {
        return Ok(result("unchanged"));
    }
    if dry_run {
        return Ok(result("would-move"));
    }
    let mut changes: Vec<Change> = current
        .iter()
        .filter(|r| cas || r.record_type != wanted.record_type)
        .cloned()
        .map(Change::Delete)
        .collect();
    changes.push(if cas {
        Change::Create(wanted.clone())
    } else {
        Change::Upsert(wanted.clone())
    });
    let comment = format!("ninelives: {name} -> {host}");
    let mut outcome = dns.change(&comment, &changes).await;
    // Route 53 may refuse a batch while another on the zone is still being
    // applied; once that one is done, the records tell whether it was ours
    // to lose.
    if let Err(e) = &outcome
        && e.aws_code() == Some("PriorRequestNotComplete")
    {
        tokio::time::sleep(Duration::from_secs(1)).await;
        if own_records(dns, name).await.is_ok_and(|now| now == current) {
            outcome = dns.change(&comment, &changes).await;
        }
    }
    match outcome {
        Ok(()) => {
            tracing::info!(record = name, from = ?from, to = %host, "record moved");
            Ok(result(if current.is_empty() { "created" } else { "moved" }))
        }
        Err(e) => {
            // Lost a race? Then the record is no longer what was read.
            let now = match own_records(dns, name).await {
                Ok(now) => now,
                Err(_) => return Err(Claim::Failed(e)),
            };
            if now.len() == 1 && dns::same_record(&now[0], &wanted) {
                return Err(Claim::Lost(result("moved-by-another-run")));
            }
            if now != current {
                return Err(Claim::Lost(RecordResult {
                    name: name.to_owned(),
                    from: from.clone(),
                    to: host_of(&now).unwrap_or_default(),
                    action: "moved-by-another-run",
                }));
            }
            Err(Claim::Failed(e))
        }
    }
}
