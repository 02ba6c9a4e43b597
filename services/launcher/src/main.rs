use std::process::ExitCode;

use intraday_aws::{Alerts, AwsSettings, Emr, JobStore};
use intraday_launcher::{Ctx, config::Config, handler};
use intraday_runtime::{MetricsSink, Telemetry, init_logging, run_lambda};

#[tokio::main]
async fn main() -> ExitCode {
    init_logging();
    let config = match Config::from_env() {
        Ok(config) => config,
        Err(e) => {
            tracing::error!(error = %e, "launcher cannot start");
            return ExitCode::FAILURE;
        }
    };
    let aws = AwsSettings::default().load().await;
    let ctx = Ctx {
        store: JobStore::new(aws.dynamodb(), config.job_table),
        emr: Emr::new(aws.emr()),
        alerts: Alerts::new(aws.sns(), config.alerts_topic_arn),
        template: config.template,
        claim_timeout: config.claim_timeout,
    };
    match run_lambda(
        ctx,
        handler,
        Telemetry::new("launcher", MetricsSink::Stdout),
    )
    .await
    {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %e, "launcher stopped");
            ExitCode::FAILURE
        }
    }
}
