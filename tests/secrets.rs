//! Credentials by reference (`<VAR>_FROM`, `shared::secrets`) against the
//! local AWS: SSM parameters and Secrets Manager secrets are created in
//! moto, read back through the functions' own start-up path
//! (`shared::function`), and the credentials then really log in to a
//! `redis-server` with `requirepass` and a PostgreSQL server with a
//! password. Errors are checked for what they name (the variable and the
//! reference) and for what they must never hold (the value).
//!
//! Region ca-west-1; Redis on 127.0.12.2:17620, PostgreSQL on
//! 127.0.12.3:17621 (this file's share of the ports, see
//! tests/support/redis.rs).

use std::sync::atomic::{AtomicUsize, Ordering};

use aws_config::SdkConfig;
use aws_sdk_ssm::types::ParameterType;
use ninelives_tests::postgres::{PASSWORD, PgServer, postgres_instance};
use ninelives_tests::redis::{RedisServer, redis_instance};
use ninelives_tests::{env, event, fresh, sdk, secs, unique};
use publish_metrics::PublishMetrics;
use redis_failover::RedisFailover;
use serde_json::json;
use shared::function::{from_env, from_env_with};
use shared::secrets::{AwsSecretStore, Secret, SecretStore, references, resolve};
use shared::{ConfigError, Error};

const REGION: &str = "ca-west-1";
const ACCOUNT: &str = "123456789012";

/// A value no other text contains, to look for in errors and summaries.
fn sentinel(what: &str) -> String {
    format!("Sentinel-{what}-{}", unique())
}

async fn put_parameter(sdk: &SdkConfig, name: &str, value: &str, kind: ParameterType) {
    aws_sdk_ssm::Client::new(sdk)
        .put_parameter()
        .name(name)
        .value(value)
        .r#type(kind)
        .overwrite(true)
        .send()
        .await
        .expect("PutParameter");
}

/// A new secret holding `value`; its ARN.
async fn create_secret(sdk: &SdkConfig, name: &str, value: &str) -> String {
    aws_sdk_secretsmanager::Client::new(sdk)
        .create_secret()
        .name(name)
        .secret_string(value)
        .send()
        .await
        .expect("CreateSecret")
        .arn()
        .expect("the new secret's ARN")
        .to_owned()
}

/// The value `env` gives `var` once its references are resolved.
async fn resolved(sdk: &SdkConfig, pairs: &[(&str, &str)], var: &str) -> Result<Option<String>, Error> {
    use shared::config::Env;
    let env = env(pairs);
    let wanted = references(&env)?;
    let with = resolve(&env, &wanted, &AwsSecretStore::new(sdk)).await?;
    Ok(with.get(var))
}

/// Asserts `err` names the variable and reference, is not retryable, and
/// holds none of `values` in its message or its `Debug` print.
fn assert_names_not_values(err: &Error, from: &str, reference: &str, values: &[&str]) {
    let text = err.to_string();
    let debug = format!("{err:?}");
    assert!(text.contains(&format!("{from}={reference}")), "{text}");
    assert!(!err.is_retryable(), "{text}");
    for value in values {
        assert!(
            !text.contains(value) && !debug.contains(value),
            "a value leaked: {text} / {debug}"
        );
    }
}

#[tokio::test]
async fn an_ssm_secure_string_is_read_decrypted_by_name_and_by_arn() {
    let sdk = sdk(REGION).await;
    let name = format!("/ninelives-test/{}/redis-password", unique());
    let value = sentinel("ssm");
    put_parameter(&sdk, &name, &value, ParameterType::SecureString).await;

    let by_name = resolved(&sdk, &[("REDIS_PASSWORD_FROM", &name)], "REDIS_PASSWORD").await;
    assert_eq!(by_name.expect("by name").as_deref(), Some(value.as_str()));

    let arn = format!("arn:aws:ssm:{REGION}:{ACCOUNT}:parameter{name}");
    let by_arn = resolved(&sdk, &[("REDIS_PASSWORD_FROM", &arn)], "REDIS_PASSWORD").await;
    assert_eq!(by_arn.expect("by ARN").as_deref(), Some(value.as_str()));

    // A plain String parameter works the same (WithDecryption is ignored).
    let plain = format!("/ninelives-test/{}/pg-user", unique());
    put_parameter(&sdk, &plain, "monitor", ParameterType::String).await;
    let user = resolved(&sdk, &[("PGUSER_FROM", &plain)], "PGUSER").await;
    assert_eq!(user.expect("a String parameter").as_deref(), Some("monitor"));
}

#[tokio::test]
async fn a_secrets_manager_json_key_or_plain_string_is_read() {
    let sdk = sdk(REGION).await;
    let password = sentinel("json");
    let json_arn = create_secret(
        &sdk,
        &format!("ninelives-test/{}/db", unique()),
        &json!({"username": "app", "password": password, "port": 5432}).to_string(),
    )
    .await;
    let plain_value = sentinel("plain");
    let plain_arn = create_secret(&sdk, &format!("ninelives-test/{}/plain", unique()), &plain_value).await;

    let key = format!("{json_arn}:password");
    let got = resolved(&sdk, &[("PGPASSWORD_FROM", &key)], "PGPASSWORD").await;
    assert_eq!(got.expect("a JSON key").as_deref(), Some(password.as_str()));
    let user = format!("{json_arn}:username");
    let got = resolved(&sdk, &[("PGUSER_FROM", &user)], "PGUSER").await;
    assert_eq!(got.expect("another key").as_deref(), Some("app"));

    let got = resolved(&sdk, &[("MONGODB_PASSWORD_FROM", &plain_arn)], "MONGODB_PASSWORD").await;
    assert_eq!(
        got.expect("a plain secret").as_deref(),
        Some(plain_value.as_str())
    );

    // A key that is absent, one that is not a string, a key asked of a
    // secret that is not JSON: named, never retried, never quoting the
    // secret string.
    for (reference, why) in [
        (format!("{json_arn}:passwd"), "has no key \"passwd\""),
        (format!("{json_arn}:port"), "is not a string (it is a number)"),
        (format!("{plain_arn}:password"), "is not a JSON object"),
    ] {
        let err = resolved(&sdk, &[("PGPASSWORD_FROM", &reference)], "PGPASSWORD")
            .await
            .expect_err(&reference);
        assert!(matches!(err, Error::Resource { .. }), "{err:?}");
        assert!(err.to_string().contains(why), "{err}");
        assert_names_not_values(
            &err,
            "PGPASSWORD_FROM",
            &reference,
            &[&password, &plain_value, "5432"],
        );
    }
}

#[tokio::test]
async fn a_missing_parameter_or_secret_is_a_named_error_not_retried() {
    let sdk = sdk(REGION).await;
    let name = format!("/ninelives-test/{}/absent", unique());
    let err = resolved(&sdk, &[("REDIS_PASSWORD_FROM", &name)], "REDIS_PASSWORD")
        .await
        .expect_err("no such parameter");
    assert_eq!(err.aws_code(), Some("ParameterNotFound"), "{err:?}");
    assert_names_not_values(&err, "REDIS_PASSWORD_FROM", &name, &[]);

    let arn = format!(
        "arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:ninelives-test/{}/absent-AbCdEf",
        unique()
    );
    let err = resolved(&sdk, &[("PGPASSWORD_FROM", &arn)], "PGPASSWORD")
        .await
        .expect_err("no such secret");
    assert_eq!(err.aws_code(), Some("ResourceNotFoundException"), "{err:?}");
    assert_names_not_values(&err, "PGPASSWORD_FROM", &arn, &[]);
}

/// A store that must not be reached: counts the calls it gets.
#[derive(Default)]
struct Untouched {
    calls: AtomicUsize,
}

impl SecretStore for Untouched {
    async fn parameter(&self, _: Option<&str>, id: &str) -> Result<Secret, Error> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        Err(Error::resource(id, "this test's store is never to be called"))
    }

    async fn secret_string(&self, _: &str, id: &str) -> Result<Secret, Error> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        Err(Error::resource(id, "this test's store is never to be called"))
    }
}

/// Settings that must be refused: the variable the error names, and words
/// of its reason.
type Refused<'a> = (&'a [(&'a str, &'a str)], &'a str, &'a str);

#[tokio::test]
async fn both_set_or_a_bad_reference_is_a_config_error_before_any_aws_call() {
    let sdk = sdk(REGION).await;
    let store = Untouched::default();
    let good = "/ninelives/redis-password";
    let cases: &[Refused] = &[
        (
            &[("REDIS_PASSWORD", "direct-value"), ("REDIS_PASSWORD_FROM", good)],
            "REDIS_PASSWORD_FROM",
            "REDIS_PASSWORD is set as well",
        ),
        (
            &[("PGUSER", "postgres"), ("PGUSER_FROM", good)],
            "PGUSER_FROM",
            "PGUSER is set as well",
        ),
        (
            &[("REDIS_PASSWORD_FROM", "redis-password")],
            "REDIS_PASSWORD_FROM",
            "expected an SSM",
        ),
        (
            &[("REDIS_PASSWORD_FROM", "/a//b")],
            "REDIS_PASSWORD_FROM",
            "no empty path segment",
        ),
        (
            &[("REDIS_PASSWORD_FROM", "/a b")],
            "REDIS_PASSWORD_FROM",
            "letters, digits",
        ),
        (
            &[("MONGODB_PASSWORD_FROM", "arn:aws:ssm:ca-west-1:123:parameter/x")],
            "MONGODB_PASSWORD_FROM",
            "12 digits",
        ),
        (
            &[(
                "MONGODB_PASSWORD_FROM",
                "arn:aws:ssm:ca-west-1:123456789012:document/x",
            )],
            "MONGODB_PASSWORD_FROM",
            "names a parameter/",
        ),
        (
            &[(
                "PGPASSWORD_FROM",
                "arn:aws:secretsmanager:ca-west-1:123456789012:secret:",
            )],
            "PGPASSWORD_FROM",
            "names a secret",
        ),
        (
            &[(
                "PGPASSWORD_FROM",
                "arn:aws:secretsmanager:ca-west-1:123456789012:secret:db-AbCdEf:password:AWSPREVIOUS",
            )],
            "PGPASSWORD_FROM",
            "only one :KEY",
        ),
        (
            &[("PGPASSWORD_FROM", "arn:aws:s3:::bucket/key")],
            "PGPASSWORD_FROM",
            "expected an SSM",
        ),
        // The rest of the configuration is checked first too: a bad
        // setting next to a good reference.
        (
            &[
                ("REDIS_PASSWORD_FROM", good),
                ("REDIS_CONNECT_TIMEOUT_MS", "fast"),
            ],
            "REDIS_CONNECT_TIMEOUT_MS",
            "expected a number",
        ),
    ];
    for (pairs, name, reason) in cases {
        let mut pairs = pairs.to_vec();
        pairs.push(("HOSTED_ZONE_ID", "Z0123456789ABCDEFGHIJ"));
        let err = from_env_with::<RedisFailover>(&env(&pairs), &sdk, &store)
            .await
            .err()
            .unwrap_or_else(|| panic!("{pairs:?} must be refused"));
        let Error::Config(ConfigError::Invalid { name: got, .. }) = &err else {
            panic!("{pairs:?}: not a config error: {err:?}");
        };
        assert_eq!(got, name, "{err}");
        assert!(err.to_string().contains(reason), "{pairs:?}: {err}");
        assert!(!err.to_string().contains("direct-value"), "{err}");
        assert!(!err.is_retryable());
    }
    assert_eq!(
        store.calls.load(Ordering::SeqCst),
        0,
        "no fetch before the settings are valid"
    );
}

#[tokio::test]
async fn a_fetched_user_name_the_function_refuses_is_not_quoted() {
    let sdk = sdk(REGION).await;
    let name = format!("/ninelives-test/{}/pg-user", unique());
    // Longer than PostgreSQL's 63-byte names: PgSettings refuses it.
    let user = format!("{}-{}", sentinel("user"), "u".repeat(64));
    put_parameter(&sdk, &name, &user, ParameterType::SecureString).await;
    let err =
        from_env_with::<PublishMetrics>(&env(&[("PGUSER_FROM", &name)]), &sdk, &AwsSecretStore::new(&sdk))
            .await
            .err()
            .expect("a 64+ byte user name is refused");
    assert!(
        matches!(err, Error::Config(ConfigError::Invalid { name: "PGUSER", .. })),
        "{err:?}"
    );
    assert!(
        !err.to_string().contains(&user) && !format!("{err:?}").contains(&user),
        "{err:?}"
    );
}

#[tokio::test]
async fn from_env_reads_an_arn_in_another_region_than_the_functions() {
    // `from_env` loads the process's AWS configuration (its region is the
    // suite's default, not ca-west-1): a reference by ARN is read from the
    // ARN's region all the same.
    let sdk = sdk(REGION).await;
    let name = format!("/ninelives-test/{}/cross-region", unique());
    put_parameter(&sdk, &name, &sentinel("cross"), ParameterType::SecureString).await;
    let arn = format!("arn:aws:ssm:{REGION}:{ACCOUNT}:parameter{name}");
    let zone = ("HOSTED_ZONE_ID", "Z0123456789ABCDEFGHIJ");
    from_env::<RedisFailover>(&env(&[zone, ("REDIS_PASSWORD_FROM", &arn)]))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let absent = format!("{arn}-absent");
    let err = from_env::<RedisFailover>(&env(&[zone, ("REDIS_PASSWORD_FROM", &absent)]))
        .await
        .err()
        .expect("an absent parameter stops the start-up");
    assert_eq!(err.aws_code(), Some("ParameterNotFound"), "{err:?}");
    assert_names_not_values(&err, "REDIS_PASSWORD_FROM", &absent, &[]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credentials_by_reference_log_in_to_redis_and_postgresql() {
    let sdk = fresh(REGION).await;
    let redis_password = sentinel("redis");
    let redis = RedisServer::start("127.0.12.2", 17620, Some(&redis_password));
    let pg = PgServer::primary("127.0.12.3", 17621).await;
    let redis_cluster = format!("chain-{}.example.com", unique());
    let pg_cluster = format!("pg-{}.example.com", unique());
    let redis_id = redis_instance(&sdk, &redis_cluster, &redis.endpoint().to_string()).await;
    let pg_id = postgres_instance(&sdk, &pg_cluster, &format!("{}:{}", pg.host(), pg.port())).await;

    let parameter = format!("/ninelives-test/{}/redis-password", unique());
    put_parameter(&sdk, &parameter, &redis_password, ParameterType::SecureString).await;
    let secret = create_secret(
        &sdk,
        &format!("ninelives-test/{}/postgres", unique()),
        &json!({"username": "postgres", "password": PASSWORD}).to_string(),
    )
    .await;
    let pg_user = format!("{secret}:username");
    let pg_password = format!("{secret}:password");
    let settings = [
        ("REDIS_PASSWORD_FROM", parameter.as_str()),
        ("PGUSER_FROM", pg_user.as_str()),
        ("PGPASSWORD_FROM", pg_password.as_str()),
        ("NODE_TIMEOUT_MS", "5000"),
        ("PG_CONNECT_TIMEOUT_MS", "2000"),
    ];

    let f: PublishMetrics = from_env_with(&env(&settings), &sdk, &AwsSecretStore::new(&sdk))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let summary = f
        .handle_event(event(json!({}), secs(60)))
        .await
        .expect("the run publishes what it read");
    assert_eq!(
        summary["nodes"],
        json!({"postgres": 1, "redis": 1}),
        "{summary:#}"
    );
    assert_eq!(summary["down"], json!([]), "both nodes logged in: {summary:#}");
    let text = summary.to_string();
    assert!(
        !text.contains(&redis_password) && !text.contains(PASSWORD),
        "{text}"
    );

    // What was published says the same: each node up, read with the
    // credentials the references gave.
    let at = chrono::DateTime::parse_from_rfc3339(summary["timestamp"].as_str().expect("timestamp"))
        .expect("RFC 3339")
        .timestamp();
    for (namespace, cluster, node) in [
        ("NineLives/Redis", &redis_cluster, &redis_id),
        ("NineLives/Postgres", &pg_cluster, &pg_id),
    ] {
        let points = aws_sdk_cloudwatch::Client::new(&sdk)
            .get_metric_statistics()
            .namespace(namespace)
            .metric_name("NodeUp")
            .dimensions(
                aws_sdk_cloudwatch::types::Dimension::builder()
                    .name("cluster")
                    .value(cluster)
                    .build(),
            )
            .dimensions(
                aws_sdk_cloudwatch::types::Dimension::builder()
                    .name("node")
                    .value(node)
                    .build(),
            )
            .start_time(aws_sdk_cloudwatch::primitives::DateTime::from_secs(at - 120))
            .end_time(aws_sdk_cloudwatch::primitives::DateTime::from_secs(at + 120))
            .period(60)
            .statistics(aws_sdk_cloudwatch::types::Statistic::Minimum)
            .send()
            .await
            .expect("GetMetricStatistics");
        let minima: Vec<f64> = points.datapoints().iter().filter_map(|p| p.minimum()).collect();
        assert_eq!(minima, [1.0], "{namespace} NodeUp of {node}");
    }

    // The same references with the Redis password changed under them: the
    // node now refuses us, which proves the login above used the fetched
    // value and not some default.
    put_parameter(&sdk, &parameter, "not-the-password", ParameterType::SecureString).await;
    let f: PublishMetrics = from_env_with(&env(&settings), &sdk, &AwsSecretStore::new(&sdk))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let dry = f
        .handle_event(event(json!({"dry_run": true}), secs(60)))
        .await
        .expect("a dry run");
    let down = dry["down"].as_array().expect("down");
    assert_eq!(down.len(), 1, "{dry:#}");
    assert_eq!(down[0]["node"], redis_id.as_str(), "{dry:#}");
    assert!(
        down[0]["reason"]
            .as_str()
            .unwrap_or("")
            .contains("authentication"),
        "{dry:#}"
    );
    assert!(!dry.to_string().contains("not-the-password"), "{dry:#}");
}
