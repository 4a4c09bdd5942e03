//! An in-memory [`BackupApi`] for unit tests of the orchestration (what is
//! created, deleted, retried). It behaves like EC2 where the logic depends on
//! it: tag filters, `CreateSnapshots` exclusions, "not found" on a second
//! delete, and it can be told to fail or to lag.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use chrono::Utc;

use super::model::*;
use super::ports::BackupApi;
use crate::error::Error;
use crate::tags;

#[derive(Default)]
pub struct State {
    pub volumes: Vec<Volume>,
    pub instances: Vec<InstanceDisks>,
    pub snapshots: BTreeMap<String, Snapshot>,
    pub images: BTreeSet<String>,
    pub next_id: u64,
    pub calls: BTreeMap<&'static str, usize>,
    /// Volumes whose snapshot calls fail.
    pub fail_volumes: BTreeSet<String>,
    /// Snapshots whose deletion fails.
    pub fail_deletes: BTreeSet<String>,
    /// Snapshots EC2 refuses to delete as in use (an AMI the listing missed).
    pub in_use: BTreeSet<String>,
    /// Volumes CreateSnapshots snapshots although they were excluded
    /// (attached after the instance was described).
    pub late_attached: Vec<String>,
    /// The next this many DeleteSnapshot calls answer "not found" without
    /// deleting (EC2 not yet knowing a fresh id).
    pub fresh_not_found: usize,
    /// The next this many create calls fail with EC2's per-volume rate error.
    pub rate_limited: usize,
    /// The next this many create calls make their snapshots and lose the
    /// response: the SDK's automatic retry sends the same request again,
    /// and only the second call's answer reaches the caller.
    pub lost_responses: usize,
    pub fail_describe_instances: bool,
}

#[derive(Default)]
pub struct FakeEc2 {
    pub state: Mutex<State>,
    /// Simulated latency of each mutating call.
    pub latency: Duration,
    in_flight: AtomicUsize,
    /// The most DeleteSnapshot calls in flight at once.
    pub peak_deletes: AtomicUsize,
}

impl FakeEc2 {
    pub fn with(f: impl FnOnce(&mut State)) -> Self {
        let fake = FakeEc2::default();
        f(&mut fake.state.lock().unwrap());
        fake
    }

    pub fn calls(&self, name: &str) -> usize {
        self.state.lock().unwrap().calls.get(name).copied().unwrap_or(0)
    }

    pub fn snapshots(&self) -> Vec<Snapshot> {
        self.state.lock().unwrap().snapshots.values().cloned().collect()
    }

    fn count(&self, name: &'static str) {
        *self.state.lock().unwrap().calls.entry(name).or_default() += 1;
    }

    async fn lag(&self) {
        if !self.latency.is_zero() {
            tokio::time::sleep(self.latency).await;
        }
    }

    fn new_snapshot(state: &mut State, volume_id: &str, tags: Tags) -> String {
        state.next_id += 1;
        let id = format!("snap-{:08}", state.next_id);
        state.snapshots.insert(
            id.clone(),
            Snapshot {
                id: id.clone(),
                volume_id: Some(volume_id.to_owned()),
                state: SnapshotState::Completed,
                start_time: Some(Utc::now()),
                volume_size_gib: Some(8),
                tags,
            },
        );
        id
    }
}

fn failing(what: &str) -> Error {
    Error::Incomplete {
        detail: format!("injected failure: {what}"),
        retryable: true,
    }
}

fn rate_limited() -> Error {
    Error::Aws {
        operation: "ec2:CreateSnapshot",
        code: Some("SnapshotCreationPerVolumeRateExceeded".into()),
        message: "The maximum per volume CreateSnapshot request rate has been exceeded".into(),
        retryable: true,
        source: "injected".into(),
    }
}

impl BackupApi for FakeEc2 {
    async fn tagged_volumes(&self) -> Result<Vec<Volume>, Error> {
        self.count("DescribeVolumes");
        let state = self.state.lock().unwrap();
        Ok(state
            .volumes
            .iter()
            .filter(|v| v.tags.contains_key(tags::CLUSTER))
            .cloned()
            .collect())
    }

    async fn instance_disks(&self, ids: &[String]) -> Result<Vec<InstanceDisks>, Error> {
        self.count("DescribeInstances");
        let state = self.state.lock().unwrap();
        if state.fail_describe_instances {
            return Err(failing("DescribeInstances"));
        }
        Ok(state
            .instances
            .iter()
            .filter(|i| ids.contains(&i.instance_id))
            .cloned()
            .collect())
    }

    async fn managed_snapshots(&self, query: &SnapshotQuery) -> Result<Vec<Snapshot>, Error> {
        self.count("DescribeSnapshots");
        let state = self.state.lock().unwrap();
        Ok(state
            .snapshots
            .values()
            .filter(|s| s.tag(tags::MANAGED_BY) == Some(tags::MANAGED_BY_VALUE))
            .filter(|s| query.tags.iter().all(|(k, v)| s.tag(k) == Some(v.as_str())))
            .cloned()
            .collect())
    }

    async fn create_snapshot(&self, request: &SingleSnapshot) -> Result<String, Error> {
        self.count("CreateSnapshot");
        self.lag().await;
        let mut state = self.state.lock().unwrap();
        if state.fail_volumes.contains(&request.volume_id) {
            return Err(failing(&request.volume_id));
        }
        if state.rate_limited > 0 {
            state.rate_limited -= 1;
            return Err(rate_limited());
        }
        if state.lost_responses > 0 {
            state.lost_responses -= 1;
            FakeEc2::new_snapshot(&mut state, &request.volume_id, request.tags.clone());
        }
        Ok(FakeEc2::new_snapshot(
            &mut state,
            &request.volume_id,
            request.tags.clone(),
        ))
    }

    async fn create_snapshots(&self, request: &MultiSnapshot) -> Result<Vec<(String, String)>, Error> {
        self.count("CreateSnapshots");
        self.lag().await;
        let mut state = self.state.lock().unwrap();
        if state.rate_limited > 0 {
            state.rate_limited -= 1;
            return Err(rate_limited());
        }
        let Some(instance) = state
            .instances
            .iter()
            .find(|i| i.instance_id == request.instance_id)
            .cloned()
        else {
            return Err(failing("no such instance"));
        };
        let root = instance.root_volume_id().map(str::to_owned);
        let mut volumes: Vec<String> = instance
            .volumes
            .iter()
            .map(|(_, v)| v.clone())
            .filter(|v| !(request.exclude_boot_volume && Some(v) == root.as_ref()))
            .filter(|v| !request.exclude_volume_ids.contains(v))
            .collect();
        volumes.extend(state.late_attached.clone());
        if volumes.iter().any(|v| state.fail_volumes.contains(v)) {
            return Err(failing("a volume of the set"));
        }
        if state.lost_responses > 0 {
            state.lost_responses -= 1;
            for v in &volumes {
                FakeEc2::new_snapshot(&mut state, v, request.tags.clone());
            }
        }
        Ok(volumes
            .into_iter()
            .map(|v| {
                let id = FakeEc2::new_snapshot(&mut state, &v, request.tags.clone());
                (v, id)
            })
            .collect())
    }

    async fn tag_snapshots(&self, ids: &[String], tags: &Tags) -> Result<(), Error> {
        self.count("CreateTags");
        let mut state = self.state.lock().unwrap();
        for id in ids {
            if let Some(s) = state.snapshots.get_mut(id) {
                s.tags.extend(tags.clone());
            }
        }
        Ok(())
    }

    async fn delete_snapshot(&self, id: &str) -> Result<DeleteOutcome, Error> {
        self.count("DeleteSnapshot");
        let now = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        self.peak_deletes.fetch_max(now, Ordering::SeqCst);
        self.lag().await;
        self.in_flight.fetch_sub(1, Ordering::SeqCst);
        let mut state = self.state.lock().unwrap();
        if state.fail_deletes.contains(id) {
            return Err(failing(id));
        }
        if state.fresh_not_found > 0 {
            state.fresh_not_found -= 1;
            return Ok(DeleteOutcome::NotFound);
        }
        if state.in_use.contains(id) || state.images.contains(id) {
            return Ok(DeleteOutcome::InUse(format!("{id} is in use by ami-1")));
        }
        Ok(match state.snapshots.remove(id) {
            Some(_) => DeleteOutcome::Deleted,
            None => DeleteOutcome::NotFound,
        })
    }

    async fn image_snapshot_ids(&self) -> Result<BTreeSet<String>, Error> {
        self.count("DescribeImages");
        Ok(self.state.lock().unwrap().images.clone())
    }
}

/// A volume with tags, attached to `(instance, device)` or detached.
pub fn volume(id: &str, tags: &[(&str, &str)], attached_to: Option<(&str, &str)>) -> Volume {
    Volume {
        id: id.into(),
        state: if attached_to.is_some() {
            "in-use"
        } else {
            "available"
        }
        .into(),
        availability_zone: "us-east-1a".into(),
        size_gib: 10,
        tags: tags
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect::<Tags>(),
        attachments: attached_to
            .map(|(instance, device)| Attachment {
                instance_id: instance.into(),
                device: device.into(),
                state: "attached".into(),
            })
            .into_iter()
            .collect(),
    }
}
