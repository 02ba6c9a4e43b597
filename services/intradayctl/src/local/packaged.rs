//! `local demo --lambda-dir`: the services as shipped. Each `<service>.zip` is uploaded,
//! deployed by the template as a function, and its `bootstrap` run as Lambda runs it, with
//! the environment the template gave the function (read back with
//! `GetFunctionConfiguration`) and an SQS event source in front of it. The stack is deployed
//! with `ProcessQueues=false`: moto would otherwise try to invoke the functions itself.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use intraday_aws::{Aws, Functions, Queues};
use intraday_testkit::lambda::{self, Batch, Function, FunctionConfig, SqsSource};
use serde_json::{Value, json};
use tokio::sync::watch;

use crate::CtlError;

/// The services, their zip's name and the stack outputs naming their queues.
pub const SERVICES: [(&str, &str, &str); 5] = [
    ("scheduler", "SchedulerQueueUrl", "SchedulerDlqUrl"),
    ("launcher", "LauncherQueueUrl", "LauncherDlqUrl"),
    ("monitor", "MonitorQueueUrl", "MonitorDlqUrl"),
    ("table-builder", "TablesQueueUrl", "TablesDlqUrl"),
    ("reaper", "ReaperQueueUrl", "ReaperDlqUrl"),
];

/// Where the zips go in the code bucket (the template's default `CodeKeyPrefix`).
pub const CODE_PREFIX: &str = "lambda/";

/// Checks the directory holds every zip before anything is deployed.
pub fn zips(dir: &Path) -> Result<Vec<(&'static str, PathBuf)>, CtlError> {
    SERVICES
        .iter()
        .map(|(service, _, _)| {
            let zip = dir.join(format!("{service}.zip"));
            if zip.is_file() {
                Ok((*service, zip))
            } else {
                Err(CtlError::Other(format!(
                    "{} is missing: --lambda-dir takes the directory ci/package.sh writes (dist/lambda)",
                    zip.display()
                )))
            }
        })
        .collect()
}

/// Creates the code bucket and uploads the zips under [`CODE_PREFIX`].
pub async fn upload(aws: &Aws, bucket: &str, region: &str, dir: &Path) -> Result<(), CtlError> {
    super::create_bucket(aws, bucket, region, "the code bucket").await?;
    for (service, zip) in zips(dir)? {
        let bytes =
            std::fs::read(&zip).map_err(|e| CtlError::Other(format!("{}: {e}", zip.display())))?;
        aws.s3()
            .put_object()
            .bucket(bucket)
            .key(format!("{CODE_PREFIX}{service}.zip"))
            .body(bytes.into())
            .send()
            .await
            .map_err(|e| CtlError::Other(format!("uploading {}: {e}", zip.display())))?;
    }
    Ok(())
}

/// The smallest valid zip (an empty archive: its end-of-central-directory record alone).
const EMPTY_ZIP: [u8; 22] = [
    0x50, 0x4b, 0x05, 0x06, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
];

/// Creates the code bucket with an empty zip per function: for functions that must exist
/// (their roles come with them) but that nothing invokes.
pub async fn upload_unrun(aws: &Aws, bucket: &str, region: &str) -> Result<(), CtlError> {
    super::create_bucket(aws, bucket, region, "the code bucket").await?;
    for (service, _, _) in SERVICES {
        aws.s3()
            .put_object()
            .bucket(bucket)
            .key(format!("{CODE_PREFIX}{service}.zip"))
            .body(EMPTY_ZIP.to_vec().into())
            .send()
            .await
            .map_err(|e| CtlError::Other(format!("uploading {service}.zip: {e}")))?;
    }
    Ok(())
}

/// One running function with its queue in front.
struct Running {
    service: &'static str,
    architecture: String,
    function: Function,
    source: SqsSource,
    dlq_url: String,
    malformed: Option<String>,
}

pub struct Packaged {
    running: Vec<Running>,
    queues: Queues,
}

impl Packaged {
    /// Starts every function's `bootstrap` with its deployed configuration.
    pub async fn start(
        aws: &Aws,
        prefix: &str,
        dir: &Path,
        endpoint: &str,
        region: &str,
        out: &dyn Fn(&str) -> Result<String, CtlError>,
    ) -> Result<Self, CtlError> {
        let functions = Functions::new(aws.lambda());
        let queues = Queues::new(aws.sqs());
        let mut running = Vec::new();
        for ((service, queue_output, dlq_output), (_, zip)) in SERVICES.iter().zip(zips(dir)?) {
            let info = functions
                .configuration(&format!("{prefix}-{service}"))
                .await?;
            let queue_url = out(queue_output)?;
            let function = Function::start(
                &zip,
                FunctionConfig::from(&info),
                region,
                &lambda::emulator_env(endpoint),
            )
            .await
            .map_err(CtlError::Other)?;
            let queue_arn = queues
                .attributes(&queue_url)
                .await?
                .remove("QueueArn")
                .unwrap_or_default();
            running.push(Running {
                service,
                architecture: info.architectures.join(","),
                function,
                source: SqsSource {
                    sqs: aws.sqs(),
                    queue_url,
                    queue_arn,
                    region: region.to_owned(),
                    batches: Arc::new(Mutex::new(Vec::new())),
                },
                dlq_url: out(dlq_output)?,
                malformed: None,
            });
        }
        Ok(Self { running, queues })
    }

    /// Puts one message that is not JSON on every service's queue; each must come back as a
    /// batch item failure and end in its dead-letter queue, while the good ones flow on.
    pub async fn send_malformed(&mut self) -> Result<(), CtlError> {
        for r in &mut self.running {
            let body = format!("not JSON: a malformed message for the {}", r.service);
            let id = self.queues.send(&r.source.queue_url, &body, None).await?;
            r.malformed = Some(id);
        }
        Ok(())
    }

    /// Feeds every function from its queue until `stop`.
    pub async fn run(&self, stop: watch::Receiver<bool>) {
        let [a, b, c, d, e] = &self.running[..] else {
            return;
        };
        tokio::join!(
            feed(a, stop.clone()),
            feed(b, stop.clone()),
            feed(c, stop.clone()),
            feed(d, stop.clone()),
            feed(e, stop),
        );
    }

    /// Waits for every malformed message to reach its dead-letter queue and checks that each
    /// was answered as a batch item failure; returns one JSON line per service.
    pub async fn verify(&self, timeout: Duration) -> Result<Vec<Value>, CtlError> {
        let deadline = Instant::now() + timeout;
        let mut report = Vec::new();
        for r in &self.running {
            let id = r.malformed.clone().unwrap_or_default();
            let batches: Vec<Batch> = r
                .source
                .batches
                .lock()
                .map(|b| b.clone())
                .unwrap_or_default();
            let returned = batches.iter().any(|b| b.failed.contains(&id));
            let handled = batches
                .iter()
                .flat_map(|b| b.message_ids.iter().filter(|m| !b.failed.contains(m)))
                .count();
            let failed_whole = batches.iter().filter(|b| b.outcome.is_err()).count();
            let mut depth = 0;
            while Instant::now() < deadline {
                depth = self
                    .queues
                    .attributes(&r.dlq_url)
                    .await?
                    .get("ApproximateNumberOfMessages")
                    .and_then(|n| n.parse::<u64>().ok())
                    .unwrap_or(0);
                if depth >= 1 {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(300)).await;
            }
            if !returned || depth != 1 || failed_whole > 0 {
                return Err(CtlError::Other(format!(
                    "{}: the malformed message {id} {} and its dead-letter queue holds {depth} message(s), expected 1; {failed_whole} batch(es) failed as a whole",
                    r.service,
                    if returned {
                        "came back as a batch item failure"
                    } else {
                        "never came back as a batch item failure"
                    }
                )));
            }
            report.push(json!({
                "service": r.service,
                "architecture": r.architecture,
                "batches": batches.len(),
                "messages_handled": handled,
                "malformed_message_id": id,
                "returned_as_batch_item_failure": returned,
                "dead_letter_depth": depth,
            }));
        }
        Ok(report)
    }
}

/// One function's event source: poll, invoke, settle, until `stop`.
async fn feed(r: &Running, mut stop: watch::Receiver<bool>) {
    loop {
        if *stop.borrow() {
            return;
        }
        tokio::select! {
            _ = stop.changed() => return,
            polled = r.source.poll_once(&r.function, Duration::from_secs(1)) => {
                if let Err(e) = polled {
                    eprintln!("  {}: {e}", r.service);
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
            }
        }
    }
}
