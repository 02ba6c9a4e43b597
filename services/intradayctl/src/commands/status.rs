//! `status`: runs, statuses, windows, clusters, watermarks and locks.

use intraday_core::{Collection, CorrelationId, JobRecord};
use serde_json::{Value, json};

use super::{now_ms, parse_since, show_time, show_window};
use crate::CtlError;
use crate::context::Env;
use crate::output::Report;

fn window(job: &JobRecord) -> String {
    match (job.processed_data_start, job.window_end) {
        (Some(start), Some(end)) => show_window(start, end),
        _ => "-".to_owned(),
    }
}

fn job_json(job: &JobRecord) -> Value {
    json!({
        "run": job.correlation_id, "collection": job.collection, "status": job.status,
        "triggered_time_ms": job.triggered_time, "window_start_ms": job.processed_data_start,
        "window_end_ms": job.window_end, "processed_data_end_ms": job.processed_data_end,
        "cluster_id": job.emr_cluster_id, "status_changed_ms": job.status_changed_at, "backfill": job.backfill,
    })
}

pub async fn status(
    env: &Env,
    run: Option<&str>,
    collection: Option<&str>,
    since: Option<&str>,
    limit: usize,
) -> Result<Report, CtlError> {
    let store = env.store().await?;
    let since = since
        .map(|s| parse_since(s, now_ms()))
        .transpose()?
        .unwrap_or(0);
    if let Some(run) = run {
        let run = CorrelationId::new(run)?;
        let jobs = store.run(&run).await?;
        if jobs.is_empty() {
            return Err(CtlError::NotFound(format!(
                "no run `{run}` in the job table; list recent runs with `intradayctl status`"
            )));
        }
        let mut report = Report::new(&[
            "COLLECTION",
            "STATUS",
            "WINDOW",
            "DATA END",
            "CLUSTER",
            "CHANGED",
        ]);
        report.title = Some(format!("Run {run}"));
        for job in &jobs {
            report.rows.push(vec![
                job.collection.name(),
                job.status.to_string(),
                window(job),
                job.processed_data_end.map_or("-".into(), show_time),
                job.emr_cluster_id.clone().unwrap_or_else(|| "-".into()),
                job.status_changed_at.map_or("-".into(), show_time),
            ]);
        }
        report.json = json!({"run": run, "items": jobs.iter().map(job_json).collect::<Vec<_>>()});
        return Ok(report);
    }

    let secret = env.collections().await?;
    let collections: Vec<Collection> = match collection {
        Some(c) => vec![Collection::parse(c)?],
        None => secret.iter().map(|e| e.collection.clone()).collect(),
    };
    let single = collections.len() == 1;
    let mut report = Report::new(&[
        "COLLECTION",
        "RUN",
        "STATUS",
        "WINDOW",
        "CLUSTER",
        "TRIGGERED",
    ]);
    let mut json_collections = Vec::new();
    for c in &collections {
        let per = if single { limit } else { 1 };
        let history: Vec<JobRecord> = store
            .history(c, 25, |page| page.iter().all(|j| j.triggered_time >= since))
            .await?
            .into_iter()
            .filter(|j| j.triggered_time >= since)
            .take(per)
            .collect();
        let watermark = store.next_window_start(c).await?;
        let lock = store.lock_holder(c).await?;
        // The index carries only statuses and bounds; read each item for the rest, so the
        // table and the JSON say the same.
        let mut runs = Vec::with_capacity(history.len());
        for job in &history {
            runs.push(
                store
                    .get(&job.correlation_id, c)
                    .await?
                    .unwrap_or_else(|| job.clone()),
            );
        }
        for full in &runs {
            report.rows.push(vec![
                c.name(),
                full.correlation_id.to_string(),
                full.status.to_string(),
                window(full),
                full.emr_cluster_id.clone().unwrap_or_else(|| "-".into()),
                show_time(full.triggered_time),
            ]);
        }
        // A typo must not look like a new collection ("no runs; starts at 0").
        let listed = secret.get(c).is_some();
        if history.is_empty() && !listed {
            return Err(CtlError::NotFound(format!(
                "`{c}` is not in the collections secret and has no runs; it lists {}",
                secret
                    .iter()
                    .map(|e| e.collection.name())
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
        if !listed {
            report.notes.push(format!(
                "{c} is not in the collections secret any more: no new run extracts it."
            ));
        }
        if history.is_empty() {
            report.rows.push(vec![
                c.name(),
                "-".into(),
                "no runs".into(),
                "-".into(),
                "-".into(),
                "-".into(),
            ]);
        }
        report.notes.push(format!(
            "{c}: next window starts at {}; lock {}",
            show_time(watermark),
            lock.as_ref()
                .map_or("free".to_owned(), |(h, since)| format!(
                    "held by {h} since {}",
                    show_time(*since)
                ))
        ));
        json_collections.push(json!({
            "collection": c, "in_secret": listed, "next_window_start_ms": watermark,
            "lock": lock.map(|(h, since)| json!({"holder": h, "since_ms": since})),
            "runs": runs.iter().map(job_json).collect::<Vec<_>>(),
        }));
    }
    report.json = json!({"collections": json_collections});
    Ok(report)
}
