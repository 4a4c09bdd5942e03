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
#[path = "tests/mongo.rs"]
mod tests;
