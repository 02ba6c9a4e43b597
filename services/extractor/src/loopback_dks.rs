//! A data key service on loopback, for tests, the benchmark and local runs: it speaks the
//! real protocol (plain HTTP or mutual TLS) and answers from a table of data keys, and it can
//! be told to fail the next requests with given statuses.

use std::collections::{HashMap, VecDeque};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use rustls::ServerConfig;
use rustls::server::WebPkiClientVerifier;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;

use crate::ExtractorError;
use crate::crypto::BASE64;
use crate::dks::{TlsFiles, load_certs, load_key};
use base64::Engine;

#[derive(Default)]
struct State {
    /// Encrypted key (base64, as in records) to plaintext key (base64, as answered).
    keys: Mutex<HashMap<String, String>>,
    /// Statuses to answer before serving normally, first first.
    failures: Mutex<VecDeque<u16>>,
    requests: AtomicU64,
    correlation_ids: Mutex<Vec<String>>,
}

pub struct LoopbackDks {
    addr: SocketAddr,
    tls: bool,
    state: Arc<State>,
    task: JoinHandle<()>,
}

impl LoopbackDks {
    /// Plain HTTP on 127.0.0.1, any free port.
    pub async fn start() -> Result<Self, ExtractorError> {
        Self::serve(None).await
    }

    /// Mutual TLS on 127.0.0.1: `files.cert`/`files.key` are the server's, and clients must
    /// present a certificate signed by `files.ca`.
    pub async fn start_mtls(files: &TlsFiles) -> Result<Self, ExtractorError> {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let mut client_roots = rustls::RootCertStore::empty();
        for ca in load_certs(&files.ca, "client CA")? {
            client_roots
                .add(ca)
                .map_err(|e| ExtractorError::DksConfig(e.to_string()))?;
        }
        let verifier =
            WebPkiClientVerifier::builder_with_provider(Arc::new(client_roots), provider.clone())
                .build()
                .map_err(|e| ExtractorError::DksConfig(e.to_string()))?;
        let config = ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| ExtractorError::DksConfig(e.to_string()))?
            .with_client_cert_verifier(verifier)
            .with_single_cert(
                load_certs(&files.cert, "server certificate")?,
                load_key(&files.key, "server key")?,
            )
            .map_err(|e| ExtractorError::DksConfig(e.to_string()))?;
        Self::serve(Some(TlsAcceptor::from(Arc::new(config)))).await
    }

    async fn serve(tls: Option<TlsAcceptor>) -> Result<Self, ExtractorError> {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .map_err(|e| ExtractorError::DksConfig(format!("binding a loopback port: {e}")))?;
        let addr = listener
            .local_addr()
            .map_err(|e| ExtractorError::DksConfig(e.to_string()))?;
        let state = Arc::new(State::default());
        let served = state.clone();
        let is_tls = tls.is_some();
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let state = served.clone();
                let tls = tls.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |request| answer(state.clone(), request));
                    match tls {
                        Some(acceptor) => {
                            // A refused handshake is the point of some tests: nothing to do.
                            if let Ok(stream) = acceptor.accept(stream).await {
                                let _ = http1::Builder::new()
                                    .serve_connection(TokioIo::new(stream), service)
                                    .await;
                            }
                        }
                        None => {
                            let _ = http1::Builder::new()
                                .serve_connection(TokioIo::new(stream), service)
                                .await;
                        }
                    }
                });
            }
        });
        Ok(Self {
            addr,
            tls: is_tls,
            state,
            task,
        })
    }

    pub fn url(&self) -> String {
        let scheme = if self.tls { "https" } else { "http" };
        format!("{scheme}://{}", self.addr)
    }

    /// Teaches the service one data key: requests with body `encrypted_b64` get `plaintext`.
    pub fn add_key(&self, encrypted_b64: &str, plaintext: &[u8]) {
        if let Ok(mut keys) = self.state.keys.lock() {
            keys.insert(encrypted_b64.to_owned(), BASE64.encode(plaintext));
        }
    }

    /// The next requests are answered with these statuses, in order, before normal service.
    pub fn fail_next(&self, statuses: &[u16]) {
        if let Ok(mut failures) = self.state.failures.lock() {
            failures.extend(statuses);
        }
    }

    pub fn requests(&self) -> u64 {
        self.state.requests.load(Ordering::Relaxed)
    }

    /// The `correlationId` of every request, in order.
    pub fn correlation_ids(&self) -> Vec<String> {
        self.state
            .correlation_ids
            .lock()
            .map(|ids| ids.clone())
            .unwrap_or_default()
    }
}

impl Drop for LoopbackDks {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn answer(
    state: Arc<State>,
    request: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    state.requests.fetch_add(1, Ordering::Relaxed);
    let reply = |status: StatusCode, body: String| {
        let mut response = Response::new(Full::new(Bytes::from(body)));
        *response.status_mut() = status;
        Ok(response)
    };
    if request.method() != Method::POST || request.uri().path() != "/datakey/actions/decrypt" {
        return reply(StatusCode::NOT_FOUND, "no such endpoint".to_owned());
    }
    let query: HashMap<String, String> = request
        .uri()
        .query()
        .unwrap_or("")
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .map(|(k, v)| (k.to_owned(), percent_decode(v)))
        .collect();
    let (Some(key_id), Some(correlation_id)) = (query.get("keyId"), query.get("correlationId"))
    else {
        return reply(
            StatusCode::BAD_REQUEST,
            r#"{"error":"keyId and correlationId are required"}"#.to_owned(),
        );
    };
    if let Ok(mut ids) = state.correlation_ids.lock() {
        ids.push(correlation_id.clone());
    }
    let scripted = state.failures.lock().ok().and_then(|mut f| f.pop_front());
    if let Some(status) = scripted {
        let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        return reply(status, format!(r#"{{"error":"scripted {status}"}}"#));
    }
    let body = match request.into_body().collect().await {
        Ok(body) => body.to_bytes(),
        Err(_) => return reply(StatusCode::BAD_REQUEST, "unreadable body".to_owned()),
    };
    let encrypted = String::from_utf8_lossy(&body).trim().to_owned();
    let known = state
        .keys
        .lock()
        .ok()
        .and_then(|keys| keys.get(&encrypted).cloned());
    match known {
        Some(plaintext) => reply(
            StatusCode::OK,
            serde_json::json!({
                "dataKeyEncryptionKeyId": key_id,
                "plaintextDataKey": plaintext,
            })
            .to_string(),
        ),
        None => reply(
            StatusCode::BAD_REQUEST,
            r#"{"error":"Failed to decrypt this key"}"#.to_owned(),
        ),
    }
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let decoded = (bytes[i] == b'%')
            .then(|| text.get(i + 1..i + 3))
            .flatten()
            .and_then(|hex| u8::from_str_radix(hex, 16).ok());
        match decoded {
            Some(b) => {
                out.push(b);
                i += 3;
            }
            None => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}
