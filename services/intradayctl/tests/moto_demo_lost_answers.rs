//! Exactly once when answers are lost: the local demo (two runs of three collections, every
//! service, the EMR stand-in and the real extractor) run through a fault proxy in front of
//! moto server, one scenario per operation the pipeline calls. In each, the first request of
//! that operation takes effect and its answer is lost (a 500), or its connection is dropped
//! unanswered (a reset). Every scenario must end as a run without faults ends
//! (`common::assert_converged`): every run completed on exactly one cluster, 150 records and
//! one file per collection and run, windows chained from each watermark, no lock held, every
//! dead-letter queue empty.
//!
//! These are `#[ignore]`d in a plain `cargo test` (about 15 s each); `ci/test.sh` runs them
//! apart, several at once.

mod common;

use intraday_testkit as kit;
use intraday_testkit::faults::{Fault, FaultProxy};

/// Every operation a demo calls, with why it is or is not faulted. The demo's own deploy and
/// seeding calls are faulted too: a person's first `local demo` must survive them.
/// `moto_the_faulted_operations_are_every_operation_called` fails when the pipeline starts or
/// stops calling one, so this list cannot fall behind.
const OPERATIONS: &[&str] = &[
    "BatchCreatePartition",
    "CompleteMultipartUpload",
    "CreateBucket",
    "CreateDatabase",
    "CreateKey",
    "CreateMultipartUpload",
    "CreateSecret",
    "CreateTable",
    "DeleteMessage",
    "DeleteObjects",
    "DescribeCluster",
    "GenerateDataKey",
    "GetItem",
    "GetObject",
    "GetPartition",
    "GetSecretValue",
    "GetTable",
    "HeadObject",
    "ListClusters",
    "ListObjectsV2",
    "ListSteps",
    "PutEvents",
    "PutObject",
    "PutSecretValue",
    "Query",
    "RunJobFlow",
    "SendMessage",
    "TerminateJobFlows",
    "TransactWriteItems",
    "UpdateItem",
    "UploadPart",
];

/// Called, and not faulted here, each for its reason.
const SPARED: &[(&str, &str)] = &[
    (
        "ReceiveMessage",
        "in AWS the event source mapping receives, not our code; a lost receive only hides its \
         messages for the visibility timeout (180 s), longer than a demo waits",
    ),
    (
        "CreateStack",
        "CloudFormation's own idempotency (ClientRequestToken) is AWS's; moto does not \
         implement it, so a repeated CreateStack fails there whatever the caller does",
    ),
    (
        "DescribeStacks",
        "read once after CreateStack; a read repeated is harmless and is covered by Query, \
         GetItem and the other reads",
    ),
];

async fn scenario(operation: &str, fault: Fault) {
    let proxy = FaultProxy::start(kit::moto()).await.expect("proxy");
    proxy.fault_next(operation, 1, fault);
    let started = std::time::Instant::now();
    let report = common::demo_through(&proxy, 120).await;
    assert!(
        proxy.calls(operation) >= 1,
        "{operation} was never called, so never faulted"
    );
    common::assert_converged(&report).await;
    eprintln!(
        "{operation} {fault:?}: settled in {:.1} s, {} calls",
        started.elapsed().as_secs_f64(),
        proxy.calls(operation)
    );
}

/// One test per operation and fault, so a failure names both and they run in parallel.
macro_rules! scenarios {
    (
        lost: [$($lost:ident => $op:literal;)*]
        reset: [$($reset:ident => $rop:literal;)*]
    ) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            #[ignore = "a full demo each; ci/test.sh runs them apart"]
            async fn $lost() {
                scenario($op, Fault::LoseAnswer).await;
            }
        )*
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            #[ignore = "a full demo each; ci/test.sh runs them apart"]
            async fn $reset() {
                scenario($rop, Fault::Reset).await;
            }
        )*

        #[test]
        fn every_listed_operation_has_its_scenario() {
            let mut covered = vec![$($op),*];
            covered.sort_unstable();
            let mut listed = OPERATIONS.to_vec();
            listed.sort_unstable();
            assert_eq!(covered, listed);
            let resets = [$($rop),*];
            assert!(resets.iter().all(|op| OPERATIONS.contains(op)), "{resets:?}");
        }
    };
}

// A lost answer for every operation. A dropped connection differs from a lost answer only in
// how the SDK learns of it (a dispatch failure, not a 500), and both are retried the same
// way, except where our code decides: so resets are run for the calls that are not
// idempotent (the `// Repeat:` audit), where the handling is ours.
scenarios! {
    lost: [
    moto_lost_batch_create_partition => "BatchCreatePartition";
    moto_lost_complete_multipart_upload => "CompleteMultipartUpload";
    moto_lost_create_bucket => "CreateBucket";
    moto_lost_create_database => "CreateDatabase";
    moto_lost_create_key => "CreateKey";
    moto_lost_create_multipart_upload => "CreateMultipartUpload";
    moto_lost_create_secret => "CreateSecret";
    moto_lost_create_table => "CreateTable";
    moto_lost_delete_message => "DeleteMessage";
    moto_lost_delete_objects => "DeleteObjects";
    moto_lost_describe_cluster => "DescribeCluster";
    moto_lost_generate_data_key => "GenerateDataKey";
    moto_lost_get_item => "GetItem";
    moto_lost_get_object => "GetObject";
    moto_lost_get_partition => "GetPartition";
    moto_lost_get_secret_value => "GetSecretValue";
    moto_lost_get_table => "GetTable";
    moto_lost_head_object => "HeadObject";
    moto_lost_list_clusters => "ListClusters";
    moto_lost_list_objects_v2 => "ListObjectsV2";
    moto_lost_list_steps => "ListSteps";
    moto_lost_put_events => "PutEvents";
    moto_lost_put_object => "PutObject";
    moto_lost_put_secret_value => "PutSecretValue";
    moto_lost_query => "Query";
    moto_lost_run_job_flow => "RunJobFlow";
    moto_lost_send_message => "SendMessage";
    moto_lost_terminate_job_flows => "TerminateJobFlows";
    moto_lost_transact_write_items => "TransactWriteItems";
    moto_lost_update_item => "UpdateItem";
    moto_lost_upload_part => "UploadPart";
    ]
    reset: [
    moto_reset_run_job_flow => "RunJobFlow";
    moto_reset_terminate_job_flows => "TerminateJobFlows";
    moto_reset_transact_write_items => "TransactWriteItems";
    moto_reset_update_item => "UpdateItem";
    moto_reset_send_message => "SendMessage";
    moto_reset_put_events => "PutEvents";
    moto_reset_create_table => "CreateTable";
    moto_reset_batch_create_partition => "BatchCreatePartition";
    moto_reset_complete_multipart_upload => "CompleteMultipartUpload";
    moto_reset_delete_objects => "DeleteObjects";
    ]
}

/// A demo without faults calls exactly the listed and the spared operations.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a full demo; ci/test.sh runs it apart"]
async fn moto_the_faulted_operations_are_every_operation_called() {
    let proxy = FaultProxy::start(kit::moto()).await.expect("proxy");
    let report = common::demo_through(&proxy, 120).await;
    common::assert_converged(&report).await;
    let called: Vec<String> = proxy.operations().into_iter().map(|(op, _)| op).collect();
    let mut expected: Vec<&str> = OPERATIONS
        .iter()
        .copied()
        .chain(SPARED.iter().map(|(op, _)| *op))
        .collect();
    expected.sort_unstable();
    assert_eq!(
        called, expected,
        "add each new operation to OPERATIONS or SPARED"
    );
}
