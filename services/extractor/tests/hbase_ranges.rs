//! Range scans through the test kit's stand-in `hbase` command, which serves stored rows as
//! HBase 2.x's shell prints them and fails on demand: the table split at its regions, K
//! shells at once, every record extracted once; a range that fails, even after writing, is
//! tried once more and replaces its own files; one that fails twice fails the step and
//! nothing is published.
//!
//! The same table through the Spark application (`spark/intraday_spark.py`, pyspark in
//! local mode, a task per range, each running the extractor binary): every record once, the
//! run's manifest written last from the task manifests; a task that fails, even after
//! writing files, is retried by Spark and replaces its own files; one that fails twice fails
//! the run without a manifest. Those tests need Java 17 and pyspark: `ci/test.sh` runs them
//! with `--run-ignored only`; by hand, `source ci/tools.sh && intraday_spark_tools` first.

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::{Command, Output};

use intraday_extractor::loopback_dks::LoopbackDks;
use intraday_extractor::synth;
use intraday_testkit as kit;
use intraday_testkit::hbase::{self, StoredCell};
use parquet::file::reader::{FileReader, SerializedFileReader};
use parquet::record::RowAccessor;

const START: u64 = 1_710_149_400_001;
const END: u64 = 1_710_153_000_000;
const RECORDS: usize = 600;

struct Fixture {
    dir: PathBuf,
    dks: LoopbackDks,
    /// The table's split keys, in order.
    splits: Vec<Vec<u8>>,
    /// Every record's id as the extractor writes it, sorted.
    ids: Vec<String>,
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
        let mut ids: Vec<String> = records.iter().map(|r| r.id_compact.clone()).collect();
        ids.sort();
        Self {
            dir,
            dks,
            splits,
            ids,
        }
    }

    /// The extractor's arguments for the run, as a step gives them.
    fn args(&self) -> Vec<OsString> {
        let mut args: Vec<OsString> = [
            "--correlation-id",
            "run-r",
            "--trigger-time-ms",
            "1710153000000",
            "--collection",
            &format!("db.core.claimant:{START}:{END}"),
            "--dks-url",
            &self.dks.url(),
        ]
        .iter()
        .map(OsString::from)
        .collect();
        args.extend(["--output".into(), self.dir.join("out").into()]);
        args.extend(["--hbase-command".into(), hbase::command().into()]);
        args
    }

    async fn run(&self, parallelism: &str, faults: &str) -> Output {
        let mut command = Command::new(env!("CARGO_BIN_EXE_intraday-extractor"));
        command
            .args(self.args())
            .args(["--scan-parallelism", parallelism])
            .env(hbase::DATA_VAR, self.dir.join("hbase"))
            .env(hbase::FAIL_VAR, faults)
            .env("RUST_LOG", "warn");
        tokio::task::spawn_blocking(move || command.output().expect("the binary runs"))
            .await
            .expect("join")
    }

    /// The run as a Spark application in local mode: 2 cores, each task tried at most twice
    /// (`local[N,F]`), as the launcher submits it to YARN (`spark.task.maxFailures=2`).
    async fn spark(&self, ranges: &str, faults: &str) -> Output {
        let mut command = Command::new("spark-submit");
        command
            .args(["--master", "local[2,2]"])
            .args(["--conf", "spark.speculation=false"])
            .args(["--conf", "spark.ui.enabled=false"])
            .arg(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/spark/intraday_spark.py"
            ))
            .args(["--extractor", env!("CARGO_BIN_EXE_intraday-extractor")])
            .args(["--ranges", ranges, "--"])
            .args(self.args())
            .env(hbase::DATA_VAR, self.dir.join("hbase"))
            .env(hbase::FAIL_VAR, faults)
            .env("RUST_LOG", "warn");
        tokio::task::spawn_blocking(move || {
            command.output().unwrap_or_else(|e| {
                panic!("spark-submit: {e}; `source ci/tools.sh && intraday_spark_tools` first")
            })
        })
        .await
        .expect("join")
    }

    /// The names of the files the manifest lists, in its order.
    fn manifest_files(&self) -> Vec<String> {
        let manifest = self.manifest().expect("a manifest");
        manifest["collections"][0]["files"]
            .as_array()
            .expect("files")
            .iter()
            .filter_map(|f| f["key"].as_str()?.rsplit('/').next().map(str::to_owned))
            .collect()
    }

    /// Every record in the data folder's Parquet files, by id, and the files' names.
    fn extracted(&self) -> (Vec<String>, Vec<String>) {
        let folder = self.dir.join("out/core_claimant/run=20240311-1030");
        let mut names = Vec::new();
        let mut ids = Vec::new();
        for entry in std::fs::read_dir(&folder).expect("the data folder") {
            let path = entry.expect("entry").path();
            let name = path
                .file_name()
                .expect("name")
                .to_string_lossy()
                .into_owned();
            let reader = SerializedFileReader::new(std::fs::File::open(&path).expect("open"))
                .expect("parquet");
            for row in reader.get_row_iter(None).expect("rows") {
                ids.push(row.expect("row").get_string(0).expect("id").clone());
            }
            names.push(name);
        }
        ids.sort();
        names.sort();
        (ids, names)
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
async fn a_range_failing_at_its_start_is_tried_once_more() {
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
async fn a_range_cut_short_after_writing_is_tried_again_and_replaces_its_own_files() {
    for kind in ["cut", "error"] {
        let fx = Fixture::new().await;
        // Each range holds ~150 cells; half are shown before the fault, so the failed try
        // has handed records on to its encoder. Its retry starts its files again.
        let output = fx.run("2", &fx.at_split(kind, 0, true)).await;
        assert!(output.status.success(), "{kind}: {}", stderr(&output));
        assert!(
            stderr(&output).contains("trying it once more"),
            "{kind}: {}",
            stderr(&output)
        );
        let (ids, names) = fx.extracted();
        assert_eq!(ids, fx.ids, "{kind}: every record exactly once");
        assert_eq!(
            fx.manifest_files(),
            names,
            "{kind}: the folder holds exactly the manifest's files"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_range_cut_short_twice_fails_the_step_and_publishes_nothing() {
    let fx = Fixture::new().await;
    let output = fx.run("2", &fx.at_split("cut", 0, false)).await;
    assert!(!output.status.success(), "the step must fail");
    assert!(
        stderr(&output).contains("scan of rows `"),
        "{}",
        stderr(&output)
    );
    assert!(fx.manifest().is_none(), "no manifest");
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs Java and pyspark: ci/test.sh runs it"]
async fn spark_runs_a_task_per_range_and_writes_the_manifest_last() {
    let fx = Fixture::new().await;
    let output = fx.spark("3", "").await;
    assert!(output.status.success(), "{}", stderr(&output));
    let manifest = fx.manifest().expect("the run's manifest");
    let entry = &manifest["collections"][0];
    assert_eq!(entry["records"], RECORDS, "{manifest}");
    assert_eq!(entry["rejected"], 0, "{manifest}");
    let (ids, names) = fx.extracted();
    assert_eq!(ids, fx.ids, "every record exactly once");
    // Three tasks (4 regions in 3 ranges), each with its own files, all in the manifest.
    assert_eq!(
        fx.manifest_files(),
        names,
        "the folder holds exactly the manifest's files"
    );
    for task in ["t00000", "t00001", "t00002"] {
        assert!(
            names
                .iter()
                .any(|n| n.starts_with(&format!("part-run-r-{task}-"))),
            "{task}: {names:?}"
        );
        let index = &task[1..];
        assert!(
            fx.dir
                .join(format!("out/_manifests/run-r/task-{index}.json"))
                .is_file(),
            "task manifest {index}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs Java and pyspark: ci/test.sh runs it"]
async fn spark_retries_a_task_cut_short_after_writing_and_keeps_no_stale_file() {
    let fx = Fixture::new().await;
    // What earlier attempts could have left: a finished file of task 1 (a retry replaces
    // its own) and one of a task an earlier plan had (the commit removes what no task
    // manifest lists). Another run's file in the same folder is not ours.
    let folder = fx.dir.join("out/core_claimant/run=20240311-1030");
    std::fs::create_dir_all(&folder).expect("folder");
    for stale in [
        "part-run-r-t00001-00099.parquet",
        "part-run-r-t00007-00000.parquet",
        "part-other-00000.parquet",
    ] {
        std::fs::write(folder.join(stale), b"stale").expect("plant");
    }
    // The range from the first split key (task 1) is cut short once, after handing on cells.
    let output = fx.spark("3", &fx.at_split("cut", 0, true)).await;
    assert!(output.status.success(), "{}", stderr(&output));
    let spent = std::fs::read_dir(fx.dir.join("hbase"))
        .expect("data dir")
        .any(|e| {
            e.expect("entry")
                .file_name()
                .to_string_lossy()
                .starts_with(".fault-")
        });
    assert!(spent, "the first attempt of task 1 met the fault");
    std::fs::remove_file(folder.join("part-other-00000.parquet"))
        .expect("another run's file stays");
    let (ids, names) = fx.extracted();
    assert!(
        !names
            .iter()
            .any(|n| n.contains("00099") || n.contains("t00007")),
        "{names:?}"
    );
    assert_eq!(ids, fx.ids, "every record exactly once after the retry");
    assert_eq!(
        fx.manifest().expect("a manifest")["collections"][0]["records"],
        RECORDS
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs Java and pyspark: ci/test.sh runs it"]
async fn spark_fails_the_run_when_a_range_fails_twice_and_publishes_nothing() {
    let fx = Fixture::new().await;
    let output = fx.spark("3", &fx.at_split("exit", 0, false)).await;
    assert!(!output.status.success(), "the run must fail");
    // spark-submit passes the Python driver's stderr on to its own stdout.
    let err = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        stderr(&output)
    );
    assert!(
        err.contains("intraday_spark: error: the run's tasks failed"),
        "{err}"
    );
    assert!(err.contains("task 1 of 3 (db.core.claimant)"), "{err}");
    assert!(fx.manifest().is_none(), "no manifest for an incomplete run");
}
