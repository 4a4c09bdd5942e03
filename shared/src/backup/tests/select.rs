//! Unit tests of `select`.

use super::*;
use crate::backup::fake::volume;
use crate::backup::model::Attachment;

const DB: &str = "db.example.com";

#[test]
fn groups_by_instance_and_cluster() {
    let vols = vec![
        volume(
            "vol-3",
            &[(tags::CLUSTER, DB), (tags::NAME, "ts1")],
            Some(("i-1", "/dev/sdg")),
        ),
        volume(
            "vol-1",
            &[(tags::CLUSTER, DB), (tags::NAME, "main")],
            Some(("i-1", "/dev/sdf")),
        ),
        volume(
            "vol-2",
            &[(tags::CLUSTER, "kate.example.com"), (tags::NAME, "data")],
            Some(("i-1", "/dev/sdh")),
        ),
        volume(
            "vol-4",
            &[(tags::CLUSTER, DB), (tags::NAME, "main")],
            Some(("i-2", "/dev/sdf")),
        ),
        volume("vol-5", &[(tags::CLUSTER, DB), (tags::NAME, "spare")], None),
    ];
    let s = select(&vols);
    assert!(s.skipped.is_empty());
    let shape: Vec<(Option<&str>, Vec<&str>, bool)> = s
        .groups
        .iter()
        .map(|g| {
            (
                g.instance_id.as_deref(),
                g.targets.iter().map(|t| t.volume_id.as_str()).collect(),
                g.is_multi_volume(),
            )
        })
        .collect();
    assert_eq!(
        shape,
        vec![
            (Some("i-1"), vec!["vol-1", "vol-3"], true),
            (Some("i-1"), vec!["vol-2"], false),
            (Some("i-2"), vec!["vol-4"], false),
            (None, vec!["vol-5"], false),
        ]
    );
    assert_eq!(s.groups[0].targets[1].device.as_deref(), Some("/dev/sdg"));
}

#[test]
fn skips_name_the_volume_and_reason() {
    let mut creating = volume("vol-c", &[(tags::CLUSTER, DB), (tags::NAME, "main")], None);
    creating.state = "creating".into();
    let vols = vec![
        volume(
            "vol-off",
            &[(tags::CLUSTER, DB), (tags::NAME, "main"), (tags::BACKUP, "OFF")],
            None,
        ),
        volume(
            "vol-on",
            &[(tags::CLUSTER, DB), (tags::NAME, "main"), (tags::BACKUP, "on")],
            None,
        ),
        volume("vol-noname", &[(tags::CLUSTER, DB)], None),
        volume("vol-blank", &[(tags::CLUSTER, " "), (tags::NAME, "main")], None),
        creating,
    ];
    let s = select(&vols);
    assert_eq!(s.groups.len(), 1);
    assert_eq!(s.groups[0].targets[0].volume_id, "vol-on");
    let skipped: Vec<(&str, SkipKind)> = s.skipped.iter().map(|k| (k.volume_id.as_str(), k.kind)).collect();
    assert_eq!(
        skipped,
        vec![
            ("vol-blank", SkipKind::Invalid),
            ("vol-c", SkipKind::Invalid),
            ("vol-noname", SkipKind::Invalid),
            ("vol-off", SkipKind::Excluded),
        ]
    );
    assert!(s.skipped[2].reason.contains("no ninelives:name tag"));
    assert_eq!(s.skipped[1].reason, "volume is creating");
}

#[test]
fn multi_attached_volumes_are_taken_alone() {
    let mut v = volume(
        "vol-m",
        &[(tags::CLUSTER, DB), (tags::NAME, "shared")],
        Some(("i-1", "/dev/sdf")),
    );
    v.attachments.push(Attachment {
        instance_id: "i-2".into(),
        device: "/dev/sdf".into(),
        state: "attached".into(),
    });
    let other = volume(
        "vol-n",
        &[(tags::CLUSTER, DB), (tags::NAME, "main")],
        Some(("i-1", "/dev/sdg")),
    );
    let s = select(&[v, other]);
    assert_eq!(s.groups.len(), 2);
    assert!(s.groups.iter().all(|g| !g.is_multi_volume()));
    assert_eq!(s.groups[0].instance_id, None);
}

#[test]
fn app_tag_is_carried() {
    let v = volume(
        "vol-1",
        &[(tags::CLUSTER, DB), (tags::NAME, "main"), (tags::APP, "Postgres")],
        None,
    );
    assert_eq!(select(&[v]).groups[0].app(), Some("postgres"));
}
