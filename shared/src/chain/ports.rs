//! The narrow capabilities the chain logic needs: talk to one Redis node
//! ([`RedisApi`], implemented on the `redis` crate in `crate::redis_node`)
//! and list a cluster's nodes ([`Inventory`], implemented on EC2 in
//! `crate::ec2::nodes`). Route 53 is `crate::dns::Dns`.

use std::future::Future;
use std::time::Duration;

use super::model::{Endpoint, InvalidNode, Node, Replication};
use crate::error::{BoxError, Error};

/// Why a node could not be asked or told something. The chain logic treats
/// [`NodeError::Down`] as "this node is not serving" and every other
/// variant as "this node's state is unknown", which blocks any promotion:
/// a node that refuses our password may well be the head.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    /// Connection refused, reset or timed out, or the server is loading or
    /// otherwise not answering.
    #[error("{endpoint} is not answering: {source}")]
    Down {
        endpoint: Endpoint,
        #[source]
        source: BoxError,
    },
    /// AUTH failed, or the server wants a password we do not have.
    #[error("{endpoint} refused authentication: {source}")]
    Auth {
        endpoint: Endpoint,
        #[source]
        source: BoxError,
    },
    /// `INFO replication` did not say what every Redis says.
    #[error("{endpoint} sent INFO replication that cannot be read: {detail}")]
    Malformed { endpoint: Endpoint, detail: String },
    /// The server answered a command with an error.
    #[error("{endpoint} refused {command}: {source}")]
    Command {
        endpoint: Endpoint,
        command: &'static str,
        #[source]
        source: BoxError,
    },
}

impl NodeError {
    pub fn is_down(&self) -> bool {
        matches!(self, NodeError::Down { .. })
    }
}

pub trait RedisApi: Sync {
    /// `INFO replication`, parsed.
    fn replication(&self, node: &Endpoint) -> impl Future<Output = Result<Replication, NodeError>> + Send;

    /// `REPLICAOF host port`, or `REPLICAOF NO ONE` when `master` is `None`.
    fn replicate(
        &self,
        node: &Endpoint,
        master: Option<&Endpoint>,
    ) -> impl Future<Output = Result<(), NodeError>> + Send;

    /// `FAILOVER TO host port TIMEOUT ms` on a head (Redis 6.2+): writes
    /// paused until `replica` has everything, then the two swap roles.
    /// Returns once the command is accepted; the swap completes
    /// asynchronously (`master_failover_state`).
    fn failover_to(
        &self,
        head: &Endpoint,
        replica: &Endpoint,
        timeout: Duration,
    ) -> impl Future<Output = Result<(), NodeError>> + Send;

    /// `FAILOVER ABORT`: a `FAILOVER` whose target never took over leaves
    /// the head a read-only replica-to-be indefinitely (its TIMEOUT covers
    /// only the wait for the replica to catch up); this gives it back.
    fn abort_failover(&self, head: &Endpoint) -> impl Future<Output = Result<(), NodeError>> + Send;
}

pub trait Inventory: Sync {
    /// Every live (pending or running) instance tagged
    /// `ninelives:role=redis`, of one cluster (a normalised record name) or
    /// of all; instances whose tags make no usable node come back as
    /// [`InvalidNode`] so that they are reported, never silently skipped.
    fn redis_nodes(
        &self,
        cluster: Option<&str>,
    ) -> impl Future<Output = Result<Vec<Result<Node, InvalidNode>>, Error>> + Send;
}
