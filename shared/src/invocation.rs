//! What a handler knows about the invocation it serves (its request id and
//! deadline), and the one loop that runs a function's work over every
//! delivery an event carries, shaping the response AWS expects: the work's
//! own JSON summary, or for an SQS batch the `batchItemFailures` list.

use std::future::Future;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use lambda_runtime::Context;
use serde_json::{Value, json};
use tokio::time::Instant;

use crate::envelope::{self, Delivery, Envelope, Payload};
use crate::error::Error;

/// When an invocation must stop starting new work (soft) and when anything
/// still in flight is abandoned so the handler can still answer (hard).
///
/// The soft margin is a tenth of the invocation's time, between 2 and 30
/// seconds; the hard margin a fortieth, between 0.5 and 5 seconds. A work item
/// cut off at the hard limit is reported as not done and, since every step is
/// idempotent, is simply done again by the next run.
#[derive(Debug, Clone, Copy)]
pub struct Deadline {
    soft: Instant,
    hard: Instant,
}

impl Deadline {
    /// A deadline `total` from now.
    pub fn after(total: Duration) -> Self {
        let now = Instant::now();
        let soft_margin = (total / 10).clamp(Duration::from_secs(2), Duration::from_secs(30));
        let hard_margin = (total / 40).clamp(Duration::from_millis(500), Duration::from_secs(5));
        Deadline {
            soft: now + total.saturating_sub(soft_margin),
            hard: now + total.saturating_sub(hard_margin),
        }
    }

    /// From the runtime's deadline in milliseconds since the Unix epoch. A
    /// missing deadline (0) is treated as Lambda's maximum of 15 minutes.
    pub fn from_epoch_millis(deadline_ms: u64) -> Self {
        if deadline_ms == 0 {
            return Deadline::after(Duration::from_secs(900));
        }
        let now_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0);
        Deadline::after(Duration::from_millis(deadline_ms.saturating_sub(now_ms)))
    }

    /// Explicit instants, for tests.
    pub fn at(soft: Instant, hard: Instant) -> Self {
        Deadline { soft, hard }
    }

    /// No new work should be started.
    pub fn should_stop(&self) -> bool {
        Instant::now() >= self.soft
    }

    /// Whether `wait` still fits before new work must stop.
    pub fn allows(&self, wait: Duration) -> bool {
        Instant::now() + wait < self.soft
    }

    /// Runs `work` unless the hard limit passes first (then `None`).
    pub async fn bound<F: Future>(&self, work: F) -> Option<F::Output> {
        tokio::time::timeout_at(self.hard, work).await.ok()
    }

    /// Runs fallible `work` bounded by the hard limit; running out of time
    /// is a retryable error naming `what` was cut short.
    pub async fn within<T>(
        &self,
        what: &str,
        work: impl Future<Output = Result<T, Error>>,
    ) -> Result<T, Error> {
        self.bound(work).await.unwrap_or_else(|| {
            Err(Error::Incomplete {
                detail: format!("the invocation's deadline was reached during {what}"),
                retryable: true,
            })
        })
    }
}

/// The invocation a handler is serving.
#[derive(Debug, Clone)]
pub struct Invocation {
    /// Lambda's request id: unique per invocation, and used to mark what this
    /// invocation created.
    pub request_id: String,
    pub deadline: Deadline,
}

impl Invocation {
    pub fn from_context(context: &Context) -> Self {
        Invocation {
            request_id: context.request_id.clone(),
            deadline: Deadline::from_epoch_millis(context.deadline),
        }
    }
}

/// Runs `work` on every delivery in `event`.
///
/// - A single delivery returns the work's result (no-op payloads return a
///   small `{"ignored": reason}` summary after logging the reason).
/// - An SQS batch is handled message by message, in order, and returns
///   `{"batchItemFailures": [...]}` for Lambda's ReportBatchItemFailures: a
///   failed message stays on the queue to be retried (and reaches the
///   dead-letter queue after the queue's maxReceiveCount), the others are
///   deleted. Once a message of a FIFO message group fails, the later
///   messages of that group are failed too without being run, so that order
///   within a group is never broken. Messages not started before the
///   deadline's soft limit are failed too, to be delivered again.
pub async fn dispatch<F, Fut>(
    function: &'static str,
    event: Value,
    deadline: &Deadline,
    mut work: F,
) -> Result<Value, Error>
where
    F: FnMut(Delivery) -> Fut,
    Fut: Future<Output = Result<Value, Error>>,
{
    match envelope::open(event)? {
        Envelope::Single(delivery) => {
            if let Payload::NoOp { reason } = &delivery.payload {
                tracing::info!(function, route = %delivery.route(), reason = %reason, "ignored event");
                return Ok(json!({ "function": function, "ignored": reason }));
            }
            work(*delivery).await
        }
        Envelope::Sqs(items) => {
            let mut failures: Vec<Value> = Vec::new();
            let mut failed_groups: Vec<String> = Vec::new();
            for item in items {
                let blocked = item
                    .message_group_id
                    .as_ref()
                    .is_some_and(|g| failed_groups.contains(g));
                let outcome = if blocked {
                    Err("an earlier message of its FIFO group failed".to_owned())
                } else if deadline.should_stop() {
                    Err("not started: the invocation's deadline is near".to_owned())
                } else {
                    match item.delivery {
                        Err(err) => Err(err.to_string()),
                        Ok(delivery) => {
                            if let Payload::NoOp { reason } = &delivery.payload {
                                tracing::info!(function, message_id = %item.message_id, reason = %reason, "ignored message");
                                Ok(())
                            } else {
                                let route = delivery.route();
                                match work(delivery).await {
                                    Ok(summary) => {
                                        tracing::info!(function, message_id = %item.message_id, route = %route, summary = %summary, "message done");
                                        Ok(())
                                    }
                                    Err(err) => Err(format!("{err} [{}]", err.error_type())),
                                }
                            }
                        }
                    }
                };
                if let Err(reason) = outcome {
                    tracing::error!(function, message_id = %item.message_id, reason = %reason, "message failed; left on the queue");
                    if let Some(group) = item.message_group_id {
                        failed_groups.push(group);
                    }
                    failures.push(json!({ "itemIdentifier": item.message_id }));
                }
            }
            Ok(json!({ "batchItemFailures": failures }))
        }
    }
}

#[cfg(test)]
#[path = "tests/invocation.rs"]
mod tests;
