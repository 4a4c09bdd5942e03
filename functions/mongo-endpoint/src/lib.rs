//! mongo-endpoint (SPEC item 5): keeps each MongoDB replica set's Route 53
//! record on its primary. Triggered every minute by a schedule (every
//! tagged set) and by CloudWatch alarms naming a set in their `cluster`
//! dimension (the alarm's Lambda action, EventBridge, SNS, SQS). The
//! handler lists the members from EC2 tags and hands each set to
//! `shared::mongo::endpoint::follow_primary`: ask every member, find the
//! one primary, UPSERT the record only when it points elsewhere.

use aws_config::SdkConfig;
use futures::future::join_all;
use lambda_runtime::LambdaEvent;
use serde::Serialize;
use serde_json::{Value, json};
use shared::alarm::{self, Cause, Trigger};
use shared::chain::model::InvalidNode;
use shared::config::{Common, Env, hosted_zone, number};
use shared::dns::Dns;
use shared::ec2::Ec2;
use shared::envelope::Delivery;
use shared::fleet::{Fleet, Names};
use shared::function::{Function, Summary, finish};
use shared::invocation::{Invocation, dispatch};
use shared::mongo::config::mongo_settings;
use shared::mongo::endpoint::{SetReport, follow_primary};
use shared::mongo::ports::{Member, MemberInventory, MongoApi};
use shared::mongo_node::{MongoNodes, MongoSettings};
use shared::notify::{Notifier, SnsNotifier};
use shared::route53::Route53;
use shared::{ConfigError, Error};

pub const NAME: &str = "mongo-endpoint";

#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub common: Common,
    /// `HOSTED_ZONE_ID`: the zone of the sets' records.
    pub hosted_zone_id: String,
    /// `RECORD_TTL`: seconds; clients follow a new primary after at most
    /// this (drivers that discover the set follow it at once anyway).
    pub record_ttl: i64,
    pub mongo: MongoSettings,
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
            mongo: mongo_settings(env)?,
        })
    }
}

pub struct MongoEndpoint<M = MongoNodes, D = Route53, I = Ec2, N = SnsNotifier> {
    config: Config,
    mongo: M,
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
    pub sets: Vec<SetReport>,
    /// Instances tagged as members whose tags make no usable member.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub invalid_nodes: Vec<InvalidNode>,
}

impl Summary for RunSummary {
    fn headline(&self) -> String {
        let parts: Vec<String> = self
            .sets
            .iter()
            .map(|s| match &s.primary {
                Some(p) => format!("{} {} ({p})", s.set, s.status),
                None => format!("{} {}", s.set, s.status),
            })
            .collect();
        if parts.is_empty() {
            format!("{NAME}: no replica set to check")
        } else {
            format!("{NAME}: {}", parts.join(", "))
        }
    }

    fn changed(&self) -> bool {
        self.sets.iter().any(|s| s.changed() || s.failure.is_some())
    }

    fn take_outcome_error(&mut self) -> Option<Error> {
        let attempted = self.sets.len();
        let failures = self.sets.iter_mut().filter_map(|c| c.failure.take()).collect();
        Error::combine("replica sets", attempted, failures)
    }
}

impl<M: MongoApi, D: Dns, I: MemberInventory, N: Notifier> MongoEndpoint<M, D, I, N> {
    pub fn with(config: Config, mongo: M, dns: D, inventory: I, notifier: N) -> Self {
        MongoEndpoint {
            config,
            mongo,
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
        let (wanted, cause) = match alarm::parse(&delivery.payload)? {
            Trigger::Ignore(reason) => {
                tracing::info!(function = NAME, route = %delivery.route(), reason = %reason, "ignored event");
                return Ok(json!({ "function": NAME, "ignored": reason }));
            }
            Trigger::Clusters { clusters, cause } => (Some(clusters), cause),
            Trigger::All { cause } => (None, cause),
        };
        tracing::info!(function = NAME, route = %delivery.route(), cause = %cause.kind, alarm = ?cause.alarm_name, sets = ?wanted, "primary check");
        let fleet = Fleet::group(
            self.inventory.mongo_members(None).await?,
            |m: &Member| m.node.cluster.as_str(),
            Names {
                node: "mongodb member",
                cluster: "replica set",
                instances: "member instances",
                roles: "mongodb or mongodb-arbiter",
            },
        );
        let dry_run = self.config.common.dry_run;
        let sets = join_all(fleet.wanted(wanted).into_iter().map(|name| {
            let fleet = &fleet;
            async move {
                match fleet.groups.get(&name) {
                    Some(members) => {
                        follow_primary(
                            &self.mongo,
                            &self.dns,
                            &name,
                            members,
                            self.config.record_ttl,
                            dry_run,
                        )
                        .await
                    }
                    None => SetReport::empty(&name).fail(fleet.unknown(&name)),
                }
            }
        }))
        .await;
        let summary = RunSummary {
            function: NAME,
            cause,
            dry_run,
            sets,
            invalid_nodes: fleet.invalid,
        };
        finish(&self.notifier, NAME, summary).await
    }
}

impl Function for MongoEndpoint {
    const NAME: &'static str = NAME;
    type Config = Config;

    fn config(env: &impl Env) -> Result<Config, ConfigError> {
        Config::from_env(env)
    }

    fn new(config: Config, sdk: &SdkConfig) -> Self {
        let notifier = SnsNotifier::from_conf(sdk, config.common.notify_topic_arn.clone());
        let dns = Route53::from_conf(sdk, config.hosted_zone_id.clone());
        let mongo = MongoNodes::new(config.mongo.clone());
        MongoEndpoint::with(config, mongo, dns, Ec2::from_conf(sdk), notifier)
    }

    async fn handle(&self, event: LambdaEvent<Value>) -> Result<Value, Error> {
        self.handle_event(event).await
    }
}

#[cfg(test)]
#[path = "tests/config.rs"]
mod tests;
