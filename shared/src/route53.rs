//! The Route 53 adapter: [`Dns`] on the AWS SDK's Route 53 client, bound to
//! one hosted zone. Listing pages through every record set of a name
//! (weighted sets can be larger than a page); changes go in one batch.

use aws_sdk_route53::Client;
use aws_sdk_route53::types::{
    Change as SdkChange, ChangeAction, ChangeBatch, ResourceRecord, ResourceRecordSet, RrType,
};

use crate::dns::{Change, Dns, RecordSet, normalize_name};
use crate::error::Error;

/// Record sets per ListResourceRecordSets page (Route 53's maximum).
const PAGE: i32 = 300;

#[derive(Debug, Clone)]
pub struct Route53 {
    client: Client,
    hosted_zone_id: String,
}

impl Route53 {
    pub fn new(client: Client, hosted_zone_id: impl Into<String>) -> Self {
        Route53 {
            client,
            hosted_zone_id: hosted_zone_id.into(),
        }
    }

    pub fn from_conf(config: &aws_config::SdkConfig, hosted_zone_id: impl Into<String>) -> Self {
        Route53::new(Client::new(config), hosted_zone_id)
    }

    pub fn hosted_zone_id(&self) -> &str {
        &self.hosted_zone_id
    }
}

fn from_sdk(r: &ResourceRecordSet) -> RecordSet {
    RecordSet {
        name: normalize_name(r.name()),
        record_type: r.r#type().as_str().to_owned(),
        set_identifier: r.set_identifier().map(str::to_owned),
        weight: r.weight(),
        ttl: r.ttl(),
        values: r
            .resource_records()
            .iter()
            .map(|v| v.value().to_owned())
            .collect(),
        alias: r.alias_target().is_some(),
        other_routing: r.health_check_id().is_some()
            || r.region().is_some()
            || r.failover().is_some()
            || r.geo_location().is_some()
            || r.multi_value_answer().is_some()
            || r.cidr_routing_config().is_some()
            || r.geo_proximity_location().is_some()
            || r.traffic_policy_instance_id().is_some(),
    }
}

fn to_sdk(r: &RecordSet) -> Result<ResourceRecordSet, Error> {
    const OP: &str = "route53:ChangeResourceRecordSets";
    let records = r
        .values
        .iter()
        .map(|v| ResourceRecord::builder().value(v).build())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| Error::request(OP, e))?;
    ResourceRecordSet::builder()
        .name(&r.name)
        .r#type(RrType::from(r.record_type.as_str()))
        .set_set_identifier(r.set_identifier.clone())
        .set_weight(r.weight)
        .set_ttl(r.ttl)
        .set_resource_records(Some(records))
        .build()
        .map_err(|e| Error::request(OP, e))
}

impl Dns for Route53 {
    async fn record_sets(&self, name: &str) -> Result<Vec<RecordSet>, Error> {
        let wanted = normalize_name(name);
        let mut out = Vec::new();
        let mut next: Option<(String, Option<RrType>, Option<String>)> = Some((wanted.clone(), None, None));
        while let Some(start) = next.take() {
            let page = self
                .client
                .list_resource_record_sets()
                .hosted_zone_id(&self.hosted_zone_id)
                .start_record_name(&start.0)
                .set_start_record_type(start.1.clone())
                .set_start_record_identifier(start.2.clone())
                .max_items(PAGE)
                .send()
                .await
                .map_err(|e| Error::aws("route53:ListResourceRecordSets", e))?;
            // Listing starts at the name and runs on in DNS order: stop at
            // the first record of another name.
            let mut past = false;
            for r in page.resource_record_sets() {
                if normalize_name(r.name()) == wanted {
                    out.push(from_sdk(r));
                } else {
                    past = true;
                    break;
                }
            }
            if !past && page.is_truncated() {
                let following = page.next_record_name().map(|n| {
                    (
                        n.to_owned(),
                        page.next_record_type().cloned(),
                        page.next_record_identifier().map(str::to_owned),
                    )
                });
                // An endpoint that ignores StartRecordIdentifier would hand
                // back the same page forever.
                if following.as_ref() == Some(&start) {
                    return Err(Error::Incomplete {
                        detail: format!(
                            "route53:ListResourceRecordSets did not advance past {} (no NextRecordIdentifier within a set larger than a page)",
                            start.0
                        ),
                        retryable: false,
                    });
                }
                next = following;
            }
        }
        Ok(out)
    }

    async fn change(&self, comment: &str, changes: &[Change]) -> Result<(), Error> {
        const OP: &str = "route53:ChangeResourceRecordSets";
        let sdk_changes = changes
            .iter()
            .map(|c| {
                let (action, record) = match c {
                    Change::Create(r) => (ChangeAction::Create, r),
                    Change::Upsert(r) => (ChangeAction::Upsert, r),
                    Change::Delete(r) => (ChangeAction::Delete, r),
                };
                SdkChange::builder()
                    .action(action)
                    .resource_record_set(to_sdk(record)?)
                    .build()
                    .map_err(|e| Error::request(OP, e))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let batch = ChangeBatch::builder()
            .comment(comment)
            .set_changes(Some(sdk_changes))
            .build()
            .map_err(|e| Error::request(OP, e))?;
        self.client
            .change_resource_record_sets()
            .hosted_zone_id(&self.hosted_zone_id)
            .change_batch(batch)
            .send()
            .await
            .map_err(|e| Error::aws(OP, e))?;
        Ok(())
    }
}
