//! The scheduler's settings, from its environment (the template's Lambda variables).

use std::time::Duration;

use intraday_core::{DatabaseName, OutputFormat, S3Uri, WaitPolicy};
use intraday_runtime::env::{EnvError, parsed_or, required};

#[derive(Debug, Clone)]
pub struct Config {
    pub job_table: String,
    pub collections_secret: String,
    pub scheduler_queue_url: String,
    pub launcher_queue_url: String,
    pub alerts_topic_arn: String,
    /// Where scheduled runs write: `s3://<output bucket>/data/`.
    pub output: S3Uri,
    pub database: DatabaseName,
    pub backfill_database: DatabaseName,
    pub format: OutputFormat,
    pub policy: WaitPolicy,
}

impl Config {
    pub fn from_env() -> Result<Self, EnvError> {
        let bucket = required(
            "INTRADAY_OUTPUT_BUCKET",
            "it names the output bucket (stack output OutputBucketName)",
        )?;
        let output = S3Uri::new(&bucket, "data/").map_err(|e| EnvError::Invalid {
            name: "INTRADAY_OUTPUT_BUCKET",
            value: bucket.clone(),
            reason: e.to_string(),
        })?;
        let database = parsed_or::<String>("INTRADAY_DATABASE", DatabaseName::DEFAULT.to_owned())?;
        let database = DatabaseName::new(database.clone()).map_err(|e| EnvError::Invalid {
            name: "INTRADAY_DATABASE",
            value: database,
            reason: e.to_string(),
        })?;
        let backfill_database =
            parsed_or::<String>("INTRADAY_BACKFILL_DATABASE", "intraday_backfill".to_owned())?;
        let backfill_database =
            DatabaseName::new(backfill_database.clone()).map_err(|e| EnvError::Invalid {
                name: "INTRADAY_BACKFILL_DATABASE",
                value: backfill_database,
                reason: e.to_string(),
            })?;
        let max_wait = parsed_or("INTRADAY_MAX_WAIT_SECONDS", 900u64)?;
        let step = parsed_or("INTRADAY_WAIT_STEP_SECONDS", 60u64)?;
        if !(1..=900).contains(&step) {
            return Err(EnvError::Invalid {
                name: "INTRADAY_WAIT_STEP_SECONDS",
                value: step.to_string(),
                reason: "SQS delays a message 1 to 900 seconds".to_owned(),
            });
        }
        Ok(Self {
            job_table: required(
                "INTRADAY_JOB_TABLE",
                "it names the job table (stack output JobTableName)",
            )?,
            collections_secret: parsed_or(
                "INTRADAY_COLLECTIONS_SECRET",
                "/intraday/collections".to_owned(),
            )?,
            scheduler_queue_url: required(
                "INTRADAY_SCHEDULER_QUEUE_URL",
                "the scheduler re-queues waiting runs there (stack output SchedulerQueueUrl)",
            )?,
            launcher_queue_url: required(
                "INTRADAY_LAUNCHER_QUEUE_URL",
                "it names the launcher's queue (stack output LauncherQueueUrl)",
            )?,
            alerts_topic_arn: required(
                "INTRADAY_ALERTS_TOPIC_ARN",
                "it names the alerts topic (stack output AlertsTopicArn)",
            )?,
            output,
            database,
            backfill_database,
            format: parsed_or("INTRADAY_FORMAT", OutputFormat::Parquet)?,
            policy: WaitPolicy {
                max_wait: Duration::from_secs(max_wait),
                step: Duration::from_secs(step),
            },
        })
    }
}
