//! Which snapshots of one (tier, period) count, and which are duplicates.
//! Pure functions over a listing, applied identically by every run.
//!
//! EC2 has no idempotency token for `CreateSnapshot(s)`, so deliveries of
//! one event that run at the same time can each create a snapshot set, and
//! EC2's eventually consistent listing can show a run only part of another
//! run's set. Every create call tags its snapshots with a `ninelives:set`
//! token unique to the call and the `ninelives:set-size` it asked for.
//!
//! - A set is *complete* in a listing when a snapshot of each of its
//!   declared volumes is listed. Only complete sets count as a volume's
//!   backup, and only complete sets are ever deleted, whole.
//! - Sets are ranked the same way by every run: larger sets first (a
//!   crash-consistent set beats single snapshots), then by token.
//! - Walking the ranking, a complete set whose volumes all already have a
//!   snapshot from an earlier set is a duplicate; any other set stays.
//!
//! So, whatever each run can see: the first-ranked set holding a snapshot
//! of a volume is never deleted (no volume is left without its snapshot),
//! and no set is ever partly deleted by the clean-up. Partial visibility
//! only delays the clean-up: an extra snapshot, never a missing one.

use std::collections::{BTreeMap, BTreeSet};

use super::model::Snapshot;
use crate::tags;

/// What EC2 reports as the source of a copied snapshot.
const COPIED: &str = "vol-ffffffff";

/// The volume a snapshot was taken from, if it is one a snapshot run made
/// and still counts: pending or completed, not marked invalid, taken from a
/// real volume (not a `CopySnapshot` copy), and not tagged with another
/// volume than EC2 reports.
pub fn source_volume(snapshot: &Snapshot) -> Option<&str> {
    let volume = snapshot.volume_id.as_deref().filter(|v| *v != COPIED)?;
    let tagged = snapshot.tag(tags::VOLUME_ID);
    let counts =
        snapshot.is_live() && snapshot.tag(tags::INVALID).is_none() && tagged.is_none_or(|t| t == volume);
    counts.then_some(volume)
}

/// One create call's snapshots, as far as a listing shows them.
#[derive(Debug)]
pub struct SetView<'a> {
    /// The `ninelives:set` token, or the snapshot's own id without one.
    pub key: &'a str,
    /// Declared volumes: `ninelives:set-size`, 1 for a snapshot without a
    /// set, unknown (never complete) for a set without a readable size.
    pub size: Option<usize>,
    /// The snapshot of each volume: the earliest (start time, then id) when
    /// a retried call made two.
    pub members: BTreeMap<&'a str, &'a Snapshot>,
    /// Further snapshots of a volume already in `members`.
    pub extras: Vec<&'a Snapshot>,
}

impl SetView<'_> {
    pub fn is_complete(&self) -> bool {
        self.size.is_some_and(|n| self.members.len() >= n)
    }

    pub fn holds(&self, volume: &str) -> bool {
        self.members.contains_key(volume)
    }
}

/// The sets of a listing, in rank order.
pub fn ranked_sets(snapshots: &[Snapshot]) -> Vec<SetView<'_>> {
    let mut by_key: BTreeMap<&str, Vec<(&str, &Snapshot)>> = BTreeMap::new();
    let mut sizes: BTreeMap<&str, Option<usize>> = BTreeMap::new();
    for s in snapshots {
        let Some(volume) = source_volume(s) else { continue };
        let (key, size) = match s.tag(tags::SET) {
            Some(set) => (set, s.tag(tags::SET_SIZE).and_then(|n| n.parse().ok())),
            None => (s.id.as_str(), Some(1)),
        };
        by_key.entry(key).or_default().push((volume, s));
        sizes.entry(key).or_insert(size);
    }
    let mut sets: Vec<SetView> = by_key
        .into_iter()
        .map(|(key, mut snaps)| {
            snaps.sort_by(|a, b| (a.1.start_time, &a.1.id).cmp(&(b.1.start_time, &b.1.id)));
            let mut members = BTreeMap::new();
            let mut extras = Vec::new();
            for (volume, s) in snaps {
                if members.contains_key(volume) {
                    extras.push(s);
                } else {
                    members.insert(volume, s);
                }
            }
            SetView {
                key,
                size: sizes.get(key).copied().flatten(),
                members,
                extras,
            }
        })
        .collect();
    sets.sort_by(|a, b| (std::cmp::Reverse(a.size), a.key).cmp(&(std::cmp::Reverse(b.size), b.key)));
    sets
}

/// The first-ranked complete set holding a snapshot of every one of
/// `volumes`: what makes a group of volumes done for the period.
pub fn covering<'s, 'a>(sets: &'s [SetView<'a>], volumes: &[String]) -> Option<&'s SetView<'a>> {
    sets.iter()
        .find(|s| s.is_complete() && volumes.iter().all(|v| s.holds(v)))
}

/// Snapshot ids to delete: duplicate sets (whole) and extra snapshots a
/// retried call made within a set.
pub fn duplicates(snapshots: &[Snapshot]) -> Vec<String> {
    let mut covered: BTreeSet<&str> = BTreeSet::new();
    let mut extra = Vec::new();
    for set in ranked_sets(snapshots) {
        extra.extend(set.extras.iter().map(|s| s.id.clone()));
        if set.is_complete() && set.members.keys().all(|v| covered.contains(v)) {
            extra.extend(set.members.values().map(|s| s.id.clone()));
        } else {
            covered.extend(set.members.keys().copied());
        }
    }
    extra.sort();
    extra
}

#[cfg(test)]
mod tests {
    use chrono::{DateTime, Utc};

    use super::*;
    use crate::backup::model::{SnapshotState, Tags};

    fn snap(id: &str, volume: &str, set: &str, size: usize) -> Snapshot {
        let mut tags = Tags::new();
        tags.insert(tags::SET.into(), set.into());
        tags.insert(tags::SET_SIZE.into(), size.to_string());
        Snapshot {
            id: id.into(),
            volume_id: Some(volume.into()),
            state: SnapshotState::Completed,
            start_time: DateTime::<Utc>::from_timestamp(1_800_000_000, 0),
            tags,
        }
    }

    fn volumes(ids: &[&str]) -> Vec<String> {
        ids.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn the_first_ranked_complete_set_wins_whole() {
        // Two runs each made a set of vol-1 and vol-2; the larger token
        // goes, whatever the snapshot ids say.
        let list = vec![
            snap("snap-1", "vol-1", "b", 2),
            snap("snap-9", "vol-2", "b", 2),
            snap("snap-5", "vol-1", "a", 2),
            snap("snap-2", "vol-2", "a", 2),
        ];
        assert_eq!(duplicates(&list), ["snap-1", "snap-9"]);
        let sets = ranked_sets(&list);
        assert_eq!(covering(&sets, &volumes(&["vol-1", "vol-2"])).unwrap().key, "a");
    }

    #[test]
    fn a_set_beats_single_snapshots_and_an_incomplete_set_covers_nothing() {
        let list = vec![
            snap("snap-s", "vol-1", "a-single", 1),
            snap("snap-1", "vol-1", "z-set", 2),
            snap("snap-2", "vol-2", "z-set", 2),
            snap("snap-p", "vol-2", "b-part", 2),
        ];
        // z-set ranks first (two volumes); the single is covered and goes;
        // b-part shows one of two volumes, so it is left alone.
        assert_eq!(duplicates(&list), ["snap-s"]);
        let sets = ranked_sets(&list);
        assert_eq!(covering(&sets, &volumes(&["vol-2"])).unwrap().key, "z-set");
        let partial = vec![snap("snap-p", "vol-2", "b-part", 2)];
        assert!(covering(&ranked_sets(&partial), &volumes(&["vol-2"])).is_none());
    }

    #[test]
    fn a_retried_call_keeps_its_earliest_snapshot_whatever_the_listing_order() {
        let mut late = snap("snap-0", "vol-1", "a", 1);
        late.start_time = DateTime::<Utc>::from_timestamp(1_800_000_009, 0);
        let early = snap("snap-7", "vol-1", "a", 1);
        assert_eq!(duplicates(&[late.clone(), early.clone()]), ["snap-0"]);
        assert_eq!(duplicates(&[early, late]), ["snap-0"]);
    }

    /// Every pair of partial views two runs can have of `truth`: no volume
    /// is left without a snapshot, no set is partly deleted, and every
    /// volume still has a complete set holding it.
    fn check_every_pair_of_views(truth: &[Snapshot]) {
        let n = truth.len();
        let all_volumes: BTreeSet<&str> = truth.iter().filter_map(|s| s.volume_id.as_deref()).collect();
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
                let left: Vec<Snapshot> = truth
                    .iter()
                    .filter(|s| !deleted.contains(&s.id))
                    .cloned()
                    .collect();
                for volume in &all_volumes {
                    assert!(
                        left.iter().any(|s| s.volume_id.as_deref() == Some(volume)),
                        "{volume} lost every snapshot with views {first:b} and {second:b}"
                    );
                }
                for set in ranked_sets(truth) {
                    let gone = set.members.values().filter(|s| deleted.contains(&s.id)).count();
                    assert!(
                        gone == 0 || gone == set.members.len(),
                        "set {} partly deleted with views {first:b} and {second:b}",
                        set.key
                    );
                }
            }
        }
    }

    #[test]
    fn racing_whole_sets_under_any_partial_views() {
        check_every_pair_of_views(&[
            snap("s-a1", "vol-1", "a", 3),
            snap("s-a2", "vol-2", "a", 3),
            snap("s-a3", "vol-3", "a", 3),
            snap("s-b1", "vol-1", "b", 3),
            snap("s-b2", "vol-2", "b", 3),
            snap("s-b3", "vol-3", "b", 3),
            snap("s-c1", "vol-1", "c", 3),
            snap("s-c3", "vol-3", "c", 3),
        ]);
    }

    #[test]
    fn sets_of_different_sizes_under_any_partial_views() {
        // A group that grew mid-period (a third volume tagged), a retake of
        // two, and single snapshots of a detached volume.
        check_every_pair_of_views(&[
            snap("s-a1", "vol-1", "a", 2),
            snap("s-a2", "vol-2", "a", 2),
            snap("s-b1", "vol-1", "b", 3),
            snap("s-b2", "vol-2", "b", 3),
            snap("s-b3", "vol-3", "b", 3),
            snap("s-c2", "vol-2", "c", 2),
            snap("s-c1", "vol-1", "c", 2),
            snap("s-d3", "vol-3", "d", 1),
        ]);
    }

    #[test]
    fn only_valid_snapshots_of_real_volumes_count() {
        let mut copy = snap("snap-7", COPIED, "c", 1);
        copy.tags.insert(tags::VOLUME_ID.into(), "vol-1".into());
        let mut mislabelled = snap("snap-8", "vol-2", "m", 1);
        mislabelled.tags.insert(tags::VOLUME_ID.into(), "vol-1".into());
        let mut errored = snap("snap-2", "vol-1", "e", 1);
        errored.state = SnapshotState::Error;
        let mut invalid = snap("snap-3", "vol-1", "i", 1);
        invalid
            .tags
            .insert(tags::INVALID.into(), "backup mode did not end".into());
        let list = vec![
            snap("snap-1", "vol-1", "z", 1),
            errored,
            copy,
            mislabelled,
            invalid,
        ];
        assert!(duplicates(&list).is_empty(), "only snap-1 counts");
        let sets = ranked_sets(&list);
        assert_eq!(sets.len(), 1);
        assert_eq!(sets[0].members["vol-1"].id, "snap-1");
    }

    #[test]
    fn snapshots_without_a_set_rank_by_id() {
        let mut a = snap("snap-2", "vol-1", "", 1);
        let mut b = snap("snap-1", "vol-1", "", 1);
        a.tags.clear();
        b.tags.clear();
        assert_eq!(duplicates(&[a, b]), ["snap-2"]);
    }
}
