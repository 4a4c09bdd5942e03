use std::collections::HashMap;

use super::*;

fn env(pairs: &[(&'static str, &'static str)]) -> HashMap<&'static str, &'static str> {
    pairs.iter().copied().collect()
}

#[test]
fn defaults() {
    let c = Config::from_env(&env(&[])).expect("valid");
    assert_eq!(c.tasks.step_down, Duration::from_secs(60));
    assert_eq!(c.tasks.catch_up, Duration::from_secs(10));
    assert!(!c.tasks.dry_run);
    assert_eq!(c.mongo.auth_source, "admin");
}

#[test]
fn dry_run_reaches_the_tasks() {
    let c = Config::from_env(&env(&[("DRY_RUN", "true")])).expect("valid");
    assert!(c.tasks.dry_run && c.common.dry_run);
}

#[test]
fn every_bad_setting_is_named() {
    let cases: [(&[(&'static str, &'static str)], &str); 5] = [
        (&[("STEP_DOWN_SECONDS", "5")], "STEP_DOWN_SECONDS"),
        (&[("CATCH_UP_SECONDS", "0")], "CATCH_UP_SECONDS"),
        (
            &[("STEP_DOWN_SECONDS", "20"), ("CATCH_UP_SECONDS", "20")],
            "CATCH_UP_SECONDS",
        ),
        (&[("MONGODB_USERNAME", "ops")], "MONGODB_USERNAME"),
        (&[("DRY_RUN", "maybe")], "DRY_RUN"),
    ];
    for (pairs, name) in cases {
        let err = Config::from_env(&env(pairs)).expect_err(name).to_string();
        assert!(err.contains(name), "{name}: {err}");
    }
}
