//! The run's manifest and where things go: the layout of the output, the per-collection
//! tally that becomes a [`CollectionManifest`], and the rejects file.

use intraday_core::{Collection, CorrelationId, OutputFormat, Window};
use intraday_events::{CollectionManifest, MESSAGE_VERSION, Manifest, ManifestFile};
use serde::Serialize;

use crate::ExtractorError;
use crate::output::{ObjectWriter, Output, Written};
use crate::scan::Reject;

/// `<db>_<table>/run=<YYYYMMDD-HHMM>/`: the data files of one collection in one run.
pub fn data_folder(collection: &Collection, run: &str) -> String {
    format!("{}/run={run}/", collection.hive_table())
}

/// `_rejects/<db>_<table>/run=<YYYYMMDD-HHMM>/`: beside the data, under a folder Hive and
/// Spark skip (a leading `_`), so a table over the collection's folder never reads it.
pub fn rejects_folder(collection: &Collection, run: &str) -> String {
    format!("_rejects/{}/run={run}/", collection.hive_table())
}

/// `_manifests/<correlation id>.json`.
pub fn manifest_key(correlation_id: &CorrelationId) -> String {
    format!("_manifests/{correlation_id}.json")
}

/// How one extraction names its files in a collection's folders: the whole run's, or one
/// task's of a run spread over a Spark application. A task's names carry its number, so
/// tasks never write each other's files and a retried task clears only its own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileNames {
    /// Data files are `<parts>NNNNN.<ext>`.
    pub parts: String,
    /// The rejects file's name.
    pub rejects: String,
    /// What an earlier attempt left that this one replaces: data files starting with
    /// `parts`, rejects files starting with this.
    pub stale_rejects: String,
}

impl FileNames {
    /// `part-<id>-NNNNN.<ext>` and `rejects-<id>.jsonl`. An earlier attempt's files of the
    /// same run, a task's included, are stale.
    pub fn run(correlation_id: &CorrelationId) -> Self {
        Self {
            parts: format!("part-{correlation_id}-"),
            rejects: format!("rejects-{correlation_id}.jsonl"),
            stale_rejects: format!("rejects-{correlation_id}."),
        }
    }

    /// `part-<id>-tTTTTT-NNNNN.<ext>` and `rejects-<id>.tTTTTT.jsonl`.
    pub fn task(correlation_id: &CorrelationId, task: u32) -> Self {
        Self {
            parts: format!("part-{correlation_id}-t{task:05}-"),
            rejects: format!("rejects-{correlation_id}.t{task:05}.jsonl"),
            stale_rejects: format!("rejects-{correlation_id}.t{task:05}."),
        }
    }
}

/// What one collection's extraction has produced so far.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Tally {
    pub records: u64,
    pub smallest_timestamp_ms: Option<u64>,
    pub largest_timestamp_ms: Option<u64>,
    pub files: Vec<ManifestFile>,
}

impl Tally {
    pub fn observe(&mut self, timestamp_ms: u64) {
        self.records += 1;
        self.widen(timestamp_ms);
    }

    /// Counts another tally's records and timestamps in with these (not its files).
    pub fn absorb(&mut self, other: &Tally) {
        self.records += other.records;
        for timestamp_ms in [other.smallest_timestamp_ms, other.largest_timestamp_ms]
            .into_iter()
            .flatten()
        {
            self.widen(timestamp_ms);
        }
    }

    fn widen(&mut self, timestamp_ms: u64) {
        self.smallest_timestamp_ms = Some(
            self.smallest_timestamp_ms
                .map_or(timestamp_ms, |s| s.min(timestamp_ms)),
        );
        self.largest_timestamp_ms = Some(
            self.largest_timestamp_ms
                .map_or(timestamp_ms, |l| l.max(timestamp_ms)),
        );
    }

    pub fn add_file(&mut self, written: Written, records: u64) {
        self.files.push(ManifestFile {
            key: written.key,
            size: written.size,
            sha256: written.sha256,
            records,
        });
    }

    pub fn into_manifest(
        self,
        collection: Collection,
        window: Window,
        rejected: u64,
        rejects_file: Option<String>,
    ) -> CollectionManifest {
        CollectionManifest {
            collection,
            window,
            records: self.records,
            rejected,
            smallest_timestamp_ms: self.smallest_timestamp_ms,
            largest_timestamp_ms: self.largest_timestamp_ms,
            bytes: self.files.iter().map(|f| f.size).sum(),
            files: self.files,
            rejects_file,
        }
    }
}

pub fn manifest(
    correlation_id: CorrelationId,
    run: String,
    trigger_time_ms: u64,
    format: OutputFormat,
    output: String,
    collections: Vec<CollectionManifest>,
) -> Manifest {
    Manifest {
        version: MESSAGE_VERSION,
        correlation_id,
        run,
        trigger_time_ms,
        format,
        output,
        collections,
    }
}

/// One line of a rejects file. It names the record and the reason, never its contents.
#[derive(Serialize)]
struct RejectLine<'a> {
    row_key: Option<&'a str>,
    timestamp_ms: Option<u64>,
    line: Option<u64>,
    reason: &'a str,
}

/// A collection's rejects file, JSON lines, created with the first reject.
pub struct RejectsFile {
    key: String,
    tags: Vec<(String, String)>,
    writer: Option<ObjectWriter>,
    buffer: Vec<u8>,
    count: u64,
    first: Option<String>,
}

impl RejectsFile {
    /// `name` carries the run's id ([`FileNames`]), so two runs sharing a trigger minute
    /// keep their own.
    pub fn new(
        collection: &Collection,
        run: &str,
        name: &str,
        tags: Vec<(String, String)>,
    ) -> Self {
        Self {
            key: format!("{}{name}", rejects_folder(collection, run)),
            tags,
            writer: None,
            buffer: Vec::new(),
            count: 0,
            first: None,
        }
    }

    pub fn count(&self) -> u64 {
        self.count
    }

    pub fn key(&self) -> &str {
        &self.key
    }

    /// The first reject, for the error message: where it is and why.
    pub fn first(&self) -> Option<&str> {
        self.first.as_deref()
    }

    pub async fn add(&mut self, output: &Output, reject: &Reject) -> Result<(), ExtractorError> {
        self.count += 1;
        if self.first.is_none() {
            let at = match (&reject.row_key, reject.line) {
                (Some(row), _) => format!("row `{row}`"),
                (None, Some(line)) => format!("line {line}"),
                (None, None) => "the scan".to_owned(),
            };
            self.first = Some(format!("{at}: {}", reject.reason));
        }
        let line = RejectLine {
            row_key: reject.row_key.as_deref(),
            timestamp_ms: reject.timestamp_ms,
            line: reject.line,
            reason: &reject.reason,
        };
        serde_json::to_writer(&mut self.buffer, &line)
            .map_err(|e| ExtractorError::encode("the rejects file", e))?;
        self.buffer.push(b'\n');
        if self.buffer.len() >= 1024 * 1024 {
            self.flush(output).await?;
        }
        Ok(())
    }

    async fn flush(&mut self, output: &Output) -> Result<(), ExtractorError> {
        if self.buffer.is_empty() {
            return Ok(());
        }
        let writer = match &mut self.writer {
            Some(writer) => writer,
            None => {
                let tags: Vec<(&str, &str)> = self
                    .tags
                    .iter()
                    .map(|(k, v)| (k.as_str(), v.as_str()))
                    .collect();
                self.writer.insert(
                    output
                        .create(&self.key, "application/x-ndjson", &tags)
                        .await?,
                )
            }
        };
        writer.write(std::mem::take(&mut self.buffer)).await
    }

    /// Completes the file; its key when there was anything to reject.
    pub async fn finish(mut self, output: &Output) -> Result<Option<String>, ExtractorError> {
        self.flush(output).await?;
        match self.writer {
            Some(writer) => Ok(Some(writer.finish().await?.key)),
            None => Ok(None),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tallies_absorbed_count_as_if_one_had_observed_every_record() {
        let mut whole = Tally::default();
        let mut parts = [Tally::default(), Tally::default(), Tally::default()];
        for (i, timestamp_ms) in [50, 7, 90, 7, 60].into_iter().enumerate() {
            whole.observe(timestamp_ms);
            // The last part sees nothing: an empty tally changes nothing.
            parts[i % 2].observe(timestamp_ms);
        }
        let mut combined = Tally::default();
        for part in &parts {
            combined.absorb(part);
        }
        assert_eq!(combined, whole);
        assert_eq!(
            (
                combined.records,
                combined.smallest_timestamp_ms,
                combined.largest_timestamp_ms
            ),
            (5, Some(7), Some(90))
        );
    }

    #[test]
    fn the_layout_keeps_rejects_and_manifests_out_of_the_tables() {
        let c = Collection::parse("db.core.Claimant").expect("valid");
        assert_eq!(
            data_folder(&c, "20240311-1030"),
            "core_claimant/run=20240311-1030/"
        );
        assert_eq!(
            rejects_folder(&c, "20240311-1030"),
            "_rejects/core_claimant/run=20240311-1030/"
        );
        let id = CorrelationId::new("scheduled-20240311-1030").expect("id");
        assert_eq!(manifest_key(&id), "_manifests/scheduled-20240311-1030.json");
    }

    #[test]
    fn a_tally_becomes_the_manifest_entry() {
        let mut tally = Tally::default();
        for ts in [5, 3, 9] {
            tally.observe(ts);
        }
        tally.add_file(
            Written {
                key: "a".into(),
                size: 10,
                sha256: "x".into(),
            },
            2,
        );
        tally.add_file(
            Written {
                key: "b".into(),
                size: 5,
                sha256: "y".into(),
            },
            1,
        );
        let entry = tally.into_manifest(
            Collection::parse("db.core.claimant").expect("valid"),
            Window::new(1, 10).expect("window"),
            0,
            None,
        );
        assert_eq!(entry.records, 3);
        assert_eq!(entry.smallest_timestamp_ms, Some(3));
        assert_eq!(entry.largest_timestamp_ms, Some(9));
        assert_eq!(entry.bytes, 15);
        assert_eq!(entry.files.len(), 2);
        let empty = Tally::default().into_manifest(
            Collection::parse("db.core.claimant").expect("valid"),
            Window::new(1, 10).expect("window"),
            0,
            None,
        );
        assert_eq!(
            (empty.smallest_timestamp_ms, empty.largest_timestamp_ms),
            (None, None)
        );
    }
}
