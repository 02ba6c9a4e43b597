//! Runs a packaged `bootstrap` as Lambda runs it, for tests of the shipped zips and for
//! `intradayctl local demo --lambda-dir`.
//!
//! [`RuntimeApi`] is a stand-in for the Lambda Runtime API on loopback: the four endpoints a
//! custom runtime calls (<https://docs.aws.amazon.com/lambda/latest/dg/runtimes-api.html>):
//! `GET /2018-06-01/runtime/invocation/next`, `POST …/invocation/{id}/response`,
//! `POST …/invocation/{id}/error` and `POST /2018-06-01/runtime/init/error`.
//! [`Function`] starts the `bootstrap` with the function's environment, the variables Lambda
//! reserves, and `AWS_LAMBDA_RUNTIME_API` pointing at the stand-in.
//! [`SqsSource`] does what an SQS event source mapping with `ReportBatchItemFailures` does:
//! receive a batch, hand it over as an SQS event, delete the messages the answer does not
//! list in `batchItemFailures`, and leave the listed ones for their next delivery.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_sdk_sqs::types::{DeleteMessageBatchRequestEntry, MessageSystemAttributeName};
use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::{Method, Request, Response, StatusCode};
use serde_json::{Value, json};
use tokio::sync::{Notify, oneshot};
use tokio::task::JoinHandle;

use crate::http::{answer, lock, serve_loopback};

const PREFIX: &str = "/2018-06-01/runtime";

/// The services the stack deploys as functions, each from `<service>.zip`.
pub const SERVICES: [&str; 5] = [
    "scheduler",
    "launcher",
    "monitor",
    "table-builder",
    "reaper",
];

/// How an invocation ended, as the function reported it.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// `…/response`: the function's answer.
    Response(Value),
    /// `…/error`: the function failed; Lambda would retry the whole batch.
    Error { error_type: String, message: String },
}

#[derive(Default)]
struct State {
    queued: Mutex<VecDeque<(String, Value)>>,
    arrived: Notify,
    waiting: Mutex<HashMap<String, oneshot::Sender<Outcome>>>,
    init_errors: Mutex<Vec<Value>>,
}

/// The Runtime API stand-in: one per function, as Lambda gives each execution environment
/// its own.
pub struct RuntimeApi {
    addr: SocketAddr,
    state: Arc<State>,
    function_arn: String,
    task: JoinHandle<()>,
}

impl RuntimeApi {
    pub async fn start(function_arn: &str) -> std::io::Result<Self> {
        let state = Arc::new(State::default());
        let shared = Arc::clone(&state);
        let arn = function_arn.to_owned();
        let (addr, task) = serve_loopback(move |request| {
            let (state, arn) = (Arc::clone(&shared), arn.clone());
            async move { serve(request, &state, &arn).await }
        })
        .await?;
        Ok(Self {
            addr,
            state,
            function_arn: function_arn.to_owned(),
            task,
        })
    }

    /// `host:port`, the value of `AWS_LAMBDA_RUNTIME_API`.
    pub fn address(&self) -> String {
        self.addr.to_string()
    }

    pub fn function_arn(&self) -> &str {
        &self.function_arn
    }

    /// Hands `event` to the function's next `GET …/next` and waits for its answer.
    pub async fn invoke(&self, event: Value, timeout: Duration) -> Result<Outcome, String> {
        let id = uuid::Uuid::new_v4().to_string();
        let (tx, rx) = oneshot::channel();
        lock(&self.state.waiting).insert(id.clone(), tx);
        lock(&self.state.queued).push_back((id.clone(), event));
        self.state.arrived.notify_one();
        match tokio::time::timeout(timeout, rx).await {
            Ok(Ok(outcome)) => Ok(outcome),
            Ok(Err(_)) => Err(format!("invocation {id} was dropped")),
            Err(_) => {
                lock(&self.state.waiting).remove(&id);
                let init = self.init_errors();
                Err(if init.is_empty() {
                    format!(
                        "invocation {id} had no answer within {} s",
                        timeout.as_secs()
                    )
                } else {
                    format!("the function failed to start: {init:?}")
                })
            }
        }
    }

    /// What the function posted to `/runtime/init/error`.
    pub fn init_errors(&self) -> Vec<Value> {
        lock(&self.state.init_errors).clone()
    }
}

impl Drop for RuntimeApi {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn serve(request: Request<Incoming>, state: &State, arn: &str) -> Response<Full<Bytes>> {
    let path = request.uri().path().to_owned();
    let method = request.method().clone();
    let error_type = request
        .headers()
        .get("Lambda-Runtime-Function-Error-Type")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let Some(rest) = path.strip_prefix(PREFIX) else {
        return status(StatusCode::NOT_FOUND, "unknown path");
    };
    let body = match request.into_body().collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => return status(StatusCode::BAD_REQUEST, "unreadable body"),
    };
    let parsed = || serde_json::from_slice::<Value>(&body).unwrap_or(Value::Null);
    match (method, rest) {
        (Method::GET, "/invocation/next") => loop {
            if let Some((id, event)) = lock(&state.queued).pop_front() {
                let deadline = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_millis() + 30_000)
                    .unwrap_or_default();
                return Response::builder()
                    .status(StatusCode::OK)
                    .header("Content-Type", "application/json")
                    .header("Lambda-Runtime-Aws-Request-Id", &id)
                    .header("Lambda-Runtime-Deadline-Ms", deadline.to_string())
                    .header("Lambda-Runtime-Invoked-Function-Arn", arn)
                    .header(
                        "Lambda-Runtime-Trace-Id",
                        format!("Root=1-00000000-{};Sampled=0", &id.replace('-', "")[..24]),
                    )
                    .body(Full::new(Bytes::from(event.to_string())))
                    .unwrap_or_else(|_| status(StatusCode::INTERNAL_SERVER_ERROR, "response"));
            }
            state.arrived.notified().await;
        },
        (Method::POST, "/init/error") => {
            lock(&state.init_errors).push(parsed());
            status(StatusCode::ACCEPTED, "")
        }
        (Method::POST, rest) => {
            let Some((id, what)) = rest
                .strip_prefix("/invocation/")
                .and_then(|r| r.rsplit_once('/'))
            else {
                return status(StatusCode::NOT_FOUND, "unknown path");
            };
            let outcome = match what {
                "response" => Outcome::Response(parsed()),
                "error" => {
                    let v = parsed();
                    Outcome::Error {
                        error_type: v["errorType"]
                            .as_str()
                            .map(str::to_owned)
                            .or(error_type)
                            .unwrap_or_default(),
                        message: v["errorMessage"].as_str().unwrap_or_default().to_owned(),
                    }
                }
                _ => return status(StatusCode::NOT_FOUND, "unknown path"),
            };
            match lock(&state.waiting).remove(id) {
                Some(tx) => {
                    let _ = tx.send(outcome);
                    status(StatusCode::ACCEPTED, "")
                }
                // Lambda answers a late or unknown request id with 400 (InvalidRequestID).
                None => status(StatusCode::BAD_REQUEST, "unknown request id"),
            }
        }
        _ => status(StatusCode::NOT_FOUND, "unknown path"),
    }
}

fn status(code: StatusCode, text: &str) -> Response<Full<Bytes>> {
    answer(code, json!({"status": text}).to_string())
}

/// A function's configuration as Lambda holds it (`GetFunctionConfiguration`).
#[derive(Debug, Clone)]
pub struct FunctionConfig {
    pub name: String,
    pub arn: String,
    pub memory_mb: i32,
    pub timeout: Duration,
    pub environment: BTreeMap<String, String>,
}

impl From<&intraday_aws::FunctionInfo> for FunctionConfig {
    fn from(info: &intraday_aws::FunctionInfo) -> Self {
        Self {
            name: info.name.clone(),
            arn: info.arn.clone(),
            memory_mb: info.memory_mb,
            timeout: Duration::from_secs(info.timeout_s.max(1) as u64),
            environment: info.environment.clone(),
        }
    }
}

/// What Lambda gets from the function's role and network, here an emulator's endpoint and
/// throwaway credentials: the `extra` of [`Function::start`].
pub fn emulator_env(endpoint: &str) -> [(&'static str, &str); 4] {
    [
        ("AWS_ENDPOINT_URL", endpoint),
        ("AWS_ACCESS_KEY_ID", "test"),
        ("AWS_SECRET_ACCESS_KEY", "test"),
        ("AWS_EC2_METADATA_DISABLED", "true"),
    ]
}

/// A packaged `bootstrap` running against its own [`RuntimeApi`].
pub struct Function {
    pub api: RuntimeApi,
    pub config: FunctionConfig,
    child: tokio::process::Child,
    _dir: TempDir,
}

impl Function {
    /// Unpacks `zip` into a directory of its own (Lambda's `/var/task`) and starts its
    /// `bootstrap` with the function's environment, Lambda's reserved variables and
    /// `extra` (an emulator's endpoint and credentials, which Lambda gets from its role).
    pub async fn start(
        zip: &Path,
        config: FunctionConfig,
        region: &str,
        extra: &[(&str, &str)],
    ) -> Result<Self, String> {
        let dir = TempDir::new(&config.name)?;
        let unpacked = std::process::Command::new("unzip")
            .args(["-q", "-o"])
            .arg(zip)
            .arg("-d")
            .arg(&dir.0)
            .status()
            .map_err(|e| format!("cannot run unzip (Debian: apt-get install unzip): {e}"))?;
        if !unpacked.success() {
            return Err(format!("{} is not a readable zip", zip.display()));
        }
        let bootstrap = dir.0.join("bootstrap");
        if !bootstrap.is_file() {
            return Err(format!(
                "{} has no `bootstrap` at its root, which provided.al2023 runs",
                zip.display()
            ));
        }
        let api = RuntimeApi::start(&config.arn)
            .await
            .map_err(|e| format!("runtime API stand-in: {e}"))?;
        // Reserved variables: https://docs.aws.amazon.com/lambda/latest/dg/configuration-envvars.html
        let mut command = tokio::process::Command::new(&bootstrap);
        command
            .env_clear()
            .current_dir(&dir.0)
            .envs(&config.environment)
            .env("PATH", "/usr/local/bin:/usr/bin/:/bin:/opt/bin")
            .env("LANG", "en_US.UTF-8")
            .env("TZ", ":UTC")
            .env("_HANDLER", "bootstrap")
            .env("LAMBDA_TASK_ROOT", &dir.0)
            .env("AWS_REGION", region)
            .env("AWS_DEFAULT_REGION", region)
            .env("AWS_LAMBDA_FUNCTION_NAME", &config.name)
            .env(
                "AWS_LAMBDA_FUNCTION_MEMORY_SIZE",
                config.memory_mb.to_string(),
            )
            .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
            .env(
                "AWS_LAMBDA_LOG_GROUP_NAME",
                format!("/aws/lambda/{}", config.name),
            )
            .env("AWS_LAMBDA_LOG_STREAM_NAME", "local/[$LATEST]0")
            .env("AWS_LAMBDA_INITIALIZATION_TYPE", "on-demand")
            .env("AWS_LAMBDA_RUNTIME_API", api.address())
            .envs(extra.iter().copied())
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::inherit())
            .kill_on_drop(true);
        let child = command
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", bootstrap.display()))?;
        Ok(Self {
            api,
            config,
            child,
            _dir: dir,
        })
    }

    /// Whether the process is still running (it exits only on a fatal start-up error).
    pub fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child.try_wait().ok().flatten()
    }
}

/// A directory removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> Result<Self, String> {
        let path = std::env::temp_dir().join(format!(
            "intraday-lambda-{name}-{}",
            &uuid::Uuid::new_v4().simple().to_string()[..8]
        ));
        std::fs::create_dir_all(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        Ok(Self(path))
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// An SQS event as an event source mapping delivers it: one record per `(message id, body)`.
pub fn sqs_event(queue_arn: &str, region: &str, messages: &[(&str, &str)]) -> Value {
    let records: Vec<Value> = messages
        .iter()
        .map(|(id, body)| {
            json!({
                "messageId": id,
                "receiptHandle": format!("handle-{id}"),
                "body": body,
                "attributes": {"ApproximateReceiveCount": "1", "SentTimestamp": "1710153000000"},
                "messageAttributes": {},
                "eventSource": "aws:sqs",
                "eventSourceARN": queue_arn,
                "awsRegion": region,
            })
        })
        .collect();
    json!({ "Records": records })
}

/// The ids an answer lists in `batchItemFailures`.
pub fn batch_item_failures(answer: &Value) -> Vec<String> {
    answer["batchItemFailures"]
        .as_array()
        .map(|items| {
            items
                .iter()
                .filter_map(|i| i["itemIdentifier"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

/// Packs `binary` as a Lambda zip whose `bootstrap` it is, as ci/package.sh does.
pub fn zip_bootstrap(binary: &Path, zip: &Path) -> Result<(), String> {
    let dir = TempDir::new("zip")?;
    let bootstrap = dir.0.join("bootstrap");
    std::fs::copy(binary, &bootstrap).map_err(|e| format!("{}: {e}", binary.display()))?;
    let status = std::process::Command::new("zip")
        .args(["-q", "-X", "-j"])
        .arg(zip)
        .arg(&bootstrap)
        .status()
        .map_err(|e| format!("cannot run zip (Debian: apt-get install zip): {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("zip could not write {}", zip.display()))
    }
}

/// One batch handed to a function and what came of it.
#[derive(Debug, Clone)]
pub struct Batch {
    pub message_ids: Vec<String>,
    pub outcome: Result<Outcome, String>,
    /// The ids the answer listed in `batchItemFailures` (all of them when it failed).
    pub failed: Vec<String>,
}

/// An SQS event source mapping (batch size 10, `ReportBatchItemFailures`) in front of a
/// [`Function`].
pub struct SqsSource {
    pub sqs: aws_sdk_sqs::Client,
    pub queue_url: String,
    pub queue_arn: String,
    pub region: String,
    pub batches: Arc<Mutex<Vec<Batch>>>,
}

impl SqsSource {
    /// Receives one batch (waiting up to `wait`), invokes the function with it and settles
    /// the messages as Lambda would. Returns false when the queue had nothing.
    pub async fn poll_once(&self, function: &Function, wait: Duration) -> Result<bool, String> {
        let received = self
            .sqs
            .receive_message()
            .queue_url(&self.queue_url)
            .max_number_of_messages(10)
            .wait_time_seconds(wait.as_secs().min(20) as i32)
            .message_system_attribute_names(MessageSystemAttributeName::All)
            .send()
            .await
            .map_err(|e| format!("ReceiveMessage on {}: {e:?}", self.queue_url))?;
        let messages = received.messages();
        if messages.is_empty() {
            return Ok(false);
        }
        let records: Vec<Value> = messages
            .iter()
            .map(|m| {
                let attributes: serde_json::Map<String, Value> = m
                    .attributes()
                    .map(|a| {
                        a.iter()
                            .map(|(k, v)| (k.as_str().to_owned(), Value::String(v.clone())))
                            .collect()
                    })
                    .unwrap_or_default();
                json!({
                    "messageId": m.message_id(),
                    "receiptHandle": m.receipt_handle(),
                    "body": m.body().unwrap_or_default(),
                    "attributes": attributes,
                    "messageAttributes": {},
                    "md5OfBody": m.md5_of_body(),
                    "eventSource": "aws:sqs",
                    "eventSourceARN": self.queue_arn,
                    "awsRegion": self.region,
                })
            })
            .collect();
        let ids: Vec<String> = messages
            .iter()
            .map(|m| m.message_id().unwrap_or_default().to_owned())
            .collect();
        let outcome = function
            .api
            .invoke(json!({ "Records": records }), function.config.timeout)
            .await;
        let failed: Vec<String> = match &outcome {
            Ok(Outcome::Response(answer)) => batch_item_failures(answer),
            _ => ids.clone(),
        };
        let done: Vec<DeleteMessageBatchRequestEntry> = messages
            .iter()
            .enumerate()
            .filter(|(_, m)| !failed.iter().any(|f| Some(f.as_str()) == m.message_id()))
            .filter_map(|(i, m)| {
                DeleteMessageBatchRequestEntry::builder()
                    .id(i.to_string())
                    .receipt_handle(m.receipt_handle().unwrap_or_default())
                    .build()
                    .ok()
            })
            .collect();
        if !done.is_empty() {
            self.sqs
                .delete_message_batch()
                .queue_url(&self.queue_url)
                .set_entries(Some(done))
                .send()
                .await
                .map_err(|e| format!("DeleteMessageBatch on {}: {e:?}", self.queue_url))?;
        }
        lock(&self.batches).push(Batch {
            message_ids: ids,
            outcome,
            failed,
        });
        Ok(true)
    }
}
