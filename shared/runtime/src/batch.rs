//! Handling one batch: the part the Lambda and the local poller share.

use std::time::{Duration, Instant};

use tracing::Instrument;

use crate::{HandlerError, HandlerFuture, Message, Telemetry};

/// What to do with a message after its handler ran.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Disposition {
    /// Handled: delete it.
    Done,
    /// Leave it on the queue, hidden for the delay, to be delivered again; after
    /// `maxReceiveCount` deliveries SQS moves it to the dead-letter queue.
    Retry {
        delay: Duration,
        error: HandlerError,
    },
}

/// How long a failed message stays hidden before its next delivery. Retryable failures back
/// off exponentially (10 s, 20 s, 40 s ... at most 15 minutes) so a throttled dependency gets
/// room; permanent ones come back at once, so they reach the dead-letter queue in
/// `maxReceiveCount` quick steps instead of waiting out the visibility timeout each time.
pub fn retry_delay(error: &HandlerError, receive_count: u32) -> Duration {
    match error {
        HandlerError::Permanent(_) => Duration::ZERO,
        HandlerError::Retryable(_) => {
            let exponent = receive_count.saturating_sub(1).min(10);
            Duration::from_secs((10u64 << exponent).min(900))
        }
    }
}

/// The correlation id to log a message under: ours, or the EventBridge event id.
fn correlation_of(body: &str) -> String {
    let value: serde_json::Value = match serde_json::from_str(body) {
        Ok(value) => value,
        Err(_) => return "-".to_owned(),
    };
    value
        .get("correlation_id")
        .or_else(|| value.get("id"))
        .and_then(|v| v.as_str())
        .unwrap_or("-")
        .to_owned()
}

/// Runs the handler over every message of a batch, one at a time, and decides each one's
/// fate. One message's failure never affects another's.
pub(crate) async fn handle_batch<C, F>(
    messages: &[Message],
    ctx: &C,
    handler: &F,
    telemetry: &Telemetry,
) -> Vec<Disposition>
where
    F: for<'a> Fn(Message, &'a C) -> HandlerFuture<'a>,
{
    let mut out = Vec::with_capacity(messages.len());
    for message in messages {
        let correlation_id = correlation_of(&message.body);
        let span = tracing::info_span!(
            "message",
            service = telemetry.service,
            message_id = %message.id,
            correlation_id = %correlation_id,
            receive_count = message.receive_count,
        );
        let started = Instant::now();
        let result = handler(message.clone(), ctx).instrument(span.clone()).await;
        let elapsed = started.elapsed();
        let _entered = span.enter();
        let disposition = match result {
            Ok(()) => {
                tracing::info!(elapsed_ms = elapsed.as_millis() as u64, "handled");
                Disposition::Done
            }
            Err(error) => {
                let delay = retry_delay(&error, message.receive_count);
                match &error {
                    HandlerError::Permanent(reason) => tracing::error!(
                        reason = %reason,
                        "message refused; it stays on its queue and goes to the dead-letter queue"
                    ),
                    HandlerError::Retryable(reason) => tracing::warn!(
                        reason = %reason,
                        retry_in_s = delay.as_secs(),
                        "handler failed; the message will be delivered again"
                    ),
                }
                Disposition::Retry { delay, error }
            }
        };
        telemetry.record(&disposition, elapsed);
        out.push(disposition);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retryable_failures_back_off_and_permanent_ones_do_not_wait() {
        let retry = HandlerError::Retryable("throttled".into());
        let delays: Vec<u64> = (1..=9).map(|n| retry_delay(&retry, n).as_secs()).collect();
        assert_eq!(delays, [10, 20, 40, 80, 160, 320, 640, 900, 900]);
        assert_eq!(retry_delay(&retry, 0).as_secs(), 10);
        assert_eq!(retry_delay(&retry, u32::MAX).as_secs(), 900);
        let permanent = HandlerError::Permanent("bad".into());
        assert_eq!(retry_delay(&permanent, 3), Duration::ZERO);
    }

    #[test]
    fn logs_under_our_correlation_id_or_the_event_id() {
        assert_eq!(correlation_of(r#"{"correlation_id":"run-1"}"#), "run-1");
        assert_eq!(
            correlation_of(r#"{"id":"evt-1","detail-type":"x"}"#),
            "evt-1"
        );
        assert_eq!(correlation_of("not json"), "-");
    }
}
