//! ninelives' shared core. Domain logic (retention, selection, purge plans)
//! is pure; AWS is reached through narrow capability traits implemented on
//! the SDK clients (`ec2`, `autoscaling`, `route53`, `notify`); the Lambda plumbing (event envelopes,
//! deadlines, configuration, logging, errors) is the same for every function.
//! Redis nodes are reached the same way: the chain logic's `RedisApi` port
//! is implemented on the `redis` crate in `redis_node`.
//! Credentials may be given by reference (`<VAR>_FROM`: SSM, Secrets
//! Manager), fetched once at start-up through `secrets`.
//! Triggers are read from each delivery shape by pure parsers (`alarm`:
//! what asks redis-failover to check a Redis chain).

pub mod alarm;
pub mod autoscaling;
pub mod aws;
pub mod backup;
pub mod chain;
pub mod cloudwatch;
pub mod config;
pub mod dns;
pub mod ec2;
pub mod envelope;
pub mod error;
pub mod fleet;
pub mod function;
pub mod invocation;
pub mod lifecycle;
pub mod metrics;
pub mod mongo;
pub mod mongo_node;
pub mod notify;
pub mod pace;
pub mod pg_node;
pub mod pointer;
pub mod redis_node;
pub mod route53;
pub mod secrets;
pub mod sqs;
pub mod tags;
pub mod telemetry;

pub use error::{ConfigError, Error, EventError};
