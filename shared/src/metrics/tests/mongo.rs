use mongodb::bson::doc;

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
