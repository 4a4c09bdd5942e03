use std::collections::HashMap;
use std::time::Duration;

use super::*;

fn env(pairs: &[(&'static str, &'static str)]) -> HashMap<&'static str, &'static str> {
    pairs.iter().copied().collect()
}

#[test]
fn defaults() {
    let c = Config::from_env(&env(&[("HOSTED_ZONE_ID", "/hostedzone/Z0123ABC")])).expect("valid");
    assert_eq!(c.hosted_zone_id, "Z0123ABC");
    assert_eq!(c.record_ttl, 60);
    assert_eq!(c.mongo.connect_timeout, Duration::from_millis(2000));
    assert_eq!(c.mongo.command_timeout, Duration::from_millis(5000));
    assert_eq!(c.mongo.username, None);
    assert_eq!(c.mongo.auth_source, "admin");
    assert!(!c.mongo.tls);
    assert!(!c.common.dry_run);
}

#[test]
fn credentials_and_tls() {
    let c = Config::from_env(&env(&[
        ("HOSTED_ZONE_ID", "Z1"),
        ("MONGODB_USERNAME", "ninelives"),
        ("MONGODB_PASSWORD", "pw"),
        ("MONGODB_AUTH_SOURCE", "ops"),
        ("MONGODB_TLS", "true"),
        ("MONGODB_TLS_CA_FILE", "/opt/ca.pem"),
    ]))
    .expect("valid");
    assert_eq!(c.mongo.username.as_deref(), Some("ninelives"));
    assert_eq!(c.mongo.password.as_deref(), Some("pw"));
    assert_eq!(c.mongo.auth_source, "ops");
    assert!(c.mongo.tls);
    assert_eq!(c.mongo.tls_ca_file.as_deref(), Some("/opt/ca.pem"));
}

#[test]
fn every_bad_setting_is_named() {
    let cases: [(&[(&'static str, &'static str)], &str); 7] = [
        (&[], "HOSTED_ZONE_ID"),
        (&[("HOSTED_ZONE_ID", "not a zone")], "HOSTED_ZONE_ID"),
        (&[("HOSTED_ZONE_ID", "Z1"), ("RECORD_TTL", "-1")], "RECORD_TTL"),
        (
            &[("HOSTED_ZONE_ID", "Z1"), ("MONGODB_USERNAME", "ops")],
            "MONGODB_USERNAME",
        ),
        (
            &[("HOSTED_ZONE_ID", "Z1"), ("MONGODB_PASSWORD", "pw")],
            "MONGODB_PASSWORD",
        ),
        (
            &[("HOSTED_ZONE_ID", "Z1"), ("MONGODB_TLS_CA_FILE", "/ca.pem")],
            "MONGODB_TLS_CA_FILE",
        ),
        (
            &[("HOSTED_ZONE_ID", "Z1"), ("MONGODB_CONNECT_TIMEOUT_MS", "soon")],
            "MONGODB_CONNECT_TIMEOUT_MS",
        ),
    ];
    for (pairs, name) in cases {
        let err = Config::from_env(&env(pairs)).expect_err(name).to_string();
        assert!(err.contains(name), "{name}: {err}");
    }
    let err = Config::from_env(&env(&[("HOSTED_ZONE_ID", "Z1"), ("MONGODB_PASSWORD", "hunter2")]))
        .expect_err("password alone")
        .to_string();
    assert!(!err.contains("hunter2"), "{err}");
}
