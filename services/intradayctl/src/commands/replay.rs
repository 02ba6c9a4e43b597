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
    let validator =
        jsonschema::validator_for(&schema_value).map_err(|e| CtlError::Other(e.to_string()))?;
    let errors: Vec<String> = validator
        .iter_errors(&value)
        .map(|e| {
            let at = e.instance_path().to_string();
            format!("{} (at `{}`)", e, if at.is_empty() { "/" } else { &at })
        })
        .collect();
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
        let err = validate("launcher", &broken.to_string())
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("the message does not match events/schemas/message.json"),
            "{err}"
        );
        assert!(err.ends_with("nothing was sent"), "{err}");
        let err = validate("scheduler", LAUNCH).unwrap_err().to_string();
        assert_eq!(
            err,
            "the scheduler queue does not take this message; nothing was sent"
        );
        let err = validate("launcher", "{").unwrap_err().to_string();
        assert!(err.starts_with("the message is not JSON"), "{err}");
    }
}
