//! Giving a launching instance its data volume: restored from the newest
//! backup of its (cluster, name), from a named snapshot, or new and empty;
//! created in the instance's AZ, tagged like its source, attached at the
//! planned device and deleted with the instance.
//!
//! Safe to run any number of times, also at once (at-least-once delivery):
//!
//! - a device already in use on the instance is left as it is (when the
//!   volume there is one this function made for the instance, the last step,
//!   delete-on-termination, is made sure of);
//! - a volume made for the instance by an earlier delivery
//!   (`ninelives:restored-for`) is picked up where that delivery stopped;
//! - concurrent deliveries send the same EC2 client token, so EC2 creates
//!   one volume; the attach that loses the race sees `VolumeInUse` and finds
//!   the volume attached where it wanted it.
//!
//! Nothing is ever deleted here. A volume left unattached by a failure is
//! named in the report for a person to look at.

use std::time::Duration;

use serde::Serialize;

use super::node::{Source, VolumePlan};
use super::ports::{Attach, Instance, LifecycleApi, NewVolume, RestoreApi};
use super::wait::Waiter;
use crate::backup::latest;
use crate::backup::model::{Snapshot, SnapshotState, Tags, Volume};
use crate::error::Error;
use crate::tags;

/// Tags copied from a source snapshot besides ninelives' own; EC2 allows 50.
const MAX_COPIED_TAGS: usize = 40;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum VolumeOutcome {
    /// Created from a snapshot and attached.
    Restored,
    /// Created empty and attached.
    CreatedEmpty,
    /// Created by an earlier delivery; this one finished attaching it.
    Resumed,
    /// Already attached: made for this instance earlier.
    AlreadyAttached,
    /// The device holds a volume this function did not make; left alone.
    DeviceInUse,
    /// Dry run: what would be created, or finished.
    WouldRestore,
    WouldResume,
    WouldCreateEmpty,
    /// Work began but did not finish (see the error).
    Unfinished,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VolumeReport {
    pub outcome: VolumeOutcome,
    pub device: String,
    pub availability_zone: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub volume_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub snapshot_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub size_gib: Option<i32>,
    pub delete_on_termination: bool,
}

impl VolumeReport {
    pub fn created(&self) -> bool {
        matches!(
            self.outcome,
            VolumeOutcome::Restored | VolumeOutcome::CreatedEmpty | VolumeOutcome::Resumed
        )
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RestoreSettings {
    /// EBS volume type of new volumes (`gp3`, ...).
    pub volume_type: String,
    pub dry_run: bool,
}

/// The EC2 client token of the one volume an instance gets at a device.
pub fn client_token(instance_id: &str, device: &str) -> String {
    format!("ninelives-{instance_id}-{}", device.trim_start_matches("/dev/"))
}

/// Restores `plan`'s volume for `instance`, filling `report` as it goes so
/// that a failure still names what was made.
pub async fn restore<A: RestoreApi, L: LifecycleApi>(
    api: &A,
    waiter: &mut Waiter<'_, L>,
    instance: &Instance,
    cluster: &str,
    plan: &VolumePlan,
    settings: &RestoreSettings,
    report: &mut VolumeReport,
) -> Result<(), Error> {
    report.outcome = VolumeOutcome::Unfinished;
    if let Some(existing) = instance.device(&plan.device) {
        report.volume_id = Some(existing.volume_id.clone());
        report.delete_on_termination = existing.delete_on_termination;
        let volume = api.volume(&existing.volume_id).await?;
        let ours = volume
            .as_ref()
            .is_some_and(|v| v.tags.get(tags::RESTORED_FOR) == Some(&instance.id));
        if !ours {
            report.outcome = VolumeOutcome::DeviceInUse;
            waiter.notes.push(format!(
                "{} already holds {} (not made by ninelives for this instance); left as it is",
                plan.device, existing.volume_id
            ));
            // A volume an earlier delivery made for this instance, that the
            // foreign one kept from being attached, is someone's to look at.
            for v in api.volumes_restored_for(&instance.id).await? {
                if v.attachments.is_empty() && !matches!(v.state.as_str(), "deleting" | "deleted") {
                    waiter.notes.push(format!(
                        "{} was made for {} but is not attached ({}); nothing deletes it",
                        v.id, instance.id, v.state
                    ));
                }
            }
            return Ok(());
        }
        report.snapshot_id = volume.and_then(|v| v.tags.get(tags::RESTORED_FROM).cloned());
        if !existing.delete_on_termination && !settings.dry_run {
            api.set_delete_on_termination(&instance.id, &plan.device).await?;
            report.delete_on_termination = true;
        }
        report.outcome = VolumeOutcome::AlreadyAttached;
        return Ok(());
    }

    let earlier = earlier_volume(api, instance, plan).await?;
    let resumed = earlier.is_some();
    let volume_id = match earlier {
        Some(volume) => {
            waiter.notes.push(format!(
                "{} was created for {} by an earlier delivery; finishing it",
                volume.id, instance.id
            ));
            report.volume_id = Some(volume.id.clone());
            report.snapshot_id = volume
                .tags
                .get(tags::RESTORED_FROM)
                .filter(|s| *s != "none")
                .cloned();
            report.size_gib = Some(volume.size_gib);
            if settings.dry_run {
                report.outcome = VolumeOutcome::WouldResume;
                return Ok(());
            }
            volume.id
        }
        None => {
            let request = new_volume(api, instance, cluster, plan, settings, &mut waiter.notes).await?;
            report.snapshot_id = request.snapshot_id.clone();
            report.size_gib = request.size_gib;
            if settings.dry_run {
                report.outcome = if request.snapshot_id.is_some() {
                    VolumeOutcome::WouldRestore
                } else {
                    VolumeOutcome::WouldCreateEmpty
                };
                return Ok(());
            }
            let id = api.create_volume(&request).await?;
            tracing::info!(instance_id = %instance.id, volume_id = %id, snapshot_id = ?request.snapshot_id, availability_zone = %request.availability_zone, "volume created");
            report.volume_id = Some(id.clone());
            id
        }
    };

    let volume = wait_available(api, waiter, &volume_id, instance).await?;
    report.size_gib = Some(volume.size_gib);
    if !attached_to(&volume, &instance.id, &plan.device) {
        attach(api, waiter, &volume_id, instance, &plan.device).await?;
    }
    wait_attached(api, waiter, &volume_id, instance, &plan.device).await?;
    api.set_delete_on_termination(&instance.id, &plan.device).await?;
    report.delete_on_termination = true;
    report.outcome = match report.snapshot_id {
        _ if resumed => VolumeOutcome::Resumed,
        Some(_) => VolumeOutcome::Restored,
        None => VolumeOutcome::CreatedEmpty,
    };
    tracing::info!(instance_id = %instance.id, volume_id = %volume_id, device = %plan.device, "volume attached, deleted on termination");
    Ok(())
}

/// A volume an earlier delivery made for this instance, if any is usable.
async fn earlier_volume<A: RestoreApi>(
    api: &A,
    instance: &Instance,
    plan: &VolumePlan,
) -> Result<Option<Volume>, Error> {
    let mut found: Vec<Volume> = api
        .volumes_restored_for(&instance.id)
        .await?
        .into_iter()
        .filter(|v| !matches!(v.state.as_str(), "deleting" | "deleted"))
        .collect();
    found.sort_by(|a, b| a.id.cmp(&b.id));
    if let Some(broken) = found.iter().find(|v| v.state == "error") {
        return Err(Error::resource(
            format!("volume {}", broken.id),
            format!(
                "made for {} by an earlier delivery, it is in state error; delete it and launch again",
                instance.id
            ),
        ));
    }
    for v in &found {
        if let Some(a) = v.attachments.iter().find(|a| a.instance_id == instance.id)
            && a.device != plan.device
        {
            return Err(Error::resource(
                format!("volume {}", v.id),
                format!(
                    "made for {} is attached at {}, not at {} where {} asks for it",
                    instance.id,
                    a.device,
                    plan.device,
                    tags::DEVICE
                ),
            ));
        }
    }
    Ok(found.into_iter().next())
}

/// What to create: source snapshot, size and tags.
async fn new_volume<A: RestoreApi>(
    api: &A,
    instance: &Instance,
    cluster: &str,
    plan: &VolumePlan,
    settings: &RestoreSettings,
    notes: &mut Vec<String>,
) -> Result<NewVolume, Error> {
    let snapshot = match &plan.source {
        Source::Latest => latest_snapshot(api, instance, cluster, plan, notes).await?,
        Source::Snapshot(id) => Some(named_snapshot(api, instance, id).await?),
        Source::None => None,
    };
    let size_gib = match (&snapshot, plan.size_gib) {
        (_, None) => None,
        (None, size) => size,
        (Some(s), Some(size)) => match s.volume_size_gib {
            Some(from) if size < from => {
                notes.push(format!(
                    "{} is {size} GiB but {} holds {from} GiB; restored at {from} GiB",
                    tags::SIZE,
                    s.id
                ));
                None
            }
            Some(from) if size == from => None,
            _ => Some(size),
        },
    };
    Ok(NewVolume {
        availability_zone: instance.availability_zone.clone(),
        snapshot_id: snapshot.as_ref().map(|s| s.id.clone()),
        size_gib,
        volume_type: settings.volume_type.clone(),
        tags: volume_tags(instance, cluster, plan, snapshot.as_ref()),
        client_token: client_token(&instance.id, &plan.device),
    })
}

async fn latest_snapshot<A: RestoreApi>(
    api: &A,
    instance: &Instance,
    cluster: &str,
    plan: &VolumePlan,
    notes: &mut Vec<String>,
) -> Result<Option<Snapshot>, Error> {
    let snapshots = api.volume_snapshots(cluster, &plan.name).await?;
    let newest = latest::newest_of(&snapshots, cluster, &plan.name).cloned();
    let newer_pending = snapshots.iter().find(|s| {
        s.state == SnapshotState::Pending
            && newest
                .as_ref()
                .is_none_or(|n| (s.start_time, &s.id) > (n.start_time, &n.id))
    });
    match (newest, newer_pending) {
        (Some(n), pending) => {
            if let Some(p) = pending {
                notes.push(format!(
                    "{} of {cluster}/{} is newer but still pending; restored from {}",
                    p.id, plan.name, n.id
                ));
            }
            Ok(Some(n))
        }
        (None, Some(p)) => Err(Error::Incomplete {
            detail: format!(
                "no completed snapshot of {cluster}/{} yet; {} is still pending",
                plan.name, p.id
            ),
            retryable: true,
        }),
        (None, None) if !snapshots.is_empty() => Err(Error::resource(
            format!("instance {}", instance.id),
            format!(
                "{} snapshots of {cluster}/{} exist but none is a completed, valid backup; not starting it empty",
                snapshots.len(),
                plan.name
            ),
        )),
        (None, None) if plan.size_gib.is_some() => {
            notes.push(format!(
                "no snapshot of {cluster}/{} exists; created an empty volume of {} GiB",
                plan.name,
                plan.size_gib.unwrap_or_default()
            ));
            Ok(None)
        }
        (None, None) => Err(Error::resource(
            format!("instance {}", instance.id),
            format!(
                "no completed snapshot of {cluster}/{} to restore, and no {} tag to create an empty volume instead",
                plan.name,
                tags::SIZE
            ),
        )),
    }
}

async fn named_snapshot<A: RestoreApi>(api: &A, instance: &Instance, id: &str) -> Result<Snapshot, Error> {
    let where_named = || format!("named by {} on {}", tags::RESTORE, instance.id);
    let Some(snapshot) = api.snapshot(id).await? else {
        return Err(Error::resource(
            format!("snapshot {id}"),
            format!(
                "does not exist or is not shared with this account ({})",
                where_named()
            ),
        ));
    };
    match snapshot.state {
        SnapshotState::Completed => Ok(snapshot),
        SnapshotState::Pending => Err(Error::Incomplete {
            detail: format!("snapshot {id} ({}) is still pending", where_named()),
            retryable: true,
        }),
        SnapshotState::Error | SnapshotState::Other => Err(Error::resource(
            format!("snapshot {id}"),
            format!(
                "cannot be restored: its state is not completed ({})",
                where_named()
            ),
        )),
    }
}

/// Tags of a new volume: the source snapshot's own tags (not the ones that
/// describe the snapshot), the instance's backup settings, and ninelives'
/// identity of the volume.
fn volume_tags(instance: &Instance, cluster: &str, plan: &VolumePlan, snapshot: Option<&Snapshot>) -> Tags {
    let mut t: Tags = snapshot
        .map(|s| {
            s.tags
                .iter()
                .filter(|(k, _)| {
                    !k.starts_with("aws:")
                        && k.as_str() != "Name"
                        && !tags::SNAPSHOT_ONLY.contains(&k.as_str())
                })
                .take(MAX_COPIED_TAGS)
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect()
        })
        .unwrap_or_default();
    for key in [tags::APP, tags::BACKUP] {
        if let Some(v) = instance.tags.get(key) {
            t.insert(key.to_owned(), v.clone());
        }
    }
    t.insert(tags::CLUSTER.to_owned(), cluster.to_owned());
    t.insert(tags::NAME.to_owned(), plan.name.clone());
    t.insert("Name".to_owned(), format!("{cluster}/{}", plan.name));
    t.insert(
        tags::RESTORED_FROM.to_owned(),
        snapshot.map_or_else(|| "none".to_owned(), |s| s.id.clone()),
    );
    t.insert(tags::RESTORED_FOR.to_owned(), instance.id.clone());
    t
}

fn attached_to(volume: &Volume, instance_id: &str, device: &str) -> bool {
    volume.attachments.iter().any(|a| {
        a.instance_id == instance_id
            && a.device == device
            && matches!(a.state.as_str(), "attaching" | "attached")
    })
}

/// How long a volume just created may be missing from DescribeVolumes.
/// Longer, it is gone: EC2 deletes a volume it cannot create (from an
/// encrypted snapshot whose KMS key it may not use, for one).
const UNLISTED_GRACE: Duration = Duration::from_secs(60);

async fn wait_available<A: RestoreApi, L: LifecycleApi>(
    api: &A,
    waiter: &mut Waiter<'_, L>,
    volume_id: &str,
    instance: &Instance,
) -> Result<Volume, Error> {
    let started = tokio::time::Instant::now();
    loop {
        // A volume just created can be unknown to DescribeVolumes for a
        // moment (eventual consistency): wait for it like for `creating`.
        match api.volume(volume_id).await? {
            Some(v) if v.state == "available" || v.state == "in-use" => {
                if v.state == "in-use" && !v.attachments.iter().any(|a| a.instance_id == instance.id) {
                    return Err(Error::resource(
                        format!("volume {volume_id}"),
                        format!("made for {} is attached to another instance", instance.id),
                    ));
                }
                return Ok(v);
            }
            Some(v) if v.state != "creating" => {
                return Err(Error::resource(
                    format!("volume {volume_id}"),
                    format!("is {} instead of becoming available", v.state),
                ));
            }
            None if started.elapsed() > UNLISTED_GRACE => {
                return Err(Error::resource(
                    format!("volume {volume_id}"),
                    format!(
                        "was created for {} but EC2 no longer lists it (a volume EC2 cannot create, e.g. from an encrypted snapshot whose KMS key it may not use, is deleted)",
                        instance.id
                    ),
                ));
            }
            _ => {
                waiter
                    .pause(&format!("volume {volume_id} to become available"))
                    .await?
            }
        }
    }
}

async fn attach<A: RestoreApi, L: LifecycleApi>(
    api: &A,
    waiter: &mut Waiter<'_, L>,
    volume_id: &str,
    instance: &Instance,
    device: &str,
) -> Result<(), Error> {
    loop {
        match api.attach_volume(volume_id, &instance.id, device).await? {
            Attach::Started => return Ok(()),
            // A duplicate delivery attached it; wait_attached checks where.
            Attach::VolumeInUse => return Ok(()),
            Attach::DeviceInUse => {
                // A duplicate delivery may have attached this very volume;
                // the volume's own attachments show it first.
                if api
                    .volume(volume_id)
                    .await?
                    .is_some_and(|v| attached_to(&v, &instance.id, device))
                {
                    return Ok(());
                }
                let now = api.instance(&instance.id).await?;
                match now
                    .as_ref()
                    .and_then(|i| i.device(device))
                    .map(|d| d.volume_id.clone())
                {
                    Some(holder) if holder == volume_id => return Ok(()),
                    Some(holder) => {
                        return Err(Error::resource(
                            format!("instance {}", instance.id),
                            format!("{device} was taken by {holder} while {volume_id} was being attached"),
                        ));
                    }
                    // Not listed yet on either side: look again.
                    None => {
                        waiter
                            .pause(&format!("{device} on {} to show its volume", instance.id))
                            .await?
                    }
                }
            }
            Attach::NotReady => {
                if let Some(now) = api.instance(&instance.id).await?
                    && now.is_gone()
                {
                    return Err(Error::resource(
                        format!("instance {}", instance.id),
                        format!("is {}; {volume_id} cannot be attached", now.state),
                    ));
                }
                waiter
                    .pause(&format!("instance {} to accept {volume_id}", instance.id))
                    .await?;
            }
        }
    }
}

async fn wait_attached<A: RestoreApi, L: LifecycleApi>(
    api: &A,
    waiter: &mut Waiter<'_, L>,
    volume_id: &str,
    instance: &Instance,
    device: &str,
) -> Result<(), Error> {
    loop {
        let volume = api.volume(volume_id).await?;
        let attachment = volume
            .as_ref()
            .and_then(|v| v.attachments.iter().find(|a| a.instance_id == instance.id));
        match attachment {
            Some(a) if a.state == "attached" && a.device == device => return Ok(()),
            Some(a) if a.device != device => {
                return Err(Error::resource(
                    format!("volume {volume_id}"),
                    format!("is attached to {} at {}, not at {device}", instance.id, a.device),
                ));
            }
            _ => {
                if let Some(other) = volume
                    .as_ref()
                    .and_then(|v| v.attachments.iter().find(|a| a.instance_id != instance.id))
                {
                    return Err(Error::resource(
                        format!("volume {volume_id}"),
                        format!("made for {} is attached to {}", instance.id, other.instance_id),
                    ));
                }
                waiter
                    .pause(&format!("{volume_id} to be attached at {device}"))
                    .await?;
            }
        }
    }
}

#[cfg(test)]
#[path = "tests/restore.rs"]
mod tests;
