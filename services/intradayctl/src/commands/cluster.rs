//! `cluster start | stop`: investigation clusters.

use std::path::Path;

use intraday_aws::Emr;
use intraday_launcher::cluster::{ClusterTemplate, DEFAULT_TEMPLATE};
use intraday_reaper::validate_cluster_id;
use serde_json::json;

use crate::CtlError;
use crate::context::Env;
use crate::output::Report;

pub async fn start(env: &Env, params: Option<&Path>) -> Result<Report, CtlError> {
    let mut template = ClusterTemplate::parse(DEFAULT_TEMPLATE, "infra/emr/cluster.json")
        .map_err(|e| CtlError::Invalid(e.to_string()))?;
    if let Some(path) = params {
        let text = std::fs::read_to_string(path).map_err(|e| CtlError::Read {
            path: path.display().to_string(),
            reason: e.to_string(),
        })?;
        template = template
            .with_overrides(&text, &path.display().to_string())
            .map_err(|e| CtlError::Invalid(e.to_string()))?;
    }
    let mut request = template.investigation_request();
    request
        .tags
        .insert("Purpose".into(), "investigation".into());
    let id = Emr::new(env.aws.emr()).run(&request).await?;
    let mut report = Report::new(&["CLUSTER", "NAME", "PURPOSE"]);
    report.rows.push(vec![
        id.clone(),
        request.name.clone(),
        "investigation".into(),
    ]);
    report.json = json!({"cluster_id": id, "name": request.name});
    report.notes.push(format!(
        "It keeps running until you stop it: intradayctl cluster stop {id}"
    ));
    Ok(report)
}

pub async fn stop(env: &Env, cluster_id: &str) -> Result<Report, CtlError> {
    validate_cluster_id(cluster_id).map_err(|_| {
        CtlError::Invalid(format!(
            "`{cluster_id}` is not an EMR cluster id (j- followed by 1 to 64 upper-case letters and digits); nothing stopped"
        ))
    })?;
    let emr = Emr::new(env.aws.emr());
    let info = emr
        .describe(cluster_id)
        .await
        .map_err(|e| unknown_cluster(cluster_id, e))?;
    if !info.is_intraday() {
        return Err(CtlError::Invalid(format!(
            "cluster {cluster_id} is not one of Intraday's (no ManagedBy=intraday tag); stop it with `aws emr terminate-clusters` if you mean to"
        )));
    }
    let mut report = Report::new(&["CLUSTER", "WAS", "NOW"]);
    // TerminateJobFlows on an ended cluster succeeds and does nothing: say so instead.
    if matches!(
        info.state.as_str(),
        "TERMINATING" | "TERMINATED" | "TERMINATED_WITH_ERRORS"
    ) {
        report.rows.push(vec![
            cluster_id.to_owned(),
            info.state.clone(),
            info.state.clone(),
        ]);
        report.json = json!({"cluster_id": cluster_id, "previous_state": info.state, "state": info.state, "terminated_now": false});
        report.notes.push(format!(
            "Cluster {cluster_id} is {} already: nothing to do.",
            info.state
        ));
        return Ok(report);
    }
    emr.terminate(cluster_id).await?;
    report.rows.push(vec![
        cluster_id.to_owned(),
        info.state.clone(),
        "TERMINATING".into(),
    ]);
    report.json = json!({"cluster_id": cluster_id, "previous_state": info.state, "state": "TERMINATING", "terminated_now": true});
    report.notes.push(format!("Once it has terminated the reaper removes its metadata; or run: intradayctl reap {cluster_id}"));
    Ok(report)
}

/// EMR answers DescribeCluster on an id it does not know with `InvalidRequestException`
/// ("Cluster id '…' is not valid."), as moto does: for people that is "not found" (exit 4).
pub fn unknown_cluster(cluster_id: &str, e: intraday_aws::AwsError) -> CtlError {
    if matches!(&e, intraday_aws::AwsError::Service { operation: "DescribeCluster", code, .. } if code == "InvalidRequestException")
    {
        CtlError::NotFound(format!(
            "no cluster {cluster_id} in this account and region; `aws emr list-clusters` lists them"
        ))
    } else {
        CtlError::Aws(e)
    }
}
