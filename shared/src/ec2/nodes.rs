//! [`Inventory`] on EC2: the live instances tagged `ninelives:role=redis`.
//! The cluster is compared after normalising (case, trailing dot), so it
//! is filtered here rather than by an exact-match EC2 tag filter.

use crate::chain::model::{InvalidNode, Node, node_from};
use crate::chain::ports::Inventory;
use crate::error::Error;
use crate::tags;

use super::{Ec2, filter, from_sdk_tags};

/// Instances per DescribeInstances page (the most EC2 returns).
const INSTANCE_PAGE: i32 = 1000;

impl Inventory for Ec2 {
    async fn redis_nodes(&self, cluster: Option<&str>) -> Result<Vec<Result<Node, InvalidNode>>, Error> {
        let mut found = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let out = self
                .client
                .describe_instances()
                .filters(filter(&format!("tag:{}", tags::ROLE), ["redis"]))
                .filters(filter("instance-state-name", ["pending", "running"]))
                .max_results(INSTANCE_PAGE)
                .set_next_token(token.take())
                .send()
                .await
                .map_err(|e| Error::aws("ec2:DescribeInstances", e))?;
            for i in out.reservations().iter().flat_map(|r| r.instances()) {
                let Some(id) = i.instance_id() else { continue };
                let launched = i
                    .launch_time()
                    .and_then(|t| chrono::DateTime::from_timestamp(t.secs(), t.subsec_nanos()));
                let node = node_from(
                    id,
                    &from_sdk_tags(i.tags()),
                    i.private_dns_name(),
                    i.private_ip_address(),
                    launched,
                );
                let wanted = match (&node, cluster) {
                    (_, None) => true,
                    (Ok(n), Some(c)) => n.cluster == c,
                    (Err(bad), Some(c)) => bad
                        .cluster
                        .as_deref()
                        .is_some_and(|b| crate::dns::normalize_name(b) == c),
                };
                if wanted {
                    found.push(node);
                }
            }
            token = out.next_token().filter(|t| !t.is_empty()).map(str::to_owned);
            if token.is_none() {
                break;
            }
        }
        found.sort_by(|a, b| id_of(a).cmp(id_of(b)));
        Ok(found)
    }
}

fn id_of(n: &Result<Node, InvalidNode>) -> &str {
    match n {
        Ok(n) => &n.instance_id,
        Err(bad) => &bad.instance_id,
    }
}
