//! Where an instance's data store answers, for snapshot-volumes' backup
//! mode: [`NodeLocator`] on EC2. The endpoint is found as every other
//! ninelives function finds a node (`chain::model::node_from`): the
//! instance's `ninelives:endpoint` tag, else its private DNS name or
//! address on the role's default port.

use crate::backup::pg_hooks::NodeLocator;
use crate::chain::model::Node;
use crate::error::Error;
use crate::tags;

use super::{Ec2, filter, from_sdk_tags, node_of};

impl NodeLocator for Ec2 {
    async fn locate(&self, instance_id: &str, cluster: &str, default_port: u16) -> Result<Node, Error> {
        // A filter, not InstanceIds: an unknown id is an empty answer
        // (reported below by name), not an error code to interpret.
        let out = self
            .client
            .describe_instances()
            .filters(filter("instance-id", [instance_id]))
            .send()
            .await
            .map_err(|e| Error::aws("ec2:DescribeInstances", e))?;
        let instance = out
            .reservations()
            .iter()
            .flat_map(|r| r.instances())
            .find(|i| i.instance_id() == Some(instance_id))
            .ok_or_else(|| Error::resource(instance_id, "instance not found"))?;
        let mut instance_tags = from_sdk_tags(instance.tags());
        // The volumes say which cluster they belong to; the instance need
        // not repeat it for its endpoint to be found.
        instance_tags
            .entry(tags::CLUSTER.to_owned())
            .or_insert_with(|| cluster.to_owned());
        node_of(instance, instance_id, &instance_tags, default_port)
            .map_err(|bad| Error::resource(instance_id, bad.reason))
    }
}
