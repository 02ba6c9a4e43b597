//! `LaunchRequested`: the scheduler has taken the locks; the launcher starts the cluster.

use intraday_core::{Collection, CorrelationId, DatabaseName, OutputFormat, S3Uri, Window};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// One collection and the window of cell timestamps to extract for it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct CollectionWindow {
    pub collection: Collection,
    pub window: Window,
    /// Whether its records hold personal data: every object written is tagged `pii`.
    pub pii: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct LaunchRequested {
    pub version: u32,
    pub correlation_id: CorrelationId,
    /// The run's trigger time, epoch ms; names its output folder `run=<YYYYMMDD-HHMM>`.
    pub trigger_time_ms: u64,
    pub collections: Vec<CollectionWindow>,
    /// Where the collections' folders go.
    pub output: S3Uri,
    pub database: DatabaseName,
    #[serde(default)]
    pub format: OutputFormat,
    /// A backfill never moves a watermark.
    #[serde(default)]
    pub backfill: bool,
}

impl LaunchRequested {
    pub(crate) fn check(&self) -> Result<(), (String, String)> {
        if self.collections.is_empty() {
            return Err((
                "collections".into(),
                "a launch needs at least one collection".into(),
            ));
        }
        let mut seen = std::collections::BTreeSet::new();
        for (i, c) in self.collections.iter().enumerate() {
            if !seen.insert(&c.collection) {
                return Err((
                    format!("collections[{i}].collection"),
                    format!("{} is listed twice", c.collection),
                ));
            }
        }
        Ok(())
    }
}
