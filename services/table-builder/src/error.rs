use intraday_aws::AwsError;
use intraday_core::JobStatus;
use intraday_runtime::HandlerError;
use thiserror::Error;

/// Everything the table builder can refuse or fail at. Each message names the run and, where
/// there is one, the collection.
#[derive(Debug, Error)]
pub enum TableBuilderError {
    #[error("ExtractionCompleted for run `{run}` is not valid: {reason}")]
    Invalid { run: String, reason: String },

    #[error(
        "run `{run}` names {collections} collections; completing it takes two DynamoDB actions per collection and one transaction holds at most {max_actions}"
    )]
    TooManyCollections {
        run: String,
        collections: usize,
        max_actions: usize,
    },

    #[error(
        "run `{run}` has no job item for `{collection}`; an ExtractionCompleted must follow the scheduler's run"
    )]
    NoJobItem { run: String, collection: String },

    #[error(
        "run `{run}` of `{collection}` is {status}, so its output is not registered: only EMR_LAUNCHED and EMR_PROCESSING runs complete"
    )]
    NotCompletable {
        run: String,
        collection: String,
        status: JobStatus,
    },

    #[error("run `{run}`: {action} failed: {source}")]
    Catalog {
        run: String,
        /// What was being done, naming the database, table or view and the collection.
        action: String,
        /// Boxed to keep every `Result` of this crate small.
        #[source]
        source: Box<AwsError>,
    },

    #[error(
        "run `{run}`: {count} partition(s) of `{table}` for `{collection}` were not registered, for example {example}"
    )]
    Partitions {
        run: String,
        collection: String,
        table: String,
        count: usize,
        /// The first failure: its values, Glue's code and message.
        example: String,
        retryable: bool,
    },

    #[error("run `{run}`: {action} failed: {source}")]
    Store {
        run: String,
        action: &'static str,
        #[source]
        source: Box<AwsError>,
    },

    #[error(
        "run `{run}`: the completing transaction was cancelled ({reason}) and the run is not completed yet; the next delivery tries again"
    )]
    CompletionConflict { run: String, reason: String },

    #[error(transparent)]
    Env(#[from] intraday_runtime::env::EnvError),
}

impl TableBuilderError {
    pub fn is_retryable(&self) -> bool {
        match self {
            TableBuilderError::Catalog { source, .. } | TableBuilderError::Store { source, .. } => {
                source.is_retryable()
            }
            TableBuilderError::Partitions { retryable, .. } => *retryable,
            TableBuilderError::CompletionConflict { .. } => true,
            _ => false,
        }
    }
}

impl From<TableBuilderError> for HandlerError {
    fn from(e: TableBuilderError) -> Self {
        if e.is_retryable() {
            HandlerError::Retryable(e.to_string())
        } else {
            HandlerError::Permanent(e.to_string())
        }
    }
}
