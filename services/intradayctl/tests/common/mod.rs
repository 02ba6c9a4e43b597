//! What the demo tests share: running `intradayctl local demo -o json` against moto server.
#![allow(
    dead_code,
    reason = "each test file that includes this module uses part of it"
)]

use std::path::Path;
use std::process::Command;

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
