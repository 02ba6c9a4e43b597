use intraday_aws::AwsError;
use intraday_runtime::HandlerError;
use thiserror::Error;

#[derive(Debug, Error)]
pub enum MonitorError {
    #[error("run `{run}` cannot be completed: {reason}")]
    Run { run: String, reason: String },

    #[error(transparent)]
    Env(#[from] intraday_runtime::env::EnvError),

    #[error(transparent)]
    Aws(#[from] AwsError),
}

impl From<MonitorError> for HandlerError {
    fn from(e: MonitorError) -> Self {
        match &e {
            MonitorError::Aws(aws) if aws.is_retryable() => HandlerError::Retryable(e.to_string()),
            _ => HandlerError::Permanent(e.to_string()),
        }
    }
}
