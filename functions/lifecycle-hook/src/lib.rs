//! lifecycle-hook (SPEC item 3): Auto Scaling lifecycle actions, delivered
//! by EventBridge, by the hook's SNS or SQS notification target, or
//! directly. On launch the instance gets its data volume back and joins its
//! cluster; on terminate it leaves; then the action is completed (CONTINUE,
//! or ABANDON with the reason). The handler reads the event and hands the
//! action to `shared::lifecycle::run`.

use std::time::Duration;

use aws_config::SdkConfig;
use lambda_runtime::LambdaEvent;
use serde_json::{Value, json};
use shared::autoscaling::AutoScaling;
use shared::chain::config::{policy, redis_settings};
use shared::chain::plan::Policy;
use shared::chain::reconcile::Settings as ChainSettings;
use shared::config::{Common, Env, hosted_zone, number};
use shared::ec2::Ec2;
use shared::envelope::Delivery;
use shared::function::{Function, finish};
use shared::invocation::{Invocation, dispatch};
use shared::lifecycle::action::{self, Request};
use shared::lifecycle::ports::{LifecycleApi, RestoreApi, Roles};
use shared::lifecycle::roles::{ClusterRoles, MongoTasks, RedisChain, SearchRecords};
use shared::lifecycle::run::{self, Settings};
use shared::notify::{Notifier, SnsNotifier};
use shared::redis_node::{RedisNodes, RedisSettings};
use shared::route53::Route53;
use shared::sqs::{TaskQueueSqs, fifo_queue_url};
use shared::{ConfigError, Error};

pub const NAME: &str = "lifecycle-hook";

/// EBS volume types a restored or new volume can have without further
/// settings (io1/io2 need provisioned IOPS, which a tag does not give).
const VOLUME_TYPES: &[&str] = &["gp3", "gp2", "st1", "sc1", "standard"];

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    pub common: Common,
    /// `HOSTED_ZONE_ID`: needed for the `search` role's records. Optional so
    /// that a deployment that only restores volumes needs no zone; a search
    /// node without it is an error naming the variable.
    pub hosted_zone_id: Option<String>,
    /// `RECORD_TTL`: seconds, for records this function writes.
    pub record_ttl: i64,
    /// `VOLUME_TYPE`: EBS type of the volumes it creates.
    pub volume_type: String,
    /// Time between checks while EC2 creates or attaches a volume.
    pub poll: Duration,
    /// `REDIS_*`: how to reach the nodes of a `redis` role.
    pub redis: RedisSettings,
    pub policy: Policy,
    /// `REDIS_JOIN_WAIT_SECONDS`: how long a launching Redis node may take
    /// to answer before the join is retried (default 60).
    pub join_wait: Duration,
    /// `TASK_QUEUE_URL`: the replica sets' task queue (SQS FIFO); needed
    /// only for `mongodb` and `mongodb-arbiter` nodes.
    pub task_queue_url: Option<String>,
}

impl Config {
    pub fn from_env(env: &impl Env) -> Result<Self, ConfigError> {
        let hosted_zone_id = hosted_zone(env)?;
        let volume_type = env.get("VOLUME_TYPE").unwrap_or_else(|| "gp3".to_owned());
        if !VOLUME_TYPES.contains(&volume_type.as_str()) {
            return Err(ConfigError::Invalid {
                name: "VOLUME_TYPE",
                value: volume_type,
                reason: format!("expected one of {}", VOLUME_TYPES.join(", ")),
            });
        }
        Ok(Config {
            common: Common::from_env(env)?,
            hosted_zone_id,
            record_ttl: number(env, "RECORD_TTL", 60, 0, 86_400)?,
            volume_type,
            poll: Duration::from_secs(2),
            redis: redis_settings(env)?,
            policy: policy(env)?,
            join_wait: Duration::from_secs(number(env, "REDIS_JOIN_WAIT_SECONDS", 60, 0, 900)?),
            task_queue_url: env
                .get("TASK_QUEUE_URL")
                .map(|v| {
                    fifo_queue_url(&v).map_err(|reason| ConfigError::Invalid {
                        name: "TASK_QUEUE_URL",
                        value: v.clone(),
                        reason,
                    })
                })
                .transpose()?,
        })
    }
}

type Roles53 = ClusterRoles<Route53, RedisChain<RedisNodes, Route53, Ec2>, MongoTasks<TaskQueueSqs>>;

pub struct LifecycleHook<E = Ec2, L = AutoScaling, R = Roles53, N = SnsNotifier> {
    config: Config,
    ec2: E,
    lifecycle: L,
    roles: R,
    notifier: N,
}

impl<E: RestoreApi, L: LifecycleApi, R: Roles, N: Notifier> LifecycleHook<E, L, R, N> {
    pub fn with(config: Config, ec2: E, lifecycle: L, roles: R, notifier: N) -> Self {
        LifecycleHook {
            config,
            ec2,
            lifecycle,
            roles,
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
        let action = match action::parse(&delivery.payload)? {
            Request::Action(action) => action,
            Request::Ignore(reason) => {
                tracing::info!(function = NAME, route = %delivery.route(), reason = %reason, "ignored event");
                return Ok(json!({ "function": NAME, "ignored": reason }));
            }
        };
        tracing::info!(function = NAME, route = %delivery.route(), transition = %action.transition, instance_id = %action.instance_id, group = %action.group, hook = %action.hook, "lifecycle action received");
        let settings = Settings {
            dry_run: self.config.common.dry_run,
            volume_type: self.config.volume_type.clone(),
            poll: self.config.poll,
        };
        let summary = run::handle(
            &self.ec2,
            &self.lifecycle,
            &self.roles,
            &action,
            &settings,
            &invocation.deadline,
        )
        .await;
        finish(&self.notifier, NAME, summary).await
    }
}

impl Function for LifecycleHook {
    const NAME: &'static str = NAME;
    type Config = Config;

    fn config(env: &impl Env) -> Result<Config, ConfigError> {
        Config::from_env(env)
    }

    fn new(config: Config, sdk: &SdkConfig) -> Self {
        // One client per service, shared by the roles and the restore.
        let ec2 = Ec2::from_conf(sdk);
        let route53 = config
            .hosted_zone_id
            .as_ref()
            .map(|zone| Route53::from_conf(sdk, zone.clone()));
        let search = route53
            .clone()
            .map(|dns| SearchRecords::new(dns, config.record_ttl));
        let chain = route53.map(|dns| {
            RedisChain::new(
                RedisNodes::new(config.redis.clone()),
                dns,
                ec2.clone(),
                ChainSettings::new(config.policy, config.record_ttl, config.common.dry_run),
                config.join_wait,
            )
        });
        let tasks = config
            .task_queue_url
            .as_ref()
            .map(|url| MongoTasks::new(TaskQueueSqs::from_conf(sdk, url.clone())));
        let notifier = SnsNotifier::from_conf(sdk, config.common.notify_topic_arn.clone());
        LifecycleHook::with(
            config,
            ec2,
            AutoScaling::from_conf(sdk),
            ClusterRoles::new(search).with_redis(chain).with_mongo(tasks),
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
