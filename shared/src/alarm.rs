//! What asks redis-failover to look at a Redis chain, read from each shape
//! AWS delivers it in:
//!
//! - a CloudWatch alarm's Lambda action: `{"source": "aws.cloudwatch",
//!   "alarmArn", "time", "alarmData": {"alarmName", "state",
//!   "previousState", "configuration": {"metrics": [...]}}}`, invoked
//!   directly ([`Payload::Direct`]);
//! - EventBridge "CloudWatch Alarm State Change" from `aws.cloudwatch`, the
//!   same fields in `detail`;
//! - an alarm's SNS notification, whose message (the classic alarm JSON:
//!   `AlarmName`, `NewStateValue`, `StateChangeTime`, `Trigger` with
//!   `Dimensions`, `Period`, `EvaluationPeriods`) reaches the function as
//!   [`Payload::Direct`] once the envelope is opened, through SNS or SQS;
//! - EventBridge "Scheduled Event" from `aws.events`: a health check of
//!   every tagged cluster;
//! - direct input `{"cluster": "kate.example.com"}`, `{"clusters": [...]}`
//!   or `{"check": "all"}` (an engineer, a replayed fixture, a rule's
//!   constant input).
//!
//! An alarm names its cluster in its metric's `cluster` dimension (any of
//! its metrics, for a metric-math alarm). Only the `ALARM` state asks for a
//! check; `OK` and `INSUFFICIENT_DATA` are ignored with a reason. Pure: no
//! AWS call.

use chrono::{DateTime, NaiveDateTime, Utc};
use serde::Serialize;
use serde_json::{Map, Value};

use crate::envelope::{Payload, json_kind};
use crate::error::EventError;

/// The dimension that names the cluster, as publish-metrics writes it.
pub const CLUSTER_DIMENSION: &str = "cluster";
pub const ALARM_STATE_CHANGE: &str = "CloudWatch Alarm State Change";
pub const ALARM_CONFIGURATION_CHANGE: &str = "CloudWatch Alarm Configuration Change";
pub const SCHEDULED_EVENT: &str = "Scheduled Event";
const CLOUDWATCH_SOURCE: &str = "aws.cloudwatch";
const SCHEDULE_SOURCE: &str = "aws.events";

/// The most clusters one event may name; more is a mistake or an attack,
/// and a scheduled check covers every cluster anyway.
pub const MAX_CLUSTERS: usize = 100;

// Read by redis-failover and mongo-endpoint alike, so it names neither.
const ACCEPTED: &str = "this function accepts a CloudWatch alarm whose metric has a `cluster` dimension \
     (the alarm's Lambda action, an EventBridge \"CloudWatch Alarm State Change\" event, or its SNS \
     notification), an EventBridge \"Scheduled Event\" from aws.events (checks every cluster), or direct \
     input {\"cluster\": \"kate.example.com\"}, {\"clusters\": [\"kate.example.com\", ...]} or \
     {\"check\": \"all\"}";

/// What an event asks of redis-failover.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Trigger {
    /// Check these clusters now (an alarm in ALARM naming them in its
    /// metric's `cluster` dimension, or a direct `{"cluster": "x"}` /
    /// `{"clusters": ["x", "y"]}`). Record names, lower case, without the
    /// trailing dot, each once, in the order the event gave them.
    Clusters { clusters: Vec<String>, cause: Cause },
    /// A scheduled health check of every tagged cluster (EventBridge
    /// "Scheduled Event", or direct `{"check": "all"}`).
    All { cause: Cause },
    /// Nothing to do (an alarm back to OK or INSUFFICIENT_DATA, an SNS
    /// subscription confirmation, an alarm's configuration change); the
    /// reason is logged.
    Ignore(String),
}

impl Trigger {
    /// Why the check was asked for; `None` for [`Trigger::Ignore`].
    pub fn cause(&self) -> Option<&Cause> {
        match self {
            Trigger::Clusters { cause, .. } | Trigger::All { cause } => Some(cause),
            Trigger::Ignore(_) => None,
        }
    }
}

/// Why a check was asked for, for the log and the summary.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Cause {
    /// `"alarm"`, `"schedule"` or `"direct"`.
    pub kind: &'static str,
    /// The alarm's name, for an alarm.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub alarm_name: Option<String>,
    /// When the alarm went into ALARM (its state's timestamp, or the
    /// event's time when the state has none).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub state_change_time: Option<DateTime<Utc>>,
    /// Seconds of data the alarm needed to fire: period x evaluation
    /// periods, when the event says. SNS notifications carry both
    /// (`Trigger.Period`, `Trigger.EvaluationPeriods`); the Lambda action and
    /// EventBridge events carry the period (`metricStat.period`) and give
    /// the evaluation periods in `configuration.evaluationPeriods` when
    /// present, else in the state reason CloudWatch writes ("... out of the
    /// last N datapoints ...").
    #[serde(skip_serializing_if = "Option::is_none")]
    pub alarm_window_seconds: Option<u64>,
}

impl Cause {
    fn new(kind: &'static str) -> Self {
        Cause {
            kind,
            alarm_name: None,
            state_change_time: None,
            alarm_window_seconds: None,
        }
    }
}

/// Reads the trigger from a delivered payload.
pub fn parse(payload: &Payload) -> Result<Trigger, EventError> {
    match payload {
        Payload::NoOp { reason } => Ok(Trigger::Ignore(reason.clone())),
        Payload::EventBridge(event) => {
            let source = event.source.as_str();
            let detail_type = event.detail_type.as_str();
            match (source, detail_type) {
                (SCHEDULE_SOURCE, SCHEDULED_EVENT) => Ok(Trigger::All {
                    cause: Cause::new("schedule"),
                }),
                (CLOUDWATCH_SOURCE, ALARM_STATE_CHANGE) => {
                    let alarm = Alarm::from_alarm_data(&event.detail, "EventBridge detail", event.time)?;
                    alarm.trigger()
                }
                (CLOUDWATCH_SOURCE, ALARM_CONFIGURATION_CHANGE) => Ok(Trigger::Ignore(format!(
                    "{ALARM_CONFIGURATION_CHANGE:?} event: an alarm's configuration changed, its state did not"
                ))),
                _ => Err(EventError::Invalid(format!(
                    "{:?} events from {:?} are not handled: {ACCEPTED}",
                    clip(detail_type),
                    clip(source)
                ))),
            }
        }
        Payload::Direct(value) => {
            let Some(object) = value.as_object() else {
                return Err(EventError::Invalid(format!(
                    "the event is {}, not a JSON object: {ACCEPTED}",
                    json_kind(value)
                )));
            };
            if let Some(alarm_data) = object.get("alarmData") {
                let source = object.get("source").and_then(Value::as_str);
                if source.is_some_and(|s| s != CLOUDWATCH_SOURCE) {
                    return Err(EventError::Invalid(format!(
                        "an alarm action event comes from {CLOUDWATCH_SOURCE:?}, not {:?}",
                        clip(source.unwrap_or_default())
                    )));
                }
                let fallback = object
                    .get("time")
                    .and_then(Value::as_str)
                    .and_then(|t| time(t).ok());
                let alarm = Alarm::from_alarm_data(alarm_data, "alarm action's alarmData", fallback)?;
                return alarm.trigger();
            }
            if object.contains_key("AlarmName") || object.contains_key("NewStateValue") {
                return Alarm::from_sns_message(object)?.trigger();
            }
            direct(object)
        }
    }
}

/// An alarm's state change, whichever shape it came in.
struct Alarm {
    name: String,
    state: String,
    time: Option<DateTime<Utc>>,
    /// `cluster` dimension values, as given.
    clusters: Vec<String>,
    period: Option<u64>,
    evaluation_periods: Option<u64>,
    /// A composite alarm (an `alarmRule`, no metrics of its own).
    composite: bool,
}

impl Alarm {
    /// `alarmData` of the Lambda action, or `detail` of the EventBridge
    /// event: `alarmName`, `state {value, reason, timestamp}`,
    /// `configuration {metrics: [{metricStat: {metric: {dimensions: {..}},
    /// period}}, {expression, ..}]}`.
    fn from_alarm_data(
        data: &Value,
        context: &'static str,
        fallback_time: Option<DateTime<Utc>>,
    ) -> Result<Alarm, EventError> {
        let Some(data) = data.as_object() else {
            return Err(EventError::Invalid(format!(
                "the {context} must be a JSON object with alarmName, state and configuration"
            )));
        };
        let name = alarm_name(data.get("alarmName"), "alarmName")?;
        let state = data.get("state").and_then(Value::as_object);
        let Some(value) = state.and_then(|s| s.get("value")).and_then(Value::as_str) else {
            return Err(EventError::Invalid(format!(
                "alarm {name:?} has no state.value (ALARM, OK or INSUFFICIENT_DATA)"
            )));
        };
        let time = match state.and_then(|s| s.get("timestamp")) {
            None | Some(Value::Null) => fallback_time,
            Some(t) => Some(time_field(t, &name, "state.timestamp")?),
        };
        let configuration = data.get("configuration").and_then(Value::as_object);
        let metrics = match configuration.and_then(|c| c.get("metrics")) {
            None | Some(Value::Null) => &[][..],
            Some(Value::Array(metrics)) => metrics.as_slice(),
            Some(other) => {
                return Err(EventError::Invalid(format!(
                    "alarm {name:?}: configuration.metrics is {}, not a list",
                    json_kind(other)
                )));
            }
        };
        let mut clusters = Vec::new();
        let mut period = None;
        for metric in metrics {
            let stat = metric.get("metricStat");
            let dimensions = stat
                .and_then(|s| s.get("metric"))
                .and_then(|m| m.get("dimensions"));
            match dimensions {
                None | Some(Value::Null) => {}
                Some(Value::Object(dimensions)) => {
                    if let Some(cluster) = dimensions.get(CLUSTER_DIMENSION) {
                        clusters.push(dimension_value(cluster, &name)?);
                    }
                }
                Some(other) => {
                    return Err(EventError::Invalid(format!(
                        "alarm {name:?}: metricStat.metric.dimensions is {}, not an object",
                        json_kind(other)
                    )));
                }
            }
            period = period.max(positive(stat.and_then(|s| s.get("period"))));
        }
        let reason = state.and_then(|s| s.get("reason")).and_then(Value::as_str);
        let evaluation_periods = positive(configuration.and_then(|c| c.get("evaluationPeriods")))
            .or_else(|| reason.and_then(evaluated_datapoints));
        Ok(Alarm {
            name,
            state: value.to_owned(),
            time,
            clusters,
            period,
            evaluation_periods,
            composite: configuration.is_some_and(|c| c.contains_key("alarmRule")),
        })
    }

    /// The message of an alarm's SNS notification: `AlarmName`,
    /// `NewStateValue`, `StateChangeTime`, `Trigger {Dimensions: [{name,
    /// value}], Period, EvaluationPeriods, Metrics: [{MetricStat: {Metric:
    /// {Dimensions}, Period}}]}`.
    fn from_sns_message(message: &Map<String, Value>) -> Result<Alarm, EventError> {
        let name = alarm_name(message.get("AlarmName"), "AlarmName")?;
        let Some(state) = message.get("NewStateValue").and_then(Value::as_str) else {
            return Err(EventError::Invalid(format!(
                "alarm {name:?} has no NewStateValue (ALARM, OK or INSUFFICIENT_DATA)"
            )));
        };
        let time = match message.get("StateChangeTime") {
            None | Some(Value::Null) => None,
            Some(t) => Some(time_field(t, &name, "StateChangeTime")?),
        };
        let trigger = message.get("Trigger").and_then(Value::as_object);
        let mut clusters = Vec::new();
        let mut period = positive(trigger.and_then(|t| t.get("Period")));
        if let Some(dimensions) = trigger.and_then(|t| t.get("Dimensions")) {
            sns_clusters(dimensions, &name, &mut clusters)?;
        }
        if let Some(metrics) = trigger.and_then(|t| t.get("Metrics")) {
            let Some(metrics) = metrics.as_array() else {
                return Err(EventError::Invalid(format!(
                    "alarm {name:?}: Trigger.Metrics is {}, not a list",
                    json_kind(metrics)
                )));
            };
            for metric in metrics {
                let stat = metric.get("MetricStat");
                if let Some(dimensions) = stat
                    .and_then(|s| s.get("Metric"))
                    .and_then(|m| m.get("Dimensions"))
                {
                    sns_clusters(dimensions, &name, &mut clusters)?;
                }
                if period.is_none() {
                    period = positive(stat.and_then(|s| s.get("Period")));
                }
            }
        }
        Ok(Alarm {
            name,
            state: state.to_owned(),
            time,
            clusters,
            period,
            evaluation_periods: positive(trigger.and_then(|t| t.get("EvaluationPeriods"))),
            composite: false,
        })
    }

    fn trigger(self) -> Result<Trigger, EventError> {
        let name = self.name;
        match self.state.as_str() {
            "ALARM" => {}
            "OK" | "INSUFFICIENT_DATA" => {
                return Ok(Trigger::Ignore(format!(
                    "alarm {name:?} is in state {}, not ALARM: nothing to check",
                    self.state
                )));
            }
            other => {
                return Err(EventError::Invalid(format!(
                    "alarm {name:?} has state {:?}, not ALARM, OK or INSUFFICIENT_DATA",
                    clip(other)
                )));
            }
        }
        if self.clusters.is_empty() {
            let composite = if self.composite {
                " (a composite alarm has no metrics of its own: give the function the metric alarms instead)"
            } else {
                ""
            };
            return Err(EventError::Invalid(format!(
                "alarm {name:?} names no cluster: the function needs a `{CLUSTER_DIMENSION}` dimension \
                 on the alarm's metric, whose value is the cluster's record name (e.g. kate.example.com){composite}"
            )));
        }
        let clusters = clusters(&self.clusters)?;
        Ok(Trigger::Clusters {
            clusters,
            cause: Cause {
                kind: "alarm",
                alarm_name: Some(name),
                state_change_time: self.time,
                alarm_window_seconds: self
                    .period
                    .zip(self.evaluation_periods)
                    .and_then(|(p, n)| p.checked_mul(n)),
            },
        })
    }
}

/// Direct input: `{"cluster": ..}`, `{"clusters": [..]}` or `{"check": "all"}`.
fn direct(object: &Map<String, Value>) -> Result<Trigger, EventError> {
    const KEYS: [&str; 3] = ["cluster", "clusters", "check"];
    if let Some(unknown) = object.keys().find(|k| !KEYS.contains(&k.as_str())) {
        return Err(EventError::Invalid(format!(
            "unknown field {:?} in the event: {ACCEPTED}",
            clip(unknown)
        )));
    }
    let check = object.get("check");
    let cluster = object.get("cluster");
    let list = object.get("clusters");
    match (check, cluster, list) {
        (None, None, None) => Err(EventError::Invalid(format!(
            "the event is an empty object: {ACCEPTED}"
        ))),
        (Some(check), None, None) => match check.as_str().map(str::trim) {
            Some(c) if c.eq_ignore_ascii_case("all") => Ok(Trigger::All {
                cause: Cause::new("direct"),
            }),
            _ => Err(EventError::Invalid(format!(
                "\"check\" must be \"all\", not {}",
                clip(&check.to_string())
            ))),
        },
        (None, Some(cluster), None) => match cluster {
            Value::String(cluster) => Ok(Trigger::Clusters {
                clusters: clusters(std::slice::from_ref(cluster))?,
                cause: Cause::new("direct"),
            }),
            other => Err(EventError::Invalid(format!(
                "\"cluster\" must be a string (the cluster's record name), not {}",
                json_kind(other)
            ))),
        },
        (None, None, Some(list)) => {
            let Value::Array(items) = list else {
                return Err(EventError::Invalid(format!(
                    "\"clusters\" must be a list of record names, not {}",
                    json_kind(list)
                )));
            };
            if items.is_empty() {
                return Err(EventError::Invalid(
                    "\"clusters\" is empty: name at least one cluster, or give {\"check\": \"all\"}"
                        .to_owned(),
                ));
            }
            if items.len() > MAX_CLUSTERS {
                return Err(too_many(items.len()));
            }
            let names = items
                .iter()
                .map(|item| match item {
                    Value::String(s) => Ok(s.clone()),
                    other => Err(EventError::Invalid(format!(
                        "\"clusters\" must hold record names (strings), not {}",
                        json_kind(other)
                    ))),
                })
                .collect::<Result<Vec<_>, _>>()?;
            Ok(Trigger::Clusters {
                clusters: clusters(&names)?,
                cause: Cause::new("direct"),
            })
        }
        _ => {
            let given: Vec<&str> = KEYS.into_iter().filter(|k| object.contains_key(*k)).collect();
            Err(EventError::Invalid(format!(
                "give one of \"cluster\", \"clusters\" or \"check\", not {}",
                given.join(" and ")
            )))
        }
    }
}

/// Checked, normalised, each once, in order.
fn clusters(raw: &[String]) -> Result<Vec<String>, EventError> {
    let mut out: Vec<String> = Vec::new();
    for name in raw {
        let name = cluster_name(name)?;
        if !out.contains(&name) {
            if out.len() == MAX_CLUSTERS {
                return Err(too_many(raw.len()));
            }
            out.push(name);
        }
    }
    Ok(out)
}

/// A cluster is named by its record name (`kate.example.com`).
pub fn cluster_name(raw: &str) -> Result<String, EventError> {
    // Longer than any DNS name even with spaces and a trailing dot; quoting
    // it whole would put megabytes in the error.
    if raw.len() > 300 {
        return Err(EventError::Invalid(format!(
            "cluster {:?} is not a DNS name (1 to 253 characters)",
            clip(raw)
        )));
    }
    crate::dns::record_name(raw).map_err(|e| EventError::Invalid(format!("cluster {e}")))
}

fn too_many(count: usize) -> EventError {
    EventError::Invalid(format!(
        "the event names {count} clusters; at most {MAX_CLUSTERS} are checked at once (give {{\"check\": \"all\"}} to check every cluster)"
    ))
}

fn alarm_name(value: Option<&Value>, field: &str) -> Result<String, EventError> {
    let Some(name) = value
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|n| !n.is_empty())
    else {
        return Err(EventError::Invalid(format!("the alarm event has no {field}")));
    };
    // CloudWatch: 1 to 255 characters.
    if name.chars().count() > 255 || name.chars().any(char::is_control) {
        return Err(EventError::Invalid(format!(
            "{field} {:?} is not an alarm name (1 to 255 characters, no control characters)",
            clip(name)
        )));
    }
    Ok(name.to_owned())
}

fn dimension_value(value: &Value, alarm: &str) -> Result<String, EventError> {
    value.as_str().map(str::to_owned).ok_or_else(|| {
        EventError::Invalid(format!(
            "alarm {alarm:?}: the `{CLUSTER_DIMENSION}` dimension is {}, not a string",
            json_kind(value)
        ))
    })
}

/// SNS spells dimensions as a list of `{"name": .., "value": ..}`.
fn sns_clusters(dimensions: &Value, alarm: &str, out: &mut Vec<String>) -> Result<(), EventError> {
    let Some(dimensions) = dimensions.as_array() else {
        if dimensions.is_null() {
            return Ok(());
        }
        return Err(EventError::Invalid(format!(
            "alarm {alarm:?}: Dimensions is {}, not a list",
            json_kind(dimensions)
        )));
    };
    for dimension in dimensions {
        let field = |lower: &str, upper: &str| dimension.get(lower).or_else(|| dimension.get(upper));
        if field("name", "Name").and_then(Value::as_str) == Some(CLUSTER_DIMENSION)
            && let Some(value) = field("value", "Value")
        {
            out.push(dimension_value(value, alarm)?);
        }
    }
    Ok(())
}

/// A whole number above zero, or nothing.
fn positive(value: Option<&Value>) -> Option<u64> {
    value.and_then(Value::as_u64).filter(|n| *n > 0)
}

/// N in CloudWatch's "M out of the last N datapoints" state reason.
fn evaluated_datapoints(reason: &str) -> Option<u64> {
    const MARK: &str = " out of the last ";
    let rest = &reason[reason.find(MARK)? + MARK.len()..];
    let (number, rest) = rest.split_once(' ')?;
    if !rest.starts_with("datapoint") {
        return None;
    }
    number.parse().ok().filter(|n| *n > 0)
}

fn time_field(value: &Value, alarm: &str, field: &str) -> Result<DateTime<Utc>, EventError> {
    let Some(text) = value.as_str() else {
        return Err(EventError::Invalid(format!(
            "alarm {alarm:?}: {field} is {}, not a time",
            json_kind(value)
        )));
    };
    time(text).map_err(|e| EventError::Invalid(format!("alarm {alarm:?}: {field} {:?} {e}", clip(text))))
}

/// CloudWatch writes `2026-11-24T13:10:00.000+0000`; EventBridge RFC 3339.
fn time(text: &str) -> Result<DateTime<Utc>, String> {
    let text = text.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(text) {
        return Ok(t.with_timezone(&Utc));
    }
    if let Ok(t) = DateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S%.f%z") {
        return Ok(t.with_timezone(&Utc));
    }
    // No offset at all: CloudWatch's times are UTC.
    NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S%.f")
        .map(|t| t.and_utc())
        .map_err(|_| "is not a time like 2026-11-24T13:10:00.000+0000 or RFC 3339".to_owned())
}

/// Hostile input can be megabytes long; errors quote only its start.
fn clip(value: &str) -> String {
    crate::error::clip(value, 80)
}

#[cfg(test)]
#[path = "tests/alarm.rs"]
mod tests;
