//! intradayctl, run as a program against a stack deployed to moto server from
//! infra/template.yaml.

use std::process::{Command, Output};
use std::time::Duration;

use intraday_aws::{JobStore, Queues, Stacks};
use intraday_core::{Collection, CorrelationId, JobRecord, JobStatus};
use intraday_testkit as kit;
use intraday_testkit::drain;

mod common;
use common::{Stack, stack, stack_with};

fn ctl(stack: &Stack, args: &[&str], stdin: Option<&str>) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_intradayctl"));
    command
        .args([
            "--endpoint-url",
            kit::moto(),
            "--region",
            kit::REGION,
            "--stack",
            &stack.name,
        ])
        .args(args)
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env_remove("AWS_PROFILE");
    match stdin {
        None => command.output().expect("run intradayctl"),
        Some(input) => {
            use std::io::Write;
            let mut child = command
                .stdin(std::process::Stdio::piped())
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .expect("spawn");
            child
                .stdin
                .take()
                .expect("stdin")
                .write_all(input.as_bytes())
                .expect("write");
            child.wait_with_output().expect("wait")
        }
    }
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[tokio::test]
async fn moto_an_invalid_replay_is_refused_with_the_schema_error_and_nothing_is_sent() {
    let s = stack().await;
    let mut launch: serde_json::Value = serde_json::from_str(include_str!(
        "../../../events/samples/launch-requested.json"
    ))
    .expect("sample");
    launch["collections"][0]["window"]["start_ms"] = "yesterday".into();
    let out = ctl(
        &s,
        &["replay", "--queue", "launcher", "--stdin"],
        Some(&launch.to_string()),
    );
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(
        err.contains("does not match events/schemas/message.json"),
        "{err}"
    );
    assert!(err.contains("nothing was sent"), "{err}");
    let queues = Queues::new(kit::aws().await.sqs());
    assert!(
        drain(&queues, &s.outputs["LauncherQueueUrl"])
            .await
            .is_empty()
    );

    // The sample itself is valid and arrives as sent.
    let good = include_str!("../../../events/samples/launch-requested.json");
    let out = ctl(
        &s,
        &["replay", "--queue", "launcher", "--stdin"],
        Some(good),
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        drain(&queues, &s.outputs["LauncherQueueUrl"]).await,
        [good.to_owned()]
    );
}

#[tokio::test]
async fn moto_dlq_redrive_moves_every_message_exactly_once() {
    let s = stack().await;
    let queues = Queues::new(kit::aws().await.sqs());
    let dlq = &s.outputs["SchedulerDlqUrl"];
    let bodies: Vec<String> = (0..25).map(|i| format!("{{\"n\":{i}}}")).collect();
    queues.send_batch(dlq, &bodies).await.expect("fill dlq");

    let dry = ctl(
        &s,
        &[
            "--output",
            "json",
            "dlq",
            "redrive",
            "scheduler",
            "--dry-run",
        ],
        None,
    );
    assert!(dry.status.success(), "{}", text(&dry.stderr));
    let report: serde_json::Value = serde_json::from_slice(&dry.stdout).expect("json");
    assert_eq!(report["would_move"], 25);

    let out = ctl(
        &s,
        &["--output", "json", "dlq", "redrive", "scheduler"],
        None,
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(report["moved"], 25);

    let mut moved = drain(&queues, &s.outputs["SchedulerQueueUrl"]).await;
    moved.sort();
    let mut want = bodies.clone();
    want.sort();
    assert_eq!(moved, want, "every message once, none twice");
    assert!(drain(&queues, dlq).await.is_empty());

    let listed = ctl(&s, &["--output", "json", "dlq", "list"], None);
    assert!(listed.status.success(), "{}", text(&listed.stderr));
}

#[tokio::test]
async fn moto_ack_on_a_run_that_did_not_fail_is_refused_and_changes_nothing() {
    let s = stack().await;
    let store = JobStore::new(
        kit::aws().await.dynamodb(),
        s.outputs["JobTableName"].clone(),
    );
    let c = Collection::parse("db.core.claimant").expect("c");
    let run = CorrelationId::new("scheduled-20240311-1030").expect("id");
    store
        .create(&JobRecord::new(
            run.clone(),
            c.clone(),
            JobStatus::EmrCompleted,
            1,
        ))
        .await
        .expect("item");

    let out = ctl(
        &s,
        &[
            "ack",
            run.as_str(),
            "--collection",
            "db.core.claimant",
            "--reason",
            "checked",
        ],
        None,
    );
    assert_eq!(out.status.code(), Some(1));
    let shown = text(&out.stdout);
    assert!(
        shown.contains("refused  run `scheduled-20240311-1030` of `db.core.claimant` is EMR_COMPLETED, not failed: only EMR_FAILED and LAMBDA_FAILED runs can be acknowledged"),
        "{shown}"
    );
    assert_eq!(
        store.get(&run, &c).await.expect("get").map(|j| j.status),
        Some(JobStatus::EmrCompleted)
    );

    // A failed one is acknowledged, with who and why.
    let failed = CorrelationId::new("scheduled-20240311-1130").expect("id");
    store
        .create(&JobRecord::new(
            failed.clone(),
            c.clone(),
            JobStatus::EmrFailed,
            2,
        ))
        .await
        .expect("item");
    let out = ctl(
        &s,
        &[
            "--output",
            "json",
            "ack",
            failed.as_str(),
            "--collection",
            "db.core.claimant",
            "--reason",
            "disk resized",
            "--by",
            "ops",
        ],
        None,
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        store.get(&failed, &c).await.expect("get").map(|j| j.status),
        Some(JobStatus::AcknowledgedEmrFailed)
    );
    let acked: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    let arn = acked["by_arn"]
        .as_str()
        .expect("the caller's identity")
        .to_owned();
    assert!(arn.starts_with("arn:aws:"), "{acked:#}");
    let recorded = store
        .acknowledgement(&failed, &c)
        .await
        .expect("read")
        .expect("recorded");
    assert_eq!(recorded.by.as_deref(), Some("ops"));
    assert_eq!(recorded.by_arn.as_deref(), Some(arn.as_str()));

    // Several at once: each reports its own result; one already acknowledged says by whom,
    // and does not stop the other.
    let contract = Collection::parse("db.core.contract").expect("c");
    store
        .create(&JobRecord::new(
            failed.clone(),
            contract.clone(),
            JobStatus::EmrFailed,
            2,
        ))
        .await
        .expect("item");
    let out = ctl(
        &s,
        &[
            "--output",
            "json",
            "ack",
            failed.as_str(),
            "--collection",
            "db.core.claimant",
            "--collection",
            "core:contract",
            "--reason",
            "again",
        ],
        None,
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    let both: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(both["collections"][0]["result"], "already acknowledged");
    let detail = both["collections"][0]["detail"].as_str().expect("detail");
    assert!(
        detail.starts_with(&format!("_FAILED by ops ({arn}) at "))
            && detail.ends_with(": disk resized"),
        "{detail}"
    );
    assert_eq!(both["collections"][1]["result"], "acknowledged");
    assert_eq!(
        store
            .get(&failed, &contract)
            .await
            .expect("get")
            .map(|j| j.status),
        Some(JobStatus::AcknowledgedEmrFailed)
    );

    let status = ctl(
        &s,
        &["--output", "json", "status", "--run", failed.as_str()],
        None,
    );
    assert!(status.status.success(), "{}", text(&status.stderr));
    let report: serde_json::Value = serde_json::from_slice(&status.stdout).expect("json");
    assert_eq!(report["items"][0]["status"], "_FAILED");
}

#[tokio::test]
async fn moto_unknown_stack_says_what_to_do() {
    let s = Stack {
        name: "no-such-stack".into(),
        outputs: Default::default(),
    };
    let out = ctl(&s, &["dlq", "list"], None);
    assert_eq!(out.status.code(), Some(3));
    assert_eq!(
        text(&out.stderr),
        format!(
            "intradayctl: stack `no-such-stack` was not found in {}; deploy infra/template.yaml (infra/README.md) or pass --stack NAME\n",
            kit::REGION
        )
    );
}

/// A stack deployed over the original's resources: its job table (no `byCluster` index), its
/// collections secret and its alerts topic, adopted through the template's parameters.
#[tokio::test]
async fn moto_migrate_check_reads_the_originals_table_secret_and_catalog_and_changes_nothing() {
    use base64::Engine;
    use intraday_aws::{AttributeValue, Catalog, Secrets};

    let aws = kit::aws().await;
    let table = kit::original_job_table(&aws).await;
    let secret = format!("/intraday/{}", kit::unique("collections"));
    let literal = "{'collections_all': {'db.core.claimant': {'db': 'core', 'table': 'claimant', 'pii': 'true'}, \
        'db.core.contract': {'db': 'core', 'table': 'contract'}, 'db.core.statement': {'db': 'core', 'table': 'statement'}, \
        'db.core.broken': {'table': 'broken'}}}";
    Secrets::new(aws.secrets())
        .put(
            &secret,
            &base64::engine::general_purpose::STANDARD.encode(literal),
        )
        .await
        .expect("the original's secret");
    let (topic, _) = kit::topic_with_queue(&aws).await;
    let database = kit::unique("legacy").replace('-', "_");

    let template = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../infra/template.yaml"
    ))
    .expect("template");
    let name = kit::unique("adopt");
    let deployed = Stacks::new(aws.cloudformation())
        .create(
            &name,
            &template,
            &[
                ("Prefix", &name),
                ("JobTableName", &table),
                ("AdoptJobTable", "true"),
                ("CollectionsSecretName", &secret),
                ("AdoptCollectionsSecret", "true"),
                ("ExistingAlertsTopicArn", &topic),
                ("GlueDatabaseName", &database),
                ("EnableSchedules", "false"),
                ("EnforceTls", "false"),
                ("CodeBucket", ""),
            ],
            Duration::from_secs(60),
        )
        .await
        .expect("stack over the original's resources");
    // Nothing of the original's was created again: the outputs name what exists.
    assert_eq!(deployed.outputs["JobTableName"], table);
    assert_eq!(deployed.outputs["AlertsTopicArn"], topic);
    let topics = aws.sns().list_topics().send().await.expect("topics");
    assert!(
        !topics
            .topics()
            .iter()
            .filter_map(|t| t.topic_arn())
            .any(|arn| arn.ends_with(&format!(":{name}-alerts"))),
        "the stack made its own alerts topic"
    );

    let uuid = "6fa459ea-ee8a-3ca4-894e-db77e160355e";
    let item = |collection: &'static str, attrs: Vec<(&'static str, AttributeValue)>| {
        let (aws, table) = (&aws, &table);
        async move { kit::original_job_item(aws, table, uuid, collection, &attrs).await }
    };
    let n = |v: u64| AttributeValue::N(v.to_string());
    let st = |v: &str| AttributeValue::S(v.to_owned());
    item(
        "core:claimant",
        vec![
            ("JobStatus", st("EMR_COMPLETED")),
            ("TriggeredTime", n(1_700_000_000_000)),
            ("ProcessedDataEnd", n(1_700_000_100_000)),
        ],
    )
    .await;
    item(
        "core:contract",
        vec![
            ("JobStatus", st("EMR_FAILED")),
            ("TriggeredTime", n(1_700_000_000_000)),
        ],
    )
    .await;
    item(
        "core:statement",
        vec![
            ("JobStatus", st("EMR_RETRYING")),
            ("TriggeredTime", n(1_700_000_000_000)),
        ],
    )
    .await;
    // The original's unpartitioned CSV table for claimant.
    let catalog = Catalog::new(aws.glue());
    catalog.ensure_database(&database).await.expect("database");
    catalog
        .upsert_table(
            &database,
            &kit::original_table("core_claimant", "s3://published/intraday/core_claimant"),
        )
        .await
        .expect("the original's table");

    let s = Stack {
        name,
        outputs: deployed.outputs,
    };
    let before = aws
        .dynamodb()
        .scan()
        .table_name(&table)
        .send()
        .await
        .expect("scan")
        .count();
    let out = ctl(&s, &["migrate", "check", "--output", "json"], None);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON on stdout");
    assert_eq!(report["job_table"], table.as_str());
    assert_eq!(report["database"], database.as_str());
    assert_eq!(report["ready"], false);
    let by_name = |c: &str| {
        report["collections"]
            .as_array()
            .expect("collections")
            .iter()
            .find(|e| e["collection"] == c)
            .cloned()
            .unwrap_or_else(|| panic!("{c} missing from {report:#}"))
    };
    let claimant = by_name("db.core.claimant");
    assert_eq!(claimant["next_window_start_ms"], 1_700_000_100_001u64);
    assert_eq!(claimant["last_completed"]["run"], uuid);
    assert_eq!(claimant["blocked_by"], serde_json::Value::Null);
    assert_eq!(claimant["table"], "the original's (not partitioned)");
    let contract = by_name("db.core.contract");
    assert_eq!(contract["next_window_start_ms"], 0);
    assert_eq!(contract["pii"], true);
    assert_eq!(
        contract["blocked_by"]["fix"],
        format!("intradayctl ack {uuid} --collection db.core.contract --reason '<why>'")
    );
    assert_eq!(
        by_name("db.core.statement")["blocked_by"]["what"],
        format!(
            "an item of run `{uuid}` cannot be read: unknown job status `EMR_RETRYING`; expected one of LAMBDA_TRIGGERED, WAITING, DEFERRED, EMR_LAUNCHED, EMR_PROCESSING, EMR_COMPLETED, EMR_FAILED, LAMBDA_FAILED, _FAILED, _LAMBDA_FAILED"
        )
    );
    let problems: Vec<&str> = report["problems"]
        .as_array()
        .expect("problems")
        .iter()
        .filter_map(|p| p.as_str())
        .collect();
    let want_starts = [
        format!("the job table `{table}` has no index `byCluster`"),
        "collections secret entry `db.core.broken` is not valid: field `db` is missing; that entry is skipped".to_owned(),
        format!("db.core.contract: run `{uuid}` is EMR_FAILED, not acknowledged; intradayctl ack"),
        format!("db.core.statement: an item of run `{uuid}` cannot be read"),
        format!("table `{database}.core_claimant` is the original's"),
    ];
    for want in &want_starts {
        assert!(
            problems.iter().any(|p| p.starts_with(want.as_str())),
            "no problem starting {want:?} in {problems:#?}"
        );
    }
    assert_eq!(problems.len(), want_starts.len(), "{problems:#?}");

    // The table for people says the same, and nothing was written.
    let out = ctl(&s, &["migrate", "check"], None);
    assert_eq!(out.status.code(), Some(1));
    let shown = text(&out.stdout);
    assert!(shown.contains("5 problem(s):"), "{shown}");
    assert!(
        shown.lines().any(|l| l.starts_with("db.core.claimant")
            && l.contains("2023-11-14T22:15:00.000Z")
            && l.contains("2023-11-14T22:15:00.001Z")),
        "{shown}"
    );
    let after = aws
        .dynamodb()
        .scan()
        .table_name(&table)
        .send()
        .await
        .expect("scan")
        .count();
    assert_eq!(before, after);
}

#[tokio::test]
async fn moto_register_legacy_makes_a_table_of_the_originals_finished_folders() {
    use base64::Engine;
    use intraday_aws::Catalog;

    let aws = kit::aws().await;
    let secret = format!("/intraday/{}", kit::unique("collections"));
    let literal = "{'collections_all': {'db.core.claimant': {'db': 'core', 'table': 'claimant'}, \
        'db.agent.agentToDo': {'db': 'agent', 'table': 'agentToDo'}}}";
    intraday_aws::Secrets::new(aws.secrets())
        .put(
            &secret,
            &base64::engine::general_purpose::STANDARD.encode(literal),
        )
        .await
        .expect("secret");
    let database = kit::unique("legacy").replace('-', "_");
    let s = stack_with(&[
        ("CollectionsSecretName", &secret),
        ("GlueDatabaseName", &database),
    ])
    .await;
    let bucket = kit::bucket(&aws).await;
    // The original's layout: its folder keeps the table's case; Spark's part files and marker.
    let keys: Vec<String> = [
        "intraday/core_claimant/20240101-1030/part-00000.lzo",
        "intraday/core_claimant/20240101-1030/_SUCCESS",
        "intraday/core_claimant/20240101-1130/part-00000.lzo",
        "intraday/core_claimant/20240101-1130/_SUCCESS",
        "intraday/core_claimant/20240101-1230/part-00000.lzo",
        "intraday/agent_agentToDo/20240101-1030/part-00000.lzo",
        "intraday/agent_agentToDo/20240101-1030/_SUCCESS",
    ]
    .map(str::to_owned)
    .to_vec();
    kit::put_empty_objects(&aws, &bucket, &keys).await;
    let prefix = format!("s3://{bucket}/intraday/");

    // A dry run says what it would do and writes nothing.
    let out = ctl(
        &s,
        &[
            "migrate",
            "register-legacy",
            "--prefix",
            &prefix,
            "--dry-run",
            "--output",
            "json",
        ],
        None,
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let dry: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(dry["collections"][1]["would_register"], 2, "{dry:#}");
    let catalog = Catalog::new(aws.glue());
    assert!(!catalog.database_exists(&database).await.expect("database"));

    for attempt in 0..2 {
        let out = ctl(
            &s,
            &[
                "migrate",
                "register-legacy",
                "--prefix",
                &prefix,
                "--output",
                "json",
            ],
            None,
        );
        assert!(out.status.success(), "{}", text(&out.stderr));
        let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
        let rows = report["collections"].as_array().expect("rows");
        let claimant = rows
            .iter()
            .find(|r| r["collection"] == "db.core.claimant")
            .expect("claimant");
        assert_eq!(claimant["registered"], 2, "attempt {attempt}: {report:#}");
        assert_eq!(
            claimant["skipped_incomplete"],
            serde_json::json!(["20240101-1230"])
        );
        let todo = rows
            .iter()
            .find(|r| r["collection"] == "db.agent.agentToDo")
            .expect("agentToDo");
        assert_eq!(todo["registered"], 1);
        assert_eq!(
            todo["folder"],
            format!("s3://{bucket}/intraday/agent_agentToDo/")
        );
    }
    let table = catalog
        .get_table(&database, "core_claimant_legacy")
        .await
        .expect("get")
        .expect("the legacy table");
    assert_eq!(
        table.serde_library.as_deref(),
        Some("org.apache.hadoop.hive.serde2.OpenCSVSerde")
    );
    assert_eq!(table.serde_parameters["escapeChar"], "\u{1}");
    assert_eq!(
        table.location.as_deref(),
        Some(format!("s3://{bucket}/intraday/core_claimant/").as_str())
    );
    let partition = catalog
        .get_partition(
            &database,
            "core_claimant_legacy",
            &["20240101-1030".to_owned()],
        )
        .await
        .expect("get partition")
        .expect("partition");
    assert_eq!(
        partition.location.as_deref(),
        Some(format!("s3://{bucket}/intraday/core_claimant/20240101-1030/").as_str())
    );
    assert!(
        catalog
            .get_partition(
                &database,
                "core_claimant_legacy",
                &["20240101-1230".to_owned()]
            )
            .await
            .expect("get partition")
            .is_none(),
        "an unfinished folder is not registered"
    );
}

#[tokio::test]
async fn moto_dlq_peek_shows_each_message_once_and_leaves_it_where_it_was() {
    let s = stack().await;
    let queues = Queues::new(kit::aws().await.sqs());
    let dlq = &s.outputs["MonitorDlqUrl"];
    let bodies = [
        "{\"n\": 1}".to_owned(),
        "{\"n\": 2,\n  \"note\": \"two\\tlines\"}".to_owned(),
        "{\"n\": 3}".to_owned(),
    ];
    queues.send_batch(dlq, &bodies).await.expect("fill dlq");

    let out = ctl(
        &s,
        &["--output", "json", "dlq", "peek", "monitor", "-n", "200"],
        None,
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    let messages = report["messages"].as_array().expect("messages");
    let mut shown: Vec<&str> = messages.iter().filter_map(|m| m["body"].as_str()).collect();
    shown.sort();
    assert_eq!(
        shown,
        bodies.iter().map(String::as_str).collect::<Vec<_>>(),
        "each message once"
    );
    assert!(
        messages.iter().all(|m| m["receive_count"] == 1),
        "{report:#}"
    );

    // The table keeps one line per message and says how many.
    let out = ctl(&s, &["dlq", "peek", "monitor"], None);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let table = text(&out.stdout);
    assert_eq!(
        table.lines().filter(|l| l.contains("{\"n\": ")).count(),
        3,
        "{table}"
    );
    assert!(
        table.contains("{\"n\": 2, \"note\": \"two\\tlines\"}"),
        "{table}"
    );
    assert!(
        table.ends_with("3 messages; left where they were.\n"),
        "{table}"
    );

    // Released at once: all three are there to receive, each read once per peek.
    let got = queues
        .receive(
            dlq,
            10,
            Duration::from_secs(1),
            Some(Duration::from_secs(30)),
        )
        .await
        .expect("receive");
    assert_eq!(got.len(), 3);
    assert!(got.iter().all(|m| m.receive_count == 3), "{got:?}");
}

/// Nothing is sent that the scheduler would refuse later, or that would write where the
/// scheduled runs write: the command says why, with the known collections, and exits 2.
#[tokio::test]
async fn moto_trigger_backfill_and_status_check_their_input_before_sending() {
    use base64::Engine;
    let aws = kit::aws().await;
    let secret = format!("/intraday/{}", kit::unique("collections"));
    intraday_aws::Secrets::new(aws.secrets())
        .put(
            &secret,
            &base64::engine::general_purpose::STANDARD.encode(
                "{'collections_all': {'db.core.claimant': {'db': 'core', 'table': 'claimant'}}}",
            ),
        )
        .await
        .expect("secret");
    let s = stack_with(&[("CollectionsSecretName", &secret)]).await;
    let queues = Queues::new(aws.sqs());
    let cases: [(&[&str], i32, &str); 5] = [
        (
            &["trigger", "--collections", "db.core.nosuch"],
            2,
            "intradayctl: invalid collection `db.core.nosuch`: the collections secret does not list it (it lists db.core.claimant)",
        ),
        (
            &[
                "backfill",
                "--collection",
                "core:nosuch",
                "--start",
                "2024-03-01T00:00:00Z",
                "--end",
                "2024-03-02T00:00:00Z",
            ],
            2,
            "intradayctl: invalid collection `db.core.nosuch`: the collections secret does not list it",
        ),
        (
            &[
                "backfill",
                "--collection",
                "db.core.claimant",
                "--start",
                "2024-03-01T00:00:00Z",
                "--end",
                "2999-01-01T00:00:00Z",
            ],
            2,
            "intradayctl: --end 2999-01-01T00:00:00.000Z is in the future",
        ),
        (
            &[
                "backfill",
                "--collection",
                "db.core.claimant",
                "--start",
                "2024-03-01T00:00:00Z",
                "--end",
                "2024-03-02T00:00:00Z",
                "--database",
                "intraday",
            ],
            2,
            "intradayctl: --database intraday is not this stack's backfill database `intraday_backfill`",
        ),
        (
            &["status", "--collection", "db.core.claimnat"],
            4,
            "intradayctl: `db.core.claimnat` is not in the collections secret and has no runs; it lists db.core.claimant",
        ),
    ];
    for (args, code, want) in cases {
        let out = ctl(&s, args, None);
        let err = text(&out.stderr);
        assert_eq!(out.status.code(), Some(code), "{args:?}: {err}");
        assert!(err.starts_with(want), "{args:?}: {err}");
    }
    assert!(
        drain(&queues, &s.outputs["SchedulerQueueUrl"])
            .await
            .is_empty(),
        "nothing was sent"
    );

    // What is valid is sent, and a forced backfill is the operator's call.
    let out = ctl(&s, &["trigger", "--collections", "core:claimant"], None);
    assert!(out.status.success(), "{}", text(&out.stderr));
    // The hint to follow the run reaches the same stack on the same endpoint.
    let hint = format!(
        "Follow it with: intradayctl --stack {} --endpoint-url {} --region {} status --run manual-",
        s.name,
        kit::moto(),
        kit::REGION
    );
    assert!(text(&out.stdout).contains(&hint), "{}", text(&out.stdout));
    let out = ctl(
        &s,
        &[
            "backfill",
            "--collection",
            "db.core.claimant",
            "--start",
            "2024-03-01T00:00:00Z",
            "--end",
            "2999-01-01T00:00:00Z",
            "--force",
        ],
        None,
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        drain(&queues, &s.outputs["SchedulerQueueUrl"]).await.len(),
        2
    );
}

/// The rules' dead-letter queues are listed beside the services', with what they feed, and
/// an event a rule could not deliver is redriven to the queue the rule feeds.
#[tokio::test]
async fn moto_dlq_list_shows_the_rules_dead_letter_queues_and_redrives_them_to_their_queue() {
    let s = stack().await;
    let queues = Queues::new(kit::aws().await.sqs());
    let event = include_str!("../../../events/samples/launch-requested.json").to_owned();
    queues
        .send(&s.outputs["EmrStateRuleDlqUrl"], &event, None)
        .await
        .expect("an undelivered event");

    let out = ctl(&s, &["--output", "json", "dlq", "list"], None);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let listed: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    let rows = listed["dead_letter_queues"].as_array().expect("rows");
    let names: Vec<&str> = rows.iter().filter_map(|r| r["queue"].as_str()).collect();
    assert_eq!(
        names,
        [
            "scheduler",
            "launcher",
            "monitor",
            "tables",
            "reaper",
            "emr-state-rule",
            "emr-terminated-rule"
        ],
        "the schedule rules' queues exist only with EnableSchedules=true"
    );
    let state = rows
        .iter()
        .find(|r| r["queue"] == "emr-state-rule")
        .expect("row");
    assert_eq!(state["feeds"], "monitor");
    assert_eq!(state["messages"], 1);
    assert_eq!(state["in_flight"], 0);

    let out = ctl(&s, &["dlq", "redrive", "emr-state-rule"], None);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(drain(&queues, &s.outputs["MonitorQueueUrl"]).await, [event]);

    let out = ctl(&s, &["dlq", "peek", "nosuch"], None);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).starts_with("intradayctl: unknown queue `nosuch`; use one of launcher, monitor, reaper, scheduler, tables, emr-state-rule"),
        "{}",
        text(&out.stderr)
    );
}
