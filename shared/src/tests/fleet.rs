use super::*;

fn names() -> Names {
    Names {
        node: "mongodb member",
        cluster: "replica set",
        instances: "member instances",
        roles: "mongodb or mongodb-arbiter",
    }
}

fn bad(id: &str, cluster: Option<&str>) -> InvalidNode {
    InvalidNode {
        instance_id: id.into(),
        cluster: cluster.map(str::to_owned),
        reason: "tag ninelives:endpoint: \"x:0\" has an invalid port".into(),
    }
}

#[test]
fn nodes_are_grouped_by_cluster_and_unusable_ones_kept() {
    let listing = vec![
        Ok(("b.example.com", 1)),
        Err(bad("i-0000000000000000c", Some("C.Example.com."))),
        Ok(("a.example.com", 2)),
        Ok(("b.example.com", 3)),
    ];
    let fleet = Fleet::group(listing, |n: &(&str, i32)| n.0, names());
    let groups: Vec<(&str, Vec<i32>)> = fleet
        .groups
        .iter()
        .map(|(k, v)| (k.as_str(), v.iter().map(|n| n.1).collect()))
        .collect();
    assert_eq!(
        groups,
        [("a.example.com", vec![2]), ("b.example.com", vec![1, 3])]
    );
    assert_eq!(fleet.invalid.len(), 1);
    assert_eq!(fleet.wanted(None), ["a.example.com", "b.example.com"]);
    assert_eq!(
        fleet.wanted(Some(vec!["z.example.com".into()])),
        ["z.example.com"]
    );
}

#[test]
fn an_unknown_cluster_says_whether_its_instances_have_bad_tags() {
    let listing: Vec<Result<(&str, i32), InvalidNode>> =
        vec![Err(bad("i-0000000000000000c", Some("C.Example.com.")))];
    let fleet = Fleet::group(listing, |n: &(&str, i32)| n.0, names());
    let err = fleet.unknown("c.example.com");
    assert_eq!(err.error_type(), "NonRetryable.InvalidResource");
    assert_eq!(
        err.to_string(),
        "c.example.com: unknown replica set: its only member instances have unusable tags \
         (i-0000000000000000c: tag ninelives:endpoint: \"x:0\" has an invalid port)"
    );
    assert_eq!(
        fleet.unknown("d.example.com").to_string(),
        "d.example.com: unknown replica set: no pending or running instance is tagged \
         ninelives:role=mongodb or mongodb-arbiter with ninelives:cluster = d.example.com"
    );
}
