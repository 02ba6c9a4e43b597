//! Intraday's domain, with no AWS and no I/O: job statuses and the transitions allowed
//! between them, collection names, the collections secret, windows and watermarks.
//!
//! Everything here takes values and returns values or decisions; the adapters in
//! `intraday-aws` carry the decisions out.

mod collection;
mod error;
mod location;
mod plan;
mod pyliteral;
mod run;
mod secret;
mod status;
mod window;

pub use collection::Collection;
pub use error::CoreError;
pub use location::{DatabaseName, OutputFormat, S3Uri};
pub use plan::{
    DeferReason, HistoryItem, LockState, RunPlan, WaitPolicy, history_blocker, plan_run,
};
pub use run::{CorrelationId, JobRecord, run_folder};
pub use secret::{CollectionEntry, Collections, parse_collections_secret};
pub use status::{JobStatus, TRANSITIONS, Transition};
pub use window::{Window, next_window_start};
