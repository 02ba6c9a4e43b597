//! `intraday-extractor-bench`: generates realistic scan output (1 KB and 8 KB documents under
//! a handful of data keys), then measures each stage on one thread and the real binary end
//! to end, with a data key service on loopback so the key path is the real one.
//!
//! ```sh
//! cargo build --release -p intraday-extractor --bins
//! target/release/intraday-extractor-bench [--records-1k N] [--records-8k N] [--keys N] [--dir DIR]
//!     [--python PYTHON] [--compression CODEC] [--shell-cells-per-second N]
//!     [--spark-submit PATH] [--runs N]
//! ```
//!
//! `--compression` is passed to the binary's end-to-end runs (its default otherwise).
//!
//! Each end-to-end row is the median of `--runs` runs (3 by default), taken in turns with
//! the other rows' runs, so a machine that slows down for a while slows every row alike; the
//! row names the fastest and slowest too. One run of each moved the ratio of two workers
//! to one by up to 0.15x on this project's machine.
//!
//! With `--python` (an interpreter with pycryptodome; `ci/bench.sh` passes one), the
//! original's per-record Python path (`bench/original_path.py`) runs on the same scan, pinned
//! to one core like the one-worker run, and each end-to-end row says how many times faster
//! than it the extractor was.
//!
//! With the test kit's stand-in `hbase` built beside it (`intraday-hbase-standin`;
//! `ci/bench.sh` builds it), the 1 KB scan is also stored as a table of 16 regions and read
//! end to end through `hbase shell` range scans, K at once (`--scan-parallelism`, 1 to 8),
//! on every core: first as fast as the stand-in goes (it streams its rows, and shares the
//! cores with the extractor, as a shell on the primary node would), then with each shell
//! paced to `--shell-cells-per-second` (default 25,000), standing in for a shell slower than
//! the extractor. That pace is an assumption, not a measurement of HBase's JRuby shell.
//! With `--spark-submit` (pyspark's; `ci/bench.sh` passes it), the same table is also read by
//! the Spark application in local mode, a task per range.
//!
//! Prints a Markdown table: records/s and MB/s (10^6 bytes) per stage, and for the end-to-end
//! run its wall time and peak resident memory.

use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use intraday_core::OutputFormat;
use intraday_extractor::dks::{DksClient, DksSettings, RetryPolicy};
use intraday_extractor::keys::{KeyAnswer, KeyCache, KeyProvider};
use intraday_extractor::loopback_dks::LoopbackDks;
use intraday_extractor::output::Output;
use intraday_extractor::record::{self, Record};
use intraday_extractor::scan::{Cell, escape, split_cell_line, unescape};
use intraday_extractor::synth;
use intraday_extractor::writer::{Chunk, Codec, Roller, WriterSettings};

const START: u64 = 1_710_149_400_001;
const END: u64 = 1_710_153_000_000;

struct Options {
    records_1k: usize,
    records_8k: usize,
    keys: usize,
    dir: PathBuf,
    python: Option<PathBuf>,
    compression: Option<String>,
    /// The pace of the stand-in shell in the paced range-scan rows.
    shell_rate: u32,
    /// `spark-submit`, for the Spark rows.
    spark_submit: Option<PathBuf>,
    /// How many times each end-to-end row is run; it reports the median.
    runs: usize,
    /// Only write the scans, serve their keys and print the extractor's command for each,
    /// until stopped: for running the binary under a profiler.
    serve: bool,
}

struct Row {
    stage: String,
    records: usize,
    bytes: u64,
    elapsed: Duration,
    note: String,
}

impl Row {
    fn line(&self) -> String {
        let secs = self.elapsed.as_secs_f64().max(1e-9);
        format!(
            "| {} | {} | {:.0} | {:.1} | {:.3} | {} |",
            self.stage,
            self.records,
            self.records as f64 / secs,
            self.bytes as f64 / secs / 1e6,
            secs,
            self.note
        )
    }
}

fn main() -> ExitCode {
    let options = match options() {
        Ok(options) => options,
        Err(message) => {
            eprintln!("intraday-extractor-bench: {message}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("intraday-extractor-bench: no runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(bench(&options)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("intraday-extractor-bench: {message}");
            ExitCode::FAILURE
        }
    }
}

fn options() -> Result<Options, String> {
    let mut options = Options {
        records_1k: 100_000,
        records_8k: 20_000,
        keys: 4,
        dir: std::env::temp_dir().join(format!("intraday-extractor-bench-{}", std::process::id())),
        python: None,
        compression: None,
        shell_rate: 25_000,
        spark_submit: None,
        serve: false,
        runs: 3,
    };
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let mut value = || args.next().ok_or(format!("{flag} needs a value"));
        let number = |text: String| {
            text.parse::<usize>()
                .map_err(|_| format!("{flag}: `{text}` is not a number"))
        };
        match flag.as_str() {
            "--records-1k" => options.records_1k = number(value()?)?,
            "--records-8k" => options.records_8k = number(value()?)?,
            "--keys" => options.keys = number(value()?)?.max(1),
            "--dir" => options.dir = PathBuf::from(value()?),
            "--python" => options.python = Some(PathBuf::from(value()?)),
            "--compression" => options.compression = Some(value()?),
            "--spark-submit" => options.spark_submit = Some(PathBuf::from(value()?)),
            "--serve" => options.serve = true,
            "--runs" => options.runs = number(value()?)?.max(1),
            "--shell-cells-per-second" => {
                options.shell_rate = u32::try_from(number(value()?)?.max(1))
                    .map_err(|_| format!("{flag}: too large"))?;
            }
            other => {
                return Err(format!(
                    "unknown flag `{other}`; use --records-1k N --records-8k N --keys N --dir DIR --python PYTHON --compression CODEC --shell-cells-per-second N --spark-submit PATH --runs N --serve"
                ));
            }
        }
    }
    Ok(options)
}

async fn bench(options: &Options) -> Result<(), String> {
    std::fs::create_dir_all(&options.dir).map_err(|e| format!("{}: {e}", options.dir.display()))?;
    let dks = LoopbackDks::start().await.map_err(|e| e.to_string())?;
    let keys = synth::keys(options.keys, 99);
    for key in &keys {
        dks.add_key(&key.encrypted_key, &key.plaintext);
    }
    println!(
        "machine: {} CPUs; keys: {} data keys; DKS: {} (loopback, plain HTTP)\n",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        keys.len(),
        dks.url()
    );
    if options.serve {
        return serve(options, &dks, &keys).await;
    }
    for (size, count) in [(1024, options.records_1k), (8 * 1024, options.records_8k)] {
        if count == 0 {
            continue;
        }
        let rows = measure(options, &dks, &keys, size, count).await?;
        println!("### {} KB documents, {count} records\n", size / 1024);
        println!("| stage | records | records/s | MB/s | seconds | MB/s counts |");
        println!("|---|---|---|---|---|---|");
        for row in rows {
            println!("{}", row.line());
        }
        println!();
    }
    let _ = std::fs::remove_dir_all(&options.dir);
    Ok(())
}

/// Writes the scans and keeps the data key service up, printing the command that runs the
/// extractor on each scan on one core, e.g. under `perf record`.
async fn serve(
    options: &Options,
    dks: &LoopbackDks,
    keys: &[synth::SynthKey],
) -> Result<(), String> {
    for (size, count) in [(1024, options.records_1k), (8 * 1024, options.records_8k)] {
        if count == 0 {
            continue;
        }
        let (scan_path, _, _) = saved_scan(options, keys, size, count)?;
        let codec = options
            .compression
            .as_deref()
            .map(|codec| format!(" --compression {codec}"))
            .unwrap_or_default();
        println!(
            "{} KB, {count} records:\n  taskset -c 0 {} --workers 1{codec} --correlation-id bench --trigger-time-ms {END} --collection db.core.claimant:{START}:{END} --scan-file db.core.claimant={} --output {} --dks-url {}\n",
            size / 1024,
            sibling("intraday-extractor")?.display(),
            scan_path.display(),
            options.dir.join(format!("serve-out-{size}")).display(),
            dks.url()
        );
    }
    println!("serving keys until stopped (Ctrl-C)");
    std::future::pending::<()>().await;
    Ok(())
}

/// The generated scan of `count` documents of about `size` bytes, written to the bench's
/// folder: its path, its text, and the documents' bytes.
fn saved_scan(
    options: &Options,
    keys: &[synth::SynthKey],
    size: usize,
    count: usize,
) -> Result<(PathBuf, Vec<u8>, u64), String> {
    let records = synth::records(count, size, keys.len(), START, size as u64);
    let mut scan = Vec::new();
    synth::write_scan(&mut scan, &records, keys, 1).map_err(|e| e.to_string())?;
    let document_bytes = records.iter().map(|r| r.document.len() as u64).sum();
    let path = options.dir.join(format!("scan-{size}.txt"));
    write_file(&path, &scan)?;
    Ok((path, scan, document_bytes))
}

/// A binary built beside the bench (the extractor, the stand-in `hbase`).
fn sibling(name: &str) -> Result<PathBuf, String> {
    Ok(std::env::current_exe()
        .map_err(|e| e.to_string())?
        .with_file_name(name))
}

async fn measure(
    options: &Options,
    dks: &LoopbackDks,
    keys: &[synth::SynthKey],
    doc_size: usize,
    count: usize,
) -> Result<Vec<Row>, String> {
    let (scan_path, scan, document_bytes) = saved_scan(options, keys, doc_size, count)?;
    let scan_bytes = scan.len() as u64;
    // The stand-in `hbase` and its table, for the range-scan rows (1 KB documents only).
    let standin = sibling("intraday-hbase-standin")?;
    let table = options.dir.join(format!("hbase-{doc_size}"));
    let ranges_table = doc_size == 1024 && standin.is_file();
    if ranges_table {
        store_table(&scan, &table)?;
    }
    let mut rows = Vec::new();

    // parse: find the cell lines and split each at its separators.
    let scan = bytes::Bytes::from(scan);
    let lines: Vec<&[u8]> = scan
        .split(|&b| b == b'\n')
        .filter(|l| l.starts_with(b" "))
        .collect();
    let started = Instant::now();
    let mut parts = Vec::with_capacity(lines.len());
    for line in &lines {
        parts.push(split_cell_line(line).map_err(|e| format!("parse: {e}"))?);
    }
    rows.push(Row {
        stage: "parse (split cell lines)".to_owned(),
        records: parts.len(),
        bytes: scan_bytes,
        elapsed: started.elapsed(),
        note: "scan text".to_owned(),
    });

    // unescape: row keys back to bytes; a value stays a slice of the scan, as the reader
    // hands it on, and is unescaped when its envelope is read.
    let started = Instant::now();
    let mut cells = Vec::with_capacity(parts.len());
    for (i, p) in parts.iter().enumerate() {
        cells.push(Cell::printed(
            unescape(p.row).map_err(|e| format!("unescape: {e}"))?,
            p.timestamp_ms,
            scan.slice_ref(p.value),
            i as u64 + 1,
        ));
    }
    rows.push(Row {
        stage: "unescape".to_owned(),
        records: cells.len(),
        bytes: scan_bytes,
        elapsed: started.elapsed(),
        note: "scan text".to_owned(),
    });
    drop(parts);
    drop(lines);
    drop(scan);

    // envelope: the JSON envelope and the base64 ciphertext.
    let value_bytes: u64 = cells.iter().map(|c| c.printed_value().len() as u64).sum();
    let started = Instant::now();
    let mut sealed = Vec::with_capacity(cells.len());
    for cell in cells {
        sealed.push(record::open(cell).map_err(|r| format!("envelope: {}", r.reason))?);
    }
    rows.push(Row {
        stage: "envelope (JSON + base64)".to_owned(),
        records: sealed.len(),
        bytes: value_bytes,
        elapsed: started.elapsed(),
        note: "cell values".to_owned(),
    });

    // keys: each distinct data key from the data key service, through the cache.
    let client = DksClient::new(DksSettings {
        url: dks.url(),
        tls: None,
        correlation_id: "bench".to_owned(),
        retry: RetryPolicy::default(),
    })
    .map_err(|e| e.to_string())?;
    let cache = Arc::new(KeyCache::new(KeyProvider::Dks(Box::new(client))));
    let started = Instant::now();
    let mut answers = Vec::new();
    for s in &sealed {
        if !answers
            .iter()
            .any(|(id, enc, _): &(String, String, KeyAnswer)| s.has_key(id, enc))
        {
            let answer = cache
                .get(s.key_id(), s.encrypted_key())
                .await
                .map_err(|e| e.to_string())?;
            answers.push((s.key_id().to_owned(), s.encrypted_key().to_owned(), answer));
        }
    }
    let key_time = started.elapsed();

    // decrypt: AES-128-CTR and the UTF-8 JSON check.
    let started = Instant::now();
    let mut decrypted: Vec<Record> = Vec::with_capacity(sealed.len());
    for s in sealed {
        let answer = answers
            .iter()
            .find(|(id, enc, _)| s.has_key(id, enc))
            .map(|(_, _, a)| a);
        let Some(KeyAnswer::Key(key)) = answer else {
            return Err("a key was refused".to_owned());
        };
        decrypted.push(record::decrypt(s, key).map_err(|r| r.reason)?);
    }
    rows.push(Row {
        stage: "decrypt (AES-CTR + JSON check)".to_owned(),
        records: decrypted.len(),
        bytes: document_bytes,
        elapsed: started.elapsed(),
        note: format!(
            "documents; {} keys fetched in {:.1} ms",
            answers.len(),
            key_time.as_secs_f64() * 1e3
        ),
    });

    // encode: Parquet (zstd), and CSV-gzip for comparison.
    let record_bytes: u64 = decrypted
        .iter()
        .map(|r| (r.id.len() + r.record.len() + 8) as u64)
        .sum();
    let mut encoded = Vec::new();
    let parquet = |codec: Codec| {
        (
            format!("encode Parquet ({codec})"),
            OutputFormat::Parquet,
            codec,
        )
    };
    for (stage, format, codec) in [
        parquet(Codec::DEFAULT),
        parquet(Codec::Zstd(1)),
        parquet(Codec::Snappy),
        parquet(Codec::Lz4),
        parquet(Codec::None),
        (
            "encode CSV-gzip (level 1)".to_owned(),
            OutputFormat::CsvGzip,
            Codec::DEFAULT,
        ),
    ] {
        let input = decrypted.clone();
        let started = Instant::now();
        let mut settings = WriterSettings::new(format, 128 << 20);
        settings.codec = codec;
        let mut roller = Roller::new(settings);
        let mut chunks = Vec::new();
        for r in input {
            roller.push(r).map_err(|e| e.to_string())?;
        }
        chunks.extend(roller.drain());
        chunks.extend(roller.finish().map_err(|e| e.to_string())?);
        let elapsed = started.elapsed();
        let out_bytes: u64 = chunks
            .iter()
            .map(|c| match c {
                Chunk::Bytes(b) => b.len() as u64,
                Chunk::EndFile { .. } => 0,
            })
            .sum();
        rows.push(Row {
            stage,
            records: decrypted.len(),
            bytes: record_bytes,
            elapsed,
            note: format!(
                "records; {:.1} MB out ({:.1}x)",
                out_bytes as f64 / 1e6,
                record_bytes as f64 / out_bytes.max(1) as f64
            ),
        });
        if format == OutputFormat::Parquet && codec == Codec::DEFAULT {
            encoded = chunks;
        }
    }

    // write: the Parquet bytes to a local file, hashed, synced and renamed into place.
    let output = Output::local(options.dir.join("stage-out")).map_err(|e| e.to_string())?;
    let out_bytes: u64 = encoded
        .iter()
        .map(|c| match c {
            Chunk::Bytes(b) => b.len() as u64,
            Chunk::EndFile { .. } => 0,
        })
        .sum();
    let started = Instant::now();
    let mut writer = None;
    let mut files = 0;
    for chunk in encoded {
        match chunk {
            Chunk::Bytes(bytes) => {
                if writer.is_none() {
                    writer = Some(
                        output
                            .create(&format!("part-{files:05}.parquet"), "x", &[])
                            .await
                            .map_err(|e| e.to_string())?,
                    );
                    files += 1;
                }
                if let Some(w) = writer.as_mut() {
                    w.write(bytes).await.map_err(|e| e.to_string())?;
                }
            }
            Chunk::EndFile { .. } => {
                if let Some(w) = writer.take() {
                    w.finish().await.map_err(|e| e.to_string())?;
                }
            }
        }
    }
    rows.push(Row {
        stage: "write (local file + SHA-256)".to_owned(),
        records: decrypted.len(),
        bytes: out_bytes,
        elapsed: started.elapsed(),
        note: format!("Parquet bytes, {files} file(s)"),
    });
    drop(decrypted);

    let python = match &options.python {
        Some(python) => {
            let row = original_path(options, python, dks, &scan_path, scan_bytes, count)?;
            let secs = row.elapsed.as_secs_f64();
            rows.push(row);
            Some(secs)
        }
        None => None,
    };
    // End to end with 1 to N workers, each run pinned to as many cores (taskset), so the
    // scaling is the binary's and not the scheduler's: N workers on N cores against 1 on 1.
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut one = None;
    let mut layouts: Vec<Layout> = (1..=cpus).map(Layout::Workers).collect();
    if cpus > 1 {
        layouts.push(Layout::Collections(cpus));
        layouts.push(Layout::Copies(cpus));
    }
    if ranges_table {
        layouts.extend([1, 2].map(|k| Layout::Ranges(k, cpus, None)));
        layouts.extend([1, 2, 4, 8].map(|k| Layout::Ranges(k, cpus, Some(options.shell_rate))));
    }
    let mut timed: Vec<Vec<Row>> = layouts.iter().map(|_| Vec::new()).collect();
    for _ in 0..options.runs {
        for (layout, runs) in layouts.iter().zip(&mut timed) {
            let source = match layout {
                Layout::Ranges(..) => Source::Hbase {
                    command: &standin,
                    data: &table,
                },
                _ => Source::File(&scan_path),
            };
            runs.push(end_to_end(options, dks, source, scan_bytes, count, *layout).await?);
        }
    }
    for mut runs in timed {
        runs.sort_by_key(|row| row.elapsed);
        let (fastest, slowest) = match (runs.first(), runs.last()) {
            (Some(first), Some(last)) => (first.elapsed, last.elapsed),
            _ => continue,
        };
        let mut row = runs.swap_remove(runs.len() / 2);
        if options.runs > 1 {
            row.note = format!(
                "{}; median of {} runs ({:.3}–{:.3} s)",
                row.note,
                options.runs,
                fastest.as_secs_f64(),
                slowest.as_secs_f64()
            );
        }
        // Records per second against one worker on one core's.
        let rate = row.records as f64 / row.elapsed.as_secs_f64();
        let base = *one.get_or_insert(rate);
        row.note = format!("{}; {:.2}x one worker on one core", row.note, rate / base);
        if let Some(python) = python {
            let python_rate = count as f64 / python;
            row.note = format!(
                "{}; {:.1}x the original's Python",
                row.note,
                rate / python_rate
            );
        }
        rows.push(row);
    }
    if let (true, Some(spark_submit)) = (ranges_table, &options.spark_submit) {
        for (slots, rate) in [(cpus, None), (8, Some(options.shell_rate))] {
            let hbase = Source::Hbase {
                command: &standin,
                data: &table,
            };
            rows.push(spark(
                options,
                dks,
                spark_submit,
                hbase,
                scan_bytes,
                count,
                slots,
                rate,
            )?);
        }
    }
    Ok(rows)
}

/// The run as the Spark application (`spark/intraday_spark.py`) in local mode with `slots`
/// tasks at once, a task per range of the stored table: the same binary per range, and the
/// driver's plan and commit. The wall time includes Spark's own start (a JVM and the Python
/// workers), the fixed cost a Spark run adds.
#[allow(clippy::too_many_arguments)]
fn spark(
    options: &Options,
    dks: &LoopbackDks,
    spark_submit: &Path,
    source: Source<'_>,
    scan_bytes: u64,
    count: usize,
    slots: usize,
    rate: Option<u32>,
) -> Result<Row, String> {
    let Source::Hbase {
        command: hbase,
        data,
    } = source
    else {
        return Err("the Spark rows read the stored table".to_owned());
    };
    let binary = sibling("intraday-extractor")?;
    let out = options.dir.join("spark-out");
    let mut command = Command::new(spark_submit);
    command
        .args(["--master", &format!("local[{slots},2]")])
        .args(["--conf", "spark.speculation=false"])
        .args(["--conf", "spark.ui.enabled=false"])
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("spark/intraday_spark.py"))
        .arg("--extractor")
        .arg(&binary)
        .args(["--ranges", "16", "--"])
        .args([
            "--correlation-id",
            "bench",
            "--trigger-time-ms",
            "1710153000000",
            "--collection",
            &format!("db.core.claimant:{START}:{END}"),
            "--dks-url",
            &dks.url(),
        ])
        .arg("--output")
        .arg(&out)
        .arg("--hbase-command")
        .arg(hbase)
        .env("INTRADAY_HBASE_DATA", data)
        .env("RUST_LOG", "warn");
    if let Some(codec) = &options.compression {
        command.args(["--compression", codec]);
    }
    if let Some(rate) = rate {
        command.env("INTRADAY_HBASE_CELLS_PER_SECOND", rate.to_string());
    }
    let started = Instant::now();
    let output = command
        .output()
        .map_err(|e| format!("{}: {e}", spark_submit.display()))?;
    let elapsed = started.elapsed();
    if !output.status.success() {
        return Err(format!(
            "the Spark run failed: {}",
            String::from_utf8_lossy(&output.stdout)
        ));
    }
    let manifest: serde_json::Value = serde_json::from_slice(
        &std::fs::read(out.join("_manifests/bench.json")).map_err(|e| e.to_string())?,
    )
    .map_err(|e| e.to_string())?;
    let records = manifest["collections"][0]["records"].as_u64().unwrap_or(0);
    if records != count as u64 {
        return Err(format!("the Spark run wrote {records} records of {count}"));
    }
    let _ = std::fs::remove_dir_all(&out);
    Ok(Row {
        stage: format!(
            "Spark, local mode, {slots} tasks at once (stand-in{}, 16 ranges)",
            rate.map_or(String::new(), |r| format!(" paced to {r} cells/s"))
        ),
        records: count,
        bytes: scan_bytes,
        elapsed,
        note: "scan text; Spark's start included".to_owned(),
    })
}

/// The original's per-record Python over the same scan, pinned to one core. Its own
/// measurement (from the first line read to the last written) is used, so the
/// interpreter's start is not counted against it.
fn original_path(
    options: &Options,
    python: &Path,
    dks: &LoopbackDks,
    scan: &Path,
    scan_bytes: u64,
    count: usize,
) -> Result<Row, String> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("bench/original_path.py");
    let out = options.dir.join("original.csv");
    let output = Command::new("taskset")
        .args(["-c", "0"])
        .arg(python)
        .arg(&script)
        .arg("--scan")
        .arg(scan)
        .args(["--dks-url", &dks.url()])
        .arg("--out")
        .arg(&out)
        .output()
        .map_err(|e| format!("{}: {e}", python.display()))?;
    if !output.status.success() {
        return Err(format!(
            "the original's path failed: {}",
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    let report: serde_json::Value = serde_json::from_slice(&output.stdout)
        .map_err(|e| format!("the original's path printed no report: {e}"))?;
    let records = report["records"].as_u64().unwrap_or(0);
    if records != count as u64 {
        return Err(format!(
            "the original's path read {records} records of {count}"
        ));
    }
    let seconds = report["seconds"].as_f64().unwrap_or(0.0);
    let _ = std::fs::remove_file(&out);
    Ok(Row {
        stage: "the original's Python path (1 core)".to_owned(),
        records: count,
        bytes: scan_bytes,
        elapsed: Duration::from_secs_f64(seconds),
        note: "scan text; bench/original_path.py, CSV lines uncompressed".to_owned(),
    })
}

fn write_file(path: &Path, bytes: &[u8]) -> Result<(), String> {
    let file = std::fs::File::create(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut out = BufWriter::new(file);
    out.write_all(bytes)
        .and_then(|()| out.flush())
        .map_err(|e| format!("{}: {e}", path.display()))
}

/// How the binary is run end to end: one process with `workers` workers on as many
/// cores, one process with as many collections at once as workers, or independent
/// one-worker processes at once, each on a core of its own.
#[derive(Clone, Copy)]
enum Layout {
    Workers(usize),
    /// `n` collections (the same scan under `n` names) in one process, `n` workers.
    Collections(usize),
    Copies(usize),
    /// `k` range scans of the stored table at once through the stand-in `hbase shell`,
    /// `n` workers on `n` cores, each shell paced to so many cells a second or not.
    Ranges(usize, usize, Option<u32>),
}

/// Where the end-to-end run's scan comes from.
#[derive(Clone, Copy)]
enum Source<'a> {
    File(&'a Path),
    /// The stand-in `hbase` command over a directory of stored tables.
    Hbase {
        command: &'a Path,
        data: &'a Path,
    },
}

/// The scan's cells as the stand-in stores a table (`<row>\t<ts>\t<value>`, string-binary,
/// in row order) with 15 split keys, so the table has 16 regions.
fn store_table(scan: &[u8], dir: &Path) -> Result<(), String> {
    // Each cell line's row key as bytes (the order HBase keeps), beside the line's parts.
    let mut cells = Vec::new();
    for line in scan.split(|&b| b == b'\n').filter(|l| l.starts_with(b" ")) {
        let cell = split_cell_line(line).map_err(|e| format!("store the table: {e}"))?;
        let key = unescape(cell.row).map_err(|e| format!("store the table: {e}"))?;
        cells.push((key, cell));
    }
    cells.sort_by(|a, b| a.0.cmp(&b.0).then(b.1.timestamp_ms.cmp(&a.1.timestamp_ms)));
    let at = dir.join("core:claimant");
    std::fs::create_dir_all(&at).map_err(|e| format!("{}: {e}", at.display()))?;
    let mut text = Vec::with_capacity(scan.len());
    for (_, cell) in &cells {
        text.extend_from_slice(cell.row);
        text.extend_from_slice(format!("\t{}\t", cell.timestamp_ms).as_bytes());
        text.extend_from_slice(cell.value);
        text.push(b'\n');
    }
    write_file(&at.join("cells"), &text)?;
    let splits: String = (1..16)
        .map(|i| format!("{}\n", escape(&cells[i * cells.len() / 16].0)))
        .collect();
    write_file(&at.join("splits"), splits.as_bytes())
}

/// The real binary on the scan file, to a local directory, keys from the loopback service.
/// Its peak RSS is its `VmHWM` and its CPU time its utime + stime, sampled until it exits
/// (both only grow). With copies, records/s is theirs together, RSS the largest and CPU the
/// sum.
async fn end_to_end(
    options: &Options,
    dks: &LoopbackDks,
    source: Source<'_>,
    scan_bytes: u64,
    count: usize,
    layout: Layout,
) -> Result<Row, String> {
    let binary = sibling("intraday-extractor")?;
    let runs: Vec<(String, usize)> = match layout {
        Layout::Workers(n) | Layout::Collections(n) | Layout::Ranges(_, n, _) => {
            vec![(format!("0-{}", n - 1), n)]
        }
        Layout::Copies(n) => (0..n).map(|core| (core.to_string(), 1)).collect(),
    };
    let collections: Vec<String> = match layout {
        Layout::Collections(n) => (0..n).map(|i| format!("db.core.claimant{i}")).collect(),
        _ => vec!["db.core.claimant".to_owned()],
    };
    let started = Instant::now();
    let mut children = Vec::new();
    for (i, (cores, workers)) in runs.iter().enumerate() {
        let out = options.dir.join(format!("e2e-out-{i}"));
        let mut command = Command::new("taskset");
        command
            .args(["-c", cores])
            .arg(&binary)
            .args(["--workers", &workers.to_string()]);
        if let Some(codec) = &options.compression {
            command.args(["--compression", codec]);
        }
        command
            .args([
                "--correlation-id",
                "bench",
                "--trigger-time-ms",
                "1710153000000",
            ])
            .args(["--collections-at-once", &collections.len().to_string()]);
        for name in &collections {
            command.args(["--collection", &format!("{name}:{START}:{END}")]);
            if let Source::File(scan) = source {
                command
                    .arg("--scan-file")
                    .arg(format!("{name}={}", scan.display()));
            }
        }
        if let (
            Source::Hbase {
                command: hbase,
                data,
            },
            Layout::Ranges(k, _, rate),
        ) = (source, layout)
        {
            command
                .arg("--hbase-command")
                .arg(hbase)
                .args(["--scan-parallelism", &k.to_string()])
                .env("INTRADAY_HBASE_DATA", data);
            if let Some(rate) = rate {
                command.env("INTRADAY_HBASE_CELLS_PER_SECOND", rate.to_string());
            }
        }
        command
            .arg("--output")
            .arg(&out)
            .args(["--dks-url", &dks.url()])
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let child = command
            .spawn()
            .map_err(|e| format!("{}: {e}", binary.display()))?;
        children.push(Watched {
            status_path: format!("/proc/{}/status", child.id()),
            stat_path: format!("/proc/{}/stat", child.id()),
            child,
            out,
            peak_kb: 0,
            cpu_ticks: 0,
            child_ticks: 0,
            exited: None,
        });
    }
    while children.iter().any(|c| c.exited.is_none()) {
        for watched in children.iter_mut().filter(|c| c.exited.is_none()) {
            watched.sample();
            if let Some(status) = watched.child.try_wait().map_err(|e| e.to_string())? {
                watched.exited = Some(status);
            }
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let elapsed = started.elapsed();
    for watched in &mut children {
        if !watched.exited.is_some_and(|s| s.success()) {
            let mut stderr = String::new();
            if let Some(mut pipe) = watched.child.stderr.take() {
                let _ = std::io::Read::read_to_string(&mut pipe, &mut stderr);
            }
            return Err(format!("the extractor failed: {stderr}"));
        }
        let _ = std::fs::remove_dir_all(&watched.out);
    }
    let peak_kb = children.iter().map(|c| c.peak_kb).max().unwrap_or(0);
    let cpu_ticks: u64 = children.iter().map(|c| c.cpu_ticks).sum();
    let shell_ticks: u64 = children.iter().map(|c| c.child_ticks).sum();
    let plural = |n: usize, word: &str| format!("{n} {word}{}", if n == 1 { "" } else { "s" });
    let (stage, records, bytes) = match layout {
        Layout::Workers(n) => (
            format!(
                "**end to end** (binary, {} on {})",
                plural(n, "worker"),
                plural(n, "core")
            ),
            count,
            scan_bytes,
        ),
        Layout::Collections(n) => (
            format!("**end to end** (binary, {n} collections at once, {n} workers on {n} cores)"),
            count * n,
            scan_bytes * n as u64,
        ),
        Layout::Copies(n) => (
            format!("{n} one-worker binaries at once, a core each (the machine's ceiling)"),
            count * n,
            scan_bytes * n as u64,
        ),
        Layout::Ranges(k, n, rate) => (
            format!(
                "**end to end through `hbase shell`** (stand-in{}, {}, {} on {})",
                rate.map_or(String::new(), |r| format!(" paced to {r} cells/s")),
                plural(k, "range scan"),
                plural(n, "worker"),
                plural(n, "core")
            ),
            count,
            scan_bytes,
        ),
    };
    Ok(Row {
        stage,
        records,
        bytes,
        elapsed,
        note: format!(
            "scan text; peak RSS {:.0} MiB; CPU {:.2} s{}",
            peak_kb as f64 / 1024.0,
            // Linux reports these in USER_HZ, 100 a second on every common configuration.
            cpu_ticks as f64 / 100.0,
            match layout {
                Layout::Ranges(..) =>
                    format!(" (+ {:.2} s in the shells)", shell_ticks as f64 / 100.0),
                _ => String::new(),
            }
        ),
    })
}

/// A running extractor and what has been sampled of it.
struct Watched {
    child: std::process::Child,
    status_path: String,
    stat_path: String,
    out: PathBuf,
    peak_kb: u64,
    cpu_ticks: u64,
    /// cutime + cstime: the CPU of the children it has waited for (the shells).
    child_ticks: u64,
    exited: Option<std::process::ExitStatus>,
}

impl Watched {
    fn sample(&mut self) {
        if let Ok(text) = std::fs::read_to_string(&self.status_path) {
            if let Some(kb) = text
                .lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            {
                self.peak_kb = self.peak_kb.max(kb);
            }
        }
        // utime + stime (fields 14 and 15, after the parenthesised name), in clock ticks:
        // the last sample before the exit, so short of the total by at most one interval.
        if let Ok(text) = std::fs::read_to_string(&self.stat_path) {
            if let Some((_, rest)) = text.rsplit_once(')') {
                let fields: Vec<&str> = rest.split_whitespace().collect();
                let tick = |i: usize| fields.get(i).and_then(|f| f.parse::<u64>().ok());
                if let (Some(user), Some(system)) = (tick(11), tick(12)) {
                    self.cpu_ticks = self.cpu_ticks.max(user + system);
                }
                if let (Some(user), Some(system)) = (tick(13), tick(14)) {
                    self.child_ticks = self.child_ticks.max(user + system);
                }
            }
        }
    }
}
