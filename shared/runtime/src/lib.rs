//! Drives an Intraday handler two ways with the same code:
//!
//! - [`run_lambda`]: under `lambda_runtime`, for SQS event source mappings with
//!   `ReportBatchItemFailures`: only the failed messages' ids are returned, so only they are
//!   delivered again.
//! - [`Poller`]: a local SQS long-poller that deletes a message only after its handler
//!   succeeded and otherwise leaves it, so `maxReceiveCount` and the DLQ apply as in AWS.
//!
//! A handler is `async fn(Message, &Ctx) -> Result<(), HandlerError>`, passed as
//! `|m, c| Box::pin(handle(m, c))`. [`HandlerError`] says whether a failure is worth
//! retrying; a permanent one (bad input) is logged once, with the message id and the reason,
//! and left for the dead-letter queue. Nothing is ever deleted unhandled.

mod batch;
pub mod env;
mod lambda;
mod poller;
mod telemetry;

use std::future::Future;
use std::pin::Pin;

pub use batch::{Disposition, retry_delay};
pub use lambda::{Visibility, batch_response, run_lambda, serve};
pub use poller::Poller;
pub use telemetry::{MetricsSink, RunOutcome, Telemetry, init_logging, init_logging_at};

use intraday_aws::AwsError;
use intraday_events::EventError;

/// One message as a handler sees it, whichever way it arrived.
#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    pub id: String,
    pub body: String,
    /// `ApproximateReceiveCount`: 1 on the first delivery.
    pub receive_count: u32,
    /// Epoch ms the message was first sent to its queue.
    pub sent_ms: Option<u64>,
}

/// Why a handler did not finish.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HandlerError {
    /// Worth another try later: throttling, a 5xx, a network fault, a lost race.
    #[error("{0}")]
    Retryable(String),
    /// Will fail the same way every time: bad input, a missing resource, a refused request.
    #[error("{0}")]
    Permanent(String),
}

impl HandlerError {
    pub fn is_retryable(&self) -> bool {
        matches!(self, HandlerError::Retryable(_))
    }
}

impl From<EventError> for HandlerError {
    fn from(e: EventError) -> Self {
        HandlerError::Permanent(e.to_string())
    }
}

impl From<AwsError> for HandlerError {
    fn from(e: AwsError) -> Self {
        if e.is_retryable() {
            HandlerError::Retryable(e.to_string())
        } else {
            HandlerError::Permanent(e.to_string())
        }
    }
}

/// What a handler returns: a boxed future borrowing its context.
pub type HandlerFuture<'a> = Pin<Box<dyn Future<Output = Result<(), HandlerError>> + Send + 'a>>;
