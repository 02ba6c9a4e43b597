//! The secrets and alerts adapters against moto server.

use std::time::Duration;

use base64::Engine;
use intraday_aws::{Alerts, AwsError, Queues, Secrets};
use intraday_core::CorrelationId;
use intraday_events::{Alert, AlertDetail, Message, NotificationType, Severity};
use intraday_testkit as kit;

#[tokio::test]
async fn moto_reads_the_collections_secret_in_the_original_format() {
    let aws = kit::aws().await;
    let secrets = Secrets::new(aws.secrets());
    let name = format!("/intraday/{}", kit::unique("collections"));
    let literal = "{'collections_all': {'db.core.claimant': {'db': 'core', 'table': 'claimant', 'pii': 'true'}}}";
    let encoded = base64::engine::general_purpose::STANDARD.encode(literal);
    secrets.put(&name, &encoded).await.expect("create");
    let collections = secrets.collections(&name).await.expect("parse");
    assert_eq!(collections.len(), 1);
    assert!(collections.iter().all(|e| e.pii));

    // Overwriting updates; a broken entry is refused alone, naming it; a broken value is an
    // error.
    secrets
        .put(
            &name,
            "{\"collections_all\": {\"db.core.x\": {\"db\": \"core\"}}}",
        )
        .await
        .expect("update");
    let one_bad = secrets.collections(&name).await.expect("readable");
    assert!(one_bad.is_empty());
    assert_eq!(
        one_bad
            .refused()
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>(),
        ["collections secret entry `db.core.x` is not valid: field `table` is missing"]
    );
    secrets
        .put(&name, "{\"collections\": {}}")
        .await
        .expect("update");
    let err = secrets.collections(&name).await.expect_err("broken");
    assert!(matches!(err, AwsError::Domain(_)));
    assert_eq!(
        err.to_string(),
        "collections secret is not valid: it has no `collections_all` key"
    );

    let missing = secrets.string("/intraday/none").await.expect_err("missing");
    assert_eq!(missing.code(), Some("ResourceNotFoundException"));
    assert!(!missing.is_retryable());
}

#[tokio::test]
async fn moto_alerts_carry_the_original_fields_and_ours() {
    let aws = kit::aws().await;
    let (topic, queue) = kit::topic_with_queue(&aws).await;
    let alerts = Alerts::new(aws.sns(), topic);
    let alert = Alert {
        version: 1,
        correlation_id: CorrelationId::new("run-9").expect("id"),
        severity: Severity::Critical,
        notification_type: NotificationType::Error,
        title_text: "Intraday extraction failed".to_owned(),
        collections: vec![],
        detail: AlertDetail {
            cause: "the step failed".to_owned(),
            resolve: Some(
                "intradayctl ack run-9 --collection db.core.claimant --reason '...'".to_owned(),
            ),
            ..AlertDetail::default()
        },
    };
    alerts.publish(&alert).await.expect("publish");

    let got = Queues::new(aws.sqs())
        .receive(&queue, 1, Duration::from_secs(5), None)
        .await
        .expect("receive");
    assert_eq!(got.len(), 1, "the alert did not arrive");
    let body: serde_json::Value = serde_json::from_str(&got[0].body).expect("json");
    assert_eq!(body["severity"], "Critical");
    assert_eq!(body["notification_type"], "Error");
    assert_eq!(body["title_text"], "Intraday extraction failed");
    assert_eq!(
        Message::parse(&got[0].body).expect("our envelope"),
        Message::Alert(alert)
    );
}
