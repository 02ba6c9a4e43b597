//! LaunchRequested → exactly one cluster.
//!
//! `RunJobFlow` has no idempotency token, so the launcher makes its own: before the call it
//! claims the launch with a conditional write on the run's items; a redelivered or
//! concurrent request either sees the recorded cluster id and stops, finds the cluster by
//! its `CorrelationId` tag (an earlier attempt launched, then died before recording it), or,
//! while another attempt's claim is fresh, comes back later.

use std::collections::HashMap;
use std::time::Duration;

use intraday_aws::jobs::{ATTR_CLUSTER_ID, ATTR_STATUS, now_ms};
use intraday_aws::{Alerts, AttributeValue, AwsError, Condition, Emr, JobStore, TxOp, Value};
use intraday_core::{JobRecord, JobStatus};
use intraday_events::{
    Alert, AlertDetail, Inbound, LaunchRequested, MESSAGE_VERSION, Message as Event,
    NotificationType, Severity,
};
use intraday_runtime::{HandlerError, HandlerFuture, Message};

use crate::LaunchError;
use crate::cluster::{ClusterTemplate, TAG_CORRELATION_ID};

pub const ATTR_CLAIM: &str = "LaunchClaim";
pub const ATTR_CLAIMED_AT: &str = "LaunchClaimedAt";

/// The launcher's dependencies.
pub struct Ctx {
    pub store: JobStore,
    pub emr: Emr,
    pub alerts: Alerts,
    pub template: ClusterTemplate,
    /// How long a claim stands before another delivery may assume its owner died.
    /// `RunJobFlow` answers in seconds; two minutes is generous.
    pub claim_timeout: Duration,
}

/// What one delivery did; tests read it, the handler logs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Launched {
    Started(String),
    /// A cluster an earlier attempt started, now recorded.
    Found(String),
    AlreadyRecorded(String),
    /// The run is past launching (failed or deferred): nothing to do.
    NotLaunchable(JobStatus),
    /// AWS refused the request; the items are LAMBDA_FAILED and an alert went out.
    Refused(String),
}

pub fn handler(message: Message, ctx: &Ctx) -> HandlerFuture<'_> {
    Box::pin(handle(message, ctx))
}

pub async fn handle(message: Message, ctx: &Ctx) -> Result<(), HandlerError> {
    let inbound = Inbound::parse(&message.body)?;
    let Some(Event::LaunchRequested(launch)) = inbound.message() else {
        return Err(inbound.refuse("launcher", "LaunchRequested").into());
    };
    let outcome = launch_once(launch, ctx).await?;
    tracing::info!(outcome = ?outcome, "launch settled");
    Ok(())
}

/// Launches the run's cluster unless an earlier delivery did.
pub async fn launch_once(launch: &LaunchRequested, ctx: &Ctx) -> Result<Launched, LaunchError> {
    let jobs = run_items(launch, ctx).await?;
    if let Some(cluster) = jobs.iter().find_map(|j| j.emr_cluster_id.clone()) {
        return Ok(Launched::AlreadyRecorded(cluster));
    }
    if let Some(job) = jobs.iter().find(|j| !launchable(j.status)) {
        return Ok(Launched::NotLaunchable(job.status));
    }

    let token = uuid::Uuid::new_v4().to_string();
    match claim(launch, &token, ctx).await {
        // A refusal may be our own claim: when the answer to the claim is lost, the SDK sends
        // it again and the repeat finds the items claimed, by this very token. The check
        // below tells the two apart.
        Ok(()) | Err(AwsError::TransactionCancelled { .. }) => {}
        // Every answer lost, the SDK's repeats' included: the claim may have been written
        // all the same. Read back below; if it is ours, go on rather than leave a claim
        // that each redelivery would wait out.
        Err(e) if e.is_retryable() => {
            if !claim_holds(launch, &token, ctx).await.unwrap_or(false) {
                return Err(e.into());
            }
            tracing::warn!(error = %e, "the claim's answer was lost, but the claim is ours");
        }
        Err(e) => return Err(e.into()),
    }

    if !claim_holds(launch, &token, ctx).await? {
        return settle_contended(launch, ctx).await;
    }
    // We hold the claim. An earlier attempt whose claim went stale, or whose RunJobFlow
    // answer was lost, may have launched: look, whatever state its cluster is in now, before
    // launching again.
    let since = jobs.iter().map(|j| j.triggered_time).min();
    if let Some(cluster) = ctx
        .emr
        .find_by_tag(TAG_CORRELATION_ID, launch.correlation_id.as_str(), since)
        .await?
    {
        record(launch, &cluster, ctx).await?;
        return Ok(Launched::Found(cluster));
    }

    let request = ctx.template.request(launch)?;
    tracing::info!(
        engine = ctx.template.engine_for(launch).as_str(),
        collection_hours = crate::cluster::collection_hours(launch),
        "launching the run's cluster"
    );
    match ctx.emr.run(&request).await {
        Ok(cluster) => {
            record(launch, &cluster, ctx).await?;
            Ok(Launched::Started(cluster))
        }
        Err(e) if e.is_retryable() => {
            // Let the next delivery launch at once instead of waiting out our claim.
            release_claim(launch, &token, ctx).await;
            Err(e.into())
        }
        Err(e) => {
            refuse(launch, &e, ctx).await?;
            Ok(Launched::Refused(e.to_string()))
        }
    }
}

fn launchable(status: JobStatus) -> bool {
    matches!(status, JobStatus::LambdaTriggered | JobStatus::Waiting)
}

async fn run_items(launch: &LaunchRequested, ctx: &Ctx) -> Result<Vec<JobRecord>, LaunchError> {
    let all = ctx.store.run(&launch.correlation_id).await?;
    launch
        .collections
        .iter()
        .map(|c| {
            all.iter()
                .find(|j| j.collection == c.collection)
                .cloned()
                .ok_or_else(|| LaunchError::NoJobItem {
                    run: launch.correlation_id.to_string(),
                    collection: c.collection.name(),
                })
        })
        .collect()
}

/// One transaction over every item of the run: each must still be launchable and unclaimed
/// (or claimed long enough ago that its claimant is presumed dead).
async fn claim(launch: &LaunchRequested, token: &str, ctx: &Ctx) -> Result<(), AwsError> {
    let now = now_ms();
    let stale_before = now.saturating_sub(ctx.claim_timeout.as_millis() as u64);
    let ops = launch
        .collections
        .iter()
        .map(|c| TxOp::Update {
            key: intraday_aws::jobs::job_key(&launch.correlation_id, &c.collection),
            update: "SET #claim = :token, #claimed_at = :now".to_owned(),
            names: HashMap::from([
                ("#claim".to_owned(), ATTR_CLAIM.to_owned()),
                ("#claimed_at".to_owned(), ATTR_CLAIMED_AT.to_owned()),
            ]),
            values: HashMap::from([
                (":token".to_owned(), AttributeValue::S(token.to_owned())),
                (":now".to_owned(), AttributeValue::N(now.to_string())),
            ]),
            condition: Some(Condition {
                expression: "#status IN (:triggered, :waiting) AND attribute_not_exists(#cluster) \
                             AND (attribute_not_exists(#claim) OR #claimed_at < :stale)"
                    .to_owned(),
                names: HashMap::from([
                    ("#status".to_owned(), ATTR_STATUS.to_owned()),
                    ("#cluster".to_owned(), ATTR_CLUSTER_ID.to_owned()),
                ]),
                values: HashMap::from([
                    (
                        ":triggered".to_owned(),
                        AttributeValue::S(JobStatus::LambdaTriggered.as_str().to_owned()),
                    ),
                    (
                        ":waiting".to_owned(),
                        AttributeValue::S(JobStatus::Waiting.as_str().to_owned()),
                    ),
                    (
                        ":stale".to_owned(),
                        AttributeValue::N(stale_before.to_string()),
                    ),
                ]),
            }),
        })
        .collect();
    // The token doubles as DynamoDB's idempotency token: a repeat within ten minutes is
    // answered as the first was, without being applied again (ClientRequestToken,
    // https://docs.aws.amazon.com/amazondynamodb/latest/APIReference/API_TransactWriteItems.html).
    // Nothing relies on an emulator honouring it: launch_once checks a refused claim against
    // the token either way.
    ctx.store.transact(ops, Some(token)).await
}

/// An update of every item of the run, made only while `token` holds the claim.
fn while_claimed(launch: &LaunchRequested, token: &str, update: &str) -> Vec<TxOp> {
    launch
        .collections
        .iter()
        .map(|c| TxOp::Update {
            key: intraday_aws::jobs::job_key(&launch.correlation_id, &c.collection),
            update: update.to_owned(),
            names: HashMap::from([
                ("#claim".to_owned(), ATTR_CLAIM.to_owned()),
                ("#claimed_at".to_owned(), ATTR_CLAIMED_AT.to_owned()),
            ]),
            // `:token` comes with the condition, and an update may use it too.
            values: HashMap::new(),
            condition: Some(Condition {
                expression: "#claim = :token".to_owned(),
                names: HashMap::new(),
                values: HashMap::from([(":token".to_owned(), AttributeValue::S(token.to_owned()))]),
            }),
        })
        .collect()
}

/// Whether `token` still holds the claim on every item. DynamoDB's transaction already
/// made the claim exclusive; this re-check costs one write and keeps a launch single where
/// transactions are not isolated (moto server evaluates two concurrent transactions'
/// conditions before either writes, and the later write wins).
async fn claim_holds(launch: &LaunchRequested, token: &str, ctx: &Ctx) -> Result<bool, AwsError> {
    let ops = while_claimed(
        launch,
        token,
        "SET #claim = :token, #claimed_at = #claimed_at",
    );
    match ctx.store.transact(ops, None).await {
        Ok(()) => Ok(true),
        Err(AwsError::TransactionCancelled { .. }) => Ok(false),
        Err(e) => Err(e),
    }
}

async fn release_claim(launch: &LaunchRequested, token: &str, ctx: &Ctx) {
    let ops = while_claimed(launch, token, "REMOVE #claim, #claimed_at");
    if let Err(e) = ctx.store.transact(ops, None).await {
        tracing::warn!(error = %e, "could not release the launch claim; the next delivery waits for it to go stale");
    }
}

/// The claim was refused: another delivery holds it, or the run moved on. Decide from what
/// the items say now.
async fn settle_contended(launch: &LaunchRequested, ctx: &Ctx) -> Result<Launched, LaunchError> {
    let jobs = run_items(launch, ctx).await?;
    if let Some(cluster) = jobs.iter().find_map(|j| j.emr_cluster_id.clone()) {
        return Ok(Launched::AlreadyRecorded(cluster));
    }
    if let Some(job) = jobs.iter().find(|j| !launchable(j.status)) {
        return Ok(Launched::NotLaunchable(job.status));
    }
    Err(LaunchError::LaunchInProgress(
        launch.correlation_id.to_string(),
    ))
}

/// Every item becomes EMR_LAUNCHED with the cluster id, conditionally, in one transaction.
async fn record(launch: &LaunchRequested, cluster: &str, ctx: &Ctx) -> Result<(), LaunchError> {
    let ops = launch
        .collections
        .iter()
        .map(|c| {
            TxOp::transition(
                &launch.correlation_id,
                &c.collection,
                JobStatus::EmrLaunched,
                &[(ATTR_CLUSTER_ID, Value::S(cluster.to_owned()))],
            )
        })
        .collect();
    match ctx.store.transact(ops, None).await {
        Ok(()) => Ok(()),
        // Recorded by another delivery in between: fine if it is this cluster.
        Err(AwsError::TransactionCancelled { .. }) => {
            let jobs = run_items(launch, ctx).await?;
            if jobs
                .iter()
                .all(|j| j.emr_cluster_id.as_deref() == Some(cluster))
            {
                Ok(())
            } else {
                Err(LaunchError::LaunchInProgress(
                    launch.correlation_id.to_string(),
                ))
            }
        }
        Err(e) => Err(e.into()),
    }
}

/// AWS refused the launch for good: the items become LAMBDA_FAILED (their locks stay until an
/// operator acknowledges) and an alert carries AWS's reason.
pub async fn refuse(
    launch: &LaunchRequested,
    error: &AwsError,
    ctx: &Ctx,
) -> Result<(), LaunchError> {
    for c in &launch.collections {
        ctx.store
            .transition(
                &launch.correlation_id,
                &c.collection,
                JobStatus::LambdaFailed,
                &[],
            )
            .await?;
    }
    let run = &launch.correlation_id;
    let resolve = launch
        .collections
        .iter()
        .map(|c| {
            format!(
                "intradayctl ack {run} --collection {} --reason '<what was fixed>'",
                c.collection
            )
        })
        .collect::<Vec<_>>()
        .join("; ");
    let alert = Alert {
        version: MESSAGE_VERSION,
        correlation_id: run.clone(),
        severity: Severity::Critical,
        notification_type: NotificationType::Error,
        title_text: format!("Intraday could not launch the cluster for run {run}"),
        collections: launch.collections.iter().map(|c| c.collection.clone()).collect(),
        detail: AlertDetail {
            cause: "EMR refused RunJobFlow; the run's collections are LAMBDA_FAILED and stay locked \
                    until acknowledged. Fix the cluster template or its parameters, then acknowledge."
                .to_owned(),
            reason: Some(error.to_string()),
            resolve: Some(resolve),
            ..AlertDetail::default()
        },
    };
    ctx.alerts.publish(&alert).await?;
    Ok(())
}
