//! The Auto Scaling lifecycle action an event carries, read from each shape
//! AWS delivers it in:
//!
//! - EventBridge: `detail-type` "EC2 Instance-launch Lifecycle Action" or
//!   "EC2 Instance-terminate Lifecycle Action", fields in `detail`;
//! - the hook's notification target (SNS, or SQS directly): a JSON message
//!   with the same fields at the top level plus `Service`, `Time`, ...;
//! - a direct invocation with that message (replaying a fixture).
//!
//! Other Auto Scaling events (launch/terminate notifications, "EC2 Instance
//! Launch Successful", ...) ask nothing of a lifecycle hook and are
//! recognised as such, so they are ignored with a reason rather than
//! rejected. Pure: no AWS call.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::envelope::Payload;
use crate::error::EventError;

pub const LAUNCH_DETAIL_TYPE: &str = "EC2 Instance-launch Lifecycle Action";
pub const TERMINATE_DETAIL_TYPE: &str = "EC2 Instance-terminate Lifecycle Action";
const AUTOSCALING_SOURCE: &str = "aws.autoscaling";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Transition {
    Launch,
    Terminate,
}

impl Transition {
    pub fn from_wire(value: &str) -> Option<Self> {
        match value {
            "autoscaling:EC2_INSTANCE_LAUNCHING" => Some(Transition::Launch),
            "autoscaling:EC2_INSTANCE_TERMINATING" => Some(Transition::Terminate),
            _ => None,
        }
    }

    pub fn as_wire(self) -> &'static str {
        match self {
            Transition::Launch => "autoscaling:EC2_INSTANCE_LAUNCHING",
            Transition::Terminate => "autoscaling:EC2_INSTANCE_TERMINATING",
        }
    }
}

impl std::fmt::Display for Transition {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Transition::Launch => "launch",
            Transition::Terminate => "terminate",
        })
    }
}

/// One pending lifecycle action: what to do it for, and what identifies it
/// to `CompleteLifecycleAction`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LifecycleAction {
    pub transition: Transition,
    pub group: String,
    pub hook: String,
    pub instance_id: String,
    /// Auto Scaling's token for this action; absent only in hand-written
    /// events (the instance id then identifies the action).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
    /// When Auto Scaling started the action.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub time: Option<DateTime<Utc>>,
    /// `EC2`, `AutoScalingGroup` or `WarmPool`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub origin: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub destination: Option<String>,
}

impl LifecycleAction {
    /// A warm-pool transition: the instance goes into the warm pool (to be
    /// stopped) or leaves it to be terminated, and never serves meanwhile.
    /// Its launch into the group is a separate action with
    /// `Origin=WarmPool`, `Destination=AutoScalingGroup`.
    pub fn is_warm_pool_only(&self) -> bool {
        let warm = |v: &Option<String>| v.as_deref() == Some("WarmPool");
        match self.transition {
            Transition::Launch => warm(&self.destination),
            Transition::Terminate => warm(&self.origin),
        }
    }
}

/// What an event asks of the lifecycle hook.
#[derive(Debug, Clone, PartialEq)]
pub enum Request {
    Action(LifecycleAction),
    /// A valid event that asks for no work; the reason is logged.
    Ignore(String),
}

/// The fields of a lifecycle action, as the notification message and the
/// EventBridge detail both spell them.
#[derive(Debug, Deserialize)]
struct Wire {
    #[serde(rename = "LifecycleTransition")]
    transition: Option<String>,
    #[serde(rename = "AutoScalingGroupName")]
    group: Option<String>,
    #[serde(rename = "LifecycleHookName")]
    hook: Option<String>,
    #[serde(rename = "EC2InstanceId")]
    instance_id: Option<String>,
    #[serde(rename = "LifecycleActionToken")]
    token: Option<String>,
    #[serde(rename = "Time")]
    time: Option<String>,
    #[serde(rename = "Origin")]
    origin: Option<String>,
    #[serde(rename = "Destination")]
    destination: Option<String>,
    /// Set on Auto Scaling's plain notifications (not lifecycle actions).
    #[serde(rename = "Event")]
    event: Option<String>,
}

/// Reads the request from a delivered payload.
pub fn parse(payload: &Payload) -> Result<Request, EventError> {
    match payload {
        Payload::NoOp { reason } => Ok(Request::Ignore(reason.clone())),
        Payload::EventBridge(event) => {
            let detail_type = event.detail_type.as_str();
            let source = event.source.as_str();
            let expected = match detail_type {
                LAUNCH_DETAIL_TYPE => Transition::Launch,
                TERMINATE_DETAIL_TYPE => Transition::Terminate,
                _ if source == AUTOSCALING_SOURCE => {
                    return Ok(Request::Ignore(format!(
                        "Auto Scaling event {detail_type:?} is not a lifecycle action"
                    )));
                }
                _ => {
                    return Err(EventError::Invalid(format!(
                        "lifecycle-hook handles Auto Scaling lifecycle actions, not {detail_type:?} events from {source:?}"
                    )));
                }
            };
            let wire = wire(&event.detail, "EventBridge detail")?;
            let mut action = action(wire, event.time)?;
            if action.transition != expected {
                return Err(EventError::Invalid(format!(
                    "detail-type {detail_type:?} does not match LifecycleTransition {:?}",
                    action.transition.as_wire()
                )));
            }
            action.time = action.time.or(event.time);
            Ok(Request::Action(action))
        }
        Payload::Direct(value) => {
            let wire = wire(value, "lifecycle action message")?;
            if wire.transition.is_none()
                && let Some(event) = &wire.event
            {
                return Ok(Request::Ignore(format!(
                    "Auto Scaling notification {event:?} is not a lifecycle action"
                )));
            }
            Ok(Request::Action(action(wire, None)?))
        }
    }
}

fn wire(value: &Value, context: &'static str) -> Result<Wire, EventError> {
    if !value.is_object() {
        return Err(EventError::Invalid(format!(
            "the {context} must be a JSON object with LifecycleTransition, AutoScalingGroupName, LifecycleHookName and EC2InstanceId"
        )));
    }
    serde_json::from_value(value.clone()).map_err(|source| EventError::Shape { context, source })
}

fn action(wire: Wire, fallback_time: Option<DateTime<Utc>>) -> Result<LifecycleAction, EventError> {
    let transition_text = required(wire.transition, "LifecycleTransition")?;
    let transition = Transition::from_wire(&transition_text).ok_or_else(|| {
        EventError::Invalid(format!(
            "LifecycleTransition {transition_text:?} is not autoscaling:EC2_INSTANCE_LAUNCHING or autoscaling:EC2_INSTANCE_TERMINATING"
        ))
    })?;
    let group = name_field(
        required(wire.group, "AutoScalingGroupName")?,
        "AutoScalingGroupName",
    )?;
    let hook = name_field(required(wire.hook, "LifecycleHookName")?, "LifecycleHookName")?;
    let instance_id = required(wire.instance_id, "EC2InstanceId")?;
    if !is_instance_id(&instance_id) {
        return Err(EventError::Invalid(format!(
            "EC2InstanceId {instance_id:?} is not an instance id (i- and 8 or 17 hex digits)"
        )));
    }
    let token = match wire.token.map(|t| t.trim().to_owned()).filter(|t| !t.is_empty()) {
        Some(t) if t.len() > 36 || !t.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') => {
            return Err(EventError::Invalid(format!(
                "LifecycleActionToken {:?} is not a token (up to 36 letters, digits and '-')",
                clip(&t)
            )));
        }
        other => other,
    };
    let time = match wire.time {
        None => fallback_time,
        Some(t) => Some(
            DateTime::parse_from_rfc3339(&t)
                .map_err(|e| {
                    EventError::Invalid(format!("Time {:?} is not an RFC 3339 time: {e}", clip(&t)))
                })?
                .with_timezone(&Utc),
        ),
    };
    Ok(LifecycleAction {
        transition,
        group,
        hook,
        instance_id,
        token,
        time,
        origin: wire.origin,
        destination: wire.destination,
    })
}

fn required(value: Option<String>, field: &'static str) -> Result<String, EventError> {
    value
        .map(|v| v.trim().to_owned())
        .filter(|v| !v.is_empty())
        .ok_or_else(|| EventError::Invalid(format!("the lifecycle action has no {field}")))
}

/// Group and hook names: 1 to 255 characters, as Auto Scaling allows.
fn name_field(value: String, field: &'static str) -> Result<String, EventError> {
    if value.chars().count() > 255 || value.chars().any(char::is_control) {
        return Err(EventError::Invalid(format!(
            "{field} {:?} is not a valid name (1 to 255 characters, no control characters)",
            clip(&value)
        )));
    }
    Ok(value)
}

pub fn is_instance_id(id: &str) -> bool {
    is_resource_id(id, "i-")
}

/// An EC2 resource id: `prefix` and 8 or 17 lower-case hex digits.
pub fn is_resource_id(id: &str, prefix: &str) -> bool {
    id.strip_prefix(prefix).is_some_and(|hex| {
        (hex.len() == 8 || hex.len() == 17)
            && hex
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    })
}

/// Hostile input can be megabytes long; errors quote only its start.
fn clip(value: &str) -> String {
    crate::error::clip(value, 80)
}

#[cfg(test)]
#[path = "tests/action.rs"]
mod tests;
