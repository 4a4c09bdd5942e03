//! Unit tests of `tier`.

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

#[test]
fn an_unknown_tier_is_quoted_clipped() {
    let err = "y".repeat(1 << 20).parse::<Tier>().unwrap_err().to_string();
    assert!(err.starts_with("unknown tier \"yyy"), "{err:.100}");
    assert!(err.len() < 200, "{} bytes", err.len());
}
