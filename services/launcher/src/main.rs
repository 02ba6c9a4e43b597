use std::process::ExitCode;

use intraday_aws::{Alerts, AwsSettings, Emr, JobStore};
use intraday_launcher::{Ctx, LaunchError, config::Config, handler};
use intraday_runtime::{init_logging, serve};

async fn context() -> Result<Ctx, LaunchError> {
    let config = Config::from_env()?;
    let aws = AwsSettings::default().load().await;
    Ok(Ctx {
        store: JobStore::new(aws.dynamodb(), config.job_table),
        emr: Emr::new(aws.emr()),
        alerts: Alerts::new(aws.sns(), config.alerts_topic_arn),
        template: config.template,
        claim_timeout: config.claim_timeout,
    })
}

#[tokio::main]
async fn main() -> ExitCode {
    init_logging();
    serve("launcher", context().await, handler).await
}
