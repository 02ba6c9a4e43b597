//! The launcher: turns a `LaunchRequested` into exactly one EMR read-replica cluster that
//! runs the extractor step, from the template in `infra/emr/`.

pub mod cluster;
pub mod config;
mod error;
pub mod handler;

pub use error::LaunchError;
pub use handler::{Ctx, Launched, handle, handler, launch_once};
