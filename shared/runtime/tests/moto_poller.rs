//! The local poller and the Lambda driver's visibility changes against moto server's SQS:
//! a handled message is deleted, a refused one reaches the dead-letter queue whole.

use std::time::Duration;

use aws_lambda_events::event::sqs::{SqsEvent, SqsMessage};
use intraday_aws::Queues;
use intraday_runtime::{
    HandlerError, HandlerFuture, Message, MetricsSink, Poller, Telemetry, Visibility,
    batch_response,
};
use intraday_testkit as kit;
use tokio::sync::Mutex;

#[derive(Default)]
struct Seen(Mutex<Vec<String>>);

async fn handle(message: Message, seen: &Seen) -> Result<(), HandlerError> {
    seen.0.lock().await.push(message.body.clone());
    if message.body.starts_with("bad") {
        return Err(HandlerError::Permanent(format!(
            "cannot read `{}`",
            message.body
        )));
    }
    Ok(())
}

fn handler(message: Message, seen: &Seen) -> HandlerFuture<'_> {
    Box::pin(handle(message, seen))
}

#[tokio::test]
async fn moto_poller_deletes_handled_messages_and_dead_letters_refused_ones() {
    let aws = kit::aws().await;
    let queues = Queues::new(aws.sqs());
    let (url, dlq) = kit::queue_with_dlq(&aws, 2).await;
    queues.send(&url, "good-1", None).await.expect("send");
    queues.send(&url, "bad-1", None).await.expect("send");

    let mut poller = Poller::new(queues.clone(), &url);
    poller.wait = Duration::from_secs(1);
    let telemetry = Telemetry::new("test", MetricsSink::Discard);
    let seen = Seen::default();
    // Poll until the queue is empty: the good one is deleted after one delivery; the bad one
    // is delivered twice, then SQS moves it to the dead-letter queue.
    for _ in 0..10 {
        poller
            .poll_once(&seen, &handler, &telemetry)
            .await
            .expect("poll");
    }
    let seen = seen.0.lock().await.clone();
    assert_eq!(
        seen.iter().filter(|b| *b == "good-1").count(),
        1,
        "{seen:?}"
    );
    assert_eq!(seen.iter().filter(|b| *b == "bad-1").count(), 2, "{seen:?}");

    let dead = queues
        .receive(&dlq, 10, Duration::from_secs(2), None)
        .await
        .expect("dlq");
    assert_eq!(
        dead.iter().map(|m| m.body.as_str()).collect::<Vec<_>>(),
        ["bad-1"]
    );
    let left = queues
        .receive(&url, 10, Duration::from_secs(1), None)
        .await
        .expect("queue");
    assert!(left.is_empty(), "{left:?}");
}

#[tokio::test]
async fn moto_poller_stops_on_shutdown() {
    let aws = kit::aws().await;
    let queues = Queues::new(aws.sqs());
    let (url, _) = kit::queue_with_dlq(&aws, 2).await;
    let mut poller = Poller::new(queues, &url);
    poller.wait = Duration::from_secs(20);
    let telemetry = Telemetry::new("test", MetricsSink::Discard);
    let seen = Seen::default();
    let started = std::time::Instant::now();
    poller
        .run(
            &seen,
            &handler,
            &telemetry,
            tokio::time::sleep(Duration::from_millis(300)),
        )
        .await;
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "shutdown waited for the long poll"
    );
}

#[tokio::test]
async fn moto_lambda_failure_makes_a_refused_message_visible_again_at_once() {
    let aws = kit::aws().await;
    let queues = Queues::new(aws.sqs());
    let (url, _) = kit::queue_with_dlq(&aws, 5).await;
    let arn = queues.attributes(&url).await.expect("attributes")["QueueArn"].clone();
    queues.send(&url, "bad-2", None).await.expect("send");
    // Receive with a long visibility, as Lambda's poller would.
    let got = queues
        .receive(
            &url,
            1,
            Duration::from_secs(2),
            Some(Duration::from_secs(600)),
        )
        .await
        .expect("receive");
    let mut record = SqsMessage::default();
    record.message_id = Some(got[0].message_id.clone());
    record.receipt_handle = Some(got[0].receipt_handle.clone());
    record.body = Some(got[0].body.clone());
    record.event_source_arn = Some(arn);
    let mut event = SqsEvent::default();
    event.records = vec![record];

    let telemetry = Telemetry::new("test", MetricsSink::Discard);
    let visibility = Visibility::new(queues.clone());
    let response = batch_response(
        event,
        &Seen::default(),
        &handler,
        &telemetry,
        Some(&visibility),
    )
    .await
    .expect("batch");
    assert_eq!(response.batch_item_failures.len(), 1);
    let again = queues
        .receive(&url, 1, Duration::from_secs(2), None)
        .await
        .expect("receive");
    assert_eq!(
        again.len(),
        1,
        "the refused message should be visible at once, not after 600 s"
    );
    assert_eq!(again[0].receive_count, 2);
}
