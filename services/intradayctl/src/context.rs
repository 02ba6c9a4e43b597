//! Where a command finds AWS and Intraday's resources: the AWS CLI's `--region`, `--profile`
//! and `--endpoint-url`, and the stack's outputs (`--stack`, default `intraday`), so an
//! operator never types a queue URL.

use std::collections::BTreeMap;

use intraday_aws::{Aws, AwsSettings, JobStore, Queues, Secrets, Stacks};
use intraday_core::Collections;
use tokio::sync::OnceCell;

use crate::CtlError;

/// The services whose queues a command can name.
pub const QUEUES: [(&str, &str); 5] = [
    ("scheduler", "Scheduler"),
    ("launcher", "Launcher"),
    ("monitor", "Monitor"),
    ("tables", "Tables"),
    ("reaper", "Reaper"),
];

/// What the stack says about this deployment.
#[derive(Debug, Clone)]
pub struct Resources {
    pub job_table: String,
    /// Service name → (queue URL, dead-letter queue URL).
    pub queues: BTreeMap<String, (String, String)>,
    pub output_bucket: String,
    pub alerts_topic_arn: String,
    pub collections_secret: String,
    pub hbase_root: Option<String>,
    /// The catalog database the scheduled runs write to.
    pub database: String,
}

impl Resources {
    pub fn from_outputs(
        stack: &str,
        outputs: &BTreeMap<String, String>,
        parameters: &BTreeMap<String, String>,
    ) -> Result<Self, CtlError> {
        let get = |name: &str| {
            outputs
                .get(name)
                .cloned()
                .ok_or_else(|| CtlError::MissingOutput {
                    stack: stack.to_owned(),
                    output: name.to_owned(),
                })
        };
        let mut queues = BTreeMap::new();
        for (service, output) in QUEUES {
            queues.insert(
                service.to_owned(),
                (
                    get(&format!("{output}QueueUrl"))?,
                    get(&format!("{output}DlqUrl"))?,
                ),
            );
        }
        Ok(Self {
            job_table: get("JobTableName")?,
            queues,
            output_bucket: get("OutputBucketName")?,
            alerts_topic_arn: get("AlertsTopicArn")?,
            collections_secret: parameters
                .get("CollectionsSecretName")
                .cloned()
                .unwrap_or_else(|| "/intraday/collections".to_owned()),
            hbase_root: parameters
                .get("HBaseRootS3Uri")
                .cloned()
                .filter(|r| !r.is_empty()),
            database: parameters
                .get("GlueDatabaseName")
                .cloned()
                .filter(|d| !d.is_empty())
                .unwrap_or_else(|| intraday_core::DatabaseName::DEFAULT.to_owned()),
        })
    }

    /// A queue by service name (`monitor`) or by its own name (`intraday-monitor`).
    pub fn queue(&self, name: &str) -> Result<&(String, String), CtlError> {
        self.queues
            .get(name)
            .or_else(|| {
                self.queues
                    .iter()
                    .find(|(_, (url, dlq))| {
                        url.ends_with(&format!("/{name}")) || dlq.ends_with(&format!("/{name}"))
                    })
                    .map(|(_, urls)| urls)
            })
            .ok_or_else(|| CtlError::UnknownQueue(name.to_owned()))
    }
}

/// AWS and the stack, loaded once per command.
pub struct Env {
    pub aws: Aws,
    pub stack: String,
    resources: OnceCell<Resources>,
}

impl Env {
    pub async fn new(settings: &AwsSettings, stack: &str) -> Self {
        Self {
            aws: settings.load().await,
            stack: stack.to_owned(),
            resources: OnceCell::new(),
        }
    }

    pub async fn resources(&self) -> Result<&Resources, CtlError> {
        self.resources
            .get_or_try_init(|| async {
                let deployed = Stacks::new(self.aws.cloudformation())
                    .describe(&self.stack)
                    .await
                    .map_err(|source| CtlError::Stack {
                        stack: self.stack.clone(),
                        source,
                    })?;
                Resources::from_outputs(&self.stack, &deployed.outputs, &deployed.parameters)
            })
            .await
    }

    pub async fn store(&self) -> Result<JobStore, CtlError> {
        Ok(JobStore::new(
            self.aws.dynamodb(),
            self.resources().await?.job_table.clone(),
        ))
    }

    pub fn queues(&self) -> Queues {
        Queues::new(self.aws.sqs())
    }

    /// The collections the stack's secret lists, and the entries it refuses.
    pub async fn collections(&self) -> Result<Collections, CtlError> {
        let secret = &self.resources().await?.collections_secret;
        Secrets::new(self.aws.secrets())
            .collections(secret)
            .await
            .map_err(|e| {
                CtlError::Other(format!(
                    "the collections secret `{secret}` cannot be used: {e}"
                ))
            })
    }
}
