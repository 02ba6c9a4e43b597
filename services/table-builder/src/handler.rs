//! ExtractionCompleted → tables, partitions and views in the Glue catalog, then the run's
//! items EMR_COMPLETED and its locks released, in one transaction.
//!
//! Every step can run again: catalog writes reconcile rather than duplicate, and the
//! transaction is conditional on the items still being in progress. The catalog goes first,
//! so a run is never marked completed (and its window never counted as done) before its data
//! can be queried; a failure in between leaves the run in progress and the next delivery
//! finishes it.

use intraday_aws::jobs::ATTR_DATA_END;
use intraday_aws::{Alerts, AwsError, Catalog, JobStore, TxOp, Value};
use intraday_core::{Collection, JobRecord, JobStatus};
use intraday_events::{
    Alert, AlertDetail, ExtractionCompleted, Inbound, MESSAGE_VERSION, Message as Event,
    NotificationType, Severity,
};
use intraday_runtime::{HandlerError, HandlerFuture, Message, MetricsSink, RunOutcome};

use crate::TableBuilderError;
use crate::tables::{self, CollectionTables};

/// Where a backfill records the largest timestamp it extracted. A backfill never moves the
/// watermark, so it must not write `ProcessedDataEnd`; this keeps what it covered visible.
pub const ATTR_BACKFILL_DATA_END: &str = "BackfillDataEnd";

/// `TransactWriteItems` takes at most 100 actions; completing a collection takes two (its
/// item and its lock).
pub const MAX_TRANSACTION_ACTIONS: usize = 100;

/// The table builder's dependencies.
pub struct Ctx {
    pub store: JobStore,
    pub catalog: Catalog,
    pub alerts: Alerts,
    /// Where each finished collection's run metrics go (stdout in Lambda).
    pub metrics: MetricsSink,
}

/// What one delivery did; tests read it, the handler logs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Completed {
    /// Registered and completed now.
    Now {
        collections: usize,
        partitions: usize,
        locks_released: usize,
    },
    /// Every item was EMR_COMPLETED already: a redelivery. Nothing was written.
    Already,
    /// Another delivery completed the run while this one was registering.
    Meanwhile,
}

pub fn handler(message: Message, ctx: &Ctx) -> HandlerFuture<'_> {
    Box::pin(handle(message, ctx))
}

pub async fn handle(message: Message, ctx: &Ctx) -> Result<(), HandlerError> {
    let inbound = Inbound::parse(&message.body)?;
    let Some(Event::ExtractionCompleted(event)) = inbound.message() else {
        return Err(inbound
            .refuse("table builder", "ExtractionCompleted")
            .into());
    };
    let outcome = complete(event, ctx).await?;
    tracing::info!(
        correlation_id = %event.correlation_id,
        outcome = ?outcome,
        "extraction registered"
    );
    Ok(())
}

/// Registers the run's output and completes it, unless an earlier delivery did.
pub async fn complete(
    event: &ExtractionCompleted,
    ctx: &Ctx,
) -> Result<Completed, TableBuilderError> {
    let run = event.correlation_id.to_string();
    let plan = tables::plan(event)?;
    if plan.len() * 2 > MAX_TRANSACTION_ACTIONS {
        return Err(TableBuilderError::TooManyCollections {
            run,
            collections: plan.len(),
            max_actions: MAX_TRANSACTION_ACTIONS,
        });
    }
    let items = run_items(event, ctx).await?;
    let mut pending: Vec<&JobRecord> = items
        .iter()
        .filter(|j| j.status != JobStatus::EmrCompleted)
        .collect();
    if pending.is_empty() {
        return Ok(Completed::Already);
    }
    let refused = refused_tables(event, &plan, &pending, ctx).await?;
    // An earlier delivery failed these already, for the same reason.
    pending.retain(|j| {
        !(j.status == JobStatus::LambdaFailed && refused.iter().any(|r| r.0 == j.collection))
    });
    if pending.is_empty() {
        return Ok(Completed::Already);
    }
    if let Some(job) = pending
        .iter()
        .find(|j| !JobStatus::EmrCompleted.allowed_from().contains(&j.status))
    {
        return Err(TableBuilderError::NotCompletable {
            run,
            collection: job.collection.name(),
            status: job.status,
        });
    }

    // Said before the write that fails the items: if the write is lost, the next delivery
    // says it again (a duplicate alert), but a failure is never silent.
    if !refused.is_empty() {
        ctx.alerts
            .publish(&refused_alert(event, &refused))
            .await
            .map_err(|source| TableBuilderError::Store {
                run: run.clone(),
                action: "publishing the refused-table alert",
                source: Box::new(source),
            })?;
    }
    let plan: Vec<CollectionTables> = plan
        .into_iter()
        .filter(|t| !refused.iter().any(|r| r.0 == t.collection))
        .collect();
    let partitions = register(event, &plan, ctx).await?;

    let mut ops = Vec::with_capacity(pending.len() * 2);
    let mut locks_released = 0;
    for job in &pending {
        // Its output stays where the extractor wrote it, unregistered; the lock stays too, so
        // the collection waits for an operator as after any failure.
        if refused.iter().any(|r| r.0 == job.collection) {
            ops.push(TxOp::transition(
                &event.correlation_id,
                &job.collection,
                JobStatus::LambdaFailed,
                &[],
            ));
            continue;
        }
        let result = event
            .collections
            .iter()
            .find(|c| c.collection == job.collection);
        let set = match result.and_then(|r| r.largest_timestamp_ms.filter(|_| r.records > 0)) {
            // A backfill says so in its message and on its items; either is enough.
            Some(end) if event.backfill || job.backfill => {
                vec![(ATTR_BACKFILL_DATA_END, Value::N(end))]
            }
            Some(end) => vec![(ATTR_DATA_END, Value::N(end))],
            // No records: nothing recorded, so the previous watermark stands.
            None => Vec::new(),
        };
        ops.push(TxOp::transition(
            &event.correlation_id,
            &job.collection,
            JobStatus::EmrCompleted,
            &set,
        ));
        // The lock is released only by its holder: a lock taken over since (or never taken)
        // belongs to someone else.
        let holder = ctx
            .store
            .lock_holder(&job.collection)
            .await
            .map_err(|source| TableBuilderError::Store {
                run: run.clone(),
                action: "reading a collection lock",
                source: Box::new(source),
            })?;
        if holder.is_some_and(|(holder, _)| holder == event.correlation_id) {
            ops.push(TxOp::release_lock(&job.collection, &event.correlation_id));
            locks_released += 1;
        }
    }
    match ctx.store.transact(ops, None).await {
        Ok(()) => {
            finished_metrics(event, &pending, &refused, ctx.metrics);
            Ok(Completed::Now {
                collections: pending.len(),
                partitions,
                locks_released,
            })
        }
        Err(AwsError::TransactionCancelled { reasons }) => {
            // Completed by a concurrent delivery in between: that is the outcome we wanted.
            let now = run_items(event, ctx).await?;
            if now.iter().all(|j| j.status == JobStatus::EmrCompleted) {
                Ok(Completed::Meanwhile)
            } else {
                Err(TableBuilderError::CompletionConflict {
                    run,
                    reason: AwsError::TransactionCancelled { reasons }.to_string(),
                })
            }
        }
        Err(source) => Err(TableBuilderError::Store {
            run,
            action: "completing the run's items",
            source: Box::new(source),
        }),
    }
}

/// Collections whose existing table cannot take this run's output (see
/// [`tables::refuse_change`]), with the table's name and why.
async fn refused_tables(
    event: &ExtractionCompleted,
    plan: &[CollectionTables],
    pending: &[&JobRecord],
    ctx: &Ctx,
) -> Result<Vec<(Collection, String, String)>, TableBuilderError> {
    let database = event.database.as_str();
    let mut refused = Vec::new();
    for tables in plan
        .iter()
        .filter(|t| pending.iter().any(|j| j.collection == t.collection))
    {
        let name = &tables.table.name;
        let current = ctx
            .catalog
            .get_table(database, name)
            .await
            .map_err(|source| TableBuilderError::Catalog {
                run: event.correlation_id.to_string(),
                action: format!("reading table `{database}.{name}`"),
                source: Box::new(source),
            })?;
        if let Some(why) = current
            .as_ref()
            .and_then(|t| tables::refuse_change(t, &tables.table))
        {
            refused.push((tables.collection.clone(), format!("{database}.{name}"), why));
        }
    }
    Ok(refused)
}

/// One alert for every collection whose table refused the run's output.
pub fn refused_alert(
    event: &ExtractionCompleted,
    refused: &[(Collection, String, String)],
) -> Alert {
    let run = &event.correlation_id;
    let cause = refused
        .iter()
        .map(|(c, table, why)| {
            format!("table `{table}` of `{c}` was left as it is and this run's output for it was not registered: {why}")
        })
        .collect::<Vec<_>>()
        .join("; ");
    let acks = refused
        .iter()
        .map(|(c, ..)| format!("intradayctl ack {run} --collection {c} --reason '<why>'"))
        .collect::<Vec<_>>()
        .join("; ");
    Alert {
        version: MESSAGE_VERSION,
        correlation_id: run.clone(),
        severity: Severity::Critical,
        notification_type: NotificationType::Error,
        title_text: format!(
            "Intraday run {run} could not register {} table(s)",
            refused.len()
        ),
        collections: refused.iter().map(|(c, ..)| c.clone()).collect(),
        detail: AlertDetail {
            cause,
            resolve: Some(format!(
                "write to a database of its own (stack parameter GlueDatabaseName) or set the output format back to the table's; then {acks}; the next run extracts the same window again"
            )),
            ..AlertDetail::default()
        },
    }
}

/// The run's item for each collection the message names, in its order.
async fn run_items(
    event: &ExtractionCompleted,
    ctx: &Ctx,
) -> Result<Vec<JobRecord>, TableBuilderError> {
    let run = event.correlation_id.to_string();
    let all = ctx
        .store
        .run(&event.correlation_id)
        .await
        .map_err(|source| TableBuilderError::Store {
            run: run.clone(),
            action: "reading the run's items",
            source: Box::new(source),
        })?;
    event
        .collections
        .iter()
        .map(|c| {
            all.iter()
                .find(|j| j.collection == c.collection)
                .cloned()
                .ok_or_else(|| TableBuilderError::NoJobItem {
                    run: run.clone(),
                    collection: c.collection.name(),
                })
        })
        .collect()
}

/// The database, then per collection its table, its partition and its views. Returns how
/// many partitions are registered (new or found from an earlier attempt).
async fn register(
    event: &ExtractionCompleted,
    plan: &[CollectionTables],
    ctx: &Ctx,
) -> Result<usize, TableBuilderError> {
    let run = event.correlation_id.to_string();
    let database = event.database.as_str();
    let failed = |action: String| {
        let run = run.clone();
        move |source| TableBuilderError::Catalog {
            run,
            action,
            source: Box::new(source),
        }
    };
    ctx.catalog
        .ensure_database(database)
        .await
        .map_err(failed(format!("creating database `{database}`")))?;
    let mut partitions = 0;
    for tables in plan {
        let collection = &tables.collection;
        let table = &tables.table;
        let upserted = ctx
            .catalog
            .upsert_table(database, table)
            .await
            .map_err(failed(format!(
                "registering table `{database}.{}` of `{collection}`",
                table.name
            )))?;
        tracing::debug!(table = %table.name, ?upserted, "table");
        if let Some(partition) = &tables.partition {
            let report = ctx
                .catalog
                .add_partitions(database, table, std::slice::from_ref(partition))
                .await
                .map_err(failed(format!(
                    "registering partition run={} of `{database}.{}` of `{collection}`",
                    event.run, table.name
                )))?;
            if let Some(first) = report.failed.first() {
                return Err(TableBuilderError::Partitions {
                    run: run.clone(),
                    collection: collection.name(),
                    table: format!("{database}.{}", table.name),
                    count: report.failed.len(),
                    example: format!(
                        "run={}: {}: {}",
                        first.values.join("/"),
                        first.code,
                        first.message
                    ),
                    retryable: report.failed.iter().all(|f| f.retryable),
                });
            }
            partitions += report.created + report.existing;
        }
        for view in &tables.views {
            ctx.catalog
                .upsert_view(database, view)
                .await
                .map_err(failed(format!(
                    "registering view `{database}.{}` of `{collection}`",
                    view.name
                )))?;
        }
    }
    Ok(partitions)
}

/// Once per collection this delivery finished (a redelivery finishes none, so counts once).
fn finished_metrics(
    event: &ExtractionCompleted,
    pending: &[&JobRecord],
    refused: &[(Collection, String, String)],
    metrics: MetricsSink,
) {
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    for job in pending {
        let name = job.collection.name();
        if refused.iter().any(|r| r.0 == job.collection) {
            metrics.run_finished(&name, RunOutcome::Failed, 0, None);
            continue;
        }
        let records = event
            .collections
            .iter()
            .find(|c| c.collection == job.collection)
            .map_or(0, |c| c.records);
        let extraction = job
            .emr_ready_time
            .map(|ready| std::time::Duration::from_millis(now_ms.saturating_sub(ready)));
        metrics.run_finished(&name, RunOutcome::Completed, records, extraction);
    }
}
