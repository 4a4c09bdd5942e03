//! redis-failover: keeps a Redis replication chain with one head: promotes, re-attaches, fences (SPEC item 4).
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

pub const NAME: &str = "redis-failover";

pub struct RedisFailover;

impl Function for RedisFailover {
    const NAME: &'static str = NAME;
    type Config = ();

    fn config(_env: &impl Env) -> Result<(), ConfigError> {
        Ok(())
    }

    fn new(_config: (), _sdk: &SdkConfig) -> Self {
        RedisFailover
    }

    async fn handle(&self, _event: LambdaEvent<Value>) -> Result<Value, Error> {
        Err(not_implemented(
            NAME,
            "chain discovery, promotion and fencing are built in the Redis chain issue; no node or record has been changed",
        ))
    }
}
