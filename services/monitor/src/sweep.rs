//! The reconciliation sweep: EMR's events are best effort, so on a schedule the monitor asks
//! EMR about every run that has been launched or processing for too long and applies what
//! the lost event would have. It also reports (and optionally stops) clusters that run too
//! long.

use intraday_aws::emr::ALL_STATES;
use intraday_core::JobStatus;
use intraday_events::{Alert, AlertDetail, MESSAGE_VERSION, NotificationType, Severity};

use crate::decide::Observation;
use crate::handler::{extraction_step, runs_on};
use crate::run::apply;
use crate::{Ctx, MonitorError};

pub const ATTR_LONG_RUNNING_ALERTED: &str = "LongRunningAlertedAt";

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SweepReport {
    pub clusters: usize,
    pub reconciled: usize,
    pub long_running: usize,
}

pub async fn sweep(ctx: &Ctx, now_ms: u64) -> Result<SweepReport, MonitorError> {
    let since = now_ms.saturating_sub(ctx.sweep.lookback.as_millis() as u64);
    let stuck_before = now_ms.saturating_sub(ctx.sweep.stuck_after.as_millis() as u64);
    let mut report = SweepReport::default();
    for cluster in ctx.emr.list(&ALL_STATES, Some(since)).await? {
        for run in runs_on(ctx, &cluster.id).await? {
            report.clusters += 1;
            let open: Vec<_> = run
                .jobs
                .iter()
                .filter(|j| matches!(j.status, JobStatus::EmrLaunched | JobStatus::EmrProcessing))
                .collect();
            if open.is_empty() {
                continue;
            }
            let stuck = open
                .iter()
                .any(|j| j.status_changed_at.unwrap_or(j.triggered_time) < stuck_before);
            if stuck {
                let step = extraction_step(ctx, &cluster.id).await?;
                let observation = if matches!(
                    cluster.state.as_str(),
                    "TERMINATED" | "TERMINATED_WITH_ERRORS"
                ) {
                    Observation::ClusterEnded
                } else if ctx.objects.exists(&run.manifest_uri()?).await? {
                    // The extractor writes the manifest last: the step is done, whatever
                    // EMR has or has not said yet.
                    Observation::StepCompleted
                } else {
                    step.as_ref()
                        .map_or(Observation::Nothing, |s| Observation::of_step(&s.state))
                };
                let reason = match observation {
                    Observation::ClusterEnded => {
                        ctx.emr.describe(&cluster.id).await.ok().and_then(|info| {
                            info.state_change_code
                                .map(|code| match info.state_change_message {
                                    Some(m) => format!("{code}: {m}"),
                                    None => code,
                                })
                        })
                    }
                    _ => None,
                };
                apply(ctx, &run, observation, step.as_ref(), now_ms, reason).await?;
                report.reconciled += 1;
            }
            let active = !matches!(
                cluster.state.as_str(),
                "TERMINATING" | "TERMINATED" | "TERMINATED_WITH_ERRORS"
            );
            let too_long = cluster.created_ms.is_some_and(|created| {
                now_ms.saturating_sub(created) > ctx.sweep.max_runtime.as_millis() as u64
            });
            if active && too_long {
                report.long_running += 1;
                long_running(ctx, &run, &cluster.id, now_ms).await?;
            }
        }
    }
    Ok(report)
}

/// Reports a cluster that has run too long, once, and stops it when configured to.
async fn long_running(
    ctx: &Ctx,
    run: &crate::run::RunOnCluster,
    cluster_id: &str,
    now_ms: u64,
) -> Result<(), MonitorError> {
    let Some(first) = run.jobs.first() else {
        return Ok(());
    };
    let first_time = ctx
        .store
        .set_attributes(
            &run.run,
            &first.collection,
            &[(ATTR_LONG_RUNNING_ALERTED, intraday_aws::Value::N(now_ms))],
            true,
        )
        .await?;
    let ours = ctx.emr.describe(cluster_id).await?.is_intraday();
    let terminate = ctx.sweep.terminate_long_running && ours;
    if terminate {
        ctx.emr.terminate(cluster_id).await?;
    }
    if !first_time && !terminate {
        return Ok(());
    }
    let hours = ctx.sweep.max_runtime.as_secs() / 3600;
    ctx.alerts
        .publish(&Alert {
            version: MESSAGE_VERSION,
            correlation_id: run.run.clone(),
            severity: Severity::High,
            notification_type: NotificationType::Warning,
            title_text: format!("Intraday cluster {cluster_id} has run longer than {hours} hours"),
            collections: run.jobs.iter().map(|j| j.collection.clone()).collect(),
            detail: AlertDetail {
                cause: if terminate {
                    format!("cluster {cluster_id} ran longer than {hours} hours and was terminated; its run will fail and stay locked until acknowledged")
                } else {
                    format!("cluster {cluster_id} has run longer than {hours} hours; its collections stay locked while it runs")
                },
                resolve: Some(format!("intradayctl cluster stop {cluster_id}")),
                cluster_id: Some(cluster_id.to_owned()),
                ..AlertDetail::default()
            },
        })
        .await?;
    Ok(())
}
