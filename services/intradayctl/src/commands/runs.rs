//! `trigger` and `backfill`: ask the scheduler for a run.

use intraday_core::{Collection, CorrelationId, DatabaseName, S3Uri, Window, run_folder};
use intraday_events::{Backfill, MESSAGE_VERSION, Message, RunRequested, Trigger};
use intraday_scheduler::BackfillRefusal;
use serde_json::json;

use super::{now_ms, parse_time, show_time};
use crate::CtlError;
use crate::context::Env;
use crate::output::Report;

/// The named collections, each checked against the collections secret before anything is
/// sent: the scheduler would refuse an unknown one later, after the command said "Requested".
async fn known_collections(env: &Env, names: &[String]) -> Result<Vec<Collection>, CtlError> {
    let wanted = names
        .iter()
        .map(|n| Collection::parse(n).map_err(CtlError::from))
        .collect::<Result<Vec<_>, _>>()?;
    let secret = env.collections().await?;
    secret.select(&wanted)?;
    Ok(wanted)
}

/// Where scheduled runs write: the scheduler's `s3://<output bucket>/data/`.
pub const LIVE_PREFIX: &str = "data/";

/// Refuses a backfill that would write where scheduled runs write (their database or their
/// output prefix) or extract a window that has not happened yet, unless `force`.
pub fn check_backfill(
    database: &str,
    prefix: &S3Uri,
    live_database: &str,
    live_prefix: &S3Uri,
    window: Window,
    now: u64,
    force: bool,
) -> Result<(), CtlError> {
    if force {
        return Ok(());
    }
    let refuse = |why: String| {
        Err(CtlError::Invalid(format!(
            "{why}; nothing was sent (--force sends it anyway)"
        )))
    };
    if database == live_database {
        return refuse(format!(
            "--database {database} is the database scheduled runs write; a backfill writes to one of its own (default intraday_backfill)"
        ));
    }
    let live = live_prefix.as_prefix();
    let target = prefix.as_prefix();
    if target.bucket() == live.bucket()
        && (target.key().starts_with(live.key()) || live.key().starts_with(target.key()))
    {
        return refuse(format!(
            "--prefix {target} overlaps {live}, where scheduled runs write; leave --prefix out for s3://{}/backfill/<run>/",
            live.bucket()
        ));
    }
    if window.end_ms() > now {
        return refuse(format!(
            "--end {} is in the future: records written after now would be missed, and a backfill never runs again",
            show_time(window.end_ms())
        ));
    }
    Ok(())
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
            Some(known_collections(env, names).await?)
        },
        backfill: None,
        attempt: 1,
        first_requested_ms: now,
    };
    send(env, &request).await?;
    let mut report = Report::new(&["RUN", "TRIGGER TIME", "COLLECTIONS"]);
    // No list means every collection the secret lists when the scheduler takes the run.
    let which = request.collections.as_ref().map_or("all".to_owned(), |cs| {
        cs.iter()
            .map(Collection::name)
            .collect::<Vec<_>>()
            .join(",")
    });
    report.rows.push(vec![
        request.correlation_id.to_string(),
        show_time(now),
        which,
    ]);
    report.json = json!({"run": request.correlation_id, "trigger_time_ms": now, "collections": request.collections, "all_collections": request.collections.is_none()});
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
    pub database: Option<&'a str>,
    pub prefix: Option<&'a str>,
    pub dry_run: bool,
    pub force: bool,
}

pub async fn backfill(env: &Env, args: BackfillArgs<'_>) -> Result<Report, CtlError> {
    let now = now_ms();
    let (start, end) = (
        parse_time("--start", args.start)?,
        parse_time("--end", args.end)?,
    );
    if start >= end {
        return Err(CtlError::Invalid(format!(
            "--start {} is not before --end {}: a window starts at --start and ends, exclusive, at --end",
            super::show_time(start),
            super::show_time(end)
        )));
    }
    let window = Window::new(start, end)?;
    let run = run_id("backfill", now)?;
    let resources = env.resources().await?;
    let output_prefix = match args.prefix {
        Some(prefix) => S3Uri::parse(prefix)?.as_prefix(),
        None => S3Uri::new(&resources.output_bucket, &format!("backfill/{run}/"))?,
    };
    let database = args.database.unwrap_or(&resources.backfill_database);
    // What the scheduler would refuse whatever --force says (the stack allows one database
    // and one prefix), said before anything is sent.
    let allowed_database = DatabaseName::new(&resources.backfill_database)?;
    match intraday_scheduler::backfill_refusal(
        database,
        &output_prefix,
        &allowed_database,
        &resources.output_bucket,
    )? {
        None => {}
        Some(BackfillRefusal::Database { given, allowed }) => {
            return Err(CtlError::Invalid(format!(
                "--database {given} is not this stack's backfill database `{allowed}` (stack parameter BackfillDatabaseName); the scheduler would refuse it, so nothing was sent"
            )));
        }
        Some(BackfillRefusal::Prefix { given, allowed }) => {
            return Err(CtlError::Invalid(format!(
                "--prefix {given} is not under {allowed}, where this stack's backfills write; the scheduler would refuse it, so nothing was sent"
            )));
        }
    }
    check_backfill(
        database,
        &output_prefix,
        &resources.database,
        &S3Uri::new(&resources.output_bucket, LIVE_PREFIX)?,
        window,
        now,
        args.force,
    )?;
    let collections = known_collections(env, args.collections).await?;
    let request = RunRequested {
        version: MESSAGE_VERSION,
        correlation_id: run.clone(),
        trigger: Trigger::Manual,
        trigger_time_ms: now,
        collections: Some(collections),
        backfill: Some(Backfill {
            window,
            database: DatabaseName::new(database)?,
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
            super::show_window(window.start_ms(), window.end_ms()),
            database.to_owned(),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_backfill_never_writes_where_scheduled_runs_write_nor_into_the_future() {
        let live = S3Uri::parse("s3://out-bucket/data/").expect("uri");
        let window = Window::new(1_000, 2_000).expect("window");
        let check = |db: &str, prefix: &str, window: Window, force: bool| {
            check_backfill(
                db,
                &S3Uri::parse(prefix).expect("uri"),
                "intraday",
                &live,
                window,
                5_000,
                force,
            )
            .map_err(|e| e.to_string())
        };
        assert_eq!(
            check(
                "intraday_backfill",
                "s3://out-bucket/backfill/r/",
                window,
                false
            ),
            Ok(())
        );
        assert_eq!(
            check("intraday_backfill", "s3://other/data/", window, false),
            Ok(())
        );
        let refused = [
            (
                check("intraday", "s3://out-bucket/backfill/r/", window, false),
                "--database intraday is the database scheduled runs write",
            ),
            (
                check("x", "s3://out-bucket/data/core_claimant/", window, false),
                "--prefix s3://out-bucket/data/core_claimant/ overlaps s3://out-bucket/data/",
            ),
            (
                check("x", "s3://out-bucket/", window, false),
                "--prefix s3://out-bucket/ overlaps",
            ),
            (
                check(
                    "x",
                    "s3://out-bucket/b/",
                    Window::new(1_000, 9_000).expect("w"),
                    false,
                ),
                "--end 1970-01-01T00:00:09.000Z is in the future",
            ),
        ];
        for (got, want) in refused {
            let err = got.expect_err(want);
            assert!(err.starts_with(want), "{err}");
            assert!(
                err.ends_with("nothing was sent (--force sends it anyway)"),
                "{err}"
            );
        }
        assert_eq!(
            check("intraday", "s3://out-bucket/data/", window, true),
            Ok(())
        );
    }
}
