//! The job store against moto server's DynamoDB.

use intraday_aws::jobs::{ATTR_CLUSTER_ID, ATTR_DATA_END};
use intraday_aws::{AttributeValue, AwsError, Condition, JobStore, Outcome, TxOp, Value};
use intraday_core::{Collection, CorrelationId, JobRecord, JobStatus, Transition};
use intraday_testkit as kit;

fn collection() -> Collection {
    Collection::parse("db.core.claimant").expect("valid")
}

fn job(run: &str, status: JobStatus, triggered: u64) -> JobRecord {
    JobRecord::new(
        CorrelationId::new(run).expect("id"),
        collection(),
        status,
        triggered,
    )
}

async fn store() -> JobStore {
    let aws = kit::aws().await;
    let table = kit::job_table(&aws).await;
    JobStore::new(aws.dynamodb(), table)
}

#[tokio::test]
async fn moto_create_is_once_and_reads_back() {
    let store = store().await;
    let mut first = job("run-1", JobStatus::LambdaTriggered, 1_000);
    first.processed_data_start = Some(5);
    assert!(store.create(&first).await.expect("create"));
    assert!(
        !store
            .create(&first)
            .await
            .expect("second create is a no-op")
    );
    let read = store
        .get(&first.correlation_id, &first.collection)
        .await
        .expect("get");
    assert_eq!(read, Some(first.clone()));
    assert_eq!(
        store.run(&first.correlation_id).await.expect("run"),
        vec![first]
    );
}

#[tokio::test]
async fn moto_transitions_are_conditional_and_late_events_change_nothing() {
    let store = store().await;
    let j = job("run-2", JobStatus::LambdaTriggered, 1_000);
    store.create(&j).await.expect("create");
    let (cid, c) = (&j.correlation_id, &j.collection);

    let launched = store
        .transition(
            cid,
            c,
            JobStatus::EmrLaunched,
            &[(ATTR_CLUSTER_ID, Value::S("j-ABC".into()))],
        )
        .await
        .expect("launch");
    assert_eq!(launched, Outcome::Applied);
    store
        .transition(cid, c, JobStatus::EmrProcessing, &[])
        .await
        .expect("processing");
    let done = store
        .transition(
            cid,
            c,
            JobStatus::EmrCompleted,
            &[(ATTR_DATA_END, Value::N(77))],
        )
        .await
        .expect("complete");
    assert_eq!(done, Outcome::Applied);

    // A second COMPLETED, then a late RUNNING: neither changes anything.
    let again = store
        .transition(cid, c, JobStatus::EmrCompleted, &[])
        .await
        .expect("repeat");
    assert_eq!(
        again,
        Outcome::Unchanged {
            current: JobStatus::EmrCompleted,
            why: Transition::AlreadyThere
        }
    );
    let late = store
        .transition(cid, c, JobStatus::EmrProcessing, &[])
        .await
        .expect("late");
    assert_eq!(
        late,
        Outcome::Unchanged {
            current: JobStatus::EmrCompleted,
            why: Transition::Stale
        }
    );

    let read = store.get(cid, c).await.expect("get").expect("exists");
    assert_eq!(read.status, JobStatus::EmrCompleted);
    assert_eq!(read.processed_data_end, Some(77));
    assert_eq!(read.emr_cluster_id.as_deref(), Some("j-ABC"));

    // Acknowledging a run that did not fail is refused, naming both statuses.
    let err = store
        .transition(cid, c, JobStatus::AcknowledgedEmrFailed, &[])
        .await
        .expect_err("not failed");
    assert_eq!(
        err.to_string(),
        "job status cannot go from EMR_COMPLETED to _FAILED"
    );

    let missing = CorrelationId::new("no-such-run").expect("id");
    let err = store
        .transition(&missing, c, JobStatus::Waiting, &[])
        .await
        .expect_err("missing");
    assert!(matches!(err, AwsError::JobNotFound { .. }), "{err}");
}

#[tokio::test]
async fn moto_watermark_pages_the_index_newest_first() {
    let store = store().await;
    // 120 runs, newest first would be run-119; completed runs end at 10 * i. The newest
    // completed run has no ProcessedDataEnd (no records), so the one before it counts.
    for i in 0..120u64 {
        let status = if i % 3 == 0 {
            JobStatus::EmrCompleted
        } else {
            JobStatus::EmrFailed
        };
        let mut j = job(&format!("run-{i:03}"), status, 1_000 + i);
        if status == JobStatus::EmrCompleted && i != 117 {
            j.processed_data_end = Some(10 * i);
        }
        store.create(&j).await.expect("create");
    }
    assert_eq!(
        store
            .next_window_start(&collection())
            .await
            .expect("watermark"),
        10 * 114 + 1
    );

    let all = store
        .history(&collection(), 7, |_| true)
        .await
        .expect("history");
    assert_eq!(all.len(), 120);
    assert!(
        all.windows(2)
            .all(|w| w[0].triggered_time > w[1].triggered_time)
    );

    let empty = Collection::parse("db.core.never").expect("valid");
    assert_eq!(store.next_window_start(&empty).await.expect("none"), 0);
}

#[tokio::test]
async fn moto_transactions_are_all_or_nothing_and_say_which_action_failed() {
    let store = store().await;
    let existing = job("run-a", JobStatus::EmrLaunched, 1);
    store.create(&existing).await.expect("create");
    let fresh = job("run-b", JobStatus::LambdaTriggered, 2);
    let lock_key = |holder: &str| {
        std::collections::HashMap::from([
            (
                "CorrelationId".to_owned(),
                AttributeValue::S("LOCK".to_owned()),
            ),
            (
                "Collection".to_owned(),
                AttributeValue::S(collection().name()),
            ),
            ("Holder".to_owned(), AttributeValue::S(holder.to_owned())),
        ])
    };
    let take_lock = |holder: &str| TxOp::Put {
        item: lock_key(holder),
        condition: Some(Condition {
            expression: "attribute_not_exists(CorrelationId)".to_owned(),
            ..Condition::default()
        }),
    };

    store
        .transact(vec![TxOp::create_job(&fresh), take_lock("run-b")], None)
        .await
        .expect("first transaction");

    let another = job("run-c", JobStatus::LambdaTriggered, 3);
    let err = store
        .transact(vec![TxOp::create_job(&another), take_lock("run-c")], None)
        .await
        .expect_err("lock is held");
    match &err {
        AwsError::TransactionCancelled { reasons } => {
            assert_eq!(reasons, &[None, Some("ConditionalCheckFailed".to_owned())]);
        }
        other => panic!("unexpected {other}"),
    }
    assert!(
        err.to_string().contains("action 1: ConditionalCheckFailed"),
        "{err}"
    );
    assert_eq!(
        store
            .get(&another.correlation_id, &another.collection)
            .await
            .expect("get"),
        None
    );

    // A transition inside a transaction is conditional too.
    let err = store
        .transact(
            vec![TxOp::transition(
                &existing.correlation_id,
                &existing.collection,
                JobStatus::Waiting,
                &[],
            )],
            None,
        )
        .await
        .expect_err("EMR_LAUNCHED cannot become WAITING");
    assert!(
        matches!(err, AwsError::TransactionCancelled { .. }),
        "{err}"
    );
}

#[tokio::test]
async fn moto_finds_runs_by_cluster() {
    let store = store().await;
    let mut j = job("run-x", JobStatus::EmrLaunched, 1);
    j.emr_cluster_id = Some("j-2AXXXXXXGAJGF".to_owned());
    store.create(&j).await.expect("create");
    store
        .create(&job("run-y", JobStatus::LambdaTriggered, 2))
        .await
        .expect("create");
    let found = store.by_cluster("j-2AXXXXXXGAJGF").await.expect("query");
    assert_eq!(
        found,
        vec![(j.correlation_id.clone(), j.collection.clone())]
    );
    assert!(
        store
            .by_cluster("j-NOTOURS")
            .await
            .expect("query")
            .is_empty()
    );
}

/// A once-only write whose answer is lost: the SDK's repeat finds the attribute set, by this
/// very write, and says so; a second writer is still told it was not first.
#[tokio::test]
async fn moto_a_once_only_write_whose_answer_is_lost_is_still_ours() {
    let aws = kit::aws().await;
    let table = kit::job_table(&aws).await;
    JobStore::new(aws.dynamodb(), table.clone())
        .create(&job("run-a", JobStatus::EmrProcessing, 1))
        .await
        .expect("item");
    let (proxy, through) = kit::faults::in_front_of_moto().await;
    let store = JobStore::new(through.dynamodb(), table);
    let run = CorrelationId::new("run-a").expect("id");
    proxy.lose_answers("UpdateItem", 1);
    let first = store
        .set_attributes(&run, &collection(), &[("AlertedAt", Value::N(42))], true)
        .await
        .expect("set");
    assert_eq!(proxy.calls("UpdateItem"), 2, "the SDK sent it again");
    assert!(first, "the write that took effect is ours");
    let second = store
        .set_attributes(&run, &collection(), &[("AlertedAt", Value::N(43))], true)
        .await
        .expect("set");
    assert!(!second, "another writer was not first");
}
