//! The data key service client: `POST {url}/datakey/actions/decrypt?keyId=..&correlationId=..`
//! with the encrypted data key (base64 text) as the body, over mutual TLS; the answer's
//! `plaintextDataKey` is the base64 data key.

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::{Method, Request, StatusCode, Uri};
use hyper_rustls::{HttpsConnector, HttpsConnectorBuilder};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::{ClientConfig, RootCertStore};
use serde::Deserialize;
use zeroize::Zeroizing;

use crate::ExtractorError;
use crate::crypto::DataKey;

/// The PEM files for mutual TLS: our certificate chain and key, and the CA that signs the
/// service's certificate.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
    pub ca: PathBuf,
}

/// How hard to try before a key request fails the step.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    /// Attempts in all, the first included.
    pub max_attempts: u32,
    /// The first wait; each further one doubles, up to `max_delay`, and is jittered.
    pub base_delay: Duration,
    pub max_delay: Duration,
    /// For one request, answer included.
    pub timeout: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 6,
            base_delay: Duration::from_millis(200),
            max_delay: Duration::from_secs(10),
            timeout: Duration::from_secs(30),
        }
    }
}

impl RetryPolicy {
    /// The wait before attempt `attempt + 1` (attempt counts from 1): "equal jitter", half
    /// fixed and half random, so many workers retrying together spread out without any of
    /// them retrying at once.
    fn delay(&self, attempt: u32, random: u64) -> Duration {
        let exp = self
            .base_delay
            .saturating_mul(1u32 << attempt.saturating_sub(1).min(16))
            .min(self.max_delay);
        let half = exp / 2;
        let nanos = u64::try_from(half.as_nanos()).unwrap_or(u64::MAX);
        half + Duration::from_nanos(if nanos == 0 { 0 } else { random % (nanos + 1) })
    }
}

#[derive(Debug, Clone)]
pub struct DksSettings {
    pub url: String,
    /// Required for `https://`; an `http://` URL is accepted only on loopback, without TLS.
    pub tls: Option<TlsFiles>,
    pub correlation_id: String,
    pub retry: RetryPolicy,
}

type HttpClient = Client<HttpsConnector<HttpConnector>, Full<Bytes>>;

#[derive(Debug)]
pub struct DksClient {
    client: HttpClient,
    base: String,
    correlation_id: String,
    retry: RetryPolicy,
    requests: AtomicU64,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct DecryptAnswer {
    plaintext_data_key: Option<String>,
}

enum Attempt {
    Done(DataKey),
    Retry(String),
}

impl DksClient {
    pub fn new(settings: DksSettings) -> Result<Self, ExtractorError> {
        let base = settings.url.trim_end_matches('/').to_owned();
        let uri: Uri = base.parse().map_err(|e| ExtractorError::InvalidArgument {
            flag: "--dks-url",
            value: settings.url.clone(),
            reason: format!("not a URL: {e}"),
        })?;
        let invalid = |reason: &str| ExtractorError::InvalidArgument {
            flag: "--dks-url",
            value: settings.url.clone(),
            reason: reason.to_owned(),
        };
        if uri.query().is_some() {
            return Err(invalid("give the service's base URL, without a query"));
        }
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let builder = HttpsConnectorBuilder::new();
        let connector = match (uri.scheme_str(), &settings.tls) {
            (Some("https"), Some(files)) => builder
                .with_tls_config(client_tls(provider, files)?)
                .https_only()
                .enable_http1()
                .build(),
            (Some("https"), None) => {
                return Err(invalid(
                    "an https:// service needs --dks-cert, --dks-key and --dks-ca for mutual TLS",
                ));
            }
            (Some("http"), None) if intraday_aws::is_loopback(&base) => {
                let plain = ClientConfig::builder_with_provider(provider)
                    .with_safe_default_protocol_versions()
                    .map_err(|e| ExtractorError::DksConfig(e.to_string()))?
                    .with_root_certificates(RootCertStore::empty())
                    .with_no_client_auth();
                builder
                    .with_tls_config(plain)
                    .https_or_http()
                    .enable_http1()
                    .build()
            }
            (Some("http"), None) => {
                return Err(invalid(
                    "plain http:// is accepted only on loopback (tests and local mode); use https:// with mutual TLS",
                ));
            }
            (Some("http"), Some(_)) => {
                return Err(invalid(
                    "TLS files were given for an http:// URL; use https://",
                ));
            }
            _ => return Err(invalid("the URL must start with https:// or http://")),
        };
        let client = Client::builder(TokioExecutor::new()).build(connector);
        Ok(Self {
            client,
            base,
            correlation_id: settings.correlation_id,
            retry: settings.retry,
            requests: AtomicU64::new(0),
        })
    }

    /// Requests sent so far, retries included.
    pub fn requests(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }

    /// Decrypts one data key, retrying 429, 5xx and transport failures with jittered
    /// backoff. A 4xx answer is final and names the master key id (never the key).
    pub async fn decrypt(
        &self,
        key_id: &str,
        encrypted_key: &str,
    ) -> Result<DataKey, ExtractorError> {
        let uri = format!(
            "{}/datakey/actions/decrypt?keyId={}&correlationId={}",
            self.base,
            url_encode(key_id),
            url_encode(&self.correlation_id)
        );
        let random = RandomState::new();
        let mut attempt = 0;
        loop {
            attempt += 1;
            let outcome = tokio::time::timeout(
                self.retry.timeout,
                self.attempt(&uri, key_id, encrypted_key),
            )
            .await
            .unwrap_or_else(|_| {
                Ok(Attempt::Retry(format!(
                    "no answer within {:?}",
                    self.retry.timeout
                )))
            })?;
            match outcome {
                Attempt::Done(key) => return Ok(key),
                Attempt::Retry(last) if attempt >= self.retry.max_attempts => {
                    return Err(ExtractorError::DksUnavailable {
                        key_id: key_id.to_owned(),
                        attempts: attempt,
                        last,
                    });
                }
                Attempt::Retry(last) => {
                    let wait = self.retry.delay(attempt, random.hash_one(attempt));
                    tracing::warn!(key_id, attempt, ?wait, reason = %last, "retrying the data key service");
                    tokio::time::sleep(wait).await;
                }
            }
        }
    }

    async fn attempt(
        &self,
        uri: &str,
        key_id: &str,
        encrypted_key: &str,
    ) -> Result<Attempt, ExtractorError> {
        self.requests.fetch_add(1, Ordering::Relaxed);
        let request = Request::builder()
            .method(Method::POST)
            .uri(uri)
            .header("content-type", "text/plain")
            .header("accept", "application/json")
            .body(Full::new(Bytes::copy_from_slice(encrypted_key.as_bytes())))
            .map_err(|e| ExtractorError::DksConfig(format!("building the request: {e}")))?;
        let response = match self.client.request(request).await {
            Ok(response) => response,
            Err(e) => return Ok(Attempt::Retry(describe(&e))),
        };
        let status = response.status();
        let body = match response.into_body().collect().await {
            Ok(body) => Zeroizing::new(body.to_bytes().to_vec()),
            Err(e) => return Ok(Attempt::Retry(format!("reading the answer: {e}"))),
        };
        if status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error() {
            return Ok(Attempt::Retry(format!("{status}")));
        }
        if status.is_client_error() {
            return Err(ExtractorError::DksRefused {
                key_id: key_id.to_owned(),
                status: status.as_u16(),
                message: snippet(&body),
            });
        }
        let bad = |reason: String| ExtractorError::DksBadAnswer {
            key_id: key_id.to_owned(),
            reason,
        };
        if status != StatusCode::OK {
            return Err(bad(format!("unexpected status {status}")));
        }
        let answer: DecryptAnswer = serde_json::from_slice(&body)
            .map_err(|e| bad(format!("the answer is not the expected JSON: {e}")))?;
        let text = Zeroizing::new(
            answer
                .plaintext_data_key
                .ok_or_else(|| bad("the answer has no `plaintextDataKey`".to_owned()))?,
        );
        DataKey::from_base64(&text).map(Attempt::Done).map_err(bad)
    }
}

/// An error and its causes on one line: hyper's own message is often just "client error".
fn describe(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// The start of an error answer, printable, for the message.
fn snippet(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(&body[..body.len().min(300)]);
    let clean: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if clean.trim().is_empty() {
        "no message".to_owned()
    } else {
        clean.trim().to_owned()
    }
}

pub(crate) fn url_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(char::from(b));
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

fn client_tls(
    provider: Arc<rustls::crypto::CryptoProvider>,
    files: &TlsFiles,
) -> Result<ClientConfig, ExtractorError> {
    let mut roots = RootCertStore::empty();
    for ca in load_certs(&files.ca, "--dks-ca")? {
        roots.add(ca).map_err(|e| {
            ExtractorError::DksConfig(format!(
                "--dks-ca `{}` holds a certificate that cannot be trusted: {e}",
                files.ca.display()
            ))
        })?;
    }
    let chain = load_certs(&files.cert, "--dks-cert")?;
    let key = load_key(&files.key, "--dks-key")?;
    ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| ExtractorError::DksConfig(e.to_string()))?
        .with_root_certificates(roots)
        .with_client_auth_cert(chain, key)
        .map_err(|e| {
            ExtractorError::DksConfig(format!(
                "--dks-cert `{}` and --dks-key `{}` do not make a client identity: {e}",
                files.cert.display(),
                files.key.display()
            ))
        })
}

/// Every certificate in a PEM file; at least one.
pub fn load_certs(path: &Path, flag: &str) -> Result<Vec<CertificateDer<'static>>, ExtractorError> {
    let problem = |reason: String| {
        ExtractorError::DksConfig(format!("{flag} `{}`: {reason}", path.display()))
    };
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| problem(e.to_string()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| problem(format!("not a PEM certificate file: {e}")))?;
    if certs.is_empty() {
        return Err(problem("it holds no PEM certificate".to_owned()));
    }
    Ok(certs)
}

/// The private key in a PEM file (PKCS#8, PKCS#1 or SEC1).
pub fn load_key(path: &Path, flag: &str) -> Result<PrivateKeyDer<'static>, ExtractorError> {
    PrivateKeyDer::from_pem_file(path).map_err(|e| {
        ExtractorError::DksConfig(format!(
            "{flag} `{}`: no usable PEM private key: {e}",
            path.display()
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap_with_jitter_in_the_upper_half() {
        let policy = RetryPolicy {
            max_attempts: 10,
            base_delay: Duration::from_millis(100),
            max_delay: Duration::from_secs(1),
            timeout: Duration::from_secs(1),
        };
        assert_eq!(policy.delay(1, 0), Duration::from_millis(50));
        assert_eq!(
            policy.delay(1, u64::MAX),
            Duration::from_millis(50) + Duration::from_nanos(u64::MAX % 50_000_001)
        );
        assert_eq!(policy.delay(2, 0), Duration::from_millis(100));
        assert_eq!(
            policy.delay(5, 0),
            Duration::from_millis(500),
            "capped at max_delay"
        );
        assert_eq!(
            policy.delay(40, 0),
            Duration::from_millis(500),
            "no overflow"
        );
        for r in [1, 7, 1_000_000_007, u64::MAX / 3] {
            let d = policy.delay(3, r);
            assert!(
                d >= Duration::from_millis(200) && d <= Duration::from_millis(400),
                "{d:?}"
            );
        }
    }

    #[test]
    fn only_loopback_may_use_plain_http() {
        let settings = |url: &str, tls: Option<TlsFiles>| DksSettings {
            url: url.to_owned(),
            tls,
            correlation_id: "run-1".to_owned(),
            retry: RetryPolicy::default(),
        };
        assert!(DksClient::new(settings("http://127.0.0.1:8443", None)).is_ok());
        assert!(DksClient::new(settings("http://localhost:8443/", None)).is_ok());
        let cases = [
            ("http://dks.internal:8443", "only on loopback"),
            (
                "https://dks.internal:8443",
                "needs --dks-cert, --dks-key and --dks-ca",
            ),
            ("ftp://dks", "must start with https:// or http://"),
            ("https://dks/x?y=1", "without a query"),
        ];
        for (url, want) in cases {
            let err = DksClient::new(settings(url, None))
                .expect_err(url)
                .to_string();
            assert!(err.contains(want), "{url}: {err}");
        }
        let missing = TlsFiles {
            cert: "/nonexistent/cert.pem".into(),
            key: "/nonexistent/key.pem".into(),
            ca: "/nonexistent/ca.pem".into(),
        };
        let err = DksClient::new(settings("https://dks.internal", Some(missing)))
            .expect_err("missing files")
            .to_string();
        assert!(err.contains("--dks-ca `/nonexistent/ca.pem`"), "{err}");
    }

    #[test]
    fn query_values_are_percent_encoded() {
        assert_eq!(url_encode("cloudhsm:1,2/x y"), "cloudhsm%3A1%2C2%2Fx%20y");
        assert_eq!(url_encode("run-1_a.b~"), "run-1_a.b~");
    }
}
