//! The table builder's settings, from its environment (the template's Lambda variables).

use intraday_runtime::env::required;

use crate::TableBuilderError;

pub struct Config {
    pub job_table: String,
    pub alerts_topic_arn: String,
}

impl Config {
    pub fn from_env() -> Result<Self, TableBuilderError> {
        Ok(Self {
            job_table: required(
                "INTRADAY_JOB_TABLE",
                "it names the job table (stack output JobTableName)",
            )?,
            alerts_topic_arn: required(
                "INTRADAY_ALERTS_TOPIC_ARN",
                "it names the alerts topic (stack output AlertsTopicArn)",
            )?,
        })
    }
}
