//! The cluster inventories on EC2: the live instances tagged
//! `ninelives:role=redis` ([`Inventory`]) and `mongodb` /
//! `mongodb-arbiter` ([`MemberInventory`]), and every node publish-metrics
//! watches ([`MetricInventory`]). The cluster is compared after
//! normalising (case, trailing dot), so it is filtered here rather than by
//! an exact-match EC2 tag filter.

use crate::chain::model::{InvalidNode, Node};
use crate::chain::ports::Inventory;
use crate::error::Error;
use crate::metrics::collect::{MetricInventory, Role, Tagged};
use crate::mongo::ports::{Member, MemberInventory};
use crate::mongo::replset::Kind;
use crate::tags;

use super::{Ec2, filter, from_sdk_tags, node_of};

/// Instances per DescribeInstances page (the most EC2 returns).
const INSTANCE_PAGE: i32 = 1000;

impl Inventory for Ec2 {
    async fn redis_nodes(&self, cluster: Option<&str>) -> Result<Vec<Result<Node, InvalidNode>>, Error> {
        let found = self
            .tagged_nodes(&[("redis", crate::chain::model::DEFAULT_PORT)], cluster)
            .await?;
        Ok(found.into_iter().map(|(node, _)| node).collect())
    }
}

impl MemberInventory for Ec2 {
    async fn mongo_members(&self, cluster: Option<&str>) -> Result<Vec<Result<Member, InvalidNode>>, Error> {
        let found = self
            .tagged_nodes(
                &[
                    (MONGODB, crate::mongo::replset::DEFAULT_PORT),
                    (MONGODB_ARBITER, crate::mongo::replset::DEFAULT_PORT),
                ],
                cluster,
            )
            .await?;
        Ok(found
            .into_iter()
            .map(|(node, role)| {
                node.map(|node| Member {
                    node,
                    kind: if role == MONGODB_ARBITER {
                        Kind::Arbiter
                    } else {
                        Kind::Data
                    },
                })
            })
            .collect())
    }
}

impl MetricInventory for Ec2 {
    async fn metric_nodes(&self) -> Result<Vec<Tagged>, Error> {
        let roles: Vec<(&str, u16)> = Role::ALL.iter().map(|r| (r.tag(), r.default_port())).collect();
        let found = self.tagged_nodes(&roles, None).await?;
        Ok(found
            .into_iter()
            .filter_map(|(node, role)| Role::from_tag(&role).map(|role| (node, role)))
            .collect())
    }
}

const MONGODB: &str = "mongodb";
const MONGODB_ARBITER: &str = "mongodb-arbiter";

impl Ec2 {
    /// Live instances whose `ninelives:role` is one of `roles` (each with
    /// the port its endpoint has when `ninelives:endpoint` names none),
    /// with the role each has, sorted by instance id.
    async fn tagged_nodes(
        &self,
        roles: &[(&str, u16)],
        cluster: Option<&str>,
    ) -> Result<Vec<(Result<Node, InvalidNode>, String)>, Error> {
        let mut found = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let out = self
                .client
                .describe_instances()
                .filters(filter(
                    &format!("tag:{}", tags::ROLE),
                    roles.iter().map(|(r, _)| *r),
                ))
                .filters(filter("instance-state-name", ["pending", "running"]))
                .max_results(INSTANCE_PAGE)
                .set_next_token(token.take())
                .send()
                .await
                .map_err(|e| Error::aws("ec2:DescribeInstances", e))?;
            for i in out.reservations().iter().flat_map(|r| r.instances()) {
                let Some(id) = i.instance_id() else { continue };
                let tags = from_sdk_tags(i.tags());
                let role = tags.get(tags::ROLE).cloned().unwrap_or_default();
                // The tag filter matches exactly, so this only skips what
                // EC2 should not have returned.
                let Some(default_port) = roles.iter().find(|(r, _)| *r == role).map(|(_, port)| *port) else {
                    continue;
                };
                let node = node_of(i, id, &tags, default_port);
                let wanted = match (&node, cluster) {
                    (_, None) => true,
                    (Ok(n), Some(c)) => n.cluster == c,
                    (Err(bad), Some(c)) => bad
                        .cluster
                        .as_deref()
                        .is_some_and(|b| crate::dns::normalize_name(b) == c),
                };
                if wanted {
                    found.push((node, role));
                }
            }
            token = out.next_token().filter(|t| !t.is_empty()).map(str::to_owned);
            if token.is_none() {
                break;
            }
        }
        found.sort_by(|a, b| id_of(&a.0).cmp(id_of(&b.0)));
        Ok(found)
    }
}

fn id_of(n: &Result<Node, InvalidNode>) -> &str {
    match n {
        Ok(n) => &n.instance_id,
        Err(bad) => &bad.instance_id,
    }
}
