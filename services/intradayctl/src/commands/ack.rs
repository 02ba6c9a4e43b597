//! `ack`: acknowledge a failed run so its collections run again.

use intraday_core::{Collection, CorrelationId};
use serde_json::json;

use crate::CtlError;
use crate::context::Env;
use crate::output::Report;

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
    let by = by
        .map(str::to_owned)
        .or_else(|| std::env::var("USER").ok())
        .unwrap_or_else(|| "unknown".to_owned());
    let store = env.store().await?;
    let mut report = Report::new(&["RUN", "COLLECTION", "STATUS", "BY"]);
    let mut acknowledged = Vec::new();
    for name in collections {
        let c = Collection::parse(name)?;
        let status = store.acknowledge(&run, &c, &by, reason).await?;
        report.rows.push(vec![
            run.to_string(),
            c.name(),
            status.to_string(),
            by.clone(),
        ]);
        acknowledged.push(json!({"collection": c, "status": status}));
    }
    report.json = json!({"run": run, "by": by, "reason": reason, "acknowledged": acknowledged});
    report.notes.push("The collections' locks are released; the next run starts from their last completed watermark.".into());
    Ok(report)
}
