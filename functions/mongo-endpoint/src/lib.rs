//! mongo-endpoint: points a replica set's Route 53 record at its primary (SPEC item 5).
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

pub const NAME: &str = "mongo-endpoint";

pub struct MongoEndpoint;

impl Function for MongoEndpoint {
    const NAME: &'static str = NAME;
    type Config = ();

    fn config(_env: &impl Env) -> Result<(), ConfigError> {
        Ok(())
    }

    fn new(_config: (), _sdk: &SdkConfig) -> Self {
        MongoEndpoint
    }

    async fn handle(&self, _event: LambdaEvent<Value>) -> Result<Value, Error> {
        Err(not_implemented(
            NAME,
            "primary discovery and the record update are built in the MongoDB issue; no record has been changed",
        ))
    }
}
