//! `trigger` and `backfill`: ask the scheduler for a run.

use intraday_core::{Collection, CorrelationId, DatabaseName, S3Uri, Window, run_folder};
use intraday_events::{Backfill, MESSAGE_VERSION, Message, RunRequested, Trigger};
use serde_json::json;

use super::{now_ms, parse_time, show_time};
use crate::CtlError;
use crate::context::Env;
use crate::output::Report;

fn collections(names: &[String]) -> Result<Vec<Collection>, CtlError> {
    names
        .iter()
        .map(|n| Collection::parse(n).map_err(CtlError::from))
        .collect()
}

/// A fresh run id: `<kind>-<YYYYMMDD-HHMM>-<4 hex>`.
fn run_id(kind: &str, now: u64) -> Result<CorrelationId, CtlError> {
    let suffix = &uuid::Uuid::new_v4().simple().to_string()[..4];
    Ok(CorrelationId::new(format!(
        "{kind}-{}-{suffix}",
        run_folder(now)?
    ))?)
}

async fn send(env: &Env, request: &RunRequested) -> Result<String, CtlError> {
    let (url, _) = env.resources().await?.queue("scheduler")?;
    Ok(env
        .queues()
        .send(url, &Message::RunRequested(request.clone()).to_body(), None)
        .await?)
}

pub async fn trigger(env: &Env, names: &[String]) -> Result<Report, CtlError> {
    let now = now_ms();
    let request = RunRequested {
        version: MESSAGE_VERSION,
        correlation_id: run_id("manual", now)?,
        trigger: Trigger::Manual,
        trigger_time_ms: now,
        collections: if names.is_empty() {
            None
        } else {
            Some(collections(names)?)
        },
        backfill: None,
        attempt: 1,
        first_requested_ms: now,
    };
    send(env, &request).await?;
    let mut report = Report::new(&["RUN", "TRIGGER TIME", "COLLECTIONS"]);
    let which = if names.is_empty() {
        "all".to_owned()
    } else {
        names.join(",")
    };
    report.rows.push(vec![
        request.correlation_id.to_string(),
        show_time(now),
        which,
    ]);
    report.json = json!({"run": request.correlation_id, "trigger_time_ms": now, "collections": request.collections});
    report.notes.push(format!(
        "Follow it with: intradayctl status --run {}",
        request.correlation_id
    ));
    Ok(report)
}

pub struct BackfillArgs<'a> {
    pub collections: &'a [String],
    pub start: &'a str,
    pub end: &'a str,
    pub database: &'a str,
    pub prefix: Option<&'a str>,
    pub dry_run: bool,
}

pub async fn backfill(env: &Env, args: BackfillArgs<'_>) -> Result<Report, CtlError> {
    let now = now_ms();
    let window = Window::new(
        parse_time("--start", args.start)?,
        parse_time("--end", args.end)?,
    )?;
    let run = run_id("backfill", now)?;
    let output_prefix = match args.prefix {
        Some(prefix) => S3Uri::parse(prefix)?.as_prefix(),
        None => S3Uri::new(
            &env.resources().await?.output_bucket,
            &format!("backfill/{run}/"),
        )?,
    };
    let request = RunRequested {
        version: MESSAGE_VERSION,
        correlation_id: run.clone(),
        trigger: Trigger::Manual,
        trigger_time_ms: now,
        collections: Some(collections(args.collections)?),
        backfill: Some(Backfill {
            window,
            database: DatabaseName::new(args.database)?,
            output_prefix: output_prefix.clone(),
        }),
        attempt: 1,
        first_requested_ms: now,
    };
    if !args.dry_run {
        send(env, &request).await?;
    }
    let mut report = Report::new(&["RUN", "COLLECTION", "WINDOW", "DATABASE", "OUTPUT"]);
    for c in request.collections.iter().flatten() {
        report.rows.push(vec![
            run.to_string(),
            c.name(),
            format!(
                "[{}, {})",
                show_time(window.start_ms()),
                show_time(window.end_ms())
            ),
            args.database.to_owned(),
            output_prefix
                .join(&format!("{}/", c.hive_table()))?
                .to_string(),
        ]);
    }
    report.json = json!({"dry_run": args.dry_run, "request": Message::RunRequested(request)});
    report.notes.push(if args.dry_run {
        "Dry run: nothing was sent. The backfill takes the collections' locks like any run and never moves a watermark.".to_owned()
    } else {
        format!("Requested. Follow it with: intradayctl status --run {run}")
    });
    Ok(report)
}
