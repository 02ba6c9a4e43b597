use std::process::ExitCode;

use intraday_aws::{Alerts, AwsSettings, JobStore, Queues, Secrets};
use intraday_runtime::{init_logging, serve};
use intraday_scheduler::{Ctx, ScheduleError, config::Config, handler};

async fn context() -> Result<Ctx, ScheduleError> {
    let config = Config::from_env()?;
    let aws = AwsSettings::default().load().await;
    Ok(Ctx {
        store: JobStore::new(aws.dynamodb(), config.job_table),
        secrets: Secrets::new(aws.secrets()),
        queues: Queues::new(aws.sqs()),
        alerts: Alerts::new(aws.sns(), config.alerts_topic_arn),
        collections_secret: config.collections_secret,
        scheduler_queue_url: config.scheduler_queue_url,
        launcher_queue_url: config.launcher_queue_url,
        output: config.output,
        database: config.database,
        backfill_database: config.backfill_database,
        format: config.format,
        policy: config.policy,
        collections: Default::default(),
    })
}

#[tokio::main]
async fn main() -> ExitCode {
    init_logging();
    serve("scheduler", context().await, handler).await
}
