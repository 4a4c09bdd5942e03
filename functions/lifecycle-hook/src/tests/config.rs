//! Unit tests of lifecycle-hook's settings.

use std::collections::HashMap;

use super::*;

#[test]
fn settings_have_defaults_and_name_the_bad_variable() {
    let config = Config::from_env(&HashMap::<&str, &str>::new()).unwrap();
    assert_eq!(config.hosted_zone_id, None);
    assert_eq!(config.record_ttl, 60);
    assert_eq!(config.volume_type, "gp3");
    assert_eq!(config.task_queue_url, None);

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
        (
            "TASK_QUEUE_URL",
            "https://sqs.eu-west-1.amazonaws.com/123456789012/tasks",
        ),
        ("TASK_QUEUE_URL", "tasks.fifo"),
    ] {
        let err = Config::from_env(&HashMap::from([(name, value)])).unwrap_err();
        assert!(err.to_string().contains(name), "{name}={value}: {err}");
    }
}

#[test]
fn a_fifo_task_queue_is_taken() {
    let url = "https://sqs.eu-west-1.amazonaws.com/123456789012/replset-tasks.fifo";
    let config = Config::from_env(&HashMap::from([("TASK_QUEUE_URL", url)])).unwrap();
    assert_eq!(config.task_queue_url.as_deref(), Some(url));
}
