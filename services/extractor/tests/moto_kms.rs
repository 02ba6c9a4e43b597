//! The KMS key provider against moto server's KMS: data keys wrapped with `Encrypt` under
//! the record's key id and the matching encryption context.

use std::process::Command;

use aws_sdk_kms::primitives::Blob;
use base64::Engine;
use intraday_extractor::ExtractorError;
use intraday_extractor::crypto::{BASE64, apply_keystream, decode_iv};
use intraday_extractor::kms::{CONTEXT_KEY, KmsKeys};
use intraday_extractor::synth::{self, SynthKey};
use intraday_testkit as kit;

const PUBLISHED_KEY: &str = "9IGlYTqyhBVKZBav1uROVA==";

async fn kms_key(aws: &intraday_aws::Aws) -> String {
    aws_sdk_kms::Client::new(&aws.sdk)
        .create_key()
        .description(kit::unique("extractor"))
        .send()
        .await
        .expect("create key")
        .key_metadata()
        .map(|m| m.key_id().to_owned())
        .expect("key id")
}

/// Wraps `plaintext` under `key_id`, with the context the extractor expects unless told.
async fn wrap(
    aws: &intraday_aws::Aws,
    key_id: &str,
    plaintext: &[u8],
    context: Option<&str>,
) -> String {
    let mut request = aws_sdk_kms::Client::new(&aws.sdk)
        .encrypt()
        .key_id(key_id)
        .plaintext(Blob::new(plaintext.to_vec()));
    if let Some(value) = context {
        request = request.encryption_context(CONTEXT_KEY, value);
    }
    let out = request.send().await.expect("encrypt");
    BASE64.encode(out.ciphertext_blob().expect("blob").as_ref())
}

#[tokio::test]
async fn moto_kms_unwraps_a_data_key_bound_to_its_key_id() {
    let aws = kit::aws().await;
    let key_id = kms_key(&aws).await;
    let plaintext = BASE64.decode(PUBLISHED_KEY).expect("b64");
    let wrapped = wrap(&aws, &key_id, &plaintext, Some(&key_id)).await;

    let kms = KmsKeys::new(&aws);
    let key = kms.decrypt(&key_id, &wrapped).await.expect("unwraps");
    let iv = decode_iv("vtA/hDISUq2BacN2iklB8g==").expect("iv");
    let mut data = BASE64
        .decode("ZLDdPh9IXexOzCztXNtC/uFASJVFU+RhIzu7/x8DzUmenZlO")
        .expect("b64");
    apply_keystream(&key, &iv, &mut data);
    assert_eq!(data, b"12b1a332-5b46-4ad7-bd98-6f8deea3ecb7");

    // Wrapped without the context: KMS refuses, and the records under it are rejected.
    let unbound = wrap(&aws, &key_id, &plaintext, None).await;
    let err = kms
        .decrypt(&key_id, &unbound)
        .await
        .expect_err("context mismatch");
    assert!(err.is_key_refusal(), "{err:?}");
    assert!(err.to_string().contains(&format!("`{key_id}`")), "{err}");

    let err = kms.decrypt(&key_id, "%%%").await.expect_err("not base64");
    assert!(matches!(err, ExtractorError::KmsRefused { .. }), "{err:?}");
    assert!(err.to_string().contains("not base64"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn moto_the_extractor_decrypts_with_kms() {
    let aws = kit::aws().await;
    let key_id = kms_key(&aws).await;
    let mut keys: Vec<SynthKey> = synth::keys(2, 33);
    for key in &mut keys {
        key.encrypted_key = wrap(&aws, &key_id, &key.plaintext, Some(&key_id)).await;
        key.key_id = key_id.clone();
    }
    let records = synth::records(40, 1024, keys.len(), 1_710_149_400_001, 5);
    let dir = std::env::temp_dir().join(kit::unique("extractor-kms"));
    std::fs::create_dir_all(&dir).expect("dir");
    let scan = dir.join("claimant.scan");
    let mut text = Vec::new();
    synth::write_scan(&mut text, &records, &keys, 5).expect("scan");
    std::fs::write(&scan, text).expect("write");

    let mut command = Command::new(env!("CARGO_BIN_EXE_intraday-extractor"));
    command
        .args([
            "--correlation-id",
            "run-kms",
            "--trigger-time-ms",
            "1710153000000",
        ])
        .args([
            "--collection",
            "db.core.claimant:1710149400001:1710153000000",
        ])
        .arg("--scan-file")
        .arg(format!("db.core.claimant={}", scan.display()))
        .arg("--output")
        .arg(dir.join("out"))
        .args([
            "--kms",
            "--region",
            kit::REGION,
            "--endpoint-url",
            kit::moto(),
        ])
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env_remove("AWS_PROFILE")
        .env("RUST_LOG", "warn");
    let output = tokio::task::spawn_blocking(move || command.output().expect("runs"))
        .await
        .expect("join");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let manifest: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(dir.join("out/_manifests/run-kms.json")).expect("manifest"),
    )
    .expect("json");
    assert_eq!(manifest["collections"][0]["records"], 40);
    assert_eq!(manifest["collections"][0]["rejected"], 0);
    let _ = std::fs::remove_dir_all(&dir);
}
