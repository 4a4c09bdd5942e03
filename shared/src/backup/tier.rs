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
                "rule name {name:?} is ambiguous: it names {}",
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
                    "unknown tier {s:?}: expected hourly, daily, weekly or monthly"
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
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn t(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn tier_from_rule_names() {
        let arn = |n: &str| format!("arn:aws:events:us-east-1:123456789012:rule/{n}");
        assert_eq!(
            Tier::from_rule_arn(&arn("ninelives-snapshot-daily")).unwrap(),
            Some(Tier::Daily)
        );
        assert_eq!(
            Tier::from_rule_arn(&arn("HOURLY-backups")).unwrap(),
            Some(Tier::Hourly)
        );
        assert_eq!(
            Tier::from_rule_arn(&arn("my-bus/Weekly")).unwrap(),
            Some(Tier::Weekly)
        );
        assert_eq!(
            Tier::from_rule_arn(&arn("stack-MonthlySnapshots-1X2Y")).unwrap(),
            Some(Tier::Monthly)
        );
        assert_eq!(
            Tier::from_rule_arn(&arn("stack-DailySnapshots-AB12")).unwrap(),
            Some(Tier::Daily)
        );
        assert_eq!(
            Tier::from_rule_arn(&arn("backup_weekly_2")).unwrap(),
            Some(Tier::Weekly)
        );
        assert_eq!(Tier::from_rule_arn(&arn("nightly")).unwrap(), None);
        assert_eq!(Tier::from_rule_arn(&arn("biweekly-backup")).unwrap(), None);
        assert_eq!(Tier::from_rule_arn(&arn("semimonthly")).unwrap(), None);
        let err = Tier::from_rule_arn(&arn("daily-and-weekly")).unwrap_err();
        assert!(err.to_string().contains("ambiguous"), "{err}");
    }

    #[test]
    fn tier_parsing() {
        assert_eq!("Daily".parse::<Tier>().unwrap(), Tier::Daily);
        assert_eq!(" monthly ".parse::<Tier>().unwrap(), Tier::Monthly);
        let err = "yearly".parse::<Tier>().unwrap_err();
        assert!(err.to_string().contains("\"yearly\""), "{err}");
    }

    #[test]
    fn periods() {
        let time = t("2026-11-24T13:07:59Z");
        assert_eq!(Tier::Hourly.period(time), "2026-11-24T13");
        assert_eq!(Tier::Daily.period(time), "2026-11-24");
        assert_eq!(Tier::Weekly.period(time), "2026-W48");
        assert_eq!(Tier::Monthly.period(time), "2026-11");
        // ISO week-year differs from the calendar year at the edges.
        assert_eq!(Tier::Weekly.period(t("2027-01-01T00:00:00Z")), "2026-W53");
        assert_eq!(Tier::Weekly.period(t("2024-12-30T00:00:00Z")), "2025-W01");
    }

    #[test]
    fn retention_defaults_overrides_and_errors() {
        let none: HashMap<&str, &str> = HashMap::new();
        assert_eq!(Retention::from_env(&none).unwrap(), Retention::default());
        let env: HashMap<&str, &str> = [("RETENTION_DAILY", "30"), ("RETENTION_MONTHLY", "730")].into();
        let r = Retention::from_env(&env).unwrap();
        assert_eq!((r.hourly, r.daily, r.weekly, r.monthly), (7, 30, 61, 730));
        for bad in ["0", "-1", "1.5", "two", "36501"] {
            let env: HashMap<&str, &str> = [("RETENTION_WEEKLY", bad)].into();
            let err = Retention::from_env(&env).unwrap_err();
            assert!(err.to_string().contains("RETENTION_WEEKLY"), "{err}");
        }
    }

    #[test]
    fn expiry() {
        let r = Retention::default();
        let time = t("2026-11-24T13:00:00.750Z");
        assert_eq!(
            format_time(r.expires_at(Tier::Daily, time)),
            "2026-12-08T13:00:00Z"
        );
        assert_eq!(
            format_time(r.expires_at(Tier::Monthly, time)),
            "2027-11-24T13:00:00Z"
        );
        assert_eq!(
            parse_time("2026-12-08T13:00:00Z"),
            Some(t("2026-12-08T13:00:00Z"))
        );
        assert_eq!(
            parse_time("2026-12-08T14:00:00+01:00"),
            Some(t("2026-12-08T13:00:00Z"))
        );
        assert_eq!(parse_time("2026-12-08 13:00:00"), Some(t("2026-12-08T13:00:00Z")));
        assert_eq!(parse_time("next tuesday"), None);
        assert_eq!(parse_time(""), None);
    }
}
