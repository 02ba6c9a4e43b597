//! `ack`: acknowledge a failed run so its collections run again.

use intraday_aws::AwsError;
use intraday_core::{Collection, CoreError, CorrelationId};
use serde_json::json;

use super::show_time;
use crate::CtlError;
use crate::context::Env;
use crate::output::Report;

/// Acknowledges each named collection of `run` on its own and reports each result: one that
/// cannot be acknowledged (not failed, already acknowledged, not there) never stops the
/// others. Records who (`--by`, else `$USER`) and the AWS identity whose credentials did it.
pub async fn ack(
    env: &Env,
    run: &str,
    collections: &[String],
    reason: &str,
    by: Option<&str>,
) -> Result<Report, CtlError> {
    if reason.trim().is_empty() {
        return Err(CtlError::Invalid(
            "--reason must say why it is safe to go on; it is recorded on the item".into(),
        ));
    }
    let run = CorrelationId::new(run)?;
    let wanted = collections
        .iter()
        .map(|n| Collection::parse(n))
        .collect::<Result<Vec<_>, _>>()?;
    let arn = env.aws.caller_arn().await?;
    let by = by
        .map(str::to_owned)
        .or_else(|| std::env::var("USER").ok().filter(|u| !u.is_empty()))
        .unwrap_or_else(|| arn.clone());
    let store = env.store().await?;
    let mut report = Report::new(&["RUN", "COLLECTION", "RESULT", "DETAIL"]);
    let mut results = Vec::new();
    let (mut failed, mut not_found) = (0, 0);
    for c in &wanted {
        let (result, detail, status) = match store
            .acknowledge(&run, c, &by, Some(&arn), reason)
            .await
        {
            Ok(status) => (
                "acknowledged".to_owned(),
                format!("now {status}, by {by} ({arn})"),
                Some(status),
            ),
            Err(AwsError::Domain(CoreError::NotFailed { status, .. }))
                if status.starts_with('_') =>
            {
                failed += 1;
                let said = store.acknowledgement(&run, c).await?;
                let who = said.map_or_else(
                    || "by hand, with no record of who".to_owned(),
                    |a| {
                        format!(
                            "by {}{} at {}{}",
                            a.by.as_deref().unwrap_or("someone"),
                            a.by_arn.map(|arn| format!(" ({arn})")).unwrap_or_default(),
                            a.at_ms.map_or("an unknown time".to_owned(), show_time),
                            a.reason.map(|r| format!(": {r}")).unwrap_or_default()
                        )
                    },
                );
                (
                    "already acknowledged".to_owned(),
                    format!("{status} {who}"),
                    None,
                )
            }
            Err(AwsError::JobNotFound { .. }) => {
                failed += 1;
                not_found += 1;
                (
                    "not found".to_owned(),
                    format!(
                        "no item for run `{run}` and `{c}`; `intradayctl status --collection {c}` lists its runs"
                    ),
                    None,
                )
            }
            Err(e) => {
                failed += 1;
                ("refused".to_owned(), e.to_string(), None)
            }
        };
        report.rows.push(vec![
            run.to_string(),
            c.name(),
            result.clone(),
            detail.clone(),
        ]);
        results
            .push(json!({"collection": c, "result": result, "detail": detail, "status": status}));
    }
    report.json =
        json!({"run": run, "by": by, "by_arn": arn, "reason": reason, "collections": results});
    if failed == 0 {
        report.notes.push("The collections' locks are released; the next run starts from their last completed watermark.".into());
    } else {
        // Nothing there at all is "not found" (a mistyped run id); anything else is a failure.
        report.exit_code = if not_found == wanted.len() {
            crate::error::exit::NOT_FOUND
        } else {
            crate::error::exit::FAILURE
        };
        report.notes.push(format!(
            "{failed} of {} collection(s) not acknowledged now; see RESULT.",
            wanted.len()
        ));
    }
    Ok(report)
}
