//! The scan through `hbase shell` as a child process, with a fake `hbase` script: what it is
//! asked, and that a failing shell fails the step instead of passing for an empty scan.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use intraday_extractor::loopback_dks::LoopbackDks;
use intraday_extractor::synth;
use intraday_testkit as kit;

const START: u64 = 1_710_149_400_001;
const END: u64 = 1_710_153_000_000;

struct Fixture {
    dir: PathBuf,
    dks: LoopbackDks,
}

impl Fixture {
    async fn new() -> Self {
        let dir = std::env::temp_dir().join(kit::unique("extractor-hbase"));
        std::fs::create_dir_all(dir.join("bin")).expect("dir");
        Self {
            dir,
            dks: LoopbackDks::start().await.expect("dks"),
        }
    }

    /// Installs `bin/hbase`: it records its arguments and input, then runs `body`.
    fn fake_hbase(&self, body: &str) -> PathBuf {
        let path = self.dir.join("bin/hbase");
        let script = format!(
            "#!/bin/sh\necho \"$@\" > '{dir}/args.txt'\ncat > '{dir}/stdin.txt'\n{body}\n",
            dir = self.dir.display()
        );
        std::fs::write(&path, script).expect("script");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        path
    }

    async fn run(&self, extra: &[&str], path_env: Option<String>) -> Output {
        let mut command = Command::new(env!("CARGO_BIN_EXE_intraday-extractor"));
        command
            .args([
                "--correlation-id",
                "run-h",
                "--trigger-time-ms",
                "1710153000000",
            ])
            .args(["--collection", &format!("db.core.claimant:{START}:{END}")])
            .arg("--output")
            .arg(self.dir.join("out"))
            .args(["--dks-url", &self.dks.url()])
            .args(extra)
            .env("RUST_LOG", "warn");
        if let Some(path) = path_env {
            command.env("PATH", path);
        }
        tokio::task::spawn_blocking(move || command.output().expect("the binary runs"))
            .await
            .expect("join")
    }

    fn manifest(&self) -> PathBuf {
        self.dir.join("out/_manifests/run-h.json")
    }

    fn read(&self, name: &str) -> String {
        std::fs::read_to_string(self.dir.join(name)).unwrap_or_default()
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn path_with(dir: &Path) -> String {
    format!(
        "{}:{}",
        dir.display(),
        std::env::var("PATH").unwrap_or_default()
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_shell_on_path_is_asked_for_the_window_and_its_output_extracted() {
    let fx = Fixture::new().await;
    let keys = synth::keys(2, 3);
    for key in &keys {
        fx.dks.add_key(&key.encrypted_key, &key.plaintext);
    }
    let records = synth::records(25, 1024, keys.len(), START, 3);
    let mut text = Vec::new();
    synth::write_scan(&mut text, &records, &keys, 3).expect("scan");
    let saved = fx.dir.join("saved.scan");
    std::fs::write(&saved, text).expect("write");
    fx.fake_hbase(&format!(
        "echo 'SLF4J: Class path contains multiple SLF4J bindings.' >&2\ncat '{}'\nexit 0",
        saved.display()
    ));

    let output = fx.run(&[], Some(path_with(&fx.dir.join("bin")))).await;
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(fx.read("args.txt").trim(), "shell -n");
    assert_eq!(
        fx.read("stdin.txt"),
        format!("scan 'core:claimant', {{TIMERANGE => [{START}, {END}]}}\nexit\n")
    );
    let manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(fx.manifest()).expect("manifest"))
            .expect("json");
    assert_eq!(manifest["collections"][0]["records"], 25);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shell_exiting_non_zero_fails_the_step_with_its_stderr() {
    let fx = Fixture::new().await;
    let hbase = fx.fake_hbase(
        "echo 'ROW  COLUMN+CELL'\necho 'ERROR: Unknown table core:claimant!' >&2\nexit 1",
    );
    let output = fx
        .run(&["--hbase-command", &hbase.display().to_string()], None)
        .await;
    assert!(!output.status.success());
    let err = stderr(&output);
    assert!(err.contains("shell -n` failed for core:claimant"), "{err}");
    assert!(err.contains("exit status: 1"), "{err}");
    assert!(err.contains("ERROR: Unknown table core:claimant!"), "{err}");
    assert!(!fx.manifest().exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shell_exiting_zero_without_a_complete_scan_fails_the_step() {
    let fx = Fixture::new().await;
    let hbase = fx.fake_hbase("echo 'HBase Shell'\nexit 0");
    let output = fx
        .run(&["--hbase-command", &hbase.display().to_string()], None)
        .await;
    assert!(!output.status.success());
    let err = stderr(&output);
    assert!(err.contains("no `ROW  COLUMN+CELL` header"), "{err}");
    assert!(!fx.manifest().exists());

    let hbase = fx.fake_hbase("echo 'ROW  COLUMN+CELL'\necho 'ERROR: scan failed' >&2\nexit 0");
    let output = fx
        .run(&["--hbase-command", &hbase.display().to_string()], None)
        .await;
    assert!(!output.status.success());
    assert!(
        stderr(&output).contains("ERROR: scan failed"),
        "{}",
        stderr(&output)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_shell_fails_the_step_naming_the_command() {
    let fx = Fixture::new().await;
    let missing = fx.dir.join("bin/not-hbase");
    let output = fx
        .run(&["--hbase-command", &missing.display().to_string()], None)
        .await;
    assert!(!output.status.success());
    let err = stderr(&output);
    assert!(
        err.contains("could not be started for core:claimant"),
        "{err}"
    );
    assert!(err.contains("not-hbase shell -n"), "{err}");
}
