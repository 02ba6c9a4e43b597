//! `RunRequested`: asks the scheduler for a run, from the schedule, an operator or a replay.

use intraday_core::{Collection, CorrelationId, DatabaseName, S3Uri, Window};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Who asked for the run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Trigger {
    Schedule,
    Manual,
    Replay,
}

/// An explicit window written to its own database and prefix. A backfill takes the same
/// per-collection locks as a scheduled run but never moves a watermark.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Backfill {
    pub window: Window,
    pub database: DatabaseName,
    pub output_prefix: S3Uri,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct RunRequested {
    pub version: u32,
    pub correlation_id: CorrelationId,
    pub trigger: Trigger,
    /// When the run was requested, epoch ms: the end of every scheduled window. Fixed once;
    /// a re-queued request keeps it.
    pub trigger_time_ms: u64,
    /// The collections to run; absent means every collection in the secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub collections: Option<Vec<Collection>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backfill: Option<Backfill>,
    /// 1 on the first delivery; the scheduler adds one each time it re-queues the request
    /// to wait for a lock.
    #[serde(default = "first_attempt")]
    pub attempt: u32,
    /// When the first attempt was requested, epoch ms, so the wait limit counts from there.
    pub first_requested_ms: u64,
}

fn first_attempt() -> u32 {
    1
}

impl RunRequested {
    /// Checks what the types alone cannot.
    pub(crate) fn check(&self) -> Result<(), (String, String)> {
        if self.attempt == 0 {
            return Err(("attempt".into(), "attempts count from 1".into()));
        }
        if let Some(collections) = &self.collections
            && collections.is_empty()
        {
            return Err((
                "collections".into(),
                "an empty list names no collection; omit it to run every collection".into(),
            ));
        }
        if self.backfill.is_some() && self.collections.is_none() {
            return Err((
                "collections".into(),
                "a backfill must name its collections".into(),
            ));
        }
        Ok(())
    }
}
