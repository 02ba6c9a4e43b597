//! What the CLI tests share: a stack deployed to moto server from infra/template.yaml, and
//! running `intradayctl local demo -o json` against moto server.
#![allow(
    dead_code,
    reason = "each test file that includes this module uses part of it"
)]

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use intraday_aws::Stacks;

use intraday_testkit as kit;

/// Runs `<intradayctl> --output json --endpoint-url <moto> local demo <args>` and returns its
/// JSON report; fails the test with the demo's output when it exits non-zero.
pub fn run_demo(intradayctl: &Path, args: &[&str]) -> serde_json::Value {
    run_demo_at(intradayctl, kit::moto(), args)
}

/// The same against `endpoint` (a fault proxy in front of moto).
pub fn run_demo_at(intradayctl: &Path, endpoint: &str, args: &[&str]) -> serde_json::Value {
    run_demo_as(intradayctl, endpoint, args, ("test", "test"))
}

/// The same with the access key `(id, secret)` in the environment.
pub fn run_demo_as(
    intradayctl: &Path,
    endpoint: &str,
    args: &[&str],
    (key, secret): (&str, &str),
) -> serde_json::Value {
    let out = Command::new(intradayctl)
        .args([
            "--output",
            "json",
            "--endpoint-url",
            endpoint,
            "local",
            "demo",
        ])
        .args(args)
        .env("AWS_ACCESS_KEY_ID", key)
        .env("AWS_SECRET_ACCESS_KEY", secret)
        .env_remove("AWS_SESSION_TOKEN")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("RUST_LOG", "warn")
        .output()
        .unwrap_or_else(|e| panic!("run {}: {e}", intradayctl.display()));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "the demo failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json_start = stdout.find("\n{").map_or(0, |i| i + 1);
    serde_json::from_str(&stdout[json_start..]).expect("json report")
}

pub struct Stack {
    pub name: String,
    pub outputs: std::collections::BTreeMap<String, String>,
}

pub async fn stack() -> Stack {
    stack_with(&[]).await
}

/// A stack with the usual local settings plus `extra` parameters.
pub async fn stack_with(extra: &[(&str, &str)]) -> Stack {
    let aws = kit::aws().await;
    let template = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../infra/template.yaml"
    ))
    .expect("template");
    let name = kit::unique("ctl");
    let table = format!("{name}-jobs");
    let deployed = Stacks::new(aws.cloudformation())
        .create(
            &name,
            &template,
            &[
                ("Prefix", name.as_str()),
                ("JobTableName", table.as_str()),
                ("EnableSchedules", "false"),
                ("EnforceTls", "false"),
                ("CodeBucket", ""),
            ]
            .into_iter()
            .chain(extra.iter().copied())
            .collect::<Vec<_>>(),
            Duration::from_secs(60),
        )
        .await
        .expect("stack");
    Stack {
        name,
        outputs: deployed.outputs,
    }
}

/// Puts a collections secret listing `names` (`db.core.claimant`), as the original stores it
/// (base64 of a Python-dict literal), and returns its name for `CollectionsSecretName`.
pub async fn collections_secret(names: &[&str]) -> String {
    use base64::Engine;
    let entries: Vec<String> = names
        .iter()
        .map(|name| {
            let (db, table) = name
                .trim_start_matches("db.")
                .split_once('.')
                .expect("db.<db>.<table>");
            format!("'{name}': {{'db': '{db}', 'table': '{table}'}}")
        })
        .collect();
    let secret = format!("/intraday/{}", kit::unique("collections"));
    intraday_aws::Secrets::new(kit::aws().await.secrets())
        .put(
            &secret,
            &base64::engine::general_purpose::STANDARD
                .encode(format!("{{'collections_all': {{{}}}}}", entries.join(", "))),
        )
        .await
        .expect("secret");
    secret
}

/// Asserts that a demo ended as a demo without faults ends: two runs of three collections,
/// each `EMR_COMPLETED` with 150 records in three files (a file per range of the demo
/// table's three regions) on exactly one cluster per run; each
/// collection's first window from 0, its second from the first's data end + 1, and its
/// watermark after the second's data end; no lock held; every dead-letter queue empty.
pub async fn assert_converged(report: &serde_json::Value) {
    use intraday_aws::{Emr, JobStore, Queues};
    use intraday_core::{CorrelationId, JobStatus};

    let stack = report["stack"].as_str().expect("stack").to_owned();
    let rows = report["runs"].as_array().expect("runs");
    assert_eq!(rows.len(), 6, "two runs of three collections: {report:#}");
    for row in rows {
        assert_eq!(
            (
                row["status"].as_str(),
                row["records"].as_str(),
                row["files"].as_str()
            ),
            (Some("EMR_COMPLETED"), Some("150"), Some("3")),
            "{row:#}"
        );
    }
    let mut runs: Vec<String> = rows
        .iter()
        .filter_map(|r| r["run"].as_str().map(str::to_owned))
        .collect();
    runs.dedup();
    assert_eq!(runs.len(), 2, "{report:#}");

    let aws = kit::aws().await;
    let store = JobStore::new(aws.dynamodb(), format!("{stack}-jobs"));
    let emr = Emr::new(aws.emr());
    let mut by_run = Vec::new();
    for run in &runs {
        assert_eq!(
            kit::clusters_tagged(&emr, run).await.len(),
            1,
            "one cluster for run {run}"
        );
        let mut jobs = store
            .run(&CorrelationId::new(run.clone()).expect("id"))
            .await
            .expect("items");
        jobs.sort_by_key(|j| j.collection.name());
        assert_eq!(jobs.len(), 3, "{jobs:?}");
        assert!(
            jobs.iter().all(|j| j.status == JobStatus::EmrCompleted),
            "{jobs:?}"
        );
        by_run.push(jobs);
    }
    for (first, second) in by_run[0].iter().zip(&by_run[1]) {
        let c = &first.collection;
        let end = |j: &intraday_core::JobRecord| j.processed_data_end.expect("data end");
        assert_eq!(first.processed_data_start, Some(0), "{first:?}");
        assert_eq!(
            second.processed_data_start,
            Some(end(first) + 1),
            "{second:?}"
        );
        assert_eq!(
            store.next_window_start(c).await.expect("watermark"),
            end(second) + 1,
            "{c}"
        );
        assert_eq!(store.lock_holder(c).await.expect("lock"), None, "{c}");
    }

    let queues = Queues::new(aws.sqs());
    let listed = aws
        .sqs()
        .list_queues()
        .queue_name_prefix(format!("{stack}-"))
        .send()
        .await
        .expect("list queues");
    let dlqs: Vec<&String> = listed
        .queue_urls()
        .iter()
        .filter(|u| u.ends_with("-dlq"))
        .collect();
    assert!(
        dlqs.len() >= 5,
        "the services' dead-letter queues: {dlqs:?}"
    );
    for dlq in dlqs {
        let attributes = queues.attributes(dlq).await.expect("attributes");
        for count in [
            "ApproximateNumberOfMessages",
            "ApproximateNumberOfMessagesNotVisible",
        ] {
            assert_eq!(
                attributes.get(count).map(String::as_str),
                Some("0"),
                "{dlq}: {count}"
            );
        }
    }
}

/// Runs the demo with every request through `proxy`, on a blocking thread so the proxy keeps
/// serving, and returns its JSON report.
pub async fn demo_through(
    proxy: &intraday_testkit::faults::FaultProxy,
    timeout_s: u64,
) -> serde_json::Value {
    let endpoint = proxy.endpoint();
    tokio::task::spawn_blocking(move || {
        run_demo_at(
            env!("CARGO_BIN_EXE_intradayctl").as_ref(),
            &endpoint,
            &["--timeout", &timeout_s.to_string()],
        )
    })
    .await
    .unwrap_or_else(|e| panic!("the demo's thread: {e}"))
}
