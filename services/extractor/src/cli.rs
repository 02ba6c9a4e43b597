//! The command line: flags to a [`RunConfig`], an [`Output`] and a key provider, then the
//! run. Every refusal names the flag and the value.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::Parser;
use intraday_aws::{AwsSettings, Objects};
use intraday_core::{
    Collection, CorrelationId, OutputFormat, S3Uri, Window, parse_collections_secret,
};
use intraday_events::Manifest;

use crate::ExtractorError;
use crate::dks::{DksClient, DksSettings, RetryPolicy, TlsFiles};
use crate::keys::{KeyCache, KeyProvider};
use crate::kms::KmsKeys;
use crate::output::Output;
use crate::run::{CollectionJob, RunConfig, run};
use crate::source::ScanSource;
use crate::tasks::{Task, TaskManifest, commit, plan, run_task};
use crate::writer::Codec;

/// Largest file size: S3 allows 10,000 parts, and parts are 8 MiB.
const MAX_FILE_SIZE_MB: u64 = 50 * 1024;

#[derive(Debug, Parser)]
#[command(
    name = "intraday-extractor",
    version,
    about = "Scans each collection's window through `hbase shell`, decrypts every record and \
             writes Parquet or CSV-gzip files and a manifest to S3 or a local directory."
)]
pub struct Args {
    /// The run's correlation id; names the manifest `_manifests/<id>.json`.
    #[arg(long, value_name = "ID")]
    pub correlation_id: String,

    /// The run's trigger time, epoch ms; its UTC minute names the run folder `run=YYYYMMDD-HHMM`.
    #[arg(long, value_name = "MS")]
    pub trigger_time_ms: u64,

    /// A collection and its window of cell timestamps, [START, END) in epoch ms. Repeatable.
    #[arg(
        long = "collection",
        value_name = "db.DB.TABLE:START:END",
        required = true
    )]
    pub collections: Vec<String>,

    /// A collection holding personal data: its objects are tagged `pii=true` (else `false`).
    #[arg(long = "pii", value_name = "db.DB.TABLE")]
    pub pii: Vec<String>,

    /// The collections secret's text (base64 of the Python-literal dict, or JSON): every
    /// --collection must be listed, and its `pii` is taken from there.
    #[arg(long, value_name = "PATH")]
    pub collections_file: Option<PathBuf>,

    /// `s3://bucket/prefix` or a local directory.
    #[arg(long, value_name = "s3://BUCKET/PREFIX|DIR")]
    pub output: String,

    /// `parquet` or `csv-gzip`.
    #[arg(long, default_value = "parquet", value_name = "FORMAT")]
    pub format: String,

    /// Parquet's compression: `zstd:LEVEL` (1 to 22, or -1 to -7 for zstd's fast levels; `zstd` alone is level 3), `snappy`,
    /// `lz4` (LZ4_RAW: readers need parquet-mr 1.12.3+) or `none`. Defaults to zstd:3,
    /// measured the best trade of speed against size (BENCH.md). Not for csv-gzip.
    #[arg(long, value_name = "CODEC")]
    pub compression: Option<String>,

    /// Read a collection's scan from saved `hbase shell` output instead of running the shell. Repeatable.
    #[arg(long = "scan-file", value_name = "db.DB.TABLE=PATH")]
    pub scan_files: Vec<String>,

    /// The HBase launcher; run as `<command> shell -n` with the scan on its input.
    #[arg(long, default_value = "hbase", value_name = "COMMAND")]
    pub hbase_command: String,

    /// Range scans of one collection run at once, each in its own `hbase shell`: the table's
    /// key space is split at its region boundaries (`get_splits`) into about 3 ranges per
    /// scan. 1 scans the whole table in one shell. Each shell is a JVM (about 1 GiB).
    #[arg(long, default_value_t = 1, value_name = "K", value_parser = clap::value_parser!(u16).range(1..=64))]
    pub scan_parallelism: u16,

    /// The data key service's base URL (https with mutual TLS; http only on loopback).
    #[arg(long, value_name = "URL")]
    pub dks_url: Option<String>,

    /// Our certificate chain, PEM.
    #[arg(long, value_name = "PEM", requires = "dks_url")]
    pub dks_cert: Option<PathBuf>,

    /// Our private key, PEM.
    #[arg(long, value_name = "PEM", requires = "dks_url")]
    pub dks_key: Option<PathBuf>,

    /// The CA that signed the data key service's certificate, PEM.
    #[arg(long, value_name = "PEM", requires = "dks_url")]
    pub dks_ca: Option<PathBuf>,

    /// Attempts per data key, first included, before the step fails (429, 5xx, network).
    #[arg(long, default_value_t = 6, value_name = "N")]
    pub dks_max_attempts: u32,

    /// Decrypt data keys with AWS KMS instead of a data key service.
    #[arg(long, conflicts_with = "dks_url")]
    pub kms: bool,

    /// Rejected records a collection may have before the step fails.
    #[arg(long, default_value_t = 0, value_name = "N")]
    pub max_rejects: u64,

    /// Roll over to a new file at about this size.
    #[arg(long, default_value_t = 128, value_name = "MIB")]
    pub file_size_mb: u64,

    /// Threads per collection, each decoding and encoding a batch at a time, and at most as
    /// many encoders, each writing files of its own; defaults to the number of CPUs.
    #[arg(long, value_name = "N")]
    pub workers: Option<usize>,

    /// Collections extracted at the same time, sharing the workers (each gets
    /// workers / N, at least one) and the memory. Defaults to as many as there are workers:
    /// separate collections keep every core busy with the least hand-over between them (the
    /// original system also ran its collections at once). Each collection runs
    /// --scan-parallelism `hbase shell`s.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=256))]
    pub collections_at_once: Option<u16>,

    /// Prints the run's tasks for its Spark application (spark/intraday_spark.py), one JSON
    /// line each, and writes nothing: each collection's key space split at its region
    /// boundaries (`get_splits`) into about --ranges ranges.
    #[arg(long, conflicts_with_all = ["task", "commit"], help_heading = "A run spread over Spark")]
    pub plan: bool,

    /// Ranges per collection for --plan (at most 4096; the launcher's MAX_SPARK_RANGES), never
    /// more than the collection has regions.
    #[arg(long, default_value_t = 3, value_name = "N", help_heading = "A run spread over Spark",
          value_parser = clap::value_parser!(u16).range(1..=4096))]
    pub ranges: u16,

    /// Extracts one task that --plan printed (its JSON line): the task's own part files and
    /// rejects, and its task manifest `_manifests/<id>/task-NNNNN.json`, also printed on
    /// stdout. Writes no run manifest.
    #[arg(
        long,
        value_name = "JSON",
        conflicts_with = "commit",
        help_heading = "A run spread over Spark"
    )]
    pub task: Option<String>,

    /// Writes the run's manifest from the task manifests of tasks 0 to N - 1, once every one
    /// is there; extracts nothing.
    #[arg(long, value_name = "N", help_heading = "A run spread over Spark",
          value_parser = clap::value_parser!(u32).range(1..))]
    pub commit: Option<u32>,

    #[arg(long, value_name = "REGION")]
    pub region: Option<String>,

    /// Overrides every AWS endpoint (an emulator); falls back to AWS_ENDPOINT_URL.
    #[arg(long, value_name = "URL")]
    pub endpoint_url: Option<String>,

    #[arg(long, value_name = "PROFILE")]
    pub profile: Option<String>,
}

/// The binary's entry: parse, run, report. Exit status 0 only when every collection's files
/// and the manifest are written.
pub fn main() -> ExitCode {
    let args = Args::parse();
    init_logging();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("intraday-extractor: error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let correlation_id = args.correlation_id.clone();
    let span = tracing::info_span!("extract", correlation_id = %correlation_id);
    let result = runtime.block_on(tracing::Instrument::instrument(execute(args), span));
    match result.and_then(|done| report(&done)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(correlation_id = %correlation_id, error = %e, "extraction failed");
            eprintln!("intraday-extractor: error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// What a run did, by mode.
#[derive(Debug)]
pub enum Done {
    /// The whole run, or a commit: the manifest and where it was written.
    Run(Manifest, String),
    /// `--plan`: the run's tasks.
    Plan(Vec<Task>),
    /// `--task`: what the task wrote.
    Task(TaskManifest),
}

/// Standard output: a line a person reads for a run; JSON lines a driver reads for a plan
/// or a task.
fn report(done: &Done) -> Result<(), ExtractorError> {
    match done {
        Done::Run(manifest, location) => {
            let records: u64 = manifest.collections.iter().map(|c| c.records).sum();
            println!(
                "{} collection(s), {records} record(s); manifest {location}",
                manifest.collections.len()
            );
        }
        Done::Plan(tasks) => {
            for task in tasks {
                println!("{}", json_line(task)?);
            }
        }
        Done::Task(written) => println!("{}", json_line(written)?),
    }
    Ok(())
}

fn json_line<T: serde::Serialize>(value: &T) -> Result<String, ExtractorError> {
    serde_json::to_string(value).map_err(|e| ExtractorError::encode("standard output", e))
}

fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .json()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_current_span(true)
        .try_init();
}

/// Runs with parsed flags: the whole run, or a plan, a task or a commit of a run spread
/// over Spark.
pub async fn execute(args: Args) -> Result<Done, ExtractorError> {
    let config = config(&args)?;
    if args.plan {
        return Ok(Done::Plan(plan(&config, usize::from(args.ranges)).await?));
    }
    let task = args.task.as_deref().map(Task::parse).transpose()?;
    let aws = if args.output.starts_with("s3://") || args.kms {
        Some(
            AwsSettings {
                region: args.region.clone(),
                profile: args.profile.clone(),
                endpoint_url: args.endpoint_url.clone(),
                static_credentials: None,
                timeouts: intraday_aws::Timeouts::long_transfers(),
                // A batch step nobody watches: a transient S3 or KMS failure should cost a
                // pause, not the run (5 attempts, client-side rate limiting on throttling).
                adaptive_retries: true,
            }
            .load()
            .await,
        )
    } else {
        None
    };
    let output = match (&aws, args.output.starts_with("s3://")) {
        (Some(aws), true) => Output::s3(Objects::new(aws.s3()), S3Uri::parse(&args.output)?),
        _ => Output::local(&args.output)?,
    };
    let manifest_location =
        || output.locate(&crate::manifest::manifest_key(&config.correlation_id));
    if let Some(of) = args.commit {
        let manifest = commit(&config, of, &output).await?;
        return Ok(Done::Run(manifest, manifest_location()));
    }
    let provider = match (&aws, args.kms) {
        (Some(aws), true) => KeyProvider::Kms(KmsKeys::new(aws)),
        _ => KeyProvider::Dks(Box::new(dks(&args, &config.correlation_id)?)),
    };
    let keys = Arc::new(KeyCache::new(provider));
    if let Some(task) = task {
        return Ok(Done::Task(run_task(&config, &task, &output, keys).await?));
    }
    let manifest = run(&config, &output, keys).await?;
    Ok(Done::Run(manifest, manifest_location()))
}

fn dks(args: &Args, correlation_id: &CorrelationId) -> Result<DksClient, ExtractorError> {
    let url = args
        .dks_url
        .clone()
        .ok_or_else(|| ExtractorError::InvalidArgument {
            flag: "--dks-url",
            value: String::new(),
            reason:
                "give a data key service (--dks-url with --dks-cert, --dks-key, --dks-ca) or --kms"
                    .to_owned(),
        })?;
    let tls = match (&args.dks_cert, &args.dks_key, &args.dks_ca) {
        (Some(cert), Some(key), Some(ca)) => Some(TlsFiles {
            cert: cert.clone(),
            key: key.clone(),
            ca: ca.clone(),
        }),
        (None, None, None) => None,
        _ => {
            return Err(ExtractorError::InvalidArgument {
                flag: "--dks-cert/--dks-key/--dks-ca",
                value: String::new(),
                reason: "mutual TLS needs all three files".to_owned(),
            });
        }
    };
    if args.dks_max_attempts == 0 {
        return Err(ExtractorError::InvalidArgument {
            flag: "--dks-max-attempts",
            value: "0".to_owned(),
            reason: "at least one attempt is needed".to_owned(),
        });
    }
    DksClient::new(DksSettings {
        url,
        tls,
        correlation_id: correlation_id.to_string(),
        retry: RetryPolicy {
            max_attempts: args.dks_max_attempts,
            ..RetryPolicy::default()
        },
    })
}

/// Checks the flags and builds the run; no I/O but reading --collections-file.
pub fn config(args: &Args) -> Result<RunConfig, ExtractorError> {
    let correlation_id = CorrelationId::new(args.correlation_id.clone())?;
    let format: OutputFormat = args.format.parse()?;
    let codec = match (&args.compression, format) {
        (None, _) => Codec::DEFAULT,
        (Some(text), OutputFormat::Parquet) => {
            text.parse()
                .map_err(|reason| ExtractorError::InvalidArgument {
                    flag: "--compression",
                    value: text.clone(),
                    reason,
                })?
        }
        (Some(text), OutputFormat::CsvGzip) => {
            return Err(ExtractorError::InvalidArgument {
                flag: "--compression",
                value: text.clone(),
                reason: "csv-gzip is always gzip; --compression is for --format parquet".to_owned(),
            });
        }
    };
    if !(1..=MAX_FILE_SIZE_MB).contains(&args.file_size_mb) {
        return Err(ExtractorError::InvalidArgument {
            flag: "--file-size-mb",
            value: args.file_size_mb.to_string(),
            reason: format!("use 1 to {MAX_FILE_SIZE_MB}"),
        });
    }
    let mut windows: BTreeMap<Collection, Window> = BTreeMap::new();
    let mut order = Vec::new();
    for spec in &args.collections {
        let (collection, window) = parse_collection(spec)?;
        if windows.insert(collection.clone(), window).is_some() {
            return Err(ExtractorError::InvalidArgument {
                flag: "--collection",
                value: spec.clone(),
                reason: "the collection is given twice".to_owned(),
            });
        }
        order.push(collection);
    }
    let mut pii: BTreeSet<Collection> = BTreeSet::new();
    for name in &args.pii {
        let collection = Collection::parse(name)?;
        if !windows.contains_key(&collection) {
            return Err(ExtractorError::InvalidArgument {
                flag: "--pii",
                value: name.clone(),
                reason: "it is not one of the --collection flags".to_owned(),
            });
        }
        pii.insert(collection);
    }
    if let Some(path) = &args.collections_file {
        let text = std::fs::read_to_string(path)
            .map_err(|e| ExtractorError::file("reading --collections-file", path, e))?;
        let listed = parse_collections_secret(&text)?;
        for entry in listed.select(order.iter())? {
            if entry.pii {
                pii.insert(entry.collection.clone());
            }
        }
    }
    let mut files: BTreeMap<Collection, PathBuf> = BTreeMap::new();
    for spec in &args.scan_files {
        let invalid = |reason: &str| ExtractorError::InvalidArgument {
            flag: "--scan-file",
            value: spec.clone(),
            reason: reason.to_owned(),
        };
        let (name, path) = spec
            .split_once('=')
            .ok_or_else(|| invalid("write it `db.<database>.<table>=<path>`"))?;
        let collection = Collection::parse(name)?;
        if !windows.contains_key(&collection) {
            return Err(invalid("it is not one of the --collection flags"));
        }
        if path.is_empty() {
            return Err(invalid("the path is empty"));
        }
        files.insert(collection, PathBuf::from(path));
    }
    let jobs: Vec<CollectionJob> = order
        .into_iter()
        .map(|collection| CollectionJob {
            window: windows[&collection],
            pii: pii.contains(&collection),
            source: match files.remove(&collection) {
                Some(path) => ScanSource::File(path),
                None => ScanSource::Hbase {
                    command: args.hbase_command.clone(),
                    parallelism: usize::from(args.scan_parallelism),
                },
            },
            collection,
        })
        .collect();
    let workers = args
        .workers
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get()))
        .max(1);
    Ok(RunConfig {
        correlation_id,
        trigger_time_ms: args.trigger_time_ms,
        format,
        codec,
        file_size: args.file_size_mb * 1024 * 1024,
        max_rejects: args.max_rejects,
        workers,
        // Up to an encoder per worker: none need wait for another's once a collection is large.
        encoders: workers,
        collections_at_once: args
            .collections_at_once
            .map_or(workers, usize::from)
            .min(jobs.len().max(1)),
        jobs,
    })
}

/// `db.<db>.<table>:<start>:<end>`.
fn parse_collection(spec: &str) -> Result<(Collection, Window), ExtractorError> {
    let invalid = |reason: String| ExtractorError::InvalidArgument {
        flag: "--collection",
        value: spec.to_owned(),
        reason,
    };
    let mut parts = spec.rsplitn(3, ':');
    let (Some(end), Some(start), Some(name)) = (parts.next(), parts.next(), parts.next()) else {
        return Err(invalid(
            "write it `db.<database>.<table>:<start ms>:<end ms>`".to_owned(),
        ));
    };
    let number = |text: &str, what: &str| {
        text.parse::<u64>()
            .map_err(|_| invalid(format!("the {what} `{text}` is not epoch milliseconds")))
    };
    let window = Window::new(number(start, "start")?, number(end, "end")?)?;
    Ok((Collection::parse(name)?, window))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(extra: &[&str]) -> Args {
        let mut all = vec![
            "intraday-extractor",
            "--correlation-id",
            "run-1",
            "--trigger-time-ms",
            "1710153000000",
            "--output",
            "/tmp/out",
        ];
        all.extend_from_slice(extra);
        Args::try_parse_from(all).expect("flags parse")
    }

    #[test]
    fn builds_a_run_from_flags() {
        let config = config(&args(&[
            "--collection",
            "db.core.claimant:1710149400001:1710153000000",
            "--collection",
            "db.core.contract:5:10",
            "--pii",
            "db.core.claimant",
            "--scan-file",
            "db.core.contract=/tmp/contract.scan",
            "--format",
            "csv-gzip",
            "--file-size-mb",
            "64",
            "--max-rejects",
            "3",
        ]))
        .expect("valid");
        assert_eq!(config.format, OutputFormat::CsvGzip);
        assert_eq!(config.codec, Codec::DEFAULT);
        assert_eq!(config.collections_at_once, config.workers.min(2));
        assert_eq!(config.file_size, 64 << 20);
        assert_eq!(config.max_rejects, 3);
        assert_eq!(config.jobs.len(), 2);
        assert_eq!(config.jobs[0].collection.name(), "db.core.claimant");
        assert_eq!(
            config.jobs[0].window,
            Window::new(1_710_149_400_001, 1_710_153_000_000).expect("w")
        );
        assert!(config.jobs[0].pii);
        assert_eq!(
            config.jobs[0].source,
            ScanSource::Hbase {
                command: "hbase".to_owned(),
                parallelism: 1,
            }
        );
        assert!(!config.jobs[1].pii);
        assert_eq!(
            config.jobs[1].source,
            ScanSource::File("/tmp/contract.scan".into())
        );
    }

    #[test]
    fn refusals_name_the_flag_and_value() {
        let cases: &[(&[&str], &str)] = &[
            (
                &["--collection", "db.core.x"],
                "invalid --collection `db.core.x`: write it",
            ),
            (&["--collection", "db.core.x:9:5"], "invalid window [9, 5)"),
            (
                &["--collection", "db.core.x:a:5"],
                "the start `a` is not epoch milliseconds",
            ),
            (
                &["--collection", "db.core.x/y:1:5"],
                "invalid collection `db.core.x/y`",
            ),
            (
                &[
                    "--collection",
                    "db.core.x:1:5",
                    "--collection",
                    "db.core.x:5:9",
                ],
                "given twice",
            ),
            (
                &["--collection", "db.core.x:1:5", "--pii", "db.core.y"],
                "invalid --pii `db.core.y`: it is not one of the --collection flags",
            ),
            (
                &["--collection", "db.core.x:1:5", "--scan-file", "db.core.x"],
                "invalid --scan-file `db.core.x`",
            ),
            (
                &["--collection", "db.core.x:1:5", "--format", "csv"],
                "unknown output format `csv`",
            ),
            (
                &["--collection", "db.core.x:1:5", "--file-size-mb", "0"],
                "invalid --file-size-mb `0`",
            ),
            (
                &["--collection", "db.core.x:1:5", "--compression", "zstd:23"],
                "invalid --compression `zstd:23`: the zstd level `23` is not 1 to 22 or -1 to -7",
            ),
            (
                &["--collection", "db.core.x:1:5", "--compression", "gzip"],
                "unknown compression `gzip`; use zstd[:LEVEL] (LEVEL 1 to 22, or -1 to -7 for zstd's fast levels), snappy, lz4 or none",
            ),
            (
                &[
                    "--collection",
                    "db.core.x:1:5",
                    "--format",
                    "csv-gzip",
                    "--compression",
                    "snappy",
                ],
                "csv-gzip is always gzip",
            ),
        ];
        for (flags, want) in cases {
            let err = config(&args(flags)).expect_err(want).to_string();
            assert!(err.contains(want), "{flags:?}: {err}");
        }
    }

    #[test]
    fn the_collections_file_gives_pii_and_must_list_every_collection() {
        let dir = std::env::temp_dir().join(format!("intraday-cli-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let path = dir.join("collections.txt");
        std::fs::write(
            &path,
            "{'collections_all': {'db.core.claimant': {'db': 'core', 'table': 'claimant', 'pii': 'true'}, \
             'db.core.statement': {'db': 'core', 'table': 'statement', 'pii': 'false'}}}",
        )
        .expect("write");
        let file = path.to_string_lossy().into_owned();
        let config = config(&args(&[
            "--collection",
            "db.core.claimant:1:5",
            "--collection",
            "db.core.statement:1:5",
            "--collections-file",
            &file,
        ]))
        .expect("valid");
        assert!(config.jobs[0].pii);
        assert!(!config.jobs[1].pii);
        let err = super::config(&args(&[
            "--collection",
            "db.core.other:1:5",
            "--collections-file",
            &file,
        ]))
        .expect_err("not listed")
        .to_string();
        assert!(err.contains("does not list it"), "{err}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
