//! The capabilities the lifecycle hook needs, as narrow traits: EC2 for the
//! instance and its data volume ([`RestoreApi`], implemented in
//! `crate::ec2`), Auto Scaling for the action itself ([`LifecycleApi`],
//! `crate::autoscaling`), and the cluster roles ([`Roles`],
//! `super::roles`). Tests implement them in memory.

use std::future::Future;
use std::time::Duration;

use serde::Serialize;

use super::action::LifecycleAction;
use super::node::NodePlan;
use crate::backup::model::{Snapshot, Tags, Volume};
use crate::error::Error;

/// An EC2 instance as the lifecycle hook needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Instance {
    pub id: String,
    /// `pending`, `running`, `shutting-down`, `terminated`, `stopping`,
    /// `stopped`.
    pub state: String,
    pub availability_zone: String,
    pub private_dns_name: Option<String>,
    pub private_ip: Option<String>,
    pub root_device_name: Option<String>,
    pub block_devices: Vec<BlockDevice>,
    pub tags: Tags,
}

impl Instance {
    pub fn device(&self, name: &str) -> Option<&BlockDevice> {
        self.block_devices.iter().find(|d| d.device == name)
    }

    /// Gone or going: no volume can be attached, no action is pending.
    pub fn is_gone(&self) -> bool {
        matches!(self.state.as_str(), "shutting-down" | "terminated")
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlockDevice {
    pub device: String,
    pub volume_id: String,
    pub delete_on_termination: bool,
}

/// A volume to create.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NewVolume {
    pub availability_zone: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub snapshot_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub size_gib: Option<i32>,
    pub volume_type: String,
    pub tags: Tags,
    /// EC2's idempotency token: concurrent deliveries of one event create
    /// one volume.
    pub client_token: String,
}

/// How `AttachVolume` ended, when EC2 refused for a reason the caller can
/// look into (anything else is an error).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Attach {
    Started,
    /// `VolumeInUse`: attached already (perhaps by a duplicate delivery).
    VolumeInUse,
    /// The device name is taken on the instance.
    DeviceInUse,
    /// `IncorrectState`: the instance (or the volume) is not ready yet.
    NotReady,
}

pub trait RestoreApi: Sync {
    /// The instance, or `None` when EC2 does not know it.
    fn instance(&self, instance_id: &str) -> impl Future<Output = Result<Option<Instance>, Error>> + Send;

    /// Managed snapshots of one (cluster, name), every page.
    fn volume_snapshots(
        &self,
        cluster: &str,
        name: &str,
    ) -> impl Future<Output = Result<Vec<Snapshot>, Error>> + Send;

    /// Any snapshot this account can restore, by id; `None` when EC2 does
    /// not know it.
    fn snapshot(&self, snapshot_id: &str) -> impl Future<Output = Result<Option<Snapshot>, Error>> + Send;

    fn volume(&self, volume_id: &str) -> impl Future<Output = Result<Option<Volume>, Error>> + Send;

    /// Volumes tagged `ninelives:restored-for` this instance.
    fn volumes_restored_for(
        &self,
        instance_id: &str,
    ) -> impl Future<Output = Result<Vec<Volume>, Error>> + Send;

    /// Creates (or, for a repeated client token, finds) a volume; its id.
    fn create_volume(&self, request: &NewVolume) -> impl Future<Output = Result<String, Error>> + Send;

    fn attach_volume(
        &self,
        volume_id: &str,
        instance_id: &str,
        device: &str,
    ) -> impl Future<Output = Result<Attach, Error>> + Send;

    /// Marks the volume at `device` to be deleted with the instance.
    fn set_delete_on_termination(
        &self,
        instance_id: &str,
        device: &str,
    ) -> impl Future<Output = Result<(), Error>> + Send;
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum ActionResult {
    Continue,
    Abandon,
}

impl ActionResult {
    pub fn as_str(self) -> &'static str {
        match self {
            ActionResult::Continue => "CONTINUE",
            ActionResult::Abandon => "ABANDON",
        }
    }
}

/// Whether Auto Scaling still had the action.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Accepted {
    Yes,
    /// "No active Lifecycle Action found": completed already (a duplicate
    /// delivery got there first) or timed out (the hook's default result
    /// applied). The message is kept for the report.
    NotActive(String),
}

pub trait LifecycleApi: Sync {
    fn complete(
        &self,
        action: &LifecycleAction,
        result: ActionResult,
    ) -> impl Future<Output = Result<Accepted, Error>> + Send;

    fn heartbeat(&self, action: &LifecycleAction) -> impl Future<Output = Result<Accepted, Error>> + Send;

    /// The hook's heartbeat timeout, `None` when the hook is not found.
    fn heartbeat_timeout(
        &self,
        group: &str,
        hook: &str,
    ) -> impl Future<Output = Result<Option<Duration>, Error>> + Send;
}

/// What a role did for a node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RoleChange {
    pub role: String,
    /// `upserted`, `unchanged`, `deleted`, `already-gone`, `none`,
    /// `would-upsert`, `would-delete`, `enqueued`, `would-enqueue`, or the
    /// Redis chain's status.
    pub action: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<serde_json::Value>,
}

impl RoleChange {
    pub fn changed(&self) -> bool {
        matches!(self.action.as_str(), "upserted" | "deleted" | "enqueued")
    }
}

/// Joining and leaving a node's cluster.
pub trait Roles: Sync {
    fn join(
        &self,
        instance: &Instance,
        node: &NodePlan,
        dry_run: bool,
    ) -> impl Future<Output = Result<RoleChange, Error>> + Send;

    fn leave(
        &self,
        instance: &Instance,
        node: &NodePlan,
        dry_run: bool,
    ) -> impl Future<Output = Result<RoleChange, Error>> + Send;
}
