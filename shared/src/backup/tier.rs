//! Retention tiers: which tier a scheduled run is, how long its snapshots
//! are kept, and which period (hour, day, ISO week, month) a run belongs to.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Datelike, Duration, SubsecRound, Timelike, Utc};
use serde::Serialize;

use crate::config::{self, Env};
use crate::error::{ConfigError, EventError};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Tier {
    Hourly,
    Daily,
    Weekly,
    Monthly,
}

impl Tier {
    pub const ALL: [Tier; 4] = [Tier::Hourly, Tier::Daily, Tier::Weekly, Tier::Monthly];

    pub fn as_str(self) -> &'static str {
        match self {
            Tier::Hourly => "hourly",
            Tier::Daily => "daily",
            Tier::Weekly => "weekly",
            Tier::Monthly => "monthly",
        }
    }

    /// The tier named in an EventBridge rule ARN
    /// (`arn:aws:events:REGION:ACCOUNT:rule/[BUS/]NAME`): the one tier word
    /// among the words of its name, split at punctuation and at lower-upper
    /// case changes (`ninelives-snapshot-daily`, `Stack-DailySnapshots-1X2Y`),
    /// case-insensitively. `Ok(None)` when it names none (`biweekly` is not
    /// `weekly`); an error when it names more than one.
    pub fn from_rule_arn(arn: &str) -> Result<Option<Tier>, EventError> {
        let name = arn.rsplit('/').next().unwrap_or(arn);
        let words = words(name);
        let found: Vec<Tier> = Tier::ALL
            .into_iter()
            .filter(|t| words.iter().any(|w| w == t.as_str()))
            .collect();
        match found.as_slice() {
            [] => Ok(None),
            [one] => Ok(Some(*one)),
            many => Err(EventError::Invalid(format!(
                "rule name {:?} is ambiguous: it names {}",
                crate::error::clip(name, 80),
                many.iter().map(|t| t.as_str()).collect::<Vec<_>>().join(" and ")
            ))),
        }
    }

    /// The period of this tier that `time` falls in: `2026-11-24T13`,
    /// `2026-11-24`, `2026-W48` (ISO week) or `2026-11`.
    pub fn period(self, time: DateTime<Utc>) -> String {
        match self {
            Tier::Hourly => format!("{}T{:02}", time.format("%Y-%m-%d"), time.hour()),
            Tier::Daily => time.format("%Y-%m-%d").to_string(),
            Tier::Weekly => {
                let week = time.iso_week();
                format!("{}-W{:02}", week.year(), week.week())
            }
            Tier::Monthly => time.format("%Y-%m").to_string(),
        }
    }
}

/// Lower-case words of a name: split at non-alphanumerics and where a
/// lower-case letter or digit is followed by an upper-case one.
fn words(name: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut previous_lower = false;
    for c in name.chars() {
        if !c.is_ascii_alphanumeric() {
            previous_lower = false;
            if !word.is_empty() {
                words.push(std::mem::take(&mut word));
            }
            continue;
        }
        if c.is_ascii_uppercase() && previous_lower && !word.is_empty() {
            words.push(std::mem::take(&mut word));
        }
        previous_lower = c.is_ascii_lowercase() || c.is_ascii_digit();
        word.push(c.to_ascii_lowercase());
    }
    if !word.is_empty() {
        words.push(word);
    }
    words
}

impl fmt::Display for Tier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Tier {
    type Err = EventError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Tier::ALL
            .into_iter()
            .find(|t| t.as_str().eq_ignore_ascii_case(s.trim()))
            .ok_or_else(|| {
                EventError::Invalid(format!(
                    "unknown tier {:?}: expected hourly, daily, weekly or monthly",
                    crate::error::clip(s, 40)
                ))
            })
    }
}

/// Days each tier's snapshots are kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Retention {
    pub hourly: u32,
    pub daily: u32,
    pub weekly: u32,
    pub monthly: u32,
}

/// Longest retention accepted: 100 years.
const MAX_RETENTION_DAYS: u32 = 36_500;

impl Default for Retention {
    /// The book's: a week of hourlies, two weeks of dailies, two months of
    /// weeklies, a year of monthlies.
    fn default() -> Self {
        Retention {
            hourly: 7,
            daily: 14,
            weekly: 61,
            monthly: 365,
        }
    }
}

impl Retention {
    /// `RETENTION_HOURLY`, `RETENTION_DAILY`, `RETENTION_WEEKLY`,
    /// `RETENTION_MONTHLY`: whole days from 1 to 36500.
    pub fn from_env(env: &impl Env) -> Result<Self, ConfigError> {
        let d = Retention::default();
        let days = |name, default| config::number(env, name, default, 1u32, MAX_RETENTION_DAYS);
        Ok(Retention {
            hourly: days("RETENTION_HOURLY", d.hourly)?,
            daily: days("RETENTION_DAILY", d.daily)?,
            weekly: days("RETENTION_WEEKLY", d.weekly)?,
            monthly: days("RETENTION_MONTHLY", d.monthly)?,
        })
    }

    pub fn days(&self, tier: Tier) -> u32 {
        match tier {
            Tier::Hourly => self.hourly,
            Tier::Daily => self.daily,
            Tier::Weekly => self.weekly,
            Tier::Monthly => self.monthly,
        }
    }

    /// When a snapshot taken for `tier` at `time` expires, to the second.
    pub fn expires_at(&self, tier: Tier, time: DateTime<Utc>) -> DateTime<Utc> {
        time.trunc_subsecs(0) + Duration::days(i64::from(self.days(tier)))
    }
}

/// The form of `ninelives:expires-at`: `2026-12-08T13:00:00Z`.
pub fn format_time(time: DateTime<Utc>) -> String {
    time.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// Reads an `ninelives:expires-at` value. Accepts any RFC 3339 offset (a
/// person may have edited the tag) and the book's `YYYY-MM-DD HH:MM:SS`
/// (UTC).
pub fn parse_time(value: &str) -> Option<DateTime<Utc>> {
    let value = value.trim();
    DateTime::parse_from_rfc3339(value)
        .map(|t| t.with_timezone(&Utc))
        .ok()
        .or_else(|| {
            chrono::NaiveDateTime::parse_from_str(value, "%Y-%m-%d %H:%M:%S")
                .ok()
                .map(|n| n.and_utc())
        })
}

#[cfg(test)]
#[path = "tests/tier.rs"]
mod tests;
