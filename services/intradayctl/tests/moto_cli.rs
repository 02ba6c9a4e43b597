//! intradayctl, run as a program against a stack deployed to moto server from
//! infra/template.yaml.

use std::process::{Command, Output};
use std::time::Duration;

use intraday_aws::{JobStore, Queues, Stacks};
use intraday_core::{Collection, CorrelationId, JobRecord, JobStatus};
use intraday_testkit as kit;
use intraday_testkit::drain;

struct Stack {
    name: String,
    outputs: std::collections::BTreeMap<String, String>,
}

async fn stack() -> Stack {
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
                ("Prefix", &name),
                ("JobTableName", &table),
                ("EnableSchedules", "false"),
                ("EnforceTls", "false"),
                ("CodeBucket", ""),
            ],
            Duration::from_secs(60),
        )
        .await
        .expect("stack");
    Stack {
        name,
        outputs: deployed.outputs,
    }
}

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
    assert!(!out.status.success());
    assert_eq!(
        text(&out.stderr).trim(),
        "intradayctl: run `scheduled-20240311-1030` of `db.core.claimant` is EMR_COMPLETED, not failed: only EMR_FAILED and LAMBDA_FAILED runs can be acknowledged"
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
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(err.contains("stack `no-such-stack` was not found"), "{err}");
    assert!(
        err.contains("deploy infra/template.yaml or pass --stack NAME"),
        "{err}"
    );
}
