//! The MongoDB adapter: [`MongoApi`] on the official `mongodb` driver,
//! always connected to one member directly (`directConnection=true`), never
//! through replica-set discovery: the logic must hear what each member says
//! about itself, and must send a reconfig or a step-down to the very member
//! it decided on, not to whichever the driver thinks is primary.
//!
//! One client per member is kept for the life of the process (a warm
//! Lambda reuses its connections). Every call is bounded:
//! [`MongoSettings::connect_timeout`] covers connecting and server
//! selection (a dead member fails in that time instead of the driver's
//! 30 s default) and [`MongoSettings::command_timeout`] the command itself;
//! a step-down may take its catch-up period on top.
//!
//! `hello` is asked without logging in (it needs no privilege, and an
//! arbiter holds no users, so it refuses every login); the `replSet*`
//! commands and `serverStatus` (for publish-metrics, [`MongoStats`]) log in
//! with the configured user, who needs the `clusterMonitor` role for the
//! latter.
//!
//! Errors are classified for the logic (see [`MemberError`]): unreachable
//! or timed out is `Down`, refused credentials `Auth`, an error reply
//! `Command` with the server's code, an unreadable answer `Malformed`.
//!
//! The password reaches the driver's SCRAM exchange and nowhere else: the
//! options are built from parts (no `mongodb://` URL carrying it), and
//! [`MongoSettings`]' `Debug` masks it.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use mongodb::Client;
use mongodb::bson::{Bson, Document, doc};
use mongodb::error::ErrorKind;
use mongodb::options::{ClientOptions, Credential, ServerAddress, Tls, TlsOptions};

use crate::chain::model::Endpoint;
use crate::error::BoxError;
use crate::metrics::mongo::MongoStats;
use crate::mongo::ports::{Hello, MemberError, MongoApi};
use crate::mongo::replset::{MemberHealth, ReplSetConfig};

/// How to reach and authenticate to replica-set members.
#[derive(Clone, PartialEq, Eq)]
pub struct MongoSettings {
    /// Bound on connecting (and the driver's server selection).
    pub connect_timeout: Duration,
    /// Bound on each command's reply.
    pub command_timeout: Duration,
    /// SCRAM user; `None` connects without authentication.
    pub username: Option<String>,
    /// Never logged or printed.
    pub password: Option<String>,
    /// The database the user is defined in (`admin` by default).
    pub auth_source: String,
    /// TLS to every member, verified against the system's web PKI roots
    /// and `tls_ca_file` when set.
    pub tls: bool,
    pub tls_ca_file: Option<String>,
}

impl fmt::Debug for MongoSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MongoSettings")
            .field("connect_timeout", &self.connect_timeout)
            .field("command_timeout", &self.command_timeout)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "***"))
            .field("auth_source", &self.auth_source)
            .field("tls", &self.tls)
            .field("tls_ca_file", &self.tls_ca_file)
            .finish()
    }
}

/// [`MongoApi`] on real members.
#[derive(Clone)]
pub struct MongoNodes {
    settings: MongoSettings,
    /// By member and whether the client logs in.
    clients: Arc<Mutex<HashMap<(Endpoint, bool), Client>>>,
}

impl fmt::Debug for MongoNodes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MongoNodes")
            .field("settings", &self.settings)
            .finish()
    }
}

const HELLO: &str = "hello";
const COMMAND_NOT_FOUND: i32 = 59;
const STATUS: &str = "replSetGetStatus";
const GET_CONFIG: &str = "replSetGetConfig";
const RECONFIG: &str = "replSetReconfig";
const STEP_DOWN: &str = "replSetStepDown";
const SERVER_STATUS: &str = "serverStatus";

impl MongoNodes {
    pub fn new(settings: MongoSettings) -> Self {
        MongoNodes {
            settings,
            clients: Arc::new(Mutex::new(HashMap::new())),
        }
    }

    /// A client of `member`; `login` with the configured credentials.
    /// `hello` needs none, and an arbiter holds no users at all (it refuses
    /// any login), so it is asked without.
    fn client(&self, member: &Endpoint, login: bool) -> Result<Client, MemberError> {
        // A poisoned lock only means another task panicked while holding
        // it; the map itself is still a valid cache.
        let mut clients = self.clients.lock().unwrap_or_else(|p| p.into_inner());
        let key = (member.clone(), login);
        if let Some(c) = clients.get(&key) {
            return Ok(c.clone());
        }
        let s = &self.settings;
        let credential = s.username.as_ref().filter(|_| login).map(|user| {
            Credential::builder()
                .username(user.clone())
                .password(s.password.clone())
                .source(s.auth_source.clone())
                .build()
        });
        let tls = s.tls.then(|| {
            Tls::Enabled(
                TlsOptions::builder()
                    .ca_file_path(s.tls_ca_file.as_ref().map(Into::into))
                    .build(),
            )
        });
        let options = ClientOptions::builder()
            .hosts(vec![ServerAddress::Tcp {
                host: member.host.clone(),
                port: Some(member.port),
            }])
            .direct_connection(true)
            .connect_timeout(s.connect_timeout)
            .server_selection_timeout(s.connect_timeout)
            .app_name("ninelives".to_owned())
            .max_pool_size(2)
            .credential(credential)
            .tls(tls)
            .build();
        let client = Client::with_options(options).map_err(|e| MemberError::Malformed {
            endpoint: member.clone(),
            command: "connect",
            detail: format!("invalid client options: {e}"),
        })?;
        clients.insert(key, client.clone());
        Ok(client)
    }

    /// Runs one admin command on one member, bounded by `extra` on top of
    /// the connect and command timeouts.
    async fn run(
        &self,
        member: &Endpoint,
        command: &'static str,
        body: Document,
        extra: Duration,
    ) -> Result<Document, MemberError> {
        let client = self.client(member, command != HELLO)?;
        let bound = self.settings.connect_timeout + self.settings.command_timeout + extra;
        let admin = client.database("admin");
        let call = admin.run_command(body);
        match tokio::time::timeout(bound, call).await {
            Ok(Ok(reply)) => Ok(reply),
            Ok(Err(e)) => Err(classify(member, command, e)),
            Err(_) => Err(MemberError::Down {
                endpoint: member.clone(),
                source: format!("no answer to {command} within {} ms", bound.as_millis()).into(),
            }),
        }
    }
}

fn classify(member: &Endpoint, command: &'static str, e: mongodb::error::Error) -> MemberError {
    let endpoint = member.clone();
    match e.kind.as_ref() {
        ErrorKind::Command(c) if c.code == 18 || c.code == 13 => MemberError::Auth {
            endpoint,
            source: Box::new(e),
        },
        ErrorKind::Command(c) => MemberError::Command {
            endpoint,
            command,
            code: c.code,
            code_name: c.code_name.clone(),
            message: c.message.clone(),
        },
        ErrorKind::Authentication { .. } => MemberError::Auth {
            endpoint,
            source: Box::new(e),
        },
        ErrorKind::InvalidResponse { .. }
        | ErrorKind::BsonDeserialization(_)
        | ErrorKind::InvalidArgument { .. }
        | ErrorKind::InvalidTlsConfig { .. } => MemberError::Malformed {
            endpoint,
            command,
            detail: e.to_string(),
        },
        // Io, ServerSelection, ConnectionPoolCleared and the rest: the
        // member did not answer.
        _ => MemberError::Down {
            endpoint,
            source: Box::new(e) as BoxError,
        },
    }
}

impl MongoApi for MongoNodes {
    async fn hello(&self, member: &Endpoint) -> Result<Hello, MemberError> {
        let reply = match self.run(member, HELLO, doc! { "hello": 1 }, Duration::ZERO).await {
            // `hello` came in 4.4.2; 4.4.0 and 4.4.1 know only `isMaster`.
            Err(e) if e.code() == Some(COMMAND_NOT_FOUND) => {
                self.run(member, HELLO, doc! { "isMaster": 1 }, Duration::ZERO)
                    .await?
            }
            other => other?,
        };
        Ok(read_hello(&reply))
    }

    async fn status(&self, member: &Endpoint) -> Result<Vec<MemberHealth>, MemberError> {
        let reply = self
            .run(member, STATUS, doc! { "replSetGetStatus": 1 }, Duration::ZERO)
            .await?;
        read_status(&reply).map_err(|detail| MemberError::Malformed {
            endpoint: member.clone(),
            command: STATUS,
            detail,
        })
    }

    async fn config(&self, member: &Endpoint) -> Result<ReplSetConfig, MemberError> {
        let reply = self
            .run(member, GET_CONFIG, doc! { "replSetGetConfig": 1 }, Duration::ZERO)
            .await?;
        let malformed = |detail: String| MemberError::Malformed {
            endpoint: member.clone(),
            command: GET_CONFIG,
            detail,
        };
        let config = reply
            .get_document("config")
            .map_err(|_| malformed("no config document".to_owned()))?;
        ReplSetConfig::from_document(config).map_err(malformed)
    }

    async fn reconfig(&self, primary: &Endpoint, config: &ReplSetConfig) -> Result<(), MemberError> {
        let body = doc! { "replSetReconfig": config.to_document() };
        self.run(primary, RECONFIG, body, Duration::ZERO).await.map(drop)
    }

    async fn step_down(
        &self,
        primary: &Endpoint,
        step_down: Duration,
        catch_up: Duration,
    ) -> Result<(), MemberError> {
        let body = doc! {
            "replSetStepDown": secs(step_down),
            "secondaryCatchUpPeriodSecs": secs(catch_up),
        };
        self.run(primary, STEP_DOWN, body, catch_up).await.map(drop)
    }
}

impl MongoStats for MongoNodes {
    async fn server_status(&self, member: &Endpoint) -> Result<Document, MemberError> {
        // Every section the figures come from (globalLock, mem, connections,
        // opcounters, metrics, repl, wiredTiger) is on by default. Most of
        // a reply is wiredTiger and metrics, and both are needed: before
        // 6.0 a section can only be left out whole, and in mongod's source
        // `mem` is part of the metric tree that `metrics: 0` drops. So only
        // two sections never read are left out; mongod ignores a section
        // name it does not have, so this is safe on every version.
        let body = doc! { "serverStatus": 1, "locks": 0, "tcmalloc": 0 };
        self.run(member, SERVER_STATUS, body, Duration::ZERO).await
    }
}

fn secs(d: Duration) -> i64 {
    i64::try_from(d.as_secs()).unwrap_or(i64::MAX)
}

/// `hello` as the logic reads it; absent fields are false or `None` (an
/// uninitialised member answers with almost nothing).
pub fn read_hello(reply: &Document) -> Hello {
    let flag = |key: &str| reply.get_bool(key).unwrap_or(false);
    let text = |key: &str| reply.get_str(key).ok().map(str::to_owned);
    Hello {
        set_name: text("setName"),
        writable_primary: flag("isWritablePrimary") || flag("ismaster"),
        secondary: flag("secondary"),
        arbiter_only: flag("arbiterOnly"),
        primary: text("primary"),
        me: text("me"),
        set_version: reply.get("setVersion").and_then(integer),
        election_id: reply.get_object_id("electionId").ok().map(|o| o.to_hex()),
    }
}

/// `replSetGetStatus`'s members. A member's `optimeDate` is kept only
/// when it means something: mongod reports 1970-01-01 for a member it
/// cannot hear from, and a member that is not healthy has no current
/// optime whatever the date says.
pub fn read_status(reply: &Document) -> Result<Vec<MemberHealth>, String> {
    let members = reply
        .get_array("members")
        .map_err(|_| "no members array".to_owned())?;
    members
        .iter()
        .enumerate()
        .map(|(i, m)| {
            let m = m
                .as_document()
                .ok_or_else(|| format!("members[{i}] is not a document"))?;
            let host = m
                .get_str("name")
                .map_err(|_| format!("members[{i}].name is missing"))?;
            let number = |key: &str| m.get(key).and_then(integer);
            let health = m
                .get("health")
                .and_then(|h| match h {
                    Bson::Double(d) => Some(*d),
                    other => integer(other).map(|i| i as f64),
                })
                .unwrap_or(0.0);
            let optime = m
                .get_datetime("optimeDate")
                .ok()
                .map(|d| d.timestamp_millis())
                .filter(|&ms| ms > 0 && health == 1.0)
                .and_then(chrono::DateTime::from_timestamp_millis);
            Ok(MemberHealth {
                host: host.to_owned(),
                health,
                state: number("state")
                    .and_then(|s| i32::try_from(s).ok())
                    .ok_or_else(|| format!("members[{i}].state is missing"))?,
                optime,
            })
        })
        .collect()
}

fn integer(b: &Bson) -> Option<i64> {
    match b {
        Bson::Int32(i) => Some(i64::from(*i)),
        Bson::Int64(i) => Some(*i),
        Bson::Double(d) if d.fract() == 0.0 => Some(*d as i64),
        _ => None,
    }
}

#[cfg(test)]
#[path = "tests/mongo_node.rs"]
mod tests;
