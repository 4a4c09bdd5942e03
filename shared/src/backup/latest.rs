//! The newest backup of each (cluster, name): what a replacement instance is
//! restored from, and therefore what purge must never delete. One
//! definition, used by both, so that the snapshot a restore would pick is
//! always one purge keeps.

use std::collections::BTreeMap;

use super::model::{Snapshot, SnapshotState};
use crate::tags;

/// A snapshot that counts as a backup to restore: completed, and not marked
/// `ninelives:invalid` (taken while a volume was attached mid-run, or while an
/// application backup mode did not end).
pub fn is_restorable(snapshot: &Snapshot) -> bool {
    snapshot.state == SnapshotState::Completed && snapshot.tag(tags::INVALID).is_none()
}

/// The newest restorable snapshot of every (cluster, name) in `snapshots`,
/// by start time and then id (so every run picks the same one).
pub fn newest_by_volume(snapshots: &[Snapshot]) -> BTreeMap<(&str, &str), &Snapshot> {
    let mut newest: BTreeMap<(&str, &str), &Snapshot> = BTreeMap::new();
    for s in snapshots.iter().filter(|s| is_restorable(s)) {
        if let (Some(cluster), Some(name)) = (s.tag(tags::CLUSTER), s.tag(tags::NAME)) {
            let entry = newest.entry((cluster, name)).or_insert(s);
            if (s.start_time, &s.id) > (entry.start_time, &entry.id) {
                *entry = s;
            }
        }
    }
    newest
}

/// The newest restorable snapshot of one (cluster, name).
pub fn newest_of<'a>(snapshots: &'a [Snapshot], cluster: &str, name: &str) -> Option<&'a Snapshot> {
    newest_by_volume(snapshots).remove(&(cluster, name))
}

#[cfg(test)]
#[path = "tests/latest.rs"]
mod tests;
