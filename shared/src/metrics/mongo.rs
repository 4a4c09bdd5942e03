//! What a replica set's `replSetGetStatus` becomes in CloudWatch
//! (`NineLives/MongoDB`): the book's host counts per set. Data members
//! that are up (PRIMARY or SECONDARY, health 1) are healthy, every other
//! data member of the config is not; arbiters are counted apart. The
//! config says who is an arbiter, so a dead arbiter (which reports no
//! ARBITER state) still counts as an arbiter.

use super::Unit;
use crate::mongo::replset::{MemberHealth, ReplSetConfig, same_host};

pub const NAMESPACE: &str = "NineLives/MongoDB";

/// `HealthyHostCount`, `UnHealthyHostCount`, `ArbiterCount`,
/// `UnHealthyArbiterCount` of one set.
pub fn set_counts(config: &ReplSetConfig, health: &[MemberHealth]) -> Vec<(&'static str, Unit, f64)> {
    let (mut healthy, mut unhealthy, mut arbiters, mut bad_arbiters) = (0u32, 0u32, 0u32, 0u32);
    for m in &config.members {
        let up = health
            .iter()
            .find(|h| same_host(&h.host, &m.host))
            .is_some_and(MemberHealth::is_up);
        match (m.arbiter_only, up) {
            (false, true) => healthy += 1,
            (false, false) => unhealthy += 1,
            (true, true) => arbiters += 1,
            (true, false) => {
                arbiters += 1;
                bad_arbiters += 1;
            }
        }
    }
    vec![
        ("HealthyHostCount", Unit::Count, f64::from(healthy)),
        ("UnHealthyHostCount", Unit::Count, f64::from(unhealthy)),
        ("ArbiterCount", Unit::Count, f64::from(arbiters)),
        ("UnHealthyArbiterCount", Unit::Count, f64::from(bad_arbiters)),
    ]
}

#[cfg(test)]
mod tests {
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
}
