use intraday_aws::AwsError;
use intraday_runtime::HandlerError;
use thiserror::Error;

/// Everything the launcher can refuse or fail at.
#[derive(Debug, Error)]
pub enum LaunchError {
    #[error("{source_name} is not a valid cluster template: {reason}")]
    Template { source_name: String, reason: String },

    #[error("unknown override `{key}` in {source_name}; allowed keys: {allowed}")]
    UnknownOverride {
        key: String,
        source_name: String,
        allowed: String,
    },

    #[error("`{key}` in {source_name} is not valid: {reason}")]
    InvalidSetting {
        key: String,
        source_name: String,
        reason: String,
    },

    #[error(
        "the extractor step's arguments are {length} characters; EMR allows {limit}: launch fewer collections per run"
    )]
    StepTooLong { length: usize, limit: usize },

    #[error(
        "run `{run}` has no job item for `{collection}`; a LaunchRequested must follow the scheduler's"
    )]
    NoJobItem { run: String, collection: String },

    #[error(transparent)]
    Env(#[from] intraday_runtime::env::EnvError),

    #[error(
        "the launch of run `{0}` is in progress in another delivery; this one will check again"
    )]
    LaunchInProgress(String),

    #[error(transparent)]
    Aws(#[from] AwsError),
}

impl From<LaunchError> for HandlerError {
    fn from(e: LaunchError) -> Self {
        match &e {
            LaunchError::Aws(aws) if aws.is_retryable() => HandlerError::Retryable(e.to_string()),
            LaunchError::LaunchInProgress(_) => HandlerError::Retryable(e.to_string()),
            _ => HandlerError::Permanent(e.to_string()),
        }
    }
}
