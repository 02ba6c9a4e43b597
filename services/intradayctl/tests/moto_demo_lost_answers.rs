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

use std::collections::{BTreeMap, BTreeSet};

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
    "CreateStack",
    "CreateTable",
    "DeleteMessage",
    "DeleteObjects",
    "DescribeCluster",
    "DescribeStacks",
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
const SPARED: &[(&str, &str)] = &[(
    "ReceiveMessage",
    "in AWS the event source mapping receives, not our code; a lost receive only hides its \
         messages for the visibility timeout (180 s), longer than a demo waits",
)];

/// Called only when an earlier call is repeated, so a demo without faults may or may not
/// call them (it depends on which EMR event the monitor sees first). Their scenarios first
/// lose the answer of the call whose repeat calls them, so they are called every time.
const ON_REPEAT: &[(&str, &str, &str)] = &[(
    "GetPartition",
    "BatchCreatePartition",
    "the table builder reads a partition only when BatchCreatePartition says it exists, \
         which a repeated ExtractionCompleted or a repeated request causes",
)];

async fn scenario(operation: &str, fault: Fault) {
    let proxy = FaultProxy::start(kit::moto()).await.expect("proxy");
    proxy.fault_next(operation, 1, fault);
    if let Some((_, provoke, _)) = ON_REPEAT.iter().find(|(op, _, _)| *op == operation) {
        proxy.fault_next(provoke, 1, Fault::LoseAnswer);
    }
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
    moto_lost_create_stack => "CreateStack";
    moto_lost_create_table => "CreateTable";
    moto_lost_delete_message => "DeleteMessage";
    moto_lost_delete_objects => "DeleteObjects";
    moto_lost_describe_cluster => "DescribeCluster";
    moto_lost_describe_stacks => "DescribeStacks";
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
    let called: Vec<String> = proxy
        .operations()
        .into_iter()
        .map(|(op, _)| op)
        .filter(|op| !ON_REPEAT.iter().any(|(repeat, _, _)| repeat == op))
        .collect();
    let mut expected: Vec<&str> = OPERATIONS
        .iter()
        .copied()
        .filter(|op| !ON_REPEAT.iter().any(|(repeat, _, _)| repeat == op))
        .chain(SPARED.iter().map(|(op, _)| *op))
        .collect();
    expected.sort_unstable();
    assert_eq!(
        called, expected,
        "add each new operation to OPERATIONS, SPARED or ON_REPEAT"
    );
    for (op, provoke, _) in ON_REPEAT {
        assert!(
            OPERATIONS.contains(op) && OPERATIONS.contains(provoke),
            "{op}, {provoke}"
        );
    }
}

/// The actions each service role in `infra/template.yaml` allows (every `Allow` statement of
/// its own policies and of the policies attached to it, whatever their conditions; both
/// branches of an `!If`), by the access key the demo gives that service.
fn granted_by_role() -> BTreeMap<String, BTreeSet<String>> {
    let template: serde_yaml::Value =
        serde_yaml::from_str(include_str!("../../../infra/template.yaml")).expect("template YAML");
    let resources = template["Resources"].as_mapping().expect("resources");
    let mut granted = BTreeMap::new();
    for (role, service) in [
        ("SchedulerRole", "scheduler"),
        ("LauncherRole", "launcher"),
        ("MonitorRole", "monitor"),
        ("TableBuilderRole", "table-builder"),
        ("ReaperRole", "reaper"),
    ] {
        let mut actions = BTreeSet::new();
        let own = template["Resources"][role]["Properties"]["Policies"]
            .as_sequence()
            .unwrap_or_else(|| panic!("{role} has policies"));
        // The grants made only under a condition are policies of their own, attached to the
        // role by `Roles: [!Ref <role>]` (or a role policy's `RoleName: !Ref <role>`).
        let attached = resources
            .values()
            .filter(|r| {
                (r["Type"] == "AWS::IAM::Policy" && names_role(&r["Properties"]["Roles"], role))
                    || (r["Type"] == "AWS::IAM::RolePolicy"
                        && names_role(&r["Properties"]["RoleName"], role))
            })
            .map(|r| &r["Properties"]);
        for policy in own.iter().chain(attached) {
            for statement in policy["PolicyDocument"]["Statement"]
                .as_sequence()
                .expect("statements")
            {
                collect_allowed(statement, &mut actions);
            }
        }
        granted.insert(format!("intraday-{service}"), actions);
    }
    granted
}

/// Whether `value` (a policy's `Roles` list or a role policy's `RoleName`) is or holds
/// `!Ref role`.
fn names_role(value: &serde_yaml::Value, role: &str) -> bool {
    use serde_yaml::Value;
    match value {
        Value::Sequence(items) => items.iter().any(|item| names_role(item, role)),
        Value::Tagged(tagged) => tagged.tag == "Ref" && tagged.value == role,
        _ => false,
    }
}

/// A statement's allowed actions; an `!If [condition, statement, !Ref AWS::NoValue]` gives
/// its statement's.
fn collect_allowed(statement: &serde_yaml::Value, into: &mut BTreeSet<String>) {
    use serde_yaml::Value;
    match statement {
        Value::Tagged(tagged) => {
            for branch in tagged.value.as_sequence().into_iter().flatten().skip(1) {
                collect_allowed(branch, into);
            }
        }
        Value::Mapping(_) if statement["Effect"] == "Allow" => match &statement["Action"] {
            Value::String(action) => {
                into.insert(action.clone());
            }
            Value::Sequence(actions) => {
                into.extend(actions.iter().filter_map(|a| a.as_str().map(str::to_owned)));
            }
            _ => {}
        },
        _ => {}
    }
}

/// Whether an IAM action pattern (`kms:GenerateDataKey*`) allows `action`.
fn allows(pattern: &str, action: &str) -> bool {
    match pattern.strip_suffix('*') {
        Some(prefix) => action.starts_with(prefix),
        None => pattern == action,
    }
}

/// Granted but never needed in a demo without faults, each for its reason: calls AWS makes
/// with the role on the service's behalf, and paths a clean run does not take. Everything
/// else a role grants must be needed, and everything a service needs must be granted.
const GRANTED_UNUSED: &[(&str, &str, &str)] = &[
    (
        "*",
        "logs:CreateLogStream",
        "Lambda writes the function's logs with its role",
    ),
    (
        "*",
        "logs:PutLogEvents",
        "Lambda writes the function's logs with its role",
    ),
    (
        "*",
        "sqs:GetQueueAttributes",
        "the event source mapping reads its queue with the function's role: \
         https://docs.aws.amazon.com/lambda/latest/dg/with-sqs.html",
    ),
    (
        "*",
        "sqs:ChangeMessageVisibility",
        "only when a message fails: its back-off",
    ),
    (
        "*",
        "sns:Publish",
        "only when something needs a person: alerts",
    ),
    (
        "*",
        "kms:GenerateDataKey*",
        "SNS asks KMS for the encrypted topic on the publisher's behalf",
    ),
    (
        "*",
        "kms:Decrypt",
        "SNS and S3 ask KMS on the caller's behalf",
    ),
    (
        "intraday-launcher",
        "iam:PassRole",
        "EMR checks it for the roles RunJobFlow names",
    ),
    (
        "intraday-launcher",
        "elasticmapreduce:AddTags",
        "EMR checks it for RunJobFlow's tags",
    ),
    (
        "intraday-launcher",
        "elasticmapreduce:DescribeCluster",
        "a redelivery looks for an earlier attempt's cluster by its tag",
    ),
    (
        "intraday-monitor",
        "elasticmapreduce:TerminateJobFlows",
        "only for a cluster that runs too long",
    ),
    (
        "intraday-monitor",
        "elasticmapreduce:DescribeCluster",
        "the sweep, and an event for a cluster the byCluster index does not show yet",
    ),
    (
        "intraday-monitor",
        "elasticmapreduce:ListClusters",
        "the sweep, whose schedule is off in the demo",
    ),
    (
        "intraday-monitor",
        "s3:ListBucket",
        "S3 answers a missing manifest 404, not 403, only with it: \
         https://docs.aws.amazon.com/AmazonS3/latest/API/API_GetObject.html",
    ),
    (
        "intraday-scheduler",
        "dynamodb:UpdateItem",
        "a run that waits for a lock or is deferred",
    ),
    (
        "intraday-table-builder",
        "glue:UpdateTable",
        "a table or view whose definition changed (compare, then update)",
    ),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a full demo; ci/test.sh runs it apart"]
async fn moto_each_role_grants_what_its_service_needs_and_nothing_else() {
    let (proxy, _) = kit::faults::in_front_of_moto().await;
    let report = common::demo_through(&proxy, 120).await;
    common::assert_converged(&report).await;
    let used = proxy.actions_by_key();
    let mut problems = Vec::new();
    for (key, granted) in granted_by_role() {
        let needed = used.get(&key).cloned().unwrap_or_default();
        assert!(
            !needed.is_empty(),
            "{key} made no request through the proxy"
        );
        let excused = |list: &[(&str, &str, &str)], action: &str| {
            list.iter()
                .any(|(who, what, _)| (*who == "*" || *who == key) && *what == action)
        };
        for action in &needed {
            if !granted.iter().any(|g| allows(g, action)) {
                problems.push(format!(
                    "{key} needs {action}, which its role does not grant"
                ));
            }
        }
        for grant in &granted {
            if !needed.iter().any(|a| allows(grant, a)) && !excused(GRANTED_UNUSED, grant) {
                problems.push(format!(
                    "{key}'s role grants {grant}, which it never needed"
                ));
            }
        }
    }
    assert!(problems.is_empty(), "{problems:#?}\nneeded: {used:#?}");
}
