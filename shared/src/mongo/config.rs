//! The settings every function that talks to MongoDB members reads the same
//! way: credentials, TLS and timeouts.

use std::time::Duration;

use crate::config::{Env, flag, number};
use crate::error::ConfigError;
use crate::mongo_node::MongoSettings;

/// `MONGODB_USERNAME`, `MONGODB_PASSWORD` (both or neither: SCRAM only when
/// set), `MONGODB_AUTH_SOURCE` (default `admin`), `MONGODB_TLS` (default
/// false), `MONGODB_TLS_CA_FILE`, `MONGODB_CONNECT_TIMEOUT_MS` (default
/// 2000), `MONGODB_COMMAND_TIMEOUT_MS` (default 5000).
pub fn mongo_settings(env: &impl Env) -> Result<MongoSettings, ConfigError> {
    let optional = |name| env.get(name).filter(|v: &String| !v.is_empty());
    let username = optional("MONGODB_USERNAME");
    let password = optional("MONGODB_PASSWORD");
    match (&username, &password) {
        (Some(user), None) => {
            return Err(ConfigError::Invalid {
                name: "MONGODB_USERNAME",
                value: user.clone(),
                reason: "a user needs MONGODB_PASSWORD as well".to_owned(),
            });
        }
        (None, Some(_)) => {
            return Err(ConfigError::Invalid {
                name: "MONGODB_PASSWORD",
                value: "***".to_owned(),
                reason: "a password needs MONGODB_USERNAME as well".to_owned(),
            });
        }
        _ => {}
    }
    let tls = flag(env, "MONGODB_TLS", false)?;
    let tls_ca_file = optional("MONGODB_TLS_CA_FILE");
    if tls_ca_file.is_some() && !tls {
        return Err(ConfigError::Invalid {
            name: "MONGODB_TLS_CA_FILE",
            value: tls_ca_file.unwrap_or_default(),
            reason: "set MONGODB_TLS=true as well; without it the CA file would be ignored".to_owned(),
        });
    }
    Ok(MongoSettings {
        connect_timeout: Duration::from_millis(number(env, "MONGODB_CONNECT_TIMEOUT_MS", 2000, 50, 60_000)?),
        command_timeout: Duration::from_millis(number(env, "MONGODB_COMMAND_TIMEOUT_MS", 5000, 50, 120_000)?),
        username,
        password,
        auth_source: optional("MONGODB_AUTH_SOURCE").unwrap_or_else(|| "admin".to_owned()),
        tls,
        tls_ca_file,
    })
}
