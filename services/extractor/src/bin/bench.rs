//! `intraday-extractor-bench`: generates realistic scan output (1 KB and 8 KB documents under
//! a handful of data keys), then measures each stage on one thread and the real binary end
//! to end, with a data key service on loopback so the key path is the real one.
//!
//! ```sh
//! cargo build --release -p intraday-extractor --bins
//! target/release/intraday-extractor-bench [--records-1k N] [--records-8k N] [--keys N] [--dir DIR]
//! ```
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
use intraday_extractor::scan::{Cell, split_cell_line, unescape};
use intraday_extractor::synth;
use intraday_extractor::writer::{Chunk, Roller, WriterSettings};

const START: u64 = 1_710_149_400_001;
const END: u64 = 1_710_153_000_000;

struct Options {
    records_1k: usize,
    records_8k: usize,
    keys: usize,
    dir: PathBuf,
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
            other => {
                return Err(format!(
                    "unknown flag `{other}`; use --records-1k N --records-8k N --keys N --dir DIR"
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

async fn measure(
    options: &Options,
    dks: &LoopbackDks,
    keys: &[synth::SynthKey],
    doc_size: usize,
    count: usize,
) -> Result<Vec<Row>, String> {
    let records = synth::records(count, doc_size, keys.len(), START, doc_size as u64);
    let mut scan = Vec::new();
    synth::write_scan(&mut scan, &records, keys, 1).map_err(|e| e.to_string())?;
    let document_bytes: u64 = records.iter().map(|r| r.document.len() as u64).sum();
    drop(records);
    let scan_path = options.dir.join(format!("scan-{doc_size}.txt"));
    write_file(&scan_path, &scan)?;
    let scan_bytes = scan.len() as u64;
    let mut rows = Vec::new();

    // parse: find the cell lines and split each at its separators.
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

    // unescape: row keys and values back to bytes.
    let started = Instant::now();
    let mut cells = Vec::with_capacity(parts.len());
    for (i, p) in parts.iter().enumerate() {
        cells.push(Cell {
            row: unescape(p.row).map_err(|e| format!("unescape: {e}"))?,
            timestamp_ms: p.timestamp_ms,
            value: unescape(p.value).map_err(|e| format!("unescape: {e}"))?,
            line: i as u64 + 1,
        });
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
    let value_bytes: u64 = cells.iter().map(|c| c.value.len() as u64).sum();
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
            .any(|(id, enc, _): &(String, String, KeyAnswer)| {
                *id == s.key_id && *enc == s.encrypted_key
            })
        {
            let answer = cache
                .get(&s.key_id, &s.encrypted_key)
                .await
                .map_err(|e| e.to_string())?;
            answers.push((s.key_id.clone(), s.encrypted_key.clone(), answer));
        }
    }
    let key_time = started.elapsed();

    // decrypt: AES-128-CTR and the UTF-8 JSON check.
    let started = Instant::now();
    let mut decrypted: Vec<Record> = Vec::with_capacity(sealed.len());
    for s in sealed {
        let answer = answers
            .iter()
            .find(|(id, enc, _)| *id == s.key_id && *enc == s.encrypted_key)
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
    for (stage, format) in [
        ("encode Parquet (zstd)", OutputFormat::Parquet),
        ("encode CSV-gzip", OutputFormat::CsvGzip),
    ] {
        let input = decrypted.clone();
        let started = Instant::now();
        let mut roller = Roller::new(WriterSettings::new(format, 128 << 20));
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
            stage: stage.to_owned(),
            records: decrypted.len(),
            bytes: record_bytes,
            elapsed,
            note: format!(
                "records; {:.1} MB out ({:.1}x)",
                out_bytes as f64 / 1e6,
                record_bytes as f64 / out_bytes.max(1) as f64
            ),
        });
        if format == OutputFormat::Parquet {
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

    // End to end with 1 to N workers, each run pinned to as many cores (taskset), so the
    // scaling is the binary's and not the scheduler's: N workers on N cores against 1 on 1.
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut one = None;
    for workers in 1..=cpus {
        let mut row = end_to_end(options, dks, &scan_path, scan_bytes, count, workers).await?;
        let secs = row.elapsed.as_secs_f64();
        let base = *one.get_or_insert(secs);
        row.note = format!("{}; {:.2}x one worker on one core", row.note, base / secs);
        rows.push(row);
    }
    Ok(rows)
}

fn write_file(path: &Path, bytes: &[u8]) -> Result<(), String> {
    let file = std::fs::File::create(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut out = BufWriter::new(file);
    out.write_all(bytes)
        .and_then(|()| out.flush())
        .map_err(|e| format!("{}: {e}", path.display()))
}

/// The real binary on the scan file, to a local directory, keys from the loopback service.
/// Its peak RSS is its `VmHWM`, sampled until it exits (the high-water mark only grows).
async fn end_to_end(
    options: &Options,
    dks: &LoopbackDks,
    scan: &Path,
    scan_bytes: u64,
    count: usize,
    workers: usize,
) -> Result<Row, String> {
    let binary = std::env::current_exe()
        .map_err(|e| e.to_string())?
        .with_file_name("intraday-extractor");
    let out = options.dir.join("e2e-out");
    let mut command = Command::new("taskset");
    command
        .args(["-c", &format!("0-{}", workers - 1)])
        .arg(&binary)
        .args(["--workers", &workers.to_string()]);
    command
        .args([
            "--correlation-id",
            "bench",
            "--trigger-time-ms",
            "1710153000000",
        ])
        .args(["--collection", &format!("db.core.claimant:{START}:{END}")])
        .arg("--scan-file")
        .arg(format!("db.core.claimant={}", scan.display()))
        .arg("--output")
        .arg(&out)
        .args(["--dks-url", &dks.url()])
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let started = Instant::now();
    let mut child = command
        .spawn()
        .map_err(|e| format!("{}: {e}", binary.display()))?;
    let status_path = format!("/proc/{}/status", child.id());
    let mut peak_kb = 0u64;
    let status = loop {
        if let Ok(text) = std::fs::read_to_string(&status_path) {
            if let Some(kb) = text
                .lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            {
                peak_kb = peak_kb.max(kb);
            }
        }
        match child.try_wait().map_err(|e| e.to_string())? {
            Some(status) => break status,
            None => tokio::time::sleep(Duration::from_millis(5)).await,
        }
    };
    let elapsed = started.elapsed();
    if !status.success() {
        let mut stderr = String::new();
        if let Some(mut pipe) = child.stderr.take() {
            let _ = std::io::Read::read_to_string(&mut pipe, &mut stderr);
        }
        return Err(format!("the extractor failed: {stderr}"));
    }
    let _ = std::fs::remove_dir_all(&out);
    Ok(Row {
        stage: format!(
            "**end to end** (binary, {workers} worker{} on {workers} core{})",
            if workers == 1 { "" } else { "s" },
            if workers == 1 { "" } else { "s" }
        ),
        records: count,
        bytes: scan_bytes,
        elapsed,
        note: format!("scan text; peak RSS {:.0} MiB", peak_kb as f64 / 1024.0),
    })
}
