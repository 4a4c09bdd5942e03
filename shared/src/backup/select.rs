//! Which volumes a snapshot run takes, and how they are grouped: the volumes
//! of one cluster attached to one instance form a group taken together with
//! `CreateSnapshots` (one point in time across all of them, so a database
//! spread over several tablespaces restores consistently); every other
//! volume is taken alone. Pure: decided from the volumes' tags and
//! attachments only.

use std::collections::BTreeMap;

use serde::Serialize;

use super::model::Volume;
use crate::tags;

/// One volume to snapshot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Target {
    pub volume_id: String,
    pub cluster: String,
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub instance_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub device: Option<String>,
    /// `ninelives:app`: the application whose backup mode applies.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub app: Option<String>,
}

/// Volumes snapshotted in one call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Group {
    pub cluster: String,
    /// Set for volumes attached to one instance.
    pub instance_id: Option<String>,
    /// Sorted by volume id; never empty.
    pub targets: Vec<Target>,
}

impl Group {
    /// Taken with `CreateSnapshots` (several volumes of one instance).
    pub fn is_multi_volume(&self) -> bool {
        self.instance_id.is_some() && self.targets.len() > 1
    }

    pub fn volume_ids(&self) -> Vec<String> {
        self.targets.iter().map(|t| t.volume_id.clone()).collect()
    }

    /// The application hook the group asks for, if any volume names one.
    pub fn app(&self) -> Option<&str> {
        self.targets.iter().find_map(|t| t.app.as_deref())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SkipKind {
    /// The user asked for it (`ninelives:backup=off`).
    Excluded,
    /// Tags or state keep it from being backed up; someone should look.
    Invalid,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Skipped {
    pub volume_id: String,
    pub kind: SkipKind,
    pub reason: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Selection {
    pub groups: Vec<Group>,
    pub skipped: Vec<Skipped>,
}

/// Sorts tagged volumes into snapshot groups and skips.
pub fn select(volumes: &[Volume]) -> Selection {
    let mut selection = Selection::default();
    // (instance, cluster) -> targets; BTreeMap keeps the order stable.
    let mut attached: BTreeMap<(String, String), Vec<Target>> = BTreeMap::new();

    let mut sorted: Vec<&Volume> = volumes.iter().collect();
    sorted.sort_by(|a, b| a.id.cmp(&b.id));
    for volume in sorted {
        let tag = |key: &str| volume.tags.get(key).map(|v| v.trim()).filter(|v| !v.is_empty());
        let skip = |kind, reason: String| Skipped {
            volume_id: volume.id.clone(),
            kind,
            reason,
        };
        if tag(tags::BACKUP).is_some_and(|v| v.eq_ignore_ascii_case("off")) {
            selection
                .skipped
                .push(skip(SkipKind::Excluded, format!("{}=off", tags::BACKUP)));
            continue;
        }
        let Some(cluster) = tag(tags::CLUSTER) else {
            selection
                .skipped
                .push(skip(SkipKind::Invalid, format!("{} tag is empty", tags::CLUSTER)));
            continue;
        };
        let Some(name) = tag(tags::NAME) else {
            selection.skipped.push(skip(
                SkipKind::Invalid,
                format!(
                    "no {} tag: cannot tell which of {cluster}'s volumes it is",
                    tags::NAME
                ),
            ));
            continue;
        };
        if volume.state != "in-use" && volume.state != "available" {
            selection
                .skipped
                .push(skip(SkipKind::Invalid, format!("volume is {}", volume.state)));
            continue;
        }
        let live: Vec<_> = volume
            .attachments
            .iter()
            .filter(|a| a.state == "attached" || a.state == "attaching")
            .collect();
        // A volume on exactly one instance can join that instance's set; a
        // detached or multi-attached volume is taken on its own.
        let (instance_id, device) = match live.as_slice() {
            [one] => (Some(one.instance_id.clone()), Some(one.device.clone())),
            _ => (None, None),
        };
        let target = Target {
            volume_id: volume.id.clone(),
            cluster: cluster.to_owned(),
            name: name.to_owned(),
            instance_id: instance_id.clone(),
            device,
            app: tag(tags::APP).map(str::to_ascii_lowercase),
        };
        match (&instance_id, live.len()) {
            (Some(instance), 1) => attached
                .entry((instance.clone(), cluster.to_owned()))
                .or_default()
                .push(target),
            _ => selection.groups.push(Group {
                cluster: cluster.to_owned(),
                instance_id: None,
                targets: vec![target],
            }),
        }
    }
    for ((instance_id, cluster), targets) in attached {
        selection.groups.push(Group {
            cluster,
            instance_id: Some(instance_id),
            targets,
        });
    }
    selection
        .groups
        .sort_by(|a, b| a.targets[0].volume_id.cmp(&b.targets[0].volume_id));
    selection
}

#[cfg(test)]
#[path = "tests/select.rs"]
mod tests;
