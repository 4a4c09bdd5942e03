//! redis-failover (SPEC item 4): keeps every Redis chain with exactly one
//! head. Triggered by a CloudWatch alarm naming a cluster (the alarm's
//! Lambda action, EventBridge, SNS, SQS) or by a schedule that checks every
//! tagged cluster. The handler reads the trigger, lists the nodes from EC2
//! tags and hands each cluster to `shared::chain::reconcile`: a dead head's
//! replica is promoted and the records follow, a dead middle node is
//! bypassed, a returning old head is fenced, any other inconsistency is
//! repaired to one chain.

use aws_config::SdkConfig;
use chrono::Utc;
use futures::future::join_all;
use lambda_runtime::LambdaEvent;
use serde::Serialize;
use serde_json::{Value, json};
use shared::alarm::{self, Cause, Trigger};
use shared::chain::config::{policy, redis_settings};
use shared::chain::model::{InvalidNode, Node};
use shared::chain::plan::{Intent, Policy};
use shared::chain::ports::{Inventory, RedisApi};
use shared::chain::reconcile::{ClusterReport, Settings, reconcile};
use shared::config::{Common, Env, hosted_zone, number};
use shared::dns::Dns;
use shared::ec2::Ec2;
use shared::envelope::Delivery;
use shared::fleet::{Fleet, Names};
use shared::function::{Function, Summary, finish};
use shared::invocation::{Invocation, dispatch};
use shared::notify::{Notifier, SnsNotifier};
use shared::redis_node::{RedisNodes, RedisSettings};
use shared::route53::Route53;
use shared::{ConfigError, Error};

pub const NAME: &str = "redis-failover";

/// Added to what an alarm says about when the head went down: the alarm
/// fires a datapoint or so after the head stopped answering.
const ALARM_GRACE_SECONDS: u64 = 60;

#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub common: Common,
    /// `HOSTED_ZONE_ID`: the zone of the cluster and tail records.
    pub hosted_zone_id: String,
    /// `RECORD_TTL`: seconds. Clients see a moved head after at most this.
    pub record_ttl: i64,
    pub redis: RedisSettings,
    pub policy: Policy,
}

impl Config {
    pub fn from_env(env: &impl Env) -> Result<Self, ConfigError> {
        let hosted_zone_id = hosted_zone(env)?.ok_or(ConfigError::Missing {
            name: "HOSTED_ZONE_ID",
        })?;
        Ok(Config {
            common: Common::from_env(env)?,
            hosted_zone_id,
            record_ttl: number(env, "RECORD_TTL", 60, 0, 86_400)?,
            redis: redis_settings(env)?,
            policy: policy(env)?,
        })
    }
}

pub struct RedisFailover<R = RedisNodes, D = Route53, I = Ec2, N = SnsNotifier> {
    config: Config,
    redis: R,
    dns: D,
    inventory: I,
    notifier: N,
}

/// What one run did.
#[derive(Debug, Serialize)]
pub struct RunSummary {
    pub function: &'static str,
    pub cause: Cause,
    pub dry_run: bool,
    pub clusters: Vec<ClusterReport>,
    /// Instances tagged as Redis nodes whose tags make no usable node.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub invalid_nodes: Vec<InvalidNode>,
}

impl Summary for RunSummary {
    fn headline(&self) -> String {
        let parts: Vec<String> = self
            .clusters
            .iter()
            .map(|c| match &c.promoted {
                Some(id) => format!("{} {} ({id})", c.cluster, c.status),
                None => format!("{} {}", c.cluster, c.status),
            })
            .collect();
        if parts.is_empty() {
            format!("{NAME}: no Redis cluster to check")
        } else {
            format!("{NAME}: {}", parts.join(", "))
        }
    }

    fn changed(&self) -> bool {
        self.clusters.iter().any(|c| c.changed() || c.failure.is_some())
    }

    fn take_outcome_error(&mut self) -> Option<Error> {
        let attempted = self.clusters.len();
        let failures = self
            .clusters
            .iter_mut()
            .filter_map(|c| c.failure.take())
            .collect();
        Error::combine("clusters", attempted, failures)
    }
}

impl<R: RedisApi, D: Dns, I: Inventory, N: Notifier> RedisFailover<R, D, I, N> {
    pub fn with(config: Config, redis: R, dns: D, inventory: I, notifier: N) -> Self {
        RedisFailover {
            config,
            redis,
            dns,
            inventory,
            notifier,
        }
    }

    pub async fn handle_event(&self, event: LambdaEvent<Value>) -> Result<Value, Error> {
        let invocation = Invocation::from_context(&event.context);
        dispatch(NAME, event.payload, &invocation.deadline, |delivery| {
            self.run(delivery)
        })
        .await
    }

    async fn run(&self, delivery: Delivery) -> Result<Value, Error> {
        let trigger = alarm::parse(&delivery.payload)?;
        let (wanted, cause) = match trigger {
            Trigger::Ignore(reason) => {
                tracing::info!(function = NAME, route = %delivery.route(), reason = %reason, "ignored event");
                return Ok(json!({ "function": NAME, "ignored": reason }));
            }
            Trigger::Clusters { clusters, cause } => (Some(clusters), cause),
            Trigger::All { cause } => (None, cause),
        };
        tracing::info!(function = NAME, route = %delivery.route(), cause = %cause.kind, alarm = ?cause.alarm_name, clusters = ?wanted, "chain check");
        let fleet = Fleet::group(
            self.inventory.redis_nodes(None).await?,
            |n: &Node| n.cluster.as_str(),
            Names {
                node: "redis node",
                cluster: "cluster",
                instances: "Redis instances",
                roles: "redis",
            },
        );
        let settings = Settings::new(
            self.policy_for(&cause),
            self.config.record_ttl,
            self.config.common.dry_run,
        );
        let intent = Intent::default();
        let clusters = join_all(fleet.wanted(wanted).into_iter().map(|name| {
            let (fleet, settings, intent) = (&fleet, &settings, &intent);
            async move {
                match fleet.groups.get(&name) {
                    Some(nodes) => reconcile(&self.redis, &self.dns, &name, nodes, intent, settings).await,
                    None => ClusterReport::empty(&name).fail(fleet.unknown(&name)),
                }
            }
        }))
        .await;
        let summary = RunSummary {
            function: NAME,
            cause,
            dry_run: settings.dry_run,
            clusters,
            invalid_nodes: fleet.invalid,
        };
        finish(&self.notifier, NAME, summary).await
    }

    /// The promotion policy for this run: when an alarm says when it fired
    /// and over how long a window, a head cannot have been down for longer
    /// than since then (plus a datapoint's grace); a replica whose link went
    /// down before that lost the head earlier and would lose writes.
    fn policy_for(&self, cause: &Cause) -> Policy {
        let (Some(at), Some(window)) = (cause.state_change_time, cause.alarm_window_seconds) else {
            return self.config.policy;
        };
        let since = u64::try_from((Utc::now() - at).num_seconds()).unwrap_or(0);
        Policy {
            max_link_down_seconds: since.saturating_add(window).saturating_add(ALARM_GRACE_SECONDS),
        }
    }
}

impl Function for RedisFailover {
    const NAME: &'static str = NAME;
    type Config = Config;

    fn config(env: &impl Env) -> Result<Config, ConfigError> {
        Config::from_env(env)
    }

    fn new(config: Config, sdk: &SdkConfig) -> Self {
        let notifier = SnsNotifier::from_conf(sdk, config.common.notify_topic_arn.clone());
        let dns = Route53::from_conf(sdk, config.hosted_zone_id.clone());
        let redis = RedisNodes::new(config.redis.clone());
        RedisFailover::with(config, redis, dns, Ec2::from_conf(sdk), notifier)
    }

    async fn handle(&self, event: LambdaEvent<Value>) -> Result<Value, Error> {
        self.handle_event(event).await
    }
}

#[cfg(test)]
#[path = "tests/config.rs"]
mod tests;
