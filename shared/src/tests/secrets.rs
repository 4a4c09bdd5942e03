//! References read and refused without AWS, and the store's errors against
//! canned SSM / Secrets Manager answers (the SDK's test HTTP client): what
//! moto cannot show, throttling and 5xx (retryable after the SDK's own
//! retries) against access denied (not), each naming the variable and the
//! reference and never a value.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use aws_config::{BehaviorVersion, Region};
use aws_sdk_ssm::config::{Credentials, SharedCredentialsProvider};
use aws_smithy_http_client::test_util::infallible_client_fn;

use super::*;

#[test]
fn references_of_each_form_are_read() {
    assert_eq!(
        Reference::parse("/ninelives/redis-password"),
        Ok(Reference::Parameter {
            id: "/ninelives/redis-password".into(),
            region: None
        })
    );
    assert_eq!(
        Reference::parse("arn:aws:ssm:ca-west-1:123456789012:parameter/a/b"),
        Ok(Reference::Parameter {
            id: "arn:aws:ssm:ca-west-1:123456789012:parameter/a/b".into(),
            region: Some("ca-west-1".into())
        })
    );
    let secret = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:ninelives/db-AbCdEf";
    assert_eq!(
        Reference::parse(secret),
        Ok(Reference::Secret {
            id: secret.into(),
            region: "eu-west-1".into(),
            key: None
        })
    );
    let keyed = Reference::parse(&format!("{secret}:password")).unwrap();
    assert_eq!(
        keyed,
        Reference::Secret {
            id: secret.into(),
            region: "eu-west-1".into(),
            key: Some("password".into())
        }
    );
    assert_eq!(keyed.to_string(), format!("{secret}:password"));
}

#[test]
fn malformed_references_are_refused() {
    for bad in [
        "",
        "/",
        "password",
        "/a//b",
        "/a/",
        "/a b",
        "arn:aws:ssm:ca-west-1:12345678901:parameter/a",
        "arn:aws:ssm::123456789012:parameter/a",
        "arn:aws:ssm:ca-west-1:123456789012:parameter/",
        "arn:aws:ssm:ca-west-1:123456789012:document/a",
        "arn:aws:secretsmanager:ca-west-1:123456789012:secret",
        "arn:aws:secretsmanager:ca-west-1:123456789012:secret:",
        "arn:aws:secretsmanager:ca-west-1:123456789012:secret:db-AbCdEf:",
        "arn:aws:secretsmanager:ca-west-1:123456789012:secret:db-AbCdEf:k:AWSCURRENT",
        "arn:aws:kms:ca-west-1:123456789012:key/abc",
    ] {
        assert!(Reference::parse(bad).is_err(), "{bad:?} must be refused");
    }
}

#[test]
fn secrets_and_the_overlay_print_no_value() {
    let secret = Secret::new("hunter2");
    assert_eq!(format!("{secret:?}"), "Secret(***)");
    let env: HashMap<&str, &str> = HashMap::from([("PGDATABASE", "app")]);
    let with = WithSecrets::new(&env, vec![("PGPASSWORD", secret)]);
    let printed = format!("{with:?}");
    assert!(
        printed.contains("PGPASSWORD") && !printed.contains("hunter2"),
        "{printed}"
    );
    assert_eq!(with.get("PGPASSWORD").as_deref(), Some("hunter2"));
    assert_eq!(with.get("PGDATABASE").as_deref(), Some("app"));
    let refused = with.redact(ConfigError::Invalid {
        name: "PGPASSWORD",
        value: "hunter2".into(),
        reason: "r".into(),
    });
    assert!(!refused.to_string().contains("hunter2"), "{refused}");
}

#[test]
fn json_keys_are_taken_or_refused_without_quoting_the_secret() {
    let text = Secret::new(r#"{"password":"hunter2","port":5432,"nested":{"a":"b"}}"#);
    assert_eq!(json_key(&text, "password").unwrap().expose(), "hunter2");
    for (key, why) in [
        ("user", "has no key"),
        ("port", "is a number"),
        ("nested", "is an object"),
    ] {
        let err = json_key(&text, key).unwrap_err();
        assert!(
            err.contains(why) && !err.contains("hunter2") && !err.contains("5432"),
            "{err}"
        );
    }
    // A string that is not JSON: serde_json would quote pieces of it.
    let err = json_key(&Secret::new("hunter2 not json"), "password").unwrap_err();
    assert!(
        err.contains("not a JSON object") && !err.contains("hunter2"),
        "{err}"
    );
}

/// A store on canned answers: every request gets `(status, body)`; the
/// number of requests is counted.
fn store(status: u16, body: &'static str) -> (AwsSecretStore, Arc<AtomicUsize>) {
    let count = Arc::new(AtomicUsize::new(0));
    let seen = count.clone();
    let http = infallible_client_fn(move |_| {
        seen.fetch_add(1, Ordering::SeqCst);
        http::Response::builder()
            .status(status)
            .header("content-type", "application/x-amz-json-1.1")
            .body(body)
            .unwrap()
    });
    let sdk = SdkConfig::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("ca-west-1"))
        .credentials_provider(SharedCredentialsProvider::new(Credentials::for_tests()))
        .retry_config(crate::aws::retry_config().with_initial_backoff(Duration::from_millis(1)))
        .timeout_config(crate::aws::timeout_config())
        .http_client(http)
        .build();
    (AwsSecretStore::new(&sdk), count)
}

async fn fetch_redis_password(store: &AwsSecretStore, reference: &str) -> Result<Option<String>, Error> {
    let env: HashMap<&str, &str> = HashMap::from([("REDIS_PASSWORD_FROM", reference)]);
    let wanted = references(&env)?;
    Ok(resolve(&env, &wanted, store).await?.get("REDIS_PASSWORD"))
}

#[tokio::test]
async fn a_parameter_is_read() {
    let (store, count) = store(
        200,
        r#"{"Parameter":{"Name":"/n/redis","Type":"SecureString","Value":"hunter2","Version":1}}"#,
    );
    let got = fetch_redis_password(&store, "/n/redis").await.unwrap();
    assert_eq!(got.as_deref(), Some("hunter2"));
    assert_eq!(count.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn throttling_and_server_errors_are_retried_then_retryable() {
    for (status, body) in [
        (
            400,
            r#"{"__type":"ThrottlingException","message":"Rate exceeded"}"#,
        ),
        (500, r#"{"__type":"InternalServerError","message":"oops"}"#),
    ] {
        let (store, count) = store(status, body);
        let err = fetch_redis_password(&store, "/n/redis").await.unwrap_err();
        assert!(err.is_retryable(), "{status}: {err:?}");
        assert_eq!(
            count.load(Ordering::SeqCst),
            crate::aws::MAX_ATTEMPTS as usize,
            "{err}"
        );
        assert!(err.to_string().contains("REDIS_PASSWORD_FROM=/n/redis"), "{err}");
    }
}

#[tokio::test]
async fn access_denied_is_not_retried() {
    let (store, count) = store(
        400,
        r#"{"__type":"AccessDeniedException","message":"not authorized to perform: secretsmanager:GetSecretValue"}"#,
    );
    let reference = "arn:aws:secretsmanager:ca-west-1:123456789012:secret:n/db-AbCdEf:password";
    let err = fetch_redis_password(&store, reference).await.unwrap_err();
    assert!(!err.is_retryable(), "{err:?}");
    assert_eq!(err.aws_code(), Some("AccessDeniedException"));
    assert_eq!(count.load(Ordering::SeqCst), 1);
    assert!(
        err.to_string()
            .contains(&format!("REDIS_PASSWORD_FROM={reference}")),
        "{err}"
    );
}

#[tokio::test]
async fn an_empty_value_is_refused() {
    let (store, _) = store(200, r#"{"SecretString":"","Name":"n/db"}"#);
    let reference = "arn:aws:secretsmanager:ca-west-1:123456789012:secret:n/db-AbCdEf";
    let err = fetch_redis_password(&store, reference).await.unwrap_err();
    assert!(!err.is_retryable() && err.to_string().contains("empty"), "{err}");
}

#[tokio::test]
async fn a_value_of_only_white_space_is_refused_and_not_quoted() {
    let (store, _) = store(200, r#"{"SecretString":" \n\t ","Name":"n/db"}"#);
    let reference = "arn:aws:secretsmanager:ca-west-1:123456789012:secret:n/db-AbCdEf";
    let err = fetch_redis_password(&store, reference).await.unwrap_err();
    let message = err.to_string();
    assert!(
        !err.is_retryable() && message.contains("only white space"),
        "{message}"
    );
    assert!(!message.contains('\t'), "{message}");
}

#[tokio::test]
async fn two_keys_of_one_secret_are_read_with_one_request() {
    let (store, count) = store(
        200,
        r#"{"SecretString":"{\"username\":\"kate\",\"password\":\"hunter2\"}","Name":"n/db"}"#,
    );
    let secret = "arn:aws:secretsmanager:ca-west-1:123456789012:secret:n/db-AbCdEf";
    let user = format!("{secret}:username");
    let password = format!("{secret}:password");
    let env: HashMap<&str, &str> = HashMap::from([
        ("REDIS_USERNAME_FROM", user.as_str()),
        ("REDIS_PASSWORD_FROM", password.as_str()),
        ("PGPASSWORD_FROM", password.as_str()),
    ]);
    let wanted = references(&env).unwrap();
    assert_eq!(wanted.len(), 3);
    let resolved = resolve(&env, &wanted, &store).await.unwrap();
    assert_eq!(resolved.get("REDIS_USERNAME").as_deref(), Some("kate"));
    assert_eq!(resolved.get("REDIS_PASSWORD").as_deref(), Some("hunter2"));
    assert_eq!(resolved.get("PGPASSWORD").as_deref(), Some("hunter2"));
    assert_eq!(count.load(Ordering::SeqCst), 1, "one GetSecretValue");
}

#[tokio::test]
async fn a_shared_secret_that_cannot_be_read_fails_under_the_first_credential() {
    let (store, count) = store(
        400,
        r#"{"__type":"AccessDeniedException","message":"not authorized to perform: secretsmanager:GetSecretValue"}"#,
    );
    let secret = "arn:aws:secretsmanager:ca-west-1:123456789012:secret:n/db-AbCdEf";
    let user = format!("{secret}:username");
    let password = format!("{secret}:password");
    let env: HashMap<&str, &str> = HashMap::from([
        ("REDIS_USERNAME_FROM", user.as_str()),
        ("REDIS_PASSWORD_FROM", password.as_str()),
    ]);
    let wanted = references(&env).unwrap();
    let first = wanted[0].label();
    let err = resolve(&env, &wanted, &store).await.unwrap_err();
    assert_eq!(err.aws_code(), Some("AccessDeniedException"));
    assert!(err.to_string().contains(&first), "{err}");
    assert_eq!(count.load(Ordering::SeqCst), 1);
}
