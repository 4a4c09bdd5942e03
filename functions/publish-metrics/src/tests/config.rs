use std::collections::HashMap;
use std::time::Duration;

use super::*;

fn env(pairs: &[(&'static str, &'static str)]) -> HashMap<&'static str, &'static str> {
    pairs.iter().copied().collect()
}

#[test]
fn defaults_need_no_setting() {
    let c = Config::from_env(&env(&[])).expect("valid");
    assert_eq!(c.node_timeout, Duration::from_secs(10));
    assert_eq!(c.concurrency, 32);
    assert_eq!(c.redis.password, None);
    assert_eq!(c.mongo.username, None);
    assert!(!c.common.dry_run);
}

#[test]
fn every_bad_setting_is_named() {
    let cases: [(&[(&'static str, &'static str)], &str); 5] = [
        (&[("NODE_TIMEOUT_MS", "10s")], "NODE_TIMEOUT_MS"),
        (&[("NODE_TIMEOUT_MS", "50")], "NODE_TIMEOUT_MS"),
        (&[("MAX_CONCURRENT_NODES", "0")], "MAX_CONCURRENT_NODES"),
        (&[("MONGODB_USERNAME", "ops")], "MONGODB_USERNAME"),
        (&[("DRY_RUN", "maybe")], "DRY_RUN"),
    ];
    for (pairs, name) in cases {
        let err = Config::from_env(&env(pairs)).expect_err(name);
        assert!(err.to_string().contains(name), "{pairs:?}: {err}");
    }
}

#[test]
fn the_input_may_only_ask_for_a_dry_run() {
    use shared::envelope::Payload;
    let read = |v: Value| dry_run_input(&Payload::Direct(v), "publish-metrics input");
    assert!(!read(json!({})).expect("empty is a plain run"));
    assert!(read(json!({"dry_run": true})).expect("a dry run"));
    let err = read(json!({"clusters": ["a"]})).expect_err("unknown field");
    assert!(err.to_string().contains("publish-metrics input"), "{err}");
}
