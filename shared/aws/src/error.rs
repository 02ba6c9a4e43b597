use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_types::error::display::DisplayErrorContext;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;
use intraday_core::CoreError;
use thiserror::Error;

/// What an adapter can report. `is_retryable` tells a handler whether to let the message be
/// delivered again (throttling, 5xx, network) or to treat it as final.
#[derive(Debug, Error)]
pub enum AwsError {
    #[error("{operation} failed ({code}): {message}")]
    Service {
        operation: &'static str,
        code: String,
        message: String,
        retryable: bool,
    },

    #[error("{operation} could not reach AWS: {message}")]
    Transport {
        operation: &'static str,
        message: String,
    },

    #[error("job item for run `{correlation_id}`, collection `{collection}` does not exist")]
    JobNotFound {
        correlation_id: String,
        collection: String,
    },

    #[error(
        "job item for run `{correlation_id}`, collection `{collection}` is malformed: {reason}"
    )]
    MalformedItem {
        correlation_id: String,
        collection: String,
        reason: String,
    },

    #[error("transaction cancelled: {}", describe_reasons(.reasons))]
    TransactionCancelled {
        /// One entry per action, in request order: the cancellation code, or `None` where
        /// that action was not the cause.
        reasons: Vec<Option<String>>,
    },

    #[error("{what} did not settle after {attempts} attempts; another writer keeps changing it")]
    Contended { what: String, attempts: u32 },

    #[error(
        "{count} of the keys could not be deleted, for example `{example_key}`: {example_error}"
    )]
    DeleteFailed {
        count: usize,
        example_key: String,
        example_error: String,
    },

    #[error("batch send to {queue} failed for {failed} of its messages: {reason}")]
    BatchSendFailed {
        queue: String,
        failed: usize,
        reason: String,
    },

    #[error("stack `{stack}` ended in {status}: {reason}")]
    Stack {
        stack: String,
        status: String,
        reason: String,
    },

    #[error(transparent)]
    Domain(#[from] CoreError),
}

fn describe_reasons(reasons: &[Option<String>]) -> String {
    let causes: Vec<String> = reasons
        .iter()
        .enumerate()
        .filter_map(|(i, code)| code.as_ref().map(|c| format!("action {i}: {c}")))
        .collect();
    if causes.is_empty() {
        "no reason given".to_owned()
    } else {
        causes.join(", ")
    }
}

impl AwsError {
    pub fn is_retryable(&self) -> bool {
        match self {
            AwsError::Service { retryable, .. } => *retryable,
            AwsError::Transport { .. } | AwsError::Contended { .. } => true,
            AwsError::TransactionCancelled { reasons } => reasons.iter().flatten().any(|code| {
                matches!(
                    code.as_str(),
                    "TransactionConflict" | "ThrottlingError" | "ProvisionedThroughputExceeded"
                )
            }),
            AwsError::DeleteFailed { .. } | AwsError::BatchSendFailed { .. } => true,
            _ => false,
        }
    }

    /// The AWS error code, when AWS gave one.
    pub fn code(&self) -> Option<&str> {
        match self {
            AwsError::Service { code, .. } => Some(code),
            _ => None,
        }
    }
}

/// Error codes AWS uses for "slow down", across the services we call.
const THROTTLING: &[&str] = &[
    "Throttling",
    "ThrottlingException",
    "ThrottledException",
    "RequestThrottled",
    "RequestThrottledException",
    "TooManyRequestsException",
    "ProvisionedThroughputExceededException",
    "RequestLimitExceeded",
    "SlowDown",
    "PriorRequestNotComplete",
    "TransactionInProgressException",
    "InternalServerError",
    "InternalFailure",
    "ServiceUnavailable",
];

/// Turns an SDK error into ours, keeping AWS's code and message and deciding retryability.
pub(crate) trait SdkResultExt<T> {
    fn aws(self, operation: &'static str) -> Result<T, AwsError>;
}

impl<T, E> SdkResultExt<T> for Result<T, SdkError<E, HttpResponse>>
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    fn aws(self, operation: &'static str) -> Result<T, AwsError> {
        self.map_err(|err| from_sdk(operation, err))
    }
}

pub(crate) fn from_sdk<E>(operation: &'static str, err: SdkError<E, HttpResponse>) -> AwsError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    match &err {
        SdkError::ServiceError(service) => {
            let status = service.raw().status().as_u16();
            let code = service.err().code().unwrap_or("Unknown").to_owned();
            let message = service
                .err()
                .message()
                .map(str::to_owned)
                .unwrap_or_else(|| DisplayErrorContext(&err).to_string());
            let retryable = status >= 500 || status == 429 || THROTTLING.contains(&code.as_str());
            AwsError::Service {
                operation,
                code,
                message,
                retryable,
            }
        }
        _ => AwsError::Transport {
            operation,
            message: causes(&err),
        },
    }
}

/// An error and its sources as one line, each level's own message once: what went wrong
/// down to the root cause (`connection refused`, `no credentials`), without the debug dump
/// of the SDK's internals that `DisplayErrorContext` appends.
pub fn causes(err: &(dyn std::error::Error + 'static)) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut next: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(e) = next {
        let text = e.to_string();
        // Wrappers often repeat their source's message; keep each message once.
        if !text.is_empty() && !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        next = e.source();
    }
    parts.join(": ")
}
