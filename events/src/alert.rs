//! `Alert`: published to the alerts topic. It keeps the original's JSON fields
//! (`severity`, `notification_type`, `title_text`) so existing subscribers still work, and
//! adds what an operator needs to act.

use intraday_core::{Collection, CorrelationId};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum Severity {
    High,
    Critical,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum NotificationType {
    Information,
    Warning,
    Error,
}

/// What happened and what to do about it.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
pub struct AlertDetail {
    /// What happened, in a sentence.
    pub cause: String,
    /// The reason AWS or a service gave, verbatim.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Where the logs are (an S3 or CloudWatch location).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logs: Option<String>,
    /// The command that resolves it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resolve: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step_id: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Alert {
    pub version: u32,
    pub correlation_id: CorrelationId,
    pub severity: Severity,
    pub notification_type: NotificationType,
    pub title_text: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub collections: Vec<Collection>,
    pub detail: AlertDetail,
}
