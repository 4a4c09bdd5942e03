//! Reading `INFO replication` (placeholder while the parser is written).

use super::model::Replication;

/// Parses the text of `INFO replication`.
pub fn parse(_text: &str) -> Result<Replication, String> {
    Err("INFO replication parsing is being written".to_owned())
}
