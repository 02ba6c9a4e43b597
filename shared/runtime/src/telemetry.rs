//! Logs as JSON lines (tracing), metrics as CloudWatch embedded-metric-format lines.

use std::io::Write;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tracing_subscriber::EnvFilter;

use crate::Disposition;

/// Where metric lines go. In Lambda, stdout reaches CloudWatch Logs, which turns EMF lines
/// into metrics; locally they can go to stderr beside the logs, or nowhere.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricsSink {
    Stdout,
    Stderr,
    Discard,
}

/// Names the service in logs and metrics, and writes its metric lines.
#[derive(Debug, Clone)]
pub struct Telemetry {
    pub service: &'static str,
    pub sink: MetricsSink,
}

impl Telemetry {
    pub fn new(service: &'static str, sink: MetricsSink) -> Self {
        Self { service, sink }
    }

    /// One EMF line per handled message: a count and a latency, by service and outcome.
    pub fn record(&self, disposition: &Disposition, elapsed: Duration) {
        if self.sink == MetricsSink::Discard {
            return;
        }
        let outcome = match disposition {
            Disposition::Done => "ok",
            Disposition::Retry { error, .. } if error.is_retryable() => "retry",
            Disposition::Retry { .. } => "refused",
        };
        self.sink
            .write(&emf_line(self.service, outcome, elapsed, now_ms()));
    }
}

/// How a collection's run ended, as the dashboard counts runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunOutcome {
    Completed,
    Failed,
}

impl MetricsSink {
    /// One EMF line per collection a run finished: `Runs` by `Outcome`, and for a completed
    /// one `RecordsExtracted` and `ExtractionTime` (from the cluster being ready to now) by
    /// `Collection`. The dashboard in infra/template.yaml graphs exactly these.
    pub fn run_finished(
        self,
        collection: &str,
        outcome: RunOutcome,
        records: u64,
        extraction: Option<Duration>,
    ) {
        if self == MetricsSink::Discard {
            return;
        }
        self.write(&run_line(
            collection,
            outcome,
            records,
            extraction,
            now_ms(),
        ));
    }

    fn write(self, line: &str) {
        // A metric line that cannot be written is not worth failing a message for.
        let _ = match self {
            MetricsSink::Stdout => writeln!(std::io::stdout().lock(), "{line}"),
            MetricsSink::Stderr => writeln!(std::io::stderr().lock(), "{line}"),
            MetricsSink::Discard => Ok(()),
        };
    }
}

/// Two directives in one document: each metric under the one dimension the dashboard's
/// SEARCH expressions name, so no graph misses it for an extra dimension.
fn run_line(
    collection: &str,
    outcome: RunOutcome,
    records: u64,
    extraction: Option<Duration>,
    timestamp_ms: u64,
) -> String {
    let outcome = match outcome {
        RunOutcome::Completed => "completed",
        RunOutcome::Failed => "failed",
    };
    let mut line = serde_json::json!({
        "_aws": {
            "Timestamp": timestamp_ms,
            "CloudWatchMetrics": [
                {"Namespace": "Intraday", "Dimensions": [["Outcome"]],
                 "Metrics": [{"Name": "Runs", "Unit": "Count"}]},
            ]
        },
        "Outcome": outcome,
        "Collection": collection,
        "Runs": 1,
    });
    if outcome == "completed" {
        if let Some(directives) = line["_aws"]["CloudWatchMetrics"].as_array_mut() {
            directives.push(serde_json::json!({
                "Namespace": "Intraday", "Dimensions": [["Collection"]],
                "Metrics": [{"Name": "RecordsExtracted", "Unit": "Count"},
                            {"Name": "ExtractionTime", "Unit": "Seconds"}]}));
        }
        line["RecordsExtracted"] = records.into();
        line["ExtractionTime"] = extraction.map_or(0.0, |d| d.as_secs_f64()).into();
    }
    line.to_string()
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// The EMF document: https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/CloudWatch_Embedded_Metric_Format_Specification.html
fn emf_line(service: &str, outcome: &str, elapsed: Duration, timestamp_ms: u64) -> String {
    serde_json::json!({
        "_aws": {
            "Timestamp": timestamp_ms,
            "CloudWatchMetrics": [{
                "Namespace": "Intraday",
                "Dimensions": [["Service", "Outcome"]],
                "Metrics": [
                    {"Name": "Messages", "Unit": "Count"},
                    {"Name": "HandlerLatency", "Unit": "Milliseconds"}
                ]
            }]
        },
        "Service": service,
        "Outcome": outcome,
        "Messages": 1,
        "HandlerLatency": elapsed.as_secs_f64() * 1000.0,
    })
    .to_string()
}

/// JSON log lines on stderr, filtered by `RUST_LOG` (default `info`). Safe to call twice:
/// the second call changes nothing.
pub fn init_logging() {
    init_logging_at("info");
}

/// JSON log lines on stderr at `default` level unless `RUST_LOG` says otherwise.
pub fn init_logging_at(default: &str) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .json()
        .with_env_filter(filter)
        .with_current_span(true)
        .with_span_list(false)
        .with_target(false)
        .with_writer(std::io::stderr)
        .try_init();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metric_lines_are_embedded_metric_format() {
        let line = emf_line(
            "monitor",
            "ok",
            Duration::from_millis(12),
            1_700_000_000_000,
        );
        let v: serde_json::Value = serde_json::from_str(&line).expect("json");
        assert_eq!(v["_aws"]["Timestamp"], 1_700_000_000_000u64);
        let directive = &v["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(directive["Namespace"], "Intraday");
        // Every dimension and metric the directive names is a top-level member.
        for dim in directive["Dimensions"][0].as_array().expect("dims") {
            assert!(v.get(dim.as_str().expect("name")).is_some(), "{dim}");
        }
        for metric in directive["Metrics"].as_array().expect("metrics") {
            assert!(
                v[metric["Name"].as_str().expect("name")].is_number(),
                "{metric}"
            );
        }
        assert_eq!(v["HandlerLatency"], 12.0);
    }

    #[test]
    fn run_lines_name_what_the_dashboard_graphs() {
        let completed: serde_json::Value = serde_json::from_str(&run_line(
            "db.core.claimant",
            RunOutcome::Completed,
            150,
            Some(Duration::from_secs(90)),
            1,
        ))
        .expect("json");
        let directives = completed["_aws"]["CloudWatchMetrics"]
            .as_array()
            .expect("directives");
        assert_eq!(directives.len(), 2);
        assert_eq!(
            directives[0]["Dimensions"],
            serde_json::json!([["Outcome"]])
        );
        assert_eq!(
            directives[1]["Dimensions"],
            serde_json::json!([["Collection"]])
        );
        assert_eq!(completed["Outcome"], "completed");
        assert_eq!(completed["RecordsExtracted"], 150);
        assert_eq!(completed["ExtractionTime"], 90.0);

        let failed: serde_json::Value = serde_json::from_str(&run_line(
            "db.core.claimant",
            RunOutcome::Failed,
            0,
            None,
            1,
        ))
        .expect("json");
        assert_eq!(
            failed["_aws"]["CloudWatchMetrics"].as_array().map(Vec::len),
            Some(1)
        );
        assert_eq!(failed["Outcome"], "failed");
        assert!(failed.get("RecordsExtracted").is_none());
    }
}
