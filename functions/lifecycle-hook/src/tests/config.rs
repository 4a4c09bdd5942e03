//! Unit tests of lifecycle-hook's settings.

use std::collections::HashMap;

use super::*;

#[test]
fn settings_have_defaults_and_name_the_bad_variable() {
    let config = Config::from_env(&HashMap::<&str, &str>::new()).unwrap();
    assert_eq!(config.hosted_zone_id, None);
    assert_eq!(config.record_ttl, 60);
    assert_eq!(config.volume_type, "gp3");

    let env = HashMap::from([("HOSTED_ZONE_ID", "/hostedzone/Z123ABC"), ("RECORD_TTL", "300")]);
    let config = Config::from_env(&env).unwrap();
    assert_eq!(config.hosted_zone_id.as_deref(), Some("Z123ABC"));
    assert_eq!(config.record_ttl, 300);

    for (name, value) in [
        ("HOSTED_ZONE_ID", "example.com"),
        ("RECORD_TTL", "-1"),
        ("RECORD_TTL", "ten"),
        ("VOLUME_TYPE", "io2"),
        ("DRY_RUN", "maybe"),
    ] {
        let err = Config::from_env(&HashMap::from([(name, value)])).unwrap_err();
        assert!(err.to_string().contains(name), "{name}={value}: {err}");
    }
}
