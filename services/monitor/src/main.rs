use std::process::ExitCode;

use intraday_aws::{Alerts, AwsSettings, Emr, JobStore, Objects, Queues};
use intraday_monitor::{Ctx, config::Config, handler};
use intraday_runtime::{MetricsSink, Telemetry, init_logging, run_lambda};

#[tokio::main]
async fn main() -> ExitCode {
    init_logging();
    let config = match Config::from_env() {
        Ok(config) => config,
        Err(e) => {
            tracing::error!(error = %e, "monitor cannot start");
            return ExitCode::FAILURE;
        }
    };
    let aws = AwsSettings::default().load().await;
    let ctx = Ctx {
        store: JobStore::new(aws.dynamodb(), config.job_table),
        emr: Emr::new(aws.emr()),
        objects: Objects::new(aws.s3()),
        queues: Queues::new(aws.sqs()),
        alerts: Alerts::new(aws.sns(), config.alerts_topic_arn),
        tables_queue_url: config.tables_queue_url,
        sweep: config.sweep,
    };
    match run_lambda(ctx, handler, Telemetry::new("monitor", MetricsSink::Stdout)).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %e, "monitor stopped");
            ExitCode::FAILURE
        }
    }
}
