//! Replica-set membership tasks: the messages the lifecycle hook puts on
//! the task queue (an SQS FIFO queue) and replset-tasks applies. This
//! replaces the book's queue of `mongo --eval` strings, which ran whatever
//! it read and deleted it whether it worked or not.
//!
//! Schema version 1, one JSON object per message:
//!
//! ```json
//! {"schema": 1, "type": "add", "set": "kate.example.com",
//!  "host": "10.0.1.17:27017", "instance_id": "i-0123456789abcdef0",
//!  "transition": "launch", "requested_at": "2026-11-25T10:00:00Z"}
//! ```
//!
//! - `type`: `add` (a data member), `add-arbiter`, `remove`,
//!   `step-down-if-primary`.
//! - `set`: the `ninelives:cluster` tag (the set's record name); the SQS
//!   message group, so one set's tasks are applied in order.
//! - `host`: the member as it is (or will be) in the set's config:
//!   `ninelives:endpoint`, else the private DNS name, on port 27017 by
//!   default.
//! - `aliases` (optional): the member's other names (`host:port` of its
//!   private DNS name and address), for a set whose config names members
//!   otherwise than the tags do: a remove or a step-down finds the member
//!   under any of them, and an add of a member already there under one is a
//!   no-op.
//! - `instance_id`, `transition` (`launch`, `terminate`): where the task
//!   came from; with `type` they make the SQS deduplication id, so the
//!   same lifecycle event delivered twice enqueues nothing new.
//!
//! Readers ignore fields they do not know; a change in the meaning of a
//! field is a new schema version, and a task of a version this code does
//! not know is refused (kept on the queue), never guessed at.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, SecondsFormat, SubsecRound, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::replset::{Kind, normalize_host};

pub const SCHEMA_VERSION: u64 = 1;

/// SQS's limit on message group and deduplication ids.
const SQS_ID_MAX: usize = 128;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TaskType {
    Add,
    AddArbiter,
    Remove,
    StepDownIfPrimary,
}

impl TaskType {
    pub const ALL: [TaskType; 4] = [
        TaskType::Add,
        TaskType::AddArbiter,
        TaskType::Remove,
        TaskType::StepDownIfPrimary,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            TaskType::Add => "add",
            TaskType::AddArbiter => "add-arbiter",
            TaskType::Remove => "remove",
            TaskType::StepDownIfPrimary => "step-down-if-primary",
        }
    }
}

impl fmt::Display for TaskType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for TaskType {
    type Err = ();
    fn from_str(s: &str) -> Result<Self, ()> {
        TaskType::ALL.into_iter().find(|t| t.as_str() == s).ok_or(())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Transition {
    Launch,
    Terminate,
}

impl Transition {
    pub fn as_str(self) -> &'static str {
        match self {
            Transition::Launch => "launch",
            Transition::Terminate => "terminate",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Task {
    pub schema: u64,
    #[serde(rename = "type")]
    pub kind: TaskType,
    pub set: String,
    pub host: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub aliases: Vec<String>,
    pub instance_id: String,
    pub transition: Transition,
    pub requested_at: DateTime<Utc>,
}

/// Why a message is not a task this code can apply.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TaskError {
    #[error("the task is not a JSON object: {0}")]
    NotJson(String),
    #[error("the task has no \"schema\" version (this code reads schema {SCHEMA_VERSION})")]
    NoSchema,
    #[error("the task has schema version {found}; this code reads schema {SCHEMA_VERSION} only")]
    UnknownSchema { found: String },
    #[error("the task has type {found}; known types: add, add-arbiter, remove, step-down-if-primary")]
    UnknownType { found: String },
    #[error("the task's {field}: {reason}")]
    Invalid { field: &'static str, reason: String },
}

impl Task {
    /// The tasks a member's launch asks for.
    pub fn for_launch(set: &str, host: &str, instance_id: &str, kind: Kind, now: DateTime<Utc>) -> Vec<Task> {
        let task = match kind {
            Kind::Data => TaskType::Add,
            Kind::Arbiter => TaskType::AddArbiter,
        };
        vec![Task::new(task, set, host, instance_id, Transition::Launch, now)]
    }

    /// The tasks a member's termination asks for, in order: a primary hands
    /// over first (an arbiter never is one), then the member is removed.
    pub fn for_terminate(
        set: &str,
        host: &str,
        instance_id: &str,
        kind: Kind,
        now: DateTime<Utc>,
    ) -> Vec<Task> {
        let mut tasks = Vec::with_capacity(2);
        if kind == Kind::Data {
            tasks.push(Task::new(
                TaskType::StepDownIfPrimary,
                set,
                host,
                instance_id,
                Transition::Terminate,
                now,
            ));
        }
        tasks.push(Task::new(
            TaskType::Remove,
            set,
            host,
            instance_id,
            Transition::Terminate,
            now,
        ));
        tasks
    }

    fn new(
        kind: TaskType,
        set: &str,
        host: &str,
        instance_id: &str,
        transition: Transition,
        now: DateTime<Utc>,
    ) -> Task {
        Task {
            schema: SCHEMA_VERSION,
            kind,
            set: set.to_owned(),
            host: host.to_owned(),
            aliases: Vec::new(),
            instance_id: instance_id.to_owned(),
            transition,
            // Whole seconds, as the JSON carries it.
            requested_at: now.trunc_subsecs(0),
        }
    }

    /// The same task, knowing the member's other names too.
    pub fn with_aliases(mut self, aliases: Vec<String>) -> Task {
        self.aliases = aliases;
        self
    }

    /// Every name of the member: its host first, then its aliases.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        std::iter::once(self.host.as_str()).chain(self.aliases.iter().map(String::as_str))
    }

    /// Reads a message body. Every error names what is wrong.
    pub fn parse(body: &str) -> Result<Task, TaskError> {
        let value: Value = serde_json::from_str(body).map_err(|e| TaskError::NotJson(e.to_string()))?;
        let Value::Object(object) = &value else {
            return Err(TaskError::NotJson(format!("found {}", kind_of(&value))));
        };
        match object.get("schema") {
            None | Some(Value::Null) => return Err(TaskError::NoSchema),
            Some(v) if v.as_u64() == Some(SCHEMA_VERSION) => {}
            Some(v) => return Err(TaskError::UnknownSchema { found: v.to_string() }),
        }
        match object.get("type") {
            Some(Value::String(t)) if t.parse::<TaskType>().is_ok() => {}
            Some(v) => return Err(TaskError::UnknownType { found: v.to_string() }),
            None => {
                return Err(TaskError::Invalid {
                    field: "type",
                    reason: "missing".into(),
                });
            }
        }
        let text = |field: &'static str| match object.get(field) {
            Some(Value::String(s)) => Ok(s.clone()),
            Some(v) => Err(TaskError::Invalid {
                field,
                reason: format!("expected a string, found {}", kind_of(v)),
            }),
            None => Err(TaskError::Invalid {
                field,
                reason: "missing".into(),
            }),
        };
        let kind = text("type")?
            .parse::<TaskType>()
            .map_err(|()| TaskError::Invalid {
                field: "type",
                reason: "unknown".into(),
            })?;
        let transition = match text("transition")?.as_str() {
            "launch" => Transition::Launch,
            "terminate" => Transition::Terminate,
            other => {
                return Err(TaskError::Invalid {
                    field: "transition",
                    reason: format!("{other:?} is neither \"launch\" nor \"terminate\""),
                });
            }
        };
        let requested_at = DateTime::parse_from_rfc3339(&text("requested_at")?)
            .map_err(|e| TaskError::Invalid {
                field: "requested_at",
                reason: format!("not an RFC 3339 time: {e}"),
            })?
            .with_timezone(&Utc);
        let task = Task {
            schema: SCHEMA_VERSION,
            kind,
            set: text("set")?,
            host: text("host")?,
            aliases: match object.get("aliases") {
                None | Some(Value::Null) => Vec::new(),
                Some(Value::Array(items)) => items
                    .iter()
                    .map(|v| match v {
                        Value::String(s) => Ok(s.clone()),
                        other => Err(TaskError::Invalid {
                            field: "aliases",
                            reason: format!("expected strings, found {}", kind_of(other)),
                        }),
                    })
                    .collect::<Result<_, _>>()?,
                Some(other) => {
                    return Err(TaskError::Invalid {
                        field: "aliases",
                        reason: format!("expected an array of host:port strings, found {}", kind_of(other)),
                    });
                }
            },
            instance_id: text("instance_id")?,
            transition,
            requested_at,
        };
        task.validate()?;
        Ok(task)
    }

    /// Checks what a parsed task holds; also run before a task is sent, so
    /// that a task the consumer would refuse is never queued.
    pub fn validate(&self) -> Result<(), TaskError> {
        let invalid = |field, reason: String| Err(TaskError::Invalid { field, reason });
        let set = crate::dns::record_name(&self.set)
            .map_err(|reason| TaskError::Invalid { field: "set", reason })?;
        if set != self.set {
            return invalid(
                "set",
                format!(
                    "{:?} is not a normalised record name (expected {set:?})",
                    self.set
                ),
            );
        }
        if self.set.len() > SQS_ID_MAX {
            return invalid(
                "set",
                format!("longer than {SQS_ID_MAX} characters, SQS's limit for a message group"),
            );
        }
        // A DNS name (253) or a bracketed IPv6 address, and ":65535".
        const MAX_HOST: usize = 253 + 6;
        for (field, host) in
            std::iter::once(("host", &self.host)).chain(self.aliases.iter().map(|a| ("aliases", a)))
        {
            if host.len() > MAX_HOST {
                return invalid(
                    field,
                    format!(
                        "{:?} is {} bytes long; a host:port is at most {MAX_HOST}",
                        crate::error::clip(host, 40),
                        host.len()
                    ),
                );
            }
        }
        match normalize_host(&self.host) {
            Ok(h) if h == self.host => {}
            Ok(h) => {
                return invalid(
                    "host",
                    format!("{:?} is not in host:port form (expected {h:?})", self.host),
                );
            }
            Err(reason) => return invalid("host", reason),
        }
        for alias in &self.aliases {
            match normalize_host(alias) {
                Ok(h) if h == *alias => {}
                Ok(h) => {
                    return invalid(
                        "aliases",
                        format!("{alias:?} is not in host:port form (expected {h:?})"),
                    );
                }
                Err(reason) => return invalid("aliases", reason),
            }
        }
        if !crate::lifecycle::action::is_resource_id(&self.instance_id, "i-") {
            return invalid(
                "instance_id",
                format!("{:?} is not an EC2 instance id", self.instance_id),
            );
        }
        Ok(())
    }

    /// The SQS message group: one set's tasks are delivered in order, one
    /// at a time.
    pub fn group_id(&self) -> &str {
        &self.set
    }

    /// The SQS deduplication id: one per instance, transition and task, so
    /// a lifecycle event delivered twice enqueues each task once.
    pub fn deduplication_id(&self) -> String {
        format!(
            "{}.{}.{}",
            self.instance_id,
            self.transition.as_str(),
            self.kind.as_str()
        )
    }

    pub fn to_json(&self) -> String {
        let mut value = serde_json::json!({
            "schema": self.schema,
            "type": self.kind,
            "set": self.set,
            "host": self.host,
            "instance_id": self.instance_id,
            "transition": self.transition,
            "requested_at": self.requested_at.to_rfc3339_opts(SecondsFormat::Secs, true),
        });
        if !self.aliases.is_empty() {
            value["aliases"] = serde_json::json!(self.aliases);
        }
        value.to_string()
    }
}

fn kind_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
#[path = "tests/task.rs"]
mod tests;
