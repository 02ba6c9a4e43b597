use intraday_aws::AwsError;
use intraday_core::CoreError;
use thiserror::Error;

/// What a command can fail at; each message says what to do next.
#[derive(Debug, Error)]
pub enum CtlError {
    #[error(
        "stack `{stack}` was not found or cannot be read ({source}); deploy infra/template.yaml or pass --stack NAME"
    )]
    Stack { stack: String, source: AwsError },

    #[error("stack `{stack}` has no output `{output}`; is it an Intraday stack?")]
    MissingOutput { stack: String, output: String },

    #[error("unknown queue `{0}`; use one of scheduler, launcher, monitor, tables, reaper")]
    UnknownQueue(String),

    #[error("{0}")]
    Invalid(String),

    #[error("the message does not match events/schemas/{schema}:\n  {errors}\nnothing was sent")]
    Schema { schema: String, errors: String },

    #[error("cannot read {path}: {reason}")]
    Read { path: String, reason: String },

    #[error(transparent)]
    Domain(#[from] CoreError),

    #[error(transparent)]
    Aws(#[from] AwsError),

    #[error("{0}")]
    Other(String),
}
