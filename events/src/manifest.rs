//! The extractor's manifest: written last, so a run without one is incomplete by definition.
//! It is an S3 object (`<output>/_manifests/<correlation id>.json`), not a queue message.

use intraday_core::{Collection, CorrelationId, OutputFormat, Window};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::{EventError, MESSAGE_VERSION, from_value};

/// One file the extractor wrote.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ManifestFile {
    /// Relative to the manifest's `output`: `<db>_<table>/run=<YYYYMMDD-HHMM>/<name>`.
    pub key: String,
    pub size: u64,
    /// Hex SHA-256 of the file's bytes.
    pub sha256: String,
    pub records: u64,
}

/// What the extractor did for one collection.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct CollectionManifest {
    pub collection: Collection,
    pub window: Window,
    /// Records written.
    pub records: u64,
    /// Records that could not be read or decrypted, written to `rejects_file`.
    pub rejected: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub smallest_timestamp_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub largest_timestamp_ms: Option<u64>,
    /// Bytes written across `files`.
    pub bytes: u64,
    pub files: Vec<ManifestFile>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rejects_file: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Manifest {
    pub version: u32,
    pub correlation_id: CorrelationId,
    /// `YYYYMMDD-HHMM` of the trigger time.
    pub run: String,
    pub trigger_time_ms: u64,
    pub format: OutputFormat,
    /// The output root the keys are relative to: an `s3://` URL or a local directory.
    pub output: String,
    pub collections: Vec<CollectionManifest>,
}

impl Manifest {
    /// Reads a manifest, refusing one written by a newer release.
    pub fn parse(text: &str) -> Result<Self, EventError> {
        let value: serde_json::Value =
            serde_json::from_str(text).map_err(|e| EventError::NotJson(e.to_string()))?;
        let version = value
            .get("version")
            .ok_or(EventError::MissingField("version"))?
            .as_u64()
            .ok_or(EventError::WrongType {
                field: "version",
                expected: "a positive integer",
            })?;
        if version > u64::from(MESSAGE_VERSION) {
            return Err(EventError::VersionTooNew {
                kind: "Manifest".to_owned(),
                version,
                supported: MESSAGE_VERSION,
            });
        }
        from_value("Manifest", value)
    }
}
