use mongodb::bson::{Document, doc};

use super::*;

fn config() -> ReplSetConfig {
    ReplSetConfig::from_document(&doc! {
        "_id": "kate.example.com", "version": 3,
        "members": [
            { "_id": 0, "host": "d1:27017" },
            { "_id": 1, "host": "d2:27017" },
            { "_id": 2, "host": "d3:27017", "votes": 0, "priority": 0.0 },
            { "_id": 3, "host": "a1:27017", "arbiterOnly": true },
        ]
    })
    .expect("a valid config")
}

fn health(host: &str, health: f64, state: i32) -> MemberHealth {
    MemberHealth {
        host: host.into(),
        health,
        state,
        optime: None,
    }
}

fn counts(h: &[MemberHealth]) -> Vec<f64> {
    set_counts(&config(), h).into_iter().map(|(_, _, v)| v).collect()
}

#[test]
fn all_up() {
    let h = [
        health("d1:27017", 1.0, 1),
        health("d2:27017", 1.0, 2),
        health("d3:27017", 1.0, 2),
        health("a1:27017", 1.0, 7),
    ];
    assert_eq!(counts(&h), [3.0, 0.0, 1.0, 0.0]);
    let names: Vec<&str> = set_counts(&config(), &h).into_iter().map(|(n, ..)| n).collect();
    assert_eq!(
        names,
        [
            "HealthyHostCount",
            "UnHealthyHostCount",
            "ArbiterCount",
            "UnHealthyArbiterCount"
        ]
    );
}

#[test]
fn down_recovering_and_missing_members_are_unhealthy() {
    let h = [
        health("d1:27017", 1.0, 1),
        health("d2:27017", 0.0, 8),
        // RECOVERING: answers, but serves no reads.
        health("d3:27017", 1.0, 3),
        // The arbiter is not in the status at all.
    ];
    assert_eq!(counts(&h), [1.0, 2.0, 1.0, 1.0]);
}

/// A 7.0 secondary's serverStatus, trimmed to the sections read and a few
/// neighbours, with the types mongod sends (Int32, Int64, Double).
fn status_7_0() -> Document {
    doc! {
        "host": "ip-10-0-1-12", "version": "7.0.15", "process": "mongod",
        "pid": 2211_i64, "uptime": 86_412.0, "uptimeMillis": 86_412_017_i64,
        "localTime": mongodb::bson::DateTime::from_millis(1_700_000_000_000),
        "asserts": { "regular": 0, "warning": 0, "msg": 0, "user": 12, "rollovers": 0 },
        "connections": {
            "current": 42, "available": 838_818, "totalCreated": 1_731_i64, "rejected": 0_i64,
            "active": 7, "threaded": 42, "exhaustIsMaster": 0_i64, "exhaustHello": 3_i64,
            "awaitingTopologyChanges": 3_i64,
        },
        "globalLock": {
            "totalTime": 86_412_000_000_i64,
            "currentQueue": { "total": 3, "readers": 1, "writers": 2 },
            "activeClients": { "total": 9, "readers": 4, "writers": 5 },
        },
        "mem": { "bits": 64, "resident": 1_530, "virtual": 3_120, "supported": true },
        "opcounters": {
            "insert": 10_i64, "query": 2_000_i64, "update": 30_i64, "delete": 4_i64,
            "getmore": 5_000_i64, "command": 123_456_i64,
        },
        "repl": {
            "topologyVersion": { "processId": mongodb::bson::oid::ObjectId::new(), "counter": 6_i64 },
            "hosts": ["10.0.1.11:27017", "10.0.1.12:27017"],
            "arbiters": ["10.0.1.13:27017"],
            "setName": "kate.example.com", "setVersion": 4,
            "isWritablePrimary": false, "secondary": true,
            "primary": "10.0.1.11:27017", "me": "10.0.1.12:27017",
            "rbid": 1,
        },
        "metrics": {
            "cursor": {
                "moreThanOneBatch": 0_i64, "timedOut": 0_i64, "totalOpened": 17_i64,
                "lifespan": { "lessThan1Second": 17_i64 },
                "open": { "noTimeout": 0_i64, "pinned": 1_i64, "total": 6_i64 },
            },
            "document": { "deleted": 4_i64, "inserted": 10_i64 },
        },
        "wiredTiger": {
            "uri": "statistics:",
            "cache": {
                "bytes currently in the cache": 734_003_200_i64,
                "maximum bytes configured": 3_221_225_472_i64,
                "tracked dirty bytes in the cache": 12_288_i64,
            },
        },
        "ok": 1.0,
    }
}

fn values(f: &MemberFigures) -> Vec<(&'static str, Unit, f64)> {
    f.values.clone()
}

#[test]
fn a_7_0_secondary_s_figures() {
    let f = member_figures(&status_7_0());
    let mib = 1024.0 * 1024.0;
    assert_eq!(
        values(&f),
        [
            ("OperationsQueuedWaitingForLock", Unit::Count, 3.0),
            ("ReadOperationsQueuedWaitingForLock", Unit::Count, 1.0),
            ("WriteOperationsQueuedWaitingForLock", Unit::Count, 2.0),
            ("ActiveClients", Unit::Count, 9.0),
            ("ActiveReaders", Unit::Count, 4.0),
            ("ActiveWriters", Unit::Count, 5.0),
            ("ResidentMemory", Unit::Bytes, 1_530.0 * mib),
            ("VirtualMemory", Unit::Bytes, 3_120.0 * mib),
            ("ActiveConnections", Unit::Count, 42.0),
            ("AvailableConnections", Unit::Count, 838_818.0),
            ("OpenCursors", Unit::Count, 6.0),
            ("InsertOperations", Unit::Count, 10.0),
            ("QueryOperations", Unit::Count, 2_000.0),
            ("UpdateOperations", Unit::Count, 30.0),
            ("DeleteOperations", Unit::Count, 4.0),
            ("GetMoreOperations", Unit::Count, 5_000.0),
            ("CommandOperations", Unit::Count, 123_456.0),
            ("CacheUsedBytes", Unit::Bytes, 734_003_200.0),
            ("CacheMaxBytes", Unit::Bytes, 3_221_225_472.0),
        ]
    );
    assert!(f.skipped.is_empty(), "{:?}", f.skipped);
    assert!(!f.is_primary);
    assert_eq!(f.set_name.as_deref(), Some("kate.example.com"));
}

#[test]
fn a_4_4_primary_says_ismaster_and_doubles_are_numbers() {
    // Before 4.9 serverStatus.repl has `ismaster`; mongod sends some
    // figures as doubles (and a 4.4 mem section still has no mapped).
    let status = doc! {
        "host": "old", "version": "4.4.29", "process": "mongod", "uptime": 12.0,
        "globalLock": {
            "currentQueue": { "total": 0, "readers": 0, "writers": 0 },
            "activeClients": { "total": 0, "readers": 0, "writers": 0 },
        },
        "mem": { "bits": 64, "resident": 88.0, "virtual": 1_542.5, "supported": true },
        "connections": { "current": 5_i64, "available": 51_195, "totalCreated": 9 },
        "metrics": { "cursor": { "open": { "total": 0_i64 } } },
        "repl": { "setName": "old-set", "ismaster": true, "secondary": false, "me": "a:27017" },
        "ok": 1.0,
    };
    let f = member_figures(&status);
    assert!(f.is_primary);
    assert_eq!(f.set_name.as_deref(), Some("old-set"));
    assert!(
        f.values
            .contains(&("VirtualMemory", Unit::Bytes, 1_542.5 * 1024.0 * 1024.0))
    );
    assert!(f.values.contains(&("ActiveConnections", Unit::Count, 5.0)));
    assert!(f.skipped.is_empty(), "{:?}", f.skipped);
    // No opcounters, no wiredTiger: left out.
    assert_eq!(f.values.len(), 11, "{:?}", f.values);
}

#[test]
fn a_field_that_is_not_a_number_is_skipped_and_the_rest_kept() {
    let mut status = status_7_0();
    let queue = status
        .get_document_mut("globalLock")
        .and_then(|g| g.get_document_mut("currentQueue"))
        .expect("a queue");
    queue.insert("total", "x");
    status.insert("opcounters", "not a section");
    status
        .get_document_mut("mem")
        .expect("mem")
        .insert("resident", f64::NAN);
    status
        .get_document_mut("repl")
        .expect("repl")
        .insert("isWritablePrimary", 1);
    let f = member_figures(&status);
    assert_eq!(
        f.skipped,
        [
            "globalLock.currentQueue.total: \"x\" is not a number",
            "mem.resident: NaN is not a number",
            "opcounters: \"not a section\" is not a document",
            "repl.isWritablePrimary: 1 is not a boolean",
        ]
    );
    let names: Vec<&str> = f.values.iter().map(|(n, ..)| *n).collect();
    assert!(!names.contains(&"OperationsQueuedWaitingForLock") && !names.contains(&"ResidentMemory"));
    assert!(names.contains(&"ReadOperationsQueuedWaitingForLock") && names.contains(&"CacheMaxBytes"));
    assert!(!names.iter().any(|n| n.ends_with("Operations")), "{names:?}");
    assert_eq!(f.values.len(), 19 - 2 - 6);
    assert!(!f.is_primary, "an unreadable flag is not a primary");
}

#[test]
fn missing_sections_are_left_out() {
    let mut status = status_7_0();
    for section in ["globalLock", "wiredTiger", "repl"] {
        status.remove(section);
    }
    // mongod on a platform without process figures.
    status.insert(
        "mem",
        doc! { "bits": 64, "supported": false, "note": "not all mem info support on this platform" },
    );
    let f = member_figures(&status);
    let names: Vec<&str> = f.values.iter().map(|(n, ..)| *n).collect();
    assert_eq!(
        names,
        [
            "ActiveConnections",
            "AvailableConnections",
            "OpenCursors",
            "InsertOperations",
            "QueryOperations",
            "UpdateOperations",
            "DeleteOperations",
            "GetMoreOperations",
            "CommandOperations",
        ]
    );
    assert!(f.skipped.is_empty(), "{:?}", f.skipped);
    assert_eq!((f.is_primary, f.set_name), (false, None));
    assert_eq!(member_figures(&doc! { "ok": 1.0 }), MemberFigures::default());
}

fn at(host: &str, state: i32, optime_ms: Option<i64>) -> MemberHealth {
    MemberHealth {
        host: host.into(),
        health: 1.0,
        state,
        optime: optime_ms.and_then(chrono::DateTime::from_timestamp_millis),
    }
}

const T: i64 = 1_700_000_000_000;

#[test]
fn lag_behind_the_one_primary() {
    let h = [
        at("d1:27017", 2, Some(T - 2_500)),
        at("d2:27017", 1, Some(T)),
        // Ahead of the primary as this reporter saw it: 0, not negative.
        at("d3:27017", 2, Some(T + 1_000)),
        // The arbiter and a member that is down have no optime.
        at("a1:27017", 7, None),
        MemberHealth {
            health: 0.0,
            ..at("d4:27017", 8, None)
        },
    ];
    assert_eq!(
        lag_seconds(&h),
        [
            ("d1:27017".to_owned(), 2.5),
            ("d2:27017".to_owned(), 0.0),
            ("d3:27017".to_owned(), 0.0),
        ]
    );
}

#[test]
fn no_lag_without_exactly_one_primary_with_an_optime() {
    let none = [at("d1:27017", 2, Some(T)), at("d2:27017", 2, Some(T - 1_000))];
    assert!(lag_seconds(&none).is_empty());
    let two = [
        at("d1:27017", 1, Some(T)),
        at("d2:27017", 1, Some(T - 1_000)),
        at("d3:27017", 2, Some(T - 5_000)),
    ];
    assert!(lag_seconds(&two).is_empty());
    let blind = [at("d1:27017", 1, None), at("d2:27017", 2, Some(T))];
    assert!(lag_seconds(&blind).is_empty());
    assert!(lag_seconds(&[]).is_empty());
    // Only arbiters besides the primary: the primary's own 0.
    let arbiters = [
        at("d1:27017", 1, Some(T)),
        at("a1:27017", 7, None),
        at("a2:27017", 7, None),
    ];
    assert_eq!(lag_seconds(&arbiters), [("d1:27017".to_owned(), 0.0)]);
}
