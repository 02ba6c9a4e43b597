use intraday_aws::AwsError;
use intraday_runtime::HandlerError;
use thiserror::Error;

#[derive(Debug, Error)]
pub enum ReapError {
    #[error(
        "`{0}` is not an EMR cluster id (j- followed by 1 to 64 upper-case letters and digits); nothing deleted"
    )]
    InvalidClusterId(String),

    #[error(
        "cluster {cluster} is {state}, not terminated; nothing deleted (a running replica still uses its metadata)"
    )]
    NotTerminated { cluster: String, state: String },

    #[error(
        "cluster {0} does not carry the tag ManagedBy=intraday, so it is not ours; nothing deleted"
    )]
    NotOurs(String),

    #[error("the HBase root `{0}` cannot hold a replica's metadata: {1}")]
    Root(String, String),

    #[error(
        "{failed} objects under {prefix} could not be deleted after retries, e.g. `{example}`; run `intradayctl reap {cluster}` again"
    )]
    Incomplete {
        cluster: String,
        prefix: String,
        failed: usize,
        example: String,
    },

    #[error(transparent)]
    Env(#[from] intraday_runtime::env::EnvError),

    #[error(transparent)]
    Aws(#[from] AwsError),
}

impl From<ReapError> for HandlerError {
    fn from(e: ReapError) -> Self {
        match &e {
            ReapError::Aws(aws) if aws.is_retryable() => HandlerError::Retryable(e.to_string()),
            ReapError::Incomplete { .. } => HandlerError::Retryable(e.to_string()),
            _ => HandlerError::Permanent(e.to_string()),
        }
    }
}
