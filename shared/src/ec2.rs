//! The EC2 adapter: [`BackupApi`] on the AWS SDK's EC2 client. Paging, tag
//! conversion and the mapping of EC2 error codes to outcomes live here and
//! nowhere else.

use std::collections::BTreeSet;
use std::time::Duration;

use aws_sdk_ec2::Client;
use aws_sdk_ec2::error::ProvideErrorMetadata;
use aws_sdk_ec2::types::{Filter, InstanceSpecification, ResourceType, Tag, TagSpecification};
use chrono::{DateTime, Utc};

use crate::backup::model::{
    Attachment, DeleteOutcome, InstanceDisks, MultiSnapshot, SingleSnapshot, Snapshot, SnapshotQuery,
    SnapshotState, Tags, Volume,
};
use crate::backup::ports::BackupApi;
use crate::error::Error;
use crate::tags;

mod locate;
mod nodes;
mod restore;

/// Page sizes: the largest each call accepts.
const SNAPSHOT_PAGE: i32 = 1000;
const VOLUME_PAGE: i32 = 500;
const IMAGE_PAGE: i32 = 1000;
/// Values per filter EC2 accepts in one call.
const FILTER_VALUES: usize = 200;
/// Waits before retrying a call on a snapshot id EC2 does not know yet.
const FRESH_ID_WAITS: [Duration; 4] = [
    Duration::from_millis(500),
    Duration::from_secs(1),
    Duration::from_secs(2),
    Duration::from_secs(4),
];

#[derive(Debug, Clone)]
pub struct Ec2 {
    client: Client,
}

impl Ec2 {
    pub fn new(client: Client) -> Self {
        Ec2 { client }
    }

    pub fn from_conf(config: &aws_config::SdkConfig) -> Self {
        Ec2::new(Client::new(config))
    }
}

fn filter(name: &str, values: impl IntoIterator<Item = impl Into<String>>) -> Filter {
    Filter::builder()
        .name(name)
        .set_values(Some(values.into_iter().map(Into::into).collect()))
        .build()
}

fn to_sdk_tags(tags: &Tags) -> Vec<Tag> {
    tags.iter()
        .map(|(k, v)| Tag::builder().key(k).value(v).build())
        .collect()
}

fn from_sdk_tags(tags: &[Tag]) -> Tags {
    tags.iter()
        .filter_map(|t| Some((t.key()?.to_owned(), t.value().unwrap_or_default().to_owned())))
        .collect()
}

fn snapshot_tag_spec(tags: &Tags) -> TagSpecification {
    TagSpecification::builder()
        .resource_type(ResourceType::Snapshot)
        .set_tags(Some(to_sdk_tags(tags)))
        .build()
}

fn to_chrono(time: Option<&aws_smithy_types::DateTime>) -> Option<DateTime<Utc>> {
    let t = time?;
    DateTime::from_timestamp(t.secs(), t.subsec_nanos())
}

/// The node an instance is, from `tags` (its own, or its own completed by
/// the caller) and its addresses: `chain::model::node_from`, for every
/// inventory and lookup on EC2.
fn node_of(
    instance: &aws_sdk_ec2::types::Instance,
    id: &str,
    tags: &Tags,
    default_port: u16,
) -> Result<crate::chain::model::Node, crate::chain::model::InvalidNode> {
    crate::chain::model::node_from(
        id,
        tags,
        instance.private_dns_name(),
        instance.private_ip_address(),
        to_chrono(instance.launch_time()),
        default_port,
    )
}

fn snapshot_from_sdk(s: &aws_sdk_ec2::types::Snapshot) -> Option<Snapshot> {
    use aws_sdk_ec2::types::SnapshotState as S;
    Some(Snapshot {
        id: s.snapshot_id()?.to_owned(),
        volume_id: s.volume_id().map(str::to_owned),
        state: match s.state() {
            Some(S::Pending) => SnapshotState::Pending,
            Some(S::Completed) => SnapshotState::Completed,
            Some(S::Error) => SnapshotState::Error,
            _ => SnapshotState::Other,
        },
        start_time: to_chrono(s.start_time()),
        volume_size_gib: s.volume_size(),
        tags: from_sdk_tags(s.tags()),
    })
}

fn volume_from_sdk(v: &aws_sdk_ec2::types::Volume) -> Option<Volume> {
    Some(Volume {
        id: v.volume_id()?.to_owned(),
        state: v.state().map(|s| s.as_str().to_owned()).unwrap_or_default(),
        availability_zone: v.availability_zone().unwrap_or_default().to_owned(),
        size_gib: v.size().unwrap_or_default(),
        tags: from_sdk_tags(v.tags()),
        attachments: v
            .attachments()
            .iter()
            .filter_map(|a| {
                Some(Attachment {
                    instance_id: a.instance_id()?.to_owned(),
                    device: a.device().unwrap_or_default().to_owned(),
                    state: a.state().map(|s| s.as_str().to_owned()).unwrap_or_default(),
                })
            })
            .collect(),
    })
}

impl Ec2 {
    /// Every volume `filter` selects, every page.
    async fn volumes_where(&self, filter: Filter) -> Result<Vec<Volume>, Error> {
        let mut pages = self
            .client
            .describe_volumes()
            .filters(filter)
            .into_paginator()
            .page_size(VOLUME_PAGE)
            .items()
            .send();
        let mut volumes = Vec::new();
        while let Some(item) = pages.next().await {
            let v = item.map_err(|e| Error::aws("ec2:DescribeVolumes", e))?;
            if let Some(volume) = volume_from_sdk(&v) {
                volumes.push(volume);
            }
        }
        Ok(volumes)
    }
}

impl BackupApi for Ec2 {
    async fn tagged_volumes(&self) -> Result<Vec<Volume>, Error> {
        self.volumes_where(filter("tag-key", [tags::CLUSTER])).await
    }

    async fn instance_disks(&self, instance_ids: &[String]) -> Result<Vec<InstanceDisks>, Error> {
        let mut out = Vec::new();
        // A filter, not InstanceIds: an instance terminated since its volume
        // was listed is simply absent instead of failing the whole call.
        for chunk in instance_ids.chunks(FILTER_VALUES) {
            let mut pages = self
                .client
                .describe_instances()
                .filters(filter("instance-id", chunk.iter().cloned()))
                .into_paginator()
                .send();
            while let Some(page) = pages.next().await {
                let page = page.map_err(|e| Error::aws("ec2:DescribeInstances", e))?;
                for instance in page.reservations().iter().flat_map(|r| r.instances()) {
                    let Some(id) = instance.instance_id() else {
                        continue;
                    };
                    out.push(InstanceDisks {
                        instance_id: id.to_owned(),
                        root_device_name: instance.root_device_name().map(str::to_owned),
                        volumes: instance
                            .block_device_mappings()
                            .iter()
                            .filter_map(|m| {
                                Some((m.device_name()?.to_owned(), m.ebs()?.volume_id()?.to_owned()))
                            })
                            .collect(),
                    });
                }
            }
        }
        Ok(out)
    }

    async fn managed_snapshots(&self, query: &SnapshotQuery) -> Result<Vec<Snapshot>, Error> {
        let mut request = self.client.describe_snapshots().owner_ids("self").filters(filter(
            &format!("tag:{}", tags::MANAGED_BY),
            [tags::MANAGED_BY_VALUE],
        ));
        for (key, value) in &query.tags {
            request = request.filters(filter(&format!("tag:{key}"), [value.clone()]));
        }
        let mut pages = request.into_paginator().page_size(SNAPSHOT_PAGE).items().send();
        let mut snapshots = Vec::new();
        while let Some(item) = pages.next().await {
            let s = item.map_err(|e| Error::aws("ec2:DescribeSnapshots", e))?;
            // The filter asks EC2 for managed snapshots; checking again here
            // means an endpoint that ignored the filter cannot widen a purge.
            let managed = s
                .tags()
                .iter()
                .any(|t| t.key() == Some(tags::MANAGED_BY) && t.value() == Some(tags::MANAGED_BY_VALUE));
            if let (true, Some(snapshot)) = (managed, snapshot_from_sdk(&s)) {
                snapshots.push(snapshot);
            }
        }
        Ok(snapshots)
    }

    async fn create_snapshot(&self, request: &SingleSnapshot) -> Result<String, Error> {
        let out = self
            .client
            .create_snapshot()
            .volume_id(&request.volume_id)
            .description(&request.description)
            .tag_specifications(snapshot_tag_spec(&request.tags))
            .send()
            .await
            .map_err(|e| Error::aws("ec2:CreateSnapshot", e))?;
        out.snapshot_id()
            .map(str::to_owned)
            .ok_or_else(|| Error::Incomplete {
                detail: format!("CreateSnapshot of {} returned no snapshot id", request.volume_id),
                retryable: true,
            })
    }

    async fn create_snapshots(&self, request: &MultiSnapshot) -> Result<Vec<(String, String)>, Error> {
        let spec = InstanceSpecification::builder()
            .instance_id(&request.instance_id)
            .exclude_boot_volume(request.exclude_boot_volume)
            .set_exclude_data_volume_ids(
                (!request.exclude_volume_ids.is_empty()).then(|| request.exclude_volume_ids.clone()),
            )
            .build();
        let out = self
            .client
            .create_snapshots()
            .instance_specification(spec)
            .description(&request.description)
            .tag_specifications(snapshot_tag_spec(&request.tags))
            .send()
            .await
            .map_err(|e| Error::aws("ec2:CreateSnapshots", e))?;
        Ok(out
            .snapshots()
            .iter()
            .filter_map(|s| Some((s.volume_id()?.to_owned(), s.snapshot_id()?.to_owned())))
            .collect())
    }

    async fn tag_snapshots(&self, snapshot_ids: &[String], tags: &Tags) -> Result<(), Error> {
        if snapshot_ids.is_empty() || tags.is_empty() {
            return Ok(());
        }
        // Tags are added to snapshots just created, and EC2's API is
        // eventually consistent: for a few seconds a fresh id can answer
        // InvalidSnapshot.NotFound. Wait and try again before giving up.
        let mut waits = FRESH_ID_WAITS.iter();
        loop {
            let sent = self
                .client
                .create_tags()
                .set_resources(Some(snapshot_ids.to_vec()))
                .set_tags(Some(to_sdk_tags(tags)))
                .send()
                .await;
            match sent {
                Ok(_) => return Ok(()),
                Err(err) if err.code() == Some("InvalidSnapshot.NotFound") => match waits.next() {
                    Some(wait) => tokio::time::sleep(*wait).await,
                    None => return Err(Error::aws("ec2:CreateTags", err)),
                },
                Err(err) => return Err(Error::aws("ec2:CreateTags", err)),
            }
        }
    }

    async fn delete_snapshot(&self, snapshot_id: &str) -> Result<DeleteOutcome, Error> {
        match self
            .client
            .delete_snapshot()
            .snapshot_id(snapshot_id)
            .send()
            .await
        {
            Ok(_) => Ok(DeleteOutcome::Deleted),
            Err(err) => match err.code() {
                Some("InvalidSnapshot.NotFound") => Ok(DeleteOutcome::NotFound),
                Some("InvalidSnapshot.InUse") => {
                    Ok(DeleteOutcome::InUse(err.message().unwrap_or("in use").to_owned()))
                }
                _ => Err(Error::aws("ec2:DeleteSnapshot", err)),
            },
        }
    }

    async fn image_snapshot_ids(&self) -> Result<BTreeSet<String>, Error> {
        let mut pages = self
            .client
            .describe_images()
            .owners("self")
            .include_deprecated(true)
            .include_disabled(true)
            .into_paginator()
            .page_size(IMAGE_PAGE)
            .items()
            .send();
        let mut ids = BTreeSet::new();
        while let Some(item) = pages.next().await {
            let image = item.map_err(|e| Error::aws("ec2:DescribeImages", e))?;
            ids.extend(
                image
                    .block_device_mappings()
                    .iter()
                    .filter_map(|m| m.ebs()?.snapshot_id())
                    .map(str::to_owned),
            );
        }
        Ok(ids)
    }
}

#[cfg(test)]
#[path = "tests/ec2.rs"]
mod tests;
