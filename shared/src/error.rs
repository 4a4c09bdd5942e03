//! One error type for every function, so that each failure is classified the
//! same way everywhere: can retrying the invocation help (an AWS throttle, a
//! timeout) or not (a malformed event, a bad setting). The class travels to
//! Lambda in the `errorType` of the [`Diagnostic`], where alarms and humans
//! can tell the two apart, and SQS consumers use it to decide what to report.

use std::error::Error as StdError;

use aws_sdk_ec2::error::ProvideErrorMetadata;
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_runtime_api::http::Response as HttpResponse;
use aws_smithy_types::error::display::DisplayErrorContext;
use lambda_runtime::Diagnostic;

/// A boxed cause, kept whole (never turned into a string) so that logs and
/// callers can walk the chain.
pub type BoxError = Box<dyn StdError + Send + Sync + 'static>;

/// A setting that is missing or malformed. Always names the variable.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("environment variable {name} is required but not set")]
    Missing { name: &'static str },
    #[error("environment variable {name}={value:?} is invalid: {reason}")]
    Invalid {
        name: &'static str,
        value: String,
        reason: String,
    },
}

/// An event that cannot be understood. Retrying the same bytes cannot help.
#[derive(Debug, thiserror::Error)]
pub enum EventError {
    #[error("event is not valid JSON: {source}")]
    NotJson {
        #[source]
        source: serde_json::Error,
    },
    #[error("{context} is not valid JSON: {source}")]
    InnerNotJson {
        context: &'static str,
        #[source]
        source: serde_json::Error,
    },
    /// serde's message quotes the offending value or key whole; a hostile
    /// event's can be megabytes, so only its start is shown (the source
    /// keeps the whole error).
    #[error("{context} does not have the expected shape: {}", clip(&.source.to_string(), 300))]
    Shape {
        context: &'static str,
        #[source]
        source: serde_json::Error,
    },
    #[error("{0}")]
    Invalid(String),
}

/// The first `max` characters of `text`, and "..." when there was more:
/// error messages quote input, and input can be hostile and megabytes long.
pub fn clip(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        None => text.to_owned(),
        Some((i, _)) => format!("{}...", &text[..i]),
    }
}

/// Every failure a ninelives function can report.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Config(#[from] ConfigError),

    #[error(transparent)]
    Event(#[from] EventError),

    #[error("AWS {operation} failed{}: {message}", code.as_deref().map(|c| format!(" ({c})")).unwrap_or_default())]
    Aws {
        operation: &'static str,
        code: Option<String>,
        message: String,
        retryable: bool,
        #[source]
        source: BoxError,
    },

    /// A request the SDK refused to build (a required field missing): a
    /// bug or bad input, never fixed by retrying.
    #[error("could not build the AWS {operation} request: {source}")]
    Request {
        operation: &'static str,
        #[source]
        source: BoxError,
    },

    /// A resource whose tags or state make the asked-for work impossible
    /// (a missing cluster tag, a snapshot that does not exist, an instance
    /// that is gone). Names the resource; retrying cannot help.
    #[error("{resource}: {detail}")]
    Resource { resource: String, detail: String },

    /// A data-store node (a MongoDB member) refused or did not answer; the
    /// driver's error is kept as the source.
    #[error("{source}")]
    Store {
        retryable: bool,
        #[source]
        source: BoxError,
    },

    /// Some of the work failed; what succeeded stays done and the rest is
    /// safe to retry because every step is idempotent.
    #[error("{failed} of {attempted} {what} failed; first failure: {first}")]
    Partial {
        what: &'static str,
        failed: usize,
        attempted: usize,
        /// Whether any of the failures can succeed on a retry.
        retryable: bool,
        #[source]
        first: Box<Error>,
    },

    /// Work left undone (a deadline, a partial answer from AWS); running
    /// the same event again finishes it.
    #[error("{detail}")]
    Incomplete { detail: String, retryable: bool },
}

impl Error {
    /// Whether running the same invocation again can succeed.
    pub fn is_retryable(&self) -> bool {
        match self {
            Error::Config(_) | Error::Event(_) | Error::Request { .. } | Error::Resource { .. } => false,
            Error::Aws { retryable, .. }
            | Error::Store { retryable, .. }
            | Error::Incomplete { retryable, .. }
            | Error::Partial { retryable, .. } => *retryable,
        }
    }

    /// A short, stable name of the failure for the `errorType` field.
    pub fn kind(&self) -> &'static str {
        match self {
            Error::Config(_) => "InvalidConfiguration",
            Error::Event(_) => "InvalidEvent",
            Error::Aws { .. } => "AwsError",
            Error::Request { .. } => "InvalidRequest",
            Error::Resource { .. } => "InvalidResource",
            Error::Store { .. } => "DataStoreError",
            Error::Partial { .. } => "PartialFailure",
            Error::Incomplete { .. } => "Incomplete",
        }
    }

    /// `Retryable.AwsError`, `NonRetryable.InvalidEvent`, ...
    pub fn error_type(&self) -> String {
        let class = if self.is_retryable() {
            "Retryable"
        } else {
            "NonRetryable"
        };
        format!("{class}.{}", self.kind())
    }

    /// Wraps an AWS SDK error, classifying it while the typed error is still
    /// at hand. The SDK has already retried throttles and transient faults by
    /// the time this is called; "retryable" here means a later invocation can
    /// still expect to succeed.
    pub fn aws<E>(operation: &'static str, err: SdkError<E, HttpResponse>) -> Self
    where
        E: ProvideErrorMetadata + StdError + Send + Sync + 'static,
    {
        let (code, message, retryable) = classify_sdk_error(&err);
        Error::Aws {
            operation,
            code,
            message,
            retryable,
            source: Box::new(err),
        }
    }

    /// A request the SDK could not build.
    pub fn request(operation: &'static str, source: impl StdError + Send + Sync + 'static) -> Self {
        Error::Request {
            operation,
            source: Box::new(source),
        }
    }

    /// A resource that cannot be used as asked.
    pub fn resource(resource: impl Into<String>, detail: impl Into<String>) -> Self {
        Error::Resource {
            resource: resource.into(),
            detail: detail.into(),
        }
    }

    /// The outcome of `attempted` independent pieces of work (clusters,
    /// replica sets) of which `failures` failed: nothing, the one failure
    /// when there was one piece, else a [`Error::Partial`] retryable if any
    /// failure is.
    pub fn combine(what: &'static str, attempted: usize, mut failures: Vec<Error>) -> Option<Error> {
        match failures.len() {
            0 => None,
            1 if attempted == 1 => failures.pop(),
            failed => {
                let retryable = failures.iter().any(Error::is_retryable);
                Some(Error::Partial {
                    what,
                    failed,
                    attempted,
                    retryable,
                    first: Box::new(failures.remove(0)),
                })
            }
        }
    }

    /// The AWS error code, if this is an AWS service error.
    pub fn aws_code(&self) -> Option<&str> {
        match self {
            Error::Aws { code, .. } => code.as_deref(),
            _ => None,
        }
    }
}

/// Error codes AWS uses for throttling and transient server trouble.
const TRANSIENT_CODES: &[&str] = &[
    "RequestLimitExceeded",
    "Throttling",
    "ThrottlingException",
    "ThrottledException",
    "TooManyRequestsException",
    "RequestThrottled",
    "RequestThrottledException",
    "SlowDown",
    "PriorRequestNotComplete",
    "InternalError",
    "InternalFailure",
    "ServiceUnavailable",
    "Unavailable",
    "InsufficientInstanceCapacity",
    "SnapshotCreationPerVolumeRateExceeded",
    "ConcurrentSnapshotLimitExceeded",
];

fn classify_sdk_error<E>(err: &SdkError<E, HttpResponse>) -> (Option<String>, String, bool)
where
    E: ProvideErrorMetadata + StdError + 'static,
{
    match err {
        SdkError::ServiceError(service) => {
            let inner = service.err();
            let code = inner.code().map(str::to_owned);
            let message = inner
                .message()
                .map(str::to_owned)
                .unwrap_or_else(|| inner.to_string());
            let status = service.raw().status().as_u16();
            let retryable = status >= 500 || code.as_deref().is_some_and(|c| TRANSIENT_CODES.contains(&c));
            (code, message, retryable)
        }
        // The full chain, e.g. "dispatch failure: io error: ... Connection
        // refused": the SDK's own Display stops at the outermost layer.
        SdkError::ConstructionFailure(_) => (None, DisplayErrorContext(err).to_string(), false),
        other => (None, DisplayErrorContext(other).to_string(), true),
    }
}

impl From<Error> for Diagnostic {
    fn from(err: Error) -> Self {
        Diagnostic {
            error_type: err.error_type(),
            error_message: err.to_string(),
        }
    }
}

impl From<&Error> for Diagnostic {
    fn from(err: &Error) -> Self {
        Diagnostic {
            error_type: err.error_type(),
            error_message: err.to_string(),
        }
    }
}

#[cfg(test)]
#[path = "tests/error.rs"]
mod tests;
