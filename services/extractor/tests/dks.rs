//! The data key service client against a data key service on loopback: retries, refusals,
//! the one-request-per-key cache and mutual TLS.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use intraday_extractor::ExtractorError;
use intraday_extractor::crypto::{BASE64, DataKey, apply_keystream, decode_iv};
use intraday_extractor::dks::{DksClient, DksSettings, RetryPolicy, TlsFiles};
use intraday_extractor::keys::{KeyAnswer, KeyCache, KeyProvider};
use intraday_extractor::loopback_dks::LoopbackDks;

use base64::Engine;

const KEY_ID: &str = "cloudhsm:7,14";
const ENCRYPTED: &str = "AQIDBAUGBwgJCgsMDQ4PEA==";
/// The published vector's data key.
const PLAINTEXT_B64: &str = "9IGlYTqyhBVKZBav1uROVA==";

fn plaintext() -> Vec<u8> {
    BASE64.decode(PLAINTEXT_B64).expect("b64")
}

fn fast_retries(max_attempts: u32) -> RetryPolicy {
    RetryPolicy {
        max_attempts,
        base_delay: Duration::from_millis(2),
        max_delay: Duration::from_millis(20),
        timeout: Duration::from_secs(5),
    }
}

fn client(url: String, tls: Option<TlsFiles>, max_attempts: u32) -> DksClient {
    DksClient::new(DksSettings {
        url,
        tls,
        correlation_id: "run:1".to_owned(),
        retry: fast_retries(max_attempts),
    })
    .expect("valid settings")
}

fn tls_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/tls")
}

/// The published vector's key decrypts its ciphertext.
fn assert_is_the_published_key(key: &DataKey) {
    let iv = decode_iv("vtA/hDISUq2BacN2iklB8g==").expect("iv");
    let mut data = BASE64
        .decode("ZLDdPh9IXexOzCztXNtC/uFASJVFU+RhIzu7/x8DzUmenZlO")
        .expect("b64");
    apply_keystream(key, &iv, &mut data);
    assert_eq!(data, b"12b1a332-5b46-4ad7-bd98-6f8deea3ecb7");
}

#[tokio::test]
async fn a_dks_answering_503_twice_then_200_is_retried() {
    let dks = LoopbackDks::start().await.expect("dks");
    dks.add_key(ENCRYPTED, &plaintext());
    dks.fail_next(&[503, 503]);
    let client = client(dks.url(), None, 4);
    let key = client
        .decrypt(KEY_ID, ENCRYPTED)
        .await
        .expect("third try succeeds");
    assert_is_the_published_key(&key);
    assert_eq!(client.requests(), 3);
    assert_eq!(dks.requests(), 3);
    assert_eq!(
        dks.correlation_ids(),
        ["run:1", "run:1", "run:1"],
        "the id is sent, decoded"
    );
}

#[tokio::test]
async fn a_dks_answering_429_and_500_past_the_limit_fails_naming_the_key_id() {
    let dks = LoopbackDks::start().await.expect("dks");
    dks.add_key(ENCRYPTED, &plaintext());
    dks.fail_next(&[429, 500, 502]);
    let err = client(dks.url(), None, 3)
        .decrypt(KEY_ID, ENCRYPTED)
        .await
        .expect_err("out of attempts");
    assert!(
        !err.is_key_refusal(),
        "an unavailable service fails the step"
    );
    let text = err.to_string();
    assert!(text.contains(&format!("`{KEY_ID}`")), "{text}");
    assert!(text.contains("after 3 attempts"), "{text}");
    assert!(text.contains("502"), "{text}");
}

#[tokio::test]
async fn a_dks_answering_400_fails_at_once_naming_the_key_id_not_the_key() {
    let dks = LoopbackDks::start().await.expect("dks");
    dks.add_key(ENCRYPTED, &plaintext());
    dks.fail_next(&[400]);
    let err = client(dks.url(), None, 5)
        .decrypt(KEY_ID, ENCRYPTED)
        .await
        .expect_err("refused");
    assert!(
        matches!(err, ExtractorError::DksRefused { status: 400, .. }),
        "{err:?}"
    );
    assert!(err.is_key_refusal());
    let text = err.to_string();
    assert!(
        text.starts_with(&format!(
            "the data key service refused to decrypt the data key under master key `{KEY_ID}` (400)"
        )),
        "{text}"
    );
    assert!(
        !text.contains(ENCRYPTED) && !text.contains(&PLAINTEXT_B64[..20]),
        "{text}"
    );
    assert_eq!(dks.requests(), 1, "a 4xx is not retried");
}

#[tokio::test]
async fn an_unreachable_dks_fails_after_its_attempts() {
    // Bind then drop a listener: nothing answers on that port.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("port")
        .port();
    let err = client(format!("http://127.0.0.1:{port}"), None, 2)
        .decrypt(KEY_ID, ENCRYPTED)
        .await
        .expect_err("nothing listens");
    let text = err.to_string();
    assert!(text.contains("after 2 attempts"), "{text}");
}

#[tokio::test]
async fn many_workers_asking_for_one_key_cause_one_request() {
    let dks = LoopbackDks::start().await.expect("dks");
    dks.add_key(ENCRYPTED, &plaintext());
    dks.add_key("b3RoZXI=", &[9; 16]);
    let cache = Arc::new(KeyCache::new(KeyProvider::Dks(Box::new(client(
        dks.url(),
        None,
        3,
    )))));
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..32 {
        let cache = cache.clone();
        tasks.spawn(async move {
            let encrypted = if i % 2 == 0 { ENCRYPTED } else { "b3RoZXI=" };
            cache.get(KEY_ID, encrypted).await
        });
    }
    let mut keys = 0;
    while let Some(done) = tasks.join_next().await {
        match done.expect("task").expect("key") {
            KeyAnswer::Key(_) => keys += 1,
            KeyAnswer::Refused(reason) => panic!("refused: {reason}"),
        }
    }
    assert_eq!(keys, 32);
    assert_eq!(dks.requests(), 2, "one request per distinct encrypted key");
    assert_eq!(cache.len(), 2);
}

#[tokio::test]
async fn a_refused_key_is_cached_as_a_refusal() {
    let dks = LoopbackDks::start().await.expect("dks");
    let cache = KeyCache::new(KeyProvider::Dks(Box::new(client(dks.url(), None, 3))));
    for _ in 0..3 {
        match cache.get(KEY_ID, "dW5rbm93bg==").await.expect("an answer") {
            KeyAnswer::Refused(reason) => assert!(reason.contains(KEY_ID), "{reason}"),
            KeyAnswer::Key(_) => panic!("an unknown key was decrypted"),
        }
    }
    assert_eq!(dks.requests(), 1);
}

#[tokio::test]
async fn mutual_tls_presents_our_certificate_and_checks_theirs() {
    let dir = tls_dir();
    let server_files = TlsFiles {
        cert: dir.join("server.pem"),
        key: dir.join("server.key"),
        ca: dir.join("ca.pem"),
    };
    let dks = LoopbackDks::start_mtls(&server_files)
        .await
        .expect("mTLS dks");
    dks.add_key(ENCRYPTED, &plaintext());
    assert!(dks.url().starts_with("https://127.0.0.1:"));

    let ours = TlsFiles {
        cert: dir.join("client.pem"),
        key: dir.join("client.key"),
        ca: dir.join("ca.pem"),
    };
    let key = client(dks.url(), Some(ours), 2)
        .decrypt(KEY_ID, ENCRYPTED)
        .await
        .expect("mutual TLS works");
    assert_is_the_published_key(&key);

    // A server our CA did not sign is refused before anything is sent.
    let wrong_ca = TlsFiles {
        cert: dir.join("client.pem"),
        key: dir.join("client.key"),
        ca: dir.join("other-ca.pem"),
    };
    let before = dks.requests();
    let err = client(dks.url(), Some(wrong_ca), 1)
        .decrypt(KEY_ID, ENCRYPTED)
        .await
        .expect_err("untrusted server");
    assert!(
        err.to_string().to_lowercase().contains("certificate"),
        "{err}"
    );
    assert_eq!(dks.requests(), before, "no request reached the service");

    // The service requires a client certificate (the verifier is not `allow_unauthenticated`),
    // so the success above shows ours was presented. A certificate and a key that do not
    // belong together are refused when the client is built, naming both files.
    let mismatched = DksClient::new(DksSettings {
        url: dks.url(),
        tls: Some(TlsFiles {
            cert: dir.join("client.pem"),
            key: dir.join("server.key"),
            ca: dir.join("ca.pem"),
        }),
        correlation_id: "run:1".to_owned(),
        retry: fast_retries(1),
    });
    let err = mismatched.expect_err("a certificate and a key that do not match");
    assert!(
        err.to_string().contains("do not make a client identity"),
        "{err}"
    );
}
