//! What the chain is made of: nodes (an EC2 instance and the endpoint its
//! Redis answers on) and what a node says about its replication.

use std::fmt;

use chrono::{DateTime, Utc};
use serde::Serialize;

/// Redis's default port, used when `ninelives:endpoint` gives none.
pub const DEFAULT_PORT: u16 = 6379;

/// Where a Redis server answers.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Endpoint {
    /// A DNS name or an IP address, lower case, IPv6 without brackets.
    pub host: String,
    pub port: u16,
}

impl Endpoint {
    pub fn new(host: impl Into<String>, port: u16) -> Self {
        Endpoint {
            host: host.into().to_ascii_lowercase(),
            port,
        }
    }

    /// `host`, `host:port`, `[v6]` or `[v6]:port`.
    pub fn parse(value: &str, default_port: u16) -> Result<Endpoint, String> {
        let value = value.trim();
        let (host, port) = if let Some(rest) = value.strip_prefix('[') {
            let (host, after) = rest
                .split_once(']')
                .ok_or_else(|| format!("{value:?} opens an IPv6 bracket it does not close"))?;
            match after {
                "" => (host, None),
                _ => match after.strip_prefix(':') {
                    Some(port) => (host, Some(port)),
                    None => return Err(format!("{value:?} has text after its IPv6 address")),
                },
            }
        } else if value.matches(':').count() > 1 {
            // A bare IPv6 address has no port.
            (value, None)
        } else {
            match value.split_once(':') {
                Some((host, port)) => (host, Some(port)),
                None => (value, None),
            }
        };
        if host.is_empty() {
            return Err(format!("{value:?} has no host"));
        }
        if host.chars().any(|c| c.is_whitespace() || c == '/') {
            return Err(format!("{value:?} is not a host name or address"));
        }
        let port = match port {
            None => default_port,
            Some(p) => match p.parse::<u16>() {
                Ok(port) if port > 0 => port,
                _ => return Err(format!("{value:?} has an invalid port {p:?} (expected 1-65535)")),
            },
        };
        Ok(Endpoint::new(host, port))
    }

    /// Whether `host`/`port` (as a replica reports its master) name this
    /// endpoint.
    pub fn is(&self, host: &str, port: u16) -> bool {
        self.port == port
            && self
                .host
                .eq_ignore_ascii_case(host.trim_start_matches('[').trim_end_matches(']'))
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

impl Serialize for Endpoint {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// One member of a chain as EC2 knows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Node {
    pub instance_id: String,
    /// `ninelives:cluster`: the cluster record's name.
    pub cluster: String,
    pub endpoint: Endpoint,
    /// Other names a replica may use for this node's host (its private
    /// address and private DNS name), lower case.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub aliases: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub launch_time: Option<DateTime<Utc>>,
}

impl Node {
    /// Whether a replica reporting `master_host:master_port` replicates
    /// this node.
    pub fn answers_to(&self, host: &str, port: u16) -> bool {
        self.endpoint.is(host, port)
            || (port == self.endpoint.port && self.aliases.iter().any(|a| a.eq_ignore_ascii_case(host)))
    }
}

/// A node's replication, from `INFO replication`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Replication {
    pub role: ReplicationRole,
    /// `connected_slaves`.
    pub connected_replicas: u32,
    /// `master_replid`: the history this node's data belongs to.
    pub replid: String,
    /// `master_replid2`: the history it continued after a promotion (all
    /// zeros when none).
    pub replid2: String,
    /// `master_repl_offset`: how far into its history the node's data goes.
    pub offset: i64,
    /// `master_failover_state` (Redis 6.2+), when a `FAILOVER` is under way
    /// or absent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failover_state: Option<String>,
}

/// `role` and, for a replica, its link to its master.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "role", rename_all = "lowercase")]
pub enum ReplicationRole {
    Master,
    Replica {
        /// `master_host`, as the node was told it (`REPLICAOF host port`).
        master_host: String,
        master_port: u16,
        /// `master_link_status:up`.
        link_up: bool,
        /// `master_link_down_since_seconds` when the link is down; `None`
        /// when up, or when the node never connected (Redis reports -1).
        #[serde(skip_serializing_if = "Option::is_none")]
        link_down_seconds: Option<u64>,
        /// `master_sync_in_progress:1`: a full copy is being transferred;
        /// the node's data is not usable yet.
        sync_in_progress: bool,
        /// `slave_repl_offset`: how much of its master's stream it has.
        replica_offset: i64,
    },
}

/// A replication id meaning "none" (`master_replid2` before any promotion).
pub const NO_REPLID: &str = "0000000000000000000000000000000000000000";

impl Replication {
    pub fn is_master(&self) -> bool {
        matches!(self.role, ReplicationRole::Master)
    }

    /// The data offset to rank nodes by: a replica's applied offset, a
    /// master's own.
    pub fn data_offset(&self) -> i64 {
        match &self.role {
            ReplicationRole::Master => self.offset,
            ReplicationRole::Replica { replica_offset, .. } => (*replica_offset).max(self.offset),
        }
    }
}

/// An instance tagged as a Redis node whose tags do not make a usable
/// node (no cluster, an endpoint that cannot be parsed, no address).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct InvalidNode {
    pub instance_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cluster: Option<String>,
    pub reason: String,
}

/// The node an instance is, from its tags and addresses: the cluster tag
/// (normalised as a record name), `ninelives:endpoint` or else the private
/// DNS name or address on the default port.
pub fn node_from(
    instance_id: &str,
    tags: &crate::backup::model::Tags,
    private_dns_name: Option<&str>,
    private_ip: Option<&str>,
    launch_time: Option<DateTime<Utc>>,
    default_port: u16,
) -> Result<Node, InvalidNode> {
    let raw_cluster = tags
        .get(crate::tags::CLUSTER)
        .map(|c| c.trim())
        .filter(|c| !c.is_empty());
    let invalid = |cluster: Option<String>, reason: String| InvalidNode {
        instance_id: instance_id.to_owned(),
        cluster,
        reason,
    };
    let Some(raw_cluster) = raw_cluster else {
        return Err(invalid(None, format!("has no {} tag", crate::tags::CLUSTER)));
    };
    let cluster = crate::dns::record_name(raw_cluster).map_err(|e| {
        invalid(
            Some(raw_cluster.to_owned()),
            format!("tag {}: {e}", crate::tags::CLUSTER),
        )
    })?;
    let non_empty = |s: Option<&str>| {
        s.map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_ascii_lowercase)
    };
    let dns = non_empty(private_dns_name);
    let ip = non_empty(private_ip);
    let endpoint = match tags.get(crate::tags::ENDPOINT) {
        Some(value) => Endpoint::parse(value, default_port).map_err(|e| {
            invalid(
                Some(cluster.clone()),
                format!("tag {}: {e}", crate::tags::ENDPOINT),
            )
        })?,
        None => match dns.as_ref().or(ip.as_ref()) {
            Some(host) => Endpoint::new(host.clone(), default_port),
            None => {
                return Err(invalid(
                    Some(cluster),
                    format!(
                        "has no private DNS name or address; set {}",
                        crate::tags::ENDPOINT
                    ),
                ));
            }
        },
    };
    let aliases = [dns, ip]
        .into_iter()
        .flatten()
        .filter(|a| *a != endpoint.host)
        .collect();
    Ok(Node {
        instance_id: instance_id.to_owned(),
        cluster,
        endpoint,
        aliases,
        launch_time,
    })
}
