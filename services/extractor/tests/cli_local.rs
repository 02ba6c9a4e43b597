//! The binary end to end on saved scan output (`--scan-file`), writing to a local directory,
//! with a data key service on loopback: what a good run writes, and how each kind of bad
//! record or bad answer fails the step without a manifest.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use intraday_events::Manifest;
use intraday_extractor::loopback_dks::LoopbackDks;
use intraday_extractor::synth::{self, SynthKey, SynthRecord};
use intraday_testkit as kit;
use parquet::file::reader::{FileReader, SerializedFileReader};
use parquet::record::RowAccessor;
use sha2::{Digest, Sha256};

const START: u64 = 1_710_149_400_001;
const END: u64 = 1_710_153_000_000;
const TRIGGER: &str = "1710153000000";
const COLLECTION: &str = "db.core.claimant";

struct Fixture {
    dir: PathBuf,
    dks: LoopbackDks,
    keys: Vec<SynthKey>,
}

impl Fixture {
    async fn new() -> Self {
        let dir = std::env::temp_dir().join(kit::unique("extractor-cli"));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let dks = LoopbackDks::start().await.expect("dks");
        let keys = synth::keys(3, 11);
        for key in &keys {
            dks.add_key(&key.encrypted_key, &key.plaintext);
        }
        Self { dir, dks, keys }
    }

    fn out(&self) -> PathBuf {
        self.dir.join("out")
    }

    fn scan_file(&self, name: &str, text: &[u8]) -> PathBuf {
        let path = self.dir.join(name);
        std::fs::write(&path, text).expect("write scan");
        path
    }

    fn good_scan(&self, records: &[SynthRecord]) -> Vec<u8> {
        let mut text = Vec::new();
        synth::write_scan(&mut text, records, &self.keys, 5).expect("scan text");
        text
    }

    /// Runs the binary with the usual flags plus `extra`.
    async fn run(&self, scan: &Path, extra: &[&str]) -> Output {
        let mut command = Command::new(env!("CARGO_BIN_EXE_intraday-extractor"));
        command
            .args(["--correlation-id", "run-7", "--trigger-time-ms", TRIGGER])
            .args(["--collection", &format!("{COLLECTION}:{START}:{END}")])
            .args(["--pii", COLLECTION])
            .arg("--scan-file")
            .arg(format!("{COLLECTION}={}", scan.display()))
            .arg("--output")
            .arg(self.out())
            .args(["--dks-url", &self.dks.url()])
            .args(extra)
            .env("RUST_LOG", "warn");
        tokio::task::spawn_blocking(move || command.output().expect("the binary runs"))
            .await
            .expect("join")
    }

    fn manifest_path(&self) -> PathBuf {
        self.out().join("_manifests/run-7.json")
    }

    fn rejects(&self) -> Vec<serde_json::Value> {
        let path = self
            .out()
            .join("_rejects/core_claimant/run=20240311-1030/rejects-run-7.jsonl");
        let text =
            std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        text.lines()
            .map(|l| serde_json::from_str(l).expect("a JSON line"))
            .collect()
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

fn read_parquet(path: &Path) -> Vec<(String, i64, String)> {
    let file = std::fs::File::open(path).expect("parquet file");
    let reader = SerializedFileReader::new(file).expect("a Parquet file");
    reader
        .get_row_iter(None)
        .expect("rows")
        .map(|row| {
            let row = row.expect("row");
            (
                row.get_string(0).expect("id").clone(),
                row.get_long(1).expect("record_timestamp"),
                row.get_string(2).expect("record").clone(),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parquet_output_reads_back_equal_to_the_input_with_a_manifest() {
    let fx = Fixture::new().await;
    let records = synth::records(400, 1024, fx.keys.len(), START, 3);
    let scan = fx.scan_file("claimant.scan", &fx.good_scan(&records));
    let output = fx.run(&scan, &[]).await;
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(
        String::from_utf8_lossy(&output.stdout).contains("400 record(s)"),
        "{}",
        String::from_utf8_lossy(&output.stdout)
    );
    assert_eq!(fx.dks.requests(), 3, "one request per data key");

    let manifest = Manifest::parse(&std::fs::read_to_string(fx.manifest_path()).expect("manifest"))
        .expect("a valid manifest");
    assert_eq!(manifest.correlation_id.as_str(), "run-7");
    assert_eq!(manifest.run, "20240311-1030");
    assert_eq!(
        manifest.output,
        fx.out().canonicalize().expect("dir").display().to_string()
    );
    let entry = &manifest.collections[0];
    assert_eq!(entry.collection.name(), COLLECTION);
    assert_eq!((entry.records, entry.rejected), (400, 0));
    assert_eq!(entry.rejects_file, None);
    let timestamps: Vec<u64> = records.iter().map(|r| r.timestamp_ms).collect();
    assert_eq!(
        entry.smallest_timestamp_ms,
        timestamps.iter().min().copied()
    );
    assert_eq!(entry.largest_timestamp_ms, timestamps.iter().max().copied());
    assert_eq!(entry.files.len(), 1);
    let file = &entry.files[0];
    assert_eq!(
        file.key,
        "core_claimant/run=20240311-1030/part-run-7-00000.parquet"
    );
    let bytes = std::fs::read(fx.out().join(&file.key)).expect("data file");
    assert_eq!(file.size, bytes.len() as u64);
    assert_eq!(entry.bytes, file.size);
    let sha: String = Sha256::digest(&bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(file.sha256, sha);

    let rows = read_parquet(&fx.out().join(&file.key));
    let expected: Vec<(String, i64, String)> = records
        .iter()
        .map(|r| {
            (
                r.id_compact.clone(),
                i64::try_from(r.timestamp_ms).expect("fits"),
                r.document.clone(),
            )
        })
        .collect();
    assert_eq!(rows, expected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn csv_gzip_output_has_the_three_quoted_columns() {
    let fx = Fixture::new().await;
    let records = synth::records(50, 1024, fx.keys.len(), START, 4);
    let scan = fx.scan_file("claimant.scan", &fx.good_scan(&records));
    let output = fx.run(&scan, &["--format", "csv-gzip"]).await;
    assert!(output.status.success(), "{}", stderr(&output));
    let manifest = Manifest::parse(&std::fs::read_to_string(fx.manifest_path()).expect("manifest"))
        .expect("valid");
    let key = &manifest.collections[0].files[0].key;
    assert!(key.ends_with("part-run-7-00000.csv.gz"), "{key}");
    let mut text = String::new();
    flate2::read::GzDecoder::new(std::fs::File::open(fx.out().join(key)).expect("file"))
        .read_to_string(&mut text)
        .expect("gzip");
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines.len(),
        50,
        "the documents' escaped newlines stay escaped"
    );
    let first = &records[0];
    let want = format!(
        "\"{}\",\"{}\",\"{}\"",
        first.id_compact.replace('"', "\"\""),
        first.timestamp_ms,
        first.document.replace('"', "\"\"")
    );
    assert_eq!(lines[0], want);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rejects_under_the_threshold_are_counted_in_the_manifest() {
    let fx = Fixture::new().await;
    let records = synth::records(10, 512, fx.keys.len(), START, 6);
    let mut text = String::from_utf8(fx.good_scan(&records)).expect("utf-8");
    let bad = synth::cell_line(b"bad-row", START + 5, b"{not json");
    text = text.replacen("10 row(s)", &format!("{bad}\n11 row(s)"), 1);
    let scan = fx.scan_file("claimant.scan", text.as_bytes());
    let output = fx.run(&scan, &["--max-rejects", "1"]).await;
    assert!(output.status.success(), "{}", stderr(&output));
    let manifest = Manifest::parse(&std::fs::read_to_string(fx.manifest_path()).expect("manifest"))
        .expect("valid");
    let entry = &manifest.collections[0];
    assert_eq!((entry.records, entry.rejected), (10, 1));
    assert_eq!(
        entry.rejects_file.as_deref(),
        Some("_rejects/core_claimant/run=20240311-1030/rejects-run-7.jsonl")
    );
    let rejects = fx.rejects();
    assert_eq!(rejects.len(), 1);
    assert_eq!(rejects[0]["row_key"], "bad-row");
}

/// A scan with one bad line among good ones; the step must fail with the reason in the
/// rejects file and no manifest.
async fn assert_rejected(fx: &Fixture, scan_text: &[u8], row_key: Option<&str>, reason: &str) {
    let scan = fx.scan_file("claimant.scan", scan_text);
    let output = fx.run(&scan, &[]).await;
    assert!(!output.status.success(), "the step must fail");
    let err = stderr(&output);
    assert!(err.contains("intraday-extractor: error: "), "{err}");
    assert!(
        !fx.manifest_path().exists(),
        "no manifest for a failed step"
    );
    let rejects = fx.rejects();
    assert_eq!(rejects.len(), 1, "{rejects:?}");
    let got = rejects[0]["reason"].as_str().unwrap_or_default();
    assert!(got.contains(reason), "reason: {got}");
    match row_key {
        Some(row) => assert_eq!(rejects[0]["row_key"], row),
        None => assert!(rejects[0]["row_key"].is_null()),
    }
}

fn scan_with(fx: &Fixture, extra_line: &str) -> Vec<u8> {
    let records = synth::records(5, 512, fx.keys.len(), START, 8);
    let text = String::from_utf8(fx.good_scan(&records)).expect("utf-8");
    text.replacen("5 row(s)", &format!("{extra_line}\n6 row(s)"), 1)
        .into_bytes()
}

fn envelope_without(fx: &Fixture, field: &str) -> String {
    let value = synth::envelope(r#"{"id": 1}"#, &fx.keys[0], [1; 16], r#"{"a":1}"#);
    let start = value
        .find(&format!("\"{field}\": \""))
        .expect("field present");
    let value_start = start + field.len() + 5;
    let end = value_start + value[value_start..].find('"').expect("string value") + 1;
    if value[end..].starts_with(", ") {
        format!("{}{}", &value[..start], &value[end + 2..])
    } else {
        let before = value[..start].trim_end_matches(", ");
        format!("{before}{}", &value[end..])
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_truncated_scan_file_is_a_reject_and_a_failed_step() {
    let fx = Fixture::new().await;
    let records = synth::records(5, 512, fx.keys.len(), START, 9);
    let text = fx.good_scan(&records);
    let cut = text.len() - 300;
    let scan = fx.scan_file("claimant.scan", &text[..cut]);
    let output = fx.run(&scan, &[]).await;
    assert!(!output.status.success());
    let err = stderr(&output);
    assert!(err.contains("truncated"), "{err}");
    assert!(!fx.manifest_path().exists());
    let rejects = fx.rejects();
    assert_eq!(rejects.len(), 1);
    assert!(
        rejects[0]["reason"]
            .as_str()
            .unwrap_or_default()
            .contains("cut short"),
        "{rejects:?}"
    );
    assert!(
        !fx.out()
            .join("core_claimant/run=20240311-1030/part-run-7-00000.parquet")
            .exists(),
        "the file in progress is abandoned"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_line_without_value_is_a_reject_and_a_failed_step() {
    let fx = Fixture::new().await;
    let text = scan_with(&fx, " odd-row column=cf:record, timestamp=1710149400009");
    assert_rejected(&fx, &text, None, "no `, value=`").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_value_that_is_not_json_is_a_reject_and_a_failed_step() {
    let fx = Fixture::new().await;
    let line = synth::cell_line(b"\x01odd", START + 9, b"{\"message\": ");
    let text = scan_with(&fx, &line);
    assert_rejected(&fx, &text, Some("\\x01odd"), "the value is not JSON").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_encryption_field_is_a_reject_and_a_failed_step() {
    let fx = Fixture::new().await;
    let value = envelope_without(&fx, "initialisationVector");
    let line = synth::cell_line(b"odd", START + 9, value.as_bytes());
    let text = scan_with(&fx, &line);
    assert_rejected(
        &fx,
        &text,
        Some("odd"),
        "`message.encryption.initialisationVector` is missing",
    )
    .await;
    let err_fx = Fixture::new().await;
    let value = envelope_without(&err_fx, "keyEncryptionKeyId");
    let line = synth::cell_line(b"odd", START + 9, value.as_bytes());
    let text = scan_with(&err_fx, &line);
    assert_rejected(
        &err_fx,
        &text,
        Some("odd"),
        "`message.encryption.keyEncryptionKeyId` is missing",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_key_is_a_reject_and_a_failed_step() {
    let fx = Fixture::new().await;
    // The service knows this wrapped key, but it unwraps to a key the record was not
    // encrypted with.
    let mut wrong = fx.keys[0].clone();
    wrong.encrypted_key = "d3Jvbmcga2V5".to_owned();
    fx.dks.add_key(&wrong.encrypted_key, &[0x42; 16]);
    let value = synth::envelope(r#"{"id": 1}"#, &fx.keys[0], [3; 16], r#"{"a":"b"}"#)
        .replace(&fx.keys[0].encrypted_key, &wrong.encrypted_key);
    let line = synth::cell_line(b"odd", START + 9, value.as_bytes());
    let text = scan_with(&fx, &line);
    assert_rejected(&fx, &text, Some("odd"), "a wrong data key").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dks_answering_400_fails_the_step_naming_the_key_id() {
    let fx = Fixture::new().await;
    let mut unknown = fx.keys[1].clone();
    unknown.encrypted_key = "dW5rbm93biBrZXk=".to_owned();
    let value = synth::envelope(r#"{"id": 1}"#, &unknown, [3; 16], r#"{"a":"b"}"#);
    let line = synth::cell_line(b"odd", START + 9, value.as_bytes());
    let text = scan_with(&fx, &line);
    let want = format!(
        "the data key service refused to decrypt the data key under master key `{}` (400)",
        unknown.key_id
    );
    assert_rejected(&fx, &text, Some("odd"), &want).await;
    let scan = fx.scan_file("claimant.scan", &text);
    let err = stderr(&fx.run(&scan, &[]).await);
    assert!(err.contains(&unknown.key_id), "{err}");
    assert!(err.contains("more than --max-rejects 0"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cell_outside_the_window_is_a_reject() {
    let fx = Fixture::new().await;
    let value = synth::envelope(r#"{"id": 1}"#, &fx.keys[0], [3; 16], r#"{"a":"b"}"#);
    let line = synth::cell_line(b"late", END, value.as_bytes());
    let text = scan_with(&fx, &line);
    assert_rejected(&fx, &text, Some("late"), "outside the window").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn usage_errors_name_the_flag() {
    let fx = Fixture::new().await;
    let scan = fx.scan_file("claimant.scan", b"");
    let output = fx.run(&scan, &["--file-size-mb", "0"]).await;
    assert!(!output.status.success());
    assert!(
        stderr(&output).contains("invalid --file-size-mb `0`"),
        "{}",
        stderr(&output)
    );
}

/// A collection larger than a page is encoded by several encoders at once, each writing
/// files of its own: names never collide, and every record is in exactly one file.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_collection_is_encoded_in_parallel_into_distinct_files() {
    let fx = Fixture::new().await;
    let records = synth::records(12_000, 1024, fx.keys.len(), START, 5);
    let scan = fx.scan_file("claimant.scan", &fx.good_scan(&records));
    // A second encoder may start once a page's worth of records (1 MiB, about 1,000 here)
    // has been handed on, for a worker that would otherwise wait. Eight workers on the
    // machine's cores keep the first encoder busy whatever the build's speed.
    let output = fx
        .run(&scan, &["--workers", "8", "--file-size-mb", "16"])
        .await;
    assert!(output.status.success(), "{}", stderr(&output));
    let manifest = Manifest::parse(&std::fs::read_to_string(fx.manifest_path()).expect("manifest"))
        .expect("a valid manifest");
    let entry = &manifest.collections[0];
    assert_eq!(entry.records, 12_000);
    assert!(entry.files.len() >= 2, "{:?}", entry.files);
    let mut keys: Vec<&str> = entry.files.iter().map(|f| f.key.as_str()).collect();
    keys.dedup();
    assert_eq!(keys.len(), entry.files.len(), "distinct names");
    assert_eq!(entry.files.iter().map(|f| f.records).sum::<u64>(), 12_000);
    let mut ids: Vec<String> = entry
        .files
        .iter()
        .flat_map(|f| read_parquet(&fx.out().join(&f.key)))
        .map(|(id, _, _)| id)
        .collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 12_000, "every record once");
}

/// Two more collections beside the fixture's, each with a scan of its own: the flags that
/// add them, and how many records each holds.
fn more_collections(fx: &Fixture) -> (Vec<String>, Vec<(&'static str, usize)>) {
    let mut flags = Vec::new();
    let mut expected = Vec::new();
    for (i, name) in ["db.core.contract", "db.core.statement"]
        .into_iter()
        .enumerate()
    {
        let count = 60 + 30 * i;
        let records = synth::records(count, 512, fx.keys.len(), START, 40 + i as u64);
        let scan = fx.scan_file(&format!("{name}.scan"), &fx.good_scan(&records));
        flags.extend([
            "--collection".to_owned(),
            format!("{name}:{START}:{END}"),
            "--scan-file".to_owned(),
            format!("{name}={}", scan.display()),
        ]);
        expected.push((name, count));
    }
    (flags, expected)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn collections_run_at_once_and_the_manifest_keeps_their_order() {
    let fx = Fixture::new().await;
    let records = synth::records(40, 512, fx.keys.len(), START, 3);
    let scan = fx.scan_file("claimant.scan", &fx.good_scan(&records));
    let (mut flags, more) = more_collections(&fx);
    flags.extend(["--workers", "2", "--collections-at-once", "3"].map(str::to_owned));
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    let output = fx.run(&scan, &flags).await;
    assert!(output.status.success(), "{}", stderr(&output));

    let manifest = Manifest::parse(&std::fs::read_to_string(fx.manifest_path()).expect("manifest"))
        .expect("a valid manifest");
    let got: Vec<(String, u64)> = manifest
        .collections
        .iter()
        .map(|c| (c.collection.name(), c.records))
        .collect();
    let mut want = vec![(COLLECTION.to_owned(), 40)];
    want.extend(more.iter().map(|(name, n)| (name.to_string(), *n as u64)));
    assert_eq!(got, want, "every collection, in the order given");
    for entry in &manifest.collections {
        let rows: usize = entry
            .files
            .iter()
            .map(|f| read_parquet(&fx.out().join(&f.key)).len())
            .sum();
        assert_eq!(rows as u64, entry.records, "{}", entry.collection);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_collection_fails_no_further_one_starts() {
    let fx = Fixture::new().await;
    let records = synth::records(5, 512, fx.keys.len(), START, 9);
    let text = fx.good_scan(&records);
    let scan = fx.scan_file("claimant.scan", &text[..text.len() - 300]);
    let (mut flags, _) = more_collections(&fx);
    flags.extend(["--collections-at-once", "1"].map(str::to_owned));
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    let output = fx.run(&scan, &flags).await;
    assert!(!output.status.success());
    assert!(stderr(&output).contains("truncated"), "{}", stderr(&output));
    assert!(!fx.manifest_path().exists());
    for table in ["core_contract", "core_statement"] {
        assert!(
            !fx.out().join(table).exists(),
            "{table} started after the first collection failed"
        );
    }
}
