//! The local demo with `--engine spark`: the launcher chooses the Spark engine from the
//! stack's EmrParams, and the EMR stand-in submits the very step the launcher built (its
//! `spark-submit` arguments, the shipped driver) to a local Spark, whose tasks each run the
//! extractor on one key range. Needs Java and pyspark: ci/test.sh runs it with
//! `--run-ignored only`; by hand, `source ci/tools.sh && intraday_spark_tools` first.

mod common;

use intraday_aws::Objects;
use intraday_core::S3Uri;
use intraday_testkit as kit;

#[tokio::test]
#[ignore = "needs Java and pyspark: ci/test.sh runs it"]
async fn moto_the_demo_runs_the_launchers_spark_step_on_a_local_spark() {
    let report = common::run_demo_as(
        env!("CARGO_BIN_EXE_intradayctl").as_ref(),
        kit::moto(),
        &["--timeout", "180", "--engine", "spark"],
        ("test", "test"),
    );
    assert_eq!(report["engine"], "spark", "{report}");
    let runs = report["runs"].as_array().expect("runs");
    assert_eq!(runs.len(), 6, "two runs of three collections: {runs:?}");
    for run in runs {
        assert_eq!(run["status"], "EMR_COMPLETED", "{run}");
        assert_eq!(run["records"], "150", "{run}");
    }

    // Only a run spread over Spark leaves task manifests beside the run's own: one per key
    // range, each of the three collections' tables having three regions.
    let stack = report["stack"].as_str().expect("stack");
    let bucket = format!("{stack}-output-123456789012-{}", kit::REGION);
    let objects = Objects::new(kit::aws().await.s3());
    let mut ids: Vec<&str> = runs.iter().filter_map(|r| r["run"].as_str()).collect();
    ids.dedup();
    assert_eq!(ids.len(), 2, "{ids:?}");
    for id in ids {
        let tasks = objects
            .list(&S3Uri::new(&bucket, &format!("data/_manifests/{id}/")).expect("uri"))
            .await
            .expect("list");
        assert_eq!(tasks.len(), 3 * 3, "a task per range: {tasks:?}");
        assert!(tasks.iter().all(|t| t.key.contains("/task-")), "{tasks:?}");
        let manifest = objects
            .get(&S3Uri::new(&bucket, &format!("data/_manifests/{id}.json")).expect("uri"))
            .await
            .expect("the run's manifest, written last by the commit");
        assert!(!manifest.is_empty());
    }
}
