//! CloudFormation: deploys `infra/template.yaml` (the local stack and its test use it).

use std::collections::BTreeMap;
use std::time::Duration;

use aws_sdk_cloudformation::types::{Capability, Parameter, StackStatus};

use crate::AwsError;
use crate::error::SdkResultExt;

#[derive(Debug, Clone)]
pub struct Stacks {
    client: aws_sdk_cloudformation::Client,
}

/// A deployed stack: its status and outputs by logical name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Deployed {
    pub status: String,
    pub outputs: BTreeMap<String, String>,
    pub parameters: BTreeMap<String, String>,
}

impl Stacks {
    pub fn new(client: aws_sdk_cloudformation::Client) -> Self {
        Self { client }
    }

    /// Creates the stack and waits until it settles, for at most `timeout`. Anything but
    /// CREATE_COMPLETE is an error carrying the stack's status reason. `name` must be the
    /// caller's own (the demo and the tests make unique ones).
    pub async fn create(
        &self,
        name: &str,
        template_body: &str,
        parameters: &[(&str, &str)],
        timeout: Duration,
    ) -> Result<Deployed, AwsError> {
        let parameters = parameters
            .iter()
            .map(|(k, v)| {
                Parameter::builder()
                    .parameter_key(*k)
                    .parameter_value(*v)
                    .build()
            })
            .collect();
        // Repeat: the SDK sends a request whose answer was lost again, with the same
        // ClientRequestToken, which CloudFormation takes as the same request:
        // https://docs.aws.amazon.com/AWSCloudFormation/latest/APIReference/API_CreateStack.html
        // An emulator that ignores the token answers the repeat AlreadyExistsException; the
        // name being the caller's own, that stack is this request's, and is waited for.
        let created = self
            .client
            .create_stack()
            .stack_name(name)
            .template_body(template_body)
            .set_parameters(Some(parameters))
            .capabilities(Capability::CapabilityNamedIam)
            .client_request_token(format!("create-{name}"))
            .send()
            .await;
        match created {
            Ok(_) => {}
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_already_exists_exception()) => {}
            Err(e) => return Err(crate::error::from_sdk("CreateStack", e)),
        }
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let deployed = self.describe(name).await?;
            let in_progress = deployed.status.ends_with("_IN_PROGRESS");
            if deployed.status == StackStatus::CreateComplete.as_str() {
                return Ok(deployed);
            }
            if !in_progress || tokio::time::Instant::now() >= deadline {
                let reason = self.status_reason(name).await.unwrap_or_default();
                return Err(AwsError::Stack {
                    stack: name.to_owned(),
                    status: deployed.status,
                    reason: if in_progress {
                        format!("still in progress after {timeout:?}")
                    } else {
                        reason
                    },
                });
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    pub async fn describe(&self, name: &str) -> Result<Deployed, AwsError> {
        let out = self
            .client
            .describe_stacks()
            .stack_name(name)
            .send()
            .await
            .aws("DescribeStacks")?;
        let stack = out.stacks().first().ok_or_else(|| AwsError::Stack {
            stack: name.to_owned(),
            status: "MISSING".to_owned(),
            reason: "DescribeStacks returned no stack".to_owned(),
        })?;
        Ok(Deployed {
            status: stack
                .stack_status()
                .map(|s| s.as_str().to_owned())
                .unwrap_or_default(),
            outputs: stack
                .outputs()
                .iter()
                .filter_map(|o| Some((o.output_key()?.to_owned(), o.output_value()?.to_owned())))
                .collect(),
            parameters: stack
                .parameters()
                .iter()
                .filter_map(|p| {
                    Some((
                        p.parameter_key()?.to_owned(),
                        p.parameter_value().unwrap_or_default().to_owned(),
                    ))
                })
                .collect(),
        })
    }

    async fn status_reason(&self, name: &str) -> Result<String, AwsError> {
        let out = self
            .client
            .describe_stacks()
            .stack_name(name)
            .send()
            .await
            .aws("DescribeStacks")?;
        Ok(out
            .stacks()
            .first()
            .and_then(|s| s.stack_status_reason())
            .unwrap_or("no reason given")
            .to_owned())
    }

    pub async fn delete(&self, name: &str) -> Result<(), AwsError> {
        self.client
            .delete_stack()
            .stack_name(name)
            .send()
            .await
            .aws("DeleteStack")?;
        Ok(())
    }
}
