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
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
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
