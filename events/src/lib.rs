//! Every message Intraday passes, typed with serde, with JSON Schemas generated from the types.
//!
//! - AWS's events as EventBridge delivers them: [`AwsEvent`] (scheduled events, EMR cluster
//!   state changes and step status changes).
//! - Our own messages, in one tagged envelope `{"type", "version", "correlation_id", ...}`:
//!   [`Message`].
//! - The extractor's [`Manifest`], an S3 object rather than a queue message.
//!
//! [`Inbound::parse`] reads any queue body and says clearly what is wrong with a bad one.

mod alert;
mod aws;
mod error;
mod extraction_completed;
mod launch_requested;
mod manifest;
mod message;
mod run_requested;
pub mod schema;

pub use alert::{Alert, AlertDetail, NotificationType, Severity};
pub use aws::{
    AwsEvent, AwsEventDetail, ClusterState, ClusterStateChange, EventEnvelope, ReasonCode,
    ScheduledDetail, StateChangeReason, StepState, StepStatusChange,
};
pub use error::EventError;
pub use extraction_completed::{CollectionResult, ExtractionCompleted};
pub use launch_requested::{CollectionWindow, LaunchRequested};
pub use manifest::{CollectionManifest, Manifest, ManifestFile};
pub use message::{Inbound, Message};
pub use run_requested::{Backfill, RunRequested, Trigger};

/// The version of our messages this release writes and the newest it reads.
pub const MESSAGE_VERSION: u32 = 1;

/// Deserialises `value` into `T`, naming the path of the first field that is wrong.
pub(crate) fn from_value<T: serde::de::DeserializeOwned>(
    kind: &str,
    value: serde_json::Value,
) -> Result<T, EventError> {
    serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        EventError::Invalid {
            kind: kind.to_owned(),
            path: if path == "." {
                "(top level)".to_owned()
            } else {
                path
            },
            reason: e.into_inner().to_string(),
        }
    })
}
