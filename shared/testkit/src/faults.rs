//! A fault-injecting HTTP proxy in front of moto server, for tests of what happens when AWS's
//! answer is lost: the request is forwarded and takes effect, then the caller is answered
//! with a 500 as if the response had been lost on the way. Operations are named as the SDK
//! names them in `X-Amz-Target` (`ElasticMapReduce.RunJobFlow` → `RunJobFlow`).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response, StatusCode};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use tokio::task::JoinHandle;

use crate::http::{answer, lock, serve_loopback};

#[derive(Default)]
struct Faults {
    /// Operation → how many more answers to lose.
    lose: Mutex<HashMap<String, u32>>,
    /// Operation → requests seen.
    seen: Mutex<HashMap<String, u32>>,
    /// Random faults: the share of requests (per mille) and the generator's state.
    random: Mutex<Option<(u32, u64)>>,
    /// Requests faulted at random: (refused, answers lost).
    random_faults: Mutex<(u32, u32)>,
}

/// What a random fault does to one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fault {
    /// Answer 503 before forwarding: nothing happened upstream.
    Refuse,
    /// Forward, let it take effect, answer 500.
    LoseAnswer,
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
        let (addr, task) = serve_loopback(move |request| {
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
        lock(&self.faults.lose).insert(operation.to_owned(), times);
    }

    /// Faults `percent` of all requests at random, from `seed`: half are refused with a 503
    /// before they reach moto, half take effect and lose their answer. Answers are lost only
    /// for JSON-protocol requests (those with `X-Amz-Target`: DynamoDB, SQS, EMR, Glue,
    /// Secrets Manager, KMS, EventBridge); S3 and the query protocols are only refused,
    /// because moto forgets a completed multipart upload that S3 would answer again. Nor is
    /// a `ReceiveMessage` answer lost: in AWS the event source mapping receives, not our
    /// code, and a lost receive only hides its messages for the queue's visibility timeout
    /// (180 s), longer than a demo run waits.
    pub fn fault_randomly(&self, percent: u32, seed: u64) {
        *lock(&self.faults.random) = Some((percent.min(100) * 10, seed | 1));
    }

    /// Requests faulted at random so far: (refused, answers lost).
    pub fn random_faults(&self) -> (u32, u32) {
        *lock(&self.faults.random_faults)
    }

    /// How many `operation` requests reached the proxy.
    pub fn calls(&self, operation: &str) -> u32 {
        lock(&self.faults.seen).get(operation).copied().unwrap_or(0)
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn text(status: StatusCode, body: &str) -> Response<Full<Bytes>> {
    answer(status, body.to_owned())
}

async fn forward(
    request: Request<Incoming>,
    faults: &Faults,
    upstream: &str,
    client: &Client<HttpConnector, Full<Bytes>>,
) -> Response<Full<Bytes>> {
    let operation = request
        .headers()
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .and_then(|t| t.rsplit('.').next())
        .unwrap_or_default()
        .to_owned();
    *lock(&faults.seen).entry(operation.clone()).or_default() += 1;
    let random = {
        let mut random = lock(&faults.random);
        random.as_mut().and_then(|(per_mille, state)| {
            // xorshift64: reproducible from the seed, no dependency.
            *state ^= *state << 13;
            *state ^= *state >> 7;
            *state ^= *state << 17;
            let roll = (*state % 1000) as u32;
            let fault = if roll % 2 == 0 && !operation.is_empty() && operation != "ReceiveMessage" {
                Fault::LoseAnswer
            } else {
                Fault::Refuse
            };
            (roll < *per_mille).then_some(fault)
        })
    };
    if random == Some(Fault::Refuse) {
        lock(&faults.random_faults).0 += 1;
        return text(
            StatusCode::SERVICE_UNAVAILABLE,
            r#"{"__type":"ServiceUnavailable","message":"refused by the fault proxy"}"#,
        );
    }
    let (parts, body) = request.into_parts();
    let Ok(body) = body.collect().await.map(|b| b.to_bytes()) else {
        return text(StatusCode::BAD_REQUEST, "unreadable request body");
    };
    let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    let mut outbound = Request::builder()
        .method(parts.method.clone())
        .uri(format!("{upstream}{path}"));
    for (name, value) in &parts.headers {
        outbound = outbound.header(name, value);
    }
    let Ok(outbound) = outbound.body(Full::new(body)) else {
        return text(StatusCode::BAD_REQUEST, "request could not be rebuilt");
    };
    let answer = match client.request(outbound).await {
        Ok(answer) => answer,
        Err(e) => return text(StatusCode::BAD_GATEWAY, &format!("upstream: {e}")),
    };
    let (parts, body) = answer.into_parts();
    let body = body
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let lost = {
        let mut lose = lock(&faults.lose);
        match lose.get_mut(&operation) {
            Some(left) if *left > 0 => {
                *left -= 1;
                true
            }
            _ => false,
        }
    } || random == Some(Fault::LoseAnswer);
    if random == Some(Fault::LoseAnswer) {
        lock(&faults.random_faults).1 += 1;
    }
    if lost {
        // The request took effect upstream; the caller never learns it.
        return text(
            StatusCode::INTERNAL_SERVER_ERROR,
            r#"{"__type":"InternalServerError","message":"answer lost by the fault proxy"}"#,
        );
    }
    Response::from_parts(parts, Full::new(body))
}
