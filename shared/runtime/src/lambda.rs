//! Under Lambda: an SQS event source mapping with `ReportBatchItemFailures`.

use std::sync::Arc;

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use intraday_aws::{AwsSettings, Queues};
use lambda_runtime::{LambdaEvent, service_fn};

use crate::batch::handle_batch;
use crate::{Disposition, HandlerFuture, Message, Telemetry};

/// Changes a failed message's visibility so its next delivery follows [`crate::retry_delay`].
/// Lambda gives the queue's ARN; SQS wants its URL, which is made from the ARN
/// ([`intraday_aws::url_from_arn`]) so no role needs `sqs:GetQueueUrl`.
pub struct Visibility {
    queues: Queues,
}

impl Visibility {
    pub fn new(queues: Queues) -> Self {
        Self { queues }
    }
}

/// Handles one Lambda batch and answers with the ids of the messages that failed; Lambda
/// deletes the rest. A record without a message id cannot be reported alone, so it fails
/// the whole batch (every message is delivered again; nothing is lost).
pub async fn batch_response<C, F>(
    event: SqsEvent,
    ctx: &C,
    handler: &F,
    telemetry: &Telemetry,
    visibility: Option<&Visibility>,
) -> Result<SqsBatchResponse, lambda_runtime::Error>
where
    F: for<'a> Fn(Message, &'a C) -> HandlerFuture<'a>,
{
    let mut messages = Vec::with_capacity(event.records.len());
    for record in &event.records {
        let Some(id) = record.message_id.clone().filter(|id| !id.is_empty()) else {
            return Err(
                "an SQS record has no messageId; failing the whole batch so it is retried".into(),
            );
        };
        messages.push(Message {
            id,
            body: record.body.clone().unwrap_or_default(),
            receive_count: record
                .attributes
                .get("ApproximateReceiveCount")
                .and_then(|c| c.parse().ok())
                .unwrap_or(1),
            sent_ms: record
                .attributes
                .get("SentTimestamp")
                .and_then(|t| t.parse().ok()),
        });
    }
    let dispositions = handle_batch(&messages, ctx, handler, telemetry).await;
    let mut response = SqsBatchResponse::default();
    for ((message, record), disposition) in messages.iter().zip(&event.records).zip(dispositions) {
        if let Disposition::Retry { delay, .. } = disposition {
            response.add_failure(message.id.clone());
            if let (Some(visibility), Some(arn), Some(receipt)) =
                (visibility, &record.event_source_arn, &record.receipt_handle)
            {
                let changed = match intraday_aws::url_from_arn(arn) {
                    Some(url) => visibility
                        .queues
                        .change_visibility(&url, receipt, delay)
                        .await
                        .is_ok(),
                    None => false,
                };
                if !changed {
                    tracing::warn!(message_id = %message.id, "could not change the message's visibility; it returns after the queue's visibility timeout");
                }
            }
        }
    }
    Ok(response)
}

/// Runs the handler as a Lambda function until the runtime stops it.
pub async fn run_lambda<C, F>(
    ctx: C,
    handler: F,
    telemetry: Telemetry,
) -> Result<(), lambda_runtime::Error>
where
    C: Send + Sync + 'static,
    F: for<'a> Fn(Message, &'a C) -> HandlerFuture<'a> + Send + Sync + 'static,
{
    let aws = AwsSettings::default().load().await;
    let visibility = Visibility::new(Queues::new(aws.sqs()));
    let state = Arc::new((ctx, handler, telemetry, visibility));
    lambda_runtime::run(service_fn(move |event: LambdaEvent<SqsEvent>| {
        let state = Arc::clone(&state);
        async move {
            let (ctx, handler, telemetry, visibility) = &*state;
            batch_response(event.payload, ctx, handler, telemetry, Some(visibility)).await
        }
    }))
    .await
}

/// A service's whole `main` after logging starts: a context that could not be built (a
/// missing variable, say) is logged and fails the process; otherwise the handler runs
/// under Lambda until the runtime stops it.
pub async fn serve<C, F, E>(
    service: &'static str,
    ctx: Result<C, E>,
    handler: F,
) -> std::process::ExitCode
where
    C: Send + Sync + 'static,
    F: for<'a> Fn(Message, &'a C) -> HandlerFuture<'a> + Send + Sync + 'static,
    E: std::fmt::Display,
{
    let ctx = match ctx {
        Ok(ctx) => ctx,
        Err(e) => {
            tracing::error!(service, error = %e, "cannot start");
            return std::process::ExitCode::FAILURE;
        }
    };
    match run_lambda(
        ctx,
        handler,
        Telemetry::new(service, crate::MetricsSink::Stdout),
    )
    .await
    {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(service, error = %e, "stopped");
            std::process::ExitCode::FAILURE
        }
    }
}
