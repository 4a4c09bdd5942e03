//! Credentials by reference: each credential setting (`REDIS_PASSWORD`,
//! `PGUSER`, ... see [`CREDENTIALS`]) may instead be given as `<VAR>_FROM`,
//! naming where its value is kept:
//!
//! - an SSM parameter, by name (`/ninelives/redis-password`) or ARN
//!   (`arn:aws:ssm:REGION:ACCOUNT:parameter/ninelives/redis-password`),
//!   read with `GetParameter` and `WithDecryption` (a `SecureString` is
//!   decrypted, a `String` is read as it is);
//! - a Secrets Manager secret, by ARN
//!   (`arn:aws:secretsmanager:REGION:ACCOUNT:secret:NAME`), optionally
//!   followed by `:KEY` as ECS writes it, to take one key of a JSON secret
//!   string (`...:secret:ninelives/db-AbCdEf:password`).
//!
//! Why: a value in a Lambda function's environment is readable by anyone
//! who may read the function's configuration, and it is kept in every
//! CloudFormation template and change set; a reference is not a secret, and
//! the value itself stays where access to it is logged and can be rotated.
//!
//! The references are checked before any AWS call ([`references`], config
//! errors first as for every other setting), then the values are fetched
//! once per process ([`resolve`]) through the narrow [`SecretStore`]
//! capability and laid over the environment ([`WithSecrets`]) that the
//! function's own `Config::from_env` reads, so the functions themselves do
//! not know where a value came from. A value never appears in an error, a
//! log line or a `Debug` print: errors name the variable and the reference,
//! [`Secret`] and [`WithSecrets`] print `***`.

use std::fmt;
use std::future::Future;

use aws_config::{Region, SdkConfig};
use futures::future::join_all;

use crate::config::Env;
use crate::error::{ConfigError, Error};

/// Every credential setting that may be given by reference, with the name
/// of its reference variable.
pub const CREDENTIALS: [(&str, &str); 6] = [
    ("REDIS_USERNAME", "REDIS_USERNAME_FROM"),
    ("REDIS_PASSWORD", "REDIS_PASSWORD_FROM"),
    ("MONGODB_USERNAME", "MONGODB_USERNAME_FROM"),
    ("MONGODB_PASSWORD", "MONGODB_PASSWORD_FROM"),
    ("PGUSER", "PGUSER_FROM"),
    ("PGPASSWORD", "PGPASSWORD_FROM"),
];

/// Longest SSM parameter name (the fully qualified name, AWS's limit).
const MAX_PARAMETER_NAME: usize = 2048;

/// A credential value. Its `Debug` prints `***`; the value is only reached
/// through [`Secret::expose`].
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The value, for the one place that needs it (the overlaid
    /// environment a `Config` is read from).
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// Where a credential's value is kept. Displays as the reference text the
/// setting gave (never a value).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reference {
    /// An SSM parameter: `id` is the name or ARN as given (`GetParameter`
    /// takes either); `region` is the ARN's region, if it is an ARN.
    Parameter { id: String, region: Option<String> },
    /// A Secrets Manager secret: `id` is the secret's ARN without the key;
    /// `key`, when given, is the JSON key whose string value is wanted.
    Secret {
        id: String,
        region: String,
        key: Option<String>,
    },
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reference::Parameter { id, .. } => f.write_str(id),
            Reference::Secret { id, key: None, .. } => f.write_str(id),
            Reference::Secret {
                id, key: Some(key), ..
            } => write!(f, "{id}:{key}"),
        }
    }
}

impl Reference {
    /// Reads a reference, or says what is wrong with it.
    pub fn parse(text: &str) -> Result<Reference, String> {
        if text.starts_with('/') {
            return parameter_name(text).map(|()| Reference::Parameter {
                id: text.to_owned(),
                region: None,
            });
        }
        let parts: Vec<&str> = text.split(':').collect();
        if parts.len() < 6 || parts[0] != "arn" {
            return Err(EXPECTED.to_owned());
        }
        let (partition, service, region, account) = (parts[1], parts[2], parts[3], parts[4]);
        if partition.is_empty() || region.is_empty() {
            return Err(format!(
                "the ARN's partition and region must not be empty; {EXPECTED}"
            ));
        }
        if account.len() != 12 || !account.bytes().all(|b| b.is_ascii_digit()) {
            return Err(format!("the ARN's account must be 12 digits; {EXPECTED}"));
        }
        match service {
            "ssm" => {
                let resource = parts[5..].join(":");
                let Some(name) = resource.strip_prefix("parameter/") else {
                    return Err(format!("an SSM ARN names a parameter/...; {EXPECTED}"));
                };
                // The ARN of `/a/b` is `...:parameter/a/b`, of `a` is
                // `...:parameter/a`: the name is checked with its slash.
                parameter_name(&format!("/{}", name.trim_start_matches('/')))?;
                Ok(Reference::Parameter {
                    id: text.to_owned(),
                    region: Some(region.to_owned()),
                })
            }
            "secretsmanager" => {
                if parts[5] != "secret" || parts.len() < 7 || parts[6].is_empty() {
                    return Err(format!(
                        "a Secrets Manager ARN names a secret (...:secret:NAME); {EXPECTED}"
                    ));
                }
                let key = match &parts[7..] {
                    [] => None,
                    [key] if !key.is_empty() => Some((*key).to_owned()),
                    _ => {
                        return Err("after the secret's ARN only one :KEY (a JSON key) may follow; \
                                    version stages and ids are not supported"
                            .to_owned());
                    }
                };
                Ok(Reference::Secret {
                    id: parts[..7].join(":"),
                    region: region.to_owned(),
                    key,
                })
            }
            _ => Err(EXPECTED.to_owned()),
        }
    }
}

const EXPECTED: &str = "expected an SSM parameter name (/path/name), an SSM parameter ARN \
                        (arn:aws:ssm:REGION:ACCOUNT:parameter/NAME) or a Secrets Manager secret ARN \
                        (arn:aws:secretsmanager:REGION:ACCOUNT:secret:NAME, optionally :JSON-KEY)";

/// An SSM parameter name as AWS accepts it: letters, digits, `_.-/`, no
/// empty path segment.
fn parameter_name(name: &str) -> Result<(), String> {
    let valid = name.len() > 1
        && name.len() <= MAX_PARAMETER_NAME
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-' | b'/'))
        && !name.contains("//")
        && !name.ends_with('/');
    if !valid {
        return Err(format!(
            "an SSM parameter name is /path/name: letters, digits and _.-/ only, no empty path segment; \
             {EXPECTED}"
        ));
    }
    Ok(())
}

/// A credential to fetch: the setting it stands for and where it is kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Wanted {
    /// The setting, e.g. `REDIS_PASSWORD`.
    pub var: &'static str,
    /// Its reference variable, e.g. `REDIS_PASSWORD_FROM`.
    pub from: &'static str,
    pub reference: Reference,
}

impl Wanted {
    /// `REDIS_PASSWORD_FROM=/ninelives/redis`, for errors.
    fn label(&self) -> String {
        format!("{}={}", self.from, self.reference)
    }
}

/// Every `<VAR>_FROM` set in `env`, checked: a malformed reference, or a
/// setting given both directly and by reference, is a config error naming
/// the variables. No AWS call.
pub fn references(env: &impl Env) -> Result<Vec<Wanted>, ConfigError> {
    let mut wanted = Vec::new();
    for (var, from) in CREDENTIALS {
        let Some(text) = env.get(from) else {
            continue;
        };
        if env.get(var).is_some() {
            return Err(ConfigError::Invalid {
                name: from,
                value: text,
                reason: format!("{var} is set as well; set either {var} or {from}, not both"),
            });
        }
        let reference = Reference::parse(&text).map_err(|reason| ConfigError::Invalid {
            name: from,
            value: text.clone(),
            reason,
        })?;
        wanted.push(Wanted { var, from, reference });
    }
    Ok(wanted)
}

/// Where credential values are fetched from: `GetParameter` and
/// `GetSecretValue`, nothing else. Errors are [`Error::Aws`] (classified
/// retryable or not by the code and status) or [`Error::Resource`]; they
/// never hold a value.
pub trait SecretStore: Sync {
    /// The value of an SSM parameter (`id`: name or ARN), decrypted.
    fn parameter(&self, region: Option<&str>, id: &str)
    -> impl Future<Output = Result<Secret, Error>> + Send;

    /// The `SecretString` of a Secrets Manager secret (its current version).
    fn secret_string(&self, region: &str, id: &str) -> impl Future<Output = Result<Secret, Error>> + Send;
}

/// [`SecretStore`] on the official SSM and Secrets Manager clients. A
/// reference by ARN in another region than the function's is read from
/// that region (a client for it is made when needed).
#[derive(Debug, Clone)]
pub struct AwsSecretStore {
    sdk: SdkConfig,
}

impl AwsSecretStore {
    pub fn new(sdk: &SdkConfig) -> Self {
        AwsSecretStore { sdk: sdk.clone() }
    }

    /// The shared configuration, in `region` if one is given.
    fn sdk_in(&self, region: Option<&str>) -> SdkConfig {
        match region {
            Some(region) if self.sdk.region().is_none_or(|r| r.as_ref() != region) => self
                .sdk
                .to_builder()
                .region(Region::new(region.to_owned()))
                .build(),
            _ => self.sdk.clone(),
        }
    }
}

impl SecretStore for AwsSecretStore {
    async fn parameter(&self, region: Option<&str>, id: &str) -> Result<Secret, Error> {
        let client = aws_sdk_ssm::Client::new(&self.sdk_in(region));
        let out = client
            .get_parameter()
            .name(id)
            .with_decryption(true)
            .send()
            .await
            .map_err(|e| Error::aws("ssm:GetParameter", e))?;
        out.parameter
            .and_then(|p| p.value)
            .map(Secret)
            .ok_or_else(|| Error::resource(id, "the parameter has no value"))
    }

    async fn secret_string(&self, region: &str, id: &str) -> Result<Secret, Error> {
        let client = aws_sdk_secretsmanager::Client::new(&self.sdk_in(Some(region)));
        let out = client
            .get_secret_value()
            .secret_id(id)
            .send()
            .await
            .map_err(|e| Error::aws("secretsmanager:GetSecretValue", e))?;
        out.secret_string.map(Secret).ok_or_else(|| {
            Error::resource(
                id,
                "the secret has no SecretString (a binary secret cannot be a credential)",
            )
        })
    }
}

/// The environment with fetched credentials laid over it: `get` of a
/// resolved setting returns the fetched value, anything else comes from the
/// environment underneath. `Debug` lists the resolved names only.
pub struct WithSecrets<'a, E> {
    env: &'a E,
    values: Vec<(&'static str, Secret)>,
}

impl<E> fmt::Debug for WithSecrets<'_, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = self.values.iter().map(|(name, _)| *name).collect();
        f.debug_struct("WithSecrets").field("resolved", &names).finish()
    }
}

impl<'a, E: Env> WithSecrets<'a, E> {
    /// `env` with `values` (setting, value) over it.
    pub fn new(env: &'a E, values: Vec<(&'static str, Secret)>) -> Self {
        WithSecrets { env, values }
    }

    /// `env` with a stand-in for each wanted setting: reading the whole
    /// configuration through it checks every other setting before any AWS
    /// call. The stand-in is a valid user name and password everywhere.
    pub fn placeholders(env: &'a E, wanted: &[Wanted]) -> Self {
        let values = wanted
            .iter()
            .map(|w| (w.var, Secret::new("placeholder")))
            .collect();
        WithSecrets { env, values }
    }

    /// The settings laid over the environment.
    pub fn resolved(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.values.iter().map(|(name, _)| *name)
    }

    /// A config error with the value hidden when the setting it names is
    /// one of ours (a fetched user name the function's checks refused).
    pub fn redact(&self, err: ConfigError) -> ConfigError {
        match err {
            ConfigError::Invalid { name, reason, .. } if self.values.iter().any(|(n, _)| *n == name) => {
                ConfigError::Invalid {
                    name,
                    value: "***".to_owned(),
                    reason,
                }
            }
            other => other,
        }
    }
}

impl<E: Env> Env for WithSecrets<'_, E> {
    fn get(&self, name: &str) -> Option<String> {
        match self.values.iter().find(|(n, _)| *n == name) {
            Some((_, value)) => Some(value.expose().to_owned()),
            None => self.env.get(name),
        }
    }
}

/// Fetches every wanted credential (at once; there are at most six) and
/// lays them over `env`. The first failure is returned, naming the variable
/// and the reference, never a value.
///
/// Each parameter or secret is read once, however many credentials it
/// holds: a user name and a password kept as two keys of one secret (the
/// usual Secrets Manager layout) cost one `GetSecretValue` at start-up.
pub async fn resolve<'a, E: Env>(
    env: &'a E,
    wanted: &[Wanted],
    store: &impl SecretStore,
) -> Result<WithSecrets<'a, E>, Error> {
    let mut sources: Vec<Source> = Vec::new();
    let mut source_of = Vec::with_capacity(wanted.len());
    for w in wanted {
        let source = Source::of(&w.reference);
        let index = match sources.iter().position(|s| *s == source) {
            Some(index) => index,
            None => {
                sources.push(source);
                sources.len() - 1
            }
        };
        source_of.push(index);
    }
    let mut read: Vec<Option<Result<Secret, Error>>> = join_all(sources.iter().map(|s| s.read(store)))
        .await
        .into_iter()
        .map(Some)
        .collect();
    let mut values = Vec::with_capacity(wanted.len());
    for (w, &index) in wanted.iter().zip(&source_of) {
        let raw = match read.get(index) {
            Some(Some(Ok(text))) => Ok(text.clone()),
            // An error is taken only to be returned at once, so no later
            // credential can find its slot empty.
            _ => read.get_mut(index).and_then(Option::take).unwrap_or_else(|| {
                Err(Error::Incomplete {
                    detail: format!("{}: its value was not read", w.label()),
                    retryable: true,
                })
            }),
        };
        values.push((w.var, finish(w, raw)?));
    }
    Ok(WithSecrets::new(env, values))
}

/// What one read fetches: an SSM parameter, or a whole Secrets Manager
/// secret (its keys are picked out per credential).
#[derive(Debug, PartialEq, Eq)]
enum Source<'r> {
    Parameter { id: &'r str, region: Option<&'r str> },
    Secret { id: &'r str, region: &'r str },
}

impl<'r> Source<'r> {
    fn of(reference: &'r Reference) -> Self {
        match reference {
            Reference::Parameter { id, region } => Source::Parameter {
                id,
                region: region.as_deref(),
            },
            Reference::Secret { id, region, .. } => Source::Secret { id, region },
        }
    }

    async fn read(&self, store: &impl SecretStore) -> Result<Secret, Error> {
        match self {
            Source::Parameter { id, region } => store.parameter(*region, id).await,
            Source::Secret { id, region } => store.secret_string(region, id).await,
        }
    }
}

/// One credential's value, from what its source returned.
fn finish(wanted: &Wanted, raw: Result<Secret, Error>) -> Result<Secret, Error> {
    let label = wanted.label();
    let value = match (&wanted.reference, raw) {
        (Reference::Secret { key: Some(key), .. }, Ok(text)) => {
            json_key(&text, key).map_err(|detail| Error::resource(&label, detail))
        }
        (_, raw) => raw,
    }
    .map_err(|err| in_context(&label, err))?;
    let text = value.expose();
    if text.trim().is_empty() {
        return Err(Error::resource(label, "the value is empty or only white space"));
    }
    // Used as stored (a password may end in a space), but a newline stored
    // with it (`--value file://...`) is the usual cause of a refused login.
    if text.trim_end() != text {
        tracing::warn!(reference = %label, "the fetched value ends in white space; it is used as stored");
    }
    Ok(value)
}

/// The string under `key` of a JSON object secret. The reasons never
/// quote the secret: serde_json's messages can hold pieces of its input.
fn json_key(text: &Secret, key: &str) -> Result<Secret, String> {
    let Ok(serde_json::Value::Object(mut object)) = serde_json::from_str(text.expose()) else {
        return Err(format!(
            "the secret string is not a JSON object, so it has no key {key:?}"
        ));
    };
    match object.remove(key) {
        Some(serde_json::Value::String(value)) => Ok(Secret(value)),
        Some(other) => Err(format!(
            "the secret's key {key:?} is not a string (it is {})",
            crate::envelope::json_kind(&other)
        )),
        None => Err(format!("the secret has no key {key:?}")),
    }
}

/// Names the variable and reference in an error from the store.
fn in_context(label: &str, err: Error) -> Error {
    match err {
        Error::Aws {
            operation,
            code,
            message,
            retryable,
            source,
        } => Error::Aws {
            operation,
            code,
            message: format!("{label}: {message}"),
            retryable,
            source,
        },
        Error::Resource { detail, .. } => Error::resource(label, detail),
        other => other,
    }
}

#[cfg(test)]
#[path = "tests/secrets.rs"]
mod tests;
