//! S3 requests whose connection was dropped before the answer came are tried again.
//!
//! The SDK retries timeouts and I/O errors, but a connection closed before the response was
//! complete (hyper's "connection closed before message completed") reaches it as an
//! unclassified connector error, which it does not retry. In a Lambda handler the queue
//! redelivers; in the extractor one dropped connection would fail the whole EMR step. Every
//! S3 call made here is safe to repeat: reads, listings, deletes and puts of the same bytes
//! are idempotent; a repeated CreateMultipartUpload leaves an upload nobody completes (the
//! bucket's lifecycle rule aborts it after a day); a repeated CompleteMultipartUpload is
//! recognised as ours (`MultipartUpload::complete`).
//! https://docs.aws.amazon.com/sdkref/latest/guide/feature-retry-behavior.html

use aws_smithy_runtime_api::client::interceptors::context::InterceptorContext;
use aws_smithy_runtime_api::client::retries::classifiers::{
    ClassifyRetry, RetryAction, RetryClassifierPriority,
};

#[derive(Debug, Clone, Copy)]
pub(crate) struct DroppedConnection;

impl ClassifyRetry for DroppedConnection {
    fn classify_retry(&self, ctx: &InterceptorContext) -> RetryAction {
        match ctx.output_or_error() {
            Some(Err(error))
                if error
                    .as_connector_error()
                    .is_some_and(|connector| connector.is_other()) =>
            {
                RetryAction::transient_error()
            }
            _ => RetryAction::NoActionIndicated,
        }
    }

    fn name(&self) -> &'static str {
        "DroppedConnection"
    }

    fn priority(&self) -> RetryClassifierPriority {
        RetryClassifierPriority::run_after(RetryClassifierPriority::transient_error_classifier())
    }
}

#[cfg(test)]
mod tests {
    use aws_smithy_runtime_api::client::interceptors::context::{Error, Input, InterceptorContext};
    use aws_smithy_runtime_api::client::orchestrator::OrchestratorError;
    use aws_smithy_runtime_api::client::result::ConnectorError;

    use super::*;

    fn after(error: ConnectorError) -> RetryAction {
        let mut ctx = InterceptorContext::new(Input::erase(()));
        ctx.set_output_or_error(Err(OrchestratorError::<Error>::connector(error)));
        DroppedConnection.classify_retry(&ctx)
    }

    #[test]
    fn a_connection_closed_before_the_answer_is_retried() {
        // What hyper reports, and the SDK leaves unretried: an unclassified connector error.
        let closed =
            ConnectorError::other("connection closed before message completed".into(), None);
        assert_eq!(after(closed), RetryAction::transient_error());
        // Timeouts and I/O errors are the SDK's own to classify.
        let io = ConnectorError::io("reset".into());
        assert_eq!(after(io), RetryAction::NoActionIndicated);
    }
}
