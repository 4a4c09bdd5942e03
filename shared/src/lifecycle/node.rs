//! What an instance's tags ask of the lifecycle hook (SPEC "Resource
//! contract"): its cluster, its role, and the data volume to give it. Pure:
//! every tag is checked here, and a bad one is an error naming the tag and
//! the instance, before anything is created.
//!
//! The data volume: `ninelives:restore` says where it comes from (`latest`,
//! the default: the newest completed backup of the instance's (cluster,
//! `ninelives:name`); a snapshot id; or `none`: a new empty volume of
//! `ninelives:size` GiB), `ninelives:device` where it is attached (default
//! `/dev/sdf`), `ninelives:name` which of the cluster's volumes it is
//! (default `main`). Roles whose nodes hold no data of their own (`search`,
//! whose shards are replicated by the cluster, and `mongodb-arbiter`) get a
//! volume only when a `ninelives:restore`, `ninelives:size` or
//! `ninelives:device` tag asks for one.

use std::fmt;
use std::str::FromStr;

use serde::Serialize;

use crate::backup::model::Tags;
use crate::tags;

pub const DEFAULT_DEVICE: &str = "/dev/sdf";
pub const DEFAULT_NAME: &str = "main";
/// EBS's largest volume (io2 Block Express), in GiB.
const MAX_SIZE_GIB: i32 = 65_536;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    Redis,
    Mongodb,
    MongodbArbiter,
    Search,
    /// Monitored and backed up; no cluster membership to change on launch
    /// or terminate.
    Postgres,
}

impl Role {
    pub const ALL: [Role; 5] = [
        Role::Redis,
        Role::Mongodb,
        Role::MongodbArbiter,
        Role::Search,
        Role::Postgres,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Redis => "redis",
            Role::Mongodb => "mongodb",
            Role::MongodbArbiter => "mongodb-arbiter",
            Role::Search => "search",
            Role::Postgres => "postgres",
        }
    }

    /// Whether a node of this role keeps data that must survive it.
    pub fn holds_data(self) -> bool {
        !matches!(self, Role::Search | Role::MongodbArbiter)
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Role {
    type Err = String;

    fn from_str(value: &str) -> Result<Self, String> {
        let v = value.trim().to_ascii_lowercase();
        Role::ALL.into_iter().find(|r| r.as_str() == v).ok_or_else(|| {
            let known: Vec<&str> = Role::ALL.iter().map(|r| r.as_str()).collect();
            format!("unknown role {value:?} (known roles: {})", known.join(", "))
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "from", content = "snapshot_id", rename_all = "lowercase")]
pub enum Source {
    /// The newest completed managed snapshot of (cluster, name).
    Latest,
    Snapshot(String),
    /// A new empty volume.
    None,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VolumePlan {
    pub name: String,
    pub device: String,
    pub source: Source,
    /// `ninelives:size`: the size of a new empty volume, or a larger size
    /// for a restored one (the file system is grown by the node).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub size_gib: Option<i32>,
}

/// What the tags of one instance ask for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NodePlan {
    pub cluster: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub role: Option<Role>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub volume: Option<VolumePlan>,
    /// `ninelives:endpoint`, when the node is reached at another address
    /// than its private DNS name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
}

/// Whether the instance is one ninelives looks after at all: any
/// `ninelives:` tag. Lifecycle actions of other instances belong to
/// someone else's hook and are left alone.
pub fn is_managed(instance_tags: &Tags) -> bool {
    instance_tags.keys().any(|k| k.starts_with(tags::PREFIX))
}

/// Reads and checks an instance's tags. Errors name the tag (the caller
/// names the instance).
pub fn plan(instance_tags: &Tags) -> Result<NodePlan, String> {
    let tag = |key: &str| instance_tags.get(key).map(|v| v.trim()).filter(|v| !v.is_empty());
    let bad = |key: &str, why: String| format!("tag {key}: {why}");

    let Some(cluster) = tag(tags::CLUSTER) else {
        return Err(format!(
            "has ninelives tags but no {} tag: cannot tell which cluster it belongs to",
            tags::CLUSTER
        ));
    };
    let role = tag(tags::ROLE)
        .map(|r| r.parse::<Role>().map_err(|e| bad(tags::ROLE, e)))
        .transpose()?;
    let size_gib = tag(tags::SIZE)
        .map(|s| match s.parse::<i32>() {
            Ok(n) if (1..=MAX_SIZE_GIB).contains(&n) => Ok(n),
            _ => Err(bad(
                tags::SIZE,
                format!("{s:?} is not a size from 1 to {MAX_SIZE_GIB} GiB"),
            )),
        })
        .transpose()?;
    let device = tag(tags::DEVICE)
        .map(|d| device_name(d).map_err(|e| bad(tags::DEVICE, e)))
        .transpose()?;
    let source = tag(tags::RESTORE)
        .map(|s| source(s).map_err(|e| bad(tags::RESTORE, e)))
        .transpose()?;
    let name = match tag(tags::NAME) {
        Some(n) if n.len() > 128 => return Err(bad(tags::NAME, "longer than 128 characters".into())),
        Some(n) => n.to_owned(),
        None => DEFAULT_NAME.to_owned(),
    };
    let endpoint = tag(tags::ENDPOINT).map(str::to_owned);

    let wants_volume =
        source.is_some() || size_gib.is_some() || device.is_some() || role.is_none_or(Role::holds_data);
    let volume = if wants_volume {
        let source = source.unwrap_or(Source::Latest);
        if source == Source::None && size_gib.is_none() {
            return Err(bad(
                tags::RESTORE,
                format!(
                    "\"none\" asks for a new empty volume, which needs a {} tag (GiB)",
                    tags::SIZE
                ),
            ));
        }
        Some(VolumePlan {
            name,
            device: device.unwrap_or_else(|| DEFAULT_DEVICE.to_owned()),
            source,
            size_gib,
        })
    } else {
        None
    };
    Ok(NodePlan {
        cluster: cluster.to_owned(),
        role,
        volume,
        endpoint,
    })
}

fn source(value: &str) -> Result<Source, String> {
    let lower = value.to_ascii_lowercase();
    match lower.as_str() {
        "latest" => Ok(Source::Latest),
        "none" => Ok(Source::None),
        _ if is_snapshot_id(&lower) => Ok(Source::Snapshot(lower)),
        _ => Err(format!(
            "{value:?} is not \"latest\", \"none\" or a snapshot id (snap- and 8 or 17 hex digits)"
        )),
    }
}

pub fn is_snapshot_id(id: &str) -> bool {
    super::action::is_resource_id(id, "snap-")
}

/// Device names EC2 accepts for an attached EBS volume on Linux:
/// `/dev/sd[b-z]`, `/dev/sd[b-z][1-15]`, `/dev/xvd[b-z]`, `/dev/xvd[b-z][a-z]`
/// (`a` is the root device's).
fn device_name(value: &str) -> Result<String, String> {
    let err = || {
        format!(
            "{value:?} is not a device name for a data volume (/dev/sdf, /dev/sdg, /dev/xvdf, /dev/xvdba, ...)"
        )
    };
    let letter = |b: u8| (b'b'..=b'z').contains(&b);
    let rest = value.strip_prefix("/dev/").ok_or_else(err)?;
    let ok = if let Some(tail) = rest.strip_prefix("xvd") {
        let b = tail.as_bytes();
        (b.len() == 1 && letter(b[0])) || (b.len() == 2 && letter(b[0]) && b[1].is_ascii_lowercase())
    } else if let Some(tail) = rest.strip_prefix("sd") {
        let b = tail.as_bytes();
        let partition = std::str::from_utf8(b.get(1..).unwrap_or_default())
            .ok()
            .filter(|p| !p.is_empty())
            .map(|p| !p.starts_with('0') && p.parse::<u8>().is_ok_and(|n| (1..=15).contains(&n)));
        !b.is_empty() && letter(b[0]) && partition.unwrap_or(true)
    } else {
        false
    };
    if ok { Ok(value.to_owned()) } else { Err(err()) }
}

#[cfg(test)]
#[path = "tests/node.rs"]
mod tests;
