//! The Lambda driver, called directly with AWS's sample SQS event (no runtime, no network):
//! only the failed message's id comes back.

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use intraday_events::{AwsEventDetail, ClusterState, Inbound};
use intraday_runtime::{
    HandlerError, HandlerFuture, Message, MetricsSink, Telemetry, batch_response,
};

struct Ctx;

/// Accepts step events; a cluster TERMINATED event fails (retryable), bad bodies are refused.
async fn handle(message: Message, _ctx: &Ctx) -> Result<(), HandlerError> {
    match Inbound::parse(&message.body)? {
        Inbound::Aws(event) => match &event.detail {
            AwsEventDetail::ClusterStateChange(c) if c.state == ClusterState::Terminated => {
                Err(HandlerError::Retryable("the job table is throttled".into()))
            }
            _ => Ok(()),
        },
        Inbound::Message(_) => Ok(()),
    }
}

fn handler(message: Message, ctx: &Ctx) -> HandlerFuture<'_> {
    Box::pin(handle(message, ctx))
}

fn fixture<T: serde::de::DeserializeOwned>(name: &str) -> T {
    let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_str(&std::fs::read_to_string(path).expect("fixture")).expect("fixture parses")
}

#[tokio::test]
async fn only_the_failed_message_is_reported() {
    let event: SqsEvent = fixture("sqs-lambda-event.json");
    let telemetry = Telemetry::new("test", MetricsSink::Discard);
    let response = batch_response(event, &Ctx, &handler, &telemetry, None)
        .await
        .expect("batch");
    let want: SqsBatchResponse = fixture("sqs-batch-response.json");
    assert_eq!(response, want);
}

#[tokio::test]
async fn a_bad_body_fails_alone_and_a_good_batch_reports_nothing() {
    let mut event: SqsEvent = fixture("sqs-lambda-event.json");
    event.records[0].body = Some("{not json".into());
    event.records[1].body = Some(r#"{"type":"Alert","version":1}"#.into());
    let telemetry = Telemetry::new("test", MetricsSink::Discard);
    let response = batch_response(event.clone(), &Ctx, &handler, &telemetry, None)
        .await
        .expect("batch");
    let failed: Vec<&str> = response
        .batch_item_failures
        .iter()
        .map(|f| f.item_identifier.as_str())
        .collect();
    assert_eq!(
        failed,
        [
            "4c1f9e2a-8b3d-4a6e-9f70-2d5c8b1a3e64",
            "b7e2d5a9-1c4f-4e83-a6b2-9d0f7c3e5a18"
        ]
    );

    event.records.truncate(1);
    event.records[0].body = Some(
        fixture::<SqsEvent>("sqs-lambda-event.json").records[0]
            .body
            .clone()
            .expect("body"),
    );
    let response = batch_response(event, &Ctx, &handler, &telemetry, None)
        .await
        .expect("batch");
    assert!(response.batch_item_failures.is_empty());
}

#[tokio::test]
async fn a_record_without_an_id_fails_the_whole_batch() {
    let mut event: SqsEvent = fixture("sqs-lambda-event.json");
    event.records[1].message_id = None;
    let telemetry = Telemetry::new("test", MetricsSink::Discard);
    let err = batch_response(event, &Ctx, &handler, &telemetry, None)
        .await
        .expect_err("whole batch fails");
    assert!(err.to_string().contains("has no messageId"), "{err}");
}
