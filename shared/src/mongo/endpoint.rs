//! mongo-endpoint's work for one replica set: find the primary and point
//! the set's record (its `ninelives:cluster` name) at it, as the book's
//! per-node cron did every minute, but from outside the set and without a
//! window in which the record is deleted: one batch replaces it.
//!
//! The record is written only when it differs (no change, no API write),
//! with a compare-and-swap (`crate::pointer::point`), so of two concurrent
//! runs one writes and the other reports it. No primary (an election in
//! progress), members that disagree on the set, or a record name holding
//! records ninelives does not manage: reported, nothing changed.

use serde::Serialize;

use super::ports::{Member, MongoApi};
use super::primary::{Finding, MemberView, choose, observe, view};
use crate::chain::model::Endpoint;
use crate::dns::Dns;
use crate::error::Error;
use crate::pointer::{Claim, RecordResult, own_records, point};

/// What happened to one set.
#[derive(Debug, Serialize)]
pub struct SetReport {
    pub set: String,
    /// `unchanged`, `moved`, `created`, `would-move` (dry run),
    /// `moved-by-another-run`, `no-primary`, `unreachable`, `conflict`,
    /// `failed`.
    pub status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub primary: Option<Endpoint>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub primary_instance: Option<String>,
    pub members: Vec<MemberView>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub record: Option<RecordResult>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub findings: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(skip)]
    pub failure: Option<Error>,
}

impl SetReport {
    pub fn empty(set: &str) -> Self {
        SetReport {
            set: set.to_owned(),
            status: "failed",
            primary: None,
            primary_instance: None,
            members: Vec::new(),
            record: None,
            findings: Vec::new(),
            error: None,
            failure: None,
        }
    }

    pub fn fail(mut self, err: Error) -> Self {
        self.status = "failed";
        self.error = Some(err.to_string());
        self.failure = Some(err);
        self
    }

    /// Whether the record was written.
    pub fn changed(&self) -> bool {
        matches!(self.status, "moved" | "created")
    }
}

/// Finds the set's primary and points its record at it.
pub async fn follow_primary(
    api: &impl MongoApi,
    dns: &impl Dns,
    set: &str,
    members: &[Member],
    ttl: i64,
    dry_run: bool,
) -> SetReport {
    let mut report = SetReport::empty(set);
    // The record is read before the members are asked: the compare-and-swap
    // then covers the whole run, so a slow run (a member timing out) cannot
    // write back a primary that a faster, later run has already replaced.
    let current = match own_records(dns, set).await {
        Ok(records) => records,
        Err(e) => return report.fail(e),
    };
    let observed = observe(api, members).await;
    report.members = view(&observed);
    let (finding, findings) = choose(&observed);
    report.findings = findings;
    let primary = match finding {
        Finding::Primary { member, .. } => member,
        Finding::NoPrimary { reason } => {
            tracing::warn!(set, reason = %reason, "no primary; record left as it is");
            report.status = "no-primary";
            report.findings.push(reason);
            return report;
        }
        Finding::Unreachable { reason } => {
            // Every member silent is an outage someone must hear about:
            // the invocation fails (retryable) as well as reporting it.
            report.status = "unreachable";
            report.error = Some(reason.clone());
            report.failure = Some(Error::Incomplete {
                detail: format!("{set}: {reason}"),
                retryable: true,
            });
            return report;
        }
        Finding::Conflict { reason } => {
            report.status = "conflict";
            report.error = Some(reason.clone());
            report.failure = Some(Error::resource(set, reason));
            return report;
        }
    };
    report.primary = Some(primary.node.endpoint.clone());
    report.primary_instance = Some(primary.node.instance_id.clone());
    match point(
        dns,
        set,
        &current,
        &primary.node.endpoint.host,
        ttl,
        true,
        dry_run,
    )
    .await
    {
        Ok(record) => {
            report.status = match record.action {
                "would-move" => "would-move",
                "created" => "created",
                "moved" => "moved",
                _ => "unchanged",
            };
            if report.changed() {
                tracing::info!(set, primary = %primary.node.endpoint, instance_id = %primary.node.instance_id, "record follows the primary");
            }
            report.record = Some(record);
            report
        }
        Err(Claim::Lost(record)) => {
            report.status = "moved-by-another-run";
            report.record = Some(record);
            report
        }
        Err(Claim::Failed(e)) => report.fail(e),
    }
}
