//! SQS: the queues every service reads and writes.

use std::collections::HashMap;
use std::time::Duration;

use aws_sdk_sqs::types::{
    MessageSystemAttributeName, QueueAttributeName, SendMessageBatchRequestEntry,
};

use crate::AwsError;
use crate::error::SdkResultExt;

/// SQS's per-message delay ceiling.
pub const MAX_DELAY: Duration = Duration::from_secs(900);
/// SQS's batch ceiling for send, receive and delete.
pub const MAX_BATCH: usize = 10;

/// A message as received.
#[derive(Debug, Clone, PartialEq)]
pub struct Received {
    pub message_id: String,
    pub receipt_handle: String,
    pub body: String,
    /// `ApproximateReceiveCount`: 1 on the first delivery.
    pub receive_count: u32,
    /// Epoch ms the message was first sent, `SentTimestamp`.
    pub sent_ms: Option<u64>,
    pub attributes: HashMap<String, String>,
}

/// A queue's URL from its ARN (`arn:<partition>:sqs:<region>:<account>:<name>`), as SQS forms
/// it: `https://sqs.<region>.amazonaws.com/<account>/<name>` (`.amazonaws.com.cn` in China).
/// No call, so no `sqs:GetQueueUrl` grant: Lambda hands a handler its queue's ARN only.
/// https://docs.aws.amazon.com/AWSSimpleQueueService/latest/SQSDeveloperGuide/sqs-queue-message-identifiers.html
pub fn url_from_arn(arn: &str) -> Option<String> {
    let parts: Vec<&str> = arn.split(':').collect();
    let ["arn", partition, "sqs", region, account, name] = parts.as_slice() else {
        return None;
    };
    if [partition, region, account, name]
        .iter()
        .any(|p| p.is_empty())
    {
        return None;
    }
    let domain = match *partition {
        "aws-cn" => "amazonaws.com.cn",
        _ => "amazonaws.com",
    };
    Some(format!("https://sqs.{region}.{domain}/{account}/{name}"))
}

#[derive(Debug, Clone)]
pub struct Queues {
    client: aws_sdk_sqs::Client,
}

impl Queues {
    pub fn new(client: aws_sdk_sqs::Client) -> Self {
        Self { client }
    }

    /// Sends one message, hidden for `delay` (at most 15 minutes, SQS's limit).
    pub async fn send(
        &self,
        queue_url: &str,
        body: &str,
        delay: Option<Duration>,
    ) -> Result<String, AwsError> {
        let delay = delay.map(|d| d.min(MAX_DELAY).as_secs() as i32);
        // Repeat: the message twice; every consumer handles a redelivered message as a no-op
        // (conditional writes, checks first).
        let out = self
            .client
            .send_message()
            .queue_url(queue_url)
            .message_body(body)
            .set_delay_seconds(delay)
            .send()
            .await
            .aws("SendMessage")?;
        Ok(out.message_id().unwrap_or_default().to_owned())
    }

    /// Sends every body, ten to a request. Fails, naming how many, if any entry was refused;
    /// entries SQS accepted are sent either way, so a retry may duplicate them (consumers are
    /// idempotent).
    pub async fn send_batch(&self, queue_url: &str, bodies: &[String]) -> Result<(), AwsError> {
        for chunk in bodies.chunks(MAX_BATCH) {
            let entries = chunk
                .iter()
                .enumerate()
                .map(|(i, body)| {
                    SendMessageBatchRequestEntry::builder()
                        .id(i.to_string())
                        .message_body(body)
                        .build()
                        .map_err(|e| AwsError::BatchSendFailed {
                            queue: queue_url.to_owned(),
                            failed: chunk.len(),
                            reason: e.to_string(),
                        })
                })
                .collect::<Result<Vec<_>, _>>()?;
            // Repeat: as send: a duplicate is handled as a redelivery.
            let out = self
                .client
                .send_message_batch()
                .queue_url(queue_url)
                .set_entries(Some(entries))
                .send()
                .await
                .aws("SendMessageBatch")?;
            if let Some(first) = out.failed().first() {
                return Err(AwsError::BatchSendFailed {
                    queue: queue_url.to_owned(),
                    failed: out.failed().len(),
                    reason: format!(
                        "{}: {}",
                        first.code(),
                        first.message().unwrap_or("no message")
                    ),
                });
            }
        }
        Ok(())
    }

    /// Long-polls for up to `max` messages (at most 10), waiting up to `wait` (at most 20 s).
    pub async fn receive(
        &self,
        queue_url: &str,
        max: usize,
        wait: Duration,
        visibility: Option<Duration>,
    ) -> Result<Vec<Received>, AwsError> {
        let out = self
            .client
            .receive_message()
            .queue_url(queue_url)
            .max_number_of_messages(max.clamp(1, MAX_BATCH) as i32)
            .wait_time_seconds(wait.as_secs().min(20) as i32)
            .set_visibility_timeout(visibility.map(|v| v.as_secs() as i32))
            .message_system_attribute_names(MessageSystemAttributeName::All)
            .send()
            .await
            .aws("ReceiveMessage")?;
        Ok(out
            .messages()
            .iter()
            .map(|m| {
                let attributes: HashMap<String, String> = m
                    .attributes()
                    .map(|a| {
                        a.iter()
                            .map(|(k, v)| (k.as_str().to_owned(), v.clone()))
                            .collect()
                    })
                    .unwrap_or_default();
                Received {
                    message_id: m.message_id().unwrap_or_default().to_owned(),
                    receipt_handle: m.receipt_handle().unwrap_or_default().to_owned(),
                    body: m.body().unwrap_or_default().to_owned(),
                    receive_count: attributes
                        .get("ApproximateReceiveCount")
                        .and_then(|c| c.parse().ok())
                        .unwrap_or(1),
                    sent_ms: attributes.get("SentTimestamp").and_then(|t| t.parse().ok()),
                    attributes,
                }
            })
            .collect())
    }

    pub async fn delete(&self, queue_url: &str, receipt_handle: &str) -> Result<(), AwsError> {
        self.client
            .delete_message()
            .queue_url(queue_url)
            .receipt_handle(receipt_handle)
            .send()
            .await
            .aws("DeleteMessage")?;
        Ok(())
    }

    /// Hides a received message for `timeout` from now; zero makes it visible at once.
    pub async fn change_visibility(
        &self,
        queue_url: &str,
        receipt_handle: &str,
        timeout: Duration,
    ) -> Result<(), AwsError> {
        self.client
            .change_message_visibility()
            .queue_url(queue_url)
            .receipt_handle(receipt_handle)
            .visibility_timeout(timeout.as_secs().min(43_200) as i32)
            .send()
            .await
            .aws("ChangeMessageVisibility")?;
        Ok(())
    }

    /// Starts SQS's own dead-letter redrive from `source_arn` to `destination_arn`; returns
    /// the task handle. Not every endpoint implements it (emulators often do not).
    pub async fn start_move_task(
        &self,
        source_arn: &str,
        destination_arn: &str,
    ) -> Result<String, AwsError> {
        // Repeat: SQS refuses a second task while one runs for the same queue.
        let out = self
            .client
            .start_message_move_task()
            .source_arn(source_arn)
            .destination_arn(destination_arn)
            .send()
            .await
            .aws("StartMessageMoveTask")?;
        Ok(out.task_handle().unwrap_or_default().to_owned())
    }

    /// The queue's attributes (ARN, counts, redrive policy), by their API names.
    pub async fn attributes(&self, queue_url: &str) -> Result<HashMap<String, String>, AwsError> {
        let out = self
            .client
            .get_queue_attributes()
            .queue_url(queue_url)
            .attribute_names(QueueAttributeName::All)
            .send()
            .await
            .aws("GetQueueAttributes")?;
        Ok(out
            .attributes()
            .map(|a| {
                a.iter()
                    .map(|(k, v)| (k.as_str().to_owned(), v.clone()))
                    .collect()
            })
            .unwrap_or_default())
    }
}

#[cfg(test)]
mod tests {
    use super::url_from_arn;

    #[test]
    fn a_queue_url_is_made_from_its_arn_without_asking_sqs() {
        assert_eq!(
            url_from_arn("arn:aws:sqs:eu-west-2:123456789012:intraday-monitor").as_deref(),
            Some("https://sqs.eu-west-2.amazonaws.com/123456789012/intraday-monitor")
        );
        assert_eq!(
            url_from_arn("arn:aws-cn:sqs:cn-north-1:123456789012:q").as_deref(),
            Some("https://sqs.cn-north-1.amazonaws.com.cn/123456789012/q")
        );
        for bad in [
            "",
            "intraday-monitor",
            "arn:aws:sns:eu-west-2:123456789012:topic",
            "arn:aws:sqs:eu-west-2::q",
            "arn:aws:sqs:eu-west-2:123456789012:q:extra",
        ] {
            assert_eq!(url_from_arn(bad), None, "{bad}");
        }
    }
}
