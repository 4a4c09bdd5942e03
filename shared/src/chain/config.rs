//! The settings every function that talks to Redis nodes reads the same
//! way: credentials, timeouts and the promotion policy.

use std::time::Duration;

use super::plan::Policy;
use crate::config::{Env, number};
use crate::error::ConfigError;
use crate::redis_node::RedisSettings;

/// `REDIS_USERNAME`, `REDIS_PASSWORD` (both optional: AUTH only when set),
/// `REDIS_CONNECT_TIMEOUT_MS` (default 1000), `REDIS_COMMAND_TIMEOUT_MS`
/// (default 2000).
pub fn redis_settings(env: &impl Env) -> Result<RedisSettings, ConfigError> {
    let optional = |name| env.get(name).filter(|v: &String| !v.is_empty());
    let username = optional("REDIS_USERNAME");
    let password = optional("REDIS_PASSWORD");
    if username.is_some() && password.is_none() {
        return Err(ConfigError::Invalid {
            name: "REDIS_USERNAME",
            value: username.unwrap_or_default(),
            reason: "an ACL user needs REDIS_PASSWORD as well".to_owned(),
        });
    }
    Ok(RedisSettings {
        connect_timeout: Duration::from_millis(number(env, "REDIS_CONNECT_TIMEOUT_MS", 1000, 50, 60_000)?),
        command_timeout: Duration::from_millis(number(env, "REDIS_COMMAND_TIMEOUT_MS", 2000, 50, 60_000)?),
        username,
        password,
    })
}

/// `REDIS_MAX_LINK_DOWN_SECONDS` (default 120): the longest a replica's
/// link to a dead head may have been down for it to be promoted, when the
/// event does not say when the head went down.
pub fn policy(env: &impl Env) -> Result<Policy, ConfigError> {
    Ok(Policy {
        max_link_down_seconds: number(env, "REDIS_MAX_LINK_DOWN_SECONDS", 120, 1, 86_400)?,
    })
}
