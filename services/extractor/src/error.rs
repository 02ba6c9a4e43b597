use std::path::PathBuf;

use intraday_aws::AwsError;
use intraday_core::CoreError;
use thiserror::Error;

/// Everything that fails the step. A record that cannot be read or decrypted is not one of
/// these: it becomes a reject (row key and reason in the rejects file) and only the rejects
/// threshold turns it into [`ExtractorError::TooManyRejects`].
#[derive(Debug, Error)]
pub enum ExtractorError {
    #[error("invalid {flag} `{value}`: {reason}")]
    InvalidArgument {
        flag: &'static str,
        value: String,
        reason: String,
    },

    #[error(transparent)]
    Domain(#[from] CoreError),

    #[error(transparent)]
    Aws(#[from] AwsError),

    #[error("{what} `{}`: {source}", path.display())]
    File {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error("{source_name}, line {line}: {reason}")]
    ScanOutput {
        source_name: String,
        line: u64,
        reason: String,
    },

    #[error("{source_name}: {reason}")]
    ScanFailed { source_name: String, reason: String },

    #[error("`{command}` failed for {table} ({status}); its stderr ends with:\n{stderr_tail}")]
    HbaseFailed {
        command: String,
        table: String,
        status: String,
        stderr_tail: String,
    },

    #[error("`{command}` could not be started for {table}: {reason}")]
    HbaseStart {
        command: String,
        table: String,
        reason: String,
    },

    #[error("data key service configuration: {0}")]
    DksConfig(String),

    #[error(
        "the data key service refused to decrypt the data key under master key `{key_id}` ({status}): {message}"
    )]
    DksRefused {
        key_id: String,
        status: u16,
        message: String,
    },

    #[error(
        "the data key service did not decrypt the data key under master key `{key_id}` after {attempts} attempts; last: {last}"
    )]
    DksUnavailable {
        key_id: String,
        attempts: u32,
        last: String,
    },

    #[error("the data key service answered badly for master key `{key_id}`: {reason}")]
    DksBadAnswer { key_id: String, reason: String },

    #[error("KMS did not decrypt the data key under key `{key_id}`: {reason}")]
    KmsRefused { key_id: String, reason: String },

    #[error("KMS could not be reached to decrypt the data key under key `{key_id}`: {reason}")]
    KmsUnavailable { key_id: String, reason: String },

    #[error("writing {what}: {reason}")]
    Encode { what: &'static str, reason: String },

    #[error(
        "collection `{collection}`: {rejected} records rejected, more than --max-rejects {max}; see {rejects_file} (first: {first})"
    )]
    TooManyRejects {
        collection: String,
        rejected: u64,
        max: u64,
        rejects_file: String,
        first: String,
    },

    #[error("the run cannot be committed: {reason}; its manifest is not written")]
    Incomplete { reason: String },

    #[error("a worker stopped unexpectedly: {0}")]
    Worker(String),
}

impl ExtractorError {
    /// True for a key service's definite "no" about one data key: the records under that
    /// key are rejected. Anything else (unreachable, throttled past the retries) fails the
    /// step, since every later record would fail the same way.
    pub fn is_key_refusal(&self) -> bool {
        matches!(
            self,
            ExtractorError::DksRefused { .. }
                | ExtractorError::DksBadAnswer { .. }
                | ExtractorError::KmsRefused { .. }
        )
    }

    /// True when the scan itself failed (the shell, or its output): worth one more try of
    /// the same range, which replaces what the failed try wrote.
    pub fn is_scan_failure(&self) -> bool {
        matches!(
            self,
            ExtractorError::HbaseFailed { .. }
                | ExtractorError::HbaseStart { .. }
                | ExtractorError::ScanFailed { .. }
                | ExtractorError::ScanOutput { .. }
        )
    }

    pub(crate) fn encode(what: &'static str, e: impl std::fmt::Display) -> Self {
        ExtractorError::Encode {
            what,
            reason: e.to_string(),
        }
    }

    pub(crate) fn file(
        what: &'static str,
        path: impl Into<PathBuf>,
        source: std::io::Error,
    ) -> Self {
        ExtractorError::File {
            what,
            path: path.into(),
            source,
        }
    }
}
