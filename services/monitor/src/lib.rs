//! The monitor: follows EMR's cluster and step events to the end of every run, and sweeps
//! for the events EMR never sent.

pub mod config;
pub mod decide;
mod error;
pub mod handler;
pub mod run;
pub mod sweep;

pub use error::MonitorError;
pub use handler::{Ctx, STEP_NAME, SweepPolicy, handle, handler};
pub use sweep::{SweepReport, sweep};
