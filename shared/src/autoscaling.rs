//! The Auto Scaling adapter: [`LifecycleApi`] on the AWS SDK's Auto Scaling
//! client. "No active Lifecycle Action found" (the action was completed
//! already, or timed out) is an answer here, not an error: a duplicate
//! delivery meets it every time.

use std::time::Duration;

use aws_sdk_autoscaling::Client;
use aws_sdk_autoscaling::error::ProvideErrorMetadata;
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_runtime_api::http::Response as HttpResponse;

use crate::error::Error;
use crate::lifecycle::action::LifecycleAction;
use crate::lifecycle::ports::{Accepted, ActionResult, LifecycleApi};

#[derive(Debug, Clone)]
pub struct AutoScaling {
    client: Client,
}

impl AutoScaling {
    pub fn new(client: Client) -> Self {
        AutoScaling { client }
    }

    pub fn from_conf(config: &aws_config::SdkConfig) -> Self {
        AutoScaling::new(Client::new(config))
    }
}

/// The action is gone: Auto Scaling answers ValidationError "No active
/// Lifecycle Action found with token ..." (or "... with instance ID ...").
fn not_active<E>(err: &SdkError<E, HttpResponse>) -> Option<String>
where
    E: ProvideErrorMetadata,
{
    let service = err.as_service_error()?;
    let message = service.message()?;
    (service.code() == Some("ValidationError") && message.contains("No active Lifecycle Action"))
        .then(|| message.to_owned())
}

fn accepted<T, E>(
    operation: &'static str,
    result: Result<T, SdkError<E, HttpResponse>>,
) -> Result<Accepted, Error>
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    match result {
        Ok(_) => Ok(Accepted::Yes),
        Err(err) => match not_active(&err) {
            Some(message) => Ok(Accepted::NotActive(message)),
            None => Err(Error::aws(operation, err)),
        },
    }
}

impl LifecycleApi for AutoScaling {
    async fn complete(&self, action: &LifecycleAction, result: ActionResult) -> Result<Accepted, Error> {
        let sent = self
            .client
            .complete_lifecycle_action()
            .auto_scaling_group_name(&action.group)
            .lifecycle_hook_name(&action.hook)
            .instance_id(&action.instance_id)
            .set_lifecycle_action_token(action.token.clone())
            .lifecycle_action_result(result.as_str())
            .send()
            .await;
        accepted("autoscaling:CompleteLifecycleAction", sent)
    }

    async fn heartbeat(&self, action: &LifecycleAction) -> Result<Accepted, Error> {
        let sent = self
            .client
            .record_lifecycle_action_heartbeat()
            .auto_scaling_group_name(&action.group)
            .lifecycle_hook_name(&action.hook)
            .instance_id(&action.instance_id)
            .set_lifecycle_action_token(action.token.clone())
            .send()
            .await;
        accepted("autoscaling:RecordLifecycleActionHeartbeat", sent)
    }

    async fn heartbeat_timeout(&self, group: &str, hook: &str) -> Result<Option<Duration>, Error> {
        let out = self
            .client
            .describe_lifecycle_hooks()
            .auto_scaling_group_name(group)
            .lifecycle_hook_names(hook)
            .send()
            .await
            .map_err(|e| Error::aws("autoscaling:DescribeLifecycleHooks", e))?;
        Ok(out
            .lifecycle_hooks()
            .iter()
            .find(|h| h.lifecycle_hook_name() == Some(hook))
            .and_then(|h| h.heartbeat_timeout())
            .and_then(|secs| u64::try_from(secs).ok())
            .map(Duration::from_secs))
    }
}
