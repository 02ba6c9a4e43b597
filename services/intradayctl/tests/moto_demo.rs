//! The local demo, end to end against moto server with IAM enforced: every service's real
//! handler under a session of the role the template made for it, the real extractor binary,
//! the template's rules. Afterwards the job table, the Glue catalog, the S3 objects and their
//! tags, and the HBase root are checked directly, and each role is shown to be refused what
//! it is not granted.
//!
//! moto checks actions only: every non-S3 request against the resource `*`, conditions not at
//! all (docs/moto-iam.md). Resources and conditions are checked against the template by
//! `services/intradayctl/tests/template_conditions.rs`.

mod common;

use intraday_aws::{AwsSettings, Catalog, JobStore, Objects};
use intraday_core::{CorrelationId, JobStatus, S3Uri};
use intraday_testkit as kit;
use intradayctl::local::enforce;

#[tokio::test]
async fn moto_the_demo_runs_the_pipeline_end_to_end_with_iam_enforced() {
    let endpoint = kit::moto_enforcing_iam(enforce::FREE_REQUESTS);
    let admin = enforce::admin(&endpoint, kit::REGION)
        .await
        .expect("the demo's user");
    let report = common::run_demo_as(
        env!("CARGO_BIN_EXE_intradayctl").as_ref(),
        &endpoint,
        &["--timeout", "90", "--enforce-iam"],
        (admin.access_key_id(), admin.secret_access_key()),
    );
    let stack = report["stack"].as_str().expect("stack").to_owned();
    let runs = report["runs"].as_array().expect("runs");
    assert_eq!(runs.len(), 6, "two runs of three collections: {runs:?}");

    let aws = AwsSettings {
        static_credentials: Some(admin),
        ..AwsSettings::emulator(&endpoint, kit::REGION)
    }
    .load()
    .await;
    roles_are_refused_what_they_are_not_granted(&aws, &stack).await;
    let store = JobStore::new(aws.dynamodb(), format!("{stack}-jobs"));
    let mut previous_end = None;
    for run in ["demo-1", "demo-2"] {
        let id = runs
            .iter()
            .find_map(|r| r["run"].as_str().filter(|id| id.starts_with(run)))
            .expect("run id");
        let jobs = store
            .run(&CorrelationId::new(id).expect("id"))
            .await
            .expect("items");
        assert_eq!(jobs.len(), 3);
        for job in &jobs {
            assert_eq!(job.status, JobStatus::EmrCompleted, "{job:?}");
            let end = job.processed_data_end.expect("a watermark");
            assert!(end < job.window_end.expect("window end"));
            assert!(job.emr_cluster_id.is_some());
        }
        // The second run starts where the first one's data ended.
        let claimant = jobs
            .iter()
            .find(|j| j.collection.name() == "db.core.claimant")
            .expect("claimant");
        if let Some(end) = previous_end {
            assert_eq!(claimant.processed_data_start, Some(end + 1));
        }
        previous_end = claimant.processed_data_end;
        assert_eq!(
            store.lock_holder(&claimant.collection).await.expect("lock"),
            None,
            "locks released"
        );
    }

    let catalog = Catalog::new(aws.glue());
    // Each demo has a database of its own, so demos sharing a moto server never collide.
    let database = format!(
        "intraday_demo_{}",
        stack.trim_start_matches("intraday-demo-")
    );
    for (table, view) in [
        ("core_claimant", "v_core_claimant_latest"),
        ("agent_agenttodo", "v_agent_agenttodo_latest"),
    ] {
        let info = catalog
            .get_table(&database, table)
            .await
            .expect("glue")
            .expect("table exists");
        assert!(
            info.location
                .as_deref()
                .unwrap_or_default()
                .ends_with(&format!("/data/{table}/")),
            "{info:?}"
        );
        assert!(info.columns.iter().any(|c| c.name == "record_timestamp"));
        assert!(
            catalog
                .get_table(&database, view)
                .await
                .expect("glue")
                .is_some(),
            "{view}"
        );
    }

    let objects = Objects::new(aws.s3());
    let bucket = format!("{stack}-output-123456789012-{}", kit::REGION);
    let files = objects
        .list(&S3Uri::new(&bucket, "data/core_claimant/").expect("uri"))
        .await
        .expect("list");
    // The demo's tables have 3 regions, scanned 2 ranges at once: each range writes its
    // own file, so each of the 2 runs has 3.
    assert_eq!(files.len(), 2 * 3, "one file per range per run: {files:?}");
    for file in &files {
        assert!(file.key.ends_with(".parquet"), "{}", file.key);
        let tags = objects
            .tags(&S3Uri::new(&bucket, &file.key).expect("uri"))
            .await
            .expect("tags");
        assert_eq!(
            tags,
            [
                ("db".into(), "core".into()),
                ("pii".into(), "true".into()),
                ("table".into(), "claimant".into())
            ]
        );
    }
    let agent = objects
        .list(&S3Uri::new(&bucket, "data/agent_agenttodo/").expect("uri"))
        .await
        .expect("list");
    let tags = objects
        .tags(&S3Uri::new(&bucket, &agent[0].key).expect("uri"))
        .await
        .expect("tags");
    assert!(
        tags.contains(&("pii".to_owned(), "false".to_owned())),
        "{tags:?}"
    );

    let left = objects
        .list(&S3Uri::new(&format!("{stack}-hbase"), "hbase/data/hbase/").expect("uri"))
        .await
        .expect("list");
    assert!(
        left.is_empty(),
        "the reaper left replica metadata: {left:?}"
    );
}

/// IAM is really enforced: the scheduler's role may not list EMR clusters or write the output
/// bucket; the nodes' role may not read the job table; the launcher's may list clusters and
/// the table builder's may not.
async fn roles_are_refused_what_they_are_not_granted(aws: &intraday_aws::Aws, stack: &str) {
    let template =
        intradayctl::local::roles::template(include_str!("../../../infra/template.yaml"))
            .expect("template");
    let endpoint = aws.sdk.endpoint_url().expect("endpoint").to_owned();
    // Clients signing with a session of the template's role `logical`, named `name`.
    let session = |logical: &'static str, name: String| {
        let (template, endpoint) = (&template, endpoint.clone());
        async move {
            let credentials = enforce::assume(aws, template, logical, &name, logical)
                .await
                .unwrap_or_else(|e| panic!("a session of {name}: {e}"));
            AwsSettings {
                static_credentials: Some(credentials),
                ..AwsSettings::emulator(endpoint, kit::REGION)
            }
            .load()
            .await
        }
    };
    // moto answers a JSON-protocol request it refuses with an XML body the SDK cannot parse,
    // so the refusal is read from the raw answer: 403 and AccessDenied.
    fn assert_denied<E, R: std::fmt::Debug>(e: aws_sdk_s3::error::SdkError<E, R>) {
        let answer = format!("{:?}", e.raw_response());
        assert!(answer.contains("AccessDenied"), "{answer}");
    }

    let scheduler = session("SchedulerRole", format!("{stack}-scheduler-role")).await;
    assert_denied(
        scheduler
            .emr()
            .list_clusters()
            .send()
            .await
            .expect_err("the scheduler may not list clusters"),
    );
    assert_denied(
        scheduler
            .s3()
            .put_object()
            .bucket(format!("{stack}-output-123456789012-{}", kit::REGION))
            .key("data/x")
            .body(b"x".to_vec().into())
            .send()
            .await
            .expect_err("the scheduler may not write the output bucket"),
    );
    // The role the demo's extractor ran under: output, not the job table.
    let nodes = session("EmrInstanceRole", format!("{stack}-emr-nodes-role")).await;
    assert_denied(
        nodes
            .dynamodb()
            .describe_table()
            .table_name(format!("{stack}-jobs"))
            .send()
            .await
            .expect_err("the nodes may not read the job table"),
    );
    let launcher = session("LauncherRole", format!("{stack}-launcher-role")).await;
    launcher
        .emr()
        .list_clusters()
        .send()
        .await
        .expect("the launcher lists clusters");
    let tables = session("TableBuilderRole", format!("{stack}-table-builder-role")).await;
    assert_denied(
        tables
            .emr()
            .list_clusters()
            .send()
            .await
            .expect_err("the table builder may not list clusters"),
    );
}
