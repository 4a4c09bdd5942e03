//! Unit tests of `pg_node`'s pure parts: settings and error classes.

use std::collections::HashMap;

use super::*;

fn env(pairs: &[(&'static str, &'static str)]) -> HashMap<&'static str, &'static str> {
    pairs.iter().copied().collect()
}

#[test]
fn postgres_settings_default_to_libpq_names_and_mongo_like_timeouts() {
    let s = PgSettings::from_env(&env(&[])).unwrap();
    assert_eq!(s, PgSettings::default());
    assert_eq!(s.user, "postgres");
    assert_eq!(s.database, "postgres");
    assert_eq!(s.password, None);
    assert_eq!(s.connect_timeout, Duration::from_millis(2000));
    assert_eq!(s.command_timeout, Duration::from_millis(5000));

    let s = PgSettings::from_env(&env(&[
        ("PGUSER", "ninelives"),
        ("PGPASSWORD", "s3cret"),
        ("PGDATABASE", "app"),
        ("PG_CONNECT_TIMEOUT_MS", "300"),
        ("PG_COMMAND_TIMEOUT_MS", "900"),
    ]))
    .unwrap();
    assert_eq!(s.user, "ninelives");
    assert_eq!(s.password.as_deref(), Some("s3cret"));
    assert_eq!(s.database, "app");
    assert_eq!(s.connect_timeout, Duration::from_millis(300));
    assert_eq!(s.command_timeout, Duration::from_millis(900));
}

#[test]
fn postgres_settings_errors_name_the_variable() {
    for (pairs, name) in [
        (vec![("PG_CONNECT_TIMEOUT_MS", "soon")], "PG_CONNECT_TIMEOUT_MS"),
        (vec![("PG_CONNECT_TIMEOUT_MS", "10")], "PG_CONNECT_TIMEOUT_MS"),
        (vec![("PG_COMMAND_TIMEOUT_MS", "-1")], "PG_COMMAND_TIMEOUT_MS"),
        (vec![("PG_COMMAND_TIMEOUT_MS", "120001")], "PG_COMMAND_TIMEOUT_MS"),
        (vec![("PGUSER", "a\0b")], "PGUSER"),
        (vec![("PGDATABASE", &*"d".repeat(64).leak())], "PGDATABASE"),
        (vec![("PGPASSWORD", "a\0b")], "PGPASSWORD"),
    ] {
        let err = PgSettings::from_env(&env(&pairs)).unwrap_err();
        let text = err.to_string();
        assert!(text.contains(name), "{pairs:?}: {text}");
    }
    let err = PgSettings::from_env(&env(&[("PGPASSWORD", "top\0secret")])).unwrap_err();
    assert!(!err.to_string().contains("secret"), "{err}");
}

#[test]
fn postgres_password_is_never_printed() {
    let s = PgSettings {
        password: Some("hunter2".into()),
        ..PgSettings::default()
    };
    let shown = format!("{s:?} {:?}", PgNodes::new(s.clone()));
    assert!(!shown.contains("hunter2"), "{shown}");
    assert!(shown.contains("***"), "{shown}");
}

#[test]
fn postgres_errors_are_classified_for_retries() {
    let endpoint = Endpoint::new("db.internal", 5432);
    let down = PgError::Down {
        endpoint: endpoint.clone(),
        source: "connection refused".into(),
    };
    assert!(down.is_retryable());
    let err: crate::error::Error = down.into();
    assert!(err.is_retryable());
    assert_eq!(err.error_type(), "Retryable.DataStoreError");
    assert!(err.to_string().contains("db.internal:5432"), "{err}");

    let malformed = PgError::Malformed {
        endpoint: endpoint.clone(),
        what: "pg_backup_stop",
        detail: "no row".into(),
    };
    assert!(!malformed.is_retryable());
    let unsupported = PgError::Unsupported {
        endpoint,
        version_num: 90_624,
    };
    assert!(!unsupported.is_retryable());
    assert!(unsupported.to_string().contains("10 or newer"));
}

#[test]
fn a_backup_session_lifts_only_the_timeouts_its_version_knows() {
    let v10 = no_timeouts(100_000);
    for set in [
        "statement_timeout = 0",
        "lock_timeout = 0",
        "idle_in_transaction_session_timeout = 0",
    ] {
        assert!(v10.contains(set), "{v10}");
    }
    assert!(!v10.contains("idle_session_timeout"), "unknown before 14: {v10}");
    let v14 = no_timeouts(140_000);
    assert!(v14.contains("idle_session_timeout = 0"), "{v14}");
    assert!(
        !v14.contains("SET transaction_timeout"),
        "unknown before 17: {v14}"
    );
    assert!(no_timeouts(170_000).contains("SET transaction_timeout = 0"));
}
