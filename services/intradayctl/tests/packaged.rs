//! The files a deploy ships, not the source: dist/ as ci/package.sh writes it. The shipped
//! `intradayctl` runs the local demo with `--lambda-dir`, so every zip's `bootstrap` is
//! unpacked and run as Lambda runs it (the Runtime API stand-in, the environment the
//! template gave its function) and the shipped extractor is the EMR step. Each function also
//! gets one malformed message, which must come back as a `batchItemFailures` entry and reach
//! its dead-letter queue while the good ones complete two runs.

use std::io::Read;
use std::path::PathBuf;
use std::process::Command;

use intraday_testkit::lambda;

mod common;

/// e_machine of an ELF header (offset 18, little-endian): what the kernel Lambda runs on
/// checks before it executes the bootstrap. 62 = EM_X86_64, 183 = EM_AARCH64.
fn elf_machine(bytes: &[u8]) -> Option<u16> {
    (bytes.len() >= 20 && bytes.starts_with(b"\x7fELF"))
        .then(|| u16::from_le_bytes([bytes[18], bytes[19]]))
}

#[tokio::test]
#[ignore = "tests dist/ from ci/package.sh; ci/test.sh packages and then runs it with INTRADAY_DIST_DIR"]
async fn moto_the_shipped_zips_and_extractor_run_the_pipeline_as_lambda_and_emr_run_them() {
    let dist = PathBuf::from(
        std::env::var("INTRADAY_DIST_DIR")
            .expect("INTRADAY_DIST_DIR names the dist/ directory ci/package.sh wrote"),
    );
    for service in lambda::SERVICES {
        let zip = dist.join(format!("lambda/{service}.zip"));
        let mut bootstrap = Command::new("unzip")
            .arg("-p")
            .arg(&zip)
            .arg("bootstrap")
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("unzip");
        let mut header = [0u8; 20];
        bootstrap
            .stdout
            .take()
            .expect("stdout")
            .read_exact(&mut header)
            .unwrap_or_else(|e| panic!("{}: no bootstrap inside: {e}", zip.display()));
        let _ = bootstrap.kill();
        let _ = bootstrap.wait();
        // The template deploys x86_64 (LambdaArchitecture's default).
        assert_eq!(
            elf_machine(&header),
            Some(62),
            "{service}.zip is not x86_64"
        );
    }

    let lambda_dir = dist.join("lambda").display().to_string();
    let extractor = dist.join("emr/intraday-extractor").display().to_string();
    let report = common::run_demo(
        &dist.join("bin/intradayctl"),
        &[
            "--timeout",
            "120",
            "--lambda-dir",
            &lambda_dir,
            "--extractor",
            &extractor,
        ],
    );
    let runs = report["runs"].as_array().expect("runs");
    assert_eq!(runs.len(), 6, "two runs of three collections: {runs:?}");
    assert!(
        runs.iter().all(|r| r["status"] == "EMR_COMPLETED"),
        "{runs:?}"
    );
    let packaged = report["packaged"].as_array().expect("packaged");
    assert_eq!(packaged.len(), 5, "{packaged:?}");
    for function in packaged {
        assert_eq!(function["architecture"], "x86_64", "{function}");
        assert_eq!(
            function["returned_as_batch_item_failure"], true,
            "{function}"
        );
        assert_eq!(function["dead_letter_depth"], 1, "{function}");
        assert!(
            function["messages_handled"].as_u64().unwrap_or(0) >= 1,
            "every function handled the pipeline's good messages: {function}"
        );
    }
}
