//! Reading `INFO replication`: what a Redis node says about its role, its
//! master and how far its data goes. The chain logic decides promotions on
//! these values, so the parser is strict about the fields it reads (a
//! missing field or a non-number is an error naming the field and the value,
//! never a default) and lenient about everything else (unknown keys, other
//! sections' headers, blank lines), so that a newer Redis adding fields does
//! not turn every node into "unknown".
//!
//! The text is `# Replication` followed by `key:value` lines ending in CRLF
//! (LF is accepted too). Redis 7.0 reports `role:slave` for a replica,
//! `master_link_down_since_seconds` only while the link is down (-1 when the
//! replica never connected), and `master_failover_state:no-failover` when no
//! `FAILOVER` is under way.

use std::collections::HashMap;
use std::str::FromStr;

use super::model::{Replication, ReplicationRole};

/// `master_failover_state` when no `FAILOVER` is under way.
const NO_FAILOVER: &str = "no-failover";

const COUNT: &str = "a count (0 or more)";
const OFFSET: &str = "a whole number (a replication offset)";

/// Parses the text of `INFO replication`.
pub fn parse(text: &str) -> Result<Replication, String> {
    let fields = Fields::read(text)?;
    let role = match fields.required("role")? {
        "master" => ReplicationRole::Master,
        // Redis says `slave`; accept the newer word too.
        "slave" | "replica" => replica(&fields)?,
        other => return Err(format!("role is {other:?}, expected \"master\" or \"slave\"")),
    };
    let failover_state = match fields.optional("master_failover_state") {
        None | Some(NO_FAILOVER) => None,
        Some("") => return Err("master_failover_state is empty".to_owned()),
        Some(state) => Some(state.to_owned()),
    };
    Ok(Replication {
        role,
        connected_replicas: fields.number("connected_slaves", COUNT)?,
        replid: fields.replid("master_replid")?,
        replid2: fields.replid("master_replid2")?,
        offset: fields.number("master_repl_offset", OFFSET)?,
        failover_state,
    })
}

fn replica(fields: &Fields<'_>) -> Result<ReplicationRole, String> {
    let master_host = fields.required("master_host")?;
    if master_host.is_empty() {
        return Err("master_host is empty".to_owned());
    }
    let link_up = match fields.required("master_link_status")? {
        "up" => true,
        "down" => false,
        other => {
            return Err(format!(
                "master_link_status is {other:?}, expected \"up\" or \"down\""
            ));
        }
    };
    let link_down_seconds = if link_up {
        None
    } else {
        match fields.number::<i64>("master_link_down_since_seconds", "-1 or a number of seconds")? {
            // Redis 7 says -1 when the replica never connected.
            -1 => None,
            seconds => Some(u64::try_from(seconds).map_err(|_| {
                format!("master_link_down_since_seconds is {seconds}, expected -1 or a number of seconds")
            })?),
        }
    };
    let sync_in_progress = match fields.required("master_sync_in_progress")? {
        "0" => false,
        "1" => true,
        other => return Err(format!("master_sync_in_progress is {other:?}, expected 0 or 1")),
    };
    Ok(ReplicationRole::Replica {
        master_host: master_host.to_owned(),
        master_port: fields.number("master_port", "a port number (0-65535)")?,
        link_up,
        link_down_seconds,
        sync_in_progress,
        replica_offset: fields.number("slave_repl_offset", OFFSET)?,
    })
}

/// The `key:value` lines of an INFO text.
struct Fields<'a>(HashMap<&'a str, &'a str>);

impl<'a> Fields<'a> {
    fn read(text: &'a str) -> Result<Self, String> {
        if text.trim().is_empty() {
            return Err("the text is empty".to_owned());
        }
        let mut fields = HashMap::new();
        for line in text.lines() {
            // `lines` leaves no `\n`; a CRLF line keeps its `\r`.
            let line = line.trim_end_matches('\r').trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            // Redis writes nothing else; a line without a colon says
            // nothing we read, and required fields are checked below.
            let Some((key, value)) = line.split_once(':') else {
                continue;
            };
            let (key, value) = (key.trim(), value.trim());
            if let Some(first) = fields.insert(key, value) {
                return Err(format!("{key} appears twice ({first:?} and {value:?})"));
            }
        }
        Ok(Fields(fields))
    }

    fn optional(&self, key: &str) -> Option<&'a str> {
        self.0.get(key).copied()
    }

    fn required(&self, key: &str) -> Result<&'a str, String> {
        self.optional(key).ok_or_else(|| format!("{key} is missing"))
    }

    /// A number; `expected` says which kind, for the error.
    fn number<T: FromStr>(&self, key: &str, expected: &str) -> Result<T, String> {
        let value = self.required(key)?;
        value
            .parse()
            .map_err(|_| format!("{key} is {value:?}, expected {expected}"))
    }

    /// A replication id: 40 hexadecimal digits.
    fn replid(&self, key: &str) -> Result<String, String> {
        let value = self.required(key)?;
        if value.len() == 40 && value.bytes().all(|b| b.is_ascii_hexdigit()) {
            Ok(value.to_owned())
        } else {
            Err(format!("{key} is {value:?}, expected 40 hexadecimal digits"))
        }
    }
}

#[cfg(test)]
#[path = "tests/info.rs"]
mod tests;
