//! The reaper: after an Intraday read replica terminates, deletes the `meta_<clusterId>/`
//! folder it left in the primary's HBase root, and nothing else.

mod error;
pub mod handler;
pub mod reap;

pub use error::ReapError;
pub use handler::{Ctx, handle, handler};
pub use reap::{MetaLocations, ReapReport, meta_locations, reap, validate_cluster_id};
