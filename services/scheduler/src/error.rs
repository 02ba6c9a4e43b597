use intraday_aws::AwsError;
use intraday_core::CoreError;
use intraday_runtime::HandlerError;
use intraday_runtime::env::EnvError;
use thiserror::Error;

#[derive(Debug, Error)]
pub enum ScheduleError {
    #[error("the collections secret `{secret}` cannot be used: {source}")]
    Secret { secret: String, source: AwsError },

    #[error(
        "the collections secret lists no collections; add them with `aws secretsmanager put-secret-value`"
    )]
    NoCollections,

    #[error("the collections secret lists no collection that can be used: {0}")]
    NoUsableCollections(String),

    #[error("{0}; nothing was scheduled")]
    BackfillRefused(crate::handler::BackfillRefusal),

    #[error("{0}")]
    Domain(#[from] CoreError),

    #[error(
        "a run of this run's collections took a lock between the check and the write; trying again"
    )]
    LockRace,

    #[error(transparent)]
    Env(#[from] EnvError),

    #[error(transparent)]
    Aws(#[from] AwsError),
}

impl From<ScheduleError> for HandlerError {
    fn from(e: ScheduleError) -> Self {
        let retryable = match &e {
            ScheduleError::Aws(aws) => aws.is_retryable(),
            ScheduleError::Secret { source, .. } => source.is_retryable(),
            ScheduleError::LockRace => true,
            _ => false,
        };
        if retryable {
            HandlerError::Retryable(e.to_string())
        } else {
            HandlerError::Permanent(e.to_string())
        }
    }
}
