//! The capabilities the backup logic needs from AWS, as a narrow trait. The
//! EC2 adapter (`crate::ec2`) implements it on the SDK client; tests can
//! implement it in memory. Each method is one idea, not one API call: paging,
//! batching and error mapping are the adapter's business.

use std::collections::BTreeSet;
use std::future::Future;

use super::model::{
    DeleteOutcome, InstanceDisks, MultiSnapshot, SingleSnapshot, Snapshot, SnapshotQuery, Tags, Volume,
};
use crate::error::Error;

pub trait BackupApi: Sync {
    /// Every volume that carries a `ninelives:cluster` tag.
    fn tagged_volumes(&self) -> impl Future<Output = Result<Vec<Volume>, Error>> + Send;

    /// Root device and EBS volumes of these instances (missing ones omitted).
    fn instance_disks(
        &self,
        instance_ids: &[String],
    ) -> impl Future<Output = Result<Vec<InstanceDisks>, Error>> + Send;

    /// Snapshots this account owns with `ninelives:managed-by=ninelives`
    /// and the query's tag values, every page.
    fn managed_snapshots(
        &self,
        query: &SnapshotQuery,
    ) -> impl Future<Output = Result<Vec<Snapshot>, Error>> + Send;

    /// Starts one snapshot; returns its id.
    fn create_snapshot(&self, request: &SingleSnapshot)
    -> impl Future<Output = Result<String, Error>> + Send;

    /// Starts a multi-volume snapshot set; returns (volume id, snapshot id)
    /// for every snapshot EC2 started.
    fn create_snapshots(
        &self,
        request: &MultiSnapshot,
    ) -> impl Future<Output = Result<Vec<(String, String)>, Error>> + Send;

    /// Adds or overwrites tags on snapshots.
    fn tag_snapshots(
        &self,
        snapshot_ids: &[String],
        tags: &Tags,
    ) -> impl Future<Output = Result<(), Error>> + Send;

    fn delete_snapshot(&self, snapshot_id: &str)
    -> impl Future<Output = Result<DeleteOutcome, Error>> + Send;

    /// Ids of snapshots that this account's AMIs (any state) refer to.
    fn image_snapshot_ids(&self) -> impl Future<Output = Result<BTreeSet<String>, Error>> + Send;
}
