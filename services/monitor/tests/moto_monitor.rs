//! The monitor against moto server, fed AWS's own EMR event samples: in order, shuffled and
//! duplicated, a run ends in the same state; a lost event is recovered by the sweep.

use std::time::Duration;

use intraday_aws::{Alerts, Emr, JobStore, Objects, Queues};
use intraday_core::{
    Collection, CorrelationId, JobRecord, JobStatus, OutputFormat, S3Uri, Window, run_folder,
};
use intraday_events::{CollectionManifest, MESSAGE_VERSION, Manifest, Message as Event};
use intraday_launcher::cluster::{ClusterTemplate, DEFAULT_TEMPLATE};
use intraday_monitor::{Ctx, SweepPolicy, handle, sweep};
use intraday_runtime::{HandlerError, Message};
use intraday_testkit as kit;
use intraday_testkit::drain;

const TRIGGER: u64 = 1_710_153_000_000;

struct Setup {
    ctx: Ctx,
    run: CorrelationId,
    cluster: String,
    step: String,
    output: S3Uri,
    alerts_queue: String,
}

fn collections() -> Vec<Collection> {
    vec![
        Collection::parse("db.core.claimant").expect("c"),
        Collection::parse("db.core.contract").expect("c"),
    ]
}

async fn setup(status: JobStatus) -> Setup {
    let aws = kit::aws().await;
    let store = JobStore::new(aws.dynamodb(), kit::job_table(&aws).await);
    let bucket = kit::bucket(&aws).await;
    let output = S3Uri::parse(&format!("s3://{bucket}/data/")).expect("output");
    let (tables_queue, _) = kit::queue_with_dlq(&aws, 3).await;
    let (topic, alerts_queue) = kit::topic_with_queue(&aws).await;
    let emr = Emr::new(aws.emr());
    let run = CorrelationId::new(kit::unique("run")).expect("id");

    // A real cluster, as the launcher would start it.
    let template = ClusterTemplate::parse(DEFAULT_TEMPLATE, "cluster.json")
        .expect("template")
        .with_overrides(&format!(r#"{{"log_uri": "s3://{bucket}/logs/"}}"#), "test")
        .expect("overrides");
    let launch = intraday_events::LaunchRequested {
        version: MESSAGE_VERSION,
        correlation_id: run.clone(),
        trigger_time_ms: TRIGGER,
        collections: collections()
            .into_iter()
            .map(|collection| intraday_events::CollectionWindow {
                collection,
                window: Window::new(100, TRIGGER).expect("w"),
                pii: true,
            })
            .collect(),
        output: output.clone(),
        database: Default::default(),
        format: OutputFormat::Parquet,
        backfill: false,
    };
    let cluster = emr
        .run(&template.request(&launch).expect("request"))
        .await
        .expect("cluster");
    let step = emr.steps(&cluster).await.expect("steps")[0].id.clone();
    for c in collections() {
        let mut job = JobRecord::new(run.clone(), c, status, TRIGGER);
        job.emr_cluster_id = Some(cluster.clone());
        job.processed_data_start = Some(100);
        job.window_end = Some(TRIGGER);
        job.output = Some(output.to_string());
        job.database = Some("intraday".into());
        job.format = Some("parquet".into());
        job.status_changed_at = Some(TRIGGER);
        store.create(&job).await.expect("item");
    }
    let ctx = Ctx {
        store,
        emr,
        objects: Objects::new(aws.s3()),
        queues: Queues::new(aws.sqs()),
        alerts: Alerts::new(aws.sns(), topic),
        tables_queue_url: tables_queue,
        sweep: SweepPolicy {
            stuck_after: Duration::ZERO,
            ..SweepPolicy::default()
        },
    };
    Setup {
        ctx,
        run,
        cluster,
        step,
        output,
        alerts_queue,
    }
}

/// The extractor's answer: the manifest, written last.
async fn write_manifest(s: &Setup) {
    let manifest = Manifest {
        version: MESSAGE_VERSION,
        correlation_id: s.run.clone(),
        run: run_folder(TRIGGER).expect("folder"),
        trigger_time_ms: TRIGGER,
        format: OutputFormat::Parquet,
        output: s.output.to_string(),
        collections: collections()
            .into_iter()
            .enumerate()
            .map(|(i, collection)| CollectionManifest {
                collection,
                window: Window::new(100, TRIGGER).expect("w"),
                records: 10 * i as u64,
                rejected: 0,
                smallest_timestamp_ms: (i > 0).then_some(200),
                largest_timestamp_ms: (i > 0).then_some(TRIGGER - 5),
                bytes: 0,
                files: vec![],
                rejects_file: None,
            })
            .collect(),
    };
    let uri = s
        .output
        .join(&format!("_manifests/{}.json", s.run))
        .expect("uri");
    s.ctx
        .objects
        .put(
            &uri,
            serde_json::to_vec(&manifest).expect("json"),
            "application/json",
            &[],
        )
        .await
        .expect("put");
}

/// An AWS sample event, pointed at our cluster and step.
fn sample(name: &str, s: &Setup) -> Message {
    let path = format!(
        "{}/../../events/samples/aws/{name}.json",
        env!("CARGO_MANIFEST_DIR")
    );
    let mut event: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).expect("sample")).expect("json");
    event["detail"]["clusterId"] = s.cluster.clone().into();
    if event["detail"].get("stepId").is_some() {
        event["detail"]["stepId"] = s.step.clone().into();
    }
    Message {
        id: kit::unique("m"),
        body: event.to_string(),
        receive_count: 1,
        sent_ms: None,
    }
}

async fn statuses(s: &Setup) -> Vec<JobStatus> {
    let mut jobs = s.ctx.store.run(&s.run).await.expect("run");
    jobs.sort_by(|a, b| a.collection.cmp(&b.collection));
    jobs.into_iter().map(|j| j.status).collect()
}

/// What a completion says per collection, without the run's own names.
fn results(done: &intraday_events::ExtractionCompleted) -> Vec<(String, u64, Option<u64>)> {
    done.collections
        .iter()
        .map(|c| (c.collection.name(), c.records, c.largest_timestamp_ms))
        .collect()
}

const SUCCESS: [&str; 6] = [
    "emr-cluster-state-change-starting",
    "emr-cluster-state-change-running",
    "emr-step-status-change-pending",
    "emr-step-status-change-running",
    "emr-step-status-change-completed",
    "emr-cluster-state-change-terminated",
];

/// Plays a sequence (indices into `names`) and returns the final statuses and the distinct
/// ExtractionCompleted messages sent.
async fn play(
    names: &[&str],
    order: &[usize],
    manifest: bool,
) -> (Vec<JobStatus>, Vec<String>, Setup) {
    let s = setup(JobStatus::EmrLaunched).await;
    if manifest {
        write_manifest(&s).await;
    }
    for &i in order {
        handle(sample(names[i], &s), &s.ctx)
            .await
            .unwrap_or_else(|e| panic!("{}: {e}", names[i]));
    }
    let mut sent = drain(&s.ctx.queues, &s.ctx.tables_queue_url).await;
    sent.sort();
    sent.dedup();
    (statuses(&s).await, sent, s)
}

#[tokio::test]
async fn moto_shuffled_and_duplicated_success_events_end_like_the_ordered_ones() {
    let (ordered, sent, s) = play(&SUCCESS, &[0, 1, 2, 3, 4, 5], true).await;
    assert_eq!(
        ordered,
        [JobStatus::EmrProcessing, JobStatus::EmrProcessing]
    );
    assert_eq!(sent.len(), 1, "{sent:?}");
    let Event::ExtractionCompleted(done) = Event::parse(&sent[0]).expect("parses") else {
        panic!("not ExtractionCompleted")
    };
    assert_eq!(done.cluster_id, s.cluster);
    assert_eq!(done.run, "20240311-1030");
    assert_eq!(done.collections[1].largest_timestamp_ms, Some(TRIGGER - 5));
    assert_eq!(
        done.collections[0].output_prefix,
        s.output
            .join("core_claimant/run=20240311-1030/")
            .expect("uri")
    );

    for order in [
        vec![5, 4, 3, 2, 1, 0],
        vec![4, 5, 0, 4, 1, 3, 3, 2, 5, 1],
        vec![3, 5, 5, 1, 4, 2, 0, 4],
    ] {
        let (statuses, shuffled_sent, _) = play(&SUCCESS, &order, true).await;
        assert_eq!(statuses, ordered, "{order:?}");
        assert_eq!(shuffled_sent.len(), 1, "{order:?}");
        let Event::ExtractionCompleted(again) = Event::parse(&shuffled_sent[0]).expect("parses")
        else {
            panic!("not ExtractionCompleted")
        };
        assert_eq!(results(&again), results(&done), "{order:?}");
    }
}

#[tokio::test]
async fn moto_a_cluster_that_ends_with_errors_fails_the_run_with_the_reason_in_the_alert() {
    let names = [
        "emr-cluster-state-change-running",
        "emr-step-status-change-running",
        "emr-cluster-state-change-terminated-with-errors",
        "emr-step-status-change-failed",
    ];
    let (statuses, sent, s) = play(&names, &[0, 1, 2, 3, 2, 1], false).await;
    assert_eq!(statuses, [JobStatus::EmrFailed, JobStatus::EmrFailed]);
    assert!(sent.is_empty(), "{sent:?}");
    let alerts = drain(&s.ctx.queues, &s.alerts_queue).await;
    assert_eq!(alerts.len(), 1, "one alert for one failure: {alerts:?}");
    let alert: serde_json::Value = serde_json::from_str(&alerts[0]).expect("json");
    assert_eq!(alert["detail"]["cluster_id"], s.cluster.as_str());
    assert_eq!(alert["detail"]["step_id"], s.step.as_str());
    assert_eq!(
        alert["detail"]["reason"],
        "STEP_FAILURE: Shut down as step failed"
    );
    let bucket = s.output.bucket();
    assert_eq!(
        alert["detail"]["logs"],
        format!("s3://{bucket}/logs/{}/steps/{}/", s.cluster, s.step)
    );
    assert!(
        alert["detail"]["resolve"]
            .as_str()
            .expect("resolve")
            .contains(&format!(
                "intradayctl ack {} --collection db.core.claimant",
                s.run
            ))
    );

    // Shuffled, the same end.
    for order in [vec![3, 2, 1, 0], vec![2, 0, 3, 1, 2]] {
        let (other, _, _) = play(&names, &order, false).await;
        assert_eq!(other, statuses, "{order:?}");
    }
}

#[tokio::test]
async fn moto_the_sweep_recovers_a_lost_step_completed_event() {
    let s = setup(JobStatus::EmrProcessing).await;
    write_manifest(&s).await;
    // No event arrives. The sweep asks EMR, finds the manifest and hands the run on.
    let report = sweep(&s.ctx, TRIGGER + 3_600_000).await.expect("sweep");
    assert!(report.reconciled >= 1, "{report:?}");
    let sent = drain(&s.ctx.queues, &s.ctx.tables_queue_url).await;
    assert_eq!(sent.len(), 1);
    assert!(
        matches!(Event::parse(&sent[0]), Ok(Event::ExtractionCompleted(ref d)) if d.correlation_id == s.run)
    );

    // A cluster that ended without a word and without a manifest fails its run.
    let lost = setup(JobStatus::EmrProcessing).await;
    lost.ctx
        .emr
        .terminate(&lost.cluster)
        .await
        .expect("terminate");
    sweep(&lost.ctx, TRIGGER + 3_600_000).await.expect("sweep");
    assert_eq!(
        statuses(&lost).await,
        [JobStatus::EmrFailed, JobStatus::EmrFailed]
    );
}

#[tokio::test]
async fn moto_foreign_clusters_are_ignored_and_bad_input_is_refused() {
    let s = setup(JobStatus::EmrLaunched).await;
    let mut foreign = sample("emr-step-status-change-completed", &s);
    foreign.body = foreign.body.replace(&s.cluster, "j-NOTOURS12345");
    handle(foreign, &s.ctx).await.expect("ignored");
    assert_eq!(
        statuses(&s).await,
        [JobStatus::EmrLaunched, JobStatus::EmrLaunched]
    );

    let err = handle(
        Message {
            id: "m".into(),
            body: "[]".into(),
            receive_count: 1,
            sent_ms: None,
        },
        &s.ctx,
    )
    .await
    .expect_err("bad");
    assert_eq!(
        err,
        HandlerError::Permanent("message body is a JSON array, not an object".into())
    );

    // A step that completed without a manifest fails the run rather than publish nothing.
    handle(sample("emr-step-status-change-completed", &s), &s.ctx)
        .await
        .expect("handled");
    assert_eq!(
        statuses(&s).await,
        [JobStatus::EmrFailed, JobStatus::EmrFailed]
    );
    let alerts = drain(&s.ctx.queues, &s.alerts_queue).await;
    assert!(alerts[0].contains("wrote no manifest"), "{alerts:?}");
}

/// The step's COMPLETED event, its handling interrupted after any of its AWS calls (the
/// network stops answering and the delivery is dropped, as a Lambda killed mid-call is), is
/// finished by its redelivery: the items EMR_PROCESSING and the table builder told, with the
/// same results as an uninterrupted delivery (perhaps twice: it registers once whatever
/// arrives).
#[tokio::test]
async fn moto_a_step_completion_interrupted_after_any_call_is_finished_by_its_redelivery() {
    let (proxy, through) = kit::faults::in_front_of_moto().await;
    let completed = "emr-step-status-change-completed";
    let proxied = |mut s: Setup| {
        s.ctx.store = JobStore::new(through.dynamodb(), s.ctx.store.table().to_owned());
        s.ctx.emr = Emr::new(through.emr());
        s.ctx.objects = Objects::new(through.s3());
        s.ctx.queues = Queues::new(through.sqs());
        s
    };
    let told = |sent: Vec<String>, k: u32| -> Vec<(String, u64, Option<u64>)> {
        assert!(
            !sent.is_empty(),
            "after call {k}: the table builder was not told"
        );
        let all: Vec<_> = sent
            .iter()
            .map(|body| match Event::parse(body).expect("parses") {
                Event::ExtractionCompleted(done) => results(&done),
                other => panic!("{other:?}"),
            })
            .collect();
        assert!(all.iter().all(|r| r == &all[0]), "after call {k}: {all:?}");
        all[0].clone()
    };

    let s = proxied(setup(JobStatus::EmrProcessing).await);
    write_manifest(&s).await;
    let (whole, calls) = proxy
        .count_calls(handle(sample(completed, &s), &s.ctx))
        .await;
    whole.expect("whole");
    let want = told(drain(&s.ctx.queues, &s.ctx.tables_queue_url).await, calls);
    let want_statuses = statuses(&s).await;
    assert!(calls >= 4, "{calls} calls");

    for k in 0..calls {
        let s = proxied(setup(JobStatus::EmrProcessing).await);
        write_manifest(&s).await;
        let first = proxy
            .interrupt_after(k, handle(sample(completed, &s), &s.ctx))
            .await;
        assert!(
            first.is_none(),
            "the delivery needed no more than {k} calls"
        );
        handle(sample(completed, &s), &s.ctx)
            .await
            .unwrap_or_else(|e| panic!("redelivery after call {k}: {e}"));
        let sent = drain(&s.ctx.queues, &s.ctx.tables_queue_url).await;
        assert_eq!(told(sent, k), want, "after call {k}");
        assert_eq!(statuses(&s).await, want_statuses, "after call {k}");
    }
}
