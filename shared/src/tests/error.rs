//! Unit tests of `error`.

use super::*;

#[test]
fn classes_follow_the_cause() {
    let config = Error::from(ConfigError::Missing { name: "X" });
    assert_eq!(config.error_type(), "NonRetryable.InvalidConfiguration");
    let partial = Error::Partial {
        what: "deletions",
        failed: 1,
        attempted: 3,
        retryable: true,
        first: Box::new(Error::Aws {
            operation: "DeleteSnapshot",
            code: Some("RequestLimitExceeded".into()),
            message: "slow down".into(),
            retryable: true,
            source: "x".into(),
        }),
    };
    assert!(partial.is_retryable());
    assert_eq!(partial.error_type(), "Retryable.PartialFailure");
    let d: Diagnostic = partial.into();
    assert!(
        d.error_message.contains("1 of 3 deletions failed"),
        "{}",
        d.error_message
    );
    assert!(
        d.error_message.contains("(RequestLimitExceeded)"),
        "{}",
        d.error_message
    );
}

#[test]
fn config_errors_name_the_variable() {
    let e = ConfigError::Invalid {
        name: "RETENTION_DAILY",
        value: "abc".into(),
        reason: "expected a whole number of days".into(),
    };
    assert!(e.to_string().contains("RETENTION_DAILY=\"abc\""));
}
