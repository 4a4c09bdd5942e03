//! replset-tasks (SPEC item 6): applies replica-set membership tasks from
//! the task queue, an SQS FIFO queue whose message group is the set. The
//! book read its queue and deleted every message whether the `mongo --eval`
//! worked or not ("not really failsafe"); here a task that fails is
//! reported in `batchItemFailures`, stays on the queue, is retried and,
//! after the queue's maxReceiveCount, lands in its dead-letter queue. A
//! later task of the same set is never applied before an earlier one that
//! failed (`shared::invocation::dispatch` fails the rest of the group).
//!
//! Each task goes to `shared::mongo::apply`: find the primary, decide the
//! new config with the pure rules, `replSetReconfig` or `replSetStepDown`.
//! A task already applied is a no-op. A single task can also be invoked
//! directly (replay, manual repair): its result, or its error.

use std::time::Duration;

use aws_config::SdkConfig;
use lambda_runtime::LambdaEvent;
use serde_json::{Value, json};
use shared::config::{Common, Env, number};
use shared::ec2::Ec2;
use shared::envelope::{Delivery, Payload};
use shared::error::EventError;
use shared::function::Function;
use shared::invocation::{Deadline, Invocation, dispatch};
use shared::mongo::apply::{TaskSettings, apply};
use shared::mongo::config::mongo_settings;
use shared::mongo::ports::{MemberInventory, MongoApi};
use shared::mongo::task::Task;
use shared::mongo_node::{MongoNodes, MongoSettings};
use shared::notify::{Notifier, SnsNotifier};
use shared::{ConfigError, Error};

pub const NAME: &str = "replset-tasks";

#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub common: Common,
    pub mongo: MongoSettings,
    /// `STEP_DOWN_SECONDS` (default 60) and `CATCH_UP_SECONDS` (default
    /// 10): `replSetStepDown`'s two periods; MongoDB wants the catch-up
    /// shorter than the step-down.
    pub tasks: TaskSettings,
}

impl Config {
    pub fn from_env(env: &impl Env) -> Result<Self, ConfigError> {
        let common = Common::from_env(env)?;
        let step_down: u64 = number(env, "STEP_DOWN_SECONDS", 60, 10, 3600)?;
        let catch_up: u64 = number(env, "CATCH_UP_SECONDS", 10, 1, 600)?;
        if catch_up >= step_down {
            return Err(ConfigError::Invalid {
                name: "CATCH_UP_SECONDS",
                value: catch_up.to_string(),
                reason: format!(
                    "must be shorter than STEP_DOWN_SECONDS ({step_down}), as replSetStepDown requires"
                ),
            });
        }
        Ok(Config {
            tasks: TaskSettings {
                step_down: Duration::from_secs(step_down),
                catch_up: Duration::from_secs(catch_up),
                dry_run: common.dry_run,
            },
            common,
            mongo: mongo_settings(env)?,
        })
    }
}

pub struct ReplsetTasks<M = MongoNodes, I = Ec2, N = SnsNotifier> {
    config: Config,
    mongo: M,
    inventory: I,
    notifier: N,
}

impl<M: MongoApi, I: MemberInventory, N: Notifier> ReplsetTasks<M, I, N> {
    pub fn with(config: Config, mongo: M, inventory: I, notifier: N) -> Self {
        ReplsetTasks {
            config,
            mongo,
            inventory,
            notifier,
        }
    }

    pub async fn handle_event(&self, event: LambdaEvent<Value>) -> Result<Value, Error> {
        let invocation = Invocation::from_context(&event.context);
        dispatch(NAME, event.payload, &invocation.deadline, |delivery| {
            self.run(delivery, &invocation.deadline)
        })
        .await
    }

    /// One task. A task still running at the invocation's hard deadline is
    /// given up (reported as failed, to be delivered again) so that the
    /// batch's answer still reaches Lambda: a timed-out invocation would
    /// count every message of the batch as failed.
    async fn run(&self, delivery: Delivery, deadline: &Deadline) -> Result<Value, Error> {
        let route = delivery.route();
        let body = match delivery.payload {
            Payload::Direct(value) => value,
            Payload::EventBridge(_) => {
                return Err(EventError::Invalid(
                    "an EventBridge event is not a replica-set task; replset-tasks reads tasks from its SQS queue".to_owned(),
                )
                .into());
            }
            Payload::NoOp { reason } => return Ok(json!({ "function": NAME, "ignored": reason })),
        };
        let task = Task::parse(&body.to_string()).map_err(|e| {
            Error::Event(EventError::Invalid(format!(
                "not applied, kept on the queue: {e}"
            )))
        })?;
        tracing::info!(function = NAME, route = %route, task = %task.kind, set = %task.set, host = %task.host, instance_id = %task.instance_id, "task received");
        let report = deadline
            .within(
                "the task",
                apply(&self.mongo, &self.inventory, &task, &self.config.tasks),
            )
            .await?;
        let value = serde_json::to_value(&report).unwrap_or(Value::Null);
        tracing::info!(function = NAME, task = %task.kind, set = %task.set, host = %task.host, result = report.result, "task done");
        if report.changed() {
            let headline = format!(
                "{NAME}: {} {} {} ({})",
                task.set, task.kind, task.host, report.result
            );
            if let Err(e) = self.notifier.publish(&headline, &value.to_string()).await {
                // The task is applied; a lost notification must not make
                // the queue deliver it again.
                tracing::warn!(function = NAME, error = %e, "notification not sent");
            }
        }
        Ok(json!({ "function": NAME, "dry_run": self.config.common.dry_run, "task": value }))
    }
}

impl Function for ReplsetTasks {
    const NAME: &'static str = NAME;
    type Config = Config;

    fn config(env: &impl Env) -> Result<Config, ConfigError> {
        Config::from_env(env)
    }

    fn new(config: Config, sdk: &SdkConfig) -> Self {
        let notifier = SnsNotifier::from_conf(sdk, config.common.notify_topic_arn.clone());
        let mongo = MongoNodes::new(config.mongo.clone());
        ReplsetTasks::with(config, mongo, Ec2::from_conf(sdk), notifier)
    }

    async fn handle(&self, event: LambdaEvent<Value>) -> Result<Value, Error> {
        self.handle_event(event).await
    }
}

#[cfg(test)]
#[path = "tests/config.rs"]
mod tests;
