//! EMR events (and the sweep's schedule) → the runs they concern.

use std::collections::BTreeMap;
use std::time::Duration;

use intraday_aws::emr::StepInfo;
use intraday_aws::{Alerts, Emr, JobStore, Objects, Queues};
use intraday_core::CorrelationId;
use intraday_events::{AwsEventDetail, Inbound};
use intraday_runtime::{HandlerError, HandlerFuture, Message};

use crate::MonitorError;
use crate::decide::Observation;
use crate::run::{RunOnCluster, apply, describe};

/// The extraction step's name (the launcher's `STEP_NAME`).
pub const STEP_NAME: &str = "intraday-extract";

/// How the sweep behaves.
#[derive(Debug, Clone, Copy)]
pub struct SweepPolicy {
    /// A run launched or processing for longer than this without news is checked with EMR.
    pub stuck_after: Duration,
    /// How far back the sweep looks for clusters.
    pub lookback: Duration,
    /// A cluster running longer than this is reported.
    pub max_runtime: Duration,
    /// And, when set, terminated.
    pub terminate_long_running: bool,
}

impl Default for SweepPolicy {
    fn default() -> Self {
        Self {
            stuck_after: Duration::from_secs(30 * 60),
            lookback: Duration::from_secs(3 * 24 * 3600),
            max_runtime: Duration::from_secs(6 * 3600),
            terminate_long_running: false,
        }
    }
}

pub struct Ctx {
    pub store: JobStore,
    pub emr: Emr,
    pub objects: Objects,
    pub queues: Queues,
    pub alerts: Alerts,
    pub tables_queue_url: String,
    pub sweep: SweepPolicy,
}

pub fn handler(message: Message, ctx: &Ctx) -> HandlerFuture<'_> {
    Box::pin(handle(message, ctx))
}

pub async fn handle(message: Message, ctx: &Ctx) -> Result<(), HandlerError> {
    let event = match Inbound::parse(&message.body)? {
        Inbound::Aws(event) => event,
        other => {
            return Err(other
                .refuse(
                    "monitor",
                    "EMR cluster and step events and its sweep schedule",
                )
                .into());
        }
    };
    let at = event.time_ms();
    match &event.detail {
        AwsEventDetail::Scheduled => {
            let report = crate::sweep::sweep(ctx, intraday_aws::jobs::now_ms()).await?;
            tracing::info!(?report, "sweep done");
        }
        AwsEventDetail::ClusterStateChange(change) => {
            let observation = Observation::of_cluster(change.state.as_str());
            if observation == Observation::Nothing {
                return Ok(());
            }
            let reason = {
                let r = &change.state_change_reason;
                let code = r.code.as_str();
                match (&r.message, code.is_empty()) {
                    (Some(m), false) => Some(format!("{code}: {m}")),
                    (Some(m), true) => Some(m.clone()),
                    (None, false) => Some(code.to_owned()),
                    (None, true) => None,
                }
            };
            for run in runs_on(ctx, &change.cluster_id).await? {
                // A cluster that ended is judged with the step's own state.
                let step = if observation == Observation::ClusterEnded {
                    extraction_step(ctx, &change.cluster_id).await?
                } else {
                    None
                };
                let action =
                    apply(ctx, &run, observation, step.as_ref(), at, reason.clone()).await?;
                tracing::info!(run = %run.run, cluster = %change.cluster_id, state = %change.state, action = describe(action), "cluster event applied");
            }
        }
        AwsEventDetail::StepStatusChange(change) => {
            if change.name != STEP_NAME {
                tracing::debug!(step = %change.name, "not the extraction step; ignored");
                return Ok(());
            }
            let observation = Observation::of_step(change.state.as_str());
            if observation == Observation::Nothing {
                return Ok(());
            }
            for run in runs_on(ctx, &change.cluster_id).await? {
                // EMR's own account of the step carries the failure reason and log file.
                let step = match extraction_step(ctx, &change.cluster_id).await? {
                    Some(mut known) if known.id == change.step_id => {
                        known.state = change.state.as_str().to_owned();
                        known
                    }
                    _ => StepInfo {
                        id: change.step_id.clone(),
                        name: change.name.clone(),
                        state: change.state.as_str().to_owned(),
                        failure_reason: None,
                        log_file: None,
                        args: vec![],
                    },
                };
                let action = apply(ctx, &run, observation, Some(&step), at, None).await?;
                tracing::info!(run = %run.run, cluster = %change.cluster_id, step = %change.step_id, state = %change.state, action = describe(action), "step event applied");
            }
        }
        AwsEventDetail::Other(kind) => tracing::debug!(detail_type = %kind, "event ignored"),
    }
    Ok(())
}

/// The runs whose items carry this cluster id, from the sparse `byCluster` index (a Query,
/// never a Scan). A cluster that is not ours has none: its events are ignored.
pub async fn runs_on(ctx: &Ctx, cluster_id: &str) -> Result<Vec<RunOnCluster>, MonitorError> {
    let keys = ctx.store.by_cluster(cluster_id).await?;
    if keys.is_empty() {
        if let Some(run) = unrecorded_run(ctx, cluster_id).await? {
            return Err(MonitorError::Unrecorded {
                cluster: cluster_id.to_owned(),
                run: run.to_string(),
            });
        }
        tracing::debug!(cluster = %cluster_id, "not one of our clusters; ignored");
    }
    let mut by_run: BTreeMap<CorrelationId, Vec<_>> = BTreeMap::new();
    for (run, collection) in keys {
        by_run.entry(run).or_default().push(collection);
    }
    let mut runs = Vec::new();
    for (run, collections) in by_run {
        let jobs = ctx
            .store
            .run(&run)
            .await?
            .into_iter()
            .filter(|j| {
                collections.contains(&j.collection)
                    && j.emr_cluster_id.as_deref() == Some(cluster_id)
            })
            .collect();
        runs.push(RunOnCluster {
            run,
            cluster_id: cluster_id.to_owned(),
            jobs,
        });
    }
    Ok(runs)
}

/// The run a cluster of ours was launched for, when that run is still open and either does
/// not record the cluster yet (the launcher's RunJobFlow took effect but its answer was lost;
/// a later delivery finds the cluster by its tag and records it) or records it where the
/// `byCluster` index does not show it yet (global secondary indexes are eventually
/// consistent: https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/GSI.html).
/// Its events must wait, not be dropped. A cluster that is not ours, has no run tag, or whose
/// run has moved on is not waited for.
async fn unrecorded_run(
    ctx: &Ctx,
    cluster_id: &str,
) -> Result<Option<CorrelationId>, MonitorError> {
    use intraday_core::JobStatus;
    let info = match ctx.emr.describe(cluster_id).await {
        Ok(info) => info,
        // EMR does not know it ("Cluster id '…' is not valid."): not ours to wait for.
        Err(e) if e.code() == Some("InvalidRequestException") => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    let Some(run) = info.intraday_run().and_then(|r| CorrelationId::new(r).ok()) else {
        return Ok(None);
    };
    let jobs = ctx.store.run(&run).await?;
    let waiting = !jobs.is_empty()
        && jobs.iter().all(|j| {
            j.emr_cluster_id.as_deref().is_none_or(|c| c == cluster_id)
                && matches!(
                    j.status,
                    JobStatus::LambdaTriggered
                        | JobStatus::Waiting
                        | JobStatus::EmrLaunched
                        | JobStatus::EmrProcessing
                )
        });
    Ok(waiting.then_some(run))
}

/// The extraction step of a cluster as EMR reports it now.
pub async fn extraction_step(
    ctx: &Ctx,
    cluster_id: &str,
) -> Result<Option<StepInfo>, MonitorError> {
    Ok(ctx
        .emr
        .steps(cluster_id)
        .await?
        .into_iter()
        .find(|s| s.name == STEP_NAME))
}
