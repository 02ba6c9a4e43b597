//! The launcher against moto server: exactly one cluster per run, however often and however
//! concurrently its LaunchRequested arrives.

use std::time::Duration;

use intraday_aws::{Alerts, AwsError, Emr, JobStore, Queues};
use intraday_core::{CorrelationId, JobRecord, JobStatus};
use intraday_events::{LaunchRequested, Message as Event};
use intraday_launcher::cluster::{ClusterTemplate, DEFAULT_TEMPLATE};
use intraday_launcher::{Ctx, Launched, handle, launch_once};
use intraday_runtime::{HandlerError, Message};
use intraday_testkit as kit;

struct Setup {
    ctx: Ctx,
    launch: LaunchRequested,
    alerts_queue: String,
    queues: Queues,
}

async fn setup() -> Setup {
    let aws = kit::aws().await;
    let table = kit::job_table(&aws).await;
    let (topic, alerts_queue) = kit::topic_with_queue(&aws).await;
    let store = JobStore::new(aws.dynamodb(), table);
    let mut launch = match Event::parse(include_str!(
        "../../../events/samples/launch-requested.json"
    ))
    .expect("sample")
    {
        Event::LaunchRequested(l) => l,
        other => panic!("{other:?}"),
    };
    launch.correlation_id = CorrelationId::new(kit::unique("run")).expect("id");
    // Now, as a real run's: the launcher looks for an earlier attempt's cluster among those
    // created since the run was triggered.
    launch.trigger_time_ms = intraday_aws::jobs::now_ms();
    for c in &launch.collections {
        let job = JobRecord::new(
            launch.correlation_id.clone(),
            c.collection.clone(),
            JobStatus::LambdaTriggered,
            launch.trigger_time_ms,
        );
        assert!(store.create(&job).await.expect("create item"));
    }
    let ctx = Ctx {
        store,
        emr: Emr::new(aws.emr()),
        alerts: Alerts::new(aws.sns(), topic),
        template: ClusterTemplate::parse(DEFAULT_TEMPLATE, "cluster.json").expect("template"),
        claim_timeout: Duration::from_secs(120),
    };
    Setup {
        ctx,
        launch,
        alerts_queue,
        queues: Queues::new(aws.sqs()),
    }
}

async fn clusters_tagged(emr: &Emr, run: &CorrelationId) -> Vec<String> {
    kit::clusters_tagged(emr, run.as_str()).await
}

/// Exactly one cluster carries the run's tag, and every item of the run is EMR_LAUNCHED on
/// it; returns its id.
async fn one_cluster_recorded(s: &Setup) -> String {
    let clusters = clusters_tagged(&s.ctx.emr, &s.launch.correlation_id).await;
    assert_eq!(clusters.len(), 1, "{clusters:?}");
    for job in s
        .ctx
        .store
        .run(&s.launch.correlation_id)
        .await
        .expect("run")
    {
        assert_eq!(job.status, JobStatus::EmrLaunched);
        assert_eq!(job.emr_cluster_id.as_deref(), Some(clusters[0].as_str()));
    }
    clusters[0].clone()
}

fn delivery(launch: &LaunchRequested, n: u32) -> Message {
    Message {
        id: format!("m{n}"),
        body: Event::LaunchRequested(launch.clone()).to_body(),
        receive_count: n,
        sent_ms: None,
    }
}

#[tokio::test]
async fn moto_five_deliveries_including_concurrent_ones_start_exactly_one_cluster() {
    let mut s = setup().await;
    // SQS redelivers after the visibility timeout; a claim outlives a delivery that died.
    // Short here so the redeliveries below come as they would, only sooner.
    s.ctx.claim_timeout = Duration::from_secs(1);
    // Three at once, then two more, as SQS redelivers.
    let (a, b, c) = tokio::join!(
        handle(delivery(&s.launch, 1), &s.ctx),
        handle(delivery(&s.launch, 1), &s.ctx),
        handle(delivery(&s.launch, 1), &s.ctx),
    );
    // At most one wins. In AWS exactly one does; moto server does not isolate concurrent
    // transactions, so there all three may interleave their claims and stand down, and a
    // redelivery launches once the claim is stale. Either way: never two clusters.
    for r in [a, b, c] {
        if let Err(e) = r {
            assert!(
                matches!(&e, HandlerError::Retryable(m) if m.contains("in progress")),
                "{e:?}"
            );
        }
    }
    let mut recorded = false;
    for n in 2..=12 {
        match handle(delivery(&s.launch, n), &s.ctx).await {
            Ok(()) => recorded = true,
            Err(HandlerError::Retryable(m)) if m.contains("in progress") => {}
            Err(e) => panic!("redelivery {n}: {e:?}"),
        }
        if recorded && n >= 3 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(600)).await;
    }
    assert!(recorded, "no delivery settled the launch");
    let cluster = one_cluster_recorded(&s).await;
    let again = launch_once(&s.launch, &s.ctx).await.expect("again");
    assert_eq!(again, Launched::AlreadyRecorded(cluster.clone()));

    // The cluster is what the template promises.
    let info = s.ctx.emr.describe(&cluster).await.expect("describe");
    assert_eq!(info.name, "intraday-incremental");
    assert_eq!(info.tags["ManagedBy"], "intraday");
    let steps = s.ctx.emr.steps(&cluster).await.expect("steps");
    assert_eq!(
        steps.iter().map(|s| s.name.as_str()).collect::<Vec<_>>(),
        ["intraday-extract"]
    );
}

#[tokio::test]
async fn moto_a_cluster_started_by_an_attempt_that_died_is_found_not_launched_again() {
    let mut s = setup().await;
    // An earlier attempt launched, then died before recording: its claim is stale.
    let request = s.ctx.template.request(&s.launch).expect("request");
    let orphan = s.ctx.emr.run(&request).await.expect("orphan cluster");
    s.ctx.claim_timeout = Duration::ZERO;
    let outcome = launch_once(&s.launch, &s.ctx).await.expect("launch");
    assert_eq!(outcome, Launched::Found(orphan.clone()));
    assert_eq!(
        clusters_tagged(&s.ctx.emr, &s.launch.correlation_id).await,
        [orphan]
    );
}

#[tokio::test]
async fn moto_a_refused_launch_fails_the_items_and_alerts_with_aws_reason() {
    let s = setup().await;
    let refusal = AwsError::Service {
        operation: "RunJobFlow",
        code: "ValidationException".into(),
        message: "Instance type m9.huge is not supported".into(),
        retryable: false,
    };
    intraday_launcher::handler::refuse(&s.launch, &refusal, &s.ctx)
        .await
        .expect("refuse");
    for job in s
        .ctx
        .store
        .run(&s.launch.correlation_id)
        .await
        .expect("run")
    {
        assert_eq!(job.status, JobStatus::LambdaFailed);
    }
    let got = s
        .queues
        .receive(&s.alerts_queue, 1, Duration::from_secs(5), None)
        .await
        .expect("alert");
    assert_eq!(got.len(), 1);
    let alert: serde_json::Value = serde_json::from_str(&got[0].body).expect("json");
    assert!(
        alert["detail"]["reason"]
            .as_str()
            .expect("reason")
            .contains("Instance type m9.huge is not supported")
    );
    assert!(
        alert["detail"]["resolve"]
            .as_str()
            .expect("resolve")
            .contains(&format!("intradayctl ack {}", s.launch.correlation_id))
    );
    // A later delivery of the same request launches nothing.
    let outcome = launch_once(&s.launch, &s.ctx).await.expect("again");
    assert_eq!(outcome, Launched::NotLaunchable(JobStatus::LambdaFailed));
    assert!(
        clusters_tagged(&s.ctx.emr, &s.launch.correlation_id)
            .await
            .is_empty()
    );
}

#[tokio::test]
async fn moto_bad_input_is_refused_naming_the_problem() {
    let s = setup().await;
    let cases = [
        ("{oops".to_owned(), "message body is not JSON"),
        (
            r#"{"type":"RunRequested","version":1}"#.to_owned(),
            "RunRequested is not valid at `(top level)`: missing field `correlation_id`",
        ),
        (
            include_str!("../../../events/samples/alert.json").to_owned(),
            "the launcher handles LaunchRequested, not Alert",
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
        .expect_err(want);
        assert!(
            matches!(&err, HandlerError::Permanent(m) if m.starts_with(want)),
            "{err:?}"
        );
    }
    let mut unknown_run = s.launch.clone();
    unknown_run.correlation_id = CorrelationId::new("never-scheduled").expect("id");
    let err = handle(delivery(&unknown_run, 1), &s.ctx)
        .await
        .expect_err("no items");
    assert_eq!(
        err,
        HandlerError::Permanent("run `never-scheduled` has no job item for `db.core.claimant`; a LaunchRequested must follow the scheduler's".into())
    );
}

#[tokio::test]
async fn moto_a_lost_run_job_flow_answer_is_not_retried_blindly_and_the_cluster_is_found() {
    let mut s = setup().await;
    let (proxy, through_proxy) = kit::faults::in_front_of_moto().await;
    s.ctx.emr = Emr::new(through_proxy.emr());
    proxy.lose_answers("RunJobFlow", 1);

    // The cluster starts, the answer is lost: the delivery fails for a retry, and the SDK
    // did not send RunJobFlow again on its own.
    let first = handle(delivery(&s.launch, 1), &s.ctx).await;
    assert!(
        matches!(&first, Err(HandlerError::Retryable(_))),
        "{first:?}"
    );
    assert_eq!(proxy.calls("RunJobFlow"), 1, "RunJobFlow was retried");

    // The redelivery finds the cluster by its tag and records it, without launching.
    handle(delivery(&s.launch, 2), &s.ctx)
        .await
        .expect("the redelivery settles the launch");
    assert_eq!(proxy.calls("RunJobFlow"), 1);
    one_cluster_recorded(&s).await;
}

#[tokio::test]
async fn moto_a_claim_whose_answer_is_lost_is_read_back_and_the_delivery_launches() {
    let mut s = setup().await;
    let (proxy, through_proxy) = kit::faults::in_front_of_moto().await;
    s.ctx.store = JobStore::new(through_proxy.dynamodb(), s.ctx.store.table().to_owned());
    s.ctx.emr = Emr::new(through_proxy.emr());
    // The claim is written and the answer to it and to each of the SDK's repeats (3
    // attempts in all) is lost: the delivery reads its claim back and goes on, where it
    // used to fail and leave a claim every redelivery had to wait out.
    proxy.lose_answers("TransactWriteItems", 3);
    handle(delivery(&s.launch, 1), &s.ctx)
        .await
        .expect("the first delivery launches");
    assert_eq!(proxy.calls("RunJobFlow"), 1);
    one_cluster_recorded(&s).await;
}

/// A delivery interrupted after any of its AWS calls (the network stops answering and the
/// delivery is dropped, as a Lambda killed mid-call is) leaves a state the redeliveries
/// finish: exactly one cluster, every item EMR_LAUNCHED on it.
#[tokio::test]
async fn moto_a_launch_interrupted_after_any_call_ends_with_one_cluster() {
    let (proxy, through_proxy) = kit::faults::in_front_of_moto().await;
    let through = |mut s: Setup| {
        s.ctx.store = JobStore::new(through_proxy.dynamodb(), s.ctx.store.table().to_owned());
        s.ctx.emr = Emr::new(through_proxy.emr());
        // A claim left by the interrupted delivery is taken over after this long.
        s.ctx.claim_timeout = Duration::from_millis(500);
        s
    };

    // How many calls an uninterrupted delivery makes.
    let s = through(setup().await);
    let (whole, calls) = proxy
        .count_calls(handle(delivery(&s.launch, 1), &s.ctx))
        .await;
    whole.expect("launch");
    one_cluster_recorded(&s).await;
    assert!(calls >= 5, "{calls} calls");

    for k in 0..calls {
        let s = through(setup().await);
        let first = proxy
            .interrupt_after(k, handle(delivery(&s.launch, 1), &s.ctx))
            .await;
        assert!(first.is_none(), "the delivery needed more than {k} calls");
        // Redeliveries until it settles; a claim the dropped delivery left stands until
        // the claim timeout.
        let mut settled = false;
        for n in 2..12 {
            match handle(delivery(&s.launch, n), &s.ctx).await {
                Ok(()) => {
                    settled = true;
                    break;
                }
                Err(HandlerError::Retryable(_)) => {
                    tokio::time::sleep(Duration::from_millis(600)).await;
                }
                Err(e) => panic!("interrupted after call {k}: {e:?}"),
            }
        }
        assert!(settled, "interrupted after call {k}: never settled");
        one_cluster_recorded(&s).await;
    }
}
