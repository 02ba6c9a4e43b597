use std::process::ExitCode;

use intraday_aws::{Alerts, AwsSettings, Catalog, JobStore};
use intraday_runtime::{MetricsSink, init_logging, serve};
use intraday_table_builder::{Ctx, TableBuilderError, config::Config, handler};

async fn context() -> Result<Ctx, TableBuilderError> {
    let config = Config::from_env()?;
    let aws = AwsSettings::default().load().await;
    Ok(Ctx {
        store: JobStore::new(aws.dynamodb(), config.job_table),
        catalog: Catalog::new(aws.glue()),
        alerts: Alerts::new(aws.sns(), config.alerts_topic_arn),
        // In Lambda, stdout reaches CloudWatch Logs, which turns EMF lines into metrics.
        metrics: MetricsSink::Stdout,
    })
}

#[tokio::main]
async fn main() -> ExitCode {
    init_logging();
    serve("table-builder", context().await, handler).await
}
