//! [`RestoreApi`] on the EC2 client: the instance a lifecycle action is
//! about, the snapshots to restore from, and the volume made from them. EC2
//! error codes that mean "not there" or "already done" become answers here;
//! everything else stays an error with its code.

use aws_sdk_ec2::error::ProvideErrorMetadata;
use aws_sdk_ec2::types::{
    EbsInstanceBlockDeviceSpecification, InstanceBlockDeviceMappingSpecification, ResourceType,
    TagSpecification, VolumeType,
};

use super::{Ec2, filter, from_sdk_tags, snapshot_from_sdk, to_sdk_tags, volume_from_sdk};
use crate::backup::model::{Snapshot, SnapshotQuery, Volume};
use crate::backup::ports::BackupApi;
use crate::error::Error;
use crate::lifecycle::ports::{Attach, BlockDevice, Instance, NewVolume, RestoreApi};
use crate::tags;

fn code_of<E: ProvideErrorMetadata>(
    err: &aws_smithy_runtime_api::client::result::SdkError<E, aws_smithy_runtime_api::http::Response>,
) -> Option<&str> {
    err.as_service_error().and_then(|e| e.code())
}

fn instance_from_sdk(i: &aws_sdk_ec2::types::Instance) -> Option<Instance> {
    let non_empty = |s: Option<&str>| s.filter(|v| !v.is_empty()).map(str::to_owned);
    Some(Instance {
        id: i.instance_id()?.to_owned(),
        state: i
            .state()
            .and_then(|s| s.name())
            .map(|n| n.as_str().to_owned())
            .unwrap_or_default(),
        availability_zone: i
            .placement()
            .and_then(|p| p.availability_zone())
            .unwrap_or_default()
            .to_owned(),
        private_dns_name: non_empty(i.private_dns_name()),
        private_ip: non_empty(i.private_ip_address()),
        root_device_name: non_empty(i.root_device_name()),
        block_devices: i
            .block_device_mappings()
            .iter()
            .filter_map(|m| {
                let ebs = m.ebs()?;
                Some(BlockDevice {
                    device: m.device_name()?.to_owned(),
                    volume_id: ebs.volume_id()?.to_owned(),
                    delete_on_termination: ebs.delete_on_termination().unwrap_or(false),
                })
            })
            .collect(),
        tags: from_sdk_tags(i.tags()),
    })
}

impl RestoreApi for Ec2 {
    async fn instance(&self, instance_id: &str) -> Result<Option<Instance>, Error> {
        let out = match self
            .client
            .describe_instances()
            .instance_ids(instance_id)
            .send()
            .await
        {
            Ok(out) => out,
            Err(e)
                if matches!(
                    code_of(&e),
                    Some("InvalidInstanceID.NotFound" | "InvalidInstanceID.Malformed")
                ) =>
            {
                return Ok(None);
            }
            Err(e) => return Err(Error::aws("ec2:DescribeInstances", e)),
        };
        Ok(out
            .reservations()
            .iter()
            .flat_map(|r| r.instances())
            .filter(|i| i.instance_id() == Some(instance_id))
            .find_map(instance_from_sdk))
    }

    async fn volume_snapshots(&self, cluster: &str, name: &str) -> Result<Vec<Snapshot>, Error> {
        let query = SnapshotQuery {
            tags: vec![(tags::CLUSTER, cluster.to_owned()), (tags::NAME, name.to_owned())],
        };
        self.managed_snapshots(&query).await
    }

    async fn snapshot(&self, snapshot_id: &str) -> Result<Option<Snapshot>, Error> {
        match self
            .client
            .describe_snapshots()
            .snapshot_ids(snapshot_id)
            .send()
            .await
        {
            Ok(out) => Ok(out
                .snapshots()
                .iter()
                .filter(|s| s.snapshot_id() == Some(snapshot_id))
                .find_map(snapshot_from_sdk)),
            Err(e)
                if matches!(
                    code_of(&e),
                    Some("InvalidSnapshot.NotFound" | "InvalidSnapshotID.Malformed")
                ) =>
            {
                Ok(None)
            }
            Err(e) => Err(Error::aws("ec2:DescribeSnapshots", e)),
        }
    }

    async fn volume(&self, volume_id: &str) -> Result<Option<Volume>, Error> {
        match self.client.describe_volumes().volume_ids(volume_id).send().await {
            Ok(out) => Ok(out
                .volumes()
                .iter()
                .filter(|v| v.volume_id() == Some(volume_id))
                .find_map(volume_from_sdk)),
            Err(e) if code_of(&e) == Some("InvalidVolume.NotFound") => Ok(None),
            Err(e) => Err(Error::aws("ec2:DescribeVolumes", e)),
        }
    }

    async fn volumes_restored_for(&self, instance_id: &str) -> Result<Vec<Volume>, Error> {
        let mut volumes = self
            .volumes_where(filter(&format!("tag:{}", tags::RESTORED_FOR), [instance_id]))
            .await?;
        // Checked again: an endpoint that ignored the filter must not hand
        // us someone else's volume.
        volumes.retain(|v| v.tags.get(tags::RESTORED_FOR).map(String::as_str) == Some(instance_id));
        Ok(volumes)
    }

    async fn create_volume(&self, request: &NewVolume) -> Result<String, Error> {
        let out = self
            .client
            .create_volume()
            .availability_zone(&request.availability_zone)
            .set_snapshot_id(request.snapshot_id.clone())
            .set_size(request.size_gib)
            .volume_type(VolumeType::from(request.volume_type.as_str()))
            .tag_specifications(
                TagSpecification::builder()
                    .resource_type(ResourceType::Volume)
                    .set_tags(Some(to_sdk_tags(&request.tags)))
                    .build(),
            )
            .client_token(&request.client_token)
            .send()
            .await
            .map_err(|e| {
                // Another delivery used this instance's token for a volume
                // from another snapshot (a backup completed between the two
                // listings): its volume exists, and the retry finds it.
                if code_of(&e) == Some("IdempotentParameterMismatch") {
                    Error::Incomplete {
                        detail: format!(
                            "a concurrent delivery created this instance's volume with other parameters (client token {}); retrying picks it up",
                            request.client_token
                        ),
                        retryable: true,
                    }
                } else {
                    Error::aws("ec2:CreateVolume", e)
                }
            })?;
        out.volume_id()
            .map(str::to_owned)
            .ok_or_else(|| Error::Incomplete {
                detail: "ec2:CreateVolume answered without a volume id".to_owned(),
                retryable: true,
            })
    }

    async fn attach_volume(&self, volume_id: &str, instance_id: &str, device: &str) -> Result<Attach, Error> {
        let sent = self
            .client
            .attach_volume()
            .volume_id(volume_id)
            .instance_id(instance_id)
            .device(device)
            .send()
            .await;
        match sent {
            Ok(_) => Ok(Attach::Started),
            Err(e) => {
                let message = e.as_service_error().and_then(|s| s.message()).unwrap_or_default();
                match code_of(&e) {
                    Some("VolumeInUse") => Ok(Attach::VolumeInUse),
                    Some("InvalidParameterValue") if message.contains("already in use") => {
                        Ok(Attach::DeviceInUse)
                    }
                    Some("IncorrectState" | "IncorrectInstanceState") => Ok(Attach::NotReady),
                    _ => Err(Error::aws("ec2:AttachVolume", e)),
                }
            }
        }
    }

    async fn set_delete_on_termination(&self, instance_id: &str, device: &str) -> Result<(), Error> {
        self.client
            .modify_instance_attribute()
            .instance_id(instance_id)
            .block_device_mappings(
                InstanceBlockDeviceMappingSpecification::builder()
                    .device_name(device)
                    .ebs(
                        EbsInstanceBlockDeviceSpecification::builder()
                            .delete_on_termination(true)
                            .build(),
                    )
                    .build(),
            )
            .send()
            .await
            .map_err(|e| Error::aws("ec2:ModifyInstanceAttribute", e))?;
        Ok(())
    }
}
