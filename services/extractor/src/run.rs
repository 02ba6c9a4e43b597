//! One run: every collection in turn, each extracted by its workers, threads that each take
//! the scan's next batch, decode it (keys from the cache) and encode its records into an
//! encoder they borrow, whose writer uploads in order; then the manifest, last.
//!
//! Workers and encoders are few and the channels between them bounded, so however large a
//! scan is, only a batch per worker and one row group's compressed pages per encoder are in
//! memory at a time.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use intraday_core::{Collection, CorrelationId, OutputFormat, Window, run_folder};
use intraday_events::{CollectionManifest, Manifest};
use tokio::sync::{Semaphore, mpsc};
use tokio::task::JoinHandle;
use tracing::Instrument;

use crate::ExtractorError;
use crate::keys::{CachedKey, KeyAnswer, KeyCache};
use crate::manifest::{
    FileNames, RejectsFile, Tally, data_folder, manifest, manifest_key, rejects_folder,
};
use crate::output::{ObjectWriter, Output, Written};
use crate::record::{self, Record, Sealed};
use crate::scan::{Reject, ScanItem, ScanSummary};
use crate::source::{OpenScan, RANGES_PER_SCAN, ScanSource, key_ranges, name_range};
use crate::tasks::combine;
use crate::writer::{Chunk, Codec, PAGE_BYTES, Roller, WriterSettings};

/// Cells per batch: enough to amortise the hand-offs, small enough to keep memory flat.
/// Since the reader stopped copying values, 512 measured about 6% faster than 256 with two
/// workers on one collection (half the thread switches), and 1,024 no faster (BENCH.md).
const BATCH_CELLS: usize = 512;
const BATCH_BYTES: usize = 4 * 1024 * 1024;

/// One collection to extract.
#[derive(Debug, Clone)]
pub struct CollectionJob {
    pub collection: Collection,
    pub window: Window,
    pub pii: bool,
    pub source: ScanSource,
}

#[derive(Debug, Clone)]
pub struct RunConfig {
    pub correlation_id: CorrelationId,
    pub trigger_time_ms: u64,
    pub format: OutputFormat,
    /// Parquet's compression.
    pub codec: Codec,
    pub file_size: u64,
    /// A collection with more rejects than this fails the step.
    pub max_rejects: u64,
    /// Threads per collection, each decoding and encoding a batch at a time.
    pub workers: usize,
    /// Encoders per collection at most, each writing files of its own and lent to the
    /// workers (`Lanes`). Each holds one row group's compressed pages (at most
    /// [`crate::writer::MAX_ROW_GROUP_BYTES`] of records), so the writers' memory grows with
    /// the workers, not with the scan.
    pub encoders: usize,
    /// Collections extracted at the same time. The workers are shared among them (each gets
    /// `workers / collections_at_once`, at least one), and each holds a batch per worker, so
    /// memory stays bounded however many run.
    pub collections_at_once: usize,
    pub jobs: Vec<CollectionJob>,
}

type Outcome = Result<Record, Reject>;

/// Extracts every collection, then writes the manifest. Any error returns before the
/// manifest is written, so a run without a manifest is an incomplete run.
///
/// Collections run `collections_at_once` at a time, in the order given. After a failure no
/// further collection starts; those already running finish (or fail) on their own, so no
/// upload is cut off halfway, and the first failure is the one reported.
pub async fn run(
    config: &RunConfig,
    output: &Output,
    keys: Arc<KeyCache>,
) -> Result<Manifest, ExtractorError> {
    let run = run_folder(config.trigger_time_ms)?;
    let at_once = config
        .collections_at_once
        .clamp(1, config.jobs.len().max(1));
    let share = Arc::new(RunConfig {
        workers: (config.workers / at_once).max(1),
        encoders: (config.encoders / at_once).max(1),
        collections_at_once: at_once,
        jobs: Vec::new(),
        ..config.clone()
    });
    let jobs = config.jobs.iter().map(|job| {
        let span = tracing::info_span!(
            "collection",
            collection = %job.collection,
            window = %job.window
        );
        let (share, job, run, output, keys) = (
            share.clone(),
            job.clone(),
            run.clone(),
            output.clone(),
            keys.clone(),
        );
        async move {
            let entry = extract_collection(&share, &job, &run, &output, keys).await?;
            tracing::info!(
                collection = %entry.collection,
                records = entry.records,
                rejected = entry.rejected,
                files = entry.files.len(),
                bytes = entry.bytes,
                "collection extracted"
            );
            Ok(entry)
        }
        .instrument(span)
    });
    let entries = at_most(at_once, jobs).await?;
    publish(config, output, run, entries).await
}

/// Runs `jobs` in their order, at most `at_once` at a time; their results in the same order.
/// After a failure no further job starts; those running finish (or fail) on their own, so no
/// upload is cut off halfway, and the first failure is the one returned.
async fn at_most<T, F>(
    at_once: usize,
    jobs: impl IntoIterator<Item = F>,
) -> Result<Vec<T>, ExtractorError>
where
    T: Send + 'static,
    F: std::future::Future<Output = Result<T, ExtractorError>> + Send + 'static,
{
    let mut running = tokio::task::JoinSet::new();
    let mut results: Vec<Option<T>> = Vec::new();
    let mut failed = None;
    let mut next = jobs.into_iter().enumerate();
    loop {
        while failed.is_none() && running.len() < at_once.max(1) {
            let Some((index, job)) = next.next() else {
                break;
            };
            results.push(None);
            running.spawn(async move { (index, job.await) });
        }
        let Some(joined) = running.join_next().await else {
            break;
        };
        match joined.map_err(worker_died) {
            Ok((index, Ok(result))) => results[index] = Some(result),
            Ok((_, Err(e))) | Err(e) => {
                failed.get_or_insert(e);
            }
        }
    }
    if let Some(e) = failed {
        return Err(e);
    }
    // Without a failure every job was started and finished.
    results
        .into_iter()
        .collect::<Option<Vec<_>>>()
        .ok_or_else(|| ExtractorError::Worker("a job ended without a result".to_owned()))
}

/// Writes the run's manifest, the last thing a run writes: with it the run is complete.
pub(crate) async fn publish(
    config: &RunConfig,
    output: &Output,
    run: String,
    entries: Vec<CollectionManifest>,
) -> Result<Manifest, ExtractorError> {
    let manifest = manifest(
        config.correlation_id.clone(),
        run,
        config.trigger_time_ms,
        config.format,
        output.root(),
        entries,
    );
    let body = serde_json::to_vec_pretty(&manifest)
        .map_err(|e| ExtractorError::encode("the manifest", e))?;
    let key = manifest_key(&config.correlation_id);
    output.put(&key, body, "application/json").await?;
    tracing::info!(manifest = %key, "manifest written");
    Ok(manifest)
}

/// One collection: whole, or split into key ranges scanned at once when its source says so.
async fn extract_collection(
    config: &RunConfig,
    job: &CollectionJob,
    run: &str,
    output: &Output,
    keys: Arc<KeyCache>,
) -> Result<CollectionManifest, ExtractorError> {
    match &job.source {
        ScanSource::Hbase {
            command,
            parallelism,
        } if *parallelism > 1 => {
            extract_in_ranges(config, job, command, *parallelism, run, output, keys).await
        }
        _ => {
            let names = FileNames::run(&config.correlation_id);
            clear_stale(output, job, run, &names).await?;
            extract(config, job, run, output, keys, &names, None).await
        }
    }
}

/// One collection as key ranges: the table's key space split at its region boundaries into
/// about [`RANGES_PER_SCAN`] ranges per scan, `parallelism` ranges at once, each in its own
/// `hbase shell` and its own pipeline, writing files named after the range
/// ([`FileNames::task`]). A range that fails to scan is tried once more, even after it wrote
/// files: its retry replaces exactly its own. A second failure fails the collection, and no
/// further range starts. The ranges running at once share the collection's workers.
async fn extract_in_ranges(
    config: &RunConfig,
    job: &CollectionJob,
    command: &str,
    parallelism: usize,
    run: &str,
    output: &Output,
    keys: Arc<KeyCache>,
) -> Result<CollectionManifest, ExtractorError> {
    // An earlier attempt of this run may have split the table otherwise, or not at all:
    // none of its files of this collection may stay beside the new ones. (The run's names
    // cover every range's.)
    clear_stale(output, job, run, &FileNames::run(&config.correlation_id)).await?;
    let ranges = key_ranges(command, &job.collection, parallelism * RANGES_PER_SCAN).await?;
    let at_once = parallelism.min(ranges.len()).max(1);
    tracing::info!(
        ranges = ranges.len(),
        parallelism = at_once,
        "scanning in ranges"
    );
    // `at_once` scans at a time, and up to as many ranges again finishing their encoding.
    let scans = Arc::new(Semaphore::new(at_once));
    let alive = 2 * at_once;
    let share = Arc::new(RunConfig {
        workers: (config.workers / at_once).max(1),
        encoders: (config.encoders / at_once).max(1),
        jobs: Vec::new(),
        ..config.clone()
    });
    let parts = ranges.into_iter().zip(0u32..).map(|(range, index)| {
        let part = CollectionJob {
            source: ScanSource::Range {
                command: command.to_owned(),
                range: range.clone(),
            },
            ..job.clone()
        };
        let (share, run, output, keys, scans) = (
            share.clone(),
            run.to_owned(),
            output.clone(),
            keys.clone(),
            scans.clone(),
        );
        let span = tracing::info_span!("range", range = %range.describe());
        async move {
            let names = FileNames::task(&share.correlation_id, index);
            let mut tried = 0;
            let result = loop {
                tried += 1;
                let scans = Some(&scans);
                match extract(&share, &part, &run, &output, keys.clone(), &names, scans).await {
                    Err(e) if tried == 1 && e.is_scan_failure() => {
                        tracing::warn!(error = %e, "range scan failed; trying it once more");
                        // What the failed try finished, and only that, goes first.
                        if let Err(e) = clear_stale(&output, &part, &run, &names).await {
                            break Err(e);
                        }
                    }
                    other => break other,
                }
            };
            result.map_err(|e| name_range(e, &range))
        }
        .instrument(span)
    });
    let parts = at_most(alive, parts).await?;
    combine(config, job, run, output, parts).await
}

/// Removes what an earlier attempt left that `names` would write again: the data files
/// starting with its prefix and its rejects, in the collection's folders of this run.
pub(crate) async fn clear_stale(
    output: &Output,
    job: &CollectionJob,
    run: &str,
    names: &FileNames,
) -> Result<(), ExtractorError> {
    let data_prefix = data_folder(&job.collection, run);
    let stale = output.clear(&data_prefix, &names.parts, &[]).await?
        + output
            .clear(
                &rejects_folder(&job.collection, run),
                &names.stale_rejects,
                &[],
            )
            .await?;
    if stale > 0 {
        tracing::warn!(stale, prefix = %data_prefix, "removed files an earlier attempt of this run left");
    }
    Ok(())
}

/// One collection, its files named by `names`, once the caller has cleared what an earlier
/// attempt left under them ([`clear_stale`]). `config` is this collection's share of the
/// run's: its workers (each decoding a batch at a time) and encoders (each holding one row
/// group).
pub(crate) async fn extract(
    config: &RunConfig,
    job: &CollectionJob,
    run: &str,
    output: &Output,
    keys: Arc<KeyCache>,
    names: &FileNames,
    scans: Option<&Arc<Semaphore>>,
) -> Result<CollectionManifest, ExtractorError> {
    let data_prefix = data_folder(&job.collection, run);
    // A scan slot, held only while the scan runs: the next range's shell starts while this
    // one's last records are still being encoded.
    let slot = match scans {
        Some(scans) => Some(
            scans
                .clone()
                .acquire_owned()
                .await
                .map_err(|e| ExtractorError::Worker(e.to_string()))?,
        ),
        None => None,
    };
    let scan = {
        let (source, collection, window) = (job.source.clone(), job.collection.clone(), job.window);
        tokio::task::spawn_blocking(move || OpenScan::open(&source, &collection, window))
            .await
            .map_err(worker_died)??
    };
    let scan = Arc::new(SharedScan::new(scan, slot));
    let tags = tags(job);
    let mut rejects = RejectsFile::new(&job.collection, run, &names.rejects, tags.clone());
    let mut settings = WriterSettings::new(config.format, config.file_size);
    settings.codec = config.codec;
    let lanes = Arc::new(Lanes::new(
        settings,
        config.encoders,
        output,
        format!("{data_prefix}{}", names.parts),
        tags,
    ));

    // Each worker is a thread that takes the scan's next batch, decodes it and encodes its
    // records itself; only the batch's rejects and tally come here, in the scan's order.
    let (seen_tx, mut seen_rx) =
        mpsc::channel::<Result<Seen, ExtractorError>>(config.workers.max(1));
    let workers: Vec<JoinHandle<()>> = (0..config.workers.max(1))
        .map(|index| {
            let worker = Worker {
                index,
                scan: scan.clone(),
                keys: keys.clone(),
                lanes: lanes.clone(),
                window: job.window,
                seen: seen_tx.clone(),
                runtime: tokio::runtime::Handle::current(),
            };
            let span = tracing::Span::current();
            tokio::task::spawn_blocking(move || span.in_scope(|| worker.run()))
        })
        .collect();
    drop(seen_tx);

    let mut tally = Tally::default();
    let consumed = async {
        let mut in_order = InOrder::default();
        while let Some(seen) = seen_rx.recv().await {
            let seen = seen?;
            in_order.add(seen.index, seen);
            while let Some(seen) = in_order.next_ready() {
                tally.absorb(&seen.tally);
                for reject in &seen.rejects {
                    rejects.add(output, reject).await?;
                }
            }
        }
        // Every worker has stopped sending; one that died took its batch with it.
        for worker in workers {
            worker.await.map_err(worker_died)?;
        }
        Ok::<_, ExtractorError>(())
    }
    .await;
    drop(seen_rx);
    if let Err(e) = consumed {
        // No worker takes another batch or encoder, and the scan is left to stop its shell
        // on a thread of its own: a shell that hangs must not hold up the error. A worker
        // still encoding gives up its file when it ends: a writer abandons the file in
        // progress when its encoder goes.
        scan.stop();
        lanes.stop();
        drop(tokio::task::spawn_blocking(move || scan.finish()));
        lanes.abort().await;
        if let Err(rejects_error) = rejects.finish(output).await {
            tracing::warn!(error = %rejects_error, "the rejects file could not be written");
        }
        return Err(e);
    }
    let scanned = tokio::task::spawn_blocking(move || scan.finish())
        .await
        .map_err(worker_died)?;
    let summary = match scanned {
        Ok(summary) => summary,
        Err(e) => {
            // The rejects so far still tell what went wrong before the scan did.
            lanes.abort().await;
            if let Err(rejects_error) = rejects.finish(output).await {
                tracing::warn!(error = %rejects_error, "the rejects file could not be written");
            }
            return Err(e);
        }
    };
    tracing::info!(rows = summary.rows, cells = summary.cells, "scan complete");

    for (written, records) in lanes.finish().await? {
        tally.add_file(written, records);
    }
    let first_reject = rejects.first().map(str::to_owned);
    let rejected = rejects.count();
    let rejects_file = rejects.finish(output).await?;
    if rejected > config.max_rejects {
        return Err(ExtractorError::TooManyRejects {
            collection: job.collection.name(),
            rejected,
            max: config.max_rejects,
            rejects_file: output.locate(&rejects_file.unwrap_or_default()),
            first: first_reject.unwrap_or_default(),
        });
    }
    Ok(tally.into_manifest(job.collection.clone(), job.window, rejected, rejects_file))
}

/// Batches handed on in the scan's order. Workers hand on each batch as they finish it, so a
/// batch may come back before the one taken ahead of it.
struct InOrder<T> {
    early: BTreeMap<u64, T>,
    next: u64,
}

impl<T> Default for InOrder<T> {
    fn default() -> Self {
        Self {
            early: BTreeMap::new(),
            next: 0,
        }
    }
}

impl<T> InOrder<T> {
    /// Notes the batch taken `index`th.
    fn add(&mut self, index: u64, batch: T) {
        self.early.insert(index, batch);
    }

    /// The next batch in the scan's order, once it has come back.
    fn next_ready(&mut self) -> Option<T> {
        let batch = self.early.remove(&self.next)?;
        self.next += 1;
        Some(batch)
    }
}

/// A collection's scan, shared by its workers: each takes the next batch itself when it is
/// free, so no reader thread competes with them for the cores and no queue of batches waits
/// between (BENCH.md, "A scan read by its workers": 2–5% faster, a fifth less memory).
struct SharedScan {
    state: std::sync::Mutex<ScanState>,
}

struct ScanState {
    scan: Option<OpenScan>,
    /// The index the next batch taken gets.
    next: u64,
    /// How reading ended, once it has: `Ok(true)` at the end of the output, `Ok(false)`
    /// when stopped early.
    read: Option<Result<bool, ExtractorError>>,
    /// The scan slot of a range scan, held while the shell is read.
    slot: Option<tokio::sync::OwnedSemaphorePermit>,
}

impl SharedScan {
    fn new(scan: OpenScan, slot: Option<tokio::sync::OwnedSemaphorePermit>) -> Self {
        Self {
            state: std::sync::Mutex::new(ScanState {
                scan: Some(scan),
                next: 0,
                read: None,
                slot,
            }),
        }
    }

    /// The next batch and its index: up to [`BATCH_CELLS`] items or [`BATCH_BYTES`] of cell
    /// values. A batch cut short by a failure is still given (its rejects, a line cut short,
    /// belong in the rejects file); the failure is kept for [`SharedScan::finish`]. `None`
    /// once reading has ended. Blocks while it reads.
    fn take_batch(&self) -> Option<(u64, Vec<ScanItem>)> {
        let Ok(mut state) = self.state.lock() else {
            return None;
        };
        if state.read.is_some() {
            return None;
        }
        let scan = state.scan.as_mut()?;
        let mut batch = Vec::with_capacity(BATCH_CELLS);
        let mut bytes = 0;
        let mut read = None;
        while batch.len() < BATCH_CELLS && bytes < BATCH_BYTES {
            match scan.next_item() {
                Ok(Some(item)) => {
                    bytes += match &item {
                        ScanItem::Cell(cell) => cell.printed_value().len(),
                        ScanItem::Reject(_) => 0,
                    };
                    batch.push(item);
                }
                Ok(None) => {
                    read = Some(Ok(true));
                    break;
                }
                Err(e) => {
                    read = Some(Err(e));
                    break;
                }
            }
        }
        if read.is_some() {
            state.read = read;
            // The next range's shell may start now.
            state.slot = None;
        }
        if batch.is_empty() {
            return None;
        }
        let index = state.next;
        state.next += 1;
        Some((index, batch))
    }

    /// Stops reading, unless it has ended already: the consumer has failed.
    fn stop(&self) {
        if let Ok(mut state) = self.state.lock()
            && state.read.is_none()
        {
            state.read = Some(Ok(false));
        }
    }

    /// How the scan ended: its totals, checked, or why it failed. Its shell is awaited, or
    /// stopped if reading was. Blocks.
    fn finish(&self) -> Result<ScanSummary, ExtractorError> {
        let mut state = self
            .state
            .lock()
            .map_err(|_| ExtractorError::Worker("the scan's lock was poisoned".into()))?;
        let read = state.read.take().unwrap_or(Ok(false));
        let scan = state
            .scan
            .take()
            .ok_or_else(|| ExtractorError::Worker("the scan was finished twice".into()))?;
        state.slot = None;
        drop(state);
        scan.finish(read)
    }
}

/// The tags on every object of a collection: whether it holds personal data, and whose it is.
pub(crate) fn tags(job: &CollectionJob) -> Vec<(String, String)> {
    vec![
        ("pii".to_owned(), job.pii.to_string()),
        ("db".to_owned(), job.collection.db().to_owned()),
        ("table".to_owned(), job.collection.table().to_owned()),
    ]
}

fn worker_died(e: tokio::task::JoinError) -> ExtractorError {
    ExtractorError::Worker(e.to_string())
}

/// What the consumer needs of a batch, handed on in the scan's order: its rejects, for the
/// rejects file, and a tally of its records. The records themselves stay with the worker.
struct Seen {
    index: u64,
    rejects: Vec<Reject>,
    tally: Tally,
}

/// One of a collection's workers, a thread of its own: it takes the scan's next batch,
/// decodes it and encodes its records into an encoder it borrows, so a batch never moves
/// between threads. Each move cost a cache's worth of records and a thread switch: with
/// the decoding and the encoding on different threads, two workers did 1.66x (1 KB) and
/// 1.74x (8 KB) one worker's records; on one thread each, 1.86x and 1.87x (BENCH.md, "A
/// batch stays on its worker's thread").
struct Worker {
    /// Which of the collection's workers this is.
    index: usize,
    scan: Arc<SharedScan>,
    keys: Arc<KeyCache>,
    lanes: Arc<Lanes>,
    window: Window,
    seen: mpsc::Sender<Result<Seen, ExtractorError>>,
    /// For the rare waits on the data key service and the writers, from this thread.
    runtime: tokio::runtime::Handle,
}

impl Worker {
    /// Works until the scan has no more batches, or something fails: then it stops the scan
    /// and the encoders, so the other workers stop too, and hands the error on.
    fn run(self) {
        if let Err(e) = self.work() {
            self.scan.stop();
            self.lanes.stop();
            // A consumer already gone has failed itself, and reports its own error.
            let _ = self.seen.blocking_send(Err(e));
        }
    }

    fn work(&self) -> Result<(), ExtractorError> {
        while let Some((index, batch)) = self.scan.take_batch() {
            let outcomes = decode_batch(batch, &self.keys, self.window, &self.runtime)?;
            let mut seen = Seen {
                index,
                rejects: Vec::new(),
                tally: Tally::default(),
            };
            let mut records = Vec::with_capacity(outcomes.len());
            let mut bytes = 0;
            for outcome in outcomes {
                match outcome {
                    Ok(record) => {
                        seen.tally.observe(record.timestamp_ms);
                        bytes += record.id.len() + record.record.len();
                        records.push(record);
                    }
                    Err(reject) => seen.rejects.push(reject),
                }
            }
            if !records.is_empty() {
                // None: the encoders were stopped by whoever failed, whose error is reported.
                let Some(mut lane) = self.lanes.borrow(self.index, bytes)? else {
                    return Ok(());
                };
                let encoded = lane.encode(records, &self.runtime);
                self.lanes.give_back(lane);
                encoded?;
            }
            if self.seen.blocking_send(Ok(seen)).is_err() {
                // The consumer has failed, and reports its own error.
                return Ok(());
            }
        }
        Ok(())
    }
}

/// A batch's outcomes in its order. Each cell is opened and, when its data key is already
/// known (nearly always, after the first batches), decrypted at once, while its bytes are
/// still in the core's cache. Cells whose keys are new wait for one request per distinct
/// key, then are decrypted in a second pass. Blocks: runs on a worker's thread.
fn decode_batch(
    batch: Vec<ScanItem>,
    keys: &Arc<KeyCache>,
    window: Window,
    runtime: &tokio::runtime::Handle,
) -> Result<Vec<Outcome>, ExtractorError> {
    let mut answers = Answers::default();
    let slots: Vec<Slot> = batch
        .into_iter()
        .map(|item| {
            let sealed = match open(item, window) {
                Ok(sealed) => sealed,
                Err(reject) => return Slot::Done(Err(reject)),
            };
            match answers.known(keys, &sealed) {
                Some(answer) => Slot::Done(decrypt(sealed, answer)),
                None => Slot::Waiting(sealed),
            }
        })
        .collect();
    if slots.iter().any(|slot| matches!(slot, Slot::Waiting(_))) {
        runtime.block_on(answers.look_up(&slots, keys))?;
    }
    Ok(slots
        .into_iter()
        .map(|slot| slot.outcome(&answers))
        .collect())
}

/// Decodes one batch as a worker would.
#[cfg(test)]
async fn decode(
    batch: Vec<ScanItem>,
    keys: Arc<KeyCache>,
    window: Window,
) -> Result<Vec<Outcome>, ExtractorError> {
    let runtime = tokio::runtime::Handle::current();
    tokio::task::spawn_blocking(move || decode_batch(batch, &keys, window, &runtime))
        .await
        .map_err(worker_died)?
}

/// A cell of a batch being decoded: its outcome, or its envelope waiting for its data key.
enum Slot {
    Done(Outcome),
    Waiting(Sealed),
}

impl Slot {
    /// The outcome, decrypting a waiting envelope with its key's answer.
    fn outcome(self, answers: &Answers) -> Outcome {
        match self {
            Slot::Done(outcome) => outcome,
            Slot::Waiting(sealed) => match answers.find(&sealed) {
                Some(answer) => decrypt(sealed, answer),
                None => Err(sealed.reject("no data key was looked up for this record")),
            },
        }
    }
}

fn open(item: ScanItem, window: Window) -> Result<Sealed, Reject> {
    match item {
        ScanItem::Reject(reject) => Err(reject),
        ScanItem::Cell(cell) if !window.contains(cell.timestamp_ms) => {
            let reason = format!(
                "the cell timestamp {} is outside the window {window}",
                cell.timestamp_ms
            );
            Err(Reject::of_cell(&cell, reason))
        }
        ScanItem::Cell(cell) => record::open(cell),
    }
}

fn decrypt(sealed: Sealed, answer: &KeyAnswer) -> Outcome {
    match answer {
        KeyAnswer::Key(key) => record::decrypt(sealed, key),
        KeyAnswer::Refused(reason) => Err(sealed.reject(reason.clone())),
    }
}

/// The data keys one batch has met, found by the end of the wrapped key
/// ([`Sealed::key_tail`]) and then compared whole: the batch's own index of the run's
/// [`KeyCache`], so its cells do not each take the cache's lock. A batch usually names a
/// handful of keys, but may name hundreds when data keys change often: searched as a list,
/// 2,000 keys over 100,000 records cost a quarter more CPU (BENCH.md, "Many data keys").
#[derive(Default)]
struct Answers {
    keys: Vec<Arc<CachedKey>>,
    by_tail: HashMap<u128, Vec<usize>>,
}

impl Answers {
    fn position(&self, sealed: &Sealed) -> Option<usize> {
        let (key_id, encrypted_key) = sealed.wrapped_key();
        self.by_tail
            .get(&sealed.key_tail())?
            .iter()
            .copied()
            .find(|&index| self.keys[index].names(key_id, encrypted_key))
    }

    /// The answer for this record's key, once it has been had.
    fn find(&self, sealed: &Sealed) -> Option<&KeyAnswer> {
        self.keys.get(self.position(sealed)?)?.answer()
    }

    fn add(&mut self, sealed: &Sealed, key: Arc<CachedKey>) -> usize {
        let index = self.keys.len();
        self.keys.push(key);
        self.by_tail
            .entry(sealed.key_tail())
            .or_default()
            .push(index);
        index
    }

    /// The answer for this record's key when this batch or the run has already had it.
    fn known(&mut self, cache: &KeyCache, sealed: &Sealed) -> Option<&KeyAnswer> {
        let index = match self.position(sealed) {
            Some(index) => index,
            None => {
                let (key_id, encrypted_key) = sealed.wrapped_key();
                let key = cache.known(key_id, encrypted_key)?;
                self.add(sealed, key)
            }
        };
        self.keys.get(index)?.answer()
    }

    /// Asks for the keys the waiting cells need, each once, [`KEY_REQUESTS_AT_ONCE`] at a
    /// time: a batch meeting many new keys does not wait for each in turn. Each key is
    /// noted as it is asked for, so a later cell with the same key does not ask again; once
    /// this returns, every key noted has its answer.
    async fn look_up(
        &mut self,
        slots: &[Slot],
        keys: &Arc<KeyCache>,
    ) -> Result<(), ExtractorError> {
        let mut wanted = slots.iter().filter_map(|slot| match slot {
            Slot::Waiting(sealed) => Some(sealed),
            Slot::Done(_) => None,
        });
        let mut asking = tokio::task::JoinSet::new();
        loop {
            while asking.len() < KEY_REQUESTS_AT_ONCE {
                let Some(sealed) = wanted.next() else { break };
                if self.position(sealed).is_some() {
                    continue;
                }
                let key = keys.entry(sealed.key_id(), sealed.encrypted_key())?;
                self.add(sealed, key.clone());
                let keys = keys.clone();
                asking.spawn(async move { keys.answer(&key).await.map(|_| ()) }.in_current_span());
            }
            let Some(answered) = asking.join_next().await else {
                return Ok(());
            };
            answered.map_err(worker_died)??;
        }
    }
}

/// Key requests one batch has in flight at once. The data key service answers each in a
/// round trip; eight keep a batch of new keys from waiting for them one by one without
/// flooding the service, whose throttling the client retries (`dks.rs`).
const KEY_REQUESTS_AT_ONCE: usize = 8;

/// The encoders of one collection, lent to its workers: a worker encodes the records it has
/// just decoded on its own thread, into the files of the encoder it borrows, and gives it
/// back. A worker finding every encoder busy starts another, but only one per page's worth
/// of records handed on so far (`writer::PAGE_BYTES`, or a row group if smaller; and at most
/// `max`): a collection of a page or less is one file however many workers it has, and a
/// file holds about a page or more. An encoder compresses each page as it fills, so while
/// workers share one it is busy for much of each batch: waiting for a whole row group (8 MiB)
/// before the second cost two workers 3-7% of a 0.35 s run (BENCH.md, "Pages compressed as
/// they fill"). File numbers come from one counter, so names never collide.
struct Lanes {
    pool: std::sync::Mutex<Pool>,
    /// Signalled when an encoder is given back or the encoders are stopped.
    freed: std::sync::Condvar,
    settings: WriterSettings,
    prefix: String,
    tags: Vec<(String, String)>,
    output: Output,
    next_file: Arc<AtomicU32>,
    /// Where the writers run, whichever thread starts them.
    runtime: tokio::runtime::Handle,
}

struct Pool {
    lanes: Vec<LaneState>,
    /// Record bytes handed to the encoders so far.
    handed: usize,
    /// Something failed: no encoder is lent any more.
    stopped: bool,
}

enum LaneState {
    Unstarted,
    /// Boxed: a lane is large, and most states are not idle ones.
    Idle(Box<Lane>),
    Lent,
}

fn lock_poisoned<T>(_: std::sync::PoisonError<T>) -> ExtractorError {
    ExtractorError::Worker("the encoders' lock was poisoned".into())
}

/// A finished file and how many records it holds.
type FileWritten = (Written, u64);

impl Lanes {
    fn new(
        settings: WriterSettings,
        max: usize,
        output: &Output,
        prefix: String,
        tags: Vec<(String, String)>,
    ) -> Self {
        let pool = Pool {
            lanes: (0..max.max(1)).map(|_| LaneState::Unstarted).collect(),
            handed: 0,
            stopped: false,
        };
        Self {
            pool: std::sync::Mutex::new(pool),
            freed: std::sync::Condvar::new(),
            settings,
            prefix,
            tags,
            output: output.clone(),
            next_file: Arc::new(AtomicU32::new(0)),
            runtime: tokio::runtime::Handle::current(),
        }
    }

    fn lock(&self) -> Result<std::sync::MutexGuard<'_, Pool>, ExtractorError> {
        self.pool.lock().map_err(lock_poisoned)
    }

    /// An encoder for `worker`'s next `bytes` of records: the one it had last if that is
    /// idle, else any idle one, else a new one if the collection has grown enough for it,
    /// else the first given back; `None` once the encoders are stopped.
    fn borrow(&self, worker: usize, bytes: usize) -> Result<Option<Lane>, ExtractorError> {
        let mut pool = self.lock()?;
        pool.handed += bytes;
        loop {
            if pool.stopped {
                return Ok(None);
            }
            let allowed = pool
                .handed
                .div_ceil(self.settings.row_group_bytes.clamp(1, PAGE_BYTES))
                .clamp(1, pool.lanes.len());
            let own = worker % pool.lanes.len();
            let idle = |state: &LaneState| matches!(state, LaneState::Idle(_));
            let chosen = if own < allowed && idle(&pool.lanes[own]) {
                Some(own)
            } else {
                pool.lanes[..allowed].iter().position(idle).or_else(|| {
                    pool.lanes[..allowed]
                        .iter()
                        .position(|state| matches!(state, LaneState::Unstarted))
                })
            };
            if let Some(index) = chosen {
                match std::mem::replace(&mut pool.lanes[index], LaneState::Lent) {
                    LaneState::Idle(lane) => return Ok(Some(*lane)),
                    _ => {
                        drop(pool);
                        return Ok(Some(self.start_lane(index)));
                    }
                }
            }
            pool = self.freed.wait(pool).map_err(lock_poisoned)?;
        }
    }

    fn start_lane(&self, index: usize) -> Lane {
        let sink = Sink {
            settings: self.settings,
            prefix: self.prefix.clone(),
            tags: self.tags.clone(),
            current: None,
            next_file: self.next_file.clone(),
            files: Vec::new(),
        };
        let _runtime = self.runtime.enter();
        Lane::start(index, sink, self.output.clone())
    }

    fn give_back(&self, lane: Lane) {
        // With the lock poisoned the lane is dropped, and its writer abandons its file.
        if let Ok(mut pool) = self.pool.lock()
            && let Some(state) = pool.lanes.get_mut(lane.index)
        {
            *state = LaneState::Idle(Box::new(lane));
        }
        // Workers wait for different encoders.
        self.freed.notify_all();
    }

    /// No encoder is lent any more; workers waiting for one stop waiting.
    fn stop(&self) {
        if let Ok(mut pool) = self.pool.lock() {
            pool.stopped = true;
        }
        self.freed.notify_all();
    }

    /// The encoders not lent, in their order.
    fn take_idle(&self) -> Vec<Lane> {
        let Ok(mut pool) = self.pool.lock() else {
            return Vec::new();
        };
        pool.lanes
            .iter_mut()
            .filter_map(
                |state| match std::mem::replace(state, LaneState::Unstarted) {
                    LaneState::Idle(lane) => Some(*lane),
                    other => {
                        *state = other;
                        None
                    }
                },
            )
            .collect()
    }

    /// Every file written, once every encoder has closed its last (each on a thread of its
    /// own); the first error if any failed. Called once every worker has ended.
    async fn finish(&self) -> Result<Vec<FileWritten>, ExtractorError> {
        let finishing: Vec<_> = self
            .take_idle()
            .into_iter()
            .map(|lane| tokio::spawn(lane.finish().in_current_span()))
            .collect();
        let mut files = Vec::new();
        let mut failed = None;
        for lane in finishing {
            match lane.await.map_err(worker_died).and_then(|r| r) {
                Ok(written) => files.extend(written),
                Err(e) => {
                    failed.get_or_insert(e);
                }
            }
        }
        match failed {
            Some(e) => Err(e),
            None => {
                files.sort_by(|a, b| a.0.key.cmp(&b.0.key));
                Ok(files)
            }
        }
    }

    /// Abandons the file each idle encoder has in progress. (One still lent abandons its own
    /// when its worker drops it.)
    async fn abort(&self) {
        for mut lane in self.take_idle() {
            lane.abort().await;
        }
    }
}

/// One encoder, and the task that writes what it encodes: a row group's bytes go to the
/// output (a file, an S3 upload) while the next records are encoded, so neither waits for
/// the other, and a lane's last row groups do not leave a core idle while they are written.
struct Lane {
    /// Its place among the collection's encoders.
    index: usize,
    roller: Option<Roller>,
    /// Encoded bytes for the writer; one batch of them waits while another is written.
    chunks: Option<mpsc::Sender<Vec<Chunk>>>,
    writer: Option<JoinHandle<Result<Vec<FileWritten>, ExtractorError>>>,
}

impl Lane {
    fn start(index: usize, sink: Sink, output: Output) -> Self {
        let (chunks, received) = mpsc::channel(1);
        Self {
            index,
            roller: Some(Roller::new(sink.settings)),
            chunks: Some(chunks),
            writer: Some(tokio::spawn(sink.run(output, received).in_current_span())),
        }
    }

    /// Encodes `records` on this thread and hands their bytes to the writer: the error is
    /// the writer's if it has stopped. Blocks: runs on a worker's thread.
    fn encode(
        &mut self,
        records: Vec<Record>,
        runtime: &tokio::runtime::Handle,
    ) -> Result<(), ExtractorError> {
        let roller = self
            .roller
            .as_mut()
            .ok_or_else(|| ExtractorError::Worker("the encoder was lost".to_owned()))?;
        for record in records {
            roller.push(record)?;
        }
        let chunks = roller.drain();
        runtime.block_on(self.hand_on(chunks))
    }

    async fn hand_on(&mut self, chunks: Vec<Chunk>) -> Result<(), ExtractorError> {
        if chunks.is_empty() {
            return Ok(());
        }
        let sent = match &self.chunks {
            Some(sender) => sender.send(chunks).await.is_ok(),
            None => false,
        };
        if sent {
            return Ok(());
        }
        // The writer has stopped: its error says why.
        self.join_writer().await?;
        Err(ExtractorError::Worker(
            "the writer stopped early".to_owned(),
        ))
    }

    /// Tells the writer nothing more comes and waits for it: the files it finished, or why
    /// it failed.
    async fn join_writer(&mut self) -> Result<Vec<FileWritten>, ExtractorError> {
        self.chunks = None;
        match self.writer.take() {
            Some(writer) => writer.await.map_err(worker_died)?,
            None => Err(ExtractorError::Worker("the writer was lost".to_owned())),
        }
    }

    /// Closes the file in progress and waits for everything to be written.
    async fn finish(mut self) -> Result<Vec<FileWritten>, ExtractorError> {
        if let Some(roller) = self.roller.take() {
            let chunks = tokio::task::spawn_blocking(move || roller.finish())
                .await
                .map_err(worker_died)??;
            self.hand_on(chunks).await?;
        }
        self.join_writer().await
    }

    /// Stops the writer, which abandons the file in progress.
    async fn abort(&mut self) {
        let _ = self.join_writer().await;
    }
}

/// Where a lane's bytes go: the file in progress and the files it has finished.
struct Sink {
    settings: WriterSettings,
    prefix: String,
    tags: Vec<(String, String)>,
    current: Option<ObjectWriter>,
    next_file: Arc<AtomicU32>,
    files: Vec<FileWritten>,
}

impl Sink {
    /// Writes until the lane stops sending. A file still open then was not finished by the
    /// lane (it stopped on an error, or was cancelled), so it is abandoned: nothing of it
    /// stays visible.
    async fn run(
        mut self,
        output: Output,
        mut received: mpsc::Receiver<Vec<Chunk>>,
    ) -> Result<Vec<FileWritten>, ExtractorError> {
        while let Some(chunks) = received.recv().await {
            if let Err(e) = self.apply(&output, chunks).await {
                self.abort().await;
                return Err(e);
            }
        }
        self.abort().await;
        Ok(self.files)
    }

    async fn apply(&mut self, output: &Output, chunks: Vec<Chunk>) -> Result<(), ExtractorError> {
        for chunk in chunks {
            match chunk {
                Chunk::Bytes(bytes) => {
                    let writer = match &mut self.current {
                        Some(writer) => writer,
                        None => {
                            let key = format!(
                                "{}{:05}.{}",
                                self.prefix,
                                self.next_file.fetch_add(1, Ordering::SeqCst),
                                self.settings.extension()
                            );
                            let tags: Vec<(&str, &str)> = self
                                .tags
                                .iter()
                                .map(|(k, v)| (k.as_str(), v.as_str()))
                                .collect();
                            let content_type = match self.settings.format {
                                OutputFormat::Parquet => "application/vnd.apache.parquet",
                                OutputFormat::CsvGzip => "application/gzip",
                            };
                            self.current
                                .insert(output.create(&key, content_type, &tags).await?)
                        }
                    };
                    writer.write(bytes).await?;
                }
                Chunk::EndFile { records } => {
                    let writer = self.current.take().ok_or_else(|| {
                        ExtractorError::Worker("a file ended that was never begun".to_owned())
                    })?;
                    let written = writer.finish().await?;
                    tracing::info!(key = %written.key, size = written.size, records, "file written");
                    self.files.push((written, records));
                }
            }
        }
        Ok(())
    }

    async fn abort(&mut self) {
        if let Some(writer) = self.current.take() {
            writer.abort().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dks::{DksClient, DksSettings, RetryPolicy};
    use crate::keys::KeyProvider;
    use crate::loopback_dks::LoopbackDks;
    use crate::scan::Cell;
    use crate::synth;

    /// `count` cells under `keys`, in turn: the first two known to the data key service in
    /// the tests below, the others not.
    fn cells(count: usize, keys: &[synth::SynthKey], window: Window) -> Vec<ScanItem> {
        let records = synth::records(count, 200, keys.len(), window.start_ms(), 5);
        records
            .iter()
            .enumerate()
            .map(|(i, r)| {
                let envelope =
                    synth::envelope(&r.id_json, &keys[r.key_index], [i as u8; 16], &r.document);
                ScanItem::Cell(Cell::new(
                    r.row.clone(),
                    r.timestamp_ms,
                    envelope.as_bytes(),
                    i as u64 + 1,
                ))
            })
            .collect()
    }

    #[tokio::test]
    async fn a_batch_decodes_in_order_asking_once_per_key_and_not_again_once_known() {
        let dks = LoopbackDks::start().await.expect("loopback DKS");
        let keys = synth::keys(3, 11);
        for key in &keys[..2] {
            dks.add_key(&key.encrypted_key, &key.plaintext);
        }
        let cache = key_cache(&dks);
        let window = test_window();

        let mut batch = cells(6, &keys, window);
        let Some(ScanItem::Cell(late)) = batch.get_mut(4) else {
            panic!("a cell")
        };
        late.timestamp_ms = window.end_ms();
        batch.insert(
            1,
            ScanItem::Reject(Reject {
                row_key: None,
                timestamp_ms: None,
                line: Some(99),
                reason: "a broken line".to_owned(),
            }),
        );
        let outcomes = decode(batch, cache.clone(), window).await.expect("decoded");
        let shape: Vec<String> = outcomes
            .iter()
            .map(|o| match o {
                Ok(record) => format!("ok {}", record.id),
                Err(reject) => format!("rejected line {:?}", reject.line),
            })
            .collect();
        let records = synth::records(6, 200, keys.len(), window.start_ms(), 5);
        let ok = |i: usize| format!("ok {}", records[i].id_compact);
        assert_eq!(
            shape,
            [
                ok(0),
                "rejected line Some(99)".to_owned(),
                ok(1),
                "rejected line Some(3)".to_owned(),
                ok(3),
                "rejected line Some(5)".to_owned(),
                "rejected line Some(6)".to_owned(),
            ],
            "in the batch's order: the third key is refused, the late cell is outside the window"
        );
        for (outcome, i) in [(&outcomes[0], 0), (&outcomes[2], 1), (&outcomes[4], 3)] {
            let record = outcome.as_ref().expect("a record");
            assert_eq!(record.record, records[i].document.as_bytes());
        }
        let refused = outcomes[3].as_ref().expect_err("a reject");
        assert!(
            refused.reason.contains(&keys[2].key_id),
            "{}",
            refused.reason
        );
        assert_eq!(dks.requests(), 3, "one request per distinct key");

        // Every key is known now (the refusal too): the next batch asks for none.
        let again = decode(cells(6, &keys, window), cache, window)
            .await
            .expect("decoded");
        assert_eq!(again.iter().filter(|o| o.is_ok()).count(), 4);
        assert_eq!(dks.requests(), 3, "no request for keys already answered");
    }

    fn key_cache(dks: &LoopbackDks) -> Arc<KeyCache> {
        let client = DksClient::new(DksSettings {
            url: dks.url(),
            tls: None,
            correlation_id: "decode-test".to_owned(),
            retry: RetryPolicy::default(),
        })
        .expect("a client");
        Arc::new(KeyCache::new(KeyProvider::Dks(Box::new(client))))
    }

    fn test_window() -> Window {
        Window::new(1_710_149_400_000, 1_710_153_000_000).expect("a window")
    }

    #[tokio::test]
    async fn a_batch_of_many_new_keys_asks_for_each_once_and_keeps_its_order() {
        let dks = LoopbackDks::start().await.expect("loopback DKS");
        // More keys than are asked for at once, most met twice in the batch; the last
        // unknown to the service.
        let keys = synth::keys(3 * KEY_REQUESTS_AT_ONCE + 1, 5);
        for key in &keys[..keys.len() - 1] {
            dks.add_key(&key.encrypted_key, &key.plaintext);
        }
        let cache = key_cache(&dks);
        let window = test_window();
        let count = 2 * keys.len() - 3;
        let outcomes = decode(cells(count, &keys, window), cache, window)
            .await
            .expect("decoded");
        let records = synth::records(count, 200, keys.len(), window.start_ms(), 5);
        assert_eq!(outcomes.len(), records.len());
        for (outcome, expected) in outcomes.iter().zip(&records) {
            match outcome {
                Ok(record) => assert_eq!(record.record, expected.document.as_bytes()),
                Err(reject) => assert!(
                    expected.key_index == keys.len() - 1
                        && reject.reason.contains(&keys[expected.key_index].key_id),
                    "only the unknown key's records are refused: {}",
                    reject.reason
                ),
            }
        }
        assert_eq!(
            outcomes.iter().filter(|o| o.is_err()).count(),
            1,
            "the unknown key's one record"
        );
        assert_eq!(
            dks.requests(),
            keys.len() as u64,
            "one request per distinct key"
        );
    }

    /// An empty output directory of the test's own.
    fn fresh_output(name: &str) -> (std::path::PathBuf, Output) {
        let dir = std::env::temp_dir().join(format!("intraday-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("dir");
        let output = Output::local(&dir).expect("output");
        (dir, output)
    }

    /// Borrows an encoder for `worker` on a thread of its own, and gives the borrow long
    /// enough to have returned if it need not wait.
    fn borrowing(
        lanes: &Arc<Lanes>,
        worker: usize,
        bytes: usize,
    ) -> std::thread::JoinHandle<Result<Option<Lane>, ExtractorError>> {
        let lanes = lanes.clone();
        let waiting = std::thread::spawn(move || lanes.borrow(worker, bytes));
        std::thread::sleep(std::time::Duration::from_millis(200));
        waiting
    }

    /// One encoder while a page's worth or less has been handed on (here a row group, which
    /// is smaller), however many workers wait for it; another for a worker that would wait
    /// once more has; never more than the maximum. A worker gets back the encoder it had
    /// when it is idle; stopping wakes a worker that waits. Each encoder writes files of its
    /// own.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn another_encoder_starts_only_for_a_worker_that_would_wait_past_a_page() {
        let (dir, output) = fresh_output("lanes");
        let mut settings = WriterSettings::new(OutputFormat::Parquet, 1 << 20);
        settings.row_group_bytes = 1000;
        let lanes = Arc::new(Lanes::new(settings, 2, &output, "part-".into(), Vec::new()));
        let runtime = tokio::runtime::Handle::current();
        let records = |from: u64| -> Vec<Record> {
            (from..from + 3)
                .map(|i| Record {
                    id: format!("{{\"id\":{i}}}"),
                    timestamp_ms: i,
                    record: b"{}".to_vec(),
                })
                .collect()
        };

        let lent = lanes.clone();
        tokio::task::spawn_blocking(move || {
            let lanes = lent;
            let borrowing = |worker: usize, bytes: usize| borrowing(&lanes, worker, bytes);
            let taken = |waiting: std::thread::JoinHandle<Result<Option<Lane>, _>>| {
                waiting
                    .join()
                    .expect("joined")
                    .expect("lent")
                    .expect("an encoder")
            };
            let mut first = lanes.borrow(0, 600).expect("lent").expect("an encoder");
            assert_eq!(first.index, 0);
            first.encode(records(0), &runtime).expect("encoded");
            // 900 bytes, not yet more than a row group: worker 1 waits for the first.
            let waiting = borrowing(1, 300);
            assert!(!waiting.is_finished(), "a second encoder started too soon");
            lanes.give_back(first);
            let mut first = taken(waiting);
            assert_eq!(first.index, 0);

            // 1,200 bytes: worker 0 would wait, so it has a second.
            let waiting = borrowing(0, 300);
            assert!(waiting.is_finished(), "worker 0 waited past a row group");
            let mut second = taken(waiting);
            assert_eq!(second.index, 1);
            second.encode(records(10), &runtime).expect("encoded");
            first.encode(records(20), &runtime).expect("encoded");

            // Each worker gets back the one it had last, both being idle.
            lanes.give_back(second);
            lanes.give_back(first);
            let second = taken(borrowing(1, 10));
            assert_eq!(second.index, 1, "worker 1's own");
            let first = taken(borrowing(0, 10));
            assert_eq!(first.index, 0);

            // Both busy and at the maximum: a third worker waits, until the encoders stop.
            let waiting = borrowing(2, 100);
            assert!(!waiting.is_finished(), "more encoders than the maximum");
            lanes.stop();
            let after_stop = waiting.join().expect("joined").expect("lent");
            assert!(after_stop.is_none(), "none lent after a stop");
            assert!(lanes.borrow(0, 1).expect("lent").is_none());
            lanes.give_back(first);
            lanes.give_back(second);
        })
        .await
        .expect("the workers' part");

        let files = lanes.finish().await.expect("finished");
        // Files are numbered as their first bytes reach a writer, here both at the end.
        let keys: Vec<&str> = files
            .iter()
            .map(|(written, _)| written.key.as_str())
            .collect();
        assert_eq!(keys, ["part-00000.parquet", "part-00001.parquet"]);
        let mut counts: Vec<u64> = files.iter().map(|(_, records)| *records).collect();
        counts.sort();
        assert_eq!(counts, [3, 6]);
        std::fs::remove_dir_all(&dir).expect("cleaned up");
    }

    /// With row groups larger than a page, as in a real run, a page's worth of records is
    /// enough for a second encoder: workers do not share one for a whole row group.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_second_encoder_may_start_after_a_page_not_a_whole_row_group() {
        let (dir, output) = fresh_output("page");
        let settings = WriterSettings::new(OutputFormat::Parquet, 128 << 20);
        assert!(settings.row_group_bytes > 2 * PAGE_BYTES);
        let lanes = Arc::new(Lanes::new(settings, 2, &output, "part-".into(), Vec::new()));
        let lent = lanes.clone();
        tokio::task::spawn_blocking(move || {
            let first = lent
                .borrow(0, PAGE_BYTES)
                .expect("lent")
                .expect("an encoder");
            let waiting = borrowing(&lent, 1, 1);
            let finished = waiting.is_finished();
            // Let a worker that waits go, whatever the outcome.
            lent.give_back(first);
            let second = waiting
                .join()
                .expect("joined")
                .expect("lent")
                .expect("an encoder");
            assert!(
                finished,
                "a second worker waited past a page for the first encoder"
            );
            assert_eq!(second.index, 1);
            lent.give_back(second);
        })
        .await
        .expect("the workers' part");
        assert!(lanes.finish().await.expect("finished").is_empty());
        std::fs::remove_dir_all(&dir).expect("cleaned up");
    }

    #[test]
    fn batches_are_handed_on_in_the_order_they_were_taken() {
        let mut in_order = InOrder::default();
        in_order.add(1, "second");
        assert_eq!(in_order.next_ready(), None, "the first is still out");
        in_order.add(0, "first");
        assert_eq!(in_order.next_ready(), Some("first"));
        assert_eq!(in_order.next_ready(), Some("second"));
        assert_eq!(in_order.next_ready(), None);
        in_order.add(2, "third");
        assert_eq!(in_order.next_ready(), Some("third"));
    }

    /// A saved scan of `count` records under `name`, without its closing `N row(s)` and
    /// `Took` lines when `cut`.
    fn scan_file(name: &str, count: usize, cut: bool) -> std::path::PathBuf {
        let keys = synth::keys(2, 7);
        let records = synth::records(count, 100, keys.len(), test_window().start_ms(), 7);
        let mut text = Vec::new();
        synth::write_scan(&mut text, &records, &keys, 7).expect("written");
        if cut {
            let trailer = text
                .windows(6)
                .rposition(|w| w == b"row(s)")
                .expect("the trailer");
            let line = text[..trailer].iter().rposition(|&b| b == b'\n');
            text.truncate(line.map_or(0, |at| at + 1));
        }
        let path = std::env::temp_dir().join(format!(
            "intraday-shared-scan-{name}-{}.txt",
            std::process::id()
        ));
        std::fs::write(&path, text).expect("written");
        path
    }

    fn shared_scan(path: &std::path::Path) -> Arc<SharedScan> {
        let collection = Collection::parse("db.core.claimant").expect("a collection");
        let source = ScanSource::File(path.to_path_buf());
        let scan = OpenScan::open(&source, &collection, test_window()).expect("opened");
        Arc::new(SharedScan::new(scan, None))
    }

    #[test]
    fn a_shared_scan_gives_every_cell_once_in_numbered_batches_to_whoever_asks() {
        let count = 3 * BATCH_CELLS + 7;
        let path = scan_file("whole", count, false);
        let scan = shared_scan(&path);
        let takers: Vec<_> = (0..2)
            .map(|_| {
                let scan = scan.clone();
                std::thread::spawn(move || {
                    let mut taken = Vec::new();
                    while let Some((index, batch)) = scan.take_batch() {
                        taken.push((index, batch.len()));
                    }
                    taken
                })
            })
            .collect();
        let mut taken: Vec<(u64, usize)> = takers
            .into_iter()
            .flat_map(|taker| taker.join().expect("joined"))
            .collect();
        taken.sort_unstable();
        let indexes: Vec<u64> = taken.iter().map(|(index, _)| *index).collect();
        assert_eq!(indexes, [0, 1, 2, 3], "each batch once, numbered in turn");
        assert_eq!(taken.iter().map(|(_, cells)| cells).sum::<usize>(), count);
        assert!(
            scan.take_batch().is_none(),
            "nothing more once read to its end"
        );
        let summary = scan.finish().expect("the scan checks out");
        assert_eq!(summary.cells, count as u64);
        assert!(scan.finish().is_err(), "finished once");
        std::fs::remove_file(path).ok();
    }

    #[test]
    fn a_scan_cut_short_gives_what_it_read_then_fails_at_its_end() {
        let path = scan_file("cut", BATCH_CELLS + 5, true);
        let scan = shared_scan(&path);
        let sizes: Vec<usize> = std::iter::from_fn(|| scan.take_batch())
            .map(|(_, batch)| batch.len())
            .collect();
        assert_eq!(sizes, [BATCH_CELLS, 5], "every cell read is given");
        let err = scan.finish().expect_err("a truncated scan fails");
        assert!(err.to_string().contains("truncated"), "{err}");
        std::fs::remove_file(path).ok();

        // Stopped before its end, a scan is not checked: the consumer's error is the one
        // reported.
        let path = scan_file("stopped", 3 * BATCH_CELLS, true);
        let scan = shared_scan(&path);
        assert!(scan.take_batch().is_some());
        scan.stop();
        assert!(scan.take_batch().is_none(), "nothing taken once stopped");
        assert!(scan.finish().is_ok());
        std::fs::remove_file(path).ok();
    }

    #[tokio::test]
    async fn jobs_run_at_most_so_many_at_once_and_none_starts_after_a_failure() {
        let results = at_most(2, (0..5).map(|i| async move { Ok::<_, ExtractorError>(i) }))
            .await
            .expect("every job succeeds");
        assert_eq!(results, [0, 1, 2, 3, 4], "in the jobs' order");

        let started = Arc::new(AtomicU32::new(0));
        let jobs = (0..5).map(|i| {
            let started = started.clone();
            async move {
                started.fetch_add(1, Ordering::SeqCst);
                if i == 0 {
                    Err(ExtractorError::Worker("the first job failed".to_owned()))
                } else {
                    Ok(i)
                }
            }
        });
        let err = at_most(1, jobs).await.expect_err("the failure is returned");
        assert!(err.to_string().contains("the first job failed"), "{err}");
        assert_eq!(
            started.load(Ordering::SeqCst),
            1,
            "nothing started after it"
        );
    }
}
