//! `reap`: remove a terminated cluster's replica metadata, or list it (`--dry-run`).

use intraday_aws::{Emr, Objects};
use intraday_core::S3Uri;
use intraday_reaper::{ReapError, reap as reap_cluster};
use serde_json::json;

use crate::CtlError;
use crate::context::Env;
use crate::output::Report;

pub async fn reap(
    env: &Env,
    cluster_id: &str,
    dry_run: bool,
    hbase_root: Option<&str>,
) -> Result<Report, CtlError> {
    let root = match hbase_root {
        Some(root) => root.to_owned(),
        None => env.resources().await?.hbase_root.clone().ok_or_else(|| {
            CtlError::Invalid(
                "the stack has no HBaseRootS3Uri; pass --hbase-root s3://bucket/path".into(),
            )
        })?,
    };
    let root = S3Uri::parse(&root)?;
    let report_of = reap_cluster(
        &Emr::new(env.aws.emr()),
        &Objects::new(env.aws.s3()),
        &root,
        cluster_id,
        dry_run,
    )
    .await
    .map_err(|e| match e {
        ReapError::InvalidClusterId(_) | ReapError::Root(..) => CtlError::Invalid(e.to_string()),
        ReapError::Aws(aws) => super::cluster::unknown_cluster(cluster_id, aws),
        // The cluster is there but may not be reaped (yet): the command did not do its work.
        _ => CtlError::Other(e.to_string()),
    })?;
    let mut report = Report::new(&["CLUSTER", "PREFIX", "KEYS", "DELETED"]);
    report.rows.push(vec![
        cluster_id.to_owned(),
        report_of.prefix.clone(),
        report_of.keys.len().to_string(),
        report_of.deleted.to_string(),
    ]);
    if report_of.keys.is_empty() {
        report.notes.push(format!(
            "Nothing under {}: the metadata is gone already.",
            report_of.prefix
        ));
    } else if dry_run {
        report.notes.extend(
            report_of
                .keys
                .iter()
                .map(|k| format!("would delete s3://{}/{k}", root.bucket())),
        );
    }
    report.json = json!({"cluster_id": cluster_id, "prefix": report_of.prefix, "keys": report_of.keys, "deleted": report_of.deleted, "dry_run": dry_run});
    Ok(report)
}
