//! The tables and views the table builder registers, read by a real engine: Spark with Hive
//! support (PyPI `pyspark`, local mode, a Derby metastore of its own) runs the DDL rendered
//! from the table builder's own specs over the extractor's output, Parquet and CSV-gzip,
//! and returns, byte for byte, records holding quotes, backslashes, `\n` (escaped, and raw
//! between JSON tokens), commas and non-ASCII text; the Hive view `v_<db>_<table>_latest`
//! returns the newest row per id across runs. The original's own CSV dialect (Python's
//! `csv` module, quotes only where needed) reads exactly through `<db>_<table>_legacy`.
//!
//! Needs Java 17 and pyspark: `ci/test.sh` installs the pinned pyspark and runs this with
//! `--run-ignored only`; by hand, `source ci/tools.sh && intraday_spark_tools` first.

use std::path::{Path, PathBuf};
use std::process::Command;

use intraday_core::{Collection, DatabaseName, OutputFormat, S3Uri};
use intraday_extractor::loopback_dks::LoopbackDks;
use intraday_extractor::synth::{self, SynthKey, SynthRecord};
use intraday_table_builder::tables;
use intraday_testkit as kit;
use serde_json::{Value, json};

const COLLECTION: &str = "db.core.claimant";
/// Two hourly runs: 2024-03-11 10:30 and 11:30 UTC, each its own window.
const RUNS: [(u64, u64, u64, &str); 2] = [
    (
        1_710_149_400_001,
        1_710_153_000_000,
        1_710_153_000_000,
        "20240311-1030",
    ),
    (
        1_710_153_000_000,
        1_710_156_600_000,
        1_710_156_600_000,
        "20240311-1130",
    ),
];
/// Stands in for the output bucket in the specs; the DDL points at the local folder instead.
const FAKE_ROOT: &str = "s3://spark-test-output/data/";

/// Documents as the producer encrypts them: every case the CSV SerDe and Parquet must keep.
fn documents() -> Vec<(&'static str, &'static str)> {
    vec![
        (
            "A",
            r#"{"_id":{"claimantId":"A"},"text":"say \"hi\", then a \\ backslash, \\n literally and \n escaped","name":"Zoë 日本"}"#,
        ),
        (
            "B",
            "{\"_id\":{\"claimantId\":\"B\"},\n  \"quote\":\"\\\"\",\r\n  \"sep\":\",\\t,\"}",
        ),
        (
            "C",
            r#"{"_id":{"claimantId":"C"},"path":"C:\\temp\\new","empty":""}"#,
        ),
        // A's newer version, in the second run: the view must return it.
        (
            "A",
            r#"{"_id":{"claimantId":"A"},"text":"newer \"A\"","version":2}"#,
        ),
    ]
}

fn record(id: &str, document: &str, timestamp_ms: u64) -> SynthRecord {
    let mut row = vec![0x01, 0xfe];
    row.extend_from_slice(id.as_bytes());
    SynthRecord {
        row,
        timestamp_ms,
        id_json: format!(r#"{{"claimantId": "{id}"}}"#),
        id_compact: format!(r#"{{"claimantId":"{id}"}}"#),
        document: document.to_owned(),
        key_index: 0,
    }
}

/// What each run extracts: the first three documents in run 1, A's newer one in run 2.
fn runs() -> Vec<Vec<SynthRecord>> {
    let docs = documents();
    let (first, second) = (RUNS[0].0, RUNS[1].0);
    vec![
        docs[..3]
            .iter()
            .enumerate()
            .map(|(i, (id, doc))| record(id, doc, first + 10 * (i as u64 + 1)))
            .collect(),
        vec![record(docs[3].0, docs[3].1, second + 10)],
    ]
}

async fn extract(
    dir: &Path,
    dks: &LoopbackDks,
    keys: &[SynthKey],
    format: OutputFormat,
) -> PathBuf {
    let out = dir.join(format!("out-{}", format.as_str()));
    for (i, records) in runs().iter().enumerate() {
        let (start, end, trigger, _) = RUNS[i];
        let mut text = Vec::new();
        synth::write_scan(&mut text, records, keys, 3).expect("scan text");
        let scan = dir.join(format!("scan-{i}"));
        std::fs::write(&scan, text).expect("write scan");
        let mut command = Command::new(env!("CARGO_BIN_EXE_intraday-extractor"));
        command
            .args(["--correlation-id", &format!("run-{i}")])
            .args(["--trigger-time-ms", &trigger.to_string()])
            .args(["--collection", &format!("{COLLECTION}:{start}:{end}")])
            .args(["--pii", COLLECTION, "--format", format.as_str()])
            .arg("--scan-file")
            .arg(format!("{COLLECTION}={}", scan.display()))
            .arg("--output")
            .arg(&out)
            .args(["--dks-url", &dks.url()])
            .env("RUST_LOG", "warn");
        let output = tokio::task::spawn_blocking(move || command.output().expect("extractor"))
            .await
            .expect("join");
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    out
}

/// The statements the table builder's specs amount to, pointed at the local output.
fn statements(database: &str, format: OutputFormat, out: &Path) -> Vec<String> {
    let collection = Collection::parse(COLLECTION).expect("collection");
    let name = DatabaseName::new(database).expect("database");
    let folder: S3Uri = format!("{FAKE_ROOT}{}/", collection.hive_table())
        .parse()
        .expect("uri");
    let local = format!("file://{}/", out.display());
    let table = tables::table_spec(&collection, format, &folder);
    let mut statements = vec![
        format!("CREATE DATABASE `{database}`"),
        tables::hive_ddl(database, &table).replace(FAKE_ROOT, &local),
    ];
    for (.., run) in RUNS {
        let partition = intraday_aws::PartitionSpec {
            values: vec![run.to_owned()],
            location: format!("{folder}run={run}/"),
        };
        statements.push(
            tables::hive_partition_ddl(database, &table, &partition).replace(FAKE_ROOT, &local),
        );
    }
    statements.push(tables::hive_view_ddl(
        database,
        &tables::hive_view(&name, &collection, format),
    ));
    statements
}

/// A field as Python's `csv.writer` (the `excel` dialect) wrote the original's rows: quoted
/// only when it holds a comma, a quote or a line break, quotes doubled.
fn python_csv_field(field: &str) -> String {
    if field.contains([',', '"', '\r', '\n']) {
        format!("\"{}\"", field.replace('"', "\"\""))
    } else {
        field.to_owned()
    }
}

/// The original's output for one run folder: `(id as Python's repr, timestamp, record)`
/// lines, as its step wrote them (without LZO, which this Spark has no codec for).
fn legacy_statements(dir: &Path) -> (Vec<String>, Vec<Value>) {
    let collection = Collection::parse(COLLECTION).expect("collection");
    let folder: S3Uri = format!("{FAKE_ROOT}{}/", tables::legacy_folder(&collection))
        .parse()
        .expect("uri");
    let run = "20240101-1030";
    let local_root = dir.join("legacy");
    let run_dir = local_root
        .join(tables::legacy_folder(&collection))
        .join(run);
    std::fs::create_dir_all(&run_dir).expect("legacy folder");
    let rows: Vec<(String, u64, &str)> = documents()[..3]
        .iter()
        .enumerate()
        .filter(|(_, (_, doc))| !doc.contains('\n'))
        .map(|(i, (id, doc))| {
            (
                format!("{{'claimantId': '{id}'}}"),
                1_704_100_000_000 + i as u64,
                *doc,
            )
        })
        .collect();
    let text: String = rows
        .iter()
        .map(|(id, ts, doc)| {
            format!(
                "{},{},{}\n",
                python_csv_field(id),
                python_csv_field(&ts.to_string()),
                python_csv_field(doc)
            )
        })
        .collect();
    std::fs::write(run_dir.join("part-00000"), text).expect("legacy file");
    let table = tables::legacy_table_spec(&collection, &folder);
    let local = format!("file://{}/", local_root.display());
    let partition = intraday_aws::PartitionSpec {
        values: vec![run.to_owned()],
        location: format!("{folder}{run}/"),
    };
    let statements = vec![
        "CREATE DATABASE `intraday_legacy`".to_owned(),
        tables::hive_ddl("intraday_legacy", &table).replace(FAKE_ROOT, &local),
        tables::hive_partition_ddl("intraday_legacy", &table, &partition)
            .replace(FAKE_ROOT, &local),
    ];
    let want = rows
        .iter()
        .map(|(id, ts, doc)| json!([id, ts.to_string(), doc, run]))
        .collect();
    (statements, want)
}

/// A document as the given format stores it: Parquet keeps every byte; the CSV turns a raw
/// line break (JSON whitespace) into a space so Hive's line reader sees one record a line.
fn stored(document: &str, format: OutputFormat) -> String {
    match format {
        OutputFormat::Parquet => document.to_owned(),
        OutputFormat::CsvGzip => document.replace(['\r', '\n'], " "),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs Java 17 and pyspark: ci/test.sh installs pyspark and runs it"]
async fn spark_reads_both_formats_through_the_tables_and_the_hive_view_exactly() {
    let dir = std::env::temp_dir().join(kit::unique("spark-hive"));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let dks = LoopbackDks::start().await.expect("dks");
    let keys = synth::keys(1, 5);
    dks.add_key(&keys[0].encrypted_key, &keys[0].plaintext);

    let mut plan_statements = Vec::new();
    let mut queries = serde_json::Map::new();
    for format in [OutputFormat::Parquet, OutputFormat::CsvGzip] {
        let out = extract(&dir, &dks, &keys, format).await;
        let database = format!("intraday_{}", format.as_str().replace('-', "_"));
        plan_statements.extend(statements(&database, format, &out));
        queries.insert(
            format!("{database}.table"),
            json!(format!(
                "SELECT id, CAST(record_timestamp AS BIGINT), record, run FROM {database}.core_claimant ORDER BY run, CAST(record_timestamp AS BIGINT)"
            )),
        );
        queries.insert(
            format!("{database}.view"),
            json!(format!(
                "SELECT id, CAST(record_timestamp AS BIGINT), record FROM {database}.v_core_claimant_latest ORDER BY id"
            )),
        );
    }
    let (legacy, legacy_want) = legacy_statements(&dir);
    plan_statements.extend(legacy);
    queries.insert(
        "legacy".to_owned(),
        json!("SELECT id, record_timestamp, record, run FROM intraday_legacy.core_claimant_legacy ORDER BY record_timestamp"),
    );
    let plan = dir.join("plan.json");
    std::fs::write(
        &plan,
        json!({"statements": plan_statements, "queries": queries}).to_string(),
    )
    .expect("plan");
    let result = dir.join("result.json");
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/spark/hive_sql.py");
    let python = std::env::var("INTRADAY_PYTHON").unwrap_or_else(|_| "python3".to_owned());
    let (plan_arg, result_arg) = (plan.clone(), result.clone());
    let output = tokio::task::spawn_blocking(move || {
        Command::new(&python)
            .arg(script)
            .arg(plan_arg)
            .arg(result_arg)
            .output()
            .unwrap_or_else(|e| panic!("{python}: {e}; source ci/tools.sh first"))
    })
    .await
    .expect("join");
    assert!(
        output.status.success(),
        "Spark failed (is pyspark installed? `source ci/tools.sh && intraday_spark_tools`):\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let results: Value =
        serde_json::from_str(&std::fs::read_to_string(&result).expect("result")).expect("JSON");

    let docs = documents();
    let all = runs();
    for format in [OutputFormat::Parquet, OutputFormat::CsvGzip] {
        let database = format!("intraday_{}", format.as_str().replace('-', "_"));
        let mut want = Vec::new();
        for (i, records) in all.iter().enumerate() {
            for r in records {
                want.push(json!([
                    r.id_compact,
                    r.timestamp_ms,
                    stored(&r.document, format),
                    RUNS[i].3
                ]));
            }
        }
        assert_eq!(
            results[format!("{database}.table")],
            Value::Array(want),
            "{database}: every record back exactly"
        );
        let newest = |id: &str| {
            all.iter()
                .flatten()
                .filter(|r| r.id_compact == format!(r#"{{"claimantId":"{id}"}}"#))
                .max_by_key(|r| r.timestamp_ms)
                .map(|r| json!([r.id_compact, r.timestamp_ms, stored(&r.document, format)]))
                .expect("record")
        };
        assert_eq!(
            results[format!("{database}.view")],
            json!([newest("A"), newest("B"), newest("C")]),
            "{database}: the latest row per id"
        );
        assert_eq!(
            results[format!("{database}.view")][0][2],
            json!(stored(docs[3].1, format))
        );
    }
    assert_eq!(results["legacy"].as_array().map(Vec::len), Some(2));
    assert_eq!(
        results["legacy"],
        Value::Array(legacy_want),
        "the original's CSV dialect through the legacy table"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
