//! What every ninelives function is to the outside: a name, a typed config
//! read from the environment, a handler built once from that config and the
//! shared AWS configuration, and a `handle` for each invocation. The Lambda
//! entry point ([`serve`]) and the `replay` tool both go through this, so a
//! replayed event runs exactly the code Lambda runs.

use std::future::Future;

use aws_config::SdkConfig;
use lambda_runtime::{LambdaEvent, service_fn};
use serde::Serialize;
use serde_json::Value;

use crate::config::{Env, ProcessEnv};
use crate::error::{ConfigError, Error};
use crate::notify::{Notifier, send_summary};
use crate::secrets::{self, AwsSecretStore, SecretStore, Wanted, WithSecrets};

pub trait Function: Sized + Sync {
    /// The folder name under `functions/`, e.g. `snapshot-volumes`.
    const NAME: &'static str;

    type Config;

    /// Reads and checks every setting; no AWS call.
    fn config(env: &impl Env) -> Result<Self::Config, ConfigError>;

    /// Builds the handler and its AWS clients, once per process.
    fn new(config: Self::Config, sdk: &SdkConfig) -> Self;

    fn handle(&self, event: LambdaEvent<Value>) -> impl Future<Output = Result<Value, Error>> + Send;
}

/// Settings first (a bad one is named before anything else happens), then
/// the AWS configuration, then the credentials given by reference
/// (`<VAR>_FROM`, [`crate::secrets`]), then the handler.
pub async fn from_env<F: Function>(env: &impl Env) -> Result<F, Error> {
    let checked = check_config::<F>(env)?;
    let sdk = crate::aws::load_sdk_config().await?;
    build(env, checked, &sdk, &AwsSecretStore::new(&sdk)).await
}

/// [`from_env`] with a given AWS configuration and credential store, for
/// tests and tools that choose their region or endpoint themselves.
pub async fn from_env_with<F: Function>(
    env: &impl Env,
    sdk: &SdkConfig,
    store: &impl SecretStore,
) -> Result<F, Error> {
    let checked = check_config::<F>(env)?;
    build(env, checked, sdk, store).await
}

/// What [`check_config`] found: the configuration itself when no setting is
/// given by reference, else the references to fetch first.
enum Checked<C> {
    Ready(C),
    Fetch(Vec<Wanted>),
}

/// Checks every setting without an AWS call: the credential references'
/// syntax, then the function's whole configuration, with a stand-in for
/// each referenced value (the real values are only known once fetched).
fn check_config<F: Function>(env: &impl Env) -> Result<Checked<F::Config>, ConfigError> {
    let wanted = secrets::references(env)?;
    if wanted.is_empty() {
        return Ok(Checked::Ready(F::config(env)?));
    }
    let stand_in = WithSecrets::placeholders(env, &wanted);
    F::config(&stand_in).map_err(|e| stand_in.redact(e))?;
    Ok(Checked::Fetch(wanted))
}

async fn build<F: Function>(
    env: &impl Env,
    checked: Checked<F::Config>,
    sdk: &SdkConfig,
    store: &impl SecretStore,
) -> Result<F, Error> {
    let config = match checked {
        Checked::Ready(config) => config,
        Checked::Fetch(wanted) => {
            let env = secrets::resolve(env, &wanted, store).await?;
            tracing::debug!(function = F::NAME, resolved = ?env.resolved().collect::<Vec<_>>(), "credentials read from their references");
            F::config(&env).map_err(|e| env.redact(e))?
        }
    };
    Ok(F::new(config, sdk))
}

/// The Lambda entry point of every function's `main`.
pub async fn serve<F: Function>() -> Result<(), lambda_runtime::Error> {
    crate::telemetry::init("info");
    let handler = match from_env::<F>(&ProcessEnv).await {
        Ok(handler) => handler,
        Err(err) => {
            tracing::error!(function = F::NAME, error = %err, error_type = %err.error_type(), "cannot start");
            // The message only: `main` prints what it returns with `Debug`,
            // which would show the SDK's raw response (a fetched credential
            // in the body of an answer that failed to parse).
            return Err(err.to_string().into());
        }
    };
    // Boxing the handler's future keeps the runtime's future small and its
    // type shallow (the SDK's futures nest deeply).
    lambda_runtime::run(service_fn(|event| Box::pin(handler.handle(event)))).await
}

/// What every function's run produces: a JSON summary that can say in one
/// line what happened, whether a person should hear of it, and which error
/// (if any) the invocation must return.
pub trait Summary: Serialize {
    /// One line for the log message and the notification subject.
    fn headline(&self) -> String;
    /// Whether the run changed something worth a notification.
    fn changed(&self) -> bool;
    /// The error to return when the run did not finish its work; taken
    /// once.
    fn take_outcome_error(&mut self) -> Option<Error>;
}

/// Ends a run with its summary: [`report`] with the summary's own headline,
/// change and error.
pub async fn finish<S: Summary>(
    notifier: &impl Notifier,
    function: &'static str,
    mut summary: S,
) -> Result<Value, Error> {
    let error = summary.take_outcome_error();
    let headline = summary.headline();
    let changed = summary.changed();
    report(
        notifier,
        Outcome {
            function,
            summary: &summary,
            headline,
            changed,
            error,
        },
    )
    .await
}

/// How a run ended, for [`report`].
pub struct Outcome<'a, S> {
    pub function: &'static str,
    pub summary: &'a S,
    /// One line for the log message and the notification subject.
    pub headline: String,
    /// Whether the run changed something worth a notification.
    pub changed: bool,
    /// The error to return when the run did not finish its work.
    pub error: Option<Error>,
}

/// Ends a run the same way in every function: the summary as one JSON log
/// line, a notification when something changed, then the summary as the
/// result, or the error that makes Lambda retry what is unfinished.
pub async fn report<S: Serialize>(notifier: &impl Notifier, outcome: Outcome<'_, S>) -> Result<Value, Error> {
    let mut value = serde_json::to_value(outcome.summary).map_err(|e| Error::Incomplete {
        detail: format!("summary could not be serialised: {e}"),
        retryable: false,
    })?;
    tracing::info!(function = outcome.function, summary = %value, "{}", outcome.headline);
    if outcome.changed
        && let Some(err) = send_summary(notifier, outcome.function, &outcome.headline, &value).await
    {
        value["notify_error"] = Value::String(err);
    }
    match outcome.error {
        Some(err) => Err(err),
        None => Ok(value),
    }
}
