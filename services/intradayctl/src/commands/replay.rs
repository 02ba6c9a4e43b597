//! `replay`: validate a message against its checked-in schema, then publish it. An invalid
//! message is refused with the schema's errors and nothing is sent.

use intraday_events::{AwsEventDetail, Inbound, schema};
use serde_json::{Value, json};

use crate::CtlError;
use crate::context::Env;
use crate::output::Report;

/// What each queue's service reads.
fn accepts(queue: &str, inbound: &Inbound) -> bool {
    match inbound {
        Inbound::Message(m) => matches!(
            (queue, m.kind()),
            ("scheduler", "RunRequested")
                | ("launcher", "LaunchRequested")
                | ("tables", "ExtractionCompleted")
        ),
        Inbound::Aws(event) => matches!(
            (queue, &event.detail),
            ("scheduler", AwsEventDetail::Scheduled)
                | ("monitor", AwsEventDetail::Scheduled)
                | ("monitor", AwsEventDetail::ClusterStateChange(_))
                | ("monitor", AwsEventDetail::StepStatusChange(_))
                | ("reaper", AwsEventDetail::ClusterStateChange(_))
        ),
    }
}

/// The alternative of a `oneOf` schema whose `type` is `kind`, standing alone (with the
/// definitions it refers to).
fn schema_for_type(schema: &Value, kind: &str) -> Option<Value> {
    let one = schema.get("oneOf")?.as_array()?.iter().find(|alt| {
        alt.pointer("/properties/type/const")
            .and_then(Value::as_str)
            == Some(kind)
    })?;
    let mut standalone = one.clone();
    if let (Some(obj), Some(defs)) = (standalone.as_object_mut(), schema.get("$defs")) {
        obj.insert("$defs".to_owned(), defs.clone());
        if let Some(draft) = schema.get("$schema") {
            obj.insert("$schema".to_owned(), draft.clone());
        }
    }
    Some(standalone)
}

fn message_types(schema: &Value) -> Vec<String> {
    schema
        .get("oneOf")
        .and_then(Value::as_array)
        .map(|alts| {
            alts.iter()
                .filter_map(|a| a.pointer("/properties/type/const").and_then(Value::as_str))
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}

/// Checks a body against the schema it claims and the types behind it.
pub fn validate(queue: &str, body: &str) -> Result<Inbound, CtlError> {
    let value: Value = serde_json::from_str(body).map_err(|e| {
        CtlError::Invalid(format!("the message is not JSON: {e}; nothing was sent"))
    })?;
    let file = schema::file_for(&value).ok_or_else(|| {
        CtlError::Invalid(
            "the message is neither one of ours (no `type`) nor an EventBridge event Intraday reads (`detail-type`); nothing was sent".into(),
        )
    })?;
    let text = schema::checked_in(file)
        .ok_or_else(|| CtlError::Other(format!("no schema {file} in this release")))?;
    let schema_value: Value =
        serde_json::from_str(text).map_err(|e| CtlError::Other(e.to_string()))?;
    // One of ours names its type: validate against that type's schema alone, so each error
    // names the field, not "valid under none of the oneOf schemas" at the root.
    let (schema_value, what) = match value.get("type").and_then(Value::as_str) {
        Some(kind) => match schema_for_type(&schema_value, kind) {
            Some(one) => (one, format!("a {kind}")),
            None => {
                return Err(CtlError::Invalid(format!(
                    "`type` is `{kind}`, which is none of {}; nothing was sent",
                    message_types(&schema_value).join(", ")
                )));
            }
        },
        None => (schema_value, "the message".to_owned()),
    };
    let validator =
        jsonschema::validator_for(&schema_value).map_err(|e| CtlError::Other(e.to_string()))?;
    let errors: Vec<String> = validator
        .iter_errors(&value)
        .map(|e| {
            let at = e.instance_path().to_string();
            format!("{}: {e}", if at.is_empty() { "/" } else { &at })
        })
        .collect();
    tracing::debug!(%what, errors = errors.len(), "validated");
    if !errors.is_empty() {
        return Err(CtlError::Schema {
            schema: file.to_owned(),
            errors: errors.join("\n  "),
        });
    }
    let inbound =
        Inbound::parse(body).map_err(|e| CtlError::Invalid(format!("{e}; nothing was sent")))?;
    if !accepts(queue, &inbound) {
        return Err(CtlError::Invalid(format!(
            "the {queue} queue does not take this message; nothing was sent"
        )));
    }
    Ok(inbound)
}

pub async fn replay(env: &Env, queue: &str, body: &str) -> Result<Report, CtlError> {
    let (url, _) = env.resources().await?.queue(queue)?.clone();
    validate(queue, body)?;
    let id = env.queues().send(&url, body, None).await?;
    let mut report = Report::new(&["QUEUE", "MESSAGE ID"]);
    report.rows.push(vec![queue.to_owned(), id.clone()]);
    report.json = json!({"queue": queue, "message_id": id});
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    const LAUNCH: &str = include_str!("../../../../events/samples/launch-requested.json");

    #[test]
    fn refuses_what_the_schema_or_the_queue_refuses() {
        assert!(validate("launcher", LAUNCH).is_ok());
        let mut broken: Value = serde_json::from_str(LAUNCH).expect("json");
        broken["collections"][0]["window"]["start_ms"] = json!("soon");
        broken
            .as_object_mut()
            .expect("object")
            .remove("correlation_id");
        let err = validate("launcher", &broken.to_string())
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            "the message does not match events/schemas/message.json:\n  \
             /: \"correlation_id\" is a required property\n  \
             /collections/0/window/start_ms: \"soon\" is not of type \"integer\"\n\
             nothing was sent"
        );
        let mut unknown: Value = serde_json::from_str(LAUNCH).expect("json");
        unknown["type"] = json!("LaunchRequestd");
        let err = validate("launcher", &unknown.to_string())
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with(
                "`type` is `LaunchRequestd`, which is none of RunRequested, LaunchRequested"
            ),
            "{err}"
        );
        let err = validate("scheduler", LAUNCH).unwrap_err().to_string();
        assert_eq!(
            err,
            "the scheduler queue does not take this message; nothing was sent"
        );
        let err = validate("launcher", "{").unwrap_err().to_string();
        assert!(err.starts_with("the message is not JSON"), "{err}");
    }
}
