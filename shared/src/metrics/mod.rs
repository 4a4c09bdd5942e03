//! Metrics for CloudWatch (SPEC item 7, the publish-metrics issue): the
//! datum model, the batching of datums into as few `PutMetricData` calls as
//! CloudWatch's limits allow, and what each data store's own figures become
//! ([`redis`], [`mongo`], [`postgres`]), and publish-metrics' run over
//! every node ([`collect`]). The CloudWatch adapter is `crate::cloudwatch`.
//!
//! CloudWatch's limits per `PutMetricData` call (2023 onwards): one
//! namespace, at most 1,000 datums, at most 1 MB of request payload, and
//! at most 30 dimensions per datum; names and dimension values are ASCII
//! without control characters. Values must be finite: CloudWatch
//! rejects NaN and infinities (and values beyond about 2^360), so such a
//! value is never sent and is reported instead.

pub mod collect;
pub mod mongo;
pub mod postgres;
pub mod redis;

use std::collections::BTreeMap;
use std::future::Future;

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::error::Error;

/// The most datums in one call.
pub const MAX_DATUMS: usize = 1000;
/// The most request bytes in one call, with a margin for the request's
/// own fields (action, version, namespace): 1 MB less 64 KiB.
pub const MAX_BYTES: usize = 1_000_000 - 65_536;
/// The largest magnitude CloudWatch accepts (it refuses values beyond
/// 2^360; we stay far below).
const MAX_MAGNITUDE: f64 = 1e100;

/// A unit CloudWatch knows, as its API spells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Unit {
    Bytes,
    Count,
    Percent,
    Seconds,
    #[serde(rename = "Count/Second")]
    CountPerSecond,
    None,
}

impl Unit {
    pub fn as_str(self) -> &'static str {
        match self {
            Unit::Bytes => "Bytes",
            Unit::Count => "Count",
            Unit::Percent => "Percent",
            Unit::Seconds => "Seconds",
            Unit::CountPerSecond => "Count/Second",
            Unit::None => "None",
        }
    }
}

/// One value of one metric.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Datum {
    pub namespace: &'static str,
    pub name: String,
    /// `(name, value)`, e.g. `("cluster", "kate.example.com")`, `("node",
    /// "i-0123...")`.
    pub dimensions: Vec<(String, String)>,
    pub value: f64,
    pub unit: Unit,
    pub timestamp: DateTime<Utc>,
}

impl Datum {
    /// Roughly what the datum adds to a Query-protocol request
    /// (`MetricData.member.N.*` keys and values, URL-encoded), an upper
    /// bound used to keep a call under [`MAX_BYTES`].
    pub fn wire_size(&self) -> usize {
        // Per datum: ~60 bytes of keys for name, value, unit, timestamp;
        // ~70 per dimension; values are at most 3x longer URL-encoded.
        let dims: usize = self
            .dimensions
            .iter()
            .map(|(k, v)| 70 + 3 * (k.len() + v.len()))
            .sum();
        120 + 3 * self.name.len() + 24 + 36 + dims
    }
}

/// A datum that cannot be sent, and why.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Rejected {
    pub name: String,
    pub dimensions: Vec<(String, String)>,
    pub reason: String,
}

/// The datums of one `PutMetricData` call.
#[derive(Debug, Clone, PartialEq)]
pub struct Batch {
    pub namespace: &'static str,
    pub data: Vec<Datum>,
}

/// Splits `data` into the fewest calls the limits allow: one namespace
/// per call, at most [`MAX_DATUMS`] datums and [`MAX_BYTES`] per call, in
/// the order given within each namespace. Values CloudWatch would refuse
/// (not finite, too large, no name, too many dimensions) are left out and
/// returned with the reason.
pub fn batches(data: Vec<Datum>) -> (Vec<Batch>, Vec<Rejected>) {
    let mut rejected = Vec::new();
    let mut by_namespace: BTreeMap<&'static str, Vec<Datum>> = BTreeMap::new();
    for d in data {
        let reason = if d.name.is_empty() || d.name.len() > 255 {
            Some("a metric name must be 1 to 255 characters".to_owned())
        } else if !d.value.is_finite() {
            Some(format!("{} is not a number CloudWatch accepts", d.value))
        } else if d.value.abs() > MAX_MAGNITUDE {
            Some(format!("{} is too large for CloudWatch", d.value))
        } else if d.dimensions.len() > 30 {
            Some(format!(
                "{} dimensions; CloudWatch takes at most 30",
                d.dimensions.len()
            ))
        } else if d
            .dimensions
            .iter()
            .any(|(k, v)| k.is_empty() || v.is_empty() || k.len() > 255 || v.len() > 1024)
        {
            Some("a dimension's name must be 1 to 255 characters and its value 1 to 1024".to_owned())
        } else if let Some((k, v)) = d
            .dimensions
            .iter()
            .find(|(k, v)| !cloudwatch_text(k) || k.starts_with(':') || !cloudwatch_text(v))
        {
            // CloudWatch refuses the whole call for one such value, which
            // would lose every other datum of the namespace with it.
            Some(format!(
                "dimension {k:?}={v:?}: CloudWatch takes only printable ASCII with at least one non-space character (and no name starting with ':')"
            ))
        } else if !cloudwatch_text(&d.name) {
            Some(format!(
                "metric name {:?}: CloudWatch takes only printable ASCII with at least one non-space character",
                d.name
            ))
        } else {
            None
        };
        match reason {
            Some(reason) => rejected.push(Rejected {
                name: d.name,
                dimensions: d.dimensions,
                reason,
            }),
            None => by_namespace.entry(d.namespace).or_default().push(d),
        }
    }
    let mut out = Vec::new();
    for (namespace, data) in by_namespace {
        let mut current = Batch {
            namespace,
            data: Vec::new(),
        };
        let mut bytes = 0;
        for d in data {
            let size = d.wire_size();
            if !current.data.is_empty() && (current.data.len() == MAX_DATUMS || bytes + size > MAX_BYTES) {
                out.push(std::mem::replace(
                    &mut current,
                    Batch {
                        namespace,
                        data: Vec::new(),
                    },
                ));
                bytes = 0;
            }
            bytes += size;
            current.data.push(d);
        }
        if !current.data.is_empty() {
            out.push(current);
        }
    }
    (out, rejected)
}

/// What CloudWatch accepts as a metric name or dimension: ASCII, no
/// control characters, not only spaces.
fn cloudwatch_text(s: &str) -> bool {
    s.bytes().all(|b| (0x20..0x7f).contains(&b)) && s.bytes().any(|b| b != b' ')
}

/// Where metrics go.
pub trait MetricsSink: Sync {
    /// One `PutMetricData` call.
    fn put(&self, batch: &Batch) -> impl Future<Output = Result<(), Error>> + Send;
}

#[cfg(test)]
#[path = "tests/batch.rs"]
mod tests;
