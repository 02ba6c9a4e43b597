//! `dlq list | peek | redrive`.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use intraday_aws::Queues;
use serde_json::json;

use crate::CtlError;
use crate::context::{Env, QUEUES, RULE_DLQS};
use crate::output::Report;

/// Every dead-letter queue: the services' and the rules' (events a rule could not deliver).
pub async fn list(env: &Env) -> Result<Report, CtlError> {
    let resources = env.resources().await?;
    let queues = env.queues();
    let mut report = Report::new(&["QUEUE", "FEEDS", "DEAD LETTERS", "IN FLIGHT", "DLQ URL"]);
    let mut rows = Vec::new();
    let services = QUEUES.iter().map(|(service, _)| (*service, *service));
    let rules = RULE_DLQS
        .iter()
        .filter(|(rule, ..)| resources.rule_dlqs.contains_key(*rule))
        .map(|(rule, _, feeds)| (*rule, *feeds));
    for (name, feeds) in services.chain(rules) {
        let (_, dlq) = resources.queue(name)?;
        let attributes = queues.attributes(dlq).await?;
        let count = |attr: &str| -> u64 {
            attributes
                .get(attr)
                .and_then(|n| n.parse().ok())
                .unwrap_or(0)
        };
        let (waiting, in_flight) = (
            count("ApproximateNumberOfMessages"),
            count("ApproximateNumberOfMessagesNotVisible"),
        );
        report.rows.push(vec![
            name.to_owned(),
            feeds.to_owned(),
            waiting.to_string(),
            in_flight.to_string(),
            dlq.clone(),
        ]);
        rows.push(json!({"queue": name, "feeds": feeds, "dlq_url": dlq, "messages": waiting, "in_flight": in_flight}));
    }
    if rows.iter().any(|r| r["messages"] != 0) {
        report.notes.push(
            "See why with `intradayctl dlq peek QUEUE`; once fixed, `intradayctl dlq redrive QUEUE` sends them back to the queue they feed."
                .to_owned(),
        );
    }
    report.json = json!({"dead_letter_queues": rows});
    Ok(report)
}

/// How long a peeked message stays hidden while the peek goes on: long enough to read a
/// full queue page by page, so no message is read twice; every one is released at the end.
const PEEK_HIDE: Duration = Duration::from_secs(60);

/// A body on one line for the table: control characters (line breaks, tabs) as spaces,
/// cut at `width` characters with an ellipsis. JSON output keeps the body whole.
pub fn one_line(body: &str, width: usize) -> String {
    // A line break and the indentation after it read as one space.
    let flat = body.split_whitespace().collect::<Vec<_>>().join(" ");
    if flat.chars().count() <= width {
        flat
    } else {
        let cut: String = flat.chars().take(width.saturating_sub(1)).collect();
        format!("{cut}…")
    }
}

/// Shows up to `count` messages without consuming them. Each is read once and kept hidden
/// while the peek goes on, so it is never shown twice and its receive count grows by exactly
/// one; all are released together at the end, also when the peek fails half-way.
pub async fn peek(env: &Env, queue: &str, count: usize) -> Result<Report, CtlError> {
    let (_, dlq) = env.resources().await?.queue(queue)?.clone();
    let queues = env.queues();
    let mut seen: Vec<intraday_aws::Received> = Vec::new();
    let mut empty_polls = 0;
    let read = async {
        while seen.len() < count && empty_polls < 2 {
            let got = queues
                .receive(
                    &dlq,
                    (count - seen.len()).min(10),
                    Duration::from_secs(1),
                    Some(PEEK_HIDE),
                )
                .await?;
            // A short poll can come back empty while messages wait: two in a row mean empty.
            if got.is_empty() {
                empty_polls += 1;
                continue;
            }
            empty_polls = 0;
            for m in got {
                if !seen.iter().any(|s| s.message_id == m.message_id) {
                    seen.push(m);
                }
            }
        }
        Ok::<(), CtlError>(())
    }
    .await;
    let mut released = Ok(());
    for m in &seen {
        if let Err(e) = queues
            .change_visibility(&dlq, &m.receipt_handle, Duration::ZERO)
            .await
        {
            released = Err(e);
        }
    }
    read?;
    released.map_err(|e| {
        CtlError::Other(format!(
            "could not release every peeked message ({e}); they become visible again by themselves within {} s",
            PEEK_HIDE.as_secs()
        ))
    })?;

    // Oldest first, as they failed (SQS returns them in no particular order); a stable sort
    // keeps the order they came in for those sent in the same millisecond.
    seen.sort_by_key(|m| m.sent_ms);
    let mut report = Report::new(&["MESSAGE ID", "RECEIVES", "SENT", "BODY"]);
    for m in &seen {
        report.rows.push(vec![
            m.message_id.clone(),
            m.receive_count.to_string(),
            m.sent_ms.map_or("-".into(), super::show_time),
            one_line(&m.body, 100),
        ]);
    }
    report.json = json!({
        "queue": queue,
        "dlq_url": dlq,
        "messages": seen.iter().map(|m| json!({
            "message_id": m.message_id,
            "receive_count": m.receive_count,
            "sent_ms": m.sent_ms,
            "body": m.body,
            "attributes": m.attributes,
        })).collect::<Vec<_>>(),
    });
    report.notes.push(match seen.len() {
        0 => format!("The {queue} dead-letter queue is empty."),
        1 => "1 message; left where it was.".to_owned(),
        n => format!("{n} messages; left where they were."),
    });
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
        let how = "dry run";
        report.rows.push(vec![
            queue.to_owned(),
            waiting.to_string(),
            "0".into(),
            how.into(),
        ]);
        report.json = json!({"queue": queue, "waiting": waiting, "moved": 0, "would_move": would, "how": how, "dry_run": true});
        report.notes.push(format!(
            "Dry run: would move {would} message(s) back to the {queue} queue; nothing moved."
        ));
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
            // The task moves them in the background: how many have moved is not known yet.
            let how = "SQS message move task";
            report.rows.push(vec![
                queue.to_owned(),
                waiting.to_string(),
                "-".into(),
                how.into(),
            ]);
            report.json = json!({"queue": queue, "waiting": waiting, "how": how, "move_task": handle, "dry_run": false});
            report.notes.push(
                "SQS moves the messages in the background; `intradayctl dlq list` shows progress."
                    .into(),
            );
            return Ok(report);
        }
    }
    let moved = move_messages(&queues, &dlq, &url, max, stop).await?;
    let how = "receive, send, delete";
    report.rows.push(vec![
        queue.to_owned(),
        waiting.to_string(),
        moved.to_string(),
        how.into(),
    ]);
    report.json =
        json!({"queue": queue, "waiting": waiting, "moved": moved, "how": how, "dry_run": false});
    if stop.load(Ordering::SeqCst) {
        report.notes.push("Interrupted: every message is either moved or still in the dead-letter queue; run the command again to finish.".into());
    }
    Ok(report)
}
