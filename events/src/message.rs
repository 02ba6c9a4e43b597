//! Our own messages in one tagged envelope, and the reader for any queue body.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use intraday_core::CorrelationId;

use crate::{
    Alert, AwsEvent, EventError, ExtractionCompleted, LaunchRequested, MESSAGE_VERSION,
    RunRequested, from_value,
};

/// Every message Intraday sends itself: `{"type": "...", "version": 1, "correlation_id": ...}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "type")]
pub enum Message {
    RunRequested(RunRequested),
    LaunchRequested(LaunchRequested),
    ExtractionCompleted(ExtractionCompleted),
    Alert(Alert),
}

const TYPES: [&str; 4] = [
    "RunRequested",
    "LaunchRequested",
    "ExtractionCompleted",
    "Alert",
];

impl Message {
    /// Reads a message body. An unknown `type`, a `version` newer than this release, a
    /// missing field or a value out of range is an error that names it.
    pub fn parse(body: &str) -> Result<Self, EventError> {
        Self::from_json(parse_object(body)?)
    }

    pub fn from_json(value: Value) -> Result<Self, EventError> {
        let object = value
            .as_object()
            .ok_or(EventError::NotAnObject(json_kind(&value)))?;
        let kind = match object.get("type") {
            None => return Err(EventError::MissingField("type")),
            Some(Value::String(kind)) => kind.clone(),
            Some(_) => {
                return Err(EventError::WrongType {
                    field: "type",
                    expected: "a string",
                });
            }
        };
        if !TYPES.contains(&kind.as_str()) {
            return Err(EventError::UnknownType(kind));
        }
        let version = object
            .get("version")
            .ok_or(EventError::MissingField("version"))?
            .as_u64()
            .filter(|v| *v >= 1)
            .ok_or(EventError::WrongType {
                field: "version",
                expected: "an integer from 1",
            })?;
        if version > u64::from(MESSAGE_VERSION) {
            return Err(EventError::VersionTooNew {
                kind,
                version,
                supported: MESSAGE_VERSION,
            });
        }
        // Read the variant's struct directly (its `type` field is ignored as unknown): serde's
        // tagged-enum path buffers the body and would lose the path of a bad field.
        let message = match kind.as_str() {
            "RunRequested" => Message::RunRequested(from_value(&kind, value)?),
            "LaunchRequested" => Message::LaunchRequested(from_value(&kind, value)?),
            "ExtractionCompleted" => Message::ExtractionCompleted(from_value(&kind, value)?),
            _ => Message::Alert(from_value(&kind, value)?),
        };
        message
            .check()
            .map_err(|(path, reason)| EventError::Invalid {
                kind: kind.clone(),
                path,
                reason,
            })?;
        Ok(message)
    }

    /// The JSON body to send.
    pub fn to_body(&self) -> String {
        serde_json::to_string(self).expect("messages are plain data with string keys")
    }

    pub fn kind(&self) -> &'static str {
        match self {
            Message::RunRequested(_) => "RunRequested",
            Message::LaunchRequested(_) => "LaunchRequested",
            Message::ExtractionCompleted(_) => "ExtractionCompleted",
            Message::Alert(_) => "Alert",
        }
    }

    pub fn correlation_id(&self) -> &CorrelationId {
        match self {
            Message::RunRequested(m) => &m.correlation_id,
            Message::LaunchRequested(m) => &m.correlation_id,
            Message::ExtractionCompleted(m) => &m.correlation_id,
            Message::Alert(m) => &m.correlation_id,
        }
    }

    fn check(&self) -> Result<(), (String, String)> {
        match self {
            Message::RunRequested(m) => m.check(),
            Message::LaunchRequested(m) => m.check(),
            Message::ExtractionCompleted(_) | Message::Alert(_) => Ok(()),
        }
    }
}

/// Anything that arrives on one of our queues.
#[derive(Debug, Clone, PartialEq)]
pub enum Inbound {
    Aws(Box<AwsEvent>),
    Message(Box<Message>),
}

impl Inbound {
    /// Our message, when it is one.
    pub fn message(&self) -> Option<&Message> {
        match self {
            Inbound::Message(m) => Some(m),
            Inbound::Aws(_) => None,
        }
    }

    /// What arrived, as a refusal names it: our message's type, or the AWS event's
    /// detail-type.
    pub fn describe(&self) -> String {
        match self {
            Inbound::Message(m) => m.kind().to_owned(),
            Inbound::Aws(event) => format!("the AWS event `{}`", event.detail_type),
        }
    }

    /// The error a service gives for what it does not handle; the message is left for its
    /// dead-letter queue.
    pub fn refuse(&self, service: &'static str, handles: &'static str) -> EventError {
        EventError::Unexpected {
            service,
            handles,
            got: self.describe(),
        }
    }

    /// Reads a queue body: an EventBridge event (it has `detail-type`) or one of our
    /// messages (it has `type`).
    pub fn parse(body: &str) -> Result<Self, EventError> {
        let value = parse_object(body)?;
        if value.get("detail-type").is_some() {
            AwsEvent::from_json(value).map(|e| Inbound::Aws(Box::new(e)))
        } else if value.get("type").is_some() {
            Message::from_json(value).map(|m| Inbound::Message(Box::new(m)))
        } else {
            Err(EventError::UnknownShape)
        }
    }
}

fn parse_object(body: &str) -> Result<Value, EventError> {
    let value: Value =
        serde_json::from_str(body).map_err(|e| EventError::NotJson(e.to_string()))?;
    if value.is_object() {
        Ok(value)
    } else {
        Err(EventError::NotAnObject(json_kind(&value)))
    }
}

fn json_kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}
