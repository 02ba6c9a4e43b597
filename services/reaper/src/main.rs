use std::process::ExitCode;

use intraday_aws::{AwsSettings, Emr, Objects};
use intraday_core::S3Uri;
use intraday_reaper::{Ctx, handler};
use intraday_runtime::env::required;
use intraday_runtime::{MetricsSink, Telemetry, init_logging, run_lambda};

#[tokio::main]
async fn main() -> ExitCode {
    init_logging();
    let root = required(
        "INTRADAY_HBASE_ROOT",
        "it is the primary's HBase root, s3://bucket/path (stack parameter HBaseRootS3Uri)",
    )
    .map_err(|e| e.to_string())
    .and_then(|root| S3Uri::parse(&root).map_err(|e| format!("INTRADAY_HBASE_ROOT: {e}")));
    let hbase_root = match root {
        Ok(root) => root,
        Err(e) => {
            tracing::error!(error = %e, "reaper cannot start");
            return ExitCode::FAILURE;
        }
    };
    let aws = AwsSettings::default().load().await;
    let ctx = Ctx {
        emr: Emr::new(aws.emr()),
        objects: Objects::new(aws.s3()),
        hbase_root,
    };
    match run_lambda(ctx, handler, Telemetry::new("reaper", MetricsSink::Stdout)).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %e, "reaper stopped");
            ExitCode::FAILURE
        }
    }
}
