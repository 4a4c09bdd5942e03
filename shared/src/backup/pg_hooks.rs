//! PostgreSQL backup mode for snapshot-volumes (SPEC item 1's optional
//! hook): a group of volumes tagged `ninelives:app=postgres` is
//! snapshotted between `pg_backup_start` and `pg_backup_stop`, both on one
//! session held open across the snapshot call (a non-exclusive backup
//! belongs to its session, and is aborted if the session ends first).
//!
//! Why, when `CreateSnapshots` is already one point in time across the
//! group: that point is crash-consistent, and restores by crash recovery
//! only if every file of the cluster (WAL included) is in the group. A
//! backup label makes the snapshot a base backup: with the WAL archive it
//! restores to any later moment (point-in-time recovery), and volumes taken
//! one by one (more than `CreateSnapshots` can handle) are still usable.
//!
//! `before` finds the instance's PostgreSQL ([`NodeLocator`]: its
//! `ninelives:endpoint` tag, else its private DNS name on 5432) and starts
//! the backup with an immediate checkpoint (see `PgNodes::backup_start`);
//! `after` stops it on the same session, whether the snapshot call worked
//! or not (unless the invocation's deadline cuts the run first: the session
//! is then closed, which aborts the backup), and returns the label as tags
//! for the snapshots ([`label_tags`]): `backup_label` split over
//! `ninelives:pg-backup-label`, `-2`, ..., the `tablespace_map` likewise,
//! and the stop LSN. If the stop fails (or the session died: the server
//! then aborted the backup), the fresh snapshots are not valid backups;
//! `snapshot_group` deletes them and fails the group, so the retry takes
//! them again. A snapshot without a readable label (its run was cut off
//! before the stop or the tagging) is not a backup either:
//! `proves_backup` says so, and the next run of the period takes the group
//! again and then removes it. If the start fails (the node is down, refuses
//! us), nothing of the group is snapshotted and the group fails, retryable
//! when the node may come back.
//!
//! The backup session lifts the timeouts the server, the role or the
//! database may set (`statement_timeout`, `idle_session_timeout`, ...: see
//! `crate::pg_node`), which would cancel the stop or end the session, and
//! with it the backup.
//!
//! A group not attached to an instance (a detached volume) has no server to
//! put in backup mode: it is taken without, and the log says so.
//!
//! Tag values: EC2's API allows 256 Unicode characters per value; AWS'
//! tagging guidance allows letters, digits, spaces and `+ - = . _ : / @`
//! across services, and names no newline. The label file has newlines and
//! parentheses, so it is escaped to that set (`@XX` per UTF-8 byte of any
//! other character, `@` itself included) and split into values of at most
//! 256 characters, never inside an escape; [`label_from_tags`] reverses it
//! exactly.

use std::future::Future;

use super::hooks::AppHooks;
use super::model::Tags;
use super::select::Group;
use crate::chain::model::Node;
use crate::error::Error;
use crate::pg_node::{BackupSession, DEFAULT_PORT, PgError, PgNodes, PgSettings};
use crate::tags;

/// The `ninelives:app` value this hook handles.
pub const APP: &str = "postgres";

/// EC2's longest tag value, in characters.
const MAX_TAG_VALUE: usize = 256;
/// Tags one escaped file may take. A `backup_label` is about 300
/// characters escaped (two tags); a snapshot holds 50 tags, about 13 of
/// them ninelives' own.
const MAX_PARTS: usize = 8;

/// Where an instance's database answers.
pub trait NodeLocator: Sync {
    /// The node instance `instance_id` is, its endpoint from its
    /// `ninelives:endpoint` tag or its private DNS name (or address) on
    /// `default_port`. `cluster` stands in for the instance's own
    /// `ninelives:cluster` tag when it has none.
    fn locate(
        &self,
        instance_id: &str,
        cluster: &str,
        default_port: u16,
    ) -> impl Future<Output = Result<Node, Error>> + Send;
}

/// A backup-mode step that failed on one instance.
#[derive(Debug, thiserror::Error)]
#[error("PostgreSQL backup mode of {instance_id}: {step} failed: {source}")]
pub struct BackupModeError {
    pub instance_id: String,
    pub step: &'static str,
    #[source]
    pub source: PgError,
}

impl From<BackupModeError> for Error {
    fn from(e: BackupModeError) -> Self {
        Error::Store {
            retryable: e.source.is_retryable(),
            source: Box::new(e),
        }
    }
}

/// [`AppHooks`] for `ninelives:app=postgres`.
#[derive(Debug, Clone)]
pub struct PgBackupHooks<L> {
    nodes: PgNodes,
    locator: L,
}

impl<L: NodeLocator> PgBackupHooks<L> {
    pub fn new(settings: PgSettings, locator: L) -> Self {
        PgBackupHooks {
            nodes: PgNodes::new(settings),
            locator,
        }
    }
}

/// What `before` hands to `after`: the open backup session, if the group
/// has a server.
#[derive(Debug)]
pub struct PgGuard {
    held: Option<(String, BackupSession)>,
}

impl PgGuard {
    /// The session's server process, for logs and tests.
    pub fn backend_pid(&self) -> Option<i32> {
        self.held.as_ref().map(|(_, s)| s.backend_pid())
    }
}

impl<L: NodeLocator> AppHooks for PgBackupHooks<L> {
    type Guard = PgGuard;

    fn supports(&self, app: &str) -> bool {
        let app = app.trim();
        app.eq_ignore_ascii_case(APP) || app.eq_ignore_ascii_case("postgresql")
    }

    /// A snapshot of an instance's volumes is a backup when it carries a
    /// readable label; volumes attached to no instance are never taken in
    /// backup mode (see `before`), so any of their snapshots counts.
    fn proves_backup(&self, group: &Group, snapshot_tags: &Tags) -> bool {
        group.instance_id.is_none() || label_from_tags(snapshot_tags).is_some()
    }

    async fn before(&self, group: &Group) -> Result<PgGuard, Error> {
        let Some(instance_id) = group.instance_id.as_deref() else {
            tracing::warn!(
                cluster = %group.cluster,
                volume_ids = ?group.volume_ids(),
                "{}={APP} on volumes attached to no instance: no server to put in backup mode; taken as they are",
                tags::APP
            );
            return Ok(PgGuard { held: None });
        };
        let node = self
            .locator
            .locate(instance_id, &group.cluster, DEFAULT_PORT)
            .await?;
        let label = backup_label_name(&group.cluster, instance_id);
        let session = self
            .nodes
            .backup_start(&node.endpoint, &label)
            .await
            .map_err(|source| BackupModeError {
                instance_id: instance_id.to_owned(),
                step: "pg_backup_start",
                source,
            })?;
        tracing::info!(
            instance_id = %instance_id,
            node = %node.endpoint,
            backend_pid = session.backend_pid(),
            start_lsn = %session.start_lsn(),
            label = %label,
            "PostgreSQL backup started"
        );
        Ok(PgGuard {
            held: Some((instance_id.to_owned(), session)),
        })
    }

    async fn after(&self, _group: &Group, guard: PgGuard, snapshot_ids: &[String]) -> Result<Tags, Error> {
        let Some((instance_id, session)) = guard.held else {
            return Ok(Tags::new());
        };
        let node = session.endpoint().clone();
        let stopped = session.stop().await.map_err(|source| BackupModeError {
            instance_id: instance_id.clone(),
            step: "pg_backup_stop",
            source,
        })?;
        tracing::info!(
            instance_id = %instance_id,
            node = %node,
            stop_lsn = %stopped.lsn,
            snapshot_ids = ?snapshot_ids,
            "PostgreSQL backup stopped"
        );
        let mut tags = label_tags(&stopped.labelfile, &stopped.lsn);
        if parts(&stopped.labelfile) > MAX_PARTS {
            return Err(Error::resource(
                instance_id,
                format!(
                    "the backup label is {} characters, more than {MAX_PARTS} tags hold",
                    stopped.labelfile.chars().count()
                ),
            ));
        }
        if !stopped.spcmapfile.is_empty() {
            if parts(&stopped.spcmapfile) <= MAX_PARTS {
                tags.extend(split_tags(tags::PG_TABLESPACE_MAP, &stopped.spcmapfile));
            } else {
                // The snapshot's own pg_tblspc links say the same; the map
                // is needed only where links cannot be kept (tar files).
                tracing::warn!(
                    instance_id = %instance_id,
                    "the tablespace map is too long for tags; restore uses the snapshot's pg_tblspc links"
                );
            }
        }
        Ok(tags)
    }
}

/// The label given to `pg_backup_start` (shown in the label file and the
/// server's log).
fn backup_label_name(cluster: &str, instance_id: &str) -> String {
    let label = format!("ninelives {cluster} {instance_id}");
    // PostgreSQL refuses labels longer than MAXPGPATH - 1 (1023) bytes.
    label.chars().take(200).collect()
}

/// The tags that store a backup: `labelfile` escaped and split over
/// [`tags::PG_BACKUP_LABEL`], `-2`, `-3`, ..., and the stop LSN.
pub fn label_tags(labelfile: &str, stop_lsn: &str) -> Tags {
    let mut t = split_tags(tags::PG_BACKUP_LABEL, labelfile);
    t.insert(tags::PG_BACKUP_STOP_LSN.to_owned(), stop_lsn.to_owned());
    t
}

/// The `backup_label` text stored by [`label_tags`], exactly; `None` when
/// the tags hold none, or parts that cannot be read.
pub fn label_from_tags(tags: &Tags) -> Option<String> {
    join_tags(tags::PG_BACKUP_LABEL, tags)
}

/// The `tablespace_map` text, when the backup had tablespaces.
pub fn tablespace_map_from_tags(tags: &Tags) -> Option<String> {
    join_tags(tags::PG_TABLESPACE_MAP, tags)
}

fn part_key(base: &str, n: usize) -> String {
    if n == 1 {
        base.to_owned()
    } else {
        format!("{base}-{n}")
    }
}

/// Characters passed through as they are: AWS' general tag set, less `@`
/// (the escape).
fn plain(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, ' ' | '+' | '-' | '=' | '.' | '_' | ':' | '/')
}

/// `text` as escaped pieces, each a character or a whole `@XX` run of one
/// character, so values are cut between pieces only.
fn pieces(text: &str) -> impl Iterator<Item = String> + '_ {
    text.chars().map(|c| {
        if plain(c) {
            c.to_string()
        } else {
            let mut buf = [0u8; 4];
            c.encode_utf8(&mut buf)
                .bytes()
                .map(|b| format!("@{b:02X}"))
                .collect()
        }
    })
}

fn split(text: &str) -> Vec<String> {
    let mut values = vec![String::new()];
    let mut len = 0;
    for piece in pieces(text) {
        // Escaped pieces are ASCII: bytes are characters.
        if len + piece.len() > MAX_TAG_VALUE {
            values.push(String::new());
            len = 0;
        }
        len += piece.len();
        if let Some(last) = values.last_mut() {
            last.push_str(&piece);
        }
    }
    values
}

fn parts(text: &str) -> usize {
    split(text).len()
}

fn split_tags(base: &str, text: &str) -> Tags {
    split(text)
        .into_iter()
        .enumerate()
        .map(|(i, v)| (part_key(base, i + 1), v))
        .collect()
}

fn join_tags(base: &str, tags: &Tags) -> Option<String> {
    let mut escaped = String::new();
    let mut n = 1;
    while let Some(value) = tags.get(&part_key(base, n)) {
        escaped.push_str(value);
        n += 1;
    }
    if n == 1 {
        return None;
    }
    unescape(&escaped)
}

fn unescape(text: &str) -> Option<String> {
    let mut bytes = Vec::with_capacity(text.len());
    let mut rest = text.as_bytes();
    while let Some((&b, tail)) = rest.split_first() {
        if b == b'@' {
            let hex = tail.get(..2).filter(|h| h.iter().all(u8::is_ascii_hexdigit))?;
            let hex = std::str::from_utf8(hex).ok()?;
            bytes.push(u8::from_str_radix(hex, 16).ok()?);
            rest = tail.get(2..)?;
        } else {
            bytes.push(b);
            rest = tail;
        }
    }
    String::from_utf8(bytes).ok()
}

#[cfg(test)]
#[path = "tests/pg_hooks.rs"]
mod tests;
