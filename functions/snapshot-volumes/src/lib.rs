//! snapshot-volumes (SPEC item 1): on a schedule, snapshot every volume
//! tagged `ninelives:cluster` for one retention tier.
//!
//! The tier comes from the event: `{"tier": "daily"}` as constant input, a
//! `tier` in an EventBridge event's detail, or the schedule rule's name
//! (`...-daily-...`). The handler turns the event into a [`SnapshotRun`] and
//! hands it to `shared::backup::snapshot`.
//!
//! Volumes tagged `ninelives:app=postgres` are taken in PostgreSQL backup
//! mode (`shared::backup::pg_hooks`): the instance's PostgreSQL, found from
//! its tags, is connected to with the `PG*` settings only for those groups,
//! so the function needs no PostgreSQL setting when no volume asks for it.

use aws_config::SdkConfig;
use chrono::{DateTime, Utc};
use lambda_runtime::LambdaEvent;
use serde::Deserialize;
use serde_json::Value;
use shared::backup::hooks::{AppHooks, NoAppHooks};
use shared::backup::pg_hooks::PgBackupHooks;
use shared::backup::ports::BackupApi;
use shared::backup::snapshot::{SnapshotRun, take_snapshots};
use shared::backup::tier::{Retention, Tier};
use shared::config::{Common, Env};
use shared::ec2::Ec2;
use shared::envelope::{Delivery, Payload};
use shared::error::clip;
use shared::function::{Function, finish};
use shared::invocation::{Invocation, dispatch};
use shared::notify::{Notifier, SnsNotifier};
use shared::pg_node::PgSettings;
use shared::{ConfigError, Error, EventError};

pub const NAME: &str = "snapshot-volumes";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    pub common: Common,
    pub retention: Retention,
    /// `PGUSER`, `PGPASSWORD`, `PGDATABASE`, `PG_CONNECT_TIMEOUT_MS`,
    /// `PG_COMMAND_TIMEOUT_MS`: how backup mode reaches PostgreSQL. All
    /// optional; used only for volumes tagged `ninelives:app=postgres`.
    pub postgres: PgSettings,
}

impl Config {
    pub fn from_env(env: &impl Env) -> Result<Self, ConfigError> {
        Ok(Config {
            common: Common::from_env(env)?,
            retention: Retention::from_env(env)?,
            postgres: PgSettings::from_env(env)?,
        })
    }
}

/// What an event asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub tier: Tier,
    pub time: DateTime<Utc>,
    /// Whether the time came from the event (else it is the clock's).
    pub time_from_event: bool,
    /// The event may ask for a dry run; it can never cancel one the
    /// configuration asks for.
    pub dry_run: bool,
}

/// The constant input of a schedule target, or a direct invocation.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Input {
    tier: Option<String>,
    /// RFC 3339, not in the future; defaults to now. Passing the schedule's
    /// own time (an input transformer with `<time>`) makes retries that
    /// arrive after the hour or day still count for the right period.
    time: Option<String>,
    #[serde(default)]
    dry_run: bool,
}

/// How far ahead of this clock an event's time may be.
const MAX_CLOCK_SKEW_MINUTES: i64 = 5;

/// A time ahead of the clock would take a future period's snapshots now,
/// and the real run of that period would find them and skip.
fn not_ahead(time: DateTime<Utc>, now: DateTime<Utc>) -> Result<DateTime<Utc>, EventError> {
    if time > now + chrono::Duration::minutes(MAX_CLOCK_SKEW_MINUTES) {
        return Err(EventError::Invalid(format!(
            "the event's time {} is in the future; a snapshot run cannot be scheduled ahead",
            time.to_rfc3339()
        )));
    }
    Ok(time)
}

const TIER_HELP: &str = "give {\"tier\": \"hourly|daily|weekly|monthly\"} as constant input, or name the schedule rule after its tier";

/// Reads the request from a delivered payload. `now` is used when the event
/// carries no time.
pub fn parse_request(payload: &Payload, now: DateTime<Utc>) -> Result<Request, EventError> {
    match payload {
        Payload::Direct(value) => {
            // serde would read `["daily"]` as the struct's fields in order.
            if !value.is_object() {
                return Err(EventError::Invalid(format!(
                    "the snapshot-volumes input must be a JSON object, not {}: {TIER_HELP}",
                    shared::envelope::json_kind(value)
                )));
            }
            let input: Input = serde_json::from_value(value.clone()).map_err(|source| EventError::Shape {
                context: "snapshot-volumes input",
                source,
            })?;
            let Some(tier) = input.tier else {
                return Err(EventError::Invalid(format!(
                    "the event names no tier: {TIER_HELP}"
                )));
            };
            let time = match &input.time {
                None => now,
                Some(t) => not_ahead(
                    DateTime::parse_from_rfc3339(t)
                        .map_err(|e| {
                            EventError::Invalid(format!(
                                "\"time\" {:?} is not an RFC 3339 time: {e}",
                                clip(t, 40)
                            ))
                        })?
                        .with_timezone(&Utc),
                    now,
                )?,
            };
            Ok(Request {
                tier: tier.parse()?,
                time,
                time_from_event: input.time.is_some(),
                dry_run: input.dry_run,
            })
        }
        Payload::EventBridge(event) => {
            let detail_tier = event.detail.get("tier").map(|t| {
                t.as_str().ok_or_else(|| {
                    EventError::Invalid(format!(
                        "detail.tier must be a string, not {}",
                        shared::envelope::json_kind(t)
                    ))
                })
            });
            let tier = match detail_tier {
                Some(t) => t?.parse()?,
                None => {
                    let mut found = None;
                    for arn in event.resources.iter().flatten() {
                        if let Some(tier) = Tier::from_rule_arn(arn)? {
                            found = Some(tier);
                            break;
                        }
                    }
                    found.ok_or_else(|| {
                        EventError::Invalid(format!(
                            "cannot tell the tier of {:?} event from {}: {TIER_HELP}",
                            clip(&event.detail_type, 80),
                            clip(
                                &format!("{:?}", event.resources.as_deref().unwrap_or_default()),
                                300
                            )
                        ))
                    })?
                }
            };
            let dry_run = match event.detail.get("dry_run") {
                None => false,
                Some(Value::Bool(b)) => *b,
                Some(other) => {
                    return Err(EventError::Invalid(format!(
                        "detail.dry_run must be true or false, not {}",
                        clip(&other.to_string(), 40)
                    )));
                }
            };
            Ok(Request {
                tier,
                time: match event.time {
                    Some(t) => not_ahead(t, now)?,
                    None => now,
                },
                time_from_event: event.time.is_some(),
                dry_run,
            })
        }
        Payload::NoOp { reason } => Err(EventError::Invalid(format!("nothing to do: {reason}"))),
    }
}

/// The handler. `H` is the application backup mode: PostgreSQL's, with
/// instances located through EC2, in the deployed function.
pub struct SnapshotVolumes<A = Ec2, N = SnsNotifier, H = PgBackupHooks<Ec2>> {
    config: Config,
    api: A,
    notifier: N,
    hooks: H,
}

impl<A: BackupApi, N: Notifier> SnapshotVolumes<A, N, NoAppHooks> {
    /// A handler without application backup modes: volumes tagged
    /// `ninelives:app` are taken crash-consistent, and the summary says so
    /// (for tests of the snapshot logic alone).
    pub fn with(config: Config, api: A, notifier: N) -> Self {
        SnapshotVolumes::with_hooks(config, api, notifier, NoAppHooks)
    }
}

impl<A: BackupApi, N: Notifier, H: AppHooks> SnapshotVolumes<A, N, H> {
    pub fn with_hooks(config: Config, api: A, notifier: N, hooks: H) -> Self {
        SnapshotVolumes {
            config,
            api,
            notifier,
            hooks,
        }
    }

    async fn run(&self, delivery: Delivery, invocation: &Invocation) -> Result<Value, Error> {
        let request = parse_request(&delivery.payload, Utc::now())?;
        let run = SnapshotRun {
            tier: request.tier,
            time: request.time,
            time_from_event: request.time_from_event,
            retention: self.config.retention,
            run_id: invocation.request_id.clone(),
            dry_run: self.config.common.dry_run || request.dry_run,
        };
        tracing::info!(function = NAME, route = %delivery.route(), tier = %run.tier, period = %run.period(), dry_run = run.dry_run, "snapshot run starting");
        let summary = take_snapshots(&self.api, &self.hooks, &run, &invocation.deadline).await?;
        finish(&self.notifier, NAME, summary).await
    }
}

impl<A: BackupApi, N: Notifier, H: AppHooks> SnapshotVolumes<A, N, H> {
    pub async fn handle_event(&self, event: LambdaEvent<Value>) -> Result<Value, Error> {
        let invocation = Invocation::from_context(&event.context);
        dispatch(NAME, event.payload, &invocation.deadline, |delivery| {
            self.run(delivery, &invocation)
        })
        .await
    }
}

impl Function for SnapshotVolumes {
    const NAME: &'static str = NAME;
    type Config = Config;

    fn config(env: &impl Env) -> Result<Config, ConfigError> {
        Config::from_env(env)
    }

    fn new(config: Config, sdk: &SdkConfig) -> Self {
        let notifier = SnsNotifier::from_conf(sdk, config.common.notify_topic_arn.clone());
        let ec2 = Ec2::from_conf(sdk);
        let hooks = PgBackupHooks::new(config.postgres.clone(), ec2.clone());
        SnapshotVolumes::with_hooks(config, ec2, notifier, hooks)
    }

    async fn handle(&self, event: LambdaEvent<Value>) -> Result<Value, Error> {
        self.handle_event(event).await
    }
}
