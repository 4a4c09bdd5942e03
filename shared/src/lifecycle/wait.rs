//! Waiting on EC2 (a volume being created or attached, an instance still
//! starting) without letting the lifecycle action time out meanwhile, and
//! without running past the invocation's deadline.
//!
//! Auto Scaling holds an instance in its wait state for the hook's heartbeat
//! timeout (30 s to 2 h) from the start of the action, then applies the
//! hook's default result. The waiter records a heartbeat
//! (`RecordLifecycleActionHeartbeat`) once a third of that timeout has
//! passed since the action started or since the last heartbeat, which leaves
//! two polls' worth of room before the action would expire. The timeout is
//! read from the hook once, when the first wait begins.

use std::time::Duration;

use chrono::Utc;
use tokio::time::Instant;

use super::action::LifecycleAction;
use super::ports::{Accepted, LifecycleApi};
use crate::error::Error;
use crate::invocation::Deadline;

/// Heartbeat interval when the hook's timeout cannot be read: safe for the
/// shortest timeout Auto Scaling allows (30 s).
const FALLBACK_INTERVAL: Duration = Duration::from_secs(10);

pub struct Waiter<'a, L> {
    lifecycle: &'a L,
    action: &'a LifecycleAction,
    deadline: &'a Deadline,
    poll: Duration,
    /// No heartbeats in a dry run: it changes nothing.
    dry_run: bool,
    last_beat: Instant,
    interval: Option<Duration>,
    pub heartbeats: u32,
    pub notes: Vec<String>,
}

impl<'a, L: LifecycleApi> Waiter<'a, L> {
    pub fn new(
        lifecycle: &'a L,
        action: &'a LifecycleAction,
        deadline: &'a Deadline,
        poll: Duration,
        dry_run: bool,
    ) -> Self {
        // The action's clock started when Auto Scaling sent the event, not
        // when this invocation began (an SQS message may wait in the queue).
        let now = Instant::now();
        let age = action
            .time
            .and_then(|t| (Utc::now() - t).to_std().ok())
            .unwrap_or_default();
        Waiter {
            lifecycle,
            action,
            deadline,
            poll,
            dry_run,
            last_beat: now.checked_sub(age).unwrap_or(now),
            interval: None,
            heartbeats: 0,
            notes: Vec::new(),
        }
    }

    /// Waits one poll interval before `what` is checked again; a retryable
    /// error when the invocation has no time left for it.
    pub async fn pause(&mut self, what: &str) -> Result<(), Error> {
        if !self.deadline.allows(self.poll) {
            return Err(Error::Incomplete {
                detail: format!("the invocation's deadline was reached while waiting for {what}"),
                retryable: true,
            });
        }
        self.beat_if_due().await;
        tokio::time::sleep(self.poll).await;
        Ok(())
    }

    async fn beat_if_due(&mut self) {
        let interval = match self.interval {
            Some(i) => i,
            None => {
                let i = self.read_interval().await;
                self.interval = Some(i);
                i
            }
        };
        if self.last_beat.elapsed() >= interval {
            self.beat().await;
        }
    }

    async fn read_interval(&mut self) -> Duration {
        match self
            .lifecycle
            .heartbeat_timeout(&self.action.group, &self.action.hook)
            .await
        {
            Ok(Some(timeout)) => (timeout / 3).max(Duration::from_secs(1)),
            Ok(None) => FALLBACK_INTERVAL,
            Err(err) => {
                tracing::warn!(group = %self.action.group, hook = %self.action.hook, error = %err, "cannot read the hook's heartbeat timeout; heartbeating every 10 s");
                FALLBACK_INTERVAL
            }
        }
    }

    /// Whether Auto Scaling still holds the action, asked with a heartbeat
    /// (which also restarts its timeout): `Some(message)` when it does not.
    /// A dry run does not ask, since a heartbeat changes the action.
    pub async fn still_active(&mut self) -> Result<Option<String>, Error> {
        if self.dry_run {
            return Ok(None);
        }
        match self.lifecycle.heartbeat(self.action).await? {
            Accepted::Yes => {
                self.heartbeats += 1;
                self.last_beat = Instant::now();
                Ok(None)
            }
            Accepted::NotActive(message) => Ok(Some(message)),
        }
    }

    /// Records a heartbeat now; best effort (a failure is logged and noted,
    /// and the work goes on).
    pub async fn beat(&mut self) {
        if self.dry_run {
            return;
        }
        self.last_beat = Instant::now();
        match self.lifecycle.heartbeat(self.action).await {
            Ok(Accepted::Yes) => {
                self.heartbeats += 1;
                tracing::info!(instance_id = %self.action.instance_id, group = %self.action.group, hook = %self.action.hook, "lifecycle action heartbeat recorded");
            }
            Ok(Accepted::NotActive(message)) => {
                tracing::warn!(instance_id = %self.action.instance_id, message = %message, "heartbeat refused: the lifecycle action is no longer active");
                self.notes.push(format!(
                    "heartbeat refused, the action is no longer active: {message}"
                ));
            }
            Err(err) => {
                tracing::warn!(instance_id = %self.action.instance_id, error = %err, "heartbeat failed");
                self.notes.push(format!("heartbeat failed: {err}"));
            }
        }
    }
}
