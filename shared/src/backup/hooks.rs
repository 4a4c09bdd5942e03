//! The seam for application backup modes. A group of volumes whose tags say
//! `ninelives:app=<app>` is snapshotted between the application's `before`
//! and `after` (for PostgreSQL: `pg_backup_start` and `pg_backup_stop`, in
//! `super::pg_hooks`). Without a hook for the app the snapshot is still
//! taken, crash-consistent as `CreateSnapshots` makes it, and the summary says
//! so.

use std::future::Future;

use super::model::Tags;
use super::select::Group;
use crate::error::Error;

pub trait AppHooks: Sync {
    /// What `before` hands to `after` (an open database session, say).
    type Guard: Send;

    /// Whether this build can put `app` into backup mode.
    fn supports(&self, app: &str) -> bool;

    /// Called before a supported group's snapshot is started.
    fn before(&self, group: &Group) -> impl Future<Output = Result<Self::Guard, Error>> + Send;

    /// Whether a snapshot of `group` (whose app this build supports) with
    /// `snapshot_tags` was taken in backup mode: it carries what `after`
    /// returned. One without does not count as the group's snapshot, and
    /// the run replaces it: a run cut off between the snapshot call and
    /// tagging (the invocation's deadline, a Lambda that died) left it
    /// behind, and its backup mode never ended properly.
    fn proves_backup(&self, group: &Group, snapshot_tags: &Tags) -> bool;

    /// Called after the snapshot call returned, whether it succeeded or not
    /// (`snapshot_ids` is empty on failure), so backup mode is ended
    /// whenever the invocation's deadline leaves time to. Returns tags to
    /// add to the snapshots (a backup label, say).
    fn after(
        &self,
        group: &Group,
        guard: Self::Guard,
        snapshot_ids: &[String],
    ) -> impl Future<Output = Result<Tags, Error>> + Send;
}

/// No application hooks: every app tag is reported as unsupported.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoAppHooks;

impl AppHooks for NoAppHooks {
    type Guard = ();

    fn supports(&self, _app: &str) -> bool {
        false
    }

    fn proves_backup(&self, _group: &Group, _snapshot_tags: &Tags) -> bool {
        true
    }

    async fn before(&self, _group: &Group) -> Result<(), Error> {
        Ok(())
    }

    async fn after(&self, _group: &Group, _guard: (), _snapshot_ids: &[String]) -> Result<Tags, Error> {
        Ok(Tags::new())
    }
}
