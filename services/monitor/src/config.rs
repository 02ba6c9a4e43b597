//! The monitor's settings, from its environment.

use std::time::Duration;

use intraday_runtime::env::{EnvError, parsed_or, required};

use crate::handler::SweepPolicy;

pub struct Config {
    pub job_table: String,
    pub tables_queue_url: String,
    pub alerts_topic_arn: String,
    pub sweep: SweepPolicy,
}

impl Config {
    pub fn from_env() -> Result<Self, EnvError> {
        let defaults = SweepPolicy::default();
        let minutes = |d: Duration| d.as_secs() / 60;
        Ok(Self {
            job_table: required(
                "INTRADAY_JOB_TABLE",
                "it names the job table (stack output JobTableName)",
            )?,
            tables_queue_url: required(
                "INTRADAY_TABLES_QUEUE_URL",
                "it names the table builder's queue (stack output TablesQueueUrl)",
            )?,
            alerts_topic_arn: required(
                "INTRADAY_ALERTS_TOPIC_ARN",
                "it names the alerts topic (stack output AlertsTopicArn)",
            )?,
            sweep: SweepPolicy {
                stuck_after: Duration::from_secs(
                    60 * parsed_or(
                        "INTRADAY_STUCK_AFTER_MINUTES",
                        minutes(defaults.stuck_after),
                    )?,
                ),
                lookback: Duration::from_secs(
                    3600 * parsed_or(
                        "INTRADAY_SWEEP_LOOKBACK_HOURS",
                        defaults.lookback.as_secs() / 3600,
                    )?,
                ),
                max_runtime: Duration::from_secs(
                    3600 * parsed_or(
                        "INTRADAY_MAX_CLUSTER_HOURS",
                        defaults.max_runtime.as_secs() / 3600,
                    )?,
                ),
                terminate_long_running: parsed_or("INTRADAY_TERMINATE_LONG_RUNNING", false)?,
            },
        })
    }
}
