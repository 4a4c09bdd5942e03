//! The narrow capabilities the replica-set logic needs: talk to one member
//! ([`MongoApi`], implemented on the official `mongodb` crate in
//! `crate::mongo_node`), list a set's members ([`MemberInventory`], EC2 tags
//! in `crate::ec2::nodes`) and queue membership tasks ([`TaskQueue`], SQS
//! FIFO in `crate::sqs`). Route 53 is `crate::dns::Dns`.

use std::future::Future;
use std::time::Duration;

use serde::Serialize;

use super::replset::{Kind, MemberHealth, ReplSetConfig};
use super::task::Task;
use crate::chain::model::{Endpoint, InvalidNode, Node};
use crate::error::{BoxError, Error};

/// A replica-set member as EC2 knows it: the instance, the endpoint its
/// mongod answers on, and whether it holds data or only votes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Member {
    #[serde(flatten)]
    pub node: Node,
    pub kind: Kind,
}

/// What `hello` says about a member and its set.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct Hello {
    /// `setName`; `None` for a mongod that has no replica-set config yet.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub set_name: Option<String>,
    /// `isWritablePrimary` (`ismaster` before 5.0).
    pub writable_primary: bool,
    pub secondary: bool,
    pub arbiter_only: bool,
    /// The primary this member knows of.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub primary: Option<String>,
    /// The host this member has in the set's config.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub me: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub set_version: Option<i64>,
    /// The primary's `electionId` as hex: it grows with each election, so of
    /// two members that both claim to be primary the larger one is current.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub election_id: Option<String>,
}

/// Why a member could not be asked or told something.
#[derive(Debug, thiserror::Error)]
pub enum MemberError {
    /// Connection refused, reset or timed out; no answer in time.
    #[error("{endpoint} is not answering: {source}")]
    Down {
        endpoint: Endpoint,
        #[source]
        source: BoxError,
    },
    /// Authentication failed, or the command needs a user we do not have.
    #[error("{endpoint} refused our credentials: {source}")]
    Auth {
        endpoint: Endpoint,
        #[source]
        source: BoxError,
    },
    /// The server answered the command with an error.
    #[error("{endpoint} refused {command}: {code_name} ({code}): {message}")]
    Command {
        endpoint: Endpoint,
        command: &'static str,
        code: i32,
        code_name: String,
        message: String,
    },
    /// The answer is not what every MongoDB sends.
    #[error("{endpoint} answered {command} with something that cannot be read: {detail}")]
    Malformed {
        endpoint: Endpoint,
        command: &'static str,
        detail: String,
    },
}

/// Server error codes the logic looks at.
pub mod codes {
    /// `NotWritablePrimary` (was `NotMaster`): the member is no longer
    /// primary.
    pub const NOT_WRITABLE_PRIMARY: i32 = 10107;
    /// `NotPrimaryNoSecondaryOk`, `NotPrimaryOrSecondary`: other "not
    /// primary" answers.
    pub const NOT_PRIMARY_NO_SECONDARY_OK: i32 = 13435;
    pub const NOT_PRIMARY_OR_SECONDARY: i32 = 13436;
    /// `PrimarySteppedDown`, `InterruptedDueToReplStateChange`: an election
    /// interrupted the command.
    pub const PRIMARY_STEPPED_DOWN: i32 = 189;
    pub const INTERRUPTED_DUE_TO_REPL_STATE_CHANGE: i32 = 11602;
    /// `ConfigurationInProgress`: another reconfig has not committed yet.
    pub const CONFIGURATION_IN_PROGRESS: i32 = 109;
    /// `NewReplicaSetConfigurationIncompatible`: e.g. our version is not
    /// newer (someone reconfigured since we read), or more than one voting
    /// member changes.
    pub const NEW_CONFIG_INCOMPATIBLE: i32 = 103;
    /// `ExceededTimeLimit`: no electable secondary caught up in time
    /// (`replSetStepDown`).
    pub const EXCEEDED_TIME_LIMIT: i32 = 262;
    /// `CurrentConfigNotCommittedYet`.
    pub const CURRENT_CONFIG_NOT_COMMITTED: i32 = 308;
}

impl MemberError {
    pub fn is_down(&self) -> bool {
        matches!(self, MemberError::Down { .. })
    }

    pub fn code(&self) -> Option<i32> {
        match self {
            MemberError::Command { code, .. } => Some(*code),
            _ => None,
        }
    }

    /// Whether the same call may succeed later: the member was down, lost
    /// its primary role, or was busy with another reconfig or election.
    /// Refused credentials and unreadable answers need a person.
    pub fn is_transient(&self) -> bool {
        match self {
            MemberError::Down { .. } => true,
            MemberError::Auth { .. } | MemberError::Malformed { .. } => false,
            // 5.0+: a reconfig that would change the implicit default write
            // concern (adding or removing an arbiter) is refused until
            // someone runs setDefaultRWConcern; no retry changes that.
            MemberError::Command { code, message, .. }
                if *code == codes::NEW_CONFIG_INCOMPATIBLE && message.contains("setDefaultRWConcern") =>
            {
                false
            }
            MemberError::Command { code, .. } => matches!(
                *code,
                codes::NOT_WRITABLE_PRIMARY
                    | codes::NOT_PRIMARY_NO_SECONDARY_OK
                    | codes::NOT_PRIMARY_OR_SECONDARY
                    | codes::PRIMARY_STEPPED_DOWN
                    | codes::INTERRUPTED_DUE_TO_REPL_STATE_CHANGE
                    | codes::CONFIGURATION_IN_PROGRESS
                    | codes::NEW_CONFIG_INCOMPATIBLE
                    | codes::EXCEEDED_TIME_LIMIT
                    | codes::CURRENT_CONFIG_NOT_COMMITTED
                    // InterruptedAtShutdown, ShutdownInProgress,
                    // HostUnreachable, NetworkTimeout.
                    | 11600
                    | 91
                    | 6
                    | 89
            ),
        }
    }
}

pub trait MongoApi: Sync {
    fn hello(&self, member: &Endpoint) -> impl Future<Output = Result<Hello, MemberError>> + Send;

    /// `replSetGetStatus`: each member's health as this one sees it.
    fn status(
        &self,
        member: &Endpoint,
    ) -> impl Future<Output = Result<Vec<MemberHealth>, MemberError>> + Send;

    /// `replSetGetConfig`.
    fn config(&self, member: &Endpoint) -> impl Future<Output = Result<ReplSetConfig, MemberError>> + Send;

    /// `replSetReconfig` on the primary (never `force`).
    fn reconfig(
        &self,
        primary: &Endpoint,
        config: &ReplSetConfig,
    ) -> impl Future<Output = Result<(), MemberError>> + Send;

    /// `replSetStepDown` on the primary: it stops taking writes, waits up
    /// to `catch_up` for an electable secondary to have everything, then
    /// steps down and is not electable for `step_down`.
    fn step_down(
        &self,
        primary: &Endpoint,
        step_down: Duration,
        catch_up: Duration,
    ) -> impl Future<Output = Result<(), MemberError>> + Send;
}

pub trait MemberInventory: Sync {
    /// Every live (pending or running) instance tagged
    /// `ninelives:role=mongodb` or `mongodb-arbiter`, of one set (a
    /// normalised record name) or of all; instances whose tags make no
    /// usable member come back as [`InvalidNode`] to be reported.
    fn mongo_members(
        &self,
        cluster: Option<&str>,
    ) -> impl Future<Output = Result<Vec<Result<Member, InvalidNode>>, Error>> + Send;
}

/// Whether SQS took the task or had it already.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Enqueued {
    pub message_id: String,
    pub deduplication_id: String,
}

pub trait TaskQueue: Sync {
    /// Sends one task to the set's message group. A task with the same
    /// deduplication id sent within SQS's five-minute window is accepted
    /// and dropped by SQS: a duplicate event enqueues nothing new.
    fn enqueue(&self, task: &Task) -> impl Future<Output = Result<Enqueued, Error>> + Send;
}

impl From<MemberError> for Error {
    fn from(e: MemberError) -> Self {
        Error::Store {
            retryable: e.is_transient(),
            source: Box::new(e),
        }
    }
}

impl<T: TaskQueue> TaskQueue for &T {
    fn enqueue(&self, task: &Task) -> impl Future<Output = Result<Enqueued, Error>> + Send {
        (**self).enqueue(task)
    }
}
