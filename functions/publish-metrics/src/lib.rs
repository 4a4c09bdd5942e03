//! publish-metrics: publishes Redis, MongoDB and PostgreSQL health to CloudWatch (SPEC item 7).
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

pub const NAME: &str = "publish-metrics";

pub struct PublishMetrics;

impl Function for PublishMetrics {
    const NAME: &'static str = NAME;
    type Config = ();

    fn config(_env: &impl Env) -> Result<(), ConfigError> {
        Ok(())
    }

    fn new(_config: (), _sdk: &SdkConfig) -> Self {
        PublishMetrics
    }

    async fn handle(&self, _event: LambdaEvent<Value>) -> Result<Value, Error> {
        Err(not_implemented(
            NAME,
            "metric collection is built in the metrics issue; no metric has been published",
        ))
    }
}
