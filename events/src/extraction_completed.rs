//! `ExtractionCompleted`: the monitor has read a completed step's manifest; the table
//! builder registers the output and completes the run.

use intraday_core::{Collection, CorrelationId, DatabaseName, OutputFormat, S3Uri};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// What the extractor wrote for one collection.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct CollectionResult {
    pub collection: Collection,
    pub records: u64,
    /// The largest cell timestamp extracted, epoch ms; absent when no record was found, in
    /// which case the watermark stays where it was.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub largest_timestamp_ms: Option<u64>,
    /// The run's partition folder, `…/<db>_<table>/run=<YYYYMMDD-HHMM>/`.
    pub output_prefix: S3Uri,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ExtractionCompleted {
    pub version: u32,
    pub correlation_id: CorrelationId,
    pub cluster_id: String,
    pub step_id: String,
    pub manifest: S3Uri,
    pub database: DatabaseName,
    pub format: OutputFormat,
    /// `YYYYMMDD-HHMM`, the partition value `run=`.
    pub run: String,
    #[serde(default)]
    pub backfill: bool,
    pub collections: Vec<CollectionResult>,
}
