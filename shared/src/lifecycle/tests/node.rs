//! Unit tests of `node`: what tags ask for, and every bad tag named.

use super::*;

fn tags_of(pairs: &[(&str, &str)]) -> Tags {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

const C: (&str, &str) = (tags::CLUSTER, "kate.example.com");

#[test]
fn defaults_restore_latest_main_at_sdf() {
    let p = plan(&tags_of(&[C])).unwrap();
    assert_eq!(p.cluster, "kate.example.com");
    assert_eq!(p.role, None);
    assert_eq!(
        p.volume,
        Some(VolumePlan {
            name: "main".into(),
            device: "/dev/sdf".into(),
            source: Source::Latest,
            size_gib: None
        })
    );
}

#[test]
fn explicit_restore_settings() {
    let p = plan(&tags_of(&[
        C,
        (tags::ROLE, "Redis"),
        (tags::RESTORE, "snap-0123456789abcdef0"),
        (tags::DEVICE, "/dev/xvdg"),
        (tags::NAME, "tablespace1"),
        (tags::SIZE, "100"),
        (tags::ENDPOINT, "10.1.2.3:6380"),
    ]))
    .unwrap();
    assert_eq!(p.role, Some(Role::Redis));
    let v = p.volume.unwrap();
    assert_eq!(v.source, Source::Snapshot("snap-0123456789abcdef0".into()));
    assert_eq!(v.device, "/dev/xvdg");
    assert_eq!(v.name, "tablespace1");
    assert_eq!(v.size_gib, Some(100));
    assert_eq!(p.endpoint.as_deref(), Some("10.1.2.3:6380"));

    let empty = plan(&tags_of(&[C, (tags::RESTORE, "NONE"), (tags::SIZE, "20")])).unwrap();
    assert_eq!(empty.volume.unwrap().source, Source::None);
}

#[test]
fn stateless_roles_get_a_volume_only_when_asked() {
    for role in ["search", "mongodb-arbiter"] {
        assert_eq!(
            plan(&tags_of(&[C, (tags::ROLE, role)])).unwrap().volume,
            None,
            "{role}"
        );
        for asked in [
            (tags::RESTORE, "latest"),
            (tags::SIZE, "10"),
            (tags::DEVICE, "/dev/sdg"),
        ] {
            assert!(
                plan(&tags_of(&[C, (tags::ROLE, role), asked]))
                    .unwrap()
                    .volume
                    .is_some()
            );
        }
    }
    for role in ["redis", "mongodb", "postgres"] {
        assert!(
            plan(&tags_of(&[C, (tags::ROLE, role)])).unwrap().volume.is_some(),
            "{role}"
        );
    }
}

#[test]
fn bad_tags_are_named() {
    let cases: Vec<(Vec<(&str, &str)>, &str)> = vec![
        (vec![(tags::ROLE, "redis")], "no ninelives:cluster tag"),
        (vec![(tags::CLUSTER, "  ")], "no ninelives:cluster tag"),
        (vec![C, (tags::ROLE, "cassandra")], "unknown role \"cassandra\""),
        (vec![C, (tags::SIZE, "0")], "tag ninelives:size"),
        (vec![C, (tags::SIZE, "lots")], "tag ninelives:size"),
        (vec![C, (tags::SIZE, "70000")], "tag ninelives:size"),
        (vec![C, (tags::DEVICE, "sdf")], "tag ninelives:device"),
        (vec![C, (tags::DEVICE, "/dev/sda")], "tag ninelives:device"),
        (vec![C, (tags::DEVICE, "/dev/xvda")], "tag ninelives:device"),
        (vec![C, (tags::DEVICE, "/dev/sdf16")], "tag ninelives:device"),
        (vec![C, (tags::DEVICE, "/dev/../etc")], "tag ninelives:device"),
        (vec![C, (tags::RESTORE, "yesterday")], "tag ninelives:restore"),
        (vec![C, (tags::RESTORE, "snap-xyz")], "tag ninelives:restore"),
        (vec![C, (tags::RESTORE, "none")], "needs a ninelives:size"),
    ];
    for (pairs, expected) in cases {
        let err = plan(&tags_of(&pairs)).unwrap_err();
        assert!(err.contains(expected), "{pairs:?}: {err}");
    }
}

#[test]
fn devices_ec2_accepts() {
    for ok in [
        "/dev/sdb",
        "/dev/sdf",
        "/dev/sdz",
        "/dev/sdf1",
        "/dev/sdf15",
        "/dev/xvdf",
        "/dev/xvdba",
    ] {
        assert_eq!(device_name(ok).as_deref(), Ok(ok));
    }
    for bad in [
        "/dev/sdf0",
        "/dev/sdf01",
        "/dev/xvdB",
        "/dev/nvme1n1",
        "/dev/sd",
        "/dev/xvdfff",
    ] {
        assert!(device_name(bad).is_err(), "{bad}");
    }
}

#[test]
fn managed_means_any_ninelives_tag() {
    assert!(!is_managed(&tags_of(&[
        ("Name", "web"),
        ("aws:autoscaling:groupName", "g")
    ])));
    assert!(is_managed(&tags_of(&[("ninelives:role", "search")])));
}

#[test]
fn roles_round_trip() {
    for role in Role::ALL {
        assert_eq!(role.as_str().parse::<Role>(), Ok(role));
        assert_eq!(serde_json::to_value(role).unwrap(), role.as_str());
    }
}
