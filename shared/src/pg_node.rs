//! The PostgreSQL adapter, on tokio-postgres (no TLS): the readings
//! publish-metrics sends for each `ninelives:role=postgres` node
//! ([`PgProbe`] on [`PgNodes`]), and the one session that holds a
//! non-exclusive backup open for snapshot-volumes' backup mode
//! ([`PgNodes::backup_start`], [`BackupSession::stop`]).
//!
//! Every connection is made for one job and closed after it: a metrics run
//! reads each node once a minute at most, and a backup session must be its
//! own (PostgreSQL ties a non-exclusive backup to the session that started
//! it, and aborts it when that session ends). Every step is bounded:
//! [`PgSettings::connect_timeout`] covers TCP, the startup exchange and
//! authentication (a SIGSTOPped server accepts the TCP connection and then
//! says nothing); [`PgSettings::command_timeout`] each query, also set as
//! the session's `statement_timeout` so the server drops what we stopped
//! waiting for. The backup's start and stop get more (a checkpoint, WAL
//! archiving: [`BACKUP_START_EXTRA`], [`BACKUP_STOP_EXTRA`]), and the backup
//! session lifts the server's own timeouts, which a role or database may
//! set (`no_timeouts`). A node's readings may be given a time budget for
//! its databases ([`PgNodes::with_budget`]).
//!
//! Errors are classified for the callers ([`PgError`]): unreachable or
//! silent is `Down`, refused credentials `Auth`, a server starting up,
//! shutting down or still recovering `Starting`, a query the server refused
//! `Query` with its SQLSTATE, an answer of an unexpected shape `Malformed`.
//! The driver's error stays the source; the server's own message is shown
//! in the text (tokio-postgres prints only "db error" for it).
//!
//! The password reaches the driver's SCRAM/MD5 exchange and nowhere else:
//! the configuration is built from parts (no connection string carrying
//! it), and [`PgSettings`]' `Debug` masks it.

use std::error::Error as StdError;
use std::fmt;
use std::future::Future;
use std::time::Duration;

use futures::StreamExt;
use tokio::task::JoinHandle;
use tokio_postgres::error::SqlState;
use tokio_postgres::{Client, NoTls, Row};

use crate::chain::model::Endpoint;
use crate::config::{Env, number};
use crate::error::{BoxError, ConfigError};
use crate::metrics::postgres::{DatabaseReadings, PgProbe, Readings, WalSender};

/// PostgreSQL's default port, used when `ninelives:endpoint` gives none.
pub const DEFAULT_PORT: u16 = 5432;

/// What `pg_backup_start` may take on top of the command timeout: its
/// immediate checkpoint writes every dirty buffer, seconds on a busy node.
pub const BACKUP_START_EXTRA: Duration = Duration::from_secs(60);
/// What `pg_backup_stop` may take on top of the command timeout: with WAL
/// archiving on it waits until the last segment of the backup is archived.
pub const BACKUP_STOP_EXTRA: Duration = Duration::from_secs(120);

/// Databases read at once on one node, each on a connection of its own.
const DATABASE_CONCURRENCY: usize = 4;
/// Databases read per node at most; the rest are reported, not read, so
/// one node cannot take a metrics run's whole time.
const MAX_DATABASES: usize = 64;
/// How long a closing connection may take to say goodbye before it is cut.
const CLOSE_GRACE: Duration = Duration::from_secs(1);
/// PostgreSQL 10 renamed the `xlog` functions; older servers are not read.
const MIN_VERSION: i32 = 100_000;
/// `pg_backup_start`/`pg_backup_stop` replaced `pg_start_backup`/
/// `pg_stop_backup` in 15.
const BACKUP_FUNCTIONS_RENAMED: i32 = 150_000;
/// Longest name PostgreSQL keeps (NAMEDATALEN - 1 bytes); longer ones are
/// cut by the server, and would then not be the user or database meant.
const MAX_NAME: usize = 63;

/// How to reach and log in to PostgreSQL nodes.
#[derive(Clone, PartialEq, Eq)]
pub struct PgSettings {
    /// `PGUSER`: a superuser, or a user with `pg_monitor` (metrics) and
    /// the `pg_backup_start`/`pg_backup_stop` grants (backup mode).
    pub user: String,
    /// `PGPASSWORD`; never logged or printed.
    pub password: Option<String>,
    /// `PGDATABASE`: the database connected to first.
    pub database: String,
    /// Bound on connecting, including the startup exchange and login.
    pub connect_timeout: Duration,
    /// Bound on each query.
    pub command_timeout: Duration,
}

impl fmt::Debug for PgSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PgSettings")
            .field("user", &self.user)
            .field("password", &self.password.as_ref().map(|_| "***"))
            .field("database", &self.database)
            .field("connect_timeout", &self.connect_timeout)
            .field("command_timeout", &self.command_timeout)
            .finish()
    }
}

impl Default for PgSettings {
    fn default() -> Self {
        PgSettings {
            user: "postgres".to_owned(),
            password: None,
            database: "postgres".to_owned(),
            connect_timeout: Duration::from_millis(2000),
            command_timeout: Duration::from_millis(5000),
        }
    }
}

impl PgSettings {
    /// libpq's own `PGUSER` (default `postgres`), `PGPASSWORD` (optional),
    /// `PGDATABASE` (default `postgres`), and `PG_CONNECT_TIMEOUT_MS`
    /// (50 to 60000, default 2000), `PG_COMMAND_TIMEOUT_MS` (50 to 120000,
    /// default 5000). Hosts and ports come from EC2 tags, never `PGHOST`.
    pub fn from_env(env: &impl Env) -> Result<Self, ConfigError> {
        let defaults = PgSettings::default();
        let name = |var: &'static str, default: String| -> Result<String, ConfigError> {
            let Some(value) = env.get(var) else {
                return Ok(default);
            };
            if value.len() > MAX_NAME || value.contains('\0') {
                return Err(ConfigError::Invalid {
                    name: var,
                    value,
                    reason: format!("a PostgreSQL name is 1 to {MAX_NAME} bytes, without NUL"),
                });
            }
            Ok(value)
        };
        let password = env.get("PGPASSWORD");
        if password.as_deref().is_some_and(|p| p.contains('\0')) {
            return Err(ConfigError::Invalid {
                name: "PGPASSWORD",
                value: "***".to_owned(),
                reason: "contains a NUL character".to_owned(),
            });
        }
        Ok(PgSettings {
            user: name("PGUSER", defaults.user)?,
            password,
            database: name("PGDATABASE", defaults.database)?,
            connect_timeout: Duration::from_millis(number(env, "PG_CONNECT_TIMEOUT_MS", 2000, 50, 60_000)?),
            command_timeout: Duration::from_millis(number(env, "PG_COMMAND_TIMEOUT_MS", 5000, 50, 120_000)?),
        })
    }
}

/// Why a node could not be read or used.
#[derive(Debug, thiserror::Error)]
pub enum PgError {
    /// Connection refused, reset or timed out; no answer in time; the
    /// session died.
    #[error("PostgreSQL at {endpoint} is not answering: {}", describe(source.as_ref()))]
    Down {
        endpoint: Endpoint,
        #[source]
        source: BoxError,
    },
    /// The server refused our user or password (28P01, 28000: also a
    /// `pg_hba.conf` without an entry for us).
    #[error("PostgreSQL at {endpoint} refused user {user}: {}", describe(source))]
    Auth {
        endpoint: Endpoint,
        user: String,
        #[source]
        source: tokio_postgres::Error,
    },
    /// Starting up, shutting down, or not yet consistent in recovery
    /// (57P03 and the shutdown codes): try again shortly.
    #[error(
        "PostgreSQL at {endpoint} does not accept connections now: {}",
        describe(source)
    )]
    Starting {
        endpoint: Endpoint,
        #[source]
        source: tokio_postgres::Error,
    },
    /// The server answered a query (or the login) with an error.
    #[error("PostgreSQL at {endpoint}: {what} failed: {}", describe(source))]
    Query {
        endpoint: Endpoint,
        what: &'static str,
        #[source]
        source: tokio_postgres::Error,
    },
    /// A query got no answer within its bound.
    #[error("PostgreSQL at {endpoint}: {what} got no answer within {} ms", after.as_millis())]
    Timeout {
        endpoint: Endpoint,
        what: &'static str,
        after: Duration,
        #[source]
        source: tokio::time::error::Elapsed,
    },
    /// A connection that failed for a reason no retry fixes (the server
    /// wants a password and none is set, or TLS).
    #[error("cannot connect to PostgreSQL at {endpoint}: {}", describe(source))]
    Connect {
        endpoint: Endpoint,
        #[source]
        source: tokio_postgres::Error,
    },
    /// An answer of a shape every supported PostgreSQL would not send.
    #[error("PostgreSQL at {endpoint} answered {what} with something that cannot be read: {detail}")]
    Malformed {
        endpoint: Endpoint,
        what: &'static str,
        detail: String,
    },
    /// Older than PostgreSQL 10.
    #[error("PostgreSQL at {endpoint} is version {version_num}; ninelives needs 10 or newer")]
    Unsupported { endpoint: Endpoint, version_num: i32 },
}

impl PgError {
    /// Whether the same call may succeed later.
    pub fn is_retryable(&self) -> bool {
        match self {
            PgError::Down { .. } | PgError::Starting { .. } | PgError::Timeout { .. } => true,
            PgError::Auth { .. }
            | PgError::Connect { .. }
            | PgError::Malformed { .. }
            | PgError::Unsupported { .. } => false,
            PgError::Query { source, .. } => match source.code() {
                // Connection trouble, resources, operator intervention
                // (shutdown, cancel), serialization, a lock not available.
                Some(code) => {
                    let c = code.code();
                    ["08", "53", "57", "40"].iter().any(|class| c.starts_with(class)) || c == "55P03"
                }
                None => source.is_closed(),
            },
        }
    }

    /// The SQLSTATE the server answered with, if it did.
    pub fn code(&self) -> Option<&str> {
        match self {
            PgError::Auth { source, .. }
            | PgError::Starting { source, .. }
            | PgError::Query { source, .. }
            | PgError::Connect { source, .. } => source.code().map(SqlState::code),
            _ => None,
        }
    }
}

impl From<PgError> for crate::error::Error {
    fn from(e: PgError) -> Self {
        crate::error::Error::Store {
            retryable: e.is_retryable(),
            source: Box::new(e),
        }
    }
}

/// The server's message (tokio-postgres' own `Display` says only "db
/// error"), else the error and its causes.
fn describe(e: &(dyn StdError + 'static)) -> String {
    if let Some(pg) = e.downcast_ref::<tokio_postgres::Error>()
        && let Some(db) = pg.as_db_error()
    {
        return format!("{} ({})", db.message(), db.code().code());
    }
    let mut text = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        text.push_str(": ");
        text.push_str(&c.to_string());
        cause = c.source();
    }
    text
}

fn has_io_cause(e: &(dyn StdError + 'static)) -> bool {
    let mut cause = e.source();
    while let Some(c) = cause {
        if c.is::<std::io::Error>() {
            return true;
        }
        cause = c.source();
    }
    false
}

/// What a failed connection attempt means.
fn classify_connect(endpoint: &Endpoint, user: &str, e: tokio_postgres::Error) -> PgError {
    let endpoint = endpoint.clone();
    match e.code() {
        Some(c)
            if *c == SqlState::INVALID_PASSWORD || *c == SqlState::INVALID_AUTHORIZATION_SPECIFICATION =>
        {
            PgError::Auth {
                endpoint,
                user: user.to_owned(),
                source: e,
            }
        }
        Some(c)
            if *c == SqlState::CANNOT_CONNECT_NOW
                || *c == SqlState::ADMIN_SHUTDOWN
                || *c == SqlState::CRASH_SHUTDOWN =>
        {
            PgError::Starting { endpoint, source: e }
        }
        Some(_) => PgError::Query {
            endpoint,
            what: "connect",
            source: e,
        },
        None if e.is_closed() || has_io_cause(&e) => PgError::Down {
            endpoint,
            source: Box::new(e),
        },
        None => PgError::Connect { endpoint, source: e },
    }
}

/// What a failed query means: a dead session is the node going down.
fn classify_query(endpoint: &Endpoint, what: &'static str, e: tokio_postgres::Error) -> PgError {
    if e.code().is_none() && (e.is_closed() || has_io_cause(&e)) {
        return PgError::Down {
            endpoint: endpoint.clone(),
            source: Box::new(e),
        };
    }
    match e.code() {
        Some(c) if *c == SqlState::ADMIN_SHUTDOWN || *c == SqlState::CRASH_SHUTDOWN => PgError::Starting {
            endpoint: endpoint.clone(),
            source: e,
        },
        _ => PgError::Query {
            endpoint: endpoint.clone(),
            what,
            source: e,
        },
    }
}

/// One connection: the client and the task driving its socket.
struct Session {
    endpoint: Endpoint,
    client: Option<Client>,
    task: Option<JoinHandle<()>>,
    command_timeout: Duration,
}

impl Session {
    fn client(&self, what: &'static str) -> Result<&Client, PgError> {
        // Only `close` takes the client, and it consumes the session.
        self.client.as_ref().ok_or_else(|| PgError::Malformed {
            endpoint: self.endpoint.clone(),
            what,
            detail: "the session is closed".to_owned(),
        })
    }

    /// Runs one query, bounded by the command timeout plus `extra`.
    async fn run<T, F>(&self, what: &'static str, extra: Duration, query: F) -> Result<T, PgError>
    where
        F: Future<Output = Result<T, tokio_postgres::Error>>,
    {
        let bound = self.command_timeout + extra;
        match tokio::time::timeout(bound, query).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(classify_query(&self.endpoint, what, e)),
            Err(elapsed) => Err(PgError::Timeout {
                endpoint: self.endpoint.clone(),
                what,
                after: bound,
                source: elapsed,
            }),
        }
    }

    async fn one(&self, what: &'static str, sql: &str) -> Result<Row, PgError> {
        let client = self.client(what)?;
        self.run(what, Duration::ZERO, client.query_one(sql, &[])).await
    }

    /// Ends the session: the connection says goodbye (Terminate) once the
    /// client is gone; a server that does not take it within a second is
    /// cut off.
    async fn close(mut self) {
        drop(self.client.take());
        if let Some(task) = self.task.take() {
            let abort = task.abort_handle();
            if tokio::time::timeout(CLOSE_GRACE, task).await.is_err() {
                abort.abort();
            }
        }
    }
}

impl Drop for Session {
    /// A session dropped without `close` (an error, a cancelled future)
    /// is cut at once: for a backup session that aborts the backup on the
    /// server, which is what an unfinished backup must do.
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

/// A typed column, or `Malformed` naming the query.
fn get<'a, T: tokio_postgres::types::FromSql<'a>>(
    endpoint: &Endpoint,
    what: &'static str,
    row: &'a Row,
    index: usize,
) -> Result<T, PgError> {
    row.try_get(index).map_err(|e| PgError::Malformed {
        endpoint: endpoint.clone(),
        what,
        detail: format!("column {index}: {}", describe(&e)),
    })
}

/// The PostgreSQL nodes, reached with one set of settings.
#[derive(Clone)]
pub struct PgNodes {
    settings: PgSettings,
    /// How long one node's readings may go on starting and reading its
    /// databases, counted from the start of the read; `None`: no bound
    /// but the per-step ones.
    budget: Option<Duration>,
}

impl fmt::Debug for PgNodes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PgNodes")
            .field("settings", &self.settings)
            .field("budget", &self.budget)
            .finish()
    }
}

/// What became of one database's read.
enum DatabaseRead {
    Read(DatabaseReadings),
    Failed(PgError),
    /// Not started, or cut short, because the node's budget was spent.
    OutOfTime,
}

impl PgNodes {
    pub fn new(settings: PgSettings) -> Self {
        PgNodes {
            settings,
            budget: None,
        }
    }

    /// Bounds the databases' part of each node's readings: counted from
    /// the start of the read, no database is started once `budget` is
    /// spent, and one still being read then is given up. Those databases
    /// are named in the readings' `skipped`; the node's own figures, and
    /// those of the databases read in time, are returned as usual.
    ///
    /// For a caller that bounds a whole node read (publish-metrics'
    /// `NODE_TIMEOUT_MS`): up to 64 databases, each with its connection and
    /// query bounds, can take far longer than such a bound, and a read cut
    /// by it loses the node's figures too. The node's own queries count
    /// against the budget (it runs from the start of the read), but are not
    /// cut by it: leave the rest of the caller's bound for a slow one, and
    /// for closing the first database's connection (up to a second).
    pub fn with_budget(self, budget: Duration) -> Self {
        PgNodes {
            budget: Some(budget),
            ..self
        }
    }

    pub fn settings(&self) -> &PgSettings {
        &self.settings
    }

    /// A session to `database` on `endpoint`. `statement_timeout` makes
    /// the server give up a query we stopped waiting for (given at startup,
    /// it also overrides one set for the role or database). A backup
    /// session is opened without, and clears every server-side timeout
    /// itself once it knows the version (`start_in`, [`no_timeouts`]).
    async fn connect(
        &self,
        endpoint: &Endpoint,
        database: &str,
        application: &str,
        statement_timeout: bool,
    ) -> Result<Session, PgError> {
        let s = &self.settings;
        let mut config = tokio_postgres::Config::new();
        config
            .host(&endpoint.host)
            .port(endpoint.port)
            .user(&s.user)
            .dbname(database)
            .application_name(application)
            .connect_timeout(s.connect_timeout);
        if let Some(password) = &s.password {
            config.password(password);
        }
        if statement_timeout {
            config.options(format!("-c statement_timeout={}", s.command_timeout.as_millis()));
        }
        let (client, connection) = match tokio::time::timeout(s.connect_timeout, config.connect(NoTls)).await
        {
            Ok(Ok(pair)) => pair,
            Ok(Err(e)) => return Err(classify_connect(endpoint, &s.user, e)),
            Err(_) => {
                // `Elapsed` says only "deadline has elapsed"; the bound says more.
                return Err(PgError::Down {
                    endpoint: endpoint.clone(),
                    source: format!(
                        "no answer to the connection and login within {} ms",
                        s.connect_timeout.as_millis()
                    )
                    .into(),
                });
            }
        };
        let node = endpoint.clone();
        let task = tokio::spawn(async move {
            // Ends when the client is dropped (after saying goodbye) or the
            // server goes away; a query waiting on it sees the error itself.
            if let Err(e) = connection.await {
                tracing::debug!(node = %node, error = %describe(&e), "PostgreSQL connection ended");
            }
        });
        Ok(Session {
            endpoint: endpoint.clone(),
            client: Some(client),
            task: Some(task),
            command_timeout: s.command_timeout,
        })
    }

    /// The node's own figures, on the first database's session.
    async fn read_node(&self, session: &Session) -> Result<(Readings, Vec<String>), PgError> {
        let endpoint = &session.endpoint;
        let mut r = Readings::default();

        const VERSION: &str = "server version";
        let row = session
            .one(
                VERSION,
                "SELECT current_setting('server_version_num')::int4, pg_is_in_recovery()",
            )
            .await?;
        r.server_version_num = get(endpoint, VERSION, &row, 0)?;
        r.in_recovery = get(endpoint, VERSION, &row, 1)?;
        if r.server_version_num < MIN_VERSION {
            return Err(PgError::Unsupported {
                endpoint: endpoint.clone(),
                version_num: r.server_version_num,
            });
        }

        const CONNECTIONS: &str = "connections";
        let row = session
            .one(
                CONNECTIONS,
                "SELECT (SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend'), \
                 current_setting('max_connections')",
            )
            .await?;
        r.connections = get(endpoint, CONNECTIONS, &row, 0)?;
        r.max_connections = get(endpoint, CONNECTIONS, &row, 1)?;

        // Needs superuser or pg_monitor: without, the rest is still read.
        const WAL: &str = "pg_ls_waldir";
        match session.one(WAL, "SELECT count(*) FROM pg_ls_waldir()").await {
            Ok(row) => r.wal_files = Some(get(endpoint, WAL, &row, 0)?),
            Err(e @ PgError::Query { .. }) => r.skipped.push(format!("{WAL}: {e}")),
            Err(e) => return Err(e),
        }

        if r.in_recovery {
            const REPLAY: &str = "replica state";
            let row = session
                .one(
                    REPLAY,
                    "SELECT pg_last_wal_receive_lsn()::text, pg_last_wal_replay_lsn()::text, \
                     extract(epoch FROM now() - pg_last_xact_replay_timestamp())::float8, \
                     pg_is_wal_replay_paused()",
                )
                .await?;
            r.receive_lsn = get(endpoint, REPLAY, &row, 0)?;
            r.replay_lsn = get(endpoint, REPLAY, &row, 1)?;
            r.replay_delay_seconds = get(endpoint, REPLAY, &row, 2)?;
            r.replay_paused = get(endpoint, REPLAY, &row, 3)?;
        } else {
            const CURRENT: &str = "pg_current_wal_lsn";
            let row = session.one(CURRENT, "SELECT pg_current_wal_lsn()::text").await?;
            r.current_wal_lsn = get(endpoint, CURRENT, &row, 0)?;
            const SENDERS: &str = "pg_stat_replication";
            let client = session.client(SENDERS)?;
            let rows = session
                .run(
                    SENDERS,
                    Duration::ZERO,
                    client.query(
                        "SELECT coalesce(application_name, ''), host(client_addr), coalesce(state, ''), \
                         pg_wal_lsn_diff(pg_current_wal_lsn(), replay_lsn)::float8 \
                         FROM pg_stat_replication ORDER BY 1, 2",
                        &[],
                    ),
                )
                .await?;
            for row in &rows {
                r.wal_senders.push(WalSender {
                    application_name: get(endpoint, SENDERS, row, 0)?,
                    client_addr: get(endpoint, SENDERS, row, 1)?,
                    state: get(endpoint, SENDERS, row, 2)?,
                    replay_lag_bytes: get(endpoint, SENDERS, row, 3)?,
                });
            }
        }

        const DATABASES: &str = "pg_database";
        let client = session.client(DATABASES)?;
        let rows = session
            .run(
                DATABASES,
                Duration::ZERO,
                client.query(
                    "SELECT datname::text FROM pg_database WHERE datallowconn AND NOT datistemplate \
                     ORDER BY datname",
                    &[],
                ),
            )
            .await?;
        let names = rows
            .iter()
            .map(|row| get(endpoint, DATABASES, row, 0))
            .collect::<Result<Vec<String>, _>>()?;
        Ok((r, names))
    }

    /// One database's figures on a session connected to it.
    async fn read_database(session: &Session, name: &str) -> Result<DatabaseReadings, PgError> {
        const WHAT: &str = "database statistics";
        let row = session
            .one(
                WHAT,
                "SELECT \
                   (SELECT sum(heap_blks_read)::int8 FROM pg_statio_user_tables), \
                   (SELECT sum(heap_blks_hit)::int8 FROM pg_statio_user_tables), \
                   (SELECT sum(idx_blks_read)::int8 FROM pg_statio_user_indexes), \
                   (SELECT sum(idx_blks_hit)::int8 FROM pg_statio_user_indexes), \
                   (SELECT sum(pg_table_size(relid))::int8 FROM pg_stat_user_tables), \
                   (SELECT sum(pg_indexes_size(relid))::int8 FROM pg_stat_user_tables), \
                   pg_database_size(current_database())",
            )
            .await?;
        let e = &session.endpoint;
        Ok(DatabaseReadings {
            name: name.to_owned(),
            heap_blocks_read: get(e, WHAT, &row, 0)?,
            heap_blocks_hit: get(e, WHAT, &row, 1)?,
            index_blocks_read: get(e, WHAT, &row, 2)?,
            index_blocks_hit: get(e, WHAT, &row, 3)?,
            table_bytes: get(e, WHAT, &row, 4)?,
            index_bytes: get(e, WHAT, &row, 5)?,
            database_bytes: get(e, WHAT, &row, 6)?,
        })
    }

    async fn readings_of(&self, endpoint: &Endpoint) -> Result<Readings, PgError> {
        // A budget too large for an Instant is no budget.
        let spent_at = self
            .budget
            .and_then(|b| tokio::time::Instant::now().checked_add(b));
        let first = &self.settings.database;
        let session = self.connect(endpoint, first, "ninelives-metrics", true).await?;
        let node = self.read_node(&session).await;
        let (mut readings, mut names) = match node {
            Ok(found) => found,
            Err(e) => {
                session.close().await;
                return Err(e);
            }
        };
        if names.len() > MAX_DATABASES {
            let rest = names.split_off(MAX_DATABASES);
            readings.skipped.push(format!(
                "{} more databases not read (at most {MAX_DATABASES} per node): {}",
                rest.len(),
                rest.join(", ")
            ));
        }
        // The first database is read on the session already open.
        let mut reads = Vec::new();
        if let Some(i) = names.iter().position(|n| n == first) {
            names.remove(i);
            let read = within_budget(spent_at, Self::read_database(&session, first)).await;
            reads.push((first.clone(), read));
        }
        session.close().await;

        let others: Vec<(String, DatabaseRead)> = futures::stream::iter(names)
            .map(|name| async move {
                let read = within_budget(spent_at, async {
                    let session = self.connect(endpoint, &name, "ninelives-metrics", true).await?;
                    let read = Self::read_database(&session, &name).await;
                    session.close().await;
                    read
                })
                .await;
                (name, read)
            })
            .buffer_unordered(DATABASE_CONCURRENCY)
            .collect()
            .await;
        reads.extend(others);

        let mut databases = Vec::new();
        let mut out_of_time = Vec::new();
        for (name, read) in reads {
            match read {
                DatabaseRead::Read(d) => databases.push(d),
                DatabaseRead::Failed(e) => {
                    tracing::warn!(node = %endpoint, database = %name, error = %e, "database not read");
                    readings.skipped.push(format!("database {name}: {e}"));
                }
                DatabaseRead::OutOfTime => out_of_time.push(name),
            }
        }
        if !out_of_time.is_empty() {
            out_of_time.sort();
            tracing::warn!(
                node = %endpoint,
                databases = ?out_of_time,
                "databases not read: the node's time budget was spent"
            );
            readings.skipped.extend(
                out_of_time
                    .iter()
                    .map(|name| format!("database {name} not read: the node's time budget was spent")),
            );
        }
        databases.sort_by(|a, b| a.name.cmp(&b.name));
        readings.databases = databases;
        Ok(readings)
    }

    /// Opens a session on `endpoint` and starts a non-exclusive backup
    /// labelled `label` in it, with an immediate checkpoint (`fast`): the
    /// default spread checkpoint would keep the function waiting for up to
    /// `checkpoint_timeout * checkpoint_completion_target` (minutes) for a
    /// backup whose data is copied by EBS in an instant; the price is a
    /// burst of writes on the node. The session must stay open until
    /// [`BackupSession::stop`]: PostgreSQL aborts the backup when it ends.
    pub async fn backup_start(&self, endpoint: &Endpoint, label: &str) -> Result<BackupSession, PgError> {
        let session = self
            .connect(endpoint, &self.settings.database, "ninelives-backup", false)
            .await?;
        match Self::start_in(&session, label).await {
            Ok((version_num, backend_pid, start_lsn)) => Ok(BackupSession {
                session,
                version_num,
                backend_pid,
                start_lsn,
            }),
            Err(e) => {
                session.close().await;
                Err(e)
            }
        }
    }

    async fn start_in(session: &Session, label: &str) -> Result<(i32, i32, String), PgError> {
        const VERSION: &str = "server version";
        let row = session
            .one(
                VERSION,
                "SELECT current_setting('server_version_num')::int4, pg_backend_pid()",
            )
            .await?;
        let endpoint = &session.endpoint;
        let version_num: i32 = get(endpoint, VERSION, &row, 0)?;
        let backend_pid: i32 = get(endpoint, VERSION, &row, 1)?;
        if version_num < MIN_VERSION {
            return Err(PgError::Unsupported {
                endpoint: endpoint.clone(),
                version_num,
            });
        }
        const UNLIMITED: &str = "session timeouts";
        let client = session.client(UNLIMITED)?;
        session
            .run(
                UNLIMITED,
                Duration::ZERO,
                client.batch_execute(&no_timeouts(version_num)),
            )
            .await?;
        const START: &str = "pg_backup_start";
        let sql = if version_num >= BACKUP_FUNCTIONS_RENAMED {
            "SELECT pg_backup_start($1, true)::text"
        } else {
            // exclusive = false: the non-exclusive mode (9.6+).
            "SELECT pg_start_backup($1, true, false)::text"
        };
        let client = session.client(START)?;
        let row = session
            .run(START, BACKUP_START_EXTRA, client.query_one(sql, &[&label]))
            .await?;
        let start_lsn: String = get(endpoint, START, &row, 0)?;
        Ok((version_num, backend_pid, start_lsn))
    }
}

/// Runs one database's read unless the budget is spent before it starts,
/// and gives it up when the budget runs out while it runs (its session is
/// dropped, which cuts the connection).
async fn within_budget(
    spent_at: Option<tokio::time::Instant>,
    read: impl Future<Output = Result<DatabaseReadings, PgError>>,
) -> DatabaseRead {
    let finished = match spent_at {
        None => read.await,
        Some(at) if tokio::time::Instant::now() >= at => return DatabaseRead::OutOfTime,
        Some(at) => match tokio::time::timeout_at(at, read).await {
            Ok(finished) => finished,
            Err(_) => return DatabaseRead::OutOfTime,
        },
    };
    match finished {
        Ok(d) => DatabaseRead::Read(d),
        Err(e) => DatabaseRead::Failed(e),
    }
}

/// Commands that lift every server-side limit from a backup session.
///
/// A backup session must live, idle, from `pg_backup_start` until
/// `pg_backup_stop` returns: the server aborts the backup when it ends.
/// Timeouts set for the server, the role or the database (`ALTER ROLE ...
/// SET`) would still apply to it: a `statement_timeout` of 30 s cancels a
/// `pg_backup_stop` waiting for the WAL archive (57014) on every run, an
/// `idle_session_timeout` (14+) ends the session while the snapshot call
/// waits out EC2's rate limit, a `transaction_timeout` (17+) does both.
/// Our own bounds ([`Session::run`], the invocation's deadline) still limit
/// every wait. `SET` here, not in the startup options: a parameter the
/// server does not know is fatal there, so the version-dependent ones are
/// sent only to versions that have them.
fn no_timeouts(version_num: i32) -> String {
    let mut sql = String::from(
        "SET statement_timeout = 0; SET lock_timeout = 0; SET idle_in_transaction_session_timeout = 0;",
    );
    if version_num >= 140_000 {
        sql.push_str(" SET idle_session_timeout = 0;");
    }
    if version_num >= 170_000 {
        sql.push_str(" SET transaction_timeout = 0;");
    }
    sql
}

/// A session holding a non-exclusive backup open.
pub struct BackupSession {
    session: Session,
    version_num: i32,
    backend_pid: i32,
    start_lsn: String,
}

impl fmt::Debug for BackupSession {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BackupSession")
            .field("endpoint", &self.session.endpoint)
            .field("version_num", &self.version_num)
            .field("backend_pid", &self.backend_pid)
            .field("start_lsn", &self.start_lsn)
            .finish()
    }
}

/// What `pg_backup_stop` returns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackupStop {
    /// The backup's end position.
    pub lsn: String,
    /// The `backup_label` file to put in the data directory on restore.
    pub labelfile: String,
    /// The `tablespace_map` file (empty without tablespaces).
    pub spcmapfile: String,
}

impl BackupSession {
    pub fn endpoint(&self) -> &Endpoint {
        &self.session.endpoint
    }

    /// The server process of this session, as the server's log names it.
    pub fn backend_pid(&self) -> i32 {
        self.backend_pid
    }

    /// `pg_backup_start`'s answer: where the backup's WAL begins.
    pub fn start_lsn(&self) -> &str {
        &self.start_lsn
    }

    /// Ends the backup on the session that started it, and closes it.
    ///
    /// `wait_for_archive` is true: with WAL archiving on, the backup is
    /// complete only when the WAL up to its end is archived (the snapshot
    /// plus `backup_label` needs it to reach consistency), and this waits
    /// for that, up to [`BACKUP_STOP_EXTRA`]. With `archive_mode` off it
    /// returns at once (the server notes that the WAL must be kept by
    /// other means).
    pub async fn stop(self) -> Result<BackupStop, PgError> {
        const STOP: &str = "pg_backup_stop";
        let sql = if self.version_num >= BACKUP_FUNCTIONS_RENAMED {
            "SELECT lsn::text, labelfile, spcmapfile FROM pg_backup_stop(true)"
        } else {
            "SELECT lsn::text, labelfile, spcmapfile FROM pg_stop_backup(false, true)"
        };
        let stopped = async {
            let client = self.session.client(STOP)?;
            let row = self
                .session
                .run(STOP, BACKUP_STOP_EXTRA, client.query_one(sql, &[]))
                .await?;
            let endpoint = &self.session.endpoint;
            Ok(BackupStop {
                lsn: get(endpoint, STOP, &row, 0)?,
                labelfile: get::<Option<String>>(endpoint, STOP, &row, 1)?.unwrap_or_default(),
                spcmapfile: get::<Option<String>>(endpoint, STOP, &row, 2)?.unwrap_or_default(),
            })
        }
        .await;
        self.session.close().await;
        stopped
    }
}

impl PgProbe for PgNodes {
    async fn readings(&self, node: &Endpoint) -> Result<Readings, PgError> {
        self.readings_of(node).await
    }
}

#[cfg(test)]
#[path = "tests/pg_node.rs"]
mod tests;
