use std::process::ExitCode;

use intraday_aws::{Alerts, AwsSettings, JobStore, Queues, Secrets};
use intraday_runtime::{MetricsSink, Telemetry, init_logging, run_lambda};
use intraday_scheduler::{Ctx, config::Config, handler};

#[tokio::main]
async fn main() -> ExitCode {
    init_logging();
    let config = match Config::from_env() {
        Ok(config) => config,
        Err(e) => {
            tracing::error!(error = %e, "scheduler cannot start");
            return ExitCode::FAILURE;
        }
    };
    let aws = AwsSettings::default().load().await;
    let ctx = Ctx {
        store: JobStore::new(aws.dynamodb(), config.job_table),
        secrets: Secrets::new(aws.secrets()),
        queues: Queues::new(aws.sqs()),
        alerts: Alerts::new(aws.sns(), config.alerts_topic_arn),
        collections_secret: config.collections_secret,
        scheduler_queue_url: config.scheduler_queue_url,
        launcher_queue_url: config.launcher_queue_url,
        output: config.output,
        database: config.database,
        format: config.format,
        policy: config.policy,
        collections: Default::default(),
    };
    match run_lambda(
        ctx,
        handler,
        Telemetry::new("scheduler", MetricsSink::Stdout),
    )
    .await
    {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %e, "scheduler stopped");
            ExitCode::FAILURE
        }
    }
}
