use thiserror::Error;

/// Everything the domain can refuse. Each message names the offending value and, where the
/// fix is not obvious, says what to do.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum CoreError {
    #[error("invalid collection `{name}`: {reason}")]
    InvalidCollection { name: String, reason: String },

    #[error("invalid correlation id `{id}`: {reason}")]
    InvalidCorrelationId { id: String, reason: String },

    #[error(
        "unknown job status `{0}`; expected one of LAMBDA_TRIGGERED, WAITING, DEFERRED, EMR_LAUNCHED, EMR_PROCESSING, EMR_COMPLETED, EMR_FAILED, LAMBDA_FAILED, _FAILED, _LAMBDA_FAILED"
    )]
    UnknownStatus(String),

    #[error("job status cannot go from {from} to {to}")]
    TransitionNotAllowed { from: String, to: String },

    #[error(
        "run `{run}` of `{collection}` is {status}, not failed: only EMR_FAILED and LAMBDA_FAILED runs can be acknowledged"
    )]
    NotFailed {
        run: String,
        collection: String,
        status: String,
    },

    #[error("invalid window [{start_ms}, {end_ms}): the start must be before the end")]
    EmptyWindow { start_ms: u64, end_ms: u64 },

    #[error("timestamp {0} ms is outside the range a run can have")]
    TimestampOutOfRange(i128),

    #[error("invalid S3 location `{uri}`: {reason}")]
    InvalidS3Uri { uri: String, reason: String },

    #[error(
        "invalid database name `{0}`: use 1 to 255 lower-case letters, digits and `_`, starting with a letter or digit"
    )]
    InvalidDatabase(String),

    #[error("unknown output format `{0}`; use `parquet` or `csv-gzip`")]
    UnknownFormat(String),

    #[error("collections secret is not valid: {0}")]
    SecretFormat(String),

    #[error("collections secret entry `{entry}` is not valid: {reason}")]
    SecretEntry { entry: String, reason: String },
}
