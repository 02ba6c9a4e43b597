use std::process::ExitCode;

use intraday_aws::{AwsSettings, Catalog, JobStore};
use intraday_runtime::{MetricsSink, Telemetry, init_logging, run_lambda};
use intraday_table_builder::{Ctx, config::Config, handler};

#[tokio::main]
async fn main() -> ExitCode {
    init_logging();
    let config = match Config::from_env() {
        Ok(config) => config,
        Err(e) => {
            tracing::error!(error = %e, "table builder cannot start");
            return ExitCode::FAILURE;
        }
    };
    let aws = AwsSettings::default().load().await;
    let ctx = Ctx {
        store: JobStore::new(aws.dynamodb(), config.job_table),
        catalog: Catalog::new(aws.glue()),
    };
    match run_lambda(
        ctx,
        handler,
        Telemetry::new("table-builder", MetricsSink::Stdout),
    )
    .await
    {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %e, "table builder stopped");
            ExitCode::FAILURE
        }
    }
}
