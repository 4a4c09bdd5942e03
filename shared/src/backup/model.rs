//! What the backup logic knows about volumes, instances and snapshots: plain
//! data, filled in by an adapter (EC2) and read by pure functions.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::Serialize;

pub type Tags = BTreeMap<String, String>;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Volume {
    pub id: String,
    /// `creating`, `available`, `in-use`, `deleting`, `deleted`, `error`.
    pub state: String,
    pub availability_zone: String,
    pub size_gib: i32,
    pub tags: Tags,
    pub attachments: Vec<Attachment>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attachment {
    pub instance_id: String,
    pub device: String,
    /// `attaching`, `attached`, `detaching`, `detached`, `busy`.
    pub state: String,
}

/// The EBS volumes of an instance, as `CreateSnapshots` will see them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstanceDisks {
    pub instance_id: String,
    pub root_device_name: Option<String>,
    /// (device, volume id) for every EBS block device mapping.
    pub volumes: Vec<(String, String)>,
}

impl InstanceDisks {
    /// The boot volume's id, if the instance has an EBS root.
    pub fn root_volume_id(&self) -> Option<&str> {
        let root = self.root_device_name.as_deref()?;
        self.volumes
            .iter()
            .find(|(device, _)| device == root)
            .map(|(_, id)| id.as_str())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SnapshotState {
    Pending,
    Completed,
    Error,
    /// `recoverable`, `recovering` (archive tiering) and any newer state.
    Other,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    pub id: String,
    /// The `VolumeId` EC2 reports (set even when tags are missing).
    pub volume_id: Option<String>,
    pub state: SnapshotState,
    pub start_time: Option<DateTime<Utc>>,
    /// Size of the source volume, which is the smallest volume EC2 restores
    /// it to.
    pub volume_size_gib: Option<i32>,
    pub tags: Tags,
}

impl Snapshot {
    pub fn tag(&self, key: &str) -> Option<&str> {
        self.tags.get(key).map(String::as_str).filter(|v| !v.is_empty())
    }

    /// Pending or completed: the snapshot exists or will.
    pub fn is_live(&self) -> bool {
        matches!(self.state, SnapshotState::Pending | SnapshotState::Completed)
    }
}

/// A new snapshot of one volume (`CreateSnapshot`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SingleSnapshot {
    pub volume_id: String,
    pub description: String,
    pub tags: Tags,
}

/// New snapshots of some of an instance's volumes, taken at one point in
/// time (`CreateSnapshots`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MultiSnapshot {
    pub instance_id: String,
    pub exclude_boot_volume: bool,
    pub exclude_volume_ids: Vec<String>,
    pub description: String,
    /// Tags every snapshot of the set gets; per-volume tags follow with
    /// `CreateTags`, as `CreateSnapshots` takes one tag set for all.
    pub tags: Tags,
}

/// What happened to a `DeleteSnapshot`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeleteOutcome {
    Deleted,
    /// It was already gone (a duplicate run got there first).
    NotFound,
    /// EC2 refused: an AMI or another resource uses it.
    InUse(String),
}

/// Which managed snapshots to list.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SnapshotQuery {
    /// Only these tag values (`ninelives:tier`, `ninelives:period`, ...).
    pub tags: Vec<(&'static str, String)>,
}
