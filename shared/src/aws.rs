//! The one place an AWS `SdkConfig` is made. Every function builds it once at
//! start-up and derives the service clients it needs from it, so endpoint,
//! region, credentials, retries and timeouts are the same everywhere.
//!
//! - `AWS_ENDPOINT_URL` (and the per-service `AWS_ENDPOINT_URL_EC2`, ...) are
//!   honoured by aws-config itself: that is how the local AWS is reached.
//! - Region and credentials come from the standard chains. On Lambda both are
//!   in the environment, so nothing else is consulted. Off EC2 the instance
//!   metadata service does not exist; its client gets a short timeout and one
//!   attempt, so a laptop without `AWS_REGION` waits a fraction of a second
//!   rather than the default several seconds before being told what is
//!   missing.
//! - Throttling and transient errors are retried by the SDK's standard retry
//!   strategy (exponential backoff with jitter); every call is bounded by
//!   timeouts so a hung connection cannot eat the invocation's deadline.

use std::time::Duration;

use aws_config::default_provider::credentials::DefaultCredentialsChain;
use aws_config::environment::region::EnvironmentVariableRegionProvider;
use aws_config::imds::region::ImdsRegionProvider;
use aws_config::meta::region::RegionProviderChain;
use aws_config::profile::ProfileFileRegionProvider;
use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, SdkConfig, imds};

use crate::error::ConfigError;

/// Attempts per AWS call, including the first. Throttling (EC2's
/// `RequestLimitExceeded`) is retried with backoff up to this many times.
pub const MAX_ATTEMPTS: u32 = 6;

/// Timeouts for one AWS call. A single attempt that takes longer than this is
/// abandoned and retried; the whole call (all attempts) is bounded too.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
pub const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(20);
pub const OPERATION_TIMEOUT: Duration = Duration::from_secs(60);

/// Standard retries (exponential backoff with full jitter, a token bucket
/// against retry storms) up to [`MAX_ATTEMPTS`].
pub fn retry_config() -> RetryConfig {
    RetryConfig::standard().with_max_attempts(MAX_ATTEMPTS)
}

pub fn timeout_config() -> TimeoutConfig {
    TimeoutConfig::builder()
        .connect_timeout(CONNECT_TIMEOUT)
        .operation_attempt_timeout(ATTEMPT_TIMEOUT)
        .operation_timeout(OPERATION_TIMEOUT)
        .build()
}

/// Loads the shared AWS configuration. Fails, naming `AWS_REGION`, when no
/// region can be found.
pub async fn load_sdk_config() -> Result<SdkConfig, ConfigError> {
    let imds = imds::Client::builder()
        .connect_timeout(Duration::from_millis(200))
        .read_timeout(Duration::from_millis(500))
        .max_attempts(1)
        .build();
    // The default region chain, with the fast metadata client.
    let region = RegionProviderChain::first_try(EnvironmentVariableRegionProvider::new())
        .or_else(ProfileFileRegionProvider::new())
        .or_else(ImdsRegionProvider::builder().imds_client(imds.clone()).build());
    let credentials = DefaultCredentialsChain::builder().imds_client(imds).build().await;
    let config = aws_config::defaults(BehaviorVersion::latest())
        .region(region)
        .credentials_provider(credentials)
        .retry_config(retry_config())
        .timeout_config(timeout_config())
        .load()
        .await;
    if config.region().is_none() {
        return Err(ConfigError::Missing { name: "AWS_REGION" });
    }
    Ok(config)
}
