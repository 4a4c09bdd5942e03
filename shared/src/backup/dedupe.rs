//! Which snapshots of one (tier, period) count, and which are duplicates.
//! Pure functions over a listing, applied identically by every run.
//!
//! EC2 has no idempotency token for `CreateSnapshot(s)`, so deliveries of
//! one event that run at the same time can each create a snapshot set. Every
//! create call tags its snapshots with a `ninelives:set` token unique to that
//! call. Sets are ranked by token; walking them smallest first, a set whose
//! volumes all already have a snapshot from a smaller set is a duplicate and
//! goes whole, and any other set stays. Consequences, whatever each run can
//! see of the others' snapshots:
//!
//! - for every volume, the smallest-ranked set with a snapshot of it is
//!   never deleted, so no volume is left without its snapshot;
//! - sets are deleted whole (as far as a run can see them), so a
//!   multi-volume set is never split by the clean-up itself;
//! - when visibility is partial, duplicates may stay until a later run sees
//!   them: an extra snapshot, never a missing one.

use std::collections::{BTreeMap, BTreeSet};

use super::model::Snapshot;
use crate::tags;

/// What EC2 reports as the source of a copied snapshot.
const COPIED: &str = "vol-ffffffff";

/// The volume a snapshot was taken from, if it is one a snapshot run made
/// and still counts: pending or completed, taken from a real volume (not a
/// `CopySnapshot` copy), and not tagged with a different volume than EC2
/// reports.
pub fn source_volume(snapshot: &Snapshot) -> Option<&str> {
    let volume = snapshot.volume_id.as_deref().filter(|v| *v != COPIED)?;
    let tagged = snapshot.tag(tags::VOLUME_ID);
    (snapshot.is_live() && tagged.is_none_or(|t| t == volume)).then_some(volume)
}

/// The rank of the set a snapshot belongs to: its `ninelives:set` token, or
/// its own id for a snapshot made without one.
pub fn set_key(snapshot: &Snapshot) -> &str {
    snapshot.tag(tags::SET).unwrap_or(&snapshot.id)
}

/// For each volume, the snapshot of the listing that counts: the one of the
/// smallest-ranked set.
pub fn done_by_volume(snapshots: &[Snapshot]) -> BTreeMap<&str, &Snapshot> {
    let mut done: BTreeMap<&str, &Snapshot> = BTreeMap::new();
    for s in snapshots {
        let Some(volume) = source_volume(s) else { continue };
        let entry = done.entry(volume).or_insert(s);
        if (set_key(s), &s.id) < (set_key(entry), &entry.id) {
            *entry = s;
        }
    }
    done
}

/// Snapshot ids to delete so that duplicate sets go, per the rule above.
pub fn duplicates(snapshots: &[Snapshot]) -> Vec<String> {
    let mut sets: BTreeMap<&str, Vec<(&str, &Snapshot)>> = BTreeMap::new();
    for s in snapshots {
        if let Some(volume) = source_volume(s) {
            sets.entry(set_key(s)).or_default().push((volume, s));
        }
    }
    let mut covered: BTreeSet<&str> = BTreeSet::new();
    let mut extra = Vec::new();
    for members in sets.values() {
        // Two snapshots of one volume in one set cannot come from one call;
        // the first covers the volume, the rest are extra.
        let mut seen: BTreeSet<&str> = BTreeSet::new();
        let mut own = Vec::new();
        for (volume, s) in members {
            if seen.insert(volume) {
                own.push((*volume, *s));
            } else {
                extra.push(s.id.clone());
            }
        }
        if own.iter().all(|(volume, _)| covered.contains(volume)) {
            extra.extend(own.iter().map(|(_, s)| s.id.clone()));
        } else {
            covered.extend(own.iter().map(|(volume, _)| *volume));
        }
    }
    extra.sort();
    extra
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backup::model::SnapshotState;

    fn snap(id: &str, volume: &str, set: Option<&str>, state: SnapshotState) -> Snapshot {
        let mut tags = crate::backup::model::Tags::new();
        if let Some(set) = set {
            tags.insert(tags::SET.into(), set.into());
        }
        Snapshot {
            id: id.into(),
            volume_id: Some(volume.into()),
            state,
            start_time: None,
            tags,
        }
    }

    use SnapshotState::{Completed as C, Error as E, Pending as P};

    #[test]
    fn the_smallest_set_wins_whole() {
        // Two runs each made a set of vol-1 and vol-2; the one with the
        // larger token goes, whatever the snapshot ids say.
        let list = vec![
            snap("snap-1", "vol-1", Some("b"), C),
            snap("snap-9", "vol-2", Some("b"), C),
            snap("snap-5", "vol-1", Some("a"), P),
            snap("snap-2", "vol-2", Some("a"), C),
        ];
        assert_eq!(duplicates(&list), ["snap-1", "snap-9"]);
        let done = done_by_volume(&list);
        assert_eq!(done["vol-1"].id, "snap-5");
        assert_eq!(done["vol-2"].id, "snap-2");
    }

    #[test]
    fn a_partly_visible_set_does_not_split_the_winner() {
        // Set a is only partly listed (vol-2's member not yet visible): b
        // is still the only snapshot seen of vol-2, so b stays whole.
        let list = vec![
            snap("snap-1", "vol-1", Some("a"), C),
            snap("snap-3", "vol-1", Some("b"), C),
            snap("snap-4", "vol-2", Some("b"), C),
        ];
        assert!(duplicates(&list).is_empty());
    }

    #[test]
    fn every_volume_keeps_a_snapshot_under_any_partial_view() {
        // Three racing sets over three volumes; try every subset of what a
        // run may see, apply each run's deletions to the full truth, and
        // check no volume is left without a snapshot.
        let truth = vec![
            snap("s-a1", "vol-1", Some("a"), C),
            snap("s-a2", "vol-2", Some("a"), C),
            snap("s-b1", "vol-1", Some("b"), C),
            snap("s-b2", "vol-2", Some("b"), C),
            snap("s-b3", "vol-3", Some("b"), C),
            snap("s-c3", "vol-3", Some("c"), C),
            snap("s-c2", "vol-2", Some("c"), C),
        ];
        let n = truth.len();
        for first in 0u32..(1 << n) {
            for second in 0u32..(1 << n) {
                let view = |mask: u32| -> Vec<Snapshot> {
                    (0..n)
                        .filter(|i| mask & (1 << i) != 0)
                        .map(|i| truth[i].clone())
                        .collect()
                };
                let mut deleted: BTreeSet<String> = duplicates(&view(first)).into_iter().collect();
                deleted.extend(duplicates(&view(second)));
                for volume in ["vol-1", "vol-2", "vol-3"] {
                    assert!(
                        truth
                            .iter()
                            .any(|s| s.volume_id.as_deref() == Some(volume) && !deleted.contains(&s.id)),
                        "{volume} lost every snapshot with views {first:b} and {second:b}"
                    );
                }
            }
        }
        // Seeing everything: c's volumes are all covered by a and b, so c
        // goes; b stays whole because it alone has vol-3 from an earlier set.
        assert_eq!(duplicates(&truth), ["s-c2", "s-c3"]);
    }

    #[test]
    fn only_live_snapshots_of_real_volumes_count() {
        let mut copy = snap("snap-7", COPIED, Some("a"), C);
        copy.tags.insert(tags::VOLUME_ID.into(), "vol-1".into());
        let mut mislabelled = snap("snap-8", "vol-2", Some("a"), C);
        mislabelled.tags.insert(tags::VOLUME_ID.into(), "vol-1".into());
        let list = vec![
            snap("snap-1", "vol-1", Some("b"), C),
            snap("snap-2", "vol-1", Some("a"), E),
            copy,
            mislabelled,
        ];
        assert!(
            duplicates(&list).is_empty(),
            "errored, copied and mislabelled snapshots are left alone"
        );
        assert_eq!(done_by_volume(&list).len(), 1);
        assert_eq!(done_by_volume(&list)["vol-1"].id, "snap-1");
    }

    #[test]
    fn snapshots_without_a_set_rank_by_id() {
        let list = vec![snap("snap-2", "vol-1", None, C), snap("snap-1", "vol-1", None, C)];
        assert_eq!(duplicates(&list), ["snap-2"]);
    }
}
