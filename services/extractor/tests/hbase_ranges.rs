//! Range scans through the test kit's stand-in `hbase` command, which serves stored rows as
//! HBase 2.x's shell prints them and fails on demand: the table split at its regions, K
//! shells at once, every record extracted once; a range that fails before handing on a
//! cell is tried again, one that fails after fails the step and nothing is published.

use std::path::PathBuf;
use std::process::{Command, Output};

use intraday_extractor::loopback_dks::LoopbackDks;
use intraday_extractor::synth;
use intraday_testkit as kit;
use intraday_testkit::hbase::{self, StoredCell};

const START: u64 = 1_710_149_400_001;
const END: u64 = 1_710_153_000_000;
const RECORDS: usize = 600;

struct Fixture {
    dir: PathBuf,
    dks: LoopbackDks,
    /// The table's split keys, in order.
    splits: Vec<Vec<u8>>,
}

impl Fixture {
    /// A table of `RECORDS` encrypted records in 4 regions.
    async fn new() -> Self {
        let dir = std::env::temp_dir().join(kit::unique("extractor-ranges"));
        let dks = LoopbackDks::start().await.expect("dks");
        let keys = synth::keys(2, 7);
        for key in &keys {
            dks.add_key(&key.encrypted_key, &key.plaintext);
        }
        let records = synth::records(RECORDS, 512, keys.len(), START, 7);
        let cells: Vec<StoredCell> = records
            .iter()
            .enumerate()
            .map(|(i, r)| StoredCell {
                row: r.row.clone(),
                timestamp_ms: r.timestamp_ms,
                value: synth::envelope(&r.id_json, &keys[r.key_index], [i as u8; 16], &r.document)
                    .into_bytes(),
            })
            .collect();
        let mut rows: Vec<Vec<u8>> = cells.iter().map(|c| c.row.clone()).collect();
        rows.sort();
        let splits = vec![
            rows[RECORDS / 4].clone(),
            rows[RECORDS / 2].clone(),
            rows[3 * RECORDS / 4].clone(),
        ];
        hbase::store_table(&dir.join("hbase"), "core:claimant", &cells, &splits)
            .expect("store the table");
        Self { dir, dks, splits }
    }

    async fn run(&self, parallelism: &str, faults: &str) -> Output {
        let mut command = Command::new(env!("CARGO_BIN_EXE_intraday-extractor"));
        command
            .args([
                "--correlation-id",
                "run-r",
                "--trigger-time-ms",
                "1710153000000",
            ])
            .args(["--collection", &format!("db.core.claimant:{START}:{END}")])
            .arg("--output")
            .arg(self.dir.join("out"))
            .args(["--dks-url", &self.dks.url()])
            .arg("--hbase-command")
            .arg(hbase::command())
            .args(["--scan-parallelism", parallelism])
            .env(hbase::DATA_VAR, self.dir.join("hbase"))
            .env(hbase::FAIL_VAR, faults)
            .env("RUST_LOG", "warn");
        tokio::task::spawn_blocking(move || command.output().expect("the binary runs"))
            .await
            .expect("join")
    }

    fn manifest(&self) -> Option<serde_json::Value> {
        let text = std::fs::read_to_string(self.dir.join("out/_manifests/run-r.json")).ok()?;
        Some(serde_json::from_str(&text).expect("manifest json"))
    }

    /// The fault spec for scans starting at the `i`-th split key.
    fn at_split(&self, kind: &str, i: usize, once: bool) -> String {
        format!(
            "{kind}@{}{}",
            hbase::to_string_binary(&self.splits[i]),
            if once { "#once" } else { "" }
        )
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ranges_scanned_at_once_extract_every_record_once() {
    for parallelism in ["1", "2", "4"] {
        let fx = Fixture::new().await;
        let output = fx.run(parallelism, "").await;
        assert!(
            output.status.success(),
            "K={parallelism}: {}",
            stderr(&output)
        );
        let manifest = fx.manifest().expect("a manifest");
        assert_eq!(
            manifest["collections"][0]["records"], RECORDS,
            "K={parallelism}: {manifest}"
        );
        assert_eq!(manifest["collections"][0]["rejected"], 0, "{manifest}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_range_failing_before_any_cell_is_tried_once_more() {
    let fx = Fixture::new().await;
    let output = fx.run("2", &fx.at_split("exit", 1, true)).await;
    assert!(output.status.success(), "{}", stderr(&output));
    // The range starting at the second split key was scanned on its own, failed, and ran again.
    assert!(
        stderr(&output).contains("trying it once more"),
        "{}",
        stderr(&output)
    );
    assert_eq!(
        fx.manifest().expect("a manifest")["collections"][0]["records"],
        RECORDS
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_range_failing_twice_fails_the_step_naming_the_range() {
    let fx = Fixture::new().await;
    let output = fx.run("2", &fx.at_split("exit", 1, false)).await;
    assert!(!output.status.success());
    let err = stderr(&output);
    assert!(err.contains("scan of rows `"), "{err}");
    assert!(fx.manifest().is_none(), "no manifest for an incomplete run");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_range_cut_short_after_handing_on_cells_fails_the_step_at_once() {
    for kind in ["cut", "error"] {
        let fx = Fixture::new().await;
        // Once only: a retry would succeed, so a success here would mean a retry after
        // cells were handed on (each range holds ~150 cells; half are shown, more than one
        // hand-off of 64).
        let output = fx.run("2", &fx.at_split(kind, 0, true)).await;
        assert!(!output.status.success(), "{kind}: the step must fail");
        let err = stderr(&output);
        assert!(!err.contains("trying it once more"), "{kind}: {err}");
        assert!(fx.manifest().is_none(), "{kind}: no manifest");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_splits_failing_fails_the_step() {
    let fx = Fixture::new().await;
    std::fs::remove_file(fx.dir.join("hbase/core:claimant/cells")).expect("remove the table");
    let output = fx.run("2", "").await;
    assert!(!output.status.success());
    assert!(
        stderr(&output).contains("get_splits"),
        "{}",
        stderr(&output)
    );
}
