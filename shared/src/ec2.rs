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
        tags: from_sdk_tags(s.tags()),
    })
}

impl BackupApi for Ec2 {
    async fn tagged_volumes(&self) -> Result<Vec<Volume>, Error> {
        let mut pages = self
            .client
            .describe_volumes()
            .filters(filter("tag-key", [tags::CLUSTER]))
            .into_paginator()
            .page_size(VOLUME_PAGE)
            .items()
            .send();
        let mut volumes = Vec::new();
        while let Some(item) = pages.next().await {
            let v = item.map_err(|e| Error::aws("ec2:DescribeVolumes", e))?;
            let Some(id) = v.volume_id() else { continue };
            volumes.push(Volume {
                id: id.to_owned(),
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
            });
        }
        Ok(volumes)
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
mod tests {
    //! The adapter against canned EC2 responses (the SDK's own test HTTP
    //! client), for what moto cannot show: throttling answered by retries,
    //! EC2's error codes, and paging driven by `NextToken`.

    use std::sync::{Arc, Mutex};
    use std::time::Duration;

    use aws_sdk_ec2::config::{BehaviorVersion, Credentials, Region};
    use aws_smithy_http_client::test_util::infallible_client_fn;

    use super::*;

    type Requests = Arc<Mutex<Vec<String>>>;

    /// An adapter whose HTTP client answers with `respond(body, n)` for the
    /// n-th request whose form body is `body`, recording every body.
    fn adapter(respond: impl Fn(&str, usize) -> (u16, String) + Send + Sync + 'static) -> (Ec2, Requests) {
        let seen: Requests = Arc::default();
        let log = seen.clone();
        let http = infallible_client_fn(move |request| {
            let body = String::from_utf8_lossy(request.body().bytes().unwrap_or_default()).into_owned();
            let n = {
                let mut log = log.lock().unwrap();
                log.push(body.clone());
                log.len()
            };
            let (status, xml) = respond(&body, n);
            http::Response::builder().status(status).body(xml).unwrap()
        });
        let config = aws_sdk_ec2::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new("us-east-1"))
            .credentials_provider(Credentials::for_tests())
            .retry_config(crate::aws::retry_config().with_initial_backoff(Duration::from_millis(1)))
            .timeout_config(crate::aws::timeout_config())
            .http_client(http)
            .build();
        (Ec2::new(Client::from_conf(config)), seen)
    }

    fn error(code: &str) -> String {
        format!(
            "<Response><Errors><Error><Code>{code}</Code><Message>{code} happened</Message></Error></Errors><RequestID>r-1</RequestID></Response>"
        )
    }

    const DELETED: &str = r#"<DeleteSnapshotResponse xmlns="http://ec2.amazonaws.com/doc/2016-11-15/"><requestId>r-2</requestId><return>true</return></DeleteSnapshotResponse>"#;

    #[tokio::test]
    async fn throttled_deletes_are_retried_until_they_succeed() {
        let (ec2, seen) = adapter(|_, n| {
            if n <= 3 {
                (503, error("RequestLimitExceeded"))
            } else {
                (200, DELETED.to_owned())
            }
        });
        assert_eq!(
            ec2.delete_snapshot("snap-1").await.unwrap(),
            DeleteOutcome::Deleted
        );
        let seen = seen.lock().unwrap();
        assert_eq!(seen.len(), 4, "three throttled attempts, then success");
        assert!(
            seen.iter()
                .all(|b| b.contains("Action=DeleteSnapshot") && b.contains("SnapshotId=snap-1"))
        );
    }

    #[tokio::test]
    async fn persistent_throttling_is_a_retryable_error_after_the_attempts() {
        let (ec2, seen) = adapter(|_, _| (503, error("RequestLimitExceeded")));
        let err = ec2.delete_snapshot("snap-1").await.unwrap_err();
        assert_eq!(seen.lock().unwrap().len(), crate::aws::MAX_ATTEMPTS as usize);
        assert!(err.is_retryable());
        assert_eq!(err.aws_code(), Some("RequestLimitExceeded"));
        assert!(err.to_string().contains("ec2:DeleteSnapshot"), "{err}");
    }

    const TAGGED: &str = r#"<CreateTagsResponse xmlns="http://ec2.amazonaws.com/doc/2016-11-15/"><requestId>r-3</requestId><return>true</return></CreateTagsResponse>"#;

    #[tokio::test]
    async fn tagging_a_fresh_snapshot_waits_for_ec2_to_know_it() {
        let (ec2, seen) = adapter(|_, n| {
            if n <= 2 {
                (400, error("InvalidSnapshot.NotFound"))
            } else {
                (200, TAGGED.to_owned())
            }
        });
        let tags: Tags = [(tags::NAME.to_owned(), "main".to_owned())].into();
        ec2.tag_snapshots(&["snap-new".to_owned()], &tags).await.unwrap();
        let seen = seen.lock().unwrap();
        assert_eq!(seen.len(), 3);
        assert!(
            seen[2].contains("Action=CreateTags") && seen[2].contains("ResourceId.1=snap-new"),
            "{}",
            seen[2]
        );
    }

    #[tokio::test]
    async fn delete_outcomes_follow_ec2_error_codes() {
        for (code, expected) in [
            ("InvalidSnapshot.NotFound", Some(DeleteOutcome::NotFound)),
            (
                "InvalidSnapshot.InUse",
                Some(DeleteOutcome::InUse("InvalidSnapshot.InUse happened".into())),
            ),
            ("UnauthorizedOperation", None),
        ] {
            let (ec2, seen) = adapter(move |_, _| (400, error(code)));
            let got = ec2.delete_snapshot("snap-1").await;
            match expected {
                Some(outcome) => assert_eq!(got.unwrap(), outcome),
                None => {
                    let err = got.unwrap_err();
                    assert!(!err.is_retryable(), "{err}");
                    assert_eq!(err.aws_code(), Some(code));
                }
            }
            assert_eq!(seen.lock().unwrap().len(), 1, "{code} is not retried");
        }
    }

    fn snapshot_item(id: &str, managed: bool) -> String {
        let tag = if managed {
            "<item><key>ninelives:managed-by</key><value>ninelives</value></item>"
        } else {
            "<item><key>owner</key><value>someone</value></item>"
        };
        format!(
            "<item><snapshotId>{id}</snapshotId><volumeId>vol-1</volumeId><status>completed</status>\
             <startTime>2026-11-24T12:00:00.000Z</startTime><tagSet>{tag}</tagSet></item>"
        )
    }

    #[tokio::test]
    async fn managed_snapshots_follow_every_page_and_drop_unmanaged_answers() {
        let (ec2, seen) = adapter(|body, _| {
            let (items, next) = if body.contains("NextToken=page-3") {
                (vec![snapshot_item("snap-5", true)], "")
            } else if body.contains("NextToken=page-2") {
                (
                    vec![snapshot_item("snap-3", true), snapshot_item("snap-4", false)],
                    "<nextToken>page-3</nextToken>",
                )
            } else {
                (
                    vec![snapshot_item("snap-1", true), snapshot_item("snap-2", true)],
                    "<nextToken>page-2</nextToken>",
                )
            };
            (
                200,
                format!(
                    r#"<DescribeSnapshotsResponse xmlns="http://ec2.amazonaws.com/doc/2016-11-15/"><requestId>r</requestId><snapshotSet>{}</snapshotSet>{next}</DescribeSnapshotsResponse>"#,
                    items.concat()
                ),
            )
        });
        let query = SnapshotQuery {
            tags: vec![(tags::TIER, "daily".to_owned())],
        };
        let got: Vec<String> = ec2
            .managed_snapshots(&query)
            .await
            .unwrap()
            .into_iter()
            .map(|s| s.id)
            .collect();
        assert_eq!(got, ["snap-1", "snap-2", "snap-3", "snap-5"]);
        let seen = seen.lock().unwrap();
        assert_eq!(seen.len(), 3);
        for body in seen.iter() {
            assert!(body.contains("MaxResults=1000"), "{body}");
            assert!(body.contains("Owner.1=self"), "{body}");
            assert!(
                body.contains("Filter.1.Name=tag%3Aninelives%3Amanaged-by"),
                "{body}"
            );
            assert!(body.contains("Filter.2.Name=tag%3Aninelives%3Atier"), "{body}");
        }
    }
}
