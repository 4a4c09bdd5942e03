//! The backup lifecycle (SPEC items 1 and 2): taking tagged volumes'
//! snapshots per retention tier and purging the expired ones. Domain logic
//! only; AWS is reached through [`ports::BackupApi`].

pub mod dedupe;
pub mod hooks;
pub mod latest;
pub mod model;
pub mod pg_hooks;
pub mod ports;
pub mod purge;
pub mod select;
pub mod snapshot;
pub mod tier;

#[cfg(test)]
#[path = "tests/fake.rs"]
mod fake;
