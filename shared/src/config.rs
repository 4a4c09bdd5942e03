//! Reading settings from the environment, with an error that names the
//! variable for anything missing or malformed. Each function builds its own
//! typed `Config` from these helpers once, at start-up, before any AWS call.
//!
//! Lookups go through [`Env`] so tests can pass a map instead of mutating the
//! process environment (which is shared by every test thread).

use std::collections::HashMap;
use std::fmt::Display;
use std::str::FromStr;

use crate::error::ConfigError;

/// Where settings come from.
pub trait Env {
    /// The value of `name`, or `None` when unset. Empty values count as unset:
    /// templates often render an optional parameter as `""`.
    fn get(&self, name: &str) -> Option<String>;
}

/// The process environment.
#[derive(Debug, Clone, Copy, Default)]
pub struct ProcessEnv;

impl Env for ProcessEnv {
    fn get(&self, name: &str) -> Option<String> {
        std::env::var_os(name)
            .map(|v| v.to_string_lossy().trim().to_owned())
            .filter(|v| !v.is_empty())
    }
}

impl<S: std::hash::BuildHasher> Env for HashMap<&str, &str, S> {
    fn get(&self, name: &str) -> Option<String> {
        HashMap::get(self, name)
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty())
    }
}

/// `HOSTED_ZONE_ID`, when set: a hosted zone id (`Z...`, the
/// `/hostedzone/` prefix accepted).
pub fn hosted_zone(env: &impl Env) -> Result<Option<String>, ConfigError> {
    const NAME: &str = "HOSTED_ZONE_ID";
    env.get(NAME)
        .map(|v| {
            crate::dns::hosted_zone_id(&v).map_err(|reason| ConfigError::Invalid {
                name: NAME,
                value: v.clone(),
                reason,
            })
        })
        .transpose()
}

/// A value that must be present.
pub fn required(env: &impl Env, name: &'static str) -> Result<String, ConfigError> {
    env.get(name).ok_or(ConfigError::Missing { name })
}

/// `true`/`false` (also `1`/`0`, `yes`/`no`, `on`/`off`), `default` when unset.
pub fn flag(env: &impl Env, name: &'static str, default: bool) -> Result<bool, ConfigError> {
    let Some(value) = env.get(name) else {
        return Ok(default);
    };
    match value.to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Ok(true),
        "false" | "0" | "no" | "off" => Ok(false),
        _ => Err(ConfigError::Invalid {
            name,
            value,
            reason: "expected true or false".into(),
        }),
    }
}

/// A number in `min..=max`, `default` when unset.
pub fn number<T>(env: &impl Env, name: &'static str, default: T, min: T, max: T) -> Result<T, ConfigError>
where
    T: FromStr + PartialOrd + Display + Copy,
{
    let Some(value) = env.get(name) else {
        return Ok(default);
    };
    let parsed: T = value.parse().map_err(|_| ConfigError::Invalid {
        name,
        value: value.clone(),
        reason: format!("expected a number from {min} to {max}"),
    })?;
    // Written so that NaN, which compares false with everything, fails.
    if !(parsed >= min && parsed <= max) {
        return Err(ConfigError::Invalid {
            name,
            value,
            reason: format!("must be from {min} to {max}"),
        });
    }
    Ok(parsed)
}

/// An optional ARN of the given service (`sns`, `sqs`, ...).
pub fn optional_arn(
    env: &impl Env,
    name: &'static str,
    service: &str,
) -> Result<Option<String>, ConfigError> {
    let Some(value) = env.get(name) else {
        return Ok(None);
    };
    let parts: Vec<&str> = value.splitn(6, ':').collect();
    let valid = parts.len() == 6
        && parts[0] == "arn"
        && !parts[1].is_empty()
        && parts[2] == service
        && !parts[3].is_empty()
        && parts[4].len() == 12
        && parts[4].bytes().all(|b| b.is_ascii_digit())
        && !parts[5].is_empty();
    if !valid {
        return Err(ConfigError::Invalid {
            name,
            value,
            reason: format!("expected an {service} ARN like arn:aws:{service}:REGION:ACCOUNT:NAME"),
        });
    }
    Ok(Some(value))
}

/// Settings every function that changes something shares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Common {
    /// `DRY_RUN`: change nothing, report what would be done.
    pub dry_run: bool,
    /// `NOTIFY_TOPIC_ARN`: where summaries of changes are published.
    pub notify_topic_arn: Option<String>,
}

impl Common {
    pub fn from_env(env: &impl Env) -> Result<Self, ConfigError> {
        Ok(Common {
            dry_run: flag(env, "DRY_RUN", false)?,
            notify_topic_arn: optional_arn(env, "NOTIFY_TOPIC_ARN", "sns")?,
        })
    }
}

#[cfg(test)]
#[path = "tests/config.rs"]
mod tests;
