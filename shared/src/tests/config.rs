//! Unit tests of `config`.

use super::*;

fn env(pairs: &[(&'static str, &'static str)]) -> HashMap<&'static str, &'static str> {
    pairs.iter().copied().collect()
}

#[test]
fn flags() {
    assert!(!flag(&env(&[]), "DRY_RUN", false).unwrap());
    assert!(flag(&env(&[("DRY_RUN", "TRUE")]), "DRY_RUN", false).unwrap());
    assert!(!flag(&env(&[("DRY_RUN", " 0 ")]), "DRY_RUN", true).unwrap());
    assert!(!flag(&env(&[("DRY_RUN", "")]), "DRY_RUN", false).unwrap());
    let err = flag(&env(&[("DRY_RUN", "maybe")]), "DRY_RUN", false).unwrap_err();
    assert!(err.to_string().contains("DRY_RUN=\"maybe\""), "{err}");
}

#[test]
fn numbers_in_range() {
    let e = env(&[("N", "12"), ("BAD", "-3"), ("BIG", "99999"), ("TXT", "7d")]);
    assert_eq!(number(&e, "N", 1u32, 1, 100).unwrap(), 12);
    assert_eq!(number(&e, "UNSET", 5u32, 1, 100).unwrap(), 5);
    for name in ["BAD", "BIG", "TXT"] {
        let err = number(&e, name, 1u32, 1, 100).unwrap_err();
        assert!(err.to_string().contains(name), "{err}");
    }
    let floats = env(&[("R", "2.5"), ("NAN", "NaN"), ("INF", "inf")]);
    assert_eq!(number(&floats, "R", 4.0f64, 0.0, 100.0).unwrap(), 2.5);
    assert!(number(&floats, "NAN", 4.0f64, 0.0, 100.0).is_err());
    assert!(number(&floats, "INF", 4.0f64, 0.0, 100.0).is_err());
}

#[test]
fn arns() {
    let good = "arn:aws:sns:us-east-1:123456789012:ninelives";
    let e = env(&[
        ("T", good),
        ("Q", "arn:aws:sqs:us-east-1:123456789012:q"),
        ("X", "ninelives"),
        ("A", "arn:aws:sns:us-east-1:me:topic"),
    ]);
    assert_eq!(optional_arn(&e, "T", "sns").unwrap().as_deref(), Some(good));
    assert_eq!(optional_arn(&e, "U", "sns").unwrap(), None);
    assert!(optional_arn(&e, "Q", "sns").is_err());
    assert!(optional_arn(&e, "A", "sns").is_err(), "the account is 12 digits");
    let err = optional_arn(&e, "X", "sns").unwrap_err();
    assert!(err.to_string().contains("X=\"ninelives\""), "{err}");
}

#[test]
fn common() {
    let c = Common::from_env(&env(&[("DRY_RUN", "true")])).unwrap();
    assert!(c.dry_run);
    assert_eq!(c.notify_topic_arn, None);
    assert!(Common::from_env(&env(&[("NOTIFY_TOPIC_ARN", "x")])).is_err());
}

#[test]
fn required_names_the_variable() {
    let err = required(&env(&[("HOSTED_ZONE_ID", " ")]), "HOSTED_ZONE_ID").unwrap_err();
    assert_eq!(
        err.to_string(),
        "environment variable HOSTED_ZONE_ID is required but not set"
    );
}
