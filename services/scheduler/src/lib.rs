//! The scheduler: gates each run per collection with a lock taken in one transaction, waits
//! by re-queueing its request with an SQS delay, defers with an alert, and asks the launcher
//! for exactly one cluster per run.

pub mod config;
mod error;
pub mod handler;

pub use error::ScheduleError;
pub use handler::{
    BackfillRefusal, Ctx, Scheduled, backfill_refusal, from_schedule, handle, handler, schedule,
};
