//! Runs: their ids, their job records and their folder names.

use std::fmt;

use std::borrow::Cow;

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use time::macros::format_description;

use crate::{Collection, CoreError, JobStatus};

/// Identifies one run across every message, job item, cluster tag and log line.
///
/// 1 to 128 characters of letters, digits and `-_.:`: it becomes an EMR tag value, an S3
/// path segment and part of shell arguments, so nothing else is allowed in.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct CorrelationId(String);

impl JsonSchema for CorrelationId {
    fn schema_name() -> Cow<'static, str> {
        "CorrelationId".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "description": "Identifies one run across messages, job items, cluster tags and logs.",
            "type": "string",
            "pattern": "^[A-Za-z0-9_.:-]{1,128}$"
        })
    }
}

impl CorrelationId {
    pub fn new(id: impl Into<String>) -> Result<Self, CoreError> {
        let id = id.into();
        let invalid = |reason: &str| CoreError::InvalidCorrelationId {
            id: id.clone(),
            reason: reason.to_owned(),
        };
        if id.is_empty() || id.len() > 128 {
            return Err(invalid("it must be 1 to 128 characters long"));
        }
        if !id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':'))
        {
            return Err(invalid("only ASCII letters, digits and `-_.:` are allowed"));
        }
        Ok(Self(id))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for CorrelationId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl TryFrom<String> for CorrelationId {
    type Error = CoreError;

    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::new(value)
    }
}

impl From<CorrelationId> for String {
    fn from(value: CorrelationId) -> Self {
        value.0
    }
}

/// One item of the job table: one collection in one run, with the original's attributes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobRecord {
    pub correlation_id: CorrelationId,
    pub collection: Collection,
    pub status: JobStatus,
    /// `TriggeredTime`, epoch ms.
    pub triggered_time: u64,
    /// `ProcessedDataStart`, epoch ms.
    pub processed_data_start: Option<u64>,
    /// `ProcessedDataEnd`: the largest cell timestamp extracted, epoch ms.
    pub processed_data_end: Option<u64>,
    /// `EMRReadyTime`, epoch ms.
    pub emr_ready_time: Option<u64>,
    /// `EMRClusterId`.
    pub emr_cluster_id: Option<String>,
    /// `WindowEnd`: the end of the window this run extracts (exclusive), epoch ms.
    pub window_end: Option<u64>,
    /// `StatusChangedTime`: when `JobStatus` last changed, epoch ms.
    pub status_changed_at: Option<u64>,
    /// `Backfill`: an explicit window that never moves the watermark.
    pub backfill: bool,
    /// `OutputLocation`: where the run writes (`s3://…/`), fixed at launch.
    pub output: Option<String>,
    /// `Database`: the catalog database the run registers its tables in.
    pub database: Option<String>,
    /// `OutputFormat`: `parquet` or `csv-gzip`.
    pub format: Option<String>,
    /// `StepState`: the extraction step's last state the monitor saw.
    pub step_state: Option<String>,
}

impl JobRecord {
    pub fn new(
        correlation_id: CorrelationId,
        collection: Collection,
        status: JobStatus,
        triggered_time: u64,
    ) -> Self {
        Self {
            correlation_id,
            collection,
            status,
            triggered_time,
            processed_data_start: None,
            processed_data_end: None,
            emr_ready_time: None,
            emr_cluster_id: None,
            window_end: None,
            status_changed_at: None,
            backfill: false,
            output: None,
            database: None,
            format: None,
            step_state: None,
        }
    }
}

/// The run's output folder name: `YYYYMMDD-HHMM` of the trigger time, in UTC.
pub fn run_folder(trigger_ms: u64) -> Result<String, CoreError> {
    let nanos = i128::from(trigger_ms) * 1_000_000;
    let at = OffsetDateTime::from_unix_timestamp_nanos(nanos)
        .map_err(|_| CoreError::TimestampOutOfRange(i128::from(trigger_ms)))?;
    at.format(format_description!("[year][month][day]-[hour][minute]"))
        .map_err(|_| CoreError::TimestampOutOfRange(i128::from(trigger_ms)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_folder_is_the_utc_minute_of_the_trigger() {
        // 2024-03-11T10:30:00Z, the sample schedule event's time.
        assert_eq!(
            run_folder(1_710_153_000_000).as_deref(),
            Ok("20240311-1030")
        );
        assert_eq!(
            run_folder(1_710_153_059_999).as_deref(),
            Ok("20240311-1030")
        );
        assert_eq!(run_folder(0).as_deref(), Ok("19700101-0000"));
        assert_eq!(
            run_folder(u64::MAX).unwrap_err().to_string(),
            format!(
                "timestamp {} ms is outside the range a run can have",
                u64::MAX
            )
        );
    }

    #[test]
    fn correlation_ids_are_safe_in_paths_tags_and_shells() {
        assert!(CorrelationId::new("scheduled-20240311-1030.a:b_c").is_ok());
        for bad in ["", "a b", "../x", "a;b", "a/b", &"x".repeat(129)] {
            assert!(CorrelationId::new(bad).is_err(), "{bad:?}");
        }
        assert_eq!(
            CorrelationId::new("a/b").unwrap_err().to_string(),
            "invalid correlation id `a/b`: only ASCII letters, digits and `-_.:` are allowed"
        );
    }
}
