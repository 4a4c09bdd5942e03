//! replset-tasks: applies queued MongoDB replica-set membership tasks to the primary (SPEC item 6).
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

pub const NAME: &str = "replset-tasks";

pub struct ReplsetTasks;

impl Function for ReplsetTasks {
    const NAME: &'static str = NAME;
    type Config = ();

    fn config(_env: &impl Env) -> Result<(), ConfigError> {
        Ok(())
    }

    fn new(_config: (), _sdk: &SdkConfig) -> Self {
        ReplsetTasks
    }

    async fn handle(&self, _event: LambdaEvent<Value>) -> Result<Value, Error> {
        Err(not_implemented(
            NAME,
            "replica-set tasks are applied once the MongoDB issue lands; every message of this batch is left on the queue",
        ))
    }
}
