//! A fault-injecting HTTP proxy in front of moto server, for tests of what happens when AWS's
//! answer is lost: the request is forwarded and takes effect, then the caller is answered
//! with a 500 as if the response had been lost on the way; or it drops the connection after
//! the request took effect, as a reset would. Operations are named as AWS names them: from
//! `X-Amz-Target` for the JSON protocols (`ElasticMapReduce.RunJobFlow` → `RunJobFlow`),
//! from `Action=` for the query protocols (SNS, CloudFormation, STS), and from the method and
//! query for S3's REST calls (`POST ?uploadId=` → `CompleteMultipartUpload`).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::{Method, Request, Response, StatusCode, Uri};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use tokio::task::JoinHandle;

use crate::http::{answer, lock, serve_loopback_or_drop};

#[derive(Default)]
struct Faults {
    /// Operation → how many more answers to lose, and how.
    lose: Mutex<HashMap<String, (u32, Fault)>>,
    /// Operation → requests seen.
    seen: Mutex<HashMap<String, u32>>,
    /// Access key id → the IAM actions its requests needed.
    actions: Mutex<std::collections::BTreeMap<String, std::collections::BTreeSet<String>>>,
    /// Random faults: the share of requests (per mille) and the generator's state.
    random: Mutex<Option<(u32, u64)>>,
    /// Requests faulted at random: (refused, answers lost or connections dropped).
    random_faults: Mutex<(u32, u32)>,
    /// Requests still answered before the proxy stops answering (`stall_after`).
    stall_in: Mutex<Option<u32>>,
    /// Whether the proxy has stopped answering; requests wait until it is false again.
    stalled: tokio::sync::watch::Sender<bool>,
}

/// What a fault does to one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Answer 503 before forwarding: nothing happened upstream.
    Refuse,
    /// Forward, let it take effect, answer 500.
    LoseAnswer,
    /// Forward, let it take effect, then close the connection without an answer.
    Reset,
}

pub struct FaultProxy {
    addr: SocketAddr,
    faults: Arc<Faults>,
    task: JoinHandle<()>,
}

impl FaultProxy {
    /// Listens on a free loopback port and forwards to `upstream` (`http://127.0.0.1:port`).
    pub async fn start(upstream: &str) -> std::io::Result<Self> {
        let faults = Arc::new(Faults::default());
        let shared = Arc::clone(&faults);
        let upstream = upstream.trim_end_matches('/').to_owned();
        let client: Client<HttpConnector, Full<Bytes>> =
            Client::builder(TokioExecutor::new()).build_http();
        let (addr, task) = serve_loopback_or_drop(move |request| {
            let (faults, upstream, client) =
                (Arc::clone(&shared), upstream.clone(), client.clone());
            async move { forward(request, &faults, &upstream, &client).await }
        })
        .await?;
        Ok(Self { addr, faults, task })
    }

    /// The endpoint to give the SDK instead of moto's.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The next `times` answers to `operation` are lost after the request took effect.
    pub fn lose_answers(&self, operation: &str, times: u32) {
        self.fault_next(operation, times, Fault::LoseAnswer);
    }

    /// The next `times` requests of `operation` meet `fault`.
    pub fn fault_next(&self, operation: &str, times: u32, fault: Fault) {
        lock(&self.faults.lose).insert(operation.to_owned(), (times, fault));
    }

    /// Every operation that reached the proxy, with how many times.
    pub fn operations(&self) -> Vec<(String, u32)> {
        let mut seen: Vec<(String, u32)> = lock(&self.faults.seen)
            .iter()
            .map(|(op, n)| (op.clone(), *n))
            .collect();
        seen.sort();
        seen
    }

    /// Faults `percent` of all requests at random, from `seed`: half are refused with a 503
    /// before they reach moto; a quarter take effect and lose their answer (a 500); a quarter
    /// take effect and have their connection closed unanswered. Query-protocol requests
    /// (SNS, CloudFormation, STS) are only refused: the demo's own stack deploy is not what
    /// is under test. Nor is a `ReceiveMessage` answer lost: in AWS the event source mapping
    /// receives, not our code, and a lost receive only hides its messages for the queue's
    /// visibility timeout (180 s), longer than a demo run waits.
    pub fn fault_randomly(&self, percent: u32, seed: u64) {
        *lock(&self.faults.random) = Some((percent.min(100) * 10, seed | 1));
    }

    /// Requests faulted at random so far: (refused, answers lost or connections dropped).
    pub fn random_faults(&self) -> (u32, u32) {
        *lock(&self.faults.random_faults)
    }

    /// Answers the next `calls` requests, then stops answering: every later request waits,
    /// unforwarded, as if the network had gone, until [`FaultProxy::resume`].
    pub fn stall_after(&self, calls: u32) {
        *lock(&self.faults.stall_in) = Some(calls);
    }

    /// Answers again; requests held while stalled are refused (503), never forwarded: their
    /// callers are gone.
    pub fn resume(&self) {
        *lock(&self.faults.stall_in) = None;
        self.faults.stalled.send_replace(false);
    }

    /// Waits until the proxy holds a request it will not answer.
    pub async fn stalled(&self) {
        let mut rx = self.faults.stalled.subscribe();
        let _ = rx.wait_for(|s| *s).await;
    }

    /// Runs `work` (one delivery of a handler whose clients go through this proxy) with the
    /// proxy answering only its first `calls` requests. `None` when it was interrupted there:
    /// `work` is dropped as the request after call `calls` hangs, as a Lambda killed
    /// mid-call is, and the proxy answers again. `Some` with `work`'s result when it needed
    /// no more than `calls` requests.
    pub async fn interrupt_after<F: std::future::Future>(
        &self,
        calls: u32,
        work: F,
    ) -> Option<F::Output> {
        self.stall_after(calls);
        let out = tokio::select! {
            out = work => Some(out),
            () = self.stalled() => None,
        };
        self.resume();
        out
    }

    /// Runs `work` and counts the requests it sent through the proxy.
    pub async fn count_calls<F: std::future::Future>(&self, work: F) -> (F::Output, u32) {
        let before = self.total_calls();
        let out = work.await;
        (out, self.total_calls() - before)
    }

    /// The IAM actions the requests signed with each access key id needed, as
    /// [`crate::iam::actions_of`] names them.
    pub fn actions_by_key(
        &self,
    ) -> std::collections::BTreeMap<String, std::collections::BTreeSet<String>> {
        lock(&self.faults.actions).clone()
    }

    /// How many requests reached the proxy, of every operation.
    pub fn total_calls(&self) -> u32 {
        lock(&self.faults.seen).values().sum()
    }

    /// How many `operation` requests reached the proxy.
    pub fn calls(&self, operation: &str) -> u32 {
        lock(&self.faults.seen).get(operation).copied().unwrap_or(0)
    }
}

/// A fault proxy in front of this test's moto server, and clients that go through it.
pub async fn in_front_of_moto() -> (FaultProxy, intraday_aws::Aws) {
    let proxy = FaultProxy::start(crate::moto())
        .await
        .unwrap_or_else(|e| panic!("a fault proxy on loopback: {e}"));
    let aws = intraday_aws::AwsSettings::emulator(proxy.endpoint(), crate::REGION)
        .load()
        .await;
    (proxy, aws)
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn text(status: StatusCode, body: &str) -> Response<Full<Bytes>> {
    answer(status, body.to_owned())
}

/// The operation a request calls, as AWS names it; empty when it cannot be told.
fn operation_of(method: &Method, uri: &Uri, target: Option<&str>, body: &[u8]) -> String {
    if let Some(target) = target {
        return target.rsplit('.').next().unwrap_or_default().to_owned();
    }
    let query = uri.query().unwrap_or_default();
    // Query protocols: `Action=Publish&…` in a form body (or the query string).
    let form = std::str::from_utf8(body).unwrap_or_default();
    if let Some(action) = [form, query]
        .iter()
        .flat_map(|q| q.split('&'))
        .find_map(|pair| pair.strip_prefix("Action="))
    {
        return action.to_owned();
    }
    // S3's REST calls, by method and sub-resource.
    let has = |name: &str| {
        query
            .split('&')
            .any(|p| p == name || p.starts_with(&format!("{name}=")))
    };
    // Path style (`/bucket/key`), as the SDK sends it to an endpoint override.
    let object = uri
        .path()
        .trim_start_matches('/')
        .split_once('/')
        .is_some_and(|(_, key)| !key.is_empty());
    let name = match *method {
        Method::POST if has("uploads") => "CreateMultipartUpload",
        Method::POST if has("uploadId") => "CompleteMultipartUpload",
        Method::POST if has("delete") => "DeleteObjects",
        Method::PUT if has("partNumber") => "UploadPart",
        Method::PUT if has("tagging") => "PutObjectTagging",
        Method::PUT if object => "PutObject",
        Method::PUT => "CreateBucket",
        Method::DELETE if has("uploadId") => "AbortMultipartUpload",
        Method::DELETE if object => "DeleteObject",
        Method::HEAD if object => "HeadObject",
        Method::HEAD => "HeadBucket",
        Method::GET if has("tagging") => "GetObjectTagging",
        Method::GET if object => "GetObject",
        Method::GET if has("list-type") => "ListObjectsV2",
        Method::GET => "ListObjects",
        _ => "",
    };
    name.to_owned()
}

/// Rolls the random generator: the fault for this request, if any.
fn roll(faults: &Faults, operation: &str, query_protocol: bool) -> Option<Fault> {
    let mut random = lock(&faults.random);
    let (per_mille, state) = random.as_mut()?;
    // xorshift64: reproducible from the seed, no dependency.
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    let roll = (*state % 1000) as u32;
    if roll >= *per_mille {
        return None;
    }
    let spared = operation.is_empty() || operation == "ReceiveMessage" || query_protocol;
    Some(match roll % 4 {
        _ if spared => Fault::Refuse,
        0 => Fault::LoseAnswer,
        1 => Fault::Reset,
        _ => Fault::Refuse,
    })
}

/// What the caller gets: an answer, or a connection closed without one.
pub(crate) type Answer = Result<Response<Full<Bytes>>, crate::http::Dropped>;

async fn forward(
    request: Request<Incoming>,
    faults: &Faults,
    upstream: &str,
    client: &Client<HttpConnector, Full<Bytes>>,
) -> Answer {
    let (parts, body) = request.into_parts();
    let Ok(body) = body.collect().await.map(|b| b.to_bytes()) else {
        return Ok(text(StatusCode::BAD_REQUEST, "unreadable request body"));
    };
    let target = parts
        .headers
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok());
    let operation = operation_of(&parts.method, &parts.uri, target, &body);
    let query_protocol = target.is_none()
        && parts
            .headers
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|t| t.starts_with("application/x-www-form-urlencoded"));
    *lock(&faults.seen).entry(operation.clone()).or_default() += 1;
    if let Some((key, service)) = parts
        .headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(crate::iam::signer)
    {
        let tagged = parts.headers.contains_key("x-amz-tagging");
        lock(&faults.actions)
            .entry(key)
            .or_default()
            .extend(crate::iam::actions_of(&service, &operation, &body, tagged));
    }
    let stall = {
        let mut left = lock(&faults.stall_in);
        match left.as_mut() {
            Some(0) => true,
            Some(n) => {
                *n -= 1;
                false
            }
            None => false,
        }
    };
    if stall {
        faults.stalled.send_replace(true);
        let mut rx = faults.stalled.subscribe();
        let _ = rx.wait_for(|s| !*s).await;
        return Ok(text(
            StatusCode::SERVICE_UNAVAILABLE,
            r#"{"__type":"ServiceUnavailable","message":"held by the fault proxy while stalled"}"#,
        ));
    }
    let planned = {
        let mut lose = lock(&faults.lose);
        match lose.get_mut(&operation) {
            Some((left, fault)) if *left > 0 => {
                *left -= 1;
                Some(*fault)
            }
            _ => None,
        }
    };
    let random = roll(faults, &operation, query_protocol);
    if random.is_some() {
        let mut counts = lock(&faults.random_faults);
        match random {
            Some(Fault::Refuse) => counts.0 += 1,
            _ => counts.1 += 1,
        }
    }
    let fault = planned.or(random);
    if fault == Some(Fault::Refuse) {
        return Ok(text(
            StatusCode::SERVICE_UNAVAILABLE,
            r#"{"__type":"ServiceUnavailable","message":"refused by the fault proxy"}"#,
        ));
    }
    let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    let mut outbound = Request::builder()
        .method(parts.method.clone())
        .uri(format!("{upstream}{path}"));
    for (name, value) in &parts.headers {
        outbound = outbound.header(name, value);
    }
    let Ok(outbound) = outbound.body(Full::new(body)) else {
        return Ok(text(
            StatusCode::BAD_REQUEST,
            "request could not be rebuilt",
        ));
    };
    let answer = match client.request(outbound).await {
        Ok(answer) => answer,
        Err(e) => return Ok(text(StatusCode::BAD_GATEWAY, &format!("upstream: {e}"))),
    };
    let (parts, body) = answer.into_parts();
    let body = body
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    // The request took effect upstream; the caller never learns it.
    match fault {
        Some(Fault::LoseAnswer) => Ok(text(
            StatusCode::INTERNAL_SERVER_ERROR,
            r#"{"__type":"InternalServerError","message":"answer lost by the fault proxy"}"#,
        )),
        Some(Fault::Reset) => Err(crate::http::Dropped),
        _ => Ok(Response::from_parts(parts, Full::new(body))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn op(method: Method, uri: &str, target: Option<&str>, body: &str) -> String {
        operation_of(&method, &uri.parse().expect("uri"), target, body.as_bytes())
    }

    #[test]
    fn names_operations_of_every_protocol() {
        assert_eq!(
            op(Method::POST, "/", Some("ElasticMapReduce.RunJobFlow"), "{}"),
            "RunJobFlow"
        );
        assert_eq!(
            op(Method::POST, "/", None, "Action=Publish&TopicArn=arn"),
            "Publish"
        );
        assert_eq!(
            op(Method::POST, "/b/k.parquet?uploadId=abc", None, ""),
            "CompleteMultipartUpload"
        );
        assert_eq!(
            op(Method::POST, "/b/k?uploads", None, ""),
            "CreateMultipartUpload"
        );
        assert_eq!(
            op(Method::PUT, "/b/k?partNumber=1&uploadId=abc", None, ""),
            "UploadPart"
        );
        assert_eq!(op(Method::POST, "/b?delete", None, ""), "DeleteObjects");
        assert_eq!(
            op(Method::GET, "/b?list-type=2&prefix=x", None, ""),
            "ListObjectsV2"
        );
        assert_eq!(op(Method::PUT, "/b/k", None, "bytes"), "PutObject");
        assert_eq!(op(Method::HEAD, "/b/k", None, ""), "HeadObject");
    }
}
