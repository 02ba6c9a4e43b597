//! The scheduler against moto server: one run per collection at a time, waiting without
//! sleeping, deferring with alerts that say what to do, and windows from the watermarks.

use std::time::Duration;

use base64::Engine;
use intraday_aws::jobs::now_ms;
use intraday_aws::{Alerts, AttributeValue, JobStore, Queues, Secrets, TxOp};
use intraday_core::{
    Collection, CorrelationId, DatabaseName, JobRecord, JobStatus, OutputFormat, S3Uri, WaitPolicy,
    Window,
};
use intraday_events::{
    Backfill, LaunchRequested, MESSAGE_VERSION, Message as Event, RunRequested, Trigger,
};
use intraday_runtime::{HandlerError, Message, MetricsSink, Poller, Telemetry};
use intraday_scheduler::{Ctx, handle, handler, schedule};
use intraday_testkit as kit;
use intraday_testkit::drain;

const SECRET: &str = "{'collections_all': {'db.core.claimant': {'db': 'core', 'table': 'claimant', 'pii': 'true'}, 'db.core.contract': {'db': 'core', 'table': 'contract', 'pii': 'false'}}}";

struct Setup {
    aws: intraday_aws::Aws,
    ctx: Ctx,
    alerts_queue: String,
    scheduler_dlq: String,
}

async fn setup_with(secret: &str, policy: WaitPolicy) -> Setup {
    let aws = kit::aws().await;
    let table = kit::job_table(&aws).await;
    let secrets = Secrets::new(aws.secrets());
    let secret_name = format!("/intraday/{}", kit::unique("collections"));
    secrets.put(&secret_name, secret).await.expect("secret");
    let (scheduler_queue, scheduler_dlq) = kit::queue_with_dlq(&aws, 3).await;
    let (launcher_queue, _) = kit::queue_with_dlq(&aws, 3).await;
    let (topic, alerts_queue) = kit::topic_with_queue(&aws).await;
    let ctx = Ctx {
        store: JobStore::new(aws.dynamodb(), table),
        secrets,
        queues: Queues::new(aws.sqs()),
        alerts: Alerts::new(aws.sns(), topic),
        collections_secret: secret_name,
        scheduler_queue_url: scheduler_queue,
        launcher_queue_url: launcher_queue,
        output: S3Uri::parse("s3://intraday-output/data/").expect("uri"),
        database: DatabaseName::default(),
        backfill_database: DatabaseName::new("intraday_backfill").expect("db"),
        format: OutputFormat::Parquet,
        policy,
        collections: Default::default(),
    };
    Setup {
        aws,
        ctx,
        alerts_queue,
        scheduler_dlq,
    }
}

async fn setup() -> Setup {
    setup_with(
        &base64::engine::general_purpose::STANDARD.encode(SECRET),
        WaitPolicy::default(),
    )
    .await
}

fn c(name: &str) -> Collection {
    Collection::parse(name).expect("valid collection")
}

fn request(run: &str, collections: Option<Vec<Collection>>, trigger_ms: u64) -> RunRequested {
    RunRequested {
        version: MESSAGE_VERSION,
        correlation_id: CorrelationId::new(run).expect("id"),
        trigger: Trigger::Manual,
        trigger_time_ms: trigger_ms,
        collections,
        backfill: None,
        attempt: 1,
        first_requested_ms: trigger_ms,
    }
}

fn message(body: String) -> Message {
    Message {
        id: "m-1".into(),
        body,
        receive_count: 1,
        sent_ms: None,
    }
}

fn schedule_event(time_ms: u64) -> String {
    let time = time::OffsetDateTime::from_unix_timestamp((time_ms / 1000) as i64).expect("time");
    let time = time
        .format(&time::format_description::well_known::Rfc3339)
        .expect("format");
    serde_json::json!({
        "version": "0", "id": kit::unique("evt"), "detail-type": "Scheduled Event",
        "source": "aws.events", "account": "123456789012", "time": time, "region": "eu-west-2",
        "resources": ["arn:aws:events:eu-west-2:123456789012:rule/intraday-schedule-sun-fri"], "detail": {}
    })
    .to_string()
}

async fn launches(s: &Setup) -> Vec<LaunchRequested> {
    drain(&s.ctx.queues, &s.ctx.launcher_queue_url)
        .await
        .into_iter()
        .map(|b| match Event::parse(&b).expect("launch parses") {
            Event::LaunchRequested(l) => l,
            other => panic!("{other:?}"),
        })
        .collect()
}

async fn alerts(s: &Setup) -> Vec<serde_json::Value> {
    drain(&s.ctx.queues, &s.alerts_queue)
        .await
        .into_iter()
        .map(|b| serde_json::from_str(&b).expect("alert JSON"))
        .collect()
}

async fn statuses(s: &Setup, run: &CorrelationId) -> Vec<(String, JobStatus)> {
    let mut all: Vec<_> = s
        .ctx
        .store
        .run(run)
        .await
        .expect("run")
        .into_iter()
        .map(|j| (j.collection.name(), j.status))
        .collect();
    all.sort_by(|a, b| a.0.cmp(&b.0));
    all
}

#[tokio::test]
async fn moto_two_schedule_events_together_launch_one_run_the_other_waits_then_is_deferred() {
    let policy = WaitPolicy {
        max_wait: Duration::from_secs(3),
        step: Duration::from_secs(1),
    };
    let s = setup_with(
        &base64::engine::general_purpose::STANDARD.encode(SECRET),
        policy,
    )
    .await;
    let now = now_ms() / 1000 * 1000;
    let (a, b) = (now - 60_000, now);
    let run_a = intraday_scheduler::from_schedule(a, now)
        .expect("a")
        .correlation_id;
    let run_b = intraday_scheduler::from_schedule(b, now)
        .expect("b")
        .correlation_id;

    let (ra, rb) = tokio::join!(
        handle(message(schedule_event(a)), &s.ctx),
        handle(message(schedule_event(b)), &s.ctx)
    );
    // At most one lost the race for the locks; its message comes back and is handled again.
    for (result, time) in [(ra, a), (rb, b)] {
        if let Err(e) = result {
            assert!(
                matches!(&e, HandlerError::Retryable(m) if m.contains("took a lock")),
                "{e:?}"
            );
            handle(message(schedule_event(time)), &s.ctx)
                .await
                .expect("redelivery");
        }
    }
    let launched = launches(&s).await;
    assert_eq!(launched.len(), 1, "{launched:?}");
    let (winner, loser) = if launched[0].correlation_id == run_a {
        (&run_a, &run_b)
    } else {
        (&run_b, &run_a)
    };
    assert_eq!(
        statuses(&s, loser).await,
        [
            ("db.core.claimant".into(), JobStatus::Waiting),
            ("db.core.contract".into(), JobStatus::Waiting)
        ]
    );

    // The waiting run re-queued itself with a delay; follow it until it gives up.
    let mut attempts = Vec::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while statuses(&s, loser)
        .await
        .iter()
        .any(|(_, st)| *st == JobStatus::Waiting)
    {
        assert!(
            std::time::Instant::now() < deadline,
            "the waiting run never settled"
        );
        for m in s
            .ctx
            .queues
            .receive(&s.ctx.scheduler_queue_url, 10, Duration::from_secs(2), None)
            .await
            .expect("receive")
        {
            let Event::RunRequested(r) = Event::parse(&m.body).expect("parses") else {
                panic!("not a RunRequested")
            };
            assert_eq!(&r.correlation_id, loser);
            attempts.push(r.attempt);
            handle(message(m.body.clone()), &s.ctx)
                .await
                .expect("attempt");
            s.ctx
                .queues
                .delete(&s.ctx.scheduler_queue_url, &m.receipt_handle)
                .await
                .expect("delete");
        }
    }
    assert!(
        attempts.len() >= 2 && attempts.windows(2).all(|w| w[1] == w[0] + 1),
        "{attempts:?}"
    );
    assert_eq!(
        statuses(&s, loser).await,
        [
            ("db.core.claimant".into(), JobStatus::Deferred),
            ("db.core.contract".into(), JobStatus::Deferred)
        ]
    );
    assert!(launches(&s).await.is_empty(), "the deferred run launched");
    let alerts = alerts(&s).await;
    assert_eq!(alerts.len(), 1, "{alerts:?}");
    assert_eq!(alerts[0]["correlation_id"], loser.as_str());
    let cause = alerts[0]["detail"]["cause"].as_str().expect("cause");
    assert!(
        cause.contains(&format!("was still held by run `{winner}`")),
        "{cause}"
    );
}

#[tokio::test]
async fn moto_a_failed_run_defers_the_next_until_acknowledged_then_it_launches_from_the_old_watermark()
 {
    let s = setup().await;
    let claimant = c("db.core.claimant");
    let old = CorrelationId::new("r-old").expect("id");
    let mut done = JobRecord::new(old, claimant.clone(), JobStatus::EmrCompleted, 1_000);
    done.processed_data_end = Some(5_000);
    s.ctx.store.create(&done).await.expect("history");
    let failed = CorrelationId::new("r-failed").expect("id");
    let mut broken = JobRecord::new(
        failed.clone(),
        claimant.clone(),
        JobStatus::EmrFailed,
        2_000,
    );
    broken.processed_data_end = Some(9_000);
    broken.status_changed_at = Some(1_710_149_460_000);
    s.ctx
        .store
        .transact(
            vec![
                TxOp::create_job(&broken),
                TxOp::take_lock(&claimant, &failed, None),
            ],
            None,
        )
        .await
        .expect("failed run");

    let trigger = now_ms();
    let next = request("r-next", Some(vec![claimant.clone()]), trigger);
    let outcome = schedule(&next, &s.ctx).await.expect("schedule");
    assert_eq!(outcome.deferred, vec![claimant.clone()]);
    assert!(launches(&s).await.is_empty());
    let alerts = alerts(&s).await;
    assert_eq!(alerts.len(), 1);
    assert_eq!(alerts[0]["severity"], "Critical");
    assert_eq!(
        alerts[0]["detail"]["cause"],
        "collection `db.core.claimant` has an unacknowledged failed run `r-failed` (EMR_FAILED at 2024-03-11T09:31:00Z); \
         acknowledge it with `intradayctl ack r-failed --collection db.core.claimant --reason '<why>'`"
    );

    // Acknowledging something that did not fail is refused; the failed run is acknowledged.
    let err = s
        .ctx
        .store
        .acknowledge(
            &CorrelationId::new("r-old").expect("id"),
            &claimant,
            "ops",
            None,
            "x",
        )
        .await
        .expect_err("not failed");
    assert_eq!(
        err.to_string(),
        "run `r-old` of `db.core.claimant` is EMR_COMPLETED, not failed: only EMR_FAILED and LAMBDA_FAILED runs can be acknowledged"
    );
    assert_eq!(
        s.ctx
            .store
            .acknowledge(&failed, &claimant, "ops@example", None, "disk full, fixed")
            .await
            .expect("ack"),
        JobStatus::AcknowledgedEmrFailed
    );
    assert_eq!(
        s.ctx.store.lock_holder(&claimant).await.expect("lock"),
        None
    );

    let after = request("r-after", Some(vec![claimant.clone()]), trigger);
    schedule(&after, &s.ctx).await.expect("schedule");
    let launched = launches(&s).await;
    assert_eq!(launched.len(), 1);
    assert_eq!(
        launched[0].collections[0].window,
        Window::new(5_001, trigger).expect("window")
    );
    assert!(launched[0].collections[0].pii);
    assert_eq!(
        s.ctx
            .store
            .lock_holder(&claimant)
            .await
            .expect("lock")
            .map(|(h, _)| h.to_string()),
        Some("r-after".into())
    );

    // The same request again (a redelivery) launches nothing more.
    schedule(&after, &s.ctx).await.expect("again");
    let again = launches(&s).await;
    assert!(again.len() <= 1, "{again:?}");
}

#[tokio::test]
async fn moto_windows_start_after_the_newest_completed_run_and_end_at_the_trigger_time() {
    let s = setup().await;
    let (claimant, contract) = (c("db.core.claimant"), c("db.core.contract"));
    let history = [
        ("h1", JobStatus::EmrCompleted, 1_000, Some(100)),
        ("h2", JobStatus::AcknowledgedEmrFailed, 2_000, Some(900)),
        ("h3", JobStatus::EmrCompleted, 3_000, Some(300)),
        ("h4", JobStatus::Deferred, 4_000, None),
        ("h5", JobStatus::EmrCompleted, 5_000, None),
    ];
    for (run, status, triggered, end) in history {
        let mut job = JobRecord::new(
            CorrelationId::new(run).expect("id"),
            claimant.clone(),
            status,
            triggered,
        );
        job.processed_data_end = end;
        s.ctx.store.create(&job).await.expect("history");
    }
    let trigger = 1_710_153_000_000;
    schedule(&request("r-1", None, trigger), &s.ctx)
        .await
        .expect("schedule");
    let launched = launches(&s).await;
    assert_eq!(launched.len(), 1);
    let windows: Vec<(String, Window)> = launched[0]
        .collections
        .iter()
        .map(|cw| (cw.collection.name(), cw.window))
        .collect();
    assert_eq!(
        windows,
        [
            (claimant.name(), Window::new(301, trigger).expect("window")),
            (contract.name(), Window::new(0, trigger).expect("window")),
        ]
    );
    assert_eq!(launched[0].output.to_string(), "s3://intraday-output/data/");
    for job in s
        .ctx
        .store
        .run(&launched[0].correlation_id)
        .await
        .expect("items")
    {
        assert_eq!(job.status, JobStatus::LambdaTriggered);
        assert_eq!(job.triggered_time, trigger);
        assert_eq!(job.window_end, Some(trigger));
        assert_eq!(job.output.as_deref(), Some("s3://intraday-output/data/"));
        assert_eq!(job.database.as_deref(), Some("intraday"));
        assert_eq!(job.format.as_deref(), Some("parquet"));
    }
}

#[tokio::test]
async fn moto_a_backfill_takes_the_locks_writes_elsewhere_and_never_moves_the_watermark() {
    let s = setup().await;
    let claimant = c("db.core.claimant");
    let mut done = JobRecord::new(
        CorrelationId::new("r-old").expect("id"),
        claimant.clone(),
        JobStatus::EmrCompleted,
        1_000,
    );
    done.processed_data_end = Some(5_000);
    s.ctx.store.create(&done).await.expect("history");

    let mut backfill = request("bf-1", Some(vec![claimant.clone()]), now_ms());
    backfill.backfill = Some(Backfill {
        window: Window::new(10, 20_000).expect("window"),
        database: DatabaseName::new("intraday_backfill").expect("db"),
        output_prefix: S3Uri::parse("s3://intraday-output/backfill").expect("uri"),
    });
    schedule(&backfill, &s.ctx).await.expect("backfill");
    let launched = launches(&s).await;
    assert_eq!(launched.len(), 1);
    assert!(launched[0].backfill);
    assert_eq!(launched[0].database.as_str(), "intraday_backfill");
    assert_eq!(
        launched[0].output.to_string(),
        "s3://intraday-output/backfill/"
    );
    assert_eq!(
        launched[0].collections[0].window,
        Window::new(10, 20_000).expect("window")
    );

    // It holds the lock like any run, so a scheduled run of the collection waits for it.
    let scheduled = request("r-sched", Some(vec![claimant.clone()]), now_ms());
    let outcome = schedule(&scheduled, &s.ctx).await.expect("schedule");
    assert_eq!(outcome.waiting, vec![claimant.clone()]);

    // Even completed with a ProcessedDataEnd, a backfill leaves the watermark alone.
    let run = CorrelationId::new("bf-1").expect("id");
    let items = s.ctx.store.run(&run).await.expect("items");
    assert!(items.iter().all(|j| j.backfill));
    s.ctx
        .store
        .transition(&run, &claimant, JobStatus::EmrLaunched, &[])
        .await
        .expect("launched");
    s.ctx
        .store
        .transition(
            &run,
            &claimant,
            JobStatus::EmrCompleted,
            &[("ProcessedDataEnd", intraday_aws::Value::N(19_999))],
        )
        .await
        .expect("completed");
    assert_eq!(
        s.ctx
            .store
            .next_window_start(&claimant)
            .await
            .expect("watermark"),
        5_001
    );
}

/// A backfill into another database or outside `s3://<output bucket>/backfill/` is refused
/// before anything is written: no items, no locks, no launch; the message fails permanently
/// (to its dead-letter queue) naming what is wrong.
#[tokio::test]
async fn moto_a_backfill_elsewhere_is_refused_and_nothing_is_written() {
    let s = setup().await;
    let claimant = c("db.core.claimant");
    for (n, database, prefix, want) in [
        (
            1,
            "intraday",
            "s3://intraday-output/backfill/",
            "backfill database `intraday` is not this stack's backfill database `intraday_backfill`",
        ),
        (
            2,
            "intraday_backfill",
            "s3://somebody-elses-bucket/backfill/",
            "backfill output `s3://somebody-elses-bucket/backfill/` is not under s3://intraday-output/backfill/",
        ),
    ] {
        let mut backfill = request(
            &format!("bf-bad-{n}"),
            Some(vec![claimant.clone()]),
            now_ms(),
        );
        backfill.backfill = Some(Backfill {
            window: Window::new(10, 20_000).expect("window"),
            database: DatabaseName::new(database).expect("db"),
            output_prefix: S3Uri::parse(prefix).expect("uri"),
        });
        let err = handle(
            message(Event::RunRequested(backfill.clone()).to_body()),
            &s.ctx,
        )
        .await
        .expect_err("refused");
        assert!(
            matches!(&err, HandlerError::Permanent(m) if m.starts_with(want)),
            "{err:?}"
        );
        assert!(
            s.ctx
                .store
                .run(&backfill.correlation_id)
                .await
                .expect("items")
                .is_empty()
        );
        assert_eq!(
            s.ctx.store.lock_holder(&claimant).await.expect("lock"),
            None
        );
    }
    assert!(launches(&s).await.is_empty());
}

#[tokio::test]
async fn moto_bad_input_fails_naming_the_problem_and_the_message_stays() {
    let broken = base64::engine::general_purpose::STANDARD
        .encode("{'collections_all': {'db.core.x': {'db': 'core'}}}");
    let s = setup_with(&broken, WaitPolicy::default()).await;
    let err = schedule(&request("r-1", None, now_ms()), &s.ctx)
        .await
        .expect_err("broken secret");
    assert!(
        err.to_string().ends_with(
            "collections secret entry `db.core.x` is not valid: field `table` is missing"
        ),
        "{err}"
    );

    let s = setup().await;
    let cases = [
        (
            Event::RunRequested(request("r-2", Some(vec![c("db.core.nope")]), now_ms())).to_body(),
            "invalid collection `db.core.nope`: the collections secret does not list it (it lists db.core.claimant, db.core.contract)",
        ),
        (
            "{\"type\": \"RunRequested\", \"version\": 1".to_owned(),
            "message body is not JSON",
        ),
        (
            include_str!("../../../events/samples/launch-requested.json").to_owned(),
            "the scheduler handles RunRequested and scheduled events, not LaunchRequested",
        ),
    ];
    for (body, want) in cases {
        let err = handle(message(body), &s.ctx).await.expect_err(want);
        assert!(
            matches!(&err, HandlerError::Permanent(m) if m.starts_with(want)),
            "{err:?}"
        );
    }

    // Driven by the poller, a refused message is not deleted: it comes back, then reaches
    // the dead-letter queue whole.
    let body =
        Event::RunRequested(request("r-3", Some(vec![c("db.core.nope")]), now_ms())).to_body();
    s.ctx
        .queues
        .send(&s.ctx.scheduler_queue_url, &body, None)
        .await
        .expect("send");
    let mut poller = Poller::new(s.ctx.queues.clone(), &s.ctx.scheduler_queue_url);
    poller.wait = Duration::from_secs(1);
    let telemetry = Telemetry::new("scheduler", MetricsSink::Discard);
    for _ in 0..6 {
        poller
            .poll_once(&s.ctx, &handler, &telemetry)
            .await
            .expect("poll");
    }
    let dead = drain(&s.ctx.queues, &s.scheduler_dlq).await;
    assert_eq!(dead, [body]);
}

async fn original_item(s: &Setup, run: &str, collection: &str, attrs: &[(&str, AttributeValue)]) {
    kit::original_job_item(&s.aws, s.ctx.store.table(), run, collection, attrs).await;
}

fn n(v: u64) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

fn st(v: &str) -> AttributeValue {
    AttributeValue::S(v.to_owned())
}

#[tokio::test]
async fn moto_the_first_run_after_a_switch_continues_from_the_originals_job_table() {
    // The original's secret, with one entry it would have tolerated and we cannot use.
    let secret = "{'collections_all': {'db.core.claimant': {'db': 'core', 'table': 'claimant', 'pii': 'true'}, \
        'db.core.contract': {'db': 'core', 'table': 'contract', 'pii': 'false'}, \
        'db.core.statement': {'db': 'core', 'table': 'statement'}, \
        'db.core.broken': {'db': 'core'}}}";
    let s = setup_with(
        &base64::engine::general_purpose::STANDARD.encode(secret),
        WaitPolicy::default(),
    )
    .await;
    let (first, second) = (
        "1b4e28ba-2fa1-41d2-883f-0016d3cca427",
        "6fa459ea-ee8a-3ca4-894e-db77e160355e",
    );
    // First run: both collections completed, as its EMR step writes them.
    for (collection, end) in [
        ("core:claimant", 1_700_000_100_000),
        ("core:contract", 1_700_000_050_000),
    ] {
        original_item(
            &s,
            first,
            collection,
            &[
                ("JobStatus", st("LAMBDA_TRIGGERED")),
                ("TriggeredTime", n(1_700_000_000_000)),
            ],
        )
        .await;
        original_item(
            &s,
            first,
            collection,
            &[
                ("ProcessedDataStart", n(1)),
                ("JobStatus", st("EMR_PROCESSING")),
                ("EMRReadyTime", n(1_700_000_900_000)),
                ("EMRClusterId", st("j-3OLDCLUSTER1")),
                ("TriggeredTime", n(1_700_000_000_000)),
            ],
        )
        .await;
        original_item(
            &s,
            first,
            collection,
            &[
                ("ProcessedDataEnd", n(end)),
                ("JobStatus", st("EMR_COMPLETED")),
            ],
        )
        .await;
    }
    // Second run: claimant found nothing (ProcessedDataEnd written as NULL), contract failed,
    // statement holds a status this version does not know.
    original_item(
        &s,
        second,
        "core:claimant",
        &[
            ("JobStatus", st("EMR_COMPLETED")),
            ("TriggeredTime", n(1_700_003_600_000)),
            ("ProcessedDataStart", n(1_700_000_100_001)),
            ("ProcessedDataEnd", AttributeValue::Null(true)),
        ],
    )
    .await;
    original_item(
        &s,
        second,
        "core:contract",
        &[
            ("JobStatus", st("EMR_FAILED")),
            ("TriggeredTime", n(1_700_003_600_000)),
            ("ProcessedDataStart", n(1_700_000_050_001)),
        ],
    )
    .await;
    original_item(
        &s,
        second,
        "core:statement",
        &[
            ("JobStatus", st("EMR_RETRYING")),
            ("TriggeredTime", n(1_700_003_600_000)),
        ],
    )
    .await;

    let trigger = now_ms();
    let outcome = schedule(&request("r-switch", None, trigger), &s.ctx)
        .await
        .expect("the first run after the switch");
    let claimant = c("core:claimant");
    let (contract, statement) = (c("db.core.contract"), c("db.core.statement"));
    // Claimant continues from the original's watermark + 1, past the empty run.
    let launched = launches(&s).await;
    assert_eq!(launched.len(), 1, "{launched:?}");
    let windows: Vec<_> = launched[0]
        .collections
        .iter()
        .map(|w| (w.collection.clone(), w.window))
        .collect();
    assert_eq!(
        windows,
        vec![(
            claimant.clone(),
            Window::new(1_700_000_100_001, trigger).expect("window")
        )]
    );
    let mut deferred = outcome.deferred.clone();
    deferred.sort();
    assert_eq!(deferred, vec![contract.clone(), statement.clone()]);

    // Our items and locks are keyed as the original keys them.
    let raw = s
        .aws
        .dynamodb()
        .get_item()
        .table_name(s.ctx.store.table())
        .key("CorrelationId", st("r-switch"))
        .key("Collection", st("core:claimant"))
        .send()
        .await
        .expect("get");
    assert_eq!(
        raw.item().and_then(|i| i.get("JobStatus")),
        Some(&st("LAMBDA_TRIGGERED"))
    );
    let lock = s
        .aws
        .dynamodb()
        .get_item()
        .table_name(s.ctx.store.table())
        .key("CorrelationId", st("#lock"))
        .key("Collection", st("core:claimant"))
        .send()
        .await
        .expect("get lock");
    assert!(lock.item().is_some(), "the lock is keyed core:claimant");

    // One alert names the secret entry we skipped, one the deferrals and what to do.
    let alerts = alerts(&s).await;
    assert_eq!(alerts.len(), 2, "{alerts:#?}");
    assert_eq!(
        alerts[0]["detail"]["cause"],
        "collections secret entry `db.core.broken` is not valid: field `table` is missing"
    );
    let cause = alerts[1]["detail"]["cause"].as_str().expect("cause");
    assert!(
        cause.contains(&format!(
            "collection `db.core.contract` has an unacknowledged failed run `{second}` (EMR_FAILED at 2023-11-14T23:13:20Z); \
             acknowledge it with `intradayctl ack {second} --collection db.core.contract --reason '<why>'`"
        )),
        "{cause}"
    );
    assert!(
        cause.contains(&format!(
            "collection `db.core.statement` has an item of run `{second}` that cannot be read (unknown job status `EMR_RETRYING`"
        )),
        "{cause}"
    );

    // The operator's hand-made acknowledgement, as the original's runbook says, releases it.
    original_item(&s, second, "core:contract", &[("JobStatus", st("_FAILED"))]).await;
    schedule(
        &request("r-after-ack", Some(vec![contract.clone()]), trigger),
        &s.ctx,
    )
    .await
    .expect("after the acknowledgement");
    let launched = launches(&s).await;
    assert_eq!(launched.len(), 1, "{launched:?}");
    assert_eq!(launched[0].collections[0].collection, contract);
    assert_eq!(
        launched[0].collections[0].window,
        Window::new(1_700_000_050_001, trigger).expect("window")
    );
    assert!(!launched[0].collections[0].pii);
}

/// A scheduling interrupted after any of its AWS calls (the network stops answering and the
/// delivery is dropped, as a Lambda killed mid-call is) is finished by its redelivery: the
/// run's items hold the same windows as an uninterrupted run's, its locks are the run's, and
/// the launcher gets the launch (perhaps twice: it launches once per run whatever arrives).
#[tokio::test]
async fn moto_a_schedule_interrupted_after_any_call_is_finished_by_its_redelivery() {
    let (proxy, through) = kit::faults::in_front_of_moto().await;
    let proxied = |mut s: Setup| {
        s.ctx.store = JobStore::new(through.dynamodb(), s.ctx.store.table().to_owned());
        s.ctx.secrets = Secrets::new(through.secrets());
        s.ctx.queues = Queues::new(through.sqs());
        s
    };
    let trigger = now_ms();
    let want: Vec<(String, Window)> = ["db.core.claimant", "db.core.contract"]
        .iter()
        .map(|n| (c(n).name(), Window::new(0, trigger).expect("window")))
        .collect();
    let check = |launched: Vec<LaunchRequested>, k: u32| {
        assert!(!launched.is_empty(), "after call {k}: no launch");
        for l in &launched {
            let mut windows: Vec<(String, Window)> = l
                .collections
                .iter()
                .map(|cw| (cw.collection.name(), cw.window))
                .collect();
            windows.sort_by(|a, b| a.0.cmp(&b.0));
            assert_eq!(windows, want, "after call {k}");
            assert_eq!(l, &launched[0], "after call {k}: the same launch");
        }
    };

    let s = proxied(setup().await);
    let (whole, calls) = proxy
        .count_calls(schedule(&request("r-whole", None, trigger), &s.ctx))
        .await;
    whole.expect("schedule");
    check(launches(&s).await, calls);
    assert!(calls >= 4, "{calls} calls");

    for k in 0..calls {
        let s = proxied(setup().await);
        let run = request(&format!("r-{k}"), None, trigger);
        let first = proxy.interrupt_after(k, schedule(&run, &s.ctx)).await;
        assert!(first.is_none(), "scheduling needed no more than {k} calls");
        schedule(&run, &s.ctx)
            .await
            .unwrap_or_else(|e| panic!("redelivery after call {k}: {e}"));
        check(launches(&s).await, k);
        for (collection, status) in statuses(&s, &run.correlation_id).await {
            assert_eq!(
                status,
                JobStatus::LambdaTriggered,
                "after call {k}: {collection}"
            );
            assert_eq!(
                s.ctx
                    .store
                    .lock_holder(&c(&collection))
                    .await
                    .expect("lock")
                    .map(|(holder, _)| holder),
                Some(run.correlation_id.clone()),
                "after call {k}"
            );
        }
    }
}
