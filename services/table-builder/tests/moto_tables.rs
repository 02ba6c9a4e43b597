//! The table builder against moto server (Glue and DynamoDB): what a finished extraction
//! leaves in the catalog and the job table, and that a redelivery changes neither.

use intraday_aws::jobs::{ATTR_DATA_END, job_key};
use intraday_aws::{
    Alerts, AttributeValue, Aws, Catalog, Column, JobStore, Queues, TableInfo, TxOp,
};
use intraday_core::{Collection, CorrelationId, DatabaseName, JobRecord, JobStatus, OutputFormat};
use intraday_events::{CollectionResult, ExtractionCompleted, MESSAGE_VERSION, Message as Event};
use intraday_runtime::{HandlerError, Message};
use intraday_table_builder::{ATTR_BACKFILL_DATA_END, Completed, Ctx, complete, handle};
use intraday_testkit as kit;

const BUCKET: &str = "intraday-output-test";
const RUN_FOLDER: &str = "20240311-1030";
const LARGEST: u64 = 1_710_152_991_234;

struct Setup {
    aws: Aws,
    ctx: Ctx,
    event: ExtractionCompleted,
    alerts_queue: String,
}

fn claimant() -> Collection {
    Collection::parse("db.core.claimant").expect("collection")
}

fn contract() -> Collection {
    Collection::parse("db.core.contract").expect("collection")
}

fn prefix(collection: &Collection) -> String {
    format!(
        "s3://{BUCKET}/data/{}/run={RUN_FOLDER}/",
        collection.hive_table()
    )
}

/// A run of two collections, `claimant` with records and `contract` without, whose items
/// are in `status`, each collection locked by the run; and its ExtractionCompleted.
async fn setup(format: OutputFormat, backfill: bool, status: JobStatus) -> Setup {
    let aws = kit::aws().await;
    let table = kit::job_table(&aws).await;
    let store = JobStore::new(aws.dynamodb(), table);
    let run = CorrelationId::new(kit::unique("run")).expect("id");
    let mut ops = Vec::new();
    for collection in [claimant(), contract()] {
        let mut job = JobRecord::new(run.clone(), collection.clone(), status, 1_710_153_000_000);
        job.processed_data_start = Some(1_710_000_000_000);
        job.backfill = backfill;
        ops.push(TxOp::create_job(&job));
        ops.push(TxOp::take_lock(&collection, &run, None));
    }
    store.transact(ops, None).await.expect("create the run");
    let database =
        DatabaseName::new(kit::unique("intraday").replace('-', "_")).expect("database name");
    let event = ExtractionCompleted {
        version: MESSAGE_VERSION,
        correlation_id: run.clone(),
        cluster_id: "j-1U9YC0ZK8R3TN".to_owned(),
        step_id: "s-2VQ8M4K1X7HJD".to_owned(),
        manifest: format!("s3://{BUCKET}/data/_manifests/{run}.json")
            .parse()
            .expect("manifest uri"),
        database,
        format,
        run: RUN_FOLDER.to_owned(),
        backfill,
        collections: vec![
            CollectionResult {
                collection: claimant(),
                records: 1520,
                largest_timestamp_ms: Some(LARGEST),
                output_prefix: prefix(&claimant()).parse().expect("uri"),
            },
            CollectionResult {
                collection: contract(),
                records: 0,
                largest_timestamp_ms: None,
                output_prefix: prefix(&contract()).parse().expect("uri"),
            },
        ],
    };
    let (topic, alerts_queue) = kit::topic_with_queue(&aws).await;
    let ctx = Ctx {
        store,
        catalog: Catalog::new(aws.glue()),
        alerts: Alerts::new(aws.sns(), topic),
        metrics: intraday_runtime::MetricsSink::Discard,
    };
    Setup {
        aws,
        ctx,
        event,
        alerts_queue,
    }
}

fn delivery(event: &ExtractionCompleted, n: u32) -> Message {
    Message {
        id: format!("m{n}"),
        body: Event::ExtractionCompleted(event.clone()).to_body(),
        receive_count: n,
        sent_ms: None,
    }
}

async fn table(s: &Setup, name: &str) -> TableInfo {
    s.ctx
        .catalog
        .get_table(s.event.database.as_str(), name)
        .await
        .expect("get table")
        .unwrap_or_else(|| panic!("{name} is registered"))
}

async fn items(s: &Setup) -> Vec<JobRecord> {
    let mut items = s
        .ctx
        .store
        .run(&s.event.correlation_id)
        .await
        .expect("read the run");
    items.sort_by(|a, b| a.collection.cmp(&b.collection));
    items
}

async fn statuses(s: &Setup) -> Vec<(Collection, JobStatus)> {
    items(s)
        .await
        .into_iter()
        .map(|j| (j.collection, j.status))
        .collect()
}

/// An attribute the job record does not model, read from the raw item.
async fn raw_attribute(s: &Setup, collection: &Collection, name: &str) -> Option<AttributeValue> {
    s.aws
        .dynamodb()
        .get_item()
        .table_name(s.ctx.store.table())
        .set_key(Some(job_key(&s.event.correlation_id, collection)))
        .consistent_read(true)
        .send()
        .await
        .expect("get item")
        .item()
        .and_then(|item| item.get(name).cloned())
}

/// Everything a redelivery must leave as it is.
async fn snapshot(s: &Setup) -> (Vec<TableInfo>, Vec<JobRecord>, String) {
    let mut tables = Vec::new();
    for c in [claimant(), contract()] {
        for name in [
            c.hive_table(),
            c.latest_view(),
            format!("{}_athena", c.latest_view()),
        ] {
            tables.push(table(s, &name).await);
        }
    }
    let partition = s
        .ctx
        .catalog
        .get_partition(
            s.event.database.as_str(),
            "core_claimant",
            &[RUN_FOLDER.to_owned()],
        )
        .await
        .expect("get partition");
    (tables, items(s).await, format!("{partition:?}"))
}

#[tokio::test]
async fn moto_a_parquet_run_is_registered_completed_and_a_redelivery_changes_nothing() {
    let s = setup(OutputFormat::Parquet, false, JobStatus::EmrProcessing).await;
    handle(delivery(&s.event, 1), &s.ctx)
        .await
        .expect("first delivery");
    let database = s.event.database.as_str();
    assert!(
        s.ctx
            .catalog
            .database_exists(database)
            .await
            .expect("database")
    );

    let t = table(&s, "core_claimant").await;
    assert_eq!(t.table_type.as_deref(), Some("EXTERNAL_TABLE"));
    assert_eq!(
        t.columns,
        [
            Column::new("id", "string"),
            Column::new("record_timestamp", "bigint"),
            Column::new("record", "string"),
        ]
    );
    assert_eq!(t.partition_keys, [Column::new("run", "string")]);
    assert_eq!(
        t.location.as_deref(),
        Some(format!("s3://{BUCKET}/data/core_claimant/").as_str())
    );
    assert_eq!(
        t.input_format.as_deref(),
        Some("org.apache.hadoop.hive.ql.io.parquet.MapredParquetInputFormat")
    );
    assert_eq!(
        t.output_format.as_deref(),
        Some("org.apache.hadoop.hive.ql.io.parquet.MapredParquetOutputFormat")
    );
    assert_eq!(
        t.serde_library.as_deref(),
        Some("org.apache.hadoop.hive.ql.io.parquet.serde.ParquetHiveSerDe")
    );
    assert_eq!(t.parameters["classification"], "parquet");
    assert_eq!(t.parameters["EXTERNAL"], "TRUE");

    let partition = s
        .ctx
        .catalog
        .get_partition(database, "core_claimant", &[RUN_FOLDER.to_owned()])
        .await
        .expect("get partition")
        .expect("the run's partition");
    assert_eq!(
        partition.location.as_deref(),
        Some(prefix(&claimant()).as_str())
    );
    assert_eq!(partition.columns, t.columns);
    assert_eq!(partition.serde_library, t.serde_library);

    // No records, no folder: the table and views exist, the partition does not.
    table(&s, "core_contract").await;
    assert!(
        s.ctx
            .catalog
            .get_partition(database, "core_contract", &[RUN_FOLDER.to_owned()])
            .await
            .expect("get partition")
            .is_none()
    );

    let view = table(&s, "v_core_claimant_latest_athena").await;
    assert_eq!(view.table_type.as_deref(), Some("VIRTUAL_VIEW"));
    assert_eq!(view.parameters["presto_view"], "true");
    assert_eq!(view.parameters["comment"], "Presto View");
    assert_eq!(
        view.view_expanded_text.as_deref(),
        Some("/* Presto View */")
    );
    assert!(
        view.view_original_text
            .as_deref()
            .is_some_and(|t| t.starts_with("/* Presto View: ") && t.ends_with(" */"))
    );
    assert_eq!(view.columns, t.columns);
    let hive = table(&s, "v_core_claimant_latest").await;
    assert_eq!(hive.table_type.as_deref(), Some("VIRTUAL_VIEW"));
    assert!(
        hive.view_expanded_text
            .as_deref()
            .is_some_and(|t| t.contains(&format!("FROM `{database}`.`core_claimant` `t`")))
    );

    let jobs = items(&s).await;
    assert_eq!(jobs[0].collection, claimant());
    assert_eq!(jobs[0].status, JobStatus::EmrCompleted);
    assert_eq!(jobs[0].processed_data_end, Some(LARGEST));
    assert_eq!(jobs[1].collection, contract());
    assert_eq!(jobs[1].status, JobStatus::EmrCompleted);
    assert_eq!(jobs[1].processed_data_end, None);
    for c in [claimant(), contract()] {
        assert_eq!(
            s.ctx.store.lock_holder(&c).await.expect("lock"),
            None,
            "{c}"
        );
    }

    let before = snapshot(&s).await;
    handle(delivery(&s.event, 2), &s.ctx)
        .await
        .expect("second delivery");
    assert_eq!(
        complete(&s.event, &s.ctx).await.expect("third"),
        Completed::Already
    );
    assert_eq!(snapshot(&s).await, before);
}

#[tokio::test]
async fn moto_a_csv_gzip_run_gets_a_text_table_read_with_open_csv_serde() {
    let s = setup(OutputFormat::CsvGzip, false, JobStatus::EmrLaunched).await;
    let outcome = complete(&s.event, &s.ctx).await.expect("complete");
    assert_eq!(
        outcome,
        Completed::Now {
            collections: 2,
            partitions: 1,
            locks_released: 2
        }
    );
    let t = table(&s, "core_claimant").await;
    assert_eq!(
        t.columns,
        [
            Column::new("id", "string"),
            Column::new("record_timestamp", "string"),
            Column::new("record", "string"),
        ]
    );
    assert_eq!(
        t.input_format.as_deref(),
        Some("org.apache.hadoop.mapred.TextInputFormat")
    );
    assert_eq!(
        t.output_format.as_deref(),
        Some("org.apache.hadoop.hive.ql.io.HiveIgnoreKeyTextOutputFormat")
    );
    assert_eq!(
        t.serde_library.as_deref(),
        Some("org.apache.hadoop.hive.serde2.OpenCSVSerde")
    );
    assert_eq!(t.serde_parameters["quoteChar"], "\"");
    assert_eq!(t.serde_parameters["escapeChar"], "\u{1}");
    assert_eq!(t.parameters["classification"], "csv");
    assert!(!t.parameters.contains_key("skip.header.line.count"));
    assert!(t.compressed);
    let partition = s
        .ctx
        .catalog
        .get_partition(
            s.event.database.as_str(),
            "core_claimant",
            &[RUN_FOLDER.to_owned()],
        )
        .await
        .expect("get partition")
        .expect("partition");
    assert_eq!(
        partition.location.as_deref(),
        Some(prefix(&claimant()).as_str())
    );
    assert_eq!(
        partition.input_format.as_deref(),
        Some("org.apache.hadoop.mapred.TextInputFormat")
    );
    assert_eq!(items(&s).await[0].processed_data_end, Some(LARGEST));
}

#[tokio::test]
async fn moto_a_backfill_records_its_end_apart_and_never_moves_the_watermark() {
    let s = setup(OutputFormat::Parquet, true, JobStatus::EmrProcessing).await;
    complete(&s.event, &s.ctx).await.expect("complete");
    for job in items(&s).await {
        assert_eq!(job.status, JobStatus::EmrCompleted);
        assert_eq!(job.processed_data_end, None, "{}", job.collection);
    }
    assert_eq!(
        raw_attribute(&s, &claimant(), ATTR_BACKFILL_DATA_END).await,
        Some(AttributeValue::N(LARGEST.to_string()))
    );
    assert_eq!(
        raw_attribute(&s, &contract(), ATTR_BACKFILL_DATA_END).await,
        None
    );
    assert_eq!(raw_attribute(&s, &claimant(), ATTR_DATA_END).await, None);
    assert_eq!(
        s.ctx
            .store
            .next_window_start(&claimant())
            .await
            .expect("watermark"),
        0
    );
}

#[tokio::test]
async fn moto_a_lock_held_by_another_run_is_left_alone() {
    let s = setup(OutputFormat::Parquet, false, JobStatus::EmrProcessing).await;
    // An operator acknowledged a stuck run and a new run took the lock over meanwhile.
    let other = CorrelationId::new("scheduled-20240311-1130").expect("id");
    s.ctx
        .store
        .transact(
            vec![TxOp::take_lock(
                &contract(),
                &other,
                Some(&s.event.correlation_id),
            )],
            None,
        )
        .await
        .expect("take over");
    let outcome = complete(&s.event, &s.ctx).await.expect("complete");
    assert_eq!(
        outcome,
        Completed::Now {
            collections: 2,
            partitions: 1,
            locks_released: 1
        }
    );
    assert_eq!(
        s.ctx.store.lock_holder(&claimant()).await.expect("lock"),
        None
    );
    assert_eq!(
        s.ctx
            .store
            .lock_holder(&contract())
            .await
            .expect("lock")
            .map(|(holder, _)| holder),
        Some(other)
    );
}

#[tokio::test]
async fn moto_concurrent_deliveries_complete_the_run_once() {
    let s = setup(OutputFormat::Parquet, false, JobStatus::EmrProcessing).await;
    let (a, b) = tokio::join!(complete(&s.event, &s.ctx), complete(&s.event, &s.ctx));
    let outcomes = [a.expect("first"), b.expect("second")];
    assert_eq!(
        outcomes
            .iter()
            .filter(|o| matches!(o, Completed::Now { .. }))
            .count(),
        1,
        "{outcomes:?}"
    );
    for job in items(&s).await {
        assert_eq!(job.status, JobStatus::EmrCompleted);
    }
}

#[tokio::test]
async fn moto_a_failed_run_is_not_registered() {
    let s = setup(OutputFormat::Parquet, false, JobStatus::EmrFailed).await;
    let err = handle(delivery(&s.event, 1), &s.ctx)
        .await
        .expect_err("failed run");
    assert_eq!(
        err,
        HandlerError::Permanent(format!(
            "run `{}` of `db.core.claimant` is EMR_FAILED, so its output is not registered: only EMR_LAUNCHED and EMR_PROCESSING runs complete",
            s.event.correlation_id
        ))
    );
    assert!(
        !s.ctx
            .catalog
            .database_exists(s.event.database.as_str())
            .await
            .expect("database")
    );
}

#[tokio::test]
async fn moto_bad_input_is_refused_naming_the_problem() {
    let s = setup(OutputFormat::Parquet, false, JobStatus::EmrProcessing).await;
    let mut bad_run = s.event.clone();
    bad_run.run = "2024-03-11".to_owned();
    let mut unknown = s.event.clone();
    unknown.correlation_id = CorrelationId::new("never-scheduled").expect("id");
    let cases = [
        ("{oops".to_owned(), "message body is not JSON".to_owned()),
        (
            r#"{"type":"ExtractionCompleted","version":1}"#.to_owned(),
            "ExtractionCompleted is not valid at `(top level)`: missing field `correlation_id`"
                .to_owned(),
        ),
        (
            include_str!("../../../events/samples/launch-requested.json").to_owned(),
            "the table builder handles ExtractionCompleted, not LaunchRequested".to_owned(),
        ),
        (
            include_str!("../../../events/samples/aws/emr-step-status-change-completed.json")
                .to_owned(),
            "the table builder handles ExtractionCompleted, not the AWS event `EMR Step Status Change`"
                .to_owned(),
        ),
        (
            Event::ExtractionCompleted(bad_run).to_body(),
            format!(
                "ExtractionCompleted for run `{}` is not valid: `run` is `2024-03-11`, not YYYYMMDD-HHMM",
                s.event.correlation_id
            ),
        ),
        (
            Event::ExtractionCompleted(unknown).to_body(),
            "run `never-scheduled` has no job item for `db.core.claimant`".to_owned(),
        ),
    ];
    for (body, want) in cases {
        let err = handle(
            Message {
                id: "m".into(),
                body,
                receive_count: 1,
                sent_ms: None,
            },
            &s.ctx,
        )
        .await
        .expect_err(&want);
        assert!(
            matches!(&err, HandlerError::Permanent(m) if m.starts_with(&want)),
            "{err:?}"
        );
    }
    // Nothing was completed by any of them.
    for job in items(&s).await {
        assert_eq!(job.status, JobStatus::EmrProcessing);
    }
}

/// A table never spans formats, and a table that is not ours is never redefined: the run's
/// output for that collection stays unregistered, its item fails with an alert that says
/// what to do, its lock stays; the other collection completes.
#[tokio::test]
async fn moto_a_format_change_or_the_originals_table_is_refused_with_an_alert() {
    // claimant's table holds Parquet partitions; this run wrote CSV.
    let s = setup(OutputFormat::CsvGzip, false, JobStatus::EmrProcessing).await;
    let database = s.event.database.as_str().to_owned();
    let folder = format!("s3://{BUCKET}/data/core_claimant/")
        .parse()
        .expect("uri");
    let parquet =
        intraday_table_builder::tables::table_spec(&claimant(), OutputFormat::Parquet, &folder);
    s.ctx
        .catalog
        .ensure_database(&database)
        .await
        .expect("database");
    s.ctx
        .catalog
        .upsert_table(&database, &parquet)
        .await
        .expect("parquet table");
    let before = table(&s, "core_claimant").await;

    handle(delivery(&s.event, 1), &s.ctx)
        .await
        .expect("handled, nothing to retry");
    assert_eq!(
        statuses(&s).await,
        vec![
            (claimant(), JobStatus::LambdaFailed),
            (contract(), JobStatus::EmrCompleted)
        ]
    );
    assert_eq!(
        table(&s, "core_claimant").await,
        before,
        "the Parquet table is untouched"
    );
    assert_eq!(
        s.ctx
            .catalog
            .get_partition(&database, "core_claimant", &[RUN_FOLDER.to_owned()])
            .await
            .expect("get partition"),
        None
    );
    assert_eq!(
        s.ctx
            .store
            .lock_holder(&claimant())
            .await
            .expect("lock")
            .map(|(h, _)| h),
        Some(s.event.correlation_id.clone()),
        "the collection waits for an acknowledgement"
    );
    let queues = Queues::new(s.aws.sqs());
    let alerts: Vec<serde_json::Value> = kit::drain(&queues, &s.alerts_queue)
        .await
        .iter()
        .map(|b| serde_json::from_str(b).expect("alert JSON"))
        .collect();
    assert_eq!(alerts.len(), 1, "{alerts:#?}");
    let run = &s.event.correlation_id;
    assert_eq!(alerts[0]["severity"], "Critical");
    assert_eq!(
        alerts[0]["detail"]["cause"],
        format!(
            "table `{database}.core_claimant` of `db.core.claimant` was left as it is and this run's output for it was not registered: its partitions are parquet and this run wrote csv-gzip; one table cannot hold both"
        )
    );
    let resolve = alerts[0]["detail"]["resolve"].as_str().expect("resolve");
    assert!(
        resolve.contains(&format!(
            "intradayctl ack {run} --collection db.core.claimant --reason '<why>'"
        )),
        "{resolve}"
    );
    // A redelivery finds the run settled: nothing more is written or said.
    let settled = items(&s).await;
    assert_eq!(
        complete(&s.event, &s.ctx).await.expect("again"),
        Completed::Already
    );
    assert_eq!(items(&s).await, settled);
    assert!(kit::drain(&queues, &s.alerts_queue).await.is_empty());

    // contract's table is the original's: text over its own folders, not partitioned.
    let s = setup(OutputFormat::Parquet, false, JobStatus::EmrProcessing).await;
    let database = s.event.database.as_str().to_owned();
    s.ctx
        .catalog
        .ensure_database(&database)
        .await
        .expect("database");
    let original = kit::original_table("core_contract", "s3://published/intraday/core_contract");
    s.ctx
        .catalog
        .upsert_table(&database, &original)
        .await
        .expect("the original's table");
    let before = table(&s, "core_contract").await;
    handle(delivery(&s.event, 1), &s.ctx)
        .await
        .expect("handled");
    assert_eq!(
        statuses(&s).await,
        vec![
            (claimant(), JobStatus::EmrCompleted),
            (contract(), JobStatus::LambdaFailed)
        ]
    );
    assert_eq!(
        table(&s, "core_contract").await,
        before,
        "the original's table is untouched"
    );
    let alerts = kit::drain(&Queues::new(s.aws.sqs()), &s.alerts_queue).await;
    assert_eq!(alerts.len(), 1);
    assert!(
        alerts[0].contains(
            "it is not partitioned by `run` (partition keys: []), so it is not one of Intraday's"
        ),
        "{}",
        alerts[0]
    );
}

/// What a delivery left, with run and database names and times left out: tables (name,
/// columns, type), items (collection, status, data end), the partition; and both locks
/// released.
async fn settled(
    s: &Setup,
) -> (
    Vec<(String, Vec<Column>, Option<String>)>,
    Vec<(Collection, JobStatus, Option<u64>)>,
    String,
) {
    let (tables, items, partition) = snapshot(s).await;
    for c in [claimant(), contract()] {
        assert_eq!(
            s.ctx.store.lock_holder(&c).await.expect("lock"),
            None,
            "{c}"
        );
    }
    (
        tables
            .iter()
            .map(|t| (t.name.clone(), t.columns.clone(), t.table_type.clone()))
            .collect(),
        items
            .iter()
            .map(|j| (j.collection.clone(), j.status, j.processed_data_end))
            .collect(),
        // All but its creation time, which is the catalog's clock.
        partition
            .split("creation_time_ms")
            .next()
            .unwrap_or_default()
            .replace(s.event.database.as_str(), "<database>"),
    )
}

/// A delivery interrupted after any of its AWS calls (the network stops answering and the
/// delivery is dropped, as a Lambda killed mid-call is) is finished by its redelivery: the
/// same tables, views and partition as an uninterrupted delivery, both items EMR_COMPLETED
/// with the same data ends, both locks released.
#[tokio::test]
async fn moto_a_completion_interrupted_after_any_call_is_finished_by_its_redelivery() {
    let (proxy, through) = kit::faults::in_front_of_moto().await;
    let proxied = |mut s: Setup| {
        s.ctx.store = JobStore::new(through.dynamodb(), s.ctx.store.table().to_owned());
        s.ctx.catalog = Catalog::new(through.glue());
        s
    };
    let s = proxied(setup(OutputFormat::Parquet, false, JobStatus::EmrProcessing).await);
    let (whole, calls) = proxy
        .count_calls(handle(delivery(&s.event, 1), &s.ctx))
        .await;
    whole.expect("whole");
    let want = settled(&s).await;
    assert!(calls >= 5, "{calls} calls");

    for k in 0..calls {
        let s = proxied(setup(OutputFormat::Parquet, false, JobStatus::EmrProcessing).await);
        let first = proxy
            .interrupt_after(k, handle(delivery(&s.event, 1), &s.ctx))
            .await;
        assert!(
            first.is_none(),
            "the delivery needed no more than {k} calls"
        );
        handle(delivery(&s.event, 2), &s.ctx)
            .await
            .unwrap_or_else(|e| panic!("redelivery after call {k}: {e:?}"));
        assert_eq!(settled(&s).await, want, "interrupted after call {k}");
    }
}
