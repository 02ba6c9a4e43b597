//! JSON Schemas generated from the Rust types. The checked-in copies under `events/schemas/`
//! are what other teams and `intradayctl replay` validate against; a test fails when one is
//! stale (regenerate with `INTRADAY_WRITE_SCHEMAS=1 cargo test -p intraday-events`).

use schemars::{JsonSchema, Schema, generate::SchemaSettings};

use crate::{
    ClusterStateChange, EventEnvelope, Manifest, Message, ScheduledDetail, StepStatusChange,
};

fn schema_for<T: JsonSchema>() -> Schema {
    SchemaSettings::draft2020_12()
        .into_generator()
        .into_root_schema_for::<T>()
}

/// Every schema, by file name under `events/schemas/`.
pub fn all() -> Vec<(&'static str, Schema)> {
    vec![
        ("message.json", schema_for::<Message>()),
        ("manifest.json", schema_for::<Manifest>()),
        (
            "scheduled-event.json",
            schema_for::<EventEnvelope<ScheduledDetail>>(),
        ),
        (
            "emr-cluster-state-change.json",
            schema_for::<EventEnvelope<ClusterStateChange>>(),
        ),
        (
            "emr-step-status-change.json",
            schema_for::<EventEnvelope<StepStatusChange>>(),
        ),
    ]
}

/// The schema file a queue body should validate against, by what it looks like.
pub fn file_for(body: &serde_json::Value) -> Option<&'static str> {
    match body.get("detail-type").and_then(|v| v.as_str()) {
        Some(crate::aws::SCHEDULED) => Some("scheduled-event.json"),
        Some(crate::aws::CLUSTER_STATE_CHANGE) => Some("emr-cluster-state-change.json"),
        Some(crate::aws::STEP_STATUS_CHANGE) => Some("emr-step-status-change.json"),
        Some(_) => None,
        None if body.get("type").is_some() => Some("message.json"),
        None if body.get("collections").is_some() && body.get("output").is_some() => {
            Some("manifest.json")
        }
        None => None,
    }
}

/// The checked-in schema text by file name, as shipped with this release.
pub fn checked_in(file: &str) -> Option<&'static str> {
    Some(match file {
        "message.json" => include_str!("../schemas/message.json"),
        "manifest.json" => include_str!("../schemas/manifest.json"),
        "scheduled-event.json" => include_str!("../schemas/scheduled-event.json"),
        "emr-cluster-state-change.json" => include_str!("../schemas/emr-cluster-state-change.json"),
        "emr-step-status-change.json" => include_str!("../schemas/emr-step-status-change.json"),
        _ => return None,
    })
}

/// Renders a schema the way it is checked in: pretty JSON with a trailing newline.
pub fn render(schema: &Schema) -> String {
    let mut text = serde_json::to_string_pretty(schema).expect("a schema is plain JSON");
    text.push('\n');
    text
}
