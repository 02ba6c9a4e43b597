//! The local demo with a tenth of all requests faulted by a proxy in front of moto server:
//! half refused before they reach it, half taking effect and losing their answer (JSON
//! protocols). Every run still completes on exactly one cluster, and the demo's own reads
//! ride the faults out.

mod common;

use intraday_aws::{Emr, JobStore};
use intraday_core::{CorrelationId, JobStatus};
use intraday_testkit as kit;
use intraday_testkit::faults::FaultProxy;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "failed 1 run in 17 for a reason not found yet (docs/faults.md); ci/test.sh runs it with retries"]
async fn moto_the_demo_completes_with_a_tenth_of_requests_faulted() {
    let proxy = FaultProxy::start(kit::moto()).await.expect("proxy");
    proxy.fault_randomly(10, 0x1d7a_2026);
    let endpoint = proxy.endpoint();
    let report = tokio::task::spawn_blocking(move || {
        common::run_demo_at(
            env!("CARGO_BIN_EXE_intradayctl").as_ref(),
            &endpoint,
            &["--timeout", "120"],
        )
    })
    .await
    .expect("join");
    let (refused, lost) = proxy.random_faults();
    assert!(
        refused > 10 && lost > 10,
        "faults injected: {refused} refused, {lost} lost"
    );

    let stack = report["stack"].as_str().expect("stack").to_owned();
    let aws = kit::aws().await;
    let store = JobStore::new(aws.dynamodb(), format!("{stack}-jobs"));
    let emr = Emr::new(aws.emr());
    let mut runs: Vec<String> = report["runs"]
        .as_array()
        .expect("runs")
        .iter()
        .filter_map(|r| r["run"].as_str().map(str::to_owned))
        .collect();
    runs.sort();
    runs.dedup();
    assert_eq!(runs.len(), 2, "{report:#}");
    for run in &runs {
        let jobs = store
            .run(&CorrelationId::new(run.clone()).expect("id"))
            .await
            .expect("items");
        assert_eq!(jobs.len(), 3, "{jobs:?}");
        assert!(
            jobs.iter().all(|j| j.status == JobStatus::EmrCompleted),
            "{jobs:?}"
        );
        assert_eq!(
            kit::clusters_tagged(&emr, run).await.len(),
            1,
            "one cluster for run {run}"
        );
        for job in &jobs {
            assert_eq!(
                store.lock_holder(&job.collection).await.expect("lock"),
                None
            );
        }
    }
    eprintln!("faults injected: {refused} refused, {lost} answers lost");
}
