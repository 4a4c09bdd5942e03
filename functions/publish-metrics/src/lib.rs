//! publish-metrics (SPEC item 7): on a schedule (every minute), read every
//! node tagged `ninelives:role` = `redis`, `mongodb`, `mongodb-arbiter` or
//! `postgres` from outside, at once, each within `NODE_TIMEOUT_MS`, and
//! publish their health to CloudWatch (`NineLives/Redis`,
//! `NineLives/MongoDB`, `NineLives/Postgres`) in as few `PutMetricData`
//! calls as the limits allow. The work is `shared::metrics::collect`; this
//! crate reads the settings and the event and makes the summary.
//!
//! A node that does not answer, refuses our credentials or sends figures
//! that cannot be read is published as `NodeUp` 0 and listed in the
//! summary with the reason; everything else is still published. The run
//! fails (retryably) only when the inventory cannot be read or a
//! `PutMetricData` call fails.

use std::collections::BTreeMap;
use std::time::Duration;

use aws_config::SdkConfig;
use chrono::{SubsecRound, Utc};
use lambda_runtime::LambdaEvent;
use serde::Serialize;
use serde_json::{Value, json};
use shared::chain::config::redis_settings;
use shared::chain::model::{InvalidNode, Node};
use shared::cloudwatch::CloudWatch;
use shared::config::{Common, Env, number};
use shared::ec2::Ec2;
use shared::envelope::{Delivery, Payload, dry_run_input};
use shared::function::{Function, Summary, finish};
use shared::invocation::{Invocation, dispatch};
use shared::metrics::collect::{Down, MetricInventory, Probes, Role, Settings, Skip, collect, publish};
use shared::metrics::mongo::MongoStats;
use shared::metrics::postgres::PgProbe;
use shared::metrics::redis::RedisInfo;
use shared::metrics::{MetricsSink, Rejected};
use shared::mongo::config::mongo_settings;
use shared::mongo::ports::MongoApi;
use shared::mongo_node::{MongoNodes, MongoSettings};
use shared::notify::{Notifier, SnsNotifier};
use shared::pg_node::{PgNodes, PgSettings};
use shared::redis_node::{RedisNodes, RedisSettings};
use shared::{ConfigError, Error};

pub const NAME: &str = "publish-metrics";

#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub common: Common,
    /// `REDIS_*`: as redis-failover reads them.
    pub redis: RedisSettings,
    /// `MONGODB_*`: as mongo-endpoint reads them.
    pub mongo: MongoSettings,
    /// `PGUSER`, `PGPASSWORD`, `PGDATABASE`, `PG_*_TIMEOUT_MS`.
    pub postgres: PgSettings,
    /// `NODE_TIMEOUT_MS` (default 10,000): bound on reading one node. The
    /// function's own timeout must leave room for the slowest round of
    /// nodes plus the calls to CloudWatch.
    pub node_timeout: Duration,
    /// `MAX_CONCURRENT_NODES` (default 32): nodes read at once.
    pub concurrency: usize,
}

impl Config {
    pub fn from_env(env: &impl Env) -> Result<Self, ConfigError> {
        Ok(Config {
            common: Common::from_env(env)?,
            redis: redis_settings(env)?,
            mongo: mongo_settings(env)?,
            postgres: PgSettings::from_env(env)?,
            node_timeout: Duration::from_millis(number(env, "NODE_TIMEOUT_MS", 10_000, 100, 300_000)?),
            concurrency: number(env, "MAX_CONCURRENT_NODES", 32, 1, 1024)?,
        })
    }

    /// The PostgreSQL reader: a node's databases get 70% of its time, so a
    /// node with many of them keeps its own figures (and `NodeUp` 1) when
    /// not all are read in time.
    pub fn postgres_nodes(&self) -> PgNodes {
        PgNodes::new(self.postgres.clone()).with_budget(self.node_timeout * 7 / 10)
    }
}

/// What one run did.
#[derive(Debug, Serialize)]
pub struct RunSummary {
    pub function: &'static str,
    pub dry_run: bool,
    /// The time every datum of this run carries.
    pub timestamp: String,
    /// Nodes read (or tried), by role.
    pub nodes: BTreeMap<&'static str, usize>,
    /// Nodes published as `NodeUp` 0, with why.
    pub down: Vec<Down>,
    /// Figures left out, with why.
    pub skipped: Vec<Skip>,
    /// Instances tagged with a role whose tags make no usable node.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub invalid_nodes: Vec<InvalidNode>,
    /// Datums sent (or, in a dry run, that would be), by namespace.
    pub datums: BTreeMap<&'static str, usize>,
    /// `PutMetricData` calls made (or that would be).
    pub calls: usize,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub rejected: Vec<Rejected>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub failures: Vec<String>,
    #[serde(skip)]
    errors: Vec<Error>,
}

impl Summary for RunSummary {
    fn headline(&self) -> String {
        let nodes: usize = self.nodes.values().sum();
        let datums: usize = self.datums.values().sum();
        let verb = if self.dry_run {
            "would publish"
        } else {
            "published"
        };
        format!(
            "{NAME}: {} of {nodes} nodes up; {verb} {datums} datums in {} calls{}",
            nodes - self.down.len(),
            self.calls,
            if self.skipped.is_empty() {
                String::new()
            } else {
                format!("; {} figures skipped", self.skipped.len())
            }
        )
    }

    /// Metrics are published every minute; the alarms, not a notification
    /// per run, tell people about a down node.
    fn changed(&self) -> bool {
        false
    }

    fn take_outcome_error(&mut self) -> Option<Error> {
        let attempted = self.calls;
        Error::combine("PutMetricData calls", attempted, std::mem::take(&mut self.errors))
    }
}

pub struct PublishMetrics<
    I = Ec2,
    S = CloudWatch,
    R = RedisNodes,
    M = MongoNodes,
    P = PgNodes,
    N = SnsNotifier,
> {
    config: Config,
    inventory: I,
    sink: S,
    redis: R,
    mongo: M,
    postgres: P,
    notifier: N,
}

impl<I, S, R, M, P, N> PublishMetrics<I, S, R, M, P, N>
where
    I: MetricInventory,
    S: MetricsSink,
    R: RedisInfo,
    M: MongoApi + MongoStats,
    P: PgProbe,
    N: Notifier,
{
    pub fn with(config: Config, inventory: I, sink: S, redis: R, mongo: M, postgres: P, notifier: N) -> Self {
        PublishMetrics {
            config,
            inventory,
            sink,
            redis,
            mongo,
            postgres,
            notifier,
        }
    }

    /// Where the metrics go (tests count the calls on it).
    pub fn sink(&self) -> &S {
        &self.sink
    }

    pub async fn handle_event(&self, event: LambdaEvent<Value>) -> Result<Value, Error> {
        let invocation = Invocation::from_context(&event.context);
        dispatch(NAME, event.payload, &invocation.deadline, |delivery| {
            self.run(delivery)
        })
        .await
    }

    async fn run(&self, delivery: Delivery) -> Result<Value, Error> {
        if let Payload::NoOp { reason } = &delivery.payload {
            tracing::info!(function = NAME, route = %delivery.route(), reason = %reason, "ignored event");
            return Ok(json!({ "function": NAME, "ignored": reason }));
        }
        let dry_run =
            self.config.common.dry_run || dry_run_input(&delivery.payload, "publish-metrics input")?;
        // Whole seconds: CloudWatch keeps no finer time for standard
        // resolution, and every datum of the run carries the same one.
        let at = Utc::now().trunc_subsecs(0);
        let mut invalid_nodes = Vec::new();
        let mut nodes: Vec<(Node, Role)> = Vec::new();
        for (node, role) in self.inventory.metric_nodes().await? {
            match node {
                Ok(node) => nodes.push((node, role)),
                Err(bad) => {
                    tracing::warn!(instance_id = %bad.instance_id, reason = %bad.reason, "tagged instance is not a usable node");
                    invalid_nodes.push(bad);
                }
            }
        }
        tracing::info!(function = NAME, route = %delivery.route(), nodes = nodes.len(), dry_run, "collecting");
        let probes = Probes {
            redis: &self.redis,
            mongo: &self.mongo,
            postgres: &self.postgres,
        };
        let settings = Settings {
            node_timeout: self.config.node_timeout,
            concurrency: self.config.concurrency,
        };
        let collected = collect(&probes, &nodes, settings, at).await;
        let published = publish(&self.sink, collected.data, dry_run).await;
        let mut by_role = BTreeMap::new();
        for (_, role) in &nodes {
            *by_role.entry(role.tag()).or_default() += 1;
        }
        let summary = RunSummary {
            function: NAME,
            dry_run,
            timestamp: at.to_rfc3339(),
            nodes: by_role,
            down: collected.down,
            skipped: collected.skipped,
            invalid_nodes,
            datums: published.by_namespace,
            calls: published.calls,
            rejected: published.rejected,
            failures: published.failures.iter().map(ToString::to_string).collect(),
            errors: published.failures,
        };
        finish(&self.notifier, NAME, summary).await
    }
}

impl Function for PublishMetrics {
    const NAME: &'static str = NAME;
    type Config = Config;

    fn config(env: &impl Env) -> Result<Config, ConfigError> {
        Config::from_env(env)
    }

    fn new(config: Config, sdk: &SdkConfig) -> Self {
        let notifier = SnsNotifier::from_conf(sdk, config.common.notify_topic_arn.clone());
        let redis = RedisNodes::new(config.redis.clone());
        let mongo = MongoNodes::new(config.mongo.clone());
        let postgres = config.postgres_nodes();
        PublishMetrics::with(
            config,
            Ec2::from_conf(sdk),
            CloudWatch::from_conf(sdk),
            redis,
            mongo,
            postgres,
            notifier,
        )
    }

    async fn handle(&self, event: LambdaEvent<Value>) -> Result<Value, Error> {
        self.handle_event(event).await
    }
}

#[cfg(test)]
#[path = "tests/config.rs"]
mod tests;
