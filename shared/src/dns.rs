//! Route 53 records as the domain sees them: the record sets of one name,
//! and the changes ninelives makes to them (a search node's weighted record
//! now; a Redis head or a MongoDB primary's record in later functions).
//! [`Dns`] is the narrow capability; `crate::route53` implements it on the
//! SDK. Names and targets are checked and normalised here, before any call.

use std::future::Future;
use std::net::IpAddr;

use serde::Serialize;

use crate::error::Error;

/// One resource record set.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RecordSet {
    /// Lower case, without the trailing dot.
    pub name: String,
    /// `A`, `CNAME`, ... as Route 53 spells it.
    #[serde(rename = "type")]
    pub record_type: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub set_identifier: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub weight: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ttl: Option<i64>,
    pub values: Vec<String>,
    /// An alias record (no TTL or values of its own). Never written by
    /// ninelives; listed so that nothing mistakes it for a plain record.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub alias: bool,
    /// Has a health check, a region, failover, geolocation, multivalue or
    /// CIDR routing: fields ninelives never writes, so it never deletes or
    /// rewrites such a record.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub other_routing: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "action", content = "record", rename_all = "UPPERCASE")]
pub enum Change {
    /// Fails (and with it the whole batch) when the record exists: with a
    /// DELETE of the old record in the same batch, a compare-and-swap.
    Create(RecordSet),
    Upsert(RecordSet),
    /// Route 53 deletes only a record given exactly as it is.
    Delete(RecordSet),
}

pub trait Dns: Sync {
    /// Every record set named `name` in the hosted zone (any type, any set
    /// identifier).
    fn record_sets(&self, name: &str) -> impl Future<Output = Result<Vec<RecordSet>, Error>> + Send;

    /// Applies `changes` as one atomic change batch.
    fn change(&self, comment: &str, changes: &[Change]) -> impl Future<Output = Result<(), Error>> + Send;
}

/// Route 53's weight for every member of a weighted set ninelives manages:
/// equal shares.
pub const DEFAULT_WEIGHT: i64 = 100;

/// Lower case without the trailing dot, as every comparison here expects.
pub fn normalize_name(name: &str) -> String {
    name.trim().trim_end_matches('.').to_ascii_lowercase()
}

/// Checks that `name` can be a record name: 1 to 253 characters, labels of
/// 1 to 63 letters, digits, hyphens or underscores, at least two labels.
/// Returns it normalised.
pub fn record_name(name: &str) -> Result<String, String> {
    let n = normalize_name(name);
    if n.is_empty() || n.len() > 253 {
        return Err(format!("{name:?} is not a DNS name (1 to 253 characters)"));
    }
    let labels: Vec<&str> = n.split('.').collect();
    if labels.len() < 2 {
        return Err(format!(
            "{name:?} is not a fully qualified name (expected something like db.example.com)"
        ));
    }
    for label in &labels {
        let ok_chars = label
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
        if label.is_empty() || label.len() > 63 || !ok_chars {
            return Err(format!(
                "{name:?} is not a DNS name: label {label:?} must be 1 to 63 letters, digits, '-' or '_'"
            ));
        }
    }
    Ok(n)
}

/// The record type and value that point a name at `host`: an A record for
/// an IPv4 address, an AAAA record for IPv6, a CNAME for a name.
pub fn target(host: &str) -> Result<(&'static str, String), String> {
    let host = host.trim();
    match host.parse::<IpAddr>() {
        Ok(IpAddr::V4(ip)) => Ok(("A", ip.to_string())),
        Ok(IpAddr::V6(ip)) => Ok(("AAAA", ip.to_string())),
        Err(_) => record_name(host).map(|name| ("CNAME", name)),
    }
}

/// The host part of an endpoint tag: `host`, `host:port` or `[v6]:port`.
pub fn endpoint_host(endpoint: &str) -> Result<String, String> {
    let e = endpoint.trim();
    let host = if let Some(rest) = e.strip_prefix('[') {
        rest.split_once(']').map(|(h, _)| h).unwrap_or("")
    } else if e.parse::<IpAddr>().is_ok() {
        e
    } else {
        e.rsplit_once(':').map_or(e, |(h, _)| h)
    };
    if host.is_empty() {
        return Err(format!("{endpoint:?} names no host"));
    }
    Ok(host.to_owned())
}

/// A member of a weighted set: `name` points at `host`, identified by
/// `set_identifier` (an instance id), with [`DEFAULT_WEIGHT`].
pub fn weighted_record(name: &str, set_identifier: &str, host: &str, ttl: i64) -> Result<RecordSet, String> {
    let (record_type, value) = target(host)?;
    Ok(RecordSet {
        name: record_name(name)?,
        record_type: record_type.to_owned(),
        set_identifier: Some(set_identifier.to_owned()),
        weight: Some(DEFAULT_WEIGHT),
        ttl: Some(ttl),
        values: vec![value],
        alias: false,
        other_routing: false,
    })
}

/// Whether two records say the same thing (names and values compared
/// without case and trailing dots, values in any order).
/// A plain record (no set identifier, weight, alias or other routing)
/// pointing `name` at `host`.
pub fn simple_record(name: &str, host: &str, ttl: i64) -> Result<RecordSet, String> {
    let (record_type, value) = target(host)?;
    Ok(RecordSet {
        name: record_name(name)?,
        record_type: record_type.to_owned(),
        set_identifier: None,
        weight: None,
        ttl: Some(ttl),
        values: vec![value],
        alias: false,
        other_routing: false,
    })
}

/// Whether a record is one ninelives may own as a plain pointer: no set
/// identifier, weight, alias or other routing.
pub fn is_simple(r: &RecordSet) -> bool {
    r.set_identifier.is_none() && r.weight.is_none() && !r.alias && !r.other_routing
}

pub fn same_record(a: &RecordSet, b: &RecordSet) -> bool {
    let values = |r: &RecordSet| {
        let mut v: Vec<String> = r.values.iter().map(|v| normalize_name(v)).collect();
        v.sort();
        v
    };
    normalize_name(&a.name) == normalize_name(&b.name)
        && a.record_type == b.record_type
        && a.set_identifier == b.set_identifier
        && a.weight == b.weight
        && a.ttl == b.ttl
        && a.alias == b.alias
        && a.other_routing == b.other_routing
        && values(a) == values(b)
}

/// A hosted zone id as Route 53 prints it (`Z0123...`), also accepted with
/// the `/hostedzone/` prefix the API returns.
pub fn hosted_zone_id(value: &str) -> Result<String, String> {
    let id = value.trim().trim_start_matches("/hostedzone/");
    let valid =
        !id.is_empty() && id.len() <= 32 && id.bytes().all(|b| b.is_ascii_uppercase() || b.is_ascii_digit());
    if !valid {
        return Err("expected a hosted zone id like Z0123456789ABCDEFGHIJ".to_owned());
    }
    Ok(id.to_owned())
}

#[cfg(test)]
#[path = "tests/dns.rs"]
mod tests;
