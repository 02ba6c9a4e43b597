//! The table builder: registers a finished extraction in the Glue Data Catalog (an external
//! table per collection, the run's partition, the "latest" views) and completes the run:
//! its items become EMR_COMPLETED with their watermark and its locks are released, in one
//! transaction.

pub mod config;
mod error;
pub mod handler;
pub mod tables;

pub use error::TableBuilderError;
pub use handler::{ATTR_BACKFILL_DATA_END, Completed, Ctx, complete, handle, handler};
