//! MongoDB replica sets (SPEC items 5 and 6, the book's chapter 7).

pub mod apply;
pub mod config;
pub mod endpoint;
pub mod ports;
pub mod primary;
pub mod replset;
pub mod task;

#[cfg(test)]
#[path = "tests/fake.rs"]
mod fake;
