use std::process::ExitCode;

use intraday_aws::{Alerts, AwsSettings, Emr, JobStore, Objects, Queues};
use intraday_monitor::{Ctx, MonitorError, config::Config, handler};
use intraday_runtime::{init_logging, serve};

async fn context() -> Result<Ctx, MonitorError> {
    let config = Config::from_env()?;
    let aws = AwsSettings::default().load().await;
    Ok(Ctx {
        store: JobStore::new(aws.dynamodb(), config.job_table),
        emr: Emr::new(aws.emr()),
        objects: Objects::new(aws.s3()),
        queues: Queues::new(aws.sqs()),
        alerts: Alerts::new(aws.sns(), config.alerts_topic_arn),
        tables_queue_url: config.tables_queue_url,
        sweep: config.sweep,
    })
}

#[tokio::main]
async fn main() -> ExitCode {
    init_logging();
    serve("monitor", context().await, handler).await
}
