//! EventBridge: putting events on a bus. Only the local EMR stand-in needs it: an emulator
//! runs no EMR, so the stand-in sends the state changes EMR would.

use aws_sdk_eventbridge::types::PutEventsRequestEntry;

use crate::AwsError;
use crate::error::SdkResultExt;

#[derive(Debug, Clone)]
pub struct Bus {
    client: aws_sdk_eventbridge::Client,
}

impl Bus {
    pub fn new(client: aws_sdk_eventbridge::Client) -> Self {
        Self { client }
    }

    /// Puts one event on the default bus; fails if EventBridge refused it.
    pub async fn put(
        &self,
        source: &str,
        detail_type: &str,
        detail: &serde_json::Value,
    ) -> Result<(), AwsError> {
        let entry = PutEventsRequestEntry::builder()
            .source(source)
            .detail_type(detail_type)
            .detail(detail.to_string())
            .build();
        // Repeat: the event arrives twice; the monitor and the reaper handle a repeated event as a
        // no-op.
        let out = self
            .client
            .put_events()
            .entries(entry)
            .send()
            .await
            .aws("PutEvents")?;
        if out.failed_entry_count() > 0 {
            let first = out.entries().iter().find(|e| e.error_code().is_some());
            return Err(AwsError::Service {
                operation: "PutEvents",
                code: first
                    .and_then(|e| e.error_code())
                    .unwrap_or("Failed")
                    .to_owned(),
                message: first
                    .and_then(|e| e.error_message())
                    .unwrap_or("an entry was refused")
                    .to_owned(),
                retryable: true,
            });
        }
        Ok(())
    }
}
