use std::process::ExitCode;

use intraday_aws::{AwsSettings, Emr, Objects};
use intraday_core::S3Uri;
use intraday_reaper::{Ctx, ReapError, handler};
use intraday_runtime::env::required;
use intraday_runtime::{init_logging, serve};

async fn context() -> Result<Ctx, ReapError> {
    let root = required(
        "INTRADAY_HBASE_ROOT",
        "it is the primary's HBase root, s3://bucket/path (stack parameter HBaseRootS3Uri)",
    )?;
    let hbase_root =
        S3Uri::parse(&root).map_err(|e| ReapError::Root(root.clone(), e.to_string()))?;
    let aws = AwsSettings::default().load().await;
    Ok(Ctx {
        emr: Emr::new(aws.emr()),
        objects: Objects::new(aws.s3()),
        hbase_root,
    })
}

#[tokio::main]
async fn main() -> ExitCode {
    init_logging();
    serve("reaper", context().await, handler).await
}
