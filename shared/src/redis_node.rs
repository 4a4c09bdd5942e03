//! The Redis adapter: [`RedisApi`] on the `redis` crate's async (tokio)
//! client. Each call opens a connection of its own to the one node it
//! concerns and closes it when done: the chain logic talks to a handful of
//! nodes a few times per invocation, and a fresh connection can never carry
//! a stale AUTH, database or half-read reply from an earlier call.
//!
//! Every call is bounded: [`RedisSettings::connect_timeout`] covers the TCP
//! connect and the AUTH handshake (a stopped or overloaded server accepts
//! TCP connections in its kernel backlog but never answers AUTH), and
//! [`RedisSettings::command_timeout`] the command's reply, so a call takes
//! at most their sum.
//!
//! Failures are classified for the chain logic (see [`NodeError`]): a node
//! that cannot be reached, times out, is loading its dataset or is busy is
//! `Down`; a refused password is `Auth`; any other error reply is `Command`;
//! unreadable `INFO replication` is `Malformed`. The underlying
//! [`redis::RedisError`] is kept as the source.
//!
//! `FAILOVER TO host port` (Redis 6.2+) names the replica as its master
//! lists it (`INFO replication`'s `slaveN:ip=...`): the address the replica
//! connects from (or its `replica-announce-ip`), not a DNS name that
//! resolves to it. Redis answers `+OK` at once and swaps roles in the
//! background; it refuses a zero `TIMEOUT`, a target that is not a
//! connected replica, and a second FAILOVER while one is under way (all
//! `Command` errors).
//!
//! The password goes to the server in the AUTH command and nowhere else:
//! the connection is built from its parts (never from a `redis://` URL
//! that would carry it) and [`RedisSettings`]' `Debug` masks it.

use std::fmt;
use std::time::Duration;

use redis::aio::MultiplexedConnection;
use redis::{
    AsyncConnectionConfig, Client, Cmd, ConnectionAddr, ErrorKind, IntoConnectionInfo, RedisConnectionInfo,
    RedisError, ServerErrorKind, Value,
};

use crate::chain::info;
use crate::chain::model::{Endpoint, Replication};
use crate::chain::ports::{NodeError, RedisApi};
use crate::metrics::redis::RedisInfo;

/// How to reach and authenticate to the chain's Redis nodes.
#[derive(Clone, PartialEq, Eq)]
pub struct RedisSettings {
    /// Bound on the TCP connect plus the AUTH handshake.
    pub connect_timeout: Duration,
    /// Bound on each command's reply.
    pub command_timeout: Duration,
    /// ACL user (Redis 6+); `None` authenticates as `default` (or with
    /// `requirepass`) when a password is given.
    pub username: Option<String>,
    /// Sent with AUTH when set; never logged or printed.
    pub password: Option<String>,
}

impl fmt::Debug for RedisSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisSettings")
            .field("connect_timeout", &self.connect_timeout)
            .field("command_timeout", &self.command_timeout)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "***"))
            .finish()
    }
}

/// [`RedisApi`] on real Redis servers.
#[derive(Debug, Clone)]
pub struct RedisNodes {
    settings: RedisSettings,
}

/// The command names errors and logs use.
const INFO: &str = "INFO replication";
const INFO_ALL: &str = "INFO";
const REPLICAOF: &str = "REPLICAOF";
const FAILOVER: &str = "FAILOVER";
const PING: &str = "PING";

impl RedisNodes {
    pub fn new(settings: RedisSettings) -> Self {
        RedisNodes { settings }
    }

    pub fn settings(&self) -> &RedisSettings {
        &self.settings
    }

    /// `PING`: whether `node` answers (and accepts our credentials).
    pub async fn ping(&self, node: &Endpoint) -> Result<(), NodeError> {
        self.run(node, PING, redis::cmd("PING")).await.map(drop)
    }

    /// A client for `node`, built from its parts so the password never
    /// appears in a URL.
    fn client(&self, node: &Endpoint, command: &'static str) -> Result<Client, NodeError> {
        let mut auth = RedisConnectionInfo::default()
            // Redis before 7.2 answers `CLIENT SETINFO` with an error; with
            // one connection per call the library name is not worth a
            // command in every handshake.
            .set_skip_set_lib_name();
        if let Some(username) = &self.settings.username {
            auth = auth.set_username(username);
        }
        if let Some(password) = &self.settings.password {
            auth = auth.set_password(password);
        }
        let info = ConnectionAddr::Tcp(node.host.clone(), node.port)
            .into_connection_info()
            .map_err(|e| classify(node, command, e))?
            .set_redis_settings(auth);
        Client::open(info).map_err(|e| classify(node, command, e))
    }

    async fn connect(
        &self,
        node: &Endpoint,
        command: &'static str,
    ) -> Result<MultiplexedConnection, NodeError> {
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(self.settings.connect_timeout))
            .set_response_timeout(Some(self.settings.command_timeout));
        self.client(node, command)?
            .get_multiplexed_async_connection_with_config(&config)
            .await
            .map_err(|e| classify(node, command, e))
    }

    /// Runs `cmd` on a connection of its own; `command` names it in errors
    /// and logs.
    async fn run(&self, node: &Endpoint, command: &'static str, cmd: Cmd) -> Result<Value, NodeError> {
        let result = match self.connect(node, command).await {
            Ok(mut connection) => cmd
                .query_async::<Value>(&mut connection)
                .await
                .map_err(|e| classify(node, command, e)),
            Err(err) => Err(err),
        };
        if let Err(err) = &result {
            tracing::debug!(endpoint = %node, command, error = %err, "redis command failed");
        }
        result
    }
}

impl RedisApi for RedisNodes {
    async fn replication(&self, node: &Endpoint) -> Result<Replication, NodeError> {
        let mut cmd = redis::cmd("INFO");
        cmd.arg("replication");
        let value = self.run(node, INFO, cmd).await?;
        read_replication(node, &text_of(node, value)?)
    }

    async fn replicate(&self, node: &Endpoint, master: Option<&Endpoint>) -> Result<(), NodeError> {
        let mut cmd = redis::cmd("REPLICAOF");
        match master {
            Some(master) => cmd.arg(&master.host).arg(master.port),
            None => cmd.arg("NO").arg("ONE"),
        };
        self.run(node, REPLICAOF, cmd).await?;
        match master {
            Some(master) => tracing::info!(endpoint = %node, master = %master, "REPLICAOF"),
            None => tracing::info!(endpoint = %node, "REPLICAOF NO ONE"),
        }
        Ok(())
    }

    async fn failover_to(
        &self,
        head: &Endpoint,
        replica: &Endpoint,
        timeout: Duration,
    ) -> Result<(), NodeError> {
        let millis = u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX);
        let mut cmd = redis::cmd("FAILOVER");
        cmd.arg("TO")
            .arg(&replica.host)
            .arg(replica.port)
            .arg("TIMEOUT")
            .arg(millis);
        self.run(head, FAILOVER, cmd).await?;
        tracing::info!(endpoint = %head, replica = %replica, timeout_ms = millis, "FAILOVER TO");
        Ok(())
    }

    async fn abort_failover(&self, head: &Endpoint) -> Result<(), NodeError> {
        let mut cmd = redis::cmd("FAILOVER");
        cmd.arg("ABORT");
        self.run(head, FAILOVER, cmd).await?;
        tracing::info!(endpoint = %head, "FAILOVER ABORT");
        Ok(())
    }
}

impl RedisInfo for RedisNodes {
    async fn info(&self, node: &Endpoint) -> Result<String, NodeError> {
        let value = self.run(node, INFO_ALL, redis::cmd("INFO")).await?;
        text_of(node, value)
    }
}

/// The text of an `INFO` reply.
fn text_of(node: &Endpoint, value: Value) -> Result<String, NodeError> {
    match value {
        Value::BulkString(bytes) => String::from_utf8(bytes).map_err(|e| NodeError::Malformed {
            endpoint: node.clone(),
            detail: format!("the reply is not UTF-8: {e}"),
        }),
        // RESP3 sends INFO as a verbatim string.
        Value::VerbatimString { text, .. } => Ok(text),
        Value::SimpleString(text) => Ok(text),
        other => Err(NodeError::Malformed {
            endpoint: node.clone(),
            detail: format!("the reply is {other:?}, not text"),
        }),
    }
}

/// The text of `INFO replication` from `node`, parsed.
fn read_replication(node: &Endpoint, text: &str) -> Result<Replication, NodeError> {
    info::parse(text).map_err(|detail| NodeError::Malformed {
        endpoint: node.clone(),
        detail,
    })
}

/// What a failure of `command` on `node` means to the chain logic.
fn classify(node: &Endpoint, command: &'static str, error: RedisError) -> NodeError {
    let class = match error.kind() {
        // Refused, reset, closed, timed out (the library reports its own
        // timeouts as `io::ErrorKind::TimedOut`), or a name that does not
        // resolve.
        ErrorKind::Io => Class::Down,
        // AUTH refused during the handshake: WRONGPASS, or a password sent
        // to a server that has none.
        ErrorKind::AuthenticationFailed => Class::Auth,
        // `LOADING` (reading its dataset at start), `MASTERDOWN` (a replica
        // with `replica-serve-stale-data no` and no link): not serving.
        ErrorKind::Server(ServerErrorKind::BusyLoading | ServerErrorKind::MasterDown) => Class::Down,
        _ => match error.code() {
            // The server wants a password we did not send, or refused one.
            Some("NOAUTH" | "WRONGPASS") => Class::Auth,
            // A script or function running past its time limit: the server
            // answers nothing else until it ends.
            Some("BUSY") => Class::Down,
            // Any other error reply (`ERR ...`, `NOPERM` for an ACL user
            // not allowed the command, ...), and replies the library could
            // not read: the node's state is unknown, not "down".
            _ => Class::Command,
        },
    };
    let endpoint = node.clone();
    let source = Box::new(error);
    match class {
        Class::Down => NodeError::Down { endpoint, source },
        Class::Auth => NodeError::Auth { endpoint, source },
        Class::Command => NodeError::Command {
            endpoint,
            command,
            source,
        },
    }
}

enum Class {
    Down,
    Auth,
    Command,
}

#[cfg(test)]
#[path = "tests/redis_node.rs"]
mod tests;
