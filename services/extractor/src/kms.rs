//! Data keys wrapped with AWS KMS instead of a data key service.
//!
//! The producer encrypts each data key with `kms:Encrypt` (or makes it with
//! `kms:GenerateDataKey`) under the KMS key it then names in `keyEncryptionKeyId`, with the
//! encryption context `{"keyEncryptionKeyId": "<that id>"}`. We call `Decrypt` with the same
//! key id and context, so a record cannot claim one key while carrying a key wrapped under
//! another: KMS refuses the mismatch.

use aws_sdk_kms::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_kms::primitives::Blob;
use base64::Engine;
use intraday_aws::Aws;
use zeroize::Zeroizing;

use crate::ExtractorError;
use crate::crypto::{BASE64, DataKey};

/// The encryption context's key; its value is the record's `keyEncryptionKeyId`.
pub const CONTEXT_KEY: &str = "keyEncryptionKeyId";

/// KMS error codes that mean "try later" rather than "no".
const RETRYABLE: &[&str] = &[
    "KMSInternalException",
    "DependencyTimeoutException",
    "ThrottlingException",
    "LimitExceededException",
];

#[derive(Debug, Clone)]
pub struct KmsKeys {
    client: aws_sdk_kms::Client,
}

impl KmsKeys {
    pub fn new(aws: &Aws) -> Self {
        Self {
            client: aws_sdk_kms::Client::new(&aws.sdk),
        }
    }

    /// Decrypts one wrapped data key. The SDK already retries throttling and 5xx answers;
    /// what is left after its retries fails the step, while a definite refusal (wrong key,
    /// bad ciphertext, no access) rejects the records under that key.
    pub async fn decrypt(
        &self,
        key_id: &str,
        encrypted_key: &str,
    ) -> Result<DataKey, ExtractorError> {
        let refused = |reason: String| ExtractorError::KmsRefused {
            key_id: key_id.to_owned(),
            reason,
        };
        let blob = BASE64
            .decode(encrypted_key.trim())
            .map_err(|e| refused(format!("`encryptedEncryptionKey` is not base64: {e}")))?;
        let mut out = self
            .client
            .decrypt()
            .key_id(key_id)
            .ciphertext_blob(Blob::new(blob))
            .encryption_context(CONTEXT_KEY, key_id)
            .send()
            .await
            .map_err(|e| classify(key_id, e))?;
        let plaintext = Zeroizing::new(
            out.plaintext
                .take()
                .map(Blob::into_inner)
                .ok_or_else(|| refused("the answer has no plaintext".to_owned()))?,
        );
        DataKey::from_bytes(&plaintext).map_err(refused)
    }
}

fn classify<E>(
    key_id: &str,
    err: SdkError<E, aws_sdk_kms::config::http::HttpResponse>,
) -> ExtractorError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let detail = aws_sdk_kms::error::DisplayErrorContext(&err).to_string();
    match &err {
        SdkError::ServiceError(service) => {
            let status = service.raw().status().as_u16();
            let code = service.err().code().unwrap_or("Unknown").to_owned();
            let message = service.err().message().unwrap_or(&detail).to_owned();
            if status >= 500 || status == 429 || RETRYABLE.contains(&code.as_str()) {
                ExtractorError::KmsUnavailable {
                    key_id: key_id.to_owned(),
                    reason: format!("{code}: {message}"),
                }
            } else {
                ExtractorError::KmsRefused {
                    key_id: key_id.to_owned(),
                    reason: format!("{code}: {message}"),
                }
            }
        }
        _ => ExtractorError::KmsUnavailable {
            key_id: key_id.to_owned(),
            reason: detail,
        },
    }
}
