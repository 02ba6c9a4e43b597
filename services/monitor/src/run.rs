//! Carrying a decision out on one run: its items, its manifest, its alerts.

use intraday_aws::emr::StepInfo;
use intraday_aws::jobs::{ATTR_READY_TIME, ATTR_STEP_STATE};
use intraday_aws::{AwsError, Outcome, Value};
use intraday_core::{
    CorrelationId, DatabaseName, JobRecord, JobStatus, OutputFormat, S3Uri, run_folder,
};
use intraday_events::{
    Alert, AlertDetail, CollectionResult, ExtractionCompleted, MESSAGE_VERSION, Manifest,
    Message as Event, NotificationType, Severity,
};

use crate::decide::{Action, Evidence, Observation, decide};
use crate::{Ctx, MonitorError};

/// One run on one cluster: its items that carry the cluster's id.
#[derive(Debug, Clone)]
pub struct RunOnCluster {
    pub run: CorrelationId,
    pub cluster_id: String,
    pub jobs: Vec<JobRecord>,
}

/// Why a run failed, for its alert.
#[derive(Debug, Clone, Default)]
pub struct Failure {
    pub step_id: Option<String>,
    pub reason: String,
    pub logs: Option<String>,
}

impl RunOnCluster {
    fn all_settled(&self) -> bool {
        self.jobs
            .iter()
            .all(|j| !matches!(j.status, JobStatus::EmrLaunched | JobStatus::EmrProcessing))
    }

    /// Where the extractor writes this run's manifest: `<output>/_manifests/<run>.json`.
    pub fn manifest_uri(&self) -> Result<S3Uri, MonitorError> {
        let output = self.output()?;
        output
            .join(&format!("_manifests/{}.json", self.run))
            .map_err(|e| self.problem(e.to_string()))
    }

    fn output(&self) -> Result<S3Uri, MonitorError> {
        let raw = self
            .jobs
            .iter()
            .find_map(|j| j.output.clone())
            .ok_or_else(|| {
                self.problem("its items do not say where it writes (OutputLocation)".into())
            })?;
        S3Uri::parse(&raw).map_err(|e| self.problem(e.to_string()))
    }

    fn problem(&self, reason: String) -> MonitorError {
        MonitorError::Run {
            run: self.run.to_string(),
            reason,
        }
    }
}

/// Applies an observation to a run. `step` is the extraction step when known.
pub async fn apply(
    ctx: &Ctx,
    run: &RunOnCluster,
    observation: Observation,
    step: Option<&StepInfo>,
    event_time_ms: u64,
    cluster_reason: Option<String>,
) -> Result<Action, MonitorError> {
    if run.all_settled() {
        return Ok(Action::Nothing);
    }
    let evidence = if observation == Observation::ClusterEnded {
        Evidence {
            manifest: ctx.objects.exists(&run.manifest_uri()?).await?,
            step_completed: step.is_some_and(|s| s.state == "COMPLETED")
                || run
                    .jobs
                    .iter()
                    .any(|j| j.step_state.as_deref() == Some("COMPLETED")),
        }
    } else {
        Evidence::default()
    };
    let action = decide(observation, evidence);
    match action {
        Action::Processing => processing(ctx, run, event_time_ms, step).await?,
        Action::Complete => {
            if let Err(e) = complete(ctx, run, step).await {
                match e {
                    MonitorError::Run { reason, .. } => {
                        fail(
                            ctx,
                            run,
                            step,
                            Failure {
                                step_id: step.map(|s| s.id.clone()),
                                reason,
                                logs: None,
                            },
                        )
                        .await?
                    }
                    other => return Err(other),
                }
            }
        }
        Action::Fail => {
            let reason = step
                .and_then(|s| s.failure_reason.clone())
                .or(cluster_reason)
                .unwrap_or_else(|| match observation {
                    Observation::ClusterEnded => {
                        "the cluster ended before the extraction step completed".to_owned()
                    }
                    _ => format!(
                        "the extraction step ended {}",
                        step.map_or("unsuccessfully", |s| s.state.as_str())
                    ),
                });
            let logs = match step {
                Some(s) => s
                    .log_file
                    .clone()
                    .or(logs_for(ctx, &run.cluster_id, &s.id).await),
                None => None,
            };
            fail(
                ctx,
                run,
                step,
                Failure {
                    step_id: step.map(|s| s.id.clone()),
                    reason,
                    logs,
                },
            )
            .await?
        }
        Action::Nothing => {}
    }
    Ok(action)
}

async fn logs_for(ctx: &Ctx, cluster_id: &str, step_id: &str) -> Option<String> {
    let log_uri = ctx.emr.describe(cluster_id).await.ok()?.log_uri?;
    let base = if log_uri.ends_with('/') {
        log_uri
    } else {
        format!("{log_uri}/")
    };
    Some(format!("{base}{cluster_id}/steps/{step_id}/"))
}

async fn processing(
    ctx: &Ctx,
    run: &RunOnCluster,
    at_ms: u64,
    step: Option<&StepInfo>,
) -> Result<(), MonitorError> {
    for job in &run.jobs {
        let mut set = vec![(ATTR_READY_TIME, Value::N(at_ms))];
        if let Some(step) = step {
            set.push((ATTR_STEP_STATE, Value::S(step.state.clone())));
        }
        ctx.store
            .transition(&run.run, &job.collection, JobStatus::EmrProcessing, &set)
            .await?;
    }
    Ok(())
}

/// Reads and checks the manifest, then hands the run to the table builder. Every delivery
/// sends it again; the table builder is idempotent.
async fn complete(
    ctx: &Ctx,
    run: &RunOnCluster,
    step: Option<&StepInfo>,
) -> Result<(), MonitorError> {
    if run.jobs.iter().any(|j| j.status == JobStatus::EmrFailed) {
        return Ok(());
    }
    let manifest_uri = run.manifest_uri()?;
    let text = match ctx.objects.get(&manifest_uri).await {
        Ok(bytes) => String::from_utf8(bytes)
            .map_err(|_| run.problem(format!("the manifest {manifest_uri} is not UTF-8")))?,
        Err(AwsError::Service { code, .. }) if code == "NoSuchKey" => {
            return Err(run.problem(format!(
                "the step completed but wrote no manifest at {manifest_uri}, so its output is incomplete"
            )));
        }
        Err(e) => return Err(e.into()),
    };
    let manifest = Manifest::parse(&text)
        .map_err(|e| run.problem(format!("the manifest {manifest_uri} is not valid: {e}")))?;
    let completed = check_manifest(run, &manifest, manifest_uri, step)?;

    for job in &run.jobs {
        // A lost RUNNING event must not leave the item behind.
        ctx.store
            .transition(&run.run, &job.collection, JobStatus::EmrProcessing, &[])
            .await?;
        ctx.store
            .set_attributes(
                &run.run,
                &job.collection,
                &[(ATTR_STEP_STATE, Value::S("COMPLETED".into()))],
                false,
            )
            .await?;
    }
    ctx.queues
        .send(
            &ctx.tables_queue_url,
            &Event::ExtractionCompleted(completed).to_body(),
            None,
        )
        .await?;
    Ok(())
}

/// The manifest must be this run's, with each of its collections and their windows.
pub fn check_manifest(
    run: &RunOnCluster,
    manifest: &Manifest,
    manifest_uri: S3Uri,
    step: Option<&StepInfo>,
) -> Result<ExtractionCompleted, MonitorError> {
    if manifest.correlation_id != run.run {
        return Err(run.problem(format!(
            "the manifest belongs to run `{}`",
            manifest.correlation_id
        )));
    }
    let output = run.output()?;
    let first = run
        .jobs
        .first()
        .ok_or_else(|| run.problem("it has no items".into()))?;
    let expected_folder =
        run_folder(first.triggered_time).map_err(|e| run.problem(e.to_string()))?;
    if manifest.run != expected_folder {
        return Err(run.problem(format!(
            "the manifest's run folder is {}, expected {expected_folder}",
            manifest.run
        )));
    }
    if let Some(extra) = manifest
        .collections
        .iter()
        .find(|m| !run.jobs.iter().any(|j| j.collection == m.collection))
    {
        return Err(run.problem(format!(
            "the manifest lists {} which the run does not",
            extra.collection
        )));
    }
    let mut collections = Vec::new();
    for job in &run.jobs {
        let entry = manifest
            .collections
            .iter()
            .find(|m| m.collection == job.collection)
            .ok_or_else(|| run.problem(format!("the manifest does not list {}", job.collection)))?;
        let window = (entry.window.start_ms(), entry.window.end_ms());
        if let (Some(start), Some(end)) = (job.processed_data_start, job.window_end)
            && window != (start, end)
        {
            return Err(run.problem(format!(
                "the manifest's window for {} is {}, the run's is [{start}, {end})",
                job.collection, entry.window
            )));
        }
        collections.push(CollectionResult {
            collection: job.collection.clone(),
            records: entry.records,
            largest_timestamp_ms: entry.largest_timestamp_ms,
            output_prefix: output
                .join(&format!(
                    "{}/run={}/",
                    job.collection.hive_table(),
                    manifest.run
                ))
                .map_err(|e| run.problem(e.to_string()))?,
        });
    }
    let database = first
        .database
        .clone()
        .map(DatabaseName::new)
        .transpose()
        .map_err(|e| run.problem(e.to_string()))?
        .unwrap_or_default();
    let format = first
        .format
        .as_deref()
        .map(str::parse::<OutputFormat>)
        .transpose()
        .map_err(|e| run.problem(e.to_string()))?
        .unwrap_or(manifest.format);
    Ok(ExtractionCompleted {
        version: MESSAGE_VERSION,
        correlation_id: run.run.clone(),
        cluster_id: run.cluster_id.clone(),
        step_id: step.map_or_else(|| "unknown".to_owned(), |s| s.id.clone()),
        manifest: manifest_uri,
        database,
        format,
        run: manifest.run.clone(),
        backfill: first.backfill,
        collections,
    })
}

/// EMR_FAILED for every item still running, and one alert when anything changed.
async fn fail(
    ctx: &Ctx,
    run: &RunOnCluster,
    step: Option<&StepInfo>,
    failure: Failure,
) -> Result<(), MonitorError> {
    let mut changed = false;
    for job in &run.jobs {
        let mut set = Vec::new();
        if let Some(step) = step {
            set.push((ATTR_STEP_STATE, Value::S(step.state.clone())));
        }
        let outcome = ctx
            .store
            .transition(&run.run, &job.collection, JobStatus::EmrFailed, &set)
            .await?;
        changed |= outcome == Outcome::Applied;
    }
    if !changed {
        return Ok(());
    }
    let collections: Vec<_> = run.jobs.iter().map(|j| j.collection.clone()).collect();
    let resolve = collections
        .iter()
        .map(|c| {
            format!(
                "intradayctl ack {} --collection {c} --reason '<what was fixed>'",
                run.run
            )
        })
        .collect::<Vec<_>>()
        .join("; ");
    ctx.alerts
        .publish(&Alert {
            version: MESSAGE_VERSION,
            correlation_id: run.run.clone(),
            severity: Severity::Critical,
            notification_type: NotificationType::Error,
            title_text: format!("Intraday extraction failed on cluster {}", run.cluster_id),
            collections,
            detail: AlertDetail {
                cause: format!(
                    "run `{}` is EMR_FAILED; its collections stay locked, so no later run skips its window, until an operator acknowledges it",
                    run.run
                ),
                reason: Some(failure.reason),
                logs: failure.logs,
                resolve: Some(resolve),
                cluster_id: Some(run.cluster_id.clone()),
                step_id: failure.step_id.or_else(|| step.map(|s| s.id.clone())),
            },
        })
        .await?;
    Ok(())
}

/// How an action reads in logs.
pub fn describe(action: Action) -> &'static str {
    match action {
        Action::Processing => "processing",
        Action::Complete => "handed to the table builder",
        Action::Fail => "failed",
        Action::Nothing => "nothing to do",
    }
}
