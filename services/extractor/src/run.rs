//! One run: every collection in turn, each as a pipeline of
//! scan reader (a blocking thread) → decoders (batches in parallel, keys from the cache) →
//! writer (encoding off the async threads, uploads in order), then the manifest, last.
//!
//! Channels between the stages are bounded, so however large a scan is, only a few batches
//! and one row group are in memory at a time.

use std::sync::Arc;

use intraday_core::{Collection, CorrelationId, OutputFormat, Window, run_folder};
use intraday_events::{CollectionManifest, Manifest};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tracing::Instrument;

use crate::ExtractorError;
use crate::keys::{KeyAnswer, KeyCache};
use crate::manifest::{RejectsFile, Tally, data_folder, manifest, manifest_key, rejects_folder};
use crate::output::{ObjectWriter, Output};
use crate::record::{self, Record};
use crate::scan::{Reject, ScanItem};
use crate::source::{ScanSource, read_scan};
use crate::writer::{Chunk, Roller, WriterSettings};

/// Cells per batch: enough to amortise the hand-offs, small enough to keep memory flat.
const BATCH_CELLS: usize = 256;
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
    pub file_size: u64,
    /// A collection with more rejects than this fails the step.
    pub max_rejects: u64,
    /// Batches decoded at once.
    pub workers: usize,
    pub jobs: Vec<CollectionJob>,
}

type Outcome = Result<Record, Reject>;

/// Extracts every collection, then writes the manifest. Any error returns before the
/// manifest is written, so a run without a manifest is an incomplete run.
pub async fn run(
    config: &RunConfig,
    output: &Output,
    keys: Arc<KeyCache>,
) -> Result<Manifest, ExtractorError> {
    let run = run_folder(config.trigger_time_ms)?;
    let mut entries = Vec::with_capacity(config.jobs.len());
    for job in &config.jobs {
        let span =
            tracing::info_span!("collection", collection = %job.collection, window = %job.window);
        let entry = extract(config, job, &run, output, keys.clone())
            .instrument(span)
            .await?;
        tracing::info!(
            collection = %job.collection,
            records = entry.records,
            rejected = entry.rejected,
            files = entry.files.len(),
            bytes = entry.bytes,
            "collection extracted"
        );
        entries.push(entry);
    }
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

async fn extract(
    config: &RunConfig,
    job: &CollectionJob,
    run: &str,
    output: &Output,
    keys: Arc<KeyCache>,
) -> Result<CollectionManifest, ExtractorError> {
    let data_prefix = data_folder(&job.collection, run);
    let cid = &config.correlation_id;
    let stale = output.clear(&data_prefix, &format!("part-{cid}-")).await?
        + output
            .clear(
                &rejects_folder(&job.collection, run),
                &format!("rejects-{cid}."),
            )
            .await?;
    if stale > 0 {
        tracing::warn!(stale, prefix = %data_prefix, "removed files an earlier attempt of this run left");
    }

    let (batch_tx, mut batch_rx) = mpsc::channel::<Vec<ScanItem>>(4);
    let reader = {
        let (source, collection, window) = (job.source.clone(), job.collection.clone(), job.window);
        tokio::task::spawn_blocking(move || {
            let mut batch = Vec::with_capacity(BATCH_CELLS);
            let mut bytes = 0;
            let summary = read_scan(&source, &collection, window, |item| {
                bytes += match &item {
                    ScanItem::Cell(cell) => cell.value.len(),
                    ScanItem::Reject(_) => 0,
                };
                batch.push(item);
                if batch.len() < BATCH_CELLS && bytes < BATCH_BYTES {
                    return true;
                }
                bytes = 0;
                batch_tx.blocking_send(std::mem::take(&mut batch)).is_ok()
            });
            // Sent even when the scan failed: its rejects (a line cut short) belong in the
            // rejects file. The consumer may have stopped; its error is then the one reported.
            if !batch.is_empty() {
                let _ = batch_tx.blocking_send(batch);
            }
            summary
        })
    };

    let (done_tx, mut done_rx) =
        mpsc::channel::<JoinHandle<Result<Vec<Outcome>, ExtractorError>>>(config.workers.max(1));
    let window = job.window;
    let dispatcher = tokio::spawn(
        async move {
            while let Some(batch) = batch_rx.recv().await {
                let decoding = tokio::spawn(decode(batch, keys.clone(), window).in_current_span());
                if done_tx.send(decoding).await.is_err() {
                    break;
                }
            }
        }
        .in_current_span(),
    );

    let tags = vec![
        ("pii".to_owned(), job.pii.to_string()),
        ("db".to_owned(), job.collection.db().to_owned()),
        ("table".to_owned(), job.collection.table().to_owned()),
    ];
    let mut write = CollectionWrite {
        settings: WriterSettings::new(config.format, config.file_size),
        prefix: format!("{data_prefix}part-{cid}-"),
        tags: tags.clone(),
        roller: None,
        current: None,
        next_file: 0,
        tally: Tally::default(),
        rejects: RejectsFile::new(&job.collection, run, cid, tags),
    };
    write.roller = Some(Roller::new(write.settings));

    let consumed = async {
        while let Some(decoding) = done_rx.recv().await {
            let outcomes = decoding.await.map_err(worker_died)??;
            write.batch(output, outcomes).await?;
        }
        Ok::<_, ExtractorError>(())
    }
    .await;
    if let Err(e) = consumed {
        // Stopping the channel stops the dispatcher, then the reader (and its hbase shell).
        drop(done_rx);
        dispatcher.abort();
        write.abort(output).await;
        return Err(e);
    }
    let _ = dispatcher.await;
    let scanned = reader.await.map_err(worker_died)?;
    let summary = match scanned {
        Ok(summary) => summary,
        Err(e) => {
            // The rejects so far still tell what went wrong before the scan did.
            write.abort_data().await;
            if let Err(rejects_error) = write.rejects.finish(output).await {
                tracing::warn!(error = %rejects_error, "the rejects file could not be written");
            }
            return Err(e);
        }
    };
    tracing::info!(rows = summary.rows, cells = summary.cells, "scan complete");

    let first_reject = write.rejects.first().map(str::to_owned);
    let (tally, rejected, rejects_file) = write.finish(output).await?;
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

fn worker_died(e: tokio::task::JoinError) -> ExtractorError {
    ExtractorError::Worker(e.to_string())
}

/// Decodes one batch: envelopes, then the batch's distinct data keys, then AES and the
/// JSON check. The CPU work runs on the blocking pool so uploads and key requests are never
/// held up behind it.
async fn decode(
    batch: Vec<ScanItem>,
    keys: Arc<KeyCache>,
    window: Window,
) -> Result<Vec<Outcome>, ExtractorError> {
    let opened = tokio::task::spawn_blocking(move || {
        batch
            .into_iter()
            .map(|item| match item {
                ScanItem::Reject(reject) => Err(reject),
                ScanItem::Cell(cell) if !window.contains(cell.timestamp_ms) => {
                    let reason = format!(
                        "the cell timestamp {} is outside the window {window}",
                        cell.timestamp_ms
                    );
                    Err(Reject::of_cell(&cell, reason))
                }
                ScanItem::Cell(cell) => record::open(cell),
            })
            .collect::<Vec<_>>()
    })
    .await
    .map_err(worker_died)?;

    // A batch names a handful of keys at most: a list beats a map here.
    let mut answers: Vec<(String, String, KeyAnswer)> = Vec::new();
    for sealed in opened.iter().flatten() {
        let known = answers
            .iter()
            .any(|(id, enc, _)| *id == sealed.key_id && *enc == sealed.encrypted_key);
        if !known {
            let answer = keys.get(&sealed.key_id, &sealed.encrypted_key).await?;
            answers.push((sealed.key_id.clone(), sealed.encrypted_key.clone(), answer));
        }
    }

    tokio::task::spawn_blocking(move || {
        opened
            .into_iter()
            .map(|opened| {
                let sealed = opened?;
                let answer = answers
                    .iter()
                    .find(|(id, enc, _)| *id == sealed.key_id && *enc == sealed.encrypted_key)
                    .map(|(_, _, answer)| answer);
                match answer {
                    Some(KeyAnswer::Key(key)) => record::decrypt(sealed, key),
                    Some(KeyAnswer::Refused(reason)) => Err(sealed.reject(reason.clone())),
                    None => Err(sealed.reject("no data key was looked up for this record")),
                }
            })
            .collect()
    })
    .await
    .map_err(worker_died)
}

/// The writing side of one collection: the encoder, the object being uploaded and what has
/// been written so far.
struct CollectionWrite {
    settings: WriterSettings,
    prefix: String,
    tags: Vec<(String, String)>,
    roller: Option<Roller>,
    current: Option<ObjectWriter>,
    next_file: u32,
    tally: Tally,
    rejects: RejectsFile,
}

impl CollectionWrite {
    async fn batch(
        &mut self,
        output: &Output,
        outcomes: Vec<Outcome>,
    ) -> Result<(), ExtractorError> {
        let mut records = Vec::with_capacity(outcomes.len());
        for outcome in outcomes {
            match outcome {
                Ok(record) => {
                    self.tally.observe(record.timestamp_ms);
                    records.push(record);
                }
                Err(reject) => self.rejects.add(output, &reject).await?,
            }
        }
        if records.is_empty() {
            return Ok(());
        }
        let mut roller = self
            .roller
            .take()
            .ok_or_else(|| ExtractorError::Worker("the encoder was lost".to_owned()))?;
        let (roller, chunks) = tokio::task::spawn_blocking(move || {
            for record in records {
                roller.push(record)?;
            }
            let chunks = roller.drain();
            Ok::<_, ExtractorError>((roller, chunks))
        })
        .await
        .map_err(worker_died)??;
        self.roller = Some(roller);
        self.apply(output, chunks).await
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
                                self.next_file,
                                self.settings.extension()
                            );
                            self.next_file += 1;
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
                    self.tally.add_file(written, records);
                }
            }
        }
        Ok(())
    }

    async fn finish(
        mut self,
        output: &Output,
    ) -> Result<(Tally, u64, Option<String>), ExtractorError> {
        if let Some(roller) = self.roller.take() {
            let chunks = tokio::task::spawn_blocking(move || roller.finish())
                .await
                .map_err(worker_died)??;
            self.apply(output, chunks).await?;
        }
        let rejected = self.rejects.count();
        let rejects_file = self.rejects.finish(output).await?;
        Ok((self.tally, rejected, rejects_file))
    }

    async fn abort_data(&mut self) {
        if let Some(writer) = self.current.take() {
            writer.abort().await;
        }
    }

    async fn abort(mut self, output: &Output) {
        self.abort_data().await;
        if let Err(e) = self.rejects.finish(output).await {
            tracing::warn!(error = %e, "the rejects file could not be written");
        }
    }
}
