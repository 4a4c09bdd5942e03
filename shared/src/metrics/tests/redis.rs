use super::*;

const MASTER: &str = include_str!("info-master-7.0.15.txt");
const REPLICA: &str = include_str!("info-replica-7.0.15.txt");

fn value(f: &Figures, name: &str) -> Option<f64> {
    f.values.iter().find(|(n, ..)| *n == name).map(|(_, _, v)| *v)
}

#[test]
fn a_master_with_aof_and_one_replica() {
    // Real INFO of redis-server 7.0.15 after 51 writes (one key expired),
    // AOF on, one replica in sync.
    let f = figures(MASTER);
    assert!(f.skipped.is_empty(), "{:?}", f.skipped);
    assert_eq!(value(&f, "IsMaster"), Some(1.0));
    assert_eq!(value(&f, "ConnectedReplicas"), Some(1.0));
    assert_eq!(value(&f, "ChangesSinceLastSave"), Some(51.0));
    assert_eq!(value(&f, "ExpiredKeys"), Some(1.0));
    assert_eq!(value(&f, "EvictedKeys"), Some(0.0));
    assert_eq!(value(&f, "AofLastWriteOk"), Some(1.0));
    assert_eq!(value(&f, "AofLastRewriteOk"), Some(1.0));
    assert!(value(&f, "UsedMemory").is_some_and(|m| m > 100_000.0));
    assert!(value(&f, "MemFragmentationRatio").is_some_and(|r| r > 0.0));
    assert_eq!(value(&f, "MasterLinkUp"), None, "a master has no link");
    assert_eq!(
        f.replicas,
        [ReplicaLag {
            replica: "127.0.0.1:17991".into(),
            state: "online".into(),
            bytes: 0.0,
            seconds: 0.0,
        }]
    );
    assert_eq!(value(&f, "MaxReplicaLagBytes"), Some(0.0));
    assert!(f.values.iter().all(|(_, _, v)| v.is_finite()));
}

#[test]
fn a_replica_reports_its_link() {
    let f = figures(REPLICA);
    assert!(f.skipped.is_empty(), "{:?}", f.skipped);
    assert_eq!(value(&f, "IsMaster"), Some(0.0));
    assert_eq!(value(&f, "MasterLinkUp"), Some(1.0));
    assert_eq!(value(&f, "AofLastWriteOk"), None, "AOF is off on the replica");
    assert!(f.replicas.is_empty());
    let down = REPLICA.replace("master_link_status:up", "master_link_status:down");
    assert_eq!(value(&figures(&down), "MasterLinkUp"), Some(0.0));
}

#[test]
fn lag_is_the_masters_offset_less_the_replicas() {
    let text = MASTER
        .replace("master_repl_offset:1655", "master_repl_offset:10000")
        .replace(
            "slave0:ip=127.0.0.1,port=17991,state=online,offset=1655,lag=0",
            "slave0:ip=10.0.0.2,port=6379,state=online,offset=9000,lag=1\nslave1:ip=10.0.0.3,port=6379,state=online,offset=4000,lag=3",
        );
    let f = figures(&text);
    let lags: Vec<(String, f64, f64)> = f
        .replicas
        .iter()
        .map(|r| (r.replica.clone(), r.bytes, r.seconds))
        .collect();
    assert_eq!(
        lags,
        [
            ("10.0.0.2:6379".into(), 1000.0, 1.0),
            ("10.0.0.3:6379".into(), 6000.0, 3.0)
        ]
    );
    assert_eq!(value(&f, "MaxReplicaLagBytes"), Some(6000.0));
}

#[test]
fn values_that_are_not_numbers_are_skipped_and_said() {
    let text = MASTER
        .replace("connected_clients:1", "connected_clients:many")
        .replace("mem_fragmentation_ratio:", "mem_fragmentation_ratio:nan-")
        .replace(
            "slave0:ip=127.0.0.1,port=17991,state=online,offset=1655,lag=0",
            "slave0:garbage",
        );
    let f = figures(&text);
    assert_eq!(value(&f, "ConnectedClients"), None);
    assert!(
        f.skipped.iter().any(|s| s.starts_with("connected_clients")),
        "{:?}",
        f.skipped
    );
    assert!(
        f.skipped.iter().any(|s| s.starts_with("mem_fragmentation_ratio")),
        "{:?}",
        f.skipped
    );
    assert!(
        f.skipped.iter().any(|s| s.starts_with("slave0")),
        "{:?}",
        f.skipped
    );
    assert!(value(&f, "UsedMemory").is_some(), "the rest is still read");
    let f = figures("# Server\nredis_version:7.0.15\n");
    assert_eq!(f.skipped, ["role: missing"]);
}

#[test]
fn a_middle_node_of_a_chain_reports_its_master_and_its_replicas_lag() {
    assert_eq!(figures(REPLICA).master, Some(("127.0.0.1".to_owned(), 17990)));
    let middle = REPLICA
        .replace(
            "connected_slaves:0",
            "connected_slaves:1\nslave0:ip=10.0.0.9,port=6379,state=online,offset=1000,lag=2",
        )
        .replace("master_repl_offset:1655", "master_repl_offset:1600");
    let f = figures(&middle);
    assert!(f.skipped.is_empty(), "{:?}", f.skipped);
    assert_eq!(value(&f, "IsMaster"), Some(0.0));
    assert_eq!(value(&f, "MaxReplicaLagBytes"), Some(600.0));
    assert_eq!(f.replicas.len(), 1);
    assert_eq!(f.replicas[0].replica, "10.0.0.9:6379");
    assert_eq!(f.replicas[0].seconds, 2.0);
}

#[test]
fn a_replica_without_its_masters_address_says_so() {
    let f = figures(&REPLICA.replace("master_port:17990", "master_port:x"));
    assert_eq!(f.master, None);
    assert!(
        f.skipped.iter().any(|s| s.starts_with("master_host/master_port")),
        "{:?}",
        f.skipped
    );
}
