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
//!
//! A run may require more of a snapshot than [`source_volume`] does (the
//! `_where` forms): a volume in application backup mode counts only a
//! snapshot carrying the backup's proof. A snapshot that fails the
//! requirement is in no set, so it neither covers a group nor outranks a
//! set that counts; the clean-up here never deletes it either (the run
//! removes it once its replacement exists).

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
    ranked_sets_where(snapshots, |_| true)
}

/// The sets of a listing, in rank order, made of the snapshots that also
/// pass `counts`.
pub fn ranked_sets_where(snapshots: &[Snapshot], counts: impl Fn(&Snapshot) -> bool) -> Vec<SetView<'_>> {
    let mut by_key: BTreeMap<&str, Vec<(&str, &Snapshot)>> = BTreeMap::new();
    let mut sizes: BTreeMap<&str, Option<usize>> = BTreeMap::new();
    for s in snapshots {
        let Some(volume) = source_volume(s).filter(|_| counts(s)) else {
            continue;
        };
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
    duplicates_where(snapshots, |_| true)
}

/// [`duplicates`] among the snapshots that pass `counts`; the others are
/// never in the answer.
pub fn duplicates_where(snapshots: &[Snapshot], counts: impl Fn(&Snapshot) -> bool) -> Vec<String> {
    let mut covered: BTreeSet<&str> = BTreeSet::new();
    let mut extra = Vec::new();
    for set in ranked_sets_where(snapshots, counts) {
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
#[path = "tests/dedupe.rs"]
mod tests;
