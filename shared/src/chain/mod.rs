//! The Redis chain (SPEC item 4, the book's chapter 8): a list of Redis
//! nodes in which the head takes the writes (the cluster's Route 53 record
//! points at it), every other node `REPLICAOF`s the one before it, and the
//! last one is the tail (`tail.<cluster>`), where a new node attaches.
//!
//! Truth about the chain comes from the nodes themselves (`INFO
//! replication`); which nodes exist comes from EC2 tags. [`plan`] turns
//! what the nodes say into one chain and the few commands that make it so
//! (pure, exhaustively unit-tested); [`reconcile`] observes, re-checks and
//! acts through the narrow ports in [`ports`], so the same code serves
//! redis-failover (head down, middle node down, fencing, repair) and the
//! lifecycle hook's join and leave.

pub mod config;
pub mod info;
pub mod membership;
pub mod model;
pub mod plan;
pub mod ports;
pub mod reconcile;
