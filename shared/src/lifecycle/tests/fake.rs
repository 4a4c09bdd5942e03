//! An in-memory EC2, Auto Scaling and Route 53 for the lifecycle unit
//! tests: enough state to check what the domain logic leaves behind
//! (volumes, attachments, records, completed actions), with failures that a
//! test can inject per operation.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::time::Duration;

use crate::backup::model::{Attachment, Snapshot, SnapshotState, Tags, Volume};
use crate::dns::{Change, Dns, RecordSet};
use crate::error::Error;
use crate::lifecycle::action::{LifecycleAction, Transition};
use crate::lifecycle::ports::{
    Accepted, ActionResult, Attach, BlockDevice, Instance, LifecycleApi, NewVolume, RestoreApi,
};
use crate::tags;

/// Another writer's change to the records.
pub type Meddle = Box<dyn FnOnce(&mut Vec<RecordSet>) + Send>;

#[derive(Default)]
pub struct State {
    pub instances: BTreeMap<String, Instance>,
    pub volumes: BTreeMap<String, Volume>,
    pub snapshots: Vec<Snapshot>,
    pub tokens: HashMap<String, String>,
    pub records: Vec<RecordSet>,
    /// (token or instance id, result) of every accepted completion.
    pub completed: Vec<(String, ActionResult)>,
    pub heartbeats: u32,
    pub hook_timeout: Option<Duration>,
    /// Operation name -> how many more calls fail (with the error made by
    /// `fail_with`).
    pub failures: HashMap<&'static str, u32>,
    pub fail_retryable: bool,
    /// Calls by operation name.
    pub calls: BTreeMap<&'static str, u32>,
    /// Volumes stay `creating` for this many DescribeVolumes calls.
    pub creating_polls: u32,
    /// Runs once at the next ChangeResourceRecordSets, before it applies:
    /// what another writer did between a listing and a change.
    pub before_change: Option<Meddle>,
    next: u32,
}

#[derive(Default)]
pub struct FakeCloud {
    pub state: Mutex<State>,
}

pub const AZ: &str = "eu-west-1a";

pub fn instance(id: &str, tags: &[(&str, &str)]) -> Instance {
    Instance {
        id: id.to_owned(),
        state: "running".to_owned(),
        availability_zone: AZ.to_owned(),
        private_dns_name: Some(format!("ip-10-0-0-{}.eu-west-1.compute.internal", id.len())),
        private_ip: Some("10.0.0.9".to_owned()),
        root_device_name: Some("/dev/xvda".to_owned()),
        block_devices: vec![BlockDevice {
            device: "/dev/xvda".to_owned(),
            volume_id: format!("vol-root{}", &id[2..]),
            delete_on_termination: true,
        }],
        tags: tags.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
    }
}

pub fn snapshot(id: &str, cluster: &str, name: &str, secs: i64, state: SnapshotState) -> Snapshot {
    let mut t = Tags::new();
    t.insert(tags::MANAGED_BY.into(), tags::MANAGED_BY_VALUE.into());
    t.insert(tags::CLUSTER.into(), cluster.into());
    t.insert(tags::NAME.into(), name.into());
    t.insert(tags::TIER.into(), "daily".into());
    t.insert("team".into(), "data".into());
    Snapshot {
        id: id.into(),
        volume_id: Some("vol-old".into()),
        state,
        start_time: chrono::DateTime::from_timestamp(1_800_000_000 + secs, 0),
        volume_size_gib: Some(8),
        tags: t,
    }
}

pub fn action(transition: Transition, instance_id: &str) -> LifecycleAction {
    LifecycleAction {
        transition,
        group: "kate-asg".into(),
        hook: "ninelives".into(),
        instance_id: instance_id.into(),
        token: Some(format!("tok-{instance_id}-{transition}")),
        time: None,
        origin: None,
        destination: None,
    }
}

impl FakeCloud {
    pub fn with(instances: Vec<Instance>, snapshots: Vec<Snapshot>) -> Self {
        let cloud = FakeCloud::default();
        {
            let mut s = cloud.state.lock().unwrap();
            for i in instances {
                s.instances.insert(i.id.clone(), i);
            }
            s.snapshots = snapshots;
            s.hook_timeout = Some(Duration::from_secs(3600));
        }
        cloud
    }

    pub fn fail(&self, operation: &'static str, times: u32, retryable: bool) {
        let mut s = self.state.lock().unwrap();
        s.failures.insert(operation, times);
        s.fail_retryable = retryable;
    }

    pub fn calls(&self, operation: &str) -> u32 {
        self.state
            .lock()
            .unwrap()
            .calls
            .get(operation)
            .copied()
            .unwrap_or(0)
    }

    /// Data volumes (not the root) in the fake EC2.
    pub fn data_volumes(&self) -> Vec<Volume> {
        self.state
            .lock()
            .unwrap()
            .volumes
            .values()
            .filter(|v| !v.id.starts_with("vol-root"))
            .cloned()
            .collect()
    }

    fn enter(&self, operation: &'static str) -> Result<std::sync::MutexGuard<'_, State>, Error> {
        let mut s = self.state.lock().unwrap();
        *s.calls.entry(operation).or_default() += 1;
        if let Some(n) = s.failures.get_mut(operation)
            && *n > 0
        {
            *n -= 1;
            return Err(Error::Incomplete {
                detail: format!("injected failure of {operation}"),
                retryable: s.fail_retryable,
            });
        }
        Ok(s)
    }
}

impl RestoreApi for FakeCloud {
    async fn instance(&self, instance_id: &str) -> Result<Option<Instance>, Error> {
        let s = self.enter("DescribeInstances")?;
        Ok(s.instances.get(instance_id).cloned())
    }

    async fn volume_snapshots(&self, cluster: &str, name: &str) -> Result<Vec<Snapshot>, Error> {
        let s = self.enter("DescribeSnapshots")?;
        Ok(s.snapshots
            .iter()
            .filter(|x| x.tag(tags::CLUSTER) == Some(cluster) && x.tag(tags::NAME) == Some(name))
            .cloned()
            .collect())
    }

    async fn snapshot(&self, snapshot_id: &str) -> Result<Option<Snapshot>, Error> {
        let s = self.enter("DescribeSnapshots")?;
        Ok(s.snapshots.iter().find(|x| x.id == snapshot_id).cloned())
    }

    async fn volume(&self, volume_id: &str) -> Result<Option<Volume>, Error> {
        let mut s = self.enter("DescribeVolumes")?;
        if s.creating_polls > 0 {
            s.creating_polls -= 1;
        } else if let Some(v) = s.volumes.get_mut(volume_id)
            && v.state == "creating"
        {
            v.state = "available".into();
        }
        Ok(s.volumes.get(volume_id).cloned())
    }

    async fn volumes_restored_for(&self, instance_id: &str) -> Result<Vec<Volume>, Error> {
        let s = self.enter("DescribeVolumes")?;
        Ok(s.volumes
            .values()
            .filter(|v| v.tags.get(tags::RESTORED_FOR).map(String::as_str) == Some(instance_id))
            .cloned()
            .collect())
    }

    async fn create_volume(&self, request: &NewVolume) -> Result<String, Error> {
        let mut s = self.enter("CreateVolume")?;
        if let Some(id) = s.tokens.get(&request.client_token) {
            return Ok(id.clone());
        }
        s.next += 1;
        let id = format!("vol-{:08x}", s.next);
        let size = request
            .size_gib
            .or_else(|| {
                let snap = request.snapshot_id.as_ref()?;
                s.snapshots.iter().find(|x| &x.id == snap)?.volume_size_gib
            })
            .unwrap_or(1);
        s.volumes.insert(
            id.clone(),
            Volume {
                id: id.clone(),
                state: "creating".into(),
                availability_zone: request.availability_zone.clone(),
                size_gib: size,
                tags: request.tags.clone(),
                attachments: vec![],
            },
        );
        s.tokens.insert(request.client_token.clone(), id.clone());
        Ok(id)
    }

    async fn attach_volume(&self, volume_id: &str, instance_id: &str, device: &str) -> Result<Attach, Error> {
        let mut s = self.enter("AttachVolume")?;
        let Some(volume) = s.volumes.get(volume_id).cloned() else {
            return Err(Error::resource(volume_id, "InvalidVolume.NotFound"));
        };
        let Some(instance) = s.instances.get(instance_id).cloned() else {
            return Err(Error::resource(instance_id, "InvalidInstanceID.NotFound"));
        };
        if volume.state != "available" {
            return Ok(Attach::VolumeInUse);
        }
        if instance.state != "running" {
            return Ok(Attach::NotReady);
        }
        if instance.device(device).is_some() {
            return Ok(Attach::DeviceInUse);
        }
        let v = s.volumes.get_mut(volume_id).unwrap();
        v.state = "in-use".into();
        v.attachments.push(Attachment {
            instance_id: instance_id.into(),
            device: device.into(),
            state: "attached".into(),
        });
        s.instances
            .get_mut(instance_id)
            .unwrap()
            .block_devices
            .push(BlockDevice {
                device: device.into(),
                volume_id: volume_id.into(),
                delete_on_termination: false,
            });
        Ok(Attach::Started)
    }

    async fn set_delete_on_termination(&self, instance_id: &str, device: &str) -> Result<(), Error> {
        let mut s = self.enter("ModifyInstanceAttribute")?;
        let instance = s.instances.get_mut(instance_id).unwrap();
        let d = instance
            .block_devices
            .iter_mut()
            .find(|d| d.device == device)
            .unwrap();
        d.delete_on_termination = true;
        Ok(())
    }
}

impl LifecycleApi for FakeCloud {
    async fn complete(&self, action: &LifecycleAction, result: ActionResult) -> Result<Accepted, Error> {
        let mut s = self.enter("CompleteLifecycleAction")?;
        let key = action.token.clone().unwrap_or_else(|| action.instance_id.clone());
        if s.completed.iter().any(|(k, _)| *k == key) {
            return Ok(Accepted::NotActive(format!(
                "No active Lifecycle Action found with token {key}"
            )));
        }
        s.completed.push((key, result));
        Ok(Accepted::Yes)
    }

    async fn heartbeat(&self, action: &LifecycleAction) -> Result<Accepted, Error> {
        let mut s = self.enter("RecordLifecycleActionHeartbeat")?;
        let key = action.token.clone().unwrap_or_else(|| action.instance_id.clone());
        if s.completed.iter().any(|(k, _)| *k == key) {
            return Ok(Accepted::NotActive(format!(
                "No active Lifecycle Action found with token {key}"
            )));
        }
        s.heartbeats += 1;
        Ok(Accepted::Yes)
    }

    async fn heartbeat_timeout(&self, _group: &str, _hook: &str) -> Result<Option<Duration>, Error> {
        let s = self.enter("DescribeLifecycleHooks")?;
        Ok(s.hook_timeout)
    }
}

impl Dns for FakeCloud {
    async fn record_sets(&self, name: &str) -> Result<Vec<RecordSet>, Error> {
        let s = self.enter("ListResourceRecordSets")?;
        Ok(s.records.iter().filter(|r| r.name == name).cloned().collect())
    }

    async fn change(&self, _comment: &str, changes: &[Change]) -> Result<(), Error> {
        let mut s = self.enter("ChangeResourceRecordSets")?;
        if let Some(meddle) = s.before_change.take() {
            meddle(&mut s.records);
        }
        // Route 53 applies a batch all or nothing, and deletes only exact
        // matches.
        let mut records = s.records.clone();
        for change in changes {
            match change {
                Change::Create(r) => {
                    if records.iter().any(|x| {
                        x.name == r.name
                            && x.record_type == r.record_type
                            && x.set_identifier == r.set_identifier
                    }) {
                        return Err(Error::resource(&r.name, "InvalidChangeBatch: record exists"));
                    }
                    records.push(r.clone());
                }
                Change::Upsert(r) => {
                    records.retain(|x| {
                        !(x.name == r.name
                            && x.record_type == r.record_type
                            && x.set_identifier == r.set_identifier)
                    });
                    records.push(r.clone());
                }
                Change::Delete(r) => {
                    let before = records.len();
                    records.retain(|x| x != r);
                    if records.len() == before {
                        return Err(Error::resource(&r.name, "InvalidChangeBatch: record not found"));
                    }
                }
            }
        }
        s.records = records;
        Ok(())
    }
}

/// `&FakeCloud` serves as the roles' DNS, so one cloud backs every port.
impl<T: Dns> Dns for &T {
    async fn record_sets(&self, name: &str) -> Result<Vec<RecordSet>, Error> {
        (**self).record_sets(name).await
    }
    async fn change(&self, comment: &str, changes: &[Change]) -> Result<(), Error> {
        (**self).change(comment, changes).await
    }
}
