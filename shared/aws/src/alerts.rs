//! SNS: the alerts topic.

use aws_sdk_sns::types::MessageAttributeValue;
use intraday_events::{Alert, Message};

use crate::AwsError;
use crate::error::SdkResultExt;

/// SNS caps a subject at 100 characters.
const MAX_SUBJECT: usize = 100;

#[derive(Debug, Clone)]
pub struct Alerts {
    client: aws_sdk_sns::Client,
    topic_arn: String,
}

impl Alerts {
    pub fn new(client: aws_sdk_sns::Client, topic_arn: impl Into<String>) -> Self {
        Self {
            client,
            topic_arn: topic_arn.into(),
        }
    }

    /// Publishes the alert as our JSON envelope, whose top level keeps the original's
    /// `severity`, `notification_type` and `title_text`. Severity and type are also message
    /// attributes so subscriptions can filter on them.
    pub async fn publish(&self, alert: &Alert) -> Result<String, AwsError> {
        let body = Message::Alert(alert.clone()).to_body();
        let severity = format!("{:?}", alert.severity);
        let kind = format!("{:?}", alert.notification_type);
        // Repeat: at least once; a repeat is the same alert twice, which changes no state.
        let out = self
            .client
            .publish()
            .topic_arn(&self.topic_arn)
            .subject(subject(&alert.title_text))
            .message(body)
            .message_attributes("severity", string_attribute(&severity)?)
            .message_attributes("notification_type", string_attribute(&kind)?)
            .send()
            .await
            .aws("Publish")?;
        Ok(out.message_id().unwrap_or_default().to_owned())
    }
}

fn string_attribute(value: &str) -> Result<MessageAttributeValue, AwsError> {
    MessageAttributeValue::builder()
        .data_type("String")
        .string_value(value)
        .build()
        .map_err(|e| AwsError::Service {
            operation: "Publish",
            code: "BuildError".to_owned(),
            message: e.to_string(),
            retryable: false,
        })
}

/// A subject SNS accepts: printable ASCII on one line, at most 100 characters.
fn subject(title: &str) -> String {
    let clean: String = title
        .chars()
        .map(|c| {
            if c.is_ascii_graphic() || c == ' ' {
                c
            } else {
                ' '
            }
        })
        .collect();
    let trimmed = clean.trim();
    let subject = if trimmed.is_empty() {
        "Intraday alert"
    } else {
        trimmed
    };
    subject.chars().take(MAX_SUBJECT).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subjects_are_what_sns_accepts() {
        assert_eq!(
            subject("Run failed\non j-1 — see logs"),
            "Run failed on j-1   see logs"
        );
        assert_eq!(subject(&"x".repeat(300)).len(), MAX_SUBJECT);
        assert_eq!(subject("\n\t"), "Intraday alert");
    }
}
