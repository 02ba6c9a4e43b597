//! The queue adapter against moto server's SQS.

use std::time::Duration;

use intraday_aws::Queues;
use intraday_testkit as kit;

#[tokio::test]
async fn moto_send_receive_delete_and_dead_letter() {
    let aws = kit::aws().await;
    let queues = Queues::new(aws.sqs());
    let (url, dlq) = kit::queue_with_dlq(&aws, 2).await;

    queues.send(&url, "one", None).await.expect("send");
    let got = queues
        .receive(&url, 10, Duration::from_secs(2), None)
        .await
        .expect("receive");
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].body, "one");
    assert_eq!(got[0].receive_count, 1);
    assert!(got[0].sent_ms.is_some());

    // Released at once, received again with a higher count.
    queues
        .change_visibility(&url, &got[0].receipt_handle, Duration::ZERO)
        .await
        .expect("release");
    let again = queues
        .receive(&url, 10, Duration::from_secs(2), None)
        .await
        .expect("receive");
    assert_eq!(again[0].receive_count, 2);
    queues
        .change_visibility(&url, &again[0].receipt_handle, Duration::ZERO)
        .await
        .expect("release");

    // The third receive moves it to the dead-letter queue (maxReceiveCount 2).
    let none = queues
        .receive(&url, 10, Duration::from_secs(1), None)
        .await
        .expect("receive");
    assert!(none.is_empty(), "{none:?}");
    let dead = queues
        .receive(&dlq, 10, Duration::from_secs(2), None)
        .await
        .expect("dlq");
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].body, "one");
    queues
        .delete(&dlq, &dead[0].receipt_handle)
        .await
        .expect("delete");
    let attributes = queues.attributes(&dlq).await.expect("attributes");
    assert_eq!(
        attributes
            .get("ApproximateNumberOfMessages")
            .map(String::as_str),
        Some("0")
    );
}

#[tokio::test]
async fn moto_delayed_messages_stay_hidden() {
    let aws = kit::aws().await;
    let queues = Queues::new(aws.sqs());
    let (url, _) = kit::queue_with_dlq(&aws, 5).await;
    queues
        .send(&url, "later", Some(Duration::from_secs(3)))
        .await
        .expect("send");
    let early = queues
        .receive(&url, 10, Duration::ZERO, None)
        .await
        .expect("receive");
    assert!(early.is_empty(), "a delayed message was visible: {early:?}");
    let late = queues
        .receive(&url, 10, Duration::from_secs(10), None)
        .await
        .expect("receive");
    assert_eq!(late.len(), 1);
}

#[tokio::test]
async fn moto_batch_send_splits_into_tens() {
    let aws = kit::aws().await;
    let queues = Queues::new(aws.sqs());
    let (url, _) = kit::queue_with_dlq(&aws, 5).await;
    let bodies: Vec<String> = (0..23).map(|i| format!("m{i}")).collect();
    queues.send_batch(&url, &bodies).await.expect("batch");
    let mut seen = Vec::new();
    while seen.len() < 23 {
        let got = queues
            .receive(&url, 10, Duration::from_secs(1), None)
            .await
            .expect("receive");
        assert!(!got.is_empty(), "only {} of 23 arrived", seen.len());
        for m in got {
            queues
                .delete(&url, &m.receipt_handle)
                .await
                .expect("delete");
            seen.push(m.body);
        }
    }
    seen.sort();
    let mut want = bodies.clone();
    want.sort();
    assert_eq!(seen, want);
}
