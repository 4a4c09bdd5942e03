//! Publishing a summary of what a function changed to the SNS topic in
//! `NOTIFY_TOPIC_ARN`, so people (email) and machines (SQS, chat) hear about
//! every snapshot run, purge, restore and failover.
//!
//! A notification is a report about work already done. If publishing fails
//! the work stays done: the failure is logged as an error and returned in the
//! summary, and the function does not fail (failing would make Lambda run the
//! work again only to report it again).

use std::future::Future;

use serde_json::{Map, Value};

use crate::error::Error;

/// Arrays longer than this are cut in notifications (never in results), so
/// that a purge of 10,000 snapshots stays far below SNS's 256 KiB limit.
pub const MAX_LISTED: usize = 50;

/// SNS subjects: at most 100 printable ASCII characters.
const MAX_SUBJECT: usize = 100;

/// Somewhere to send summaries.
pub trait Notifier: Sync {
    fn publish(&self, subject: &str, message: &str) -> impl Future<Output = Result<(), Error>> + Send;
}

/// The SNS topic, or nothing when no topic is configured.
#[derive(Debug, Clone)]
pub struct SnsNotifier {
    client: aws_sdk_sns::Client,
    topic_arn: Option<String>,
}

impl SnsNotifier {
    pub fn new(client: aws_sdk_sns::Client, topic_arn: Option<String>) -> Self {
        SnsNotifier { client, topic_arn }
    }

    /// The SNS client from the shared AWS configuration.
    pub fn from_conf(config: &aws_config::SdkConfig, topic_arn: Option<String>) -> Self {
        SnsNotifier::new(aws_sdk_sns::Client::new(config), topic_arn)
    }
}

impl Notifier for SnsNotifier {
    async fn publish(&self, subject: &str, message: &str) -> Result<(), Error> {
        let Some(topic) = &self.topic_arn else {
            return Ok(());
        };
        self.client
            .publish()
            .topic_arn(topic)
            .subject(clean_subject(subject))
            .message(message)
            .send()
            .await
            .map_err(|e| Error::aws("sns:Publish", e))?;
        Ok(())
    }
}

/// Publishes `summary` and returns the error text if that failed (for the
/// summary's `notify_error` field).
pub async fn send_summary(
    notifier: &impl Notifier,
    function: &str,
    subject: &str,
    summary: &Value,
) -> Option<String> {
    let message = truncate_lists(summary, MAX_LISTED).to_string();
    match notifier
        .publish(&format!("ninelives {function}: {subject}"), &message)
        .await
    {
        Ok(()) => None,
        Err(err) => {
            tracing::error!(function, error = %err, "could not publish the notification; the work itself is done");
            Some(err.to_string())
        }
    }
}

/// A copy of `value` in which every array longer than `max` keeps its first
/// `max` entries and gains a sibling `<key>_omitted` with the count cut.
pub fn truncate_lists(value: &Value, max: usize) -> Value {
    match value {
        Value::Object(map) => {
            let mut out = Map::new();
            for (key, v) in map {
                if let Value::Array(items) = v
                    && items.len() > max
                {
                    out.insert(
                        key.clone(),
                        Value::Array(items.iter().take(max).map(|i| truncate_lists(i, max)).collect()),
                    );
                    out.insert(format!("{key}_omitted"), Value::from(items.len() - max));
                } else {
                    out.insert(key.clone(), truncate_lists(v, max));
                }
            }
            Value::Object(out)
        }
        Value::Array(items) => Value::Array(items.iter().map(|i| truncate_lists(i, max)).collect()),
        other => other.clone(),
    }
}

fn clean_subject(subject: &str) -> String {
    let mut s: String = subject
        .chars()
        .map(|c| if c.is_ascii_graphic() || c == ' ' { c } else { '?' })
        .collect();
    s.truncate(MAX_SUBJECT);
    s
}

#[cfg(test)]
#[path = "tests/notify.rs"]
mod tests;
