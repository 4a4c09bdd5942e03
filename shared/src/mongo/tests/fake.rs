//! An in-memory replica set behind [`MongoApi`] and [`MemberInventory`],
//! for the unit tests of the logic that talks to members: it answers like
//! the members would (hello, status, config), applies reconfigs and
//! step-downs the way a primary does, and records every call.

use std::collections::{BTreeSet, HashMap};
use std::sync::Mutex;
use std::time::Duration;

use mongodb::bson::doc;

use crate::backup::model::Tags;
use crate::chain::model::{Endpoint, InvalidNode, node_from};
use crate::error::Error;
use crate::mongo::ports::{Hello, Member, MemberError, MemberInventory, MongoApi};
use crate::mongo::replset::{DEFAULT_PORT, Kind, MemberHealth, ReplSetConfig, same_host};

pub const SET: &str = "kate.example.com";

#[derive(Default)]
pub struct State {
    pub config: Option<ReplSetConfig>,
    pub primary: Option<String>,
    pub down: BTreeSet<String>,
    /// Command name → errors to return next (code, name).
    pub failures: HashMap<&'static str, Vec<MemberError>>,
    pub calls: Vec<(String, &'static str)>,
    pub election: u32,
    /// A config another run installs just before our reconfig arrives
    /// (ours then fails: its version is no longer newer).
    pub race: Option<ReplSetConfig>,
    /// The next step-down is made, but its answer is lost (before 4.2 a
    /// step-down closed every connection).
    pub lose_step_down_answer: bool,
}

#[derive(Default)]
pub struct FakeSet {
    pub state: Mutex<State>,
    pub members: Vec<Member>,
    pub invalid: Vec<InvalidNode>,
}

pub fn member(id: &str, host: &str, kind: Kind) -> Member {
    let tags: Tags = [
        (crate::tags::CLUSTER.to_owned(), SET.to_owned()),
        (crate::tags::ENDPOINT.to_owned(), host.to_owned()),
    ]
    .into_iter()
    .collect();
    Member {
        node: node_from(id, &tags, None, None, None, DEFAULT_PORT).expect("a valid member"),
        kind,
    }
}

/// A config with `hosts` as members (`a` in front = arbiter).
pub fn config(hosts: &[&str]) -> ReplSetConfig {
    let members: Vec<_> = hosts
        .iter()
        .enumerate()
        .map(|(i, h)| {
            let arbiter = h.starts_with('a');
            doc! { "_id": i as i32, "host": *h, "arbiterOnly": arbiter, "votes": 1, "priority": if arbiter { 0.0 } else { 1.0 } }
        })
        .collect();
    ReplSetConfig::from_document(&doc! { "_id": SET, "version": 1, "term": 1_i64, "members": members })
        .expect("a valid config")
}

impl FakeSet {
    /// Members `d1:27017`, `d2:27017` (data) and `a1:27017` (arbiter), all
    /// in the config, `d1` primary.
    pub fn three() -> Self {
        let set = FakeSet {
            members: vec![
                member("i-00000000000000001", "d1:27017", Kind::Data),
                member("i-00000000000000002", "d2:27017", Kind::Data),
                member("i-00000000000000003", "a1:27017", Kind::Arbiter),
            ],
            ..FakeSet::default()
        };
        {
            let mut s = set.lock();
            s.config = Some(config(&["d1:27017", "d2:27017", "a1:27017"]));
            s.primary = Some("d1:27017".to_owned());
            s.election = 1;
        }
        set
    }

    pub fn with_member(mut self, id: &str, host: &str, kind: Kind) -> Self {
        self.members.push(member(id, host, kind));
        self
    }

    pub fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().expect("no test panics while holding the lock")
    }

    pub fn fail(&self, command: &'static str, err: MemberError) {
        self.lock().failures.entry(command).or_default().push(err);
    }

    pub fn calls(&self, command: &str) -> usize {
        self.lock().calls.iter().filter(|(_, c)| *c == command).count()
    }

    pub fn config_now(&self) -> ReplSetConfig {
        self.lock().config.clone().expect("a config")
    }

    fn enter(
        &self,
        member: &Endpoint,
        command: &'static str,
    ) -> Result<std::sync::MutexGuard<'_, State>, MemberError> {
        let mut s = self.lock();
        s.calls.push((member.to_string(), command));
        if let Some(errs) = s.failures.get_mut(command)
            && !errs.is_empty()
        {
            return Err(errs.remove(0));
        }
        if s.down.contains(&member.to_string()) {
            return Err(MemberError::Down {
                endpoint: member.clone(),
                source: "connection refused".into(),
            });
        }
        Ok(s)
    }
}

pub fn command_error(member: &Endpoint, command: &'static str, code: i32, name: &str) -> MemberError {
    MemberError::Command {
        endpoint: member.clone(),
        command,
        code,
        code_name: name.to_owned(),
        message: format!("{name} from the fake"),
    }
}

fn in_config(s: &State, host: &str) -> bool {
    s.config.as_ref().is_some_and(|c| c.member(host).is_some())
}

impl MongoApi for FakeSet {
    async fn hello(&self, member: &Endpoint) -> Result<Hello, MemberError> {
        let s = self.enter(member, "hello")?;
        let host = member.to_string();
        if !in_config(&s, &host) {
            return Ok(Hello::default());
        }
        let config = s.config.as_ref().expect("checked above");
        let is_primary = s.primary.as_deref() == Some(host.as_str());
        let arbiter = config.member(&host).is_some_and(|m| m.arbiter_only);
        Ok(Hello {
            set_name: Some(config.id.clone()),
            writable_primary: is_primary,
            secondary: !is_primary && !arbiter,
            arbiter_only: arbiter,
            primary: s.primary.clone(),
            me: Some(host),
            set_version: Some(config.version),
            election_id: is_primary.then(|| format!("7fffffff{:016x}", s.election)),
        })
    }

    async fn status(&self, member: &Endpoint) -> Result<Vec<MemberHealth>, MemberError> {
        let s = self.enter(member, "replSetGetStatus")?;
        let config = s.config.as_ref().expect("a config");
        Ok(config
            .members
            .iter()
            .map(|m| {
                let down = s.down.contains(&m.host);
                MemberHealth {
                    host: m.host.clone(),
                    health: if down { 0.0 } else { 1.0 },
                    state: if down {
                        8
                    } else if s.primary.as_deref() == Some(m.host.as_str()) {
                        1
                    } else if m.arbiter_only {
                        7
                    } else {
                        2
                    },
                    optime: None,
                }
            })
            .collect())
    }

    async fn config(&self, member: &Endpoint) -> Result<ReplSetConfig, MemberError> {
        let s = self.enter(member, "replSetGetConfig")?;
        Ok(s.config.clone().expect("a config"))
    }

    async fn reconfig(&self, primary: &Endpoint, config: &ReplSetConfig) -> Result<(), MemberError> {
        let mut s = self.enter(primary, "replSetReconfig")?;
        if let Some(theirs) = s.race.take() {
            s.config = Some(theirs);
        }
        if s.primary.as_deref() != Some(primary.to_string().as_str()) {
            return Err(command_error(
                primary,
                "replSetReconfig",
                10107,
                "NotWritablePrimary",
            ));
        }
        let current = s.config.as_ref().expect("a config").version;
        if config.version <= current {
            return Err(command_error(
                primary,
                "replSetReconfig",
                103,
                "NewReplicaSetConfigurationIncompatible",
            ));
        }
        s.config = Some(config.clone());
        Ok(())
    }

    async fn step_down(
        &self,
        primary: &Endpoint,
        _step_down: Duration,
        _catch_up: Duration,
    ) -> Result<(), MemberError> {
        let mut s = self.enter(primary, "replSetStepDown")?;
        let me = primary.to_string();
        if s.primary.as_deref() != Some(me.as_str()) {
            return Err(command_error(
                primary,
                "replSetStepDown",
                10107,
                "NotWritablePrimary",
            ));
        }
        let next = s
            .config
            .as_ref()
            .expect("a config")
            .members
            .iter()
            .find(|m| {
                !m.arbiter_only && m.priority > 0.0 && !same_host(&m.host, &me) && !s.down.contains(&m.host)
            })
            .map(|m| m.host.clone());
        match next {
            Some(next) => {
                s.primary = Some(next);
                s.election += 1;
                if std::mem::take(&mut s.lose_step_down_answer) {
                    return Err(MemberError::Down {
                        endpoint: primary.clone(),
                        source: "connection reset by peer".into(),
                    });
                }
                Ok(())
            }
            None => Err(command_error(
                primary,
                "replSetStepDown",
                262,
                "ExceededTimeLimit",
            )),
        }
    }
}

impl MemberInventory for FakeSet {
    async fn mongo_members(&self, cluster: Option<&str>) -> Result<Vec<Result<Member, InvalidNode>>, Error> {
        Ok(self
            .members
            .iter()
            .filter(|m| cluster.is_none_or(|c| m.node.cluster == c))
            .cloned()
            .map(Ok)
            .chain(self.invalid.iter().cloned().map(Err))
            .collect())
    }
}
