//! Unit tests of `latest`.

use chrono::{DateTime, Utc};

use super::*;
use crate::backup::model::Tags;

fn snap(id: &str, cluster: &str, name: &str, secs: i64, state: SnapshotState) -> Snapshot {
    let mut tags = Tags::new();
    tags.insert(tags::CLUSTER.into(), cluster.into());
    tags.insert(tags::NAME.into(), name.into());
    Snapshot {
        id: id.into(),
        volume_id: Some("vol-1".into()),
        state,
        start_time: DateTime::<Utc>::from_timestamp(1_800_000_000 + secs, 0),
        volume_size_gib: Some(8),
        tags,
    }
}

#[test]
fn newest_completed_valid_snapshot_per_volume() {
    let mut invalid = snap("snap-5", "a.example.com", "main", 50, SnapshotState::Completed);
    invalid
        .tags
        .insert(tags::INVALID.into(), "attached mid-run".into());
    let list = vec![
        snap("snap-1", "a.example.com", "main", 10, SnapshotState::Completed),
        snap("snap-2", "a.example.com", "main", 20, SnapshotState::Completed),
        snap("snap-3", "a.example.com", "main", 30, SnapshotState::Pending),
        snap("snap-4", "a.example.com", "main", 40, SnapshotState::Error),
        invalid,
        snap("snap-6", "a.example.com", "logs", 60, SnapshotState::Completed),
        snap("snap-7", "b.example.com", "main", 70, SnapshotState::Completed),
    ];
    let newest = newest_by_volume(&list);
    let ids: Vec<(&str, &str, &str)> = newest.iter().map(|((c, n), s)| (*c, *n, s.id.as_str())).collect();
    assert_eq!(
        ids,
        vec![
            ("a.example.com", "logs", "snap-6"),
            ("a.example.com", "main", "snap-2"),
            ("b.example.com", "main", "snap-7"),
        ]
    );
    assert_eq!(
        newest_of(&list, "a.example.com", "main").map(|s| s.id.as_str()),
        Some("snap-2")
    );
    assert!(newest_of(&list, "c.example.com", "main").is_none());
}

#[test]
fn equal_start_times_pick_the_larger_id_every_time() {
    let list = vec![
        snap("snap-b", "a.example.com", "main", 10, SnapshotState::Completed),
        snap("snap-a", "a.example.com", "main", 10, SnapshotState::Completed),
    ];
    assert_eq!(newest_of(&list, "a.example.com", "main").unwrap().id, "snap-b");
    let reversed: Vec<Snapshot> = list.into_iter().rev().collect();
    assert_eq!(
        newest_of(&reversed, "a.example.com", "main").unwrap().id,
        "snap-b"
    );
}

#[test]
fn snapshots_without_cluster_or_name_are_never_picked() {
    let mut s = snap("snap-1", "a.example.com", "main", 10, SnapshotState::Completed);
    s.tags.remove(tags::NAME);
    assert!(newest_by_volume(&[s]).is_empty());
}
