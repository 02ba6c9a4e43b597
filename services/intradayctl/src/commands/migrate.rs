//! `migrate check`: what the first run after a switch from the original system would do, per
//! collection, and everything that would stop it. It reads the job table, the collections
//! secret and the catalog, and changes nothing.

use intraday_aws::{Catalog, JobStore, TableInfo};
use intraday_core::{Collection, CorrelationId, HistoryItem, JobStatus, LockState};
use serde_json::json;

use super::show_time;
use crate::CtlError;
use crate::context::Env;
use crate::output::Report;

/// A run id no real run has, so `history_blocker` counts every run's items.
const NO_RUN: &str = "migrate-check";

/// What stands in a collection's way, in words and with the command that clears it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Blocker {
    pub what: String,
    pub fix: String,
}

/// Why the collection's next run would not launch, from its lock and its open items; or
/// `None` when it would.
pub fn blocker(c: &Collection, lock: &LockState, open: &[HistoryItem]) -> Option<Blocker> {
    let no_run = CorrelationId::new(NO_RUN).ok()?;
    let state = match lock {
        LockState::Free => intraday_core::history_blocker(open, &no_run),
        held => held.clone(),
    };
    match state {
        LockState::Free | LockState::Ours => None,
        LockState::HeldBy {
            holder,
            status: Some(status),
            ..
        } if status.is_unacknowledged_failure() => Some(Blocker {
            what: format!("run `{holder}` is {status}, not acknowledged"),
            fix: format!("intradayctl ack {holder} --collection {c} --reason '<why>'"),
        }),
        LockState::HeldBy {
            holder,
            status: Some(status),
            ..
        } if status.is_active() => Some(Blocker {
            what: format!("run `{holder}` is {status} and holds the lock"),
            fix: format!("wait for it to end: intradayctl status --run {holder}"),
        }),
        // A lock left by a finished run is taken over by the next run: nothing to do.
        LockState::HeldBy { .. } => None,
        LockState::Unreadable { run, reason } => Some(Blocker {
            what: format!("an item of run `{run}` cannot be read: {reason}"),
            fix: "correct the item's JobStatus in the job table (an acknowledged failure is `_FAILED` or `_LAMBDA_FAILED`)".to_owned(),
        }),
    }
}

/// Items of other runs that are still in progress with no lock of ours: the original's last
/// run, which a new run neither waits for nor notices.
pub fn unlocked_active(open: &[HistoryItem], lock: &LockState) -> Vec<(CorrelationId, JobStatus)> {
    let locked_by = match lock {
        LockState::HeldBy { holder, .. } => Some(holder),
        _ => None,
    };
    open.iter()
        .filter_map(|item| item.as_ref().ok())
        .filter(|job| job.status.is_active() && Some(&job.correlation_id) != locked_by)
        .map(|job| (job.correlation_id.clone(), job.status))
        .collect()
}

/// How the catalog holds the collection's table, and a problem if the first run would
/// change what its readers see.
pub fn table_kind(
    database: &str,
    c: &Collection,
    table: Option<&TableInfo>,
) -> (String, Option<String>) {
    let name = c.hive_table();
    match table {
        None => ("none yet".to_owned(), None),
        Some(t) if t.partition_keys.is_empty() => (
            "the original's (not partitioned)".to_owned(),
            Some(format!(
                "table `{database}.{name}` is the original's, not partitioned by run: the first run \
                 redefines it, and the original's folders are no longer read through it; \
                 deploy with another GlueDatabaseName, or keep the original's output readable \
                 as the README's compatibility section describes"
            )),
        ),
        Some(t) => {
            let serde = t.serde_library.as_deref().unwrap_or_default();
            let format = if serde.contains("parquet") {
                "parquet"
            } else if serde.contains("OpenCSVSerde") {
                "csv-gzip"
            } else {
                "other"
            };
            (format!("partitioned by run ({format})"), None)
        }
    }
}

pub async fn check(env: &Env, database: Option<&str>) -> Result<Report, CtlError> {
    let resources = env.resources().await?;
    let store = env.store().await?;
    let catalog = Catalog::new(env.aws.glue());
    let database = database
        .map(str::to_owned)
        .unwrap_or_else(|| resources.database.clone());
    let secret = &resources.collections_secret;
    let collections = env.collections().await?;

    let mut problems: Vec<String> = Vec::new();
    for index in store.missing_indexes().await? {
        problems.push(format!(
            "the job table `{}` has no index `{index}`, which the services query; add it (the template's JobTable shows its keys and projection)",
            store.table()
        ));
    }
    for refused in collections.refused() {
        problems.push(format!("{refused}; that entry is skipped, the others run"));
    }

    let mut report = Report::new(&[
        "COLLECTION",
        "LAST COMPLETED",
        "DATA END",
        "NEXT WINDOW FROM",
        "BLOCKED BY",
        "TABLE",
    ]);
    report.title = Some(format!(
        "Job table {}, secret {secret}, database {database}",
        store.table()
    ));
    let mut json_collections = Vec::new();
    for entry in collections.iter() {
        let c = &entry.collection;
        let row = check_collection(&store, &catalog, &database, c).await?;
        // The first clause only: the problems below carry the whole reason.
        let summary = row
            .blocker
            .as_ref()
            .map(|b| b.what.split(';').next().unwrap_or_default().to_owned());
        report.rows.push(vec![
            c.name(),
            row.last_completed
                .as_ref()
                .map_or("-".to_owned(), |(run, _)| run.to_string()),
            row.last_completed
                .as_ref()
                .map_or("-".to_owned(), |(_, end)| show_time(*end)),
            show_time(row.next_start),
            summary.clone().unwrap_or_else(|| "-".to_owned()),
            row.table.clone(),
        ]);
        if let Some(b) = &row.blocker {
            problems.push(format!("{}: {}; {}", c.name(), b.what, b.fix));
        }
        for (run, status) in &row.unlocked_active {
            problems.push(format!(
                "{}: run `{run}` is {status} with no Intraday lock (the original's run?); a new run would not wait for it: let it end before the first run",
                c.name()
            ));
        }
        problems.extend(row.table_problem.iter().cloned());
        json_collections.push(json!({
            "collection": c,
            "job_key": c.job_key(),
            "pii": entry.pii,
            "last_completed": row.last_completed.as_ref().map(|(run, end)| json!({"run": run, "processed_data_end_ms": end})),
            "next_window_start_ms": row.next_start,
            "blocked_by": row.blocker.as_ref().map(|b| json!({"summary": summary, "what": b.what, "fix": b.fix})),
            "table": row.table,
        }));
    }
    if problems.is_empty() {
        report
            .notes
            .push("Nothing would stop the first run.".to_owned());
    } else {
        report.notes.push(format!("{} problem(s):", problems.len()));
        report
            .notes
            .extend(problems.iter().map(|p| format!("  - {p}")));
        report.exit_code = 1;
    }
    report.json = json!({
        "job_table": store.table(),
        "collections_secret": secret,
        "database": database,
        "collections": json_collections,
        "problems": problems,
        "ready": problems.is_empty(),
    });
    Ok(report)
}

struct CollectionCheck {
    last_completed: Option<(CorrelationId, u64)>,
    next_start: u64,
    blocker: Option<Blocker>,
    unlocked_active: Vec<(CorrelationId, JobStatus)>,
    table: String,
    table_problem: Option<String>,
}

async fn check_collection(
    store: &JobStore,
    catalog: &Catalog,
    database: &str,
    c: &Collection,
) -> Result<CollectionCheck, CtlError> {
    let history = store
        .history(c, 50, |page| {
            !page
                .iter()
                .any(|j| j.status == JobStatus::EmrCompleted && j.processed_data_end.is_some())
        })
        .await?;
    let last_completed = history
        .iter()
        .find(|j| j.status == JobStatus::EmrCompleted && j.processed_data_end.is_some())
        .and_then(|j| Some((j.correlation_id.clone(), j.processed_data_end?)));
    let next_start = store.next_window_start(c).await?;
    let no_run = CorrelationId::new(NO_RUN)?;
    let lock = store.lock_state(c, &no_run).await?;
    let open = store.open_items(c).await?;
    let table = catalog.get_table(database, &c.hive_table()).await?;
    let (table, table_problem) = table_kind(database, c, table.as_ref());
    Ok(CollectionCheck {
        last_completed,
        next_start,
        blocker: blocker(c, &lock, &open),
        unlocked_active: unlocked_active(&open, &lock),
        table,
        table_problem,
    })
}

/// A collection's folders in the original's output: each `<YYYYMMDD-HHMM>/` that holds a
/// `_SUCCESS` marker (the job that wrote it finished), and those that do not.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LegacyFolders {
    pub complete: Vec<String>,
    pub incomplete: Vec<String>,
}

/// Sorts the keys under a collection folder (`folder_key`, ending in `/`) into run folders.
/// Anything else under it (stray files, other names) is not a run and is left out.
pub fn legacy_folders(folder_key: &str, keys: &[String]) -> LegacyFolders {
    use std::collections::BTreeMap;
    let mut seen: BTreeMap<&str, bool> = BTreeMap::new();
    for key in keys {
        let Some((run, file)) = key
            .strip_prefix(folder_key)
            .and_then(|rest| rest.split_once('/'))
        else {
            continue;
        };
        if !is_run_folder(run) || file.is_empty() {
            continue;
        }
        let done = seen.entry(run).or_default();
        *done |= file == "_SUCCESS";
    }
    let mut folders = LegacyFolders::default();
    for (run, done) in seen {
        if done {
            folders.complete.push(run.to_owned());
        } else {
            folders.incomplete.push(run.to_owned());
        }
    }
    folders
}

/// `YYYYMMDD-HHMM`, as the original named its folders.
fn is_run_folder(name: &str) -> bool {
    let b = name.as_bytes();
    b.len() == 13
        && b[8] == b'-'
        && b.iter()
            .enumerate()
            .all(|(i, c)| i == 8 || c.is_ascii_digit())
}

pub struct LegacyArgs<'a> {
    pub prefix: &'a str,
    pub database: Option<&'a str>,
    pub include_incomplete: bool,
    pub dry_run: bool,
}

/// Registers the original's output as `<db>_<table>_legacy`, one partition per run folder.
/// Safe to run again: a table is brought to the same definition and a partition registered
/// at the same folder counts as done.
pub async fn register_legacy(env: &Env, args: LegacyArgs<'_>) -> Result<Report, CtlError> {
    let prefix = intraday_core::S3Uri::parse(args.prefix)?.as_prefix();
    let resources = env.resources().await?;
    let database = args
        .database
        .map(str::to_owned)
        .unwrap_or_else(|| resources.database.clone());
    intraday_core::DatabaseName::new(&database)?;
    let collections = env.collections().await?;
    let objects = intraday_aws::Objects::new(env.aws.s3());
    let catalog = Catalog::new(env.aws.glue());
    if !args.dry_run {
        catalog.ensure_database(&database).await?;
    }

    let mut report = Report::new(&["COLLECTION", "TABLE", "FOLDERS", "REGISTERED", "SKIPPED"]);
    report.title = Some(format!(
        "The original's output under {prefix}, as tables in {database}{}",
        if args.dry_run {
            " (dry run: nothing written)"
        } else {
            ""
        }
    ));
    let mut json_rows = Vec::new();
    let mut failed = Vec::new();
    for entry in collections.iter() {
        let c = &entry.collection;
        let folder = prefix
            .join(&intraday_table_builder::tables::legacy_folder(c))?
            .as_prefix();
        let keys: Vec<String> = objects
            .list(&folder)
            .await?
            .into_iter()
            .map(|o| o.key)
            .collect();
        let found = legacy_folders(folder.key(), &keys);
        let mut runs = found.complete.clone();
        let mut skipped = found.incomplete.clone();
        if args.include_incomplete {
            runs.append(&mut skipped);
            runs.sort();
        }
        let table = intraday_table_builder::tables::legacy_table_spec(c, &folder);
        let mut registered = 0;
        if !runs.is_empty() && !args.dry_run {
            catalog.upsert_table(&database, &table).await?;
            let partitions = runs
                .iter()
                .map(|run| {
                    Ok(intraday_aws::PartitionSpec {
                        values: vec![run.clone()],
                        location: folder.join(run)?.as_prefix().to_string(),
                    })
                })
                .collect::<Result<Vec<_>, intraday_core::CoreError>>()?;
            let done = catalog
                .add_partitions(&database, &table, &partitions)
                .await?;
            registered = done.created + done.existing;
            failed.extend(done.failed.iter().map(|f| {
                format!(
                    "{database}.{} run={}: {}: {}",
                    table.name,
                    f.values.join("/"),
                    f.code,
                    f.message
                )
            }));
        }
        report.rows.push(vec![
            c.name(),
            if runs.is_empty() {
                "-".to_owned()
            } else {
                format!("{database}.{}", table.name)
            },
            (found.complete.len() + found.incomplete.len()).to_string(),
            registered.to_string(),
            skipped.len().to_string(),
        ]);
        json_rows.push(json!({
            "collection": c,
            "job_key": c.job_key(),
            "folder": folder.to_string(),
            "table": (!runs.is_empty()).then(|| format!("{database}.{}", table.name)),
            "folders": found.complete.len() + found.incomplete.len(),
            "registered": registered,
            "would_register": if args.dry_run { runs.len() } else { 0 },
            "skipped_incomplete": skipped,
        }));
    }
    if json_rows
        .iter()
        .any(|r| !r["skipped_incomplete"].as_array().is_none_or(Vec::is_empty))
    {
        report.notes.push(
            "Folders without _SUCCESS were left out: the original's job that wrote them did not finish. \
             --include-incomplete registers them too."
                .to_owned(),
        );
    }
    if !failed.is_empty() {
        report.notes.push(format!(
            "{} partition(s) were not registered:",
            failed.len()
        ));
        report
            .notes
            .extend(failed.iter().map(|f| format!("  - {f}")));
        report.exit_code = 1;
    }
    report.json = json!({
        "prefix": prefix.to_string(),
        "database": database,
        "dry_run": args.dry_run,
        "collections": json_rows,
        "failed": failed,
    });
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;
    use intraday_core::JobRecord;

    fn c() -> Collection {
        Collection::parse("core:claimant").expect("valid")
    }

    fn job(run: &str, status: JobStatus) -> HistoryItem {
        Ok(JobRecord::new(
            CorrelationId::new(run).expect("id"),
            c(),
            status,
            1,
        ))
    }

    #[test]
    fn names_what_blocks_a_collection_and_the_command_that_clears_it() {
        let open = [job("r-old", JobStatus::EmrFailed)];
        assert_eq!(
            blocker(&c(), &LockState::Free, &open),
            Some(Blocker {
                what: "run `r-old` is EMR_FAILED, not acknowledged".into(),
                fix: "intradayctl ack r-old --collection db.core.claimant --reason '<why>'".into(),
            })
        );
        let open = [Err((
            "r-odd".to_owned(),
            "unknown job status `X`".to_owned(),
        ))];
        assert_eq!(
            blocker(&c(), &LockState::Free, &open).map(|b| b.what),
            Some("an item of run `r-odd` cannot be read: unknown job status `X`".into())
        );
        let held = LockState::HeldBy {
            holder: CorrelationId::new("r-now").expect("id"),
            status: Some(JobStatus::EmrProcessing),
            since_ms: None,
        };
        assert_eq!(
            blocker(&c(), &held, &[]).map(|b| b.fix),
            Some("wait for it to end: intradayctl status --run r-now".into())
        );
        assert_eq!(
            blocker(&c(), &LockState::Free, &[job("a", JobStatus::EmrCompleted)]),
            None
        );
    }

    #[test]
    fn an_active_item_without_our_lock_is_the_originals_last_run() {
        let open = [
            job("orig", JobStatus::EmrProcessing),
            job("ours", JobStatus::EmrLaunched),
        ];
        let lock = LockState::HeldBy {
            holder: CorrelationId::new("ours").expect("id"),
            status: Some(JobStatus::EmrLaunched),
            since_ms: None,
        };
        assert_eq!(
            unlocked_active(&open, &lock),
            vec![(
                CorrelationId::new("orig").expect("id"),
                JobStatus::EmrProcessing
            )]
        );
    }

    #[test]
    fn run_folders_with_a_success_marker_are_complete() {
        let keys: Vec<String> = [
            "intraday/core_claimant/20240101-1030/part-00000.lzo",
            "intraday/core_claimant/20240101-1030/_SUCCESS",
            "intraday/core_claimant/20240101-1130/part-00000.lzo",
            "intraday/core_claimant/notes.txt",
            "intraday/core_claimant/2024-01-01/part-00000.lzo",
            "intraday/core_claimant/20240101-1230/",
        ]
        .map(str::to_owned)
        .to_vec();
        assert_eq!(
            legacy_folders("intraday/core_claimant/", &keys),
            LegacyFolders {
                complete: vec!["20240101-1030".into()],
                incomplete: vec!["20240101-1130".into()],
            }
        );
    }
}
