use mongodb::bson::oid::ObjectId;
use mongodb::bson::{Bson, Document, doc};

use super::*;

const SET: &str = "kate.example.com";

/// `(_id, host, votes)`; a host starting with `a` is an arbiter, as in the
/// apply tests' fake set.
fn config_of(members: &[(i32, &str, i32)]) -> ReplSetConfig {
    let members: Vec<Bson> = members
        .iter()
        .map(|&(id, host, votes)| {
            let arbiter = host.starts_with('a');
            let priority = if arbiter || votes == 0 { 0.0 } else { 1.0 };
            Bson::Document(doc! { "_id": id, "host": host, "arbiterOnly": arbiter, "votes": votes, "priority": priority })
        })
        .collect();
    ReplSetConfig::from_document(&doc! {
        "_id": SET,
        "version": 7,
        "term": 3_i64,
        "members": members,
        "protocolVersion": 1_i64,
        "settings": { "chainingAllowed": true, "replicaSetId": ObjectId::parse_str("65f1c0ffee0ddba11cafe001").expect("hex") },
    })
    .expect("a valid config")
}

/// Voting members `hosts`, `_id`s from 0.
fn hosts(hosts: &[&str]) -> ReplSetConfig {
    let members: Vec<(i32, &str, i32)> = hosts
        .iter()
        .enumerate()
        .map(|(i, h)| (i32::try_from(i).expect("few"), *h, 1))
        .collect();
    config_of(&members)
}

/// `n` data members `d0:27017`…, the first `voting` of them with a vote.
fn sized(n: usize, voting: usize) -> ReplSetConfig {
    let names: Vec<String> = (0..n).map(|i| format!("d{i}:27017")).collect();
    let members: Vec<(i32, &str, i32)> = names
        .iter()
        .enumerate()
        .map(|(i, h)| (i32::try_from(i).expect("few"), h.as_str(), i32::from(i < voting)))
        .collect();
    config_of(&members)
}

fn health(host: &str, up: bool) -> MemberHealth {
    MemberHealth {
        host: host.to_owned(),
        health: if up { 1.0 } else { 0.0 },
        state: match (up, host.starts_with('a')) {
            (false, _) => 8,
            (true, true) => 7,
            (true, false) => 2,
        },
        optime: None,
    }
}

/// Health for every member of `config`, `down` ones down.
fn health_of(config: &ReplSetConfig, down: &[&str]) -> Vec<MemberHealth> {
    config
        .members
        .iter()
        .map(|m| health(&m.host, !down.iter().any(|d| same_host(d, &m.host))))
        .collect()
}

fn reconfig(decision: Result<Decision, Refusal>) -> (ReplSetConfig, MemberConfig, Option<String>) {
    match decision {
        Ok(Decision::Reconfig { config, member, note }) => (config, member, note),
        other => panic!("expected a reconfig, got {other:?}"),
    }
}

fn unchanged(decision: Result<Decision, Refusal>) -> String {
    match decision {
        Ok(Decision::Unchanged { reason }) => reason,
        other => panic!("expected no change, got {other:?}"),
    }
}

fn refusal(decision: Result<Decision, Refusal>) -> Refusal {
    match decision {
        Err(r) => r,
        Ok(d) => panic!("expected a refusal, got {d:?}"),
    }
}

fn ids(config: &ReplSetConfig) -> Vec<i64> {
    config.members.iter().map(|m| m.id).collect()
}

fn host_list(config: &ReplSetConfig) -> Vec<&str> {
    config.members.iter().map(|m| m.host.as_str()).collect()
}

fn keys(doc: &Document) -> Vec<&str> {
    doc.keys().map(String::as_str).collect()
}

/// `config` survives the trip to MongoDB and back unchanged.
fn assert_round_trip(config: &ReplSetConfig) {
    let back = ReplSetConfig::from_document(&config.to_document()).expect("our own document reads back");
    assert_eq!(&back, config);
}

// ---------------------------------------------------------------- parsing

/// `replSetGetConfig`'s `config` from a MongoDB 7.0 set: a data member with
/// tags and a higher priority, one being caught up (`newlyAdded`), an
/// arbiter, and a hidden delayed backup member without a vote.
fn mongo7() -> Document {
    doc! {
        "_id": "kate",
        "version": 12,
        "term": 4_i64,
        "members": [
            {
                "_id": 0, "host": "mongo-a.internal:27017", "arbiterOnly": false, "buildIndexes": true,
                "hidden": false, "priority": 2.0, "tags": { "az": "eu-west-1a" },
                "secondaryDelaySecs": 0_i64, "votes": 1,
            },
            {
                "_id": 1, "host": "mongo-b.internal:27017", "arbiterOnly": false, "buildIndexes": true,
                "hidden": false, "priority": 1.0, "tags": { "az": "eu-west-1b" },
                "secondaryDelaySecs": 0_i64, "votes": 1, "newlyAdded": true,
            },
            {
                "_id": 3, "host": "10.0.3.9:27018", "arbiterOnly": true, "buildIndexes": true,
                "hidden": false, "priority": 0.0, "tags": {}, "secondaryDelaySecs": 0_i64, "votes": 1,
            },
            {
                "_id": 4, "host": "mongo-d.internal:27017", "arbiterOnly": false, "buildIndexes": false,
                "hidden": true, "priority": 0.0, "tags": { "use": "backup" },
                "secondaryDelaySecs": 3600_i64, "votes": 0,
            },
        ],
        "protocolVersion": 1_i64,
        "writeConcernMajorityJournalDefault": true,
        "settings": {
            "chainingAllowed": true,
            "heartbeatIntervalMillis": 2000,
            "heartbeatTimeoutSecs": 10,
            "electionTimeoutMillis": 10000,
            "catchUpTimeoutMillis": -1,
            "catchUpTakeoverDelayMillis": 30000,
            "getLastErrorModes": { "multiAz": { "az": 2 } },
            "getLastErrorDefaults": { "w": 1, "wtimeout": 0 },
            "replicaSetId": ObjectId::parse_str("65f1c0ffee0ddba11cafe001").expect("hex"),
        },
    }
}

/// `mongo7()` as it must be sent back: no `term`, no `newlyAdded`.
fn mongo7_sent() -> Document {
    let mut doc = mongo7();
    doc.remove("term");
    doc.get_array_mut("members").expect("members")[1]
        .as_document_mut()
        .expect("a member")
        .remove("newlyAdded");
    doc
}

#[test]
fn a_mongodb_7_config_is_read() {
    let config = ReplSetConfig::from_document(&mongo7()).expect("valid");
    assert_eq!(config.id, "kate");
    assert_eq!(config.version, 12);
    assert_eq!(ids(&config), [0, 1, 3, 4]);
    assert_eq!(
        host_list(&config),
        [
            "mongo-a.internal:27017",
            "mongo-b.internal:27017",
            "10.0.3.9:27018",
            "mongo-d.internal:27017"
        ]
    );
    let kinds: Vec<Kind> = config.members.iter().map(MemberConfig::kind).collect();
    assert_eq!(kinds, [Kind::Data, Kind::Data, Kind::Arbiter, Kind::Data]);
    assert_eq!(config.members[0].priority, 2.0);
    assert_eq!(config.members[2].priority, 0.0);
    assert!(config.members[3].hidden && config.members[3].votes == 0);
    assert_eq!(config.voting(), 3);
    assert_eq!(
        keys(&config.members[0].rest),
        ["buildIndexes", "tags", "secondaryDelaySecs"],
        "only the untyped fields are in rest"
    );
    assert_eq!(
        config.members[3].rest.get("secondaryDelaySecs"),
        Some(&Bson::Int64(3600))
    );
    assert!(!config.members[1].rest.contains_key("newlyAdded"));
    assert_eq!(
        keys(&config.rest),
        [
            "protocolVersion",
            "writeConcernMajorityJournalDefault",
            "settings"
        ]
    );
    assert_eq!(config.rest.get("protocolVersion"), Some(&Bson::Int64(1)));
    let settings = config.rest.get_document("settings").expect("settings kept");
    assert_eq!(settings, mongo7().get_document("settings").expect("settings"));
    assert!(matches!(settings.get("replicaSetId"), Some(Bson::ObjectId(_))));
}

#[test]
fn a_round_trip_keeps_every_unknown_field_and_drops_term_and_newly_added() {
    let config = ReplSetConfig::from_document(&mongo7()).expect("valid");
    let sent = config.to_document();
    // Document equality ignores order but not numeric types: every value
    // goes back as the type MongoDB gave it.
    assert_eq!(sent, mongo7_sent());
    assert!(!sent.contains_key("term"));
    for m in sent.get_array("members").expect("members") {
        assert!(
            !m.as_document().expect("a member").contains_key("newlyAdded"),
            "{m}"
        );
    }
    assert_round_trip(&config);
}

#[test]
fn to_document_puts_id_and_version_first_and_sends_no_term() {
    let config = ReplSetConfig::from_document(&mongo7()).expect("valid");
    let sent = config.to_document();
    assert_eq!(
        keys(&sent),
        [
            "_id",
            "version",
            "members",
            "protocolVersion",
            "writeConcernMajorityJournalDefault",
            "settings"
        ]
    );
    let member = sent.get_array("members").expect("members")[0]
        .as_document()
        .expect("a member")
        .clone();
    assert_eq!(
        keys(&member),
        [
            "_id",
            "host",
            "arbiterOnly",
            "hidden",
            "priority",
            "votes",
            "buildIndexes",
            "tags",
            "secondaryDelaySecs"
        ]
    );
    // Also for a config whose rest was built by hand with fields it must
    // not carry: the typed values win and the primary's fields stay out.
    let mut built = hosts(&["d0:27017"]);
    built.rest.insert("term", 9_i64);
    built.rest.insert("_id", "other");
    built.rest.insert("version", 99);
    built.members[0].rest.insert("newlyAdded", true);
    built.members[0].rest.insert("votes", 0);
    let sent = built.to_document();
    assert_eq!(keys(&sent)[..2], ["_id", "version"]);
    assert_eq!(sent.get("_id"), Some(&Bson::String(SET.to_owned())));
    assert_eq!(sent.get("version"), Some(&Bson::Int32(7)));
    assert!(!sent.contains_key("term"));
    let member = sent.get_array("members").expect("members")[0]
        .as_document()
        .expect("a member")
        .clone();
    assert!(!member.contains_key("newlyAdded"));
    assert_eq!(member.get("votes"), Some(&Bson::Int32(1)));
}

#[test]
fn to_document_writes_the_numeric_types_mongodb_expects() {
    let config = ReplSetConfig::from_document(&doc! {
        "_id": SET,
        "version": 5_i64,
        "members": [
            { "_id": 0_i64, "host": "d0", "votes": 1.0, "priority": 2, "arbiterOnly": 0, "hidden": 0_i64 },
            { "_id": 1.0, "host": "a1", "votes": 1_i64, "arbiterOnly": 1.0 },
        ],
    })
    .expect("valid");
    let sent = config.to_document();
    assert_eq!(sent.get("version"), Some(&Bson::Int32(5)));
    let members = sent.get_array("members").expect("members");
    let d0 = members[0].as_document().expect("a member");
    assert_eq!(d0.get("_id"), Some(&Bson::Int32(0)));
    assert_eq!(d0.get("votes"), Some(&Bson::Int32(1)));
    assert_eq!(d0.get("priority"), Some(&Bson::Double(2.0)));
    assert_eq!(d0.get("arbiterOnly"), Some(&Bson::Boolean(false)));
    assert_eq!(d0.get("hidden"), Some(&Bson::Boolean(false)));
    assert_eq!(
        d0.get("host"),
        Some(&Bson::String("d0".to_owned())),
        "the host is kept as MongoDB has it"
    );
    let a1 = members[1].as_document().expect("a member");
    assert_eq!(a1.get("arbiterOnly"), Some(&Bson::Boolean(true)));
    assert_eq!(a1.get("priority"), Some(&Bson::Double(0.0)));

    let mut big = config.clone();
    big.version = 3_000_000_000;
    assert_eq!(
        big.to_document().get("version"),
        Some(&Bson::Int64(3_000_000_000))
    );
    assert_round_trip(&big);
}

#[test]
fn the_integer_types_mongodb_uses_are_accepted() {
    for value in [Bson::Int32(5), Bson::Int64(5), Bson::Double(5.0)] {
        let config = ReplSetConfig::from_document(&doc! {
            "_id": SET,
            "version": value.clone(),
            "members": [{ "_id": value.clone(), "host": "d5:27017", "votes": value.clone() }],
        })
        .unwrap_or_else(|e| panic!("{value:?}: {e}"));
        assert_eq!(config.version, 5, "{value:?}");
        assert_eq!(config.members[0].id, 5, "{value:?}");
        assert_eq!(config.members[0].votes, 5, "{value:?}");
    }
    for value in [
        Bson::Int32(3),
        Bson::Int64(3),
        Bson::Double(3.0),
        Bson::Double(0.5),
    ] {
        let config = ReplSetConfig::from_document(&doc! {
            "_id": SET, "version": 1, "members": [{ "_id": 0, "host": "d0", "priority": value.clone() }],
        })
        .unwrap_or_else(|e| panic!("{value:?}: {e}"));
        let want = match value {
            Bson::Double(d) => d,
            _ => 3.0,
        };
        assert_eq!(config.members[0].priority, want, "{value:?}");
    }
}

#[test]
fn member_fields_default_as_mongodb_does() {
    let config = ReplSetConfig::from_document(&doc! {
        "_id": SET,
        "version": 1,
        "members": [
            { "_id": 0, "host": "d0:27017" },
            { "_id": 1, "host": "a1:27017", "arbiterOnly": true },
        ],
    })
    .expect("valid");
    let d0 = &config.members[0];
    assert_eq!(
        (d0.arbiter_only, d0.votes, d0.priority, d0.hidden, d0.kind()),
        (false, 1, 1.0, false, Kind::Data)
    );
    assert!(d0.rest.is_empty());
    let a1 = &config.members[1];
    assert_eq!(
        (a1.arbiter_only, a1.votes, a1.priority, a1.hidden, a1.kind()),
        (true, 1, 0.0, false, Kind::Arbiter)
    );
    assert!(config.rest.is_empty());
    assert_eq!(config.voting(), 2);
}

#[test]
fn a_bad_config_is_an_error_naming_the_field() {
    let member =
        |m: Document| doc! { "_id": SET, "version": 1, "members": [ { "_id": 0, "host": "d0:27017" }, m ] };
    let cases: Vec<(Document, &str)> = vec![
        (doc! { "version": 1, "members": [] }, "_id: missing"),
        (
            doc! { "_id": 1, "version": 1, "members": [] },
            "_id: expected the set's name, a string, found Int32",
        ),
        (doc! { "_id": SET, "members": [] }, "version: missing"),
        (
            doc! { "_id": SET, "version": "1", "members": [] },
            "version: expected an integer, found String",
        ),
        (
            doc! { "_id": SET, "version": 1.5, "members": [] },
            "version: 1.5 is not an integer",
        ),
        (
            doc! { "_id": SET, "version": f64::NAN, "members": [] },
            "version: NaN is not an integer",
        ),
        (
            doc! { "_id": SET, "version": -1, "members": [] },
            "version: -1 is out of range",
        ),
        (
            doc! { "_id": SET, "version": i64::MAX, "members": [] },
            "version: 9223372036854775807 is out of range",
        ),
        (doc! { "_id": SET, "version": 1 }, "members: missing"),
        (
            doc! { "_id": SET, "version": 1, "members": {} },
            "members: expected an array, found EmbeddedDocument",
        ),
        (
            doc! { "_id": SET, "version": 1, "members": [ { "_id": 0, "host": "d0" }, "d1" ] },
            "members[1]: expected a document, found String",
        ),
        (member(doc! { "host": "d1:27017" }), "members[1]._id: missing"),
        (
            member(doc! { "_id": "one", "host": "d1:27017" }),
            "members[1]._id: expected an integer, found String",
        ),
        (
            member(doc! { "_id": 1.25, "host": "d1:27017" }),
            "members[1]._id: 1.25 is not an integer",
        ),
        (member(doc! { "_id": 1 }), "members[1].host: missing"),
        (
            member(doc! { "_id": 1, "host": 27017 }),
            "members[1].host: expected a string, found Int32",
        ),
        (member(doc! { "_id": 1, "host": "" }), "members[1].host: empty"),
        (
            member(doc! { "_id": 1, "host": "d 1:27017" }),
            "members[1].host: \"d 1:27017\" contains a space",
        ),
        (
            member(doc! { "_id": 1, "host": "d1:0" }),
            "members[1].host: \"d1:0\" has port \"0\"",
        ),
        (
            member(doc! { "_id": 1, "host": "d1:27017", "votes": 0.5 }),
            "members[1].votes: 0.5 is not an integer",
        ),
        (
            member(doc! { "_id": 1, "host": "d1:27017", "votes": "1" }),
            "members[1].votes: expected an integer, found String",
        ),
        (
            member(doc! { "_id": 1, "host": "d1:27017", "priority": "high" }),
            "members[1].priority: expected a number, found String",
        ),
        (
            member(doc! { "_id": 1, "host": "d1:27017", "priority": f64::INFINITY }),
            "members[1].priority: inf is not a finite number",
        ),
        (
            member(doc! { "_id": 1, "host": "d1:27017", "arbiterOnly": "yes" }),
            "members[1].arbiterOnly: expected a boolean, found String",
        ),
        (
            member(doc! { "_id": 1, "host": "d1:27017", "hidden": Bson::Null }),
            "members[1].hidden: expected a boolean, found Null",
        ),
        (
            member(doc! { "_id": 0, "host": "d1:27017" }),
            "members[1]._id: 0 is also the _id of members[0]",
        ),
        (
            member(doc! { "_id": 1, "host": "D0" }),
            "members[1].host: D0 is also the host of members[0]",
        ),
    ];
    for (doc, want) in cases {
        let err = ReplSetConfig::from_document(&doc).expect_err(want);
        assert!(err.starts_with(want), "{want:?}: got {err:?}");
    }
}

#[test]
fn members_are_found_by_host_in_any_spelling() {
    let config = config_of(&[(0, "d0:27017", 1), (1, "D1", 1), (2, "a2:27018", 1)]);
    assert_eq!(config.member("d0").map(|m| m.id), Some(0));
    assert_eq!(config.member("D0:27017").map(|m| m.id), Some(0));
    assert_eq!(config.member("d1:27017").map(|m| m.id), Some(1));
    assert_eq!(config.member("a2:27018").map(|m| m.id), Some(2));
    assert_eq!(config.member("a2"), None, "another port is another member");
    assert_eq!(config.member("d3:27017"), None);
}

#[test]
fn voting_counts_members_with_a_vote() {
    assert_eq!(sized(3, 3).voting(), 3);
    assert_eq!(sized(9, 7).voting(), 7);
    assert_eq!(sized(2, 0).voting(), 0);
    assert_eq!(hosts(&[]).voting(), 0);
}

// ------------------------------------------------------------------ hosts

#[test]
fn hosts_are_normalized() {
    for (host, want) in [
        ("d1", "d1:27017"),
        ("d1:27017", "d1:27017"),
        ("D1.Example.COM", "d1.example.com:27017"),
        ("d1:27018", "d1:27018"),
        ("d1:027018", "d1:27018"),
        ("d1:1", "d1:1"),
        ("d1:65535", "d1:65535"),
        ("10.0.1.17", "10.0.1.17:27017"),
        ("10.0.1.17:27017", "10.0.1.17:27017"),
        ("[::1]", "[::1]:27017"),
        ("[::1]:27018", "[::1]:27018"),
        ("[0:0:0:0:0:0:0:1]:27017", "[::1]:27017"),
        ("[FE80::ABCD]", "[fe80::abcd]:27017"),
    ] {
        assert_eq!(normalize_host(host).as_deref(), Ok(want), "{host:?}");
    }
}

#[test]
fn bad_hosts_are_refused_with_a_reason() {
    for (host, why) in [
        ("", "empty"),
        (" d1:27017", "contains a space"),
        ("d1 :27017", "contains a space"),
        ("d1:27017\n", "contains a space"),
        ("d1\u{7}", "contains a control character"),
        ("d1/27017", "contains a '/'"),
        ("mongodb://d1:27017", "contains a '/'"),
        ("/tmp/mongodb-27017.sock", "contains a '/'"),
        ("d1:27017,d2:27017", "contains a ','"),
        ("d1:", "has port \"\""),
        ("d1:0", "has port \"0\""),
        ("d1:65536", "has port \"65536\""),
        ("d1:99999", "has port \"99999\""),
        ("d1:-1", "has port \"-1\""),
        ("d1:+27017", "has port \"+27017\""),
        ("d1:port", "has port \"port\""),
        (":27017", "has no host name"),
        ("::1", "more than one ':'"),
        ("fe80::1:27017", "more than one ':'"),
        ("[::1", "unclosed '['"),
        ("[d1]:27017", "does not have an IPv6 address"),
        ("[]", "does not have an IPv6 address"),
        ("[::1]27017", "after ']'"),
        ("[::1]:", "has port \"\""),
        ("[::1]:70000", "has port \"70000\""),
        ("d1]:27017", "bracket outside"),
        ("d[1]", "bracket outside"),
    ] {
        let err = normalize_host(host).expect_err(host);
        assert!(err.contains(why), "{host:?}: {err}");
    }
}

#[test]
fn same_host_compares_members_not_spellings() {
    for (a, b, same) in [
        ("d1:27017", "d1:27017", true),
        ("d1", "d1:27017", true),
        ("D1", "d1:27017", true),
        ("d1.example.com:27017", "D1.EXAMPLE.COM", true),
        ("[::1]", "[::1]:27017", true),
        ("[::1]:27017", "[0:0::1]:27017", true),
        ("d1:27017", "d1:27018", false),
        ("d1", "d1:27018", false),
        ("d1:27017", "d2:27017", false),
        ("d1:27017", "d11:27017", false),
        ("[::1]:27017", "[::2]:27017", false),
        ("[::1]:27017", "127.0.0.1:27017", false),
        ("", "d1:27017", false),
        // Unreadable names still equal themselves, and nothing else.
        ("bad host", "bad host", true),
        ("bad host", "BAD HOST", true),
        ("bad host", "bad", false),
    ] {
        assert_eq!(same_host(a, b), same, "{a:?} vs {b:?}");
        assert_eq!(same_host(b, a), same, "{b:?} vs {a:?}");
    }
}

#[test]
fn a_member_is_up_when_healthy_and_primary_secondary_or_arbiter() {
    for (health, state, up) in [
        (1.0, 1, true),
        (1.0, 2, true),
        (1.0, 7, true),
        (0.0, 1, false),
        (0.0, 2, false),
        (0.0, 8, false),
        (1.0, 0, false),  // STARTUP
        (1.0, 3, false),  // RECOVERING
        (1.0, 5, false),  // STARTUP2
        (1.0, 6, false),  // UNKNOWN
        (1.0, 8, false),  // DOWN
        (1.0, 9, false),  // ROLLBACK
        (1.0, 10, false), // REMOVED
    ] {
        let m = MemberHealth {
            host: "d1:27017".into(),
            health,
            state,
            optime: None,
        };
        assert_eq!(m.is_up(), up, "{m:?}");
    }
}

#[test]
fn kinds_serialize_in_kebab_case() {
    assert_eq!(serde_json::to_string(&Kind::Data).expect("json"), "\"data\"");
    assert_eq!(
        serde_json::to_string(&Kind::Arbiter).expect("json"),
        "\"arbiter\""
    );
}

// ------------------------------------------------------------------- add

#[test]
fn a_data_member_is_added_with_a_vote() {
    let config = hosts(&["d0:27017", "d1:27017", "a2:27017"]);
    let (new, member, note) = reconfig(add(&config, "d3:27017", Kind::Data));
    assert_eq!(
        member,
        MemberConfig {
            id: 3,
            host: "d3:27017".into(),
            arbiter_only: false,
            votes: 1,
            priority: 1.0,
            hidden: false,
            rest: Document::new(),
        }
    );
    assert_eq!(note, None);
    assert_eq!(new.id, config.id);
    assert_eq!(new.version, config.version + 1);
    assert_eq!(new.rest, config.rest);
    assert_eq!(
        new.members[..3],
        config.members[..],
        "the others unchanged and in order"
    );
    assert_eq!(new.members.last(), Some(&member));
    assert_eq!(new.voting(), 4);
    assert_round_trip(&new);
}

#[test]
fn a_new_member_takes_the_smallest_free_id() {
    for (taken, want) in [
        (vec![0, 1, 3], 2),
        (vec![0, 1, 2], 3),
        (vec![1, 2], 0),
        (vec![3, 0, 2], 1),
        (vec![5], 0),
        (vec![0, 2, 4, 6], 1),
        (vec![], 0),
    ] {
        let names: Vec<String> = taken.iter().map(|i| format!("d{i}:27017")).collect();
        let members: Vec<(i32, &str, i32)> = taken
            .iter()
            .zip(&names)
            .map(|(i, h)| (*i, h.as_str(), 1))
            .collect();
        let (new, member, _) = reconfig(add(&config_of(&members), "new:27017", Kind::Data));
        assert_eq!(member.id, want, "ids {taken:?}");
        assert_eq!(new.members.len(), taken.len() + 1);
    }
    // A negative id (never MongoDB's) takes nothing from the range.
    let mut config = hosts(&["d0:27017"]);
    config.members[0].id = -1;
    assert_eq!(reconfig(add(&config, "new:27017", Kind::Data)).1.id, 0);
}

#[test]
fn an_arbiter_is_added_with_a_vote_and_no_priority() {
    let config = hosts(&["d0:27017", "d1:27017"]);
    let (new, member, note) = reconfig(add(&config, "a2:27017", Kind::Arbiter));
    assert_eq!(
        member,
        MemberConfig {
            id: 2,
            host: "a2:27017".into(),
            arbiter_only: true,
            votes: 1,
            priority: 0.0,
            hidden: false,
            rest: Document::new(),
        }
    );
    assert_eq!(member.kind(), Kind::Arbiter);
    assert_eq!(note, None);
    assert_eq!(new.version, 8);
    assert_eq!(new.voting(), 3);
    assert_round_trip(&new);
}

#[test]
fn a_data_member_beyond_seven_voters_is_added_without_a_vote() {
    let config = sized(7, 7);
    let (new, member, note) = reconfig(add(&config, "d7:27017", Kind::Data));
    assert_eq!((member.id, member.votes, member.priority), (7, 0, 0.0));
    assert!(!member.arbiter_only && !member.hidden);
    let note = note.expect("the operator is told");
    assert!(note.starts_with("added without a vote"), "{note}");
    assert!(note.contains(SET) && note.contains("7 voting members"), "{note}");
    assert_eq!(new.voting(), 7);
    assert_round_trip(&new);

    // Seven members but six votes: the newcomer gets the seventh.
    let (new, member, note) = reconfig(add(&sized(7, 6), "d7:27017", Kind::Data));
    assert_eq!((member.votes, member.priority, note), (1, 1.0, None));
    assert_eq!(new.voting(), 7);
}

#[test]
fn an_arbiter_beyond_seven_voters_is_refused() {
    let config = sized(8, 7);
    let r = refusal(add(&config, "a9:27017", Kind::Arbiter));
    assert_eq!(
        r,
        Refusal::ArbiterWithoutVote {
            set: SET.into(),
            host: "a9:27017".into(),
            voting: 7
        }
    );
    assert!(!r.is_retryable());
    let msg = r.to_string();
    assert!(
        msg.contains("a9:27017") && msg.contains(SET) && msg.contains("7 voting members"),
        "{msg}"
    );
    // Six votes: it gets the seventh.
    let (_, member, _) = reconfig(add(&sized(8, 6), "a9:27017", Kind::Arbiter));
    assert_eq!((member.votes, member.arbiter_only), (1, true));
}

#[test]
fn adding_a_member_twice_changes_nothing() {
    let config = config_of(&[
        (0, "d0:27017", 1),
        (1, "d1:27017", 1),
        (3, "d3:27017", 1),
        (4, "a4:27017", 1),
    ]);
    let reason = unchanged(add(&config, "d3:27017", Kind::Data));
    assert_eq!(
        reason,
        format!("d3:27017 is already a data member of {SET} (_id 3)")
    );
    let reason = unchanged(add(&config, "a4:27017", Kind::Arbiter));
    assert_eq!(
        reason,
        format!("a4:27017 is already an arbiter member of {SET} (_id 4)")
    );
    // Also when the set is full: the task is done, not refused.
    let full = sized(MAX_MEMBERS, 7);
    assert!(unchanged(add(&full, "d49:27017", Kind::Data)).contains("_id 49"));
    // A member without a vote is still a data member.
    assert!(unchanged(add(&full, "d8:27017", Kind::Data)).contains("already a data member"));
}

#[test]
fn a_member_never_changes_kind() {
    let config = hosts(&["d0:27017", "d1:27017", "a2:27017"]);
    let r = refusal(add(&config, "d1:27017", Kind::Arbiter));
    assert_eq!(
        r,
        Refusal::KindConflict {
            set: SET.into(),
            host: "d1:27017".into(),
            id: 1,
            is: Kind::Data,
            wanted: Kind::Arbiter,
        }
    );
    assert!(!r.is_retryable());
    let msg = r.to_string();
    assert!(
        msg.contains("d1:27017 is a data member of kate.example.com (_id 1)")
            && msg.contains("wants an arbiter"),
        "{msg}"
    );

    let r = refusal(add(&config, "A2", Kind::Data));
    assert_eq!(
        r,
        Refusal::KindConflict {
            set: SET.into(),
            host: "a2:27017".into(),
            id: 2,
            is: Kind::Arbiter,
            wanted: Kind::Data,
        }
    );
    assert!(!r.is_retryable());
    assert!(r.to_string().contains("a2:27017 is an arbiter member"), "{r}");
}

#[test]
fn an_added_host_is_normalized_and_matched_in_any_spelling() {
    let config = hosts(&["d0:27017", "d1"]);
    let (_, member, _) = reconfig(add(&config, "D2.Example.COM", Kind::Data));
    assert_eq!(member.host, "d2.example.com:27017");
    let (_, member, _) = reconfig(add(&config, "[::1]", Kind::Data));
    assert_eq!(member.host, "[::1]:27017");
    for spelling in ["d0", "D0", "d0:27017", "D0:27017"] {
        assert!(
            unchanged(add(&config, spelling, Kind::Data)).contains("_id 0"),
            "{spelling}"
        );
    }
    // The config's own spelling (no port) is what the reason names.
    assert!(unchanged(add(&config, "d1:27017", Kind::Data)).starts_with("d1 is already"));
    // Another port is another member.
    let (_, member, _) = reconfig(add(&config, "d0:27018", Kind::Data));
    assert_eq!((member.host.as_str(), member.id), ("d0:27018", 2));
}

#[test]
fn an_invalid_host_is_not_added() {
    let config = hosts(&["d0:27017"]);
    for host in ["", "d1:0", "d1:99999", "d 1", "d1/x", "d1,d2", "::1"] {
        for kind in [Kind::Data, Kind::Arbiter] {
            let r = refusal(add(&config, host, kind));
            assert!(
                matches!(&r, Refusal::InvalidHost { set, host: h, .. } if set == SET && h == host),
                "{host:?}: {r:?}"
            );
            assert!(!r.is_retryable());
            assert!(r.to_string().contains(SET), "{r}");
        }
    }
}

#[test]
fn a_set_of_fifty_members_takes_no_more() {
    let full = sized(MAX_MEMBERS, 7);
    for kind in [Kind::Data, Kind::Arbiter] {
        let r = refusal(add(&full, "new:27017", kind));
        assert_eq!(
            r,
            Refusal::TooManyMembers {
                set: SET.into(),
                host: "new:27017".into(),
                members: 50
            }
        );
        assert!(!r.is_retryable());
        let msg = r.to_string();
        assert!(
            msg.contains("new:27017") && msg.contains(SET) && msg.contains("50 members"),
            "{msg}"
        );
    }
    let (new, member, note) = reconfig(add(&sized(MAX_MEMBERS - 1, 7), "new:27017", Kind::Data));
    assert_eq!((member.id, member.votes), (49, 0));
    assert!(note.is_some());
    assert_eq!(new.members.len(), MAX_MEMBERS);
}

#[test]
fn an_add_keeps_everything_else_of_a_real_config() {
    let config = ReplSetConfig::from_document(&mongo7()).expect("valid");
    let (new, member, note) = reconfig(add(&config, "mongo-e.internal", Kind::Data));
    assert_eq!(member.id, 2, "the gap left by a replaced member");
    assert_eq!(member.host, "mongo-e.internal:27017");
    assert_eq!(note, None);
    assert_eq!(new.version, 13);
    assert_eq!(new.rest, config.rest);
    assert_eq!(new.members[..4], config.members[..]);
    let sent = new.to_document();
    let mut want = mongo7_sent();
    want.insert("version", 13);
    want.get_array_mut("members").expect("members").push(Bson::Document(doc! {
        "_id": 2, "host": "mongo-e.internal:27017", "arbiterOnly": false, "hidden": false, "priority": 1.0, "votes": 1,
    }));
    assert_eq!(sent, want);
    assert_round_trip(&new);
}

#[test]
fn add_then_add_again_is_unchanged() {
    for kind in [Kind::Data, Kind::Arbiter] {
        let config = hosts(&["d0:27017", "d1:27017"]);
        let (new, member, _) = reconfig(add(&config, "n2", kind));
        // What MongoDB hands back after the reconfig (it sets the term).
        let mut sent = new.to_document();
        sent.insert("term", 5_i64);
        let now = ReplSetConfig::from_document(&sent).expect("valid");
        assert_eq!(now, new);
        let reason = unchanged(add(&now, "n2:27017", kind));
        assert!(reason.contains(&format!("(_id {})", member.id)), "{reason}");
    }
}

// ---------------------------------------------------------------- remove

#[test]
fn a_secondary_is_removed() {
    let config = hosts(&["d0:27017", "d1:27017", "d2:27017"]);
    let health = health_of(&config, &[]);
    let (new, member, note) = reconfig(remove(&config, "d1:27017", Some("d0:27017"), &health));
    assert_eq!(member, config.members[1]);
    assert_eq!(note, None);
    assert_eq!(new.version, config.version + 1);
    assert_eq!(host_list(&new), ["d0:27017", "d2:27017"]);
    assert_eq!(
        new.members,
        [config.members[0].clone(), config.members[2].clone()]
    );
    assert_eq!(new.rest, config.rest);
    assert_eq!(new.id, config.id);
    assert_round_trip(&new);
}

#[test]
fn an_arbiter_is_removed() {
    let config = hosts(&["d0:27017", "d1:27017", "a2:27017"]);
    let health = health_of(&config, &[]);
    let (new, member, _) = reconfig(remove(&config, "A2", Some("d0:27017"), &health));
    assert_eq!(member.kind(), Kind::Arbiter);
    assert_eq!(host_list(&new), ["d0:27017", "d1:27017"]);
    assert_eq!(ids(&new), [0, 1]);
}

#[test]
fn a_host_that_is_not_a_member_is_already_removed() {
    let config = hosts(&["d0:27017", "d1:27017", "d2:27017"]);
    let reason = unchanged(remove(&config, "d9:27017", Some("d0:27017"), &[]));
    assert_eq!(
        reason,
        format!("d9:27017 is not a member of {SET}: already removed")
    );
    let reason = unchanged(remove(&config, "d1:27018", Some("d0:27017"), &[]));
    assert!(reason.contains("d1:27018 is not a member"), "{reason}");
}

#[test]
fn an_invalid_host_is_not_removed() {
    let config = hosts(&["d0:27017", "d1:27017"]);
    for host in ["", "d1:0", "d 1", "d1,d0"] {
        let r = refusal(remove(&config, host, None, &health_of(&config, &[])));
        assert!(
            matches!(&r, Refusal::InvalidHost { host: h, .. } if h == host),
            "{host:?}: {r:?}"
        );
        assert!(!r.is_retryable());
    }
}

#[test]
fn the_primary_is_not_removed() {
    let config = hosts(&["d0:27017", "d1:27017", "d2:27017"]);
    let health = health_of(&config, &[]);
    for (host, primary) in [("d0:27017", "d0:27017"), ("d0", "D0:27017"), ("D0:27017", "d0")] {
        let r = refusal(remove(&config, host, Some(primary), &health));
        assert_eq!(
            r,
            Refusal::IsPrimary {
                set: SET.into(),
                host: "d0:27017".into()
            }
        );
        assert!(r.is_retryable(), "the step-down task makes it a secondary");
        let msg = r.to_string();
        assert!(
            msg.contains("d0:27017 is the primary of kate.example.com"),
            "{msg}"
        );
    }
    // Unknown primary (None): nothing stops it here.
    reconfig(remove(&config, "d0:27017", None, &health));
}

#[test]
fn the_last_data_member_is_not_removed() {
    for config in [
        hosts(&["d0:27017", "a1:27017"]),
        hosts(&["d0:27017"]),
        sized(1, 0),
    ] {
        let r = refusal(remove(&config, "d0:27017", None, &health_of(&config, &[])));
        assert_eq!(
            r,
            Refusal::LastDataMember {
                set: SET.into(),
                host: "d0:27017".into()
            }
        );
        assert!(!r.is_retryable());
        assert!(
            r.to_string()
                .contains("d0:27017 is the last data member of kate.example.com"),
            "{r}"
        );
    }
    // The arbiter beside it can go.
    let config = hosts(&["d0:27017", "a1:27017"]);
    reconfig(remove(
        &config,
        "a1:27017",
        Some("d0:27017"),
        &health_of(&config, &[]),
    ));
}

#[test]
fn a_majority_of_the_voting_members_left_must_be_up() {
    struct Case {
        name: &'static str,
        config: ReplSetConfig,
        remove: &'static str,
        down: &'static [&'static str],
        /// `None`: allowed; `Some((voting, up))`: refused with those numbers.
        refused: Option<(usize, usize)>,
    }
    let cases = [
        Case {
            name: "3 voters, one down, remove a healthy one: V=2 up=1",
            config: sized(3, 3),
            remove: "d1:27017",
            down: &["d2:27017"],
            refused: Some((2, 1)),
        },
        Case {
            name: "3 voters, remove the down one: V=2 up=2",
            config: sized(3, 3),
            remove: "d2:27017",
            down: &["d2:27017"],
            refused: None,
        },
        Case {
            name: "3 voters all up: V=2 up=2",
            config: sized(3, 3),
            remove: "d1:27017",
            down: &[],
            refused: None,
        },
        Case {
            name: "2 voters, the other up: V=1 up=1",
            config: sized(2, 2),
            remove: "d1:27017",
            down: &[],
            refused: None,
        },
        Case {
            name: "2 voters, the other down: V=1 up=0",
            config: sized(2, 2),
            remove: "d1:27017",
            down: &["d0:27017"],
            refused: Some((1, 0)),
        },
        Case {
            name: "5 voters, 2 down, remove a healthy one: V=4 up=2",
            config: sized(5, 5),
            remove: "d1:27017",
            down: &["d3:27017", "d4:27017"],
            refused: Some((4, 2)),
        },
        Case {
            name: "5 voters, 2 down, remove a down one: V=4 up=3",
            config: sized(5, 5),
            remove: "d4:27017",
            down: &["d3:27017", "d4:27017"],
            refused: None,
        },
        Case {
            name: "5 voters, 1 down, remove a healthy one: V=4 up=3",
            config: sized(5, 5),
            remove: "d1:27017",
            down: &["d4:27017"],
            refused: None,
        },
        Case {
            name: "data, data, arbiter; the arbiter down; remove a data member: V=2 up=1",
            config: hosts(&["d0:27017", "d1:27017", "a2:27017"]),
            remove: "d1:27017",
            down: &["a2:27017"],
            refused: Some((2, 1)),
        },
        Case {
            name: "the only voter goes, a non-voting data member stays: V=0",
            config: sized(2, 1),
            remove: "d0:27017",
            down: &[],
            refused: Some((0, 0)),
        },
        Case {
            name: "non-voting member with every voter down",
            config: sized(4, 3),
            remove: "d3:27017",
            down: &["d0:27017", "d1:27017", "d2:27017", "d3:27017"],
            refused: None,
        },
        Case {
            name: "non-voting member of a set with no voter",
            config: sized(3, 0),
            remove: "d2:27017",
            down: &[],
            refused: None,
        },
    ];
    for case in cases {
        let health = health_of(&case.config, case.down);
        let got = remove(&case.config, case.remove, None, &health);
        match case.refused {
            None => {
                let (new, member, _) = reconfig(got);
                assert!(same_host(&member.host, case.remove), "{}", case.name);
                assert!(new.member(case.remove).is_none(), "{}", case.name);
            }
            Some((voting, up)) => {
                let r = refusal(got);
                assert_eq!(
                    r,
                    Refusal::NoMajority {
                        set: SET.into(),
                        host: case.remove.into(),
                        voting,
                        up
                    },
                    "{}",
                    case.name
                );
                assert!(r.is_retryable(), "{}: health can come back", case.name);
                let msg = r.to_string();
                assert!(
                    msg.contains(case.remove) && msg.contains(SET),
                    "{}: {msg}",
                    case.name
                );
                if voting > 0 {
                    assert!(
                        msg.contains(&format!("leave {voting} voting members of which {up} are up")),
                        "{}: {msg}",
                        case.name
                    );
                } else {
                    assert!(msg.contains("no voting member"), "{}: {msg}", case.name);
                }
            }
        }
    }
}

#[test]
fn a_member_missing_from_the_status_counts_as_down() {
    let config = sized(3, 3);
    let r = refusal(remove(&config, "d2:27017", None, &[]));
    assert!(matches!(r, Refusal::NoMajority { voting: 2, up: 0, .. }), "{r:?}");
    let only_d0 = [health("d0:27017", true)];
    let r = refusal(remove(&config, "d2:27017", None, &only_d0));
    assert!(matches!(r, Refusal::NoMajority { voting: 2, up: 1, .. }), "{r:?}");
    // Matched by host in any spelling.
    let spelled = [health("D0", true), health("d1", true)];
    reconfig(remove(&config, "d2:27017", None, &spelled));
    // Healthy but not a primary, secondary or arbiter is not up.
    let recovering = [
        health("d0:27017", true),
        MemberHealth {
            host: "d1:27017".into(),
            health: 1.0,
            state: 3,
            optime: None,
        },
    ];
    let r = refusal(remove(&config, "d2:27017", None, &recovering));
    assert!(matches!(r, Refusal::NoMajority { voting: 2, up: 1, .. }), "{r:?}");
}

#[test]
fn a_removal_that_frees_a_vote_names_the_members_without_one() {
    let config = sized(8, 7);
    let health = health_of(&config, &[]);
    let (new, _, note) = reconfig(remove(&config, "d6:27017", None, &health));
    assert_eq!(new.voting(), 6);
    let note = note.expect("the operator is told");
    assert!(
        note.contains("now has 6 voting members") && note.contains("d7:27017"),
        "{note}"
    );
    assert_eq!(
        new.member("d7:27017").map(|m| m.votes),
        Some(0),
        "nothing is changed"
    );
    // Removing the member without a vote frees nothing.
    let (_, _, note) = reconfig(remove(&config, "d7:27017", None, &health));
    assert_eq!(note, None);
}

#[test]
fn remove_then_remove_again_is_unchanged() {
    let config = hosts(&["d0:27017", "d1:27017", "a2:27017"]);
    let health = health_of(&config, &[]);
    let (new, _, _) = reconfig(remove(&config, "d1:27017", Some("d0:27017"), &health));
    let mut sent = new.to_document();
    sent.insert("term", 5_i64);
    let now = ReplSetConfig::from_document(&sent).expect("valid");
    assert_eq!(now, new);
    let reason = unchanged(remove(&now, "d1:27017", Some("d0:27017"), &health));
    assert!(reason.contains("already removed"), "{reason}");
}

#[test]
fn a_remove_from_a_real_config_keeps_everything_else() {
    let config = ReplSetConfig::from_document(&mongo7()).expect("valid");
    let health = health_of(&config, &[]);
    let (new, member, _) = reconfig(remove(
        &config,
        "mongo-b.internal",
        Some("mongo-a.internal:27017"),
        &health,
    ));
    assert_eq!(member.id, 1);
    assert_eq!(ids(&new), [0, 3, 4]);
    let mut want = mongo7_sent();
    want.insert("version", 13);
    want.get_array_mut("members").expect("members").remove(1);
    assert_eq!(new.to_document(), want);
    assert_round_trip(&new);
    // The hidden backup member has no vote: it goes whatever the health.
    let (new, member, _) = reconfig(remove(&config, "mongo-d.internal:27017", None, &[]));
    assert_eq!(member.id, 4);
    assert_eq!(ids(&new), [0, 1, 3]);
}

// -------------------------------------------------------------- refusals

#[test]
fn each_refusal_says_whether_it_may_pass() {
    let s = || SET.to_owned();
    let h = || "d1:27017".to_owned();
    for (r, retryable) in [
        (
            Refusal::InvalidHost {
                set: s(),
                host: h(),
                reason: "bad".into(),
            },
            false,
        ),
        (
            Refusal::KindConflict {
                set: s(),
                host: h(),
                id: 1,
                is: Kind::Data,
                wanted: Kind::Arbiter,
            },
            false,
        ),
        (
            Refusal::TooManyMembers {
                set: s(),
                host: h(),
                members: 50,
            },
            false,
        ),
        (
            Refusal::ArbiterWithoutVote {
                set: s(),
                host: h(),
                voting: 7,
            },
            false,
        ),
        (Refusal::IsPrimary { set: s(), host: h() }, true),
        (Refusal::LastDataMember { set: s(), host: h() }, false),
        (
            Refusal::NoMajority {
                set: s(),
                host: h(),
                voting: 4,
                up: 2,
            },
            true,
        ),
    ] {
        assert_eq!(r.is_retryable(), retryable, "{r:?}");
        let msg = r.to_string();
        assert!(msg.contains("d1:27017") && msg.contains(SET), "{msg}");
        assert!(msg.ends_with('.'), "a complete sentence: {msg}");
    }
}

#[test]
fn the_no_majority_message_gives_the_numbers() {
    let r = Refusal::NoMajority {
        set: SET.into(),
        host: "d1:27017".into(),
        voting: 4,
        up: 2,
    };
    assert_eq!(
        r.to_string(),
        "Removing d1:27017 from kate.example.com would leave 4 voting members of which 2 are up: a majority, 3, must be up for the set to keep a primary."
    );
}
