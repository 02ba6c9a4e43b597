//! RunRequested (or a scheduled event) → per collection: launch, wait or defer.
//!
//! The decision is `intraday_core::plan_run`; this module reads what it needs (the secret,
//! the run's items, the collections' locks, the watermarks) and carries the decision out:
//! the run's items and locks in one transaction, then LaunchRequested; or WAITING and the
//! same request re-queued with an SQS delay; or DEFERRED and an alert.

use intraday_aws::jobs::{
    ATTR_DATA_START, ATTR_DATABASE, ATTR_FORMAT, ATTR_OUTPUT, ATTR_STATUS, ATTR_WINDOW_END,
    job_key, job_to_item, now_ms,
};
use intraday_aws::{Alerts, AttributeValue, AwsError, Condition, JobStore, Queues, Secrets, TxOp};
use intraday_core::{
    Collection, CollectionEntry, Collections, CoreError, CorrelationId, DatabaseName, DeferReason,
    JobRecord, JobStatus, LockState, OutputFormat, S3Uri, WaitPolicy, Window, history_blocker,
    plan_run, run_folder,
};
use intraday_events::{
    Alert, AlertDetail, AwsEventDetail, CollectionWindow, Inbound, LaunchRequested,
    MESSAGE_VERSION, Message as Event, NotificationType, RunRequested, Severity, Trigger,
};
use intraday_runtime::{HandlerError, HandlerFuture, Message};
use std::collections::HashMap;
use tokio::sync::OnceCell;

use crate::ScheduleError;

/// The scheduler's dependencies.
pub struct Ctx {
    pub store: JobStore,
    pub secrets: Secrets,
    pub queues: Queues,
    pub alerts: Alerts,
    pub collections_secret: String,
    pub scheduler_queue_url: String,
    pub launcher_queue_url: String,
    pub output: S3Uri,
    pub database: DatabaseName,
    /// The one database a backfill may register its tables in (stack parameter
    /// BackfillDatabaseName); its output must be under `s3://<output bucket>/backfill/`.
    pub backfill_database: DatabaseName,
    pub format: OutputFormat,
    pub policy: WaitPolicy,
    /// The collections, read once per process: the secret changes rarely and a cold start
    /// picks up a change.
    pub collections: OnceCell<Collections>,
}

/// What one attempt decided, per collection.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Scheduled {
    pub launched: Vec<CollectionWindow>,
    pub waiting: Vec<Collection>,
    pub deferred: Vec<Collection>,
    /// Collections this run had already launched or settled (a redelivery).
    pub settled: Vec<Collection>,
}

pub fn handler(message: Message, ctx: &Ctx) -> HandlerFuture<'_> {
    Box::pin(handle(message, ctx))
}

pub async fn handle(message: Message, ctx: &Ctx) -> Result<(), HandlerError> {
    const HANDLES: &str = "RunRequested and scheduled events";
    let inbound = Inbound::parse(&message.body)?;
    let request = match &inbound {
        Inbound::Message(m) => match &**m {
            Event::RunRequested(request) => request.clone(),
            _ => return Err(inbound.refuse("scheduler", HANDLES).into()),
        },
        Inbound::Aws(event) => match event.detail {
            AwsEventDetail::Scheduled => from_schedule(event.time_ms(), now_ms())?,
            _ => return Err(inbound.refuse("scheduler", HANDLES).into()),
        },
    };
    let outcome = schedule(&request, ctx).await?;
    tracing::info!(
        correlation_id = %request.correlation_id,
        attempt = request.attempt,
        launched = outcome.launched.len(),
        waiting = outcome.waiting.len(),
        deferred = outcome.deferred.len(),
        settled = outcome.settled.len(),
        "run scheduled"
    );
    Ok(())
}

/// A scheduled event becomes a run named after its minute, so a duplicate delivery of the
/// same event is the same run. Its window ends at the event's time; its wait limit counts
/// from when the scheduler first saw it, so an event replayed from a dead-letter queue
/// still gets its full wait.
pub fn from_schedule(time_ms: u64, now_ms: u64) -> Result<RunRequested, ScheduleError> {
    Ok(RunRequested {
        version: MESSAGE_VERSION,
        correlation_id: CorrelationId::new(format!("scheduled-{}", run_folder(time_ms)?))?,
        trigger: Trigger::Schedule,
        trigger_time_ms: time_ms,
        collections: None,
        backfill: None,
        attempt: 1,
        first_requested_ms: now_ms.max(time_ms),
    })
}

impl Ctx {
    async fn collections(&self) -> Result<&Collections, ScheduleError> {
        self.collections
            .get_or_try_init(|| async {
                self.secrets
                    .collections(&self.collections_secret)
                    .await
                    .map_err(|source| ScheduleError::Secret {
                        secret: self.collections_secret.clone(),
                        source,
                    })
            })
            .await
    }
}

fn launchable(status: JobStatus) -> bool {
    matches!(status, JobStatus::LambdaTriggered | JobStatus::Waiting)
}

/// Why a backfill may not run: it must register its tables in the stack's backfill database
/// and write under `s3://<output bucket>/backfill/`. Without this check anyone who can send
/// to the queue could have decrypted records written wherever the cluster can write, and
/// tables registered in any database. `intradayctl backfill` applies the same rule before
/// sending, in its own words.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BackfillRefusal {
    /// The database named is not the stack's backfill database.
    Database {
        given: String,
        allowed: DatabaseName,
    },
    /// The output prefix is not under `allowed` (`s3://<output bucket>/backfill/`).
    Prefix { given: S3Uri, allowed: S3Uri },
}

impl std::fmt::Display for BackfillRefusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Database { given, allowed } => write!(
                f,
                "backfill database `{given}` is not this stack's backfill database `{allowed}` (stack parameter BackfillDatabaseName)"
            ),
            Self::Prefix { given, allowed } => write!(
                f,
                "backfill output `{given}` is not under {allowed}, where this stack's backfills write"
            ),
        }
    }
}

/// Checks a backfill's `database` and `output_prefix` against the stack's backfill
/// database and output bucket; `None` when it may run.
pub fn backfill_refusal(
    database: &str,
    output_prefix: &S3Uri,
    allowed_database: &DatabaseName,
    output_bucket: &str,
) -> Result<Option<BackfillRefusal>, CoreError> {
    if database != allowed_database.as_str() {
        return Ok(Some(BackfillRefusal::Database {
            given: database.to_owned(),
            allowed: allowed_database.clone(),
        }));
    }
    let given = output_prefix.as_prefix();
    let allowed = S3Uri::new(output_bucket, "backfill/")?;
    if given.bucket() != allowed.bucket() || !given.key().starts_with(allowed.key()) {
        return Ok(Some(BackfillRefusal::Prefix { given, allowed }));
    }
    Ok(None)
}

/// One attempt of a run.
pub async fn schedule(request: &RunRequested, ctx: &Ctx) -> Result<Scheduled, ScheduleError> {
    if let Some(b) = &request.backfill
        && let Some(refusal) = backfill_refusal(
            b.database.as_str(),
            &b.output_prefix,
            &ctx.backfill_database,
            ctx.output.bucket(),
        )?
    {
        return Err(ScheduleError::BackfillRefused(refusal));
    }
    let collections = ctx.collections().await?;
    // The original read each entry on its own: a bad one stops only itself. Said once per
    // run, on its first attempt, not on every wait.
    if !collections.refused().is_empty() && request.attempt == 1 {
        ctx.alerts
            .publish(&refused_entries_alert(request, collections.refused()))
            .await?;
    }
    let entries: Vec<&CollectionEntry> = match &request.collections {
        Some(names) => collections.select(names)?,
        None => collections.iter().collect(),
    };
    if entries.is_empty() {
        return Err(match collections.refused() {
            [] => ScheduleError::NoCollections,
            refused => ScheduleError::NoUsableCollections(
                refused
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join("; "),
            ),
        });
    }
    let run = &request.correlation_id;
    let existing: HashMap<Collection, JobRecord> = ctx
        .store
        .run(run)
        .await?
        .into_iter()
        .map(|j| (j.collection.clone(), j))
        .collect();

    let mut outcome = Scheduled::default();
    let mut locks = Vec::new();
    for entry in &entries {
        let c = &entry.collection;
        match existing.get(c) {
            Some(job) if !launchable(job.status) => outcome.settled.push(c.clone()),
            _ => {
                let lock = match ctx.store.lock_state(c, run).await? {
                    LockState::Free => history_blocker(&ctx.store.open_items(c).await?, run),
                    held => held,
                };
                locks.push((c.clone(), lock));
            }
        }
    }
    if locks.is_empty() {
        return Ok(outcome);
    }

    let now = now_ms();
    let mut plan = plan_run(&locks, request.first_requested_ms, now, ctx.policy);

    // Fix each launching collection's window; one with nothing to extract is deferred.
    let mut windows = Vec::new();
    for c in std::mem::take(&mut plan.launch) {
        let (start, end) = match &request.backfill {
            Some(b) => (b.window.start_ms(), b.window.end_ms()),
            None => (
                ctx.store.next_window_start(&c).await?,
                request.trigger_time_ms,
            ),
        };
        match Window::new(start, end) {
            Ok(window) => windows.push((c, window)),
            Err(_) => plan.defer.push((
                c,
                DeferReason::NothingToExtract {
                    start_ms: start,
                    end_ms: end,
                },
            )),
        }
    }

    for (c, _) in &plan.defer {
        settle_item(request, c, existing.get(c), JobStatus::Deferred, ctx).await?;
        outcome.deferred.push(c.clone());
    }
    if !plan.defer.is_empty() {
        ctx.alerts
            .publish(&deferral_alert(request, &plan.defer))
            .await?;
    }

    if let Some(delay) = plan.retry_in {
        for c in &plan.wait {
            settle_item(request, c, existing.get(c), JobStatus::Waiting, ctx).await?;
        }
        let next = RunRequested {
            attempt: request.attempt + 1,
            ..request.clone()
        };
        ctx.queues
            .send(
                &ctx.scheduler_queue_url,
                &Event::RunRequested(next).to_body(),
                Some(delay),
            )
            .await?;
        outcome.waiting = plan.wait;
        return Ok(outcome);
    }

    if windows.is_empty() {
        return Ok(outcome);
    }
    let take_over: HashMap<&Collection, &CorrelationId> =
        plan.take_over.iter().map(|(c, h)| (c, h)).collect();
    let (output, database) = match &request.backfill {
        Some(b) => (b.output_prefix.as_prefix(), b.database.clone()),
        None => (ctx.output.clone(), ctx.database.clone()),
    };
    let facts = LaunchFacts {
        output: output.to_string(),
        database: database.to_string(),
        format: ctx.format.as_str().to_owned(),
    };
    let mut ops = Vec::new();
    for (c, window) in &windows {
        ops.push(match existing.get(c) {
            None => {
                let mut job = new_item(request, c);
                job.processed_data_start = Some(window.start_ms());
                job.window_end = Some(window.end_ms());
                job.output = Some(facts.output.clone());
                job.database = Some(facts.database.clone());
                job.format = Some(facts.format.clone());
                TxOp::Put {
                    item: job_to_item(&job),
                    condition: Some(Condition {
                        expression: "attribute_not_exists(CorrelationId)".to_owned(),
                        ..Condition::default()
                    }),
                }
            }
            Some(_) => fix_window(run, c, *window, &facts),
        });
        ops.push(TxOp::take_lock(c, run, take_over.get(c).copied()));
    }
    match ctx.store.transact(ops, None).await {
        Ok(()) => {}
        Err(AwsError::TransactionCancelled { .. }) => return Err(ScheduleError::LockRace),
        Err(e) => return Err(e.into()),
    }

    let pii: HashMap<&Collection, bool> = entries.iter().map(|e| (&e.collection, e.pii)).collect();
    let launch = LaunchRequested {
        version: MESSAGE_VERSION,
        correlation_id: run.clone(),
        trigger_time_ms: request.trigger_time_ms,
        collections: windows
            .into_iter()
            .map(|(collection, window)| CollectionWindow {
                pii: pii.get(&collection).copied().unwrap_or(true),
                collection,
                window,
            })
            .collect(),
        output,
        database,
        format: ctx.format,
        backfill: request.backfill.is_some(),
    };
    ctx.queues
        .send(
            &ctx.launcher_queue_url,
            &Event::LaunchRequested(launch.clone()).to_body(),
            None,
        )
        .await?;
    outcome.launched = launch.collections;
    Ok(outcome)
}

fn new_item(request: &RunRequested, c: &Collection) -> JobRecord {
    let mut job = JobRecord::new(
        request.correlation_id.clone(),
        c.clone(),
        JobStatus::LambdaTriggered,
        request.trigger_time_ms,
    );
    job.status_changed_at = Some(now_ms());
    job.backfill = request.backfill.is_some();
    job
}

/// Where a run writes, recorded on its items at launch so the monitor finds the manifest
/// and the table builder the catalog, whatever happens to the messages.
struct LaunchFacts {
    output: String,
    database: String,
    format: String,
}

/// Sets the window and the launch facts on an item that is still waiting to launch.
fn fix_window(run: &CorrelationId, c: &Collection, window: Window, facts: &LaunchFacts) -> TxOp {
    let s = |v: &str| AttributeValue::S(v.to_owned());
    TxOp::Update {
        key: job_key(run, c),
        update: "SET #start = :start, #end = :end, #output = :output, #db = :db, #format = :format"
            .to_owned(),
        names: HashMap::from([
            ("#start".to_owned(), ATTR_DATA_START.to_owned()),
            ("#end".to_owned(), ATTR_WINDOW_END.to_owned()),
            ("#output".to_owned(), ATTR_OUTPUT.to_owned()),
            ("#db".to_owned(), ATTR_DATABASE.to_owned()),
            ("#format".to_owned(), ATTR_FORMAT.to_owned()),
        ]),
        values: HashMap::from([
            (
                ":start".to_owned(),
                AttributeValue::N(window.start_ms().to_string()),
            ),
            (
                ":end".to_owned(),
                AttributeValue::N(window.end_ms().to_string()),
            ),
            (":output".to_owned(), s(&facts.output)),
            (":db".to_owned(), s(&facts.database)),
            (":format".to_owned(), s(&facts.format)),
        ]),
        condition: Some(Condition {
            expression: "#status IN (:triggered, :waiting)".to_owned(),
            names: HashMap::from([("#status".to_owned(), ATTR_STATUS.to_owned())]),
            values: HashMap::from([
                (
                    ":triggered".to_owned(),
                    s(JobStatus::LambdaTriggered.as_str()),
                ),
                (":waiting".to_owned(), s(JobStatus::Waiting.as_str())),
            ]),
        }),
    }
}

/// Writes the item as LAMBDA_TRIGGERED if it is new, then moves it to `to` (WAITING or
/// DEFERRED); a repeated delivery changes nothing.
async fn settle_item(
    request: &RunRequested,
    c: &Collection,
    existing: Option<&JobRecord>,
    to: JobStatus,
    ctx: &Ctx,
) -> Result<(), ScheduleError> {
    if existing.is_none() {
        ctx.store.create(&new_item(request, c)).await?;
    }
    ctx.store
        .transition(&request.correlation_id, c, to, &[])
        .await?;
    Ok(())
}

fn utc(ms: u64) -> String {
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| format!("{ms} ms"))
}

/// One alert naming every entry of the collections secret the run could not use, and why.
pub fn refused_entries_alert(request: &RunRequested, refused: &[CoreError]) -> Alert {
    Alert {
        version: MESSAGE_VERSION,
        correlation_id: request.correlation_id.clone(),
        severity: Severity::High,
        notification_type: NotificationType::Warning,
        title_text: format!(
            "Intraday run {} skipped {} collections secret entr{}",
            request.correlation_id,
            refused.len(),
            if refused.len() == 1 { "y" } else { "ies" }
        ),
        collections: Vec::new(),
        detail: AlertDetail {
            cause: refused
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("; "),
            resolve: Some(
                "correct the entries in the collections secret (each needs string fields `db` and `table`, and `pii` \"true\" or \"false\"); `intradayctl migrate check` lists them".to_owned(),
            ),
            ..AlertDetail::default()
        },
    }
}

/// One alert for every collection of the run deferred in this attempt, each with its reason
/// and the command that resolves it.
pub fn deferral_alert(request: &RunRequested, deferred: &[(Collection, DeferReason)]) -> Alert {
    let run = &request.correlation_id;
    let mut causes = Vec::new();
    let mut resolves = Vec::new();
    let mut failed = false;
    for (c, reason) in deferred {
        match reason {
            DeferReason::UnacknowledgedFailure { failed_run, status, failed_at_ms } => {
                failed = true;
                let when = failed_at_ms.map_or_else(|| "at an unknown time".to_owned(), |ms| format!("at {}", utc(ms)));
                let command = format!("intradayctl ack {failed_run} --collection {c} --reason '<why>'");
                causes.push(format!(
                    "collection `{c}` has an unacknowledged failed run `{failed_run}` ({status} {when}); acknowledge it with `{command}`"
                ));
                resolves.push(command);
            }
            DeferReason::WaitedTooLong { holder, waited } => {
                causes.push(format!(
                    "collection `{c}` was still held by run `{holder}` after {} minutes; the next scheduled run picks it up",
                    waited.as_secs() / 60
                ));
                resolves.push(format!("intradayctl status --run {holder}"));
            }
            DeferReason::NothingToExtract { start_ms, end_ms } => causes.push(format!(
                "collection `{c}` has nothing to extract: its watermark {start_ms} is not before the trigger time {end_ms}"
            )),
            DeferReason::UnreadableItem { run: other, reason } => {
                failed = true;
                causes.push(format!(
                    "collection `{c}` has an item of run `{other}` that cannot be read ({reason}); fix or acknowledge that item in the job table"
                ));
                resolves.push("intradayctl migrate check".to_owned());
            }
        }
    }
    Alert {
        version: MESSAGE_VERSION,
        correlation_id: run.clone(),
        severity: if failed {
            Severity::Critical
        } else {
            Severity::High
        },
        notification_type: if failed {
            NotificationType::Error
        } else {
            NotificationType::Warning
        },
        title_text: format!(
            "Intraday run {run} deferred {} collection{}",
            deferred.len(),
            if deferred.len() == 1 { "" } else { "s" }
        ),
        collections: deferred.iter().map(|(c, _)| c.clone()).collect(),
        detail: AlertDetail {
            cause: causes.join("; "),
            resolve: (!resolves.is_empty()).then(|| resolves.join("; ")),
            ..AlertDetail::default()
        },
    }
}

#[cfg(test)]
mod backfill_tests {
    use super::*;
    use intraday_events::Backfill;

    fn backfill(database: &str, prefix: &str) -> Backfill {
        Backfill {
            window: Window::new(10, 20).expect("window"),
            database: DatabaseName::new(database).expect("database"),
            output_prefix: S3Uri::parse(prefix).expect("uri"),
        }
    }

    #[test]
    fn a_backfill_writes_only_to_the_stacks_backfill_database_and_prefix() {
        let allowed = DatabaseName::new("intraday_backfill").expect("db");
        let output = S3Uri::parse("s3://out-bucket/data/").expect("uri");
        let refusal = |d: &str, p: &str| {
            let b = backfill(d, p);
            backfill_refusal(
                b.database.as_str(),
                &b.output_prefix,
                &allowed,
                output.bucket(),
            )
            .expect("bucket")
            .map(|r| r.to_string())
        };
        assert_eq!(
            refusal("intraday_backfill", "s3://out-bucket/backfill/run-1/"),
            None
        );
        assert_eq!(
            refusal("intraday_backfill", "s3://out-bucket/backfill"),
            None
        );
        assert!(
            refusal("intraday", "s3://out-bucket/backfill/r/")
                .is_some_and(|r| r.contains("`intraday` is not this stack's backfill database"))
        );
        for elsewhere in [
            "s3://out-bucket/data/",
            "s3://out-bucket/backfilled/",
            "s3://attacker-bucket/backfill/",
        ] {
            assert!(
                refusal("intraday_backfill", elsewhere)
                    .is_some_and(|r| r.contains("is not under s3://out-bucket/backfill/")),
                "{elsewhere}"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_scheduled_event_is_named_after_its_minute() {
        let request = from_schedule(1_710_153_000_000, 1_710_153_004_000).expect("run");
        assert_eq!(request.correlation_id.as_str(), "scheduled-20240311-1030");
        assert_eq!(request.trigger_time_ms, 1_710_153_000_000);
        assert_eq!(request.first_requested_ms, 1_710_153_004_000);
        assert_eq!(request.attempt, 1);
    }

    #[test]
    fn a_deferral_alert_names_the_failed_run_when_and_the_command() {
        let request = from_schedule(1_710_153_000_000, 1_710_153_000_000).expect("run");
        let c = Collection::parse("db.core.claimant").expect("valid");
        let alert = deferral_alert(
            &request,
            &[(
                c,
                DeferReason::UnacknowledgedFailure {
                    failed_run: CorrelationId::new("scheduled-20240311-0930").expect("id"),
                    status: JobStatus::EmrFailed,
                    failed_at_ms: Some(1_710_149_460_000),
                },
            )],
        );
        assert_eq!(alert.severity, Severity::Critical);
        assert_eq!(
            alert.detail.cause,
            "collection `db.core.claimant` has an unacknowledged failed run `scheduled-20240311-0930` \
             (EMR_FAILED at 2024-03-11T09:31:00Z); acknowledge it with \
             `intradayctl ack scheduled-20240311-0930 --collection db.core.claimant --reason '<why>'`"
        );
        assert_eq!(
            alert.detail.resolve.as_deref(),
            Some(
                "intradayctl ack scheduled-20240311-0930 --collection db.core.claimant --reason '<why>'"
            )
        );
    }
}
