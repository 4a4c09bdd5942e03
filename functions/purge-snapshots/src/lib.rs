//! purge-snapshots (SPEC item 2): on a schedule, delete the managed
//! snapshots whose `ninelives:expires-at` has passed, except the newest
//! completed one of each (cluster, name) and those an AMI uses.
//!
//! Deletions are paced (`PURGE_DELETES_PER_SECOND`, default 4, below EC2's
//! refill of 5 per second) and stop before the invocation's deadline; what is
//! left is reported and the next scheduled run continues, so a backlog of
//! 10,000 snapshots drains over a few runs without starving other tools.

use aws_config::SdkConfig;
use chrono::Utc;
use lambda_runtime::LambdaEvent;
use serde_json::Value;
use shared::backup::ports::BackupApi;
use shared::backup::purge::{PurgeRun, purge};
use shared::config::{self, Common, Env};
use shared::ec2::Ec2;
use shared::envelope::{Delivery, Payload};
use shared::function::{Function, finish};
use shared::invocation::{Invocation, dispatch};
use shared::notify::{Notifier, SnsNotifier};
use shared::{ConfigError, Error, EventError};

pub const NAME: &str = "purge-snapshots";

#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub common: Common,
    /// `PURGE_DELETES_PER_SECOND`: 0 to 1000, 0 meaning unpaced (local use).
    pub deletes_per_second: f64,
    /// `PURGE_CONCURRENCY`: deletions in flight, 1 to 64.
    pub concurrency: usize,
}

impl Config {
    pub fn from_env(env: &impl Env) -> Result<Self, ConfigError> {
        Ok(Config {
            common: Common::from_env(env)?,
            deletes_per_second: deletes_per_second(env)?,
            concurrency: config::number(env, "PURGE_CONCURRENCY", 4, 1, 64)?,
        })
    }
}

/// `PURGE_DELETES_PER_SECOND`: 0 (unpaced) or 0.01 to 1000.
fn deletes_per_second(env: &impl Env) -> Result<f64, ConfigError> {
    let rate = config::number(env, "PURGE_DELETES_PER_SECOND", 4.0, 0.0, 1000.0)?;
    if rate > 0.0 && rate < 0.01 {
        return Err(ConfigError::Invalid {
            name: "PURGE_DELETES_PER_SECOND",
            value: rate.to_string(),
            reason: "must be 0 (unpaced) or from 0.01 to 1000".into(),
        });
    }
    Ok(rate)
}

/// Whether the event asks for a dry run. Any EventBridge event (the
/// schedule) is a plain run unless its detail says `"dry_run": true`.
pub fn parse_dry_run(payload: &Payload) -> Result<bool, EventError> {
    shared::envelope::dry_run_input(payload, "purge-snapshots input")
}

pub struct PurgeSnapshots<A = Ec2, N = SnsNotifier> {
    config: Config,
    api: A,
    notifier: N,
}

impl<A: BackupApi, N: Notifier> PurgeSnapshots<A, N> {
    pub fn with(config: Config, api: A, notifier: N) -> Self {
        PurgeSnapshots {
            config,
            api,
            notifier,
        }
    }

    pub async fn handle_event(&self, event: LambdaEvent<Value>) -> Result<Value, Error> {
        let invocation = Invocation::from_context(&event.context);
        dispatch(NAME, event.payload, &invocation.deadline, |delivery| {
            self.run(delivery, &invocation)
        })
        .await
    }

    async fn run(&self, delivery: Delivery, invocation: &Invocation) -> Result<Value, Error> {
        let run = PurgeRun {
            now: Utc::now(),
            dry_run: self.config.common.dry_run || parse_dry_run(&delivery.payload)?,
            deletes_per_second: self.config.deletes_per_second,
            concurrency: self.config.concurrency,
        };
        tracing::info!(function = NAME, route = %delivery.route(), dry_run = run.dry_run, deletes_per_second = run.deletes_per_second, "purge starting");
        let summary = purge(&self.api, &run, &invocation.deadline).await?;
        finish(&self.notifier, NAME, summary).await
    }
}

impl Function for PurgeSnapshots {
    const NAME: &'static str = NAME;
    type Config = Config;

    fn config(env: &impl Env) -> Result<Config, ConfigError> {
        Config::from_env(env)
    }

    fn new(config: Config, sdk: &SdkConfig) -> Self {
        let notifier = SnsNotifier::from_conf(sdk, config.common.notify_topic_arn.clone());
        PurgeSnapshots::with(config, Ec2::from_conf(sdk), notifier)
    }

    async fn handle(&self, event: LambdaEvent<Value>) -> Result<Value, Error> {
        self.handle_event(event).await
    }
}
