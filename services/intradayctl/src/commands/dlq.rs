//! `dlq list | peek | redrive`.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use intraday_aws::Queues;
use serde_json::json;

use crate::CtlError;
use crate::context::{Env, QUEUES};
use crate::output::Report;

pub async fn list(env: &Env) -> Result<Report, CtlError> {
    let resources = env.resources().await?;
    let queues = env.queues();
    let mut report = Report::new(&["QUEUE", "DEAD LETTERS", "IN FLIGHT", "DLQ URL"]);
    let mut rows = Vec::new();
    for (service, _) in QUEUES {
        let (_, dlq) = resources.queue(service)?;
        let attributes = queues.attributes(dlq).await?;
        let count = |name: &str| attributes.get(name).cloned().unwrap_or_else(|| "0".into());
        report.rows.push(vec![
            service.to_owned(),
            count("ApproximateNumberOfMessages"),
            count("ApproximateNumberOfMessagesNotVisible"),
            dlq.clone(),
        ]);
        rows.push(json!({"queue": service, "dlq_url": dlq, "messages": count("ApproximateNumberOfMessages").parse::<u64>().unwrap_or(0)}));
    }
    report.json = json!({"dead_letter_queues": rows});
    Ok(report)
}

/// Shows messages without consuming them: each is received and released at once, so its
/// receive count grows by one but it stays where it is.
pub async fn peek(env: &Env, queue: &str, count: usize) -> Result<Report, CtlError> {
    let (_, dlq) = env.resources().await?.queue(queue)?.clone();
    let queues = env.queues();
    let mut seen = Vec::new();
    let mut report = Report::new(&["MESSAGE ID", "RECEIVES", "BODY"]);
    while seen.len() < count {
        let got = queues
            .receive(
                &dlq,
                (count - seen.len()).min(10),
                Duration::from_secs(1),
                Some(Duration::from_secs(30)),
            )
            .await?;
        if got.is_empty() {
            break;
        }
        for m in got {
            let body: String = m.body.chars().take(120).collect();
            report.rows.push(vec![
                m.message_id.clone(),
                m.receive_count.to_string(),
                body,
            ]);
            seen.push(json!({"message_id": m.message_id, "receive_count": m.receive_count, "body": m.body, "attributes": m.attributes}));
            queues
                .change_visibility(&dlq, &m.receipt_handle, Duration::ZERO)
                .await?;
        }
    }
    report.json = json!({"queue": queue, "messages": seen});
    if seen.is_empty() {
        report
            .notes
            .push(format!("The {queue} dead-letter queue is empty."));
    }
    Ok(report)
}

/// What a redrive did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Moved {
    pub moved: usize,
    pub via_move_task: Option<String>,
}

/// Moves messages from `dlq` back to `url` one at a time: receive, send, and delete from the
/// dead-letter queue only after the send succeeded, so nothing is lost. An interruption
/// (Ctrl-C sets `stop`) is honoured between messages, never between a send and its delete,
/// so nothing is duplicated either.
pub async fn move_messages(
    queues: &Queues,
    dlq: &str,
    url: &str,
    max: Option<usize>,
    stop: &AtomicBool,
) -> Result<usize, CtlError> {
    let mut moved = 0;
    let mut empty_polls = 0;
    while max.is_none_or(|m| moved < m) && !stop.load(Ordering::SeqCst) {
        let want = max.map_or(10, |m| (m - moved).min(10));
        let got = queues
            .receive(
                dlq,
                want,
                Duration::from_secs(1),
                Some(Duration::from_secs(120)),
            )
            .await?;
        if got.is_empty() {
            // Long polling can miss messages on a busy queue; two empty polls mean empty.
            empty_polls += 1;
            if empty_polls >= 2 {
                break;
            }
            continue;
        }
        empty_polls = 0;
        for m in got {
            if stop.load(Ordering::SeqCst) || max.is_some_and(|max| moved >= max) {
                // Not moved: release it for the next redrive.
                queues
                    .change_visibility(dlq, &m.receipt_handle, Duration::ZERO)
                    .await?;
                continue;
            }
            queues.send(url, &m.body, None).await?;
            queues.delete(dlq, &m.receipt_handle).await?;
            moved += 1;
        }
    }
    Ok(moved)
}

pub async fn redrive(
    env: &Env,
    queue: &str,
    max: Option<usize>,
    dry_run: bool,
    stop: &AtomicBool,
) -> Result<Report, CtlError> {
    let (url, dlq) = env.resources().await?.queue(queue)?.clone();
    let queues = env.queues();
    let waiting: usize = queues
        .attributes(&dlq)
        .await?
        .get("ApproximateNumberOfMessages")
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    let mut report = Report::new(&["QUEUE", "WAITING", "MOVED", "HOW"]);
    if dry_run {
        let would = max.map_or(waiting, |m| m.min(waiting));
        report.rows.push(vec![
            queue.to_owned(),
            waiting.to_string(),
            format!("0 (would move {would})"),
            "dry run".into(),
        ]);
        report.json =
            json!({"queue": queue, "waiting": waiting, "would_move": would, "dry_run": true});
        return Ok(report);
    }
    // SQS's own redrive where the endpoint has it and every message should move; an emulator
    // (an endpoint override) or a bounded redrive moves them here.
    if max.is_none() && !env.aws.has_custom_endpoint() {
        let arn = |u: &str| {
            let queues = queues.clone();
            let u = u.to_owned();
            async move {
                queues
                    .attributes(&u)
                    .await
                    .map(|a| a.get("QueueArn").cloned().unwrap_or_default())
            }
        };
        if let Ok(handle) = queues
            .start_move_task(&arn(&dlq).await?, &arn(&url).await?)
            .await
        {
            report.rows.push(vec![
                queue.to_owned(),
                waiting.to_string(),
                format!("~{waiting}"),
                "SQS message move task".into(),
            ]);
            report.json = json!({"queue": queue, "waiting": waiting, "move_task": handle});
            report.notes.push(
                "SQS moves the messages in the background; `intradayctl dlq list` shows progress."
                    .into(),
            );
            return Ok(report);
        }
    }
    let moved = move_messages(&queues, &dlq, &url, max, stop).await?;
    report.rows.push(vec![
        queue.to_owned(),
        waiting.to_string(),
        moved.to_string(),
        "receive, send, delete".into(),
    ]);
    report.json = json!({"queue": queue, "waiting": waiting, "moved": moved});
    if stop.load(Ordering::SeqCst) {
        report.notes.push("Interrupted: every message is either moved or still in the dead-letter queue; run the command again to finish.".into());
    }
    Ok(report)
}
