//! Unwrapping the delivery shapes AWS uses to hand an event to a function,
//! so that each function sees its own payload and nothing else:
//!
//! - direct: an `Invoke` call or an EventBridge target with constant input;
//! - EventBridge: `{"detail-type", "source", "detail", ...}`;
//! - SNS: Lambda's SNS trigger (`Records[0].Sns.Message` holds the text);
//! - SQS: Lambda's SQS trigger, a batch whose bodies are any of the above,
//!   including the SNS notification envelope that a non-raw SNS to SQS
//!   subscription produces.
//!
//! Payloads that ask for no action (Auto Scaling's `TEST_NOTIFICATION`, SNS
//! subscription confirmations) come out as [`Payload::NoOp`] with the reason,
//! so every function ignores them the same way.

use aws_lambda_events::event::eventbridge::EventBridgeEvent;
use aws_lambda_events::event::sns::{SnsEvent, SnsMessage};
use aws_lambda_events::event::sqs::SqsEvent;
use serde::Serialize;
use serde_json::Value;

use crate::error::{EventError, clip};

/// How deep wrappers may nest (SQS around SNS around the payload is two).
const MAX_DEPTH: usize = 3;

/// One wrapper a payload came through, outermost first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "via", rename_all = "lowercase")]
pub enum Hop {
    Sqs { message_id: String },
    Sns { message_id: String, topic_arn: String },
}

/// What is left after the wrappers are removed.
#[derive(Debug, Clone, PartialEq)]
pub enum Payload {
    /// An EventBridge event: a schedule, an AWS service event, a custom event.
    EventBridge(EventBridgeEvent<Value>),
    /// Anything else: constant input, a direct invocation's payload.
    Direct(Value),
    /// A message that asks for no action; the reason is for the log.
    NoOp { reason: String },
}

/// One payload and the way it came.
#[derive(Debug, Clone, PartialEq)]
pub struct Delivery {
    pub hops: Vec<Hop>,
    pub payload: Payload,
}

impl Delivery {
    /// A short description of the route, for logs: `sqs>sns>eventbridge`.
    pub fn route(&self) -> String {
        let mut parts: Vec<&str> = self
            .hops
            .iter()
            .map(|h| match h {
                Hop::Sqs { .. } => "sqs",
                Hop::Sns { .. } => "sns",
            })
            .collect();
        parts.push(match self.payload {
            Payload::EventBridge(_) => "eventbridge",
            Payload::Direct(_) => "direct",
            Payload::NoOp { .. } => "noop",
        });
        parts.join(">")
    }
}

/// One message of an SQS batch. A body that cannot be understood is an error
/// for that message alone; the rest of the batch goes on.
#[derive(Debug)]
pub struct SqsItem {
    pub message_id: String,
    /// FIFO queues only: messages of one group must be handled in order.
    pub message_group_id: Option<String>,
    pub delivery: Result<Delivery, EventError>,
}

/// An opened event.
#[derive(Debug)]
pub enum Envelope {
    /// Direct, EventBridge or SNS (Lambda's SNS trigger delivers one record).
    Single(Box<Delivery>),
    /// An SQS batch, in queue order.
    Sqs(Vec<SqsItem>),
}

/// Removes the delivery wrappers from an invocation's event.
pub fn open(event: Value) -> Result<Envelope, EventError> {
    if let Some(source) = first_record_source(&event) {
        match source.as_str() {
            "aws:sqs" => return open_sqs(event).map(Envelope::Sqs),
            "aws:sns" => {
                return open_sns_trigger(event, Vec::new(), 0).map(|d| Envelope::Single(Box::new(d)));
            }
            other => {
                return Err(EventError::Invalid(format!(
                    "events from {:?} are not handled by this function",
                    clip(other, 80)
                )));
            }
        }
    }
    classify(event, Vec::new(), 0).map(|d| Envelope::Single(Box::new(d)))
}

/// `Records[0].eventSource` (SQS, S3, ...) or `Records[0].EventSource` (SNS).
fn first_record_source(event: &Value) -> Option<String> {
    let first = event.get("Records")?.as_array()?.first()?;
    first
        .get("eventSource")
        .or_else(|| first.get("EventSource"))
        .and_then(Value::as_str)
        .map(str::to_owned)
}

fn open_sqs(event: Value) -> Result<Vec<SqsItem>, EventError> {
    let batch: SqsEvent = serde_json::from_value(event).map_err(|source| EventError::Shape {
        context: "SQS event",
        source,
    })?;
    Ok(batch
        .records
        .into_iter()
        .enumerate()
        .map(|(index, record)| {
            let message_id = record.message_id.clone().unwrap_or_default();
            let message_group_id = record.attributes.get("MessageGroupId").cloned();
            let delivery = if message_id.is_empty() {
                Err(EventError::Invalid(format!(
                    "SQS record {index} has no messageId"
                )))
            } else {
                let hop = Hop::Sqs {
                    message_id: message_id.clone(),
                };
                match record.body.as_deref() {
                    None => Err(EventError::Invalid(format!(
                        "SQS message {message_id} has no body"
                    ))),
                    Some(body) => serde_json::from_str::<Value>(body)
                        .map_err(|source| EventError::InnerNotJson {
                            context: "SQS message body",
                            source,
                        })
                        .and_then(|inner| classify(inner, vec![hop], 1)),
                }
            };
            SqsItem {
                message_id,
                message_group_id,
                delivery,
            }
        })
        .collect())
}

fn open_sns_trigger(event: Value, hops: Vec<Hop>, depth: usize) -> Result<Delivery, EventError> {
    let sns: SnsEvent = serde_json::from_value(event).map_err(|source| EventError::Shape {
        context: "SNS event",
        source,
    })?;
    let count = sns.records.len();
    let Some(record) = sns.records.into_iter().next().filter(|_| count == 1) else {
        return Err(EventError::Invalid(format!(
            "an SNS event carries exactly one record, this one has {count}"
        )));
    };
    open_sns_message(record.sns, hops, depth)
}

fn open_sns_message(message: SnsMessage, mut hops: Vec<Hop>, depth: usize) -> Result<Delivery, EventError> {
    hops.push(Hop::Sns {
        message_id: message.message_id,
        topic_arn: message.topic_arn,
    });
    let inner: Value = serde_json::from_str(&message.message).map_err(|source| EventError::InnerNotJson {
        context: "SNS message",
        source,
    })?;
    classify(inner, hops, depth + 1)
}

fn classify(value: Value, hops: Vec<Hop>, depth: usize) -> Result<Delivery, EventError> {
    if depth > MAX_DEPTH {
        return Err(EventError::Invalid(format!(
            "event is wrapped more than {MAX_DEPTH} levels deep"
        )));
    }
    let field = |name: &str| value.get(name).and_then(Value::as_str);

    // The SNS notification envelope, as SNS puts it in an SQS body (or an
    // HTTP POST) when raw message delivery is off.
    if let (Some(kind), Some(_), Some(_)) = (field("Type"), field("TopicArn"), field("Message")) {
        return match kind {
            "Notification" => {
                let message: SnsMessage =
                    serde_json::from_value(value).map_err(|source| EventError::Shape {
                        context: "SNS notification",
                        source,
                    })?;
                open_sns_message(message, hops, depth)
            }
            "SubscriptionConfirmation" | "UnsubscribeConfirmation" => Ok(Delivery {
                hops,
                payload: Payload::NoOp {
                    reason: format!("SNS {kind} message"),
                },
            }),
            other => Err(EventError::Invalid(format!("unknown SNS message type {other:?}"))),
        };
    }

    if value.get("Records").is_some() && first_record_source(&value).as_deref() == Some("aws:sns") {
        return open_sns_trigger(value, hops, depth);
    }

    if field("detail-type").is_some() && field("source").is_some() {
        let event: EventBridgeEvent<Value> =
            serde_json::from_value(value).map_err(|source| EventError::Shape {
                context: "EventBridge event",
                source,
            })?;
        return Ok(Delivery {
            hops,
            payload: Payload::EventBridge(event),
        });
    }

    // Auto Scaling sends this when a notification target or lifecycle hook
    // is configured, to SNS and SQS alike.
    if field("Event") == Some("autoscaling:TEST_NOTIFICATION") {
        return Ok(Delivery {
            hops,
            payload: Payload::NoOp {
                reason: "autoscaling:TEST_NOTIFICATION".to_owned(),
            },
        });
    }

    Ok(Delivery {
        hops,
        payload: Payload::Direct(value),
    })
}

/// The input of a scheduled function that takes nothing but a dry-run
/// switch: an empty object, `null`, or `{"dry_run": true}` as constant
/// input or direct payload, or an EventBridge event (the schedule) whose
/// detail is one of those. Anything else is an error naming `context`.
pub fn dry_run_input(payload: &Payload, context: &'static str) -> Result<bool, EventError> {
    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Input {
        #[serde(default)]
        dry_run: bool,
    }
    let value = match payload {
        Payload::Direct(value) => value,
        Payload::EventBridge(event) => &event.detail,
        Payload::NoOp { reason } => return Err(EventError::Invalid(format!("nothing to do: {reason}"))),
    };
    if value.as_object().is_some_and(|o| o.is_empty()) || value.is_null() {
        return Ok(false);
    }
    // serde would read `[true]` as the struct's fields in order.
    if !value.is_object() {
        return Err(EventError::Invalid(format!(
            "{context} must be a JSON object such as {{\"dry_run\": true}}, not {}",
            json_kind(value)
        )));
    }
    let input: Input =
        serde_json::from_value(value.clone()).map_err(|source| EventError::Shape { context, source })?;
    Ok(input.dry_run)
}

/// What kind of JSON value `value` is, for messages.
pub fn json_kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
#[path = "tests/envelope.rs"]
mod tests;
