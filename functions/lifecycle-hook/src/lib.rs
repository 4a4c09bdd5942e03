//! lifecycle-hook: restores data volumes on launch, joins and leaves cluster roles, completes Auto Scaling lifecycle actions (SPEC item 3).
//!
//! Not built yet. The crate exists so the workspace, the deployment template
//! and `replay` know every function from the start; invoking it returns a
//! non-retryable `NotImplemented` error, never a success that did nothing.

use aws_config::SdkConfig;
use lambda_runtime::LambdaEvent;
use serde_json::Value;
use shared::config::Env;
use shared::function::{Function, not_implemented};
use shared::{ConfigError, Error};

pub const NAME: &str = "lifecycle-hook";

pub struct LifecycleHook;

impl Function for LifecycleHook {
    const NAME: &'static str = NAME;
    type Config = ();

    fn config(_env: &impl Env) -> Result<(), ConfigError> {
        Ok(())
    }

    fn new(_config: (), _sdk: &SdkConfig) -> Self {
        LifecycleHook
    }

    async fn handle(&self, _event: LambdaEvent<Value>) -> Result<Value, Error> {
        Err(not_implemented(
            NAME,
            "restore on launch, role join/leave and CompleteLifecycleAction are built in the lifecycle-hook issue; no lifecycle action has been completed or abandoned",
        ))
    }
}
