use std::collections::HashMap;
use std::time::Duration;

use super::*;

fn env(pairs: &[(&'static str, &'static str)]) -> HashMap<&'static str, &'static str> {
    pairs.iter().copied().collect()
}

#[test]
fn defaults() {
    let c = Config::from_env(&env(&[("HOSTED_ZONE_ID", "Z0123ABC")])).expect("valid");
    assert_eq!(c.hosted_zone_id, "Z0123ABC");
    assert_eq!(c.record_ttl, 60);
    assert_eq!(c.redis.connect_timeout, Duration::from_millis(1000));
    assert_eq!(c.redis.command_timeout, Duration::from_millis(2000));
    assert_eq!(c.redis.password, None);
    assert_eq!(c.policy.max_link_down_seconds, 120);
    assert!(!c.common.dry_run);
}

#[test]
fn every_bad_setting_is_named() {
    let cases: [(&[(&'static str, &'static str)], &str); 6] = [
        (&[], "HOSTED_ZONE_ID"),
        (&[("HOSTED_ZONE_ID", "not a zone")], "HOSTED_ZONE_ID"),
        (&[("HOSTED_ZONE_ID", "Z1"), ("RECORD_TTL", "-1")], "RECORD_TTL"),
        (
            &[("HOSTED_ZONE_ID", "Z1"), ("REDIS_COMMAND_TIMEOUT_MS", "soon")],
            "REDIS_COMMAND_TIMEOUT_MS",
        ),
        (
            &[("HOSTED_ZONE_ID", "Z1"), ("REDIS_USERNAME", "ops")],
            "REDIS_USERNAME",
        ),
        (
            &[("HOSTED_ZONE_ID", "Z1"), ("REDIS_MAX_LINK_DOWN_SECONDS", "0")],
            "REDIS_MAX_LINK_DOWN_SECONDS",
        ),
    ];
    for (pairs, name) in cases {
        let err = Config::from_env(&env(pairs)).expect_err(name).to_string();
        assert!(err.contains(name), "{err}");
    }
}

#[test]
fn the_password_is_never_in_the_config_debug_output() {
    let c = Config::from_env(&env(&[
        ("HOSTED_ZONE_ID", "Z1"),
        ("REDIS_PASSWORD", "s3cret-value"),
    ]))
    .expect("valid");
    assert_eq!(c.redis.password.as_deref(), Some("s3cret-value"));
    assert!(!format!("{c:?}").contains("s3cret-value"));
}
