//! The local driver: long-polls a queue and runs the handler, as Lambda would.

use std::future::Future;
use std::time::Duration;

use intraday_aws::{AwsError, Queues};

use crate::batch::handle_batch;
use crate::{Disposition, HandlerFuture, Message, Telemetry};

/// Polls one queue. A message is deleted only after its handler succeeded; a failed one is
/// left, hidden for its retry delay, so the queue's `maxReceiveCount` and dead-letter queue
/// behave as they do under Lambda.
#[derive(Debug, Clone)]
pub struct Poller {
    queues: Queues,
    queue_url: String,
    /// Long-poll wait per receive, at most 20 s.
    pub wait: Duration,
    /// Messages per receive, at most 10.
    pub batch_size: usize,
}

impl Poller {
    pub fn new(queues: Queues, queue_url: impl Into<String>) -> Self {
        Self {
            queues,
            queue_url: queue_url.into(),
            wait: Duration::from_secs(20),
            batch_size: 10,
        }
    }

    /// Receives one batch and handles it. Returns how many messages it saw.
    pub async fn poll_once<C, F>(
        &self,
        ctx: &C,
        handler: &F,
        telemetry: &Telemetry,
    ) -> Result<usize, AwsError>
    where
        F: for<'a> Fn(Message, &'a C) -> HandlerFuture<'a>,
    {
        let received = self.receive().await?;
        self.handle(received, ctx, handler, telemetry).await
    }

    async fn receive(&self) -> Result<Vec<intraday_aws::Received>, AwsError> {
        self.queues
            .receive(&self.queue_url, self.batch_size, self.wait, None)
            .await
    }

    async fn handle<C, F>(
        &self,
        received: Vec<intraday_aws::Received>,
        ctx: &C,
        handler: &F,
        telemetry: &Telemetry,
    ) -> Result<usize, AwsError>
    where
        F: for<'a> Fn(Message, &'a C) -> HandlerFuture<'a>,
    {
        let messages: Vec<Message> = received
            .iter()
            .map(|r| Message {
                id: r.message_id.clone(),
                body: r.body.clone(),
                receive_count: r.receive_count,
                sent_ms: r.sent_ms,
            })
            .collect();
        let dispositions = handle_batch(&messages, ctx, handler, telemetry).await;
        for (r, disposition) in received.iter().zip(dispositions) {
            let result = match disposition {
                Disposition::Done => self.queues.delete(&self.queue_url, &r.receipt_handle).await,
                Disposition::Retry { delay, .. } => {
                    self.queues
                        .change_visibility(&self.queue_url, &r.receipt_handle, delay)
                        .await
                }
            };
            if let Err(e) = result {
                // The message is safe either way: undeleted, it is delivered again.
                tracing::warn!(message_id = %r.message_id, error = %e, "could not settle the message");
            }
        }
        Ok(received.len())
    }

    /// Polls until `shutdown` resolves. A shutdown never interrupts a batch being handled;
    /// a receive it interrupts leaves its messages on the queue.
    pub async fn run<C, F>(
        &self,
        ctx: &C,
        handler: &F,
        telemetry: &Telemetry,
        shutdown: impl Future<Output = ()>,
    ) where
        F: for<'a> Fn(Message, &'a C) -> HandlerFuture<'a>,
    {
        tokio::pin!(shutdown);
        loop {
            let received = tokio::select! {
                biased;
                () = &mut shutdown => return,
                received = self.receive() => received,
            };
            match received {
                Ok(received) => {
                    // Outside the select: once received, a batch is always handled whole.
                    let _ = self.handle(received, ctx, handler, telemetry).await;
                }
                Err(e) => {
                    tracing::warn!(queue = %self.queue_url, error = %e, "receive failed; trying again in 1 s");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        }
    }
}
