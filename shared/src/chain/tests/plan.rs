use super::*;
use crate::chain::model::{Endpoint, NO_REPLID, Node, Replication, ReplicationRole};

const POLICY: Policy = Policy {
    max_link_down_seconds: 120,
};

fn node(id: &str) -> Node {
    Node {
        instance_id: format!("i-{id}"),
        cluster: "kate.example.com".to_owned(),
        endpoint: Endpoint::new(format!("{id}.internal"), 6379),
        aliases: vec![format!("10.0.0.{}", id.len())],
        launch_time: None,
    }
}

fn master(id: &str, offset: i64, replid: &str, replid2: &str) -> Observed {
    Observed {
        node: node(id),
        state: NodeState::Up(Replication {
            role: ReplicationRole::Master,
            connected_replicas: 0,
            replid: replid.to_owned(),
            replid2: replid2.to_owned(),
            offset,
            failover_state: None,
        }),
    }
}

fn head(id: &str, offset: i64) -> Observed {
    master(id, offset, &format!("{id:0>40}"), NO_REPLID)
}

fn replica(id: &str, of: &str, link_down: Option<Option<u64>>, offset: i64) -> Observed {
    Observed {
        node: node(id),
        state: NodeState::Up(Replication {
            role: ReplicationRole::Replica {
                master_host: format!("{of}.internal"),
                master_port: 6379,
                link_up: link_down.is_none(),
                link_down_seconds: link_down.flatten(),
                sync_in_progress: false,
                replica_offset: offset,
            },
            connected_replicas: 0,
            replid: "r".repeat(40),
            replid2: NO_REPLID.to_owned(),
            offset,
            failover_state: None,
        }),
    }
}

fn linked(id: &str, of: &str, offset: i64) -> Observed {
    replica(id, of, None, offset)
}

fn down(id: &str) -> Observed {
    Observed {
        node: node(id),
        state: NodeState::Down("connection refused".to_owned()),
    }
}

fn ids(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| format!("i-{s}")).collect()
}

fn run(observed: &[Observed]) -> Plan {
    plan(observed, &Records::default(), &Intent::default(), &POLICY)
}

fn attach(id: &str, to: &str, reason: AttachReason) -> Step {
    Step::Attach {
        instance_id: format!("i-{id}"),
        endpoint: node(id).endpoint,
        master_instance_id: format!("i-{to}"),
        master: node(to).endpoint,
        reason,
    }
}

fn promote(id: &str, was: Option<&str>, offset: i64) -> Step {
    Step::Promote {
        instance_id: format!("i-{id}"),
        endpoint: node(id).endpoint,
        was_replica_of: was.map(|w| format!("i-{w}")),
        offset,
    }
}

#[test]
fn a_healthy_chain_needs_nothing() {
    let p = run(&[head("a", 100), linked("b", "a", 100), linked("c", "b", 90)]);
    assert_eq!(p.chain, ids(&["a", "b", "c"]));
    assert!(p.steps.is_empty());
    assert!(p.findings.is_empty(), "{:?}", p.findings);
    assert_eq!(p.head, Some(node("a").endpoint));
    assert_eq!(p.tail, Some(node("c").endpoint));
    assert_eq!(p.blocked, None);
}

#[test]
fn the_order_of_observations_does_not_matter() {
    let p = run(&[linked("c", "b", 90), linked("b", "a", 100), head("a", 100)]);
    assert_eq!(p.chain, ids(&["a", "b", "c"]));
    assert!(p.steps.is_empty());
}

#[test]
fn a_dead_head_promotes_its_replica_and_keeps_the_rest_attached() {
    let p = run(&[
        down("a"),
        replica("b", "a", Some(Some(5)), 100),
        linked("c", "b", 90),
    ]);
    assert_eq!(p.steps, vec![promote("b", Some("a"), 100)]);
    assert_eq!(p.chain, ids(&["b", "c"]));
    assert_eq!(p.down, ids(&["a"]));
    assert_eq!(p.tail, Some(node("c").endpoint));
}

#[test]
fn a_head_its_replica_still_sees_is_not_replaced() {
    let p = run(&[down("a"), linked("b", "a", 100), linked("c", "b", 90)]);
    assert!(p.steps.is_empty());
    assert_eq!(
        p.blocked,
        Some(Blocked::HeadSeenByReplica {
            head: "i-a".to_owned(),
            replica: "i-b".to_owned()
        })
    );
}

#[test]
fn a_replica_cut_off_longer_than_allowed_is_not_promoted() {
    let p = run(&[down("a"), replica("b", "a", Some(Some(121)), 100)]);
    assert!(p.steps.is_empty());
    assert!(matches!(p.blocked, Some(Blocked::WouldLoseData { ref candidate, .. }) if candidate == "i-b"));
    let at_limit = run(&[down("a"), replica("b", "a", Some(Some(120)), 100)]);
    assert_eq!(at_limit.steps, vec![promote("b", Some("a"), 100)]);
}

#[test]
fn a_replica_that_never_synced_or_is_syncing_is_not_promoted() {
    let p = run(&[down("a"), replica("b", "a", Some(None), 0)]);
    assert!(matches!(p.blocked, Some(Blocked::WouldLoseData { .. })));
    let mut syncing = replica("b", "a", Some(Some(3)), 10);
    if let NodeState::Up(Replication {
        role: ReplicationRole::Replica { sync_in_progress, .. },
        ..
    }) = &mut syncing.state
    {
        *sync_in_progress = true;
    }
    let p = run(&[down("a"), syncing]);
    assert!(p.steps.is_empty());
    assert!(matches!(p.blocked, Some(Blocked::WouldLoseData { .. })));
}

#[test]
fn a_dead_middle_node_is_bypassed_to_the_grandmaster() {
    let p = run(&[
        head("a", 100),
        down("b"),
        replica("c", "b", Some(Some(2)), 80),
        linked("d", "c", 80),
    ]);
    assert_eq!(p.steps, vec![attach("c", "a", AttachReason::Reattach)]);
    assert_eq!(p.chain, ids(&["a", "c", "d"]));
    assert_eq!(p.tail, Some(node("d").endpoint));
}

#[test]
fn a_returning_old_head_is_fenced_by_its_history() {
    // b was promoted: its replid2 is a's replid. a came back with its old
    // data and more offset than b: still fenced, never head.
    let a = master("a", 5_000, &"a".repeat(40), NO_REPLID);
    let b = master("b", 4_000, &"b".repeat(40), &"a".repeat(40));
    let p = plan(
        &[a, b, linked("c", "b", 4_000)],
        &Records {
            head: Some("a.internal".to_owned()),
            tail: None,
        },
        &Intent::default(),
        &POLICY,
    );
    assert_eq!(p.chain, ids(&["b", "c", "a"]));
    assert_eq!(p.steps, vec![attach("a", "c", AttachReason::Fence)]);
    assert!(
        p.findings
            .iter()
            .any(|f| f.contains("i-a") && f.contains("fenced"))
    );
}

#[test]
fn a_rival_promoted_from_the_same_old_head_is_fenced_whatever_its_offset() {
    // o died. c was claimed first but hung before its REPLICAOF NO ONE; b
    // was promoted instead (the record names it) and took acknowledged
    // writes; then c woke up, ran its REPLICAOF NO ONE, and took writes
    // no replica acknowledged, past b's offset.
    let o = "o".repeat(40);
    let observed = [
        down("o"),
        master("b", 4_000, &"b".repeat(40), &o),
        linked("d", "b", 4_000),
        master("c", 9_000, &"c".repeat(40), &o),
    ];
    let p = with_head_record(&observed, "b");
    assert_eq!(p.chain, ids(&["b", "d", "c"]));
    assert_eq!(p.steps, vec![attach("c", "d", AttachReason::Fence)]);
    assert!(
        p.findings
            .iter()
            .any(|f| f.contains("i-c") && f.contains("lost its claim")),
        "{:?}",
        p.findings
    );
    // Without a record naming one of them, nothing says which won: the
    // offsets decide, as between any two heads.
    assert_eq!(run(&observed).chain, ids(&["c", "b", "d"]));
}

#[test]
fn a_returning_empty_head_is_fenced_by_its_offset() {
    let p = run(&[head("a", 0), head("b", 500), linked("c", "b", 500)]);
    assert_eq!(p.chain, ids(&["b", "c", "a"]));
    assert_eq!(p.steps, vec![attach("a", "c", AttachReason::Fence)]);
    assert!(p.findings.iter().any(|f| f.contains("2 nodes claim to be head")));
}

#[test]
fn between_equal_heads_the_record_decides_then_the_longer_chain() {
    let observed = [head("a", 0), head("b", 0), linked("c", "a", 0)];
    let by_record = plan(
        &observed,
        &Records {
            head: Some("B.internal".to_owned()),
            tail: None,
        },
        &Intent::default(),
        &POLICY,
    );
    assert_eq!(by_record.chain, ids(&["b", "a", "c"]));
    assert_eq!(by_record.steps, vec![attach("a", "b", AttachReason::Fence)]);
    let by_chain = run(&observed);
    assert_eq!(by_chain.chain, ids(&["a", "c", "b"]));
}

#[test]
fn a_node_that_cannot_be_read_blocks_everything() {
    let unknown = Observed {
        node: node("b"),
        state: NodeState::Unknown("WRONGPASS".to_owned()),
    };
    let p = run(&[down("a"), unknown, replica("c", "b", Some(Some(1)), 10)]);
    assert!(p.steps.is_empty());
    assert_eq!(
        p.blocked,
        Some(Blocked::Unknown {
            nodes: vec![("i-b".to_owned(), "WRONGPASS".to_owned())]
        })
    );
}

#[test]
fn no_reachable_node_is_reported_and_an_empty_cluster_is_empty() {
    let p = run(&[down("a"), down("b")]);
    assert_eq!(
        p.blocked,
        Some(Blocked::NoReachableNode {
            down: ids(&["a", "b"])
        })
    );
    assert_eq!(run(&[]), Plan::default());
}

#[test]
fn a_joining_node_becomes_the_tail() {
    let intent = Intent {
        joining: Some("i-n".to_owned()),
        leaving: None,
    };
    // Same offset as the head: without the intent it could win.
    let p = plan(
        &[head("a", 0), linked("b", "a", 0), head("n", 0)],
        &Records::default(),
        &intent,
        &POLICY,
    );
    assert_eq!(p.chain, ids(&["a", "b", "n"]));
    assert_eq!(p.steps, vec![attach("n", "b", AttachReason::Join)]);
    assert!(p.findings.iter().all(|f| !f.contains("fenced")));
}

#[test]
fn a_joining_node_alone_is_the_head() {
    let intent = Intent {
        joining: Some("i-n".to_owned()),
        leaving: None,
    };
    let p = plan(&[head("n", 0)], &Records::default(), &intent, &POLICY);
    assert_eq!(p.chain, ids(&["n"]));
    assert!(p.steps.is_empty());
    // Others down: the new node (with its restored volume) is the head.
    let p = plan(&[down("a"), head("n", 0)], &Records::default(), &intent, &POLICY);
    assert_eq!(p.chain, ids(&["n"]));
}

#[test]
fn a_leaving_middle_node_is_spliced_out() {
    let intent = Intent {
        joining: None,
        leaving: Some("i-x".to_owned()),
    };
    let p = plan(
        &[head("a", 100), linked("x", "a", 100), linked("c", "x", 100)],
        &Records::default(),
        &intent,
        &POLICY,
    );
    assert_eq!(p.steps, vec![attach("c", "a", AttachReason::Reattach)]);
    assert_eq!(p.chain, ids(&["a", "c"]));
    assert!(p.down.is_empty());
}

#[test]
fn a_leaving_tail_moves_the_tail_back() {
    let intent = Intent {
        joining: None,
        leaving: Some("i-x".to_owned()),
    };
    let p = plan(
        &[head("a", 100), linked("b", "a", 100), linked("x", "b", 100)],
        &Records::default(),
        &intent,
        &POLICY,
    );
    assert!(p.steps.is_empty());
    assert_eq!(p.tail, Some(node("b").endpoint));
}

#[test]
fn a_leaving_head_after_its_handover_is_left_out() {
    let intent = Intent {
        joining: None,
        leaving: Some("i-x".to_owned()),
    };
    let p = plan(
        &[
            master("b", 100, &"b".repeat(40), &"x".repeat(40)),
            linked("x", "b", 100),
            linked("c", "b", 100),
        ],
        &Records::default(),
        &intent,
        &POLICY,
    );
    assert!(p.steps.is_empty());
    assert_eq!(p.chain, ids(&["b", "c"]));
}

#[test]
fn a_cycle_is_broken_at_its_most_up_to_date_node() {
    let p = run(&[linked("a", "b", 100), linked("b", "a", 90)]);
    assert_eq!(p.steps, vec![promote("a", Some("b"), 100)]);
    assert_eq!(p.chain, ids(&["a", "b"]));
}

#[test]
fn a_replica_of_a_stranger_is_attached_to_the_tail() {
    let mut orphan = linked("c", "a", 50);
    if let NodeState::Up(Replication {
        role: ReplicationRole::Replica { master_host, .. },
        ..
    }) = &mut orphan.state
    {
        *master_host = "old-box.example.net".to_owned();
    }
    let p = run(&[head("a", 100), linked("b", "a", 100), orphan]);
    assert_eq!(p.steps, vec![attach("c", "b", AttachReason::Repair)]);
    assert!(
        p.findings
            .iter()
            .any(|f| f.contains("not a node of this cluster"))
    );
}

#[test]
fn a_second_replica_of_one_node_moves_to_the_tail() {
    let p = run(&[head("a", 100), linked("b", "a", 100), linked("e", "a", 90)]);
    assert_eq!(p.chain, ids(&["a", "b", "e"]));
    assert_eq!(p.steps, vec![attach("e", "b", AttachReason::Repair)]);
    assert!(p.findings.iter().any(|f| f.contains("has 2 replicas")));
}

#[test]
fn of_two_replicas_of_a_dead_head_the_most_up_to_date_is_promoted() {
    let p = run(&[
        down("a"),
        replica("b", "a", Some(Some(3)), 100),
        replica("e", "a", Some(Some(3)), 120),
    ]);
    assert_eq!(p.steps[0], promote("e", Some("a"), 120));
    assert_eq!(p.steps[1], attach("b", "e", AttachReason::Reattach));
    assert_eq!(p.chain, ids(&["e", "b"]));
}

#[test]
fn a_replica_naming_its_master_by_address_is_linked() {
    let mut b = linked("b", "a", 100);
    if let NodeState::Up(Replication {
        role: ReplicationRole::Replica { master_host, .. },
        ..
    }) = &mut b.state
    {
        // node("a")'s alias is 10.0.0.<len of "a">.
        *master_host = "10.0.0.1".to_owned();
    }
    let p = run(&[head("a", 100), b]);
    assert!(p.steps.is_empty());
    assert_eq!(p.chain, ids(&["a", "b"]));
}

#[test]
fn an_old_head_whose_successor_died_is_the_head_again() {
    let a = master("a", 5_000, &"a".repeat(40), NO_REPLID);
    let p = run(&[a, down("b")]);
    assert_eq!(p.chain, ids(&["a"]));
    assert!(p.steps.is_empty());
}

fn with_head_record(observed: &[Observed], head: &str) -> Plan {
    let records = Records {
        head: Some(node(head).endpoint.host),
        tail: None,
    };
    plan(observed, &records, &Intent::default(), &POLICY)
}

#[test]
fn a_head_that_is_only_slow_is_not_replaced_by_the_replica_of_a_dead_middle_node() {
    // a (the record's head) times out from here, b died, c's link to b is
    // down: c's link says nothing about a.
    let observed = [down("a"), down("b"), replica("c", "b", Some(Some(2)), 90)];
    let p = with_head_record(&observed, "a");
    assert!(p.steps.is_empty(), "{:?}", p.steps);
    assert_eq!(
        p.blocked,
        Some(Blocked::HeadUnconfirmed {
            head: "i-a".into(),
            candidate: "i-c".into(),
        })
    );
    // Without a record naming a head, the old rule stands: its master is
    // gone, its link is down, it has the data.
    assert_eq!(run(&observed).steps, vec![promote("c", Some("b"), 90)]);
}

#[test]
fn the_records_dead_heads_own_replica_is_still_promoted() {
    let p = with_head_record(
        &[
            down("a"),
            replica("b", "a", Some(Some(5)), 100),
            linked("c", "b", 90),
        ],
        "a",
    );
    assert_eq!(p.steps, vec![promote("b", Some("a"), 100)]);
    assert_eq!(p.blocked, None);
}

#[test]
fn of_two_candidates_the_dead_heads_own_replica_wins_over_a_better_ranked_one() {
    // An idle chain a -> b -> c -> d: a and c die together. b and d have
    // the same offset and d would win the tie on its id; only b's link
    // says anything about a.
    let observed = [
        down("a"),
        replica("b", "a", Some(Some(3)), 100),
        down("c"),
        replica("d", "c", Some(Some(3)), 100),
    ];
    let p = with_head_record(&observed, "a");
    assert_eq!(p.blocked, None);
    assert_eq!(p.steps[0], promote("b", Some("a"), 100));
    assert_eq!(p.chain, ids(&["b", "d"]));
}

#[test]
fn endpoint_parsing() {
    assert_eq!(
        Endpoint::parse("10.0.0.5", 6379),
        Ok(Endpoint::new("10.0.0.5", 6379))
    );
    assert_eq!(
        Endpoint::parse("Redis.Internal:6380", 6379),
        Ok(Endpoint::new("redis.internal", 6380))
    );
    assert_eq!(
        Endpoint::parse("[fd00::1]:7000", 6379),
        Ok(Endpoint::new("fd00::1", 7000))
    );
    assert_eq!(
        Endpoint::parse("fd00::1", 6379),
        Ok(Endpoint::new("fd00::1", 6379))
    );
    assert_eq!(Endpoint::new("fd00::1", 7000).to_string(), "[fd00::1]:7000");
    for bad in [
        "",
        ":6379",
        "host:0",
        "host:99999",
        "host:x",
        "[fd00::1",
        "[fd00::1]x",
        "a b:1",
    ] {
        assert!(Endpoint::parse(bad, 6379).is_err(), "{bad:?} accepted");
    }
}
