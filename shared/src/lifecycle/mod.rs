//! The lifecycle hook (SPEC item 3): Auto Scaling launches a replacement and
//! it gets its data back and joins its cluster; Auto Scaling terminates a
//! node and it leaves cleanly; either way the lifecycle action is completed.
//! Domain logic only; EC2, Auto Scaling and Route 53 are reached through the
//! traits in [`ports`].

pub mod action;
pub mod node;
pub mod ports;
pub mod restore;
pub mod roles;
pub mod run;
pub mod wait;

#[cfg(test)]
#[path = "tests/fake.rs"]
mod fake;
