use intraday_aws::AwsError;
use intraday_runtime::HandlerError;
use thiserror::Error;

#[derive(Debug, Error)]
pub enum MonitorError {
    #[error("run `{run}` cannot be completed: {reason}")]
    Run { run: String, reason: String },

    /// The cluster is ours and its run is open, but the `byCluster` index does not find it
    /// yet (not recorded yet after a lost RunJobFlow answer, or the index lags).
    #[error(
        "cluster {cluster} of run `{run}` is not found through the job table's byCluster index yet; this event waits for the launcher to record it"
    )]
    Unrecorded { cluster: String, run: String },

    #[error(transparent)]
    Env(#[from] intraday_runtime::env::EnvError),

    #[error(transparent)]
    Aws(#[from] AwsError),
}

impl From<MonitorError> for HandlerError {
    fn from(e: MonitorError) -> Self {
        match &e {
            MonitorError::Aws(aws) if aws.is_retryable() => HandlerError::Retryable(e.to_string()),
            MonitorError::Unrecorded { .. } => HandlerError::Retryable(e.to_string()),
            _ => HandlerError::Permanent(e.to_string()),
        }
    }
}
