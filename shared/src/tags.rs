//! The tag contract (SPEC "Resource contract"): the names users put on
//! volumes and instances, and the names ninelives puts on what it creates.
//! Nothing else in the code spells a `ninelives:` tag key.

/// What every ninelives tag key starts with.
pub const PREFIX: &str = "ninelives:";

/// Name of the cluster or replica set; the fully qualified record name.
pub const CLUSTER: &str = "ninelives:cluster";
/// Logical volume within the cluster (a tablespace such as `main`).
pub const NAME: &str = "ninelives:name";
/// Role of an instance: `redis`, `mongodb`, `mongodb-arbiter`, `search`, `postgres`.
pub const ROLE: &str = "ninelives:role";
/// `off` excludes a volume from backups.
pub const BACKUP: &str = "ninelives:backup";
/// `host:port` override for a node.
pub const ENDPOINT: &str = "ninelives:endpoint";
/// Device a restored volume is attached at (default `/dev/sdf`).
pub const DEVICE: &str = "ninelives:device";
/// Size in GiB of a new, empty volume.
pub const SIZE: &str = "ninelives:size";
/// `latest`, a snapshot id, or `none`.
pub const RESTORE: &str = "ninelives:restore";
/// Application whose backup mode wraps the snapshot (`postgres`).
pub const APP: &str = "ninelives:app";

/// On snapshots: the retention tier that made it.
pub const TIER: &str = "ninelives:tier";
/// On snapshots: the volume it was taken from.
pub const VOLUME_ID: &str = "ninelives:volume-id";
/// On snapshots: when it may be purged (RFC 3339, UTC).
pub const EXPIRES_AT: &str = "ninelives:expires-at";
/// On snapshots: marks what ninelives manages; purge touches nothing else.
pub const MANAGED_BY: &str = "ninelives:managed-by";
/// The value of [`MANAGED_BY`].
pub const MANAGED_BY_VALUE: &str = "ninelives";
/// On snapshots: the tier's period the snapshot belongs to (`2026-11-24`
/// for daily). With the tier and volume it makes the idempotency key: one
/// snapshot per volume, tier and period, however often the event arrives.
pub const PERIOD: &str = "ninelives:period";
/// On snapshots: the invocation (Lambda request id) that created it, for
/// people tracing a snapshot back to its logs.
pub const RUN: &str = "ninelives:run";
/// On snapshots: a token unique to the create call that made it. All
/// snapshots of one `CreateSnapshots` call share it; duplicate clean-up
/// removes whole sets by it.
pub const SET: &str = "ninelives:set";
/// On snapshots: how many volumes the create call asked for. A set is
/// complete when that many of its snapshots are listed.
pub const SET_SIZE: &str = "ninelives:set-size";
/// On snapshots: why this snapshot is not a valid backup (a volume attached
/// mid-run, an application backup mode that did not end) when it could not
/// be deleted at once. Never counts as a backup; purged when it expires.
pub const INVALID: &str = "ninelives:invalid";
/// On snapshots: the instance the volume was attached to, if any.
pub const INSTANCE_ID: &str = "ninelives:instance-id";

/// On snapshots taken in PostgreSQL backup mode: the `backup_label` file
/// `pg_backup_stop` returned, to write into the data directory on restore.
/// Escaped (`@XX` per UTF-8 byte outside letters, digits, space and
/// `+-=._:/`, so a newline is `@0A`) and split over this key, then `-2`,
/// `-3`, ... (each value at most 256 characters);
/// `shared::backup::pg_hooks::label_from_tags` reassembles it.
pub const PG_BACKUP_LABEL: &str = "ninelives:pg-backup-label";
/// On snapshots taken in PostgreSQL backup mode: the `tablespace_map` file,
/// when there are tablespaces; stored like [`PG_BACKUP_LABEL`].
pub const PG_TABLESPACE_MAP: &str = "ninelives:pg-tablespace-map";
/// On snapshots taken in PostgreSQL backup mode: where the backup ends
/// (`pg_backup_stop`'s LSN). Recovery from the snapshot with its label must
/// replay WAL at least this far.
pub const PG_BACKUP_STOP_LSN: &str = "ninelives:pg-backup-stop-lsn";

/// On volumes lifecycle-hook creates: the snapshot it was restored from, or
/// `none` for a new empty volume.
pub const RESTORED_FROM: &str = "ninelives:restored-from";
/// On volumes lifecycle-hook creates: the instance it was made for. A retried
/// launch finds its volume by this tag instead of creating a second one.
pub const RESTORED_FOR: &str = "ninelives:restored-for";

/// Keys that describe one snapshot, not the data in it: never copied from a
/// snapshot onto a volume restored from it.
pub const SNAPSHOT_ONLY: &[&str] = &[
    TIER,
    VOLUME_ID,
    EXPIRES_AT,
    MANAGED_BY,
    PERIOD,
    RUN,
    SET,
    SET_SIZE,
    INVALID,
    INSTANCE_ID,
];
