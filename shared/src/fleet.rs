//! The nodes of one role, grouped by cluster, as the per-cluster functions
//! (redis-failover, mongo-endpoint) take them from an inventory listing:
//! usable nodes by their cluster, unusable ones kept to be reported, and
//! one error for a cluster asked for that has no usable node, saying
//! whether its instances exist with bad tags or do not exist at all.

use std::collections::BTreeMap;

use crate::chain::model::InvalidNode;
use crate::dns;
use crate::error::Error;

/// How one role's nodes are named in logs and errors.
pub struct Names {
    /// For the log of an unusable node: `redis node`, `mongodb member`.
    pub node: &'static str,
    /// `cluster`, `replica set`.
    pub cluster: &'static str,
    /// `Redis instances`, `member instances`.
    pub instances: &'static str,
    /// The `ninelives:role` values: `redis`, `mongodb or mongodb-arbiter`.
    pub roles: &'static str,
}

pub struct Fleet<T> {
    pub groups: BTreeMap<String, Vec<T>>,
    pub invalid: Vec<InvalidNode>,
    names: Names,
}

impl<T> Fleet<T> {
    /// Groups a listing by `cluster_of`; unusable nodes are logged and kept.
    pub fn group(
        listing: Vec<Result<T, InvalidNode>>,
        cluster_of: impl Fn(&T) -> &str,
        names: Names,
    ) -> Self {
        let mut groups: BTreeMap<String, Vec<T>> = BTreeMap::new();
        let mut invalid = Vec::new();
        for n in listing {
            match n {
                Ok(node) => groups.entry(cluster_of(&node).to_owned()).or_default().push(node),
                Err(bad) => {
                    tracing::warn!(instance_id = %bad.instance_id, reason = %bad.reason, "{} with unusable tags", names.node);
                    invalid.push(bad);
                }
            }
        }
        Fleet {
            groups,
            invalid,
            names,
        }
    }

    /// The clusters to work on: those asked for, or every one found.
    pub fn wanted(&self, asked: Option<Vec<String>>) -> Vec<String> {
        asked.unwrap_or_else(|| self.groups.keys().cloned().collect())
    }

    /// Why `name` has no usable node.
    pub fn unknown(&self, name: &str) -> Error {
        let n = &self.names;
        let detail = match self
            .invalid
            .iter()
            .find(|b| b.cluster.as_deref().map(dns::normalize_name).as_deref() == Some(name))
        {
            Some(bad) => format!(
                "unknown {}: its only {} have unusable tags ({}: {})",
                n.cluster, n.instances, bad.instance_id, bad.reason
            ),
            None => format!(
                "unknown {}: no pending or running instance is tagged {}={} with {} = {name}",
                n.cluster,
                crate::tags::ROLE,
                n.roles,
                crate::tags::CLUSTER
            ),
        };
        Error::resource(name, detail)
    }
}

#[cfg(test)]
#[path = "tests/fleet.rs"]
mod tests;
