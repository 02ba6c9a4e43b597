//! Extraction windows and watermarks.

use std::fmt;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::{CoreError, JobRecord, JobStatus};

/// A half-open window of HBase cell timestamps, `[start_ms, end_ms)`: HBase's TIMERANGE
/// excludes its upper bound, so the next window starts exactly where this one ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(try_from = "RawWindow")]
pub struct Window {
    /// First cell timestamp included, epoch milliseconds.
    start_ms: u64,
    /// First cell timestamp excluded, epoch milliseconds; greater than `start_ms`.
    end_ms: u64,
}

/// The wire form of a window, checked by `Window::new` before it becomes one.
#[derive(Deserialize, JsonSchema)]
struct RawWindow {
    /// First cell timestamp included, epoch milliseconds.
    start_ms: u64,
    /// First cell timestamp excluded, epoch milliseconds; greater than `start_ms`.
    end_ms: u64,
}

impl TryFrom<RawWindow> for Window {
    type Error = CoreError;

    fn try_from(raw: RawWindow) -> Result<Self, Self::Error> {
        Window::new(raw.start_ms, raw.end_ms)
    }
}

impl Window {
    pub fn new(start_ms: u64, end_ms: u64) -> Result<Self, CoreError> {
        if start_ms >= end_ms {
            return Err(CoreError::EmptyWindow { start_ms, end_ms });
        }
        Ok(Self { start_ms, end_ms })
    }

    pub fn start_ms(&self) -> u64 {
        self.start_ms
    }

    pub fn end_ms(&self) -> u64 {
        self.end_ms
    }

    pub fn contains(&self, timestamp_ms: u64) -> bool {
        (self.start_ms..self.end_ms).contains(&timestamp_ms)
    }
}

impl fmt::Display for Window {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "[{}, {})", self.start_ms, self.end_ms)
    }
}

/// Where a collection's next scheduled window starts: one past the `ProcessedDataEnd` of its
/// newest `EMR_COMPLETED` run, or 0 when it has none.
///
/// `newest_first` is the collection's history ordered by `TriggeredTime`, newest first, as the
/// `byCollection` index returns it. A completed run without `ProcessedDataEnd` found no records;
/// like the original, it leaves the older watermark in place. A backfill never moves it.
pub fn next_window_start<'a>(newest_first: impl IntoIterator<Item = &'a JobRecord>) -> u64 {
    newest_first
        .into_iter()
        .filter(|job| job.status == JobStatus::EmrCompleted && !job.backfill)
        .find_map(|job| job.processed_data_end)
        .map_or(0, |end| end.saturating_add(1))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Collection, CorrelationId};

    fn job(status: JobStatus, end: Option<u64>) -> JobRecord {
        let mut job = JobRecord::new(
            CorrelationId::new("run-1").expect("valid id"),
            Collection::parse("db.core.claimant").expect("valid collection"),
            status,
            1_000,
        );
        job.processed_data_end = end;
        job
    }

    #[test]
    fn rejects_an_empty_or_reversed_window_at_parse_time() {
        let err = serde_json::from_str::<Window>(r#"{"start_ms": 10, "end_ms": 10}"#).unwrap_err();
        assert!(
            err.to_string()
                .contains("invalid window [10, 10): the start must be before the end"),
            "{err}"
        );
        assert!(serde_json::from_str::<Window>(r#"{"start_ms": 11, "end_ms": 10}"#).is_err());
        let err = serde_json::from_str::<Window>(r#"{"start_ms": 1}"#).unwrap_err();
        assert!(err.to_string().contains("missing field `end_ms`"), "{err}");
        let ok: Window = serde_json::from_str(r#"{"start_ms": 1, "end_ms": 2}"#).expect("valid");
        assert!(ok.contains(1) && !ok.contains(2));
    }

    #[test]
    fn watermark_is_newest_completed_end_plus_one() {
        let cases: Vec<(Vec<JobRecord>, u64)> = vec![
            (vec![], 0),
            (vec![job(JobStatus::EmrFailed, Some(50))], 0),
            (vec![job(JobStatus::EmrCompleted, Some(99))], 100),
            (
                vec![
                    job(JobStatus::EmrProcessing, None),
                    job(JobStatus::EmrCompleted, None),
                    job(JobStatus::EmrCompleted, Some(200)),
                    job(JobStatus::EmrCompleted, Some(100)),
                ],
                201,
            ),
            (vec![job(JobStatus::EmrCompleted, Some(u64::MAX))], u64::MAX),
            (
                vec![
                    JobRecord {
                        backfill: true,
                        ..job(JobStatus::EmrCompleted, Some(900))
                    },
                    job(JobStatus::Deferred, None),
                    job(JobStatus::AcknowledgedEmrFailed, Some(800)),
                    job(JobStatus::EmrCompleted, Some(300)),
                ],
                301,
            ),
        ];
        for (history, want) in cases {
            assert_eq!(next_window_start(&history), want, "{history:?}");
        }
    }
}
