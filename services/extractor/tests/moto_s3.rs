//! S3 output against moto server: multipart objects tagged as the original tagged them, the
//! manifest last, and stale files of an earlier attempt removed.

use std::process::{Command, Output as ProcessOutput};

use intraday_aws::Objects;
use intraday_core::S3Uri;
use intraday_events::Manifest;
use intraday_extractor::loopback_dks::LoopbackDks;
use intraday_extractor::output::{Output, PART_SIZE};
use intraday_extractor::synth;
use intraday_testkit as kit;
use intraday_testkit::faults::{Fault, FaultProxy};
use parquet::file::reader::{FileReader, SerializedFileReader};
use sha2::{Digest, Sha256};

const START: u64 = 1_710_149_400_001;
const END: u64 = 1_710_153_000_000;

fn uri(bucket: &str, key: &str) -> S3Uri {
    S3Uri::new(bucket, key).expect("valid uri")
}

fn tags(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut tags: Vec<(String, String)> = pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    tags.sort();
    tags
}

/// The statement collection's one reject (row `broken`, from [`write_scan_with_a_reject`])
/// is in the rejects file the manifest entry names, at `key`, tagged as its data is.
async fn assert_the_rejects_file(
    objects: &Objects,
    bucket: &str,
    entry: &intraday_events::CollectionManifest,
    key: &str,
) {
    assert_eq!(entry.rejects_file.as_deref(), Some(key));
    let at = uri(bucket, &format!("data/{key}"));
    let rejects = String::from_utf8(objects.get(&at).await.expect("rejects")).expect("utf-8");
    assert!(rejects.contains(r#""row_key":"broken""#), "{rejects}");
    assert_eq!(
        objects.tags(&at).await.expect("tags"),
        tags(&[("db", "core"), ("pii", "false"), ("table", "statement")])
    );
}

/// A data key service on loopback that knows `count` synthetic keys, and the keys.
async fn dks_with_keys(count: usize, seed: u64) -> (LoopbackDks, Vec<synth::SynthKey>) {
    let dks = LoopbackDks::start().await.expect("dks");
    let keys = synth::keys(count, seed);
    for key in &keys {
        dks.add_key(&key.encrypted_key, &key.plaintext);
    }
    (dks, keys)
}

/// The shell's output for `count` records of `size`-byte documents under `keys`.
fn scan_text(count: usize, size: usize, keys: &[synth::SynthKey], seed: u64) -> String {
    let records = synth::records(count, size, keys.len(), START, seed);
    let mut text = Vec::new();
    synth::write_scan(&mut text, &records, keys, seed).expect("scan");
    String::from_utf8(text).expect("utf-8")
}

/// A saved scan of `count` records of `size`-byte documents under `keys`, at `path`.
fn write_scan(
    path: &std::path::Path,
    count: usize,
    size: usize,
    keys: &[synth::SynthKey],
    seed: u64,
) {
    std::fs::write(path, scan_text(count, size, keys, seed)).expect("write");
}

/// A saved scan of `count` records, then one cell (row `broken`) whose value is not JSON: a
/// reject, counted in the `N row(s)` line as the shell would.
fn write_scan_with_a_reject(
    path: &std::path::Path,
    count: usize,
    size: usize,
    keys: &[synth::SynthKey],
    seed: u64,
) {
    let text = scan_text(count, size, keys, seed).replacen(
        &format!("{count} row(s)"),
        &format!(
            "{}\n{} row(s)",
            synth::cell_line(b"broken", START + 1, b"not json"),
            count + 1
        ),
        1,
    );
    std::fs::write(path, text).expect("write");
}

#[tokio::test]
async fn moto_an_object_larger_than_a_part_is_uploaded_in_parts_with_its_tags() {
    let aws = kit::aws().await;
    let bucket = kit::bucket(&aws).await;
    let objects = Objects::new(aws.s3());
    let output = Output::s3(objects.clone(), uri(&bucket, "data"));
    assert_eq!(output.root(), format!("s3://{bucket}/data/"));

    let mut writer = output
        .create(
            "core_claimant/run=20240311-1030/part-00000.parquet",
            "application/vnd.apache.parquet",
            &[("pii", "true"), ("db", "core"), ("table", "claimant")],
        )
        .await
        .expect("start");
    let mut expected = Vec::new();
    for i in 0..4u8 {
        let chunk = vec![i; 3 * 1024 * 1024];
        expected.extend_from_slice(&chunk);
        writer.write(chunk).await.expect("write");
    }
    assert!(expected.len() > PART_SIZE, "at least two parts");
    let written = writer.finish().await.expect("complete");
    assert_eq!(written.size, expected.len() as u64);
    let sha: String = Sha256::digest(&expected)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(written.sha256, sha);

    let at = uri(
        &bucket,
        "data/core_claimant/run=20240311-1030/part-00000.parquet",
    );
    assert_eq!(objects.get(&at).await.expect("get"), expected);
    assert_eq!(
        objects.tags(&at).await.expect("tags"),
        tags(&[("db", "core"), ("pii", "true"), ("table", "claimant")])
    );

    let mut aborted = output
        .create(
            "core_claimant/run=20240311-1030/part-00001.parquet",
            "x",
            &[],
        )
        .await
        .expect("start");
    aborted.write(vec![1; 10]).await.expect("write");
    aborted.abort().await;
    let listed = objects
        .list(&uri(&bucket, "data/core_claimant/"))
        .await
        .expect("list");
    assert_eq!(
        listed.len(),
        1,
        "an aborted upload leaves nothing: {listed:?}"
    );
    let kept = listed[0]
        .key
        .strip_prefix("data/")
        .expect("under the root")
        .to_owned();
    assert_eq!(
        output
            .clear(
                "core_claimant/run=20240311-1030/",
                "part-",
                std::slice::from_ref(&kept)
            )
            .await
            .expect("clear"),
        0,
        "a kept key stays"
    );
    assert!(!output.get(&kept).await.expect("get").is_empty());
    assert_eq!(
        output
            .clear("core_claimant/run=20240311-1030/", "part-", &[])
            .await
            .expect("clear"),
        1
    );
}

async fn run_binary(args: Vec<String>) -> ProcessOutput {
    let mut command = Command::new(env!("CARGO_BIN_EXE_intraday-extractor"));
    command
        .args(args)
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env_remove("AWS_PROFILE")
        .env_remove("AWS_ENDPOINT_URL")
        .env("RUST_LOG", "warn");
    tokio::task::spawn_blocking(move || command.output().expect("the binary runs"))
        .await
        .expect("join")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn moto_the_extractor_writes_tagged_files_and_the_manifest_to_s3() {
    let aws = kit::aws().await;
    let bucket = kit::bucket(&aws).await;
    let objects = Objects::new(aws.s3());
    let (dks, keys) = dks_with_keys(2, 21).await;
    let dir = std::env::temp_dir().join(kit::unique("extractor-s3"));
    std::fs::create_dir_all(&dir).expect("dir");

    let claimant_scan = dir.join("claimant.scan");
    write_scan(&claimant_scan, 120, 1024, &keys, 1);

    // The second collection has one reject, allowed by --max-rejects.
    let statement_scan = dir.join("statement.scan");
    write_scan_with_a_reject(&statement_scan, 30, 8 * 1024, &keys, 2);

    // A file an earlier attempt of this run left behind.
    let stale = uri(
        &bucket,
        "data/core_claimant/run=20240311-1030/part-scheduled-20240311-1030-00007.parquet",
    );
    objects
        .put(&stale, b"old".to_vec(), "x", &[])
        .await
        .expect("stale put");
    // A file of another run that shares the trigger minute: not ours to remove.
    let neighbour = uri(
        &bucket,
        "data/core_claimant/run=20240311-1030/part-other-run-00000.parquet",
    );
    objects
        .put(&neighbour, b"theirs".to_vec(), "x", &[])
        .await
        .expect("neighbour put");

    let output = run_binary(vec![
        "--correlation-id".into(),
        "scheduled-20240311-1030".into(),
        "--trigger-time-ms".into(),
        "1710153000000".into(),
        "--collection".into(),
        format!("db.core.claimant:{START}:{END}"),
        "--collection".into(),
        format!("db.core.statement:{START}:{END}"),
        "--pii".into(),
        "db.core.claimant".into(),
        "--scan-file".into(),
        format!("db.core.claimant={}", claimant_scan.display()),
        "--scan-file".into(),
        format!("db.core.statement={}", statement_scan.display()),
        "--output".into(),
        format!("s3://{bucket}/data"),
        "--dks-url".into(),
        dks.url(),
        "--max-rejects".into(),
        "1".into(),
        "--region".into(),
        kit::REGION.into(),
        "--endpoint-url".into(),
        kit::moto().into(),
    ])
    .await;
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );

    let manifest_uri = uri(&bucket, "data/_manifests/scheduled-20240311-1030.json");
    let manifest = Manifest::parse(
        &String::from_utf8(objects.get(&manifest_uri).await.expect("manifest")).expect("utf-8"),
    )
    .expect("valid manifest");
    assert_eq!(manifest.output, format!("s3://{bucket}/data/"));
    assert_eq!(manifest.collections.len(), 2);

    let claimant = &manifest.collections[0];
    assert_eq!((claimant.records, claimant.rejected), (120, 0));
    let statement = &manifest.collections[1];
    assert_eq!((statement.records, statement.rejected), (30, 1));

    for (entry, pii, table) in [
        (claimant, "true", "claimant"),
        (statement, "false", "statement"),
    ] {
        for file in &entry.files {
            let at = uri(&bucket, &format!("data/{}", file.key));
            let body = objects.get(&at).await.expect("data file");
            assert_eq!(body.len() as u64, file.size);
            let rows = SerializedFileReader::new(hyper::body::Bytes::from(body))
                .expect("parquet")
                .metadata()
                .file_metadata()
                .num_rows();
            assert_eq!(rows as u64, file.records);
            assert_eq!(
                objects.tags(&at).await.expect("tags"),
                tags(&[("db", "core"), ("pii", pii), ("table", table)]),
                "{}",
                file.key
            );
        }
    }
    assert_the_rejects_file(
        &objects,
        &bucket,
        statement,
        "_rejects/core_statement/run=20240311-1030/rejects-scheduled-20240311-1030.jsonl",
    )
    .await;

    let listed: Vec<String> = objects
        .list(&uri(&bucket, "data/core_claimant/"))
        .await
        .expect("list")
        .into_iter()
        .map(|o| o.key)
        .collect();
    assert_eq!(
        listed,
        [
            "data/core_claimant/run=20240311-1030/part-other-run-00000.parquet",
            "data/core_claimant/run=20240311-1030/part-scheduled-20240311-1030-00000.parquet"
        ],
        "the stale file is gone; another run's file in the same minute stays"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// S3 refusing every part: the encoder's writer task fails, the step fails naming the call,
/// and nothing is left behind, neither a data file, nor a manifest, nor an open upload.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn moto_a_part_s3_refuses_fails_the_step_and_leaves_nothing() {
    let aws = kit::aws().await;
    let bucket = kit::bucket(&aws).await;
    let objects = Objects::new(aws.s3());
    let proxy = FaultProxy::start(kit::moto()).await.expect("proxy");
    // More refusals than the SDK's attempts: every UploadPart of the run fails.
    proxy.fault_next("UploadPart", 1000, Fault::Refuse);
    let (dks, keys) = dks_with_keys(2, 23).await;
    let dir = std::env::temp_dir().join(kit::unique("extractor-s3-refused"));
    std::fs::create_dir_all(&dir).expect("dir");
    let scan = dir.join("claimant.scan");
    write_scan(&scan, 300, 1024, &keys, 3);

    let output = run_binary(vec![
        "--correlation-id".into(),
        "scheduled-20240311-1030".into(),
        "--trigger-time-ms".into(),
        "1710153000000".into(),
        "--collection".into(),
        format!("db.core.claimant:{START}:{END}"),
        "--scan-file".into(),
        format!("db.core.claimant={}", scan.display()),
        "--output".into(),
        format!("s3://{bucket}/data"),
        "--dks-url".into(),
        dks.url(),
        "--region".into(),
        kit::REGION.into(),
        "--endpoint-url".into(),
        proxy.endpoint(),
    ])
    .await;
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "the step must fail: {stderr}");
    assert!(stderr.contains("UploadPart"), "{stderr}");
    assert!(proxy.calls("UploadPart") > 0, "the part was tried");

    let listed = objects.list(&uri(&bucket, "data/")).await.expect("list");
    assert!(listed.is_empty(), "nothing is published: {listed:?}");
    let open = aws
        .s3()
        .list_multipart_uploads()
        .bucket(&bucket)
        .send()
        .await
        .expect("list uploads");
    assert!(
        open.uploads().is_empty(),
        "the failed upload is aborted: {:?}",
        open.uploads()
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// A run spread over Spark, its steps run by hand as the driver runs them, to S3: the tasks'
/// files, their task manifests, the collection's rejects merged into one tagged file, and
/// the run's manifest only from the commit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn moto_a_run_in_tasks_commits_one_manifest_and_one_rejects_file_to_s3() {
    let aws = kit::aws().await;
    let bucket = kit::bucket(&aws).await;
    let objects = Objects::new(aws.s3());
    let (dks, keys) = dks_with_keys(1, 33).await;
    let dir = std::env::temp_dir().join(kit::unique("extractor-s3-tasks"));
    std::fs::create_dir_all(&dir).expect("dir");
    let scan = dir.join("statement.scan");
    write_scan_with_a_reject(&scan, 40, 1024, &keys, 3);
    let args = |extra: &[&str]| -> Vec<String> {
        let mut args: Vec<String> = [
            "--correlation-id",
            "spark-1",
            "--trigger-time-ms",
            "1710153000000",
            "--collection",
            &format!("db.core.statement:{START}:{END}"),
            "--scan-file",
            &format!("db.core.statement={}", scan.display()),
            "--output",
            &format!("s3://{bucket}/data"),
            "--dks-url",
            &dks.url(),
            "--max-rejects",
            "1",
            "--region",
            kit::REGION,
            "--endpoint-url",
            kit::moto(),
        ]
        .iter()
        .map(|a| (*a).to_owned())
        .collect();
        args.extend(extra.iter().map(|a| (*a).to_owned()));
        args
    };
    let stdout = |output: &ProcessOutput| {
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stdout.clone()).expect("utf-8")
    };

    let plan = stdout(&run_binary(args(&["--plan"])).await);
    let tasks: Vec<&str> = plan.lines().collect();
    assert_eq!(
        tasks,
        [r#"{"index":0,"of":1,"collection":"db.core.statement"}"#]
    );
    let manifest_uri = uri(&bucket, "data/_manifests/spark-1.json");
    assert!(
        !objects.exists(&manifest_uri).await.expect("exists"),
        "a plan writes nothing"
    );

    let written: serde_json::Value =
        serde_json::from_str(&stdout(&run_binary(args(&["--task", tasks[0]])).await))
            .expect("the task manifest on stdout");
    assert_eq!(written["extracted"]["records"], 40, "{written}");
    assert_eq!(written["extracted"]["rejected"], 1, "{written}");
    assert!(
        objects
            .exists(&uri(&bucket, "data/_manifests/spark-1/task-00000.json"))
            .await
            .expect("exists")
    );
    assert!(
        !objects.exists(&manifest_uri).await.expect("exists"),
        "a task writes no run manifest"
    );

    // Another plan's count is refused, and nothing is published.
    let refused = run_binary(args(&["--commit", "2"])).await;
    assert!(!refused.status.success());
    let err = String::from_utf8_lossy(&refused.stderr);
    assert!(
        err.contains("task 0 of 2") || err.contains("task 1 of 2"),
        "{err}"
    );
    assert!(!objects.exists(&manifest_uri).await.expect("exists"));
    // So is a commit whose flags name other collections than the tasks extracted.
    let other: Vec<String> = args(&["--commit", "1"])
        .into_iter()
        .map(|a| a.replace("db.core.statement", "db.core.other"))
        .collect();
    let refused = run_binary(other).await;
    assert!(!refused.status.success());
    let err = String::from_utf8_lossy(&refused.stderr);
    assert!(
        err.contains(
            "extracted db.core.statement, which is not one of this run's --collection flags"
        ),
        "{err}"
    );
    assert!(!objects.exists(&manifest_uri).await.expect("exists"));

    stdout(&run_binary(args(&["--commit", "1"])).await);
    let manifest = Manifest::parse(
        &String::from_utf8(objects.get(&manifest_uri).await.expect("manifest")).expect("utf-8"),
    )
    .expect("valid manifest");
    let entry = &manifest.collections[0];
    assert_eq!((entry.records, entry.rejected), (40, 1));
    assert!(
        entry
            .files
            .iter()
            .all(|f| f.key.contains("/part-spark-1-t00000-")),
        "{entry:?}"
    );
    assert_the_rejects_file(
        &objects,
        &bucket,
        entry,
        "_rejects/core_statement/run=20240311-1030/rejects-spark-1.jsonl",
    )
    .await;
    let _ = std::fs::remove_dir_all(&dir);
}
