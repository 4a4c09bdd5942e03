//! The task queue adapter: [`TaskQueue`] on an SQS FIFO queue. Each task
//! goes to its set's message group (one set's tasks are delivered in order,
//! one at a time) with a deduplication id made of the instance, the
//! transition and the task, so SQS itself drops the copy a duplicate
//! lifecycle event would send within its five-minute window.

use aws_sdk_sqs::Client;

use crate::error::Error;
use crate::mongo::ports::{Enqueued, TaskQueue};
use crate::mongo::task::Task;

#[derive(Debug, Clone)]
pub struct TaskQueueSqs {
    client: Client,
    queue_url: String,
}

impl TaskQueueSqs {
    pub fn new(client: Client, queue_url: impl Into<String>) -> Self {
        TaskQueueSqs {
            client,
            queue_url: queue_url.into(),
        }
    }

    pub fn from_conf(config: &aws_config::SdkConfig, queue_url: impl Into<String>) -> Self {
        TaskQueueSqs::new(Client::new(config), queue_url)
    }
}

impl TaskQueue for TaskQueueSqs {
    async fn enqueue(&self, task: &Task) -> Result<Enqueued, Error> {
        let deduplication_id = task.deduplication_id();
        let out = self
            .client
            .send_message()
            .queue_url(&self.queue_url)
            .message_body(task.to_json())
            .message_group_id(task.group_id())
            .message_deduplication_id(&deduplication_id)
            .send()
            .await
            .map_err(|e| Error::aws("sqs:SendMessage", e))?;
        let message_id = out.message_id().unwrap_or_default().to_owned();
        tracing::info!(task = %task.kind, set = %task.set, host = %task.host, message_id = %message_id, deduplication_id = %deduplication_id, "task enqueued");
        Ok(Enqueued {
            message_id,
            deduplication_id,
        })
    }
}

/// Checks `TASK_QUEUE_URL`: an SQS queue URL of a FIFO queue (only FIFO
/// keeps one set's tasks in order and deduplicates them).
pub fn fifo_queue_url(value: &str) -> Result<String, String> {
    let value = value.trim();
    let rest = value
        .strip_prefix("https://")
        .or_else(|| value.strip_prefix("http://"))
        .ok_or_else(|| {
            "not a queue URL (https://sqs.<region>.amazonaws.com/<account>/<name>.fifo)".to_owned()
        })?;
    let name = rest.rsplit('/').next().unwrap_or_default();
    if !rest.contains('/') || name.is_empty() {
        return Err("has no queue name after the account".to_owned());
    }
    if !name.ends_with(".fifo") {
        return Err(format!(
            "queue {name:?} is not a FIFO queue (its name ends in .fifo): a standard queue neither orders one set's tasks nor drops duplicates"
        ));
    }
    Ok(value.to_owned())
}

#[cfg(test)]
#[path = "tests/sqs.rs"]
mod tests;
