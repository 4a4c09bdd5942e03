//! Unit tests of `dedupe`.

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
        volume_size_gib: Some(8),
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

#[test]
fn a_snapshot_that_does_not_count_is_in_no_set_and_never_a_duplicate() {
    // Set "a" (no proof) ranks before "b" by its token; required proof
    // takes it out of the ranking altogether.
    let mut proven = vec![snap("snap-3", "vol-1", "b", 2), snap("snap-4", "vol-2", "b", 2)];
    for s in &mut proven {
        s.tags.insert("proof".into(), "yes".into());
    }
    let mut list = vec![snap("snap-1", "vol-1", "a", 2), snap("snap-2", "vol-2", "a", 2)];
    list.extend(proven);
    let both = volumes(&["vol-1", "vol-2"]);
    assert_eq!(duplicates(&list), ["snap-3", "snap-4"], "without the requirement");
    assert_eq!(covering(&ranked_sets(&list), &both).unwrap().key, "a");

    let proof = |s: &Snapshot| s.tag("proof").is_some();
    assert!(duplicates_where(&list, proof).is_empty());
    let sets = ranked_sets_where(&list, proof);
    assert_eq!(sets.len(), 1);
    assert_eq!(covering(&sets, &both).unwrap().key, "b");

    // Only the unproven set: nothing covers the volumes.
    let unproven = &list[..2];
    assert!(covering(&ranked_sets_where(unproven, proof), &both).is_none());
    assert!(duplicates_where(unproven, proof).is_empty());
}
