//! AWS's events as EventBridge delivers them to an SQS queue: the envelope, the scheduled
//! event, and EMR's cluster and step state changes (facts: the AWS events reference; samples
//! in `samples/aws/`).

use std::borrow::Cow;
use std::fmt;

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;
use time::OffsetDateTime;

use crate::{EventError, from_value};

/// The EventBridge envelope around a typed `detail`. Unknown top-level fields are ignored;
/// `account` is optional because not every deliverer sets it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub struct EventEnvelope<D> {
    /// Always `"0"` today; older scheduled-event samples omit it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// Unique per event; a redelivered copy keeps it.
    pub id: String,
    pub detail_type: String,
    pub source: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account: Option<String>,
    /// When the emitting service says the event happened (RFC 3339, UTC).
    #[serde(with = "time::serde::rfc3339")]
    #[schemars(with = "String", extend("format" = "date-time"))]
    pub time: OffsetDateTime,
    pub region: String,
    #[serde(default)]
    pub resources: Vec<String>,
    pub detail: D,
}

impl<D> EventEnvelope<D> {
    /// The event's time in epoch milliseconds.
    pub fn time_ms(&self) -> u64 {
        u64::try_from(self.time.unix_timestamp_nanos() / 1_000_000).unwrap_or(0)
    }
}

/// A scheduled rule's `detail`: always `{}`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
pub struct ScheduledDetail {}

/// `detail` of `EMR Cluster State Change`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ClusterStateChange {
    pub cluster_id: String,
    pub state: ClusterState,
    /// The cluster's name (`Name` given to RunJobFlow).
    pub name: String,
    #[serde(default)]
    pub severity: Option<String>,
    /// Arrives as a JSON string inside `detail`; read into a code and a message.
    #[serde(default)]
    pub state_change_reason: StateChangeReason,
    /// Human text; AWS says not to parse it to drive a workflow.
    #[serde(default)]
    pub message: Option<String>,
}

/// `detail` of `EMR Step Status Change`. Step events carry no `stateChangeReason`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct StepStatusChange {
    pub cluster_id: String,
    pub step_id: String,
    pub state: StepState,
    /// The step's name (not the cluster's).
    pub name: String,
    #[serde(default)]
    pub severity: Option<String>,
    #[serde(default)]
    pub action_on_failure: Option<String>,
    #[serde(default)]
    pub message: Option<String>,
}

/// Declares a string enum that keeps values it does not know, so a new state from AWS is
/// logged and ignored by the handler rather than failing the message.
macro_rules! open_enum {
    ($(#[$meta:meta])* $name:ident { $($variant:ident => $text:literal),* $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash)]
        pub enum $name {
            $($variant,)*
            /// A value this release does not know.
            Unknown(String),
        }

        impl $name {
            pub fn as_str(&self) -> &str {
                match self {
                    $($name::$variant => $text,)*
                    $name::Unknown(other) => other,
                }
            }
        }

        impl From<&str> for $name {
            fn from(value: &str) -> Self {
                match value {
                    $($text => $name::$variant,)*
                    other => $name::Unknown(other.to_owned()),
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let text = <Cow<'de, str>>::deserialize(d)?;
                Ok($name::from(text.as_ref()))
            }
        }

        impl JsonSchema for $name {
            fn schema_name() -> Cow<'static, str> {
                stringify!($name).into()
            }

            fn json_schema(_: &mut SchemaGenerator) -> Schema {
                json_schema!({
                    "type": "string",
                    "description": concat!("Known values: ", $($text, " "),*, "; others are accepted and ignored."),
                    "examples": [$($text),*]
                })
            }
        }
    };
}

open_enum!(
    /// EMR's `ClusterState`.
    ClusterState {
        Starting => "STARTING",
        Bootstrapping => "BOOTSTRAPPING",
        Running => "RUNNING",
        Waiting => "WAITING",
        Terminating => "TERMINATING",
        Terminated => "TERMINATED",
        TerminatedWithErrors => "TERMINATED_WITH_ERRORS",
    }
);

open_enum!(
    /// EMR's `StepState`.
    StepState {
        Pending => "PENDING",
        CancelPending => "CANCEL_PENDING",
        Running => "RUNNING",
        Completed => "COMPLETED",
        Cancelled => "CANCELLED",
        Failed => "FAILED",
        Interrupted => "INTERRUPTED",
    }
);

open_enum!(
    /// `stateChangeReason.code` of a cluster event; empty on STARTING.
    ReasonCode {
        None => "",
        InternalError => "INTERNAL_ERROR",
        ValidationError => "VALIDATION_ERROR",
        InstanceFailure => "INSTANCE_FAILURE",
        InstanceFleetTimeout => "INSTANCE_FLEET_TIMEOUT",
        BootstrapFailure => "BOOTSTRAP_FAILURE",
        UserRequest => "USER_REQUEST",
        StepFailure => "STEP_FAILURE",
        AllStepsCompleted => "ALL_STEPS_COMPLETED",
    }
);

impl ClusterState {
    pub fn is_terminated(&self) -> bool {
        matches!(
            self,
            ClusterState::Terminated | ClusterState::TerminatedWithErrors
        )
    }
}

/// A cluster's state change reason, read from the JSON string EMR puts in `detail`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateChangeReason {
    pub code: ReasonCode,
    pub message: Option<String>,
}

impl Default for StateChangeReason {
    fn default() -> Self {
        Self {
            code: ReasonCode::None,
            message: None,
        }
    }
}

#[derive(Deserialize, Serialize)]
struct ReasonBody {
    #[serde(default)]
    code: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    message: Option<String>,
}

impl<'de> Deserialize<'de> for StateChangeReason {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        // EMR sends a string holding JSON; accept an object as well, as a replayed or
        // hand-written event may carry one.
        let body = match Value::deserialize(d)? {
            Value::String(text) => serde_json::from_str::<ReasonBody>(&text).map_err(|e| {
                serde::de::Error::custom(format!("stateChangeReason is not a JSON object: {e}"))
            })?,
            Value::Null => ReasonBody {
                code: None,
                message: None,
            },
            other => {
                serde_json::from_value::<ReasonBody>(other).map_err(serde::de::Error::custom)?
            }
        };
        Ok(Self {
            code: ReasonCode::from(body.code.as_deref().unwrap_or("")),
            message: body.message,
        })
    }
}

impl Serialize for StateChangeReason {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let body = ReasonBody {
            code: Some(self.code.as_str().to_owned()),
            message: self.message.clone(),
        };
        let text = serde_json::to_string(&body).map_err(serde::ser::Error::custom)?;
        s.serialize_str(&text)
    }
}

impl JsonSchema for StateChangeReason {
    fn schema_name() -> Cow<'static, str> {
        "StateChangeReason".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "description": "A JSON object {\"code\", \"message\"} serialised as a string.",
            "type": "string",
            "contentMediaType": "application/json"
        })
    }
}

/// The `detail` of an event, chosen by its `detail-type`.
#[derive(Debug, Clone, PartialEq)]
pub enum AwsEventDetail {
    Scheduled,
    ClusterStateChange(ClusterStateChange),
    StepStatusChange(StepStatusChange),
    /// A detail-type Intraday does not act on; the handler logs and ignores it.
    Other(String),
}

/// An EventBridge event with its detail read according to its `detail-type`.
pub type AwsEvent = EventEnvelope<AwsEventDetail>;

pub(crate) const SCHEDULED: &str = "Scheduled Event";
pub(crate) const CLUSTER_STATE_CHANGE: &str = "EMR Cluster State Change";
pub(crate) const STEP_STATUS_CHANGE: &str = "EMR Step Status Change";

impl AwsEvent {
    /// Reads an event whose body has already been parsed as JSON.
    pub fn from_json(value: Value) -> Result<Self, EventError> {
        let envelope: EventEnvelope<Value> = from_value("EventBridge event", value)?;
        let detail = match envelope.detail_type.as_str() {
            SCHEDULED => AwsEventDetail::Scheduled,
            CLUSTER_STATE_CHANGE => AwsEventDetail::ClusterStateChange(from_value(
                "EMR Cluster State Change detail",
                envelope.detail.clone(),
            )?),
            STEP_STATUS_CHANGE => AwsEventDetail::StepStatusChange(from_value(
                "EMR Step Status Change detail",
                envelope.detail.clone(),
            )?),
            other => AwsEventDetail::Other(other.to_owned()),
        };
        Ok(EventEnvelope {
            version: envelope.version,
            id: envelope.id,
            detail_type: envelope.detail_type,
            source: envelope.source,
            account: envelope.account,
            time: envelope.time,
            region: envelope.region,
            resources: envelope.resources,
            detail,
        })
    }
}
