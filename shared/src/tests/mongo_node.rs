use mongodb::bson::oid::ObjectId;

use super::*;

#[test]
fn hello_of_a_primary_secondary_arbiter_and_new_member() {
    let election = ObjectId::parse_str("7fffffff0000000000000003").expect("a valid object id");
    let primary = read_hello(&doc! {
        "isWritablePrimary": true, "secondary": false, "setName": "kate.example.com",
        "setVersion": 4, "primary": "10.0.1.1:27017", "me": "10.0.1.1:27017",
        "electionId": election, "hosts": ["10.0.1.1:27017", "10.0.1.2:27017"], "ok": 1.0
    });
    assert_eq!(
        primary,
        Hello {
            set_name: Some("kate.example.com".into()),
            writable_primary: true,
            secondary: false,
            arbiter_only: false,
            primary: Some("10.0.1.1:27017".into()),
            me: Some("10.0.1.1:27017".into()),
            set_version: Some(4),
            election_id: Some("7fffffff0000000000000003".into()),
        }
    );
    // Before 5.0 (and in answers to the legacy command) the flag is `ismaster`.
    assert!(read_hello(&doc! { "ismaster": true, "setName": "s" }).writable_primary);
    let secondary = read_hello(
        &doc! { "isWritablePrimary": false, "secondary": true, "setName": "s", "setVersion": 4_i64 },
    );
    assert!(secondary.secondary && !secondary.writable_primary);
    assert_eq!(secondary.set_version, Some(4));
    let arbiter = read_hello(
        &doc! { "isWritablePrimary": false, "secondary": false, "arbiterOnly": true, "setName": "s" },
    );
    assert!(arbiter.arbiter_only);
    let fresh = read_hello(
        &doc! { "isWritablePrimary": false, "secondary": false, "isreplicaset": true, "info": "Does not have a valid replica set config" },
    );
    assert_eq!(fresh, Hello::default());
}

#[test]
fn status_members_with_each_numeric_type() {
    let reply = doc! {
        "set": "s", "myState": 1,
        "members": [
            { "_id": 0, "name": "a:27017", "health": 1.0, "state": 1, "stateStr": "PRIMARY", "self": true },
            { "_id": 1, "name": "b:27017", "health": 0.0, "state": 8, "stateStr": "(not reachable/healthy)" },
            { "_id": 2, "name": "c:27017", "health": 1_i32, "state": 7_i64, "stateStr": "ARBITER" },
        ],
        "ok": 1.0
    };
    let members = read_status(&reply).expect("a valid status");
    assert_eq!(
        members,
        [
            MemberHealth {
                host: "a:27017".into(),
                health: 1.0,
                state: 1,
                optime: None,
            },
            MemberHealth {
                host: "b:27017".into(),
                health: 0.0,
                state: 8,
                optime: None,
            },
            MemberHealth {
                host: "c:27017".into(),
                health: 1.0,
                state: 7,
                optime: None,
            },
        ]
    );
    assert!(members[0].is_up() && !members[1].is_up() && members[2].is_up());
}

#[test]
fn status_members_optime_is_read_where_it_means_something() {
    let at = |ms: i64| mongodb::bson::DateTime::from_millis(ms);
    let primary_ms = 1_700_000_000_250;
    let reply = doc! {
        "set": "s", "myState": 2,
        "members": [
            { "_id": 0, "name": "a:27017", "health": 1.0, "state": 1, "stateStr": "PRIMARY",
              "optime": { "ts": mongodb::bson::Timestamp { time: 1_700_000_000, increment: 1 }, "t": 3_i64 },
              "optimeDate": at(primary_ms) },
            { "_id": 1, "name": "b:27017", "health": 1.0, "state": 2, "stateStr": "SECONDARY",
              "optimeDate": at(primary_ms - 4_500), "self": true },
            // Not reachable: mongod reports the epoch.
            { "_id": 2, "name": "c:27017", "health": 0.0, "state": 8,
              "stateStr": "(not reachable/healthy)", "optimeDate": at(0) },
            // An arbiter has no optime at all.
            { "_id": 3, "name": "d:27017", "health": 1.0, "state": 7, "stateStr": "ARBITER" },
            // Not a date: left out, not an error (the health is still good).
            { "_id": 4, "name": "e:27017", "health": 1.0, "state": 2, "optimeDate": "yesterday" },
        ],
        "ok": 1.0
    };
    let members = read_status(&reply).expect("a valid status");
    let optimes: Vec<Option<i64>> = members
        .iter()
        .map(|m| m.optime.map(|t| t.timestamp_millis()))
        .collect();
    assert_eq!(
        optimes,
        [Some(primary_ms), Some(primary_ms - 4_500), None, None, None]
    );
    assert_eq!(
        members[0].optime.map(|t| t.to_rfc3339()),
        Some("2023-11-14T22:13:20.250+00:00".to_owned())
    );
}

#[test]
fn unreadable_status_names_what_is_missing() {
    assert!(
        read_status(&doc! { "ok": 1.0 })
            .expect_err("no members")
            .contains("members")
    );
    let err = read_status(&doc! { "members": [{ "health": 1.0, "state": 1 }] }).expect_err("no name");
    assert!(err.contains("members[0].name"), "{err}");
    let err = read_status(&doc! { "members": [{ "name": "a", "health": 1.0 }] }).expect_err("no state");
    assert!(err.contains("members[0].state"), "{err}");
    let err = read_status(&doc! { "members": [1] }).expect_err("not a document");
    assert!(err.contains("members[0]"), "{err}");
}

#[test]
fn debug_never_shows_the_password() {
    let settings = MongoSettings {
        connect_timeout: Duration::from_secs(1),
        command_timeout: Duration::from_secs(1),
        username: Some("ninelives".into()),
        password: Some("s3cret-pw".into()),
        auth_source: "admin".into(),
        tls: false,
        tls_ca_file: None,
    };
    let shown = format!("{settings:?} {:?}", MongoNodes::new(settings.clone()));
    assert!(!shown.contains("s3cret-pw"), "{shown}");
    assert!(shown.contains("***"));
}
